/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-configd as a process, with the real parts around it: a private dbus-daemon with the project's policy,
 * evc over TLS on 127.0.0.1 (the secrets encrypted to the device's ECDH certificate by `evc secret set`),
 * swtpm provisioned by eve-tpm-setup, eve-register and eve-attestd as processes. The one stand-in is the
 * config vault: dm-crypt cannot run on this host (no device-mapper), so a thread here plays eve-vaultd's
 * org.eve.Vault.Vault "config" object (its State) over a tmpfs mounted in a private mount namespace; the VM
 * test runs with the real eve-vaultd. */
#include <grp.h>
#include <linux/magic.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "attest-fixtures.h"
#include "attest.pb-c.h"
#include "bus-util.h"
#include "configd-acl.h"
#include "configd-cipher.h"
#include "configd-config.h"
#include "configd-store.h"
#include "controller-client.h"
#include "encoding.h"
#include "info.pb-c.h"
#include "paths.h"
#include "proto-util.h"
#include "vault-standin.h"

#define CONFIG_NAME "org.eve.Config"
#define CONFIG_PATH "/org/eve/Config"
#define WIFI_VALUE "Wi-Fi p4ss: correct horse battery staple"
#define DS_VALUE "datastore s3cr3t+/=key"
#define CONSUMER_UNIT "eve-test-consumer.service"

/* ---- the config vault's stand-in ---- */

typedef struct MockVault {
        VaultStandin standin;
        char *mount;
} MockVault;

static int vault_teardown(void *p) {
        MockVault *v = p;

        vault_standin_stop(&v->standin);
        (void) umount2(v->mount, MNT_DETACH);
        free(v->mount);
        free(v);
        return 0;
}

static void vault_set(MockVault *v, const char *state) {
        vault_standin_set(&v->standin, state);
}

/* The "config" vault: State as given, its mount point a tmpfs of its own (in this process's private mount
 * namespace, which the daemons started from here share). */
static MockVault *vault_new(const char *state) {
        static bool unshared = false;
        MockVault *v = calloc(1, sizeof *v);

        ASSERT_NOT_NULL(v);
        if (!unshared) {
                ASSERT_OK(unshare(CLONE_NEWNS));
                ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
                unshared = true;
        }
        ASSERT_OK(asprintf(&v->mount, "%s/config", eve_path(EVE_PATH_VAULTS)));
        ASSERT_OK(eve_mkdir_p(v->mount, 0755));
        ASSERT_OK(mount("tmpfs", v->mount, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"));
        ASSERT_OK(vault_standin_start(&v->standin, state));
        test_defer(vault_teardown, v);
        return v;
}

/* ---- the node ---- */

typedef struct Env {
        PrivateBus *bus;
        Evc *evc;
        Node *node;
        char uuid[37];
        Daemon *attestd, *configd;
        char *acl_dir;
} Env;

static int env_free(void *p) {
        Env *e = p;
        free(e->acl_dir);
        free(e);
        return 0;
}

/* evc, the node (swtpm + eve-tpm-setup), eve-register (certs, onboarding, UUID), eve-attestd up to COMPLETE.
 */
static Env *env_new(bool attest) {
        Env *e = calloc(1, sizeof *e);

        ASSERT_NOT_NULL(e);
        test_defer(env_free, e);
        e->bus = test_bus_start(NULL);
        e->evc = evc_new(NULL);
        e->node = node_new(e->evc);
        node_allow_onboarding(e->node, e->evc);
        node_register(e->uuid);
        ASSERT_OK(asprintf(&e->acl_dir, "%s/secrets.d", e->node->config));
        ASSERT_OK(eve_mkdir_p(e->acl_dir, 0755));
        if (attest) {
                e->attestd = attestd_start_complete(NULL);
        }
        return e;
}

static void acl(Env *e, const char *text) {
        write_text(e->acl_dir, "50-test.conf", text, 0644);
}

static void secret_set(Env *e, const char *name, const char *kind, const char *value) {
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "secret", "set", e->uuid, name, "--kind", kind, "--value", value),
                  0);
}

static void configd_start(Env *e, const char *extra) {
        e->configd =
                        daemon_start("services/configd/eve-configd",
                                     CONFIG_NAME,
                                     NULL,
                                     "--interval=1s",
                                     "--retry=200ms",
                                     "--info-interval=1s",
                                     extra,
                                     NULL);
}

/* ---- talking to eve-configd ---- */

static char *prop_string(const char *name) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        ASSERT_OK(sd_bus_get_property_string(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, name, &error, &s));
        return s;
}

static uint64_t prop_u64(const char *name) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        ASSERT_OK(sd_bus_get_property_trivial(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, name, &error, 't', &v));
        return v;
}

static bool prop_bool(const char *name) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int v = 0;

        ASSERT_OK(sd_bus_get_property_trivial(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, name, &error, 'b', &v));
        return v;
}

/* The counter a{st} property's entry for key. */
static uint64_t prop_counter(const char *name, const char *key) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *k;
        uint64_t v, found = UINT64_MAX;

        ASSERT_OK(sd_bus_get_property(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, name, &error, &reply, "a{st}"));
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "{st}"));
        while (sd_bus_message_read(reply, "{st}", &k, &v) > 0)
                if (streq(k, key))
                        found = v;
        ASSERT_NE(found, UINT64_MAX);
        return found;
}

static void wait_prop(Env *e, const char *name, const char *want, unsigned timeout_ms) {
        uint64_t end = now_msec() + timeout_ms;

        for (;;) {
                _cleanup_free_ char *v = prop_string(name);
                if (streq(v, want))
                        return;
                if (now_msec() > end) {
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "%s stayed \"%s\", not \"%s\"", name, v, want);
                }
                usleep(20000);
        }
}

