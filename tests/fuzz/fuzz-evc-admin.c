/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: evc's administrator input, the values its command line hands to the library (evc.c,
 * evc-cli-vault.c → evc-core.c, evc-vault.c): device names (UUID, serial or certificate-hash prefix, looked
 * up in SQLite), device certificates (evc device add --cert), vault PCR lists (--pcrs), sizes (--size),
 * UUIDs, whole vault entries (evc vault add/set), expected PCR values (evc upgrade expect --pcr N=HEX) and
 * config items (evc config set KEY=VALUE). The first byte picks the parser; the rest is its argument (a C
 * string, or the bytes of the certificate file). Each must give a result or a clear refusal.
 */
#include <stdlib.h>

#include "evc-vault.h"
#include "fuzz-evc-dir.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_pcrs(const char *s) {
        const char *why = NULL;
        uint32_t mask;
        char buf[128];
        uint32_t list[32];
        size_t n = 0;

        if (evc_vault_pcrs_parse(s, &mask) < 0)
                return;
        if (evc_vault_pcrs_check(mask, &why) < 0) {
                if (!why)
                        abort();
                return;
        }
        for (unsigned i = 0; i < 32; i++)
                if (mask & (UINT32_C(1) << i))
                        list[n++] = i;
        if (!evc_pcr_list_format(list, n, buf, sizeof buf))
                abort();
}

static void fuzz_vault(const char *s, const uint8_t *raw, size_t size) {
        EvcVault v = { .name = s };
        const char *why = NULL;

        if (size >= 16) {
                memcpy(&v.size_limit, raw, 8);
                v.key_source = (KeySource) (raw[8] % (_KEY_SOURCE_MAX + 1));
                memcpy(&v.pcrs, raw + 9, 4);
                v.policy_id = raw[13];
        }
        if (evc_vault_check(&v, &why) < 0 && !why)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL, *uuid = NULL;
        char canon[37];
        uint64_t bytes;
        Evc *evc;

        if (size < 1 || size > 64 * 1024)
                return 0;
        evc = fuzz_evc_get();
        {
                /* What argv can carry: up to the first NUL (not strndup: the input has no terminator). */
                const uint8_t *nul = memchr(data + 1, 0, size - 1);
                size_t len = nul ? (size_t) (nul - (data + 1)) : size - 1;
                s = malloc(len + 1);
                if (!s)
                        abort();
                memcpy(s, data + 1, len);
                s[len] = 0;
        }
        switch (data[0] % 8) {
        case 0:
                fuzz_pcrs(s);
                break;
        case 1:
                if (evc_vault_size_parse(s, &bytes) >= 0 && (s[0] < '0' || s[0] > '9'))
                        abort();
                break;
        case 2:
                if (evc_uuid_canonical(s, canon) >= 0 && (strlen(canon) != 36 || strcasecmp(canon, s) != 0))
                        abort();
                break;
        case 3: {
                int64_t id = evc_device_find(evc, s);
                if (id < 0 && id != -ENOENT && id != -EUCLEAN)
                        abort();
                break;
        }
        case 4:
                /* The certificate file's bytes, as 'evc device add --cert' reads them. */
                if (evc_device_add(evc, (const char *) data + 1, size - 1, NULL, &uuid) >= 0 &&
                    evc_device_find(evc, uuid) < 0)
                        abort();
                break;
        case 6: {
                /* An accepted N=HEX names a PCR 0..23 and exactly 32 bytes. */
                uint8_t value[32];
                unsigned idx = 99;
                if (evc_pcr_value_parse(s, &idx, value) >= 0 &&
                    (idx > 23 || strlen(s) < 2 + 64 || strlen(s) > 3 + 64))
                        abort();
                break;
        }
        case 7: {
                /* An accepted KEY=VALUE splits at the first '=', with a non-empty key and no control bytes.
                 */
                const char *value = NULL;
                size_t key_len = 0;
                if (evc_config_item_parse(s, &key_len, &value) >= 0 &&
                    (key_len == 0 || key_len > 128 || s[key_len] != '=' || value != s + key_len + 1 ||
                     strchr(s, '\n')))
                        abort();
                break;
        }
        default:
                fuzz_vault(s, data + 1, size - 1);
        }
        return 0;
}
