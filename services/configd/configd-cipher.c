/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "configd-cipher.h"

#include <nettle/sha2.h>

#include "controller-certs.h"
#include "crypto-util.h"
#include "log.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"

#define ECDH_CERT_FILE "ecdh.cert.pem"
#define ECDH_KEY_FILE "ecdh.key.pem"

static const char *const cipher_error_names[_CIPHER_ERROR_MAX] = {
        [CIPHER_ERROR_INVALID] = "invalid",
        [CIPHER_ERROR_NOT_READY] = "not-ready",
        [CIPHER_ERROR_DECRYPT_FAILED] = "decrypt-failed",
        [CIPHER_ERROR_UNMARSHAL_FAILED] = "unmarshal-failed",
        [CIPHER_ERROR_CLEARTEXT_FALLBACK] = "cleartext-fallback",
        [CIPHER_ERROR_MISSING_FALLBACK] = "missing-fallback",
        [CIPHER_ERROR_NO_CIPHER] = "no-cipher",
        [CIPHER_ERROR_NO_DATA] = "no-data",
};

const char *cipher_error_to_string(CipherError e) {
        return e >= 0 && e < _CIPHER_ERROR_MAX ? cipher_error_names[e] : NULL;
}

static const struct {
        const char *name;
        const char *bus_error;
        const char *message;
        CipherError error;
} failures[_CIPHER_FAILURE_MAX] = {
        [CIPHER_FAILURE_NO_DATA] = { "no-data",
                                     "org.eve.Config.Error.NoData",
                                     "The cipher block carries no data.",
                                     CIPHER_ERROR_NO_DATA },
        [CIPHER_FAILURE_BAD_IV] = { "bad-iv",
                                    "org.eve.Config.Error.BadIV",
                                    "The cipher block's initial value is not 16 bytes.",
                                    CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_BAD_HASH_SIZE] = { "bad-hash-size",
                                           "org.eve.Config.Error.BadHashSize",
                                           "The cipher block's clearTextSha256 is not 32 bytes.",
                                           CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_TOO_LARGE] = { "too-large",
                                       "org.eve.Config.Error.TooLarge",
                                       "The cipher block is larger than 256 KiB.",
                                       CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_UNKNOWN_CONTEXT] = { "unknown-context",
                                             "org.eve.Config.Error.UnknownContext",
                                             "The cipher block names no cipher context of the "
                                             "configuration.",
                                             CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_SCHEME] = { "unsupported-scheme",
                                    "org.eve.Config.Error.UnsupportedScheme",
                                    "The cipher context is not ECDH with AES-256-CFB.",
                                    CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_DEVICE_CERT] = { "device-cert-mismatch",
                                         "org.eve.Config.Error.DeviceCertMismatch",
                                         "The cipher context names another device ECDH certificate.",
                                         CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_UNKNOWN_CERT] = { "unknown-certificate",
                                          "org.eve.Config.Error.UnknownCertificate",
                                          "The controller ECDH certificate the cipher context names is not "
                                          "on "
                                          "this node.",
                                          CIPHER_ERROR_NOT_READY },
        [CIPHER_FAILURE_BAD_CERT] = { "bad-certificate",
                                      "org.eve.Config.Error.BadCertificate",
                                      "The controller ECDH certificate does not match its hash or does not "
                                      "chain "
                                      "to the controller root CA.",
                                      CIPHER_ERROR_NOT_READY },
        [CIPHER_FAILURE_KEY] = { "key-agreement-failed",
                                 "org.eve.Config.Error.KeyAgreementFailed",
                                 "The device ECDH key could not compute the shared secret.",
                                 CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_HASH_MISMATCH] = { "hash-mismatch",
                                           "org.eve.Config.Error.HashMismatch",
                                           "The decrypted data does not match clearTextSha256.",
                                           CIPHER_ERROR_DECRYPT_FAILED },
        [CIPHER_FAILURE_MALFORMED_BLOCK] = { "malformed-encryption-block",
                                             "org.eve.Config.Error.MalformedEncryptionBlock",
                                             "The decrypted data is not an EncryptionBlock.",
                                             CIPHER_ERROR_UNMARSHAL_FAILED },
        [CIPHER_FAILURE_EMPTY] = { "empty-secret",
                                   "org.eve.Config.Error.EmptySecret",
                                   "The EncryptionBlock holds nothing for this secret.",
                                   CIPHER_ERROR_NO_DATA },
};

