/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-bench: how fast evc verifies attestations, next to the floor it cannot beat. Runs the verifier in
 * process (no TLS, no HTTP): each round is a NONCE request and a QUOTE request, both signed AuthContainers, with
 * a software-signed TPMS_ATTEST over PCRs 0–15 and 24 reported PCRs; every request commits its SQLite
 * transaction (WAL, synchronous=FULL) and signs its response. The floor is one raw ECDSA P-256 verification with
 * GnuTLS (a round needs three: two envelopes and the quote; plus two signatures).
 * Usage: evc-bench [SECONDS] (default 3 per measurement). Not a test. */
#include <ftw.h>
#include <microhttpd.h>
#include <time.h>

#include "attest.pb-c.h"
#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "evc-server.h"
#include "evc.h"
#include "log.h"
#include "proto-util.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static gnutls_x509_crt_t dev_crt, ak_crt;
static gnutls_x509_privkey_t dev_key, ak_key;
static uint8_t pcrs[24][32];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static int die(const char *what) {
        fprintf(stderr, "evc-bench: %s failed\n", what);
        exit(EXIT_FAILURE);
}

static void seal(const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t sig[64], h[32];
        size_t n;

        if (proto_pack(msg, &payload, &n) < 0 || evc_sign_raw(dev_key, payload, n, sig) < 0 ||
            evc_crt_der_sha256(dev_crt, h) < 0)
                die("seal");
        body.payload = (ProtobufCBinaryData) { .len = n, .data = payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData) { .len = 32, .data = h };
        ac.signaturehash = (ProtobufCBinaryData) { .len = 64, .data = sig };
        if (PROTO_PACK(&ac, ret, ret_size) < 0)
                die("pack");
}

static Org__Lfedge__Eve__Attest__ZAttestResponse *call(Evc *e, const char *uuid,
                const Org__Lfedge__Eve__Attest__ZAttestReq *req) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        _cleanup_free_ uint8_t *b = NULL;
        EvcReply reply = {};
        size_t n;

        seal(&req->base, &b, &n);
        if (evc_handle_attest(e, uuid, b, n, &reply) != MHD_HTTP_CREATED)
                die("attest request");
        if (PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, reply.body, reply.size, 1 << 20, &ac) <
                    0 ||
            PROTO_UNPACK(&org__lfedge__eve__attest__zattest_response__descriptor, ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len, 1 << 20, &resp) < 0)
                die("response");
        evc_reply_done(&reply);
        return resp;
}

static void be(uint8_t **p, uint64_t v, size_t k) {
        for (size_t i = k; i > 0; i--)
                *(*p)++ = (uint8_t) (v >> (8 * (i - 1)));
}

static int round_trip(Evc *e, const char *uuid) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuote q = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        Org__Lfedge__Eve__Attest__TpmPCRValue v[24], *vp[24];
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp;
        uint8_t att[256], *p = att, digest[32], nonce[32], dg[32];
        gnutls_privkey_t pk;
        gnutls_datum_t sig = {}, h = { .data = dg, .size = 32 };
        int code;

        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
        resp = call(e, uuid, &req);
        memcpy(nonce, resp->nonce->nonce.data, 32);
        proto_free(resp);

        evc_sha256(pcrs, 16 * 32, digest);
        be(&p, 0xff544347, 4);
        be(&p, 0x8018, 2);
        be(&p, 0, 2);
        be(&p, 32, 2);
        memcpy(p, nonce, 32);
        p += 32;
        be(&p, 1, 8);
        be(&p, 1, 4);
        be(&p, 0, 4);
        be(&p, 1, 1);
        be(&p, 1, 8);
        be(&p, 1, 4);
        be(&p, 0x000b, 2);
        be(&p, 3, 1);
        be(&p, 0xffff00, 3);
        be(&p, 32, 2);
        memcpy(p, digest, 32);
        p += 32;
        evc_sha256(att, (size_t) (p - att), dg);
        if (gnutls_privkey_init(&pk) < 0 || gnutls_privkey_import_x509(pk, ak_key, 0) < 0 ||
            gnutls_privkey_sign_hash(pk, GNUTLS_DIG_SHA256, 0, &h, &sig) < 0)
                die("quote signature");
        gnutls_privkey_deinit(pk);
        for (unsigned i = 0; i < 24; i++) {
                v[i] = (Org__Lfedge__Eve__Attest__TpmPCRValue) ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT;
                v[i].index = i;
                v[i].hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
                v[i].value = (ProtobufCBinaryData) { .len = 32, .data = pcrs[i] };
                vp[i] = &v[i];
        }
        q.attestdata = (ProtobufCBinaryData) { .len = (size_t) (p - att), .data = att };
        q.signature = (ProtobufCBinaryData) { .len = sig.size, .data = sig.data };
        q.n_pcr_values = 24;
        q.pcr_values = vp;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE;
        req.quote = &q;
        resp = call(e, uuid, &req);
        gnutls_free(sig.data);
        code = resp->quoteresp->response;
        proto_free(resp);
        return code;
}

