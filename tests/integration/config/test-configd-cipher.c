/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* EVE cipher blocks made independently of our code (cipher-vector.py: Debian's python3-cryptography plus
 * textbook P-256 arithmetic, playing the controller) decrypted by eve-configd's code with the device ECDH
 * key in swtpm, as eve-tpm-setup provisioned it; every malformed case gives its own failure. The same vector
 * against a TPM-less node (software ECDH key). */
#include <json-c/json.h>
#include <sys/stat.h>

#include "attest-fixtures.h"
#include "configd-cipher.h"
#include "configd-config.h"
#include "controller-certs.h"
#include "crypto-util.h"
#include "encoding.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"

typedef struct Vector {
        char *dir; /* the script's output */
        json_object *json;
        CipherContext ctx[4];
        CipherContext *ctxp[4];
        uint8_t hashes[4][2][16]; /* device, controller per context */
} Vector;

static char *path_in(const char *dir, const char *name) {
        char *p;
        ASSERT_OK(asprintf(&p, "%s/%s", dir, name));
        return p;
}

static void hex16(const char *hex, uint8_t out[16]) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;

        ASSERT_OK(hex_decode(hex, strlen(hex), false, &b, &n));
        ASSERT_EQ(n, 16);
        memcpy(out, b, 16);
}

static int env_teardown(void *p) {
        unsetenv("EVE_CONFIG_DIR");
        unsetenv("EVE_CERTS_DIR");
        unsetenv("EVE_STATUS_DIR");
        unsetenv("EVE_TPM2_TCTI");
        eve_paths_reset();
        return 0;
}

/* A node tree with its own swtpm and eve-tpm-setup run on it (soft: --no-tpm, software keys). */
static Swtpm *node_setup(bool soft) {
        _cleanup_free_ char *root = test_mkdtemp("node"), *config = NULL, *certs = NULL, *status = NULL,
                            *setup = build_path("services/tpm-setup/eve-tpm-setup"), *out = NULL;
        Swtpm *t = test_swtpm_start(0, NULL);
        int r;

        config = path_in(root, "config");
        certs = path_in(root, "persist/certs");
        status = path_in(root, "persist/status");
        ASSERT_OK(eve_mkdir_p(config, 0755));
        ASSERT_OK(eve_mkdir_p(certs, 0755));
        setenv("EVE_CONFIG_DIR", config, 1);
        setenv("EVE_CERTS_DIR", certs, 1);
        setenv("EVE_STATUS_DIR", status, 1);
        setenv("EVE_TPM2_TCTI", t->tcti, 1);
        eve_paths_reset();
        test_defer(env_teardown, NULL);
        char *argv[] = { setup, soft ? (char *) "--no-tpm" : NULL, NULL };
        r = test_run(argv, &out);
        if (r != 0)
                test_fail(__FILE__, __LINE__, "eve-tpm-setup failed (%d):\n%s", r, out ?: "");
        return t;
}

static void put_controller_cert(const char *pem_path, const char *hex_hash) {
        _cleanup_free_ char *dir = NULL, *pem = read_text_file(pem_path), *name = NULL;

        ASSERT_NOT_NULL(pem);
        dir = path_in(eve_path(EVE_PATH_CERTS), "controller");
        ASSERT_OK(eve_mkdir_p(dir, 0755));
        ASSERT_OK(asprintf(&name, "ecdh-%s.pem", hex_hash));
        write_text(dir, name, pem, 0644);
}

/* Runs cipher-vector.py against this node's device ECDH certificate and installs its root CA and
 * controller certificates where eve-register would. */
