/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vault-test.h: the real eve-vaultd as a process for the vault integration tests: a provisioned swtpm, a
 * private bus, a temporary $EVE_ROOT with image files; bus helpers to call it and wait for its vaults. */
#pragma once

#include <systemd/sd-bus.h>

#include "fixtures.h"
#include "tpm2-util.h"

#define VT_BUS "org.eve.Vault"
#define VT_MANAGER "/org/eve/Vault"
#define VT_MANAGER_IFACE "org.eve.Vault.Manager"
#define VT_IFACE "org.eve.Vault.Vault"
#define VT_ERR(n) "org.eve.Vault.Error." n

typedef struct VaultDaemon {
        pid_t pid;
        char *root; /* $EVE_ROOT */
        char *log;  /* the daemon's stderr */
        Swtpm *tpm;
        const char *crash_at; /* $EVE_VAULT_WORKER_CRASH_AT for its workers */
} VaultDaemon;

/* What eve-tpm-setup leaves (SRK, device, ECDH keys), and PCRs 0 and 7 extended with pcr_byte. */
void vt_provision(Swtpm *t, uint8_t pcr_byte);
void vt_extend(Swtpm *t, unsigned pcr, uint8_t byte);
char *vt_build_path(const char *rel);

/* A fresh root (root NULL) or an existing one; starts the daemon, waits for the name and for the default
 * vaults' first unlock. Registered for teardown. */
VaultDaemon *vt_daemon_start(Swtpm *t, const char *root, const char *crash_at);
void vt_daemon_stop(VaultDaemon *d);
VaultDaemon *vt_daemon_restart(VaultDaemon *d, const char *crash_at);

sd_bus *vt_bus(void); /* a fresh connection; the caller unrefs */
char *vt_path(const char *name);
char *vt_get_str(const char *name, const char *property);
uint64_t vt_get_u64(const char *name, const char *property);
uint32_t vt_get_u32(const char *name, const char *property);
bool vt_get_bool_manager(const char *property);
uint32_t vt_get_pcrs(const char *name, const char *property);
/* Waits up to 20 s until the property (a string) equals value; fails the test otherwise. */
void vt_wait_str(const char *name, const char *property, const char *value);
/* Waits until LastOperation is op, LastOperationTime moved past since (an earlier value) and the vault is
 * not in a passing state (Creating, Unlocking, …). op NULL: any operation. */
void vt_wait_op(const char *name, const char *op, uint64_t since);
void vt_assert_contains(const char *s, const char *part);

/* Calls a method; returns 0 or -errno, with the error name/message copied into *ret_error (may be NULL). */
int vt_call(const char *path,
            const char *iface,
            const char *method,
            sd_bus_error *ret_error,
            sd_bus_message **ret_reply,
            const char *types,
            ...);

/* Entries (key_type, key) as a(uay). */
typedef struct VtEntry {
        uint32_t type;
        uint8_t *key;
        size_t size;
} VtEntry;
typedef struct VtEntries {
        VtEntry e[32];
        size_t n;
} VtEntries;
void vt_entries_done(VtEntries *l);
/* Appends a copy of e (which must not be NULL). */
void vt_entries_add(VtEntries *l, const VtEntry *e);
void vt_get_escrow_keys(VtEntries *ret);
int vt_send_entries(const char *method, const VtEntries *l, sd_bus_error *ret_error, uint32_t *ret_served);
/* The 17750 entry of the vault with this UUID, or NULL. */
const VtEntry *vt_find_escrow(const VtEntries *l, const char *uuid);
