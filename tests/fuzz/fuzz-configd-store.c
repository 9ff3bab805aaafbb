/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: eve-configd's stored configuration file (configd-store.c: "EVECFG1\n" ‖ length ‖ SHA-256 ‖
 * packed ConfigResponse). The first byte picks the path:
 *   0  the bytes as the file: store_decode either refuses them with a reason or gives a config that encodes
 *      to a file that decodes again to the same payload;
 *   1  the bytes as the payload of a well-formed file (right magic, length and digest), so the fuzzer
 *      reaches the ConfigResponse parser behind the digest; then the same round trip. */
#include <nettle/sha2.h>
#include <stdlib.h>

#include "configd-store.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const uint8_t *file, size_t size) {
        _cleanup_(config_freep) Config *c = NULL, *again = NULL;
        _cleanup_free_ uint8_t *enc = NULL, *enc2 = NULL;
        const char *why = NULL;
        size_t n, n2;
        int r;

        r = store_decode(file, size, &c, &why);
        if (r < 0) {
                if (r != -EBADMSG || !why)
                        abort();
                return;
        }
        /* What was read is what would be written back (superseded cleartext already wiped). */
        if (store_encode(c, &enc, &n) < 0)
                abort();
        if (store_decode(enc, n, &again, &why) < 0)
                abort();
        if (again->n_secrets != c->n_secrets)
                abort();
        for (size_t i = 0; i < c->n_secrets; i++)
                if (!streq(c->secrets[i].name, again->secrets[i].name))
                        abort();
        if (store_encode(again, &enc2, &n2) < 0 || n2 != n || memcmp(enc, enc2, n) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *file = NULL;
        struct sha256_ctx h;
        size_t n;

        if (size < 1 || size > CONFIG_SIZE_MAX)
                return 0;
        log_set_max_level(LOG_CRIT);
        if (data[0] % 2 == 0) {
                round_trip(data + 1, size - 1);
                return 0;
        }
        n = size - 1;
        file = malloc(STORE_HEADER_SIZE + n);
        if (!file)
                abort();
        memcpy(file, STORE_MAGIC, STORE_MAGIC_SIZE);
        for (unsigned i = 0; i < 8; i++)
                file[STORE_MAGIC_SIZE + i] = (uint8_t) ((uint64_t) n >> (8 * i));
        sha256_init(&h);
        sha256_update(&h, n, data + 1);
        sha256_digest(&h, 32, file + STORE_MAGIC_SIZE + 8);
        memcpy(file + STORE_HEADER_SIZE, data + 1, n);
        round_trip(file, STORE_HEADER_SIZE + n);
        return 0;
}
