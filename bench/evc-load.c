/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-load: a bounded load run of many simulated devices against one "evc serve" on 127.0.0.1 over TLS.
 * Starts its own controller (evc init, one 'evc device add' per device, evc serve --threads T), then every
 * device runs ROUNDS rounds of CERT → NONCE → QUOTE → STORE_KEYS concurrently (one thread and one keep-alive
 * TLS connection per device, as a node has), each STORE_KEYS with an escrow entry unique to (device, round)
 * and a controller share request. Afterwards it stops evc and reads its database: every device must hold
 * exactly the escrow of its last acknowledged STORE_KEYS and one share. Reports errors (goal 0), lost escrow
 * records (goal 0), p50/p99 latency of rounds and of requests, rounds/s. The simulated devices share the
 * machine with evc. Usage: evc-load [--devices N (50)] [--rounds R (20)] [--threads T (evc's request
 * threads, 8)] [--evc PATH] Not a test. */
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>

#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "encoding.h"
#include "evc-sim.h"
#include "proto-util.h"

#ifndef EVC_PATH
#        define EVC_PATH "evc"
#endif

#define VAULT_FMT "10ad0000-0000-4000-8000-%012u"

typedef struct Worker {
        SimDevice *dev;
        unsigned index;
        double *round_ms, *req_ms; /* rounds after the first, rounds × 4 */
        double first_ms; /* the first round: TLS handshake, and every durable write of a new device */
        bool first_ok;
        unsigned n_rounds_ok, n_req;
        unsigned errors;
        char last_escrow[64]; /* the escrow of the last STORE_KEYS that SUCCEEDED */
        char first_error[160];
} Worker;

static const char *arg_evc = EVC_PATH;
static unsigned arg_devices = 50, arg_rounds = 20, arg_threads = 8;
static char dir[] = "/tmp/evc-load.XXXXXX";
static char *root_pem;
static unsigned port;
static gnutls_x509_crt_t signing;
static pthread_barrier_t start;

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static _noreturn_ void die(const char *what) {
        fprintf(stderr, "evc-load: %s failed (controller log: %s/evc.log)\n", what, dir);
        exit(EXIT_FAILURE);
}

static pid_t spawn(char **argv, const char *log_path) {
        pid_t pid = fork();

        if (pid < 0)
                die("fork");
        if (pid == 0) {
                if (log_path) {
                        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                        if (fd >= 0) {
                                (void) dup2(fd, STDERR_FILENO);
                                (void) dup2(fd, STDOUT_FILENO);
                        }
                } else {
                        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                        if (fd >= 0)
                                (void) dup2(fd, STDOUT_FILENO);
                }
                execv(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static int run(char **argv) {
        int status;
        pid_t pid = spawn(argv, NULL);

        if (waitpid(pid, &status, 0) != pid)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- HTTP ---- */

typedef struct Buf {
        uint8_t *p;
        size_t n;
} Buf;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
        Buf *b = ud;
        uint8_t *q = realloc(b->p, b->n + sz * n);

        if (!q)
                return 0;
        memcpy(q + b->n, p, sz * n);
        b->p = q;
        b->n += sz * n;
        return sz * n;
}

static CURL *client(void) {
        CURL *c = curl_easy_init();

        if (!c)
                die("curl_easy_init");
        curl_easy_setopt(c, CURLOPT_CAINFO, root_pem);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL); /* only the controller root: no system trust directory */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        return c;
}

/* POSTs body (taking it) to path; returns the HTTP status (0: transport error), the response in *ret. */
static long post(CURL *c, struct curl_slist *h, const char *path, uint8_t *body, size_t n, Buf *ret) {
        char url[256];
        long status = 0;

        snprintf(url, sizeof url, "https://127.0.0.1:%u/api/v2/edgedevice/%s", port, path);
        *ret = (Buf){};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) n);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, ret);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        free(body);
        return status;
}

