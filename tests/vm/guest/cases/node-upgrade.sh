# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 3, approved upgrade, first boot of the new software: PCR 8 moved again, to the value the
# administrator announced with `evc upgrade expect` before this boot. The TPM refuses the vaults' keys; the quote
# matches the announcement, so evc trusts the node again and releases the escrowed keys; eve-vaultd opens both
# vaults with them and re-seals them to today's PCRs (a new escrow, confirmed by the controller). The data is
# intact and the consumer gets its credential again.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

value=$(cred eve.vm.secret)
check booted wait_booted
check upgrade-attested wait_for 120 attested || { note_node; note "eve-attestd: $(journal_tail eve-attestd.service)"; }
for v in image config; do
        check "upgrade-vault-$v-unlocked" wait_for 90 vault_is "$v" Unlocked || note_node
        check "upgrade-vault-$v-by-controller" test "$(vault_prop "$v" UnlockMethod)" = controller
        check "upgrade-vault-$v-escrow-confirmed" wait_for 60 sh -c \
                "busctl --system get-property org.eve.Vault /org/eve/Vault/vault/$v org.eve.Vault.Vault EscrowState |
                grep -q confirmed"
done
check upgrade-data-kept grep -qxF "$(cred eve.vm.marker)" /persist/vault/marker
has_secret() {
        busctl --system call org.eve.Config /org/eve/Config org.eve.Config Refresh >/dev/null 2>&1
        busctl --system call org.eve.Config /org/eve/Config org.eve.Config ListSecrets | grep -q wifi.office
}
check upgrade-config wait_for 60 has_secret
# shellcheck disable=SC2016
got=$(systemd-run --unit=eve-vm-consumer --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'cat "$CREDENTIALS_DIRECTORY/wifi.office"')
if [ -n "$value" ] && [ "$got" = "$value" ]; then ok upgrade-credential; else fail upgrade-credential "got '$got'"; fi
note_node
