/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fetch loop: ConfigRequest{configHash, integrity_token} to /id/<uuid>/config at start, every
 * fetch_interval, and on Refresh(). /certs again at once when controllercert_confighash changes or a new
 * config's cipher context names a controller certificate that is not stored, at most once per
 * CERTS_REFETCH_MIN (a cause inside that window waits for its end). A config naming an unstored certificate
 * is applied (and the fetch ends) when that /certs is in. After it, ECDH certificates that neither /certs nor
 * the current config names are removed. 200 → a new config (the controller client has verified
 * the response's signature before we see a byte); 304 → keep; 403 → org.eve.Attest.Restart() and back off;
 * 503, no answer and other refusals → back off: fetch_retry doubling per failure up to fetch_interval, ±25 %
 * jitter. When attestation completes after a 403 (org.eve.Attest State → COMPLETE), fetch at once. */
#include <nettle/sha2.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "certs.pb-c.h"
#include "configd-manager.h"
#include "controller-certs.h"
#include "log.h"
#include "memory-util.h"
#include "proto-util.h"

#define ATTESTATION_STATE_COMPLETE 7U

typedef Org__Lfedge__Eve__Config__ConfigRequest ConfigRequest;

static uint64_t backoff(Manager *m) {
        uint64_t d = m->fetch_retry, cap = MAX(m->fetch_interval, m->fetch_retry);
        uint32_t rnd = 0;

        for (unsigned i = 1; i < m->fetch_failures && d < cap; i++)
                d *= 2;
        d = MIN(d, cap);
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t) sizeof rnd)
                rnd = UINT32_C(1) << 31; /* no entropy yet: the middle of the window */
        /* ±25 %: d * (0.75 + 0.5 * rnd / 2^32) */
        return d - d / 4 + (uint64_t) ((double) (d / 2) * ((double) rnd / 4294967296.0));
}

static int on_fetch_timer(sd_event_source *s, uint64_t usec, void *userdata);

void manager_fetch_schedule(Manager *m, uint64_t delay) {
        int r;

        if (!m->fetch_enabled || !m->event)
                return;
        if (!m->fetch_timer) {
                r = sd_event_add_time_relative(
                                m->event, &m->fetch_timer, CLOCK_MONOTONIC, delay, 0, on_fetch_timer, m);
                if (r < 0)
                        log_error_errno(r, "Cannot arm the fetch timer: %m");
                return;
        }
        (void) sd_event_source_set_time_relative(m->fetch_timer, delay);
        (void) sd_event_source_set_enabled(m->fetch_timer, SD_EVENT_ONESHOT);
}

static void reply_waiters(Manager *m) {
        for (size_t i = 0; i < m->n_refresh_waiters; i++) {
                sd_bus_message *w = m->refresh_waiters[i];

                if (m->last_result == FETCH_UPDATED || m->last_result == FETCH_NOT_MODIFIED)
                        (void) sd_bus_reply_method_return(w, "s", fetch_result_to_string(m->last_result));
                else
                        (void) sd_bus_reply_method_errorf(
                                        w,
                                        CONFIGD_ERROR_FETCH_FAILED,
                                        "Fetching the configuration failed (%s): %s",
                                        fetch_result_to_string(m->last_result),
                                        m->last_error ?: "unknown error");
                sd_bus_message_unref(w);
        }
        m->refresh_waiters = mfree(m->refresh_waiters);
        m->n_refresh_waiters = 0;
}

static void fetch_end(Manager *m, FetchResult result, const char *error) {
        bool ok = result == FETCH_UPDATED || result == FETCH_NOT_MODIFIED;

        m->last_result = result;
        free(m->last_error);
        m->last_error = error ? strdup(error) : NULL;
        if (ok) {
                m->fetch_failures = 0;
                m->last_success = now_usec(CLOCK_REALTIME);
                manager_fetch_schedule(m, m->fetch_interval);
        } else {
                uint64_t d;
                m->fetch_failures++;
                d = backoff(m);
                log_warning("Configuration fetch: %s%s%s; next try in %.1f s.",
                            fetch_result_to_string(result),
                            error ? ": " : "",
                            error ?: "",
                            (double) d / USEC_PER_SEC);
                manager_fetch_schedule(m, d);
        }
        reply_waiters(m);
        manager_emit_changed(m, "LastFetch", "LastSuccess", "LastFetchResult", "LastFetchError", NULL);
}

