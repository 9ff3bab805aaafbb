/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-evc-client.c: see test-evc-client.h. */
#include "test-evc-client.h"

#include <curl/curl.h>
#include <nettle/gcm.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include "attest.pb-c.h"
#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "config.pb-c.h"
#include "encoding.h"
#include "evc-cipher.h"
#include "evc-crypto.h"
#include "evetrust.pb-c.h"
#include "eveuuid.pb-c.h"
#include "fixtures.h"
#include "info.pb-c.h"
#include "memory-util.h"
#include "proto-util.h"
#include "register.pb-c.h"

/* ---- the controller process ---- */

static char *evc_path(void) {
        const char *b = getenv("EVE_TEST_BUILDDIR");
        char *p;
        ASSERT_NOT_NULL(b);
        ASSERT_OK(asprintf(&p, "%s/controller/evc", b));
        return p;
}

/* Runs "evc ARGS… --dir DIR"; returns its exit status; stdout in *out when out != NULL. */
int evc_admin(Srv *s, char **out, ...) {
        char *argv[32];
        size_t n = 0;
        va_list ap;
        _cleanup_free_ char *evc = evc_path();
        const char *a;

        argv[n++] = evc;
        va_start(ap, out);
        while ((a = va_arg(ap, const char *)) && n < 28)
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n++] = (char *) "--dir";
        argv[n++] = s->dir;
        argv[n] = NULL;
        return test_run(argv, out);
}

static char *read_log(const char *path) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;
        return evc_read_file(path, &b, &n) < 0 ? NULL : (char *) TAKE_PTR(b);
}

int srv_stop(void *p) {
        Srv *s = p;
        int r = 0;

        if (s->pid > 0) {
                int status = 0;

                /* Stopped by hand to see its exit status: sanitizer findings in the server fail the test. */
                (void) kill(s->pid, SIGTERM);
                for (int i = 0; i < 2000; i++) {
                        pid_t k = waitpid(s->pid, &status, WNOHANG);
                        if (k == s->pid)
                                break;
                        if (i == 1999) {
                                (void) kill(s->pid, SIGKILL);
                                (void) waitpid(s->pid, &status, 0);
                                r = -ETIMEDOUT;
                        }
                        usleep(5000);
                }
                if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                        _cleanup_free_ char *logf = NULL, *text = NULL;
                        if (asprintf(&logf, "%s/evc.log", s->dir) >= 0 && (text = read_log(logf)))
                                fprintf(stderr, "evc serve exited with status 0x%x:\n%s\n", status, text);
                        r = -EPROTO;
                }
                s->pid = 0;
        }
        if (s->curl)
                curl_easy_cleanup(s->curl);
        if (s->signing)
                gnutls_x509_crt_deinit(s->signing);
        for (size_t i = 0; i < s->n_ecdh; i++)
                gnutls_x509_crt_deinit(s->ecdh[i]);
        free(s->dir);
        free(s->root_pem);
        free(s);
        return r < 0 ? r : 0;
}

void srv_serve(Srv *s, const char *nonce_ttl) {
        _cleanup_free_ char *evc = evc_path(), *portf = NULL, *logf = NULL;
        char *argv[] = { evc,
                         (char *) "serve",
                         (char *) "--dir",
                         s->dir,
                         (char *) "--listen",
                         (char *) "127.0.0.1:0",
                         (char *) "--port-file",
                         NULL,
                         (char *) "--body-max",
                         (char *) "65536",
                         nonce_ttl ? (char *) "--nonce-ttl" : NULL,
                         (char *) nonce_ttl,
                         NULL };

        ASSERT_OK(asprintf(&portf, "%s/port", s->dir));
        ASSERT_OK(asprintf(&logf, "%s/evc.log", s->dir));
        (void) unlink(portf);
        argv[7] = portf;
        s->pid = test_spawn(argv, logf, -1);
        ASSERT_GE(s->pid, 1);
        for (int i = 0; i < 500; i++) {
                _cleanup_fclose_ FILE *f = fopen(portf, "re");
                if (f && fscanf(f, "%u", &s->port) == 1 && s->port > 0)
                        return;
                usleep(10000);
        }
        test_fail(__FILE__, __LINE__, "evc did not write its port (see %s)", logf);
}

Srv *srv_start(const char *nonce_ttl) {
        Srv *s = calloc(1, sizeof *s);

        ASSERT_NOT_NULL(s);
        s->dir = test_mkdtemp("evc");
        ASSERT_OK(asprintf(&s->root_pem, "%s/certs/root.pem", s->dir));
        ASSERT_EQ(EVC(s, NULL, "init"), 0);
        srv_serve(s, nonce_ttl);
        test_defer(srv_stop, s);
        return s;
}

