/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* controller-client.h: the node's client of the controller's API v2 (facts/eve-api.md §1.1–1.3). libcurl
 * (GnuTLS flavour) driven from an sd-event loop through curl's multi-socket API; TLS verified against the
 * controller's TLS root from the config directory only (never the system CA store); connect and total
 * timeouts; a response size limit; `application/x-proto-binary` both ways. Every POST body is an
 * AuthContainer signed with the device key (in the TPM, or the software key of a TPM-less node): raw r‖s,
 * senderCertHash = SHA-256 of the device certificate's DER, algo SHA256_32BYTES. Every non-empty response
 * must be an AuthContainer signed by a controller signing certificate from /certs; an unknown sender hash
 * makes the client fetch /certs once (each certificate verified against root-certificate.pem) and try again,
 * at most once per CONTROLLER_CERTS_REFETCH_MIN_USEC.
 *
 * Files (paths.h): $EVE_CONFIG_DIR/server ("host:port", https implied), $EVE_CONFIG_DIR/root-certificate.pem
 * (chain root of the controller's certificates), $EVE_CONFIG_DIR/v2tlsbaseroot-certificates.pem (TLS root;
 * falls back to root-certificate.pem), $EVE_CONFIG_DIR/device.cert.pem (+ device.key.pem on a TPM-less
 * node), onboard.cert.pem/onboard.key.pem (for /register), $EVE_STATUS_DIR/uuid. Verified certificates from
 * /certs are stored as $EVE_CERTS_DIR/controller/{signing,ecdh,intermediate}-<hex certHash[:16]>.pem
 * (CONTRACT.md).
 *
 * Results: 0 for HTTP 200, 201, 204 and 304 (the reply carries the status); otherwise a negative errno:
 *   -ENOENT        400 or 404: the controller does not know this device (EVE re-fetches the UUID)
 *   -EPERM         401: the controller refused our envelope or identity
 *   -EACCES        403: forbidden (config: integrity token refused → re-attest; /uuid: device revoked)
 *   -EEXIST        409: conflict (/register: this certificate or serial is registered otherwise)
 *   -EMSGSIZE      413: our request was too large for the controller
 *   -EPROTO        any other 4xx, 1xx or 3xx answer
 *   -EAGAIN        503 or another 5xx: try later
 *   -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -ECONNRESET: network (no answer in time, nothing listening …)
 *   -EKEYREJECTED  the TLS server certificate does not verify against our TLS root
 *   -EFBIG         the response exceeds the size limit
 *   -EBADMSG       a malformed answer: wrong content type, envelope that does not parse, bad signature,
 *                  /certs that does not verify
 *   -ENOKEY        the response's signer is not among the controller's certificates even after a /certs
 *                  refetch
 *   -EKEYREVOKED   (before sending) the TPM device key refuses to sign: the controller root CA or server
 *                  file is not what the key was bound to (controller-certs.h); nothing was sent
 *   -EOPNOTSUPP    libcurl cannot be loaded (it is dlopen()ed per burst of requests, curl-util.h); the
 *                  sentence starts with "libcurl unavailable:"
 * controller_client_last_error() has the sentence a person needs (never a secret).
 *
 * Not thread-safe: one client per event loop thread. Handlers must not free the client. */
#pragma once

#include <gnutls/abstract.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "auth.pb-c.h"
#include "macro.h"
#include "tpm2-util.h"

typedef struct ControllerClient ControllerClient;
typedef struct ControllerRequest ControllerRequest;

#define CONTROLLER_MIME "application/x-proto-binary"
#define CONTROLLER_CONNECT_TIMEOUT_USEC_DEFAULT (15U * 1000000U)
#define CONTROLLER_TIMEOUT_USEC_DEFAULT (60U * 1000000U)
#define CONTROLLER_RESPONSE_MAX_DEFAULT (1024U * 1024U)
/* libcurl is unloaded when no request has been in flight for this long (controller_client_set_unload_delay). */
#define CONTROLLER_UNLOAD_DELAY_USEC_DEFAULT (5U * 1000000U)
/* A response from an unknown signer makes the client fetch /certs at once, but at most once per this long
 * (a second unknown signer within it: -ENOKEY without a request). */
