# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Host half of the VM tests (sourced by test-*.sh): builds or reuses the image (tools/vm-image), boots machines
# (tools/vm-run) and checks the result lines the guest cases wrote ("ok NAME" / "fail NAME reason" / "# note",
# then "end"). Ends with the project's closing line "<test>: N passed, N failed, N skipped".
# A missing tool or a failed image build is a failure, never a skip.
set -euo pipefail

src=${EVE_TEST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${EVE_TEST_BUILDDIR:-}
test_name=vm-$(basename "$0" .sh | sed 's/^test-//')
passed=0 failed=0

finish() {
        echo "$test_name: $passed passed, $failed failed, 0 skipped"
        [ "$failed" -eq 0 ]
}

die() {
        echo "$test_name: $*" >&2
        failed=$((failed + 1))
        finish || exit 1
}

# vm_image: sets $image, building it when its inputs changed.
vm_image() {
        local t0=$SECONDS t
        for t in qemu-img qemu-system-x86_64 swtpm mkosi; do
                command -v "$t" >/dev/null || die "$t not found: run tools/install-deps --vm"
        done
        image=$("$src/tools/vm-image" --no-rebuild ${build:+"$build"}) ||
                die "the node image could not be built (above)"
        echo "# image $image ready in $((SECONDS - t0)) s"
}

# vm_machine NAME: a fresh machine: $vm (work directory: TPM state, OVMF variables, logs) with its own qcow2
# overlay over the image. Kept after the test for diagnostics; the next run starts it afresh.
vm_machine() {
        vm=${build:-/var/tmp}/vm-tests/$test_name-$1
        rm -rf "$vm"
        mkdir -p "$vm"
        qemu-img create -q -f qcow2 -b "$image" -F raw "$vm/disk.qcow2" || die "qemu-img create failed"
}

# vm_boot CASES [--cred NAME=VALUE]…: boots $vm once with the guest cases CASES (comma-separated). The logs of
# boot N stay in $vm/boot-N/. The guest always has its network card, on QEMU user networking with
# restrict=on (it reaches nothing but what a --guestfwd forwards): a node without one waits minutes for
# network-online.target, which eve-register wants.
# While it runs, the guest's requests are served (vm_watch_requests).
boots=0
vm_boot() {
        local cases=$1 t0=$SECONDS rc=0 watcher
        shift
        rm -f "$vm/results.log"
        : >"$vm/.watching"
        vm_watch_requests &
        watcher=$!
        "$src/tools/vm-run" --workdir "$vm" --disk "$vm/disk.qcow2" --net --cred "eve.vm.test=$cases" "$@" || rc=$?
        rm -f "$vm/.watching"
        wait "$watcher" || true
        boots=$((boots + 1))
        mkdir -p "$vm/boot-$boots"
        cp "$vm"/*.log "$vm/boot-$boots/" 2>/dev/null || true
        echo "# boot $boots ($cases): $((SECONDS - t0)) s, vm-run exit status $rc"
        sed -n 's/^# /#   guest: /p' "$vm/results.log"
        [ "$rc" -eq 0 ] || { failed=$((failed + 1)); echo "not ok vm-run ($cases): exit status $rc"; }
}

# vm_expect NAME…: each NAME must have an "ok" line in this boot's results; any "fail" line fails, and so does
# a missing "end" (the guest did not finish). On failure the serial log's tail follows.
vm_expect() {
        local res=$vm/results.log n bad=0 line
        for n in "$@"; do
                if grep -qx "ok $n" "$res"; then
                        passed=$((passed + 1)); echo "ok $n"
                elif line=$(grep -m1 "^fail $n\( \|$\)" "$res"); then
                        failed=$((failed + 1)) bad=1; echo "not ok $n: ${line#fail "$n" }"
                else
                        failed=$((failed + 1)) bad=1; echo "not ok $n: no result line"
                fi
        done
        while read -r line; do
                n=${line#fail }; n=${n%% *}
                printf '%s\n' "$@" | grep -qx "$n" && continue
                failed=$((failed + 1)) bad=1; echo "not ok (unexpected) $line"
        done < <(grep '^fail ' "$res" || true)
        grep -qx end "$res" || { failed=$((failed + 1)) bad=1; echo "not ok end: the guest did not finish its cases"; }
        if [ "$bad" -eq 1 ]; then
                echo "--- $res"; cat "$res"
                echo "--- last lines of $vm/serial.log"; tail -n 60 "$vm/serial.log" 2>/dev/null || true
        fi
}

# ---- The controller on the host ----
# evc runs on the host's 127.0.0.1; the guest reaches it only as controller.eve.test (10.0.2.100 in its
# /etc/hosts) port 443, through QEMU's user networking with restrict=on and one guestfwd whose command
# (tests/vm/fwd.py, one process per connection) relays to evc. evc's TLS certificate is re-issued by its own
# root for that name; the guest gets the root CA, the URL, an onboarding certificate (allowed in evc for the
# machine's serial) and the secret ACLs as its /config through the credential eve.vm.config
# (tests/vm/guest/node-install, run by eve-vm-node.service before the node's services).
evc_name=controller.eve.test
evc_pid='' evc_port=''

evc() { "$build/controller/evc" --dir "$evcdir" "$@"; }

# evc_setup SERIAL: a controller directory for machine $vm ($evcdir) and the guest's installation
# ($vm/node-config.tar, pass it with --cred-file eve.vm.config=…). Extra /config files: put them under
# $vm/node-config/config/ before calling.
evc_setup() {
        local serial=$1 c=$vm/node-config t=$vm/certtool
        evcdir=$vm/evc
        [ -x "$build/controller/evc" ] || die "no evc in $build"
        command -v certtool >/dev/null || die "certtool not found (gnutls-bin)"
        evc init >/dev/null || die "evc init failed"
        mkdir -p "$t" "$c/config"
        printf 'cn = "%s"\ndns_name = "%s"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n%s\n' \
                "$evc_name" "$evc_name" 'tls_www_server
signing_key
expiration_days = 30' >"$t/server.tmpl"
        printf 'cn = "eve-vm onboarding"\ntls_www_client\nsigning_key\nexpiration_days = 30\n' >"$t/onboard.tmpl"
        {
                certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$evcdir/keys/server-key.pem" &&
                certtool --generate-certificate --load-privkey "$evcdir/keys/server-key.pem" \
                        --load-ca-certificate "$evcdir/certs/root.pem" --load-ca-privkey "$evcdir/keys/root-key.pem" \
                        --template "$t/server.tmpl" --outfile "$evcdir/certs/server.pem" &&
                certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$c/config/onboard.key.pem" &&
                certtool --generate-certificate --load-privkey "$c/config/onboard.key.pem" \
                        --load-ca-certificate "$evcdir/certs/root.pem" --load-ca-privkey "$evcdir/keys/root-key.pem" \
                        --template "$t/onboard.tmpl" --outfile "$c/config/onboard.cert.pem"
        } >"$t/log" 2>&1 || die "certtool failed: $(tail -n 3 "$t/log")"
        evc onboard allow "$serial" --cert "$c/config/onboard.cert.pem" >/dev/null || die "evc onboard allow failed"
        cp "$evcdir/certs/root.pem" "$c/config/root-certificate.pem"
        echo "$evc_name:443" >"$c/config/server"
        echo "$serial" >"$c/config/soft_serial"
        echo "10.0.2.100 $evc_name" >"$c/hosts"
        chmod -R u+rw,go+rX,go-w "$c"
        tar -C "$c" --owner=0 --group=0 -cf "$vm/node-config.tar" . || die "tar failed"
        evc_port=''
}

# evc_start / evc_stop: the controller as this script's child (the binary itself: the evc function put in the
# background would be a subshell, and killing that would leave evc running). The first start picks a free port; later ones
# reuse it (the guestfwd of a running machine names it). evc_unreachable / evc_reachable: the network path
# between the guest and evc cut or restored (the forwarder closes each new connection at once while
# $vm/evc.down exists), with evc itself untouched.
evc_start() {

        rm -f "$vm/evc.port"
        if [ -z "$evc_port" ]; then
                "$build/controller/evc" --dir "$evcdir" serve --listen 127.0.0.1:0 --port-file "$vm/evc.port" \
                        >>"$vm/evc.log" 2>&1 &
        else
                "$build/controller/evc" --dir "$evcdir" serve --listen "127.0.0.1:$evc_port" \
                        --port-file "$vm/evc.port" >>"$vm/evc.log" 2>&1 &
        fi
        evc_pid=$!
        for _ in $(seq 200); do
                [ -s "$vm/evc.port" ] && break
                kill -0 "$evc_pid" 2>/dev/null || die "evc serve exited: $(tail -n 3 "$vm/evc.log")"
                sleep 0.05
        done
        [ -s "$vm/evc.port" ] || die "evc serve did not start"
        evc_port=$(cat "$vm/evc.port")
        echo "# evc serving on 127.0.0.1:$evc_port"
}
evc_unreachable() { : >"$vm/evc.down"; }
evc_reachable() { rm -f "$vm/evc.down"; }
evc_stop() {
        [ -n "$evc_pid" ] || return 0
        kill -TERM "$evc_pid" 2>/dev/null || true
        wait "$evc_pid" 2>/dev/null || true
        evc_pid=''
}
trap evc_stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# vm_node_args: the vm_boot options of a node: its installation and the forward to evc.
vm_node_args() {
        printf '%s\n' --cred-file "eve.vm.config=$vm/node-config.tar" \
                --guestfwd "tcp:10.0.2.100:443-cmd:$src/tests/vm/fwd.py $evc_port $vm/evc.down"
}

# Requests from the guest: a case writes "want NAME" to the results port; while vm_boot runs, the host runs the
# test script's function want_NAME once (an administrator's action at the right moment) and answers nothing:
# the guest waits for the effect.
vm_watch_requests() {
        local seen='' line n
        while [ -f "$vm/.watching" ]; do
                while read -r line; do
                        n=${line#want }
                        case " $seen " in *" $n "*) continue ;; esac
                        seen="$seen $n"
                        echo "# guest asks: $n"
                        "want_$n" >>"$vm/requests.log" 2>&1 || echo "# want_$n failed: $(tail -n 2 "$vm/requests.log")"
                done < <(grep '^want ' "$vm/results.log" 2>/dev/null || true)
                sleep 0.5
        done
}

# host_check NAME COMMAND…: a check on the host's side (evc's view), counted with the guest's. COMMAND runs in
# this shell (a function may use evc; `sh -c` would not see it).
host_check() {
        local n=$1
        shift
        if "$@" >/dev/null 2>&1; then
                passed=$((passed + 1)); echo "ok $n"
        else
                failed=$((failed + 1)); echo "not ok $n: ($*)"
        fi
}
