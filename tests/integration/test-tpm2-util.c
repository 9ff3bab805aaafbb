/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shared TPM module against swtpm: primary keys and PCRs, persistent keys across restarts, seal/unseal
 * under PolicyPCR, quotes checked by tpm2_checkquote, ECDH_ZGen against a software ECDH, TPM-signed certificates
 * checked by GnuTLS and certtool. */
#include <fcntl.h>

#include "crypto-util.h"
#include "encoding.h"
#include "fixtures.h"
#include "memory-util.h"
#include "tpm2-util.h"

static Tpm2Context *open_tpm(const Swtpm *t) {
        Tpm2Context *c = NULL;
        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        return c;
}

static char *write_file(const char *dir, const char *name, const void *p, size_t n) {
        char *path = NULL;

        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        ASSERT_OK(crypto_write_file_atomic(path, p, n, 0600));
        return path;
}

static void extend(Tpm2Context *c, unsigned pcr, uint8_t byte) {
        uint8_t d[TPM2_SHA256_SIZE];
        memset(d, byte, sizeof(d));
        ASSERT_OK(tpm2_pcr_extend(c, pcr, d));
}

TEST(create_primary_and_read_pcrs) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        uint8_t v[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {}, zero[TPM2_SHA256_SIZE] = {};
        Tpm2EccPoint a, b;
        uint64_t n;

        ASSERT_TRUE(tpm2_context_supports_aes_cfb(c));
        ASSERT_OK(tpm2_self_test(c));

        /* The SRK: created as a primary and persisted once, found afterwards. */
        ASSERT_ERROR(tpm2_key_ensure(c, TPM2_KEY_SRK, false, NULL), ENOENT);
        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_SRK, true, &a), 1);
        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_SRK, true, &b), 0);
        ASSERT_MEMEQ(&a, sizeof(a), &b, sizeof(b));
        ASSERT_EQ(tpm2_persistent_exists(c, TPM2_HANDLE_SRK), 1);

        /* PCRs: all zero on a fresh swtpm; 24 of them need several PCR_Read calls. */
        ASSERT_OK(tpm2_pcr_read(c, TPM2_PCRS_MASK, v));
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (i < 17 || i == 23)
                        ASSERT_MEMEQ(v[i], TPM2_SHA256_SIZE, zero, sizeof(zero));
        extend(c, 16, 0x42);
        ASSERT_OK(tpm2_pcr_read(c, UINT32_C(1) << 16, v));
        ASSERT_TRUE(memcmp(v[16], zero, sizeof(zero)) != 0);
        ASSERT_ERROR(tpm2_pcr_extend(c, 24, zero), EINVAL);

        n = tpm2_context_commands(c);
        ASSERT_GE(n, 8);
        ASSERT_OK(tpm2_pcr_read(c, UINT32_C(1) << 7, v));
        ASSERT_EQ(tpm2_context_commands(c), n + 1);
}

