/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vault-core.h: what the vault worker does with a vault's LUKS2 image and the TPM: create (format, seal,
 * escrow), unlock (TPM → controller-released escrow blob → locked with the moved PCRs), rotate (journalled in
 * the eve-vault token, resumed or rolled back on the next open). Only the worker links this: key material
 * never leaves it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "luks2-util.h"
#include "tpm2-util.h"

/* DESIGN.md: sealing PCRs by default. */
#define VAULT_DEFAULT_PCRS                                                                                    \
        ((UINT32_C(1) << 0) | (UINT32_C(1) << 1) | (UINT32_C(1) << 2) | (UINT32_C(1) << 3) |                  \
         (UINT32_C(1) << 4) | (UINT32_C(1) << 6) | (UINT32_C(1) << 7) | (UINT32_C(1) << 8) |                  \
         (UINT32_C(1) << 9) | (UINT32_C(1) << 10) | (UINT32_C(1) << 11) | (UINT32_C(1) << 12) |              \
         (UINT32_C(1) << 13) | (UINT32_C(1) << 14))

typedef enum UnlockMethod {
        UNLOCK_NONE,
        UNLOCK_TPM,
        UNLOCK_CONTROLLER,
        UNLOCK_RECOVERY,
        _UNLOCK_METHOD_MAX,
        _UNLOCK_METHOD_INVALID = -EINVAL,
} UnlockMethod;

const char *unlock_method_to_string(UnlockMethod m);

typedef struct VaultResult {
        EveVaultToken token;      /* the eve-vault token after the operation */
        UnlockMethod key_method;  /* how the key was obtained and proven (UNLOCK_NONE: not proven) */
        bool activated;           /* the dm-crypt mapping exists */
        uint32_t moved_pcrs;      /* sealing PCRs whose value differs from sealing time */
        uint32_t keyslots;        /* active keyslots */
        RotationStep recovered;   /* journal step found on open (ROTATION_NONE: none) */
        bool rolled_forward;      /* …and whether it was completed (true) or undone (false) */
        uint8_t *escrow_blob;     /* a fresh escrow blob for the controller, when one was made */
        size_t escrow_blob_size;
        char *reason;             /* why the vault is not unlocked, or what failed */
} VaultResult;

void vault_result_done(VaultResult *r);

/* EVE's rules for a sealing PCR set: 1–15 PCRs, PCR 0 required, PCR 5 refused, PCRs 0–23. */
int vault_pcr_policy_check(uint32_t mask, const char **ret_reason);

int vault_create(Tpm2Context *c, const char *image, const char *name, uint64_t size, uint32_t pcr_mask,
                const char *pcr_source, VaultResult *ret);
/* map_name: the dm-crypt name to activate as; NULL checks the key only. escrow: a blob released by the
 * controller, tried when the TPM refuses. Returns 0 when the operation ran (see ret->key_method/activated),
 * < 0 when the image or its tokens are unusable (ret->reason says why). */
int vault_unlock(Tpm2Context *c, const char *image, const char *map_name, const void *escrow, size_t escrow_size,
                VaultResult *ret);
/* New secret → new keyslot → sealed → escrowed → old keyslot removed; each step journalled. Needs the current
 * key from the TPM. */
int vault_rotate(Tpm2Context *c, const char *image, VaultResult *ret);
/* Reads the tokens only (no TPM, no key). */
int vault_inspect(const char *image, VaultResult *ret);

/* Test hook: when $EVE_VAULT_WORKER_CRASH_AT names step, the process kills itself (SIGKILL) right there. */
void vault_crash_point(const char *step);
