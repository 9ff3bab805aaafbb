/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-main.c: replays a corpus through LLVMFuzzerTestOneInput, so that every build (gcc too) runs the fuzz
 * regressions in the "fuzz" suite. Arguments: files or directories (read non-recursively). libFuzzer builds
 * (-Dfuzz-tests=true, clang) link -fsanitize=fuzzer instead of this file. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (4u * 1024 * 1024)

static int run_file(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return log_error_errno(errno, "Failed to open %s: %m", path);
        if ((size_t) st.st_size > FUZZ_MAX_INPUT)
                return log_error_errno(SYNTHETIC_ERRNO(EFBIG), "%s is larger than %u bytes", path, FUZZ_MAX_INPUT);
        /* An exactly sized heap buffer, so ASan sees any read past the input. */
        buf = malloc(MAX((size_t) st.st_size, 1u));
        if (!buf)
                return log_oom();
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k <= 0)
                        return log_error_errno(k < 0 ? errno : EIO, "Failed to read %s: %m", path);
                n += (size_t) k;
        }
        (void) LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;

        log_set_max_level(LOG_CRIT);
        for (int i = 1; i < argc; i++) {
                _cleanup_(closedirp) DIR *d = opendir(argv[i]);
                struct dirent *de;

                if (!d) {
                        if (errno != ENOTDIR || run_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        count++;
                        continue;
                }
                while ((de = readdir(d))) {
                        _cleanup_free_ char *p = NULL;
                        if (de->d_name[0] == '.')
                                continue;
                        if (asprintf(&p, "%s/%s", argv[i], de->d_name) < 0)
                                return EXIT_FAILURE;
                        if (run_file(p) < 0)
                                return EXIT_FAILURE;
                        count++;
                }
        }
        fprintf(stderr, "%s: %u inputs replayed\n", program_invocation_short_name, count);
        if (count == 0) {
                fprintf(stderr, "%s: empty corpus: nothing was tested\n", program_invocation_short_name);
                return EXIT_FAILURE;
        }
        /* The summary line the test runner counts: one case per replayed input. */
        fprintf(stderr, "%s: %u passed, 0 failed, 0 skipped\n", program_invocation_short_name, count);
        return EXIT_SUCCESS;
}
