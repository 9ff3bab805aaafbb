/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vaultd as a process on a private bus, with swtpm and image files: default vaults, the TPM path at
 * start, the escrow rescue through SubmitKeys after a PCR change, a blob from another TPM refused, key
 * rotation held until ConfirmEscrow (at most two keys), a kill of the worker at every rotation step, bad
 * tokens and blobs refused with reasons, and the admin check. No device-mapper on the build host: activation
 * must end in DeviceMapperUnavailable with the key verified, never in a fake Unlocked. */
#include <sys/stat.h>

#include "crypto-util.h"
#include "luks2-util.h"
#include "vault-test.h"

static bool mounted_at(const char *mount_point) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        _cleanup_free_ char *line = NULL;
        size_t n = 0;

        while (f && getline(&line, &n, f) > 0) {
                char mp[4096];
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && streq(mp, mount_point))
                        return true;
        }
        return false;
}

/* After an unlock: Unlocked only with a real mapping, mounted; without device-mapper (the build host)
 * locked, with the key verified and the reason named. */
static void assert_opened(const char *name, const char *method) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod"),
                            *en = vt_get_str(name, "LastErrorName"), *e = vt_get_str(name, "LastError"),
                            *dev = vt_get_str(name, "Device"), *mp = vt_get_str(name, "MountPoint");

        ASSERT_STREQ(m, method);
        if (streq(state, "Unlocked")) {
                ASSERT_OK(access(dev, F_OK));
                ASSERT_TRUE(mounted_at(mp));
                return;
        }
        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(en, VT_ERR("DeviceMapperUnavailable"));
        vt_assert_contains(e, "key verified");
        ASSERT_STREQ(dev, "");
}

/* The <interface name="org.eve.Vault.…"> blocks of an introspection XML, in order. */
static char *vault_interfaces(const char *xml) {
        char *out = strdup("");
        const char *p = xml;

        ASSERT_NOT_NULL(out);
        while ((p = strstr(p, " <interface name=\"org.eve.Vault."))) {
                const char *end = strstr(p, "</interface>\n");
                char *n = NULL;

                ASSERT_NOT_NULL(end);
                end += strlen("</interface>\n");
                ASSERT_OK(asprintf(&n, "%s%.*s", out, (int) (end - p), p));
                free(out);
                out = n;
                p = end;
        }
        return out;
}

TEST(introspection_matches_dbus_xml) {
        _cleanup_free_ char *exe = vt_build_path("services/vaultd/eve-vaultd"), *xml = NULL, *file = NULL,
                            *path = test_srcpath("dbus/org.eve.Vault.xml"), *served = NULL,
                            *committed = NULL;
        char *argv[] = { exe, (char *) "--bus-introspect", NULL };
        _cleanup_fclose_ FILE *f = NULL;
        size_t n = 0;

        ASSERT_EQ(test_run(argv, &xml), 0);
        f = fopen(path, "re");
        ASSERT_NOT_NULL(f);
        ASSERT_TRUE(getdelim(&file, &n, '\0', f) > 0);
        served = vault_interfaces(xml);
        committed = vault_interfaces(file);
        vt_assert_contains(served, "<interface name=\"org.eve.Vault.Manager\">");
        vt_assert_contains(served, "<interface name=\"org.eve.Vault.Vault\">");
        if (!streq(served, committed))
                test_fail(__FILE__,
                          __LINE__,
                          "dbus/org.eve.Vault.xml differs from what eve-vaultd --bus-introspect prints:\n%s",
                          served);
}

TEST(default_vaults_created_then_reopened_by_the_tpm) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {};
        _cleanup_free_ char *uuid1 = NULL, *uuid2 = NULL, *img = NULL, *ks = NULL, *es = NULL, *mp = NULL;
        VaultDaemon *d;
        struct stat st;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);

        assert_opened("config", "tpm");
        assert_opened("image", "tpm");
        ASSERT_OK(asprintf(&img, "%s/persist/vault-images/image.img", d->root));
        ASSERT_OK(stat(img, &st));
        ASSERT_EQ(st.st_size, 32 << 20);
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 1);
        ks = vt_get_str("image", "KeySource");
        ASSERT_STREQ(ks, "tpm");
        es = vt_get_str("image", "EscrowState");
        ASSERT_STREQ(es, "pending");
        mp = vt_get_str("image", "MountPoint");
        ASSERT_TRUE(strstr(mp, "/persist/vault") && !strstr(mp, "/persist/vaults"));
        ASSERT_EQ(vt_get_pcrs("image", "SealingPCRs"), 0x7fdf); /* 0-4, 6-14 */
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 1);
        ASSERT_TRUE(vt_get_bool_manager("EscrowPending"));

        /* Both escrow blobs are there for STORE_KEYS, each as an EveVaultEscrow for its vault. */
        uuid1 = vt_get_str("image", "UUID");
        uuid2 = vt_get_str("config", "UUID");
        vt_get_escrow_keys(&keys);
        ASSERT_EQ(keys.n, 2);
        ASSERT_NOT_NULL(vt_find_escrow(&keys, uuid1));
        ASSERT_NOT_NULL(vt_find_escrow(&keys, uuid2));

        /* A restart finds them (no new vaults) and opens them again through the TPM. */
        vt_daemon_restart(d, NULL);
        {
                _cleanup_free_ char *again = vt_get_str("image", "UUID");
                ASSERT_STREQ(again, uuid1);
        }
        assert_opened("image", "tpm");
        assert_opened("config", "tpm");
}

DEFINE_TEST_MAIN
