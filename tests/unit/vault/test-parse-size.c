/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* parse_size(): the sizes eve-vaultd's options and evectl vault create take. */
#include "encoding.h"
#include "tests.h"

TEST(sizes) {
        uint64_t v = 0;

        ASSERT_OK(parse_size("33554432", &v));
        ASSERT_EQ(v, 33554432);
        ASSERT_OK(parse_size("512M", &v));
        ASSERT_EQ(v, UINT64_C(512) << 20);
        ASSERT_OK(parse_size("2G", &v));
        ASSERT_EQ(v, UINT64_C(2) << 30);
        ASSERT_OK(parse_size("64k", &v));
        ASSERT_EQ(v, 65536);
        ASSERT_OK(parse_size("1T", &v));
        ASSERT_EQ(v, UINT64_C(1) << 40);
        ASSERT_ERROR(parse_size("", &v), EINVAL);
        ASSERT_ERROR(parse_size("-1", &v), EINVAL);
        ASSERT_ERROR(parse_size(" 1", &v), EINVAL);
        ASSERT_ERROR(parse_size("12MB", &v), EINVAL);
        ASSERT_ERROR(parse_size("1X", &v), EINVAL);
        ASSERT_ERROR(parse_size("99999999999999999999", &v), ERANGE);
        ASSERT_ERROR(parse_size("99999999999T", &v), ERANGE);
        ASSERT_EQ(v, UINT64_C(1) << 40); /* untouched on failure */
}

DEFINE_TEST_MAIN
