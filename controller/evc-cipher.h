/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-cipher.h: cipher blocks for config secrets, encrypted to a device's ECDH certificate (facts §2.6): K =
 * SHA-256(X‖Y) of ECDH(controller ECDH key, device ECDH public key), AES-256-CFB128 with a fresh random 16-byte
 * IV per block, clearTextSha256 over the plaintext. */
#pragma once

#include "evecommon.pb-c.h"
#include "evc-crypto.h"

/* Fills a CipherBlock (members allocated with malloc: free with evc_cipher_block_done). */
int evc_cipher_block_encrypt(const uint8_t key[static 32], const char *context_id, const void *plain, size_t n,
                Org__Lfedge__Eve__Common__CipherBlock *ret);
void evc_cipher_block_done(Org__Lfedge__Eve__Common__CipherBlock *b);
/* Decrypts and checks clearTextSha256 (-EBADMSG on mismatch or malformed block); output in secret memory. */
int evc_cipher_block_decrypt(const uint8_t key[static 32], const Org__Lfedge__Eve__Common__CipherBlock *b,
                uint8_t **ret, size_t *ret_size);
