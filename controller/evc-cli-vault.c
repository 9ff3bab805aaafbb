/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc vault add|set|remove|list, evc app set|list|remove: the vaults a node must have and the applications
 * that run on them (docs/CONTROLLER.md "Vaults"). Every change bumps the device's config version and hash.
 */
#include <time.h>

#include "evc-cli.h"
#include "evc-vault.h"
#include "log.h"
#include "proto-util.h"

/* Finds a vault of the device by UUID or name; its UUID in ret. */
static int vault_find(Evc *e, int64_t device_id, const char *what, char ret[static 37]) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char canon[37];
        int r, n = 0;

        r = evc_prepare(e->store,
                        "SELECT uuid FROM vaults WHERE device_id = ?1 AND (uuid = ?2 OR name = ?3)",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, evc_uuid_canonical(what, canon) >= 0 ? canon : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, what, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW) {
                snprintf(ret, 37, "%s", (const char *) sqlite3_column_text(st, 0));
                n++;
        }
        if (n == 0)
                return log_error_errno(ENOENT, "This device has no vault \"%s\".", what);
        if (n > 1)
                return log_error_errno(EUCLEAN, "\"%s\" names more than one vault; use its UUID.", what);
        return 0;
}

static bool name_taken(Evc *e, int64_t device_id, const char *name, const char *except_uuid) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (evc_prepare(e->store,
                        "SELECT 1 FROM vaults WHERE device_id = ? AND name = ? AND uuid != ?",
                        &st) < 0)
                return true;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, except_uuid ?: "", -1, SQLITE_TRANSIENT);
        return sqlite3_step(st) == SQLITE_ROW;
}

/* Applies the --options to v; *ret_pcrs_changed says whether --pcrs changed the list. */
static int vault_options(EvcVault *v, bool *ret_pcrs_changed) {
        unsigned long long x;
        char *end;
        int r;

        *ret_pcrs_changed = false;
        if (arg_size) {
                r = evc_vault_size_parse(arg_size, &v->size_limit);
                if (r < 0)
                        return log_error_errno(
                                        r,
                                        "Bad --size %s (bytes, or a number with K, M, G or T).",
                                        arg_size);
        }
        if (arg_key_source) {
                v->key_source = key_source_from_string(arg_key_source);
                if (v->key_source < 0)
                        return log_error_errno(
                                        EINVAL, "--key-source must be tpm, tpm+controller or controller.");
        }
        if (arg_vault_pcrs) {
                uint32_t mask;
                r = evc_vault_pcrs_parse(arg_vault_pcrs, &mask);
                if (r < 0)
                        return log_error_errno(
                                        r,
                                        "Bad --pcrs %s (indexes 0-31 separated by commas, or default).",
                                        arg_vault_pcrs);
                *ret_pcrs_changed = mask != v->pcrs;
                v->pcrs = mask;
        }
        if (arg_policy_id) {
                errno = 0;
                x = strtoull(arg_policy_id, &end, 10);
                if (errno != 0 || *end || isempty(arg_policy_id) || x > UINT32_MAX)
                        return log_error_errno(EINVAL, "Bad --policy-id %s.", arg_policy_id);
                v->policy_id = (uint32_t) x;
        }
        if (arg_state) {
                if (!streq(arg_state, "unlocked") && !streq(arg_state, "locked"))
                        return log_error_errno(EINVAL, "--state must be unlocked or locked.");
                v->locked = streq(arg_state, "locked");
        }
        return 0;
}

static int vault_validate(Evc *e, int64_t device_id, const EvcVault *v) {
        const char *why = NULL;

        /* --unchecked sends what the admin typed (to see a node refuse it); it still has to be storable. */
        if (arg_unchecked)
                return 0;
        if (evc_vault_check(v, &why) < 0)
                return log_error_errno(EINVAL, "Refused: %s (nothing changed).", why);
        if (name_taken(e, device_id, v->name, v->uuid))
                return log_error_errno(
                                EEXIST,
                                "Refused: this device has a vault named %s already (nothing changed).",
                                v->name);
        return 0;
}

