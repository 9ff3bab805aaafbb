/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fixtures themselves: each starts the real program, and leaves nothing behind (the test framework fails a
 * test that ends with a child process still around; the swtpm teardown fails on leftover TPM objects). */
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>

#include "fixtures.h"

static char *pcr16(const Swtpm *t) {
        char *argv[] = { (char *) "tpm2_pcrread", (char *) "-T", t->tcti, (char *) "sha256:16", NULL };
        char *out = NULL;
        ASSERT_EQ(test_run(argv, &out), 0);
        return out;
}

TEST(swtpm_serves_and_keeps_state_across_restart) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *before = NULL, *after = NULL, *reset = NULL, *handles = NULL;
        char *ext[] = { (char *) "tpm2_pcrextend", (char *) "-T", t->tcti,
                        (char *) "16:sha256=0000000000000000000000000000000000000000000000000000000000000001",
                        NULL };
        char *prim[] = { (char *) "tpm2_createprimary", (char *) "-T", t->tcti, (char *) "-C", (char *) "o",
                         (char *) "-G", (char *) "ecc256", (char *) "-c", NULL, NULL };
        char *evict[] = { (char *) "tpm2_evictcontrol", (char *) "-T", t->tcti, (char *) "-C", (char *) "o",
                          (char *) "-c", NULL, (char *) "0x81000010", NULL };
        char *flush[] = { (char *) "tpm2_flushcontext", (char *) "-T", t->tcti, (char *) "-t", NULL };
        char *getcap[] = { (char *) "tpm2_getcap", (char *) "-T", t->tcti, (char *) "handles-persistent", NULL };
        _cleanup_free_ char *ctx = NULL;

        before = pcr16(t);
        ASSERT_EQ(test_run(ext, NULL), 0);
        after = pcr16(t);
        ASSERT_TRUE(!streq(before, after));

        ASSERT_OK(asprintf(&ctx, "%s/primary.ctx", t->dir));
        prim[8] = ctx;
        evict[6] = ctx;
        ASSERT_EQ(test_run(prim, NULL), 0);
        ASSERT_EQ(test_run(evict, NULL), 0);
        ASSERT_EQ(test_run(flush, NULL), 0);

        /* Power cycle: the PCR resets, the persistent key stays. */
        t = test_swtpm_restart(t);
        reset = pcr16(t);
        ASSERT_STREQ(reset, before);
        ASSERT_EQ(test_run(getcap, &handles), 0);
        ASSERT_NOT_NULL(strstr(handles, "0x81000010"));
}

TEST(swtpm_teardown_catches_leftover_objects) {
        Swtpm *t = test_swtpm_start(0, NULL);
        char *prim[] = { (char *) "tpm2_createprimary", (char *) "-T", t->tcti, (char *) "-C", (char *) "o",
                         (char *) "-G", (char *) "ecc256", NULL };

        _cleanup_free_ char *out = NULL;

        /* tpm2_createprimary leaves the transient primary loaded (swtpm has no resource manager). */
        ASSERT_EQ(test_run(prim, &out), 0);
        ASSERT_ERROR(test_undefer(t), ENOTEMPTY);
        ASSERT_EQ(t->pid, 0);
}

TEST(swtpm_with_endorsement_certificates) {
        Swtpm *t = test_swtpm_start(SWTPM_WITH_EK, NULL);
        char *nv[] = { (char *) "tpm2_getcap", (char *) "-T", t->tcti, (char *) "handles-nv-index", NULL };
        char *pers[] = { (char *) "tpm2_getcap", (char *) "-T", t->tcti, (char *) "handles-persistent", NULL };
        _cleanup_free_ char *nvout = NULL, *persout = NULL;

        ASSERT_EQ(test_run(nv, &nvout), 0);
        ASSERT_NOT_NULL(strstr(nvout, "0x1C00002")); /* RSA EK certificate */
        ASSERT_EQ(test_run(pers, &persout), 0);
        ASSERT_NOT_NULL(strstr(persout, "0x81010001")); /* RSA EK */
}

static int request_name(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        return sd_bus_request_name(bus, name, 0);
}

static int request_name_cb(void *userdata) {
        return request_name(userdata);
}

static int request_name_as_nobody(const char *name) {
        return test_call_as("nobody", request_name_cb, (void *) name);
}

TEST(private_bus_enforces_project_policy) {
        PrivateBus *b = test_bus_start(NULL);

        ASSERT_NOT_NULL(b->address);
        ASSERT_STREQ(getenv("DBUS_SYSTEM_BUS_ADDRESS"), b->address);

        /* dbus/org.eve.*.conf: root may own our names; nobody else may; nothing else may be owned. */
        ASSERT_OK(request_name("org.eve.Vault"));
        ASSERT_OK(request_name("org.eve.Attest"));
        ASSERT_OK(request_name("org.eve.Config"));
        ASSERT_ERROR(request_name("org.example.NotOurs"), EACCES);
        ASSERT_ERROR(request_name_as_nobody("org.eve.Vault"), EACCES);
        ASSERT_ERROR(request_name_as_nobody("org.eve.Config"), EACCES);
}

TEST(private_bus_method_call_round_trip) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *id;

        test_bus_start(NULL);
        ASSERT_OK(sd_bus_open_system(&bus));
        ASSERT_OK(sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "GetId", &error, &reply, ""));
        ASSERT_OK(sd_bus_message_read(reply, "s", &id));
        ASSERT_EQ(strlen(id), 32);
}

TEST(tls_ca_issues_verifiable_certificates) {
        TestCA *ca = test_ca_new("eve-trust test CA");
        _cleanup_free_ char *cert = NULL, *key = NULL, *out = NULL, *other_cert = NULL, *other_key = NULL;
        TestCA *other = test_ca_new("another CA");

        ASSERT_OK(test_ca_issue(ca, "server", "127.0.0.1", &cert, &key));
        char *verify[] = { (char *) "certtool", (char *) "--verify", (char *) "--load-ca-certificate", ca->cert,
                           (char *) "--infile", cert, NULL };
        ASSERT_EQ(test_run(verify, &out), 0);
        /* The same leaf does not verify against a different CA. */
        ASSERT_OK(test_ca_issue(other, "server2", "localhost", &other_cert, &other_key));
        char *wrong[] = { (char *) "certtool", (char *) "--verify", (char *) "--load-ca-certificate", ca->cert,
                          (char *) "--infile", other_cert, NULL };
        free(out);
        out = NULL;
        ASSERT_NE(test_run(wrong, &out), 0);
}

DEFINE_TEST_MAIN
