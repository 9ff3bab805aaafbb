/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* services/shared/bus-util.c on a private dbus-daemon: the admin check every mutating method uses (root
 * allowed, an unprivileged caller refused with the named error, a member of the admin group allowed), and
 * the
 * --bus-introspect XML. */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-util.h"
#include "fixtures.h"

#define TEST_NAME "org.eve.Vault" /* a name our policy lets root own */
#define TEST_ERROR "org.eve.Vault.Error.AccessDenied"

static int method_change(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int r = bus_verify_admin(m, TEST_ERROR, error);
        if (r <= 0)
                return r < 0 ? r : -EACCES;
        return sd_bus_reply_method_return(m, "s", "changed");
}

static int
                property_get(sd_bus *bus,
                             const char *path,
                             const char *interface,
                             const char *property,
                             sd_bus_message *reply,
                             void *userdata,
                             sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", 7U);
}

static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Answer", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS(
                        "Change",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("s", result),
                        method_change,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int stop_server(void *p) {
        pid_t *pid = p;
        if (*pid > 0)
                (void) test_stop_process(*pid, 5000);
        *pid = 0;
        return 0;
}

/* A child process serving one object with bus-util, until SIGTERM. */
static pid_t start_server(void) {
        int pfd[2];
        pid_t pid;
        char c;

        ASSERT_OK(pipe(pfd));
        pid = fork();
        ASSERT_OK(pid);
        if (pid == 0) {
                _cleanup_(sd_event_unrefp) sd_event *event = NULL;
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
                close(pfd[0]);
                if (bus_daemon_open(&event, &bus) < 0 ||
                    sd_bus_add_object_vtable(bus, NULL, "/org/eve/Test", "org.eve.Test", test_vtable, NULL) <
                                    0 ||
                    bus_daemon_ready(bus, TEST_NAME, "test") < 0)
                        _exit(1);
                (void) !write(pfd[1], "r", 1);
                close(pfd[1]);
                _exit(bus_daemon_run(event, bus, TEST_NAME) < 0 ? 1 : 0);
        }
        close(pfd[1]);
        ASSERT_EQ(read(pfd[0], &c, 1), 1);
        close(pfd[0]);
        return pid;
}

/* Calls Change(): 0 when allowed, 1 when refused with TEST_ERROR, else a negative error. */
static int call_change(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(
                        bus, TEST_NAME, "/org/eve/Test", "org.eve.Test", "Change", &error, NULL, NULL);
        if (r >= 0)
                return 0;
        if (r < 0)
                fprintf(stderr,
                        "Change() as uid %u: %s: %s\n",
                        (unsigned) getuid(),
                        error.name,
                        error.message);
        if (sd_bus_error_has_name(&error, TEST_ERROR) && strstr(error.message, "Change()"))
                return 1;
        return r;
}

static int get_answer(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        uint32_t v = 0;
        int r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_get_property_trivial(
                                bus, TEST_NAME, "/org/eve/Test", "org.eve.Test", "Answer", NULL, 'u', &v);
        return r < 0 ? r : (int) v;
}

TEST(admin_check_allows_root_refuses_others_by_name) {
        static pid_t server;

        test_bus_start(NULL);
        server = start_server();
        test_defer(stop_server, &server);

        ASSERT_EQ(call_change(NULL), 0);                         /* we are root */
        ASSERT_EQ(test_call_as("nobody", call_change, NULL), 1); /* named error, method in the message */
        ASSERT_EQ(test_call_as("nobody", get_answer, NULL), 7);  /* reads stay open to everyone */

        /* A member of the admin group is allowed: "daemon" (uid 1 on Debian) is in group "daemon". */
        ASSERT_OK(setenv("EVE_ADMIN_GROUP", "daemon", 1));
        ASSERT_EQ(test_stop_process(server, 5000), 0);
        server = start_server();
        ASSERT_EQ(test_call_as("daemon", call_change, NULL), 0);
        ASSERT_EQ(test_call_as("nobody", call_change, NULL), 1);
        ASSERT_OK(unsetenv("EVE_ADMIN_GROUP"));

        /* SIGTERM ends bus_daemon_run() with exit code 0. */
        ASSERT_EQ(test_stop_process(server, 5000), 0);
        server = 0;
}

TEST(introspection_xml_lists_the_served_interface) {
        static const BusObjectImpl impl = { "/org/eve/Test", "org.eve.Test", test_vtable };
        const BusObjectImpl *const impls[] = { &impl, NULL };
        _cleanup_free_ char *xml = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&xml, &size);

        ASSERT_NOT_NULL(f);
        ASSERT_OK(bus_introspect_implementations(f, impls));
        ASSERT_OK(fclose(f));
        ASSERT_NOT_NULL(strstr(xml, "<interface name=\"org.eve.Test\">"));
        ASSERT_NOT_NULL(strstr(xml, "<method name=\"Change\">"));
        ASSERT_NOT_NULL(strstr(xml, "<property name=\"Answer\" type=\"u\" access=\"read\">"));
        ASSERT_NOT_NULL(strstr(xml, "<arg type=\"s\" name=\"result\" direction=\"out\"/>"));
}

DEFINE_TEST_MAIN
