/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-server.h: what the HTTP handlers share: replies, the authenticated device, signing. */
#pragma once

#include <protobuf-c/protobuf-c.h>

#include "auth.pb-c.h"
#include "evc.h"

typedef struct EvcReply {
        unsigned status;
        uint8_t *body; /* packed AuthContainer, or NULL */
        size_t size;
        bool secret; /* body carries cleartext secrets: secret memory (eve_secret_alloc), wiped when freed */
} EvcReply;

void evc_reply_done(EvcReply *r);
/* Wraps msg in an AuthContainer signed with the current controller signing key. */
int evc_reply_signed(Evc *e, unsigned status, const ProtobufCMessage *msg, EvcReply *ret);
/* The same for an already packed payload that carries cleartext secrets (the reply is secret). */
int evc_reply_signed_secret(Evc *e, unsigned status, const uint8_t *payload, size_t n, EvcReply *ret);
/* Logs the reason and sets the status; returns status. */
unsigned evc_reject(EvcReply *reply, unsigned status, const char *fmt, ...) _printf_(3, 4);

typedef struct EvcDevice {
        int64_t id;
        char uuid[37];
        EvcCrt *crt; /* the registered device certificate */
        bool revoked, registered;
        char *trust;
} EvcDevice;
void evc_device_done(EvcDevice *d);

/* Verifies a device-signed AuthContainer (sender hash = SHA-256 of the registered device certificate DER). When
 * uuid is set the device must be that one. Returns 0 or the HTTP status already set in reply. */
unsigned evc_authenticate(Evc *e, const uint8_t *body, size_t n, const char *uuid, EvcDevice *ret_dev,
                Org__Lfedge__Eve__Auth__AuthContainer **ret_ac, EvcReply *reply);

/* One request after the HTTP layer (method, content type and size already checked): the URL's endpoint
 * answers into reply. Also the fuzz target's entry (tests/fuzz/fuzz-evc-http.c). */
void evc_route(Evc *e, const char *url, const char *method, const uint8_t *body, size_t n, EvcReply *reply);

/* POST /id/<uuid>/attest (evc-verifier.c). */
unsigned evc_handle_attest(Evc *e, const char *uuid, const uint8_t *body, size_t n, EvcReply *reply);
