/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* killpoint.h: "kill after the Nth write" for any code, without injection points in it: fn runs in a forked
 * child traced with ptrace(2) by the test; the child is SIGKILLed the moment its Nth write-class system call
 * (write/pwrite/writev, fsync/fdatasync, rename*, unlink*, ftruncate, mkdir*, fchmod, openat with O_CREAT or
 * O_TRUNC) has returned: what a power cut or kill -9 right after that step leaves on disk. x86_64 only
 * (reads the system call number from the registers). */
#pragma once

#include <stdbool.h>

/* Runs fn(userdata) in a traced child (its exit status is fn's result), killed after its kill_at-th
 * write-class system call (1-based; 0: never). Returns how many such calls it completed (≥ 0) or -errno;
 * *ret_killed says whether the kill happened (false: fn finished first, with *ret_status its exit code). */
int killpoint_run(
                int (*fn)(void *userdata),
                void *userdata,
                unsigned kill_at,
                bool *ret_killed,
                int *ret_status);
