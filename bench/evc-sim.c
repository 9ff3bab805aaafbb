/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-sim.h"

#include <time.h>

#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "evetrust.pb-c.h"
#include "proto-util.h"

static int load(const char *path, uint8_t **ret, size_t *ret_size) {
        return evc_read_file(path, ret, ret_size);
}

int sim_device_new(const char *dir, const char *name, SimDevice **ret) {
        _cleanup_free_ char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL, *c3 = NULL, *k3 = NULL;
        SimDevice *d;
        int r;

        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        if (asprintf(&c1, "%s/%s.pem", dir, name) < 0 || asprintf(&k1, "%s/%s-key.pem", dir, name) < 0 ||
            asprintf(&c2, "%s/%s-ak.pem", dir, name) < 0 ||
            asprintf(&k2, "%s/%s-ak-key.pem", dir, name) < 0 ||
            asprintf(&c3, "%s/%s-ecdh.pem", dir, name) < 0 ||
            asprintf(&k3, "%s/%s-ecdh-key.pem", dir, name) < 0) {
                free(d);
                return -ENOMEM;
        }
        if ((r = evc_generate_cert(EVC_CERT_ROOT, name, NULL, NULL, c1, k1, &d->crt, &d->key)) < 0 ||
            (r = evc_generate_cert(EVC_CERT_SIGNING, "attest", d->crt, d->key, c2, k2, &d->ak, &d->ak_key)) <
                            0 ||
            (r = evc_generate_cert(EVC_CERT_ECDH, "ecdh", d->crt, d->key, c3, k3, &d->ecdh, &d->ecdh_key)) <
                            0 ||
            (r = load(c2, &d->ak_pem, &d->ak_pem_size)) < 0 ||
            (r = load(c3, &d->ecdh_pem, &d->ecdh_pem_size)) < 0) {
                sim_device_free(d);
                return r;
        }
        d->cert_path = TAKE_PTR(c1);
        for (unsigned i = 0; i < 24; i++)
                memset(d->pcr[i], (int) i + 1, 32);
        *ret = d;
        return 0;
}

SimDevice *sim_device_free(SimDevice *d) {
        if (!d)
                return NULL;
        if (d->crt)
                gnutls_x509_crt_deinit(d->crt);
        if (d->ak)
                gnutls_x509_crt_deinit(d->ak);
        if (d->ecdh)
                gnutls_x509_crt_deinit(d->ecdh);
        if (d->key)
                gnutls_x509_privkey_deinit(d->key);
        if (d->ak_key)
                gnutls_x509_privkey_deinit(d->ak_key);
        if (d->ecdh_key)
                gnutls_x509_privkey_deinit(d->ecdh_key);
        free(d->ak_pem);
        free(d->ecdh_pem);
        free(d->cert_path);
        return mfree(d);
}

static int seal(SimDevice *d, const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t sig[EVC_ECDSA_RAW_SIZE], h[EVC_SHA256_SIZE];
        size_t n;
        int r;

        if ((r = proto_pack(msg, &payload, &n)) < 0 || (r = evc_sign_raw(d->key, payload, n, sig)) < 0 ||
            (r = evc_crt_der_sha256(d->crt, h)) < 0)
                return r;
        body.payload = (ProtobufCBinaryData){ .len = n, .data = payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData){ .len = sizeof h, .data = h };
        ac.signaturehash = (ProtobufCBinaryData){ .len = sizeof sig, .data = sig };
        return PROTO_PACK(&ac, ret, ret_size);
}

int sim_req_certs(SimDevice *d, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Certs__ZCert c[2] = { ORG__LFEDGE__EVE__CERTS__ZCERT__INIT,
                                                ORG__LFEDGE__EVE__CERTS__ZCERT__INIT };
        Org__Lfedge__Eve__Certs__ZCert *cp[2] = { &c[0], &c[1] };
        uint8_t h0[EVC_SHA256_SIZE], h1[EVC_SHA256_SIZE];

        evc_sha256(d->ecdh_pem, d->ecdh_pem_size, h0);
        evc_sha256(d->ak_pem, d->ak_pem_size, h1);
        c[0].hashalgo = c[1].hashalgo =
                        ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
        c[0].type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ECDH_EXCHANGE;
        c[0].cert = (ProtobufCBinaryData){ .len = d->ecdh_pem_size, .data = d->ecdh_pem };
        c[0].certhash = (ProtobufCBinaryData){ .len = 16, .data = h0 };
        c[1].type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING;
        c[1].cert = (ProtobufCBinaryData){ .len = d->ak_pem_size, .data = d->ak_pem };
        c[1].certhash = (ProtobufCBinaryData){ .len = 16, .data = h1 };
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT;
        req.n_certs = 2;
        req.certs = cp;
        return seal(d, &req.base, ret, ret_size);
}

int sim_req_nonce(SimDevice *d, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;

        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
        return seal(d, &req.base, ret, ret_size);
}