/* ---- HTTP ---- */

void resp_done(Resp *r) {
        free(r->body);
        free(r->ctype);
        *r = (Resp){};
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
        Resp *r = ud;
        uint8_t *b = realloc(r->body, r->size + sz * n + 1);
        if (!b)
                return 0;
        memcpy(b + r->size, p, sz * n);
        r->body = b;
        r->size += sz * n;
        return sz * n;
}

Resp http(Srv *s, const char *path, const void *body, size_t n, const char *ctype) {
        _cleanup_free_ char *url = NULL;
        struct curl_slist *h = NULL;
        Resp r = {};
        char *ct = NULL;
        CURL *c;

        if (!s->curl)
                s->curl = curl_easy_init();
        c = s->curl;
        ASSERT_NOT_NULL(c);
        curl_easy_reset(c);
        ASSERT_OK(asprintf(&url, "https://127.0.0.1:%u/api/v2/edgedevice/%s", s->port, path));
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CAINFO, s->root_pem);
        curl_easy_setopt(
                        c,
                        CURLOPT_CAPATH,
                        NULL); /* pinned: the controller root only, not the system's CAs */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(c, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
        if (body) {
                _cleanup_free_ char *hdr = NULL;
                ASSERT_OK(asprintf(&hdr, "Content-Type: %s", ctype ?: "application/x-proto-binary"));
                h = curl_slist_append(h, hdr);
                h = curl_slist_append(h, "Expect:");
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
                curl_easy_setopt(c, CURLOPT_POST, 1L);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) n);
        }
        if (curl_easy_perform(c) != CURLE_OK)
                test_fail(__FILE__, __LINE__, "HTTPS request to %s failed", url);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        r.ctype = ct ? strdup(ct) : NULL;
        curl_slist_free_all(h);
        return r;
}

/* Checks a response AuthContainer against the signing certificate from /certs and returns its payload. */
Org__Lfedge__Eve__Auth__AuthContainer *open_signed(Srv *s, const Resp *r) {
        Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        uint8_t digest[32];

        ASSERT_STREQ(r->ctype, "application/x-proto-binary");
        ASSERT_OK(
                        PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor,
                                     r->body,
                                     r->size,
                                     1 << 20,
                                     &ac));
        ASSERT_NOT_NULL(ac->protectedpayload);
        ASSERT_EQ(ac->algo, ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES);
        ASSERT_MEMEQ(ac->sendercerthash.data, ac->sendercerthash.len, s->signing_hash, 32);
        ASSERT_EQ(ac->signaturehash.len, 64); /* raw r‖s */
        evc_sha256(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, digest);
        ASSERT_OK(evc_verify_digest(s->signing, digest, ac->signaturehash.data, ac->signaturehash.len));
        return ac;
}

void open_payload(Srv *s, const Resp *r, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = open_signed(s, r);

        ASSERT_OK(
                        proto_unpack(desc,
                                     ac->protectedpayload->payload.data,
                                     ac->protectedpayload->payload.len,
                                     1 << 20,
                                     ret));
}

void fetch_certs(Srv *s) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *zc = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL;
        _cleanup_(resp_done) Resp r = http(s, "certs", NULL, 0, NULL);

        ASSERT_EQ(r.status, 200);
        ASSERT_OK(evc_load_crt_file(s->root_pem, &root));
        /* The envelope is checked after the signing certificate is known (EVE checks chains, not this one).
         */
        {
                Org__Lfedge__Eve__Auth__AuthContainer *raw = NULL;
                ASSERT_OK(
                                PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor,
                                             r.body,
                                             r.size,
                                             1 << 20,
                                             &raw));
                ASSERT_OK(
                                PROTO_UNPACK(&org__lfedge__eve__certs__zcontroller_cert__descriptor,
                                             raw->protectedpayload->payload.data,
                                             raw->protectedpayload->payload.len,
                                             1 << 20,
                                             &zc));
                proto_free(raw);
        }
        for (size_t i = 0; i < s->n_ecdh; i++)
                gnutls_x509_crt_deinit(s->ecdh[i]);
        s->n_ecdh = 0;
        if (s->signing)
                gnutls_x509_crt_deinit(s->signing);
        s->signing = NULL;
        for (size_t i = 0; i < zc->n_certs; i++) {
                const Org__Lfedge__Eve__Certs__ZCert *c = zc->certs[i];
                uint8_t h[32];
                gnutls_x509_crt_t crt = NULL;

                evc_sha256(c->cert.data, c->cert.len, h);
                ASSERT_EQ(c->hashalgo,
                          ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES);
                ASSERT_MEMEQ(c->certhash.data, c->certhash.len, h, 16);
                ASSERT_OK(evc_load_crt_pem(c->cert.data, c->cert.len, &crt));
                ASSERT_OK(evc_verify_chain(crt, root));
                if (c->type == ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING) {
                        ASSERT_NULL(s->signing); /* EVE takes exactly one */
                        s->signing = crt;
                        memcpy(s->signing_hash, h, 32);
                } else {
                        ASSERT_EQ(c->type,
                                  ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_ECDH_EXCHANGE);
                        ASSERT_LE(s->n_ecdh + 1, SRV_ECDH_MAX);
                        s->ecdh[s->n_ecdh] = crt;
                        memcpy(s->ecdh_hash[s->n_ecdh], h, 16);
                        s->n_ecdh++;
                }
        }
        s->n_certs = zc->n_certs;
        ASSERT_NOT_NULL(s->signing);
        ASSERT_GE(s->n_ecdh, 1);
        ac = open_signed(s, &r);
}

