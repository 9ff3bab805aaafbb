/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdarg.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "log.h"
#include "memory-util.h"
#include "vault-core.h"
#include "vault-escrow.h"

static const char *const unlock_method_table[_UNLOCK_METHOD_MAX] = {
        [UNLOCK_NONE] = "none",
        [UNLOCK_TPM] = "tpm",
        [UNLOCK_CONTROLLER] = "controller",
        [UNLOCK_RECOVERY] = "recovery",
};

const char *unlock_method_to_string(UnlockMethod m) {
        return m >= 0 && m < _UNLOCK_METHOD_MAX ? unlock_method_table[m] : NULL;
}

void vault_result_done(VaultResult *r) {
        if (!r)
                return;
        r->escrow_blob = mfree(r->escrow_blob);
        r->reason = mfree(r->reason);
}

static int set_reason(VaultResult *res, int r, const char *fmt, ...) _printf_(3, 4);
static int set_reason(VaultResult *res, int r, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(res->reason);
        res->reason = s;
        log_debug("%s", s ?: "(out of memory)");
        return r;
}

void vault_crash_point(const char *step) {
        const char *at = getenv_nonempty("EVE_VAULT_WORKER_CRASH_AT");

        if (at && streq(at, step)) {
                log_notice("Crash injected at step %s.", step);
                (void) raise(SIGKILL);
        }
}

int vault_pcr_policy_check(uint32_t mask, const char **ret_reason) {
        const char *reason = NULL;

        if (mask & ~TPM2_PCRS_MASK)
                reason = "PCRs must be 0-23";
        else if (!(mask & 1))
                reason = "PCR 0 is required";
        else if (mask & (UINT32_C(1) << 5))
                reason = "PCR 5 (GPT, changes with partitioning) is refused";
        else if (__builtin_popcount(mask) > 15)
                reason = "at most 15 PCRs";
        if (ret_reason)
                *ret_reason = reason;
        return reason ? -EINVAL : 0;
}

static int load_eve(struct crypt_device *cd, EveVaultToken *ret, int *ret_id, VaultResult *res) {
        _cleanup_free_ char *json = NULL;
        const char *reason = NULL;
        int r;

        r = luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, ret_id, &json);
        if (r < 0)
                return set_reason(res, r, "no eve-vault token: not a vault made by eve-vaultd");
        r = eve_vault_token_from_json(json, ret, &reason);
        if (r < 0)
                return set_reason(res, r, "eve-vault token refused: %s", reason ?: "invalid");
        return 0;
}

/* Opens image as LUKS2 and reads its eve-vault token into ret->token; the reason for a refusal goes into ret. */
static int open_vault(const char *image, struct crypt_device **ret_cd, int *ret_eve_id, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = luks2_open(image, &cd);
        if (r < 0)
                return set_reason(ret, r, "cannot open %s as LUKS2: %s", image, strerror(-r));
        r = load_eve(cd, &ret->token, ret_eve_id, ret);
        if (r < 0)
                return r;
        *ret_cd = TAKE_PTR(cd);
        return 0;
}

static int save_eve(struct crypt_device *cd, int id, const EveVaultToken *t) {
        _cleanup_free_ char *json = NULL;
        int r;

        r = eve_vault_token_to_json(t, &json);
        if (r < 0)
                return r;
        r = luks2_token_write(cd, id, json, -1);
        return r < 0 ? r : 0;
}

/* Seals secret to today's values of pcr_mask and writes the systemd-tpm2 token of keyslot (replacing an
 * existing one), recording the PCR values in t. */
static int seal_to_slot(Tpm2Context *c, struct crypt_device *cd, int keyslot, const uint8_t *secret,
                uint32_t pcr_mask, EveVaultToken *t) {

        _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = { .keyslot = keyslot, .pcr_mask = pcr_mask };
        _cleanup_free_ char *json = NULL;
        int r, id = -1;

        r = tpm2_pcr_read(c, pcr_mask, t->pcr_values);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (!(pcr_mask & (UINT32_C(1) << i)))
                        memset(t->pcr_values[i], 0, TPM2_SHA256_SIZE);
        r = tpm2_seal(c, pcr_mask, secret, TPM2_SECRET_SIZE, &tok.blob, &tok.blob_size, tok.policy_hash);
        if (r < 0)
                return r;
        r = tpm2_srk_serialize(c, true, &tok.srk, &tok.srk_size);
        if (r < 0)
                return r;
        r = luks2_tpm2_token_to_json(&tok, &json);
        if (r < 0)
                return r;
        (void) luks2_token_find(cd, LUKS2_TOKEN_TPM2, keyslot, &id, NULL);
        r = luks2_token_write(cd, id, json, keyslot);
        return r < 0 ? r : 0;
}

