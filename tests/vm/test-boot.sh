#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One boot of the node image: systemd 254 reaches multi-user with no failed unit, /dev/tpmrm0 exists, OVMF
# measured PCRs 0, 4 and 7, and dm-crypt works (LUKS2 on a loop file: format, open, mkfs, mount, write, close).
# The system bus runs, and what `meson install` put into the image is where systemd and the bus read it.
# Networking as the scenario tests will use it: QEMU user networking with restrict=on and one guestfwd to a
# listener on the host's 127.0.0.1 (tests/vm/listener.py, standing in for the controller); the listener must see
# exactly the guest's token, i.e. no connection around the guestfwd.
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

vm_image
vm_machine 1

token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
python3 "$src/tests/vm/listener.py" "$vm/listener.log" >"$vm/listener.port" &
listener=$!
trap 'kill "$listener" 2>/dev/null; wait "$listener" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$vm/listener.port" ] && break; sleep 0.05; done
port=$(cat "$vm/listener.port")
[ -n "$port" ] || die "the host listener did not start"

vm_boot boot,net --guestfwd "tcp:10.0.2.100:80-tcp:127.0.0.1:$port" \
        --cred "eve.vm.token=$token" --cred "eve.vm.hostport=$port"
vm_expect booted multi-user no-failed-units systemd-254 tpmrm0 pcrs-measured \
        luks-format luks-open mkfs mount write umount luks-close system-bus installed-in-place guestfwd \
        net-restricted
if [ "$(cat "$vm/listener.log" 2>/dev/null)" = "$token" ]; then
        passed=$((passed + 1)); echo "ok host-listener"
else
        failed=$((failed + 1)); echo "not ok host-listener: got '$(tr '\n' ' ' <"$vm/listener.log" 2>/dev/null)'"
fi
finish
