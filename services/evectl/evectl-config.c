/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placeholder until the service lands: the command says so and fails. */
#include "evectl.h"
#include "log.h"

int verb_secret(int argc, char **argv) {
        return log_error_errno(
                        SYNTHETIC_ERRNO(EOPNOTSUPP), "evectl %s: not available in this build yet.", argv[0]);
}
int verb_config(int argc, char **argv) {
        return log_error_errno(
                        SYNTHETIC_ERRNO(EOPNOTSUPP), "evectl %s: not available in this build yet.", argv[0]);
}
