#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A sealing PCR changes in the guest (tests/vm/guest/cases/vault-pcr.sh), one boot: the TPM path is refused
# with PCR 8 named as moved (by the worker and by stock systemd-cryptsetup); the escrow blob from creation (the
# controller path) opens the vault and re-seals it; then the TPM path works again; the file keeps its checksum.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1
vm_boot vault-pcr
vm_expect booted tpm-setup vault-create vault-unlock mapped ext4 write lock sealed-to-pcr8 escrow-saved \
        pcr8-extend tpm-refused not-mapped stock-refused \
        escrow-rescue escrow-rescue-sum escrow-rescue-lock tpm-again tpm-again-sum tpm-again-lock \
        stock-again stock-again-mount stock-again-sum stock-again-detach
finish
