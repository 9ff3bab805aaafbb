/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-swtpm.h: a private swtpm for a benchmark (unix sockets, as facts/test-infra.md has it), started as a
 * direct child and stopped by the benchmark itself. */
#pragma once

#include <sys/types.h>

typedef struct BenchSwtpm {
        pid_t pid;
        char dir[64];
        char *tcti; /* "swtpm:path=…" for tpm2_context_new() */
} BenchSwtpm;

/* Starts swtpm on a fresh state directory under /tmp (prefix names it) and waits for its socket. */
int bench_swtpm_start(BenchSwtpm *t, const char *prefix);
/* Stops and reaps it, removes its state directory. Safe on a zeroed or half-started one. */
void bench_swtpm_stop(BenchSwtpm *t);
