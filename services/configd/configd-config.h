/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* configd-config.h: a configuration as eve-configd holds it: the controller's ConfigResponse (cipher blocks
 * still encrypted) and the secrets found in it, each with a name a consumer asks for.
 *
 * Secrets, by kind (docs/CONFIG.md):
 *   wifi       networks[].wireless.wifiCfg[]  name "wifi.<wifiSSID>"      fields wifiPassword (primary),
 * wifiUserName datastore  datastores[]                   name "datastore.<id>"      fields dsPassword
 * (primary), dsAPIKey cloudinit  apps[]                         name "cloudinit.<displayname, else uuid>"
 * field protectedUserData A name is a valid systemd credential name: bytes other than [A-Za-z0-9_.-] in the
 * item are written "+hh".
 *
 * The transition plan: an item with a cipher block is served from the block only; its cleartext legacy
 * fields are wiped from memory as soon as the config is parsed (they are never used, stored or shown). An
 * item with cleartext and no cipher block is served from the cleartext, and each delivery is counted as
 * CLEARTEXT_FALLBACK. */
#pragma once

#include "config.pb-c.h"
#include "configd-cipher.h"

typedef Org__Lfedge__Eve__Config__ConfigResponse ConfigResponse;
typedef Org__Lfedge__Eve__Config__EdgeDevConfig EdgeDevConfig;

/* A config bigger than this is refused (network and disk alike). */
#define CONFIG_SIZE_MAX (1024U * 1024U)
#define SECRET_NAME_MAX 255U /* NAME_MAX: systemd credential names are file names */
#define SECRETS_MAX 1024U

typedef enum SecretKind {
        SECRET_KIND_WIFI,
        SECRET_KIND_DATASTORE,
        SECRET_KIND_CLOUDINIT,
        _SECRET_KIND_MAX,
        _SECRET_KIND_INVALID = -EINVAL,
} SecretKind;

const char *secret_kind_to_string(SecretKind k);
SecretKind secret_kind_from_string(const char *s);

#define SECRET_FIELDS_MAX 2U
/* The EncryptionBlock field names of a kind, primary first; NULL-terminated. */
const char *const *secret_kind_fields(SecretKind k);

typedef struct Secret {
        char *name; /* "<kind>.<escaped item>" */
        char *item; /* the item's id as the controller wrote it */
        SecretKind kind;
        const CipherBlock *block; /* inside Config.response; NULL: cleartext only */
        /* Cleartext legacy values (inside Config.response), used only when block is NULL; NULL or "" when
         * absent; in secret_kind_fields() order. */
        const char *clear[SECRET_FIELDS_MAX];
} Secret;

typedef struct Config {
        ConfigResponse *response; /* owns every string the secrets point to */
        Secret *secrets;
        size_t n_secrets;
        size_t n_duplicates; /* items dropped because an earlier one had the same name */
} Config;

/* Takes response (on success and on failure): finds the secrets, wipes the cleartext that cipher blocks
 * supersede. -EBADMSG when the config is unusable (no config in it, more than SECRETS_MAX secrets). */
int config_new(ConfigResponse *response, Config **ret);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* Parses a packed ConfigResponse (≤ CONFIG_SIZE_MAX) into a Config. -EBADMSG when it does not parse. */
int config_parse(const void *data, size_t size, Config **ret);
/* The packed ConfigResponse as held (superseded cleartext already wiped): what is stored. */
int config_pack(const Config *c, uint8_t **ret, size_t *ret_size);

const char *config_hash(const Config *c);
const Secret *config_find_secret(const Config *c, const char *name);
/* The escaped credential-name form of an item ("+hh" for bytes outside [A-Za-z0-9_.-]). NULL on ENOMEM or
 * when the result would be longer than SECRET_NAME_MAX. */
char *secret_name_make(SecretKind k, const char *item);

/* One secret's values, in secret memory. */
typedef struct SecretValues {
        const char *primary; /* the kind's primary field name */
        size_t n;
        const char *field[SECRET_FIELDS_MAX]; /* static names */
        char *value[SECRET_FIELDS_MAX];       /* eve_secret_alloc'ed, NUL-terminated, never empty */
} SecretValues;
void secret_values_done(SecretValues *v);

/* The values of s's fields that are non-empty, from the decrypted block eb or (eb == NULL) from the
 * cleartext. -ENODATA when there is none at all (EVE bug #6337: never a "success" with empty fields). */
int secret_values_from(const Secret *s, const EncryptionBlock *eb, SecretValues *ret);
/* The value of one field ("" or NULL: the kind's primary one); NULL when empty or not a field of the kind.
 */
const char *secret_values_get(const SecretValues *v, const char *field);
