/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The systemd integration as `meson install` lays it out (into a DESTDIR): every file where systemd and the
 * bus look for it; `systemd-analyze verify` clean on every unit (in a root that has the host's /usr and /etc
 * and the installed tree, so it checks the programs too); `systemd-analyze security --offline` ≤ 2.0 for
 * every daemon; bus activation files, policies and units that agree with each other; sysusers.d and
 * tmpfiles.d applied to an empty root give the users, groups, directories and access the daemons need. */
#include <sys/stat.h>

#include "crypto-util.h"
#include "fixtures.h"
#include "system/system-test-config.h"

#define EXPOSURE_MAX 2.0

static const char *const bus_services[] = { "Vault", "Attest", "Config" };

/* `meson install --destdir` of the build directory, once per test binary. */
static const char *destdir(void) {
        static char *dest = NULL;
        _cleanup_free_ char *cmd = NULL, *out = NULL, *path = NULL;
        const char *builddir = getenv("EVE_TEST_BUILDDIR");

        if (dest)
                return dest;
        if (!builddir)
                TEST_SKIP("$EVE_TEST_BUILDDIR not set (run through meson test)");
        ASSERT_OK(asprintf(&path, "%s/destdir", test_tmpdir()));
        ASSERT_OK(asprintf(
                        &cmd, "meson install -C %s --no-rebuild --quiet --destdir %s 2>&1", builddir, path));
        char *argv[] = { (char *) "sh", (char *) "-c", cmd, NULL };
        if (test_run(argv, &out) != 0)
                test_fail(__FILE__, __LINE__, "meson install failed:\n%s", out);
        dest = TAKE_PTR(path);
        return dest;
}

static char *dest_path(const char *dir, const char *name) {
        char *p;

        ASSERT_OK(asprintf(&p, "%s%s/%s", destdir(), dir, name));
        return p;
}

static bool dest_exists(const char *dir, const char *name) {
        _cleanup_free_ char *p = dest_path(dir, name);
        return access(p, F_OK) >= 0;
}

static void write_text(const char *path, const char *text) {
        ASSERT_OK(crypto_write_file_atomic(path, text, strlen(text), 0644));
}

static char *read_text(const char *path) {
        char *s = NULL;
        size_t size;
        int r = crypto_read_file(path, false, &s, &size);

        if (r < 0)
                test_fail(__FILE__, __LINE__, "Cannot read %s: %s", path, strerror(-r));
        return s;
}

/* The value of "Key=" on its own line in a unit-like file, or NULL. */
static char *ini_value(const char *text, const char *key) {
        _cleanup_free_ char *needle = NULL;
        const char *p;

        ASSERT_OK(asprintf(&needle, "\n%s=", key));
        p = strstr(text, needle);
        if (!p)
                return NULL;
        p += strlen(needle);
        return strndup(p, strcspn(p, "\n"));
}

/* Runs a shell command line; returns its status; *out gets stdout and stderr. */
static int sh(const char *cmd, char **out) {
        char *argv[] = { (char *) "sh", (char *) "-c", (char *) cmd, NULL };
        _cleanup_free_ char *full = NULL;

        ASSERT_OK(asprintf(&full, "%s 2>&1", cmd));
        argv[2] = full;
        return test_run(argv, out);
}

