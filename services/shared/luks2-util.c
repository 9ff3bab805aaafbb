/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <sys/stat.h>

#include "encoding.h"
#include "log.h"
#include "luks2-util.h"
#include "memory-util.h"

static json_object *json_object_put_null(json_object *o) {
        (void) json_object_put(o);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put_null);

void luks2_crypt_freep(struct crypt_device **cd) {
        if (*cd)
                crypt_free(*cd);
        *cd = NULL;
}

static void luks2_crypt_log(int level, const char *msg, void *usrptr) {
        size_t n = strlen(msg);

        /* libcryptsetup's messages end with a newline; library code logs at debug level at most. */
        log_debug("libcryptsetup: %.*s", (int) (n > 0 && msg[n - 1] == '\n' ? n - 1 : n), msg);
}

static void set_minimal_pbkdf(struct crypt_device *cd) {
        static const struct crypt_pbkdf_type minimal = {
                .type = CRYPT_KDF_PBKDF2,
                .hash = "sha512",
                .iterations = 1000,
                .flags = CRYPT_PBKDF_NO_BENCHMARK,
        };
        /* Only fails for invalid parameters, which these are not. */
        (void) crypt_set_pbkdf_type(cd, &minimal);
}

/* base64(secret) in secret memory, as the keyslot passphrase. */
static int passphrase_from_secret(const void *secret, size_t size, char **ret, size_t *ret_len) {
        _cleanup_(erase_and_freep) char *b64 = NULL;
        char *p;
        size_t n;

        if (!secret || size == 0 || size > 256)
                return -EINVAL;
        b64 = base64_encode(secret, size);
        if (!b64)
                return -ENOMEM;
        n = strlen(b64);
        p = eve_secret_alloc(n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p, b64, n + 1);
        *ret = p;
        *ret_len = n;
        return 0;
}

static int crypt_new(const char *path, struct crypt_device **ret) {
        struct crypt_device *cd = NULL;
        int r;

        /* At debug level (EVE_LOG_LEVEL=debug) libcryptsetup's and libdevmapper's own debug messages too:
         * each step of a key check or an activation, with the udev waits (docs/PERFORMANCE.md). */
        if (log_get_max_level() >= LOG_DEBUG) {
                crypt_set_debug_level(CRYPT_DEBUG_ALL);
                crypt_set_log_callback(NULL, luks2_crypt_log, NULL);
        }
        r = crypt_init(&cd, path);
        if (r < 0)
                return r;
        crypt_set_log_callback(cd, luks2_crypt_log, NULL);
        *ret = cd;
        return 0;
}

int luks2_format(const char *path, uint64_t size, const void *secret, size_t secret_size,
                struct crypt_device **ret_cd, int *ret_keyslot, char *ret_uuid) {

        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secret_ char *pass = NULL;
        struct crypt_params_luks2 params = {
                .sector_size = 512,
        };
        size_t pass_len;
        int r, slot;

        if (!path)
                return -EINVAL;
        if (size > 0) {
                _cleanup_close_ int fd = -EBADF;

                if (size < LUKS2_IMAGE_SIZE_MIN)
                        return -ERANGE;
                fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return -errno;
                if (ftruncate(fd, (off_t) size) < 0)
                        return -errno;
        }
        r = passphrase_from_secret(secret, secret_size, &pass, &pass_len);
        if (r < 0)
                return r;
        r = crypt_new(path, &cd);
        if (r < 0)
                return r;
        set_minimal_pbkdf(cd);
        r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", /* uuid= */ NULL, /* volume_key= */ NULL, 64,
                         &params);
        if (r < 0)
                return r;
        /* crypt_format() resets nothing of the PBKDF, but set it again to be independent of that. */
        set_minimal_pbkdf(cd);
        slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, pass, pass_len);
        if (slot < 0)
                return slot;
        if (ret_uuid) {
                const char *u = crypt_get_uuid(cd);
                if (!u || strlen(u) != LUKS2_UUID_STRING_SIZE - 1)
                        return -EBADMSG;
                memcpy(ret_uuid, u, LUKS2_UUID_STRING_SIZE);
        }
        if (ret_keyslot)
                *ret_keyslot = slot;
        if (ret_cd)
                *ret_cd = TAKE_PTR(cd);
        return 0;
}

int luks2_has_header(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t magic[6];
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = pread(fd, magic, sizeof(magic), 0);
        if (n < 0)
                return -errno;
        return n == (ssize_t) sizeof(magic) && memcmp(magic, "LUKS\xba\xbe", sizeof(magic)) == 0;
}

int luks2_open(const char *path, struct crypt_device **ret) {
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        int r;

        /* Tell "not LUKS at all" from a damaged header: look for the magic ourselves. */
        r = luks2_has_header(path);
        if (r < 0)
                return r;
        if (r == 0)
                return -EMEDIUMTYPE;
        r = crypt_new(path, &cd);
        if (r < 0)
                return r;
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return r == -EINVAL ? -EMEDIUMTYPE : r;
        *ret = TAKE_PTR(cd);
        return 0;
}

