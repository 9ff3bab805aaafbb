/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-keys.h: the controller's signing and ECDH key pairs, their rotation, and which ECDH pair each device's
 * cipher blocks and shares use. Every pair is a P-256 key with a certificate issued by the controller root
 * (certs/root.pem, keys/root-key.pem); pairs live in the database (table ckeys), the private key sealed
 * under keys/db.key and destroyed when the pair is retired. */
#pragma once

#include "evc.h"

typedef struct EvcPair {
        int64_t id;   /* ckeys row */
        uint8_t *pem; /* the certificate, as /certs serves it */
        size_t pem_size;
        uint8_t hash[EVC_SHA256_SIZE]; /* SHA-256 of pem; its certHash is the first 16 bytes */
        gnutls_x509_privkey_t key;     /* NULL when not loaded */
} EvcPair;

void evc_pair_done(EvcPair *p);

/* The current signing pair and shared ECDH pair, loaded once and shared by the server threads; a new set is
 * loaded when an admin command changed the keys (settings.keys_epoch). */
typedef struct EvcKeys {
        unsigned n_ref;
        int64_t epoch;
        bool per_device; /* ECDH scope: one pair per device instead of the shared one */
        EvcPair signing, ecdh;
        gnutls_privkey_t signer; /* signing.key, ready to sign */
} EvcKeys;

EvcKeys *evc_keys_unref(EvcKeys *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(EvcKeys *, evc_keys_unref);
/* The current set (a reference). */
int evc_keys_get(Evc *e, EvcKeys **ret);

/* Makes the signing and shared ECDH pairs of a new directory, or imports those of a directory made by an evc
 * that kept them in certs/ and keys/ (the files are then removed). Nothing happens when the database has
 * them. */
int evc_keys_ensure(Evc *e);

/* The ECDH pair that encrypts a device's cipher blocks and controller shares: its own pair, else the shared
 * one; in per-device scope a device without its own pair gets one here. k = SHA-256(X‖Y) of ECDH(that pair,
 * the device's ECDH certificate dev_pem), remembered in memory (evc_ecdh_device()). */
typedef struct EvcDeviceEcdh {
        int64_t id;
        uint8_t hash[EVC_SHA256_SIZE];
        uint8_t k[EVC_SHA256_SIZE];
} EvcDeviceEcdh;
int evc_keys_device_ecdh(
                Evc *e, EvcKeys *keys, int64_t device_id, const void *dev_pem, size_t n, EvcDeviceEcdh *ret);

/* Admin: a new signing pair; a new shared ECDH pair (device_id 0; in per-device scope every device's own
 * pair is replaced too) or a new pair for one device. The old pair's private key is destroyed at once; its
 * certificate stays in /certs while a device's last delivered config names it. Affected configs get a new
 * hash. */
int evc_keys_rotate(Evc *e, const char *kind, int64_t device_id);
/* Admin: ECDH scope. Per-device gives every device a pair of its own now; shared retires them (devices fall
 * back to the shared pair). */
int evc_keys_set_scope(Evc *e, bool per_device);