TEST(install_layout) {
        static const char *const always[] = {
                "eve-vaults.target",
                "persist-vault.mount",
                "persist-vaults-config.mount",
                "dev-mapper-eve\\x2dvault\\x2dimage.device.d/eve-trust.conf",
                "dev-mapper-eve\\x2dvault\\x2dconfig.device.d/eve-trust.conf"
        };
        _cleanup_free_ char *units = strdup(UNITS_BUILT);
        char *save = NULL;

        ASSERT_NOT_NULL(units);
        for (size_t i = 0; i < ELEMENTSOF(always); i++)
                if (!dest_exists(UNITDIR, always[i]))
                        test_fail(__FILE__, __LINE__, "%s not installed in %s", always[i], UNITDIR);
        /* Each daemon whose program is built: its unit, and its program in libexecdir (evc: bindir). */
        for (char *u = strtok_r(units, " ", &save); u; u = strtok_r(NULL, " ", &save)) {
                _cleanup_free_ char *unit = dest_path(UNITDIR, u), *text = read_text(unit);
                _cleanup_free_ char *exec = ini_value(text, "ExecStart");
                _cleanup_free_ char *program = NULL;

                ASSERT_NOT_NULL(exec);
                program = strndup(exec, strcspn(exec, " "));
                ASSERT_NOT_NULL(program);
                ASSERT_TRUE(strncmp(program,
                                    streq(u, "evc.service") ? INSTALL_BINDIR "/" : INSTALL_LIBEXECDIR "/",
                                    strlen(streq(u, "evc.service") ? INSTALL_BINDIR "/"
                                                                   : INSTALL_LIBEXECDIR "/")) == 0);
                if (!dest_exists("", program))
                        test_fail(__FILE__, __LINE__, "%s runs %s, which is not installed", u, program);
        }
        ASSERT_TRUE(dest_exists(INSTALL_BINDIR, "evectl"));
        ASSERT_TRUE(dest_exists(INSTALL_BINDIR, "evc"));
        ASSERT_TRUE(dest_exists(PRESETDIR, "80-eve-trust.preset"));
        ASSERT_TRUE(dest_exists(SYSUSERSDIR, "eve-trust.conf"));
        ASSERT_TRUE(dest_exists(TMPFILESDIR, "eve-trust.conf"));
        for (size_t i = 0; i < ELEMENTSOF(bus_services); i++) {
                _cleanup_free_ char *conf = NULL, *service = NULL;

                ASSERT_OK(asprintf(&conf, "org.eve.%s.conf", bus_services[i]));
                ASSERT_OK(asprintf(&service, "org.eve.%s.service", bus_services[i]));
                ASSERT_TRUE(dest_exists(DBUS_POLICYDIR, conf));
                ASSERT_TRUE(dest_exists(DBUS_SERVICEDIR, service));
        }
}

/* A root for `systemd-analyze --root`: the host's /usr and /etc (systemd's own units, /bin/sh) with the
 * installed prefix over /usr/local, assembled with bind mounts in a private mount namespace. Returns the
 * shell command that sets it up and runs cmd (a string using $R for the root). */
static char *in_root(const char *cmd) {
        char *full;

        if (strncmp(INSTALL_BINDIR, "/usr/local/", 11) != 0)
                test_fail(__FILE__,
                          __LINE__,
                          "This test assembles its root for a /usr/local prefix, not %s",
                          INSTALL_BINDIR);
        ASSERT_OK(asprintf(
                        &full,
                        "set -e; R=%1$s/root; mkdir -p $R/usr $R/etc; "
                        "for d in bin lib lib64 sbin; do ln -sfn usr/$d $R/$d; done; "
                        "exec unshare -m sh -c \"set -e; R=$R; mount --bind /usr \\$R/usr; "
                        "mount --bind %2$s/usr/local \\$R/usr/local; mount --bind /etc \\$R/etc; %3$s\"",
                        test_tmpdir(),
                        destdir(),
                        cmd));
        return full;
}

static char *unit_list(const char *prefix) {
        _cleanup_free_ char *units = strdup(UNITS_BUILT);
        char *save = NULL, *list = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&list, &size);

        ASSERT_NOT_NULL(units);
        ASSERT_NOT_NULL(f);
        fprintf(f,
                "%s" UNITDIR "/eve-vaults.target %s" UNITDIR "/persist-vault.mount %s" UNITDIR
                "/persist-vaults-config.mount",
                prefix,
                prefix,
                prefix);
        for (char *u = strtok_r(units, " ", &save); u; u = strtok_r(NULL, " ", &save))
                fprintf(f, " %s" UNITDIR "/%s", prefix, u);
        ASSERT_EQ(fclose(f), 0);
        return list;
}

