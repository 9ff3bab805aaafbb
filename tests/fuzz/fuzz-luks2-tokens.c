/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: both LUKS2 token formats read from a vault's header on disk (systemd-tpm2 and eve-vault).
 * Bytes are taken as the token's JSON text. A token that is accepted must serialize again, and that JSON
 * must parse to the same token: nothing accepted may be half understood. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "luks2-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void tpm2_token(const char *json) {
        Luks2Tpm2Token t = {}, again = {};
        _cleanup_free_ char *out = NULL;
        const char *why = NULL;

        if (luks2_tpm2_token_from_json(json, &t, &why) < 0)
                return;
        assert(luks2_tpm2_token_to_json(&t, &out) >= 0);
        assert(luks2_tpm2_token_from_json(out, &again, &why) >= 0);
        assert(again.keyslot == t.keyslot && again.pcr_mask == t.pcr_mask);
        assert(again.blob_size == t.blob_size && memcmp(again.blob, t.blob, t.blob_size) == 0);
        assert(memcmp(again.policy_hash, t.policy_hash, sizeof t.policy_hash) == 0);
        assert(again.srk_size == t.srk_size && (!t.srk_size || memcmp(again.srk, t.srk, t.srk_size) == 0));
        luks2_tpm2_token_done(&t);
        luks2_tpm2_token_done(&again);
}

static void eve_token(const char *json) {
        EveVaultToken t, again;
        _cleanup_free_ char *out = NULL;
        const char *why = NULL;

        if (eve_vault_token_from_json(json, &t, &why) < 0)
                return;
        assert(vault_name_is_valid(t.name));
        assert(eve_vault_token_to_json(&t, &out) >= 0);
        assert(eve_vault_token_from_json(out, &again, &why) >= 0);
        assert(memcmp(&t, &again, sizeof t) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *json = NULL;

        if (size > 64 * 1024)
                return 0;
        json = malloc(size + 1);
        if (!json)
                return 0;
        memcpy(json, data, size);
        json[size] = '\0';
        tpm2_token(json);
        eve_token(json);
        return 0;
}
