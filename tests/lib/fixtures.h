/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fixtures.h: the real parts a test needs, each started for one test and torn down when it ends (test_defer):
 * a swtpm, a private dbus-daemon with the project's policy, a throwaway TLS CA, child processes. Every child gets
 * PR_SET_PDEATHSIG, and teardown reaps it: nothing is daemonised, nothing is left behind. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "tests.h"

/* Starts argv[0] (searched in $PATH) as a direct child with stdin from /dev/null and stdout/stderr to log_path
 * (or inherited when NULL). extra_fd, when ≥ 0, is passed to the child as that same fd number. */
pid_t test_spawn(char *const argv[], const char *log_path, int extra_fd);
/* Runs argv to completion; returns its exit status (≥ 0), or -errno. When out is non-NULL, stdout is captured
 * into a newly allocated NUL-terminated string. Output beyond 1 MiB is an error. */
int test_run(char *const argv[], char **out);
/* Sends SIGTERM, waits up to timeout_ms, then SIGKILL; always reaps. Returns 0 if it exited on SIGTERM. */
int test_stop_process(pid_t pid, unsigned timeout_ms);
/* Number of live (or zombie) children of this process: a test that ends with any is broken. */
int test_count_children(void);
/* Waits until a unix socket accepts connections (a connect() succeeds), up to timeout_ms. */
int test_wait_socket(const char *path, unsigned timeout_ms);
/* Runs fn(userdata) in a forked child with the UID/GID (and supplementary groups) of user (e.g. "nobody");
 * returns fn's int result, or -errno when the switch failed. For "unprivileged callers are denied" tests. */
int test_call_as(const char *user, int (*fn)(void *userdata), void *userdata);
/* A fresh directory under the binary's temporary directory, named after prefix. */
char *test_mkdtemp(const char *prefix);

typedef struct Swtpm {
        pid_t pid;
        char *dir;   /* state directory */
        char *sock;  /* data socket; control socket is sock + ".ctrl" */
        char *tcti;  /* "swtpm:path=<sock>" */
        bool check_transient; /* teardown fails if transient objects remain loaded (default true) */
} Swtpm;

typedef enum SwtpmFlags {
        SWTPM_WITH_EK = 1 << 0, /* state prepared by swtpm_setup: EK certificates in NV (copied from a golden state) */
} SwtpmFlags;

/* Starts a swtpm on a fresh state directory (or on state_dir, to restart one with the same state: NULL = fresh).
 * Sets nothing in the environment; use ->tcti. Registered for teardown. */
Swtpm *test_swtpm_start(SwtpmFlags flags, const char *state_dir);
/* Stops it (teardown does this too): checks no transient handles are left, stops, reaps. Keeps the state dir. */
int test_swtpm_stop(Swtpm *t);
/* Power-cycles: stop and start again on the same state (PCRs reset, persistent objects and NV stay). */
Swtpm *test_swtpm_restart(Swtpm *t);

typedef struct PrivateBus {
        pid_t pid;
        char *dir;
        char *address; /* unix:path=… ; also exported as $DBUS_SYSTEM_BUS_ADDRESS while the bus runs */
} PrivateBus;

/* A dbus-daemon with a system-bus-style configuration that includes the project's dbus/ policy files (*.conf)
 * (plus extra_conf_dir, if not NULL). Registered for teardown, which restores $DBUS_SYSTEM_BUS_ADDRESS. */
PrivateBus *test_bus_start(const char *extra_conf_dir);
/* Whether name has an owner on the system bus ($DBUS_SYSTEM_BUS_ADDRESS); false when the bus cannot be asked. */
bool test_bus_has_name(const char *name);

typedef struct TestCA {
        char *dir;
        char *cert; /* PEM paths */
        char *key;
} TestCA;

/* A throwaway CA (ECDSA P-256, certtool). */
TestCA *test_ca_new(const char *name);
/* Issues a leaf certificate for host (DNS name and, if it parses as one, IP address) signed by ca; returns the
 * paths through ret_cert/ret_key (newly allocated). */
int test_ca_issue(TestCA *ca, const char *name, const char *host, char **ret_cert, char **ret_key);
