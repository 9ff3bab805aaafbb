# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 7, a boot after which the controller must give nothing (the host made this node report another
# location, or marked it stolen): the software is unchanged, so the `tpm` vaults open through the TPM, but evc
# refuses the quote, no controller share arrives, and the `tpm+controller` vault stays locked.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

p=$(cred eve.vm.prefix)
check booted wait_booted
check "$p-image-unlocked" wait_for 60 vault_is image Unlocked
check "$p-image-tpm" test "$(vault_prop image UnlockMethod)" = tpm
quote_failed() { [ "$(attest_prop Attempts)" -ge 2 ] && attest_prop LastError | grep -q QUOTE_FAILED; }
check "$p-quote-refused" wait_for 90 quote_failed || note_node
check "$p-theft-locked" vault_is theft Locked
check "$p-theft-not-mapped" test ! -e /dev/mapper/eve-vault-theft
note "vault theft: $(vault_prop theft State) '$(vault_prop theft LastError)'"
note_node
