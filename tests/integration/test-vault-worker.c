/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vault worker against swtpm on image files: create, seal, reopen through the TPM; PCRs moved → locked with
 * the moved PCRs named → escrow blob unwrapped, re-sealed → TPM path works again; an escrow blob on another
 * TPM fails; rotation killed at every journal step still opens with the old or the new key, never more than two
 * keyslots; bad tokens and bad blobs refused with reasons. No device-mapper here: activation must fail into
 * "device-mapper unavailable", never a fake unlock. */
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>

#include "crypto-util.h"
#include "encoding.h"
#include "fixtures.h"
#include "luks2-util.h"
#include "tpm2-util.h"

static char *worker_path(void) {
        char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/services/vaultd/eve-vault-worker", getenv("EVE_TEST_BUILDDIR") ?: "."));
        return p;
}

/* Provisions SRK, device and ECDH keys (what eve-tpm-setup does) and extends PCRs 0 and 7. */
static void provision(Swtpm *t, uint8_t pcr_byte) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint8_t d[TPM2_SHA256_SIZE];

        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_SRK, true, NULL));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, true, NULL));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, NULL));
        memset(d, pcr_byte, sizeof(d));
        ASSERT_OK(tpm2_pcr_extend(c, 0, d));
        ASSERT_OK(tpm2_pcr_extend(c, 7, d));
}

static void extend(Swtpm *t, unsigned pcr, uint8_t byte) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint8_t d[TPM2_SHA256_SIZE];

        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        memset(d, byte, sizeof(d));
        ASSERT_OK(tpm2_pcr_extend(c, pcr, d));
}

/* Runs the worker against swtpm t; returns its JSON result (must parse) and exit status. */
static json_object *worker(Swtpm *t, int *ret_status, const char *op, ...) {
        _cleanup_free_ char *exe = worker_path(), *out = NULL;
        char *argv[16] = { exe, (char *) op };
        size_t n = 2;
        va_list ap;
        json_object *o;
        int status;

        va_start(ap, op);
        for (const char *a; (a = va_arg(ap, const char *)) && n < ELEMENTSOF(argv) - 1;)
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        ASSERT_OK(setenv("EVE_TPM2_TCTI", t->tcti, 1));
        status = test_run(argv, &out);
        ASSERT_GE(status, 0);
        if (ret_status)
                *ret_status = status;
        else if (status != 0)
                test_fail(__FILE__, __LINE__, "worker %s exited with %d: %s", op, status, out ?: "");
        if (status == 128 + SIGKILL)
                return NULL;
        o = json_tokener_parse(out);
        if (!o)
                test_fail(__FILE__, __LINE__, "worker %s printed no JSON: %s", op, out ?: "");
        log_debug("worker %s: %s", op, out);
        return o;
}

static const char *jstr(json_object *o, const char *k) {
        json_object *v;
        return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}
static int64_t jint(json_object *o, const char *k) {
        json_object *v;
        return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}
static bool jbool(json_object *o, const char *k) {
        json_object *v;
        return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}
static void assert_contains(const char *s, const char *part) {
        if (!s || !strstr(s, part))
                test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", s ?: "(null)", part);
}

static char *tmp(const char *name) {
        char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/%s", test_tmpdir(), name));
        return p;
}

static char *save_escrow(json_object *o, const char *name) {
        _cleanup_free_ uint8_t *blob = NULL;
        const char *b = jstr(o, "escrow_blob");
        char *path = tmp(name);
        size_t n;

        ASSERT_NOT_NULL(b);
        ASSERT_OK(base64_decode(b, strlen(b), false, &blob, &n));
        ASSERT_OK(crypto_write_file_atomic(path, blob, n, 0600));
        return path;
}

