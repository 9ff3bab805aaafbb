/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vaults the controller asks for (issue 12): eve-configd hands over the config's vault section
 * (EdgeDevConfig.eve_trust_vaults, proto/config.proto) and the applications bound to vaults with
 * org.eve.Vault.Manager.ApplyConfig after every config change and at its start; eve-vaultd converges towards
 * it one job at a time: creates missing vaults with the controller's UUID, deletes removed ones (after their
 * mount unit, and so their applications, stopped), locks and unlocks as desired, changes the key when the
 * controller raises the key generation or changes the key source or the sealing PCRs.
 *
 * Idempotent and resumable: the desired state and what was done towards it (the key generation a vault's key
 * answers, a key change under way, vaults being deleted, application bindings) are journalled in
 * <EVE_VAULT_IMG_DIR>/controller-vaults.json (written atomically before each step); everything else is read
 * back from the vaults themselves (their tokens). Converging twice changes nothing. An invalid entry is
 * refused alone with a reason (ConfiguredVaults), and never makes its vault go: the rest applies. */
#include <inttypes.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-util.h"
#include "crypto-util.h"
#include "log.h"
#include "paths.h"
#include "vault-share.h"
#include "vaultd.h"

#define JOURNAL_NAME "controller-vaults.json"
#define CONFIG_VAULTS_MAX 64U
#define CONFIG_APPS_MAX 256U
#define CONFIG_DEFAULT_SIZE (UINT64_C(64) << 20)
#define APP_NAME_MAX 200U

static void vault_config_done(VaultConfig *c) {
        c->version = mfree(c->version);
        c->name = mfree(c->name);
        c->refusal = mfree(c->refusal);
}

static void configs_free(VaultConfig *c, size_t n) {
        for (size_t i = 0; i < n; i++)
                vault_config_done(&c[i]);
        free(c);
}

static void strv_free_n(char **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(l[i]);
        free(l);
}

void manager_configs_free(Manager *m) {
        configs_free(m->configs, m->n_configs);
        configs_free(m->statuses, m->n_statuses);
        strv_free_n(m->deleting, m->n_deleting);
        strv_free_n(m->apps, m->n_apps * 2);
        m->configs = m->statuses = NULL;
        m->deleting = m->apps = NULL;
        m->n_configs = m->n_statuses = m->n_deleting = m->n_apps = 0;
}

static int vault_config_copy(VaultConfig *dst, const VaultConfig *src) {
        *dst = *src;
        dst->version = strdup(src->version ?: "");
        dst->name = strdup(src->name ?: "");
        dst->refusal = src->refusal ? strdup(src->refusal) : NULL;
        if (!dst->version || !dst->name || (src->refusal && !dst->refusal)) {
                vault_config_done(dst);
                return -ENOMEM;
        }
        return 0;
}

static VaultConfig *config_find(Manager *m, const char *uuid) {
        for (size_t i = 0; i < m->n_configs; i++)
                if (strcasecmp(m->configs[i].uuid, uuid) == 0)
                        return &m->configs[i];
        return NULL;
}

/* The vault an entry names: by UUID, or (before a worker has read its token) by name. */
static Vault *config_vault(Manager *m, const VaultConfig *c) {
        Vault *v = manager_find_vault_by_uuid(m, c->uuid);

        if (!v && (v = manager_find_vault(m, c->name)) && v->uuid[0])
                v = NULL; /* another vault of that name: the entry was refused for it */
        return v;
}

bool manager_wants_locked(Manager *m, Vault *v) {
        for (size_t i = 0; i < m->n_configs; i++)
                if (config_vault(m, &m->configs[i]) == v)
                        return m->configs[i].locked;
        return false;
}

static uint32_t config_pcrs(const VaultConfig *c) {
        return c->pcr_mask ?: VAULT_DEFAULT_PCRS;
}

static void config_pcr_source(const VaultConfig *c, char *buf, size_t size) {
        if (c->pcr_mask)
                (void) snprintf(buf, size, "policy:%" PRIu32, c->policy_id);
        else
                (void) snprintf(buf, size, "default");
}

