# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# The container is up with systemd as PID 1 and the suite installed; the swtpm socket is there.
wait_settled
check systemd-pid1 test "$(cat /proc/1/comm)" = systemd
note "$(systemctl --version | head -n1)"
note "units: $(systemctl list-units --all --no-legend --plain 'eve-*' | awk '{print $1 "=" $4}' | tr '\n' ' ')"
check tcti test -S /var/lib/eve-host/tpm/sock