static void be(uint8_t **p, uint64_t v, size_t k) {
        for (size_t i = k; i > 0; i--)
                *(*p)++ = (uint8_t) (v >> (8 * (i - 1)));
}

int sim_req_quote(SimDevice *d, const uint8_t *nonce, size_t nonce_size, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuote q = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        Org__Lfedge__Eve__Attest__TpmPCRValue v[24], *vp[24];
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t pk = NULL;
        _cleanup_(gnutls_datum_freep) gnutls_datum_t sig = {};
        uint8_t att[256], *p = att, digest[EVC_SHA256_SIZE], dg[EVC_SHA256_SIZE];
        gnutls_datum_t h = { .data = dg, .size = sizeof dg };

        if (nonce_size > 64)
                return -EINVAL;
        /* TPMS_ATTEST of a TPM2_Quote: magic, type, qualifiedSigner, extraData = the nonce, clock info,
         * firmware version, one SHA-256 selection of PCRs 0–15 and its digest. */
        evc_sha256(d->pcr, 16 * 32, digest);
        be(&p, 0xff544347, 4);
        be(&p, 0x8018, 2);
        be(&p, 0, 2);
        be(&p, nonce_size, 2);
        memcpy(p, nonce, nonce_size);
        p += nonce_size;
        be(&p, (uint64_t) time(NULL) * 1000, 8);
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
        if (gnutls_privkey_init(&pk) < 0 || gnutls_privkey_import_x509(pk, d->ak_key, 0) < 0 ||
            gnutls_privkey_sign_hash(pk, GNUTLS_DIG_SHA256, 0, &h, &sig) < 0) /* DER, as a TPM's via EVE */
                return -EIO;
        for (unsigned i = 0; i < 24; i++) {
                v[i] = (Org__Lfedge__Eve__Attest__TpmPCRValue) ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT;
                v[i].index = i;
                v[i].hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
                v[i].value = (ProtobufCBinaryData){ .len = 32, .data = d->pcr[i] };
                vp[i] = &v[i];
        }
        q.attestdata = (ProtobufCBinaryData){ .len = (size_t) (p - att), .data = att };
        q.signature = (ProtobufCBinaryData){ .len = sig.size, .data = sig.data };
        q.n_pcr_values = 24;
        q.pcr_values = vp;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE;
        req.quote = &q;
        return seal(d, &req.base, ret, ret_size);
}

int sim_req_store_keys(
                SimDevice *d, const char *escrow, const char *share_vault, uint8_t **ret, size_t *ret_size) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey k[2] = {
                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT,
                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT
        };
        Org__Lfedge__Eve__Attest__AttestVolumeKey *kp[2] = { &k[0], &k[1] };
        Org__Eve__Trust__EveControllerShare share = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;
        _cleanup_free_ uint8_t *share_req = NULL;
        size_t share_req_size = 0;
        int r;

        k[0].key_type = (Org__Lfedge__Eve__Attest__AttestVolumeKeyType)
                        ORG__EVE__TRUST__EVE_TRUST_VOLUME_KEY_TYPE__EVE_TRUST_VAULT_ESCROW;
        k[0].key = (ProtobufCBinaryData){ .len = strlen(escrow), .data = (uint8_t *) escrow };
        sk.n_keys = 1;
        if (share_vault) {
                share.vault_uuid = (char *) share_vault;
                r = PROTO_PACK(&share, &share_req, &share_req_size);
                if (r < 0)
                        return r;
                k[1].key_type = (Org__Lfedge__Eve__Attest__AttestVolumeKeyType)
                                ORG__EVE__TRUST__EVE_TRUST_VOLUME_KEY_TYPE__EVE_TRUST_CONTROLLER_SHARE_REQUEST;
                k[1].key = (ProtobufCBinaryData){ .len = share_req_size, .data = share_req };
                sk.n_keys = 2;
        }
        sk.integrity_token = (ProtobufCBinaryData){ .len = d->have_token ? sizeof d->token : 0,
                                                    .data = d->token };
        sk.keys = kp;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        req.storage_keys = &sk;
        return seal(d, &req.base, ret, ret_size);
}

int sim_open_attest(
                gnutls_x509_crt_t signing,
                const void *body,
                size_t size,
                Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        uint8_t digest[EVC_SHA256_SIZE];

        if (PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, body, size, 1 << 20, &ac) <
                            0 ||
            !ac->protectedpayload)
                return -EBADMSG;
        if (signing) {
                evc_sha256(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, digest);
                if (evc_verify_digest(signing, digest, ac->signaturehash.data, ac->signaturehash.len) < 0)
                        return -EBADMSG;
        }
        if (PROTO_UNPACK(&org__lfedge__eve__attest__zattest_response__descriptor,
                         ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len,
                         1 << 20,
                         ret) < 0)
                return -EBADMSG;
        return 0;
}
