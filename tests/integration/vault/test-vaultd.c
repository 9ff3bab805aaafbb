/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vaultd as a process on a private bus, with swtpm and image files: default vaults, the TPM path at
 * start, the escrow rescue through SubmitKeys after a PCR change, a blob from another TPM refused, key
 * rotation held until ConfirmEscrow (at most two keys), a kill of the worker at every rotation step, bad
 * tokens and blobs refused with reasons, and the admin check. No device-mapper on the build host: activation
 * must end in DeviceMapperUnavailable with the key verified, never in a fake Unlocked. */
#include <sys/stat.h>

#include "crypto-util.h"
#include "evetrust.pb-c.h"
#include "luks2-util.h"
#include "proto-util.h"
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

/* Left locked at start because sealing PCR pcr moved: named in LastError and MovedPCRs. */
static void assert_locked_by_pcr(const char *name, unsigned pcr) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *en = vt_get_str(name, "LastErrorName"),
                            *e = vt_get_str(name, "LastError"), *m = vt_get_str(name, "UnlockMethod"),
                            *part = NULL;

        ASSERT_OK(asprintf(&part, "PCRs %u changed", pcr));
        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(m, "none");
        ASSERT_STREQ(en, VT_ERR("KeyUnavailable"));
        vt_assert_contains(e, part);
        ASSERT_EQ(vt_get_pcrs(name, "MovedPCRs"), UINT32_C(1) << pcr);
}

/* The controller's copy of the vault's escrow (SubmitKeys, as attestd hands it over) opens it and re-seals
 * it to today's PCRs. */
static void rescue_by_escrow(const VtEntries *keys, const char *name) {
        _cleanup_(vt_entries_done) VtEntries one = {};
        _cleanup_free_ char *uuid = vt_get_str(name, "UUID");
        uint64_t since = vt_get_u64(name, "LastOperationTime");
        uint32_t served = 0;

        vt_entries_add(&one, vt_find_escrow(keys, uuid));
        ASSERT_OK(vt_send_entries("SubmitKeys", &one, NULL, &served));
        ASSERT_EQ(served, 1);
        vt_wait_op(name, "unlock", since);
        assert_opened(name, "controller");
        ASSERT_EQ(vt_get_pcrs(name, "MovedPCRs"), 0);
}

/* PCR 7 moves: the TPM refuses at start, the vault stays locked naming PCR 7; the controller's copy of the
 * escrow (SubmitKeys, as attestd hands it over) unwraps in this TPM, opens the vault and re-seals it; after
 * that the TPM path works again. */
TEST(pcr_change_then_escrow_rescue_through_submitkeys) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {};
        _cleanup_free_ char *uuid = NULL;
        VaultDaemon *d;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        uuid = vt_get_str("config", "UUID");
        vt_get_escrow_keys(&keys);
        ASSERT_NOT_NULL(vt_find_escrow(&keys, uuid));

        vt_daemon_stop(d);
        vt_extend(t, 7, 0x99);
        vt_daemon_restart(d, NULL);
        assert_locked_by_pcr("config", 7);
        /* Unlock() says the same, by name. */
        {
                _cleanup_free_ char *path = vt_path("config");
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(vt_call(path, VT_IFACE, "Unlock", &error, NULL, NULL) < 0);
                ASSERT_STREQ(error.name, VT_ERR("KeyUnavailable"));
        }

        rescue_by_escrow(&keys, "config");

        /* Re-sealed to today's PCRs: the TPM alone opens it again, also after a restart. */
        vt_daemon_restart(d, NULL);
        assert_opened("config", "tpm");
}

/* The disk moved to another machine: neither that TPM nor the escrow blob (wrapped by the first TPM) opens
 * it. */