#define CONTROLLER_CERTS_REFETCH_MIN_USEC (10U * 1000000U)

typedef enum ControllerRequestFlags {
        /* Sign with the onboarding key and carry senderCert = base64(onboarding PEM) (POST /register). */
        CONTROLLER_REQUEST_ONBOARDING = 1 << 0,
} ControllerRequestFlags;

/* What a finished request brings back. payload is the verified inner payload of the response's AuthContainer
 * (NULL, size 0 when the response had no body, e.g. 304 or /register); valid only during the handler. */
typedef struct ControllerReply {
        long status; /* HTTP status, 0 when no answer arrived */
        const uint8_t *payload;
        size_t payload_size;
} ControllerReply;

/* Called once per request that was not cancelled, from the event loop. error: 0 or the negative errno of the
 * table above; reply is never NULL (status 0 and no payload when nothing came back). */
typedef void (*ControllerHandler)(
                ControllerClient *c, int error, const ControllerReply *reply, void *userdata);

/* A client on event (NULL: a private loop, for the *_sync() calls). Reads the server address and the TLS and
 * chain roots now, and the controller signing certificates stored by an earlier /certs. -ENOENT when the
 * server file or the TLS root is missing, -EINVAL when the server file is not "host:port" (both logged:
 * there is no client to ask last_error of). */
int controller_client_new(sd_event *event, ControllerClient **ret);
ControllerClient *controller_client_free(ControllerClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ControllerClient *, controller_client_free);

/* The device identity that signs every request: device.cert.pem with device.key.pem when that file exists
 * (software identity), otherwise the device key in the TPM, checked now against the certificate (through
 * tpm, or a context opened on eve_tcti() and closed again when NULL; tpm is not kept). Needed before any
 * POST without CONTROLLER_REQUEST_ONBOARDING. */
int controller_client_load_identity(ControllerClient *c, Tpm2Context *tpm);
/* Lends a TPM context for the device's signatures until called again (NULL: give it back). Without one, each
 * signature opens the TPM on eve_tcti() and closes it again, so that no connection stays open between
 * requests (a TPM without resource manager, such as swtpm, serves one connection at a time). */
void controller_client_set_tpm(ControllerClient *c, Tpm2Context *tpm);
/* The onboarding certificate and key (NULL paths: onboard.cert.pem / onboard.key.pem in the config dir). */
int controller_client_load_onboarding(ControllerClient *c, const char *cert_path, const char *key_path);
/* Headers EVE sends before it has a UUID: X-Serial-Number, X-Soft-Serial (NULL: none). */
int controller_client_set_serial(ControllerClient *c, const char *serial, const char *soft_serial);
/* 0 keeps the default. */
void controller_client_set_timeouts(ControllerClient *c, uint64_t connect_usec, uint64_t total_usec);
void controller_client_set_response_max(ControllerClient *c, size_t max);
/* How long libcurl stays loaded after the last request (0: unloaded at the next event loop iteration). */
void controller_client_set_unload_delay(ControllerClient *c, uint64_t usec);

const char *controller_client_last_error(const ControllerClient *c);
/* The https://host:port/api/v2/edgedevice/ prefix every path is appended to. */
const char *controller_client_base_url(const ControllerClient *c);
/* SHA-256 of the device certificate's DER (the senderCertHash we send), after load_identity. */
const uint8_t *controller_client_device_cert_hash(const ControllerClient *c);

/* POSTs msg (packed, wrapped in a signed AuthContainer) to base_url + path ("uuid", "id/<uuid>/attest" …).
 * The handler runs when it is done. ret may be NULL; a returned request may be cancelled until its handler
 * ran. */
int controller_client_post(
                ControllerClient *c,
                const char *path,
                const ProtobufCMessage *msg,
                ControllerRequestFlags flags,
                ControllerHandler handler,
                void *userdata,
                ControllerRequest **ret);