TEST(verify_every_unit) {
        _cleanup_free_ char *units = unit_list("\\$R"), *cmd = NULL, *out = NULL;

        ASSERT_OK(asprintf(&cmd, "systemd-analyze verify --man=no --generators=no --root=\\$R %s", units));
        _cleanup_free_ char *full = in_root(cmd);
        if (sh(full, &out) != 0 || !isempty(out))
                test_fail(__FILE__, __LINE__, "systemd-analyze verify complains:\n%s", out);
}

TEST(verify_fails_on_a_broken_unit) {
        _cleanup_free_ char *broken = NULL, *out = NULL, *out2 = NULL;

        /* The same check on a unit whose program is missing, and on an ordering cycle, must fail: the test
         * above could not pass by checking nothing. */
        ASSERT_OK(asprintf(&broken, "%s%s/eve-broken.service", destdir(), UNITDIR));
        write_text(broken, "[Service]\nExecStart=/usr/local/libexec/eve-no-such\n");
        _cleanup_free_ char *cmd =
                        in_root("systemd-analyze verify --man=no --generators=no --root=\\$R \\$R" UNITDIR
                                "/eve-broken.service");
        ASSERT_NE(sh(cmd, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "eve-no-such"));
        write_text(broken,
                   "[Unit]\nAfter=eve-vaults.target\nBefore=persist-vault.mount\n"
                   "[Service]\nExecStart=/bin/true\n");
        _cleanup_free_ char *cmd2 =
                        in_root("systemd-analyze verify --man=no --generators=no --root=\\$R \\$R" UNITDIR
                                "/eve-broken.service \\$R" UNITDIR "/eve-vaults.target");
        ASSERT_NE(sh(cmd2, &out2), 0);
        ASSERT_NOT_NULL(strstr(out2, "cycle"));
        ASSERT_OK(unlink(broken));
}

/* "→ Overall exposure level for NAME: 1.4 OK 🙂" */
static double exposure(const char *unit_path) {
        _cleanup_free_ char *cmd = NULL, *out = NULL;
        const char *p;

        ASSERT_OK(asprintf(&cmd, "systemd-analyze security --offline=true --threshold=100 %s", unit_path));
        if (sh(cmd, &out) != 0)
                test_fail(__FILE__, __LINE__, "systemd-analyze security failed:\n%s", out);
        p = strstr(out, "Overall exposure level for ");
        ASSERT_NOT_NULL(p);
        p = strstr(p, ": ");
        ASSERT_NOT_NULL(p);
        return strtod(p + 2, NULL);
}

TEST(security_exposure_at_most_2) {
        _cleanup_free_ char *units = strdup(UNITS_BUILT);
        char *save = NULL;
        unsigned n = 0;

        ASSERT_NOT_NULL(units);
        printf("| unit | exposure |\n|---|---|\n");
        for (char *u = strtok_r(units, " ", &save); u; u = strtok_r(NULL, " ", &save)) {
                _cleanup_free_ char *path = dest_path(UNITDIR, u);
                double e = exposure(path);

                printf("| %s | %.1f |\n", u, e);
                if (e > EXPOSURE_MAX)
                        test_fail(__FILE__, __LINE__, "%s: exposure %.1f > %.1f", u, e, EXPOSURE_MAX);
                n++;
        }
        ASSERT_GE(n, 2);

        /* The measure is a real one: an unhardened daemon scores far above the limit. */
        _cleanup_free_ char *plain = NULL;
        ASSERT_OK(asprintf(&plain, "%s/plain.service", test_tmpdir()));
        write_text(plain, "[Service]\nExecStart=/bin/true\n");
        ASSERT_TRUE(exposure(plain) > 9.0);
}

/* Activation file ↔ unit ↔ policy: the bus starts the unit that owns the name, as the user the policy lets
 * own it. Checked on the configured units whether or not the daemon is built yet. */
