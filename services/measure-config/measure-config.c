/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-measure-config: measures the node's configuration directory into PCR 14 once per boot, as EVE's
 * measure-config does, so that a changed /config (controller address, root certificate, remote access…)
 * moves a sealing PCR and the vaults stay locked. For every file under the directory, sorted by path, plus
 * the files EVE always lists, one event "file:/config/<path> exist:true content-hash:<sha256 hex>"
 * (device-unique files and absent listed files: only "exist:true|false") is extended into the SHA-256 bank
 * as SHA-256(event). The events go to <status dir>/measurefs_tpm_event_log (TCG_PCR_EVENT2 records, EVE's
 * file) for whoever replays them. A marker in the run directory (/run/eve, gone at reboot) makes a second
 * run in the same boot a no-op. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto-util.h"
#include "encoding.h"
#include "log.h"
#include "main-func.h"
#include "paths.h"
#include "tpm2-util.h"

#define CONFIG_PCR 14U
/* Events name files by their path on an EVE node, wherever the directory is mounted here: the same config
 * gives the same PCR 14 on every node. */
#define CONFIG_PREFIX "/config/"
#define EVENT_LOG_NAME "measurefs_tpm_event_log"
#define MARKER_NAME "config-measured"
#define EV_EFI_ACTION UINT32_C(0x80000007)
#define TPM_ALG_SHA256 UINT16_C(0x000b)
/* Bounds on what a crafted directory can make us do. EVE's /config holds a few dozen files. */
#define FILES_MAX 4096U
#define DEPTH_MAX 16U
/* TPM2_PCR_Event takes at most 1024 bytes; EVE names a file by its base name beyond 512 bytes of path. */
#define EVENT_PATH_MAX 512U

/* Never measured by content: unique to each device (EVE's exclude list). Their presence is measured. */
static const char *const device_unique[] = {
        "tpm_credential",  "device.cert.pem", "device.key.pem", "onboard.cert.pem",
        "onboard.key.pem", "soft_serial",     "ftpm.tar.xz",
};
/* Always listed, so that their later appearance shows (EVE's "dangerous" list); measured by content when
 * present. */
static const char *const always_listed[] = {
        "bootstrap-config.pb",
        "DevicePortConfig/override.json",
        "GlobalConfig/global.json",
};

static const char *arg_tcti = NULL;
static bool arg_print = false;

typedef struct ConfigFile {
        char *path; /* relative to the config directory */
        bool exists;
} ConfigFile;

typedef struct Measurement {
        ConfigFile *files;
        size_t n_files;
        char **events; /* one per file, in order */
        uint8_t (*digests)[TPM2_SHA256_SIZE];
} Measurement;

static void measurement_done(Measurement *m) {
        for (size_t i = 0; i < m->n_files; i++) {
                free(m->files[i].path);
                if (m->events)
                        free(m->events[i]);
        }
        free(m->files);
        free(m->events);
        free(m->digests);
        *m = (Measurement){};
}

static bool is_device_unique(const char *rel) {
        for (size_t i = 0; i < ELEMENTSOF(device_unique); i++)
                if (streq(rel, device_unique[i]))
                        return true;
        return false;
}

static int add_file(Measurement *m, const char *rel, bool exists) {
        for (size_t i = 0; i < m->n_files; i++)
                if (streq(m->files[i].path, rel))
                        return 0;
        if (m->n_files >= FILES_MAX)
                return log_error_errno(
                                SYNTHETIC_ERRNO(E2BIG),
                                "%s holds more than %u files: refusing to measure it.",
                                eve_path(EVE_PATH_CONFIG),
                                FILES_MAX);
        ConfigFile *n = reallocarray(m->files, m->n_files + 1, sizeof(ConfigFile));
        if (!n)
                return log_oom();
        m->files = n;
        m->files[m->n_files].path = strdup(rel);
        if (!m->files[m->n_files].path)
                return log_oom();
        m->files[m->n_files++].exists = exists;
        return 0;
}

