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
boots=0
vm_boot() {
        local cases=$1 t0=$SECONDS rc=0
        shift
        "$src/tools/vm-run" --workdir "$vm" --disk "$vm/disk.qcow2" --net --cred "eve.vm.test=$cases" "$@" || rc=$?
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
