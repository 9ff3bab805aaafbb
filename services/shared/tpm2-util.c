/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm2-util.c: a small wrapper over tpm2-tss ESAPI (STYLE.md §2). Every TSS return code is turned into a
 * negative errno at the call site, with the decoded text kept in the context for messages. Transient objects
 * and sessions are flushed on every path; persistent ones are only closed. */
#include <nettle/sha2.h>
#include <stdarg.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "log.h"
#include "memory-util.h"
#include "paths.h"
#include "tpm2-util.h"

/* A TCTI that forwards to the real one and counts commands: the benchmark's "TPM commands issued". */
typedef struct CountingTcti {
        TSS2_TCTI_CONTEXT_COMMON_V1 common;
        TSS2_TCTI_CONTEXT *inner;
        uint64_t *counter;
        uint64_t *rsa_keygens;
} CountingTcti;

struct Tpm2Context {
        unsigned n_ref;
        CountingTcti tcti;
        TSS2_TCTI_CONTEXT *inner;
        ESYS_CONTEXT *esys;
        uint64_t n_commands;
        uint64_t n_rsa_keygens;
        bool aes_cfb;
        ESYS_TR srk; /* cached, ESYS_TR_NONE until first use */
        char *last_error;
        TPM2B_AUTH device_auth; /* authValue for the device key (controller binding), empty by default */
        bool keep_ecdh;         /* tpm2_context_keep_ecdh_session() */
        ESYS_TR ecdh_key;       /* kept: the ECDH key's handle, ESYS_TR_NONE until first use */
        ESYS_TR ecdh_session;   /* kept: its salted session (ESYS_TR_PASSWORD without AES-CFB) */
};

/* An ESYS object that knows whether it must be flushed (transient, session) or only closed (persistent). */
typedef struct Tpm2Handle {
        ESYS_CONTEXT *esys;
        ESYS_TR tr;
        bool flush;
} Tpm2Handle;
#define TPM2_HANDLE_NULL { .esys = NULL, .tr = ESYS_TR_NONE, .flush = false }

static void tpm2_handle_done(Tpm2Handle *h) {
        if (!h->esys || h->tr == ESYS_TR_NONE)
                return;
        if (h->flush)
                (void) Esys_FlushContext(h->esys, h->tr);
        else
                (void) Esys_TR_Close(h->esys, &h->tr);
        h->tr = ESYS_TR_NONE;
}

static void esys_freep(void *p) {
        void **pp = p;
        Esys_Free(*pp);
        *pp = NULL;
}
#define _cleanup_esys_ _cleanup_(esys_freep)

static uint32_t be_read(const uint8_t *p, size_t n) {
        uint32_t v = 0;
        for (size_t i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

/* Whether a marshalled command has the TPM generate an RSA key (TPM2_CreatePrimary, Create or CreateLoaded with
 * an RSA template): seconds on a real TPM, and what no boot path may do. Layout: header (tag, size, code), the
 * one handle, the authorization area when tagged with sessions, TPM2B_SENSITIVE_CREATE, then the template
 * (TPM2B_PUBLIC or TPM2B_TEMPLATE), whose first field is the algorithm. */
static bool command_generates_rsa_key(size_t size, const uint8_t *cmd) {
        size_t off = 10 + 4;
        uint32_t cc;

        if (size < off)
                return false;
        cc = be_read(cmd + 6, 4);
        if (cc != TPM2_CC_CreatePrimary && cc != TPM2_CC_Create && cc != TPM2_CC_CreateLoaded)
                return false;
        if (be_read(cmd, 2) == TPM2_ST_SESSIONS) {
                if (size < off + 4)
                        return false;
                off += 4 + be_read(cmd + off, 4);
        }
        if (size < off + 2)
                return false;
        off += 2 + be_read(cmd + off, 2); /* inSensitive */
        if (size < off + 4)
                return false;
        return be_read(cmd + off + 2, 2) == TPM2_ALG_RSA;
}

static TSS2_RC counting_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *command) {
        CountingTcti *t = (CountingTcti *) ctx;
        (*t->counter)++;
        if (command_generates_rsa_key(size, command))
                (*t->rsa_keygens)++;
        return Tss2_Tcti_Transmit(t->inner, size, command);
}
static TSS2_RC counting_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *response, int32_t timeout) {
        CountingTcti *t = (CountingTcti *) ctx;
        return Tss2_Tcti_Receive(t->inner, size, response, timeout);
}
static void counting_finalize(TSS2_TCTI_CONTEXT *ctx) {
        /* The inner TCTI is finalized by its owner, the Tpm2Context. */
}
static TSS2_RC counting_cancel(TSS2_TCTI_CONTEXT *ctx) {
        return Tss2_Tcti_Cancel(((CountingTcti *) ctx)->inner);
}
static TSS2_RC counting_get_poll_handles(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *handles, size_t *n) {
        return Tss2_Tcti_GetPollHandles(((CountingTcti *) ctx)->inner, handles, n);
}
static TSS2_RC counting_set_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality) {
        return Tss2_Tcti_SetLocality(((CountingTcti *) ctx)->inner, locality);
}

static void set_error(Tpm2Context *c, const char *fmt, ...) _printf_(2, 3);
static void set_error(Tpm2Context *c, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(c->last_error);
        c->last_error = s;
        log_debug("TPM: %s", s ?: "(out of memory)");
}

/* The TPM's own code with the parameter/handle/session number stripped. */
static TSS2_RC rc_base(TSS2_RC rc) {
        if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER && (rc & TSS2_RC_LAYER_MASK) != TSS2_RESMGR_TPM_RC_LAYER)
                return rc;
        rc &= 0xFFFF;
        if (rc & TPM2_RC_FMT1)
                return rc & (TPM2_RC_FMT1 | 0x3F);
        return rc & 0xFFF;
}

static int rc_to_errno(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        if (layer == TSS2_TCTI_RC_LAYER)
                return (rc & TSS2_RC_LAYER_MASK) == rc ? EIO : ENXIO;
        if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
                return ENOTRECOVERABLE;
        switch (rc_base(rc)) {
        case TPM2_RC_VALUE:
                return ENXIO;
        case TPM2_RC_HANDLE:
                return ENOENT;
        case TPM2_RC_POLICY_FAIL:
        case TPM2_RC_PCR_CHANGED:
                return EPERM;
        case TPM2_RC_LOCKOUT:
                return ENOLCK;
        case TPM2_RC_BAD_AUTH:
        case TPM2_RC_AUTH_FAIL:
                return EACCES;
        case TPM2_RC_NV_DEFINED:
                return EEXIST;
        case TPM2_RC_OBJECT_MEMORY:
        case TPM2_RC_SESSION_MEMORY:
        case TPM2_RC_NV_SPACE:
                return ENOSPC;
        default:
                return ENOTRECOVERABLE;
        }
}

static int tpm2_fail(Tpm2Context *c, TSS2_RC rc, const char *what) {
        set_error(c, "%s failed: %s (0x%x)", what, Tss2_RC_Decode(rc), rc);
        return -rc_to_errno(rc);
}

