/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl attest status|restart: org.eve.Attest (eve-attestd) for people (a table) and scripts (--json). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-util.h"
#include "evectl.h"
#include "log.h"

#define ATTEST_BUS_NAME "org.eve.Attest"
#define ATTEST_BUS_PATH "/org/eve/Attest"
#define ATTEST_BUS_INTERFACE "org.eve.Attest"
#define CALL_TIMEOUT_USEC (10U * 1000000U)

typedef struct AttestStatus {
        uint32_t state;
        char *state_name;
        char *last_error;
        uint64_t last_success;
        uint64_t next_attempt;
        uint32_t attempts;
        int reachable;
} AttestStatus;

static void attest_status_done(AttestStatus *s) {
        free(s->state_name);
        free(s->last_error);
}

static int bus_error(int r, const sd_bus_error *e, const char *what) {
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return log_error_errno(
                                r, "eve-attestd is not running (%s is not on the bus).", ATTEST_BUS_NAME);
        if (sd_bus_error_has_name(e, "org.eve.Attest.Error.AccessDenied"))
                return log_error_errno(r, "%s", e->message ?: "Access denied.");
        return log_error_errno(r, "Cannot %s: %s", what, e->message ?: strerror(-r));
}

static int read_status(sd_bus *bus, AttestStatus *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        AttestStatus s = {};
        int r;

        r = sd_bus_call_method(
                        bus,
                        ATTEST_BUS_NAME,
                        ATTEST_BUS_PATH,
                        "org.freedesktop.DBus.Properties",
                        "GetAll",
                        &e,
                        &reply,
                        "s",
                        ATTEST_BUS_INTERFACE);
        if (r < 0)
                return bus_error(r, &e, "read the attestation state");
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0) {
                const char *name, *str;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        break;
                if (streq(name, "State"))
                        r = sd_bus_message_read(reply, "v", "u", &s.state);
                else if (streq(name, "Attempts"))
                        r = sd_bus_message_read(reply, "v", "u", &s.attempts);
                else if (streq(name, "LastSuccess"))
                        r = sd_bus_message_read(reply, "v", "t", &s.last_success);
                else if (streq(name, "NextAttempt"))
                        r = sd_bus_message_read(reply, "v", "t", &s.next_attempt);
                else if (streq(name, "ControllerReachable"))
                        r = sd_bus_message_read(reply, "v", "b", &s.reachable);
                else if (streq(name, "StateName") || streq(name, "LastError")) {
                        char **p = streq(name, "StateName") ? &s.state_name : &s.last_error;

                        r = sd_bus_message_read(reply, "v", "s", &str);
                        if (r >= 0) {
                                free(*p);
                                *p = strdup(str);
                                if (!*p)
                                        r = -ENOMEM;
                        }
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                attest_status_done(&s);
                return log_error_errno(r, "Cannot parse the attestation state: %m");
        }
        *ret = s;
        return 0;
}

/* "2026-11-22 19:40:01 UTC" for µs since the epoch; "never" for 0. */
static void format_time(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                strcpy(buf, usec == 0 ? "never" : "?");
}

static int show_status(sd_bus *bus) {
        _cleanup_(attest_status_done) AttestStatus s = {};
        char success[32], next[32];
        int r;

        r = read_status(bus, &s);
        if (r < 0)
                return r;
        if (arg_evectl.json) {
                json_object *o = json_object_new_object();

                if (!o)
                        return log_oom();
                json_object_object_add(o, "state", json_object_new_int64(s.state));
                json_object_object_add(o, "state_name", json_object_new_string(s.state_name ?: ""));
                json_object_object_add(o, "last_error", json_object_new_string(s.last_error ?: ""));
                json_object_object_add(o, "last_success", json_object_new_uint64(s.last_success));
                json_object_object_add(o, "next_attempt", json_object_new_uint64(s.next_attempt));
                json_object_object_add(o, "attempts", json_object_new_int64(s.attempts));
                json_object_object_add(o, "controller_reachable", json_object_new_boolean(s.reachable));
                printf("%s\n",
                       json_object_to_json_string_ext(
                                       o,
                                       JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }
        format_time(s.last_success, success);
        format_time(s.next_attempt, next);
        printf("%-22s %s (%u)\n", "State:", s.state_name ?: "?", s.state);
        printf("%-22s %s\n", "Last success:", success);
        printf("%-22s %u\n", "Attempts:", s.attempts);
        printf("%-22s %s\n", "Controller reachable:", s.reachable ? "yes" : "no");
        printf("%-22s %s\n", "Next attempt:", s.next_attempt ? next : "-");
        printf("%-22s %s\n", "Last error:", isempty(s.last_error) ? "-" : s.last_error);
        return 0;
}

static int do_restart(sd_bus *bus) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(
                        bus,
                        ATTEST_BUS_NAME,
                        ATTEST_BUS_PATH,
                        ATTEST_BUS_INTERFACE,
                        "Restart",
                        &e,
                        NULL,
                        NULL);
        if (r < 0)
                return bus_error(r, &e, "restart attestation");
        if (arg_evectl.json)
                printf("{ \"restarted\": true }\n");
        else
                printf("Attestation restarted: a new round asks the controller for a fresh nonce.\n");
        return 0;
}

int verb_attest(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *cmd = NULL;
        int r;

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--json"))
                        arg_evectl.json = true;
                else if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
                        printf("evectl [--json] attest status    attestation state, last success, retries\n"
                               "evectl attest restart            start a new attestation round (root or "
                               "admin group)\n");
                        return 0;
                } else if (!cmd)
                        cmd = argv[i];
                else
                        return log_error_errno(
                                        SYNTHETIC_ERRNO(EINVAL), "Unexpected argument '%s'.", argv[i]);
        }
        if (!cmd)
                cmd = "status";
        if (!streq(cmd, "status") && !streq(cmd, "restart"))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL),
                                "Unknown command 'attest %s' (status, restart).",
                                cmd);

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        (void) sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
        return streq(cmd, "status") ? show_status(bus) : do_restart(bus);
}
