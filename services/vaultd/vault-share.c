/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vault-share.h"

#include <ctype.h>
#include <inttypes.h>
#include <nettle/gcm.h>
#include <nettle/hkdf.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>

#include "crypto-util.h"
#include "encoding.h"
#include "evetrust.pb-c.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"

#define REFUSE(reason)                          \
        ({                                      \
                if (ret_reason)                 \
                        *ret_reason = (reason); \
                -EBADMSG;                       \
        })

static bool uuid_canonical(const char *s, char ret[static LUKS2_UUID_STRING_SIZE]) {
        if (!s || strlen(s) != LUKS2_UUID_STRING_SIZE - 1)
                return false;
        for (size_t i = 0; i < LUKS2_UUID_STRING_SIZE - 1; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!isxdigit((unsigned char) s[i]))
                        return false;
                ret[i] = (char) tolower((unsigned char) s[i]);
        }
        ret[LUKS2_UUID_STRING_SIZE - 1] = '\0';
        return true;
}

int vault_share_parse(const void *p, size_t n, VaultShare *ret, const char **ret_reason) {
        _cleanup_(proto_freep) Org__Eve__Trust__EveControllerShare *m = NULL;
        VaultShare s = {};

        if (PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor, p, n, VAULT_SHARE_MAX, &m) < 0)
                return REFUSE("controller share: not an EveControllerShare");
        if (!uuid_canonical(m->vault_uuid, s.vault_uuid))
                return REFUSE("controller share: vault_uuid is not a UUID");
        if (m->controller_cert_hash.len != VAULT_SHARE_CERT_HASH_SIZE)
                return REFUSE("controller share: controller_cert_hash is not 16 bytes");
        if (m->nonce.len != VAULT_SHARE_NONCE_SIZE)
                return REFUSE("controller share: nonce is not 12 bytes");
        if (m->sealed_share.len != sizeof(s.sealed))
                return REFUSE("controller share: sealed_share is not a 32-byte share and its tag");
        memcpy(s.cert_hash, m->controller_cert_hash.data, sizeof(s.cert_hash));
        memcpy(s.nonce, m->nonce.data, sizeof(s.nonce));
        memcpy(s.sealed, m->sealed_share.data, sizeof(s.sealed));
        *ret = s;
        return 0;
}

int vault_share_request_pack(const char *vault_uuid, uint8_t **ret, size_t *ret_size) {
        Org__Eve__Trust__EveControllerShare m = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;

        m.vault_uuid = (char *) vault_uuid;
        return PROTO_PACK(&m, ret, ret_size);
}

int vault_share_open_with(
                const uint8_t k[static 32],
                const VaultShare *s,
                uint8_t **ret_share,
                const char **ret_reason) {

        _cleanup_secret_ uint8_t *share = NULL;
        _cleanup_free_ char *ad = NULL;
        struct gcm_aes256_ctx gcm;
        uint8_t tag[VAULT_SHARE_TAG_SIZE];
        CLEANUP_ERASE(gcm);

        if (asprintf(&ad, VAULT_SHARE_AD_PREFIX "%s", s->vault_uuid) < 0)
                return -ENOMEM;

        share = eve_secret_alloc(VAULT_SHARE_SIZE);
        if (!share)
                return -ENOMEM;
        gcm_aes256_set_key(&gcm, k);
        gcm_aes256_set_iv(&gcm, sizeof(s->nonce), s->nonce);
        /* One update: nettle wants every AD chunk but the last to be a multiple of the block size. */
        gcm_aes256_update(&gcm, strlen(ad), (const uint8_t *) ad);
        gcm_aes256_decrypt(&gcm, VAULT_SHARE_SIZE, share, s->sealed);
        gcm_aes256_digest(&gcm, sizeof(tag), tag);
        if (!memeq_secure(tag, s->sealed + VAULT_SHARE_SIZE, sizeof(tag))) {
                if (ret_reason)
                        *ret_reason = "controller share does not authenticate (sealed for another device or "
                                      "vault, with another controller key, or altered)";
                return -EKEYREJECTED;
        }
        *ret_share = TAKE_PTR(share);
        return 0;
}

void vault_share_key(const uint8_t point[static 2 * TPM2_ECC_P256_SIZE], uint8_t ret[static 32]) {
        struct sha256_ctx ctx;

        sha256_init(&ctx);
        sha256_update(&ctx, 2 * TPM2_ECC_P256_SIZE, point);
        sha256_digest(&ctx, SHA256_DIGEST_SIZE, ret);
}

