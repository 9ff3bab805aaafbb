/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Controller key rotation seen from the node (issue 13): evc rotates its ECDH pair (shared and per device)
 * and its signing pair while "evc serve" keeps running; eve-configd (with eve-register, eve-attestd, swtpm
 * and a private bus around it) notices through controllercert_confighash, an unknown certificate in a cipher
 * context or an unknown response signer, fetches /certs again, and keeps serving every secret. Certificates
 * the current config names stay on disk even when /certs stops listing them; the others go. */
#include "controller-client.h"
#include "controller-env.h"
#include "memory-util.h"
#include "proto-util.h"

static char *secret_ok(Env *e, const char *name, const char *field) {
        char *v = NULL;

        if (config_secret(name, field, &v) < 0) {
                daemon_dump(e->configd);
                test_fail(__FILE__, __LINE__, "GetSecret(%s) failed: %s", name, v);
        }
        return v;
}

static void refresh_ok(Env *e, const char *want) {
        _cleanup_free_ char *v = NULL;

        if (config_refresh(&v) < 0) {
                daemon_dump(e->configd);
                test_fail(__FILE__, __LINE__, "Refresh() failed: %s", v);
        }
        if (want)
                ASSERT_STREQ(v, want);
}

/* The only stored ECDH certificate, as hex. */
static char *only_ecdh(void) {
        char **l = stored_certs("ecdh");
        char *h;

        ASSERT_EQ(strv_len_test(l), 1);
        h = strdup(l[0]);
        strv_free_test(l);
        return h;
}

/* Rotating the shared ECDH pair: one config round (Refresh) brings blocks encrypted with the new pair and a
 * new controllercert_confighash; configd fetches /certs at once, decrypts with the new certificate, and
 * removes the old one, which neither /certs nor the config names any more. */
TEST(ecdh_rotation_decrypts_after_one_config_round) {
        Env *e = env_new(true);
        _cleanup_free_ char *h1 = NULL, *v = NULL;
        char **after;
        uint64_t ok_before;

        env_secret(e, "office", "wifi", "before rotation");
        env_configd(e, "1h");
        wait_fetched(e, 20000);
        h1 = only_ecdh();
        v = secret_ok(e, "wifi.office", "wifiPassword");
        ASSERT_STREQ(v, "before rotation");

        ASSERT_EQ(EVC_RUN(e->evc, NULL, "keys", "rotate", "ecdh"), 0);
        refresh_ok(e, "updated");
        /* At once, not at the next periodic /certs: the new config waited for its certificate, so when
         * Refresh() answers the certificate is stored… */
        {
                char **l = stored_certs("ecdh");
                bool has_new = false;
                for (size_t i = 0; l[i]; i++)
                        has_new = has_new || !streq(l[i], h1);
                strv_free_test(l);
                if (!has_new) {
                        daemon_dump(e->configd);
                        test_fail(__FILE__,
                                  __LINE__,
                                  "no new ECDH certificate stored when Refresh() answered");
                }
        }
        /* …and the secret, now encrypted with the new pair, decrypts. */
        ok_before = config_prop_u64("CipherSuccesses");
        free(v);
        v = secret_ok(e, "wifi.office", "wifiPassword");
        ASSERT_STREQ(v, "before rotation");
        ASSERT_EQ(config_prop_u64("CipherSuccesses"), ok_before + 1);
        /* The old certificate goes: /certs no longer lists it (this node was the only one to hold it) and
         * the current config does not name it. */
        wait_stored_cert(e, "ecdh", h1, false, 5000);
        after = stored_certs("ecdh");
        ASSERT_EQ(strv_len_test(after), 1);
        strv_free_test(after);
}

/* The config eve-configd holds still names the old pair: its secrets keep working even after the controller
 * stopped listing that certificate (another /certs, here eve-register's at a reboot, keeps it on disk); the
 * next config round moves to the new pair and only then the old certificate goes. */
