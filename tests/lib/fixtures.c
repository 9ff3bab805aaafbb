/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <arpa/inet.h>
#include <systemd/sd-bus.h>

#include "fixtures.h"

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        (void) nanosleep(&ts, NULL);
}

int test_call_as(const char *user, int (*fn)(void *userdata), void *userdata) {
        struct passwd *pw = getpwnam(user);
        int pfd[2], status, result = -EIO;
        pid_t pid;

        ASSERT_NOT_NULL(pw);
        ASSERT_OK(pipe2(pfd, O_CLOEXEC));
        pid = fork();
        ASSERT_OK(pid);
        if (pid == 0) {
                int r;
                if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
                        r = -errno;
                else
                        r = fn(userdata);
                (void) !write(pfd[1], &r, sizeof r);
                _exit(0);
        }
        close(pfd[1]);
        if (read(pfd[0], &result, sizeof result) != (ssize_t) sizeof result)
                result = -EIO;
        close(pfd[0]);
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        return result;
}

char *test_mkdtemp(const char *prefix) {
        char *p;

        if (asprintf(&p, "%s/%s-XXXXXX", test_tmpdir(), prefix) < 0 || !mkdtemp(p)) {
                fprintf(stderr, "mkdtemp: %m\n");
                abort();
        }
        return p;
}

#define FD_INHERIT (-2) /* for fork_exec(): keep ours */
#define FD_NULL (-1)    /* for fork_exec(): /dev/null */

/* Forks and executes argv[0] (searched in $PATH) with stdin from /dev/null and stdout/stderr as given. The child
 * dies with us (PR_SET_PDEATHSIG) and keeps keep_fd (when ≥ 0) open across exec. */
static pid_t fork_exec(char *const argv[], int out_fd, int err_fd, int keep_fd) {
        pid_t parent = getpid(), pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                (void) dup2(null, STDIN_FILENO);
                if (out_fd != FD_INHERIT)
                        (void) dup2(out_fd == FD_NULL ? null : out_fd, STDOUT_FILENO);
                if (err_fd != FD_INHERIT)
                        (void) dup2(err_fd == FD_NULL ? null : err_fd, STDERR_FILENO);
                if (keep_fd >= 0) {
                        int fl = fcntl(keep_fd, F_GETFD);
                        if (fl >= 0)
                                (void) fcntl(keep_fd, F_SETFD, fl & ~FD_CLOEXEC);
                }
                execvp(argv[0], argv);
                fprintf(stderr, "exec %s: %m\n", argv[0]);
                _exit(127);
        }
        return pid;
}

pid_t test_spawn(char *const argv[], const char *log_path, int extra_fd) {
        _cleanup_close_ int fd = -EBADF;

        if (log_path) {
                fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd < 0)
                        return -errno;
        }
        return fork_exec(argv, log_path ? fd : FD_INHERIT, log_path ? fd : FD_INHERIT, extra_fd);
}

/* Copies what a failed command wrote to stderr (kept in a memfd) to our stderr. */
static void dump_stderr(int fd) {
        char buf[4096];
        ssize_t k;

        if (lseek(fd, 0, SEEK_SET) < 0)
                return;
        while ((k = read(fd, buf, sizeof buf)) > 0)
                (void) !write(STDERR_FILENO, buf, (size_t) k);
}

int test_run(char *const argv[], char **out) {
        _cleanup_close_ int rfd = -EBADF, errfd = memfd_create("stderr", MFD_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, cap = 0;
        int pfd[2], status;
        pid_t pid;

        if (out) {
                if (pipe2(pfd, O_CLOEXEC) < 0)
                        return -errno;
                rfd = pfd[0];
        }
        /* Quiet on success: stdout is captured or dropped, stderr is shown only when the command fails. */
        pid = fork_exec(argv, out ? pfd[1] : FD_NULL, errfd >= 0 ? errfd : FD_INHERIT, -1);
        if (pid < 0)
                return pid;
        if (out) {
                close(pfd[1]);
                for (;;) {
                        ssize_t k;
                        if (n + 4097 > cap) {
                                char *nb;
                                cap = cap ? cap * 2 : 8192;
                                if (cap > 1024 * 1024 + 8192)
                                        break;
                                nb = realloc(buf, cap);
                                if (!nb)
                                        break;
                                buf = nb;
                        }
                        k = read(rfd, buf + n, cap - n - 1);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                break;
                        n += (size_t) k;
                }
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_stderr(errfd);
        if (out) {
                if (!buf || n > 1024 * 1024)
                        return -EFBIG;
                buf[n] = '\0';
                *out = TAKE_PTR(buf);
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
}

int test_stop_process(pid_t pid, unsigned timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;
        int status;

        if (pid <= 0)
                return 0;
        (void) kill(pid, SIGTERM);
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return 0;
                if (r < 0)
                        return errno == ECHILD ? 0 : -errno;
                if (now_ms() >= end)
                        break;
                sleep_ms(5);
        }
        (void) kill(pid, SIGKILL);
        (void) waitpid(pid, &status, 0);
        return -ETIMEDOUT;
}

int test_count_children(void) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        pid_t self = getpid();
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[300], buf[512], *p;
                _cleanup_close_ int fd = -EBADF;
                ssize_t k;
                int ppid;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                k = read(fd, buf, sizeof buf - 1);
                if (k <= 0)
                        continue;
                buf[k] = '\0';
                /* "pid (comm) state ppid …": comm may contain spaces and parentheses, so go from the last ')'. */
                p = strrchr(buf, ')');
                if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == self)
                        n++;
        }
        return n;
}

