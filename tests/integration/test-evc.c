/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc end to end: the real "evc serve" over TLS on 127.0.0.1 (port 0, read back), a node-side client written here
 * with libcurl (GnuTLS, the controller root pinned) and software device keys. Quotes are software-signed
 * TPMS_ATTEST structures built here (same bytes a TPM2_Quote produces, signed by a software attestation key),
 * with a gzip crypto-agile event log that replays to the reported PCRs 0 and 4. */
#include <curl/curl.h>
#include <json-c/json.h>
#include <signal.h>
#include <sqlite3.h>
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
#include "eveuuid.pb-c.h"
#include "fixtures.h"
#include "info.pb-c.h"
#include "memory-util.h"
#include "proto-util.h"
#include "register.pb-c.h"

/* ---- the controller process ---- */

typedef struct Srv {
        char *dir;
        char *root_pem;
        pid_t pid;
        unsigned port;
        gnutls_x509_crt_t signing; /* from /certs, checked against root.pem */
        gnutls_x509_crt_t ecdh;
        uint8_t signing_hash[32];
        uint8_t ecdh_hash[16];
        CURL *curl; /* kept: connections are reused, as the node's client does */
} Srv;

static char *evc_path(void) {
        const char *b = getenv("EVE_TEST_BUILDDIR");
        char *p;
        ASSERT_NOT_NULL(b);
        ASSERT_OK(asprintf(&p, "%s/controller/evc", b));
        return p;
}

/* Runs "evc ARGS… --dir DIR"; returns its exit status; stdout in *out when out != NULL. */
static int evc_admin(Srv *s, char **out, ...) {
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
#define EVC(s, out, ...) evc_admin(s, out, __VA_ARGS__, NULL)

static char *read_log(const char *path) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;
        return evc_read_file(path, &b, &n) < 0 ? NULL : (char *) TAKE_PTR(b);
}

static int srv_stop(void *p) {
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
        if (s->ecdh)
                gnutls_x509_crt_deinit(s->ecdh);
        free(s->dir);
        free(s->root_pem);
        free(s);
        return r < 0 ? r : 0;
}

static void srv_serve(Srv *s, const char *nonce_ttl) {
        _cleanup_free_ char *evc = evc_path(), *portf = NULL, *logf = NULL;
        char *argv[] = { evc, (char *) "serve", (char *) "--dir", s->dir, (char *) "--listen", (char *) "127.0.0.1:0",
                         (char *) "--port-file", NULL, (char *) "--body-max", (char *) "65536",
                         nonce_ttl ? (char *) "--nonce-ttl" : NULL, (char *) nonce_ttl, NULL };

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

static Srv *srv_start(const char *nonce_ttl) {
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

typedef struct Resp {
        long status;
        uint8_t *body;
        size_t size;
        char *ctype;
} Resp;

static void resp_done(Resp *r) {
        free(r->body);
        free(r->ctype);
        *r = (Resp) {};
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

static Resp http(Srv *s, const char *path, const void *body, size_t n, const char *ctype) {
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
static Org__Lfedge__Eve__Auth__AuthContainer *open_signed(Srv *s, const Resp *r) {
        Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        uint8_t digest[32];

        ASSERT_STREQ(r->ctype, "application/x-proto-binary");
        ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, r->body, r->size, 1 << 20, &ac));
        ASSERT_NOT_NULL(ac->protectedpayload);
        ASSERT_EQ(ac->algo, ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES);
        ASSERT_MEMEQ(ac->sendercerthash.data, ac->sendercerthash.len, s->signing_hash, 32);
        ASSERT_EQ(ac->signaturehash.len, 64); /* raw r‖s */
        evc_sha256(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, digest);
        ASSERT_OK(evc_verify_digest(s->signing, digest, ac->signaturehash.data, ac->signaturehash.len));
        return ac;
}

static void fetch_certs(Srv *s) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *zc = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL;
        _cleanup_(resp_done) Resp r = http(s, "certs", NULL, 0, NULL);

        ASSERT_EQ(r.status, 200);
        ASSERT_OK(evc_load_crt_file(s->root_pem, &root));
        /* The envelope is checked after the signing certificate is known (EVE checks chains, not this one). */
        {
                Org__Lfedge__Eve__Auth__AuthContainer *raw = NULL;
                ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, r.body, r.size, 1 << 20,
                                       &raw));
                ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__certs__zcontroller_cert__descriptor,
                                       raw->protectedpayload->payload.data, raw->protectedpayload->payload.len,
                                       1 << 20, &zc));
                proto_free(raw);
        }
        ASSERT_EQ(zc->n_certs, 2);
        for (size_t i = 0; i < zc->n_certs; i++) {
                const Org__Lfedge__Eve__Certs__ZCert *c = zc->certs[i];
                uint8_t h[32];
                gnutls_x509_crt_t crt = NULL;

                evc_sha256(c->cert.data, c->cert.len, h);
                ASSERT_EQ(c->hashalgo, ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES);
                ASSERT_MEMEQ(c->certhash.data, c->certhash.len, h, 16);
                ASSERT_OK(evc_load_crt_pem(c->cert.data, c->cert.len, &crt));
                ASSERT_OK(evc_verify_chain(crt, root));
                if (c->type == ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING) {
                        if (s->signing)
                                gnutls_x509_crt_deinit(s->signing);
                        s->signing = crt;
                        memcpy(s->signing_hash, h, 32);
                } else {
                        ASSERT_EQ(c->type, ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_ECDH_EXCHANGE);
                        if (s->ecdh)
                                gnutls_x509_crt_deinit(s->ecdh);
                        s->ecdh = crt;
                        memcpy(s->ecdh_hash, h, 16);
                }
        }
        ASSERT_NOT_NULL(s->signing);
        ASSERT_NOT_NULL(s->ecdh);
        ac = open_signed(s, &r);
}

