#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Two boots of one machine (same disk, OVMF variables and swtpm state): a file written in boot 1 is there in
# boot 2, and so is the persistent TPM key boot 1 made at 0x81000010; PCR 23 (extended in boot 1) is zero again
# and PCRs 0, 4, 7 are measured again to the same values, as after a power cycle.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
vm_image
vm_machine 1
vm_boot reboot1 --cred "eve.vm.token=$token"
vm_expect booted persist-write tpm-createprimary tpm-evictcontrol tpm-readpublic pcr23-extend pcr23-nonzero
vm_boot reboot2 --cred "eve.vm.token=$token"
vm_expect booted persist-read tpm-persistent-found tpm-persistent-same pcr23-reset pcrs-remeasured \
        pcrs-same-as-boot1
finish
