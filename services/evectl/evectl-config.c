/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl secret list|get NAME [FIELD], evectl config status|refresh: org.eve.Config (eve-configd) for people
 * (a table) and scripts (--json). "secret get" prints the value alone, so that it can be piped; eve-configd
 * decides who may read it (the secret's ACL), evectl adds no rule of its own. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "evectl-util.h"
#include "evectl.h"
#include "log.h"

#define CONFIG_DAEMON "eve-configd"
#define CONFIG_BUS_NAME "org.eve.Config"
#define CONFIG_BUS_PATH "/org/eve/Config"
#define CONFIG_BUS_INTERFACE "org.eve.Config"

static int call(sd_bus *bus, const char *method, sd_bus_error *e, sd_bus_message **reply, const char *name) {
        return sd_bus_call_method(
                        bus,
                        CONFIG_BUS_NAME,
                        CONFIG_BUS_PATH,
                        CONFIG_BUS_INTERFACE,
                        method,
                        e,
                        reply,
                        name ? "s" : NULL,
                        name);
}

/* ---- secret list ---- */

static int secret_list(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(table_freep) Table *t = NULL;
        json_object *arr = NULL;
        int r;

        r = call(bus, "ListSecrets", &e, &reply, NULL);
        if (r < 0)
                return evectl_bus_error(r, &e, CONFIG_DAEMON, CONFIG_BUS_NAME, "list the secrets");
        if (arg_evectl.json)
                arr = json_object_new_array();
        else
                t = table_new(4, "NAME", "KIND", "SOURCE", "READERS");
        if (!arr && !t)
                return log_oom();

        r = sd_bus_message_enter_container(reply, 'a', "(sssasau)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "sssasau")) > 0) {
                _cleanup_free_ char *readers = NULL;
                const char *name, *kind, *source;
                char **units = NULL;
                const uint32_t *uids = NULL;
                size_t size = 0, len = 0;
                json_object *ju = NULL, *jid = NULL;
                FILE *f = NULL;

                r = sd_bus_message_read(reply, "sss", &name, &kind, &source);
                if (r >= 0)
                        r = sd_bus_message_read_strv(reply, &units);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'u', (const void **) &uids, &size);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0 && arr) {
                        json_object *s = json_object_new_object();
                        ju = json_object_new_array();
                        jid = json_object_new_array();
                        for (char **u = units; u && *u; u++)
                                json_object_array_add(ju, json_object_new_string(*u));
                        for (size_t i = 0; i < size / sizeof(uint32_t); i++)
                                json_object_array_add(jid, json_object_new_int64(uids[i]));
                        json_object_object_add(s, "name", json_object_new_string(name));
                        json_object_object_add(s, "kind", json_object_new_string(kind));
                        json_object_object_add(s, "source", json_object_new_string(source));
                        json_object_object_add(s, "units", ju);
                        json_object_object_add(s, "uids", jid);
                        json_object_array_add(arr, s);
                } else if (r >= 0) {
                        f = open_memstream(&readers, &len);
                        if (!f)
                                r = -ENOMEM;
                        for (char **u = units; f && u && *u; u++)
                                fprintf(f, "%s%s", u == units ? "" : " ", *u);
                        for (size_t i = 0; f && i < size / sizeof(uint32_t); i++)
                                fprintf(f,
                                        "%suid %" PRIu32,
                                        i == 0 && !(units && *units) ? "" : " ",
                                        uids[i]);
                        if (f)
                                fclose(f);
                        if (r >= 0)
                                r = table_add_row(t, name, kind, source, isempty(readers) ? NULL : readers);
                }
                for (char **u = units; u && *u; u++)
                        free(*u);
                free(units);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                json_object_put(arr);
                return log_error_errno(r, "Cannot parse the secret list: %m");
        }
        if (arr) {
                r = evectl_json_print(arr);
                json_object_put(arr);
                return r;
        }
        return table_print(t, stdout);
}

/* ---- secret get ---- */

