/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-verifier.c: POST /id/<uuid>/attest: CERT, NONCE, QUOTE, STORE_KEYS (DESIGN.md "Reference controller").
 * Protocol results travel in the body (HTTP 201); HTTP errors only for malformed or unauthenticated requests. */
#include <math.h>
#include <microhttpd.h>
#include <time.h>

#include "attest.pb-c.h"
#include "certs.pb-c.h"
#include "encoding.h"
#include "evc-attest.h"
#include "evc-keys.h"
#include "evc-server.h"
#include "evc-share.h"
#include "evetrust.pb-c.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"

#define EVENTLOG_MAX (4 * 1024 * 1024)

typedef Org__Lfedge__Eve__Attest__ZAttestResponseCode QuoteCode;
#define Q_SUCCESS ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS
#define Q_NONCE ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NONCE_MISMATCH
#define Q_NOCERT ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NO_CERT_FOUND
#define Q_FAILED ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_QUOTE_FAILED

static unsigned reply_attest(Evc *e, Org__Lfedge__Eve__Attest__ZAttestResponse *resp, EvcReply *reply) {
        if (evc_reply_signed(e, MHD_HTTP_CREATED, &resp->base, reply) < 0)
                return evc_reject(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to sign");
        return reply->status;
}

static int device_set(Evc *e, int64_t id, const char *assignments, const char *text) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        int r;

        if (asprintf(&sql, "UPDATE devices SET %s WHERE id = ?2", assignments) < 0)
                return -ENOMEM;
        r = evc_prepare(evc_db(e), sql, &st);
        if (r < 0)
                return r;
        if (text)
                sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, id);
        return evc_step_done(evc_db(e), st);
}

/* ---- CERT ---- */

/* Whether the device stored exactly these certificates already (ECDH, attestation, EK; NULL = not sent). */
static bool certs_unchanged(
                Evc *e, const EvcDevice *d, const Org__Lfedge__Eve__Certs__ZCert *const certs[3]) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (evc_prepare(evc_db(e), "SELECT ecdh_pem, attest_pem, ek_pem FROM devices WHERE id = ?", &st) < 0)
                return false;
        sqlite3_bind_int64(st, 1, d->id);
        if (sqlite3_step(st) != SQLITE_ROW)
                return false;
        for (int i = 0; i < 3; i++) {
                const void *old = sqlite3_column_blob(st, i);
                size_t old_size = (size_t) sqlite3_column_bytes(st, i);

                if (certs[i] &&
                    !(old && old_size == certs[i]->cert.len &&
                      memcmp(old, certs[i]->cert.data, old_size) == 0))
                        return false;
        }
        return true;
}

static unsigned attest_cert(Evc *e, EvcDevice *d, Org__Lfedge__Eve__Attest__ZAttestReq *req, EvcReply *reply) {
        Org__Lfedge__Eve__Attest__ZAttestResponse resp = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        const char *cols[3] = {};
        const Org__Lfedge__Eve__Certs__ZCert *certs[3] = {}; /* ECDH, attestation, EK */
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool locked, changed = false;
        int r;

        if (req->n_certs == 0 || req->n_certs > 8)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "CERT with %zu certificates", req->n_certs);
        for (size_t i = 0; i < req->n_certs; i++) {
                const Org__Lfedge__Eve__Certs__ZCert *c = req->certs[i];
                _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
                size_t slot;

                switch (c->type) {
                case ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ECDH_EXCHANGE:
                        slot = 0;
                        break;
                case ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING:
                        slot = 1;
                        break;
                case ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ENDORSEMENT_RSA:
                        slot = 2;
                        break;
                default:
                        return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "CERT: unexpected type %d", c->type);
                }
                if (certs[slot])
                        return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "CERT: type %d twice", c->type);
                if (evc_load_crt_pem(c->cert.data, c->cert.len, &crt) < 0)
                        return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "CERT: type %d is not PEM", c->type);
                if (c->certhash.len > 0) {
                        uint8_t h[EVC_SHA256_SIZE];
                        evc_sha256(c->cert.data, c->cert.len, h);
                        if (c->certhash.len > EVC_SHA256_SIZE || memcmp(h, c->certhash.data, c->certhash.len) != 0)
                                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT,
                                                  "CERT: certHash of type %d does not match its PEM", c->type);
                }
                /* The quote and ECDH keys must be certified by the registered device key. */
                if (slot < 2 && evc_verify_chain(crt, d->crt->crt) < 0)
                        return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT,
                                          "CERT: type %d is not signed by the device certificate of %s", c->type,
                                          d->uuid);
                certs[slot] = c;
        }
        if (!certs[0] && !certs[1])
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "CERT without ECDH or attestation certificate");
        /* EVE resends its certificates on every boot: the same ones again need no write. */
        if (certs_unchanged(e, d, certs)) {
                resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT;
                return reply_attest(e, &resp, reply);
        }

        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");
        r = evc_prepare(evc_db(e),
                        "SELECT certs_locked, ecdh_pem, attest_pem, ek_pem FROM devices WHERE id = ?",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, d->id);
        if (sqlite3_step(st) != SQLITE_ROW)
                goto fail;
        locked = sqlite3_column_int(st, 0);
        cols[0] = "ecdh_pem";
        cols[1] = "attest_pem";
        cols[2] = "ek_pem";
        for (size_t i = 0; i < 3; i++) {
                const void *old = sqlite3_column_blob(st, 1 + (int) i);
                size_t old_size = (size_t) sqlite3_column_bytes(st, 1 + (int) i);
                bool same;

                if (!certs[i])
                        continue;
                same = old && old_size == certs[i]->cert.len && memcmp(old, certs[i]->cert.data, old_size) == 0;
                if (same)
                        continue;
                if (locked && old) {
                        evc_tx_rollback(evc_db(e));
                        /* EVE reads 404 as "controller refuses to replace" and keeps its certificates. */
                        return evc_reject(reply, MHD_HTTP_NOT_FOUND,
                                          "CERT: device %s tries to replace its %s; an admin must run 'evc device "
                                          "reset-certs' first",
                                          d->uuid, cols[i]);
                }
                changed = true;
        }
        evc_stmt_release(TAKE_PTR(st));
        for (size_t i = 0; changed && i < 3; i++) {
                _cleanup_free_ char *sql = NULL;

                if (!certs[i])
                        continue;
                if (asprintf(&sql, "UPDATE devices SET %s = ? WHERE id = ?", cols[i]) < 0)
                        goto fail;
                r = evc_prepare(evc_db(e), sql, &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_text(st, 1, (const char *) certs[i]->cert.data, (int) certs[i]->cert.len,
                                  SQLITE_TRANSIENT);
                sqlite3_bind_int64(st, 2, d->id);
                r = evc_step_done(evc_db(e), st);
                evc_stmt_release(TAKE_PTR(st));
                if (r < 0)
                        goto fail;
        }
        if (changed) {
                if (device_set(e, d->id, "certs_locked = 1", NULL) < 0 ||
                    evc_config_invalidate(e, d->id) < 0 ||
                    evc_event(evc_db(e), d->id, "attestation certificates stored") < 0)
                        goto fail;
        }
        r = evc_tx_commit(evc_db(e));
        if (r < 0)
                goto fail;
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT;
        return reply_attest(e, &resp, reply);
fail:
        evc_tx_rollback(evc_db(e));
        return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "CERT: store failure");
}