int vault_share_open(Tpm2Context *c, const VaultShare *s, uint8_t **ret_share, const char **ret_reason) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ char *hex = NULL, *name = NULL, *path = NULL, *pem = NULL;
        _cleanup_secret_ uint8_t *point = NULL;
        uint8_t hash[CRYPTO_CERT_HASH16_SIZE], k[32];
        Tpm2EccPoint peer;
        size_t pem_size;
        int r;
        CLEANUP_ERASE(k);

        hex = hex_encode(s->cert_hash, sizeof(s->cert_hash));
        if (!hex || asprintf(&name, "controller/ecdh-%s.pem", hex) < 0)
                return -ENOMEM;
        path = eve_path_join(EVE_PATH_CERTS, name);
        if (!path)
                return -ENOMEM;
        r = crypto_cert_load(path, &crt, &pem, &pem_size);
        if (r < 0) {
                if (ret_reason)
                        *ret_reason = r == -ENOENT
                                        ? "controller share names a controller ECDH certificate this "
                                          "node does not have"
                                        : "controller ECDH certificate unreadable";
                return r;
        }
        crypto_cert_hash_pem16(pem, pem_size, hash);
        if (memcmp(hash, s->cert_hash, sizeof(hash)) != 0)
                return REFUSE("controller ECDH certificate file does not match its certHash");
        r = crypto_cert_point(crt, &peer);
        if (r < 0)
                return REFUSE("controller ECDH certificate is not ECDSA/ECDH P-256");
        r = tpm2_key_ensure(c, TPM2_KEY_ECDH, /* create= */ false, NULL);
        if (r >= 0)
                r = tpm2_ecdh_zgen(c, &peer, &point);
        if (r < 0) {
                if (ret_reason)
                        *ret_reason = "ECDH with the device ECDH key failed (eve-tpm-setup has not run?)";
                return r;
        }
        vault_share_key(point, k);
        return vault_share_open_with(k, s, ret_share, ret_reason);
}

int vault_secret_derive(
                KeySource source,
                const char *uuid,
                uint64_t generation,
                const uint8_t *tpm_part,
                const uint8_t *ctrl_share,
                uint8_t **ret) {

        _cleanup_secret_ uint8_t *out = NULL, *ikm = NULL;
        _cleanup_free_ char *info = NULL;
        struct hmac_sha256_ctx ctx;
        uint8_t prk[SHA256_DIGEST_SIZE];
        size_t n = 0;
        CLEANUP_ERASE(ctx);
        CLEANUP_ERASE(prk);

        if (key_source_needs_tpm(source) != !!tpm_part ||
            key_source_needs_controller(source) != !!ctrl_share)
                return -EINVAL;
        out = eve_secret_alloc(TPM2_SECRET_SIZE);
        ikm = eve_secret_alloc(2 * TPM2_SECRET_SIZE);
        if (!out || !ikm)
                return -ENOMEM;
        if (source == KEY_SOURCE_TPM) {
                memcpy(out, tpm_part, TPM2_SECRET_SIZE);
                *ret = TAKE_PTR(out);
                return 0;
        }
        if (tpm_part) {
                memcpy(ikm, tpm_part, TPM2_SECRET_SIZE);
                n += TPM2_SECRET_SIZE;
        }
        memcpy(ikm + n, ctrl_share, VAULT_SHARE_SIZE);
        n += VAULT_SHARE_SIZE;
        if (asprintf(&info, "%s %s %" PRIu64, uuid, key_source_to_string(source), generation) < 0)
                return -ENOMEM;
        hmac_sha256_set_key(&ctx, strlen(VAULT_SECRET_SALT), (const uint8_t *) VAULT_SECRET_SALT);
        hkdf_extract(&ctx,
                     (nettle_hash_update_func *) hmac_sha256_update,
                     (nettle_hash_digest_func *) hmac_sha256_digest,
                     SHA256_DIGEST_SIZE,
                     n,
                     ikm,
                     prk);
        hmac_sha256_set_key(&ctx, sizeof(prk), prk);
        hkdf_expand(&ctx,
                    (nettle_hash_update_func *) hmac_sha256_update,
                    (nettle_hash_digest_func *) hmac_sha256_digest,
                    SHA256_DIGEST_SIZE,
                    strlen(info),
                    (const uint8_t *) info,
                    TPM2_SECRET_SIZE,
                    out);
        *ret = TAKE_PTR(out);
        return 0;
}
