/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main-func.h: EVE_DEFINE_MAIN(run) turns "int run(int argc, char **argv)" into main(): negative errno → failure. */
#pragma once

#include <stdlib.h>

#include "log.h"

/* run() returns < 0 on failure (already logged), 0 on success, or a positive exit status to use as is. */
#define EVE_DEFINE_MAIN(impl)                                                                                 \
        int main(int argc, char *argv[]) {                                                                    \
                int _r;                                                                                       \
                log_set_prefix(program_invocation_short_name);                                                \
                log_setup();                                                                                  \
                _r = impl(argc, argv);                                                                        \
                return _r < 0 ? EXIT_FAILURE : _r;                                                            \
        }
