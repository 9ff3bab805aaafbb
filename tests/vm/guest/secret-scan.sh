#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# secret-scan.sh: looks for known secrets where they must never be: files (logs, stderr captures, core files,
# anything outside the vaults), and, with --system, the journal, systemd-coredump's store and swap.
# Each secret is a file holding its raw bytes; it is searched raw, as lower- and upper-case hex, and as
# base64 (standard and URL alphabet) at each of the three byte alignments a secret can have inside a longer
# base64 text (the characters that depend on neighbouring bytes are left out of the pattern).
#   secret-scan.sh [--system] [--exclude DIR]… [--allow PATH]… SECRET_FILE… -- PATH…
# --allow names a file where these secrets belong by design (prefix match: evc.db also allows evc.db-wal).
# Prints one line per finding ("FOUND <secret> <encoding> in <where>") and a summary; exit 1 when anything
# was found, 2 on usage errors. POSIX sh + coreutils (od, base64, tr, dd) + grep: runs in the node image
# (it lives in tests/vm/guest, installed in the image as /usr/lib/eve-vm-test/secret-scan.sh: vm-node calls it
# in the guest, cases/node-scan.sh) and on the build host (test-secret-scan).
set -eu

system=no
excludes=""
allows=""
secrets=""
while [ $# -gt 0 ]; do
        case "$1" in
        --system) system=yes; shift ;;
        --exclude) excludes="$excludes $2"; shift 2 ;;
        --allow) allows="$allows $2"; shift 2 ;;
        --) shift; break ;;
        -*) echo "secret-scan.sh: unknown option $1" >&2; exit 2 ;;
        *) secrets="$secrets $1"; shift ;;
        esac
done
[ -n "$secrets" ] || { echo "usage: secret-scan.sh [--system] [--exclude DIR]... [--allow PATH]... SECRET_FILE... -- PATH..." >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

# The patterns of one secret, one per line: "<encoding> <pattern>" (raw is searched with grep -F on a file).
patterns() {
        f=$1
        printf 'hex %s\n' "$(od -An -v -tx1 "$f" | tr -d ' \n')"
        printf 'HEX %s\n' "$(od -An -v -tx1 "$f" | tr -d ' \n' | tr a-f A-F)"
        for skip in 0 1 2; do
                b=$(dd if="$f" bs=1 skip=$skip 2>/dev/null | base64 | tr -d '\n')
                # Drop the trailing characters that depend on what follows (the last quantum).
                b=$(printf '%s' "$b" | sed 's/=*$//')
                b=$(printf '%s' "$b" | sed 's/.\{1,3\}$//')
                # A secret starting mid-quantum: its first characters depend on the bytes before it.
                [ $skip -ne 0 ] && b=$(printf '%s' "$b" | cut -c2-)
                [ ${#b} -ge 16 ] || continue
                printf 'base64 %s\n' "$b"
                printf 'base64url %s\n' "$(printf '%s' "$b" | tr '+/' '-_')"
        done
}

found=0
scanned=0
report() {
        echo "FOUND $1 $2 in $3"
        found=$((found + 1))
}

# The files to search, once: every file under the paths, minus the excluded directories and the secret
# files themselves.
for p in "$@"; do
        [ -e "$p" ] || continue
        find "$p" -type f 2>/dev/null
done | while read -r file; do
        skip=no
        for x in $excludes; do
                case "$file" in "$x"/*) skip=yes ;; esac
        done
        for x in $allows; do
                case "$file" in "$x"*) skip=yes ;; esac
        done
        for s in $secrets; do
                [ "$file" = "$s" ] && skip=yes
        done
        [ $skip = yes ] || printf '%s\n' "$file"
done > "$work/files"
scanned=$(wc -l < "$work/files")

# The files holding any pattern of a pattern file (-a: binary files too: core dumps, databases, images).
search_files() {
        tr '\n' '\0' < "$work/files" | xargs -0 -r grep -l -a -F -f "$1" -- 2>/dev/null || true
}

n=0
for s in $secrets; do
        n=$((n + 1))
        [ -s "$s" ] || { echo "secret-scan.sh: $s is empty" >&2; exit 2; }
        name=$(basename "$s")
        patterns "$s" > "$work/p.$n"
        # The raw bytes: grep -F takes a pattern file; a secret with a newline is searched per line, so
        # binary secrets are covered by the encodings and by their longest newline-free run.
        tr '\n' '\0' < "$s" | tr '\0' '\n' | awk 'length($0) >= 8' > "$work/raw.$n" || true
        while read -r enc pat; do
                printf '%s\n' "$pat" > "$work/one"
                for hit in $(search_files "$work/one"); do report "$name" "$enc" "$hit"; done
        done < "$work/p.$n"
        if [ -s "$work/raw.$n" ]; then
                for hit in $(search_files "$work/raw.$n"); do report "$name" raw "$hit"; done
        fi
        if [ $system = yes ]; then
                cat "$work/raw.$n" > "$work/all.$n"
                cut -d' ' -f2 "$work/p.$n" >> "$work/all.$n"
                if command -v journalctl >/dev/null; then
                        journalctl -o export --no-pager 2>/dev/null | grep -a -q -F -f "$work/all.$n" &&
                                report "$name" any journal
                fi
                for d in /var/lib/systemd/coredump /var/crash; do
                        [ -d "$d" ] || continue
                        # Compressed dumps: decompress what the tools here can.
                        for c in "$d"/*; do
                                [ -f "$c" ] || continue
                                case "$c" in
                                *.zst) cmd="zstd -dc" ;; *.xz) cmd="xz -dc" ;; *.lz4) cmd="lz4 -dc" ;; *) cmd="cat" ;;
                                esac
                                $cmd "$c" 2>/dev/null | grep -a -q -F -f "$work/all.$n" && report "$name" any "$c"
                        done
                done
                for dev in $(tail -n +2 /proc/swaps 2>/dev/null | cut -d' ' -f1); do
                        grep -a -q -F -f "$work/all.$n" "$dev" 2>/dev/null && report "$name" any "swap $dev"
                done
        fi
done
echo "secret-scan: $n secrets, $scanned files, $found findings"
[ $found -eq 0 ]
