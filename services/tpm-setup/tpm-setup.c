/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-tpm-setup: provisions the node's identity at every boot, idempotently. With a TPM: SRK, endorsement key,
 * device identity (its authorisation bound to the controller root CA and address when those files are there),
 * ECDH and attestation keys as persistent objects, a self-signed device certificate and
 * ECDH/attestation(/EK) certificates signed by the device key. Without one: software keys in the same places.
 * It creates only what is missing, checks that every certificate matches its key, and refuses to go on when
 * the TPM and the files disagree. Above all it never replaces a TPM-backed identity with a software one. */
#include <getopt.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "controller-certs.h"
#include "crypto-util.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "paths.h"
#include "tpm2-util.h"

/* EVE's HSMStatus values (info.proto). */
typedef enum HsmStatus {
        HSM_STATUS_NOTFOUND, /* no TPM at all: software keys */
        HSM_STATUS_DISABLED, /* a TPM is there but not used (forced, failing, or a software identity predates it) */
        HSM_STATUS_ENABLED,  /* keys in the TPM */
        _HSM_STATUS_MAX,
        _HSM_STATUS_INVALID = -EINVAL,
} HsmStatus;

static const char *const hsm_status_table[_HSM_STATUS_MAX] = {
        [HSM_STATUS_NOTFOUND] = "NOTFOUND",
        [HSM_STATUS_DISABLED] = "DISABLED",
        [HSM_STATUS_ENABLED] = "ENABLED",
};

#define DEVICE_CERT "device.cert.pem"
#define DEVICE_KEY "device.key.pem"

/* Where the TCTI configuration says the TPM is, when it names a path: the device node of "device[:PATH]"
 * (tss2's default: /dev/tpmrm0, then /dev/tpm0), the socket of "swtpm:path=PATH"/"mssim:path=PATH".
 * Whether that path exists tells "no TPM here" from "a TPM here that cannot be opened". false when the
 * configuration names no path (a TCP simulator: nothing to look at). */
static bool tcti_target_exists(const char *conf, char **ret_path) {
        size_t n = strcspn(conf, ":");
        const char *rest = conf[n] == ':' ? conf + n + 1 : "";
        _cleanup_free_ char *path = NULL;
        const char *p;

        *ret_path = NULL;
        if ((n == 6 && strncmp(conf, "device", 6) == 0) ||
            (n >= 22 && strncmp(conf, "libtss2-tcti-device.so", 22) == 0)) {
                if (*rest)
                        path = strdup(rest);
                else if (access("/dev/tpmrm0", F_OK) >= 0 || access("/dev/tpm0", F_OK) < 0)
                        path = strdup("/dev/tpmrm0");
                else
                        path = strdup("/dev/tpm0");
        } else if ((p = strstr(rest, "path=")) && (p == rest || p[-1] == ',')) {
                p += 5;
                path = strndup(p, strcspn(p, ","));
        }
        if (!path)
                return false;
        if (access(path, F_OK) < 0)
                return false;
        *ret_path = TAKE_PTR(path);
        return true;
}

static const char *arg_tcti = NULL;
static bool arg_no_tpm = false;
static bool arg_status = false;

typedef struct Setup {
        Tpm2Context *tpm;
        gnutls_privkey_t device_key;
        gnutls_x509_crt_t device_cert;
        bool create;   /* false with --status: check only */
        unsigned n_created;
} Setup;

static void setup_done(Setup *s) {
        if (s->device_cert)
                gnutls_x509_crt_deinit(s->device_cert);
        if (s->device_key)
                gnutls_privkey_deinit(s->device_key);
        tpm2_context_unref(s->tpm);
}

static const char *leaf_cert_name(CryptoCertKind k) {
        switch (k) {
        case CRYPTO_CERT_ECDH:
                return "ecdh.cert.pem";
        case CRYPTO_CERT_ATTEST:
                return "attest.cert.pem";
        case CRYPTO_CERT_EK:
                return "ek.cert.pem";
        default:
                return NULL;
        }
}