/* ---- NONCE ---- */

static unsigned attest_nonce(Evc *e, EvcDevice *d, EvcReply *reply) {
        Org__Lfedge__Eve__Attest__ZAttestResponse resp = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        Org__Lfedge__Eve__Attest__ZAttestNonceResp nr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_NONCE_RESP__INIT;
        uint8_t nonce[EVC_NONCE_SIZE];

        /* In memory only (evc-nonce.h): nothing to commit. */
        if (evc_nonce_issue(&e->nonces, d->id, e->nonce_ttl_ms, nonce) < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "NONCE: no randomness or memory");
        nr.nonce = (ProtobufCBinaryData){ .len = sizeof nonce, .data = nonce };
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE;
        resp.nonce = &nr;
        return reply_attest(e, &resp, reply);
}

/* ---- QUOTE ---- */

typedef struct Verdict {
        QuoteCode code;
        char why[160];
        EvcPcrBank pcrs;  /* reported */
        uint32_t quoted;  /* PCRs covered by the signed digest */
} Verdict;

static QuoteCode verdict(Verdict *v, QuoteCode code, const char *fmt, ...) _printf_(3, 4);
static QuoteCode verdict(Verdict *v, QuoteCode code, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(v->why, sizeof v->why, fmt, ap);
        va_end(ap);
        return v->code = code;
}

/* Everything about the quote that needs no stored state except the attestation certificate. */
static QuoteCode
                check_quote(Evc *e,
                            const EvcCrt *ak,
                            const Org__Lfedge__Eve__Attest__ZAttestQuote *q,
                            const EvcQuoteInfo *info,
                            Verdict *v) {

        uint8_t digest[EVC_SHA256_SIZE];
        const char *why = NULL;
        int r;

        evc_sha256(q->attestdata.data, q->attestdata.len, digest);
        r = evc_verify_digest_pub(ak->pub, digest, q->signature.data, q->signature.len);
        if (r < 0)
                return verdict(v, Q_FAILED, "quote signature does not verify with the attestation certificate");

        for (size_t i = 0; i < q->n_pcr_values; i++) {
                const Org__Lfedge__Eve__Attest__TpmPCRValue *p = q->pcr_values[i];
                if (p->hash_algo != ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256)
                        continue;
                if (p->index >= EVC_PCR_MAX || p->value.len != 32 || (v->pcrs.present & (1U << p->index)))
                        return verdict(v, Q_FAILED, "bad or duplicate PCR value (index %u)", p->index);
                memcpy(v->pcrs.value[p->index], p->value.data, 32);
                v->pcrs.present |= 1U << p->index;
        }
        v->quoted = evc_quote_pcr_mask(info);
        if (v->quoted == 0)
                return verdict(v, Q_FAILED, "quote selects no SHA-256 PCRs");
        r = evc_pcr_digest(info, &v->pcrs, digest);
        if (r == -ENOENT)
                return verdict(v, Q_FAILED, "a quoted PCR was not reported");
        if (r < 0)
                return verdict(v, Q_FAILED, "quote selects a bank other than SHA-256");
        if (info->pcr_digest_size != EVC_SHA256_SIZE || memcmp(digest, info->pcr_digest, EVC_SHA256_SIZE) != 0)
                return verdict(v, Q_FAILED, "reported PCR values do not match the quoted PCR digest");

        if (q->tpm_binary_event_log.len > 0) {
                _cleanup_free_ uint8_t *log = NULL;
                EvcPcrBank replayed;
                size_t log_size;

                r = evc_gunzip(q->tpm_binary_event_log.data, q->tpm_binary_event_log.len, EVENTLOG_MAX, &log,
                               &log_size);
                if (r < 0)
                        return verdict(v, Q_FAILED, "event log is not gzip (or too large)");
                r = evc_eventlog_replay(log, log_size, &replayed, &why);
                if (r < 0)
                        return verdict(v, Q_FAILED, "event log: %s", why);
                for (unsigned i = 0; i < EVC_PCR_MAX; i++) {
                        if (!(replayed.present & v->quoted & (1U << i)))
                                continue;
                        if (memcmp(replayed.value[i], v->pcrs.value[i], 32) != 0)
                                return verdict(v, Q_FAILED, "event log does not replay to quoted PCR %u", i);
                }
        }
        return verdict(v, Q_SUCCESS, "ok");
}

