#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The real system bus of the container with the installed policy and activation files: reads open to everyone,
# changes refused to ordinary users with the service's named error and allowed to eve-admin, names owned only by
# the service's user; every daemon started again by bus activation after it was stopped.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ns_image
ns_machine
ns_swtpm
ns_evc
ns_boot bus,activation

expect=(test-users)
for s in Vault:eve-vaultd Attest:eve-attestd Config:eve-configd; do
        if ! has_unit "${s#*:}.service"; then continue; fi
        svc=${s%%:*}
        expect+=("read-$svc" "denied-$svc" "admin-$svc" "own-denied-$svc" "own-allowed-$svc" "activation-$svc")
done
[ "${#expect[@]}" -gt 0 ] || die "no bus daemon is installed"
ns_expect "${expect[@]}"
finish
