/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.eve.Config at /org/eve/Config (docs/DBUS_API.md): the secrets' names, kinds and ACLs for everyone, a
 * secret's values for the callers on its ACL, the state of the configuration and the cipher counters. */
#include <stddef.h>

#include "bus-util.h"
#include "configd-manager.h"
#include "log.h"

static int property_get_string(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {

        Manager *m = userdata;
        const char *v = "";

        if (streq(property, "ConfigHash"))
                v = config_hash(m->config) ?: "";
        else if (streq(property, "Origin"))
                v = config_origin_to_string(m->origin);
        else if (streq(property, "StorageState"))
                v = m->storage_state ?: "";
        else if (streq(property, "VaultState"))
                v = m->vault_state ?: "";
        else if (streq(property, "LastFetchResult"))
                v = fetch_result_to_string(m->last_result);
        else if (streq(property, "LastFetchError"))
                v = m->last_error ?: "";
        return sd_bus_message_append(reply, "s", v);
}

static int property_get_u64(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {

        Manager *m = userdata;
        uint64_t v = 0;

        if (streq(property, "LastFetch"))
                v = m->last_attempt;
        else if (streq(property, "LastSuccess"))
                v = m->last_success;
        else if (streq(property, "FetchInterval"))
                v = m->fetch_interval;
        else if (streq(property, "CipherSuccesses"))
                v = m->metrics.success;
        else if (streq(property, "CipherFailures"))
                v = m->metrics.failure;
        else if (streq(property, "CleartextFallbacks"))
                v = m->metrics.by_error[CIPHER_ERROR_CLEARTEXT_FALLBACK];
        else if (streq(property, "CredentialsServed"))
                v = m->credentials_served;
        else if (streq(property, "CredentialsRefused"))
                v = m->credentials_refused;
        return sd_bus_message_append(reply, "t", v);
}

static int property_get_secrets(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {

        Manager *m = userdata;
        return sd_bus_message_append(reply, "u", m->config ? (uint32_t) m->config->n_secrets : 0);
}

static int property_get_stored(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {

        Manager *m = userdata;
        return sd_bus_message_append(reply, "b", m->stored);
}

static int property_get_counters(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {

        Manager *m = userdata;
        bool by_error = streq(property, "CipherErrors");
        size_t n = by_error ? _CIPHER_ERROR_MAX : _CIPHER_FAILURE_MAX;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{st}");
        if (r < 0)
                return r;
        for (size_t i = by_error ? 1 : 0; i < n; i++) {
                r = sd_bus_message_append(
                                reply,
                                "{st}",
                                by_error ? cipher_error_to_string((CipherError) i)
                                         : cipher_failure_to_string((CipherFailure) i),
                                by_error ? m->metrics.by_error[i] : m->metrics.by_failure[i]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int method_list_secrets(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssasau)");
        if (r < 0)
                return r;
        for (size_t i = 0; m->config && i < m->config->n_secrets; i++) {
                const Secret *s = &m->config->secrets[i];
                const Acl *acl = acl_for_secret(m->acl, s);
                _cleanup_(strv_freep) char **units = acl_units_expand(acl, s);

                if (!units)
                        return -ENOMEM;
                r = sd_bus_message_open_container(reply, 'r', "sssasau");
                if (r >= 0)
                        r = sd_bus_message_append(
                                        reply,
                                        "sss",
                                        s->name,
                                        secret_kind_to_string(s->kind),
                                        s->block ? "cipher" : "cleartext");
                if (r >= 0)
                        r = sd_bus_message_append_strv(reply, units);
                if (r >= 0)
                        r = sd_bus_message_append_array(
                                        reply, 'u', acl->uids, acl->n_uids * sizeof(uint32_t));
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The caller's UID and, when it runs in one, its systemd unit (from its cgroup). */
static int caller_identity(sd_bus_message *msg, uid_t *ret_uid, char **ret_unit) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *unit = NULL;
        int r;

        r = sd_bus_query_sender_creds(
                        msg,
                        SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT | SD_BUS_CREDS_AUGMENT,
                        &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, ret_uid);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_unit(creds, &unit) >= 0 && unit) {
                *ret_unit = strdup(unit);
                if (!*ret_unit)
                        return -ENOMEM;
        } else
                *ret_unit = NULL;
        return 0;
}

static int method_get_secret(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(secret_values_done) SecretValues v = {};
        _cleanup_free_ char *unit = NULL, *who = NULL;
        CipherFailure failure = _CIPHER_FAILURE_INVALID;
        Manager *m = userdata;
        const char *name;
        uid_t uid;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = caller_identity(msg, &uid, &unit);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot tell who is calling: %s", strerror(-r));
        if (asprintf(&who, "D-Bus caller %s", sd_bus_message_get_sender(msg) ?: "?") < 0)
                return -ENOMEM;

        r = manager_deliver(m, name, NULL, uid, unit, who, &v, &failure);
        switch (r) {
        case -ENOMEDIUM:
                return sd_bus_error_setf(error, CONFIGD_ERROR_NO_CONFIG, "There is no configuration yet.");
        case -ENOENT:
                return sd_bus_error_setf(error, CONFIGD_ERROR_NO_SUCH_SECRET, "No secret named '%s'.", name);
        case -EACCES:
                return sd_bus_error_setf(
                                error,
                                CONFIGD_ERROR_ACCESS_DENIED,
                                "UID %u%s%s is not on the ACL of secret '%s'.",
                                (unsigned) uid,
                                unit ? ", unit " : "",
                                unit ?: "",
                                name);
        case -EBADMSG:
                return sd_bus_error_setf(
                                error,
                                cipher_failure_to_bus_error(failure),
                                "Secret '%s': %s",
                                name,
                                cipher_failure_to_message(failure));
        default:
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{ss}");
        for (size_t i = 0; r >= 0 && i < v.n; i++)
                r = sd_bus_message_append(reply, "{ss}", v.field[i], v.value[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_refresh(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = bus_verify_admin(msg, CONFIGD_ERROR_ACCESS_DENIED, error);
        if (r <= 0)
                return r;
        r = manager_fetch_now(m, msg);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, CONFIGD_ERROR_FETCH_FAILED, "Fetching is off (--no-fetch).");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot fetch: %s", strerror(-r));
        return 1; /* the reply comes when the fetch ends */
}

static const sd_bus_vtable config_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("ConfigHash", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Origin", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Secrets", "u", property_get_secrets, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Stored", "b", property_get_stored, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StorageState", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VaultState", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FetchInterval", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LastFetch", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastSuccess", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastFetchResult", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastFetchError", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CipherSuccesses", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CipherFailures", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CleartextFallbacks", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CipherErrors",
                        "a{st}",
                        property_get_counters,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CipherFailureReasons",
                        "a{st}",
                        property_get_counters,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CredentialsServed", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CredentialsRefused", "t", property_get_u64, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS(
                        "ListSecrets",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("a(sssasau)", secrets),
                        method_list_secrets,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "GetSecret",
                        SD_BUS_ARGS("s", name),
                        SD_BUS_RESULT("a{ss}", fields),
                        method_get_secret,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "Refresh",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("s", result),
                        method_refresh,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const BusObjectImpl config_object = {
        .path = CONFIGD_OBJECT_PATH,
        .interface = CONFIGD_INTERFACE,
        .vtable = config_vtable,
};

const BusObjectImpl *const configd_bus_objects[] = { &config_object, NULL };

int manager_bus_register(Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(m->bus, NULL, CONFIGD_OBJECT_PATH, CONFIGD_INTERFACE, config_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register %s: %m", CONFIGD_OBJECT_PATH);
        return 0;
}
