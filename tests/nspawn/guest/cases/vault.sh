# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# No device-mapper in a container: eve-vaultd still serves, every default vault says why it is not unlocked
# ("device-mapper unavailable", the named error DeviceMapperUnavailable) while the TPM key was verified; and
# units that need a vault (RequiresMountsFor=/persist/vault, or Requires=/After=eve-vaults.target) are held,
# never started without it.
wait_settled

# The reason is on the bus once each vault was tried (the config vault's escrow round with evc may come
# before or after): poll each vault's LastError for up to 20 s.
for v in image config; do
        p=/org/eve/Vault/vault/$v
        for _ in $(seq 200); do
                err=$(busctl get-property org.eve.Vault "$p" org.eve.Vault.Vault LastError 2>&1)
                name=$(busctl get-property org.eve.Vault "$p" org.eve.Vault.Vault LastErrorName 2>&1)
                state=$(busctl get-property org.eve.Vault "$p" org.eve.Vault.Vault State 2>&1)
                printf '%s' "$err" | grep -qi "device-mapper unavailable" && break
                sleep 0.1
        done
        note "vault $v: State $state, LastError $err, LastErrorName $name"
        if printf '%s' "$err" | grep -qi "device-mapper unavailable" &&
                printf '%s' "$name" | grep -q "org.eve.Vault.Error.DeviceMapperUnavailable" &&
                ! printf '%s' "$state" | grep -q '"Unlocked"'; then
                ok "dm-unavailable-$v"
        else
                fail "dm-unavailable-$v" "State $state, LastError $err, LastErrorName $name"
        fi
done

# Two stand-in applications.
mkdir -p /run/systemd/system
printf '[Unit]\nRequiresMountsFor=/persist/vault\n[Service]\nExecStart=/bin/sleep infinity\n' \
        >/run/systemd/system/eve-test-app-mount.service
printf '[Unit]\nRequires=eve-vaults.target\nAfter=eve-vaults.target\n[Service]\nExecStart=/bin/sleep infinity\n' \
        >/run/systemd/system/eve-test-app-target.service
systemctl daemon-reload
# In a container systemd tracks no devices (no udev): the vault's mount cannot wait for its mapping and fails at
# once, so the start of the application fails as a dependency (in the VM the same job waits, without a time
# limit, until eve-vaultd maps the vault). Either way the application never runs without its vault.
for a in mount target; do
        u=eve-test-app-$a.service
        out=$(timeout 20 systemctl start "$u" 2>&1)
        rc=$?
        note "$u: start exit $rc ($out); $(systemctl show -p ActiveState -p Result -p ExecMainPID "$u" | tr '\n' ' ')"
        if [ "$rc" -ne 0 ] && [ "$(systemctl show -P ExecMainPID "$u")" = 0 ] &&
                ! systemctl is-active -q "$u"; then
                ok "app-held-$a"
        else
                fail "app-held-$a" "$u: start exit $rc, $(systemctl is-active "$u") without its vault"
        fi
done
note "persist-vault.mount: $(systemctl show -p ActiveState -p Result persist-vault.mount | tr '\n' ' ')"
