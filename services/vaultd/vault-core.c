/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vault-core.h"

#include <blkid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "log.h"
#include "memory-util.h"
#include "paths.h"
#include "vault-escrow.h"
#include "vault-share.h"

static const char *const unlock_method_table[_UNLOCK_METHOD_MAX] = {
        [UNLOCK_NONE] = "none",
        [UNLOCK_TPM] = "tpm",
        [UNLOCK_TPM_CONTROLLER] = "tpm+controller",
        [UNLOCK_CONTROLLER] = "controller",
        [UNLOCK_RECOVERY] = "recovery",
};

const char *unlock_method_to_string(UnlockMethod m) {
        return m >= 0 && m < _UNLOCK_METHOD_MAX ? unlock_method_table[m] : NULL;
}

void vault_result_done(VaultResult *r) {
        if (!r)
                return;
        (void) vault_activation_join(r);
        r->escrow_blob = mfree(r->escrow_blob);
        r->reason = mfree(r->reason);
}

/* Records why (error: a VAULT_ERROR_*, may be NULL to keep the current one) and returns r. */
static int set_reason(VaultResult *res, int r, const char *error, const char *fmt, ...) _printf_(4, 5);
static int set_reason(VaultResult *res, int r, const char *error, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(res->reason);
        res->reason = s;
        if (error)
                res->error = error;
        log_debug("%s", s ?: "(out of memory)");
        return r;
}

static void clear_reason(VaultResult *res) {
        res->reason = mfree(res->reason);
        res->error = NULL;
}

void vault_crash_point(const char *step) {
        const char *at = getenv_nonempty("EVE_VAULT_WORKER_CRASH_AT");

        if (at && streq(at, step)) {
                log_notice("Crash injected at step %s.", step);
                (void) raise(SIGKILL);
        }
}

static void progress(const VaultRequest *req, const char *phase, uint64_t done, uint64_t total) {
        if (req && req->progress)
                req->progress(phase, done, total, req->userdata);
}

int vault_pcr_policy_check(uint32_t mask, const char **ret_reason) {
        const char *reason = NULL;

        if (mask & ~UINT32_C(0xffff))
                reason = "PCRs must be 0-15 (EVE's policy range: the PCRs a quote covers)";
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

/* ---- the eve-vault token ---- */

static int load_eve(struct crypt_device *cd, EveVaultToken *ret, int *ret_id, VaultResult *res) {
        _cleanup_free_ char *json = NULL;
        const char *reason = NULL;
        int r;

        r = luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, ret_id, &json);
        if (r < 0)
                return set_reason(
                                res,
                                r,
                                VAULT_ERROR_BAD_IMAGE,
                                "no eve-vault token: not a vault made by eve-vaultd");
        r = eve_vault_token_from_json(json, ret, &reason);
        if (r < 0)
                return set_reason(
                                res,
                                r,
                                VAULT_ERROR_BAD_IMAGE,
                                "eve-vault token refused: %s",
                                reason ?: "invalid");
        return 0;
}

/* Opens image as LUKS2 and reads its eve-vault token into ret->token; the reason for a refusal goes into ret. */
static int open_vault(const char *image, struct crypt_device **ret_cd, int *ret_eve_id, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = luks2_open(image, &cd);
        if (r < 0)
                return set_reason(
                                ret,
                                r,
                                VAULT_ERROR_BAD_IMAGE,
                                "cannot open %s as LUKS2: %s",
                                image,
                                strerror(-r));
        r = load_eve(cd, &ret->token, ret_eve_id, ret);
        if (r < 0)
                return r;
        *ret_cd = TAKE_PTR(cd);
        return 0;
}

/* Writes the token when it differs from what the header holds (a LUKS2 header write is two metadata copies
 * and a sync: not for every unlock). */
static int save_eve(struct crypt_device *cd, int id, const EveVaultToken *t) {
        _cleanup_free_ char *json = NULL, *old = NULL;
        int r;

        r = eve_vault_token_to_json(t, &json);
        if (r < 0)
                return r;
        if (id >= 0 && luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, NULL, &old) >= 0 && streq(old, json))
                return 0;
        r = luks2_token_write(cd, id, json, -1);
        return r < 0 ? r : 0;
}

static int save_or_fail(struct crypt_device *cd, int id, const EveVaultToken *t, VaultResult *res) {
        int r = save_eve(cd, id, t);
        if (r < 0)
                return set_reason(
                                res,
                                r,
                                VAULT_ERROR_FAILED,
                                "writing the eve-vault token failed: %s",
                                strerror(-r));
        return 0;
}

/* ---- TPM tokens: systemd-tpm2 (key source tpm) and eve-vault-share (tpm+controller) ---- */

static const char *tpm_token_type(KeySource s) {
        return s == KEY_SOURCE_TPM_CONTROLLER ? VAULT_TOKEN_TPM_SHARE : LUKS2_TOKEN_TPM2;
}

/* The JSON of a systemd-tpm2 token, under type. */
static int retype(const char *json, const char *type, char **ret) {
        json_object *o = json_tokener_parse(json), *v;
        const char *s;
        int r = 0;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "type", &v) ||
            !json_object_is_type(v, json_type_string))
                r = -EBADMSG;
        else if (json_object_object_add(o, "type", json_object_new_string(type)) < 0)
                r = -ENOMEM;
        else if (!(s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) || !(*ret = strdup(s)))
                r = -ENOMEM;
        json_object_put(o);
        return r;
}

/* Seals part to today's values of pcr_mask and writes the TPM token of keyslot for source (replacing an
 * existing one), recording the PCR values in values. */
static int
                seal_to_slot(Tpm2Context *c,
                             struct crypt_device *cd,
                             int keyslot,
                             KeySource source,
                             const uint8_t *part,
                             uint32_t pcr_mask,
                             uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]) {

        _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = { .keyslot = keyslot, .pcr_mask = pcr_mask };
        _cleanup_free_ char *json = NULL, *typed = NULL;
        int r, id = -1;

        r = tpm2_pcr_read(c, pcr_mask, values);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (!(pcr_mask & (UINT32_C(1) << i)))
                        memset(values[i], 0, TPM2_SHA256_SIZE);
        r = tpm2_seal(c, pcr_mask, part, TPM2_SECRET_SIZE, &tok.blob, &tok.blob_size, tok.policy_hash);
        if (r < 0)
                return r;
        r = tpm2_srk_serialize(c, true, &tok.srk, &tok.srk_size);
        if (r < 0)
                return r;
        r = luks2_tpm2_token_to_json(&tok, &json);
        if (r < 0)
                return r;
        if (!streq(tpm_token_type(source), LUKS2_TOKEN_TPM2)) {
                r = retype(json, tpm_token_type(source), &typed);
                if (r < 0)
                        return r;
        }
        (void) luks2_token_find(cd, tpm_token_type(source), keyslot, &id, NULL);
        r = luks2_token_write(cd, id, typed ?: json, keyslot);
        return r < 0 ? r : 0;
}

