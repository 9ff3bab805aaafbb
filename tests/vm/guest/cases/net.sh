# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Networking as the scenario tests will use it (vm-run --net --guestfwd): the guest reaches the host service behind
# the guestfwd address 10.0.2.100:80, and nothing else (not even that service at the host's slirp address).

token=$(cred eve.vm.token)
port=$(cred eve.vm.hostport)

guestfwd_echo() {
        local reply='' _
        for _ in $(seq 60); do
                reply=$(timeout 5 bash -c "exec 4<>/dev/tcp/10.0.2.100/80 && echo '$token' >&4 &&
                        read -r r <&4 && echo \"\$r\"" 2>/dev/null) && [ -n "$reply" ] && break
                sleep 1
        done
        [ "$reply" = "evc-ok $token" ] && return 0
        echo "reply '$reply'; links: $(networkctl list --no-pager --no-legend 2>&1 | tr -s ' \n' ' ')"
        return 1
}
check guestfwd guestfwd_echo
check net-restricted sh -c "! timeout 5 bash -c 'exec 4<>/dev/tcp/10.0.2.2/$port' 2>/dev/null"
