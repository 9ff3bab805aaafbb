/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vault-worker: one LUKS/TPM operation on one vault, then exit (systemd-homed's homework pattern).
 * eve-vaultd forks and execs it per request, so the bus-facing daemon never holds key material. No plaintext
 * secret crosses the boundary in either direction but the administrator's recovery key (made here, printed
 * once for the caller; or read from --keys-fd to unlock): the worker makes and consumes secrets itself; what
 * it reads and prints (tokens, PCRs, escrow blobs wrapped by this TPM) is not secret. The result is one JSON
 * object on stdout (after add-recovery, preceded by one line "recovery-key KEY").
 *
 *   eve-vault-worker create  --image PATH --name NAME [--size BYTES] [--pcrs LIST] [--pcr-source SRC]
 *                            [--key-source tpm|tpm+controller|controller] [--uuid UUID]
 *   eve-vault-worker unlock  --image PATH [--map NAME [--mount DIR]] [--escrow-file PATH] [--escrow-always]
 *   eve-vault-worker unlock  --image PATH [--map NAME [--mount DIR]] --image PATH [--map … [--mount …]] …
 *                            [--escrow-always]
 *   eve-vault-worker rotate  --image PATH [--key-source SRC] [--pcrs LIST] [--pcr-source SRC] [--hold]
 *   eve-vault-worker confirm --image PATH --generation N
 *   eve-vault-worker lock    --image PATH --map NAME [--mount DIR]
 *   eve-vault-worker erase   --image PATH [--map NAME] [--mount DIR]
 *   eve-vault-worker inspect --image PATH [--map NAME] [--mount DIR]
 *   eve-vault-worker add-recovery --image PATH
 * Common: --keys-fd FD: key material the controller released, read from that fd (a pipe or memfd, never argv
 * or the environment): a JSON object {"escrow": base64 AttestVolumeKeyData, "share": base64
 * EveControllerShare, "recovery": the administrator's recovery key}, all optional. --progress-fd FD: lines
 * "PHASE DONE TOTAL" while it works (allocate, format, mkfs).
 *
 * Several --image (each followed by its own --map and --mount) make one unlock of several vaults: a boot's
 * vaults with one process start and one TPM context (docs/VAULTS.md "Unlock at start"). Each vault is
 * unlocked as by itself, one after the other in the order given, and its result printed (one JSON line, with
 * "image") as soon as it is done, so a vault that stays locked (moved PCRs, a refused token) has no effect
 * on the others, and a worker killed mid-way leaves the vaults already reported as they are. The progress fd
 * gets "batch I N" when vault I (from 0) of N starts. No key material in a batch (--keys-fd and
 * --escrow-file take one vault's keys). */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libcryptsetup.h>
#include <sys/stat.h>

#include "encoding.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "paths.h"
#include "vault-core.h"
#include "vault-escrow.h"

/* One vault of the command line: --image, and the --map and --mount that follow it. */
typedef struct VaultArg {
        const char *image;
        const char *map;
        const char *mount;
} VaultArg;

#define WORKER_BATCH_MAX 64U

static VaultArg arg_vaults[WORKER_BATCH_MAX];
static size_t arg_n_vaults = 0; /* the --image options seen */
static const char *arg_image = NULL;
static const char *arg_name = NULL;
static const char *arg_map = NULL;
static const char *arg_mount = NULL;
static const char *arg_escrow_file = NULL;
static const char *arg_pcr_source = NULL;
static const char *arg_uuid = NULL;
static uint64_t arg_size = UINT64_C(64) << 20;
static uint64_t arg_generation = 0;
static uint32_t arg_pcrs = 0;
static KeySource arg_key_source = _KEY_SOURCE_INVALID;
static int arg_keys_fd = -EBADF;
static int arg_progress_fd = -EBADF;
static bool arg_hold = false;
static bool arg_escrow_always = false;

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int read_small_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = NULL;
        ssize_t n;

        if (fd < 0)
                return -errno;
        buf = malloc(ESCROW_BLOB_MAX + 1);
        if (!buf)
                return -ENOMEM;
        n = read(fd, buf, ESCROW_BLOB_MAX + 1);
        if (n < 0)
                return -errno;
        if (n > (ssize_t) ESCROW_BLOB_MAX)
                return -E2BIG;
        *ret = TAKE_PTR(buf);
        *ret_size = (size_t) n;
        return 0;
}

static int parse_fd(const char *s, int *ret) {
        uint64_t v;

        if (parse_u64(s, &v) < 0 || v < 3 || v > INT32_MAX)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* The keys JSON from --keys-fd: {"escrow": b64, "share": b64}. */
static int
                read_keys(int fd,
                          uint8_t **ret_escrow,
                          size_t *ret_escrow_size,
                          uint8_t **ret_share,
                          size_t *ret_share_size,
                          char **ret_recovery) {
        _cleanup_(erase_and_freep) char *buf = NULL;
        json_object *o, *v;
        size_t n = 0;
        int r = 0;

        buf = malloc(16384 + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, 16384 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n == 16384)
                        return -E2BIG;
        }
        buf[n] = '\0';
        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        if (json_object_object_get_ex(o, "escrow", &v)) {
                const char *b = json_object_get_string(v);
                r = b ? base64_decode(b, strlen(b), false, ret_escrow, ret_escrow_size) : -EBADMSG;
        }
        if (r >= 0 && json_object_object_get_ex(o, "share", &v)) {
                const char *b = json_object_get_string(v);
                r = b ? base64_decode(b, strlen(b), false, ret_share, ret_share_size) : -EBADMSG;
        }
        if (r >= 0 && json_object_object_get_ex(o, "recovery", &v) &&
            json_object_is_type(v, json_type_string)) {
                char *k = (char *) json_object_get_string(v);

                r = vault_recovery_key_normalize(k, ret_recovery);
                erase(k, strlen(k)); /* json-c's copy: freed below without wiping */
        } else if (r >= 0 && json_object_object_get_ex(o, "recovery", NULL))
                r = -EBADMSG;
        json_object_put(o);
        return r;
}

static void on_progress(const char *phase, uint64_t done, uint64_t total, void *userdata) {
        if (arg_progress_fd >= 0)
                (void) dprintf(arg_progress_fd, "%s %" PRIu64 " %" PRIu64 "\n", phase, done, total);
}

static json_object *pcr_array(uint32_t mask) {
        json_object *a = json_object_new_array();

        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (mask & (UINT32_C(1) << i))
                        json_object_array_add(a, json_object_new_int((int) i));
        return a;
}

/* image: named in the result (an unlock of several vaults), or NULL. */
static int print_result(int op_r, const char *image, const VaultResult *res) {
        json_object *o = json_object_new_object();
        const EveVaultToken *t = &res->token;

        if (!o)
                return log_oom();
        if (image)
                json_object_object_add(o, "image", json_object_new_string(image));
        json_object_object_add(o, "ok", json_object_new_boolean(op_r >= 0));
        if (op_r < 0)
                json_object_object_add(o, "errno", json_object_new_int(-op_r));
        if (t->name[0]) {
                json_object_object_add(o, "name", json_object_new_string(t->name));
                json_object_object_add(o, "uuid", json_object_new_string(t->uuid));
                json_object_object_add(o, "generation", json_object_new_int64((int64_t) t->generation));
                json_object_object_add(o, "keyslot", json_object_new_int(t->keyslot));
                json_object_object_add(o, "key_source", json_object_new_string(key_source_to_string(t->key_source)));
                json_object_object_add(o, "pcrs", pcr_array(t->pcr_mask));
                json_object_object_add(o, "pcr_source", json_object_new_string(t->pcr_source));
                json_object_object_add(o, "escrow", json_object_new_string(escrow_state_to_string(t->escrow)));
                json_object_object_add(o, "rotation", json_object_new_string(rotation_step_to_string(t->rotation)));
                if (t->rotation == ROTATION_REQUESTED) {
                        json_object_object_add(
                                        o,
                                        "requested_key_source",
                                        json_object_new_string(key_source_to_string(t->new_key_source)));
                        json_object_object_add(
                                        o, "requested_pcrs", pcr_array(t->new_pcr_mask ?: t->pcr_mask));
                }
                if (t->rotation == ROTATION_UNCONFIRMED)
                        json_object_object_add(o, "old_keyslot", json_object_new_int(t->old_keyslot));
                json_object_object_add(o, "filesystem", json_object_new_boolean(t->has_filesystem));
                json_object_object_add(o, "has_recovery_key", json_object_new_boolean(t->has_recovery));
        }
        if (res->error)
                json_object_object_add(o, "error", json_object_new_string(res->error));
        json_object_object_add(o, "mounted", json_object_new_boolean(res->mounted));
        if (res->mount_delegated)
                json_object_object_add(o, "mount_delegated", json_object_new_boolean(true));
        if (res->made_filesystem)
                json_object_object_add(o, "made_filesystem", json_object_new_boolean(true));
        if (res->requested)
                json_object_object_add(o, "requested", json_object_new_boolean(true));
        json_object_object_add(o, "key_method", json_object_new_string(unlock_method_to_string(res->key_method)));
        json_object_object_add(o, "activated", json_object_new_boolean(res->activated));
        json_object_object_add(o, "moved_pcrs", pcr_array(res->moved_pcrs));
        json_object_object_add(o, "keyslots", json_object_new_int(__builtin_popcount(res->keyslots)));
        json_object_object_add(o, "recovered", json_object_new_string(rotation_step_to_string(res->recovered)));
        if (res->recovered != ROTATION_NONE)
                json_object_object_add(o, "rolled_forward", json_object_new_boolean(res->rolled_forward));
        if (res->escrow_blob) {
                _cleanup_free_ char *b = base64_encode(res->escrow_blob, res->escrow_blob_size);
                if (!b)
                        return log_oom();
                json_object_object_add(o, "escrow_blob", json_object_new_string(b));
                json_object_object_add(
                                o,
                                "escrow_generation",
                                json_object_new_int64((int64_t) res->escrow_generation));
        }
        if (res->reason)
                json_object_object_add(o, "reason", json_object_new_string(res->reason));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

/* The one line before the result that carries the new recovery key: written from secret memory, past stdio's
 * buffers. */
static int print_recovery_key(const char *key) {
        static const char prefix[] = "recovery-key ";
        _cleanup_secret_ char *line = eve_secret_alloc(sizeof(prefix) + VAULT_RECOVERY_KEY_LEN + 1);
        size_t n, off = 0;

        if (!line)
                return -ENOMEM;
        n = (size_t) snprintf(line, sizeof(prefix) + VAULT_RECOVERY_KEY_LEN + 1, "%s%s\n", prefix, key);
        while (off < n) {
                ssize_t k = write(STDOUT_FILENO, line + off, n - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                off += (size_t) k;
        }
        return 0;
}

static int help(void) {
        printf("%s create|unlock|rotate|confirm|lock|erase|inspect|add-recovery --image PATH [--name NAME] "
               "[--size "
               "BYTES]\n"
               "        [--pcrs LIST] [--pcr-source SRC] [--key-source SRC] [--uuid UUID] [--map NAME]\n"
               "        [--mount DIR] [--escrow-file PATH] [--keys-fd FD] [--progress-fd FD] [--hold]\n"
               "        [--escrow-always] [--generation N]\n"
               "One LUKS2/TPM operation on one vault, its result as JSON on stdout (unlock: several --image\n"
               "make one unlock of each vault, one JSON line each). Run by eve-vaultd.\n",
               program_invocation_short_name);
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_PCR_SOURCE = 0x100,
                ARG_KEY_SOURCE,
                ARG_UUID,
                ARG_MOUNT,
                ARG_KEYS_FD,
                ARG_PROGRESS_FD,
                ARG_HOLD,
                ARG_ESCROW_ALWAYS,
                ARG_GENERATION,
        };
        static const struct option options[] = { { "help", no_argument, NULL, 'h' },
                                                 { "image", required_argument, NULL, 'i' },
                                                 { "name", required_argument, NULL, 'n' },
                                                 { "size", required_argument, NULL, 's' },
                                                 { "pcrs", required_argument, NULL, 'p' },
                                                 { "pcr-source", required_argument, NULL, ARG_PCR_SOURCE },
                                                 { "key-source", required_argument, NULL, ARG_KEY_SOURCE },
                                                 { "uuid", required_argument, NULL, ARG_UUID },
                                                 { "map", required_argument, NULL, 'm' },
                                                 { "mount", required_argument, NULL, ARG_MOUNT },
                                                 { "escrow-file", required_argument, NULL, 'e' },
                                                 { "keys-fd", required_argument, NULL, ARG_KEYS_FD },
                                                 { "progress-fd", required_argument, NULL, ARG_PROGRESS_FD },
                                                 { "hold", no_argument, NULL, ARG_HOLD },
                                                 { "escrow-always", no_argument, NULL, ARG_ESCROW_ALWAYS },
                                                 { "generation", required_argument, NULL, ARG_GENERATION },
                                                 {} };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        return help();
                case 'i':
                        if (arg_n_vaults == WORKER_BATCH_MAX)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(E2BIG),
                                                "At most %u vaults in one run.",
                                                WORKER_BATCH_MAX);
                        arg_vaults[arg_n_vaults++].image = optarg;
                        break;
                case 'n':
                        arg_name = optarg;
                        break;
                case 's':
                        r = parse_u64(optarg, &arg_size);
                        if (r < 0)
                                return log_error_errno(r, "Invalid --size: %s", optarg);
                        break;
                case 'p':
                        r = tpm2_pcr_mask_from_string(optarg, &arg_pcrs);
                        if (r >= 0 && arg_pcrs == 0)
                                r = -EINVAL;
                        if (r < 0)
                                return log_error_errno(r, "Invalid --pcrs: %s", optarg);
                        break;
                case ARG_PCR_SOURCE:
                        arg_pcr_source = optarg;
                        break;
                case ARG_KEY_SOURCE:
                        arg_key_source = key_source_from_string(optarg);
                        if (arg_key_source < 0)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL),
                                                "Invalid --key-source: %s (tpm, tpm+controller, controller)",
                                                optarg);
                        break;
                case ARG_UUID:
                        arg_uuid = optarg;
                        break;
                case 'm':
                case ARG_MOUNT: {
                        /* For the vault of the last --image (the first one when none came yet). */
                        VaultArg *a = &arg_vaults[arg_n_vaults > 0 ? arg_n_vaults - 1 : 0];
                        const char **p = c == 'm' ? &a->map : &a->mount;

                        if (*p)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL),
                                                "--%s given twice for one --image.",
                                                c == 'm' ? "map" : "mount");
                        *p = optarg;
                        break;
                }
                case 'e':
                        arg_escrow_file = optarg;
                        break;
                case ARG_KEYS_FD:
                        if (parse_fd(optarg, &arg_keys_fd) < 0)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL), "Invalid --keys-fd: %s", optarg);
                        break;
                case ARG_PROGRESS_FD:
                        if (parse_fd(optarg, &arg_progress_fd) < 0)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL),
                                                "Invalid --progress-fd: %s",
                                                optarg);
                        break;
                case ARG_HOLD:
                        arg_hold = true;
                        break;
                case ARG_ESCROW_ALWAYS:
                        arg_escrow_always = true;
                        break;
                case ARG_GENERATION:
                        r = parse_u64(optarg, &arg_generation);
                        if (r < 0 || arg_generation == 0)
                                return log_error_errno(
                                                SYNTHETIC_ERRNO(EINVAL), "Invalid --generation: %s", optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind + 1 != argc || arg_n_vaults == 0)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Expected one operation and --image.");
        for (size_t i = 0; i < arg_n_vaults; i++)
                if (arg_vaults[i].mount && !arg_vaults[i].map)
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "--mount needs --map.");
        if (arg_n_vaults > 1 && !streq(argv[optind], "unlock"))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL), "Only unlock takes several --image.");
        if (arg_n_vaults > 1 && (arg_keys_fd >= 0 || arg_escrow_file))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL),
                                "--keys-fd and --escrow-file carry one vault's keys: one --image only.");
        arg_image = arg_vaults[0].image;
        arg_map = arg_vaults[0].map;
        arg_mount = arg_vaults[0].mount;
        return 1;
}