TEST(escrow_blob_from_another_tpm_refused) {
        Swtpm *a = test_swtpm_start(0, NULL), *b = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {}, one = {};
        _cleanup_free_ char *uuid = NULL, *from = NULL, *to = NULL, *dir = NULL, *cmd = NULL;
        char *root_b = test_mkdtemp("root-b");
        VaultDaemon *d;
        uint64_t since;
        uint32_t served = 0;

        vt_provision(a, 0x11);
        vt_provision(b, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(a, NULL, NULL);
        uuid = vt_get_str("image", "UUID");
        vt_get_escrow_keys(&keys);
        vt_entries_add(&one, vt_find_escrow(&keys, uuid));
        vt_daemon_stop(d);

        ASSERT_OK(asprintf(&dir, "%s/persist/vault-images", root_b));
        ASSERT_OK(asprintf(
                        &cmd, "mkdir -p %s && cp %s/persist/vault-images/image.img %s/", dir, d->root, dir));
        ASSERT_EQ(system(cmd), 0);
        free(d->root);
        d->root = root_b;
        free(d->log);
        ASSERT_OK(asprintf(&d->log, "%s/vaultd.log", root_b));
        d->tpm = b;
        vt_daemon_restart(d, NULL);
        {
                _cleanup_free_ char *state = vt_get_str("image", "State"),
                                    *again = vt_get_str("image", "UUID");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(again, uuid);
        }
        since = vt_get_u64("image", "LastOperationTime");
        ASSERT_OK(vt_send_entries("SubmitKeys", &one, NULL, &served));
        ASSERT_EQ(served, 1);
        vt_wait_op("image", "unlock", since);
        {
                _cleanup_free_ char *state = vt_get_str("image", "State"),
                                    *en = vt_get_str("image", "LastErrorName"),
                                    *e = vt_get_str("image", "LastError"),
                                    *m = vt_get_str("image", "UnlockMethod");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(m, "none");
                ASSERT_STREQ(en, VT_ERR("KeyRejected"));
                vt_assert_contains(e, "another TPM");
        }
        (void) from;
        (void) to;
}

static void confirm_all(void) {
        _cleanup_(vt_entries_done) VtEntries keys = {};

        vt_get_escrow_keys(&keys);
        ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
}

static int change_key(const char *name, const char *source, sd_bus_error *error, int *ret_completed) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = vt_path(name);
        int r, completed = 0;

        r = vt_call(path, VT_IFACE, "ChangeKey", error, &reply, "sau", source, 0);
        if (r >= 0)
                ASSERT_OK(sd_bus_message_read(reply, "b", &completed));
        if (ret_completed)
                *ret_completed = completed;
        return r;
}

/* ChangeKey: a new key, sealed and escrowed; the old keyslot stays until the controller confirms it stores
 * the new escrow (ConfirmEscrow), never more than two keys, and a second change waits for that. */
TEST(rotation_held_until_the_escrow_is_confirmed) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {};
        _cleanup_free_ char *uuid = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int completed = 0;
        uint64_t since;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        vt_daemon_start(t, NULL, NULL);
        confirm_all();
        vt_wait_str("image", "EscrowState", "confirmed");
        ASSERT_FALSE(vt_get_bool_manager("EscrowPending"));
        uuid = vt_get_str("image", "UUID");

        ASSERT_OK(change_key("image", "", NULL, &completed));
        ASSERT_TRUE(completed);
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 2);
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 2);
        {
                _cleanup_free_ char *rot = vt_get_str("image", "Rotation"),
                                    *es = vt_get_str("image", "EscrowState");
                ASSERT_STREQ(rot, "unconfirmed");
                ASSERT_STREQ(es, "pending");
        }
        ASSERT_TRUE(vt_get_bool_manager("EscrowPending"));
        ASSERT_TRUE(change_key("image", "", &error, NULL) < 0);
        ASSERT_STREQ(error.name, VT_ERR("Busy"));
        vt_assert_contains(error.message, "at most two keys");

        /* The new escrow is what GetEscrowKeys hands out now; its confirmation removes the old keyslot. */
        vt_get_escrow_keys(&keys);
        ASSERT_NOT_NULL(vt_find_escrow(&keys, uuid));
        since = vt_get_u64("image", "LastOperationTime");
        ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
        vt_wait_op("image", "confirm", since);
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 1);
        {
                _cleanup_free_ char *rot = vt_get_str("image", "Rotation"),
                                    *es = vt_get_str("image", "EscrowState");
                ASSERT_STREQ(rot, "none");
                ASSERT_STREQ(es, "confirmed");
        }
        /* And the TPM opens the new key. */
        {
                _cleanup_free_ char *path = vt_path("image");
                (void) vt_call(path, VT_IFACE, "Unlock", NULL, NULL, NULL);
        }
        assert_opened("image", "tpm");
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 2);
}