gnutls_x509_crt_t srv_ecdh_cert(Srv *s, const uint8_t hash[static 16]) {
        for (size_t i = 0; i < s->n_ecdh; i++)
                if (memcmp(s->ecdh_hash[i], hash, 16) == 0)
                        return s->ecdh[i];
        return NULL;
}

/* ---- the device ---- */

char *read_text(const char *path) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;
        ASSERT_OK(evc_read_file(path, &b, &n));
        return (char *) TAKE_PTR(b);
}

void gen(const char *dir,
         const char *name,
         EvcCertKind kind,
         gnutls_x509_crt_t issuer,
         gnutls_x509_privkey_t issuer_key,
         gnutls_x509_crt_t *crt,
         gnutls_x509_privkey_t *key,
         char **pem,
         char **path) {
        _cleanup_free_ char *c = NULL, *k = NULL;

        ASSERT_OK(asprintf(&c, "%s/%s.pem", dir, name));
        ASSERT_OK(asprintf(&k, "%s/%s-key.pem", dir, name));
        ASSERT_OK(evc_generate_cert(kind, name, issuer, issuer_key, c, k, crt, key));
        *pem = read_text(c);
        if (path)
                *path = TAKE_PTR(c);
}

int dev_free(void *p) {
        Dev *d = p;

        gnutls_x509_crt_deinit(d->crt);
        gnutls_x509_crt_deinit(d->ecdh);
        gnutls_x509_crt_deinit(d->ak);
        gnutls_x509_privkey_deinit(d->key);
        gnutls_x509_privkey_deinit(d->ecdh_key);
        gnutls_x509_privkey_deinit(d->ak_key);
        free(d->pem);
        free(d->ecdh_pem);
        free(d->ak_pem);
        free(d->cert_path);
        gnutls_x509_crt_deinit(d->own_onb->crt);
        gnutls_x509_privkey_deinit(d->own_onb->key);
        free(d->own_onb->pem);
        free(d->own_onb->path);
        free(d->own_onb);
        free(d);
        return 0;
}

/* A device as EVE makes one: a self-signed identity certificate (a CA), ECDH and attestation certificates
 * signed by the identity key, and an onboarding certificate from elsewhere. */
Dev *dev_new(void) {
        _cleanup_free_ char *dir = test_mkdtemp("dev");
        Dev *d = calloc(1, sizeof *d);

        ASSERT_NOT_NULL(d);
        gen(dir, "device", EVC_CERT_ROOT, NULL, NULL, &d->crt, &d->key, &d->pem, &d->cert_path);
        gen(dir, "ecdh", EVC_CERT_ECDH, d->crt, d->key, &d->ecdh, &d->ecdh_key, &d->ecdh_pem, NULL);
        gen(dir, "attest", EVC_CERT_SIGNING, d->crt, d->key, &d->ak, &d->ak_key, &d->ak_pem, NULL);
        d->onb = d->own_onb = calloc(1, sizeof(Onb));
        ASSERT_NOT_NULL(d->onb);
        gen(dir,
            "onboard",
            EVC_CERT_ROOT,
            NULL,
            NULL,
            &d->onb->crt,
            &d->onb->key,
            &d->onb->pem,
            &d->onb->path);
        ASSERT_OK(evc_crt_der_sha256(d->crt, d->hash));
        for (unsigned i = 0; i < 24; i++)
                memset(d->pcr[i], 0x40 + (int) i, 32);
        test_defer(dev_free, d);
        return d;
}