TEST(keys_are_created_once_and_survive_restart) {
        Swtpm *t = test_swtpm_start(0, NULL);
        Tpm2Context *c = open_tpm(t);
        Tpm2EccPoint first[_TPM2_KEY_MAX], again[_TPM2_KEY_MAX];
        uint32_t ek;

        for (Tpm2Key k = 0; k < _TPM2_KEY_MAX; k++)
                ASSERT_EQ(tpm2_key_ensure(c, k, true, &first[k]), 1);
        ASSERT_EQ(tpm2_ek_ensure(c, true, &ek), 1);
        ASSERT_EQ(ek, TPM2_HANDLE_EK_ECC);
        /* Provisioning from scratch makes only ECC keys: an RSA key takes seconds on a real TPM. */
        ASSERT_GE(tpm2_context_commands(c), 5);
        ASSERT_EQ(tpm2_context_rsa_keygens(c), 0u);
        ASSERT_ERROR(tpm2_ek_certificate(c, &(uint8_t *) { NULL }, &(size_t) { 0 }), ENOENT);
        for (Tpm2Key k = 0; k < _TPM2_KEY_MAX; k++) {
                ASSERT_EQ(tpm2_key_ensure(c, k, true, &again[k]), 0);
                ASSERT_MEMEQ(&first[k], sizeof(Tpm2EccPoint), &again[k], sizeof(Tpm2EccPoint));
        }
        /* Distinct keys, although all are primaries from the same seed. */
        ASSERT_TRUE(memcmp(&first[TPM2_KEY_DEVICE], &first[TPM2_KEY_ECDH], sizeof(Tpm2EccPoint)) != 0);
        c = tpm2_context_unref(c);

        t = test_swtpm_restart(t);
        c = open_tpm(t);
        for (Tpm2Key k = 0; k < _TPM2_KEY_MAX; k++) {
                ASSERT_EQ(tpm2_key_ensure(c, k, false, &again[k]), 0);
                ASSERT_MEMEQ(&first[k], sizeof(Tpm2EccPoint), &again[k], sizeof(Tpm2EccPoint));
        }
        ASSERT_EQ(tpm2_ek_ensure(c, false, &ek), 0);
        ASSERT_EQ(ek, TPM2_HANDLE_EK_ECC);

        /* Evicting one and re-creating gives the same primary key (same seed, same template). */
        ASSERT_EQ(tpm2_key_evict(c, TPM2_KEY_ECDH), 1);
        ASSERT_ERROR(tpm2_key_ensure(c, TPM2_KEY_ECDH, false, NULL), ENOENT);
        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, &again[TPM2_KEY_ECDH]), 1);
        ASSERT_MEMEQ(&first[TPM2_KEY_ECDH], sizeof(Tpm2EccPoint), &again[TPM2_KEY_ECDH], sizeof(Tpm2EccPoint));
        tpm2_context_unref(c);
}