static int vault_store(Evc *e, int64_t device_id, const EvcVault *v, bool is_new, const char *event) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store,
                        is_new ? "INSERT INTO vaults (device_id, uuid, name, size_limit, key_source, pcrs, "
                                 "policy_id, "
                                 "desired, key_generation, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                                 "?9, ?10)"
                               : "UPDATE vaults SET name = ?3, size_limit = ?4, key_source = ?5, pcrs = ?6, "
                                 "policy_id = ?7, desired = ?8, key_generation = ?9, version = version + 1 "
                                 "WHERE device_id = ?1 AND uuid = ?2",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, v->uuid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, v->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, (int64_t) v->size_limit);
        sqlite3_bind_text(st, 5, key_source_to_string(v->key_source), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, v->pcrs);
        sqlite3_bind_int64(st, 7, v->policy_id);
        sqlite3_bind_text(st, 8, v->locked ? "locked" : "unlocked", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, (int64_t) v->key_generation);
        if (is_new)
                sqlite3_bind_int64(st, 10, (int64_t) time(NULL));
        r = evc_step_done(e->store, st);
        if (r == -EEXIST) {
                log_error("This device has a vault with UUID %s already.", v->uuid);
                goto fail;
        }
        if (r < 0 || (r = evc_config_invalidate(e, device_id)) < 0 ||
            (r = evc_event(e->store, device_id, event)) < 0)
                goto fail;
        return evc_tx_commit(e->store);
fail:
        evc_tx_rollback(e->store);
        return r;
}

static int vault_add(Evc *e, int64_t device_id, const char *name) {
        EvcVault v = { .name = name, .key_source = KEY_SOURCE_TPM, .key_generation = 1 };
        bool pcrs_changed;
        int r;

        if (arg_uuid) {
                if (evc_uuid_canonical(arg_uuid, v.uuid) < 0)
                        return log_error_errno(EINVAL, "Bad --uuid %s.", arg_uuid);
        } else if ((r = evc_uuid_new(v.uuid)) < 0)
                return r;
        if (arg_rotate || arg_name)
                return log_error_errno(EINVAL, "--rotate and --name are for 'vault set'.");
        r = vault_options(&v, &pcrs_changed);
        if (r < 0)
                return r;
        if (v.pcrs != 0 && !arg_policy_id)
                v.policy_id = 1;
        r = vault_validate(e, device_id, &v);
        if (r < 0)
                return r;
        r = vault_store(e, device_id, &v, true, "vault added");
        if (r < 0)
                return r;
        if (arg_json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "uuid", jstr(v.uuid));
                return print_json(o);
        }
        printf("%s\n", v.uuid);
        return 0;
}