TEST(old_ecdh_certificate_kept_while_the_config_names_it) {
        Env *e = env_new(true);
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c2 = NULL;
        _cleanup_free_ char *h1 = NULL, *h2 = NULL, *v = NULL, *out = NULL;
        char **l;

        env_secret(e, "office", "wifi", "held secret");
        env_configd(e, "1h");
        wait_fetched(e, 20000);
        h1 = only_ecdh();

        ASSERT_EQ(EVC_RUN(e->evc, NULL, "keys", "rotate", "ecdh"), 0);
        /* Someone fetches the config in the node's name: evc now believes the node holds the new pair, so
         * /certs stops listing the old one. */
        c2 = fetch_config_as_node(NULL);
        h2 = context_cert_hex(c2);
        ASSERT_TRUE(!streq(h1, h2));
        /* A /certs without h1 (eve-register at the next boot): h1 stays, the held config still needs it. */
        if (env_register(e, &out) != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed:\n%s", out ?: "");
        l = stored_certs("ecdh");
        ASSERT_TRUE(strv_has_test(l, h1));
        ASSERT_TRUE(strv_has_test(l, h2));
        strv_free_test(l);
        v = secret_ok(e, "wifi.office", "wifiPassword");
        ASSERT_STREQ(v, "held secret");

        /* The next config round: the new pair; the old certificate is named by nothing and goes. */
        refresh_ok(e, "updated");
        wait_stored_cert(e, "ecdh", h1, false, 5000);
        free(v);
        v = secret_ok(e, "wifi.office", "wifiPassword");
        ASSERT_STREQ(v, "held secret");
        l = stored_certs("ecdh");
        ASSERT_TRUE(strv_has_test(l, h2));
        strv_free_test(l);
}

/* Rotating the signing pair: the next response names a signer the node does not know; the client fetches
 * /certs once (verified against the root CA) and accepts it; the old signing certificate is removed. A
 * second rotation right after is refused until the refetch bound (CONTROLLER_CERTS_REFETCH_MIN_USEC) has
 * passed. */
TEST(signing_rotation_verified_after_one_refetch) {
        Env *e = env_new(true);
        _cleanup_free_ char *v = NULL;
        char **s1, **s2;
        uint64_t end;
        int r;

        env_secret(e, "office", "wifi", "signed");
        env_configd(e, "1h");
        wait_fetched(e, 20000);
        s1 = stored_certs("signing");
        ASSERT_EQ(strv_len_test(s1), 1);

        ASSERT_EQ(EVC_RUN(e->evc, NULL, "keys", "rotate", "signing"), 0);
        refresh_ok(e, "updated"); /* controllercert_confighash changed with the signing certificate */
        s2 = stored_certs("signing");
        ASSERT_EQ(strv_len_test(s2), 1);
        ASSERT_TRUE(!streq(s1[0], s2[0]));
        v = secret_ok(e, "wifi.office", "wifiPassword");
        ASSERT_STREQ(v, "signed");

        /* Again at once: the answer's signer is unknown, and /certs was accepted less than the bound ago. */
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "keys", "rotate", "signing"), 0);
        free(v);
        r = config_refresh(&v);
        ASSERT_TRUE(r < 0);
        ASSERT_NOT_NULL(strstr(v, "does not list"));
        /* After the bound, the next round fetches /certs and verifies. */
        end = now_msec() + CONTROLLER_CERTS_REFETCH_MIN_USEC / 1000 + 15000;
        for (;;) {
                free(v);
                v = NULL;
                if (config_refresh(&v) >= 0)
                        break;
                if (now_msec() > end) {
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "no successful fetch after the bound: %s", v);
                }
                usleep(500000);
        }
        strv_free_test(s1);
        s1 = stored_certs("signing");
        ASSERT_EQ(strv_len_test(s1), 1);
        ASSERT_TRUE(!streq(s1[0], s2[0]));
        strv_free_test(s1);
        strv_free_test(s2);
}

/* A pair of the device's own: the config names it, configd fetches it and decrypts. */
TEST(per_device_ecdh_pair) {
        Env *e = env_new(true);
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;
        _cleanup_free_ char *shared = NULL, *own = NULL, *v = NULL;

        env_secret(e, "office", "wifi", "mine alone");
        env_configd(e, "1h");
        wait_fetched(e, 20000);
        shared = only_ecdh();

        ASSERT_EQ(EVC_RUN(e->evc, NULL, "keys", "rotate", "ecdh", "--device", e->uuid), 0);
        refresh_ok(e, "updated");
        /* The secret decrypts as soon as Refresh() answered… */
        v = secret_ok(e, "wifi.office", "wifiPassword");
        ASSERT_STREQ(v, "mine alone");
        /* …with a certificate other than the shared one, the device's own, which configd fetched. */
        c = fetch_config_as_node(NULL);
        own = context_cert_hex(c);
        ASSERT_TRUE(!streq(own, shared));
        wait_stored_cert(e, "ecdh", own, true, 0);
}

/* Cleartext fallback off: the config carries ciphertext only (checked on the wire), and the node still gets
 * every secret of every kind. */
TEST(ciphertext_only_delivers_every_secret) {
        Env *e = env_new(true);
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;
        _cleanup_free_ char *w = NULL, *d = NULL, *u = NULL;
        const Org__Lfedge__Eve__Config__EdgeDevConfig *cfg;

        ASSERT_EQ(EVC_RUN(e->evc, NULL, "secret", "cleartext-fallback", "on", e->uuid), 0);
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "secret", "cleartext-fallback", "off", e->uuid), 0);
        env_secret(e, "office", "wifi", "wifi only as ciphertext");
        env_secret(e, "store1", "datastore", "datastore only as ciphertext");
        env_secret(e, "app1", "cloudinit", "#cloud-config\nonly: ciphertext\n");

        c = fetch_config_as_node(NULL);
        cfg = c->config;
        ASSERT_EQ(cfg->n_networks, 1);
        ASSERT_NOT_NULL(cfg->networks[0]->wireless->wificfg[0]->cipherdata);
        ASSERT_TRUE(isempty(cfg->networks[0]->wireless->wificfg[0]->password));
        ASSERT_EQ(cfg->n_datastores, 1);
        ASSERT_NOT_NULL(cfg->datastores[0]->cipherdata);
        ASSERT_TRUE(isempty(cfg->datastores[0]->password));
        ASSERT_EQ(cfg->n_apps, 1);
        ASSERT_NOT_NULL(cfg->apps[0]->cipherdata);
        ASSERT_TRUE(isempty(cfg->apps[0]->userdata));

        env_configd(e, "1h");
        wait_fetched(e, 20000);
        w = secret_ok(e, "wifi.office", "wifiPassword");
        d = secret_ok(e, "datastore.store1", "dsPassword");
        u = secret_ok(e, "cloudinit.app1", "protectedUserData");
        ASSERT_STREQ(w, "wifi only as ciphertext");
        ASSERT_STREQ(d, "datastore only as ciphertext");
        ASSERT_STREQ(u, "#cloud-config\nonly: ciphertext\n");
        ASSERT_EQ(config_prop_u64("CipherSuccesses"), 3);
}

DEFINE_TEST_MAIN
