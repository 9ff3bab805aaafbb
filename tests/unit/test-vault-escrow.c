/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The escrow blob without a TPM: AttestVolumeKeyData wire format (round trip, unknown fields skipped, refusals
 * with reasons), AES-256-GCM wrap under a given ZGen value (fresh nonce each time; another value, a flipped bit
 * or a wrong digest refused). */
#include "memory-util.h"
#include "tests.h"
#include "vault-escrow.h"

TEST(wire_format) {
        _cleanup_free_ uint8_t *p = NULL;
        EscrowData d = { .version = 1 }, back;
        const char *reason = NULL;
        uint8_t with_unknown[200];
        size_t n;

        memset(d.encrypted_key, 0xab, sizeof(d.encrypted_key));
        memset(d.digest_sha256, 0xcd, sizeof(d.digest_sha256));
        ASSERT_OK(escrow_data_pack(&d, &p, &n));
        /* field 1 (LEN 60), field 2 (LEN 32), field 5 (varint 1): what protobuf-c writes for the same message. */
        ASSERT_EQ(n, 2 + 60 + 2 + 32 + 2);
        ASSERT_EQ(p[0], 0x0a);
        ASSERT_EQ(p[1], 60);
        ASSERT_EQ(p[62], 0x12);
        ASSERT_EQ(p[63], 32);
        ASSERT_EQ(p[96], 0x28);
        ASSERT_EQ(p[97], 1);
        ASSERT_OK(escrow_data_unpack(p, n, &back, &reason));
        ASSERT_MEMEQ(&back, sizeof(back), &d, sizeof(d));

        /* Unknown fields (reserved 3 as varint, 4 as LEN) are skipped. */
        memcpy(with_unknown, "\x18\x07\x22\x02hi", 6);
        memcpy(with_unknown + 6, p, n);
        ASSERT_OK(escrow_data_unpack(with_unknown, n + 6, &back, NULL));

        /* Refusals. */
        ASSERT_ERROR(escrow_data_unpack(p, 0, &back, &reason), EBADMSG);
        ASSERT_ERROR(escrow_data_unpack(p, n - 1, &back, &reason), EBADMSG);
        ASSERT_NOT_NULL(reason);
        ASSERT_ERROR(escrow_data_unpack(p, n - 2, &back, &reason), EBADMSG); /* no version: legacy */
        ASSERT_NOT_NULL(strstr(reason, "legacy"));
        p[97] = 2;
        ASSERT_ERROR(escrow_data_unpack(p, n, &back, &reason), EBADMSG);
        ASSERT_STREQ(reason, "escrow blob: unknown version");
        p[97] = 1;
        p[1] = 59;
        ASSERT_ERROR(escrow_data_unpack(p, n, &back, &reason), EBADMSG);
        ASSERT_NOT_NULL(strstr(reason, "encrypted_key"));
        ASSERT_ERROR(escrow_data_unpack("\x0f", 1, &back, &reason), EBADMSG);
        ASSERT_ERROR(escrow_data_unpack("\x0a\xff\xff\xff\xff\x0f", 6, &back, &reason), EBADMSG);
}

TEST(wrap_and_unwrap) {
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        _cleanup_secret_ uint8_t *out = NULL;
        uint8_t zx[32], other[32], secret[32];
        const char *reason = NULL;
        size_t an, bn;

        memset(zx, 0x42, sizeof(zx));
        memset(other, 0x43, sizeof(other));
        for (size_t i = 0; i < sizeof(secret); i++)
                secret[i] = (uint8_t) (i * 7);
        ASSERT_OK(escrow_seal_with(zx, secret, &a, &an));
        ASSERT_OK(escrow_seal_with(zx, secret, &b, &bn));
        ASSERT_EQ(an, bn);
        ASSERT_TRUE(memcmp(a, b, an) != 0); /* random nonce */

        ASSERT_OK(escrow_open_with(zx, a, an, &out, &reason));
        ASSERT_MEMEQ(out, 32, secret, 32);
        out = eve_secret_free(out);

        ASSERT_ERROR(escrow_open_with(other, a, an, &out, &reason), EKEYREJECTED);
        ASSERT_NOT_NULL(strstr(reason, "another TPM"));
        a[20] ^= 1; /* inside the ciphertext */
        ASSERT_ERROR(escrow_open_with(zx, a, an, &out, &reason), EKEYREJECTED);
        a[20] ^= 1;
        a[70] ^= 1; /* inside digest_sha256 */
        ASSERT_ERROR(escrow_open_with(zx, a, an, &out, &reason), EBADMSG);
        ASSERT_NOT_NULL(strstr(reason, "digest"));
        ASSERT_NULL(out);
}

DEFINE_TEST_MAIN;
