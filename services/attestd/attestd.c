/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-attestd: remote attestation with the controller (DESIGN.md "Attestation"): CERT → NONCE → QUOTE →
 * STORE_KEYS, each a signed POST to id/<uuid>/attest through the controller client on this daemon's event
 * loop. The integrity token of a successful round is kept in secret memory and in
 * $EVE_RUN_DIR/integrity-token (0600); the keys the controller releases go to eve-vaultd as received
 * (SubmitKeys), then eve-vaultd's escrow entries (GetEscrowKeys) are uploaded with STORE_KEYS and confirmed
 * (ConfirmEscrow). attestd never sees a plaintext key. Failed rounds are retried with exponential backoff
 * and jitter; a Restart() (configd after a config 403) starts a new round; re-attestation can also run
 * periodically. Serves org.eve.Attest. */
#include <getopt.h>
#include <inttypes.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "attest-fsm.h"
#include "attest-msg.h"
#include "bus-util.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "encoding.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"
#include "tpm2-util.h"

#define ATTEST_BUS_NAME "org.eve.Attest"
#define ATTEST_BUS_PATH "/org/eve/Attest"
#define ATTEST_BUS_INTERFACE "org.eve.Attest"
#define ATTEST_ERROR_ACCESS_DENIED "org.eve.Attest.Error.AccessDenied"
#define VAULT_BUS_NAME "org.eve.Vault"
#define VAULT_BUS_PATH "/org/eve/Vault"
#define VAULT_BUS_INTERFACE "org.eve.Vault.Manager"
#define TOKEN_FILE "integrity-token"
#define TOKEN_MAX 4096U
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define SUBMIT_TIMEOUT_USEC (120U * USEC_PER_SEC)
#define VAULT_CALL_TIMEOUT_USEC (30U * USEC_PER_SEC)
/* Test hooks (docs/ATTESTATION.md): each spoils the QUOTE message in one way, so that the tests can show
 * that the controller refuses it and what this daemon then reports. Never set in production. */
#define TEST_HOOK_ENV "EVE_ATTESTD_TEST_HOOK"

typedef enum TestHook {
        TEST_HOOK_NONE,
        TEST_HOOK_CORRUPT_QUOTE,     /* flip a byte of attestData */
        TEST_HOOK_CORRUPT_SIGNATURE, /* flip a bit of the quote signature */
        TEST_HOOK_TAMPER_PCR,        /* report another PCR 0 than quoted */
        TEST_HOOK_REPLAY_NONCE,      /* quote with the previous round's nonce */
        TEST_HOOK_DELAY_QUOTE,       /* wait delay_quote before quoting (a stale nonce) */
} TestHook;

static uint64_t arg_retry_base = 5U * USEC_PER_SEC;
static uint64_t arg_retry_max = 600U * USEC_PER_SEC;
static uint64_t arg_reattest = 0;
static char *arg_location_file = NULL;
static bool arg_introspect = false;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        ControllerClient *client;
        AttestFsm fsm;
        sd_event_source *timer; /* retry backoff, periodic re-attestation, or the quote step */
        ControllerRequest *request;
        sd_bus_slot *vault_slot;
        Tpm2Context *tpm; /* open during one step only */

        char uuid[37];
        uint8_t nonce[TPM2_NONCE_MAX], prev_nonce[TPM2_NONCE_MAX];
        size_t nonce_size, prev_nonce_size;
        AttestQuote quote;
        uint8_t *token; /* secret memory */
        size_t token_size;
        AttestKeyEntry *released, *escrow;
        size_t n_released, n_escrow;

        char *last_error;
        uint64_t last_success; /* µs CLOCK_REALTIME */
        uint64_t next_attempt; /* µs CLOCK_REALTIME, 0 none */
        bool reachable;
        bool escrow_exchanged;
        bool escrow_again; /* eve-vaultd has escrow to upload that this round may not carry */

        TestHook hook;
        uint64_t hook_delay;

        /* TPM commands of the current round: ours, and the client's counter when the round began */
        uint64_t round_tpm, round_client_base;

        /* what was last announced with PropertiesChanged */
        struct {
                AttestState state;
                char *last_error;
                uint64_t last_success, next_attempt;
                unsigned attempts;
                bool reachable, valid;
        } emitted;
} Manager;

/* ---- helpers ---- */

static uint64_t now_realtime(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void test_hook_parse(Manager *m) {
        const char *h = getenv_nonempty(TEST_HOOK_ENV);

        if (!h)
                return;
        if (streq(h, "corrupt-quote"))
                m->hook = TEST_HOOK_CORRUPT_QUOTE;
        else if (streq(h, "corrupt-signature"))
                m->hook = TEST_HOOK_CORRUPT_SIGNATURE;
        else if (streq(h, "tamper-pcr"))
                m->hook = TEST_HOOK_TAMPER_PCR;
        else if (streq(h, "replay-nonce"))
                m->hook = TEST_HOOK_REPLAY_NONCE;
        else if (strncmp(h, "delay-quote=", 12) == 0 && parse_timespan(h + 12, &m->hook_delay) >= 0)
                m->hook = TEST_HOOK_DELAY_QUOTE;
        else {
                log_warning("Ignoring unknown %s=%s.", TEST_HOOK_ENV, h);
                return;
        }
        log_warning("TEST HOOK %s=%s is active: quotes will be spoiled on purpose.", TEST_HOOK_ENV, h);
}

_printf_(2, 3) static void set_error(Manager *m, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(m->last_error);
        m->last_error = s;
        if (s)
                log_warning("%s", s);
}

static void clear_error(Manager *m) {
        m->last_error = mfree(m->last_error);
}

static void token_clear(Manager *m) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_RUN, TOKEN_FILE);

        m->token = eve_secret_free(m->token);
        m->token_size = 0;
        if (path && unlink(path) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Cannot remove %s: %m", path);
}

