#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `evectl status` in the container, with every daemon running against the swtpm and evc: a complete summary
# (device, TPM, PCR 14, vaults, attestation, configuration), for root, for an ordinary user, and as JSON.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ns_image
for u in eve-tpm-setup eve-measure-config eve-register eve-vaultd eve-attestd eve-configd; do
        has_unit "$u.service" || die "$u is not built: the summary would not be complete"
done
ns_machine
ns_swtpm
ns_evc
ns_boot status
ns_expect status-root status-user status-json
finish
