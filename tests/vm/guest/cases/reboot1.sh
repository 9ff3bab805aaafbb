# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# First of two boots on the same disk and TPM state (cases/reboot2.sh checks what this leaves behind).

check booted wait_booted
token=$(cred eve.vm.token)
check persist-write sh -c "[ -n '$token' ] && echo '$token' > $EVE_VM_STATE/token && sync"

# A persistent primary key at 0x81000010.
tpm2_evictcontrol -C o -c 0x81000010 >/dev/null 2>&1   # left from an earlier run on this TPM state
check tpm-createprimary tpm2_createprimary -C o -G ecc -c /run/primary.ctx
check tpm-evictcontrol tpm2_evictcontrol -C o -c /run/primary.ctx 0x81000010
tpm2_flushcontext -t >/dev/null 2>&1
check tpm-readpublic tpm2_readpublic -c 0x81000010 -n "$EVE_VM_STATE/primary.name"

# PCRs as measured on this boot, and PCR 23 extended so the next boot can see it was reset.
for i in 0 4 7; do pcr "$i"; done >"$EVE_VM_STATE/pcrs"
check pcr23-extend tpm2_pcrextend "23:sha256=$(printf eve | sha256sum | cut -d' ' -f1)"
check pcr23-nonzero pcrs_nonzero 23
sync
