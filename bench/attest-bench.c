/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* attest-bench: the device's cost of one attestation round (CERT, NONCE, QUOTE, STORE_KEYS), split the way
 * it matters on a node:
 *   1. CPU time of everything eve-attestd does itself, TPM and network excluded: reading the certificates
 * and the event log, gzip, building and packing the four requests, SHA-256 for the TPM to sign, wrapping the
 *      signatures into AuthContainers, checking the four answers (envelope signature by the controller's
 * signing certificate: ECDSA P-256 verify, protobuf parsing, nonce, token and keys), keeping the token
 * (secret memory and the 0600 file). The same library code the daemon runs (libeve-attest-core,
 * controller-client.c), on answers signed as evc signs them. Goal ≤ 5 ms; the anchor line puts it in raw
 * ECDSA verifications.
 *   2. TPM commands per round, counted on a swtpm (started here unless --tcti): the steps eve-attestd takes,
 * each opening the TPM for itself (CERT: EK public + signature; NONCE: signature; QUOTE: quote, PCRs 0–23,
 *      signature; STORE_KEYS: signature). eve-attestd logs the same count at the end of every round.
 * Not counted: TLS and HTTP (curl), D-Bus calls to eve-vaultd. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <time.h>

#include "attest-msg.h"
#include "bench-swtpm.h"
#include "bench.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "evc-crypto.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "proto-util.h"

static const char *arg_tcti = NULL;
static unsigned arg_rounds = 300;
static unsigned arg_eventlog_kib = 32;

extern char **environ;

static double cpu_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sha256(const void *p, size_t n, uint8_t ret[static 32]) {
        struct sha256_ctx h;
        sha256_init(&h);
        sha256_update(&h, n, p);
        sha256_digest(&h, 32, ret);
}

#define CHECK(expr)                                                         \
        do {                                                                \
                int _r = (expr);                                            \
                if (_r < 0)                                                 \
                        return log_error_errno(_r, "%s failed: %m", #expr); \
        } while (0)

/* ---- the fixture: certificates, an event log, the controller's signed answers ---- */

typedef struct Bench {
        char dir[64];
        char *certs_dir, *eventlog, *location, *token_path;
        gnutls_x509_crt_t dev_crt, ctl_crt;
        gnutls_x509_privkey_t dev_key, ctl_key;
        gnutls_pubkey_t ctl_pub;
        char *ctl_pem;
        size_t ctl_pem_size;
        uint8_t dev_hash[32];
        uint8_t *answer[4]; /* packed AuthContainers: CERT, NONCE, QUOTE, STORE_KEYS */
        size_t answer_size[4];
        AttestQuote quote;
} Bench;

static int gen(Bench *b,
               const char *name,
               EvcCertKind kind,
               gnutls_x509_crt_t issuer,
               gnutls_x509_privkey_t ikey,
               gnutls_x509_crt_t *ret_crt,
               gnutls_x509_privkey_t *ret_key,
               const char *file) {
        _cleanup_free_ char *c = NULL, *k = NULL;
        gnutls_x509_crt_t crt = NULL;
        gnutls_x509_privkey_t key = NULL;
        int r;

        if (asprintf(&c, "%s/%s", b->certs_dir, file) < 0 || asprintf(&k, "%s/%s.key", b->dir, name) < 0)
                return -ENOMEM;
        r = evc_generate_cert(kind, name, issuer, ikey, c, k, &crt, &key);
        if (r < 0)
                return r;
        if (ret_crt)
                *ret_crt = crt;
        else
                gnutls_x509_crt_deinit(crt);
        if (ret_key)
                *ret_key = key;
        else
                gnutls_x509_privkey_deinit(key);
        return 0;
}

/* A synthetic crypto-agile event log of about kib KiB: UEFI-like events (SHA-256 digests, UTF-16 variable
 * names, device-path-like bytes). */
static int write_eventlog(const char *path, unsigned kib) {
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        static const char *const names[] = {
                "BootOrder", "Boot0001", "SecureBoot", "PK", "KEK", "db", "dbx"
        };
        uint32_t v = 12345;
        size_t written = 0;

        if (!f)
                return -errno;
        for (unsigned i = 0; written < (size_t) kib * 1024; i++) {
                uint8_t hdr[4 + 4 + 4 + 2], digest[32], data[512];
                size_t n = 0;
                uint32_t pcr = i % 8, type = 0x80000001 + i % 3, size;

                for (size_t k = 0; k < sizeof digest; k++)
                        digest[k] = (uint8_t) ((v = v * 1103515245U + 12345U) >> 16);
                for (const char *p = names[i % ELEMENTSOF(names)]; *p && n + 2 < sizeof data; p++) {
                        data[n++] = (uint8_t) *p;
                        data[n++] = 0;
                }
                for (; n < 96 + (i % 5) * 64 && n < sizeof data; n++) {
                        if (n % 7 == 0)
                                v = v * 1103515245U + 12345U;
                        data[n] = (uint8_t) (n % 7 == 0 ? v >> 24 : n & 0x3f);
                }
                size = (uint32_t) n;
                memcpy(hdr, &pcr, 4);
                memcpy(hdr + 4, &type, 4);
                memcpy(hdr + 8, &(uint32_t){ 1 }, 4);
                memcpy(hdr + 12, &(uint16_t){ 0x000b }, 2);
                if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr || fwrite(digest, 1, 32, f) != 32 ||
                    fwrite(&size, 1, 4, f) != 4 || fwrite(data, 1, n, f) != n)
                        return -EIO;
                written += sizeof hdr + 32 + 4 + n;
        }
        return fclose(TAKE_PTR(f)) == 0 ? 0 : -errno;
}

