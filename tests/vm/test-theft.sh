#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenarios 7 (theft) and 5 (stolen disk) on one node (docs/TESTING.md, "VM tests"), evc on the host as in
# vm-node:
#   1 theft-first    a tpm+controller vault added in evc, opened with evc's share; location lock on, location
#                    recorded
#   2 theft-locked   the node reports another location: quote refused, that vault stays locked
#   3 theft-locked   back at its place but marked stolen (evc device revoke): that vault stays locked
#   4 disk-stolen    scenario 5: the disk in another machine with another TPM: nothing opens, and the host
#                    finds no plaintext of the vaults on the disk
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1
serial=VM-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
evc_setup "$serial"
evc_start
marker="eve-vm-marker-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mapfile -t node < <(vm_node_args)
creds=(--cred "eve.vm.marker=$marker" --cred "eve.vm.hostport=$evc_port")
here='52.3700 4.8900' elsewhere='48.8566 2.3522'

device() { evc device list --json | jq -r --arg s "$serial" '.[] | select(.serial == $s) | .uuid'; }
want_vault() { evc vault add "$(device)" theft --key-source tpm+controller --size 32M; }
want_location() { evc location-lock on "$(device)"; }

vm_boot theft-first "${node[@]}" "${creds[@]}" --cred "eve.vm.location=$here" --timeout 900
vm_expect booted theft-attested theft-created theft-unlocked theft-by-controller-share theft-write \
        theft-location-attested
dev=$(device)
[ -n "$dev" ] || die "the node did not register with evc"
location_locked() { evc device show "$dev" --json | jq -e '.location_lock == true'; }
host_check evc-location-lock location_locked

vm_boot theft-locked "${node[@]}" "${creds[@]}" --cred "eve.vm.location=$elsewhere" --cred eve.vm.prefix=moved \
        --timeout 900
vm_expect booted moved-image-unlocked moved-image-tpm moved-quote-refused moved-theft-locked moved-theft-not-mapped

evc device revoke "$dev" >/dev/null || die "evc device revoke failed"
vm_boot theft-locked "${node[@]}" "${creds[@]}" --cred "eve.vm.location=$here" --cred eve.vm.prefix=revoked \
        --timeout 900
vm_expect booted revoked-image-unlocked revoked-image-tpm revoked-quote-refused revoked-theft-locked \
        revoked-theft-not-mapped

# Scenario 5: the thief's machine: the node's disk, a new TPM and firmware, no credential of the node.
thief=${vm%-1}-thief
rm -rf "$thief"
mkdir -p "$thief"
cp "$vm/disk.qcow2" "$thief/disk.qcow2"
vm=$thief
vm_boot disk-stolen --timeout 900
vm_expect booted thief-image-present thief-image-stock-refused thief-image-not-mapped thief-config-present \
        thief-config-stock-refused thief-config-not-mapped thief-theft-present thief-theft-stock-refused \
        thief-theft-not-mapped thief-vaultd-nothing-open
host_check disk-no-plaintext sh -c "! grep -aqF '$marker' '$vm/disk.qcow2'"
finish
