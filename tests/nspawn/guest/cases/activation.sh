# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# D-Bus activation: with a daemon stopped, an ordinary user's read of one of its properties makes the bus ask
# systemd for the unit named in the activation file; the read succeeds and the unit is active again.
wait_settled

activate() {
        local svc=$1 unit=$2 read=$3 out
        has_unit "$unit" || return 0
        systemctl stop "$unit"
        if systemctl is-active -q "$unit"; then
                fail "activation-$svc" "$unit still active after stop"
                return
        fi
        # shellcheck disable=SC2086
        if ! out=$(runuser -u eve-tester -- busctl --timeout=30 $read 2>&1); then
                fail "activation-$svc" "busctl $read: $out"
        elif ! systemctl is-active -q "$unit"; then
                fail "activation-$svc" "the read answered but $unit is $(systemctl is-active "$unit")"
        elif ! journalctl -b -u dbus.service --no-pager -o cat |
                grep -q "Activating via systemd: service name='org.eve.$svc' unit='$unit'"; then
                fail "activation-$svc" "no activation by the bus in the journal"
        else
                ok "activation-$svc"
        fi
}
activate Vault eve-vaultd.service "get-property org.eve.Vault /org/eve/Vault org.eve.Vault.Manager Vaults"
activate Attest eve-attestd.service "get-property org.eve.Attest /org/eve/Attest org.eve.Attest StateName"
activate Config eve-configd.service "get-property org.eve.Config /org/eve/Config org.eve.Config ConfigHash"
