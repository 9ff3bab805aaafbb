/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Without a TPM: the controller share as evc seals it (controller/evc-share.c) opens here with the same K,
 * and nothing else does; share and share-request wire format; how vault secrets are derived from their
 * parts; EVE's legacy escrow format (AES-256-CFB, zero IV, key SHA-256(X ‖ Y)) read, V1 refused under a
 * wrong point. */
#include <nettle/aes.h>
#include <nettle/cfb.h>
#include <nettle/sha2.h>

#include "evc-share.h"
#include "evetrust.pb-c.h"
#include "memory-util.h"
#include "proto-util.h"
#include "tests.h"
#include "vault-escrow.h"
#include "vault-share.h"

#define UUID "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

TEST(evc_sealed_share_opens_here) {
        _cleanup_free_ uint8_t *wire = NULL;
        _cleanup_secret_ uint8_t *out = NULL;
        uint8_t k[32], other[32], hash[16], share[32];
        const char *why = NULL;
        VaultShare s;
        size_t n;

        memset(k, 0x42, sizeof(k));
        memset(other, 0x43, sizeof(other));
        memset(hash, 0x10, sizeof(hash));
        for (size_t i = 0; i < sizeof(share); i++)
                share[i] = (uint8_t) (i * 3 + 1);
        ASSERT_OK(evc_share_seal_wire(k, hash, UUID, share, &wire, &n));

        ASSERT_OK(vault_share_parse(wire, n, &s, &why));
        ASSERT_STREQ(s.vault_uuid, UUID);
        ASSERT_MEMEQ(s.cert_hash, 16, hash, 16);
        ASSERT_OK(vault_share_open_with(k, &s, &out, &why));
        ASSERT_MEMEQ(out, 32, share, 32);
        out = eve_secret_free(out);

        /* Another K (another device's ECDH key, another controller key). */
        ASSERT_ERROR(vault_share_open_with(other, &s, &out, &why), EKEYREJECTED);
        ASSERT_NOT_NULL(strstr(why, "does not authenticate"));
        /* Relabelled for another vault: the additional data binds it. */
        memcpy(s.vault_uuid, "1a1b2c3d", 8);
        ASSERT_ERROR(vault_share_open_with(k, &s, &out, &why), EKEYREJECTED);
        ASSERT_NULL(out);
}

TEST(share_wire_refusals) {
        _cleanup_free_ uint8_t *req = NULL;
        _cleanup_(proto_freep) Org__Eve__Trust__EveControllerShare *m = NULL;
        const char *why = NULL;
        VaultShare s;
        size_t n;

        /* A share request carries the vault UUID only. */
        ASSERT_OK(vault_share_request_pack(UUID, &req, &n));
        ASSERT_OK(PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor, req, n, 1024, &m));
        ASSERT_STREQ(m->vault_uuid, UUID);
        ASSERT_EQ(m->controller_cert_hash.len + m->nonce.len + m->sealed_share.len, 0);
        /* … and is not a share. */
        ASSERT_ERROR(vault_share_parse(req, n, &s, &why), EBADMSG);
        ASSERT_NOT_NULL(strstr(why, "controller_cert_hash"));
        ASSERT_ERROR(vault_share_parse("\x0a\x03xyz", 5, &s, &why), EBADMSG);
        ASSERT_NOT_NULL(strstr(why, "UUID"));
        ASSERT_ERROR(vault_share_parse("\xff\xff", 2, &s, &why), EBADMSG);
        ASSERT_NOT_NULL(strstr(why, "not an EveControllerShare"));
}

