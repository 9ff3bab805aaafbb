/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* crypto-util.c: GnuTLS certificates over TPM-held keys (gnutls_privkey_import_ext4: the private key never
 * leaves the TPM; GnuTLS hands us the digest and we return the TPM's signature), software keys for the no-TPM
 * fallback, and a nettle ECDH that reproduces TPM2_ECDH_ZGen. */
#include <fcntl.h>
#include <gmp.h>
#include <gnutls/crypto.h>
#include <nettle/aes.h>
#include <nettle/cfb.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/sha2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto-util.h"
#include "log.h"
#include "memory-util.h"

#define CERT_VALIDITY_SECONDS (20LL * 365 * 24 * 3600)
#define FILE_MAX (1024U * 1024U)

int crypto_errno(int e) {
        switch (e) {
        case GNUTLS_E_SUCCESS:
                return 0;
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_INVALID_REQUEST:
                return -EINVAL;
        case GNUTLS_E_ASN1_DER_ERROR:
        case GNUTLS_E_ASN1_TAG_ERROR:
        case GNUTLS_E_ASN1_VALUE_NOT_VALID:
        case GNUTLS_E_BASE64_DECODING_ERROR:
        case GNUTLS_E_BASE64_UNEXPECTED_HEADER_ERROR:
        case GNUTLS_E_PK_SIG_VERIFY_FAILED:
        case GNUTLS_E_CERTIFICATE_ERROR:
        case GNUTLS_E_ECC_UNSUPPORTED_CURVE:
        case GNUTLS_E_UNKNOWN_PK_ALGORITHM:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

static void copy_be(uint8_t *dst, size_t dst_size, const uint8_t *src, size_t src_size) {
        while (src_size > dst_size && *src == 0) {
                src++;
                src_size--;
        }
        memset(dst, 0, dst_size);
        if (src_size > dst_size)
                src_size = dst_size; /* cannot happen for valid P-256 values; callers check the curve */
        memcpy(dst + dst_size - src_size, src, src_size);
}

/* ---- TPM-backed private key ---- */

typedef struct TpmKeyData {
        Tpm2Context *c;
        Tpm2Key k;
} TpmKeyData;

static int tpm_sign_digest_der(TpmKeyData *d, const uint8_t *digest, gnutls_datum_t *signature) {
        uint8_t rs[64];
        int r;

        r = tpm2_sign_digest(d->c, d->k, digest, rs);
        if (r < 0) {
                log_debug_errno(r, "TPM signature failed: %s", tpm2_context_last_error(d->c));
                return GNUTLS_E_PK_SIGN_FAILED;
        }
        r = crypto_ecdsa_rs_to_der(rs, signature);
        return r < 0 ? GNUTLS_E_PK_SIGN_FAILED : 0;
}

static int tpm_sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata, unsigned flags,
                const gnutls_datum_t *hash, gnutls_datum_t *signature) {

        if (hash->size != TPM2_SHA256_SIZE)
                return GNUTLS_E_INVALID_REQUEST;
        return tpm_sign_digest_der(userdata, hash->data, signature);
}

static int tpm_sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata, unsigned flags,
                const gnutls_datum_t *data, gnutls_datum_t *signature) {

        uint8_t digest[TPM2_SHA256_SIZE];
        int r;

        if (algo != GNUTLS_SIGN_ECDSA_SHA256 && algo != GNUTLS_SIGN_ECDSA_SECP256R1_SHA256)
                return GNUTLS_E_UNSUPPORTED_SIGNATURE_ALGORITHM;
        r = gnutls_hash_fast(GNUTLS_DIG_SHA256, data->data, data->size, digest);
        if (r < 0)
                return r;
        return tpm_sign_digest_der(userdata, digest, signature);
}

static int tpm_key_info(gnutls_privkey_t key, unsigned flags, void *userdata) {
        if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO) {
                gnutls_sign_algorithm_t a = GNUTLS_FLAGS_TO_SIGN_ALGO(flags);
                return a == GNUTLS_SIGN_ECDSA_SHA256 || a == GNUTLS_SIGN_ECDSA_SECP256R1_SHA256;
        }
        if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
                return GNUTLS_PK_ECDSA;
        if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
                return 256;
        if (flags & GNUTLS_PRIVKEY_INFO_SIGN_ALGO)
                return GNUTLS_SIGN_ECDSA_SHA256;
        return -1;
}

