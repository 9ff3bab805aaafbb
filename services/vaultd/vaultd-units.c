/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vaults' mount units (units/persist-vault.mount, …): eve-vaultd maps a vault, systemd mounts it for the
 * whole system (eve-vaultd's own mount namespace is private to its unit). After an unlock eve-vaultd starts
 * the vault's mount unit; before a lock it stops it and waits for that job, so that systemd first stops the
 * units that need the vault, then unmounts, and only then the mapping is closed. Without systemd on the bus
 * (tests, a container) or without such a unit, both steps are skipped. */
#include <dirent.h>
#include <unistd.h>

#include "crypto-util.h"
#include "log.h"
#include "paths.h"
#include "vaultd.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
#define STOP_TIMEOUT_USEC (UINT64_C(120) * 1000000U)

static int on_start_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                log_debug("systemd refused: %s", e->message ?: e->name);
        return 0;
}

/* StartUnit or StopUnit, mode "replace", not waited for (a refusal is logged). */
static void unit_call(Manager *m, const char *method, const char *unit) {
        if (!unit || !m->bus)
                return;
        (void) sd_bus_call_method_async(
                        m->bus,
                        NULL,
                        SYSTEMD_DEST,
                        SYSTEMD_PATH,
                        SYSTEMD_MANAGER,
                        method,
                        on_start_reply,
                        NULL,
                        "ss",
                        unit,
                        "replace");
}

static void start_unit(Manager *m, const char *unit) {
        unit_call(m, "StartUnit", unit);
}

void vault_start_mount_unit(Vault *v) {
        _cleanup_free_ char *unit = vault_mount_unit_name(v->mount_point);

        start_unit(v->manager, unit);
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

/* ---- units written at runtime for the controller's vaults and their applications ---- */

#define UNIT_MARKER "# Written by eve-vaultd"
#define APP_DROPIN "50-eve-trust-vault.conf"
#define MOUNT_DROPIN "50-eve-trust-apps.conf"
#define DEVICE_DROPIN "50-eve-trust.conf"

const char *vault_unit_dir(void) {
        static char buf[4096];
        const char *e = getenv_nonempty("EVE_SYSTEMD_UNIT_DIR"), *root = getenv_nonempty("EVE_ROOT");

        if (e)
                return e;
        if (root) {
                (void) snprintf(buf, sizeof(buf), "%s/run/systemd/system", root);
                return buf;
        }
        return "/run/systemd/system";
}

/* 1 when written, 0 when it held that already. */
static int write_if_changed(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = NULL, *old = NULL;
        size_t n;
        int r;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        if (crypto_read_file(path, false, &old, &n) >= 0 && streq(old, text))
                return 0;
        r = eve_mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        r = crypto_write_file_atomic(path, text, strlen(text), 0644);
        return r < 0 ? r : 1;
}

static char *vault_mount_point_of(const char *name) {
        return eve_path_join(EVE_PATH_VAULTS, name);
}

/* The mapping's device unit, dev-mapper-eve\x2dvault\x2d<name>.device (names are [a-z0-9-]). */
static char *device_unit_name(const char *name) {
        _cleanup_free_ char *map = NULL;
        char *s, *p;

        if (asprintf(&map, "eve-vault-%s", name) < 0)
                return NULL;
        s = malloc(strlen(map) * 4 + sizeof("dev-mapper-.device"));
        if (!s)
                return NULL;
        p = stpcpy(s, "dev-mapper-");
        for (const char *c = map; *c; c++)
                p = *c == '-' ? stpcpy(p, "\\x2d") : (*p = *c, p + 1);
        strcpy(p, ".device");
        return s;
}

static bool vault_is_configured(Manager *m, const char *uuid, const char **ret_name) {
        for (size_t i = 0; i < m->n_configs; i++)
                if (strcasecmp(m->configs[i].uuid, uuid) == 0) {
                        if (ret_name)
                                *ret_name = m->configs[i].name;
                        return true;
                }
        return false;
}

static int write_vault_units(Manager *m, const VaultConfig *c, bool *changed) {
        _cleanup_free_ char *mp = vault_mount_point_of(c->name), *unit = NULL, *dev = NULL, *text = NULL,
                            *dropin_dir = NULL, *wants = NULL, *dev_dir = NULL;
        const char *dir = vault_unit_dir();
        int r;

        if (!mp || !(unit = vault_mount_unit_name(mp)) || !(dev = device_unit_name(c->name)))
                return -ENOMEM;
        if (asprintf(&text,
                     UNIT_MARKER " for the controller's vault %s (%s).\n"
                                 "[Unit]\n"
                                 "Description=eve-trust vault \"%s\" (%s)\n"
                                 "DefaultDependencies=no\n"
                                 "Conflicts=umount.target\n"
                                 "Before=umount.target\n"
                                 "After=local-fs.target eve-vaultd.service\n\n"
                                 "[Mount]\n"
                                 "What=/dev/mapper/eve-vault-%s\n"
                                 "Where=%s\n"
                                 "Type=ext4\n"
                                 "Options=nodev,nosuid\n",
                     c->name,
                     c->uuid,
                     c->name,
                     mp,
                     c->name,
                     mp) < 0)
                return -ENOMEM;
        r = write_if_changed(dir, unit, text);
        if (r < 0)
                return r;
        *changed |= r > 0;

        /* The applications bound to it: started with it (Wants=), and they need it (their drop-in). */
        for (size_t i = 0; i < m->n_apps; i++) {
                char *w;

                if (strcasecmp(m->apps[2 * i + 1], c->uuid) != 0)
                        continue;
                if (asprintf(&w, "%s eve-app@%s.service", wants ?: "", m->apps[2 * i]) < 0)
                        return -ENOMEM;
                free(wants);
                wants = w;
        }
        if (asprintf(&dropin_dir, "%s/%s.d", dir, unit) < 0)
                return -ENOMEM;
        if (wants) {
                text = mfree(text);
                if (asprintf(&text,
                             UNIT_MARKER ": the applications on vault %s start with it.\n[Unit]\nWants=%s\n",
                             c->name,
                             wants + 1) < 0)
                        return -ENOMEM;
                r = write_if_changed(dropin_dir, MOUNT_DROPIN, text);
                if (r < 0)
                        return r;
                *changed |= r > 0;
        } else {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/" MOUNT_DROPIN, dropin_dir) >= 0 && unlink(p) >= 0) {
                        *changed = true;
                        (void) rmdir(dropin_dir);
                }
        }

        /* A locked vault may stay locked for hours: no time limit on waiting for its mapping. */
        if (asprintf(&dev_dir, "%s/%s.d", dir, dev) < 0)
                return -ENOMEM;
        r = write_if_changed(
                        dev_dir,
                        DEVICE_DROPIN,
                        UNIT_MARKER ": units that need this vault wait for it.\n[Unit]\n"
                                    "JobRunningTimeoutSec=infinity\n");
        if (r < 0)
                return r;
        *changed |= r > 0;
        return 0;
}