static void vector_make(Vector *v) {
        _cleanup_free_ char *script = test_srcpath("tests/integration/config/cipher-vector.py"),
                            *device = path_in(eve_path(EVE_PATH_CERTS), "ecdh.cert.pem"), *out = NULL,
                            *json_path = NULL, *root = NULL, *text = NULL, *ecdh = NULL, *rogue = NULL;
        json_object *contexts;
        int r;

        v->dir = test_mkdtemp("vector");
        char *argv[] = { (char *) "/usr/bin/python3", script, device, v->dir, NULL };
        r = test_run(argv, &out);
        if (r != 0)
                test_fail(__FILE__, __LINE__, "cipher-vector.py failed (%d):\n%s", r, out ?: "");
        json_path = path_in(v->dir, "vector.json");
        text = read_text_file(json_path);
        ASSERT_NOT_NULL(text);
        v->json = json_tokener_parse(text);
        ASSERT_NOT_NULL(v->json);

        free(out);
        out = path_in(v->dir, "root-certificate.pem");
        root = read_text_file(out);
        ASSERT_NOT_NULL(root);
        write_text(eve_path(EVE_PATH_CONFIG), "root-certificate.pem", root, 0644);
        ecdh = path_in(v->dir, "ecdh.pem");
        rogue = path_in(v->dir, "rogue-ecdh.pem");
        put_controller_cert(ecdh, json_str(v->json, "controllerCertHash"));
        put_controller_cert(rogue, json_str(v->json, "rogueCertHash"));

        /* The contexts a config would carry: the good one, and one wrong in each way. */
        ASSERT_TRUE(json_object_object_get_ex(v->json, "contexts", &contexts));
        ASSERT_EQ(json_object_array_length(contexts), 4);
        for (unsigned i = 0; i < 4; i++) {
                json_object *c = json_object_array_get_idx(contexts, i);

                v->ctx[i] = (CipherContext) ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT;
                v->ctx[i].contextid = (char *) json_str(c, "contextId");
                v->ctx[i].hashscheme =
                                ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
                v->ctx[i].keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
                v->ctx[i].encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
                hex16(json_str(c, "deviceCertHash"), v->hashes[i][0]);
                hex16(json_str(c, "controllerCertHash"), v->hashes[i][1]);
                v->ctx[i].devicecerthash = (ProtobufCBinaryData){ 16, v->hashes[i][0] };
                v->ctx[i].controllercerthash = (ProtobufCBinaryData){ 16, v->hashes[i][1] };
                v->ctxp[i] = &v->ctx[i];
        }
}

static void vector_done(Vector *v) {
        json_object_put(v->json);
        free(v->dir);
}

static ProtobufCBinaryData bin(json_object *c, const char *key) {
        const char *hex = json_str(c, key);
        uint8_t *b = NULL;
        size_t n = 0;

        ASSERT_NOT_NULL(hex);
        ASSERT_OK(hex_decode(hex, strlen(hex), false, &b, &n));
        return (ProtobufCBinaryData){ n, b };
}

/* Decrypts every case of the vector and checks the outcome: the exact plaintext fields, or the failure. */
static void check_vector(Vector *v, CipherKey *key) {
        json_object *cases;
        size_t n_ok = 0, n_fail = 0;

        ASSERT_TRUE(json_object_object_get_ex(v->json, "cases", &cases));
        for (size_t i = 0; i < json_object_array_length(cases); i++) {
                json_object *c = json_object_array_get_idx(cases, i), *fields;
                CipherBlock b = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
                _cleanup_(proto_secret_freep) EncryptionBlock *eb = NULL;
                _cleanup_(secret_values_done) SecretValues sv = {};
                CipherFailure f = _CIPHER_FAILURE_INVALID;
                const char *name = json_str(c, "name"), *expect = json_str(c, "expect");
                Secret s = { .name = (char *) name, .kind = secret_kind_from_string(json_str(c, "kind")) };
                int r;

                b.ciphercontextid = (char *) json_str(c, "contextId");
                b.initialvalue = bin(c, "iv");
                b.cipherdata = bin(c, "data");
                b.cleartextsha256 = bin(c, "sha");
                r = cipher_block_decrypt(key, v->ctxp, 4, &b, &eb, &f);
                if (r >= 0)
                        r = secret_values_from(&s, eb, &sv) == -ENODATA
                                        ? (f = CIPHER_FAILURE_EMPTY, -EBADMSG)
                                        : 0;
                log_info("case %s: %s", name, r >= 0 ? "ok" : cipher_failure_to_string(f));
                if (streq(expect, "ok")) {
                        if (r < 0)
                                test_fail(__FILE__,
                                          __LINE__,
                                          "case %s: %s",
                                          name,
                                          cipher_failure_to_string(f));
                        ASSERT_TRUE(json_object_object_get_ex(c, "fields", &fields));
                        ASSERT_EQ(sv.n, (size_t) json_object_object_length(fields));
                        json_object_object_foreach(fields, field, value) {
                                const char *got = secret_values_get(&sv, field);
                                ASSERT_NOT_NULL(got);
                                ASSERT_STREQ(got, json_object_get_string(value));
                        }
                        n_ok++;
                } else {
                        ASSERT_ERROR(r, EBADMSG);
                        if (!streq(cipher_failure_to_string(f), expect))
                                test_fail(__FILE__,
                                          __LINE__,
                                          "case %s: expected %s, got %s",
                                          name,
                                          expect,
                                          cipher_failure_to_string(f));
                        n_fail++;
                }
                free(b.initialvalue.data);
                free(b.cipherdata.data);
                free(b.cleartextsha256.data);
        }
        ASSERT_EQ(n_ok, 3);
        ASSERT_EQ(n_fail, 9);
}

