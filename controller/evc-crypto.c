/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <nettle/aes.h>
#include <nettle/cfb.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/gcm.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <time.h>

#include "evc-crypto.h"
#include "log.h"
#include "memory-util.h"

#define FILE_MAX (1024 * 1024)

void evc_sha256(const void *p, size_t n, uint8_t ret[static EVC_SHA256_SIZE]) {
        struct sha256_ctx c;

        sha256_init(&c);
        sha256_update(&c, n, p);
        sha256_digest(&c, EVC_SHA256_SIZE, ret);
}

int evc_random(void *p, size_t n) {
        if (gnutls_rnd(GNUTLS_RND_KEY, p, n) < 0)
                return -EIO;
        return 0;
}

static int gnutls_to_errno(int g) {
        switch (g) {
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_PK_SIG_VERIFY_FAILED:
                return -EBADMSG;
        default:
                return -EINVAL;
        }
}

int evc_read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size > FILE_MAX)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

int evc_write_file(const char *path, const void *p, size_t n, mode_t mode) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        const uint8_t *b = p;

        if (asprintf(&tmp, "%s.tmp%u", path, (unsigned) getpid()) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        while (n > 0) {
                ssize_t k = write(fd, b, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        (void) unlink(tmp);
                        return -errno;
                }
                b += k;
                n -= (size_t) k;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

int evc_generate_cert(EvcCertKind kind, const char *cn, gnutls_x509_crt_t issuer_crt,
                gnutls_x509_privkey_t issuer_key, const char *cert_path, const char *key_path,
                gnutls_x509_crt_t *ret_crt, gnutls_x509_privkey_t *ret_key) {

        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t key = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_datum_ gnutls_datum_t cpem = {}, kpem = {};
        uint8_t serial[16], kid[64];
        size_t kid_size = sizeof kid;
        time_t now = time(NULL);
        int g, r;

        if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0)
                return -ENOMEM;
        g = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
        if (g < 0)
                return log_error_errno(EIO, "Failed to generate key: %s", gnutls_strerror(g));
        r = evc_random(serial, sizeof serial);
        if (r < 0)
                return r;
        serial[0] &= 0x7f;
        serial[0] |= 0x01;

        if ((g = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
            (g = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
            (g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "eve-trust evc", 13)) < 0 ||
            (g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn))) < 0 ||
            (g = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
            (g = gnutls_x509_crt_set_expiration_time(crt, now + 20 * 365 * 86400L)) < 0 ||
            (g = gnutls_x509_crt_set_key(crt, key)) < 0 ||
            (g = gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_size)) < 0 ||
            (g = gnutls_x509_crt_set_subject_key_id(crt, kid, kid_size)) < 0)
                goto fail;

        switch (kind) {
        case EVC_CERT_ROOT:
                if ((g = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0 ||
                    (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN)) < 0)
                        goto fail;
                break;
        case EVC_CERT_SIGNING:
                if ((g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
                    (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0)
                        goto fail;
                break;
        case EVC_CERT_ECDH:
                if ((g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
                    (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_AGREEMENT)) < 0)
                        goto fail;
                break;
        case EVC_CERT_TLS: {
                struct in_addr lo = { .s_addr = htonl(INADDR_LOOPBACK) };
                if ((g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
                    (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
                    (g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
                    (g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                              GNUTLS_FSAN_APPEND)) < 0 ||
                    (g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, &lo, 4,
                                                              GNUTLS_FSAN_APPEND)) < 0)
                        goto fail;
                break;
        }
        }

        if (issuer_crt) {
                uint8_t akid[64];
                size_t akid_size = sizeof akid;
                unsigned critical;

                if ((g = gnutls_x509_crt_get_subject_key_id(issuer_crt, akid, &akid_size, &critical)) < 0 ||
                    (g = gnutls_x509_crt_set_authority_key_id(crt, akid, akid_size)) < 0 ||
                    (g = gnutls_x509_crt_sign2(crt, issuer_crt, issuer_key, GNUTLS_DIG_SHA256, 0)) < 0)
                        goto fail;
        } else if ((g = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
                goto fail;

        if ((g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem)) < 0 ||
            (g = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kpem)) < 0)
                goto fail;
        if (key_path) {
                r = evc_write_file(key_path, kpem.data, kpem.size, 0600);
                if (r < 0) {
                        erase(kpem.data, kpem.size);
                        return log_error_errno(r, "Failed to write %s: %m", key_path);
                }
        }
        erase(kpem.data, kpem.size);
        if (cert_path) {
                r = evc_write_file(cert_path, cpem.data, cpem.size, 0644);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", cert_path);
        }

        if (ret_crt)
                *ret_crt = TAKE_PTR(crt);
        if (ret_key)
                *ret_key = TAKE_PTR(key);
        return 0;
fail:
        return log_error_errno(EIO, "Failed to build certificate \"%s\": %s", cn, gnutls_strerror(g));
}

int evc_load_crt_pem(const void *pem, size_t n, gnutls_x509_crt_t *ret) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t d = { .data = (unsigned char *) pem, .size = (unsigned) n };
        int g;

        if (n == 0 || n > 64 * 1024)
                return -EINVAL;
        if (gnutls_x509_crt_init(&crt) < 0)
                return -ENOMEM;
        g = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
        if (g < 0)
                return log_debug_errno(EINVAL, "Not a PEM certificate: %s", gnutls_strerror(g));
        *ret = TAKE_PTR(crt);
        return 0;
}

int evc_load_crt_file(const char *path, gnutls_x509_crt_t *ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n;
        int r;

        r = evc_read_file(path, &buf, &n);
        if (r < 0)
                return r;
        return evc_load_crt_pem(buf, n, ret);
}

int evc_load_key_file(const char *path, gnutls_x509_privkey_t *ret) {
        _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t key = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        gnutls_datum_t d;
        size_t n;
        int r, g;

        r = evc_read_file(path, &buf, &n);
        if (r < 0)
                return r;
        if (gnutls_x509_privkey_init(&key) < 0) {
                erase(buf, n);
                return -ENOMEM;
        }
        d = (gnutls_datum_t) { .data = buf, .size = (unsigned) n };
        g = gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM);
        erase(buf, n);
        if (g < 0)
                return log_debug_errno(EINVAL, "Not a PEM private key: %s", gnutls_strerror(g));
        *ret = TAKE_PTR(key);
        return 0;
}

int evc_crt_der(gnutls_x509_crt_t crt, uint8_t **ret, size_t *ret_size) {
        _cleanup_datum_ gnutls_datum_t der = {};
        uint8_t *p;

        if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0)
                return -EINVAL;
        p = malloc(der.size);
        if (!p)
                return -ENOMEM;
        memcpy(p, der.data, der.size);
        *ret = p;
        *ret_size = der.size;
        return 0;
}