/* Wraps payload in an AuthContainer signed by key, as the device does. */
void seal_container(
                gnutls_x509_crt_t crt,
                gnutls_x509_privkey_t key,
                const char *sender_pem,
                const ProtobufCMessage *msg,
                uint8_t **ret,
                size_t *ret_size) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_free_ char *b64 = NULL;
        uint8_t sig[64], h[32];
        size_t n;

        ASSERT_OK(proto_pack(msg, &payload, &n));
        ASSERT_OK(evc_sign_raw(key, payload, n, sig));
        ASSERT_OK(evc_crt_der_sha256(crt, h));
        body.payload = (ProtobufCBinaryData){ .len = n, .data = payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData){ .len = 32, .data = h };
        ac.signaturehash = (ProtobufCBinaryData){ .len = 64, .data = sig };
        if (sender_pem) {
                b64 = base64_encode(sender_pem, strlen(sender_pem));
                ac.sendercert = (ProtobufCBinaryData){ .len = strlen(b64), .data = (uint8_t *) b64 };
        }
        ASSERT_OK(PROTO_PACK(&ac, ret, ret_size));
}

Resp dev_post(Srv *s, Dev *d, const char *action, const ProtobufCMessage *msg) {
        _cleanup_free_ uint8_t *b = NULL;
        _cleanup_free_ char *path = NULL;
        size_t n;

        seal_container(d->crt, d->key, NULL, msg, &b, &n);
        if (streq(action, "uuid"))
                path = strdup("uuid");
        else
                ASSERT_OK(asprintf(&path, "id/%s/%s", d->uuid, action));
        return http(s, path, b, n, NULL);
}

long dev_register(Srv *s, Dev *d, const char *serial) {
        Org__Lfedge__Eve__Register__ZRegisterMsg m = ORG__LFEDGE__EVE__REGISTER__ZREGISTER_MSG__INIT;
        _cleanup_free_ char *b64 = base64_encode(d->pem, strlen(d->pem));
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;

        m.pemcert = (ProtobufCBinaryData){ .len = strlen(b64), .data = (uint8_t *) b64 };
        m.serial = (char *) serial;
        seal_container(d->onb->crt, d->onb->key, d->onb->pem, &m.base, &b, &n);
        _cleanup_(resp_done) Resp r = http(s, "register", b, n, NULL);
        ASSERT_EQ(r.size, 0);
        return r.status;
}

long dev_uuid(Srv *s, Dev *d) {
        Org__Lfedge__Eve__Uuid__UuidRequest q = ORG__LFEDGE__EVE__UUID__UUID_REQUEST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidResponse *u = NULL;
        _cleanup_(resp_done) Resp r = dev_post(s, d, "uuid", &q.base);

        if (r.status != 200)
                return r.status;
        ac = open_signed(s, &r);
        ASSERT_OK(
                        PROTO_UNPACK(&org__lfedge__eve__uuid__uuid_response__descriptor,
                                     ac->protectedpayload->payload.data,
                                     ac->protectedpayload->payload.len,
                                     4096,
                                     &u));
        ASSERT_EQ(strlen(u->uuid), 36);
        memcpy(d->uuid, u->uuid, 37);
        return 200;
}

/* Onboards d with a fresh serial: allow list + /register + /uuid. */
void dev_onboard(Srv *s, Dev *d, const char *serial) {
        ASSERT_EQ(EVC(s, NULL, "onboard", "allow", serial, "--cert", d->onb->path), 0);
        ASSERT_EQ(dev_register(s, d, serial), 201);
        ASSERT_EQ(dev_uuid(s, d), 200);
}

/* POST attest; returns the HTTP status; on 201 the checked response in *ret. */
long attest(Srv *s,
            Dev *d,
            const Org__Lfedge__Eve__Attest__ZAttestReq *req,
            Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        _cleanup_(resp_done) Resp r = dev_post(s, d, "attest", &req->base);

        if (r.status != 201)
                return r.status;
        open_payload(s,
                     &r,
                     &org__lfedge__eve__attest__zattest_response__descriptor,
                     (ProtobufCMessage **) ret);
        return 201;
}

