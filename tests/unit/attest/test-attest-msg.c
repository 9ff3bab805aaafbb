/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-attestd's messages with exact expectations: CERT carries the ECDH/attestation/EK certificates with
 * EVE's certHash (SHA-256(PEM)[:16]) and the EK's TPM2B_PUBLIC; QUOTE carries DER signature, 24 PCRs,
 * versions, gps_info and a gzip event log that inflates back to the file (dropped when it would push the
 * message over 62 KiB, refused over 124 KiB); STORE_KEYS wire bytes; the response checks (wrong type, nonce
 * length, key limits). */
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <zlib.h>

#include "attest-msg.h"
#include "crypto-util.h"
#include "proto-util.h"
#include "tests.h"

static void write_file(const char *dir, const char *name, const void *data, size_t n) {
        _cleanup_free_ char *p = NULL;
        _cleanup_fclose_ FILE *f = NULL;

        ASSERT_OK(asprintf(&p, "%s/%s", dir, name));
        f = fopen(p, "we");
        ASSERT_NOT_NULL(f);
        ASSERT_EQ(fwrite(data, 1, n, f), n);
}

static char *mkdir_tmp(const char *name) {
        char *p;
        ASSERT_OK(asprintf(&p, "%s/%s", test_tmpdir(), name));
        ASSERT_OK(mkdir(p, 0755));
        return p;
}

static void gunzip(const uint8_t *gz, size_t n, uint8_t **ret, size_t *ret_size) {
        z_stream z = {};
        size_t cap = 1 << 20;
        uint8_t *out = malloc(cap);

        ASSERT_NOT_NULL(out);
        ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
        z.next_in = (Bytef *) gz;
        z.avail_in = (uInt) n;
        z.next_out = out;
        z.avail_out = (uInt) cap;
        ASSERT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
        *ret_size = z.total_out;
        *ret = out;
        inflateEnd(&z);
}

TEST(cert_request) {
        _cleanup_free_ char *dir = mkdir_tmp("certs");
        static const char ecdh[] = "-----BEGIN CERTIFICATE-----\necdh\n-----END CERTIFICATE-----\n";
        static const char att[] = "-----BEGIN CERTIFICATE-----\nattest\n-----END CERTIFICATE-----\n";
        static const char ek[] = "-----BEGIN CERTIFICATE-----\nek\n-----END CERTIFICATE-----\n";
        const uint8_t ek_pub[] = { 0x00, 0x03, 0xaa, 0xbb, 0xcc };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *back = NULL;
        _cleanup_free_ uint8_t *packed = NULL;
        AttestCertRequest r;
        uint8_t h[32];
        size_t n;

        /* Without the attestation certificate: refused. */
        write_file(dir, "ecdh.cert.pem", ecdh, strlen(ecdh));
        ASSERT_ERROR(attest_cert_request_build(&r, dir, NULL, 0), ENOENT);

        write_file(dir, "attest.cert.pem", att, strlen(att));
        ASSERT_OK(attest_cert_request_build(&r, dir, ek_pub, sizeof ek_pub));
        ASSERT_EQ(r.req.n_certs, 2); /* no EK certificate file: no EK entry */
        attest_cert_request_done(&r);

        write_file(dir, "ek.cert.pem", ek, strlen(ek));
        ASSERT_OK(attest_cert_request_build(&r, dir, ek_pub, sizeof ek_pub));
        ASSERT_OK(PROTO_PACK(&r.req, &packed, &n));
        attest_cert_request_done(&r);

        ASSERT_OK(PROTO_UNPACK(
                        &org__lfedge__eve__attest__zattest_req__descriptor, packed, n, 1 << 16, &back));
        ASSERT_EQ(back->reqtype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT);
        ASSERT_EQ(back->n_certs, 3);
        static const struct {
                const char *pem;
                int type;
        } want[] = { { ecdh, 13 }, { att, 11 }, { ek, 12 } };
        for (size_t i = 0; i < 3; i++) {
                const Org__Lfedge__Eve__Certs__ZCert *z = back->certs[i];
                struct sha256_ctx c;

                sha256_init(&c);
                sha256_update(&c, strlen(want[i].pem), (const uint8_t *) want[i].pem);
                sha256_digest(&c, 32, h);
                ASSERT_EQ(z->type, want[i].type);
                ASSERT_EQ(z->hashalgo,
                          ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES);
                ASSERT_MEMEQ(z->certhash.data, z->certhash.len, h, 16);
                ASSERT_MEMEQ(z->cert.data, z->cert.len, want[i].pem, strlen(want[i].pem));
                ASSERT_EQ(z->n_meta_data_items, i == 2 ? 1 : 0);
        }
        ASSERT_EQ(back->certs[2]->meta_data_items[0]->type,
                  ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA_TYPE__Z_CERT_META_DATA_TYPE_TPM2_PUBLIC);
        ASSERT_MEMEQ(back->certs[2]->meta_data_items[0]->meta_data.data,
                     back->certs[2]->meta_data_items[0]->meta_data.len,
                     ek_pub,
                     sizeof ek_pub);
}

