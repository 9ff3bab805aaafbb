# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# First boot: systemd up, TPM present and measured boot, dm-crypt usable.

check booted wait_booted
check multi-user systemctl is-active --quiet multi-user.target
failed=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')
if [ -z "$failed" ]; then ok no-failed-units; else fail no-failed-units "$failed"; fi
note_failed_units
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

# The system bus is up (the daemons will be bus services), and everything `meson install` put into the image is
# in place where systemd and the bus read it: units load, policy files are in a directory the bus includes,
# activation files' names are activatable. Nothing of ours is enabled here (units/ decides that).
check system-bus busctl --system --no-pager status org.freedesktop.DBus
installed_in_place() {
        local f d n bad='' policy_dirs activatable
        policy_dirs=$(printf '%s\n' /usr/share/dbus-1/system.d /etc/dbus-1/system.d
                sed -n 's|.*<includedir>\(.*\)</includedir>.*|\1|p' /etc/dbus-1/system-local.conf 2>/dev/null)
        activatable=$(busctl --system --json=short call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus ListActivatableNames 2>/dev/null)
        while read -r f; do
                [ -e "$f" ] || { bad+="$f: missing; "; continue; }
                d=${f%/*} n=${f##*/}
                case "$f" in
                */systemd/system/*@.*) ;;
                */systemd/system/*.service | */systemd/system/*.socket | */systemd/system/*.target | \
                */systemd/system/*.timer | */systemd/system/*.path | */systemd/system/*.mount)
                        [ "$(systemctl show -P LoadState "$n")" = loaded ] || bad+="$n: not loaded by systemd; " ;;
                */dbus-1/system.d/*.conf)
                        printf '%s\n' "$policy_dirs" | grep -qx "$d" || bad+="$f: the system bus does not read $d; " ;;
                */dbus-1/system-services/*.service)
                        n=$(sed -n 's/^Name=//p' "$f")
                        [[ "$activatable" == *"\"$n\""* ]] || bad+="$n: not activatable on the system bus; " ;;
                esac
        done </usr/lib/eve-vm-test/installed-files
        note "installed by meson: $(wc -l </usr/lib/eve-vm-test/installed-files) files"
        [ -z "$bad" ] || { echo "$bad"; return 1; }
}
check installed-in-place installed_in_place