/* ---- the device ---- */

typedef struct Onb {
        gnutls_x509_crt_t crt;
        gnutls_x509_privkey_t key;
        char *pem, *path;
} Onb;

typedef struct Dev {
        gnutls_x509_crt_t crt, ecdh, ak;
        gnutls_x509_privkey_t key, ecdh_key, ak_key;
        char *pem, *ecdh_pem, *ak_pem, *cert_path;
        Onb *onb, *own_onb;
        uint8_t hash[32];
        char uuid[37];
        uint8_t token[32];
        size_t token_size;
        uint8_t pcr[24][32]; /* what this device reports */
        bool gps;
        double lat, lon;
} Dev;

static char *read_text(const char *path) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;
        ASSERT_OK(evc_read_file(path, &b, &n));
        return (char *) TAKE_PTR(b);
}

static void gen(const char *dir, const char *name, EvcCertKind kind, gnutls_x509_crt_t issuer,
                gnutls_x509_privkey_t issuer_key, gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key, char **pem,
                char **path) {
        _cleanup_free_ char *c = NULL, *k = NULL;

        ASSERT_OK(asprintf(&c, "%s/%s.pem", dir, name));
        ASSERT_OK(asprintf(&k, "%s/%s-key.pem", dir, name));
        ASSERT_OK(evc_generate_cert(kind, name, issuer, issuer_key, c, k, crt, key));
        *pem = read_text(c);
        if (path)
                *path = TAKE_PTR(c);
}

