/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl secret list|get NAME [FIELD], evectl config status|refresh: org.eve.Config (eve-configd) for people
 * (a table) and scripts (--json). "secret get" prints the value alone, so that it can be piped; eve-configd
 * decides who may read it (the secret's ACL), evectl adds no rule of its own. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-util.h"
#include "evectl.h"
#include "log.h"

#define CONFIG_BUS_NAME "org.eve.Config"
#define CONFIG_BUS_PATH "/org/eve/Config"
#define CONFIG_BUS_INTERFACE "org.eve.Config"
#define CALL_TIMEOUT_USEC (30U * 1000000U)

static int config_bus_error(int r, const sd_bus_error *e, const char *what) {
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return log_error_errno(
                                r, "eve-configd is not running (%s is not on the bus).", CONFIG_BUS_NAME);
        if (e && e->name && strncmp(e->name, "org.eve.Config.Error.", 21) == 0)
                return log_error_errno(r, "%s (%s)", e->message ?: "Refused.", e->name + 21);
        return log_error_errno(r, "Cannot %s: %s", what, e && e->message ? e->message : strerror(-r));
}

static void print_json(json_object *o) {
        printf("%s\n",
               json_object_to_json_string_ext(
                               o,
                               JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- secret list ---- */

static int secret_list(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        json_object *arr = NULL;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(
                        bus,
                        CONFIG_BUS_NAME,
                        CONFIG_BUS_PATH,
                        CONFIG_BUS_INTERFACE,
                        "ListSecrets",
                        &e,
                        &reply,
                        NULL);
        if (r < 0)
                return config_bus_error(r, &e, "list the secrets");
        if (arg_evectl.json) {
                arr = json_object_new_array();
                if (!arr)
                        return log_oom();
        } else
                printf("%-32s %-10s %-10s %s\n", "NAME", "KIND", "SOURCE", "READERS");

        r = sd_bus_message_enter_container(reply, 'a', "(sssasau)");
        while (r >= 0) {
                _cleanup_free_ char *readers = NULL;
                const char *name, *kind, *source;
                char **units = NULL;
                const uint32_t *uids;
                size_t uids_size;
                FILE *f;
                size_t len = 0;

                r = sd_bus_message_enter_container(reply, 'r', "sssasau");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "sss", &name, &kind, &source);
                if (r >= 0)
                        r = sd_bus_message_read_strv(reply, &units);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'u', (const void **) &uids, &uids_size);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0) {
                        for (char **u = units; u && *u; u++)
                                free(*u);
                        free(units);
                        break;
                }
                if (arr) {
                        json_object *s = json_object_new_object(), *ju = json_object_new_array(),
                                    *jid = json_object_new_array();
                        json_object_object_add(s, "name", json_object_new_string(name));
                        json_object_object_add(s, "kind", json_object_new_string(kind));
                        json_object_object_add(s, "source", json_object_new_string(source));
                        for (char **u = units; u && *u; u++)
                                json_object_array_add(ju, json_object_new_string(*u));
                        for (size_t i = 0; i < uids_size / sizeof(uint32_t); i++)
                                json_object_array_add(jid, json_object_new_int64(uids[i]));
                        json_object_object_add(s, "units", ju);
                        json_object_object_add(s, "uids", jid);
                        json_object_array_add(arr, s);
                } else {
                        f = open_memstream(&readers, &len);
                        if (!f)
                                r = -ENOMEM;
                        else {
                                for (char **u = units; u && *u; u++)
                                        fprintf(f, "%s%s", u == units ? "" : " ", *u);
                                for (size_t i = 0; i < uids_size / sizeof(uint32_t); i++)
                                        fprintf(f,
                                                "%suid %u",
                                                units && *units ? " " : (i ? " " : ""),
                                                uids[i]);
                                fclose(f);
                                printf("%-32s %-10s %-10s %s\n",
                                       name,
                                       kind,
                                       source,
                                       isempty(readers) ? "-" : readers);
                        }
                }
                for (char **u = units; u && *u; u++)
                        free(*u);
                free(units);
                n++;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                json_object_put(arr);
                return log_error_errno(r, "Cannot parse the secret list: %m");
        }
        if (arr) {
                print_json(arr);
                json_object_put(arr);
        } else if (n == 0)
                printf("(no secrets)\n");
        return 0;
}

/* ---- secret get ---- */

static int secret_get(sd_bus *bus, const char *name, const char *field) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        json_object *o = NULL;
        const char *f, *v, *first = NULL;
        unsigned n = 0, printed = 0;
        int r;

        r = sd_bus_call_method(
                        bus,
                        CONFIG_BUS_NAME,
                        CONFIG_BUS_PATH,
                        CONFIG_BUS_INTERFACE,
                        "GetSecret",
                        &e,
                        &reply,
                        "s",
                        name);
        if (r < 0)
                return config_bus_error(r, &e, "read the secret");
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
                if (!first)
                        first = f;
                if (field && !streq(f, field))
                        continue;
                if (o)
                        json_object_object_add(o, f, json_object_new_string(v));
                else if (field || n == 1)
                        fputs(v, stdout), fputc('\n', stdout);
                else
                        printf("%s=%s\n", f, v);
                printed++;
        }
        if (r < 0) {
                json_object_put(o);
                return log_error_errno(r, "Cannot parse the secret: %m");
        }
        if (o) {
                print_json(o);
                json_object_put(o);
        }
        if (field && printed == 0)
                return log_error_errno(
                                SYNTHETIC_ERRNO(ENODATA), "Secret '%s' has no value for '%s'.", name, field);
        return 0;
}

/* ---- config status / refresh ---- */

/* "2026-11-22 19:40:01 UTC" for µs since the epoch; "never" for 0. */
static void format_usec(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                strcpy(buf, usec == 0 ? "never" : "?");
}