static void remove_dropin(const char *dir, const char *subdir, const char *file, bool *changed) {
        _cleanup_free_ char *d = NULL, *p = NULL;

        if (asprintf(&d, "%s/%s", dir, subdir) < 0 || asprintf(&p, "%s/%s", d, file) < 0)
                return;
        if (unlink(p) >= 0) {
                *changed = true;
                (void) rmdir(d);
        }
}

/* Removes what an earlier configuration wrote and this one does not want. An application whose binding goes
 * while its vault stays is stopped: it would otherwise keep running on a vault that is no longer its own,
 * holding files open there (a later removal of that vault could not unmount it). Binding an application to
 * an open vault starts it (manager_write_app_units()); unbinding stops it. */
static void remove_stale(Manager *m, bool *changed) {
        const char *dir = vault_unit_dir();
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                size_t len = strlen(n);

                if (strncmp(n, "eve-app@", 8) == 0 && len > 10 && streq(n + len - 10, ".service.d")) {
                        _cleanup_free_ char *app = strndup(n + 8, len - 8 - 10);
                        bool bound = false;

                        for (size_t i = 0; app && i < m->n_apps; i++)
                                bound = bound ||
                                                (streq(m->apps[2 * i], app) &&
                                                 vault_is_configured(m, m->apps[2 * i + 1], NULL));
                        /* Bound to a vault being deleted: kept until it is gone, so that the application is
                         * stopped before it. */
                        if (!bound) {
                                _cleanup_free_ char *p = NULL, *text = NULL;
                                size_t size;

                                if (asprintf(&p, "%s/%s/" APP_DROPIN, dir, n) >= 0 &&
                                    crypto_read_file(p, false, &text, &size) >= 0)
                                        for (size_t i = 0; i < m->n_deleting; i++)
                                                bound = bound || strstr(text, m->deleting[i]);
                        }
                        if (!bound) {
                                bool removed = false;

                                remove_dropin(dir, n, APP_DROPIN, &removed);
                                *changed |= removed;
                                if (removed && app) {
                                        _cleanup_free_ char *unit = NULL;

                                        if (asprintf(&unit, "eve-app@%s.service", app) >= 0) {
                                                log_info("Application %s: no longer bound to a vault; "
                                                         "stopping it.",
                                                         app);
                                                unit_call(m, "StopUnit", unit);
                                        }
                                }
                        }
                } else if (len > 6 && streq(n + len - 6, ".mount")) {
                        _cleanup_free_ char *text = NULL, *path = NULL, *sub = NULL;
                        size_t size;
                        bool wanted = false;

                        if (asprintf(&path, "%s/%s", dir, n) < 0 ||
                            crypto_read_file(path, false, &text, &size) < 0 ||
                            strncmp(text, UNIT_MARKER, strlen(UNIT_MARKER)) != 0)
                                continue;
                        for (size_t i = 0; i < m->n_configs; i++) {
                                _cleanup_free_ char *mp = vault_mount_point_of(m->configs[i].name),
                                                    *u = mp ? vault_mount_unit_name(mp) : NULL;
                                wanted = wanted || streq_ptr(u, n);
                        }
                        /* A vault being deleted keeps its mount unit until it is gone: stopping that unit is
                         * what stops its applications first. */
                        for (size_t i = 0; i < m->n_deleting; i++) {
                                Vault *v = manager_find_vault_by_uuid(m, m->deleting[i]);
                                _cleanup_free_ char *u = v ? vault_mount_unit_name(v->mount_point) : NULL;
                                wanted = wanted || streq_ptr(u, n);
                        }
                        if (wanted)
                                continue;
                        if (unlink(path) >= 0)
                                *changed = true;
                        if (asprintf(&sub, "%s.d", n) >= 0)
                                remove_dropin(dir, sub, MOUNT_DROPIN, changed);
                }
        }
}

