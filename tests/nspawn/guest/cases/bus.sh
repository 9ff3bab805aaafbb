# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# The real bus with the installed policy: an ordinary user (eve-tester) may read every service's properties and
# is refused every method that changes something, with the service's named AccessDenied error; a member of
# eve-admin (eve-operator) gets past that check; only the service's own user may own its name (eve-tester is
# refused by the bus; the service's user is allowed and finds the name taken).
wait_settled
check test-users id eve-tester eve-operator || return 0

as() { local u=$1; shift; runuser -u "$u" -- "$@" 2>&1; }

# bus_case SERVICE USER READ_ARGS MUTATE_ARGS: READ_ARGS and MUTATE_ARGS are busctl argument strings.
bus_case() {
        local svc=$1 user=$2 read=$3 mutate=$4 name=org.eve.$1 out
        # shellcheck disable=SC2086
        if out=$(as eve-tester busctl $read); then
                ok "read-$svc"
        else
                fail "read-$svc" "eve-tester: busctl $read: $out"
        fi
        # shellcheck disable=SC2086
        out=$(as eve-tester busctl $mutate)
        if printf '%s' "$out" | grep -q "$name.Error.AccessDenied\|Only root or members of group 'eve-admin'"; then
                ok "denied-$svc"
        else
                fail "denied-$svc" "eve-tester: busctl $mutate: $out"
        fi
        # shellcheck disable=SC2086
        out=$(as eve-operator busctl $mutate)
        if printf '%s' "$out" | grep -q "AccessDenied\|Access denied\|^runuser:"; then
                fail "admin-$svc" "eve-operator (eve-admin): busctl $mutate: $out"
        else
                ok "admin-$svc"
        fi
        out=$(as eve-tester /usr/lib/eve-nspawn-test/eve-nspawn-own-name "$name")
        if [ "$out" = denied ]; then ok "own-denied-$svc"; else fail "own-denied-$svc" "eve-tester owning $name: $out"; fi
        out=$(as "$user" /usr/lib/eve-nspawn-test/eve-nspawn-own-name "$name")
        if [ "$out" = exists ]; then ok "own-allowed-$svc"; else fail "own-allowed-$svc" "$user owning $name: $out"; fi
}

if has_unit eve-vaultd.service; then
        bus_case Vault root \
                "get-property org.eve.Vault /org/eve/Vault org.eve.Vault.Manager Vaults" \
                "call org.eve.Vault /org/eve/Vault/vault/image org.eve.Vault.Vault Lock"
fi
if has_unit eve-attestd.service; then
        bus_case Attest eve-attest \
                "get-property org.eve.Attest /org/eve/Attest org.eve.Attest StateName" \
                "call org.eve.Attest /org/eve/Attest org.eve.Attest Restart"
fi
if has_unit eve-configd.service; then
        bus_case Config eve-config \
                "get-property org.eve.Config /org/eve/Config org.eve.Config ConfigHash" \
                "call org.eve.Config /org/eve/Config org.eve.Config Refresh"
fi
