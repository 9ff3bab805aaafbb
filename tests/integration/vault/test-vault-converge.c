/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vaultd converging to the controller's vault section (issue 12), driven through
 * org.eve.Vault.Manager.ApplyConfig as eve-configd calls it: a vault created with the controller's UUID, its
 * application bound to it by a drop-in, applying twice changes nothing, desired lock and unlock (kept locked
 * across a restart), a raised key generation rotates once, a new PCR policy re-seals, a removed vault is
 * deleted with its units; invalid entries refused one by one while the rest applies, and a refused entry
 * never deletes its vault. eve-vaultd and its worker as processes, swtpm, a private bus; no device-mapper
 * here: an unlock ends with the key verified and "DeviceMapperUnavailable", never a fake Unlocked. */
#include <sys/stat.h>

#include "crypto-util.h"
#include "vault-test.h"

static void sleep_ms(unsigned ms) {
        (void) usleep(ms * 1000U);
}

#define U1 "6f1c1f1e-2a3b-4c5d-8e9f-000000000001"
#define U2 "6f1c1f1e-2a3b-4c5d-8e9f-000000000002"
#define U3 "6f1c1f1e-2a3b-4c5d-8e9f-000000000003"
#define U4 "6f1c1f1e-2a3b-4c5d-8e9f-000000000004"
#define U5 "6f1c1f1e-2a3b-4c5d-8e9f-000000000005"
#define U6 "6f1c1f1e-2a3b-4c5d-8e9f-000000000006"
#define U7 "6f1c1f1e-2a3b-4c5d-8e9f-000000000007"

typedef struct Entry {
        const char *uuid, *version, *name;
        uint64_t size;
        const char *source;
        const uint32_t *pcrs;
        size_t n_pcrs;
        uint32_t policy_id;
        const char *desired;
        uint64_t generation;
} Entry;

typedef struct Status {
        char uuid[40], name[40], version[16], refusal[512];
} Status;

/* ApplyConfig(entries, apps as "app", "uuid", …, NULL); the statuses it returns. */
static size_t apply(const Entry *e, size_t n, Status *ret, const char *const *apps) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *u, *nm, *v, *why;
        size_t k = 0;
        int r;

        ASSERT_OK(sd_bus_message_new_method_call(
                        bus, &m, VT_BUS, VT_MANAGER, VT_MANAGER_IFACE, "ApplyConfig"));
        ASSERT_OK(sd_bus_message_open_container(m, 'a', "(ssstsauust)"));
        for (size_t i = 0; i < n; i++) {
                ASSERT_OK(sd_bus_message_open_container(m, 'r', "ssstsauust"));
                ASSERT_OK(sd_bus_message_append(m, "ssst", e[i].uuid, e[i].version, e[i].name, e[i].size));
                ASSERT_OK(sd_bus_message_append(m, "s", e[i].source));
                ASSERT_OK(sd_bus_message_append_array(m, 'u', e[i].pcrs, e[i].n_pcrs * sizeof(uint32_t)));
                ASSERT_OK(sd_bus_message_append(m, "ust", e[i].policy_id, e[i].desired, e[i].generation));
                ASSERT_OK(sd_bus_message_close_container(m));
        }
        ASSERT_OK(sd_bus_message_close_container(m));
        ASSERT_OK(sd_bus_message_open_container(m, 'a', "(ss)"));
        for (size_t i = 0; apps && apps[i]; i += 2)
                ASSERT_OK(sd_bus_message_append(m, "(ss)", apps[i], apps[i + 1]));
        ASSERT_OK(sd_bus_message_close_container(m));
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                test_fail(__FILE__, __LINE__, "ApplyConfig: %s: %s", error.name, error.message);
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(ssss)"));
        while ((r = sd_bus_message_read(reply, "(ssss)", &u, &nm, &v, &why)) > 0) {
                ASSERT_TRUE(k < n);
                snprintf(ret[k].uuid, sizeof ret[k].uuid, "%s", u);
                snprintf(ret[k].name, sizeof ret[k].name, "%s", nm);
                snprintf(ret[k].version, sizeof ret[k].version, "%s", v);
                snprintf(ret[k].refusal, sizeof ret[k].refusal, "%s", why);
                k++;
        }
        ASSERT_OK(r);
        return k;
}

