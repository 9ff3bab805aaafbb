# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Host half of the container tests (sourced by test-*.sh): builds or reuses the container tree
# (tests/nspawn/image), starts a swtpm and evc on the host as this script's children, boots the tree with
# `systemd-nspawn -b` and checks the result lines the guest cases wrote ("ok NAME" / "fail NAME reason" /
# "# note", then "end"). Ends with the project's closing line "<test>: N passed, N failed, N skipped".
#
# The container shares the host's network namespace: evc listens on the host's 127.0.0.1, its TLS certificate is
# for 127.0.0.1, and nothing else (no veth, no addresses, no NAT) has to be set up or torn down on a host whose
# PID 1 is not systemd. The TPM is a swtpm socket bind-mounted into the container (swtpm TCTI); its results,
# /config and the socket are the only host paths the container sees.
set -euo pipefail

src=${EVE_TEST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${EVE_TEST_BUILDDIR:?run through meson test (EVE_TEST_BUILDDIR)}
test_name=nspawn-$(basename "$0" .sh | sed 's/^test-//')
passed=0 failed=0
pids=()

finish() {
        echo "$test_name: $passed passed, $failed failed, 0 skipped"
        [ "$failed" -eq 0 ]
}

die() {
        echo "$test_name: $*" >&2
        failed=$((failed + 1))
        finish || exit 1
}

# Children are stopped and reaped however the script ends (PID 1 here does not reap).
teardown() {
        local p
        if [ -S "${W:-/nonexistent}/tpm/sock.ctrl" ]; then
                swtpm_ioctl --unix "$W/tpm/sock.ctrl" -s 2>/dev/null || true
        fi
        for p in "${pids[@]}"; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
}
trap teardown EXIT

# ns_image: sets $image, building the tree when its inputs changed.
ns_image() {
        local t0=$SECONDS t
        for t in systemd-nspawn mkosi swtpm certtool unshare; do
                command -v "$t" >/dev/null || die "$t not found: run tools/install-deps --vm"
        done
        image=$("$src/tests/nspawn/image" --no-rebuild "$build") || die "the container tree could not be built (above)"
        echo "# tree $image ready in $((SECONDS - t0)) s"
}

# ns_machine: a fresh work directory $W (TPM state and socket, /config, evc, results), kept for diagnostics.
ns_machine() {
        W=$build/nspawn-tests/$test_name
        rm -rf "$W"
        mkdir -p "$W/tpm" "$W/tpm-state" "$W/config" "$W/results" "$W/evc"
        chmod 0755 "$W" "$W/tpm" "$W/config" "$W/results"
}

# ns_swtpm: a swtpm for the container; the socket is open to every user of the container (tss is a group there
# only, and the socket is what /dev/tpmrm0 0660 root:tss would be).
ns_swtpm() {
        swtpm socket --tpm2 --tpmstate dir="$W/tpm-state" \
                --server type=unixio,path="$W/tpm/sock",mode=0666 --ctrl type=unixio,path="$W/tpm/sock.ctrl",mode=0666 \
                --flags not-need-init,startup-clear --log file="$W/swtpm.log" &
        pids+=($!)
        for _ in $(seq 100); do [ -S "$W/tpm/sock" ] && return 0; sleep 0.05; done
        die "swtpm did not start: $(tail -n3 "$W/swtpm.log")"
}

# ns_evc: evc on 127.0.0.1 (a free port) and the node's /config pointing at it: server, root CA for signatures
# and TLS, an onboarding certificate evc accepts for the serial in soft_serial.
ns_evc() {
        local port
        evc=$build/controller/evc
        "$evc" init --dir "$W/evc" >/dev/null || die "evc init failed"
        "$evc" serve --dir "$W/evc" --listen 127.0.0.1:0 --port-file "$W/evc.port" >"$W/evc.log" 2>&1 &
        pids+=($!)
        for _ in $(seq 200); do [ -s "$W/evc.port" ] && break; sleep 0.05; done
        port=$(cat "$W/evc.port" 2>/dev/null) || die "evc did not start: $(tail -n3 "$W/evc.log")"
        printf '127.0.0.1:%s\n' "$port" >"$W/config/server"
        cp "$W/evc/certs/root.pem" "$W/config/root-certificate.pem"
        cp "$W/evc/certs/root.pem" "$W/config/v2tlsbaseroot-certificates.pem"
        certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$W/config/onboard.key.pem" \
                2>/dev/null
        printf 'cn = "eve-trust nspawn onboarding"\nexpiration_days = 30\nsigning_key\n' >"$W/onboard.tmpl"
        certtool --generate-self-signed --load-privkey "$W/config/onboard.key.pem" --template "$W/onboard.tmpl" \
                --outfile "$W/config/onboard.cert.pem" 2>/dev/null
        chmod 0644 "$W/config/onboard.key.pem"
        echo nspawn-node-1 >"$W/config/soft_serial"
        "$evc" onboard allow nspawn-node-1 --cert "$W/config/onboard.cert.pem" --dir "$W/evc" >/dev/null ||
                die "evc onboard allow failed"
}

# ns_boot CASES: boots the tree once (root on a throwaway overlay: every boot is a first boot) with the guest
# cases CASES (comma-separated); at most 120 s.
ns_boot() {
        local cases=$1 t0=$SECONDS rc=0
        echo "$cases" >"$W/results/cases"
        rm -f "$W/results/results.log"
        # shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
        timeout 120 unshare -m --propagation private sh -c '
                mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn &&
                exec systemd-nspawn -q -D "$1" --volatile=overlay -b --register=no --keep-unit \
                        --console=read-only --bind="$2/tpm:/var/lib/eve-host/tpm" \
                        --bind="$2/results:/var/lib/eve-host/results" --bind="$2/config:/config"' \
                sh "$image" "$W" >"$W/console.log" 2>&1 || rc=$?
        echo "# boot ($cases): $((SECONDS - t0)) s, systemd-nspawn exit status $rc"
        [ -f "$W/results/results.log" ] && sed -n 's/^# /#   guest: /p' "$W/results/results.log"
        [ "$rc" -eq 0 ] || { failed=$((failed + 1)); echo "not ok systemd-nspawn ($cases): exit status $rc"; }
}

# ns_expect NAME…: each NAME must have an "ok" line; any "fail" line fails, and so does a missing "end".
ns_expect() {
        local res=$W/results/results.log n bad=0 line
        touch "$res"
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
                echo "--- console (last 40 lines)"; tail -n 40 "$W/console.log"
                echo "--- journal of the eve units (last 60 lines)"; tail -n 60 "$W/results/journal.log" 2>/dev/null
        fi
}

# has_unit UNIT: the tree has the unit installed (its daemon is built).
has_unit() {
        [ -f "$image/usr/local/lib/systemd/system/$1" ]
}