static int token_set(Manager *m, const uint8_t *t, size_t n) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_RUN, TOKEN_FILE);
        uint8_t *copy;
        int r;

        if (!path)
                return -ENOMEM;
        copy = eve_secret_alloc(n);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, t, n);
        eve_secret_free(m->token);
        m->token = copy;
        m->token_size = n;
        r = eve_mkdir_p(eve_path(EVE_PATH_RUN), 0755);
        if (r >= 0)
                r = crypto_write_file_atomic(path, t, n, 0600);
        if (r < 0)
                return log_warning_errno(
                                r, "Cannot write the integrity token to %s, keeping it in memory: %m", path);
        return 0;
}

static void manager_emit(Manager *m) {
        const char *names[8];
        size_t n = 0;
        char *status = NULL;
        int r;

        if (!m->emitted.valid || m->emitted.state != m->fsm.state) {
                names[n++] = "State";
                names[n++] = "StateName";
        }
        if (!m->emitted.valid || !streq_ptr(m->emitted.last_error, m->last_error))
                names[n++] = "LastError";
        if (!m->emitted.valid || m->emitted.last_success != m->last_success)
                names[n++] = "LastSuccess";
        if (!m->emitted.valid || m->emitted.attempts != m->fsm.attempts)
                names[n++] = "Attempts";
        if (!m->emitted.valid || m->emitted.reachable != m->reachable)
                names[n++] = "ControllerReachable";
        if (!m->emitted.valid || m->emitted.next_attempt != m->next_attempt)
                names[n++] = "NextAttempt";
        if (n == 0)
                return;
        names[n] = NULL;
        if (m->bus)
                (void) sd_bus_emit_properties_changed_strv(
                                m->bus, ATTEST_BUS_PATH, ATTEST_BUS_INTERFACE, (char **) names);

        m->emitted.state = m->fsm.state;
        free(m->emitted.last_error);
        m->emitted.last_error = m->last_error ? strdup(m->last_error) : NULL;
        m->emitted.last_success = m->last_success;
        m->emitted.attempts = m->fsm.attempts;
        m->emitted.reachable = m->reachable;
        m->emitted.next_attempt = m->next_attempt;
        m->emitted.valid = true;

        if (m->fsm.state == ATTEST_STATE_COMPLETE)
                r = asprintf(&status,
                             "STATUS=Attested (round %u)%s.",
                             m->fsm.attempts,
                             m->escrow_exchanged ? ", escrow uploaded" : ", no escrow exchanged");
        else if (m->fsm.state == ATTEST_STATE_RESTART_WAIT)
                r = asprintf(&status,
                             "STATUS=Retrying in %" PRIu64 " s (attempt %u failed: %s)",
                             m->next_attempt > now_realtime()
                                             ? (m->next_attempt - now_realtime()) / USEC_PER_SEC
                                             : 0,
                             m->fsm.attempts,
                             m->last_error ?: "unknown");
        else
                r = asprintf(&status,
                             "STATUS=Attesting: %s (attempt %u)",
                             attest_state_to_string(m->fsm.state),
                             m->fsm.attempts);
        if (r >= 0)
                (void) sd_notify(false, status);
        else
                status = NULL; /* asprintf() leaves it undefined */
        free(status);
}

static void manager_dispatch(Manager *m, AttestEvent e);

static void step_done(Manager *m) {
        if (m->tpm)
                m->round_tpm += tpm2_context_commands(m->tpm);
        m->tpm = tpm2_context_unref(m->tpm);
        if (m->client)
                controller_client_set_tpm(m->client, NULL);
}

static int open_tpm(Manager *m) {
        int r;

        if (m->tpm)
                return 0;
        r = tpm2_context_new(NULL, &m->tpm);
        if (r < 0)
                set_error(m, "Cannot open the TPM (%s): %s", eve_tcti(), strerror(-r));
        return r;
}

/* The controller client and the UUID, fresh at the start of each round: eve-register may have run since. */
static int ensure_client(Manager *m) {
        int r;

        r = controller_read_uuid(m->uuid);
        if (r < 0) {
                set_error(m,
                          "No device UUID in %s/uuid (%s): eve-register has not registered this node yet.",
                          eve_path(EVE_PATH_STATUS),
                          strerror(-r));
                return r;
        }
        if (m->client)
                return 0;
        r = controller_client_new(m->event, &m->client);
        if (r < 0) {
                set_error(m, "Cannot set up the controller client (%s): see the log.", strerror(-r));
                return r;
        }
        r = controller_client_load_identity(m->client, m->tpm);
        if (r < 0) {
                set_error(m, "%s", controller_client_last_error(m->client));
                m->client = controller_client_free(m->client);
                return r;
        }
        return 0;
}

static char *attest_path(Manager *m) {
        char *p;
        return asprintf(&p, "id/%s/attest", m->uuid) < 0 ? NULL : p;
}

/* Common checks of an answer: transport/HTTP errors set LastError; returns the parsed response or NULL. */
static Org__Lfedge__Eve__Attest__ZAttestResponse *
                answer(Manager *m, const char *what, int error, const ControllerReply *reply, int expected) {
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        int r;

        m->request = NULL;
        m->reachable = reply->status > 0;
        if (error < 0) {
                set_error(m, "%s: %s", what, controller_client_last_error(m->client));
                return NULL;
        }
        r = attest_response_parse(reply->payload, reply->payload_size, expected, &resp);
        if (r < 0) {
                set_error(m,
                          "%s: the controller's answer (HTTP %ld) is not a ZAttestResponse of the expected "
                          "type.",
                          what,
                          reply->status);
                return NULL;
        }
        return resp;
}

