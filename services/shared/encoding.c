/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <nettle/base16.h>
#include <nettle/base64.h>

#include "encoding.h"
#include "macro.h"
#include "memory-util.h"

char *hex_encode(const void *p, size_t n) {
        char *s;

        if (n > (SIZE_MAX - 1) / 2)
                return NULL;
        s = malloc(BASE16_ENCODE_LENGTH(n) + 1);
        if (!s)
                return NULL;
        base16_encode_update(s, n, p);
        s[BASE16_ENCODE_LENGTH(n)] = '\0';
        /* nettle writes lower case already; keep it explicit for callers comparing with systemd's JSON. */
        return s;
}

char *base64_encode(const void *p, size_t n) {
        struct base64_encode_ctx ctx;
        size_t done;
        char *s;

        if (n > (SIZE_MAX - 8) / 4 * 3)
                return NULL;
        s = malloc(BASE64_ENCODE_LENGTH(n) + BASE64_ENCODE_FINAL_LENGTH + 1);
        if (!s)
                return NULL;
        base64_encode_init(&ctx);
        done = base64_encode_update(&ctx, s, n, p);
        done += base64_encode_final(&ctx, s + done);
        s[done] = '\0';
        return s;
}

static void *alloc_out(size_t n, bool secure) {
        return secure ? eve_secret_alloc(MAX(n, 1u)) : calloc(1, MAX(n, 1u));
}

static void free_out(void *p, bool secure) {
        if (secure)
                eve_secret_free(p);
        else
                free(p);
}

int hex_decode(const char *s, size_t len, bool secure, uint8_t **ret, size_t *ret_size) {
        struct base16_decode_ctx ctx;
        size_t out_len;
        uint8_t *out;

        if (!s || len % 2 != 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
                        return -EINVAL;

        out = alloc_out(BASE16_DECODE_LENGTH(len), secure);
        if (!out)
                return -ENOMEM;
        base16_decode_init(&ctx);
        out_len = BASE16_DECODE_LENGTH(len);
        if (!base16_decode_update(&ctx, &out_len, out, len, s) || !base16_decode_final(&ctx)) {
                free_out(out, secure);
                return -EINVAL;
        }
        *ret = out;
        *ret_size = out_len;
        return 0;
}

int base64_decode(const char *s, size_t len, bool secure, uint8_t **ret, size_t *ret_size) {
        struct base64_decode_ctx ctx;
        size_t out_len;
        uint8_t *out;

        if (!s || len % 4 != 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                      c == '/' || c == '='))
                        return -EINVAL;
                /* Padding only at the very end. */
                if (c == '=' && i < len - 2)
                        return -EINVAL;
        }

        out = alloc_out(BASE64_DECODE_LENGTH(len), secure);
        if (!out)
                return -ENOMEM;
        base64_decode_init(&ctx);
        out_len = BASE64_DECODE_LENGTH(len);
        if (!base64_decode_update(&ctx, &out_len, out, len, s) || !base64_decode_final(&ctx)) {
                free_out(out, secure);
                return -EINVAL;
        }
        *ret = out;
        *ret_size = out_len;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;
        uint64_t mul = 1;

        if (!s || s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -ERANGE;
        switch (*end) {
        case 'K':
        case 'k':
                mul = UINT64_C(1) << 10;
                break;
        case 'M':
                mul = UINT64_C(1) << 20;
                break;
        case 'G':
                mul = UINT64_C(1) << 30;
                break;
        case 'T':
                mul = UINT64_C(1) << 40;
                break;
        }
        if (mul != 1)
                end++;
        if (*end)
                return -EINVAL;
        if (v > UINT64_MAX / mul)
                return -ERANGE;
        *ret = v * mul;
        return 0;
}

int parse_timespan(const char *s, uint64_t *ret_usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "ms", UINT64_C(1000) },      { "s", UINT64_C(1000000) }, { "min", UINT64_C(60000000) },
                { "h", UINT64_C(3600000000) }, { "", UINT64_C(1000000) },
        };
        uint64_t v = 0;
        const char *p = s;

        if (!s || !('0' <= *s && *s <= '9'))
                return -EINVAL;
        for (; '0' <= *p && *p <= '9'; p++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(p, units[i].suffix)) {
                        if (v > UINT64_MAX / units[i].usec)
                                return -ERANGE;
                        *ret_usec = v * units[i].usec;
                        return 0;
                }
        return -EINVAL;
}
