/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-configd without a TPM or a bus: the cipher block's checks and decryption given the shared point
 * (blocks made by evc's encryption), the secrets found in a config and the transition plan (cleartext wiped
 * when a cipher block supersedes it), secret names as credential names, the stored file format and every way
 * it can be corrupt, the ACL drop-ins, and systemd's credential socket peer address. */
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "configd-acl.h"
#include "configd-cipher.h"
#include "configd-config.h"
#include "configd-credsock.h"
#include "configd-store.h"
#include "evc-cipher.h"
#include "evc-crypto.h"
#include "memory-util.h"
#include "proto-util.h"
#include "tests.h"

/* ---- the cipher block, given the shared point ---- */

static void point_key(const uint8_t point[64], uint8_t key[32]) {
        evc_sha256(point, 64, key);
}

static CipherBlock seal(const uint8_t point[64], const void *plain, size_t n) {
        CipherBlock b;
        uint8_t key[32];

        point_key(point, key);
        ASSERT_OK(evc_cipher_block_encrypt(key, "ctx", plain, n, &b));
        return b;
}

TEST(cipher_block_opens_with_the_right_point_only) {
        uint8_t point[64], other[64];
        const char plain[] = "\"\x1c"
                             "correct horse battery staple";
        _cleanup_secret_ uint8_t *out = NULL;
        CipherFailure f = _CIPHER_FAILURE_INVALID;
        size_t n;

        for (unsigned i = 0; i < 64; i++)
                point[i] = (uint8_t) i, other[i] = (uint8_t) (i + 1);
        CipherBlock b = seal(point, plain, sizeof plain - 1);
        ASSERT_OK(cipher_block_open_with_point(point, &b, &out, &n, &f));
        ASSERT_MEMEQ(out, n, plain, sizeof plain - 1);
        ASSERT_EQ(eve_secret_size(out) >= n + 1, true);

        ASSERT_ERROR(cipher_block_open_with_point(other, &b, &out, &n, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_HASH_MISMATCH);
        /* Only Y differs: the KDF covers both coordinates. */
        memcpy(other, point, 32);
        ASSERT_ERROR(cipher_block_open_with_point(other, &b, &out, &n, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_HASH_MISMATCH);
        evc_cipher_block_done(&b);
}

TEST(cipher_block_shape_failures_are_distinct) {
        uint8_t point[64] = { 1 }, big_iv[17] = {}, short_sha[31] = {};
        _cleanup_secret_ uint8_t *out = NULL;
        CipherFailure f;
        size_t n;
        CipherBlock b = seal(point, "data", 4);
        ProtobufCBinaryData keep;

        keep = b.initialvalue;
        b.initialvalue = (ProtobufCBinaryData){ 17, big_iv };
        ASSERT_ERROR(cipher_block_open_with_point(point, &b, &out, &n, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_BAD_IV);
        b.initialvalue = (ProtobufCBinaryData){ 0, NULL };
        ASSERT_ERROR(cipher_block_check(&b, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_BAD_IV);
        b.initialvalue = keep;

        keep = b.cleartextsha256;
        b.cleartextsha256 = (ProtobufCBinaryData){ 31, short_sha };
        ASSERT_ERROR(cipher_block_check(&b, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_BAD_HASH_SIZE);
        b.cleartextsha256 = (ProtobufCBinaryData){ 0, NULL };
        ASSERT_ERROR(cipher_block_check(&b, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_BAD_HASH_SIZE);
        b.cleartextsha256 = keep;

        keep = b.cipherdata;
        b.cipherdata = (ProtobufCBinaryData){ 0, NULL };
        ASSERT_ERROR(cipher_block_check(&b, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_NO_DATA);
        b.cipherdata = (ProtobufCBinaryData){ CIPHER_DATA_MAX + 1, keep.data };
        ASSERT_ERROR(cipher_block_check(&b, &f), EBADMSG);
        ASSERT_EQ(f, CIPHER_FAILURE_TOO_LARGE);
        b.cipherdata = keep;

        ASSERT_OK(cipher_block_check(&b, &f));
        evc_cipher_block_done(&b);
}

TEST(failure_table_is_complete_and_distinct) {
        for (CipherFailure f = 0; f < _CIPHER_FAILURE_MAX; f++) {
                ASSERT_NOT_NULL(cipher_failure_to_string(f));
                ASSERT_NOT_NULL(cipher_failure_to_message(f));
                ASSERT_NOT_NULL(cipher_failure_to_bus_error(f));
                ASSERT_TRUE(strncmp(cipher_failure_to_bus_error(f), "org.eve.Config.Error.", 21) == 0);
                ASSERT_NE(cipher_failure_to_cipher_error(f), CIPHER_ERROR_INVALID);
                ASSERT_NE(cipher_failure_to_cipher_error(f), CIPHER_ERROR_CLEARTEXT_FALLBACK);
                for (CipherFailure g = 0; g < f; g++) {
                        ASSERT_FALSE(streq(cipher_failure_to_string(f), cipher_failure_to_string(g)));
                        ASSERT_FALSE(streq(cipher_failure_to_bus_error(f), cipher_failure_to_bus_error(g)));
                }
        }
        ASSERT_NULL(cipher_failure_to_string(_CIPHER_FAILURE_MAX));
        /* The wire values are EVE's (metrics.proto CipherError). */
        ASSERT_EQ(cipher_failure_to_cipher_error(CIPHER_FAILURE_UNKNOWN_CERT), 1);
        ASSERT_EQ(cipher_failure_to_cipher_error(CIPHER_FAILURE_HASH_MISMATCH), 2);
        ASSERT_EQ(cipher_failure_to_cipher_error(CIPHER_FAILURE_MALFORMED_BLOCK), 3);
        ASSERT_STREQ(cipher_error_to_string(CIPHER_ERROR_CLEARTEXT_FALLBACK), "cleartext-fallback");
}

/* ---- secrets in a config ---- */

typedef Org__Lfedge__Eve__Config__WifiConfig WifiConfig;
typedef Org__Lfedge__Eve__Config__NetworkConfig NetworkConfig;
typedef Org__Lfedge__Eve__Config__WirelessConfig WirelessConfig;
typedef Org__Lfedge__Eve__Config__DatastoreConfig DatastoreConfig;
typedef Org__Lfedge__Eve__Config__AppInstanceConfig AppInstanceConfig;

/* A packed ConfigResponse: wifi "office" with a cipher block and stale cleartext beside it, wifi "guest"
 * cleartext only, datastore "s3" cipher only, app "web" cloud-init cleartext only, a duplicate wifi
 * "office". */
static void make_config(uint8_t **ret, size_t *ret_size) {
        ConfigResponse resp = ORG__LFEDGE__EVE__CONFIG__CONFIG_RESPONSE__INIT;
        EdgeDevConfig cfg = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        NetworkConfig net = ORG__LFEDGE__EVE__CONFIG__NETWORK_CONFIG__INIT, *netp = &net;
        WirelessConfig wl = ORG__LFEDGE__EVE__CONFIG__WIRELESS_CONFIG__INIT;
        WifiConfig w[3] = { ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT,
                            ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT,
                            ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT };
        WifiConfig *wp[3] = { &w[0], &w[1], &w[2] };
        DatastoreConfig ds = ORG__LFEDGE__EVE__CONFIG__DATASTORE_CONFIG__INIT, *dsp = &ds;
        AppInstanceConfig app = ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT, *appp = &app;
        uint8_t point[64] = { 7 };
        CipherBlock b1 = seal(point, "x", 1), b2 = seal(point, "y", 1);

        w[0].wifissid = (char *) "office";
        w[0].password = (char *) "stale-cleartext-password";
        w[0].identity = (char *) "stale-cleartext-user";
        w[0].cipherdata = &b1;
        w[1].wifissid = (char *) "guest";
        w[1].password = (char *) "guest-password";
        w[2].wifissid = (char *) "office";
        w[2].password = (char *) "second office";
        wl.n_wificfg = 3;
        wl.wificfg = wp;
        net.wireless = &wl;
        ds.id = (char *) "s3";
        ds.cipherdata = &b2;
        app.displayname = (char *) "web";
        app.userdata = (char *) "#cloud-config";
        cfg.n_networks = 1;
        cfg.networks = &netp;
        cfg.n_datastores = 1;
        cfg.datastores = &dsp;
        cfg.n_apps = 1;
        cfg.apps = &appp;
        cfg.controllercert_confighash = (char *) "certs-v1";
        resp.config = &cfg;
        resp.confighash = (char *) "hash-1";
        ASSERT_OK(PROTO_PACK(&resp, ret, ret_size));
        evc_cipher_block_done(&b1);
        evc_cipher_block_done(&b2);
}

TEST(config_secrets_and_transition_plan) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ uint8_t *packed = NULL, *stored = NULL;
        _cleanup_(secret_values_done) SecretValues v = {};
        size_t n, sn;
        const Secret *s;

        make_config(&packed, &n);
        ASSERT_OK(config_parse(packed, n, &c));
        ASSERT_STREQ(config_hash(c), "hash-1");
        ASSERT_EQ(c->n_secrets, 4);
        ASSERT_EQ(c->n_duplicates, 1);

        s = config_find_secret(c, "wifi.office");
        ASSERT_NOT_NULL(s);
        ASSERT_EQ(s->kind, SECRET_KIND_WIFI);
        ASSERT_NOT_NULL(s->block);
        ASSERT_NULL(s->clear[0]);
        /* The cipher block wins: the stale cleartext is gone from memory and from what would be stored. */
        ASSERT_STREQ(c->response->config->networks[0]->wireless->wificfg[0]->password, "");
        ASSERT_STREQ(c->response->config->networks[0]->wireless->wificfg[0]->identity, "");
        ASSERT_OK(config_pack(c, &stored, &sn));
        ASSERT_NULL(memmem(stored, sn, "stale-cleartext", 15));
        ASSERT_NOT_NULL(memmem(packed, n, "stale-cleartext", 15)); /* (the input had it) */

        s = config_find_secret(c, "wifi.guest");
        ASSERT_NOT_NULL(s);
        ASSERT_NULL(s->block);
        ASSERT_OK(secret_values_from(s, NULL, &v));
        ASSERT_STREQ(secret_values_get(&v, NULL), "guest-password");
        ASSERT_NULL(secret_values_get(&v, "wifiUserName"));
        secret_values_done(&v);

        s = config_find_secret(c, "datastore.s3");
        ASSERT_NOT_NULL(s);
        ASSERT_EQ(s->kind, SECRET_KIND_DATASTORE);
        ASSERT_NOT_NULL(s->block);

        s = config_find_secret(c, "cloudinit.web");
        ASSERT_NOT_NULL(s);
        ASSERT_OK(secret_values_from(s, NULL, &v));
        ASSERT_STREQ(secret_values_get(&v, "protectedUserData"), "#cloud-config");
        ASSERT_NULL(config_find_secret(c, "wifi.nope"));
}

TEST(secret_values_never_empty_success) {
        EncryptionBlock eb = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_BLOCK__INIT;
        Secret s = { .name = (char *) "wifi.x", .kind = SECRET_KIND_WIFI };
        SecretValues v = {};

        eb.cluster_token = (char *) "unrelated";
        ASSERT_ERROR(secret_values_from(&s, &eb, &v), ENODATA);
        eb.wifiusername = (char *) "user-only";
        ASSERT_OK(secret_values_from(&s, &eb, &v));
        ASSERT_EQ(v.n, 1);
        ASSERT_NULL(secret_values_get(&v, NULL)); /* the primary (wifiPassword) is empty */
        ASSERT_STREQ(secret_values_get(&v, "wifiUserName"), "user-only");
        ASSERT_NULL(secret_values_get(&v, "dsPassword"));
        secret_values_done(&v);
}

TEST(secret_names_are_credential_names) {
        _cleanup_free_ char *a = secret_name_make(SECRET_KIND_WIFI, "Office Wi-Fi/2.4"),
                            *b = secret_name_make(SECRET_KIND_DATASTORE, "a@b:c+d"),
                            *c = secret_name_make(SECRET_KIND_CLOUDINIT, "caf\xc3\xa9"), *d = NULL;
        char big[200];

        ASSERT_STREQ(a, "wifi.Office+20Wi-Fi+2f2.4");
        ASSERT_STREQ(b, "datastore.a+40b+3ac+2bd");
        ASSERT_STREQ(c, "cloudinit.caf+c3+a9");
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        ASSERT_NOT_NULL(d = secret_name_make(SECRET_KIND_WIFI, big));
        memset(big, '/', sizeof big - 1);
        ASSERT_NULL(secret_name_make(SECRET_KIND_WIFI, big)); /* longer than NAME_MAX once escaped */
        ASSERT_EQ(secret_kind_from_string("datastore"), SECRET_KIND_DATASTORE);
        ASSERT_EQ(secret_kind_from_string("nope"), _SECRET_KIND_INVALID);
}

/* ---- the stored file ---- */

TEST(store_roundtrip_and_every_corruption_refused) {
        _cleanup_(config_freep) Config *c = NULL, *back = NULL;
        _cleanup_free_ uint8_t *packed = NULL, *file = NULL;
        const char *reason = NULL;
        size_t n, fn;

        make_config(&packed, &n);
        ASSERT_OK(config_parse(packed, n, &c));
        ASSERT_OK(store_encode(c, &file, &fn));
        ASSERT_OK(store_decode(file, fn, &back, &reason));
        ASSERT_STREQ(config_hash(back), "hash-1");
        ASSERT_EQ(back->n_secrets, 4);
        back = config_free(back);

        /* Any single flipped byte, anywhere. */
        for (size_t i = 0; i < fn; i++) {
                file[i] ^= 0x01;
                ASSERT_ERROR(store_decode(file, fn, &back, &reason), EBADMSG);
                ASSERT_NOT_NULL(reason);
                file[i] ^= 0x01;
        }
        /* Truncated at every length, and extended. */
        for (size_t i = 0; i < fn; i++)
                ASSERT_ERROR(store_decode(file, i, &back, &reason), EBADMSG);
        {
                _cleanup_free_ uint8_t *longer = malloc(fn + 1);
                ASSERT_NOT_NULL(longer);
                memcpy(longer, file, fn);
                longer[fn] = 0;
                ASSERT_ERROR(store_decode(longer, fn + 1, &back, &reason), EBADMSG);
                ASSERT_STREQ(reason, "length does not match the file (truncated or extended)");
        }
        /* A well-formed file whose payload is not a config. */
        {
                uint8_t junk[STORE_HEADER_SIZE + 3];
                uint8_t payload[3] = { 0xff, 0xff, 0xff };
                uint8_t h[32];

                memcpy(junk, STORE_MAGIC, STORE_MAGIC_SIZE);
                memset(junk + STORE_MAGIC_SIZE, 0, 8);
                junk[STORE_MAGIC_SIZE] = 3;
                evc_sha256(payload, 3, h);
                memcpy(junk + STORE_MAGIC_SIZE + 8, h, 32);
                memcpy(junk + STORE_HEADER_SIZE, payload, 3);
                ASSERT_ERROR(store_decode(junk, sizeof junk, &back, &reason), EBADMSG);
                ASSERT_STREQ(reason, "payload is not a configuration");
        }
        ASSERT_NULL(back);
}

TEST(store_save_is_atomic_and_private) {
        _cleanup_(config_freep) Config *c = NULL, *back = NULL;
        _cleanup_free_ uint8_t *packed = NULL;
        _cleanup_free_ char *path = NULL;
        const char *reason = NULL;
        struct stat st;
        size_t n;

        make_config(&packed, &n);
        ASSERT_OK(config_parse(packed, n, &c));
        path = store_path(test_tmpdir());
        ASSERT_NOT_NULL(path);
        ASSERT_ERROR(store_load(path, &back, &reason), ENOENT);
        ASSERT_OK(store_save(path, c));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 0777, 0600);
        ASSERT_OK(store_load(path, &back, &reason));
        ASSERT_STREQ(config_hash(back), "hash-1");
}

/* ---- ACLs ---- */

TEST(acl_defaults_dropins_and_precedence) {
        _cleanup_(acl_config_freep) AclConfig *c = calloc(1, sizeof(AclConfig));
        _cleanup_(strv_freep) char **units = NULL;
        Secret wifi = { .name = (char *) "wifi.office",
                        .item = (char *) "office",
                        .kind = SECRET_KIND_WIFI };
        Secret ds = { .name = (char *) "datastore.s3",
                      .item = (char *) "s3",
                      .kind = SECRET_KIND_DATASTORE };
        Secret app = { .name = (char *) "cloudinit.my-app",
                       .item = (char *) "my-app",
                       .kind = SECRET_KIND_CLOUDINIT };
        Secret guest = { .name = (char *) "wifi.guest", .item = (char *) "guest", .kind = SECRET_KIND_WIFI };

        ASSERT_NOT_NULL(c);
        /* Built-in defaults. */
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &wifi), &wifi, 1000, "eve-network.service"));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &wifi), &wifi, 0, "eve-downloader.service"));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &ds), &ds, 1000, "eve-downloader.service"));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &app), &app, 1000, "eve-app@my\\x2dapp.service"));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &app), &app, 1000, "eve-app@other.service"));
        /* Root is not implied. */
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &wifi), &wifi, 0, NULL));

        ASSERT_OK(acl_config_parse(
                        c,
                        "10-test.conf",
                        "# comment\n"
                        "[Kind wifi]\n"
                        "AllowUnit=wpa_supplicant.service  net@%i.service\n"
                        "AllowUser=4242\n"
                        "[Secret wifi.office]\n"
                        "AllowUser=root\n"
                        "bogus line\n"
                        "AllowUnit=not a unit\n"
                        "Unknown=1\n"
                        "[Kind nope]\n"
                        "AllowUser=1\n"
                        "[Secret datastore.s3]\n"
                        "AllowUser=no-such-user-here 77\n"));
        /* [Secret] beats [Kind] beats the built-in. */
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &wifi), &wifi, 0, NULL));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &wifi), &wifi, 4242, "wpa_supplicant.service"));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &guest), &guest, 4242, NULL));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &guest), &guest, 5, "net@guest.service"));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &guest), &guest, 5, "eve-network.service"));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &ds), &ds, 77, NULL));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &ds), &ds, 1000, "eve-downloader.service"));
        units = acl_units_expand(acl_for_secret(c, &guest), &guest);
        ASSERT_NOT_NULL(units);
        ASSERT_STREQ(units[0], "wpa_supplicant.service");
        ASSERT_STREQ(units[1], "net@guest.service");
        ASSERT_NULL(units[2]);

        /* A later file replaces a section, it does not add to it. */
        ASSERT_OK(acl_config_parse(c, "20-later.conf", "[Kind wifi]\nAllowUnit=other.service\n"));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &guest), &guest, 4242, NULL));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &guest), &guest, 1, "other.service"));
}

