/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm-bench: TPM commands and wall time of our TPM operations, next to swtpm's reference latencies
 * (facts/test-infra.md). Real TPMs are 50–500× slower than swtpm, so the command count is the figure that
 * carries over to a device. Starts its own swtpm unless --tcti is given. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "bench-swtpm.h"
#include "bench.h"
#include "crypto-util.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "tpm2-util.h"

static const char *arg_tcti = NULL;
static unsigned arg_rounds = 20;

typedef struct Row {
        const char *name;
        const char *reference;
        double ms; /* mean per operation */
        double min_ms;
        double commands; /* mean per operation */
} Row;

static void print_row(const Row *r) {
        char ours[32];

        printf("%-34s %9.3f %9.3f %9.1f   %s\n", r->name, r->ms, r->min_ms, r->commands, r->reference);
        /* The count is the figure: on a device, TPM commands are the cost (swtpm is 50-500x faster). */
        (void) snprintf(ours, sizeof ours, "%.1f commands", r->commands);
        bench_report(r->name, ours, NULL, NAN, "report");
}

/* Everything eve-tpm-setup does with the TPM: SRK, EK, three keys, device certificate and two leaf
 * certificates (one TPM signature each). Repeat runs only find and read the keys. */
static int provision(Tpm2Context *c, bool first) {
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t dev = NULL;
        Tpm2EccPoint p[_TPM2_KEY_MAX];
        uint32_t ek;
        int r;

        for (Tpm2Key k = 0; k < _TPM2_KEY_MAX; k++) {
                r = tpm2_key_ensure(c, k, true, &p[k]);
                if (r < 0)
                        return r;
                if (k != TPM2_KEY_SRK && (r > 0) != first) /* the SRK is created in the first round only */
                        return -EEXIST;
        }
        r = tpm2_ek_ensure(c, true, &ek);
        if (r < 0)
                return r;
        if (!first)
                return 0;
        r = crypto_tpm_privkey(c, TPM2_KEY_DEVICE, &key);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 3; i++) {
                _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;
                _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
                Tpm2Key k = i == 0 ? TPM2_KEY_DEVICE : i == 1 ? TPM2_KEY_ECDH : TPM2_KEY_ATTEST;

                r = crypto_pubkey_from_point(&p[k], &pub);
                if (r < 0)
                        return r;
                r = crypto_cert_make(
                                i == 0                   ? CRYPTO_CERT_DEVICE
                                                : i == 1 ? CRYPTO_CERT_ECDH
                                                         : CRYPTO_CERT_ATTEST,
                                pub,
                                dev,
                                key,
                                &crt);
                if (r < 0)
                        return r;
                if (i == 0)
                        dev = TAKE_PTR(crt);
        }
        return 0;
}

static int evict_all(Tpm2Context *c) {
        for (Tpm2Key k = TPM2_KEY_DEVICE; k < _TPM2_KEY_MAX; k++) {
                int r = tpm2_key_evict(c, k);
                if (r < 0)
                        return r;
        }
        return 0;
}

#define MEASURE(row, c, rounds, setup, body)                     \
        do {                                                     \
                double _sum = 0, _min = 1e18;                    \
                uint64_t _cmds = 0;                              \
                for (unsigned _i = 0; _i < (rounds); _i++) {     \
                        setup;                                   \
                        uint64_t _c0 = tpm2_context_commands(c); \
                        double _t0 = bench_now_ms();             \
                        body;                                    \
                        double _dt = bench_now_ms() - _t0;       \
                        _cmds += tpm2_context_commands(c) - _c0; \
                        _sum += _dt;                             \
                        _min = MIN(_min, _dt);                   \
                }                                                \
                (row).ms = _sum / (rounds);                      \
                (row).min_ms = _min;                             \
                (row).commands = (double) _cmds / (rounds);      \
                print_row(&(row));                               \
        } while (0)