static void wait_stored(Env *e, bool want, unsigned timeout_ms) {
        uint64_t end = now_msec() + timeout_ms;

        while (prop_bool("Stored") != want) {
                if (now_msec() > end) {
                        _cleanup_free_ char *s = prop_string("StorageState");
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "Stored is not %s: %s", want ? "true" : "false", s);
                }
                usleep(20000);
        }
}

/* GetSecret on a fresh connection (so that it works in a forked child). Returns 0 and the value of field
 * (newly allocated) or the D-Bus error name in *ret_error. */
static int get_secret(const char *name, const char *field, char **ret_value, char **ret_error) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *f, *v;
        int r;

        *ret_value = *ret_error = NULL;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(
                        bus, CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, "GetSecret", &error, &reply, "s", name);
        if (r < 0) {
                *ret_error = strdup(error.name ?: "?");
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &f, &v)) > 0)
                if (streq(f, field))
                        *ret_value = strdup(v);
        return r < 0 ? r : 0;
}

static char *get_secret_ok(const char *name, const char *field) {
        _cleanup_free_ char *err = NULL;
        char *v = NULL;

        if (get_secret(name, field, &v, &err) < 0)
                test_fail(__FILE__, __LINE__, "GetSecret(%s) failed: %s", name, err);
        ASSERT_NOT_NULL(v);
        return v;
}

static char *get_secret_error(const char *name) {
        _cleanup_free_ char *v = NULL;
        char *err = NULL;

        ASSERT_TRUE(get_secret(name, "", &v, &err) < 0);
        ASSERT_NOT_NULL(err);
        return err;
}

typedef struct AsCaller {
        const char *name;
        const char *cgroup_unit; /* run in this unit's cgroup first (NULL: stay) */
        bool want_ok;
        const char *want_value, *field, *want_error;
} AsCaller;

/* The cgroup v2 hierarchy: all of /sys/fs/cgroup, or its "unified" part on a hybrid host. sd-bus
 * (sd_pid_get_unit) reads a process's unit from its cgroup path there. */
static const char *cgroup2_root(void) {
        struct statfs sfs;

        ASSERT_OK(statfs("/sys/fs/cgroup", &sfs));
        return (uint32_t) sfs.f_type == CGROUP2_SUPER_MAGIC ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
}

/* Moves this whole process into the cgroup dir (made when missing). */
static void move_to_cgroup(const char *dir) {
        _cleanup_free_ char *procs = NULL;
        FILE *f;

        ASSERT_OK(eve_mkdir_p(dir, 0755));
        ASSERT_OK(asprintf(&procs, "%s/cgroup.procs", dir));
        f = fopen(procs, "we");
        ASSERT_NOT_NULL(f);
        fprintf(f, "%d\n", (int) getpid());
        ASSERT_EQ(fclose(f), 0);
}

static int call_get_secret(void *p) {
        AsCaller *a = p;
        _cleanup_free_ char *v = NULL, *err = NULL;
        int r;

        r = get_secret(a->name, a->field, &v, &err);
        if (a->want_ok)
                return r >= 0 && streq_ptr(v, a->want_value) ? 0 : -EBADE;
        return r < 0 && streq_ptr(err, a->want_error) ? 0 : -EBADE;
}

/* Calls GetSecret as user from a process running in the unit's cgroup (a slice of this test's own): the test
 * process moves there for the fork of test_call_as(), and back. */
static int call_as_unit(const char *user, AsCaller *a) {
        _cleanup_free_ char *slice = NULL, *unit = NULL, *home = NULL, *line = NULL;
        _cleanup_fclose_ FILE *self = fopen("/proc/self/cgroup", "re");
        size_t n = 0;
        int r;

        ASSERT_NOT_NULL(self);
        while (getline(&line, &n, self) > 0)
                if (strncmp(line, "0::", 3) == 0) {
                        line[strcspn(line, "\n")] = '\0';
                        ASSERT_OK(asprintf(&home, "%s%s", cgroup2_root(), line + 3));
                }
        ASSERT_NOT_NULL(home);
        ASSERT_OK(asprintf(&slice, "%s/eve-test-%d.slice", cgroup2_root(), (int) getpid()));
        ASSERT_OK(asprintf(&unit, "%s/%s", slice, a->cgroup_unit));
        move_to_cgroup(unit);
        r = test_call_as(user, call_get_secret, a);
        move_to_cgroup(home);
        (void) rmdir(unit);
        (void) rmdir(slice);
        return r;
}

/* Reads a credential the way the service manager does (systemd 254: bind "@<random hex>/unit/<unit>/<id>",
 * connect to the socket, read until EOF). Returns the bytes read (possibly empty), NULL on a refused
 * connect. */
static char *read_credential(const char *unit, const char *id) {
        _cleanup_free_ char *path = NULL, *bind_name = NULL;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX }, peer = { .sun_family = AF_UNIX };
        char *buf = NULL;
        size_t n = 0;
        FILE *f;

        ASSERT_OK(fd);
        ASSERT_OK(
                        asprintf(&bind_name,
                                 "%llx/unit/%s/%s",
                                 (unsigned long long) random() << 16 | 0xbeef,
                                 unit,
                                 id));
        peer.sun_path[0] = '\0';
        memcpy(peer.sun_path + 1, bind_name, strlen(bind_name));
        ASSERT_OK(bind(fd,
                       (struct sockaddr *) &peer,
                       (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(bind_name))));
        path = eve_path_join(EVE_PATH_RUN, "credentials.sock");
        strcpy(sa.sun_path, path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return NULL;
        f = open_memstream(&buf, &n);
        ASSERT_NOT_NULL(f);
        for (;;) {
                char b[512];
                ssize_t k = read(fd, b, sizeof b);
                ASSERT_OK(k);
                if (k == 0)
                        break;
                fwrite(b, 1, (size_t) k, f);
        }
        fclose(f);
        return buf;
}

