/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-register: the node's first words with its controller, run once per boot, idempotent. Checks first that
 * the TPM device key is bound to this controller's root CA and address (binds an unbound one; refuses to go
 * on when it is bound to other files). Fetches /certs (each signing and ECDH certificate verified against
 * root-certificate.pem, then stored for the other daemons), asks /uuid with a request signed by the device
 * key, and only when the controller does not know the device yet registers it with the onboarding
 * certificate and the serial; stores the UUID in the status directory. A controller that cannot be reached
 * is not an error when an earlier boot stored everything already: attestd retries on its own schedule. */
#include <getopt.h>
#include <sys/stat.h>

#include "controller-certs.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "encoding.h"
#include "eveuuid.pb-c.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"
#include "register.pb-c.h"

#define UUID_FILE "uuid"
#define SOFT_SERIAL_FILE "soft_serial"
#define DMI_SERIAL "/sys/class/dmi/id/product_serial"
#define SERIAL_MAX 256U

static char *arg_serial = NULL;
static char *arg_soft_serial = NULL;

static void help(void) {
        printf("%s [OPTIONS…]\n\n"
               "Fetches the controller's certificates, registers this node with its onboarding certificate "
               "when\n"
               "the controller does not know it yet, and stores the device UUID.\n\n"
               "  -h --help               Show this help\n"
               "     --version            Show the version\n"
               "     --serial=SERIAL      Hardware serial to register with (default: %s)\n"
               "     --soft-serial=SERIAL Software serial (default: the config directory's soft_serial)\n"
               "     --tcti=CONF          TPM to use (default: $EVE_TPM2_TCTI or %s)\n"
               "\nFiles: "
               "%s/{server,root-certificate.pem,device.cert.pem,onboard.cert.pem,onboard.key.pem};\n"
               "writes %s/controller/*.pem and %s/uuid.\n",
               program_invocation_short_name,
               DMI_SERIAL,
               DEFAULT_TCTI,
               eve_path(EVE_PATH_CONFIG),
               eve_path(EVE_PATH_CERTS),
               eve_path(EVE_PATH_STATUS));
}

/* A serial as EVE accepts it: printable, at most 256 bytes; the soft serial only [A-Za-z0-9_-]. */
static bool serial_valid(const char *s, bool soft) {
        if (isempty(s) || strlen(s) > SERIAL_MAX)
                return false;
        for (const char *p = s; *p; p++) {
                if (soft ? !(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
                             ('0' <= *p && *p <= '9') || *p == '_' || *p == '-')
                         : (*p < 0x20 || *p == 0x7f))
                        return false;
        }
        return true;
}

static char *read_line(const char *path) {
        _cleanup_free_ char *s = NULL;
        size_t n;

        if (crypto_read_file(path, false, &s, &n) < 0)
                return NULL;
        s[strcspn(s, "\r\n")] = '\0';
        return isempty(s) ? NULL : TAKE_PTR(s);
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_SERIAL, ARG_SOFT_SERIAL, ARG_TCTI };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "serial", required_argument, NULL, ARG_SERIAL },
                { "soft-serial", required_argument, NULL, ARG_SOFT_SERIAL },
                { "tcti", required_argument, NULL, ARG_TCTI },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("eve-register %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_SERIAL:
                case ARG_SOFT_SERIAL:
                        if (!serial_valid(optarg, c == ARG_SOFT_SERIAL))
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL), "Invalid serial: %s", optarg);
                        free(c == ARG_SERIAL ? arg_serial : arg_soft_serial);
                        *(c == ARG_SERIAL ? &arg_serial : &arg_soft_serial) = strdup(optarg);
                        break;
                case ARG_TCTI:
                        if (setenv("EVE_TPM2_TCTI", optarg, 1) < 0)
                                return log_oom();
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Unknown option.");
                }
        if (optind < argc)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "This program takes no arguments.");
        return 1;
}

static int load_serials(void) {
        if (!arg_serial) {
                _cleanup_free_ char *s = read_line(DMI_SERIAL);
                if (s && serial_valid(s, false))
                        arg_serial = TAKE_PTR(s);
        }
        if (!arg_soft_serial) {
                _cleanup_free_ char *path = eve_path_join(EVE_PATH_CONFIG, SOFT_SERIAL_FILE), *s = NULL;
                if (!path)
                        return log_oom();
                s = read_line(path);
                if (s && serial_valid(s, true))
                        arg_soft_serial = TAKE_PTR(s);
                else if (s)
                        log_warning("Ignoring %s: not a serial of letters, digits, '_' and '-'.", path);
        }
        return 0;
}

