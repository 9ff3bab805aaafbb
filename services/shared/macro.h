/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* macro.h: cleanup attributes, ownership transfer and small helpers shared by every eve-trust program. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _const_ __attribute__((const))
#define _noreturn_ __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _public_ __attribute__((visibility("default")))
#define _section_(x) __attribute__((__section__(x)))
#define _used_ __attribute__((__used__))
#define _retain_ __attribute__((__retain__))
#define _alignptr_ __attribute__((__aligned__(sizeof(void *))))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define STRINGIFY(x) XSTRINGIFY(x)
#define XSTRINGIFY(x) #x

/* Hands a pointer over: returns it and sets the variable to NULL, so its cleanup does nothing. */
#define TAKE_PTR(p)                                                                                           \
        ({                                                                                                    \
                __typeof__(p) _p = (p);                                                                       \
                (p) = NULL;                                                                                   \
                _p;                                                                                           \
        })
#define TAKE_FD(fd)                                                                                           \
        ({                                                                                                    \
                int _fd = (fd);                                                                               \
                (fd) = -EBADF;                                                                                \
                _fd;                                                                                          \
        })

/* An errno value we made up ourselves (not from a failed call), tagged so logs need not trust errno. */
#define SYNTHETIC_ERRNO(e) (abs((int) (e)) | (1 << 30))
#define ERRNO_VALUE(e) (abs((int) (e)) & ~(1 << 30))

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                               \
        static inline void func##p(type *p) {                                                                 \
                if (*p)                                                                                       \
                        *p = func(*p);                                                                        \
        }

#define DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(type, func)                                                          \
        static inline void func##p(type *p) {                                                                 \
                if (*p)                                                                                       \
                        func(*p);                                                                             \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#include <dirent.h>
static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)
#define isempty(s) (!(s) || (s)[0] == '\0')

/* Returns the value of an environment variable, or NULL when unset or empty (secure_getenv: no setuid games). */
static inline const char *getenv_nonempty(const char *name) {
        const char *v = secure_getenv(name);
        return isempty(v) ? NULL : v;
}

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}
