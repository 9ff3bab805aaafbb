# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# The boot order that replaces EVE's device-steps (docs/SYSTEMD.md): each installed unit came up (a oneshot
# finished, a daemon sent READY=1), and security setup finished before the units that depend on it started:
# A's ActiveEnterTimestampMonotonic <= B's InactiveExitTimestampMonotonic (when B left "inactive" to start).
# Only the units whose daemon is built are installed; the host expects exactly the checks for those.
wait_settled

for u in eve-tpm-setup eve-measure-config eve-vaultd eve-register eve-attestd eve-configd; do
        has_unit "$u.service" || continue
        s=$(systemctl show -P ActiveState "$u.service")/$(systemctl show -P SubState "$u.service")
        case "$s" in
        active/exited | active/running) ok "up-$u" ;;
        *) fail "up-$u" "state $s: $(journalctl -b -u "$u.service" --no-pager -o cat | tail -n1)" ;;
        esac
done

before() {
        local a=$1 b=$2 ta tb
        has_unit "$a.service" && has_unit "$b.service" || return 0
        ta=$(mono "$a.service" ActiveEnterTimestampMonotonic)
        tb=$(mono "$b.service" InactiveExitTimestampMonotonic)
        if [ "$ta" -gt 0 ] && [ "$tb" -gt 0 ] && [ "$ta" -le "$tb" ]; then
                ok "order-$a-$b"
        else
                fail "order-$a-$b" "$a active at $ta µs, $b started at $tb µs"
        fi
        note "$a ready at $((ta / 1000)) ms, $b started at $((tb / 1000)) ms"
}
while read -r a b; do
        case "$a" in '#'* | '') continue ;; esac
        before "$a" "$b"
done </usr/lib/eve-nspawn-test/order-pairs