/* POST /uuid: 0 and the UUID, or the client's error. */
static int ask_uuid(ControllerClient *c, char ret[static 37]) {
        Org__Lfedge__Eve__Uuid__UuidRequest req = ORG__LFEDGE__EVE__UUID__UUID_REQUEST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidResponse *resp = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t size = 0;
        int r;

        r = controller_client_post_sync(c, "uuid", &req.base, 0, NULL, &payload, &size);
        if (r < 0)
                return r;
        r = PROTO_UNPACK(
                        &org__lfedge__eve__uuid__uuid_response__descriptor, payload, size, 64 * 1024, &resp);
        if (r < 0 || !resp->uuid || strlen(resp->uuid) != 36)
                return log_error_errno(
                                SYNTHETIC_ERRNO(EBADMSG), "The controller's /uuid answer holds no UUID.");
        for (size_t i = 0; i < 36; i++) {
                char ch = resp->uuid[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? ch != '-'
                         : !(('0' <= ch && ch <= '9') || ('a' <= ch && ch <= 'f') ||
                             ('A' <= ch && ch <= 'F')))
                        return log_error_errno(
                                        SYNTHETIC_ERRNO(EBADMSG),
                                        "The controller's /uuid answer is not a UUID.");
                ret[i] = (char) (('A' <= ch && ch <= 'F') ? ch - 'A' + 'a' : ch);
        }
        ret[36] = '\0';
        return 0;
}

static int do_register(ControllerClient *c) {
        Org__Lfedge__Eve__Register__ZRegisterMsg msg = ORG__LFEDGE__EVE__REGISTER__ZREGISTER_MSG__INIT;
        _cleanup_free_ char *cert_path = eve_path_join(EVE_PATH_CONFIG, "device.cert.pem"), *pem = NULL,
                            *b64 = NULL;
        size_t size;
        long status = 0;
        int r;

        if (!cert_path)
                return log_oom();
        r = controller_client_load_onboarding(c, NULL, NULL);
        if (r < 0)
                return log_error_errno(
                                r,
                                "The controller does not know this device and it cannot register: %s",
                                controller_client_last_error(c));
        if (!arg_serial && !arg_soft_serial)
                return log_error_errno(
                                SYNTHETIC_ERRNO(ENOENT),
                                "Cannot register: no serial (give --serial, or put one in %s/%s).",
                                eve_path(EVE_PATH_CONFIG),
                                SOFT_SERIAL_FILE);
        r = crypto_read_file(cert_path, false, &pem, &size);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", cert_path);
        b64 = base64_encode(pem, size); /* EVE sends base64(PEM) in pemCert */
        if (!b64)
                return log_oom();
        msg.pemcert = (ProtobufCBinaryData){ .len = strlen(b64), .data = (uint8_t *) b64 };
        msg.serial = arg_serial ?: (char *) "";
        msg.softserial = arg_soft_serial ?: (char *) "";

        r = controller_client_post_sync(
                        c, "register", &msg.base, CONTROLLER_REQUEST_ONBOARDING, &status, NULL, NULL);
        switch (r) {
        case 0:
                log_info("Registered with the controller (HTTP %ld%s), serial %s.",
                         status,
                         status == 200 ? ", already registered" : "",
                         arg_serial ?: arg_soft_serial);
                return 0;
        case -EEXIST:
                return log_error_errno(
                                r,
                                "Registration refused (HTTP 409): the controller has this device "
                                "certificate "
                                "registered through another onboarding certificate, or serial %s registered "
                                "for another device. An administrator must remove the other registration.",
                                arg_serial ?: arg_soft_serial);
        case -EACCES:
                return log_error_errno(
                                r,
                                "Registration refused (HTTP 403): serial %s with this onboarding "
                                "certificate "
                                "is not allowed at the controller. An administrator must allow it.",
                                arg_serial ?: arg_soft_serial);
        default:
                return log_error_errno(r, "Registration failed: %s", controller_client_last_error(c));
        }
}

