/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* configd-acl.h: who may read which secret. Each secret has one ACL: a list of systemd units and a list of
 * UIDs; a caller is allowed when its unit (from its cgroup) or its UID is listed. Nobody is implied, not
 * even root. The ACL of a secret is, first match wins:
 *   1. a [Secret NAME] section of the drop-ins;
 *   2. a [Kind KIND] section of the drop-ins;
 *   3. the built-in default of its kind: wifi → eve-network.service, datastore → eve-downloader.service,
 *      cloudinit → eve-app@<app>.service (the application's own unit; <app> in unit-name escaping).
 * Drop-ins: every "*.conf" in the ACL directory (default $EVE_CONFIG_DIR/secrets.d, so on EVE-style nodes
 * the drop-ins are part of the measured /config), in lexical order; a later section for the same secret or
 * kind replaces an earlier one. Format (docs/CONFIG.md): # comment [Kind datastore]
 *   AllowUnit=my-downloader.service other.service
 *   AllowUser=eve-dl 1001
 *   [Secret wifi.office]
 *   AllowUnit=wpa_supplicant.service
 * In a unit name, "%i" stands for the secret's item in unit-name escaping (for per-application units). */
#pragma once

#include <sys/types.h>

#include "configd-config.h"

#define ACL_ENTRIES_MAX 64U
#define ACL_SECTIONS_MAX 1024U
#define ACL_FILE_MAX (64U * 1024U)

typedef struct Acl {
        char **units; /* unit names; may contain "%i" */
        size_t n_units;
        uid_t *uids;
        size_t n_uids;
} Acl;

typedef struct AclSection {
        char *secret;    /* [Secret NAME], or NULL */
        SecretKind kind; /* [Kind KIND] when secret is NULL */
        Acl acl;
} AclSection;

typedef struct AclConfig {
        AclSection *sections;
        size_t n_sections;
} AclConfig;

/* Reads the drop-ins of dir (NULL: $EVE_CONFIG_DIR/secrets.d; a missing directory is no drop-in). A
 * malformed line is logged with file and line and skipped; an unknown user is logged and skipped; nothing is
 * fatal but -ENOMEM. */
int acl_config_load(const char *dir, AclConfig **ret);
/* Parses one file's text into c (name is for messages). */
int acl_config_parse(AclConfig *c, const char *name, const char *text);
AclConfig *acl_config_free(AclConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(AclConfig *, acl_config_free);

/* The ACL that applies to s (never NULL: the built-in defaults are static Acls). */
const Acl *acl_for_secret(const AclConfig *c, const Secret *s);
/* Whether uid, or unit (may be NULL: unknown), may read s under acl. */
bool acl_allows(const Acl *acl, const Secret *s, uid_t uid, const char *unit);
/* The unit names of acl for s, "%i" expanded; NULL-terminated, newly allocated (strv). */
char **acl_units_expand(const Acl *acl, const Secret *s);

/* systemd's unit-name escaping of a string (systemd-escape): "/" → "-", bytes other than [A-Za-z0-9:_.]
 * (and a leading ".") → "\xhh". Newly allocated. */
char *unit_name_escape(const char *s);
void strv_free(char **l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
