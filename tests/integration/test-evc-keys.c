/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc key rotation (issue 13, controller side), against the real "evc serve" over TLS with the software
 * device of test-evc-client.c: the ECDH pair (shared, per device, scope switches), the signing pair, /certs
 * keeping an old ECDH certificate exactly while a device's delivered config names it,
 * controllercert_confighash changing, and the per-device cleartext fallback. The server keeps running
 * through every admin command. */
#include <json-c/json.h>
#include <sqlite3.h>

#include "config.pb-c.h"
#include "encoding.h"
#include "evetrust.pb-c.h"
#include "memory-util.h"
#include "proto-util.h"
#include "test-evc-client.h"

static Org__Lfedge__Eve__Config__ConfigResponse *config_ok(Srv *s, Dev *d, const char *have_hash) {
        Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;

        ASSERT_EQ(get_config(s, d, have_hash, d->token, 32, &c), 200);
        ASSERT_EQ(c->config->n_ciphercontexts, 1);
        return c;
}

static const uint8_t *ctx_hash(const Org__Lfedge__Eve__Config__ConfigResponse *c) {
        ASSERT_EQ(c->config->ciphercontexts[0]->controllercerthash.len, 16);
        return c->config->ciphercontexts[0]->controllercerthash.data;
}

static bool served(Srv *s, const uint8_t hash[16]) {
        return srv_ecdh_cert(s, hash) != NULL;
}

static char *wifi_of(Srv *s, Dev *d, const Org__Lfedge__Eve__Config__ConfigResponse *c) {
        ASSERT_EQ(c->config->n_networks, 1);
        return decrypt_block(s, d, c->config, c->config->networks[0]->wireless->wificfg[0]->cipherdata, 0);
}

TEST(evc_rotate_shared_ecdh) {
        Srv *s = srv_start(NULL);
        Dev *d = NULL, *d2 = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c1 = NULL, *c2 = NULL, *c3 = NULL,
                                                                        *o1 = NULL, *o2 = NULL;
        _cleanup_free_ char *w1 = NULL, *w1again = NULL, *w2 = NULL, *out = NULL;
        uint8_t h1[16], h2[16];

        fetch_certs(s);
        d = dev_ready(s, "SN-K1");
        d2 = dev_ready(s, "SN-K2");
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "HomeNet", "--kind", "wifi", "--value", "before"),
                  0);
        c1 = config_ok(s, d, NULL);
        o1 = config_ok(s, d2, NULL);
        memcpy(h1, ctx_hash(c1), 16);
        ASSERT_MEMEQ(ctx_hash(o1), 16, h1, 16); /* one shared pair */
        w1 = wifi_of(s, d, c1);
        ASSERT_STREQ(w1, "before");

        ASSERT_EQ(EVC(s, NULL, "keys", "rotate", "ecdh"), 0);
        /* /certs: the new pair, and the old one while the devices' configs name it. */
        fetch_certs(s);
        ASSERT_EQ(s->n_ecdh, 2);
        ASSERT_TRUE(served(s, h1));
        /* The node still decrypts what it holds with the old certificate. */
        w1again = wifi_of(s, d, c1);
        ASSERT_STREQ(w1again, "before");

        /* One config round: a new hash, a new certificate-set hash, blocks encrypted with the new pair. */
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "HomeNet", "--kind", "wifi", "--value", "after"),
                  0);
        c2 = config_ok(s, d, c1->confighash);
        ASSERT_TRUE(!streq(c2->confighash, c1->confighash));
        ASSERT_TRUE(!streq(c2->config->controllercert_confighash, c1->config->controllercert_confighash));
        memcpy(h2, ctx_hash(c2), 16);
        ASSERT_TRUE(memcmp(h1, h2, 16) != 0);
        ASSERT_TRUE(served(s, h2));
        w2 = wifi_of(s, d, c2);
        ASSERT_STREQ(w2, "after");
        /* d no longer needs the old certificate, d2 (which has not fetched yet) still does. */
        fetch_certs(s);
        ASSERT_TRUE(served(s, h1));
        ASSERT_EQ(EVC(s, &out, "keys", "list"), 0);
        ASSERT_NOT_NULL(strstr(out, "retired, still served"));
        o2 = config_ok(s, d2, o1->confighash);
        ASSERT_MEMEQ(ctx_hash(o2), 16, h2, 16);
        fetch_certs(s);
        ASSERT_EQ(s->n_ecdh, 1);
        ASSERT_FALSE(served(s, h1));
        /* 304 from now on, and the config does not flap. */
        ASSERT_EQ(get_config(s, d, c2->confighash, d->token, 32, &c3), 304);

        /* The retired pair's private key is gone from the database; its certificate stays as a record. */
        {
                _cleanup_free_ char *db = NULL;
                sqlite3 *h;
                sqlite3_stmt *st;
                ASSERT_OK(asprintf(&db, "%s/evc.db", s->dir));
                ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
                ASSERT_EQ(sqlite3_prepare_v2(
                                          h,
                                          "SELECT count(*), sum(key_sealed IS NULL) FROM ckeys WHERE kind = "
                                          "'ecdh' "
                                          "AND retired IS NOT NULL",
                                          -1,
                                          &st,
                                          NULL),
                          SQLITE_OK);
                ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
                ASSERT_EQ(sqlite3_column_int(st, 0), 1);
                ASSERT_EQ(sqlite3_column_int(st, 1), 1);
                sqlite3_finalize(st);
                sqlite3_close(h);
        }
}