int test_wait_socket(const char *path, unsigned timeout_ms) {
        uint64_t end = now_ms() + timeout_ms;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        for (;;) {
                _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0)
                        return 0;
                if (now_ms() >= end)
                        return -ETIMEDOUT;
                sleep_ms(2);
        }
}

/* Fixture structs are freed after their teardown has run (the free is registered first, so it runs last). */
static int swtpm_free(void *p) {
        Swtpm *t = p;
        free(t->dir);
        free(t->sock);
        free(t->tcti);
        free(t);
        return 0;
}

static int bus_free(void *p) {
        PrivateBus *b = p;
        free(b->dir);
        free(b->address);
        free(b);
        return 0;
}

static int ca_free(void *p) {
        TestCA *ca = p;
        free(ca->dir);
        free(ca->cert);
        free(ca->key);
        free(ca);
        return 0;
}

/* ---- swtpm ---- */

static char *golden_state; /* a swtpm_setup'd state (EK + certificates), made once per test binary */

static int copy_file(const char *from, const char *to) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int o = -EBADF;
        char buf[65536];
        ssize_t k;

        if (in < 0)
                return -errno;
        o = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (o < 0)
                return -errno;
        while ((k = read(in, buf, sizeof buf)) > 0)
                if (write(o, buf, (size_t) k) != k)
                        return -EIO;
        return k < 0 ? -errno : 0;
}

static const char *swtpm_golden(void) {
        if (!golden_state) {
                char *dir = test_mkdtemp("swtpm-golden");
                char *argv[] = { (char *) "swtpm_setup", (char *) "--tpm2", (char *) "--tpmstate", dir,
                                 (char *) "--create-ek-cert", (char *) "--create-platform-cert",
                                 (char *) "--lock-nvram", (char *) "--overwrite", NULL };
                _cleanup_free_ char *out = NULL;
                int r = test_run(argv, &out);
                if (r != 0) {
                        fprintf(stderr, "swtpm_setup failed (%d):\n%s\n", r, out ?: "");
                        abort();
                }
                golden_state = dir;
        }
        return golden_state;
}

static int swtpm_teardown(void *p) {
        return test_swtpm_stop(p);
}

static Swtpm *swtpm_spawn(Swtpm *t) {
        _cleanup_free_ char *log = NULL, *ctrl = NULL, *state = NULL, *server = NULL, *ctrlarg = NULL;
        int r;

        if (asprintf(&log, "file=%s/log", t->dir) < 0 || asprintf(&ctrl, "%s.ctrl", t->sock) < 0 ||
            asprintf(&state, "dir=%s", t->dir) < 0 || asprintf(&server, "type=unixio,path=%s", t->sock) < 0 ||
            asprintf(&ctrlarg, "type=unixio,path=%s", ctrl) < 0)
                abort();
        char *argv[] = { (char *) "swtpm", (char *) "socket", (char *) "--tpm2", (char *) "--tpmstate", state,
                         (char *) "--server", server, (char *) "--ctrl", ctrlarg, (char *) "--flags",
                         (char *) "not-need-init,startup-clear", (char *) "--log", log, NULL };
        (void) unlink(t->sock);
        (void) unlink(ctrl);
        t->pid = test_spawn(argv, NULL, -1);
        if (t->pid < 0) {
                fprintf(stderr, "spawn swtpm: %s\n", strerror(-t->pid));
                abort();
        }
        r = test_wait_socket(t->sock, 5000);
        if (r < 0) {
                fprintf(stderr, "swtpm did not come up: %s\n", strerror(-r));
                abort();
        }
        test_defer(swtpm_teardown, t);
        return t;
}