/* ---- CERT ---- */

static void on_cert(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        Manager *m = userdata;
        Org__Lfedge__Eve__Attest__ZAttestResponse *resp;

        m->request = NULL;
        m->reachable = reply->status > 0;
        if (error < 0) {
                set_error(m,
                          "CERT refused: %s%s",
                          controller_client_last_error(c),
                          error == -ENOENT ? " (the controller does not know this device, or refuses to "
                                             "replace "
                                             "the certificates it holds)"
                                           : "");
                return manager_dispatch(m, ATTEST_EVENT_CERT_FAILED);
        }
        /* An empty answer is acceptable (EVE ignores the body); a body must be a CERT answer. */
        if (reply->payload_size > 0) {
                resp = answer(m,
                              "CERT",
                              0,
                              reply,
                              ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_CERT);
                if (!resp)
                        return manager_dispatch(m, ATTEST_EVENT_CERT_FAILED);
                proto_free(resp);
        }
        log_info("Controller accepted the device certificates.");
        manager_dispatch(m, ATTEST_EVENT_CERT_OK);
}

static int do_send_cert(Manager *m) {
        _cleanup_free_ uint8_t *ek_public = NULL;
        _cleanup_free_ char *path = NULL;
        AttestCertRequest req;
        size_t ek_size = 0;
        uint32_t ek_handle;
        int r;

        r = open_tpm(m);
        if (r < 0)
                return r;
        r = ensure_client(m);
        if (r < 0)
                return r;
        if (tpm2_ek_ensure(m->tpm, /* create= */ false, &ek_handle) >= 0)
                (void) tpm2_persistent_public_marshal(m->tpm, ek_handle, &ek_public, &ek_size);
        r = attest_cert_request_build(&req, eve_path(EVE_PATH_CERTS), ek_public, ek_size);
        if (r < 0) {
                set_error(m,
                          "Cannot read the device certificates in %s (%s): has eve-tpm-setup run?",
                          eve_path(EVE_PATH_CERTS),
                          strerror(-r));
                return r;
        }
        path = attest_path(m);
        controller_client_set_tpm(m->client, m->tpm);
        r = path ? controller_client_post(m->client, path, &req.req.base, 0, on_cert, m, &m->request)
                 : -ENOMEM;
        attest_cert_request_done(&req);
        if (r < 0)
                set_error(m, "Cannot send CERT: %s", controller_client_last_error(m->client));
        return r;
}

/* ---- NONCE ---- */

static void on_nonce(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        Manager *m = userdata;

        resp = answer(m,
                      "NONCE",
                      error,
                      reply,
                      ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_NONCE);
        if (!resp)
                return manager_dispatch(m, ATTEST_EVENT_NONCE_FAILED);
        if (m->nonce_size > 0) {
                memcpy(m->prev_nonce, m->nonce, m->nonce_size);
                m->prev_nonce_size = m->nonce_size;
        }
        if (attest_response_nonce(resp, m->nonce, &m->nonce_size) < 0) {
                set_error(m, "NONCE: the controller's nonce is not 12–32 bytes.");
                return manager_dispatch(m, ATTEST_EVENT_NONCE_FAILED);
        }
        manager_dispatch(m, ATTEST_EVENT_NONCE_OK);
}

static int do_send_nonce(Manager *m) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = ensure_client(m);
        if (r < 0)
                return r;
        path = attest_path(m);
        if (!path)
                return -ENOMEM;
        r = controller_client_post(m->client, path, attest_nonce_request(), 0, on_nonce, m, &m->request);
        if (r < 0)
                set_error(m, "Cannot send NONCE: %s", controller_client_last_error(m->client));
        return r;
}

/* ---- QUOTE ---- */

static int on_quote_time(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        const uint8_t *nonce = m->nonce;
        size_t nonce_size = m->nonce_size;
        int r;

        m->timer = sd_event_source_disable_unref(m->timer);
        if (m->hook == TEST_HOOK_REPLAY_NONCE && m->prev_nonce_size > 0) {
                log_warning("TEST HOOK: quoting with the previous round's nonce.");
                nonce = m->prev_nonce;
                nonce_size = m->prev_nonce_size;
        }
        r = open_tpm(m);
        if (r >= 0) {
                attest_quote_done(&m->quote);
                r = attest_quote_collect(m->tpm, nonce, nonce_size, &m->quote);
                if (r < 0)
                        set_error(m, "The TPM could not quote: %s", tpm2_context_last_error(m->tpm));
        }
        if (r < 0) {
                step_done(m);
                manager_dispatch(m, ATTEST_EVENT_QUOTE_ERROR);
                return 0;
        }
        switch (m->hook) {
        case TEST_HOOK_CORRUPT_QUOTE:
                m->quote.attest[m->quote.attest_size - 1] ^= 0x01;
                log_warning("TEST HOOK: attestData corrupted.");
                break;
        case TEST_HOOK_CORRUPT_SIGNATURE:
                m->quote.sig_rs[40] ^= 0x01;
                log_warning("TEST HOOK: quote signature corrupted.");
                break;
        case TEST_HOOK_TAMPER_PCR:
                m->quote.pcrs[0][0] ^= 0x01;
                log_warning("TEST HOOK: reported PCR 0 differs from the quoted one.");
                break;
        default:
                break;
        }
        manager_dispatch(m, ATTEST_EVENT_QUOTE_READY);
        return 0;
}

