/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "configd-manager.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#include <time.h>

#include "configd-credsock.h"
#include "configd-store.h"
#include "log.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"

static const char *const origin_names[_CONFIG_ORIGIN_MAX] = {
        [CONFIG_ORIGIN_NONE] = "none",
        [CONFIG_ORIGIN_STORED] = "stored",
        [CONFIG_ORIGIN_CONTROLLER] = "controller",
};

static const char *const result_names[_FETCH_RESULT_MAX] = {
        [FETCH_NEVER] = "never",
        [FETCH_UPDATED] = "updated",
        [FETCH_NOT_MODIFIED] = "not-modified",
        [FETCH_FORBIDDEN] = "forbidden",
        [FETCH_UNAVAILABLE] = "unavailable",
        [FETCH_REFUSED] = "refused",
        [FETCH_NOT_READY] = "not-ready",
};

const char *config_origin_to_string(ConfigOrigin o) {
        return o >= 0 && o < _CONFIG_ORIGIN_MAX ? origin_names[o] : NULL;
}

const char *fetch_result_to_string(FetchResult r) {
        return r >= 0 && r < _FETCH_RESULT_MAX ? result_names[r] : NULL;
}

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

int manager_new(Manager **ret) {
        Manager *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        *m = (Manager){
                .check_mount = true,
                .fetch_interval = FETCH_INTERVAL_DEFAULT,
                .fetch_retry = FETCH_RETRY_DEFAULT,
                .info_interval = INFO_INTERVAL_DEFAULT,
                .fetch_enabled = true,
                .info_enabled = true,
                .credsock_fd = -EBADF,
        };
        *ret = m;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_refresh_waiters; i++)
                sd_bus_message_unref(m->refresh_waiters[i]);
        free(m->refresh_waiters);
        if (m->fetch_request)
                controller_request_cancel(m->fetch_request);
        if (m->certs_request)
                controller_request_cancel(m->certs_request);
        if (m->info_request)
                controller_request_cancel(m->info_request);
        controller_client_free(m->client);
        sd_bus_slot_unref(m->token_slot);
        sd_bus_slot_unref(m->vault_props_slot);
        sd_bus_slot_unref(m->vault_owner_slot);
        sd_event_source_disable_unref(m->fetch_timer);
        sd_event_source_disable_unref(m->certs_timer);
        sd_event_source_disable_unref(m->info_timer);
        sd_event_source_disable_unref(m->tpm_idle);
        sd_event_source_disable_unref(m->credsock_source);
        sd_event_source_disable_unref(m->mount_watch);
        safe_close(m->credsock_fd);
        if (m->credsock_path)
                (void) unlink(m->credsock_path);
        config_free(m->config);
        config_free(m->pending_config);
        cipher_key_free(m->key);
        acl_config_free(m->acl);
        free(m->tcti);
        free(m->acl_dir);
        free(m->vault_mount);
        free(m->storage_state);
        free(m->store_path);
        free(m->vault_state);
        free(m->last_error);
        free(m->credsock_path);
        sd_bus_flush_close_unref(m->bus);
        manager_info_rounds_free(m);
        sd_event_unref(m->event);
        return mfree(m);
}