/* An answer as evc makes it: the payload signed with the controller's key, raw r‖s, senderCertHash =
 * SHA-256(signing PEM). */
static int controller_answer(Bench *b, const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t sig[64], h[32];
        size_t n;
        int r;

        r = proto_pack(msg, &payload, &n);
        if (r < 0)
                return r;
        r = evc_sign_raw(b->ctl_key, payload, n, sig);
        if (r < 0)
                return r;
        sha256(b->ctl_pem, b->ctl_pem_size, h);
        return controller_envelope_pack(h, NULL, payload, n, sig, sizeof sig, ret, ret_size);
}

static int bench_setup(Bench *b, unsigned eventlog_kib) {
        Org__Lfedge__Eve__Attest__ZAttestResponse resp = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        Org__Lfedge__Eve__Attest__ZAttestNonceResp nr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_NONCE_RESP__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuoteResp qr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE_RESP__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeysResp sr =
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESP__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey keys[2], *keyp[2];
        gnutls_x509_crt_t dummy;
        uint8_t nonce[32], token[32], blob[2][180];
        _cleanup_free_ char *pem_path = NULL;

        strcpy(b->dir, "/tmp/attest-bench.XXXXXX");
        if (!mkdtemp(b->dir))
                return -errno;
        if (asprintf(&b->certs_dir, "%s/certs", b->dir) < 0 ||
            asprintf(&b->eventlog, "%s/eventlog", b->dir) < 0 ||
            asprintf(&b->location, "%s/location", b->dir) < 0 ||
            asprintf(&b->token_path, "%s/token", b->dir) < 0)
                return -ENOMEM;
        if (mkdir(b->certs_dir, 0755) < 0)
                return -errno;
        CHECK(gen(b, "device", EVC_CERT_ROOT, NULL, NULL, &b->dev_crt, &b->dev_key, "device.cert.pem"));
        CHECK(gen(b, "ecdh", EVC_CERT_ECDH, b->dev_crt, b->dev_key, NULL, NULL, "ecdh.cert.pem"));
        CHECK(gen(b, "attest", EVC_CERT_SIGNING, b->dev_crt, b->dev_key, NULL, NULL, "attest.cert.pem"));
        CHECK(gen(b, "ek", EVC_CERT_SIGNING, b->dev_crt, b->dev_key, NULL, NULL, "ek.cert.pem"));
        CHECK(gen(b, "signing", EVC_CERT_SIGNING, NULL, NULL, &b->ctl_crt, &b->ctl_key, "../signing.pem"));
        CHECK(evc_crt_der_sha256(b->dev_crt, b->dev_hash));
        if (asprintf(&pem_path, "%s/signing.pem", b->dir) < 0)
                return -ENOMEM;
        CHECK(crypto_cert_load(pem_path, &dummy, &b->ctl_pem, &b->ctl_pem_size));
        gnutls_x509_crt_deinit(dummy);
        CHECK(gnutls_pubkey_init(&b->ctl_pub) < 0 ? -ENOMEM : 0);
        CHECK(gnutls_pubkey_import_x509(b->ctl_pub, b->ctl_crt, 0) < 0 ? -EBADMSG : 0);
        CHECK(write_eventlog(b->eventlog, eventlog_kib));
        {
                _cleanup_fclose_ FILE *f = fopen(b->location, "we");
                if (!f || fputs("48.8566 2.3522\n", f) < 0)
                        return -EIO;
        }

        CHECK(evc_random(nonce, sizeof nonce));
        CHECK(evc_random(token, sizeof token));
        CHECK(evc_random(blob, sizeof blob));
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT;
        CHECK(controller_answer(b, &resp.base, &b->answer[0], &b->answer_size[0]));
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE;
        nr.nonce = (ProtobufCBinaryData){ .len = sizeof nonce, .data = nonce };
        resp.nonce = &nr;
        CHECK(controller_answer(b, &resp.base, &b->answer[1], &b->answer_size[1]));
        resp.nonce = NULL;
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP;
        qr.response = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS;
        qr.integrity_token = (ProtobufCBinaryData){ .len = sizeof token, .data = token };
        for (unsigned i = 0; i < 2; i++) { /* the two default vaults' escrow entries */
                keys[i] = (Org__Lfedge__Eve__Attest__AttestVolumeKey)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT;
                keys[i].key_type = (Org__Lfedge__Eve__Attest__AttestVolumeKeyType) 17750;
                keys[i].key = (ProtobufCBinaryData){ .len = sizeof blob[i], .data = blob[i] };
                keyp[i] = &keys[i];
        }
        qr.n_keys = 2;
        qr.keys = keyp;
        resp.quoteresp = &qr;
        CHECK(controller_answer(b, &resp.base, &b->answer[2], &b->answer_size[2]));
        resp.quoteresp = NULL;
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS;
        sr.response = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS;
        resp.storage_keys_resp = &sr;
        CHECK(controller_answer(b, &resp.base, &b->answer[3], &b->answer_size[3]));

        /* What the TPM hands back from a quote: TPMS_ATTEST of a PCRs 0–15 quote, r‖s, 24 PCR values. */
        b->quote.attest_size = 145;
        b->quote.attest = malloc(b->quote.attest_size);
        if (!b->quote.attest)
                return -ENOMEM;
        CHECK(evc_random(b->quote.attest, b->quote.attest_size));
        CHECK(evc_random(b->quote.sig_rs, sizeof b->quote.sig_rs));
        b->quote.sig_rs[0] &= 0x7f;
        CHECK(evc_random(b->quote.pcrs, sizeof b->quote.pcrs));
        memcpy(b->quote.nonce, nonce, sizeof nonce);
        b->quote.nonce_size = sizeof nonce;
        return 0;
}

