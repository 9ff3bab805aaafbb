/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <time.h>

#include "evc-store.h"
#include "log.h"

/* Migrations, in order: migrations[i] takes the schema from version i to i + 1. Never edit a shipped one. */
static const char *const migrations[] = {
        /* 0 → 1 */
        "CREATE TABLE devices ("
        "  id INTEGER PRIMARY KEY,"
        "  uuid TEXT NOT NULL UNIQUE,"
        "  cert_hash BLOB NOT NULL UNIQUE," /* SHA-256 of the device certificate DER */
        "  cert_pem TEXT NOT NULL,"
        "  serial TEXT,"
        "  onboard_hash BLOB,"
        "  registered INTEGER NOT NULL DEFAULT 0," /* 0: added by an admin, awaiting /register; 1: registered
                                                    */
        "  revoked INTEGER NOT NULL DEFAULT 0,"
        "  trust TEXT NOT NULL DEFAULT 'unknown'," /* unknown | trusted | untrusted */
        "  trust_reason TEXT,"
        "  ecdh_pem TEXT, ecdh_hash BLOB, attest_pem TEXT, ek_pem TEXT, ek_public BLOB,"
        "  certs_locked INTEGER NOT NULL DEFAULT 0,"
        "  itoken BLOB,"
        "  last_pcrs BLOB,"
        "  last_attest INTEGER, last_result TEXT,"
        "  info BLOB, info_time INTEGER,"
        "  config_cache BLOB, config_hash TEXT," /* the built EdgeDevConfig and its hash, NULL = rebuild */
        "  config_version INTEGER NOT NULL DEFAULT 1,"
        "  baseos_version TEXT,"
        "  location_lock INTEGER NOT NULL DEFAULT 0, location_lat REAL, location_lon REAL,"
        "  created INTEGER NOT NULL"
        ");"
        "CREATE TABLE onboard_allow ("
        "  serial TEXT PRIMARY KEY,"
        "  cert_hash BLOB NOT NULL," /* SHA-256 of the onboarding certificate DER */
        "  cert_pem TEXT NOT NULL,"
        "  used_by INTEGER REFERENCES devices(id) ON DELETE SET NULL"
        ");"
        "CREATE TABLE nonces ("
        "  nonce BLOB PRIMARY KEY,"
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  expires INTEGER NOT NULL" /* CLOCK_REALTIME, ms */
        ");"
        "CREATE TABLE baseline ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  pcr INTEGER NOT NULL, value BLOB NOT NULL,"
        "  PRIMARY KEY (device_id, pcr)"
        ");"
        "CREATE TABLE expected_pcrs (" /* announced by 'evc upgrade expect' */
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  pcr INTEGER NOT NULL, value BLOB NOT NULL,"
        "  PRIMARY KEY (device_id, pcr)"
        ");"
        "CREATE TABLE escrow ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  seq INTEGER NOT NULL,"
        "  key_msg BLOB NOT NULL," /* serialized AttestVolumeKey as received */
        "  stored INTEGER NOT NULL,"
        "  PRIMARY KEY (device_id, seq)"
        ");"
        "CREATE TABLE secrets ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL, kind TEXT NOT NULL,"
        "  sealed BLOB NOT NULL," /* AES-256-GCM under keys/db.key */
        "  updated INTEGER NOT NULL,"
        "  PRIMARY KEY (device_id, name)"
        ");"
        "CREATE TABLE config_items ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  key TEXT NOT NULL, value TEXT NOT NULL,"
        "  PRIMARY KEY (device_id, key)"
        ");"
        "CREATE TABLE events ("
        "  id INTEGER PRIMARY KEY, time INTEGER NOT NULL, device_id INTEGER, what TEXT NOT NULL"
        ");",
        /* 1 → 2: controller-held shares of tpm+controller vaults, apart from the escrow a STORE_KEYS
           replaces. */
        "CREATE TABLE shares ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  vault_uuid TEXT NOT NULL," /* lower case */
        "  sealed BLOB NOT NULL,"     /* AES-256-GCM under keys/db.key, bound to both UUIDs */
        "  created INTEGER NOT NULL,"
        "  PRIMARY KEY (device_id, vault_uuid)"
        ");",
        /* 2 → 3: attestation nonces live in memory (evc-nonce.c). */
        "DROP TABLE nonces;",
        /* 3 → 4: controller key pairs in the database, rotation, per-device ECDH pairs, cleartext fallback.
         */
        "CREATE TABLE ckeys ("
        "  id INTEGER PRIMARY KEY,"
        "  kind TEXT NOT NULL,"                                         /* signing | ecdh */
        "  device_id INTEGER REFERENCES devices(id) ON DELETE CASCADE," /* NULL: shared */
        "  cert_pem TEXT NOT NULL,"
        "  cert_hash BLOB NOT NULL," /* SHA-256 of cert_pem; certHash = the first 16 bytes */
        "  key_sealed BLOB,"         /* AES-256-GCM under keys/db.key; NULL once retired */
        "  created INTEGER NOT NULL,"
        "  retired INTEGER" /* NULL: current */
        ");"
        "CREATE INDEX ckeys_device ON ckeys (device_id);"
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO settings VALUES ('keys_epoch', '1'), ('ecdh_scope', 'shared');"
        "ALTER TABLE devices ADD COLUMN config_ecdh INTEGER;" /* ckeys.id the cached config names */
        "ALTER TABLE devices ADD COLUMN ecdh_in_use INTEGER;" /* …and the config last delivered */
        "ALTER TABLE devices ADD COLUMN cleartext_fallback INTEGER NOT NULL DEFAULT 0;"
        "UPDATE devices SET config_cache = NULL, config_hash = NULL;",
        /* 4 → 5: vaults driven by the controller, applications bound to them (issue 12). */
        "CREATE TABLE vaults ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  uuid TEXT NOT NULL,"                 /* lower case */
        "  name TEXT NOT NULL,"                 /* unique per device unless an admin said --unchecked */
        "  version INTEGER NOT NULL DEFAULT 1," /* +1 with every change */
        "  size_limit INTEGER NOT NULL DEFAULT 0,"
        "  key_source TEXT NOT NULL DEFAULT 'tpm'," /* tpm | tpm+controller | controller */
        "  pcrs INTEGER NOT NULL DEFAULT 0,"        /* sealing PCR mask; 0: the node's default */
        "  policy_id INTEGER NOT NULL DEFAULT 0,"
        "  desired TEXT NOT NULL DEFAULT 'unlocked'," /* unlocked | locked */
        "  key_generation INTEGER NOT NULL DEFAULT 1,"
        "  created INTEGER NOT NULL,"
        "  PRIMARY KEY (device_id, uuid)"
        ");"
        "CREATE TABLE apps ("
        "  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL,"
        "  uuid TEXT NOT NULL,"
        "  version INTEGER NOT NULL DEFAULT 1,"
        "  vault_uuid TEXT," /* NULL: none */
        "  PRIMARY KEY (device_id, name)"
        ");",
};

