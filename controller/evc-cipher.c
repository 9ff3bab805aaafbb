/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-cipher.h"
#include "memory-util.h"

int evc_cipher_block_encrypt(const uint8_t key[static 32], const char *context_id, const void *plain, size_t n,
                Org__Lfedge__Eve__Common__CipherBlock *ret) {

        Org__Lfedge__Eve__Common__CipherBlock b = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        _cleanup_free_ uint8_t *iv = NULL, *data = NULL, *sha = NULL;
        _cleanup_free_ char *id = NULL;
        int r;

        iv = malloc(16);
        data = malloc(n ?: 1);
        sha = malloc(EVC_SHA256_SIZE);
        id = strdup(context_id);
        if (!iv || !data || !sha || !id)
                return -ENOMEM;
        r = evc_random(iv, 16);
        if (r < 0)
                return r;
        memcpy(data, plain, n);
        evc_sha256(plain, n, sha);
        evc_aes256_cfb_encrypt(key, iv, data, n);

        b.ciphercontextid = TAKE_PTR(id);
        b.initialvalue = (ProtobufCBinaryData) { .len = 16, .data = TAKE_PTR(iv) };
        b.cipherdata = (ProtobufCBinaryData) { .len = n, .data = TAKE_PTR(data) };
        b.cleartextsha256 = (ProtobufCBinaryData) { .len = EVC_SHA256_SIZE, .data = TAKE_PTR(sha) };
        *ret = b;
        return 0;
}

void evc_cipher_block_done(Org__Lfedge__Eve__Common__CipherBlock *b) {
        if (!b)
                return;
        free(b->ciphercontextid);
        free(b->initialvalue.data);
        free(b->cipherdata.data);
        free(b->cleartextsha256.data);
        *b = (Org__Lfedge__Eve__Common__CipherBlock) ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
}

int evc_cipher_block_decrypt(const uint8_t key[static 32], const Org__Lfedge__Eve__Common__CipherBlock *b,
                uint8_t **ret, size_t *ret_size) {

        uint8_t sha[EVC_SHA256_SIZE];
        uint8_t *p;

        if (b->initialvalue.len != 16 || b->cipherdata.len == 0 || b->cleartextsha256.len != EVC_SHA256_SIZE)
                return -EBADMSG;
        p = eve_secret_alloc(b->cipherdata.len + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, b->cipherdata.data, b->cipherdata.len);
        evc_aes256_cfb_decrypt(key, b->initialvalue.data, p, b->cipherdata.len);
        evc_sha256(p, b->cipherdata.len, sha);
        if (!memeq_secure(sha, b->cleartextsha256.data, EVC_SHA256_SIZE)) {
                eve_secret_free(p);
                return -EBADMSG;
        }
        *ret = p;
        *ret_size = b->cipherdata.len;
        return 0;
}
