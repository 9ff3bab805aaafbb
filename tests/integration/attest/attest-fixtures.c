/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "attest-fixtures.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "controller-client.h"
#include "evc-crypto.h"
#include "paths.h"
#include "tpm2-util.h"

uint64_t now_msec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

char *build_path(const char *rel) {
        const char *b = getenv("EVE_TEST_BUILDDIR");
        char *p;

        if (!b)
                TEST_SKIP("$EVE_TEST_BUILDDIR not set (run through meson test)");
        ASSERT_OK(asprintf(&p, "%s/%s", b, rel));
        return p;
}

void write_text(const char *dir, const char *name, const char *text, mode_t mode) {
        _cleanup_free_ char *p = NULL;
        _cleanup_fclose_ FILE *f = NULL;

        ASSERT_OK(asprintf(&p, "%s/%s", dir, name));
        f = fopen(p, "we");
        ASSERT_NOT_NULL(f);
        ASSERT_TRUE(fputs(text, f) >= 0);
        ASSERT_EQ(fclose(TAKE_PTR(f)), 0);
        ASSERT_OK(chmod(p, mode ?: 0644));
}

char *read_text_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0;

        if (!f)
                return NULL;
        if (getdelim(&buf, &n, '\0', f) < 0) {
                free(buf);
                return strdup("");
        }
        return buf;
}

bool file_exists(const char *dir, const char *name) {
        _cleanup_free_ char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/%s", dir, name));
        return access(p, F_OK) >= 0;
}

unsigned free_port(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(getsockname(fd, (struct sockaddr *) &sa, &len));
        return ntohs(sa.sin_port);
}

/* SIGTERM and reap; returns 0 when it exited with status 0 (or there was nothing to stop), else the wait
 * status (never 0). */
static int stop_child(pid_t *pid) {
        int status = 0;

        if (*pid <= 0)
                return 0;
        (void) kill(*pid, SIGTERM);
        (void) waitpid(*pid, &status, 0);
        *pid = 0;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : (status ?: -1);
}

static void evc_dump(const Evc *e, int status) {
        _cleanup_free_ char *logf = NULL, *log = NULL;

        if (asprintf(&logf, "%s/evc.log", e->dir) >= 0)
                log = read_text_file(logf);
        fprintf(stderr, "evc serve exited with status 0x%x:\n%s\n", (unsigned) status, log ?: "");
}

/* ---- evc ---- */

int evc_run(Evc *e, char **out, ...) {
        _cleanup_free_ char *evc = build_path("controller/evc");
        char *argv[40];
        size_t n = 0;
        const char *a;
        va_list ap;

        argv[n++] = evc;
        va_start(ap, out);
        while ((a = va_arg(ap, const char *)) && n < 36)
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n++] = (char *) "--dir";
        argv[n++] = e->dir;
        argv[n] = NULL;
        return test_run(argv, out);
}

json_object *evc_device_json(Evc *e, const char *dev) {
        _cleanup_free_ char *out = NULL;
        json_object *o;

        ASSERT_EQ(EVC_RUN(e, &out, "device", "show", dev, "--json"), 0);
        o = json_tokener_parse(out);
        if (!o)
                test_fail(__FILE__, __LINE__, "evc device show --json: not JSON:\n%s", out);
        return o;
}

