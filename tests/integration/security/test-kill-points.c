/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Kill points (issue 11): each write path killed with SIGKILL right after every one of its write-class
 * system calls (killpoint.c: ptrace, no injection points in the code), then "restarted" (the store read by a
 * fresh process, as the daemon would at start) and checked:
 *   - eve-configd's config store (store_save, configd-store.c): the stored config is the old one or the new
 *     one, never corrupt or half-applied, and the next save succeeds;
 *   - evc's database under a STORE_KEYS request (evc_handle_attest → the escrow transaction in SQLite): the
 *     database passes PRAGMA integrity_check and holds exactly the old escrow set or the new one (no record
 *     lost, none half-written), and evc still answers.
 * Each test prints "kill points: <what> tried N, recovered M" for docs/SECURITY.md. */
#include <sqlite3.h>
#include <sys/stat.h>

#include "attest.pb-c.h"
#include "configd-store.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "evc-server.h"
#include "fixtures.h"
#include "killpoint.h"
#include "proto-util.h"

/* ---- configd's store ---- */

static Config *config_make(const char *hash, size_t padding) {
        Org__Lfedge__Eve__Config__EdgeDevConfig dc = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__ConfigResponse resp = ORG__LFEDGE__EVE__CONFIG__CONFIG_RESPONSE__INIT;
        Org__Lfedge__Eve__Config__DatastoreConfig ds = ORG__LFEDGE__EVE__CONFIG__DATASTORE_CONFIG__INIT,
                                                  *dsp = &ds;
        _cleanup_free_ char *pad = malloc(padding + 1);
        _cleanup_free_ uint8_t *packed = NULL;
        Config *c = NULL;
        size_t n;

        ASSERT_NOT_NULL(pad);
        memset(pad, 'p', padding);
        pad[padding] = 0;
        ds.id = (char *) hash;
        ds.fqdn = pad; /* size: a store file of several pages */
        dc.n_datastores = 1;
        dc.datastores = &dsp;
        resp.config = &dc;
        resp.confighash = (char *) hash;
        ASSERT_OK(PROTO_PACK(&resp, &packed, &n));
        ASSERT_OK(config_parse(packed, n, &c));
        return c;
}

typedef struct SaveArgs {
        const char *path;
        const Config *config;
} SaveArgs;

static int save_in_child(void *userdata) {
        SaveArgs *a = userdata;
        return store_save(a->path, a->config) < 0 ? 1 : 0;
}

static unsigned leftover_files(const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        ASSERT_NOT_NULL(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && !streq(de->d_name, "last.pb"))
                        n++;
        return n;
}

TEST(configd_store_survives_a_kill_after_every_write) {
        _cleanup_(config_freep) Config *old = config_make("old-config", 64 * 1024),
                                       *new = config_make("new-config", 96 * 1024);
        _cleanup_free_ char *dir = test_mkdtemp("store"), *path = NULL;
        unsigned tried = 0, recovered = 0, as_old = 0, as_new = 0, leftovers = 0;
        SaveArgs a;

        ASSERT_OK(asprintf(&path, "%s/config/last.pb", dir));
        a = (SaveArgs){ .path = path, .config = new };
        for (unsigned n = 1;; n++) {
                _cleanup_(config_freep) Config *got = NULL;
                const char *why = NULL;
                bool killed;
                int status;

                ASSERT_OK(store_save(path, old));
                ASSERT_OK(killpoint_run(save_in_child, &a, n, &killed, &status));
                if (!killed) {
                        ASSERT_EQ(status, 0);
                        break;
                }
                tried++;
                /* The restart: what eve-configd loads. */
                if (store_load(path, &got, &why) < 0)
                        test_fail(__FILE__,
                                  __LINE__,
                                  "kill point %u: stored config unusable: %s",
                                  n,
                                  why ?: "?");
                if (streq(config_hash(got), "old-config"))
                        as_old++;
                else if (streq(config_hash(got), "new-config"))
                        as_new++;
                else
                        test_fail(__FILE__, __LINE__, "kill point %u: neither config", n);
                recovered++;
        }
        /* After all that, a save runs through and the new config is what loads, and no killed save left a
         * temporary file beside it (crypto_write_file_atomic writes into an O_TMPFILE, named only when
         * complete). */
        {
                _cleanup_(config_freep) Config *got = NULL;
                _cleanup_free_ char *cdir = NULL;
                ASSERT_OK(store_save(path, new));
                ASSERT_OK(store_load(path, &got, NULL));
                ASSERT_STREQ(config_hash(got), "new-config");
                ASSERT_OK(asprintf(&cdir, "%s/config", dir));
                leftovers = leftover_files(cdir);
        }
        printf("kill points: configd store_save tried %u, recovered %u (old config %u, new config %u; "
               "%u temporary files of killed saves left beside it)\n",
               tried,
               recovered,
               as_old,
               as_new,
               leftovers);
        ASSERT_GE(tried, 4u); /* create/write/fsync/rename at least */
        ASSERT_EQ(recovered, tried);
        ASSERT_GE(as_old, 1u);
        ASSERT_GE(as_new, 1u);
        ASSERT_EQ(leftovers, 0u);
}