static char *file_contents(const char *path, size_t *ret_size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&buf, &n);
        char b[4096];
        size_t k;

        ASSERT_NOT_NULL(f);
        ASSERT_NOT_NULL(m);
        while ((k = fread(b, 1, sizeof b, f)) > 0)
                fwrite(b, 1, k, m);
        fclose(m);
        *ret_size = n;
        return buf;
}

/* ---- the tests ---- */

TEST(secrets_from_evc_to_their_consumers) {
        Env *e = env_new(true);
        _cleanup_free_ char *v = NULL, *err = NULL, *store = NULL, *file = NULL, *state = NULL, *cred = NULL;
        MockVault *vault;
        size_t n;

        secret_set(e, "office", "wifi", WIFI_VALUE);
        secret_set(e, "store1", "datastore", DS_VALUE);
        acl(e,
            "[Secret wifi.office]\nAllowUser=root\n"
            "[Secret datastore.store1]\nAllowUnit=" CONSUMER_UNIT "\n");
        vault = vault_new("Locked");
        configd_start(e, NULL);
        wait_prop(e, "LastFetchResult", "updated", 20000);

        /* Before the vault is unlocked: memory only, and it says so. */
        ASSERT_FALSE(prop_bool("Stored"));
        state = prop_string("StorageState");
        ASSERT_NOT_NULL(strstr(state, "memory only"));
        ASSERT_EQ(prop_u64("CipherSuccesses"), 0);

        /* The authorised caller gets the exact plaintext; the TPM decrypted it. */
        v = get_secret_ok("wifi.office", "wifiPassword");
        ASSERT_STREQ(v, WIFI_VALUE);
        ASSERT_EQ(prop_u64("CipherSuccesses"), 1);
        /* Others are denied: another user, and root for a secret whose ACL names only a unit. */
        {
                AsCaller a = { .name = "wifi.office", .want_error = "org.eve.Config.Error.AccessDenied" };
                ASSERT_OK(test_call_as("nobody", call_get_secret, &a));
        }
        err = get_secret_error("datastore.store1");
        ASSERT_STREQ(err, "org.eve.Config.Error.AccessDenied");
        err = mfree(err);
        err = get_secret_error("wifi.nope");
        ASSERT_STREQ(err, "org.eve.Config.Error.NoSuchSecret");
        /* A caller in the consumer unit's cgroup, as an unprivileged user, gets it; another unit does not.
         */
        {
                AsCaller a = { .name = "datastore.store1",
                               .field = "dsPassword",
                               .cgroup_unit = CONSUMER_UNIT,
                               .want_ok = true,
                               .want_value = DS_VALUE };
                AsCaller b = { .name = "datastore.store1",
                               .cgroup_unit = "eve-test-other.service",
                               .want_error = "org.eve.Config.Error.AccessDenied" };
                ASSERT_OK(call_as_unit("nobody", &a));
                ASSERT_OK(call_as_unit("nobody", &b));
        }

        /* The credential socket: the consumer unit gets the value, another unit an empty credential. */
        cred = read_credential(CONSUMER_UNIT, "datastore.store1");
        ASSERT_STREQ(cred, DS_VALUE);
        cred = mfree(cred);
        cred = read_credential(CONSUMER_UNIT, "datastore.store1@dsPassword");
        ASSERT_STREQ(cred, DS_VALUE);
        cred = mfree(cred);
        cred = read_credential("eve-test-other.service", "datastore.store1");
        ASSERT_STREQ(cred, "");
        cred = mfree(cred);
        ASSERT_EQ(prop_u64("CredentialsServed"), 2);
        ASSERT_EQ(prop_u64("CredentialsRefused"), 1);

        /* The vault unlocks: the config is stored, and the stored file holds no plaintext. */
        vault_set(vault, "Unlocked");
        wait_stored(e, true, 10000);
        store = store_path(vault->mount);
        file = file_contents(store, &n);
        ASSERT_GE(n, 100);
        ASSERT_NULL(memmem(file, n, WIFI_VALUE, strlen(WIFI_VALUE)));
        ASSERT_NULL(memmem(file, n, DS_VALUE, strlen(DS_VALUE)));
        ASSERT_NULL(memmem(file, n, "correct horse", 13));
        ASSERT_NULL(memmem(file, n, "s3cr3t", 6));
        ASSERT_NOT_NULL(memmem(file, n, "office", 6)); /* (the file is the config: names are there) */

        /* The next periodic fetch: 304, the config kept. */
        wait_prop(e, "LastFetchResult", "not-modified", 10000);
        ASSERT_TRUE(prop_bool("Stored"));
        daemon_stop(e->configd);

        /* Restarted without the controller: the stored config serves at once. */
        configd_start(e, "--no-fetch");
        wait_stored(e, true, 10000);
        free(v);
        v = get_secret_ok("wifi.office", "wifiPassword");
        ASSERT_STREQ(v, WIFI_VALUE);
        free(state);
        state = prop_string("Origin");
        ASSERT_STREQ(state, "stored");
}

