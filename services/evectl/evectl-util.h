/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl-util.h: what every evectl verb needs: the bus and clear errors for people (a service that is not
 * running, "Permission denied: only root or members of group eve-admin may …"), tables for people, JSON for
 * scripts, properties read as a whole (GetAll) into JSON, times. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

#include "macro.h"

#define EVECTL_CALL_TIMEOUT_USEC (UINT64_C(25) * 1000000U)
#define EVECTL_LONG_CALL_TIMEOUT_USEC (UINT64_C(3600) * 1000000U) /* creating or formatting a large vault \
                                                                   */

/* The system bus ($DBUS_SYSTEM_BUS_ADDRESS when set); logs why not. */
int evectl_bus_open(sd_bus **ret);

/* Logs a failed call for a person and returns r: "<daemon> is not running (<name> is not on the bus).",
 * "Permission denied: only root or members of group <admin group> may <what>.", or "Cannot <what>:
 * <message>". daemon: e.g. "eve-vaultd"; bus_name: e.g. "org.eve.Vault"; what: a verb phrase ("create
 * vaults"). */
int evectl_bus_error(
                int r, const sd_bus_error *e, const char *daemon, const char *bus_name, const char *what);

/* All properties of interface at path as a JSON object (names as on the bus; s, o, b, y, n, q, i, u, x, t,
 * d, arrays of those and structs of those become strings, booleans, numbers, arrays; dictionaries with string
 * keys become objects). */
int evectl_get_all(
                sd_bus *bus,
                const char *dest,
                const char *path,
                const char *interface,
                sd_bus_error *error,
                json_object **ret);

/* Convenience getters on such an object: NULL/0 when absent. */
const char *evectl_json_str(json_object *o, const char *key);
uint64_t evectl_json_u64(json_object *o, const char *key);

/* Prints o (pretty, one trailing newline) to stdout. */
int evectl_json_print(json_object *o);

/* "2026-11-22 19:40:01 UTC" for µs since the epoch; "never" for 0. */
void evectl_format_time(uint64_t usec, char buf[static 32]);
/* "512.0 MiB", "1.5 GiB", "33 B". */
void evectl_format_bytes(uint64_t bytes, char buf[static 16]);

/* A table for people: left-aligned columns, headers in capitals, two spaces between columns, "-" for empty.
 */
typedef struct Table Table;
Table *table_new(size_t n_columns, ...); /* the column headers */
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
int table_add_row(Table *t, ...); /* n_columns strings (NULL prints "-") */
int table_print(Table *t, FILE *f);

/* "Key: value" lines for one object, keys right-aligned: n entries of alternating keys and values; a NULL
 * value leaves its line out, "" prints "-". */
void evectl_print_fields(FILE *f, const char *const *keys_and_values, size_t n);
