/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-util.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "log.h"

const char *bus_admin_group(void) {
        const char *g = getenv_nonempty("EVE_ADMIN_GROUP");
        return g ?: EVE_ADMIN_GROUP_DEFAULT;
}

int bus_daemon_open(sd_event **ret_event, sd_bus **ret_bus) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        /* NULL handler: the loop exits with code 0 (PTR_TO_INT(NULL)). */
        r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM/SIGINT: %m");

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");

        *ret_event = TAKE_PTR(event);
        *ret_bus = TAKE_PTR(bus);
        return 0;
}

int bus_daemon_ready(sd_bus *bus, const char *name, const char *status) {
        int r;

        r = sd_bus_request_name(bus, name, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire the bus name %s: %m", name);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", status ?: "Serving.");
        log_info("Serving %s.", name);
        return 0;
}

int bus_daemon_run(sd_event *event, sd_bus *bus, const char *name) {
        int r;

        r = sd_event_loop(event);
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down.");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        if (name)
                (void) sd_bus_release_name(bus, name);
        return r;
}

int bus_sender_uid(sd_bus_message *m, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_euid(creds, ret);
}

static int uid_in_group(uid_t uid, const char *group) {
        struct group grbuf, *gr = NULL;
        struct passwd pwbuf, *pw = NULL;
        char buf[16384];
        gid_t groups[256];
        int n = ELEMENTSOF(groups);

        if (getgrnam_r(group, &grbuf, buf, sizeof buf, &gr) != 0 || !gr)
                return 0;
        gid_t gid = gr->gr_gid;
        if (getpwuid_r(uid, &pwbuf, buf, sizeof buf, &pw) != 0 || !pw)
                return 0;
        if (pw->pw_gid == gid)
                return 1;
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
                return -E2BIG;
        for (int i = 0; i < n; i++)
                if (groups[i] == gid)
                        return 1;
        return 0;
}

int bus_verify_admin(sd_bus_message *m, const char *denied_error, sd_bus_error *error) {
        uid_t uid;
        int r;

        r = bus_sender_uid(m, &uid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot tell who is calling: %s", strerror(-r));
        if (uid == 0)
                return 1;
        r = uid_in_group(uid, bus_admin_group());
        if (r < 0)
                return sd_bus_error_set_errnof(
                                error, r, "Cannot read the groups of UID %u.", (unsigned) uid);
        if (r > 0)
                return 1;
        log_notice("Refused %s.%s() to UID %u (not root, not in group %s).",
                   sd_bus_message_get_interface(m),
                   sd_bus_message_get_member(m),
                   (unsigned) uid,
                   bus_admin_group());
        sd_bus_error_setf(
                        error,
                        denied_error,
                        "Only root or members of group '%s' may call %s().",
                        bus_admin_group(),
                        sd_bus_message_get_member(m));
        return 0;
}

/* --bus-introspect: the objects are registered on the server end of a socketpair (no bus daemon, no
 * userdata: Introspect never calls a getter), served by a thread while this one asks. */
static void *serve_thread(void *p) {
        sd_bus *server = p;

        for (;;) {
                int r = sd_bus_process(server, NULL);
                if (r < 0)
                        break; /* the client hung up */
                if (r > 0)
                        continue;
                if (sd_bus_wait(server, UINT64_MAX) < 0)
                        break;
        }
        return NULL;
}

int bus_introspect_implementations(FILE *f, const BusObjectImpl *const *impls) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *server = NULL, *client = NULL;
        int fds[2], r;
        sd_id128_t id;
        pthread_t thread;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                return log_error_errno(errno, "socketpair() failed: %m");
        r = sd_bus_new(&server);
        if (r >= 0)
                r = sd_bus_set_fd(server, fds[0], fds[0]);
        if (r < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                return log_error_errno(r, "Failed to set up the introspection server: %m");
        }
        r = sd_bus_new(&client);
        if (r >= 0)
                r = sd_bus_set_fd(client, fds[1], fds[1]);
        if (r < 0) {
                safe_close(fds[1]);
                return log_error_errno(r, "Failed to set up the introspection client: %m");
        }
        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_set_server(server, true, id);
        if (r >= 0)
                r = sd_bus_set_anonymous(server, true);
        if (r >= 0)
                r = sd_bus_set_anonymous(client, true);
        for (size_t i = 0; r >= 0 && impls[i]; i++)
                r = sd_bus_add_object_vtable(
                                server, NULL, impls[i]->path, impls[i]->interface, impls[i]->vtable, NULL);
        if (r >= 0)
                r = sd_bus_start(server);
        if (r >= 0)
                r = sd_bus_start(client);
        if (r < 0)
                return log_error_errno(r, "Failed to start the introspection connection: %m");

        r = -pthread_create(&thread, NULL, serve_thread, server);
        if (r < 0)
                return log_error_errno(r, "Failed to start the introspection thread: %m");

        for (size_t i = 0; r >= 0 && impls[i]; i++) {
                _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *xml;

                if (i > 0 && streq(impls[i]->path, impls[i - 1]->path))
                        continue; /* one Introspect per path covers all of its interfaces */
                r = sd_bus_call_method(
                                client,
                                NULL,
                                impls[i]->path,
                                "org.freedesktop.DBus.Introspectable",
                                "Introspect",
                                &error,
                                &reply,
                                NULL);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "s", &xml);
                if (r < 0)
                        log_error_errno(r,
                                        "Introspect of %s failed: %s",
                                        impls[i]->path,
                                        error.message ?: strerror(-r));
                else
                        fputs(xml, f);
        }

        /* Hang up: the server thread's next sd_bus_process() fails and it ends. */
        client = sd_bus_flush_close_unref(client);
        (void) pthread_join(thread, NULL);
        return r < 0 ? r : 0;
}
