# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Key rotation killed (SIGKILL, $EVE_VAULT_WORKER_CRASH_AT) at each crash point of services/vaultd/vault-core.c.
# After each kill: at most two keyslots; stock systemd-cryptsetup still opens the volume (with the old or the
# new key, whichever token it tries first) and the file has its checksum; the worker's next unlock finds the
# journal, rolls back (before the new key was escrowed) or forward (after), maps and mounts the volume, and the
# file has its checksum.
#   1. a plain rotation killed at each of its steps (the old key goes at once);
#   2. a rotation held for the controller's confirmation (--hold) killed after the escrow: the next open
#      finishes it into "unconfirmed" with both keys; a confirmation killed after removing the old key;
#   3. a held rotation to the end: a second rotation is refused while two keys exist; confirm leaves one.
# shellcheck source=../vault.sh
. /usr/lib/eve-vm-test/vault.sh

img=$images/rot.img map=eve-vm-rot mnt=/persist/vaults/rot sum=$EVE_VM_STATE/rot.sha256
check booted wait_booted
check tpm-setup provision
make_vault rot "$img" "$map" "$mnt" "$sum"

journal() {
        cryptsetup luksDump --dump-json-metadata "$img" | jq -r '.tokens[] | select(.type == "eve-vault") |
                .rotation.step'
}
# killed TAG STEP WORKER-ARGS…: the worker killed at STEP; at most two keyslots; stock systemd-cryptsetup opens.
killed() {
        local tag=$1 step=$2 rc=0 n
        shift 2
        EVE_VAULT_WORKER_CRASH_AT=$step "$worker" "$@" --image "$img" >"$vout/$tag.json" 2>"$vout/$tag.err" ||
                rc=$?
        check "kill-$tag" test "$rc" -eq 137
        n=$(keyslots "$img")
        check "two-keyslots-$tag" test "$n" -le 2
        note "killed at $step ($*): $n keyslots, journal $(journal)"
        stock_reopen "stock-$tag" "$img" "$mnt" "$sum"
}

gen=1
# 1. step:journal the next open finds:what it does with it
for s in started:started:back slot-add:started:back slot-added:slot-added:back seal:slot-added:back \
        sealed:sealed:back escrowed:escrowed:forward removed:escrowed:forward; do
        IFS=: read -r step found way <<<"$s"
        killed "$step" "$step" rotate
        fwd=false
        [ "$way" = forward ] && gen=$((gen + 1)) fwd=true
        reopen "open-$step" "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' ".recovered == \"$found\"" \
                ".rolled_forward == $fwd" '.keyslots == 1' ".generation == $gen" '.rotation == "none"'
done

# 2. Held: killed after the escrow, finished into "unconfirmed" (both keys kept); the confirmation killed.
killed held-escrowed escrowed rotate --hold
gen=$((gen + 1))
reopen open-held-escrowed "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' '.recovered == "escrowed"' \
        '.rolled_forward' '.keyslots == 2' ".generation == $gen" '.rotation == "unconfirmed"'
killed confirm confirm confirm --generation "$gen"
reopen open-confirm "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' '.keyslots == 1' ".generation == $gen"
vw confirmed confirm --image "$img" --generation "$gen"
check confirmed json_true confirmed .ok '.keyslots == 1' '.rotation == "none"' '.escrow == "confirmed"'

# 3. A held rotation to the end; no third key while it waits; confirmed.
vw rotate rotate --image "$img" --hold
gen=$((gen + 1))
check rotate-held json_true rotate .ok '.keyslots == 2' ".generation == $gen" '.rotation == "unconfirmed"' \
        '.escrow_blob | length > 0'
vw rotate-busy rotate --image "$img"
check rotate-refused-third-key json_true rotate-busy '.ok == false' '.error == "Busy"' ".generation == $gen"
check still-two-keyslots test "$(keyslots "$img")" -eq 2
vw confirm-rotated confirm --image "$img" --generation "$gen"
check confirm-rotated json_true confirm-rotated .ok '.keyslots == 1' '.rotation == "none"'
reopen open-rotated "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' '.recovered == "none"' '.keyslots == 1'
stock_reopen stock-rotated "$img" "$mnt" "$sum"
