/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The controller client's AuthContainer envelopes, checked against evc's independent implementation: what
 * the node seals, evc verifies (raw r‖s, every r and s padded to 32 bytes, senderCertHash = SHA-256 of the
 * DER, senderCert = base64(PEM) for onboarding); what evc signs, the node verifies; tampering, wrong
 * signers, hashes of the wrong length or algo and encrypted envelopes are refused. Plus the HTTP status
 * table. */
#include <gnutls/abstract.h>

#include "controller-client.h"
#include "crypto-util.h"
#include "encoding.h"
#include "evc-crypto.h"
#include "proto-util.h"
#include "tests.h"

typedef struct Key {
        gnutls_x509_crt_t crt;
        gnutls_x509_privkey_t xkey;
        gnutls_privkey_t key;
        gnutls_pubkey_t pub;
        char *pem;
        size_t pem_size;
        uint8_t der_hash[32];
} Key;

static int key_done(void *p) {
        Key *k = p;
        gnutls_x509_crt_deinit(k->crt);
        gnutls_x509_privkey_deinit(k->xkey);
        gnutls_privkey_deinit(k->key);
        gnutls_pubkey_deinit(k->pub);
        free(k->pem);
        free(k);
        return 0;
}

static Key *key_new(const char *name) {
        _cleanup_free_ char *c = NULL, *k = NULL;
        uint8_t *pem = NULL;
        Key *key = calloc(1, sizeof *key);

        ASSERT_NOT_NULL(key);
        ASSERT_OK(asprintf(&c, "%s/%s.pem", test_tmpdir(), name));
        ASSERT_OK(asprintf(&k, "%s/%s-key.pem", test_tmpdir(), name));
        ASSERT_OK(evc_generate_cert(EVC_CERT_SIGNING, name, NULL, NULL, c, k, &key->crt, &key->xkey));
        ASSERT_OK(evc_read_file(c, &pem, &key->pem_size));
        key->pem = (char *) pem;
        ASSERT_OK(gnutls_privkey_init(&key->key));
        ASSERT_OK(gnutls_privkey_import_x509(key->key, key->xkey, 0));
        ASSERT_OK(gnutls_pubkey_init(&key->pub));
        ASSERT_OK(gnutls_pubkey_import_x509(key->pub, key->crt, 0));
        ASSERT_OK(evc_crt_der_sha256(key->crt, key->der_hash));
        test_defer(key_done, key);
        return key;
}

static Org__Lfedge__Eve__Auth__AuthContainer *parse(const uint8_t *b, size_t n) {
        Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        ASSERT_OK(controller_envelope_parse(b, n, 1 << 20, &ac));
        return ac;
}

TEST(sealed_envelope_verifies_with_evc) {
        Key *dev = key_new("device");
        const char payload[] = "\x08\x02"; /* ZAttestReq{reqType=NONCE} */
        _cleanup_free_ uint8_t *b = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        uint8_t digest[32];
        size_t n;

        ASSERT_OK(controller_envelope_seal(dev->key, dev->der_hash, NULL, payload, 2, &b, &n));
        ac = parse(b, n);
        ASSERT_EQ(ac->algo, ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES);
        ASSERT_MEMEQ(ac->sendercerthash.data, ac->sendercerthash.len, dev->der_hash, 32);
        ASSERT_MEMEQ(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, payload, 2);
        ASSERT_EQ(ac->signaturehash.len, 64);
        ASSERT_EQ(ac->sendercert.len, 0);
        evc_sha256(payload, 2, digest);
        ASSERT_OK(evc_verify_digest(dev->crt, digest, ac->signaturehash.data, ac->signaturehash.len));
        ASSERT_OK(controller_envelope_verify(ac, dev->pub));
}

/* r and s are each left-padded to 32 bytes (EVE PR #2458): across many signatures some have a leading zero.
 */
TEST(signature_is_padded_raw_rs) {
        Key *dev = key_new("device");
        unsigned zeros = 0;

        for (unsigned i = 0; i < 1200; i++) {
                _cleanup_free_ uint8_t *b = NULL;
                _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
                uint8_t digest[32];
                size_t n;

                ASSERT_OK(controller_envelope_seal(dev->key, dev->der_hash, NULL, &i, sizeof i, &b, &n));
                ac = parse(b, n);
                ASSERT_EQ(ac->signaturehash.len, 64);
                if (ac->signaturehash.data[0] == 0 || ac->signaturehash.data[32] == 0) {
                        zeros++;
                        evc_sha256(&i, sizeof i, digest);
                        ASSERT_OK(evc_verify_digest(dev->crt, digest, ac->signaturehash.data, 64));
                        ASSERT_OK(controller_envelope_verify(ac, dev->pub));
                }
        }
        /* P(no leading zero in 2400 values) = (255/256)^2400 ≈ 1e-4 */
        ASSERT_GE(zeros, 1);
}

