/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evc-share.h"

#include "evetrust.pb-c.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"

#define SHARE_REQUEST_MAX 1024
#define STORE_AD_PREFIX "evc stored share v1"

int evc_share_request_parse(const void *p, size_t n, char ret_uuid[static 37], const char **ret_why) {
        _cleanup_(proto_freep) Org__Eve__Trust__EveControllerShare *m = NULL;

        if (PROTO_UNPACK(&org__eve__trust__eve_controller_share__descriptor, p, n, SHARE_REQUEST_MAX, &m) <
            0) {
                *ret_why = "not an EveControllerShare";
                return -EBADMSG;
        }
        if (evc_uuid_canonical(m->vault_uuid, ret_uuid) < 0) {
                *ret_why = "vault_uuid is not a UUID";
                return -EBADMSG;
        }
        if (m->controller_cert_hash.len > 0 || m->nonce.len > 0 || m->sealed_share.len > 0) {
                *ret_why = "a share request carries vault_uuid only";
                return -EBADMSG;
        }
        return 0;
}

/* "evc stored share v1" \0 device UUID \0 vault UUID */
static int store_ad(const char *dev_uuid, const char *vault_uuid, char **ret, size_t *ret_size) {
        char *ad;
        int k = asprintf(&ad, STORE_AD_PREFIX "%c%s%c%s", 0, dev_uuid, 0, vault_uuid);

        if (k < 0)
                return -ENOMEM;
        *ret = ad;
        *ret_size = (size_t) k;
        return 0;
}

int evc_share_new_sealed(
                Evc *e, const char *dev_uuid, const char *vault_uuid, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *ad = NULL;
        uint8_t share[EVC_SHARE_SIZE];
        size_t ad_size;
        int r;

        CLEANUP_ERASE(share);
        r = store_ad(dev_uuid, vault_uuid, &ad, &ad_size);
        if (r < 0)
                return r;
        r = evc_random(share, sizeof share);
        if (r < 0)
                return r;
        return evc_aead_seal_ad(e->db_key, ad, ad_size, share, sizeof share, ret, ret_size);
}

int evc_share_unseal(
                Evc *e,
                const char *dev_uuid,
                const char *vault_uuid,
                const void *sealed,
                size_t n,
                uint8_t **ret) {
        _cleanup_free_ char *ad = NULL;
        uint8_t *share;
        size_t ad_size, m;
        int r;

        r = store_ad(dev_uuid, vault_uuid, &ad, &ad_size);
        if (r < 0)
                return r;
        r = evc_aead_open_ad(e->db_key, ad, ad_size, sealed, n, &share, &m);
        if (r < 0)
                return r;
        if (m != EVC_SHARE_SIZE) {
                eve_secret_free(share);
                return -EBADMSG;
        }
        *ret = share;
        return 0;
}

int evc_share_seal_wire(
                const uint8_t k[static 32],
                const uint8_t ctrl_hash[static 16],
                const char *vault_uuid,
                const uint8_t share[static EVC_SHARE_SIZE],
                uint8_t **ret,
                size_t *ret_size) {
        Org__Eve__Trust__EveControllerShare m = ORG__EVE__TRUST__EVE_CONTROLLER_SHARE__INIT;
        _cleanup_free_ uint8_t *sealed = NULL;
        _cleanup_free_ char *ad = NULL;
        size_t sealed_size;
        int r;

        if (asprintf(&ad, EVC_SHARE_AD_PREFIX "%s", vault_uuid) < 0)
                return -ENOMEM;
        r = evc_aead_seal_ad(k, ad, strlen(ad), share, EVC_SHARE_SIZE, &sealed, &sealed_size);
        if (r < 0)
                return r;
        /* nonce(12) ‖ ciphertext(32) ‖ tag(16): the nonce goes in its own field. */
        m.vault_uuid = (char *) vault_uuid;
        m.controller_cert_hash = (ProtobufCBinaryData){ .len = 16, .data = (uint8_t *) ctrl_hash };
        m.nonce = (ProtobufCBinaryData){ .len = EVC_GCM_NONCE_SIZE, .data = sealed };
        m.sealed_share = (ProtobufCBinaryData){ .len = sealed_size - EVC_GCM_NONCE_SIZE,
                                                .data = sealed + EVC_GCM_NONCE_SIZE };
        return PROTO_PACK(&m, ret, ret_size);
}