const char *json_str(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

int64_t json_int(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

bool json_get_bool(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

void evc_serve(Evc *e) {
        _cleanup_free_ char *evc = build_path("controller/evc"), *portf = NULL, *logf = NULL, *listen = NULL;

        ASSERT_OK(asprintf(&portf, "%s/port", e->dir));
        ASSERT_OK(asprintf(&logf, "%s/evc.log", e->dir));
        ASSERT_OK(asprintf(&listen, "127.0.0.1:%u", e->port));
        char *argv[] = { evc,
                         (char *) "serve",
                         (char *) "--dir",
                         e->dir,
                         (char *) "--listen",
                         listen,
                         (char *) "--port-file",
                         portf,
                         e->nonce_ttl ? (char *) "--nonce-ttl" : NULL,
                         e->nonce_ttl,
                         NULL };
        (void) unlink(portf);
        e->pid = test_spawn(argv, logf, -1);
        ASSERT_GE(e->pid, 1);
        for (int i = 0; i < 1000; i++) {
                _cleanup_fclose_ FILE *f = fopen(portf, "re");
                unsigned p = 0;
                int status;

                if (f && fscanf(f, "%u", &p) == 1 && p == e->port)
                        return;
                if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
                        _cleanup_free_ char *log = read_text_file(logf);
                        e->pid = 0;
                        test_fail(__FILE__, __LINE__, "evc serve exited (0x%x):\n%s", status, log ?: "");
                }
                usleep(10000);
        }
        test_fail(__FILE__, __LINE__, "evc did not start listening (see %s)", logf);
}

void evc_stop(Evc *e) {
        int status = stop_child(&e->pid);

        if (status != 0) {
                evc_dump(e, status);
                test_fail(__FILE__, __LINE__, "evc serve did not exit cleanly on SIGTERM");
        }
}

static int evc_teardown(void *p) {
        Evc *e = p;
        int status = stop_child(&e->pid);

        if (status != 0)
                evc_dump(e, status);
        free(e->dir);
        free(e->root_pem);
        free(e->nonce_ttl);
        free(e);
        return status != 0 ? -EPROTO : 0;
}

Evc *evc_new(const char *nonce_ttl) {
        Evc *e = calloc(1, sizeof *e);

        ASSERT_NOT_NULL(e);
        e->dir = test_mkdtemp("evc");
        e->nonce_ttl = nonce_ttl ? strdup(nonce_ttl) : NULL;
        ASSERT_OK(asprintf(&e->root_pem, "%s/certs/root.pem", e->dir));
        test_defer(evc_teardown, e);
        ASSERT_EQ(EVC_RUN(e, NULL, "init"), 0);
        e->port = free_port();
        evc_serve(e);
        return e;
}

/* ---- node ---- */

static const char *const node_env[] = {
        "EVE_CONFIG_DIR", "EVE_CERTS_DIR",  "EVE_STATUS_DIR",       "EVE_RUN_DIR",   "EVE_PERSIST_DIR",
        "EVE_VAULT_DIR",  "EVE_VAULTS_DIR", "EVE_VAULT_IMAGES_DIR", "EVE_TPM2_TCTI", "EVE_EVENTLOG",
};

static int node_teardown(void *p) {
        Node *n = p;

        for (size_t i = 0; i < ELEMENTSOF(node_env); i++)
                unsetenv(node_env[i]);
        eve_paths_reset();
        free(n->root);
        free(n->eventlog);
        free(n->config);
        free(n->certs);
        free(n->status);
        free(n->run);
        free(n->persist);
        free(n->vault_img);
        free(n->onboard_cert);
        free(n->onboard_key);
        free(n->serial);
        free(n);
        return 0;
}

static void le(FILE *f, uint64_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                ASSERT_EQ(fputc((int) ((v >> (8 * i)) & 0xff), f), (int) ((v >> (8 * i)) & 0xff));
}

/* A TCG crypto-agile log with the Spec ID header and only the SHA-256 bank, as firmware writes it. */
static void eventlog_start(Node *n) {
        _cleanup_fclose_ FILE *f = fopen(n->eventlog, "we");
        static const char spec[] = "Spec ID Event03";

        ASSERT_NOT_NULL(f);
        le(f, 0, 4); /* pcrIndex */
        le(f, 3, 4); /* EV_NO_ACTION */
        for (int i = 0; i < 20; i++)
                le(f, 0, 1); /* SHA-1 digest */
        le(f, 16 + 4 + 4 + 4 + 4 + 1, 4);
        ASSERT_EQ(fwrite(spec, 1, 16, f), 16);
        le(f, 0, 4);      /* platformClass */
        le(f, 0, 1);      /* specVersionMinor */
        le(f, 2, 1);      /* specVersionMajor */
        le(f, 0, 1);      /* specErrata */
        le(f, 2, 1);      /* uintnSize */
        le(f, 1, 4);      /* numberOfAlgorithms */
        le(f, 0x000b, 2); /* SHA-256 */
        le(f, 32, 2);
        le(f, 0, 1); /* vendorInfoSize */
        ASSERT_EQ(fclose(TAKE_PTR(f)), 0);
}

void node_extend(Node *n, unsigned pcr, const char *what) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        uint8_t d[32];

        evc_sha256(what, strlen(what), d);
        ASSERT_OK(tpm2_context_new(n->tpm->tcti, &c));
        ASSERT_OK(tpm2_pcr_extend(c, pcr, d));
        f = fopen(n->eventlog, "ae");
        ASSERT_NOT_NULL(f);
        le(f, pcr, 4);
        le(f, 0x0000000d, 4); /* EV_IPL */
        le(f, 1, 4);
        le(f, 0x000b, 2);
        ASSERT_EQ(fwrite(d, 1, 32, f), 32);
        le(f, strlen(what), 4);
        ASSERT_EQ(fwrite(what, 1, strlen(what), f), strlen(what));
        ASSERT_EQ(fclose(TAKE_PTR(f)), 0);
}

static void node_boot_measure(Node *n) {
        eventlog_start(n);
        for (unsigned i = 0; i < 8; i++) {
                char what[32];
                snprintf(what, sizeof what, "boot component %u", i);
                node_extend(n, i, what);
        }
}

void node_reboot(Node *n) {
        n->tpm = test_swtpm_restart(n->tpm);
        node_boot_measure(n);
}

Node *node_new(Evc *e) {
        _cleanup_free_ char *setup = build_path("services/tpm-setup/eve-tpm-setup"), *server = NULL,
                            *out = NULL, *vaults = NULL, *vault = NULL, *root_pem = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t key = NULL;
        Node *n = calloc(1, sizeof *n);
        int r;

        ASSERT_NOT_NULL(n);
        test_defer(node_teardown, n);
        n->root = test_mkdtemp("node");
        ASSERT_OK(asprintf(&n->config, "%s/config", n->root));
        ASSERT_OK(asprintf(&n->eventlog, "%s/binary_bios_measurements", n->root));
        ASSERT_OK(asprintf(&n->persist, "%s/persist", n->root));
        ASSERT_OK(asprintf(&n->certs, "%s/persist/certs", n->root));
        ASSERT_OK(asprintf(&n->status, "%s/persist/status", n->root));
        ASSERT_OK(asprintf(&n->vault_img, "%s/persist/vault-images", n->root));
        ASSERT_OK(asprintf(&n->run, "%s/run/eve", n->root));
        ASSERT_OK(asprintf(&vaults, "%s/persist/vaults", n->root));
        ASSERT_OK(asprintf(&vault, "%s/persist/vault", n->root));
        ASSERT_OK(eve_mkdir_p(n->config, 0755));
        ASSERT_OK(eve_mkdir_p(n->certs, 0755));
        ASSERT_OK(eve_mkdir_p(n->status, 0755));
        ASSERT_OK(eve_mkdir_p(n->run, 0755));
        ASSERT_OK(eve_mkdir_p(n->vault_img, 0755));

        n->tpm = test_swtpm_start(0, NULL);
        setenv("EVE_CONFIG_DIR", n->config, 1);
        setenv("EVE_CERTS_DIR", n->certs, 1);
        setenv("EVE_STATUS_DIR", n->status, 1);
        setenv("EVE_RUN_DIR", n->run, 1);
        setenv("EVE_PERSIST_DIR", n->persist, 1);
        setenv("EVE_VAULT_DIR", vault, 1);
        setenv("EVE_VAULTS_DIR", vaults, 1);
        setenv("EVE_VAULT_IMAGES_DIR", n->vault_img, 1);
        setenv("EVE_TPM2_TCTI", n->tpm->tcti, 1);
        setenv("EVE_EVENTLOG", n->eventlog, 1);
        eve_paths_reset();
        node_boot_measure(n);

        {
                char *argv[] = { setup, NULL };
                r = test_run(argv, &out);
                if (r != 0)
                        test_fail(__FILE__, __LINE__, "eve-tpm-setup failed (%d):\n%s", r, out ?: "");
        }

        ASSERT_OK(asprintf(&server, "127.0.0.1:%u\n", e->port));
        write_text(n->config, "server", server, 0644);
        root_pem = read_text_file(e->root_pem);
        ASSERT_NOT_NULL(root_pem);
        write_text(n->config, "root-certificate.pem", root_pem, 0644);

        ASSERT_OK(asprintf(&n->onboard_cert, "%s/onboard.cert.pem", n->config));
        ASSERT_OK(asprintf(&n->onboard_key, "%s/onboard.key.pem", n->config));
        ASSERT_OK(evc_generate_cert(
                        EVC_CERT_ROOT, "onboard", NULL, NULL, n->onboard_cert, n->onboard_key, &crt, &key));
        ASSERT_OK(asprintf(&n->serial, "SN-%s", strrchr(n->root, '-') + 1));
        write_text(n->config, "soft_serial", n->serial, 0644);
        return n;
}

void node_allow_onboarding(Node *n, Evc *e) {
        ASSERT_EQ(EVC_RUN(e, NULL, "onboard", "allow", n->serial, "--cert", n->onboard_cert), 0);
}

char *node_preregister(Node *n, Evc *e) {
        _cleanup_free_ char *cert = NULL, *out = NULL;
        char *nl;

        ASSERT_OK(asprintf(&cert, "%s/device.cert.pem", n->config));
        ASSERT_EQ(EVC_RUN(e, &out, "device", "add", "--cert", cert, "--serial", n->serial), 0);
        nl = strchr(out, '\n');
        if (nl)
                *nl = '\0';
        ASSERT_EQ(strlen(out), 36);
        return TAKE_PTR(out);
}

/* ---- daemons ---- */

static int daemon_teardown(void *p) {
        Daemon *d = p;
        int status = stop_child(&d->pid);

        if (status != 0) {
                fprintf(stderr, "%s exited with status 0x%x:\n", d->name, (unsigned) status);
                daemon_dump(d);
        }
        free(d->name);
        free(d->log);
        free(d);
        return status != 0 ? -EPROTO : 0;
}

void daemon_dump(const Daemon *d) {
        _cleanup_free_ char *log = read_text_file(d->log);
        fprintf(stderr, "---- %s log ----\n%s---- end of %s log ----\n", d->name, log ?: "", d->name);
}

Daemon *daemon_start(const char *rel, const char *bus_name, const char *env_extra, ...) {
        Daemon *d = calloc(1, sizeof *d);
        _cleanup_free_ char *exe = build_path(rel), *env_name = NULL;
        char *argv[32];
        size_t n = 0;
        const char *a;
        va_list ap;

        ASSERT_NOT_NULL(d);
        d->name = strdup(strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel);
        ASSERT_OK(asprintf(&d->log, "%s/%s-XXXXXX.log", test_tmpdir(), d->name));
        {
                int fd = mkstemps(d->log, 4);
                ASSERT_OK(fd);
                safe_close(fd);
        }
        argv[n++] = exe;
        va_start(ap, env_extra);
        while ((a = va_arg(ap, const char *)) && n < 30)
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        if (env_extra) {
                const char *eq = strchr(env_extra, '=');
                ASSERT_NOT_NULL(eq);
                env_name = strndup(env_extra, (size_t) (eq - env_extra));
                ASSERT_NOT_NULL(env_name);
                setenv(env_name, eq + 1, 1);
        }
        d->pid = test_spawn(argv, d->log, -1);
        if (env_name)
                unsetenv(env_name);
        ASSERT_GE(d->pid, 1);
        test_defer(daemon_teardown, d);
        if (bus_name) {
                uint64_t end = now_msec() + 20000;
                while (!test_bus_has_name(bus_name)) {
                        int status;
                        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
                                d->pid = 0;
                                daemon_dump(d);
                                test_fail(__FILE__,
                                          __LINE__,
                                          "%s exited (0x%x) before taking %s",
                                          d->name,
                                          status,
                                          bus_name);
                        }
                        if (now_msec() > end) {
                                daemon_dump(d);
                                test_fail(__FILE__, __LINE__, "%s did not take %s", d->name, bus_name);
                        }
                        usleep(10000);
                }
        }
        return d;
}

