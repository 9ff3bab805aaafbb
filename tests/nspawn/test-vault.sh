#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Vaults without device-mapper (a container): eve-vaultd says so for each default vault, and units that need a
# vault are held by systemd instead of starting without it.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ns_image
has_unit eve-vaultd.service || die "eve-vaultd is not built"
ns_machine
ns_swtpm
ns_evc
ns_boot vault
ns_expect dm-unavailable-image dm-unavailable-config app-held-mount app-held-target
finish