static int do_quote(Manager *m) {
        uint64_t now;
        int r;

        /* A step of its own on the loop, so that State shows tpm-quote-wait (and a test hook may delay it).
         */
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        m->timer = sd_event_source_disable_unref(m->timer);
        r = sd_event_add_time(
                        m->event,
                        &m->timer,
                        CLOCK_MONOTONIC,
                        now + (m->hook == TEST_HOOK_DELAY_QUOTE ? m->hook_delay : 0),
                        0,
                        on_quote_time,
                        m);
        if (r < 0)
                set_error(m, "Cannot schedule the quote: %s", strerror(-r));
        return r;
}

static void on_quote_answer(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        Manager *m = userdata;
        const Org__Lfedge__Eve__Attest__ZAttestQuoteResp *q;
        int r;

        resp = answer(m,
                      "QUOTE",
                      error,
                      reply,
                      ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__ATTEST_RESP_QUOTE_RESP);
        if (!resp)
                return manager_dispatch(m, ATTEST_EVENT_ATTEST_FAILED);
        q = resp->quoteresp;
        switch (q->response) {
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_SUCCESS:
                if (q->integrity_token.len == 0 || q->integrity_token.len > TOKEN_MAX) {
                        set_error(m,
                                  "QUOTE: SUCCESS without a usable integrity token (%zu bytes).",
                                  q->integrity_token.len);
                        return manager_dispatch(m, ATTEST_EVENT_ATTEST_FAILED);
                }
                attest_key_entries_free(m->released, m->n_released);
                m->released = NULL;
                m->n_released = 0;
                r = attest_response_keys(q, &m->released, &m->n_released);
                if (r < 0) {
                        set_error(m,
                                  "QUOTE: SUCCESS with malformed keys (more than %u, empty or over %u "
                                  "bytes).",
                                  ATTEST_KEYS_MAX,
                                  ATTEST_KEY_SIZE_MAX);
                        return manager_dispatch(m, ATTEST_EVENT_ATTEST_FAILED);
                }
                r = token_set(m, q->integrity_token.data, q->integrity_token.len);
                if (r == -ENOMEM)
                        return manager_dispatch(m, ATTEST_EVENT_ATTEST_FAILED);
                m->last_success = now_realtime();
                clear_error(m);
                log_info("Attestation succeeded: integrity token received, %zu key(s) released.",
                         m->n_released);
                return manager_dispatch(m, ATTEST_EVENT_ATTEST_SUCCESS);
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NONCE_MISMATCH:
                token_clear(m);
                set_error(m,
                          "NONCE_MISMATCH: the controller did not accept the quoted nonce (replayed, "
                          "unknown or "
                          "expired).");
                return manager_dispatch(m, ATTEST_EVENT_NONCE_MISMATCH);
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_QUOTE_FAILED:
                token_clear(m);
                set_error(m,
                          "QUOTE_FAILED: the controller refused the quote (signature, PCR digest, event "
                          "log, or "
                          "PCRs that differ from the accepted baseline; see the controller).");
                return manager_dispatch(m, ATTEST_EVENT_QUOTE_FAILED);
        case ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESPONSE_CODE__Z_ATTEST_RESPONSE_CODE_NO_CERT_FOUND:
                token_clear(m);
                set_error(m,
                          "NO_CERT_FOUND: the controller has no attestation certificate of this device; "
                          "sending the certificates again.");
                return manager_dispatch(m, ATTEST_EVENT_NO_CERT_FOUND);
        default:
                set_error(m, "QUOTE: unknown response code %d.", (int) q->response);
                return manager_dispatch(m, ATTEST_EVENT_ATTEST_FAILED);
        }
}

static int do_send_quote(Manager *m) {
        _cleanup_(attest_extras_done) AttestExtras x = {};
        _cleanup_free_ char *path = NULL;
        AttestQuoteRequest req;
        int r;

        r = attest_eventlog_read(eve_path(EVE_PATH_EVENTLOG), &x.eventlog_gz, &x.eventlog_gz_size);
        if (r == -EFBIG)
                log_warning("The event log %s is larger than %u bytes: not sent (as EVE does).",
                            eve_path(EVE_PATH_EVENTLOG),
                            ATTEST_EVENTLOG_MAX);
        else if (r < 0)
                log_debug_errno(r, "No event log from %s: %m", eve_path(EVE_PATH_EVENTLOG));
        (void) attest_versions(NULL, &x.eve_version, &x.firmware_version);
        if (arg_location_file) {
                x.location_configured = true;
                r = attest_location_read(arg_location_file, &x.latitude, &x.longitude);
                if (r < 0)
                        log_notice_errno(
                                        r,
                                        "No location fix in %s (%m): reporting it absent.",
                                        arg_location_file);
                x.location_present = r >= 0;
        }
        r = attest_quote_request_build(&req, &m->quote, &x);
        if (r < 0) {
                set_error(m, "Cannot build the QUOTE request: %s", strerror(-r));
                return r;
        }
        if (req.eventlog_dropped)
                log_warning("The event log makes the QUOTE message exceed %u bytes: not sent (as EVE does).",
                            ATTEST_QUOTE_MSG_MAX);
        path = attest_path(m);
        controller_client_set_tpm(m->client, m->tpm);
        r = path ? controller_client_post(m->client, path, &req.req.base, 0, on_quote_answer, m, &m->request)
                 : -ENOMEM;
        attest_quote_request_done(&req);
        if (r < 0)
                set_error(m, "Cannot send QUOTE: %s", controller_client_last_error(m->client));
        return r;
}

