/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memory-util.h: memory for secrets (locked, kept out of core dumps, wiped on free) and wiping helpers. */
#pragma once

#include <string.h>

#include "macro.h"

/* Allocates size zeroed bytes that are mlock()ed and excluded from core dumps (MADV_DONTDUMP). The buffer sits
 * in its own page-aligned mapping, so locking and the dump exclusion cover nothing else. Returns NULL on ENOMEM.
 * When mlock() is refused (RLIMIT_MEMLOCK), the buffer is still usable and still excluded from dumps; the failure
 * is counted (eve_secret_lock_failures()) and logged once at debug level. */
void *eve_secret_alloc(size_t size);
/* Wipes and releases a buffer from eve_secret_alloc(). Accepts NULL. Returns NULL. */
void *eve_secret_free(void *p);
void *eve_secret_realloc(void *p, size_t size);
size_t eve_secret_size(const void *p);
unsigned eve_secret_lock_failures(void);
static inline void eve_secret_freep(void *p) {
        eve_secret_free(*(void **) p);
}
#define _cleanup_secret_ _cleanup_(eve_secret_freep)

/* Wipes memory that the compiler may not optimise the wipe away. */
static inline void *erase(void *p, size_t n) {
        if (p && n > 0)
                explicit_bzero(p, n);
        return p;
}

/* Wipes a NUL-terminated heap string and frees it. */
static inline void *erase_and_free(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
        return NULL;
}
static inline void erase_and_freep(char **s) {
        *s = erase_and_free(*s);
}

/* A stack or heap area registered for wiping when it goes out of scope: CLEANUP_ERASE(key). */
struct eve_erase_range {
        void *p;
        size_t n;
};
static inline void eve_erase_rangep(struct eve_erase_range *r) {
        erase(r->p, r->n);
}
#define CLEANUP_ERASE(var)                                                                                    \
        _cleanup_(eve_erase_rangep) _unused_ struct eve_erase_range _erase_##var = {                          \
                .p = &(var),                                                                                  \
                .n = sizeof(var),                                                                             \
        }

/* Constant-time comparison of two equally long buffers (MACs, digests, tokens). */
bool memeq_secure(const void *a, const void *b, size_t n);

/* Makes this process non-dumpable and lifts nothing: call early in every secret-holding program. */
int eve_harden_process(void);