const char *cipher_failure_to_string(CipherFailure f) {
        return f >= 0 && f < _CIPHER_FAILURE_MAX ? failures[f].name : NULL;
}
const char *cipher_failure_to_bus_error(CipherFailure f) {
        return f >= 0 && f < _CIPHER_FAILURE_MAX ? failures[f].bus_error : NULL;
}
const char *cipher_failure_to_message(CipherFailure f) {
        return f >= 0 && f < _CIPHER_FAILURE_MAX ? failures[f].message : NULL;
}
CipherError cipher_failure_to_cipher_error(CipherFailure f) {
        return f >= 0 && f < _CIPHER_FAILURE_MAX ? failures[f].error : CIPHER_ERROR_INVALID;
}

#define FAIL(f)                     \
        ({                          \
                *ret_failure = (f); \
                -EBADMSG;           \
        })

int cipher_key_load(const char *tcti, CipherKey **ret) {
        _cleanup_(cipher_key_freep) CipherKey *k = NULL;
        _cleanup_free_ char *cert = NULL, *key = NULL, *pem = NULL;
        size_t size;
        int r;

        cert = eve_path_join(EVE_PATH_CERTS, ECDH_CERT_FILE);
        key = eve_path_join(EVE_PATH_CERTS, ECDH_KEY_FILE);
        k = calloc(1, sizeof *k);
        if (!cert || !key || !k)
                return -ENOMEM;

        r = crypto_read_file(cert, /* secure= */ false, &pem, &size);
        if (r < 0)
                return log_debug_errno(r, "Cannot read the device ECDH certificate %s: %m", cert);
        crypto_cert_hash_pem16(pem, size, k->device_cert_hash);

        if (access(key, F_OK) >= 0) {
                r = crypto_soft_key_load(key, &k->soft);
                if (r < 0)
                        return log_debug_errno(r, "Cannot load the software ECDH key %s: %m", key);
        } else if (tcti && !(k->tcti = strdup(tcti)))
                return -ENOMEM;
        *ret = TAKE_PTR(k);
        return 0;
}

void cipher_key_close_tpm(CipherKey *k) {
        if (k)
                k->tpm = tpm2_context_unref(k->tpm);
}

CipherKey *cipher_key_free(CipherKey *k) {
        if (!k)
                return NULL;
        tpm2_context_unref(k->tpm);
        free(k->tcti);
        if (k->soft)
                gnutls_privkey_deinit(k->soft);
        free(k);
        return NULL;
}

int cipher_block_check(const CipherBlock *b, CipherFailure *ret_failure) {
        if (b->cipherdata.len == 0)
                return FAIL(CIPHER_FAILURE_NO_DATA);
        if (b->cipherdata.len > CIPHER_DATA_MAX)
                return FAIL(CIPHER_FAILURE_TOO_LARGE);
        if (b->initialvalue.len != CIPHER_IV_SIZE)
                return FAIL(CIPHER_FAILURE_BAD_IV);
        if (b->cleartextsha256.len != CIPHER_SHA256_SIZE)
                return FAIL(CIPHER_FAILURE_BAD_HASH_SIZE);
        return 0;
}

