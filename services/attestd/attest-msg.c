/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "attest-msg.h"

#include <fcntl.h>
#include <math.h>
#include <zlib.h>

#include "crypto-util.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"

#define OS_RELEASE "/etc/os-release"
#define DMI_DIR "/sys/class/dmi/id"
#define VERSION_MAX 256U

void attest_key_entries_free(AttestKeyEntry *e, size_t n) {
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                free(e[i].data);
        free(e);
}

/* ---- CERT ---- */

static const struct {
        const char *file;
        int type;
        bool required;
} cert_files[3] = {
        { "ecdh.cert.pem", ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ECDH_EXCHANGE, true },
        { "attest.cert.pem",
          ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING,
          true },
        { "ek.cert.pem", ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ENDORSEMENT_RSA, false },
};

int attest_cert_request_build(
                AttestCertRequest *r,
                const char *certs_dir,
                const uint8_t *ek_public,
                size_t ek_public_size) {

        size_t n = 0;
        int k;

        *r = (AttestCertRequest){};
        r->req = (Org__Lfedge__Eve__Attest__ZAttestReq) ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        r->req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT;
        for (size_t i = 0; i < ELEMENTSOF(cert_files); i++) {
                _cleanup_free_ char *path = NULL, *pem = NULL;
                Org__Lfedge__Eve__Certs__ZCert *z = &r->certs[n];
                size_t size;

                if (asprintf(&path, "%s/%s", certs_dir, cert_files[i].file) < 0) {
                        attest_cert_request_done(r);
                        return -ENOMEM;
                }
                k = crypto_read_file(path, false, &pem, &size);
                if (k == -ENOENT && !cert_files[i].required)
                        continue;
                if (k < 0) {
                        attest_cert_request_done(r);
                        return k;
                }
                *z = (Org__Lfedge__Eve__Certs__ZCert) ORG__LFEDGE__EVE__CERTS__ZCERT__INIT;
                crypto_cert_hash_pem16(pem, size, r->hash[n]);
                z->hashalgo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
                z->certhash = (ProtobufCBinaryData){ .len = 16, .data = r->hash[n] };
                z->type = cert_files[i].type;
                z->cert = (ProtobufCBinaryData){ .len = size, .data = (uint8_t *) pem };
                if (z->type == ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ENDORSEMENT_RSA &&
                    ek_public && ek_public_size > 0) {
                        r->ek_public = malloc(ek_public_size);
                        if (!r->ek_public) {
                                attest_cert_request_done(r);
                                return -ENOMEM;
                        }
                        memcpy(r->ek_public, ek_public, ek_public_size);
                        r->meta = (Org__Lfedge__Eve__Certs__ZCertMetaData)
                                        ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA__INIT;
                        r->meta.type = ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA_TYPE__Z_CERT_META_DATA_TYPE_TPM2_PUBLIC;
                        r->meta.meta_data =
                                        (ProtobufCBinaryData){ .len = ek_public_size, .data = r->ek_public };
                        r->metap[0] = &r->meta;
                        z->n_meta_data_items = 1;
                        z->meta_data_items = r->metap;
                }
                r->pem[n] = TAKE_PTR(pem);
                r->certp[n] = z;
                n++;
        }
        r->req.n_certs = n;
        r->req.certs = r->certp;
        return 0;
}

void attest_cert_request_done(AttestCertRequest *r) {
        for (size_t i = 0; i < ELEMENTSOF(r->pem); i++)
                free(r->pem[i]);
        free(r->ek_public);
        *r = (AttestCertRequest){};
}

const ProtobufCMessage *attest_nonce_request(void) {
        static const Org__Lfedge__Eve__Attest__ZAttestReq req = {
                PROTOBUF_C_MESSAGE_INIT(&org__lfedge__eve__attest__zattest_req__descriptor),
                .reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE,
        };
        return &req.base;
}

/* ---- QUOTE ---- */

