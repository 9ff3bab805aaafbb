/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc end to end: the real "evc serve" over TLS on 127.0.0.1 (port 0, read back), a node-side client written
 * here with libcurl (GnuTLS, the controller root pinned) and software device keys. Quotes are
 * software-signed TPMS_ATTEST structures built here (same bytes a TPM2_Quote produces, signed by a software
 * attestation key), with a gzip crypto-agile event log that replays to the reported PCRs 0 and 4. */
#include <json-c/json.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "encoding.h"
#include "evetrust.pb-c.h"
#include "eveuuid.pb-c.h"
#include "info.pb-c.h"
#include "memory-util.h"
#include "proto-util.h"
#include "test-evc-client.h"

/* ---- the tests ---- */

TEST(evc_certs_register_uuid) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new(), *d2 = dev_new(), *pre = dev_new();
        _cleanup_free_ char *out = NULL;

        /* /certs: one signing and one ECDH certificate (no intermediate: the root signs both). */
        fetch_certs(s);
        ASSERT_EQ(s->n_certs, 2);
        ASSERT_EQ(s->n_ecdh, 1);

        /* Not on the allow list: 403. Allowed: 201, a repeat: 200. */
        ASSERT_EQ(dev_register(s, d, "SN-1"), 403);
        ASSERT_EQ(EVC(s, NULL, "onboard", "allow", "SN-1", "--cert", d->onb->path), 0);
        ASSERT_EQ(dev_register(s, d, "SN-1"), 201);
        ASSERT_EQ(dev_register(s, d, "SN-1"), 200);
        /* The same device certificate claimed again through another onboarding certificate: 409. */
        ASSERT_EQ(EVC(s, NULL, "onboard", "allow", "SN-2", "--cert", d2->onb->path), 0);
        d->onb = d2->onb;
        ASSERT_EQ(dev_register(s, d, "SN-2"), 409);
        d->onb = d->own_onb;
        /* A second device through a serial already used (same batch onboarding certificate): 409. */
        d2->onb = d->onb;
        ASSERT_EQ(dev_register(s, d2, "SN-1"), 409);
        d2->onb = d2->own_onb;
        /* A register message signed by a key other than the onboarding key: 401. */
        {
                gnutls_x509_privkey_t ok = d2->onb->key;
                d2->onb->key = d2->key;
                ASSERT_EQ(dev_register(s, d2, "SN-2"), 401);
                d2->onb->key = ok;
        }
        ASSERT_EQ(dev_register(s, d2, "SN-2"), 201);

        ASSERT_EQ(dev_uuid(s, d), 200);
        ASSERT_EQ(dev_uuid(s, d2), 200);
        ASSERT_TRUE(!streq(d->uuid, d2->uuid));

        /* Unknown device: 401. Pre-registered by an admin: known at once. */
        ASSERT_EQ(dev_uuid(s, pre), 401);
        ASSERT_EQ(EVC(s, &out, "device", "add", "--cert", pre->cert_path, "--serial", "PRE-1"), 0);
        ASSERT_EQ(dev_uuid(s, pre), 200);
        ASSERT_TRUE(strncmp(out, pre->uuid, 36) == 0);
        free(out);
        out = NULL;
        ASSERT_EQ(EVC(s, &out, "device", "list"), 0);
        ASSERT_NOT_NULL(strstr(out, d->uuid));
        ASSERT_NOT_NULL(strstr(out, "PRE-1"));
}

TEST(evc_http_refusals) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new(), *stranger = dev_new();
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        _cleanup_free_ uint8_t *big = calloc(1, 100000), *b = NULL;
        size_t n;

        fetch_certs(s);
        dev_onboard(s, d, "SN-R");
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;

        {       /* Oversized body (Content-Length over --body-max): 413. */
                _cleanup_(resp_done) Resp r = http(s, "uuid", big, 100000, NULL);
                ASSERT_EQ(r.status, 413);
        }
        {       /* Wrong content type: 415. */
                _cleanup_(resp_done) Resp r = http(s, "uuid", "x", 1, "application/json");
                ASSERT_EQ(r.status, 415);
        }
        {       /* Garbage: 400, and the server lives on. */
                _cleanup_(resp_done) Resp r = http(s, "uuid", "\xff\xff\xff", 3, NULL);
                ASSERT_EQ(r.status, 400);
        }
        {       /* An unknown device: 401. */
                memcpy(stranger->uuid, d->uuid, 37);
                _cleanup_(resp_done) Resp r = dev_post(s, stranger, "attest", &req.base);
                ASSERT_EQ(r.status, 401);
        }
        {       /* Right sender hash, signature by another key: 401. */
                gnutls_x509_privkey_t k = d->key;
                d->key = stranger->key;
                _cleanup_(resp_done) Resp r = dev_post(s, d, "attest", &req.base);
                d->key = k;
                ASSERT_EQ(r.status, 401);
        }
        {       /* A payload that is not ZAttestReq: 422. */
                Org__Lfedge__Eve__Uuid__UuidResponse junk = ORG__LFEDGE__EVE__UUID__UUID_RESPONSE__INIT;
                junk.uuid = (char *) "\x01";
                junk.manufacturer = (char *) "x";
                seal_container(d->crt, d->key, NULL, &junk.base, &b, &n);
                _cleanup_free_ char *path = NULL;
                ASSERT_OK(asprintf(&path, "id/%s/attest", d->uuid));
                _cleanup_(resp_done) Resp r = http(s, path, b, n, NULL);
                ASSERT_TRUE(r.status == 422 || r.status == 201);
        }
        {       /* Unknown endpoint: 404. */
                _cleanup_(resp_done) Resp r = http(s, "nothing-here", NULL, 0, NULL);
                ASSERT_EQ(r.status, 404);
        }
        /* Still serving. */
        fetch_certs(s);
}

