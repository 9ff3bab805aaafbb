/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller-certs.h"

#include <dirent.h>
#include <nettle/sha2.h>

#include "crypto-util.h"
#include "encoding.h"
#include "log.h"
#include "memory-util.h"
#include "paths.h"

#define ROOT_CA_FILE "root-certificate.pem"
#define CHAIN_MAX 8U

static const char *const kind_name[_CONTROLLER_CERT_MAX] = {
        [CONTROLLER_CERT_SIGNING] = "signing",
        [CONTROLLER_CERT_ECDH] = "ecdh",
};

const char *controller_cert_kind_to_string(ControllerCertKind k) {
        return k >= 0 && k < _CONTROLLER_CERT_MAX ? kind_name[k] : NULL;
}

char *controller_cert_path(ControllerCertKind kind, const uint8_t hash[static CONTROLLER_CERT_HASH_SIZE]) {
        _cleanup_free_ char *hex = NULL;
        char *p;

        if (!controller_cert_kind_to_string(kind))
                return NULL;
        hex = hex_encode(hash, CONTROLLER_CERT_HASH_SIZE);
        if (!hex)
                return NULL;
        if (asprintf(&p, "%s/controller/%s-%s.pem", eve_path(EVE_PATH_CERTS), kind_name[kind], hex) < 0)
                return NULL;
        return p;
}

static void crt_list_free(gnutls_x509_crt_t *list, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                gnutls_x509_crt_deinit(list[i]);
        gnutls_free(list);
}

/* Appends the stored intermediate certificates (intermediate-*.pem, as the controller client stores them
 * from /certs) to chain[*n..CHAIN_MAX): candidates only, the root CA stays the one trust anchor. */
static void add_stored_intermediates(gnutls_x509_crt_t *chain, unsigned *n) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if (asprintf(&dir, "%s/controller", eve_path(EVE_PATH_CERTS)) < 0)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while (*n < CHAIN_MAX && (de = readdir(d))) {
                _cleanup_free_ char *path = NULL;

                if (strncmp(de->d_name, "intermediate-", 13) != 0 ||
                    asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                        continue;
                if (crypto_cert_load(path, &chain[*n], NULL, NULL) >= 0)
                        (*n)++;
        }
}

#define REFUSE(err, reason)                     \
        ({                                      \
                if (ret_reason)                 \
                        *ret_reason = (reason); \
                -(err);                         \
        })

int controller_cert_find(
                ControllerCertKind kind,
                const void *hash,
                size_t hash_size,
                gnutls_x509_crt_t *ret,
                const char **ret_reason) {

        _cleanup_free_ char *path = NULL, *pem = NULL, *root_path = NULL, *root_pem = NULL;
        gnutls_x509_trust_list_t tl = NULL;
        gnutls_x509_crt_t *list = NULL, chain[CHAIN_MAX] = {};
        uint8_t digest[SHA256_DIGEST_SIZE];
        struct sha256_ctx h;
        size_t size, root_size;
        unsigned n = 0, n_chain, status = 0;
        int r;

        if (!controller_cert_kind_to_string(kind) || !hash || !ret)
                return REFUSE(EINVAL, "bad arguments");
        if (hash_size != CONTROLLER_CERT_HASH_SIZE && hash_size != SHA256_DIGEST_SIZE)
                return REFUSE(EINVAL, "certificate hash is neither 16 nor 32 bytes");

        path = controller_cert_path(kind, hash);
        if (!path)
                return -ENOMEM;
        r = crypto_read_file(path, /* secure= */ false, &pem, &size);
        if (r == -ENOENT)
                return REFUSE(ENOENT, "no controller certificate with this hash (fetch /certs again)");
        if (r < 0)
                return REFUSE(-r, "controller certificate file unreadable");

        sha256_init(&h);
        sha256_update(&h, size, (const uint8_t *) pem);
        sha256_digest(&h, sizeof digest, digest);
        if (memcmp(digest, hash, hash_size) != 0)
                return REFUSE(EBADMSG, "controller certificate file does not match the hash in its name");

        root_path = eve_path_join(EVE_PATH_CONFIG, ROOT_CA_FILE);
        if (!root_path)
                return -ENOMEM;
        r = crypto_read_file(root_path, /* secure= */ false, &root_pem, &root_size);
        if (r == -ENOENT)
                return REFUSE(ENOKEY, "no controller root CA (" ROOT_CA_FILE ")");
        if (r < 0)
                return REFUSE(-r, "controller root CA unreadable");

        r = gnutls_x509_crt_list_import2(
                        &list,
                        &n,
                        &(gnutls_datum_t){ (unsigned char *) pem, (unsigned) size },
                        GNUTLS_X509_FMT_PEM,
                        0);
        if (r < 0 || n == 0) {
                if (r >= 0)
                        crt_list_free(list, n);
                return REFUSE(EBADMSG, "controller certificate file does not parse");
        }
        if (n > CHAIN_MAX) {
                crt_list_free(list, n);
                return REFUSE(EBADMSG, "controller certificate file holds too many certificates");
        }

        r = gnutls_x509_trust_list_init(&tl, 0);
        if (r >= 0) {
                r = gnutls_x509_trust_list_add_trust_mem(
                                tl,
                                &(gnutls_datum_t){ (unsigned char *) root_pem, (unsigned) root_size },
                                NULL,
                                GNUTLS_X509_FMT_PEM,
                                0,
                                0);
                if (r == 0)
                        r = GNUTLS_E_NO_CERTIFICATE_FOUND;
        }
        for (n_chain = 0; n_chain < n; n_chain++)
                chain[n_chain] = list[n_chain];
        add_stored_intermediates(chain, &n_chain);
        if (r >= 0)
                r = gnutls_x509_trust_list_verify_crt(tl, chain, n_chain, 0, &status, NULL);
        if (tl)
                gnutls_x509_trust_list_deinit(tl, 1);
        for (unsigned i = n; i < n_chain; i++)
                gnutls_x509_crt_deinit(chain[i]);
        if (r < 0 || status != 0) {
                crt_list_free(list, n);
                log_debug("Controller certificate %s: verification status 0x%x, %s",
                          path,
                          status,
                          r < 0 ? gnutls_strerror(r) : "done");
                return REFUSE(EBADMSG, "controller certificate does not chain to the controller root CA");
        }

        *ret = list[0];
        for (unsigned i = 1; i < n; i++)
                gnutls_x509_crt_deinit(list[i]);
        gnutls_free(list);
        return 0;
}