const char *tpm2_context_last_error(const Tpm2Context *c) {
        return c && c->last_error ? c->last_error : "";
}

uint64_t tpm2_context_rsa_keygens(const Tpm2Context *c) {
        return c->n_rsa_keygens;
}

uint64_t tpm2_context_commands(const Tpm2Context *c) {
        return c ? c->n_commands : 0;
}

bool tpm2_context_supports_aes_cfb(const Tpm2Context *c) {
        return c && c->aes_cfb;
}

int tpm2_context_set_device_auth(Tpm2Context *c, const void *auth, size_t size) {
        if (size > sizeof c->device_auth.buffer || (size > 0 && !auth))
                return -EINVAL;
        erase(&c->device_auth, sizeof c->device_auth);
        c->device_auth.size = (uint16_t) size;
        if (size > 0)
                memcpy(c->device_auth.buffer, auth, size);
        return 0;
}

static void ecdh_kept_drop(Tpm2Context *c);

static Tpm2Context *tpm2_context_free(Tpm2Context *c) {
        if (!c)
                return NULL;
        if (c->esys) {
                ecdh_kept_drop(c);
                if (c->srk != ESYS_TR_NONE)
                        (void) Esys_TR_Close(c->esys, &c->srk);
                Esys_Finalize(&c->esys);
        }
        if (c->inner)
                Tss2_TctiLdr_Finalize(&c->inner);
        free(c->last_error);
        erase(&c->device_auth, sizeof c->device_auth);
        return mfree(c);
}

Tpm2Context *tpm2_context_ref(Tpm2Context *c) {
        if (c)
                c->n_ref++;
        return c;
}

Tpm2Context *tpm2_context_unref(Tpm2Context *c) {
        if (!c)
                return NULL;
        if (--c->n_ref > 0)
                return NULL;
        return tpm2_context_free(c);
}

static const TPMT_SYM_DEF aes_128_cfb = {
        .algorithm = TPM2_ALG_AES,
        .keyBits.aes = 128,
        .mode.aes = TPM2_ALG_CFB,
};

/* "NAME:CONF" → "libtss2-tcti-NAME.so.0:CONF": tss2's loader, given a short name, first tries it as a library
 * file of its own along the whole library path (~40 failed opens, ~80 ms per process under TCG); systemd names
 * the library directly too. A configuration naming a file, or without a name, is kept. NULL on ENOMEM. */
static char *tcti_conf_by_library(const char *conf) {
        size_t n = strcspn(conf, ":");
        char *p;

        if (n == 0 || memchr(conf, '/', n) || memchr(conf, '.', n))
                return strdup(conf);
        if (asprintf(&p, "libtss2-tcti-%.*s.so.0%s", (int) n, conf, conf + n) < 0)
                return NULL;
        return p;
}

int tpm2_context_new(const char *tcti, Tpm2Context **ret) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        _cleanup_free_ char *conf = NULL;
        TPMT_PUBLIC_PARMS parms = {
                .type = TPM2_ALG_SYMCIPHER,
                .parameters.symDetail.sym = {
                        .algorithm = TPM2_ALG_AES,
                        .keyBits.aes = 128,
                        .mode.aes = TPM2_ALG_CFB,
                },
        };
        TSS2_RC rc;

        /* The TSS logs its own errors to stderr; ours are better worded. $TSS2_LOG still wins if set. */
        (void) setenv("TSS2_LOG", "all+none", /* overwrite= */ 0);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->srk = c->ecdh_key = c->ecdh_session = ESYS_TR_NONE;

        conf = tcti_conf_by_library(tcti ?: eve_tcti());
        if (!conf)
                return -ENOMEM;
        rc = Tss2_TctiLdr_Initialize(conf, &c->inner);
        if (rc != TSS2_RC_SUCCESS) {
                set_error(c, "Cannot open TPM through TCTI \"%s\": %s", tcti ?: eve_tcti(), Tss2_RC_Decode(rc));
                return -ENXIO;
        }
        c->tcti = (CountingTcti) {
                .common = {
                        .magic = UINT64_C(0x6576652d74727374), /* "eve-trst" */
                        .version = 1,
                        .transmit = counting_transmit,
                        .receive = counting_receive,
                        .finalize = counting_finalize,
                        .cancel = counting_cancel,
                        .getPollHandles = counting_get_poll_handles,
                        .setLocality = counting_set_locality,
                },
                .inner = c->inner,
                .counter = &c->n_commands,
                .rsa_keygens = &c->n_rsa_keygens,
        };

        rc = Esys_Initialize(&c->esys, (TSS2_TCTI_CONTEXT *) &c->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Esys_Initialize");

        /* Also proves the TPM answers. */
        rc = Esys_TestParms(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &parms);
        if (rc == TSS2_RC_SUCCESS)
                c->aes_cfb = true;
        else if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER)
                log_debug("TPM does not support AES-128-CFB, parameter encryption is off: %s", Tss2_RC_Decode(rc));
        else {
                int r = tpm2_fail(c, rc, "TPM2_TestParms");
                return r == -ENOTRECOVERABLE ? -ENXIO : r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int tpm2_self_test(Tpm2Context *c) {
        _cleanup_esys_ TPM2B_MAX_BUFFER *out = NULL;
        TPM2_RC result;
        TSS2_RC rc;

        rc = Esys_SelfTest(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_NO);
        if (rc != TSS2_RC_SUCCESS) {
                (void) tpm2_fail(c, rc, "TPM2_SelfTest");
                return -EIO;
        }
        rc = Esys_GetTestResult(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &out, &result);
        if (rc != TSS2_RC_SUCCESS) {
                (void) tpm2_fail(c, rc, "TPM2_GetTestResult");
                return -EIO;
        }
        if (result != TPM2_RC_SUCCESS) {
                set_error(c, "TPM self test failed: %s", Tss2_RC_Decode(result));
                return -EIO;
        }
        return 0;
}

/* ---- keys ---- */

static const char *const key_names[_TPM2_KEY_MAX] = {
        [TPM2_KEY_SRK] = "SRK",
        [TPM2_KEY_DEVICE] = "device identity key",
        [TPM2_KEY_ECDH] = "ECDH key",
        [TPM2_KEY_ATTEST] = "attestation key",
};
static const uint32_t key_handles[_TPM2_KEY_MAX] = {
        [TPM2_KEY_SRK] = TPM2_HANDLE_SRK,
        [TPM2_KEY_DEVICE] = TPM2_HANDLE_DEVICE,
        [TPM2_KEY_ECDH] = TPM2_HANDLE_ECDH,
        [TPM2_KEY_ATTEST] = TPM2_HANDLE_ATTEST,
};

const char *tpm2_key_to_string(Tpm2Key k) {
        return k >= 0 && k < _TPM2_KEY_MAX ? key_names[k] : NULL;
}

uint32_t tpm2_key_handle(Tpm2Key k) {
        return k >= 0 && k < _TPM2_KEY_MAX ? key_handles[k] : 0;
}

#define ATTR_COMMON                                                                                           \
        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |                  \
         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA)