/* Every non-directory below dir (symbolic links included, never followed into directories), as EVE's walk.
 */
static int collect(Measurement *m, int dir_fd, const char *prefix, unsigned depth) {
        _cleanup_(closedirp) DIR *d = NULL;
        int fd, r;

        if (depth > DEPTH_MAX)
                return log_error_errno(
                                SYNTHETIC_ERRNO(ELOOP),
                                "%s%s: directories nested deeper than %u.",
                                CONFIG_PREFIX,
                                prefix,
                                DEPTH_MAX);
        fd = openat(dir_fd, isempty(prefix) ? "." : prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s/%s: %m", eve_path(EVE_PATH_CONFIG), prefix);
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                safe_close(fd);
                return log_error_errno(r, "Cannot read %s/%s: %m", eve_path(EVE_PATH_CONFIG), prefix);
        }
        for (;;) {
                _cleanup_free_ char *rel = NULL;
                struct dirent *de;
                struct stat st;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return log_error_errno(
                                                errno,
                                                "Cannot read %s/%s: %m",
                                                eve_path(EVE_PATH_CONFIG),
                                                prefix);
                        return 0;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (asprintf(&rel, "%s%s%s", prefix, isempty(prefix) ? "" : "/", de->d_name) < 0)
                        return log_oom();
                if (fstatat(dir_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return log_error_errno(errno, "Cannot stat %s%s: %m", CONFIG_PREFIX, rel);
                if (S_ISDIR(st.st_mode))
                        r = collect(m, dir_fd, rel, depth + 1);
                else
                        r = add_file(m, rel, true);
                if (r < 0)
                        return r;
        }
}

static int file_sha256(int dir_fd, const char *rel, uint8_t ret[static TPM2_SHA256_SIZE]) {
        _cleanup_close_ int fd = -EBADF;
        struct sha256_ctx ctx;
        uint8_t buf[16384];
        struct stat st;

        /* Symbolic links are followed, as EVE does; only regular files have a content (no FIFO, no device).
         */
        fd = openat(dir_fd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s%s: %m", CONFIG_PREFIX, rel);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot stat %s%s: %m", CONFIG_PREFIX, rel);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EBADFD),
                                "%s%s is not a regular file: the configuration cannot be measured.",
                                CONFIG_PREFIX,
                                rel);
        sha256_init(&ctx);
        for (;;) {
                ssize_t k = read(fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return log_error_errno(errno, "Cannot read %s%s: %m", CONFIG_PREFIX, rel);
                if (k == 0)
                        break;
                sha256_update(&ctx, (size_t) k, buf);
        }
        sha256_digest(&ctx, TPM2_SHA256_SIZE, ret);
        return 0;
}

static int compare_files(const void *a, const void *b) {
        return strcmp(((const ConfigFile *) a)->path, ((const ConfigFile *) b)->path);
}

/* Reads everything before the TPM is touched: a file that cannot be read fails the run with nothing
 * extended. */
static int measurement_build(Measurement *m) {
        _cleanup_close_ int dir_fd = -EBADF;
        int r;

        dir_fd = open(eve_path(EVE_PATH_CONFIG), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return log_error_errno(
                                errno,
                                "Cannot open the configuration directory %s: %m",
                                eve_path(EVE_PATH_CONFIG));
        r = collect(m, dir_fd, "", 0);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(device_unique); i++) {
                r = add_file(m, device_unique[i], false);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(always_listed); i++) {
                r = add_file(m, always_listed[i], false);
                if (r < 0)
                        return r;
        }
        qsort(m->files, m->n_files, sizeof(ConfigFile), compare_files);

        m->events = calloc(m->n_files, sizeof(char *));
        m->digests = calloc(m->n_files, sizeof(*m->digests));
        if (!m->events || !m->digests)
                return log_oom();
        for (size_t i = 0; i < m->n_files; i++) {
                const ConfigFile *f = &m->files[i];
                _cleanup_free_ char *name = NULL, *hex = NULL;
                uint8_t content[TPM2_SHA256_SIZE];
                struct sha256_ctx ctx;

                if (asprintf(&name, CONFIG_PREFIX "%s", f->path) < 0)
                        return log_oom();
                if (strlen(name) > EVENT_PATH_MAX) {
                        const char *base = strrchr(name, '/') + 1;
                        memmove(name, base, strlen(base) + 1);
                }
                if (f->exists && !is_device_unique(f->path)) {
                        r = file_sha256(dir_fd, f->path, content);
                        if (r < 0)
                                return r;
                        hex = hex_encode(content, sizeof content);
                        if (!hex)
                                return log_oom();
                        r = asprintf(&m->events[i], "file:%s exist:true content-hash:%s", name, hex);
                } else
                        r = asprintf(&m->events[i], "file:%s exist:%s", name, f->exists ? "true" : "false");
                if (r < 0)
                        return log_oom();
                sha256_init(&ctx);
                sha256_update(&ctx, strlen(m->events[i]), (const uint8_t *) m->events[i]);
                sha256_digest(&ctx, TPM2_SHA256_SIZE, m->digests[i]);
        }
        return 0;
}

/* The PCR value these events give, extended from start. */
static void measurement_replay(
                const Measurement *m,
                const uint8_t start[static TPM2_SHA256_SIZE],
                uint8_t ret[static TPM2_SHA256_SIZE]) {

        uint8_t pcr[TPM2_SHA256_SIZE];

        memcpy(pcr, start, sizeof pcr);
        for (size_t i = 0; i < m->n_files; i++) {
                struct sha256_ctx ctx;

                sha256_init(&ctx);
                sha256_update(&ctx, sizeof pcr, pcr);
                sha256_update(&ctx, TPM2_SHA256_SIZE, m->digests[i]);
                sha256_digest(&ctx, sizeof pcr, pcr);
        }
        memcpy(ret, pcr, sizeof pcr);
}

static void put_le32(FILE *f, uint32_t v) {
        uint8_t b[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff };
        fwrite(b, 1, sizeof b, f);
}

/* TCG_PCR_EVENT2 records (crypto-agile log format, little-endian), one SHA-256 digest each: EVE's file. */
static int write_event_log(const Measurement *m) {
        _cleanup_free_ char *path = NULL, *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t size = 0;
        int r;

        path = eve_path_join(EVE_PATH_STATUS, EVENT_LOG_NAME);
        if (!path)
                return log_oom();
        f = open_memstream(&buf, &size);
        if (!f)
                return log_oom();
        for (size_t i = 0; i < m->n_files; i++) {
                put_le32(f, CONFIG_PCR);
                put_le32(f, EV_EFI_ACTION);
                put_le32(f, 1);
                fputc(TPM_ALG_SHA256 & 0xff, f);
                fputc(TPM_ALG_SHA256 >> 8, f);
                fwrite(m->digests[i], 1, TPM2_SHA256_SIZE, f);
                put_le32(f, (uint32_t) strlen(m->events[i]));
                fputs(m->events[i], f);
        }
        if (fflush(f) != 0 || ferror(f))
                return log_oom();
        r = eve_mkdir_p(eve_path(EVE_PATH_STATUS), 0755);
        if (r < 0)
                return log_warning_errno(
                                r, "Cannot create %s, no event log written: %m", eve_path(EVE_PATH_STATUS));
        r = crypto_write_file_atomic(path, buf, size, 0644);
        if (r < 0)
                return log_warning_errno(r, "Cannot write the event log %s: %m", path);
        return 0;
}

/* The per-boot marker: created empty before the first extension (so two runs never both extend), completed
 * with the result afterwards. Returns 1 when it was taken by us, 0 when an earlier run this boot completed.
 */
static int marker_take(const char *path, int *ret_fd) {
        _cleanup_free_ char *content = NULL;
        size_t size;
        int fd, r;

        r = eve_mkdir_p(eve_path(EVE_PATH_RUN), 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", eve_path(EVE_PATH_RUN));
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0) {
                *ret_fd = fd;
                return 1;
        }
        if (errno != EEXIST)
                return log_error_errno(errno, "Cannot create the marker %s: %m", path);

        r = crypto_read_file(path, false, &content, &size);
        if (r < 0)
                return log_error_errno(r, "Cannot read the marker %s: %m", path);
        if (size == 0 || !strstr(content, "pcr14="))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EALREADY),
                                "An earlier measurement in this boot did not complete (%s is empty): PCR "
                                "14 is in an unknown state and will not match any sealing policy. "
                                "Reboot to measure the configuration again.",
                                path);
        log_info("The configuration was measured earlier in this boot (%s): not extending PCR %u again.",
                 path,
                 CONFIG_PCR);
        return 0;
}

