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

int evc_prepare(EvcStore *s, const char *sql, sqlite3_stmt **ret) {
        if (sqlite3_prepare_v2(s->db, sql, -1, ret, NULL) != SQLITE_OK)
                return log_error_errno(EIO, "Failed to prepare \"%s\": %s", sql, sqlite3_errmsg(s->db));
        return 0;
}

int evc_step_done(EvcStore *s, sqlite3_stmt *st) {
        int k = sqlite3_step(st);

        if (k == SQLITE_DONE || k == SQLITE_ROW)
                return 0;
        if ((k & 0xff) == SQLITE_CONSTRAINT)
                return log_debug_errno(EEXIST, "Constraint: %s", sqlite3_errmsg(s->db));
        return log_error_errno(EIO, "SQL step failed: %s", sqlite3_errmsg(s->db));
}

int evc_tx_begin(EvcStore *s) {
        return evc_exec(s, "BEGIN IMMEDIATE");
}

int evc_tx_commit(EvcStore *s) {
        return evc_exec(s, "COMMIT");
}

void evc_tx_rollback(EvcStore *s) {
        if (!sqlite3_get_autocommit(s->db))
                (void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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

int evc_store_open(const char *path, EvcStore **ret) {
        _cleanup_(evc_store_freep) EvcStore *s = NULL;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                            NULL) != SQLITE_OK)
                return log_error_errno(EIO, "Failed to open database %s: %s", path,
                                       s->db ? sqlite3_errmsg(s->db) : "out of memory");
        (void) sqlite3_busy_timeout(s->db, 5000);
        r = evc_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
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