/* ---- escrow: eve-vaultd over the bus ---- */

static int append_entries(sd_bus_message *msg, const AttestKeyEntry *e, size_t n) {
        int r;

        r = sd_bus_message_open_container(msg, 'a', "(uay)");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = sd_bus_message_open_container(msg, 'r', "uay");
                if (r >= 0)
                        r = sd_bus_message_append(msg, "u", e[i].type);
                if (r >= 0)
                        r = sd_bus_message_append_array(msg, 'y', e[i].data, e[i].size);
                if (r >= 0)
                        r = sd_bus_message_close_container(msg);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        return r;
}

static int read_entries(sd_bus_message *msg, AttestKeyEntry **ret, size_t *ret_n) {
        AttestKeyEntry *e = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "(uay)");
        if (r < 0)
                return r;
        for (;;) {
                const void *p;
                size_t size;
                uint32_t type;

                r = sd_bus_message_enter_container(msg, 'r', "uay");
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = sd_bus_message_read(msg, "u", &type);
                if (r >= 0)
                        r = sd_bus_message_read_array(msg, 'y', &p, &size);
                if (r >= 0)
                        r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        goto fail;
                if (n >= ATTEST_KEYS_MAX || size == 0 || size > ATTEST_KEY_SIZE_MAX) {
                        r = -EBADMSG;
                        goto fail;
                }
                if (!e && !(e = calloc(ATTEST_KEYS_MAX, sizeof *e))) {
                        r = -ENOMEM;
                        goto fail;
                }
                e[n].data = malloc(size);
                if (!e[n].data) {
                        r = -ENOMEM;
                        goto fail;
                }
                memcpy(e[n].data, p, size);
                e[n].size = size;
                e[n].type = type;
                n++;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto fail;
        *ret = e;
        *ret_n = n;
        return 0;
fail:
        attest_key_entries_free(e, n);
        return r;
}

/* Calls eve-vaultd (never starting it), with the entries unless e is NULL. The reply goes to handler through
 * m->vault_slot (cancelled with the manager), or, when floating, through a slot of the bus's own. */
static int
                vault_call(Manager *m,
                           const char *method,
                           const AttestKeyEntry *e,
                           size_t n,
                           bool floating,
                           sd_bus_message_handler_t handler) {

        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        uint64_t timeout = streq(method, "SubmitKeys") ? SUBMIT_TIMEOUT_USEC : VAULT_CALL_TIMEOUT_USEC;
        int r;

        r = sd_bus_message_new_method_call(
                        m->bus, &msg, VAULT_BUS_NAME, VAULT_BUS_PATH, VAULT_BUS_INTERFACE, method);
        if (r < 0)
                return r;
        (void) sd_bus_message_set_auto_start(msg, false);
        if (e) {
                r = append_entries(msg, e, n);
                if (r < 0)
                        return r;
        }
        if (floating)
                return sd_bus_call_async(m->bus, NULL, msg, handler, m, timeout);
        m->vault_slot = sd_bus_slot_unref(m->vault_slot);
        return sd_bus_call_async(m->bus, &m->vault_slot, msg, handler, m, timeout);
}

static bool vault_absent(const sd_bus_error *e) {
        return sd_bus_error_has_names(
                        e,
                        SD_BUS_ERROR_SERVICE_UNKNOWN,
                        SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                        SD_BUS_ERROR_UNKNOWN_OBJECT,
                        SD_BUS_ERROR_UNKNOWN_METHOD);
}

static int on_get_escrow(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        m->vault_slot = sd_bus_slot_unref(m->vault_slot);
        attest_key_entries_free(m->escrow, m->n_escrow);
        m->escrow = NULL;
        m->n_escrow = 0;
        if (e) {
                if (vault_absent(e))
                        log_notice("eve-vaultd is not on the bus (%s): attested, but no escrow could be "
                                   "exchanged.",
                                   e->name);
                else
                        log_warning("eve-vaultd refused GetEscrowKeys (%s: %s): no escrow uploaded this "
                                    "round.",
                                    e->name,
                                    e->message ?: "");
                manager_dispatch(m, ATTEST_EVENT_ESCROW_NONE);
                return 0;
        }
        r = read_entries(reply, &m->escrow, &m->n_escrow);
        if (r < 0) {
                log_warning_errno(r, "eve-vaultd's escrow entries are malformed, not uploading them: %m");
                manager_dispatch(m, ATTEST_EVENT_ESCROW_NONE);
                return 0;
        }
        if (m->n_escrow == 0) {
                log_info("eve-vaultd has no escrow entries to upload.");
                manager_dispatch(m, ATTEST_EVENT_ESCROW_NONE);
                return 0;
        }
        manager_dispatch(m, ATTEST_EVENT_ESCROW_READY);
        return 0;
}

static void get_escrow(Manager *m) {
        int r;

        r = vault_call(m, "GetEscrowKeys", NULL, 0, false, on_get_escrow);
        if (r < 0) {
                log_warning_errno(r, "Cannot ask eve-vaultd for escrow entries: %m");
                manager_dispatch(m, ATTEST_EVENT_ESCROW_NONE);
        }
}