TEST(evc_attestation_escrow_config_secrets) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c1 = NULL, *c2 = NULL, *c3 = NULL;
        _cleanup_free_ char *hash1 = NULL, *out = NULL, *wifi = NULL, *ds = NULL, *ci = NULL;
        uint8_t nonce[32], tok1[32], bad[32] = {};
        size_t keys;

        fetch_certs(s);
        dev_onboard(s, d, "SN-A");

        /* No attestation certificate yet. */
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_NOCERT);
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201); /* EVE resends on every boot: idempotent */

        /* First good quote: SUCCESS, a token, no keys yet (baseline recorded). */
        get_nonce(s, d, nonce);
        ASSERT_EQ(send_quote(s, d, nonce, 32, FLAW_NONE, &resp), Q_SUCCESS);
        ASSERT_EQ(resp->quoteresp->n_keys, 0);
        memcpy(tok1, d->token, 32);

        /* STORE_KEYS: wrong token refused, right token stored. */
        ASSERT_EQ(store_keys(s, d, bad, 32, "escrow-blob-1"),
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_ITOKEN_MISMATCH);
        ASSERT_EQ(store_keys(s, d, d->token, 32, "escrow-blob-1"),
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS);

        /* Config: 403 without the token, 200 with it, 304 when unchanged. */
        ASSERT_EQ(get_config(s, d, NULL, NULL, 0, &c1), 403);
        ASSERT_EQ(get_config(s, d, NULL, bad, 32, &c1), 403);
        ASSERT_EQ(get_config(s, d, NULL, d->token, 32, &c1), 200);
        hash1 = strdup(c1->confighash);
        ASSERT_STREQ(c1->config->id->uuid, d->uuid);
        ASSERT_EQ(get_config(s, d, hash1, d->token, 32, &c2), 304);

        /* Re-attestation: a fresh token each time, and the escrowed key comes back. */
        proto_free(resp);
        resp = NULL;
        get_nonce(s, d, nonce);
        ASSERT_EQ(send_quote(s, d, nonce, 32, FLAW_NONE, &resp), Q_SUCCESS);
        ASSERT_TRUE(memcmp(tok1, d->token, 32) != 0);
        ASSERT_EQ(resp->quoteresp->n_keys, 1);
        ASSERT_MEMEQ(resp->quoteresp->keys[0]->key.data, resp->quoteresp->keys[0]->key.len, "escrow-blob-1", 13);
        ASSERT_EQ(get_config(s, d, hash1, tok1, 32, &c2), 403); /* the old token is dead */
        ASSERT_EQ(get_config(s, d, hash1, d->token, 32, &c2), 304);

        /* Secrets: encrypted to the device ECDH certificate; a new config hash. */
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "HomeNet", "--kind", "wifi", "--value", "wifi-pass-1"), 0);
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "store1", "--kind", "datastore", "--value", "ds-secret"), 0);
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "app1", "--kind", "cloudinit", "--value",
                      "#cloud-config\npassword: x\n"),
                  0);
        /* One bad item refuses the whole command: the good item beside it is not stored either. */
        ASSERT_NE(EVC(s, NULL, "config", "set", d->uuid, "other.item=1", "bad key=2"), 0);
        ASSERT_NE(EVC(s, NULL, "config", "set", d->uuid, "other.item=1", "=2"), 0);
        ASSERT_NE(EVC(s, NULL, "config", "set", d->uuid, "other.item=a\nb"), 0);
        ASSERT_EQ(EVC(s, NULL, "config", "set", d->uuid, "timer.config.interval=30"), 0);
        ASSERT_EQ(get_config(s, d, hash1, d->token, 32, &c3), 200);
        ASSERT_TRUE(!streq(c3->confighash, hash1));
        ASSERT_EQ(c3->config->n_networks, 1);
        ASSERT_EQ(c3->config->networks[0]->wireless->n_wificfg, 1);
        ASSERT_STREQ(c3->config->networks[0]->wireless->wificfg[0]->wifissid, "HomeNet");
        wifi = decrypt_block(s, d, c3->config, c3->config->networks[0]->wireless->wificfg[0]->cipherdata, 0);
        ASSERT_STREQ(wifi, "wifi-pass-1");
        ASSERT_EQ(c3->config->n_datastores, 1);
        ds = decrypt_block(s, d, c3->config, c3->config->datastores[0]->cipherdata, 1);
        ASSERT_STREQ(ds, "ds-secret");
        ASSERT_EQ(c3->config->n_apps, 1);
        ci = decrypt_block(s, d, c3->config, c3->config->apps[0]->cipherdata, 2);
        ASSERT_STREQ(ci, "#cloud-config\npassword: x\n");
        /* Fresh IVs: no two blocks share one. */
        ASSERT_TRUE(memcmp(c3->config->datastores[0]->cipherdata->initialvalue.data,
                           c3->config->apps[0]->cipherdata->initialvalue.data, 16) != 0);
        ASSERT_EQ(c3->config->n_configitems, 1);
        ASSERT_STREQ(c3->config->configitems[0]->key, "timer.config.interval");
        /* The plaintext is nowhere in the controller's database. */
        {
                _cleanup_free_ char *db = NULL;
                _cleanup_free_ uint8_t *raw = NULL;
                size_t rn;
                ASSERT_OK(asprintf(&db, "%s/evc.db", s->dir));
                ASSERT_EQ(EVC(s, NULL, "device", "list"), 0); /* checkpoint-free read */
                ASSERT_OK(evc_read_file(db, &raw, &rn));
                ASSERT_NULL(memmem(raw, rn, "wifi-pass-1", 11));
        }

        /* Info is stored and shown. */
        {
                Org__Lfedge__Eve__Info__ZInfoMsg m = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INIT;
                Org__Lfedge__Eve__Info__ZInfoDevice di = ORG__LFEDGE__EVE__INFO__ZINFO_DEVICE__INIT;
                m.devid = d->uuid;
                m.info_content_case = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO;
                m.dinfo = &di;
                di.hsminfo = (char *) "swtpm-test, FW Version 1";
                _cleanup_(resp_done) Resp r = dev_post(s, d, "info", &m.base);
                ASSERT_EQ(r.status, 201);
        }
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid, "--json"), 0);
        ASSERT_NOT_NULL(strstr(out, "swtpm-test, FW Version 1"));
        ASSERT_NOT_NULL(strstr(out, "\"trust\": \"trusted\""));
        ASSERT_NOT_NULL(strstr(out, "\"escrowed_keys\": 1"));
        (void) keys;
}