TEST(endorsement_key_and_certificate_from_swtpm_setup) {
        Swtpm *t = test_swtpm_start(SWTPM_WITH_EK, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ uint8_t *der = NULL, *pub = NULL;
        size_t der_size = 0, pub_size = 0;
        uint32_t ek;

        ASSERT_EQ(tpm2_ek_ensure(c, true, &ek), 0);
        ASSERT_EQ(ek, TPM2_HANDLE_EK_RSA);
        ASSERT_OK(tpm2_ek_certificate(c, &der, &der_size));
        ASSERT_OK(crypto_cert_from_der(der, der_size, &crt));
        ASSERT_OK(tpm2_persistent_public_marshal(c, ek, &pub, &pub_size));
        ASSERT_GE(pub_size, 256);
        ASSERT_ERROR(tpm2_public_parse(pub, pub_size, NULL, NULL), EMEDIUMTYPE); /* RSA */
}

TEST(seal_unseal_under_pcr_policy) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        _cleanup_free_ uint8_t *blob = NULL;
        _cleanup_secret_ uint8_t *out = NULL;
        uint8_t secret[TPM2_SECRET_SIZE], policy[TPM2_SHA256_SIZE], expect[TPM2_SHA256_SIZE];
        uint8_t v[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {};
        uint32_t mask = (UINT32_C(1) << 7) | (UINT32_C(1) << 14);
        size_t blob_size = 0, out_size = 0;

        extend(c, 7, 0x07);
        extend(c, 14, 0x14);
        ASSERT_OK(tpm2_get_random(c, secret, sizeof(secret)));
        ASSERT_OK(tpm2_seal(c, mask, secret, sizeof(secret), &blob, &blob_size, policy));

        /* The policy digest computed in software from the PCR values is the one the object carries. */
        ASSERT_OK(tpm2_pcr_read(c, mask, v));
        ASSERT_OK(tpm2_policy_pcr_digest(mask, v, expect));
        ASSERT_MEMEQ(policy, sizeof(policy), expect, sizeof(expect));

        ASSERT_OK(tpm2_unseal(c, mask, policy, blob, blob_size, &out, &out_size));
        ASSERT_MEMEQ(out, out_size, secret, sizeof(secret));
        out = eve_secret_free(out);
        ASSERT_OK(tpm2_unseal(c, mask, NULL, blob, blob_size, &out, &out_size));
        out = eve_secret_free(out);

        /* A PCR outside the policy may move; one inside may not. */
        extend(c, 8, 0x08);
        ASSERT_OK(tpm2_unseal(c, mask, policy, blob, blob_size, &out, &out_size));
        out = eve_secret_free(out);
        extend(c, 14, 0x99);
        ASSERT_ERROR(tpm2_unseal(c, mask, policy, blob, blob_size, &out, &out_size), EPERM);
        ASSERT_NULL(out);
        ASSERT_NOT_NULL(strstr(tpm2_context_last_error(c), "PCR policy mismatch"));
        log_info("Expected failure: %s", tpm2_context_last_error(c));

        /* A corrupted blob is refused before it reaches the TPM. */
        ASSERT_ERROR(tpm2_unseal(c, mask, policy, blob, blob_size - 1, &out, &out_size), EBADMSG);
        policy[0] ^= 1;
        ASSERT_ERROR(tpm2_unseal(c, mask, policy, blob, blob_size, &out, &out_size), EBADMSG);
}

TEST(a_foreign_key_at_the_srk_handle_is_refused) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        _cleanup_free_ uint8_t *blob = NULL, *srk = NULL;
        _cleanup_free_ char *ctx = NULL;
        _cleanup_secret_ uint8_t *out = NULL;
        uint8_t secret[TPM2_SECRET_SIZE] = { 1 }, policy[TPM2_SHA256_SIZE];
        size_t blob_size = 0, out_size = 0, srk_size = 0;
        char *create[] = { (char *) "tpm2_createprimary", (char *) "-T", t->tcti, (char *) "-C", (char *) "o",
                           (char *) "-G", (char *) "ecc256:ecdsa", (char *) "-a",
                           (char *) "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", (char *) "-c",
                           NULL, NULL };
        char *evict[] = { (char *) "tpm2_evictcontrol", (char *) "-T", t->tcti, (char *) "-C", (char *) "o",
                          (char *) "-c", NULL, (char *) "0x81000001", NULL };
        char *flush[] = { (char *) "tpm2_flushcontext", (char *) "-T", t->tcti, (char *) "-t", NULL };
        char *evict_srk[] = { (char *) "tpm2_evictcontrol", (char *) "-T", t->tcti, (char *) "-C", (char *) "o",
                              (char *) "-c", (char *) "0x81000001", NULL };

        ASSERT_OK(tpm2_seal(c, UINT32_C(1) << 7, secret, sizeof(secret), &blob, &blob_size, policy));
        /* A signing key where the SRK belongs (the opening read of the SRK is the only one now: its template
         * is checked on what that read returned). */
        c = tpm2_context_unref(c); /* swtpm serves one connection at a time */
        ASSERT_OK(asprintf(&ctx, "%s/foreign.ctx", t->dir));
        create[10] = ctx;
        evict[6] = ctx;
        ASSERT_EQ(test_run(evict_srk, NULL), 0);
        ASSERT_EQ(test_run(create, NULL), 0);
        ASSERT_EQ(test_run(evict, NULL), 0);
        ASSERT_EQ(test_run(flush, NULL), 0); /* tpm2-tools leave the primary loaded (no resource manager) */
        ASSERT_OK(unlink(ctx));

        c = open_tpm(t);
        ASSERT_ERROR(tpm2_unseal(c, UINT32_C(1) << 7, policy, blob, blob_size, &out, &out_size), EBADMSG);
        ASSERT_NOT_NULL(strstr(tpm2_context_last_error(c), "is not our"));
        ASSERT_ERROR(tpm2_srk_serialize(c, true, &srk, &srk_size), EBADMSG);
        ASSERT_NULL(out);
}

