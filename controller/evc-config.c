/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-config.h"

#include <microhttpd.h>

#include "config.pb-c.h"
#include "encoding.h"
#include "evc-cipher.h"
#include "evc-server.h"
#include "evc-vault.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"

#define ITEMS_MAX 256
#define SECRETS_MAX 64
#define VAULTS_MAX 64
#define APPS_MAX (64 + SECRETS_MAX)

/* Everything one build allocates, freed together. */
typedef struct Arena {
        void **p;
        size_t n, cap;
        Org__Lfedge__Eve__Common__CipherBlock *blocks[SECRETS_MAX];
        size_t n_blocks;
} Arena;

static void arena_done(Arena *a) {
        for (size_t i = 0; i < a->n_blocks; i++)
                evc_cipher_block_done(a->blocks[i]);
        for (size_t i = 0; i < a->n; i++)
                free(a->p[i]);
        free(a->p);
        *a = (Arena){};
}

/* Takes p (freed on failure). */
static void *arena_take(Arena *a, void *p) {
        if (!p)
                return NULL;
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                void **q = reallocarray(a->p, cap, sizeof *q);
                if (!q) {
                        free(p);
                        return NULL;
                }
                a->p = q;
                a->cap = cap;
        }
        return a->p[a->n++] = p;
}

static void *arena_new(Arena *a, size_t size) {
        return arena_take(a, calloc(1, size));
}

static char *arena_strdup(Arena *a, const char *s) {
        return s ? arena_take(a, strdup(s)) : NULL;
}

#define NEW(a, type, init)                               \
        ({                                               \
                type *_p = arena_new((a), sizeof(type)); \
                if (_p)                                  \
                        *_p = (type) init;               \
                _p;                                      \
        })

void evc_built_config_done(EvcBuiltConfig *c) {
        free(c->packed);
        *c = (EvcBuiltConfig){};
}

/* The secrets as cipher blocks, hung where EVE looks for them: wifi → networks[0].wireless.wifiCfg[] by
 * SSID, datastore → datastores[] by id, cloudinit → apps[] by display name. */
