/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-tpm-setup against swtpm: idempotent provisioning, restart, certificates that verify and carry the TPM
 * keys, EK certificate, the software fallback, and the refusals (a TPM identity is never replaced by software
 * keys; a certificate that does not match the TPM stops the boot). */
#include <sys/stat.h>

#include "crypto-util.h"
#include "fixtures.h"
#include "tpm2-util.h"

typedef struct Dirs {
        char *root, *config, *certs, *status;
} Dirs;

static Dirs make_dirs(void) {
        Dirs d = { .root = test_mkdtemp("node") };

        ASSERT_NOT_NULL(d.root);
        ASSERT_OK(asprintf(&d.config, "%s/config", d.root));
        ASSERT_OK(asprintf(&d.certs, "%s/persist/certs", d.root));
        ASSERT_OK(asprintf(&d.status, "%s/persist/status", d.root));
        ASSERT_OK(mkdir(d.config, 0755));
        return d;
}

static void dirs_done(Dirs *d) {
        free(d->root);
        free(d->config);
        free(d->certs);
        free(d->status);
}

/* Runs eve-tpm-setup; returns its exit status; *out gets stdout and stderr together. */
static int run_setup(const Dirs *d, const char *tcti, const char *extra, char **out) {
        _cleanup_free_ char *cmd = NULL;
        const char *builddir = getenv("EVE_TEST_BUILDDIR");
        char *argv[] = { (char *) "sh", (char *) "-c", NULL, NULL };
        char *o = NULL;
        int r;

        if (!builddir)
                TEST_SKIP("$EVE_TEST_BUILDDIR not set (run through meson test)");
        ASSERT_OK(asprintf(&cmd, "exec %s/services/tpm-setup/eve-tpm-setup --config-dir=%s --certs-dir=%s "
                           "--status-dir=%s %s%s %s 2>&1",
                           builddir, d->config, d->certs, d->status, tcti ? "--tcti=" : "", tcti ?: "",
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

static char *read_text(const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char *buf = NULL;
        size_t n = 0;

        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        f = fopen(path, "re");
        if (!f)
                return NULL;
        ASSERT_TRUE(getdelim(&buf, &n, '\0', f) >= 0);
        return buf;
}

static bool exists(const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL;
        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        return access(path, F_OK) >= 0;
}

static void assert_cert_matches(const char *dir, const char *name, const Tpm2EccPoint *p) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ char *path = NULL;
        Tpm2EccPoint got;

        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        ASSERT_OK(crypto_cert_load(path, &crt, NULL, NULL));
        ASSERT_OK(crypto_cert_point(crt, &got));
        ASSERT_MEMEQ(&got, sizeof(got), p, sizeof(*p));
}

static int certtool_verify(const Dirs *d, const char *dir, const char *name) {
        _cleanup_free_ char *ca = NULL, *path = NULL;

        ASSERT_OK(asprintf(&ca, "%s/device.cert.pem", d->config));
        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        char *argv[] = { (char *) "certtool", (char *) "--verify", (char *) "--load-ca-certificate", ca,
                         (char *) "--infile", path, NULL };
        return test_run(argv, NULL);
}

TEST(provision_is_idempotent_and_survives_restart) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_free_ char *out = NULL, *out2 = NULL, *out3 = NULL, *status = NULL;
        _cleanup_free_ char *dev1 = NULL, *ecdh1 = NULL, *att1 = NULL, *dev2 = NULL, *ecdh2 = NULL, *att2 = NULL;
        Tpm2Context *c = NULL;
        Tpm2EccPoint p[_TPM2_KEY_MAX];

        ASSERT_EQ(run_setup(&d, t->tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "Created the device identity key"));
        status = read_text(d.status, "tpm-status");
        ASSERT_STREQ(status, "ENABLED\n");
        ASSERT_FALSE(exists(d.config, "device.key.pem"));
        ASSERT_FALSE(exists(d.certs, "ecdh.key.pem"));
        ASSERT_TRUE(exists(d.certs, "ek.cert.pem")); /* device-signed: fresh swtpm, ECC EK, no NV certificate */
        dev1 = read_text(d.config, "device.cert.pem");
        ecdh1 = read_text(d.certs, "ecdh.cert.pem");
        att1 = read_text(d.certs, "attest.cert.pem");

        /* The certificates carry the TPM's keys and verify. */
        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        for (Tpm2Key k = 0; k < _TPM2_KEY_MAX; k++)
                ASSERT_EQ(tpm2_key_ensure(c, k, false, &p[k]), 0);
        c = tpm2_context_unref(c);
        assert_cert_matches(d.config, "device.cert.pem", &p[TPM2_KEY_DEVICE]);
        assert_cert_matches(d.certs, "ecdh.cert.pem", &p[TPM2_KEY_ECDH]);
        assert_cert_matches(d.certs, "attest.cert.pem", &p[TPM2_KEY_ATTEST]);
        ASSERT_EQ(certtool_verify(&d, d.config, "device.cert.pem"), 0);
        ASSERT_EQ(certtool_verify(&d, d.certs, "ecdh.cert.pem"), 0);
        ASSERT_EQ(certtool_verify(&d, d.certs, "attest.cert.pem"), 0);
        ASSERT_EQ(certtool_verify(&d, d.certs, "ek.cert.pem"), 0);

        /* Second run: nothing created, nothing rewritten. */
        ASSERT_EQ(run_setup(&d, t->tcti, NULL, &out2), 0);
        ASSERT_NOT_NULL(strstr(out2, "0 item(s) created"));
        dev2 = read_text(d.config, "device.cert.pem");
        ecdh2 = read_text(d.certs, "ecdh.cert.pem");
        ASSERT_STREQ(dev1, dev2);
        ASSERT_STREQ(ecdh1, ecdh2);

        /* Power cycle: everything is found again. */
        t = test_swtpm_restart(t);
        free(out);
        out = NULL;
        ASSERT_EQ(run_setup(&d, t->tcti, "--status", &out), 0);
        ASSERT_NOT_NULL(strstr(out, "ENABLED"));
        ASSERT_EQ(run_setup(&d, t->tcti, NULL, &out3), 0);
        ASSERT_NOT_NULL(strstr(out3, "0 item(s) created"));
        att2 = read_text(d.certs, "attest.cert.pem");
        ASSERT_STREQ(att1, att2);
}

TEST(ek_certificate_from_nv) {
        Swtpm *t = test_swtpm_start(SWTPM_WITH_EK, NULL);
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t nv = NULL, file = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        _cleanup_free_ char *path = NULL;
        uint8_t h1[32], h2[32];
        size_t der_size = 0;
        Tpm2Context *c = NULL;

        ASSERT_EQ(run_setup(&d, t->tcti, NULL, NULL), 0);
        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        ASSERT_OK(tpm2_ek_certificate(c, &der, &der_size));
        ASSERT_EQ(tpm2_persistent_exists(c, TPM2_HANDLE_EK_ECC), 0); /* the RSA EK at 0x81010001 was used */
        c = tpm2_context_unref(c);
        ASSERT_OK(crypto_cert_from_der(der, der_size, &nv));
        ASSERT_OK(asprintf(&path, "%s/ek.cert.pem", d.certs));
        ASSERT_OK(crypto_cert_load(path, &file, NULL, NULL));
        ASSERT_OK(crypto_cert_hash_der(nv, h1));
        ASSERT_OK(crypto_cert_hash_der(file, h2));
        ASSERT_MEMEQ(h1, 32, h2, 32);
}

TEST(software_fallback_without_tpm) {
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_free_ char *out = NULL, *out2 = NULL, *status = NULL, *tcti = NULL, *dev1 = NULL, *dev2 = NULL;

        ASSERT_OK(asprintf(&tcti, "swtpm:path=%s/no-such-socket", d.root));
        ASSERT_EQ(run_setup(&d, tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "SOFTWARE keys"));
        status = read_text(d.status, "tpm-status");
        ASSERT_STREQ(status, "NOTFOUND\n");
        ASSERT_TRUE(exists(d.config, "device.key.pem"));
        ASSERT_TRUE(exists(d.certs, "ecdh.key.pem"));
        ASSERT_TRUE(exists(d.certs, "attest.key.pem"));
        ASSERT_FALSE(exists(d.certs, "ek.cert.pem"));
        ASSERT_EQ(certtool_verify(&d, d.certs, "ecdh.cert.pem"), 0);
        ASSERT_EQ(certtool_verify(&d, d.certs, "attest.cert.pem"), 0);
        dev1 = read_text(d.config, "device.cert.pem");

        /* Idempotent as well; --status reports it. */
        ASSERT_EQ(run_setup(&d, tcti, "--status", &out2), 0);
        ASSERT_NOT_NULL(strstr(out2, "NOTFOUND"));
        ASSERT_EQ(run_setup(&d, tcti, NULL, NULL), 0);
        dev2 = read_text(d.config, "device.cert.pem");
        ASSERT_STREQ(dev1, dev2);
}

/* A TPM that is there but cannot be opened (here: a socket path that exists and is no simulator's socket) is
 * no reason for software keys, which would outlive the fault: refused, nothing made; --no-tpm still decides.
 */
TEST(present_but_unopenable_tpm_gets_no_software_fallback) {
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_free_ char *out = NULL, *sock = NULL, *tcti = NULL, *status = NULL;

        ASSERT_OK(asprintf(&sock, "%s/tpm-socket", d.root));
        ASSERT_OK(crypto_write_file_atomic(sock, "", 0, 0600));
        ASSERT_OK(asprintf(&tcti, "swtpm:path=%s", sock));
        ASSERT_NE(run_setup(&d, tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "A TPM is present"));
        ASSERT_NOT_NULL(strstr(out, "--no-tpm"));
        ASSERT_FALSE(exists(d.config, "device.key.pem"));
        ASSERT_FALSE(exists(d.config, "device.cert.pem"));
        ASSERT_FALSE(exists(d.status, "tpm-status"));

        ASSERT_EQ(run_setup(&d, tcti, "--no-tpm", NULL), 0);
        status = read_text(d.status, "tpm-status");
        ASSERT_STREQ(status, "DISABLED\n");
        ASSERT_TRUE(exists(d.config, "device.key.pem"));
}

TEST(forced_software_keys_are_reported_disabled) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_free_ char *status = NULL, *out = NULL;

        ASSERT_EQ(run_setup(&d, t->tcti, "--no-tpm", NULL), 0);
        status = read_text(d.status, "tpm-status");
        ASSERT_STREQ(status, "DISABLED\n");
        ASSERT_TRUE(exists(d.config, "device.key.pem"));

        /* A software identity stays software even when the TPM is usable. */
        ASSERT_EQ(run_setup(&d, t->tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "keeping it"));
        free(status);
        status = read_text(d.status, "tpm-status");
        ASSERT_STREQ(status, "DISABLED\n");
}

