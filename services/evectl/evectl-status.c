/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl status: one summary of the node's security state for a person (or, with --json, a script): device
 * identity and TPM (eve-tpm-setup's status file, eve-measure-config's PCR 14 marker, the UUID eve-register
 * stored), vaults (org.eve.Vault), attestation (org.eve.Attest), configuration (org.eve.Config). A service
 * that does not answer is shown with the reason; the summary is still complete. Reading a property of a
 * stopped service starts it (bus activation). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-util.h"
#include "crypto-util.h"
#include "evectl.h"
#include "log.h"
#include "paths.h"

#define VAULTS_MAX 256U
#define CALL_TIMEOUT_USEC (10U * 1000000U)

static json_object *jstr(const char *s) {
        return json_object_new_string(s ?: "");
}

static void json_put(json_object *o, const char *key, json_object *v) {
        json_object_object_add(o, key, v);
}

/* First line of a small text file, newly allocated; NULL when it does not exist or cannot be read. */
static char *read_line(EvePath dir, const char *name) {
        _cleanup_free_ char *path = eve_path_join(dir, name), *text = NULL;
        size_t size;

        if (!path || crypto_read_file(path, false, &text, &size) < 0)
                return NULL;
        text[strcspn(text, "\n")] = '\0';
        return TAKE_PTR(text);
}

/* "2026-11-22 19:40:01 UTC" for µs since the epoch; "never" for 0. */
static void format_time(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                strcpy(buf, "never");
}

static char *
                get_string(sd_bus *bus,
                           const char *dest,
                           const char *path,
                           const char *iface,
                           const char *prop,
                           sd_bus_error *error) {
        char *s = NULL;

        if (sd_bus_get_property_string(bus, dest, path, iface, prop, error, &s) < 0)
                return NULL;
        return s;
}

/* ---- device and TPM ---- */

static json_object *status_device(void) {
        _cleanup_free_ char *uuid = read_line(EVE_PATH_STATUS, "uuid");
        _cleanup_free_ char *tpm = read_line(EVE_PATH_STATUS, "tpm-status");
        _cleanup_free_ char *marker = eve_path_join(EVE_PATH_RUN, "config-measured"), *measured = NULL;
        json_object *o = json_object_new_object();
        const char *pcr = NULL, *meaning;
        size_t size;

        if (marker && crypto_read_file(marker, false, &measured, &size) >= 0) {
                pcr = strstr(measured, "pcr14=");
                if (pcr) {
                        pcr += strlen("pcr14=");
                        measured[strcspn(measured, "\n")] = '\0';
                }
        }
        meaning = !tpm                           ? "eve-tpm-setup has not run"
                        : streq(tpm, "ENABLED")  ? "keys in the TPM"
                        : streq(tpm, "DISABLED") ? "software keys: a TPM is present but not used"
                        : streq(tpm, "NOTFOUND") ? "software keys: no TPM"
                                                 : "unknown status";
        json_put(o, "uuid", uuid ? jstr(uuid) : NULL);
        json_put(o, "tpm", tpm ? jstr(tpm) : NULL);
        json_put(o, "config_pcr14", pcr ? jstr(pcr) : NULL);
        if (!arg_evectl.json) {
                printf("Device:         %s\n",
                       uuid ? uuid : "not registered yet (no UUID from eve-register)");
                printf("TPM:            %s (%s)\n", tpm ?: "unknown", meaning);
                if (pcr)
                        printf("Configuration:  measured into PCR 14 this boot (%.16s…)\n", pcr);
                else
                        printf("Configuration:  not measured into PCR 14 this boot\n");
        }
        return o;
}

/* ---- vaults ---- */

static json_object *status_vault(sd_bus *bus, const char *path) {
        static const char *const props[] = { "Name", "State", "UnlockMethod", "MountPoint", "LastError" };
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        char *v[ELEMENTSOF(props)] = {};
        json_object *o = json_object_new_object();

        for (size_t i = 0; i < ELEMENTSOF(props); i++) {
                v[i] = get_string(bus, "org.eve.Vault", path, "org.eve.Vault.Vault", props[i], &error);
                json_put(o, props[i], jstr(v[i]));
        }
        if (!arg_evectl.json)
                printf("  %-12s  %-10s  unlock: %-10s  %-24s  %s\n",
                       v[0] ?: "?",
                       v[1] ?: "?",
                       isempty(v[2]) ? "none" : v[2],
                       v[3] ?: "",
                       v[4] ?: "");
        for (size_t i = 0; i < ELEMENTSOF(props); i++)
                free(v[i]);
        return o;
}