void manager_emit_changed(Manager *m, const char *property, ...) {
        const char *names[16];
        size_t n = 0;
        va_list ap;

        if (!m->bus)
                return;
        va_start(ap, property);
        for (const char *p = property; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = p;
        va_end(ap);
        names[n] = NULL;
        (void) sd_bus_emit_properties_changed_strv(
                        m->bus, CONFIGD_OBJECT_PATH, CONFIGD_INTERFACE, (char **) names);
}

/* ---- where the configuration lives ---- */

static void set_storage_state(Manager *m, bool stored, const char *fmt, ...) _printf_(3, 4);
static void set_storage_state(Manager *m, bool stored, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        if (m->stored == stored && streq_ptr(m->storage_state, s))
                return;
        m->stored = stored;
        free(m->storage_state);
        m->storage_state = TAKE_PTR(s);
        log_info("%s", m->storage_state);
        (void) sd_notifyf(false, "STATUS=%s", m->storage_state);
        manager_emit_changed(m, "Stored", "StorageState", NULL);
}

static bool vault_unlocked(Manager *m) {
        return streq_ptr(m->vault_state, "Unlocked");
}

/* Whether the vault's mount point is one: a directory on another device than its parent. */
static int is_mount_point(const char *path) {
        _cleanup_free_ char *parent = NULL;
        struct stat a, b;

        if (asprintf(&parent, "%s/..", path) < 0)
                return -ENOMEM;
        if (stat(path, &a) < 0 || stat(parent, &b) < 0)
                return -errno;
        if (!S_ISDIR(a.st_mode))
                return -ENOTDIR;
        return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

static int on_mount_table(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        manager_update_storage(userdata);
        return 0;
}

/* eve-vaultd reports the vault Unlocked once systemd's mount unit is started; the mount itself follows. The
 * kernel signals every change of the mount table on /proc/self/mountinfo (EPOLLPRI): look again then. */
static void watch_mount_table(Manager *m, bool on) {
        _cleanup_close_ int fd = -EBADF;

        if (!on || m->mount_watch) {
                if (!on)
                        m->mount_watch = sd_event_source_disable_unref(m->mount_watch);
                return;
        }
        fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || sd_event_add_io(m->event, &m->mount_watch, fd, EPOLLPRI, on_mount_table, m) < 0) {
                log_warning_errno(fd < 0 ? errno : EINVAL,
                                  "Cannot watch the mount table; the config vault's mount is seen at the next "
                                  "change of its state: %m");
                return;
        }
        (void) sd_event_source_set_io_fd_own(m->mount_watch, true);
        TAKE_FD(fd);
}

void manager_update_storage(Manager *m) {
        const char *reason = NULL;
        int r;

        watch_mount_table(m, false);
        if (!vault_unlocked(m)) {
                if (m->config)
                        set_storage_state(
                                        m,
                                        false,
                                        "Configuration held in memory only: the config vault is %s.",
                                        m->vault_state ? m->vault_state : "not known to be unlocked");
                else
                        set_storage_state(
                                        m,
                                        false,
                                        "No configuration yet; the config vault is %s.",
                                        m->vault_state ? m->vault_state : "not known to be unlocked");
                return;
        }
        if (m->check_mount) {
                r = is_mount_point(m->vault_mount);
                if (r <= 0) {
                        set_storage_state(
                                        m,
                                        false,
                                        "Configuration held in memory only: the config vault is Unlocked "
                                        "but "
                                        "nothing is mounted at %s.",
                                        m->vault_mount);
                        if (m->event)
                                watch_mount_table(m, true);
                        return;
                }
        }
        if (!m->config) {
                _cleanup_(config_freep) Config *c = NULL;

                r = store_load(m->store_path, &c, &reason);
                if (r == -ENOENT) {
                        set_storage_state(m, false, "No configuration yet; the config vault is unlocked.");
                        return;
                }
                if (r < 0) {
                        set_storage_state(
                                        m,
                                        false,
                                        "The stored configuration %s is %s (%s); ignored, waiting for the "
                                        "controller.",
                                        m->store_path,
                                        r == -EBADMSG ? "corrupt" : "unreadable",
                                        r == -EBADMSG ? reason : strerror(-r));
                        return;
                }
                log_info("Loaded the stored configuration %s (hash %s).",
                         m->store_path,
                         config_hash(c) ?: "-");
                m->stored = true;
                (void) manager_set_config(m, TAKE_PTR(c), CONFIG_ORIGIN_STORED);
                return;
        }
        if (m->stored) {
                set_storage_state(m, true, "Configuration stored in the config vault (%s).", m->store_path);
                return;
        }
        r = store_save(m->store_path, m->config);
        if (r < 0) {
                set_storage_state(
                                m,
                                false,
                                "Configuration held in memory only: storing it in %s failed: %s",
                                m->store_path,
                                strerror(-r));
                return;
        }
        set_storage_state(m, true, "Configuration stored in the config vault (%s).", m->store_path);
}

int manager_set_config(Manager *m, Config *c, ConfigOrigin origin) {
        const char *old = config_hash(m->config);
        bool same = old && streq_ptr(old, config_hash(c));

        config_free(m->config);
        m->config = c;
        m->origin = origin;
        if (origin != CONFIG_ORIGIN_STORED && !same)
                m->stored = false;
        log_info("Configuration %s from %s: %zu secrets%s.",
                 config_hash(c) ?: "(no hash)",
                 config_origin_to_string(origin),
                 c->n_secrets,
                 c->n_duplicates > 0 ? " (duplicate names dropped)" : "");
        manager_update_storage(m);
        manager_emit_changed(m, "ConfigHash", "Origin", "Secrets", NULL);
        (void) manager_vaults_apply(m);
        return 0;
}

/* ---- the config vault's state, from org.eve.Vault ---- */

static void vault_state_set(Manager *m, const char *state) {
        if (streq_ptr(m->vault_state, state))
                return;
        free(m->vault_state);
        m->vault_state = state ? strdup(state) : NULL;
        log_debug("Config vault state: %s", state ?: "unknown");
        manager_update_storage(m);
}

static int on_vault_state(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *state;

        if (e) {
                log_debug("Cannot read the config vault's state: %s", e->message ?: e->name);
                vault_state_set(m, NULL);
                return 0;
        }
        if (sd_bus_message_read(reply, "v", "s", &state) < 0)
                return 0;
        vault_state_set(m, state);
        return 0;
}

static int vault_state_query(Manager *m) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = sd_bus_path_encode(VAULT_OBJECT_PREFIX, CONFIG_VAULT_NAME, &path);
        if (r < 0)
                return r;
        return sd_bus_call_method_async(
                        m->bus,
                        NULL,
                        VAULT_BUS_NAME,
                        path,
                        "org.freedesktop.DBus.Properties",
                        "Get",
                        on_vault_state,
                        m,
                        "ss",
                        VAULT_INTERFACE,
                        "State");
}

