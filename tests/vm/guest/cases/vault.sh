# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# A vault through a power cycle (tests/vm/test-vault.sh boots this case twice with the same
# credentials: SMBIOS strings are measured, so different ones could move PCR 1). Boot 1, when no vault image
# exists yet: provision the TPM, create a vault, unlock it into a dm-crypt mapping mounted under /persist/vaults
# (the worker makes the ext4 file system), write a file, lock. (Not eve-vaultd's default vaults' names, map
# names or mount points: the daemon may run beside the test.) Boot 2: the worker unlocks and mounts it through
# the TPM again, the file has its checksum; then stock systemd-cryptsetup (systemd 254, no eve daemon) opens
# the same volume through our systemd-tpm2 token.
# shellcheck source=../vault.sh
. /usr/lib/eve-vm-test/vault.sh

img=$images/vmtest.img map=eve-vm-test mnt=/persist/vaults/vmtest sum=$EVE_VM_STATE/vault.sha256
check booted wait_booted
check tpm-setup provision

if [ ! -e "$img" ]; then
        note "vault boot 1"
        make_vault vmtest "$img" "$map" "$mnt" "$sum"
        check luks-tokens test "$(token_types "$img")" = "eve-vault,systemd-tpm2"
        check keyslot-pbkdf2 sh -c "cryptsetup luksDump --dump-json-metadata '$img' |
                jq -e '[.keyslots[].kdf | select(.type == \"pbkdf2\" and .hash == \"sha512\" and
                        .iterations == 1000)] | length == 1'"
        for i in $(seq 0 15); do printf '%s %s\n' "$i" "$(pcr "$i")"; done >"$EVE_VM_STATE/vault.pcrs"
else
        note "vault boot 2"
        moved=$(for i in $(seq 0 15); do printf '%s %s\n' "$i" "$(pcr "$i")"; done |
                diff - "$EVE_VM_STATE/vault.pcrs" | awk '/^</ {printf "%s ", $2}')
        note "PCRs not as in boot 1: ${moved:-none}"
        reopen tpm-after-reboot "$img" "$map" "$mnt" "$sum" '.key_method == "tpm"' '.moved_pcrs == []' \
                '.recovered == "none"'
        stock_reopen stock-attach "$img" "$mnt" "$sum"
fi
