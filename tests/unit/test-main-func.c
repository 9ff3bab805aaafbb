/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fixtures.h"

static int run_helper(const char *arg, char **out) {
        char *argv[] = { (char *) MAIN_FUNC_HELPER, (char *) arg, NULL };
        return test_run(argv, out);
}

TEST(negative_errno_is_failure) {
        ASSERT_EQ(run_helper("-5", NULL), 1);
}

TEST(zero_is_success_and_positive_passes_through) {
        ASSERT_EQ(run_helper("0", NULL), 0);
        ASSERT_EQ(run_helper("3", NULL), 3);
}

TEST(logs_carry_the_program_name) {
        /* test_run() captures stdout only; the helper logs to stderr, so route it through sh. */
        char *argv[] = { (char *) "sh", (char *) "-c", (char *) MAIN_FUNC_HELPER " -5 2>&1", NULL };
        _cleanup_free_ char *out = NULL;

        ASSERT_EQ(test_run(argv, &out), 1);
        ASSERT_STREQ(out, "main-func-helper: Failing as asked.\n");
}

DEFINE_TEST_MAIN
