/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc's pure parts: the TPMS_ATTEST parser, the PCR digest, event-log replay, signatures, the store's
 * migrations, and cipher blocks checked against a decryption written here independently (nettle's raw AES block
 * function and point multiplication, not evc's CFB or ECDH code). */
#include <nettle/aes.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/gcm.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <zlib.h>

#include "config.pb-c.h"
#include "evc-attest.h"
#include "evc-cipher.h"
#include "evc-crypto.h"
#include "evc-keys.h"
#include "evc-nonce.h"
#include "evc-share.h"
#include "evc-store.h"
#include "evc-vault.h"
#include "evecommon.pb-c.h"
#include "evetrust.pb-c.h"
#include "memory-util.h"
#include "proto-util.h"
#include "tests.h"

/* ---- a TPMS_ATTEST built by hand ---- */

typedef struct Buf {
        uint8_t b[1024];
        size_t n;
} Buf;

static void put(Buf *b, const void *p, size_t n) {
        ASSERT_LE(b->n + n, sizeof b->b);
        memcpy(b->b + b->n, p, n);
        b->n += n;
}
static void be(Buf *b, uint64_t v, size_t k) {
        for (size_t i = k; i > 0; i--) {
                uint8_t c = (uint8_t) (v >> (8 * (i - 1)));
                put(b, &c, 1);
        }
}
static void le(Buf *b, uint64_t v, size_t k) {
        for (size_t i = 0; i < k; i++) {
                uint8_t c = (uint8_t) (v >> (8 * i));
                put(b, &c, 1);
        }
}

static void sha256(const void *p, size_t n, uint8_t out[32]) {
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, n, p);
        sha256_digest(&c, 32, out);
}

/* PCR i has value {i, i, …}. The quote selects mask in the SHA-256 bank. */
static void make_bank(EvcPcrBank *bank) {
        memset(bank, 0, sizeof *bank);
        for (unsigned i = 0; i < EVC_PCR_MAX; i++) {
                memset(bank->value[i], (int) i, 32);
                bank->present |= 1U << i;
        }
}

static void make_attest(Buf *b, const uint8_t *nonce, size_t nonce_size, uint32_t mask, const uint8_t digest[32]) {
        b->n = 0;
        be(b, 0xff544347, 4);
        be(b, 0x8018, 2);
        be(b, 34, 2); /* qualifiedSigner: a TPM2B_NAME (alg + SHA-256) */
        be(b, 0x000b, 2);
        for (int i = 0; i < 32; i++)
                be(b, 0xaa, 1);
        be(b, nonce_size, 2);
        put(b, nonce, nonce_size);
        be(b, 123456789, 8); /* clock */
        be(b, 7, 4);
        be(b, 3, 4);
        be(b, 1, 1);
        be(b, 0x2019062000000000ULL, 8);
        be(b, 1, 4); /* TPML_PCR_SELECTION.count */
        be(b, 0x000b, 2);
        be(b, 3, 1);
        be(b, mask & 0xff, 1);
        be(b, (mask >> 8) & 0xff, 1);
        be(b, (mask >> 16) & 0xff, 1);
        be(b, 32, 2);
        put(b, digest, 32);
}

TEST(tpms_attest_parses_a_quote) {
        uint8_t nonce[20], digest[32];
        EvcQuoteInfo q;
        const char *why = NULL;
        Buf b;

        memset(nonce, 0x5a, sizeof nonce);
        memset(digest, 0x11, sizeof digest);
        make_attest(&b, nonce, sizeof nonce, 0xffff, digest);
        ASSERT_OK(evc_tpms_attest_parse(b.b, b.n, &q, &why));
        ASSERT_EQ(q.magic, 0xff544347U);
        ASSERT_EQ(q.type, 0x8018);
        ASSERT_MEMEQ(q.extra_data, q.extra_data_size, nonce, sizeof nonce);
        ASSERT_EQ(q.clock, 123456789);
        ASSERT_EQ(q.reset_count, 7);
        ASSERT_EQ(q.restart_count, 3);
        ASSERT_EQ(q.safe, 1);
        ASSERT_EQ(q.n_selections, 1);
        ASSERT_EQ(q.selections[0].hash, 0x000b);
        ASSERT_EQ(q.selections[0].mask, 0xffff);
        ASSERT_EQ(evc_quote_pcr_mask(&q), 0xffff);
        ASSERT_MEMEQ(q.pcr_digest, q.pcr_digest_size, digest, sizeof digest);
}