static int on_submit(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t served = 0;

        m->vault_slot = sd_bus_slot_unref(m->vault_slot);
        if (e)
                log_warning("eve-vaultd did not take the %zu released key(s) (%s: %s).",
                            m->n_released,
                            e->name,
                            e->message ?: "");
        else if (sd_bus_message_read(reply, "u", &served) >= 0)
                log_info("Handed %zu released key(s) to eve-vaultd: %u vault(s) served.",
                         m->n_released,
                         served);
        if (e && vault_absent(e)) {
                log_notice("eve-vaultd is not on the bus: attested, but no escrow could be exchanged.");
                manager_dispatch(m, ATTEST_EVENT_ESCROW_NONE);
                return 0;
        }
        get_escrow(m);
        return 0;
}

static void do_exchange_escrow(Manager *m) {
        int r;

        m->escrow_exchanged = false;
        if (m->n_released == 0)
                return get_escrow(m);
        r = vault_call(m, "SubmitKeys", m->released, m->n_released, false, on_submit);
        if (r < 0) {
                log_warning_errno(r, "Cannot hand the released keys to eve-vaultd: %m");
                get_escrow(m);
        }
}

static int on_confirm(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_warning("eve-vaultd did not take the escrow confirmation (%s: %s).",
                            e->name,
                            e->message ?: "");
        return 0;
}

static void on_store(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Attest__ZAttestResponse *resp = NULL;
        Manager *m = userdata;
        int r;

        resp = answer(m,
                      "STORE_KEYS",
                      error,
                      reply,
                      ORG__LFEDGE__EVE__ATTEST__ZATTEST_RESP_TYPE__Z_ATTEST_RESP_TYPE_STORE_KEYS);
        if (!resp)
                return manager_dispatch(m, ATTEST_EVENT_STORE_FAILED);
        switch (resp->storage_keys_resp->response) {
        case ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_SUCCESS:
                log_info("Controller stored %zu escrow entr%s.",
                         m->n_escrow,
                         m->n_escrow == 1 ? "y" : "ies");
                m->escrow_exchanged = true;
                /* Fire and forget: the controller has them; vaultd may end rotations waiting for this. */
                r = vault_call(m, "ConfirmEscrow", m->escrow, m->n_escrow, /* floating= */ true, on_confirm);
                if (r < 0)
                        log_warning_errno(r, "Cannot confirm the escrow to eve-vaultd: %m");
                return manager_dispatch(m, ATTEST_EVENT_STORE_OK);
        case ORG__LFEDGE__EVE__ATTEST__ATTEST_STORAGE_KEYS_RESPONSE_CODE__ATTEST_STORAGE_KEYS_RESPONSE_CODE_ITOKEN_MISMATCH:
                token_clear(m);
                set_error(m,
                          "STORE_KEYS: ITOKEN_MISMATCH: the controller no longer accepts our integrity "
                          "token.");
                return manager_dispatch(m, ATTEST_EVENT_STORE_ITOKEN);
        default:
                set_error(m,
                          "STORE_KEYS: unknown response code %d.",
                          (int) resp->storage_keys_resp->response);
                return manager_dispatch(m, ATTEST_EVENT_STORE_FAILED);
        }
}

static int do_send_store(Manager *m) {
        _cleanup_free_ char *path = attest_path(m);
        AttestStoreRequest req;
        int r;

        if (!path)
                return -ENOMEM;
        r = attest_store_request_build(&req, m->token, m->token_size, m->escrow, m->n_escrow);
        if (r < 0) {
                set_error(m, "Cannot build STORE_KEYS: %s", strerror(-r));
                return r;
        }
        r = controller_client_post(m->client, path, &req.req.base, 0, on_store, m, &m->request);
        if (r < 0)
                set_error(m, "Cannot send STORE_KEYS: %s", controller_client_last_error(m->client));
        return r;
}

/* ---- timers ---- */

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->timer = sd_event_source_disable_unref(m->timer);
        m->next_attempt = 0;
        manager_dispatch(m, ATTEST_EVENT_TIMER);
        return 0;
}

static int arm_timer(Manager *m, uint64_t delay) {
        uint64_t now;
        int r;

        m->timer = sd_event_source_disable_unref(m->timer);
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_add_time(m->event, &m->timer, CLOCK_MONOTONIC, now + delay, 0, on_timer, m);
        if (r < 0)
                return log_error_errno(r, "Cannot arm the attestation timer: %m");
        m->next_attempt = now_realtime() + delay;
        return 0;
}

/* ---- the driver ---- */

static AttestEvent failure_event(AttestAction a) {
        switch (a) {
        case ATTEST_ACTION_SEND_CERT:
                return ATTEST_EVENT_CERT_FAILED;
        case ATTEST_ACTION_SEND_NONCE:
                return ATTEST_EVENT_NONCE_FAILED;
        case ATTEST_ACTION_QUOTE:
                return ATTEST_EVENT_QUOTE_ERROR;
        case ATTEST_ACTION_SEND_QUOTE:
                return ATTEST_EVENT_ATTEST_FAILED;
        case ATTEST_ACTION_SEND_STORE_KEYS:
                return ATTEST_EVENT_STORE_FAILED;
        default:
                return _ATTEST_EVENT_INVALID;
        }
}

