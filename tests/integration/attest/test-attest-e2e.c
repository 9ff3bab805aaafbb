/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The node's trust chain end to end, every part real: swtpm provisioned by eve-tpm-setup, eve-vaultd (and
 * its workers) creating and sealing the default vaults, eve-register, eve-attestd, evc over TLS on
 * 127.0.0.1, all on a private bus. First run: register → attest → token → escrow stored in evc. PCR change:
 * the vaults stay locked (the TPM refuses), evc sees the change and releases nothing, attestd keeps
 * retrying; an administrator's acceptance releases the escrow, eve-vaultd unlocks and re-seals, and the next
 * boot opens through the TPM again. Controller down at start: the vaults still open through the TPM, attestd
 * succeeds once evc is up.
 *
 * The build host has no device-mapper: "unlocked" here means what eve-vaultd reports without one: the key
 * verified against the LUKS2 keyslot, the unlock method named, and activation ending in
 * DeviceMapperUnavailable (the VM tests map and mount). */
#include "attest-fixtures.h"
#include "controller-client.h"
#include "vault-test.h"

#define ATTESTD "services/attestd/eve-attestd"
#define VAULTD "services/vaultd/eve-vaultd"
#define S_COMPLETE 7U
#define S_RESTART_WAIT 6U

static Daemon *vaultd_start(void) {
        _cleanup_free_ char *worker = build_path("services/vaultd/eve-vault-worker"), *env = NULL;
        Daemon *d;

        ASSERT_OK(asprintf(&env, "EVE_VAULT_WORKER=%s", worker));
        d = daemon_start(VAULTD, "org.eve.Vault", env, "--image-size", "32M", "--config-size", "32M", NULL);
        /* The default vaults' unlock at start (after creating them on a first start). */
        vt_wait_op("config", "unlock", 0);
        vt_wait_op("image", "unlock", 0);
        return d;
}

/* What eve-vaultd reports for a vault opened by method, on a host with or without device-mapper. */
static void assert_opened(const char *name, const char *method) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod"),
                            *en = vt_get_str(name, "LastErrorName"), *e = vt_get_str(name, "LastError");

        ASSERT_STREQ(m, method);
        if (streq(state, "Unlocked"))
                return;
        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(en, VT_ERR("DeviceMapperUnavailable"));
        vt_assert_contains(e, "key verified");
}

static void assert_locked_by_pcrs(const char *name) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod"),
                            *en = vt_get_str(name, "LastErrorName");

        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(m, "none");
        ASSERT_STREQ(en, VT_ERR("KeyUnavailable"));
        ASSERT_TRUE(vt_get_pcrs(name, "MovedPCRs") & (UINT32_C(1) << 4));
}