#define CHECK(expr)                                                                                   \
        do {                                                                                          \
                int _r = (expr);                                                                      \
                if (_r < 0)                                                                           \
                        return log_error_errno(                                                       \
                                        _r, "%s failed: %m (%s)", #expr, tpm2_context_last_error(c)); \
        } while (0)

static int bench(const char *tcti) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_free_ uint8_t *blob = NULL;
        uint8_t secret[TPM2_SECRET_SIZE], policy[TPM2_SHA256_SIZE], nonce[32], rs[64], digest[32] = { 1 };
        const uint32_t seal_mask = (1U << 0) | (1U << 7), quote_mask = 0xffff;
        size_t blob_size = 0;
        Row open_row = { "context open (+TestParms)", "-" };
        Row prov_first = { "provision, first (keys+EK+3 certs)", "ECC primary 0.6-1.7 ms each" };
        Row prov_again = { "provision, repeat (find keys)", "-" };
        Row seal_row = { "seal 32 B (PCR 0,7, salted)", "-" };
        Row unseal_row = { "unseal (PolicyPCR, salted)", "2.6 ms / 3.8 ms salted" };
        Row quote_row = { "quote (PCR 0-15, 32 B nonce)", "0.3 ms" };
        Row ecdh_row = { "ECDH_ZGen (salted, encrypted)", "0.8 ms" };
        Row sign_row = { "sign digest (device key)", "-" };
        Row pcr_row = { "PCR read 0-23", "-" };
        Tpm2EccPoint ecdh_pub;
        double t0;

        t0 = bench_now_ms();
        CHECK(tpm2_context_new(tcti, &c));
        open_row.ms = open_row.min_ms = bench_now_ms() - t0;
        open_row.commands = (double) tpm2_context_commands(c);

        printf("%-34s %9s %9s %9s   %s\n", "operation", "mean ms", "min ms", "commands", "swtpm reference");
        print_row(&open_row);

        /* Provisioning: first run creates, then evict and create again for the next round. */
        MEASURE(prov_first, c, MIN(arg_rounds, 5U), CHECK(evict_all(c)), CHECK(provision(c, true)));
        MEASURE(prov_again, c, arg_rounds, (void) 0, CHECK(provision(c, false)));

        CHECK(tpm2_get_random(c, secret, sizeof(secret)));
        MEASURE(seal_row,
                c,
                arg_rounds,
                blob = mfree(blob),
                CHECK(tpm2_seal(c, seal_mask, secret, sizeof(secret), &blob, &blob_size, policy)));
        MEASURE(unseal_row, c, arg_rounds, (void) 0, ({
                        _cleanup_secret_ uint8_t *out = NULL;
                        size_t n = 0;
                        CHECK(tpm2_unseal(c, seal_mask, policy, blob, blob_size, &out, &n));
                }));
        CHECK(tpm2_get_random(c, nonce, sizeof(nonce)));
        MEASURE(quote_row, c, arg_rounds, (void) 0, ({
                        _cleanup_free_ uint8_t *a = NULL, *s = NULL;
                        size_t an = 0, sn = 0;
                        CHECK(tpm2_quote(c, quote_mask, nonce, sizeof(nonce), &a, &an, &s, &sn, rs));
                }));
        CHECK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, false, &ecdh_pub)); /* any valid point will do */
        MEASURE(ecdh_row, c, arg_rounds, (void) 0, ({
                        _cleanup_secret_ uint8_t *z = NULL;
                        CHECK(tpm2_ecdh_zgen(c, &ecdh_pub, &z));
                }));
        MEASURE(sign_row, c, arg_rounds, (void) 0, CHECK(tpm2_sign_digest(c, TPM2_KEY_DEVICE, digest, rs)));
        MEASURE(pcr_row, c, arg_rounds, (void) 0, ({
                        uint8_t v[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
                        CHECK(tpm2_pcr_read(c, TPM2_PCRS_MASK, v));
                }));
        printf("\n%" PRIu64 " TPM commands in total; %u rounds per row (provision first: %u); %" PRIu64
               " of them generated an RSA key.\n",
               tpm2_context_commands(c),
               arg_rounds,
               MIN(arg_rounds, 5U),
               tpm2_context_rsa_keygens(c));
        {
                char ours[32];
                (void) snprintf(ours, sizeof ours, "%" PRIu64 " keys", tpm2_context_rsa_keygens(c));
                /* Provisioning, sealing, unsealing, quotes, ZGen, signing: every TPM path of the boot. */
                bench_report("RSA key generations in all TPM operations above", ours, NULL, NAN, "==0");
        }
        return 0;
}

static int run(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "tcti", required_argument, NULL, 't' },
                { "rounds", required_argument, NULL, 'n' },
                {},
        };
        BenchSwtpm t = {};
        int c, r;

        while ((c = getopt_long(argc, argv, "ht:n:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("%s [--tcti=CONF] [--rounds=N]\n\n"
                               "Times our TPM operations and counts TPM commands. Without --tcti, starts a\n"
                               "private swtpm (the TPM's objects are changed: use a test TPM only).\n",
                               program_invocation_short_name);
                        return 0;
                case 't':
                        arg_tcti = optarg;
                        break;
                case 'n': {
                        unsigned n = 0;
                        for (const char *p = optarg; *p; p++) {
                                if (*p < '0' || *p > '9' || n > 100000)
                                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Bad --rounds.");
                                n = n * 10 + (unsigned) (*p - '0');
                        }
                        if (n == 0)
                                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Bad --rounds.");
                        arg_rounds = n;
                        break;
                }
                default:
                        return -EINVAL;
                }

        if (!arg_tcti) {
                r = bench_swtpm_start(&t, "tpm-bench");
                if (r < 0) {
                        bench_swtpm_stop(&t);
                        return log_error_errno(r, "Cannot start swtpm: %m");
                }
                printf("TPM: private swtpm (%s)\n", t.tcti);
        } else
                printf("TPM: %s\n", arg_tcti);
        r = bench(arg_tcti ?: t.tcti);
        bench_swtpm_stop(&t);
        return r;
}

EVE_DEFINE_MAIN(run);