TEST(acl_load_reads_conf_files_in_order) {
        _cleanup_(acl_config_freep) AclConfig *c = NULL;
        _cleanup_free_ char *dir = NULL, *p = NULL;
        Secret ds = { .name = (char *) "datastore.s3",
                      .item = (char *) "s3",
                      .kind = SECRET_KIND_DATASTORE };
        FILE *f;

        ASSERT_OK(asprintf(&dir, "%s/secrets.d", test_tmpdir()));
        ASSERT_OK(mkdir(dir, 0755));
        ASSERT_OK(asprintf(&p, "%s/20-b.conf", dir));
        ASSERT_NOT_NULL(f = fopen(p, "we"));
        fputs("[Kind datastore]\nAllowUser=20\n", f);
        fclose(f);
        free(p);
        ASSERT_OK(asprintf(&p, "%s/10-a.conf", dir));
        ASSERT_NOT_NULL(f = fopen(p, "we"));
        fputs("[Kind datastore]\nAllowUser=10\n", f);
        fclose(f);
        free(p);
        ASSERT_OK(asprintf(&p, "%s/30-ignored.txt", dir));
        ASSERT_NOT_NULL(f = fopen(p, "we"));
        fputs("[Kind datastore]\nAllowUser=30\n", f);
        fclose(f);

        ASSERT_OK(acl_config_load(dir, &c));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &ds), &ds, 20, NULL));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &ds), &ds, 10, NULL));
        ASSERT_FALSE(acl_allows(acl_for_secret(c, &ds), &ds, 30, NULL));
        c = acl_config_free(c);
        /* A missing directory: the built-in defaults. */
        ASSERT_OK(acl_config_load("/nonexistent/secrets.d", &c));
        ASSERT_TRUE(acl_allows(acl_for_secret(c, &ds), &ds, 1, "eve-downloader.service"));
}

