/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-nonce.h"

#include <stdlib.h>
#include <time.h>

#include "evc-crypto.h"
#include "memory-util.h"

struct EvcNonceSlot {
        int64_t device_id; /* 0: free */
        uint64_t expires_ms;
        bool valid;
        uint8_t nonce[EVC_NONCE_SIZE];
};

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static size_t hash(int64_t id, size_t n_slots) {
        uint64_t h = (uint64_t) id * UINT64_C(0x9e3779b97f4a7c15);
        return (size_t) (h >> 17) & (n_slots - 1);
}

void evc_nonces_init(EvcNonces *t) {
        *t = (EvcNonces){};
        pthread_mutex_init(&t->lock, NULL);
}

void evc_nonces_done(EvcNonces *t) {
        free(t->slots);
        pthread_mutex_destroy(&t->lock);
        *t = (EvcNonces){};
}

/* The slot of device_id, or the free slot where it goes; NULL only when the table is empty. */
static EvcNonceSlot *find(EvcNonces *t, int64_t device_id) {
        if (t->n_slots == 0)
                return NULL;
        for (size_t i = hash(device_id, t->n_slots);; i = (i + 1) & (t->n_slots - 1))
                if (t->slots[i].device_id == device_id || t->slots[i].device_id == 0)
                        return &t->slots[i];
}

static int grow(EvcNonces *t) {
        size_t n = t->n_slots ? t->n_slots * 2 : 64;
        EvcNonceSlot *old = t->slots, *slots;
        size_t old_n = t->n_slots;

        if (n > SIZE_MAX / sizeof *slots)
                return -ENOMEM;
        slots = calloc(n, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        t->slots = slots;
        t->n_slots = n;
        for (size_t i = 0; i < old_n; i++)
                if (old[i].device_id != 0)
                        *find(t, old[i].device_id) = old[i];
        free(old);
        return 0;
}

int evc_nonce_issue(EvcNonces *t, int64_t device_id, unsigned ttl_ms, uint8_t ret[static EVC_NONCE_SIZE]) {
        EvcNonceSlot *s;
        int r;

        if (device_id <= 0)
                return -EINVAL;
        r = evc_random(ret, EVC_NONCE_SIZE);
        if (r < 0)
                return r;
        pthread_mutex_lock(&t->lock);
        s = find(t, device_id);
        if (!s || (s->device_id == 0 && (t->n_used + 1) * 2 > t->n_slots)) {
                r = grow(t);
                if (r < 0) {
                        pthread_mutex_unlock(&t->lock);
                        return r;
                }
                s = find(t, device_id);
        }
        if (s->device_id == 0) {
                s->device_id = device_id;
                t->n_used++;
        }
        memcpy(s->nonce, ret, EVC_NONCE_SIZE);
        s->expires_ms = now_ms() + ttl_ms;
        s->valid = true;
        pthread_mutex_unlock(&t->lock);
        return 0;
}

EvcNonceCheck evc_nonce_take(EvcNonces *t, int64_t device_id, const void *n, size_t size) {
        EvcNonceCheck c = EVC_NONCE_UNKNOWN;
        EvcNonceSlot *s;

        pthread_mutex_lock(&t->lock);
        s = find(t, device_id);
        if (s && s->device_id == device_id && s->valid && size == EVC_NONCE_SIZE &&
            memeq_secure(s->nonce, n, EVC_NONCE_SIZE)) {
                s->valid = false; /* single use */
                c = now_ms() > s->expires_ms ? EVC_NONCE_EXPIRED : EVC_NONCE_OK;
        }
        pthread_mutex_unlock(&t->lock);
        return c;
}
