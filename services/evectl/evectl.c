/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl: talks to eve-vaultd, eve-attestd and eve-configd over the system bus ($DBUS_SYSTEM_BUS_ADDRESS
 * when set). Tables for people, --json for scripts. */
#include "evectl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "main-func.h"

EvectlOptions arg_evectl = {};

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
} verbs[] = {
        { "vault", verb_vault },   { "attest", verb_attest }, { "secret", verb_secret },
        { "config", verb_config }, { "status", verb_status },
};

static void help(void) {
        printf("Usage: evectl [--json] COMMAND ...\n\n"
               "Commands:\n"
               "  status                          summary of vaults, attestation and configuration\n"
               "  vault list|show|create|delete|lock|unlock|rotate ...\n"
               "  attest status|restart\n"
               "  secret list|get NAME\n"
               "  config status\n\n"
               "Options:\n"
               "  --json       machine-readable output\n"
               "  -h, --help   this text\n");
}

static int run(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        /* "+": options end at the verb; the verb parses its own. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        arg_evectl.json = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }

        if (optind >= argc) {
                help();
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "A command is required.");
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[optind], verbs[i].name))
                        return verbs[i].run(argc - optind, argv + optind);
        return log_error_errno(
                        SYNTHETIC_ERRNO(EINVAL), "Unknown command '%s' (see evectl --help).", argv[optind]);
}

EVE_DEFINE_MAIN(run);