/* ---- evc's database ---- */

typedef struct EvcSetup {
        char *dir, *uuid;
        gnutls_privkey_t key;
        uint8_t hash[32];
        uint8_t token[EVC_TOKEN_SIZE];
        uint8_t *body;
        size_t body_size;
} EvcSetup;

/* A signed STORE_KEYS with n escrow entries, each "<tag>-<i>". */
static void store_keys_body(EvcSetup *s, const char *tag, size_t n) {
        Org__Lfedge__Eve__Attest__ZAttestReq req = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ__INIT;
        Org__Lfedge__Eve__Attest__AttestStorageKeys sk = ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS__INIT;
        Org__Lfedge__Eve__Attest__AttestVolumeKey keys[4], *keyp[4];
        char bufs[4][64];
        _cleanup_free_ uint8_t *payload = NULL;
        size_t pn;

        ASSERT_LE(n, ELEMENTSOF(keys));
        for (size_t i = 0; i < n; i++) {
                keys[i] = (Org__Lfedge__Eve__Attest__AttestVolumeKey)
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY__INIT;
                keys[i].key_type =
                                ORG__LFEDGE__EVE__ATTEST__ATTEST_VOLUME_KEY_TYPE__ATTEST_VOLUME_KEY_TYPE_VSK;
                snprintf(bufs[i], sizeof bufs[i], "%s-%zu-escrow-blob-bytes", tag, i);
                keys[i].key = (ProtobufCBinaryData){ strlen(bufs[i]), (uint8_t *) bufs[i] };
                keyp[i] = &keys[i];
        }
        sk.integrity_token = (ProtobufCBinaryData){ sizeof s->token, s->token };
        sk.n_keys = n;
        sk.keys = keyp;
        req.reqtype = ORG__LFEDGE__EVE__ATTEST__ZATTEST_REQ_TYPE__Z_ATTEST_REQ_TYPE_STORE_KEYS;
        req.storage_keys = &sk;
        ASSERT_OK(PROTO_PACK(&req, &payload, &pn));
        s->body = mfree(s->body);
        ASSERT_OK(controller_envelope_seal(s->key, s->hash, NULL, payload, pn, &s->body, &s->body_size));
}

static int store_keys_in_child(void *userdata) {
        EvcSetup *s = userdata;
        _cleanup_(evc_freep) Evc *e = NULL;
        EvcReply reply = {};
        unsigned status;

        if (evc_load(s->dir, &e) < 0)
                return 2;
        status = evc_handle_attest(e, s->uuid, s->body, s->body_size, &reply);
        evc_reply_done(&reply);
        if (status != 200 && status != 201)
                fprintf(stderr, "STORE_KEYS answered %u\n", status);
        return status == 200 || status == 201 ? 0 : 3;
}