static void manager_dispatch(Manager *m, AttestEvent e) {
        AttestState before = m->fsm.state;
        unsigned attempts_before = m->fsm.attempts;
        AttestAction a = attest_fsm_step(&m->fsm, e);
        uint32_t rnd = 0;
        uint64_t delay;
        int r = 0;

        if (a == ATTEST_ACTION_IGNORE) {
                log_notice("Ignoring event %s in state %s.",
                           attest_event_to_string(e),
                           attest_state_to_string(before));
                return manager_emit(m);
        }
        if (m->fsm.attempts != attempts_before) {
                m->round_tpm = 0;
                m->round_client_base = m->client ? controller_client_tpm_commands(m->client) : 0;
        }
        log_debug("%s + %s → %s, %s",
                  attest_state_to_string(before),
                  attest_event_to_string(e),
                  attest_state_to_string(m->fsm.state),
                  attest_action_to_string(a));

        switch (a) {
        case ATTEST_ACTION_SEND_CERT:
                m->timer = sd_event_source_disable_unref(m->timer);
                m->next_attempt = 0;
                r = do_send_cert(m);
                break;
        case ATTEST_ACTION_SEND_NONCE:
                m->timer = sd_event_source_disable_unref(m->timer);
                m->next_attempt = 0;
                r = do_send_nonce(m);
                break;
        case ATTEST_ACTION_QUOTE:
                r = do_quote(m);
                break;
        case ATTEST_ACTION_SEND_QUOTE:
                r = do_send_quote(m);
                break;
        case ATTEST_ACTION_EXCHANGE_ESCROW:
                step_done(m);
                do_exchange_escrow(m);
                break;
        case ATTEST_ACTION_SEND_STORE_KEYS:
                r = do_send_store(m);
                break;
        case ATTEST_ACTION_RETRY:
                step_done(m);
                if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t) sizeof rnd)
                        rnd = UINT32_MAX / 2; /* no jitter this once */
                delay = attest_fsm_retry_delay(&m->fsm, arg_retry_base, arg_retry_max, rnd);
                log_info("Attestation attempt %u failed; next attempt in %" PRIu64 " ms.",
                         m->fsm.attempts,
                         delay / USEC_PER_MSEC);
                (void) arm_timer(m, delay);
                break;
        case ATTEST_ACTION_DONE:
                step_done(m);
                log_info("Round %u complete: %" PRIu64 " TPM commands.",
                         m->fsm.attempts,
                         m->round_tpm + (m->client ? controller_client_tpm_commands(m->client) : 0) -
                                         m->round_client_base);
                if (m->escrow_again) {
                        m->escrow_again = false;
                        log_info("eve-vaultd has new escrow to upload: another round.");
                        (void) arm_timer(m, 1);
                } else if (arg_reattest > 0)
                        (void) arm_timer(m, arg_reattest);
                else
                        m->next_attempt = 0;
                break;
        case ATTEST_ACTION_WAIT:
                log_info("A round is in progress (%s); its result will be fresh.",
                         attest_state_to_string(m->fsm.state));
                break;
        default:
                break;
        }
        if (r < 0) {
                AttestEvent fe = failure_event(a);
                step_done(m);
                if (fe >= 0)
                        return manager_dispatch(m, fe);
        } else if (a == ATTEST_ACTION_SEND_CERT || a == ATTEST_ACTION_SEND_QUOTE)
                step_done(m); /* signed: the TPM is not needed until the next step */
        manager_emit(m);
}

/* eve-vaultd's EscrowPending turned true (a vault created or re-sealed after this boot's escrow exchange): the
 * controller must get it without waiting for the next reboot. Complete: a new round now; during a round: one
 * more after it (the running one may have fetched the escrow entries already). */
static int on_vault_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *iface, *name;
        int pending = 0, r;

        r = sd_bus_message_read(msg, "s", &iface);
        if (r < 0 || !streq(iface, VAULT_BUS_INTERFACE))
                return 0;
        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return 0;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                if (sd_bus_message_read(msg, "s", &name) < 0)
                        return 0;
                if (streq(name, "EscrowPending")) {
                        if (sd_bus_message_read(msg, "v", "b", &pending) < 0)
                                return 0;
                } else if (sd_bus_message_skip(msg, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(msg) < 0)
                        return 0;
        }
        if (!pending)
                return 0;
        if (m->fsm.state == ATTEST_STATE_COMPLETE) {
                log_info("eve-vaultd has new escrow to upload: another round.");
                (void) arm_timer(m, 1);
        } else
                m->escrow_again = true;
        return 0;
}

/* ---- bus ---- */