TEST(nonce_request_bytes) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;

        ASSERT_OK(proto_pack(attest_nonce_request(), &b, &n));
        ASSERT_MEMEQ(b, n, "\x08\x02", 2); /* facts §1.9 */
}

static AttestQuote fake_quote(void) {
        AttestQuote q = { .nonce_size = 32, .attest_size = 129 };

        q.attest = malloc(q.attest_size);
        ASSERT_NOT_NULL(q.attest);
        memset(q.attest, 0x5a, q.attest_size);
        for (unsigned i = 0; i < 64; i++)
                q.sig_rs[i] = (uint8_t) (i + 1);
        q.sig_rs[0] = 0; /* a short r: DER drops the zero */
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                memset(q.pcrs[i], (int) i, TPM2_SHA256_SIZE);
        return q;
}

TEST(quote_request) {
        _cleanup_free_ char *dir = mkdir_tmp("quote");
        _cleanup_free_ uint8_t *log = malloc(20000), *packed = NULL, *plain = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *back = NULL;
        AttestExtras x = {};
        AttestQuote q = fake_quote();
        AttestQuoteRequest r;
        uint8_t rs[64];
        size_t n, plain_n;
        _cleanup_free_ char *path = NULL;

        ASSERT_NOT_NULL(log);
        for (size_t i = 0; i < 20000; i++)
                log[i] = (uint8_t) (i * 7 / 13);
        write_file(dir, "log", log, 20000);
        ASSERT_OK(asprintf(&path, "%s/log", dir));
        ASSERT_OK(attest_eventlog_read(path, &x.eventlog_gz, &x.eventlog_gz_size));
        x.eve_version = strdup("eve-trust 0.1.0 (Debian)");
        x.location_configured = x.location_present = true;
        x.latitude = 48.5;
        x.longitude = -2.25;

        ASSERT_OK(attest_quote_request_build(&r, &q, &x));
        ASSERT_FALSE(r.eventlog_dropped);
        ASSERT_OK(PROTO_PACK(&r.req, &packed, &n));
        attest_quote_request_done(&r);
        ASSERT_LE(n, ATTEST_QUOTE_MSG_MAX);

        ASSERT_OK(PROTO_UNPACK(
                        &org__lfedge__eve__attest__zattest_req__descriptor, packed, n, 1 << 20, &back));
        ASSERT_EQ(back->reqtype, ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE);
        ASSERT_MEMEQ(back->quote->attestdata.data, back->quote->attestdata.len, q.attest, q.attest_size);
        ASSERT_OK(crypto_ecdsa_der_to_rs(back->quote->signature.data, back->quote->signature.len, rs));
        ASSERT_MEMEQ(rs, 64, q.sig_rs, 64);
        ASSERT_EQ(back->quote->n_pcr_values, 24);
        for (unsigned i = 0; i < 24; i++) {
                ASSERT_EQ(back->quote->pcr_values[i]->index, i);
                ASSERT_EQ(back->quote->pcr_values[i]->hash_algo,
                          ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256);
                ASSERT_MEMEQ(back->quote->pcr_values[i]->value.data,
                             back->quote->pcr_values[i]->value.len,
                             q.pcrs[i],
                             32);
        }
        ASSERT_EQ(back->quote->n_versions, 1);
        ASSERT_STREQ(back->quote->versions[0]->version, "eve-trust 0.1.0 (Debian)");
        ASSERT_EQ(back->quote->gps_info->gps_input,
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_PRESENT);
        ASSERT_TRUE(back->quote->gps_info->latitude == 48.5 && back->quote->gps_info->longitude == -2.25);
        ASSERT_EQ(back->quote->n_event_log, 0); /* the deprecated parsed log is never sent */
        gunzip(back->quote->tpm_binary_event_log.data,
               back->quote->tpm_binary_event_log.len,
               &plain,
               &plain_n);
        ASSERT_MEMEQ(plain, plain_n, log, 20000);

        /* A source without a fix: ABSENT. No source: no gps_info at all. */
        x.location_present = false;
        ASSERT_OK(attest_quote_request_build(&r, &q, &x));
        ASSERT_EQ(r.quote.gps_info->gps_input,
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_ABSENT);
        attest_quote_request_done(&r);
        x.location_configured = false;
        ASSERT_OK(attest_quote_request_build(&r, &q, &x));
        ASSERT_NULL(r.quote.gps_info);
        attest_quote_request_done(&r);

        attest_extras_done(&x);
        attest_quote_done(&q);
}

