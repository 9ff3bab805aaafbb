/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-attest.h: what the verifier parses itself: TPMS_ATTEST (a TPM2_Quote's attestation structure), the PCR
 * digest over reported PCR values, and the TCG crypto-agile binary event log (gzip), replayed into PCRs. */
#pragma once

#include <stdint.h>

#include "macro.h"

#define EVC_TPM_GENERATED_VALUE 0xff544347U
#define EVC_TPM_ST_ATTEST_QUOTE 0x8018
#define EVC_TPM_ALG_SHA1 0x0004
#define EVC_TPM_ALG_SHA256 0x000b
#define EVC_TPM_ALG_SHA384 0x000c
#define EVC_TPM_ALG_SHA512 0x000d
#define EVC_PCR_MAX 24
#define EVC_PCR_SELECTIONS_MAX 4

typedef struct EvcPcrSelection {
        uint16_t hash;
        uint32_t mask; /* bit i = PCR i */
} EvcPcrSelection;

/* Fields of a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE. Pointers point into the parsed buffer. */
typedef struct EvcQuoteInfo {
        uint32_t magic;
        uint16_t type;
        const uint8_t *signer;
        size_t signer_size;
        const uint8_t *extra_data;
        size_t extra_data_size;
        uint64_t clock;
        uint32_t reset_count, restart_count;
        uint8_t safe;
        uint64_t firmware_version;
        size_t n_selections;
        EvcPcrSelection selections[EVC_PCR_SELECTIONS_MAX];
        const uint8_t *pcr_digest;
        size_t pcr_digest_size;
} EvcQuoteInfo;

/* Parses exactly n bytes (no TPM2B size prefix, nothing trailing). Returns -EBADMSG with a reason in *ret_why
 * (a static string) on malformed or non-quote input. */
int evc_tpms_attest_parse(const uint8_t *p, size_t n, EvcQuoteInfo *ret, const char **ret_why);

/* PCR values as reported by a device: SHA-256 bank, indexes 0..23; present says which were reported. */
typedef struct EvcPcrBank {
        uint32_t present;
        uint8_t value[EVC_PCR_MAX][32];
} EvcPcrBank;

/* SHA-256 over the selected PCR values, selection by selection, ascending index within each. Only SHA-256
 * selections are supported (-EOPNOTSUPP); a selected PCR that was not reported is -ENOENT. */
int evc_pcr_digest(const EvcQuoteInfo *q, const EvcPcrBank *bank, uint8_t ret[static 32]);
/* The union of the quote's selected PCR indexes (SHA-256 bank). */
uint32_t evc_quote_pcr_mask(const EvcQuoteInfo *q);

/* Replays a binary crypto-agile event log (already decompressed) into SHA-256 PCRs. ret->present says which
 * PCRs the log extended (their values start at zero, or at the locality for PCR 0's StartupLocality event).
 * Returns -EBADMSG with a reason on malformed input. */
int evc_eventlog_replay(const uint8_t *p, size_t n, EvcPcrBank *ret, const char **ret_why);
/* gunzip with a cap on the output size. */
int evc_gunzip(const uint8_t *p, size_t n, size_t max, uint8_t **ret, size_t *ret_size);