TEST(secret_derivation) {
        _cleanup_secret_ uint8_t *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *f = NULL;
        uint8_t tpm[32], ctrl[32];

        memset(tpm, 1, sizeof(tpm));
        memset(ctrl, 2, sizeof(ctrl));
        /* tpm: the sealed secret itself (what systemd-cryptsetup uses). */
        ASSERT_OK(vault_secret_derive(KEY_SOURCE_TPM, UUID, 1, tpm, NULL, &a));
        ASSERT_MEMEQ(a, 32, tpm, 32);
        /* tpm+controller: both parts, bound to the vault and generation. */
        ASSERT_OK(vault_secret_derive(KEY_SOURCE_TPM_CONTROLLER, UUID, 2, tpm, ctrl, &b));
        ASSERT_TRUE(memcmp(b, tpm, 32) != 0 && memcmp(b, ctrl, 32) != 0);
        ctrl[0] ^= 1;
        ASSERT_OK(vault_secret_derive(KEY_SOURCE_TPM_CONTROLLER, UUID, 2, tpm, ctrl, &c));
        ASSERT_TRUE(memcmp(b, c, 32) != 0);
        ASSERT_OK(vault_secret_derive(KEY_SOURCE_TPM_CONTROLLER, UUID, 3, tpm, ctrl, &d));
        ASSERT_TRUE(memcmp(c, d, 32) != 0);
        /* controller: the share alone; a new generation is a new secret. */
        ASSERT_OK(vault_secret_derive(KEY_SOURCE_CONTROLLER, UUID, 2, NULL, ctrl, &e));
        ASSERT_OK(vault_secret_derive(KEY_SOURCE_CONTROLLER, UUID, 3, NULL, ctrl, &f));
        ASSERT_TRUE(memcmp(e, f, 32) != 0);
        /* The parts a source needs, no more, no less. */
        ASSERT_ERROR(vault_secret_derive(KEY_SOURCE_TPM_CONTROLLER, UUID, 2, tpm, NULL, &f), EINVAL);
        ASSERT_ERROR(vault_secret_derive(KEY_SOURCE_CONTROLLER, UUID, 2, tpm, ctrl, &f), EINVAL);
}

static void sha256(const void *p, size_t n, uint8_t out[static 32]) {
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, n, p);
        sha256_digest(&c, 32, out);
}

TEST(legacy_escrow_read_never_written) {
        _cleanup_free_ uint8_t *blob = NULL, *v1 = NULL;
        _cleanup_secret_ uint8_t *out = NULL;
        uint8_t point[64], other[64], k[32], iv[16] = {}, secret[32];
        EscrowData d = { .version = 0 }, back;
        struct aes256_ctx aes;
        const char *why = NULL;
        size_t n, v1n;

        memset(point, 0x31, sizeof(point));
        memset(other, 0x32, sizeof(other));
        for (size_t i = 0; i < sizeof(secret); i++)
                secret[i] = (uint8_t) (0xa0 ^ i);
        /* What an EVE node sends: AES-256-CFB128(SHA-256(X ‖ Y), IV 0), digest, no version. */
        sha256(point, sizeof(point), k);
        aes256_set_encrypt_key(&aes, k);
        cfb_encrypt(&aes,
                    (nettle_cipher_func *) aes256_encrypt,
                    AES_BLOCK_SIZE,
                    iv,
                    32,
                    d.encrypted_key,
                    secret);
        sha256(secret, 32, d.digest_sha256);
        ASSERT_OK(escrow_data_pack(&d, &blob, &n));
        ASSERT_EQ(n, 2 + 32 + 2 + 32); /* no version field */
        ASSERT_OK(escrow_data_unpack(blob, n, &back, &why));
        ASSERT_EQ(back.version, 0);

        ASSERT_OK(escrow_open_point(point, blob, n, &out, &why));
        ASSERT_MEMEQ(out, 32, secret, 32);
        out = eve_secret_free(out);
        ASSERT_ERROR(escrow_open_point(other, blob, n, &out, &why), EKEYREJECTED);
        ASSERT_NOT_NULL(strstr(why, "legacy"));
        /* The V1-only opener refuses it (no tag to check). */
        ASSERT_ERROR(escrow_open_with(point, blob, n, &out, &why), EBADMSG);

        /* V1 under the same point's x coordinate still opens through escrow_open_point. */
        ASSERT_OK(escrow_seal_with(point, secret, &v1, &v1n));
        ASSERT_OK(escrow_open_point(point, v1, v1n, &out, &why));
        ASSERT_MEMEQ(out, 32, secret, 32);
        ASSERT_NULL(NULL);
}

DEFINE_TEST_MAIN