void daemon_stop(Daemon *d) {
        int status = stop_child(&d->pid);

        if (status != 0) {
                daemon_dump(d);
                test_fail(__FILE__, __LINE__, "%s exited with status 0x%x", d->name, (unsigned) status);
        }
}

void daemon_kill(Daemon *d) {
        int status;

        if (d->pid <= 0)
                return;
        (void) kill(d->pid, SIGKILL);
        (void) waitpid(d->pid, &status, 0);
        d->pid = 0;
}

/* ---- bus ---- */

static sd_bus *the_bus;

static int bus_teardown(void *p) {
        the_bus = sd_bus_flush_close_unref(the_bus);
        return 0;
}

sd_bus *test_bus(void) {
        if (!the_bus) {
                ASSERT_OK(sd_bus_open_system(&the_bus));
                test_defer(bus_teardown, NULL);
        }
        return the_bus;
}

void attest_props_done(AttestProps *p) {
        free(p->state_name);
        free(p->last_error);
        *p = (AttestProps){};
}

static int get_prop(const char *name, char type, void *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        if (type == 's')
                return sd_bus_get_property_string(
                                test_bus(),
                                "org.eve.Attest",
                                "/org/eve/Attest",
                                "org.eve.Attest",
                                name,
                                &e,
                                (char **) ret);
        return sd_bus_get_property_trivial(
                        test_bus(),
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        name,
                        &e,
                        type,
                        ret);
}