/* -EPERM: the PCRs moved; -EBADMSG: the token is unusable (res->reason). */
static int tpm_unseal_slot(Tpm2Context *c, struct crypt_device *cd, int keyslot, uint8_t **ret, VaultResult *res) {
        _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = {};
        _cleanup_secret_ uint8_t *secret = NULL;
        _cleanup_free_ char *json = NULL;
        const char *reason = NULL;
        size_t n;
        int r;

        r = luks2_token_find(cd, LUKS2_TOKEN_TPM2, keyslot, NULL, &json);
        if (r < 0)
                return set_reason(res, r, "no systemd-tpm2 token for keyslot %d", keyslot);
        r = luks2_tpm2_token_from_json(json, &tok, &reason);
        if (r < 0)
                return set_reason(res, r, "systemd-tpm2 token refused: %s", reason);
        if (tok.keyslot != keyslot)
                return set_reason(res, -EBADMSG, "systemd-tpm2 token names keyslot %d, not %d", tok.keyslot, keyslot);
        r = tpm2_unseal(c, tok.pcr_mask, tok.policy_hash, tok.blob, tok.blob_size, &secret, &n);
        if (r < 0)
                return set_reason(res, r, "TPM unseal failed: %s", tpm2_context_last_error(c));
        if (n != TPM2_SECRET_SIZE)
                return set_reason(res, -EBADMSG, "sealed secret has %zu bytes, not 32", n);
        *ret = TAKE_PTR(secret);
        return 0;
}

