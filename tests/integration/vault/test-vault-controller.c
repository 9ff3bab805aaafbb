/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vaults driven by the controller, end to end (issue 12): evc over TLS on 127.0.0.1, swtpm provisioned by
 * eve-tpm-setup, eve-register, eve-attestd (re-attesting every second, so escrow goes to evc with each
 * round), eve-vaultd with its workers and eve-configd as processes on a private bus. An administrator's
 * `evc vault add|set|remove` reaches the node in the config; eve-configd hands the vault section to
 * eve-vaultd (ApplyConfig), which converges; the status comes back in the info report and `evc vault list`
 * and `evc device show` show it.
 *
 * No device-mapper on the build host: a vault the controller wants unlocked ends with its key verified by
 * the TPM and "device-mapper unavailable" (state locked, unlock method tpm) — asserted as such, never as a
 * fake "unlocked"; with device-mapper (the VM) it is unlocked. */
#include <sqlite3.h>

#include "attest-fixtures.h"
#include "attest.pb-c.h"
#include "controller-client.h"
#include "evetrust.pb-c.h"
#include "proto-util.h"
#include "vault-test.h"

typedef struct Env {
        Evc *evc;
        Node *node;
        char uuid[37];
        Daemon *attestd, *vaultd, *configd;
} Env;

static int env_free(void *p) {
        free(p);
        return 0;
}

static Env *env_new(void) {
        _cleanup_free_ char *worker = build_path("services/vaultd/eve-vault-worker"), *wenv = NULL,
                            *units = NULL;
        Env *e = calloc(1, sizeof *e);

        ASSERT_NOT_NULL(e);
        test_defer(env_free, e);
        test_bus_start(NULL);
        e->evc = evc_new(NULL);
        e->node = node_new(e->evc);
        node_allow_onboarding(e->node, e->evc);
        node_register(e->uuid);
        e->attestd = attestd_start_complete("--reattest-interval=1s");
        /* Runtime units into the node tree, never the host's /run/systemd/system. */
        ASSERT_OK(asprintf(&units, "%s/run/systemd/system", e->node->root));
        ASSERT_OK(setenv("EVE_SYSTEMD_UNIT_DIR", units, 1));
        ASSERT_OK(asprintf(&wenv, "EVE_VAULT_WORKER=%s", worker));
        e->vaultd =
                        daemon_start("services/vaultd/eve-vaultd",
                                     "org.eve.Vault",
                                     wenv,
                                     "--image-size",
                                     "32M",
                                     "--config-size",
                                     "32M",
                                     NULL);
        vt_wait_op("config", "unlock", 0);
        vt_wait_op("image", "unlock", 0);
        e->configd =
                        daemon_start("services/configd/eve-configd",
                                     "org.eve.Config",
                                     NULL,
                                     "--interval=1s",
                                     "--retry=200ms",
                                     "--info-interval=1s",
                                     NULL);
        return e;
}

static void dump(Env *e) {
        daemon_dump(e->configd);
        daemon_dump(e->vaultd);
}

/* The "reported" object of vault uuid in `evc vault list DEV --json` (a new reference), or NULL. */
static json_object *reported(Env *e, const char *uuid) {
        _cleanup_free_ char *out = NULL;
        json_object *arr, *res = NULL;

        ASSERT_EQ(EVC_RUN(e->evc, &out, "vault", "list", e->uuid, "--json"), 0);
        arr = json_tokener_parse(out);
        ASSERT_NOT_NULL(arr);
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *v = json_object_array_get_idx(arr, i), *r;
                if (streq_ptr(json_str(v, "uuid"), uuid) && json_object_object_get_ex(v, "reported", &r))
                        res = json_object_get(r);
        }
        json_object_put(arr);
        return res;
}

typedef bool (*Want)(json_object *r, const void *arg);

/* Polls evc's view of the vault until want() holds (60 s). */
static json_object *wait_reported(Env *e, const char *uuid, Want want, const void *arg, const char *what) {
        uint64_t end = now_msec() + 60000;

        for (;;) {
                json_object *r = reported(e, uuid);
                if (r && want(r, arg))
                        return r;
                if (now_msec() > end) {
                        dump(e);
                        test_fail(__FILE__,
                                  __LINE__,
                                  "vault %s: evc never saw %s; last report: %s",
                                  uuid,
                                  what,
                                  r ? json_object_to_json_string(r) : "(none)");
                }
                json_object_put(r);
                usleep(200000);
        }
}

static bool str_is(json_object *r, const char *key, const char *value) {
        return streq_ptr(json_str(r, key), value);
}

/* Opened by the TPM: unlocked, or (no device-mapper) locked with the key verified and the reason. */
static bool is_open(json_object *r, const void *version) {
        return str_is(r, "config_version", version) && str_is(r, "unlock_method", "tpm") &&
                        (str_is(r, "state", "unlocked") ||
                         (str_is(r, "state", "locked") && json_str(r, "last_error") &&
                          strstr(json_str(r, "last_error"), "device-mapper unavailable")));
}

static bool is_locked(json_object *r, const void *version) {
        return str_is(r, "config_version", version) && str_is(r, "state", "locked") &&
                        str_is(r, "unlock_method", "none") && str_is(r, "last_operation", "lock") &&
                        json_get_bool(r, "last_operation_ok");
}

static bool generation_confirmed(json_object *r, const void *gen) {
        return json_int(r, "key_generation") == *(const int64_t *) gen && str_is(r, "escrow", "confirmed");
}

static bool refused(json_object *r, const void *part) {
        return str_is(r, "state", "error") && json_str(r, "last_error") &&
                        strstr(json_str(r, "last_error"), part);
}