TEST(onboarding_envelope_carries_base64_pem) {
        Key *onb = key_new("onboard");
        _cleanup_free_ uint8_t *b = NULL, *pem = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        size_t n, pem_n;

        ASSERT_OK(controller_envelope_seal(onb->key, onb->der_hash, onb->pem, "x", 1, &b, &n));
        ac = parse(b, n);
        ASSERT_OK(base64_decode(
                        (const char *) ac->sendercert.data, ac->sendercert.len, false, &pem, &pem_n));
        ASSERT_MEMEQ(pem, pem_n, onb->pem, onb->pem_size);
        ASSERT_MEMEQ(ac->sendercerthash.data, ac->sendercerthash.len, onb->der_hash, 32);
}

/* A controller answer as evc signs it: senderCertHash = SHA-256 of the signing certificate's PEM. */
static void
                controller_seal(Key *k,
                                int algo,
                                size_t hash_len,
                                const void *payload,
                                size_t n,
                                uint8_t **ret,
                                size_t *ret_size) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        uint8_t sig[64], h[32];

        ASSERT_OK(evc_sign_raw(k->xkey, payload, n, sig));
        evc_sha256(k->pem, k->pem_size, h);
        body.payload = (ProtobufCBinaryData){ .len = n, .data = (uint8_t *) payload };
        ac.protectedpayload = &body;
        ac.algo = algo;
        ac.sendercerthash = (ProtobufCBinaryData){ .len = hash_len, .data = h };
        ac.signaturehash = (ProtobufCBinaryData){ .len = 64, .data = sig };
        ASSERT_OK(PROTO_PACK(&ac, ret, ret_size));
}

TEST(controller_answer_verifies) {
        Key *ctl = key_new("signing"), *other = key_new("other");
        _cleanup_free_ uint8_t *b = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        size_t n;

        controller_seal(ctl,
                        ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES,
                        32,
                        "answer",
                        6,
                        &b,
                        &n);
        ac = parse(b, n);
        ASSERT_EQ(controller_envelope_names(ac, ctl->pem, ctl->pem_size), 1);
        ASSERT_EQ(controller_envelope_names(ac, other->pem, other->pem_size), 0);
        ASSERT_OK(controller_envelope_verify(ac, ctl->pub));
        ASSERT_ERROR(controller_envelope_verify(ac, other->pub), EBADMSG);

        /* Tampered payload, tampered signature. */
        ac->protectedpayload->payload.data[0] ^= 1;
        ASSERT_ERROR(controller_envelope_verify(ac, ctl->pub), EBADMSG);
        ac->protectedpayload->payload.data[0] ^= 1;
        ac->signaturehash.data[40] ^= 0x80;
        ASSERT_ERROR(controller_envelope_verify(ac, ctl->pub), EBADMSG);
        ac->signaturehash.data[40] ^= 0x80;
        ASSERT_OK(controller_envelope_verify(ac, ctl->pub));
        /* A truncated signature is not a signature. */
        ac->signaturehash.len = 63;
        ASSERT_ERROR(controller_envelope_verify(ac, ctl->pub), EBADMSG);
        ac->signaturehash.len = 0;
        ASSERT_ERROR(controller_envelope_verify(ac, ctl->pub), EBADMSG);
}

TEST(controller_answer_der_signature_verifies) {
        Key *ctl = key_new("signing");
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(gnutls_datum_freep) gnutls_datum_t der = {};
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;

        controller_seal(ctl,
                        ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES,
                        32,
                        "a",
                        1,
                        &b,
                        &n);
        ac = parse(b, n);
        ASSERT_OK(crypto_ecdsa_rs_to_der(ac->signaturehash.data, &der));
        ProtobufCBinaryData raw = ac->signaturehash;
        ac->signaturehash = (ProtobufCBinaryData){ .len = der.size, .data = der.data };
        ASSERT_OK(controller_envelope_verify(ac, ctl->pub));
        ac->signaturehash = raw; /* der's bytes belong to der */
}