int attest_quote_collect(Tpm2Context *tpm, const uint8_t *nonce, size_t nonce_size, AttestQuote *ret) {
        _cleanup_free_ uint8_t *attest = NULL, *sig = NULL;
        size_t attest_size = 0, sig_size = 0;
        AttestQuote q = {};
        int r;

        if (nonce_size < TPM2_NONCE_MIN || nonce_size > TPM2_NONCE_MAX)
                return -EINVAL;
        r = tpm2_quote(tpm,
                       ATTEST_QUOTE_PCR_MASK,
                       nonce,
                       nonce_size,
                       &attest,
                       &attest_size,
                       &sig,
                       &sig_size,
                       q.sig_rs);
        if (r < 0)
                return r;
        /* After the quote: the values reported are those quoted unless a PCR moved in between (then the
         * controller finds the digest wrong and the next round quotes again). */
        r = tpm2_pcr_read(tpm, TPM2_PCRS_MASK, q.pcrs);
        if (r < 0)
                return r;
        memcpy(q.nonce, nonce, nonce_size);
        q.nonce_size = nonce_size;
        q.attest = TAKE_PTR(attest);
        q.attest_size = attest_size;
        *ret = q;
        return 0;
}

void attest_quote_done(AttestQuote *q) {
        free(q->attest);
        *q = (AttestQuote){};
}

void attest_extras_done(AttestExtras *x) {
        free(x->eventlog_gz);
        free(x->eve_version);
        free(x->firmware_version);
        *x = (AttestExtras){};
}

int attest_gzip(const void *data, size_t size, uint8_t **ret, size_t *ret_size) {
        z_stream z = {};
        uint8_t *out;
        size_t cap;
        int k;

        if (size > UINT32_MAX / 2)
                return -EFBIG;
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                return -ENOMEM;
        cap = deflateBound(&z, (uLong) size);
        out = malloc(cap);
        if (!out) {
                deflateEnd(&z);
                return -ENOMEM;
        }
        z.next_in = (Bytef *) data;
        z.avail_in = (uInt) size;
        z.next_out = out;
        z.avail_out = (uInt) cap;
        k = deflate(&z, Z_FINISH);
        deflateEnd(&z);
        if (k != Z_STREAM_END) {
                free(out);
                return -EIO;
        }
        *ret = out;
        *ret_size = cap - z.avail_out;
        return 0;
}

int attest_eventlog_read(const char *path, uint8_t **ret_gz, size_t *ret_gz_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        buf = malloc(ATTEST_EVENTLOG_MAX + 1);
        if (!buf)
                return -ENOMEM;
        /* securityfs reports size 0: read to the end, one byte beyond the cap to notice a larger log. */
        for (;;) {
                ssize_t k = read(fd, buf + n, ATTEST_EVENTLOG_MAX + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > ATTEST_EVENTLOG_MAX)
                        return -EFBIG;
        }
        if (n == 0)
                return -ENODATA;
        return attest_gzip(buf, n, ret_gz, ret_gz_size);
}

static char *read_small(const char *path) {
        _cleanup_free_ char *s = NULL;
        size_t n;

        if (crypto_read_file(path, false, &s, &n) < 0 || n > 64 * 1024)
                return NULL;
        s[strcspn(s, "\n")] = '\0';
        return TAKE_PTR(s);
}

/* Keeps printable ASCII only: version strings come from files anyone may have edited. */
static void printable(char *s) {
        for (char *p = s; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        *p = '?';
        if (strlen(s) > VERSION_MAX)
                s[VERSION_MAX] = '\0';
}

static char *os_pretty_name(const char *path) {
        _cleanup_free_ char *text = NULL;
        size_t n;

        if (crypto_read_file(path, false, &text, &n) < 0)
                return NULL;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
                        char *v = line + 12;
                        size_t l = strlen(v);
                        if (l >= 2 && (v[0] == '"' || v[0] == '\'') && v[l - 1] == v[0]) {
                                v[l - 1] = '\0';
                                v++;
                        }
                        return strdup(v);
                }
        }
        return NULL;
}

int attest_versions(const char *os_release, char **ret_eve, char **ret_firmware) {
        _cleanup_free_ char *pretty = os_pretty_name(os_release ?: OS_RELEASE), *eve = NULL, *fw = NULL,
                            *vendor = read_small(DMI_DIR "/bios_vendor"),
                            *version = read_small(DMI_DIR "/bios_version"),
                            *date = read_small(DMI_DIR "/bios_date");

        if (asprintf(&eve, "eve-trust %s (%s)", PROJECT_VERSION, pretty ?: "unknown OS") < 0)
                return -ENOMEM;
        printable(eve);
        if (vendor && version && date) {
                if (asprintf(&fw, "%s-%s-%s", vendor, version, date) < 0)
                        return -ENOMEM;
                printable(fw);
        }
        *ret_eve = TAKE_PTR(eve);
        *ret_firmware = TAKE_PTR(fw);
        return 0;
}