TEST(tpm_identity_is_never_replaced_by_software_keys) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_free_ char *out = NULL, *out2 = NULL, *tcti = NULL, *dev1 = NULL, *dev2 = NULL;

        ASSERT_EQ(run_setup(&d, t->tcti, NULL, NULL), 0);
        dev1 = read_text(d.config, "device.cert.pem");

        /* The TPM disappears (EVE bug #6344): fail loudly, create nothing. */
        ASSERT_OK(asprintf(&tcti, "swtpm:path=%s/no-such-socket", d.root));
        ASSERT_NE(run_setup(&d, tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "Refusing to fall back to a software identity"));
        ASSERT_FALSE(exists(d.config, "device.key.pem"));
        dev2 = read_text(d.config, "device.cert.pem");
        ASSERT_STREQ(dev1, dev2);

        /* Nor on request. */
        ASSERT_NE(run_setup(&d, t->tcti, "--no-tpm", &out2), 0);
        ASSERT_NOT_NULL(strstr(out2, "refusing to replace the TPM identity"));
        ASSERT_FALSE(exists(d.config, "device.key.pem"));
}

TEST(certificate_from_another_tpm_is_refused) {
        Swtpm *a = test_swtpm_start(0, NULL);
        _cleanup_(dirs_done) Dirs d = make_dirs();
        _cleanup_free_ char *out = NULL;
        Swtpm *b;

        ASSERT_EQ(run_setup(&d, a->tcti, NULL, NULL), 0);
        ASSERT_OK(test_swtpm_stop(a));

        /* Same files, a different TPM (another seed): the device key cannot match the certificate. */
        b = test_swtpm_start(0, NULL);
        ASSERT_NE(run_setup(&d, b->tcti, NULL, &out), 0);
        ASSERT_NOT_NULL(strstr(out, "does not match its key"));
        ASSERT_FALSE(exists(d.config, "device.key.pem"));
}

DEFINE_TEST_MAIN
