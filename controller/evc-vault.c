/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-vault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"

int evc_vault_pcrs_parse(const char *s, uint32_t *ret) {
        uint32_t mask = 0;
        const char *p = s;

        if (isempty(s))
                return -EINVAL;
        if (streq(s, "default")) {
                *ret = 0;
                return 0;
        }
        for (;;) {
                char *end;
                unsigned long v;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                errno = 0;
                v = strtoul(p, &end, 10);
                if (errno != 0 || v > 31 || (mask & (UINT32_C(1) << v)))
                        return -EINVAL;
                mask |= UINT32_C(1) << v;
                if (*end == 0)
                        break;
                if (*end != ',')
                        return -EINVAL;
                p = end + 1;
        }
        *ret = mask;
        return 0;
}

int evc_vault_pcrs_check(uint32_t mask, const char **ret_why) {
        const char *why = NULL;

        if (mask == 0)
                why = NULL; /* the node's default set */
        else if (mask & ~UINT32_C(0xffff))
                why = "sealing PCRs must be 0-15";
        else if (!(mask & 1))
                why = "PCR 0 is required";
        else if (mask & (UINT32_C(1) << 5))
                why = "PCR 5 (GPT, changes with every update) is refused";
        else if (__builtin_popcount(mask) > EVC_VAULT_PCRS_MAX)
                why = "at most 15 sealing PCRs";
        if (ret_why)
                *ret_why = why;
        return why ? -EINVAL : 0;
}

int evc_vault_size_parse(const char *s, uint64_t *ret) {
        unsigned long long v;
        unsigned shift = 0;
        char *end;

        if (isempty(s) || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EINVAL;
        if (*end) {
                switch (*end) {
                case 'K':
                        shift = 10;
                        break;
                case 'M':
                        shift = 20;
                        break;
                case 'G':
                        shift = 30;
                        break;
                case 'T':
                        shift = 40;
                        break;
                default:
                        return -EINVAL;
                }
                if (end[1] != 0)
                        return -EINVAL;
        }
        if (v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t) v << shift;
        return 0;
}

int evc_vault_check(const EvcVault *v, const char **ret_why) {
        const char *why = NULL;

        if (!vault_name_is_valid_on_node(v->name))
                why = "the name must be 1-32 characters of a-z 0-9 - (not starting with -), as the node names "
                      "its vaults";
        else if (streq(v->name, "image") || streq(v->name, "config"))
                why = "image and config are the node's own default vaults";
        else if (v->size_limit != 0 && v->size_limit < LUKS2_IMAGE_SIZE_MIN)
                why = "the size limit must be 0 (the node's default) or at least 32 MiB";
        else if (v->key_source < 0 || v->key_source >= _KEY_SOURCE_MAX)
                why = "the key source must be tpm, tpm+controller or controller";
        else if (evc_vault_pcrs_check(v->pcrs, &why) < 0)
                ;
        else if ((v->pcrs == 0) != (v->policy_id == 0))
                why = "a sealing PCR list needs a policy id, and a policy id a PCR list";
        if (ret_why)
                *ret_why = why;
        return why ? -EINVAL : 0;
}

const char *evc_vault_state_name(int state) {
        switch (state) {
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_CREATING:
                return "creating";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_LOCKED:
                return "locked";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_UNLOCKING:
                return "unlocking";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_UNLOCKED:
                return "unlocked";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_ERROR:
                return "error";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_DELETING:
                return "deleting";
        default:
                return "unknown";
        }
}

const char *evc_vault_unlock_name(int method) {
        switch (method) {
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_TPM:
                return "tpm";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_CONTROLLER:
                return "controller";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_RECOVERY:
                return "recovery";
        default:
                return "none";
        }
}

const char *evc_vault_escrow_name(int escrow) {
        switch (escrow) {
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_ESCROW_STATE__EVE_TRUST_ESCROW_STATE_PENDING:
                return "pending";
        case ORG__LFEDGE__EVE__INFO__EVE_TRUST_ESCROW_STATE__EVE_TRUST_ESCROW_STATE_CONFIRMED:
                return "confirmed";
        default:
                return "none";
        }
}

const char *evc_pcr_list_format(const uint32_t *pcrs, size_t n, char *buf, size_t size) {
        size_t k = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n && k + 12 < size; i++)
                k += (size_t) snprintf(buf + k, size - k, "%s%u", i ? " " : "", pcrs[i]);
        return n ? buf : "-";
}