static int vault_set(Evc *e, int64_t device_id, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *name = NULL;
        EvcVault v = {};
        bool pcrs_changed;
        int r;

        if (!arg_name && !arg_size && !arg_key_source && !arg_vault_pcrs && !arg_policy_id && !arg_state &&
            !arg_rotate)
                return log_error_errno(EINVAL, "vault set: nothing to change (see --help).");
        if (arg_uuid)
                return log_error_errno(EINVAL, "A vault's UUID does not change.");
        r = vault_find(e, device_id, what, v.uuid);
        if (r < 0)
                return r;
        r = evc_prepare(e->store,
                        "SELECT name, size_limit, key_source, pcrs, policy_id, desired, key_generation FROM "
                        "vaults "
                        "WHERE device_id = ? AND uuid = ?",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, v.uuid, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        name = strdup(arg_name ?: col(st, 0));
        if (!name)
                return log_oom();
        v.name = name;
        v.size_limit = (uint64_t) sqlite3_column_int64(st, 1);
        v.key_source = key_source_from_string(col(st, 2));
        v.pcrs = (uint32_t) sqlite3_column_int64(st, 3);
        v.policy_id = (uint32_t) sqlite3_column_int64(st, 4);
        v.locked = streq(col(st, 5), "locked");
        v.key_generation = (uint64_t) sqlite3_column_int64(st, 6);
        st = evc_stmt_release(st);

        r = vault_options(&v, &pcrs_changed);
        if (r < 0)
                return r;
        /* A new PCR list gets a new policy id unless the admin names one: the node re-seals to it. */
        if (pcrs_changed && !arg_policy_id)
                v.policy_id = v.pcrs == 0 ? 0 : v.policy_id + 1;
        if (arg_rotate)
                v.key_generation++;
        r = vault_validate(e, device_id, &v);
        if (r < 0)
                return r;
        return vault_store(
                        e,
                        device_id,
                        &v,
                        false,
                        arg_rotate ? "vault changed (key generation raised)" : "vault changed");
}

static int vault_remove(Evc *e, int64_t device_id, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char uuid[37];
        int r;

        r = vault_find(e, device_id, what, uuid);
        if (r < 0)
                return r;
        r = evc_prepare(e->store,
                        "SELECT name FROM apps WHERE device_id = ? AND vault_uuid = ? ORDER BY name",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, uuid, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
                return log_error_errno(
                                EBUSY,
                                "Application %s runs on this vault: 'evc app set DEV %s --vault none' (or "
                                "remove it) first. Nothing changed.",
                                col(st, 0),
                                col(st, 0));
        st = evc_stmt_release(st);
        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store, "DELETE FROM vaults WHERE device_id = ? AND uuid = ?", &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, uuid, -1, SQLITE_TRANSIENT);
        if ((r = evc_step_done(e->store, st)) < 0 || (r = evc_config_invalidate(e, device_id)) < 0 ||
            (r = evc_event(e->store, device_id, "vault removed")) < 0 || (r = evc_tx_commit(e->store)) < 0)
                goto fail;
        if (!arg_json)
                printf("Vault %s removed from the config: the node deletes it, and its data, once its "
                       "applications "
                       "have stopped.\n",
                       uuid);
        return 0;
fail:
        evc_tx_rollback(e->store);
        return r;
}

/* ---- what the node reports ---- */

static Org__Lfedge__Eve__Info__ZInfoMsg *load_info(Evc *e, int64_t device_id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        Org__Lfedge__Eve__Info__ZInfoMsg *m = NULL;

        if (evc_prepare(e->store, "SELECT info FROM devices WHERE id = ?", &st) < 0)
                return NULL;
        sqlite3_bind_int64(st, 1, device_id);
        if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL)
                return NULL;
        if (PROTO_UNPACK(&org__lfedge__eve__info__zinfo_msg__descriptor,
                         sqlite3_column_blob(st, 0),
                         (size_t) sqlite3_column_bytes(st, 0),
                         1024 * 1024,
                         &m) < 0)
                return NULL;
        return m;
}

static const Org__Lfedge__Eve__Info__DataSecAtRest *dsar_of(const Org__Lfedge__Eve__Info__ZInfoMsg *m) {
        if (!m || m->info_content_case != ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO || !m->dinfo)
                return NULL;
        return m->dinfo->datasecatrestinfo;
}

/* The report about vault uuid (or, from a node without our extension, about name). */
static const Org__Lfedge__Eve__Info__VaultInfo *reported(
                const Org__Lfedge__Eve__Info__DataSecAtRest *d, const char *uuid, const char *name) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_vaultlist; i++)
                if (d->vaultlist[i]->eve_trust_status &&
                    streq_ptr(d->vaultlist[i]->eve_trust_status->uuid, uuid))
                        return d->vaultlist[i];
        for (size_t i = 0; i < d->n_vaultlist; i++)
                if (!d->vaultlist[i]->eve_trust_status && streq_ptr(d->vaultlist[i]->name, name))
                        return d->vaultlist[i];
        return NULL;
}