static int
                add_secrets(Evc *e,
                            Arena *a,
                            int64_t device_id,
                            const uint8_t k[static 32],
                            const char *ctx_id,
                            Org__Lfedge__Eve__Config__EdgeDevConfig *c) {
        Org__Lfedge__Eve__Config__WifiConfig **wifi = arena_new(a, SECRETS_MAX * sizeof(void *));
        Org__Lfedge__Eve__Config__DatastoreConfig **ds = arena_new(a, SECRETS_MAX * sizeof(void *));
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        size_t n_wifi = 0, n_ds = 0;
        int r;

        if (!wifi || !ds)
                return -ENOMEM;
        r = evc_prepare(evc_db(e),
                        "SELECT name, kind, sealed FROM secrets WHERE device_id = ? ORDER BY name",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        while (sqlite3_step(st) == SQLITE_ROW) {
                Org__Lfedge__Eve__Common__EncryptionBlock eb =
                                ORG__LFEDGE__EVE__COMMON__ENCRYPTION_BLOCK__INIT;
                _cleanup_(eve_secret_freep) uint8_t *plain = NULL;
                _cleanup_(eve_secret_freep) char *value = NULL;
                const char *kind = (const char *) sqlite3_column_text(st, 1);
                char *name = arena_strdup(a, (const char *) sqlite3_column_text(st, 0));
                Org__Lfedge__Eve__Common__CipherBlock *b;
                size_t plain_size;

                if (a->n_blocks >= SECRETS_MAX) {
                        log_warning("Device has more than %d secrets; the rest is not sent.", SECRETS_MAX);
                        break;
                }
                if (!name || !kind)
                        return -ENOMEM;
                r = evc_secret_unseal(
                                e, sqlite3_column_blob(st, 2), (size_t) sqlite3_column_bytes(st, 2), &value);
                if (r < 0)
                        return log_error_errno(
                                        r, "Failed to unseal secret %s (wrong keys/db.key?): %m", name);
                if (streq(kind, "wifi"))
                        eb.wifipassword = value;
                else if (streq(kind, "datastore"))
                        eb.dspassword = value;
                else
                        eb.protecteduserdata = value;
                r = PROTO_PACK_SECRET(&eb, &plain, &plain_size);
                if (r < 0)
                        return r;
                b = arena_new(a, sizeof *b);
                if (!b)
                        return -ENOMEM;
                r = evc_cipher_block_encrypt(k, ctx_id, plain, plain_size, b);
                if (r < 0)
                        return r;
                a->blocks[a->n_blocks++] = b;
                if (streq(kind, "wifi")) {
                        Org__Lfedge__Eve__Config__WifiConfig *w =
                                        NEW(a,
                                            Org__Lfedge__Eve__Config__WifiConfig,
                                            ORG__LFEDGE__EVE__CONFIG__WIFI_CONFIG__INIT);
                        if (!w)
                                return -ENOMEM;
                        w->wifissid = name;
                        w->cipherdata = b;
                        wifi[n_wifi++] = w;
                } else if (streq(kind, "datastore")) {
                        Org__Lfedge__Eve__Config__DatastoreConfig *x =
                                        NEW(a,
                                            Org__Lfedge__Eve__Config__DatastoreConfig,
                                            ORG__LFEDGE__EVE__CONFIG__DATASTORE_CONFIG__INIT);
                        if (!x)
                                return -ENOMEM;
                        x->id = name;
                        x->cipherdata = b;
                        ds[n_ds++] = x;
                } else {
                        /* cloud-init user data: the application of that name (evc app set), or one made for
                         * it. */
                        Org__Lfedge__Eve__Config__AppInstanceConfig *x = NULL;
                        for (size_t i = 0; !x && i < c->n_apps; i++)
                                if (streq_ptr(c->apps[i]->displayname, name))
                                        x = c->apps[i];
                        if (!x) {
                                x = NEW(a,
                                        Org__Lfedge__Eve__Config__AppInstanceConfig,
                                        ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT);
                                if (!x)
                                        return -ENOMEM;
                                x->displayname = name;
                                c->apps[c->n_apps++] = x; /* room: APPS_MAX holds every secret */
                        }
                        x->cipherdata = b;
                }
        }
        c->n_datastores = n_ds;
        c->datastores = ds;
        if (n_wifi > 0) {
                Org__Lfedge__Eve__Config__NetworkConfig *net =
                                NEW(a,
                                    Org__Lfedge__Eve__Config__NetworkConfig,
                                    ORG__LFEDGE__EVE__CONFIG__NETWORK_CONFIG__INIT);
                Org__Lfedge__Eve__Config__WirelessConfig *wl =
                                NEW(a,
                                    Org__Lfedge__Eve__Config__WirelessConfig,
                                    ORG__LFEDGE__EVE__CONFIG__WIRELESS_CONFIG__INIT);
                Org__Lfedge__Eve__Config__NetworkConfig **nets = arena_new(a, sizeof(void *));

                if (!net || !wl || !nets)
                        return -ENOMEM;
                wl->n_wificfg = n_wifi;
                wl->wificfg = wifi;
                net->id = (char *) "wifi";
                net->wireless = wl;
                nets[0] = net;
                c->n_networks = 1;
                c->networks = nets;
        }
        return 0;
}

static char *arena_printf(Arena *a, const char *fmt, ...) _printf_(2, 3);
static char *arena_printf(Arena *a, const char *fmt, ...) {
        va_list ap;
        char *s;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&s, fmt, ap);
        va_end(ap);
        return k < 0 ? NULL : arena_take(a, s);
}

static Org__Lfedge__Eve__Config__EveTrustVaultKeySource key_source_proto(const char *s) {
        switch (key_source_from_string(s)) {
        case KEY_SOURCE_TPM:
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_TPM;
        case KEY_SOURCE_TPM_CONTROLLER:
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_TPM_AND_CONTROLLER;
        case KEY_SOURCE_CONTROLLER:
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_CONTROLLER;
        default:
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_UNSPECIFIED;
        }
}

