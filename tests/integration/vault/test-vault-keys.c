/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key sources through eve-vaultd: a tpm+controller vault cannot be opened with its TPM share alone and opens
 * with the controller's share (EveControllerShare, key_type 17752, made here exactly as proto/evetrust.proto
 * says, with a software "controller ECDH key" from certtool); a controller vault has no TPM key at all;
 * shares that do not authenticate or name an unknown certificate are refused with reasons; EVE's own escrow
 * entry (VSK, key_type 1) in EVE's legacy format (AES-256-CFB, zero IV) rescues the default vault. */
#include <nettle/aes.h>
#include <nettle/cfb.h>
#include <nettle/gcm.h>
#include <nettle/sha2.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "attest.pb-c.h"
#include "crypto-util.h"
#include "encoding.h"
#include "evetrust.pb-c.h"
#include "luks2-util.h"
#include "memory-util.h"
#include "proto-util.h"
#include "vault-test.h"

#define AD_PREFIX "eve-trust controller share v1"

typedef struct Controller {
        TestCA *ca;       /* its ECDH key (certtool, P-256) and certificate */
        uint8_t hash[16]; /* certHash: SHA-256 of the PEM, first 16 bytes */
        uint8_t k[32];    /* SHA-256(X ‖ Y) with this device's ECDH key */
} Controller;

static void sha256(const void *p, size_t n, uint8_t out[static 32]) {
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, n, p);
        sha256_digest(&c, 32, out);
}

static void read_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *s = NULL;
        size_t n = 0;
        ssize_t k;

        ASSERT_NOT_NULL(f);
        k = getdelim(&s, &n, '\0', f);
        ASSERT_TRUE(k > 0);
        *ret = s;
        *ret_size = (size_t) k;
}

/* The controller side: its ECDH certificate where eve-register would put it, and K for this device. */
static void controller_setup(Controller *ctl, VaultDaemon *d) {
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_secret_ uint8_t *point = NULL;
        _cleanup_free_ char *pem = NULL, *hex = NULL, *dir = NULL, *cmd = NULL;
        Tpm2EccPoint device_ecdh;
        uint8_t full[32];
        size_t n;

        ctl->ca = test_ca_new("controller-ecdh");
        read_file(ctl->ca->cert, &pem, &n);
        sha256(pem, n, full);
        memcpy(ctl->hash, full, sizeof(ctl->hash));
        hex = hex_encode(ctl->hash, sizeof(ctl->hash));
        ASSERT_OK(asprintf(&dir, "%s/persist/certs/controller", d->root));
        ASSERT_OK(asprintf(&cmd, "mkdir -p %s && cp %s %s/ecdh-%s.pem", dir, ctl->ca->cert, dir, hex));
        ASSERT_EQ(system(cmd), 0);

        /* The device's ECDH public key (its ECDH certificate, in the real exchange). */
        ASSERT_OK(tpm2_context_new(d->tpm->tcti, &c));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_ECDH, false, &device_ecdh));
        ASSERT_OK(crypto_soft_key_load(ctl->ca->key, &key));
        ASSERT_OK(crypto_ecdh_soft(key, &device_ecdh, &point));
        sha256(point, 64, ctl->k);
}

/* An EveControllerShare: share sealed with AES-256-GCM under K, AD = prefix ‖ ad_uuid, labelled for uuid. */
static void
                make_share(const Controller *ctl,
                           const char *uuid,
                           const char *ad_uuid,
                           const uint8_t *hash,
                           const uint8_t share[static 32],
                           VtEntry *ret) {
        Org__Eve__Trust__EveControllerShare m = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;
        _cleanup_free_ char *ad = NULL;
        struct gcm_aes256_ctx gcm;
        uint8_t nonce[12], sealed[48];

        ASSERT_EQ(getrandom(nonce, sizeof(nonce), 0), (ssize_t) sizeof(nonce));
        gcm_aes256_set_key(&gcm, ctl->k);
        gcm_aes256_set_iv(&gcm, sizeof(nonce), nonce);
        ASSERT_OK(asprintf(&ad, AD_PREFIX "%s", ad_uuid));
        gcm_aes256_update(&gcm, strlen(ad), (const uint8_t *) ad);
        gcm_aes256_encrypt(&gcm, 32, sealed, share);
        gcm_aes256_digest(&gcm, 16, sealed + 32);
        m.vault_uuid = (char *) uuid;
        m.controller_cert_hash = (ProtobufCBinaryData){ .len = 16, .data = (uint8_t *) hash };
        m.nonce = (ProtobufCBinaryData){ .len = sizeof(nonce), .data = nonce };
        m.sealed_share = (ProtobufCBinaryData){ .len = sizeof(sealed), .data = sealed };
        ret->type = 17752;
        ASSERT_OK(PROTO_PACK(&m, &ret->key, &ret->size));
}