static int secret_get(sd_bus *bus, const char *name, const char *field) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        json_object *o = NULL;
        const char *f, *v;
        unsigned n = 0, printed = 0;
        int r;

        r = call(bus, "GetSecret", &e, &reply, name);
        if (r < 0) {
                /* Refusals are eve-configd's to explain (an ACL, not the admin group, decides). */
                if (e.name && strncmp(e.name, "org.eve.Config.Error.", 21) == 0)
                        return log_error_errno(r, "%s (%s)", e.message ?: "Refused.", e.name + 21);
                return evectl_bus_error(r, &e, CONFIG_DAEMON, CONFIG_BUS_NAME, "read the secret");
        }
        if (arg_evectl.json && !(o = json_object_new_object()))
                return log_oom();
        /* Count first: one field prints bare, several as FIELD=VALUE lines. */
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &f, &v)) > 0)
                n++;
        if (r >= 0)
                r = sd_bus_message_rewind(reply, true);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &f, &v)) > 0) {
                if (field && !streq(f, field))
                        continue;
                if (o)
                        json_object_object_add(o, f, json_object_new_string(v));
                else if (field || n == 1)
                        printf("%s\n", v);
                else
                        printf("%s=%s\n", f, v);
                printed++;
        }
        if (r < 0) {
                json_object_put(o);
                return log_error_errno(r, "Cannot parse the secret: %m");
        }
        if (o) {
                r = evectl_json_print(o);
                json_object_put(o);
                if (r < 0)
                        return r;
        }
        if (field && printed == 0)
                return log_error_errno(
                                SYNTHETIC_ERRNO(ENODATA), "Secret '%s' has no value for '%s'.", name, field);
        return 0;
}

/* ---- config status / refresh ---- */

/* "name=count …" of a counter dictionary's non-zero entries; "-" when none. */
static char *counters(json_object *o) {
        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return NULL;
        if (o && json_object_is_type(o, json_type_object)) {
                bool first = true;
                json_object_object_foreach(o, k, v) {
                        if (json_object_get_uint64(v) == 0)
                                continue;
                        fprintf(f, "%s%s=%" PRIu64, first ? "" : " ", k, json_object_get_uint64(v));
                        first = false;
                }
        }
        fclose(f);
        if (isempty(s)) {
                free(s);
                return strdup("-");
        }
        return s;
}

static int config_status(sd_bus *bus) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *errors = NULL, *reasons = NULL;
        char fetch[32], success[32], nums[8][32];
        json_object *o = NULL, *x;
        int r;

        r = evectl_get_all(bus, CONFIG_BUS_NAME, CONFIG_BUS_PATH, CONFIG_BUS_INTERFACE, &e, &o);
        if (r < 0)
                return evectl_bus_error(
                                r, &e, CONFIG_DAEMON, CONFIG_BUS_NAME, "read the configuration state");
        if (arg_evectl.json) {
                r = evectl_json_print(o);
                json_object_put(o);
                return r;
        }
        evectl_format_time(evectl_json_u64(o, "LastFetch"), fetch);
        evectl_format_time(evectl_json_u64(o, "LastSuccess"), success);
        static const char *const num_keys[] = { "Secrets",           "CipherSuccesses",
                                                "CipherFailures",    "CleartextFallbacks",
                                                "CredentialsServed", "CredentialsRefused" };
        for (size_t i = 0; i < ELEMENTSOF(num_keys); i++)
                snprintf(nums[i], sizeof nums[i], "%" PRIu64, evectl_json_u64(o, num_keys[i]));
        snprintf(nums[6], sizeof nums[6], "%.1f s", (double) evectl_json_u64(o, "FetchInterval") / 1e6);
        snprintf(nums[7],
                 sizeof nums[7],
                 "%s",
                 json_object_object_get_ex(o, "Stored", &x) && json_object_get_boolean(x) ? "yes" : "no");
        errors = counters(json_object_object_get_ex(o, "CipherErrors", &x) ? x : NULL);
        reasons = counters(json_object_object_get_ex(o, "CipherFailureReasons", &x) ? x : NULL);
        {
                const char *const kv[] = {
                        "Config hash",
                        evectl_json_str(o, "ConfigHash"),
                        "From",
                        evectl_json_str(o, "Origin"),
                        "Secrets",
                        nums[0],
                        "Stored",
                        nums[7],
                        "Storage",
                        evectl_json_str(o, "StorageState"),
                        "Config vault",
                        evectl_json_str(o, "VaultState"),
                        "Last fetch",
                        fetch,
                        "Result",
                        evectl_json_str(o, "LastFetchResult"),
                        "Error",
                        evectl_json_str(o, "LastFetchError"),
                        "Last success",
                        success,
                        "Interval",
                        nums[6],
                        "Decrypted",
                        nums[1],
                        "Failed",
                        nums[2],
                        "Cleartext used",
                        nums[3],
                        "Credentials served",
                        nums[4],
                        "Credentials refused",
                        nums[5],
                        "Cipher errors",
                        errors,
                        "Failure reasons",
                        reasons,
                };
                evectl_print_fields(stdout, kv, ELEMENTSOF(kv));
        }
        json_object_put(o);
        return 0;
}

