/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench.h: the one line every benchmark prints per measure, besides its own human output, so that bench/run
 * can collect a table from all of them: BENCH<TAB>measure<TAB>ours<TAB>anchor<TAB>ratio<TAB>goal
 * ours/anchor: value with unit ("1.92 ms", "5 commands", "-" when there is no anchor); ratio: ours/anchor as
 * a number, or "-"; goal: "<=0.5", ">=0.25", "==0", "report" (no goal, a figure to record). Machines here
 * are shared and noisy: a figure is a ratio against an anchor run beside it in the same process/run, or a
 * count. */
#pragma once

#include <math.h>
#include <stdio.h>
#include <time.h>

/* Monotonic time in milliseconds, for timing one operation. */
static inline double bench_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void bench_report(
                const char *measure, const char *ours, const char *anchor, double ratio, const char *goal) {
        if (isnan(ratio))
                printf("BENCH\t%s\t%s\t%s\t-\t%s\n", measure, ours, anchor ?: "-", goal);
        else
                printf("BENCH\t%s\t%s\t%s\t%.3f\t%s\n", measure, ours, anchor ?: "-", ratio, goal);
        fflush(stdout);
}

/* A curve: for each size after the first, the time per item against the first size's, goal "<=1.5" (growth
 * no faster than linear). what: the measure with %u for the size, e.g. "vault recovery per vault, %u vaults
 * vs 1". */
static inline void bench_report_curve(
                const char *what, const unsigned *sizes, const double *per_item_ms, size_t n) {
        for (size_t k = 1; k < n; k++) {
                char measure[128], o[32], a[32];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                (void) snprintf(measure, sizeof measure, what, sizes[k]);
#pragma GCC diagnostic pop
                (void) snprintf(o, sizeof o, "%.2f ms", per_item_ms[k]);
                (void) snprintf(a, sizeof a, "%.2f ms", per_item_ms[0]);
                bench_report(measure, o, a, per_item_ms[k] / per_item_ms[0], "<=1.5");
        }
}