static int dev_free(void *p) {
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
static Dev *dev_new(void) {
        _cleanup_free_ char *dir = test_mkdtemp("dev");
        Dev *d = calloc(1, sizeof *d);

        ASSERT_NOT_NULL(d);
        gen(dir, "device", EVC_CERT_ROOT, NULL, NULL, &d->crt, &d->key, &d->pem, &d->cert_path);
        gen(dir, "ecdh", EVC_CERT_ECDH, d->crt, d->key, &d->ecdh, &d->ecdh_key, &d->ecdh_pem, NULL);
        gen(dir, "attest", EVC_CERT_SIGNING, d->crt, d->key, &d->ak, &d->ak_key, &d->ak_pem, NULL);
        d->onb = d->own_onb = calloc(1, sizeof(Onb));
        ASSERT_NOT_NULL(d->onb);
        gen(dir, "onboard", EVC_CERT_ROOT, NULL, NULL, &d->onb->crt, &d->onb->key, &d->onb->pem, &d->onb->path);
        ASSERT_OK(evc_crt_der_sha256(d->crt, d->hash));
        for (unsigned i = 0; i < 24; i++)
                memset(d->pcr[i], 0x40 + (int) i, 32);
        test_defer(dev_free, d);
        return d;
}

/* Wraps payload in an AuthContainer signed by key, as the device does. */
static void seal_container(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *sender_pem,
                const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_free_ uint8_t *payload = NULL;
        _cleanup_free_ char *b64 = NULL;
        uint8_t sig[64], h[32];
        size_t n;

        ASSERT_OK(proto_pack(msg, &payload, &n));
        ASSERT_OK(evc_sign_raw(key, payload, n, sig));
        ASSERT_OK(evc_crt_der_sha256(crt, h));
        body.payload = (ProtobufCBinaryData) { .len = n, .data = payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData) { .len = 32, .data = h };
        ac.signaturehash = (ProtobufCBinaryData) { .len = 64, .data = sig };
        if (sender_pem) {
                b64 = base64_encode(sender_pem, strlen(sender_pem));
                ac.sendercert = (ProtobufCBinaryData) { .len = strlen(b64), .data = (uint8_t *) b64 };
        }
        ASSERT_OK(PROTO_PACK(&ac, ret, ret_size));
}

static Resp dev_post(Srv *s, Dev *d, const char *action, const ProtobufCMessage *msg) {
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

static long dev_register(Srv *s, Dev *d, const char *serial) {
        Org__Lfedge__Eve__Register__ZRegisterMsg m = ORG__LFEDGE__EVE__REGISTER__ZREGISTER_MSG__INIT;
        _cleanup_free_ char *b64 = base64_encode(d->pem, strlen(d->pem));
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;

        m.pemcert = (ProtobufCBinaryData) { .len = strlen(b64), .data = (uint8_t *) b64 };
        m.serial = (char *) serial;
        seal_container(d->onb->crt, d->onb->key, d->onb->pem, &m.base, &b, &n);
        _cleanup_(resp_done) Resp r = http(s, "register", b, n, NULL);
        ASSERT_EQ(r.size, 0);
        return r.status;
}

static long dev_uuid(Srv *s, Dev *d) {
        Org__Lfedge__Eve__Uuid__UuidRequest q = ORG__LFEDGE__EVE__UUID__UUID_REQUEST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidResponse *u = NULL;
        _cleanup_(resp_done) Resp r = dev_post(s, d, "uuid", &q.base);

        if (r.status != 200)
                return r.status;
        ac = open_signed(s, &r);
        ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__uuid__uuid_response__descriptor, ac->protectedpayload->payload.data,
                               ac->protectedpayload->payload.len, 4096, &u));
        ASSERT_EQ(strlen(u->uuid), 36);
        memcpy(d->uuid, u->uuid, 37);
        return 200;
}

/* Onboards d with a fresh serial: allow list + /register + /uuid. */
static void dev_onboard(Srv *s, Dev *d, const char *serial) {
        ASSERT_EQ(EVC(s, NULL, "onboard", "allow", serial, "--cert", d->onb->path), 0);
        ASSERT_EQ(dev_register(s, d, serial), 201);
        ASSERT_EQ(dev_uuid(s, d), 200);
}

/* POST attest; returns the HTTP status; on 201 the checked response in *ret. */
static long attest(Srv *s, Dev *d, const Org__Lfedge__Eve__Attest__ZAttestReq *req,
                Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(resp_done) Resp r = dev_post(s, d, "attest", &req->base);

        if (r.status != 201)
                return r.status;
        ac = open_signed(s, &r);
        ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__attest__zattest_response__descriptor,
                               ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, 1 << 20, ret));
        return 201;
}

static long send_certs(Srv *s, Dev *d, const char *ak_pem) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Certs__ZCert c[2] = { ORG__LFEDGE__EVE__CERTS__ZCERT__INIT, ORG__LFEDGE__EVE__CERTS__ZCERT__INIT };
        Org__Lfedge__Eve__Certs__ZCert *cp[2] = { &c[0], &c[1] };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        uint8_t h0[32], h1[32];
        long st;

        evc_sha256(d->ecdh_pem, strlen(d->ecdh_pem), h0);
        evc_sha256(ak_pem, strlen(ak_pem), h1);
        c[0].hashalgo = c[1].hashalgo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
        c[0].type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ECDH_EXCHANGE;
        c[0].cert = (ProtobufCBinaryData) { .len = strlen(d->ecdh_pem), .data = (uint8_t *) d->ecdh_pem };
        c[0].certhash = (ProtobufCBinaryData) { .len = 16, .data = h0 };
        c[1].type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING;
        c[1].cert = (ProtobufCBinaryData) { .len = strlen(ak_pem), .data = (uint8_t *) ak_pem };
        c[1].certhash = (ProtobufCBinaryData) { .len = 16, .data = h1 };
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT;
        req.n_certs = 2;
        req.certs = cp;
        st = attest(s, d, &req, &resp);
        if (st == 201)
                ASSERT_EQ(resp->resptype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT);
        return st;
}