/* Joins the vault's activation and prints its result; false when the result could not be written. */
static bool batch_report(size_t i, int r, VaultResult *res, int *ret) {
        int q = vault_activation_join(res);

        if (r >= 0 && q < 0)
                r = q;
        if (r < 0 && !res->error)
                res->error = VAULT_ERROR_FAILED;
        if (r < 0)
                *ret = 1;
        return print_result(r, arg_vaults[i].image, res) >= 0;
}

/* unlock with several --image: each vault as by itself, its result printed once it and its mapping are
 * done. A vault that stays locked or fails does not stop the others; the exit status says whether every one
 * ran. */
static int unlock_batch(Tpm2Context *c, const VaultRequest *tmpl) {
        VaultResult res[2] = { { .token.new_keyslot = -1, .token.old_keyslot = -1 },
                               { .token.new_keyslot = -1, .token.old_keyslot = -1 } };
        int rs[2] = {}, ret = 0;
        bool ok = true;

        /* Vault i's mapping runs in a child while vault i+1's key is obtained; vault i's result is printed
         * then, so the lines keep the order of the command line. */
        for (size_t i = 0; ok && i < arg_n_vaults; i++) {
                VaultResult *cur = &res[i % 2];
                VaultRequest req = *tmpl;

                if (arg_progress_fd >= 0)
                        (void) dprintf(arg_progress_fd, "batch %zu %zu\n", i, arg_n_vaults);
                req.map_name = arg_vaults[i].map;
                req.mount_point = arg_vaults[i].mount;
                req.activate_async = true;
                rs[i % 2] = vault_unlock(c, arg_vaults[i].image, &req, cur);
                if (i > 0) {
                        VaultResult *prev = &res[(i - 1) % 2];

                        ok = batch_report(i - 1, rs[(i - 1) % 2], prev, &ret);
                        vault_result_done(prev);
                        *prev = (VaultResult){ .token.new_keyslot = -1, .token.old_keyslot = -1 };
                        /* tests: killed with vaults reported, one under way (its mapping's child dies with
                         * this process) and more to come */
                        vault_crash_point("batch-next");
                }
                if (ok && i + 1 == arg_n_vaults)
                        ok = batch_report(i, rs[i % 2], cur, &ret);
        }
        vault_result_done(&res[0]);
        vault_result_done(&res[1]);
        if (!ok)
                return log_error_errno(SYNTHETIC_ERRNO(EIO), "Cannot write the results.");
        return ret;
}

