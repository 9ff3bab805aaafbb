/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Protocol abuse cases of issue 11 that the evc and node tests did not have yet (docs/SECURITY.md has the
 * whole catalogue, with the tests that cover the others): the real evc over TLS on 127.0.0.1 and devices
 * speaking the wire protocol (test-evc-client.c).
 *   - a nonce issued to one device used in another device's quote;
 *   - every truncation of signed requests (quote, STORE_KEYS, config): refused with a 4xx, no token, no key,
 *     no escrow change, and the untruncated request still works;
 *   - an envelope whose sender hash names a registered device but whose signature is another device's, on
 *     each endpoint. */
#include "proto-util.h"
#include "test-evc-client.h"

#define CT "application/x-proto-binary"

/* evc started, its /certs fetched (every answer is checked against its signing certificate). */
static Srv *srv_ready(void) {
        Srv *s = srv_start(NULL);
        fetch_certs(s);
        return s;
}

static long escrowed(Srv *s, Dev *d) {
        _cleanup_free_ char *out = NULL;
        const char *p;

        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid), 0);
        p = strstr(out, "escrowed keys: ");
        ASSERT_NOT_NULL(p);
        return strtol(p + strlen("escrowed keys: "), NULL, 10);
}

static size_t quote_keys(const Org__Lfedge__Eve__Attest__ZAttestResponse *r) {
        return r && r->quoteresp ? r->quoteresp->n_keys : 0;
}

TEST(nonce_from_another_device_is_refused) {
        Srv *s = srv_ready();
        Dev *a = dev_ready(s, "SN-ABUSE-A"), *b = dev_ready(s, "SN-ABUSE-B");
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *rb = NULL, *ra = NULL;
        uint8_t nonce[32], token_before[32];

        ASSERT_EQ(store_keys(s, b, b->token, b->token_size, "b-escrow"), SK_SUCCESS);
        memcpy(token_before, b->token, sizeof token_before);
        get_nonce(s, a, nonce);
        /* b quotes correctly, but over a's nonce: refused, no key, b's token unchanged. */
        ASSERT_EQ(send_quote(s, b, nonce, sizeof nonce, FLAW_NONE, &rb), Q_NONCE);
        ASSERT_EQ(quote_keys(rb), 0u);
        ASSERT_MEMEQ(b->token, sizeof token_before, token_before, sizeof token_before);
        /* a's nonce was not spent by b's attempt. */
        ASSERT_EQ(send_quote(s, a, nonce, sizeof nonce, FLAW_NONE, &ra), Q_SUCCESS);
}

/* A signed request body of d's, truncated to every length below its own: never accepted. */
static unsigned post_truncations(Srv *s, Dev *d, const char *action, const ProtobufCMessage *msg) {
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_free_ char *path = NULL;
        size_t n;
        unsigned refused = 0;

        seal_container(d->crt, d->key, NULL, msg, &body, &n);
        ASSERT_OK(asprintf(&path, "id/%s/%s", d->uuid, action));
        for (size_t len = 0; len < n; len++) {
                Resp r = http(s, path, body, len, CT);
                if (r.status < 400 || r.status >= 500)
                        test_fail(__FILE__,
                                  __LINE__,
                                  "%s truncated to %zu of %zu bytes: HTTP %ld",
                                  action,
                                  len,
                                  n,
                                  r.status);
                refused++;
                resp_done(&r);
        }
        return refused;
}

TEST(truncated_bodies_are_refused_and_change_nothing) {
        Srv *s = srv_ready();
        Dev *d = dev_ready(s, "SN-ABUSE-T");
        Org__Lfedge__Eve__Attest__ZAttestReq sk_req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey k = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT,
                                                  *kp = &k;
        Org__Lfedge__Eve__Config__ConfigRequest cr = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;
        Org__Lfedge__Eve__Attest__ZAttestReq nonce_req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        static const char key[] = "a-new-escrow-blob-that-must-not-land";
        uint8_t token[32];
        unsigned refused = 0;
        long before;
        int code = -1;

        ASSERT_EQ(store_keys(s, d, d->token, d->token_size, "first-escrow"), SK_SUCCESS);
        before = escrowed(s, d);
        memcpy(token, d->token, sizeof token);

        k.key_type = KT_VSK;
        k.key = (ProtobufCBinaryData){ sizeof key - 1, (uint8_t *) key };
        sk.integrity_token = (ProtobufCBinaryData){ d->token_size, d->token };
        sk.n_keys = 1;
        sk.keys = &kp;
        sk_req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        sk_req.storage_keys = &sk;
        refused += post_truncations(s, d, "attest", &sk_req.base);

        cr.integrity_token = (ProtobufCBinaryData){ d->token_size, d->token };
        refused += post_truncations(s, d, "config", &cr.base);

        nonce_req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
        refused += post_truncations(s, d, "attest", &nonce_req.base);

        /* Nothing changed: the escrow, the token (config still served with it), and the whole request
         * still works. */
        ASSERT_EQ(escrowed(s, d), before);
        {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;
                ASSERT_EQ(get_config(s, d, NULL, token, sizeof token, &c), 200);
        }
        {
                const KeyEntry e = { KT_VSK, key, sizeof key - 1 };
                ASSERT_EQ(store_entries(s, d, &e, 1, &code), 201);
                ASSERT_EQ(code, SK_SUCCESS);
        }
        printf("abuse: %u truncated signed bodies refused with 4xx, escrow and token unchanged\n", refused);
        ASSERT_GE(refused, 60u);
}

TEST(envelope_signed_by_another_device_is_refused_everywhere) {
        static const char *const actions[] = { "attest", "config", "info" };
        Srv *s = srv_ready();
        Dev *d = dev_ready(s, "SN-ABUSE-S"), *mallory = dev_ready(s, "SN-ABUSE-M");
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        _cleanup_free_ uint8_t *body = NULL, *signed_by_m = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        size_t n, nm;

        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
        /* Mallory's signature, d's sender hash. */
        seal_container(mallory->crt, mallory->key, NULL, &req.base, &signed_by_m, &nm);
        ASSERT_OK(PROTO_UNPACK(
                        &org__lfedge__eve__auth__auth_container__descriptor, signed_by_m, nm, nm, &ac));
        ASSERT_EQ(ac->sendercerthash.len, sizeof d->hash);
        memcpy(ac->sendercerthash.data, d->hash, sizeof d->hash);
        ASSERT_OK(PROTO_PACK(ac, &body, &n));
        for (size_t i = 0; i < ELEMENTSOF(actions); i++) {
                _cleanup_free_ char *path = NULL;
                Resp r;

                ASSERT_OK(asprintf(&path, "id/%s/%s", d->uuid, actions[i]));
                r = http(s, path, body, n, CT);
                ASSERT_EQ(r.status, 401);
                resp_done(&r);
                /* And with mallory's own hash but d's URL: the sender is not the device of the URL. */
                free(path);
                ASSERT_OK(asprintf(&path, "id/%s/%s", d->uuid, actions[i]));
                r = http(s, path, signed_by_m, nm, CT);
                ASSERT_EQ(r.status, 401);
                resp_done(&r);
        }
}

DEFINE_TEST_MAIN