TEST(evc_rotate_signing) {
        Srv *s = srv_start(NULL);
        Dev *d;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c1 = NULL, *c2 = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        uint8_t old_hash[32], digest[32];

        fetch_certs(s);
        d = dev_ready(s, "SN-G1");
        c1 = config_ok(s, d, NULL);
        memcpy(old_hash, s->signing_hash, 32);

        ASSERT_EQ(EVC(s, NULL, "keys", "rotate", "signing"), 0);
        /* The next response is signed with a key the node does not know yet (EVE: CertMiss → GET /certs). */
        {
                Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
                req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
                _cleanup_(resp_done) Resp r = dev_post(s, d, "attest", &req.base);
                ASSERT_EQ(r.status, 201);
                ASSERT_OK(
                                PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor,
                                             r.body,
                                             r.size,
                                             1 << 20,
                                             &ac));
                ASSERT_EQ(ac->sendercerthash.len, 32);
                ASSERT_TRUE(memcmp(ac->sendercerthash.data, old_hash, 32) != 0);
                evc_sha256(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, digest);
                ASSERT_ERROR(evc_verify_digest(
                                             s->signing,
                                             digest,
                                             ac->signaturehash.data,
                                             ac->signaturehash.len),
                             EBADMSG);
        }
        /* One refetch: exactly one signing certificate, chained to the root, the one the responses now name.
         */
        fetch_certs(s);
        ASSERT_EQ(s->n_certs, 2);
        ASSERT_MEMEQ(ac->sendercerthash.data, 32, s->signing_hash, 32);
        ASSERT_OK(evc_verify_digest(s->signing, digest, ac->signaturehash.data, ac->signaturehash.len));
        /* Every device's config carries the new certificate-set hash. */
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
        c2 = config_ok(s, d, c1->confighash);
        ASSERT_TRUE(!streq(c2->config->controllercert_confighash, c1->config->controllercert_confighash));
        /* Refusals. */
        ASSERT_NE(EVC(s, NULL, "keys", "rotate", "signing", "--device", d->uuid), 0);
        ASSERT_NE(EVC(s, NULL, "keys", "rotate", "tls"), 0);
        ASSERT_NE(EVC(s, NULL, "keys", "ecdh-scope", "sometimes"), 0);
        ASSERT_NE(EVC(s, NULL, "keys", "rotate", "ecdh", "--device", "no-such-device"), 0);
}

static void share_of(Srv *s, Dev *d, const char *vault, uint8_t out[32], uint8_t ret_hash[16]) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r = attest_ok(s, d);
        _cleanup_(proto_freep) Org__Eve__Trust__EveControllerShare *m = NULL;
        char v[37];

        ASSERT_EQ(r->quoteresp->n_keys, 1);
        fetch_certs(s); /* the node refetches when controller_cert_hash names a certificate it lacks */
        share_open(s, d, r->quoteresp->keys[0], v, out);
        ASSERT_STREQ(v, vault);
        ASSERT_OK(
                        PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor,
                                     r->quoteresp->keys[0]->key.data,
                                     r->quoteresp->keys[0]->key.len,
                                     4096,
                                     &m));
        memcpy(ret_hash, m->controller_cert_hash.data, 16);
}

