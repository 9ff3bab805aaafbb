# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 1, first boot of a node (docs/TESTING.md): the node's services as their systemd units, evc on the
# host reached only through the guestfwd. eve-tpm-setup makes the TPM identity, eve-register onboards,
# eve-vaultd creates and seals the default vaults and mounts them, eve-attestd attests (evc records the
# baseline) and escrows the vault keys; the host then sets a Wi-Fi secret (want secret), eve-configd fetches it,
# stores the config in the config vault with the secret still encrypted, and a consumer unit gets the plaintext
# through LoadCredential= from /run/eve/credentials.sock while another unit is refused.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

value=$(cred eve.vm.secret)
check booted wait_booted
check systemd-254 test "$(systemctl --version | awk 'NR==1 {print $2}')" -ge 254
check pcrs-measured pcrs_nonzero 0 4 7
check net-restricted sh -c "! timeout 5 bash -c 'exec 4<>/dev/tcp/10.0.2.2/$(cred eve.vm.hostport)' 2>/dev/null"

# Identity in the TPM: a device certificate, no software key.
check tpm-identity sh -c 'test -s /config/device.cert.pem && ! test -e /config/device.key.pem' ||
        note "eve-tpm-setup: $(journal_tail eve-tpm-setup.service)"
check registered wait_for 120 test -s /persist/status/uuid || note "eve-register: $(journal_tail eve-register.service)"
check attested wait_for 120 attested || { note_node; note "eve-attestd: $(journal_tail eve-attestd.service)"; }
token=$(token_hex)
check integrity-token test -n "$token"
echo "$token" >"$EVE_VM_STATE/token"

for v in image config; do
        check "vault-$v-unlocked" wait_for 60 vault_is "$v" Unlocked ||
                note "eve-vaultd: $(journal_tail eve-vaultd.service 12)"
        check "vault-$v-tpm" test "$(vault_prop "$v" UnlockMethod)" = tpm
        check "vault-$v-escrow-confirmed" wait_for 60 sh -c \
                "busctl --system get-property org.eve.Vault /org/eve/Vault/vault/$v org.eve.Vault.Vault EscrowState |
                grep -q confirmed"
done
check vault-image-mounted mounted /dev/mapper/eve-vault-image /persist/vault
check vault-config-mounted mounted /dev/mapper/eve-vault-config /persist/vaults/config
# Data for the next boots (and for the stolen-disk check: the host searches the disk for this marker).
vault_write() { cred eve.vm.marker >/persist/vault/marker && echo >>/persist/vault/marker && sync; }
check vault-write vault_write

# The secret: the administrator sets it now that the device is known.
want secret
has_secret() { busctl --system call org.eve.Config /org/eve/Config org.eve.Config ListSecrets | grep -q wifi.office; }
refresh_until_secret() {
        busctl --system call org.eve.Config /org/eve/Config org.eve.Config Refresh >/dev/null 2>&1
        has_secret
}
check configd-fetched wait_for 90 refresh_until_secret || note "eve-configd: $(journal_tail eve-configd.service)"

# The consumer unit: LoadCredential= from the socket, as an unprivileged dynamic user.
# shellcheck disable=SC2016
got=$(systemd-run --unit=eve-vm-consumer --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'cat "$CREDENTIALS_DIRECTORY/wifi.office"')
if [ -n "$value" ] && [ "$got" = "$value" ]; then ok consumer-credential; else fail consumer-credential "got '$got'"; fi
# shellcheck disable=SC2016
size=$(systemd-run --unit=eve-vm-other --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'wc -c <"$CREDENTIALS_DIRECTORY/wifi.office"')
if [ "$size" = 0 ]; then ok other-refused; else fail other-refused "read '$size' bytes"; fi
check refusal-logged sh -c "journalctl -b -u eve-configd.service -o cat |
        grep -q 'Refused secret wifi.office to unit eve-vm-other.service'"

stored() { [ "$(config_prop Stored)" = true ]; }
check config-stored wait_for 30 stored || note "storage: $(config_prop StorageState)"
check stored-no-plaintext sh -c "test -s /persist/vaults/config/config/last.pb &&
        ! grep -qF '$value' /persist/vaults/config/config/last.pb"
failed_units=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')
if [ -z "$failed_units" ]; then ok no-failed-units; else fail no-failed-units "$failed_units"; note_failed_units; fi
note_node
