/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The two LUKS2 tokens of a vault as JSON: systemd-tpm2 exactly as systemd 254 writes it, and eve-vault; round
 * trips, exact field names and the refusals (each with its reason). */
#include <json-c/json.h>

#include "luks2-util.h"
#include "tests.h"

static const char *const srk_b64 = "gQAAAQAiAAtziujusVG5AAAA";

static void make_tpm2(Luks2Tpm2Token *t) {
        static uint8_t blob[40], srk[18];

        for (size_t i = 0; i < sizeof(blob); i++)
                blob[i] = (uint8_t) i;
        memset(srk, 0, sizeof(srk));
        srk[0] = 0x81;
        srk[3] = 0x01;
        *t = (Luks2Tpm2Token) {
                .keyslot = 1,
                .blob = blob,
                .blob_size = sizeof(blob),
                .pcr_mask = (UINT32_C(1) << 7) | (UINT32_C(1) << 14),
                .srk = srk,
                .srk_size = sizeof(srk),
        };
        memset(t->policy_hash, 0x8b, sizeof(t->policy_hash));
}

TEST(tpm2_token_exact_format) {
        _cleanup_free_ char *json = NULL;
        Luks2Tpm2Token t, back = {};
        const char *reason = "x";

        make_tpm2(&t);
        ASSERT_OK(luks2_tpm2_token_to_json(&t, &json));
        /* The exact bytes systemd 254 writes, field order included. */
        ASSERT_STREQ(json,
                     "{\"type\":\"systemd-tpm2\",\"keyslots\":[\"1\"],"
                     "\"tpm2-blob\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw==\","
                     "\"tpm2-pcrs\":[7,14],\"tpm2-pcr-bank\":\"sha256\",\"tpm2-primary-alg\":\"ecc\","
                     "\"tpm2-policy-hash\":\"8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b\","
                     "\"tpm2-pin\":false,\"tpm2_srk\":\"gQAAAQAAAAAAAAAAAAAAAAAA\"}");
        ASSERT_OK(luks2_tpm2_token_from_json(json, &back, &reason));
        ASSERT_NULL(reason);
        ASSERT_EQ(back.keyslot, 1);
        ASSERT_EQ(back.pcr_mask, t.pcr_mask);
        ASSERT_MEMEQ(back.blob, back.blob_size, t.blob, t.blob_size);
        ASSERT_MEMEQ(back.srk, back.srk_size, t.srk, t.srk_size);
        ASSERT_MEMEQ(back.policy_hash, 32, t.policy_hash, 32);
        luks2_tpm2_token_done(&back);
}

TEST(tpm2_token_as_systemd_wrote_it) {
        /* Older tokens: no tpm2_srk, no bank, no primary-alg (systemd 248): accepted with the defaults. */
        const char *json = "{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"tpm2-blob\":\"AJ4AIETlztsnASn3\","
                           "\"tpm2-pcrs\":[],\"tpm2-policy-hash\":"
                           "\"8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b\"}";
        Luks2Tpm2Token t = {};

        ASSERT_OK(luks2_tpm2_token_from_json(json, &t, NULL));
        ASSERT_EQ(t.keyslot, 0);
        ASSERT_EQ(t.pcr_mask, 0);
        ASSERT_NULL(t.srk);
        luks2_tpm2_token_done(&t);
}

static void refuse_tpm2(const char *field, const char *value_json, const char *reason_part) {
        _cleanup_free_ char *json = NULL, *edited = NULL;
        json_object *o;
        Luks2Tpm2Token t, back = {};
        const char *reason = NULL;

        make_tpm2(&t);
        ASSERT_OK(luks2_tpm2_token_to_json(&t, &json));
        o = json_tokener_parse(json);
        ASSERT_NOT_NULL(o);
        if (value_json)
                json_object_object_add(o, field, json_tokener_parse(value_json));
        else
                json_object_object_del(o, field);
        edited = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        ASSERT_ERROR(luks2_tpm2_token_from_json(edited, &back, &reason), EBADMSG);
        ASSERT_NOT_NULL(reason);
        if (!strstr(reason, reason_part))
                test_fail(__FILE__, __LINE__, "reason \"%s\" does not mention \"%s\"", reason, reason_part);
        ASSERT_NULL(back.blob);
}