static int client_ensure(Manager *m) {
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        int r;

        if (m->client)
                return 0;
        r = controller_client_new(m->event, &c);
        if (r < 0) {
                fetch_end(m,
                          FETCH_NOT_READY,
                          c ? controller_client_last_error(c) : "no controller configured");
                return r;
        }
        r = controller_client_load_identity(c, NULL);
        if (r < 0) {
                fetch_end(m, FETCH_NOT_READY, controller_client_last_error(c));
                return r;
        }
        m->client = TAKE_PTR(c);
        return 0;
}

static int on_restart_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_warning("org.eve.Attest.Restart() failed: %s", e->message ?: e->name);
        else
                log_info("Asked eve-attestd to attest again.");
        return 0;
}

static bool config_names_unknown_cert(const Config *cfg);
static int certs_refetch(Manager *m, const char *why);

static void on_config_reply(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        _cleanup_(config_freep) Config *cfg = NULL;
        Manager *m = userdata;
        const char *old_certs;
        int r;

        m->fetch_request = NULL;
        if (error == -EACCES) {
                m->forbidden++;
                if (m->bus)
                        (void) sd_bus_call_method_async(
                                        m->bus,
                                        NULL,
                                        ATTEST_BUS_NAME,
                                        ATTEST_OBJECT_PATH,
                                        ATTEST_INTERFACE,
                                        "Restart",
                                        on_restart_reply,
                                        m,
                                        "");
                fetch_end(m,
                          FETCH_FORBIDDEN,
                          "403: the controller refused the integrity token; re-attesting");
                return;
        }
        if (error == -EAGAIN || error == -ECONNREFUSED || error == -EHOSTUNREACH || error == -ETIMEDOUT ||
            error == -ECONNRESET) {
                fetch_end(m, FETCH_UNAVAILABLE, controller_client_last_error(c));
                return;
        }
        if (error < 0) {
                fetch_end(m, FETCH_REFUSED, controller_client_last_error(c));
                return;
        }
        if (reply->status == 304) {
                log_debug("Configuration not modified.");
                fetch_end(m, FETCH_NOT_MODIFIED, NULL);
                return;
        }
        if (reply->payload_size == 0) {
                fetch_end(m, FETCH_REFUSED, "the controller answered without a configuration");
                return;
        }
        r = config_parse(reply->payload, reply->payload_size, &cfg);
        if (r == -ENOMEM) {
                fetch_end(m, FETCH_REFUSED, "out of memory");
                return;
        }
        if (r < 0) {
                fetch_end(m, FETCH_REFUSED, "the answer is not a usable ConfigResponse");
                return;
        }
        old_certs = m->config && m->config->response->config
                        ? m->config->response->config->controllercert_confighash
                        : NULL;
        if (config_names_unknown_cert(cfg)) {
                /* Its secrets need a certificate we do not have: apply it when /certs is in, so that they
                 * decrypt from the first request on (the fetch ends, and Refresh() answers, then). */
                if (certs_refetch(m, "a cipher context names an unknown controller certificate") > 0) {
                        config_free(m->pending_config);
                        m->pending_config = TAKE_PTR(cfg);
                        return;
                }
        } else if (old_certs && !streq_ptr(old_certs, cfg->response->config->controllercert_confighash))
                manager_certs_refetch(
                                m, "the controller's certificate set changed (controllercert_confighash)");
        (void) manager_set_config(m, TAKE_PTR(cfg), CONFIG_ORIGIN_CONTROLLER);
        fetch_end(m, FETCH_UPDATED, NULL);
}

static void fetch_post(Manager *m, const uint8_t *token, size_t token_size) {
        ConfigRequest req = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;
        _cleanup_free_ char *path = NULL;
        int r;

        r = controller_device_path("config", &path);
        if (r < 0) {
                fetch_end(m,
                          FETCH_NOT_READY,
                          r == -ENOENT ? "no device UUID yet (eve-register has not stored one)"
                                       : "the stored device UUID is not valid");
                return;
        }
        req.confighash = (char *) (config_hash(m->config) ?: "");
        req.integrity_token = (ProtobufCBinaryData){ .len = token_size, .data = (uint8_t *) token };
        r = controller_client_post(m->client, path, &req.base, 0, on_config_reply, m, &m->fetch_request);
        if (r < 0)
                fetch_end(m, FETCH_REFUSED, controller_client_last_error(m->client));
}