static void fetch_signing(void) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *zc = NULL;
        CURL *c = client();
        char url[256];
        Buf b = {};
        long status = 0;

        snprintf(url, sizeof url, "https://127.0.0.1:%u/api/v2/edgedevice/certs", port);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
                die("GET /certs");
        curl_easy_cleanup(c);
        if (PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, b.p, b.n, 1 << 20, &ac) < 0 ||
            !ac->protectedpayload ||
            PROTO_UNPACK(&org__lfedge__eve__certs__zcontroller_cert__descriptor,
                         ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len,
                         1 << 20,
                         &zc) < 0)
                die("parsing /certs");
        free(b.p);
        for (size_t i = 0; i < zc->n_certs; i++)
                if (zc->certs[i]->type ==
                                    ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING &&
                    evc_load_crt_pem(zc->certs[i]->cert.data, zc->certs[i]->cert.len, &signing) >= 0)
                        return;
        die("finding the signing certificate");
}

/* ---- one device ---- */

static bool fail(Worker *w, const char *fmt, ...) _printf_(2, 3);
static bool fail(Worker *w, const char *fmt, ...) {
        va_list ap;

        w->errors++;
        if (!w->first_error[0]) {
                va_start(ap, fmt);
                vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
                va_end(ap);
        }
        return false;
}

/* One request; checks the HTTP status and the signature, returns the response or NULL (error counted). */
static Org__Lfedge__Eve__Attest__ZAttestResponse *
                exchange(Worker *w,
                         CURL *c,
                         struct curl_slist *h,
                         const char *path,
                         uint8_t *body,
                         size_t n,
                         const char *what) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        double t0 = now_s();
        Buf b;
        long status = post(c, h, path, body, n, &b);

        w->req_ms[w->n_req++] = (now_s() - t0) * 1000.0;

        if (status != 201) {
                free(b.p);
                fail(w, "%s: HTTP %ld", what, status);
                return NULL;
        }
        if (sim_open_attest(signing, b.p, b.n, &resp) < 0)
                fail(w, "%s: response does not verify", what);
        free(b.p);
        return resp;
}

static bool one_round(Worker *w, CURL *c, struct curl_slist *h, const char *path, unsigned round) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *r;
        SimDevice *d = w->dev;
        uint8_t nonce[32], *b;
        char escrow[64], vault[37];
        size_t n;
        bool ok;

        if (sim_req_certs(d, &b, &n) < 0)
                return fail(w, "building CERT");
        r = exchange(w, c, h, path, b, n, "CERT");
        if (!r)
                return false;
        ok = r->resptype == ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT;
        proto_free(r);
        if (!ok)
                return fail(w, "CERT: wrong response");

        if (sim_req_nonce(d, &b, &n) < 0)
                return fail(w, "building NONCE");
        r = exchange(w, c, h, path, b, n, "NONCE");
        if (!r)
                return false;
        ok = r->nonce && r->nonce->nonce.len == sizeof nonce;
        if (ok)
                memcpy(nonce, r->nonce->nonce.data, sizeof nonce);
        proto_free(r);
        if (!ok)
                return fail(w, "NONCE: no nonce");

        if (sim_req_quote(d, nonce, sizeof nonce, &b, &n) < 0)
                return fail(w, "building QUOTE");
        r = exchange(w, c, h, path, b, n, "QUOTE");
        if (!r)
                return false;
        ok = r->quoteresp &&
                        r->quoteresp->response ==
                                        ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS &&
                        r->quoteresp->integrity_token.len == sizeof d->token;
        if (ok) {
                memcpy(d->token, r->quoteresp->integrity_token.data, sizeof d->token);
                d->have_token = true;
        }
        proto_free(r);
        if (!ok)
                return fail(w, "QUOTE: not SUCCESS");

        snprintf(escrow, sizeof escrow, "escrow of device %u, round %u", w->index, round);
        snprintf(vault, sizeof vault, VAULT_FMT, w->index);
        if (sim_req_store_keys(d, escrow, vault, &b, &n) < 0)
                return fail(w, "building STORE_KEYS");
        r = exchange(w, c, h, path, b, n, "STORE_KEYS");
        if (!r)
                return false;
        ok = r->storage_keys_resp &&
                        r->storage_keys_resp->response ==
                                        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS;
        proto_free(r);
        if (!ok)
                return fail(w, "STORE_KEYS: not SUCCESS");
        memcpy(w->last_escrow, escrow, sizeof escrow);
        return true;
}

