/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* controller-certs.h: the controller's certificates on the node, looked up by the certHash the controller
 * names them with (CONTRACT.md "Files shared between daemons"): eve-register writes every SIGNING and ECDH
 * certificate of a verified /certs as $EVE_CERTS_DIR/controller/<signing|ecdh>-<32 hex>.pem, the hex being
 * the 16-byte certHash = SHA-256(PEM)[:16]; several of each may exist (rotation). Readers: the response
 * verifier (signing), eve-configd (cipher contexts) and eve-vaultd (controller shares) (ecdh).
 *
 * A lookup never trusts the directory: the file's bytes must hash to the certHash asked for (a file that
 * does not match its name is refused, not used), and its first certificate must chain to the controller root
 * CA
 * ($EVE_CONFIG_DIR/root-certificate.pem), through the further certificates in the same file or the stored
 * intermediate-<hash>.pem files (as the controller client stores /certs). -ENOENT means
 * "the controller names a certificate we have not fetched": the caller's cue to fetch /certs again (issue
 * 13). */
#pragma once

#include <gnutls/x509.h>
#include <stdint.h>

#include "macro.h"
#include "tpm2-util.h"

#define CONTROLLER_CERT_HASH_SIZE 16U

typedef enum ControllerCertKind {
        CONTROLLER_CERT_SIGNING, /* ZCert type 1: signs AuthContainers */
        CONTROLLER_CERT_ECDH,    /* ZCert type 3: key agreement for cipher blocks and controller shares */
        _CONTROLLER_CERT_MAX,
        _CONTROLLER_CERT_INVALID = -EINVAL,
} ControllerCertKind;

const char *controller_cert_kind_to_string(ControllerCertKind k);

/* $EVE_CERTS_DIR/controller/<kind>-<hex of hash[0..16)>.pem, newly allocated (NULL on ENOMEM). */
char *controller_cert_path(ControllerCertKind kind, const uint8_t hash[static CONTROLLER_CERT_HASH_SIZE]);

/* The certificate hash names. hash is a certHash as the controller sends it: 16 bytes (SHA-256(PEM)[:16],
 * HASH_ALGORITHM_SHA256_16BYTES) or 32 (the whole SHA-256 of the PEM, HASH_ALGORITHM_SHA256_32BYTES, as in
 * an AuthContainer's senderCertHash). Returns 0 and the leaf; -EINVAL for a hash of another length, -ENOENT
 * when there is no such file, -EBADMSG when the file does not hash to hash, does not parse or does not chain
 * to the root CA, -ENOKEY when the root CA file is missing. ret_reason (may be NULL) gets a static text for
 * logs. */
int controller_cert_find(
                ControllerCertKind kind,
                const void *hash,
                size_t hash_size,
                gnutls_x509_crt_t *ret,
                const char **ret_reason);

/* ---- controller binding (issue 13; docs/SECURITY.md "Controller binding and key rotation") ----
 *
 * The device identity key's TPM authValue is
 *   SHA-256("eve-trust controller binding v1\0" ‖ u32be(n) ‖ root-certificate.pem (n bytes, as on disk)
 *           ‖ u32be(m) ‖ server (m bytes, surrounding whitespace trimmed))
 * over $EVE_CONFIG_DIR/root-certificate.pem and $EVE_CONFIG_DIR/server. Replacing either file changes the
 * value, and the key (noDA) refuses to sign: the node can no longer speak in its own name until the right
 * files are back, or until it is re-onboarded. */
#define CONTROLLER_BINDING_SIZE 32U

/* The authValue from the files now on disk: 0, -ENOENT when either file is missing (ret_reason, may be NULL,
 * gets a static text). ret is secret: the caller wipes it. */
int controller_binding_compute(uint8_t ret[static CONTROLLER_BINDING_SIZE], const char **ret_reason);

typedef enum ControllerBinding {
        CONTROLLER_BINDING_BOUND,       /* the key takes the value of the files on disk */
        CONTROLLER_BINDING_UNBOUND,     /* the key has an empty authValue (made before binding, or before the
                                         * files existed) and bind was false */
        CONTROLLER_BINDING_NEWLY_BOUND, /* it had an empty authValue; now bound to the files (same key pair)
                                         */
} ControllerBinding;

/* Checks the device key in the TPM against the files (one signature of a fixed, labelled digest). With bind,
 * an unbound key is bound now: evicted and re-created from the same template with the authValue (a primary
 * key: the same key pair, so the device certificate stays valid). Leaves the context's device authValue set
 * to the value the key takes. Returns a ControllerBinding, or -ENOENT (a file is missing, or no device key),
 * -EKEYREVOKED (the key is bound to other files: re-onboard, or restore them), another negative errno for
 * TPM failures. ret_reason (may be NULL) gets a static text. */
int controller_binding_check(Tpm2Context *c, bool bind, const char **ret_reason);

/* Removes the stored <kind>-<hex>.pem files whose 16-byte certHash is not among keep (n_keep entries): what
 * neither the controller's latest /certs nor the node's current config names any more. Returns how many were
 * removed (failures to remove are logged and skipped). */
int controller_certs_prune(
                ControllerCertKind kind, const uint8_t (*keep)[CONTROLLER_CERT_HASH_SIZE], size_t n_keep);
