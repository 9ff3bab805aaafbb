#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# smaps-summary: where one process's memory goes, by mapped file (the host-side companion of idle-vm-bench.sh).
#   bench/smaps-summary.sh [--top N] PID
# Prints the process's totals from /proc/PID/smaps_rollup (Pss, Private = Private_Clean + Private_Dirty) and the
# N (default 20) mappings with the most Private kB, summed over all mappings of the same file ([heap], [stack]
# and anonymous mappings as such). Read-only; run as the process's user or root.
set -euo pipefail
top=20
while [ $# -gt 0 ]; do
        case "$1" in
        --top) top=$2; shift 2 ;;
        -h|--help) sed -n '3,6p' "$0"; exit 0 ;;
        *) break ;;
        esac
done
pid=${1:?usage: smaps-summary.sh [--top N] PID}
[ -r "/proc/$pid/smaps" ] || { echo "smaps-summary: cannot read /proc/$pid/smaps" >&2; exit 1; }

awk -v name="$(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -c1-60)" '
        /^Pss:/ { pss = $2 }
        /^Private_(Clean|Dirty):/ { priv += $2 }
        END { printf "%s: Pss %d kB, Private %d kB\n", name, pss, priv }' "/proc/$pid/smaps_rollup"

# A header line is "start-end perms offset dev inode [path]"; the fields after it belong to it.
awk '
        /^[0-9a-f]+-[0-9a-f]+ / { f = NF >= 6 ? $6 : "[anon]"; n = split(f, p, "/"); key = p[n]; next }
        /^Pss:/ { pss[key] += $2 }
        /^Private_(Clean|Dirty):/ { priv[key] += $2 }
        END { for (k in priv) printf "%8d %8d  %s\n", priv[k], pss[k], k }' "/proc/$pid/smaps" |
        sort -rn | head -n "$top" | { printf '%8s %8s  %s\n' "Private" "Pss" "mapping (kB)"; cat; }
