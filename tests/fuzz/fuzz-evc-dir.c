/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-evc-dir.h"

#include <ftw.h>
#include <stdlib.h>

#include "log.h"

static char dir[] = "/dev/shm/fuzz-evc-XXXXXX";
static Evc *evc;

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void cleanup(void) {
        evc = evc_free(evc);
        (void) nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

Evc *fuzz_evc_get(void) {
        if (evc)
                return evc;
        log_set_max_level(LOG_CRIT);
        if (!mkdtemp(dir))
                abort();
        if (atexit(cleanup) != 0 || evc_init_dir(dir) < 0 || evc_load(dir, &evc) < 0)
                abort();
        return evc;
}
