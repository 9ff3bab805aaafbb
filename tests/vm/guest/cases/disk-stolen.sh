# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Scenario 5, stolen disk: the node's disk in another machine (another TPM, no credentials of the node: the
# thief has the disk only). Nothing opens: eve-vaultd finds every vault locked, stock systemd-cryptsetup cannot
# unseal the TPM token, and no key of the old node is anywhere on the disk (the host also searches the whole
# disk image for the files' contents and the secret).
check booted wait_booted
export PATH=/usr/local/bin:/usr/local/libexec:$PATH
for v in image config theft; do
        img=/persist/vault-images/$v.img
        check "thief-$v-present" test -s "$img"
        check "thief-$v-stock-refused" sh -c "! /usr/lib/systemd/systemd-cryptsetup attach eve-vm-thief-$v '$img' - \
                tpm2-device=auto,headless=1"
        check "thief-$v-not-mapped" sh -c "! find /dev/mapper -name '*-$v' | grep -q ."
done
# The vault daemon, started by hand (the thief's own attempt), opens nothing either.
systemctl start eve-vaultd.service
sleep 10
check thief-vaultd-nothing-open sh -c "! find /dev/mapper -name 'eve-vault-*' | grep -q ."
note "mappings: $(find /dev/mapper -mindepth 1 -printf '%f ')"