/* After a failure with the TPM open: extend a random value, so that a failing measurement can never
 * reproduce a PCR 14 that something was sealed to (not even the value of an earlier failure). */
static void poison_pcr(Tpm2Context *c) {
        uint8_t random[TPM2_SHA256_SIZE];

        if (tpm2_get_random(c, random, sizeof random) < 0 || tpm2_pcr_extend(c, CONFIG_PCR, random) < 0)
                log_error("Could not extend PCR %u with a random value either: %s",
                          CONFIG_PCR,
                          tpm2_context_last_error(c));
        else
                log_notice("PCR %u was extended with a random value: it matches no sealing policy this "
                           "boot.",
                           CONFIG_PCR);
}

/* Extends the events and completes the marker. Called with the marker taken: any failure poisons PCR 14. */
static int extend(Tpm2Context *c, const Measurement *m, const char *marker, int marker_fd) {
        _cleanup_free_ char *hex = NULL, *line = NULL;
        uint8_t before[TPM2_PCRS_MAX][TPM2_SHA256_SIZE], after[TPM2_PCRS_MAX][TPM2_SHA256_SIZE];
        uint8_t expected[TPM2_SHA256_SIZE];
        int r;

        r = tpm2_pcr_read(c, UINT32_C(1) << CONFIG_PCR, before);
        if (r < 0) {
                log_error_errno(r, "Cannot read PCR %u: %s", CONFIG_PCR, tpm2_context_last_error(c));
                poison_pcr(c);
                return r;
        }
        for (size_t i = 0; i < m->n_files; i++) {
                r = tpm2_pcr_extend(c, CONFIG_PCR, m->digests[i]);
                if (r < 0) {
                        log_error_errno(r,
                                        "Cannot extend PCR %u (%s): %s",
                                        CONFIG_PCR,
                                        m->events[i],
                                        tpm2_context_last_error(c));
                        poison_pcr(c);
                        return r;
                }
                log_debug("%s", m->events[i]);
        }
        r = tpm2_pcr_read(c, UINT32_C(1) << CONFIG_PCR, after);
        if (r < 0)
                return log_error_errno(r, "Cannot read PCR %u: %s", CONFIG_PCR, tpm2_context_last_error(c));
        measurement_replay(m, before[CONFIG_PCR], expected);
        if (memcmp(expected, after[CONFIG_PCR], sizeof expected) != 0)
                /* Someone else extended PCR 14 meanwhile: the log no longer replays; say so, the vaults
                 * will. */
                log_warning("PCR %u does not match the replay of the events: another process extended it.",
                            CONFIG_PCR);

        hex = hex_encode(after[CONFIG_PCR], TPM2_SHA256_SIZE);
        if (!hex || asprintf(&line, "pcr14=%s\nevents=%zu\n", hex, m->n_files) < 0)
                return log_oom();
        if (write(marker_fd, line, strlen(line)) != (ssize_t) strlen(line))
                log_warning_errno(errno, "Cannot complete the marker %s: %m", marker);
        (void) write_event_log(m);
        log_info("Measured %zu configuration entries into PCR %u: %s", m->n_files, CONFIG_PCR, hex);
        return 0;
}