/* ---- the journal ---- */

static char *journal_path(void) {
        return eve_path_join(EVE_PATH_VAULT_IMG, JOURNAL_NAME);
}

static json_object *config_to_json(const VaultConfig *c) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "uuid", json_object_new_string(c->uuid));
        json_object_object_add(o, "version", json_object_new_string(c->version ?: ""));
        json_object_object_add(o, "name", json_object_new_string(c->name ?: ""));
        json_object_object_add(o, "size", json_object_new_int64((int64_t) c->size));
        json_object_object_add(o, "key_source", json_object_new_string(key_source_to_string(c->key_source)));
        json_object_object_add(o, "pcrs", json_object_new_int64(c->pcr_mask));
        json_object_object_add(o, "policy_id", json_object_new_int64(c->policy_id));
        json_object_object_add(o, "locked", json_object_new_boolean(c->locked));
        json_object_object_add(o, "key_generation", json_object_new_int64((int64_t) c->key_generation));
        json_object_object_add(o, "done_generation", json_object_new_int64((int64_t) c->done_generation));
        json_object_object_add(o, "rotating_to", json_object_new_int64((int64_t) c->rotating_to));
        json_object_object_add(o, "rotate_base", json_object_new_int64((int64_t) c->rotate_base));
        json_object_object_add(o, "creating", json_object_new_boolean(c->creating));
        return o;
}

static int journal_save(Manager *m) {
        _cleanup_free_ char *path = journal_path();
        json_object *o = json_object_new_object(), *vaults = json_object_new_array(),
                    *del = json_object_new_array(), *apps = json_object_new_array();
        const char *text;
        int r;

        if (!path || !o || !vaults || !del || !apps) {
                json_object_put(o);
                json_object_put(vaults);
                json_object_put(del);
                json_object_put(apps);
                return log_oom();
        }
        for (size_t i = 0; i < m->n_configs; i++)
                json_object_array_add(vaults, config_to_json(&m->configs[i]));
        for (size_t i = 0; i < m->n_deleting; i++)
                json_object_array_add(del, json_object_new_string(m->deleting[i]));
        for (size_t i = 0; i < m->n_apps; i++) {
                json_object *a = json_object_new_object();
                json_object_object_add(a, "app", json_object_new_string(m->apps[2 * i]));
                json_object_object_add(a, "vault", json_object_new_string(m->apps[2 * i + 1]));
                json_object_array_add(apps, a);
        }
        json_object_object_add(o, "vaults", vaults);
        json_object_object_add(o, "deleting", del);
        json_object_object_add(o, "apps", apps);
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        r = crypto_write_file_atomic(path, text, strlen(text), 0600);
        json_object_put(o);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", path);
        return 0;
}

static uint64_t ju64(json_object *o, const char *k) {
        return (uint64_t) MAX(jint(o, k, 0), 0);
}

