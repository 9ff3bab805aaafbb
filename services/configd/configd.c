/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-configd: the node's configuration from the controller, its secrets encrypted until one consumer asks
 * (docs/CONFIG.md). Type=notify, bus name org.eve.Config, credential socket $EVE_RUN_DIR/credentials.sock.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bus-util.h"
#include "configd-manager.h"
#include "encoding.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "paths.h"

static char *arg_tcti = NULL;
static char *arg_acl_dir = NULL;
static char *arg_vault_mount = NULL;
static char *arg_credsock = NULL;
static uint64_t arg_interval = FETCH_INTERVAL_DEFAULT;
static uint64_t arg_retry = FETCH_RETRY_DEFAULT;
static uint64_t arg_info_interval = INFO_INTERVAL_DEFAULT;
static bool arg_fetch = true;
static bool arg_info = true;
static bool arg_check_mount = true;

static void help(void) {
        printf("%s [OPTIONS…]\n\n"
               "Fetches the node's configuration from the controller, keeps it in the config vault with "
               "every\n"
               "secret still encrypted, and decrypts one secret at a time for the consumer on its ACL, "
               "over\n"
               "D-Bus (org.eve.Config) or the credential socket "
               "(LoadCredential=NAME:%s/credentials.sock).\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --bus-introspect       Print the D-Bus interface XML and exit\n"
               "     --tcti=CONF            TPM (default %s)\n"
               "     --acl-dir=DIR          ACL drop-ins (default %s/secrets.d)\n"
               "     --vault-mount=DIR      Mount point of the config vault (default %s/config)\n"
               "     --credentials-socket=PATH  (default %s/credentials.sock)\n"
               "     --interval=TIME        Fetch period (default 60s)\n"
               "     --retry=TIME           First back-off after a failure (default 5s; doubles to "
               "--interval)\n"
               "     --info-interval=TIME   Info report period (default 600s)\n"
               "     --no-fetch             Do not talk to the controller (serve the stored config)\n"
               "     --no-info              Send no info reports\n"
               "     --no-mount-check       Store even when the vault's mount point is not a mount (tests)\n"
               "TIME: a number with ms, s (default), min or h.\n",
               program_invocation_short_name,
               eve_path(EVE_PATH_RUN),
               eve_tcti(),
               eve_path(EVE_PATH_CONFIG),
               eve_path(EVE_PATH_VAULTS),
               eve_path(EVE_PATH_RUN));
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_BUS_INTROSPECT,
                ARG_TCTI,
                ARG_ACL_DIR,
                ARG_VAULT_MOUNT,
                ARG_CREDSOCK,
                ARG_INTERVAL,
                ARG_RETRY,
                ARG_INFO_INTERVAL,
                ARG_NO_FETCH,
                ARG_NO_INFO,
                ARG_NO_MOUNT_CHECK,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "acl-dir", required_argument, NULL, ARG_ACL_DIR },
                { "vault-mount", required_argument, NULL, ARG_VAULT_MOUNT },
                { "credentials-socket", required_argument, NULL, ARG_CREDSOCK },
                { "interval", required_argument, NULL, ARG_INTERVAL },
                { "retry", required_argument, NULL, ARG_RETRY },
                { "info-interval", required_argument, NULL, ARG_INFO_INTERVAL },
                { "no-fetch", no_argument, NULL, ARG_NO_FETCH },
                { "no-info", no_argument, NULL, ARG_NO_INFO },
                { "no-mount-check", no_argument, NULL, ARG_NO_MOUNT_CHECK },
                {},
        };
        uint64_t *t;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("eve-configd %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_BUS_INTROSPECT:
                        r = bus_introspect_implementations(stdout, configd_bus_objects);
                        return r < 0 ? r : 0;
                case ARG_TCTI:
                        arg_tcti = optarg;
                        break;
                case ARG_ACL_DIR:
                        arg_acl_dir = optarg;
                        break;
                case ARG_VAULT_MOUNT:
                        arg_vault_mount = optarg;
                        break;
                case ARG_CREDSOCK:
                        arg_credsock = optarg;
                        break;
                case ARG_INTERVAL:
                case ARG_RETRY:
                case ARG_INFO_INTERVAL:
                        t = c == ARG_INTERVAL            ? &arg_interval
                                        : c == ARG_RETRY ? &arg_retry
                                                         : &arg_info_interval;
                        r = parse_timespan(optarg, t);
                        if (r < 0 || *t == 0)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL), "Bad time span '%s'.", optarg);
                        break;
                case ARG_NO_FETCH:
                        arg_fetch = false;
                        break;
                case ARG_NO_INFO:
                        arg_info = false;
                        break;
                case ARG_NO_MOUNT_CHECK:
                        arg_check_mount = false;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        abort();
                }
        if (optind < argc)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "This program takes no arguments.");
        return 1;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("SIGHUP: reloading the secret ACLs.");
        (void) manager_reload_acl(m);
        return 0;
}

static int copy_opt(char **dst, const char *src) {
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t mask;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        umask(0077);
        (void) eve_harden_process();

        r = manager_new(&m);
        if (r < 0)
                return log_oom();
        if (copy_opt(&m->tcti, arg_tcti) < 0 || copy_opt(&m->acl_dir, arg_acl_dir) < 0 ||
            copy_opt(&m->vault_mount, arg_vault_mount) < 0 || copy_opt(&m->credsock_path, arg_credsock) < 0)
                return log_oom();
        m->fetch_interval = arg_interval;
        m->fetch_retry = arg_retry;
        m->info_interval = arg_info_interval;
        m->fetch_enabled = arg_fetch;
        m->info_enabled = arg_info;
        m->check_mount = arg_check_mount;

        r = bus_daemon_open(&m->event, &m->bus);
        if (r < 0)
                return r;
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Cannot block SIGHUP: %m");
        r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch SIGHUP: %m");

        r = manager_bus_register(m);
        if (r < 0)
                return r;
        r = manager_startup(m);
        if (r < 0)
                return r;
        r = manager_credsock_start(m);
        if (r < 0)
                return r;
        r = manager_fetch_start(m);
        if (r < 0)
                return r;
        r = manager_info_start(m);
        if (r < 0)
                return r;
        r = bus_daemon_ready(m->bus, CONFIGD_BUS_NAME, m->storage_state);
        if (r < 0)
                return r;
        return bus_daemon_run(m->event, m->bus, CONFIGD_BUS_NAME);
}

EVE_DEFINE_MAIN(run);