TEST(tpm2_token_refusals) {
        const char *reason = NULL;
        Luks2Tpm2Token back = {};

        ASSERT_ERROR(luks2_tpm2_token_from_json("not json", &back, &reason), EBADMSG);
        ASSERT_STREQ(reason, "not a JSON object");
        ASSERT_ERROR(luks2_tpm2_token_from_json("[1]", &back, &reason), EBADMSG);

        refuse_tpm2("type", "\"systemd-fido2\"", "type");
        refuse_tpm2("keyslots", "[\"1\",\"2\"]", "keyslots");
        refuse_tpm2("keyslots", "[1]", "keyslots");
        refuse_tpm2("keyslots", "[\"32\"]", "keyslots");
        refuse_tpm2("keyslots", "[\"01\"]", "keyslots");
        refuse_tpm2("keyslots", NULL, "keyslots");
        refuse_tpm2("tpm2-blob", "\"***\"", "tpm2-blob");
        refuse_tpm2("tpm2-blob", "[\"AAAA\",\"AAAA\"]", "sharded");
        refuse_tpm2("tpm2-blob", NULL, "tpm2-blob");
        refuse_tpm2("tpm2-pcrs", "[24]", "tpm2-pcrs");
        refuse_tpm2("tpm2-pcrs", "[7,7]", "tpm2-pcrs");
        refuse_tpm2("tpm2-pcrs", "[\"7\"]", "tpm2-pcrs");
        refuse_tpm2("tpm2-pcrs", NULL, "tpm2-pcrs");
        refuse_tpm2("tpm2-pcr-bank", "\"sha1\"", "sha256");
        refuse_tpm2("tpm2-primary-alg", "\"rsa\"", "ecc");
        refuse_tpm2("tpm2-policy-hash", "\"8b8b\"", "tpm2-policy-hash");
        refuse_tpm2("tpm2-policy-hash", NULL, "tpm2-policy-hash");
        refuse_tpm2("tpm2-pin", "true", "PIN");
        refuse_tpm2("tpm2_pubkey_pcrs", "[11]", "signed");
        refuse_tpm2("tpm2_pubkey", "\"AAAA\"", "signed");
        refuse_tpm2("tpm2_pcrlock", "true", "pcrlock");
        refuse_tpm2("tpm2_srk", "\"AAAAAAAA\"", "0x81000001");
        refuse_tpm2("tpm2_srk", "5", "tpm2_srk");
        (void) srk_b64;
}

static void make_eve(EveVaultToken *t) {
        *t = (EveVaultToken) {
                .name = "config",
                .uuid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                .generation = 3,
                .key_source = KEY_SOURCE_TPM,
                .keyslot = 0,
                .pcr_mask = (UINT32_C(1) << 0) | (UINT32_C(1) << 7),
                .pcr_source = "default",
                .escrow = ESCROW_PENDING,
                .rotation = ROTATION_SLOT_ADDED,
                .new_keyslot = 2,
                .new_generation = 4,
        };
        memset(t->pcr_values[0], 0x11, 32);
        memset(t->pcr_values[7], 0x77, 32);
}

TEST(eve_token_round_trip) {
        _cleanup_free_ char *json = NULL, *again = NULL;
        EveVaultToken t, back;
        json_object *o, *v;

        make_eve(&t);
        ASSERT_OK(eve_vault_token_to_json(&t, &json));
        ASSERT_OK(eve_vault_token_from_json(json, &back, NULL));
        ASSERT_OK(eve_vault_token_to_json(&back, &again));
        ASSERT_STREQ(json, again);
        ASSERT_STREQ(back.name, "config");
        ASSERT_EQ(back.generation, 3);
        ASSERT_EQ(back.rotation, ROTATION_SLOT_ADDED);
        ASSERT_EQ(back.new_keyslot, 2);
        ASSERT_MEMEQ(back.pcr_values[7], 32, t.pcr_values[7], 32);

        /* Exact field names. */
        o = json_tokener_parse(json);
        ASSERT_NOT_NULL(o);
        for (const char *const *f = (const char *const[]) { "type", "keyslots", "eve_version", "name", "uuid",
                                                            "generation", "key_source", "keyslot", "pcrs",
                                                            "pcr_source", "escrow", "pcr_values", "rotation", NULL };
             *f; f++)
                ASSERT_TRUE(json_object_object_get_ex(o, *f, NULL));
        ASSERT_EQ(json_object_object_length(o), 13);
        ASSERT_TRUE(json_object_object_get_ex(o, "rotation", &v));
        ASSERT_STREQ(json_object_get_string(json_object_object_get(v, "step")), "slot-added");
        ASSERT_EQ(json_object_get_int(json_object_object_get(v, "new_keyslot")), 2);
        ASSERT_EQ(json_object_get_int(json_object_object_get(v, "new_generation")), 4);
        json_object_put(o);
}