static bool has_vault(const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        return vt_call(VT_MANAGER, VT_MANAGER_IFACE, "GetVault", &error, NULL, "s", name) >= 0;
}

static void wait_vault(const char *name) {
        for (unsigned i = 0; i < 2000 && !has_vault(name); i++)
                sleep_ms(10);
        ASSERT_TRUE(has_vault(name));
}

static void wait_gone(const char *name) {
        for (unsigned i = 0; i < 3000 && has_vault(name); i++)
                sleep_ms(10);
        ASSERT_FALSE(has_vault(name));
}

static VaultDaemon *current;

static int dump_log(void *p) {
        _cleanup_free_ char *t = NULL;
        size_t n;

        if (current && getenv("EVE_TEST_DUMP") && crypto_read_file(current->log, false, &t, &n) >= 0)
                fprintf(stderr, "---- eve-vaultd ----\n%s\n", t);
        return 0;
}

static char *root_file(VaultDaemon *d, const char *rel) {
        char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/%s", d->root, rel));
        return p;
}

static char *read_text(const char *path) {
        char *t = NULL;
        size_t n;
        if (crypto_read_file(path, false, &t, &n) < 0)
                test_fail(__FILE__, __LINE__, "cannot read %s", path);
        return t;
}

/* The key verified by the TPM; Unlocked only with a real mapping (never here without device-mapper). */
static void assert_open(const char *name) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod"),
                            *en = vt_get_str(name, "LastErrorName");

        ASSERT_STREQ(m, "tpm");
        if (!streq(state, "Unlocked")) {
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(en, VT_ERR("DeviceMapperUnavailable"));
        }
}

static void assert_locked(const char *name) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod");
        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(m, "none");
}

/* Nothing runs for a while: LastOperationTime of name stays. */
static void assert_quiet(const char *name) {
        uint64_t t = vt_get_u64(name, "LastOperationTime");
        sleep_ms(1500);
        ASSERT_EQ(vt_get_u64(name, "LastOperationTime"), t);
}

