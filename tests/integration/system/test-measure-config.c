/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-measure-config against swtpm: the same configuration gives the same PCR 14 on any node and in any
 * directory; a changed, added or removed file moves it; device-unique files do not; one measurement per
 * boot; a configuration that cannot be measured leaves a PCR 14 that matches nothing; the event log replays
 * to the PCR. */
#include <fcntl.h>
#include <nettle/sha2.h>
#include <sys/stat.h>

#include "crypto-util.h"
#include "encoding.h"
#include "fixtures.h"
#include "tpm2-util.h"

typedef struct Node {
        char *root, *config, *status, *run;
} Node;

static void node_done(Node *n) {
        free(n->root);
        free(n->config);
        free(n->status);
        free(n->run);
}

static void put(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *path = NULL;

        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        ASSERT_OK(crypto_write_file_atomic(path, content, strlen(content), 0644));
}

/* A node's /config as EVE has it: controller address, root CA, device identity, a GlobalConfig. */
static Node make_node(const char *name) {
        Node n = { .root = test_mkdtemp(name) };
        _cleanup_free_ char *gc = NULL;

        ASSERT_NOT_NULL(n.root);
        ASSERT_OK(asprintf(&n.config, "%s/config", n.root));
        ASSERT_OK(asprintf(&n.status, "%s/persist/status", n.root));
        ASSERT_OK(asprintf(&n.run, "%s/run-boot1", n.root));
        ASSERT_OK(asprintf(&gc, "%s/GlobalConfig", n.config));
        ASSERT_OK(mkdir(n.config, 0755));
        ASSERT_OK(mkdir(gc, 0755));
        put(n.config, "server", "zedcloud.example.net:443\n");
        put(n.config,
            "root-certificate.pem",
            "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n");
        put(n.config, "GlobalConfig/global.json", "{\"timer.config.interval\":60}\n");
        put(n.config, "device.cert.pem", "device certificate of this node\n");
        put(n.config, "soft_serial", "serial-of-this-node\n");
        return n;
}

/* Runs eve-measure-config; returns its exit status; *out (if not NULL) gets stdout and stderr together. */
static int run_mc(const Node *n, const char *tcti, const char *extra, char **out) {
        _cleanup_free_ char *cmd = NULL;
        const char *builddir = getenv("EVE_TEST_BUILDDIR");
        char *argv[] = { (char *) "sh", (char *) "-c", NULL, NULL };
        char *o = NULL;
        int r;

        if (!builddir)
                TEST_SKIP("$EVE_TEST_BUILDDIR not set (run through meson test)");
        ASSERT_OK(asprintf(
                        &cmd,
                        "exec %s/services/measure-config/eve-measure-config --config-dir=%s --status-dir=%s "
                        "--run-dir=%s %s%s %s 2>&1",
                        builddir,
                        n->config,
                        n->status,
                        n->run,
                        tcti ? "--tcti=" : "",
                        tcti ?: "",
                        extra ?: ""));
        argv[2] = cmd;
        r = test_run(argv, &o);
        ASSERT_GE(r, 0);
        if (out)
                *out = o;
        else
                free(o);
        return r;
}

static void pcr14(const char *tcti, uint8_t ret[static TPM2_SHA256_SIZE]) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint8_t v[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];

        ASSERT_OK(tpm2_context_new(tcti, &c));
        ASSERT_OK(tpm2_pcr_read(c, UINT32_C(1) << 14, v));
        memcpy(ret, v[14], TPM2_SHA256_SIZE);
}

/* Measures n on a fresh swtpm with an empty run directory (a first boot) and returns PCR 14. */
static void measure_fresh(const Node *n, uint8_t ret[static TPM2_SHA256_SIZE]) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *out = NULL;
        Node boot = *n;

        boot.run = test_mkdtemp("run");
        ASSERT_NOT_NULL(boot.run);
        if (run_mc(&boot, t->tcti, NULL, &out) != 0)
                test_fail(__FILE__, __LINE__, "eve-measure-config failed: %s", out);
        free(boot.run);
        pcr14(t->tcti, ret);
        ASSERT_OK(test_swtpm_stop(t));
}