/* Reads (pcr, value) rows of one device into values[], setting a bit in *ret_mask per valid row; rows with an
 * index out of range or a value that is not 32 bytes are ignored. */
static int load_pcr_table(Evc *e, const char *sql, int64_t device_id, uint8_t values[EVC_PCR_MAX][32],
                          uint32_t *ret_mask) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint32_t mask = 0;
        int r;

        r = evc_prepare(evc_db(e), sql, &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        while (sqlite3_step(st) == SQLITE_ROW) {
                int i = sqlite3_column_int(st, 0);
                if (i >= 0 && i < EVC_PCR_MAX && sqlite3_column_bytes(st, 1) == 32) {
                        memcpy(values[i], sqlite3_column_blob(st, 1), 32);
                        mask |= 1U << i;
                }
        }
        *ret_mask = mask;
        return 0;
}

/* Compares the quoted PCRs with the baseline (recording it on the first good quote) and announced upgrades.
 * Returns 1 when trusted, 0 when not (reason in v), < 0 on store errors; -EAGAIN when the baseline must be
 * written and durable is false. Inside the caller's transaction. */
static int check_baseline(Evc *e, int64_t device_id, Verdict *v, bool durable) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint8_t base[EVC_PCR_MAX][32], expect[EVC_PCR_MAX][32];
        uint32_t have = 0, expected = 0, bad = 0;
        int r;

        r = load_pcr_table(e, "SELECT pcr, value FROM baseline WHERE device_id = ?", device_id, base, &have);
        if (r < 0)
                return r;
        r = load_pcr_table(e, "SELECT pcr, value FROM expected_pcrs WHERE device_id = ?", device_id, expect,
                           &expected);
        if (r < 0)
                return r;

        if (have != 0) {
                for (unsigned i = 0; i < EVC_PCR_MAX; i++) {
                        if (!(v->quoted & (1U << i)))
                                continue;
                        if ((have & (1U << i)) && memcmp(base[i], v->pcrs.value[i], 32) == 0)
                                continue;
                        if ((expected & (1U << i)) && memcmp(expect[i], v->pcrs.value[i], 32) == 0)
                                continue;
                        bad |= 1U << i;
                }
                /* An announced upgrade must have happened in full, not just in part. */
                for (unsigned i = 0; i < EVC_PCR_MAX; i++)
                        if ((expected & (1U << i)) && (v->quoted & (1U << i)) &&
                            memcmp(expect[i], v->pcrs.value[i], 32) != 0 && (have & (1U << i)) &&
                            memcmp(base[i], v->pcrs.value[i], 32) != 0)
                                bad |= 1U << i;
                if (bad) {
                        size_t k = 0;
                        k += (size_t) snprintf(v->why, sizeof v->why, "PCRs differ from the baseline:");
                        for (unsigned i = 0; i < EVC_PCR_MAX && k < sizeof v->why - 4; i++)
                                if (bad & (1U << i))
                                        k += (size_t) snprintf(v->why + k, sizeof v->why - k, " %u", i);
                        return 0;
                }
                if (expected == 0)
                        return 1;
        }
        /* First good quote, or an announced upgrade that explains every change: (re)write the baseline. */
        if (!durable)
                return -EAGAIN;
        r = evc_prepare(evc_db(e), "DELETE FROM baseline WHERE device_id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        r = evc_step_done(evc_db(e), st);
        if (r < 0)
                return r;
        evc_stmt_release(TAKE_PTR(st));
        r = evc_prepare(evc_db(e), "DELETE FROM expected_pcrs WHERE device_id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        r = evc_step_done(evc_db(e), st);
        if (r < 0)
                return r;
        evc_stmt_release(TAKE_PTR(st));
        for (unsigned i = 0; i < EVC_PCR_MAX; i++) {
                if (!(v->quoted & (1U << i)))
                        continue;
                r = evc_prepare(evc_db(e),
                                "INSERT INTO baseline (device_id, pcr, value) VALUES (?, ?, ?)",
                                &st);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(st, 1, device_id);
                sqlite3_bind_int(st, 2, (int) i);
                sqlite3_bind_blob(st, 3, v->pcrs.value[i], 32, SQLITE_TRANSIENT);
                r = evc_step_done(evc_db(e), st);
                if (r < 0)
                        return r;
                evc_stmt_release(TAKE_PTR(st));
        }
        (void) evc_event(
                        evc_db(e),
                        device_id,
                        have ? "baseline updated by announced upgrade" : "baseline recorded");
        return 1;
}

/* ---- controller shares ---- */

#define KT_SHARE_REQUEST ORG__EVE__TRUST__EVE_TRUST_VOLUME_KEY_TYPE__EVE_TRUST_CONTROLLER_SHARE_REQUEST
#define KT_SHARE ORG__EVE__TRUST__EVE_TRUST_VOLUME_KEY_TYPE__EVE_TRUST_CONTROLLER_SHARE

typedef struct StoredShare {
        char vault[37];
        uint8_t *sealed;
        size_t size;
} StoredShare;

/* What a SUCCESS releases: the escrow entries as received, and the shares (still sealed for the store). */
typedef struct Release {
        size_t n_escrow, n_shares;
        Org__Lfedge__Eve__Attest__AttestVolumeKey *escrow[EVC_ESCROW_KEYS_MAX];
        StoredShare shares[EVC_SHARES_MAX];
        uint8_t *ecdh_pem; /* the device's ECDH certificate, NULL when it sent none */
        size_t ecdh_pem_size;
        /* the response's keys: escrow[] then wire[] */
        Org__Lfedge__Eve__Attest__AttestVolumeKey wire[EVC_SHARES_MAX];
        size_t n_wire;
        Org__Lfedge__Eve__Attest__AttestVolumeKey *keys[EVC_ESCROW_KEYS_MAX + EVC_SHARES_MAX];
} Release;

static void release_done(Release *rel) {
        for (size_t i = 0; i < rel->n_escrow; i++)
                proto_free(rel->escrow[i]);
        for (size_t i = 0; i < rel->n_shares; i++)
                free(rel->shares[i].sealed);
        for (size_t i = 0; i < rel->n_wire; i++)
                free(rel->wire[i].key.data);
        free(rel->ecdh_pem);
        *rel = (Release){};
}

/* Reads the escrow entries and the shares of a device (inside the caller's transaction); the caller fills in
 * the device's ECDH certificate. */
static int release_load(Evc *e, const EvcDevice *d, Release *rel) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(evc_db(e), "SELECT key_msg FROM escrow WHERE device_id = ? ORDER BY seq", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, d->id);
        while (sqlite3_step(st) == SQLITE_ROW && rel->n_escrow < EVC_ESCROW_KEYS_MAX) {
                r =
                                PROTO_UNPACK(&org__lfedge__eve__attest__attest_volume_key__descriptor,
                                             sqlite3_column_blob(st, 0),
                                             (size_t) sqlite3_column_bytes(st, 0),
                                             64 * 1024,
                                             &rel->escrow[rel->n_escrow]);
                if (r < 0)
                        log_warning("Stored escrow of %s does not parse, skipping.", d->uuid);
                else
                        rel->n_escrow++;
        }
        evc_stmt_release(TAKE_PTR(st));

        r = evc_prepare(evc_db(e),
                        "SELECT vault_uuid, sealed FROM shares WHERE device_id = ? ORDER BY vault_uuid",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, d->id);
        while (sqlite3_step(st) == SQLITE_ROW && rel->n_shares < EVC_SHARES_MAX) {
                StoredShare *sh = &rel->shares[rel->n_shares];

                snprintf(sh->vault, sizeof sh->vault, "%s", (const char *) sqlite3_column_text(st, 0));
                r = evc_column_blob(st, 1, &sh->sealed, &sh->size);
                if (r < 0)
                        return r;
                rel->n_shares++;
        }
        return 0;
}