static void get_nonce(Srv *s, Dev *d, uint8_t nonce[32]) {
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

typedef struct Bytes {
        uint8_t b[4096];
        size_t n;
} Bytes;

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

/* A crypto-agile event log with two events for PCR 0 and one for PCR 4; sets the device's PCRs 0 and 4 to match. */
static void make_eventlog(Dev *d, uint8_t tag, Bytes *gz) {
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

typedef enum QuoteFlaw {
        FLAW_NONE,
        FLAW_SIGNATURE,   /* signed by a key that is not the attestation key */
        FLAW_PCR_DIGEST,  /* reported PCR values differ from what was quoted */
        FLAW_EVENTLOG,    /* the event log does not replay to the reported PCR 4 */
} QuoteFlaw;

/* ECDSA over SHA-256(attestData), DER, as the TPM's signature is sent. */
static void sign_der(gnutls_x509_privkey_t key, const uint8_t *p, size_t n, gnutls_datum_t *sig) {
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
static int post_quote(Srv *s, Dev *d, const uint8_t *att, size_t att_n, const uint8_t *sig, size_t sig_n,
                uint8_t reported[24][32], const Bytes *gz, Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuote q = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        Org__Lfedge__Eve__Attest__TpmPCRValue v[24], *vp[24];
        Org__Lfedge__Eve__Attest__AttestGPSCoordinates gps = ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSCOORDINATES__INIT;

        for (unsigned i = 0; i < 24; i++) {
                v[i] = (Org__Lfedge__Eve__Attest__TpmPCRValue) ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT;
                v[i].index = i;
                v[i].hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
                v[i].value = (ProtobufCBinaryData) { .len = 32, .data = reported[i] };
                vp[i] = &v[i];
        }
        q.attestdata = (ProtobufCBinaryData) { .len = att_n, .data = (uint8_t *) att };
        q.signature = (ProtobufCBinaryData) { .len = sig_n, .data = (uint8_t *) sig };
        q.n_pcr_values = 24;
        q.pcr_values = vp;
        if (gz)
                q.tpm_binary_event_log = (ProtobufCBinaryData) { .len = gz->n, .data = (uint8_t *) gz->b };
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
        if ((*ret)->quoteresp->response == ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS) {
                ASSERT_EQ((*ret)->quoteresp->integrity_token.len, 32);
                memcpy(d->token, (*ret)->quoteresp->integrity_token.data, 32);
                d->token_size = 32;
        } else {
                ASSERT_EQ((*ret)->quoteresp->integrity_token.len, 0);
                ASSERT_EQ((*ret)->quoteresp->n_keys, 0);
        }
        return (*ret)->quoteresp->response;
}

/* Sends a quote over PCRs 0–15 with the given nonce; returns the response code, the token and keys in *ret. */
static int send_quote(Srv *s, Dev *d, const uint8_t *nonce, size_t nonce_size, QuoteFlaw flaw,
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

#define Q_SUCCESS ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS
#define Q_NONCE ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NONCE_MISMATCH
#define Q_NOCERT ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NO_CERT_FOUND
#define Q_FAILED ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_QUOTE_FAILED

/* NONCE + QUOTE; returns the code; frees the response. */
static int attest_once(Srv *s, Dev *d, QuoteFlaw flaw, size_t *ret_keys) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        uint8_t nonce[32];
        int code;

        get_nonce(s, d, nonce);
        code = send_quote(s, d, nonce, sizeof nonce, flaw, &resp);
        if (ret_keys)
                *ret_keys = resp->quoteresp->n_keys;
        return code;
}

static int store_keys(Srv *s, Dev *d, const uint8_t *token, size_t token_size, const char *key) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey k = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT, *kp = &k;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;

        k.key_type = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_TYPE__ATTEST_VOLUME_KEY_TYPE_VSK;
        k.key = (ProtobufCBinaryData) { .len = strlen(key), .data = (uint8_t *) key };
        sk.integrity_token = (ProtobufCBinaryData) { .len = token_size, .data = (uint8_t *) token };
        sk.n_keys = 1;
        sk.keys = &kp;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        req.storage_keys = &sk;
        ASSERT_EQ(attest(s, d, &req, &resp), 201);
        ASSERT_EQ(resp->resptype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS);
        ASSERT_NOT_NULL(resp->storage_keys_resp);
        return resp->storage_keys_resp->response;
}

/* POST config; returns the status; on 200 the config and its hash. */
static long get_config(Srv *s, Dev *d, const char *have_hash, const uint8_t *token, size_t token_size,
                Org__Lfedge__Eve__Config__ConfigResponse **ret) {
        Org__Lfedge__Eve__Config__ConfigRequest q = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;

        q.confighash = (char *) (have_hash ?: "");
        q.integrity_token = (ProtobufCBinaryData) { .len = token_size, .data = (uint8_t *) token };
        _cleanup_(resp_done) Resp r = dev_post(s, d, "config", &q.base);
        if (r.status != 200) {
                ASSERT_EQ(r.size, 0);
                return r.status;
        }
        ac = open_signed(s, &r);
        ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__config__config_response__descriptor,
                               ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, 1 << 20, ret));
        ASSERT_NOT_NULL((*ret)->config);
        return 200;
}