int cipher_block_open_with_point(
                const uint8_t point[static 2 * TPM2_ECC_P256_SIZE],
                const CipherBlock *b,
                uint8_t **ret,
                size_t *ret_size,
                CipherFailure *ret_failure) {

        uint8_t key[SHA256_DIGEST_SIZE], digest[SHA256_DIGEST_SIZE];
        CLEANUP_ERASE(key);
        CLEANUP_ERASE(digest);
        struct sha256_ctx h;
        uint8_t *p;
        int r;

        r = cipher_block_check(b, ret_failure);
        if (r < 0)
                return r;

        /* The KDF EVE uses: SHA-256 over both coordinates of the shared point, each 32 bytes. */
        sha256_init(&h);
        sha256_update(&h, 2 * TPM2_ECC_P256_SIZE, point);
        sha256_digest(&h, sizeof key, key);

        p = eve_secret_alloc(b->cipherdata.len + 1); /* + 1: the plaintext may be used as a C string */
        if (!p)
                return -ENOMEM;
        memcpy(p, b->cipherdata.data, b->cipherdata.len);
        crypto_aes256_cfb_decrypt(key, b->initialvalue.data, p, b->cipherdata.len);

        sha256_init(&h);
        sha256_update(&h, b->cipherdata.len, p);
        sha256_digest(&h, sizeof digest, digest);
        erase(&h, sizeof h);
        if (!memeq_secure(digest, b->cleartextsha256.data, sizeof digest)) {
                eve_secret_free(p);
                return FAIL(CIPHER_FAILURE_HASH_MISMATCH);
        }
        *ret = p;
        *ret_size = b->cipherdata.len;
        return 0;
}

static const CipherContext *find_context(CipherContext *const *contexts, size_t n, const char *id) {
        if (isempty(id))
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (contexts[i] && streq_ptr(contexts[i]->contextid, id))
                        return contexts[i];
        return NULL;
}

static bool same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
                        a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int cert_files_stat(const uint8_t hash[static 16], struct stat *ret_cert, struct stat *ret_root) {
        _cleanup_free_ char *cert = controller_cert_path(CONTROLLER_CERT_ECDH, hash),
                            *root = eve_path_join(EVE_PATH_CONFIG, "root-certificate.pem");

        if (!cert || !root)
                return -ENOMEM;
        if (stat(cert, ret_cert) < 0 || stat(root, ret_root) < 0)
                return -errno;
        return 0;
}

/* The controller's ECDH public point for the context: from the cache when neither the certificate file nor
 * the root CA changed since it was verified, else looked up and verified (controller_cert_find). */
static int controller_point(
                CipherKey *key, const CipherContext *ctx, Tpm2EccPoint *ret, CipherFailure *ret_failure) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        const uint8_t *hash = ctx->controllercerthash.data;
        const char *reason = NULL;
        struct stat cert_st, root_st;
        CipherCertCache *slot;
        bool have_st;
        int r;

        have_st = ctx->controllercerthash.len >= 16 && cert_files_stat(hash, &cert_st, &root_st) >= 0;
        for (unsigned i = 0; have_st && ctx->controllercerthash.len == 16 && i < CIPHER_CERT_CACHE; i++) {
                CipherCertCache *c = &key->certs[i];
                if (c->valid && memcmp(c->hash, hash, 16) == 0 && same_file(&c->cert_st, &cert_st) &&
                    same_file(&c->root_st, &root_st)) {
                        *ret = c->point;
                        return 0;
                }
        }

        r = controller_cert_find(
                        CONTROLLER_CERT_ECDH,
                        ctx->controllercerthash.data,
                        ctx->controllercerthash.len,
                        &crt,
                        &reason);
        if (r == -ENOMEM)
                return r;
        if (r == -ENOENT || r == -EINVAL) {
                log_debug("Cipher context %s: %s", ctx->contextid, reason ?: "no certificate");
                return FAIL(CIPHER_FAILURE_UNKNOWN_CERT);
        }
        if (r < 0) {
                log_warning("Cipher context %s: %s.",
                            ctx->contextid,
                            reason ?: "bad controller certificate");
                return FAIL(CIPHER_FAILURE_BAD_CERT);
        }
        r = crypto_cert_point(crt, ret);
        if (r < 0) {
                log_warning_errno(
                                r,
                                "Controller ECDH certificate of context %s is not P-256: %m",
                                ctx->contextid);
                return FAIL(CIPHER_FAILURE_BAD_CERT);
        }
        if (have_st && ctx->controllercerthash.len == 16) {
                slot = &key->certs[key->next_cert++ % CIPHER_CERT_CACHE];
                *slot = (CipherCertCache){
                        .valid = true, .cert_st = cert_st, .root_st = root_st, .point = *ret
                };
                memcpy(slot->hash, hash, 16);
        }
        return 0;
}

