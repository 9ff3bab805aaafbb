/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The administrator's recovery key, through the real eve-vaultd and its worker on a private bus with swtpm
 * and image files: AddRecoveryKey hands it out once; stock cryptsetup takes it as typed; after a sealing PCR
 * moved (the TPM refuses) UnlockWithRecoveryKey opens the vault and re-seals it, so the TPM opens it again
 * after a restart with the PCR still moved; a wrong key changes nothing; the recovery keyslot survives key
 * changes, also one whose worker is killed; unprivileged callers are denied; the key never reaches the
 * daemon's log. No device-mapper on the build host: the key is verified and the daemon says
 * DeviceMapperUnavailable. */
#include <ctype.h>
#include <sys/wait.h>

#include "vault-test.h"

/* AddRecoveryKey on vault name: the key, checked for its form (8 groups of 8 lower-case hex digits). */
static char *add_recovery_key(const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = vt_path(name);
        const char *key;

        ASSERT_OK(vt_call(path, VT_IFACE, "AddRecoveryKey", NULL, &reply, NULL));
        ASSERT_OK(sd_bus_message_read(reply, "s", &key));
        ASSERT_EQ(strlen(key), 71);
        for (size_t i = 0; i < 71; i++)
                if (i % 9 == 8)
                        ASSERT_EQ(key[i], '-');
                else
                        ASSERT_TRUE(strchr("0123456789abcdef", key[i]) != NULL);
        return strdup(key);
}

static int unlock_with(const char *name, const char *key, sd_bus_error *error) {
        _cleanup_free_ char *path = vt_path(name);
        return vt_call(path, VT_IFACE, "UnlockWithRecoveryKey", error, NULL, "s", key);
}

static bool has_recovery_key(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = vt_path(name);
        int b = -1;

        ASSERT_OK(sd_bus_get_property_trivial(
                        bus, VT_BUS, path, VT_IFACE, "HasRecoveryKey", &error, 'b', &b));
        return b;
}

static char *image_of(const VaultDaemon *d, const char *name) {
        char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/persist/vault-images/%s.img", d->root, name));
        return p;
}

/* Stock cryptsetup, as an administrator without eve-vaultd or the TPM would use it: the key typed on stdin.
 * True when it opens a keyslot of the image. */
static bool cryptsetup_accepts(const char *image, const char *key) {
        _cleanup_free_ char *cmd = NULL;
        FILE *p;
        int status;

        ASSERT_OK(asprintf(&cmd, "cryptsetup open --test-passphrase '%s' 2>/dev/null", image));
        p = popen(cmd, "w");
        ASSERT_NOT_NULL(p);
        fprintf(p, "%s\n", key);
        status = pclose(p);
        ASSERT_TRUE(WIFEXITED(status));
        return WEXITSTATUS(status) == 0;
}

static void assert_key_verified(const char *name, const char *method) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod"),
                            *en = vt_get_str(name, "LastErrorName"), *e = vt_get_str(name, "LastError");

        ASSERT_STREQ(m, method);
        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(en, VT_ERR("DeviceMapperUnavailable"));
        vt_assert_contains(e, "key verified");
}

/* The key, with or without its dashes, nowhere in the daemon's log (which holds its workers' stderr). */
static void assert_not_logged(const VaultDaemon *d, const char *key) {
        _cleanup_fclose_ FILE *f = fopen(d->log, "re");
        _cleanup_free_ char *log = NULL, *plain = strdup(key);
        size_t n = 0, k = 0;

        ASSERT_NOT_NULL(f);
        ASSERT_NOT_NULL(plain);
        ASSERT_TRUE(getdelim(&log, &n, '\0', f) > 0);
        for (const char *p = key; *p; p++)
                if (*p != '-')
                        plain[k++] = *p;
        plain[k] = '\0';
        ASSERT_TRUE(strstr(log, key) == NULL);
        ASSERT_TRUE(strstr(log, plain) == NULL);
        ASSERT_TRUE(strstr(log, key + 54) == NULL); /* not even its last two groups */
}

