/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS2 on image files (no device-mapper here: key checks only): format with the minimal PBKDF, key checks,
 * keyslots added and removed, tokens written and found; a systemd-tpm2 token made with a real (sw)TPM seal
 * that systemd's own token plugin unlocks. */
#include <libcryptsetup.h>
#include <sys/wait.h>

#include "crypto-util.h"
#include "encoding.h"
#include "fixtures.h"
#include "luks2-util.h"
#include "memory-util.h"
#include "tpm2-util.h"

static char *image(const char *name) {
        char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/%s", test_tmpdir(), name));
        return p;
}

TEST(format_check_and_keyslots) {
        _cleanup_free_ char *path = image("a.img");
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        uint8_t s1[32], s2[32], bad[32];
        char uuid[LUKS2_UUID_STRING_SIZE];
        int slot, slot2;

        memset(s1, 1, sizeof(s1));
        memset(s2, 2, sizeof(s2));
        memset(bad, 3, sizeof(bad));
        ASSERT_ERROR(luks2_format(path, 1 << 20, s1, sizeof(s1), NULL, NULL, NULL), ERANGE);
        ASSERT_OK(luks2_format(path, LUKS2_IMAGE_SIZE_MIN, s1, sizeof(s1), &cd, &slot, uuid));
        ASSERT_EQ(slot, 0);
        ASSERT_EQ(strlen(uuid), 36);
        ASSERT_EQ(luks2_keyslot_is_minimal_pbkdf(cd, slot), 1);
        cd = (luks2_crypt_freep(&cd), NULL);

        ASSERT_OK(luks2_open(path, &cd));
        ASSERT_STREQ(crypt_get_uuid(cd), uuid);
        ASSERT_EQ(luks2_check_key(cd, -1, s1, sizeof(s1)), 0);
        ASSERT_EQ(luks2_check_key(cd, 0, s1, sizeof(s1)), 0);
        ASSERT_ERROR(luks2_check_key(cd, -1, bad, sizeof(bad)), EPERM);

        slot2 = luks2_add_keyslot(cd, s1, sizeof(s1), s2, sizeof(s2));
        ASSERT_EQ(slot2, 1);
        ASSERT_EQ(luks2_keyslot_is_minimal_pbkdf(cd, slot2), 1);
        ASSERT_EQ(luks2_keyslots_active(cd), 3);
        ASSERT_ERROR(luks2_add_keyslot(cd, bad, sizeof(bad), s2, sizeof(s2)), EPERM);
        ASSERT_EQ(luks2_check_key(cd, -1, s2, sizeof(s2)), 1);
        ASSERT_ERROR(luks2_check_key(cd, 0, s2, sizeof(s2)), EPERM);

        /* No device-mapper on this host: activation fails as unsupported, a wrong key still as a wrong key. */
        ASSERT_ERROR(luks2_activate(cd, "eve-test", -1, bad, sizeof(bad)), EPERM);
        if (access("/dev/mapper/control", F_OK) < 0)
                ASSERT_ERROR(luks2_activate(cd, "eve-test", -1, s1, sizeof(s1)), EOPNOTSUPP);

        /* The key check that yields the volume key (the worker maps with it, no second keyslot KDF): a wrong
         * key gives nothing, a volume key that is not this volume's is refused before device-mapper. */
        {
                _cleanup_secret_ uint8_t *vk = NULL;
                size_t vk_size = 0;

                ASSERT_ERROR(luks2_volume_key_get(cd, -1, bad, sizeof(bad), &vk, &vk_size), EPERM);
                ASSERT_NULL(vk);
                ASSERT_ERROR(luks2_volume_key_get(cd, 0, s2, sizeof(s2), &vk, &vk_size), EPERM);
                ASSERT_EQ(luks2_volume_key_get(cd, -1, s2, sizeof(s2), &vk, &vk_size), 1);
                ASSERT_EQ(vk_size, 64u);
                vk[0] ^= 1;
                ASSERT_ERROR(luks2_activate_by_volume_key(cd, "eve-test", vk, vk_size), EPERM);
                vk[0] ^= 1;
                if (access("/dev/mapper/control", F_OK) < 0)
                        ASSERT_ERROR(luks2_activate_by_volume_key(cd, "eve-test", vk, vk_size), EOPNOTSUPP);
        }

        ASSERT_OK(luks2_remove_keyslot(cd, 0));
        ASSERT_EQ(luks2_keyslots_active(cd), 2);
        ASSERT_ERROR(luks2_check_key(cd, -1, s1, sizeof(s1)), EPERM);
        ASSERT_ERROR(luks2_remove_keyslot(cd, 1), EBUSY);
        ASSERT_ERROR(luks2_remove_keyslot(cd, 5), ENOENT);

        ASSERT_ERROR(luks2_open("/nonexistent/x.img", &(struct crypt_device *) { NULL }), ENOENT);
}

TEST(not_luks) {
        _cleanup_free_ char *path = image("plain.img");
        struct crypt_device *cd = NULL;

        ASSERT_OK(crypto_write_file_atomic(path, "hello", 5, 0600));
        ASSERT_ERROR(luks2_open(path, &cd), EMEDIUMTYPE);
}