/* The worker killed (SIGKILL) at each step of a key change: the daemon reports it and keeps serving, the
 * image never holds more than two keys, and the next unlock resolves the journal: the vault opens with the
 * old or the new key. */
TEST(rotation_killed_at_every_step_through_the_daemon) {
        static const char *const steps[] = { "started", "slot-add", "slot-added",
                                             "seal",    "sealed",   "escrowed" };
        Swtpm *t = test_swtpm_start(0, NULL);
        VaultDaemon *d;
        uint64_t generation = 1;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *path = vt_path("image");
                bool forward = streq(steps[i], "escrowed");
                uint64_t since;

                vt_daemon_restart(d, steps[i]);
                since = vt_get_u64("image", "LastOperationTime");
                ASSERT_TRUE(change_key("image", "", &error, NULL) < 0);
                ASSERT_STREQ(error.name, VT_ERR("WorkerFailed"));
                vt_assert_contains(error.message, "killed by signal 9");
                /* Still serving; what the worker left is read back. */
                vt_wait_op("image", "inspect", since);
                ASSERT_LE(vt_get_u32("image", "Keyslots"), 2);
                {
                        _cleanup_free_ char *en = vt_get_str("image", "LastErrorName");
                        ASSERT_STREQ(en, VT_ERR("WorkerFailed"));
                }

                /* The next unlock resolves the journal. */
                (void) vt_call(path, VT_IFACE, "Unlock", NULL, NULL, NULL);
                assert_opened("image", "tpm");
                if (forward) {
                        /* Held for the controller's confirmation: two keys until then. */
                        _cleanup_free_ char *rot = vt_get_str("image", "Rotation");
                        generation++;
                        ASSERT_STREQ(rot, "unconfirmed");
                        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 2);
                        since = vt_get_u64("image", "LastOperationTime");
                        confirm_all();
                        vt_wait_op("image", "confirm", since);
                }
                {
                        _cleanup_free_ char *rot = vt_get_str("image", "Rotation");
                        ASSERT_STREQ(rot, "none");
                }
                ASSERT_EQ(vt_get_u32("image", "Keyslots"), 1);
                ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), generation);
        }

        /* A kill while the confirmation removes the old keyslot. */
        vt_daemon_restart(d, "confirm");
        {
                uint64_t since;
                ASSERT_OK(change_key("image", "", NULL, NULL));
                since = vt_get_u64("image", "LastOperationTime");
                confirm_all();
                vt_wait_op("image", "inspect", since);
        }
        vt_daemon_restart(d, NULL);
        assert_opened("image", "tpm");
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), generation + 1);
        ASSERT_LE(vt_get_u32("image", "Keyslots"), 2);
        {
                uint64_t since = vt_get_u64("image", "LastOperationTime");
                confirm_all();
                vt_wait_op("image", "confirm", since);
        }
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 1);
}

/* A key change waits for the controller's confirmation; meanwhile the PCRs move and the controller releases
 * the only escrow it has, the old key's: it opens the old keyslot, the unconfirmed change is undone, and the
 * vault is re-sealed with the old key, whose escrow the controller holds. */
