/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl.h: the command-line client of the node's bus services. One file per service's verbs:
 * evectl-vault.c (org.eve.Vault), evectl-attest.c (org.eve.Attest), evectl-config.c (org.eve.Config:
 * "secret" and "config"), evectl-status.c (all of them). Each verb gets argv starting at its own name. Shared
 * helpers (clear bus errors, tables, JSON, properties as JSON, times, sizes): evectl-util.h. */
#pragma once

#include <stdbool.h>

typedef struct EvectlOptions {
        bool json; /* --json: machine-readable output */
} EvectlOptions;

extern EvectlOptions arg_evectl;

int verb_vault(int argc, char **argv);
int verb_attest(int argc, char **argv);
int verb_secret(int argc, char **argv);
int verb_config(int argc, char **argv);
int verb_status(int argc, char **argv);