static int checkquote(const char *dir, const char *nonce_hex) {
        _cleanup_free_ char *ak = NULL, *msg = NULL, *sig = NULL, *pcrs = NULL;
        char *argv[] = { (char *) "tpm2_checkquote", (char *) "-u", NULL, (char *) "-m", NULL, (char *) "-s", NULL,
                         (char *) "-f", NULL, (char *) "-l", (char *) "sha256:0,7", (char *) "-g",
                         (char *) "sha256", (char *) "-q", (char *) nonce_hex, NULL };

        ASSERT_OK(asprintf(&ak, "%s/ak.pub", dir));
        ASSERT_OK(asprintf(&msg, "%s/quote.msg", dir));
        ASSERT_OK(asprintf(&sig, "%s/quote.sig", dir));
        ASSERT_OK(asprintf(&pcrs, "%s/pcrs.raw", dir));
        argv[2] = ak;
        argv[4] = msg;
        argv[6] = sig;
        argv[8] = pcrs;
        return test_run(argv, NULL);
}

TEST(quote_passes_tpm2_checkquote) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        _cleanup_free_ uint8_t *attest = NULL, *sig = NULL, *pub = NULL;
        _cleanup_free_ char *dir = test_mkdtemp("quote"), *nonce_hex = NULL, *wrong_hex = NULL;
        _cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL, *p4 = NULL, *p5 = NULL;
        uint8_t v[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {}, pcrs[2][TPM2_SHA256_SIZE], rs[64], nonce[32];
        size_t attest_size = 0, sig_size = 0, pub_size = 0;
        const uint32_t mask = (UINT32_C(1) << 0) | (UINT32_C(1) << 7);

        extend(c, 0, 0x01);
        extend(c, 7, 0x07);
        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_ATTEST, true, NULL), 1);
        ASSERT_OK(tpm2_get_random(c, nonce, sizeof(nonce)));

        ASSERT_ERROR(tpm2_quote(c, mask, nonce, 11, &attest, &attest_size, &sig, &sig_size, rs), EINVAL);
        ASSERT_ERROR(tpm2_quote(c, mask, nonce, 33, &attest, &attest_size, &sig, &sig_size, rs), EINVAL);
        ASSERT_OK(tpm2_quote(c, mask, nonce, sizeof(nonce), &attest, &attest_size, &sig, &sig_size, rs));
        ASSERT_OK(tpm2_pcr_read(c, mask, v));
        memcpy(pcrs[0], v[0], TPM2_SHA256_SIZE);
        memcpy(pcrs[1], v[7], TPM2_SHA256_SIZE);
        ASSERT_OK(tpm2_persistent_public_marshal(c, TPM2_HANDLE_ATTEST, &pub, &pub_size));

        p1 = write_file(dir, "ak.pub", pub, pub_size);
        p2 = write_file(dir, "quote.msg", attest, attest_size);
        p3 = write_file(dir, "quote.sig", sig, sig_size);
        p4 = write_file(dir, "pcrs.raw", pcrs, sizeof(pcrs));
        nonce_hex = hex_encode(nonce, sizeof(nonce));
        ASSERT_EQ(checkquote(dir, nonce_hex), 0);

        /* A different nonce fails. */
        nonce[0] ^= 0xff;
        wrong_hex = hex_encode(nonce, sizeof(nonce));
        ASSERT_NE(checkquote(dir, wrong_hex), 0);

        /* PCR values that differ from what was quoted fail. */
        pcrs[1][0] ^= 0xff;
        p5 = write_file(dir, "pcrs.raw", pcrs, sizeof(pcrs));
        ASSERT_NE(checkquote(dir, nonce_hex), 0);
}

