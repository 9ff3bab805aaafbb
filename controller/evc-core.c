/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/stat.h>
#include <time.h>

#include "encoding.h"
#include "evc-keys.h"
#include "evc.h"
#include "log.h"
#include "memory-util.h"

int64_t evc_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int evc_uuid_new(char ret[static 37]) {
        uint8_t u[16];
        int r;

        r = evc_random(u, sizeof u);
        if (r < 0)
                return r;
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        snprintf(ret, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
        return 0;
}

int evc_uuid_canonical(const char *s, char ret[static 37]) {
        if (!s || strlen(s) != 36)
                return -EINVAL;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                        ret[i] = '-';
                } else if (s[i] >= '0' && s[i] <= '9')
                        ret[i] = s[i];
                else if ((s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F'))
                        ret[i] = (char) (s[i] | 0x20);
                else
                        return -EINVAL;
        }
        ret[36] = 0;
        return 0;
}

int evc_pcr_value_parse(const char *s, unsigned *ret_index, uint8_t ret_value[static 32]) {
        _cleanup_free_ uint8_t *v = NULL;
        const char *eq;
        unsigned idx = 0;
        size_t vn;

        eq = s ? strchr(s, '=') : NULL;
        if (!eq || eq == s || eq - s > 2)
                return -EINVAL;
        for (const char *c = s; c < eq; c++) {
                if (*c < '0' || *c > '9')
                        return -EINVAL;
                idx = idx * 10 + (unsigned) (*c - '0');
        }
        if (idx > 23 || hex_decode(eq + 1, strlen(eq + 1), false, &v, &vn) < 0 || vn != 32)
                return -EINVAL;
        *ret_index = idx;
        memcpy(ret_value, v, 32);
        return 0;
}

int evc_config_item_parse(const char *s, size_t *ret_key_len, const char **ret_value) {
        const char *eq = s ? strchr(s, '=') : NULL;

        if (!eq || eq == s || eq - s > 128 || strlen(eq + 1) > 4096)
                return -EINVAL;
        for (const char *c = s; c < eq; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      *c == '.' || *c == '_' || *c == '-'))
                        return -EINVAL;
        for (const unsigned char *c = (const unsigned char *) eq + 1; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return -EINVAL;
        *ret_key_len = (size_t) (eq - s);
        *ret_value = eq + 1;
        return 0;
}

static char *path_join(const char *dir, const char *rel) {
        char *p;
        return asprintf(&p, "%s/%s", dir, rel) < 0 ? NULL : p;
}

int evc_init_dir(const char *dir) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL;
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t root_key = NULL;
        _cleanup_(evc_store_freep) EvcStore *s = NULL;
        _cleanup_(evc_freep) Evc *e = NULL;
        static const struct {
                EvcCertKind kind;
                const char *cn, *cert, *key;
        } leaves[] = {
                { EVC_CERT_TLS, "localhost", "certs/server.pem", "keys/server-key.pem" },
        };
        _cleanup_free_ char *certs = path_join(dir, "certs"), *keys = path_join(dir, "keys"),
                            *rc = path_join(dir, "certs/root.pem"), *rk = path_join(dir, "keys/root-key.pem"),
                            *dbk = path_join(dir, "keys/db.key"), *db = path_join(dir, "evc.db");
        uint8_t k[32];
        int r;

        if (!certs || !keys || !rc || !rk || !dbk || !db)
                return log_oom();
        if (access(rc, F_OK) == 0)
                return log_error_errno(EEXIST, "%s is already initialised.", dir);
        if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (mkdir(certs, 0755) < 0 && errno != EEXIST) ||
            (mkdir(keys, 0700) < 0 && errno != EEXIST))
                return log_error_errno(errno, "Failed to create directories under %s: %m", dir);

        r = evc_generate_cert(EVC_CERT_ROOT, "evc root CA", NULL, NULL, rc, rk, &root, &root_key);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(leaves); i++) {
                _cleanup_free_ char *c = path_join(dir, leaves[i].cert), *kp = path_join(dir, leaves[i].key);
                if (!c || !kp)
                        return log_oom();
                r = evc_generate_cert(leaves[i].kind, leaves[i].cn, root, root_key, c, kp, NULL, NULL);
                if (r < 0)
                        return r;
        }
        r = evc_random(k, sizeof k);
        if (r < 0)
                return r;
        r = evc_write_file(dbk, k, sizeof k, 0600);
        erase(k, sizeof k);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", dbk);
        r = evc_store_open(db, &s);
        if (r < 0)
                return r;
        r = evc_event(s, 0, "initialised");
        if (r < 0)
                return r;
        s = evc_store_free(s);
        /* The signing and ECDH pairs live in the database (evc-keys.c); loading makes them. */
        r = evc_load(dir, &e);
        if (r < 0)
                return r;
        return 0;
}