static int measure(void) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_(measurement_done) Measurement m = {};
        _cleanup_free_ char *marker = NULL;
        _cleanup_close_ int marker_fd = -EBADF;
        int r;

        r = tpm2_context_new(arg_tcti, &c);
        if (r == -ENOENT || r == -ENXIO) {
                log_notice_errno(
                                r,
                                "No TPM (%s): the configuration is not measured, as on EVE without a TPM.",
                                arg_tcti ?: eve_tcti());
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Cannot use the TPM (%s): %m", arg_tcti ?: eve_tcti());

        marker = eve_path_join(EVE_PATH_RUN, MARKER_NAME);
        if (!marker)
                return log_oom();
        r = marker_take(marker, &marker_fd);
        if (r <= 0)
                return r;

        /* Everything is read before the first extension. A configuration that cannot be measured
         * (unreadable, not a regular file, too large a tree) leaves a PCR 14 that matches nothing, never one
         * it had before. */
        r = measurement_build(&m);
        if (r < 0) {
                poison_pcr(c);
                return r;
        }
        return extend(c, &m, marker, marker_fd);
}

static int print_measurement(void) {
        static const uint8_t zero[TPM2_SHA256_SIZE] = {};
        _cleanup_(measurement_done) Measurement m = {};
        _cleanup_free_ char *hex = NULL;
        uint8_t pcr[TPM2_SHA256_SIZE];
        int r;

        r = measurement_build(&m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m.n_files; i++)
                printf("%s\n", m.events[i]);
        measurement_replay(&m, zero, pcr);
        hex = hex_encode(pcr, sizeof pcr);
        if (!hex)
                return log_oom();
        printf("pcr14=%s\n", hex);
        return 0;
}

