# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Key rotation killed (SIGKILL, $EVE_VAULT_WORKER_CRASH_AT) at each of its steps in services/vaultd/vault-core.c.
# After each kill: at most two keyslots; stock systemd-cryptsetup still opens the volume (with the old or the
# new key, whichever token it finds first) and the file has its checksum; the worker's next unlock finds the
# journal, rolls back (before the new key was escrowed) or forward (after), leaves one keyslot, maps the
# volume, and the file has its checksum. Then one rotation runs to the end.
# shellcheck source=../vault.sh
. /usr/lib/eve-vm-test/vault.sh

img=$images/rot.img map=eve-rot mnt=/persist/vaults/rot sum=$EVE_VM_STATE/rot.sha256
check booted wait_booted
check tpm-setup "$tpm_setup"
make_vault rot "$img" "$map" "$mnt" "$sum"

gen=1
# step:journal the next open finds:what it does with it
for s in started:started:back slot-add:started:back slot-added:slot-added:back seal:slot-added:back \
        sealed:sealed:back escrowed:escrowed:forward removed:escrowed:forward; do
        IFS=: read -r step journal way <<<"$s"
        rc=0
        EVE_VAULT_WORKER_CRASH_AT=$step "$worker" rotate --image "$img" >"$vout/rot-$step.json" \
                2>"$vout/rot-$step.err" || rc=$?
        check "kill-$step" test "$rc" -eq 137
        n=$(keyslots "$img")
        check "two-keyslots-$step" test "$n" -le 2
        note "kill at $step: $n keyslots, journal $(cryptsetup luksDump --dump-json-metadata "$img" |
                jq -r '.tokens[] | select(.type == "eve-vault") | .rotation.step')"
        stock_reopen "stock-$step" "$img" "$mnt" "$sum"
        [ "$way" = forward ] && gen=$((gen + 1))
        reopen "open-$step" "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' ".recovered == \"$journal\"" \
                ".rolled_forward == $([ "$way" = forward ] && echo true || echo false)" '.keyslots == 1' \
                ".generation == $gen"
done

vw rotate rotate --image "$img"
check rotate json_true rotate .ok '.keyslots == 1' ".generation == $((gen + 1))" '.escrow_blob | length > 0'
reopen open-rotated "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' '.recovered == "none"'
stock_reopen stock-rotated "$img" "$mnt" "$sum"