TEST(tpms_attest_refuses_every_truncation_and_bad_field) {
        uint8_t nonce[16] = { 1 }, digest[32] = { 2 };
        EvcQuoteInfo q;
        const char *why;
        Buf b, c;

        make_attest(&b, nonce, sizeof nonce, 0x1, digest);
        for (size_t n = 0; n < b.n; n++) {
                why = NULL;
                ASSERT_ERROR(evc_tpms_attest_parse(b.b, n, &q, &why), EBADMSG);
                ASSERT_NOT_NULL(why);
        }
        /* Trailing garbage. */
        c = b;
        be(&c, 0, 1);
        ASSERT_ERROR(evc_tpms_attest_parse(c.b, c.n, &q, &why), EBADMSG);
        ASSERT_STREQ(why, "trailing bytes after TPMS_ATTEST");
        /* Wrong magic, wrong type (a TPM2_Certify), oversized extraData. */
        c = b;
        c.b[0] = 0;
        ASSERT_ERROR(evc_tpms_attest_parse(c.b, c.n, &q, &why), EBADMSG);
        c = b;
        c.b[5] = 0x17;
        ASSERT_ERROR(evc_tpms_attest_parse(c.b, c.n, &q, &why), EBADMSG);
        ASSERT_STREQ(why, "type is not TPM_ST_ATTEST_QUOTE");
        c = b;
        c.b[6 + 2 + 34] = 0xff;
        ASSERT_ERROR(evc_tpms_attest_parse(c.b, c.n, &q, &why), EBADMSG);
        /* Every single-byte corruption either parses or is refused with a reason; never a crash. */
        for (size_t i = 0; i < b.n; i++)
                for (unsigned v = 0; v < 256; v += 17) {
                        c = b;
                        c.b[i] = (uint8_t) v;
                        why = NULL;
                        if (evc_tpms_attest_parse(c.b, c.n, &q, &why) < 0)
                                ASSERT_NOT_NULL(why);
                }
}

TEST(pcr_digest_is_sha256_of_selected_values_in_order) {
        uint8_t nonce[8] = {}, zero[32] = {}, got[32], want[32];
        uint8_t concat[3 * 32];
        EvcPcrBank bank;
        EvcQuoteInfo q;
        Buf b;

        make_bank(&bank);
        make_attest(&b, nonce, sizeof nonce, (1U << 0) | (1U << 7) | (1U << 14), zero);
        ASSERT_OK(evc_tpms_attest_parse(b.b, b.n, &q, NULL));
        ASSERT_OK(evc_pcr_digest(&q, &bank, got));
        memcpy(concat, bank.value[0], 32);
        memcpy(concat + 32, bank.value[7], 32);
        memcpy(concat + 64, bank.value[14], 32);
        sha256(concat, sizeof concat, want);
        ASSERT_MEMEQ(got, 32, want, 32);

        /* A selected PCR that was not reported. */
        bank.present &= ~(1U << 7);
        ASSERT_ERROR(evc_pcr_digest(&q, &bank, got), ENOENT);
        /* A SHA-1 bank selection is not supported. */
        bank.present = ~0U;
        q.selections[0].hash = 0x0004;
        ASSERT_ERROR(evc_pcr_digest(&q, &bank, got), EOPNOTSUPP);
}

/* ---- event log ---- */

static void spec_id_event(Buf *b) {
        Buf ev = {};
        put(&ev, "Spec ID Event03", 16);
        le(&ev, 0, 4); /* platformClass */
        le(&ev, 0, 1);
        le(&ev, 2, 1);
        le(&ev, 0, 1);
        le(&ev, 2, 1); /* uintnSize */
        le(&ev, 2, 4); /* two algorithms */
        le(&ev, 0x0004, 2);
        le(&ev, 20, 2);
        le(&ev, 0x000b, 2);
        le(&ev, 32, 2);
        le(&ev, 0, 1); /* vendorInfoSize */
        le(b, 0, 4);
        le(b, 3, 4); /* EV_NO_ACTION */
        for (int i = 0; i < 20; i++)
                le(b, 0, 1);
        le(b, ev.n, 4);
        put(b, ev.b, ev.n);
}

static void event(Buf *b, uint32_t pcr, uint32_t type, const uint8_t sha256d[32], const char *data) {
        le(b, pcr, 4);
        le(b, type, 4);
        le(b, 2, 4);
        le(b, 0x0004, 2);
        for (int i = 0; i < 20; i++)
                le(b, 0xee, 1);
        le(b, 0x000b, 2);
        put(b, sha256d, 32);
        le(b, strlen(data), 4);
        put(b, data, strlen(data));
}

static void extend(uint8_t pcr[32], const uint8_t d[32]) {
        uint8_t c[64];
        memcpy(c, pcr, 32);
        memcpy(c + 32, d, 32);
        sha256(c, 64, pcr);
}