static int write_uuid(const char *uuid) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_STATUS, UUID_FILE), *text = NULL;
        char old[37];
        int r;

        if (!path)
                return log_oom();
        if (controller_read_uuid(old) >= 0 && streq(old, uuid))
                return 0;
        r = eve_mkdir_p(eve_path(EVE_PATH_STATUS), 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", eve_path(EVE_PATH_STATUS));
        if (asprintf(&text, "%s\n", uuid) < 0)
                return log_oom();
        r = crypto_write_file_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", path);
        return 1;
}

/* The controller binding (docs/SECURITY.md), before a byte goes out: a TPM device key made before the
 * binding or before the controller files were there is bound to root-certificate.pem and server now (first
 * contact); one bound to other files stops everything here: the node must not talk to a controller it was
 * not onboarded with. A software identity has nothing to bind. */
static int check_binding(void) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *tpm = NULL;
        _cleanup_free_ char *soft_key = eve_path_join(EVE_PATH_CONFIG, "device.key.pem");
        const char *reason = NULL;
        int r;

        if (!soft_key)
                return log_oom();
        if (access(soft_key, F_OK) >= 0)
                return 0;
        r = tpm2_context_new(NULL, &tpm);
        if (r < 0)
                return 0; /* controller_client_load_identity() says what is wrong */
        r = controller_binding_check(tpm, /* bind= */ true, &reason);
        if (r == -EKEYREVOKED)
                return log_error_errno(
                                r,
                                "Not contacting the controller: %s. Nothing was sent; the node must be "
                                "re-onboarded unless the original files come back.",
                                reason);
        if (r == -ENOENT)
                return 0; /* no files or no key: the steps below report it */
        if (r < 0)
                return log_error_errno(
                                r,
                                "Cannot check the device key's controller binding: %s (%s)",
                                reason ?: "?",
                                tpm2_context_last_error(tpm));
        if (r == CONTROLLER_BINDING_NEWLY_BOUND)
                log_notice("Bound the device key to this controller's root CA and address (the same key).");
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        char uuid[37], stored[37];
        bool have_stored;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        /* It loads the onboarding key (and a TPM-less node's device key): no core dump, no ptrace. */
        (void) eve_harden_process();
        r = load_serials();
        if (r < 0)
                return r;
        have_stored = controller_read_uuid(stored) >= 0;

        r = check_binding();
        if (r < 0)
                return r;

        r = controller_client_new(NULL, &c);
        if (r < 0)
                return r; /* logged */
        (void) controller_client_set_serial(c, arg_serial, arg_soft_serial);

        r = controller_client_fetch_certs_sync(c);
        if (r < 0) {
                if (have_stored && controller_error_is_transient(r)) {
                        log_warning("Controller unreachable (%s); keeping the stored UUID %s and "
                                    "certificates.",
                                    controller_client_last_error(c),
                                    stored);
                        return 0;
                }
                return log_error_errno(
                                r,
                                "Cannot fetch the controller's certificates: %s",
                                controller_client_last_error(c));
        }
        log_info("Controller certificates verified and stored in %s/controller.", eve_path(EVE_PATH_CERTS));

        r = controller_client_load_identity(c, NULL);
        if (r < 0)
                return log_error_errno(r, "%s", controller_client_last_error(c));

        r = ask_uuid(c, uuid);
        if (r == -EPERM || r == -ENOENT) {
                /* 401 (evc: unknown signer) or 400/404 (EVE: unknown device): not registered yet. */
                log_info("The controller does not know this device yet; registering.");
                r = do_register(c);
                if (r < 0)
                        return r;
                r = ask_uuid(c, uuid);
        }
        if (r == -EACCES)
                return log_error_errno(
                                r, "The controller refuses this device (HTTP 403 on /uuid): revoked?");
        if (r < 0) {
                if (have_stored && controller_error_is_transient(r)) {
                        log_warning("Controller unreachable (%s); keeping the stored UUID %s.",
                                    controller_client_last_error(c),
                                    stored);
                        return 0;
                }
                return log_error_errno(
                                r, "Cannot learn the device UUID: %s", controller_client_last_error(c));
        }
        r = write_uuid(uuid);
        if (r < 0)
                return r;
        if (have_stored && !streq(stored, uuid))
                log_notice("The controller changed this device's UUID from %s to %s.", stored, uuid);
        log_info("Device UUID %s%s.", uuid, r > 0 ? " stored" : " (unchanged)");
        return 0;
}

EVE_DEFINE_MAIN(run);