_Static_assert(ELEMENTSOF(migrations) == EVC_SCHEMA_VERSION, "one migration per schema version");

int evc_exec(EvcStore *s, const char *sql) {
        char *err = NULL;

        if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
                log_error("SQL failed: %s", err ?: sqlite3_errmsg(s->db));
                sqlite3_free(err);
                return -EIO;
        }
        return 0;
}

/* The statement cache: per thread (a connection is only ever used by the thread that opened it), keyed by
 * the connection's id and the SQL text. A statement in use is never handed out twice: a nested prepare of
 * the same text gets an uncached one. */
#define STMT_CACHE_MAX 256

typedef struct StmtEntry {
        uint64_t store_id, hash;
        char *sql;
        sqlite3_stmt *st;
        bool in_use;
} StmtEntry;

static __thread StmtEntry *stmt_cache = NULL;
static __thread size_t stmt_cache_n = 0;
static uint64_t store_ids = 0;

static uint64_t fnv1a(const char *p) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(0x100000001b3);
        return h;
}

int evc_prepare(EvcStore *s, const char *sql, sqlite3_stmt **ret) {
        uint64_t h = fnv1a(sql);
        StmtEntry *c;
        char *copy;
        bool busy = false;

        for (size_t i = 0; i < stmt_cache_n; i++) {
                c = &stmt_cache[i];
                if (c->store_id != s->id || c->hash != h || !streq(c->sql, sql))
                        continue;
                if (c->in_use) {
                        busy = true;
                        break;
                }
                c->in_use = true;
                *ret = c->st;
                return 0;
        }
        if (sqlite3_prepare_v3(s->db, sql, -1, busy ? 0 : SQLITE_PREPARE_PERSISTENT, ret, NULL) != SQLITE_OK)
                return log_error_errno(EIO, "Failed to prepare \"%s\": %s", sql, sqlite3_errmsg(s->db));
        if (busy || stmt_cache_n >= STMT_CACHE_MAX)
                return 0;
        if (stmt_cache_n % 16 == 0) {
                c = realloc(stmt_cache, (stmt_cache_n + 16) * sizeof *c);
                if (!c)
                        return 0; /* uncached is fine */
                stmt_cache = c;
        }
        copy = strdup(sql);
        if (!copy)
                return 0;
        stmt_cache[stmt_cache_n++] =
                        (StmtEntry){ .store_id = s->id, .hash = h, .sql = copy, .st = *ret, .in_use = true };
        return 0;
}