TEST(eventlog_replays_into_pcrs) {
        uint8_t d1[32], d2[32], d3[32], p0[32] = {}, p4[32] = {};
        EvcPcrBank bank;
        const char *why = NULL;
        Buf b = {};

        memset(d1, 1, 32);
        memset(d2, 2, 32);
        memset(d3, 3, 32);
        spec_id_event(&b);
        /* StartupLocality 3: PCR 0 starts at 00…03. */
        {
                Buf ev = {};
                put(&ev, "StartupLocality", 16);
                le(&ev, 3, 1);
                le(&b, 0, 4);
                le(&b, 3, 4);
                le(&b, 1, 4);
                le(&b, 0x000b, 2);
                for (int i = 0; i < 32; i++)
                        le(&b, 0, 1);
                le(&b, ev.n, 4);
                put(&b, ev.b, ev.n);
        }
        event(&b, 0, 0x80000008, d1, "firmware");
        event(&b, 4, 0x80000003, d2, "bootloader");
        event(&b, 4, 0x80000003, d3, "kernel");
        ASSERT_OK(evc_eventlog_replay(b.b, b.n, &bank, &why));
        p0[31] = 3;
        extend(p0, d1);
        extend(p4, d2);
        extend(p4, d3);
        ASSERT_EQ(bank.present, (1U << 0) | (1U << 4));
        ASSERT_MEMEQ(bank.value[0], 32, p0, 32);
        ASSERT_MEMEQ(bank.value[4], 32, p4, 32);

        /* Through gzip, as the device sends it. */
        {
                uint8_t gz[2048];
                _cleanup_free_ uint8_t *out = NULL;
                size_t out_size;
                z_stream z = {};

                ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
                z.next_in = b.b;
                z.avail_in = (uInt) b.n;
                z.next_out = gz;
                z.avail_out = sizeof gz;
                ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
                ASSERT_OK(evc_gunzip(gz, z.total_out, 1 << 20, &out, &out_size));
                ASSERT_MEMEQ(out, out_size, b.b, b.n);
                /* Truncated gzip and a too-small cap fail cleanly. */
                free(out);
                out = NULL;
                ASSERT_ERROR(evc_gunzip(gz, z.total_out - 5, 1 << 20, &out, &out_size), EBADMSG);
                deflateEnd(&z);
        }
        /* Every truncation is refused with a reason or parses a prefix; never a crash. */
        for (size_t n = 0; n < b.n; n++) {
                why = NULL;
                if (evc_eventlog_replay(b.b, n, &bank, &why) < 0)
                        ASSERT_NOT_NULL(why);
        }
        /* Not a crypto-agile log. */
        b.b[8 + 20 + 4] = 'X';
        ASSERT_ERROR(evc_eventlog_replay(b.b, b.n, &bank, &why), EBADMSG);
}

/* ---- signatures, chains, AEAD ---- */

static void gen(EvcCertKind kind, const char *name, gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
                gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key) {
        _cleanup_free_ char *c = NULL, *k = NULL;

        ASSERT_OK(asprintf(&c, "%s/%s.pem", test_tmpdir(), name));
        ASSERT_OK(asprintf(&k, "%s/%s-key.pem", test_tmpdir(), name));
        ASSERT_OK(evc_generate_cert(kind, name, issuer, issuer_key, c, k, crt, key));
}

TEST(raw_signatures_verify_and_tampering_is_caught) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL, leaf = NULL, other = NULL;
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t root_key = NULL, leaf_key = NULL,
                                                                      other_key = NULL;
        uint8_t sig[64], digest[32];
        const char *msg = "payload bytes";

        gen(EVC_CERT_ROOT, "root", NULL, NULL, &root, &root_key);
        gen(EVC_CERT_SIGNING, "signing", root, root_key, &leaf, &leaf_key);
        gen(EVC_CERT_ROOT, "other", NULL, NULL, &other, &other_key);

        for (int i = 0; i < 32; i++) { /* r or s with leading zeros show up within a few dozen signatures */
                ASSERT_OK(evc_sign_raw(leaf_key, msg, strlen(msg), sig));
                sha256(msg, strlen(msg), digest);
                ASSERT_OK(evc_verify_digest(leaf, digest, sig, sizeof sig));
        }
        sig[10] ^= 1;
        ASSERT_ERROR(evc_verify_digest(leaf, digest, sig, sizeof sig), EBADMSG);
        ASSERT_ERROR(evc_verify_digest(leaf, digest, sig, 0), EINVAL);

        ASSERT_OK(evc_verify_chain(leaf, root));
        ASSERT_ERROR(evc_verify_chain(leaf, other), EPERM);
}

TEST(aead_seals_and_refuses_tampering) {
        uint8_t key[32], *sealed, *plain;
        size_t sealed_size, plain_size;

        memset(key, 7, sizeof key);
        ASSERT_OK(evc_aead_seal(key, "hunter2", 7, &sealed, &sealed_size));
        ASSERT_EQ(sealed_size, 12 + 7 + 16);
        ASSERT_OK(evc_aead_open(key, sealed, sealed_size, &plain, &plain_size));
        ASSERT_STREQ((char *) plain, "hunter2");
        eve_secret_free(plain);
        sealed[14] ^= 0x80;
        ASSERT_ERROR(evc_aead_open(key, sealed, sealed_size, &plain, &plain_size), EBADMSG);
        ASSERT_ERROR(evc_aead_open(key, sealed, 5, &plain, &plain_size), EBADMSG);
        free(sealed);
}

/* ---- cipher blocks vs an independent decryption ---- */