TEST(create_seal_reopen_and_escrow_rescue) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *img = tmp("v1.img"), *escrow = NULL;
        json_object *o;

        provision(t, 0x11);
        o = worker(t, NULL, "create", "--image", img, "--name", "config", "--size", "33554432", "--pcrs", "0,7",
                   NULL);
        ASSERT_TRUE(jbool(o, "ok"));
        ASSERT_STREQ(jstr(o, "escrow"), "pending");
        ASSERT_EQ(jint(o, "generation"), 1);
        ASSERT_EQ(jint(o, "keyslots"), 1);
        escrow = save_escrow(o, "v1.escrow");
        json_object_put(o);

        /* Refused on a second create. */
        o = worker(t, &(int) { 0 }, "create", "--image", img, "--name", "config", "--pcrs", "0,7", NULL);
        ASSERT_FALSE(jbool(o, "ok"));
        assert_contains(jstr(o, "reason"), "exists");
        json_object_put(o);

        /* Reopen through the TPM; mapping fails into a clear reason on this host, never "activated". */
        o = worker(t, NULL, "unlock", "--image", img, "--map", "eve-vault-config", NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "tpm");
        if (access("/dev/mapper/control", F_OK) < 0) {
                ASSERT_FALSE(jbool(o, "activated"));
                assert_contains(jstr(o, "reason"), "device-mapper unavailable");
        }
        json_object_put(o);

        /* PCR 7 moves: the TPM refuses, the vault stays locked and says which PCR moved. */
        extend(t, 7, 0x99);
        o = worker(t, NULL, "unlock", "--image", img, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "none");
        ASSERT_EQ(json_object_array_length(json_object_object_get(o, "moved_pcrs")), 1);
        ASSERT_EQ(json_object_get_int(json_object_array_get_idx(json_object_object_get(o, "moved_pcrs"), 0)), 7);
        assert_contains(jstr(o, "reason"), "PCRs 7 changed");
        json_object_put(o);

        /* The controller releases the escrow blob: unwrapped in this TPM, re-sealed to today's PCRs. */
        o = worker(t, NULL, "unlock", "--image", img, "--escrow-file", escrow, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "controller");
        ASSERT_EQ(json_object_array_length(json_object_object_get(o, "moved_pcrs")), 0);
        ASSERT_NOT_NULL(jstr(o, "escrow_blob")); /* a fresh escrow for the controller */
        json_object_put(o);

        o = worker(t, NULL, "unlock", "--image", img, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "tpm");
        json_object_put(o);

        /* After a power cycle (PCRs reset to zero) the TPM refuses again: PCRs 0 and 7 moved. */
        t = test_swtpm_restart(t);
        o = worker(t, NULL, "unlock", "--image", img, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "none");
        ASSERT_EQ(json_object_array_length(json_object_object_get(o, "moved_pcrs")), 2);
        json_object_put(o);
}

TEST(escrow_blob_from_another_tpm_fails) {
        Swtpm *a = test_swtpm_start(0, NULL), *b = test_swtpm_start(0, NULL);
        _cleanup_free_ char *img = tmp("v2.img"), *escrow = NULL, *junk = tmp("junk.escrow");
        json_object *o;

        provision(a, 0x11);
        provision(b, 0x11);
        o = worker(a, NULL, "create", "--image", img, "--name", "image", "--pcrs", "0,7", NULL);
        escrow = save_escrow(o, "v2.escrow");
        json_object_put(o);

        /* The disk taken to another machine: neither its TPM nor the escrow blob opens it there. */
        o = worker(b, NULL, "unlock", "--image", img, "--escrow-file", escrow, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "none");
        assert_contains(jstr(o, "reason"), "another TPM");
        json_object_put(o);

        /* A malformed blob is refused with its reason, before the TPM is asked. */
        ASSERT_OK(crypto_write_file_atomic(junk, "\x0a\x05hello", 7, 0600));
        extend(a, 7, 0x42);
        o = worker(a, NULL, "unlock", "--image", img, "--escrow-file", junk, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "none");
        assert_contains(jstr(o, "reason"), "escrow blob refused: escrow blob: encrypted_key");
        json_object_put(o);
}

