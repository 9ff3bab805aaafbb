# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 4, unknown software: before the node's services started, PCR 8 (a sealing PCR, quoted) was extended
# with a digest nobody announced to the controller (credential eve.vm.extend, tests/vm/guest/node-install). The
# TPM refuses both vaults' keys (PCR 8 named as moved, also by evectl), nothing is mapped; evc refuses the quote
# (QUOTE_FAILED: PCR 8 differs from the baseline), releases no key, and the config fetch is forbidden (403), so
# no credential reaches the consumer. The host checks evc's side after the boot.
# shellcheck source=tests/vm/guest/node.sh
. /usr/lib/eve-vm-test/node.sh

check booted wait_booted
locked_with_8() { vault_is "$1" Locked && vault_prop "$1" MovedPCRs | tr ' ' '\n' | sed 1d | grep -qx 8; }
for v in image config; do
        check "unknown-vault-$v-locked" wait_for 60 locked_with_8 "$v" || note_node
done
check unknown-evectl-moved sh -c "evectl vault show image 2>&1 | grep -i moved | grep -q 8" ||
        note "evectl: $(evectl vault show image 2>&1 | tr '\n' '|')"
check unknown-not-mapped sh -c '! test -e /dev/mapper/eve-vault-image && ! test -e /dev/mapper/eve-vault-config'
quote_failed() { [ "$(attest_prop Attempts)" -ge 2 ] && attest_prop LastError | grep -q QUOTE_FAILED; }
check unknown-quote-refused wait_for 90 quote_failed || note_node
check unknown-not-attested sh -c "[ '$(attest_prop State)' != 7 ]"
busctl --system call org.eve.Config /org/eve/Config org.eve.Config Refresh >/dev/null 2>&1
check unknown-config-forbidden test "$(config_prop LastFetchResult)" = forbidden ||
        note "configd: $(config_prop LastFetchResult) '$(config_prop LastFetchError)'"
# shellcheck disable=SC2016
size=$(systemd-run --unit=eve-vm-consumer --wait --pipe --quiet -p DynamicUser=yes \
        -p LoadCredential=wifi.office:/run/eve/credentials.sock sh -c 'wc -c <"$CREDENTIALS_DIRECTORY/wifi.office"')
if [ "$size" = 0 ]; then ok unknown-no-credential; else fail unknown-no-credential "read '$size' bytes"; fi
# Still locked at the end: nothing the controller sent opened anything.
for v in image config; do
        check "unknown-vault-$v-still-locked" vault_is "$v" Locked
done
note_node