TEST(ecdh_zgen_matches_software_ecdh) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t soft = NULL;
        _cleanup_secret_ uint8_t *z_tpm = NULL, *z_soft = NULL;
        Tpm2EccPoint tpm_pub, soft_pub;

        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, &tpm_pub), 1);
        ASSERT_OK(crypto_soft_key_generate(&soft));
        ASSERT_OK(crypto_privkey_point(soft, &soft_pub));

        ASSERT_OK(tpm2_ecdh_zgen(c, &soft_pub, &z_tpm));
        ASSERT_OK(crypto_ecdh_soft(soft, &tpm_pub, &z_soft));
        ASSERT_MEMEQ(z_tpm, 64, z_soft, 64);

        /* A point not on the curve is refused by both. */
        soft_pub.y[31] ^= 1;
        ASSERT_TRUE(tpm2_ecdh_zgen(c, &soft_pub, &(uint8_t *) { NULL }) < 0);
}

static unsigned loaded_sessions(const Swtpm *t) {
        char *argv[] = { (char *) "timeout",
                         (char *) "10",
                         (char *) "tpm2_getcap",
                         (char *) "-T",
                         t->tcti,
                         (char *) "handles-loaded-session",
                         NULL };
        _cleanup_free_ char *out = NULL;
        unsigned n = 0;

        ASSERT_EQ(test_run(argv, &out), 0);
        for (const char *p = out; p && (p = strstr(p, "0x")); p++)
                n++;
        return n;
}

/* One key agreement with the TPM, checked against the software side; returns the TPM commands it took. */
static uint64_t zgen_checked(Tpm2Context *c, const Tpm2EccPoint *peer, const uint8_t *expect) {
        _cleanup_secret_ uint8_t *z = NULL;
        uint64_t n = tpm2_context_commands(c);

        ASSERT_OK(tpm2_ecdh_zgen(c, peer, &z));
        ASSERT_MEMEQ(z, 64, expect, 64);
        return tpm2_context_commands(c) - n;
}

/* eve-configd's way: the ECDH key handle and the salted session kept in the context between agreements. */
TEST(kept_ecdh_session_costs_one_command_and_survives_a_replaced_key) {
        Swtpm *t = test_swtpm_start(0, NULL);
        Tpm2Context *c = open_tpm(t);
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t soft = NULL;
        _cleanup_secret_ uint8_t *z_soft = NULL;
        Tpm2EccPoint tpm_pub, soft_pub, bad;

        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, &tpm_pub), 1);
        ASSERT_OK(crypto_soft_key_generate(&soft));
        ASSERT_OK(crypto_privkey_point(soft, &soft_pub));
        ASSERT_OK(crypto_ecdh_soft(soft, &tpm_pub, &z_soft));
        /* Without: ReadPublic of the ECDH key, StartAuthSession, ZGen, FlushContext each time (the first one
         * also makes the SRK that salts the session). */
        (void) zgen_checked(c, &soft_pub, z_soft);
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 4U);

        /* Kept: ReadPublic, StartAuthSession, ZGen the first time, then ZGen alone. */
        tpm2_context_keep_ecdh_session(c, true);
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 3U);
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 1U);
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 1U);

        /* A point not on the curve: refused, the session let go, the next agreement starts a new one. */
        bad = soft_pub;
        bad.y[31] ^= 1;
        ASSERT_TRUE(tpm2_ecdh_zgen(c, &bad, &(uint8_t *){ NULL }) < 0);
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 3U);

        /* The key at the handle replaced (re-provisioning) under the kept handle: the kept handle is gone
         * (ESYS closed it with the eviction); the call lets the session go and retries once with the new key
         * and a new session: FlushContext, ReadPublic, StartAuthSession, ZGen. */
        ASSERT_OK(tpm2_key_evict(c, TPM2_KEY_ECDH));
        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, &tpm_pub), 1);
        z_soft = eve_secret_free(z_soft);
        ASSERT_OK(crypto_ecdh_soft(soft, &tpm_pub, &z_soft));
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 4U);
        ASSERT_EQ(zgen_checked(c, &soft_pub, z_soft), 1U);

        /* Closing the context flushes the session: no session slot stays taken. */
        tpm2_context_unref(c);
        ASSERT_EQ(loaded_sessions(t), 0U);
}