/* The generation of the escrow evc stores for vault uuid (0: none). */
static uint64_t evc_escrow_generation(Env *e, const char *uuid) {
        _cleanup_free_ char *db = NULL;
        sqlite3 *s = NULL;
        sqlite3_stmt *st = NULL;
        uint64_t gen = 0;

        ASSERT_OK(asprintf(&db, "%s/evc.db", e->evc->dir));
        ASSERT_EQ(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_busy_timeout(s, 5000);
        ASSERT_EQ(sqlite3_prepare_v2(s, "SELECT key_msg FROM escrow", -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKey *k = NULL;
                _cleanup_(proto_freep) Org__Eve__Trust__EveVaultEscrow *x = NULL;

                if (PROTO_UNPACK(&org__lfedge__eve__attest__attest_volume_key__descriptor,
                                 sqlite3_column_blob(st, 0),
                                 (size_t) sqlite3_column_bytes(st, 0),
                                 1 << 16,
                                 &k) < 0 ||
                    k->key_type != 17750 ||
                    PROTO_UNPACK(&org__eve__trust__eve_vault_escrow__descriptor,
                                 k->key.data,
                                 k->key.len,
                                 1 << 16,
                                 &x) < 0)
                        continue;
                if (strcasecmp(x->vault_uuid, uuid) == 0)
                        gen = MAX(gen, x->generation);
        }
        sqlite3_finalize(st);
        sqlite3_close(s);
        return gen;
}

static char *vault_add(Env *e, const char *name, const char *a1, const char *a2, const char *a3) {
        char *out = NULL;

        ASSERT_EQ(EVC_RUN(e->evc, &out, "vault", "add", e->uuid, name, a1, a2, a3), 0);
        ASSERT_TRUE(strlen(out) >= 36);
        out[36] = 0;
        return out;
}

TEST(vault_added_locked_unlocked_rotated_removed_through_evc) {
        Env *e = env_new();
        _cleanup_free_ char *u = NULL, *img = NULL, *show = NULL;
        json_object *r;
        int64_t gen2 = 2;

        u = vault_add(e, "data", "--size", "32M", NULL);
        /* Created on the node with the controller's UUID, opened by the TPM, reported back. */
        r = wait_reported(e, u, is_open, "1", "the vault opened by the TPM");
        ASSERT_EQ(json_int(r, "key_generation"), 1);
        json_object_put(r);
        {
                _cleanup_free_ char *nu = vt_get_str("data", "UUID");
                ASSERT_STREQ(nu, u);
        }
        ASSERT_OK(asprintf(&img, "%s/data.img", e->node->vault_img));
        ASSERT_OK(access(img, F_OK));
        ASSERT_EQ(EVC_RUN(e->evc, &show, "device", "show", e->uuid), 0);
        vt_assert_contains(show, "data");
        vt_assert_contains(show, u);

        /* Desired locked, then unlocked again. */
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "vault", "set", e->uuid, u, "--state", "locked"), 0);
        json_object_put(wait_reported(e, u, is_locked, "2", "the vault locked"));
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "vault", "set", e->uuid, u, "--state", "unlocked"), 0);
        json_object_put(wait_reported(e, u, is_open, "3", "the vault opened again"));

        /* A raised key generation: the node changes the key, evc stores the new escrow with the next
         * attestation round, the node confirms and drops the old key. */
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "vault", "set", e->uuid, u, "--rotate"), 0);
        json_object_put(wait_reported(e, u, generation_confirmed, &gen2, "generation 2 confirmed"));
        ASSERT_EQ(evc_escrow_generation(e, u), 2);
        ASSERT_EQ(vt_get_u32("data", "Keyslots"), 1);
        ASSERT_EQ(vt_get_u64("data", "KeyGeneration"), 2);

        /* Removed: deleted on the node (no longer on the bus, its image gone). The image goes first and
         * the object when the worker reports, so wait for the object, the later of the two. */
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "vault", "remove", e->uuid, u), 0);
        for (uint64_t end = now_msec() + 60000;; usleep(200000)) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                if (vt_call(VT_MANAGER, VT_MANAGER_IFACE, "GetVault", &error, NULL, "s", "data") < 0) {
                        ASSERT_STREQ(error.name, VT_ERR("NoSuchVault"));
                        break;
                }
                if (now_msec() > end) {
                        dump(e);
                        test_fail(__FILE__, __LINE__, "vault data was not deleted");
                }
        }
        ASSERT_TRUE(access(img, F_OK) < 0 && errno == ENOENT);
}

TEST(invalid_vault_refused_with_a_status_the_rest_applied) {
        Env *e = env_new();
        _cleanup_free_ char *good = NULL, *bad = NULL, *small = NULL, *show = NULL;
        json_object *r;

        good = vault_add(e, "good", NULL, NULL, NULL);
        bad = vault_add(e, "nopcr0", "--pcrs", "1,7", "--unchecked");
        small = vault_add(e, "small", "--size", "1M", "--unchecked");

        r = wait_reported(e, bad, refused, "PCR 0 is required", "the PCR list refused");
        ASSERT_STREQ(json_str(r, "name"), "nopcr0");
        json_object_put(r);
        json_object_put(wait_reported(e, small, refused, "below the minimum", "the size refused"));
        /* The valid vault of the same config is there. */
        json_object_put(wait_reported(e, good, is_open, "1", "the valid vault opened"));
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                ASSERT_TRUE(vt_call(VT_MANAGER, VT_MANAGER_IFACE, "GetVault", &error, NULL, "s", "nopcr0") <
                            0);
        }
        /* And an admin sees why. */
        ASSERT_EQ(EVC_RUN(e->evc, &show, "device", "show", e->uuid), 0);
        vt_assert_contains(show, "PCR 0 is required");
}

DEFINE_TEST_MAIN