static void tpm_key_deinit(gnutls_privkey_t key, void *userdata) {
        TpmKeyData *d = userdata;
        tpm2_context_unref(d->c);
        free(d);
}

int crypto_tpm_privkey(Tpm2Context *c, Tpm2Key k, gnutls_privkey_t *ret) {
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        TpmKeyData *d;
        int r;

        if (k != TPM2_KEY_DEVICE)
                return -EINVAL; /* only the device key signs arbitrary digests */
        r = gnutls_privkey_init(&key);
        if (r < 0)
                return crypto_errno(r);
        d = malloc(sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (TpmKeyData) { .c = tpm2_context_ref(c), .k = k };
        r = gnutls_privkey_import_ext4(key, d, tpm_sign_data, tpm_sign_hash, NULL, tpm_key_deinit, tpm_key_info,
                                       GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
        if (r < 0) {
                tpm_key_deinit(NULL, d);
                return crypto_errno(r);
        }
        *ret = TAKE_PTR(key);
        return 0;
}

/* ---- public keys ---- */

int crypto_pubkey_from_point(const Tpm2EccPoint *p, gnutls_pubkey_t *ret) {
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t k = NULL;
        gnutls_datum_t x = { (unsigned char *) p->x, TPM2_ECC_P256_SIZE };
        gnutls_datum_t y = { (unsigned char *) p->y, TPM2_ECC_P256_SIZE };
        int r;

        r = gnutls_pubkey_init(&k);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_pubkey_import_ecc_raw(k, GNUTLS_ECC_CURVE_SECP256R1, &x, &y);
        if (r < 0)
                return crypto_errno(r);
        *ret = TAKE_PTR(k);
        return 0;
}

int crypto_pubkey_to_point(gnutls_pubkey_t k, Tpm2EccPoint *ret) {
        _cleanup_(gnutls_datum_freep) gnutls_datum_t x = {}, y = {};
        gnutls_ecc_curve_t curve;
        int r;

        if (gnutls_pubkey_get_pk_algorithm(k, NULL) != GNUTLS_PK_ECDSA)
                return -EMEDIUMTYPE;
        r = gnutls_pubkey_export_ecc_raw2(k, &curve, &x, &y, GNUTLS_EXPORT_FLAG_NO_LZ);
        if (r < 0)
                return crypto_errno(r);
        if (curve != GNUTLS_ECC_CURVE_SECP256R1 || x.size > TPM2_ECC_P256_SIZE || y.size > TPM2_ECC_P256_SIZE)
                return -EMEDIUMTYPE;
        copy_be(ret->x, TPM2_ECC_P256_SIZE, x.data, x.size);
        copy_be(ret->y, TPM2_ECC_P256_SIZE, y.data, y.size);
        return 0;
}

int crypto_cert_point(gnutls_x509_crt_t crt, Tpm2EccPoint *ret) {
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t k = NULL;
        int r;

        r = gnutls_pubkey_init(&k);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_pubkey_import_x509(k, crt, 0);
        if (r < 0)
                return crypto_errno(r);
        return crypto_pubkey_to_point(k, ret);
}

int crypto_privkey_point(gnutls_privkey_t key, Tpm2EccPoint *ret) {
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t k = NULL;
        int r;

        r = gnutls_pubkey_init(&k);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_pubkey_import_privkey(k, key, 0, 0);
        if (r < 0)
                return crypto_errno(r);
        return crypto_pubkey_to_point(k, ret);
}

/* ---- certificates ---- */

static const char *const cert_cn[_CRYPTO_CERT_MAX] = {
        [CRYPTO_CERT_DEVICE] = "EVE",
        [CRYPTO_CERT_ECDH] = "Device ECDH certificate",
        [CRYPTO_CERT_ATTEST] = "Device Attestation certificate",
        [CRYPTO_CERT_EK] = "Device Endorsement Key certificate",
};
#define CERT_ORG "The Linux Foundation"

int crypto_cert_make(CryptoCertKind kind, gnutls_pubkey_t subject, gnutls_x509_crt_t issuer,
                gnutls_privkey_t signer, gnutls_x509_crt_t *ret) {

        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        uint8_t serial[16], keyid[64];
        size_t keyid_size = sizeof(keyid);
        time_t now = time(NULL);
        unsigned ku;
        int r;

        if (kind < 0 || kind >= _CRYPTO_CERT_MAX || (kind != CRYPTO_CERT_DEVICE && !issuer))
                return -EINVAL;

        r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
        if (r < 0)
                return crypto_errno(r);
        serial[0] = (serial[0] & 0x7f) | 0x40; /* positive, and a full 16 bytes */

        r = gnutls_x509_crt_set_version(crt, 3);
        if (r >= 0)
                r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
        if (r >= 0)
                r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, CERT_ORG,
                                                  strlen(CERT_ORG));
        if (r >= 0)
                r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cert_cn[kind],
                                                  strlen(cert_cn[kind]));
        if (r >= 0)
                r = gnutls_x509_crt_set_pubkey(crt, subject);
        if (r < 0)
                return crypto_errno(r);

        if (kind == CRYPTO_CERT_DEVICE) {
                r = gnutls_x509_crt_set_activation_time(crt, now - 24 * 3600);
                if (r >= 0)
                        r = gnutls_x509_crt_set_expiration_time(crt, now + CERT_VALIDITY_SECONDS);
                if (r >= 0)
                        r = gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
                ku = GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN;
                if (r >= 0)
                        r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
        } else {
                r = gnutls_x509_crt_set_activation_time(crt, gnutls_x509_crt_get_activation_time(issuer));
                if (r >= 0)
                        r = gnutls_x509_crt_set_expiration_time(crt, gnutls_x509_crt_get_expiration_time(issuer));
                if (r >= 0)
                        r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
                ku = GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT;
                if (kind == CRYPTO_CERT_ECDH)
                        ku |= GNUTLS_KEY_KEY_AGREEMENT;
        }
        if (r >= 0)
                r = gnutls_x509_crt_set_key_usage(crt, ku);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
        if (r >= 0)
                r = gnutls_pubkey_get_key_id(subject, GNUTLS_KEYID_USE_SHA1, keyid, &keyid_size);
        if (r >= 0)
                r = gnutls_x509_crt_set_subject_key_id(crt, keyid, keyid_size);
        if (r >= 0 && issuer) {
                keyid_size = sizeof(keyid);
                r = gnutls_x509_crt_get_subject_key_id(issuer, keyid, &keyid_size, NULL);
                if (r >= 0)
                        r = gnutls_x509_crt_set_authority_key_id(crt, keyid, keyid_size);
        }
        if (r < 0)
                return crypto_errno(r);

        r = gnutls_x509_crt_privkey_sign(crt, issuer ?: crt, signer, GNUTLS_DIG_SHA256, 0);
        if (r < 0) {
                log_debug("Signing the %s failed: %s", cert_cn[kind], gnutls_strerror(r));
                return crypto_errno(r);
        }
        *ret = TAKE_PTR(crt);
        return 0;
}

