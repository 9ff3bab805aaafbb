/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vaults' mount units (units/persist-vault.mount, …): eve-vaultd maps a vault, systemd mounts it for the
 * whole system (eve-vaultd's own mount namespace is private to its unit). After an unlock eve-vaultd starts
 * the vault's mount unit; before a lock it stops it and waits for that job, so that systemd first stops the
 * units that need the vault, then unmounts, and only then the mapping is closed. Without systemd on the bus
 * (tests, a container) or without such a unit, both steps are skipped. */
#include "log.h"
#include "vaultd.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
#define STOP_TIMEOUT_USEC (UINT64_C(120) * 1000000U)

static int on_start_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                log_debug("Starting the mount unit: %s", e->message ?: e->name);
        return 0;
}

void vault_start_mount_unit(Vault *v) {
        _cleanup_free_ char *unit = vault_mount_unit_name(v->mount_point);

        if (!unit || !v->manager->bus)
                return;
        (void) sd_bus_call_method_async(
                        v->manager->bus,
                        NULL,
                        SYSTEMD_DEST,
                        SYSTEMD_PATH,
                        SYSTEMD_MANAGER,
                        "StartUnit",
                        on_start_reply,
                        NULL,
                        "ss",
                        unit,
                        "replace");
}

static void unit_wait_done(Job *j) {
        j->unit_call = sd_bus_slot_unref(j->unit_call);
        j->unit_match = sd_bus_slot_unref(j->unit_match);
        j->unit_timer = sd_event_source_disable_unref(j->unit_timer);
        j->unit_job = mfree(j->unit_job);
        job_enqueue(j);
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Job *j = userdata;
        const char *path, *unit, *result;
        uint32_t id;

        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0 || !j->unit_job ||
            !streq(path, j->unit_job))
                return 0;
        log_debug("Vault %s: %s stopped (%s).", j->vault->name, unit, result);
        unit_wait_done(j);
        return 0;
}

static int on_stop_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);
        Job *j = userdata;
        const char *path;

        if (e || sd_bus_message_read(m, "o", &path) < 0) {
                /* No systemd here, or no mount unit for this vault: nothing to wait for. */
                log_debug("Vault %s: not stopping a mount unit: %s",
                          j->vault->name,
                          e ? (e->message ?: e->name) : "bad reply");
                unit_wait_done(j);
                return 0;
        }
        j->unit_job = strdup(path);
        if (!j->unit_job)
                unit_wait_done(j);
        return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;

        log_warning("Vault %s: its mount unit did not stop in time; locking anyway.", j->vault->name);
        unit_wait_done(j);
        return 0;
}

void job_enqueue_after_unmount(Job *j) {
        Manager *m = j->manager;
        _cleanup_free_ char *unit = vault_mount_unit_name(j->vault->mount_point);
        int r;

        if (!unit || !m->bus) {
                job_enqueue(j);
                return;
        }
        /* Subscribe() makes systemd send JobRemoved to us; the match is in place before the job exists. */
        r = sd_bus_call_method_async(
                        m->bus,
                        NULL,
                        SYSTEMD_DEST,
                        SYSTEMD_PATH,
                        SYSTEMD_MANAGER,
                        "Subscribe",
                        NULL,
                        NULL,
                        NULL);
        if (r >= 0)
                r = sd_bus_match_signal(
                                m->bus,
                                &j->unit_match,
                                SYSTEMD_DEST,
                                SYSTEMD_PATH,
                                SYSTEMD_MANAGER,
                                "JobRemoved",
                                on_job_removed,
                                j);
        if (r >= 0)
                r = sd_event_add_time_relative(
                                m->event,
                                &j->unit_timer,
                                CLOCK_MONOTONIC,
                                STOP_TIMEOUT_USEC,
                                0,
                                on_stop_timeout,
                                j);
        if (r >= 0)
                r = sd_bus_call_method_async(
                                m->bus,
                                &j->unit_call,
                                SYSTEMD_DEST,
                                SYSTEMD_PATH,
                                SYSTEMD_MANAGER,
                                "StopUnit",
                                on_stop_reply,
                                j,
                                "ss",
                                unit,
                                "replace");
        if (r < 0) {
                log_debug_errno(r, "Vault %s: cannot ask systemd to unmount: %m", j->vault->name);
                unit_wait_done(j);
        }
}
