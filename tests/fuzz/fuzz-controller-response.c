/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: what the node unpacks from the controller's answers (controller-client.c, attest-msg.c,
 * configd-config.c, vault-share.c, vault-escrow.c). The first byte picks the path:
 *   0  the bytes as an answer body: controller_envelope_parse, the sender-hash check against a fixed signing
 *      certificate and the signature check with its key; a forged envelope must never verify.
 *   1  the bytes as the payload of a verified envelope, handed to every consumer a node has for one:
 *      attestd's ZAttestResponse checks for each exchange (nonce, quote keys, store keys), eve-register's
 *      ZControllerCert and UuidResponse, configd's ConfigResponse, vaultd's controller share and escrow
 * blob. (Signing each input would cost a signature per execution; setup() checks once that an envelope
 *      sealed with the controller's key parses, names its certificate and verifies, and that a changed
 *      payload does not.) */
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <stdlib.h>

#include "attest-msg.h"
#include "certs.pb-c.h"
#include "configd-config.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "eveuuid.pb-c.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"
#include "vault-escrow.h"
#include "vault-share.h"

#define FUZZ_RESPONSE_MAX (1024U * 1024U)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gnutls_privkey_t key;
static gnutls_pubkey_t pub;
static const char pem[] = "-----BEGIN CERTIFICATE-----\nfuzz\n-----END CERTIFICATE-----\n";
static uint8_t pem_hash[32];

static void setup(void) {
        static bool done = false;
        gnutls_datum_t d = { (unsigned char *) pem, sizeof pem - 1 };

        if (done)
                return;
        log_set_max_level(LOG_CRIT);
        if (crypto_soft_key_generate(&key) < 0 || gnutls_pubkey_init(&pub) < 0 ||
            gnutls_pubkey_import_privkey(pub, key, 0, 0) < 0 ||
            gnutls_hash_fast(GNUTLS_DIG_SHA256, d.data, d.size, pem_hash) < 0)
                abort();
        for (unsigned tamper = 0; tamper < 2; tamper++) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
                _cleanup_free_ uint8_t *sealed = NULL;
                size_t n;

                if (controller_envelope_seal(key, pem_hash, NULL, "payload", 7, &sealed, &n) < 0 ||
                    controller_envelope_parse(sealed, n, FUZZ_RESPONSE_MAX, &ac) < 0 ||
                    controller_envelope_names(ac, pem, sizeof pem - 1) != 1)
                        abort();
                ac->protectedpayload->payload.data[0] ^= tamper;
                if ((controller_envelope_verify(ac, pub) >= 0) != (tamper == 0))
                        abort();
        }
        done = true;
}

static void consume_attest(const uint8_t *p, size_t n) {
        static const int types[] = {
                ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT,
                ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE,
                ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP,
                ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS,
        };

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r = NULL;
                uint8_t nonce[TPM2_NONCE_MAX];
                AttestKeyEntry *e = NULL;
                size_t nn, ne = 0;

                if (attest_response_parse(p, n, types[i], &r) < 0)
                        continue;
                if (!r)
                        abort();
                if (r->nonce && attest_response_nonce(r, nonce, &nn) >= 0 &&
                    (nn < 12 || nn > TPM2_NONCE_MAX))
                        abort();
                if (r->quoteresp && attest_response_keys(r->quoteresp, &e, &ne) >= 0) {
                        if (ne > ATTEST_KEYS_MAX)
                                abort();
                        for (size_t k = 0; k < ne; k++) {
                                EscrowData d;
                                const char *why;
                                if (e[k].size == 0 || e[k].size > ATTEST_KEY_SIZE_MAX)
                                        abort();
                                /* What vaultd does with a released key (17750 escrow or a 17752 share). */
                                (void) escrow_data_unpack(e[k].data, e[k].size, &d, &why);
                        }
                        attest_key_entries_free(e, ne);
                }
        }
}

static void consume(const uint8_t *p, size_t n) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *certs = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidResponse *uuid = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        VaultShare share;
        const char *why = NULL;

        consume_attest(p, n);
        (void) PROTO_UNPACK(
                        &org__lfedge__eve__certs__zcontroller_cert__descriptor,
                        p,
                        n,
                        FUZZ_RESPONSE_MAX,
                        &certs);
        (void) PROTO_UNPACK(
                        &org__lfedge__eve__uuid__uuid_response__descriptor, p, n, FUZZ_RESPONSE_MAX, &uuid);
        (void) config_parse(p, n, &c);
        if (vault_share_parse(p, n, &share, &why) < 0 && !why)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        int r;

        if (size < 1 || size > FUZZ_RESPONSE_MAX)
                return 0;
        setup();
        if (data[0] % 2 == 1) {
                consume(data + 1, size - 1);
                return 0;
        }
        r = controller_envelope_parse(data + 1, size - 1, FUZZ_RESPONSE_MAX, &ac);
        if (r < 0) {
                if (r != -EBADMSG)
                        abort();
                return 0;
        }
        if (controller_envelope_names(ac, pem, sizeof pem - 1) != 1)
                return 0;
        if (controller_envelope_verify(ac, pub) >= 0)
                abort(); /* a signature the fuzzer made without the key */
        return 0;
}
