# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Secrets as systemd credentials (issue 7), with systemd 254 as the service manager and every node service as
# its unit: evc, the reference controller, runs in the guest on 127.0.0.1 (a transient unit; the guest has no
# other network); eve-register, eve-attestd, eve-vaultd (the config vault on dm-crypt) and eve-configd run as
# their units. evc encrypts a Wi-Fi secret to the TPM's ECDH key; a consumer unit with
# LoadCredential=wifi.office:/run/eve/credentials.sock gets the plaintext in its credentials directory; another
# unit asking the same is refused (an empty credential); the config stored in the config vault holds no
# plaintext.

value='vm p4ss: correct horse battery staple'
evcdir=/var/lib/eve-vm-evc
port=14443
prog() {
        local p
        for p in "/usr/local/$1" "/usr/$1"; do
                [ -x "$p" ] && { echo "$p"; return 0; }
        done
        return 1
}
evc=$(prog bin/evc)
prop() { busctl --system get-property "$1" "$2" "$3" "$4" 2>/dev/null | cut -d' ' -f2- | tr -d '"'; }
config_prop() { prop org.eve.Config /org/eve/Config org.eve.Config "$1"; }

# wait_for SECONDS COMMAND…: until the command succeeds.
wait_for() {
        local n=$(($1 * 5))
        shift
        while [ "$n" -gt 0 ]; do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.2
                n=$((n - 1))
        done
        "$@"
}

journal_tail() { journalctl -b -u "$1" -n 8 --no-pager -o cat 2>&1 | tr '\n' '|'; }
# unit NAME ACTION UNIT: systemctl ACTION UNIT as check NAME; on failure the unit's last journal lines as a note.
unit() { check "$1" systemctl "$2" "$3" || note "$3: $(journal_tail "$3")"; }

check booted wait_booted
unit tpm-setup start eve-tpm-setup.service
# The node must have its identity in the TPM (eve-tpm-setup.service at boot); a software identity here means the
# unit could not use /dev/tpmrm0. Then, to still test what follows, provision again outside the unit.
tpm_identity() { [ -e /config/device.cert.pem ] && [ ! -e /config/device.key.pem ]; }
if ! tpm_identity; then
        note "NOT AS IT SHOULD BE: eve-tpm-setup.service made a software identity; provisioning again outside it"
        note "tpm-status $(cat /persist/status/tpm-status 2>&1); $(ls -l /dev/tpmrm0 2>&1)"
        note "eve-tpm-setup.service: $(journal_tail eve-tpm-setup)"
        rm -f /config/device.cert.pem /config/device.key.pem /persist/certs/*.pem
        "$(prog libexec/eve-tpm-setup)" >/dev/null 2>&1 || note "eve-tpm-setup outside the unit failed too"
fi

# The controller, in the guest.
[ -d "$evcdir" ] || "$evc" init --dir "$evcdir" >/dev/null
check evc-up systemd-run --unit=eve-vm-evc --quiet "$evc" serve --dir "$evcdir" --listen "127.0.0.1:$port"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || note "evc: $(journal_tail eve-vm-evc)"
echo "127.0.0.1:$port" >/config/server
cp "$evcdir/certs/root.pem" /config/root-certificate.pem
uuid=$("$evc" device add --cert /config/device.cert.pem --dir "$evcdir" | head -n1)
note "device $uuid"

# The node's services, in their order.
unit vaultd start eve-vaultd.service
unit registered restart eve-register.service
check uuid-stored grep -qx "$uuid" /persist/status/uuid
systemctl restart eve-attestd.service
attest_complete() { [ "$(prop org.eve.Attest /org/eve/Attest org.eve.Attest State)" = 7 ]; }
if ! wait_for 45 attest_complete >/dev/null 2>&1; then
        # evc replays the firmware's event log, which does not hold systemd-pcrphase's PCR 11 extensions. To
        # still test what follows, attest without the log (evc then judges the PCRs by its baseline only).
        note "NOT AS IT SHOULD BE: attestation with the event log failed; attesting without it"
        note "attestd: $(prop org.eve.Attest /org/eve/Attest org.eve.Attest LastError)"
        mkdir -p /run/systemd/system/eve-attestd.service.d
        printf '[Service]\nEnvironment=EVE_EVENTLOG=/nonexistent\n' \
                >/run/systemd/system/eve-attestd.service.d/50-vm-no-event-log.conf
        systemctl daemon-reload
        systemctl restart eve-attestd.service
fi
check attested wait_for 60 attest_complete || note "attestd: $(journal_tail eve-attestd)"
config_vault_unlocked() {
        [ "$(prop org.eve.Vault /org/eve/Vault/vault/config org.eve.Vault.Vault State)" = Unlocked ]
}
check config-vault-unlocked wait_for 60 config_vault_unlocked || note "vaultd: $(journal_tail eve-vaultd)"

# The secret and who may read it.
"$evc" secret set "$uuid" office --kind wifi --value "$value" --dir "$evcdir" >/dev/null
mkdir -p /config/secrets.d
printf '[Secret wifi.office]\nAllowUnit=eve-vm-consumer.service\n' >/config/secrets.d/50-vm.conf
systemctl restart eve-configd.service
fetched() { [ "$(config_prop LastFetchResult)" = updated ]; }
check configd-fetched wait_for 60 fetched || note "configd: $(journal_tail eve-configd)"

# The consumer unit: LoadCredential= from the socket, as an unprivileged dynamic user (the variable is the
# unit's, hence single quotes).
# shellcheck disable=SC2016
got=$(systemd-run --unit=eve-vm-consumer --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'cat "$CREDENTIALS_DIRECTORY/wifi.office"')
if [ "$got" = "$value" ]; then ok consumer-credential; else fail consumer-credential "got '$got'"; fi
# Another unit asking for the same credential gets nothing.
# shellcheck disable=SC2016
size=$(systemd-run --unit=eve-vm-other --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'wc -c <"$CREDENTIALS_DIRECTORY/wifi.office"')
if [ "$size" = 0 ]; then ok other-refused; else fail other-refused "read $size bytes"; fi
check refusal-logged sh -c "journalctl -b -u eve-configd.service -o cat |
        grep -q 'Refused secret wifi.office to unit eve-vm-other.service'"
note "credentials served $(config_prop CredentialsServed), refused $(config_prop CredentialsRefused)"

# Stored in the config vault (dm-crypt), without the plaintext.
stored() { [ "$(config_prop Stored)" = true ]; }
check config-stored wait_for 30 stored || note "storage: $(config_prop StorageState)"
check stored-no-plaintext sh -c "test -s /persist/vaults/config/config/last.pb &&
        ! grep -q 'correct horse' /persist/vaults/config/config/last.pb"
systemctl stop eve-vm-evc.service
