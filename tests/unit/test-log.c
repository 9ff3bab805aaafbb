/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "log.h"
#include "tests.h"

/* Captures stderr around one log call. */
static char *capture(int level, int error, const char *msg) {
        static char buf[4096];
        int saved = dup(STDERR_FILENO), pfd[2];
        ssize_t n;

        ASSERT_OK(pipe(pfd));
        fflush(stderr);
        ASSERT_OK(dup2(pfd[1], STDERR_FILENO));
        close(pfd[1]);
        ASSERT_EQ(log_full_errno(level, error, "%s: %m", msg), error ? -ERRNO_VALUE(error) : 0);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        n = read(pfd[0], buf, sizeof buf - 1);
        close(pfd[0]);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

TEST(errno_text_and_return_value) {
        log_set_max_level(LOG_INFO);
        log_set_prefix("t");
        ASSERT_STREQ(capture(LOG_ERR, ENOENT, "Failed to open x"), "t: Failed to open x: No such file or directory\n");
        ASSERT_STREQ(capture(LOG_ERR, -EACCES, "Denied"), "t: Denied: Permission denied\n");
        ASSERT_STREQ(capture(LOG_ERR, SYNTHETIC_ERRNO(EBADMSG), "Bad"), "t: Bad: Bad message\n");
}

TEST(levels_filter) {
        log_set_max_level(LOG_WARNING);
        log_set_prefix("t");
        ASSERT_STREQ(capture(LOG_INFO, EIO, "hidden"), "");
        ASSERT_STREQ(capture(LOG_WARNING, 0, "shown"), "t: shown: Success\n");
        log_set_max_level(LOG_INFO);
}

TEST(level_names) {
        ASSERT_EQ(log_level_from_string("debug"), LOG_DEBUG);
        ASSERT_EQ(log_level_from_string("err"), LOG_ERR);
        ASSERT_EQ(log_level_from_string("error"), LOG_ERR);
        ASSERT_ERROR(log_level_from_string("loud"), EINVAL);
}

TEST(errno_preserved) {
        errno = EROFS;
        (void) capture(LOG_ERR, EIO, "x");
        ASSERT_EQ(errno, EROFS);
}

DEFINE_TEST_MAIN