static void independent_ecdh(gnutls_x509_privkey_t dev_key, gnutls_x509_crt_t ctrl_crt, uint8_t out[32]) {
        gnutls_datum_t x = {}, y = {}, k = {}, px = {}, py = {};
        gnutls_ecc_curve_t curve;
        const struct ecc_curve *c = nettle_get_secp_256r1();
        struct ecc_scalar s;
        struct ecc_point p, q;
        uint8_t xy[64] = {};
        mpz_t zk, zx, zy;

        ASSERT_OK(gnutls_x509_privkey_export_ecc_raw(dev_key, &curve, &x, &y, &k));
        ASSERT_OK(gnutls_x509_crt_get_pk_ecc_raw(ctrl_crt, &curve, &px, &py));
        mpz_inits(zk, zx, zy, NULL);
        mpz_import(zk, k.size, 1, 1, 1, 0, k.data);
        mpz_import(zx, px.size, 1, 1, 1, 0, px.data);
        mpz_import(zy, py.size, 1, 1, 1, 0, py.data);
        ecc_scalar_init(&s, c);
        ecc_point_init(&p, c);
        ecc_point_init(&q, c);
        ASSERT_TRUE(ecc_scalar_set(&s, zk));
        ASSERT_TRUE(ecc_point_set(&p, zx, zy));
        ecc_point_mul(&q, &s, &p);
        ecc_point_get(&q, zx, zy);
        /* Left-pad each coordinate to 32 bytes, the way EVE does. */
        mpz_export(xy + 32 - (mpz_sizeinbase(zx, 2) + 7) / 8, NULL, 1, 1, 1, 0, zx);
        mpz_export(xy + 64 - (mpz_sizeinbase(zy, 2) + 7) / 8, NULL, 1, 1, 1, 0, zy);
        sha256(xy, 64, out);
        ecc_scalar_clear(&s);
        ecc_point_clear(&p);
        ecc_point_clear(&q);
        mpz_clears(zk, zx, zy, NULL);
        gnutls_free(x.data);
        gnutls_free(y.data);
        gnutls_free(k.data);
        gnutls_free(px.data);
        gnutls_free(py.data);
}

/* AES-256-CFB128 decryption from the raw block cipher: P_i = C_i xor E(C_{i-1}), C_{-1} = IV. */
static void independent_cfb_decrypt(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n,
                uint8_t *out) {
        struct aes256_ctx c;
        uint8_t reg[16], ks[16];

        aes256_set_encrypt_key(&c, key);
        memcpy(reg, iv, 16);
        for (size_t off = 0; off < n; off += 16) {
                size_t k = MIN((size_t) 16, n - off);
                aes256_encrypt(&c, 16, ks, reg);
                for (size_t i = 0; i < k; i++)
                        out[off + i] = in[off + i] ^ ks[i];
                if (k == 16)
                        memcpy(reg, in + off, 16);
        }
}

TEST(cipher_block_decrypts_independently_with_fresh_ivs) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL, ctrl = NULL, dev = NULL;
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t root_key = NULL, ctrl_key = NULL,
                                                                      dev_key = NULL;
        Org__Lfedge__Eve__Common__CipherBlock b1 = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT,
                                              b2 = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        uint8_t k_ctrl[32], k_dev[32], sha[32], out[64];
        const char *plain = "a wifi password that spans more than two AES blocks!";
        uint8_t *back;
        size_t back_size;

        gen(EVC_CERT_ROOT, "croot", NULL, NULL, &root, &root_key);
        gen(EVC_CERT_ECDH, "cecdh", root, root_key, &ctrl, &ctrl_key);
        gen(EVC_CERT_ECDH, "decdh", root, root_key, &dev, &dev_key);

        ASSERT_OK(evc_ecdh_key(ctrl_key, dev, k_ctrl));
        independent_ecdh(dev_key, ctrl, k_dev);
        ASSERT_MEMEQ(k_ctrl, 32, k_dev, 32);

        ASSERT_OK(evc_cipher_block_encrypt(k_ctrl, "ctx", plain, strlen(plain), &b1));
        ASSERT_OK(evc_cipher_block_encrypt(k_ctrl, "ctx", plain, strlen(plain), &b2));
        ASSERT_STREQ(b1.ciphercontextid, "ctx");
        ASSERT_EQ(b1.initialvalue.len, 16);
        /* A fresh IV per block: the same plaintext never gives the same ciphertext. */
        ASSERT_TRUE(memcmp(b1.initialvalue.data, b2.initialvalue.data, 16) != 0);
        ASSERT_TRUE(memcmp(b1.cipherdata.data, b2.cipherdata.data, b1.cipherdata.len) != 0);

        ASSERT_EQ(b1.cipherdata.len, strlen(plain));
        independent_cfb_decrypt(k_dev, b1.initialvalue.data, b1.cipherdata.data, b1.cipherdata.len, out);
        ASSERT_MEMEQ(out, b1.cipherdata.len, plain, strlen(plain));
        sha256(out, b1.cipherdata.len, sha);
        ASSERT_MEMEQ(b1.cleartextsha256.data, b1.cleartextsha256.len, sha, 32);

        /* evc's own decryption agrees, and refuses a bad IV length or a corrupted block. */
        ASSERT_OK(evc_cipher_block_decrypt(k_dev, &b2, &back, &back_size));
        ASSERT_MEMEQ(back, back_size, plain, strlen(plain));
        eve_secret_free(back);
        b2.cipherdata.data[3] ^= 1;
        ASSERT_ERROR(evc_cipher_block_decrypt(k_dev, &b2, &back, &back_size), EBADMSG);
        b2.initialvalue.len = 15;
        ASSERT_ERROR(evc_cipher_block_decrypt(k_dev, &b2, &back, &back_size), EBADMSG);
        b2.initialvalue.len = 16;
        evc_cipher_block_done(&b1);
        evc_cipher_block_done(&b2);
}