TEST(evc_nonce_and_quote_refusals) {
        Srv *s = srv_start("1");
        Dev *d = dev_new(), *other = dev_new();
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r1 = NULL, *r2 = NULL, *r3 = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *r4 = NULL;
        uint8_t nonce[32], wrong[32];

        fetch_certs(s);
        dev_onboard(s, d, "SN-N");
        /* An attestation certificate not signed by this device's key: refused. */
        ASSERT_EQ(send_certs(s, d, other->ak_pem), 422);
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        /* Replacing it later needs an admin. */
        ASSERT_EQ(send_certs(s, d, other->ak_pem), 422);
        {
                _cleanup_free_ char *dir = test_mkdtemp("ak2");
                gnutls_x509_crt_t ak2;
                gnutls_x509_privkey_t ak2_key;
                char *ak2_pem;
                gen(dir, "ak2", EVC_CERT_SIGNING, d->crt, d->key, &ak2, &ak2_key, &ak2_pem, NULL);
                ASSERT_EQ(send_certs(s, d, ak2_pem), 404);
                ASSERT_EQ(EVC(s, NULL, "device", "reset-certs", d->uuid), 0);
                ASSERT_EQ(send_certs(s, d, ak2_pem), 201);
                ASSERT_EQ(EVC(s, NULL, "device", "reset-certs", d->uuid), 0);
                ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
                gnutls_x509_crt_deinit(ak2);
                gnutls_x509_privkey_deinit(ak2_key);
                free(ak2_pem);
        }

        /* Replayed nonce. */
        get_nonce(s, d, nonce);
        ASSERT_EQ(send_quote(s, d, nonce, 32, FLAW_NONE, &r1), Q_SUCCESS);
        ASSERT_EQ(send_quote(s, d, nonce, 32, FLAW_NONE, &r2), Q_NONCE);
        /* A nonce the controller never issued. */
        memset(wrong, 0x33, sizeof wrong);
        get_nonce(s, d, nonce);
        ASSERT_EQ(send_quote(s, d, wrong, 32, FLAW_NONE, &r3), Q_NONCE);
        proto_free(r3);
        r3 = NULL;
        /* Expired (--nonce-ttl 1). */
        get_nonce(s, d, nonce);
        usleep(1300 * 1000);
        ASSERT_EQ(send_quote(s, d, nonce, 32, FLAW_NONE, &r3), Q_NONCE);
        /* A quote signed by another key, a PCR digest mismatch, an event log that does not replay. */
        ASSERT_EQ(attest_once(s, d, FLAW_SIGNATURE, NULL), Q_FAILED);
        ASSERT_EQ(attest_once(s, d, FLAW_PCR_DIGEST, NULL), Q_FAILED);
        ASSERT_EQ(attest_once(s, d, FLAW_EVENTLOG, NULL), Q_FAILED);
        /* A failed attestation withdraws the token. */
        ASSERT_EQ(get_config(s, d, NULL, d->token, 32, &r4), 403);
        /* And a good one still works afterwards. */
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
}