TEST(python_vector_decrypts_with_the_tpm_key) {
        Swtpm *t = node_setup(false);
        _cleanup_(cipher_key_freep) CipherKey *key = NULL;
        Vector v = {};

        vector_make(&v);
        ASSERT_OK(cipher_key_load(t->tcti, &key));
        ASSERT_NULL(key->soft);
        check_vector(&v, key);
        ASSERT_NOT_NULL(key->tpm); /* the TPM did the key agreement */
        cipher_key_close_tpm(key);
        vector_done(&v);
}

TEST(python_vector_decrypts_with_a_software_key) {
        _cleanup_(cipher_key_freep) CipherKey *key = NULL;
        Vector v = {};

        node_setup(true);
        vector_make(&v);
        ASSERT_OK(cipher_key_load(NULL, &key));
        ASSERT_NOT_NULL(key->soft);
        check_vector(&v, key);
        ASSERT_NULL(key->tpm);
        vector_done(&v);
}

static int decrypt_case(CipherKey *key, Vector *v, size_t index, CipherFailure *ret_failure) {
        _cleanup_(proto_secret_freep) EncryptionBlock *eb = NULL;
        CipherBlock b = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        json_object *cases, *c;
        int r;

        ASSERT_TRUE(json_object_object_get_ex(v->json, "cases", &cases));
        c = json_object_array_get_idx(cases, index);
        b.ciphercontextid = (char *) json_str(c, "contextId");
        b.initialvalue = bin(c, "iv");
        b.cipherdata = bin(c, "data");
        b.cleartextsha256 = bin(c, "sha");
        r = cipher_block_decrypt(key, v->ctxp, 4, &b, &eb, ret_failure);
        free(b.initialvalue.data);
        free(b.cipherdata.data);
        free(b.cleartextsha256.data);
        return r;
}

/* A burst of deliveries (every LoadCredential= at boot) costs one TPM command each: the ECDH key handle and
 * the salted session stay open in eve-configd's TPM context; closing the context (idle) flushes the session,
 * so no session slot stays taken. */
TEST(a_burst_of_key_agreements_costs_one_tpm_command_each) {
        Swtpm *t = node_setup(false);
        _cleanup_(cipher_key_freep) CipherKey *key = NULL;
        char *argv[] = {
                (char *) "tpm2_getcap", (char *) "-T", t->tcti, (char *) "handles-loaded-session", NULL
        };
        _cleanup_free_ char *out = NULL;
        json_object *cases;
        size_t ok = SIZE_MAX;
        Vector v = {};

        vector_make(&v);
        ASSERT_TRUE(json_object_object_get_ex(v.json, "cases", &cases));
        for (size_t i = 0; ok == SIZE_MAX && i < json_object_array_length(cases); i++)
                if (streq(json_str(json_object_array_get_idx(cases, i), "expect"), "ok"))
                        ok = i;
        ASSERT_TRUE(ok != SIZE_MAX);
        ASSERT_OK(cipher_key_load(t->tcti, &key));
        for (unsigned i = 0; i < 5; i++) {
                uint64_t n = tpm2_context_commands(key->tpm);
                CipherFailure f;

                ASSERT_OK(decrypt_case(key, &v, ok, &f));
                ASSERT_NOT_NULL(key->tpm);
                /* The first also opens the TPM, reads the SRK and the ECDH key, starts the session. */
                if (i > 0)
                        ASSERT_EQ(tpm2_context_commands(key->tpm) - n, 1U);
        }
        cipher_key_close_tpm(key);
        ASSERT_EQ(test_run(argv, &out), 0);
        ASSERT_NULL(strstr(out, "0x"));
        vector_done(&v);
}