int attest_location_read(const char *path, double *ret_lat, double *ret_lon) {
        _cleanup_free_ char *s = NULL;
        char *end = NULL;
        double lat, lon;
        size_t n;
        int r;

        r = crypto_read_file(path, false, &s, &n);
        if (r < 0)
                return r;
        if (n > 256)
                return -EINVAL;
        errno = 0;
        lat = strtod(s, &end);
        if (errno != 0 || end == s)
                return -EINVAL;
        while (*end == ' ' || *end == '\t' || *end == ',')
                end++;
        s = memmove(s, end, strlen(end) + 1);
        errno = 0;
        lon = strtod(s, &end);
        if (errno != 0 || end == s)
                return -EINVAL;
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
                end++;
        if (*end != '\0' || !isfinite(lat) || !isfinite(lon) || fabs(lat) > 90.0 || fabs(lon) > 180.0)
                return -EINVAL;
        *ret_lat = lat;
        *ret_lon = lon;
        return 0;
}

int attest_quote_request_build(AttestQuoteRequest *r, const AttestQuote *q, const AttestExtras *x) {
        gnutls_datum_t der = {};
        size_t nv = 0;
        int k;

        *r = (AttestQuoteRequest){};
        r->req = (Org__Lfedge__Eve__Attest__ZAttestReq) ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        r->quote = (Org__Lfedge__Eve__Attest__ZAttestQuote) ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        r->req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE;
        r->req.quote = &r->quote;

        k = crypto_ecdsa_rs_to_der(q->sig_rs, &der);
        if (k < 0)
                return k;
        r->sig_der = malloc(der.size);
        if (!r->sig_der) {
                gnutls_free(der.data);
                return -ENOMEM;
        }
        memcpy(r->sig_der, der.data, der.size);
        r->quote.signature = (ProtobufCBinaryData){ .len = der.size, .data = r->sig_der };
        gnutls_free(der.data);
        r->quote.attestdata = (ProtobufCBinaryData){ .len = q->attest_size, .data = q->attest };

        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
                r->pcr[i] = (Org__Lfedge__Eve__Attest__TpmPCRValue)
                                ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT;
                r->pcr[i].index = i;
                r->pcr[i].hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
                r->pcr[i].value = (ProtobufCBinaryData){ .len = TPM2_SHA256_SIZE,
                                                         .data = (uint8_t *) q->pcrs[i] };
                r->pcrp[i] = &r->pcr[i];
        }
        r->quote.n_pcr_values = TPM2_PCRS_MAX;
        r->quote.pcr_values = r->pcrp;

        if (x->eve_version) {
                r->version[nv] = (Org__Lfedge__Eve__Attest__AttestVersionInfo)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VERSION_INFO__INIT;
                r->version[nv].version_type =
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VERSION_TYPE__ATTEST_VERSION_TYPE_EVE;
                r->version[nv].version = x->eve_version;
                r->versionp[nv] = &r->version[nv];
                nv++;
        }
        if (x->firmware_version) {
                r->version[nv] = (Org__Lfedge__Eve__Attest__AttestVersionInfo)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VERSION_INFO__INIT;
                r->version[nv].version_type =
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VERSION_TYPE__ATTEST_VERSION_TYPE_FIRMWARE;
                r->version[nv].version = x->firmware_version;
                r->versionp[nv] = &r->version[nv];
                nv++;
        }
        r->quote.n_versions = nv;
        r->quote.versions = r->versionp;

        if (x->location_configured) {
                r->gps = (Org__Lfedge__Eve__Attest__AttestGPSCoordinates)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSCOORDINATES__INIT;
                if (x->location_present) {
                        r->gps.gps_input =
                                        ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_PRESENT;
                        r->gps.latitude = x->latitude;
                        r->gps.longitude = x->longitude;
                } else
                        r->gps.gps_input =
                                        ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_ABSENT;
                r->quote.gps_info = &r->gps;
        }

        if (x->eventlog_gz) {
                r->quote.tpm_binary_event_log =
                                (ProtobufCBinaryData){ .len = x->eventlog_gz_size, .data = x->eventlog_gz };
                if (protobuf_c_message_get_packed_size(&r->req.base) > ATTEST_QUOTE_MSG_MAX) {
                        r->quote.tpm_binary_event_log = (ProtobufCBinaryData){};
                        r->eventlog_dropped = true;
                }
        }
        return 0;
}