TEST(eventlog_caps) {
        _cleanup_free_ char *dir = mkdir_tmp("eventlog"), *big = NULL, *empty = NULL, *fits = NULL;
        _cleanup_free_ uint8_t *data = malloc(ATTEST_EVENTLOG_MAX + 1);
        uint8_t *gz = NULL;
        size_t gz_n;
        AttestQuote q = fake_quote();
        AttestExtras x = {};
        AttestQuoteRequest r;

        ASSERT_NOT_NULL(data);
        /* Random-looking bytes do not compress: a log of the full cap makes the message too large. */
        for (size_t i = 0, v = 1; i <= ATTEST_EVENTLOG_MAX; i++) {
                v = v * 1103515245U + 12345U;
                data[i] = (uint8_t) (v >> 16);
        }
        write_file(dir, "big", data, ATTEST_EVENTLOG_MAX + 1);
        write_file(dir, "fits", data, ATTEST_EVENTLOG_MAX);
        write_file(dir, "empty", data, 0);
        ASSERT_OK(asprintf(&big, "%s/big", dir));
        ASSERT_OK(asprintf(&fits, "%s/fits", dir));
        ASSERT_OK(asprintf(&empty, "%s/empty", dir));

        ASSERT_ERROR(attest_eventlog_read(big, &gz, &gz_n), EFBIG);
        ASSERT_ERROR(attest_eventlog_read(empty, &gz, &gz_n), ENODATA);
        ASSERT_ERROR(attest_eventlog_read("/nonexistent/log", &gz, &gz_n), ENOENT);
        ASSERT_OK(attest_eventlog_read(fits, &x.eventlog_gz, &x.eventlog_gz_size));
        ASSERT_OK(attest_quote_request_build(&r, &q, &x));
        ASSERT_TRUE(r.eventlog_dropped);
        ASSERT_EQ(r.quote.tpm_binary_event_log.len, 0);
        ASSERT_LE(protobuf_c_message_get_packed_size(&r.req.base), ATTEST_QUOTE_MSG_MAX);
        attest_quote_request_done(&r);
        attest_extras_done(&x);
        attest_quote_done(&q);
}

TEST(location_file) {
        _cleanup_free_ char *dir = mkdir_tmp("loc"), *p = NULL;
        double lat, lon;
        static const struct {
                const char *text;
                bool ok;
                double lat, lon;
        } cases[] = {
                { "48.8566 2.3522\n", true, 48.8566, 2.3522 },
                { "-33.9,18.4", true, -33.9, 18.4 },
                { "0 0", true, 0, 0 },
                { "91 0", false },
                { "10 181", false },
                { "10", false },
                { "abc def", false },
                { "10 20 30", false },
                { "nan 1", false },
                { "", false },
        };

        ASSERT_OK(asprintf(&p, "%s/location", dir));
        ASSERT_ERROR(attest_location_read(p, &lat, &lon), ENOENT);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                write_file(dir, "location", cases[i].text, strlen(cases[i].text));
                if (!cases[i].ok) {
                        ASSERT_ERROR(attest_location_read(p, &lat, &lon), EINVAL);
                        continue;
                }
                ASSERT_OK(attest_location_read(p, &lat, &lon));
                ASSERT_TRUE(lat == cases[i].lat && lon == cases[i].lon);
        }
}

TEST(versions) {
        _cleanup_free_ char *dir = mkdir_tmp("os"), *p = NULL, *eve = NULL, *fw = NULL;
        static const char osr[] =
                        "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";

        write_file(dir, "os-release", osr, strlen(osr));
        ASSERT_OK(asprintf(&p, "%s/os-release", dir));
        ASSERT_OK(attest_versions(p, &eve, &fw));
        ASSERT_STREQ(eve, "eve-trust " PROJECT_VERSION " (Debian GNU/Linux 12 (bookworm))");
}

