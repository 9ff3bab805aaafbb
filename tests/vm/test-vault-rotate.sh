#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Vault key rotation killed at every crash point of the worker (tests/vm/guest/cases/vault-rotate.sh), one
# boot: after each kill at most two keyslots, stock systemd-cryptsetup and then eve-vault-worker open the
# volume (the worker rolling the rotation back or forward), and the file inside keeps its checksum. Held
# rotations (kept until the controller confirms the new escrow) and their confirmation too.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

plain=(started slot-add slot-added seal sealed escrowed removed)
names=(booted tpm-setup vault-create vault-unlock mapped ext4 write lock)
killed() { names+=("kill-$1" "two-keyslots-$1" "stock-$1" "stock-$1-mount" "stock-$1-sum" "stock-$1-detach"); }
reopened() { names+=("open-$1" "open-$1-sum" "open-$1-lock"); }
for s in "${plain[@]}"; do killed "$s"; reopened "$s"; done
killed held-escrowed; reopened held-escrowed; killed confirm; reopened confirm
names+=(confirmed rotate-held rotate-refused-third-key still-two-keyslots confirm-rotated)
reopened rotated
names+=(stock-rotated stock-rotated-mount stock-rotated-sum stock-rotated-detach)

# Every crash point of a key change the worker has must be one the guest case kills at. The other three are
# killed on the host: "formatted" (a creation cut short: test-vault-converge), "recovery-slot-added" (adding a
# recovery key: test-vault-recovery) and "activation-child" (an unlock's mapping process, no key change:
# test-vault-worker).
have=$(grep -o 'vault_crash_point("[^"]*")' "$src/services/vaultd/vault-core.c" | cut -d'"' -f2 |
        grep -vx -e formatted -e recovery-slot-added -e activation-child | sort -u)
missing=$(comm -23 <(echo "$have") <(printf '%s\n' "${plain[@]}" confirm | sort -u) | tr '\n' ' ')
if [ -n "$have" ] && [ -z "$missing" ]; then
        passed=$((passed + 1)); echo "ok crash-points-covered"
else
        failed=$((failed + 1)); echo "not ok crash-points-covered: not killed at: ${missing:-(no crash points found)}"
fi

vm_image
vm_machine 1
vm_boot vault-rotate --timeout 600   # ~10 kills, each followed by two unlocks: ~3-4 min of cases under TCG
vm_expect "${names[@]}"
finish