/* The vault list (extension field 17760): every vault the node must have, as the admin set it. */
static int add_vaults(Evc *e, Arena *a, int64_t device_id, Org__Lfedge__Eve__Config__EdgeDevConfig *c) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        c->eve_trust_vaults = arena_new(a, VAULTS_MAX * sizeof(void *));
        if (!c->eve_trust_vaults)
                return -ENOMEM;
        r = evc_prepare(evc_db(e),
                        "SELECT " EVC_VAULT_COLUMNS " FROM vaults WHERE device_id = ? ORDER BY name, uuid",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        while (sqlite3_step(st) == SQLITE_ROW && c->n_eve_trust_vaults < VAULTS_MAX) {
                Org__Lfedge__Eve__Config__EveTrustVaultConfig *v =
                                NEW(a,
                                    Org__Lfedge__Eve__Config__EveTrustVaultConfig,
                                    ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_CONFIG__INIT);
                Org__Lfedge__Eve__Config__UUIDandVersion *id =
                                NEW(a,
                                    Org__Lfedge__Eve__Config__UUIDandVersion,
                                    ORG__LFEDGE__EVE__CONFIG__UUIDAND_VERSION__INIT);
                uint32_t mask = (uint32_t) sqlite3_column_int64(st, 5);

                if (!v || !id || !(id->uuid = arena_strdup(a, (const char *) sqlite3_column_text(st, 0))) ||
                    !(id->version = arena_printf(a, "%lld", (long long) sqlite3_column_int64(st, 2))) ||
                    !(v->name = arena_strdup(a, (const char *) sqlite3_column_text(st, 1))))
                        return -ENOMEM;
                v->uuidandversion = id;
                v->size_limit_bytes = (uint64_t) sqlite3_column_int64(st, 3);
                v->key_source = key_source_proto((const char *) sqlite3_column_text(st, 4));
                if (mask != 0) {
                        v->pcr_indices = arena_new(a, 32 * sizeof(uint32_t));
                        if (!v->pcr_indices)
                                return -ENOMEM;
                        for (uint32_t i = 0; i < 32; i++)
                                if (mask & (UINT32_C(1) << i))
                                        v->pcr_indices[v->n_pcr_indices++] = i;
                }
                v->policy_id = (uint32_t) sqlite3_column_int64(st, 6);
                v->desired_state = streq_ptr((const char *) sqlite3_column_text(st, 7), "locked")
                                ? ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_DESIRED_STATE__EVE_TRUST_VAULT_DESIRED_STATE_LOCKED
                                : ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_DESIRED_STATE__EVE_TRUST_VAULT_DESIRED_STATE_UNLOCKED;
                v->key_generation = (uint64_t) sqlite3_column_int64(st, 8);
                c->eve_trust_vaults[c->n_eve_trust_vaults++] = v;
        }
        return 0;
}

/* Applications set by the admin (evc app set), each naming the vault it runs on (extension field 17760). */
static int add_apps(Evc *e, Arena *a, int64_t device_id, Org__Lfedge__Eve__Config__EdgeDevConfig *c) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        c->apps = arena_new(a, APPS_MAX * sizeof(void *));
        if (!c->apps)
                return -ENOMEM;
        r = evc_prepare(evc_db(e),
                        "SELECT name, uuid, version, vault_uuid FROM apps WHERE device_id = ? ORDER BY name",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        while (sqlite3_step(st) == SQLITE_ROW && c->n_apps < APPS_MAX - SECRETS_MAX) {
                Org__Lfedge__Eve__Config__AppInstanceConfig *x =
                                NEW(a,
                                    Org__Lfedge__Eve__Config__AppInstanceConfig,
                                    ORG__LFEDGE__EVE__CONFIG__APP_INSTANCE_CONFIG__INIT);
                Org__Lfedge__Eve__Config__UUIDandVersion *id =
                                NEW(a,
                                    Org__Lfedge__Eve__Config__UUIDandVersion,
                                    ORG__LFEDGE__EVE__CONFIG__UUIDAND_VERSION__INIT);

                if (!x || !id ||
                    !(x->displayname = arena_strdup(a, (const char *) sqlite3_column_text(st, 0))) ||
                    !(id->uuid = arena_strdup(a, (const char *) sqlite3_column_text(st, 1))) ||
                    !(id->version = arena_printf(a, "%lld", (long long) sqlite3_column_int64(st, 2))))
                        return -ENOMEM;
                x->uuidandversion = id;
                x->activate = true;
                if (sqlite3_column_type(st, 3) != SQLITE_NULL &&
                    !(x->eve_trust_vault_uuid = arena_strdup(a, (const char *) sqlite3_column_text(st, 3))))
                        return -ENOMEM;
                c->apps[c->n_apps++] = x;
        }
        return 0;
}