/* The templates (docs/TPM.md). All ECC NIST P-256, nameAlg SHA-256, empty authValue and authPolicy. */
static void key_template(Tpm2Key k, TPM2B_PUBLIC *ret) {
        TPMT_PUBLIC p = {
                .type = TPM2_ALG_ECC,
                .nameAlg = TPM2_ALG_SHA256,
                .parameters.eccDetail = {
                        .symmetric.algorithm = TPM2_ALG_NULL,
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                },
        };

        switch (k) {
        case TPM2_KEY_SRK:
                /* TCG provisioning guidance, EK credential profile template L-2 with the guidance's changes,
                 * and an empty unique field: byte for byte what systemd creates at 0x81000001. */
                p.objectAttributes = ATTR_COMMON | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
                p.parameters.eccDetail.symmetric = (TPMT_SYM_DEF_OBJECT) {
                        .algorithm = TPM2_ALG_AES,
                        .keyBits.aes = 128,
                        .mode.aes = TPM2_ALG_CFB,
                };
                break;
        case TPM2_KEY_DEVICE:
                p.objectAttributes = ATTR_COMMON | TPMA_OBJECT_SIGN_ENCRYPT;
                p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
                p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
                break;
        case TPM2_KEY_ECDH:
                p.objectAttributes = ATTR_COMMON | TPMA_OBJECT_DECRYPT;
                p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDH;
                p.parameters.eccDetail.scheme.details.ecdh.hashAlg = TPM2_ALG_SHA256;
                break;
        case TPM2_KEY_ATTEST:
                p.objectAttributes = ATTR_COMMON | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
                p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
                p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
                break;
        default:
                abort();
        }
        *ret = (TPM2B_PUBLIC) { .size = 0, .publicArea = p };
}

/* TCG EK credential profile, template L-2 (ECC NIST P-256), with its standard authPolicy (PolicySecret(EH)). */
static void ek_template(TPM2B_PUBLIC *ret) {
        static const uint8_t ek_policy[TPM2_SHA256_SIZE] = {
                0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
                0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
        };
        TPMT_PUBLIC p = {
                .type = TPM2_ALG_ECC,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                                    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                .authPolicy.size = sizeof(ek_policy),
                .parameters.eccDetail = {
                        .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                },
                .unique.ecc = { .x.size = 32, .y.size = 32 },
        };
        memcpy(p.authPolicy.buffer, ek_policy, sizeof(ek_policy));
        *ret = (TPM2B_PUBLIC) { .size = 0, .publicArea = p };
}

static int ecc_point_from_public(const TPMT_PUBLIC *p, Tpm2EccPoint *ret) {
        const TPMS_ECC_POINT *e = &p->unique.ecc;

        if (p->type != TPM2_ALG_ECC || p->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
            e->x.size > TPM2_ECC_P256_SIZE || e->y.size > TPM2_ECC_P256_SIZE)
                return -EMEDIUMTYPE;
        if (ret) {
                *ret = (Tpm2EccPoint) {};
                memcpy(ret->x + TPM2_ECC_P256_SIZE - e->x.size, e->x.buffer, e->x.size);
                memcpy(ret->y + TPM2_ECC_P256_SIZE - e->y.size, e->y.buffer, e->y.size);
        }
        return 0;
}

/* Opens a persistent object: 1 and *ret set, 0 if the handle is empty. */
static int persistent_open(Tpm2Context *c, uint32_t handle, Tpm2Handle *ret) {
        ESYS_TR tr = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_TR_FromTPMPublic(c->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
        if (rc != TSS2_RC_SUCCESS) {
                if (rc_base(rc) == TPM2_RC_HANDLE)
                        return 0;
                return tpm2_fail(c, rc, "Reading persistent object");
        }
        *ret = (Tpm2Handle) { .esys = c->esys, .tr = tr, .flush = false };
        return 1;
}

int tpm2_persistent_exists(Tpm2Context *c, uint32_t handle) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        TSS2_RC rc;

        rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, handle, 1,
                                &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_GetCapability(handles)");
        return cap->data.handles.count > 0 && cap->data.handles.handle[0] == handle;
}

static int public_matches_template(Tpm2Context *c, Tpm2Key k, const TPMT_PUBLIC *p);

/* The public area ESYS read when it opened tr (Esys_TR_FromTPMPublic), from its serialized form: handle,
 * TPM2B_NAME, resource type, TPM2B_PUBLIC (what systemd keeps as tpm2_srk). Saves a TPM2_ReadPublic.
 * -EBADMSG if the form is not that one. */
static int public_of_tr(Tpm2Context *c, ESYS_TR tr, TPM2B_PUBLIC *ret) {
        _cleanup_esys_ uint8_t *buf = NULL;
        TPM2B_NAME name = {};
        uint32_t handle, type;
        size_t size = 0, off = 0;

        if (Esys_TR_Serialize(c->esys, tr, &buf, &size) != TSS2_RC_SUCCESS ||
            Tss2_MU_UINT32_Unmarshal(buf, size, &off, &handle) != TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_NAME_Unmarshal(buf, size, &off, &name) != TSS2_RC_SUCCESS ||
            Tss2_MU_UINT32_Unmarshal(buf, size, &off, &type) != TSS2_RC_SUCCESS || type != 1 /* key */ ||
            Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, size, &off, ret) != TSS2_RC_SUCCESS || off != size)
                return -EBADMSG;
        return 0;
}

static int srk_get(Tpm2Context *c, bool create, ESYS_TR *ret) {
        int r;

        if (c->srk == ESYS_TR_NONE) {
                _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
                TPM2B_PUBLIC pub = {};

                /* On every boot the SRK is there: one TPM2_ReadPublic (opening it) and the template check on
                 * what that returned. */
                r = persistent_open(c, TPM2_HANDLE_SRK, &h);
                if (r < 0)
                        return r;
                if (r > 0 && public_of_tr(c, h.tr, &pub) >= 0) {
                        r = public_matches_template(c, TPM2_KEY_SRK, &pub.publicArea);
                        if (r < 0)
                                return r;
                } else {
                        /* Missing (created if asked), or a serialized form we do not know: the long way. */
                        tpm2_handle_done(&h);
                        r = tpm2_key_ensure(c, TPM2_KEY_SRK, create, NULL);
                        if (r < 0)
                                return r;
                        r = persistent_open(c, TPM2_HANDLE_SRK, &h);
                        if (r < 0)
                                return r;
                        if (r == 0) {
                                set_error(c, "The SRK at 0x%08x vanished", TPM2_HANDLE_SRK);
                                return -ENOENT;
                        }
                }
                c->srk = h.tr;
                h.tr = ESYS_TR_NONE;
        }
        *ret = c->srk;
        return 0;
}

