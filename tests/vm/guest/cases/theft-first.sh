# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 7, setting up: a first boot; a `tpm+controller` vault "theft" is created (evectl), its controller
# share is requested with the escrow upload and released by evc with the next good quote, so the vault opens
# (method tpm+controller) and gets a file. Then the host turns location lock on (want location) and one more
# attestation records this node's location (credential eve.vm.location, read by eve-attestd).
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

check booted wait_booted
check theft-attested wait_for 180 attested || { note_node; note "eve-attestd: $(journal_tail eve-attestd.service)"; }
check theft-create evectl vault create theft --size 32M --key-source tpm+controller
restart() { busctl --system call org.eve.Attest /org/eve/Attest org.eve.Attest Restart >/dev/null 2>&1; }
# Round 1 uploads the share request; round 2 brings the share.
theft_open() { vault_is theft Unlocked || { attested && restart; false; }; }
check theft-unlocked wait_for 120 theft_open || note "vault theft: $(vault_prop theft State) '$(vault_prop theft LastError)'"
check theft-by-controller-share test "$(vault_prop theft UnlockMethod)" = tpm+controller
# The marker never appears on a command line (a failed check prints its command, and the journal is on the
# disk the stolen-disk check searches).
theft_write() {
        local d
        d=$(findmnt -n -o TARGET --source /dev/mapper/eve-vault-theft | head -n1)
        if [ -z "$d" ]; then
                d=/run/eve-vm-theft
                mkdir -p "$d"
                mount /dev/mapper/eve-vault-theft "$d" || return 1
        fi
        printf '%s-theft\n' "$(cred eve.vm.marker)" >"$d/marker" && sync
}
check theft-write theft_write
want location
sleep 5
check theft-location-attested reattest 90
note_node
