/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vaultd: the vaults' daemon (Type=notify, bus name org.eve.Vault). See vaultd.h, docs/VAULTS.md and the
 * org.eve.Vault section of docs/DBUS_API.md. */
#include "vaultd.h"

#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>

#include "bus-util.h"
#include "encoding.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"

static uint64_t arg_image_size = UINT64_C(1) << 30;
static uint64_t arg_config_size = UINT64_C(64) << 20;

static void help(void) {
        printf("%s [OPTIONS]\n\n"
               "The vaults' daemon: LUKS2 volumes with TPM-sealed and escrowed keys, on the system bus as "
               "org.eve.Vault.\n\n"
               "  -h, --help                 this text\n"
               "      --bus-introspect       print the D-Bus interfaces (XML) and exit\n"
               "      --image-size SIZE      size of the default vault 'image' when it is created (default "
               "1G)\n"
               "      --config-size SIZE     size of the default vault 'config' when it is created (default "
               "64M)\n\n"
               "Environment: $EVE_ROOT and $EVE_*_DIR (paths), $EVE_TPM2_TCTI, $EVE_VAULT_WORKER (the "
               "worker\n"
               "binary), $EVE_ADMIN_GROUP (besides root, who may change vaults; default eve-admin).\n",
               program_invocation_short_name);
}

static int parse_argv(int argc, char **argv) {
        enum { ARG_BUS_INTROSPECT = 0x100, ARG_IMAGE_SIZE, ARG_CONFIG_SIZE };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
                { "image-size", required_argument, NULL, ARG_IMAGE_SIZE },
                { "config-size", required_argument, NULL, ARG_CONFIG_SIZE },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_BUS_INTROSPECT:
                        r = bus_print_introspection();
                        return r < 0 ? r : 0;
                case ARG_IMAGE_SIZE:
                case ARG_CONFIG_SIZE:
                        r = parse_size(optarg, c == ARG_IMAGE_SIZE ? &arg_image_size : &arg_config_size);
                        if (r < 0)
                                return log_error_errno(r, "Invalid size: %s", optarg);
                        if ((c == ARG_IMAGE_SIZE ? arg_image_size : arg_config_size) < LUKS2_IMAGE_SIZE_MIN)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(ERANGE), "A vault needs at least 32M.");
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "No arguments expected.");
        return 1;
}

static int run(int argc, char **argv) {
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        (void) eve_harden_process();
        umask(0077);

        /* sd_event_add_child() needs SIGCHLD blocked before any worker exists. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block SIGCHLD: %m");

        r = manager_new(&m);
        if (r < 0)
                return log_oom();
        m->image_size = arg_image_size;
        m->config_size = arg_config_size;
        r = bus_daemon_open(&m->event, &m->bus);
        if (r < 0)
                return r;
        r = bus_register(m);
        if (r < 0)
                return r;
        /* Loads the vaults and queues their TPM unlock; the workers run from the loop, so the bus is served
         * at once and nothing waits for the controller. */
        r = manager_start(m);
        if (r < 0)
                return r;
        r = bus_daemon_ready(m->bus, VAULT_BUS_NAME, "Serving; unlocking the vaults with the TPM.");
        if (r < 0)
                return r;
        return bus_daemon_run(m->event, m->bus, VAULT_BUS_NAME);
}

EVE_DEFINE_MAIN(run);
