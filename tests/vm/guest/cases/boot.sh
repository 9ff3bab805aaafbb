# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# First boot: systemd up, TPM present and measured boot, dm-crypt usable.

check booted wait_booted
check multi-user systemctl is-active --quiet multi-user.target
failed=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')
if [ -z "$failed" ]; then ok no-failed-units; else fail no-failed-units "$failed"; fi
v=$(systemctl --version | awk 'NR==1 {print $2}')
note "systemd $v, kernel $(uname -r)"
check systemd-254 test "${v%%.*}" -ge 254
check tpmrm0 test -c /dev/tpmrm0
check pcrs-measured pcrs_nonzero 0 4 7

# dm-crypt on a loop file: what the host cannot do (no device-mapper there).
img=/var/tmp/eve-luks.img key=/run/eve-luks.key mnt=/run/eve-luks-mnt
rm -f "$img"
truncate -s 64M "$img"
head -c 32 /dev/urandom >"$key"
check luks-format cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file "$key" "$img"
check luks-open cryptsetup open --key-file "$key" "$img" eve-test
check mkfs mkfs.ext4 -q /dev/mapper/eve-test
mkdir -p "$mnt"
check mount mount /dev/mapper/eve-test "$mnt"
check write sh -c "echo eve > $mnt/f && sync && grep -qx eve $mnt/f"
check umount umount "$mnt"
check luks-close cryptsetup close eve-test
rm -f "$img" "$key"