/* Seals every share to the device's ECDH certificate and fills rel->keys. A share that cannot be sealed (no
 * ECDH certificate, a row that does not open) is left out with a warning; the vault then stays locked. */
static int release_seal(Evc *e, const EvcDevice *d, Release *rel, size_t *ret_n_keys) {
        _cleanup_(evc_keys_unrefp) EvcKeys *keys = NULL;
        EvcDeviceEcdh dh = {};
        size_t n = 0;
        int r;

        CLEANUP_ERASE(dh);
        for (size_t i = 0; i < rel->n_escrow; i++)
                rel->keys[n++] = rel->escrow[i];
        if (rel->n_shares > 0 &&
            (!rel->ecdh_pem || evc_keys_get(e, &keys) < 0 ||
             evc_keys_device_ecdh(e, keys, d->id, rel->ecdh_pem, rel->ecdh_pem_size, &dh) < 0)) {
                log_warning("Device %s has %zu controller share(s) but no usable ECDH certificate: none "
                            "released.",
                            d->uuid,
                            rel->n_shares);
                goto done;
        }
        for (size_t i = 0; i < rel->n_shares; i++) {
                _cleanup_(eve_secret_freep) uint8_t *share = NULL;
                Org__Lfedge__Eve__Attest__AttestVolumeKey *w = &rel->wire[rel->n_wire];

                r = evc_share_unseal(
                                e,
                                d->uuid,
                                rel->shares[i].vault,
                                rel->shares[i].sealed,
                                rel->shares[i].size,
                                &share);
                if (r < 0) {
                        log_warning("Controller share of vault %s (device %s) does not open (wrong "
                                    "keys/db.key?), "
                                    "not released.",
                                    rel->shares[i].vault,
                                    d->uuid);
                        continue;
                }
                *w = (Org__Lfedge__Eve__Attest__AttestVolumeKey)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT;
                w->key_type = (Org__Lfedge__Eve__Attest__AttestVolumeKeyType) KT_SHARE;
                /* Sealed to the device's ECDH pair: controller_cert_hash names its certificate in /certs. */
                r = evc_share_seal_wire(
                                dh.k, dh.hash, rel->shares[i].vault, share, &w->key.data, &w->key.len);
                if (r < 0)
                        return r;
                rel->keys[n++] = w;
                rel->n_wire++;
        }
done:
        *ret_n_keys = n;
        return 0;
}

