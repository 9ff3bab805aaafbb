/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* EVE's rules for a sealing PCR list (facts: ValidatePolicyPcr), as vault_pcr_policy_check() applies them to
 * what a caller or the controller asks for. */
#include "tests.h"
#include "vault-core.h"

#define PCR(n) (UINT32_C(1) << (n))

TEST(pcr_policy_follows_eve_rules) {
        const char *why = NULL;

        ASSERT_OK(vault_pcr_policy_check(VAULT_DEFAULT_PCRS, &why));
        ASSERT_NULL(why);
        ASSERT_OK(vault_pcr_policy_check(PCR(0), &why));           /* {0} alone is valid */
        ASSERT_OK(vault_pcr_policy_check(0xffff & ~PCR(5), &why)); /* 15 PCRs: the most */

        ASSERT_ERROR(vault_pcr_policy_check(PCR(1) | PCR(7), &why), EINVAL);
        ASSERT_STREQ(why, "PCR 0 is required");
        ASSERT_ERROR(vault_pcr_policy_check(PCR(0) | PCR(5), &why), EINVAL);
        ASSERT_NOT_NULL(strstr(why, "PCR 5"));
        ASSERT_ERROR(vault_pcr_policy_check(PCR(0) | PCR(16), &why), EINVAL); /* quotes cover 0-15 only */
        ASSERT_NOT_NULL(strstr(why, "0-15"));
        ASSERT_ERROR(vault_pcr_policy_check(PCR(0) | PCR(23), &why), EINVAL);
        ASSERT_ERROR(vault_pcr_policy_check(0, &why), EINVAL);
}

DEFINE_TEST_MAIN