static json_object *vault_info_json(const Org__Lfedge__Eve__Info__VaultInfo *vi) {
        const Org__Lfedge__Eve__Info__EveTrustVaultStatus *x = vi->eve_trust_status;
        json_object *o = json_object_new_object();

        json_object_object_add(o, "name", jstr(vi->name));
        json_object_object_add(o, "status", json_object_new_int(vi->status));
        if (vi->vaulterr)
                json_object_object_add(o, "error", jstr(vi->vaulterr->description));
        json_object_object_add(o, "pcr_status", json_object_new_int(vi->pcrstatus));
        if (x) {
                json_object *moved = json_object_new_array(), *pcrs = json_object_new_array();
                for (size_t i = 0; i < x->n_moved_pcrs; i++)
                        json_object_array_add(moved, json_object_new_int((int) x->moved_pcrs[i]));
                for (size_t i = 0; i < x->n_pcr_indices; i++)
                        json_object_array_add(pcrs, json_object_new_int((int) x->pcr_indices[i]));
                json_object_object_add(o, "uuid", jstr(x->uuid));
                json_object_object_add(o, "config_version", jstr(x->config_version));
                json_object_object_add(o, "state", jstr(evc_vault_state_name(x->state)));
                json_object_object_add(o, "unlock_method", jstr(evc_vault_unlock_name(x->unlock_method)));
                json_object_object_add(o, "moved_pcrs", moved);
                json_object_object_add(o, "escrow", jstr(evc_vault_escrow_name(x->escrow_state)));
                json_object_object_add(
                                o, "key_generation", json_object_new_int64((int64_t) x->key_generation));
                json_object_object_add(o, "pcrs", pcrs);
                json_object_object_add(o, "policy_id", json_object_new_int64(x->policy_id));
                json_object_object_add(o, "last_operation", jstr(x->last_operation));
                json_object_object_add(
                                o, "last_operation_ok", json_object_new_boolean(x->last_operation_ok));
                json_object_object_add(o, "last_error", jstr(x->last_error));
        }
        return o;
}

/* One line: "unlocked (tpm), escrow confirmed, key generation 2, answers version 3; last rotate: ok". */
static void vault_info_line(const Org__Lfedge__Eve__Info__VaultInfo *vi) {
        const Org__Lfedge__Eve__Info__EveTrustVaultStatus *x = vi->eve_trust_status;
        char moved[128];

        if (!x) {
                printf("status %d%s%s",
                       vi->status,
                       vi->vaulterr ? ": " : "",
                       vi->vaulterr ? vi->vaulterr->description ?: "" : "");
                return;
        }
        printf("%s (%s), escrow %s, key generation %llu, answers version %s",
               evc_vault_state_name(x->state),
               evc_vault_unlock_name(x->unlock_method),
               evc_vault_escrow_name(x->escrow_state),
               (unsigned long long) x->key_generation,
               isempty(x->config_version) ? "-" : x->config_version);
        if (x->n_moved_pcrs > 0)
                printf(", moved PCRs %s",
                       evc_pcr_list_format(x->moved_pcrs, x->n_moved_pcrs, moved, sizeof moved));
        if (!isempty(x->last_operation))
                printf("; last %s: %s", x->last_operation, x->last_operation_ok ? "ok" : "failed");
        if (!isempty(x->last_error))
                printf(" (%s)", x->last_error);
        else if (vi->vaulterr && !isempty(vi->vaulterr->description))
                printf(" (%s)", vi->vaulterr->description);
}

void print_vault_info(const Org__Lfedge__Eve__Info__ZInfoDevice *di, json_object *o) {
        const Org__Lfedge__Eve__Info__DataSecAtRest *d = di ? di->datasecatrestinfo : NULL;

        if (!d || d->n_vaultlist == 0)
                return;
        if (o) {
                json_object *arr = json_object_new_array();
                for (size_t i = 0; i < d->n_vaultlist; i++)
                        json_object_array_add(arr, vault_info_json(d->vaultlist[i]));
                json_object_object_add(o, "vaults_reported", arr);
                return;
        }
        printf("  vaults reported:\n");
        for (size_t i = 0; i < d->n_vaultlist; i++) {
                printf("    %s %s: ",
                       d->vaultlist[i]->name ?: "-",
                       d->vaultlist[i]->eve_trust_status ? d->vaultlist[i]->eve_trust_status->uuid ?: ""
                                                         : "");
                vault_info_line(d->vaultlist[i]);
                printf("\n");
        }
}