/* A controller certificate whose file no longer matches the hash in its name is refused, not used, also when
 * it had been verified (and remembered) before. */
TEST(tampered_controller_certificate_is_refused) {
        Swtpm *t = node_setup(false);
        _cleanup_(cipher_key_freep) CipherKey *key = NULL;
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_free_ char *dir = NULL, *name = NULL, *path = NULL, *pem = NULL, *rogue = NULL;
        CipherFailure f = _CIPHER_FAILURE_INVALID;
        uint8_t h[16];
        const char *reason = NULL;
        Vector v = {};

        vector_make(&v);
        hex16(json_str(v.json, "controllerCertHash"), h);
        ASSERT_OK(controller_cert_find(CONTROLLER_CERT_ECDH, h, 16, &crt, &reason));
        gnutls_x509_crt_deinit(crt);
        crt = NULL;
        ASSERT_OK(cipher_key_load(t->tcti, &key));
        ASSERT_OK(decrypt_case(key, &v, 0, &f));
        cipher_key_close_tpm(key);

        /* Swap in the rogue certificate under the good certificate's name. */
        dir = path_in(eve_path(EVE_PATH_CERTS), "controller");
        ASSERT_OK(asprintf(&name, "ecdh-%s.pem", json_str(v.json, "controllerCertHash")));
        rogue = path_in(v.dir, "rogue-ecdh.pem");
        pem = read_text_file(rogue);
        usleep(10000); /* a later modification time, whatever the file system's granularity */
        write_text(dir, name, pem, 0644);
        ASSERT_ERROR(controller_cert_find(CONTROLLER_CERT_ECDH, h, 16, &crt, &reason), EBADMSG);
        ASSERT_STREQ(reason, "controller certificate file does not match the hash in its name");

        /* So the good block now fails with bad-certificate, before the TPM is asked anything. */
        ASSERT_ERROR(decrypt_case(key, &v, 0, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_BAD_CERT);
        ASSERT_NULL(key->tpm);

        /* Without a root CA nothing chains. */
        path = path_in(eve_path(EVE_PATH_CONFIG), "root-certificate.pem");
        ASSERT_OK(unlink(path));
        free(pem);
        free(rogue);
        rogue = path_in(v.dir, "ecdh.pem");
        pem = read_text_file(rogue);
        write_text(dir, name, pem, 0644);
        ASSERT_ERROR(controller_cert_find(CONTROLLER_CERT_ECDH, h, 16, &crt, &reason), ENOKEY);
        ASSERT_ERROR(decrypt_case(key, &v, 0, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_BAD_CERT);
        vector_done(&v);
}

/* A context that is not ECDH + AES-256-CFB is its own failure. */
TEST(unsupported_scheme_is_refused) {
        Swtpm *t = node_setup(false);
        _cleanup_(cipher_key_freep) CipherKey *key = NULL;
        CipherBlock b = ORG__LFEDGE__EVE__COMMON__CIPHER_BLOCK__INIT;
        EncryptionBlock *eb = NULL;
        uint8_t iv[16] = {}, sha[32] = {}, data[4] = { 1, 2, 3, 4 };
        CipherFailure f;
        Vector v = {};

        vector_make(&v);
        ASSERT_OK(cipher_key_load(t->tcti, &key));
        v.ctx[0].encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_NONE;
        b.ciphercontextid = (char *) "python-ctx";
        b.initialvalue = (ProtobufCBinaryData){ 16, iv };
        b.cipherdata = (ProtobufCBinaryData){ 4, data };
        b.cleartextsha256 = (ProtobufCBinaryData){ 32, sha };
        ASSERT_ERROR(cipher_block_decrypt(key, v.ctxp, 4, &b, &eb, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_SCHEME);
        v.ctx[0].encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
        v.ctx[0].keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_NONE;
        ASSERT_ERROR(cipher_block_decrypt(key, v.ctxp, 4, &b, &eb, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_SCHEME);
        vector_done(&v);
}

DEFINE_TEST_MAIN
