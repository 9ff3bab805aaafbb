/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.eve.Vault on the bus: the manager object and one object per vault (docs/DBUS_API.md). Reads are open
 * to everyone; whatever changes something, and whatever hands out escrow material, is for root and the admin
 * group only (bus_verify_admin: the named org.eve.Vault.Error.AccessDenied). */
#include <inttypes.h>
#include <pwd.h>

#include "bus-util.h"
#include "log.h"
#include "memory-util.h"
#include "vault-share.h"
#include "vaultd.h"

/* ---- helpers ---- */

static int verify_admin(sd_bus_message *m, sd_bus_error *error) {
        int r = bus_verify_admin(m, VAULT_ERROR_ACCESS_DENIED, error);
        return r < 0 ? r : r == 0 ? -EACCES : 1;
}

static int append_pcrs(sd_bus_message *reply, uint32_t mask) {
        int r = sd_bus_message_open_container(reply, 'a', "u");

        for (unsigned i = 0; r >= 0 && i < TPM2_PCRS_MAX; i++)
                if (mask & (UINT32_C(1) << i))
                        r = sd_bus_message_append(reply, "u", (uint32_t) i);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int read_pcrs(sd_bus_message *m, uint32_t *ret, sd_bus_error *error) {
        const uint32_t *p;
        size_t n;
        uint32_t mask = 0;
        int r;

        r = sd_bus_message_read_array(m, 'u', (const void **) &p, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n / sizeof(uint32_t); i++) {
                if (p[i] >= TPM2_PCRS_MAX)
                        return sd_bus_error_setf(
                                        error,
                                        VAULT_ERR("InvalidPolicy"),
                                        "PCR %" PRIu32 " is not 0-23.",
                                        p[i]);
                if (mask & (UINT32_C(1) << p[i]))
                        return sd_bus_error_setf(
                                        error,
                                        VAULT_ERR("InvalidPolicy"),
                                        "PCR %" PRIu32 " listed twice.",
                                        p[i]);
                mask |= UINT32_C(1) << p[i];
        }
        *ret = mask;
        return 0;
}

static int parse_key_source(const char *s, bool allow_empty, KeySource *ret, sd_bus_error *error) {
        KeySource k;

        if (allow_empty && isempty(s)) {
                *ret = _KEY_SOURCE_INVALID;
                return 0;
        }
        k = key_source_from_string(s);
        if (k < 0)
                return sd_bus_error_setf(
                                error,
                                VAULT_ERR("InvalidPolicy"),
                                "Unknown key source '%s' (tpm, tpm+controller, controller).",
                                s);
        *ret = k;
        return 0;
}

static int check_policy(KeySource source, uint32_t pcrs, sd_bus_error *error) {
        const char *why = NULL;

        if (pcrs && key_source_needs_tpm(source) && vault_pcr_policy_check(pcrs, &why) < 0)
                return sd_bus_error_setf(
                                error, VAULT_ERR("InvalidPolicy"), "Invalid sealing PCRs: %s.", why);
        return 0;
}

static int busy(Vault *v, sd_bus_error *error) {
        return sd_bus_error_setf(
                        error,
                        VAULT_ERR("Busy"),
                        "Vault %s is busy (%s); try again when it is done.",
                        v->name,
                        vault_state_to_string(v->state));
}

/* The new recovery key, once: a sensitive message (erased when freed), and gone from here once sent. */
static int reply_recovery_key(Job *j) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!j->recovery_key)
                return sd_bus_reply_method_errorf(
                                j->request, VAULT_ERR("Failed"), "The worker handed back no recovery key.");
        r = sd_bus_message_new_method_return(j->request, &reply);
        if (r >= 0)
                r = sd_bus_message_sensitive(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", j->recovery_key);
        j->recovery_key = eve_secret_free(j->recovery_key);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int job_reply(Job *j, const char *error_name, const char *message) {
        _cleanup_free_ char *full = NULL;
        const char *member;
        Vault *v = j->vault;
        int r;

        if (!j->request)
                return 0;
        member = sd_bus_message_get_member(j->request);
        /* A new vault exists even when its first activation failed: its state says why. */
        if (streq_ptr(member, "CreateVault") && j->type == JOB_UNLOCK)
                error_name = NULL;
        if (error_name) {
                if (asprintf(&full, VAULT_ERROR_PREFIX "%s", error_name) < 0)
                        return -ENOMEM;
                r = sd_bus_reply_method_errorf(j->request, full, "%s", message ?: error_name);
        } else if (streq_ptr(member, "CreateVault"))
                r = sd_bus_reply_method_return(j->request, "o", v->object_path);
        else if (streq_ptr(member, "ChangeKey"))
                r = sd_bus_reply_method_return(j->request, "b", !j->requested);
        else if (streq_ptr(member, "AddRecoveryKey"))
                r = reply_recovery_key(j);
        else
                r = sd_bus_reply_method_return(j->request, NULL);
        j->request = sd_bus_message_unref(j->request);
        return r;
}

/* ---- emitting ---- */

void vault_emit_changed(Vault *v) {
        if (!v || !v->manager->bus || v->removed)
                return;
        (void) sd_bus_emit_properties_changed_strv(v->manager->bus, v->object_path, VAULT_IFACE, NULL);
}

void vault_emit_progress(Vault *v) {
        if (!v->manager->bus || v->removed)
                return;
        (void) sd_bus_emit_properties_changed(
                        v->manager->bus, v->object_path, VAULT_IFACE, "Progress", NULL);
}

void manager_emit_changed(Manager *m, const char *property) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(
                                m->bus, VAULT_MANAGER_PATH, VAULT_MANAGER_IFACE, property, NULL);
}

