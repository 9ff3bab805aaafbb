/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vault-worker: one LUKS/TPM operation on one vault, then exit (systemd-homed's homework pattern). eve-vaultd
 * forks and execs it per request, so the bus-facing daemon never holds key material. No plaintext secret
 * crosses the boundary in either direction: the worker makes and consumes secrets itself; what it reads and
 * prints (tokens, PCRs, escrow blobs wrapped by this TPM) is not secret. The result is one JSON object on
 * stdout.
 *
 *   eve-vault-worker create  --image PATH --name NAME [--size BYTES] [--pcrs LIST] [--pcr-source SRC]
 *   eve-vault-worker unlock  --image PATH [--map NAME] [--escrow-file PATH]
 *   eve-vault-worker rotate  --image PATH
 *   eve-vault-worker inspect --image PATH
 */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <sys/stat.h>

#include "encoding.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "paths.h"
#include "vault-core.h"
#include "vault-escrow.h"

static const char *arg_image = NULL;
static const char *arg_name = NULL;
static const char *arg_map = NULL;
static const char *arg_escrow_file = NULL;
static const char *arg_pcr_source = "default";
static uint64_t arg_size = UINT64_C(64) << 20;
static uint32_t arg_pcrs = VAULT_DEFAULT_PCRS;

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

static json_object *pcr_array(uint32_t mask) {
        json_object *a = json_object_new_array();

        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (mask & (UINT32_C(1) << i))
                        json_object_array_add(a, json_object_new_int((int) i));
        return a;
}

static int print_result(int op_r, const VaultResult *res) {
        json_object *o = json_object_new_object();
        const EveVaultToken *t = &res->token;

        if (!o)
                return log_oom();
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
        }
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
        }
        if (res->reason)
                json_object_object_add(o, "reason", json_object_new_string(res->reason));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

static int help(void) {
        printf("%s create|unlock|rotate|inspect --image PATH [--name NAME] [--size BYTES] [--pcrs LIST]\n"
               "        [--pcr-source SRC] [--map NAME] [--escrow-file PATH]\n"
               "One LUKS2/TPM operation on one vault; the result as JSON on stdout. Run by eve-vaultd.\n",
               program_invocation_short_name);
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "image", required_argument, NULL, 'i' },
                { "name", required_argument, NULL, 'n' },
                { "size", required_argument, NULL, 's' },
                { "pcrs", required_argument, NULL, 'p' },
                { "pcr-source", required_argument, NULL, 'S' },
                { "map", required_argument, NULL, 'm' },
                { "escrow-file", required_argument, NULL, 'e' },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        return help();
                case 'i':
                        arg_image = optarg;
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
                        if (r < 0)
                                return log_error_errno(r, "Invalid --pcrs: %s", optarg);
                        break;
                case 'S':
                        arg_pcr_source = optarg;
                        break;
                case 'm':
                        arg_map = optarg;
                        break;
                case 'e':
                        arg_escrow_file = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind + 1 != argc || !arg_image)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Expected one operation and --image.");
        return 1;
}

static int run(int argc, char *argv[]) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_(vault_result_done) VaultResult res = { .token.new_keyslot = -1 };
        _cleanup_free_ uint8_t *escrow = NULL;
        size_t escrow_size = 0;
        const char *op;
        int r;

        (void) eve_harden_process();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        op = argv[optind];

        if (streq(op, "inspect")) {
                r = vault_inspect(arg_image, &res);
                (void) print_result(r, &res);
                return r < 0 ? 1 : 0;
        }

        r = tpm2_context_new(NULL, &c);
        if (r < 0) {
                res.reason = strdup("no TPM available");
                (void) print_result(r, &res);
                return 1;
        }
        if (streq(op, "create")) {
                if (!arg_name)
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "create needs --name.");
                r = vault_create(c, arg_image, arg_name, arg_size, arg_pcrs, arg_pcr_source, &res);
        } else if (streq(op, "unlock")) {
                if (arg_escrow_file) {
                        r = read_small_file(arg_escrow_file, &escrow, &escrow_size);
                        if (r < 0)
                                return log_error_errno(r, "Cannot read %s: %m", arg_escrow_file);
                }
                r = vault_unlock(c, arg_image, arg_map, escrow, escrow_size, &res);
        } else if (streq(op, "rotate"))
                r = vault_rotate(c, arg_image, &res);
        else
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Unknown operation %s.", op);

        (void) print_result(r, &res);
        return r < 0 ? 1 : 0;
}

EVE_DEFINE_MAIN(run);