TEST(recovery_key_opens_what_the_tpm_refuses_and_reseals_it) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *key = NULL, *img = NULL, *typed = NULL, *wrong = NULL;
        VaultDaemon *d;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        img = image_of(d, "config");
        ASSERT_FALSE(has_recovery_key("config"));
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 1);

        key = add_recovery_key("config");
        ASSERT_TRUE(has_recovery_key("config"));
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 2);
        ASSERT_EQ(vt_get_u64("config", "KeyGeneration"), 1);
        /* Stock tools take it as shown; one digit off, they do not. */
        ASSERT_TRUE(cryptsetup_accepts(img, key));
        wrong = strdup(key);
        ASSERT_NOT_NULL(wrong);
        wrong[70] = wrong[70] == '0' ? '1' : '0';
        ASSERT_FALSE(cryptsetup_accepts(img, wrong));

        /* PCR 7 moves: the TPM refuses, the controller is not there. */
        vt_daemon_stop(d);
        vt_extend(t, 7, 0x77);
        vt_daemon_restart(d, NULL);
        {
                _cleanup_free_ char *state = vt_get_str("config", "State"),
                                    *en = vt_get_str("config", "LastErrorName");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(en, VT_ERR("KeyUnavailable"));
                ASSERT_EQ(vt_get_pcrs("config", "MovedPCRs"), UINT32_C(1) << 7);
        }

        /* A wrong key (well formed) and a malformed one: KeyRejected, nothing changed. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(unlock_with("config", wrong, &error) < 0);
                ASSERT_STREQ(error.name, VT_ERR("KeyRejected"));
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(unlock_with("config", "not-a-key", &error) < 0);
                ASSERT_STREQ(error.name, VT_ERR("KeyRejected"));
        }
        {
                _cleanup_free_ char *state = vt_get_str("config", "State"),
                                    *m = vt_get_str("config", "UnlockMethod");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(m, "none");
        }
        ASSERT_EQ(vt_get_u64("config", "KeyGeneration"), 1);
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 2);
        ASSERT_EQ(vt_get_pcrs("config", "MovedPCRs"), UINT32_C(1) << 7);

        /* The right one, as a person might type it (upper case, blanks instead of dashes): opened (the key
         * verified, no device-mapper here), and given a fresh TPM key under today's PCRs. */
        typed = strdup(key);
        ASSERT_NOT_NULL(typed);
        for (char *p = typed; *p; p++)
                *p = *p == '-' ? ' ' : (char) toupper((unsigned char) *p);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(unlock_with("config", typed, &error) < 0);
                ASSERT_STREQ(error.name, VT_ERR("DeviceMapperUnavailable"));
        }
        assert_key_verified("config", "recovery");
        ASSERT_EQ(vt_get_u64("config", "KeyGeneration"), 2);
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 2); /* the new TPM key and the recovery key */
        ASSERT_EQ(vt_get_pcrs("config", "MovedPCRs"), 0);
        ASSERT_TRUE(has_recovery_key("config"));
        {
                _cleanup_free_ char *es = vt_get_str("config", "EscrowState"),
                                    *uuid = vt_get_str("config", "UUID");
                _cleanup_(vt_entries_done) VtEntries keys = {};
                ASSERT_STREQ(es, "pending");
                vt_get_escrow_keys(&keys); /* the new key is escrowed for the controller */
                ASSERT_NOT_NULL(vt_find_escrow(&keys, uuid));
        }
        ASSERT_TRUE(cryptsetup_accepts(img, key));

        /* The next boot opens it through the TPM again, PCR 7 still where it moved. */
        vt_daemon_restart(d, NULL);
        assert_key_verified("config", "tpm");
        ASSERT_EQ(vt_get_u64("config", "KeyGeneration"), 2);
        ASSERT_EQ(vt_get_pcrs("config", "MovedPCRs"), 0);
        ASSERT_TRUE(has_recovery_key("config"));

        assert_not_logged(d, key);
}