static int on_token(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const void *token = NULL;
        size_t n = 0;

        m->token_slot = sd_bus_slot_unref(m->token_slot);
        if (e)
                log_debug("No integrity token from eve-attestd: %s", e->message ?: e->name);
        else if (sd_bus_message_read_array(reply, 'y', &token, &n) < 0)
                n = 0;
        if (n == 0)
                log_debug("Fetching without an integrity token.");
        fetch_post(m, token, n);
        return 0;
}

static void fetch_begin(Manager *m) {
        int r;

        if (m->fetch_request || m->token_slot || m->pending_config)
                return; /* one at a time (a pending config waits for its /certs) */
        m->last_attempt = now_usec(CLOCK_REALTIME);
        m->fetches++;
        if (client_ensure(m) < 0)
                return;
        if (!m->bus) {
                fetch_post(m, NULL, 0);
                return;
        }
        r = sd_bus_call_method_async(
                        m->bus,
                        &m->token_slot,
                        ATTEST_BUS_NAME,
                        ATTEST_OBJECT_PATH,
                        ATTEST_INTERFACE,
                        "GetIntegrityToken",
                        on_token,
                        m,
                        "");
        if (r < 0)
                fetch_post(m, NULL, 0);
}

static int on_fetch_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        fetch_begin(userdata);
        return 0;
}

int manager_fetch_now(Manager *m, sd_bus_message *waiter) {
        if (!m->fetch_enabled)
                return -EOPNOTSUPP;
        if (waiter) {
                sd_bus_message **n = realloc(m->refresh_waiters, (m->n_refresh_waiters + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                m->refresh_waiters = n;
                m->refresh_waiters[m->n_refresh_waiters++] = sd_bus_message_ref(waiter);
        }
        fetch_begin(m);
        return 0;
}

/* ---- /certs again (issue 13: unknown controller certificate, certificate set changed) ---- */

/* Whether a cipher context of cfg names a controller ECDH certificate that is not stored. */
static bool config_names_unknown_cert(const Config *cfg) {
        const EdgeDevConfig *c = cfg && cfg->response ? cfg->response->config : NULL;

        for (size_t i = 0; c && i < c->n_ciphercontexts; i++) {
                const ProtobufCBinaryData *h = &c->ciphercontexts[i]->controllercerthash;
                _cleanup_free_ char *path = NULL;

                if (h->len < CONTROLLER_CERT_HASH_SIZE)
                        continue; /* refused when a secret is asked for */
                path = controller_cert_path(CONTROLLER_CERT_ECDH, h->data);
                if (path && access(path, F_OK) < 0 && errno == ENOENT)
                        return true;
        }
        return false;
}

/* After a verified /certs: ECDH certificates that neither it nor the current config names go. */
static void certs_prune(Manager *m, const ControllerReply *reply) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *zc = NULL;
        const EdgeDevConfig *c = m->config && m->config->response ? m->config->response->config : NULL;
        _cleanup_free_ uint8_t(*keep)[CONTROLLER_CERT_HASH_SIZE] = NULL;
        size_t n = 0;

        if (PROTO_UNPACK(&org__lfedge__eve__certs__zcontroller_cert__descriptor,
                         reply->payload,
                         reply->payload_size,
                         CONFIG_SIZE_MAX,
                         &zc) < 0)
                return;
        keep = calloc(zc->n_certs + (c ? c->n_ciphercontexts : 0) + 1, sizeof *keep);
        if (!keep)
                return;
        for (size_t i = 0; i < zc->n_certs; i++) {
                struct sha256_ctx h;
                uint8_t d[SHA256_DIGEST_SIZE];

                sha256_init(&h);
                sha256_update(&h, zc->certs[i]->cert.len, zc->certs[i]->cert.data);
                sha256_digest(&h, sizeof d, d);
                memcpy(keep[n++], d, CONTROLLER_CERT_HASH_SIZE);
        }
        for (size_t i = 0; c && i < c->n_ciphercontexts; i++)
                if (c->ciphercontexts[i]->controllercerthash.len >= CONTROLLER_CERT_HASH_SIZE)
                        memcpy(keep[n++],
                               c->ciphercontexts[i]->controllercerthash.data,
                               CONTROLLER_CERT_HASH_SIZE);
        (void) controller_certs_prune(
                        CONTROLLER_CERT_ECDH, (const uint8_t(*)[CONTROLLER_CERT_HASH_SIZE]) keep, n);
}

static void on_certs(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        Manager *m = userdata;

        m->certs_request = NULL;
        if (error < 0)
                log_warning("Fetching /certs failed: %s", controller_client_last_error(c));
        else
                log_info("Fetched the controller's certificates again.");
        if (m->pending_config) {
                /* Applied either way: a secret whose certificate is still missing says so when asked. */
                (void) manager_set_config(m, TAKE_PTR(m->pending_config), CONFIG_ORIGIN_CONTROLLER);
                fetch_end(m, FETCH_UPDATED, NULL);
        }
        if (error >= 0)
                certs_prune(m, reply);
}

static int on_certs_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        manager_certs_refetch(userdata, "a cause that came during the wait");
        return 0;
}

