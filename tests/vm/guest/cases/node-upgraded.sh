# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 3, the boot after the approved upgrade: the same software (PCR 8 measured as in the boot before),
# the controller unreachable: both vaults open through the TPM again, re-sealed by that boot.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

check booted wait_booted
for v in image config; do
        check "upgraded-vault-$v-unlocked" wait_for 60 vault_is "$v" Unlocked || note_node
        check "upgraded-vault-$v-tpm" test "$(vault_prop "$v" UnlockMethod)" = tpm
done
check upgraded-not-attested sh -c "[ '$(attest_prop State)' != 7 ]"
check upgraded-data-kept grep -qxF "$(cred eve.vm.marker)" /persist/vault/marker
note_node
