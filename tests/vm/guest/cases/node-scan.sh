# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# After scenario 3's upgrade boot (attested again, the config fetched again): the node's secrets are nowhere
# they must not be, on the real system. secret-scan.sh --system searches raw, hex and base64 at every
# alignment in every file under /config, /persist, /run, /var and /tmp, in the journal (every boot it kept),
# systemd-coredump's store and swap. The secrets, learnt the way only root on this node can: the Wi-Fi
# password the administrator set in evc (the plaintext eve-configd hands to its one consumer; the guest has it
# as a credential) and this boot's integrity token (over the bus; its one home on the node is
# /run/eve/integrity-token). Left out: the secret copies the scan reads, the credentials the test itself was
# given, the test's own state, and the vault images (LUKS2: their keyslots hold key material by design). The
# vault keys themselves are scanned on the host (test-secret-scan), which can unwrap them.
# The scanner is proven to work in the guest first: a canary of the case's own is found in a file and in the
# journal (scan-finds-canary).
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

scan=/run/eve-vm-scan
rm -rf "$scan"
mkdir -m 0700 "$scan"
value=$(cred eve.vm.secret)
printf '%s' "$value" >"$scan/wifi-password"
# The token: busctl prints its bytes in decimal.
for b in $(token_hex); do
        # shellcheck disable=SC2059 # the octal escape is the format
        printf "\\$(printf '%03o' "$b")"
done >"$scan/integrity-token"
check scan-secrets-known test -n "$value" -a -s "$scan/integrity-token"

# The scanner finds what is there, here too: a canary of its own, hex-encoded in a file and base64-encoded in
# the journal, is found in both places.
canary_dir=/var/tmp/eve-vm-canary
mkdir -p "$canary_dir"
printf 'eve-vm-canary-%s' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" >"$scan/canary"
od -An -v -tx1 "$scan/canary" | tr -d ' \n' >"$canary_dir/hex"
base64 -w0 "$scan/canary" | systemd-cat -t eve-vm-scan
journalctl --sync
canary_out=$(/usr/lib/eve-vm-test/secret-scan.sh --system "$scan/canary" -- "$canary_dir" 2>&1)
check scan-finds-canary sh -c 'printf "%s\n" "$1" | grep -q "FOUND canary hex in $2/hex" &&
        printf "%s\n" "$1" | grep -q "FOUND canary any in journal"' _ "$canary_out" "$canary_dir" ||
        note "canary scan: $(printf '%s' "$canary_out" | tr '\n' '|')"
rm -rf "$canary_dir"

out=$(/usr/lib/eve-vm-test/secret-scan.sh --system \
        --exclude "$scan" --exclude /run/credentials --exclude /var/lib/eve-vm-test --exclude /persist/vault-images \
        --allow /run/eve/integrity-token \
        "$scan/wifi-password" "$scan/integrity-token" -- /config /persist /run /var /tmp 2>&1)
rc=$?
note "$(printf '%s' "$out" | tail -n 1)"
if [ $rc -eq 0 ]; then
        ok scan-no-findings
else
        fail scan-no-findings "$(printf '%s' "$out" | head -n 5 | tr '\n' '|')"
fi
rm -rf "$scan"