TEST(unit_name_escape_like_systemd_escape) {
        _cleanup_free_ char *a = unit_name_escape("my-app"), *b = unit_name_escape("a/b c"),
                            *c = unit_name_escape(".hidden");

        ASSERT_STREQ(a, "my\\x2dapp");
        ASSERT_STREQ(b, "a-b\\x20c");
        ASSERT_STREQ(c, "\\x2ehidden");
}

/* ---- the credential socket's peer address ---- */

static socklen_t abstract(struct sockaddr_un *sa, const char *name, size_t n) {
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        sa->sun_path[0] = '\0';
        memcpy(sa->sun_path + 1, name, n);
        return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

TEST(credential_peer_address) {
        struct sockaddr_un sa;
        char *unit = NULL, *id = NULL, *name = NULL, *field = NULL;
        static const char *const bad[] = {
                "",
                "/unit/a.service/x",      /* no random part */
                "zz/unit/a.service/x",    /* not hex */
                "abc/units/a.service/x",  /* not "/unit/" */
                "abc/unit/a.service",     /* no credential */
                "abc/unit/a.service/",    /* empty credential */
                "abc/unit//x",            /* empty unit */
                "abc/unit/noservice/x",   /* not a unit name */
                "abc/unit/a.service/x/y", /* '/' in the credential */
                "abc/unit/a.service/..",
        };
        socklen_t l;

        /* What systemd 254 binds: "@%lx/unit/%s/%s". */
        l = abstract(&sa, "1a2b3c4d5e6f7081/unit/eve-downloader.service/datastore.s3", 57);
        ASSERT_OK(credsock_parse_peer(&sa, l, &unit, &id));
        ASSERT_STREQ(unit, "eve-downloader.service");
        ASSERT_STREQ(id, "datastore.s3");
        free(unit);
        free(id);
        l = abstract(&sa, "f/unit/eve-app@my\\x2dapp.service/cloudinit.my-app@protectedUserData", 67);
        ASSERT_OK(credsock_parse_peer(&sa, l, &unit, &id));
        ASSERT_STREQ(unit, "eve-app@my\\x2dapp.service");
        ASSERT_OK(credsock_split_id(id, &name, &field));
        ASSERT_STREQ(name, "cloudinit.my-app");
        ASSERT_STREQ(field, "protectedUserData");
        free(unit), free(id), free(name), free(field);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                l = abstract(&sa, bad[i], strlen(bad[i]));
                ASSERT_ERROR(credsock_parse_peer(&sa, l, &unit, &id), EBADMSG);
        }
        /* An embedded NUL, and a path (not abstract) address. */
        l = abstract(&sa, "ab/unit/a.service/x\0y", 21);
        ASSERT_ERROR(credsock_parse_peer(&sa, l, &unit, &id), EBADMSG);
        sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        strcpy(sa.sun_path, "ab/unit/a.service/x");
        ASSERT_ERROR(credsock_parse_peer(&sa, sizeof sa, &unit, &id), EBADMSG);
        ASSERT_ERROR(credsock_parse_peer(&sa, sizeof(sa_family_t), &unit, &id), EBADMSG);

        ASSERT_OK(credsock_split_id("wifi.office", &name, &field));
        ASSERT_STREQ(name, "wifi.office");
        ASSERT_STREQ(field, "");
        free(name), free(field);
}

DEFINE_TEST_MAIN