/* Judges a verified quote against the device's stored state (revocation, location, trust, baseline) and
 * records the outcome, in one transaction committed with sync. Most rounds only replace the token and the
 * last-attestation columns: that may be lost with a power loss (the device then gets 403 and attests again).
 * A first baseline, an adopted upgrade, a frozen location, a device turning untrusted or losing its token
 * must not be lost: such a round returns -EAGAIN under EVC_SYNC_NORMAL, and the caller runs it again with
 * EVC_SYNC_FULL. On SUCCESS, the token and what to release land in token and rel. */
static int
                quote_apply(Evc *e,
                            const EvcDevice *d,
                            const Org__Lfedge__Eve__Attest__ZAttestQuote *q,
                            Verdict *v,
                            EvcSync sync,
                            uint8_t token[static EVC_TOKEN_SIZE],
                            Release *rel) {

        EvcStore *db = evc_db(e);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *text = NULL;
        bool durable = sync == EVC_SYNC_FULL, revoked, untrusted, location_lock, have_location, had_token;
        const char *result, *new_trust = NULL;
        uint8_t last_pcrs[4 + EVC_PCR_MAX * 32];
        double lat, lon;
        int r;

        r = evc_tx_begin_sync(db, sync);
        if (r < 0)
                return r;
        r = evc_prepare(db,
                        "SELECT revoked, trust = 'untrusted', location_lock, location_lat IS NOT NULL, "
                        "location_lat, "
                        "location_lon, itoken IS NOT NULL, ecdh_pem FROM devices WHERE id = ?",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, d->id);
        if (sqlite3_step(st) != SQLITE_ROW) {
                r = -ENOENT;
                goto fail;
        }
        revoked = sqlite3_column_int(st, 0);
        untrusted = sqlite3_column_int(st, 1);
        location_lock = sqlite3_column_int(st, 2);
        have_location = sqlite3_column_int(st, 3);
        lat = sqlite3_column_double(st, 4);
        lon = sqlite3_column_double(st, 5);
        had_token = sqlite3_column_int(st, 6);
        if (v->code == Q_SUCCESS) {
                r = evc_column_blob(st, 7, &rel->ecdh_pem, &rel->ecdh_pem_size);
                if (r < 0)
                        goto fail;
        }
        evc_stmt_release(TAKE_PTR(st));

        if (v->code == Q_SUCCESS && revoked)
                verdict(v, Q_FAILED, "device is revoked");
        if (v->code == Q_SUCCESS && location_lock) {
                /* Location lock: the first location reported after the lock went on is frozen; a device reporting
                 * none, or one more than ~1 km away, gets nothing. */
                const Org__Lfedge__Eve__Attest__AttestGPSCoordinates *g = q->gps_info;
                if (!g || g->gps_input != ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_PRESENT ||
                    !(g->latitude >= -90 && g->latitude <= 90) || !(g->longitude >= -180 && g->longitude <= 180))
                        verdict(v, Q_FAILED, "location lock is on and the quote reports no location");
                else if (!have_location) {
                        if (!durable) {
                                r = -EAGAIN;
                                goto fail;
                        }
                        r = evc_prepare(db,
                                        "UPDATE devices SET location_lat = ?, location_lon = ? WHERE id = ?",
                                        &st);
                        if (r < 0)
                                goto fail;
                        sqlite3_bind_double(st, 1, g->latitude);
                        sqlite3_bind_double(st, 2, g->longitude);
                        sqlite3_bind_int64(st, 3, d->id);
                        r = evc_step_done(db, st);
                        if (r < 0)
                                goto fail;
                        evc_stmt_release(TAKE_PTR(st));
                } else if (fabs(g->latitude - lat) > 0.01 || fabs(g->longitude - lon) > 0.01)
                        verdict(v,
                                Q_FAILED,
                                "location lock: device moved from %.4f,%.4f to %.4f,%.4f",
                                lat,
                                lon,
                                g->latitude,
                                g->longitude);
        }
        if (v->code == Q_SUCCESS && untrusted)
                verdict(v,
                        Q_FAILED,
                        "device is untrusted until an admin runs 'evc baseline accept' or 'evc upgrade "
                        "expect'");
        if (v->code == Q_SUCCESS) {
                r = check_baseline(e, d->id, v, durable);
                if (r < 0)
                        goto fail;
                if (r == 0) {
                        v->code = Q_FAILED;
                        new_trust = "untrusted";
                } else
                        new_trust = "trusted";
                /* The verified PCRs (quoted mask, LE, ‖ 24 values): what 'evc baseline accept' adopts. */
                for (unsigned i = 0; i < 4; i++)
                        last_pcrs[i] = (uint8_t) (v->quoted >> (8 * i));
                memcpy(last_pcrs + 4, v->pcrs.value, EVC_PCR_MAX * 32);
        }
        /* Durable: a device turning untrusted, or losing its token (a lost withdrawal would revive the
         * token). */
        if (!durable && v->code != Q_SUCCESS && (had_token || streq_ptr(new_trust, "untrusted"))) {
                r = -EAGAIN;
                goto fail;
        }
        if (v->code == Q_SUCCESS) {
                r = evc_random(token, EVC_TOKEN_SIZE);
                if (r < 0)
                        goto fail;
                r = release_load(e, d, rel);
                if (r < 0)
                        goto fail;
        }
        result = v->code == Q_SUCCESS         ? "SUCCESS"
                        : v->code == Q_NONCE  ? "NONCE_MISMATCH"
                        : v->code == Q_NOCERT ? "NO_CERT_FOUND"
                                              : "QUOTE_FAILED";
        if (asprintf(&text, "%s: %s", result, v->why) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        /* One row update for the whole outcome: the token (a fresh one, or none: any failed attestation
         * withdraws it), the trust, the verified PCRs, the last result. */
        r = evc_prepare(db,
                        "UPDATE devices SET itoken = ?1, trust = coalesce(?2, trust), "
                        "trust_reason = CASE WHEN ?2 IS NULL THEN trust_reason WHEN ?2 = 'trusted' THEN "
                        "NULL ELSE ?3 END, "
                        "last_pcrs = coalesce(?4, last_pcrs), last_attest = ?5, last_result = ?6 WHERE id = "
                        "?7",
                        &st);
        if (r < 0)
                goto fail;
        if (v->code == Q_SUCCESS)
                sqlite3_bind_blob(st, 1, token, EVC_TOKEN_SIZE, SQLITE_TRANSIENT);
        if (new_trust) {
                sqlite3_bind_text(st, 2, new_trust, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, v->why, -1, SQLITE_TRANSIENT);
                sqlite3_bind_blob(st, 4, last_pcrs, sizeof last_pcrs, SQLITE_TRANSIENT);
        }
        sqlite3_bind_int64(st, 5, (int64_t) time(NULL));
        sqlite3_bind_text(st, 6, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 7, d->id);
        r = evc_step_done(db, st);
        if (r < 0)
                goto fail;
        /* The audit log gets what changes something or fails; a routine SUCCESS is in last_result. */
        if (v->code != Q_SUCCESS || durable) {
                r = evc_event(db, d->id, text);
                if (r < 0)
                        goto fail;
        }
        r = evc_tx_commit(db);
        if (r < 0)
                goto fail;
        if (v->code == Q_SUCCESS)
                log_debug("Device %s: SUCCESS committed (%s).", d->uuid, durable ? "fsync" : "no fsync");
        else
                log_notice("Device %s: %s (%s).", d->uuid, result, v->why);
        return 0;
fail:
        evc_tx_rollback(db);
        release_done(rel);
        return r;
}

static unsigned attest_quote(
                Evc *e, EvcDevice *d, Org__Lfedge__Eve__Attest__ZAttestReq *req, EvcReply *reply) {
        Org__Lfedge__Eve__Attest__ZAttestResponse resp = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuoteResp qr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE_RESP__INIT;
        _cleanup_(evc_crt_unrefp) EvcCrt *ak = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_(release_done) Release rel = {};
        const Org__Lfedge__Eve__Attest__ZAttestQuote *q = req->quote;
        uint8_t token[EVC_TOKEN_SIZE];
        const char *why = NULL;
        EvcQuoteInfo info;
        Verdict v = {}, w;
        size_t n_keys = 0;
        int r;

        CLEANUP_ERASE(token);

        /* Everything that needs no write first, outside any transaction: the certificate, the quote's
         * structure, the nonce (in memory, consumed whatever follows), the signature, the PCR digest, the
         * event log. */
        r = evc_prepare(evc_db(e), "SELECT attest_pem FROM devices WHERE id = ?", &st);
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "QUOTE: store failure");
        sqlite3_bind_int64(st, 1, d->id);
        if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL ||
            evc_crt_get(e, sqlite3_column_text(st, 0), (size_t) sqlite3_column_bytes(st, 0), &ak) < 0)
                verdict(&v, Q_NOCERT, "no attestation certificate stored");
        evc_stmt_release(TAKE_PTR(st));

        if (v.code == 0 && (!q || q->attestdata.len == 0 || q->signature.len == 0))
                verdict(&v, Q_FAILED, "empty quote (a device without TPM gets nothing here)");
        if (v.code == 0 && evc_tpms_attest_parse(q->attestdata.data, q->attestdata.len, &info, &why) < 0)
                verdict(&v, Q_FAILED, "attestData: %s", why);
        if (v.code == 0)
                switch (evc_nonce_take(&e->nonces, d->id, info.extra_data, info.extra_data_size)) {
                case EVC_NONCE_OK:
                        break;
                case EVC_NONCE_EXPIRED:
                        verdict(&v, Q_NONCE, "nonce expired");
                        break;
                default:
                        verdict(&v,
                                Q_NONCE,
                                "nonce unknown or already used (or issued before evc restarted)");
                }
        if (v.code == 0)
                (void) check_quote(e, ak, q, &info, &v);

        /* Then the judgement against stored state and its record: without fsync when it may be lost. */
        w = v;
        r = quote_apply(e, d, q, &w, EVC_SYNC_NORMAL, token, &rel);
        if (r == -EAGAIN) {
                w = v;
                r = quote_apply(e, d, q, &w, EVC_SYNC_FULL, token, &rel);
        }
        if (r < 0)
                return evc_reject(
                                reply,
                                MHD_HTTP_SERVICE_UNAVAILABLE,
                                "QUOTE: store failure: %s",
                                strerror(-r));
        if (w.code == Q_SUCCESS) {
                r = release_seal(e, d, &rel, &n_keys);
                if (r < 0)
                        return evc_reject(
                                        reply, MHD_HTTP_SERVICE_UNAVAILABLE, "QUOTE: failed to seal shares");
                qr.integrity_token = (ProtobufCBinaryData){ .len = sizeof token, .data = token };
                qr.n_keys = n_keys;
                qr.keys = rel.keys;
                log_info("Device %s attested; %zu escrowed key(s) and %zu controller share(s) released.",
                         d->uuid,
                         rel.n_escrow,
                         rel.n_wire);
        }
        qr.response = w.code;
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP;
        resp.quoteresp = &qr;
        return reply_attest(e, &resp, reply);
}

