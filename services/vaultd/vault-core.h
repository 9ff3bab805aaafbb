/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vault-core.h: what the vault worker does with a vault's LUKS2 image and the TPM: create (allocate, format,
 * seal, escrow), unlock (TPM → controller-released escrow blob / controller share → locked with the moved
 * PCRs), map and mount (mkfs.ext4 on the first activation), lock, rotate (journalled in the eve-vault token,
 * resumed or rolled back on the next open), confirm an escrow, erase. Only the worker links this: key
 * material never leaves it. Key sources and how a secret is made from its parts: vault-share.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "luks2-util.h"
#include "tpm2-util.h"

/* DESIGN.md: sealing PCRs by default. */
#define VAULT_DEFAULT_PCRS                                                                                    \
        ((UINT32_C(1) << 0) | (UINT32_C(1) << 1) | (UINT32_C(1) << 2) | (UINT32_C(1) << 3) |                  \
         (UINT32_C(1) << 4) | (UINT32_C(1) << 6) | (UINT32_C(1) << 7) | (UINT32_C(1) << 8) |                  \
         (UINT32_C(1) << 9) | (UINT32_C(1) << 10) | (UINT32_C(1) << 11) | (UINT32_C(1) << 12) |              \
         (UINT32_C(1) << 13) | (UINT32_C(1) << 14))

/* The token holding the TPM share of a tpm+controller vault: the JSON of a systemd-tpm2 token under another
 * type, so stock tools do not mistake the share for the keyslot's passphrase. */
#define VAULT_TOKEN_TPM_SHARE "eve-vault-share"

typedef enum UnlockMethod {
        UNLOCK_NONE,
        UNLOCK_TPM,            /* the TPM alone (key source tpm) */
        UNLOCK_TPM_CONTROLLER, /* the TPM's share and the controller's share (tpm+controller) */
        UNLOCK_CONTROLLER,     /* a key released by the controller: escrow rescue, or a controller vault */
        UNLOCK_RECOVERY,
        _UNLOCK_METHOD_MAX,
        _UNLOCK_METHOD_INVALID = -EINVAL,
} UnlockMethod;

const char *unlock_method_to_string(UnlockMethod m);

/* Why an operation did not do what was asked, as the bus error names it (org.eve.Vault.Error.<name>). */
#define VAULT_ERROR_BAD_IMAGE "BadImage"             /* not LUKS2, or its tokens are refused */
#define VAULT_ERROR_KEY_UNAVAILABLE "KeyUnavailable" /* TPM refused, nothing from the controller (yet) */
#define VAULT_ERROR_KEY_REJECTED "KeyRejected"       /* an escrow blob or share was refused */
#define VAULT_ERROR_NO_DM "DeviceMapperUnavailable"  /* key verified, but nothing can be mapped here */
#define VAULT_ERROR_INVALID_POLICY "InvalidPolicy"
#define VAULT_ERROR_BUSY "Busy"
#define VAULT_ERROR_EXISTS "VaultExists"
#define VAULT_ERROR_NO_TPM "NoTPM"
#define VAULT_ERROR_FAILED "Failed"

typedef struct VaultResult {
        EveVaultToken token;      /* the eve-vault token after the operation */
        UnlockMethod key_method;  /* how the key was obtained and proven (UNLOCK_NONE: not proven) */
        bool activated;           /* the dm-crypt mapping exists */
        bool mounted;             /* …and is mounted at the mount point */
        bool mount_delegated;     /* …and this process may not mount: systemd's mount unit does */
        bool made_filesystem;     /* mkfs.ext4 ran in this operation */
        bool requested;           /* rotate: recorded as requested, to run when its key material arrives */
        uint32_t moved_pcrs;      /* sealing PCRs whose value differs from sealing time */
        uint32_t keyslots;        /* active keyslots */
        RotationStep recovered;   /* journal step found on open (ROTATION_NONE: none) */
        bool rolled_forward;      /* …and whether it was completed (true) or undone (false) */
        uint8_t *escrow_blob;     /* a fresh escrow blob for the controller, when one was made */
        size_t escrow_blob_size;
        uint64_t escrow_generation; /* the key generation that blob belongs to */
        const char *error;          /* VAULT_ERROR_*, when the operation did not do what was asked */
        char *reason;             /* why the vault is not unlocked, or what failed */
        /* unlock with activate_async: the process mapping the vault, until joined, and the pipe its report
         * comes through (valid while activation_pid > 0) */
        pid_t activation_pid;
        int activation_fd;
} VaultResult;

/* Frees what r holds; an activation still running is joined first (vault_activation_join()). */
void vault_result_done(VaultResult *r);
/* Waits for the activation vault_unlock() left running (req->activate_async) and takes its outcome into r
 * (activated, mounted, error, reason). Returns its status (< 0: failed, r says why); 0 when none ran. */
int vault_activation_join(VaultResult *r);

/* Key material the controller released, as received (the worker reads it from a pipe, never argv). */
typedef struct VaultKeys {
        const void *escrow; /* AttestVolumeKeyData, V1 or legacy: the current key (or TPM share) escrowed */
        size_t escrow_size;
        const void *share; /* EveControllerShare (17752) of this vault */
        size_t share_size;
        const char *recovery; /* the recovery key, normalised (vault_recovery_key_normalize) */
} VaultKeys;

