/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pure TPM helpers, no TPM: PCR mask parsing and the PolicyPCR digest computed in software, against digests
 * that a TPM produced (tpm2_createpolicy --policy-pcr on swtpm; the first is also the tpm2-policy-hash of the
 * systemd 254 token in facts/systemd-tpm2-token.md, sealed to an all-zero PCR 7). */
#include "encoding.h"
#include "tests.h"
#include "tpm2-util.h"

static void assert_mask(const char *s, uint32_t expected) {
        uint32_t m = 0xdeadbeef;
        ASSERT_OK(tpm2_pcr_mask_from_string(s, &m));
        ASSERT_EQ(m, expected);
}

TEST(pcr_mask_parse) {
        uint32_t m;

        assert_mask("", 0);
        assert_mask("7", 1U << 7);
        assert_mask("0,7", (1U << 0) | (1U << 7));
        assert_mask("0+7", (1U << 0) | (1U << 7));
        assert_mask("0-4,6-14", 0x7fdf);
        assert_mask("23", 1U << 23);
        assert_mask("0-23", TPM2_PCRS_MASK);

        ASSERT_ERROR(tpm2_pcr_mask_from_string("24", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string("7,", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string(",7", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string("5-3", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string("1-", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string("0007", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string("a", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string(" 1", &m), EINVAL);
        ASSERT_ERROR(tpm2_pcr_mask_from_string(NULL, &m), EINVAL);
}

TEST(pcr_mask_format) {
        _cleanup_free_ char *a = tpm2_pcr_mask_to_string(0), *b = tpm2_pcr_mask_to_string(0x7fdf),
                            *c = tpm2_pcr_mask_to_string(TPM2_PCRS_MASK);
        uint32_t m;

        ASSERT_STREQ(a, "");
        ASSERT_STREQ(b, "0,1,2,3,4,6,7,8,9,10,11,12,13,14");
        ASSERT_OK(tpm2_pcr_mask_from_string(c, &m));
        ASSERT_EQ(m, TPM2_PCRS_MASK);
}

static void assert_digest(uint32_t mask, const uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], const char *hex) {
        _cleanup_free_ uint8_t *want = NULL;
        uint8_t got[TPM2_SHA256_SIZE];
        size_t n = 0;

        ASSERT_OK(hex_decode(hex, strlen(hex), false, &want, &n));
        ASSERT_OK(tpm2_policy_pcr_digest(mask, values, got));
        ASSERT_MEMEQ(got, sizeof(got), want, n);
}

TEST(policy_pcr_digest_matches_tpm) {
        uint8_t v[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {};
        _cleanup_free_ uint8_t *pcr14 = NULL;
        size_t n = 0;
        const char *pcr14_hex = "d3c759f5b2f2c9b80d1c0275b8c64bdc7635c5fd9c0a3ce879107697b3143223";

        assert_digest(1U << 7, v, "8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b");

        /* PCR 14 after one extend with 32 bytes of 0x14; PCRs 0 and 7 zero. */
        ASSERT_OK(hex_decode(pcr14_hex, strlen(pcr14_hex), false, &pcr14, &n));
        memcpy(v[14], pcr14, TPM2_SHA256_SIZE);
        assert_digest((1U << 0) | (1U << 7) | (1U << 14), v,
                      "653cd6c2669ea4978d8ef54a5fe5fe8b9c7c0944de91a141b9e7b0b8bc56d267");

        /* Values of unselected PCRs do not matter. */
        memset(v[3], 0xff, TPM2_SHA256_SIZE);
        assert_digest((1U << 0) | (1U << 7) | (1U << 14), v,
                      "653cd6c2669ea4978d8ef54a5fe5fe8b9c7c0944de91a141b9e7b0b8bc56d267");

        ASSERT_ERROR(tpm2_policy_pcr_digest(1U << 24, v, (uint8_t[32]) {}), EINVAL);
}

DEFINE_TEST_MAIN