TEST(old_escrow_undoes_an_unconfirmed_key_change) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {}, old = {};
        _cleanup_free_ char *uuid = NULL;
        VaultDaemon *d;
        uint64_t since;
        uint32_t served = 0;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        uuid = vt_get_str("image", "UUID");
        vt_get_escrow_keys(&keys);
        vt_entries_add(&old, vt_find_escrow(&keys, uuid));
        ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
        vt_wait_str("image", "EscrowState", "confirmed");

        ASSERT_OK(change_key("image", "", NULL, NULL));
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 2);
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 2);

        vt_daemon_stop(d);
        vt_extend(t, 7, 0x55);
        vt_daemon_restart(d, NULL);
        {
                _cleanup_free_ char *en = vt_get_str("image", "LastErrorName");
                ASSERT_STREQ(en, VT_ERR("KeyUnavailable"));
        }
        since = vt_get_u64("image", "LastOperationTime");
        ASSERT_OK(vt_send_entries("SubmitKeys", &old, NULL, &served));
        ASSERT_EQ(served, 1);
        vt_wait_op("image", "unlock", since);
        assert_opened("image", "controller");
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 1);
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 1);
        {
                _cleanup_free_ char *rot = vt_get_str("image", "Rotation"),
                                    *es = vt_get_str("image", "EscrowState");
                ASSERT_STREQ(rot, "none");
                ASSERT_STREQ(es, "confirmed");
        }
        vt_daemon_restart(d, NULL);
        assert_opened("image", "tpm");
}

typedef struct Denied {
        const char *path, *iface, *method, *types;
} Denied;

static int call_denied(void *userdata) {
        const Denied *c = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (!c->types)
                r = vt_call(c->path, c->iface, c->method, &error, NULL, NULL);
        else if (streq(c->types, "s"))
                r = vt_call(c->path, c->iface, c->method, &error, NULL, "s", "x");
        else if (streq(c->types, "stsau"))
                r = vt_call(c->path,
                            c->iface,
                            c->method,
                            &error,
                            NULL,
                            "stsau",
                            "x",
                            (uint64_t) 64 << 20,
                            "tpm",
                            0);
        else if (streq(c->types, "sau"))
                r = vt_call(c->path, c->iface, c->method, &error, NULL, "sau", "", 0);
        else if (streq(c->types, "a(ssstsauust)a(ss)"))
                r = vt_call(c->path, c->iface, c->method, &error, NULL, "a(ssstsauust)a(ss)", 0, 0);
        else
                r = vt_call(c->path, c->iface, c->method, &error, NULL, "a(uay)", 0);
        if (r >= 0)
                return 0;
        if (sd_bus_error_has_name(&error, VT_ERR("AccessDenied")) && strstr(error.message, c->method) &&
            strstr(error.message, "root"))
                return 1;
        fprintf(stderr, "%s: %s: %s\n", c->method, error.name, error.message);
        return -EIO;
}

static int read_state(void *userdata) {
        _cleanup_free_ char *s = vt_get_str("image", "State");
        return streq(s, "Locked") || streq(s, "Unlocked") ? 7 : -EIO;
}

static int list_vaults(void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return vt_call(VT_MANAGER, VT_MANAGER_IFACE, "ListVaults", NULL, &reply, NULL) >= 0 ? 7 : -EIO;
}

/* Whatever changes a vault, or hands out or takes key material, is refused to others than root and the admin
 * group with the named error; reading is open. */
TEST(unprivileged_callers_denied_reads_allowed) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *path = NULL;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        vt_daemon_start(t, NULL, NULL);
        path = vt_path("image");
        {
                const Denied calls[] = {
                        { VT_MANAGER, VT_MANAGER_IFACE, "CreateVault", "stsau" },
                        { VT_MANAGER, VT_MANAGER_IFACE, "DeleteVault", "s" },
                        { VT_MANAGER, VT_MANAGER_IFACE, "GetEscrowKeys", NULL },
                        { VT_MANAGER, VT_MANAGER_IFACE, "ConfirmEscrow", "a(uay)" },
                        { VT_MANAGER, VT_MANAGER_IFACE, "SubmitKeys", "a(uay)" },
                        { VT_MANAGER, VT_MANAGER_IFACE, "ApplyConfig", "a(ssstsauust)a(ss)" },
                        { path, VT_IFACE, "Unlock", NULL },
                        { path, VT_IFACE, "Lock", NULL },
                        { path, VT_IFACE, "ChangeKey", "sau" },
                };
                for (size_t i = 0; i < ELEMENTSOF(calls); i++)
                        ASSERT_EQ(test_call_as("nobody", call_denied, (void *) &calls[i]), 1);
        }
        ASSERT_EQ(test_call_as("nobody", read_state, NULL), 7);
        ASSERT_EQ(test_call_as("nobody", list_vaults, NULL), 7);
        /* Nothing changed. */
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 1);
}

