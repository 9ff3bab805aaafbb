/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-store.h: evc's SQLite store: WAL journal, a schema version table, migrations applied on open, and helpers
 * that run every state change inside one transaction. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>

#include "macro.h"

#define EVC_SCHEMA_VERSION 5

/* How durable a transaction's commit is. WAL with synchronous=FULL fsyncs the log at every commit: the
 * change survives a power loss. NORMAL does not: the change survives a crash or kill of evc (it is in the
 * log), but may be lost with the last moments before a power loss. A FULL commit makes every earlier NORMAL
 * commit durable too. */
typedef enum EvcSync {
        EVC_SYNC_FULL,
        EVC_SYNC_NORMAL,
} EvcSync;

typedef struct EvcStore {
        sqlite3 *db;
        pthread_mutex_t *write_lock; /* shared by the connections of one process; NULL: single-threaded */
        EvcSync sync;                /* what the connection is set to */
        bool in_tx;
        uint64_t id; /* names the connection in the statement cache */
} EvcStore;

/* Opens (creating when missing) the database at path and migrates it to EVC_SCHEMA_VERSION. */
int evc_store_open(const char *path, EvcStore **ret);
/* Another connection to a database already opened (and migrated) with evc_store_open; for a server thread.
 * write_lock serialises this process's write transactions (SQLite's own busy handler only polls). */
int evc_store_connect(const char *path, pthread_mutex_t *write_lock, EvcStore **ret);
EvcStore *evc_store_free(EvcStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(EvcStore *, evc_store_free);

int evc_store_schema_version(EvcStore *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. evc_tx_begin() commits with synchronous=FULL; evc_tx_begin_sync()
 * says how (SQLite takes the level at BEGIN, not at COMMIT). Rollback is safe to call when no transaction is
 * open. */
int evc_tx_begin_sync(EvcStore *s, EvcSync sync);
static inline int evc_tx_begin(EvcStore *s) {
        return evc_tx_begin_sync(s, EVC_SYNC_FULL);
}
int evc_tx_commit(EvcStore *s);
void evc_tx_rollback(EvcStore *s);

/* Prepares sql; logs and returns -EIO on failure. Statements are cached per connection (and thread): the
 * same SQL text prepared again reuses the compiled statement. Give it back with evc_stmt_release() or
 * _cleanup_stmt_. */
int evc_prepare(EvcStore *s, const char *sql, sqlite3_stmt **ret);
/* Resets a cached statement for its next use, finalizes any other. Accepts NULL; returns NULL. */
sqlite3_stmt *evc_stmt_release(sqlite3_stmt *st);
static inline void evc_stmt_releasep(sqlite3_stmt **st) {
        *st = evc_stmt_release(*st);
}
#define _cleanup_stmt_ _cleanup_(evc_stmt_releasep)

/* Runs a statement that returns no rows (after binding); -EEXIST on a constraint violation. */
int evc_step_done(EvcStore *s, sqlite3_stmt *st);
/* Executes literal SQL. */
int evc_exec(EvcStore *s, const char *sql);

/* Appends an audit record. */
int evc_event(EvcStore *s, int64_t device_id, const char *what);

/* A copy of a blob column (NULL and 0 for NULL), newly allocated. */
int evc_column_blob(sqlite3_stmt *st, int col, uint8_t **ret, size_t *ret_size);
char *evc_column_strdup(sqlite3_stmt *st, int col);