int luks2_check_key(struct crypt_device *cd, int keyslot, const void *secret, size_t secret_size) {
        _cleanup_secret_ char *pass = NULL;
        size_t pass_len;
        int r;

        r = passphrase_from_secret(secret, secret_size, &pass, &pass_len);
        if (r < 0)
                return r;
        r = crypt_activate_by_passphrase(cd, NULL, keyslot < 0 ? CRYPT_ANY_SLOT : keyslot, pass, pass_len, 0);
        return r;
}

int luks2_activate(struct crypt_device *cd, const char *name, int keyslot, const void *secret, size_t secret_size) {
        _cleanup_secret_ uint8_t *vk = NULL;
        size_t vk_size;
        int r;

        if (!name)
                return -EINVAL;
        /* The keyslot yields the volume key (a wrong key reads as a wrong key even where no device-mapper
         * exists), which then makes the mapping: one keyslot KDF. */
        r = luks2_volume_key_get(cd, keyslot, secret, secret_size, &vk, &vk_size);
        if (r < 0)
                return r;
        return luks2_activate_by_volume_key(cd, name, vk, vk_size);
}

int luks2_volume_key_get_by_passphrase(
                struct crypt_device *cd,
                int keyslot,
                const char *passphrase,
                size_t len,
                uint8_t **ret_vk,
                size_t *ret_vk_size) {
        _cleanup_secret_ uint8_t *vk = NULL;
        size_t vk_size;
        int r, vks;

        if (!passphrase || len == 0)
                return -EINVAL;
        vks = crypt_get_volume_key_size(cd);
        if (vks <= 0)
                return -EINVAL;
        vk_size = (size_t) vks;
        vk = eve_secret_alloc(vk_size);
        if (!vk)
                return -ENOMEM;
        r = crypt_volume_key_get(
                        cd, keyslot < 0 ? CRYPT_ANY_SLOT : keyslot, (char *) vk, &vk_size, passphrase, len);
        if (r < 0)
                return r;
        *ret_vk = TAKE_PTR(vk);
        *ret_vk_size = vk_size;
        return r;
}

int luks2_volume_key_get(
                struct crypt_device *cd,
                int keyslot,
                const void *secret,
                size_t secret_size,
                uint8_t **ret_vk,
                size_t *ret_vk_size) {
        _cleanup_secret_ char *pass = NULL;
        size_t pass_len;
        int r;

        r = passphrase_from_secret(secret, secret_size, &pass, &pass_len);
        if (r < 0)
                return r;
        return luks2_volume_key_get_by_passphrase(cd, keyslot, pass, pass_len, ret_vk, ret_vk_size);
}

int luks2_activate_by_volume_key(struct crypt_device *cd, const char *name, const void *vk, size_t vk_size) {
        int r, q;

        if (!name || !vk || vk_size == 0)
                return -EINVAL;
        r = crypt_activate_by_volume_key(cd, name, vk, vk_size, 0);
        if (r >= 0 || r == -EPERM)
                return r;
        /* libcryptsetup may fail before it looked at the key: EEXIST/EBUSY for a mapping already there, and
         * ENOTSUP/EINVAL/ENODEV when device-mapper is missing. The digest check alone (no keyslot, no
         * mapping) then tells a key of another volume from those. Only on failure: on success the digest is
         * computed once (1000 PBKDF2 iterations; it was twice, ~15 ms of every unlock under TCG). */
        q = crypt_activate_by_volume_key(cd, NULL, vk, vk_size, 0);
        if (q < 0)
                return q;
        return r == -EEXIST || r == -EBUSY ? r : -EOPNOTSUPP;
}

int luks2_add_keyslot(struct crypt_device *cd, const void *old_secret, size_t old_size, const void *new_secret,
                size_t new_size) {

        _cleanup_secret_ char *old_pass = NULL, *new_pass = NULL;
        size_t old_len, new_len;
        int r;

        r = passphrase_from_secret(old_secret, old_size, &old_pass, &old_len);
        if (r < 0)
                return r;
        r = passphrase_from_secret(new_secret, new_size, &new_pass, &new_len);
        if (r < 0)
                return r;
        set_minimal_pbkdf(cd);
        return crypt_keyslot_add_by_passphrase(cd, CRYPT_ANY_SLOT, old_pass, old_len, new_pass, new_len);
}

int luks2_add_passphrase_keyslot(
                struct crypt_device *cd,
                const void *vk,
                size_t vk_size,
                const char *passphrase,
                size_t len) {
        if (!vk || vk_size == 0 || !passphrase || len == 0)
                return -EINVAL;
        set_minimal_pbkdf(cd);
        return crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, vk, vk_size, passphrase, len);
}

