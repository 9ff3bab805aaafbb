/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-util.h: what every eve-trust bus daemon needs around sd-bus: the event loop and system bus of a
 * Type=notify service, readiness, the "root or admin group" check for methods that change anything, and the
 * introspection XML a daemon prints with --bus-introspect (checked against dbus/ in the tests). */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* sd-bus and sd-event headers define the *_unrefp cleanup functions. */
static inline void bus_error_freep(sd_bus_error *e) {
        sd_bus_error_free(e);
}
#define _cleanup_bus_error_ _cleanup_(bus_error_freep)

/* The group whose members may call mutating methods besides root: $EVE_ADMIN_GROUP, default "eve-admin".
 * A group that does not exist admits nobody but root. */
#define EVE_ADMIN_GROUP_DEFAULT "eve-admin"
const char *bus_admin_group(void);

/* The default event loop with SIGTERM and SIGINT ending it (exit code 0), and the system bus
 * ($DBUS_SYSTEM_BUS_ADDRESS when set, as sd-bus does) attached to it. */
int bus_daemon_open(sd_event **ret_event, sd_bus **ret_bus);
/* Takes the well-known name (after the objects are registered, so no caller sees a half-built service), then
 * tells systemd READY=1 with a STATUS= line a person understands. */
int bus_daemon_ready(sd_bus *bus, const char *name, const char *status);
/* Runs the loop; returns its exit code (0 on SIGTERM) or a negative error. */
int bus_daemon_run(sd_event *event, sd_bus *bus, const char *name);

/* Caller authorisation for methods that change anything: root, or a member (per the user database) of
 * bus_admin_group(). Such methods must carry SD_BUS_VTABLE_UNPRIVILEGED: without it sd-bus itself refuses
 * every caller lacking CAP_SYS_ADMIN with a generic org.freedesktop.DBus.Error.AccessDenied before the
 * handler runs, and the caller never learns the named error. Returns 1 when allowed; 0 when not, with *error
 * set to denied_error (a named D-Bus error such as "org.eve.Vault.Error.AccessDenied") and a message naming
 * the method; < 0 on failure. */
int bus_verify_admin(sd_bus_message *m, const char *denied_error, sd_bus_error *error);
/* The caller's effective UID (for per-secret ACLs and logs). */
int bus_sender_uid(sd_bus_message *m, uid_t *ret);

/* One object of a daemon's API, as registered with sd_bus_add_object_vtable() (fallback objects are
 * described at a representative path). */
typedef struct BusObjectImpl {
        const char *path;
        const char *interface;
        const sd_bus_vtable *vtable;
} BusObjectImpl;

/* The Introspect XML of each object (NULL-terminated array), as the daemon would serve it, one after the
 * other; served over a private socketpair connection in-process, with no bus and no state. For
 * --bus-introspect. */
int bus_introspect_implementations(FILE *f, const BusObjectImpl *const *impls);