TEST(evc_pcr_change_untrusted_until_admin) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL, *c2 = NULL;
        _cleanup_free_ char *out = NULL, *hexv = NULL;
        size_t keys = 99;

        fetch_certs(s);
        dev_onboard(s, d, "SN-P");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(store_keys(s, d, d->token, 32, "vault-key"),
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS);
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "HomeNet", "--kind", "wifi", "--value", "pw"), 0);

        /* Unknown software: PCR 9 changes. The quote verifies but the device becomes untrusted. */
        memset(d->pcr[9], 0x99, 32);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(get_config(s, d, NULL, d->token, 32, &c), 403);
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid, "--json"), 0);
        ASSERT_NOT_NULL(strstr(out, "\"trust\": \"untrusted\""));
        ASSERT_NOT_NULL(strstr(out, "PCRs differ from the baseline: 9"));
        free(out);
        out = NULL;
        /* It stays untrusted whatever it sends, even its old PCRs, until an admin acts. */
        memset(d->pcr[9], 0x40 + 9, 32);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(keys, 0);
        /* A base-OS update is still served, alone: no secrets, no items. */
        ASSERT_EQ(EVC(s, NULL, "config", "set", d->uuid, "--baseos", "13.1.0"), 0);
        ASSERT_EQ(get_config(s, d, NULL, NULL, 0, &c), 200);
        ASSERT_NOT_NULL(c->config->baseos);
        ASSERT_STREQ(c->config->baseos->base_os_version, "13.1.0");
        ASSERT_EQ(c->config->n_networks, 0);
        ASSERT_EQ(c->config->n_ciphercontexts, 0);

        /* The admin accepts the (last verified) PCRs: trusted again, the key comes back. */
        memset(d->pcr[9], 0x99, 32);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(EVC(s, &out, "baseline", "show", d->uuid), 0);
        ASSERT_EQ(EVC(s, NULL, "baseline", "accept", d->uuid), 0);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(keys, 1);
        ASSERT_EQ(get_config(s, d, NULL, d->token, 32, &c2), 200);
        ASSERT_EQ(c2->config->n_networks, 1);

        /* An upgrade the admin announced: PCR 8 moves to the announced value; trusted, baseline follows. */
        memset(d->pcr[8], 0x88, 32);
        hexv = hex_encode(d->pcr[8], 32);
        {
                _cleanup_free_ char *arg = NULL;
                ASSERT_OK(asprintf(&arg, "8=%s", hexv));
                ASSERT_EQ(EVC(s, NULL, "upgrade", "expect", d->uuid, "--pcr", arg), 0);
        }
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(keys, 1);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        /* An unannounced one is not. */
        memset(d->pcr[8], 0x77, 32);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
}

TEST(evc_revoked_device_gets_nothing) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;
        size_t keys = 99;

        fetch_certs(s);
        dev_onboard(s, d, "SN-V");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
        ASSERT_EQ(store_keys(s, d, d->token, 32, "vault-key"),
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS);
        ASSERT_EQ(EVC(s, NULL, "device", "revoke", d->uuid), 0);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(keys, 0);
        ASSERT_EQ(get_config(s, d, NULL, d->token, 32, &c), 403);
}

/* Controller-held shares (proto/evetrust.proto): created on request in STORE_KEYS, kept apart from the
 * escrow, released with every SUCCESS sealed to the device's ECDH certificate, never to a device that fails.
 */
static size_t count_type(const Org__Lfedge__Eve__Attest__ZAttestResponse *r, int type) {
        size_t n = 0;
        for (size_t i = 0; i < r->quoteresp->n_keys; i++)
                n += (int) r->quoteresp->keys[i]->key_type == type;
        return n;
}

static const Org__Lfedge__Eve__Attest__AttestVolumeKey *
                find_type(const Org__Lfedge__Eve__Attest__ZAttestResponse *r, int type, size_t nth) {
        for (size_t i = 0; i < r->quoteresp->n_keys; i++)
                if ((int) r->quoteresp->keys[i]->key_type == type && nth-- == 0)
                        return r->quoteresp->keys[i];
        return NULL;
}