void bus_vault_added(Vault *v) {
        if (!v->manager->bus)
                return;
        (void) sd_bus_emit_object_added(v->manager->bus, v->object_path);
        manager_emit_changed(v->manager, "Vaults");
}

void bus_vault_removed(Vault *v) {
        if (!v->manager->bus)
                return;
        (void) sd_bus_emit_object_removed(v->manager->bus, v->object_path);
        manager_emit_changed(v->manager, "Vaults");
}

/* ---- the manager ---- */

static int property_get_vaults(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        for (Vault *v = m->vaults; r >= 0 && v; v = v->next)
                r = sd_bus_message_append(reply, "o", v->object_path);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_escrow_pending(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", manager_escrow_pending(userdata));
}

static int property_get_default_pcrs(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {
        return append_pcrs(reply, VAULT_DEFAULT_PCRS);
}

static int method_list_vaults(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssso)");
        for (Vault *v = m->vaults; r >= 0 && v; v = v->next)
                r = sd_bus_message_append(
                                reply,
                                "(ssso)",
                                v->name,
                                v->uuid,
                                vault_state_to_string(v->state),
                                v->object_path);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_vault(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Vault *v;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        v = manager_find_vault(m, name);
        if (!v)
                return sd_bus_error_setf(error, VAULT_ERROR_NO_SUCH_VAULT, "No vault named '%s'.", name);
        return sd_bus_reply_method_return(msg, "o", v->object_path);
}

static int method_create_vault(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name, *source_str;
        KeySource source = _KEY_SOURCE_INVALID;
        uint64_t size;
        uint32_t pcrs;
        Vault *v;
        Job *j;
        int r;

        r = sd_bus_message_read(msg, "sts", &name, &size, &source_str);
        if (r < 0)
                return r;
        r = read_pcrs(msg, &pcrs, error);
        if (r != 0)
                return r;
        if (!vault_name_is_valid_for_bus(name))
                return sd_bus_error_setf(
                                error,
                                SD_BUS_ERROR_INVALID_ARGS,
                                "Invalid vault name '%s': 1-32 characters of a-z, 0-9 and '-', not "
                                "starting with '-'.",
                                name);
        if (size < LUKS2_IMAGE_SIZE_MIN)
                return sd_bus_error_setf(
                                error,
                                VAULT_ERR("InvalidPolicy"),
                                "Size %" PRIu64 " is below the minimum of 32 MiB.",
                                size);
        r = parse_key_source(source_str, false, &source, error);
        if (r < 0)
                return r;
        r = check_policy(source, pcrs, error);
        if (r < 0)
                return r;
        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        if (manager_find_vault(m, name))
                return sd_bus_error_setf(
                                error, VAULT_ERR("VaultExists"), "A vault named '%s' exists already.", name);

        r = manager_add_vault(m, name, size, &v);
        if (r < 0)
                return r;
        j = job_new(v, JOB_CREATE, msg);
        if (!j) {
                manager_remove_vault(m, v);
                return -ENOMEM;
        }
        j->size = size;
        j->key_source = source;
        j->pcr_mask = pcrs;
        j->chain_unlock = true;
        v->state = VAULT_CREATING;
        log_info("Creating vault %s (%" PRIu64 " MiB, key source %s).", name, size >> 20, source_str);
        bus_vault_added(v);
        job_enqueue(j);
        return 1;
}

static int method_delete_vault(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Vault *v;
        Job *j;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        v = manager_find_vault(m, name);
        if (!v)
                return sd_bus_error_setf(error, VAULT_ERROR_NO_SUCH_VAULT, "No vault named '%s'.", name);
        if (streq(name, VAULT_DEFAULT_IMAGE) || streq(name, VAULT_DEFAULT_CONFIG))
                return sd_bus_error_setf(
                                error,
                                VAULT_ERR("InvalidPolicy"),
                                "'%s' is a default vault; it cannot be deleted.",
                                name);
        if (v->n_jobs > 0)
                return busy(v, error);
        j = job_new(v, JOB_ERASE, msg);
        if (!j)
                return -ENOMEM;
        log_info("Deleting vault %s: its data will be gone.", name);
        job_enqueue_after_unmount(j);
        return 1;
}

static int method_get_escrow_keys(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        /* Not secret without this node's TPM, but with it (any member of group tss) an escrow blob is a key.
         */
        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = manager_escrow_keys(userdata, reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_confirm_escrow(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        int r;

        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        r = manager_confirm_escrow(userdata, msg, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_submit_keys(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        unsigned served = 0;
        int r;

        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        r = manager_submit_keys(userdata, msg, &served, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "u", served);
}

/* ApplyConfig: root, the admin group, or eve-configd's user (eve-config). */
static int verify_config_caller(sd_bus_message *msg, sd_bus_error *error) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        uid_t uid;
        int r;

        r = bus_verify_admin(msg, VAULT_ERROR_ACCESS_DENIED, error);
        if (r != 0)
                return r < 0 ? r : 1;
        if (bus_sender_uid(msg, &uid) >= 0 && getpwnam_r("eve-config", &pw, buf, sizeof buf, &res) == 0 &&
            res && res->pw_uid == uid) {
                sd_bus_error_free(error);
                return 1;
        }
        return -EACCES;
}

static int method_apply_config(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = verify_config_caller(msg, error);
        if (r < 0)
                return r;
        r = manager_apply_config(m, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = manager_append_config_status(m, reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int property_get_configured(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {
        return manager_append_config_status(userdata, reply);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Vaults", "ao", property_get_vaults, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EscrowPending",
                        "b",
                        property_get_escrow_pending,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DefaultSealingPCRs",
                        "au",
                        property_get_default_pcrs,
                        0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ConfiguredVaults",
                        "a(ssss)",
                        property_get_configured,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS(
                        "ListVaults",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("a(ssso)", vaults),
                        method_list_vaults,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "GetVault",
                        SD_BUS_ARGS("s", name),
                        SD_BUS_RESULT("o", vault),
                        method_get_vault,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "CreateVault",
                        SD_BUS_ARGS("s", name, "t", size, "s", key_source, "au", sealing_pcrs),
                        SD_BUS_RESULT("o", vault),
                        method_create_vault,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "DeleteVault",
                        SD_BUS_ARGS("s", name),
                        SD_BUS_NO_RESULT,
                        method_delete_vault,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "GetEscrowKeys",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("a(uay)", keys),
                        method_get_escrow_keys,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "ConfirmEscrow",
                        SD_BUS_ARGS("a(uay)", keys),
                        SD_BUS_NO_RESULT,
                        method_confirm_escrow,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "SubmitKeys",
                        SD_BUS_ARGS("a(uay)", keys),
                        SD_BUS_RESULT("u", served),
                        method_submit_keys,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "ApplyConfig",
                        SD_BUS_ARGS("a(ssstsauust)", vaults, "a(ss)", apps),
                        SD_BUS_RESULT("a(ssss)", status),
                        method_apply_config,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- one vault ---- */

#define GETTER(fn, ...)                      \
        static int fn(sd_bus *bus,           \
                      const char *path,      \
                      const char *interface, \
                      const char *property,  \
                      sd_bus_message *reply, \
                      void *userdata,        \
                      sd_bus_error *error) { \
                Vault *v = userdata;         \
                __VA_ARGS__;                 \
        }

GETTER(property_get_name, return sd_bus_message_append(reply, "s", v->name))
GETTER(property_get_uuid, return sd_bus_message_append(reply, "s", v->uuid))
GETTER(property_get_state, return sd_bus_message_append(reply, "s", vault_state_to_string(v->state)))
GETTER(property_get_unlock_method,
       return sd_bus_message_append(reply, "s", unlock_method_to_string(v->unlock_method)))
GETTER(property_get_mount_point, return sd_bus_message_append(reply, "s", v->mount_point))
GETTER(property_get_image, return sd_bus_message_append(reply, "s", v->image))
GETTER(property_get_device, {
        _cleanup_free_ char *dev = NULL;
        if (v->state == VAULT_UNLOCKED && asprintf(&dev, "/dev/mapper/%s", v->map_name) < 0)
                return -ENOMEM;
        return sd_bus_message_append(reply, "s", dev ?: "");
})
GETTER(property_get_size, return sd_bus_message_append(reply, "t", v->size))
GETTER(property_get_generation, return sd_bus_message_append(reply, "t", v->generation))
GETTER(property_get_key_source,
       return sd_bus_message_append(reply, "s", key_source_to_string(v->key_source)))
GETTER(property_get_requested_key_source,
       return sd_bus_message_append(
                       reply,
                       "s",
                       v->rotation == ROTATION_REQUESTED ? key_source_to_string(v->requested_key_source)
                                                         : ""))
GETTER(property_get_sealing_pcrs,
       return append_pcrs(reply, key_source_needs_tpm(v->key_source) ? v->pcr_mask : 0))
GETTER(property_get_pcr_policy, return sd_bus_message_append(reply, "s", v->pcr_source))
GETTER(property_get_moved_pcrs, return append_pcrs(reply, v->moved_pcrs))
GETTER(property_get_escrow_state, {
        const char *s = !key_source_needs_tpm(v->key_source) ? "not-needed"
                                                             : escrow_state_to_string(v->escrow);
        return sd_bus_message_append(reply, "s", s);
})
GETTER(property_get_rotation, return sd_bus_message_append(reply, "s", rotation_step_to_string(v->rotation)))
GETTER(property_get_keyslots, return sd_bus_message_append(reply, "u", (uint32_t) v->keyslots))
GETTER(property_get_has_recovery_key, return sd_bus_message_append(reply, "b", v->has_recovery_key))
GETTER(property_get_last_error, return sd_bus_message_append(reply, "s", v->last_error))
GETTER(property_get_last_error_name, return sd_bus_message_append(reply, "s", v->last_error_name))
GETTER(property_get_last_operation, return sd_bus_message_append(reply, "s", v->last_operation))
GETTER(property_get_last_operation_result,
       return sd_bus_message_append(reply, "s", v->last_operation_result))
GETTER(property_get_last_operation_time, return sd_bus_message_append(reply, "t", v->last_operation_usec))
GETTER(property_get_progress,
       return sd_bus_message_append(reply, "(stt)", v->progress_phase, v->progress_done, v->progress_total))

/* Unlock(), Lock(), AddRecoveryKey(), UnlockWithRecoveryKey(): one worker job, answered when it is done.
 * keys_json: for the worker's --keys-fd (taken; erased with the job). */
static int start_vault_job(
                sd_bus_message *msg, Vault *v, JobType type, char **keys_json, sd_bus_error *error) {
        Job *j;
        int r;

        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        if (v->n_jobs > 0)
                return busy(v, error);
        if (type == JOB_UNLOCK && !keys_json && v->state == VAULT_UNLOCKED)
                return sd_bus_reply_method_return(msg, NULL);
        j = job_new(v, type, msg);
        if (!j)
                return -ENOMEM;
        if (keys_json)
                j->keys_json = TAKE_PTR(*keys_json);
        if (type == JOB_LOCK)
                job_enqueue_after_unmount(j); /* systemd stops the units that need it and unmounts first */
        else
                job_enqueue(j);
        return 1;
}

static int method_unlock(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return start_vault_job(msg, userdata, JOB_UNLOCK, NULL, error);
}

static int method_lock(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return start_vault_job(msg, userdata, JOB_LOCK, NULL, error);
}

static int method_add_recovery_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return start_vault_job(msg, userdata, JOB_ADD_RECOVERY, NULL, error);
}

/* The key reaches the worker in its keys memfd, normalised; the request is erased when freed. */
static int method_unlock_with_recovery_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_secret_ char *key = NULL;
        _cleanup_(erase_and_freep) char *json = NULL;
        Vault *v = userdata;
        const char *typed;
        int r;

        (void) sd_bus_message_sensitive(msg);
        r = sd_bus_message_read(msg, "s", &typed);
        if (r < 0)
                return r;
        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        if (!v->has_recovery_key)
                return sd_bus_error_setf(
                                error, VAULT_ERR("KeyRejected"), "Vault %s has no recovery key.", v->name);
        if (vault_recovery_key_normalize(typed, &key) < 0)
                return sd_bus_error_setf(
                                error,
                                VAULT_ERR("KeyRejected"),
                                "Not a recovery key: 64 hexadecimal digits (in groups of 8) expected.");
        json = malloc(VAULT_RECOVERY_KEY_LEN + sizeof("{\"recovery\":\"\"}"));
        if (!json)
                return -ENOMEM;
        (void) sprintf(json, "{\"recovery\":\"%s\"}", key);
        return start_vault_job(msg, v, JOB_UNLOCK, &json, error);
}

static int method_change_key(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Vault *v = userdata;
        const char *source_str;
        KeySource source = _KEY_SOURCE_INVALID;
        uint32_t pcrs;
        Job *j;
        int r;

        r = sd_bus_message_read(msg, "s", &source_str);
        if (r < 0)
                return r;
        r = read_pcrs(msg, &pcrs, error);
        if (r != 0)
                return r;
        r = parse_key_source(source_str, true, &source, error);
        if (r < 0)
                return r;
        r = check_policy(source >= 0 ? source : v->key_source, pcrs, error);
        if (r < 0)
                return r;
        r = verify_admin(msg, error);
        if (r < 0)
                return r;
        if (v->n_jobs > 0)
                return busy(v, error);
        if (v->rotation == ROTATION_UNCONFIRMED)
                return sd_bus_error_setf(
                                error,
                                VAULT_ERR("Busy"),
                                "Vault %s: the previous key change (generation %" PRIu64 ") waits for the "
                                "controller to confirm its escrow; at most two keys at a time.",
                                v->name,
                                v->generation);
        j = job_new(v, JOB_ROTATE, msg);
        if (!j)
                return -ENOMEM;
        j->key_source = source;
        j->pcr_mask = pcrs;
        job_enqueue(j);
        return 1;
}

const sd_bus_vtable vault_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UnlockMethod",
                        "s",
                        property_get_unlock_method,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MountPoint", "s", property_get_mount_point, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Image", "s", property_get_image, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "s", property_get_device, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Size", "t", property_get_size, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("KeyGeneration",
                        "t",
                        property_get_generation,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KeySource", "s", property_get_key_source, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RequestedKeySource",
                        "s",
                        property_get_requested_key_source,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SealingPCRs",
                        "au",
                        property_get_sealing_pcrs,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PCRPolicy", "s", property_get_pcr_policy, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MovedPCRs", "au", property_get_moved_pcrs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EscrowState",
                        "s",
                        property_get_escrow_state,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Rotation", "s", property_get_rotation, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Keyslots", "u", property_get_keyslots, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HasRecoveryKey",
                        "b",
                        property_get_has_recovery_key,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", property_get_last_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastErrorName",
                        "s",
                        property_get_last_error_name,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastOperation",
                        "s",
                        property_get_last_operation,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastOperationResult",
                        "s",
                        property_get_last_operation_result,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastOperationTime",
                        "t",
                        property_get_last_operation_time,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "(stt)", property_get_progress, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS(
                        "Unlock",
                        SD_BUS_NO_ARGS,
                        SD_BUS_NO_RESULT,
                        method_unlock,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "Lock", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_lock, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "ChangeKey",
                        SD_BUS_ARGS("s", key_source, "au", sealing_pcrs),
                        SD_BUS_RESULT("b", completed),
                        method_change_key,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "AddRecoveryKey",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("s", recovery_key),
                        method_add_recovery_key,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "UnlockWithRecoveryKey",
                        SD_BUS_ARGS("s", recovery_key),
                        SD_BUS_NO_RESULT,
                        method_unlock_with_recovery_key,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- registration ---- */

static int
                find_vault(sd_bus *bus,
                           const char *path,
                           const char *interface,
                           void *userdata,
                           void **found,
                           sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        Manager *m = userdata;
        Vault *v;
        int r;

        r = sd_bus_path_decode(path, VAULT_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        v = manager_find_vault(m, name);
        if (!v)
                return 0;
        *found = v;
        return 1;
}

static int enumerate_vaults(
                sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        size_t n = 0;
        char **l = calloc(manager_count_vaults(m) + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (Vault *v = m->vaults; v; v = v->next) {
                l[n] = strdup(v->object_path);
                if (!l[n]) {
                        while (n > 0)
                                free(l[--n]);
                        free(l);
                        return -ENOMEM;
                }
                n++;
        }
        *nodes = l;
        return 0;
}

int bus_register(Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(
                        m->bus, NULL, VAULT_MANAGER_PATH, VAULT_MANAGER_IFACE, manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(
                                m->bus, NULL, VAULT_PATH_PREFIX, VAULT_IFACE, vault_vtable, find_vault, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(m->bus, NULL, VAULT_PATH_PREFIX, enumerate_vaults, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(m->bus, NULL, VAULT_MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to register the bus objects: %m");
        return 0;
}

int bus_print_introspection(void) {
        static const BusObjectImpl manager = { VAULT_MANAGER_PATH, VAULT_MANAGER_IFACE, manager_vtable };
        static const BusObjectImpl vault = { VAULT_PATH_PREFIX "/image", VAULT_IFACE, vault_vtable };
        const BusObjectImpl *const impls[] = { &manager, &vault, NULL };

        return bus_introspect_implementations(stdout, impls);
}
