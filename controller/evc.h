/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc.h: the controller's one owning context (keys, certificates, store) and its entry points. */
#pragma once

#include <pthread.h>

#include "evc-crypto.h"
#include "evc-nonce.h"
#include "evc-store.h"

#define EVC_BODY_MAX_DEFAULT (256 * 1024)
#define EVC_NONCE_TTL_DEFAULT_MS 60000U
#define EVC_THREADS_DEFAULT 8U
#define EVC_THREADS_MAX 64U
#define EVC_TOKEN_SIZE 32
#define EVC_ESCROW_KEYS_MAX 16 /* escrow entries kept per device */
#define EVC_SHARES_MAX 16      /* controller shares kept per device */
#define EVC_STORE_KEYS_MAX (EVC_ESCROW_KEYS_MAX + EVC_SHARES_MAX)

/* A parsed certificate, shared (read-only) by the server threads; refcounted. */
typedef struct EvcCrt {
        unsigned n_ref;
        gnutls_x509_crt_t crt;
        gnutls_pubkey_t pub;
        uint8_t pem_hash[EVC_SHA256_SIZE];
} EvcCrt;
EvcCrt *evc_crt_ref(EvcCrt *c);
EvcCrt *evc_crt_unref(EvcCrt *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(EvcCrt *, evc_crt_unref);

#define EVC_CRT_CACHE_SLOTS 1024U
#define EVC_ECDH_CACHE_SLOTS 256U

/* One remembered ECDH key: tag = SHA-256(controller certHash ‖ SHA-256(device ECDH PEM)). */
typedef struct EvcEcdhSlot {
        uint8_t tag[EVC_SHA256_SIZE];
        uint8_t k[EVC_SHA256_SIZE];
        bool used;
} EvcEcdhSlot;

typedef struct Evc {
        char *dir;
        char *db_path;
        EvcStore *store; /* the admin commands' connection (and the server's before it starts threads) */
        bool threaded;   /* serving: every server thread has its own connection (evc_db()) */
        pthread_key_t db_tls;
        pthread_mutex_t write_lock; /* one write transaction at a time in this process */
        EvcNonces nonces;
        pthread_mutex_t crt_lock;
        EvcCrt *crt_cache[EVC_CRT_CACHE_SLOTS]; /* by SHA-256 of the PEM; a newcomer replaces the slot's
                                                   holder */
        pthread_mutex_t ecdh_lock;
        EvcEcdhSlot *ecdh_cache; /* EVC_ECDH_CACHE_SLOTS, secret memory */
        gnutls_x509_crt_t root_crt;
        uint8_t *tls_pem, *tls_key_pem;
        size_t tls_pem_size, tls_key_pem_size;
        pthread_mutex_t keys_lock;
        struct EvcKeys *keys;                  /* the current signing and shared ECDH pairs (evc-keys.h) */
        uint8_t *db_key;                       /* 32 bytes, secret memory: seals secrets in the store */
        unsigned nonce_ttl_ms;
        size_t body_max;
        unsigned threads;
} Evc;

/* Creates DIR with the root CA, signing, ECDH and TLS certificates, the key directory and the database. */
int evc_init_dir(const char *dir);
/* Loads an initialised DIR (opens and migrates the store). */
int evc_load(const char *dir, Evc **ret);
Evc *evc_free(Evc *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Evc *, evc_free);

/* The connection of the calling thread: e->store, or, once evc_db_threaded() was called, a connection of the
 * calling server thread's own, opened on first use (NULL if that fails). */
EvcStore *evc_db(Evc *e);
/* Switches e to one connection per thread (closed when the thread exits). */
int evc_db_threaded(Evc *e);

/* The HTTPS server; returns on SIGTERM/SIGINT. port_file, when set, receives the bound port. */
int evc_serve(Evc *e, const char *listen, const char *port_file);

/* The parsed form of a PEM certificate: from the cache when these exact bytes were parsed before (a device's
 * certificates are parsed once, not on every request). */
int evc_crt_get(Evc *e, const void *pem, size_t n, EvcCrt **ret);

/* K = SHA-256(X‖Y) of ECDH(ctrl_key, the device ECDH certificate dev_pem) (evc_ecdh_key()). The pair's K
 * never changes, so it is remembered (secret memory) instead of a point multiplication per use; ctrl_hash is
 * the certHash of ctrl_key's certificate. */
int evc_ecdh_device(
                Evc *e,
                gnutls_x509_privkey_t ctrl_key,
                const uint8_t ctrl_hash[static 16],
                const void *dev_pem,
                size_t n,
                uint8_t ret[static EVC_SHA256_SIZE]);

/* Device lookup by UUID, certificate-hash prefix or serial. Returns the row id, -ENOENT. */
int64_t evc_device_find(Evc *e, const char *what);
/* Adds a device from its certificate (pre-registration); returns the new UUID in ret_uuid. */
int evc_device_add(Evc *e, const char *cert_pem, size_t n, const char *serial, char **ret_uuid);
/* Invalidates the cached config of a device (after any change that affects it). */
int evc_config_invalidate(Evc *e, int64_t device_id);
/* Seals / unseals a secret value for the store under keys/db.key. */
int evc_secret_seal(Evc *e, const char *value, uint8_t **ret, size_t *ret_size);
int evc_secret_unseal(Evc *e, const uint8_t *sealed, size_t n, char **ret);
int evc_uuid_new(char ret[static 37]);
/* Checks the 8-4-4-4-12 hex form and writes it in lower case; -EINVAL otherwise. */
int evc_uuid_canonical(const char *s, char ret[static 37]);
int64_t evc_now_ms(void);
/* `evc upgrade expect --pcr N=HEX`: N in 0..23 (decimal digits only), HEX exactly 64 hex digits. -EINVAL. */
int evc_pcr_value_parse(const char *s, unsigned *ret_index, uint8_t ret_value[static 32]);
/* `evc config set KEY=VALUE`: KEY 1..128 of [A-Za-z0-9._-], VALUE at most 4096 bytes without control
 * characters (empty VALUE = remove the item). Returns the key's length and points ret_value into s. -EINVAL.
 */
int evc_config_item_parse(const char *s, size_t *ret_key_len, const char **ret_value);