long send_certs(Srv *s, Dev *d, const char *ak_pem) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Certs__ZCert c[2] = { ORG__LFEDGE__EVE__CERTS__ZCERT__INIT,
                                                ORG__LFEDGE__EVE__CERTS__ZCERT__INIT };
        Org__Lfedge__Eve__Certs__ZCert *cp[2] = { &c[0], &c[1] };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        uint8_t h0[32], h1[32];
        long st;

        evc_sha256(d->ecdh_pem, strlen(d->ecdh_pem), h0);
        evc_sha256(ak_pem, strlen(ak_pem), h1);
        c[0].hashalgo = c[1].hashalgo =
                        ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
        c[0].type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ECDH_EXCHANGE;
        c[0].cert = (ProtobufCBinaryData){ .len = strlen(d->ecdh_pem), .data = (uint8_t *) d->ecdh_pem };
        c[0].certhash = (ProtobufCBinaryData){ .len = 16, .data = h0 };
        c[1].type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING;
        c[1].cert = (ProtobufCBinaryData){ .len = strlen(ak_pem), .data = (uint8_t *) ak_pem };
        c[1].certhash = (ProtobufCBinaryData){ .len = 16, .data = h1 };
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT;
        req.n_certs = 2;
        req.certs = cp;
        st = attest(s, d, &req, &resp);
        if (st == 201)
                ASSERT_EQ(resp->resptype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT);
        return st;
}

void get_nonce(Srv *s, Dev *d, uint8_t nonce[32]) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;

        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
        ASSERT_EQ(attest(s, d, &req, &resp), 201);
        ASSERT_EQ(resp->resptype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE);
        ASSERT_NOT_NULL(resp->nonce);
        ASSERT_EQ(resp->nonce->nonce.len, 32);
        memcpy(nonce, resp->nonce->nonce.data, 32);
}

/* ---- quotes (software-signed TPMS_ATTEST) ---- */

static void put(Bytes *b, const void *p, size_t n) {
        ASSERT_LE(b->n + n, sizeof b->b);
        memcpy(b->b + b->n, p, n);
        b->n += n;
}
static void be(Bytes *b, uint64_t v, size_t k) {
        for (size_t i = k; i > 0; i--) {
                uint8_t c = (uint8_t) (v >> (8 * (i - 1)));
                put(b, &c, 1);
        }
}
static void le(Bytes *b, uint64_t v, size_t k) {
        for (size_t i = 0; i < k; i++) {
                uint8_t c = (uint8_t) (v >> (8 * i));
                put(b, &c, 1);
        }
}

static void extend(uint8_t pcr[32], const uint8_t d[32]) {
        uint8_t c[64];
        memcpy(c, pcr, 32);
        memcpy(c + 32, d, 32);
        evc_sha256(c, 64, pcr);
}

/* A crypto-agile event log with two events for PCR 0 and one for PCR 4; sets the device's PCRs 0 and 4 to
 * match. */
void make_eventlog(Dev *d, uint8_t tag, Bytes *gz) {
        Bytes b = {}, spec = {};
        uint8_t dig[3][32];
        const unsigned pcrs[3] = { 0, 0, 4 };
        z_stream z = {};

        put(&spec, "Spec ID Event03", 16);
        le(&spec, 0, 4);
        le(&spec, 0, 1);
        le(&spec, 2, 1);
        le(&spec, 0, 1);
        le(&spec, 2, 1);
        le(&spec, 1, 4);
        le(&spec, 0x000b, 2);
        le(&spec, 32, 2);
        le(&spec, 0, 1);
        le(&b, 0, 4);
        le(&b, 3, 4);
        for (int i = 0; i < 20; i++)
                le(&b, 0, 1);
        le(&b, spec.n, 4);
        put(&b, spec.b, spec.n);

        memset(d->pcr[0], 0, 32);
        memset(d->pcr[4], 0, 32);
        for (unsigned i = 0; i < 3; i++) {
                memset(dig[i], 0x10 * (int) (i + 1) + tag, 32);
                le(&b, pcrs[i], 4);
                le(&b, 0x80000008, 4);
                le(&b, 1, 4);
                le(&b, 0x000b, 2);
                put(&b, dig[i], 32);
                le(&b, 4, 4);
                put(&b, "evnt", 4);
                extend(d->pcr[pcrs[i]], dig[i]);
        }
        ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = b.b;
        z.avail_in = (uInt) b.n;
        z.next_out = gz->b;
        z.avail_out = sizeof gz->b;
        ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
        gz->n = z.total_out;
        deflateEnd(&z);
}