int evc_crt_der_sha256(gnutls_x509_crt_t crt, uint8_t ret[static EVC_SHA256_SIZE]) {
        _cleanup_datum_ gnutls_datum_t der = {};

        if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0)
                return -EINVAL;
        evc_sha256(der.data, der.size, ret);
        return 0;
}

static void pad32(const gnutls_datum_t *d, uint8_t out[static 32]) {
        const uint8_t *p = d->data;
        size_t n = d->size;

        while (n > 32 && *p == 0) {
                p++;
                n--;
        }
        memset(out, 0, 32);
        if (n <= 32)
                memcpy(out + 32 - n, p, n);
}

int evc_sign_raw_pk(
                gnutls_privkey_t pk, const void *data, size_t n, uint8_t ret[static EVC_ECDSA_RAW_SIZE]) {
        _cleanup_datum_ gnutls_datum_t sig = {}, r = {}, s = {};
        uint8_t digest[EVC_SHA256_SIZE];
        gnutls_datum_t h = { .data = digest, .size = sizeof digest };
        int g;

        evc_sha256(data, n, digest);
        if ((g = gnutls_privkey_sign_hash(pk, GNUTLS_DIG_SHA256, 0, &h, &sig)) < 0 ||
            (g = gnutls_decode_rs_value(&sig, &r, &s)) < 0)
                return log_error_errno(EIO, "Failed to sign: %s", gnutls_strerror(g));
        if (r.size > 33 || s.size > 33)
                return -EIO;
        pad32(&r, ret);
        pad32(&s, ret + 32);
        return 0;
}

int evc_sign_raw(
                gnutls_x509_privkey_t key,
                const void *data,
                size_t n,
                uint8_t ret[static EVC_ECDSA_RAW_SIZE]) {
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t pk = NULL;

        if (gnutls_privkey_init(&pk) < 0)
                return -ENOMEM;
        if (gnutls_privkey_import_x509(pk, key, 0) < 0)
                return -EINVAL;
        return evc_sign_raw_pk(pk, data, n, ret);
}