TEST(evc_per_device_ecdh) {
        static const char vault[] = "0a0a0a0a-0000-4000-8000-000000000001";
        Srv *s = srv_start(NULL);
        Dev *d1, *d2, *d3;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *a1 = NULL, *b1 = NULL, *a2 = NULL,
                                                                        *b2 = NULL, *b3 = NULL, *c3 = NULL,
                                                                        *a4 = NULL;
        _cleanup_free_ char *x = NULL, *y = NULL, *z = NULL, *req = NULL;
        uint8_t shared[16], own1[16], sh1[32], sh1b[32], hs[16];
        size_t req_n;
        int code;

        fetch_certs(s);
        d1 = dev_ready(s, "SN-P1");
        d2 = dev_ready(s, "SN-P2");
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d1->uuid, "Net1", "--kind", "wifi", "--value", "one"), 0);
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d2->uuid, "Net2", "--kind", "wifi", "--value", "two"), 0);
        a1 = config_ok(s, d1, NULL);
        b1 = config_ok(s, d2, NULL);
        memcpy(shared, ctx_hash(a1), 16);
        share_request(vault, (uint8_t **) &req, &req_n);
        {
                const KeyEntry e[] = { { KT_SHARE_REQUEST, req, req_n } };
                ASSERT_EQ(store_entries(s, d1, e, ELEMENTSOF(e), &code), 201);
                ASSERT_EQ(code, SK_SUCCESS);
        }
        share_of(s, d1, vault, sh1, hs);
        ASSERT_MEMEQ(hs, 16, shared, 16);

        /* d1 gets a pair of its own; d2 stays on the shared one. */
        ASSERT_EQ(EVC(s, NULL, "keys", "rotate", "ecdh", "--device", d1->uuid), 0);
        a2 = config_ok(s, d1, a1->confighash);
        memcpy(own1, ctx_hash(a2), 16);
        ASSERT_TRUE(memcmp(own1, shared, 16) != 0);
        fetch_certs(s);
        x = wifi_of(s, d1, a2);
        ASSERT_STREQ(x, "one");
        ASSERT_EQ(get_config(s, d2, b1->confighash, d2->token, 32, &b2), 304);
        /* The share is the same secret, now sealed to d1's own pair. */
        share_of(s, d1, vault, sh1b, hs);
        ASSERT_MEMEQ(hs, 16, own1, 16);
        ASSERT_MEMEQ(sh1b, 32, sh1, 32);

        /* Per-device scope: d2 gets its own pair too, and so does a device that arrives later. */
        ASSERT_EQ(EVC(s, NULL, "keys", "ecdh-scope", "per-device"), 0);
        b3 = config_ok(s, d2, b1->confighash);
        ASSERT_TRUE(memcmp(ctx_hash(b3), shared, 16) != 0);
        ASSERT_TRUE(memcmp(ctx_hash(b3), own1, 16) != 0);
        fetch_certs(s);
        y = wifi_of(s, d2, b3);
        ASSERT_STREQ(y, "two");
        d3 = dev_ready(s, "SN-P3");
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d3->uuid, "Net3", "--kind", "wifi", "--value", "three"), 0);
        c3 = config_ok(s, d3, NULL);
        ASSERT_TRUE(memcmp(ctx_hash(c3), shared, 16) != 0);
        fetch_certs(s);
        z = wifi_of(s, d3, c3);
        ASSERT_STREQ(z, "three");
        ASSERT_TRUE(s->n_ecdh >= 4); /* shared + three devices' own */

        /* Back to the shared pair: the devices' own pairs are retired, their configs change. */
        ASSERT_EQ(EVC(s, NULL, "keys", "ecdh-scope", "shared"), 0);
        a4 = config_ok(s, d1, a2->confighash);
        ASSERT_MEMEQ(ctx_hash(a4), 16, shared, 16);
}