static int certtool_verify(const char *ca, const char *cert) {
        char *argv[] = { (char *) "certtool", (char *) "--verify", (char *) "--load-ca-certificate", (char *) ca,
                         (char *) "--infile", (char *) cert, NULL };
        return test_run(argv, NULL);
}

TEST(tpm_signed_certificates_verify) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = open_tpm(t);
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t dev_key = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t dev_pub = NULL, ecdh_pub = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t dev = NULL, ecdh = NULL;
        _cleanup_(gnutls_datum_freep) gnutls_datum_t der = {};
        _cleanup_free_ char *dir = test_mkdtemp("certs"), *dev_pem = NULL, *ecdh_pem = NULL;
        _cleanup_free_ char *dev_path = NULL, *ecdh_path = NULL;
        Tpm2EccPoint dev_point, ecdh_point, got;
        uint8_t digest[32] = { 1, 2, 3 }, rs[64], rs2[64], h16[16], h32[32];
        gnutls_datum_t dd = { digest, sizeof(digest) };
        size_t dev_pem_size = 0, ecdh_pem_size = 0;

        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_DEVICE, true, &dev_point), 1);
        ASSERT_EQ(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, &ecdh_point), 1);

        /* Raw TPM signature ↔ DER ↔ GnuTLS verification with the TPM's public key. */
        ASSERT_OK(tpm2_sign_digest(c, TPM2_KEY_DEVICE, digest, rs));
        ASSERT_OK(crypto_ecdsa_rs_to_der(rs, &der));
        ASSERT_OK(crypto_ecdsa_der_to_rs(der.data, der.size, rs2));
        ASSERT_MEMEQ(rs, 64, rs2, 64);
        ASSERT_OK(crypto_pubkey_from_point(&dev_point, &dev_pub));
        ASSERT_OK(gnutls_pubkey_verify_hash2(dev_pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &dd, &der));
        ASSERT_ERROR(tpm2_sign_digest(c, TPM2_KEY_ATTEST, digest, rs), EINVAL);

        ASSERT_OK(crypto_tpm_privkey(c, TPM2_KEY_DEVICE, &dev_key));
        ASSERT_OK(crypto_cert_make(CRYPTO_CERT_DEVICE, dev_pub, NULL, dev_key, &dev));
        ASSERT_OK(crypto_pubkey_from_point(&ecdh_point, &ecdh_pub));
        ASSERT_OK(crypto_cert_make(CRYPTO_CERT_ECDH, ecdh_pub, dev, dev_key, &ecdh));

        ASSERT_OK(crypto_cert_verify(dev, NULL));
        ASSERT_OK(crypto_cert_verify(ecdh, dev));
        ASSERT_ERROR(crypto_cert_verify(dev, ecdh), EBADMSG);
        ASSERT_OK(crypto_cert_point(dev, &got));
        ASSERT_MEMEQ(&got, sizeof(got), &dev_point, sizeof(dev_point));
        ASSERT_OK(crypto_cert_point(ecdh, &got));
        ASSERT_MEMEQ(&got, sizeof(got), &ecdh_point, sizeof(ecdh_point));

        ASSERT_OK(crypto_cert_to_pem(dev, &dev_pem, &dev_pem_size));
        ASSERT_OK(crypto_cert_to_pem(ecdh, &ecdh_pem, &ecdh_pem_size));
        dev_path = write_file(dir, "device.cert.pem", dev_pem, dev_pem_size);
        ecdh_path = write_file(dir, "ecdh.cert.pem", ecdh_pem, ecdh_pem_size);
        ASSERT_EQ(certtool_verify(dev_path, dev_path), 0);
        ASSERT_EQ(certtool_verify(dev_path, ecdh_path), 0);

        crypto_cert_hash_pem16(ecdh_pem, ecdh_pem_size, h16);
        ASSERT_OK(crypto_cert_hash_der(ecdh, h32));
        ASSERT_TRUE(memcmp(h16, h32, 16) != 0); /* PEM and DER hashes differ */
}

DEFINE_TEST_MAIN