static const char *leaf_key_name(CryptoCertKind k) {
        return k == CRYPTO_CERT_ECDH ? "ecdh.key.pem" : k == CRYPTO_CERT_ATTEST ? "attest.key.pem" : NULL;
}

static int path_exists(const char *path) {
        if (access(path, F_OK) >= 0)
                return 1;
        return errno == ENOENT ? 0 : -errno;
}

/* mkdir -p */
static int mkdir_if_missing(const char *path) {
        int r = eve_mkdir_p(path, 0755);

        if (r < 0)
                return log_error_errno(r, "Cannot create directory %s: %m", path);
        return 0;
}

static int write_pem(gnutls_x509_crt_t crt, const char *path) {
        _cleanup_free_ char *pem = NULL;
        size_t size = 0;
        int r;

        r = crypto_cert_to_pem(crt, &pem, &size);
        if (r < 0)
                return log_error_errno(r, "Cannot encode %s: %m", path);
        r = crypto_write_file_atomic(path, pem, size, 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", path);
        return 0;
}

/* Loads the certificate at path and checks that it carries pub and is signed by issuer (itself if NULL). When
 * it is missing and we may create, makes it. */
static int ensure_cert(Setup *s, CryptoCertKind kind, const char *path, const Tpm2EccPoint *pub,
                gnutls_x509_crt_t *ret) {

        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t key = NULL;
        gnutls_x509_crt_t issuer = kind == CRYPTO_CERT_DEVICE ? NULL : s->device_cert;
        Tpm2EccPoint got;
        int r;

        r = crypto_cert_load(path, &crt, NULL, NULL);
        if (r == -ENOENT) {
                if (!s->create)
                        return log_error_errno(r, "%s is missing.", path);
                r = crypto_pubkey_from_point(pub, &key);
                if (r < 0)
                        return log_error_errno(r, "Cannot import public key for %s: %m", path);
                r = crypto_cert_make(kind, key, issuer, s->device_key, &crt);
                if (r < 0)
                        return log_error_errno(r, "Cannot make %s: %m%s%s", path, s->tpm ? " — TPM: " : "",
                                               s->tpm ? tpm2_context_last_error(s->tpm) : "");
                r = write_pem(crt, path);
                if (r < 0)
                        return r;
                log_info("Created %s.", path);
                s->n_created++;
        } else if (r < 0)
                return log_error_errno(r, "Cannot read certificate %s: %m", path);

        r = crypto_cert_point(crt, &got);
        if (r < 0)
                return log_error_errno(r, "%s does not hold an ECDSA P-256 key: %m", path);
        if (memcmp(&got, pub, sizeof(got)) != 0)
                return log_error_errno(SYNTHETIC_ERRNO(EBADMSG),
                                       "%s does not match its key (%s): the key was replaced or the TPM cleared. "
                                       "Refusing to continue; remove the certificate to re-provision.",
                                       path, s->tpm ? "in the TPM" : "software key file");
        r = crypto_cert_verify(crt, issuer);
        if (r < 0)
                return log_error_errno(r, "%s is not validly signed by %s.", path,
                                       issuer ? "the device certificate" : "its own key");
        if (ret)
                *ret = TAKE_PTR(crt);
        return 0;
}

/* ---- TPM ---- */

static int tpm_ensure_key(Setup *s, Tpm2Key k, bool create, Tpm2EccPoint *ret) {
        int r;

        r = tpm2_key_ensure(s->tpm, k, create && s->create, ret);
        if (r == -ENOENT)
                return log_error_errno(r, "The TPM has no %s at 0x%08x.", tpm2_key_to_string(k),
                                       tpm2_key_handle(k));
        if (r < 0)
                return log_error_errno(r, "TPM %s at 0x%08x: %s", tpm2_key_to_string(k), tpm2_key_handle(k),
                                       tpm2_context_last_error(s->tpm));
        if (r > 0) {
                log_info("Created the %s in the TPM at 0x%08x.", tpm2_key_to_string(k), tpm2_key_handle(k));
                s->n_created++;
        }
        return r;
}

static int tpm_provision_ek(Setup *s) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_CERTS, "ek.cert.pem");
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ uint8_t *der = NULL, *pub = NULL;
        size_t der_size = 0, pub_size = 0;
        Tpm2EccPoint point;
        uint32_t ek;
        int r;

        if (!path)
                return log_oom();
        r = tpm2_ek_ensure(s->tpm, s->create, &ek);
        if (r < 0)
                return log_error_errno(r, "Endorsement key: %s", tpm2_context_last_error(s->tpm));
        if (r > 0) {
                log_info("Created the endorsement key at 0x%08x.", ek);
                s->n_created++;
        }

        r = path_exists(path);
        if (r < 0)
                return log_error_errno(r, "Cannot access %s: %m", path);
        if (r > 0) {
                r = crypto_cert_load(path, &crt, NULL, NULL);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", path);
                return 0;
        }
        if (!s->create)
                return log_error_errno(SYNTHETIC_ERRNO(ENOENT), "%s is missing.", path);

        /* The manufacturer's certificate when the TPM has one; otherwise, as EVE does, one signed by the
         * device key (possible for an ECC EK only). */
        r = tpm2_ek_certificate(s->tpm, &der, &der_size);
        if (r >= 0) {
                r = crypto_cert_from_der(der, der_size, &crt);
                if (r < 0)
                        return log_error_errno(r, "The TPM's EK certificate does not parse: %m");
                r = write_pem(crt, path);
                if (r < 0)
                        return r;
                log_info("Wrote the TPM's endorsement key certificate to %s.", path);
                s->n_created++;
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "Reading the EK certificate: %s", tpm2_context_last_error(s->tpm));

        r = tpm2_persistent_public_marshal(s->tpm, ek, &pub, &pub_size);
        if (r < 0)
                return log_error_errno(r, "Reading the endorsement key: %s", tpm2_context_last_error(s->tpm));
        r = tpm2_public_parse(pub, pub_size, &point, NULL);
        if (r == -EMEDIUMTYPE) {
                log_notice("The TPM has an RSA endorsement key and no EK certificate; not writing %s.", path);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Cannot parse the endorsement key: %m");
        return ensure_cert(s, CRYPTO_CERT_EK, path, &point, NULL);
}