static int vault_list(Evc *e, int64_t device_id) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Info__ZInfoMsg *m = load_info(e, device_id);
        const Org__Lfedge__Eve__Info__DataSecAtRest *d = dsar_of(m);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_object *arr = arg_json ? json_object_new_array() : NULL;
        int r;

        r = evc_prepare(e->store,
                        "SELECT " EVC_VAULT_COLUMNS " FROM vaults WHERE device_id = ? ORDER BY name, uuid",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        if (!arr)
                printf("%-36s  %-16s  %-14s  %-10s  %-20s  %-8s  %-3s  %-3s  %s\n",
                       "UUID",
                       "NAME",
                       "KEY SOURCE",
                       "SIZE",
                       "PCRS (POLICY)",
                       "DESIRED",
                       "GEN",
                       "VER",
                       "REPORTED");
        while (sqlite3_step(st) == SQLITE_ROW) {
                const Org__Lfedge__Eve__Info__VaultInfo *vi = reported(d, col(st, 0), col(st, 1));
                uint32_t mask = (uint32_t) sqlite3_column_int64(st, 5), pcrs[32];
                size_t n = 0;
                char list[128], size[32], pcol[160];

                for (uint32_t i = 0; i < 32; i++)
                        if (mask & (UINT32_C(1) << i))
                                pcrs[n++] = i;
                if (arr) {
                        json_object *o = json_object_new_object(), *pa = json_object_new_array();
                        for (size_t i = 0; i < n; i++)
                                json_object_array_add(pa, json_object_new_int((int) pcrs[i]));
                        json_object_object_add(o, "uuid", jstr(col(st, 0)));
                        json_object_object_add(o, "name", jstr(col(st, 1)));
                        json_object_object_add(
                                        o, "version", json_object_new_int64(sqlite3_column_int64(st, 2)));
                        json_object_object_add(
                                        o, "size_limit", json_object_new_int64(sqlite3_column_int64(st, 3)));
                        json_object_object_add(o, "key_source", jstr(col(st, 4)));
                        json_object_object_add(o, "pcrs", pa);
                        json_object_object_add(
                                        o, "policy_id", json_object_new_int64(sqlite3_column_int64(st, 6)));
                        json_object_object_add(o, "desired", jstr(col(st, 7)));
                        json_object_object_add(
                                        o,
                                        "key_generation",
                                        json_object_new_int64(sqlite3_column_int64(st, 8)));
                        if (vi)
                                json_object_object_add(o, "reported", vault_info_json(vi));
                        json_object_array_add(arr, o);
                        continue;
                }
                if (sqlite3_column_int64(st, 3) == 0)
                        snprintf(size, sizeof size, "default");
                else
                        snprintf(size,
                                 sizeof size,
                                 "%lldM",
                                 (long long) (sqlite3_column_int64(st, 3) >> 20));
                if (n == 0)
                        snprintf(pcol, sizeof pcol, "default");
                else
                        snprintf(pcol,
                                 sizeof pcol,
                                 "%s (%lld)",
                                 evc_pcr_list_format(pcrs, n, list, sizeof list),
                                 (long long) sqlite3_column_int64(st, 6));
                printf("%-36s  %-16s  %-14s  %-10s  %-20s  %-8s  %-3lld  %-3lld  ",
                       col(st, 0),
                       col(st, 1),
                       col(st, 4),
                       size,
                       pcol,
                       col(st, 7),
                       (long long) sqlite3_column_int64(st, 8),
                       (long long) sqlite3_column_int64(st, 2));
                if (vi)
                        vault_info_line(vi);
                else
                        printf("not reported yet");
                printf("\n");
        }
        return arr ? print_json(arr) : 0;
}

int verb_vault(Evc *e, char **pos, size_t n) {
        int64_t id;

        if (n < 3)
                return log_error_errno(
                                EINVAL,
                                "Usage: evc vault add DEV NAME … | set DEV VAULT … | remove DEV VAULT | "
                                "list DEV (see --help)");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        if (streq(pos[1], "list"))
                return vault_list(e, id);
        if (n < 4)
                return log_error_errno(EINVAL, "evc vault %s needs DEV and a vault.", pos[1]);
        if (streq(pos[1], "add"))
                return vault_add(e, id, pos[3]);
        if (streq(pos[1], "set"))
                return vault_set(e, id, pos[3]);
        if (streq(pos[1], "remove"))
                return vault_remove(e, id, pos[3]);
        return log_error_errno(EINVAL, "Unknown verb 'vault %s'.", pos[1]);
}

/* ---- applications ---- */