static int help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Measure the configuration directory into PCR 14 (SHA-256 bank), once per boot, as EVE "
               "does:\n"
               "every file's SHA-256 except device-unique files, whose presence alone is measured.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "     --config-dir=PATH   Directory to measure (default %s)\n"
               "     --status-dir=PATH   Where the event log %s goes (default %s)\n"
               "     --run-dir=PATH      Where the per-boot marker %s goes (default %s)\n"
               "     --tcti=CONF         TPM TCTI (default %s)\n"
               "     --print             Touch no TPM: print the events and the PCR 14 value they give "
               "from\n"
               "                         zero (pcr14=HEX)\n",
               program_invocation_short_name,
               eve_path(EVE_PATH_CONFIG),
               EVENT_LOG_NAME,
               eve_path(EVE_PATH_STATUS),
               MARKER_NAME,
               eve_path(EVE_PATH_RUN),
               eve_tcti());
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CONFIG_DIR,
                ARG_STATUS_DIR,
                ARG_RUN_DIR,
                ARG_TCTI,
                ARG_PRINT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "status-dir", required_argument, NULL, ARG_STATUS_DIR },
                { "run-dir", required_argument, NULL, ARG_RUN_DIR },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "print", no_argument, NULL, ARG_PRINT },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        return help(), 0;
                case ARG_VERSION:
                        printf("eve-measure-config %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_CONFIG_DIR:
                case ARG_STATUS_DIR:
                case ARG_RUN_DIR:
                        r =
                                        eve_path_set(c == ARG_CONFIG_DIR                   ? EVE_PATH_CONFIG
                                                                     : c == ARG_STATUS_DIR ? EVE_PATH_STATUS
                                                                                           : EVE_PATH_RUN,
                                                     optarg);
                        if (r < 0)
                                return log_error_errno(r, "Bad path %s: %m", optarg);
                        break;
                case ARG_TCTI:
                        arg_tcti = optarg;
                        break;
                case ARG_PRINT:
                        arg_print = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        abort();
                }
        if (optind < argc)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "This program takes no arguments.");
        return 1;
}

static int run(int argc, char *argv[]) {
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        umask(0022);
        return arg_print ? print_measurement() : measure();
}

EVE_DEFINE_MAIN(run);
