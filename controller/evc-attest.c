/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <nettle/sha2.h>
#include <zlib.h>

#include "evc-attest.h"
#include "log.h"

typedef struct Reader {
        const uint8_t *p;
        size_t n;
} Reader;

static bool rd_bytes(Reader *r, size_t k, const uint8_t **ret) {
        if (r->n < k)
                return false;
        if (ret)
                *ret = r->p;
        r->p += k;
        r->n -= k;
        return true;
}

static bool rd_be(Reader *r, size_t k, uint64_t *ret) {
        const uint8_t *b;
        uint64_t v = 0;

        if (!rd_bytes(r, k, &b))
                return false;
        for (size_t i = 0; i < k; i++)
                v = (v << 8) | b[i];
        *ret = v;
        return true;
}

static bool rd_le(Reader *r, size_t k, uint64_t *ret) {
        const uint8_t *b;
        uint64_t v = 0;

        if (!rd_bytes(r, k, &b))
                return false;
        for (size_t i = k; i > 0; i--)
                v = (v << 8) | b[i - 1];
        *ret = v;
        return true;
}

static bool rd_tpm2b(Reader *r, size_t max, const uint8_t **ret, size_t *ret_size) {
        uint64_t k;

        if (!rd_be(r, 2, &k) || k > max || !rd_bytes(r, k, ret))
                return false;
        *ret_size = k;
        return true;
}

#define BAD(why)                                                                                              \
        ({                                                                                                    \
                if (ret_why)                                                                                  \
                        *ret_why = (why);                                                                     \
                -EBADMSG;                                                                                     \
        })

int evc_tpms_attest_parse(const uint8_t *p, size_t n, EvcQuoteInfo *ret, const char **ret_why) {
        EvcQuoteInfo q = {};
        Reader r = { .p = p, .n = n };
        uint64_t v, count;

        if (!p || n == 0)
                return BAD("empty attestation data");
        if (!rd_be(&r, 4, &v))
                return BAD("truncated magic");
        q.magic = (uint32_t) v;
        if (q.magic != EVC_TPM_GENERATED_VALUE)
                return BAD("magic is not TPM_GENERATED_VALUE");
        if (!rd_be(&r, 2, &v))
                return BAD("truncated type");
        q.type = (uint16_t) v;
        if (q.type != EVC_TPM_ST_ATTEST_QUOTE)
                return BAD("type is not TPM_ST_ATTEST_QUOTE");
        if (!rd_tpm2b(&r, 2 + 64, &q.signer, &q.signer_size))
                return BAD("bad qualifiedSigner");
        if (!rd_tpm2b(&r, 64, &q.extra_data, &q.extra_data_size))
                return BAD("bad extraData");
        if (!rd_be(&r, 8, &q.clock))
                return BAD("truncated clockInfo");
        if (!rd_be(&r, 4, &v))
                return BAD("truncated clockInfo");
        q.reset_count = (uint32_t) v;
        if (!rd_be(&r, 4, &v))
                return BAD("truncated clockInfo");
        q.restart_count = (uint32_t) v;
        if (!rd_be(&r, 1, &v) || v > 1)
                return BAD("bad clockInfo.safe");
        q.safe = (uint8_t) v;
        if (!rd_be(&r, 8, &q.firmware_version))
                return BAD("truncated firmwareVersion");
        if (!rd_be(&r, 4, &count))
                return BAD("truncated TPML_PCR_SELECTION");
        if (count == 0 || count > EVC_PCR_SELECTIONS_MAX)
                return BAD("bad TPML_PCR_SELECTION count");
        q.n_selections = count;
        for (size_t i = 0; i < count; i++) {
                const uint8_t *sel;
                uint64_t hash, size;

                if (!rd_be(&r, 2, &hash) || !rd_be(&r, 1, &size))
                        return BAD("truncated TPMS_PCR_SELECTION");
                if (size < 3 || size > 4)
                        return BAD("bad sizeofSelect");
                if (!rd_bytes(&r, size, &sel))
                        return BAD("truncated pcrSelect");
                q.selections[i].hash = (uint16_t) hash;
                for (size_t b = 0; b < size; b++)
                        if (b < 3)
                                q.selections[i].mask |= (uint32_t) sel[b] << (8 * b);
                        else if (sel[b] != 0)
                                return BAD("selection beyond PCR 23");
        }
        if (!rd_tpm2b(&r, 64, &q.pcr_digest, &q.pcr_digest_size))
                return BAD("bad pcrDigest");
        if (r.n != 0)
                return BAD("trailing bytes after TPMS_ATTEST");
        *ret = q;
        return 0;
}

uint32_t evc_quote_pcr_mask(const EvcQuoteInfo *q) {
        uint32_t m = 0;

        for (size_t i = 0; i < q->n_selections; i++)
                if (q->selections[i].hash == EVC_TPM_ALG_SHA256)
                        m |= q->selections[i].mask;
        return m;
}

int evc_pcr_digest(const EvcQuoteInfo *q, const EvcPcrBank *bank, uint8_t ret[static 32]) {
        struct sha256_ctx c;

        sha256_init(&c);
        for (size_t i = 0; i < q->n_selections; i++) {
                if (q->selections[i].hash != EVC_TPM_ALG_SHA256)
                        return -EOPNOTSUPP;
                for (unsigned pcr = 0; pcr < EVC_PCR_MAX; pcr++) {
                        if (!(q->selections[i].mask & (1U << pcr)))
                                continue;
                        if (!(bank->present & (1U << pcr)))
                                return -ENOENT;
                        sha256_update(&c, 32, bank->value[pcr]);
                }
        }
        sha256_digest(&c, 32, ret);
        return 0;
}