/* The value --print predicts (no TPM). */
static void predicted(const Node *n, uint8_t ret[static TPM2_SHA256_SIZE]) {
        _cleanup_free_ char *out = NULL;
        _cleanup_free_ uint8_t *v = NULL;
        const char *p;
        size_t size;

        ASSERT_EQ(run_mc(n, NULL, "--print", &out), 0);
        p = strstr(out, "pcr14=");
        ASSERT_NOT_NULL(p);
        ASSERT_OK(hex_decode(p + 6, 64, false, &v, &size));
        ASSERT_EQ(size, TPM2_SHA256_SIZE);
        memcpy(ret, v, size);
}

static bool is_zero(const uint8_t v[static TPM2_SHA256_SIZE]) {
        static const uint8_t zero[TPM2_SHA256_SIZE] = {};
        return memcmp(v, zero, TPM2_SHA256_SIZE) == 0;
}

TEST(same_config_same_pcr_on_any_node) {
        _cleanup_(node_done) Node a = make_node("node-a"), b = make_node("node-b");
        uint8_t pa[TPM2_SHA256_SIZE], pb[TPM2_SHA256_SIZE], pp[TPM2_SHA256_SIZE];

        /* Node b: the same configuration, other device-unique files, another directory, another TPM. */
        put(b.config, "device.cert.pem", "device certificate of another node\n");
        put(b.config, "soft_serial", "another-serial\n");
        put(b.config, "device.key.pem", "software device key of node b\n");
        put(a.config, "device.key.pem", "software device key of node a\n");
        measure_fresh(&a, pa);
        measure_fresh(&b, pb);
        ASSERT_FALSE(is_zero(pa));
        ASSERT_MEMEQ(pa, sizeof pa, pb, sizeof pb);
        predicted(&a, pp);
        ASSERT_MEMEQ(pa, sizeof pa, pp, sizeof pp);
}

TEST(changed_added_or_removed_file_moves_pcr) {
        _cleanup_(node_done) Node n = make_node("node");
        _cleanup_free_ char *path = NULL;
        uint8_t good[TPM2_SHA256_SIZE], changed[TPM2_SHA256_SIZE], added[TPM2_SHA256_SIZE];
        uint8_t removed[TPM2_SHA256_SIZE];

        measure_fresh(&n, good);
        put(n.config, "server", "attacker.example.net:443\n");
        measure_fresh(&n, changed);
        put(n.config, "server", "zedcloud.example.net:443\n");
        put(n.config, "bootstrap-config.pb", "\x0a\x02hi");
        measure_fresh(&n, added);
        ASSERT_OK(asprintf(&path, "%s/bootstrap-config.pb", n.config));
        ASSERT_OK(unlink(path));
        free(path);
        ASSERT_OK(asprintf(&path, "%s/GlobalConfig/global.json", n.config));
        ASSERT_OK(unlink(path));
        measure_fresh(&n, removed);

        ASSERT_TRUE(memcmp(good, changed, sizeof good) != 0);
        ASSERT_TRUE(memcmp(good, added, sizeof good) != 0);
        ASSERT_TRUE(memcmp(good, removed, sizeof good) != 0);
        ASSERT_TRUE(memcmp(changed, added, sizeof good) != 0);
}

TEST(device_unique_files_measured_by_presence_only) {
        static const char *const unique[] = { "tpm_credential",   "device.cert.pem", "device.key.pem",
                                              "onboard.cert.pem", "onboard.key.pem", "soft_serial",
                                              "ftpm.tar.xz" };
        _cleanup_(node_done) Node n = make_node("node");
        _cleanup_free_ char *out = NULL;
        uint8_t before[TPM2_SHA256_SIZE], after[TPM2_SHA256_SIZE], other[TPM2_SHA256_SIZE];

        for (size_t i = 0; i < ELEMENTSOF(unique); i++)
                put(n.config, unique[i], "first content\n");
        measure_fresh(&n, before);
        for (size_t i = 0; i < ELEMENTSOF(unique); i++)
                put(n.config, unique[i], "entirely different content, other length\n");
        measure_fresh(&n, after);
        ASSERT_MEMEQ(before, sizeof before, after, sizeof after);

        /* Their contents never reach the events; their presence does, as EVE records it. */
        ASSERT_EQ(run_mc(&n, NULL, "--print", &out), 0);
        ASSERT_NOT_NULL(strstr(out, "file:/config/tpm_credential exist:true\n"));
        ASSERT_NULL(strstr(out, "file:/config/tpm_credential exist:true content-hash"));
        ASSERT_NOT_NULL(strstr(out, "file:/config/server exist:true content-hash:"));
        ASSERT_NOT_NULL(strstr(out, "file:/config/DevicePortConfig/override.json exist:false\n"));
        _cleanup_free_ char *path = NULL;
        ASSERT_OK(asprintf(&path, "%s/tpm_credential", n.config));
        ASSERT_OK(unlink(path));
        measure_fresh(&n, other);
        ASSERT_TRUE(memcmp(before, other, sizeof before) != 0);
}

