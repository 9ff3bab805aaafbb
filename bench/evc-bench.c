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

        /* Side by side: 50 ms slices of quote rounds and of raw verifications take turns, so that both see
         * the same machine (it is shared and noisy). */
        t0 = now_s();
        do {
                double s0 = now_s();
                do {
                        round_trip(e, d, &quote_time, &round_time);
                        quotes++;
                        rounds++;
                } while (now_s() - s0 < 0.05);
                s0 = now_s();
                do {
                        for (int i = 0; i < 20; i++)
                                if (gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &h, &sig) <
                                    0)
                                        die("raw verify");
                        verifies += 20;
                } while (now_s() - s0 < 0.05);
                verify_time += now_s() - s0;
        } while (now_s() - t0 < 2 * secs);

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

        sim_device_free(d);
        e = evc_free(e);
        (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