static char *create_vault(const char *name, const char *source) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;

        ASSERT_OK(
                        vt_call(VT_MANAGER,
                                VT_MANAGER_IFACE,
                                "CreateVault",
                                NULL,
                                &reply,
                                "stsau",
                                name,
                                (uint64_t) 32 << 20,
                                source,
                                0));
        ASSERT_OK(sd_bus_message_read(reply, "o", &path));
        return strdup(path);
}

static bool has_entry(const VtEntries *l, uint32_t type, const char *uuid) {
        for (size_t i = 0; i < l->n; i++) {
                if (l->e[i].type != type)
                        continue;
                if (type == 17751) {
                        _cleanup_(proto_freep) Org__Eve__Trust__EveControllerShare *m = NULL;
                        ASSERT_OK(
                                        PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor,
                                                     l->e[i].key,
                                                     l->e[i].size,
                                                     1024,
                                                     &m));
                        ASSERT_EQ(m->nonce.len + m->sealed_share.len + m->controller_cert_hash.len, 0);
                        if (streq(m->vault_uuid, uuid))
                                return true;
                } else if (vt_find_escrow(l, uuid))
                        return true;
        }
        return false;
}

static void submit(const char *name, const VtEntry *e) {
        VtEntries one = { .n = 1 };
        uint64_t since = vt_get_u64(name, "LastOperationTime");
        uint32_t served = 0;

        one.e[0] = *e;
        ASSERT_OK(vt_send_entries("SubmitKeys", &one, NULL, &served));
        ASSERT_EQ(served, 1);
        vt_wait_op(name, "unlock", since);
}

static void assert_key_verified(const char *name, const char *method) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *m = vt_get_str(name, "UnlockMethod"),
                            *en = vt_get_str(name, "LastErrorName");

        ASSERT_STREQ(m, method);
        if (!streq(state, "Unlocked"))
                ASSERT_STREQ(en, VT_ERR("DeviceMapperUnavailable"));
}

static void assert_locked_because(const char *name, const char *error, const char *part) {
        _cleanup_free_ char *state = vt_get_str(name, "State"), *en = vt_get_str(name, "LastErrorName"),
                            *e = vt_get_str(name, "LastError"), *m = vt_get_str(name, "UnlockMethod");

        ASSERT_STREQ(state, "Locked");
        ASSERT_STREQ(en, error);
        vt_assert_contains(e, part);
        if (streq(error, VT_ERR("KeyUnavailable")))
                ASSERT_STREQ(m, "none");
}

