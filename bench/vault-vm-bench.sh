#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vault-vm-bench: TPM-path unlock time of a vault in the node image (QEMU TCG, OVMF, swtpm), eve-vault-worker
# against stock systemd-cryptsetup 254 on the same volume, alternating, each timed from process start to the
# dm-crypt mapping made. Boots the image once (tests/vm/guest/cases/vault-bench.sh). Not a test.
#   bench/vault-vm-bench.sh [--rounds N] [--trace] [BUILDDIR]   BUILDDIR: default build/vm-opt (a build
#                                                        without sanitizers: ASan would time ASan)
# --trace: also one unlock of each tool with every debug line (its own, libcryptsetup's, libdevmapper's) and the
# milliseconds since its start, in BUILDDIR/vm-bench/trace-{worker,stock}.log.
# Prints the medians, minimums and the ratio worker/stock (goal: <= 0.5), and BENCH lines (bench/bench.h).
# Then per boot: N = 1, 2 (the default boot: config and image vaults) and 4 vaults unlocked by one worker as
# eve-vaultd runs it at start, against N systemd-cryptsetup attaches started together (systemd's parallel
# units; goal <= 0.5) and one after the other, each until every mapping is ready for mounting.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rounds=10
trace=0
while [ $# -gt 0 ]; do
        case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --trace) trace=1; shift ;;
        -h|--help) sed -n '3,14p' "$0"; exit 0 ;;
        *) break ;;
        esac
done
build=$(realpath "${1:-$src/build/vm-opt}")
[ -f "$build/build.ninja" ] ||
        { echo "vault-vm-bench: $build is not a meson build directory (meson setup build/vm-opt)" >&2; exit 1; }

image=$("$src/tools/vm-image" "$build")
vm=$build/vm-bench
rm -rf "$vm"
mkdir -p "$vm"
qemu-img create -q -f qcow2 -b "$image" -F raw "$vm/disk.qcow2"
"$src/tools/vm-run" --workdir "$vm" --disk "$vm/disk.qcow2" --net --timeout 2400 \
        --cred eve.vm.test=vault-bench --cred "eve.vm.bench.rounds=$rounds" --cred "eve.vm.bench.trace=$trace"
if grep -q '^fail ' "$vm/results.log" || ! grep -qx end "$vm/results.log"; then
        echo "vault-vm-bench: the guest failed:" >&2
        cat "$vm/results.log" >&2
        exit 1
fi

for t in worker stock; do
        sed -n "s/^# trace $t //p" "$vm/results.log" >"$vm/trace-$t.log"
done
[ "$trace" = 0 ] || echo "vault-vm-bench: traces in $vm/trace-worker.log and $vm/trace-stock.log"

# stats MS…: median and minimum in ms.
stats() {
        printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
                m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                printf "%s %s\n", m, v[1] }'
}
series() { sed -n "s/^# bench $1 //p" "$vm/results.log"; }
read -r -a w <<<"$(series worker)"
read -r -a p <<<"$(series worker-pending)"
read -r -a s <<<"$(series stock)"
if [ ${#w[@]} -eq 0 ] || [ ${#p[@]} -eq 0 ] || [ ${#s[@]} -eq 0 ]; then
        echo "vault-vm-bench: no timings from the guest" >&2
        cat "$vm/results.log" >&2
        exit 1
fi
read -r wm wmin <<<"$(stats "${w[@]}")"
read -r pm pmin <<<"$(stats "${p[@]}")"
read -r sm smin <<<"$(stats "${s[@]}")"
echo "vault unlock through the TPM to a dm-crypt mapping, in the guest (QEMU TCG, swtpm), per run (ms):"
row() { printf '  %-52s median %6s  min %6s  (%s runs)\n' "$1" "$2" "$3" "$4"; }
row "eve-vault-worker unlock --map (escrow confirmed)" "$wm" "$wmin" "${#w[@]}"
row "eve-vault-worker unlock --map (escrow pending)" "$pm" "$pmin" "${#p[@]}"
row "systemd-cryptsetup attach … tpm2-device=auto" "$sm" "$smin" "${#s[@]}"
prof=''
for n in start inspect keycheck stock-start; do
        read -r -a x <<<"$(series "$n")"
        read -r m _ <<<"$(stats "${x[@]}")"
        prof+=" $n $m,"
done
echo "  breakdown (medians, ms): worker${prof%,} (start: --help; inspect: header and tokens;" \
        "keycheck: + TPM unseal and keyslot check, no mapping)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "ratio worker/stock (medians): $(ratio "$wm" "$sm") with the escrow confirmed (goal <= 0.5)," \
        "$(ratio "$pm" "$sm") pending"
printf 'BENCH\t%s\t%s ms\t%s ms\t%s\t%s\n' "vault TPM unlock in the VM vs systemd-cryptsetup (escrow confirmed)" \
        "$wm" "$sm" "$(ratio "$wm" "$sm")" "<=0.5"
printf 'BENCH\t%s\t%s ms\t%s ms\t%s\t%s\n' "vault TPM unlock in the VM vs systemd-cryptsetup (escrow pending)" \
        "$pm" "$sm" "$(ratio "$pm" "$sm")" "report"

echo "a boot's vaults, N vaults to dm-crypt mappings ready for mounting, per boot (ms):"
for n in 1 2 4; do
        declare -A med=()
        for k in ours ours-confirmed par seq; do
                read -r -a x <<<"$(series "boot-$k-$n")"
                if [ ${#x[@]} -eq 0 ]; then
                        echo "vault-vm-bench: no boot-$k-$n timings from the guest" >&2
                        exit 1
                fi
                read -r m mn <<<"$(stats "${x[@]}")"
                med[$k]=$m
                case $k in
                ours) what="one eve-vault-worker for $n (as eve-vaultd at start)" ;;
                ours-confirmed) what="one eve-vault-worker for $n, no --escrow-always" ;;
                par) what="$n systemd-cryptsetup attach started together" ;;
                seq) what="$n systemd-cryptsetup attach one after the other" ;;
                esac
                row "$what" "$m" "$mn" "${#x[@]}"
        done
        echo "  N=$n: ours/parallel $(ratio "${med[ours]}" "${med[par]}"), ours/sequential" \
                "$(ratio "${med[ours]}" "${med[seq]}"); without --escrow-always: $(ratio "${med[ours-confirmed]}" \
                "${med[par]}") and $(ratio "${med[ours-confirmed]}" "${med[seq]}") (goal <= 0.5 against parallel)"
        printf 'BENCH\t%s\t%s ms\t%s ms\t%s\t%s\n' \
                "vault boot unlock, $n vault(s): one worker vs $n parallel systemd-cryptsetup" \
                "${med[ours]}" "${med[par]}" "$(ratio "${med[ours]}" "${med[par]}")" "<=0.5"
        printf 'BENCH\t%s\t%s ms\t%s ms\t%s\t%s\n' \
                "vault boot unlock, $n vault(s): one worker vs $n sequential systemd-cryptsetup" \
                "${med[ours]}" "${med[seq]}" "$(ratio "${med[ours]}" "${med[seq]}")" "report"
        printf 'BENCH\t%s\t%s ms\t%s ms\t%s\t%s\n' \
                "vault boot unlock, $n vault(s): one worker, escrow not rewrapped, vs parallel" \
                "${med[ours-confirmed]}" "${med[par]}" "$(ratio "${med[ours-confirmed]}" "${med[par]}")" "report"
        unset med
done
