/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "encoding.h"
#include "memory-util.h"
#include "tests.h"

/* RFC 4648 §10 vectors. */
static const struct {
        const char *plain, *b64, *hex;
} vectors[] = {
        { "", "", "" },
        { "f", "Zg==", "66" },
        { "fo", "Zm8=", "666f" },
        { "foo", "Zm9v", "666f6f" },
        { "foob", "Zm9vYg==", "666f6f62" },
        { "fooba", "Zm9vYmE=", "666f6f6261" },
        { "foobar", "Zm9vYmFy", "666f6f626172" },
};

TEST(rfc4648_vectors) {
        for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
                _cleanup_free_ char *b = base64_encode(vectors[i].plain, strlen(vectors[i].plain));
                _cleanup_free_ char *h = hex_encode(vectors[i].plain, strlen(vectors[i].plain));
                _cleanup_free_ uint8_t *db = NULL, *dh = NULL;
                size_t nb, nh;

                ASSERT_STREQ(b, vectors[i].b64);
                ASSERT_STREQ(h, vectors[i].hex);
                ASSERT_OK(base64_decode(b, strlen(b), false, &db, &nb));
                ASSERT_OK(hex_decode(h, strlen(h), false, &dh, &nh));
                ASSERT_MEMEQ(db, nb, vectors[i].plain, strlen(vectors[i].plain));
                ASSERT_MEMEQ(dh, nh, vectors[i].plain, strlen(vectors[i].plain));
        }
}

TEST(binary_round_trip) {
        uint8_t buf[256];
        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (uint8_t) (255 - i);
        for (size_t n = 0; n <= sizeof buf; n += 17) {
                _cleanup_free_ char *b = base64_encode(buf, n);
                uint8_t *d = NULL;
                size_t nd;

                ASSERT_OK(base64_decode(b, strlen(b), true, &d, &nd));
                ASSERT_MEMEQ(d, nd, buf, n);
                ASSERT_GE(eve_secret_size(d), nd); /* secret memory, sized for the upper bound */
                eve_secret_free(d);
        }
}

TEST(hex_upper_case_accepted) {
        _cleanup_free_ uint8_t *d = NULL;
        size_t n;

        ASSERT_OK(hex_decode("DEADbeef", 8, false, &d, &n));
        ASSERT_MEMEQ(d, n, "\xde\xad\xbe\xef", 4);
}

TEST(bad_input_refused) {
        static const char *bad_b64[] = { "Zg=", "Z===", "Zm9v\n", "Zm 9", "Zm9v!A==", "=Zm9", "Zg==Zg==" };
        static const char *bad_hex[] = { "6", "6g", "66 6f", "0x66", "66\n" };
        uint8_t *d = NULL;
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(bad_b64); i++)
                ASSERT_ERROR(base64_decode(bad_b64[i], strlen(bad_b64[i]), false, &d, &n), EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(bad_hex); i++)
                ASSERT_ERROR(hex_decode(bad_hex[i], strlen(bad_hex[i]), false, &d, &n), EINVAL);
        ASSERT_NULL(d);
}

TEST(parse_timespan_as_people_write_it) {
        uint64_t v = 0;

        ASSERT_OK(parse_timespan("100ms", &v));
        ASSERT_EQ(v, 100000);
        ASSERT_OK(parse_timespan("5s", &v));
        ASSERT_EQ(v, 5000000);
        ASSERT_OK(parse_timespan("60", &v));
        ASSERT_EQ(v, 60000000);
        ASSERT_OK(parse_timespan("10min", &v));
        ASSERT_EQ(v, 600000000);
        ASSERT_OK(parse_timespan("2h", &v));
        ASSERT_EQ(v, UINT64_C(7200000000));
        ASSERT_ERROR(parse_timespan("", &v), EINVAL);
        ASSERT_ERROR(parse_timespan("s", &v), EINVAL);
        ASSERT_ERROR(parse_timespan("-1s", &v), EINVAL);
        ASSERT_ERROR(parse_timespan("1.5s", &v), EINVAL);
        ASSERT_ERROR(parse_timespan("5 s", &v), EINVAL);
        ASSERT_ERROR(parse_timespan("5d", &v), EINVAL);
        ASSERT_ERROR(parse_timespan("99999999999999999999", &v), ERANGE);
        ASSERT_ERROR(parse_timespan("18446744073709h", &v), ERANGE);
}

DEFINE_TEST_MAIN