/* A vault whose eve-vault token is damaged is reported in state Error with the reason, nothing else is
 * touched; escrow entries that are not what they claim are refused with reasons. */
TEST(bad_tokens_and_bad_blobs_refused) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_free_ char *img = NULL, *json = NULL, *edited = NULL, *uuid = NULL;
        _cleanup_(vt_entries_done) VtEntries junk = {};
        VaultDaemon *d;
        uint64_t since;
        uint32_t served = 0;
        int id;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        uuid = vt_get_str("config", "UUID");
        vt_daemon_stop(d);

        /* The image vault's token names keyslot 40. */
        ASSERT_OK(asprintf(&img, "%s/persist/vault-images/image.img", d->root));
        ASSERT_OK(luks2_open(img, &cd));
        ASSERT_OK(luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, &id, &json));
        ASSERT_NOT_NULL(strstr(json, "\"keyslot\":0"));
        ASSERT_OK(
                        asprintf(&edited,
                                 "%.*s\"keyslot\":40%s",
                                 (int) (strstr(json, "\"keyslot\":0") - json),
                                 json,
                                 strstr(json, "\"keyslot\":0") + strlen("\"keyslot\":0")));
        ASSERT_OK(luks2_token_write(cd, id, edited, -1));
        cd = (luks2_crypt_freep(&cd), NULL);

        vt_extend(t, 7, 0x42);
        vt_daemon_restart(d, NULL);
        {
                _cleanup_free_ char *state = vt_get_str("image", "State"),
                                    *en = vt_get_str("image", "LastErrorName"),
                                    *e = vt_get_str("image", "LastError");
                ASSERT_STREQ(state, "Error");
                ASSERT_STREQ(en, VT_ERR("BadImage"));
                vt_assert_contains(e, "eve-vault token refused: keyslot");
        }

        /* Not an EveVaultEscrow: refused at once, with the entry named. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                junk.e[0] = (VtEntry){ .type = 17750,
                                       .key = (uint8_t *) strdup("\x0a\x05hello"),
                                       .size = 7 };
                junk.n = 1;
                ASSERT_TRUE(vt_send_entries("SubmitKeys", &junk, &error, NULL) < 0);
                ASSERT_STREQ(error.name, VT_ERR("KeyRejected"));
                vt_assert_contains(error.message, "entry 0 (type 17750)");
                vt_entries_done(&junk);
        }

        /* A well-formed entry for the (PCR-locked) config vault whose blob is junk: the worker refuses it.
         */
        {
                _cleanup_free_ uint8_t *p = NULL;
                size_t n;
                Org__Eve__Trust__EveVaultEscrow e = ORG__EVE__TRUST__EVE_VAULT_ESCROW__INIT;

                e.vault_uuid = uuid;
                e.generation = 1;
                e.data = (ProtobufCBinaryData){ .len = 7, .data = (uint8_t *) "\x0a\x05hello" };
                ASSERT_OK(PROTO_PACK(&e, &p, &n));
                junk.e[0] = (VtEntry){ .type = 17750, .key = TAKE_PTR(p), .size = n };
                junk.n = 1;
                since = vt_get_u64("config", "LastOperationTime");
                ASSERT_OK(vt_send_entries("SubmitKeys", &junk, NULL, &served));
                ASSERT_EQ(served, 1);
                vt_wait_op("config", "unlock", since);
        }
        {
                _cleanup_free_ char *state = vt_get_str("config", "State"),
                                    *en = vt_get_str("config", "LastErrorName"),
                                    *e = vt_get_str("config", "LastError");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(en, VT_ERR("KeyRejected"));
                vt_assert_contains(e, "escrow blob refused: escrow blob: encrypted_key");
        }
}

