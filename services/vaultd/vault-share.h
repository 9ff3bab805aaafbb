/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vault-share.h: the controller's share of a tpm+controller or controller vault (proto/evetrust.proto,
 * EveControllerShare, key_type 17752), and how a vault secret is derived from its parts.
 *
 * The share is sealed by the controller with AES-256-GCM under K = SHA-256(X ‖ Y), (X, Y) = ECDH(controller
 * ECDH key, device ECDH public key); the node computes the same point with TPM2_ECDH_ZGen(device ECDH key,
 * public key of the controller ECDH certificate named by controller_cert_hash, read from
 * $EVE_CERTS_DIR/controller/ecdh-<32 hex>.pem). Additional data: "eve-trust controller share v1" ‖
 * vault_uuid.
 *
 * Vault secrets by key source (the keyslot passphrase is base64 of the 32-byte secret, as for every vault):
 *   tpm             secret = the TPM-sealed 32 bytes (systemd-tpm2 token: stock tools open it)
 *   tpm+controller  secret = HKDF-SHA256(ikm = tpm share ‖ controller share, salt = VAULT_SECRET_SALT,
 *                            info = "<uuid> tpm+controller <generation>"); the TPM share is sealed in an
 *                            eve-vault-share token (same JSON as systemd-tpm2, another type, so stock tools
 * do not try it as a passphrase) controller      secret = HKDF-SHA256(ikm = controller share, salt, info =
 * "<uuid> controller <generation>")
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "luks2-util.h"
#include "tpm2-util.h"

#define VAULT_SHARE_SIZE 32U
#define VAULT_SHARE_NONCE_SIZE 12U
#define VAULT_SHARE_TAG_SIZE 16U
#define VAULT_SHARE_CERT_HASH_SIZE 16U
#define VAULT_SHARE_AD_PREFIX "eve-trust controller share v1"
#define VAULT_SHARE_MAX 1024U
#define VAULT_SECRET_SALT "eve-trust vault secret v1"

typedef struct VaultShare {
        char vault_uuid[LUKS2_UUID_STRING_SIZE]; /* lower-case */
        uint8_t cert_hash[VAULT_SHARE_CERT_HASH_SIZE];
        uint8_t nonce[VAULT_SHARE_NONCE_SIZE];
        uint8_t sealed[VAULT_SHARE_SIZE + VAULT_SHARE_TAG_SIZE];
} VaultShare;

/* Pure. An EveControllerShare with every field the right size; -EBADMSG and a reason otherwise. */
int vault_share_parse(const void *p, size_t n, VaultShare *ret, const char **ret_reason);
/* The key of a share request (17751): an EveControllerShare carrying vault_uuid only. */
int vault_share_request_pack(const char *vault_uuid, uint8_t **ret, size_t *ret_size);
/* Pure: opens a share with K (-EKEYREJECTED when it does not authenticate: wrong key, other vault, altered).
 * The share goes to secret memory. */
int vault_share_open_with(
                const uint8_t k[static 32],
                const VaultShare *s,
                uint8_t **ret_share,
                const char **ret_reason);
/* K from the ECDH point x ‖ y. */
void vault_share_key(const uint8_t point[static 2 * TPM2_ECC_P256_SIZE], uint8_t ret[static 32]);
/* With this TPM and the controller certificate the share names. */
int vault_share_open(Tpm2Context *c, const VaultShare *s, uint8_t **ret_share, const char **ret_reason);

/* The vault secret from its parts (see above); tpm_part NULL for controller, ctrl_share NULL for tpm (then
 * the secret is a copy of tpm_part). Secret memory. */
int vault_secret_derive(
                KeySource source,
                const char *uuid,
                uint64_t generation,
                const uint8_t *tpm_part,
                const uint8_t *ctrl_share,
                uint8_t **ret);

static inline bool key_source_needs_tpm(KeySource s) {
        return s == KEY_SOURCE_TPM || s == KEY_SOURCE_TPM_CONTROLLER;
}
static inline bool key_source_needs_controller(KeySource s) {
        return s == KEY_SOURCE_TPM_CONTROLLER || s == KEY_SOURCE_CONTROLLER;
}