/* GET /certs: parses the ZControllerCert, checks the certHash of each certificate, verifies each signing,
 * ECDH and intermediate certificate against root-certificate.pem (intermediates from the same answer as the
 * chain), requires exactly one signing and at least one ECDH certificate, checks the envelope's signature
 * with the new signing certificate, then stores them: signing and intermediate files not in this answer are
 * removed, ECDH files are kept (a stored config may still refer to an older one). The reply's payload is the
 * ZControllerCert. */
int controller_client_fetch_certs(
                ControllerClient *c, ControllerHandler handler, void *userdata, ControllerRequest **ret);
/* Forgets the request: its handler will not run. */
void controller_request_cancel(ControllerRequest *r);
/* TPM commands sent through the contexts the client opened itself for signatures (not through a lent one).
 */
uint64_t controller_client_tpm_commands(const ControllerClient *c);
/* Requests in flight. */
unsigned controller_client_pending(const ControllerClient *c);

/* Blocking forms for oneshot programs: the same code, run on the client's loop until done. Only from outside
 * that loop's dispatch (-EBUSY otherwise). *ret_payload (malloc, may be NULL when empty) and *ret_status may
 * be NULL when not wanted. */
int controller_client_post_sync(
                ControllerClient *c,
                const char *path,
                const ProtobufCMessage *msg,
                ControllerRequestFlags flags,
                long *ret_status,
                uint8_t **ret_payload,
                size_t *ret_payload_size);
int controller_client_fetch_certs_sync(ControllerClient *c);

/* "id/<uuid>/<action>" with the UUID from $EVE_STATUS_DIR/uuid; -ENOENT when eve-register has not stored
 * one, -EBADMSG when the file does not hold a UUID. */
int controller_device_path(const char *action, char **ret);
/* The stored UUID (36 characters + NUL). */
int controller_read_uuid(char ret[static 37]);

/* ---- envelopes (pure; unit-tested) ---- */

/* Wraps payload in an AuthContainer signed by key (ECDSA P-256: raw r‖s; RSA: PKCS#1 v1.5) with
 * senderCertHash = cert_hash (32 bytes, algo SHA256_32BYTES) and, when sender_pem is not NULL,
 * senderCert = base64(sender_pem). ret: malloc'ed packed container. */
int controller_envelope_seal(
                gnutls_privkey_t key,
                const uint8_t cert_hash[static 32],
                const char *sender_pem,
                const void *payload,
                size_t payload_size,
                uint8_t **ret,
                size_t *ret_size);
/* The same envelope around a signature made elsewhere (the TPM: raw r‖s, 64 bytes): what seal does after
 * signing SHA-256(payload). */
int controller_envelope_pack(
                const uint8_t cert_hash[static 32],
                const char *sender_pem,
                const void *payload,
                size_t payload_size,
                const uint8_t *sig,
                size_t sig_size,
                uint8_t **ret,
                size_t *ret_size);
/* Unpacks an AuthContainer (at most max bytes) that carries a plain payload: -EBADMSG otherwise. */
int controller_envelope_parse(
                const void *data, size_t size, size_t max, Org__Lfedge__Eve__Auth__AuthContainer **ret);
/* Checks that an AuthContainer's header names the certificate whose PEM bytes are pem (SHA-256 over them:
 * 32 bytes with algo SHA256_32BYTES, the first 16 with SHA256_16BYTES): 1 yes, 0 no, -EBADMSG for a hash of
 * another length or algo. */
int controller_envelope_names(
                const Org__Lfedge__Eve__Auth__AuthContainer *ac, const void *pem, size_t pem_size);
/* Verifies the container's signature over SHA-256(payload) with the public key (gnutls_pubkey_t): ECDSA
 * P-256 as raw r‖s (64 bytes) or DER, or RSA PKCS#1 v1.5. 0, or -EBADMSG. */
int controller_envelope_verify(const Org__Lfedge__Eve__Auth__AuthContainer *ac, gnutls_pubkey_t key);

/* Whether an error means "try again later": -EAGAIN (503/5xx) and the network errors of the table above. */
bool controller_error_is_transient(int error);
/* HTTP status → 0 or negative errno, as in the table above. */
int controller_http_status_to_errno(long status);