static uint32_t moved_pcrs(Tpm2Context *c, const EveVaultToken *t) {
        uint8_t now[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {};
        uint32_t m = 0;

        if (tpm2_pcr_read(c, t->pcr_mask, now) < 0)
                return 0;
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if ((t->pcr_mask & (UINT32_C(1) << i)) && memcmp(now[i], t->pcr_values[i], TPM2_SHA256_SIZE) != 0)
                        m |= UINT32_C(1) << i;
        return m;
}

/* A rotation journal left by a crash: before the new key was escrowed, undo (drop every keyslot but the
 * current one); after, finish (drop the old keyslot, make the new one current). Needs no key. */
static int recover_journal(struct crypt_device *cd, int eve_id, EveVaultToken *t, VaultResult *res) {
        uint32_t active;
        int r;

        res->recovered = t->rotation;
        if (t->rotation == ROTATION_NONE)
                return 0;
        active = luks2_keyslots_active(cd);
        if (t->rotation == ROTATION_ESCROWED) {
                if (active & (UINT32_C(1) << t->keyslot)) {
                        r = luks2_remove_keyslot(cd, t->keyslot);
                        if (r < 0)
                                return set_reason(res, r, "rotation: removing the old keyslot failed");
                }
                t->keyslot = t->new_keyslot;
                t->generation = t->new_generation;
                t->escrow = ESCROW_PENDING;
                res->rolled_forward = true;
        } else {
                if (!(active & (UINT32_C(1) << t->keyslot)))
                        return set_reason(res, -EBADMSG, "rotation journal: the current keyslot %d is gone", t->keyslot);
                for (int k = 0; k < LUKS2_KEYSLOTS_MAX; k++)
                        if (k != t->keyslot && (active & (UINT32_C(1) << k))) {
                                r = luks2_remove_keyslot(cd, k);
                                if (r < 0)
                                        return set_reason(res, r, "rotation: removing keyslot %d failed", k);
                        }
                res->rolled_forward = false;
        }
        t->rotation = ROTATION_NONE;
        t->new_keyslot = -1;
        t->new_generation = 0;
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(res, r, "rotation: writing the eve-vault token failed");
        log_info("Vault %s: interrupted rotation %s.", t->name, res->rolled_forward ? "completed" : "rolled back");
        return 0;
}

static int random_secret(uint8_t **ret) {
        _cleanup_secret_ uint8_t *s = eve_secret_alloc(TPM2_SECRET_SIZE);

        if (!s)
                return -ENOMEM;
        if (getrandom(s, TPM2_SECRET_SIZE, 0) != (ssize_t) TPM2_SECRET_SIZE)
                return -EIO;
        *ret = TAKE_PTR(s);
        return 0;
}

int vault_create(Tpm2Context *c, const char *image, const char *name, uint64_t size, uint32_t pcr_mask,
                const char *pcr_source, VaultResult *ret) {

        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secret_ uint8_t *secret = NULL;
        EveVaultToken *t = &ret->token;
        const char *reason;
        int r, slot;

        if (!vault_name_is_valid(name))
                return set_reason(ret, -EINVAL, "invalid vault name");
        if (vault_pcr_policy_check(pcr_mask, &reason) < 0)
                return set_reason(ret, -EINVAL, "invalid sealing PCRs: %s", reason);
        if (size < LUKS2_IMAGE_SIZE_MIN)
                return set_reason(ret, -ERANGE, "size below 32 MiB");
        if (access(image, F_OK) == 0)
                return set_reason(ret, -EEXIST, "%s exists already", image);

        r = random_secret(&secret);
        if (r < 0)
                return set_reason(ret, r, "no random secret");
        *t = (EveVaultToken) {
                .generation = 1,
                .key_source = KEY_SOURCE_TPM,
                .pcr_mask = pcr_mask,
                .new_keyslot = -1,
        };
        strcpy(t->name, name);
        (void) snprintf(t->pcr_source, sizeof(t->pcr_source), "%s", pcr_source ?: "default");

        r = luks2_format(image, size, secret, TPM2_SECRET_SIZE, &cd, &slot, t->uuid);
        if (r < 0) {
                (void) unlink(image);
                return set_reason(ret, r, "formatting %s as LUKS2 failed", image);
        }
        t->keyslot = slot;
        r = seal_to_slot(c, cd, slot, secret, pcr_mask, t);
        if (r < 0) {
                (void) unlink(image);
                return set_reason(ret, r, "sealing to the TPM failed: %s", tpm2_context_last_error(c));
        }
        r = escrow_wrap(c, secret, &ret->escrow_blob, &ret->escrow_blob_size);
        if (r < 0)
                /* The TPM alone still opens the vault; escrow is for rescue. Say so and go on. */
                (void) set_reason(ret, 0, "no escrow blob (%s): the controller cannot rescue this vault yet",
                                  tpm2_context_last_error(c));
        t->escrow = r < 0 ? ESCROW_NONE : ESCROW_PENDING;
        r = save_eve(cd, -1, t);
        if (r < 0) {
                (void) unlink(image);
                return set_reason(ret, r, "writing the eve-vault token failed");
        }
        ret->keyslots = luks2_keyslots_active(cd);
        ret->key_method = UNLOCK_TPM;
        /* The ext4 file system needs the mapping: it is made at the first activation (mkfs on an empty
         * mapping), so a host without device-mapper can still create vaults. */
        return 0;
}

static int activate(struct crypt_device *cd, const char *map_name, int slot, const uint8_t *secret,
                VaultResult *ret) {
        int r;

        if (!map_name)
                return 0;
        r = luks2_activate(cd, map_name, slot, secret, TPM2_SECRET_SIZE);
        if (r == -EOPNOTSUPP)
                return set_reason(ret, 0, "device-mapper unavailable: key verified (%s), volume not mapped",
                                  unlock_method_to_string(ret->key_method));
        if (r < 0 && r != -EEXIST)
                return set_reason(ret, 0, "activating /dev/mapper/%s failed: %s", map_name, strerror(-r));
        ret->activated = true;
        return 0;
}

int vault_unlock(Tpm2Context *c, const char *image, const char *map_name, const void *escrow, size_t escrow_size,
                VaultResult *ret) {

        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secret_ uint8_t *secret = NULL;
        EveVaultToken *t = &ret->token;
        int r, eve_id, slot = -1;

        r = open_vault(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        r = recover_journal(cd, eve_id, t, ret);
        if (r < 0)
                return r;

        /* 1. The TPM, under the PCR policy. */
        r = tpm_unseal_slot(c, cd, t->keyslot, &secret, ret);
        if (r >= 0) {
                slot = luks2_check_key(cd, t->keyslot, secret, TPM2_SECRET_SIZE);
                if (slot < 0) {
                        (void) set_reason(ret, slot, "the TPM-sealed key does not open keyslot %d", t->keyslot);
                        secret = eve_secret_free(secret);
                } else
                        ret->key_method = UNLOCK_TPM;
        } else if (r == -EPERM)
                ret->moved_pcrs = moved_pcrs(c, t);

        /* 2. A key released by the controller: unwrap in the TPM, check, re-seal to today's PCRs. */
        if (!secret && escrow) {
                const char *reason = NULL;

                r = escrow_unwrap(c, escrow, escrow_size, &secret, &reason);
                if (r < 0)
                        return set_reason(ret, 0, "escrow blob refused: %s", reason ?: strerror(-r));
                slot = luks2_check_key(cd, t->keyslot, secret, TPM2_SECRET_SIZE);
                if (slot < 0) {
                        secret = eve_secret_free(secret);
                        return set_reason(ret, 0, "the escrowed key does not open keyslot %d (an older key?)",
                                          t->keyslot);
                }
                ret->key_method = UNLOCK_CONTROLLER;
                r = seal_to_slot(c, cd, slot, secret, t->pcr_mask, t);
                if (r < 0)
                        (void) set_reason(ret, 0, "re-sealing to today's PCRs failed: %s", tpm2_context_last_error(c));
                else
                        ret->moved_pcrs = 0;
                t->escrow = ESCROW_NONE; /* a fresh blob is made below */
        }

        if (!secret) {
                ret->keyslots = luks2_keyslots_active(cd);
                if (!ret->reason || ret->moved_pcrs) {
                        _cleanup_free_ char *m = tpm2_pcr_mask_to_string(ret->moved_pcrs);
                        return set_reason(ret, 0, "locked: the TPM refused the key (PCRs %s changed since sealing); "
                                          "waiting for the controller", m ?: "?");
                }
                return 0;
        }

        /* Escrow again whenever the controller may not hold the current key. */
        if (t->escrow != ESCROW_CONFIRMED) {
                r = escrow_wrap(c, secret, &ret->escrow_blob, &ret->escrow_blob_size);
                if (r >= 0)
                        t->escrow = ESCROW_PENDING;
        }
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(ret, r, "writing the eve-vault token failed");
        ret->keyslots = luks2_keyslots_active(cd);
        ret->reason = mfree(ret->reason);
        return activate(cd, map_name, slot, secret, ret);
}

int vault_rotate(Tpm2Context *c, const char *image, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secret_ uint8_t *old = NULL, *new = NULL;
        EveVaultToken *t = &ret->token;
        int r, eve_id, slot;

        r = open_vault(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        r = recover_journal(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        r = tpm_unseal_slot(c, cd, t->keyslot, &old, ret);
        if (r < 0)
                return set_reason(ret, r, "rotation needs the current key from the TPM: %s", ret->reason ?: "");
        r = random_secret(&new);
        if (r < 0)
                return set_reason(ret, r, "no random secret");

        t->rotation = ROTATION_STARTED;
        t->new_generation = t->generation + 1;
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(ret, r, "rotation: journal write failed");
        vault_crash_point("started");

        slot = luks2_add_keyslot(cd, old, TPM2_SECRET_SIZE, new, TPM2_SECRET_SIZE);
        if (slot < 0)
                return set_reason(ret, slot, "rotation: adding a keyslot failed");
        vault_crash_point("slot-add");
        t->rotation = ROTATION_SLOT_ADDED;
        t->new_keyslot = slot;
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(ret, r, "rotation: journal write failed");
        vault_crash_point("slot-added");

        {
                /* seal_to_slot records PCR values in the token; they stay the same set and values. */
                r = seal_to_slot(c, cd, slot, new, t->pcr_mask, t);
                if (r < 0)
                        return set_reason(ret, r, "rotation: sealing the new key failed: %s",
                                          tpm2_context_last_error(c));
        }
        vault_crash_point("seal");
        t->rotation = ROTATION_SEALED;
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(ret, r, "rotation: journal write failed");
        vault_crash_point("sealed");

        r = escrow_wrap(c, new, &ret->escrow_blob, &ret->escrow_blob_size);
        if (r < 0)
                return set_reason(ret, r, "rotation: escrow of the new key failed: %s", tpm2_context_last_error(c));
        t->rotation = ROTATION_ESCROWED;
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(ret, r, "rotation: journal write failed");
        vault_crash_point("escrowed");

        r = luks2_remove_keyslot(cd, t->keyslot);
        if (r < 0)
                return set_reason(ret, r, "rotation: removing the old keyslot failed");
        vault_crash_point("removed");
        t->keyslot = slot;
        t->generation = t->new_generation;
        t->escrow = ESCROW_PENDING;
        t->rotation = ROTATION_NONE;
        t->new_keyslot = -1;
        t->new_generation = 0;
        r = save_eve(cd, eve_id, t);
        if (r < 0)
                return set_reason(ret, r, "rotation: journal write failed");
        ret->key_method = UNLOCK_TPM;
        ret->keyslots = luks2_keyslots_active(cd);
        return 0;
}

int vault_inspect(const char *image, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r, eve_id;

        r = open_vault(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        ret->keyslots = luks2_keyslots_active(cd);
        return 0;
}