static sqlite3 *db_open(const char *dir) {
        _cleanup_free_ char *p = NULL;
        sqlite3 *h = NULL;

        ASSERT_OK(asprintf(&p, "%s/evc.db", dir));
        ASSERT_EQ(sqlite3_open_v2(p, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        return h;
}

/* "tag-0,tag-1" of the escrow rows, in order; integrity_check must say ok. */
static char *escrow_set(const char *dir) {
        sqlite3 *h = db_open(dir);
        sqlite3_stmt *st;
        char *s = strdup("");

        ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_STREQ((const char *) sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT key_msg FROM escrow ORDER BY seq", -1, &st, NULL),
                  SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__AttestVolumeKey *k = NULL;
                char *t = NULL;
                ASSERT_OK(
                                PROTO_UNPACK(&org__lfedge__eve__attest__attest_volume_key__descriptor,
                                             sqlite3_column_blob(st, 0),
                                             (size_t) sqlite3_column_bytes(st, 0),
                                             4096,
                                             &k));
                /* The tag before the first '-' (the key bytes carry no terminator). */
                const char *dash = memchr(k->key.data, '-', k->key.len);
                size_t tag = dash ? (size_t) (dash - (const char *) k->key.data) : k->key.len;
                ASSERT_OK(asprintf(&t, "%s%s%.*s", s, *s ? "," : "", (int) tag, (const char *) k->key.data));
                free(s);
                s = t;
        }
        sqlite3_finalize(st);
        sqlite3_close(h);
        return s;
}

static void db_exec(const char *dir, const char *sql, const void *blob, size_t n) {
        sqlite3 *h = db_open(dir);
        sqlite3_stmt *st;

        ASSERT_EQ(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
        if (blob)
                sqlite3_bind_blob(st, 1, blob, (int) n, SQLITE_TRANSIENT);
        ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        sqlite3_close(h);
}

TEST(evc_escrow_store_survives_a_kill_after_every_write) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        _cleanup_free_ char *pem = NULL;
        EvcSetup s = {};
        unsigned tried = 0, recovered = 0, as_old = 0, as_new = 0;
        size_t n;

        s.dir = test_mkdtemp("evc");
        ASSERT_OK(evc_init_dir(s.dir));
        {
                _cleanup_(evc_freep) Evc *e = NULL;
                ASSERT_OK(evc_load(s.dir, &e));
                ASSERT_OK(crypto_soft_key_generate(&key));
                ASSERT_OK(gnutls_pubkey_init(&pub));
                ASSERT_OK(gnutls_pubkey_import_privkey(pub, key, 0, 0));
                ASSERT_OK(crypto_cert_make(CRYPTO_CERT_DEVICE, pub, NULL, key, &crt));
                ASSERT_OK(crypto_cert_to_pem(crt, &pem, &n));
                ASSERT_OK(crypto_cert_hash_der(crt, s.hash));
                ASSERT_OK(evc_device_add(e, pem, n, "SN-KILL", &s.uuid));
        }
        s.key = key;
        /* Stand-in for a completed attestation (test-evc proves that path): the device is trusted and holds
         * an integrity token. */
        memset(s.token, 0x7a, sizeof s.token);
        db_exec(s.dir,
                "UPDATE devices SET itoken = ?, trust = 'trusted', registered = 1",
                s.token,
                sizeof s.token);

        for (unsigned k = 1;; k++) {
                _cleanup_free_ char *set = NULL;
                bool killed;
                int status;

                /* Old set: two entries; the request replaces them with three new ones. */
                store_keys_body(&s, "old", 2);
                ASSERT_EQ(store_keys_in_child(&s), 0);
                store_keys_body(&s, "new", 3);
                ASSERT_OK(killpoint_run(store_keys_in_child, &s, k, &killed, &status));
                if (!killed) {
                        ASSERT_EQ(status, 0);
                        break;
                }
                tried++;
                set = escrow_set(s.dir);
                if (streq(set, "old,old"))
                        as_old++;
                else if (streq(set, "new,new,new"))
                        as_new++;
                else
                        test_fail(__FILE__, __LINE__, "kill point %u: escrow set '%s'", k, set);
                recovered++;
        }
        {
                _cleanup_free_ char *set = escrow_set(s.dir);
                ASSERT_STREQ(set, "new,new,new");
        }
        printf("kill points: evc STORE_KEYS (escrow transaction) tried %u, recovered %u (old set %u, new "
               "set "
               "%u; 0 records lost)\n",
               tried,
               recovered,
               as_old,
               as_new);
        ASSERT_GE(tried, 3u);
        ASSERT_EQ(recovered, tried);
        ASSERT_GE(as_new, 1u);
        free(s.body);
        free(s.uuid);
        free(s.dir);
}

DEFINE_TEST_MAIN