int main(int argc, char **argv) {
        char dir[] = "/tmp/evc-bench.XXXXXX";
        _cleanup_(evc_freep) Evc *e = NULL;
        _cleanup_free_ char *uuid = NULL, *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;
        _cleanup_free_ uint8_t *dev_pem = NULL, *ak_pem = NULL;
        size_t dev_pem_n, ak_pem_n;
        double secs = argc > 1 ? atof(argv[1]) : 3.0, t0, t;
        unsigned long rounds = 0, verifies = 0;
        uint8_t digest[32], sig[64];

        log_set_max_level(LOG_WARNING);
        if (secs <= 0)
                secs = 3.0;
        if (!mkdtemp(dir) || evc_init_dir(dir) < 0 || evc_load(dir, &e) < 0)
                die("controller setup");
        if (asprintf(&c1, "%s/dev.pem", dir) < 0 || asprintf(&k1, "%s/dev-key.pem", dir) < 0 ||
            asprintf(&c2, "%s/ak.pem", dir) < 0 || asprintf(&k2, "%s/ak-key.pem", dir) < 0)
                die("asprintf");
        if (evc_generate_cert(EVC_CERT_ROOT, "bench device", NULL, NULL, c1, k1, &dev_crt, &dev_key) < 0 ||
            evc_generate_cert(EVC_CERT_SIGNING, "bench ak", dev_crt, dev_key, c2, k2, &ak_crt, &ak_key) < 0 ||
            evc_read_file(c1, &dev_pem, &dev_pem_n) < 0 || evc_read_file(c2, &ak_pem, &ak_pem_n) < 0 ||
            evc_device_add(e, (const char *) dev_pem, dev_pem_n, "BENCH", &uuid) < 0)
                die("device setup");
        for (unsigned i = 0; i < 24; i++)
                memset(pcrs[i], (int) i + 1, 32);
        {
                Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
                Org__Lfedge__Eve__Certs__ZCert c = ORG__LFEDGE__EVE__CERTS__ZCERT__INIT, *cp = &c;

                c.type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING;
                c.cert = (ProtobufCBinaryData) { .len = ak_pem_n, .data = ak_pem };
                req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT;
                req.n_certs = 1;
                req.certs = &cp;
                proto_free(call(e, uuid, &req));
        }
        if (round_trip(e, uuid) != ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS)
                die("first attestation");

        t0 = now_s();
        do {
                if (round_trip(e, uuid) !=
                    ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS)
                        die("attestation");
                rounds++;
                t = now_s() - t0;
        } while (t < secs);
        double rate = (double) rounds / t;

        if (evc_sign_raw(ak_key, "x", 1, sig) < 0)
                die("sign");
        evc_sha256("x", 1, digest);
        t0 = now_s();
        do {
                for (int i = 0; i < 100; i++)
                        if (evc_verify_digest(ak_crt, digest, sig, sizeof sig) < 0)
                                die("verify");
                verifies += 100;
                t = now_s() - t0;
        } while (t < secs);
        double vrate = (double) verifies / t;

        printf("evc attestation (NONCE + QUOTE, 3 ECDSA verifies, 2 signs, 2 SQLite commits, in process): "
               "%.0f rounds/s (%.2f ms each)\n",
               rate, 1000.0 / rate);
        printf("raw ECDSA P-256 verify (GnuTLS):                                             %.0f/s (%.3f ms each)\n",
               vrate, 1000.0 / vrate);
        printf("ratio: one attestation round costs %.1f raw verifies\n", vrate / rate);

        gnutls_x509_crt_deinit(dev_crt);
        gnutls_x509_crt_deinit(ak_crt);
        gnutls_x509_privkey_deinit(dev_key);
        gnutls_x509_privkey_deinit(ak_key);
        e = evc_free(e);
        (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