TEST(sender_hash_algo_and_length) {
        Key *ctl = key_new("signing");

        /* algo 1: the first 16 bytes of SHA-256(PEM). */
        {
                _cleanup_free_ uint8_t *b = NULL;
                _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
                size_t n;
                controller_seal(ctl,
                                ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES,
                                16,
                                "a",
                                1,
                                &b,
                                &n);
                ac = parse(b, n);
                ASSERT_EQ(controller_envelope_names(ac, ctl->pem, ctl->pem_size), 1);
        }
        /* A length that does not fit the algo, or an unknown algo: an error, not "another signer". */
        {
                _cleanup_free_ uint8_t *b = NULL;
                _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
                size_t n;
                controller_seal(ctl,
                                ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES,
                                16,
                                "a",
                                1,
                                &b,
                                &n);
                ac = parse(b, n);
                ASSERT_ERROR(controller_envelope_names(ac, ctl->pem, ctl->pem_size), EBADMSG);
                ac->algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_INVALID;
                ASSERT_ERROR(controller_envelope_names(ac, ctl->pem, ctl->pem_size), EBADMSG);
        }
}

TEST(parse_refuses_what_is_not_a_plain_envelope) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        Org__Lfedge__Eve__Common__CipherBlock cb = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        Org__Lfedge__Eve__Auth__AuthContainer *out = NULL;
        _cleanup_free_ uint8_t *b = NULL;
        const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x0f, 0x01 };
        size_t n;

        ASSERT_ERROR(controller_envelope_parse(junk, sizeof junk, 1024, &out), EBADMSG);
        /* No payload at all. */
        ASSERT_OK(PROTO_PACK(&ac, &b, &n));
        ASSERT_ERROR(controller_envelope_parse(b, n, 1024, &out), EBADMSG);
        b = mfree(b);
        /* Encrypted (LOC) envelopes are not spoken. */
        ac.protectedpayload = &body;
        ac.cipherdata = &cb;
        ASSERT_OK(PROTO_PACK(&ac, &b, &n));
        ASSERT_ERROR(controller_envelope_parse(b, n, 1024, &out), EBADMSG);
        b = mfree(b);
        /* Over the cap. */
        ac.cipherdata = NULL;
        body.payload = (ProtobufCBinaryData){ .len = 2000, .data = calloc(1, 2000) };
        ASSERT_NOT_NULL(body.payload.data);
        ASSERT_OK(PROTO_PACK(&ac, &b, &n));
        free(body.payload.data);
        ASSERT_TRUE(controller_envelope_parse(b, n, 1024, &out) < 0);
        ASSERT_OK(controller_envelope_parse(b, n, 4096, &out));
        proto_free(out);
}

TEST(rsa_signer) {
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_free_ uint8_t *b = NULL;
        uint8_t h[32] = {};
        size_t n;

        ASSERT_OK(gnutls_privkey_init(&key));
        ASSERT_OK(gnutls_privkey_generate(key, GNUTLS_PK_RSA, 2048, 0));
        ASSERT_OK(gnutls_pubkey_init(&pub));
        ASSERT_OK(gnutls_pubkey_import_privkey(pub, key, 0, 0));
        ASSERT_OK(controller_envelope_seal(key, h, NULL, "rsa", 3, &b, &n));
        ac = parse(b, n);
        ASSERT_EQ(ac->signaturehash.len, 256);
        ASSERT_OK(controller_envelope_verify(ac, pub));
        ac->protectedpayload->payload.data[1] ^= 4;
        ASSERT_ERROR(controller_envelope_verify(ac, pub), EBADMSG);
}

TEST(http_status_table) {
        ASSERT_EQ(controller_http_status_to_errno(200), 0);
        ASSERT_EQ(controller_http_status_to_errno(201), 0);
        ASSERT_EQ(controller_http_status_to_errno(204), 0);
        ASSERT_EQ(controller_http_status_to_errno(304), 0);
        ASSERT_EQ(controller_http_status_to_errno(400), -ENOENT);
        ASSERT_EQ(controller_http_status_to_errno(404), -ENOENT);
        ASSERT_EQ(controller_http_status_to_errno(401), -EPERM);
        ASSERT_EQ(controller_http_status_to_errno(403), -EACCES);
        ASSERT_EQ(controller_http_status_to_errno(409), -EEXIST);
        ASSERT_EQ(controller_http_status_to_errno(413), -EMSGSIZE);
        ASSERT_EQ(controller_http_status_to_errno(415), -EPROTO);
        ASSERT_EQ(controller_http_status_to_errno(422), -EPROTO);
        ASSERT_EQ(controller_http_status_to_errno(302), -EPROTO);
        ASSERT_EQ(controller_http_status_to_errno(503), -EAGAIN);
        ASSERT_EQ(controller_http_status_to_errno(500), -EAGAIN);
}

DEFINE_TEST_MAIN