TEST(list_secrets_never_shows_values) {
        Env *e = env_new(true);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name, *kind, *source;
        unsigned found = 0;

        secret_set(e, "office", "wifi", WIFI_VALUE);
        vault_new("Locked");
        configd_start(e, NULL);
        wait_prop(e, "LastFetchResult", "updated", 20000);
        ASSERT_OK(sd_bus_call_method(
                        test_bus(),
                        CONFIG_NAME,
                        CONFIG_PATH,
                        CONFIG_NAME,
                        "ListSecrets",
                        &error,
                        &reply,
                        NULL));
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(sssasau)"));
        while (sd_bus_message_enter_container(reply, 'r', "sssasau") > 0) {
                _cleanup_(strv_freep) char **units = NULL;
                const void *uids;
                size_t nu;

                ASSERT_OK(sd_bus_message_read(reply, "sss", &name, &kind, &source));
                ASSERT_OK(sd_bus_message_read_strv(reply, &units));
                ASSERT_OK(sd_bus_message_read_array(reply, 'u', &uids, &nu));
                ASSERT_OK(sd_bus_message_exit_container(reply));
                ASSERT_STREQ(name, "wifi.office");
                ASSERT_STREQ(kind, "wifi");
                ASSERT_STREQ(source, "cipher");
                ASSERT_STREQ(units[0], "eve-network.service"); /* the built-in default for Wi-Fi */
                ASSERT_EQ(nu, 0);
                found++;
        }
        ASSERT_EQ(found, 1);
}

/* Runs evectl ARGS… (as user when not NULL, through setpriv); returns the exit status, stdout in *out. */
static int evectl(const char *user, char **out, ...) {
        _cleanup_free_ char *exe = build_path("services/evectl/evectl"), *ruid = NULL;
        char *argv[16];
        size_t n = 0;
        const char *a;
        va_list ap;

        if (user) {
                ASSERT_OK(asprintf(&ruid, "--reuid=%s", user));
                argv[n++] = (char *) "setpriv";
                argv[n++] = ruid;
                argv[n++] = (char *) "--regid=nogroup";
                argv[n++] = (char *) "--clear-groups";
        }
        argv[n++] = exe;
        va_start(ap, out);
        while ((a = va_arg(ap, const char *)) && n < 15)
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        return test_run(argv, out);
}
#define EVECTL(user, out, ...) evectl(user, out, __VA_ARGS__, NULL)

TEST(evectl_secret_and_config) {
        Env *e = env_new(true);
        _cleanup_free_ char *out = NULL;
        json_object *o, *v;

        secret_set(e, "office", "wifi", WIFI_VALUE);
        secret_set(e, "store1", "datastore", DS_VALUE);
        acl(e, "[Secret wifi.office]\nAllowUser=root\n");
        vault_new("Locked");
        configd_start(e, NULL);
        wait_prop(e, "LastFetchResult", "updated", 20000);

        /* Anyone lists names, kinds and readers; never a value. */
        ASSERT_EQ(EVECTL("nobody", &out, "secret", "list"), 0);
        ASSERT_NOT_NULL(strstr(out, "wifi.office"));
        ASSERT_NOT_NULL(strstr(out, "datastore.store1"));
        ASSERT_NOT_NULL(strstr(out, "eve-downloader.service"));
        ASSERT_NOT_NULL(strstr(out, "uid 0"));
        ASSERT_NULL(strstr(out, "correct horse"));
        ASSERT_NULL(strstr(out, "s3cr3t"));
        out = mfree(out);

        /* The value alone, for a pipe; FIELD and --json too. */
        ASSERT_EQ(EVECTL(NULL, &out, "secret", "get", "wifi.office"), 0);
        ASSERT_STREQ(out, WIFI_VALUE "\n");
        out = mfree(out);
        ASSERT_EQ(EVECTL(NULL, &out, "secret", "get", "wifi.office", "wifiPassword"), 0);
        ASSERT_STREQ(out, WIFI_VALUE "\n");
        out = mfree(out);
        ASSERT_EQ(EVECTL(NULL, &out, "--json", "secret", "get", "wifi.office"), 0);
        o = json_tokener_parse(out);
        ASSERT_NOT_NULL(o);
        ASSERT_TRUE(json_object_object_get_ex(o, "wifiPassword", &v));
        ASSERT_STREQ(json_object_get_string(v), WIFI_VALUE);
        json_object_put(o);
        out = mfree(out);
        /* Not on the ACL: refused, nothing printed. */
        ASSERT_NE(EVECTL("nobody", &out, "secret", "get", "wifi.office"), 0);
        ASSERT_STREQ(out, "");
        out = mfree(out);
        ASSERT_NE(EVECTL(NULL, &out, "secret", "get", "datastore.store1"), 0);
        ASSERT_STREQ(out, "");
        out = mfree(out);

        /* config status, for people and as JSON; refresh needs root. */
        ASSERT_EQ(EVECTL("nobody", &out, "config", "status"), 0);
        ASSERT_NOT_NULL(strstr(out, "memory only"));
        ASSERT_NOT_NULL(strstr(out, "Decrypted:"));
        out = mfree(out);
        ASSERT_EQ(EVECTL(NULL, &out, "--json", "config", "status"), 0);
        o = json_tokener_parse(out);
        ASSERT_NOT_NULL(o);
        ASSERT_EQ(json_int(o, "Secrets"), 2);
        ASSERT_EQ(json_int(o, "CipherSuccesses"), 3);
        ASSERT_FALSE(json_get_bool(o, "Stored"));
        ASSERT_STREQ(json_str(o, "Origin"), "controller");
        json_object_put(o);
        out = mfree(out);
        ASSERT_EQ(EVECTL(NULL, &out, "config", "refresh"), 0);
        ASSERT_STREQ(out, "Configuration fetched: not-modified.\n");
        out = mfree(out);
        ASSERT_NE(EVECTL("nobody", &out, "config", "refresh"), 0);
}