TEST(store_keys_bytes) {
        uint8_t token[3] = { 0xa1, 0xa2, 0xa3 }, k1[2] = { 0x01, 0x02 };
        AttestKeyEntry e[1] = { { .type = 1, .data = k1, .size = 2 } };
        _cleanup_free_ uint8_t *b = NULL;
        AttestStoreRequest r;
        size_t n;
        /* facts §1.9: 08 04 22 <len> AttestStorageKeys{0a <len> token, 12 <len> AttestVolumeKey{08 01, 12
         * <len> key}} */
        static const uint8_t want[] = { 0x08, 0x04, 0x22, 0x0d, 0x0a, 0x03, 0xa1, 0xa2, 0xa3,
                                        0x12, 0x06, 0x08, 0x01, 0x12, 0x02, 0x01, 0x02 };

        ASSERT_OK(attest_store_request_build(&r, token, 3, e, 1));
        ASSERT_OK(PROTO_PACK(&r.req, &b, &n));
        ASSERT_MEMEQ(b, n, want, sizeof want);
        ASSERT_ERROR(attest_store_request_build(&r, token, 3, e, ATTEST_KEYS_MAX + 1), E2BIG);
}

static void pack_response(const Org__Lfedge__Eve__Attest__ZAttestResponse *r, uint8_t **ret, size_t *ret_n) {
        ASSERT_OK(PROTO_PACK(r, ret, ret_n));
}

TEST(response_checks) {
        Org__Lfedge__Eve__Attest__ZAttestResponse r = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        Org__Lfedge__Eve__Attest__ZAttestNonceResp nr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_NONCE_RESP__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuoteResp qr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE_RESP__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey k = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT,
                                                  *kp[1] = { &k };
        Org__Lfedge__Eve__Attest__ZAttestResponse *out = NULL;
        uint8_t nonce[64] = {}, got[TPM2_NONCE_MAX];
        size_t got_n;

        /* A NONCE answer of the right type with 11, 12, 32, 33 bytes. */
        r.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE;
        r.nonce = &nr;
        static const size_t sizes[] = { 11, 12, 32, 33 };
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ uint8_t *b = NULL;
                size_t n;

                nr.nonce = (ProtobufCBinaryData){ .len = sizes[i], .data = nonce };
                pack_response(&r, &b, &n);
                ASSERT_OK(attest_response_parse(
                                b, n, ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE, &out));
                if (sizes[i] == 12 || sizes[i] == 32) {
                        ASSERT_OK(attest_response_nonce(out, got, &got_n));
                        ASSERT_EQ(got_n, sizes[i]);
                } else
                        ASSERT_ERROR(attest_response_nonce(out, got, &got_n), EBADMSG);
                out = proto_free(out);
                /* The wrong type expected. */
                ASSERT_ERROR(attest_response_parse(
                                             b,
                                             n,
                                             ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP,
                                             &out),
                             EBADMSG);
        }
        ASSERT_ERROR(attest_response_parse(NULL, 0, 2, &out), EBADMSG);
        ASSERT_ERROR(attest_response_parse("\xff\xff", 2, 2, &out), EBADMSG);

        /* QUOTE answer without its part: refused. Keys: copied; empty or oversized keys refused. */
        {
                _cleanup_free_ uint8_t *b = NULL;
                size_t n;
                r.nonce = NULL;
                r.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP;
                pack_response(&r, &b, &n);
                ASSERT_ERROR(attest_response_parse(
                                             b,
                                             n,
                                             ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP,
                                             &out),
                             EBADMSG);
        }
        {
                AttestKeyEntry *e = NULL;
                size_t ne;
                uint8_t key[4] = { 1, 2, 3, 4 };

                qr.n_keys = 1;
                qr.keys = kp;
                k.key_type = 17750;
                k.key = (ProtobufCBinaryData){ .len = 4, .data = key };
                ASSERT_OK(attest_response_keys(&qr, &e, &ne));
                ASSERT_EQ(ne, 1);
                ASSERT_EQ(e[0].type, 17750);
                ASSERT_MEMEQ(e[0].data, e[0].size, key, 4);
                attest_key_entries_free(e, ne);
                k.key.len = 0;
                ASSERT_ERROR(attest_response_keys(&qr, &e, &ne), EBADMSG);
                k.key.len = ATTEST_KEY_SIZE_MAX + 1;
                ASSERT_ERROR(attest_response_keys(&qr, &e, &ne), EBADMSG);
                qr.n_keys = ATTEST_KEYS_MAX + 1;
                ASSERT_ERROR(attest_response_keys(&qr, &e, &ne), EBADMSG);
        }
}

DEFINE_TEST_MAIN
