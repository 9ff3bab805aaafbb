/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "log.h"
#include "memory-util.h"

/* Layout of one secret allocation: [header | padding to 64 bytes | payload], in a private anonymous mapping. */
struct secret_header {
        size_t map_size;
        size_t size;
        bool locked;
};
#define SECRET_OFFSET 64

static unsigned lock_failures;

/* The raw system calls: ASan's mlock()/munlock() interceptors do nothing and report success, which would leave
 * secrets unlocked in sanitizer builds while claiming otherwise. */
static int lock_pages(void *p, size_t n) {
        return (int) syscall(SYS_mlock, p, n);
}

static int unlock_pages(void *p, size_t n) {
        return (int) syscall(SYS_munlock, p, n);
}

unsigned eve_secret_lock_failures(void) {
        return lock_failures;
}

static struct secret_header *header_of(const void *p) {
        return (struct secret_header *) ((uint8_t *) p - SECRET_OFFSET);
}

void *eve_secret_alloc(size_t size) {
        long page = sysconf(_SC_PAGESIZE);
        struct secret_header *h;
        size_t map_size;

        if (size > SIZE_MAX - SECRET_OFFSET - (size_t) page)
                return NULL;
        map_size = (SECRET_OFFSET + size + (size_t) page - 1) / (size_t) page * (size_t) page;

        h = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h == MAP_FAILED)
                return NULL;

        /* Keep the secret out of core dumps and forked children, whatever happens to mlock(). */
        (void) madvise(h, map_size, MADV_DONTDUMP);
        (void) madvise(h, map_size, MADV_WIPEONFORK);

        *h = (struct secret_header) {
                .map_size = map_size,
                .size = size,
                .locked = lock_pages(h, map_size) >= 0,
        };
        if (!h->locked) {
                if (lock_failures++ == 0)
                        log_debug_errno(errno, "Failed to lock secret memory (RLIMIT_MEMLOCK?), continuing: %m");
        }
        return (uint8_t *) h + SECRET_OFFSET;
}

size_t eve_secret_size(const void *p) {
        return p ? header_of(p)->size : 0;
}

void *eve_secret_free(void *p) {
        struct secret_header *h;
        size_t map_size;

        if (!p)
                return NULL;
        h = header_of(p);
        map_size = h->map_size;
        explicit_bzero(h, map_size);
        if (unlock_pages(h, map_size) < 0 && errno != ENOMEM)
                log_debug_errno(errno, "Failed to unlock secret memory, ignoring: %m");
        (void) munmap(h, map_size);
        return NULL;
}

void *eve_secret_realloc(void *p, size_t size) {
        void *n;

        if (!p)
                return eve_secret_alloc(size);
        n = eve_secret_alloc(size);
        if (!n)
                return NULL;
        memcpy(n, p, MIN(size, eve_secret_size(p)));
        eve_secret_free(p);
        return n;
}

bool memeq_secure(const void *a, const void *b, size_t n) {
        const volatile uint8_t *x = a, *y = b;
        uint8_t d = 0;

        for (size_t i = 0; i < n; i++)
                d |= x[i] ^ y[i];
        return d == 0;
}

int eve_harden_process(void) {
        struct rlimit rl = {};

        /* No core dumps of a process that holds secrets, and no ptrace by same-uid processes. */
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
                return log_error_errno(errno, "Failed to disable core dumps: %m");
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to make the process non-dumpable: %m");
        return 0;
}