static int on_vault_properties(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *iface;
        int r;

        r = sd_bus_message_read(msg, "s", &iface);
        if (r < 0 || !streq(iface, VAULT_INTERFACE))
                return 0;
        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return 0;
        while (sd_bus_message_enter_container(msg, 'e', "sv") > 0) {
                const char *name, *state;

                if (sd_bus_message_read(msg, "s", &name) < 0)
                        return 0;
                if (streq(name, "State")) {
                        if (sd_bus_message_read(msg, "v", "s", &state) >= 0)
                                vault_state_set(m, state);
                        return 0;
                }
                if (sd_bus_message_skip(msg, "v") < 0 || sd_bus_message_exit_container(msg) < 0)
                        return 0;
        }
        /* Invalidated (or State not among the changed): ask. */
        (void) sd_bus_message_exit_container(msg);
        (void) vault_state_query(m);
        return 0;
}

static int on_vault_owner(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0 ||
            !streq(name, VAULT_BUS_NAME))
                return 0;
        if (isempty(new_owner)) {
                log_info("eve-vaultd left the bus; not writing to the config vault until it is back.");
                vault_state_set(m, NULL);
        } else {
                (void) vault_state_query(m);
                (void) manager_vaults_apply(m); /* a restarted eve-vaultd gets the vault section again */
        }
        return 0;
}

static int vault_watch(Manager *m) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = sd_bus_path_encode(VAULT_OBJECT_PREFIX, CONFIG_VAULT_NAME, &path);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(
                        m->bus,
                        &m->vault_props_slot,
                        VAULT_BUS_NAME,
                        path,
                        "org.freedesktop.DBus.Properties",
                        "PropertiesChanged",
                        on_vault_properties,
                        NULL,
                        m);
        if (r < 0)
                return r;
        r = sd_bus_add_match_async(
                        m->bus,
                        &m->vault_owner_slot,
                        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" VAULT_BUS_NAME
                        "'",
                        on_vault_owner,
                        NULL,
                        m);
        if (r < 0)
                return r;
        return vault_state_query(m);
}

int manager_reload_acl(Manager *m) {
        AclConfig *acl = NULL;
        int r;

        r = acl_config_load(m->acl_dir, &acl);
        if (r < 0)
                return log_error_errno(r, "Cannot load the secret ACLs: %m");
        acl_config_free(m->acl);
        m->acl = acl;
        manager_emit_changed(m, "Secrets", NULL);
        return 0;
}

int manager_startup(Manager *m) {
        int r;

        if (!m->vault_mount &&
            asprintf(&m->vault_mount, "%s/" CONFIG_VAULT_NAME, eve_path(EVE_PATH_VAULTS)) < 0)
                return log_oom();
        m->store_path = store_path(m->vault_mount);
        if (!m->store_path)
                return log_oom();
        r = manager_reload_acl(m);
        if (r < 0)
                return r;
        r = cipher_key_load(m->tcti, &m->key);
        if (r < 0)
                log_warning_errno(
                                r,
                                "No device ECDH key yet (%s/ecdh.cert.pem); secrets cannot be decrypted "
                                "until "
                                "eve-tpm-setup has run: %m",
                                eve_path(EVE_PATH_CERTS));
        manager_update_storage(m);
        if (m->bus) {
                r = vault_watch(m);
                if (r < 0)
                        return log_error_errno(r, "Cannot watch the config vault: %m");
        }
        return 0;
}

