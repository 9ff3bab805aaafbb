/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc under a bounded load of many simulated devices (issue 11 "Load"): one process simulates them
 * (bench/evc-sim.c: software keys, real wire messages), a few client threads each with a keep-alive TLS
 * connection to the real "evc serve" on 127.0.0.1 cycle through their devices, and each device round is
 * NONCE → QUOTE → STORE_KEYS (an escrow entry unique to device and round) → config request with the fresh
 * integrity token (200 or 304), for a fixed time. evc's RSS is sampled every few seconds. Afterwards evc is
 * stopped and its database read: every device holds exactly the escrow of its last acknowledged STORE_KEYS.
 * Goals: 0 errors, 0 lost escrow records, RSS flat (the last sample within 20% + 8 MiB of the one after the
 * first quarter of the run).
 *
 * CI runs a short version (defaults: 200 devices, 30 s). The long one:
 *   EVE_SOAK_DEVICES=2000 EVE_SOAK_SECONDS=600 meson test -C BUILD --timeout-multiplier 4 test-evc-soak -v
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>

#include "config.pb-c.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "evc-sim.h"
#include "evc.h"
#include "fixtures.h"
#include "proto-util.h"

#define CLIENTS 8U
#define RSS_SAMPLES_MAX 4096U

typedef struct SoakDevice {
        SimDevice *sim;
        gnutls_privkey_t key;
        uint8_t hash[32];
        char config_hash[80];
        char last_escrow[64]; /* of the last acknowledged STORE_KEYS */
        unsigned rounds;
} SoakDevice;

typedef struct Soak {
        SoakDevice *dev;
        unsigned n_dev;
        unsigned port;
        char *root_pem;
        double deadline;
        pthread_mutex_t lock;
        unsigned errors, rounds, config_200, config_304;
        char first_error[200];
} Soak;

typedef struct Client {
        Soak *soak;
        unsigned index;
} Client;

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

typedef struct Buf {
        char *p;
        size_t n;
} Buf;

/* POSTs body (taking it) to path on the client's connection; the answer lands in *ret through a memory
 * stream (curl's default writer). Returns the HTTP status, 0 when no answer came. */
static long
                post(Soak *s,
                     CURL *c,
                     struct curl_slist *h,
                     const char *path,
                     uint8_t *body,
                     size_t n,
                     Buf *ret) {
        char url[256];
        long status = 0;
        FILE *f;

        snprintf(url, sizeof url, "https://127.0.0.1:%u/api/v2/edgedevice/%s", s->port, path);
        *ret = (Buf){};
        f = open_memstream(&ret->p, &ret->n);
        ASSERT_NOT_NULL(f);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) n);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        fclose(f);
        free(body);
        return status;
}

static bool fail(Soak *s, SoakDevice *d, const char *what, long status) {
        pthread_mutex_lock(&s->lock);
        if (s->errors++ == 0)
                snprintf(s->first_error,
                         sizeof s->first_error,
                         "device %s: %s (HTTP %ld)",
                         d->sim->uuid,
                         what,
                         status);
        pthread_mutex_unlock(&s->lock);
        return false;
}

/* An attest exchange: the answer's ZAttestResponse (signature not checked here: test-evc does). */
static Org__Lfedge__Eve__Attest__ZAttestResponse *
                exchange(Soak *s,
                         SoakDevice *d,
                         CURL *c,
                         struct curl_slist *h,
                         const char *path,
                         uint8_t *body,
                         size_t n,
                         const char *what) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *r = NULL;
        Buf b;
        long st = post(s, c, h, path, body, n, &b);

        if (st != 200 && st != 201) {
                free(b.p);
                fail(s, d, what, st);
                return NULL;
        }
        if (sim_open_attest(NULL, b.p, b.n, &r) < 0)
                fail(s, d, what, st);
        free(b.p);
        return r;
}

