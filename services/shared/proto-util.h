/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* proto-util.h: size-capped protobuf-c unpacking, packing into owned buffers, and cleanup of unpacked
 * messages. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Unpacks size bytes as a message of type desc into a newly allocated message (*ret; free with proto_free).
 * Input from the network is never trusted to be small: size > max_size is refused before a byte is parsed.
 * Stricter than protobuf-c alone: field number 0 and strings that are not UTF-8 or contain NUL are refused
 * (proto3 and Go refuse the former two; a C string cannot hold the last). Returns 0, -EMSGSIZE (over the
 * cap), -EBADMSG (malformed: truncated, wrong wire type, bad tag or string …), -ENOMEM, or -EINVAL (bad
 * arguments). *ret is written only on success. */
int proto_unpack(
                const ProtobufCMessageDescriptor *desc,
                const void *data,
                size_t size,
                size_t max_size,
                ProtobufCMessage **ret);

/* The same, but every allocation of the message (struct, strings, bytes) lives in secret memory (locked, out
 * of core dumps, wiped on free); free with proto_secret_free. For decrypted plaintext (EncryptionBlock,
 * AttestVolumeKeyData): each allocation takes at least a page, so a message needing more than
 * PROTO_SECRET_MAX_ALLOCS allocations is refused with -EMSGSIZE. */
#define PROTO_SECRET_MAX_ALLOCS 256U
int proto_unpack_secret(
                const ProtobufCMessageDescriptor *desc,
                const void *data,
                size_t size,
                size_t max_size,
                ProtobufCMessage **ret);

/* Type-checked front ends: ret is a pointer to a pointer to a generated message struct (its first member is
 * "ProtobufCMessage base"), e.g. PROTO_UNPACK(&org__lfedge__eve__attest__zattest_req__descriptor, buf, n,
 * 64 * 1024, &req). The descriptor must match the struct; that part is up to the caller. */
#define PROTO_UNPACK(desc, data, size, max_size, ret)                                                      \
        ({                                                                                                 \
                _Static_assert(__builtin_types_compatible_p(__typeof__((*(ret))->base), ProtobufCMessage), \
                               "not a protobuf-c message");                                                \
                proto_unpack((desc), (data), (size), (max_size), (ProtobufCMessage **) (ret));             \
        })
#define PROTO_UNPACK_SECRET(desc, data, size, max_size, ret)                                               \
        ({                                                                                                 \
                _Static_assert(__builtin_types_compatible_p(__typeof__((*(ret))->base), ProtobufCMessage), \
                               "not a protobuf-c message");                                                \
                proto_unpack_secret((desc), (data), (size), (max_size), (ProtobufCMessage **) (ret));      \
        })

/* Serializes msg into a newly allocated buffer (*ret, *ret_size): malloc memory for proto_pack (free()),
 * secret memory for proto_pack_secret (eve_secret_free()). An empty message gives a non-NULL buffer of size
 * 0. Returns 0, -EINVAL (msg fails protobuf_c_message_check(), e.g. a NULL string in a repeated field),
 * -ENOMEM. */
int proto_pack(const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size);
int proto_pack_secret(const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size);
#define PROTO_PACK(msg, ret, ret_size) proto_pack(&(msg)->base, (ret), (ret_size))
#define PROTO_PACK_SECRET(msg, ret, ret_size) proto_pack_secret(&(msg)->base, (ret), (ret_size))

/* Free a message from proto_unpack / proto_unpack_secret respectively. Accept NULL; return NULL. */
void *proto_free(void *msg);
void *proto_secret_free(void *msg);

/* For _cleanup_(proto_freep) on a pointer to any generated message type (like freep, takes void *). */
static inline void proto_freep(void *p) {
        proto_free(*(void **) p);
}
static inline void proto_secret_freep(void *p) {
        proto_secret_free(*(void **) p);
}
