# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# An application bound to a controller-driven vault (issue 12), run after node-first in vm-node's first boot
# (evc on the host, the node registered and attested). The host acts as the administrator (tests/vm/test-node.sh):
#   want appvault   evc vault add DEV appdata; evc app set DEV web --vault appdata (one config)
#   want applock    evc vault set DEV appdata --state locked
#   want appunlock  evc vault set DEV appdata --state unlocked
#   want appbind    evc app set DEV db --vault appdata (a second application, bound to the open vault)
#   want appunbind  evc app remove DEV db (the vault stays)
#   want appremove  evc app remove DEV web; evc vault remove DEV appdata (one config)
# After each, eve-configd fetches at once (Refresh) and hands the vault section to eve-vaultd, which converges:
# creates the vault, writes its mount unit and web's drop-in (RequiresMountsFor=), maps it and starts the mount
# unit, which wants eve-app@web.service. Checked with systemd's own state: the application leaves `inactive` only
# after the vault's mount unit became active; on the controller's lock it is inactive before the mount unit
# starts unmounting, and stays stopped while locked; after unlock it runs again on the same data; an application
# bound to the open vault starts at once, and stops when unbound while the vault stays (the other application and
# the mount untouched); after removal the application is stopped before the vault goes and not started again.
# The application is eve-app@web.service itself (units/eve-app@.service, DynamicUser=, ProtectSystem=strict)
# with a drop-in of this test that makes it write into its vault and keep that file open while it runs.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

app=eve-app@web.service app2=eve-app@db.service
mp=/persist/vaults/appdata
mount_unit=$(systemd-escape --path --suffix=mount "$mp")
dropin=/run/systemd/system/$app.d/50-eve-trust-vault.conf

# ---- the test application: eve-app@web with a drop-in (vaultd's own drop-in is 50-eve-trust-vault.conf) ----
mkdir -p "/run/systemd/system/$app.d" /run/eve-vm
cat >/run/eve-vm/web-app <<EOF
# The test application: one line per start in a log in its vault, kept open while it runs.
umask 0
exec 4>>$mp/web/log
echo "start \$(cut -d' ' -f1 /proc/uptime)" >&4
exec sleep infinity
EOF
chmod 0644 /run/eve-vm/web-app
cat >"/run/systemd/system/$app.d/60-eve-vm-app.conf" <<EOF
# Written by tests/vm/guest/cases/app-vault.sh: the application writes into its vault.
[Service]
ExecStartPre=+/bin/mkdir -p $mp/web
ExecStartPre=+/bin/chmod 0777 $mp/web
ReadWritePaths=$mp
ExecStart=
ExecStart=/bin/sh /run/eve-vm/web-app
EOF
systemctl daemon-reload
# systemd unloads inactive units nothing refers to, and their timestamps with them: a unit of the test that
# refers to both (After= only: it starts neither) keeps them loaded for the comparisons below.
systemd-run --quiet --unit=eve-vm-app-pin -p "After=$app" -p "After=$mount_unit" sleep infinity

refresh() { busctl --system call org.eve.Config /org/eve/Config org.eve.Config Refresh >/dev/null 2>&1; }
# converge SECONDS COMMAND…: fetches the config now (and every 10 s) until COMMAND succeeds (checked every
# 0.5 s), at most SECONDS; the last try's status.
converge() {
        local end=$((SECONDS + $1)) next=0
        shift
        while [ "$SECONDS" -lt "$end" ]; do
                if [ "$SECONDS" -ge "$next" ]; then
                        refresh
                        next=$((SECONDS + 10))
                fi
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.5
        done
        "$@"
}
state() { systemctl show -P ActiveState "$1"; }
is_state() { [ "$(state "$1")" = "$2" ]; }
# mono UNIT PROPERTY: a *TimestampMonotonic property (µs since boot), 0 when never.
mono() { systemctl show -P "$2" "$1"; }
# before NAME A B WHAT: ok when 0 < A <= B (µs).
before() {
        if [ "${2:-0}" -gt 0 ] && [ "$2" -le "${3:-0}" ]; then ok "$1"; else fail "$1" "$4"; fi
}
vault_mapped_mounted() { mounted /dev/mapper/eve-vault-appdata "$mp"; }
app_on_vault() {
        [ "$(findmnt -n -o SOURCE --target "$mp/web/log")" = /dev/mapper/eve-vault-appdata ] &&
                [ "$(grep -c '^start ' "$mp/web/log")" = "$1" ]
}
note_app() {
        note "vault appdata: $(vault_prop appdata State) '$(vault_prop appdata LastError)'; $mount_unit \
$(state "$mount_unit"); $app $(state "$app")/$(systemctl show -P Result "$app")"
        note "eve-vaultd: $(journal_tail eve-vaultd.service 10)"
        note "$app: $(journal_tail "$app" 6)"
}

# ---- 1. a vault and an application on it, in one config ----
want appvault
check app-vault-unlocked converge 240 vault_is appdata Unlocked || note_app
check app-vault-mounted wait_for 60 vault_mapped_mounted || note_app
# The binding may come in the config after the vault's (the node fetched between the two admin commands):
# wait for it, fetching, as for the vault.
check app-dropin converge 120 grep -qx "RequiresMountsFor=$mp" "$dropin" || note_app
check app-requires-mount wait_for 30 sh -c "systemctl show -P Requires $app | grep -qw $mount_unit &&
        systemctl show -P After $app | grep -qw $mount_unit"