TEST(evc_controller_shares) {
        static const char V1[] = "7E57A0E1-0000-4000-8000-000000000001",
                          v1[] = "7e57a0e1-0000-4000-8000-000000000001",
                          v2[] = "7e57a0e1-0000-4000-8000-000000000002";
        Srv *s = srv_start(NULL);
        Dev *d = dev_new(), *d2 = dev_new();
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r1 = NULL, *r2 = NULL, *r3 = NULL,
                                                                         *r4 = NULL, *o = NULL;
        _cleanup_free_ uint8_t *req1 = NULL, *req2 = NULL, *bad = NULL;
        _cleanup_free_ char *out = NULL, *share_hex = NULL;
        size_t req1_n, req2_n, bad_n, keys = 99;
        uint8_t share1[32], again[32], share2[32], other[32];
        char vault[37];
        int code;

        fetch_certs(s);
        dev_onboard(s, d, "SN-S");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        proto_free(attest_ok(s, d));

        /* A share request (upper-case UUID: kept in canonical lower case) beside per-vault and legacy
         * escrow. */
        share_request(V1, &req1, &req1_n);
        {
                const KeyEntry e[] = { { KT_ESCROW, "escrow-A", 8 },
                                       { KT_SHARE_REQUEST, req1, req1_n },
                                       { KT_VSK, "legacy-vsk", 10 } };
                ASSERT_EQ(store_entries(s, d, e, ELEMENTSOF(e), &code), 201);
                ASSERT_EQ(code, SK_SUCCESS);
        }
        r1 = attest_ok(s, d);
        ASSERT_EQ(r1->quoteresp->n_keys, 3);
        ASSERT_EQ(count_type(r1, KT_ESCROW), 1);
        ASSERT_EQ(count_type(r1, KT_VSK), 1);
        ASSERT_EQ(count_type(r1, KT_SHARE_REQUEST), 0); /* a request is never stored as escrow */
        ASSERT_EQ(count_type(r1, KT_SHARE), 1);
        share_open(s, d, find_type(r1, KT_SHARE, 0), vault, share1);
        ASSERT_STREQ(vault, v1);

        /* A later STORE_KEYS without the request replaces the escrow and keeps the share; the share is the
         * same value in every round, sealed afresh (new nonce) each time. */
        {
                const KeyEntry e[] = { { KT_ESCROW, "escrow-B", 8 } };
                ASSERT_EQ(store_entries(s, d, e, ELEMENTSOF(e), &code), 201);
                ASSERT_EQ(code, SK_SUCCESS);
        }
        r2 = attest_ok(s, d);
        ASSERT_EQ(r2->quoteresp->n_keys, 2);
        ASSERT_MEMEQ(find_type(r2, KT_ESCROW, 0)->key.data,
                     find_type(r2, KT_ESCROW, 0)->key.len,
                     "escrow-B",
                     8);
        share_open(s, d, find_type(r2, KT_SHARE, 0), vault, again);
        ASSERT_MEMEQ(again, 32, share1, 32);
        ASSERT_TRUE(find_type(r1, KT_SHARE, 0)->key.len != find_type(r2, KT_SHARE, 0)->key.len ||
                    memcmp(find_type(r1, KT_SHARE, 0)->key.data,
                           find_type(r2, KT_SHARE, 0)->key.data,
                           find_type(r2, KT_SHARE, 0)->key.len) != 0);

        /* Asking again for v1 changes nothing; v2 gets its own share. */
        share_request(v2, &req2, &req2_n);
        {
                const KeyEntry e[] = { { KT_SHARE_REQUEST, req1, req1_n },
                                       { KT_SHARE_REQUEST, req2, req2_n },
                                       { KT_ESCROW, "escrow-C", 8 } };
                ASSERT_EQ(store_entries(s, d, e, ELEMENTSOF(e), &code), 201);
                ASSERT_EQ(code, SK_SUCCESS);
        }
        r3 = attest_ok(s, d);
        ASSERT_EQ(count_type(r3, KT_SHARE), 2);
        share_open(s, d, find_type(r3, KT_SHARE, 0), vault, again);
        ASSERT_STREQ(vault, v1);
        ASSERT_MEMEQ(again, 32, share1, 32);
        share_open(s, d, find_type(r3, KT_SHARE, 1), vault, share2);
        ASSERT_STREQ(vault, v2);
        ASSERT_TRUE(memcmp(share1, share2, 32) != 0);

        /* Another device asking for the same vault UUID gets a share of its own. */
        dev_onboard(s, d2, "SN-S2");
        ASSERT_EQ(send_certs(s, d2, d2->ak_pem), 201);
        proto_free(attest_ok(s, d2));
        {
                const KeyEntry e[] = { { KT_SHARE_REQUEST, req1, req1_n } };
                ASSERT_EQ(store_entries(s, d2, e, ELEMENTSOF(e), &code), 201);
                ASSERT_EQ(code, SK_SUCCESS);
        }
        o = attest_ok(s, d2);
        ASSERT_EQ(o->quoteresp->n_keys, 1);
        share_open(s, d2, find_type(o, KT_SHARE, 0), vault, other);
        ASSERT_TRUE(memcmp(other, share1, 32) != 0);

        /* Malformed requests refuse the whole STORE_KEYS with 422 and change nothing. */
        {
                Org__Eve__Trust__EveControllerShare m = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;
                m.vault_uuid = (char *) v1;
                m.sealed_share = (ProtobufCBinaryData){ .len = 4, .data = (uint8_t *) "abcd" };
                ASSERT_OK(PROTO_PACK(&m, &bad, &bad_n));
        }
        {
                _cleanup_free_ uint8_t *nouuid = NULL;
                size_t nouuid_n;
                share_request("not-a-uuid", &nouuid, &nouuid_n);
                const KeyEntry e1[] = { { KT_ESCROW, "escrow-X", 8 }, { KT_SHARE_REQUEST, bad, bad_n } };
                const KeyEntry e2[] = { { KT_ESCROW, "escrow-X", 8 },
                                        { KT_SHARE_REQUEST, nouuid, nouuid_n } };
                const KeyEntry e3[] = { { KT_ESCROW, "escrow-X", 8 },
                                        { KT_SHARE_REQUEST, "\xff\xff\xff", 3 } };
                const KeyEntry e4[] = { { KT_ESCROW, "escrow-X", 8 }, { KT_SHARE, req2, req2_n } };
                ASSERT_EQ(store_entries(s, d, e1, ELEMENTSOF(e1), &code), 422);
                ASSERT_EQ(store_entries(s, d, e2, ELEMENTSOF(e2), &code), 422);
                ASSERT_EQ(store_entries(s, d, e3, ELEMENTSOF(e3), &code), 422);
                ASSERT_EQ(store_entries(s, d, e4, ELEMENTSOF(e4), &code), 422);
        }
        r4 = attest_ok(s, d);
        ASSERT_EQ(count_type(r4, KT_SHARE), 2);
        ASSERT_EQ(count_type(r4, KT_ESCROW), 1);
        ASSERT_MEMEQ(find_type(r4, KT_ESCROW, 0)->key.data,
                     find_type(r4, KT_ESCROW, 0)->key.len,
                     "escrow-C",
                     8);

        /* The admin sees which vaults have a share, never the value. */
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, v1));
        ASSERT_NOT_NULL(strstr(out, v2));
        share_hex = hex_encode(share1, 32);
        ASSERT_NULL(strstr(out, share_hex));
        free(out);
        out = NULL;
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid, "--json"), 0);
        ASSERT_NOT_NULL(strstr(out, "\"controller_shares\""));
        ASSERT_NOT_NULL(strstr(out, v2));
        ASSERT_NULL(strstr(out, share_hex));

        /* Dropping a share: that vault gets none any more; the other keeps its own. */
        ASSERT_EQ(EVC(s, NULL, "share", "drop", d->uuid, v2), 0);
        ASSERT_NE(EVC(s, NULL, "share", "drop", d->uuid, v2), 0);
        ASSERT_NE(EVC(s, NULL, "share", "drop", d->uuid, "bogus"), 0);
        proto_free(r4);
        r4 = attest_ok(s, d);
        ASSERT_EQ(count_type(r4, KT_SHARE), 1);
        share_open(s, d, find_type(r4, KT_SHARE, 0), vault, again);
        ASSERT_STREQ(vault, v1);

        /* A device whose location is refused, or that is untrusted or revoked, gets no share and no key. */
        ASSERT_EQ(EVC(s, NULL, "location-lock", "on", d->uuid), 0);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(keys, 0);
        ASSERT_EQ(EVC(s, NULL, "location-lock", "off", d->uuid), 0);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(keys, 2);
        memset(d->pcr[9], 0x99, 32);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(keys, 0);
        ASSERT_EQ(EVC(s, NULL, "baseline", "accept", d->uuid), 0);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(keys, 2);
        ASSERT_EQ(EVC(s, NULL, "device", "revoke", d->uuid), 0);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        ASSERT_EQ(keys, 0);
        /* …and cannot have one made either: STORE_KEYS needs a token it no longer has. */
        {
                const KeyEntry e[] = { { KT_SHARE_REQUEST, req2, req2_n } };
                ASSERT_EQ(store_entries(s, d, e, ELEMENTSOF(e), &code), 201);
                ASSERT_EQ(code, SK_ITOKEN);
        }
}

