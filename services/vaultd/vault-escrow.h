/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vault-escrow.h: the escrow blob of a vault secret, as sent to the controller. The secret is wrapped with
 * AES-256-GCM under a key that only this TPM can compute: HKDF-SHA256 over the x coordinate of
 * TPM2_ECDH_ZGen(ECDH key, public point of the device identity key), neither key PCR-bound, so the blob still
 * unwraps after an upgrade changed the PCRs, and only here.
 *
 * Carried as a serialized AttestVolumeKeyData (proto/attest.proto), written here by hand in protobuf wire
 * format so vaultd does not need the generated code:
 *   field 1 encrypted_key (bytes) = nonce[12] ‖ ciphertext[32] ‖ tag[16]
 *   field 2 digest_sha256 (bytes) = SHA-256(secret)
 *   field 5 version (varint)      = 1 (ATTEST_VOLUME_KEY_VERSION_V1)
 * GCM's additional data is ESCROW_LABEL. Unknown fields are skipped on input, as protobuf does. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tpm2-util.h"

#define ESCROW_LABEL "eve-trust vault escrow v1"
#define ESCROW_NONCE_SIZE 12U
#define ESCROW_TAG_SIZE 16U
#define ESCROW_KEY_SIZE 32U
#define ESCROW_ENCRYPTED_SIZE (ESCROW_NONCE_SIZE + TPM2_SECRET_SIZE + ESCROW_TAG_SIZE)
#define ESCROW_BLOB_MAX 4096U

/* version 1 (V1): encrypted_key = nonce ‖ ciphertext ‖ tag (60 bytes).
 * version 0 (LEGACY, EVE's format, read only): encrypted_key = AES-256-CFB128(K, IV 0, secret), 32 bytes, in
 * the first 32 bytes of the array; K = SHA-256(X ‖ Y) of the same ZGen point (facts eve-api.md §2.2). */
typedef struct EscrowData {
        uint8_t encrypted_key[ESCROW_ENCRYPTED_SIZE];
        uint8_t digest_sha256[TPM2_SHA256_SIZE];
        uint32_t version;
} EscrowData;

/* Pure: protobuf wire format of AttestVolumeKeyData. unpack refuses (-EBADMSG, reason) malformed input,
 * wrong field sizes (for the version), and versions other than V1 and LEGACY (absent or 0). */
int escrow_data_pack(const EscrowData *d, uint8_t **ret, size_t *ret_size);
int escrow_data_unpack(const void *blob, size_t size, EscrowData *ret, const char **ret_reason);

/* Pure: the wrap itself, given the KDF input (ZGen x coordinate). */
int escrow_seal_with(const uint8_t zx[static TPM2_ECC_P256_SIZE], const uint8_t secret[static TPM2_SECRET_SIZE],
                uint8_t **ret, size_t *ret_size);
/* -EKEYREJECTED when the tag does not verify (another TPM, or tampering), -EBADMSG when the digest of the
 * unwrapped secret does not match. The secret goes to secret memory. V1 only. */
int escrow_open_with(const uint8_t zx[static TPM2_ECC_P256_SIZE], const void *blob, size_t size,
                uint8_t **ret_secret, const char **ret_reason);
/* Either format, given the whole ZGen point (x ‖ y). A LEGACY blob has no tag: a wrong key shows as a digest
 * mismatch, reported as -EKEYREJECTED too. */
int escrow_open_point(
                const uint8_t point[static 2 * TPM2_ECC_P256_SIZE],
                const void *blob,
                size_t size,
                uint8_t **ret_secret,
                const char **ret_reason);

/* With this TPM: ZGen with the ECDH key against the device key's public point. -ENOENT when either key has
 * not been provisioned (eve-tpm-setup). escrow_wrap writes V1 only; escrow_unwrap reads V1 and LEGACY. */
int escrow_wrap(Tpm2Context *c, const uint8_t secret[static TPM2_SECRET_SIZE], uint8_t **ret, size_t *ret_size);
int escrow_unwrap(Tpm2Context *c, const void *blob, size_t size, uint8_t **ret_secret, const char **ret_reason);