static void bench_done(Bench *b) {
        _cleanup_free_ char *cmd = NULL;

        for (unsigned i = 0; i < 4; i++)
                free(b->answer[i]);
        attest_quote_done(&b->quote);
        if (b->dev_crt)
                gnutls_x509_crt_deinit(b->dev_crt);
        if (b->ctl_crt)
                gnutls_x509_crt_deinit(b->ctl_crt);
        if (b->dev_key)
                gnutls_x509_privkey_deinit(b->dev_key);
        if (b->ctl_key)
                gnutls_x509_privkey_deinit(b->ctl_key);
        if (b->ctl_pub)
                gnutls_pubkey_deinit(b->ctl_pub);
        free(b->ctl_pem);
        if (b->dir[0] && asprintf(&cmd, "rm -rf '%s'", b->dir) >= 0)
                (void) !system(cmd);
        free(b->certs_dir);
        free(b->eventlog);
        free(b->location);
        free(b->token_path);
}

/* ---- one round, device side ---- */

/* A request as the client sends it: pack, SHA-256 for the TPM, then the envelope around the TPM's r‖s. */
static int request(Bench *b, const ProtobufCMessage *msg) {
        _cleanup_free_ uint8_t *payload = NULL, *body = NULL;
        uint8_t digest[32], rs[64] = { 1 };
        size_t n, bn;

        CHECK(proto_pack(msg, &payload, &n));
        sha256(payload, n, digest); /* what the TPM signs; its r‖s (TPM time) is a constant here */
        rs[0] ^= digest[0];
        CHECK(controller_envelope_pack(b->dev_hash, NULL, payload, n, rs, sizeof rs, &body, &bn));
        return 0;
}

