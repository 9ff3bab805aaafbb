/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* configd-cipher.h: EVE cipher blocks (facts/eve-api.md §1.6, §2.6), opened one at a time on request:
 * TPM2_ECDH_ZGen(device ECDH key 0x81001002, controller ECDH certificate named by the context's
 * controllerCertHash) → K = SHA-256(X‖Y) → AES-256-CFB128 with the block's 16-byte IV → SHA-256 of the
 * plaintext checked against clearTextSha256 → EncryptionBlock.
 *
 * Every way a block can be wrong is its own CipherFailure (and D-Bus error), counted under the wire
 * CipherError it maps to; the cheap checks run before the TPM is asked anything. The plaintext and the
 * EncryptionBlock live in secret memory only. */
#pragma once

#include <gnutls/abstract.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "evecommon.pb-c.h"
#include "macro.h"
#include "tpm2-util.h"

typedef Org__Lfedge__Eve__Common__CipherContext CipherContext;
typedef Org__Lfedge__Eve__Common__CipherBlock CipherBlock;
typedef Org__Lfedge__Eve__Common__EncryptionBlock EncryptionBlock;

#define CIPHER_IV_SIZE 16U
#define CIPHER_SHA256_SIZE 32U
/* A cipher block's ciphertext (and so its plaintext) is refused above this size. */
#define CIPHER_DATA_MAX (256U * 1024U)

/* metrics.proto CipherError: what the controller sees in CipherMetric.tc. */
typedef enum CipherError {
        CIPHER_ERROR_INVALID = 0,
        CIPHER_ERROR_NOT_READY = 1, /* no controller ECDH certificate (yet) */
        CIPHER_ERROR_DECRYPT_FAILED = 2,
        CIPHER_ERROR_UNMARSHAL_FAILED = 3,   /* plaintext is not a valid EncryptionBlock */
        CIPHER_ERROR_CLEARTEXT_FALLBACK = 4, /* cleartext used (no cipher block: the transition plan) */
        CIPHER_ERROR_MISSING_FALLBACK = 5,
        CIPHER_ERROR_NO_CIPHER = 6,
        CIPHER_ERROR_NO_DATA = 7, /* nothing to decrypt, or decrypted to nothing */
        _CIPHER_ERROR_MAX,
} CipherError;

const char *cipher_error_to_string(CipherError e);

/* Why a secret could not be delivered: each its own reason, D-Bus error and counter. */
typedef enum CipherFailure {
        CIPHER_FAILURE_NO_DATA,         /* the block carries no cipherData */
        CIPHER_FAILURE_BAD_IV,          /* initialValue is not 16 bytes */
        CIPHER_FAILURE_BAD_HASH_SIZE,   /* clearTextSha256 is not 32 bytes */
        CIPHER_FAILURE_TOO_LARGE,       /* cipherData larger than CIPHER_DATA_MAX */
        CIPHER_FAILURE_UNKNOWN_CONTEXT, /* cipherContextId empty or not among the config's cipherContexts */
        CIPHER_FAILURE_SCHEME,          /* the context is not KEA_ECDH + SA_AES_256_CFB */
        CIPHER_FAILURE_DEVICE_CERT,     /* deviceCertHash is not this node's ECDH certificate */
        CIPHER_FAILURE_UNKNOWN_CERT, /* no controller ECDH certificate with controllerCertHash on the node */
        CIPHER_FAILURE_BAD_CERT,     /* that certificate does not match its hash or chain to the root CA */
        CIPHER_FAILURE_KEY,          /* TPM2_ECDH_ZGen (or the software ECDH key) failed */
        CIPHER_FAILURE_HASH_MISMATCH,   /* SHA-256 of the plaintext differs from clearTextSha256 */
        CIPHER_FAILURE_MALFORMED_BLOCK, /* the plaintext is not an EncryptionBlock */
        CIPHER_FAILURE_EMPTY,           /* the EncryptionBlock holds nothing for this secret */
        _CIPHER_FAILURE_MAX,
        _CIPHER_FAILURE_INVALID = -EINVAL,
} CipherFailure;