static int tpm_provision(Setup *s, bool have_device_cert) {
        _cleanup_free_ char *device_cert = eve_path_join(EVE_PATH_CONFIG, DEVICE_CERT);
        static const struct {
                Tpm2Key key;
                CryptoCertKind cert;
        } leaves[] = {
                { TPM2_KEY_ECDH, CRYPTO_CERT_ECDH },
                { TPM2_KEY_ATTEST, CRYPTO_CERT_ATTEST },
        };
        uint8_t auth[CONTROLLER_BINDING_SIZE];
        const char *reason = NULL;
        bool have_binding;
        Tpm2EccPoint point;
        int r;

        if (!device_cert)
                return log_oom();

        r = tpm_ensure_key(s, TPM2_KEY_SRK, true, NULL);
        if (r < 0)
                return r;

        /* The controller binding (docs/SECURITY.md): with root-certificate.pem and server on disk, a new device
         * key gets the authValue derived from them, and an existing unbound one (made before the binding, or
         * before those files were there) is bound now. Without them the key stays unbound until eve-register
         * binds it at the first contact with the controller. */
        r = controller_binding_compute(auth, &reason);
        have_binding = r >= 0;
        if (have_binding)
                r = tpm2_context_set_device_auth(s->tpm, auth, sizeof auth);
        erase(auth, sizeof auth);
        if (r < 0 && have_binding)
                return log_error_errno(r, "Cannot set the device key's authorisation: %m");
        if (!have_binding)
                log_notice("No controller binding for the device key yet (%s); eve-register binds it.",
                           reason ?: "?");

        /* The device key is a primary key: re-creating it from the same seed and template gives the same key,
         * so a missing one may be recreated; the certificate check below catches a cleared TPM. */
        r = tpm_ensure_key(s, TPM2_KEY_DEVICE, true, &point);
        if (r < 0)
                return r;
        if (r > 0 && have_device_cert)
                log_notice("The device key was missing from the TPM and has been re-created; checking it "
                           "against %s.", device_cert);
        if (have_binding && r == 0) {
                r = controller_binding_check(s->tpm, /* bind= */ s->create, &reason);
                if (r == -EKEYREVOKED)
                        return log_error_errno(r, "The device key refuses this node's controller files: %s.",
                                               reason);
                if (r < 0)
                        return log_error_errno(r, "Cannot check the device key's controller binding: %s (%s)",
                                               reason ?: "?", tpm2_context_last_error(s->tpm));
                if (r == CONTROLLER_BINDING_NEWLY_BOUND) {
                        log_notice("Bound the device key to the controller's root CA and address (same key).");
                        s->n_created++;
                } else if (r == CONTROLLER_BINDING_UNBOUND)
                        log_notice("The device key is not bound to the controller (empty authorisation).");
        }
        r = crypto_tpm_privkey(s->tpm, TPM2_KEY_DEVICE, &s->device_key);
        if (r < 0)
                return log_error_errno(r, "Cannot use the TPM device key for signing: %m");
        r = ensure_cert(s, CRYPTO_CERT_DEVICE, device_cert, &point, &s->device_cert);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(leaves); i++) {
                _cleanup_free_ char *path = eve_path_join(EVE_PATH_CERTS, leaf_cert_name(leaves[i].cert));
                _cleanup_free_ char *soft = eve_path_join(EVE_PATH_CERTS, leaf_key_name(leaves[i].cert));

                if (!path || !soft)
                        return log_oom();
                r = path_exists(soft);
                if (r < 0)
                        return log_error_errno(r, "Cannot access %s: %m", soft);
                if (r > 0)
                        return log_error_errno(SYNTHETIC_ERRNO(EBADMSG),
                                               "%s exists, but the device identity is in the TPM: the files are "
                                               "inconsistent. Remove the software key to use the TPM key.", soft);
                r = tpm_ensure_key(s, leaves[i].key, true, &point);
                if (r < 0)
                        return r;
                r = ensure_cert(s, leaves[i].cert, path, &point, NULL);
                if (r < 0)
                        return r;
        }
        return tpm_provision_ek(s);
}