#define EV_NO_ACTION 0x00000003

static size_t alg_digest_size(uint16_t alg) {
        switch (alg) {
        case EVC_TPM_ALG_SHA1:
                return 20;
        case EVC_TPM_ALG_SHA256:
                return 32;
        case EVC_TPM_ALG_SHA384:
                return 48;
        case EVC_TPM_ALG_SHA512:
                return 64;
        default:
                return 0;
        }
}

int evc_eventlog_replay(const uint8_t *p, size_t n, EvcPcrBank *ret, const char **ret_why) {
        struct {
                uint16_t alg;
                uint16_t size;
        } algs[8];
        EvcPcrBank bank = {};
        Reader r = { .p = p, .n = n };
        uint64_t pcr, type, size, nalg;
        const uint8_t *ev;
        size_t n_algs;

        /* The first event is in the SHA-1 format and carries the TCG_EfiSpecIDEvent. */
        if (!rd_le(&r, 4, &pcr) || !rd_le(&r, 4, &type) || !rd_bytes(&r, 20, NULL) || !rd_le(&r, 4, &size) ||
            !rd_bytes(&r, size, &ev))
                return BAD("truncated first event");
        if (type != EV_NO_ACTION || size < 29 || memcmp(ev, "Spec ID Event03", 16) != 0)
                return BAD("not a crypto-agile log (no Spec ID Event03)");
        {
                Reader s = { .p = ev + 24, .n = size - 24 };
                if (!rd_le(&s, 4, &nalg) || nalg == 0 || nalg > ELEMENTSOF(algs))
                        return BAD("bad algorithm count in Spec ID event");
                n_algs = nalg;
                for (size_t i = 0; i < n_algs; i++) {
                        uint64_t a, ds;
                        if (!rd_le(&s, 2, &a) || !rd_le(&s, 2, &ds) || ds == 0 || ds > 64)
                                return BAD("bad algorithm in Spec ID event");
                        algs[i].alg = (uint16_t) a;
                        algs[i].size = (uint16_t) ds;
                }
        }

        while (r.n > 0) {
                const uint8_t *sha256 = NULL;
                uint64_t count;

                if (!rd_le(&r, 4, &pcr) || !rd_le(&r, 4, &type) || !rd_le(&r, 4, &count))
                        return BAD("truncated event header");
                if (count == 0 || count > ELEMENTSOF(algs))
                        return BAD("bad digest count");
                for (size_t i = 0; i < count; i++) {
                        uint64_t alg;
                        size_t ds = 0;
                        const uint8_t *d;

                        if (!rd_le(&r, 2, &alg))
                                return BAD("truncated digest");
                        for (size_t j = 0; j < n_algs; j++)
                                if (algs[j].alg == alg)
                                        ds = algs[j].size;
                        if (ds == 0)
                                ds = alg_digest_size((uint16_t) alg);
                        if (ds == 0)
                                return BAD("digest of an unknown algorithm");
                        if (!rd_bytes(&r, ds, &d))
                                return BAD("truncated digest");
                        if (alg == EVC_TPM_ALG_SHA256 && ds == 32)
                                sha256 = d;
                }
                if (!rd_le(&r, 4, &size) || !rd_bytes(&r, size, &ev))
                        return BAD("truncated event data");
                if (pcr >= EVC_PCR_MAX)
                        return BAD("event for a PCR beyond 23");
                if (type == EV_NO_ACTION) {
                        /* StartupLocality: PCR 0 starts at the locality instead of zero. */
                        if (pcr == 0 && size == 17 && memcmp(ev, "StartupLocality", 16) == 0 &&
                            !(bank.present & 1U)) {
                                memset(bank.value[0], 0, 32);
                                bank.value[0][31] = ev[16];
                        }
                        continue;
                }
                if (!sha256)
                        return BAD("event without a SHA-256 digest");
                {
                        struct sha256_ctx c;
                        sha256_init(&c);
                        sha256_update(&c, 32, bank.value[pcr]);
                        sha256_update(&c, 32, sha256);
                        sha256_digest(&c, 32, bank.value[pcr]);
                }
                bank.present |= 1U << pcr;
        }
        *ret = bank;
        return 0;
}

int evc_gunzip(const uint8_t *p, size_t n, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        z_stream z = {};
        size_t cap = 64 * 1024;
        int k;

        if (n == 0 || n > UINT32_MAX)
                return -EBADMSG;
        out = malloc(cap);
        if (!out)
                return -ENOMEM;
        if (inflateInit2(&z, 15 + 16) != Z_OK)
                return -ENOMEM;
        z.next_in = (Bytef *) p;
        z.avail_in = (uInt) n;
        for (;;) {
                if (z.total_out == cap) {
                        uint8_t *b;
                        if (cap >= max) {
                                inflateEnd(&z);
                                return -EFBIG;
                        }
                        cap = MIN(cap * 2, max);
                        b = realloc(out, cap);
                        if (!b) {
                                inflateEnd(&z);
                                return -ENOMEM;
                        }
                        out = b;
                }
                z.next_out = out + z.total_out;
                z.avail_out = (uInt) (cap - z.total_out);
                k = inflate(&z, Z_NO_FLUSH);
                if (k == Z_STREAM_END)
                        break;
                if (k != Z_OK && !(k == Z_BUF_ERROR && z.avail_out == 0)) {
                        inflateEnd(&z);
                        return -EBADMSG;
                }
        }
        *ret_size = z.total_out;
        inflateEnd(&z);
        *ret = TAKE_PTR(out);
        return 0;
}
