# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# A sealing PCR moves (PCR 8, in the default set and not measured by this boot chain, is extended): the worker
# refuses the TPM path and names PCR 8, nothing is mapped, and stock systemd-cryptsetup is refused as well. The
# escrow blob made at creation (what the controller would release; given on --keys-fd as eve-vaultd does)
# unwraps in this TPM, opens the vault and re-seals it to today's PCRs with a fresh escrow blob; after that the
# TPM path works again, for the worker and for stock systemd-cryptsetup, and the file has its checksum throughout.
# shellcheck source=../vault.sh
. /usr/lib/eve-vm-test/vault.sh

img=$images/pcr.img map=eve-vm-pcr mnt=/persist/vaults/pcr sum=$EVE_VM_STATE/pcr.sha256 blob=$EVE_VM_STATE/pcr.escrow
check booted wait_booted
check tpm-setup provision
make_vault pcr "$img" "$map" "$mnt" "$sum"
check sealed-to-pcr8 json_true create '.pcrs | index(8) != null'
check escrow-saved save_escrow create "$blob"

check pcr8-extend tpm2_pcrextend "8:sha256=$(printf 'unapproved change' | sha256sum | cut -d' ' -f1)"
vw locked unlock --image "$img" --map "$map" --mount "$mnt"
check tpm-refused json_true locked .ok '.activated == false' '.mounted == false' '.key_method == "none"' \
        '.moved_pcrs == [8]' '.reason | contains("locked")'
check not-mapped gone "$map" "$mnt"
refused() { ! stock_attach stock-locked "$img" >"$vout/stock-locked.out" 2>&1 && ! [ -e /dev/mapper/stock-locked ]; }
check stock-refused refused
note "systemd-cryptsetup: $(grep -i tpm "$vout/stock-locked.out" | head -n2 | tr '\n' ' ')"

# The blob as eve-vaultd hands a controller-released key to the worker: JSON on an inherited fd.
printf '{"escrow":"%s"}' "$(base64 -w0 "$blob")" >"$vout/keys.json"
exec 5<"$vout/keys.json"
unlock_args=(--keys-fd 5)
reopen escrow-rescue "$img" "$map" "$mnt" "$sum" '.key_method == "controller"' '.moved_pcrs == []' \
        '.escrow == "pending"' '.escrow_blob | length > 0'
exec 5<&-
unlock_args=()
reopen tpm-again "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' '.moved_pcrs == []'
stock_reopen stock-again "$img" "$mnt" "$sum"
