/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: arbitrary bytes unpacked, through proto_unpack, as every protobuf message a node parses from
 * the controller or the controller (evc) parses from a node. Whatever unpacks must pack again, and that
 * packed form must unpack again (protobuf-c keeps unknown fields, so nothing may get lost in between).
 * Decrypted plaintexts also go through the secret-memory variant. */
#include <stdlib.h>

#include "attest.pb-c.h"
#include "auth.pb-c.h"
#include "certs.pb-c.h"
#include "config.pb-c.h"
#include "evecommon.pb-c.h"
#include "eveuuid.pb-c.h"
#include "info.pb-c.h"
#include "log.h"
#include "metrics.pb-c.h"
#include "proto-util.h"
#include "register.pb-c.h"

#define FUZZ_PROTO_MAX (64U * 1024U)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const descriptors[] = {
        /* Either direction: the envelope. */
        &org__lfedge__eve__auth__auth_container__descriptor,
        /* Controller → node. */
        &org__lfedge__eve__certs__zcontroller_cert__descriptor,
        &org__lfedge__eve__uuid__uuid_response__descriptor,
        &org__lfedge__eve__attest__zattest_response__descriptor,
        &org__lfedge__eve__attest__attest_volume_key_data__descriptor,
        &org__lfedge__eve__config__config_response__descriptor,
        &org__lfedge__eve__common__encryption_block__descriptor,
        /* Node → controller. */
        &org__lfedge__eve__register__zregister_msg__descriptor,
        &org__lfedge__eve__uuid__uuid_request__descriptor,
        &org__lfedge__eve__attest__zattest_req__descriptor,
        &org__lfedge__eve__config__config_request__descriptor,
        &org__lfedge__eve__info__zinfo_msg__descriptor,
        &org__lfedge__eve__metrics__zmetric_msg__descriptor,
};

/* Plaintexts that come out of a decryption: parsed into secret memory by their consumers. */
static const ProtobufCMessageDescriptor *const secret_descriptors[] = {
        &org__lfedge__eve__common__encryption_block__descriptor,
        &org__lfedge__eve__attest__attest_volume_key_data__descriptor,
};

static void round_trip(
                const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t size, bool secure) {
        _cleanup_(proto_freep) ProtobufCMessage *m = NULL, *again = NULL;
        _cleanup_(proto_secret_freep) ProtobufCMessage *sm = NULL;
        _cleanup_free_ uint8_t *packed = NULL;
        size_t packed_size;
        int r;

        if (secure) {
                r = proto_unpack_secret(desc, data, size, FUZZ_PROTO_MAX, &sm);
                if (r < 0) {
                        if (r != -EBADMSG && r != -EMSGSIZE && r != -ENOMEM)
                                abort();
                        return;
                }
                if (proto_pack(sm, &packed, &packed_size) < 0)
                        abort();
        } else {
                r = proto_unpack(desc, data, size, FUZZ_PROTO_MAX, &m);
                if (r < 0) {
                        if (r != -EBADMSG && r != -ENOMEM)
                                abort();
                        return;
                }
                if (proto_pack(m, &packed, &packed_size) < 0)
                        abort();
        }

        /* Repacking may reorder fields, merge duplicates or drop default values; the result must parse
         * again. */
        if (proto_unpack(desc, packed, packed_size, SIZE_MAX, &again) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_PROTO_MAX)
                return 0;
        log_set_max_level(LOG_CRIT);

        for (size_t i = 0; i < ELEMENTSOF(descriptors); i++)
                round_trip(descriptors[i], data, size, /* secure= */ false);
        for (size_t i = 0; i < ELEMENTSOF(secret_descriptors); i++)
                round_trip(secret_descriptors[i], data, size, /* secure= */ true);
        return 0;
}