TEST(recovery_keyslot_survives_key_changes_and_killed_workers) {
        static const char *const steps[] = { "slot-added", "sealed", "escrowed" };
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *key = NULL, *img = NULL, *path = NULL;
        VaultDaemon *d;
        uint64_t generation = 1;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        img = image_of(d, "image");
        path = vt_path("image");
        key = add_recovery_key("image");

        /* A key change, confirmed by the controller: the old TPM key goes, the recovery key stays. */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(vt_entries_done) VtEntries keys = {};
                uint64_t since;

                ASSERT_OK(vt_call(path, VT_IFACE, "ChangeKey", NULL, &reply, "sau", "", 0));
                ASSERT_EQ(vt_get_u32("image", "Keyslots"), 3); /* two TPM keys until confirmed, + recovery */
                since = vt_get_u64("image", "LastOperationTime");
                vt_get_escrow_keys(&keys);
                ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
                vt_wait_op("image", "confirm", since);
                generation++;
        }
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 2);
        ASSERT_TRUE(has_recovery_key("image"));
        ASSERT_TRUE(cryptsetup_accepts(img, key));

        /* The worker killed during a key change: rolled back (slot-added, sealed) or forward (escrowed) at
         * the next unlock; the recovery keyslot is never one of the keyslots dropped. */
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                bool forward = streq(steps[i], "escrowed");
                uint64_t since;

                vt_daemon_restart(d, steps[i]);
                since = vt_get_u64("image", "LastOperationTime");
                ASSERT_TRUE(vt_call(path, VT_IFACE, "ChangeKey", &error, NULL, "sau", "", 0) < 0);
                ASSERT_STREQ(error.name, VT_ERR("WorkerFailed"));
                vt_wait_op("image", "inspect", since);
                vt_daemon_restart(d, NULL); /* its start unlocks, which resolves the journal */
                assert_key_verified("image", "tpm");
                if (forward) {
                        _cleanup_(vt_entries_done) VtEntries keys = {};
                        generation++;
                        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 3);
                        since = vt_get_u64("image", "LastOperationTime");
                        vt_get_escrow_keys(&keys);
                        ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
                        vt_wait_op("image", "confirm", since);
                }
                ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), generation);
                ASSERT_EQ(vt_get_u32("image", "Keyslots"), 2);
                ASSERT_TRUE(has_recovery_key("image"));
                ASSERT_TRUE(cryptsetup_accepts(img, key));
        }

        /* A new recovery key replaces the old one. */
        {
                _cleanup_free_ char *again = add_recovery_key("image");
                ASSERT_FALSE(streq(again, key));
                ASSERT_EQ(vt_get_u32("image", "Keyslots"), 2);
                ASSERT_TRUE(cryptsetup_accepts(img, again));
                ASSERT_FALSE(cryptsetup_accepts(img, key));
                assert_not_logged(d, again);
        }
        assert_not_logged(d, key);
}

/* evectl with args through sh, stdin the line typed (or nothing); stdout and stderr together. The exit
 * status. */
static int evectl_sh(char **ret_out, const char *typed, const char *args) {
        _cleanup_free_ char *exe = vt_build_path("services/evectl/evectl"), *cmd = NULL;
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", NULL, NULL };

        ASSERT_OK(asprintf(&cmd, "printf '%s\\n' | %s %s 2>&1", typed ?: "", exe, args));
        argv[2] = cmd;
        return test_run(argv, ret_out);
}

/* evectl vault create --recovery-key prints the key once; evectl vault unlock --recovery-key reads it from
 * stdin and opens the vault the TPM refuses. */