int evc_config_build(
                Evc *e,
                EvcKeys *keys,
                int64_t device_id,
                const char *uuid,
                bool baseos_only,
                EvcBuiltConfig *ret) {
        Org__Lfedge__Eve__Config__EdgeDevConfig c = ORG__LFEDGE__EVE__CONFIG__EDGE_DEV_CONFIG__INIT;
        Org__Lfedge__Eve__Config__UUIDandVersion id = ORG__LFEDGE__EVE__CONFIG__UUIDAND_VERSION__INIT;
        Org__Lfedge__Eve__Config__BaseOS baseos = ORG__LFEDGE__EVE__CONFIG__BASE_OS__INIT;
        Org__Lfedge__Eve__Common__CipherContext ctx = ORG__LFEDGE__EVE__COMMON__CIPHER_CONTEXT__INIT;
        Org__Lfedge__Eve__Common__CipherContext *ctxp = &ctx;
        _cleanup_(arena_done) Arena a = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *version = NULL, *baseos_version = NULL, *cchash = NULL, *ctx_id = NULL;
        _cleanup_free_ uint8_t *ecdh_pem = NULL;
        EvcDeviceEcdh dh = {};
        uint8_t both[2 * EVC_SHA256_SIZE], h[EVC_SHA256_SIZE], dev_hash[EVC_SHA256_SIZE];
        size_t ecdh_pem_size = 0;
        EvcBuiltConfig out = {};
        int r;

        CLEANUP_ERASE(dh);
        r = evc_prepare(evc_db(e),
                        "SELECT config_version, baseos_version, ecdh_pem FROM devices WHERE id = ?",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        if (asprintf(&version, "%lld", (long long) sqlite3_column_int64(st, 0)) < 0)
                return -ENOMEM;
        baseos_version = evc_column_strdup(st, 1);
        r = evc_column_blob(st, 2, &ecdh_pem, &ecdh_pem_size);
        if (r < 0)
                return r;
        evc_stmt_release(TAKE_PTR(st));

        /* The ECDH pair this device's blocks are encrypted with (its own or the shared one). */
        if (ecdh_pem && !baseos_only) {
                r = evc_keys_device_ecdh(e, keys, device_id, ecdh_pem, ecdh_pem_size, &dh);
                if (r < 0)
                        return log_error_errno(r, "Failed to derive the ECDH key of device %s: %m", uuid);
        }

        id.uuid = (char *) uuid;
        id.version = version;
        c.id = &id;
        /* The certificate-set hash: a node fetches /certs again as soon as it changes (signing or ECDH
         * rotated). */
        memcpy(both, keys->signing.hash, EVC_SHA256_SIZE);
        memcpy(both + EVC_SHA256_SIZE, dh.id > 0 ? dh.hash : keys->ecdh.hash, EVC_SHA256_SIZE);
        evc_sha256(both, sizeof both, h);
        cchash = base64_encode(h, sizeof h);
        if (!cchash)
                return -ENOMEM;
        c.controllercert_confighash = cchash;
        if (baseos_version) {
                baseos.base_os_version = baseos_version;
                baseos.activate = true;
                c.baseos = &baseos;
        }
        /* The vault list goes to an untrusted device too: without it the node would read "no vaults" as
         * "delete them all". */
        r = add_vaults(e, &a, device_id, &c);
        if (r < 0)
                return r;
        if (baseos_only)
                goto pack;
        r = add_apps(e, &a, device_id, &c);
        if (r < 0)
                return r;

        r = evc_prepare(evc_db(e),
                        "SELECT key, value FROM config_items WHERE device_id = ? ORDER BY key",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        c.configitems = arena_new(&a, ITEMS_MAX * sizeof(void *));
        if (!c.configitems)
                return -ENOMEM;
        while (sqlite3_step(st) == SQLITE_ROW && c.n_configitems < ITEMS_MAX) {
                Org__Lfedge__Eve__Config__ConfigItem *it =
                                NEW(&a,
                                    Org__Lfedge__Eve__Config__ConfigItem,
                                    ORG__LFEDGE__EVE__CONFIG__CONFIG_ITEM__INIT);
                if (!it || !(it->key = arena_strdup(&a, (const char *) sqlite3_column_text(st, 0))) ||
                    !(it->value = arena_strdup(&a, (const char *) sqlite3_column_text(st, 1))))
                        return -ENOMEM;
                c.configitems[c.n_configitems++] = it;
        }
        evc_stmt_release(TAKE_PTR(st));

        /* Secrets: only once the device has sent its ECDH certificate. */
        if (dh.id > 0) {
                _cleanup_free_ char *ch = hex_encode(dh.hash, 8), *dhx = NULL;

                evc_sha256(ecdh_pem, ecdh_pem_size, dev_hash);
                dhx = hex_encode(dev_hash, 8);
                if (!ch || !dhx || asprintf(&ctx_id, "evc-%s-%s", ch, dhx) < 0)
                        return -ENOMEM;
                ctx.contextid = ctx_id;
                ctx.hashscheme = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES;
                ctx.keyexchangescheme = ORG__LFEDGE__EVE__COMMON__KEY_EXCHANGE_SCHEME__KEA_ECDH;
                ctx.encryptionscheme = ORG__LFEDGE__EVE__COMMON__ENCRYPTION_SCHEME__SA_AES_256_CFB;
                ctx.devicecerthash = (ProtobufCBinaryData){ .len = 16, .data = dev_hash };
                ctx.controllercerthash = (ProtobufCBinaryData){ .len = 16, .data = dh.hash };
                c.n_ciphercontexts = 1;
                c.ciphercontexts = &ctxp;
                r = add_secrets(e, &a, device_id, dh.k, ctx_id, &c);
                if (r < 0)
                        return r;
                out.ecdh_id = dh.id;
        }
pack:
        r = PROTO_PACK(&c, &out.packed, &out.size);
        if (r < 0)
                return r;
        evc_sha256(out.packed, out.size, h);
        for (size_t i = 0; i < sizeof h; i++)
                snprintf(out.hash + 2 * i, 3, "%02x", h[i]);
        *ret = out;
        return 0;
}

/* ---- cleartext fallback ---- */

/* The legacy cleartext fields (WifiConfig.password, DatastoreConfig.password, AppInstanceConfig.userData)
 * set beside the cipher blocks for a node that cannot decrypt yet; the packed result lands in secret memory.
 */
static int pack_with_cleartext(
                Evc *e,
                int64_t device_id,
                Org__Lfedge__Eve__Config__ConfigResponse *resp,
                uint8_t **ret,
                size_t *ret_size) {
        Org__Lfedge__Eve__Config__EdgeDevConfig *c = resp->config;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char *values[SECRETS_MAX] = {};
        char **slots[SECRETS_MAX], *saved[SECRETS_MAX];
        size_t n = 0;
        int r;

        r = evc_prepare(evc_db(e),
                        "SELECT name, kind, sealed FROM secrets WHERE device_id = ? ORDER BY name",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, device_id);
        while (sqlite3_step(st) == SQLITE_ROW && n < SECRETS_MAX) {
                const char *name = (const char *) sqlite3_column_text(st, 0),
                           *kind = (const char *) sqlite3_column_text(st, 1);
                char **slot = NULL;

                if (!name || !kind)
                        continue;
                if (streq(kind, "wifi")) {
                        for (size_t i = 0; !slot && i < c->n_networks; i++)
                                for (size_t j = 0; !slot && c->networks[i]->wireless &&
                                     j < c->networks[i]->wireless->n_wificfg;
                                     j++)
                                        if (streq_ptr(c->networks[i]->wireless->wificfg[j]->wifissid, name))
                                                slot = &c->networks[i]->wireless->wificfg[j]->password;
                } else if (streq(kind, "datastore")) {
                        for (size_t i = 0; !slot && i < c->n_datastores; i++)
                                if (streq_ptr(c->datastores[i]->id, name))
                                        slot = &c->datastores[i]->password;
                } else
                        for (size_t i = 0; !slot && i < c->n_apps; i++)
                                if (streq_ptr(c->apps[i]->displayname, name))
                                        slot = &c->apps[i]->userdata;
                if (!slot)
                        continue;
                r = evc_secret_unseal(
                                e,
                                sqlite3_column_blob(st, 2),
                                (size_t) sqlite3_column_bytes(st, 2),
                                &values[n]);
                if (r < 0) {
                        values[n] = NULL;
                        goto finish;
                }
                slots[n] = slot;
                saved[n] = *slot;
                *slot = values[n];
                n++;
        }
        r = proto_pack_secret(&resp->base, ret, ret_size);
finish:
        for (size_t i = 0; i < n; i++) {
                *slots[i] = saved[i]; /* the message keeps only what it owns */
                eve_secret_free(values[i]);
        }
        return r;
}

/* ---- POST /id/<uuid>/config ---- */

static int
                remember(Evc *e,
                         int64_t device_id,
                         int64_t version,
                         const EvcBuiltConfig *b,
                         bool cache,
                         bool delivered) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        EvcStore *db = evc_db(e);
        int r;

        /* Derived data (a cache, and which ECDH certificate the device's config names): no fsync. A lost
         * ecdh_in_use only keeps an older certificate in /certs a while longer. */
        r = evc_tx_begin_sync(db, EVC_SYNC_NORMAL);
        if (r < 0)
                return r;
        if (cache) {
                /* Only if nothing changed since the build read the state (an admin command meanwhile bumps
                 * the version and the next request builds again). */
                r = evc_prepare(db,
                                "UPDATE devices SET config_cache = ?, config_hash = ?, config_ecdh = ? "
                                "WHERE id = ? AND config_version = ?",
                                &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_blob(st, 1, b->packed, (int) b->size, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, b->hash, -1, SQLITE_TRANSIENT);
                if (b->ecdh_id > 0)
                        sqlite3_bind_int64(st, 3, b->ecdh_id);
                sqlite3_bind_int64(st, 4, device_id);
                sqlite3_bind_int64(st, 5, version);
                r = evc_step_done(db, st);
                if (r < 0)
                        goto fail;
                evc_stmt_release(TAKE_PTR(st));
        }
        if (delivered) {
                r = evc_prepare(db, "UPDATE devices SET ecdh_in_use = ? WHERE id = ?", &st);
                if (r < 0)
                        goto fail;
                if (b->ecdh_id > 0)
                        sqlite3_bind_int64(st, 1, b->ecdh_id);
                sqlite3_bind_int64(st, 2, device_id);
                r = evc_step_done(db, st);
                if (r < 0)
                        goto fail;
        }
        r = evc_tx_commit(db);
        if (r < 0)
                goto fail;
        return 0;
fail:
        evc_tx_rollback(db);
        return r;
}

unsigned evc_handle_config(Evc *e, const char *uuid, const uint8_t *body, size_t n, EvcReply *reply) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigRequest *req = NULL;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__EdgeDevConfig *cfg = NULL;
        Org__Lfedge__Eve__Config__ConfigResponse resp = ORG__LFEDGE__EVE__CONFIG__CONFIG_RESPONSE__INIT;
        _cleanup_(evc_built_config_done) EvcBuiltConfig b = {};
        _cleanup_(evc_device_done) EvcDevice d = {};
        _cleanup_(evc_keys_unrefp) EvcKeys *keys = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *token = NULL;
        size_t token_size = 0;
        int64_t version = 0, in_use = 0;
        bool baseos_only = false, cached = false, fallback = false;
        unsigned s;
        int r;

        s = evc_authenticate(e, body, n, uuid, &d, &ac, reply);
        if (s)
                return s;
        if (PROTO_UNPACK(&org__lfedge__eve__config__config_request__descriptor,
                         ac->protectedpayload->payload.data,
                         ac->protectedpayload->payload.len,
                         e->body_max,
                         &req) < 0)
                return evc_reject(reply, MHD_HTTP_BAD_REQUEST, "ConfigRequest does not parse");
        if (d.revoked)
                return evc_reject(reply, MHD_HTTP_FORBIDDEN, "device %s is revoked", d.uuid);

        if (evc_prepare(evc_db(e),
                        "SELECT itoken, config_cache, config_hash, config_ecdh, config_version, "
                        "baseos_version, "
                        "cleartext_fallback, ecdh_in_use FROM devices WHERE id = ?",
                        &st) < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store failure");
        sqlite3_bind_int64(st, 1, d.id);
        if (sqlite3_step(st) != SQLITE_ROW || evc_column_blob(st, 0, &token, &token_size) < 0)
                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store failure");
        version = sqlite3_column_int64(st, 4);
        fallback = sqlite3_column_int(st, 6);
        in_use = sqlite3_column_int64(st, 7);
        if (streq(d.trust, "untrusted")) {
                /* Untrusted: only the base-OS update part, if the admin pushed one; never secrets. */
                if (sqlite3_column_type(st, 5) == SQLITE_NULL)
                        return evc_reject(
                                        reply,
                                        MHD_HTTP_FORBIDDEN,
                                        "device %s is untrusted (PCRs changed)",
                                        d.uuid);
                baseos_only = true;
                fallback = false;
        } else {
                if (token_size != EVC_TOKEN_SIZE || req->integrity_token.len != EVC_TOKEN_SIZE ||
                    !memeq_secure(token, req->integrity_token.data, EVC_TOKEN_SIZE))
                        return evc_reject(
                                        reply,
                                        MHD_HTTP_FORBIDDEN,
                                        "device %s: missing or stale integrity token",
                                        d.uuid);
                if (sqlite3_column_type(st, 1) != SQLITE_NULL &&
                    sqlite3_column_bytes(st, 2) == 2 * EVC_SHA256_SIZE) {
                        if (evc_column_blob(st, 1, &b.packed, &b.size) < 0)
                                return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
                        memcpy(b.hash, sqlite3_column_text(st, 2), 2 * EVC_SHA256_SIZE);
                        b.ecdh_id = sqlite3_column_int64(st, 3);
                        cached = true;
                }
        }
        evc_stmt_release(TAKE_PTR(st));

        if (!cached) {
                r = evc_keys_get(e, &keys);
                if (r >= 0)
                        r = evc_config_build(e, keys, d.id, d.uuid, baseos_only, &b);
                if (r < 0)
                        return evc_reject(
                                        reply,
                                        MHD_HTTP_SERVICE_UNAVAILABLE,
                                        "failed to build config: %s",
                                        strerror(-r));
        }
        /* Cached, so the hash (and the IVs) stay the same until something changes; and which controller ECDH
         * certificate the config the device now holds names (/certs keeps serving it). */
        if (!baseos_only && (!cached || b.ecdh_id != in_use)) {
                r = remember(e, d.id, version, &b, !cached, b.ecdh_id != in_use);
                if (r < 0)
                        return evc_reject(reply, MHD_HTTP_SERVICE_UNAVAILABLE, "store failure");
        }
        if (streq_ptr(req->confighash, b.hash))
                return reply->status = MHD_HTTP_NOT_MODIFIED;

        if (PROTO_UNPACK(&org__lfedge__eve__config__edge_dev_config__descriptor,
                         b.packed,
                         b.size,
                         SIZE_MAX,
                         &cfg) < 0)
                return evc_reject(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "cached config does not parse");
        resp.config = cfg;
        resp.confighash = b.hash;
        if (fallback) {
                _cleanup_(eve_secret_freep) uint8_t *packed = NULL;
                size_t packed_size;

                r = pack_with_cleartext(e, d.id, &resp, &packed, &packed_size);
                if (r < 0)
                        return evc_reject(
                                        reply,
                                        MHD_HTTP_SERVICE_UNAVAILABLE,
                                        "failed to add cleartext secrets");
                r = evc_reply_signed_secret(e, MHD_HTTP_OK, packed, packed_size, reply);
        } else
                r = evc_reply_signed(e, MHD_HTTP_OK, &resp.base, reply);
        if (r < 0)
                return evc_reject(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to sign");
        return reply->status;
}