int luks2_add_keyslot_by_volume_key(
                struct crypt_device *cd,
                const void *vk,
                size_t vk_size,
                const void *new_secret,
                size_t new_size) {
        _cleanup_secret_ char *pass = NULL;
        size_t len;
        int r;

        r = passphrase_from_secret(new_secret, new_size, &pass, &len);
        if (r < 0)
                return r;
        return luks2_add_passphrase_keyslot(cd, vk, vk_size, pass, len);
}

uint32_t luks2_keyslots_active(struct crypt_device *cd) {
        uint32_t m = 0;

        for (int i = 0; i < LUKS2_KEYSLOTS_MAX; i++) {
                crypt_keyslot_info s = crypt_keyslot_status(cd, i);
                if (s == CRYPT_SLOT_ACTIVE || s == CRYPT_SLOT_ACTIVE_LAST)
                        m |= UINT32_C(1) << i;
        }
        return m;
}

int luks2_remove_keyslot(struct crypt_device *cd, int keyslot) {
        uint32_t active;
        int r;

        if (keyslot < 0 || keyslot >= LUKS2_KEYSLOTS_MAX)
                return -EINVAL;
        active = luks2_keyslots_active(cd);
        if (!(active & (UINT32_C(1) << keyslot)))
                return -ENOENT;
        if (active == (UINT32_C(1) << keyslot))
                return -EBUSY;
        /* Tokens that point at this keyslot only would be dangling: remove them first. */
        for (int t = 0; t < LUKS2_KEYSLOTS_MAX; t++) {
                const char *type;
                bool other = false;

                if (crypt_token_status(cd, t, &type) == CRYPT_TOKEN_INACTIVE)
                        continue;
                if (crypt_token_is_assigned(cd, t, keyslot) != 0)
                        continue;
                for (int k = 0; k < LUKS2_KEYSLOTS_MAX; k++)
                        if (k != keyslot && (active & (UINT32_C(1) << k)) && crypt_token_is_assigned(cd, t, k) == 0)
                                other = true;
                if (other) {
                        r = crypt_token_unassign_keyslot(cd, t, keyslot);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = crypt_token_json_set(cd, t, NULL);
                if (r < 0)
                        return r;
        }
        return crypt_keyslot_destroy(cd, keyslot);
}

int luks2_keyslot_is_minimal_pbkdf(struct crypt_device *cd, int keyslot) {
        struct crypt_pbkdf_type p = {};
        int r;

        r = crypt_keyslot_get_pbkdf(cd, keyslot, &p);
        if (r < 0)
                return r;
        return streq_ptr(p.type, CRYPT_KDF_PBKDF2) && streq_ptr(p.hash, "sha512") && p.iterations == 1000;
}

int luks2_token_find(struct crypt_device *cd, const char *type, int keyslot, int *ret_id, char **ret_json) {
        for (int t = 0; t < LUKS2_KEYSLOTS_MAX; t++) {
                const char *tt, *json;
                crypt_token_info s;

                s = crypt_token_status(cd, t, &tt);
                if (s == CRYPT_TOKEN_INACTIVE || s == CRYPT_TOKEN_INVALID || !streq_ptr(tt, type))
                        continue;
                if (keyslot >= 0 && crypt_token_is_assigned(cd, t, keyslot) != 0)
                        continue;
                if (crypt_token_json_get(cd, t, &json) < 0)
                        continue;
                if (ret_json) {
                        char *c = strdup(json);
                        if (!c)
                                return -ENOMEM;
                        *ret_json = c;
                }
                if (ret_id)
                        *ret_id = t;
                return 0;
        }
        return -ENOENT;
}

int luks2_token_write(struct crypt_device *cd, int id, const char *json, int keyslot) {
        int r, t;

        if (!json)
                return -EINVAL;
        t = crypt_token_json_set(cd, id < 0 ? CRYPT_ANY_TOKEN : id, json);
        if (t < 0)
                return t;
        if (keyslot >= 0) {
                r = crypt_token_assign_keyslot(cd, t, keyslot);
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        return t;
}

int luks2_token_remove(struct crypt_device *cd, int id) {
        return crypt_token_json_set(cd, id, NULL);
}

/* ---- JSON helpers ---- */

static int json_add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static json_object *json_pcr_array(uint32_t mask) {
        json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (mask & (UINT32_C(1) << i))
                        if (json_object_array_add(a, json_object_new_int((int) i)) < 0) {
                                json_object_put(a);
                                return NULL;
                        }
        return a;
}

static json_object *json_keyslots(int keyslot) {
        json_object *a = json_object_new_array();
        char buf[16];

        if (!a)
                return NULL;
        if (keyslot >= 0) {
                (void) snprintf(buf, sizeof(buf), "%d", keyslot);
                if (json_object_array_add(a, json_object_new_string(buf)) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static int json_finish(json_object *o, char **ret) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        char *c;

        if (!s)
                return -ENOMEM;
        c = strdup(s);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

#define REFUSE(reason)                                                                                        \
        ({                                                                                                    \
                if (ret_reason)                                                                               \
                        *ret_reason = (reason);                                                               \
                -EBADMSG;                                                                                     \
        })

static int json_parse_object(const char *json, json_object **ret) {
        json_object *o;

        if (!json)
                return -EINVAL;
        /* Tokens are small; LUKS2 metadata areas are at most 4 MiB. */
        if (strlen(json) > 65536)
                return -E2BIG;
        o = json_tokener_parse(json);
        if (!o)
                return -EBADMSG;
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

/* A PCR list: array of distinct ints 0–23. */
static int json_get_pcrs(json_object *a, uint32_t *ret) {
        uint32_t m = 0;
        size_t n;

        if (!json_object_is_type(a, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(a);
        if (n > TPM2_PCRS_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);
                int64_t v;

                if (!json_object_is_type(e, json_type_int))
                        return -EBADMSG;
                v = json_object_get_int64(e);
                if (v < 0 || v >= TPM2_PCRS_MAX || (m & (UINT32_C(1) << v)))
                        return -EBADMSG;
                m |= UINT32_C(1) << v;
        }
        *ret = m;
        return 0;
}

/* keyslots: exactly one decimal string 0–31. */
static int json_get_single_keyslot(json_object *a, int *ret) {
        json_object *e;
        const char *s;
        int v = 0;

        if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) != 1)
                return -EBADMSG;
        e = json_object_array_get_idx(a, 0);
        if (!json_object_is_type(e, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(e);
        if (isempty(s) || strlen(s) > 2 || (s[0] == '0' && s[1] != '\0'))
                return -EBADMSG;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                v = v * 10 + (*p - '0');
        }
        if (v >= LUKS2_KEYSLOTS_MAX)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static const char *json_get_str(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* ---- systemd-tpm2 ---- */

void luks2_tpm2_token_done(Luks2Tpm2Token *t) {
        if (!t)
                return;
        t->blob = mfree(t->blob);
        t->srk = mfree(t->srk);
        t->blob_size = t->srk_size = 0;
}

int luks2_tpm2_token_to_json(const Luks2Tpm2Token *t, char **ret) {
        _cleanup_(json_object_put_nullp) json_object *o = NULL;
        _cleanup_free_ char *blob = NULL, *policy = NULL, *srk = NULL;
        int r;

        if (!t || t->keyslot < 0 || t->keyslot >= LUKS2_KEYSLOTS_MAX || !t->blob || t->blob_size == 0 ||
            (t->pcr_mask & ~TPM2_PCRS_MASK))
                return -EINVAL;
        blob = base64_encode(t->blob, t->blob_size);
        policy = hex_encode(t->policy_hash, sizeof(t->policy_hash));
        if (!blob || !policy)
                return -ENOMEM;
        if (t->srk) {
                srk = base64_encode(t->srk, t->srk_size);
                if (!srk)
                        return -ENOMEM;
        }
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        /* Field order and spelling as systemd 254's tpm2_make_luks2_json(). */
        if ((r = json_add(o, "type", json_object_new_string(LUKS2_TOKEN_TPM2))) < 0 ||
            (r = json_add(o, "keyslots", json_keyslots(t->keyslot))) < 0 ||
            (r = json_add(o, "tpm2-blob", json_object_new_string(blob))) < 0 ||
            (r = json_add(o, "tpm2-pcrs", json_pcr_array(t->pcr_mask))) < 0 ||
            (r = json_add(o, "tpm2-pcr-bank", json_object_new_string("sha256"))) < 0 ||
            (r = json_add(o, "tpm2-primary-alg", json_object_new_string("ecc"))) < 0 ||
            (r = json_add(o, "tpm2-policy-hash", json_object_new_string(policy))) < 0 ||
            (r = json_add(o, "tpm2-pin", json_object_new_boolean(false))) < 0)
                return r;
        if (srk && (r = json_add(o, "tpm2_srk", json_object_new_string(srk))) < 0)
                return r;
        return json_finish(o, ret);
}

int luks2_tpm2_token_from_json(const char *json, Luks2Tpm2Token *ret, const char **ret_reason) {
        _cleanup_(json_object_put_nullp) json_object *o = NULL;
        _cleanup_free_ uint8_t *blob = NULL, *policy = NULL, *srk = NULL;
        size_t blob_size = 0, policy_size = 0, srk_size = 0;
        json_object *v;
        const char *s;
        uint32_t mask;
        int keyslot, r;

        if (!ret)
                return -EINVAL;
        r = json_parse_object(json, &o);
        if (r < 0)
                return REFUSE("not a JSON object");
        if (!streq_ptr(json_get_str(o, "type"), LUKS2_TOKEN_TPM2))
                return REFUSE("type is not systemd-tpm2");
        if (!json_object_object_get_ex(o, "keyslots", &v) || json_get_single_keyslot(v, &keyslot) < 0)
                return REFUSE("keyslots must list exactly one keyslot as a decimal string 0-31");
        if (json_object_object_get_ex(o, "tpm2-blob", &v) && json_object_is_type(v, json_type_array))
                return REFUSE("sharded tpm2-blob (signed+pcrlock policies) is not supported");
        s = json_get_str(o, "tpm2-blob");
        if (!s || base64_decode(s, strlen(s), false, &blob, &blob_size) < 0 || blob_size < 8 || blob_size > 4096)
                return REFUSE("tpm2-blob missing or not valid base64 of a sealed object");
        if (!json_object_object_get_ex(o, "tpm2-pcrs", &v) || json_get_pcrs(v, &mask) < 0)
                return REFUSE("tpm2-pcrs missing or not a list of distinct PCR numbers 0-23");
        if (json_object_object_get_ex(o, "tpm2-pcr-bank", &v) &&
            !streq_ptr(json_get_str(o, "tpm2-pcr-bank"), "sha256"))
                return REFUSE("tpm2-pcr-bank other than sha256 is not supported");
        if (json_object_object_get_ex(o, "tpm2-primary-alg", &v) &&
            !streq_ptr(json_get_str(o, "tpm2-primary-alg"), "ecc"))
                return REFUSE("tpm2-primary-alg other than ecc is not supported");
        s = json_get_str(o, "tpm2-policy-hash");
        if (!s || hex_decode(s, strlen(s), false, &policy, &policy_size) < 0 || policy_size != TPM2_SHA256_SIZE)
                return REFUSE("tpm2-policy-hash missing or not 32 bytes of hex");
        if (json_object_object_get_ex(o, "tpm2-pin", &v) &&
            (!json_object_is_type(v, json_type_boolean) || json_object_get_boolean(v)))
                return REFUSE("tpm2-pin must be false: PIN-protected tokens are not supported");
        if (json_object_object_get_ex(o, "tpm2_pubkey_pcrs", &v) &&
            (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 0))
                return REFUSE("signed PCR policies (tpm2_pubkey_pcrs) are not supported");
        if (json_object_object_get_ex(o, "tpm2_pubkey", &v))
                return REFUSE("signed PCR policies (tpm2_pubkey) are not supported");
        if (json_object_object_get_ex(o, "tpm2_pcrlock", &v) &&
            (!json_object_is_type(v, json_type_boolean) || json_object_get_boolean(v)))
                return REFUSE("pcrlock policies are not supported");
        if (json_object_object_get_ex(o, "tpm2_srk", &v)) {
                s = json_get_str(o, "tpm2_srk");
                if (!s || base64_decode(s, strlen(s), false, &srk, &srk_size) < 0 || srk_size < 4 ||
                    srk_size > 1024)
                        return REFUSE("tpm2_srk is not valid base64 of a serialized SRK");
                if (srk[0] != 0x81 || srk[1] != 0x00 || srk[2] != 0x00 || srk[3] != 0x01)
                        return REFUSE("tpm2_srk does not name the SRK at 0x81000001");
        }

        *ret = (Luks2Tpm2Token) {
                .keyslot = keyslot,
                .blob = TAKE_PTR(blob),
                .blob_size = blob_size,
                .pcr_mask = mask,
                .srk = TAKE_PTR(srk),
                .srk_size = srk_size,
        };
        memcpy(ret->policy_hash, policy, TPM2_SHA256_SIZE);
        if (ret_reason)
                *ret_reason = NULL;
        return 0;
}

/* ---- eve-vault ---- */

static const char *const escrow_state_table[_ESCROW_STATE_MAX] = {
        [ESCROW_NONE] = "none",
        [ESCROW_PENDING] = "pending",
        [ESCROW_CONFIRMED] = "confirmed",
};
static const char *const rotation_step_table[_ROTATION_STEP_MAX] = {
        [ROTATION_NONE] = "none",
        [ROTATION_REQUESTED] = "requested",
        [ROTATION_STARTED] = "started",
        [ROTATION_SLOT_ADDED] = "slot-added",
        [ROTATION_SEALED] = "sealed",
        [ROTATION_ESCROWED] = "escrowed",
        [ROTATION_UNCONFIRMED] = "unconfirmed",
};
static const char *const key_source_table[_KEY_SOURCE_MAX] = {
        [KEY_SOURCE_TPM] = "tpm",
        [KEY_SOURCE_TPM_CONTROLLER] = "tpm+controller",
        [KEY_SOURCE_CONTROLLER] = "controller",
};

static int table_lookup(const char *const *table, int n, const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return i;
        return -EINVAL;
}

const char *escrow_state_to_string(EscrowState s) {
        return s >= 0 && s < _ESCROW_STATE_MAX ? escrow_state_table[s] : NULL;
}
EscrowState escrow_state_from_string(const char *s) {
        return (EscrowState) table_lookup(escrow_state_table, _ESCROW_STATE_MAX, s);
}
const char *rotation_step_to_string(RotationStep s) {
        return s >= 0 && s < _ROTATION_STEP_MAX ? rotation_step_table[s] : NULL;
}
RotationStep rotation_step_from_string(const char *s) {
        return (RotationStep) table_lookup(rotation_step_table, _ROTATION_STEP_MAX, s);
}
const char *key_source_to_string(KeySource s) {
        return s >= 0 && s < _KEY_SOURCE_MAX ? key_source_table[s] : NULL;
}
KeySource key_source_from_string(const char *s) {
        return (KeySource) table_lookup(key_source_table, _KEY_SOURCE_MAX, s);
}

bool vault_name_is_valid(const char *name) {
        size_t n;

        if (isempty(name) || name[0] == '-')
                return false;
        n = strlen(name);
        if (n > LUKS2_VAULT_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-'))
                        return false;
        }
        return true;
}

bool vault_name_is_valid_on_node(const char *name) {
        size_t n;

        if (isempty(name) || name[0] == '-')
                return false;
        n = strlen(name);
        if (n > VAULT_NODE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
                        return false;
        return true;
}

static bool uuid_is_valid(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

static int json_get_u64(json_object *o, const char *key, uint64_t min, uint64_t max, uint64_t *ret) {
        json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        x = json_object_get_int64(v);
        if (x < 0 || (uint64_t) x < min || (uint64_t) x > max)
                return -EBADMSG;
        *ret = (uint64_t) x;
        return 0;
}

static int json_add_pcr_values(
                json_object *o,
                const char *key,
                uint32_t mask,
                const uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]) {
        json_object *v = json_object_new_object();
        int r;

        if ((r = json_add(o, key, v)) < 0)
                return r;
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
                _cleanup_free_ char *h = NULL;
                char k[4];

                if (!(mask & (UINT32_C(1) << i)))
                        continue;
                h = hex_encode(values[i], TPM2_SHA256_SIZE);
                if (!h)
                        return -ENOMEM;
                (void) snprintf(k, sizeof(k), "%u", i);
                if ((r = json_add(v, k, json_object_new_string(h))) < 0)
                        return r;
        }
        return 0;
}

/* Reads exactly the rows of mask from the object at key; -EBADMSG otherwise. */
static int json_get_pcr_values(
                json_object *o,
                const char *key,
                uint32_t mask,
                uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
                return -EBADMSG;
        if ((size_t) json_object_object_length(v) != (size_t) __builtin_popcount(mask))
                return -EBADMSG;
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++) {
                _cleanup_free_ uint8_t *d = NULL;
                const char *s;
                size_t n = 0;
                char k[4];

                if (!(mask & (UINT32_C(1) << i)))
                        continue;
                (void) snprintf(k, sizeof(k), "%u", i);
                s = json_get_str(v, k);
                if (!s || hex_decode(s, strlen(s), false, &d, &n) < 0 || n != TPM2_SHA256_SIZE)
                        return -EBADMSG;
                memcpy(values[i], d, TPM2_SHA256_SIZE);
        }
        return 0;
}

int eve_vault_token_to_json(const EveVaultToken *t, char **ret) {
        _cleanup_(json_object_put_nullp) json_object *o = NULL;
        json_object *journal;
        int r;

        if (!t || !vault_name_is_valid(t->name) || !uuid_is_valid(t->uuid) || t->generation == 0 ||
            t->keyslot < 0 || t->keyslot >= LUKS2_KEYSLOTS_MAX || !key_source_to_string(t->key_source) ||
            !escrow_state_to_string(t->escrow) || !rotation_step_to_string(t->rotation) ||
            (t->pcr_mask & ~TPM2_PCRS_MASK) || isempty(t->pcr_source))
                return -EINVAL;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        /* Our own token: underscores in names, as systemd settled on for new fields. keyslots is required by
         * LUKS2 for every token; ours is not tied to a keyslot. */
        if ((r = json_add(o, "type", json_object_new_string(LUKS2_TOKEN_EVE))) < 0 ||
            (r = json_add(o, "keyslots", json_keyslots(-1))) < 0 ||
            (r = json_add(o, "eve_version", json_object_new_int(1))) < 0 ||
            (r = json_add(o, "name", json_object_new_string(t->name))) < 0 ||
            (r = json_add(o, "uuid", json_object_new_string(t->uuid))) < 0 ||
            (r = json_add(o, "generation", json_object_new_int64((int64_t) t->generation))) < 0 ||
            (r = json_add(o, "key_source", json_object_new_string(key_source_to_string(t->key_source)))) < 0 ||
            (r = json_add(o, "keyslot", json_object_new_int(t->keyslot))) < 0 ||
            (r = json_add(o, "pcrs", json_pcr_array(t->pcr_mask))) < 0 ||
            (r = json_add(o, "pcr_source", json_object_new_string(t->pcr_source))) < 0 ||
            (r = json_add(o, "escrow", json_object_new_string(escrow_state_to_string(t->escrow)))) < 0)
                return r;
        if (t->has_filesystem && (r = json_add(o, "filesystem", json_object_new_string("ext4"))) < 0)
                return r;
        if (t->has_recovery) {
                if (t->recovery_keyslot < 0 || t->recovery_keyslot >= LUKS2_KEYSLOTS_MAX ||
                    t->recovery_keyslot == t->keyslot)
                        return -EINVAL;
                if ((r = json_add(o, "recovery_keyslot", json_object_new_int(t->recovery_keyslot))) < 0)
                        return r;
        }
        if ((r = json_add_pcr_values(o, "pcr_values", t->pcr_mask, t->pcr_values)) < 0)
                return r;

        journal = json_object_new_object();
        if ((r = json_add(o, "rotation", journal)) < 0)
                return r;
        if ((r = json_add(journal, "step", json_object_new_string(rotation_step_to_string(t->rotation)))) < 0)
                return r;
        if (t->rotation == ROTATION_UNCONFIRMED) {
                if (t->old_keyslot < 0 || t->old_keyslot >= LUKS2_KEYSLOTS_MAX ||
                    t->old_keyslot == t->keyslot)
                        return -EINVAL;
                if ((r = json_add(journal, "old_keyslot", json_object_new_int(t->old_keyslot))) < 0)
                        return r;
        } else if (t->rotation != ROTATION_NONE) {
                if (t->new_generation != t->generation + 1 || !key_source_to_string(t->new_key_source) ||
                    (t->new_pcr_mask & ~TPM2_PCRS_MASK) ||
                    (t->new_pcr_mask != 0) == isempty(t->new_pcr_source))
                        return -EINVAL;
                if ((r = json_add(journal, "new_generation", json_object_new_int64((int64_t) t->new_generation))) < 0)
                        return r;
                if ((r = json_add(journal,
                                  "new_key_source",
                                  json_object_new_string(key_source_to_string(t->new_key_source)))) < 0)
                        return r;
                if (t->new_pcr_mask != 0 &&
                    ((r = json_add(journal, "new_pcrs", json_pcr_array(t->new_pcr_mask))) < 0 ||
                     (r = json_add(journal, "new_pcr_source", json_object_new_string(t->new_pcr_source))) <
                                     0))
                        return r;
                if (t->new_pcr_mask != 0 && t->rotation >= ROTATION_SEALED &&
                    (r = json_add_pcr_values(
                                     journal, "new_pcr_values", t->new_pcr_mask, t->new_pcr_values)) < 0)
                        return r;
                if (t->hold && (r = json_add(journal, "hold", json_object_new_boolean(true))) < 0)
                        return r;
                if (t->rotation >= ROTATION_SLOT_ADDED) {
                        if (t->new_keyslot < 0 || t->new_keyslot >= LUKS2_KEYSLOTS_MAX || t->new_keyslot == t->keyslot)
                                return -EINVAL;
                        if ((r = json_add(journal, "new_keyslot", json_object_new_int(t->new_keyslot))) < 0)
                                return r;
                }
        }
        return json_finish(o, ret);
}

int eve_vault_token_from_json(const char *json, EveVaultToken *ret, const char **ret_reason) {
        _cleanup_(json_object_put_nullp) json_object *o = NULL;
        EveVaultToken t = { .new_keyslot = -1, .old_keyslot = -1 };
        json_object *v, *journal;
        const char *s;
        uint64_t u;
        int r;

        if (!ret)
                return -EINVAL;
        r = json_parse_object(json, &o);
        if (r < 0)
                return REFUSE("not a JSON object");
        if (!streq_ptr(json_get_str(o, "type"), LUKS2_TOKEN_EVE))
                return REFUSE("type is not eve-vault");
        if (json_get_u64(o, "eve_version", 1, 1, &u) < 0)
                return REFUSE("eve_version missing or not 1");
        s = json_get_str(o, "name");
        if (!vault_name_is_valid(s))
                return REFUSE("name missing or not 1-64 characters of [A-Za-z0-9_-]");
        strcpy(t.name, s);
        s = json_get_str(o, "uuid");
        if (!uuid_is_valid(s))
                return REFUSE("uuid missing or not a lower-case UUID");
        strcpy(t.uuid, s);
        if (json_get_u64(o, "generation", 1, INT64_MAX - 1, &t.generation) < 0)
                return REFUSE("generation missing or not a positive integer");
        t.key_source = key_source_from_string(json_get_str(o, "key_source"));
        if (t.key_source < 0)
                return REFUSE("key_source missing or not tpm, tpm+controller or controller");
        if (json_get_u64(o, "keyslot", 0, LUKS2_KEYSLOTS_MAX - 1, &u) < 0)
                return REFUSE("keyslot missing or not 0-31");
        t.keyslot = (int) u;
        if (!json_object_object_get_ex(o, "pcrs", &v) || json_get_pcrs(v, &t.pcr_mask) < 0)
                return REFUSE("pcrs missing or not a list of distinct PCR numbers 0-23");
        s = json_get_str(o, "pcr_source");
        if (isempty(s) || strlen(s) >= sizeof(t.pcr_source))
                return REFUSE("pcr_source missing or too long");
        strcpy(t.pcr_source, s);
        t.escrow = escrow_state_from_string(json_get_str(o, "escrow"));
        if (t.escrow < 0)
                return REFUSE("escrow missing or not none, pending or confirmed");
        if (json_object_object_get_ex(o, "filesystem", &v)) {
                if (!streq_ptr(json_object_get_string(v), "ext4") ||
                    !json_object_is_type(v, json_type_string))
                        return REFUSE("filesystem is not ext4");
                t.has_filesystem = true;
        }
        if (json_object_object_get_ex(o, "recovery_keyslot", NULL)) {
                if (json_get_u64(o, "recovery_keyslot", 0, LUKS2_KEYSLOTS_MAX - 1, &u) < 0 ||
                    (int) u == t.keyslot)
                        return REFUSE("recovery_keyslot out of range or equal to keyslot");
                t.has_recovery = true;
                t.recovery_keyslot = (int) u;
        }

        if (!json_object_object_get_ex(o, "pcr_values", &v) || !json_object_is_type(v, json_type_object))
                return REFUSE("pcr_values missing");
        if (json_get_pcr_values(o, "pcr_values", t.pcr_mask, t.pcr_values) < 0)
                return REFUSE("pcr_values must map exactly the sealing PCRs to 32 bytes of hex each");

        if (!json_object_object_get_ex(o, "rotation", &journal) || !json_object_is_type(journal, json_type_object))
                return REFUSE("rotation journal missing");
        t.rotation = rotation_step_from_string(json_get_str(journal, "step"));
        if (t.rotation < 0)
                return REFUSE("rotation step unknown");
        t.new_key_source = t.key_source;
        if (t.rotation == ROTATION_UNCONFIRMED) {
                if (json_get_u64(journal, "old_keyslot", 0, LUKS2_KEYSLOTS_MAX - 1, &u) < 0 ||
                    (int) u == t.keyslot)
                        return REFUSE("rotation old_keyslot missing, out of range or equal to keyslot");
                t.old_keyslot = (int) u;
        } else if (t.rotation != ROTATION_NONE) {
                if (json_get_u64(journal, "new_generation", 2, INT64_MAX, &t.new_generation) < 0 ||
                    t.new_generation != t.generation + 1)
                        return REFUSE("rotation new_generation must be generation + 1");
                if (json_object_object_get_ex(journal, "new_key_source", &v)) {
                        t.new_key_source = key_source_from_string(json_object_get_string(v));
                        if (t.new_key_source < 0 || !json_object_is_type(v, json_type_string))
                                return REFUSE("rotation new_key_source not tpm, tpm+controller or "
                                              "controller");
                }
                if (json_object_object_get_ex(journal, "new_pcrs", &v)) {
                        if (json_get_pcrs(v, &t.new_pcr_mask) < 0 || t.new_pcr_mask == 0)
                                return REFUSE("rotation new_pcrs not a non-empty list of distinct PCRs "
                                              "0-23");
                        s = json_get_str(journal, "new_pcr_source");
                        if (isempty(s) || strlen(s) >= sizeof(t.new_pcr_source))
                                return REFUSE("rotation new_pcr_source missing or too long");
                        strcpy(t.new_pcr_source, s);
                        if (t.rotation >= ROTATION_SEALED &&
                            json_get_pcr_values(
                                            journal, "new_pcr_values", t.new_pcr_mask, t.new_pcr_values) < 0)
                                return REFUSE("rotation new_pcr_values must map exactly new_pcrs to 32 "
                                              "bytes each");
                } else if (json_object_object_get_ex(journal, "new_pcr_source", NULL))
                        return REFUSE("rotation new_pcr_source without new_pcrs");
                if (json_object_object_get_ex(journal, "hold", &v)) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return REFUSE("rotation hold is not a boolean");
                        t.hold = json_object_get_boolean(v);
                }
        }
        if (t.rotation >= ROTATION_SLOT_ADDED && t.rotation != ROTATION_UNCONFIRMED) {
                if (json_get_u64(journal, "new_keyslot", 0, LUKS2_KEYSLOTS_MAX - 1, &u) < 0 || (int) u == t.keyslot)
                        return REFUSE("rotation new_keyslot missing, out of range or equal to keyslot");
                t.new_keyslot = (int) u;
        }

        *ret = t;
        if (ret_reason)
                *ret_reason = NULL;
        return 0;
}
