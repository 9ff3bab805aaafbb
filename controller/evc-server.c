/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-server.c: the HTTPS API (libmicrohttpd + GnuTLS), AuthContainer checks, onboarding and config. The
 * attestation verifier is in evc-verifier.c. Every malformed request is a 4xx with its reason logged. */
#include "evc-server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "config.pb-c.h"
#include "encoding.h"
#include "evc-config.h"
#include "evc-keys.h"
#include "eveuuid.pb-c.h"
#include "info.pb-c.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"
#include "register.pb-c.h"

#define API_PREFIX "/api/v2/edgedevice/"
#define CONTENT_TYPE "application/x-proto-binary"

void evc_reply_done(EvcReply *r) {
        if (r->secret)
                eve_secret_free(r->body);
        else
                free(r->body);
        r->body = NULL;
        r->size = 0;
}

static int reply_sign(
                Evc *e, unsigned status, const uint8_t *payload, size_t n, bool secret, EvcReply *ret) {
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_(evc_keys_unrefp) EvcKeys *keys = NULL;
        uint8_t sig[EVC_ECDSA_RAW_SIZE];
        int r;

        r = evc_keys_get(e, &keys);
        if (r < 0)
                return r;
        r = evc_sign_raw_pk(keys->signer, payload, n, sig);
        if (r < 0)
                return r;
        body.payload = (ProtobufCBinaryData){ .len = n, .data = (uint8_t *) payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        /* SHA-256 of the signing certificate's PEM as /certs serves it. */
        ac.sendercerthash = (ProtobufCBinaryData){ .len = EVC_SHA256_SIZE, .data = keys->signing.hash };
        ac.signaturehash = (ProtobufCBinaryData){ .len = sizeof sig, .data = sig };
        r = secret ? PROTO_PACK_SECRET(&ac, &ret->body, &ret->size)
                   : PROTO_PACK(&ac, &ret->body, &ret->size);
        if (r < 0)
                return r;
        ret->secret = secret;
        ret->status = status;
        return 0;
}

int evc_reply_signed(Evc *e, unsigned status, const ProtobufCMessage *msg, EvcReply *ret) {
        _cleanup_free_ uint8_t *payload = NULL;
        size_t n;
        int r;

        r = proto_pack(msg, &payload, &n);
        if (r < 0)
                return r;
        return reply_sign(e, status, payload, n, false, ret);
}

int evc_reply_signed_secret(Evc *e, unsigned status, const uint8_t *payload, size_t n, EvcReply *ret) {
        return reply_sign(e, status, payload, n, true, ret);
}

unsigned evc_reject(EvcReply *reply, unsigned status, const char *fmt, ...) {
        va_list ap;
        _cleanup_free_ char *m = NULL;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        log_notice("Refused with %u: %s", status, m ?: "?");
        reply->status = status;
        return status;
}

void evc_device_done(EvcDevice *d) {
        evc_crt_unref(d->crt);
        free(d->trust);
        *d = (EvcDevice) {};
}

/* Loads a device row; 0 or -ENOENT. */
static int device_load(Evc *e, const char *col, const void *key, size_t key_size, EvcDevice *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        EvcDevice d = {};
        int r;

        if (asprintf(&sql, "SELECT id, uuid, cert_pem, revoked, registered, trust FROM devices WHERE %s = ?", col) < 0)
                return -ENOMEM;
        r = evc_prepare(evc_db(e), sql, &st);
        if (r < 0)
                return r;
        if (key_size > 0)
                sqlite3_bind_blob(st, 1, key, (int) key_size, SQLITE_TRANSIENT);
        else
                sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        d.id = sqlite3_column_int64(st, 0);
        snprintf(d.uuid, sizeof d.uuid, "%s", (const char *) sqlite3_column_text(st, 1));
        r = evc_crt_get(e, sqlite3_column_text(st, 2), (size_t) sqlite3_column_bytes(st, 2), &d.crt);
        if (r < 0)
                return r;
        d.revoked = sqlite3_column_int(st, 3);
        d.registered = sqlite3_column_int(st, 4);
        d.trust = evc_column_strdup(st, 5);
        if (!d.trust) {
                evc_device_done(&d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

/* Unpacks an AuthContainer and checks its header. Returns 0 or an HTTP status. */
static unsigned unpack_container(Evc *e, const uint8_t *body, size_t n, Org__Lfedge__Eve__Auth__AuthContainer **ret,
                EvcReply *reply) {
        Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        int r;

        r = PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, body, n, e->body_max, &ac);
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_BAD_REQUEST, "AuthContainer does not parse: %s", strerror(-r));
        if (ac->cipherdata || ac->ciphercontext) {
                proto_free(ac);
                return evc_reject(reply, MHD_HTTP_BAD_REQUEST, "encrypted AuthContainer not supported");
        }
        if (!ac->protectedpayload) {
                proto_free(ac);
                return evc_reject(reply, MHD_HTTP_BAD_REQUEST, "AuthContainer without payload");
        }
        if (ac->algo != ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES ||
            ac->sendercerthash.len != EVC_SHA256_SIZE) {
                proto_free(ac);
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "sender hash must be SHA-256, 32 bytes (algo 2)");
        }
        *ret = ac;
        return 0;
}

static bool signature_ok(gnutls_pubkey_t pub, const Org__Lfedge__Eve__Auth__AuthContainer *ac) {
        uint8_t digest[EVC_SHA256_SIZE];

        evc_sha256(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, digest);
        return evc_verify_digest_pub(pub, digest, ac->signaturehash.data, ac->signaturehash.len) >= 0;
}

unsigned evc_authenticate(Evc *e, const uint8_t *body, size_t n, const char *uuid, EvcDevice *ret_dev,
                Org__Lfedge__Eve__Auth__AuthContainer **ret_ac, EvcReply *reply) {

        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        EvcDevice d = {};
        unsigned s;
        int r;

        s = unpack_container(e, body, n, &ac, reply);
        if (s)
                return s;
        r = device_load(e, "cert_hash", ac->sendercerthash.data, EVC_SHA256_SIZE, &d);
        if (r == -ENOENT)
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "unknown sender certificate hash");
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "device lookup failed");
        if (!signature_ok(d.crt->pub, ac)) {
                evc_device_done(&d);
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "bad AuthContainer signature (device %s)", d.uuid);
        }
        if (uuid && !streq(uuid, d.uuid)) {
                evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "device %s signed a request for %s", d.uuid, uuid);
                evc_device_done(&d);
                return MHD_HTTP_UNAUTHORIZED;
        }
        *ret_dev = d;
        *ret_ac = TAKE_PTR(ac);
        return 0;
}