TEST(bad_tokens_refused) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *img = tmp("v3.img"), *plain = tmp("plain.img"), *json = NULL;
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        json_object *o, *tok;
        int id, status;

        provision(t, 0x11);
        json_object_put(worker(t, NULL, "create", "--image", img, "--name", "x", "--pcrs", "0,7", NULL));

        /* An eve-vault token that names keyslot 40. */
        ASSERT_OK(luks2_open(img, &cd));
        ASSERT_OK(luks2_token_find(cd, LUKS2_TOKEN_EVE, -1, &id, &json));
        tok = json_tokener_parse(json);
        json_object_object_add(tok, "keyslot", json_object_new_int(40));
        ASSERT_OK(luks2_token_write(cd, id, json_object_to_json_string(tok), -1));
        json_object_put(tok);
        cd = (luks2_crypt_freep(&cd), NULL);
        o = worker(t, &status, "unlock", "--image", img, NULL);
        ASSERT_EQ(status, 1);
        ASSERT_FALSE(jbool(o, "ok"));
        assert_contains(jstr(o, "reason"), "eve-vault token refused: keyslot");
        json_object_put(o);

        /* Not LUKS at all. */
        ASSERT_OK(crypto_write_file_atomic(plain, "just a file", 11, 0600));
        o = worker(t, &status, "inspect", "--image", plain, NULL);
        ASSERT_EQ(status, 1);
        assert_contains(jstr(o, "reason"), "cannot open");
        json_object_put(o);

        /* Sealing PCR policy: EVE's rules. */
        o = worker(t, &status, "create", "--image", plain, "--name", "y", "--pcrs", "1,7", NULL);
        assert_contains(jstr(o, "reason"), "PCR 0 is required");
        json_object_put(o);
        o = worker(t, &status, "create", "--image", plain, "--name", "y", "--pcrs", "0,5", NULL);
        assert_contains(jstr(o, "reason"), "PCR 5");
        json_object_put(o);
}

TEST(rotation_survives_a_kill_at_every_step) {
        static const char *const steps[] = { "started", "slot-add", "slot-added", "seal", "sealed", "escrowed",
                                             "removed" };
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *img = tmp("v4.img");
        int64_t generation = 1;
        json_object *o;

        provision(t, 0x11);
        json_object_put(worker(t, NULL, "create", "--image", img, "--name", "rot", "--pcrs", "0,7", NULL));

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                bool forward = i >= 5; /* escrowed, removed: the new key is complete */
                int status;

                ASSERT_OK(setenv("EVE_VAULT_WORKER_CRASH_AT", steps[i], 1));
                o = worker(t, &status, "rotate", "--image", img, NULL);
                ASSERT_OK(unsetenv("EVE_VAULT_WORKER_CRASH_AT"));
                ASSERT_EQ(status, 128 + SIGKILL);
                ASSERT_NULL(o);

                /* Never more than two keyslots, even mid-rotation. */
                o = worker(t, NULL, "inspect", "--image", img, NULL);
                ASSERT_LE(jint(o, "keyslots"), 2);
                json_object_put(o);

                /* Opens with the old or the new key, and the journal is resolved. */
                o = worker(t, NULL, "unlock", "--image", img, NULL);
                ASSERT_STREQ(jstr(o, "key_method"), "tpm");
                ASSERT_STREQ(jstr(o, "rotation"), "none");
                ASSERT_EQ(jint(o, "keyslots"), 1);
                ASSERT_STREQ(jstr(o, "recovered"), i == 0 ? "started" : i <= 2 ? (i == 1 ? "started" : "slot-added")
                                                                        : i <= 4 ? (i == 3 ? "slot-added" : "sealed")
                                                                                 : "escrowed");
                if (forward)
                        generation++;
                ASSERT_EQ(jint(o, "generation"), generation);
                json_object_put(o);
        }

        /* And a rotation that runs through. */
        o = worker(t, NULL, "rotate", "--image", img, NULL);
        ASSERT_EQ(jint(o, "generation"), generation + 1);
        ASSERT_EQ(jint(o, "keyslots"), 1);
        ASSERT_NOT_NULL(jstr(o, "escrow_blob"));
        json_object_put(o);
        o = worker(t, NULL, "unlock", "--image", img, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "tpm");
        json_object_put(o);
}

/* One unlock of several vaults (a boot's, one TPM context): one result line per vault, in order, naming its
 * image; the vault whose PCRs moved stays locked with them named, a broken one says why, the others are
 * opened (key verified); the one with moved PCRs then opens with its escrow as by itself. A batch carries no
 * keys and is only an unlock. */