/* Device-side decryption of a cipher block: ECDH with the device ECDH key and the controller ECDH cert. */
static char *decrypt_block(Srv *s, Dev *d, const Org__Lfedge__Eve__Config__EdgeDevConfig *c,
                const Org__Lfedge__Eve__Common__CipherBlock *b, int field) {
        _cleanup_(proto_secret_freep) Org__Lfedge__Eve__Common__EncryptionBlock *eb = NULL;
        uint8_t key[32], dh[32], *plain;
        size_t n;
        char *v;

        ASSERT_NOT_NULL(b);
        ASSERT_EQ(c->n_ciphercontexts, 1);
        ASSERT_STREQ(c->ciphercontexts[0]->contextid, b->ciphercontextid);
        ASSERT_EQ(c->ciphercontexts[0]->keyexchangescheme, ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH);
        ASSERT_EQ(c->ciphercontexts[0]->encryptionscheme, ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB);
        evc_sha256(d->ecdh_pem, strlen(d->ecdh_pem), dh);
        ASSERT_MEMEQ(c->ciphercontexts[0]->devicecerthash.data, c->ciphercontexts[0]->devicecerthash.len, dh, 16);
        ASSERT_MEMEQ(c->ciphercontexts[0]->controllercerthash.data, c->ciphercontexts[0]->controllercerthash.len,
                     s->ecdh_hash, 16);
        ASSERT_EQ(b->initialvalue.len, 16);
        ASSERT_OK(evc_ecdh_key(d->ecdh_key, s->ecdh, key));
        ASSERT_OK(evc_cipher_block_decrypt(key, b, &plain, &n)); /* checks clearTextSha256 */
        ASSERT_OK(PROTO_UNPACK_SECRET(&org__lfedge__eve__common__encryption_block__descriptor, plain, n, 4096, &eb));
        eve_secret_free(plain);
        v = strdup(field == 0 ? eb->wifipassword : field == 1 ? eb->dspassword : eb->protecteduserdata);
        ASSERT_NOT_NULL(v);
        return v;
}

/* ---- the tests ---- */

TEST(evc_certs_register_uuid) {
        Srv *s = srv_start(NULL);
        Dev *d = dev_new(), *d2 = dev_new(), *pre = dev_new();
        _cleanup_free_ char *out = NULL;

        fetch_certs(s);

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
        {
                uint8_t nonce[32];
                get_nonce(s, d, nonce);
        }
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

        /* Restarted, it carries on where it was. */
        srv_serve(s, NULL);
        {
                size_t keys = 0;
                ASSERT_EQ(attest_once(s, d, FLAW_NONE, &keys), Q_SUCCESS);
                ASSERT_EQ(keys, 1);
        }
}

DEFINE_TEST_MAIN
