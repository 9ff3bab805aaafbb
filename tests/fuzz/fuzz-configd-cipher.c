/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: eve-configd's cipher blocks and what comes out of them (configd-cipher.c, configd-config.c).
 * The first byte picks the path, the rest is the input:
 *   0  a ConfigResponse as the controller sends it: config_parse (secrets found, superseded cleartext
 *      wiped), then every secret's block through cipher_block_decrypt (context lookup, scheme, device
 *      certificate hash, controller certificate lookup in an empty certificate directory) and its cleartext
 *      through secret_values_from. Nothing may decrypt: there is no controller certificate.
 *   1  a CipherBlock: shape check and AES-256-CFB open with a fixed shared point; the fuzzer cannot make a
 *      block whose plaintext hashes to its clearTextSha256, so the open must fail with a reason.
 *   2  a plaintext: encrypted here to a well-formed block under the fixed point, opened again (it must give
 *      the same bytes back), then unpacked as an EncryptionBlock in secret memory and read as each kind's
 *      secret: the path a real secret takes after the key agreement. */
#include <nettle/aes.h>
#include <nettle/cfb.h>
#include <nettle/sha2.h>
#include <stdlib.h>

#include "configd-cipher.h"
#include "configd-config.h"
#include "log.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t point[2 * TPM2_ECC_P256_SIZE] = { 0x5a, 0x01, 0x02, 0x03 };

static void setup(void) {
        static bool done = false;
        char dir[] = "/tmp/fuzz-configd-cipher-XXXXXX";

        if (done)
                return;
        /* An empty certificate and config directory: no controller certificate is ever found. */
        if (!mkdtemp(dir) || setenv("EVE_CERTS_DIR", dir, 1) < 0 || setenv("EVE_CONFIG_DIR", dir, 1) < 0)
                abort();
        log_set_max_level(LOG_CRIT);
        done = true;
}

static void check_values(const Secret *s, const EncryptionBlock *eb) {
        SecretValues v;
        int r = secret_values_from(s, eb, &v);

        if (r == -ENODATA)
                return;
        if (r < 0)
                abort();
        if (v.n == 0 || v.n > SECRET_FIELDS_MAX)
                abort();
        for (size_t i = 0; i < v.n; i++)
                if (isempty(v.value[i]) || secret_values_get(&v, v.field[i]) != v.value[i])
                        abort();
        secret_values_done(&v);
}

static void fuzz_config(const uint8_t *data, size_t size) {
        _cleanup_(config_freep) Config *c = NULL;
        CipherKey key = { .tcti = (char *) "none" };
        const EdgeDevConfig *dc;

        memset(key.device_cert_hash, 0x11, sizeof key.device_cert_hash);
        if (config_parse(data, size, &c) < 0)
                return;
        dc = c->response->config;
        for (size_t i = 0; i < c->n_secrets; i++) {
                const Secret *s = &c->secrets[i];
                EncryptionBlock *eb = NULL;
                CipherFailure f = _CIPHER_FAILURE_INVALID;

                if (!s->name || config_find_secret(c, s->name) != s)
                        abort();
                if (!s->block) {
                        check_values(s, NULL);
                        continue;
                }
                if (cipher_block_decrypt(
                                    &key,
                                    dc ? dc->ciphercontexts : NULL,
                                    dc ? dc->n_ciphercontexts : 0,
                                    s->block,
                                    &eb,
                                    &f) >= 0)
                        abort(); /* no controller certificate: nothing can decrypt */
                if (!cipher_failure_to_string(f) || !cipher_failure_to_bus_error(f))
                        abort();
        }
}

static void fuzz_block(const uint8_t *data, size_t size) {
        _cleanup_(proto_freep) CipherBlock *b = NULL;
        uint8_t *plain = NULL;
        size_t n;
        CipherFailure f = _CIPHER_FAILURE_INVALID;

        if (PROTO_UNPACK(&org__lfedge__eve__common__cipher_block__descriptor,
                         data,
                         size,
                         2 * CIPHER_DATA_MAX,
                         &b) < 0)
                return;
        if (cipher_block_open_with_point(point, b, &plain, &n, &f) >= 0)
                abort();
        if (plain || !cipher_failure_to_string(f))
                abort();
}

static void fuzz_plaintext(const uint8_t *data, size_t size) {
        static const Secret kinds[] = { { .kind = SECRET_KIND_WIFI },
                                        { .kind = SECRET_KIND_DATASTORE },
                                        { .kind = SECRET_KIND_CLOUDINIT } };
        uint8_t k[SHA256_DIGEST_SIZE], iv[CIPHER_IV_SIZE] = { 0x17 }, hash[SHA256_DIGEST_SIZE];
        _cleanup_(proto_secret_freep) EncryptionBlock *eb = NULL;
        _cleanup_free_ uint8_t *ct = NULL;
        struct CFB_CTX(struct aes256_ctx, AES_BLOCK_SIZE) ctx;
        struct sha256_ctx h;
        CipherBlock b = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        uint8_t *plain = NULL;
        size_t n;
        CipherFailure f;
        int r;

        if (size == 0 || size > CIPHER_DATA_MAX)
                return;
        sha256_init(&h);
        sha256_update(&h, sizeof point, point);
        sha256_digest(&h, sizeof k, k);
        ct = malloc(size);
        if (!ct)
                abort();
        aes256_set_encrypt_key(&ctx.ctx, k);
        CFB_SET_IV(&ctx, iv);
        CFB_ENCRYPT(&ctx, aes256_encrypt, size, ct, data);
        sha256_init(&h);
        sha256_update(&h, size, data);
        sha256_digest(&h, sizeof hash, hash);

        b.cipherdata = (ProtobufCBinaryData){ size, ct };
        b.initialvalue = (ProtobufCBinaryData){ sizeof iv, iv };
        b.cleartextsha256 = (ProtobufCBinaryData){ sizeof hash, hash };
        b.ciphercontextid = (char *) "ctx";
        if (cipher_block_open_with_point(point, &b, &plain, &n, &f) < 0)
                abort();
        if (n != size || memcmp(plain, data, size) != 0)
                abort();
        r = PROTO_UNPACK_SECRET(
                        &org__lfedge__eve__common__encryption_block__descriptor,
                        plain,
                        n,
                        CIPHER_DATA_MAX,
                        &eb);
        eve_secret_free(plain);
        if (r < 0) {
                if (r != -EBADMSG && r != -EMSGSIZE)
                        abort();
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                check_values(&kinds[i], eb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > CONFIG_SIZE_MAX)
                return 0;
        setup();
        switch (data[0] % 3) {
        case 0:
                fuzz_config(data + 1, size - 1);
                break;
        case 1:
                fuzz_block(data + 1, size - 1);
                break;
        default:
                fuzz_plaintext(data + 1, size - 1);
        }
        return 0;
}
