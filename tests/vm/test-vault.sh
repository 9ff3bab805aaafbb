#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A vault on the node image, with the real TPM (swtpm through OVMF) and dm-crypt: boot 1 runs
# eve-tpm-setup, creates the vault with eve-vault-worker (a LUKS2 image file under /persist/vault-images),
# unlocks it into a mapping mounted at /persist/vaults/vmtest (ext4 made by the worker), writes a file, locks it.
# Boot 2 (same disk and TPM): the worker unlocks and mounts it through the TPM, the file has its checksum;
# stock systemd-cryptsetup 254 opens the same volume through the systemd-tpm2 token without any eve daemon,
# same checksum.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1
vm_boot vault
vm_expect booted tpm-setup vault-create vault-unlock mapped ext4 write lock luks-tokens keyslot-pbkdf2
vm_boot vault
vm_expect booted tpm-setup tpm-after-reboot tpm-after-reboot-sum tpm-after-reboot-lock \
        stock-attach stock-attach-mount stock-attach-sum stock-attach-detach
finish