TEST(bus_activation_policy_and_units_agree) {
        const char *builddir = getenv("EVE_TEST_BUILDDIR");

        ASSERT_NOT_NULL(builddir);
        for (size_t i = 0; i < ELEMENTSOF(bus_services); i++) {
                _cleanup_free_ char *activation = NULL, *policy = NULL, *name = NULL, *unit = NULL;
                _cleanup_free_ char *atext = NULL, *ptext = NULL, *utext = NULL, *policy_block = NULL;
                _cleanup_free_ char *a_name = NULL, *a_user = NULL, *a_unit = NULL, *busname = NULL;
                _cleanup_free_ char *user = NULL, *own = NULL, *a_exec = NULL;
                const char *p, *end;

                ASSERT_OK(asprintf(&name, "org.eve.%s", bus_services[i]));
                ASSERT_OK(asprintf(&activation, "%s%s/%s.service", destdir(), DBUS_SERVICEDIR, name));
                ASSERT_OK(asprintf(&policy, "%s%s/%s.conf", destdir(), DBUS_POLICYDIR, name));
                atext = read_text(activation);
                ptext = read_text(policy);
                a_name = ini_value(atext, "Name");
                a_user = ini_value(atext, "User");
                a_unit = ini_value(atext, "SystemdService");
                ASSERT_STREQ(a_name, name);
                ASSERT_NOT_NULL(a_user);
                ASSERT_NOT_NULL(a_unit);
                a_exec = ini_value(atext, "Exec");
                ASSERT_STREQ(a_exec, "/bin/false"); /* systemd starts it, nobody else */

                ASSERT_OK(asprintf(&unit, "%s/units/%s", builddir, a_unit));
                utext = read_text(unit);
                busname = ini_value(utext, "BusName");
                ASSERT_STREQ(busname, name);
                user = ini_value(utext, "User") ?: strdup("root");
                ASSERT_STREQ(a_user, user);

                /* <policy user="USER"> … <allow own="NAME"/> … </policy> */
                ASSERT_OK(asprintf(&policy_block, "<policy user=\"%s\">", user));
                ASSERT_OK(asprintf(&own, "<allow own=\"%s\"/>", name));
                p = strstr(ptext, policy_block);
                if (!p)
                        test_fail(__FILE__,
                                  __LINE__,
                                  "%s has no policy for %s, the user of %s",
                                  policy,
                                  user,
                                  a_unit);
                end = strstr(p, "</policy>");
                ASSERT_NOT_NULL(end);
                p = strstr(p, own);
                ASSERT_TRUE(p && p < end);
        }
}

/* The uid/gid of name in root/etc/passwd. */
static void root_user(const char *root, const char *name, unsigned *ret_uid, unsigned *ret_gid) {
        _cleanup_free_ char *path = NULL, *text = NULL, *needle = NULL;
        const char *p;

        ASSERT_OK(asprintf(&path, "%s/etc/passwd", root));
        text = read_text(path);
        ASSERT_OK(asprintf(&needle, "\n%s:x:", name));
        p = strncmp(text, needle + 1, strlen(needle + 1)) == 0 ? text - 1 : strstr(text, needle);
        if (!p)
                test_fail(__FILE__, __LINE__, "No user %s in %s:\n%s", name, path, text);
        ASSERT_EQ(sscanf(p + strlen(needle), "%u:%u:", ret_uid, ret_gid), 2);
}

static char *root_group_line(const char *root, const char *name) {
        _cleanup_free_ char *path = NULL, *text = NULL, *needle = NULL;
        const char *p;

        ASSERT_OK(asprintf(&path, "%s/etc/group", root));
        text = read_text(path);
        ASSERT_OK(asprintf(&needle, "%s:x:", name));
        p = strncmp(text, needle, strlen(needle)) == 0 ? text : NULL;
        if (!p) {
                _cleanup_free_ char *nl = NULL;
                ASSERT_OK(asprintf(&nl, "\n%s", needle));
                p = strstr(text, nl);
                if (p)
                        p++;
        }
        if (!p)
                test_fail(__FILE__, __LINE__, "No group %s in %s:\n%s", name, path, text);
        return strndup(p, strcspn(p, "\n"));
}

