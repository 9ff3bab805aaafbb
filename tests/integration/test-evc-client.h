/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-evc-client.h: the node side that the evc integration tests drive: "evc serve" over TLS on 127.0.0.1
 * (port 0, read back), a libcurl client pinned to the controller root, software device keys, signed
 * envelopes, and software-signed TPMS_ATTEST quotes with a gzip event log that replays to the reported PCRs
 * 0 and 4. */
#pragma once

#include <curl/curl.h>

#include "attest.pb-c.h"
#include "auth.pb-c.h"
#include "config.pb-c.h"
#include "evc-crypto.h"
#include "fixtures.h"

#define SRV_ECDH_MAX 32

typedef struct Srv {
        char *dir;
        char *root_pem;
        pid_t pid;
        unsigned port;
        gnutls_x509_crt_t signing; /* from /certs, checked against root.pem */
        uint8_t signing_hash[32];
        size_t n_certs; /* how many certificates /certs served last */
        size_t n_ecdh;  /* the ECDH certificates it served, in its order */
        gnutls_x509_crt_t ecdh[SRV_ECDH_MAX];
        uint8_t ecdh_hash[SRV_ECDH_MAX][16];
        CURL *curl; /* kept: connections are reused, as the node's client does */
} Srv;

#define EVC(s, out, ...) evc_admin(s, out, __VA_ARGS__, NULL)

typedef struct Resp {
        long status;
        uint8_t *body;
        size_t size;
        char *ctype;
} Resp;

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

typedef struct Bytes {
        uint8_t b[4096];
        size_t n;
} Bytes;

typedef enum QuoteFlaw {
        FLAW_NONE,
        FLAW_SIGNATURE,  /* signed by a key that is not the attestation key */
        FLAW_PCR_DIGEST, /* reported PCR values differ from what was quoted */
        FLAW_EVENTLOG,   /* the event log does not replay to the reported PCR 4 */
} QuoteFlaw;

#define Q_SUCCESS ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS
#define Q_NONCE ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NONCE_MISMATCH
#define Q_NOCERT ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NO_CERT_FOUND
#define Q_FAILED ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_QUOTE_FAILED
#define SK_SUCCESS \
        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS
#define SK_ITOKEN \
        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_ITOKEN_MISMATCH

/* key_type values of proto/evetrust.proto */
#define KT_VSK 1
#define KT_ESCROW 17750
#define KT_SHARE_REQUEST 17751
#define KT_SHARE 17752

int evc_admin(Srv *s, char **out, ...);
int srv_stop(void *p);
void srv_serve(Srv *s, const char *nonce_ttl);
Srv *srv_start(const char *nonce_ttl);
void resp_done(Resp *r);
Resp http(Srv *s, const char *path, const void *body, size_t n, const char *ctype);
Org__Lfedge__Eve__Auth__AuthContainer *open_signed(Srv *s, const Resp *r);
/* open_signed() and the payload unpacked as desc. */
void open_payload(Srv *s, const Resp *r, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret);
/* GET /certs: every certificate chains to certs/root.pem, exactly one signing certificate. */
void fetch_certs(Srv *s);
/* The ECDH certificate /certs served under this certHash, NULL if none. */
gnutls_x509_crt_t srv_ecdh_cert(Srv *s, const uint8_t hash[static 16]);
char *read_text(const char *path);
void gen(const char *dir,
         const char *name,
         EvcCertKind kind,
         gnutls_x509_crt_t issuer,
         gnutls_x509_privkey_t issuer_key,
         gnutls_x509_crt_t *crt,
         gnutls_x509_privkey_t *key,
         char **pem,
         char **path);
int dev_free(void *p);
Dev *dev_new(void);
void seal_container(
                gnutls_x509_crt_t crt,
                gnutls_x509_privkey_t key,
                const char *sender_pem,
                const ProtobufCMessage *msg,
                uint8_t **ret,
                size_t *ret_size);
Resp dev_post(Srv *s, Dev *d, const char *action, const ProtobufCMessage *msg);
long dev_register(Srv *s, Dev *d, const char *serial);
long dev_uuid(Srv *s, Dev *d);
void dev_onboard(Srv *s, Dev *d, const char *serial);
long attest(Srv *s,
            Dev *d,
            const Org__Lfedge__Eve__Attest__ZAttestReq *req,
            Org__Lfedge__Eve__Attest__ZAttestResponse **ret);
long send_certs(Srv *s, Dev *d, const char *ak_pem);
void get_nonce(Srv *s, Dev *d, uint8_t nonce[32]);
void make_eventlog(Dev *d, uint8_t tag, Bytes *gz);
void sign_der(gnutls_x509_privkey_t key, const uint8_t *p, size_t n, gnutls_datum_t *sig);
int post_quote(Srv *s,
               Dev *d,
               const uint8_t *att,
               size_t att_n,
               const uint8_t *sig,
               size_t sig_n,
               uint8_t reported[24][32],
               const Bytes *gz,
               Org__Lfedge__Eve__Attest__ZAttestResponse **ret);
int send_quote(Srv *s,
               Dev *d,
               const uint8_t *nonce,
               size_t nonce_size,
               QuoteFlaw flaw,
               Org__Lfedge__Eve__Attest__ZAttestResponse **ret);
int attest_once(Srv *s, Dev *d, QuoteFlaw flaw, size_t *ret_keys);
int store_keys(Srv *s, Dev *d, const uint8_t *token, size_t token_size, const char *key);
long get_config(Srv *s,
                Dev *d,
                const char *have_hash,
                const uint8_t *token,
                size_t token_size,
                Org__Lfedge__Eve__Config__ConfigResponse **ret);
/* STORE_KEYS with the current token and these entries (type, bytes); returns the HTTP status, and on 201 the
 * AttestStorageKeysResponseCode in *ret_code. */
typedef struct KeyEntry {
        int type;
        const void *data;
        size_t size;
} KeyEntry;
long store_entries(Srv *s, Dev *d, const KeyEntry *entries, size_t n, int *ret_code);
long store_entries_token(
                Srv *s,
                Dev *d,
                const uint8_t *token,
                size_t token_size,
                const KeyEntry *entries,
                size_t n,
                int *ret_code);
/* An EveControllerShare carrying vault_uuid only (a share request's key), newly allocated. */
void share_request(const char *vault_uuid, uint8_t **ret, size_t *ret_size);
/* The node's side of a released share (key_type 17752): K = SHA-256(X‖Y) of the device's software ECDH key
 * and the controller ECDH certificate from /certs that controller_cert_hash names (crypto_ecdh_soft, as
 * eve-vaultd does without a TPM), then AES-256-GCM with the contract's additional data. */
void share_open(Srv *s,
                Dev *d,
                const Org__Lfedge__Eve__Attest__AttestVolumeKey *k,
                char ret_vault[static 37],
                uint8_t ret_share[static 32]);
/* A new device, onboarded, its certificates sent, attested (token in d->token). */
Dev *dev_ready(Srv *s, const char *serial);
/* A quote round that must succeed; returns the response (free with proto_free). */
Org__Lfedge__Eve__Attest__ZAttestResponse *attest_ok(Srv *s, Dev *d);

char *
                decrypt_block(Srv *s,
                              Dev *d,
                              const Org__Lfedge__Eve__Config__EdgeDevConfig *c,
                              const Org__Lfedge__Eve__Common__CipherBlock *b,
                              int field);