int manager_load_configs(Manager *m) {
        _cleanup_free_ char *path = journal_path(), *text = NULL;
        json_object *o, *a;
        size_t n;
        int r;

        if (!path)
                return log_oom();
        r = crypto_read_file(path, false, &text, &n);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", path);
        o = json_tokener_parse(text);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return log_error_errno(
                                SYNTHETIC_ERRNO(EBADMSG),
                                "%s does not parse; waiting for eve-configd's next ApplyConfig.",
                                path);
        }
        manager_configs_free(m);
        if (json_object_object_get_ex(o, "vaults", &a) && json_object_is_type(a, json_type_array)) {
                n = MIN(json_object_array_length(a), (size_t) CONFIG_VAULTS_MAX);
                m->configs = calloc(MAX(n, (size_t) 1), sizeof(VaultConfig));
                for (size_t i = 0; m->configs && i < n; i++) {
                        json_object *e = json_object_array_get_idx(a, i);
                        VaultConfig *c = &m->configs[m->n_configs];
                        KeySource ks = key_source_from_string(jstr(e, "key_source"));
                        json_object *b;

                        if (!jstr(e, "uuid") || !jstr(e, "name") ||
                            strlen(jstr(e, "uuid")) != LUKS2_UUID_STRING_SIZE - 1)
                                continue;
                        strcpy(c->uuid, jstr(e, "uuid"));
                        c->version = strdup(jstr(e, "version") ?: "");
                        c->name = strdup(jstr(e, "name"));
                        if (!c->version || !c->name) {
                                vault_config_done(c);
                                break;
                        }
                        c->size = ju64(e, "size");
                        c->key_source = ks >= 0 ? ks : KEY_SOURCE_TPM;
                        c->pcr_mask = (uint32_t) ju64(e, "pcrs");
                        c->policy_id = (uint32_t) ju64(e, "policy_id");
                        c->locked = json_object_object_get_ex(e, "locked", &b) && json_object_get_boolean(b);
                        c->key_generation = ju64(e, "key_generation");
                        c->done_generation = ju64(e, "done_generation");
                        c->rotating_to = ju64(e, "rotating_to");
                        c->rotate_base = ju64(e, "rotate_base");
                        c->creating = json_object_object_get_ex(e, "creating", &b) &&
                                        json_object_get_boolean(b);
                        m->n_configs++;
                }
        }
        if (json_object_object_get_ex(o, "deleting", &a) && json_object_is_type(a, json_type_array)) {
                n = MIN(json_object_array_length(a), (size_t) CONFIG_VAULTS_MAX);
                m->deleting = calloc(MAX(n, (size_t) 1), sizeof(char *));
                for (size_t i = 0; m->deleting && i < n; i++) {
                        json_object *e = json_object_array_get_idx(a, i);
                        if (json_object_is_type(e, json_type_string) &&
                            (m->deleting[m->n_deleting] = strdup(json_object_get_string(e))))
                                m->n_deleting++;
                }
        }
        if (json_object_object_get_ex(o, "apps", &a) && json_object_is_type(a, json_type_array)) {
                n = MIN(json_object_array_length(a), (size_t) CONFIG_APPS_MAX);
                m->apps = calloc(MAX(2 * n, (size_t) 1), sizeof(char *));
                for (size_t i = 0; m->apps && i < n; i++) {
                        json_object *e = json_object_array_get_idx(a, i);
                        char *app = jstr(e, "app") ? strdup(jstr(e, "app")) : NULL,
                             *vault = jstr(e, "vault") ? strdup(jstr(e, "vault")) : NULL;
                        if (!app || !vault) {
                                free(app);
                                free(vault);
                                continue;
                        }
                        m->apps[2 * m->n_apps] = app;
                        m->apps[2 * m->n_apps + 1] = vault;
                        m->n_apps++;
                }
        }
        json_object_put(o);
        log_info("Controller's vaults from %s: %zu configured, %zu being deleted, %zu applications bound.",
                 path,
                 m->n_configs,
                 m->n_deleting,
                 m->n_apps);
        return 0;
}

/* ---- ApplyConfig ---- */

static bool uuid_is_valid(const char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

/* systemd's unit-name characters (the instance is escaped by eve-configd as systemd-escape does). */
static bool app_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > APP_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr(":_.\\-", s[i])))
                        return false;
        return true;
}

static int refuse(VaultConfig *c, const char *fmt, ...) _printf_(2, 3);
static int refuse(VaultConfig *c, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        if (c->refusal)
                return 0; /* the first reason */
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        c->refusal = s ?: strdup("refused");
        return 0;
}