int crypto_cert_verify(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer) {
        unsigned status = 0;
        int r;

        r = gnutls_x509_crt_verify(crt, issuer ? &issuer : &crt, 1, 0, &status);
        if (r < 0)
                return crypto_errno(r);
        return status == 0 ? 0 : -EBADMSG;
}

int crypto_cert_to_pem(gnutls_x509_crt_t crt, char **ret, size_t *ret_size) {
        _cleanup_(gnutls_datum_freep) gnutls_datum_t out = {};
        char *s;
        int r;

        r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out);
        if (r < 0)
                return crypto_errno(r);
        s = malloc(out.size + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, out.data, out.size);
        s[out.size] = '\0';
        *ret = s;
        if (ret_size)
                *ret_size = out.size;
        return 0;
}

int crypto_cert_from_der(const void *der, size_t size, gnutls_x509_crt_t *ret) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t d = { (unsigned char *) der, (unsigned) size };
        int r;

        r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER);
        if (r < 0)
                return crypto_errno(r);
        *ret = TAKE_PTR(crt);
        return 0;
}

int crypto_read_file(const char *path, bool secure, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        char *buf;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > FILE_MAX)
                return -EFBIG;
        buf = secure ? eve_secret_alloc((size_t) st.st_size + 1) : malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        int e = k < 0 ? -errno : -EIO;
                        if (secure)
                                eve_secret_free(buf);
                        else
                                free(buf);
                        return e;
                }
                n += (size_t) k;
        }
        buf[n] = '\0';
        *ret = buf;
        *ret_size = n;
        return 0;
}