TEST(evc_location_lock) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        size_t keys;

        fetch_certs(s);
        dev_onboard(s, d, "SN-L");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
        ASSERT_EQ(store_keys(s, d, d->token, 32, "vault-key"),
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS);
        ASSERT_EQ(EVC(s, NULL, "location-lock", "on", d->uuid), 0);
        /* No location: nothing. The first location is frozen; a move of ~50 km is refused; back home is fine. */
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        d->gps = true;
        d->lat = 48.1;
        d->lon = 11.5;
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(keys, 1);
        d->lat = 48.5;
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_FAILED);
        d->lat = 48.1001;
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
        ASSERT_EQ(EVC(s, NULL, "location-lock", "off", d->uuid), 0);
        d->gps = false;
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
}

/* A real TPM quote: swtpm, a restricted ECDSA P-256 signing key created as a primary (as EVE creates its quote
 * key), its certificate issued by the device key, PCRs 0 and 4 extended with the event log's digests. */
static int tpm2(const Swtpm *t, char *out_unused, ...) {
        char *argv[32];
        size_t n = 0;
        va_list ap;
        const char *a;

        va_start(ap, out_unused);
        a = va_arg(ap, const char *);
        argv[n++] = (char *) a;
        argv[n++] = (char *) "-T";
        argv[n++] = t->tcti;
        while ((a = va_arg(ap, const char *)) && n < 30)
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        return test_run(argv, NULL);
}
#define TPM2(t, ...) tpm2(t, NULL, __VA_ARGS__, NULL)

