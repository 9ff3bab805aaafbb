/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "fixtures.h"
#include "tests.h"

extern const TestFunc __start_SYSTEMD_TEST_TABLE[];
extern const TestFunc __stop_SYSTEMD_TEST_TABLE[];

static jmp_buf test_jmp;
static enum { T_PASS, T_FAIL, T_SKIP } test_result;
static char *tmpdir;

static struct deferred {
        int (*fn)(void *arg);
        void *arg;
} deferred[64];
static size_t n_deferred;

void test_defer(int (*fn)(void *arg), void *arg) {
        if (n_deferred >= ELEMENTSOF(deferred)) {
                fprintf(stderr, "too many deferred teardowns\n");
                abort();
        }
        deferred[n_deferred++] = (struct deferred) { fn, arg };
}

int test_undefer(void *arg) {
        for (size_t i = n_deferred; i > 0; i--)
                if (deferred[i - 1].arg == arg) {
                        struct deferred d = deferred[i - 1];
                        memmove(deferred + i - 1, deferred + i, (n_deferred - i) * sizeof(deferred[0]));
                        n_deferred--;
                        return d.fn(d.arg);
                }
        return -ENOENT;
}

/* Runs every teardown of the test; returns false if one of them reported a problem. */
static bool run_deferred(void) {
        bool ok = true;

        while (n_deferred > 0) {
                struct deferred d = deferred[--n_deferred];
                int r = d.fn(d.arg);
                if (r < 0) {
                        fprintf(stderr, "  teardown failed: %s\n", strerror(ERRNO_VALUE(r)));
                        ok = false;
                }
        }
        return ok;
}

void test_fail(const char *file, int line, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s:%i: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        test_result = T_FAIL;
        longjmp(test_jmp, 1);
}

void test_skip(const char *reason) {
        fprintf(stderr, "  skipped: %s\n", reason);
        test_result = T_SKIP;
        longjmp(test_jmp, 1);
}

void test_assert_memeq(const char *file, int line, const char *what, const void *a, size_t an, const void *b,
                       size_t bn) {
        if (an == bn && (an == 0 || memcmp(a, b, an) == 0))
                return;
        fprintf(stderr, "%s:%i: %s differs (%zu vs %zu bytes)\n  got:      ", file, line, what, an, bn);
        for (size_t i = 0; i < an; i++)
                fprintf(stderr, "%02x", ((const uint8_t *) a)[i]);
        fprintf(stderr, "\n  expected: ");
        for (size_t i = 0; i < bn; i++)
                fprintf(stderr, "%02x", ((const uint8_t *) b)[i]);
        fputc('\n', stderr);
        test_result = T_FAIL;
        longjmp(test_jmp, 1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void remove_tmpdir(void) {
        if (tmpdir && !getenv_nonempty("EVE_TEST_KEEP_TMP"))
                (void) nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        tmpdir = mfree(tmpdir);
}

const char *test_tmpdir(void) {
        if (!tmpdir) {
                char t[] = "/tmp/eve-test-XXXXXX";
                if (!mkdtemp(t)) {
                        fprintf(stderr, "mkdtemp failed: %m\n");
                        abort();
                }
                tmpdir = strdup(t);
                if (!tmpdir)
                        abort();
                atexit(remove_tmpdir);
        }
        return tmpdir;
}

char *test_srcpath(const char *rel) {
        const char *src = getenv_nonempty("EVE_TEST_SRCDIR") ?: EVE_TEST_SRCDIR_DEFAULT;
        char *p;

        if (asprintf(&p, "%s/%s", src, rel) < 0)
                abort();
        return p;
}

static bool selected(const char *name, const char *list) {
        size_t n = strlen(name);

        if (!list)
                return true;
        for (const char *p = list; *p;) {
                size_t l = strcspn(p, ",");
                if (l == n && strncmp(p, name, n) == 0)
                        return true;
                p += l;
                if (*p == ',')
                        p++;
        }
        return false;
}

/* Runs one test and its teardowns; kept out of line so that setjmp() clobbers nothing of the caller's. */
static __attribute__((noinline)) int run_one(const TestFunc *t) {
        fprintf(stderr, "/* %s */\n", t->name);
        fflush(stderr);
        test_result = T_PASS;
        if (setjmp(test_jmp) == 0)
                t->func();
        if (!run_deferred() && test_result == T_PASS)
                test_result = T_FAIL;
        /* Fixtures reap what they start; anything still around is a leak that would outlive the test run. */
        if (test_count_children() > 0) {
                fprintf(stderr, "  %d child process(es) left behind\n", test_count_children());
                if (test_result == T_PASS)
                        test_result = T_FAIL;
        }
        return test_result;
}

int test_run_all(int argc, char **argv) {
        const char *list = getenv_nonempty("TESTFUNCS");
        unsigned passed = 0, failed = 0, skipped = 0;

        log_set_prefix(program_invocation_short_name);
        log_setup();
        if (!getenv_nonempty("EVE_LOG_LEVEL"))
                log_set_max_level(LOG_NOTICE);

        for (const TestFunc *t = __start_SYSTEMD_TEST_TABLE; t < __stop_SYSTEMD_TEST_TABLE; t++) {
                if (!selected(t->name, list))
                        continue;
                switch (run_one(t)) {
                case T_PASS:
                        passed++;
                        break;
                case T_FAIL:
                        fprintf(stderr, "  FAILED: %s\n", t->name);
                        failed++;
                        break;
                case T_SKIP:
                        skipped++;
                        break;
                }
        }
        fprintf(stderr, "%s: %u passed, %u failed, %u skipped\n", program_invocation_short_name, passed, failed,
                skipped);
        if (failed > 0)
                return EXIT_FAILURE;
        if (passed == 0 && skipped > 0)
                return 77;
        if (passed == 0)
                return EXIT_FAILURE; /* a binary that ran nothing is a mistake, not a pass */
        return EXIT_SUCCESS;
}
