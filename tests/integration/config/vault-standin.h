/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vault-standin.h: eve-vaultd's org.eve.Vault.Vault "config" object (its State property, PropertiesChanged)
 * served from a thread, for where dm-crypt cannot run (this host has no device-mapper): the integration tests
 * and bench/config-bench. The VM test runs the real eve-vaultd. Needs $DBUS_SYSTEM_BUS_ADDRESS set. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct VaultStandin {
        pthread_t thread;
        pthread_mutex_t lock;
        char state[32];
        atomic_bool emit, stop, ready, failed;
} VaultStandin;

/* Starts serving with State = state; waits (≤ 5 s) until the name org.eve.Vault is taken: 0 or -EIO. */
int vault_standin_start(VaultStandin *v, const char *state);
/* Changes State and emits PropertiesChanged. */
void vault_standin_set(VaultStandin *v, const char *state);
void vault_standin_stop(VaultStandin *v);
