/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: evc's TPMS_ATTEST parser (the quote's attestData, from the network) and the PCR digest over a
 * reported bank. Whatever parses must describe a quote: magic, type, selections within bounds, pointers
 * inside the input. */
#include <assert.h>
#include <string.h>

#include "evc-attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        EvcQuoteInfo q;
        EvcPcrBank bank = {};
        const char *why = NULL;
        uint8_t digest[32];

        if (evc_tpms_attest_parse(data, size, &q, &why) < 0) {
                assert(why);
                return 0;
        }
        assert(q.magic == EVC_TPM_GENERATED_VALUE && q.type == EVC_TPM_ST_ATTEST_QUOTE);
        assert(q.n_selections <= EVC_PCR_SELECTIONS_MAX);
        assert(!q.extra_data_size ||
               (q.extra_data >= data && q.extra_data + q.extra_data_size <= data + size));
        assert(!q.pcr_digest_size ||
               (q.pcr_digest >= data && q.pcr_digest + q.pcr_digest_size <= data + size));
        assert((evc_quote_pcr_mask(&q) >> EVC_PCR_MAX) == 0);

        /* A full bank, then one with PCRs missing. */
        for (unsigned i = 0; i < EVC_PCR_MAX; i++)
                memset(bank.value[i], (int) i, sizeof bank.value[i]);
        bank.present = (1U << EVC_PCR_MAX) - 1;
        (void) evc_pcr_digest(&q, &bank, digest);
        bank.present = 0x5555;
        (void) evc_pcr_digest(&q, &bank, digest);
        return 0;
}
