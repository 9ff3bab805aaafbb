/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* crypto-util.h: certificates and keys with GnuTLS: TPM-backed private keys (signing goes to the TPM), the
 * device/ECDH/attestation certificates, certHash helpers, ECDSA signature formats, software keys and ECDH. */
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "macro.h"
#include "tpm2-util.h"

#define CRYPTO_CERT_HASH16_SIZE 16U

typedef enum CryptoCertKind {
        CRYPTO_CERT_DEVICE, /* self-signed device identity certificate (CA) */
        CRYPTO_CERT_ECDH,   /* signed by the device key */
        CRYPTO_CERT_ATTEST, /* signed by the device key */
        CRYPTO_CERT_EK,     /* signed by the device key, over the EK's public key (EVE's "EK certificate") */
        _CRYPTO_CERT_MAX,
        _CRYPTO_CERT_INVALID = -EINVAL,
} CryptoCertKind;

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(gnutls_x509_crt_t, gnutls_x509_crt_deinit);
DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(gnutls_privkey_t, gnutls_privkey_deinit);
DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(gnutls_pubkey_t, gnutls_pubkey_deinit);
DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(gnutls_x509_privkey_t, gnutls_x509_privkey_deinit);
static inline void gnutls_datum_freep(gnutls_datum_t *d) {
        gnutls_free(d->data);
        d->data = NULL;
        d->size = 0;
}

/* GnuTLS errors → negative errno (-EBADMSG for parse/verify problems, -ENOMEM, -EIO otherwise). */
int crypto_errno(int gnutls_error);

/* A gnutls_privkey_t (ECDSA P-256) whose signatures are made by TPM key k (holds a context reference). */
int crypto_tpm_privkey(Tpm2Context *c, Tpm2Key k, gnutls_privkey_t *ret);

int crypto_pubkey_from_point(const Tpm2EccPoint *p, gnutls_pubkey_t *ret);
/* -EMEDIUMTYPE unless the key is ECDSA P-256. */
int crypto_pubkey_to_point(gnutls_pubkey_t k, Tpm2EccPoint *ret);
int crypto_cert_point(gnutls_x509_crt_t crt, Tpm2EccPoint *ret);
int crypto_privkey_point(gnutls_privkey_t k, Tpm2EccPoint *ret);

/* Makes a certificate for subject. CRYPTO_CERT_DEVICE is self-signed (issuer NULL, signer = the subject's own
 * key); the others need the device certificate as issuer and the device key as signer. */
int crypto_cert_make(CryptoCertKind kind, gnutls_pubkey_t subject, gnutls_x509_crt_t issuer,
                gnutls_privkey_t signer, gnutls_x509_crt_t *ret);
/* Verifies crt's signature with issuer's key (crt itself when self-signed) and that issuer may sign it.
 * -EBADMSG when it does not verify. */
int crypto_cert_verify(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer);

int crypto_cert_to_pem(gnutls_x509_crt_t crt, char **ret, size_t *ret_size);
int crypto_cert_from_der(const void *der, size_t size, gnutls_x509_crt_t *ret);
/* Reads a PEM certificate file; also returns the file's exact bytes (for certHash) when ret_pem is set.
 * -ENOENT when the file does not exist. */
int crypto_cert_load(const char *path, gnutls_x509_crt_t *ret, char **ret_pem, size_t *ret_pem_size);

/* certHash as EVE sends it for its certificates: SHA-256 of the PEM bytes, first 16 bytes. */
void crypto_cert_hash_pem16(const void *pem, size_t size, uint8_t ret[static CRYPTO_CERT_HASH16_SIZE]);
/* SHA-256 of the DER encoding (AuthContainer senderCertHash). */
int crypto_cert_hash_der(gnutls_x509_crt_t crt, uint8_t ret[static 32]);

/* ECDSA P-256 signatures: raw r‖s (64 bytes) ↔ DER (ECDSA-Sig-Value). DER output is gnutls_malloc'ed. */
int crypto_ecdsa_rs_to_der(const uint8_t rs[static 64], gnutls_datum_t *ret);
int crypto_ecdsa_der_to_rs(const void *der, size_t size, uint8_t ret[static 64]);

/* Software ECDSA P-256 keys (no-TPM fallback), stored as PEM ("EC PRIVATE KEY"), mode 0600. */
int crypto_soft_key_generate(gnutls_privkey_t *ret);
int crypto_soft_key_save(gnutls_privkey_t k, const char *path);
int crypto_soft_key_load(const char *path, gnutls_privkey_t *ret);

/* Software ECDH on P-256: the shared point x‖y (64 bytes, secret memory) of key and peer, the same value that
 * TPM2_ECDH_ZGen returns. */
int crypto_ecdh_soft(gnutls_privkey_t key, const Tpm2EccPoint *peer, uint8_t **ret_point);

/* Reads a regular file of at most 1 MiB into a NUL-terminated buffer (secret memory when secure: free with
 * eve_secret_free). -EFBIG when larger, -EBADFD when not a regular file. */
int crypto_read_file(const char *path, bool secure, char **ret, size_t *ret_size);

/* AES-256-CFB128 (full-block feedback, as OpenSSL's EVP_aes_256_cfb128 and Go's cipher.NewCFBDecrypter) in
 * place over n bytes; the expanded key is wiped before returning. */
void crypto_aes256_cfb_decrypt(const uint8_t key[static 32], const uint8_t iv[static 16], void *buf, size_t n);

/* Writes data to path atomically (temporary file in the same directory, fsync, rename), with mode. */
int crypto_write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