typedef void (*VaultProgressFunc)(const char *phase, uint64_t done, uint64_t total, void *userdata);

typedef struct VaultRequest {
        const char *map_name;    /* activate as /dev/mapper/<map_name>; NULL: check the key only */
        const char *mount_point; /* mount there after activating (mkfs.ext4 on the first activation) */
        VaultKeys keys;
        bool escrow_always; /* unlock: a fresh escrow blob whenever the key is in hand (vaultd keeps the
                             * set for STORE_KEYS, which replaces the controller's copies as a whole) */
        /* unlock: map (and mount) in a child process while this one goes on (the escrow wrap; a batch's next
         * vault): vault_unlock() returns with the mapping under way, vault_activation_join() waits for it.
         * Not for a first activation (mkfs). */
        bool activate_async;
        /* create, rotate */
        KeySource key_source;   /* rotate: _KEY_SOURCE_INVALID keeps the current one */
        uint32_t pcr_mask;      /* rotate: 0 keeps the current set */
        const char *pcr_source; /* "default" or "policy:<id>" */
        const char *uuid;       /* create: the vault's UUID (NULL: a random one) */
        bool hold;              /* rotate: keep the old keyslot until vault_confirm() */
        VaultProgressFunc progress;
        void *userdata;
} VaultRequest;

#define VAULT_REQUEST_INIT \
        { .key_source = _KEY_SOURCE_INVALID }

/* EVE's rules for a sealing PCR set (ValidatePolicyPcr): 1–15 PCRs, each 0–15, PCR 0 required, PCR 5 refused. */
int vault_pcr_policy_check(uint32_t mask, const char **ret_reason);

/* 1 (and the size) when image is a block device — a vault on a partition: its image path is a symlink to the
 * partition (docs/VAULTS.md "Partitions") —, 0 when it is a file or does not exist, <0 on error. */
int vault_image_block_device(const char *image, uint64_t *ret_size);

/* Each returns < 0 when the operation failed (ret->error and ret->reason say why, ret->token is what was
 * read), 0 when it ran; an unlock that ran may still leave the vault locked (ret->error/reason set,
 * key_method NONE) or the key verified but nothing mapped (VAULT_ERROR_NO_DM). */
int vault_create(
                Tpm2Context *c,
                const char *image,
                const char *name,
                uint64_t size,
                const VaultRequest *req,
                VaultResult *ret);
int vault_unlock(Tpm2Context *c, const char *image, const VaultRequest *req, VaultResult *ret);
/* New secret (for req->key_source, sealed to req->pcr_mask) → new keyslot → sealed → escrowed → old keyslot
 * removed (or kept until confirmed, req->hold); each step journalled. Needs the current key (TPM, or what
 * req->keys brings); when it or the controller's share for the new source is missing, the change is recorded
 * as requested (ret->requested) and runs at the next unlock that has it. */
int vault_rotate(Tpm2Context *c, const char *image, const VaultRequest *req, VaultResult *ret);
/* The controller stores the escrow of generation: ends a held rotation (removes the old keyslot) and marks
 * the escrow confirmed. -ESTALE when generation is not the current key's. Needs no TPM. */
int vault_confirm(const char *image, uint64_t generation, VaultResult *ret);
/* Unmounts and unmaps (no TPM, no key). */
int vault_lock(const char *image, const char *map_name, const char *mount_point, VaultResult *ret);
/* Locks, destroys every keyslot (the data can never be decrypted again) and removes the image. */
int vault_erase(const char *image, const char *map_name, const char *mount_point, VaultResult *ret);
/* Reads the tokens only (no TPM, no key); with map_name/mount_point also whether it is mapped and mounted.
 */
int vault_inspect(const char *image, const char *map_name, const char *mount_point, VaultResult *ret);

/* systemd's unit name of a mount point, as "systemd-escape --path --suffix=mount" makes it: the unit
 * eve-vaultd starts after mapping a vault and stops before locking it. */
char *vault_mount_unit_name(const char *path);

/* The recovery key (docs/VAULTS.md "Recovery key"): 32 random bytes as 64 lower-case hex digits in 8 groups
 * of 8 joined by '-' (71 characters). That text itself is the keyslot's passphrase, so stock `cryptsetup
 * open` takes it as typed. */
#define VAULT_RECOVERY_KEY_LEN 71U
/* A new one, in secret memory (eve_secret_free). */
int vault_recovery_key_new(char **ret);
/* What a person typed (any case, with or without the dashes, blanks ignored) as the passphrase, in secret
 * memory; -EINVAL when it is not 64 hex digits. */
int vault_recovery_key_normalize(const char *in, char **ret);
/* Adds a recovery keyslot for a new recovery key (*ret_key, secret memory), replacing an existing one. Needs
 * the current key (the TPM, or what req->keys brings). */
int vault_add_recovery(
                Tpm2Context *c,
                const char *image,
                const VaultRequest *req,
                char **ret_key,
                VaultResult *ret);

/* Test hook: when $EVE_VAULT_WORKER_CRASH_AT names step, the process kills itself (SIGKILL) right there. */
void vault_crash_point(const char *step);
