#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# idle-vm-bench: what the node's daemons cost while idle, in the node image (QEMU TCG, OVMF, swtpm). One boot:
# the guest case config-credential brings the whole node up with evc inside the guest (vault, registration,
# attestation, config fetch, a credential served), then idle-bench lets it settle and reads each daemon's Pss and
# Private memory (/proc/PID/smaps_rollup) and its context switches over a minute (every wakeup is one), next to
# systemd-hostnamed (the anchor: a small sd-bus daemon of the same style), systemd-networkd and systemd-logind in
# the same guest. Not a test; ~6 minutes.
#   bench/idle-vm-bench.sh [--window SECONDS] [BUILDDIR]   BUILDDIR: default build/vm-opt (no sanitizers)
# Prints a table and BENCH lines (bench/bench.h): Pss of each eve daemon / Pss of systemd-hostnamed (goal <= 1.5),
# wakeups per idle minute (goal 0 for eve-vaultd, which has no timer; eve-configd fetches every 60 s and sends
# its info every 600 s, eve-attestd re-attests on its own schedule: their figures are reported).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
window=60
while [ $# -gt 0 ]; do
        case "$1" in
        --window) window=$2; shift 2 ;;
        -h|--help) sed -n '3,13p' "$0"; exit 0 ;;
        *) break ;;
        esac
done
build=$(realpath "${1:-$src/build/vm-opt}")
[ -f "$build/build.ninja" ] ||
        { echo "idle-vm-bench: $build is not a meson build directory (meson setup build/vm-opt)" >&2; exit 1; }

image=$("$src/tools/vm-image" "$build")
vm=$build/vm-idle-bench
rm -rf "$vm"
mkdir -p "$vm"
qemu-img create -q -f qcow2 -b "$image" -F raw "$vm/disk.qcow2"
"$src/tools/vm-run" --workdir "$vm" --disk "$vm/disk.qcow2" --net --timeout 900 \
        --cred eve.vm.test=config-credential,idle-bench --cred "eve.vm.bench.window=$window"
if ! grep -q '^ok idle-measured' "$vm/results.log"; then
        echo "idle-vm-bench: the guest measured nothing:" >&2
        cat "$vm/results.log" >&2
        exit 1
fi
# The node's own checks: a failure there is noted, not fatal (the idle figures are still the daemons').
grep '^fail ' "$vm/results.log" | sed 's/^/idle-vm-bench: node setup: /' >&2 || true
grep '^# idle-missing ' "$vm/results.log" | sed 's/^# idle-missing /idle-vm-bench: not running: /' >&2 || true

# field NAME N: the Nth figure of daemon NAME's idle line (1 pid, 2 Pss kB, 3 Private kB, 4 switches, 5 window).
field() { awk -v n="$1" -v i="$2" '$1 == "#" && $2 == "idle" && $3 == n { print $(3 + i) }' "$vm/results.log"; }
anchor=systemd-hostnamed
apss=$(field $anchor 2)
apriv=$(field $anchor 3)
printf '%-20s %10s %12s %20s\n' daemon "Pss kB" "Private kB" "wakeups/idle min"
for d in eve-vaultd eve-attestd eve-configd systemd-hostnamed systemd-networkd systemd-logind systemd-timesyncd; do
        pss=$(field $d 2)
        [ -n "$pss" ] || continue
        sw=$(field $d 4)
        win=$(field $d 5)
        per_min=-
        [ "$sw" = - ] || per_min=$(awk -v s="$sw" -v w="$win" 'BEGIN { printf "%.1f", s * 60 / w }')
        printf '%-20s %10s %12s %20s\n' "$d" "$pss" "$(field $d 3)" "$per_min"
        case $d in eve-*) ;; *) continue ;; esac
        if [ -n "$apss" ]; then
                printf 'BENCH\tidle Pss %s vs %s\t%s kB\t%s kB\t%s\t<=1.5\n' "$d" $anchor "$pss" "$apss" \
                        "$(awk -v a="$pss" -v b="$apss" 'BEGIN { printf "%.3f", a / b }')"
                printf 'BENCH\tidle Private %s vs %s\t%s kB\t%s kB\t%s\treport\n' "$d" $anchor "$(field $d 3)" \
                        "$apriv" "$(awk -v a="$(field $d 3)" -v b="$apriv" 'BEGIN { printf "%.3f", a / b }')"
        fi
        goal=report
        [ "$d" != eve-vaultd ] || goal="==0"
        printf 'BENCH\twakeups per idle minute %s\t%s/min\t-\t-\t%s\n' "$d" "$per_min" "$goal"
done
for d in eve-vaultd eve-attestd eve-configd; do
        [ -n "$(field $d 2)" ] || printf 'BENCH\tidle %s\t(not running)\t-\t-\tfailed\n' "$d"
done
