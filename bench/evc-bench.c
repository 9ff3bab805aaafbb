/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-bench: how fast evc verifies attestations on one core, next to the floor it cannot beat, in one run.
 * The verifier runs in process (no TLS, no HTTP) on one thread with its real SQLite store (WAL) in a
 * temporary directory; a simulated device (bench/evc-sim.c) sends what an EVE node sends. quote
 * verification: one QUOTE request handled, everything included: the envelope's ECDSA verification, the
 *     TPMS_ATTEST parse, the nonce, the quote's ECDSA verification, the PCR digest, the judgement against
 * the stored baseline, the token and last-attestation write committed to the store (without fsync: see
 *     docs/CONTROLLER.md), the escrow read, the signed response;
 *   attestation round: NONCE + QUOTE (the NONCE adds one envelope verification and one signature, no store
 * write); STORE_KEYS: a token check and an escrow write committed with fsync (for reference); raw verify:
 * one gnutls_pubkey_verify_hash2 of an ECDSA P-256 signature with the public key already imported. Only the
 * controller's side is timed; the device's signing is not. Usage: evc-bench [SECONDS, default 3: as long for
 * the quotes and for the raw verifications, interleaved]. Not a test. */
#include <ftw.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <time.h>

#include "evc-server.h"
#include "evc-sim.h"
#include "evc.h"
#include "log.h"
#include "proto-util.h"

#define GOAL 0.25

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static _noreturn_ void die(const char *what) {
        fprintf(stderr, "evc-bench: %s failed\n", what);
        exit(EXIT_FAILURE);
}

/* Handles one request in process; *elapsed += the controller's time. */
static Org__Lfedge__Eve__Attest__ZAttestResponse *
                call(Evc *e, SimDevice *d, uint8_t *body, size_t n, double *elapsed) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        EvcReply reply = {};
        double t0 = now_s();

        if (evc_handle_attest(e, d->uuid, body, n, &reply) != MHD_HTTP_CREATED)
                die("attest request");
        if (elapsed)
                *elapsed += now_s() - t0;
        free(body);
        if (sim_open_attest(NULL, reply.body, reply.size, &resp) < 0)
                die("response");
        evc_reply_done(&reply);
        return resp;
}

/* NONCE then QUOTE; the time of the QUOTE alone goes to quote_time, of both to round_time. */
static void round_trip(Evc *e, SimDevice *d, double *quote_time, double *round_time) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp;
        uint8_t nonce[32], *b;
        size_t n;
        double q = 0;

        if (sim_req_nonce(d, &b, &n) < 0)
                die("nonce request");
        resp = call(e, d, b, n, round_time);
        if (!resp->nonce || resp->nonce->nonce.len != sizeof nonce)
                die("nonce");
        memcpy(nonce, resp->nonce->nonce.data, sizeof nonce);
        proto_free(resp);
        if (sim_req_quote(d, nonce, sizeof nonce, &b, &n) < 0)
                die("quote request");
        resp = call(e, d, b, n, &q);
        if (resp->quoteresp->response !=
            ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS)
                die("attestation");
        memcpy(d->token, resp->quoteresp->integrity_token.data, sizeof d->token);
        d->have_token = true;
        proto_free(resp);
        if (quote_time)
                *quote_time += q;
        if (round_time)
                *round_time += q;
}

static void report(const char *measure, double ours_per_s, double anchor_per_s, const char *goal) {
        /* The line bench/run collects: measure, ours, anchor, ratio, goal. */
        printf("BENCH\t%s\t%.0f/s\t%.0f/s\t%.3f\t%s\n",
               measure,
               ours_per_s,
               anchor_per_s,
               ours_per_s / anchor_per_s,
               goal);
}

/* Side by side: 50 ms slices of quote rounds and of raw verifications take turns for 2 × secs, so that both
 * see the same machine (it is shared and noisy). Adds to the times and counts. */
static void
                measure(Evc *e,
                        SimDevice *d,
                        gnutls_pubkey_t pub,
                        const gnutls_datum_t *h,
                        const gnutls_datum_t *sig,
                        double secs,
                        double *quote_time,
                        double *round_time,
                        double *verify_time,
                        unsigned long *quotes,
                        unsigned long *rounds,
                        unsigned long *verifies) {
        double t0 = now_s();

        do {
                double s0 = now_s();
                do {
                        round_trip(e, d, quote_time, round_time);
                        (*quotes)++;
                        (*rounds)++;
                } while (now_s() - s0 < 0.05);
                s0 = now_s();
                do {
                        for (int i = 0; i < 20; i++)
                                if (gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, h, sig) < 0)
                                        die("raw verify");
                        *verifies += 20;
                } while (now_s() - s0 < 0.05);
                *verify_time += now_s() - s0;
        } while (now_s() - t0 < 2 * secs);
}