/* CreateVault/DeleteVault: what is refused (names, sizes, PCR policy, existing names, default vaults), and a
 * deleted vault is gone with its image. */
TEST(create_and_delete) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *img = NULL;
        VaultDaemon *d;
        const char *path = NULL;
        static const uint32_t no_pcr0[] = { 1, 7 }, pcr5[] = { 0, 5 }, ok[] = { 0, 7 };
        struct {
                const char *name;
                uint64_t size;
                const char *source;
                const uint32_t *pcrs;
                size_t n;
                const char *error, *part;
        } bad[] = {
                { "Big", 32 << 20, "tpm", NULL, 0, SD_BUS_ERROR_INVALID_ARGS, "Invalid vault name" },
                { "-x", 32 << 20, "tpm", NULL, 0, SD_BUS_ERROR_INVALID_ARGS, "Invalid vault name" },
                { "small", 1 << 20, "tpm", NULL, 0, VT_ERR("InvalidPolicy"), "below the minimum" },
                { "nopcr0", 32 << 20, "tpm", no_pcr0, 2, VT_ERR("InvalidPolicy"), "PCR 0 is required" },
                { "pcr5", 32 << 20, "tpm", pcr5, 2, VT_ERR("InvalidPolicy"), "PCR 5" },
                { "usb", 32 << 20, "usb", NULL, 0, VT_ERR("InvalidPolicy"), "Unknown key source" },
                { "image", 32 << 20, "tpm", NULL, 0, VT_ERR("VaultExists"), "exists already" },
        };

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                ASSERT_OK(sd_bus_message_new_method_call(
                                bus, &m, VT_BUS, VT_MANAGER, VT_MANAGER_IFACE, "CreateVault"));
                ASSERT_OK(sd_bus_message_append(m, "sts", bad[i].name, bad[i].size, bad[i].source));
                ASSERT_OK(sd_bus_message_append_array(m, 'u', bad[i].pcrs, bad[i].n * sizeof(uint32_t)));
                ASSERT_TRUE(sd_bus_call(bus, m, 0, &error, NULL) < 0);
                ASSERT_STREQ(error.name, bad[i].error);
                vt_assert_contains(error.message, bad[i].part);
        }

        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

                ASSERT_OK(sd_bus_message_new_method_call(
                                bus, &m, VT_BUS, VT_MANAGER, VT_MANAGER_IFACE, "CreateVault"));
                ASSERT_OK(sd_bus_message_append(m, "sts", "app-1", (uint64_t) 40 << 20, "tpm"));
                ASSERT_OK(sd_bus_message_append_array(m, 'u', ok, sizeof(ok)));
                ASSERT_OK(sd_bus_call(bus, m, 0, NULL, &reply));
                ASSERT_OK(sd_bus_message_read(reply, "o", &path));
        }
        {
                _cleanup_free_ char *want = vt_path("app-1"), *mp = vt_get_str("app-1", "MountPoint");
                ASSERT_STREQ(path, want);
                vt_assert_contains(mp, "/persist/vaults/app-1");
        }
        assert_opened("app-1", "tpm");
        /* Lock (systemd is asked to unmount first; not on this bus: skipped). */
        ASSERT_OK(vt_call(path, VT_IFACE, "Lock", NULL, NULL, NULL));
        {
                _cleanup_free_ char *state = vt_get_str("app-1", "State"),
                                    *m = vt_get_str("app-1", "UnlockMethod"),
                                    *op = vt_get_str("app-1", "LastOperation");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(m, "none");
                ASSERT_STREQ(op, "lock");
        }
        ASSERT_EQ(vt_get_pcrs("app-1", "SealingPCRs"), 0x81);
        ASSERT_EQ(vt_get_u64("app-1", "Size"), 40 << 20);
        ASSERT_OK(asprintf(&img, "%s/persist/vault-images/app-1.img", d->root));
        ASSERT_OK(access(img, F_OK));

        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(vt_call(VT_MANAGER,
                                    VT_MANAGER_IFACE,
                                    "DeleteVault",
                                    &error,
                                    NULL,
                                    "s",
                                    "config") < 0);
                ASSERT_STREQ(error.name, VT_ERR("InvalidPolicy"));
        }
        ASSERT_OK(vt_call(VT_MANAGER, VT_MANAGER_IFACE, "DeleteVault", NULL, NULL, "s", "app-1"));
        ASSERT_TRUE(access(img, F_OK) < 0 && errno == ENOENT);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(vt_call(VT_MANAGER, VT_MANAGER_IFACE, "GetVault", &error, NULL, "s", "app-1") <
                            0);
                ASSERT_STREQ(error.name, VT_ERR("NoSuchVault"));
        }
}