int evc_verify_digest_pub(
                gnutls_pubkey_t pub,
                const uint8_t digest[static EVC_SHA256_SIZE],
                const void *sig,
                size_t sig_size) {
        _cleanup_datum_ gnutls_datum_t der = {};
        gnutls_datum_t h = { .data = (unsigned char *) digest, .size = EVC_SHA256_SIZE }, use;
        unsigned bits = 0;
        int g;

        if (!sig || sig_size == 0 || sig_size > 256)
                return -EINVAL;
        if (gnutls_pubkey_get_pk_algorithm(pub, &bits) != GNUTLS_PK_ECDSA)
                return log_debug_errno(EINVAL, "Certificate key is not ECDSA.");
        if (sig_size == EVC_ECDSA_RAW_SIZE) {
                gnutls_datum_t r = { .data = (unsigned char *) sig, .size = 32 },
                               s = { .data = (unsigned char *) sig + 32, .size = 32 };
                if (gnutls_encode_rs_value(&der, &r, &s) < 0)
                        return -ENOMEM;
                use = der;
        } else
                use = (gnutls_datum_t){ .data = (unsigned char *) sig, .size = (unsigned) sig_size };

        g = gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &h, &use);
        if (g < 0)
                return g == GNUTLS_E_PK_SIG_VERIFY_FAILED ? -EBADMSG : gnutls_to_errno(g);
        return 0;
}

int evc_verify_digest(
                gnutls_x509_crt_t crt,
                const uint8_t digest[static EVC_SHA256_SIZE],
                const void *sig,
                size_t sig_size) {

        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;

        if (gnutls_pubkey_init(&pub) < 0)
                return -ENOMEM;
        if (gnutls_pubkey_import_x509(pub, crt, 0) < 0)
                return -EINVAL;
        return evc_verify_digest_pub(pub, digest, sig, sig_size);
}

int evc_verify_chain(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer) {
        unsigned status = 0;
        int g;

        g = gnutls_x509_crt_verify(crt, &issuer, 1, 0, &status);
        if (g < 0)
                return log_debug_errno(EPERM, "Certificate verification failed: %s", gnutls_strerror(g));
        if (status != 0) {
                _cleanup_datum_ gnutls_datum_t why = {};
                (void) gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
                return log_debug_errno(EPERM, "Certificate does not chain: %s", why.data ? (char *) why.data : "?");
        }
        return 0;
}

int evc_ecdh_raw(const uint8_t *k, size_t k_size, const uint8_t *x, size_t x_size, const uint8_t *y, size_t y_size,
                uint8_t ret[static EVC_SHA256_SIZE]) {

        const struct ecc_curve *curve = nettle_get_secp_256r1();
        struct ecc_scalar s;
        struct ecc_point p, q;
        uint8_t xy[64] = {};
        mpz_t zk, zx, zy;
        int r = 0;

        if (k_size > 33 || x_size > 33 || y_size > 33)
                return -EINVAL;
        mpz_inits(zk, zx, zy, NULL);
        ecc_scalar_init(&s, curve);
        ecc_point_init(&p, curve);
        ecc_point_init(&q, curve);
        mpz_import(zk, k_size, 1, 1, 1, 0, k);
        mpz_import(zx, x_size, 1, 1, 1, 0, x);
        mpz_import(zy, y_size, 1, 1, 1, 0, y);
        if (!ecc_scalar_set(&s, zk) || !ecc_point_set(&p, zx, zy)) {
                r = -EINVAL;
                goto finish;
        }
        ecc_point_mul(&q, &s, &p);
        ecc_point_get(&q, zx, zy);
        if (mpz_sizeinbase(zx, 256) > 32 || mpz_sizeinbase(zy, 256) > 32) {
                r = -EINVAL;
                goto finish;
        }
        mpz_export(xy + 32 - (mpz_sizeinbase(zx, 2) + 7) / 8, NULL, 1, 1, 1, 0, zx);
        mpz_export(xy + 64 - (mpz_sizeinbase(zy, 2) + 7) / 8, NULL, 1, 1, 1, 0, zy);
        evc_sha256(xy, sizeof xy, ret);
finish:
        erase(xy, sizeof xy);
        ecc_scalar_clear(&s);
        ecc_point_clear(&p);
        ecc_point_clear(&q);
        mpz_set_ui(zk, 0);
        mpz_clears(zk, zx, zy, NULL);
        return r;
}

int evc_ecdh_key(gnutls_x509_privkey_t key, gnutls_x509_crt_t peer, uint8_t ret[static EVC_SHA256_SIZE]) {
        _cleanup_datum_ gnutls_datum_t x = {}, y = {}, k = {}, px = {}, py = {};
        gnutls_ecc_curve_t c1, c2;
        int r;

        if (gnutls_x509_privkey_export_ecc_raw(key, &c1, &x, &y, &k) < 0 ||
            gnutls_x509_crt_get_pk_ecc_raw(peer, &c2, &px, &py) < 0)
                return -EINVAL;
        if (c1 != GNUTLS_ECC_CURVE_SECP256R1 || c2 != GNUTLS_ECC_CURVE_SECP256R1)
                return -EOPNOTSUPP;
        r = evc_ecdh_raw(k.data, k.size, px.data, px.size, py.data, py.size, ret);
        erase(k.data, k.size);
        return r;
}

