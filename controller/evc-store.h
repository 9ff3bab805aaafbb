/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-store.h: evc's SQLite store: WAL journal, a schema version table, migrations applied on open, and helpers
 * that run every state change inside one transaction. */
#pragma once

#include <sqlite3.h>

#include "macro.h"

#define EVC_SCHEMA_VERSION 2

typedef struct EvcStore {
        sqlite3 *db;
} EvcStore;

/* Opens (creating when missing) the database at path and migrates it to EVC_SCHEMA_VERSION. */
int evc_store_open(const char *path, EvcStore **ret);
EvcStore *evc_store_free(EvcStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(EvcStore *, evc_store_free);

int evc_store_schema_version(EvcStore *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
int evc_tx_begin(EvcStore *s);
int evc_tx_commit(EvcStore *s);
void evc_tx_rollback(EvcStore *s);

/* Prepares sql; logs and returns -EIO on failure. */
int evc_prepare(EvcStore *s, const char *sql, sqlite3_stmt **ret);
static inline void sqlite3_finalizep(sqlite3_stmt **st) {
        if (*st)
                (void) sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* Runs a statement that returns no rows (after binding); -EEXIST on a constraint violation. */
int evc_step_done(EvcStore *s, sqlite3_stmt *st);
/* Executes literal SQL. */
int evc_exec(EvcStore *s, const char *sql);

/* Appends an audit record. */
int evc_event(EvcStore *s, int64_t device_id, const char *what);

/* A copy of a blob column (NULL and 0 for NULL), newly allocated. */
int evc_column_blob(sqlite3_stmt *st, int col, uint8_t **ret, size_t *ret_size);
char *evc_column_strdup(sqlite3_stmt *st, int col);
