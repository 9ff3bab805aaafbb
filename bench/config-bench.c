/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config-bench: the latency of one secret delivery by eve-configd, next to `systemd-creds decrypt` of a
 * TPM-bound credential, both on the same swtpm. eve-configd runs as a process on a private dbus-daemon with
 * a stored config (its vault stood in for, as in the tests: no device-mapper here), the secret a cipher
 * block encrypted to the swtpm's ECDH key (eve-tpm-setup). A delivery is: D-Bus:     GetSecret() on a
 * connection kept open (ACL check by UID, ZGen in the TPM, AES-CFB, unpack); socket:    what systemd does
 * for LoadCredential=: bind "@<hex>/unit/<unit>/<id>", connect, read to EOF; anchor:    `systemd-creds
 * decrypt --tpm2-device=swtpm:…` of a credential sealed with --with-key=tpm2. Measured in alternating blocks
 * (swtpm serves one connection at a time; eve-configd lets its TPM connection go after 2 s idle, so each
 * block of ours starts with the TPM being opened). Not a test. */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bench-swtpm.h"
#include "bench.h"
#include "configd-cipher.h"
#include "configd-config.h"
#include "configd-store.h"
#include "crypto-util.h"
#include "encoding.h"
#include "evc-cipher.h"
#include "evc-crypto.h"
#include "log.h"
#include "main-func.h"
#include "paths.h"
#include "proto-util.h"
#include "vault-standin.h"

#define VALUE "bench p4ss: correct horse battery staple"
#define UNIT "bench-consumer.service"
#define BLOCKS 5U

static unsigned arg_rounds = 20;

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct Series {
        double sum, min;
        double v[4096]; /* the first samples, for the median */
        unsigned n;
} Series;

static void series_add(Series *s, double ms) {
        s->sum += ms;
        s->min = s->n == 0 || ms < s->min ? ms : s->min;
        if (s->n < ELEMENTSOF(s->v))
                s->v[s->n] = ms;
        s->n++;
}

