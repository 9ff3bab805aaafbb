# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenarios 2 (reboot) and 6 (controller unreachable), one boot: the host cut the path to evc before it. Both
# default vaults open through the TPM alone, long before any attestation; the stored config still serves the
# consumer's credential; attestation fails and backs off. Then the host restores the path (want controller):
# attestation completes and a new integrity token replaces the first boot's. Scenario 8 with the daemon's own
# vault: once locked, stock systemd-cryptsetup opens the "image" vault through its systemd-tpm2 token.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

value=$(cred eve.vm.secret)
check booted wait_booted
for v in image config; do
        check "offline-vault-$v-unlocked" wait_for 60 vault_is "$v" Unlocked ||
                note "eve-vaultd: $(journal_tail eve-vaultd.service 12)"
        check "offline-vault-$v-tpm" test "$(vault_prop "$v" UnlockMethod)" = tpm
done
check offline-not-attested sh -c "[ '$(attest_prop State)' != 7 ]"
check offline-unreachable test "$(attest_prop ControllerReachable)" = false
check offline-data-kept grep -qxF "$(cred eve.vm.marker)" /persist/vault/marker
# Backing off: several failed rounds, each with its reason, none completing.
three_attempts() { [ "$(attest_prop Attempts)" -ge 3 ]; }
check offline-backoff wait_for 60 three_attempts || note_node
check offline-last-error test -n "$(attest_prop LastError)"
# The config comes from the config vault: the consumer gets its credential with the controller away.
# shellcheck disable=SC2016
got=$(systemd-run --unit=eve-vm-consumer --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'cat "$CREDENTIALS_DIRECTORY/wifi.office"')
if [ -n "$value" ] && [ "$got" = "$value" ]; then
        ok offline-credential
else
        fail offline-credential "got '$got'"
        note "configd: origin $(config_prop Origin), secrets $(config_prop Secrets), storage '$(config_prop StorageState)', \
vault '$(config_prop VaultState)', refused $(config_prop CredentialsRefused); $(journal_tail eve-configd.service 10)"
fi
note_node
attest_unlock=$(journal_at eve-vaultd.service 'config.*[Uu]nlocked')
note "seconds since boot: vault config unlocked at ${attest_unlock:-?}, now $(cut -d' ' -f1 /proc/uptime)"

want controller
check reattested wait_for 120 attested || { note_node; note "eve-attestd: $(journal_tail eve-attestd.service)"; }
token=$(token_hex)
check new-token sh -c "[ -n '$token' ] && [ '$token' != '$(cat "$EVE_VM_STATE/token" 2>/dev/null)' ]"
echo "$token" >"$EVE_VM_STATE/token"

# Scenario 8: stock tools on eve-vaultd's vault.
img=/persist/vault-images/image.img
check stock-luksdump-tokens sh -c "cryptsetup luksDump '$img' | grep -q 'systemd-tpm2' &&
        cryptsetup luksDump '$img' | grep -q 'eve-vault'"
check lock-image busctl --system call org.eve.Vault /org/eve/Vault/vault/image org.eve.Vault.Vault Lock
wait_for 60 sh -c '! test -e /dev/mapper/eve-vault-image'
check stock-attach /usr/lib/systemd/systemd-cryptsetup attach eve-vm-stock "$img" - tpm2-device=auto,headless=1
mkdir -p /run/eve-vm-stock
check stock-mount-read sh -c "mount -o ro /dev/mapper/eve-vm-stock /run/eve-vm-stock &&
        grep -qxF '$(cred eve.vm.marker)' /run/eve-vm-stock/marker"
umount /run/eve-vm-stock 2>/dev/null
check stock-detach /usr/lib/systemd/systemd-cryptsetup detach eve-vm-stock
