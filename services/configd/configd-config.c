/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "configd-config.h"

#include "log.h"
#include "memory-util.h"
#include "proto-util.h"

typedef Org__Lfedge__Eve__Config__WifiConfig WifiConfig;
typedef Org__Lfedge__Eve__Config__DatastoreConfig DatastoreConfig;
typedef Org__Lfedge__Eve__Config__AppInstanceConfig AppInstanceConfig;

static const char *const kind_names[_SECRET_KIND_MAX] = {
        [SECRET_KIND_WIFI] = "wifi",
        [SECRET_KIND_DATASTORE] = "datastore",
        [SECRET_KIND_CLOUDINIT] = "cloudinit",
};

static const char *const kind_fields[_SECRET_KIND_MAX][SECRET_FIELDS_MAX + 1] = {
        [SECRET_KIND_WIFI] = { "wifiPassword", "wifiUserName", NULL },
        [SECRET_KIND_DATASTORE] = { "dsPassword", "dsAPIKey", NULL },
        [SECRET_KIND_CLOUDINIT] = { "protectedUserData", NULL },
};

const char *secret_kind_to_string(SecretKind k) {
        return k >= 0 && k < _SECRET_KIND_MAX ? kind_names[k] : NULL;
}

SecretKind secret_kind_from_string(const char *s) {
        for (SecretKind k = 0; k < _SECRET_KIND_MAX; k++)
                if (streq_ptr(s, kind_names[k]))
                        return k;
        return _SECRET_KIND_INVALID;
}

const char *const *secret_kind_fields(SecretKind k) {
        return k >= 0 && k < _SECRET_KIND_MAX ? kind_fields[k] : NULL;
}

static bool name_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '.' || c == '-';
}

char *secret_name_make(SecretKind k, const char *item) {
        const char *kind = secret_kind_to_string(k);
        size_t n;
        char *s, *p;

        if (!kind || !item)
                return NULL;
        n = strlen(kind) + 1;
        for (const char *c = item; *c; c++)
                n += name_char_ok(*c) ? 1 : 3;
        if (n > SECRET_NAME_MAX)
                return NULL;
        s = malloc(n + 1);
        if (!s)
                return NULL;
        p = stpcpy(stpcpy(s, kind), ".");
        for (const char *c = item; *c; c++) {
                if (name_char_ok(*c))
                        *p++ = *c;
                else
                        p += sprintf(p, "+%02x", (unsigned) (uint8_t) *c);
        }
        *p = '\0';
        return s;
}

/* A block is there when it names a context or carries data; an all-default message is no block. */
static bool block_present(const CipherBlock *b) {
        return b && (!isempty(b->ciphercontextid) || b->cipherdata.len > 0 || b->initialvalue.len > 0);
}

/* Wipes and drops a cleartext legacy field that a cipher block supersedes. */
static void wipe_string(char **s) {
        if (!*s || *s == protobuf_c_empty_string)
                return;
        *s = erase_and_free(*s);
        *s = (char *) protobuf_c_empty_string;
}