/* The mappings of a batch are made in child processes, each while the next vault's key is obtained: every
 * result still comes in the order given and carries its own mapping's outcome (here: no device-mapper, so
 * "key verified, volume not mapped"); a mapping process that dies is reported as such, for its vault only.
 */
TEST(batch_mappings_report_their_own_outcome_in_order) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *a = tmp("m-a.img"), *b = tmp("m-b.img"), *c = tmp("m-c.img"),
                            *exe = worker_path(), *b_escrow = NULL;
        char *argv[] = { exe,
                         (char *) "unlock",
                         (char *) "--image",
                         a,
                         (char *) "--map",
                         (char *) "m-a",
                         (char *) "--image",
                         b,
                         (char *) "--map",
                         (char *) "m-b",
                         (char *) "--image",
                         c,
                         (char *) "--map",
                         (char *) "m-c",
                         (char *) "--escrow-always",
                         NULL };
        const char *images[] = { a, b, c };

        provision(t, 0x11);
        json_object_put(worker(t, NULL, "create", "--image", a, "--name", "a", NULL));
        json_object_put(worker(t, NULL, "create", "--image", b, "--name", "b", "--pcrs", "0,15", NULL));
        json_object_put(worker(t, NULL, "create", "--image", c, "--name", "c", NULL));
        ASSERT_OK(setenv("EVE_TPM2_TCTI", t->tcti, 1));

        for (unsigned round = 0; round < 2; round++) {
                _cleanup_free_ char *out = NULL;
                char *line, *save = NULL;
                size_t n = 0;
                int status;

                if (round == 1)
                        ASSERT_OK(setenv("EVE_VAULT_WORKER_CRASH_AT", "activation-child", 1));
                status = test_run(argv, &out);
                ASSERT_OK(unsetenv("EVE_VAULT_WORKER_CRASH_AT"));
                ASSERT_EQ(status, round == 0 ? 0 : 1);
                ASSERT_NOT_NULL(out);
                for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                        json_object *o = json_tokener_parse(line);

                        ASSERT_TRUE(n < ELEMENTSOF(images));
                        ASSERT_NOT_NULL(o);
                        ASSERT_STREQ(jstr(o, "image"), images[n]);
                        ASSERT_STREQ(jstr(o, "key_method"), "tpm");
                        ASSERT_NOT_NULL(jstr(o, "escrow_blob")); /* made while the mapping was under way */
                        ASSERT_FALSE(jbool(o, "activated"));
                        if (round == 0 && images[n] == b)
                                b_escrow = save_escrow(
                                                o, "m-b-escrow.bin"); /* made in the batch's kept session */
                        if (round == 0) {
                                ASSERT_TRUE(jbool(o, "ok"));
                                ASSERT_STREQ(jstr(o, "error"), "DeviceMapperUnavailable");
                                assert_contains(jstr(o, "reason"), "key verified (tpm), volume not mapped");
                        } else {
                                ASSERT_FALSE(jbool(o, "ok"));
                                ASSERT_STREQ(jstr(o, "error"), "Failed");
                                assert_contains(jstr(o, "reason"),
                                                "the activation process ended without a report (signal 9)");
                        }
                        json_object_put(o);
                }
                ASSERT_EQ(n, ELEMENTSOF(images));
        }

        /* The escrow blob the batch made for its second vault opens it once its PCRs moved. */
        extend(t, 15, 0x44);
        {
                json_object *o = worker(t, NULL, "unlock", "--image", b, "--escrow-file", b_escrow, NULL);

                ASSERT_STREQ(jstr(o, "key_method"), "controller");
                json_object_put(o);
        }

        /* One vault by itself: the same path (its mapping beside the escrow wrap). */
        {
                json_object *o = worker(
                                t, NULL, "unlock", "--image", a, "--map", "m-a", "--escrow-always", NULL);

                ASSERT_STREQ(jstr(o, "error"), "DeviceMapperUnavailable");
                ASSERT_NOT_NULL(jstr(o, "escrow_blob"));
                json_object_put(o);
        }
}

