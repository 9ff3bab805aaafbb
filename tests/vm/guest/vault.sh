# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Vault helpers for the guest cases (sourced after lib.sh): the vault worker as eve-vaultd runs it, stock
# systemd-cryptsetup, and a file whose checksum must survive everything. The worker's JSON result of a run
# named N is in $vout/N.json, its stderr in $vout/N.err.

prog() {
        local p
        for p in "/usr/local/libexec/$1" "/usr/libexec/$1"; do
                [ -x "$p" ] && { echo "$p"; return 0; }
        done
        return 1
}
worker=$(prog eve-vault-worker)
tpm_setup=$(prog eve-tpm-setup)
images=/persist/vault-images
stock=/usr/lib/systemd/systemd-cryptsetup
vout=/run/eve-vm-vault
mkdir -p "$images" "$vout"

# provision: eve-tpm-setup, as at every boot; notes what the TPM holds and what the boot's units did.
provision() {
        local out rc=0
        note_failed_units
        note "eve-tpm-setup.service: $(systemctl show -P ActiveState eve-tpm-setup.service 2>&1), $(journalctl -b \
                -u eve-tpm-setup.service -o cat --no-pager 2>&1 | grep -i 'status\|tpm' | tail -n 2 | tr '\n' '|')"
        out=$("$tpm_setup" 2>&1) || rc=$?
        note "eve-tpm-setup: $(printf '%s\n' "$out" | tail -n1); persistent: $(tpm2_getcap handles-persistent |
                tr -d '\n-')"
        [ "$rc" -eq 0 ] || { echo "exit $rc: $out"; return 1; }
}

# vw N ARGS…: runs the worker; its exit status is in $vw_rc.
vw() {
        local n=$1
        shift
        vw_rc=0
        "$worker" "$@" >"$vout/$n.json" 2>"$vout/$n.err" || vw_rc=$?
}

# json_true N FILTER…: each jq filter is true of run N's result; otherwise says which is not, with the result.
json_true() {
        local n=$1 f
        shift
        for f in "$@"; do
                jq -e "$f" "$vout/$n.json" >/dev/null 2>&1 && continue
                echo "not ($f): exit $vw_rc, $(head -c 600 "$vout/$n.json") $(tail -n2 "$vout/$n.err" | tr '\n' ' ')"
                return 1
        done
}

# The sealed secret of a run's escrow blob, written for a later --escrow-file.
save_escrow() { jq -r .escrow_blob "$vout/$1.json" | base64 -d >"$2" && [ -s "$2" ]; }

keyslots() { cryptsetup luksDump --dump-json-metadata "$1" | jq '.keyslots | length'; }
token_types() { cryptsetup luksDump --dump-json-metadata "$1" | jq -r '[.tokens[].type] | sort | join(",")'; }

# A file of random data in the mounted vault; its sha256 goes to STATEFILE.
fill() { head -c 4M /dev/urandom >"$1/data" && sha256sum "$1/data" | cut -d' ' -f1 >"$2" && sync; }
# Same checksum as recorded?
same_sum() {
        local now
        now=$(sha256sum "$1/data" | cut -d' ' -f1)
        [ "$now" = "$(cat "$2")" ] || { echo "sha256 $now, recorded $(cat "$2")"; return 1; }
}

is_mapped() { [ -b "/dev/mapper/$1" ] && dmsetup table "$1" | grep -q ' crypt '; }
is_ext4() { [ "$(blkid -o value -s TYPE "/dev/mapper/$1")" = ext4 ]; }
mount_vault() { mkdir -p "$2" && mount "/dev/mapper/$1" "$2"; }
gone() { ! mountpoint -q "$2" && ! [ -e "/dev/mapper/$1" ]; }
# lock_vault IMAGE MAP MNT: the worker unmounts and closes (what eve-vaultd's Lock runs).
lock_vault() {
        vw lock lock --image "$1" --map "$2" --mount "$3"
        json_true lock .ok && gone "$2" "$3"
}

# stock_attach NAME IMAGE: systemd's own cryptsetup, TPM only (headless: fail rather than ask for a password).
stock_attach() { timeout 120 "$stock" attach "$1" "$2" - tpm2-device=auto,headless=1; }
stock_detach() { umount "$2" && "$stock" detach "$1" && gone "$1" "$2"; }

# make_vault NAME IMAGE MAP MNT SUMFILE [WORKER ARGS…]: create; unlock with a mapping and a mount point (the
# worker makes the ext4 file system on first use, as eve-vaultd has it do); write the file; lock. Checks
# vault-create, vault-unlock, mapped, ext4, write, lock.
make_vault() {
        local name=$1 img=$2 map=$3 mnt=$4 sum=$5
        shift 5
        rm -f "$img"
        vw create create --image "$img" --name "$name" "$@"
        check vault-create json_true create .ok '.key_method == "tpm"' '.escrow == "pending"' '.keyslots == 1' \
                '.escrow_blob | length > 0'
        vw unlock unlock --image "$img" --map "$map" --mount "$mnt"
        check vault-unlock json_true unlock .ok .activated .mounted .made_filesystem '.key_method == "tpm"'
        check mapped is_mapped "$map"
        check ext4 is_ext4 "$map"
        check write fill "$mnt" "$sum"
        check lock lock_vault "$img" "$map" "$mnt"
}

# reopen TAG IMAGE MAP MNT SUMFILE FILTER…: the worker unlocks and mounts (run TAG, its result must satisfy the
# filters; the file system is never made again), the file has its checksum, the worker locks. Checks TAG,
# TAG-sum, TAG-lock. Further worker arguments in the array unlock_args.
unlock_args=()
reopen() {
        local tag=$1 img=$2 map=$3 mnt=$4 sum=$5
        shift 5
        vw "$tag" unlock --image "$img" --map "$map" --mount "$mnt" "${unlock_args[@]}"
        check "$tag" json_true "$tag" .ok .activated .mounted '.made_filesystem != true' "$@" || return 1
        check "$tag-sum" same_sum "$mnt" "$sum"
        check "$tag-lock" lock_vault "$img" "$map" "$mnt"
}

# stock_reopen TAG IMAGE MNT SUMFILE: stock systemd-cryptsetup opens it (as TAG), mount, checksum, detach.
# Checks TAG, TAG-mount, TAG-sum, TAG-detach.
stock_reopen() {
        local tag=$1 img=$2 mnt=$3 sum=$4
        check "$tag" stock_attach "$tag" "$img" || return 1
        check "$tag-mount" mount_vault "$tag" "$mnt" || return 1
        check "$tag-sum" same_sum "$mnt" "$sum"
        check "$tag-detach" stock_detach "$tag" "$mnt"
}
