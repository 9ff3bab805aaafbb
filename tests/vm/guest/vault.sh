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
mount_vault() { mkdir -p "$2" && mount "/dev/mapper/$1" "$2"; }
close_vault() { umount "$2" && cryptsetup close "$1" && ! [ -e "/dev/mapper/$1" ]; }

# stock_attach NAME IMAGE: systemd's own cryptsetup, TPM only (headless: fail rather than ask for a password).
stock_attach() { timeout 120 "$stock" attach "$1" "$2" - tpm2-device=auto,headless=1; }
stock_detach() { umount "$2" && "$stock" detach "$1" && ! [ -e "/dev/mapper/$1" ]; }

# make_vault NAME IMAGE MAP MNT SUMFILE [WORKER ARGS…]: create, unlock with a mapping, mkfs.ext4, mount, write
# the file, close. Checks vault-create, vault-map, mkfs, mount, write, close (prefixed with $pfx).
make_vault() {
        local name=$1 img=$2 map=$3 mnt=$4 sum=$5
        shift 5
        rm -f "$img"
        vw create create --image "$img" --name "$name" "$@"
        check "${pfx:-}vault-create" json_true create .ok '.key_method == "tpm"' '.escrow == "pending"' \
                '.keyslots == 1' '.escrow_blob | length > 0'
        vw map unlock --image "$img" --map "$map"
        check "${pfx:-}vault-map" json_true map .ok .activated '.key_method == "tpm"'
        check "${pfx:-}mapped" is_mapped "$map"
        check "${pfx:-}mkfs" mkfs.ext4 -q "/dev/mapper/$map"
        check "${pfx:-}mount" mount_vault "$map" "$mnt"
        check "${pfx:-}write" fill "$mnt" "$sum"
        check "${pfx:-}close" close_vault "$map" "$mnt"
}

# reopen TAG IMAGE MAP MNT SUMFILE FILTER…: the worker unlocks (run TAG, its result must satisfy the filters),
# the mapping mounts, the file has its checksum, close. Checks TAG, TAG-mount, TAG-sum, TAG-close. Further
# worker arguments in the array unlock_args.
unlock_args=()
reopen() {
        local tag=$1 img=$2 map=$3 mnt=$4 sum=$5
        shift 5
        vw "$tag" unlock --image "$img" --map "$map" "${unlock_args[@]}"
        check "$tag" json_true "$tag" .ok .activated "$@" || return 1
        check "$tag-mount" mount_vault "$map" "$mnt" || return 1
        check "$tag-sum" same_sum "$mnt" "$sum"
        check "$tag-close" close_vault "$map" "$mnt"
}

# stock_reopen TAG IMAGE MNT SUMFILE: stock systemd-cryptsetup opens it (as TAG), mount, checksum, detach.
stock_reopen() {
        local tag=$1 img=$2 mnt=$3 sum=$4
        check "$tag" stock_attach "$tag" "$img" || return 1
        check "$tag-mount" mount_vault "$tag" "$mnt" || return 1
        check "$tag-sum" same_sum "$mnt" "$sum"
        check "$tag-detach" stock_detach "$tag" "$mnt"
}
