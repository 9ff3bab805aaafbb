/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* attest-msg.h: what eve-attestd sends and reads in the attestation exchange (facts/eve-api.md §1.5, §2.4):
 * the CERT, NONCE, QUOTE and STORE_KEYS requests, the checks on each ZAttestResponse, and the inputs of a
 * quote (the TPM's quote and PCRs, the gzipped binary event log, version strings, the location). Each
 * request lives in a holder struct that owns every buffer its message points to; *_done() frees it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest.pb-c.h"
#include "certs.pb-c.h"
#include "macro.h"
#include "tpm2-util.h"

/* EVE's caps: a binary event log above 2 × 62 KiB is not sent, nor is one that makes the QUOTE message
 * exceed 62 KiB. */
#define ATTEST_QUOTE_MSG_MAX 63488U
#define ATTEST_EVENTLOG_MAX (2U * ATTEST_QUOTE_MSG_MAX)
#define ATTEST_QUOTE_PCR_MASK UINT32_C(0xffff) /* SHA-256 PCRs 0–15 are quoted */
#define ATTEST_KEYS_MAX 64U                    /* escrow entries in one message, either way */
#define ATTEST_KEY_SIZE_MAX (16U * 1024U)
#define ATTEST_RESPONSE_MAX (512U * 1024U)

/* One AttestVolumeKey as it travels (key_type, key); the bytes are opaque to attestd. */
typedef struct AttestKeyEntry {
        uint32_t type;
        uint8_t *data;
        size_t size;
} AttestKeyEntry;

void attest_key_entries_free(AttestKeyEntry *e, size_t n);

/* ---- CERT ---- */

typedef struct AttestCertRequest {
        Org__Lfedge__Eve__Attest__ZAttestReq req;
        Org__Lfedge__Eve__Certs__ZCert certs[3];
        Org__Lfedge__Eve__Certs__ZCert *certp[3];
        Org__Lfedge__Eve__Certs__ZCertMetaData meta;
        Org__Lfedge__Eve__Certs__ZCertMetaData *metap[1];
        char *pem[3];
        uint8_t hash[3][16];
        uint8_t *ek_public;
} AttestCertRequest;

/* ZAttestReq{CERT} with the ECDH (13), attestation (11) and, when ek.cert.pem exists, endorsement (12)
 * certificates from certs_dir, each hashAlgo SHA256_16BYTES with certHash = SHA-256(PEM)[:16] (as EVE sends
 * them); the EK carries its TPM2B_PUBLIC (ek_public, may be NULL) as metadata. -ENOENT when the ECDH or the
 * attestation certificate is missing (eve-tpm-setup has not run). */
int attest_cert_request_build(
                AttestCertRequest *r,
                const char *certs_dir,
                const uint8_t *ek_public,
                size_t ek_public_size);
void attest_cert_request_done(AttestCertRequest *r);

/* ZAttestReq{NONCE} (a constant). */
const ProtobufCMessage *attest_nonce_request(void);

/* ---- QUOTE ---- */

typedef struct AttestQuote {
        uint8_t nonce[TPM2_NONCE_MAX];
        size_t nonce_size;
        uint8_t *attest; /* TPMS_ATTEST */
        size_t attest_size;
        uint8_t sig_rs[64];
        uint8_t pcrs[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]; /* SHA-256 PCRs 0–23 */
} AttestQuote;

/* Reads PCRs 0–23 and quotes 0–15 with nonce (12–32 bytes) as qualifying data. */
int attest_quote_collect(Tpm2Context *tpm, const uint8_t *nonce, size_t nonce_size, AttestQuote *ret);
void attest_quote_done(AttestQuote *q);

/* What goes with a quote besides the TPM's part. */
typedef struct AttestExtras {
        uint8_t *eventlog_gz; /* NULL: none */
        size_t eventlog_gz_size;
        char *eve_version;      /* NULL: none */
        char *firmware_version; /* NULL: none */
        bool location_configured;
        bool location_present;
        double latitude, longitude;
} AttestExtras;

void attest_extras_done(AttestExtras *x);

/* The binary event log at path, gzipped. -ENOENT/-ENODATA when there is none (empty), -EFBIG when larger
 * than ATTEST_EVENTLOG_MAX (EVE then sends none). Works on securityfs files (which report size 0). */
int attest_eventlog_read(const char *path, uint8_t **ret_gz, size_t *ret_gz_size);
/* gzip (RFC 1952) of data. */
int attest_gzip(const void *data, size_t size, uint8_t **ret, size_t *ret_size);
/* Version strings from the OS: "eve-trust <version> (<PRETTY_NAME of os_release>)" and, when the DMI files
 * exist,
 * "<bios vendor>-<bios version>-<bios date>" as EVE reports firmware. os_release NULL: /etc/os-release. */
int attest_versions(const char *os_release, char **ret_eve, char **ret_firmware);
/* A location file: "LATITUDE LONGITUDE" (decimal degrees, also comma-separated), one line. -EINVAL when it
 * does not hold one, -ENOENT when missing. */
int attest_location_read(const char *path, double *ret_lat, double *ret_lon);

typedef struct AttestQuoteRequest {
        Org__Lfedge__Eve__Attest__ZAttestReq req;
        Org__Lfedge__Eve__Attest__ZAttestQuote quote;
        Org__Lfedge__Eve__Attest__TpmPCRValue pcr[TPM2_PCRS_MAX];
        Org__Lfedge__Eve__Attest__TpmPCRValue *pcrp[TPM2_PCRS_MAX];
        Org__Lfedge__Eve__Attest__AttestVersionInfo version[2];
        Org__Lfedge__Eve__Attest__AttestVersionInfo *versionp[2];
        Org__Lfedge__Eve__Attest__AttestGPSCoordinates gps;
        uint8_t *sig_der;
        bool eventlog_dropped; /* the log made the message exceed ATTEST_QUOTE_MSG_MAX */
} AttestQuoteRequest;

/* ZAttestReq{QUOTE}: attestData, the signature as DER, PCR values 0–23 (SHA-256), versions, gps_info
 * (PRESENT with the coordinates, or ABSENT when a source is configured but has no fix; unset without a
 * source), the gzipped event log unless the message would exceed ATTEST_QUOTE_MSG_MAX. Points into q and x:
 * keep them alive. */
int attest_quote_request_build(AttestQuoteRequest *r, const AttestQuote *q, const AttestExtras *x);
void attest_quote_request_done(AttestQuoteRequest *r);

/* ---- STORE_KEYS ---- */

typedef struct AttestStoreRequest {
        Org__Lfedge__Eve__Attest__ZAttestReq req;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk;
        Org__Lfedge__Eve__Attest__AttestVolumeKey keys[ATTEST_KEYS_MAX];
        Org__Lfedge__Eve__Attest__AttestVolumeKey *keyp[ATTEST_KEYS_MAX];
} AttestStoreRequest;

/* ZAttestReq{STORE_KEYS, AttestStorageKeys{token, keys}}. Points into token and entries. -E2BIG over
 * ATTEST_KEYS_MAX entries. */
int attest_store_request_build(
                AttestStoreRequest *r,
                const uint8_t *token,
                size_t token_size,
                const AttestKeyEntry *e,
                size_t n);

/* ---- responses ---- */

/* Unpacks a ZAttestResponse and checks that it is of type expected (ZAttestRespType) and carries the part
 * that type needs: -EBADMSG otherwise. */
int attest_response_parse(
                const void *payload,
                size_t size,
                int expected,
                Org__Lfedge__Eve__Attest__ZAttestResponse **ret);
/* The nonce of a NONCE answer: -EBADMSG unless 12–32 bytes. */
int attest_response_nonce(
                const Org__Lfedge__Eve__Attest__ZAttestResponse *r,
                uint8_t ret[static TPM2_NONCE_MAX],
                size_t *ret_size);
/* The keys of a QUOTE SUCCESS as entries (copies): -EBADMSG for more than ATTEST_KEYS_MAX, or a key over
 * ATTEST_KEY_SIZE_MAX or empty. */
int attest_response_keys(
                const Org__Lfedge__Eve__Attest__ZAttestQuoteResp *q, AttestKeyEntry **ret, size_t *ret_n);