TEST(unlock_of_several_vaults_reports_each) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *a = tmp("b-a.img"), *b = tmp("b-b.img"), *c = tmp("b-c.img"),
                            *plain = tmp("b-plain.img"), *escrow = NULL, *exe = worker_path(), *out = NULL;
        char *argv[] = { exe,
                         (char *) "unlock",
                         (char *) "--image",
                         a,
                         (char *) "--image",
                         b,
                         (char *) "--image",
                         plain,
                         (char *) "--image",
                         c,
                         (char *) "--escrow-always",
                         NULL };
        const char *images[] = { a, b, plain, c };
        char *line, *save = NULL;
        size_t n = 0;
        json_object *o;
        int status;

        provision(t, 0x11);
        json_object_put(worker(t, NULL, "create", "--image", a, "--name", "a", "--pcrs", "0,7", NULL));
        o = worker(t, NULL, "create", "--image", b, "--name", "b", "--pcrs", "0,15", NULL);
        escrow = save_escrow(o, "b-escrow.bin");
        json_object_put(o);
        json_object_put(worker(t, NULL, "create", "--image", c, "--name", "c", NULL));
        ASSERT_OK(crypto_write_file_atomic(plain, "just a file", 11, 0600));
        extend(t, 15, 0x33); /* b's PCRs move; a's and c's do not */

        ASSERT_OK(setenv("EVE_TPM2_TCTI", t->tcti, 1));
        status = test_run(argv, &out);
        ASSERT_EQ(status, 1); /* one vault could not be read */
        ASSERT_NOT_NULL(out);
        for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                ASSERT_TRUE(n < ELEMENTSOF(images));
                o = json_tokener_parse(line);
                ASSERT_NOT_NULL(o);
                ASSERT_STREQ(jstr(o, "image"), images[n]);
                if (images[n] == b) {
                        ASSERT_TRUE(jbool(o, "ok")); /* the operation ran; the vault stays locked */
                        ASSERT_STREQ(jstr(o, "key_method"), "none");
                        ASSERT_STREQ(jstr(o, "error"), "KeyUnavailable");
                        assert_contains(jstr(o, "reason"), "PCRs 15 changed");
                } else if (images[n] == plain) {
                        ASSERT_FALSE(jbool(o, "ok"));
                        ASSERT_STREQ(jstr(o, "error"), "BadImage");
                } else {
                        ASSERT_TRUE(jbool(o, "ok"));
                        ASSERT_STREQ(jstr(o, "key_method"), "tpm");
                        ASSERT_NOT_NULL(jstr(o, "escrow_blob")); /* --escrow-always applies to each */
                }
                json_object_put(o);
        }
        ASSERT_EQ(n, ELEMENTSOF(images));

        /* The vault left locked: the usual way out, by itself. */
        o = worker(t, NULL, "unlock", "--image", b, "--escrow-file", escrow, NULL);
        ASSERT_STREQ(jstr(o, "key_method"), "controller");
        json_object_put(o);

        /* Refused before anything is done: keys for a batch, several images for another operation, --mount
         * without its --map, --map twice for one image. */
        {
                char *bad[][12] = {
                        { exe,
                          (char *) "unlock",
                          (char *) "--image",
                          a,
                          (char *) "--image",
                          c,
                          (char *) "--escrow-file",
                          escrow,
                          NULL },
                        { exe, (char *) "inspect", (char *) "--image", a, (char *) "--image", c, NULL },
                        { exe,
                          (char *) "unlock",
                          (char *) "--image",
                          a,
                          (char *) "--map",
                          (char *) "x",
                          (char *) "--image",
                          c,
                          (char *) "--mount",
                          (char *) "/tmp/x",
                          NULL },
                        { exe,
                          (char *) "unlock",
                          (char *) "--image",
                          a,
                          (char *) "--map",
                          (char *) "x",
                          (char *) "--map",
                          (char *) "y",
                          NULL },
                };

                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        _cleanup_free_ char *o2 = NULL;

                        ASSERT_EQ(test_run(bad[i], &o2), 1);
                        ASSERT_TRUE(!o2 || !o2[0]);
                }
        }
}

DEFINE_TEST_MAIN;