/* Whether uid:gid (no supplementary groups) can create a file in dir. */
static bool can_create(unsigned uid, unsigned gid, const char *dir) {
        _cleanup_free_ char *cmd = NULL, *out = NULL;

        ASSERT_OK(
                        asprintf(&cmd,
                                 "setpriv --reuid=%u --regid=%u --clear-groups touch %s/probe-%u",
                                 uid,
                                 gid,
                                 dir,
                                 uid));
        return sh(cmd, &out) == 0;
}

TEST(sysusers_and_tmpfiles_give_each_daemon_its_access) {
        _cleanup_free_ char *root = NULL, *cmd = NULL, *out = NULL, *tss = NULL, *admin = NULL;
        _cleanup_free_ char *run = NULL, *status = NULL, *controller = NULL, *images = NULL;
        unsigned attest_uid, attest_gid, config_uid, config_gid, evc_uid, evc_gid;
        struct stat st;

        /* An empty root with the installed tree: systemd-sysusers and systemd-tmpfiles as at first boot. The
         * daemons' users must reach it. */
        ASSERT_OK(chmod(test_tmpdir(), 0755));
        ASSERT_OK(asprintf(&root, "%s/sysroot", test_tmpdir()));
        /* tmpfiles resolves the names in ACLs with the host's user database: give it the root's. */
        ASSERT_OK(asprintf(
                        &cmd,
                        "mkdir -p %1$s/etc && cp -a %2$s/. %1$s/ && systemd-sysusers --root=%1$s && "
                        "unshare -m sh -c 'mount --bind %1$s/etc/passwd /etc/passwd && "
                        "mount --bind %1$s/etc/group /etc/group && systemd-tmpfiles --root=%1$s --create'",
                        root,
                        destdir()));
        if (sh(cmd, &out) != 0 || strstr(out, "ignoring"))
                test_fail(__FILE__, __LINE__, "sysusers/tmpfiles failed:\n%s", out);

        root_user(root, "eve-attest", &attest_uid, &attest_gid);
        root_user(root, "eve-config", &config_uid, &config_gid);
        root_user(root, "evc", &evc_uid, &evc_gid);
        ASSERT_GE(attest_uid, 1);
        ASSERT_LE(attest_uid, 999); /* system users */
        tss = root_group_line(root, "tss");
        admin = root_group_line(root, "eve-admin");
        ASSERT_NOT_NULL(strstr(tss, "eve-attest"));
        ASSERT_NOT_NULL(strstr(tss, "eve-config"));
        ASSERT_NOT_NULL(strstr(admin, "eve-attest"));
        ASSERT_NOT_NULL(strstr(admin, "eve-config"));
        ASSERT_NULL(strstr(tss, "evc"));

        ASSERT_OK(asprintf(&run, "%s/run/eve", root));
        ASSERT_OK(asprintf(&status, "%s/persist/status", root));
        ASSERT_OK(asprintf(&controller, "%s/persist/certs/controller", root));
        ASSERT_OK(asprintf(&images, "%s/persist/vault-images", root));
        ASSERT_OK(stat(run, &st));
        ASSERT_EQ(st.st_mode & 07777, 01775); /* group bits: the ACL mask */
        ASSERT_OK(stat(images, &st));
        ASSERT_EQ(st.st_mode & 07777, 0700);
        ASSERT_OK(stat(controller, &st));
        ASSERT_EQ(st.st_uid, attest_uid);

        /* Who may write where: the token and the credentials socket in /run/eve, the UUID in
         * /persist/status. */
        ASSERT_TRUE(can_create(attest_uid, attest_gid, run));
        ASSERT_TRUE(can_create(config_uid, config_gid, run));
        ASSERT_FALSE(can_create(evc_uid, evc_gid, run));
        ASSERT_TRUE(can_create(attest_uid, attest_gid, status));
        ASSERT_FALSE(can_create(config_uid, config_gid, status));
        ASSERT_TRUE(can_create(attest_uid, attest_gid, controller));
        ASSERT_FALSE(can_create(config_uid, config_gid, controller));
        ASSERT_FALSE(can_create(attest_uid, attest_gid, images));
}

DEFINE_TEST_MAIN