/* ECDSA over SHA-256(attestData), DER, as the TPM's signature is sent. */
void sign_der(gnutls_x509_privkey_t key, const uint8_t *p, size_t n, gnutls_datum_t *sig) {
        gnutls_privkey_t pk;
        uint8_t dg[32];
        gnutls_datum_t h = { .data = dg, .size = 32 };

        evc_sha256(p, n, dg);
        ASSERT_OK(gnutls_privkey_init(&pk));
        ASSERT_OK(gnutls_privkey_import_x509(pk, key, 0));
        ASSERT_OK(gnutls_privkey_sign_hash(pk, GNUTLS_DIG_SHA256, 0, &h, sig));
        gnutls_privkey_deinit(pk);
}

/* Posts a quote (attestData + DER signature) with the reported PCRs 0–23 and the event log. */
int post_quote(Srv *s,
               Dev *d,
               const uint8_t *att,
               size_t att_n,
               const uint8_t *sig,
               size_t sig_n,
               uint8_t reported[24][32],
               const Bytes *gz,
               Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuote q = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        Org__Lfedge__Eve__Attest__TpmPCRValue v[24], *vp[24];
        Org__Lfedge__Eve__Attest__AttestGPSCoordinates gps =
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSCOORDINATES__INIT;

        for (unsigned i = 0; i < 24; i++) {
                v[i] = (Org__Lfedge__Eve__Attest__TpmPCRValue) ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT;
                v[i].index = i;
                v[i].hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
                v[i].value = (ProtobufCBinaryData){ .len = 32, .data = reported[i] };
                vp[i] = &v[i];
        }
        q.attestdata = (ProtobufCBinaryData){ .len = att_n, .data = (uint8_t *) att };
        q.signature = (ProtobufCBinaryData){ .len = sig_n, .data = (uint8_t *) sig };
        q.n_pcr_values = 24;
        q.pcr_values = vp;
        if (gz)
                q.tpm_binary_event_log = (ProtobufCBinaryData){ .len = gz->n, .data = (uint8_t *) gz->b };
        if (d->gps) {
                gps.gps_input = ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_PRESENT;
                gps.latitude = d->lat;
                gps.longitude = d->lon;
                q.gps_info = &gps;
        }
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE;
        req.quote = &q;
        ASSERT_EQ(attest(s, d, &req, ret), 201);
        ASSERT_EQ((*ret)->resptype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP);
        ASSERT_NOT_NULL((*ret)->quoteresp);
        if ((*ret)->quoteresp->response ==
            ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS) {
                ASSERT_EQ((*ret)->quoteresp->integrity_token.len, 32);
                memcpy(d->token, (*ret)->quoteresp->integrity_token.data, 32);
                d->token_size = 32;
        } else {
                ASSERT_EQ((*ret)->quoteresp->integrity_token.len, 0);
                ASSERT_EQ((*ret)->quoteresp->n_keys, 0);
        }
        return (*ret)->quoteresp->response;
}

/* Sends a quote over PCRs 0–15 with the given nonce; returns the response code, the token and keys in *ret.
 */
int send_quote(Srv *s,
               Dev *d,
               const uint8_t *nonce,
               size_t nonce_size,
               QuoteFlaw flaw,
               Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        Bytes att = {}, gz = {};
        uint8_t concat[16 * 32], digest[32], reported[24][32];
        gnutls_datum_t sig = {};
        int code;

        make_eventlog(d, 0, &gz);
        memcpy(reported, d->pcr, sizeof reported);
        for (unsigned i = 0; i < 16; i++)
                memcpy(concat + 32 * i, d->pcr[i], 32);
        evc_sha256(concat, sizeof concat, digest);
        if (flaw == FLAW_PCR_DIGEST)
                reported[7][0] ^= 1;
        if (flaw == FLAW_EVENTLOG) {
                /* Quote and report a PCR 4 that the log does not produce. */
                reported[4][0] ^= 1;
                memcpy(concat + 32 * 4, reported[4], 32);
                evc_sha256(concat, sizeof concat, digest);
        }

        be(&att, 0xff544347, 4);
        be(&att, 0x8018, 2);
        be(&att, 34, 2);
        be(&att, 0x000b, 2);
        for (int i = 0; i < 32; i++)
                be(&att, 0xab, 1);
        be(&att, nonce_size, 2);
        put(&att, nonce, nonce_size);
        be(&att, (uint64_t) time(NULL) * 1000, 8);
        be(&att, 1, 4);
        be(&att, 0, 4);
        be(&att, 1, 1);
        be(&att, 0x2019062000000000ULL, 8);
        be(&att, 1, 4);
        be(&att, 0x000b, 2);
        be(&att, 3, 1);
        be(&att, 0xff, 1);
        be(&att, 0xff, 1);
        be(&att, 0x00, 1);
        be(&att, 32, 2);
        put(&att, digest, 32);

        sign_der(flaw == FLAW_SIGNATURE ? d->key : d->ak_key, att.b, att.n, &sig);
        code = post_quote(s, d, att.b, att.n, sig.data, sig.size, reported, &gz, ret);
        gnutls_free(sig.data);
        return code;
}

