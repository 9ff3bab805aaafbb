/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vault-escrow.h"

#include <nettle/aes.h>
#include <nettle/cfb.h>
#include <nettle/gcm.h>
#include <nettle/hkdf.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include <sys/random.h>

#include "memory-util.h"

#define REFUSE(reason)                                                                                        \
        ({                                                                                                    \
                if (ret_reason)                                                                               \
                        *ret_reason = (reason);                                                               \
                -EBADMSG;                                                                                     \
        })

static size_t put_varint(uint8_t *p, uint64_t v) {
        size_t n = 0;

        do {
                p[n] = (uint8_t) (v & 0x7f);
                v >>= 7;
                if (v)
                        p[n] |= 0x80;
                n++;
        } while (v);
        return n;
}

static int get_varint(const uint8_t *p, size_t size, size_t *off, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64; shift += 7) {
                uint8_t b;

                if (*off >= size)
                        return -EBADMSG;
                b = p[(*off)++];
                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

int escrow_data_pack(const EscrowData *d, uint8_t **ret, size_t *ret_size) {
        uint8_t *p;
        size_t n = 0;

        size_t key_size = d->version == 0 ? TPM2_SECRET_SIZE : sizeof(d->encrypted_key);

        p = malloc(2 + 2 + sizeof(d->encrypted_key) + 2 + sizeof(d->digest_sha256) + 1 + 10);
        if (!p)
                return -ENOMEM;
        p[n++] = (1 << 3) | 2;
        n += put_varint(p + n, key_size);
        memcpy(p + n, d->encrypted_key, key_size);
        n += key_size;
        p[n++] = (2 << 3) | 2;
        n += put_varint(p + n, sizeof(d->digest_sha256));
        memcpy(p + n, d->digest_sha256, sizeof(d->digest_sha256));
        n += sizeof(d->digest_sha256);
        if (d->version != 0) {
                p[n++] = (5 << 3) | 0;
                n += put_varint(p + n, d->version);
        }
        *ret = p;
        *ret_size = n;
        return 0;
}

int escrow_data_unpack(const void *blob, size_t size, EscrowData *ret, const char **ret_reason) {
        const uint8_t *p = blob;
        bool have_digest = false;
        EscrowData d = {};
        size_t off = 0, key_size = 0;

        if (!p || size == 0 || size > ESCROW_BLOB_MAX)
                return REFUSE("escrow blob empty or larger than 4 KiB");
        while (off < size) {
                uint64_t key, v;

                if (get_varint(p, size, &off, &key) < 0)
                        return REFUSE("escrow blob: truncated field key");
                switch (key & 7) {
                case 0:
                        if (get_varint(p, size, &off, &v) < 0)
                                return REFUSE("escrow blob: truncated varint");
                        if ((key >> 3) == 5) {
                                if (v > UINT32_MAX)
                                        return REFUSE("escrow blob: version out of range");
                                d.version = (uint32_t) v;
                        }
                        break;
                case 2:
                        if (get_varint(p, size, &off, &v) < 0 || v > size - off)
                                return REFUSE("escrow blob: length beyond the end");
                        if ((key >> 3) == 1) {
                                if (v != ESCROW_ENCRYPTED_SIZE && v != TPM2_SECRET_SIZE)
                                        return REFUSE("escrow blob: encrypted_key is not nonce, 32-byte key and tag");
                                memset(d.encrypted_key, 0, sizeof(d.encrypted_key));
                                memcpy(d.encrypted_key, p + off, v);
                                key_size = v;
                        } else if ((key >> 3) == 2) {
                                if (v != TPM2_SHA256_SIZE)
                                        return REFUSE("escrow blob: digest_sha256 is not 32 bytes");
                                memcpy(d.digest_sha256, p + off, v);
                                have_digest = true;
                        }
                        off += v;
                        break;
                case 1:
                        if (size - off < 8)
                                return REFUSE("escrow blob: truncated fixed64");
                        off += 8;
                        break;
                case 5:
                        if (size - off < 4)
                                return REFUSE("escrow blob: truncated fixed32");
                        off += 4;
                        break;
                default:
                        return REFUSE("escrow blob: invalid wire type");
                }
        }
        if (key_size == 0 || !have_digest)
                return REFUSE("escrow blob: encrypted_key or digest_sha256 missing");
        if (d.version > 1)
                return REFUSE("escrow blob: unknown version");
        if (d.version == 1 && key_size != ESCROW_ENCRYPTED_SIZE)
                return REFUSE("escrow blob: encrypted_key is not nonce, 32-byte key and tag");
        if (d.version == 0 && key_size != TPM2_SECRET_SIZE)
                return REFUSE("escrow blob: legacy (AES-CFB, no version) format needs a 32-byte "
                              "encrypted_key");
        *ret = d;
        return 0;
}

static void sha256_digest_buffer(size_t n, const uint8_t *p, uint8_t ret[static SHA256_DIGEST_SIZE]) {
        struct sha256_ctx ctx;

        sha256_init(&ctx);
        sha256_update(&ctx, n, p);
        sha256_digest(&ctx, SHA256_DIGEST_SIZE, ret);
}

static void escrow_kdf(const uint8_t zx[static TPM2_ECC_P256_SIZE], uint8_t ret[static ESCROW_KEY_SIZE]) {
        static const uint8_t salt[SHA256_DIGEST_SIZE] = {};
        struct hmac_sha256_ctx ctx;
        uint8_t prk[SHA256_DIGEST_SIZE];
        CLEANUP_ERASE(ctx);
        CLEANUP_ERASE(prk);

        hmac_sha256_set_key(&ctx, sizeof(salt), salt);
        hkdf_extract(&ctx, (nettle_hash_update_func *) hmac_sha256_update,
                     (nettle_hash_digest_func *) hmac_sha256_digest, SHA256_DIGEST_SIZE, TPM2_ECC_P256_SIZE, zx, prk);
        hmac_sha256_set_key(&ctx, sizeof(prk), prk);
        hkdf_expand(&ctx, (nettle_hash_update_func *) hmac_sha256_update,
                    (nettle_hash_digest_func *) hmac_sha256_digest, SHA256_DIGEST_SIZE, strlen(ESCROW_LABEL),
                    (const uint8_t *) ESCROW_LABEL, ESCROW_KEY_SIZE, ret);
}

int escrow_seal_with(const uint8_t zx[static TPM2_ECC_P256_SIZE], const uint8_t secret[static TPM2_SECRET_SIZE],
                uint8_t **ret, size_t *ret_size) {

        struct gcm_aes256_ctx gcm;
        uint8_t key[ESCROW_KEY_SIZE];
        EscrowData d = { .version = 1 };
        CLEANUP_ERASE(gcm);
        CLEANUP_ERASE(key);

        if (getrandom(d.encrypted_key, ESCROW_NONCE_SIZE, 0) != (ssize_t) ESCROW_NONCE_SIZE)
                return -EIO;
        escrow_kdf(zx, key);
        gcm_aes256_set_key(&gcm, key);
        gcm_aes256_set_iv(&gcm, ESCROW_NONCE_SIZE, d.encrypted_key);
        gcm_aes256_update(&gcm, strlen(ESCROW_LABEL), (const uint8_t *) ESCROW_LABEL);
        gcm_aes256_encrypt(&gcm, TPM2_SECRET_SIZE, d.encrypted_key + ESCROW_NONCE_SIZE, secret);
        gcm_aes256_digest(&gcm, ESCROW_TAG_SIZE, d.encrypted_key + ESCROW_NONCE_SIZE + TPM2_SECRET_SIZE);
        sha256_digest_buffer(TPM2_SECRET_SIZE, secret, d.digest_sha256);
        return escrow_data_pack(&d, ret, ret_size);
}

int escrow_open_with(const uint8_t zx[static TPM2_ECC_P256_SIZE], const void *blob, size_t size,
                uint8_t **ret_secret, const char **ret_reason) {

        _cleanup_secret_ uint8_t *secret = NULL;
        struct gcm_aes256_ctx gcm;
        uint8_t key[ESCROW_KEY_SIZE], tag[ESCROW_TAG_SIZE], digest[SHA256_DIGEST_SIZE];
        EscrowData d;
        int r;
        CLEANUP_ERASE(gcm);
        CLEANUP_ERASE(key);

        r = escrow_data_unpack(blob, size, &d, ret_reason);
        if (r < 0)
                return r;
        if (d.version != 1) {
                if (ret_reason)
                        *ret_reason = "escrow blob: legacy format needs the whole ECDH point";
                return -EBADMSG;
        }
        secret = eve_secret_alloc(TPM2_SECRET_SIZE);
        if (!secret)
                return -ENOMEM;
        escrow_kdf(zx, key);
        gcm_aes256_set_key(&gcm, key);
        gcm_aes256_set_iv(&gcm, ESCROW_NONCE_SIZE, d.encrypted_key);
        gcm_aes256_update(&gcm, strlen(ESCROW_LABEL), (const uint8_t *) ESCROW_LABEL);
        gcm_aes256_decrypt(&gcm, TPM2_SECRET_SIZE, secret, d.encrypted_key + ESCROW_NONCE_SIZE);
        gcm_aes256_digest(&gcm, ESCROW_TAG_SIZE, tag);
        if (!memeq_secure(tag, d.encrypted_key + ESCROW_NONCE_SIZE + TPM2_SECRET_SIZE, ESCROW_TAG_SIZE)) {
                if (ret_reason)
                        *ret_reason = "escrow blob does not authenticate under this TPM's escrow key "
                                      "(made by another TPM, or altered)";
                return -EKEYREJECTED;
        }
        sha256_digest_buffer(TPM2_SECRET_SIZE, secret, digest);
        if (!memeq_secure(digest, d.digest_sha256, sizeof(digest))) {
                if (ret_reason)
                        *ret_reason = "escrow blob: digest_sha256 does not match the unwrapped key";
                return -EBADMSG;
        }
        *ret_secret = TAKE_PTR(secret);
        return 0;
}

/* EVE's wrap, read only: AES-256-CFB128 under SHA-256(X ‖ Y) with a zero IV. No tag: the digest is the
 * check. */
static int escrow_open_legacy(
                const uint8_t point[static 2 * TPM2_ECC_P256_SIZE],
                const EscrowData *d,
                uint8_t **ret_secret,
                const char **ret_reason) {

        _cleanup_secret_ uint8_t *secret = NULL;
        struct aes256_ctx aes;
        uint8_t key[SHA256_DIGEST_SIZE], iv[AES_BLOCK_SIZE] = {}, digest[SHA256_DIGEST_SIZE];
        CLEANUP_ERASE(aes);
        CLEANUP_ERASE(key);

        secret = eve_secret_alloc(TPM2_SECRET_SIZE);
        if (!secret)
                return -ENOMEM;
        sha256_digest_buffer(2 * TPM2_ECC_P256_SIZE, point, key);
        aes256_set_encrypt_key(&aes, key);
        cfb_decrypt(&aes,
                    (nettle_cipher_func *) aes256_encrypt,
                    AES_BLOCK_SIZE,
                    iv,
                    TPM2_SECRET_SIZE,
                    secret,
                    d->encrypted_key);
        sha256_digest_buffer(TPM2_SECRET_SIZE, secret, digest);
        if (!memeq_secure(digest, d->digest_sha256, sizeof(digest))) {
                if (ret_reason)
                        *ret_reason = "legacy escrow blob does not decrypt to its digest under this TPM's "
                                      "key "
                                      "(made by another TPM, or altered)";
                return -EKEYREJECTED;
        }
        *ret_secret = TAKE_PTR(secret);
        return 0;
}

int escrow_open_point(
                const uint8_t point[static 2 * TPM2_ECC_P256_SIZE],
                const void *blob,
                size_t size,
                uint8_t **ret_secret,
                const char **ret_reason) {

        EscrowData d;
        int r;

        r = escrow_data_unpack(blob, size, &d, ret_reason);
        if (r < 0)
                return r;
        if (d.version == 0)
                return escrow_open_legacy(point, &d, ret_secret, ret_reason);
        return escrow_open_with(point, blob, size, ret_secret, ret_reason);
}

static int escrow_point(Tpm2Context *c, uint8_t **ret_point) {
        Tpm2EccPoint device;
        int r;

        r = tpm2_key_ensure(c, TPM2_KEY_DEVICE, /* create= */ false, &device);
        if (r < 0)
                return r;
        r = tpm2_key_ensure(c, TPM2_KEY_ECDH, /* create= */ false, NULL);
        if (r < 0)
                return r;
        return tpm2_ecdh_zgen(c, &device, ret_point);
}

static int escrow_zx(Tpm2Context *c, uint8_t zx[static TPM2_ECC_P256_SIZE]) {
        _cleanup_secret_ uint8_t *point = NULL;
        int r;

        r = escrow_point(c, &point);
        if (r < 0)
                return r;
        memcpy(zx, point, TPM2_ECC_P256_SIZE);
        return 0;
}

int escrow_wrap(Tpm2Context *c, const uint8_t secret[static TPM2_SECRET_SIZE], uint8_t **ret, size_t *ret_size) {
        uint8_t zx[TPM2_ECC_P256_SIZE];
        int r;
        CLEANUP_ERASE(zx);

        r = escrow_zx(c, zx);
        if (r < 0)
                return r;
        return escrow_seal_with(zx, secret, ret, ret_size);
}

int escrow_unwrap(Tpm2Context *c, const void *blob, size_t size, uint8_t **ret_secret, const char **ret_reason) {
        _cleanup_secret_ uint8_t *point = NULL;
        EscrowData d;
        int r;

        /* Refuse malformed input before asking the TPM anything. */
        r = escrow_data_unpack(blob, size, &d, ret_reason);
        if (r < 0)
                return r;
        r = escrow_point(c, &point);
        if (r < 0) {
                if (ret_reason)
                        *ret_reason = "this TPM has no device or ECDH key (eve-tpm-setup has not run)";
                return r;
        }
        return escrow_open_point(point, blob, size, ret_secret, ret_reason);
}
