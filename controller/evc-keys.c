/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-keys.h"

#include <time.h>

#include "log.h"
#include "memory-util.h"

#define KEY_AD "evc controller key v1" /* followed by the SHA-256 of the pair's certificate */
#define ECDH_WHERE_SHARED "kind = 'ecdh' AND device_id IS NULL AND retired IS NULL"

void evc_pair_done(EvcPair *p) {
        free(p->pem);
        if (p->key)
                gnutls_x509_privkey_deinit(p->key);
        *p = (EvcPair){};
}

/* ---- private keys, sealed under keys/db.key ---- */

static int
                key_ad(const uint8_t cert_hash[static EVC_SHA256_SIZE],
                       uint8_t ad[static sizeof KEY_AD + EVC_SHA256_SIZE]) {
        memcpy(ad, KEY_AD, sizeof KEY_AD);
        memcpy(ad + sizeof KEY_AD, cert_hash, EVC_SHA256_SIZE);
        return sizeof KEY_AD + EVC_SHA256_SIZE;
}

static int seal_key(Evc *e, const EvcPair *p, uint8_t **ret, size_t *ret_size) {
        _cleanup_datum_ gnutls_datum_t pem = {};
        uint8_t ad[sizeof KEY_AD + EVC_SHA256_SIZE];
        int r;

        if (gnutls_x509_privkey_export2(p->key, GNUTLS_X509_FMT_PEM, &pem) < 0)
                return -EIO;
        r = evc_aead_seal_ad(e->db_key, ad, (size_t) key_ad(p->hash, ad), pem.data, pem.size, ret, ret_size);
        erase(pem.data, pem.size);
        return r;
}

static int
                unseal_key(Evc *e,
                           const void *sealed,
                           size_t n,
                           const uint8_t cert_hash[static EVC_SHA256_SIZE],
                           gnutls_x509_privkey_t *ret) {
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t key = NULL;
        _cleanup_(eve_secret_freep) uint8_t *pem = NULL;
        uint8_t ad[sizeof KEY_AD + EVC_SHA256_SIZE];
        gnutls_datum_t d;
        size_t m;
        int r;

        r = evc_aead_open_ad(e->db_key, ad, (size_t) key_ad(cert_hash, ad), sealed, n, &pem, &m);
        if (r < 0)
                return log_error_errno(r, "A controller key does not open (wrong keys/db.key?).");
        if (gnutls_x509_privkey_init(&key) < 0)
                return -ENOMEM;
        d = (gnutls_datum_t){ .data = pem, .size = (unsigned) m };
        if (gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM) < 0)
                return -EBADMSG;
        *ret = TAKE_PTR(key);
        return 0;
}

/* ---- pairs ---- */

static int pair_from(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, EvcPair *ret) {
        _cleanup_datum_ gnutls_datum_t pem = {};

        if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) < 0)
                return -EIO;
        ret->pem = malloc(pem.size);
        if (!ret->pem)
                return -ENOMEM;
        memcpy(ret->pem, pem.data, pem.size);
        ret->pem_size = pem.size;
        evc_sha256(ret->pem, ret->pem_size, ret->hash);
        ret->key = key;
        return 0;
}

/* A new pair whose certificate the controller root issues. */
static int pair_new(Evc *e, EvcCertKind kind, const char *cn, EvcPair *ret) {
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t root_key = NULL, key = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/keys/root-key.pem", e->dir) < 0)
                return -ENOMEM;
        r = evc_load_key_file(path, &root_key);
        if (r < 0)
                return log_error_errno(r, "Failed to load %s: %m", path);
        r = evc_generate_cert(kind, cn, e->root_crt, root_key, NULL, NULL, &crt, &key);
        if (r < 0)
                return r;
        r = pair_from(crt, key, ret);
        if (r < 0)
                return r;
        TAKE_PTR(key);
        return 0;
}

