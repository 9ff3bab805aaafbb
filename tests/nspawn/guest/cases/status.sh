# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# `evectl status` prints a complete summary, for root and for an ordinary user alike: the device's UUID (eve-register
# registered it with evc on the host), the TPM status, the configuration measured into PCR 14, each default vault
# with its state and reason, attestation, configuration; --json carries the same sections.
wait_settled
# Registration and the first attestation round talk to evc: give them a moment.
for _ in $(seq 50); do [ -s /persist/status/uuid ] && break; sleep 0.1; done
# eve-vaultd creates the default vaults at its first start and tries them (the image vault takes a few
# seconds; the config vault goes through an escrow round with evc): wait until neither is Creating or
# Unlocking and the image vault has said why it is locked.
settled() {
        busctl get-property org.eve.Vault /org/eve/Vault/vault/image org.eve.Vault.Vault LastError 2>/dev/null |
                grep -q "device-mapper unavailable" || return 1
        ! busctl get-property org.eve.Vault /org/eve/Vault org.eve.Vault.Manager Vaults >/dev/null 2>&1 && return 1
        for v in image config; do
                busctl get-property org.eve.Vault "/org/eve/Vault/vault/$v" org.eve.Vault.Vault State 2>/dev/null |
                        grep -q '"Creating"\|"Unlocking"' && return 1
        done
        return 0
}
for _ in $(seq 300); do settled && break; sleep 0.1; done

out=$(evectl status 2>&1)
rc=$?
printf '%s\n' "$out" | while IFS= read -r l; do note "  $l"; done
missing=
for want in "^Device: *[0-9a-f-]\{36\}" "^TPM: *ENABLED (keys in the TPM)" "^Configuration: *measured into PCR 14" \
        "^Vaults: *2, 0 unlocked" "^  image .*Locked.*device-mapper unavailable" \
        "^  config .*Locked" "^Attestation: " "^Config: "; do
        printf '%s\n' "$out" | grep -q "$want" || missing="$missing [$want]"
done
if [ "$rc" -eq 0 ] && [ -z "$missing" ]; then ok status-root; else fail status-root "exit $rc, missing:$missing"; fi

user_out=$(runuser -u eve-tester -- evectl status 2>&1)
if [ "$(printf '%s\n' "$user_out" | grep -c '^[A-Z][a-z]*: ')" -eq "$(printf '%s\n' "$out" | grep -c '^[A-Z][a-z]*: ')" ] &&
        ! printf '%s\n' "$user_out" | grep -q "does not answer"; then
        ok status-user
else
        fail status-user "$(printf '%s' "$user_out" | tr '\n' '|')"
fi

json=$(evectl --json status 2>&1)
missing=
for key in '"device"' '"uuid"' '"tpm": *"ENABLED"' '"vaults"' '"Name": *"image"' '"attestation"' '"config"'; do
        printf '%s' "$json" | grep -q "$key" || missing="$missing [$key]"
done
if [ -z "$missing" ]; then ok status-json; else fail status-json "missing$missing"; fi