/* ---- GET /certs ---- */

static unsigned handle_certs(Evc *e, EvcReply *reply) {
        Org__Lfedge__Eve__Certs__ZControllerCert zc = ORG__LFEDGE__EVE__CERTS__ZCONTROLLER_CERT__INIT;
        _cleanup_free_ Org__Lfedge__Eve__Certs__ZCert *c = NULL;
        _cleanup_free_ Org__Lfedge__Eve__Certs__ZCert **cp = NULL;
        _cleanup_(evc_keys_unrefp) EvcKeys *keys = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        size_t n = 0, cap = 0;

        if (evc_keys_get(e, &keys) < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "controller keys unavailable");
        /* Exactly one signing certificate (EVE takes one), then every ECDH certificate a device may need:
         * the shared one, the devices' own, and retired ones that a device's last delivered config still
         * names. No intermediate: the root issues them all. */
        if (evc_prepare(evc_db(e),
                        "SELECT cert_pem, cert_hash FROM ckeys WHERE kind = 'ecdh' AND ("
                        "  (retired IS NULL AND (device_id IS NULL OR device_id IN (SELECT id FROM devices "
                        "WHERE revoked = 0)))"
                        "  OR id IN (SELECT ecdh_in_use FROM devices WHERE revoked = 0 AND ecdh_in_use IS "
                        "NOT NULL)) "
                        "ORDER BY device_id IS NOT NULL, retired IS NOT NULL, id",
                        &st) < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store failure");
        for (bool signing = true;; signing = false) {
                const uint8_t *pem, *hash;
                size_t pem_size;

                if (signing) {
                        pem = keys->signing.pem;
                        pem_size = keys->signing.pem_size;
                        hash = keys->signing.hash;
                } else if (sqlite3_step(st) == SQLITE_ROW) {
                        if (sqlite3_column_bytes(st, 1) != EVC_SHA256_SIZE)
                                continue;
                        pem = sqlite3_column_blob(st, 0);
                        pem_size = (size_t) sqlite3_column_bytes(st, 0);
                        hash = sqlite3_column_blob(st, 1);
                } else
                        break;
                if (n == cap) {
                        Org__Lfedge__Eve__Certs__ZCert *c2 = reallocarray(c, cap ? cap * 2 : 8, sizeof *c);
                        if (!c2)
                                goto oom;
                        c = c2;
                        cap = cap ? cap * 2 : 8;
                }
                c[n] = (Org__Lfedge__Eve__Certs__ZCert) ORG__LFEDGE__EVE__CERTS__ZCERT__INIT;
                c[n].hashalgo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
                c[n].certhash = (ProtobufCBinaryData){ .len = 16, .data = (uint8_t *) hash };
                c[n].type = signing
                                ? ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING
                                : ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_ECDH_EXCHANGE;
                c[n].cert = (ProtobufCBinaryData){ .len = pem_size, .data = (uint8_t *) pem };
                n++;
                if (!signing) {
                        /* The row's blobs go with the next step: keep copies (freed below). */
                        uint8_t *copy = malloc(pem_size + 16);
                        if (!copy) {
                                n--;
                                goto oom;
                        }
                        memcpy(copy, pem, pem_size);
                        memcpy(copy + pem_size, hash, 16);
                        c[n - 1].cert.data = copy;
                        c[n - 1].certhash.data = copy + pem_size;
                }
        }
        cp = calloc(n, sizeof *cp);
        if (!cp)
                goto oom;
        for (size_t i = 0; i < n; i++)
                cp[i] = &c[i];
        zc.n_certs = n;
        zc.certs = cp;
        if (evc_reply_signed(e, MHD_HTTP_OK, &zc.base, reply) < 0)
                evc_reject(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to sign /certs");
        for (size_t i = 1; i < n; i++)
                free(c[i].cert.data);
        return reply->status;
oom:
        for (size_t i = 1; i < n; i++)
                free(c[i].cert.data);
        return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
}

/* ---- POST /register ---- */

static unsigned handle_register(Evc *e, const uint8_t *body, size_t n, EvcReply *reply) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Register__ZRegisterMsg *msg = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t dev = NULL;
        _cleanup_(evc_crt_unrefp) EvcCrt *onboard = NULL;
        _cleanup_free_ uint8_t *onboard_pem = NULL, *dev_pem = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint8_t oh[EVC_SHA256_SIZE], dh[EVC_SHA256_SIZE];
        size_t onboard_pem_size, dev_pem_size;
        const char *serial;
        int64_t allow_used_by = 0, existing_id = 0;
        bool allowed = false, existing_registered = false, same_onboard = false;
        unsigned s;
        int r;

        s = unpack_container(e, body, n, &ac, reply);
        if (s)
                return s;
        if (ac->sendercert.len == 0)
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "register without senderCert");
        if (base64_decode((const char *) ac->sendercert.data,
                          ac->sendercert.len,
                          false,
                          &onboard_pem,
                          &onboard_pem_size) < 0 ||
            evc_crt_get(e, onboard_pem, onboard_pem_size, &onboard) < 0)
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "senderCert is not base64(PEM)");
        if (evc_crt_der_sha256(onboard->crt, oh) < 0 ||
            memcmp(oh, ac->sendercerthash.data, EVC_SHA256_SIZE) != 0)
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "senderCertHash does not match senderCert");
        if (!signature_ok(onboard->pub, ac))
                return evc_reject(reply, MHD_HTTP_UNAUTHORIZED, "register: bad signature by the onboarding key");

        r = PROTO_UNPACK(&org__lfedge__eve__register__zregister_msg__descriptor, ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len, e->body_max, &msg);
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_BAD_REQUEST, "ZRegisterMsg does not parse");
        if (msg->pemcert.len < 100 || msg->pemcert.len > 10240 ||
            base64_decode((const char *) msg->pemcert.data, msg->pemcert.len, false, &dev_pem, &dev_pem_size) < 0 ||
            evc_load_crt_pem(dev_pem, dev_pem_size, &dev) < 0 || evc_crt_der_sha256(dev, dh) < 0)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "pemCert is not base64(PEM certificate)");
        serial = !isempty(msg->serial) ? msg->serial : msg->softserial;
        if (isempty(serial) || strlen(serial) > 256)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "register without a serial");

        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");

        /* The allow list: this serial with this onboarding certificate. */
        r = evc_prepare(evc_db(e),
                        "SELECT used_by FROM onboard_allow WHERE serial = ? AND cert_hash = ?",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, oh, sizeof oh, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
                allowed = true;
                allow_used_by = sqlite3_column_int64(st, 0);
        }
        evc_stmt_release(TAKE_PTR(st));

        r = evc_prepare(evc_db(e),
                        "SELECT id, registered, onboard_hash = ? FROM devices WHERE cert_hash = ?",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_blob(st, 1, oh, sizeof oh, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, dh, sizeof dh, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
                existing_id = sqlite3_column_int64(st, 0);
                existing_registered = sqlite3_column_int(st, 1);
                same_onboard = sqlite3_column_int(st, 2) == 1;
        }
        evc_stmt_release(TAKE_PTR(st));

        if (existing_id > 0 && existing_registered) {
                evc_tx_rollback(evc_db(e));
                if (same_onboard)
                        return reply->status = MHD_HTTP_OK; /* a repeat */
                return evc_reject(reply, MHD_HTTP_CONFLICT, "device certificate already registered");
        }
        if (allowed && allow_used_by > 0 && allow_used_by != existing_id) {
                evc_tx_rollback(evc_db(e));
                return evc_reject(reply, MHD_HTTP_CONFLICT, "serial %s already onboarded another device", serial);
        }
        if (!allowed && existing_id == 0) {
                evc_tx_rollback(evc_db(e));
                return evc_reject(reply, MHD_HTTP_FORBIDDEN, "serial %s with this onboarding certificate is not allowed",
                                  serial);
        }

        if (existing_id > 0) {
                r = evc_prepare(evc_db(e),
                                "UPDATE devices SET registered = 1, onboard_hash = ?, serial = "
                                "coalesce(serial, ?) "
                                "WHERE id = ?",
                                &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_blob(st, 1, oh, sizeof oh, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, serial, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 3, existing_id);
        } else {
                char uuid[37];
                r = evc_uuid_new(uuid);
                if (r < 0)
                        goto fail;
                r = evc_prepare(evc_db(e),
                                "INSERT INTO devices (uuid, cert_hash, cert_pem, serial, onboard_hash, "
                                "registered, created) "
                                "VALUES (?, ?, ?, ?, ?, 1, ?)",
                                &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_text(st, 1, uuid, -1, SQLITE_TRANSIENT);
                sqlite3_bind_blob(st, 2, dh, sizeof dh, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 3, (const char *) dev_pem, (int) dev_pem_size, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 4, serial, -1, SQLITE_TRANSIENT);
                sqlite3_bind_blob(st, 5, oh, sizeof oh, SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 6, (int64_t) time(NULL));
        }
        r = evc_step_done(evc_db(e), st);
        if (r < 0)
                goto fail;
        evc_stmt_release(TAKE_PTR(st));
        if (existing_id == 0)
                existing_id = sqlite3_last_insert_rowid(evc_db(e)->db);
        if (allowed) {
                r = evc_prepare(evc_db(e), "UPDATE onboard_allow SET used_by = ? WHERE serial = ?", &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_int64(st, 1, existing_id);
                sqlite3_bind_text(st, 2, serial, -1, SQLITE_TRANSIENT);
                r = evc_step_done(evc_db(e), st);
                if (r < 0)
                        goto fail;
        }
        r = evc_event(evc_db(e), existing_id, "registered");
        if (r < 0)
                goto fail;
        r = evc_tx_commit(evc_db(e));
        if (r < 0)
                goto fail;
        log_info("Registered device with serial %s.", serial);
        return reply->status = MHD_HTTP_CREATED;
fail:
        evc_tx_rollback(evc_db(e));
        return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "register: store failure");
}

/* ---- POST /uuid ---- */

static unsigned handle_uuid(Evc *e, const uint8_t *body, size_t n, EvcReply *reply) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidRequest *req = NULL;
        Org__Lfedge__Eve__Uuid__UuidResponse resp = ORG__LFEDGE__EVE__UUID__UUID_RESPONSE__INIT;
        _cleanup_(evc_device_done) EvcDevice d = {};
        unsigned s;

        s = evc_authenticate(e, body, n, NULL, &d, &ac, reply);
        if (s)
                return s;
        if (PROTO_UNPACK(&org__lfedge__eve__uuid__uuid_request__descriptor, ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len, e->body_max, &req) < 0)
                return evc_reject(reply, MHD_HTTP_BAD_REQUEST, "UuidRequest does not parse");
        if (d.revoked)
                return evc_reject(reply, MHD_HTTP_FORBIDDEN, "device %s is revoked", d.uuid);
        resp.uuid = d.uuid;
        resp.manufacturer = (char *) "eve-trust";
        resp.product_name = (char *) "evc reference device";
        if (evc_reply_signed(e, MHD_HTTP_OK, &resp.base, reply) < 0)
                return evc_reject(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to sign");
        return reply->status;
}

/* ---- POST /id/<uuid>/info ---- */

static unsigned handle_info(Evc *e, const char *uuid, const uint8_t *body, size_t n, EvcReply *reply) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Info__ZInfoMsg *msg = NULL;
        _cleanup_(evc_device_done) EvcDevice d = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        unsigned s;

        s = evc_authenticate(e, body, n, uuid, &d, &ac, reply);
        if (s)
                return s;
        if (PROTO_UNPACK(&org__lfedge__eve__info__zinfo_msg__descriptor, ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len, e->body_max, &msg) < 0)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "ZInfoMsg does not parse");
        /* A status report: the next one replaces it, so no fsync. */
        if (evc_tx_begin_sync(evc_db(e), EVC_SYNC_NORMAL) < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");
        if (evc_prepare(evc_db(e), "UPDATE devices SET info = ?, info_time = ? WHERE id = ?", &st) < 0)
                goto fail;
        sqlite3_bind_blob(st, 1, ac->protectedpayload->payload.data, (int) ac->protectedpayload->payload.len,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (int64_t) time(NULL));
        sqlite3_bind_int64(st, 3, d.id);
        if (evc_step_done(evc_db(e), st) < 0 || evc_tx_commit(evc_db(e)) < 0)
                goto fail;
        return reply->status = MHD_HTTP_CREATED;
fail:
        evc_tx_rollback(evc_db(e));
        return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store failure");
}

/* ---- HTTP plumbing ---- */

typedef struct Request {
        uint8_t *buf;
        size_t size, cap;
        bool too_large;
} Request;

static void secret_free(void *p) {
        eve_secret_free(p);
}

/* Hands the body to libmicrohttpd (no copy), which frees it, wiping it first when it is secret. */
static enum MHD_Result queue(struct MHD_Connection *c, EvcReply *r) {
        struct MHD_Response *resp;
        enum MHD_Result k;

        if (r->body)
                resp = MHD_create_response_from_buffer_with_free_callback(
                                r->size, r->body, r->secret ? secret_free : free);
        else
                resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO; /* r still owns the body */
        r->body = NULL;
        if (r->size > 0)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
        k = MHD_queue_response(c, r->status ?: MHD_HTTP_INTERNAL_SERVER_ERROR, resp);
        MHD_destroy_response(resp);
        return k;
}

void evc_route(Evc *e, const char *url, const char *method, const uint8_t *body, size_t n, EvcReply *reply) {
        const char *p;

        if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0) {
                evc_reject(reply, MHD_HTTP_NOT_FOUND, "no such endpoint %s", url);
                return;
        }
        if (!evc_db(e)) {
                evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot open the database");
                return;
        }
        p = url + strlen(API_PREFIX);
        if (streq(method, "GET")) {
                if (streq(p, "certs"))
                        handle_certs(e, reply);
                else if (streq(p, "ping"))
                        reply->status = MHD_HTTP_OK;
                else
                        evc_reject(reply, MHD_HTTP_NOT_FOUND, "no such endpoint GET %s", url);
                return;
        }
        if (streq(p, "register"))
                handle_register(e, body, n, reply);
        else if (streq(p, "uuid"))
                handle_uuid(e, body, n, reply);
        else if (strncmp(p, "id/", 3) == 0 && strlen(p) > 3 + 36 && p[3 + 36] == '/') {
                char raw[37], uuid[37];
                const char *action = p + 3 + 37;

                memcpy(raw, p + 3, 36);
                raw[36] = 0;
                if (evc_uuid_canonical(raw, uuid) < 0) {
                        evc_reject(reply, MHD_HTTP_NOT_FOUND, "no such endpoint POST %s", url);
                        return;
                }
                if (streq(action, "attest"))
                        evc_handle_attest(e, uuid, body, n, reply);
                else if (streq(action, "config"))
                        evc_handle_config(e, uuid, body, n, reply);
                else if (streq(action, "info"))
                        handle_info(e, uuid, body, n, reply);
                else
                        evc_reject(reply, MHD_HTTP_NOT_FOUND, "no such endpoint %s", url);
        } else
                evc_reject(reply, MHD_HTTP_NOT_FOUND, "no such endpoint POST %s", url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {

        Evc *e = cls;
        Request *req = *con_cls;
        EvcReply reply = {};
        enum MHD_Result k;

        if (!req) {
                const char *ct, *cl;

                if (!streq(method, "GET") && !streq(method, "POST")) {
                        evc_reject(&reply, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s", method);
                        return queue(c, &reply);
                }
                if (streq(method, "POST")) {
                        ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
                        if (!ct || strncmp(ct, CONTENT_TYPE, strlen(CONTENT_TYPE)) != 0 ||
                            (ct[strlen(CONTENT_TYPE)] != 0 && ct[strlen(CONTENT_TYPE)] != ';')) {
                                evc_reject(&reply, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "content type %s", ct ?: "(none)");
                                return queue(c, &reply);
                        }
                        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                        if (cl) {
                                char *end;
                                errno = 0;
                                unsigned long long v = strtoull(cl, &end, 10);
                                if (errno != 0 || *end || v > e->body_max) {
                                        evc_reject(&reply, MHD_HTTP_CONTENT_TOO_LARGE, "body of %s bytes", cl);
                                        return queue(c, &reply);
                                }
                        }
                }
                req = calloc(1, sizeof *req);
                if (!req)
                        return MHD_NO;
                *con_cls = req;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!req->too_large) {
                        if (req->size + *upload_data_size > e->body_max) {
                                req->too_large = true;
                                req->buf = mfree(req->buf);
                                req->size = req->cap = 0;
                        } else {
                                if (req->size + *upload_data_size > req->cap) {
                                        size_t cap = MAX(req->cap * 2, req->size + *upload_data_size);
                                        uint8_t *b = realloc(req->buf, cap);
                                        if (!b)
                                                return MHD_NO;
                                        req->buf = b;
                                        req->cap = cap;
                                }
                                memcpy(req->buf + req->size, upload_data, *upload_data_size);
                                req->size += *upload_data_size;
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (req->too_large)
                evc_reject(&reply, MHD_HTTP_CONTENT_TOO_LARGE, "body over %zu bytes", e->body_max);
        else
                evc_route(e, url, method, req->buf, req->size, &reply);
        k = queue(c, &reply);
        evc_reply_done(&reply);
        return k;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
        Request *req = *con_cls;

        if (req) {
                free(req->buf);
                free(req);
                *con_cls = NULL;
        }
}

static int parse_listen(const char *listen, struct sockaddr_in *ret) {
        _cleanup_free_ char *host = NULL;
        const char *colon = strrchr(listen, ':');
        char *end;
        unsigned long port;

        if (!colon)
                return -EINVAL;
        host = strndup(listen, (size_t) (colon - listen));
        if (!host)
                return -ENOMEM;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno != 0 || *end || colon[1] == 0 || port > 65535)
                return -EINVAL;
        *ret = (struct sockaddr_in) { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        if (inet_pton(AF_INET, host, &ret->sin_addr) != 1)
                return -EINVAL;
        return 0;
}

int evc_serve(Evc *e, const char *listen, const char *port_file) {
        struct sockaddr_in sa, bound;
        socklen_t sl = sizeof bound;
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *d;
        sigset_t ss;
        int r, sig;

        r = parse_listen(listen, &sa);
        if (r < 0)
                return log_error_errno(r, "Bad --listen address \"%s\" (want IPv4:PORT).", listen);
        /* A pool of request threads, each with its own SQLite connection; write transactions take turns on
         * e->write_lock; everything but the writes (TLS, signatures, quote checks) runs in parallel. */
        r = evc_db_threaded(e);
        if (r < 0)
                return log_error_errno(r, "Failed to set up per-thread database connections: %m");

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        /* Blocked before the server thread starts, so it inherits the mask and only sigwait() sees them. */
        if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0)
                return log_error_errno(errno, "sigprocmask: %m");

        d = MHD_start_daemon(
                        MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                        0,
                        NULL,
                        NULL,
                        on_request,
                        e,
                        MHD_OPTION_SOCK_ADDR,
                        (struct sockaddr *) &sa,
                        MHD_OPTION_HTTPS_MEM_CERT,
                        (const char *) e->tls_pem,
                        MHD_OPTION_HTTPS_MEM_KEY,
                        (const char *) e->tls_key_pem,
                        MHD_OPTION_HTTPS_PRIORITIES,
                        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
                        MHD_OPTION_NOTIFY_COMPLETED,
                        on_completed,
                        NULL,
                        MHD_OPTION_CONNECTION_TIMEOUT,
                        (unsigned) 30,
                        MHD_OPTION_CONNECTION_LIMIT,
                        (unsigned) 1024,
                        MHD_OPTION_THREAD_POOL_SIZE,
                        (unsigned) MAX(e->threads, 1U),
                        MHD_OPTION_END);
        if (!d)
                return log_error_errno(EADDRNOTAVAIL, "Failed to start the HTTPS server on %s.", listen);
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
        if (!info || getsockname(info->listen_fd, (struct sockaddr *) &bound, &sl) < 0) {
                MHD_stop_daemon(d);
                return log_error_errno(EIO, "Failed to read the bound port.");
        }
        log_info("evc serving https://%s:%u" API_PREFIX " with %u request threads",
                 inet_ntoa(bound.sin_addr),
                 ntohs(bound.sin_port),
                 MAX(e->threads, 1U));
        if (port_file) {
                char buf[16];
                int k = snprintf(buf, sizeof buf, "%u\n", ntohs(bound.sin_port));
                r = evc_write_file(port_file, buf, (size_t) k, 0644);
                if (r < 0) {
                        MHD_stop_daemon(d);
                        return log_error_errno(r, "Failed to write %s: %m", port_file);
                }
        }
        (void) sigwait(&ss, &sig);
        log_info("Stopping on signal %d.", sig);
        MHD_stop_daemon(d);
        return 0;
}
