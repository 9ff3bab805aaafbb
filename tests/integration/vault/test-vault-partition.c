/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vaults on partitions (docs/VAULTS.md "Partitions"): a loop device stands for the partition, as real a
 * block device as the build host has. <image dir>/<name>.img is a symlink to it. eve-vaultd makes a blank
 * partition a vault (LUKS2 on the whole device, the TPM-sealed key, the eve-vault token), never formats one
 * that holds a file system (its bytes stay as they were), and deleting the vault wipes the header and gives
 * the partition back. */
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <libcryptsetup.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "luks2-util.h"
#include "paths.h"
#include "vault-test.h"

typedef struct Loop {
        char *file;
        char *dev;
} Loop;

static int loop_teardown(void *arg) {
        Loop *l = arg;
        char *argv[] = { (char *) "losetup", (char *) "-d", l->dev, NULL };
        int r = test_run(argv, NULL);

        free(l->dev);
        free(l->file);
        free(l);
        return r == 0 ? 0 : -EBUSY;
}

/* A loop device over a fresh file of size MiB; detached at teardown. Needs root, as CI runs. */
static Loop *loop_new(const char *dir, const char *name, unsigned mib) {
        Loop *l = calloc(1, sizeof(*l));
        _cleanup_close_ int fd = -EBADF;
        char *out = NULL;

        ASSERT_NOT_NULL(l);
        ASSERT_OK(asprintf(&l->file, "%s/%s.backing", dir, name));
        fd = open(l->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(ftruncate(fd, (off_t) mib << 20));
        {
                char *argv[] = { (char *) "losetup", (char *) "-f", (char *) "--show", l->file, NULL };
                ASSERT_EQ(test_run(argv, &out), 0);
        }
        out[strcspn(out, "\n")] = '\0';
        l->dev = out;
        test_defer(loop_teardown, l);
        return l;
}

/* SHA-256 of the device's first 4 MiB (where a file system keeps its superblocks and our header would go).
 */
static void device_digest(const char *dev, uint8_t out[32]) {
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = malloc(4 << 20);

        ASSERT_TRUE(fd >= 0 && buf);
        ASSERT_EQ(pread(fd, buf, 4 << 20, 0), 4 << 20);
        ASSERT_EQ(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, 4 << 20, out), 0);
}

static bool has_luks_magic(const char *dev) {
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC);
        uint8_t magic[6] = {};

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(pread(fd, magic, sizeof(magic), 0), (ssize_t) sizeof(magic));
        return memcmp(magic, "LUKS\xba\xbe", sizeof(magic)) == 0;
}