static bool round_of(Soak *s, SoakDevice *d, unsigned index, CURL *c, struct curl_slist *h) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *r;
        Org__Lfedge__Eve__Config__ConfigRequest cr = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;
        _cleanup_free_ uint8_t *payload = NULL;
        char path[96], cpath[96], escrow[64], vault[37];
        uint8_t nonce[32], *b;
        size_t n;
        Buf resp;
        long st;
        bool ok;

        snprintf(path, sizeof path, "id/%s/attest", d->sim->uuid);
        if (d->rounds == 0) {
                if (sim_req_certs(d->sim, &b, &n) < 0)
                        return fail(s, d, "building CERT", 0);
                r = exchange(s, d, c, h, path, b, n, "CERT");
                if (!r)
                        return false;
                proto_free(r);
        }
        if (sim_req_nonce(d->sim, &b, &n) < 0)
                return fail(s, d, "building NONCE", 0);
        r = exchange(s, d, c, h, path, b, n, "NONCE");
        if (!r)
                return false;
        ok = r->nonce && r->nonce->nonce.len == sizeof nonce;
        if (ok)
                memcpy(nonce, r->nonce->nonce.data, sizeof nonce);
        proto_free(r);
        if (!ok)
                return fail(s, d, "NONCE without a nonce", 0);
        if (sim_req_quote(d->sim, nonce, sizeof nonce, &b, &n) < 0)
                return fail(s, d, "building QUOTE", 0);
        r = exchange(s, d, c, h, path, b, n, "QUOTE");
        if (!r)
                return false;
        ok = r->quoteresp &&
                        r->quoteresp->response ==
                                        ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS &&
                        r->quoteresp->integrity_token.len == sizeof d->sim->token;
        if (ok) {
                memcpy(d->sim->token, r->quoteresp->integrity_token.data, sizeof d->sim->token);
                d->sim->have_token = true;
        }
        proto_free(r);
        if (!ok)
                return fail(s, d, "QUOTE not SUCCESS", 0);

        snprintf(escrow, sizeof escrow, "escrow %u/%u", index, d->rounds);
        snprintf(vault, sizeof vault, "50a10000-0000-4000-8000-%012u", index);
        if (sim_req_store_keys(d->sim, escrow, vault, &b, &n) < 0)
                return fail(s, d, "building STORE_KEYS", 0);
        r = exchange(s, d, c, h, path, b, n, "STORE_KEYS");
        if (!r)
                return false;
        ok = r->storage_keys_resp &&
                        r->storage_keys_resp->response ==
                                        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS;
        proto_free(r);
        if (!ok)
                return fail(s, d, "STORE_KEYS not SUCCESS", 0);
        memcpy(d->last_escrow, escrow, sizeof escrow);

        /* The config, with the token just issued; the hash of what this device holds (304 when unchanged).
         */
        cr.integrity_token = (ProtobufCBinaryData){ sizeof d->sim->token, d->sim->token };
        cr.confighash = d->config_hash;
        if (PROTO_PACK(&cr, &payload, &n) < 0 ||
            controller_envelope_seal(d->key, d->hash, NULL, payload, n, &b, &n) < 0)
                return fail(s, d, "building the config request", 0);
        snprintf(cpath, sizeof cpath, "id/%s/config", d->sim->uuid);
        st = post(s, c, h, cpath, b, n, &resp);
        if (st == 200) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
                _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *cfg = NULL;
                ok = controller_envelope_parse(resp.p, resp.n, 1 << 20, &ac) >= 0 &&
                                PROTO_UNPACK(&org__lfedge__eve__config__config_response__descriptor,
                                             ac->protectedpayload->payload.data,
                                             ac->protectedpayload->payload.len,
                                             1 << 20,
                                             &cfg) >= 0 &&
                                cfg->config;
                if (ok)
                        snprintf(d->config_hash, sizeof d->config_hash, "%s", cfg->confighash);
        } else
                ok = st == 304;
        free(resp.p);
        if (!ok)
                return fail(s, d, "config", st);
        pthread_mutex_lock(&s->lock);
        s->rounds++;
        if (st == 200)
                s->config_200++;
        else
                s->config_304++;
        pthread_mutex_unlock(&s->lock);
        d->rounds++;
        return true;
}

static void *client_main(void *p) {
        Client *cl = p;
        Soak *s = cl->soak;
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;

        h = curl_slist_append(h, "Content-Type: application/x-proto-binary");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c, CURLOPT_CAINFO, s->root_pem);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        /* Each client serves the devices i ≡ index (mod CLIENTS), in turn, until the deadline. */
        for (unsigned i = cl->index; now_s() < s->deadline; i += CLIENTS) {
                if (i >= s->n_dev)
                        i = cl->index;
                (void) round_of(s, &s->dev[i], i, c, h);
        }
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return NULL;
}

