#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One boot of the node image: systemd 254 reaches multi-user with no failed unit, /dev/tpmrm0 exists, OVMF
# measured PCRs 0, 4 and 7, and dm-crypt works (LUKS2 on a loop file: format, open, mkfs, mount, write, close).
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1
vm_boot boot
vm_expect booted multi-user no-failed-units systemd-254 tpmrm0 pcrs-measured \
        luks-format luks-open mkfs mount write umount luks-close
finish
