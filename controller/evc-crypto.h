/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-crypto.h: the controller's cryptography: key and certificate generation (GnuTLS), AuthContainer
 * signatures (ECDSA P-256, raw r‖s), certificate chains, ECDH with P-256 (nettle), AES-256-CFB128/GCM, SHA-256. */
#pragma once

#include "crypto-util.h" /* the shared GnuTLS cleanup helpers */
#include "macro.h"

#define EVC_SHA256_SIZE 32
#define EVC_ECDSA_RAW_SIZE 64

#define _cleanup_datum_ _cleanup_(gnutls_datum_freep)

void evc_sha256(const void *p, size_t n, uint8_t ret[static EVC_SHA256_SIZE]);
int evc_random(void *p, size_t n);

/* What a generated certificate is for. */
typedef enum EvcCertKind {
        EVC_CERT_ROOT,    /* self-signed CA */
        EVC_CERT_SIGNING, /* AuthContainer signing: digitalSignature */
        EVC_CERT_ECDH,    /* key agreement for cipher blocks */
        EVC_CERT_TLS,     /* TLS server: 127.0.0.1 and localhost */
} EvcCertKind;

/* Generates an ECDSA P-256 key and a certificate for it, signed by issuer (NULL = self-signed), written as
 * PEM to cert_path and key_path (0600) unless they are NULL. Returns the generated certificate and key when
 * ret_* are non-NULL. */
int evc_generate_cert(EvcCertKind kind, const char *cn, gnutls_x509_crt_t issuer_crt,
                gnutls_x509_privkey_t issuer_key, const char *cert_path, const char *key_path,
                gnutls_x509_crt_t *ret_crt, gnutls_x509_privkey_t *ret_key);

/* Reads a file fully (≤ 1 MiB). */
int evc_read_file(const char *path, uint8_t **ret, size_t *ret_size);
/* Writes atomically (temp file, fsync, rename) with the given mode. */
int evc_write_file(const char *path, const void *p, size_t n, mode_t mode);

int evc_load_crt_pem(const void *pem, size_t n, gnutls_x509_crt_t *ret);
int evc_load_crt_file(const char *path, gnutls_x509_crt_t *ret);
int evc_load_key_file(const char *path, gnutls_x509_privkey_t *ret);
/* DER of a certificate, newly allocated. */
int evc_crt_der(gnutls_x509_crt_t crt, uint8_t **ret, size_t *ret_size);
/* SHA-256 over the certificate's DER (the AuthContainer sender hash of a device). */
int evc_crt_der_sha256(gnutls_x509_crt_t crt, uint8_t ret[static EVC_SHA256_SIZE]);

/* Signs SHA-256(data) with key; the signature is raw r‖s, each left-padded to 32 bytes. */
int evc_sign_raw(gnutls_x509_privkey_t key, const void *data, size_t n, uint8_t ret[static EVC_ECDSA_RAW_SIZE]);
int evc_sign_raw_pk(gnutls_privkey_t pk, const void *data, size_t n, uint8_t ret[static EVC_ECDSA_RAW_SIZE]);
/* Verifies an ECDSA P-256 signature over SHA-256 digest by crt's key. sig is raw r‖s (64 bytes) or DER.
 * Returns 0 when valid, -EBADMSG when not, other negative errno on bad input. */
int evc_verify_digest_pub(
                gnutls_pubkey_t pub,
                const uint8_t digest[static EVC_SHA256_SIZE],
                const void *sig,
                size_t sig_size);
int evc_verify_digest(gnutls_x509_crt_t crt, const uint8_t digest[static EVC_SHA256_SIZE], const void *sig,
                size_t sig_size);
/* Verifies that crt is signed by issuer (one link, with issuer as the only trust anchor; time checks on).
 * Returns 0 or -EPERM with the reason logged. */
int evc_verify_chain(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer);

/* ECDH on P-256: shared point of our private key and crt's public key, K = SHA-256(X_pad32 ‖ Y_pad32). */
int evc_ecdh_key(gnutls_x509_privkey_t key, gnutls_x509_crt_t peer, uint8_t ret[static EVC_SHA256_SIZE]);
/* Same, from raw inputs: private scalar k (big-endian) and peer public point (x, y), each ≤ 32 bytes. */
int evc_ecdh_raw(const uint8_t *k, size_t k_size, const uint8_t *x, size_t x_size, const uint8_t *y, size_t y_size,
                uint8_t ret[static EVC_SHA256_SIZE]);

/* AES-256-CFB128 in place (encrypt/decrypt). */
void evc_aes256_cfb_encrypt(const uint8_t key[static 32], const uint8_t iv[static 16], uint8_t *p, size_t n);
void evc_aes256_cfb_decrypt(const uint8_t key[static 32], const uint8_t iv[static 16], uint8_t *p, size_t n);

/* AES-256-GCM with a random 12-byte nonce: the output is nonce(12) ‖ ciphertext ‖ tag(16), newly allocated.
 * The _ad variants authenticate ad (additional data) too. */
#define EVC_GCM_NONCE_SIZE 12
#define EVC_GCM_TAG_SIZE 16
int evc_aead_seal(const uint8_t key[static 32], const void *plain, size_t n, uint8_t **ret, size_t *ret_size);
int evc_aead_seal_ad(
                const uint8_t key[static 32],
                const void *ad,
                size_t ad_size,
                const void *plain,
                size_t n,
                uint8_t **ret,
                size_t *ret_size);
/* Returns -EBADMSG if the tag does not verify. Output in secret memory (eve_secret_free), NUL-terminated. */
int evc_aead_open(const uint8_t key[static 32], const void *sealed, size_t n, uint8_t **ret, size_t *ret_size);
int evc_aead_open_ad(
                const uint8_t key[static 32],
                const void *ad,
                size_t ad_size,
                const void *sealed,
                size_t n,
                uint8_t **ret,
                size_t *ret_size);