static void run_register(Node *n, Evc *e) {
        _cleanup_free_ char *exe = build_path("services/register/eve-register"), *out = NULL;
        char *argv[] = { exe, NULL };

        node_allow_onboarding(n, e);
        if (test_run(argv, &out) != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed:\n%s", out);
}

static char *device_uuid(void) {
        char u[37];
        ASSERT_OK(controller_read_uuid(u));
        return strdup(u);
}

static int64_t escrowed(Evc *e, const char *uuid) {
        json_object *dev = evc_device_json(e, uuid);
        int64_t n = json_int(dev, "escrowed_keys");
        json_object_put(dev);
        return n;
}

/* A boot: the services in their order (vaultd does not wait for the controller), then attestd. */
static void boot(Daemon **ret_vaultd, Daemon **ret_attestd, const char *retry_base) {
        _cleanup_free_ char *arg = NULL;

        *ret_vaultd = vaultd_start();
        ASSERT_OK(asprintf(&arg, "--retry-base=%s", retry_base));
        *ret_attestd = daemon_start(ATTESTD, "org.eve.Attest", NULL, arg, "--retry-max=1s", NULL);
}

static void shutdown_node(Daemon *vaultd, Daemon *attestd) {
        daemon_stop(attestd);
        daemon_stop(vaultd);
}

TEST(first_run_then_pcr_change_then_acceptance) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL, *image_uuid = NULL;
        Daemon *vd, *ad;
        json_object *dev;
        uint64_t since_image, since_config;

        /* First boot: vaults created and sealed, registered, attested, escrow uploaded and confirmed. */
        test_bus_start(NULL);
        run_register(n, e);
        uuid = device_uuid();
        boot(&vd, &ad, "200ms");
        assert_opened("image", "tpm");
        assert_opened("config", "tpm");
        image_uuid = vt_get_str("image", "UUID");
        attest_wait_state(ad, ATTEST_STATE_BIT(S_COMPLETE), 30000);
        dev = evc_device_json(e, uuid);
        ASSERT_STREQ(json_str(dev, "trust"), "trusted");
        ASSERT_TRUE(json_get_bool(dev, "has_integrity_token"));
        ASSERT_EQ(json_int(dev, "escrowed_keys"), 2); /* one EveVaultEscrow per default vault */
        json_object_put(dev);
        for (unsigned i = 0; i < 500 && vt_get_bool_manager("EscrowPending"); i++)
                usleep(20000);
        ASSERT_FALSE(vt_get_bool_manager("EscrowPending")); /* ConfirmEscrow arrived */
        shutdown_node(vd, ad);

        /* Reboot into changed software: PCR 4 moves. The TPM refuses the vault keys; evc sees the change and
         * releases nothing; attestd keeps retrying and says why. */
        node_reboot(n);
        node_extend(n, 4, "a new boot loader");
        boot(&vd, &ad, "200ms");
        assert_locked_by_pcrs("image");
        assert_locked_by_pcrs("config");
        attest_wait_state(ad, ATTEST_STATE_BIT(S_RESTART_WAIT), 30000);
        {
                _cleanup_(attest_props_done) AttestProps p = {};
                uint32_t a0;

                attest_props(&p);
                ASSERT_TRUE(strncmp(p.last_error, "QUOTE_FAILED", 12) == 0);
                a0 = p.attempts;
                /* Still refused a few rounds later; the vaults stay locked. */
                for (unsigned i = 0; i < 400; i++) {
                        attest_props_done(&p);
                        attest_props(&p);
                        if (p.attempts >= a0 + 2)
                                break;
                        usleep(20000);
                }
                ASSERT_GE(p.attempts, a0 + 2);
                ASSERT_NE(p.state, S_COMPLETE);
        }
        dev = evc_device_json(e, uuid);
        ASSERT_STREQ(json_str(dev, "trust"), "untrusted");
        json_object_put(dev);
        assert_locked_by_pcrs("image");

        /* An administrator accepts the new baseline: the next attempt succeeds, evc releases the escrow,
         * eve-vaultd unlocks with it and re-seals to today's PCRs, and attestd uploads the fresh escrow. */
        since_image = vt_get_u64("image", "LastOperationTime");
        since_config = vt_get_u64("config", "LastOperationTime");
        ASSERT_EQ(EVC_RUN(e, NULL, "baseline", "accept", uuid), 0);
        attest_wait_state(ad, ATTEST_STATE_BIT(S_COMPLETE), 30000);
        vt_wait_op("image", "unlock", since_image);
        vt_wait_op("config", "unlock", since_config);
        assert_opened("image", "controller");
        assert_opened("config", "controller");
        ASSERT_EQ(vt_get_pcrs("image", "MovedPCRs"), 0);
        {
                _cleanup_free_ char *again = vt_get_str("image", "UUID");
                ASSERT_STREQ(again, image_uuid);
        }
        ASSERT_EQ(escrowed(e, uuid), 2);
        shutdown_node(vd, ad);

        /* The next boot (same software): the TPM opens the vaults again, no controller needed. */
        node_reboot(n);
        node_extend(n, 4, "a new boot loader");
        evc_stop(e);
        vd = vaultd_start();
        assert_opened("image", "tpm");
        assert_opened("config", "tpm");
        daemon_stop(vd);
        evc_serve(e);
}

/* Without acceptance nothing is released: the escrow stays at evc, the vaults stay locked. */
TEST(no_acceptance_no_key) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL;
        Daemon *vd, *ad;
        uint64_t t0;

        test_bus_start(NULL);
        run_register(n, e);
        uuid = device_uuid();
        boot(&vd, &ad, "100ms");
        attest_wait_state(ad, ATTEST_STATE_BIT(S_COMPLETE), 30000);
        shutdown_node(vd, ad);

        node_reboot(n);
        node_extend(n, 0, "a changed firmware");
        boot(&vd, &ad, "100ms");
        t0 = now_msec();
        while (now_msec() - t0 < 3000) {
                _cleanup_free_ char *s = vt_get_str("image", "State");
                ASSERT_STREQ(s, "Locked");
                usleep(100000);
        }
        {
                _cleanup_(attest_props_done) AttestProps p = {};
                attest_props(&p);
                ASSERT_NE(p.state, S_COMPLETE);
                ASSERT_GE(p.attempts, 3);
                ASSERT_TRUE(strncmp(p.last_error, "QUOTE_FAILED", 12) == 0);
        }
        {
                _cleanup_free_ char *m = vt_get_str("image", "UnlockMethod");
                ASSERT_STREQ(m, "none");
        }
        ASSERT_EQ(escrowed(e, uuid), 2);
        shutdown_node(vd, ad);
}

/* The controller is down at boot: the vaults open through the TPM all the same; attestd backs off and
 * succeeds, escrow included, once evc is up. */
TEST(controller_down_vaults_open_by_tpm) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL;
        Daemon *vd, *ad;

        test_bus_start(NULL);
        run_register(n, e);
        uuid = device_uuid();
        evc_stop(e);
        boot(&vd, &ad, "100ms");
        assert_opened("image", "tpm");
        assert_opened("config", "tpm");
        attest_wait_state(ad, ATTEST_STATE_BIT(S_RESTART_WAIT), 20000);
        {
                _cleanup_(attest_props_done) AttestProps p = {};
                attest_props(&p);
                ASSERT_FALSE(p.reachable);
        }
        usleep(500000);
        evc_serve(e);
        attest_wait_state(ad, ATTEST_STATE_BIT(S_COMPLETE), 20000);
        ASSERT_EQ(escrowed(e, uuid), 2);
        shutdown_node(vd, ad);
}

DEFINE_TEST_MAIN