static int app_set(Evc *e, int64_t device_id, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char vault[37] = {}, uuid[37];
        int r;

        if (!arg_vault)
                return log_error_errno(EINVAL, "Usage: evc app set DEV APP --vault VAULT|none");
        if (!vault_name_is_valid(name))
                return log_error_errno(EINVAL, "Application names are 1-64 characters of A-Z a-z 0-9 _ -.");
        if (!streq(arg_vault, "none")) {
                r = vault_find(e, device_id, arg_vault, vault);
                if (r < 0)
                        return r;
        }
        r = evc_uuid_new(uuid);
        if (r < 0)
                return r;
        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store,
                        "INSERT INTO apps (device_id, name, uuid, vault_uuid) VALUES (?1, ?2, ?3, ?4) "
                        "ON CONFLICT (device_id, name) DO UPDATE SET vault_uuid = ?4, version = version + 1",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, uuid, -1, SQLITE_TRANSIENT);
        if (vault[0])
                sqlite3_bind_text(st, 4, vault, -1, SQLITE_TRANSIENT);
        if ((r = evc_step_done(e->store, st)) < 0 || (r = evc_config_invalidate(e, device_id)) < 0 ||
            (r = evc_event(e->store, device_id, "application set")) < 0 || (r = evc_tx_commit(e->store)) < 0)
                goto fail;
        return 0;
fail:
        evc_tx_rollback(e->store);
        return r;
}

static int app_list(Evc *e, int64_t device_id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_object *arr = arg_json ? json_object_new_array() : NULL;
        int r;

        r = evc_prepare(e->store,
                        "SELECT a.name, a.uuid, a.version, a.vault_uuid, v.name FROM apps a LEFT JOIN "
                        "vaults v "
                        "ON v.device_id = a.device_id AND v.uuid = a.vault_uuid WHERE a.device_id = ? ORDER "
                        "BY a.name",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        if (!arr)
                printf("%-24s  %-36s  %-3s  %s\n", "APP", "UUID", "VER", "VAULT");
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (arr) {
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "name", jstr(col(st, 0)));
                        json_object_object_add(o, "uuid", jstr(col(st, 1)));
                        json_object_object_add(
                                        o, "version", json_object_new_int64(sqlite3_column_int64(st, 2)));
                        json_object_object_add(
                                        o, "vault_uuid", jstr((const char *) sqlite3_column_text(st, 3)));
                        json_object_array_add(arr, o);
                } else
                        printf("%-24s  %-36s  %-3lld  %s %s\n",
                               col(st, 0),
                               col(st, 1),
                               (long long) sqlite3_column_int64(st, 2),
                               col(st, 3),
                               sqlite3_column_type(st, 4) != SQLITE_NULL ? col(st, 4) : "");
        }
        return arr ? print_json(arr) : 0;
}

static int app_remove(Evc *e, int64_t device_id, const char *name) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store, "DELETE FROM apps WHERE device_id = ? AND name = ?", &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, device_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        if ((r = evc_step_done(e->store, st)) < 0)
                goto fail;
        if (sqlite3_changes(e->store->db) == 0) {
                r = log_error_errno(ENOENT, "This device has no application %s.", name);
                goto fail;
        }
        if ((r = evc_config_invalidate(e, device_id)) < 0 ||
            (r = evc_event(e->store, device_id, "application removed")) < 0 ||
            (r = evc_tx_commit(e->store)) < 0)
                goto fail;
        return 0;
fail:
        evc_tx_rollback(e->store);
        return r;
}

int verb_app(Evc *e, char **pos, size_t n) {
        int64_t id;

        if (n < 3)
                return log_error_errno(
                                EINVAL,
                                "Usage: evc app set DEV APP --vault VAULT|none | list DEV | remove DEV APP");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        if (streq(pos[1], "list"))
                return app_list(e, id);
        if (n < 4)
                return log_error_errno(EINVAL, "evc app %s needs DEV and APP.", pos[1]);
        if (streq(pos[1], "set"))
                return app_set(e, id, pos[3]);
        if (streq(pos[1], "remove"))
                return app_remove(e, id, pos[3]);
        return log_error_errno(EINVAL, "Unknown verb 'app %s'.", pos[1]);
}
