/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-share.h: controller-held key shares for tpm+controller vaults (proto/evetrust.proto). evc makes a
 * random 32-byte share per (device, vault UUID) when the device asks (key_type 17751 in STORE_KEYS), keeps
 * it sealed under keys/db.key, and releases it with a quote SUCCESS only, sealed to the device's ECDH
 * certificate (key_type 17752). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "evc.h"

#define EVC_SHARE_SIZE 32
/* Additional data of the sealed share on the wire, followed by the vault UUID (no terminator). */
#define EVC_SHARE_AD_PREFIX "eve-trust controller share v1"

/* Parses the key of a share request: an EveControllerShare that carries vault_uuid and nothing else. Writes
 * the UUID in canonical (lower-case) form; -EBADMSG with a reason (static string) otherwise. */
int evc_share_request_parse(const void *p, size_t n, char ret_uuid[static 37], const char **ret_why);

/* A new random share for (device, vault), sealed for the store under keys/db.key (AES-256-GCM, the
 * additional data binds it to both UUIDs so a row cannot be moved to another device or vault). */
int evc_share_new_sealed(
                Evc *e, const char *dev_uuid, const char *vault_uuid, uint8_t **ret, size_t *ret_size);
/* Opens a stored share; the share lands in secret memory (EVC_SHARE_SIZE bytes). -EBADMSG if it does not
 * open. */
int evc_share_unseal(
                Evc *e,
                const char *dev_uuid,
                const char *vault_uuid,
                const void *sealed,
                size_t n,
                uint8_t **ret);

/* Packs an EveControllerShare for the wire: share sealed with AES-256-GCM under k (= SHA-256(X‖Y) of the
 * ECDH of the controller ECDH key named by ctrl_hash and the device's ECDH public key), a fresh random
 * 12-byte nonce, additional data EVC_SHARE_AD_PREFIX ‖ vault_uuid. */
int evc_share_seal_wire(
                const uint8_t k[static 32],
                const uint8_t ctrl_hash[static 16],
                const char *vault_uuid,
                const uint8_t share[static EVC_SHARE_SIZE],
                uint8_t **ret,
                size_t *ret_size);