Swtpm *test_swtpm_start(SwtpmFlags flags, const char *state_dir) {
        Swtpm *t = calloc(1, sizeof *t);

        if (!t)
                abort();
        t->check_transient = true;
        t->dir = state_dir ? strdup(state_dir) : test_mkdtemp("swtpm");
        if (!t->dir || asprintf(&t->sock, "%s/sock", t->dir) < 0 || asprintf(&t->tcti, "swtpm:path=%s", t->sock) < 0)
                abort();
        test_defer(swtpm_free, t);
        if (!state_dir && (flags & SWTPM_WITH_EK)) {
                _cleanup_free_ char *from = NULL, *to = NULL;
                if (asprintf(&from, "%s/tpm2-00.permall", swtpm_golden()) < 0 ||
                    asprintf(&to, "%s/tpm2-00.permall", t->dir) < 0 || copy_file(from, to) < 0)
                        abort();
        }
        return swtpm_spawn(t);
}

int test_swtpm_stop(Swtpm *t) {
        int r = 0;

        if (!t || t->pid <= 0)
                return 0;
        if (t->check_transient) {
                /* tpm2_getcap needs the TPM's only connection: a leaked connection in the test shows up as a
                 * timeout here, a leaked object as a handle in the list. */
                char *argv[] = { (char *) "timeout", (char *) "10", (char *) "tpm2_getcap", (char *) "-T", t->tcti,
                                 (char *) "handles-transient", NULL };
                _cleanup_free_ char *out = NULL;
                int k = test_run(argv, &out);
                if (k != 0) {
                        fprintf(stderr, "  swtpm teardown: tpm2_getcap failed (%d): a TPM connection left open?\n", k);
                        r = -EBUSY;
                } else if (out && strstr(out, "0x80")) {
                        fprintf(stderr, "  swtpm teardown: transient objects left loaded:\n%s", out);
                        r = -ENOTEMPTY;
                }
        }
        if (test_stop_process(t->pid, 3000) < 0 && r == 0)
                r = -ETIMEDOUT;
        t->pid = 0;
        return r;
}

Swtpm *test_swtpm_restart(Swtpm *t) {
        (void) test_undefer(t);
        return swtpm_spawn(t);
}

/* ---- private dbus-daemon ---- */

static int bus_teardown(void *p) {
        PrivateBus *b = p;
        int r = test_stop_process(b->pid, 3000);

        unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
        b->pid = 0;
        return r;
}

bool test_bus_has_name(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 0;

        if (sd_bus_open_system(&bus) < 0)
                return false;
        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", name) < 0)
                return false;
        return sd_bus_message_read(reply, "b", &has) >= 0 && has;
}

PrivateBus *test_bus_start(const char *extra_conf_dir) {
        _cleanup_free_ char *conf = NULL, *policy_dir = NULL, *extra = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        PrivateBus *b = calloc(1, sizeof *b);
        char addr[512], fdarg[32];
        int pfd[2];
        ssize_t k;

        if (!b)
                abort();
        test_defer(bus_free, b);
        b->dir = test_mkdtemp("bus");
        /* Tests call as other users too ("nobody"): they must reach the socket, so the bus policy decides. */
        if (chmod(test_tmpdir(), 0755) < 0 || chmod(b->dir, 0755) < 0)
                abort();
        policy_dir = test_srcpath("dbus");
        if (asprintf(&conf, "%s/bus.conf", b->dir) < 0)
                abort();
        if (extra_conf_dir && asprintf(&extra, "  <includedir>%s</includedir>\n", extra_conf_dir) < 0)
                abort();
        f = fopen(conf, "we");
        if (!f)
                abort();
        /* The shape of Debian's system.conf: deny by default, holes punched by the included policies. */
        fprintf(f,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <type>system</type>\n"
                "  <listen>unix:path=%s/socket</listen>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <deny own=\"*\"/>\n"
                "    <deny send_type=\"method_call\"/>\n"
                "    <allow send_type=\"signal\"/>\n"
                "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
                "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
                "    <allow receive_type=\"method_call\"/>\n"
                "    <allow receive_type=\"method_return\"/>\n"
                "    <allow receive_type=\"error\"/>\n"
                "    <allow receive_type=\"signal\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\"\n"
                "           send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\"\n"
                "           send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
                "  </policy>\n"
                "  <includedir>%s</includedir>\n"
                "%s"
                "</busconfig>\n",
                b->dir, policy_dir, extra ?: "");
        if (fclose(TAKE_PTR(f)) != 0)
                abort();

        if (pipe2(pfd, O_CLOEXEC) < 0)
                abort();
        snprintf(fdarg, sizeof fdarg, "--print-address=%d", pfd[1]);
        _cleanup_free_ char *cfgarg = NULL, *log = NULL;
        if (asprintf(&cfgarg, "--config-file=%s", conf) < 0 || asprintf(&log, "%s/log", b->dir) < 0)
                abort();
        char *argv[] = { (char *) "dbus-daemon", cfgarg, (char *) "--nofork", (char *) "--nopidfile", fdarg, NULL };
        b->pid = test_spawn(argv, log, pfd[1]);
        close(pfd[1]);
        if (b->pid < 0)
                abort();
        test_defer(bus_teardown, b);

        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        if (poll(&p, 1, 5000) <= 0) {
                fprintf(stderr, "dbus-daemon did not print its address\n");
                abort();
        }
        k = read(pfd[0], addr, sizeof addr - 1);
        close(pfd[0]);
        if (k <= 0)
                abort();
        addr[k] = '\0';
        addr[strcspn(addr, "\n")] = '\0';
        b->address = strdup(addr);
        if (!b->address)
                abort();
        setenv("DBUS_SYSTEM_BUS_ADDRESS", b->address, 1);
        return b;
}