/* No TPM: every vault of the run says so. */
static void print_no_tpm(int r) {
        for (size_t i = 0; i < arg_n_vaults; i++) {
                _cleanup_(vault_result_done) VaultResult res = { .token.new_keyslot = -1,
                                                                  .token.old_keyslot = -1 };

                res.reason = strdup("no TPM available");
                res.error = VAULT_ERROR_NO_TPM;
                (void) print_result(r, arg_n_vaults > 1 ? arg_vaults[i].image : NULL, &res);
        }
}

static int run(int argc, char *argv[]) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_(vault_result_done) VaultResult res = { .token.new_keyslot = -1, .token.old_keyslot = -1 };
        _cleanup_free_ uint8_t *escrow = NULL, *share = NULL;
        _cleanup_secret_ char *recovery = NULL, *recovery_key = NULL;
        VaultRequest req = VAULT_REQUEST_INIT;
        const char *op;
        int r;

        (void) eve_harden_process();
        /* The worker reads and writes its tokens itself and never activates by token: libcryptsetup need not
         * load systemd's token plugin (and libsystemd-shared with it) whenever a token is read, ~100 ms of
         * every unlock under TCG (docs/PERFORMANCE.md). */
        crypt_token_external_disable();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        op = argv[optind];

        req.map_name = arg_map;
        req.mount_point = arg_mount;
        req.key_source = arg_key_source;
        req.pcr_mask = arg_pcrs;
        req.pcr_source = arg_pcr_source;
        req.uuid = arg_uuid;
        req.hold = arg_hold;
        req.escrow_always = arg_escrow_always;
        req.progress = on_progress;
        if (arg_keys_fd >= 0) {
                r = read_keys(arg_keys_fd,
                              &escrow,
                              &req.keys.escrow_size,
                              &share,
                              &req.keys.share_size,
                              &recovery);
                safe_close(arg_keys_fd);
                if (r < 0)
                        return log_error_errno(r, "Cannot read the keys from --keys-fd: %m");
        } else if (arg_escrow_file) {
                r = read_small_file(arg_escrow_file, &escrow, &req.keys.escrow_size);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", arg_escrow_file);
        }
        req.keys.escrow = escrow;
        req.keys.share = share;
        req.keys.recovery = recovery;

        /* Operations that need no TPM. */
        if (streq(op, "inspect"))
                r = vault_inspect(arg_image, arg_map, arg_mount, &res);
        else if (streq(op, "confirm")) {
                if (arg_generation == 0)
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "confirm needs --generation.");
                r = vault_confirm(arg_image, arg_generation, &res);
        } else if (streq(op, "lock")) {
                if (!arg_map)
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "lock needs --map.");
                r = vault_lock(arg_image, arg_map, arg_mount, &res);
        } else if (streq(op, "erase"))
                r = vault_erase(arg_image, arg_map, arg_mount, &res);
        else if (!streq(op, "create") && !streq(op, "unlock") && !streq(op, "rotate") &&
                 !streq(op, "add-recovery"))
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Unknown operation %s.", op);
        else {
                r = tpm2_context_new(NULL, &c);
                if (r < 0) {
                        print_no_tpm(r);
                        return 1;
                }
                if (arg_n_vaults > 1) {
                        /* Each vault's escrow wrap is a ZGen with the same two keys: the ECDH key's handle
                         * and its salted session are made once for the batch (1 TPM command a vault after
                         * the first, instead of 4), flushed when the context closes. */
                        tpm2_context_keep_ecdh_session(c, true);
                        return unlock_batch(c, &req);
                }
                if (streq(op, "create")) {
                        if (!arg_name)
                                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "create needs --name.");
                        r = vault_create(c, arg_image, arg_name, arg_size, &req, &res);
                } else if (streq(op, "unlock")) {
                        int q;

                        req.activate_async = true; /* the mapping beside an escrow wrap */
                        r = vault_unlock(c, arg_image, &req, &res);
                        q = vault_activation_join(&res);
                        if (r >= 0 && q < 0)
                                r = q;
                } else if (streq(op, "add-recovery"))
                        r = vault_add_recovery(c, arg_image, &req, &recovery_key, &res);
                else
                        r = vault_rotate(c, arg_image, &req, &res);
        }

        if (r < 0 && !res.error)
                res.error = VAULT_ERROR_FAILED;
        if (recovery_key)
                (void) print_recovery_key(recovery_key);
        (void) print_result(r, NULL, &res);
        return r < 0 ? 1 : 0;
}

EVE_DEFINE_MAIN(run);