/* ---- store ---- */

/* ---- controller shares ---- */

/* Opens a wire share the way the contract in proto/evetrust.proto says, with nettle's GCM directly. */
static int
                open_wire_share(const uint8_t k[32],
                                const Org__Eve__Trust__EveControllerShare *m,
                                const char *ad_uuid,
                                uint8_t out[32]) {
        struct gcm_aes256_ctx c;
        uint8_t tag[16];
        char ad[128];

        snprintf(ad, sizeof ad, "eve-trust controller share v1%s", ad_uuid);
        gcm_aes256_set_key(&c, k);
        gcm_aes256_set_iv(&c, m->nonce.len, m->nonce.data);
        gcm_aes256_update(&c, strlen(ad), (const uint8_t *) ad);
        gcm_aes256_decrypt(&c, 32, out, m->sealed_share.data);
        gcm_aes256_digest(&c, 16, tag);
        return memcmp(tag, m->sealed_share.data + 32, 16) == 0 ? 0 : -EBADMSG;
}

TEST(share_wire_format_opens_independently) {
        static const char vault[] = "0b1e0b1e-1111-4222-8333-444455556666";
        uint8_t k[32], hash[16], share[32], out[32], *packed = NULL, *packed2 = NULL;
        size_t n, n2;
        Org__Eve__Trust__EveControllerShare *m = NULL, *m2 = NULL;

        for (int i = 0; i < 32; i++) {
                k[i] = (uint8_t) (3 * i + 1);
                share[i] = (uint8_t) (0xa0 ^ i);
        }
        memset(hash, 0x5c, sizeof hash);
        ASSERT_OK(evc_share_seal_wire(k, hash, vault, share, &packed, &n));
        ASSERT_OK(PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor, packed, n, 4096, &m));
        ASSERT_STREQ(m->vault_uuid, vault);
        ASSERT_MEMEQ(m->controller_cert_hash.data, m->controller_cert_hash.len, hash, 16);
        ASSERT_EQ(m->nonce.len, 12);
        ASSERT_EQ(m->sealed_share.len, 48);
        ASSERT_OK(open_wire_share(k, m, vault, out));
        ASSERT_MEMEQ(out, 32, share, 32);
        /* The additional data binds the vault: the same bytes presented for another vault do not open. */
        ASSERT_ERROR(open_wire_share(k, m, "0b1e0b1e-1111-4222-8333-444455556667", out), EBADMSG);
        k[0] ^= 1;
        ASSERT_ERROR(open_wire_share(k, m, vault, out), EBADMSG);
        k[0] ^= 1;
        m->sealed_share.data[5] ^= 1;
        ASSERT_ERROR(open_wire_share(k, m, vault, out), EBADMSG);
        /* A fresh nonce every time. */
        ASSERT_OK(evc_share_seal_wire(k, hash, vault, share, &packed2, &n2));
        ASSERT_OK(PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor, packed2, n2, 4096, &m2));
        ASSERT_TRUE(memcmp(m->nonce.data, m2->nonce.data, 12) != 0);
        proto_free(m);
        proto_free(m2);
        free(packed);
        free(packed2);
}

static void pack_request(const char *uuid, const char *extra_hash, uint8_t **ret, size_t *ret_size) {
        Org__Eve__Trust__EveControllerShare m = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;

        m.vault_uuid = (char *) uuid;
        if (extra_hash)
                m.controller_cert_hash = (ProtobufCBinaryData){ .len = strlen(extra_hash),
                                                                .data = (uint8_t *) extra_hash };
        ASSERT_OK(PROTO_PACK(&m, ret, ret_size));
}

TEST(share_requests_carry_a_vault_uuid_only) {
        static const char *const bad[] = { "",
                                           "0b1e0b1e-1111-4222-8333-44445555666",
                                           "0b1e0b1e+1111-4222-8333-444455556666",
                                           "0b1e0b1e-1111-4222-8333-44445555666g",
                                           "0b1e0b1e-1111-4222-8333-4444555566667" };
        const char *why = NULL;
        uint8_t *p;
        size_t n;
        char uuid[37];

        pack_request("0B1E0B1E-1111-4222-8333-44445555666A", NULL, &p, &n);
        ASSERT_OK(evc_share_request_parse(p, n, uuid, &why));
        ASSERT_STREQ(uuid, "0b1e0b1e-1111-4222-8333-44445555666a");
        free(p);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                pack_request(bad[i], NULL, &p, &n);
                ASSERT_ERROR(evc_share_request_parse(p, n, uuid, &why), EBADMSG);
                ASSERT_STREQ(why, "vault_uuid is not a UUID");
                free(p);
        }
        pack_request("0b1e0b1e-1111-4222-8333-444455556666", "0123456789abcdef", &p, &n);
        ASSERT_ERROR(evc_share_request_parse(p, n, uuid, &why), EBADMSG);
        ASSERT_STREQ(why, "a share request carries vault_uuid only");
        free(p);
        ASSERT_ERROR(evc_share_request_parse("\x0a\xff", 2, uuid, &why), EBADMSG);
}

