/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the bodies evc's HTTP endpoints accept (evc-server.c evc_route and the handlers behind it:
 * /register, /uuid, /id/<uuid>/attest, /id/<uuid>/config, /id/<uuid>/info, GET /certs), on a real controller
 * directory (keys, certificates, SQLite store; fuzz-evc-dir.c) with one registered device. The first byte
 * picks the endpoint; the second's low bit whether the rest is sent as is (an attacker without the device
 * key) or as a payload sealed in an AuthContainer by the registered device's key (so the fuzzer reaches each
 * handler's protobuf and state logic). Every answer must be a status a node can act on: no crash, never a
 * 5xx for bad input. */
#include <gnutls/abstract.h>
#include <stdlib.h>

#include "controller-client.h"
#include "crypto-util.h"
#include "evc-server.h"
#include "fuzz-evc-dir.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Evc *evc;
static char *device_uuid;
static gnutls_privkey_t device_key;
static uint8_t device_hash[32];

static void setup(void) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;
        _cleanup_free_ char *pem = NULL;
        size_t n;

        if (evc)
                return;
        evc = fuzz_evc_get();
        if (crypto_soft_key_generate(&device_key) < 0 || gnutls_pubkey_init(&pub) < 0 ||
            gnutls_pubkey_import_privkey(pub, device_key, 0, 0) < 0 ||
            crypto_cert_make(CRYPTO_CERT_DEVICE, pub, NULL, device_key, &crt) < 0 ||
            crypto_cert_to_pem(crt, &pem, &n) < 0 || crypto_cert_hash_der(crt, device_hash) < 0 ||
            evc_device_add(evc, pem, n, "fuzz-serial", &device_uuid) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const actions[] = { "register", "uuid", "attest", "config", "info", "certs" };
        _cleanup_free_ uint8_t *sealed = NULL;
        _cleanup_free_ char *url = NULL;
        const char *action, *method = "POST";
        const uint8_t *body;
        EvcReply reply = {};
        size_t n;

        if (size < 2 || size > EVC_BODY_MAX_DEFAULT)
                return 0;
        setup();
        action = actions[data[0] % ELEMENTSOF(actions)];
        body = data + 2;
        n = size - 2;
        if (data[1] & 1) {
                if (controller_envelope_seal(device_key, device_hash, NULL, body, n, &sealed, &n) < 0)
                        abort();
                body = sealed;
        }
        if (streq(action, "certs"))
                method = "GET";
        if (streq(action, "register") || streq(action, "uuid") || streq(action, "certs")) {
                if (asprintf(&url, "/api/v2/edgedevice/%s", action) < 0)
                        abort();
        } else if (asprintf(&url, "/api/v2/edgedevice/id/%s/%s", device_uuid, action) < 0)
                abort();

        evc_route(evc, url, method, body, n, &reply);
        if (reply.status < 200 || reply.status >= 500) {
                fprintf(stderr, "evc answered %u to %s %s\n", reply.status, method, url);
                abort();
        }
        evc_reply_done(&reply);
        return 0;
}