static int public_matches_template(Tpm2Context *c, Tpm2Key k, const TPMT_PUBLIC *p) {
        TPM2B_PUBLIC t;

        key_template(k, &t);
        if (p->type != t.publicArea.type || p->nameAlg != t.publicArea.nameAlg ||
            p->objectAttributes != t.publicArea.objectAttributes ||
            p->parameters.eccDetail.curveID != t.publicArea.parameters.eccDetail.curveID ||
            p->parameters.eccDetail.scheme.scheme != t.publicArea.parameters.eccDetail.scheme.scheme) {
                set_error(c, "The object at 0x%08x is not our %s (type 0x%x, attributes 0x%x; expected 0x%x, 0x%x)",
                          tpm2_key_handle(k), tpm2_key_to_string(k), p->type, p->objectAttributes,
                          t.publicArea.type, t.publicArea.objectAttributes);
                return -EBADMSG;
        }
        return 0;
}

static int create_primary(Tpm2Context *c, ESYS_TR hierarchy, const TPM2B_PUBLIC *template,
                const TPM2B_AUTH *auth, Tpm2Handle *ret, TPM2B_PUBLIC **ret_public) {

        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcr = {};
        ESYS_TR tr = ESYS_TR_NONE;
        TSS2_RC rc;

        if (auth)
                sensitive.sensitive.userAuth = *auth;
        rc = Esys_CreatePrimary(c->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                template, &outside, &creation_pcr, &tr, ret_public, NULL, NULL, NULL);
        erase(&sensitive, sizeof sensitive);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_CreatePrimary");
        *ret = (Tpm2Handle) { .esys = c->esys, .tr = tr, .flush = true };
        return 0;
}

static int persist(Tpm2Context *c, Tpm2Handle *transient, uint32_t handle) {
        ESYS_TR ptr = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_EvictControl(c->esys, ESYS_TR_RH_OWNER, transient->tr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, handle, &ptr);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_EvictControl");
        (void) Esys_TR_Close(c->esys, &ptr);
        return 0;
}