static void *worker(void *p) {
        Worker *w = p;
        CURL *c = client();
        struct curl_slist *h = NULL;
        char path[64];

        h = curl_slist_append(h, "Content-Type: application/x-proto-binary");
        h = curl_slist_append(h, "Expect:");
        snprintf(path, sizeof path, "id/%s/attest", w->dev->uuid);
        (void) pthread_barrier_wait(&start);
        for (unsigned i = 0; i < arg_rounds; i++) {
                double t0 = now_s();
                if (!one_round(w, c, h, path, i))
                        continue;
                if (i == 0) {
                        w->first_ms = (now_s() - t0) * 1000.0;
                        w->first_ok = true;
                } else
                        w->round_ms[w->n_rounds_ok++] = (now_s() - t0) * 1000.0;
        }
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return NULL;
}

/* ---- after the run ---- */

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p) {
        if (n == 0)
                return NAN;
        qsort(v, n, sizeof *v, cmp_double);
        return v[MIN(n - 1, (size_t) (p * (double) n))];
}

/* Every device holds exactly the escrow it last had acknowledged, and its share. */
static unsigned check_store(Worker *w, unsigned *ret_missing_shares) {
        _cleanup_free_ char *db_path = NULL;
        sqlite3 *db;
        sqlite3_stmt *st;
        unsigned lost = 0, missing = 0;

        if (asprintf(&db_path, "%s/evc.db", dir) < 0 ||
            sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(
                            db,
                            "SELECT (SELECT group_concat(hex(key_msg), ',') FROM escrow WHERE device_id = "
                            "d.id), "
                            "(SELECT count(*) FROM escrow WHERE device_id = d.id), "
                            "(SELECT count(*) FROM shares WHERE device_id = d.id) FROM devices d WHERE uuid "
                            "= ?",
                            -1,
                            &st,
                            NULL) != SQLITE_OK)
                die("opening the controller's database");
        for (unsigned i = 0; i < arg_devices; i++) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKey *k = NULL;
                _cleanup_free_ uint8_t *raw = NULL;
                const char *hex;
                size_t rn;

                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, w[i].dev->uuid, -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_ROW)
                        die("reading a device");
                if (sqlite3_column_int(st, 2) != 1)
                        missing++;
                if (!w[i].last_escrow[0])
                        continue; /* nothing acknowledged: nothing to lose (its errors are counted) */
                hex = (const char *) sqlite3_column_text(st, 0);
                if (sqlite3_column_int(st, 1) != 1 || !hex ||
                    hex_decode(hex, strlen(hex), false, &raw, &rn) < 0 ||
                    PROTO_UNPACK(&org__lfedge__eve__attest__attest_volume_key__descriptor,
                                 raw,
                                 rn,
                                 1 << 16,
                                 &k) < 0 ||
                    k->key.len != strlen(w[i].last_escrow) ||
                    memcmp(k->key.data, w[i].last_escrow, k->key.len) != 0)
                        lost++;
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        *ret_missing_shares = missing;
        return lost;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static bool parse_arg(int argc, char **argv, int *i, const char *name, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        if (!streq(argv[*i], name))
                return false;
        if (*i + 1 >= argc)
                die(name);
        errno = 0;
        v = strtoul(argv[++*i], &end, 10);
        if (errno != 0 || *end || v == 0 || v > max)
                die(name);
        *ret = (unsigned) v;
        return true;
}