/* The controller withdraws the token (it does after any failed quote): the next fetch gets 403, configd asks
 * eve-attestd to attest again, and the fetch after that succeeds. */
TEST(forbidden_reattests_then_succeeds) {
        Env *e = env_new(true);
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        _cleanup_free_ char *path = NULL, *token_path = NULL, *t1 = NULL, *t2 = NULL;
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuote q = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        long status = 0;
        size_t n1, n2;

        secret_set(e, "office", "wifi", WIFI_VALUE);
        acl(e, "[Kind wifi]\nAllowUser=root\n");
        vault_new("Locked");
        configd_start(e, "--interval=1h");
        wait_prop(e, "LastFetchResult", "updated", 20000);
        token_path = eve_path_join(EVE_PATH_RUN, "integrity-token");
        t1 = file_contents(token_path, &n1);

        /* A quote that does not parse, in the device's name: QUOTE_FAILED, and evc drops the token. */
        ASSERT_OK(controller_client_new(NULL, &c));
        ASSERT_OK(controller_client_load_identity(c, NULL));
        ASSERT_OK(controller_device_path("attest", &path));
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE;
        q.attestdata = (ProtobufCBinaryData){ 4, (uint8_t *) "junk" };
        q.signature = (ProtobufCBinaryData){ 4, (uint8_t *) "junk" };
        req.quote = &q;
        ASSERT_OK(controller_client_post_sync(c, path, &req.base, 0, &status, NULL, NULL));
        ASSERT_EQ(status, 201);

        /* Refresh: 403 → Restart → attestd attests again → configd fetches at once. */
        {
                _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                int r = sd_bus_call_method(
                                test_bus(),
                                CONFIG_NAME,
                                CONFIG_PATH,
                                CONFIG_NAME,
                                "Refresh",
                                &error,
                                &reply,
                                NULL);
                ASSERT_TRUE(r < 0);
                ASSERT_STREQ(error.name, "org.eve.Config.Error.FetchFailed");
                ASSERT_NOT_NULL(strstr(error.message, "forbidden"));
        }
        {
                uint64_t end = now_msec() + 30000;
                for (;;) {
                        _cleanup_free_ char *r = prop_string("LastFetchResult");
                        if (streq(r, "updated") || streq(r, "not-modified"))
                                break;
                        if (now_msec() > end) {
                                daemon_dump(e->configd);
                                daemon_dump(e->attestd);
                                test_fail(__FILE__, __LINE__, "no successful fetch after the 403: %s", r);
                        }
                        usleep(20000);
                }
        }
        t2 = file_contents(token_path, &n2);
        ASSERT_FALSE(n1 == n2 && memcmp(t1, t2, n1) == 0); /* a new token: attestation ran again */
        free(t1);
        t1 = get_secret_ok("wifi.office", "wifiPassword");
        ASSERT_STREQ(t1, WIFI_VALUE);
}

/* The controller goes away: fetches back off and say why, the config in memory keeps serving; when it is
 * back the next fetch succeeds. */
TEST(controller_down_backs_off_and_recovers) {
        Env *e = env_new(true);
        _cleanup_free_ char *v = NULL, *err = NULL;
        uint64_t end;

        secret_set(e, "office", "wifi", WIFI_VALUE);
        acl(e, "[Kind wifi]\nAllowUser=root\n");
        vault_new("Locked");
        configd_start(e, NULL);
        wait_prop(e, "LastFetchResult", "updated", 20000);
        evc_stop(e->evc);
        wait_prop(e, "LastFetchResult", "unavailable", 10000);
        err = prop_string("LastFetchError");
        ASSERT_TRUE(strlen(err) > 0);
        v = get_secret_ok("wifi.office", "wifiPassword");
        ASSERT_STREQ(v, WIFI_VALUE);
        evc_serve(e->evc);
        end = now_msec() + 20000;
        for (;;) {
                _cleanup_free_ char *r = prop_string("LastFetchResult");
                if (streq(r, "not-modified") || streq(r, "updated"))
                        break;
                if (now_msec() > end) {
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "no fetch after evc came back: %s", r);
                }
                usleep(20000);
        }
}

/* ---- malformed blocks, through the daemon ---- */

/* Installs the vector's root CA and controller certificates where eve-register would, and writes a stored
 * config in the vault with every case as an item of its kind (named after the case) and the vector's
 * contexts. Returns the parsed vector. */
