/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the TCG crypto-agile binary event log a node sends (gzip) and evc replays into PCRs. Input
 * that starts with the gzip magic goes through evc_gunzip() first (with the verifier's cap), as the server
 * does. */
#include <assert.h>
#include <stdlib.h>

#include "evc-attest.h"
#include "macro.h"

#define FUZZ_EVENTLOG_MAX (4U * 1024U * 1024U)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *plain = NULL;
        size_t plain_size = 0;
        EvcPcrBank bank;
        const char *why = NULL;

        if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
                if (evc_gunzip(data, size, FUZZ_EVENTLOG_MAX, &plain, &plain_size) < 0)
                        return 0;
                assert(plain_size <= FUZZ_EVENTLOG_MAX);
                data = plain;
                size = plain_size;
        }
        if (evc_eventlog_replay(data, size, &bank, &why) < 0)
                assert(why);
        else
                assert((bank.present >> EVC_PCR_MAX) == 0);
        return 0;
}