/* ---- delivering a secret ---- */

static int on_tpm_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        cipher_key_close_tpm(m->key);
        return 0;
}

/* Keeps the TPM connection for a burst of requests, closes it when idle. */
static void tpm_idle_arm(Manager *m) {
        if (!m->event || !m->key || !m->key->tpm)
                return;
        if (!m->tpm_idle) {
                if (sd_event_add_time_relative(
                                    m->event,
                                    &m->tpm_idle,
                                    CLOCK_MONOTONIC,
                                    TPM_IDLE_CLOSE,
                                    0,
                                    on_tpm_idle,
                                    m) < 0) {
                        cipher_key_close_tpm(m->key);
                        return;
                }
                return;
        }
        (void) sd_event_source_set_time_relative(m->tpm_idle, TPM_IDLE_CLOSE);
        (void) sd_event_source_set_enabled(m->tpm_idle, SD_EVENT_ONESHOT);
}

static void count_failure(Manager *m, const Secret *s, CipherFailure f, const char *who) {
        m->metrics.failure++;
        m->metrics.last_failure = now_usec(CLOCK_REALTIME);
        m->metrics.by_failure[f]++;
        m->metrics.by_error[cipher_failure_to_cipher_error(f)]++;
        log_warning("Secret %s for %s: %s", s->name, who, cipher_failure_to_message(f));
        manager_emit_changed(m, "CipherFailures", "CipherErrors", "CipherFailureReasons", NULL);
        if (f == CIPHER_FAILURE_UNKNOWN_CERT)
                manager_certs_refetch(m, "a cipher context names an unknown controller certificate");
}

int manager_deliver(
                Manager *m,
                const char *name,
                const char *field,
                uid_t uid,
                const char *unit,
                const char *who,
                SecretValues *ret,
                CipherFailure *ret_failure) {

        _cleanup_(proto_secret_freep) EncryptionBlock *eb = NULL;
        _cleanup_(secret_values_done) SecretValues v = {};
        const Secret *s;
        const Acl *acl;
        bool known_field = isempty(field);
        int r;

        if (!m->config)
                return -ENOMEDIUM;
        s = config_find_secret(m->config, name);
        if (!s)
                return -ENOENT;
        acl = acl_for_secret(m->acl, s);
        if (!acl_allows(acl, s, uid, unit)) {
                log_notice("Refused secret %s to %s (UID %d, unit %s): not on its ACL.",
                           s->name,
                           who,
                           uid == (uid_t) -1 ? -1 : (int) uid,
                           unit ?: "unknown");
                return -EACCES;
        }
        for (const char *const *f = secret_kind_fields(s->kind); !known_field && f && *f; f++)
                known_field = streq(*f, field);
        if (!known_field)
                return -ENODATA;

        if (!s->block) {
                /* The transition plan: cleartext only because there is no cipher block. */
                m->metrics.by_error[CIPHER_ERROR_CLEARTEXT_FALLBACK]++;
                manager_emit_changed(m, "CleartextFallbacks", "CipherErrors", NULL);
                log_notice("Secret %s for %s: no cipher block, using the controller's cleartext.",
                           s->name,
                           who);
                r = secret_values_from(s, NULL, &v);
        } else {
                if (!m->key) {
                        r = cipher_key_load(m->tcti, &m->key);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                *ret_failure = CIPHER_FAILURE_KEY;
                                count_failure(m, s, *ret_failure, who);
                                return -EBADMSG;
                        }
                }
                r = cipher_block_decrypt(
                                m->key,
                                m->config->response->config->ciphercontexts,
                                m->config->response->config->n_ciphercontexts,
                                s->block,
                                &eb,
                                ret_failure);
                tpm_idle_arm(m);
                if (r == -EBADMSG) {
                        count_failure(m, s, *ret_failure, who);
                        return r;
                }
                if (r < 0)
                        return r;
                r = secret_values_from(s, eb, &v);
        }
        if (r == -ENODATA || (r >= 0 && !isempty(field) && !secret_values_get(&v, field))) {
                *ret_failure = CIPHER_FAILURE_EMPTY;
                if (s->block)
                        count_failure(m, s, *ret_failure, who);
                return -EBADMSG;
        }
        if (r < 0)
                return r;
        if (s->block) {
                m->metrics.success++;
                m->metrics.last_success = now_usec(CLOCK_REALTIME);
                manager_emit_changed(m, "CipherSuccesses", NULL);
        }
        log_info("Delivered secret %s%s%s to %s.", s->name, isempty(field) ? "" : "@", field ?: "", who);
        *ret = v;
        v = (SecretValues){};
        return 0;
}