TEST(controller_vault_created_locked_unlocked_rotated_resealed_deleted) {
        Swtpm *t = test_swtpm_start(0, NULL);
        static const uint32_t policy[] = { 0, 1, 2, 3, 4, 7 };
        static const char *const apps[] = { "web", U1, NULL };
        Entry e = { U1, "1", "app1", 32 << 20, "tpm", NULL, 0, 0, "unlocked", 1 };
        _cleanup_free_ char *uuid = NULL, *dropin = NULL, *mount = NULL, *text = NULL, *img = NULL,
                            *journal = NULL, *rot = NULL, *src = NULL;
        Status st[4];
        VaultDaemon *d;
        uint64_t since;

        vt_provision(t, 0x21);
        test_bus_start(NULL);
        d = current = vt_daemon_start(t, NULL, NULL);
        test_defer(dump_log, NULL);

        /* Created with the controller's UUID, opened by the TPM, its application bound to it. */
        ASSERT_EQ(apply(&e, 1, st, apps), 1);
        ASSERT_STREQ(st[0].uuid, U1);
        ASSERT_STREQ(st[0].refusal, "");
        wait_vault("app1");
        vt_wait_op("app1", "unlock", 0);
        uuid = vt_get_str("app1", "UUID");
        ASSERT_STREQ(uuid, U1);
        assert_open("app1");
        ASSERT_EQ(vt_get_u64("app1", "KeyGeneration"), 1);
        dropin = root_file(d, "run/systemd/system/eve-app@web.service.d/50-eve-trust-vault.conf");
        text = read_text(dropin);
        vt_assert_contains(text, "RequiresMountsFor=");
        vt_assert_contains(text, "/persist/vaults/app1\n");
        free(text);
        /* Its mount unit (the name systemd-escape --path gives), which wants the application. */
        {
                _cleanup_free_ char *mp = vt_get_str("app1", "MountPoint"), *unit = NULL, *wants = NULL,
                                    *wtext = NULL;
                const char *p = mp + 1;
                char esc[4096];
                size_t k = 0;

                for (; *p; p++)
                        k += (size_t) (*p == '/' ? snprintf(esc + k, sizeof esc - k, "-")
                                                       : *p == '-'
                                                       ? snprintf(esc + k, sizeof esc - k, "\\x2d")
                                                       : snprintf(esc + k, sizeof esc - k, "%c", *p));
                ASSERT_OK(asprintf(&unit, "run/systemd/system/%s.mount", esc));
                mount = root_file(d, unit);
                text = read_text(mount);
                vt_assert_contains(text, "What=/dev/mapper/eve-vault-app1\n");
                vt_assert_contains(text, mp);
                ASSERT_OK(asprintf(&wants, "%s.d/50-eve-trust-apps.conf", mount));
                wtext = read_text(wants);
                vt_assert_contains(wtext, "Wants=eve-app@web.service\n");
        }

        /* The same config again: nothing happens. */
        ASSERT_EQ(apply(&e, 1, st, apps), 1);
        assert_quiet("app1");
        ASSERT_EQ(vt_get_u64("app1", "KeyGeneration"), 1);

        /* Desired locked: locked, and kept locked across a restart of the daemon. */
        e.version = "2", e.desired = "locked";
        since = vt_get_u64("app1", "LastOperationTime");
        apply(&e, 1, st, apps);
        vt_wait_op("app1", "lock", since);
        assert_locked("app1");
        d = current = vt_daemon_restart(d, NULL);
        vt_wait_op("app1", "inspect", 0);
        assert_locked("app1");
        assert_quiet("app1");

        /* Unlocked again. */
        e.version = "3", e.desired = "unlocked";
        since = vt_get_u64("app1", "LastOperationTime");
        apply(&e, 1, st, apps);
        vt_wait_op("app1", "unlock", since);
        assert_open("app1");

        /* Key generation raised: one key change, held until the controller confirms its escrow. */
        e.version = "4", e.generation = 2;
        since = vt_get_u64("app1", "LastOperationTime");
        apply(&e, 1, st, apps);
        vt_wait_op("app1", "rotate", since);
        ASSERT_EQ(vt_get_u64("app1", "KeyGeneration"), 2);
        rot = vt_get_str("app1", "Rotation");
        ASSERT_STREQ(rot, "unconfirmed");
        apply(&e, 1, st, apps);
        assert_quiet("app1");
        ASSERT_EQ(vt_get_u64("app1", "KeyGeneration"), 2);
        /* The journal says so too (a restart does not rotate again). */
        journal = root_file(d, "persist/vault-images/controller-vaults.json");
        free(text);
        text = read_text(journal);
        vt_assert_contains(text, "\"done_generation\":2");
        free(text);
        text = NULL;
        d = current = vt_daemon_restart(d, NULL);
        assert_quiet("app1");
        ASSERT_EQ(vt_get_u64("app1", "KeyGeneration"), 2);
        {
                _cleanup_free_ char *op = vt_get_str("app1", "LastOperation");
                ASSERT_STREQ(op, "unlock");
        }
        {
                VtEntries keys = {}, one = {};
                const VtEntry *x;

                vt_get_escrow_keys(&keys);
                x = vt_find_escrow(&keys, U1);
                ASSERT_NOT_NULL(x);
                vt_entries_add(&one, x);
                since = vt_get_u64("app1", "LastOperationTime");
                ASSERT_OK(vt_send_entries("ConfirmEscrow", &one, NULL, NULL));
                vt_wait_op("app1", "confirm", since);
                vt_entries_done(&keys);
                vt_entries_done(&one);
        }

        /* A PCR policy: re-sealed to it (a key change), named by its id. */
        e.version = "5", e.pcrs = policy, e.n_pcrs = ELEMENTSOF(policy), e.policy_id = 9;
        since = vt_get_u64("app1", "LastOperationTime");
        apply(&e, 1, st, apps);
        vt_wait_op("app1", "rotate", since);
        ASSERT_EQ(vt_get_pcrs("app1", "SealingPCRs"), 0x9f);
        src = vt_get_str("app1", "PCRPolicy");
        ASSERT_STREQ(src, "policy:9");
        ASSERT_EQ(vt_get_u64("app1", "KeyGeneration"), 3);
        apply(&e, 1, st, apps);
        assert_quiet("app1");

        /* Another key source: a key change, recorded as requested until the controller's share arrives. */
        {
                _cleanup_free_ char *rq = NULL, *rs = NULL, *ks = NULL;
                VtEntries keys = {}, one = {};

                /* The PCR change waits for its escrow to be confirmed first. */
                vt_get_escrow_keys(&keys);
                ASSERT_NOT_NULL(vt_find_escrow(&keys, U1));
                vt_entries_add(&one, vt_find_escrow(&keys, U1));
                since = vt_get_u64("app1", "LastOperationTime");
                ASSERT_OK(vt_send_entries("ConfirmEscrow", &one, NULL, NULL));
                vt_entries_done(&keys);
                vt_entries_done(&one);
                vt_wait_op("app1", "confirm", since);
                e.version = "6", e.source = "tpm+controller";
                apply(&e, 1, st, apps);
                /* The state, not the operation's timing: under load the previous rotate's time can still look
                 * new here. */
                vt_wait_str("app1", "Rotation", "requested");
                rq = vt_get_str("app1", "Rotation");
                rs = vt_get_str("app1", "RequestedKeySource");
                ks = vt_get_str("app1", "KeySource");
                ASSERT_STREQ(rq, "requested");
                ASSERT_STREQ(rs, "tpm+controller");
                ASSERT_STREQ(ks, "tpm");
                apply(&e, 1, st, apps);
                assert_quiet("app1");
        }

        /* Removed: deleted, the image gone, its units gone. */
        img = root_file(d, "persist/vault-images/app1.img");
        ASSERT_OK(access(img, F_OK));
        ASSERT_EQ(apply(NULL, 0, st, NULL), 0);
        wait_gone("app1");
        ASSERT_TRUE(access(img, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(access(dropin, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(access(mount, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(has_vault("image") && has_vault("config"));
        d = current = vt_daemon_restart(d, NULL);
        ASSERT_FALSE(has_vault("app1"));
}

/* The worker killed in the middle of a controller-ordered creation (LUKS2 formatted, no tokens yet): retried
 * once in that run, then left alone (the worker keeps dying); at the next start the unfinished image is
 * replaced and the vault created with the controller's UUID. */
TEST(interrupted_creation_resumed_at_the_next_start) {
        Swtpm *t = test_swtpm_start(0, NULL);
        Entry e = { U3, "1", "app3", 32 << 20, "tpm", NULL, 0, 0, "unlocked", 1 };
        _cleanup_free_ char *img = NULL, *uuid = NULL, *log = NULL;
        Status st[1];
        VaultDaemon *d;

        vt_provision(t, 0x23);
        test_bus_start(NULL);
        d = current = vt_daemon_start(t, NULL, NULL);
        test_defer(dump_log, NULL);
        /* The default vaults exist; from now on every creating worker dies after formatting. */
        d = vt_daemon_restart(d, "formatted");
        img = root_file(d, "persist/vault-images/app3.img");
        apply(&e, 1, st, NULL);
        ASSERT_STREQ(st[0].refusal, "");
        /* The creation, its retry after removing the unfinished image, then nothing more. */
        for (unsigned i = 0; i < 3000; i++) {
                free(log);
                log = read_text(d->log);
                if (strstr(log, "not converging this vault further"))
                        break;
                sleep_ms(10);
        }
        vt_assert_contains(log, "not converging this vault further");
        ASSERT_OK(access(img, F_OK));
        ASSERT_FALSE(has_vault("app3") && vt_get_u64("app3", "KeyGeneration") > 0);

        d = current = vt_daemon_restart(d, NULL);
        wait_vault("app3");
        vt_wait_op("app3", "unlock", 0);
        for (unsigned i = 0; i < 2000; i++) {
                _cleanup_free_ char *u = vt_get_str("app3", "UUID"),
                                    *op = vt_get_str("app3", "LastOperation");
                if (streq(u, U3) && streq(op, "unlock"))
                        break;
                sleep_ms(10);
        }
        uuid = vt_get_str("app3", "UUID");
        ASSERT_STREQ(uuid, U3);
        free(log);
        log = read_text(d->log);
        vt_assert_contains(log, "creation was interrupted");
        assert_open("app3");
        apply(&e, 1, st, NULL);
        assert_quiet("app3");
}

TEST(invalid_entries_refused_alone_and_never_delete) {
        Swtpm *t = test_swtpm_start(0, NULL);
        static const uint32_t no_pcr0[] = { 1, 7 }, pcr5[] = { 0, 5 }, pcr16[] = { 0, 16 };
        Entry e[] = {
                { U1, "1", "good", 0, "tpm", NULL, 0, 0, "unlocked", 1 },
                { U2, "1", "nopcr0", 0, "tpm", no_pcr0, 2, 3, "unlocked", 1 },
                { U3, "1", "pcr5", 0, "tpm", pcr5, 2, 3, "unlocked", 1 },
                { U4, "1", "dup", 0, "tpm", NULL, 0, 0, "unlocked", 1 },
                { U5, "1", "dup", 0, "tpm", NULL, 0, 0, "unlocked", 1 },
                { U6, "1", "small", 1 << 20, "tpm", NULL, 0, 0, "unlocked", 1 },
                { U7, "1", "config", 0, "tpm", pcr16, 2, 0, "unlocked", 1 },
        };
        static const char *const part[] = {
                "",
                "PCR 0 is required",
                "PCR 5",
                "duplicate vault name 'dup'",
                "duplicate vault name 'dup'",
                "below the minimum of 32 MiB",
                "default vault",
        };
        Status st[ELEMENTSOF(e)];
        VaultDaemon *d;

        vt_provision(t, 0x22);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        ASSERT_EQ(apply(e, ELEMENTSOF(e), st, NULL), ELEMENTSOF(e));
        for (size_t i = 0; i < ELEMENTSOF(e); i++) {
                ASSERT_STREQ(st[i].uuid, e[i].uuid);
                if (i == 0)
                        ASSERT_STREQ(st[i].refusal, "");
                else
                        vt_assert_contains(st[i].refusal, part[i]);
        }
        /* The valid one applies. */
        wait_vault("good");
        vt_wait_op("good", "unlock", 0);
        assert_open("good");
        ASSERT_FALSE(has_vault("nopcr0") || has_vault("pcr5") || has_vault("dup") || has_vault("small"));

        /* Its entry turned invalid later: refused, and the vault stays as it was. */
        e[0].version = "2", e[0].size = 4096, e[0].desired = "locked";
        apply(e, 1, st, NULL);
        vt_assert_contains(st[0].refusal, "below the minimum");
        assert_quiet("good");
        assert_open("good");
        /* The status is on the bus for eve-configd's reports. */
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *u, *n, *v, *why;

                ASSERT_OK(sd_bus_get_property(
                                bus,
                                VT_BUS,
                                VT_MANAGER,
                                VT_MANAGER_IFACE,
                                "ConfiguredVaults",
                                NULL,
                                &reply,
                                "a(ssss)"));
                ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(ssss)"));
                ASSERT_EQ(sd_bus_message_read(reply, "(ssss)", &u, &n, &v, &why), 1);
                ASSERT_STREQ(u, U1);
                ASSERT_STREQ(v, "2");
                vt_assert_contains(why, "below the minimum");
        }
        (void) d;
}

DEFINE_TEST_MAIN