static int load_pem(const char *dir, const char *rel, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *p = path_join(dir, rel);
        int r;

        if (!p)
                return -ENOMEM;
        r = evc_read_file(p, ret, ret_size);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", p);
        return 0;
}

int evc_load(const char *dir, Evc **ret) {
        _cleanup_(evc_freep) Evc *e = NULL;
        _cleanup_free_ uint8_t *root_pem = NULL, *dbk = NULL;
        _cleanup_free_ char *db = path_join(dir, "evc.db");
        size_t n, dbk_size;
        int r;

        if (!db)
                return log_oom();
        e = calloc(1, sizeof *e);
        if (!e)
                return log_oom();
        e->nonce_ttl_ms = EVC_NONCE_TTL_DEFAULT_MS;
        e->body_max = EVC_BODY_MAX_DEFAULT;
        e->threads = EVC_THREADS_DEFAULT;
        pthread_mutex_init(&e->write_lock, NULL);
        pthread_mutex_init(&e->keys_lock, NULL);
        pthread_mutex_init(&e->crt_lock, NULL);
        pthread_mutex_init(&e->ecdh_lock, NULL);
        e->ecdh_cache = eve_secret_alloc(EVC_ECDH_CACHE_SLOTS * sizeof(EvcEcdhSlot));
        if (!e->ecdh_cache)
                return log_oom();
        evc_nonces_init(&e->nonces);
        e->dir = strdup(dir);
        e->db_path = strdup(db);
        if (!e->dir || !e->db_path)
                return log_oom();
        if ((r = load_pem(dir, "certs/root.pem", &root_pem, &n)) < 0 ||
            (r = evc_load_crt_pem(root_pem, n, &e->root_crt)) < 0 ||
            (r = load_pem(dir, "certs/server.pem", &e->tls_pem, &e->tls_pem_size)) < 0 ||
            (r = load_pem(dir, "keys/server-key.pem", &e->tls_key_pem, &e->tls_key_pem_size)) < 0)
                return log_error_errno(
                                r,
                                "Failed to load the controller identity from %s (run 'evc init'?): %m",
                                dir);

        r = load_pem(dir, "keys/db.key", &dbk, &dbk_size);
        if (r < 0)
                return r;
        if (dbk_size != 32) {
                erase(dbk, dbk_size);
                return log_error_errno(EINVAL, "keys/db.key must be 32 bytes.");
        }
        e->db_key = eve_secret_alloc(32);
        if (!e->db_key)
                return log_oom();
        memcpy(e->db_key, dbk, 32);
        erase(dbk, dbk_size);

        r = evc_store_open(db, &e->store);
        if (r < 0)
                return r;
        r = evc_keys_ensure(e);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the controller keys: %m");
        *ret = TAKE_PTR(e);
        return 0;
}

EvcCrt *evc_crt_ref(EvcCrt *c) {
        if (c)
                __atomic_add_fetch(&c->n_ref, 1, __ATOMIC_RELAXED);
        return c;
}