/* ---- TLS CA (certtool) ---- */

static int write_text(const char *path, const char *text) {
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        if (!f || fputs(text, f) < 0)
                return -EIO;
        return 0;
}

static int certtool(char *const argv[]) {
        _cleanup_free_ char *out = NULL;
        int r = test_run(argv, &out);
        if (r != 0)
                fprintf(stderr, "certtool failed (%d)\n", r);
        return r == 0 ? 0 : -EIO;
}

TestCA *test_ca_new(const char *name) {
        TestCA *ca = calloc(1, sizeof *ca);
        _cleanup_free_ char *tmpl = NULL, *text = NULL;

        if (!ca)
                abort();
        test_defer(ca_free, ca);
        ca->dir = test_mkdtemp("ca");
        if (asprintf(&ca->cert, "%s/ca.pem", ca->dir) < 0 || asprintf(&ca->key, "%s/ca-key.pem", ca->dir) < 0 ||
            asprintf(&tmpl, "%s/ca.tmpl", ca->dir) < 0 ||
            asprintf(&text, "cn = \"%s\"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 2\n", name) < 0)
                abort();
        if (write_text(tmpl, text) < 0)
                abort();
        char *gen[] = { (char *) "certtool", (char *) "--generate-privkey", (char *) "--key-type=ecdsa",
                        (char *) "--curve=secp256r1", (char *) "--outfile", ca->key, NULL };
        char *self[] = { (char *) "certtool", (char *) "--generate-self-signed", (char *) "--load-privkey", ca->key,
                         (char *) "--template", tmpl, (char *) "--outfile", ca->cert, NULL };
        if (certtool(gen) < 0 || certtool(self) < 0)
                abort();
        return ca;
}

int test_ca_issue(TestCA *ca, const char *name, const char *host, char **ret_cert, char **ret_key) {
        _cleanup_free_ char *tmpl = NULL, *text = NULL, *cert = NULL, *key = NULL;
        struct in_addr a;

        if (asprintf(&cert, "%s/%s.pem", ca->dir, name) < 0 || asprintf(&key, "%s/%s-key.pem", ca->dir, name) < 0 ||
            asprintf(&tmpl, "%s/%s.tmpl", ca->dir, name) < 0 ||
            asprintf(&text,
                     "cn = \"%s\"\ndns_name = \"%s\"\n%s%s%s"
                     "tls_www_server\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 2\n",
                     host, host, inet_aton(host, &a) ? "ip_address = \"" : "", inet_aton(host, &a) ? host : "",
                     inet_aton(host, &a) ? "\"\n" : "") < 0)
                return -ENOMEM;
        if (write_text(tmpl, text) < 0)
                return -EIO;
        char *gen[] = { (char *) "certtool", (char *) "--generate-privkey", (char *) "--key-type=ecdsa",
                        (char *) "--curve=secp256r1", (char *) "--outfile", key, NULL };
        char *sign[] = { (char *) "certtool", (char *) "--generate-certificate", (char *) "--load-privkey", key,
                         (char *) "--load-ca-certificate", ca->cert, (char *) "--load-ca-privkey", ca->key,
                         (char *) "--template", tmpl, (char *) "--outfile", cert, NULL };
        if (certtool(gen) < 0 || certtool(sign) < 0)
                return -EIO;
        *ret_cert = TAKE_PTR(cert);
        *ret_key = TAKE_PTR(key);
        return 0;
}
