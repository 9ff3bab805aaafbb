/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm2-util.h: the TPM, through tpm2-tss ESAPI. The only module that includes tss2 headers; everything here
 * speaks plain C types (bytes, masks, handles as uint32_t). See docs/TPM.md for handles and templates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct Tpm2Context Tpm2Context;

#define TPM2_PCRS_MAX 24U
#define TPM2_PCRS_MASK ((UINT32_C(1) << TPM2_PCRS_MAX) - 1)
#define TPM2_SHA256_SIZE 32U
#define TPM2_ECC_P256_SIZE 32U
#define TPM2_NONCE_MIN 12U
#define TPM2_NONCE_MAX 32U
#define TPM2_SECRET_SIZE 32U

/* Persistent handles (docs/TPM.md). */
#define TPM2_HANDLE_SRK UINT32_C(0x81000001)      /* shared with systemd (TCG provisioning guidance) */
#define TPM2_HANDLE_EK_RSA UINT32_C(0x81010001)   /* TCG EK credential profile, RSA-2048 */
#define TPM2_HANDLE_EK_ECC UINT32_C(0x81010002)   /* TCG EK credential profile, ECC P-256 */
#define TPM2_HANDLE_DEVICE UINT32_C(0x81001001)   /* ours: device identity key */
#define TPM2_HANDLE_ECDH UINT32_C(0x81001002)     /* ours: ECDH key */
#define TPM2_HANDLE_ATTEST UINT32_C(0x81001003)   /* ours: attestation (quote) key */
#define TPM2_NV_EK_CERT_RSA UINT32_C(0x01c00002)
#define TPM2_NV_EK_CERT_ECC UINT32_C(0x01c0000a)

typedef enum Tpm2Key {
        TPM2_KEY_SRK,
        TPM2_KEY_DEVICE,
        TPM2_KEY_ECDH,
        TPM2_KEY_ATTEST,
        _TPM2_KEY_MAX,
        _TPM2_KEY_INVALID = -EINVAL,
} Tpm2Key;

const char *tpm2_key_to_string(Tpm2Key k);
uint32_t tpm2_key_handle(Tpm2Key k);

/* An ECC P-256 public key: affine coordinates, big-endian, 32 bytes each. */
typedef struct Tpm2EccPoint {
        uint8_t x[TPM2_ECC_P256_SIZE];
        uint8_t y[TPM2_ECC_P256_SIZE];
} Tpm2EccPoint;

/* Opens the TPM through a TCTI configuration string ("device:/dev/tpmrm0", "swtpm:path=…"); NULL means
 * eve_tcti(). Checks that the TPM answers (GetCapability) and caches whether it supports AES-128-CFB.
 * Errors: -ENOENT/-ENXIO when no TPM is there, -ENOTRECOVERABLE for TPM failures. */
int tpm2_context_new(const char *tcti, Tpm2Context **ret);
Tpm2Context *tpm2_context_ref(Tpm2Context *c);
Tpm2Context *tpm2_context_unref(Tpm2Context *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Tpm2Context *, tpm2_context_unref);

/* Number of TPM commands sent through this context so far (every TCTI transmit is one command). */
uint64_t tpm2_context_commands(const Tpm2Context *c);
/* How many of them had the TPM generate an RSA key (CreatePrimary, Create or CreateLoaded with an RSA
 * template): seconds each on a real TPM; no boot path may do it (docs/PERFORMANCE.md). */
uint64_t tpm2_context_rsa_keygens(const Tpm2Context *c);
/* Text of the last failure in this context (decoded TSS return code or our own reason), or "" if none. */
const char *tpm2_context_last_error(const Tpm2Context *c);
bool tpm2_context_supports_aes_cfb(const Tpm2Context *c);
/* The authValue of the device identity key (at most 32 bytes; size 0: empty, the default). This context gives
 * it to the device key it creates (tpm2_key_ensure) and presents it with every signature of that key (a
 * password session: the controller binding (controller-certs.h) derives it from the controller root CA and
 * address, public files, so it is not a secret to hide from the bus). The key has noDA: a wrong value gets
 * -EACCES and never counts towards the dictionary-attack lockout. Copied; wiped when the context goes. */
int tpm2_context_set_device_auth(Tpm2Context *c, const void *auth, size_t size);

/* Runs TPM2_SelfTest(full) and GetTestResult: 0 when the TPM is healthy, -EIO with last_error otherwise. */
int tpm2_self_test(Tpm2Context *c);

/* Whether a persistent handle is occupied: 1 yes, 0 no. */
int tpm2_persistent_exists(Tpm2Context *c, uint32_t handle);

/* Finds the key at its persistent handle; when missing and create is true, makes it (CreatePrimary with our
 * template in the owner hierarchy, EvictControl) and flushes the transient copy. Returns 1 if it was created,
 * 0 if it already existed, -ENOENT if missing and !create, -EBADMSG if the object at the handle does not have
 * our template's type, curve and attributes. ret_public may be NULL. */
int tpm2_key_ensure(Tpm2Context *c, Tpm2Key k, bool create, Tpm2EccPoint *ret_public);
/* The key's public area as a marshalled TPM2B_PUBLIC (what tpm2_checkquote -u and EVE's TPM2_PUBLIC metadata
 * take). Works for the EK handles too. */
int tpm2_persistent_public_marshal(Tpm2Context *c, uint32_t handle, uint8_t **ret, size_t *ret_size);
/* The SRK (0x81000001) as Esys_TR_Serialize() writes it (handle, name, public area): systemd's tpm2_srk token
 * field. Creates the SRK first when missing and create is true. Free *ret with free(). */