static int config_status(sd_bus *bus) {
        static const struct {
                const char *name, *label;
                char type;
        } props[] = {
                { "ConfigHash", "Config hash:", 's' },
                { "Origin", "From:", 's' },
                { "Secrets", "Secrets:", 'u' },
                { "Stored", "Stored:", 'b' },
                { "StorageState", "Storage:", 's' },
                { "VaultState", "Config vault:", 's' },
                { "LastFetch", "Last fetch:", 't' },
                { "LastFetchResult", "Result:", 's' },
                { "LastFetchError", "Error:", 's' },
                { "LastSuccess", "Last success:", 't' },
                { "FetchInterval", "Interval:", 't' },
                { "CipherSuccesses", "Decrypted:", 't' },
                { "CipherFailures", "Failed:", 't' },
                { "CleartextFallbacks", "Cleartext used:", 't' },
                { "CredentialsServed", "Credentials served:", 't' },
                { "CredentialsRefused", "Credentials refused:", 't' },
                { "CipherErrors", "Cipher errors:", 'a' },
                { "CipherFailureReasons", "Failure reasons:", 'a' },
        };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        json_object *o;
        int r;

        r = sd_bus_call_method(
                        bus,
                        CONFIG_BUS_NAME,
                        CONFIG_BUS_PATH,
                        "org.freedesktop.DBus.Properties",
                        "GetAll",
                        &e,
                        &reply,
                        "s",
                        CONFIG_BUS_INTERFACE);
        if (r < 0)
                return config_bus_error(r, &e, "read the configuration state");
        o = json_object_new_object();
        if (!o)
                return log_oom();
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0) {
                const char *name, *contents;
                char type;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(reply, &type, &contents);
                if (r < 0)
                        break;
                if (streq(contents, "s")) {
                        const char *s;
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r >= 0)
                                json_object_object_add(o, name, json_object_new_string(s));
                } else if (streq(contents, "t")) {
                        uint64_t t;
                        r = sd_bus_message_read(reply, "v", "t", &t);
                        if (r >= 0)
                                json_object_object_add(o, name, json_object_new_uint64(t));
                } else if (streq(contents, "u")) {
                        uint32_t u;
                        r = sd_bus_message_read(reply, "v", "u", &u);
                        if (r >= 0)
                                json_object_object_add(o, name, json_object_new_int64(u));
                } else if (streq(contents, "b")) {
                        int b;
                        r = sd_bus_message_read(reply, "v", "b", &b);
                        if (r >= 0)
                                json_object_object_add(o, name, json_object_new_boolean(b));
                } else if (streq(contents, "a{st}")) {
                        json_object *m = json_object_new_object();
                        const char *k;
                        uint64_t c;

                        r = sd_bus_message_enter_container(reply, 'v', "a{st}");
                        if (r >= 0)
                                r = sd_bus_message_enter_container(reply, 'a', "{st}");
                        while (r >= 0 && (r = sd_bus_message_read(reply, "{st}", &k, &c)) > 0)
                                if (c > 0)
                                        json_object_object_add(m, k, json_object_new_uint64(c));
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        json_object_object_add(o, name, m);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0) {
                json_object_put(o);
                return log_error_errno(r, "Cannot parse the configuration state: %m");
        }
        if (arg_evectl.json) {
                print_json(o);
                json_object_put(o);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(props); i++) {
                json_object *v;
                char buf[32];

                if (!json_object_object_get_ex(o, props[i].name, &v))
                        continue;
                switch (props[i].type) {
                case 's':
                        printf("%-21s %s\n",
                               props[i].label,
                               isempty(json_object_get_string(v)) ? "-" : json_object_get_string(v));
                        break;
                case 'b':
                        printf("%-21s %s\n", props[i].label, json_object_get_boolean(v) ? "yes" : "no");
                        break;
                case 'u':
                        printf("%-21s %" PRId64 "\n", props[i].label, json_object_get_int64(v));
                        break;
                case 't':
                        if (streq(props[i].name, "LastFetch") || streq(props[i].name, "LastSuccess")) {
                                format_usec(json_object_get_uint64(v), buf);
                                printf("%-21s %s\n", props[i].label, buf);
                        } else if (streq(props[i].name, "FetchInterval"))
                                printf("%-21s %.1f s\n", props[i].label, json_object_get_uint64(v) / 1e6);
                        else
                                printf("%-21s %" PRIu64 "\n", props[i].label, json_object_get_uint64(v));
                        break;
                case 'a':
                        printf("%-21s", props[i].label);
                        if (json_object_object_length(v) == 0)
                                printf(" -");
                        json_object_object_foreach(v, k, c)
                                        printf(" %s=%" PRIu64, k, json_object_get_uint64(c));
                        printf("\n");
                        break;
                }
        }
        json_object_put(o);
        return 0;
}

static int config_refresh(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *result;
        int r;

        r = sd_bus_call_method(
                        bus,
                        CONFIG_BUS_NAME,
                        CONFIG_BUS_PATH,
                        CONFIG_BUS_INTERFACE,
                        "Refresh",
                        &e,
                        &reply,
                        NULL);
        if (r < 0)
                return config_bus_error(r, &e, "fetch the configuration");
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

static int open_bus(sd_bus **ret) {
        int r;

        r = sd_bus_open_system(ret);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        (void) sd_bus_set_method_call_timeout(*ret, CALL_TIMEOUT_USEC);
        return 0;
}

/* Takes --json and -h from anywhere; the rest are positional. */
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
        r = open_bus(&bus);
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
        r = open_bus(&bus);
        if (r < 0)
                return r;
        return streq(pos[0], "status") ? config_status(bus) : config_refresh(bus);
}