/* A node given only ciphertext gets every secret; the cleartext fallback adds EVE's legacy cleartext fields
 * for the transition, and evc's database never holds the plaintext either way. */
TEST(evc_cleartext_fallback) {
        Srv *s = srv_start(NULL);
        Dev *d;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c1 = NULL, *c2 = NULL, *c3 = NULL;
        _cleanup_free_ char *w = NULL, *ds = NULL, *ci = NULL, *out = NULL;

        fetch_certs(s);
        d = dev_ready(s, "SN-C1");
        ASSERT_EQ(EVC(s,
                      NULL,
                      "secret",
                      "set",
                      d->uuid,
                      "HomeNet",
                      "--kind",
                      "wifi",
                      "--value",
                      "wifi-pw-9"),
                  0);
        ASSERT_EQ(EVC(s,
                      NULL,
                      "secret",
                      "set",
                      d->uuid,
                      "store",
                      "--kind",
                      "datastore",
                      "--value",
                      "ds-pw-9"),
                  0);
        ASSERT_EQ(EVC(s,
                      NULL,
                      "secret",
                      "set",
                      d->uuid,
                      "app",
                      "--kind",
                      "cloudinit",
                      "--value",
                      "#cloud-9"),
                  0);

        /* Off (the default): ciphertext only, and it carries every secret. */
        c1 = config_ok(s, d, NULL);
        ASSERT_STREQ(c1->config->networks[0]->wireless->wificfg[0]->password, "");
        ASSERT_STREQ(c1->config->datastores[0]->password, "");
        ASSERT_STREQ(c1->config->apps[0]->userdata, "");
        w = wifi_of(s, d, c1);
        ds = decrypt_block(s, d, c1->config, c1->config->datastores[0]->cipherdata, 1);
        ci = decrypt_block(s, d, c1->config, c1->config->apps[0]->cipherdata, 2);
        ASSERT_STREQ(w, "wifi-pw-9");
        ASSERT_STREQ(ds, "ds-pw-9");
        ASSERT_STREQ(ci, "#cloud-9");

        /* On: the same blocks plus cleartext, a new config hash. */
        ASSERT_EQ(EVC(s, NULL, "secret", "cleartext-fallback", "on", d->uuid), 0);
        c2 = config_ok(s, d, c1->confighash);
        ASSERT_TRUE(!streq(c2->confighash, c1->confighash));
        ASSERT_STREQ(c2->config->networks[0]->wireless->wificfg[0]->password, "wifi-pw-9");
        ASSERT_STREQ(c2->config->datastores[0]->password, "ds-pw-9");
        ASSERT_STREQ(c2->config->apps[0]->userdata, "#cloud-9");
        ASSERT_NOT_NULL(c2->config->networks[0]->wireless->wificfg[0]->cipherdata);
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, "cleartext fallback: on"));

        /* Off again: no cleartext, another hash. */
        ASSERT_EQ(EVC(s, NULL, "secret", "cleartext-fallback", "off", d->uuid), 0);
        c3 = config_ok(s, d, c2->confighash);
        ASSERT_TRUE(!streq(c3->confighash, c2->confighash));
        ASSERT_STREQ(c3->config->networks[0]->wireless->wificfg[0]->password, "");

        /* Neither the database nor its log ever held a plaintext value. */
        {
                static const char *const files[] = { "evc.db", "evc.db-wal" };
                for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                        _cleanup_free_ char *p = NULL;
                        _cleanup_free_ uint8_t *raw = NULL;
                        size_t rn;
                        ASSERT_OK(asprintf(&p, "%s/%s", s->dir, files[i]));
                        if (evc_read_file(p, &raw, &rn) < 0)
                                continue;
                        ASSERT_NULL(memmem(raw, rn, "wifi-pw-9", 9));
                        ASSERT_NULL(memmem(raw, rn, "ds-pw-9", 7));
                        ASSERT_NULL(memmem(raw, rn, "#cloud-9", 8));
                }
        }
        ASSERT_NE(EVC(s, NULL, "secret", "cleartext-fallback", "maybe", d->uuid), 0);
}

DEFINE_TEST_MAIN