/* Grows the store to n devices with rows as a fleet leaves them (device with certificate and attestation
 * state, 16 baseline PCRs, an escrow record, two events), written directly in one transaction: enrolling
 * each through evc would make a certificate per device. The benchmark's own device stays the one attesting.
 */
static void grow_store(Evc *e, unsigned have, unsigned n) {
        sqlite3 *db = evc_db(e)->db;
        sqlite3_stmt *dev = NULL, *base = NULL, *esc = NULL, *ev = NULL;
        uint8_t blob[64];

        memset(blob, 0xa5, sizeof blob);
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(
                            db,
                            "INSERT INTO devices (uuid, cert_hash, cert_pem, registered, trust, itoken, "
                            "last_pcrs, last_attest, last_result, created) "
                            "VALUES (?, ?, 'filler', 1, 'trusted', ?, ?, 0, 'ok', 0)",
                            -1,
                            &dev,
                            NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(
                            db,
                            "INSERT INTO baseline (device_id, pcr, value) VALUES (?, ?, ?)",
                            -1,
                            &base,
                            NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(
                            db,
                            "INSERT INTO escrow (device_id, seq, key_msg, stored) VALUES (?, 1, ?, 0)",
                            -1,
                            &esc,
                            NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(
                            db,
                            "INSERT INTO events (time, device_id, what) VALUES (0, ?, 'filler')",
                            -1,
                            &ev,
                            NULL) != SQLITE_OK)
                die("filler statements");
        for (unsigned i = have; i < n; i++) {
                char uuid[37];
                sqlite3_int64 id;

                (void) snprintf(uuid, sizeof uuid, "f111e700-0000-4000-8000-%012u", i);
                memcpy(blob, &i, sizeof i);
                sqlite3_bind_text(dev, 1, uuid, -1, SQLITE_TRANSIENT);
                sqlite3_bind_blob(dev, 2, blob, 32, SQLITE_TRANSIENT);
                sqlite3_bind_blob(dev, 3, blob, 32, SQLITE_TRANSIENT);
                sqlite3_bind_blob(dev, 4, blob, 64, SQLITE_TRANSIENT);
                if (sqlite3_step(dev) != SQLITE_DONE)
                        die("filler device");
                sqlite3_reset(dev);
                id = sqlite3_last_insert_rowid(db);
                for (int pcr = 0; pcr < 16; pcr++) {
                        sqlite3_bind_int64(base, 1, id);
                        sqlite3_bind_int(base, 2, pcr);
                        sqlite3_bind_blob(base, 3, blob, 32, SQLITE_TRANSIENT);
                        if (sqlite3_step(base) != SQLITE_DONE)
                                die("filler baseline");
                        sqlite3_reset(base);
                }
                sqlite3_bind_int64(esc, 1, id);
                sqlite3_bind_blob(esc, 2, blob, 64, SQLITE_TRANSIENT);
                if (sqlite3_step(esc) != SQLITE_DONE)
                        die("filler escrow");
                sqlite3_reset(esc);
                for (int k = 0; k < 2; k++) {
                        sqlite3_bind_int64(ev, 1, id);
                        if (sqlite3_step(ev) != SQLITE_DONE)
                                die("filler event");
                        sqlite3_reset(ev);
                }
        }
        sqlite3_finalize(dev);
        sqlite3_finalize(base);
        sqlite3_finalize(esc);
        sqlite3_finalize(ev);
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                die("filler commit");
}

int main(int argc, char **argv) {
        char dir[] = "/tmp/evc-bench.XXXXXX";
        _cleanup_(evc_freep) Evc *e = NULL;
        _cleanup_free_ char *uuid = NULL;
        _cleanup_free_ uint8_t *pem = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t pk = NULL;
        _cleanup_(gnutls_datum_freep) gnutls_datum_t sig = {};
        SimDevice *d = NULL;
        size_t pem_size, n;
        double secs = argc > 1 ? atof(argv[1]) : 3.0, t0, quote_time = 0, round_time = 0, store_time = 0,
               verify_time = 0;
        unsigned long quotes = 0, rounds = 0, stores = 0, verifies = 0;
        uint8_t digest[32] = { 1, 2, 3 }, *b;
        gnutls_datum_t h = { .data = digest, .size = sizeof digest };

        log_set_max_level(LOG_WARNING);
        if (!(secs > 0))
                secs = 3.0;
        if (!mkdtemp(dir) || evc_init_dir(dir) < 0 || evc_load(dir, &e) < 0)
                die("controller setup");
        if (sim_device_new(dir, "bench-device", &d) < 0 ||
            evc_read_file(d->cert_path, &pem, &pem_size) < 0 ||
            evc_device_add(e, (const char *) pem, pem_size, "BENCH", &uuid) < 0)
                die("device setup");
        memcpy(d->uuid, uuid, sizeof d->uuid);
        if (sim_req_certs(d, &b, &n) < 0)
                die("certs request");
        proto_free(call(e, d, b, n, NULL));
        round_trip(e, d, NULL, NULL); /* the first one records the baseline (with fsync) */
        if (sim_req_store_keys(d, "bench escrow", "b0b0b0b0-0000-4000-8000-000000000001", &b, &n) < 0)
                die("store request");
        proto_free(call(e, d, b, n, NULL));

        /* The floor: raw ECDSA P-256 verifications, key imported once, DER signature as a TPM's. */
        if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, d->ak, 0) < 0 ||
            gnutls_privkey_init(&pk) < 0 || gnutls_privkey_import_x509(pk, d->ak_key, 0) < 0 ||
            gnutls_privkey_sign_hash(pk, GNUTLS_DIG_SHA256, 0, &h, &sig) < 0)
                die("raw signature");

        measure(e,
                d,
                pub,
                &h,
                &sig,
                secs,
                &quote_time,
                &round_time,
                &verify_time,
                &quotes,
                &rounds,
                &verifies);

        /* STORE_KEYS, durable (a reference figure: it is dominated by the fsync). */
        t0 = now_s();
        do {
                Org__Lfedge__Eve__Attest__ZAttestResponse *resp;
                if (sim_req_store_keys(d, "bench escrow", NULL, &b, &n) < 0)
                        die("store request");
                resp = call(e, d, b, n, &store_time);
                if (resp->storage_keys_resp->response !=
                    ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS)
                        die("store keys");
                proto_free(resp);
                stores++;
        } while (now_s() - t0 < secs / 2);

        /* How the rate holds as the store grows: 10, 1,000, 100,000 devices, each size measured against the
         * raw verifications beside it. The verifier's lookups are by key: the ratio should stay flat. */
        static const unsigned sizes[] = { 10, 1000, 100000 };
        double size_ratio[ELEMENTSOF(sizes)];
        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                double qt = 0, rt = 0, vt = 0, g0 = now_s();
                unsigned long nq = 0, nr = 0, nv = 0;

                grow_store(e, k == 0 ? 1 : sizes[k - 1], sizes[k]);
                printf("store grown to %u devices in %.1f s\n", sizes[k], now_s() - g0);
                measure(e, d, pub, &h, &sig, secs / 2, &qt, &rt, &vt, &nq, &nr, &nv);
                size_ratio[k] = ((double) nq / qt) / ((double) nv / vt);
                printf("  %6u devices: %6.0f quote verifications/s, %6.0f raw verifies/s, ratio %.3f\n",
                       sizes[k],
                       (double) nq / qt,
                       (double) nv / vt,
                       size_ratio[k]);
        }

        double qrate = (double) quotes / quote_time, rrate = (double) rounds / round_time,
               srate = (double) stores / store_time, vrate = (double) verifies / verify_time;
        printf("evc quote verification (QUOTE: 2 ECDSA verifies, 1 sign, store commit without fsync): "
               "%6.0f/s (%.3f ms)\n",
               qrate,
               1000.0 / qrate);
        printf("evc attestation round (NONCE + QUOTE: 3 verifies, 2 signs, 1 commit):               %6.0f/s "
               "(%.3f ms)\n",
               rrate,
               1000.0 / rrate);
        printf("evc STORE_KEYS (token check, escrow + share kept, commit with fsync):               %6.0f/s "
               "(%.3f ms)\n",
               srate,
               1000.0 / srate);
        printf("raw ECDSA P-256 verify (GnuTLS, key imported once):                                 %6.0f/s "
               "(%.3f ms)\n",
               vrate,
               1000.0 / vrate);
        printf("ratio quote verifications / raw verifies: %.3f (goal >= %.2f: %s)\n",
               qrate / vrate,
               GOAL,
               qrate / vrate >= GOAL ? "met" : "NOT met");
        printf("ratio attestation rounds / raw verifies:  %.3f\n", rrate / vrate);
        report("evc quote verifications/s vs raw ECDSA P-256 verify/s", qrate, vrate, ">=0.25");
        report("evc NONCE+QUOTE rounds/s vs raw ECDSA P-256 verify/s", rrate, vrate, "report");
        report("evc STORE_KEYS (fsync) /s vs raw ECDSA P-256 verify/s", srate, vrate, "report");
        for (size_t k = 1; k < ELEMENTSOF(sizes); k++) {
                char m[96];
                (void) snprintf(m,
                                sizeof m,
                                "evc quote rate (per raw verify), %u vs %u devices in store",
                                sizes[k],
                                sizes[0]);
                /* Rate relative to the raw verifications beside it, at n devices against at 10: flat = 1. */
                printf("BENCH\t%s\t%.3f\t%.3f\t%.3f\t>=0.8\n",
                       m,
                       size_ratio[k],
                       size_ratio[0],
                       size_ratio[k] / size_ratio[0]);
        }

        sim_device_free(d);
        e = evc_free(e);
        (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