TEST(evectl_create_with_recovery_key_then_unlock_with_it) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *out = NULL, *key = NULL, *img = NULL;
        VaultDaemon *d;
        const char *p;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        ASSERT_EQ(evectl_sh(&out, NULL, "vault create app-r --size 32M --recovery-key"), 0);
        p = strstr(out, "(shown only this once; keep it offline):\n\n    ");
        ASSERT_NOT_NULL(p);
        key = strndup(strchr(p, '\n') + 6, 71);
        ASSERT_NOT_NULL(key);
        ASSERT_EQ(key[8], '-');
        ASSERT_TRUE(has_recovery_key("app-r"));
        img = image_of(d, "app-r");
        ASSERT_TRUE(cryptsetup_accepts(img, key));
        free(out);
        out = NULL;
        ASSERT_EQ(evectl_sh(&out, NULL, "vault show app-r"), 0);
        vt_assert_contains(out, "Recovery key");
        vt_assert_contains(out, "yes");

        vt_daemon_stop(d);
        vt_extend(t, 7, 0x66);
        vt_daemon_restart(d, NULL);
        vt_wait_op("app-r", NULL, 0);
        free(out);
        out = NULL;
        /* Not in argv: --recovery-key takes no value; a wrong key first. */
        ASSERT_TRUE(evectl_sh(&out, "0000", "vault unlock app-r --recovery-key") != 0);
        vt_assert_contains(out, "Not a recovery key");
        free(out);
        out = NULL;
        ASSERT_TRUE(evectl_sh(&out, key, "vault unlock app-r --recovery-key") != 0); /* no device-mapper */
        vt_assert_contains(out, "key verified (recovery)");
        assert_key_verified("app-r", "recovery");
        ASSERT_EQ(vt_get_u64("app-r", "KeyGeneration"), 2);
        assert_not_logged(d, key);
}

/* The worker killed while adding a recovery keyslot: no recovery key recorded, the TPM still opens the
 * vault, and the next AddRecoveryKey works. */
TEST(add_recovery_key_killed_then_again) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *key = NULL, *img = NULL, *path = NULL;
        VaultDaemon *d;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, "recovery-slot-added");
        img = image_of(d, "image");
        path = vt_path("image");
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t since = vt_get_u64("image", "LastOperationTime");

                ASSERT_TRUE(vt_call(path, VT_IFACE, "AddRecoveryKey", &error, &reply, NULL) < 0);
                ASSERT_STREQ(error.name, VT_ERR("WorkerFailed"));
                vt_wait_op("image", "inspect", since);
        }
        ASSERT_FALSE(has_recovery_key("image"));
        vt_daemon_restart(d, NULL);
        assert_key_verified("image", "tpm");
        ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 1);
        key = add_recovery_key("image");
        ASSERT_TRUE(has_recovery_key("image"));
        ASSERT_TRUE(cryptsetup_accepts(img, key));
        assert_not_logged(d, key);
}

static int call_denied(void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = vt_path("image");
        const char *method = userdata;
        int r;

        if (streq(method, "UnlockWithRecoveryKey"))
                r = vt_call(path, VT_IFACE, method, &error, NULL, "s", "00000000");
        else
                r = vt_call(path, VT_IFACE, method, &error, NULL, NULL);
        if (r >= 0)
                return 0;
        return sd_bus_error_has_name(&error, VT_ERR("AccessDenied")) ? 1 : -EIO;
}

static int read_has_recovery_key(void *userdata) {
        return has_recovery_key("image") ? 7 : 6;
}

TEST(recovery_methods_denied_to_unprivileged_callers) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *key = NULL;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        vt_daemon_start(t, NULL, NULL);
        ASSERT_EQ(test_call_as("nobody", call_denied, (void *) "AddRecoveryKey"), 1);
        ASSERT_EQ(test_call_as("nobody", call_denied, (void *) "UnlockWithRecoveryKey"), 1);
        ASSERT_FALSE(has_recovery_key("image"));
        ASSERT_EQ(vt_get_u32("image", "Keyslots"), 1);
        key = add_recovery_key("image");
        ASSERT_EQ(test_call_as("nobody", read_has_recovery_key, NULL), 7); /* reading is open */
}

DEFINE_TEST_MAIN