int main(int argc, char **argv) {
        _cleanup_free_ char *port_file = NULL, *log_file = NULL, *threads = NULL;
        Worker *w;
        pthread_t *tids;
        double t0, wall, *all_rounds, *all_reqs, *firsts;
        size_t n_rounds = 0, n_reqs = 0, n_firsts = 0;
        unsigned errors = 0, lost, missing_shares;
        pid_t server;
        int status;

        for (int i = 1; i < argc; i++) {
                if (parse_arg(argc, argv, &i, "--devices", 10000, &arg_devices) ||
                    parse_arg(argc, argv, &i, "--rounds", 100000, &arg_rounds) ||
                    parse_arg(argc, argv, &i, "--threads", 64, &arg_threads))
                        continue;
                if (streq(argv[i], "--evc") && i + 1 < argc) {
                        arg_evc = argv[++i];
                        continue;
                }
                fprintf(stderr, "Usage: evc-load [--devices N] [--rounds R] [--threads T] [--evc PATH]\n");
                return EXIT_FAILURE;
        }
        if (!mkdtemp(dir) || asprintf(&root_pem, "%s/certs/root.pem", dir) < 0 ||
            asprintf(&port_file, "%s/port", dir) < 0 || asprintf(&log_file, "%s/evc.log", dir) < 0 ||
            asprintf(&threads, "%u", arg_threads) < 0)
                die("setup");
        curl_global_init(CURL_GLOBAL_DEFAULT);

        /* The controller, and the devices added by the admin command. */
        {
                char *argv_init[] = { (char *) arg_evc, (char *) "init", (char *) "--dir", dir, NULL };
                if (run(argv_init) != 0)
                        die("evc init");
        }
        w = calloc(arg_devices, sizeof *w);
        tids = calloc(arg_devices, sizeof *tids);
        if (!w || !tids)
                die("allocation");
        for (unsigned i = 0; i < arg_devices; i++) {
                char name[32];
                int fd[2];
                ssize_t k;
                pid_t pid;

                snprintf(name, sizeof name, "device-%u", i);
                w[i].index = i;
                w[i].round_ms = calloc(arg_rounds, sizeof(double));
                w[i].req_ms = calloc(arg_rounds * 4, sizeof(double));
                if (!w[i].round_ms || !w[i].req_ms || sim_device_new(dir, name, &w[i].dev) < 0 ||
                    pipe2(fd, O_CLOEXEC) < 0)
                        die("device setup");
                pid = fork();
                if (pid < 0)
                        die("fork");
                if (pid == 0) {
                        (void) dup2(fd[1], STDOUT_FILENO);
                        execl(arg_evc,
                              arg_evc,
                              "device",
                              "add",
                              "--cert",
                              w[i].dev->cert_path,
                              "--dir",
                              dir,
                              (char *) NULL);
                        _exit(127);
                }
                close(fd[1]);
                k = read(fd[0], w[i].dev->uuid, 36);
                close(fd[0]);
                if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
                    k != 36)
                        die("evc device add");
                w[i].dev->uuid[36] = 0;
        }
        {
                char *argv_serve[] = { (char *) arg_evc,
                                       (char *) "serve",
                                       (char *) "--dir",
                                       dir,
                                       (char *) "--listen",
                                       (char *) "127.0.0.1:0",
                                       (char *) "--port-file",
                                       port_file,
                                       (char *) "--threads",
                                       threads,
                                       NULL };
                server = spawn(argv_serve, log_file);
        }
        for (int i = 0; i < 1000 && port == 0; i++) {
                FILE *f = fopen(port_file, "re");
                if (!f || fscanf(f, "%u", &port) != 1)
                        port = 0;
                if (f)
                        fclose(f);
                if (port == 0)
                        usleep(10000);
        }
        if (port == 0)
                die("evc serve");
        fetch_signing();

        /* The run. */
        if (pthread_barrier_init(&start, NULL, arg_devices + 1) != 0)
                die("barrier");
        for (unsigned i = 0; i < arg_devices; i++)
                if (pthread_create(&tids[i], NULL, worker, &w[i]) != 0)
                        die("pthread_create");
        (void) pthread_barrier_wait(&start);
        t0 = now_s();
        for (unsigned i = 0; i < arg_devices; i++)
                (void) pthread_join(tids[i], NULL);
        wall = now_s() - t0;

        (void) kill(server, SIGTERM);
        if (waitpid(server, &status, 0) != server || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "evc-load: evc serve did not exit cleanly (status 0x%x)\n", status);
                errors++;
        }
        lost = check_store(w, &missing_shares);

        all_rounds = calloc((size_t) arg_devices * arg_rounds, sizeof(double));
        all_reqs = calloc((size_t) arg_devices * arg_rounds * 4, sizeof(double));
        firsts = calloc(arg_devices, sizeof(double));
        if (!all_rounds || !all_reqs || !firsts)
                die("allocation");
        for (unsigned i = 0; i < arg_devices; i++) {
                errors += w[i].errors;
                if (w[i].first_error[0])
                        fprintf(stderr,
                                "device %u: %u error(s), first: %s\n",
                                i,
                                w[i].errors,
                                w[i].first_error);
                if (w[i].first_ok)
                        firsts[n_firsts++] = w[i].first_ms;
                memcpy(all_rounds + n_rounds, w[i].round_ms, w[i].n_rounds_ok * sizeof(double));
                n_rounds += w[i].n_rounds_ok;
                memcpy(all_reqs + n_reqs, w[i].req_ms, w[i].n_req * sizeof(double));
                n_reqs += w[i].n_req;
        }

        double rp50 = pct(all_rounds, n_rounds, 0.50), rp99 = pct(all_rounds, n_rounds, 0.99),
               qp50 = pct(all_reqs, n_reqs, 0.50), qp99 = pct(all_reqs, n_reqs, 0.99),
               fp50 = pct(firsts, n_firsts, 0.50), fmax = pct(firsts, n_firsts, 1.0);
        size_t done = n_rounds + n_firsts;
        printf("evc-load: %u devices × %u rounds (CERT, NONCE, QUOTE, STORE_KEYS) over TLS, evc with %u "
               "request threads\n",
               arg_devices,
               arg_rounds,
               arg_threads);
        printf("  rounds completed: %zu of %u in %.2f s: %.1f rounds/s, %.1f requests/s\n",
               done,
               arg_devices * arg_rounds,
               wall,
               (double) done / wall,
               (double) n_reqs / wall);
        printf("  first round of each device (TLS handshake; certificates, baseline and share written with "
               "fsync,\n"
               "  all devices at once): p50 %.1f ms, max %.1f ms\n",
               fp50,
               fmax);
        printf("  later rounds: p50 %.1f ms, p99 %.1f ms; every request: p50 %.1f ms, p99 %.1f ms\n",
               rp50,
               rp99,
               qp50,
               qp99);
        printf("  errors: %u (goal 0); lost escrow records: %u of %u devices (goal 0); devices without "
               "their share: %u\n",
               errors,
               lost,
               arg_devices,
               missing_shares);
        printf("BENCH\tevc load: errors (%u devices × %u rounds)\t%u\t-\t-\t==0\n",
               arg_devices,
               arg_rounds,
               errors);
        printf("BENCH\tevc load: lost escrow records\t%u\t-\t-\t==0\n", lost + missing_shares);
        printf("BENCH\tevc load: round latency p50\t%.1f ms\t-\t-\treport\n", rp50);
        printf("BENCH\tevc load: round latency p99\t%.1f ms\t-\t-\treport\n", rp99);
        printf("BENCH\tevc load: rounds/s\t%.1f/s\t-\t-\treport\n", (double) done / wall);

        for (unsigned i = 0; i < arg_devices; i++) {
                sim_device_free(w[i].dev);
                free(w[i].round_ms);
                free(w[i].req_ms);
        }
        free(w);
        free(tids);
        free(all_rounds);
        free(all_reqs);
        free(firsts);
        free(root_pem);
        gnutls_x509_crt_deinit(signing);
        curl_global_cleanup();
        if (errors == 0 && lost == 0 && missing_shares == 0)
                (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        else
                fprintf(stderr, "evc-load: kept %s for inspection\n", dir);
        return errors == 0 && lost == 0 && missing_shares == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