TEST(tpm_controller_vault_needs_the_controller_share) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {}, bad = {};
        _cleanup_free_ char *path = NULL, *uuid = NULL;
        VtEntry share_entry = {};
        uint8_t share[32];
        Controller ctl = {};
        VaultDaemon *d;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        path = create_vault("tc", "tpm+controller");
        uuid = vt_get_str("tc", "UUID");

        /* Made with a provisional TPM key, but not opened (no file system, no data) before the share is
         * there. */
        assert_locked_because(
                        "tc",
                        VT_ERR("KeyUnavailable"),
                        "waiting for the controller's share before first use");
        {
                _cleanup_free_ char *ks = vt_get_str("tc", "KeySource"),
                                    *rks = vt_get_str("tc", "RequestedKeySource");
                ASSERT_STREQ(ks, "tpm");
                ASSERT_STREQ(rks, "tpm+controller");
        }
        /* attestd is told to ask the controller for a share; no escrow of the provisional key. */
        vt_get_escrow_keys(&keys);
        ASSERT_TRUE(has_entry(&keys, 17751, uuid));
        ASSERT_FALSE(has_entry(&keys, 17750, uuid));
        ASSERT_TRUE(vt_get_bool_manager("EscrowPending"));
        vt_entries_done(&keys);

        /* The controller releases its share after a good attestation. */
        controller_setup(&ctl, d);
        ASSERT_EQ(getrandom(share, sizeof(share), 0), (ssize_t) sizeof(share));
        make_share(&ctl, uuid, uuid, ctl.hash, share, &share_entry);
        submit("tc", &share_entry);
        assert_key_verified("tc", "tpm+controller");
        {
                _cleanup_free_ char *ks = vt_get_str("tc", "KeySource"),
                                    *rks = vt_get_str("tc", "RequestedKeySource");
                ASSERT_STREQ(ks, "tpm+controller");
                ASSERT_STREQ(rks, "");
        }
        ASSERT_EQ(vt_get_u64("tc", "KeyGeneration"), 2);
        ASSERT_EQ(vt_get_u32("tc", "Keyslots"), 1);
        vt_get_escrow_keys(&keys);
        ASSERT_FALSE(has_entry(&keys, 17751, uuid)); /* the share has arrived */
        ASSERT_TRUE(has_entry(&keys, 17750, uuid));  /* the TPM share's escrow */

        /* The TPM share alone: after a restart the vault waits for the controller again ... */
        vt_daemon_restart(d, NULL);
        assert_locked_because(
                        "tc",
                        VT_ERR("KeyUnavailable"),
                        "waiting for the controller's share (key source "
                        "tpm+controller)");
        /* ... and the TPM share really is not the key: unsealed here, it does not open the keyslot. */
        {
                _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
                _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = {};
                _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
                _cleanup_secret_ uint8_t *tpm_share = NULL;
                _cleanup_free_ char *img = NULL, *json = NULL, *as_tpm2 = NULL;
                size_t n;

                ASSERT_OK(asprintf(&img, "%s/persist/vault-images/tc.img", d->root));
                ASSERT_OK(luks2_open(img, &cd));
                ASSERT_ERROR(luks2_token_find(cd, LUKS2_TOKEN_TPM2, -1, NULL, NULL),
                             ENOENT); /* stock tools: none */
                ASSERT_OK(luks2_token_find(cd, "eve-vault-share", -1, NULL, &json));
                ASSERT_NOT_NULL(strstr(json, "\"type\":\"eve-vault-share\""));
                ASSERT_OK(asprintf(&as_tpm2, "{\"type\":\"systemd-tpm2\"%s", strstr(json, ",")));
                ASSERT_OK(luks2_tpm2_token_from_json(as_tpm2, &tok, NULL));
                ASSERT_OK(tpm2_context_new(t->tcti, &c));
                ASSERT_OK(tpm2_unseal(
                                c, tok.pcr_mask, tok.policy_hash, tok.blob, tok.blob_size, &tpm_share, &n));
                ASSERT_EQ(n, 32);
                ASSERT_ERROR(luks2_check_key(cd, -1, tpm_share, n), EPERM);
        }
        submit("tc", &share_entry);
        assert_key_verified("tc", "tpm+controller");

        /* Shares that must not work, each refused with its reason. */
        {
                uint8_t other[16];
                VtEntry e = {};

                /* Sealed for another vault (the additional data names it). */
                make_share(&ctl, uuid, "00000000-0000-4000-8000-000000000000", ctl.hash, share, &e);
                vt_daemon_restart(d, NULL);
                submit("tc", &e);
                assert_locked_because("tc", VT_ERR("KeyRejected"), "does not authenticate");
                free(e.key);

                /* Naming a controller certificate this node does not have. */
                memset(other, 0x5a, sizeof(other));
                make_share(&ctl, uuid, uuid, other, share, &e);
                submit("tc", &e);
                assert_locked_because("tc", VT_ERR("KeyRejected"), "does not have");
                free(e.key);

                /* Another share (a controller that lost its store and made a new one). */
                share[0] ^= 1;
                make_share(&ctl, uuid, uuid, ctl.hash, share, &e);
                submit("tc", &e);
                assert_locked_because("tc", VT_ERR("KeyRejected"), "does not open");
                free(e.key);
        }
        /* Not a share at all. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                bad.e[0] = (VtEntry){ .type = 17752, .key = (uint8_t *) strdup("\x0a\x03xyz"), .size = 5 };
                bad.n = 1;
                ASSERT_TRUE(vt_send_entries("SubmitKeys", &bad, &error, NULL) < 0);
                ASSERT_STREQ(error.name, VT_ERR("KeyRejected"));
                vt_assert_contains(error.message, "vault_uuid is not a UUID");
        }
        free(share_entry.key);
}

TEST(controller_vault_has_no_tpm_key) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {};
        _cleanup_free_ char *path = NULL, *uuid = NULL, *img = NULL;
        VtEntry share_entry = {};
        uint8_t share[32];
        Controller ctl = {};
        VaultDaemon *d;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        path = create_vault("ctl", "controller");
        uuid = vt_get_str("ctl", "UUID");
        assert_locked_because(
                        "ctl",
                        VT_ERR("KeyUnavailable"),
                        "waiting for the controller's share before first use");
        vt_get_escrow_keys(&keys);
        ASSERT_TRUE(has_entry(&keys, 17751, uuid));
        vt_entries_done(&keys);

        controller_setup(&ctl, d);
        ASSERT_EQ(getrandom(share, sizeof(share), 0), (ssize_t) sizeof(share));
        make_share(&ctl, uuid, uuid, ctl.hash, share, &share_entry);
        submit("ctl", &share_entry);
        assert_key_verified("ctl", "controller");
        {
                _cleanup_free_ char *ks = vt_get_str("ctl", "KeySource"),
                                    *es = vt_get_str("ctl", "EscrowState");
                ASSERT_STREQ(ks, "controller");
                ASSERT_STREQ(es, "not-needed");
        }
        ASSERT_EQ(vt_get_pcrs("ctl", "SealingPCRs"), 0);
        vt_get_escrow_keys(&keys);
        ASSERT_FALSE(has_entry(&keys, 17751, uuid));
        ASSERT_FALSE(has_entry(&keys, 17750, uuid));

        /* No TPM token of any kind is left in the image: only the controller's share opens it. */
        {
                _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
                ASSERT_OK(asprintf(&img, "%s/persist/vault-images/ctl.img", d->root));
                ASSERT_OK(luks2_open(img, &cd));
                ASSERT_ERROR(luks2_token_find(cd, LUKS2_TOKEN_TPM2, -1, NULL, NULL), ENOENT);
                ASSERT_ERROR(luks2_token_find(cd, "eve-vault-share", -1, NULL, NULL), ENOENT);
                ASSERT_EQ(__builtin_popcount(luks2_keyslots_active(cd)), 1);
        }
        vt_daemon_restart(d, NULL);
        assert_locked_because(
                        "ctl",
                        VT_ERR("KeyUnavailable"),
                        "waiting for the controller's share (key source "
                        "controller)");
        submit("ctl", &share_entry);
        assert_key_verified("ctl", "controller");
        free(share_entry.key);
}

