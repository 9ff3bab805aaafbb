/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl vault against the real eve-vaultd: tables for people, --json for scripts, a progress line while a
 * vault is allocated, the clear "Permission denied" for an ordinary user, and what a stopped daemon looks
 * like. */
#include <json-c/json.h>

#include "vault-test.h"

/* Runs evectl (as user, when not NULL) through sh; stdout and stderr together. Returns the exit status. */
static int evectl(const char *user, char **ret_out, const char *args) {
        _cleanup_free_ char *exe = vt_build_path("services/evectl/evectl"), *cmd = NULL;
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", NULL, NULL };
        int r;

        if (user)
                /* The user's primary group, whatever it is called ("nogroup" for nobody on Debian). */
                ASSERT_OK(
                                asprintf(&cmd,
                                         "setpriv --reuid=%s --regid=$(id -g %s) --init-groups %s %s 2>&1",
                                         user,
                                         user,
                                         exe,
                                         args));
        else
                ASSERT_OK(asprintf(&cmd, "%s %s 2>&1", exe, args));
        argv[2] = cmd;
        r = test_run(argv, ret_out);
        log_debug("$ evectl %s\n%s(exit %d)", args, *ret_out ?: "", r);
        return r;
}

static json_object *evectl_json(const char *args) {
        _cleanup_free_ char *out = NULL;
        json_object *o;
        int status = evectl(NULL, &out, args);

        if (status != 0)
                test_fail(__FILE__, __LINE__, "evectl %s exited with %d: %s", args, status, out);
        o = json_tokener_parse(out);
        if (!o)
                test_fail(__FILE__, __LINE__, "evectl %s printed no JSON: %s", args, out);
        return o;
}

TEST(evectl_vault) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *out = NULL;
        VaultDaemon *d;
        json_object *o;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);

        /* A table for people. */
        ASSERT_EQ(evectl(NULL, &out, "vault list"), 0);
        vt_assert_contains(out, "NAME");
        vt_assert_contains(out, "KEY SOURCE");
        vt_assert_contains(out, "config");
        vt_assert_contains(out, "image");
        free(out);

        /* JSON for scripts: every property, as the bus has it. */
        o = evectl_json("--json vault list");
        ASSERT_TRUE(json_object_is_type(o, json_type_array));
        ASSERT_EQ(json_object_array_length(o), 2);
        ASSERT_STREQ(json_object_get_string(json_object_object_get(json_object_array_get_idx(o, 0), "Name")),
                     "config");
        json_object_put(o);
        o = evectl_json("vault show image --json");
        ASSERT_STREQ(json_object_get_string(json_object_object_get(o, "KeySource")), "tpm");
        ASSERT_EQ(json_object_get_int64(json_object_object_get(o, "KeyGeneration")), 1);
        ASSERT_EQ(json_object_array_length(json_object_object_get(o, "SealingPCRs")), 14);
        json_object_put(o);

        ASSERT_EQ(evectl(NULL, &out, "vault show image"), 0);
        vt_assert_contains(out, "Key source: tpm");
        vt_assert_contains(out, "Sealing PCRs: 0,1,2,3,4,6,7,8,9,10,11,12,13,14");
        free(out);

        /* Creating a vault shows its progress (a line per phase and 10% when not on a terminal). */
        ASSERT_EQ(evectl(NULL, &out, "vault create big --size 256M --pcrs 0,7"), 0);
        vt_assert_contains(out, "Vault big: reserving space, 64.0 MiB of 256.0 MiB (25%)");
        vt_assert_contains(out, "Vault big: reserving space, 256.0 MiB of 256.0 MiB (100%)");
        vt_assert_contains(out, "Vault big: writing the LUKS2 header");
        vt_assert_contains(out, "Created vault big.");
        free(out);

        ASSERT_EQ(evectl(NULL, &out, "vault rotate big"), 0);
        vt_assert_contains(out, "Key changed");
        free(out);

        /* An ordinary user reads, but changes nothing, and is told why. */
        ASSERT_EQ(evectl("nobody", &out, "vault list"), 0);
        vt_assert_contains(out, "big");
        free(out);
        ASSERT_NE(evectl("nobody", &out, "vault create x"), 0);
        vt_assert_contains(
                        out,
                        "Permission denied: only root or members of group eve-admin may create vaults.");
        free(out);
        ASSERT_NE(evectl("nobody", &out, "vault lock image"), 0);
        vt_assert_contains(
                        out, "Permission denied: only root or members of group eve-admin may lock vaults.");
        free(out);

        /* Errors a person understands. */
        ASSERT_NE(evectl(NULL, &out, "vault show nosuch"), 0);
        vt_assert_contains(out, "No vault named 'nosuch'");
        free(out);
        ASSERT_NE(evectl(NULL, &out, "vault create Bad"), 0);
        vt_assert_contains(out, "Invalid vault name");
        free(out);
        ASSERT_NE(evectl(NULL, &out, "vault create y --pcrs 1,7"), 0);
        vt_assert_contains(out, "PCR 0 is required");
        free(out);

        ASSERT_EQ(evectl(NULL, &out, "vault delete big"), 0);
        vt_assert_contains(out, "Vault big deleted");
        free(out);

        vt_daemon_stop(d);
        ASSERT_NE(evectl(NULL, &out, "vault list"), 0);
        vt_assert_contains(out, "eve-vaultd is not running");
}

DEFINE_TEST_MAIN