int tpm2_key_ensure(Tpm2Context *c, Tpm2Key k, bool create, Tpm2EccPoint *ret_public) {
        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        uint32_t handle = tpm2_key_handle(k);
        TPM2B_PUBLIC template;
        TSS2_RC rc;
        int r;

        if (handle == 0)
                return -EINVAL;

        r = persistent_open(c, handle, &h);
        if (r < 0)
                return r;
        if (r > 0) {
                rc = Esys_ReadPublic(c->esys, h.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_fail(c, rc, "TPM2_ReadPublic");
                r = public_matches_template(c, k, &pub->publicArea);
                if (r < 0)
                        return r;
                if (ret_public)
                        return ecc_point_from_public(&pub->publicArea, ret_public);
                return 0;
        }
        if (!create) {
                set_error(c, "No %s at 0x%08x", tpm2_key_to_string(k), handle);
                return -ENOENT;
        }

        key_template(k, &template);
        /* The device key gets the context's authValue (the controller binding): it is not part of the key's
         * derivation, so the same seed and template give the same key pair whatever the value. */
        r = create_primary(c, ESYS_TR_RH_OWNER, &template, k == TPM2_KEY_DEVICE ? &c->device_auth : NULL, &h,
                           &pub);
        if (r < 0)
                return r;
        r = persist(c, &h, handle);
        if (r < 0)
                return r;
        log_debug("Created %s at 0x%08x.", tpm2_key_to_string(k), handle);
        if (ret_public) {
                r = ecc_point_from_public(&pub->publicArea, ret_public);
                if (r < 0)
                        return r;
        }
        return 1;
}

int tpm2_persistent_public_marshal(Tpm2Context *c, uint32_t handle, uint8_t **ret, size_t *ret_size) {
        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t off = 0;
        TSS2_RC rc;
        int r;

        r = persistent_open(c, handle, &h);
        if (r < 0)
                return r;
        if (r == 0) {
                set_error(c, "No object at 0x%08x", handle);
                return -ENOENT;
        }
        rc = Esys_ReadPublic(c->esys, h.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_ReadPublic");
        buf = malloc(sizeof(TPM2B_PUBLIC));
        if (!buf)
                return -ENOMEM;
        rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(TPM2B_PUBLIC), &off);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Marshalling TPM2B_PUBLIC");
        *ret = TAKE_PTR(buf);
        *ret_size = off;
        return 0;
}

int tpm2_srk_serialize(Tpm2Context *c, bool create, uint8_t **ret, size_t *ret_size) {
        uint8_t *buf = NULL;
        size_t size = 0;
        ESYS_TR srk;
        TSS2_RC rc;
        int r;

        r = srk_get(c, create, &srk);
        if (r < 0)
                return r;
        rc = Esys_TR_Serialize(c->esys, srk, &buf, &size);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Serializing the SRK (Esys_TR_Serialize)");
        /* Esys allocates with calloc(); hand out plain malloc memory the caller frees with free(). */
        *ret = buf;
        *ret_size = size;
        return 0;
}

int tpm2_key_evict(Tpm2Context *c, Tpm2Key k) {
        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
        ESYS_TR out = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        if (k == TPM2_KEY_SRK || tpm2_key_handle(k) == 0)
                return -EINVAL;
        r = persistent_open(c, tpm2_key_handle(k), &h);
        if (r <= 0)
                return r;
        rc = Esys_EvictControl(c->esys, ESYS_TR_RH_OWNER, h.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               tpm2_key_handle(k), &out);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_EvictControl(evict)");
        h.tr = ESYS_TR_NONE; /* ESYS invalidated it */
        return 1;
}

int tpm2_ek_ensure(Tpm2Context *c, bool create, uint32_t *ret_handle) {
        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
        TPM2B_PUBLIC template;
        int r;

        for (unsigned i = 0; i < 2; i++) {
                uint32_t handle = i == 0 ? TPM2_HANDLE_EK_RSA : TPM2_HANDLE_EK_ECC;

                r = tpm2_persistent_exists(c, handle);
                if (r < 0)
                        return r;
                if (r > 0) {
                        *ret_handle = handle;
                        return 0;
                }
        }
        if (!create) {
                set_error(c, "No endorsement key at 0x%08x or 0x%08x", TPM2_HANDLE_EK_RSA, TPM2_HANDLE_EK_ECC);
                return -ENOENT;
        }
        ek_template(&template);
        r = create_primary(c, ESYS_TR_RH_ENDORSEMENT, &template, NULL, &h, NULL);
        if (r < 0)
                return r;
        r = persist(c, &h, TPM2_HANDLE_EK_ECC);
        if (r < 0)
                return r;
        *ret_handle = TPM2_HANDLE_EK_ECC;
        return 1;
}

#define NV_CHUNK 512U
#define NV_CERT_MAX 4096U

int tpm2_ek_certificate(Tpm2Context *c, uint8_t **ret, size_t *ret_size) {
        static const uint32_t indexes[] = { TPM2_NV_EK_CERT_RSA, TPM2_NV_EK_CERT_ECC };

        for (size_t i = 0; i < ELEMENTSOF(indexes); i++) {
                _cleanup_(tpm2_handle_done) Tpm2Handle nv = TPM2_HANDLE_NULL;
                _cleanup_esys_ TPM2B_NV_PUBLIC *pub = NULL;
                _cleanup_free_ uint8_t *buf = NULL;
                ESYS_TR auth;
                uint16_t size;
                TSS2_RC rc;
                int r;

                r = persistent_open(c, indexes[i], &nv);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                rc = Esys_NV_ReadPublic(c->esys, nv.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_fail(c, rc, "TPM2_NV_ReadPublic");
                size = pub->nvPublic.dataSize;
                if (size == 0 || size > NV_CERT_MAX) {
                        set_error(c, "EK certificate NV index 0x%08x has an implausible size %u", indexes[i], size);
                        return -EBADMSG;
                }
                if (pub->nvPublic.attributes & TPMA_NV_AUTHREAD)
                        auth = nv.tr;
                else if (pub->nvPublic.attributes & TPMA_NV_OWNERREAD)
                        auth = ESYS_TR_RH_OWNER;
                else {
                        set_error(c, "EK certificate NV index 0x%08x is not readable by owner or itself", indexes[i]);
                        return -EACCES;
                }
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                for (uint16_t off = 0; off < size;) {
                        _cleanup_esys_ TPM2B_MAX_NV_BUFFER *data = NULL;
                        uint16_t n = MIN((uint16_t) NV_CHUNK, (uint16_t) (size - off));

                        rc = Esys_NV_Read(c->esys, auth, nv.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                                          off, &data);
                        if (rc != TSS2_RC_SUCCESS)
                                return tpm2_fail(c, rc, "TPM2_NV_Read");
                        if (data->size == 0 || data->size > n) {
                                set_error(c, "TPM2_NV_Read returned %u bytes, asked %u", data->size, n);
                                return -EBADMSG;
                        }
                        memcpy(buf + off, data->buffer, data->size);
                        off += data->size;
                }
                *ret = TAKE_PTR(buf);
                *ret_size = size;
                return 0;
        }
        set_error(c, "No EK certificate in NV (0x%08x, 0x%08x)", indexes[0], indexes[1]);
        return -ENOENT;
}

/* ---- sessions ---- */

/* A session salted with the SRK, with AES-128-CFB parameter encryption when the TPM has it (attrs say which
 * direction). Without AES-CFB: an unsalted HMAC session is pointless, so *ret = ESYS_TR_PASSWORD for HMAC, or a
 * plain policy session. */
static int start_session(Tpm2Context *c, TPM2_SE type, TPMA_SESSION attrs, Tpm2Handle *ret) {
        TPMT_SYM_DEF sym = c->aes_cfb ? aes_128_cfb : (TPMT_SYM_DEF) { .algorithm = TPM2_ALG_NULL };
        ESYS_TR srk = ESYS_TR_NONE, s = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        if (!c->aes_cfb && type == TPM2_SE_HMAC) {
                *ret = (Tpm2Handle) { .esys = NULL, .tr = ESYS_TR_PASSWORD, .flush = false };
                return 0;
        }
        if (c->aes_cfb) {
                r = srk_get(c, /* create= */ true, &srk);
                if (r < 0)
                        return r;
        }
        rc = Esys_StartAuthSession(c->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                   type, &sym, TPM2_ALG_SHA256, &s);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_StartAuthSession");
        *ret = (Tpm2Handle) { .esys = c->esys, .tr = s, .flush = true };
        rc = Esys_TRSess_SetAttributes(c->esys, s, TPMA_SESSION_CONTINUESESSION | (c->aes_cfb ? attrs : 0), 0xff);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Esys_TRSess_SetAttributes");
        return 0;
}

/* ---- sign, ECDH, quote ---- */

static void copy_be(uint8_t *dst, size_t dst_size, const uint8_t *src, size_t src_size) {
        memset(dst, 0, dst_size);
        if (src_size > dst_size) {
                src += src_size - dst_size;
                src_size = dst_size;
        }
        memcpy(dst + dst_size - src_size, src, src_size);
}

int tpm2_sign_digest(Tpm2Context *c, Tpm2Key k, const uint8_t digest[static TPM2_SHA256_SIZE],
                uint8_t ret_rs[static 2 * TPM2_ECC_P256_SIZE]) {

        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
        _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
        TPM2B_DIGEST d = { .size = TPM2_SHA256_SIZE };
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
        TPMT_TK_HASHCHECK validation = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
        TSS2_RC rc;
        int r;

        if (k != TPM2_KEY_DEVICE)
                return -EINVAL; /* the attestation key is restricted: it signs only TPM-made structures */
        memcpy(d.buffer, digest, TPM2_SHA256_SIZE);
        r = persistent_open(c, tpm2_key_handle(k), &h);
        if (r < 0)
                return r;
        if (r == 0) {
                set_error(c, "No %s at 0x%08x", tpm2_key_to_string(k), tpm2_key_handle(k));
                return -ENOENT;
        }
        /* A password session: the binding's authValue is derived from public files (the controller root CA
         * and address), so keeping it off the bus would protect nothing, and a salted session costs an ECC
         * key exchange in the TPM per signature (about 25 ms against 1 ms on swtpm). */
        rc = Esys_TR_SetAuth(c->esys, h.tr, &c->device_auth);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Esys_TR_SetAuth");
        rc = Esys_Sign(c->esys, h.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme, &validation,
                       &sig);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm2_fail(c, rc, "TPM2_Sign");
                if (r == -EACCES)
                        set_error(c, "The %s refused the authorisation value (%s): its binding differs",
                                  tpm2_key_to_string(k), Tss2_RC_Decode(rc));
                return r;
        }
        if (sig->sigAlg != TPM2_ALG_ECDSA)
                return -EBADMSG;
        copy_be(ret_rs, TPM2_ECC_P256_SIZE, sig->signature.ecdsa.signatureR.buffer,
                sig->signature.ecdsa.signatureR.size);
        copy_be(ret_rs + TPM2_ECC_P256_SIZE, TPM2_ECC_P256_SIZE, sig->signature.ecdsa.signatureS.buffer,
                sig->signature.ecdsa.signatureS.size);
        return 0;
}

/* Whether rc says that a handle or session the command named is not (or no longer) what the TPM has: the TPM
 * was reset, the session flushed or expired, the key at the persistent handle replaced (the session's HMAC
 * covers the key's name), or ESYS's object closed under us (it hands out one ESYS_TR per TPM handle, so
 * evicting the key in this context closes the kept one). */
static bool rc_handle_lost(TSS2_RC rc) {
        TSS2_RC b = rc_base(rc);

        if (rc == TSS2_ESYS_RC_RSP_AUTH_FAILED || rc == TSS2_ESYS_RC_BAD_TR)
                return true;
        if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER &&
            (rc & TSS2_RC_LAYER_MASK) != TSS2_RESMGR_TPM_RC_LAYER)
                return false;
        if (b >= TPM2_RC_REFERENCE_H0 && b <= TPM2_RC_REFERENCE_S6)
                return true;
        return b == TPM2_RC_HANDLE || b == TPM2_RC_EXPIRED || b == TPM2_RC_AUTH_FAIL ||
                        b == TPM2_RC_BAD_AUTH;
}