void crypto_aes256_cfb_decrypt(const uint8_t key[static 32], const uint8_t iv[static 16], void *buf, size_t n) {
        struct aes256_ctx ctx;
        uint8_t v[AES_BLOCK_SIZE];

        aes256_set_encrypt_key(&ctx, key);
        memcpy(v, iv, sizeof v);
        /* CFB uses the block cipher's encryption in both directions. */
        cfb_decrypt(&ctx, (nettle_cipher_func *) aes256_encrypt, AES_BLOCK_SIZE, v, n, buf, buf);
        erase(&ctx, sizeof ctx);
        erase(v, sizeof v);
}

int crypto_cert_load(const char *path, gnutls_x509_crt_t *ret, char **ret_pem, size_t *ret_pem_size) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ char *pem = NULL;
        gnutls_datum_t d;
        size_t size;
        int r;

        r = crypto_read_file(path, false, &pem, &size);
        if (r < 0)
                return r;
        r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return crypto_errno(r);
        d = (gnutls_datum_t) { (unsigned char *) pem, (unsigned) size };
        r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return crypto_errno(r);
        *ret = TAKE_PTR(crt);
        if (ret_pem) {
                *ret_pem = TAKE_PTR(pem);
                *ret_pem_size = size;
        }
        return 0;
}

void crypto_cert_hash_pem16(const void *pem, size_t size, uint8_t ret[static CRYPTO_CERT_HASH16_SIZE]) {
        struct sha256_ctx h;

        sha256_init(&h);
        sha256_update(&h, size, pem);
        sha256_digest(&h, CRYPTO_CERT_HASH16_SIZE, ret); /* nettle truncates the digest to the asked length */
}

int crypto_cert_hash_der(gnutls_x509_crt_t crt, uint8_t ret[static 32]) {
        _cleanup_(gnutls_datum_freep) gnutls_datum_t der = {};
        struct sha256_ctx h;
        int r;

        r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
        if (r < 0)
                return crypto_errno(r);
        sha256_init(&h);
        sha256_update(&h, der.size, der.data);
        sha256_digest(&h, 32, ret);
        return 0;
}

/* ---- ECDSA formats ---- */

int crypto_ecdsa_rs_to_der(const uint8_t rs[static 64], gnutls_datum_t *ret) {
        /* Minimal unsigned big-endian integers; gnutls adds the sign byte where needed. */
        const uint8_t *r = rs, *s = rs + 32;
        unsigned rn = 32, sn = 32;
        gnutls_datum_t dr, ds;
        int e;

        while (rn > 1 && *r == 0)
                r++, rn--;
        while (sn > 1 && *s == 0)
                s++, sn--;
        dr = (gnutls_datum_t) { (unsigned char *) r, rn };
        ds = (gnutls_datum_t) { (unsigned char *) s, sn };
        e = gnutls_encode_rs_value(ret, &dr, &ds);
        return e < 0 ? crypto_errno(e) : 0;
}

