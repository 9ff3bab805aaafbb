/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The controller binding (issue 13): the TPM device key's authValue is derived from root-certificate.pem and
 * server. Replacing either file on the node makes the key refuse to sign: eve-register stops before any
 * traffic, eve-attestd and eve-configd say on the bus that the node must be re-onboarded, and evc sees
 * nothing in the node's name (its record of the device's attestations and info reports stays still).
 * Restoring the file restores service. The wrong values never count towards the TPM's dictionary-attack
 * lockout (noDA). A key made before the binding (empty authValue) is bound at the first contact and stays
 * the same key. */
#include <json-c/json.h>

#include "bus-util.h"
#include "controller-certs.h"
#include "controller-client.h"
#include "controller-env.h"
#include "crypto-util.h"
#include "paths.h"
#include "tpm2-util.h"


static char *config_file(Env *e, const char *name) {
        char *p = NULL;

        ASSERT_OK(asprintf(&p, "%s/%s", e->node->config, name));
        return p;
}

static int binding_state(const char **ret_reason) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;

        ASSERT_OK(tpm2_context_new(NULL, &c));
        return controller_binding_check(c, /* bind= */ false, ret_reason);
}

/* What evc knows of the node's contacts: last attestation and last info report. */
static void evc_contacts(Env *e, int64_t *ret_attest, int64_t *ret_info) {
        json_object *o = evc_device_json(e->evc, e->uuid);

        *ret_attest = json_int(o, "last_attest");
        *ret_info = json_int(o, "info_time");
        json_object_put(o);
}

static void wait_text(
                Env *e, const char *what, char *(*get)(const char *), const char *prop, const char *needle) {
        uint64_t end = now_msec() + 15000;

        for (;;) {
                _cleanup_free_ char *v = get(prop);
                if (strstr(v, needle))
                        return;
                if (now_msec() > end) {
                        daemon_dump(e->configd);
                        if (e->attestd)
                                daemon_dump(e->attestd);
                        test_fail(__FILE__,
                                  __LINE__,
                                  "%s %s is \"%s\", without \"%s\"",
                                  what,
                                  prop,
                                  v,
                                  needle);
                }
                usleep(50000);
        }
}

static char *attest_last_error(const char *unused) {
        AttestProps p = {};
        char *s;

        attest_props(&p);
        s = strdup(p.last_error ?: "");
        attest_props_done(&p);
        return s;
}

static void attest_restart(void) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;

        ASSERT_OK(sd_bus_call_method(
                        test_bus(),
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "Restart",
                        &error,
                        NULL,
                        ""));
}

/* A file swapped under the running node: everything that would speak in its name stops, says why, and evc
 * hears nothing; the file back, everything works again. */
static void swap_and_restore(Env *e, const char *file, const char *impostor) {
        _cleanup_free_ char *path = config_file(e, file), *orig = read_text_file(path), *out = NULL;
        const char *reason = NULL;
        int64_t attest0, info0, attest1, info1;
        int r;

        ASSERT_EQ(binding_state(NULL), CONTROLLER_BINDING_BOUND);
        /* configd's info reports (every second) arrive while all is well */
        for (uint64_t end = now_msec() + 15000;; usleep(100000)) {
                evc_contacts(e, &attest0, &info0);
                if (info0 > 0)
                        break;
                if (now_msec() > end) {
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "no info report reached evc");
                }
        }

        write_text(e->node->config, file, impostor, 0644);
        ASSERT_EQ(binding_state(&reason), -EKEYREVOKED);
        ASSERT_NOT_NULL(strstr(reason, "re-onboard"));

        /* eve-register stops before any traffic, and says so. */
        r = env_register(e, &out);
        ASSERT_NE(r, 0);
        ASSERT_NOT_NULL(strstr(out, "Not contacting the controller"));
        ASSERT_NOT_NULL(strstr(out, "re-onboarded"));
        /* eve-configd's fetches and eve-attestd's next round fail before sending, visibly on the bus. */
        wait_text(e, "org.eve.Config", config_prop, "LastFetchError", "re-onboard");
        attest_restart();
        wait_text(e, "org.eve.Attest", attest_last_error, "LastError", "re-onboard");
        evc_contacts(e, &attest1, &info1);
        /* Nothing reached evc in the node's name for a while (info reports every second before). */
        usleep(2500000);
        {
                int64_t a2, i2;
                evc_contacts(e, &a2, &i2);
                ASSERT_EQ(a2, attest1);
                ASSERT_EQ(i2, info1);
                ASSERT_EQ(a2, attest0);
        }
        /* Many refused signatures later, the TPM is not locked out: noDA. */
        {
                _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
                uint8_t d[32] = { 1 }, rs[64];
                ASSERT_OK(tpm2_context_new(NULL, &c));
                ASSERT_OK(tpm2_context_set_device_auth(c, "wrong", 5));
                for (unsigned i = 0; i < 40; i++)
                        ASSERT_EQ(tpm2_sign_digest(c, TPM2_KEY_DEVICE, d, rs), -EACCES);
        }

        /* Restored: signing works at once, the daemons recover without a restart. */
        write_text(e->node->config, file, orig, 0644);
        ASSERT_EQ(binding_state(NULL), CONTROLLER_BINDING_BOUND);
        free(out);
        out = NULL;
        r = env_register(e, &out);
        if (r != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed after the restore:\n%s", out ?: "");
        attest_restart();
        attest_wait_state(e->attestd, ATTEST_STATE_BIT(ATTEST_COMPLETE), 30000);
        wait_fetched(e, 15000);
        {
                uint64_t end = now_msec() + 10000;
                int64_t a2, i2;
                for (;;) {
                        evc_contacts(e, &a2, &i2);
                        if (i2 > info1 && a2 > attest1)
                                break;
                        if (now_msec() > end)
                                test_fail(__FILE__, __LINE__, "evc hears nothing after the restore");
                        usleep(100000);
                }
        }
}