TEST(stored_shares_are_bound_to_device_and_vault) {
        static const char dev[] = "d0d0d0d0-0000-4000-8000-000000000001",
                          vault[] = "0b1e0b1e-1111-4222-8333-444455556666";
        uint8_t key[32], *sealed, *share = NULL;
        size_t sealed_size;
        Evc e = { .db_key = key };

        memset(key, 9, sizeof key);
        ASSERT_OK(evc_share_new_sealed(&e, dev, vault, &sealed, &sealed_size));
        ASSERT_EQ(sealed_size, 12 + 32 + 16);
        ASSERT_OK(evc_share_unseal(&e, dev, vault, sealed, sealed_size, &share));
        ASSERT_EQ(eve_secret_size(share) >= 32, true);
        share = eve_secret_free(share);
        ASSERT_ERROR(evc_share_unseal(
                                     &e,
                                     "d0d0d0d0-0000-4000-8000-000000000002",
                                     vault,
                                     sealed,
                                     sealed_size,
                                     &share),
                     EBADMSG);
        ASSERT_ERROR(evc_share_unseal(
                                     &e,
                                     dev,
                                     "0b1e0b1e-1111-4222-8333-444455556667",
                                     sealed,
                                     sealed_size,
                                     &share),
                     EBADMSG);
        free(sealed);
}

/* ---- nonces (memory only) ---- */

TEST(nonces_are_single_use_per_device_and_expire) {
        EvcNonces t;
        uint8_t a[EVC_NONCE_SIZE], b[EVC_NONCE_SIZE], c[EVC_NONCE_SIZE];

        evc_nonces_init(&t);
        ASSERT_OK(evc_nonce_issue(&t, 1, 60000, a));
        ASSERT_OK(evc_nonce_issue(&t, 2, 60000, b));
        /* Another device's nonce, a wrong length, a replaced one: unknown. */
        ASSERT_EQ(evc_nonce_take(&t, 1, b, sizeof b), EVC_NONCE_UNKNOWN);
        ASSERT_EQ(evc_nonce_take(&t, 1, a, 12), EVC_NONCE_UNKNOWN);
        ASSERT_EQ(evc_nonce_take(&t, 1, a, sizeof a), EVC_NONCE_OK);
        ASSERT_EQ(evc_nonce_take(&t, 1, a, sizeof a), EVC_NONCE_UNKNOWN); /* single use */
        ASSERT_OK(evc_nonce_issue(&t, 2, 60000, c));
        ASSERT_EQ(evc_nonce_take(&t, 2, b, sizeof b), EVC_NONCE_UNKNOWN); /* replaced by c */
        ASSERT_EQ(evc_nonce_take(&t, 2, c, sizeof c), EVC_NONCE_OK);
        ASSERT_EQ(evc_nonce_take(&t, 3, c, sizeof c), EVC_NONCE_UNKNOWN);
        ASSERT_ERROR(evc_nonce_issue(&t, 0, 60000, c), EINVAL);
        /* Expiry. */
        ASSERT_OK(evc_nonce_issue(&t, 1, 1, a));
        usleep(20 * 1000);
        ASSERT_EQ(evc_nonce_take(&t, 1, a, sizeof a), EVC_NONCE_EXPIRED);
        ASSERT_EQ(evc_nonce_take(&t, 1, a, sizeof a), EVC_NONCE_UNKNOWN);
        /* Many devices: the table grows and keeps every one. */
        for (int64_t id = 10; id < 5000; id++)
                ASSERT_OK(evc_nonce_issue(&t, id, 60000, a));
        ASSERT_EQ(evc_nonce_take(&t, 4999, a, sizeof a), EVC_NONCE_OK);
        ASSERT_OK(evc_nonce_issue(&t, 10, 60000, a));
        ASSERT_EQ(evc_nonce_take(&t, 10, a, sizeof a), EVC_NONCE_OK);
        evc_nonces_done(&t);
}

/* ---- controller keys ---- */

static void write_bytes(const char *dir, const char *rel, const void *p, size_t n) {
        _cleanup_free_ char *path = NULL;
        ASSERT_OK(asprintf(&path, "%s/%s", dir, rel));
        ASSERT_OK(evc_write_file(path, p, n, 0600));
}

static char *path_in(const char *dir, const char *rel) {
        char *p;
        ASSERT_OK(asprintf(&p, "%s/%s", dir, rel));
        return p;
}

/* A directory made by an evc that kept the signing and ECDH pairs in certs/ and keys/: the pairs move into
 * the database (sealed), the files go, and the certificates served are the same. */
