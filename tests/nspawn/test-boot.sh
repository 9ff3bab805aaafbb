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
        has_unit "$u.service" && expect+=("up-$u")
done
pair() { has_unit "$1.service" && has_unit "$2.service" && expect+=("order-$1-$2"); return 0; }
pair eve-tpm-setup eve-measure-config
for d in eve-vaultd eve-register eve-attestd eve-configd; do
        pair eve-tpm-setup "$d"
        pair eve-measure-config "$d"
done
pair eve-register eve-attestd
pair eve-vaultd eve-attestd
pair eve-attestd eve-configd
pair eve-vaultd eve-configd
[ "${#expect[@]}" -ge 5 ] || die "too few units installed to check an order: ${expect[*]}"
ns_expect "${expect[@]}"
finish
