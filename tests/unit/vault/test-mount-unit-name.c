/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mount unit eve-vaultd starts and stops for a vault: its name as systemd derives it from the mount
 * point (units/persist-vault.mount, persist-vaults-config.mount; "systemd-escape --path --suffix=mount"). */
#include "tests.h"
#include "vault-core.h"

static void check(const char *path, const char *unit) {
        _cleanup_free_ char *u = vault_mount_unit_name(path);
        ASSERT_STREQ(u, unit);
}

TEST(names) {
        check("/persist/vault", "persist-vault.mount");
        check("/persist/vaults/config", "persist-vaults-config.mount");
        check("/persist/vaults/app-1", "persist-vaults-app\\x2d1.mount");
        check("//persist//vault/", "persist-vault.mount");
        check("/persist/vaults/.x", "persist-vaults-.x.mount");
        check("/.x", "\\x2ex.mount");
        check("/a b", "a\\x20b.mount");
}

DEFINE_TEST_MAIN
