/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests.h: self-registering tests. TEST(name) { … } in any test file; DEFINE_TEST_MAIN once per binary.
 * $TESTFUNCS (comma-separated names) runs a subset. A test that cannot run here calls TEST_SKIP(reason): the
 * binary then exits 77 if nothing else ran, so meson reports it as skipped, never as passed. */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

typedef struct TestFunc {
        const char *name;
        void (*func)(void);
        const char *file;
} TestFunc;

#define TEST(n)                                                                                               \
        static void test_##n(void);                                                                           \
        _section_("SYSTEMD_TEST_TABLE") _alignptr_ _used_ _retain_ static const TestFunc test_entry_##n = {   \
                .name = STRINGIFY(n),                                                                         \
                .func = test_##n,                                                                             \
                .file = __FILE__,                                                                             \
        };                                                                                                    \
        static void test_##n(void)

void test_fail(const char *file, int line, const char *fmt, ...) _printf_(3, 4) _noreturn_;
void test_skip(const char *reason) _noreturn_;
int test_run_all(int argc, char **argv);
/* Registers fn(arg) to run when the current test ends, however it ends (pass, failure, skip), in reverse order
 * of registration. Fixtures use it so that a failed assertion never leaves a process behind. A teardown that
 * returns < 0 fails the test (e.g. a leftover TPM handle). test_undefer() runs and unregisters one early. */
void test_defer(int (*fn)(void *arg), void *arg);
int test_undefer(void *arg);
/* A fresh temporary directory for this test binary (removed at exit, recursively). */
const char *test_tmpdir(void);
/* $EVE_TEST_SRCDIR/$rel, newly allocated. */
char *test_srcpath(const char *rel);

#define TEST_SKIP(reason) test_skip(reason)

#define ASSERT_TRUE(expr)                                                                                     \
        do {                                                                                                  \
                if (!(expr))                                                                                  \
                        test_fail(__FILE__, __LINE__, "Assertion failed: %s", #expr);                         \
        } while (0)
#define ASSERT_FALSE(expr) ASSERT_TRUE(!(expr))
#define ASSERT_NOT_NULL(expr) ASSERT_TRUE((expr) != NULL)
#define ASSERT_NULL(expr) ASSERT_TRUE((expr) == NULL)

#define ASSERT_OK(expr)                                                                                       \
        ({                                                                                                    \
                intmax_t _r = (expr);                                                                         \
                if (_r < 0)                                                                                   \
                        test_fail(__FILE__, __LINE__, "Expected \"%s\" to succeed, got error %jd (%s)",       \
                                  #expr, _r, strerror((int) ERRNO_VALUE(_r)));                                \
                _r;                                                                                           \
        })
#define ASSERT_ERROR(expr, err)                                                                               \
        do {                                                                                                  \
                intmax_t _r = (expr);                                                                         \
                if (_r >= 0 || ERRNO_VALUE(_r) != ERRNO_VALUE(err))                                           \
                        test_fail(__FILE__, __LINE__, "Expected \"%s\" to fail with %s, got %jd (%s)", #expr, \
                                  strerrorname_np(ERRNO_VALUE(err)) ?: "?", _r,                              \
                                  _r < 0 ? strerror((int) ERRNO_VALUE(_r)) : "success");                       \
        } while (0)
#define ASSERT_EQ(a, b)                                                                                       \
        do {                                                                                                  \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b);                                            \
                if (_a != _b)                                                                                 \
                        test_fail(__FILE__, __LINE__, "Expected %s == %s, got %jd != %jd", #a, #b, _a, _b);   \
        } while (0)
#define ASSERT_NE(a, b)                                                                                       \
        do {                                                                                                  \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b);                                            \
                if (_a == _b)                                                                                 \
                        test_fail(__FILE__, __LINE__, "Expected %s != %s, both %jd", #a, #b, _a);             \
        } while (0)
#define ASSERT_GE(a, b)                                                                                       \
        do {                                                                                                  \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b);                                            \
                if (!(_a >= _b))                                                                              \
                        test_fail(__FILE__, __LINE__, "Expected %s >= %s, got %jd < %jd", #a, #b, _a, _b);    \
        } while (0)
#define ASSERT_LE(a, b)                                                                                       \
        do {                                                                                                  \
                intmax_t _a = (intmax_t) (a), _b = (intmax_t) (b);                                            \
                if (!(_a <= _b))                                                                              \
                        test_fail(__FILE__, __LINE__, "Expected %s <= %s, got %jd > %jd", #a, #b, _a, _b);    \
        } while (0)
#define ASSERT_STREQ(a, b)                                                                                    \
        do {                                                                                                  \
                const char *_a = (a), *_b = (b);                                                              \
                if (!streq_ptr(_a, _b))                                                                       \
                        test_fail(__FILE__, __LINE__, "Expected %s == %s, got \"%s\" != \"%s\"", #a, #b,      \
                                  _a ?: "(null)", _b ?: "(null)");                                            \
        } while (0)
/* Compares byte strings and prints both in hex when they differ. */
void test_assert_memeq(const char *file, int line, const char *what, const void *a, size_t an, const void *b,
                       size_t bn);
#define ASSERT_MEMEQ(a, an, b, bn) test_assert_memeq(__FILE__, __LINE__, #a, (a), (an), (b), (bn))

#define DEFINE_TEST_MAIN                                                                                      \
        int main(int argc, char *argv[]) {                                                                    \
                return test_run_all(argc, argv);                                                              \
        }
