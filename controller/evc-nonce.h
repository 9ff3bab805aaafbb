/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-nonce.h: attestation nonces, kept in memory only. One outstanding nonce per device: a new NONCE
 * replaces the previous one, a QUOTE consumes it whatever the verdict, and it expires. Nothing of it reaches
 * the store, so a restarted evc has none: a device quoting an old nonce gets NONCE_MISMATCH and asks for a
 * new one (EVE's FSM does exactly that). Thread-safe. */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "macro.h"

#define EVC_NONCE_SIZE 32

typedef struct EvcNonceSlot EvcNonceSlot;

typedef struct EvcNonces {
        pthread_mutex_t lock;
        EvcNonceSlot *slots; /* open addressing by device id; a slot, once used, stays with its device */
        size_t n_slots, n_used;
} EvcNonces;

typedef enum EvcNonceCheck {
        EVC_NONCE_OK,
        EVC_NONCE_UNKNOWN, /* never issued to this device, or already used, or replaced by a newer one */
        EVC_NONCE_EXPIRED,
} EvcNonceCheck;

void evc_nonces_init(EvcNonces *t);
void evc_nonces_done(EvcNonces *t);

/* A fresh random nonce for device_id, valid for ttl_ms from now (CLOCK_MONOTONIC). */
int evc_nonce_issue(EvcNonces *t, int64_t device_id, unsigned ttl_ms, uint8_t ret[static EVC_NONCE_SIZE]);
/* Consumes the device's outstanding nonce and says whether n/size was it, in time. */
EvcNonceCheck evc_nonce_take(EvcNonces *t, int64_t device_id, const void *n, size_t size);