TEST(evc_swtpm_quote) {
        Swtpm *t = test_swtpm_start(0, NULL);
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        _cleanup_free_ char *ctx = NULL, *akpub = NULL, *akcert = NULL, *tmpl = NULL, *msg = NULL, *sig = NULL,
                            *pcrs = NULL, *devkey = NULL, *ak_pem = NULL, *nonce_hex = NULL;
        _cleanup_free_ uint8_t *att = NULL, *sigb = NULL, *pcrb = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL, *resp2 = NULL;
        size_t att_n, sig_n, pcr_n;
        uint8_t nonce[32], reported[24][32];
        Bytes gz = {};

        if (access("/usr/bin/tpm2_quote", X_OK) < 0)
                TEST_SKIP("tpm2-tools not installed");
        ASSERT_OK(asprintf(&ctx, "%s/ak.ctx", t->dir));
        ASSERT_OK(asprintf(&akpub, "%s/ak.pub.pem", t->dir));
        ASSERT_OK(asprintf(&akcert, "%s/ak.crt.pem", t->dir));
        ASSERT_OK(asprintf(&tmpl, "%s/ak.tmpl", t->dir));
        ASSERT_OK(asprintf(&msg, "%s/quote.msg", t->dir));
        ASSERT_OK(asprintf(&sig, "%s/quote.sig", t->dir));
        ASSERT_OK(asprintf(&pcrs, "%s/pcrs.bin", t->dir));
        ASSERT_OK(asprintf(&devkey, "%.*s-key.pem", (int) (strlen(d->cert_path) - 4), d->cert_path));

        /* Firmware-like measurements, the same digests make_eventlog() logs (tag 0). */
        ASSERT_EQ(TPM2(t, "tpm2_pcrextend",
                       "0:sha256=1010101010101010101010101010101010101010101010101010101010101010"), 0);
        ASSERT_EQ(TPM2(t, "tpm2_pcrextend",
                       "0:sha256=2020202020202020202020202020202020202020202020202020202020202020"), 0);
        ASSERT_EQ(TPM2(t, "tpm2_pcrextend",
                       "4:sha256=3030303030303030303030303030303030303030303030303030303030303030"), 0);
        ASSERT_EQ(TPM2(t, "tpm2_pcrextend",
                       "8:sha256=8888888888888888888888888888888888888888888888888888888888888888"), 0);

        ASSERT_EQ(TPM2(t, "tpm2_createprimary", "-C", "o", "-G", "ecc256:ecdsa-sha256:null", "-a",
                       "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda", "-c", ctx),
                  0);
        ASSERT_EQ(TPM2(t, "tpm2_flushcontext", "-t"), 0);
        ASSERT_EQ(TPM2(t, "tpm2_readpublic", "-c", ctx, "-f", "pem", "-o", akpub), 0);
        ASSERT_EQ(TPM2(t, "tpm2_flushcontext", "-t"), 0);
        {
                _cleanup_fclose_ FILE *f = fopen(tmpl, "we");
                ASSERT_NOT_NULL(f);
                fputs("cn = \"Device Attestation certificate\"\nsigning_key\nexpiration_days = 2\n", f);
        }
        char *certtool[] = { (char *) "certtool", (char *) "--generate-certificate", (char *) "--load-pubkey", akpub,
                             (char *) "--load-ca-certificate", d->cert_path, (char *) "--load-ca-privkey", devkey,
                             (char *) "--template", tmpl, (char *) "--outfile", akcert, NULL };
        ASSERT_EQ(test_run(certtool, NULL), 0);
        ak_pem = read_text(akcert);

        fetch_certs(s);
        dev_onboard(s, d, "SN-T");
        ASSERT_EQ(send_certs(s, d, ak_pem), 201);

        get_nonce(s, d, nonce);
        nonce_hex = hex_encode(nonce, sizeof nonce);
        ASSERT_EQ(TPM2(t, "tpm2_pcrread", "sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
                       "-o", pcrs),
                  0);
        ASSERT_EQ(TPM2(t, "tpm2_quote", "-c", ctx, "-l", "sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", "-q",
                       nonce_hex, "-m", msg, "-s", sig, "-f", "plain", "-g", "sha256"),
                  0);
        ASSERT_EQ(TPM2(t, "tpm2_flushcontext", "-t"), 0);
        ASSERT_OK(evc_read_file(msg, &att, &att_n));
        ASSERT_OK(evc_read_file(sig, &sigb, &sig_n));
        ASSERT_OK(evc_read_file(pcrs, &pcrb, &pcr_n));
        ASSERT_EQ(pcr_n, sizeof reported);
        ASSERT_EQ(sigb[0], 0x30); /* "plain" ECDSA from tpm2-tools is DER, as EVE sends it */
        memcpy(reported, pcrb, sizeof reported);

        make_eventlog(d, 0, &gz);
        /* The log replays to what the TPM holds. */
        ASSERT_MEMEQ(d->pcr[0], 32, reported[0], 32);
        ASSERT_MEMEQ(d->pcr[4], 32, reported[4], 32);
        ASSERT_EQ(post_quote(s, d, att, att_n, sigb, sig_n, reported, &gz, &resp), Q_SUCCESS);

        /* The same TPM quote again: the nonce is spent. */
        ASSERT_EQ(post_quote(s, d, att, att_n, sigb, sig_n, reported, &gz, &resp2), Q_NONCE);
}

TEST(evc_admin_json_and_errors) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        _cleanup_free_ char *out = NULL, *hexv = NULL, *arg = NULL;
        json_object *j, *v;

        fetch_certs(s);
        dev_onboard(s, d, "SN-J");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
        ASSERT_EQ(EVC(s, NULL, "secret", "set", "SN-J", "db", "--kind", "datastore", "--value", "s3cr3t-value"), 0);

        ASSERT_EQ(EVC(s, &out, "device", "list", "--json"), 0);
        j = json_tokener_parse(out);
        ASSERT_NOT_NULL(j);
        ASSERT_EQ(json_object_array_length(j), 1);
        ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(j, 0), "uuid", &v));
        ASSERT_STREQ(json_object_get_string(v), d->uuid);
        ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(j, 0), "trust", &v));
        ASSERT_STREQ(json_object_get_string(v), "trusted");
        json_object_put(j);
        free(out);
        out = NULL;

        /* Secret values are never printed. */
        ASSERT_EQ(EVC(s, &out, "secret", "list", "SN-J", "--json"), 0);
        ASSERT_NULL(strstr(out, "s3cr3t-value"));
        j = json_tokener_parse(out);
        ASSERT_NOT_NULL(j);
        ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(j, 0), "kind", &v));
        ASSERT_STREQ(json_object_get_string(v), "datastore");
        json_object_put(j);
        free(out);
        out = NULL;

        ASSERT_EQ(EVC(s, &out, "baseline", "show", d->uuid, "--json"), 0);
        j = json_tokener_parse(out);
        ASSERT_NOT_NULL(j);
        ASSERT_TRUE(json_object_object_get_ex(j, "baseline", &v));
        ASSERT_EQ(json_object_object_length(v), 16);
        hexv = hex_encode(d->pcr[7], 32);
        ASSERT_STREQ(json_object_get_string(json_object_object_get(v, "7")), hexv);
        json_object_put(j);

        /* Bad input is an error with a message, not a crash. */
        ASSERT_NE(EVC(s, NULL, "device", "show", "no-such-device"), 0);
        ASSERT_NE(EVC(s, NULL, "upgrade", "expect", d->uuid, "--pcr", "24=00"), 0);
        free(arg);
        ASSERT_OK(asprintf(&arg, "+7=%s", hexv)); /* a well-formed value behind a sign */
        ASSERT_NE(EVC(s, NULL, "upgrade", "expect", d->uuid, "--pcr", arg), 0);
        free(arg);
        ASSERT_OK(asprintf(&arg, "3=%s", "abcd"));
        ASSERT_NE(EVC(s, NULL, "upgrade", "expect", d->uuid, "--pcr", arg), 0);
        ASSERT_NE(EVC(s, NULL, "secret", "set", d->uuid, "x", "--kind", "ftp", "--value", "v"), 0);
        ASSERT_NE(EVC(s, NULL, "frobnicate"), 0);
        ASSERT_NE(EVC(s, NULL, "init"), 0); /* already initialised */
}