TEST(once_per_boot) {
        _cleanup_(node_done) Node n = make_node("node");
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *out = NULL, *marker = NULL, *path = NULL;
        size_t size;
        uint8_t first[TPM2_SHA256_SIZE], second[TPM2_SHA256_SIZE], reboot[TPM2_SHA256_SIZE];

        ASSERT_EQ(run_mc(&n, t->tcti, NULL, NULL), 0);
        pcr14(t->tcti, first);
        ASSERT_EQ(run_mc(&n, t->tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "measured earlier in this boot"));
        pcr14(t->tcti, second);
        ASSERT_MEMEQ(first, sizeof first, second, sizeof second);

        /* The marker names the result. */
        ASSERT_OK(asprintf(&path, "%s/config-measured", n.run));
        ASSERT_OK(crypto_read_file(path, false, &marker, &size));
        _cleanup_free_ char *hex = hex_encode(first, sizeof first);
        ASSERT_NOT_NULL(strstr(marker, hex));

        /* A reboot: PCRs reset, /run empty: the same value again. */
        t = test_swtpm_restart(t);
        free(n.run);
        ASSERT_OK(asprintf(&n.run, "%s/run-boot2", n.root));
        ASSERT_EQ(run_mc(&n, t->tcti, NULL, NULL), 0);
        pcr14(t->tcti, reboot);
        ASSERT_MEMEQ(first, sizeof first, reboot, sizeof reboot);
}

TEST(interrupted_run_is_not_repeated) {
        _cleanup_(node_done) Node n = make_node("node");
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *out = NULL, *path = NULL;
        uint8_t v[TPM2_SHA256_SIZE];

        /* An empty marker: a run this boot stopped between taking it and finishing. */
        ASSERT_OK(mkdir(n.run, 0755));
        ASSERT_OK(asprintf(&path, "%s/config-measured", n.run));
        ASSERT_OK(crypto_write_file_atomic(path, "", 0, 0644));
        ASSERT_NE(run_mc(&n, t->tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "did not complete"));
        pcr14(t->tcti, v);
        ASSERT_TRUE(is_zero(v));
}

