/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "paths.h"
#include "tests.h"

TEST(defaults) {
        unsetenv("EVE_ROOT");
        unsetenv("EVE_CONFIG_DIR");
        eve_paths_reset();
        ASSERT_STREQ(eve_path(EVE_PATH_CONFIG), "/config");
        ASSERT_STREQ(eve_path(EVE_PATH_VAULT), "/persist/vault");
        ASSERT_STREQ(eve_path(EVE_PATH_RUN), "/run/eve");
}

TEST(root_prefix_and_overrides) {
        _cleanup_free_ char *j = NULL;

        setenv("EVE_ROOT", "/tmp/r", 1);
        setenv("EVE_RUN_DIR", "/tmp/run", 1);
        eve_paths_reset();
        ASSERT_STREQ(eve_path(EVE_PATH_CONFIG), "/tmp/r/config");
        ASSERT_STREQ(eve_path(EVE_PATH_RUN), "/tmp/run");
        ASSERT_OK(eve_path_set(EVE_PATH_CONFIG, "/cmdline"));
        ASSERT_STREQ(eve_path(EVE_PATH_CONFIG), "/cmdline");
        j = eve_path_join(EVE_PATH_CONFIG, "server");
        ASSERT_STREQ(j, "/cmdline/server");
        ASSERT_OK(eve_path_set(EVE_PATH_CONFIG, NULL));
        ASSERT_STREQ(eve_path(EVE_PATH_CONFIG), "/tmp/r/config");
        ASSERT_ERROR(eve_path_set(_EVE_PATH_MAX, "/x"), EINVAL);
        ASSERT_STREQ(eve_path_env_name(EVE_PATH_CERTS), "EVE_CERTS_DIR");
        unsetenv("EVE_ROOT");
        unsetenv("EVE_RUN_DIR");
        eve_paths_reset();
}

TEST(tcti) {
        unsetenv("EVE_TPM2_TCTI");
        ASSERT_STREQ(eve_tcti(), "device:/dev/tpmrm0");
        setenv("EVE_TPM2_TCTI", "swtpm:path=/tmp/x", 1);
        ASSERT_STREQ(eve_tcti(), "swtpm:path=/tmp/x");
        unsetenv("EVE_TPM2_TCTI");
}

DEFINE_TEST_MAIN