int tpm2_srk_serialize(Tpm2Context *c, bool create, uint8_t **ret, size_t *ret_size);
/* Removes one of our persistent keys (EvictControl). For tests and re-provisioning; never the SRK or an EK. */
int tpm2_key_evict(Tpm2Context *c, Tpm2Key k);

/* Endorsement key: uses 0x81010001 (RSA) or 0x81010002 (ECC) when present, otherwise creates the ECC P-256
 * EK from the TCG template L-2 and persists it at 0x81010002. Returns its handle through ret_handle. */
int tpm2_ek_ensure(Tpm2Context *c, bool create, uint32_t *ret_handle);
/* The EK certificate (DER) from NV (RSA 0x01c00002, else ECC 0x01c0000a); -ENOENT when there is none. */
int tpm2_ek_certificate(Tpm2Context *c, uint8_t **ret, size_t *ret_size);

/* ECDSA P-256 signature of a 32-byte digest with the device key (or any unrestricted signing key among ours):
 * r and s, 32 bytes each, big-endian, written to ret_rs[64]. With the context's device authValue (see
 * tpm2_context_set_device_auth); -EACCES when the key refuses it. */
int tpm2_sign_digest(Tpm2Context *c, Tpm2Key k, const uint8_t digest[static TPM2_SHA256_SIZE],
                uint8_t ret_rs[static 2 * TPM2_ECC_P256_SIZE]);

/* TPM2_ECDH_ZGen with the ECDH key: the shared point (x‖y, 64 bytes) in secret memory (eve_secret_free). */
int tpm2_ecdh_zgen(Tpm2Context *c, const Tpm2EccPoint *peer, uint8_t **ret_point);
/* Opt-in, for a context that serves bursts of key agreements (eve-configd): tpm2_ecdh_zgen() keeps the ECDH
 * key's handle and its salted, response-encrypting session open between calls, so a call costs one TPM
 * command (ECDH_ZGen) instead of four. The session holds one of the TPM's session slots (swtpm has 3) until
 * keep is set false or the context goes (both flush it): use it only in a context that is closed when idle.
 * A kept session or handle the TPM no longer knows (reset, flushed, expired) is replaced once and the
 * command retried once. */
void tpm2_context_keep_ecdh_session(Tpm2Context *c, bool keep);

/* TPM2_Quote with the attestation key over SHA-256 PCRs in pcr_mask, nonce (12–32 bytes) as qualifying data.
 * ret_attest: the TPMS_ATTEST bytes that were signed; ret_sig: marshalled TPMT_SIGNATURE; ret_sig_rs, when not
 * NULL, the raw r‖s (64 bytes). */
int tpm2_quote(Tpm2Context *c, uint32_t pcr_mask, const void *nonce, size_t nonce_size, uint8_t **ret_attest,
                size_t *ret_attest_size, uint8_t **ret_sig, size_t *ret_sig_size,
                uint8_t ret_sig_rs[static 2 * TPM2_ECC_P256_SIZE]);

/* Reads SHA-256 PCRs of pcr_mask into values[pcr] (other rows untouched). */
int tpm2_pcr_read(Tpm2Context *c, uint32_t pcr_mask, uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]);
/* Extends one SHA-256 PCR by a 32-byte digest. */
int tpm2_pcr_extend(Tpm2Context *c, unsigned pcr, const uint8_t digest[static TPM2_SHA256_SIZE]);

/* Random bytes from the TPM. */
int tpm2_get_random(Tpm2Context *c, void *buf, size_t n);

/* Seals secret (1–128 bytes) under the SRK with a PolicyPCR over the current SHA-256 values of pcr_mask.
 * Parameter encryption through a session salted by the SRK when AES-128-CFB is available. ret_blob:
 * marshalled TPM2B_PRIVATE ‖ TPM2B_PUBLIC (systemd's tpm2-blob); ret_policy: the 32-byte policy digest. */
int tpm2_seal(Tpm2Context *c, uint32_t pcr_mask, const void *secret, size_t secret_size, uint8_t **ret_blob,
                size_t *ret_blob_size, uint8_t ret_policy[static TPM2_SHA256_SIZE]);
/* Loads blob, replays PolicyPCR(pcr_mask), compares the session digest with policy (or, if NULL, with the
 * sealed object's authPolicy) and only then unseals. The secret goes to secret memory (eve_secret_free).
 * -EPERM when the PCRs no longer match the policy (last_error says so). */
int tpm2_unseal(Tpm2Context *c, uint32_t pcr_mask, const uint8_t *policy, const void *blob, size_t blob_size,
                uint8_t **ret_secret, size_t *ret_secret_size);

/* ---- pure helpers (no TPM) ---- */

/* Parses "0,1,7", "0-7,14", "" (empty mask) or "all" is not accepted. -EINVAL on bad input or PCR > 23. */
int tpm2_pcr_mask_from_string(const char *s, uint32_t *ret);
/* "0,1,7", newly allocated. */
char *tpm2_pcr_mask_to_string(uint32_t mask);
/* PolicyPCR digest from a zero start: H(0^32 ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION(sha256, mask) ‖
 * H(values of the PCRs in mask, ascending)). */
int tpm2_policy_pcr_digest(uint32_t pcr_mask, const uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE],
                uint8_t ret[static TPM2_SHA256_SIZE]);
/* Extracts the ECC point and object attributes of a marshalled TPM2B_PUBLIC. -EMEDIUMTYPE if not ECC P-256. */
int tpm2_public_parse(const void *data, size_t size, Tpm2EccPoint *ret_point, uint32_t *ret_attributes);
