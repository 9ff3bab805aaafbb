#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The container boots with systemd as PID 1 and the suite installed, reaches the swtpm, and starts the units in
# the intended order: every installed unit comes up; TPM setup, then the configuration measurement, then the
# daemons; registration before attestation; vaults and attestation before configuration.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ns_image
ns_machine
ns_swtpm
ns_evc
ns_boot boot,order

expect=(systemd-pid1 tcti)
for u in eve-tpm-setup eve-measure-config eve-vaultd eve-register eve-attestd eve-configd; do
        if has_unit "$u.service"; then expect+=("up-$u"); fi
done
while read -r a b; do
        case "$a" in '#'* | '') continue ;; esac
        if has_unit "$a.service" && has_unit "$b.service"; then expect+=("order-$a-$b"); fi
done <"$src/tests/nspawn/guest/order-pairs"
[ "${#expect[@]}" -ge 5 ] || die "too few units installed to check an order: ${expect[*]}"
ns_expect "${expect[@]}"
finish