/* Lets go of the kept ECDH key handle and session (tpm2_context_keep_ecdh_session). */
static void ecdh_kept_drop(Tpm2Context *c) {
        if (!c->esys)
                return;
        if (c->ecdh_session != ESYS_TR_NONE && c->ecdh_session != ESYS_TR_PASSWORD &&
            Esys_FlushContext(c->esys, c->ecdh_session) != TSS2_RC_SUCCESS)
                /* Not in the TPM any more (reset) or the TPM is gone: ESYS still has its copy. */
                (void) Esys_TR_Close(c->esys, &c->ecdh_session);
        if (c->ecdh_key != ESYS_TR_NONE)
                (void) Esys_TR_Close(c->esys, &c->ecdh_key);
        c->ecdh_session = c->ecdh_key = ESYS_TR_NONE;
}

void tpm2_context_keep_ecdh_session(Tpm2Context *c, bool keep) {
        c->keep_ecdh = keep;
        if (!keep)
                ecdh_kept_drop(c);
}

/* The ECDH key's handle and the ZGen session: made for this call (the caller's cleanup lets them go), or the
 * context's kept ones (made on first use; *ret handles that do not own them). 1 if kept ones were reused. */
static int ecdh_handles(Tpm2Context *c, Tpm2Handle *ret_key, Tpm2Handle *ret_session) {
        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL, s = TPM2_HANDLE_NULL;
        bool reused = c->keep_ecdh && c->ecdh_key != ESYS_TR_NONE;
        int r;

        if (!reused) {
                r = persistent_open(c, TPM2_HANDLE_ECDH, &h);
                if (r < 0)
                        return r;
                if (r == 0) {
                        set_error(c, "No ECDH key at 0x%08x", TPM2_HANDLE_ECDH);
                        return -ENOENT;
                }
                r = start_session(c, TPM2_SE_HMAC, TPMA_SESSION_ENCRYPT, &s);
                if (r < 0)
                        return r;
                if (!c->keep_ecdh) {
                        *ret_key = h;
                        *ret_session = s;
                        h = s = (Tpm2Handle) TPM2_HANDLE_NULL;
                        return 0;
                }
                c->ecdh_key = h.tr;
                c->ecdh_session = s.tr;
                h = s = (Tpm2Handle) TPM2_HANDLE_NULL;
        }
        *ret_key = (Tpm2Handle){ .esys = NULL, .tr = c->ecdh_key };
        *ret_session = (Tpm2Handle){ .esys = NULL, .tr = c->ecdh_session };
        return reused;
}

int tpm2_ecdh_zgen(Tpm2Context *c, const Tpm2EccPoint *peer, uint8_t **ret_point) {
        _cleanup_esys_ TPM2B_ECC_POINT *out = NULL;
        TPM2B_ECC_POINT in = {};
        uint8_t *p;
        TSS2_RC rc;
        int r;

        in.point.x.size = in.point.y.size = TPM2_ECC_P256_SIZE;
        memcpy(in.point.x.buffer, peer->x, TPM2_ECC_P256_SIZE);
        memcpy(in.point.y.buffer, peer->y, TPM2_ECC_P256_SIZE);

        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL, s = TPM2_HANDLE_NULL;
                bool reused;

                r = ecdh_handles(c, &h, &s);
                if (r < 0)
                        return r;
                reused = r > 0;
                rc = Esys_ECDH_ZGen(c->esys, h.tr, s.tr, ESYS_TR_NONE, ESYS_TR_NONE, &in, &out);
                if (rc == TSS2_RC_SUCCESS)
                        break;
                r = tpm2_fail(c, rc, "TPM2_ECDH_ZGen");
                /* A kept session is not trusted after a failure: the next call starts a new one. */
                ecdh_kept_drop(c);
                if (!reused || attempt > 0 || !rc_handle_lost(rc))
                        return r;
                log_debug("TPM: the kept ECDH key handle or session is gone (%s), retrying with new ones.",
                          Tss2_RC_Decode(rc));
        }
        if (out->point.x.size > TPM2_ECC_P256_SIZE || out->point.y.size > TPM2_ECC_P256_SIZE) {
                erase(out, sizeof(*out));
                return -EBADMSG;
        }
        p = eve_secret_alloc(2 * TPM2_ECC_P256_SIZE);
        if (!p) {
                erase(out, sizeof(*out));
                return -ENOMEM;
        }
        copy_be(p, TPM2_ECC_P256_SIZE, out->point.x.buffer, out->point.x.size);
        copy_be(p + TPM2_ECC_P256_SIZE, TPM2_ECC_P256_SIZE, out->point.y.buffer, out->point.y.size);
        erase(out, sizeof(*out));
        *ret_point = p;
        return 0;
}

static void pcr_selection_from_mask(uint32_t mask, TPML_PCR_SELECTION *ret) {
        *ret = (TPML_PCR_SELECTION) {
                .count = 1,
                .pcrSelections[0] = {
                        .hash = TPM2_ALG_SHA256,
                        .sizeofSelect = 3,
                        .pcrSelect = { mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff },
                },
        };
}

int tpm2_quote(Tpm2Context *c, uint32_t pcr_mask, const void *nonce, size_t nonce_size, uint8_t **ret_attest,
                size_t *ret_attest_size, uint8_t **ret_sig, size_t *ret_sig_size,
                uint8_t ret_sig_rs[static 2 * TPM2_ECC_P256_SIZE]) {

        _cleanup_(tpm2_handle_done) Tpm2Handle h = TPM2_HANDLE_NULL;
        _cleanup_esys_ TPM2B_ATTEST *quoted = NULL;
        _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
        _cleanup_free_ uint8_t *attest = NULL, *sigbuf = NULL;
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        TPM2B_DATA qualifying = {};
        TPML_PCR_SELECTION sel;
        size_t off = 0;
        TSS2_RC rc;
        int r;

        if (nonce_size < TPM2_NONCE_MIN || nonce_size > TPM2_NONCE_MAX) {
                set_error(c, "Quote nonce must be %u–%u bytes, got %zu", TPM2_NONCE_MIN, TPM2_NONCE_MAX,
                          nonce_size);
                return -EINVAL;
        }
        if (pcr_mask == 0 || (pcr_mask & ~TPM2_PCRS_MASK))
                return -EINVAL;
        qualifying.size = nonce_size;
        memcpy(qualifying.buffer, nonce, nonce_size);
        pcr_selection_from_mask(pcr_mask, &sel);

        r = persistent_open(c, TPM2_HANDLE_ATTEST, &h);
        if (r < 0)
                return r;
        if (r == 0) {
                set_error(c, "No attestation key at 0x%08x", TPM2_HANDLE_ATTEST);
                return -ENOENT;
        }
        rc = Esys_Quote(c->esys, h.tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &scheme, &sel,
                        &quoted, &sig);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_Quote");
        if (sig->sigAlg != TPM2_ALG_ECDSA)
                return -EBADMSG;

        attest = malloc(MAX(quoted->size, 1));
        sigbuf = malloc(sizeof(TPMT_SIGNATURE));
        if (!attest || !sigbuf)
                return -ENOMEM;
        memcpy(attest, quoted->attestationData, quoted->size);
        rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, sigbuf, sizeof(TPMT_SIGNATURE), &off);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Marshalling TPMT_SIGNATURE");
        if (ret_sig_rs) {
                copy_be(ret_sig_rs, TPM2_ECC_P256_SIZE, sig->signature.ecdsa.signatureR.buffer,
                        sig->signature.ecdsa.signatureR.size);
                copy_be(ret_sig_rs + TPM2_ECC_P256_SIZE, TPM2_ECC_P256_SIZE,
                        sig->signature.ecdsa.signatureS.buffer, sig->signature.ecdsa.signatureS.size);
        }
        *ret_attest_size = quoted->size;
        *ret_attest = TAKE_PTR(attest);
        *ret_sig_size = off;
        *ret_sig = TAKE_PTR(sigbuf);
        return 0;
}