sqlite3_stmt *evc_stmt_release(sqlite3_stmt *st) {
        if (!st)
                return NULL;
        for (size_t i = 0; i < stmt_cache_n; i++)
                if (stmt_cache[i].st == st) {
                        (void) sqlite3_reset(st);
                        (void) sqlite3_clear_bindings(st);
                        stmt_cache[i].in_use = false;
                        return NULL;
                }
        (void) sqlite3_finalize(st);
        return NULL;
}

static void stmt_cache_drop(EvcStore *s) {
        size_t k = 0;

        for (size_t i = 0; i < stmt_cache_n; i++) {
                if (stmt_cache[i].store_id == s->id) {
                        (void) sqlite3_finalize(stmt_cache[i].st);
                        free(stmt_cache[i].sql);
                } else
                        stmt_cache[k++] = stmt_cache[i];
        }
        stmt_cache_n = k;
        if (stmt_cache_n == 0)
                stmt_cache = mfree(stmt_cache);
}

int evc_step_done(EvcStore *s, sqlite3_stmt *st) {
        int k = sqlite3_step(st);

        if (k == SQLITE_DONE || k == SQLITE_ROW)
                return 0;
        if ((k & 0xff) == SQLITE_CONSTRAINT)
                return log_debug_errno(EEXIST, "Constraint: %s", sqlite3_errmsg(s->db));
        return log_error_errno(EIO, "SQL step failed: %s", sqlite3_errmsg(s->db));
}

int evc_tx_begin_sync(EvcStore *s, EvcSync sync) {
        int r;

        if (s->in_tx)
                return log_error_errno(EBUSY, "Nested transaction.");
        if (s->write_lock)
                pthread_mutex_lock(s->write_lock);
        if (s->sync != sync) {
                r = evc_exec(s,
                             sync == EVC_SYNC_FULL ? "PRAGMA synchronous=FULL"
                                                   : "PRAGMA synchronous=NORMAL");
                if (r < 0)
                        goto fail;
                s->sync = sync;
        }
        r = evc_exec(s, "BEGIN IMMEDIATE");
        if (r < 0)
                goto fail;
        s->in_tx = true;
        return 0;
fail:
        if (s->write_lock)
                pthread_mutex_unlock(s->write_lock);
        return r;
}

