# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Not a test: the guest half of bench/vault-vm-bench.sh. One vault; then, alternating, N times each: the TPM
# path of `eve-vault-worker unlock --map` and of stock `systemd-cryptsetup attach … tpm2-device=auto` on the same
# volume, each timed from process start to exit (mapping made), the mapping closed untimed in between. First
# with the escrow still pending (each unlock wraps the key for the controller again), then confirmed (every
# boot's case once the controller holds it). Writes "# bench NAME MS…" lines.
# shellcheck source=../vault.sh
. /usr/lib/eve-vm-test/vault.sh

rounds=$(cred eve.vm.bench.rounds)
rounds=${rounds:-10}
# The node's own vaults may have taken the image's free space: then the bench volume lives on tmpfs (both tools
# open the same file either way).
if [ "$(df -Pk "$images" | awk 'NR == 2 { print $4 }')" -lt 204800 ]; then
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
worker_unlock() { vw bench-w unlock --image "$img" --map bench-w && json_true bench-w .activated '.key_method == "tpm"'; }
# pair WORKER-SERIES: one worker unlock and one stock attach, each checked and closed.
pair() {
        timed "$1" worker_unlock
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