void manager_certs_refetch(Manager *m, const char *why) {
        (void) certs_refetch(m, why);
}

/* 1 when a /certs request is under way (started now or before), 0 when it waits for the bound or cannot
 * start. */
static int certs_refetch(Manager *m, const char *why) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (m->certs_request)
                return 1;
        if (!m->fetch_enabled || !m->client)
                return 0;
        if (m->certs_refetch_at != 0 && now - m->certs_refetch_at < CERTS_REFETCH_MIN) {
                /* Bounded, never dropped: once the window is over. */
                uint64_t at = m->certs_refetch_at + CERTS_REFETCH_MIN;

                log_debug("Fetching /certs again in %.1f s (%s).", (double) (at - now) / USEC_PER_SEC, why);
                if (!m->certs_timer) {
                        if (sd_event_add_time(
                                            m->event,
                                            &m->certs_timer,
                                            CLOCK_MONOTONIC,
                                            at,
                                            0,
                                            on_certs_timer,
                                            m) < 0)
                                log_warning("Cannot arm the /certs timer; %s waits for the next cause.",
                                            why);
                } else {
                        (void) sd_event_source_set_time(m->certs_timer, at);
                        (void) sd_event_source_set_enabled(m->certs_timer, SD_EVENT_ONESHOT);
                }
                return 0;
        }
        m->certs_refetch_at = now;
        log_info("Fetching /certs again: %s.", why);
        if (controller_client_fetch_certs(m->client, on_certs, m, &m->certs_request) < 0) {
                log_warning("Cannot fetch /certs: %s", controller_client_last_error(m->client));
                return 0;
        }
        return 1;
}

/* ---- attestation completing → fetch at once after a 403 ---- */

static int on_attest_properties(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *iface;

        if (sd_bus_message_read(msg, "s", &iface) < 0 || !streq(iface, ATTEST_INTERFACE))
                return 0;
        if (sd_bus_message_enter_container(msg, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(msg, 'e', "sv") > 0) {
                const char *name;
                uint32_t state;

                if (sd_bus_message_read(msg, "s", &name) < 0)
                        return 0;
                if (streq(name, "State")) {
                        if (sd_bus_message_read(msg, "v", "u", &state) >= 0 &&
                            state == ATTESTATION_STATE_COMPLETE &&
                            (m->last_result == FETCH_FORBIDDEN || m->last_result == FETCH_NEVER)) {
                                log_info("Attestation complete: fetching the configuration now.");
                                fetch_begin(m);
                        }
                        return 0;
                }
                if (sd_bus_message_skip(msg, "v") < 0 || sd_bus_message_exit_container(msg) < 0)
                        return 0;
        }
        return 0;
}

int manager_fetch_start(Manager *m) {
        int r;

        if (!m->fetch_enabled)
                return 0;
        if (m->bus) {
                r = sd_bus_match_signal_async(
                                m->bus,
                                NULL,
                                ATTEST_BUS_NAME,
                                ATTEST_OBJECT_PATH,
                                "org.freedesktop.DBus.Properties",
                                "PropertiesChanged",
                                on_attest_properties,
                                NULL,
                                m);
                if (r < 0)
                        return log_error_errno(r, "Cannot watch org.eve.Attest: %m");
        }
        manager_fetch_schedule(m, 0);
        return 0;
}