static json_object *store_vector_config(const char *vault_mount) {
        _cleanup_free_ char *script = test_srcpath("tests/integration/config/cipher-vector.py"),
                            *device = eve_path_join(EVE_PATH_CERTS, "ecdh.cert.pem"),
                            *dir = test_mkdtemp("vector"), *out = NULL, *text = NULL, *cdir = NULL,
                            *spath = NULL;
        ConfigResponse resp = ORG__LFEDGE__EVE__CONFIG__CONFIG_RESPONSE__INIT;
        EdgeDevConfig cfg = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__NetworkConfig net = ORG__LFEDGE__EVE__CONFIG__NETWORK_CONFIG__INIT,
                                                *netp = &net;
        Org__Lfedge__Eve__Config__WirelessConfig wl = ORG__LFEDGE__EVE__CONFIG__WIRELESS_CONFIG__INIT;
        Org__Lfedge__Eve__Config__WifiConfig wifi[16], *wifip[16];
        Org__Lfedge__Eve__Config__DatastoreConfig ds[16], *dsp[16];
        Org__Lfedge__Eve__Config__AppInstanceConfig app[16], *appp[16];
        CipherBlock b[16];
        CipherContext ctx[4], *ctxp[4];
        ProtobufCBinaryData hashes[4][2];
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ uint8_t *packed = NULL;
        json_object *j, *cases, *contexts;
        size_t n;
        char *argv[] = { (char *) "/usr/bin/python3", script, device, dir, NULL };
        static const char *const certs[][2] = { { "root-certificate.pem", NULL },
                                                { "ecdh.pem", "controllerCertHash" },
                                                { "rogue-ecdh.pem", "rogueCertHash" } };

        if (test_run(argv, &out) != 0)
                test_fail(__FILE__, __LINE__, "cipher-vector.py failed:\n%s", out ?: "");
        free(out);
        ASSERT_OK(asprintf(&out, "%s/vector.json", dir));
        text = read_text_file(out);
        j = json_tokener_parse(text);
        ASSERT_NOT_NULL(j);

        ASSERT_OK(asprintf(&cdir, "%s/controller", eve_path(EVE_PATH_CERTS)));
        ASSERT_OK(eve_mkdir_p(cdir, 0755));
        for (size_t i = 0; i < ELEMENTSOF(certs); i++) {
                _cleanup_free_ char *src = NULL, *pem = NULL, *name = NULL;

                ASSERT_OK(asprintf(&src, "%s/%s", dir, certs[i][0]));
                pem = read_text_file(src);
                ASSERT_NOT_NULL(pem);
                if (!certs[i][1]) {
                        write_text(eve_path(EVE_PATH_CONFIG), certs[i][0], pem, 0644);
                        continue;
                }
                ASSERT_OK(asprintf(&name, "ecdh-%s.pem", json_str(j, certs[i][1])));
                write_text(cdir, name, pem, 0644);
        }

        ASSERT_TRUE(json_object_object_get_ex(j, "contexts", &contexts));
        ASSERT_EQ(json_object_array_length(contexts), 4);
        for (size_t i = 0; i < 4; i++) {
                json_object *x = json_object_array_get_idx(contexts, i);
                const char *keys[2] = { "deviceCertHash", "controllerCertHash" };

                ctx[i] = (CipherContext) ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT;
                ctx[i].contextid = (char *) json_str(x, "contextId");
                ctx[i].keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
                ctx[i].encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
                for (unsigned k = 0; k < 2; k++) {
                        const char *hex = json_str(x, keys[k]);
                        ASSERT_OK(hex_decode(
                                        hex, strlen(hex), false, &hashes[i][k].data, &hashes[i][k].len));
                }
                ctx[i].devicecerthash = hashes[i][0];
                ctx[i].controllercerthash = hashes[i][1];
                ctxp[i] = &ctx[i];
        }

        ASSERT_TRUE(json_object_object_get_ex(j, "cases", &cases));
        n = json_object_array_length(cases);
        ASSERT_LE(n, 16);
        for (size_t i = 0; i < n; i++) {
                json_object *cs = json_object_array_get_idx(cases, i);
                const char *keys[3] = { "iv", "data", "sha" }, *kind = json_str(cs, "kind");
                ProtobufCBinaryData *dst[3] = { &b[i].initialvalue,
                                                &b[i].cipherdata,
                                                &b[i].cleartextsha256 };

                b[i] = (CipherBlock) ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
                b[i].ciphercontextid = (char *) json_str(cs, "contextId");
                for (unsigned k = 0; k < 3; k++) {
                        const char *hex = json_str(cs, keys[k]);
                        ASSERT_OK(hex_decode(hex, strlen(hex), false, &dst[k]->data, &dst[k]->len));
                }
                if (streq(kind, "wifi")) {
                        Org__Lfedge__Eve__Config__WifiConfig *w = &wifi[wl.n_wificfg];
                        *w = (Org__Lfedge__Eve__Config__WifiConfig)
                                        ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT;
                        w->wifissid = (char *) json_str(cs, "name");
                        w->cipherdata = &b[i];
                        wifip[wl.n_wificfg++] = w;
                } else if (streq(kind, "datastore")) {
                        Org__Lfedge__Eve__Config__DatastoreConfig *d = &ds[cfg.n_datastores];
                        *d = (Org__Lfedge__Eve__Config__DatastoreConfig)
                                        ORG__LFEDGE__EVE__CONFIG__DATASTORE_CONFIG__INIT;
                        d->id = (char *) json_str(cs, "name");
                        d->cipherdata = &b[i];
                        dsp[cfg.n_datastores++] = d;
                } else {
                        Org__Lfedge__Eve__Config__AppInstanceConfig *a = &app[cfg.n_apps];
                        *a = (Org__Lfedge__Eve__Config__AppInstanceConfig)
                                        ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT;
                        a->displayname = (char *) json_str(cs, "name");
                        a->cipherdata = &b[i];
                        appp[cfg.n_apps++] = a;
                }
        }
        wl.wificfg = wifip;
        net.wireless = &wl;
        cfg.n_networks = 1;
        cfg.networks = &netp;
        cfg.datastores = dsp;
        cfg.apps = appp;
        cfg.n_ciphercontexts = 4;
        cfg.ciphercontexts = ctxp;
        resp.config = &cfg;
        resp.confighash = (char *) "vector";
        ASSERT_OK(PROTO_PACK(&resp, &packed, &n));
        ASSERT_OK(config_parse(packed, n, &c));
        spath = store_path(vault_mount);
        ASSERT_OK(store_save(spath, c));
        for (size_t i = 0; i < json_object_array_length(cases); i++) {
                free(b[i].initialvalue.data);
                free(b[i].cipherdata.data);
                free(b[i].cleartextsha256.data);
        }
        for (size_t i = 0; i < 4; i++) {
                free(hashes[i][0].data);
                free(hashes[i][1].data);
        }
        return j;
}