/* ---- the credential socket ---- */

static int write_all(int fd, const void *p, size_t n) {
        const uint8_t *b = p;

        while (n > 0) {
                ssize_t k = write(fd, b, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                b += k;
                n -= (size_t) k;
        }
        return 0;
}

static void credsock_serve(Manager *m, int fd) {
        _cleanup_free_ char *unit = NULL, *id = NULL, *name = NULL, *field = NULL, *who = NULL,
                            *cg_unit = NULL;
        _cleanup_(secret_values_done) SecretValues v = {};
        struct sockaddr_un sa = {};
        socklen_t salen = sizeof sa;
        struct ucred cred = {};
        socklen_t credlen = sizeof cred;
        CipherFailure failure = _CIPHER_FAILURE_INVALID;
        const char *value;
        int r;

        if (getpeername(fd, (struct sockaddr *) &sa, &salen) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0) {
                log_warning_errno(errno, "Credential socket: cannot identify the peer: %m");
                goto refused;
        }
        r = credsock_parse_peer(&sa, salen, &unit, &id);
        if (r < 0) {
                log_warning("Credential socket: PID %d did not connect the way the service manager does "
                            "(no \"/unit/<unit>/<credential>\" address), refused.",
                            (int) cred.pid);
                goto refused;
        }
        if (asprintf(&who, "unit %s (credential socket, PID %d)", unit, (int) cred.pid) < 0) {
                log_oom();
                goto refused;
        }
        /* An abstract address can be bound by anyone: only root (the service manager) may claim a unit. */
        if (cred.uid != 0) {
                log_warning("Credential socket: UID %u claimed to be %s, refused (only the service manager, "
                            "as "
                            "root, may).",
                            (unsigned) cred.uid,
                            unit);
                goto refused;
        }
        /* Under systemd the connecting process already runs in the unit's cgroup: it must be that unit. */
        if (sd_booted() > 0 && (sd_pid_get_unit(cred.pid, &cg_unit) < 0 || !streq(cg_unit, unit))) {
                log_warning("Credential socket: the peer claims %s but runs in %s, refused.",
                            unit,
                            cg_unit ?: "no unit");
                goto refused;
        }
        r = credsock_split_id(id, &name, &field);
        if (r < 0)
                goto refused;

        r = manager_deliver(m, name, field, (uid_t) -1, unit, who, &v, &failure);
        if (r < 0) {
                if (r == -ENOENT || r == -ENOMEDIUM)
                        log_warning("Credential %s for %s: %s.",
                                    id,
                                    who,
                                    r == -ENOENT ? "no such secret" : "no configuration yet");
                else if (r == -ENODATA)
                        log_warning("Credential %s for %s: no field '%s' in this secret.", id, who, field);
                goto refused;
        }
        value = secret_values_get(&v, field);
        if (!value)
                goto refused;
        /* The peer reads until EOF: a blocking write with a time limit, then close. */
        if (fcntl(fd, F_SETFL, 0) < 0 ||
            setsockopt(fd,
                       SOL_SOCKET,
                       SO_SNDTIMEO,
                       &(struct timeval){ .tv_sec = 5 },
                       sizeof(struct timeval)) < 0)
                goto refused;
        r = write_all(fd, value, strlen(value));
        if (r < 0) {
                log_warning_errno(r, "Credential %s for %s: writing failed: %m", id, who);
                goto refused;
        }
        m->credentials_served++;
        manager_emit_changed(m, "CredentialsServed", NULL);
        return;
refused:
        m->credentials_refused++;
        manager_emit_changed(m, "CredentialsRefused", NULL);
}

static int on_credsock(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        for (;;) {
                _cleanup_close_ int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno != EAGAIN)
                                log_warning_errno(errno, "Credential socket: accept failed: %m");
                        return 0;
                }
                credsock_serve(m, c);
        }
}

int manager_credsock_start(Manager *m) {
        int r;

        if (!m->credsock_path && !(m->credsock_path = eve_path_join(EVE_PATH_RUN, CREDSOCK_NAME)))
                return log_oom();
        r = credsock_listen(m->credsock_path, &m->credsock_fd);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on %s: %m", m->credsock_path);
        r = sd_event_add_io(m->event, &m->credsock_source, m->credsock_fd, EPOLLIN, on_credsock, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch %s: %m", m->credsock_path);
        log_info("Serving credentials on %s.", m->credsock_path);
        return 0;
}
