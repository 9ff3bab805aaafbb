# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Second boot on the disk and TPM state of cases/reboot1.sh.

check booted wait_booted
token=$(cred eve.vm.token)
check persist-read sh -c "[ -n '$token' ] && [ \"\$(cat $EVE_VM_STATE/token)\" = '$token' ]"

check tpm-persistent-found sh -c "tpm2_getcap handles-persistent | grep -qi 0x81000010"
check tpm-persistent-same sh -c "tpm2_readpublic -c 0x81000010 -n /run/primary.name >/dev/null && \
        cmp /run/primary.name $EVE_VM_STATE/primary.name"

check pcr23-reset test "$(pcr 23)" = "$(printf '%064d' 0)"
check pcrs-remeasured pcrs_nonzero 0 4 7
now=$(for i in 0 4 7; do pcr "$i"; done)
if [ "$now" = "$(cat "$EVE_VM_STATE/pcrs")" ]; then
        ok pcrs-same-as-boot1
else
        fail pcrs-same-as-boot1 "$(echo $now)"
fi