/* ---- STORE_KEYS ---- */

/* Creates the share of (device, vault) unless it exists. Inside the caller's transaction. Returns 1 when
 * created, 0 when it existed, -E2BIG when the device holds EVC_SHARES_MAX shares already. */
static int share_ensure(Evc *e, const EvcDevice *d, const char *vault) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        _cleanup_free_ char *what = NULL;
        size_t sealed_size;
        int r;

        r = evc_prepare(evc_db(e),
                        "SELECT count(*), coalesce(sum(vault_uuid = ?2), 0) FROM shares WHERE device_id = "
                        "?1",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, d->id);
        sqlite3_bind_text(st, 2, vault, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        if (sqlite3_column_int(st, 1) > 0)
                return 0;
        if (sqlite3_column_int(st, 0) >= EVC_SHARES_MAX)
                return -E2BIG;
        evc_stmt_release(TAKE_PTR(st));

        r = evc_share_new_sealed(e, d->uuid, vault, &sealed, &sealed_size);
        if (r < 0)
                return r;
        r = evc_prepare(evc_db(e),
                        "INSERT INTO shares (device_id, vault_uuid, sealed, created) VALUES (?, ?, ?, ?)",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, d->id);
        sqlite3_bind_text(st, 2, vault, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, sealed, (int) sealed_size, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, (int64_t) time(NULL));
        r = evc_step_done(evc_db(e), st);
        if (r < 0)
                return r;
        if (asprintf(&what, "controller share created for vault %s", vault) < 0)
                return -ENOMEM;
        r = evc_event(evc_db(e), d->id, what);
        if (r < 0)
                return r;
        log_info("Device %s: controller share created for vault %s.", d->uuid, vault);
        return 1;
}

