# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Helpers for the container cases (sourced by run). Fd 3 is results.log.

ok()   { echo "ok $1" >&3; }
fail() { local n=$1; shift; echo "fail $n $*" >&3; }
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

# has_unit UNIT: the unit is installed (its daemon is built).
has_unit() {
        [ "$(systemctl show -P LoadState "$1" 2>/dev/null)" = loaded ]
}

# mono UNIT PROPERTY: a *TimestampMonotonic property (µs since boot; 0 = never).
mono() {
        systemctl show -P "$2" "$1"
}

# wait_settled: until systemd has no job left (or 60 s): every unit started, failed or waiting on purpose.
wait_settled() {
        local s
        for _ in $(seq 600); do
                s=$(systemctl list-jobs --no-legend 2>/dev/null | grep -cv 'eve-nspawn-test')
                [ "$s" -eq 0 ] && break
                sleep 0.1
        done
        note "jobs left: $(systemctl list-jobs --no-legend | grep -cv eve-nspawn-test); $(systemd-analyze time 2>&1 | head -n1)"
}
