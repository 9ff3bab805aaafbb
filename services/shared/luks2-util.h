/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* luks2-util.h: LUKS2 volumes through libcryptsetup, and the two tokens a vault carries: `systemd-tpm2`
 * (exactly as systemd 254 writes it, so stock tools can unlock our volumes) and `eve-vault` (our metadata).
 * Keyslot passphrases are base64(secret) under PBKDF2-SHA512, 1000 iterations, no benchmark (DESIGN.md,
 * "Vaults"). Parsing never half-uses a token: either every field is valid, or the call fails with -EBADMSG
 * and a reason. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "tpm2-util.h"

struct crypt_device;

#define LUKS2_SECRET_SIZE 32U
#define LUKS2_KEYSLOTS_MAX 32
#define LUKS2_TOKEN_TPM2 "systemd-tpm2"
#define LUKS2_TOKEN_EVE "eve-vault"
#define LUKS2_VAULT_NAME_MAX 64U
#define LUKS2_UUID_STRING_SIZE 37U /* 36 characters and NUL */
/* The smallest image that holds a LUKS2 header (16 MiB) and some data. */
#define LUKS2_IMAGE_SIZE_MIN (UINT64_C(32) << 20)

void luks2_crypt_freep(struct crypt_device **cd);

/* Formats path (a regular file, created or resized to size when size > 0, or a block device with size 0) as
 * LUKS2 with AES-XTS, a random volume key and one keyslot for base64(secret). ret_cd (optional) keeps the
 * loaded device; ret_keyslot the slot used; ret_uuid (37 bytes, optional) the LUKS UUID. */
int luks2_format(const char *path, uint64_t size, const void *secret, size_t secret_size,
                struct crypt_device **ret_cd, int *ret_keyslot, char *ret_uuid);
/* 1 when path starts with a LUKS header's magic, 0 when not, -errno when it cannot be read. Reads the bytes
 * itself: a program that only needs to tell a LUKS device from another does not need libcryptsetup. */
int luks2_has_header(const char *path);
/* crypt_init + crypt_load(LUKS2). -ENOENT when path does not exist, -EMEDIUMTYPE when it is not LUKS2. */
int luks2_open(const char *path, struct crypt_device **ret);

/* Checks base64(secret) against keyslot (or any slot when keyslot < 0) without mapping anything
 * (crypt_activate_by_passphrase with name NULL). Returns the keyslot that matched, -EPERM for a wrong key. */
int luks2_check_key(struct crypt_device *cd, int keyslot, const void *secret, size_t secret_size);
/* Maps the volume as /dev/mapper/<name>. Without device-mapper: -EOPNOTSUPP (the key was still checked first:
 * -EPERM for a wrong key wins). */
int luks2_activate(struct crypt_device *cd, const char *name, int keyslot, const void *secret, size_t secret_size);
/* Checks base64(secret) against keyslot (any when < 0) and returns the volume key it unlocks (secret memory,
 * eve_secret_free; *ret_vk_size bytes): one keyslot KDF, and activating with it needs none. Returns the
 * keyslot that matched, -EPERM for a wrong key. */
int luks2_volume_key_get(
                struct crypt_device *cd,
                int keyslot,
                const void *secret,
                size_t secret_size,
                uint8_t **ret_vk,
                size_t *ret_vk_size);
/* Maps the volume as /dev/mapper/<name> with a volume key from luks2_volume_key_get() (checked against the
 * header's digest, no keyslot KDF). -EPERM for another volume's key, -EOPNOTSUPP without device-mapper. */
int luks2_activate_by_volume_key(struct crypt_device *cd, const char *name, const void *vk, size_t vk_size);
/* Adds a keyslot for new_secret, unlocking the volume key with old_secret; returns the new slot. */
int luks2_add_keyslot(struct crypt_device *cd, const void *old_secret, size_t old_size, const void *new_secret,
                size_t new_size);
/* Adds a keyslot for base64(new_secret) (luks2_add_keyslot's passphrase form), or for the passphrase as it
 * is (luks2_add_passphrase_keyslot: a recovery key a person types), from the volume key (a key from
 * luks2_volume_key_get*()); returns the new slot. */
int luks2_add_keyslot_by_volume_key(
                struct crypt_device *cd,
                const void *vk,
                size_t vk_size,
                const void *new_secret,
                size_t new_size);
int luks2_add_passphrase_keyslot(
                struct crypt_device *cd, const void *vk, size_t vk_size, const char *passphrase, size_t len);
/* luks2_volume_key_get() for a passphrase as it is (a recovery key). */
int luks2_volume_key_get_by_passphrase(
                struct crypt_device *cd,
                int keyslot,
                const char *passphrase,
                size_t len,
                uint8_t **ret_vk,
                size_t *ret_vk_size);
/* Destroys a keyslot and every token assigned only to it. Refuses to remove the last active keyslot (-EBUSY). */
int luks2_remove_keyslot(struct crypt_device *cd, int keyslot);
/* Bitmask of active keyslots. */
uint32_t luks2_keyslots_active(struct crypt_device *cd);
/* Whether keyslot uses exactly PBKDF2-SHA512 with 1000 iterations: 1 yes, 0 no. */
int luks2_keyslot_is_minimal_pbkdf(struct crypt_device *cd, int keyslot);

/* Tokens by type. luks2_token_find: the first token of type assigned to keyslot (keyslot < 0: any), returning
 * its id and JSON text (copied); -ENOENT when none. luks2_token_write: stores json as token id (or a new token
 * when id < 0), assigns it to keyslot when keyslot ≥ 0, returns the token id. */
