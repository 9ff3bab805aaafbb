# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Helpers for the guest test cases (sourced by run). Fd 3 is the results port.

ok()   { echo "ok $1" >&3; echo "eve-vm-test: ok $1"; }
fail() { local n=$1; shift; echo "fail $n $*" >&3; echo "eve-vm-test: FAIL $n $*"; }
note() { echo "# $*" >&3; }

# check NAME COMMAND…: runs the command; "ok NAME", or "fail NAME" with its exit status and last output line.
check() {
        local name=$1 out rc
        shift
        out=$("$@" 2>&1)
        rc=$?
        if [ $rc -eq 0 ]; then
                ok "$name"
        else
                fail "$name" "($*: exit $rc) $(printf '%s\n' "$out" | tail -n1)"
        fi
        return $rc
}

cred() { cat "/run/credentials/@system/$1" 2>/dev/null; }

# pcr N: the SHA-256 value of PCR N as lower-case hex (64 digits), nothing on error.
pcr() {
        tpm2_pcrread "sha256:$1" 2>/dev/null | awk '/0x/ {print tolower(substr($NF, 3))}'
}
zero64=0000000000000000000000000000000000000000000000000000000000000000

pcrs_nonzero() {
        local i v
        for i in "$@"; do
                v=$(pcr "$i")
                [ -n "$v" ] || { echo "PCR $i unreadable"; return 1; }
                [ "$v" != "$zero64" ] || { echo "PCR $i is zero"; return 1; }
        done
}

# wait_booted: until systemd finished starting up (running or degraded), at most 120 s.
wait_booted() {
        local s
        s=$(timeout 120 systemctl is-system-running --wait 2>/dev/null)
        note "system state: $s, uptime $(cut -d' ' -f1 /proc/uptime) s"
        note "$(systemd-analyze time 2>/dev/null | head -n1)"
        note "slowest units: $(systemd-analyze blame --no-pager 2>/dev/null | grep -v '\.device$' | head -n8 |
                awk '{printf "%s %s, ", $2, $1}')"
        [ "$s" = running ] || [ "$s" = degraded ]
}

# note_failed_units: a note per failed unit with its last journal lines (what went wrong, for the log).
note_failed_units() {
        local u
        for u in $(systemctl list-units --failed --plain --no-legend | awk '{print $1}'); do
                note "failed $u: $(journalctl -b -u "$u" --no-pager -o cat 2>&1 | grep -v "^$u: \|^Failed to start" |
                        tail -n 6 | tr '\n' '|')"
        done
}