/* EVE's escrow of the default vault: key_type 1 (VSK), AttestVolumeKeyData without a version, the key
 * wrapped with AES-256-CFB under SHA-256(X ‖ Y) and a zero IV. Made here from the vault's TPM-sealed key, as
 * an EVE node would have made it; read by eve-vaultd, never written. */
TEST(legacy_vsk_escrow_rescues_the_default_vault) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *img = NULL;
        VtEntry vsk = { .type = 1 };
        VaultDaemon *d;

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        vt_daemon_stop(d);
        {
                _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
                _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = {};
                _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
                _cleanup_secret_ uint8_t *secret = NULL, *point = NULL;
                _cleanup_free_ char *json = NULL;
                Org__Lfedge__Eve__Attest__AttestVolumeKeyData kd =
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_DATA__INIT;
                Tpm2EccPoint device;
                struct aes256_ctx aes;
                uint8_t k[32], iv[16] = {}, enc[32], digest[32];
                size_t n;

                ASSERT_OK(asprintf(&img, "%s/persist/vault-images/image.img", d->root));
                ASSERT_OK(luks2_open(img, &cd));
                ASSERT_OK(luks2_token_find(cd, LUKS2_TOKEN_TPM2, -1, NULL, &json));
                ASSERT_OK(luks2_tpm2_token_from_json(json, &tok, NULL));
                ASSERT_OK(tpm2_context_new(t->tcti, &c));
                ASSERT_OK(tpm2_unseal(
                                c, tok.pcr_mask, tok.policy_hash, tok.blob, tok.blob_size, &secret, &n));
                ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, false, &device));
                ASSERT_OK(tpm2_ecdh_zgen(c, &device, &point));
                sha256(point, 64, k);
                aes256_set_encrypt_key(&aes, k);
                cfb_encrypt(&aes,
                            (nettle_cipher_func *) aes256_encrypt,
                            AES_BLOCK_SIZE,
                            iv,
                            32,
                            enc,
                            secret);
                sha256(secret, 32, digest);
                kd.encrypted_key = (ProtobufCBinaryData){ .len = 32, .data = enc };
                kd.digest_sha256 = (ProtobufCBinaryData){ .len = 32, .data = digest };
                ASSERT_OK(PROTO_PACK(&kd, &vsk.key, &vsk.size));
        }
        vt_extend(t, 7, 0x77);
        vt_daemon_restart(d, NULL);
        assert_locked_because("image", VT_ERR("KeyUnavailable"), "PCRs 7 changed");
        submit("image", &vsk);
        assert_key_verified("image", "controller");
        ASSERT_EQ(vt_get_pcrs("image", "MovedPCRs"), 0);
        vt_daemon_restart(d, NULL);
        assert_key_verified("image", "tpm");
        free(vsk.key);
}

