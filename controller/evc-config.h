/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-config.h: a device's configuration (our EdgeDevConfig subset, proto/config.proto): config items, base
 * OS, the controller certificate-set hash, secrets as cipher blocks encrypted to the device's ECDH
 * certificate (and, with the per-device cleartext fallback, in the legacy cleartext fields too). */
#pragma once

#include "evc-keys.h"

typedef struct EvcBuiltConfig {
        uint8_t *packed; /* the packed EdgeDevConfig, without any cleartext secret */
        size_t size;
        char hash[2 * EVC_SHA256_SIZE + 1]; /* hex SHA-256 of packed */
        int64_t ecdh_id;                    /* the controller ECDH pair its cipher context names (0: none) */
} EvcBuiltConfig;

void evc_built_config_done(EvcBuiltConfig *c);

/* Builds the device's config with fresh IVs. baseos_only: only the base-OS update part (an untrusted
 * device). */
int evc_config_build(
                Evc *e,
                EvcKeys *keys,
                int64_t device_id,
                const char *uuid,
                bool baseos_only,
                EvcBuiltConfig *ret);

/* POST /id/<uuid>/config. */
struct EvcReply;
unsigned evc_handle_config(Evc *e, const char *uuid, const uint8_t *body, size_t n, struct EvcReply *reply);