/* ---- software ---- */

static int soft_key(Setup *s, const char *path, gnutls_privkey_t *ret) {
        int r;

        r = crypto_soft_key_load(path, ret);
        if (r != -ENOENT) {
                if (r < 0)
                        return log_error_errno(r, "Cannot load software key %s: %m", path);
                return 0;
        }
        if (!s->create)
                return log_error_errno(r, "%s is missing.", path);
        r = crypto_soft_key_generate(ret);
        if (r < 0)
                return log_error_errno(r, "Cannot generate a key: %m");
        r = crypto_soft_key_save(*ret, path);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", path);
        log_info("Created software key %s.", path);
        s->n_created++;
        return 0;
}

static int soft_provision(Setup *s) {
        _cleanup_free_ char *device_cert = eve_path_join(EVE_PATH_CONFIG, DEVICE_CERT);
        _cleanup_free_ char *device_key = eve_path_join(EVE_PATH_CONFIG, DEVICE_KEY);
        static const CryptoCertKind leaves[] = { CRYPTO_CERT_ECDH, CRYPTO_CERT_ATTEST };
        Tpm2EccPoint point;
        int r;

        if (!device_cert || !device_key)
                return log_oom();
        r = soft_key(s, device_key, &s->device_key);
        if (r < 0)
                return r;
        r = crypto_privkey_point(s->device_key, &point);
        if (r < 0)
                return log_error_errno(r, "%s is not an ECDSA P-256 key: %m", device_key);
        r = ensure_cert(s, CRYPTO_CERT_DEVICE, device_cert, &point, &s->device_cert);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(leaves); i++) {
                _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
                _cleanup_free_ char *path = eve_path_join(EVE_PATH_CERTS, leaf_cert_name(leaves[i]));
                _cleanup_free_ char *kpath = eve_path_join(EVE_PATH_CERTS, leaf_key_name(leaves[i]));

                if (!path || !kpath)
                        return log_oom();
                r = soft_key(s, kpath, &key);
                if (r < 0)
                        return r;
                r = crypto_privkey_point(key, &point);
                if (r < 0)
                        return log_error_errno(r, "%s is not an ECDSA P-256 key: %m", kpath);
                r = ensure_cert(s, leaves[i], path, &point, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- main ---- */

static int write_status(HsmStatus status) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_STATUS, "tpm-status");
        const char *s = hsm_status_table[status];
        _cleanup_free_ char *line = NULL;
        int r;

        if (!path || asprintf(&line, "%s\n", s) < 0)
                return log_oom();
        r = mkdir_if_missing(eve_path(EVE_PATH_STATUS));
        if (r < 0)
                return r;
        r = crypto_write_file_atomic(path, line, strlen(line), 0644);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", path);
        return 0;
}