/* "bad-iv", … (for logs, metrics and evectl). */
const char *cipher_failure_to_string(CipherFailure f);
/* "org.eve.Config.Error.BadIV", … */
const char *cipher_failure_to_bus_error(CipherFailure f);
/* A sentence for people (D-Bus error message, info report). */
const char *cipher_failure_to_message(CipherFailure f);
CipherError cipher_failure_to_cipher_error(CipherFailure f);

/* The node's side of the key agreement: the ECDH key in the TPM, or (no-TPM nodes, as eve-tpm-setup makes
 * them) the software key $EVE_CERTS_DIR/ecdh.key.pem, and the certHash of $EVE_CERTS_DIR/ecdh.cert.pem that
 * contexts must name in deviceCertHash. */
/* A controller ECDH certificate verified once (hash, chain), remembered with the identity of its file and of
 * the root CA file: a changed file is verified again. */
#define CIPHER_CERT_CACHE 8U
typedef struct CipherCertCache {
        uint8_t hash[16];
        bool valid;
        struct stat cert_st, root_st;
        Tpm2EccPoint point;
} CipherCertCache;

typedef struct CipherKey {
        char *tcti; /* NULL: eve_tcti() */
        CipherCertCache certs[CIPHER_CERT_CACHE];
        unsigned next_cert;
        Tpm2Context *tpm;      /* opened on first use, until cipher_key_close_tpm() or a failure; keeps
                                * the ECDH key handle and its salted session (one command per ZGen) */
        gnutls_privkey_t soft; /* set: software key, no TPM */
        uint8_t device_cert_hash[16];
} CipherKey;

/* Loads the device ECDH certificate's hash and picks the key: the software key when ecdh.key.pem exists
 * (EVE's rule), else the TPM through tcti (NULL = eve_tcti()), opened when first needed. -ENOENT when there
 * is no ECDH certificate (eve-tpm-setup has not run). */
int cipher_key_load(const char *tcti, CipherKey **ret);
/* Closes the TPM connection (a TPM without resource manager, like swtpm, serves one connection at a time)
 * and flushes the kept ZGen session, which holds one of the TPM's session slots. */
void cipher_key_close_tpm(CipherKey *k);
CipherKey *cipher_key_free(CipherKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(CipherKey *, cipher_key_free);

/* Pure: AES-256-CFB128 with K = SHA-256(point) and the check against clearTextSha256. point is x‖y, 64
 * bytes (what ZGen returns). Output in secret memory (eve_secret_free), *ret_size may be 0. Failures:
 * CIPHER_FAILURE_BAD_IV, _BAD_HASH_SIZE, _NO_DATA, _TOO_LARGE, _HASH_MISMATCH (returned as -EBADMSG with
 * *ret_failure set), -ENOMEM. */
int cipher_block_open_with_point(
                const uint8_t point[static 2 * TPM2_ECC_P256_SIZE],
                const CipherBlock *b,
                uint8_t **ret,
                size_t *ret_size,
                CipherFailure *ret_failure);

/* Checks the block's shape (no key needed): the failures above that need no key. 0 or -EBADMSG. */
int cipher_block_check(const CipherBlock *b, CipherFailure *ret_failure);

/* The whole path: finds the block's context among contexts, checks it, finds the controller certificate,
 * runs ZGen, decrypts, checks, unpacks the EncryptionBlock into secret memory (proto_secret_free).
 * -EBADMSG with *ret_failure for every CipherFailure; -ENOMEM. */
int cipher_block_decrypt(
                CipherKey *key,
                CipherContext *const *contexts,
                size_t n_contexts,
                const CipherBlock *b,
                EncryptionBlock **ret,
                CipherFailure *ret_failure);