/* An answer as the client checks it, then as attestd reads it. */
static int answer(Bench *b, unsigned i, int expected, Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        int r;

        CHECK(controller_envelope_parse(
                        b->answer[i], b->answer_size[i], CONTROLLER_RESPONSE_MAX_DEFAULT, &ac));
        r = controller_envelope_names(ac, b->ctl_pem, b->ctl_pem_size);
        if (r <= 0)
                return -ENOKEY;
        CHECK(controller_envelope_verify(ac, b->ctl_pub));
        return attest_response_parse(
                        ac->protectedpayload->payload.data,
                        ac->protectedpayload->payload.len,
                        expected,
                        ret);
}

static int round_device_side(Bench *b) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r_cert = NULL, *r_nonce = NULL,
                                                                         *r_quote = NULL, *r_store = NULL;
        AttestKeyEntry *keys = NULL;
        size_t n_keys = 0;
        uint8_t nonce[TPM2_NONCE_MAX], *token;
        size_t nonce_size;

        /* CERT */
        {
                AttestCertRequest req;
                CHECK(attest_cert_request_build(
                                &req, b->certs_dir, (const uint8_t *) "\x00\x02\xab\xcd", 4));
                CHECK(request(b, &req.req.base));
                attest_cert_request_done(&req);
                CHECK(answer(b, 0, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT, &r_cert));
        }
        /* NONCE */
        CHECK(request(b, attest_nonce_request()));
        CHECK(answer(b, 1, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE, &r_nonce));
        CHECK(attest_response_nonce(r_nonce, nonce, &nonce_size));
        /* QUOTE (the TPM's part is precomputed) */
        {
                _cleanup_(attest_extras_done) AttestExtras x = { .location_configured = true };
                AttestQuoteRequest req;

                CHECK(attest_eventlog_read(b->eventlog, &x.eventlog_gz, &x.eventlog_gz_size));
                CHECK(attest_versions(NULL, &x.eve_version, &x.firmware_version));
                x.location_present = attest_location_read(b->location, &x.latitude, &x.longitude) >= 0;
                CHECK(attest_quote_request_build(&req, &b->quote, &x));
                if (req.eventlog_dropped)
                        log_warning("The event log was dropped: shorten --eventlog-kib.");
                CHECK(request(b, &req.req.base));
                attest_quote_request_done(&req);
        }
        CHECK(answer(b, 2, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP, &r_quote));
        CHECK(attest_response_keys(r_quote->quoteresp, &keys, &n_keys));
        token = eve_secret_alloc(r_quote->quoteresp->integrity_token.len);
        if (!token)
                return log_oom();
        memcpy(token, r_quote->quoteresp->integrity_token.data, r_quote->quoteresp->integrity_token.len);
        CHECK(crypto_write_file_atomic(b->token_path, token, r_quote->quoteresp->integrity_token.len, 0600));
        /* STORE_KEYS with the escrow entries eve-vaultd gives (the same two blobs here) */
        {
                AttestStoreRequest req;
                CHECK(attest_store_request_build(
                                &req, token, r_quote->quoteresp->integrity_token.len, keys, n_keys));
                CHECK(request(b, &req.req.base));
        }
        CHECK(answer(b,
                     3,
                     ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS,
                     &r_store));
        eve_secret_free(token);
        attest_key_entries_free(keys, n_keys);
        return 0;
}