TEST(vault_on_a_partition) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *root = test_mkdtemp("root"), *dir = NULL, *link_data = NULL, *link_busy = NULL;
        _cleanup_(luks2_crypt_freep) struct crypt_device *cd = NULL;
        uint8_t before[32], after[32];
        Loop *data, *busy;
        VaultDaemon *d;

        vt_provision(t, 0x11);
        ASSERT_OK(asprintf(&dir, "%s/persist/vault-images", root));
        {
                char *argv[] = { (char *) "mkdir", (char *) "-p", dir, NULL };
                ASSERT_EQ(test_run(argv, NULL), 0);
        }
        data = loop_new(root, "data", 40);
        busy = loop_new(root, "busy", 40);
        {
                char *argv[] = { (char *) "mkfs.ext4", (char *) "-q", (char *) "-F", busy->dev, NULL };
                ASSERT_EQ(test_run(argv, NULL), 0);
        }
        device_digest(busy->dev, before);
        ASSERT_OK(asprintf(&link_data, "%s/data.img", dir));
        ASSERT_OK(asprintf(&link_busy, "%s/busy.img", dir));
        ASSERT_OK(symlink(data->dev, link_data));
        ASSERT_OK(symlink(busy->dev, link_busy));

        test_bus_start(NULL);
        d = vt_daemon_start(t, root, NULL);

        /* The blank partition became a vault over the whole device, opened by the TPM (no device-mapper
         * here: key verified, not mapped). */
        vt_wait_str("data", "LastErrorName", VT_ERR("DeviceMapperUnavailable"));
        {
                _cleanup_free_ char *state = vt_get_str("data", "State"),
                                    *m = vt_get_str("data", "UnlockMethod"),
                                    *e = vt_get_str("data", "LastError"), *uuid = vt_get_str("data", "UUID");
                ASSERT_STREQ(state, "Locked");
                ASSERT_STREQ(m, "tpm");
                vt_assert_contains(e, "key verified");
                ASSERT_EQ(vt_get_u64("data", "Size"), 40 << 20);
                ASSERT_OK(luks2_open(data->dev, &cd));
                ASSERT_STREQ(crypt_get_uuid(cd), uuid);
                ASSERT_TRUE(crypt_get_data_offset(cd) * 512 < (UINT64_C(40) << 20));
        }

        /* The partition with a file system is not touched: no header, the same bytes, the reason shown. */
        vt_wait_str("busy", "LastErrorName", VT_ERR("VaultExists"));
        {
                _cleanup_free_ char *e = vt_get_str("busy", "LastError");
                vt_assert_contains(e, "holds data (ext4)");
        }
        device_digest(busy->dev, after);
        ASSERT_MEMEQ(before, 32, after, 32);
        ASSERT_FALSE(has_luks_magic(busy->dev));

        /* A restart finds the partition vault (no new one) and opens it again. */
        vt_daemon_restart(d, NULL);
        vt_wait_str("data", "LastErrorName", VT_ERR("DeviceMapperUnavailable"));
        {
                _cleanup_free_ char *uuid = vt_get_str("data", "UUID");
                ASSERT_STREQ(crypt_get_uuid(cd), uuid);
        }

        /* Deleting it wipes the header and removes the symlink; the device stays. */
        ASSERT_OK(vt_call(VT_MANAGER, VT_MANAGER_IFACE, "DeleteVault", NULL, NULL, "s", "data"));
        ASSERT_FALSE(has_luks_magic(data->dev));
        ASSERT_TRUE(access(link_data, F_OK) < 0 && errno == ENOENT);
        ASSERT_OK(access(data->dev, F_OK));
        {
                _cleanup_free_ char *e = vt_get_str("busy", "LastError");
                vt_assert_contains(e, "holds data");
        }
        device_digest(busy->dev, after);
        ASSERT_MEMEQ(before, 32, after, 32);
}

/* Power lost while a default vault was being allocated: its image is all zeros, no LUKS2 header. The next
 * start removes it and creates the vault again. A file with anything in it (here: random bytes where the
 * header would be) is never removed: the vault shows the error and the bytes stay. */
TEST(unfinished_image_created_again_foreign_bytes_kept) {
        Swtpm *t = test_swtpm_start(0, NULL);
        _cleanup_free_ char *root = test_mkdtemp("root"), *dir = NULL, *img = NULL, *cfg = NULL;
        uint8_t junk[65536], before[32], after[32];
        _cleanup_close_ int fd = -EBADF;

        vt_provision(t, 0x12);
        ASSERT_OK(asprintf(&dir, "%s/persist/vault-images", root));
        ASSERT_OK(eve_mkdir_p(dir, 0700));
        ASSERT_OK(asprintf(&img, "%s/image.img", dir));
        ASSERT_OK(asprintf(&cfg, "%s/config.img", dir));
        fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(ftruncate(fd, 32 << 20));
        fd = safe_close(fd);
        ASSERT_EQ(getrandom(junk, sizeof(junk), 0), (ssize_t) sizeof(junk));
        fd = open(cfg, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, junk, sizeof(junk)), (ssize_t) sizeof(junk));
        ASSERT_OK(ftruncate(fd, 32 << 20));
        fd = safe_close(fd);
        device_digest(cfg, before);

        test_bus_start(NULL);
        vt_daemon_start(t, root, NULL);
        vt_wait_str("image", "LastErrorName", VT_ERR("DeviceMapperUnavailable"));
        {
                _cleanup_free_ char *m = vt_get_str("image", "UnlockMethod");
                ASSERT_STREQ(m, "tpm");
                ASSERT_EQ(vt_get_u64("image", "KeyGeneration"), 1);
                ASSERT_TRUE(has_luks_magic(img));
        }
        {
                _cleanup_free_ char *state = vt_get_str("config", "State"),
                                    *e = vt_get_str("config", "LastError");
                ASSERT_STREQ(state, "Error");
                vt_assert_contains(e, "LUKS2");
        }
        device_digest(cfg, after);
        ASSERT_MEMEQ(before, 32, after, 32);
}

DEFINE_TEST_MAIN