int evc_tx_commit(EvcStore *s) {
        int r;

        r = evc_exec(s, "COMMIT");
        if (r < 0)
                return r; /* still open: the caller rolls back */
        s->in_tx = false;
        if (s->write_lock)
                pthread_mutex_unlock(s->write_lock);
        return 0;
}

void evc_tx_rollback(EvcStore *s) {
        if (!s->in_tx)
                return;
        if (!sqlite3_get_autocommit(s->db))
                (void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->in_tx = false;
        if (s->write_lock)
                pthread_mutex_unlock(s->write_lock);
}

int evc_store_schema_version(EvcStore *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(s, "SELECT version FROM schema_version", &st);
        if (r < 0)
                return r;
        if (sqlite3_step(st) != SQLITE_ROW)
                return 0;
        return sqlite3_column_int(st, 0);
}

static int migrate(EvcStore *s) {
        int v, r;

        r = evc_exec(s, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        if (r < 0)
                return r;
        r = evc_tx_begin(s);
        if (r < 0)
                return r;
        v = evc_store_schema_version(s);
        if (v < 0)
                goto fail;
        if (v > EVC_SCHEMA_VERSION) {
                evc_tx_rollback(s);
                return log_error_errno(EPROTO, "Database schema %d is newer than this evc (%d); refusing.", v,
                                       EVC_SCHEMA_VERSION);
        }
        for (; v < EVC_SCHEMA_VERSION; v++) {
                _cleanup_free_ char *sql = NULL;

                r = evc_exec(s, migrations[v]);
                if (r < 0)
                        goto fail;
                if (asprintf(&sql, "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)", v + 1) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = evc_exec(s, sql);
                if (r < 0)
                        goto fail;
                log_debug("Migrated database schema to version %d.", v + 1);
        }
        return evc_tx_commit(s);
fail:
        evc_tx_rollback(s);
        return r < 0 ? r : -EIO;
}

int evc_store_connect(const char *path, pthread_mutex_t *write_lock, EvcStore **ret) {
        _cleanup_(evc_store_freep) EvcStore *s = NULL;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->write_lock = write_lock;
        s->id = __atomic_add_fetch(&store_ids, 1, __ATOMIC_RELAXED);
        if (sqlite3_open_v2(path,
                            &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK)
                return log_error_errno(EIO, "Failed to open database %s: %s", path,
                                       s->db ? sqlite3_errmsg(s->db) : "out of memory");
        /* Waits for the other processes (an admin command); this process's writers queue on write_lock. */
        (void) sqlite3_busy_timeout(s->db, 5000);
        r = evc_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        if (r < 0)
                return r;
        s->sync = EVC_SYNC_FULL;
        *ret = TAKE_PTR(s);
        return 0;
}

int evc_store_open(const char *path, EvcStore **ret) {
        _cleanup_(evc_store_freep) EvcStore *s = NULL;
        int r;

        r = evc_store_connect(path, NULL, &s);
        if (r < 0)
                return r;
        r = migrate(s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

EvcStore *evc_store_free(EvcStore *s) {
        if (!s)
                return NULL;
        evc_tx_rollback(s);
        stmt_cache_drop(s);
        (void) sqlite3_close_v2(s->db);
        return mfree(s);
}

int evc_event(EvcStore *s, int64_t device_id, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(s, "INSERT INTO events (time, device_id, what) VALUES (?, ?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, (int64_t) time(NULL));
        if (device_id > 0)
                sqlite3_bind_int64(st, 2, device_id);
        sqlite3_bind_text(st, 3, what, -1, SQLITE_TRANSIENT);
        return evc_step_done(s, st);
}

int evc_column_blob(sqlite3_stmt *st, int col, uint8_t **ret, size_t *ret_size) {
        const void *p = sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        uint8_t *c;

        if (!p || n <= 0) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        c = malloc((size_t) n);
        if (!c)
                return -ENOMEM;
        memcpy(c, p, (size_t) n);
        *ret = c;
        *ret_size = (size_t) n;
        return 0;
}

char *evc_column_strdup(sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);
        return t ? strdup((const char *) t) : NULL;
}
