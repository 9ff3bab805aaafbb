/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A program built with EVE_DEFINE_MAIN whose run() returns what argv[1] says: "-5" → -5, "3" → 3. */
#include "main-func.h"

static int run(int argc, char *argv[]) {
        if (argc < 2)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Missing argument.");
        if (streq(argv[1], "-5"))
                return log_error_errno(SYNTHETIC_ERRNO(EIO), "Failing as asked.");
        return argv[1][0] - '0';
}

EVE_DEFINE_MAIN(run);
