/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-sim.h: simulated devices for evc's benchmarks: software keys (identity, attestation, ECDH), signed
 * request envelopes, software-signed TPMS_ATTEST quotes over PCRs 0–15, and checked responses. What goes on
 * the wire is what an EVE node sends; only the TPM is replaced by software keys. */
#pragma once

#include <stdbool.h>

#include "attest.pb-c.h"
#include "evc-crypto.h"

typedef struct SimDevice {
        gnutls_x509_crt_t crt, ak, ecdh;
        gnutls_x509_privkey_t key, ak_key, ecdh_key;
        uint8_t *ak_pem, *ecdh_pem;
        size_t ak_pem_size, ecdh_pem_size;
        char *cert_path; /* the device certificate, for 'evc device add --cert' */
        char uuid[37];
        uint8_t pcr[24][32];
        uint8_t token[32];
        bool have_token;
} SimDevice;

/* Keys and certificates in dir/<name>*.pem (the ECDH and attestation certificates issued by the device key).
 */
int sim_device_new(const char *dir, const char *name, SimDevice **ret);
SimDevice *sim_device_free(SimDevice *d);

/* Request bodies (a packed AuthContainer signed by the device key), newly allocated. */
int sim_req_certs(SimDevice *d, uint8_t **ret, size_t *ret_size);
int sim_req_nonce(SimDevice *d, uint8_t **ret, size_t *ret_size);
int sim_req_quote(SimDevice *d, const uint8_t *nonce, size_t nonce_size, uint8_t **ret, size_t *ret_size);
/* STORE_KEYS with d->token: one EVE_TRUST_VAULT_ESCROW entry (escrow bytes) and, when share_vault is set, a
 * controller share request for that vault. */
int sim_req_store_keys(
                SimDevice *d, const char *escrow, const char *share_vault, uint8_t **ret, size_t *ret_size);

/* Unpacks a response AuthContainer, checks its signature with signing (skipped when NULL) and unpacks the
 * ZAttestResponse inside. -EBADMSG when anything is off. */
int sim_open_attest(
                gnutls_x509_crt_t signing,
                const void *body,
                size_t size,
                Org__Lfedge__Eve__Attest__ZAttestResponse **ret);