/* A vault made through the bus (created, then opened), sealed to pcrs (n 0: the default set). */
static void create_vault(const char *name, const uint32_t *pcrs, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

        ASSERT_OK(sd_bus_message_new_method_call(
                        bus, &m, VT_BUS, VT_MANAGER, VT_MANAGER_IFACE, "CreateVault"));
        ASSERT_OK(sd_bus_message_append(m, "sts", name, (uint64_t) 32 << 20, "tpm"));
        ASSERT_OK(sd_bus_message_append_array(m, 'u', pcrs, n * sizeof(uint32_t)));
        ASSERT_OK(sd_bus_call(bus, m, 0, NULL, NULL));
}

/* How many workers of op the daemon started since its log had size from (EVE_LOG_LEVEL=debug). */
static unsigned workers_started(const VaultDaemon *d, long from, const char *op) {
        _cleanup_fclose_ FILE *f = fopen(d->log, "re");
        _cleanup_free_ char *line = NULL, *what = NULL;
        size_t n = 0;
        unsigned k = 0;

        ASSERT_NOT_NULL(f);
        ASSERT_OK(fseek(f, from, SEEK_SET));
        ASSERT_OK(asprintf(&what, "worker %s started", op));
        while (getline(&line, &n, f) > 0)
                if (strstr(line, what))
                        k++;
        return k;
}

static long log_size(const VaultDaemon *d) {
        struct stat st;

        ASSERT_OK(stat(d->log, &st));
        return (long) st.st_size;
}

static VaultDaemon *restart_debug(VaultDaemon *d, const char *crash_at, long *ret_from) {
        *ret_from = log_size(d);
        ASSERT_OK(setenv("EVE_LOG_LEVEL", "debug", 1));
        vt_daemon_restart(d, crash_at);
        ASSERT_OK(unsetenv("EVE_LOG_LEVEL"));
        return d;
}

/* At start all vaults are unlocked by one worker (one process, one TPM context), each reported by itself:
 * the vault whose PCRs moved stays locked naming them while the others open, and then takes the usual way
 * out (the controller's escrow through SubmitKeys). */
TEST(start_unlocks_every_vault_with_one_worker) {
        static const uint32_t pcr15[] = { 0, 15 };
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {};
        _cleanup_free_ char *uuid = NULL;
        VaultDaemon *d;
        long from;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        create_vault("app-1", pcr15, ELEMENTSOF(pcr15));
        create_vault("app-2", NULL, 0);
        uuid = vt_get_str("app-1", "UUID");
        vt_get_escrow_keys(&keys);
        ASSERT_NOT_NULL(vt_find_escrow(&keys, uuid));

        vt_daemon_stop(d);
        vt_extend(t, 15, 0x77); /* app-1's PCRs move, the others' do not */
        restart_debug(d, NULL, &from);
        vt_wait_op("app-1", "unlock", 0);
        vt_wait_op("app-2", "unlock", 0);
        ASSERT_EQ(workers_started(d, from, "unlock"), 1);
        assert_opened("config", "tpm");
        assert_opened("image", "tpm");
        assert_opened("app-2", "tpm");
        assert_locked_by_pcr("app-1", 15);
        {
                _cleanup_free_ char *op = vt_get_str("app-1", "LastOperation"),
                                    *res = vt_get_str("app-1", "LastOperationResult");
                ASSERT_STREQ(op, "unlock");
                ASSERT_STREQ(res, VT_ERR("KeyUnavailable"));
        }
        ASSERT_EQ(vt_get_pcrs("app-2", "MovedPCRs"), 0);
        rescue_by_escrow(&keys, "app-1");
}