TEST(replaced_root_ca_stops_the_device_key_restored_file_restores_service) {
        Env *e = env_new(true);
        _cleanup_free_ char *other = NULL, *v = NULL;
        Evc *impostor;

        env_secret(e, "office", "wifi", "bound");
        env_configd(e, "1s");
        wait_fetched(e, 20000);
        /* Another controller's root CA: a valid certificate, just not this node's. */
        impostor = evc_new(NULL);
        other = read_text_file(impostor->root_pem);
        swap_and_restore(e, "root-certificate.pem", other);
        ASSERT_OK(config_secret("wifi.office", "wifiPassword", &v));
        ASSERT_STREQ(v, "bound");
}

/* The address: "localhost:<port>" reaches the very same evc (its TLS certificate covers both names), yet the
 * node refuses to speak under an address it was not onboarded with. */
TEST(changed_server_address_stops_the_device_key) {
        Env *e = env_new(true);
        _cleanup_free_ char *path = config_file(e, "server"), *orig = read_text_file(path), *other = NULL;
        const char *colon = strrchr(orig, ':');

        ASSERT_NOT_NULL(colon);
        ASSERT_OK(asprintf(&other, "localhost%s", colon));
        env_configd(e, "1s");
        wait_fetched(e, 20000);
        swap_and_restore(e, "server", other);
}

/* eve-tpm-setup ran before the controller files were there (as the node fixture and a fresh VM do): the key
 * has an empty authValue. eve-register binds it at the first contact: the same key pair (the device
 * certificate stays valid), the empty value refused from then on, and eve-tpm-setup accepts it at the next
 * boot. eve-tpm-setup refuses to go on while the files differ. */
TEST(unbound_key_is_bound_at_first_contact_and_stays_the_same_key) {
        Evc *evc;
        Node *n;
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_free_ char *out = NULL, *setup = build_path("services/tpm-setup/eve-tpm-setup"),
                            *root = NULL, *cert_before = NULL, *cert_after = NULL, *cert_path = NULL;
        Tpm2EccPoint before, after;
        uint8_t d[32] = { 2 }, rs[64];
        int r;

        evc = evc_new(NULL);
        n = node_new(evc);
        node_allow_onboarding(n, evc);
        ASSERT_OK(asprintf(&cert_path, "%s/device.cert.pem", n->config));
        cert_before = read_text_file(cert_path);

        ASSERT_OK(tpm2_context_new(NULL, &c));
        ASSERT_EQ(controller_binding_check(c, false, NULL), CONTROLLER_BINDING_UNBOUND);
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, false, &before));
        c = tpm2_context_unref(c);

        {
                _cleanup_free_ char *reg = build_path("services/register/eve-register");
                r = run_logged(reg, &out);
                if (r != 0)
                        test_fail(__FILE__, __LINE__, "eve-register failed (%d):\n%s", r, out ?: "");
                ASSERT_NOT_NULL(strstr(out, "Bound the device key"));
        }
        ASSERT_OK(tpm2_context_new(NULL, &c));
        ASSERT_EQ(controller_binding_check(c, false, NULL), CONTROLLER_BINDING_BOUND);
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, false, &after));
        ASSERT_MEMEQ(&before, sizeof before, &after, sizeof after);
        ASSERT_OK(tpm2_context_set_device_auth(c, NULL, 0));
        ASSERT_EQ(tpm2_sign_digest(c, TPM2_KEY_DEVICE, d, rs), -EACCES);
        c = tpm2_context_unref(c);

        /* The next boot's eve-tpm-setup: nothing to do, the certificate untouched. */
        free(out);
        out = NULL;
        r = run_logged(setup, &out);
        if (r != 0)
                test_fail(__FILE__, __LINE__, "eve-tpm-setup failed (%d):\n%s", r, out ?: "");
        cert_after = read_text_file(cert_path);
        ASSERT_STREQ(cert_before, cert_after);

        /* With another root CA on disk, eve-tpm-setup refuses, and changes nothing. */
        {
                Evc *impostor = evc_new(NULL);
                _cleanup_free_ char *other = read_text_file(impostor->root_pem);
                root = read_text_file(evc->root_pem);
                write_text(n->config, "root-certificate.pem", other, 0644);
                free(out);
                out = NULL;
                r = run_logged(setup, &out);
                ASSERT_NE(r, 0);
                ASSERT_NOT_NULL(strstr(out, "re-onboard"));
                write_text(n->config, "root-certificate.pem", root, 0644);
        }
        ASSERT_OK(tpm2_context_new(NULL, &c));
        ASSERT_EQ(controller_binding_check(c, false, NULL), CONTROLLER_BINDING_BOUND);
}

DEFINE_TEST_MAIN
