/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Wire tests of our eve-api .proto files and of proto-util. Every expected byte string below was derived by
 * hand from the protobuf wire rules (tag = field << 3 | wire type; 0 varint, 1 fixed64, 2 length-delimited;
 * fields in number order; proto3 scalars at their default are not sent; repeated scalars packed) and the
 * field numbers of lf-edge/eve-api. A change of field number, type or enum value in proto/ breaks these
 * tests. */
#include "attest.pb-c.h"
#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "config.pb-c.h"
#include "evecommon.pb-c.h"
#include "eveuuid.pb-c.h"
#include "info.pb-c.h"
#include "memory-util.h"
#include "metrics.pb-c.h"
#include "proto-util.h"
#include "register.pb-c.h"
#include "tests.h"

/* ---- helpers ---- */

/* Reads one varint at p[*i..n); false when it is cut off or longer than 10 bytes. */
static bool wire_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 70; shift += 7) {
                if (*i >= n)
                        return false;
                v |= (uint64_t) (p[*i] & 0x7f) << shift;
                if (!(p[(*i)++] & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return false;
}

/* Marks in ends[0..n] the offsets at which a top-level field ends (0 counts: the empty message). A wire
 * walker of our own, so that which prefixes must unpack does not come from protobuf-c itself. */
static void wire_field_ends(const uint8_t *p, size_t n, bool *ends) {
        size_t i = 0;

        memset(ends, 0, n + 1);
        ends[0] = true;
        while (i < n) {
                uint64_t tag, len;

                ASSERT_TRUE(wire_varint(p, n, &i, &tag));
                switch (tag & 7) {
                case 0:
                        ASSERT_TRUE(wire_varint(p, n, &i, &len));
                        break;
                case 1:
                        i += 8;
                        break;
                case 2:
                        ASSERT_TRUE(wire_varint(p, n, &i, &len));
                        i += len;
                        break;
                case 5:
                        i += 4;
                        break;
                default:
                        test_fail(__FILE__,
                                  __LINE__,
                                  "Unexpected wire type %u in a test vector",
                                  (unsigned) (tag & 7));
                }
                ASSERT_LE(i, n);
                ends[i] = true;
        }
}

/* Every prefix of a valid encoding either ends at a top-level field boundary (then it is itself a valid
 * message) or must be refused cleanly with -EBADMSG. */
static void check_prefixes(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n) {
        _cleanup_free_ bool *ends = malloc(n + 1);

        ASSERT_NOT_NULL(ends);
        wire_field_ends(p, n, ends);
        for (size_t k = 0; k <= n; k++) {
                _cleanup_free_ uint8_t *copy = NULL;
                ProtobufCMessage *m = NULL;
                int r;

                /* An exact-size heap copy, so that ASan catches any read past the prefix. */
                copy = malloc(MAX(k, (size_t) 1));
                ASSERT_NOT_NULL(copy);
                memcpy(copy, p, k);
                r = proto_unpack(desc, copy, k, n, &m);
                if (ends[k]) {
                        if (r < 0)
                                test_fail(__FILE__,
                                          __LINE__,
                                          "%s: prefix of %zu/%zu bytes refused: %d",
                                          desc->name,
                                          k,
                                          n,
                                          r);
                        ASSERT_NOT_NULL(m);
                        m = proto_free(m);
                } else {
                        if (r != -EBADMSG)
                                test_fail(__FILE__,
                                          __LINE__,
                                          "%s: prefix of %zu/%zu bytes gave %d, not -EBADMSG",
                                          desc->name,
                                          k,
                                          n,
                                          r);
                        ASSERT_NULL(m);
                }
        }
}

/* Packs msg and compares with the hand-derived bytes; then unpacks those bytes, repacks them (same bytes),
 * checks the cap, and every prefix. Returns the unpacked message for field checks (free with proto_free). */
static ProtobufCMessage *check_wire(const ProtobufCMessage *msg, const uint8_t *expected, size_t n) {
        const ProtobufCMessageDescriptor *desc = msg->descriptor;
        _cleanup_free_ uint8_t *packed = NULL, *repacked = NULL;
        ProtobufCMessage *m = NULL, *none = NULL;
        size_t packed_size, repacked_size;

        ASSERT_OK(proto_pack(msg, &packed, &packed_size));
        ASSERT_MEMEQ(packed, packed_size, expected, n);

        ASSERT_OK(proto_unpack(desc, expected, n, n, &m));
        ASSERT_NOT_NULL(m);
        ASSERT_TRUE(m->descriptor == desc);
        ASSERT_OK(proto_pack(m, &repacked, &repacked_size));
        ASSERT_MEMEQ(repacked, repacked_size, expected, n);

        if (n > 0) {
                ASSERT_ERROR(proto_unpack(desc, expected, n, n - 1, &none), EMSGSIZE);
                ASSERT_ERROR(proto_unpack(desc, expected, n, 0, &none), EMSGSIZE);
                ASSERT_NULL(none);
        }
        check_prefixes(desc, expected, n);
        return m;
}

#define ASSERT_BIN(bin, lit) ASSERT_MEMEQ((bin).data, (bin).len, (lit), sizeof(lit) - 1)

/* ---- attest.proto ---- */

TEST(attest_nonce_request) {
        /* facts §1.9: ZAttestReq{reqType=ATTEST_REQ_NONCE} */
        static const uint8_t expected[] = { 0x08, 0x02 };
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *u = NULL;

        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_NONCE;
        u = (Org__Lfedge__Eve__Attest__ZAttestReq *) check_wire(&req.base, expected, sizeof expected);
        ASSERT_EQ(u->reqtype, 2);
        ASSERT_NULL(u->quote);
        ASSERT_EQ(u->n_certs, 0);
        ASSERT_NULL(u->storage_keys);
}

TEST(attest_volume_key_data_v1) {
        static const uint8_t expected[] = {
                0x0a, 0x04, 0xaa, 0xbb, 0xcc, 0xdd, /* 1 encrypted_key */
                0x12, 0x02, 0x11, 0x22,             /* 2 digest_sha256 */
                0x28, 0x01,                         /* 5 version = V1 */
        };
        static const uint8_t key[] = { 0xaa, 0xbb, 0xcc, 0xdd }, digest[] = { 0x11, 0x22 };
        Org__Lfedge__Eve__Attest__AttestVolumeKeyData kd =
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_DATA__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKeyData *u = NULL;
        _cleanup_(proto_secret_freep) Org__Lfedge__Eve__Attest__AttestVolumeKeyData *s = NULL;

        kd.encrypted_key = (ProtobufCBinaryData){ sizeof key, (uint8_t *) key };
        kd.digest_sha256 = (ProtobufCBinaryData){ sizeof digest, (uint8_t *) digest };
        kd.version = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_VERSION__ATTEST_VOLUME_KEY_VERSION_V1;
        u = (Org__Lfedge__Eve__Attest__AttestVolumeKeyData *) check_wire(
                        &kd.base, expected, sizeof expected);
        ASSERT_MEMEQ(u->encrypted_key.data, u->encrypted_key.len, key, sizeof key);
        ASSERT_MEMEQ(u->digest_sha256.data, u->digest_sha256.len, digest, sizeof digest);
        ASSERT_EQ(u->version, 1);

        /* Secret unpack: same content, but in secret memory (the struct's allocation is a secret one). */
        ASSERT_OK(PROTO_UNPACK_SECRET(
                        &org__lfedge__eve__attest__attest_volume_key_data__descriptor,
                        expected,
                        sizeof expected,
                        sizeof expected,
                        &s));
        ASSERT_EQ(eve_secret_size(s), sizeof(*s));
        ASSERT_GE(eve_secret_size(s->encrypted_key.data), sizeof key);
        ASSERT_MEMEQ(s->encrypted_key.data, s->encrypted_key.len, key, sizeof key);
        ASSERT_EQ(s->version, 1);
}

TEST(attest_volume_key_data_legacy_fields_are_unknown) {
        /* Fields 3 and 4 are reserved (the PCR policy moved to AttestVolumeKey): an old sender's bytes still
         * unpack, kept as unknown fields, and repack unchanged. Version absent = LEGACY. */
        static const uint8_t old[] = { 0x0a, 0x01, 0x01, 0x18, 0x01, 0x22, 0x00 };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKeyData *u = NULL;
        _cleanup_free_ uint8_t *re = NULL;
        size_t re_size;

        ASSERT_OK(
                        PROTO_UNPACK(&org__lfedge__eve__attest__attest_volume_key_data__descriptor,
                                     old,
                                     sizeof old,
                                     sizeof old,
                                     &u));
        ASSERT_EQ(u->base.n_unknown_fields, 2);
        ASSERT_EQ(u->version,
                  ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_VERSION__ATTEST_VOLUME_KEY_VERSION_LEGACY);
        ASSERT_OK(PROTO_PACK(u, &re, &re_size));
        ASSERT_MEMEQ(re, re_size, old, sizeof old);
}

TEST(attest_volume_key_reserved_3) {
        /* AttestVolumeKey field 3 ("version" for a while) is reserved: unknown, not misread. */
        static const uint8_t old[] = { 0x08, 0x01, 0x18, 0x01 };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKey *u = NULL;

        ASSERT_OK(PROTO_UNPACK(
                        &org__lfedge__eve__attest__attest_volume_key__descriptor, old, sizeof old, 64, &u));
        ASSERT_EQ(u->key_type, ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_TYPE__ATTEST_VOLUME_KEY_TYPE_VSK);
        ASSERT_EQ(u->base.n_unknown_fields, 1);
        ASSERT_FALSE(u->has_policy_pcr_list);
}

TEST(attest_store_keys) {
        /* facts §1.9: 08 04 22 <len> AttestStorageKeys{0a <len> token, 12 <len> AttestVolumeKey{08 01, 12
         * <len> key}} */
        static const uint8_t expected[] = {
                0x08, 0x04,                  /* 1 reqType = STORE_KEYS */
                0x22, 0x22,                  /* 4 storage_keys, 34 bytes */
                0x0a, 0x03, 't',  'o',  'k', /*   1 integrity_token */
                0x12, 0x1b,                  /*   2 keys[0], 27 bytes */
                0x08, 0x01,                  /*     1 key_type = VSK */
                0x12, 0x0c,                  /*     2 key: AttestVolumeKeyData, 12 bytes */
                0x0a, 0x04, 0xaa, 0xbb, 0xcc, 0xdd, 0x12,
                0x02, 0x11, 0x22, 0x28, 0x01, 0x20, 0x01, /*     4 has_policy_pcr_list */
                0x2a, 0x07,                               /*     5 policy_pcr_list, 7 bytes */
                0x0a, 0x03, 0x00, 0x07, 0x0e,             /*       1 pcr_indices, packed: 0 7 14 */
                0x10, 0x03,                               /*       2 policy_id */
        };
        static const uint8_t kd[] = {
                0x0a, 0x04, 0xaa, 0xbb, 0xcc, 0xdd, 0x12, 0x02, 0x11, 0x22, 0x28, 0x01
        };
        static const uint32_t pcrs[] = { 0, 7, 14 };
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey vk = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT,
                                                  *vks[] = { &vk };
        Org__Lfedge__Eve__Attest__AttestPolicyPcrList pl =
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_POLICY_PCR_LIST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *u = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKeyData *ukd = NULL;

        pl.n_pcr_indices = ELEMENTSOF(pcrs);
        pl.pcr_indices = (uint32_t *) pcrs;
        pl.policy_id = 3;
        vk.key_type = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_TYPE__ATTEST_VOLUME_KEY_TYPE_VSK;
        vk.key = (ProtobufCBinaryData){ sizeof kd, (uint8_t *) kd };
        vk.has_policy_pcr_list = true;
        vk.policy_pcr_list = &pl;
        sk.integrity_token = (ProtobufCBinaryData){ 3, (uint8_t *) "tok" };
        sk.n_keys = 1;
        sk.keys = vks;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        req.storage_keys = &sk;

        u = (Org__Lfedge__Eve__Attest__ZAttestReq *) check_wire(&req.base, expected, sizeof expected);
        ASSERT_EQ(u->reqtype, 4);
        ASSERT_NOT_NULL(u->storage_keys);
        ASSERT_BIN(u->storage_keys->integrity_token, "tok");
        ASSERT_EQ(u->storage_keys->n_keys, 1);
        ASSERT_EQ(u->storage_keys->keys[0]->key_type, 1);
        ASSERT_TRUE(u->storage_keys->keys[0]->has_policy_pcr_list);
        ASSERT_EQ(u->storage_keys->keys[0]->policy_pcr_list->n_pcr_indices, 3);
        ASSERT_EQ(u->storage_keys->keys[0]->policy_pcr_list->pcr_indices[2], 14);
        ASSERT_EQ(u->storage_keys->keys[0]->policy_pcr_list->policy_id, 3);

        /* The opaque key is itself an AttestVolumeKeyData. */
        ASSERT_OK(
                        PROTO_UNPACK(&org__lfedge__eve__attest__attest_volume_key_data__descriptor,
                                     u->storage_keys->keys[0]->key.data,
                                     u->storage_keys->keys[0]->key.len,
                                     1024,
                                     &ukd));
        ASSERT_EQ(ukd->version, 1);
        ASSERT_EQ(ukd->encrypted_key.len, 4);
}

TEST(attest_quote) {
        static const uint8_t expected[] = {
                0x08, 0x03,                                           /* 1 reqType = QUOTE */
                0x12, 0x55,                                           /* 2 quote, 85 bytes */
                0x0a, 0x04, 0xff, 0x54, 0x43, 0x47,                   /*   1 attestData */
                0x12, 0x02, 0x30, 0x02,                               /*   2 signature */
                0x1a, 0x06, 0x10, 0x02, 0x1a, 0x02, 0xaa, 0xaa,       /*   3 pcr_values[0] {index 0 (unsent),
                                                                         SHA256, aaaa} */
                0x1a, 0x07, 0x08, 0x07, 0x10, 0x02, 0x1a, 0x01, 0x01, /* 3 pcr_values[1] {7, SHA256, 01} */
                0x22, 0x15,                                           /*   4 event_log[0], 21 bytes */
                0x08, 0x01, 0x10, 0x07, 0x18, 0x03,             /*     index 1, pcr_index 7, event_type 3 */
                0x22, 0x05, 0x08, 0x02, 0x12, 0x01, 0x00,       /*     4 digest {SHA256, 00} */
                0x2a, 0x01, 0x01, 0x32, 0x01, 'a',  0x38, 0x01, /*     5 binary, 6 string, 7 size */
                0x2a, 0x07, 0x08, 0x01, 0x12, 0x03, '9',  '.',  '4',  /* 5 versions[0] {EVE, "9.4"} */
                0x32, 0x14,                                           /*   6 gps_info, 20 bytes */
                0x08, 0x01,                                           /*     1 PRESENT */
                0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f, /* 2 latitude 1.5 (fixed64 LE) */
                0x19, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, /* 3 longitude -2.0 */
                0x3a, 0x02, 0x1f, 0x8b,                               /*   7 tpm_binary_event_log */
        };
        static const uint8_t attest[] = { 0xff, 'T', 'C', 'G' }, sig[] = { 0x30, 0x02 },
                             v0[] = { 0xaa, 0xaa }, v7[] = { 0x01 }, zero[] = { 0x00 },
                             gz[] = { 0x1f, 0x8b };
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuote q = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE__INIT;
        Org__Lfedge__Eve__Attest__TpmPCRValue p0 = ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT,
                                              p7 = ORG__LFEDGE__EVE__ATTEST__TPM_PCRVALUE__INIT,
                                              *pcrs[] = { &p0, &p7 };
        Org__Lfedge__Eve__Attest__TpmEventDigest dg = ORG__LFEDGE__EVE__ATTEST__TPM_EVENT_DIGEST__INIT;
        Org__Lfedge__Eve__Attest__TpmEventLogEntry ev = ORG__LFEDGE__EVE__ATTEST__TPM_EVENT_LOG_ENTRY__INIT,
                                                   *evs[] = { &ev };
        Org__Lfedge__Eve__Attest__AttestVersionInfo
                        ver = ORG__LFEDGE__EVE__ATTEST__ATTEST_VERSION_INFO__INIT,
                        *vers[] = { &ver };
        Org__Lfedge__Eve__Attest__AttestGPSCoordinates gps =
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSCOORDINATES__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *u = NULL;

        p0.hash_algo = p7.hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
        p0.value = (ProtobufCBinaryData){ sizeof v0, (uint8_t *) v0 };
        p7.index = 7;
        p7.value = (ProtobufCBinaryData){ sizeof v7, (uint8_t *) v7 };
        dg.hash_algo = ORG__LFEDGE__EVE__ATTEST__TPM_HASH_ALGO__TPM_HASH_ALGO_SHA256;
        dg.digest = (ProtobufCBinaryData){ sizeof zero, (uint8_t *) zero };
        ev.index = 1;
        ev.pcr_index = 7;
        ev.event_type = 3;
        ev.digest = &dg;
        ev.event_data_binary = (ProtobufCBinaryData){ sizeof v7, (uint8_t *) v7 };
        ev.event_data_string = (char *) "a";
        ev.event_binary_size = 1;
        ver.version_type = ORG__LFEDGE__EVE__ATTEST__ATTEST_VERSION_TYPE__ATTEST_VERSION_TYPE_EVE;
        ver.version = (char *) "9.4";
        gps.gps_input = ORG__LFEDGE__EVE__ATTEST__ATTEST_GPSINPUT__ATTEST_GPS_INPUT_PRESENT;
        gps.latitude = 1.5;
        gps.longitude = -2.0;
        q.attestdata = (ProtobufCBinaryData){ sizeof attest, (uint8_t *) attest };
        q.signature = (ProtobufCBinaryData){ sizeof sig, (uint8_t *) sig };
        q.n_pcr_values = ELEMENTSOF(pcrs);
        q.pcr_values = pcrs;
        q.n_event_log = ELEMENTSOF(evs); /* deprecated in eve-api, but still a field we must round-trip */
        q.event_log = evs;
        q.n_versions = ELEMENTSOF(vers);
        q.versions = vers;
        q.gps_info = &gps;
        q.tpm_binary_event_log = (ProtobufCBinaryData){ sizeof gz, (uint8_t *) gz };
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_QUOTE;
        req.quote = &q;

        u = (Org__Lfedge__Eve__Attest__ZAttestReq *) check_wire(&req.base, expected, sizeof expected);
        ASSERT_EQ(u->reqtype, 3);
        ASSERT_MEMEQ(u->quote->attestdata.data, u->quote->attestdata.len, attest, sizeof attest);
        ASSERT_EQ(u->quote->n_pcr_values, 2);
        ASSERT_EQ(u->quote->pcr_values[0]->index, 0);
        ASSERT_EQ(u->quote->pcr_values[1]->index, 7);
        ASSERT_EQ(u->quote->pcr_values[1]->hash_algo, 2);
        ASSERT_EQ(u->quote->n_event_log, 1);
        ASSERT_EQ(u->quote->event_log[0]->pcr_index, 7);
        ASSERT_STREQ(u->quote->event_log[0]->event_data_string, "a");
        ASSERT_STREQ(u->quote->versions[0]->version, "9.4");
        ASSERT_TRUE(u->quote->gps_info->latitude == 1.5);
        ASSERT_TRUE(u->quote->gps_info->longitude == -2.0);
        ASSERT_MEMEQ(u->quote->tpm_binary_event_log.data, u->quote->tpm_binary_event_log.len, gz, sizeof gz);
}

TEST(attest_certs) {
        /* facts §1.9: 08 01 + repeated 1a <len> ZCert */
        static const uint8_t expected[] = {
                0x08, 0x01, /* 1 reqType = CERT */
                0x1a, 0x13, /* 3 certs[0], 19 bytes */
                0x08, 0x01, 0x12, 0x02, 0x01, 0x02, 0x18,
                0x0c,            /*   SHA256_16BYTES, certHash 0102, EK (12) */
                0x22, 0x01, 'P', /*   4 cert */
                0x32, 0x06, 0x08, 0x01, 0x12, 0x02, 0x00,
                0x3a,                                    /*   6 meta_data_items[0] {TPM2_PUBLIC, 003a} */
                0x1a, 0x07,                              /* 3 certs[1], 7 bytes */
                0x08, 0x01, 0x18, 0x0b, 0x22, 0x01, 'Q', /*   SHA256_16BYTES, RESTRICTED_SIGNING (11), "Q" */
        };
        static const uint8_t hash[] = { 0x01, 0x02 }, tpm2b[] = { 0x00, 0x3a };
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Certs__ZCert ek = ORG__LFEDGE__EVE__CERTS__ZCERT__INIT,
                                       ak = ORG__LFEDGE__EVE__CERTS__ZCERT__INIT, *certs[] = { &ek, &ak };
        Org__Lfedge__Eve__Certs__ZCertMetaData md = ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA__INIT,
                                               *mds[] = { &md };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *u = NULL;

        md.type = ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA_TYPE__Z_CERT_META_DATA_TYPE_TPM2_PUBLIC;
        md.meta_data = (ProtobufCBinaryData){ sizeof tpm2b, (uint8_t *) tpm2b };
        ek.hashalgo = ak.hashalgo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
        ek.certhash = (ProtobufCBinaryData){ sizeof hash, (uint8_t *) hash };
        ek.type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_ENDORSEMENT_RSA;
        ek.cert = (ProtobufCBinaryData){ 1, (uint8_t *) "P" };
        ek.n_meta_data_items = 1;
        ek.meta_data_items = mds;
        ak.type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_DEVICE_RESTRICTED_SIGNING;
        ak.cert = (ProtobufCBinaryData){ 1, (uint8_t *) "Q" };
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__ATTEST_REQ_CERT;
        req.n_certs = ELEMENTSOF(certs);
        req.certs = certs;

        u = (Org__Lfedge__Eve__Attest__ZAttestReq *) check_wire(&req.base, expected, sizeof expected);
        ASSERT_EQ(u->n_certs, 2);
        ASSERT_EQ(u->certs[0]->type, 12);
        ASSERT_EQ(u->certs[0]->n_meta_data_items, 1);
        ASSERT_MEMEQ(u->certs[0]->meta_data_items[0]->meta_data.data,
                     u->certs[0]->meta_data_items[0]->meta_data.len,
                     tpm2b,
                     sizeof tpm2b);
        ASSERT_EQ(u->certs[1]->type, 11);
        ASSERT_NULL(u->certs[1]->attributes);
}

TEST(attest_responses) {
        static const uint8_t quote_resp[] = {
                0x08, 0x03,                                     /* 1 respType = QUOTE_RESP */
                0x1a, 0x0d,                                     /* 3 quoteResp, 13 bytes */
                0x08, 0x01,                                     /*   1 response = SUCCESS */
                0x12, 0x01, 'T',                                /*   2 integrity_token */
                0x1a, 0x06, 0x08, 0x01, 0x12, 0x02, 0x01, 0x02, /*   3 keys[0] {VSK, 0102} */
        };
        static const uint8_t nonce_resp[] = {
                0x08, 0x02, 0x12, 0x08, 0x0a, 0x06, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        };
        static const uint8_t store_resp[] = { 0x08, 0x04, 0x22, 0x02, 0x08, 0x02 };
        static const uint8_t key[] = { 0x01, 0x02 }, nonce[] = { 1, 2, 3, 4, 5, 6 };
        Org__Lfedge__Eve__Attest__ZAttestResponse r1 = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT,
                                                  r2 = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT,
                                                  r3 = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE__INIT;
        Org__Lfedge__Eve__Attest__ZAttestQuoteResp qr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_QUOTE_RESP__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey vk = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT,
                                                  *vks[] = { &vk };
        Org__Lfedge__Eve__Attest__ZAttestNonceResp nr = ORG__LFEDGE__EVE__ATTEST__ZATTEST_NONCE_RESP__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeysResp sr =
                        ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESP__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *u1 = NULL, *u2 = NULL, *u3 = NULL;

        vk.key_type = ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_TYPE__ATTEST_VOLUME_KEY_TYPE_VSK;
        vk.key = (ProtobufCBinaryData){ sizeof key, (uint8_t *) key };
        qr.response = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS;
        qr.integrity_token = (ProtobufCBinaryData){ 1, (uint8_t *) "T" };
        qr.n_keys = 1;
        qr.keys = vks;
        r1.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP;
        r1.quoteresp = &qr;
        u1 = (Org__Lfedge__Eve__Attest__ZAttestResponse *) check_wire(
                        &r1.base, quote_resp, sizeof quote_resp);
        ASSERT_EQ(u1->resptype, 3);
        ASSERT_EQ(u1->quoteresp->response, 1);
        ASSERT_BIN(u1->quoteresp->integrity_token, "T");
        ASSERT_EQ(u1->quoteresp->n_keys, 1);
        ASSERT_MEMEQ(u1->quoteresp->keys[0]->key.data, u1->quoteresp->keys[0]->key.len, key, sizeof key);

        nr.nonce = (ProtobufCBinaryData){ sizeof nonce, (uint8_t *) nonce };
        r2.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE;
        r2.nonce = &nr;
        u2 = (Org__Lfedge__Eve__Attest__ZAttestResponse *) check_wire(
                        &r2.base, nonce_resp, sizeof nonce_resp);
        ASSERT_MEMEQ(u2->nonce->nonce.data, u2->nonce->nonce.len, nonce, sizeof nonce);

        sr.response = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_ITOKEN_MISMATCH;
        r3.resptype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS;
        r3.storage_keys_resp = &sr;
        u3 = (Org__Lfedge__Eve__Attest__ZAttestResponse *) check_wire(
                        &r3.base, store_resp, sizeof store_resp);
        ASSERT_EQ(u3->storage_keys_resp->response, 2);
}

/* ---- certs.proto ---- */

TEST(certs_controller_cert) {
        static const uint8_t expected[] = {
                0x0a, 0x1b,                                     /* 1 certs[0], 27 bytes */
                0x08, 0x01, 0x12, 0x02, 0xde, 0xad, 0x18, 0x01, /*   SHA256_16BYTES, dead, SIGNING */
                0x22, 0x05, '-',  '-',  '-',  '-',  '-',        /*   4 cert */
                0x2a, 0x02, 0x10, 0x01,                         /*   5 attributes {is_tpm} */
                0x32, 0x06, 0x08, 0x01, 0x12, 0x02, 0x00, 0x3a, /*   6 meta_data_items[0] */
                0x0a, 0x05, 0x18, 0x03, 0x22, 0x01, 'X',        /* 1 certs[1] {ECDH_EXCHANGE, "X"} */
        };
        static const uint8_t hash[] = { 0xde, 0xad }, tpm2b[] = { 0x00, 0x3a };
        Org__Lfedge__Eve__Certs__ZControllerCert cc = ORG__LFEDGE__EVE__CERTS__ZCONTROLLER_CERT__INIT;
        Org__Lfedge__Eve__Certs__ZCert s = ORG__LFEDGE__EVE__CERTS__ZCERT__INIT,
                                       e = ORG__LFEDGE__EVE__CERTS__ZCERT__INIT, *certs[] = { &s, &e };
        Org__Lfedge__Eve__Certs__ZCertAttr attr = ORG__LFEDGE__EVE__CERTS__ZCERT_ATTR__INIT;
        Org__Lfedge__Eve__Certs__ZCertMetaData md = ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA__INIT,
                                               *mds[] = { &md };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *u = NULL;

        attr.is_tpm = true;
        md.type = ORG__LFEDGE__EVE__CERTS__ZCERT_META_DATA_TYPE__Z_CERT_META_DATA_TYPE_TPM2_PUBLIC;
        md.meta_data = (ProtobufCBinaryData){ sizeof tpm2b, (uint8_t *) tpm2b };
        s.hashalgo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
        s.certhash = (ProtobufCBinaryData){ sizeof hash, (uint8_t *) hash };
        s.type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING;
        s.cert = (ProtobufCBinaryData){ 5, (uint8_t *) "-----" };
        s.attributes = &attr;
        s.n_meta_data_items = 1;
        s.meta_data_items = mds;
        e.type = ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_ECDH_EXCHANGE;
        e.cert = (ProtobufCBinaryData){ 1, (uint8_t *) "X" };
        cc.n_certs = ELEMENTSOF(certs);
        cc.certs = certs;

        u = (Org__Lfedge__Eve__Certs__ZControllerCert *) check_wire(&cc.base, expected, sizeof expected);
        ASSERT_EQ(u->n_certs, 2);
        ASSERT_EQ(u->certs[0]->hashalgo, 1);
        ASSERT_EQ(u->certs[0]->type, ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING);
        ASSERT_BIN(u->certs[0]->cert, "-----");
        ASSERT_TRUE(u->certs[0]->attributes->is_tpm);
        ASSERT_FALSE(u->certs[0]->attributes->is_mutable);
        ASSERT_EQ(u->certs[0]->meta_data_items[0]->type, 1);
        ASSERT_EQ(u->certs[1]->type, 3);
        ASSERT_EQ(u->certs[1]->hashalgo, 0);
}

/* ---- auth.proto ---- */

TEST(auth_container_signed) {
        static const uint8_t expected[] = {
                0x0a, 0x04, 0x0a, 0x02, 0x08, 0x02, /* 1 protectedPayload {payload = ZAttestReq nonce} */
                0x10, 0x02,                         /* 2 algo = SHA256_32BYTES */
                0x1a, 0x03, 0x01, 0x02, 0x03,       /* 3 senderCertHash */
                0x22, 0x02, 0x04, 0x05,             /* 4 signatureHash */
                0x2a, 0x04, 'Q',  'Q',  '=',  '=',  /* 5 senderCert */
        };
        static const uint8_t payload[] = { 0x08, 0x02 }, hash[] = { 1, 2, 3 }, sig[] = { 4, 5 };
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *u = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestReq *inner = NULL;

        body.payload = (ProtobufCBinaryData){ sizeof payload, (uint8_t *) payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData){ sizeof hash, (uint8_t *) hash };
        ac.signaturehash = (ProtobufCBinaryData){ sizeof sig, (uint8_t *) sig };
        ac.sendercert = (ProtobufCBinaryData){ 4, (uint8_t *) "QQ==" };

        u = (Org__Lfedge__Eve__Auth__AuthContainer *) check_wire(&ac.base, expected, sizeof expected);
        ASSERT_EQ(u->algo, 2);
        ASSERT_MEMEQ(u->sendercerthash.data, u->sendercerthash.len, hash, sizeof hash);
        ASSERT_MEMEQ(u->signaturehash.data, u->signaturehash.len, sig, sizeof sig);
        ASSERT_BIN(u->sendercert, "QQ==");
        ASSERT_NULL(u->ciphercontext);
        ASSERT_NULL(u->cipherdata);
        ASSERT_OK(
                        PROTO_UNPACK(&org__lfedge__eve__attest__zattest_req__descriptor,
                                     u->protectedpayload->payload.data,
                                     u->protectedpayload->payload.len,
                                     64,
                                     &inner));
        ASSERT_EQ(inner->reqtype, 2);
}

TEST(auth_container_encrypted) {
        static const uint8_t expected[] = {
                0x10, 0x02, 0x1a, 0x01, 0x01, 0x22, 0x01, 0x02, /* algo, senderCertHash, signatureHash */
                0x32, 0x0d,                                     /* 6 cipherContext, 13 bytes */
                0x0a, 0x01, 'c',  0x18, 0x01, 0x20, 0x01,       /*   "c", KEA_ECDH, SA_AES_256_CFB */
                0x2a, 0x01, 0xaa, 0x32, 0x01, 0xbb, /*   5 deviceCertHash, 6 controllerCertHash */
                0x3a, 0x1d,                         /* 7 cipherData, 29 bytes */
                0x0a, 0x01, 'c',                    /*   1 cipherContextId */
                0x12, 0x10, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, /* 2 initialValue (16) */
                0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x1a, 0x02,
                0xde, 0xad, 0x22, 0x02, 0xbe, 0xef, /*   3 cipherData, 4 clearTextSha256 */
        };
        static const uint8_t iv[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
                             ct[] = { 0xde, 0xad }, sha[] = { 0xbe, 0xef }, dh[] = { 0xaa },
                             chh[] = { 0xbb };
        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Common__CipherContext ctx = ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT;
        Org__Lfedge__Eve__Common__CipherBlock cb = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *u = NULL;

        ctx.contextid = (char *) "c";
        ctx.keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
        ctx.encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
        ctx.devicecerthash = (ProtobufCBinaryData){ sizeof dh, (uint8_t *) dh };
        ctx.controllercerthash = (ProtobufCBinaryData){ sizeof chh, (uint8_t *) chh };
        cb.ciphercontextid = (char *) "c";
        cb.initialvalue = (ProtobufCBinaryData){ sizeof iv, (uint8_t *) iv };
        cb.cipherdata = (ProtobufCBinaryData){ sizeof ct, (uint8_t *) ct };
        cb.cleartextsha256 = (ProtobufCBinaryData){ sizeof sha, (uint8_t *) sha };
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData){ 1, (uint8_t *) "\x01" };
        ac.signaturehash = (ProtobufCBinaryData){ 1, (uint8_t *) "\x02" };
        ac.ciphercontext = &ctx;
        ac.cipherdata = &cb;

        u = (Org__Lfedge__Eve__Auth__AuthContainer *) check_wire(&ac.base, expected, sizeof expected);
        ASSERT_NULL(u->protectedpayload);
        ASSERT_STREQ(u->ciphercontext->contextid, "c");
        ASSERT_STREQ(u->cipherdata->ciphercontextid, u->ciphercontext->contextid);
        ASSERT_EQ(u->cipherdata->initialvalue.len, 16);
        ASSERT_MEMEQ(u->cipherdata->initialvalue.data, u->cipherdata->initialvalue.len, iv, sizeof iv);
        ASSERT_EQ(u->ciphercontext->keyexchangescheme, 1);
        ASSERT_EQ(u->ciphercontext->encryptionscheme, 1);
}

/* ---- evecommon.proto ---- */

TEST(evecommon_cipher_context_and_block) {
        static const uint8_t ctx_bytes[] = {
                0x0a, 0x03, 'c',  't',  'x',  0x10, 0x01, 0x18, 0x01, 0x20,
                0x01, 0x2a, 0x02, 0x01, 0x02, 0x32, 0x02, 0x03, 0x04,
        };
        static const uint8_t block_bytes[] = {
                0x0a, 0x03, 'c',  't',  'x',  0x12, 0x10, 0x00, 0x01, 0x02, 0x03,
                0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
                0x0f, 0x1a, 0x04, 0xde, 0xad, 0xbe, 0xef, 0x22, 0x02, 0xca, 0xfe,
        };
        static const uint8_t iv[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
                             ct[] = { 0xde, 0xad, 0xbe, 0xef }, sha[] = { 0xca, 0xfe }, dh[] = { 1, 2 },
                             chh[] = { 3, 4 };
        Org__Lfedge__Eve__Common__CipherContext ctx = ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT;
        Org__Lfedge__Eve__Common__CipherBlock cb = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Common__CipherContext *uctx = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Common__CipherBlock *ucb = NULL;

        ctx.contextid = (char *) "ctx";
        ctx.hashscheme = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
        ctx.keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
        ctx.encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
        ctx.devicecerthash = (ProtobufCBinaryData){ sizeof dh, (uint8_t *) dh };
        ctx.controllercerthash = (ProtobufCBinaryData){ sizeof chh, (uint8_t *) chh };
        uctx = (Org__Lfedge__Eve__Common__CipherContext *) check_wire(
                        &ctx.base, ctx_bytes, sizeof ctx_bytes);
        ASSERT_STREQ(uctx->contextid, "ctx");
        ASSERT_EQ(uctx->hashscheme, 1);
        ASSERT_MEMEQ(uctx->devicecerthash.data, uctx->devicecerthash.len, dh, sizeof dh);
        ASSERT_MEMEQ(uctx->controllercerthash.data, uctx->controllercerthash.len, chh, sizeof chh);

        cb.ciphercontextid = (char *) "ctx";
        cb.initialvalue = (ProtobufCBinaryData){ sizeof iv, (uint8_t *) iv };
        cb.cipherdata = (ProtobufCBinaryData){ sizeof ct, (uint8_t *) ct };
        cb.cleartextsha256 = (ProtobufCBinaryData){ sizeof sha, (uint8_t *) sha };
        ucb = (Org__Lfedge__Eve__Common__CipherBlock *) check_wire(
                        &cb.base, block_bytes, sizeof block_bytes);
        ASSERT_STREQ(ucb->ciphercontextid, "ctx");
        ASSERT_MEMEQ(ucb->cipherdata.data, ucb->cipherdata.len, ct, sizeof ct);
        ASSERT_MEMEQ(ucb->cleartextsha256.data, ucb->cleartextsha256.len, sha, sizeof sha);
}

TEST(evecommon_encryption_block) {
        static const uint8_t expected[] = {
                0x0a, 0x01, 'k',        /* 1 dsAPIKey */
                0x12, 0x01, 'p',        /* 2 dsPassword */
                0x48, 0x01,             /* 9 user = BINARY_ARTIFACT_METADATA */
                0x6a, 0x02, 0x1f, 0x8b, /* 13 gzip_registration_manifest_yaml */
                0x72, 0x01, 's',        /* 14 scep_challenge_password */
        };
        static const uint8_t gz[] = { 0x1f, 0x8b };
        Org__Lfedge__Eve__Common__EncryptionBlock eb = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_BLOCK__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Common__EncryptionBlock *u = NULL;
        _cleanup_(proto_secret_freep) Org__Lfedge__Eve__Common__EncryptionBlock *s = NULL;
        _cleanup_secret_ uint8_t *sp = NULL;
        size_t sp_size;

        eb.dsapikey = (char *) "k";
        eb.dspassword = (char *) "p";
        eb.user = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_BLOCK_USER__ENCRYPTION_BLOCK_USER_BINARY_ARTIFACT_METADATA;
        eb.gzip_registration_manifest_yaml = (ProtobufCBinaryData){ sizeof gz, (uint8_t *) gz };
        eb.scep_challenge_password = (char *) "s";
        u = (Org__Lfedge__Eve__Common__EncryptionBlock *) check_wire(&eb.base, expected, sizeof expected);
        ASSERT_STREQ(u->dsapikey, "k");
        ASSERT_STREQ(u->dspassword, "p");
        ASSERT_STREQ(u->wifipassword, "");
        ASSERT_EQ(u->user, 1);
        ASSERT_STREQ(u->scep_challenge_password, "s");

        /* The secret variants: plaintext credentials live only in secret memory. */
        ASSERT_OK(PROTO_PACK_SECRET(&eb, &sp, &sp_size));
        ASSERT_MEMEQ(sp, sp_size, expected, sizeof expected);
        ASSERT_GE(eve_secret_size(sp), sizeof expected);
        ASSERT_OK(PROTO_UNPACK_SECRET(
                        &org__lfedge__eve__common__encryption_block__descriptor, sp, sp_size, 1024, &s));
        ASSERT_STREQ(s->dsapikey, "k");
        ASSERT_EQ(eve_secret_size(s->dsapikey), 2);
}

/* ---- register.proto, eveuuid.proto ---- */

TEST(register_msg) {
        static const uint8_t expected[] = {
                0x12, 0x04, 'L', 'S', '0', 't', /* 2 pemCert (base64 of "---") */
                0x1a, 0x02, 'S', '1',           /* 3 serial */
                0x22, 0x04, 'a', 'b', '_', 'c', /* 4 softSerial */
        };
        Org__Lfedge__Eve__Register__ZRegisterMsg m = ORG__LFEDGE__EVE__REGISTER__ZREGISTER_MSG__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Register__ZRegisterMsg *u = NULL;

        m.pemcert = (ProtobufCBinaryData){ 4, (uint8_t *) "LS0t" };
        m.serial = (char *) "S1";
        m.softserial = (char *) "ab_c";
        u = (Org__Lfedge__Eve__Register__ZRegisterMsg *) check_wire(&m.base, expected, sizeof expected);
        ASSERT_BIN(u->pemcert, "LS0t");
        ASSERT_STREQ(u->serial, "S1");
        ASSERT_STREQ(u->softserial, "ab_c");
}

TEST(uuid_request_response) {
        static const char expected[] = "\x0a\x24"
                                       "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
                                       "\x12\x01"
                                       "m"
                                       "\x1a\x01"
                                       "p";
        Org__Lfedge__Eve__Uuid__UuidRequest req = ORG__LFEDGE__EVE__UUID__UUID_REQUEST__INIT;
        Org__Lfedge__Eve__Uuid__UuidResponse resp = ORG__LFEDGE__EVE__UUID__UUID_RESPONSE__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidRequest *ureq = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidResponse *u = NULL;
        _cleanup_free_ uint8_t *empty = NULL;
        size_t empty_size = SIZE_MAX;

        /* UuidRequest is empty: zero bytes, still a real buffer. */
        ASSERT_OK(PROTO_PACK(&req, &empty, &empty_size));
        ASSERT_NOT_NULL(empty);
        ASSERT_EQ(empty_size, 0);
        ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__uuid__uuid_request__descriptor, NULL, 0, 0, &ureq));
        ASSERT_EQ(ureq->base.n_unknown_fields, 0);

        resp.uuid = (char *) "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        resp.manufacturer = (char *) "m";
        resp.product_name = (char *) "p";
        u = (Org__Lfedge__Eve__Uuid__UuidResponse *) check_wire(
                        &resp.base, (const uint8_t *) expected, sizeof expected - 1);
        ASSERT_STREQ(u->uuid, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        ASSERT_STREQ(u->manufacturer, "m");
        ASSERT_STREQ(u->product_name, "p");
}

/* ---- config.proto ---- */

TEST(config_request) {
        static const uint8_t expected[] = { 0x0a, 0x02, 'h', '1', 0x12, 0x03, 0x01, 0x02, 0x03 };
        static const uint8_t token[] = { 1, 2, 3 };
        Org__Lfedge__Eve__Config__ConfigRequest cr = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigRequest *u = NULL;

        cr.confighash = (char *) "h1";
        cr.integrity_token = (ProtobufCBinaryData){ sizeof token, (uint8_t *) token };
        u = (Org__Lfedge__Eve__Config__ConfigRequest *) check_wire(&cr.base, expected, sizeof expected);
        ASSERT_STREQ(u->confighash, "h1");
        ASSERT_MEMEQ(u->integrity_token.data, u->integrity_token.len, token, sizeof token);
}

TEST(config_response_with_ciphers) {
        static const uint8_t expected[] = {
                0x0a, 0x6a,                                           /* 1 config, 106 bytes */
                0x0a, 0x06, 0x0a, 0x01, 'd',  0x12, 0x01, '3',        /*   1 id {"d", "3"} */
                0x22, 0x15,                                           /*   4 apps[0], 21 bytes */
                0x0a, 0x06, 0x0a, 0x01, 'a',  0x12, 0x01, '1',        /*     1 uuidandversion */
                0x12, 0x03, 'a',  'p',  'p',                          /*     2 displayname */
                0x6a, 0x06, 0x0a, 0x01, 'c',  0x1a, 0x01, 0x01,       /*     13 cipherData {"c", 01} */
                0x2a, 0x18,                                           /*   5 networks[0], 24 bytes */
                0x0a, 0x01, 'n',                                      /*     1 id */
                0x52, 0x13,                                           /*     10 wireless, 19 bytes */
                0x08, 0x01,                                           /*       1 type = WiFi */
                0x52, 0x0f,                                           /*       10 wifiCfg[0], 15 bytes */
                0x0a, 0x04, 's',  's',  'i',  'd',                    /*         1 wifiSSID */
                0xf2, 0x01, 0x06, 0x0a, 0x01, 'c',  0x1a, 0x01, 0x02, /*    30 cipherData {"c", 02} */
                0x32, 0x12,                                           /*   6 datastores[0], 18 bytes */
                0x08, 0x02, 0x12, 0x01, 'f',                          /*     1 dType = DsHttps, 2 fqdn */
                0x3a, 0x06, 0x0a, 0x01, 'c',  0x1a, 0x01, 0x03,       /*     7 cipherData {"c", 03} */
                0xa2, 0x06, 0x02, 'd',  's',                          /*     100 id */
                0x9a, 0x01, 0x07, 0x0a, 0x01, 'c',  0x18, 0x01, 0x20, 0x01, /* 19 cipherContexts[0] */
                0xb2, 0x01, 0x02, 'c',  'c',                   /*   22 controllercert_confighash */
                0xc0, 0x01, 0x01,                              /*   24 maintenance_mode */
                0xd2, 0x01, 0x08,                              /*   26 baseos, 8 bytes */
                0x0a, 0x01, 't',  0x18, 0x01, 0x22, 0x01, 'v', /*     content_tree_uuid, activate, version */
                0x12, 0x02, 'h',  '2',                         /* 2 configHash */
        };
        Org__Lfedge__Eve__Config__ConfigResponse resp = ORG__LFEDGE__EVE__CONFIG__CONFIG_RESPONSE__INIT;
        Org__Lfedge__Eve__Config__EdgeDevConfig c = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__UUIDandVersion id = ORG__LFEDGE__EVE__CONFIG__UUIDAND_VERSION__INIT,
                                                 aid = ORG__LFEDGE__EVE__CONFIG__UUIDAND_VERSION__INIT;
        Org__Lfedge__Eve__Config__AppInstanceConfig
                        app = ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT,
                        *apps[] = { &app };
        Org__Lfedge__Eve__Config__NetworkConfig net = ORG__LFEDGE__EVE__CONFIG__NETWORK_CONFIG__INIT,
                                                *nets[] = { &net };
        Org__Lfedge__Eve__Config__WirelessConfig wl = ORG__LFEDGE__EVE__CONFIG__WIRELESS_CONFIG__INIT;
        Org__Lfedge__Eve__Config__WifiConfig wifi = ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT,
                                             *wifis[] = { &wifi };
        Org__Lfedge__Eve__Config__DatastoreConfig ds = ORG__LFEDGE__EVE__CONFIG__DATASTORE_CONFIG__INIT,
                                                  *dss[] = { &ds };
        Org__Lfedge__Eve__Common__CipherContext ctx = ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT,
                                                *ctxs[] = { &ctx };
        Org__Lfedge__Eve__Common__CipherBlock cb1 = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT,
                                              cb2 = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT,
                                              cb3 = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        Org__Lfedge__Eve__Config__BaseOS bos = ORG__LFEDGE__EVE__CONFIG__BASE_OS__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *u = NULL;
        const Org__Lfedge__Eve__Config__EdgeDevConfig *uc;

        id.uuid = (char *) "d";
        id.version = (char *) "3";
        aid.uuid = (char *) "a";
        aid.version = (char *) "1";
        cb1.ciphercontextid = cb2.ciphercontextid = cb3.ciphercontextid = (char *) "c";
        cb1.cipherdata = (ProtobufCBinaryData){ 1, (uint8_t *) "\x01" };
        cb2.cipherdata = (ProtobufCBinaryData){ 1, (uint8_t *) "\x02" };
        cb3.cipherdata = (ProtobufCBinaryData){ 1, (uint8_t *) "\x03" };
        app.uuidandversion = &aid;
        app.displayname = (char *) "app";
        app.cipherdata = &cb1;
        wifi.wifissid = (char *) "ssid";
        wifi.cipherdata = &cb2;
        wl.type = ORG__LFEDGE__EVE__COMMON__WIRELESS_TYPE__WiFi;
        wl.n_wificfg = 1;
        wl.wificfg = wifis;
        net.id = (char *) "n";
        net.wireless = &wl;
        ds.id = (char *) "ds";
        ds.dtype = ORG__LFEDGE__EVE__CONFIG__DS_TYPE__DsHttps;
        ds.fqdn = (char *) "f";
        ds.cipherdata = &cb3;
        ctx.contextid = (char *) "c";
        ctx.keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
        ctx.encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
        bos.content_tree_uuid = (char *) "t";
        bos.activate = true;
        bos.base_os_version = (char *) "v";
        c.id = &id;
        c.n_apps = 1;
        c.apps = apps;
        c.n_networks = 1;
        c.networks = nets;
        c.n_datastores = 1;
        c.datastores = dss;
        c.n_ciphercontexts = 1;
        c.ciphercontexts = ctxs;
        c.controllercert_confighash = (char *) "cc";
        c.maintenance_mode = true;
        c.baseos = &bos;
        resp.config = &c;
        resp.confighash = (char *) "h2";

        u = (Org__Lfedge__Eve__Config__ConfigResponse *) check_wire(&resp.base, expected, sizeof expected);
        ASSERT_STREQ(u->confighash, "h2");
        uc = u->config;
        ASSERT_STREQ(uc->id->uuid, "d");
        ASSERT_EQ(uc->n_ciphercontexts, 1);
        ASSERT_STREQ(uc->ciphercontexts[0]->contextid, "c");
        ASSERT_STREQ(uc->controllercert_confighash, "cc");
        ASSERT_TRUE(uc->maintenance_mode);
        ASSERT_EQ(uc->n_datastores, 1);
        ASSERT_STREQ(uc->datastores[0]->id, "ds");
        ASSERT_EQ(uc->datastores[0]->dtype, 2);
        ASSERT_STREQ(uc->datastores[0]->apikey, "");
        ASSERT_BIN(uc->datastores[0]->cipherdata->cipherdata, "\x03");
        ASSERT_STREQ(uc->apps[0]->displayname, "app");
        ASSERT_BIN(uc->apps[0]->cipherdata->cipherdata, "\x01");
        ASSERT_EQ(uc->networks[0]->wireless->type, 1);
        ASSERT_STREQ(uc->networks[0]->wireless->wificfg[0]->wifissid, "ssid");
        ASSERT_BIN(uc->networks[0]->wireless->wificfg[0]->cipherdata->cipherdata, "\x02");
        ASSERT_STREQ(uc->baseos->content_tree_uuid, "t");
        ASSERT_TRUE(uc->baseos->activate);
        ASSERT_STREQ(uc->baseos->base_os_version, "v");
}

TEST(config_legacy_base_os_and_cleartext) {
        static const uint8_t base_bytes[] = {
                0x42, 0x12,                                   /* 8 base[0], 18 bytes */
                0x0a, 0x06, 0x0a, 0x01, 'b', 0x12, 0x01, '2', /*   1 uuidandversion */
                0x20, 0x01,                                   /*   4 activate */
                0x52, 0x03, '9',  '.',  '4',                  /*   10 baseOSVersion */
                0x62, 0x01, 'v',                              /*   12 volumeID */
        };
        static const uint8_t wifi_bytes[] = {
                0x2a, 0x01, 'i',                                     /* 5 identity */
                0x52, 0x01, 'p',                                     /* 10 password */
                0xa2, 0x01, 0x06, 0x5a, 0x01, 'x',  0x62, 0x01, 'y', /* 20 crypto {11 identity, 12 password}
                                                                      */
                0xc8, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* 25 priority -1 */
        };
        static const uint8_t ds_bytes[] = { 0x1a, 0x01, 'u', 0x22, 0x01, 'p' };
        static const uint8_t app_bytes[] = { 0x5a, 0x02, '#', '!' };
        Org__Lfedge__Eve__Config__EdgeDevConfig c = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__BaseOSConfig b = ORG__LFEDGE__EVE__CONFIG__BASE_OSCONFIG__INIT,
                                               *bs[] = { &b };
        Org__Lfedge__Eve__Config__UUIDandVersion bid = ORG__LFEDGE__EVE__CONFIG__UUIDAND_VERSION__INIT;
        Org__Lfedge__Eve__Config__WifiConfig wifi = ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT;
        Org__Lfedge__Eve__Config__WifiConfig__Cryptoblock cr =
                        ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__CRYPTOBLOCK__INIT;
        Org__Lfedge__Eve__Config__DatastoreConfig ds = ORG__LFEDGE__EVE__CONFIG__DATASTORE_CONFIG__INIT;
        Org__Lfedge__Eve__Config__AppInstanceConfig app =
                        ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__EdgeDevConfig *uc = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__WifiConfig *uw = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__DatastoreConfig *ud = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__AppInstanceConfig *ua = NULL;

        bid.uuid = (char *) "b";
        bid.version = (char *) "2";
        b.uuidandversion = &bid;
        b.activate = true;
        b.baseosversion = (char *) "9.4";
        b.volumeid = (char *) "v";
        c.n_base_os_config = 1;
        c.base_os_config = bs;
        uc = (Org__Lfedge__Eve__Config__EdgeDevConfig *) check_wire(&c.base, base_bytes, sizeof base_bytes);
        ASSERT_EQ(uc->n_base_os_config, 1);
        ASSERT_STREQ(uc->base_os_config[0]->baseosversion, "9.4");
        ASSERT_STREQ(uc->base_os_config[0]->volumeid, "v");
        ASSERT_NULL(uc->baseos);

        cr.identity = (char *) "x";
        cr.password = (char *) "y";
        wifi.identity = (char *) "i";
        wifi.password = (char *) "p";
        wifi.crypto = &cr;
        wifi.priority = -1;
        uw = (Org__Lfedge__Eve__Config__WifiConfig *) check_wire(&wifi.base, wifi_bytes, sizeof wifi_bytes);
        ASSERT_STREQ(uw->identity, "i");
        ASSERT_STREQ(uw->password, "p");
        ASSERT_STREQ(uw->crypto->password, "y");
        ASSERT_EQ(uw->priority, -1);
        ASSERT_NULL(uw->cipherdata);

        ds.apikey = (char *) "u";
        ds.password = (char *) "p";
        ud = (Org__Lfedge__Eve__Config__DatastoreConfig *) check_wire(&ds.base, ds_bytes, sizeof ds_bytes);
        ASSERT_STREQ(ud->apikey, "u");
        ASSERT_STREQ(ud->password, "p");

        app.userdata = (char *) "#!";
        ua = (Org__Lfedge__Eve__Config__AppInstanceConfig *) check_wire(
                        &app.base, app_bytes, sizeof app_bytes);
        ASSERT_STREQ(ua->userdata, "#!");
}

/* ---- info.proto ---- */

TEST(info_msg_vaults_and_attestation) {
        static const uint8_t expected[] = {
                0x08, 0x01,            /* 1 ztype = ZiDevice */
                0x12, 0x01, 'd',       /* 2 devId */
                0x1a, 0x41,            /* 3 dinfo, 65 bytes */
                0xd0, 0x01, 0x03,      /*   26 HSMStatus = ENABLED */
                0xda, 0x01, 0x01, 'i', /*   27 HSMInfo */
                0xea, 0x01, 0x22,      /*   29 dataSecAtRestInfo, 34 bytes */
                0x1a, 0x07, 0x0a, 0x01, 'v',  0x10, 0x02,
                0x20, 0x01,                              /* 3 vaultList[0] {"v", ENABLED, PCR_ENABLED} */
                0x1a, 0x17,                              /*     3 vaultList[1], 23 bytes */
                0x0a, 0x01, 'w',  0x10, 0x04,            /*       "w", ERROR */
                0x1a, 0x10,                              /*       3 vaultErr, 16 bytes */
                0x0a, 0x01, 'e',                         /*         1 description */
                0x12, 0x02, 0x08, 0x01,                  /*         2 timestamp {seconds 1} */
                0x18, 0x03,                              /*         3 severity = ERROR */
                0x22, 0x05, 0x08, 0x03, 0x12, 0x01, 'x', /*         4 entities[0] {VAULT, "x"} */
                0xf2, 0x01, 0x06, 0x0a, 0x01, 0x01, 0x12,
                0x01, 0x02,                   /* 30 sec_info */
                0x90, 0x02, 0x0d,             /*   34 last_boot_reason = VAULT_FAILED */
                0xf2, 0x02, 0x01, 0x02,       /*   46 maintenance_mode_reasons, packed [VAULT_LOCKED_UP] */
                0x92, 0x03, 0x02, 0x08, 0x07, /*   50 attestation_info {COMPLETE} */
                0x32, 0x08, 0x08, 0x80, 0xe2, 0xcf, 0xaa,
                0x06, 0x10, 0x05, /* 6 atTimeStamp {1700000000, 5} */
        };
        Org__Lfedge__Eve__Info__ZInfoMsg msg = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INIT;
        Org__Lfedge__Eve__Info__ZInfoDevice dev = ORG__LFEDGE__EVE__INFO__ZINFO_DEVICE__INIT;
        Org__Lfedge__Eve__Info__DataSecAtRest dsr = ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST__INIT;
        Org__Lfedge__Eve__Info__VaultInfo v1 = ORG__LFEDGE__EVE__INFO__VAULT_INFO__INIT,
                                          v2 = ORG__LFEDGE__EVE__INFO__VAULT_INFO__INIT,
                                          *vaults[] = { &v1, &v2 };
        Org__Lfedge__Eve__Info__ErrorInfo err = ORG__LFEDGE__EVE__INFO__ERROR_INFO__INIT;
        Org__Lfedge__Eve__Info__DeviceEntity ent = ORG__LFEDGE__EVE__INFO__DEVICE_ENTITY__INIT,
                                             *ents[] = { &ent };
        Org__Lfedge__Eve__Info__SecurityInfo sec = ORG__LFEDGE__EVE__INFO__SECURITY_INFO__INIT;
        Org__Lfedge__Eve__Info__AttestationInfo ai = ORG__LFEDGE__EVE__INFO__ATTESTATION_INFO__INIT;
        Google__Protobuf__Timestamp t1 = GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                                    now = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        Org__Lfedge__Eve__Info__MaintenanceModeReason reasons[] = {
                ORG__LFEDGE__EVE__INFO__MAINTENANCE_MODE_REASON__MAINTENANCE_MODE_REASON_VAULT_LOCKED_UP,
        };
        _cleanup_(proto_freep) Org__Lfedge__Eve__Info__ZInfoMsg *u = NULL;
        const Org__Lfedge__Eve__Info__ZInfoDevice *ud;

        t1.seconds = 1;
        now.seconds = 1700000000;
        now.nanos = 5;
        ent.entity = ORG__LFEDGE__EVE__INFO__ENTITY__ENTITY_VAULT;
        ent.entity_id = (char *) "x";
        err.description = (char *) "e";
        err.timestamp = &t1;
        err.severity = ORG__LFEDGE__EVE__INFO__SEVERITY__SEVERITY_ERROR;
        err.n_entities = 1;
        err.entities = ents;
        v1.name = (char *) "v";
        v1.status = ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ENABLED;
        v1.pcrstatus = ORG__LFEDGE__EVE__INFO__PCRSTATUS__PCR_ENABLED;
        v2.name = (char *) "w";
        v2.status = ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR;
        v2.vaulterr = &err;
        dsr.n_vaultlist = ELEMENTSOF(vaults);
        dsr.vaultlist = vaults;
        sec.sha_root_ca = (ProtobufCBinaryData){ 1, (uint8_t *) "\x01" };
        sec.sha_tls_root_ca = (ProtobufCBinaryData){ 1, (uint8_t *) "\x02" };
        ai.state = ORG__LFEDGE__EVE__INFO__ATTESTATION_STATE__ATTESTATION_STATE_COMPLETE;
        dev.hsmstatus = ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__ENABLED;
        dev.hsminfo = (char *) "i";
        dev.datasecatrestinfo = &dsr;
        dev.sec_info = &sec;
        dev.last_boot_reason = ORG__LFEDGE__EVE__INFO__BOOT_REASON__BOOT_REASON_VAULT_FAILED;
        dev.n_maintenance_mode_reasons = ELEMENTSOF(reasons);
        dev.maintenance_mode_reasons = reasons;
        dev.attestation_info = &ai;
        msg.ztype = ORG__LFEDGE__EVE__INFO__ZINFO_TYPES__ZiDevice;
        msg.devid = (char *) "d";
        msg.info_content_case = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO;
        msg.dinfo = &dev;
        msg.attimestamp = &now;

        u = (Org__Lfedge__Eve__Info__ZInfoMsg *) check_wire(&msg.base, expected, sizeof expected);
        ASSERT_EQ(u->ztype, 1);
        ASSERT_STREQ(u->devid, "d");
        ASSERT_EQ(u->info_content_case, ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO);
        ASSERT_EQ(u->attimestamp->seconds, 1700000000);
        ASSERT_EQ(u->attimestamp->nanos, 5);
        ud = u->dinfo;
        ASSERT_EQ(ud->hsmstatus, 3);
        ASSERT_STREQ(ud->hsminfo, "i");
        ASSERT_EQ(ud->datasecatrestinfo->n_vaultlist, 2);
        ASSERT_STREQ(ud->datasecatrestinfo->vaultlist[0]->name, "v");
        ASSERT_EQ(ud->datasecatrestinfo->vaultlist[0]->status, 2);
        ASSERT_EQ(ud->datasecatrestinfo->vaultlist[0]->pcrstatus, 1);
        ASSERT_NULL(ud->datasecatrestinfo->vaultlist[0]->vaulterr);
        ASSERT_EQ(ud->datasecatrestinfo->vaultlist[1]->status, 4);
        ASSERT_STREQ(ud->datasecatrestinfo->vaultlist[1]->vaulterr->description, "e");
        ASSERT_EQ(ud->datasecatrestinfo->vaultlist[1]->vaulterr->severity, 3);
        ASSERT_EQ(ud->datasecatrestinfo->vaultlist[1]->vaulterr->entities[0]->entity, 3);
        ASSERT_EQ(ud->last_boot_reason, 13);
        ASSERT_EQ(ud->n_maintenance_mode_reasons, 1);
        ASSERT_EQ(ud->maintenance_mode_reasons[0], 2);
        ASSERT_EQ(ud->attestation_info->state, 7);
        ASSERT_NULL(ud->attestation_info->error);
}

/* ---- metrics.proto ---- */

TEST(metrics_cipher) {
        static const uint8_t expected[] = {
                0x0a, 0x01, 'd',                                        /* 1 devID */
                0x22, 0x1b,                                             /* 4 dm, 27 bytes */
                0x6a, 0x19,                                             /*   13 cipher[0], 25 bytes */
                0x0a, 0x08, 'z',  'e',  'd',  'a',  'g', 'e', 'n', 't', /* 1 agent_name */
                0x10, 0x02,                                             /*     2 failure_count */
                0x18, 0xac, 0x02,                                       /*     3 success_count = 300 */
                0x22, 0x02, 0x08, 0x01,                                 /*     4 last_failure {seconds 1} */
                0x32, 0x04, 0x08, 0x02, 0x10, 0x02,                     /*     6 tc[0] {DECRYPT_FAILED, 2} */
        };
        Org__Lfedge__Eve__Metrics__ZMetricMsg msg = ORG__LFEDGE__EVE__METRICS__ZMETRIC_MSG__INIT;
        Org__Lfedge__Eve__Metrics__DeviceMetric dm = ORG__LFEDGE__EVE__METRICS__DEVICE_METRIC__INIT;
        Org__Lfedge__Eve__Metrics__CipherMetric cm = ORG__LFEDGE__EVE__METRICS__CIPHER_METRIC__INIT,
                                                *cms[] = { &cm };
        Org__Lfedge__Eve__Metrics__TypeCounter tc = ORG__LFEDGE__EVE__METRICS__TYPE_COUNTER__INIT,
                                               *tcs[] = { &tc };
        Google__Protobuf__Timestamp t1 = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Metrics__ZMetricMsg *u = NULL;

        t1.seconds = 1;
        tc.error_code = ORG__LFEDGE__EVE__METRICS__CIPHER_ERROR__CIPHER_ERROR_DECRYPT_FAILED;
        tc.count = 2;
        cm.agent_name = (char *) "zedagent";
        cm.failure_count = 2;
        cm.success_count = 300;
        cm.last_failure = &t1;
        cm.n_tc = 1;
        cm.tc = tcs;
        dm.n_cipher = 1;
        dm.cipher = cms;
        msg.devid = (char *) "d";
        msg.metric_content_case = ORG__LFEDGE__EVE__METRICS__ZMETRIC_MSG__METRIC_CONTENT_DM;
        msg.dm = &dm;

        u = (Org__Lfedge__Eve__Metrics__ZMetricMsg *) check_wire(&msg.base, expected, sizeof expected);
        ASSERT_EQ(u->dm->n_cipher, 1);
        ASSERT_STREQ(u->dm->cipher[0]->agent_name, "zedagent");
        ASSERT_EQ(u->dm->cipher[0]->success_count, 300);
        ASSERT_EQ(u->dm->cipher[0]->last_failure->seconds, 1);
        ASSERT_NULL(u->dm->cipher[0]->last_success);
        ASSERT_EQ(u->dm->cipher[0]->tc[0]->error_code, 2);
        ASSERT_EQ(u->dm->cipher[0]->tc[0]->count, 2);
}

/* ---- proto-util itself ---- */

TEST(unpack_refuses_bad_input) {
        static const uint8_t wrong_wire_type[] = { 0x0a, 0x01, 0x02 }; /* reqType (varint) sent as bytes */
        static const uint8_t field_zero[] = { 0x00, 0x00 };
        static const uint8_t wire_type_7[] = { 0x0f };
        static const uint8_t overlong_varint[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                   0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
        static const uint8_t huge_length[] = { 0x22, 0xff, 0xff, 0xff, 0xff, 0x0f };
        static const uint8_t field_zero_overlong[] = { 0x82, 0x00, 0x00 };
        static const uint8_t field_zero_nested[] = { 0x0a, 0x03, 0x82, 0x00, 0x00 };      /* in config */
        static const uint8_t field_zero_in_oneof[] = { 0x1a, 0x03, 0x82, 0x00, 0x00 };    /* in dinfo */
        static const uint8_t field_zero_in_repeated[] = { 0x52, 0x03, 0x82, 0x00, 0x00 }; /* in wifiCfg[0] */
        static const uint8_t field_one_in_oneof[] = { 0x1a, 0x03, 0x8a, 0x00, 0x00 };     /* dinfo {1: ""} */
        const ProtobufCMessageDescriptor *d = &org__lfedge__eve__attest__zattest_req__descriptor;
        /* An enum descriptor where a message descriptor belongs: refused by its magic number. */
        const ProtobufCMessageDescriptor *not_a_message =
                        (const void *) &org__lfedge__eve__attest__zattest_req_type__descriptor;
        ProtobufCMessage *m = NULL;

        ASSERT_ERROR(proto_unpack(d, wrong_wire_type, sizeof wrong_wire_type, 64, &m), EBADMSG);
        ASSERT_ERROR(proto_unpack(d, field_zero, sizeof field_zero, 64, &m), EBADMSG);
        ASSERT_ERROR(proto_unpack(d, wire_type_7, sizeof wire_type_7, 64, &m), EBADMSG);
        ASSERT_ERROR(proto_unpack(d, overlong_varint, sizeof overlong_varint, 64, &m), EBADMSG);
        ASSERT_ERROR(proto_unpack(d, huge_length, sizeof huge_length, 64, &m), EBADMSG);
        ASSERT_NULL(m);

        /* Field number 0 in an overlong tag (82 00 = field 0, length-delimited): protobuf-c alone accepts
         * it, at any depth, as an unknown field it could not pack again; proto_unpack refuses it. Found by
         * fuzzing. */
        ASSERT_ERROR(proto_unpack(d, field_zero_overlong, sizeof field_zero_overlong, 64, &m), EBADMSG);
        ASSERT_ERROR(proto_unpack(&org__lfedge__eve__config__config_response__descriptor,
                                  field_zero_nested,
                                  sizeof field_zero_nested,
                                  64,
                                  &m),
                     EBADMSG);
        ASSERT_ERROR(proto_unpack(&org__lfedge__eve__info__zinfo_msg__descriptor,
                                  field_zero_in_oneof,
                                  sizeof field_zero_in_oneof,
                                  64,
                                  &m),
                     EBADMSG);
        ASSERT_ERROR(proto_unpack(&org__lfedge__eve__config__wireless_config__descriptor,
                                  field_zero_in_repeated,
                                  sizeof field_zero_in_repeated,
                                  64,
                                  &m),
                     EBADMSG);
        ASSERT_NULL(m);
        /* The same bytes with field 1 instead of 0 are fine (an unknown or known field). */
        ASSERT_OK(
                        proto_unpack(&org__lfedge__eve__info__zinfo_msg__descriptor,
                                     field_one_in_oneof,
                                     sizeof field_one_in_oneof,
                                     64,
                                     &m));
        ASSERT_EQ(m->n_unknown_fields, 0);
        m = proto_free(m);

        /* Bad arguments. */
        ASSERT_ERROR(proto_unpack(NULL, field_zero, sizeof field_zero, 64, &m), EINVAL);
        ASSERT_ERROR(proto_unpack(d, NULL, 1, 64, &m), EINVAL);
        ASSERT_ERROR(proto_unpack(d, field_zero, sizeof field_zero, 64, NULL), EINVAL);
        ASSERT_ERROR(proto_unpack(not_a_message, field_zero, sizeof field_zero, 64, &m), EINVAL);
        ASSERT_NULL(m);
}

TEST(unpack_strings_must_be_utf8_without_nul) {
        /* UuidResponse.uuid (field 1, string) with various contents. */
        static const struct {
                uint8_t bytes[8];
                size_t size;
                bool valid;
        } cases[] = {
                { { 0x0a, 0x02, 0xc3, 0xbc }, 4, true },              /* ü */
                { { 0x0a, 0x04, 0xf0, 0x9f, 0x98, 0x80 }, 6, true },  /* U+1F600 */
                { { 0x0a, 0x01, 0xff }, 3, false },                   /* not UTF-8 */
                { { 0x0a, 0x03, 'a', 0x00, 'b' }, 5, false },         /* NUL would cut the C string */
                { { 0x0a, 0x02, 0xc0, 0xaf }, 4, false },             /* overlong '/' */
                { { 0x0a, 0x03, 0xed, 0xa0, 0x80 }, 5, false },       /* surrogate U+D800 */
                { { 0x0a, 0x04, 0xf4, 0x90, 0x80, 0x80 }, 6, false }, /* above U+10FFFF */
                { { 0x0a, 0x02, 0xe2, 0x82 }, 4, false },             /* cut sequence */
        };
        /* ConfigResponse{config{id{uuid = ff}}}: checked at any depth. */
        static const uint8_t nested[] = { 0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff };
        /* bytes fields are not strings: anything goes. */
        static const uint8_t bytes_field[] = { 0x1a, 0x03, 0xff, 0x00, 0xc0 };
        ProtobufCMessage *m = NULL;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r =
                                proto_unpack(&org__lfedge__eve__uuid__uuid_response__descriptor,
                                             cases[i].bytes,
                                             cases[i].size,
                                             64,
                                             &m);
                if (cases[i].valid) {
                        ASSERT_OK(r);
                        m = proto_free(m);
                } else
                        ASSERT_ERROR(r, EBADMSG);
        }
        ASSERT_ERROR(proto_unpack(&org__lfedge__eve__config__config_response__descriptor,
                                  nested,
                                  sizeof nested,
                                  64,
                                  &m),
                     EBADMSG);
        ASSERT_OK(
                        proto_unpack(&org__lfedge__eve__auth__auth_container__descriptor,
                                     bytes_field,
                                     sizeof bytes_field,
                                     64,
                                     &m));
        m = proto_free(m);
}

TEST(unpack_cap_checked_first) {
        /* The cap is applied before parsing: even bytes protobuf-c would refuse report -EMSGSIZE when too
         * many. */
        static const uint8_t junk[] = { 0xff, 0xff, 0xff };
        ProtobufCMessage *m = NULL;

        ASSERT_ERROR(proto_unpack(&org__lfedge__eve__auth__auth_container__descriptor,
                                  junk,
                                  sizeof junk,
                                  2,
                                  &m),
                     EMSGSIZE);
        ASSERT_ERROR(proto_unpack(&org__lfedge__eve__auth__auth_container__descriptor,
                                  junk,
                                  sizeof junk,
                                  3,
                                  &m),
                     EBADMSG);
        ASSERT_NULL(m);
}

TEST(unpack_secret_allocation_cap) {
        /* ContentTree.ds_ids_list (11) with PROTO_SECRET_MAX_ALLOCS + 10 empty strings: fine in plain
         * memory, too many page-sized allocations for secret memory. */
        size_t n_entries = PROTO_SECRET_MAX_ALLOCS + 10, n = 2 * n_entries;
        _cleanup_free_ uint8_t *buf = malloc(n);
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ContentTree *plain = NULL;
        Org__Lfedge__Eve__Config__ContentTree *secret = NULL;

        ASSERT_NOT_NULL(buf);
        for (size_t i = 0; i < n_entries; i++) {
                buf[2 * i] = 0x5a;
                buf[2 * i + 1] = 0x00;
        }
        ASSERT_OK(PROTO_UNPACK(&org__lfedge__eve__config__content_tree__descriptor, buf, n, n, &plain));
        ASSERT_EQ(plain->n_ds_ids_list, n_entries);
        ASSERT_ERROR(PROTO_UNPACK_SECRET(
                                     &org__lfedge__eve__config__content_tree__descriptor,
                                     buf,
                                     n,
                                     n,
                                     &secret),
                     EMSGSIZE);
        ASSERT_NULL(secret);
}

TEST(pack_refuses_invalid_message) {
        Org__Lfedge__Eve__Config__ContentTree ct = ORG__LFEDGE__EVE__CONFIG__CONTENT_TREE__INIT;
        char *ids[] = { (char *) "a", NULL };
        uint8_t *buf = NULL;
        size_t size = 0;

        ct.n_ds_ids_list = ELEMENTSOF(ids);
        ct.ds_ids_list = ids;
        ASSERT_ERROR(PROTO_PACK(&ct, &buf, &size), EINVAL);
        ASSERT_ERROR(proto_pack(NULL, &buf, &size), EINVAL);
        ASSERT_NULL(buf);
        ASSERT_EQ(size, 0);
}

TEST(free_accepts_null) {
        ASSERT_NULL(proto_free(NULL));
        ASSERT_NULL(proto_secret_free(NULL));
}

DEFINE_TEST_MAIN