int crypto_ecdsa_der_to_rs(const void *der, size_t size, uint8_t ret[static 64]) {
        _cleanup_(gnutls_datum_freep) gnutls_datum_t r = {}, s = {};
        gnutls_datum_t d = { (unsigned char *) der, (unsigned) size };
        int e;

        e = gnutls_decode_rs_value(&d, &r, &s);
        if (e < 0)
                return crypto_errno(e);
        /* copy_be() drops leading zero bytes (DER's sign byte); anything longer is not a P-256 value. */
        if (r.size > 33 || s.size > 33 || (r.size == 33 && r.data[0] != 0) || (s.size == 33 && s.data[0] != 0))
                return -EBADMSG;
        copy_be(ret, 32, r.data, r.size);
        copy_be(ret + 32, 32, s.data, s.size);
        return 0;
}

/* ---- software keys ---- */

int crypto_soft_key_generate(gnutls_privkey_t *ret) {
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t k = NULL;
        int r;

        r = gnutls_privkey_init(&k);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_privkey_generate(k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
        if (r < 0)
                return crypto_errno(r);
        *ret = TAKE_PTR(k);
        return 0;
}

static int write_all(int fd, const uint8_t *p, size_t size) {
        while (size > 0) {
                ssize_t k = write(fd, p, size);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                p += k;
                size -= (size_t) k;
        }
        return 0;
}

/* The new file's mode, contents, and both on disk. */
static int fill_file(int fd, const void *data, size_t size, mode_t mode) {
        int r = fchmod(fd, mode) < 0 ? -errno : write_all(fd, data, size);

        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        return r;
}

/* Writes data into an unnamed file (O_TMPFILE) in dfd and, once complete and synced, links it as tmp (a name
 * ending in XXXXXX, filled in here). 0 when done; <0 when this way is not available here (no O_TMPFILE in
 * the file system, no /proc), and nothing was left behind. */
static int write_tmpfile(int dfd, char *tmp, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
        char proc[64], *x = tmp + strlen(tmp) - 6;
        int r;

        if (fd < 0)
                return -errno;
        r = fill_file(fd, data, size, mode);
        if (r < 0)
                return r;
        (void) snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        for (unsigned i = 0; i < 16; i++) {
                uint8_t b[6];

                if (getrandom(b, sizeof(b), 0) != sizeof(b))
                        return -EIO;
                for (unsigned k = 0; k < 6; k++)
                        x[k] = "abcdefghijklmnopqrstuvwxyz0123456789"[b[k] % 36];
                if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) >= 0)
                        return 0;
                if (errno != EEXIST)
                        break;
        }
        r = -errno;
        memcpy(x, "XXXXXX", 6);
        return r;
}

/* The data goes into an unnamed file that gets a name only once it is complete and on disk, and is then
 * renamed over path; the directory is synced after. A crash at any point leaves the old file or the new one,
 * and no half-written temporary behind (except in the instant between naming and renaming). Where the file
 * system has no O_TMPFILE (or there is no /proc), a named temporary file does the same job. */
int crypto_write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int dfd = -EBADF;
        char *slash;
        int r;

        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
        else
                strcpy(dir, ".");
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
                return -ENOMEM;

        r = write_tmpfile(dfd, tmp, data, size, mode);
        if (r == -ENOSPC || r == -EIO || r == -EDQUOT)
                return r;
        if (r < 0) {
                _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);

                if (fd < 0)
                        return -errno;
                r = fill_file(fd, data, size, mode);
                if (r < 0) {
                        (void) unlink(tmp);
                        return r;
                }
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return fsync(dfd) < 0 ? -errno : 0;
}