static unsigned attest_store_keys(Evc *e, EvcDevice *d, Org__Lfedge__Eve__Attest__ZAttestReq *req,
                EvcReply *reply) {
        Org__Lfedge__Eve__Attest__ZAttestResponse resp = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeysResp kr = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESP__INIT;
        const Org__Lfedge__Eve__Attest__AttestStorageKeys *sk = req->storage_keys;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char vaults[EVC_STORE_KEYS_MAX][37];
        size_t n_vaults = 0, n_escrow = 0, seq = 0;
        bool ok = false;
        int r;

        if (!sk)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "STORE_KEYS without storage_keys");
        if (sk->n_keys > EVC_STORE_KEYS_MAX)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "STORE_KEYS with %zu keys", sk->n_keys);
        /* Every entry is checked before anything is stored: a malformed one refuses the whole request. */
        for (size_t i = 0; i < sk->n_keys; i++) {
                const Org__Lfedge__Eve__Attest__AttestVolumeKey *k = sk->keys[i];
                const char *why = NULL;
                char vault[37];
                bool dup = false;

                if ((int) k->key_type == KT_SHARE)
                        return evc_reject(
                                        reply,
                                        MHD_HTTP_UNPROCESSABLE_CONTENT,
                                        "STORE_KEYS: key %zu has type %d, which only the controller sends",
                                        i,
                                        KT_SHARE);
                if ((int) k->key_type == KT_SHARE_REQUEST) {
                        if (evc_share_request_parse(k->key.data, k->key.len, vault, &why) < 0)
                                return evc_reject(
                                                reply,
                                                MHD_HTTP_UNPROCESSABLE_CONTENT,
                                                "STORE_KEYS: share request %zu refused: %s",
                                                i,
                                                why);
                        for (size_t j = 0; j < n_vaults; j++)
                                dup = dup || streq(vaults[j], vault);
                        if (!dup)
                                memcpy(vaults[n_vaults++], vault, sizeof vault);
                        continue;
                }
                if (k->key.len == 0 || k->key.len > 4096)
                        return evc_reject(
                                        reply,
                                        MHD_HTTP_UNPROCESSABLE_CONTENT,
                                        "STORE_KEYS: key %zu empty or too large",
                                        i);
                n_escrow++;
        }
        if (n_escrow > EVC_ESCROW_KEYS_MAX)
                return evc_reject(
                                reply,
                                MHD_HTTP_UNPROCESSABLE_CONTENT,
                                "STORE_KEYS with %zu escrow entries",
                                n_escrow);

        r = evc_tx_begin(evc_db(e));
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");
        r = evc_prepare(evc_db(e), "SELECT itoken, revoked, trust FROM devices WHERE id = ?", &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, d->id);
        if (sqlite3_step(st) != SQLITE_ROW)
                goto fail;
        ok = sqlite3_column_bytes(st, 0) == EVC_TOKEN_SIZE && sk->integrity_token.len == EVC_TOKEN_SIZE &&
             memeq_secure(sqlite3_column_blob(st, 0), sk->integrity_token.data, EVC_TOKEN_SIZE) &&
             sqlite3_column_int(st, 1) == 0 && streq_ptr((const char *) sqlite3_column_text(st, 2), "trusted");
        evc_stmt_release(TAKE_PTR(st));

        if (ok) {
                /* Escrow entries are replaced as a whole; shares stay (a later STORE_KEYS never drops one).
                 */
                r = evc_prepare(evc_db(e), "DELETE FROM escrow WHERE device_id = ?", &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_int64(st, 1, d->id);
                r = evc_step_done(evc_db(e), st);
                if (r < 0)
                        goto fail;
                evc_stmt_release(TAKE_PTR(st));
                for (size_t i = 0; i < sk->n_keys; i++) {
                        _cleanup_free_ uint8_t *packed = NULL;
                        size_t n;

                        if ((int) sk->keys[i]->key_type == KT_SHARE_REQUEST)
                                continue;
                        r = PROTO_PACK(sk->keys[i], &packed, &n);
                        if (r < 0)
                                goto fail;
                        r = evc_prepare(evc_db(e),
                                        "INSERT INTO escrow (device_id, seq, key_msg, stored) VALUES (?, ?, "
                                        "?, ?)",
                                        &st);
                        if (r < 0)
                                goto fail;
                        sqlite3_bind_int64(st, 1, d->id);
                        sqlite3_bind_int64(st, 2, (int64_t) seq++);
                        sqlite3_bind_blob(st, 3, packed, (int) n, SQLITE_TRANSIENT);
                        sqlite3_bind_int64(st, 4, (int64_t) time(NULL));
                        r = evc_step_done(evc_db(e), st);
                        if (r < 0)
                                goto fail;
                        evc_stmt_release(TAKE_PTR(st));
                }
                for (size_t i = 0; i < n_vaults; i++) {
                        r = share_ensure(e, d, vaults[i]);
                        if (r == -E2BIG) {
                                evc_tx_rollback(evc_db(e));
                                return evc_reject(
                                                reply,
                                                MHD_HTTP_UNPROCESSABLE_CONTENT,
                                                "STORE_KEYS: device %s holds %d controller shares already",
                                                d->uuid,
                                                EVC_SHARES_MAX);
                        }
                        if (r < 0)
                                goto fail;
                }
                (void) evc_event(evc_db(e), d->id, "escrow stored");
        }
        r = evc_tx_commit(evc_db(e));
        if (r < 0)
                goto fail;
        if (!ok)
                log_notice("Device %s: STORE_KEYS with a wrong or stale integrity token.", d->uuid);
        kr.response = ok ? ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS
                         : ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_ITOKEN_MISMATCH;
        resp.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS;
        resp.storage_keys_resp = &kr;
        return reply_attest(e, &resp, reply);
fail:
        evc_tx_rollback(evc_db(e));
        return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "STORE_KEYS: store failure");
}

unsigned evc_handle_attest(Evc *e, const char *uuid, const uint8_t *body, size_t n, EvcReply *reply) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *req = NULL;
        _cleanup_(evc_device_done) EvcDevice d = {};
        unsigned s;

        s = evc_authenticate(e, body, n, uuid, &d, &ac, reply);
        if (s)
                return s;
        if (PROTO_UNPACK(&org__lfedge__eve__attest__zattest_req__descriptor, ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len, e->body_max, &req) < 0)
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "ZAttestReq does not parse");
        switch (req->reqtype) {
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT:
                return attest_cert(e, &d, req, reply);
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE:
                return attest_nonce(e, &d, reply);
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE:
                return attest_quote(e, &d, req, reply);
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS:
                return attest_store_keys(e, &d, req, reply);
        default:
                return evc_reject(reply, MHD_HTTP_UNPROCESSABLE_CONTENT, "unknown attest request type %d", req->reqtype);
        }
}