/* ChangeKey to another key source is a rotation: requested until the controller's share arrives, then run
 * with the old keyslot kept until the new escrow is confirmed; ChangeKey with a PCR list re-seals to it. */
TEST(change_key_source_and_pcrs) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_(vt_entries_done) VtEntries keys = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = NULL, *uuid = NULL;
        VtEntry share_entry = {};
        uint8_t share[32];
        Controller ctl = {};
        VaultDaemon *d;
        int completed = 1;
        uint64_t since;
        static const uint32_t pcrs[] = { 0, 7 };

        vt_provision(t, 0x11);
        test_bus_start(NULL);
        d = vt_daemon_start(t, NULL, NULL);
        path = vt_path("config");
        uuid = vt_get_str("config", "UUID");

        /* PCR set: re-sealed at once. */
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *r2 = NULL;

                ASSERT_OK(sd_bus_message_new_method_call(bus, &m, VT_BUS, path, VT_IFACE, "ChangeKey"));
                ASSERT_OK(sd_bus_message_append(m, "s", ""));
                ASSERT_OK(sd_bus_message_append_array(m, 'u', pcrs, sizeof(pcrs)));
                ASSERT_OK(sd_bus_call(bus, m, 0, NULL, &r2));
                ASSERT_OK(sd_bus_message_read(r2, "b", &completed));
                ASSERT_TRUE(completed);
        }
        ASSERT_EQ(vt_get_pcrs("config", "SealingPCRs"), 0x81);
        ASSERT_EQ(vt_get_u64("config", "KeyGeneration"), 2);
        since = vt_get_u64("config", "LastOperationTime");
        vt_get_escrow_keys(&keys);
        ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
        vt_wait_op("config", "confirm", since);
        vt_entries_done(&keys);
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 1);

        /* Key source: recorded, and a share requested from the controller. */
        ASSERT_OK(vt_call(path, VT_IFACE, "ChangeKey", NULL, &reply, "sau", "tpm+controller", 0));
        ASSERT_OK(sd_bus_message_read(reply, "b", &completed));
        ASSERT_FALSE(completed);
        {
                _cleanup_free_ char *ks = vt_get_str("config", "KeySource"),
                                    *rks = vt_get_str("config", "RequestedKeySource"),
                                    *rot = vt_get_str("config", "Rotation");
                ASSERT_STREQ(ks, "tpm");
                ASSERT_STREQ(rks, "tpm+controller");
                ASSERT_STREQ(rot, "requested");
        }
        vt_get_escrow_keys(&keys);
        ASSERT_TRUE(has_entry(&keys, 17751, uuid));
        vt_entries_done(&keys);

        controller_setup(&ctl, d);
        ASSERT_EQ(getrandom(share, sizeof(share), 0), (ssize_t) sizeof(share));
        make_share(&ctl, uuid, uuid, ctl.hash, share, &share_entry);
        submit("config", &share_entry);
        {
                _cleanup_free_ char *ks = vt_get_str("config", "KeySource"),
                                    *rot = vt_get_str("config", "Rotation");
                ASSERT_STREQ(ks, "tpm+controller");
                ASSERT_STREQ(rot, "unconfirmed");
        }
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 2);
        ASSERT_EQ(vt_get_u64("config", "KeyGeneration"), 3);
        ASSERT_EQ(vt_get_pcrs("config", "SealingPCRs"), 0x81); /* the PCR set stays */
        since = vt_get_u64("config", "LastOperationTime");
        vt_get_escrow_keys(&keys);
        ASSERT_FALSE(has_entry(&keys, 17751, uuid));
        ASSERT_OK(vt_send_entries("ConfirmEscrow", &keys, NULL, NULL));
        vt_wait_op("config", "confirm", since);
        ASSERT_EQ(vt_get_u32("config", "Keyslots"), 1);

        /* From now on the TPM alone does not open it. */
        vt_daemon_restart(d, NULL);
        assert_locked_because("config", VT_ERR("KeyUnavailable"), "waiting for the controller's share");
        submit("config", &share_entry);
        assert_key_verified("config", "tpm+controller");
        free(share_entry.key);
}

DEFINE_TEST_MAIN