int luks2_token_find(struct crypt_device *cd, const char *type, int keyslot, int *ret_id, char **ret_json);
int luks2_token_write(struct crypt_device *cd, int id, const char *json, int keyslot);
int luks2_token_remove(struct crypt_device *cd, int id);

/* ---- the systemd-tpm2 token ---- */

typedef struct Luks2Tpm2Token {
        int keyslot;
        uint8_t *blob; /* marshalled TPM2B_PRIVATE ‖ TPM2B_PUBLIC */
        size_t blob_size;
        uint32_t pcr_mask;
        uint8_t policy_hash[TPM2_SHA256_SIZE];
        uint8_t *srk; /* Esys_TR_Serialize() of the SRK; may be NULL (systemd < 254) */
        size_t srk_size;
} Luks2Tpm2Token;

void luks2_tpm2_token_done(Luks2Tpm2Token *t);
/* JSON exactly as systemd 254 writes it: type, keyslots ["N"], tpm2-blob, tpm2-pcrs, tpm2-pcr-bank "sha256",
 * tpm2-primary-alg "ecc", tpm2-policy-hash (hex), tpm2-pin false, tpm2_srk (when known). */
int luks2_tpm2_token_to_json(const Luks2Tpm2Token *t, char **ret);
/* Parses and validates; refuses what we cannot honour (other banks, RSA parent, PIN, signed or pcrlock
 * policies, sharded blobs) with -EBADMSG and a reason in *ret_reason (static string, may be NULL). */
int luks2_tpm2_token_from_json(const char *json, Luks2Tpm2Token *ret, const char **ret_reason);

/* ---- the eve-vault token ---- */

typedef enum EscrowState {
        ESCROW_NONE,      /* no escrow blob made yet */
        ESCROW_PENDING,   /* blob made, controller has not confirmed it */
        ESCROW_CONFIRMED, /* controller confirmed storing it */
        _ESCROW_STATE_MAX,
        _ESCROW_STATE_INVALID = -EINVAL,
} EscrowState;

typedef enum RotationStep {
        ROTATION_NONE,       /* no rotation in progress */
        ROTATION_REQUESTED,  /* a key change (new_key_source, new_pcr_*) waits for key material it needs (the
                              * controller's share, or the current key); nothing written but this journal */
        ROTATION_STARTED,    /* new secret chosen; nothing written yet besides this journal */
        ROTATION_SLOT_ADDED, /* new keyslot exists (new_keyslot) */
        ROTATION_SEALED,     /* TPM token for the new keyslot written (new_pcr_values) */
        ROTATION_ESCROWED,   /* escrow blob of the new secret made; old keyslot may go */
        ROTATION_UNCONFIRMED, /* new key current; the old keyslot (old_keyslot) stays until the controller
                               * confirms it stores the new escrow blob (at most two keys) */
        _ROTATION_STEP_MAX,
        _ROTATION_STEP_INVALID = -EINVAL,
} RotationStep;

typedef enum KeySource {
        KEY_SOURCE_TPM,
        KEY_SOURCE_TPM_CONTROLLER,
        KEY_SOURCE_CONTROLLER,
        _KEY_SOURCE_MAX,
        _KEY_SOURCE_INVALID = -EINVAL,
} KeySource;

const char *escrow_state_to_string(EscrowState s);
EscrowState escrow_state_from_string(const char *s);
const char *rotation_step_to_string(RotationStep s);
RotationStep rotation_step_from_string(const char *s);
const char *key_source_to_string(KeySource s);
KeySource key_source_from_string(const char *s);

typedef struct EveVaultToken {
        char name[LUKS2_VAULT_NAME_MAX + 1];
        char uuid[LUKS2_UUID_STRING_SIZE]; /* the vault's UUID (the LUKS UUID) */
        uint64_t generation;               /* key generation, ≥ 1, +1 per rotation */
        KeySource key_source;
        int keyslot;                       /* keyslot of the current key */
        uint32_t pcr_mask;                 /* sealing PCRs */
        char pcr_source[64];               /* "default" or "policy:<id>" */
        uint8_t pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]; /* at sealing time, rows of pcr_mask only */
        EscrowState escrow;
        bool has_filesystem; /* an ext4 file system was made inside (never mkfs again) */
        /* rotation journal */
        RotationStep rotation;
        int new_keyslot;      /* -1 until ROTATION_SLOT_ADDED */
        uint64_t new_generation;
        KeySource new_key_source; /* the key source after the rotation (= key_source: unchanged) */
        uint32_t new_pcr_mask;    /* sealing PCRs after it; 0: unchanged (journals of older workers) */
        char new_pcr_source[64];  /* "" with new_pcr_mask 0 */
        uint8_t new_pcr_values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]; /* rows of new_pcr_mask, from SEALED on */
        bool hold;       /* stop at UNCONFIRMED instead of removing the old keyslot */
        int old_keyslot; /* ROTATION_UNCONFIRMED: the previous key's keyslot, else -1 */
        /* The administrator's recovery key (docs/VAULTS.md "Recovery key"): its keyslot, never the secret.
         * Kept by every rotation and by the journal's crash recovery. */
        bool has_recovery;
        int recovery_keyslot; /* valid only with has_recovery */
} EveVaultToken;

/* Vault names in a token: 1–64 of [A-Za-z0-9_-], not starting with '-'. */
bool vault_name_is_valid(const char *name);
/* The names a node gives its vaults (CONTRACT.md; mapping, mount point and unit names derive from them), and
 * so the names evc accepts: [a-z0-9][a-z0-9-]{0,31}. */
#define VAULT_NODE_NAME_MAX 32U
bool vault_name_is_valid_on_node(const char *name);
int eve_vault_token_to_json(const EveVaultToken *t, char **ret);
int eve_vault_token_from_json(const char *json, EveVaultToken *ret, const char **ret_reason);
