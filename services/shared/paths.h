/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* paths.h: every path a daemon uses comes from here, and each can be redirected (tests, images, --root). */
#pragma once

#include <sys/types.h>

#include "macro.h"

typedef enum EvePath {
        EVE_PATH_CONFIG,    /* /config: identity, controller address and root CA; measured into PCR 14 */
        EVE_PATH_PERSIST,   /* /persist */
        EVE_PATH_CERTS,     /* /persist/certs: ECDH, attestation, EK certificates */
        EVE_PATH_STATUS,    /* /persist/status: state outside the vaults (never secrets) */
        EVE_PATH_VAULT,     /* /persist/vault: the default vault's mount point */
        EVE_PATH_VAULTS,    /* /persist/vaults: mount points of further vaults */
        EVE_PATH_VAULT_IMG, /* /persist/vault-images: LUKS2 image files of file-backed vaults */
        EVE_PATH_RUN,       /* /run/eve: volatile state (integrity token, sockets) */
        EVE_PATH_EVENTLOG,  /* /sys/kernel/security/tpm0/binary_bios_measurements */
        _EVE_PATH_MAX,
        _EVE_PATH_INVALID = -EINVAL,
} EvePath;

/* The resolution order for each path: eve_path_set() (command line) > $EVE_<NAME> (e.g. $EVE_CONFIG_DIR) >
 * $EVE_ROOT prefixed to the default > the default. Never NULL. */
const char *eve_path(EvePath p);
/* Overrides one path (a copy is kept). NULL restores the environment/default resolution. */
int eve_path_set(EvePath p, const char *value);
/* Re-reads the environment on next use: for tests that change it. */
void eve_paths_reset(void);
/* eve_path(p) + "/" + name, newly allocated; NULL on ENOMEM. */
char *eve_path_join(EvePath p, const char *name);
const char *eve_path_env_name(EvePath p);
/* mkdir -p: creates path and its missing parents with mode; 0 when it exists or was made. */
int eve_mkdir_p(const char *path, mode_t mode);

/* TCTI for the TPM: $EVE_TPM2_TCTI, else the build's default (device:/dev/tpmrm0). */
const char *eve_tcti(void);
