/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* configd-store.h: the last good configuration on disk, in the "config" vault only
 * (<EVE_VAULTS_DIR>/config/config/last.pb, CONTRACT.md), cipher blocks still encrypted, superseded cleartext
 * already wiped. Written atomically (temporary file, fsync, rename, fsync of the directory), mode 0600.
 *
 * File format: "EVECFG1\n" ‖ payload length (uint64, little endian) ‖ SHA-256(payload) ‖ payload, the
 * payload being the packed ConfigResponse. A file that is short, long, of another format, whose digest does
 * not match or whose payload does not parse is corrupt: refused as a whole, never half-applied. */
#pragma once

#include "configd-config.h"

#define STORE_MAGIC "EVECFG1\n"
#define STORE_MAGIC_SIZE 8U
#define STORE_HEADER_SIZE (STORE_MAGIC_SIZE + 8U + 32U)

/* <vault mount>/config/last.pb; vault mount NULL: $EVE_VAULTS_DIR/config. Newly allocated. */
char *store_path(const char *vault_mount);

/* Pure: the file's bytes for a config, and back. store_decode: -EBADMSG (corrupt, *ret_reason says how). */
int store_encode(const Config *c, uint8_t **ret, size_t *ret_size);
int store_decode(const void *data, size_t size, Config **ret, const char **ret_reason);

/* Creates the directory (0700) when missing and writes the file. */
int store_save(const char *path, const Config *c);
/* -ENOENT when there is no stored config; -EBADMSG when corrupt. */
int store_load(const char *path, Config **ret, const char **ret_reason);