static void refuse_eve(const char *field, const char *value_json, const char *reason_part) {
        _cleanup_free_ char *json = NULL, *edited = NULL;
        EveVaultToken t, back;
        const char *reason = NULL;
        json_object *o;

        make_eve(&t);
        ASSERT_OK(eve_vault_token_to_json(&t, &json));
        o = json_tokener_parse(json);
        if (value_json)
                json_object_object_add(o, field, json_tokener_parse(value_json));
        else
                json_object_object_del(o, field);
        edited = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        ASSERT_ERROR(eve_vault_token_from_json(edited, &back, &reason), EBADMSG);
        ASSERT_NOT_NULL(reason);
        if (!strstr(reason, reason_part))
                test_fail(__FILE__, __LINE__, "reason \"%s\" does not mention \"%s\"", reason, reason_part);
}

TEST(eve_token_refusals) {
        EveVaultToken t;

        refuse_eve("type", "\"eve\"", "type");
        refuse_eve("eve_version", "2", "eve_version");
        refuse_eve("name", "\"../etc\"", "name");
        refuse_eve("name", "\"-x\"", "name");
        refuse_eve("uuid", "\"0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D\"", "uuid");
        refuse_eve("generation", "0", "generation");
        refuse_eve("key_source", "\"usb\"", "key_source");
        refuse_eve("keyslot", "32", "keyslot");
        refuse_eve("pcrs", "[0,99]", "pcrs");
        refuse_eve("pcr_values", "{\"0\":\"11\"}", "pcr_values");
        refuse_eve("pcr_values", "{}", "pcr_values");
        refuse_eve("escrow", "\"lost\"", "escrow");
        refuse_eve("rotation", "{\"step\":\"flying\"}", "rotation");
        refuse_eve("rotation", "{\"step\":\"sealed\",\"new_generation\":4,\"new_keyslot\":0}", "new_keyslot");
        refuse_eve("rotation", "{\"step\":\"started\",\"new_generation\":9}", "new_generation");
        refuse_eve("rotation", NULL, "rotation");

        /* Writing refuses what reading would refuse. */
        make_eve(&t);
        t.new_keyslot = t.keyslot;
        ASSERT_ERROR(eve_vault_token_to_json(&t, &(char *) { NULL }), EINVAL);
        make_eve(&t);
        strcpy(t.name, "a/b");
        ASSERT_ERROR(eve_vault_token_to_json(&t, &(char *) { NULL }), EINVAL);
}

/* The recovery keyslot (docs/VAULTS.md "Recovery key"): recorded when there is one, absent otherwise, never
 * the current keyslot. */
TEST(eve_token_recovery_keyslot) {
        _cleanup_free_ char *json = NULL, *plain = NULL;
        EveVaultToken t, back;

        make_eve(&t);
        ASSERT_OK(eve_vault_token_to_json(&t, &plain));
        ASSERT_TRUE(strstr(plain, "recovery") == NULL);
        ASSERT_OK(eve_vault_token_from_json(plain, &back, NULL));
        ASSERT_FALSE(back.has_recovery);

        t.has_recovery = true;
        t.recovery_keyslot = 5;
        ASSERT_OK(eve_vault_token_to_json(&t, &json));
        ASSERT_TRUE(strstr(json, "\"recovery_keyslot\":5") != NULL);
        ASSERT_OK(eve_vault_token_from_json(json, &back, NULL));
        ASSERT_TRUE(back.has_recovery);
        ASSERT_EQ(back.recovery_keyslot, 5);

        refuse_eve("recovery_keyslot", "32", "recovery_keyslot");
        refuse_eve("recovery_keyslot", "0", "recovery_keyslot"); /* the current keyslot */
        refuse_eve("recovery_keyslot", "\"5\"", "recovery_keyslot");
        t.recovery_keyslot = t.keyslot;
        ASSERT_ERROR(eve_vault_token_to_json(&t, &(char *) { NULL }), EINVAL);
}

TEST(names_and_enums) {
        ASSERT_TRUE(vault_name_is_valid("config"));
        ASSERT_TRUE(vault_name_is_valid("image_2-b"));
        ASSERT_FALSE(vault_name_is_valid(""));
        ASSERT_FALSE(vault_name_is_valid("a.b"));
        ASSERT_FALSE(vault_name_is_valid("a b"));
        ASSERT_FALSE(vault_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        ASSERT_EQ(escrow_state_from_string("confirmed"), ESCROW_CONFIRMED);
        ASSERT_EQ(rotation_step_from_string("escrowed"), ROTATION_ESCROWED);
        ASSERT_EQ(key_source_from_string("tpm+controller"), KEY_SOURCE_TPM_CONTROLLER);
        ASSERT_ERROR(key_source_from_string("x"), EINVAL);
}

DEFINE_TEST_MAIN;