/* Inside the caller's transaction. */
static int pair_insert(Evc *e, const char *kind, int64_t device_id, EvcPair *p) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        EvcStore *db = evc_db(e);
        size_t sealed_size;
        int r;

        r = seal_key(e, p, &sealed, &sealed_size);
        if (r < 0)
                return r;
        r = evc_prepare(db,
                        "INSERT INTO ckeys (kind, device_id, cert_pem, cert_hash, key_sealed, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        if (device_id > 0)
                sqlite3_bind_int64(st, 2, device_id);
        sqlite3_bind_text(st, 3, (const char *) p->pem, (int) p->pem_size, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, p->hash, EVC_SHA256_SIZE, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 5, sealed, (int) sealed_size, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, (int64_t) time(NULL));
        r = evc_step_done(db, st);
        if (r < 0)
                return r;
        p->id = sqlite3_last_insert_rowid(db->db);
        return 0;
}

/* Loads a row (id, cert_pem, cert_hash, key_sealed). */
static int pair_load(Evc *e, sqlite3_stmt *st, bool want_key, EvcPair *ret) {
        EvcPair p = {};
        int r;

        p.id = sqlite3_column_int64(st, 0);
        r = evc_column_blob(st, 1, &p.pem, &p.pem_size);
        if (r < 0)
                return r;
        if (sqlite3_column_bytes(st, 2) != EVC_SHA256_SIZE || !p.pem) {
                evc_pair_done(&p);
                return -EBADMSG;
        }
        memcpy(p.hash, sqlite3_column_blob(st, 2), EVC_SHA256_SIZE);
        if (want_key) {
                if (sqlite3_column_type(st, 3) == SQLITE_NULL)
                        r = -ENOKEY;
                else
                        r = unseal_key(e,
                                       sqlite3_column_blob(st, 3),
                                       (size_t) sqlite3_column_bytes(st, 3),
                                       p.hash,
                                       &p.key);
                if (r < 0) {
                        evc_pair_done(&p);
                        return r;
                }
        }
        *ret = p;
        return 0;
}

/* The current pair matching where (a condition on ckeys); -ENOENT when there is none. */
static int pair_current(Evc *e, const char *where, int64_t device_id, bool want_key, EvcPair *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        int r;

        if (asprintf(&sql, "SELECT id, cert_pem, cert_hash, key_sealed FROM ckeys WHERE %s", where) < 0)
                return -ENOMEM;
        r = evc_prepare(evc_db(e), sql, &st);
        if (r < 0)
                return r;
        if (device_id > 0)
                sqlite3_bind_int64(st, 1, device_id);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        return pair_load(e, st, want_key, ret);
}

/* ---- settings ---- */

