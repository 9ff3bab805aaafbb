# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 7, setting up: a first boot; the administrator adds a `tpm+controller` vault "theft" in evc (want
# vault); eve-configd hands it to eve-vaultd, which creates it; its controller share is requested with the
# escrow upload and released by evc with the next good quote, so the vault opens (method tpm+controller) and
# gets a file. Then the host turns location lock on (want location) and one more
# attestation records this node's location (credential eve.vm.location, read by eve-attestd).
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

check booted wait_booted
check theft-attested wait_for 180 attested || { note_node; note "eve-attestd: $(journal_tail eve-attestd.service)"; }
want vault
refresh() { busctl --system call org.eve.Config /org/eve/Config org.eve.Config Refresh >/dev/null 2>&1; }
restart() { busctl --system call org.eve.Attest /org/eve/Attest org.eve.Attest Restart >/dev/null 2>&1; }
# A config round brings the vault; an attestation round uploads its share request, the next brings the share.
theft_open() {
        local end=$((SECONDS + $1))
        while [ "$SECONDS" -lt "$end" ]; do
                vault_is theft Unlocked && return 0
                refresh
                attested && restart
                sleep 5
        done
        vault_is theft Unlocked
}
check theft-created wait_for 120 sh -c 'refresh() { busctl --system call org.eve.Config /org/eve/Config \
        org.eve.Config Refresh; }; refresh >/dev/null 2>&1; busctl --system get-property org.eve.Vault \
        /org/eve/Vault/vault/theft org.eve.Vault.Vault State' ||
        note "configd: $(journal_tail eve-configd.service); vaultd: $(journal_tail eve-vaultd.service)"
check theft-unlocked theft_open 180 ||
        note "vault theft: $(vault_prop theft State) '$(vault_prop theft LastError)'; $(journalctl -b -u eve-vaultd.service \
                -o cat --no-pager | grep -i -A2 'theft\|worker' | tail -n 20 | tr '\n' '|')"
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