static int help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Provision the node's TPM identity: keys, device certificate, ECDH and attestation certificates.\n"
               "Idempotent: creates only what is missing and checks what exists.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "     --config-dir=PATH   Directory of device.cert.pem (default %s)\n"
               "     --certs-dir=PATH    Directory of ecdh/attest/ek certificates (default %s)\n"
               "     --status-dir=PATH   Directory of the tpm-status file (default %s)\n"
               "     --tcti=CONF         TPM TCTI (default %s)\n"
               "     --no-tpm            Use software keys even if a TPM is present\n"
               "     --status            Check only: create nothing, print ENABLED/DISABLED/NOTFOUND\n",
               program_invocation_short_name, eve_path(EVE_PATH_CONFIG), eve_path(EVE_PATH_CERTS),
               eve_path(EVE_PATH_STATUS), eve_tcti());
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CONFIG_DIR,
                ARG_CERTS_DIR,
                ARG_STATUS_DIR,
                ARG_TCTI,
                ARG_NO_TPM,
                ARG_STATUS,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "certs-dir", required_argument, NULL, ARG_CERTS_DIR },
                { "status-dir", required_argument, NULL, ARG_STATUS_DIR },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "no-tpm", no_argument, NULL, ARG_NO_TPM },
                { "status", no_argument, NULL, ARG_STATUS },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        return help(), 0;
                case ARG_VERSION:
                        printf("eve-tpm-setup %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_CONFIG_DIR:
                case ARG_CERTS_DIR:
                case ARG_STATUS_DIR:
                        r = eve_path_set(c == ARG_CONFIG_DIR  ? EVE_PATH_CONFIG :
                                         c == ARG_CERTS_DIR ? EVE_PATH_CERTS :
                                                              EVE_PATH_STATUS,
                                         optarg);
                        if (r < 0)
                                return log_error_errno(r, "Bad path %s: %m", optarg);
                        break;
                case ARG_TCTI:
                        arg_tcti = optarg;
                        break;
                case ARG_NO_TPM:
                        arg_no_tpm = true;
                        break;
                case ARG_STATUS:
                        arg_status = true;
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

static int run(int argc, char *argv[]) {
        _cleanup_(setup_done) Setup s = { .create = true };
        _cleanup_free_ char *device_cert = NULL, *device_key = NULL;
        bool have_cert, soft_identity;
        HsmStatus status;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        s.create = !arg_status;
        umask(0022);
        (void) eve_harden_process();

        device_cert = eve_path_join(EVE_PATH_CONFIG, DEVICE_CERT);
        device_key = eve_path_join(EVE_PATH_CONFIG, DEVICE_KEY);
        if (!device_cert || !device_key)
                return log_oom();
        r = path_exists(device_cert);
        if (r < 0)
                return log_error_errno(r, "Cannot access %s: %m", device_cert);
        have_cert = r > 0;
        r = path_exists(device_key);
        if (r < 0)
                return log_error_errno(r, "Cannot access %s: %m", device_key);
        soft_identity = r > 0;
        /* As EVE decides it: a device certificate without a key file is TPM-backed. */
        bool tpm_identity = have_cert && !soft_identity;

        if (s.create) {
                r = mkdir_if_missing(eve_path(EVE_PATH_CONFIG));
                if (r >= 0)
                        r = mkdir_if_missing(eve_path(EVE_PATH_CERTS));
                if (r < 0)
                        return r;
        }

        if (arg_no_tpm) {
                if (tpm_identity)
                        return log_error_errno(SYNTHETIC_ERRNO(EPERM),
                                               "%s is TPM-backed (no %s): refusing to replace the TPM identity "
                                               "with a software key (--no-tpm).", device_cert, DEVICE_KEY);
                status = HSM_STATUS_DISABLED;
        } else {
                r = tpm2_context_new(arg_tcti, &s.tpm);
                if (r >= 0) {
                        r = tpm2_self_test(s.tpm);
                        if (r < 0)
                                log_warning_errno(r, "The TPM failed its self test: %s",
                                                  tpm2_context_last_error(s.tpm));
                } else
                        log_full_errno(tpm_identity ? LOG_ERR : LOG_NOTICE, r, "No usable TPM (%s): %m",
                                       arg_tcti ?: eve_tcti());

                if (r < 0) {
                        _cleanup_free_ char *present = NULL;

                        /* EVE bug #6344: a half-way failure must never replace a TPM identity silently. */
                        if (tpm_identity)
                                return log_error_errno(SYNTHETIC_ERRNO(ENODEV),
                                                       "%s is backed by a TPM key, but the TPM is not usable. "
                                                       "Refusing to fall back to a software identity: fix or "
                                                       "reconnect the TPM (or re-provision deliberately by "
                                                       "removing %s).",
                                                       device_cert, device_cert);
                        /* Nor is a first identity made in software for a TPM that is there but cannot be
                         * opened (busy, no access): it would stay once the TPM works again. Software keys
                         * there are a decision (--no-tpm). A software identity already made stays in use. */
                        if (!s.tpm && !soft_identity && tcti_target_exists(arg_tcti ?: eve_tcti(), &present))
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(ENODEV),
                                                "A TPM is present (%s) but cannot be opened. Refusing to "
                                                "fall back to software keys, which would stay when the "
                                                "TPM works again: fix its access, or choose software keys "
                                                "deliberately with --no-tpm.",
                                                present);
                        status = s.tpm ? HSM_STATUS_DISABLED : HSM_STATUS_NOTFOUND;
                        s.tpm = tpm2_context_unref(s.tpm);
                } else if (soft_identity) {
                        log_warning("A software identity (%s) exists; keeping it, the TPM stays unused.",
                                    device_key);
                        status = HSM_STATUS_DISABLED;
                        s.tpm = tpm2_context_unref(s.tpm);
                } else
                        status = HSM_STATUS_ENABLED;
        }

        if (s.tpm)
                r = tpm_provision(&s, have_cert);
        else {
                log_full(status == HSM_STATUS_NOTFOUND ? LOG_WARNING : LOG_NOTICE,
                         "Using SOFTWARE keys (HSM status %s): the device identity is not protected by a TPM.",
                         hsm_status_table[status]);
                r = soft_provision(&s);
        }
        if (r < 0)
                return r;

        if (s.create) {
                r = write_status(status);
                if (r < 0)
                        return r;
                log_info("TPM status %s; %u item(s) created%s.", hsm_status_table[status], s.n_created,
                         s.tpm ? "" : " (software keys)");
        }
        if (arg_status)
                printf("%s\n", hsm_status_table[status]);
        if (s.tpm)
                log_debug("%" PRIu64 " TPM commands.", tpm2_context_commands(s.tpm));
        return 0;
}

EVE_DEFINE_MAIN(run);
