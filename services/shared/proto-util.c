/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "proto-util.h"

#include "memory-util.h"

/* protobuf-c's unpack returns NULL both for bad input and for a failed allocation; the allocators below
 * record which it was. */
typedef struct UnpackState {
        bool oom;
        bool too_many;
        unsigned n_allocs;
} UnpackState;

static void *plain_alloc(void *userdata, size_t size) {
        UnpackState *s = userdata;
        void *p;

        p = malloc(MAX(size, (size_t) 1));
        if (!p && s)
                s->oom = true;
        return p;
}

static void plain_free(void *userdata, void *p) {
        free(p);
}

static void *secret_alloc(void *userdata, size_t size) {
        UnpackState *s = userdata;
        void *p;

        if (s && s->n_allocs >= PROTO_SECRET_MAX_ALLOCS) {
                s->too_many = true;
                return NULL;
        }
        p = eve_secret_alloc(size);
        if (!p) {
                if (s)
                        s->oom = true;
                return NULL;
        }
        if (s)
                s->n_allocs++;
        return p;
}

static void secret_free(void *userdata, void *p) {
        eve_secret_free(p);
}

static bool descriptor_ok(const ProtobufCMessageDescriptor *desc) {
        return desc && desc->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
}

/* Strict UTF-8 as proto3 (and Go, which EVE and its controllers are written in) requires: no overlong forms,
 * no surrogates, nothing above U+10FFFF. We also refuse NUL, which a C string would silently cut at. */
static bool utf8_valid_no_nul(const uint8_t *p, size_t n) {
        size_t i = 0;

        while (i < n) {
                uint8_t c = p[i];
                uint32_t cp, min;
                size_t len;

                if (c == 0)
                        return false;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0) {
                        len = 2, cp = c & 0x1f, min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        len = 3, cp = c & 0x0f, min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        len = 4, cp = c & 0x07, min = 0x10000;
                } else
                        return false;
                if (n - i < len)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

static bool wire_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64; shift += 7) {
                if (*i >= n)
                        return false;
                v |= (uint64_t) (p[*i] & 0x7f) << shift;
                if (!(p[(*i)++] & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return false;
}

/* Checks what protobuf-c (1.4) does not, walking the wire format along the descriptors before it parses:
 * - field number 0 is invalid; protobuf-c refuses it in a one-byte tag but accepts it in an overlong one (82
 * 00), keeps it as an unknown field, and then packs a tag it refuses itself;
 * - strings must be UTF-8 (protobuf-c does not check) without NUL (protobuf-c would hand out a cut C
 * string). Anything else malformed (truncation, wire-type mismatch) is left for protobuf-c to refuse.
 * Unknown fields are not descended into. */
#define PROTO_MAX_DEPTH 32U
#define PROTO_FIELD_NUMBER_MAX 536870911U /* 2^29 - 1 */
static bool wire_valid(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n, unsigned depth) {
        size_t i = 0;

        if (depth > PROTO_MAX_DEPTH)
                return false;

        while (i < n) {
                const ProtobufCFieldDescriptor *f;
                uint64_t tag, v;

                if (!wire_varint(p, n, &i, &tag) || (tag >> 3) == 0 || (tag >> 3) > PROTO_FIELD_NUMBER_MAX)
                        return false;

                switch (tag & 7) {
                case PROTOBUF_C_WIRE_TYPE_VARINT:
                        if (!wire_varint(p, n, &i, &v))
                                return false;
                        break;
                case PROTOBUF_C_WIRE_TYPE_64BIT:
                        if (n - i < 8)
                                return false;
                        i += 8;
                        break;
                case PROTOBUF_C_WIRE_TYPE_32BIT:
                        if (n - i < 4)
                                return false;
                        i += 4;
                        break;
                case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
                        if (!wire_varint(p, n, &i, &v) || v > n - i)
                                return false;
                        f = protobuf_c_message_descriptor_get_field(desc, (unsigned) (tag >> 3));
                        if (f && f->type == PROTOBUF_C_TYPE_STRING && !utf8_valid_no_nul(p + i, v))
                                return false;
                        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                            !wire_valid(f->descriptor, p + i, v, depth + 1))
                                return false;
                        i += v;
                        break;
                default:
                        return false; /* groups (3, 4) are not proto3; 6 and 7 do not exist */
                }
        }
        return true;
}

/* Kept in the systemd layout: our .clang-format breaks after the return type of a static function here. */
/* clang-format off */
static int unpack_internal(
                const ProtobufCMessageDescriptor *desc,
                const void *data,
                size_t size,
                size_t max_size,
                bool secure,
                ProtobufCMessage **ret) {

        UnpackState state = {};
        ProtobufCAllocator allocator = {
                .alloc = secure ? secret_alloc : plain_alloc,
                .free = secure ? secret_free : plain_free,
                .allocator_data = &state,
        };
        ProtobufCMessage *m;

        if (!descriptor_ok(desc) || !ret)
                return -EINVAL;
        if (size > max_size)
                return -EMSGSIZE;
        if (!data && size > 0)
                return -EINVAL;
        if (!wire_valid(desc, data, size, 0))
                return -EBADMSG;

        m = protobuf_c_message_unpack(desc, &allocator, size, data);
        if (!m) {
                if (state.too_many)
                        return -EMSGSIZE;
                return state.oom ? -ENOMEM : -EBADMSG;
        }

        *ret = m;
        return 0;
}
/* clang-format on */

int proto_unpack(
                const ProtobufCMessageDescriptor *desc,
                const void *data,
                size_t size,
                size_t max_size,
                ProtobufCMessage **ret) {

        return unpack_internal(desc, data, size, max_size, /* secure= */ false, ret);
}

int proto_unpack_secret(
                const ProtobufCMessageDescriptor *desc,
                const void *data,
                size_t size,
                size_t max_size,
                ProtobufCMessage **ret) {

        return unpack_internal(desc, data, size, max_size, /* secure= */ true, ret);
}

static int pack_internal(const ProtobufCMessage *msg, bool secure, uint8_t **ret, size_t *ret_size) {
        uint8_t *buf;
        size_t size, n;

        if (!msg || !descriptor_ok(msg->descriptor) || !ret || !ret_size)
                return -EINVAL;
        if (!protobuf_c_message_check(msg))
                return -EINVAL;

        size = protobuf_c_message_get_packed_size(msg);
        buf = secure ? eve_secret_alloc(size) : malloc(MAX(size, (size_t) 1));
        if (!buf)
                return -ENOMEM;

        n = protobuf_c_message_pack(msg, buf);
        if (n != size) {
                /* Cannot happen after the check; never hand out a half-written buffer. */
                if (secure)
                        eve_secret_free(buf);
                else
                        free(buf);
                return -EINVAL;
        }

        *ret = buf;
        *ret_size = size;
        return 0;
}

int proto_pack(const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        return pack_internal(msg, /* secure= */ false, ret, ret_size);
}

int proto_pack_secret(const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        return pack_internal(msg, /* secure= */ true, ret, ret_size);
}

void *proto_free(void *msg) {
        static ProtobufCAllocator allocator = {
                .alloc = plain_alloc,
                .free = plain_free,
        };

        if (msg)
                protobuf_c_message_free_unpacked(msg, &allocator);
        return NULL;
}

void *proto_secret_free(void *msg) {
        static ProtobufCAllocator allocator = {
                .alloc = secret_alloc,
                .free = secret_free,
        };

        if (msg)
                protobuf_c_message_free_unpacked(msg, &allocator);
        return NULL;
}