static const char *bus_error_of(const char *failure) {
        static const char *const map[][2] = {
                { "bad-iv", "org.eve.Config.Error.BadIV" },
                { "hash-mismatch", "org.eve.Config.Error.HashMismatch" },
                { "malformed-encryption-block", "org.eve.Config.Error.MalformedEncryptionBlock" },
                { "empty-secret", "org.eve.Config.Error.EmptySecret" },
                { "unknown-context", "org.eve.Config.Error.UnknownContext" },
                { "no-data", "org.eve.Config.Error.NoData" },
                { "unknown-certificate", "org.eve.Config.Error.UnknownCertificate" },
                { "device-cert-mismatch", "org.eve.Config.Error.DeviceCertMismatch" },
                { "bad-certificate", "org.eve.Config.Error.BadCertificate" },
        };
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (streq(map[i][0], failure))
                        return map[i][1];
        test_fail(__FILE__, __LINE__, "no D-Bus error known for %s", failure);
}

TEST(every_malformed_block_is_its_own_error_and_the_daemon_keeps_serving) {
        Env *e = env_new(false);
        MockVault *vault = vault_new("Unlocked");
        json_object *j, *cases;
        unsigned failures = 0, good = 0;

        j = store_vector_config(vault->mount);
        ASSERT_TRUE(json_object_object_get_ex(j, "cases", &cases));
        acl(e,
            "[Kind wifi]\nAllowUser=root\n[Kind datastore]\nAllowUser=root\n[Kind "
            "cloudinit]\nAllowUser=root\n");
        configd_start(e, "--no-fetch");
        wait_stored(e, true, 10000);

        for (size_t i = 0; i < json_object_array_length(cases); i++) {
                json_object *c = json_object_array_get_idx(cases, i), *fields;
                const char *expect = json_str(c, "expect");
                _cleanup_free_ char *name = NULL, *err = NULL, *v = NULL;

                ASSERT_OK(asprintf(&name, "%s.%s", json_str(c, "kind"), json_str(c, "name")));
                if (streq(expect, "ok")) {
                        ASSERT_TRUE(json_object_object_get_ex(c, "fields", &fields));
                        json_object_object_foreach(fields, field, value) {
                                _cleanup_free_ char *got = get_secret_ok(name, field);
                                ASSERT_STREQ(got, json_object_get_string(value));
                        }
                        good++;
                        continue;
                }
                err = get_secret_error(name);
                if (!streq(err, bus_error_of(expect)))
                        test_fail(__FILE__,
                                  __LINE__,
                                  "%s: %s, expected %s",
                                  name,
                                  err,
                                  bus_error_of(expect));
                ASSERT_EQ(prop_counter("CipherFailureReasons", expect), 1);
                failures++;
                /* After each failure the daemon still serves a good secret. */
                v = get_secret_ok("wifi.wifi", "wifiPassword");
                ASSERT_STREQ(v, "correct horse battery staple");
        }
        ASSERT_EQ(good, 3);
        ASSERT_EQ(failures, 9);
        ASSERT_EQ(prop_u64("CipherFailures"), failures);
        /* As the controller sees them (EVE's CipherError): bad IV, hash mismatch, unknown context, other
         * device. */
        ASSERT_EQ(prop_counter("CipherErrors", "decrypt-failed"), 4);
        ASSERT_EQ(prop_counter("CipherErrors", "unmarshal-failed"), 1);
        ASSERT_EQ(prop_counter("CipherErrors", "not-ready"), 2); /* unknown and rogue certificate */
        ASSERT_EQ(prop_counter("CipherErrors", "no-data"), 2);   /* no data, nothing for this secret */
        json_object_put(j);
}

TEST(corrupt_stored_config_is_ignored) {
        Env *e = env_new(false);
        MockVault *vault = vault_new("Unlocked");
        _cleanup_free_ char *dir = NULL, *state = NULL, *err = NULL;

        ASSERT_OK(asprintf(&dir, "%s/config", vault->mount));
        ASSERT_OK(eve_mkdir_p(dir, 0700));
        write_text(dir, "last.pb", "EVECFG1\nnot really a stored configuration", 0600);
        configd_start(e, "--no-fetch");
        {
                uint64_t end = now_msec() + 10000;
                for (;;) {
                        free(state);
                        state = prop_string("StorageState");
                        if (strstr(state, "corrupt"))
                                break;
                        ASSERT_LE(now_msec(), end);
                        usleep(20000);
                }
        }
        ASSERT_FALSE(prop_bool("Stored"));
        free(state);
        state = prop_string("Origin");
        ASSERT_STREQ(state, "none");
        err = get_secret_error("wifi.office");
        ASSERT_STREQ(err, "org.eve.Config.Error.NoConfig");
        /* Without the controller, Refresh says why it cannot. */
        {
                _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(sd_bus_call_method(
                                            test_bus(),
                                            CONFIG_NAME,
                                            CONFIG_PATH,
                                            CONFIG_NAME,
                                            "Refresh",
                                            &error,
                                            NULL,
                                            NULL) < 0);
                ASSERT_STREQ(error.name, "org.eve.Config.Error.FetchFailed");
                ASSERT_STREQ(error.message, "Fetching is off (--no-fetch).");
        }
}