void attest_quote_request_done(AttestQuoteRequest *r) {
        free(r->sig_der);
        *r = (AttestQuoteRequest){};
}

/* ---- STORE_KEYS ---- */

int attest_store_request_build(
                AttestStoreRequest *r,
                const uint8_t *token,
                size_t token_size,
                const AttestKeyEntry *e,
                size_t n) {

        if (n > ATTEST_KEYS_MAX)
                return -E2BIG;
        *r = (AttestStoreRequest){};
        r->req = (Org__Lfedge__Eve__Attest__ZAttestReq) ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        r->sk = (Org__Lfedge__Eve__Attest__AttestStorageKeys)
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        r->req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        r->req.storage_keys = &r->sk;
        r->sk.integrity_token = (ProtobufCBinaryData){ .len = token_size, .data = (uint8_t *) token };
        for (size_t i = 0; i < n; i++) {
                r->keys[i] = (Org__Lfedge__Eve__Attest__AttestVolumeKey)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT;
                r->keys[i].key_type = (Org__Lfedge__Eve__Attest__AttestVolumeKeyType) e[i].type;
                r->keys[i].key = (ProtobufCBinaryData){ .len = e[i].size, .data = e[i].data };
                r->keyp[i] = &r->keys[i];
        }
        r->sk.n_keys = n;
        r->sk.keys = r->keyp;
        return 0;
}

/* ---- responses ---- */

int attest_response_parse(
                const void *payload,
                size_t size,
                int expected,
                Org__Lfedge__Eve__Attest__ZAttestResponse **ret) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *r = NULL;
        bool ok;
        int k;

        if (!payload || size == 0)
                return -EBADMSG;
        k =
                        PROTO_UNPACK(&org__lfedge__eve__attest__zattest_response__descriptor,
                                     payload,
                                     size,
                                     ATTEST_RESPONSE_MAX,
                                     &r);
        if (k < 0)
                return k == -ENOMEM ? k : -EBADMSG;
        if ((int) r->resptype != expected)
                return -EBADMSG;
        switch (expected) {
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE:
                ok = r->nonce;
                break;
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP:
                ok = r->quoteresp;
                break;
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS:
                ok = r->storage_keys_resp;
                break;
        default:
                ok = true;
        }
        if (!ok)
                return -EBADMSG;
        *ret = TAKE_PTR(r);
        return 0;
}

int attest_response_nonce(
                const Org__Lfedge__Eve__Attest__ZAttestResponse *r,
                uint8_t ret[static TPM2_NONCE_MAX],
                size_t *ret_size) {
        size_t n;

        if (!r->nonce)
                return -EBADMSG;
        n = r->nonce->nonce.len;
        if (n < TPM2_NONCE_MIN || n > TPM2_NONCE_MAX)
                return -EBADMSG;
        memcpy(ret, r->nonce->nonce.data, n);
        *ret_size = n;
        return 0;
}

int attest_response_keys(
                const Org__Lfedge__Eve__Attest__ZAttestQuoteResp *q, AttestKeyEntry **ret, size_t *ret_n) {
        AttestKeyEntry *e;

        if (q->n_keys > ATTEST_KEYS_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < q->n_keys; i++)
                if (!q->keys[i] || q->keys[i]->key.len == 0 || q->keys[i]->key.len > ATTEST_KEY_SIZE_MAX)
                        return -EBADMSG;
        e = calloc(MAX(q->n_keys, 1U), sizeof *e);
        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < q->n_keys; i++) {
                e[i].type = (uint32_t) q->keys[i]->key_type;
                e[i].size = q->keys[i]->key.len;
                e[i].data = malloc(e[i].size);
                if (!e[i].data) {
                        attest_key_entries_free(e, i);
                        return -ENOMEM;
                }
                memcpy(e[i].data, q->keys[i]->key.data, e[i].size);
        }
        *ret = e;
        *ret_n = q->n_keys;
        return 0;
}