/* ---- controller binding ---- */

#define BINDING_LABEL "eve-trust controller binding v1"
#define BINDING_PROBE_LABEL "eve-trust controller binding probe v1"
#define SERVER_FILE "server"

static void sha256_update_sized(struct sha256_ctx *h, const void *p, size_t n) {
        uint8_t be[4] = { (uint8_t) (n >> 24), (uint8_t) (n >> 16), (uint8_t) (n >> 8), (uint8_t) n };

        sha256_update(h, sizeof be, be);
        sha256_update(h, n, p);
}

int controller_binding_compute(uint8_t ret[static CONTROLLER_BINDING_SIZE], const char **ret_reason) {
        _cleanup_free_ char *root_path = NULL, *server_path = NULL, *root = NULL, *server = NULL;
        size_t root_size, server_size;
        const char *s;
        struct sha256_ctx h;
        int r;

        root_path = eve_path_join(EVE_PATH_CONFIG, ROOT_CA_FILE);
        server_path = eve_path_join(EVE_PATH_CONFIG, SERVER_FILE);
        if (!root_path || !server_path)
                return -ENOMEM;
        r = crypto_read_file(root_path, /* secure= */ false, &root, &root_size);
        if (r < 0)
                return REFUSE(-r, "cannot read the controller root CA (" ROOT_CA_FILE ")");
        r = crypto_read_file(server_path, /* secure= */ false, &server, &server_size);
        if (r < 0)
                return REFUSE(-r, "cannot read the controller address (" SERVER_FILE ")");
        s = server;
        while (server_size > 0 && strchr(" \t\r\n", s[0])) {
                s++;
                server_size--;
        }
        while (server_size > 0 && strchr(" \t\r\n", s[server_size - 1]))
                server_size--;

        sha256_init(&h);
        sha256_update(&h, sizeof BINDING_LABEL, (const uint8_t *) BINDING_LABEL); /* with its NUL */
        sha256_update_sized(&h, root, root_size);
        sha256_update_sized(&h, s, server_size);
        sha256_digest(&h, CONTROLLER_BINDING_SIZE, ret);
        erase(&h, sizeof h);
        return 0;
}

/* One signature with the context's current authValue: 0 accepted, -EACCES refused. */
static int binding_probe(Tpm2Context *c) {
        uint8_t digest[SHA256_DIGEST_SIZE], rs[2 * TPM2_ECC_P256_SIZE];
        struct sha256_ctx h;

        sha256_init(&h);
        sha256_update(&h, sizeof BINDING_PROBE_LABEL, (const uint8_t *) BINDING_PROBE_LABEL);
        sha256_digest(&h, sizeof digest, digest);
        return tpm2_sign_digest(c, TPM2_KEY_DEVICE, digest, rs);
}

