# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Not a test: the guest half of bench/vault-vm-bench.sh. One vault; then, alternating, N times each: the TPM
# path of `eve-vault-worker unlock --map` and of stock `systemd-cryptsetup attach … tpm2-device=auto` on the same
# volume, each timed from process start to exit (mapping made), the mapping closed untimed in between. First
# with the escrow still pending (each unlock wraps the key for the controller again), then confirmed (every
# boot's case once the controller holds it). Writes "# bench NAME MS…" lines.
# Then a boot's unlock of N vaults (1, 2: the default boot's config and image vaults, 4), each to a dm-crypt
# mapping ready for mounting: one worker for all N as eve-vaultd runs it at start (`unlock --image … --map …`
# per vault, --escrow-always; and without it, escrow confirmed), against what systemd does at boot for N
# volumes, one systemd-cryptsetup attach per volume, N started together (its parallel units) and one after
# the other. "# bench boot-KIND-N MS…" lines.
# shellcheck source=../vault.sh
. /usr/lib/eve-vm-test/vault.sh

rounds=$(cred eve.vm.bench.rounds)
rounds=${rounds:-10}
# The node's own vaults may have taken the image's free space: then the bench volume lives on tmpfs (both tools
# open the same file either way).
if [ "$(df -Pk "$images" | awk 'NR == 2 { print $4 }')" -lt 358400 ]; then
        images=/run/eve-vm-bench
        mkdir -p "$images"
        note "bench volume on tmpfs: $(df -Ph /persist | awk 'NR == 2 { print $4 }') free under /persist"
fi
img=$images/bench.img
check booted wait_booted
check tpm-setup provision
rm -f "$img"
vw create create --image "$img" --name bench
check bench-create json_true create .ok '.escrow == "pending"'

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
bad=0
# timed NAME COMMAND…: appends the run's milliseconds to the series NAME. udev first finishes what the last
# close queued (untimed), so that neither tool's udev wait includes the other's events.
declare -A series=()
timed() {
        local name=$1 t d
        shift
        udevadm settle --timeout=30 || true
        t=$(date +%s%N)
        "$@" >/dev/null 2>&1 || bad=1
        d=$(ms "$t")
        series[$name]+=" $d"
}
worker_unlock() { vw bench-w unlock --image "$img" --map bench-w; }
# pair WORKER-SERIES: one worker unlock and one stock attach, each checked (after its timing: the check's jq
# runs are no part of the unlock) and closed.
pair() {
        timed "$1" worker_unlock
        json_true bench-w .activated '.key_method == "tpm"' || bad=1
        cryptsetup close bench-w || bad=1
        timed stock stock_attach bench-s "$img"
        is_mapped bench-s || bad=1
        "$stock" detach bench-s || bad=1
}
# One untimed round first: page cache and the TPM as in a steady state.
pair warmup
for _ in $(seq "$rounds"); do pair worker-pending; done
vw confirm confirm --image "$img" --generation 1
check bench-confirm json_true confirm .ok '.escrow == "confirmed"'
for _ in $(seq "$rounds"); do pair worker; done
# Where the worker's time goes: process start (--help), LUKS2 header and tokens (inspect), + TPM unseal and
# keyslot check (unlock without --map); the rest of "worker" is activation.
for _ in 1 2 3; do
        timed start "$worker" --help
        timed inspect "$worker" inspect --image "$img"
        timed keycheck "$worker" unlock --image "$img"
        timed stock-start "$stock" --help
done
for s in worker worker-pending stock start inspect keycheck stock-start; do note "bench $s${series[$s]}"; done

# A boot's vaults: N = 1, 2, 4 volumes of 32 MiB, escrow confirmed (as after the first boot).
for i in 1 2 3 4; do
        rm -f "$images/boot-$i.img"
        vw "boot-create-$i" create --image "$images/boot-$i.img" --name "boot-$i" --size 33554432
        json_true "boot-create-$i" .ok || bad=1
        vw "boot-confirm-$i" confirm --image "$images/boot-$i.img" --generation 1
        json_true "boot-confirm-$i" .ok || bad=1
done
# ours N [--escrow-always]: one worker unlocks and maps vaults 1..N; its result lines in $vout/boot-N.json,
# checked after the timing.
ours() {
        local n=$1 i a=()
        shift
        for i in $(seq "$n"); do a+=(--image "$images/boot-$i.img" --map "boot-w$i"); done
        "$worker" unlock "${a[@]}" "$@" >"$vout/boot-$n.json"
}
ours_check() {
        local i
        [ "$(jq -s '[.[] | select(.activated and .key_method == "tpm")] | length' "$vout/boot-$1.json")" = "$1" ] ||
                { bad=1; note "boot-$1: $(head -c 400 "$vout/boot-$1.json")"; }
        for i in $(seq "$1"); do cryptsetup close "boot-w$i" || bad=1; done
}
# stock_par N / stock_seq N: systemd-cryptsetup attach for volumes 1..N, started together / one by one.
stock_one() { "$stock" attach "boot-s$1" "$images/boot-$1.img" - tpm2-device=auto,headless=1; }
stock_par() {
        local i pids=() rc=0
        for i in $(seq "$1"); do stock_one "$i" & pids+=($!); done
        for i in "${pids[@]}"; do wait "$i" || rc=1; done
        return $rc
}
stock_seq() {
        local i
        for i in $(seq "$1"); do stock_one "$i" || return 1; done
}
stock_close() {
        local i
        for i in $(seq "$1"); do
                is_mapped "boot-s$i" || bad=1
                "$stock" detach "boot-s$i" || bad=1
        done
}
for n in 1 2 4; do
        ours "$n" --escrow-always || bad=1 # warm-up
        ours_check "$n"
        for _ in $(seq "$rounds"); do
                timed "boot-ours-$n" ours "$n" --escrow-always
                ours_check "$n"
                timed "boot-par-$n" stock_par "$n"
                stock_close "$n"
                timed "boot-ours-confirmed-$n" ours "$n"
                ours_check "$n"
                timed "boot-seq-$n" stock_seq "$n"
                stock_close "$n"
        done
        for s in ours ours-confirmed par seq; do note "bench boot-$s-$n${series[boot-$s-$n]}"; done
done

# One traced unlock of each (credential eve.vm.bench.trace=1): every debug line of the tool, libcryptsetup and
# libdevmapper, prefixed with the milliseconds since the process started (taken as each line arrives), to see
# where the mapping's time goes (no strace or perf in the image).
traced() {
        local name=$1 t0 line
        shift
        t0=${EPOCHREALTIME/./}
        while IFS= read -r line; do
                note "trace $name $(((${EPOCHREALTIME/./} - t0) / 1000)) ${line:0:200}"
        done < <("$@" 2>&1 >/dev/null)
}
if [ "$(cred eve.vm.bench.trace)" = 1 ]; then
        EVE_LOG_LEVEL=debug traced worker "$worker" unlock --image "$img" --map bench-w
        cryptsetup close bench-w || bad=1
        SYSTEMD_LOG_LEVEL=debug traced stock "$stock" attach bench-s "$img" - tpm2-device=auto,headless=1
        "$stock" detach bench-s || bad=1
fi
check bench-runs test "$bad" -eq 0
