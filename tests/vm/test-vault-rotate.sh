#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Vault key rotation killed at every journalled step (tests/vm/guest/cases/vault-rotate.sh), one boot: after
# each kill at most two keyslots, stock systemd-cryptsetup and then eve-vault-worker open the volume (the worker
# rolling the rotation back or forward), and the file inside keeps its checksum.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

steps=(started slot-add slot-added seal sealed escrowed removed)
names=(booted tpm-setup vault-create vault-map mapped mkfs mount write close)
for s in "${steps[@]}"; do
        names+=("kill-$s" "two-keyslots-$s")
        for t in "stock-$s" "open-$s"; do names+=("$t" "$t-mount" "$t-sum"); done
        names+=("stock-$s-detach" "open-$s-close")
done
names+=(rotate open-rotated open-rotated-mount open-rotated-sum open-rotated-close
        stock-rotated stock-rotated-mount stock-rotated-sum stock-rotated-detach)

# The crash points the worker has must be the ones the guest case kills at.
have=$(grep -o 'vault_crash_point("[^"]*")' "$src/services/vaultd/vault-core.c" | cut -d'"' -f2 | tr '\n' ' ')
if [ "$have" = "${steps[*]} " ]; then
        passed=$((passed + 1)); echo "ok crash-points-covered"
else
        failed=$((failed + 1)); echo "not ok crash-points-covered: vault-core.c has '$have', the case kills at '${steps[*]}'"
fi

vm_image
vm_machine 1
vm_boot vault-rotate
vm_expect "${names[@]}"
finish