/* NONCE + QUOTE; returns the code; frees the response. */
int attest_once(Srv *s, Dev *d, QuoteFlaw flaw, size_t *ret_keys) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        uint8_t nonce[32];
        int code;

        get_nonce(s, d, nonce);
        code = send_quote(s, d, nonce, sizeof nonce, flaw, &resp);
        if (ret_keys)
                *ret_keys = resp->quoteresp->n_keys;
        return code;
}

int store_keys(Srv *s, Dev *d, const uint8_t *token, size_t token_size, const char *key) {
        const KeyEntry e = { KT_VSK, key, strlen(key) };
        int code = -1;

        ASSERT_EQ(store_entries_token(s, d, token, token_size, &e, 1, &code), 201);
        return code;
}

/* POST config; returns the status; on 200 the config and its hash. */
long get_config(Srv *s,
                Dev *d,
                const char *have_hash,
                const uint8_t *token,
                size_t token_size,
                Org__Lfedge__Eve__Config__ConfigResponse **ret) {
        Org__Lfedge__Eve__Config__ConfigRequest q = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;

        q.confighash = (char *) (have_hash ?: "");
        q.integrity_token = (ProtobufCBinaryData){ .len = token_size, .data = (uint8_t *) token };
        _cleanup_(resp_done) Resp r = dev_post(s, d, "config", &q.base);
        if (r.status != 200) {
                ASSERT_EQ(r.size, 0);
                return r.status;
        }
        open_payload(s,
                     &r,
                     &org__lfedge__eve__config__config_response__descriptor,
                     (ProtobufCMessage **) ret);
        ASSERT_NOT_NULL((*ret)->config);
        return 200;
}

/* Device-side decryption of a cipher block: ECDH with the device ECDH key and the controller ECDH cert. */
char *
                decrypt_block(Srv *s,
                              Dev *d,
                              const Org__Lfedge__Eve__Config__EdgeDevConfig *c,
                              const Org__Lfedge__Eve__Common__CipherBlock *b,
                              int field) {
        _cleanup_(proto_secret_freep) Org__Lfedge__Eve__Common__EncryptionBlock *eb = NULL;
        uint8_t key[32], dh[32], *plain;
        gnutls_x509_crt_t ctrl;
        size_t n;
        char *v;

        ASSERT_NOT_NULL(b);
        ASSERT_EQ(c->n_ciphercontexts, 1);
        ASSERT_STREQ(c->ciphercontexts[0]->contextid, b->ciphercontextid);
        ASSERT_EQ(c->ciphercontexts[0]->keyexchangescheme,
                  ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH);
        ASSERT_EQ(c->ciphercontexts[0]->encryptionscheme,
                  ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB);
        evc_sha256(d->ecdh_pem, strlen(d->ecdh_pem), dh);
        ASSERT_MEMEQ(c->ciphercontexts[0]->devicecerthash.data,
                     c->ciphercontexts[0]->devicecerthash.len,
                     dh,
                     16);
        ASSERT_EQ(c->ciphercontexts[0]->controllercerthash.len, 16);
        ctrl = srv_ecdh_cert(s, c->ciphercontexts[0]->controllercerthash.data);
        ASSERT_NOT_NULL(ctrl); /* the node finds the controller certificate in /certs */
        ASSERT_EQ(b->initialvalue.len, 16);
        ASSERT_OK(evc_ecdh_key(d->ecdh_key, ctrl, key));
        ASSERT_OK(evc_cipher_block_decrypt(key, b, &plain, &n)); /* checks clearTextSha256 */
        ASSERT_OK(PROTO_UNPACK_SECRET(
                        &org__lfedge__eve__common__encryption_block__descriptor, plain, n, 4096, &eb));
        eve_secret_free(plain);
        v = strdup(field == 0 ? eb->wifipassword : field == 1 ? eb->dspassword : eb->protecteduserdata);
        ASSERT_NOT_NULL(v);
        return v;
}

long store_entries(Srv *s, Dev *d, const KeyEntry *entries, size_t n, int *ret_code) {
        return store_entries_token(s, d, d->token, d->token_size, entries, n, ret_code);
}