/* -EPERM: the PCRs moved; -EBADMSG: the token is unusable (res->reason). */
static int
                tpm_unseal_slot(Tpm2Context *c,
                                struct crypt_device *cd,
                                int keyslot,
                                KeySource source,
                                uint8_t **ret,
                                VaultResult *res) {

        _cleanup_(luks2_tpm2_token_done) Luks2Tpm2Token tok = {};
        _cleanup_secret_ uint8_t *secret = NULL;
        _cleanup_free_ char *json = NULL, *typed = NULL;
        const char *type = tpm_token_type(source), *reason = NULL;
        size_t n;
        int r;

        r = luks2_token_find(cd, type, keyslot, NULL, &json);
        if (r < 0)
                return set_reason(
                                res, r, VAULT_ERROR_BAD_IMAGE, "no %s token for keyslot %d", type, keyslot);
        if (!streq(type, LUKS2_TOKEN_TPM2)) {
                r = retype(json, LUKS2_TOKEN_TPM2, &typed);
                if (r < 0)
                        return set_reason(
                                        res, -EBADMSG, VAULT_ERROR_BAD_IMAGE, "%s token is not JSON", type);
        }
        r = luks2_tpm2_token_from_json(typed ?: json, &tok, &reason);
        if (r < 0)
                return set_reason(res, r, VAULT_ERROR_BAD_IMAGE, "%s token refused: %s", type, reason);
        if (tok.keyslot != keyslot)
                return set_reason(
                                res,
                                -EBADMSG,
                                VAULT_ERROR_BAD_IMAGE,
                                "%s token names keyslot %d, not %d",
                                type,
                                tok.keyslot,
                                keyslot);
        r = tpm2_unseal(c, tok.pcr_mask, tok.policy_hash, tok.blob, tok.blob_size, &secret, &n);
        if (r < 0)
                return set_reason(
                                res,
                                r,
                                VAULT_ERROR_KEY_UNAVAILABLE,
                                "TPM unseal failed: %s",
                                tpm2_context_last_error(c));
        if (n != TPM2_SECRET_SIZE)
                return set_reason(
                                res,
                                -EBADMSG,
                                VAULT_ERROR_BAD_IMAGE,
                                "sealed secret has %zu bytes, not 32",
                                n);
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

static int random_secret(uint8_t **ret) {
        _cleanup_secret_ uint8_t *s = eve_secret_alloc(TPM2_SECRET_SIZE);

        if (!s)
                return -ENOMEM;
        if (getrandom(s, TPM2_SECRET_SIZE, 0) != (ssize_t) TPM2_SECRET_SIZE)
                return -EIO;
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- the rotation journal ---- */

/* The new key becomes the current one (the rotation's targets, from the journal). */
static void journal_promote(EveVaultToken *t) {
        t->keyslot = t->new_keyslot;
        t->generation = t->new_generation;
        t->key_source = t->new_key_source;
        if (t->new_pcr_mask != 0) {
                t->pcr_mask = t->new_pcr_mask;
                memcpy(t->pcr_values, t->new_pcr_values, sizeof(t->pcr_values));
                strcpy(t->pcr_source, t->new_pcr_source);
        }
        t->escrow = key_source_needs_tpm(t->key_source) ? ESCROW_PENDING : ESCROW_NONE;
}

static void journal_clear(EveVaultToken *t, RotationStep step) {
        t->rotation = step;
        t->new_keyslot = -1;
        t->hold = false;
        t->old_keyslot = -1;
        memset(t->new_pcr_values, 0, sizeof(t->new_pcr_values));
        if (step == ROTATION_NONE) {
                t->new_generation = 0;
                t->new_key_source = t->key_source;
                t->new_pcr_mask = 0;
                t->new_pcr_source[0] = '\0';
        }
}

/* Whether a journal asks for more than a new secret (a new key source or PCR set): such a request is kept
 * when a rotation is undone, so that it runs again once it can. */
static bool journal_changes_policy(const EveVaultToken *t) {
        return t->new_key_source != t->key_source ||
                        (t->new_pcr_mask != 0 && t->new_pcr_mask != t->pcr_mask) ||
                        (t->new_pcr_mask != 0 && !streq(t->new_pcr_source, t->pcr_source));
}

/* Ends an unconfirmed rotation: the previous key's keyslot goes, the journal is cleared. */
static int drop_unconfirmed_old(struct crypt_device *cd, EveVaultToken *t, VaultResult *res) {
        int r;

        if (luks2_keyslots_active(cd) & (UINT32_C(1) << t->old_keyslot)) {
                r = luks2_remove_keyslot(cd, t->old_keyslot);
                if (r < 0)
                        return set_reason(
                                        res,
                                        r,
                                        VAULT_ERROR_FAILED,
                                        "removing the old keyslot %d failed",
                                        t->old_keyslot);
        }
        vault_crash_point("confirm");
        journal_clear(t, ROTATION_NONE);
        return 0;
}

/* A rotation journal left by a crash: before the new key was escrowed, undo (drop every keyslot but the
 * current one); after, finish (drop the old keyslot, or keep it until confirmed when the rotation holds).
 * Needs no key. REQUESTED and UNCONFIRMED are resting states, not crashes. */
static int recover_journal(struct crypt_device *cd, int eve_id, EveVaultToken *t, VaultResult *res) {
        uint32_t active;
        int r;

        if (t->rotation == ROTATION_NONE || t->rotation == ROTATION_REQUESTED ||
            t->rotation == ROTATION_UNCONFIRMED)
                return 0;
        res->recovered = t->rotation;
        active = luks2_keyslots_active(cd);
        if (t->rotation == ROTATION_ESCROWED) {
                int old = t->keyslot;

                if (!(active & (UINT32_C(1) << t->new_keyslot)))
                        return set_reason(
                                        res,
                                        -EBADMSG,
                                        VAULT_ERROR_BAD_IMAGE,
                                        "rotation journal: the new keyslot %d is gone",
                                        t->new_keyslot);
                journal_promote(t);
                if (t->hold) {
                        journal_clear(t, ROTATION_UNCONFIRMED);
                        t->old_keyslot = old;
                } else {
                        if (active & (UINT32_C(1) << old)) {
                                r = luks2_remove_keyslot(cd, old);
                                if (r < 0)
                                        return set_reason(
                                                        res,
                                                        r,
                                                        VAULT_ERROR_FAILED,
                                                        "rotation: removing the old keyslot failed");
                        }
                        journal_clear(t, ROTATION_NONE);
                }
                res->rolled_forward = true;
        } else {
                if (!(active & (UINT32_C(1) << t->keyslot)))
                        return set_reason(
                                        res,
                                        -EBADMSG,
                                        VAULT_ERROR_BAD_IMAGE,
                                        "rotation journal: the current keyslot %d is gone",
                                        t->keyslot);
                for (int k = 0; k < LUKS2_KEYSLOTS_MAX; k++)
                        if (k != t->keyslot && !(t->has_recovery && k == t->recovery_keyslot) &&
                            (active & (UINT32_C(1) << k))) {
                                r = luks2_remove_keyslot(cd, k);
                                if (r < 0)
                                        return set_reason(
                                                        res,
                                                        r,
                                                        VAULT_ERROR_FAILED,
                                                        "rotation: removing keyslot %d failed",
                                                        k);
                        }
                journal_clear(t, journal_changes_policy(t) ? ROTATION_REQUESTED : ROTATION_NONE);
                res->rolled_forward = false;
        }
        r = save_or_fail(cd, eve_id, t, res);
        if (r < 0)
                return r;
        log_info("Vault %s: interrupted rotation %s.", t->name, res->rolled_forward ? "completed" : "rolled back");
        return 0;
}

/* open_vault(), then a journal a crash left resolved (recover_journal()): how every operation that needs the
 * key starts. */
static int open_recovered(
                const char *image, struct crypt_device **ret_cd, int *ret_eve_id, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = open_vault(image, &cd, ret_eve_id, ret);
        if (r < 0)
                return r;
        r = recover_journal(cd, *ret_eve_id, &ret->token, ret);
        if (r < 0)
                return r;
        *ret_cd = TAKE_PTR(cd);
        return 0;
}

/* ---- obtaining the current key ---- */

typedef struct KeyParts {
        uint8_t *secret;     /* the keyslot passphrase's secret */
        uint8_t *tpm_part;   /* what the TPM holds (tpm: = secret; tpm+controller: the TPM share) */
        uint8_t *ctrl_share; /* the controller's share, when one was given (even if not needed) */
        int keyslot;         /* the keyslot it opens */
        /* What the keyslot unlocked: activation uses it, no second keyslot KDF. */
        uint8_t *volume_key;
        size_t volume_key_size;
        bool from_escrow; /* tpm_part came from an escrow blob: re-seal */
        bool previous;    /* it is the previous key of an unconfirmed rotation */
} KeyParts;

static void key_parts_done(KeyParts *k) {
        k->secret = eve_secret_free(k->secret);
        k->tpm_part = eve_secret_free(k->tpm_part);
        k->ctrl_share = eve_secret_free(k->ctrl_share);
        k->volume_key = eve_secret_free(k->volume_key);
}

/* Opens the controller's share in keys, if any; it must be for this vault. */
static int
                open_share(Tpm2Context *c,
                           const EveVaultToken *t,
                           const VaultKeys *keys,
                           uint8_t **ret,
                           VaultResult *res) {
        const char *reason = NULL;
        VaultShare s;
        int r;

        if (!keys || !keys->share)
                return 0;
        r = vault_share_parse(keys->share, keys->share_size, &s, &reason);
        if (r < 0)
                return set_reason(res, r, VAULT_ERROR_KEY_REJECTED, "%s", reason);
        if (!streq(s.vault_uuid, t->uuid))
                return set_reason(
                                res,
                                -EBADMSG,
                                VAULT_ERROR_KEY_REJECTED,
                                "controller share is for vault %s, not %s",
                                s.vault_uuid,
                                t->uuid);
        r = vault_share_open(c, &s, ret, &reason);
        if (r < 0)
                return set_reason(res, r, VAULT_ERROR_KEY_REJECTED, "%s", reason ?: strerror(-r));
        return 1;
}

static const char *source_str(KeySource s) {
        return key_source_to_string(s) ?: "?";
}

/* Gets the current key (t->keyslot; in an unconfirmed rotation possibly the previous one through its escrow)
 * from the TPM and/or what the controller released. -ENOKEY with the reason when it is not (yet) there. */
static int
                obtain_key(Tpm2Context *c,
                           struct crypt_device *cd,
                           const EveVaultToken *t,
                           const VaultKeys *keys,
                           KeyParts *ret,
                           VaultResult *res) {

        bool want_tpm = key_source_needs_tpm(t->key_source),
             want_ctrl = key_source_needs_controller(t->key_source);
        bool tpm_refused = false;
        int r;

        r = open_share(c, t, keys, &ret->ctrl_share, res);
        if (r < 0)
                return r;

        if (want_tpm) {
                /* Whatever the TPM path's trouble (moved PCRs, another TPM, a token refused), the escrow
                 * path may still open the vault, and re-sealing then replaces the TPM token. */
                r = tpm_unseal_slot(c, cd, t->keyslot, t->key_source, &ret->tpm_part, res);
                if (r == -EPERM)
                        res->moved_pcrs = moved_pcrs(c, t);
                tpm_refused = r < 0;
        }
        if (want_tpm && !ret->tpm_part && keys && keys->escrow) {
                const char *reason = NULL;

                r = escrow_unwrap(c, keys->escrow, keys->escrow_size, &ret->tpm_part, &reason);
                if (r < 0)
                        return set_reason(
                                        res,
                                        r,
                                        VAULT_ERROR_KEY_REJECTED,
                                        "escrow blob refused: %s",
                                        reason ?: strerror(-r));
                ret->from_escrow = true;
        }
        if (want_tpm && !ret->tpm_part) {
                _cleanup_free_ char *m = tpm2_pcr_mask_to_string(res->moved_pcrs);
                if (res->moved_pcrs)
                        return set_reason(
                                        res,
                                        -ENOKEY,
                                        VAULT_ERROR_KEY_UNAVAILABLE,
                                        "locked: the TPM refused the key (PCRs %s changed since sealing); "
                                        "waiting for the controller",
                                        m ?: "?");
                return set_reason(
                                res,
                                -ENOKEY,
                                VAULT_ERROR_KEY_UNAVAILABLE,
                                "locked: %s%s",
                                tpm_refused ? "the TPM refused the key: " : "",
                                res->reason ?: "no key");
        }
        if (want_ctrl && !ret->ctrl_share)
                return set_reason(
                                res,
                                -ENOKEY,
                                VAULT_ERROR_KEY_UNAVAILABLE,
                                "locked: waiting for the controller's share (key source %s)",
                                source_str(t->key_source));

        r = vault_secret_derive(
                        t->key_source,
                        t->uuid,
                        t->generation,
                        want_tpm ? ret->tpm_part : NULL,
                        want_ctrl ? ret->ctrl_share : NULL,
                        &ret->secret);
        if (r < 0)
                return set_reason(res, r, VAULT_ERROR_FAILED, "deriving the vault secret failed");
        /* The key check yields the volume key: activation then runs no keyslot KDF again. */
        r = luks2_volume_key_get(
                        cd,
                        t->keyslot,
                        ret->secret,
                        TPM2_SECRET_SIZE,
                        &ret->volume_key,
                        &ret->volume_key_size);
        if (r >= 0) {
                ret->keyslot = r;
                return 0;
        }
        /* An escrow blob of the previous key, while a rotation waits for the controller's confirmation: the
         * controller never stored the new one. */
        if (ret->from_escrow && t->rotation == ROTATION_UNCONFIRMED) {
                ret->secret = eve_secret_free(ret->secret);
                r = vault_secret_derive(
                                t->key_source,
                                t->uuid,
                                t->generation - 1,
                                want_tpm ? ret->tpm_part : NULL,
                                want_ctrl ? ret->ctrl_share : NULL,
                                &ret->secret);
                if (r >= 0 &&
                    luks2_volume_key_get(
                                    cd,
                                    t->old_keyslot,
                                    ret->secret,
                                    TPM2_SECRET_SIZE,
                                    &ret->volume_key,
                                    &ret->volume_key_size) >= 0) {
                        ret->keyslot = t->old_keyslot;
                        ret->previous = true;
                        return 0;
                }
        }
        if (ret->from_escrow)
                return set_reason(
                                res,
                                -EKEYREJECTED,
                                VAULT_ERROR_KEY_REJECTED,
                                "the escrowed key does not open keyslot %d (an older key?)",
                                t->keyslot);
        if (ret->ctrl_share && want_ctrl)
                return set_reason(
                                res,
                                -EKEYREJECTED,
                                VAULT_ERROR_KEY_REJECTED,
                                "the key made with the controller's share does not open keyslot %d",
                                t->keyslot);
        return set_reason(
                        res,
                        -EKEYREJECTED,
                        VAULT_ERROR_BAD_IMAGE,
                        "the TPM-sealed key does not open keyslot %d",
                        t->keyslot);
}

/* ---- rotation ---- */

typedef struct RotationTarget {
        KeySource source;
        uint32_t pcr_mask;
        char pcr_source[64];
        bool hold;
} RotationTarget;

/* Runs a rotation with the current key in hand (k). ctrl_share: for a target that needs it. */
static int
                do_rotate(Tpm2Context *c,
                          struct crypt_device *cd,
                          int eve_id,
                          EveVaultToken *t,
                          const KeyParts *k,
                          const RotationTarget *target,
                          VaultResult *ret) {

        _cleanup_secret_ uint8_t *part = NULL, *secret = NULL;
        int r, slot, old = t->keyslot;

        if (key_source_needs_tpm(target->source)) {
                r = random_secret(&part);
                if (r < 0)
                        return set_reason(ret, r, VAULT_ERROR_FAILED, "no random secret");
        }
        r = vault_secret_derive(
                        target->source,
                        t->uuid,
                        t->generation + 1,
                        part,
                        key_source_needs_controller(target->source) ? k->ctrl_share : NULL,
                        &secret);
        if (r < 0)
                return set_reason(ret, r, VAULT_ERROR_FAILED, "deriving the new secret failed");

        t->rotation = ROTATION_STARTED;
        t->new_generation = t->generation + 1;
        t->new_key_source = target->source;
        t->new_pcr_mask = target->pcr_mask;
        strcpy(t->new_pcr_source, target->pcr_source);
        t->hold = target->hold && key_source_needs_tpm(target->source);
        t->new_keyslot = -1;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        vault_crash_point("started");

        /* Opened with the recovery key: no current secret, the volume key it unlocked adds the slot. */
        slot = k->secret ? luks2_add_keyslot(cd, k->secret, TPM2_SECRET_SIZE, secret, TPM2_SECRET_SIZE)
                         : luks2_add_keyslot_by_volume_key(
                                           cd, k->volume_key, k->volume_key_size, secret, TPM2_SECRET_SIZE);
        if (slot < 0)
                return set_reason(ret, slot, VAULT_ERROR_FAILED, "rotation: adding a keyslot failed");
        vault_crash_point("slot-add");
        t->rotation = ROTATION_SLOT_ADDED;
        t->new_keyslot = slot;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        vault_crash_point("slot-added");

        if (part) {
                r = seal_to_slot(c, cd, slot, target->source, part, target->pcr_mask, t->new_pcr_values);
                if (r < 0)
                        return set_reason(
                                        ret,
                                        r,
                                        VAULT_ERROR_FAILED,
                                        "rotation: sealing the new key failed: %s",
                                        tpm2_context_last_error(c));
        }
        vault_crash_point("seal");
        t->rotation = ROTATION_SEALED;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        vault_crash_point("sealed");

        ret->escrow_blob = mfree(ret->escrow_blob);
        if (part) {
                r = escrow_wrap(c, part, &ret->escrow_blob, &ret->escrow_blob_size);
                if (r < 0)
                        return set_reason(
                                        ret,
                                        r,
                                        VAULT_ERROR_FAILED,
                                        "rotation: escrow of the new key failed: %s",
                                        tpm2_context_last_error(c));
                ret->escrow_generation = t->new_generation;
        }
        t->rotation = ROTATION_ESCROWED;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        vault_crash_point("escrowed");

        journal_promote(t);
        if (t->hold) {
                journal_clear(t, ROTATION_UNCONFIRMED);
                t->old_keyslot = old;
        } else {
                r = luks2_remove_keyslot(cd, old);
                if (r < 0)
                        return set_reason(
                                        ret,
                                        r,
                                        VAULT_ERROR_FAILED,
                                        "rotation: removing the old keyslot failed");
                vault_crash_point("removed");
                journal_clear(t, ROTATION_NONE);
        }
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        ret->key_method = key_source_needs_tpm(t->key_source)
                        ? (key_source_needs_controller(t->key_source) ? UNLOCK_TPM_CONTROLLER : UNLOCK_TPM)
                        : UNLOCK_CONTROLLER;
        return 0;
}

/* The targets of a rotation: what the request says, else what an earlier request recorded, else the
 * current policy. */
static int rotation_target(
                const EveVaultToken *t, const VaultRequest *req, RotationTarget *ret, VaultResult *res) {
        RotationTarget g = {
                .source = t->key_source,
                .pcr_mask = t->pcr_mask,
                .hold = req && req->hold,
        };
        const char *reason = NULL;

        strcpy(g.pcr_source, t->pcr_source);
        if (t->rotation == ROTATION_REQUESTED) {
                g.source = t->new_key_source;
                g.hold = g.hold || t->hold;
                if (t->new_pcr_mask != 0) {
                        g.pcr_mask = t->new_pcr_mask;
                        strcpy(g.pcr_source, t->new_pcr_source);
                }
        }
        if (req && req->key_source >= 0)
                g.source = req->key_source;
        if (req && req->pcr_mask != 0) {
                g.pcr_mask = req->pcr_mask;
                (void) snprintf(g.pcr_source, sizeof(g.pcr_source), "%s", req->pcr_source ?: "default");
        }
        if (!key_source_to_string(g.source))
                return set_reason(res, -EINVAL, VAULT_ERROR_INVALID_POLICY, "unknown key source");
        if (key_source_needs_tpm(g.source) && vault_pcr_policy_check(g.pcr_mask, &reason) < 0)
                return set_reason(
                                res,
                                -EINVAL,
                                VAULT_ERROR_INVALID_POLICY,
                                "invalid sealing PCRs: %s",
                                reason);
        *ret = g;
        return 0;
}

/* Records a rotation as requested, to run when its key material is there. */
static int
                record_request(struct crypt_device *cd,
                               int eve_id,
                               EveVaultToken *t,
                               const RotationTarget *g,
                               VaultResult *ret) {
        int r;

        t->rotation = ROTATION_REQUESTED;
        t->new_generation = t->generation + 1;
        t->new_key_source = g->source;
        t->new_pcr_mask = g->pcr_mask;
        strcpy(t->new_pcr_source, g->pcr_source);
        t->hold = g->hold;
        t->new_keyslot = -1;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        ret->requested = true;
        return 0;
}

/* ---- create ---- */

int vault_image_block_device(const char *image, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint64_t size;

        if (stat(image, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISBLK(st.st_mode))
                return 0;
        fd = open(image, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
                return -errno;
        if (ret_size)
                *ret_size = size;
        return 1;
}

/* 1 when blkid finds no file system, partition table or other signature on the device, 0 when it finds one
 * (its type in *ret_what), <0 when it cannot tell: only a blank partition becomes a vault. */
static int device_is_blank(const char *image, char **ret_what) {
        blkid_probe pr = blkid_new_probe_from_filename(image);
        const char *what = NULL;
        int r;

        if (!pr)
                return errno > 0 ? -errno : -EIO;
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        (void) blkid_probe_enable_partitions(pr, 1);
        r = blkid_do_safeprobe(pr);
        if (r == 0 && blkid_probe_lookup_value(pr, "TYPE", &what, NULL) < 0 &&
            blkid_probe_lookup_value(pr, "PTTYPE", &what, NULL) < 0)
                what = NULL;
        if (r == 0 || r == -2)
                *ret_what = strdup(what ?: (r == -2 ? "several signatures" : "a signature"));
        blkid_free_probe(pr);
        return r == 1 ? 1 : r == 0 || r == -2 ? 0 : -EIO;
}

/* Zeroes the first 16 MiB of a partition (LUKS2's default header and keyslot area): a vault that failed to
 * come into being, or was deleted, leaves the partition blank for the next one. */
static int wipe_device_header(const char *image) {
        _cleanup_close_ int fd = open(image, O_WRONLY | O_CLOEXEC);
        static const uint8_t zero[65536];
        uint64_t size;

        if (fd < 0)
                return -errno;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
                return -errno;
        size = MIN(size, UINT64_C(16) << 20);
        for (uint64_t off = 0; off < size; off += sizeof(zero))
                if (pwrite(fd, zero, (size_t) MIN(sizeof(zero), size - off), (off_t) off) < 0)
                        return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

/* Undoes a failed creation: an image file we made goes, a partition is wiped. */
static void discard_image(const char *image, bool device) {
        if (device)
                (void) wipe_device_header(image);
        else
                (void) unlink(image);
}

/* Creates image exclusively and reserves size bytes, reporting progress: allocation is what takes time for a
 * large vault (LUKS2 format writes only the header). A partition (image a symlink to a block device) is used
 * whole, if it is blank. */
static int
                allocate_image(const char *image,
                               uint64_t *size,
                               bool *ret_device,
                               const VaultRequest *req,
                               VaultResult *ret) {
        _cleanup_free_ char *what = NULL;
        _cleanup_close_ int fd = -EBADF;
        const uint64_t chunk = UINT64_C(64) << 20;
        uint64_t dev_size;
        int r;

        r = vault_image_block_device(image, &dev_size);
        if (r < 0)
                return set_reason(ret, r, VAULT_ERROR_FAILED, "cannot inspect %s: %s", image, strerror(-r));
        *ret_device = r > 0;
        if (r > 0) {
                r = device_is_blank(image, &what);
                if (r < 0)
                        return set_reason(ret, r, VAULT_ERROR_FAILED, "cannot probe %s for data", image);
                if (r == 0)
                        return set_reason(
                                        ret,
                                        -ENOTEMPTY,
                                        VAULT_ERROR_EXISTS,
                                        "%s holds data (%s): a vault is never formatted over it",
                                        image,
                                        what ?: "?");
                *size = dev_size;
                if (dev_size < LUKS2_IMAGE_SIZE_MIN)
                        return set_reason(
                                        ret,
                                        -ERANGE,
                                        VAULT_ERROR_INVALID_POLICY,
                                        "%s is below 32 MiB",
                                        image);
                return 0;
        }
        if (*size < LUKS2_IMAGE_SIZE_MIN)
                return set_reason(ret, -ERANGE, VAULT_ERROR_INVALID_POLICY, "size below 32 MiB");
        fd = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno == EEXIST)
                return set_reason(ret, -EEXIST, VAULT_ERROR_EXISTS, "%s exists already", image);
        if (fd < 0)
                return set_reason(ret, -errno, VAULT_ERROR_FAILED, "creating %s failed: %m", image);
        progress(req, "allocate", 0, *size);
        for (uint64_t off = 0; off < *size; off += chunk) {
                uint64_t n = MIN(chunk, *size - off);

                r = posix_fallocate(fd, (off_t) off, (off_t) n);
                if (r == EOPNOTSUPP || r == EINVAL)
                        break; /* a file system without fallocate: the image stays sparse */
                if (r != 0)
                        goto fail;
                progress(req, "allocate", off + n, *size);
        }
        if (ftruncate(fd, (off_t) *size) < 0) {
                r = errno;
                goto fail;
        }
        return 0;
fail:
        (void) unlink(image);
        return set_reason(ret, -r, VAULT_ERROR_FAILED, "allocating %s failed: %s", image, strerror(r));
}

int vault_create(
                Tpm2Context *c,
                const char *image,
                const char *name,
                uint64_t size,
                const VaultRequest *req,
                VaultResult *ret) {

        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secret_ uint8_t *secret = NULL;
        EveVaultToken *t = &ret->token;
        KeySource wanted = req->key_source >= 0 ? req->key_source : KEY_SOURCE_TPM;
        uint32_t pcr_mask = req->pcr_mask ?: VAULT_DEFAULT_PCRS;
        const char *reason;
        bool device = false;
        int r, slot;

        if (!vault_name_is_valid(name))
                return set_reason(ret, -EINVAL, VAULT_ERROR_INVALID_POLICY, "invalid vault name");
        if (!key_source_to_string(wanted))
                return set_reason(ret, -EINVAL, VAULT_ERROR_INVALID_POLICY, "unknown key source");
        if (vault_pcr_policy_check(pcr_mask, &reason) < 0)
                return set_reason(
                                ret,
                                -EINVAL,
                                VAULT_ERROR_INVALID_POLICY,
                                "invalid sealing PCRs: %s",
                                reason);
        r = allocate_image(image, &size, &device, req, ret);
        if (r < 0)
                return r;

        /* The first key is always TPM-sealed. A vault wanting the controller's share records that as a
         * requested rotation: it is not opened (and gets no file system, so no data) until the share is
         * there and the key changed to it. */
        r = random_secret(&secret);
        if (r < 0) {
                discard_image(image, device);
                return set_reason(ret, r, VAULT_ERROR_FAILED, "no random secret");
        }
        *t = (EveVaultToken){
                .generation = 1,
                .key_source = KEY_SOURCE_TPM,
                .new_key_source = KEY_SOURCE_TPM,
                .pcr_mask = pcr_mask,
                .new_keyslot = -1,
                .old_keyslot = -1,
        };
        strcpy(t->name, name);
        (void) snprintf(t->pcr_source, sizeof(t->pcr_source), "%s", req->pcr_source ?: "default");

        progress(req, "format", 0, 1);
        r = luks2_format(image, device ? 0 : size, secret, TPM2_SECRET_SIZE, &cd, &slot, t->uuid);
        if (r >= 0 && req->uuid) {
                r = crypt_set_uuid(cd, req->uuid);
                if (r >= 0)
                        (void) snprintf(t->uuid, sizeof(t->uuid), "%s", crypt_get_uuid(cd));
        }
        if (r < 0) {
                discard_image(image, device);
                return set_reason(
                                ret,
                                r,
                                VAULT_ERROR_FAILED,
                                "formatting %s as LUKS2 failed: %s",
                                image,
                                strerror(-r));
        }
        progress(req, "format", 1, 1);
        vault_crash_point("formatted"); /* a creation interrupted before its tokens (tests) */
        t->keyslot = slot;
        r = seal_to_slot(c, cd, slot, KEY_SOURCE_TPM, secret, pcr_mask, t->pcr_values);
        if (r < 0) {
                discard_image(image, device);
                return set_reason(
                                ret,
                                r,
                                VAULT_ERROR_FAILED,
                                "sealing to the TPM failed: %s",
                                tpm2_context_last_error(c));
        }
        r = escrow_wrap(c, secret, &ret->escrow_blob, &ret->escrow_blob_size);
        if (r < 0)
                /* The TPM alone still opens the vault; escrow is for rescue. Say so and go on. */
                (void) set_reason(
                                ret,
                                0,
                                NULL,
                                "no escrow blob (%s): the controller cannot rescue this vault yet",
                                tpm2_context_last_error(c));
        ret->escrow_generation = 1;
        t->escrow = r < 0 ? ESCROW_NONE : ESCROW_PENDING;
        if (wanted != KEY_SOURCE_TPM) {
                t->rotation = ROTATION_REQUESTED;
                t->new_generation = 2;
                t->new_key_source = wanted;
                t->new_pcr_mask = pcr_mask;
                strcpy(t->new_pcr_source, t->pcr_source);
                t->hold = req->hold;
                ret->requested = true;
                /* No escrow of a provisional key: the controller's share replaces it. */
                ret->escrow_blob = mfree(ret->escrow_blob);
                t->escrow = ESCROW_NONE;
        }
        r = save_eve(cd, -1, t);
        if (r < 0) {
                discard_image(image, device);
                return set_reason(ret, r, VAULT_ERROR_FAILED, "writing the eve-vault token failed");
        }
        ret->keyslots = luks2_keyslots_active(cd);
        ret->key_method = UNLOCK_TPM;
        /* The ext4 file system needs the mapping: it is made at the first activation, so a host without
         * device-mapper can still create vaults. */
        return 0;
}

/* ---- map and mount ---- */

/* Whether mount_point is a mount point of source (per /proc/self/mountinfo): 1 yes, 0 no. */
static int is_mounted(const char *mount_point) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        char *line = NULL;
        size_t n = 0;
        int found = 0;

        if (!f || !mount_point)
                return 0;
        while (getline(&line, &n, f) > 0) {
                char mp[4096];

                /* id parent major:minor root mount-point … */
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && streq(mp, mount_point)) {
                        found = 1;
                        break;
                }
        }
        free(line);
        return found;
}

static bool is_active(const char *map_name) {
        crypt_status_info s;

        if (!map_name)
                return false;
        s = crypt_status(NULL, map_name);
        return s == CRYPT_ACTIVE || s == CRYPT_BUSY;
}

/* An ext2/3/4 superblock magic (0xEF53 at 1080) on dev: 1 yes, 0 no. */
static int has_ext_magic(const char *dev) {
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
        uint8_t m[2];

        if (fd < 0)
                return -errno;
        if (pread(fd, m, sizeof(m), 1080) != (ssize_t) sizeof(m))
                return -EIO;
        return m[0] == 0x53 && m[1] == 0xef;
}

static int run_mkfs(const char *dev, const char *label) {
        pid_t pid;
        int status;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* stdout is the worker's result channel: mkfs talks to stderr. */
                if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                execlp("mkfs.ext4",
                       "mkfs.ext4",
                       "-q",
                       "-F",
                       "-L",
                       label,
                       "-E",
                       "lazy_itable_init=1,lazy_journal_init=1",
                       dev,
                       (char *) NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
        return 0;
}

/* The first activation of a vault that never had a file system: mapped under a temporary name, given an ext4
 * file system (unless it carries one already: data is never formatted over), closed again. So the mapping's
 * real name appears only with its file system ready, and a mount unit waiting for it never sees it empty. */
static int prepare_filesystem(
                struct crypt_device *cd,
                int eve_id,
                EveVaultToken *t,
                const VaultRequest *req,
                const KeyParts *k,
                VaultResult *ret) {
        _cleanup_free_ char *tmp = NULL, *dev = NULL;
        int r, q;

        if (asprintf(&tmp, "%s-mkfs", req->map_name) < 0 || asprintf(&dev, "/dev/mapper/%s", tmp) < 0)
                return -ENOMEM;
        if (is_active(tmp))
                (void) crypt_deactivate(NULL, tmp); /* left by a crash */
        r = luks2_activate_by_volume_key(cd, tmp, k->volume_key, k->volume_key_size);
        if (r < 0)
                return r;
        r = has_ext_magic(dev);
        if (r == 0) {
                progress(req, "mkfs", 0, 1);
                r = run_mkfs(dev, t->name);
                if (r >= 0) {
                        progress(req, "mkfs", 1, 1);
                        ret->made_filesystem = true;
                }
        }
        q = crypt_deactivate(NULL, tmp);
        if (r < 0)
                return set_reason(
                                ret,
                                r,
                                VAULT_ERROR_FAILED,
                                "making the file system on %s failed: %s",
                                dev,
                                strerror(-r));
        if (q < 0)
                return set_reason(ret, q, VAULT_ERROR_FAILED, "closing %s failed: %s", dev, strerror(-q));
        t->has_filesystem = true;
        return save_or_fail(cd, eve_id, t, ret);
}

/* Mounts the mapping. Where this process may not mount (eve-vaultd's unit: its mount namespace is private,
 * so systemd's mount unit mounts the mapping for everybody), the mount is left to systemd: not an error. */
static int mount_vault(const VaultRequest *req, VaultResult *ret) {
        _cleanup_free_ char *dev = NULL;
        int r;

        if (asprintf(&dev, "/dev/mapper/%s", req->map_name) < 0)
                return -ENOMEM;
        if (is_mounted(req->mount_point)) {
                ret->mounted = true;
                return 0;
        }
        r = eve_mkdir_p(req->mount_point, 0755);
        if (r < 0)
                return set_reason(ret, r, VAULT_ERROR_FAILED, "cannot create %s: %s", req->mount_point, strerror(-r));
        if (mount(dev, req->mount_point, "ext4", MS_NODEV | MS_NOSUID, NULL) < 0) {
                if (errno == EPERM || errno == EACCES) {
                        ret->mount_delegated = true;
                        return 0;
                }
                return set_reason(
                                ret,
                                -errno,
                                VAULT_ERROR_FAILED,
                                "mounting %s at %s failed: %m",
                                dev,
                                req->mount_point);
        }
        ret->mounted = true;
        return 0;
}

static int
                activate_now(struct crypt_device *cd,
                             int eve_id,
                             EveVaultToken *t,
                             const VaultRequest *req,
                             const KeyParts *k,
                             VaultResult *ret) {
        int r;

        if (!req->map_name)
                return 0;
        r = 0;
        if (req->mount_point && !t->has_filesystem && !is_active(req->map_name))
                r = prepare_filesystem(cd, eve_id, t, req, k, ret);
        if (r >= 0)
                r = luks2_activate_by_volume_key(cd, req->map_name, k->volume_key, k->volume_key_size);
        if (r == -EOPNOTSUPP)
                return set_reason(
                                ret,
                                0,
                                VAULT_ERROR_NO_DM,
                                "device-mapper unavailable: key verified (%s), volume not mapped",
                                unlock_method_to_string(ret->key_method));
        if (r < 0 && ret->error)
                return 0; /* the reason is set */
        if (r < 0 && r != -EEXIST && r != -EBUSY)
                return set_reason(
                                ret,
                                0,
                                VAULT_ERROR_FAILED,
                                "activating /dev/mapper/%s failed: %s",
                                req->map_name,
                                strerror(-r));
        ret->activated = true;
        if (!req->mount_point)
                return 0;
        /* The vault is mapped even when mounting fails: the reason says why it is not mounted. */
        (void) mount_vault(req, ret);
        return 0;
}

/* ---- activation in a child process (req->activate_async) ----
 *
 * The mapping's slow part is not ours: libcryptsetup waits for udev to process the new device (its rules,
 * blkid, systemd's device unit), ~40 % of a mapping. A child process does the mapping (and the mount) while
 * this one goes on with the escrow wrap or a batch's next vault. The child gets the volume key through a
 * pipe (secrets are MADV_WIPEONFORK: a forked child sees zeros), into its own locked memory, and dies with
 * this process (PR_SET_PDEATHSIG): a killed worker leaves what a worker killed during a mapping always left.
 * It never touches the TPM; the header it maps from is the one read here (mapping reads no keyslot). */

/* Reads up to n bytes, until EOF or an error: how many came. */
static size_t read_full(int fd, void *buf, size_t n) {
        size_t got = 0;

        while (got < n) {
                ssize_t k = read(fd, (uint8_t *) buf + got, n - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                got += (size_t) k;
        }
        return got;
}

typedef struct ActivationReport {
        int r;
        bool activated;
        bool mounted;
        bool mount_delegated;
        bool no_dm; /* error VAULT_ERROR_NO_DM, else VAULT_ERROR_FAILED when reason is set */
        char reason[1024];
} ActivationReport;

static bool activation_async(const EveVaultToken *t, const VaultRequest *req) {
        /* A first activation makes the file system and writes the token: in this process. */
        return req->activate_async && req->map_name && (t->has_filesystem || !req->mount_point);
}

_noreturn_ static void activation_child(
                struct crypt_device *cd,
                int eve_id,
                EveVaultToken *t,
                const VaultRequest *req,
                UnlockMethod method,
                size_t vk_size,
                int key_fd,
                int report_fd) {
        VaultResult res = { .token.new_keyslot = -1, .token.old_keyslot = -1, .key_method = method };
        KeyParts ck = { .keyslot = -1, .volume_key_size = vk_size };
        ActivationReport rep = {};
        size_t got = 0;

        ck.volume_key = eve_secret_alloc(vk_size);
        if (ck.volume_key)
                got = read_full(key_fd, ck.volume_key, vk_size);
        safe_close(key_fd);
        if (got < vk_size) {
                rep.r = -EIO;
                (void) snprintf(rep.reason, sizeof(rep.reason), "the activation process got no key");
        } else {
                /* tests: the mapping's process dies, the worker does not */
                vault_crash_point("activation-child");
                rep.r = activate_now(cd, eve_id, t, req, &ck, &res);
                rep.activated = res.activated;
                rep.mounted = res.mounted;
                rep.mount_delegated = res.mount_delegated;
                rep.no_dm = res.error && streq(res.error, VAULT_ERROR_NO_DM);
                if (res.reason)
                        (void) snprintf(rep.reason, sizeof(rep.reason), "%s", res.reason);
        }
        eve_secret_free(ck.volume_key);
        /* One write below PIPE_BUF: whole or nothing; nothing reads as "ended without a report". */
        if (write(report_fd, &rep, sizeof(rep)) != (ssize_t) sizeof(rep))
                _exit(1);
        _exit(0);
}

/* Starts the child; < 0 when it could not (nothing started: the caller maps here). */
static int
                activate_spawn(struct crypt_device *cd,
                               int eve_id,
                               EveVaultToken *t,
                               const VaultRequest *req,
                               const KeyParts *k,
                               VaultResult *ret) {
        int key_pipe[2] = { -EBADF, -EBADF }, report_pipe[2] = { -EBADF, -EBADF };
        pid_t parent = getpid(), pid;
        ssize_t n;

        if (pipe2(key_pipe, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(report_pipe, O_CLOEXEC) < 0) {
                int r = -errno;
                safe_close(key_pipe[0]);
                safe_close(key_pipe[1]);
                return r;
        }
        (void) fflush(stdout);
        (void) fflush(stderr);
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                safe_close(key_pipe[0]);
                safe_close(key_pipe[1]);
                safe_close(report_pipe[0]);
                safe_close(report_pipe[1]);
                return r;
        }
        if (pid == 0) {
                safe_close(key_pipe[1]);
                safe_close(report_pipe[0]);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(1);
                activation_child(
                                cd,
                                eve_id,
                                t,
                                req,
                                ret->key_method,
                                k->volume_key_size,
                                key_pipe[0],
                                report_pipe[1]);
        }
        safe_close(key_pipe[0]);
        safe_close(report_pipe[1]);
        do
                n = write(key_pipe[1], k->volume_key, k->volume_key_size); /* < PIPE_BUF: whole or nothing */
        while (n < 0 && errno == EINTR);
        safe_close(key_pipe[1]);
        ret->activation_pid = pid;
        ret->activation_fd = report_pipe[0];
        if (n != (ssize_t) k->volume_key_size) {
                (void) kill(pid, SIGKILL);
                (void) vault_activation_join(ret);
                clear_reason(ret);
                ret->activated = false;
                return -EIO;
        }
        return 0;
}

int vault_activation_join(VaultResult *ret) {
        ActivationReport rep = {};
        size_t got = 0;
        int status = 0;
        pid_t pid;

        if (!ret || ret->activation_pid <= 0)
                return 0;
        got = read_full(ret->activation_fd, &rep, sizeof(rep));
        ret->activation_fd = safe_close(ret->activation_fd);
        do
                pid = waitpid(ret->activation_pid, &status, 0);
        while (pid < 0 && errno == EINTR);
        ret->activation_pid = 0;
        if (got < sizeof(rep)) {
                ret->activated = false;
                return set_reason(
                                ret,
                                -EIO,
                                VAULT_ERROR_FAILED,
                                "the activation process ended without a report (%s %d)",
                                WIFSIGNALED(status) ? "signal" : "status",
                                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
        rep.reason[sizeof(rep.reason) - 1] = '\0';
        ret->activated = rep.activated;
        ret->mounted = rep.mounted;
        ret->mount_delegated = rep.mount_delegated;
        if (rep.reason[0])
                (void) set_reason(
                                ret,
                                0,
                                rep.no_dm ? VAULT_ERROR_NO_DM : VAULT_ERROR_FAILED,
                                "%s",
                                rep.reason);
        return rep.r;
}

/* Maps (and mounts) the vault: here, or in a child when the request asks for it (activation_async()). */
static int
                activate(struct crypt_device *cd,
                         int eve_id,
                         EveVaultToken *t,
                         const VaultRequest *req,
                         const KeyParts *k,
                         VaultResult *ret) {
        if (ret->activation_pid > 0)
                return 0; /* under way already */
        if (activation_async(t, req) && activate_spawn(cd, eve_id, t, req, k, ret) >= 0)
                return 0;
        return activate_now(cd, eve_id, t, req, k, ret);
}

/* ---- unlock ---- */

/* A vault created for a key source that needs the controller, before its share arrived: its TPM key is
 * provisional (no file system, no data, no escrow); it is not opened with it. */
static bool is_provisional(const EveVaultToken *t) {
        return t->rotation == ROTATION_REQUESTED && key_source_needs_controller(t->new_key_source) &&
                        !t->has_filesystem;
}

static UnlockMethod method_of(const EveVaultToken *t, const KeyParts *k) {
        if (k->from_escrow || !key_source_needs_tpm(t->key_source))
                return UNLOCK_CONTROLLER;
        return key_source_needs_controller(t->key_source) ? UNLOCK_TPM_CONTROLLER : UNLOCK_TPM;
}

/* The previous key of an unconfirmed rotation opened (its escrow is what the controller holds): undo the
 * rotation, so the key the controller can rescue is the current one again. */
static int undo_unconfirmed(struct crypt_device *cd, int eve_id, EveVaultToken *t, VaultResult *ret) {
        int r, newer = t->keyslot;

        t->keyslot = t->old_keyslot;
        t->generation--;
        journal_clear(t, ROTATION_NONE);
        r = luks2_remove_keyslot(cd, newer);
        if (r < 0)
                return set_reason(
                                ret,
                                r,
                                VAULT_ERROR_FAILED,
                                "removing the unconfirmed keyslot %d failed",
                                newer);
        t->escrow = ESCROW_CONFIRMED; /* the controller just released it */
        log_info("Vault %s: opened with the previous key's escrow; the unconfirmed key change is undone.",
                 t->name);
        return save_or_fail(cd, eve_id, t, ret);
}

/* ---- the recovery key ---- */

int vault_recovery_key_new(char **ret) {
        static const char hex[] = "0123456789abcdef";
        _cleanup_secret_ uint8_t *raw = NULL;
        _cleanup_secret_ char *s = NULL;
        int r;

        r = random_secret(&raw);
        if (r < 0)
                return r;
        s = eve_secret_alloc(VAULT_RECOVERY_KEY_LEN + 1);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0, n = 0; i < TPM2_SECRET_SIZE; i++) {
                if (i > 0 && i % 4 == 0)
                        s[n++] = '-';
                s[n++] = hex[raw[i] >> 4];
                s[n++] = hex[raw[i] & 15];
        }
        s[VAULT_RECOVERY_KEY_LEN] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

int vault_recovery_key_normalize(const char *in, char **ret) {
        _cleanup_secret_ char *s = eve_secret_alloc(VAULT_RECOVERY_KEY_LEN + 1);
        size_t n = 0;

        if (!s)
                return -ENOMEM;
        if (!in)
                return -EINVAL;
        for (const char *p = in; *p; p++) {
                char c = *p;

                if (c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
                        continue;
                if (c >= 'A' && c <= 'F')
                        c = (char) (c - 'A' + 'a');
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n == 2 * TPM2_SECRET_SIZE)
                        return -EINVAL;
                if (n > 0 && n % 8 == 0)
                        s[n + n / 8 - 1] = '-';
                s[n + n / 8] = c;
                n++;
        }
        if (n != 2 * TPM2_SECRET_SIZE)
                return -EINVAL;
        s[VAULT_RECOVERY_KEY_LEN] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

/* The recovery key against the recovery keyslot: the volume key, or KeyRejected (nothing written). */
static int
                recovery_open(struct crypt_device *cd,
                              const EveVaultToken *t,
                              const char *key,
                              KeyParts *k,
                              VaultResult *ret) {
        int r;

        if (!t->has_recovery)
                return set_reason(
                                ret,
                                -EKEYREJECTED,
                                VAULT_ERROR_KEY_REJECTED,
                                "vault %s has no recovery key",
                                t->name);
        r = luks2_volume_key_get_by_passphrase(
                        cd, t->recovery_keyslot, key, strlen(key), &k->volume_key, &k->volume_key_size);
        if (r < 0)
                return set_reason(
                                ret,
                                -EKEYREJECTED,
                                VAULT_ERROR_KEY_REJECTED,
                                "the recovery key does not open the recovery keyslot %d",
                                t->recovery_keyslot);
        k->keyslot = r;
        return 0;
}

/* Opened with the recovery key (k: its volume key only) because the TPM refused: a key change with the
 * recovery key as the current key gives the vault a fresh key sealed to today's PCRs (and escrowed); the old
 * TPM keyslot goes, the recovery keyslot stays. A key source that needs the controller's share cannot be
 * re-sealed without it: the vault is opened, the reason says so. */
static int
                recovery_reseal(Tpm2Context *c,
                                struct crypt_device *cd,
                                int eve_id,
                                EveVaultToken *t,
                                KeyParts *k,
                                VaultResult *ret) {
        RotationTarget g;
        int r;

        /* The held change's previous key goes too: the fresh key replaces both. */
        if (t->rotation == ROTATION_UNCONFIRMED) {
                r = drop_unconfirmed_old(cd, t, ret);
                if (r < 0)
                        return r;
        }
        r = rotation_target(t, NULL, &g, ret);
        if (r < 0)
                return r;
        g.hold = false;
        if (key_source_needs_controller(g.source) && !k->ctrl_share)
                return set_reason(
                                ret,
                                0,
                                NULL,
                                "opened with the recovery key; not re-sealed: key source %s needs the "
                                "controller's "
                                "share",
                                source_str(g.source));
        r = do_rotate(c, cd, eve_id, t, k, &g, ret);
        if (r < 0)
                return r;
        ret->moved_pcrs = 0;
        log_info("Vault %s: opened with the recovery key and given a new key sealed to today's PCRs "
                 "(generation %" PRIu64 ").",
                 t->name,
                 t->generation);
        return 0;
}

int vault_add_recovery(
                Tpm2Context *c,
                const char *image,
                const VaultRequest *req,
                char **ret_key,
                VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_(key_parts_done) KeyParts k = { .keyslot = -1 };
        _cleanup_secret_ char *key = NULL;
        EveVaultToken *t = &ret->token;
        int r, eve_id, slot, old;

        r = open_recovered(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        r = obtain_key(c, cd, t, &req->keys, &k, ret);
        if (r < 0)
                return set_reason(
                                ret, r, NULL, "a recovery key needs the current key: %s", ret->reason ?: "");
        r = vault_recovery_key_new(&key);
        if (r < 0)
                return set_reason(ret, r, VAULT_ERROR_FAILED, "no random secret");
        slot = luks2_add_passphrase_keyslot(cd, k.volume_key, k.volume_key_size, key, strlen(key));
        if (slot < 0)
                return set_reason(
                                ret,
                                slot,
                                VAULT_ERROR_FAILED,
                                "adding the recovery keyslot failed: %s",
                                strerror(-slot));
        vault_crash_point("recovery-slot-added");
        old = t->has_recovery ? t->recovery_keyslot : -1;
        t->has_recovery = true;
        t->recovery_keyslot = slot;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0) {
                (void) luks2_remove_keyslot(cd, slot);
                return r;
        }
        if (old >= 0 && (luks2_keyslots_active(cd) & (UINT32_C(1) << old))) {
                r = luks2_remove_keyslot(cd, old);
                if (r < 0)
                        (void) set_reason(
                                        ret,
                                        0,
                                        NULL,
                                        "the previous recovery keyslot %d could not be removed",
                                        old);
        }
        ret->keyslots = luks2_keyslots_active(cd);
        ret->key_method = method_of(t, &k);
        log_info("Vault %s: recovery key set (keyslot %d).", t->name, slot);
        *ret_key = TAKE_PTR(key);
        return 0;
}

int vault_unlock(Tpm2Context *c, const char *image, const VaultRequest *req, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_(key_parts_done) KeyParts k = { .keyslot = -1 }, rk = { .keyslot = -1 };
        EveVaultToken *t = &ret->token;
        int r, eve_id;

        r = open_recovered(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;

        /* A recovery key is checked first: a wrong one is refused before anything is written. */
        if (req->keys.recovery) {
                r = recovery_open(cd, t, req->keys.recovery, &rk, ret);
                if (r < 0) {
                        ret->keyslots = luks2_keyslots_active(cd);
                        if (key_source_needs_tpm(t->key_source))
                                ret->moved_pcrs = moved_pcrs(c, t); /* still reported as they are */
                        return 0;
                }
        }
        r = obtain_key(c, cd, t, &req->keys, &k, ret);
        if (r == -ENOKEY && rk.volume_key) {
                key_parts_done(&k);
                k = rk;
                rk = (KeyParts){ .keyslot = -1 };
                clear_reason(ret);
                r = recovery_reseal(c, cd, eve_id, t, &k, ret);
                ret->keyslots = luks2_keyslots_active(cd);
                if (r < 0)
                        return r;
                ret->key_method = UNLOCK_RECOVERY;
                return activate(cd, eve_id, t, req, &k, ret);
        }
        ret->keyslots = luks2_keyslots_active(cd);
        if (r == -ENOKEY || r == -EKEYREJECTED ||
            (r < 0 && ret->error && streq(ret->error, VAULT_ERROR_KEY_REJECTED)))
                return 0; /* the operation ran; the vault stays locked, the reason says why */
        if (r < 0)
                return r;
        ret->key_method = method_of(t, &k);
        if (k.previous) {
                r = undo_unconfirmed(cd, eve_id, t, ret);
                if (r < 0)
                        return r;
        }

        /* Rescued through escrow: re-seal to today's PCRs; the blob the controller holds stays valid. */
        if (k.from_escrow) {
                r = seal_to_slot(c, cd, k.keyslot, t->key_source, k.tpm_part, t->pcr_mask, t->pcr_values);
                if (r < 0)
                        (void) set_reason(
                                        ret,
                                        0,
                                        NULL,
                                        "re-sealing to today's PCRs failed: %s",
                                        tpm2_context_last_error(c));
                else
                        ret->moved_pcrs = 0;
                if (t->escrow == ESCROW_NONE)
                        t->escrow = ESCROW_PENDING;
        }
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;

        /* A requested key change whose material is here now runs first. */
        if (t->rotation == ROTATION_REQUESTED &&
            (!key_source_needs_controller(t->new_key_source) || k.ctrl_share)) {
                RotationTarget g;

                r = rotation_target(t, NULL, &g, ret);
                if (r < 0)
                        return r;
                r = do_rotate(c, cd, eve_id, t, &k, &g, ret);
                if (r < 0)
                        return r;
                key_parts_done(&k);
                k = (KeyParts){ .keyslot = -1 };
                r = obtain_key(c, cd, t, &req->keys, &k, ret);
                if (r < 0)
                        return r;
                ret->key_method = method_of(t, &k);
        } else if (key_source_needs_tpm(t->key_source) && !is_provisional(t) &&
                   (req->escrow_always || t->escrow != ESCROW_CONFIRMED)) {
                /* The mapping goes on beside the wrap (a child; or nothing, then it is made below). */
                if (activation_async(t, req))
                        (void) activate_spawn(cd, eve_id, t, req, &k, ret);
                /* Escrow again whenever the controller may not hold the current key (or vaultd asks). */
                r = escrow_wrap(c, k.tpm_part, &ret->escrow_blob, &ret->escrow_blob_size);
                if (r >= 0) {
                        ret->escrow_generation = t->generation;
                        if (t->escrow == ESCROW_NONE)
                                t->escrow = ESCROW_PENDING;
                }
                r = save_or_fail(cd, eve_id, t, ret);
                if (r < 0)
                        return r;
        }
        ret->keyslots = luks2_keyslots_active(cd);
        clear_reason(ret);

        /* A vault waiting for the controller's share before its first use is not opened with its provisional
         * key: nothing is written in it until its key source is in place. */
        if (is_provisional(t)) {
                ret->key_method = UNLOCK_NONE;
                return set_reason(
                                ret,
                                0,
                                VAULT_ERROR_KEY_UNAVAILABLE,
                                "locked: waiting for the controller's share before first use (key source "
                                "%s)",
                                source_str(t->new_key_source));
        }
        return activate(cd, eve_id, t, req, &k, ret);
}

/* ---- rotate, confirm ---- */

int vault_rotate(Tpm2Context *c, const char *image, const VaultRequest *req, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_(key_parts_done) KeyParts k = { .keyslot = -1 };
        EveVaultToken *t = &ret->token;
        RotationTarget g;
        int r, eve_id;

        r = open_recovered(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        if (t->rotation == ROTATION_UNCONFIRMED)
                return set_reason(
                                ret,
                                -EBUSY,
                                VAULT_ERROR_BUSY,
                                "the previous key change (generation %" PRIu64
                                ") waits for the controller to "
                                "confirm its escrow; at most two keys at a time",
                                t->generation);
        r = rotation_target(t, req, &g, ret);
        if (r < 0)
                return r;

        r = obtain_key(c, cd, t, &req->keys, &k, ret);
        if (r == -ENOKEY || (r >= 0 && key_source_needs_controller(g.source) && !k.ctrl_share)) {
                _cleanup_free_ char *why = ret->reason ? strdup(ret->reason) : NULL;
                int q = record_request(cd, eve_id, t, &g, ret);
                if (q < 0)
                        return q;
                ret->keyslots = luks2_keyslots_active(cd);
                return set_reason(
                                ret,
                                0,
                                NULL,
                                "key change requested; it runs when %s",
                                r == -ENOKEY ? (why ?: "the current key is available")
                                             : "the controller's share arrives");
        }
        if (r < 0)
                return set_reason(ret, r, NULL, "rotation needs the current key: %s", ret->reason ?: "");
        if (k.previous) {
                r = undo_unconfirmed(cd, eve_id, t, ret);
                if (r < 0)
                        return r;
        }
        r = do_rotate(c, cd, eve_id, t, &k, &g, ret);
        if (r < 0)
                return r;
        ret->keyslots = luks2_keyslots_active(cd);
        return 0;
}

int vault_confirm(const char *image, uint64_t generation, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        EveVaultToken *t = &ret->token;
        int r, eve_id;

        r = open_recovered(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        if (generation != t->generation)
                return set_reason(
                                ret,
                                -ESTALE,
                                VAULT_ERROR_KEY_REJECTED,
                                "escrow of generation %" PRIu64
                                " is not the current key's (generation %" PRIu64 ")",
                                generation,
                                t->generation);
        if (t->rotation == ROTATION_UNCONFIRMED) {
                r = drop_unconfirmed_old(cd, t, ret);
                if (r < 0)
                        return r;
        }
        t->escrow = ESCROW_CONFIRMED;
        r = save_or_fail(cd, eve_id, t, ret);
        if (r < 0)
                return r;
        ret->keyslots = luks2_keyslots_active(cd);
        return 0;
}

/* ---- lock, erase, inspect ---- */

static int unmap(const char *map_name, const char *mount_point, VaultResult *ret) {
        int r;

        if (mount_point && is_mounted(mount_point) && umount2(mount_point, 0) < 0)
                return set_reason(
                                ret,
                                -errno,
                                errno == EBUSY ? VAULT_ERROR_BUSY : VAULT_ERROR_FAILED,
                                "unmounting %s failed: %m",
                                mount_point);
        if (is_active(map_name)) {
                r = crypt_deactivate(NULL, map_name);
                if (r < 0)
                        return set_reason(
                                        ret,
                                        r,
                                        r == -EBUSY ? VAULT_ERROR_BUSY : VAULT_ERROR_FAILED,
                                        "closing /dev/mapper/%s failed: %s",
                                        map_name,
                                        strerror(-r));
        }
        return 0;
}

int vault_lock(const char *image, const char *map_name, const char *mount_point, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r, eve_id;

        r = open_vault(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        r = unmap(map_name, mount_point, ret);
        ret->keyslots = luks2_keyslots_active(cd);
        ret->activated = is_active(map_name);
        ret->mounted = mount_point && is_mounted(mount_point);
        return r;
}

int vault_erase(const char *image, const char *map_name, const char *mount_point, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        uint32_t active;
        int r, eve_id;

        r = open_vault(image, &cd, &eve_id, ret);
        if (r < 0 && !streq_ptr(ret->error, VAULT_ERROR_BAD_IMAGE))
                return r;
        r = unmap(map_name, mount_point, ret);
        if (r < 0)
                return r;
        if (cd) {
                active = luks2_keyslots_active(cd);
                for (int k = 0; k < LUKS2_KEYSLOTS_MAX; k++)
                        if (active & (UINT32_C(1) << k)) {
                                r = crypt_keyslot_destroy(cd, k);
                                if (r < 0)
                                        return set_reason(
                                                        ret,
                                                        r,
                                                        VAULT_ERROR_FAILED,
                                                        "destroying keyslot %d failed: %s",
                                                        k,
                                                        strerror(-r));
                        }
        }
        /* A partition is wiped and given back (its symlink goes), blank for a next vault. */
        r = vault_image_block_device(image, NULL);
        if (r > 0) {
                r = wipe_device_header(image);
                if (r < 0)
                        return set_reason(
                                        ret,
                                        r,
                                        VAULT_ERROR_FAILED,
                                        "wiping %s failed: %s",
                                        image,
                                        strerror(-r));
        }
        if (unlink(image) < 0 && errno != ENOENT)
                return set_reason(ret, -errno, VAULT_ERROR_FAILED, "removing %s failed: %m", image);
        clear_reason(ret);
        ret->keyslots = 0;
        return 0;
}

int vault_inspect(const char *image, const char *map_name, const char *mount_point, VaultResult *ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r, eve_id;

        r = open_vault(image, &cd, &eve_id, ret);
        if (r < 0)
                return r;
        ret->keyslots = luks2_keyslots_active(cd);
        ret->activated = is_active(map_name);
        ret->mounted = ret->activated && mount_point && is_mounted(mount_point);
        return 0;
}

char *vault_mount_unit_name(const char *path) {
        size_t n = 0;
        char *s;

        while (*path == '/')
                path++;
        s = malloc(strlen(path) * 4 + sizeof(".mount"));
        if (!s)
                return NULL;
        for (const char *p = path; *p; p++) {
                if (*p == '/') {
                        while (p[1] == '/')
                                p++;
                        if (p[1])
                                s[n++] = '-';
                } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                           (*p >= '0' && *p <= '9') || *p == ':' || *p == '_' || (*p == '.' && p != path))
                        s[n++] = *p;
                else
                        n += (size_t) sprintf(s + n, "\\x%02x", (unsigned char) *p);
        }
        strcpy(s + n, ".mount");
        return s;
}