TEST(tokens_follow_keyslots) {
        _cleanup_free_ char *path = image("t.img"), *json = NULL, *found = NULL;
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        uint8_t s1[32] = { 1 }, s2[32] = { 2 };
        EveVaultToken e = {
                .name = "t",
                .generation = 1,
                .keyslot = 0,
                .pcr_source = "default",
                .new_keyslot = -1,
        }, back;
        int slot, slot2, id, id2;

        ASSERT_OK(luks2_format(path, LUKS2_IMAGE_SIZE_MIN, s1, sizeof(s1), &cd, &slot, e.uuid));
        ASSERT_OK(eve_vault_token_to_json(&e, &json));
        id = ASSERT_OK(luks2_token_write(cd, -1, json, -1));
        ASSERT_OK(luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, &id2, &found));
        ASSERT_EQ(id, id2);
        ASSERT_OK(eve_vault_token_from_json(found, &back, NULL));
        ASSERT_STREQ(back.uuid, e.uuid);
        ASSERT_ERROR(luks2_token_find(cd, LUKS2_TOKEN_TPM2, -1, NULL, NULL), ENOENT);

        /* A token assigned to a keyslot goes away with it; the unassigned eve-vault token stays. */
        slot2 = luks2_add_keyslot(cd, s1, sizeof(s1), s2, sizeof(s2));
        ASSERT_GE(slot2, 0);
        id2 = ASSERT_OK(luks2_token_write(cd, -1, "{\"type\":\"x-test\",\"keyslots\":[]}", slot2));
        ASSERT_OK(luks2_token_find(cd, "x-test", slot2, NULL, NULL));
        ASSERT_ERROR(luks2_token_find(cd, "x-test", slot, NULL, NULL), ENOENT);
        ASSERT_OK(luks2_remove_keyslot(cd, slot2));
        ASSERT_ERROR(luks2_token_find(cd, "x-test", -1, NULL, NULL), ENOENT);
        ASSERT_OK(luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, NULL, NULL));
}

static void extend(Tpm2Context *c, unsigned pcr, uint8_t byte) {
        uint8_t d[TPM2_SHA256_SIZE];
        memset(d, byte, sizeof(d));
        ASSERT_OK(tpm2_pcr_extend(c, pcr, d));
}

/* systemd 254's parameters for its token plugin (cryptsetup-token.h there): which TPM, which PCRs to look for. */
struct systemd_tpm2_plugin_params {
        uint32_t search_pcr_mask;
        const char *device;
        const char *signature_path;
};

TEST(systemd_tpm2_token_with_a_real_seal) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_free_ char *path = image("tpm.img"), *json = NULL, *found = NULL, *dump = NULL;
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secret_ uint8_t *secret = NULL, *unsealed = NULL;
        _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = { .pcr_mask = UINT32_C(1) << 16 };
        Luks2Tpm2Token back = {};
        size_t unsealed_size;
        int slot, id;

        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        extend(c, 16, 0x5a);
        secret = eve_secret_alloc(32);
        ASSERT_OK(tpm2_get_random(c, secret, 32));
        ASSERT_OK(luks2_format(path, LUKS2_IMAGE_SIZE_MIN, secret, 32, &cd, &slot, NULL));
        ASSERT_OK(tpm2_seal(c, tok.pcr_mask, secret, 32, &tok.blob, &tok.blob_size, tok.policy_hash));
        ASSERT_OK(tpm2_srk_serialize(c, false, &tok.srk, &tok.srk_size));
        ASSERT_EQ(tok.srk[0], 0x81);
        tok.keyslot = slot;
        ASSERT_OK(luks2_tpm2_token_to_json(&tok, &json));
        id = ASSERT_OK(luks2_token_write(cd, -1, json, slot));
        cd = (luks2_crypt_freep(&cd), NULL);

        /* Read back from disk and unseal the way vaultd will. */
        ASSERT_OK(luks2_open(path, &cd));
        ASSERT_OK(luks2_token_find(cd, LUKS2_TOKEN_TPM2, slot, NULL, &found));
        ASSERT_OK(luks2_tpm2_token_from_json(found, &back, NULL));
        ASSERT_OK(tpm2_unseal(c, back.pcr_mask, back.policy_hash, back.blob, back.blob_size, &unsealed,
                              &unsealed_size));
        ASSERT_EQ(luks2_check_key(cd, back.keyslot, unsealed, unsealed_size), slot);
        luks2_tpm2_token_done(&back);

        /* cryptsetup's own tool reads it. */
        ASSERT_EQ(test_run((char *[]) { (char *) "cryptsetup", (char *) "luksDump", path, NULL }, &dump), 0);
        ASSERT_NOT_NULL(strstr(dump, "systemd-tpm2"));
        ASSERT_NOT_NULL(strstr(dump, "pbkdf2"));

        /* systemd's token plugin unlocks our volume (key check, no mapping), through the same swtpm. Our
         * context must let go of the TPM first: one swtpm serves one connection. */
        c = tpm2_context_unref(c);
        {
                /* In a child: the plugin and the TCTI it loads keep allocations we do not own. */
                pid_t pid = fork();
                int status;

                ASSERT_GE(pid, 0);
                if (pid == 0) {
                        struct systemd_tpm2_plugin_params p = { .search_pcr_mask = UINT32_MAX, .device = t->tcti };
                        int r = crypt_activate_by_token_pin(cd, NULL, LUKS2_TOKEN_TPM2, id, NULL, 0, &p, 0);
                        if (r == -ENOENT || r == -EAGAIN || r == -ENOTSUP || r == -EINVAL)
                                _exit(77);
                        _exit(r == slot ? 0 : 1);
                }
                ASSERT_EQ(waitpid(pid, &status, 0), pid);
                ASSERT_TRUE(WIFEXITED(status));
                if (WEXITSTATUS(status) == 77)
                        log_notice("systemd-tpm2 token plugin not usable here, not checked");
                else
                        ASSERT_EQ(WEXITSTATUS(status), 0);
        }
        test_swtpm_stop(t);
}

DEFINE_TEST_MAIN;