EvcCrt *evc_crt_unref(EvcCrt *c) {
        if (!c || __atomic_sub_fetch(&c->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        if (c->pub)
                gnutls_pubkey_deinit(c->pub);
        if (c->crt)
                gnutls_x509_crt_deinit(c->crt);
        return mfree(c);
}

int evc_crt_get(Evc *e, const void *pem, size_t n, EvcCrt **ret) {
        _cleanup_(evc_crt_unrefp) EvcCrt *c = NULL;
        uint8_t h[EVC_SHA256_SIZE];
        size_t slot;
        int r;

        evc_sha256(pem, n, h);
        slot = ((size_t) h[0] | (size_t) h[1] << 8) % EVC_CRT_CACHE_SLOTS;
        pthread_mutex_lock(&e->crt_lock);
        if (e->crt_cache[slot] && memcmp(e->crt_cache[slot]->pem_hash, h, sizeof h) == 0) {
                *ret = evc_crt_ref(e->crt_cache[slot]);
                pthread_mutex_unlock(&e->crt_lock);
                return 0;
        }
        pthread_mutex_unlock(&e->crt_lock);

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        memcpy(c->pem_hash, h, sizeof h);
        r = evc_load_crt_pem(pem, n, &c->crt);
        if (r < 0)
                return r;
        if (gnutls_pubkey_init(&c->pub) < 0)
                return -ENOMEM;
        if (gnutls_pubkey_import_x509(c->pub, c->crt, 0) < 0)
                return -EINVAL;

        pthread_mutex_lock(&e->crt_lock);
        evc_crt_unref(e->crt_cache[slot]);
        e->crt_cache[slot] = evc_crt_ref(c);
        pthread_mutex_unlock(&e->crt_lock);
        *ret = TAKE_PTR(c);
        return 0;
}

int evc_ecdh_device(
                Evc *e,
                gnutls_x509_privkey_t ctrl_key,
                const uint8_t ctrl_hash[static 16],
                const void *dev_pem,
                size_t n,
                uint8_t ret[static EVC_SHA256_SIZE]) {
        _cleanup_(evc_crt_unrefp) EvcCrt *dev = NULL;
        uint8_t in[16 + EVC_SHA256_SIZE], tag[EVC_SHA256_SIZE];
        EvcEcdhSlot *slot = NULL;
        int r;

        memcpy(in, ctrl_hash, 16);
        evc_sha256(dev_pem, n, in + 16);
        evc_sha256(in, sizeof in, tag);
        if (e->ecdh_cache) {
                slot = &e->ecdh_cache[((size_t) tag[0] | (size_t) tag[1] << 8) % EVC_ECDH_CACHE_SLOTS];
                pthread_mutex_lock(&e->ecdh_lock);
                if (slot->used && memcmp(slot->tag, tag, sizeof tag) == 0) {
                        memcpy(ret, slot->k, EVC_SHA256_SIZE);
                        pthread_mutex_unlock(&e->ecdh_lock);
                        return 0;
                }
                pthread_mutex_unlock(&e->ecdh_lock);
        }
        if (!ctrl_key)
                return -ENOKEY;
        r = evc_crt_get(e, dev_pem, n, &dev);
        if (r < 0)
                return r;
        r = evc_ecdh_key(ctrl_key, dev->crt, ret);
        if (r < 0)
                return r;
        if (slot) {
                pthread_mutex_lock(&e->ecdh_lock);
                memcpy(slot->tag, tag, sizeof tag);
                memcpy(slot->k, ret, EVC_SHA256_SIZE);
                slot->used = true;
                pthread_mutex_unlock(&e->ecdh_lock);
        }
        return 0;
}

static void db_tls_free(void *p) {
        evc_store_free(p);
}

int evc_db_threaded(Evc *e) {
        int r;

        if (e->threaded)
                return 0;
        r = pthread_key_create(&e->db_tls, db_tls_free);
        if (r != 0)
                return -r;
        e->threaded = true;
        return 0;
}

EvcStore *evc_db(Evc *e) {
        EvcStore *s;

        if (!e->threaded)
                return e->store;
        s = pthread_getspecific(e->db_tls);
        if (s)
                return s;
        if (evc_store_connect(e->db_path, &e->write_lock, &s) < 0)
                return NULL;
        if (pthread_setspecific(e->db_tls, s) != 0) {
                evc_store_free(s);
                return NULL;
        }
        return s;
}

Evc *evc_free(Evc *e) {
        if (!e)
                return NULL;
        if (e->threaded) {
                /* The server threads have exited (and closed theirs); this one may hold one too. */
                evc_store_free(pthread_getspecific(e->db_tls));
                (void) pthread_setspecific(e->db_tls, NULL);
                (void) pthread_key_delete(e->db_tls);
        }
        evc_keys_unref(e->keys);
        pthread_mutex_destroy(&e->keys_lock);
        evc_store_free(e->store);
        if (e->root_crt)
                gnutls_x509_crt_deinit(e->root_crt);
        free(e->tls_pem);
        erase(e->tls_key_pem, e->tls_key_pem_size);
        free(e->tls_key_pem);
        eve_secret_free(e->db_key);
        evc_nonces_done(&e->nonces);
        for (size_t i = 0; i < EVC_CRT_CACHE_SLOTS; i++)
                evc_crt_unref(e->crt_cache[i]);
        pthread_mutex_destroy(&e->crt_lock);
        eve_secret_free(e->ecdh_cache);
        pthread_mutex_destroy(&e->ecdh_lock);
        pthread_mutex_destroy(&e->write_lock);
        free(e->db_path);
        free(e->dir);
        return mfree(e);
}

int64_t evc_device_find(Evc *e, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(evc_db(e),
                        "SELECT id FROM devices WHERE uuid = ?1 OR serial = ?1 "
                        "OR (length(?1) >= 8 AND substr(lower(hex(cert_hash)), 1, length(?1)) = lower(?1))",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, what, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW)
                return log_error_errno(ENOENT, "No device \"%s\".", what);
        int64_t id = sqlite3_column_int64(st, 0);
        if (sqlite3_step(st) == SQLITE_ROW)
                return log_error_errno(EUCLEAN, "\"%s\" names more than one device; use the UUID.", what);
        return id;
}

int evc_device_add(Evc *e, const char *cert_pem, size_t n, const char *serial, char **ret_uuid) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint8_t h[EVC_SHA256_SIZE];
        char uuid[37];
        int r;

        r = evc_load_crt_pem(cert_pem, n, &crt);
        if (r < 0)
                return log_error_errno(r, "Not a PEM certificate.");
        r = evc_crt_der_sha256(crt, h);
        if (r < 0)
                return r;
        r = evc_uuid_new(uuid);
        if (r < 0)
                return r;
        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return r;
        r = evc_prepare(evc_db(e),
                        "INSERT INTO devices (uuid, cert_hash, cert_pem, serial, registered, created) "
                        "VALUES (?, ?, ?, ?, 0, ?)",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, cert_pem, (int) n, SQLITE_TRANSIENT);
        if (serial)
                sqlite3_bind_text(st, 4, serial, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, (int64_t) time(NULL));
        r = evc_step_done(evc_db(e), st);
        if (r == -EEXIST) {
                log_error("This device certificate is already known.");
                goto fail;
        }
        if (r < 0)
                goto fail;
        r = evc_event(evc_db(e), sqlite3_last_insert_rowid(evc_db(e)->db), "added by admin");
        if (r < 0)
                goto fail;
        r = evc_tx_commit(evc_db(e));
        if (r < 0)
                goto fail;
        if (ret_uuid) {
                *ret_uuid = strdup(uuid);
                if (!*ret_uuid)
                        return -ENOMEM;
        }
        return 0;
fail:
        evc_tx_rollback(evc_db(e));
        return r;
}

int evc_config_invalidate(Evc *e, int64_t device_id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(evc_db(e),
                        "UPDATE devices SET config_cache = NULL, config_hash = NULL, "
                        "config_version = config_version + 1 WHERE id = ?",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        return evc_step_done(evc_db(e), st);
}

int evc_secret_seal(Evc *e, const char *value, uint8_t **ret, size_t *ret_size) {
        return evc_aead_seal(e->db_key, value, strlen(value), ret, ret_size);
}

int evc_secret_unseal(Evc *e, const uint8_t *sealed, size_t n, char **ret) {
        uint8_t *p;
        size_t m;
        int r;

        r = evc_aead_open(e->db_key, sealed, n, &p, &m);
        if (r < 0)
                return r;
        *ret = (char *) p; /* NUL-terminated secret memory */
        return 0;
}