TEST(keys_from_an_older_directory_are_imported) {
        _cleanup_free_ char *dir = NULL, *rc = NULL, *rk = NULL, *sc = NULL, *sk = NULL, *ec = NULL,
                            *ek = NULL, *tc = NULL, *tk = NULL, *certs = NULL, *keys = NULL;
        _cleanup_free_ uint8_t *signing_pem = NULL, *ecdh_pem = NULL;
        gnutls_x509_crt_t root;
        gnutls_x509_privkey_t root_key;
        size_t n1, n2;
        uint8_t dbk[32], h[32];
        Evc *e = NULL;
        EvcKeys *k = NULL;

        ASSERT_OK(asprintf(&dir, "%s/old", test_tmpdir()));
        certs = path_in(dir, "certs");
        keys = path_in(dir, "keys");
        ASSERT_OK(mkdir(dir, 0755));
        ASSERT_OK(mkdir(certs, 0755));
        ASSERT_OK(mkdir(keys, 0700));
        rc = path_in(dir, "certs/root.pem");
        rk = path_in(dir, "keys/root-key.pem");
        sc = path_in(dir, "certs/signing.pem");
        sk = path_in(dir, "keys/signing-key.pem");
        ec = path_in(dir, "certs/ecdh.pem");
        ek = path_in(dir, "keys/ecdh-key.pem");
        tc = path_in(dir, "certs/server.pem");
        tk = path_in(dir, "keys/server-key.pem");
        ASSERT_OK(evc_generate_cert(EVC_CERT_ROOT, "root", NULL, NULL, rc, rk, &root, &root_key));
        ASSERT_OK(evc_generate_cert(EVC_CERT_SIGNING, "signing", root, root_key, sc, sk, NULL, NULL));
        ASSERT_OK(evc_generate_cert(EVC_CERT_ECDH, "ecdh", root, root_key, ec, ek, NULL, NULL));
        ASSERT_OK(evc_generate_cert(EVC_CERT_TLS, "localhost", root, root_key, tc, tk, NULL, NULL));
        memset(dbk, 0x42, sizeof dbk);
        write_bytes(dir, "keys/db.key", dbk, sizeof dbk);
        ASSERT_OK(evc_read_file(sc, &signing_pem, &n1));
        ASSERT_OK(evc_read_file(ec, &ecdh_pem, &n2));

        ASSERT_OK(evc_load(dir, &e));
        ASSERT_OK(evc_keys_get(e, &k));
        sha256(signing_pem, n1, h);
        ASSERT_MEMEQ(k->signing.hash, 32, h, 32);
        sha256(ecdh_pem, n2, h);
        ASSERT_MEMEQ(k->ecdh.hash, 32, h, 32);
        ASSERT_NOT_NULL(k->signing.key);
        ASSERT_NOT_NULL(k->ecdh.key);
        ASSERT_FALSE(k->per_device);
        /* No private key is left in the clear. */
        ASSERT_TRUE(access(sk, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(access(ek, F_OK) < 0 && errno == ENOENT);
        evc_keys_unref(k);
        k = NULL;
        e = evc_free(e);
        /* Loading again changes nothing. */
        ASSERT_OK(evc_load(dir, &e));
        ASSERT_OK(evc_keys_get(e, &k));
        ASSERT_MEMEQ(k->ecdh.hash, 32, h, 32);
        evc_keys_unref(k);
        evc_free(e);
        gnutls_x509_crt_deinit(root);
        gnutls_x509_privkey_deinit(root_key);
}

/* ---- vault rules and the extension's field numbers ---- */

TEST(vault_rules_are_eves) {
        uint32_t m;
        uint64_t size;
        const char *why = NULL;
        EvcVault v = { .name = "data", .key_source = KEY_SOURCE_TPM };

        ASSERT_OK(evc_vault_pcrs_parse("0,1,2,3,4,7", &m));
        ASSERT_EQ(m, 0x9fU);
        ASSERT_OK(evc_vault_pcrs_check(m, NULL));
        ASSERT_OK(evc_vault_pcrs_parse("default", &m));
        ASSERT_EQ(m, 0U);
        ASSERT_OK(evc_vault_pcrs_check(0, NULL)); /* the node's default */
        ASSERT_OK(evc_vault_pcrs_parse("0", &m)); /* EVE accepts {0} alone */
        ASSERT_OK(evc_vault_pcrs_check(m, NULL));
        ASSERT_ERROR(evc_vault_pcrs_parse("0,0", &m), EINVAL);
        ASSERT_ERROR(evc_vault_pcrs_parse("0,,1", &m), EINVAL);
        ASSERT_ERROR(evc_vault_pcrs_parse("0,32", &m), EINVAL);
        ASSERT_ERROR(evc_vault_pcrs_parse("-1", &m), EINVAL);
        ASSERT_ERROR(evc_vault_pcrs_parse("", &m), EINVAL);
        ASSERT_ERROR(evc_vault_pcrs_check(0x6, &why), EINVAL);
        ASSERT_STREQ(why, "PCR 0 is required");
        ASSERT_ERROR(evc_vault_pcrs_check(0x21, &why), EINVAL);
        ASSERT_ERROR(evc_vault_pcrs_check(0x10001, &why), EINVAL);
        ASSERT_OK(evc_vault_pcrs_check(0xffdf, NULL)); /* 15 PCRs: 0-15 without 5 */

        ASSERT_OK(evc_vault_size_parse("512M", &size));
        ASSERT_EQ(size, UINT64_C(512) << 20);
        ASSERT_OK(evc_vault_size_parse("33554432", &size));
        ASSERT_ERROR(evc_vault_size_parse("5X", &size), EINVAL);
        ASSERT_ERROR(evc_vault_size_parse("99999999999999999T", &size), ERANGE);

        ASSERT_OK(evc_vault_check(&v, NULL));
        v.size_limit = UINT64_C(16) << 20;
        ASSERT_ERROR(evc_vault_check(&v, &why), EINVAL);
        v.size_limit = 0;
        v.pcrs = 0x1;
        ASSERT_ERROR(evc_vault_check(&v, &why), EINVAL); /* a list without a policy id */
        v.policy_id = 3;
        ASSERT_OK(evc_vault_check(&v, NULL));
        v.name = "-x";
        ASSERT_ERROR(evc_vault_check(&v, &why), EINVAL);
}

/* The documented numbers: EdgeDevConfig.eve_trust_vaults and AppInstanceConfig.eve_trust_vault_uuid are
 * field 17760, length-delimited: tag varint (17760 << 3 | 2) = 0x82 0xd6 0x08. */
TEST(vault_extension_field_numbers) {
        Org__Lfedge__Eve__Config__EdgeDevConfig c = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__EveTrustVaultConfig
                        v = ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_CONFIG__INIT,
                        *vp = &v;
        Org__Lfedge__Eve__Config__AppInstanceConfig a = ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT;
        static const uint8_t tag[] = { 0x82, 0xd6, 0x08 };
        uint8_t *p;
        size_t n;

        v.name = (char *) "data";
        c.n_eve_trust_vaults = 1;
        c.eve_trust_vaults = &vp;
        ASSERT_OK(PROTO_PACK(&c, &p, &n));
        ASSERT_GE(n, sizeof tag);
        ASSERT_MEMEQ(p, sizeof tag, tag, sizeof tag);
        free(p);
        a.eve_trust_vault_uuid = (char *) "0b1e0b1e-1111-4222-8333-444455556666";
        ASSERT_OK(PROTO_PACK(&a, &p, &n));
        ASSERT_MEMEQ(p, sizeof tag, tag, sizeof tag);
        free(p);
        ASSERT_EQ(17760 << 3 | 2, 0x08 << 14 | 0x56 << 7 | 0x02);
}

TEST(store_migrates_once_and_refuses_a_newer_schema) {
        _cleanup_free_ char *path = NULL;
        EvcStore *s = NULL;

        ASSERT_OK(asprintf(&path, "%s/evc.db", test_tmpdir()));
        ASSERT_OK(evc_store_open(path, &s));
        ASSERT_EQ(evc_store_schema_version(s), EVC_SCHEMA_VERSION);
        ASSERT_OK(evc_exec(s, "INSERT INTO events (time, what) VALUES (1, 'x')"));
        s = evc_store_free(s);
        /* Reopening keeps data and does not migrate again. */
        ASSERT_OK(evc_store_open(path, &s));
        ASSERT_EQ(evc_store_schema_version(s), EVC_SCHEMA_VERSION);
        /* A rolled-back transaction leaves nothing. */
        ASSERT_OK(evc_tx_begin(s));
        ASSERT_OK(evc_exec(s, "INSERT INTO events (time, what) VALUES (2, 'y')"));
        evc_tx_rollback(s);
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                ASSERT_OK(evc_prepare(s, "SELECT count(*) FROM events", &st));
                ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
                ASSERT_EQ(sqlite3_column_int(st, 0), 1);
        }
        /* Cached statements: the same SQL again reuses the statement; a nested use of the same text while
         * the first is still stepping gets a statement of its own. */
        {
                _cleanup_stmt_ sqlite3_stmt *outer = NULL, *inner = NULL, *again = NULL;
                sqlite3_stmt *first;
                ASSERT_OK(evc_prepare(s, "SELECT time FROM events ORDER BY time", &outer));
                first = outer;
                ASSERT_EQ(sqlite3_step(outer), SQLITE_ROW);
                ASSERT_OK(evc_prepare(s, "SELECT time FROM events ORDER BY time", &inner));
                ASSERT_TRUE(inner != outer);
                ASSERT_EQ(sqlite3_step(inner), SQLITE_ROW);
                ASSERT_EQ(sqlite3_column_int(outer, 0), 1);
                inner = evc_stmt_release(inner);
                outer = evc_stmt_release(outer);
                ASSERT_OK(evc_prepare(s, "SELECT time FROM events ORDER BY time", &again));
                ASSERT_TRUE(again == first);
                ASSERT_EQ(sqlite3_step(again), SQLITE_ROW); /* reset: starts from the first row again */
                ASSERT_EQ(sqlite3_column_int(again, 0), 1);
        }
        ASSERT_OK(evc_exec(s, "UPDATE schema_version SET version = 999"));
        s = evc_store_free(s);
        ASSERT_ERROR(evc_store_open(path, &s), EPROTO);
}

DEFINE_TEST_MAIN