void evc_aes256_cfb_encrypt(const uint8_t key[static 32], const uint8_t iv[static 16], uint8_t *p, size_t n) {
        struct aes256_ctx c;
        uint8_t v[AES_BLOCK_SIZE];

        memcpy(v, iv, sizeof v);
        aes256_set_encrypt_key(&c, key);
        cfb_encrypt(&c, (nettle_cipher_func *) aes256_encrypt, AES_BLOCK_SIZE, v, n, p, p);
        erase(&c, sizeof c);
}

void evc_aes256_cfb_decrypt(const uint8_t key[static 32], const uint8_t iv[static 16], uint8_t *p, size_t n) {
        struct aes256_ctx c;
        uint8_t v[AES_BLOCK_SIZE];

        memcpy(v, iv, sizeof v);
        aes256_set_encrypt_key(&c, key);
        cfb_decrypt(&c, (nettle_cipher_func *) aes256_encrypt, AES_BLOCK_SIZE, v, n, p, p);
        erase(&c, sizeof c);
}

#define GCM_NONCE EVC_GCM_NONCE_SIZE

int evc_aead_seal_ad(
                const uint8_t key[static 32],
                const void *ad,
                size_t ad_size,
                const void *plain,
                size_t n,
                uint8_t **ret,
                size_t *ret_size) {
        struct gcm_aes256_ctx c;
        uint8_t *out;
        int r;

        if (n > SIZE_MAX - GCM_NONCE - GCM_DIGEST_SIZE)
                return -EINVAL;
        out = malloc(GCM_NONCE + n + GCM_DIGEST_SIZE);
        if (!out)
                return -ENOMEM;
        r = evc_random(out, GCM_NONCE);
        if (r < 0) {
                free(out);
                return r;
        }
        gcm_aes256_set_key(&c, key);
        gcm_aes256_set_iv(&c, GCM_NONCE, out);
        if (ad_size > 0)
                gcm_aes256_update(&c, ad_size, ad);
        gcm_aes256_encrypt(&c, n, out + GCM_NONCE, plain);
        gcm_aes256_digest(&c, GCM_DIGEST_SIZE, out + GCM_NONCE + n);
        erase(&c, sizeof c);
        *ret = out;
        *ret_size = GCM_NONCE + n + GCM_DIGEST_SIZE;
        return 0;
}

int evc_aead_seal(
                const uint8_t key[static 32], const void *plain, size_t n, uint8_t **ret, size_t *ret_size) {
        return evc_aead_seal_ad(key, NULL, 0, plain, n, ret, ret_size);
}

int evc_aead_open_ad(
                const uint8_t key[static 32],
                const void *ad,
                size_t ad_size,
                const void *sealed,
                size_t n,
                uint8_t **ret,
                size_t *ret_size) {
        struct gcm_aes256_ctx c;
        const uint8_t *in = sealed;
        uint8_t tag[GCM_DIGEST_SIZE];
        uint8_t *out;
        size_t m;

        if (n < GCM_NONCE + GCM_DIGEST_SIZE)
                return -EBADMSG;
        m = n - GCM_NONCE - GCM_DIGEST_SIZE;
        out = eve_secret_alloc(m + 1);
        if (!out)
                return -ENOMEM;
        gcm_aes256_set_key(&c, key);
        gcm_aes256_set_iv(&c, GCM_NONCE, in);
        if (ad_size > 0)
                gcm_aes256_update(&c, ad_size, ad);
        gcm_aes256_decrypt(&c, m, out, in + GCM_NONCE);
        gcm_aes256_digest(&c, GCM_DIGEST_SIZE, tag);
        erase(&c, sizeof c);
        if (!memeq_secure(tag, in + GCM_NONCE + m, GCM_DIGEST_SIZE)) {
                eve_secret_free(out);
                return -EBADMSG;
        }
        out[m] = 0;
        *ret = out;
        *ret_size = m;
        return 0;
}

int evc_aead_open(
                const uint8_t key[static 32],
                const void *sealed,
                size_t n,
                uint8_t **ret,
                size_t *ret_size) {
        return evc_aead_open_ad(key, NULL, 0, sealed, n, ret, ret_size);
}