/* The info report as evc stored it (raw ZInfoMsg from its database). */
static Org__Lfedge__Eve__Info__ZInfoMsg *evc_info(Env *e) {
        _cleanup_free_ char *db = NULL;
        Org__Lfedge__Eve__Info__ZInfoMsg *m = NULL;
        sqlite3 *s = NULL;
        sqlite3_stmt *st = NULL;

        ASSERT_OK(asprintf(&db, "%s/evc.db", e->evc->dir));
        ASSERT_EQ(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_busy_timeout(s, 5000);
        ASSERT_EQ(sqlite3_prepare_v2(s, "SELECT info FROM devices WHERE uuid = ?", -1, &st, NULL),
                  SQLITE_OK);
        sqlite3_bind_text(st, 1, e->uuid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_BLOB)
                ASSERT_OK(
                                PROTO_UNPACK(&org__lfedge__eve__info__zinfo_msg__descriptor,
                                             sqlite3_column_blob(st, 0),
                                             (size_t) sqlite3_column_bytes(st, 0),
                                             1 << 20,
                                             &m));
        sqlite3_finalize(st);
        sqlite3_close(s);
        return m;
}

/* With the real eve-vaultd (which, without device-mapper, reports each vault Locked with its reason): the
 * info report carries the TPM status, the vault list with status and error, and the attestation state. */
TEST(info_reports_tpm_vaults_and_attestation) {
        Env *e = env_new(true);
        _cleanup_free_ char *worker = build_path("services/vaultd/eve-vault-worker"), *wenv = NULL,
                            *state = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Info__ZInfoMsg *m = NULL;
        const Org__Lfedge__Eve__Info__ZInfoDevice *d;
        uint64_t end;
        bool config_seen = false;

        ASSERT_OK(asprintf(&wenv, "EVE_VAULT_WORKER=%s", worker));
        daemon_start("services/vaultd/eve-vaultd",
                     "org.eve.Vault",
                     wenv,
                     "--image-size",
                     "32M",
                     "--config-size",
                     "32M",
                     NULL);
        configd_start(e, NULL);
        end = now_msec() + 30000;
        for (;;) {
                m = proto_free(m);
                m = evc_info(e);
                /* eve-attestd runs another round when eve-vaultd's new vaults have escrow to upload: a report
                 * may catch it mid-round; the one to check is after it (info every second). */
                if (m && m->dinfo && m->dinfo->attestation_info && m->dinfo->datasecatrestinfo &&
                    m->dinfo->datasecatrestinfo->n_vaultlist >= 2 &&
                    m->dinfo->attestation_info->state ==
                                    ORG__LFEDGE__EVE__INFO__ATTESTATION_STATE__ATTESTATION_STATE_COMPLETE)
                        break;
                if (now_msec() > end) {
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "no complete info report reached evc");
                }
                usleep(50000);
        }
        ASSERT_EQ(m->ztype, ORG__LFEDGE__EVE__INFO__ZINFO_TYPES__ZiDevice);
        ASSERT_STREQ(m->devid, e->uuid);
        d = m->dinfo;
        ASSERT_EQ(d->hsmstatus, ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__ENABLED);
        ASSERT_EQ(d->attestation_info->state,
                  ORG__LFEDGE__EVE__INFO__ATTESTATION_STATE__ATTESTATION_STATE_COMPLETE);
        for (size_t i = 0; i < d->datasecatrestinfo->n_vaultlist; i++) {
                const Org__Lfedge__Eve__Info__VaultInfo *v = d->datasecatrestinfo->vaultlist[i];
                if (!streq(v->name, "config"))
                        continue;
                config_seen = true;
                /* No device-mapper here: Locked, with vaultd's reason. */
                ASSERT_EQ(v->status, ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR);
                ASSERT_NOT_NULL(v->vaulterr);
                ASSERT_TRUE(strlen(v->vaulterr->description) > 0);
                ASSERT_EQ(v->vaulterr->n_entities, 1);
                ASSERT_EQ(v->vaulterr->entities[0]->entity, ORG__LFEDGE__EVE__INFO__ENTITY__ENTITY_VAULT);
        }
        ASSERT_TRUE(config_seen);
        /* configd itself keeps the config in memory only, and says why. */
        state = prop_string("StorageState");
        ASSERT_NOT_NULL(strstr(state, "memory only"));
        ASSERT_FALSE(prop_bool("Stored"));
}

TEST(bus_introspection_matches_the_committed_xml) {
        _cleanup_free_ char *exe = build_path("services/configd/eve-configd"), *out = NULL,
                            *xml_path = test_srcpath("dbus/org.eve.Config.xml"), *xml = NULL;
        char *argv[] = { exe, (char *) "--bus-introspect", NULL };
        const char *a, *b, *ae, *be;

        ASSERT_EQ(test_run(argv, &out), 0);
        xml = read_text_file(xml_path);
        ASSERT_NOT_NULL(xml);
        a = strstr(out, " <interface name=\"org.eve.Config\">");
        b = strstr(xml, " <interface name=\"org.eve.Config\">");
        ASSERT_NOT_NULL(a);
        ASSERT_NOT_NULL(b);
        ae = strstr(a, "</interface>");
        be = strstr(b, "</interface>");
        ASSERT_NOT_NULL(ae);
        ASSERT_NOT_NULL(be);
        if ((ae - a) != (be - b) || memcmp(a, b, (size_t) (ae - a)) != 0)
                test_fail(__FILE__,
                          __LINE__,
                          "dbus/org.eve.Config.xml differs from eve-configd --bus-introspect:\n%.*s",
                          (int) (ae - a),
                          a);
}

DEFINE_TEST_MAIN
