/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <sys/stat.h>

#include "paths.h"

static const struct {
        const char *env;
        const char *def;
} table[_EVE_PATH_MAX] = {
        [EVE_PATH_CONFIG] = { "EVE_CONFIG_DIR", "/config" },
        [EVE_PATH_PERSIST] = { "EVE_PERSIST_DIR", "/persist" },
        [EVE_PATH_CERTS] = { "EVE_CERTS_DIR", "/persist/certs" },
        [EVE_PATH_STATUS] = { "EVE_STATUS_DIR", "/persist/status" },
        [EVE_PATH_VAULT] = { "EVE_VAULT_DIR", "/persist/vault" },
        [EVE_PATH_VAULTS] = { "EVE_VAULTS_DIR", "/persist/vaults" },
        [EVE_PATH_VAULT_IMG] = { "EVE_VAULT_IMAGES_DIR", "/persist/vault-images" },
        [EVE_PATH_RUN] = { "EVE_RUN_DIR", "/run/eve" },
        [EVE_PATH_EVENTLOG] = { "EVE_EVENTLOG", "/sys/kernel/security/tpm0/binary_bios_measurements" },
};

static char *overrides[_EVE_PATH_MAX];
static char *resolved[_EVE_PATH_MAX];

const char *eve_path_env_name(EvePath p) {
        if (p < 0 || p >= _EVE_PATH_MAX)
                return NULL;
        return table[p].env;
}

void eve_paths_reset(void) {
        for (size_t i = 0; i < _EVE_PATH_MAX; i++)
                resolved[i] = mfree(resolved[i]);
}

int eve_path_set(EvePath p, const char *value) {
        char *c = NULL;

        if (p < 0 || p >= _EVE_PATH_MAX)
                return -EINVAL;
        if (value) {
                c = strdup(value);
                if (!c)
                        return -ENOMEM;
        }
        free(overrides[p]);
        overrides[p] = c;
        resolved[p] = mfree(resolved[p]);
        return 0;
}

const char *eve_path(EvePath p) {
        const char *e, *root;

        if (p < 0 || p >= _EVE_PATH_MAX)
                return NULL;
        if (overrides[p])
                return overrides[p];
        if (resolved[p])
                return resolved[p];

        e = getenv_nonempty(table[p].env);
        root = getenv_nonempty("EVE_ROOT");
        if (e)
                resolved[p] = strdup(e);
        else if (root && asprintf(&resolved[p], "%s%s", root, table[p].def) < 0)
                resolved[p] = NULL;
        /* Out of memory: fall back to the compiled-in default rather than returning NULL. */
        return resolved[p] ?: table[p].def;
}

char *eve_path_join(EvePath p, const char *name) {
        char *s;

        if (asprintf(&s, "%s/%s", eve_path(p), name) < 0)
                return NULL;
        return s;
}

int eve_mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *slash = p + 1;; slash++) {
                bool end = *slash == '\0';

                if (!end && *slash != '/')
                        continue;
                *slash = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                if (end)
                        return 0;
                *slash = '/';
        }
}

const char *eve_tcti(void) {
        return getenv_nonempty("EVE_TPM2_TCTI") ?: DEFAULT_TCTI;
}