int controller_binding_check(Tpm2Context *c, bool bind, const char **ret_reason) {
        uint8_t auth[CONTROLLER_BINDING_SIZE];
        Tpm2EccPoint before, after;
        int r;

        if (!c)
                return REFUSE(EINVAL, "bad arguments");
        r = controller_binding_compute(auth, ret_reason);
        if (r < 0)
                return r;
        r = tpm2_key_ensure(c, TPM2_KEY_DEVICE, /* create= */ false, &before);
        if (r < 0) {
                erase(auth, sizeof auth);
                return REFUSE(-r, "no device key in the TPM");
        }
        r = tpm2_context_set_device_auth(c, auth, sizeof auth);
        if (r >= 0)
                r = binding_probe(c);
        if (r >= 0) {
                erase(auth, sizeof auth);
                return CONTROLLER_BINDING_BOUND;
        }
        if (r != -EACCES)
                goto fail;

        /* Refused: an unbound key (empty authValue), or one bound to other files. */
        (void) tpm2_context_set_device_auth(c, NULL, 0);
        r = binding_probe(c);
        if (r == -EACCES) {
                erase(auth, sizeof auth);
                return REFUSE(EKEYREVOKED,
                              "the device key is bound to another controller root CA or address: restore "
                              "root-certificate.pem and server, or re-onboard the node");
        }
        if (r < 0)
                goto fail;
        if (!bind) {
                erase(auth, sizeof auth);
                return CONTROLLER_BINDING_UNBOUND;
        }

        /* Bind: evict, re-create from the same template with the authValue, check it is the same key. */
        r = tpm2_key_evict(c, TPM2_KEY_DEVICE);
        if (r < 0)
                goto fail;
        r = tpm2_context_set_device_auth(c, auth, sizeof auth);
        if (r >= 0)
                r = tpm2_key_ensure(c, TPM2_KEY_DEVICE, /* create= */ true, &after);
        if (r >= 0 && memcmp(&before, &after, sizeof before) != 0)
                r = -EBADMSG;
        if (r >= 0)
                r = binding_probe(c);
        if (r < 0)
                goto fail;
        erase(auth, sizeof auth);
        return CONTROLLER_BINDING_NEWLY_BOUND;
fail:
        erase(auth, sizeof auth);
        (void) tpm2_context_set_device_auth(c, NULL, 0);
        return REFUSE(-r, "the TPM failed while checking the device key's binding");
}

int controller_certs_prune(
                ControllerCertKind kind, const uint8_t (*keep)[CONTROLLER_CERT_HASH_SIZE], size_t n_keep) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        const char *prefix = controller_cert_kind_to_string(kind);
        struct dirent *de;
        int n = 0;

        if (!prefix || (n_keep > 0 && !keep))
                return -EINVAL;
        if (asprintf(&dir, "%s/controller", eve_path(EVE_PATH_CERTS)) < 0)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                size_t pl = strlen(prefix);
                _cleanup_free_ uint8_t *hash = NULL;
                size_t hash_size = 0;
                bool kept = false;

                /* <prefix>-<32 hex>.pem, nothing else */
                if (strncmp(de->d_name, prefix, pl) != 0 || de->d_name[pl] != '-' ||
                    strlen(de->d_name) != pl + 1 + 2 * CONTROLLER_CERT_HASH_SIZE + 4 ||
                    !streq(de->d_name + pl + 1 + 2 * CONTROLLER_CERT_HASH_SIZE, ".pem"))
                        continue;
                if (hex_decode(de->d_name + pl + 1,
                               2 * CONTROLLER_CERT_HASH_SIZE,
                               false,
                               &hash,
                               &hash_size) < 0 ||
                    hash_size != CONTROLLER_CERT_HASH_SIZE)
                        continue;
                for (size_t i = 0; i < n_keep && !kept; i++)
                        kept = memcmp(keep[i], hash, CONTROLLER_CERT_HASH_SIZE) == 0;
                if (kept)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        log_warning_errno(errno, "Cannot remove %s/%s: %m", dir, de->d_name);
                        continue;
                }
                log_info("Removed the controller certificate %s: neither /certs nor the config names it.",
                         de->d_name);
                n++;
        }
        return n;
}