static int setting_get(Evc *e, const char *key, char **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(evc_db(e), "SELECT value FROM settings WHERE key = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        *ret = evc_column_strdup(st, 0);
        return *ret ? 0 : -ENOMEM;
}

static int setting_set(Evc *e, const char *key, const char *value) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(evc_db(e), "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
        return evc_step_done(evc_db(e), st);
}

static int64_t epoch_get(Evc *e) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        /* On every request: one cached statement, no copies. */
        if (evc_prepare(evc_db(e),
                        "SELECT CAST(value AS INTEGER) FROM settings WHERE key = 'keys_epoch'",
                        &st) < 0 ||
            sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        return sqlite3_column_int64(st, 0);
}

/* A key changed: the server threads load the new set on their next request. Inside the caller's transaction.
 */
static int epoch_bump(Evc *e) {
        return evc_exec(evc_db(e),
                        "UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key = 'keys_epoch'");
}

/* Runs an UPDATE whose condition is where (which may name the device as ?1). */
static int update_where(Evc *e, const char *update, const char *where, int64_t device_id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        int r;

        if (asprintf(&sql, "%s WHERE %s", update, where) < 0)
                return -ENOMEM;
        r = evc_prepare(evc_db(e), sql, &st);
        if (r < 0)
                return r;
        if (device_id > 0)
                sqlite3_bind_int64(st, 1, device_id);
        return evc_step_done(evc_db(e), st);
}

static int configs_invalidate(Evc *e, const char *where, int64_t device_id) {
        return update_where(
                        e,
                        "UPDATE devices SET config_cache = NULL, config_hash = NULL, "
                        "config_version = config_version + 1",
                        where,
                        device_id);
}

/* The private key goes at once; the certificate row stays for /certs and the record. */
static int retire(Evc *e, const char *where, int64_t device_id) {
        return update_where(
                        e,
                        "UPDATE ckeys SET retired = strftime('%s', 'now'), key_sealed = NULL",
                        where,
                        device_id);
}

/* ---- the current set ---- */

EvcKeys *evc_keys_unref(EvcKeys *k) {
        if (!k || __atomic_sub_fetch(&k->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        if (k->signer)
                gnutls_privkey_deinit(k->signer);
        evc_pair_done(&k->signing);
        evc_pair_done(&k->ecdh);
        return mfree(k);
}

static int keys_load(Evc *e, int64_t epoch, EvcKeys **ret) {
        _cleanup_(evc_keys_unrefp) EvcKeys *k = NULL;
        _cleanup_free_ char *scope = NULL;
        int r;

        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        k->n_ref = 1;
        k->epoch = epoch;
        if (setting_get(e, "ecdh_scope", &scope) >= 0)
                k->per_device = streq(scope, "per-device");
        r =
                        pair_current(e,
                                     "kind = 'signing' AND device_id IS NULL AND retired IS NULL",
                                     0,
                                     true,
                                     &k->signing);
        if (r >= 0)
                r = pair_current(e, ECDH_WHERE_SHARED, 0, true, &k->ecdh);
        if (r < 0)
                return log_error_errno(r, "Failed to load the controller keys: %m");
        if (gnutls_privkey_init(&k->signer) < 0 ||
            gnutls_privkey_import_x509(k->signer, k->signing.key, 0) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(k);
        return 0;
}

int evc_keys_get(Evc *e, EvcKeys **ret) {
        EvcKeys *k = NULL, *old = NULL;
        int64_t epoch;
        int r;

        for (int attempt = 0;; attempt++) {
                epoch = epoch_get(e);
                if (epoch < 0)
                        return (int) epoch;
                pthread_mutex_lock(&e->keys_lock);
                if (e->keys && e->keys->epoch == epoch) {
                        k = e->keys;
                        __atomic_add_fetch(&k->n_ref, 1, __ATOMIC_RELAXED);
                }
                pthread_mutex_unlock(&e->keys_lock);
                if (k) {
                        *ret = k;
                        return 0;
                }
                r = keys_load(e, epoch, &k);
                if (r < 0)
                        return r;
                /* An admin command may have changed the keys while they were read: read them again. */
                if (epoch_get(e) == epoch || attempt >= 3)
                        break;
                k = evc_keys_unref(k);
        }
        pthread_mutex_lock(&e->keys_lock);
        if (!e->keys || e->keys->epoch < k->epoch) {
                old = e->keys;
                e->keys = k;
        }
        __atomic_add_fetch(&e->keys->n_ref, 1, __ATOMIC_RELAXED);
        *ret = e->keys;
        pthread_mutex_unlock(&e->keys_lock);
        if (*ret != k)
                evc_keys_unref(k);
        evc_keys_unref(old);
        return 0;
}

/* ---- a new directory, or one from an older evc ---- */

static int legacy_pair(Evc *e, const char *name, EvcPair *ret, char **ret_cert, char **ret_key) {
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t key = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ char *c = NULL, *k = NULL;
        int r;

        if (asprintf(&c, "%s/certs/%s.pem", e->dir, name) < 0 ||
            asprintf(&k, "%s/keys/%s-key.pem", e->dir, name) < 0)
                return -ENOMEM;
        if (access(c, F_OK) < 0 || access(k, F_OK) < 0)
                return -ENOENT;
        r = evc_load_crt_file(c, &crt);
        if (r < 0)
                return log_error_errno(r, "Failed to load %s: %m", c);
        r = evc_load_key_file(k, &key);
        if (r < 0)
                return log_error_errno(r, "Failed to load %s: %m", k);
        r = pair_from(crt, key, ret);
        if (r < 0)
                return r;
        TAKE_PTR(key);
        *ret_cert = TAKE_PTR(c);
        *ret_key = TAKE_PTR(k);
        return 0;
}

int evc_keys_ensure(Evc *e) {
        static const struct {
                const char *kind, *legacy, *cn;
                EvcCertKind cert;
        } pairs[] = {
                { "signing", "signing", "evc signing", EVC_CERT_SIGNING },
                { "ecdh", "ecdh", "evc ecdh", EVC_CERT_ECDH },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
                _cleanup_(evc_pair_done) EvcPair p = {}, have = {};
                _cleanup_free_ char *where = NULL, *legacy_cert = NULL, *legacy_key = NULL;

                if (asprintf(&where,
                             "kind = '%s' AND device_id IS NULL AND retired IS NULL",
                             pairs[i].kind) < 0)
                        return -ENOMEM;
                r = pair_current(e, where, 0, false, &have);
                if (r != -ENOENT)
                        continue;
                r = legacy_pair(e, pairs[i].legacy, &p, &legacy_cert, &legacy_key);
                if (r == -ENOENT)
                        r = pair_new(e, pairs[i].cert, pairs[i].cn, &p);
                if (r < 0)
                        return r;
                r = evc_tx_begin(evc_db(e));
                if (r < 0)
                        return r;
                if (pair_current(e, where, 0, false, &have) == -ENOENT) {
                        if ((r = pair_insert(e, pairs[i].kind, 0, &p)) < 0 || (r = epoch_bump(e)) < 0 ||
                            (r = evc_event(evc_db(e),
                                           0,
                                           legacy_cert ? "controller key imported from the key directory"
                                                       : "controller key created")) < 0) {
                                evc_tx_rollback(evc_db(e));
                                return r;
                        }
                }
                r = evc_tx_commit(evc_db(e));
                if (r < 0) {
                        evc_tx_rollback(evc_db(e));
                        return r;
                }
                if (legacy_key) {
                        /* The database holds it now (sealed): no second copy in the clear. */
                        (void) unlink(legacy_key);
                        (void) unlink(legacy_cert);
                        log_info("Moved the %s pair of %s into the database.", pairs[i].kind, e->dir);
                }
        }
        return 0;
}

/* ---- per device ---- */

static int device_pair_create(Evc *e, int64_t device_id) {
        _cleanup_(evc_pair_done) EvcPair p = {}, have = {};
        int r;

        r = pair_new(e, EVC_CERT_ECDH, "evc ecdh (device)", &p);
        if (r < 0)
                return r;
        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return r;
        /* Another thread may have made it meanwhile. */
        if (pair_current(e,
                         "kind = 'ecdh' AND device_id = ?1 AND retired IS NULL",
                         device_id,
                         false,
                         &have) == -ENOENT) {
                if ((r = pair_insert(e, "ecdh", device_id, &p)) < 0 ||
                    (r = configs_invalidate(e, "id = ?1", device_id)) < 0 ||
                    (r = evc_event(evc_db(e), device_id, "controller ECDH pair of its own created")) < 0) {
                        evc_tx_rollback(evc_db(e));
                        return r;
                }
        }
        r = evc_tx_commit(evc_db(e));
        if (r < 0)
                evc_tx_rollback(evc_db(e));
        return r;
}

int evc_keys_device_ecdh(
                Evc *e,
                EvcKeys *keys,
                int64_t device_id,
                const void *dev_pem,
                size_t n,
                EvcDeviceEcdh *ret) {
        _cleanup_(evc_pair_done) EvcPair own = {};
        bool has_own = false;
        int r;

        for (int attempt = 0; attempt < 2; attempt++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                /* Which pair (id and certificate hash only: on every quote of a device with shares). */
                r = evc_prepare(evc_db(e),
                                "SELECT id, cert_hash FROM ckeys WHERE kind = 'ecdh' AND device_id = ? AND "
                                "retired IS NULL",
                                &st);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(st, 1, device_id);
                has_own = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == EVC_SHA256_SIZE;
                if (has_own) {
                        ret->id = sqlite3_column_int64(st, 0);
                        memcpy(ret->hash, sqlite3_column_blob(st, 1), EVC_SHA256_SIZE);
                        break;
                }
                if (!keys->per_device || attempt > 0)
                        break;
                r = device_pair_create(e, device_id);
                if (r < 0)
                        return r;
        }
        if (!has_own) {
                ret->id = keys->ecdh.id;
                memcpy(ret->hash, keys->ecdh.hash, EVC_SHA256_SIZE);
        }
        /* Remembered K first; the private key is only needed (unsealed) when it is not. */
        r = evc_ecdh_device(e, NULL, ret->hash, dev_pem, n, ret->k);
        if (r != -ENOKEY)
                return r;
        if (!has_own)
                return evc_ecdh_device(e, keys->ecdh.key, ret->hash, dev_pem, n, ret->k);
        r = pair_current(e, "kind = 'ecdh' AND device_id = ?1 AND retired IS NULL", device_id, true, &own);
        if (r < 0)
                return r;
        return evc_ecdh_device(e, own.key, own.hash, dev_pem, n, ret->k);
}

/* ---- admin ---- */

/* New pairs for a set of devices, made before the transaction that installs them (key generation takes
 * time). */
typedef struct DevicePairs {
        int64_t *ids;
        EvcPair *pairs;
        size_t n;
} DevicePairs;

static void device_pairs_done(DevicePairs *d) {
        for (size_t i = 0; i < d->n; i++)
                evc_pair_done(&d->pairs[i]);
        free(d->ids);
        free(d->pairs);
        *d = (DevicePairs){};
}

/* One new ECDH pair for each device id that sql selects. */
static int device_pairs_new(Evc *e, const char *sql, DevicePairs *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        size_t cap = 0;
        int r;

        r = evc_prepare(evc_db(e), sql, &st);
        if (r < 0)
                return r;
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (ret->n == cap) {
                        int64_t *ids = reallocarray(ret->ids, cap ? cap * 2 : 16, sizeof *ids);
                        EvcPair *pairs;
                        if (!ids)
                                return -ENOMEM;
                        ret->ids = ids;
                        pairs = reallocarray(ret->pairs, cap ? cap * 2 : 16, sizeof *pairs);
                        if (!pairs)
                                return -ENOMEM;
                        ret->pairs = pairs;
                        cap = cap ? cap * 2 : 16;
                }
                ret->ids[ret->n] = sqlite3_column_int64(st, 0);
                ret->pairs[ret->n] = (EvcPair){};
                r = pair_new(e, EVC_CERT_ECDH, "evc ecdh (device)", &ret->pairs[ret->n]);
                if (r < 0)
                        return r;
                ret->n++;
        }
        return 0;
}

/* Inside the caller's transaction: each device's current own pair (if any) retired, the new one in. */
static int device_pairs_install(Evc *e, DevicePairs *d) {
        int r;

        for (size_t i = 0; i < d->n; i++)
                if ((r = retire(e, "kind = 'ecdh' AND device_id = ?1 AND retired IS NULL", d->ids[i])) < 0 ||
                    (r = pair_insert(e, "ecdh", d->ids[i], &d->pairs[i])) < 0 ||
                    (r = configs_invalidate(e, "id = ?1", d->ids[i])) < 0)
                        return r;
        return 0;
}

#define SHARED_USERS                                                                                     \
        "NOT EXISTS (SELECT 1 FROM ckeys WHERE kind = 'ecdh' AND device_id = devices.id AND retired IS " \
        "NULL)"

int evc_keys_rotate(Evc *e, const char *kind, int64_t device_id) {
        _cleanup_(device_pairs_done) DevicePairs own = {};
        _cleanup_(evc_pair_done) EvcPair p = {};
        _cleanup_free_ char *scope = NULL;
        bool signing = streq(kind, "signing");
        int r;

        if (!signing && !streq(kind, "ecdh"))
                return log_error_errno(EINVAL, "Key kind must be signing or ecdh.");
        if (signing && device_id > 0)
                return log_error_errno(EINVAL, "There is one signing key for every device: no --device.");
        r = pair_new(e,
                     signing ? EVC_CERT_SIGNING : EVC_CERT_ECDH,
                     signing                         ? "evc signing"
                                     : device_id > 0 ? "evc ecdh (device)"
                                                     : "evc ecdh",
                     &p);
        if (r < 0)
                return r;
        /* Per-device scope: every device's own pair is replaced too. */
        if (!signing && device_id == 0 && setting_get(e, "ecdh_scope", &scope) >= 0 &&
            streq(scope, "per-device")) {
                r = device_pairs_new(
                                e,
                                "SELECT device_id FROM ckeys WHERE kind = 'ecdh' AND device_id IS NOT NULL "
                                "AND retired IS NULL ORDER BY device_id",
                                &own);
                if (r < 0)
                        return r;
        }

        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return r;
        if (signing) {
                if ((r = retire(e, "kind = 'signing' AND device_id IS NULL AND retired IS NULL", 0)) < 0 ||
                    (r = pair_insert(e, "signing", 0, &p)) < 0 || (r = configs_invalidate(e, "1", 0)) < 0)
                        goto fail;
        } else if (device_id > 0) {
                if ((r = retire(e, "kind = 'ecdh' AND device_id = ?1 AND retired IS NULL", device_id)) < 0 ||
                    (r = pair_insert(e, "ecdh", device_id, &p)) < 0 ||
                    (r = configs_invalidate(e, "id = ?1", device_id)) < 0)
                        goto fail;
        } else if ((r = configs_invalidate(e, SHARED_USERS, 0)) < 0 ||
                   (r = retire(e, ECDH_WHERE_SHARED, 0)) < 0 || (r = pair_insert(e, "ecdh", 0, &p)) < 0 ||
                   (r = device_pairs_install(e, &own)) < 0)
                goto fail;
        if ((r = epoch_bump(e)) < 0 ||
            (r = evc_event(evc_db(e), device_id, signing ? "signing key rotated" : "ECDH key rotated")) <
                            0 ||
            (r = evc_tx_commit(evc_db(e))) < 0)
                goto fail;
        return 0;
fail:
        evc_tx_rollback(evc_db(e));
        return r;
}

int evc_keys_set_scope(Evc *e, bool per_device) {
        _cleanup_(device_pairs_done) DevicePairs own = {};
        int r;

        if (per_device) {
                r = device_pairs_new(e, "SELECT id FROM devices WHERE " SHARED_USERS " ORDER BY id", &own);
                if (r < 0)
                        return r;
        }
        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return r;
        if (per_device)
                r = device_pairs_install(e, &own);
        else if ((r = configs_invalidate(e, "NOT " SHARED_USERS, 0)) >= 0)
                r = retire(e, "kind = 'ecdh' AND device_id IS NOT NULL AND retired IS NULL", 0);
        if (r < 0 || (r = setting_set(e, "ecdh_scope", per_device ? "per-device" : "shared")) < 0 ||
            (r = epoch_bump(e)) < 0 ||
            (r = evc_event(evc_db(e), 0, per_device ? "ECDH scope: per device" : "ECDH scope: shared")) <
                            0 ||
            (r = evc_tx_commit(evc_db(e))) < 0)
                goto fail;
        return 0;
fail:
        evc_tx_rollback(evc_db(e));
        return r;
}
