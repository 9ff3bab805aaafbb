# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Not a test: the guest half of bench/idle-vm-bench.sh, run after the case config-credential (which brings up
# the whole node: evc in the guest, eve-vaultd with the config vault, eve-register, eve-attestd attested,
# eve-configd with a fetched config and a credential served, then evc stopped). evc is started again, the node
# left alone for SETTLE seconds, then for each daemon: Pss and Private (Private_Clean + Private_Dirty) from
# /proc/PID/smaps_rollup, and the context switches of all its threads over WINDOW seconds (each one a wakeup).
# Anchors in the same guest: systemd-hostnamed (bus-activated just before its reading; it exits when idle, so
# memory only), systemd-timesyncd if installed, systemd-networkd and systemd-logind. Writes
# "# idle NAME PID PSS_KB PRIVATE_KB SWITCHES WINDOW_S" lines, and "# idle-missing NAME why".

settle=$(cred eve.vm.bench.settle)
settle=${settle:-20}
window=$(cred eve.vm.bench.window)
window=${window:-60}

evc=/usr/local/bin/evc
[ -x "$evc" ] || evc=/usr/bin/evc
if [ -d /var/lib/eve-vm-evc ] && ! systemctl -q is-active eve-vm-evc.service; then
        systemctl reset-failed eve-vm-evc.service 2>/dev/null || true
        systemd-run --unit=eve-vm-evc --quiet "$evc" serve --dir /var/lib/eve-vm-evc --listen 127.0.0.1:14443 ||
                note "evc did not start again"
fi
sleep "$settle"

# kb FIELD…: the sum of the fields of /proc/$pid/smaps_rollup, in kB.
kb() { awk -v f=" $* " 'index(f, " " substr($1, 1, length($1) - 1) " ") { s += $2 } END { print s + 0 }' \
        "/proc/$pid/smaps_rollup"; }
# switches PID: voluntary + involuntary context switches of all its threads.
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }

declare -A pids=() before=()
for u in eve-vaultd eve-attestd eve-configd systemd-timesyncd systemd-networkd systemd-logind; do
        pid=$(systemctl show -P MainPID "$u.service" 2>/dev/null)
        if [ -z "$pid" ] || [ "$pid" = 0 ]; then
                note "idle-missing $u $(systemctl show -P ActiveState "$u.service" 2>&1)"
                continue
        fi
        pids[$u]=$pid
        before[$u]=$(switches "$pid")
done
sleep "$window"
for u in "${!pids[@]}"; do
        pid=${pids[$u]}
        [ -r "/proc/$pid/smaps_rollup" ] || { note "idle-missing $u exited during the window"; continue; }
        note "idle $u $pid $(kb Pss) $(kb Private_Clean Private_Dirty) $(($(switches "$pid") - ${before[$u]})) $window"
done

# systemd-hostnamed: started by a bus call, read at once (it exits after 30 s without clients).
busctl get-property org.freedesktop.hostname1 /org/freedesktop/hostname1 org.freedesktop.hostname1 Hostname \
        >/dev/null 2>&1 || true
sleep 2
pid=$(systemctl show -P MainPID systemd-hostnamed.service 2>/dev/null)
if [ -n "$pid" ] && [ "$pid" != 0 ]; then
        note "idle systemd-hostnamed $pid $(kb Pss) $(kb Private_Clean Private_Dirty) - -"
else
        note "idle-missing systemd-hostnamed did not start"
fi
ok idle-measured