static int property_get_state(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {
        Manager *m = userdata;

        if (streq(property, "State"))
                return sd_bus_message_append(reply, "u", (uint32_t) m->fsm.state);
        if (streq(property, "StateName"))
                return sd_bus_message_append(reply, "s", attest_state_to_string(m->fsm.state));
        if (streq(property, "LastError"))
                return sd_bus_message_append(reply, "s", m->last_error ?: "");
        if (streq(property, "LastSuccess"))
                return sd_bus_message_append(reply, "t", m->last_success);
        if (streq(property, "NextAttempt"))
                return sd_bus_message_append(reply, "t", m->next_attempt);
        if (streq(property, "Attempts"))
                return sd_bus_message_append(reply, "u", m->fsm.attempts);
        if (streq(property, "ControllerReachable"))
                return sd_bus_message_append(reply, "b", m->reachable);
        return -ENOENT;
}

static int method_restart(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = bus_verify_admin(msg, ATTEST_ERROR_ACCESS_DENIED, error);
        if (r <= 0)
                return r;
        log_info("Restart requested over the bus.");
        manager_dispatch(m, ATTEST_EVENT_RESTART);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_get_integrity_token(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = bus_verify_admin(msg, ATTEST_ERROR_ACCESS_DENIED, error);
        if (r <= 0)
                return r;
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', m->token, m->token_size);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable attest_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "u", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateName", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastSuccess", "t", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NextAttempt", "t", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Attempts", "u", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ControllerReachable",
                        "b",
                        property_get_state,
                        0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS(
                        "Restart",
                        SD_BUS_NO_ARGS,
                        SD_BUS_NO_RESULT,
                        method_restart,
                        SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                        "GetIntegrityToken",
                        SD_BUS_NO_ARGS,
                        SD_BUS_RESULT("ay", token),
                        method_get_integrity_token,
                        SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_VTABLE_END,
};

static const BusObjectImpl attest_object = {
        .path = ATTEST_BUS_PATH,
        .interface = ATTEST_BUS_INTERFACE,
        .vtable = attest_vtable,
};

/* ---- main ---- */

static void manager_done(Manager *m) {
        if (m->request)
                controller_request_cancel(m->request);
        m->vault_slot = sd_bus_slot_unref(m->vault_slot);
        m->timer = sd_event_source_disable_unref(m->timer);
        controller_client_free(m->client);
        tpm2_context_unref(m->tpm);
        attest_quote_done(&m->quote);
        eve_secret_free(m->token); /* the file in /run stays: the token is valid until the next round */
        attest_key_entries_free(m->released, m->n_released);
        attest_key_entries_free(m->escrow, m->n_escrow);
        free(m->last_error);
        free(m->emitted.last_error);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
}

static int on_start(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        manager_dispatch(m, ATTEST_EVENT_START);
        return 0;
}

static void help(void) {
        printf("%s [OPTIONS…]\n\n"
               "Attests this node to its controller and serves org.eve.Attest.\n\n"
               "  -h --help                   Show this help\n"
               "     --version                Show the version\n"
               "     --bus-introspect         Print the D-Bus introspection XML and exit\n"
               "     --retry-base=TIME        First retry delay after a failed round (default 5s)\n"
               "     --retry-max=TIME         Longest retry delay (default 10min)\n"
               "     --reattest-interval=TIME Attest again this long after a success (default 0: off)\n"
               "     --location-file=PATH     File with \"LATITUDE LONGITUDE\" sent as gps_info\n"
               "     --tcti=CONF              TPM to use (default: $EVE_TPM2_TCTI or %s)\n"
               "\nTIME: a number with ms, s, min or h (seconds without a unit).\n",
               program_invocation_short_name,
               DEFAULT_TCTI);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_BUS_INTROSPECT,
                ARG_RETRY_BASE,
                ARG_RETRY_MAX,
                ARG_REATTEST,
                ARG_LOCATION,
                ARG_TCTI,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "bus-introspect", no_argument, NULL, ARG_BUS_INTROSPECT },
                { "retry-base", required_argument, NULL, ARG_RETRY_BASE },
                { "retry-max", required_argument, NULL, ARG_RETRY_MAX },
                { "reattest-interval", required_argument, NULL, ARG_REATTEST },
                { "location-file", required_argument, NULL, ARG_LOCATION },
                { "tcti", required_argument, NULL, ARG_TCTI },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("eve-attestd %s\n", PROJECT_VERSION);
                        return 0;
                case ARG_BUS_INTROSPECT:
                        arg_introspect = true;
                        break;
                case ARG_RETRY_BASE:
                case ARG_RETRY_MAX:
                case ARG_REATTEST:
                        r = parse_timespan(optarg,
                                       c == ARG_RETRY_BASE                  ? &arg_retry_base
                                                       : c == ARG_RETRY_MAX ? &arg_retry_max
                                                                            : &arg_reattest);
                        if (r < 0)
                                return log_error_errno(r, "Invalid time: %s", optarg);
                        break;
                case ARG_LOCATION:
                        free(arg_location_file);
                        arg_location_file = strdup(optarg);
                        if (!arg_location_file)
                                return log_oom();
                        break;
                case ARG_TCTI:
                        if (setenv("EVE_TPM2_TCTI", optarg, 1) < 0)
                                return log_oom();
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "Unknown option.");
                }
        if (optind < argc)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "This program takes no arguments.");
        if (arg_retry_base == 0)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "--retry-base must be more than 0.");
        if (arg_retry_max < arg_retry_base)
                arg_retry_max = arg_retry_base;
        return 1;
}

static int run(int argc, char *argv[]) {
        static const BusObjectImpl *const impls[] = { &attest_object, NULL };
        _cleanup_(manager_done) Manager m = { .fsm = ATTEST_FSM_INIT };
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        if (arg_introspect)
                return bus_introspect_implementations(stdout, impls);

        (void) eve_harden_process();
        test_hook_parse(&m);
        r = bus_daemon_open(&m.event, &m.bus);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(m.bus, NULL, ATTEST_BUS_PATH, ATTEST_BUS_INTERFACE, attest_vtable, &m);
        if (r < 0)
                return log_error_errno(r, "Cannot register %s: %m", ATTEST_BUS_PATH);
        r = sd_bus_match_signal(m.bus,
                                NULL,
                                VAULT_BUS_NAME,
                                VAULT_BUS_PATH,
                                "org.freedesktop.DBus.Properties",
                                "PropertiesChanged",
                                on_vault_changed,
                                &m);
        if (r < 0)
                return log_error_errno(r, "Cannot follow eve-vaultd's escrow state: %m");
        r = sd_event_add_defer(m.event, NULL, on_start, &m);
        if (r < 0)
                return log_error_errno(r, "Cannot schedule the first round: %m");
        r = bus_daemon_ready(m.bus, ATTEST_BUS_NAME, "Attesting…");
        if (r < 0)
                return r;
        manager_emit(&m);
        return bus_daemon_run(m.event, m.bus, ATTEST_BUS_NAME);
}

EVE_DEFINE_MAIN(run);