int crypto_soft_key_save(gnutls_privkey_t k, const char *path) {
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t xk = NULL;
        gnutls_datum_t out = {};
        int r;

        r = gnutls_privkey_export_x509(k, &xk);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_x509_privkey_export2(xk, GNUTLS_X509_FMT_PEM, &out);
        if (r < 0)
                return crypto_errno(r);
        r = crypto_write_file_atomic(path, out.data, out.size, 0600);
        erase(out.data, out.size);
        gnutls_free(out.data);
        return r;
}

int crypto_soft_key_load(const char *path, gnutls_privkey_t *ret) {
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t xk = NULL;
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t k = NULL;
        _cleanup_secret_ char *pem = NULL;
        gnutls_datum_t d;
        size_t size;
        int r;

        r = crypto_read_file(path, true, &pem, &size);
        if (r < 0)
                return r;
        r = gnutls_x509_privkey_init(&xk);
        if (r < 0)
                return crypto_errno(r);
        d = (gnutls_datum_t) { (unsigned char *) pem, (unsigned) size };
        r = gnutls_x509_privkey_import(xk, &d, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return crypto_errno(r);
        if (gnutls_x509_privkey_get_pk_algorithm(xk) != GNUTLS_PK_ECDSA)
                return -EMEDIUMTYPE;
        r = gnutls_privkey_init(&k);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_privkey_import_x509(k, xk, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
        if (r < 0)
                return crypto_errno(r);
        xk = NULL; /* owned by k now */
        *ret = TAKE_PTR(k);
        return 0;
}

/* ---- software ECDH ---- */

static void mpz_to_be(uint8_t *dst, size_t n, const mpz_t z) {
        size_t count = 0;
        uint8_t tmp[64];

        memset(dst, 0, n);
        if (mpz_sizeinbase(z, 256) > sizeof(tmp))
                return;
        mpz_export(tmp, &count, 1, 1, 1, 0, z);
        if (count <= n)
                memcpy(dst + n - count, tmp, count);
        erase(tmp, sizeof(tmp));
}

int crypto_ecdh_soft(gnutls_privkey_t key, const Tpm2EccPoint *peer, uint8_t **ret_point) {
        _cleanup_(gnutls_datum_freep) gnutls_datum_t k = {};
        const struct ecc_curve *curve = nettle_get_secp_256r1();
        gnutls_ecc_curve_t c;
        struct ecc_scalar s;
        struct ecc_point p, res;
        mpz_t z, x, y;
        uint8_t *out = NULL;
        int r;

        r = gnutls_privkey_export_ecc_raw2(key, &c, NULL, NULL, &k, 0);
        if (r < 0)
                return crypto_errno(r);
        if (c != GNUTLS_ECC_CURVE_SECP256R1)
                return -EMEDIUMTYPE;

        mpz_inits(z, x, y, NULL);
        ecc_scalar_init(&s, curve);
        ecc_point_init(&p, curve);
        ecc_point_init(&res, curve);

        mpz_import(z, k.size, 1, 1, 1, 0, k.data);
        mpz_import(x, TPM2_ECC_P256_SIZE, 1, 1, 1, 0, peer->x);
        mpz_import(y, TPM2_ECC_P256_SIZE, 1, 1, 1, 0, peer->y);
        erase(k.data, k.size);
        if (!ecc_scalar_set(&s, z) || !ecc_point_set(&p, x, y)) {
                r = -EINVAL;
                goto finish;
        }
        ecc_point_mul(&res, &s, &p);
        ecc_point_get(&res, x, y);
        out = eve_secret_alloc(2 * TPM2_ECC_P256_SIZE);
        if (!out) {
                r = -ENOMEM;
                goto finish;
        }
        mpz_to_be(out, TPM2_ECC_P256_SIZE, x);
        mpz_to_be(out + TPM2_ECC_P256_SIZE, TPM2_ECC_P256_SIZE, y);
        *ret_point = out;
        r = 0;
finish:
        ecc_point_clear(&res);
        ecc_point_clear(&p);
        ecc_scalar_clear(&s);
        mpz_clears(z, x, y, NULL);
        return r;
}