static int config_refresh(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *result;
        int r;

        (void) sd_bus_set_method_call_timeout(bus, EVECTL_LONG_CALL_TIMEOUT_USEC);
        r = call(bus, "Refresh", &e, &reply, NULL);
        if (r < 0)
                return evectl_bus_error(r, &e, CONFIG_DAEMON, CONFIG_BUS_NAME, "fetch the configuration");
        r = sd_bus_message_read(reply, "s", &result);
        if (r < 0)
                return log_error_errno(r, "Cannot parse the answer: %m");
        if (arg_evectl.json)
                printf("{ \"result\": \"%s\" }\n", result);
        else
                printf("Configuration fetched: %s.\n", result);
        return 0;
}

/* ---- verbs ---- */

/* Takes --json and -h from anywhere; the rest are positional. 0: help printed; 1: go on. */
static int parse_args(int argc, char **argv, const char *usage, char **pos, size_t max, size_t *ret_n) {
        size_t n = 0;

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--json"))
                        arg_evectl.json = true;
                else if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
                        fputs(usage, stdout);
                        return 0;
                } else if (n < max)
                        pos[n++] = argv[i];
                else
                        return log_error_errno(
                                        SYNTHETIC_ERRNO(EINVAL), "Unexpected argument '%s'.", argv[i]);
        }
        *ret_n = n;
        return 1;
}

int verb_secret(int argc, char **argv) {
        static const char usage[] = "evectl [--json] secret list          names, kinds and readers of the "
                                    "secrets (never values)\n"
                                    "evectl [--json] secret get NAME [FIELD]\n"
                                    "                                     the value (or FIELD's), if you "
                                    "are on NAME's ACL\n";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        char *pos[3] = {};
        size_t n;
        int r;

        r = parse_args(argc, argv, usage, pos, ELEMENTSOF(pos), &n);
        if (r <= 0)
                return r;
        if (n == 0 || (!streq(pos[0], "list") && !streq(pos[0], "get")))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL), "Usage: evectl secret list | get NAME [FIELD]");
        if (streq(pos[0], "list") && n != 1)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "evectl secret list takes no arguments.");
        if (streq(pos[0], "get") && (n < 2 || isempty(pos[1])))
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "evectl secret get needs a secret's NAME.");
        r = evectl_bus_open(&bus);
        if (r < 0)
                return r;
        return streq(pos[0], "list") ? secret_list(bus) : secret_get(bus, pos[1], pos[2]);
}

int verb_config(int argc, char **argv) {
        static const char usage[] = "evectl [--json] config status     where the configuration is, fetches, "
                                    "cipher counters\n"
                                    "evectl config refresh               fetch now (root or admin group)\n";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        char *pos[1] = {};
        size_t n;
        int r;

        r = parse_args(argc, argv, usage, pos, ELEMENTSOF(pos), &n);
        if (r <= 0)
                return r;
        if (n == 0)
                pos[0] = (char *) "status";
        if (!streq(pos[0], "status") && !streq(pos[0], "refresh"))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL),
                                "Unknown command 'config %s' (status, refresh).",
                                pos[0]);
        r = evectl_bus_open(&bus);
        if (r < 0)
                return r;
        return streq(pos[0], "status") ? config_status(bus) : config_refresh(bus);
}