/* ---- PCRs, random ---- */

int tpm2_pcr_read(Tpm2Context *c, uint32_t pcr_mask, uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE]) {
        uint32_t left = pcr_mask;

        if (pcr_mask & ~TPM2_PCRS_MASK)
                return -EINVAL;
        while (left != 0) {
                _cleanup_esys_ TPML_PCR_SELECTION *out_sel = NULL;
                _cleanup_esys_ TPML_DIGEST *digests = NULL;
                TPML_PCR_SELECTION sel;
                uint32_t got = 0;
                size_t k = 0;
                TSS2_RC rc;

                pcr_selection_from_mask(left, &sel);
                rc = Esys_PCR_Read(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL, &out_sel,
                                   &digests);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_fail(c, rc, "TPM2_PCR_Read");
                for (uint32_t i = 0; i < out_sel->count; i++) {
                        const TPMS_PCR_SELECTION *s = &out_sel->pcrSelections[i];
                        if (s->hash != TPM2_ALG_SHA256)
                                continue;
                        for (unsigned b = 0; b < MIN(s->sizeofSelect, 3U) * 8; b++)
                                if (s->pcrSelect[b / 8] & (1U << (b % 8)))
                                        got |= UINT32_C(1) << b;
                }
                got &= left;
                if (got == 0) {
                        set_error(c, "TPM returned no SHA-256 PCR values (is the SHA-256 bank active?)");
                        return -EOPNOTSUPP;
                }
                for (unsigned pcr = 0; pcr < TPM2_PCRS_MAX; pcr++) {
                        if (!(got & (UINT32_C(1) << pcr)))
                                continue;
                        if (k >= digests->count || digests->digests[k].size != TPM2_SHA256_SIZE)
                                return -EBADMSG;
                        memcpy(values[pcr], digests->digests[k].buffer, TPM2_SHA256_SIZE);
                        k++;
                }
                left &= ~got;
        }
        return 0;
}

int tpm2_pcr_extend(Tpm2Context *c, unsigned pcr, const uint8_t digest[static TPM2_SHA256_SIZE]) {
        TPML_DIGEST_VALUES v = { .count = 1, .digests[0].hashAlg = TPM2_ALG_SHA256 };
        TSS2_RC rc;

        if (pcr >= TPM2_PCRS_MAX)
                return -EINVAL;
        memcpy(v.digests[0].digest.sha256, digest, TPM2_SHA256_SIZE);
        rc = Esys_PCR_Extend(c->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &v);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_PCR_Extend");
        return 0;
}

int tpm2_get_random(Tpm2Context *c, void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                _cleanup_esys_ TPM2B_DIGEST *out = NULL;
                TSS2_RC rc;

                rc = Esys_GetRandom(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, (UINT16) MIN(n, 32U), &out);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_fail(c, rc, "TPM2_GetRandom");
                if (out->size == 0 || out->size > n)
                        return -EBADMSG;
                memcpy(p, out->buffer, out->size);
                erase(out->buffer, out->size);
                p += out->size;
                n -= out->size;
        }
        return 0;
}

/* ---- seal / unseal ---- */

int tpm2_seal(Tpm2Context *c, uint32_t pcr_mask, const void *secret, size_t secret_size, uint8_t **ret_blob,
                size_t *ret_blob_size, uint8_t ret_policy[static TPM2_SHA256_SIZE]) {

        _cleanup_(tpm2_handle_done) Tpm2Handle s = TPM2_HANDLE_NULL;
        _cleanup_esys_ TPM2B_PRIVATE *priv = NULL;
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_free_ uint8_t *blob = NULL;
        uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE] = {}, policy[TPM2_SHA256_SIZE];
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_PUBLIC template = {
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA,
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                        .authPolicy.size = TPM2_SHA256_SIZE,
                },
        };
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcr = {};
        ESYS_TR srk;
        size_t off = 0, max;
        TSS2_RC rc;
        int r;

        CLEANUP_ERASE(sensitive);

        if (secret_size == 0 || secret_size > sizeof(sensitive.sensitive.data.buffer))
                return -EINVAL;
        if (pcr_mask & ~TPM2_PCRS_MASK)
                return -EINVAL;

        r = srk_get(c, /* create= */ true, &srk);
        if (r < 0)
                return r;
        r = tpm2_pcr_read(c, pcr_mask, values);
        if (r < 0)
                return r;
        r = tpm2_policy_pcr_digest(pcr_mask, values, policy);
        if (r < 0)
                return r;
        memcpy(template.publicArea.authPolicy.buffer, policy, TPM2_SHA256_SIZE);
        sensitive.sensitive.data.size = secret_size;
        memcpy(sensitive.sensitive.data.buffer, secret, secret_size);

        r = start_session(c, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, &s);
        if (r < 0)
                return r;
        rc = Esys_Create(c->esys, srk, s.tr, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &template, &outside,
                         &creation_pcr, &priv, &pub, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_Create(sealed object)");

        max = sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC);
        blob = malloc(max);
        if (!blob)
                return -ENOMEM;
        rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, blob, max, &off);
        if (rc == TSS2_RC_SUCCESS)
                rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, blob, max, &off);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "Marshalling the sealed object");

        memcpy(ret_policy, policy, TPM2_SHA256_SIZE);
        *ret_blob_size = off;
        *ret_blob = TAKE_PTR(blob);
        return 0;
}