/* Reads one (ssstsauust) entry; its refusal (a reason for a person) when it breaks a rule of its own. */
static int read_config_entry(sd_bus_message *msg, VaultConfig *c) {
        const char *uuid, *version, *name, *source, *desired;
        const uint32_t *pcrs;
        size_t n;
        int r;

        r = sd_bus_message_enter_container(msg, 'r', "ssstsauust");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(msg, "ssst", &uuid, &version, &name, &c->size);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &source);
        if (r >= 0)
                r = sd_bus_message_read_array(msg, 'u', (const void **) &pcrs, &n);
        if (r >= 0)
                r = sd_bus_message_read(msg, "ust", &c->policy_id, &desired, &c->key_generation);
        if (r >= 0)
                r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        (void) snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
        for (char *p = c->uuid; *p; p++)
                if (*p >= 'A' && *p <= 'F')
                        *p = (char) (*p - 'A' + 'a');
        c->version = strdup(version);
        c->name = strdup(name);
        if (!c->version || !c->name)
                return -ENOMEM;

        if (!uuid_is_valid(c->uuid))
                refuse(c, "'%s' is not a UUID", uuid);
        if (!vault_name_is_valid_for_bus(name))
                refuse(c,
                       "invalid vault name '%s' (1-32 characters of a-z, 0-9 and '-', not starting with "
                       "'-')",
                       name);
        if (streq(name, VAULT_DEFAULT_IMAGE) || streq(name, VAULT_DEFAULT_CONFIG))
                refuse(c,
                       "'%s' is a default vault of the node; it cannot be configured by the controller",
                       name);
        if (c->size != 0 && c->size < LUKS2_IMAGE_SIZE_MIN)
                refuse(c,
                       "size limit %" PRIu64 " bytes is below the minimum of 32 MiB (%" PRIu64 " bytes)",
                       c->size,
                       (uint64_t) LUKS2_IMAGE_SIZE_MIN);
        if (isempty(source))
                c->key_source = KEY_SOURCE_TPM;
        else if ((c->key_source = key_source_from_string(source)) < 0) {
                c->key_source = KEY_SOURCE_TPM;
                refuse(c, "unknown key source '%s' (tpm, tpm+controller, controller)", source);
        }
        for (size_t i = 0; i < n / sizeof(uint32_t); i++) {
                if (pcrs[i] > 15) {
                        refuse(c, "invalid sealing PCRs: PCR %" PRIu32 " is not 0-15", pcrs[i]);
                        break;
                }
                if (c->pcr_mask & (UINT32_C(1) << pcrs[i])) {
                        refuse(c, "invalid sealing PCRs: PCR %" PRIu32 " listed twice", pcrs[i]);
                        break;
                }
                c->pcr_mask |= UINT32_C(1) << pcrs[i];
        }
        if (!c->refusal && c->pcr_mask && key_source_needs_tpm(c->key_source)) {
                const char *why = NULL;
                if (vault_pcr_policy_check(c->pcr_mask, &why) < 0)
                        refuse(c, "invalid sealing PCRs: %s", why);
        }
        if (!c->refusal && c->pcr_mask && !key_source_needs_tpm(c->key_source))
                refuse(c, "sealing PCRs given for key source 'controller', which has no TPM key");
        if (streq(desired, "locked"))
                c->locked = true;
        else if (isempty(desired) || streq(desired, "unlocked"))
                c->locked = false;
        else
                refuse(c, "unknown desired state '%s' (unlocked, locked)", desired);
        return 1;
}