static json_object *status_vaults(sd_bus *bus) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *o = json_object_new_object(), *list = json_object_new_array();
        char *paths[VAULTS_MAX];
        const char *p;
        unsigned n = 0, unlocked = 0;
        int r;

        r = sd_bus_get_property(
                        bus,
                        "org.eve.Vault",
                        "/org/eve/Vault",
                        "org.eve.Vault.Manager",
                        "Vaults",
                        &error,
                        &reply,
                        "ao");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "o");
        if (r < 0) {
                if (!arg_evectl.json)
                        printf("Vaults:         eve-vaultd does not answer: %s\n",
                               error.message ?: strerror(-r));
                json_put(o, "error", jstr(error.message ?: strerror(-r)));
                json_object_put(list);
                return o;
        }
        while (n < VAULTS_MAX && (r = sd_bus_message_read(reply, "o", &p)) > 0)
                paths[n++] = strdup(p);
        for (unsigned i = 0; i < n; i++) {
                _cleanup_free_ char *state = paths[i] ? get_string(bus,
                                                                   "org.eve.Vault",
                                                                   paths[i],
                                                                   "org.eve.Vault.Vault",
                                                                   "State",
                                                                   &error)
                                                      : NULL;
                if (streq_ptr(state, "Unlocked"))
                        unlocked++;
        }
        if (!arg_evectl.json)
                printf("Vaults:         %u, %u unlocked\n", n, unlocked);
        for (unsigned i = 0; i < n; i++) {
                if (paths[i])
                        json_object_array_add(list, status_vault(bus, paths[i]));
                free(paths[i]);
        }
        json_put(o, "vaults", list);
        return o;
}

/* ---- attestation ---- */

static json_object *status_attest(sd_bus *bus) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *state = NULL, *last_error = NULL;
        json_object *o = json_object_new_object();
        uint64_t last_success = 0, next = 0;
        uint32_t attempts = 0;
        int reachable = 0;
        char when[32];

        state = get_string(bus, "org.eve.Attest", "/org/eve/Attest", "org.eve.Attest", "StateName", &error);
        if (!state) {
                if (!arg_evectl.json)
                        printf("Attestation:    eve-attestd does not answer: %s\n", error.message ?: "?");
                json_put(o, "error", jstr(error.message));
                return o;
        }
        last_error = get_string(
                        bus, "org.eve.Attest", "/org/eve/Attest", "org.eve.Attest", "LastError", &error);
        (void) sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "LastSuccess",
                        &error,
                        't',
                        &last_success);
        (void) sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "Attempts",
                        &error,
                        'u',
                        &attempts);
        (void) sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "ControllerReachable",
                        &error,
                        'b',
                        &reachable);
        (void) sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "NextAttempt",
                        &error,
                        't',
                        &next);
        format_time(last_success, when);
        json_put(o, "state", jstr(state));
        json_put(o, "last_error", jstr(last_error));
        json_put(o, "last_success_usec", json_object_new_uint64(last_success));
        json_put(o, "attempts", json_object_new_int64(attempts));
        json_put(o, "controller_reachable", json_object_new_boolean(reachable));
        if (!arg_evectl.json) {
                printf("Attestation:    %s; controller %s; %u attempt(s); last success %s\n",
                       state,
                       reachable ? "reachable" : "not reachable",
                       attempts,
                       when);
                if (!isempty(last_error))
                        printf("                last error: %s\n", last_error);
        }
        return o;
}

/* ---- configuration ---- */

static json_object *status_config(sd_bus *bus) {
        static const char *const props[] = {
                "ConfigHash", "StorageState", "VaultState", "LastFetchResult", "LastFetchError"
        };
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        json_object *o = json_object_new_object();
        char *v[ELEMENTSOF(props)] = {};
        uint64_t last_success = 0;
        uint32_t secrets = 0;
        char when[32];

        v[0] = get_string(bus, "org.eve.Config", "/org/eve/Config", "org.eve.Config", props[0], &error);
        if (!v[0]) {
                if (!arg_evectl.json)
                        printf("Config:         eve-configd does not answer: %s\n", error.message ?: "?");
                json_put(o, "error", jstr(error.message));
                return o;
        }
        for (size_t i = 1; i < ELEMENTSOF(props); i++)
                v[i] =
                                get_string(bus,
                                           "org.eve.Config",
                                           "/org/eve/Config",
                                           "org.eve.Config",
                                           props[i],
                                           &error);
        (void) sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Config",
                        "/org/eve/Config",
                        "org.eve.Config",
                        "LastSuccess",
                        &error,
                        't',
                        &last_success);
        (void) sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Config",
                        "/org/eve/Config",
                        "org.eve.Config",
                        "Secrets",
                        &error,
                        'u',
                        &secrets);
        format_time(last_success, when);
        for (size_t i = 0; i < ELEMENTSOF(props); i++)
                json_put(o, props[i], jstr(v[i]));
        json_put(o, "Secrets", json_object_new_int64(secrets));
        json_put(o, "LastSuccess", json_object_new_uint64(last_success));
        if (!arg_evectl.json) {
                printf("Config:         %s; %s; %u secret(s); last fetch: %s, last success %s\n",
                       isempty(v[0]) ? "none yet" : v[0],
                       v[1] ?: "?",
                       secrets,
                       v[3] ?: "?",
                       when);
                if (!isempty(v[4]))
                        printf("                last error: %s\n", v[4]);
        }
        for (size_t i = 0; i < ELEMENTSOF(props); i++)
                free(v[i]);
        return o;
}

int verb_status(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        json_object *all;
        int r;

        if (argc > 1)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "evectl status takes no arguments.");
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        (void) sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);

        all = json_object_new_object();
        json_put(all, "device", status_device());
        json_put(all, "vaults", status_vaults(bus));
        json_put(all, "attestation", status_attest(bus));
        json_put(all, "config", status_config(bus));
        if (arg_evectl.json)
                printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY));
        json_object_put(all);
        return 0;
}
