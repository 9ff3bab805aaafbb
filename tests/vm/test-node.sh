#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One node through its life (docs/TESTING.md, "VM tests"): the node's services as their units in the guest,
# evc on the host's 127.0.0.1 reached only through QEMU's restricted user networking and a guestfwd. One
# machine, five boots, the TPM state and the disk kept between them:
#   1 node-first     scenario 1: first boot (register, vaults, attestation, escrow, a secret via LoadCredential=)
#     app-vault      then an application on a controller-driven vault: started after its mount, stopped before
#                    the controller's lock, running again after unlock, stopped before the vault is removed
#   2 node-offline   scenarios 2 and 6: reboot with the controller cut off, then back; 8: stock systemd-cryptsetup
#   3 node-unknown   scenario 4: unknown software (PCR 8 moved, nobody told evc)
#   4 node-upgrade   scenario 3: approved upgrade (evc upgrade expect), keys released, vaults re-sealed
#     node-scan      then the config plaintext and the integrity token are nowhere they must not be: files,
#                    the journal of the boots so far, core dumps, swap (secret-scan.sh --system)
#   5 node-upgraded  scenario 3: the next boot opens through the TPM (controller cut off)
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1
serial=VM-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$vm/node-config/config/secrets.d"
printf '[Secret wifi.office]\nAllowUnit=eve-vm-consumer.service\n' >"$vm/node-config/config/secrets.d/50-vm.conf"
evc_setup "$serial"
evc_start
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
secret="vm p4ss $(rand 8)"
marker="eve-vm-marker-$(rand 8)"
mapfile -t node < <(vm_node_args)
creds=(--cred "eve.vm.secret=$secret" --cred "eve.vm.marker=$marker" --cred "eve.vm.hostport=$evc_port")

dev=''
device() { evc device list --json | jq -r --arg s "$serial" '.[] | select(.serial == $s) | .uuid'; }
field() { evc device show "$dev" --json | jq -r ".$1"; }
is() { [ "$(field "$1")" = "$2" ]; }
want_secret() { evc secret set "$(device)" office --kind wifi --value "$secret"; }
want_controller() { evc_reachable; }
# The application's vault (cases/app-vault.sh). Two admin commands that a controller would publish as one config
# (evc refuses to remove a vault an application still names): the guest's fetches are refused meanwhile, so the
# node never sees the half-way config.
in_one_config() {
        local rc=0
        evc_unreachable
        "$@" || rc=$?
        evc_reachable
        return $rc
}
add_app_vault() { evc vault add "$(device)" appdata --size 32M && evc app set "$(device)" web --vault appdata; }
remove_app_vault() { evc app remove "$(device)" web && evc vault remove "$(device)" appdata; }
want_appvault() { in_one_config add_app_vault; }
want_applock() { evc vault set "$(device)" appdata --state locked; }
want_appunlock() { evc vault set "$(device)" appdata --state unlocked; }
want_appbind() { evc app set "$(device)" db --vault appdata; }
want_appunbind() { evc app remove "$(device)" db; }
want_appremove() { in_one_config remove_app_vault; }
# pcr_after DIGEST: PCR value after one extension of a zero PCR (SHA-256 bank) with DIGEST (hex).
pcr_after() { python3 -c 'import hashlib, sys; print(hashlib.sha256(bytes(32) + bytes.fromhex(sys.argv[1])).hexdigest())' "$1"; }

vm_boot node-first,app-vault "${node[@]}" "${creds[@]}" --timeout 900
vm_expect booted systemd-254 pcrs-measured net-restricted tpm-identity registered attested integrity-token \
        vault-image-unlocked vault-image-tpm vault-image-escrow-confirmed \
        vault-config-unlocked vault-config-tpm vault-config-escrow-confirmed \
        vault-image-mounted vault-config-mounted vault-write configd-fetched consumer-credential other-refused \
        refusal-logged config-stored stored-no-plaintext no-failed-units \
        app-vault-unlocked app-vault-mounted app-dropin app-requires-mount app-started app-after-mount \
        app-writes-vault app-vault-locked app-stopped-on-lock app-stopped-cleanly app-stopped-before-unmount \
        app-vault-unmapped app-data-hidden app-stays-stopped app-vault-unlocked-again app-restarted \
        app-after-remount app-data-kept app-bound-later-started app-bound-later-requires app-unbound-stopped app-unbound-others-kept app-stopped-on-removal app-stopped-before-removal app-vault-deleted \
        app-units-removed app-not-restarted
dev=$(device)
[ -n "$dev" ] || die "the node did not register with evc"
host_check evc-trusted is trust trusted
escrow_stored() { [ "$(field escrowed_keys)" -ge 2 ]; }
host_check evc-escrow-stored escrow_stored
host_check evc-token-issued is has_integrity_token true

evc_unreachable
vm_boot node-offline "${node[@]}" "${creds[@]}" --timeout 900
evc_reachable
vm_expect booted offline-vault-image-unlocked offline-vault-image-tpm offline-vault-config-unlocked \
        offline-vault-config-tpm offline-not-attested offline-unreachable offline-data-kept offline-backoff \
        offline-last-error offline-credential reattested new-token \
        stock-luksdump-tokens lock-image stock-attach stock-mount-read stock-detach

d1=$(rand 32)
vm_boot node-unknown "${node[@]}" "${creds[@]}" --cred "eve.vm.extend=8 $d1" --timeout 900
vm_expect booted unknown-vault-image-locked unknown-vault-config-locked unknown-evectl-moved unknown-not-mapped \
        unknown-quote-refused unknown-not-attested unknown-config-forbidden unknown-no-credential \
        unknown-vault-image-still-locked unknown-vault-config-still-locked
host_check evc-untrusted is trust untrusted
reason_pcr8() { field trust_reason | grep -qw 8; }
host_check evc-reason-pcr8 reason_pcr8
host_check evc-token-withdrawn is has_integrity_token false
# The node told evc why (its info report: the vaults' moved PCRs).
info_moved_pcr8() {
        evc device show "$dev" --json | jq -e '[.vaults_reported[]?.moved_pcrs[]?] | index(8) != null'
}
host_check evc-info-moved-pcr8 info_moved_pcr8

d2=$(rand 32)
evc upgrade expect "$dev" --pcr "8=$(pcr_after "$d2")" >/dev/null || die "evc upgrade expect failed"
vm_boot node-upgrade,node-scan "${node[@]}" "${creds[@]}" --cred "eve.vm.extend=8 $d2" --timeout 900
vm_expect booted upgrade-attested upgrade-vault-image-unlocked upgrade-vault-image-by-controller \
        upgrade-vault-image-escrow-confirmed upgrade-vault-config-unlocked upgrade-vault-config-by-controller \
        upgrade-vault-config-escrow-confirmed upgrade-data-kept upgrade-config upgrade-credential \
        scan-secrets-known scan-finds-canary scan-no-findings
host_check evc-trusted-again is trust trusted

evc_unreachable
vm_boot node-upgraded "${node[@]}" "${creds[@]}" --cred "eve.vm.extend=8 $d2" --timeout 900
evc_reachable
vm_expect booted upgraded-vault-image-unlocked upgraded-vault-image-tpm upgraded-vault-config-unlocked \
        upgraded-vault-config-tpm upgraded-not-attested upgraded-data-kept
finish
