# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# An application bound to a controller-driven vault (issue 12), with systemd 254 holding it: evc in the guest on
# 127.0.0.1 adds a vault and binds application "web" to it; eve-configd hands the vault section to eve-vaultd,
# which creates the vault, writes its mount unit and web's drop-in (RequiresMountsFor=), maps it and starts the
# mount unit, which wants eve-app@web.service. Checked: the application starts only after the vault is mounted;
# a controller-ordered lock stops the application before the vault is unmounted; after unlock it runs again.
# (Not wired into tests/vm/meson.build yet: the VM suite's owner wires it, after config-credential's setup.)

evcdir=/var/lib/eve-vm-evc
port=14443
app=eve-app@web.service
mp=/persist/vaults/appdata
prog() {
        local p
        for p in "/usr/local/$1" "/usr/$1"; do
                [ -x "$p" ] && { echo "$p"; return 0; }
        done
        return 1
}
evc=$(prog bin/evc)
prop() { busctl --system get-property "$1" "$2" "$3" "$4" 2>/dev/null | cut -d' ' -f2- | tr -d '"'; }
wait_for() {
        local n=$(($1 * 5))
        shift
        while [ "$n" -gt 0 ]; do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.2
                n=$((n - 1))
        done
        "$@"
}
journal_tail() { journalctl -b -u "$1" -n 8 --no-pager -o cat 2>&1 | tr '\n' '|'; }
# mono UNIT PROPERTY: a *TimestampMonotonic property (µs), 0 when never.
mono() { systemctl show -P "$2" "$1"; }

check booted wait_booted
systemctl start eve-tpm-setup.service

# The controller in the guest, the node registered and attested (as config-credential.sh does).
[ -d "$evcdir" ] || "$evc" init --dir "$evcdir" >/dev/null
check evc-up systemd-run --unit=eve-vm-evc-apps --quiet "$evc" serve --dir "$evcdir" --listen "127.0.0.1:$port"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || note "evc: $(journal_tail eve-vm-evc-apps)"
echo "127.0.0.1:$port" >/config/server
cp "$evcdir/certs/root.pem" /config/root-certificate.pem
uuid=$("$evc" device add --cert /config/device.cert.pem --dir "$evcdir" 2>/dev/null | head -n1)
[ -n "$uuid" ] || uuid=$(cat /persist/status/uuid)
systemctl start eve-vaultd.service
systemctl restart eve-register.service eve-attestd.service
attest_complete() { [ "$(prop org.eve.Attest /org/eve/Attest org.eve.Attest State)" = 7 ]; }
check attested wait_for 60 attest_complete || note "attestd: $(journal_tail eve-attestd)"

# The vault and the application bound to it.
vault=$("$evc" vault add "$uuid" appdata --size 64M --dir "$evcdir" | head -n1)
check app-bound "$evc" app set "$uuid" web --vault "$vault" --dir "$evcdir"
systemctl restart eve-configd.service
mounted() { findmnt -rn "$mp" >/dev/null; }
check vault-mounted wait_for 120 mounted || note "vaultd: $(journal_tail eve-vaultd)"
check dropin-written grep -q "RequiresMountsFor=$mp" /run/systemd/system/$app.d/50-eve-trust-vault.conf
mount_unit=$(systemd-escape --path --suffix=mount "$mp")
app_active() { systemctl is-active --quiet "$app"; }
check app-started wait_for 30 app_active || note "$app: $(journal_tail "$app")"
# Started only after the vault was mounted (ordering, not luck): its start after the mount unit's.
m_on=$(mono "$mount_unit" ActiveEnterTimestampMonotonic)
a_on=$(mono "$app" ExecMainStartTimestampMonotonic)
if [ "$a_on" -gt "$m_on" ] && [ "$m_on" -gt 0 ]; then ok app-after-mount; else fail app-after-mount "app $a_on, mount $m_on"; fi
check app-requires-mount sh -c "systemctl show -P RequiresMountsFor $app | grep -q $mp"

# Controller-ordered lock: the application stops before the vault is unmounted.
"$evc" vault set "$uuid" "$vault" --state locked --dir "$evcdir" >/dev/null
unmounted() { ! findmnt -rn "$mp" >/dev/null; }
check vault-unmounted wait_for 120 unmounted
check app-stopped sh -c "! systemctl is-active --quiet $app"
a_off=$(mono "$app" InactiveEnterTimestampMonotonic)
m_off=$(mono "$mount_unit" InactiveEnterTimestampMonotonic)
if [ "$a_off" -gt 0 ] && [ "$a_off" -le "$m_off" ]; then ok app-stopped-first; else fail app-stopped-first "app $a_off, mount $m_off"; fi
locked() { [ "$(prop org.eve.Vault /org/eve/Vault/vault/appdata org.eve.Vault.Vault State)" = Locked ]; }
check vault-locked wait_for 30 locked
check mapping-closed sh -c "! test -e /dev/mapper/eve-vault-appdata"

# Unlock: the vault is mounted again and the application runs again, after the mount.
"$evc" vault set "$uuid" "$vault" --state unlocked --dir "$evcdir" >/dev/null
check vault-remounted wait_for 120 mounted
check app-restarted wait_for 30 app_active
m_on2=$(mono "$mount_unit" ActiveEnterTimestampMonotonic)
a_on2=$(mono "$app" ExecMainStartTimestampMonotonic)
if [ "$a_on2" -gt "$m_on2" ] && [ "$m_on2" -gt "$m_off" ]; then ok app-after-remount; else fail app-after-remount "app $a_on2, mount $m_on2"; fi
systemctl stop eve-vm-evc-apps.service