static long rss_kib(pid_t pid) {
        _cleanup_free_ char *path = NULL;
        char line[256];
        long v = -1;
        FILE *f;

        ASSERT_OK(asprintf(&path, "/proc/%d/status", (int) pid));
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
                        break;
        fclose(f);
        return v;
}

static unsigned env_unsigned(const char *name, unsigned def) {
        const char *v = getenv(name);
        return v && *v ? (unsigned) strtoul(v, NULL, 10) : def;
}

TEST(evc_soak_many_devices_attest_and_fetch_config) {
        unsigned n_dev = env_unsigned("EVE_SOAK_DEVICES", 200),
                 seconds = env_unsigned("EVE_SOAK_SECONDS", 30);
        _cleanup_free_ char *dir = test_mkdtemp("soak"), *evc_bin = NULL, *portf = NULL, *logf = NULL,
                            *db = NULL;
        long rss[RSS_SAMPLES_MAX];
        size_t n_rss = 0;
        Soak s = { .n_dev = n_dev, .lock = PTHREAD_MUTEX_INITIALIZER };
        Client clients[CLIENTS];
        pthread_t tids[CLIENTS];
        unsigned lost = 0;
        double t0, next_sample;
        pid_t pid;

        ASSERT_GE(n_dev, CLIENTS);
        ASSERT_OK(asprintf(&evc_bin, "%s/controller/evc", getenv("EVE_TEST_BUILDDIR") ?: "."));
        ASSERT_OK(asprintf(&s.root_pem, "%s/certs/root.pem", dir));
        ASSERT_OK(asprintf(&portf, "%s/port", dir));
        ASSERT_OK(asprintf(&logf, "%s/evc.log", dir));
        ASSERT_OK(evc_init_dir(dir));
        s.dev = calloc(n_dev, sizeof *s.dev);
        ASSERT_NOT_NULL(s.dev);
        t0 = now_s();
        {
                /* The devices, added the administrator's way (evc_device_add, what 'evc device add' runs).
                 */
                _cleanup_(evc_freep) Evc *e = NULL;
                ASSERT_OK(evc_load(dir, &e));
                for (unsigned i = 0; i < n_dev; i++) {
                        SoakDevice *d = &s.dev[i];
                        _cleanup_free_ char *pem = NULL, *name = NULL, *uuid = NULL;
                        size_t n;

                        ASSERT_OK(asprintf(&name, "d%u", i));
                        ASSERT_OK(sim_device_new(dir, name, &d->sim));
                        ASSERT_OK(crypto_read_file(d->sim->cert_path, false, &pem, &n));
                        ASSERT_OK(evc_device_add(e, pem, n, NULL, &uuid));
                        snprintf(d->sim->uuid, sizeof d->sim->uuid, "%s", uuid);
                        ASSERT_OK(gnutls_privkey_init(&d->key));
                        ASSERT_OK(gnutls_privkey_import_x509(d->key, d->sim->key, 0));
                        ASSERT_OK(crypto_cert_hash_der(d->sim->crt, d->hash));
                }
        }
        printf("soak: %u devices made in %.1f s\n", n_dev, now_s() - t0);
        {
                char *argv[] = { evc_bin,
                                 (char *) "serve",
                                 (char *) "--dir",
                                 dir,
                                 (char *) "--listen",
                                 (char *) "127.0.0.1:0",
                                 (char *) "--port-file",
                                 portf,
                                 NULL };
                _cleanup_free_ char *asan = strdup(getenv("ASAN_OPTIONS") ?: "");
                /* Under AddressSanitizer, freed memory sits in a quarantine of up to 256 MiB before it is
                 * reused, which would read as growth: a small quarantine keeps RSS meaningful. */
                ASSERT_OK(
                                setenv("ASAN_OPTIONS",
                                       "quarantine_size_mb=1:thread_local_quarantine_size_kb=64",
                                       1));
                pid = test_spawn(argv, logf, -1);
                ASSERT_OK(setenv("ASAN_OPTIONS", asan, 1));
                ASSERT_GE(pid, 1);
        }
        for (unsigned i = 0; i < 200 && access(portf, F_OK) < 0; i++)
                usleep(50000);
        {
                _cleanup_free_ char *p = NULL;
                size_t n;
                ASSERT_OK(crypto_read_file(portf, false, &p, &n));
                s.port = (unsigned) strtoul(p, NULL, 10);
                ASSERT_GE(s.port, 1u);
        }

        ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        t0 = now_s();
        s.deadline = t0 + seconds;
        for (unsigned i = 0; i < CLIENTS; i++) {
                clients[i] = (Client){ .soak = &s, .index = i };
                ASSERT_EQ(pthread_create(&tids[i], NULL, client_main, &clients[i]), 0);
        }
        next_sample = t0;
        while (now_s() < s.deadline) {
                if (now_s() >= next_sample && n_rss < RSS_SAMPLES_MAX) {
                        rss[n_rss++] = rss_kib(pid);
                        next_sample += MAX(1.0, seconds / 60.0);
                }
                usleep(200000);
        }
        for (unsigned i = 0; i < CLIENTS; i++)
                ASSERT_EQ(pthread_join(tids[i], NULL), 0);
        rss[n_rss++] = rss_kib(pid);
        ASSERT_EQ(test_stop_process(pid, 10000), 0);

        /* The store: every device holds exactly the escrow of its last acknowledged STORE_KEYS. */
        ASSERT_OK(asprintf(&db, "%s/evc.db", dir));
        {
                sqlite3 *h;
                sqlite3_stmt *st;
                ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
                ASSERT_EQ(sqlite3_prepare_v2(
                                          h,
                                          "SELECT e.key_msg FROM escrow e JOIN devices d ON d.id = "
                                          "e.device_id "
                                          "WHERE d.uuid = ?",
                                          -1,
                                          &st,
                                          NULL),
                          SQLITE_OK);
                for (unsigned i = 0; i < n_dev; i++) {
                        SoakDevice *d = &s.dev[i];
                        bool found = false;

                        sqlite3_reset(st);
                        sqlite3_bind_text(st, 1, d->sim->uuid, -1, SQLITE_STATIC);
                        while (sqlite3_step(st) == SQLITE_ROW) {
                                const void *k = sqlite3_column_blob(st, 0);
                                size_t n = (size_t) sqlite3_column_bytes(st, 0);
                                found = found ||
                                                (d->last_escrow[0] &&
                                                 memmem(k, n, d->last_escrow, strlen(d->last_escrow)));
                        }
                        if (d->last_escrow[0] && !found)
                                lost++;
                }
                sqlite3_finalize(st);
                sqlite3_close(h);
        }

        {
                unsigned quarter = (unsigned) n_rss / 4, rounds_done = 0;
                long lo = rss[0], hi = rss[0];
                for (size_t i = 0; i < n_rss; i++) {
                        lo = MIN(lo, rss[i]);
                        hi = MAX(hi, rss[i]);
                }
                for (unsigned i = 0; i < n_dev; i++)
                        rounds_done += s.dev[i].rounds > 0;
                printf("soak: %u devices (%u reached), %u s, %u rounds (%.1f/s; config 200: %u, 304: %u), "
                       "%u "
                       "errors%s%s, %u escrow records lost; evc RSS KiB: start %ld, after a quarter %ld, "
                       "end "
                       "%ld, min %ld, max %ld (%zu samples)\n",
                       n_dev,
                       rounds_done,
                       seconds,
                       s.rounds,
                       s.rounds / (now_s() - t0),
                       s.config_200,
                       s.config_304,
                       s.errors,
                       s.errors ? ", first: " : "",
                       s.first_error,
                       lost,
                       rss[0],
                       rss[quarter],
                       rss[n_rss - 1],
                       lo,
                       hi,
                       n_rss);
                fflush(stdout);
                ASSERT_EQ(s.errors, 0u);
                ASSERT_EQ(lost, 0u);
                ASSERT_EQ(rounds_done, n_dev);
                ASSERT_LE(rss[n_rss - 1], rss[quarter] + rss[quarter] / 5 + 8192);
        }
        for (unsigned i = 0; i < n_dev; i++) {
                gnutls_privkey_deinit(s.dev[i].key);
                sim_device_free(s.dev[i].sim);
        }
        free(s.dev);
        free(s.root_pem);
        curl_global_cleanup();
}

DEFINE_TEST_MAIN