static double mean(const Series *s) {
        return s->n ? s->sum / s->n : NAN;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* For orientation on a loaded machine, where a few scheduling stalls move the mean. */
static double median(Series *s) {
        size_t n = MIN((size_t) s->n, ELEMENTSOF(s->v));

        if (n == 0)
                return NAN;
        qsort(s->v, n, sizeof s->v[0], cmp_double);
        return n % 2 ? s->v[n / 2] : (s->v[n / 2 - 1] + s->v[n / 2]) / 2;
}

/* ---- child processes ---- */

static pid_t spawn(char *const argv[], const char *log_path) {
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(log_path ?: "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
        }
        if (null >= 0)
                dup2(null, STDIN_FILENO);
        execvp(argv[0], argv);
        _exit(127);
}

static int run(char *const argv[], char *out, size_t out_size) {
        int pfd[2], status;
        size_t n = 0;
        pid_t pid;

        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                dup2(pfd[1], STDOUT_FILENO);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                execvp(argv[0], argv);
                _exit(127);
        }
        close(pfd[1]);
        for (;;) {
                ssize_t k = read(pfd[0], out + n, out_size - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t) k;
                if (n == out_size - 1)
                        break;
        }
        out[n] = '\0';
        close(pfd[0]);
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void stop(pid_t pid) {
        if (pid <= 0)
                return;
        (void) kill(pid, SIGTERM);
        (void) waitpid(pid, NULL, 0);
}

static int wait_socket(const char *path) {
        for (int i = 0; i < 500; i++) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
                if (fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof sa) >= 0)
                        return 0;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

static int write_file(const char *dir, const char *name, const void *data, size_t n) {
        _cleanup_free_ char *p = NULL;

        if (asprintf(&p, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        return crypto_write_file_atomic(p, data, n, 0644);
}

/* ---- the node and its config ---- */

typedef struct Node {
        char root[64];
        char *config, *certs, *run, *vaults;
        uint8_t key[32], ctrl_hash[16], dev_hash[16]; /* the controller's side of the key agreement */
} Node;

/* A ConfigResponse as evc sends it, with n Wi-Fi secrets ("bench", "bench1", …), each in a cipher block of
 * its own under the one cipher context (the controller's ECDH certificate and the node's). */
static int
                pack_config(const uint8_t key[static 32],
                            const uint8_t ctrl_hash[static 16],
                            const uint8_t dev_hash[static 16],
                            unsigned n,
                            uint8_t **ret,
                            size_t *ret_size) {
        Org__Lfedge__Eve__Common__EncryptionBlock eb = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_BLOCK__INIT;
        Org__Lfedge__Eve__Config__ConfigResponse resp = ORG__LFEDGE__EVE__CONFIG__CONFIG_RESPONSE__INIT;
        Org__Lfedge__Eve__Config__EdgeDevConfig cfg = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__NetworkConfig net = ORG__LFEDGE__EVE__CONFIG__NETWORK_CONFIG__INIT,
                                                *netp = &net;
        Org__Lfedge__Eve__Config__WirelessConfig wl = ORG__LFEDGE__EVE__CONFIG__WIRELESS_CONFIG__INIT;
        Org__Lfedge__Eve__Common__CipherContext ctx = ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT,
                                                *ctxp = &ctx;
        _cleanup_free_ Org__Lfedge__Eve__Config__WifiConfig *w = calloc(n, sizeof *w);
        _cleanup_free_ Org__Lfedge__Eve__Config__WifiConfig **wp = calloc(n, sizeof *wp);
        _cleanup_free_ Org__Lfedge__Eve__Common__CipherBlock *b = calloc(n, sizeof *b);
        _cleanup_free_ char *ssids = calloc(n, 16);
        unsigned made = 0;
        int r = 0;

        if (!w || !wp || !b || !ssids)
                return -ENOMEM;
        eb.wifipassword = (char *) VALUE;
        for (; made < n; made++) {
                _cleanup_free_ uint8_t *plain = NULL;
                size_t plain_size;

                r = PROTO_PACK(&eb, &plain, &plain_size);
                if (r >= 0)
                        r = evc_cipher_block_encrypt(key, "bench-ctx", plain, plain_size, &b[made]);
                if (r < 0)
                        break;
                org__lfedge__eve__config__wifi_config__init(&w[made]);
                if (made == 0)
                        snprintf(ssids, 16, "bench");
                else
                        snprintf(ssids + 16 * made, 16, "bench%u", made);
                w[made].wifissid = ssids + 16 * made;
                w[made].cipherdata = &b[made];
                wp[made] = &w[made];
        }
        if (r >= 0) {
                ctx.contextid = (char *) "bench-ctx";
                ctx.keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
                ctx.encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
                ctx.devicecerthash = (ProtobufCBinaryData){ 16, (uint8_t *) dev_hash };
                ctx.controllercerthash = (ProtobufCBinaryData){ 16, (uint8_t *) ctrl_hash };
                wl.n_wificfg = n;
                wl.wificfg = wp;
                net.wireless = &wl;
                cfg.n_networks = 1;
                cfg.networks = &netp;
                cfg.n_ciphercontexts = 1;
                cfg.ciphercontexts = &ctxp;
                resp.config = &cfg;
                resp.confighash = (char *) "bench";
                r = PROTO_PACK(&resp, ret, ret_size);
        }
        for (unsigned i = 0; i < made; i++)
                evc_cipher_block_done(&b[i]);
        return r;
}

static int node_make(Node *n, const char *tcti) {
        _cleanup_free_ char *vault = NULL;
        char *argv[] = { (char *) TPM_SETUP_PATH, NULL };
        char out[4096];
        int r;

        snprintf(n->root, sizeof n->root, "/tmp/config-bench.XXXXXX");
        if (!mkdtemp(n->root))
                return -errno;
        if (asprintf(&n->config, "%s/config", n->root) < 0 || asprintf(&n->certs, "%s/certs", n->root) < 0 ||
            asprintf(&n->run, "%s/run", n->root) < 0 || asprintf(&n->vaults, "%s/vaults", n->root) < 0 ||
            asprintf(&vault, "%s/config/config", n->vaults) < 0)
                return -ENOMEM;
        if (eve_mkdir_p(n->config, 0755) < 0 || eve_mkdir_p(n->certs, 0755) < 0 ||
            eve_mkdir_p(n->run, 0755) < 0 || eve_mkdir_p(vault, 0700) < 0)
                return -errno;
        setenv("EVE_CONFIG_DIR", n->config, 1);
        setenv("EVE_CERTS_DIR", n->certs, 1);
        setenv("EVE_STATUS_DIR", n->root, 1);
        setenv("EVE_RUN_DIR", n->run, 1);
        setenv("EVE_VAULTS_DIR", n->vaults, 1);
        setenv("EVE_TPM2_TCTI", tcti, 1);
        eve_paths_reset();
        r = run(argv, out, sizeof out);
        if (r != 0)
                return log_error_errno(SYNTHETIC_ERRNO(EIO), "eve-tpm-setup failed (%d): %s", r, out);
        return 0;
}

/* The controller's part, with evc's code: a root CA and an ECDH certificate (installed where eve-register
 * puts them), the secret encrypted to the node's ECDH certificate, a config stored in the (stand-in) vault.
 */
static int config_make(Node *n) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL, ecdh = NULL, dev = NULL;
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t root_key = NULL, ecdh_key = NULL;
        _cleanup_free_ char *root_path = NULL, *root_key_path = NULL, *ecdh_path = NULL,
                            *ecdh_key_path = NULL, *pem = NULL, *dev_pem = NULL, *hex = NULL, *name = NULL,
                            *dir = NULL, *dev_path = NULL, *store = NULL;
        _cleanup_free_ uint8_t *packed = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        uint8_t key[32], ctrl_hash[16], dev_hash[16];
        size_t size, dev_size, n_packed;
        int r;

        if (asprintf(&root_path, "%s/root.pem", n->root) < 0 ||
            asprintf(&root_key_path, "%s/root-key.pem", n->root) < 0 ||
            asprintf(&ecdh_path, "%s/ecdh.pem", n->root) < 0 ||
            asprintf(&ecdh_key_path, "%s/ecdh-key.pem", n->root) < 0 ||
            asprintf(&dev_path, "%s/ecdh.cert.pem", n->certs) < 0)
                return -ENOMEM;
        r = evc_generate_cert(
                        EVC_CERT_ROOT, "bench root", NULL, NULL, root_path, root_key_path, &root, &root_key);
        if (r >= 0)
                r = evc_generate_cert(
                                EVC_CERT_ECDH,
                                "bench ecdh",
                                root,
                                root_key,
                                ecdh_path,
                                ecdh_key_path,
                                &ecdh,
                                &ecdh_key);
        if (r < 0)
                return log_error_errno(r, "Cannot make the controller certificates: %m");
        r = crypto_read_file(root_path, false, &pem, &size);
        if (r < 0 || (r = write_file(n->config, "root-certificate.pem", pem, size)) < 0)
                return log_error_errno(r, "Cannot install the root CA: %m");
        pem = mfree(pem);
        r = crypto_read_file(ecdh_path, false, &pem, &size);
        if (r < 0)
                return r;
        crypto_cert_hash_pem16(pem, size, ctrl_hash);
        hex = hex_encode(ctrl_hash, 16);
        if (!hex || asprintf(&dir, "%s/controller", n->certs) < 0 || asprintf(&name, "ecdh-%s.pem", hex) < 0)
                return -ENOMEM;
        if (eve_mkdir_p(dir, 0755) < 0 || (r = write_file(dir, name, pem, size)) < 0)
                return log_error_errno(r, "Cannot install the controller ECDH certificate: %m");

        r = crypto_read_file(dev_path, false, &dev_pem, &dev_size);
        if (r < 0)
                return r;
        crypto_cert_hash_pem16(dev_pem, dev_size, dev_hash);
        r = crypto_cert_load(dev_path, &dev, NULL, NULL);
        if (r >= 0)
                r = evc_ecdh_key(ecdh_key, dev, key);
        if (r < 0)
                return log_error_errno(r, "Cannot compute the key agreement with the node: %m");
        r = pack_config(key, ctrl_hash, dev_hash, 1, &packed, &n_packed);
        if (r < 0)
                return r;
        /* For the scaling run: the same controller and device, more secrets. */
        memcpy(n->key, key, sizeof n->key);
        memcpy(n->ctrl_hash, ctrl_hash, sizeof n->ctrl_hash);
        memcpy(n->dev_hash, dev_hash, sizeof n->dev_hash);
        r = config_parse(packed, n_packed, &c);
        if (r < 0)
                return r;
        store = store_path(NULL);
        if (!store)
                return -ENOMEM;
        r = store_save(store, c);
        if (r < 0)
                return log_error_errno(r, "Cannot store the config: %m");
        /* Who may read it: this UID over D-Bus, the consumer unit over the socket. */
        free(dir);
        if (asprintf(&dir, "%s/secrets.d", n->config) < 0 || eve_mkdir_p(dir, 0755) < 0)
                return -ENOMEM;
        {
                static const char acl[] = "[Secret wifi.bench]\nAllowUser=root\nAllowUnit=" UNIT "\n";
                return write_file(dir, "50-bench.conf", acl, strlen(acl));
        }
}

/* ---- one delivery each way ---- */

static int deliver_bus(sd_bus *bus, Series *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *f, *v;
        double t0 = now_ms();
        int r;

        r = sd_bus_call_method(
                        bus,
                        "org.eve.Config",
                        "/org/eve/Config",
                        "org.eve.Config",
                        "GetSecret",
                        &error,
                        &reply,
                        "s",
                        "wifi.bench");
        if (r < 0) {
                log_error("GetSecret: %s", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "a{ss}", 1, &f, &v);
        if (r < 0 || !streq(v, VALUE))
                return log_error_errno(SYNTHETIC_ERRNO(EBADMSG), "GetSecret: wrong value");
        series_add(s, now_ms() - t0);
        return 0;
}

static int deliver_socket(const char *path, Series *s) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX }, peer = { .sun_family = AF_UNIX };
        char name[108], buf[256];
        size_t n = 0;
        double t0 = now_ms();
        int len;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        len = snprintf(name,
                       sizeof name,
                       "%lx/unit/%s/wifi.bench",
                       (unsigned long) random() << 8 | 0x5a,
                       UNIT);
        memcpy(peer.sun_path + 1, name, (size_t) len);
        if (bind(fd,
                 (struct sockaddr *) &peer,
                 (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0)
                return -errno;
        strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        for (;;) {
                ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = '\0';
        if (!streq(buf, VALUE))
                return log_error_errno(SYNTHETIC_ERRNO(EBADMSG), "credential socket: wrong value '%s'", buf);
        series_add(s, now_ms() - t0);
        return 0;
}

static int deliver_creds(const char *tcti_device, const char *cred, Series *s) {
        char *argv[] = { (char *) "systemd-creds",
                         (char *) "decrypt",
                         (char *) tcti_device,
                         (char *) "--name=bench",
                         (char *) cred,
                         (char *) "-",
                         NULL };
        char out[256];
        double t0 = now_ms();
        int r;

        r = run(argv, out, sizeof out);
        if (r != 0 || !streq(out, VALUE))
                return log_error_errno(SYNTHETIC_ERRNO(EIO), "systemd-creds decrypt failed (%d)", r);
        series_add(s, now_ms() - t0);
        return 0;
}

/* How a config's cost grows with its secrets: the node's side of a fetch (parse, store) and the decryption
 * of every secret (one ZGen each, as GetSecret does), for configs of 1, 10 and 100 secrets; the time per
 * secret should stay flat. In process, on the same swtpm, after eve-configd stopped (one TPM connection at a
 * time). */
static int scaling(const Node *n, const char *tcti) {
        static const unsigned counts[] = { 1, 10, 100 };
        double per_secret[ELEMENTSOF(counts)], commands[ELEMENTSOF(counts)];
        _cleanup_free_ char *store = store_path(NULL);
        int r;

        if (!store)
                return -ENOMEM;
        for (size_t k = 0; k < ELEMENTSOF(counts); k++) {
                _cleanup_free_ uint8_t *packed = NULL;
                unsigned reps = MAX(20U / counts[k], 2U), done = 0;
                uint64_t n_commands = 0;
                double total = 0;
                size_t n_packed;

                r = pack_config(n->key, n->ctrl_hash, n->dev_hash, counts[k], &packed, &n_packed);
                if (r < 0)
                        return log_error_errno(r, "Packing a config of %u secrets: %m", counts[k]);
                for (unsigned rep = 0; rep < reps; rep++) {
                        _cleanup_(config_freep) Config *c = NULL;
                        _cleanup_(cipher_key_freep) CipherKey *key = NULL;
                        double t0 = now_ms();

                        r = config_parse(packed, n_packed, &c);
                        if (r >= 0)
                                r = store_save(store, c);
                        if (r >= 0)
                                r = cipher_key_load(tcti, &key);
                        if (r < 0)
                                return log_error_errno(r, "Config of %u secrets: %m", counts[k]);
                        if (c->n_secrets != counts[k])
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EBADMSG),
                                                "%zu secrets in a config of %u",
                                                c->n_secrets,
                                                counts[k]);
                        for (size_t i = 0; i < c->n_secrets; i++) {
                                _cleanup_(proto_secret_freep) EncryptionBlock *eb = NULL;
                                CipherFailure f;

                                r = cipher_block_decrypt(
                                                key,
                                                c->response->config->ciphercontexts,
                                                c->response->config->n_ciphercontexts,
                                                c->secrets[i].block,
                                                &eb,
                                                &f);
                                if (r < 0 || !streq_ptr(eb->wifipassword, VALUE))
                                        return log_error_errno(
                                                        SYNTHETIC_ERRNO(EIO),
                                                        "Secret %zu of %u not decrypted: %s",
                                                        i,
                                                        counts[k],
                                                        r < 0 ? cipher_failure_to_message(f) : "wrong");
                        }
                        total += now_ms() - t0;
                        done += counts[k];
                        /* Opening the TPM included; the kept session's FlushContext at free is not. */
                        n_commands += tpm2_context_commands(key->tpm);
                }
                per_secret[k] = total / done;
                commands[k] = (double) n_commands / done;
        }
        printf("config fetch (parse, store) + decrypt of every secret, per secret:");
        for (size_t k = 0; k < ELEMENTSOF(counts); k++)
                printf(" %u: %.2f ms;", counts[k], per_secret[k]);
        printf("\nTPM commands per secret (eve-configd's TPM context, opened once per config):");
        for (size_t k = 0; k < ELEMENTSOF(counts); k++)
                printf(" %u: %.2f;", counts[k], commands[k]);
        printf("\n");
        bench_report_curve(
                        "config fetch + decrypt per secret, %u vs 1 secret",
                        counts,
                        per_secret,
                        ELEMENTSOF(counts));
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "rounds", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "hn:", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        arg_rounds = (unsigned) atoi(optarg);
                        if (arg_rounds == 0)
                                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Bad --rounds.");
                        break;
                case 'h':
                        printf("config-bench [--rounds=N]: one secret delivery by eve-configd (D-Bus, "
                               "credential "
                               "socket) next to systemd-creds decrypt of a TPM-bound credential, same "
                               "swtpm.\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        return 1;
}

static int bench(int argc, char *argv[]) {
        BenchSwtpm t = {};
        Node n = {};
        VaultStandin vault = {};
        bool vault_up = false;
        pid_t bus_pid = 0, configd_pid = 0;
        _cleanup_free_ char *bus_conf = NULL, *bus_sock = NULL, *address = NULL, *cred = NULL,
                            *device = NULL, *sock = NULL, *log_path = NULL, *plain = NULL;
        sd_bus *bus = NULL;
        Series s_bus = {}, s_sock = {}, s_creds = {};
        char out[512];
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        r = bench_swtpm_start(&t, "config-bench-tpm");
        if (r < 0) {
                log_error_errno(r, "Cannot start swtpm: %m");
                goto finish;
        }
        r = node_make(&n, t.tcti);
        if (r >= 0)
                r = config_make(&n);
        if (r < 0)
                goto finish;

        /* A private bus, open to this benchmark. */
        if (asprintf(&bus_sock, "%s/bus", n.root) < 0 || asprintf(&bus_conf, "%s/bus.conf", n.root) < 0 ||
            asprintf(&address, "unix:path=%s", bus_sock) < 0) {
                r = log_oom();
                goto finish;
        }
        {
                _cleanup_free_ char *conf = NULL;
                if (asprintf(&conf,
                             "<busconfig><type>system</type><listen>unix:path=%s</listen><auth>EXTERNAL</"
                             "auth>"
                             "<policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>"
                             "<allow send_destination=\"*\"/><allow "
                             "receive_sender=\"*\"/></policy></busconfig>\n",
                             bus_sock) < 0 ||
                    crypto_write_file_atomic(bus_conf, conf, strlen(conf), 0644) < 0) {
                        r = log_error_errno(SYNTHETIC_ERRNO(EIO), "Cannot write the bus configuration.");
                        goto finish;
                }
        }
        {
                _cleanup_free_ char *arg = NULL;
                if (asprintf(&arg, "--config-file=%s", bus_conf) < 0) {
                        r = log_oom();
                        goto finish;
                }
                char *dbus_argv[] = { (char *) "dbus-daemon", arg, (char *) "--nofork", NULL };
                bus_pid = spawn(dbus_argv, NULL);
        }
        r = wait_socket(bus_sock);
        if (r < 0) {
                log_error_errno(r, "dbus-daemon did not start: %m");
                goto finish;
        }
        setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1);
        r = vault_standin_start(&vault, "Unlocked");
        if (r < 0) {
                log_error_errno(r, "Cannot serve the vault stand-in: %m");
                goto finish;
        }
        vault_up = true;

        if (asprintf(&log_path, "%s/configd.log", n.root) < 0 ||
            asprintf(&sock, "%s/credentials.sock", n.run) < 0) {
                r = log_oom();
                goto finish;
        }
        {
                char *configd_argv[] = {
                        (char *) CONFIGD_PATH, (char *) "--no-fetch", (char *) "--no-mount-check", NULL
                };
                configd_pid = spawn(configd_argv, log_path);
        }
        r = sd_bus_open_system(&bus);
        if (r < 0)
                goto finish;
        for (int i = 0; i < 500; i++) {
                int stored = 0;
                if (sd_bus_get_property_trivial(
                                    bus,
                                    "org.eve.Config",
                                    "/org/eve/Config",
                                    "org.eve.Config",
                                    "Stored",
                                    NULL,
                                    'b',
                                    &stored) >= 0 &&
                    stored)
                        break;
                usleep(10000);
        }

        /* The anchor's credential: sealed to the same swtpm (PCR 7, systemd-creds' default). */
        if (asprintf(&cred, "%s/bench.cred", n.root) < 0 ||
            asprintf(&device, "--tpm2-device=%s", t.tcti) < 0 || asprintf(&plain, "%s/plain", n.root) < 0) {
                r = log_oom();
                goto finish;
        }
        r = crypto_write_file_atomic(plain, VALUE, strlen(VALUE), 0600);
        if (r >= 0) {
                char *enc_argv[] = { (char *) "systemd-creds",
                                     (char *) "encrypt",
                                     (char *) "--with-key=tpm2",
                                     device,
                                     (char *) "--name=bench",
                                     plain,
                                     cred,
                                     NULL };
                r = run(enc_argv, out, sizeof out) == 0 ? 0 : -EIO;
        }
        if (r < 0) {
                log_error("systemd-creds encrypt --with-key=tpm2 %s failed.", device);
                goto finish;
        }

        /* Warm up each path once, then alternate blocks. */
        {
                Series warm = {};
                r = deliver_bus(bus, &warm);
                if (r >= 0)
                        r = deliver_socket(sock, &warm);
                if (r < 0)
                        goto finish;
                usleep(2500 * 1000);
                r = deliver_creds(device, cred, &warm);
                if (r < 0)
                        goto finish;
        }
        for (unsigned b = 0; b < BLOCKS; b++) {
                for (unsigned i = 0; i < arg_rounds; i++) {
                        r = deliver_bus(bus, &s_bus);
                        if (r >= 0)
                                r = deliver_socket(sock, &s_sock);
                        if (r < 0)
                                goto finish;
                }
                usleep(2500 * 1000); /* eve-configd lets go of the TPM */
                for (unsigned i = 0; i < arg_rounds; i++) {
                        r = deliver_creds(device, cred, &s_creds);
                        if (r < 0)
                                goto finish;
                }
        }

        printf("one secret delivery, %u rounds each (mean, min, median):\n", s_bus.n);
        printf("  eve-configd over D-Bus:            %7.3f ms  %7.3f ms  %7.3f ms\n",
               mean(&s_bus),
               s_bus.min,
               median(&s_bus));
        printf("  eve-configd credential socket:     %7.3f ms  %7.3f ms  %7.3f ms\n",
               mean(&s_sock),
               s_sock.min,
               median(&s_sock));
        printf("  systemd-creds decrypt (tpm2):      %7.3f ms  %7.3f ms  %7.3f ms\n",
               mean(&s_creds),
               s_creds.min,
               median(&s_creds));
        printf("  ratio of the medians, D-Bus, socket: %.3f, %.3f\n",
               median(&s_bus) / median(&s_creds),
               median(&s_sock) / median(&s_creds));
        printf("  ratio D-Bus / systemd-creds:       %7.3f\n", mean(&s_bus) / mean(&s_creds));
        printf("  ratio socket / systemd-creds:      %7.3f\n", mean(&s_sock) / mean(&s_creds));
        {
                char ours[32], anchor[32];
                snprintf(anchor, sizeof anchor, "%.2f ms", mean(&s_creds));
                snprintf(ours, sizeof ours, "%.2f ms", mean(&s_bus));
                bench_report("secret delivery, D-Bus vs systemd-creds decrypt (tpm2)",
                             ours,
                             anchor,
                             mean(&s_bus) / mean(&s_creds),
                             "<=0.25");
                snprintf(ours, sizeof ours, "%.2f ms", mean(&s_sock));
                bench_report("secret delivery, credential socket vs systemd-creds decrypt (tpm2)",
                             ours,
                             anchor,
                             mean(&s_sock) / mean(&s_creds),
                             "<=0.25");
        }
        stop(configd_pid);
        configd_pid = 0;
        r = scaling(&n, t.tcti);
        if (r < 0)
                goto finish;
        r = 0;
finish:
        sd_bus_flush_close_unref(bus);
        stop(configd_pid);
        if (vault_up)
                vault_standin_stop(&vault);
        stop(bus_pid);
        bench_swtpm_stop(&t);
        if (n.root[0]) {
                char *rm_argv[] = { (char *) "rm", (char *) "-rf", n.root, NULL };
                (void) run(rm_argv, out, sizeof out);
        }
        free(n.config);
        free(n.certs);
        free(n.run);
        free(n.vaults);
        return r;
}

EVE_DEFINE_MAIN(bench);