check app-started wait_for 60 is_state "$app" active || note_app
# It left `inactive` only after the mount unit was active: systemd held it until then.
before app-after-mount "$(mono "$mount_unit" ActiveEnterTimestampMonotonic)" \
        "$(mono "$app" InactiveExitTimestampMonotonic)" \
        "mount active at $(mono "$mount_unit" ActiveEnterTimestampMonotonic), app starting at \
$(mono "$app" InactiveExitTimestampMonotonic)"
check app-writes-vault wait_for 30 app_on_vault 1

# ---- 2. the controller locks the vault ----
want applock
check app-vault-locked converge 180 vault_is appdata Locked || note_app
check app-stopped-on-lock is_state "$app" inactive
check app-stopped-cleanly test "$(systemctl show -P Result "$app")" = success
# Stopped before the mount unit started unmounting (not killed by the vault vanishing under it).
a_off=$(mono "$app" InactiveEnterTimestampMonotonic)
m_off=$(mono "$mount_unit" ActiveExitTimestampMonotonic)
before app-stopped-before-unmount "$a_off" "$m_off" "app inactive at $a_off, mount leaving active at $m_off"
check app-vault-unmapped sh -c "! test -e /dev/mapper/eve-vault-appdata && ! findmnt -rn $mp"
check app-data-hidden sh -c "! test -e $mp/web/log"
# Nothing starts it while the vault is locked (one more config round changes nothing).
refresh
check app-stays-stopped sh -c "[ \"\$(systemctl show -P ActiveState $app)\" = inactive ] &&
        [ \"\$(systemctl show -P InactiveEnterTimestampMonotonic $app)\" = $a_off ]"

# ---- 3. the controller unlocks it: the application runs again, after the mount, on the same data ----
want appunlock
check app-vault-unlocked-again converge 180 vault_is appdata Unlocked || note_app
check app-restarted wait_for 60 is_state "$app" active || note_app
m_on=$(mono "$mount_unit" ActiveEnterTimestampMonotonic)
a_on=$(mono "$app" InactiveExitTimestampMonotonic)
if [ "${m_on:-0}" -gt "${m_off:-0}" ]; then
        before app-after-remount "$m_on" "$a_on" "mount active again at $m_on, app starting at $a_on"
else
        fail app-after-remount "the mount unit's activation ($m_on) is not after its stop ($m_off)"
fi
check app-data-kept wait_for 30 app_on_vault 2

# ---- 4. a second application bound to the vault while it is open: started now, not at the next mount ----
want appbind
check app-bound-later-started converge 120 is_state "$app2" active ||
        note "eve-vaultd: $(journal_tail eve-vaultd.service 6); $app2: $(journal_tail "$app2" 4)"
check app-bound-later-requires sh -c "systemctl show -P Requires $app2 | grep -qw $mount_unit"

# ---- 4b. that application unbound while the vault stays: stopped (it would hold files open on a vault no
# longer its own); the first application and the mount untouched ----
want appunbind
check app-unbound-stopped converge 120 is_state "$app2" inactive ||
        note "eve-vaultd: $(journal_tail eve-vaultd.service 6); $app2: $(journal_tail "$app2" 4)"
check app-unbound-others-kept sh -c "systemctl is-active -q $app && findmnt -rn $mp >/dev/null &&
        ! test -e /run/systemd/system/$app2.d/50-eve-trust-vault.conf"

# ---- 5. the controller removes the application and the vault ----
want appremove
vault_gone() { ! busctl --system introspect org.eve.Vault /org/eve/Vault/vault/appdata >/dev/null 2>&1 &&
        ! test -e /persist/vault-images/appdata.img; }
# The application stops, then the mount unit (both observed before the vault and its units go).
removed_stopped() { is_state "$app" inactive && is_state "$app2" inactive && is_state "$mount_unit" inactive; }
check app-stopped-on-removal converge 180 removed_stopped || note_app
a_off2=$(mono "$app" InactiveEnterTimestampMonotonic)
m_off2=$(mono "$mount_unit" ActiveExitTimestampMonotonic)
if [ "${a_off2:-0}" -gt "${a_on:-0}" ]; then
        before app-stopped-before-removal "$a_off2" "$m_off2" "app inactive at $a_off2, mount leaving active at \
$m_off2"
else
        fail app-stopped-before-removal "the application did not stop after its restart ($a_off2 <= $a_on)"
fi
check app-vault-deleted wait_for 120 vault_gone || note_app
units_gone() {
        ! test -e "/run/systemd/system/$mount_unit" && ! test -e "$dropin" &&
                ! test -e "/run/systemd/system/$app2.d/50-eve-trust-vault.conf"
}
check app-units-removed wait_for 30 units_gone
check app-not-restarted sh -c "[ \"\$(systemctl show -P ActiveState $app)\" = inactive ] &&
        [ \"\$(systemctl show -P InactiveEnterTimestampMonotonic $app)\" = $a_off2 ] &&
        [ \"\$(systemctl show -P ActiveState $app2)\" = inactive ] && ! findmnt -rn $mp"
systemctl stop eve-vm-app-pin.service