/* One raw ECDSA P-256 verification, the anchor. */
static int raw_verify(Bench *b) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;

        CHECK(controller_envelope_parse(
                        b->answer[1], b->answer_size[1], CONTROLLER_RESPONSE_MAX_DEFAULT, &ac));
        return controller_envelope_verify(ac, b->ctl_pub);
}

/* ---- TPM commands ---- */

/* The device signs a request: a context of its own, as the controller client does without a lent one. */
static int tpm_sign(const char *tcti, uint64_t *commands) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint8_t d[32] = { 1 }, rs[64];

        CHECK(tpm2_context_new(tcti, &c));
        CHECK(tpm2_sign_digest(c, TPM2_KEY_DEVICE, d, rs));
        *commands += tpm2_context_commands(c);
        return 0;
}

static int tpm_round(const char *tcti, uint64_t *ret, uint64_t steps[static 4]) {
        uint8_t nonce[32] = { 7 }, d[32] = { 2 }, rs[64];
        uint64_t n = 0;

        /* CERT: the EK's public area for the metadata, and the signature, on one context. */
        {
                _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
                _cleanup_free_ uint8_t *pub = NULL;
                size_t size;
                uint32_t h;

                CHECK(tpm2_context_new(tcti, &c));
                if (tpm2_ek_ensure(c, false, &h) >= 0)
                        CHECK(tpm2_persistent_public_marshal(c, h, &pub, &size));
                CHECK(tpm2_sign_digest(c, TPM2_KEY_DEVICE, d, rs));
                n += tpm2_context_commands(c);
        }
        steps[0] = n;
        CHECK(tpm_sign(tcti, &n)); /* NONCE */
        steps[1] = n - steps[0];
        /* QUOTE: quote, PCRs, signature on one context. */
        {
                _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
                AttestQuote q = {};

                CHECK(tpm2_context_new(tcti, &c));
                CHECK(attest_quote_collect(c, nonce, sizeof nonce, &q));
                attest_quote_done(&q);
                CHECK(tpm2_sign_digest(c, TPM2_KEY_DEVICE, d, rs));
                n += tpm2_context_commands(c);
        }
        steps[2] = n - steps[0] - steps[1];
        CHECK(tpm_sign(tcti, &n)); /* STORE_KEYS */
        steps[3] = n - steps[0] - steps[1] - steps[2];
        *ret = n;
        return 0;
}

static int tpm_provision(const char *tcti) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint32_t h;

        CHECK(tpm2_context_new(tcti, &c));
        CHECK(tpm2_key_ensure(c, TPM2_KEY_SRK, true, NULL));
        CHECK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, true, NULL));
        CHECK(tpm2_key_ensure(c, TPM2_KEY_ATTEST, true, NULL));
        CHECK(tpm2_ek_ensure(c, true, &h));
        return 0;
}