/* The start's worker killed mid-way (after the config vault's result, as it begins the next): the vault
 * reported stays as reported, the one it was on is read back (WorkerFailed, then inspected) and opens on
 * Unlock(), the ones it never began are unlocked one by one. */
TEST(start_worker_killed_mid_way) {
        Swtpm *t = test_swtpm_start(0, NULL);
        VaultDaemon *d;
        long from;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        create_vault("app-1", NULL, 0);
        /* The order: config first, then by name (app-1, image). */
        restart_debug(d, "batch-next", &from);
        vt_wait_op("app-1", "inspect", 0);
        assert_opened("config", "tpm");
        assert_opened("image", "tpm");
        {
                _cleanup_free_ char *state = vt_get_str("app-1", "State"),
                                    *en = vt_get_str("app-1", "LastErrorName"),
                                    *e = vt_get_str("app-1", "LastError");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(en, VT_ERR("WorkerFailed"));
                vt_assert_contains(e, "killed by signal 9");
        }
        ASSERT_EQ(workers_started(d, from, "unlock"), 2); /* the batch, then image's own */
        {
                _cleanup_free_ char *path = vt_path("app-1");
                (void) vt_call(path, VT_IFACE, "Unlock", NULL, NULL, NULL); /* no device-mapper: an error */
        }
        assert_opened("app-1", "tpm");
}

static int on_manager_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *iface, *name;
        unsigned *seen = userdata;

        if (sd_bus_message_read(m, "s", &iface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                int b = 0;

                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (streq(name, "EscrowPending") && sd_bus_message_read(m, "v", "b", &b) >= 0 && b)
                        (*seen)++;
                else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        return 0;
}

/* A vault made after the escrow exchange has begun must reach the controller too: eve-vaultd says so with
 * EscrowPending (true) although it was true all along (the default vaults not confirmed yet), which is what
 * makes eve-attestd run another round. A vault whose key the controller holds (confirmed) does not. */
TEST(new_escrow_signalled_while_escrow_pending_stays_true) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        static const uint32_t pcrs[] = { 0, 7 };
        unsigned seen = 0;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        vt_daemon_start(t, NULL, NULL);
        ASSERT_TRUE(vt_get_bool_manager("EscrowPending"));
        bus = vt_bus();
        ASSERT_OK(sd_bus_match_signal(
                        bus,
                        &slot,
                        VT_BUS,
                        VT_MANAGER,
                        "org.freedesktop.DBus.Properties",
                        "PropertiesChanged",
                        on_manager_changed,
                        &seen));
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *c = vt_bus();
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

                ASSERT_OK(sd_bus_message_new_method_call(
                                c, &m, VT_BUS, VT_MANAGER, VT_MANAGER_IFACE, "CreateVault"));
                ASSERT_OK(sd_bus_message_append(m, "sts", "late", (uint64_t) 32 << 20, "tpm"));
                ASSERT_OK(sd_bus_message_append_array(m, 'u', pcrs, sizeof(pcrs)));
                ASSERT_OK(sd_bus_call(c, m, 0, NULL, NULL));
        }
        vt_wait_op("late", "unlock", 0);
        for (unsigned i = 0; i < 200 && seen == 0; i++) {
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                (void) sd_bus_wait(bus, 10000);
        }
        ASSERT_GE(seen, 1u);
        ASSERT_TRUE(vt_get_bool_manager("EscrowPending"));
}

DEFINE_TEST_MAIN