static int
                add_secret(Config *c,
                           SecretKind kind,
                           const char *item,
                           const CipherBlock *b,
                           const char *clear0,
                           const char *clear1) {

        _cleanup_free_ char *name = NULL, *item_copy = NULL;
        Secret *n;

        if (isempty(item)) {
                log_warning("A %s item without a name, ignoring it.", secret_kind_to_string(kind));
                return 0;
        }
        if (!block_present(b) && isempty(clear0) && isempty(clear1))
                return 0; /* no secret in this item */
        name = secret_name_make(kind, item);
        if (!name) {
                log_warning("The %s item '%s' has a name too long for a credential, ignoring it.",
                            secret_kind_to_string(kind),
                            item);
                return 0;
        }
        if (config_find_secret(c, name)) {
                log_warning("A second %s item named '%s', ignoring it.", secret_kind_to_string(kind), item);
                c->n_duplicates++;
                return 0;
        }
        if (c->n_secrets >= SECRETS_MAX)
                return log_warning_errno(
                                SYNTHETIC_ERRNO(EBADMSG),
                                "More than %u secrets in the config.",
                                SECRETS_MAX);
        item_copy = strdup(item);
        if (!item_copy)
                return -ENOMEM;
        n = realloc(c->secrets, (c->n_secrets + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        c->secrets = n;
        c->secrets[c->n_secrets++] = (Secret){
                .name = TAKE_PTR(name),
                .item = TAKE_PTR(item_copy),
                .kind = kind,
                .block = block_present(b) ? b : NULL,
                .clear = { block_present(b) ? NULL : clear0, block_present(b) ? NULL : clear1 },
        };
        return 0;
}

static int add_wifi(Config *c, WifiConfig *w) {
        const char *user = w->identity, *password = w->password;

        if (block_present(w->cipherdata)) {
                wipe_string(&w->identity);
                wipe_string(&w->password);
                if (w->crypto) {
                        wipe_string(&w->crypto->identity);
                        wipe_string(&w->crypto->password);
                }
                return add_secret(c, SECRET_KIND_WIFI, w->wifissid, w->cipherdata, NULL, NULL);
        }
        if (w->crypto && isempty(password) && isempty(user)) {
                user = w->crypto->identity;
                password = w->crypto->password;
        }
        return add_secret(c, SECRET_KIND_WIFI, w->wifissid, NULL, password, user);
}

static int add_datastore(Config *c, DatastoreConfig *d) {
        if (block_present(d->cipherdata)) {
                wipe_string(&d->apikey);
                wipe_string(&d->password);
        }
        return add_secret(c, SECRET_KIND_DATASTORE, d->id, d->cipherdata, d->password, d->apikey);
}

static int add_app(Config *c, AppInstanceConfig *a) {
        const char *item = a->displayname;

        if (isempty(item) && a->uuidandversion)
                item = a->uuidandversion->uuid;
        if (block_present(a->cipherdata))
                wipe_string(&a->userdata);
        return add_secret(c, SECRET_KIND_CLOUDINIT, item, a->cipherdata, a->userdata, NULL);
}

int config_new(ConfigResponse *response, Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;
        EdgeDevConfig *e;
        int r;

        c = calloc(1, sizeof *c);
        if (!c) {
                proto_free(response);
                return -ENOMEM;
        }
        c->response = response;
        e = response ? response->config : NULL;
        if (!e)
                return log_debug_errno(SYNTHETIC_ERRNO(EBADMSG), "The ConfigResponse holds no config.");

        for (size_t i = 0; i < e->n_networks; i++) {
                Org__Lfedge__Eve__Config__NetworkConfig *n = e->networks[i];
                if (!n->wireless)
                        continue;
                for (size_t j = 0; j < n->wireless->n_wificfg; j++) {
                        r = add_wifi(c, n->wireless->wificfg[j]);
                        if (r < 0)
                                return r;
                }
        }
        for (size_t i = 0; i < e->n_datastores; i++) {
                r = add_datastore(c, e->datastores[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < e->n_apps; i++) {
                r = add_app(c, e->apps[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_secrets; i++) {
                free(c->secrets[i].name);
                free(c->secrets[i].item);
        }
        free(c->secrets);
        proto_free(c->response);
        free(c);
        return NULL;
}

int config_parse(const void *data, size_t size, Config **ret) {
        ConfigResponse *resp = NULL;
        int r;

        r =
                        PROTO_UNPACK(&org__lfedge__eve__config__config_response__descriptor,
                                     data,
                                     size,
                                     CONFIG_SIZE_MAX,
                                     &resp);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        return config_new(resp, ret);
}

int config_pack(const Config *c, uint8_t **ret, size_t *ret_size) {
        return PROTO_PACK(c->response, ret, ret_size);
}

const char *config_hash(const Config *c) {
        return c && c->response && !isempty(c->response->confighash) ? c->response->confighash : NULL;
}

const Secret *config_find_secret(const Config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_secrets; i++)
                if (streq(c->secrets[i].name, name))
                        return &c->secrets[i];
        return NULL;
}

void secret_values_done(SecretValues *v) {
        for (size_t i = 0; i < v->n; i++)
                eve_secret_free(v->value[i]);
        *v = (SecretValues){};
}

static const char *block_field(const EncryptionBlock *eb, const char *field) {
        if (streq(field, "wifiPassword"))
                return eb->wifipassword;
        if (streq(field, "wifiUserName"))
                return eb->wifiusername;
        if (streq(field, "dsPassword"))
                return eb->dspassword;
        if (streq(field, "dsAPIKey"))
                return eb->dsapikey;
        if (streq(field, "protectedUserData"))
                return eb->protecteduserdata;
        return NULL;
}

int secret_values_from(const Secret *s, const EncryptionBlock *eb, SecretValues *ret) {
        const char *const *fields = secret_kind_fields(s->kind);
        SecretValues v = { .primary = fields ? fields[0] : NULL };

        for (size_t i = 0; fields && fields[i]; i++) {
                const char *val = eb ? block_field(eb, fields[i]) : s->clear[i];
                size_t n;

                if (isempty(val))
                        continue;
                n = strlen(val);
                v.value[v.n] = eve_secret_alloc(n + 1);
                if (!v.value[v.n]) {
                        secret_values_done(&v);
                        return -ENOMEM;
                }
                memcpy(v.value[v.n], val, n);
                v.field[v.n++] = fields[i];
        }
        if (v.n == 0)
                return -ENODATA;
        *ret = v;
        return 0;
}

const char *secret_values_get(const SecretValues *v, const char *field) {
        if (isempty(field))
                field = v->primary;
        for (size_t i = 0; field && i < v->n; i++)
                if (streq(v->field[i], field))
                        return v->value[i];
        return NULL;
}