static int shared_point(
                CipherKey *key, const CipherContext *ctx, uint8_t **ret_point, CipherFailure *ret_failure) {

        Tpm2EccPoint peer;
        int r;

        r = controller_point(key, ctx, &peer, ret_failure);
        if (r < 0)
                return r;

        if (key->soft)
                r = crypto_ecdh_soft(key->soft, &peer, ret_point);
        else {
                if (!key->tpm) {
                        r = tpm2_context_new(key->tcti, &key->tpm);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                log_warning_errno(
                                                r, "Cannot open the TPM (%s): %m", key->tcti ?: eve_tcti());
                                return FAIL(CIPHER_FAILURE_KEY);
                        }
                        /* A burst of requests then costs one TPM command each (ECDH_ZGen); the session
                         * goes with the context (cipher_key_close_tpm, when idle). */
                        tpm2_context_keep_ecdh_session(key->tpm, true);
                }
                r = tpm2_ecdh_zgen(key->tpm, &peer, ret_point);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_warning_errno(
                                r,
                                "Key agreement for cipher context %s failed: %s",
                                ctx->contextid,
                                key->tpm ? tpm2_context_last_error(key->tpm) : "software key");
                /* The next request opens the TPM again (a TPM connection that broke stays broken). */
                cipher_key_close_tpm(key);
                return FAIL(CIPHER_FAILURE_KEY);
        }
        return 0;
}

int cipher_block_decrypt(
                CipherKey *key,
                CipherContext *const *contexts,
                size_t n_contexts,
                const CipherBlock *b,
                EncryptionBlock **ret,
                CipherFailure *ret_failure) {

        _cleanup_secret_ uint8_t *point = NULL, *plain = NULL;
        _cleanup_(proto_secret_freep) EncryptionBlock *eb = NULL;
        const CipherContext *ctx;
        size_t size;
        int r;

        r = cipher_block_check(b, ret_failure);
        if (r < 0)
                return r;
        ctx = find_context(contexts, n_contexts, b->ciphercontextid);
        if (!ctx)
                return FAIL(CIPHER_FAILURE_UNKNOWN_CONTEXT);
        if (ctx->keyexchangescheme != ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH ||
            ctx->encryptionscheme != ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB)
                return FAIL(CIPHER_FAILURE_SCHEME);
        /* EVE sends (and keys contexts by) 16 bytes; a longer hash must start with ours. */
        if (ctx->devicecerthash.len < sizeof key->device_cert_hash ||
            memcmp(ctx->devicecerthash.data, key->device_cert_hash, sizeof key->device_cert_hash) != 0)
                return FAIL(CIPHER_FAILURE_DEVICE_CERT);

        r = shared_point(key, ctx, &point, ret_failure);
        if (r < 0)
                return r;
        r = cipher_block_open_with_point(point, b, &plain, &size, ret_failure);
        if (r < 0)
                return r;
        point = eve_secret_free(point);

        r = PROTO_UNPACK_SECRET(
                        &org__lfedge__eve__common__encryption_block__descriptor,
                        plain,
                        size,
                        CIPHER_DATA_MAX,
                        &eb);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return FAIL(CIPHER_FAILURE_MALFORMED_BLOCK);
        *ret = TAKE_PTR(eb);
        return 0;
}
