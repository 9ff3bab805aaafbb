/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "configd-store.h"

#include <fcntl.h>
#include <libgen.h>
#include <nettle/sha2.h>
#include <sys/stat.h>

#include "crypto-util.h"
#include "log.h"
#include "paths.h"

#define STORE_DIR "config"
#define STORE_FILE "last.pb"

char *store_path(const char *vault_mount) {
        char *p;

        if (vault_mount) {
                if (asprintf(&p, "%s/" STORE_DIR "/" STORE_FILE, vault_mount) < 0)
                        return NULL;
                return p;
        }
        if (asprintf(&p, "%s/config/" STORE_DIR "/" STORE_FILE, eve_path(EVE_PATH_VAULTS)) < 0)
                return NULL;
        return p;
}

static void put_le64(uint8_t *p, uint64_t v) {
        for (unsigned i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v = 0;
        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

int store_encode(const Config *c, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *payload = NULL;
        struct sha256_ctx h;
        size_t n;
        uint8_t *b;
        int r;

        r = config_pack(c, &payload, &n);
        if (r < 0)
                return r;
        if (n > CONFIG_SIZE_MAX)
                return -EFBIG;
        b = malloc(STORE_HEADER_SIZE + n);
        if (!b)
                return -ENOMEM;
        memcpy(b, STORE_MAGIC, STORE_MAGIC_SIZE);
        put_le64(b + STORE_MAGIC_SIZE, n);
        sha256_init(&h);
        sha256_update(&h, n, payload);
        sha256_digest(&h, 32, b + STORE_MAGIC_SIZE + 8);
        memcpy(b + STORE_HEADER_SIZE, payload, n);
        *ret = b;
        *ret_size = STORE_HEADER_SIZE + n;
        return 0;
}

#define CORRUPT(reason)                         \
        ({                                      \
                if (ret_reason)                 \
                        *ret_reason = (reason); \
                -EBADMSG;                       \
        })

int store_decode(const void *data, size_t size, Config **ret, const char **ret_reason) {
        const uint8_t *p = data;
        uint8_t digest[32];
        struct sha256_ctx h;
        uint64_t n;
        int r;

        if (size < STORE_HEADER_SIZE)
                return CORRUPT("shorter than its header");
        if (memcmp(p, STORE_MAGIC, STORE_MAGIC_SIZE) != 0)
                return CORRUPT("not a stored configuration (bad magic)");
        n = get_le64(p + STORE_MAGIC_SIZE);
        if (n != size - STORE_HEADER_SIZE)
                return CORRUPT("length does not match the file (truncated or extended)");
        sha256_init(&h);
        sha256_update(&h, n, p + STORE_HEADER_SIZE);
        sha256_digest(&h, sizeof digest, digest);
        if (memcmp(digest, p + STORE_MAGIC_SIZE + 8, sizeof digest) != 0)
                return CORRUPT("digest mismatch");
        r = config_parse(p + STORE_HEADER_SIZE, n, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return CORRUPT("payload is not a configuration");
        return 0;
}

static int fsync_directory_of(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_close_ int fd = -EBADF;

        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

int store_save(const char *path, const Config *c) {
        _cleanup_free_ uint8_t *b = NULL;
        _cleanup_free_ char *dir = strdup(path);
        size_t n;
        int r;

        if (!dir)
                return -ENOMEM;
        if (mkdir(dirname(dir), 0700) < 0 && errno != EEXIST)
                return -errno;
        r = store_encode(c, &b, &n);
        if (r < 0)
                return r;
        r = crypto_write_file_atomic(path, b, n, 0600);
        if (r < 0)
                return r;
        return fsync_directory_of(path);
}

int store_load(const char *path, Config **ret, const char **ret_reason) {
        _cleanup_free_ char *b = NULL;
        size_t n;
        int r;

        r = crypto_read_file(path, /* secure= */ false, &b, &n);
        if (r == -EFBIG)
                return CORRUPT("larger than 1 MiB");
        if (r < 0)
                return r;
        return store_decode(b, n, ret, ret_reason);
}