/* Correctly signed envelopes around random payloads, and quotes with random attestData signed by the real
 * attestation key: every answer is a status, never a crash, and the server keeps serving. */
TEST(evc_random_payloads_never_crash) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        static const char *const actions[] = { "attest", "config", "info", "uuid" };
        unsigned seed = 12345;

        fetch_certs(s);
        dev_onboard(s, d, "SN-F");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        for (unsigned i = 0; i < 200; i++) {
                Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
                Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
                _cleanup_free_ uint8_t *packed = NULL;
                _cleanup_free_ char *path = NULL;
                uint8_t payload[512], sig[64];
                size_t n = (size_t) rand_r(&seed) % sizeof payload, pn;
                const char *action = actions[i % ELEMENTSOF(actions)];

                for (size_t k = 0; k < n; k++)
                        payload[k] = (uint8_t) rand_r(&seed);
                /* Half of them start like a ZAttestReq/ConfigRequest field to get past the first byte. */
                if (n > 2 && i % 2 == 0) {
                        payload[0] = 0x08;
                        payload[1] = (uint8_t) (rand_r(&seed) % 6);
                }
                ASSERT_OK(evc_sign_raw(d->key, payload, n, sig));
                body.payload = (ProtobufCBinaryData) { .len = n, .data = payload };
                ac.protectedpayload = &body;
                ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
                ac.sendercerthash = (ProtobufCBinaryData) { .len = 32, .data = d->hash };
                ac.signaturehash = (ProtobufCBinaryData) { .len = 64, .data = sig };
                ASSERT_OK(PROTO_PACK(&ac, &packed, &pn));
                if (streq(action, "uuid"))
                        path = strdup("uuid");
                else
                        ASSERT_OK(asprintf(&path, "id/%s/%s", d->uuid, action));
                _cleanup_(resp_done) Resp r = http(s, path, packed, pn, NULL);
                ASSERT_TRUE(r.status == 200 || r.status == 201 || r.status == 304 || r.status == 400 ||
                            r.status == 403 || r.status == 404 || r.status == 422);
        }
        for (unsigned i = 0; i < 50; i++) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
                uint8_t att[160], nonce[32];
                gnutls_datum_t sig = {};
                size_t n = 1 + (size_t) rand_r(&seed) % sizeof att;

                get_nonce(s, d, nonce);
                for (size_t k = 0; k < n; k++)
                        att[k] = (uint8_t) rand_r(&seed);
                if (n > 6) { /* past the magic and type, into the variable part */
                        memcpy(att, "\xff\x54\x43\x47\x80\x18", 6);
                }
                sign_der(d->ak_key, att, n, &sig);
                ASSERT_EQ(post_quote(s, d, att, n, sig.data, sig.size, d->pcr, NULL, &resp), Q_FAILED);
                gnutls_free(sig.data);
        }
        /* Still serving, and a good quote still works. */
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
}

TEST(evc_kill9_leaves_a_store_that_opens) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new();
        _cleanup_free_ char *db = NULL, *out = NULL;
        uint8_t nonce[32];
        sqlite3 *h;
        sqlite3_stmt *st;
        int status;

        fetch_certs(s);
        dev_onboard(s, d, "SN-K");
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
        ASSERT_EQ(store_keys(s, d, d->token, 32, "vault-key"),
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS);
        /* A nonce outstanding, then SIGKILL. */
        get_nonce(s, d, nonce);
        ASSERT_OK(kill(s->pid, SIGKILL));
        ASSERT_EQ(waitpid(s->pid, &status, 0), s->pid);
        s->pid = 0;

        ASSERT_OK(asprintf(&db, "%s/evc.db", s->dir));
        ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_STREQ((const char *) sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        sqlite3_close(h);
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, "escrowed keys: 1"));

        /* Restarted, it carries on where it was. Nonces lived in memory: the one issued before the kill is
         * unknown now (NONCE_MISMATCH), and the device simply asks for a new one. */
        srv_serve(s, NULL);
        {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r = NULL;
                size_t keys = 0;
                ASSERT_EQ(send_quote(s, d, nonce, sizeof nonce, FLAW_NONE, &r), Q_NONCE);
                ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
                ASSERT_EQ(keys, 1);
        }
}

DEFINE_TEST_MAIN