/* ---- main ---- */

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_TCTI = 0x100, ARG_ROUNDS, ARG_EVENTLOG };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "rounds", required_argument, NULL, ARG_ROUNDS },
                { "eventlog-kib", required_argument, NULL, ARG_EVENTLOG },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("%s [--rounds=N] [--eventlog-kib=N] [--tcti=CONF]\n\n"
                               "Device-side CPU time of an attestation round (TPM and network excluded) and "
                               "the\n"
                               "TPM commands a round issues (on a private swtpm, or the TPM given: a test "
                               "TPM only).\n",
                               program_invocation_short_name);
                        return 0;
                case ARG_TCTI:
                        arg_tcti = optarg;
                        break;
                case ARG_ROUNDS:
                case ARG_EVENTLOG: {
                        char *end = NULL;
                        unsigned long v;
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno != 0 || !end || *end || v == 0 || v > 100000)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL), "Invalid number: %s", optarg);
                        if (c == ARG_ROUNDS)
                                arg_rounds = (unsigned) v;
                        else
                                arg_eventlog_kib = (unsigned) v;
                        break;
                }
                default:
                        return -EINVAL;
                }
        return 1;
}

static int run(int argc, char *argv[]) {
        _cleanup_(bench_done) Bench b = {};
        BenchSwtpm own = {};
        uint64_t commands = 0, steps[4] = {};
        double t0, per_round, per_verify;
        char ours[64], anchor[64];
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        r = bench_setup(&b, arg_eventlog_kib);
        if (r < 0)
                return log_error_errno(r, "Setup failed: %m");

        /* Warm up (page faults, GnuTLS's first use), then measure. */
        for (unsigned i = 0; i < 5; i++)
                CHECK(round_device_side(&b));
        t0 = cpu_ms();
        for (unsigned i = 0; i < arg_rounds; i++)
                CHECK(round_device_side(&b));
        per_round = (cpu_ms() - t0) / arg_rounds;
        t0 = cpu_ms();
        for (unsigned i = 0; i < arg_rounds * 4; i++)
                CHECK(raw_verify(&b));
        per_verify = (cpu_ms() - t0) / (arg_rounds * 4);

        if (!arg_tcti) {
                r = bench_swtpm_start(&own, "attest-bench-tpm");
                if (r < 0) {
                        bench_swtpm_stop(&own);
                        return log_error_errno(r, "Cannot start swtpm (give --tcti=…): %m");
                }
                arg_tcti = own.tcti;
        }
        r = tpm_provision(arg_tcti);
        if (r >= 0)
                r = tpm_round(arg_tcti, &commands, steps);
        bench_swtpm_stop(&own);
        if (r < 0)
                return r;

        printf("attestation round, device side (%u rounds, %u KiB event log, 2 escrow entries):\n",
               arg_rounds,
               arg_eventlog_kib);
        printf("  CPU time, TPM and network excluded:  %.3f ms  (goal <= 5 ms)\n", per_round);
        printf("  = %.1f raw ECDSA P-256 verifications (%.3f ms each, measured here)\n",
               per_round / per_verify,
               per_verify);
        printf("  TPM commands per round:              %" PRIu64 " (CERT %" PRIu64 ", NONCE %" PRIu64
               ", QUOTE %" PRIu64 ", STORE_KEYS %" PRIu64 ")\n",
               commands,
               steps[0],
               steps[1],
               steps[2],
               steps[3]);

        snprintf(ours, sizeof ours, "%.3f ms", per_round);
        bench_report("attest round device CPU excl. TPM+network",
                     ours,
                     "5 ms budget",
                     per_round / 5.0,
                     "<=1");
        snprintf(anchor, sizeof anchor, "%.3f ms", per_verify);
        bench_report("attest round device CPU in raw ECDSA verifies",
                     ours,
                     anchor,
                     per_round / per_verify,
                     "report");
        snprintf(ours, sizeof ours, "%" PRIu64 " commands", commands);
        bench_report("TPM commands per attestation round", ours, NULL, NAN, "report");
        return 0;
}

EVE_DEFINE_MAIN(run);