static int strv_push(char ***l, size_t *n, const char *s) {
        char **p = realloc(*l, (*n + 1) * sizeof(char *));

        if (!p)
                return -ENOMEM;
        *l = p;
        p[*n] = strdup(s);
        if (!p[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

static bool strv_has(char **l, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcasecmp(l[i], s) == 0)
                        return true;
        return false;
}

int manager_apply_config(Manager *m, sd_bus_message *msg, sd_bus_error *error) {
        VaultConfig *entries = NULL, *accepted = NULL;
        size_t n_entries = 0, n_accepted = 0, n_strs = 0;
        char **apps = NULL;
        int r;

        entries = calloc(CONFIG_VAULTS_MAX, sizeof(VaultConfig));
        accepted = calloc(CONFIG_VAULTS_MAX, sizeof(VaultConfig));
        if (!entries || !accepted) {
                r = -ENOMEM;
                goto finish;
        }
        r = sd_bus_message_enter_container(msg, 'a', "(ssstsauust)");
        if (r < 0)
                goto finish;
        for (;;) {
                if (n_entries >= CONFIG_VAULTS_MAX) {
                        r = sd_bus_error_setf(
                                        error,
                                        SD_BUS_ERROR_INVALID_ARGS,
                                        "More than %u vaults.",
                                        CONFIG_VAULTS_MAX);
                        goto finish;
                }
                r = read_config_entry(msg, &entries[n_entries]);
                if (r == -ENOMEM)
                        goto finish;
                if (r < 0) {
                        vault_config_done(&entries[n_entries]);
                        goto finish;
                }
                if (r == 0)
                        break;
                n_entries++;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto finish;
        r = sd_bus_message_enter_container(msg, 'a', "(ss)");
        if (r < 0)
                goto finish;
        for (;;) {
                const char *app, *vault;

                r = sd_bus_message_read(msg, "(ss)", &app, &vault);
                if (r < 0)
                        goto finish;
                if (r == 0)
                        break;
                if (n_strs >= 2 * CONFIG_APPS_MAX || !app_name_is_valid(app) || !uuid_is_valid(vault)) {
                        log_warning("ApplyConfig: ignoring the binding of application '%s' to vault '%s'.",
                                    app,
                                    vault);
                        continue;
                }
                r = strv_push(&apps, &n_strs, app);
                if (r >= 0)
                        r = strv_push(&apps, &n_strs, vault);
                if (r < 0)
                        goto finish;
        }
        if (n_strs % 2 != 0) {
                r = -ENOMEM; /* the second of a pair failed */
                goto finish;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto finish;

        /* Rules across entries and against the vaults that exist. */
        for (size_t i = 0; i < n_entries; i++) {
                VaultConfig *c = &entries[i];
                Vault *v;
                unsigned same_name = 0, same_uuid = 0;

                for (size_t k = 0; k < n_entries; k++) {
                        same_name += streq(entries[k].name, c->name);
                        same_uuid += streq(entries[k].uuid, c->uuid);
                }
                if (same_uuid > 1)
                        refuse(c, "vault UUID %s is listed %u times", c->uuid, same_uuid);
                if (same_name > 1)
                        refuse(c, "duplicate vault name '%s' (%u entries)", c->name, same_name);
                v = manager_find_vault(m, c->name);
                if (v && v->uuid[0] && strcasecmp(v->uuid, c->uuid) != 0)
                        refuse(c,
                               "the name '%s' belongs to another vault (%s) on this node",
                               c->name,
                               v->uuid);
                v = manager_find_vault_by_uuid(m, c->uuid);
                if (v && !streq(v->name, c->name))
                        refuse(c,
                               "vault %s is named '%s' on this node; renaming is not supported",
                               c->uuid,
                               v->name);
        }

        /* What to converge to: the accepted entries; for a refused one the last accepted entry of its UUID
         * (a refusal never deletes a vault). */
        for (size_t i = 0; i < n_entries; i++) {
                VaultConfig *c = &entries[i], *old = config_find(m, c->uuid);
                VaultConfig *a = &accepted[n_accepted];

                if (c->refusal) {
                        log_warning("Vault configuration %s (%s) refused: %s.",
                                    c->uuid,
                                    c->name,
                                    c->refusal);
                        if (!old)
                                continue;
                        r = vault_config_copy(a, old);
                        if (r < 0)
                                goto finish;
                        a->refusal = mfree(a->refusal);
                        n_accepted++;
                        continue;
                }
                r = vault_config_copy(a, c);
                if (r < 0)
                        goto finish;
                n_accepted++;
                if (old) {
                        a->done_generation = old->done_generation;
                        a->rotating_to = old->rotating_to;
                        a->rotate_base = old->rotate_base;
                        a->creating = old->creating;
                        a->recreated = old->recreated;
                        /* A new entry version is a new chance for what failed before. */
                        a->blocked = old->blocked && streq(old->version, c->version);
                        a->unlock_tried = old->unlock_tried && old->locked == c->locked &&
                                        streq(old->version, c->version);
                } else
                        /* A vault created now, or an existing one taken over: its key is the generation
                         * asked for now. */
                        a->done_generation = c->key_generation;
        }
        /* Vaults configured before and absent now go. */
        for (size_t i = 0; i < m->n_configs; i++) {
                bool kept = false;

                for (size_t k = 0; k < n_accepted; k++)
                        kept = kept || strcasecmp(accepted[k].uuid, m->configs[i].uuid) == 0;
                if (kept || strv_has(m->deleting, m->n_deleting, m->configs[i].uuid))
                        continue;
                log_notice("Vault %s (%s) is no longer configured: it will be deleted, and its data is "
                           "gone.",
                           m->configs[i].name,
                           m->configs[i].uuid);
                r = strv_push(&m->deleting, &m->n_deleting, m->configs[i].uuid);
                if (r < 0)
                        goto finish;
        }
        /* A vault configured again while waiting to be deleted stays. */
        for (size_t k = 0; k < n_accepted; k++)
                for (size_t i = 0; i < m->n_deleting; i++)
                        if (strcasecmp(m->deleting[i], accepted[k].uuid) == 0) {
                                free(m->deleting[i]);
                                m->deleting[i] = m->deleting[--m->n_deleting];
                                break;
                        }

        configs_free(m->configs, m->n_configs);
        m->configs = TAKE_PTR(accepted);
        m->n_configs = n_accepted;
        configs_free(m->statuses, m->n_statuses);
        m->statuses = TAKE_PTR(entries);
        m->n_statuses = n_entries;
        strv_free_n(m->apps, m->n_apps * 2);
        m->apps = TAKE_PTR(apps);
        m->n_apps = n_strs / 2;
        n_entries = n_accepted = n_strs = 0;

        r = journal_save(m);
        if (r < 0) {
                r = sd_bus_error_setf(
                                error,
                                VAULT_ERR("Failed"),
                                "Cannot journal the configuration: %s",
                                strerror(-r));
                goto finish;
        }
        log_info("Vault configuration applied: %zu entries, %zu accepted, %zu vaults to delete, %zu "
                 "applications bound.",
                 m->n_statuses,
                 m->n_configs,
                 m->n_deleting,
                 m->n_apps);
        (void) manager_write_app_units(m);
        manager_emit_changed(m, "ConfiguredVaults");
        manager_converge(m);
        r = 0;
finish:
        configs_free(entries, n_entries);
        configs_free(accepted, n_accepted);
        strv_free_n(apps, n_strs);
        return r;
}

/* a(ssss): UUID, name, version, refusal ("" accepted). */
int manager_append_config_status(Manager *m, sd_bus_message *reply) {
        int r = sd_bus_message_open_container(reply, 'a', "(ssss)");

        for (size_t i = 0; r >= 0 && i < m->n_statuses; i++)
                r = sd_bus_message_append(
                                reply,
                                "(ssss)",
                                m->statuses[i].uuid,
                                m->statuses[i].name,
                                m->statuses[i].version,
                                m->statuses[i].refusal ?: "");
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* ---- converging ---- */

static bool manager_idle(Manager *m) {
        if (m->running || m->queue)
                return false;
        for (Vault *v = m->vaults; v; v = v->next)
                if (v->n_jobs > 0)
                        return false;
        return true;
}

static void config_set_blocked(Manager *m, Vault *v, bool blocked) {
        for (size_t i = 0; i < m->n_configs; i++)
                if (config_vault(m, &m->configs[i]) == v)
                        m->configs[i].blocked = blocked;
}

void manager_converge_job_done(Manager *m, Vault *v, JobType type, bool ok) {
        if (!m->converging || !v)
                return;
        m->converging = false;
        if (!ok && type != JOB_UNLOCK && type != JOB_INSPECT) {
                log_warning("Vault %s: %s failed; not converging this vault further until its configuration "
                            "changes.",
                            v->name,
                            job_type_to_string(type));
                config_set_blocked(m, v, true);
        }
}

static bool start(Manager *m, Job *j, bool after_unmount) {
        m->converging = true;
        if (after_unmount)
                job_enqueue_after_unmount(j);
        else
                job_enqueue(j);
        return true;
}

/* A creation of ours that was interrupted (the worker killed, the daemon stopped mid-way) leaves an image
 * that is no vault yet: nothing was ever stored in it. Removes it so that the creation starts again — once
 * per run, and only a regular file (a partition is never touched here). True when v is gone. */
static bool drop_unfinished(Manager *m, VaultConfig *c, Vault *v) {
        struct stat st;

        if (!c->creating || c->recreated || v->n_jobs > 0 || v->state != VAULT_ERROR ||
            (v->uuid[0] && strcasecmp(v->uuid, c->uuid) != 0) ||
            !(streq(v->last_error_name, VAULT_ERR(VAULT_ERROR_BAD_IMAGE)) ||
              streq(v->last_error_name, VAULT_ERR(VAULT_ERROR_EXISTS))))
                return false;
        if (lstat(v->image, &st) < 0 ? errno != ENOENT : !S_ISREG(st.st_mode))
                return false;
        log_notice("Vault %s: its creation was interrupted (%s); removing the unfinished image and creating "
                   "it "
                   "again.",
                   v->name,
                   v->last_error);
        if (unlink(v->image) < 0 && errno != ENOENT) {
                log_warning_errno(errno, "Vault %s: cannot remove %s: %m", v->name, v->image);
                return false;
        }
        c->recreated = true;
        c->blocked = false;
        bus_vault_removed(v);
        manager_remove_vault(m, v);
        return true;
}

/* One step for an entry; true when a job was started. */
static bool converge_one(Manager *m, VaultConfig *c) {
        char source[64];
        Vault *v = config_vault(m, c);
        Job *j;
        int r;

        config_pcr_source(c, source, sizeof(source));
        if (v && drop_unfinished(m, c, v))
                v = NULL;
        if (v && c->creating && v->uuid[0] && v->n_jobs == 0 && v->state != VAULT_ERROR) {
                c->creating = false; /* created and read back */
                (void) journal_save(m);
        }
        if (!v) {
                if (manager_find_vault(m, c->name))
                        return false; /* another vault has the name (refused at ApplyConfig) */
                r = manager_add_vault(m, c->name, c->size ?: CONFIG_DEFAULT_SIZE, &v);
                if (r < 0) {
                        log_error_errno(r, "Vault %s: cannot add it: %m", c->name);
                        return false;
                }
                j = job_new(v, JOB_CREATE, NULL);
                if (!j)
                        return false;
                j->size = v->size;
                j->key_source = c->key_source;
                j->pcr_mask = key_source_needs_tpm(c->key_source) ? c->pcr_mask : 0;
                j->uuid = strdup(c->uuid);
                j->pcr_source = strdup(source);
                j->chain_unlock = !c->locked;
                c->unlock_tried = true;
                c->creating = true;
                (void) journal_save(m); /* before the step */
                v->state = VAULT_CREATING;
                log_info("Creating vault %s (%s, %" PRIu64 " MiB, key source %s, PCRs %s) as the controller "
                         "asks.",
                         c->name,
                         c->uuid,
                         v->size >> 20,
                         key_source_to_string(c->key_source),
                         source);
                bus_vault_added(v);
                return start(m, j, false);
        }
        if (c->blocked || v->state == VAULT_ERROR || !v->uuid[0])
                return false;

        /* A key change started before a crash: done when the vault's generation moved. */
        if (c->rotating_to && v->generation > c->rotate_base && v->rotation != ROTATION_REQUESTED) {
                c->done_generation = c->rotating_to;
                c->rotating_to = c->rotate_base = 0;
                (void) journal_save(m);
        }

        /* Lock first: a vault the controller wants locked is not rotated open. */
        if (c->locked && (v->state == VAULT_UNLOCKED || v->unlock_method != UNLOCK_NONE)) {
                j = job_new(v, JOB_LOCK, NULL);
                if (!j)
                        return false;
                c->unlock_tried = false;
                log_info("Locking vault %s as the controller asks.", v->name);
                return start(m, j, true);
        }

        if (v->rotation != ROTATION_UNCONFIRMED) {
                bool want_gen = c->key_generation > c->done_generation;
                bool want_source = v->key_source != c->key_source &&
                                !(v->rotation == ROTATION_REQUESTED &&
                                  v->requested_key_source == c->key_source);
                bool want_pcrs = key_source_needs_tpm(c->key_source) &&
                                (v->rotation == ROTATION_REQUESTED ? v->requested_pcr_mask != config_pcrs(c)
                                                                   : v->pcr_mask != config_pcrs(c) ||
                                                                 !streq(v->pcr_source, source));

                if (v->rotation == ROTATION_REQUESTED && !want_gen)
                        want_source = want_pcrs = false; /* recorded; runs when its key material comes */
                if (want_gen || want_source || want_pcrs) {
                        j = job_new(v, JOB_ROTATE, NULL);
                        if (!j)
                                return false;
                        j->key_source = want_source ? c->key_source : _KEY_SOURCE_INVALID;
                        j->pcr_mask = key_source_needs_tpm(c->key_source) ? config_pcrs(c) : 0;
                        j->pcr_source = j->pcr_mask ? strdup(source) : NULL;
                        c->rotating_to = MAX(c->key_generation, c->done_generation);
                        c->rotate_base = v->generation;
                        (void) journal_save(m); /* before the step */
                        log_info("Vault %s: changing its key as the controller asks (%s%s%s).",
                                 v->name,
                                 want_gen ? "key generation raised" : "",
                                 want_source ? (want_gen ? ", new key source" : "new key source") : "",
                                 want_pcrs ? (want_gen || want_source ? ", new sealing PCRs"
                                                                      : "new sealing PCRs")
                                           : "");
                        return start(m, j, false);
                }
        }

        if (!c->locked && v->state == VAULT_LOCKED && v->unlock_method == UNLOCK_NONE && !c->unlock_tried) {
                j = job_new(v, JOB_UNLOCK, NULL);
                if (!j)
                        return false;
                c->unlock_tried = true;
                log_info("Unlocking vault %s as the controller asks.", v->name);
                return start(m, j, false);
        }
        return false;
}

void manager_converge(Manager *m) {
        if (!manager_idle(m))
                return;
        m->converging = false;
        for (size_t i = 0; i < m->n_deleting; i++) {
                Vault *v = manager_find_vault_by_uuid(m, m->deleting[i]);
                Job *j;

                if (!v || streq(v->name, VAULT_DEFAULT_IMAGE) || streq(v->name, VAULT_DEFAULT_CONFIG)) {
                        if (v)
                                log_warning("Vault %s is a default vault; not deleting it.", v->name);
                        else
                                log_info("Vault %s is gone.", m->deleting[i]);
                        free(m->deleting[i]);
                        m->deleting[i] = m->deleting[--m->n_deleting];
                        (void) journal_save(m);
                        (void) manager_write_app_units(m);
                        i--;
                        continue;
                }
                if (v->state == VAULT_ERROR && streq(v->last_operation, "erase"))
                        continue; /* failed before: LastError says why */
                j = job_new(v, JOB_ERASE, NULL);
                if (!j)
                        return;
                log_notice("Deleting vault %s (%s) as the controller removed it: its applications are "
                           "stopped "
                           "first, then every keyslot is destroyed; its data is gone.",
                           v->name,
                           m->deleting[i]);
                (void) start(m, j, true);
                return;
        }
        for (size_t i = 0; i < m->n_configs; i++)
                if (converge_one(m, &m->configs[i]))
                        return;
}
