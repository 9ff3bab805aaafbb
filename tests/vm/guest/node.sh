# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Helpers of the node cases (cases/node-*.sh): the node's services run as their units (eve-vm-node.service
# started them), evc on the host is controller.eve.test. Sourced by the cases after lib.sh.

export PATH=/usr/local/bin:/usr/local/libexec:$PATH
prop() { busctl --system get-property "$1" "$2" "$3" "$4" 2>/dev/null | cut -d' ' -f2- | tr -d '"'; }
attest_prop() { prop org.eve.Attest /org/eve/Attest org.eve.Attest "$1"; }
config_prop() { prop org.eve.Config /org/eve/Config org.eve.Config "$1"; }
vault_prop() { prop org.eve.Vault "/org/eve/Vault/vault/$1" org.eve.Vault.Vault "$2"; }

# wait_for SECONDS COMMAND…: until the command succeeds (every 0.5 s); the last try's status.
wait_for() {
        local end=$((SECONDS + $1))
        shift
        while [ "$SECONDS" -lt "$end" ]; do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.5
        done
        "$@"
}

journal_tail() { journalctl -b -u "$1" -n "${2:-8}" --no-pager -o cat 2>&1 | tr '\n' '|'; }
# want NAME: asks the host to run its want_NAME (tests/vm/lib.sh).
want() { echo "want $1" >&3; }

attested() { [ "$(attest_prop State)" = 7 ]; }
vault_is() { [ "$(vault_prop "$1" State)" = "$2" ]; }
token_hex() {
        busctl --system call org.eve.Attest /org/eve/Attest org.eve.Attest GetIntegrityToken 2>/dev/null |
                cut -d' ' -f3- | tr -d '\n'
}
# mounted DEV DIR: the vault's mapping is mounted there, for the whole system.
mounted() { [ "$(findmnt -n -o SOURCE --target "$2" 2>/dev/null)" = "$1" ]; }
# seconds since boot at which a unit's journal first printed a line matching PATTERN
journal_at() {
        journalctl -b -u "$1" -o short-monotonic --no-pager 2>/dev/null | grep -m1 "$2" |
                sed 's/^\[ *\([0-9.]*\)\].*/\1/'
}
note_node() {
        note "attest: state $(attest_prop StateName), attempts $(attest_prop Attempts), reachable \
$(attest_prop ControllerReachable), last error '$(attest_prop LastError)'"
        local v
        for v in image config; do
                note "vault $v: $(vault_prop "$v" State), method $(vault_prop "$v" UnlockMethod), escrow \
$(vault_prop "$v" EscrowState), moved [$(vault_prop "$v" MovedPCRs)], error '$(vault_prop "$v" LastError)'"
        done
}
# reattest SECONDS: a new attestation round (Restart) that succeeds within SECONDS.
new_success() { attested && [ "$(attest_prop LastSuccess)" != "$1" ]; }
reattest() {
        local t0
        t0=$(attest_prop LastSuccess)
        busctl --system call org.eve.Attest /org/eve/Attest org.eve.Attest Restart >/dev/null 2>&1 || return 1
        wait_for "$1" new_success "$t0"
}