void attest_props(AttestProps *ret) {
        AttestProps p = {};
        ASSERT_OK(get_prop("State", 'u', &p.state));
        ASSERT_OK(get_prop("StateName", 's', &p.state_name));
        ASSERT_OK(get_prop("LastError", 's', &p.last_error));
        ASSERT_OK(get_prop("LastSuccess", 't', &p.last_success));
        ASSERT_OK(get_prop("NextAttempt", 't', &p.next_attempt));
        ASSERT_OK(get_prop("Attempts", 'u', &p.attempts));
        ASSERT_OK(get_prop("ControllerReachable", 'b', &p.reachable));
        *ret = p;
}

void attest_wait_state(const Daemon *d, uint32_t state_mask, unsigned timeout_ms) {
        uint64_t end = now_msec() + timeout_ms;

        for (;;) {
                _cleanup_(attest_props_done) AttestProps p = {};
                attest_props(&p);
                if (state_mask & ATTEST_STATE_BIT(p.state))
                        return;
                if (now_msec() > end) {
                        if (d)
                                daemon_dump(d);
                        test_fail(__FILE__,
                                  __LINE__,
                                  "attestd stayed in state %u (%s), attempts %u, last error: %s",
                                  p.state,
                                  p.state_name,
                                  p.attempts,
                                  p.last_error);
                }
                usleep(20000);
        }
}

Daemon *attestd_start_complete(const char *extra_arg) {
        Daemon *d = daemon_start("services/attestd/eve-attestd",
                                 "org.eve.Attest",
                                 NULL,
                                 "--retry-base=200ms",
                                 "--retry-max=1s",
                                 extra_arg,
                                 NULL);

        attest_wait_state(d, ATTEST_STATE_BIT(ATTEST_COMPLETE), 30000);
        return d;
}

void node_register(char uuid[static 37]) {
        _cleanup_free_ char *reg = build_path("services/register/eve-register"), *out = NULL;
        char *argv[] = { reg, NULL };
        int r = test_run(argv, &out);

        if (r != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed (%d):\n%s", r, out ?: "");
        ASSERT_OK(controller_read_uuid(uuid));
}