static int unseal_once(Tpm2Context *c, ESYS_TR object, uint32_t pcr_mask, const uint8_t *policy,
                uint8_t **ret_secret, size_t *ret_secret_size) {

        _cleanup_(tpm2_handle_done) Tpm2Handle s = TPM2_HANDLE_NULL;
        _cleanup_esys_ TPM2B_DIGEST *digest = NULL;
        _cleanup_esys_ TPM2B_SENSITIVE_DATA *out = NULL;
        TPM2B_DIGEST pcr_digest = {};
        TPML_PCR_SELECTION sel;
        uint8_t *secret;
        TSS2_RC rc;
        int r;

        pcr_selection_from_mask(pcr_mask, &sel);
        r = start_session(c, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, &s);
        if (r < 0)
                return r;
        rc = Esys_PolicyPCR(c->esys, s.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pcr_digest, &sel);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_PolicyPCR");
        rc = Esys_PolicyGetDigest(c->esys, s.tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_PolicyGetDigest");
        if (digest->size != TPM2_SHA256_SIZE || memcmp(digest->buffer, policy, TPM2_SHA256_SIZE) != 0) {
                _cleanup_free_ char *pcrs = tpm2_pcr_mask_to_string(pcr_mask);
                set_error(c, "PCR policy mismatch: the current values of PCRs %s no longer match the sealing "
                          "policy (PolicyPCR digest differs), refusing to unseal", pcrs ?: "?");
                return -EPERM;
        }
        rc = Esys_Unseal(c->esys, object, s.tr, ESYS_TR_NONE, ESYS_TR_NONE, &out);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm2_fail(c, rc, "TPM2_Unseal");
                if (rc_base(rc) == TPM2_RC_PCR_CHANGED)
                        return -EAGAIN;
                if (r == -EPERM)
                        set_error(c, "PCR policy check failed in the TPM: %s", Tss2_RC_Decode(rc));
                return r;
        }
        secret = eve_secret_alloc(MAX(out->size, 1));
        if (!secret) {
                erase(out, sizeof(*out));
                return -ENOMEM;
        }
        memcpy(secret, out->buffer, out->size);
        *ret_secret_size = out->size;
        erase(out, sizeof(*out));
        *ret_secret = secret;
        return 0;
}

int tpm2_unseal(Tpm2Context *c, uint32_t pcr_mask, const uint8_t *policy, const void *blob, size_t blob_size,
                uint8_t **ret_secret, size_t *ret_secret_size) {

        _cleanup_(tpm2_handle_done) Tpm2Handle obj = TPM2_HANDLE_NULL;
        TPM2B_PRIVATE priv = {};
        TPM2B_PUBLIC pub = {};
        ESYS_TR srk, tr = ESYS_TR_NONE;
        size_t off = 0;
        TSS2_RC rc;
        int r;

        if (pcr_mask & ~TPM2_PCRS_MASK)
                return -EINVAL;
        rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, blob_size, &off, &priv);
        if (rc == TSS2_RC_SUCCESS)
                rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, blob_size, &off, &pub);
        if (rc != TSS2_RC_SUCCESS || off != blob_size) {
                set_error(c, "Sealed blob is not TPM2B_PRIVATE ‖ TPM2B_PUBLIC");
                return -EBADMSG;
        }
        if (pub.publicArea.authPolicy.size != TPM2_SHA256_SIZE) {
                set_error(c, "Sealed object has no SHA-256 policy");
                return -EBADMSG;
        }
        if (!policy)
                policy = pub.publicArea.authPolicy.buffer;
        else if (memcmp(policy, pub.publicArea.authPolicy.buffer, TPM2_SHA256_SIZE) != 0) {
                set_error(c, "Sealed object's authPolicy differs from the expected policy digest");
                return -EBADMSG;
        }

        r = srk_get(c, /* create= */ false, &srk);
        if (r < 0)
                return r;
        rc = Esys_Load(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &tr);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_fail(c, rc, "TPM2_Load(sealed object)");
        obj = (Tpm2Handle) { .esys = c->esys, .tr = tr, .flush = true };

        for (unsigned attempt = 0;; attempt++) {
                r = unseal_once(c, obj.tr, pcr_mask, policy, ret_secret, ret_secret_size);
                if (r != -EAGAIN || attempt >= 5)
                        return r == -EAGAIN ? -EPERM : r;
        }
}

/* ---- pure helpers ---- */

int tpm2_pcr_mask_from_string(const char *s, uint32_t *ret) {
        uint32_t mask = 0;
        const char *p = s;

        if (!s)
                return -EINVAL;
        while (*p) {
                unsigned a = 0, b;
                int digits = 0;

                for (; *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
                        a = a * 10 + (unsigned) (*p - '0');
                if (digits == 0 || a >= TPM2_PCRS_MAX)
                        return -EINVAL;
                b = a;
                if (*p == '-') {
                        p++;
                        b = 0;
                        digits = 0;
                        for (; *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
                                b = b * 10 + (unsigned) (*p - '0');
                        if (digits == 0 || b >= TPM2_PCRS_MAX || b < a)
                                return -EINVAL;
                }
                for (unsigned i = a; i <= b; i++)
                        mask |= UINT32_C(1) << i;
                if (*p == ',' || *p == '+') {
                        p++;
                        if (*p == '\0')
                                return -EINVAL;
                } else if (*p != '\0')
                        return -EINVAL;
        }
        *ret = mask;
        return 0;
}

char *tpm2_pcr_mask_to_string(uint32_t mask) {
        char *s = malloc(TPM2_PCRS_MAX * 3 + 1);
        size_t n = 0;

        if (!s)
                return NULL;
        s[0] = '\0';
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (mask & (UINT32_C(1) << i))
                        n += (size_t) sprintf(s + n, "%s%u", n > 0 ? "," : "", i);
        return s;
}

int tpm2_policy_pcr_digest(uint32_t pcr_mask, const uint8_t values[TPM2_PCRS_MAX][TPM2_SHA256_SIZE],
                uint8_t ret[static TPM2_SHA256_SIZE]) {

        struct sha256_ctx h;
        uint8_t pcr_hash[TPM2_SHA256_SIZE], zero[TPM2_SHA256_SIZE] = {};
        const uint8_t header[] = {
                0x00, 0x00, 0x01, 0x7F,             /* TPM_CC_PolicyPCR */
                0x00, 0x00, 0x00, 0x01,             /* TPML_PCR_SELECTION.count */
                0x00, 0x0B,                         /* TPM_ALG_SHA256 */
                0x03,                               /* sizeofSelect */
                pcr_mask & 0xff, (pcr_mask >> 8) & 0xff, (pcr_mask >> 16) & 0xff,
        };

        if (pcr_mask & ~TPM2_PCRS_MASK)
                return -EINVAL;
        sha256_init(&h);
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (pcr_mask & (UINT32_C(1) << i))
                        sha256_update(&h, TPM2_SHA256_SIZE, values[i]);
        sha256_digest(&h, sizeof(pcr_hash), pcr_hash);

        sha256_init(&h);
        sha256_update(&h, sizeof(zero), zero);
        sha256_update(&h, sizeof(header), header);
        sha256_update(&h, sizeof(pcr_hash), pcr_hash);
        sha256_digest(&h, TPM2_SHA256_SIZE, ret);
        return 0;
}

int tpm2_public_parse(const void *data, size_t size, Tpm2EccPoint *ret_point, uint32_t *ret_attributes) {
        TPM2B_PUBLIC pub = {};
        size_t off = 0;
        int r;

        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(data, size, &off, &pub) != TSS2_RC_SUCCESS || off != size)
                return -EBADMSG;
        r = ecc_point_from_public(&pub.publicArea, ret_point);
        if (r < 0)
                return r;
        if (ret_attributes)
                *ret_attributes = pub.publicArea.objectAttributes;
        return 0;
}
