#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Encrypted configuration on the node image (guest case config-credential): evc in the guest, the node's
# services as their systemd units, a consumer unit reading its secret through LoadCredential= from
# eve-configd's credential socket, another unit refused, the config stored in the dm-crypt config vault
# without plaintext.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1
# --net: eve-configd wants network-online.target; without a link the boot waits for it (2 min).
vm_boot config-credential --net --timeout 800
vm_expect booted tpm-setup evc-up vaultd registered uuid-stored attested \
        config-vault-unlocked configd-fetched \
        consumer-credential other-refused refusal-logged config-stored stored-no-plaintext
finish