long store_entries_token(
                Srv *s,
                Dev *d,
                const uint8_t *token,
                size_t token_size,
                const KeyEntry *entries,
                size_t n,
                int *ret_code) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey k[16], *kp[16];
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        long st;

        ASSERT_LE(n, ELEMENTSOF(k));
        for (size_t i = 0; i < n; i++) {
                k[i] = (Org__Lfedge__Eve__Attest__AttestVolumeKey)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT;
                k[i].key_type = (Org__Lfedge__Eve__Attest__AttestVolumeKeyType) entries[i].type;
                k[i].key = (ProtobufCBinaryData){ .len = entries[i].size,
                                                  .data = (uint8_t *) entries[i].data };
                kp[i] = &k[i];
        }
        sk.integrity_token = (ProtobufCBinaryData){ .len = token_size, .data = (uint8_t *) token };
        sk.n_keys = n;
        sk.keys = kp;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        req.storage_keys = &sk;
        st = attest(s, d, &req, &resp);
        if (st != 201)
                return st;
        ASSERT_EQ(resp->resptype,
                  ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS);
        ASSERT_NOT_NULL(resp->storage_keys_resp);
        *ret_code = resp->storage_keys_resp->response;
        return st;
}

void share_request(const char *vault_uuid, uint8_t **ret, size_t *ret_size) {
        Org__Eve__Trust__EveControllerShare m = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;

        m.vault_uuid = (char *) vault_uuid;
        ASSERT_OK(PROTO_PACK(&m, ret, ret_size));
}

void share_open(Srv *s,
                Dev *d,
                const Org__Lfedge__Eve__Attest__AttestVolumeKey *k,
                char ret_vault[static 37],
                uint8_t ret_share[static 32]) {
        _cleanup_(proto_freep) Org__Eve__Trust__EveControllerShare *m = NULL;
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t dk = NULL;
        _cleanup_(eve_secret_freep) uint8_t *xy = NULL;
        _cleanup_free_ char *ad = NULL;
        struct gcm_aes256_ctx c;
        gnutls_x509_crt_t ctrl;
        Tpm2EccPoint peer;
        uint8_t key[32], tag[16];

        ASSERT_EQ((int) k->key_type, KT_SHARE);
        ASSERT_OK(
                        PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor,
                                     k->key.data,
                                     k->key.len,
                                     4096,
                                     &m));
        ASSERT_EQ(strlen(m->vault_uuid), 36);
        ASSERT_EQ(m->controller_cert_hash.len, 16);
        ASSERT_EQ(m->nonce.len, 12);
        ASSERT_EQ(m->sealed_share.len, 32 + 16);
        ctrl = srv_ecdh_cert(s, m->controller_cert_hash.data);
        ASSERT_NOT_NULL(ctrl);
        ASSERT_OK(crypto_cert_point(ctrl, &peer));
        ASSERT_OK(gnutls_privkey_init(&dk));
        ASSERT_OK(gnutls_privkey_import_x509(dk, d->ecdh_key, GNUTLS_PRIVKEY_IMPORT_COPY));
        ASSERT_OK(crypto_ecdh_soft(dk, &peer, &xy));
        evc_sha256(xy, 64, key);
        ASSERT_OK(asprintf(&ad, "eve-trust controller share v1%s", m->vault_uuid));
        gcm_aes256_set_key(&c, key);
        gcm_aes256_set_iv(&c, m->nonce.len, m->nonce.data);
        gcm_aes256_update(&c, strlen(ad), (const uint8_t *) ad);
        gcm_aes256_decrypt(&c, 32, ret_share, m->sealed_share.data);
        gcm_aes256_digest(&c, sizeof tag, tag);
        ASSERT_MEMEQ(tag, sizeof tag, m->sealed_share.data + 32, 16);
        memcpy(ret_vault, m->vault_uuid, 37);
        explicit_bzero(key, sizeof key);
}

Org__Lfedge__Eve__Attest__ZAttestResponse *attest_ok(Srv *s, Dev *d) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        uint8_t nonce[32];

        get_nonce(s, d, nonce);
        ASSERT_EQ(send_quote(s, d, nonce, sizeof nonce, FLAW_NONE, &resp), Q_SUCCESS);
        return resp;
}

Dev *dev_ready(Srv *s, const char *serial) {
        Dev *d = dev_new();

        dev_onboard(s, d, serial);
        ASSERT_EQ(send_certs(s, d, d->ak_pem), 201);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_SUCCESS);
        return d;
}
