/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* attest-fixtures.h: what the registration and attestation tests need around the real parts: `evc serve`
 * over TLS on 127.0.0.1 (its admin commands, stop and restart on the same port), and a node: a directory
 * tree in the layout of paths.h exported through $EVE_* (so this process and every daemon it starts use it),
 * a swtpm provisioned by the real eve-tpm-setup, the controller address and roots in the config dir, an
 * onboarding certificate. */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "fixtures.h"

typedef struct Evc {
        char *dir;
        char *root_pem; /* certs/root.pem */
        unsigned port;
        pid_t pid;
        char *nonce_ttl;
} Evc;

/* evc init + evc serve on 127.0.0.1 (port chosen now, kept across restarts). nonce_ttl may be NULL.
 * Registered for teardown (which fails the test when evc did not exit 0 on SIGTERM). */
Evc *evc_new(const char *nonce_ttl);
/* Starts serving (again) on the same port and directory. */
void evc_serve(Evc *e);
/* SIGTERM and reap; asserts exit status 0. */
void evc_stop(Evc *e);
/* Runs "evc ARGS… --dir DIR", returns the exit status; stdout in *out if out != NULL. NULL-terminated. */
int evc_run(Evc *e, char **out, ...);
#define EVC_RUN(e, out, ...) evc_run(e, out, __VA_ARGS__, NULL)
/* `evc device show DEV --json`, parsed (json_object_put). */
json_object *evc_device_json(Evc *e, const char *dev);
const char *json_str(json_object *o, const char *key);
int64_t json_int(json_object *o, const char *key);
bool json_get_bool(json_object *o, const char *key);

typedef struct Node {
        char *root;
        char *eventlog; /* the boot's TCG crypto-agile event log ($EVE_EVENTLOG) */
        char *config, *certs, *status, *run, *persist, *vault_img;
        Swtpm *tpm;
        char *onboard_cert, *onboard_key;
        char *serial;
} Node;

/* A node tree under a fresh temporary directory, its swtpm (PCRs 0–7 extended once so that sealing binds
 * something), eve-tpm-setup run on it, config/server = 127.0.0.1:<evc port>, config/root-certificate.pem =
 * evc's root, an onboarding certificate, and $EVE_CONFIG_DIR, $EVE_CERTS_DIR, $EVE_STATUS_DIR, $EVE_RUN_DIR,
 * $EVE_PERSIST_DIR, $EVE_VAULT_IMAGES_DIR, $EVE_VAULTS_DIR, $EVE_VAULT_DIR, $EVE_TPM2_TCTI set for it
 * (restored at teardown). */
Node *node_new(Evc *e);
/* evc onboard allow <serial> --cert <onboarding cert>. */
void node_allow_onboarding(Node *n, Evc *e);
/* Registers the device with evc the administrator's way (evc device add --cert); returns its UUID (free). */
char *node_preregister(Node *n, Evc *e);
/* Power-cycles the swtpm (PCRs back to zero, keys stay) and extends PCRs 0–7 as a boot would, with a fresh
 * event log. */
void node_reboot(Node *n);
/* Extends SHA-256 PCR pcr with SHA-256(what) through tpm2_pcr_extend and records the event in the event log.
 */
void node_extend(Node *n, unsigned pcr, const char *what);

/* A node daemon as a child process, stdout/stderr to its log; torn down with SIGTERM (exit status 0
 * required: sanitizer findings fail the test). */
typedef struct Daemon {
        pid_t pid;
        char *name;
        char *log;
} Daemon;

/* Starts $EVE_TEST_BUILDDIR/rel with args (NULL-terminated list of strings) and env_extra ("NAME=VALUE" or
 * NULL) set for the child only; waits until bus_name (if not NULL) is on the bus. */
Daemon *daemon_start(const char *rel, const char *bus_name, const char *env_extra, ...);
/* SIGTERM, wait, assert exit 0. */
void daemon_stop(Daemon *d);
/* SIGKILL (as a crash or power loss would). */
void daemon_kill(Daemon *d);
/* Prints the daemon's log to stderr (for failures). */
void daemon_dump(const Daemon *d);

/* The test's connection to the private bus ($DBUS_SYSTEM_BUS_ADDRESS), kept for the test. */
sd_bus *test_bus(void);

typedef struct AttestProps {
        uint32_t state;
        char *state_name;
        char *last_error;
        uint64_t last_success, next_attempt;
        uint32_t attempts;
        int reachable;
} AttestProps;

void attest_props_done(AttestProps *p);
void attest_props(AttestProps *ret);
/* Polls org.eve.Attest until State == state (or, with any_of, one of the states in the mask 1<<state); fails
 * after timeout_ms with the properties and the daemon's log. */
void attest_wait_state(const Daemon *d, uint32_t state_mask, unsigned timeout_ms);
#define ATTEST_STATE_BIT(s) (UINT32_C(1) << (s))
#define ATTEST_COMPLETE 7U /* AttestationState COMPLETE (proto/attest.proto, facts §2) */
/* eve-attestd as these tests run it (retries after 200 ms, at most 1 s; extra_arg: one more argument, or NULL),
 * waited for until COMPLETE: the node is attested and evc holds its escrow. */
Daemon *attestd_start_complete(const char *extra_arg);
/* Runs eve-register (the test fails with its output when it fails) and reads the device UUID it stored. */
void node_register(char uuid[static 37]);

/* $EVE_TEST_BUILDDIR/rel, newly allocated. */
char *build_path(const char *rel);
/* Writes text to dir/name (0644, or mode). */
void write_text(const char *dir, const char *name, const char *text, mode_t mode);
char *read_text_file(const char *path);
bool file_exists(const char *dir, const char *name);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
unsigned free_port(void);
/* Monotonic milliseconds. */
uint64_t now_msec(void);
