/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-vault.h: the vaults evc asks a node to have (proto/config.proto EveTrustVaultConfig): their rules, and
 * reading what the node reports about them (info.proto EveTrustVaultStatus). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "info.pb-c.h"
#include "luks2-util.h"

#define EVC_VAULT_PCRS_MAX 15
/* The columns of a vaults row, in this order, as the config and the admin commands read them. */
#define EVC_VAULT_COLUMNS \
        "uuid, name, version, size_limit, key_source, pcrs, policy_id, desired, key_generation"

typedef struct EvcVault {
        char uuid[37];
        const char *name;
        uint64_t size_limit; /* 0: the node's default */
        KeySource key_source;
        uint32_t pcrs;      /* sealing PCRs; 0: the node's default set */
        uint32_t policy_id; /* names the PCR list; 0 without one */
        bool locked;        /* desired state */
        uint64_t key_generation;
} EvcVault;

/* "0,1,2,4,7" → a PCR mask (indexes 0–31, no repeats); "default" → 0. -EINVAL otherwise. */
int evc_vault_pcrs_parse(const char *s, uint32_t *ret);
/* EVE's rules for a controller's sealing PCR list: 1–15 PCRs, each 0–15, PCR 0 required, PCR 5 refused.
 * 0 (the node's default) is fine. -EINVAL with a reason. */
int evc_vault_pcrs_check(uint32_t mask, const char **ret_why);
/* "1073741824", "512M", "4G" (binary units K, M, G, T). */
int evc_vault_size_parse(const char *s, uint64_t *ret);
/* Everything about one entry (name, size, PCR list with its policy id). -EINVAL with a reason. */
int evc_vault_check(const EvcVault *v, const char **ret_why);

/* The node's report about a vault: VaultInfo with our extension, rendered for people. */
const char *evc_vault_state_name(int state);
const char *evc_vault_unlock_name(int method);
const char *evc_vault_escrow_name(int escrow);
/* "0 4 7" into buf. */
const char *evc_pcr_list_format(const uint32_t *pcrs, size_t n, char *buf, size_t size);