TEST(unmeasurable_config_matches_nothing) {
        _cleanup_(node_done) Node n = make_node("node");
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *out = NULL, *fifo = NULL;
        uint8_t good[TPM2_SHA256_SIZE], bad1[TPM2_SHA256_SIZE], bad2[TPM2_SHA256_SIZE];

        predicted(&n, good);
        ASSERT_OK(asprintf(&fifo, "%s/GlobalConfig/pipe", n.config));
        ASSERT_OK(mkfifo(fifo, 0644));
        ASSERT_NE(run_mc(&n, t->tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "/config/GlobalConfig/pipe is not a regular file"));
        pcr14(t->tcti, bad1);
        ASSERT_FALSE(is_zero(bad1));
        ASSERT_TRUE(memcmp(bad1, good, sizeof good) != 0);

        /* The same failure on the next boot does not give the same value: nothing can be sealed to it. */
        t = test_swtpm_restart(t);
        free(n.run);
        ASSERT_OK(asprintf(&n.run, "%s/run-boot2", n.root));
        ASSERT_NE(run_mc(&n, t->tcti, NULL, NULL), 0);
        pcr14(t->tcti, bad2);
        ASSERT_TRUE(memcmp(bad1, bad2, sizeof bad1) != 0);

        /* Repaired, next boot: the good value. */
        ASSERT_OK(unlink(fifo));
        t = test_swtpm_restart(t);
        free(n.run);
        ASSERT_OK(asprintf(&n.run, "%s/run-boot3", n.root));
        ASSERT_EQ(run_mc(&n, t->tcti, NULL, NULL), 0);
        pcr14(t->tcti, bad2);
        ASSERT_MEMEQ(bad2, sizeof bad2, good, sizeof good);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

TEST(event_log_replays_to_pcr14) {
        _cleanup_(node_done) Node n = make_node("node");
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *path = NULL, *log = NULL, *printed = NULL;
        uint8_t pcr[TPM2_SHA256_SIZE] = {}, got[TPM2_SHA256_SIZE];
        size_t size, off = 0;
        unsigned events = 0;

        ASSERT_EQ(run_mc(&n, t->tcti, NULL, NULL), 0);
        pcr14(t->tcti, got);
        ASSERT_EQ(run_mc(&n, NULL, "--print", &printed), 0);
        ASSERT_OK(asprintf(&path, "%s/measurefs_tpm_event_log", n.status));
        ASSERT_OK(crypto_read_file(path, false, &log, &size));

        while (off < size) {
                const uint8_t *p = (const uint8_t *) log + off;
                _cleanup_free_ char *text = NULL, *line = NULL;
                uint8_t digest[TPM2_SHA256_SIZE];
                struct sha256_ctx ctx;

                ASSERT_LE(off + 4 + 4 + 4 + 2 + 32 + 4, size);
                ASSERT_EQ(le32(p), 14);                /* PCR index */
                ASSERT_EQ(le32(p + 4), 0x80000007);    /* EV_EFI_ACTION */
                ASSERT_EQ(le32(p + 8), 1);             /* one digest */
                ASSERT_EQ(p[12] | p[13] << 8, 0x000b); /* SHA-256 */
                uint32_t len = le32(p + 46);
                ASSERT_LE(off + 50 + len, size);
                text = strndup((const char *) p + 50, len);
                ASSERT_NOT_NULL(text);
                /* The digest is SHA-256 of the event text, and the text is what --print shows. */
                sha256_init(&ctx);
                sha256_update(&ctx, len, p + 50);
                sha256_digest(&ctx, sizeof digest, digest);
                ASSERT_MEMEQ(p + 14, 32, digest, sizeof digest);
                ASSERT_OK(asprintf(&line, "%s\n", text));
                ASSERT_NOT_NULL(strstr(printed, line));
                sha256_init(&ctx);
                sha256_update(&ctx, sizeof pcr, pcr);
                sha256_update(&ctx, sizeof digest, digest);
                sha256_digest(&ctx, sizeof pcr, pcr);
                off += 50 + len;
                events++;
        }
        ASSERT_EQ(events, 12); /* 5 files, 5 more device-unique names, 2 more always-listed names */
        ASSERT_MEMEQ(pcr, sizeof pcr, got, sizeof got);
}

TEST(no_tpm_measures_nothing_and_succeeds) {
        _cleanup_(node_done) Node n = make_node("node");
        _cleanup_free_ char *out = NULL, *tcti = NULL, *marker = NULL;

        ASSERT_OK(asprintf(&tcti, "swtpm:path=%s/no-such-socket", n.root));
        ASSERT_EQ(run_mc(&n, tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "not measured"));
        ASSERT_OK(asprintf(&marker, "%s/config-measured", n.run));
        ASSERT_TRUE(access(marker, F_OK) < 0 && errno == ENOENT);
}

TEST(bad_input_is_refused_clearly) {
        _cleanup_(node_done) Node n = make_node("node");
        _cleanup_free_ char *out = NULL, *out2 = NULL;

        ASSERT_NE(run_mc(&n, NULL, "--no-such-option", &out), 0);
        free(n.config);
        ASSERT_OK(asprintf(&n.config, "%s/missing", n.root));
        ASSERT_NE(run_mc(&n, NULL, "--print", &out2), 0);
        ASSERT_NOT_NULL(strstr(out2, "Cannot open the configuration directory"));
}

DEFINE_TEST_MAIN