int manager_write_app_units(Manager *m) {
        const char *dir = vault_unit_dir();
        _cleanup_free_ bool *start = calloc(MAX(m->n_apps, (size_t) 1), sizeof(bool));
        bool changed = false;
        int r, ret = 0;

        if (!start)
                return log_oom();

        for (size_t i = 0; i < m->n_configs; i++) {
                r = write_vault_units(m, &m->configs[i], &changed);
                if (r < 0 && ret == 0)
                        ret = log_warning_errno(
                                        r,
                                        "Cannot write the units of vault %s in %s: %m",
                                        m->configs[i].name,
                                        dir);
        }
        for (size_t i = 0; i < m->n_apps; i++) {
                _cleanup_free_ char *sub = NULL, *text = NULL, *mp = NULL;
                const char *name;

                if (!vault_is_configured(m, m->apps[2 * i + 1], &name)) {
                        log_warning("Application %s: vault %s is not configured; not binding it.",
                                    m->apps[2 * i],
                                    m->apps[2 * i + 1]);
                        continue;
                }
                mp = vault_mount_point_of(name);
                if (!mp || asprintf(&sub, "%s/eve-app@%s.service.d", dir, m->apps[2 * i]) < 0 ||
                    asprintf(&text,
                             UNIT_MARKER ": application %s runs on vault %s (%s).\n"
                                         "[Unit]\n"
                                         "RequiresMountsFor=%s\n",
                             m->apps[2 * i],
                             name,
                             m->apps[2 * i + 1],
                             mp) < 0)
                        return log_oom();
                r = write_if_changed(sub, APP_DROPIN, text);
                if (r < 0 && ret == 0)
                        ret = log_warning_errno(
                                        r,
                                        "Cannot bind application %s to its vault in %s: %m",
                                        m->apps[2 * i],
                                        sub);
                changed |= r > 0;
                if (r > 0) {
                        Vault *v = manager_find_vault(m, name);
                        start[i] = v && v->state == VAULT_UNLOCKED;
                }
        }
        remove_stale(m, &changed);
        if (changed && m->bus) {
                log_info("Application and vault units changed in %s; reloading systemd.", dir);
                (void) sd_bus_call_method_async(
                                m->bus,
                                NULL,
                                SYSTEMD_DEST,
                                SYSTEMD_PATH,
                                SYSTEMD_MANAGER,
                                "Reload",
                                on_start_reply,
                                NULL,
                                NULL);
        }
        /* Bound now to a vault mounted already: its mount unit's Wants= acts only when the vault is mounted
         * next, so the application is started here. systemd handles this after the reload above (same
         * connection, and it answers Reload only once reloaded). */
        for (size_t i = 0; i < m->n_apps; i++)
                if (start[i]) {
                        _cleanup_free_ char *unit = NULL;

                        if (asprintf(&unit, "eve-app@%s.service", m->apps[2 * i]) < 0)
                                return log_oom();
                        log_info("Application %s: its vault is open; starting it.", m->apps[2 * i]);
                        start_unit(m, unit);
                }
        return ret;
}
