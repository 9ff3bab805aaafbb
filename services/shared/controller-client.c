/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The controller client: curl's multi-socket API on sd-event (one io source per socket curl asks us to
 * watch, one timer for curl's timeout), signed envelopes out, verified envelopes in, /certs verified and
 * stored. libcurl is loaded (curl-util.h) when a request starts and unloaded once no request is left for
 * unload_delay_usec, so an idle daemon does not carry it. */
#include "controller-client.h"

#include <dirent.h>
#include <fcntl.h>
#include <gnutls/x509.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <systemd/sd-id128.h>
#include <time.h>

#include "certs.pb-c.h"
#include "controller-certs.h"
#include "crypto-util.h"
#include "curl-util.h"
#include "encoding.h"
#include "log.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"

#define SERVER_FILE "server"
#define ROOT_FILE "root-certificate.pem"
#define TLS_ROOT_FILE "v2tlsbaseroot-certificates.pem"
#define DEVICE_CERT_FILE "device.cert.pem"
#define DEVICE_KEY_FILE "device.key.pem"
#define ONBOARD_CERT_FILE "onboard.cert.pem"
#define ONBOARD_KEY_FILE "onboard.key.pem"
#define UUID_FILE "uuid"
#define CONTROLLER_CERTS_SUBDIR "controller"
#define CERTS_MAX 32U  /* certificates in one /certs answer */
#define SIGNING_MAX 8U /* signing certificates kept in memory */
#define REQUEST_BODY_MAX (1024U * 1024U)

typedef struct SigningCert {
        gnutls_pubkey_t key;
        char *pem;
        size_t pem_size;
} SigningCert;

struct ControllerClient {
        sd_event *event;
        bool own_event;
        sd_event_source *timer;
        CURLM *multi;                  /* non-NULL while libcurl is loaded for this client */
        sd_event_source *unload_timer; /* armed when the last request is gone */
        uint64_t unload_delay_usec;

        char *base_url;
        char *tls_root;   /* file with the TLS trust anchors */
        char *chain_root; /* root-certificate.pem */

        gnutls_privkey_t device_key; /* software identity (device.key.pem) */
        bool tpm_identity;           /* the device key is in the TPM */
        Tpm2Context *tpm;            /* lent by controller_client_set_tpm(); else opened per signature */
        uint64_t tpm_commands;       /* sent through contexts opened here */
        uint8_t device_hash[32];
        bool have_identity;
        bool warned_unbound; /* logged once: the TPM device key has no controller binding yet */
        gnutls_privkey_t onboard_key;
        char *onboard_pem;
        uint8_t onboard_hash[32];

        SigningCert signing[SIGNING_MAX];
        size_t n_signing;
        uint64_t miss_refetch_usec; /* CLOCK_MONOTONIC of the last /certs fetched for an unknown signer */
        unsigned miss_refetch_inflight; /* such fetches not answered yet */

        uint64_t connect_timeout_usec, timeout_usec;
        size_t response_max;
        char *serial, *soft_serial;

        ControllerRequest *requests; /* doubly linked */
        unsigned n_requests;
        char *last_error;
};

struct ControllerRequest {
        ControllerClient *client;
        ControllerRequest *prev, *next;
        CURL *easy;
        struct curl_slist *headers;
        char *url;
        uint8_t *body;
        size_t body_size;
        uint8_t *resp;
        size_t resp_size;
        bool too_big;
        bool is_certs;
        bool refetched; /* a /certs refetch was made for this request already */
        bool linked;    /* in client->requests, with a curl handle in the multi */
        long status;
        char errbuf[CURL_ERROR_SIZE];
        ControllerRequest
                        *waiting; /* for an internal /certs refetch: the request whose answer waits for it */
        ControllerHandler handler;
        void *userdata;
};

typedef struct SockData {
        sd_event_source *source;
} SockData;

/* ---- errors ---- */

_printf_(3, 4) static int set_error(ControllerClient *c, int error, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(c->last_error);
        c->last_error = s;
        if (s)
                log_debug("Controller client: %s", s);
        return -ERRNO_VALUE(error);
}

const char *controller_client_last_error(const ControllerClient *c) {
        return c && c->last_error ? c->last_error : "";
}

bool controller_error_is_transient(int error) {
        switch (-ERRNO_VALUE(error)) {
        case -EAGAIN:
        case -ECONNREFUSED:
        case -ECONNRESET:
        case -EHOSTUNREACH:
        case -ETIMEDOUT:
                return true;
        default:
                return false;
        }
}

int controller_http_status_to_errno(long status) {
        if (status == 200 || status == 201 || status == 204 || status == 304)
                return 0;
        switch (status) {
        case 400:
        case 404:
                return -ENOENT;
        case 401:
                return -EPERM;
        case 403:
                return -EACCES;
        case 409:
                return -EEXIST;
        case 413:
                return -EMSGSIZE;
        default:
                if (status >= 500 && status <= 599)
                        return -EAGAIN;
                return -EPROTO;
        }
}

static const char *status_meaning(long status) {
        switch (status) {
        case 400:
        case 404:
                return "the controller does not know this device";
        case 401:
                return "the controller refused the request's signature or identity";
        case 403:
                return "forbidden";
        case 409:
                return "conflict with what the controller has registered";
        case 413:
                return "request too large for the controller";
        case 503:
                return "controller busy, try later";
        default:
                return status >= 500 ? "controller error, try later" : "unexpected answer";
        }
}

static int curl_code_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                return -EKEYREJECTED;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_SSL_CONNECT_ERROR:
                return -ECONNRESET;
        default:
                return -EIO;
        }
}

/* ---- files ---- */

static int read_trimmed(const char *path, char **ret) {
        _cleanup_free_ char *s = NULL;
        size_t n;
        int r;

        r = crypto_read_file(path, false, &s, &n);
        if (r < 0)
                return r;
        if (strlen(s) != n)
                return -EBADMSG;
        while (n > 0 && strchr(" \t\r\n", s[n - 1]))
                s[--n] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

/* "host:port" or "host" (EVE's /config/server). Letters, digits, '.', '-', ':' and '[' ']' for IPv6 only. */
static bool server_valid(const char *s) {
        if (isempty(s) || strlen(s) > 255)
                return false;
        for (const char *p = s; *p; p++)
                if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
                      strchr(".-:[]_", *p)))
                        return false;
        return true;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static char *controller_certs_dir(void) {
        return eve_path_join(EVE_PATH_CERTS, CONTROLLER_CERTS_SUBDIR);
}

static void *memdup_nul(const void *p, size_t n) {
        char *b = malloc(n + 1);
        if (!b)
                return NULL;
        memcpy(b, p, n);
        b[n] = '\0';
        return b;
}

static void sha256(const void *p, size_t n, uint8_t ret[static 32]) {
        struct sha256_ctx h;
        sha256_init(&h);
        sha256_update(&h, n, p);
        sha256_digest(&h, 32, ret);
}

static int pubkey_from_pem(const void *pem, size_t size, gnutls_x509_crt_t *ret_crt, gnutls_pubkey_t *ret) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t key = NULL;
        gnutls_datum_t d = { (unsigned char *) pem, (unsigned) size };
        int r;

        if (size == 0 || size > UINT32_MAX)
                return -EBADMSG;
        r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return crypto_errno(r);
        r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return -EBADMSG;
        if (ret) {
                r = gnutls_pubkey_init(&key);
                if (r < 0)
                        return crypto_errno(r);
                r = gnutls_pubkey_import_x509(key, crt, 0);
                if (r < 0)
                        return -EBADMSG;
                *ret = TAKE_PTR(key);
        }
        if (ret_crt)
                *ret_crt = TAKE_PTR(crt);
        return 0;
}

static void signing_clear(ControllerClient *c) {
        for (size_t i = 0; i < c->n_signing; i++) {
                gnutls_pubkey_deinit(c->signing[i].key);
                free(c->signing[i].pem);
        }
        c->n_signing = 0;
}

static int signing_add(ControllerClient *c, const char *pem, size_t size) {
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t key = NULL;
        char *copy;
        int r;

        if (c->n_signing >= SIGNING_MAX)
                return -E2BIG;
        r = pubkey_from_pem(pem, size, NULL, &key);
        if (r < 0)
                return r;
        copy = memdup_nul(pem, size);
        if (!copy)
                return -ENOMEM;
        c->signing[c->n_signing++] = (SigningCert){ .key = TAKE_PTR(key), .pem = copy, .pem_size = size };
        return 0;
}

/* The trust list: the chain root, plus the intermediates given (from /certs, or stored ones). */
static int
                chain_verify(ControllerClient *c,
                             gnutls_x509_crt_t crt,
                             gnutls_x509_crt_t *intermediates,
                             size_t n_intermediates) {

        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL;
        gnutls_x509_trust_list_t tl = NULL;
        gnutls_x509_crt_t chain[1 + CERTS_MAX];
        unsigned status = 0;
        int r;

        if (n_intermediates > CERTS_MAX)
                return -E2BIG;
        r = crypto_cert_load(c->chain_root, &root, NULL, NULL);
        if (r < 0)
                return set_error(
                                c,
                                r,
                                "Cannot read the controller root certificate %s: %s",
                                c->chain_root,
                                strerror(-r));
        r = gnutls_x509_trust_list_init(&tl, 0);
        if (r < 0)
                return crypto_errno(r);
        /* The list takes the root (and frees it with the list). */
        r = gnutls_x509_trust_list_add_cas(tl, &root, 1, 0);
        if (r != 1) {
                gnutls_x509_trust_list_deinit(tl, 1);
                return -ENOMEM;
        }
        root = NULL;
        chain[0] = crt;
        for (size_t i = 0; i < n_intermediates; i++)
                chain[1 + i] = intermediates[i];
        r = gnutls_x509_trust_list_verify_crt(tl, chain, 1 + n_intermediates, 0, &status, NULL);
        gnutls_x509_trust_list_deinit(tl, 1);
        if (r < 0)
                return crypto_errno(r);
        return status == 0 ? 0 : -EBADMSG;
}

static int load_stored_intermediates(const char *dir, gnutls_x509_crt_t *ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d)) && n < CERTS_MAX) {
                _cleanup_free_ char *path = NULL;
                if (strncmp(de->d_name, "intermediate-", 13) != 0)
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                        return -ENOMEM;
                if (crypto_cert_load(path, &ret[n], NULL, NULL) >= 0)
                        n++;
        }
        *ret_n = n;
        return 0;
}

/* The signing certificates stored by an earlier /certs, each verified against the root again (/persist is
 * not measured: a file planted there must not become a trusted signer). */
static int signing_load_stored(ControllerClient *c) {
        _cleanup_free_ char *dir = controller_certs_dir();
        _cleanup_(closedirp) DIR *d = NULL;
        gnutls_x509_crt_t inter[CERTS_MAX];
        size_t n_inter = 0;
        struct dirent *de;
        int r;

        if (!dir)
                return -ENOMEM;
        signing_clear(c);
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        r = load_stored_intermediates(dir, inter, &n_inter);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
                _cleanup_free_ char *path = NULL, *pem = NULL;
                size_t size;

                if (strncmp(de->d_name, "signing-", 8) != 0)
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (crypto_cert_load(path, &crt, &pem, &size) < 0 ||
                    chain_verify(c, crt, inter, n_inter) < 0) {
                        log_warning("Ignoring %s: not a certificate issued under %s.", path, c->chain_root);
                        continue;
                }
                r = signing_add(c, pem, size);
                if (r < 0)
                        break;
        }
        for (size_t i = 0; i < n_inter; i++)
                gnutls_x509_crt_deinit(inter[i]);
        return r < 0 ? r : 0;
}

/* ---- client ---- */

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static void process_done(ControllerClient *c);

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        ControllerClient *c = userp;
        SockData *sd = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (sd) {
                        sd_event_source_disable_unref(sd->source);
                        free(sd);
                        (void) sym_curl_multi_assign(c->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (!sd) {
                sd = calloc(1, sizeof *sd);
                if (!sd)
                        return -1;
                r = sd_event_add_io(c->event, &sd->source, fd, events, on_io, c);
                if (r < 0) {
                        free(sd);
                        log_debug_errno(r, "Cannot watch a controller connection: %m");
                        return -1;
                }
                (void) sd_event_source_set_description(sd->source, "controller-io");
                (void) sym_curl_multi_assign(c->multi, fd, sd);
                return 0;
        }
        r = sd_event_source_set_io_events(sd->source, events);
        if (r >= 0)
                r = sd_event_source_set_enabled(sd->source, SD_EVENT_ON);
        return r < 0 ? -1 : 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        ControllerClient *c = userp;
        uint64_t now;
        int r;

        if (timeout_ms < 0)
                return c->timer ? (sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0) : 0;
        r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return -1;
        now += (uint64_t) timeout_ms * 1000U;
        if (!c->timer) {
                r = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, now, 0, on_timer, c);
                if (r < 0)
                        return -1;
                (void) sd_event_source_set_description(c->timer, "controller-timer");
                return 0;
        }
        r = sd_event_source_set_time(c->timer, now);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r < 0 ? -1 : 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ControllerClient *c = userdata;
        int running;

        if (!c->multi)
                return 0;
        (void) sym_curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        process_done(c);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ControllerClient *c = userdata;
        int action = 0, running;

        if (!c->multi)
                return 0;
        if (revents & (EPOLLIN | EPOLLHUP))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                action |= CURL_CSELECT_ERR;
        (void) sym_curl_multi_socket_action(c->multi, fd, action, &running);
        process_done(c);
        return 0;
}

int controller_client_new(sd_event *event, ControllerClient **ret) {
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        _cleanup_free_ char *server_path = NULL, *server = NULL, *tls = NULL;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->connect_timeout_usec = CONTROLLER_CONNECT_TIMEOUT_USEC_DEFAULT;
        c->timeout_usec = CONTROLLER_TIMEOUT_USEC_DEFAULT;
        c->response_max = CONTROLLER_RESPONSE_MAX_DEFAULT;
        c->unload_delay_usec = CONTROLLER_UNLOAD_DELAY_USEC_DEFAULT;
        if (event)
                c->event = sd_event_ref(event);
        else {
                r = sd_event_new(&c->event);
                if (r < 0)
                        return r;
                c->own_event = true;
        }

        server_path = eve_path_join(EVE_PATH_CONFIG, SERVER_FILE);
        c->chain_root = eve_path_join(EVE_PATH_CONFIG, ROOT_FILE);
        tls = eve_path_join(EVE_PATH_CONFIG, TLS_ROOT_FILE);
        if (!server_path || !c->chain_root || !tls)
                return -ENOMEM;
        /* No client comes back to ask last_error of: these are logged, they are for a person to fix. */
        r = read_trimmed(server_path, &server);
        if (r < 0)
                return log_error_errno(r, "Cannot read the controller address from %s: %m", server_path);
        if (!server_valid(server))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL), "%s does not hold \"host:port\".", server_path);
        if (asprintf(&c->base_url, "https://%s/api/v2/edgedevice/", server) < 0)
                return -ENOMEM;
        if (access(tls, R_OK) >= 0)
                c->tls_root = TAKE_PTR(tls);
        else if (access(c->chain_root, R_OK) >= 0) {
                c->tls_root = strdup(c->chain_root);
                if (!c->tls_root)
                        return -ENOMEM;
        } else
                return log_error_errno(
                                SYNTHETIC_ERRNO(ENOENT),
                                "No TLS root for the controller: neither %s nor %s is readable.",
                                tls,
                                c->chain_root);

        r = signing_load_stored(c);
        if (r < 0)
                log_warning_errno(r, "Cannot read the stored controller certificates, ignoring: %m");

        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- libcurl, loaded while needed ---- */

static int curl_load(ControllerClient *c) {
        _cleanup_free_ char *why = NULL;
        int r;

        if (c->unload_timer)
                (void) sd_event_source_set_enabled(c->unload_timer, SD_EVENT_OFF);
        if (c->multi)
                return 0;
        r = curl_dl_acquire(&why);
        if (r < 0)
                return set_error(c, r, "%s", why ?: "libcurl unavailable");
        c->multi = sym_curl_multi_init();
        if (!c->multi) {
                curl_dl_release();
                return -ENOMEM;
        }
        if (sym_curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            sym_curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            sym_curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            sym_curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
                (void) sym_curl_multi_cleanup(c->multi);
                c->multi = NULL;
                curl_dl_release();
                return set_error(c, EIO, "libcurl refuses the event loop callbacks.");
        }
        return 0;
}

static void curl_unload(ControllerClient *c) {
        if (!c->multi)
                return;
        (void) sym_curl_multi_cleanup(c->multi); /* calls curl_socket_cb(REMOVE) for what is still open */
        c->multi = NULL;
        if (c->timer)
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        curl_dl_release();
}

static int on_unload(sd_event_source *s, uint64_t usec, void *userdata) {
        ControllerClient *c = userdata;

        if (c->n_requests == 0)
                curl_unload(c);
        return 0;
}

/* Called when a request leaves the list: with none left, unload libcurl after the delay (never right away:
 * this runs inside curl's callbacks, and a burst of requests should not load it again for each). */
static void curl_unload_later(ControllerClient *c) {
        int r;

        if (!c->multi || c->n_requests > 0)
                return;
        if (!c->unload_timer) {
                r = sd_event_add_time_relative(
                                c->event,
                                &c->unload_timer,
                                CLOCK_MONOTONIC,
                                c->unload_delay_usec,
                                0,
                                on_unload,
                                c);
                if (r >= 0)
                        (void) sd_event_source_set_description(c->unload_timer, "controller-unload");
        } else {
                r = sd_event_source_set_time_relative(c->unload_timer, c->unload_delay_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->unload_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0) /* harmless: libcurl stays loaded until the client is freed */
                log_debug_errno(r, "Cannot arm the timer that unloads libcurl, keeping it: %m");
}

static void request_free(ControllerRequest *q);

ControllerClient *controller_client_free(ControllerClient *c) {
        if (!c)
                return NULL;
        while (c->requests)
                request_free(c->requests);
        curl_unload(c);
        sd_event_source_disable_unref(c->unload_timer);
        sd_event_source_disable_unref(c->timer);
        sd_event_unref(c->event);
        if (c->device_key)
                gnutls_privkey_deinit(c->device_key);
        tpm2_context_unref(c->tpm);
        if (c->onboard_key)
                gnutls_privkey_deinit(c->onboard_key);
        signing_clear(c);
        free(c->onboard_pem);
        free(c->base_url);
        free(c->tls_root);
        free(c->chain_root);
        free(c->serial);
        free(c->soft_serial);
        free(c->last_error);
        return mfree(c);
}

int controller_client_load_identity(ControllerClient *c, Tpm2Context *tpm) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        _cleanup_(tpm2_context_unrefp) Tpm2Context *own = NULL;
        _cleanup_free_ char *cert_path = NULL, *key_path = NULL;
        Tpm2EccPoint want, have;
        int r;

        cert_path = eve_path_join(EVE_PATH_CONFIG, DEVICE_CERT_FILE);
        key_path = eve_path_join(EVE_PATH_CONFIG, DEVICE_KEY_FILE);
        if (!cert_path || !key_path)
                return -ENOMEM;
        r = crypto_cert_load(cert_path, &crt, NULL, NULL);
        if (r < 0)
                return set_error(c, r, "Cannot read the device certificate %s: %s", cert_path, strerror(-r));
        r = crypto_cert_point(crt, &want);
        if (r < 0)
                return set_error(c, r, "%s is not an ECDSA P-256 certificate.", cert_path);

        if (access(key_path, F_OK) >= 0) {
                r = crypto_soft_key_load(key_path, &key);
                if (r < 0)
                        return set_error(
                                        c,
                                        r,
                                        "Cannot read the software device key %s: %s",
                                        key_path,
                                        strerror(-r));
                r = crypto_privkey_point(key, &have);
                if (r < 0)
                        return set_error(
                                        c,
                                        r,
                                        "Cannot read the public part of %s: %s",
                                        key_path,
                                        strerror(-r));
        } else {
                if (!tpm) {
                        r = tpm2_context_new(NULL, &own);
                        if (r < 0)
                                return set_error(
                                                c,
                                                r,
                                                "Cannot open the TPM (%s): %s",
                                                eve_tcti(),
                                                strerror(-r));
                        tpm = own;
                }
                r = tpm2_key_ensure(tpm, TPM2_KEY_DEVICE, /* create= */ false, &have);
                if (r < 0)
                        return set_error(
                                        c,
                                        r,
                                        "No device key in the TPM (run eve-tpm-setup): %s",
                                        tpm2_context_last_error(tpm));
        }
        if (memcmp(&want, &have, sizeof want) != 0)
                return set_error(c, EKEYREJECTED, "The device key does not match %s.", cert_path);
        r = crypto_cert_hash_der(crt, c->device_hash);
        if (r < 0)
                return r;
        if (c->device_key)
                gnutls_privkey_deinit(c->device_key);
        c->device_key = TAKE_PTR(key);
        c->tpm_identity = !c->device_key;
        c->have_identity = true;
        return 0;
}

void controller_client_set_tpm(ControllerClient *c, Tpm2Context *tpm) {
        if (tpm)
                tpm2_context_ref(tpm);
        tpm2_context_unref(c->tpm);
        c->tpm = tpm;
}

int controller_client_load_onboarding(ControllerClient *c, const char *cert_path, const char *key_path) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_(gnutls_privkey_deinitp) gnutls_privkey_t key = NULL;
        _cleanup_free_ char *cp = NULL, *kp = NULL, *pem = NULL;
        size_t size;
        int r;

        cp = cert_path ? strdup(cert_path) : eve_path_join(EVE_PATH_CONFIG, ONBOARD_CERT_FILE);
        kp = key_path ? strdup(key_path) : eve_path_join(EVE_PATH_CONFIG, ONBOARD_KEY_FILE);
        if (!cp || !kp)
                return -ENOMEM;
        r = crypto_cert_load(cp, &crt, &pem, &size);
        if (r < 0)
                return set_error(c, r, "Cannot read the onboarding certificate %s: %s", cp, strerror(-r));
        r = crypto_soft_key_load(kp, &key);
        if (r < 0)
                return set_error(c, r, "Cannot read the onboarding key %s: %s", kp, strerror(-r));
        r = crypto_cert_hash_der(crt, c->onboard_hash);
        if (r < 0)
                return r;
        if (c->onboard_key)
                gnutls_privkey_deinit(c->onboard_key);
        free(c->onboard_pem);
        c->onboard_key = TAKE_PTR(key);
        c->onboard_pem = TAKE_PTR(pem);
        return 0;
}

int controller_client_set_serial(ControllerClient *c, const char *serial, const char *soft_serial) {
        char *a = NULL, *b = NULL;

        if ((serial && !(a = strdup(serial))) || (soft_serial && !(b = strdup(soft_serial)))) {
                free(a);
                return -ENOMEM;
        }
        free(c->serial);
        free(c->soft_serial);
        c->serial = a;
        c->soft_serial = b;
        return 0;
}

void controller_client_set_timeouts(ControllerClient *c, uint64_t connect_usec, uint64_t total_usec) {
        if (connect_usec > 0)
                c->connect_timeout_usec = connect_usec;
        if (total_usec > 0)
                c->timeout_usec = total_usec;
}

void controller_client_set_unload_delay(ControllerClient *c, uint64_t usec) {
        c->unload_delay_usec = usec;
}

void controller_client_set_response_max(ControllerClient *c, size_t max) {
        if (max > 0)
                c->response_max = max;
}

const char *controller_client_base_url(const ControllerClient *c) {
        return c->base_url;
}

const uint8_t *controller_client_device_cert_hash(const ControllerClient *c) {
        return c->have_identity ? c->device_hash : NULL;
}

uint64_t controller_client_tpm_commands(const ControllerClient *c) {
        return c->tpm_commands;
}

unsigned controller_client_pending(const ControllerClient *c) {
        return c->n_requests;
}

/* ---- envelopes ---- */

int controller_envelope_pack(
                const uint8_t cert_hash[static 32],
                const char *sender_pem,
                const void *payload,
                size_t payload_size,
                const uint8_t *sig,
                size_t sig_size,
                uint8_t **ret,
                size_t *ret_size) {

        Org__Lfedge__Eve__Auth__AuthContainer ac = ORG__LFEDGE__EVE__AUTH__AUTH_CONTAINER__INIT;
        Org__Lfedge__Eve__Auth__AuthBody body = ORG__LFEDGE__EVE__AUTH__AUTH_BODY__INIT;
        _cleanup_free_ char *b64 = NULL;

        body.payload = (ProtobufCBinaryData){ .len = payload_size, .data = (uint8_t *) payload };
        ac.protectedpayload = &body;
        ac.algo = ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES;
        ac.sendercerthash = (ProtobufCBinaryData){ .len = 32, .data = (uint8_t *) cert_hash };
        ac.signaturehash = (ProtobufCBinaryData){ .len = sig_size, .data = (uint8_t *) sig };
        if (sender_pem) {
                b64 = base64_encode(sender_pem, strlen(sender_pem));
                if (!b64)
                        return -ENOMEM;
                ac.sendercert = (ProtobufCBinaryData){ .len = strlen(b64), .data = (uint8_t *) b64 };
        }
        return PROTO_PACK(&ac, ret, ret_size);
}

int controller_envelope_seal(
                gnutls_privkey_t key,
                const uint8_t cert_hash[static 32],
                const char *sender_pem,
                const void *payload,
                size_t payload_size,
                uint8_t **ret,
                size_t *ret_size) {

        _cleanup_(gnutls_datum_freep) gnutls_datum_t sig = {};
        uint8_t digest[32], rs[64];
        gnutls_datum_t hash = { digest, sizeof digest };
        int pk, r;

        if (payload_size > REQUEST_BODY_MAX)
                return -EMSGSIZE;
        sha256(payload, payload_size, digest);
        pk = gnutls_privkey_get_pk_algorithm(key, NULL);
        if (pk == GNUTLS_PK_ECDSA) {
                r = gnutls_privkey_sign_hash2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &hash, &sig);
                if (r < 0)
                        return crypto_errno(r);
                r = crypto_ecdsa_der_to_rs(sig.data, sig.size, rs);
                if (r < 0)
                        return r;
                return controller_envelope_pack(
                                cert_hash, sender_pem, payload, payload_size, rs, sizeof rs, ret, ret_size);
        }
        if (pk == GNUTLS_PK_RSA) {
                r = gnutls_privkey_sign_hash2(key, GNUTLS_SIGN_RSA_SHA256, 0, &hash, &sig);
                if (r < 0)
                        return crypto_errno(r);
                return controller_envelope_pack(
                                cert_hash,
                                sender_pem,
                                payload,
                                payload_size,
                                sig.data,
                                sig.size,
                                ret,
                                ret_size);
        }
        return -EMEDIUMTYPE;
}

/* The device's envelope: the TPM signs (the lent context, or one opened for this signature and closed at
 * once: a TPM without resource manager, like swtpm, serves one connection at a time). */
static int seal_device(ControllerClient *c, const void *payload, size_t n, uint8_t **ret, size_t *ret_size) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *own = NULL;
        Tpm2Context *tpm = c->tpm;
        uint8_t digest[32], rs[64], auth[CONTROLLER_BINDING_SIZE];
        const char *reason = NULL;
        int r;

        if (!c->tpm_identity)
                return controller_envelope_seal(
                                c->device_key, c->device_hash, NULL, payload, n, ret, ret_size);
        if (n > REQUEST_BODY_MAX)
                return -EMSGSIZE;
        if (!tpm) {
                r = tpm2_context_new(NULL, &own);
                if (r < 0)
                        return set_error(c, r, "Cannot open the TPM (%s): %s", eve_tcti(), strerror(-r));
                tpm = own;
        }
        sha256(payload, n, digest);
        /* The controller binding: the key signs only with the authValue derived from the root CA and server
         * files as they are now (read again for every signature, so restoring them restores service). */
        r = controller_binding_compute(auth, &reason);
        if (r < 0)
                return set_error(c, r, "Cannot sign in the device's name: %s.", reason);
        r = tpm2_context_set_device_auth(tpm, auth, sizeof auth);
        erase(auth, sizeof auth);
        if (r >= 0)
                r = tpm2_sign_digest(tpm, TPM2_KEY_DEVICE, digest, rs);
        if (r == -EACCES) {
                /* A key made before the binding (empty authValue) still signs: eve-register and
                 * eve-tpm-setup bind it. One bound to other files refuses the empty value too. */
                (void) tpm2_context_set_device_auth(tpm, NULL, 0);
                r = tpm2_sign_digest(tpm, TPM2_KEY_DEVICE, digest, rs);
                if (r == -EACCES)
                        r = -EKEYREVOKED;
                else if (r >= 0 && !c->warned_unbound) {
                        log_warning("The device key is not bound to the controller yet (empty TPM "
                                    "authorisation); eve-register binds it.");
                        c->warned_unbound = true;
                }
        }
        (void) tpm2_context_set_device_auth(tpm, NULL, 0);
        if (own)
                c->tpm_commands += tpm2_context_commands(own);
        if (r == -EKEYREVOKED)
                return set_error(c,
                                 r,
                                 "The device key refuses to sign: this node's controller root CA "
                                 "(root-certificate.pem) or address (server) is not what its identity was "
                                 "bound to, so nothing is sent in its name. Restore the original files, or "
                                 "re-onboard the node (clear the TPM and provision it again).");
        if (r < 0)
                return set_error(c, r, "The TPM did not sign the request: %s", tpm2_context_last_error(tpm));
        return controller_envelope_pack(c->device_hash, NULL, payload, n, rs, sizeof rs, ret, ret_size);
}

int controller_envelope_parse(
                const void *data, size_t size, size_t max, Org__Lfedge__Eve__Auth__AuthContainer **ret) {
        Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        int r;

        r = PROTO_UNPACK(&org__lfedge__eve__auth__auth_container__descriptor, data, size, max, &ac);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        if (!ac->protectedpayload || ac->cipherdata || ac->ciphercontext) {
                proto_free(ac);
                return -EBADMSG; /* encrypted envelopes (LOC) are not spoken here */
        }
        *ret = ac;
        return 0;
}

int controller_envelope_names(
                const Org__Lfedge__Eve__Auth__AuthContainer *ac, const void *pem, size_t pem_size) {
        uint8_t h[32];
        size_t n;

        switch (ac->algo) {
        case ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES:
                n = 32;
                break;
        case ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES:
                n = 16;
                break;
        default:
                return -EBADMSG;
        }
        if (ac->sendercerthash.len != n)
                return -EBADMSG;
        sha256(pem, pem_size, h);
        return memcmp(h, ac->sendercerthash.data, n) == 0;
}

int controller_envelope_verify(const Org__Lfedge__Eve__Auth__AuthContainer *ac, gnutls_pubkey_t key) {
        _cleanup_(gnutls_datum_freep) gnutls_datum_t der = {};
        uint8_t digest[32];
        gnutls_datum_t hash = { digest, sizeof digest }, sig;
        gnutls_sign_algorithm_t algo;
        int pk, r;

        if (!ac->protectedpayload)
                return -EBADMSG;
        sha256(ac->protectedpayload->payload.data, ac->protectedpayload->payload.len, digest);
        pk = gnutls_pubkey_get_pk_algorithm(key, NULL);
        if (pk == GNUTLS_PK_ECDSA) {
                gnutls_ecc_curve_t curve;
                if (gnutls_pubkey_export_ecc_raw(key, &curve, NULL, NULL) < 0 ||
                    curve != GNUTLS_ECC_CURVE_SECP256R1)
                        return -EBADMSG;
                algo = GNUTLS_SIGN_ECDSA_SHA256;
                if (ac->signaturehash.len == 64) {
                        r = crypto_ecdsa_rs_to_der(ac->signaturehash.data, &der);
                        if (r < 0)
                                return r;
                        sig = der;
                } else
                        sig = (gnutls_datum_t){ ac->signaturehash.data, (unsigned) ac->signaturehash.len };
        } else if (pk == GNUTLS_PK_RSA) {
                algo = GNUTLS_SIGN_RSA_SHA256;
                sig = (gnutls_datum_t){ ac->signaturehash.data, (unsigned) ac->signaturehash.len };
        } else
                return -EBADMSG;
        if (sig.size == 0 || ac->signaturehash.len > 1024)
                return -EBADMSG;
        r = gnutls_pubkey_verify_hash2(key, algo, 0, &hash, &sig);
        return r < 0 ? -EBADMSG : 0;
}

/* ---- requests ---- */

static size_t on_data(char *p, size_t sz, size_t n, void *userdata) {
        ControllerRequest *q = userdata;
        size_t add = sz * n;
        uint8_t *b;

        if (add > q->client->response_max || q->resp_size > q->client->response_max - add) {
                q->too_big = true;
                return 0; /* curl stops with CURLE_WRITE_ERROR */
        }
        b = realloc(q->resp, q->resp_size + add + 1);
        if (!b)
                return 0;
        memcpy(b + q->resp_size, p, add);
        q->resp = b;
        q->resp_size += add;
        return add;
}

/* The curl side of a request (handle, header list): given back once the answer is in or the request goes. */
static void request_transfer_end(ControllerClient *c, ControllerRequest *q) {
        if (q->easy) {
                (void) sym_curl_multi_remove_handle(c->multi, q->easy); /* not added: a no-op */
                sym_curl_easy_cleanup(q->easy);
                q->easy = NULL;
        }
        if (q->headers) {
                sym_curl_slist_free_all(q->headers);
                q->headers = NULL;
        }
}

static void request_unlink(ControllerRequest *q) {
        ControllerClient *c = q->client;

        if (!c || !q->linked)
                return;
        q->linked = false;
        if (q->prev)
                q->prev->next = q->next;
        else if (c->requests == q)
                c->requests = q->next;
        if (q->next)
                q->next->prev = q->prev;
        q->prev = q->next = NULL;
        c->n_requests--;
        request_transfer_end(c, q);
        q->client = NULL;
        curl_unload_later(c);
}

static void request_free(ControllerRequest *q) {
        if (!q)
                return;
        /* A /certs refetch owns the request waiting for it. */
        if (q->waiting)
                request_free(TAKE_PTR(q->waiting));
        request_unlink(q);
        free(q->url);
        free(q->body);
        free(q->resp);
        free(q);
}

void controller_request_cancel(ControllerRequest *r) {
        ControllerClient *c;

        if (!r)
                return;
        c = r->client;
        /* A request waiting for a /certs refetch is not in the list; the refetch holds it. */
        if (!c || !r->linked) {
                r->handler = NULL;
                return;
        }
        request_free(r);
}

static int
                request_new(ControllerClient *c,
                            const char *path,
                            ControllerHandler handler,
                            void *userdata,
                            ControllerRequest **ret) {
        ControllerRequest *q;

        if (!path || path[0] == '/' || strstr(path, ".."))
                return -EINVAL;
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->handler = handler;
        q->userdata = userdata;
        if (asprintf(&q->url, "%s%s", c->base_url, path) < 0) {
                free(q);
                return -ENOMEM;
        }
        *ret = q;
        return 0;
}

static int request_setup(ControllerClient *c, ControllerRequest *q) {
        char request_id[64];
        sd_id128_t id;
        CURL *e;
        CURLMcode mc;
        int r;

        q->resp = mfree(q->resp);
        q->resp_size = 0;
        q->too_big = false;
        q->status = 0;
        q->errbuf[0] = '\0';

        e = sym_curl_easy_init();
        if (!e)
                return -ENOMEM;
        q->easy = e;

        r = sd_id128_randomize(&id);
        if (r < 0)
                return r;
        (void) snprintf(request_id,
                        sizeof request_id,
                        "X-Request-Id: " SD_ID128_UUID_FORMAT_STR,
                        SD_ID128_FORMAT_VAL(id));
        q->headers = sym_curl_slist_append(q->headers, request_id);
        q->headers = sym_curl_slist_append(q->headers, "Expect:");
        if (q->body)
                q->headers = sym_curl_slist_append(q->headers, "Content-Type: " CONTROLLER_MIME);
        if (c->serial) {
                _cleanup_free_ char *h = NULL;
                if (asprintf(&h, "X-Serial-Number: %s", c->serial) < 0)
                        return -ENOMEM;
                q->headers = sym_curl_slist_append(q->headers, h);
        }
        if (c->soft_serial) {
                _cleanup_free_ char *h = NULL;
                if (asprintf(&h, "X-Soft-Serial: %s", c->soft_serial) < 0)
                        return -ENOMEM;
                q->headers = sym_curl_slist_append(q->headers, h);
        }
        if (!q->headers)
                return -ENOMEM;

        if (sym_curl_easy_setopt(e, CURLOPT_URL, q->url) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            /* Only our root: no CA path, no bundle compiled into libcurl, no proxy from the environment. */
            sym_curl_easy_setopt(e, CURLOPT_CAINFO, c->tls_root) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_CAPATH, NULL) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) (c->connect_timeout_usec / 1000U)) !=
                            CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) (c->timeout_usec / 1000U)) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) c->response_max) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_WRITEDATA, q) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_PRIVATE, q) != CURLE_OK ||
            sym_curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->headers) != CURLE_OK)
                return -EIO;
        if (q->body &&
            (sym_curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
             sym_curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body) != CURLE_OK ||
             sym_curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) q->body_size) != CURLE_OK))
                return -EIO;

        mc = sym_curl_multi_add_handle(c->multi, e);
        if (mc != CURLM_OK)
                return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;

        q->client = c;
        q->linked = true;
        q->next = c->requests;
        if (c->requests)
                c->requests->prev = q;
        c->requests = q;
        c->n_requests++;
        return 0;
}

static int request_start(ControllerClient *c, ControllerRequest *q) {
        int r;

        r = curl_load(c);
        if (r < 0)
                return r;
        r = request_setup(c, q);
        if (r < 0) {
                request_transfer_end(c, q);
                curl_unload_later(c);
        }
        return r;
}

static void request_finish(ControllerRequest *q, int error, const uint8_t *payload, size_t payload_size) {
        ControllerReply reply = { .status = q->status, .payload = payload, .payload_size = payload_size };
        ControllerHandler h = q->handler;
        ControllerClient *c = q->client;

        q->handler = NULL;
        if (h)
                h(c, error, &reply, q->userdata);
}

/* ---- /certs ---- */

static const char *cert_type_name(int type) {
        switch (type) {
        case ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING:
                return "signing";
        case ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_INTERMEDIATE:
                return "intermediate";
        case ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_ECDH_EXCHANGE:
                return "ecdh";
        default:
                return NULL;
        }
}

static int certs_dir_prepare(char **ret) {
        _cleanup_free_ char *dir = controller_certs_dir();

        int r;

        if (!dir)
                return -ENOMEM;
        r = eve_mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(dir);
        return 0;
}

/* Removes signing-/intermediate- files whose name is not among keep (n names). */
static void certs_prune(const char *dir, char **keep, size_t n) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                bool found = false;

                if (strncmp(de->d_name, "signing-", 8) != 0 && strncmp(de->d_name, "intermediate-", 13) != 0)
                        continue;
                for (size_t i = 0; i < n && !found; i++)
                        found = keep[i] && streq(keep[i], de->d_name);
                if (!found && unlinkat(dirfd(d), de->d_name, 0) < 0)
                        log_warning_errno(
                                        errno,
                                        "Cannot remove the old controller certificate %s/%s: %m",
                                        dir,
                                        de->d_name);
        }
}

/* Verifies a /certs answer (see the header) and stores it. */
static int certs_accept(ControllerClient *c, const Org__Lfedge__Eve__Auth__AuthContainer *ac) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Certs__ZControllerCert *zc = NULL;
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t signing_key = NULL;
        _cleanup_free_ char *dir = NULL;
        gnutls_x509_crt_t crts[CERTS_MAX] = {}, inter[CERTS_MAX];
        char *names[CERTS_MAX] = {};
        size_t n_inter = 0, n_ecdh = 0, signing_idx = SIZE_MAX;
        int r;

        r =
                        PROTO_UNPACK(&org__lfedge__eve__certs__zcontroller_cert__descriptor,
                                     ac->protectedpayload->payload.data,
                                     ac->protectedpayload->payload.len,
                                     c->response_max,
                                     &zc);
        if (r < 0)
                return set_error(c, EBADMSG, "/certs: the answer does not parse as ZControllerCert.");
        if (zc->n_certs == 0 || zc->n_certs > CERTS_MAX)
                return set_error(
                                c,
                                EBADMSG,
                                "/certs: %zu certificates (1–%u expected).",
                                zc->n_certs,
                                CERTS_MAX);

        for (size_t i = 0; i < zc->n_certs; i++) {
                const Org__Lfedge__Eve__Certs__ZCert *z = zc->certs[i];
                const char *type = cert_type_name(z->type);
                uint8_t h[32];
                size_t hn = z->hashalgo == ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_16BYTES
                                ? 16
                                : z->hashalgo ==
                                                ORG__LFEDGE__EVE__COMMON__HASH_ALGORITHM__HASH_ALGORITHM_SHA256_32BYTES
                                ? 32
                                : 0;

                if (!type) {
                        r = set_error(c,
                                      EBADMSG,
                                      "/certs: certificate %zu has type %d, not a controller type.",
                                      i,
                                      z->type);
                        goto finish;
                }
                sha256(z->cert.data, z->cert.len, h);
                if (hn == 0 || z->certhash.len != hn || memcmp(h, z->certhash.data, hn) != 0) {
                        r = set_error(c,
                                      EBADMSG,
                                      "/certs: the certHash of certificate %zu does not match it.",
                                      i);
                        goto finish;
                }
                r = pubkey_from_pem(z->cert.data, z->cert.len, &crts[i], NULL);
                if (r < 0) {
                        r = set_error(c, EBADMSG, "/certs: certificate %zu is not a PEM certificate.", i);
                        goto finish;
                }
                {
                        _cleanup_free_ char *hex = hex_encode(h, 16);
                        if (!hex || asprintf(&names[i], "%s-%s.pem", type, hex) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        }
                }
                if (z->type == ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_INTERMEDIATE)
                        inter[n_inter++] = crts[i];
                else if (z->type == ORG__LFEDGE__EVE__CERTS__ZCERT_TYPE__CERT_TYPE_CONTROLLER_SIGNING) {
                        if (signing_idx != SIZE_MAX) {
                                r = set_error(c, EBADMSG, "/certs: more than one signing certificate.");
                                goto finish;
                        }
                        signing_idx = i;
                } else
                        n_ecdh++;
        }
        if (signing_idx == SIZE_MAX || n_ecdh == 0) {
                r = set_error(c,
                              EBADMSG,
                              "/certs: %s.",
                              signing_idx == SIZE_MAX ? "no signing certificate" : "no ECDH certificate");
                goto finish;
        }
        for (size_t i = 0; i < zc->n_certs; i++) {
                r = chain_verify(c, crts[i], inter, n_inter);
                if (r < 0) {
                        r = set_error(c,
                                      EBADMSG,
                                      "/certs: the %s certificate %s does not verify against %s.",
                                      cert_type_name(zc->certs[i]->type),
                                      names[i],
                                      c->chain_root);
                        goto finish;
                }
        }
        /* The envelope itself must come from the signing certificate it carries. */
        r =
                        pubkey_from_pem(zc->certs[signing_idx]->cert.data,
                                        zc->certs[signing_idx]->cert.len,
                                        NULL,
                                        &signing_key);
        if (r < 0)
                goto finish;
        if (controller_envelope_names(
                            ac, zc->certs[signing_idx]->cert.data, zc->certs[signing_idx]->cert.len) <= 0 ||
            controller_envelope_verify(ac, signing_key) < 0) {
                r = set_error(c,
                              EBADMSG,
                              "/certs: the answer is not signed by the signing certificate it carries.");
                goto finish;
        }

        r = certs_dir_prepare(&dir);
        if (r < 0) {
                r = set_error(c, r, "Cannot create the controller certificate directory: %s", strerror(-r));
                goto finish;
        }
        for (size_t i = 0; i < zc->n_certs; i++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                r = crypto_write_file_atomic(path, zc->certs[i]->cert.data, zc->certs[i]->cert.len, 0644);
                if (r < 0) {
                        r = set_error(c, r, "Cannot write %s: %s", path, strerror(-r));
                        goto finish;
                }
        }
        certs_prune(dir, names, zc->n_certs);

        signing_clear(c);
        r = signing_add(c,
                        (const char *) zc->certs[signing_idx]->cert.data,
                        zc->certs[signing_idx]->cert.len);
        if (r >= 0)
                log_debug("Stored %zu controller certificates in %s.", zc->n_certs, dir);
finish:
        for (size_t i = 0; i < zc->n_certs && i < CERTS_MAX; i++) {
                if (crts[i])
                        gnutls_x509_crt_deinit(crts[i]);
                free(names[i]);
        }
        return r;
}

static int request_start_certs(
                ControllerClient *c,
                ControllerRequest *waiting,
                ControllerHandler handler,
                void *userdata,
                ControllerRequest **ret) {
        ControllerRequest *q;
        int r;

        r = request_new(c, "certs", handler, userdata, &q);
        if (r < 0)
                return r;
        q->is_certs = true;
        r = request_start(c, q);
        if (r < 0) {
                request_free(q);
                return r;
        }
        q->waiting = waiting;
        if (ret)
                *ret = q;
        return 0;
}

/* ---- completion ---- */

static void request_verify_and_finish(ControllerClient *c, ControllerRequest *q);

static void certs_done_for_waiting(ControllerRequest *certs, int error) {
        ControllerRequest *w = TAKE_PTR(certs->waiting);
        ControllerClient *c = certs->client;

        if (!w)
                return;
        if (w->refetched && c->miss_refetch_inflight > 0) {
                /* The bound counts from the answer: requests that missed while it was on its way had no
                 * chance to see it. */
                c->miss_refetch_inflight--;
                c->miss_refetch_usec = monotonic_usec();
        }
        w->client = c; /* lent back for the handler; w is no longer in the list */
        if (error < 0) {
                request_finish(w, error, NULL, 0);
                w->client = NULL;
                request_free(w);
                return;
        }
        request_verify_and_finish(c, w);
}

/* The answer has arrived with a 2xx/304 status: check it and call the handler. Frees q. */
static void request_verify_and_finish(ControllerClient *c, ControllerRequest *q) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Auth__AuthContainer *ac = NULL;
        int r;

        if (q->resp_size == 0) {
                request_finish(q, 0, NULL, 0);
                goto done;
        }
        r = controller_envelope_parse(q->resp, q->resp_size, c->response_max, &ac);
        if (r < 0) {
                request_finish(q,
                               set_error(c, r, "%s: the answer is not a signed AuthContainer.", q->url),
                               NULL,
                               0);
                goto done;
        }
        if (q->is_certs) {
                r = certs_accept(c, ac);
                request_finish(q,
                               r,
                               r < 0 ? NULL : ac->protectedpayload->payload.data,
                               r < 0 ? 0 : ac->protectedpayload->payload.len);
                certs_done_for_waiting(q, r);
                goto done;
        }
        for (size_t i = 0; i < c->n_signing; i++) {
                r = controller_envelope_names(ac, c->signing[i].pem, c->signing[i].pem_size);
                if (r < 0) {
                        request_finish(q,
                                       set_error(c,
                                                 r,
                                                 "%s: the answer names its signer with a hash of %zu bytes "
                                                 "(algo %d).",
                                                 q->url,
                                                 ac->sendercerthash.len,
                                                 ac->algo),
                                       NULL,
                                       0);
                        goto done;
                }
                if (r == 0)
                        continue;
                r = controller_envelope_verify(ac, c->signing[i].key);
                if (r < 0)
                        request_finish(q,
                                       set_error(c,
                                                 r,
                                                 "%s: the answer's signature does not verify.",
                                                 q->url),
                                       NULL,
                                       0);
                else
                        request_finish(q,
                                       0,
                                       ac->protectedpayload->payload.data,
                                       ac->protectedpayload->payload.len);
                goto done;
        }
        if (!q->refetched && c->miss_refetch_inflight == 0 && c->miss_refetch_usec != 0 &&
            monotonic_usec() - c->miss_refetch_usec < CONTROLLER_CERTS_REFETCH_MIN_USEC) {
                /* Bounded: an unknown signer made us fetch /certs a moment ago already; another one is not
                 * worth a round trip yet (EVE: CertMiss). */
                request_finish(q,
                               set_error(c,
                                         ENOKEY,
                                         "%s: the answer is signed by a certificate that /certs, fetched for "
                                         "an unknown signer less than %u s ago, does not list.",
                                         q->url,
                                         (unsigned) (CONTROLLER_CERTS_REFETCH_MIN_USEC / 1000000U)),
                               NULL,
                               0);
                goto done;
        }
        if (!q->refetched) {
                /* Sender hash miss: fetch /certs once, then look again. The certs request owns q until then.
                 */
                log_debug("%s: signer unknown, fetching /certs.", q->url);
                q->refetched = true;
                c->miss_refetch_usec = monotonic_usec();
                request_unlink(q);
                r = request_start_certs(c, q, NULL, NULL, NULL);
                if (r >= 0) {
                        c->miss_refetch_inflight++;
                        return;
                }
                q->client = c;
                request_finish(q, set_error(c, r, "Cannot fetch /certs: %s", strerror(-r)), NULL, 0);
                q->client = NULL;
                request_free(q);
                return;
        }
        request_finish(q,
                       set_error(c,
                                 ENOKEY,
                                 "%s: the answer is signed by a certificate /certs does not list.",
                                 q->url),
                       NULL,
                       0);
done:
        request_free(q);
}

static void request_done(ControllerClient *c, ControllerRequest *q, CURLcode code) {
        int r;

        if (code != CURLE_OK) {
                r = q->too_big ? -EFBIG : curl_code_to_errno(code);
                if (r == -EFBIG)
                        (void) set_error(
                                        c,
                                        EFBIG,
                                        "%s: the answer exceeds %zu bytes.",
                                        q->url,
                                        c->response_max);
                else
                        (void) set_error(
                                        c,
                                        r,
                                        "%s: %s",
                                        q->url,
                                        q->errbuf[0] ? q->errbuf : sym_curl_easy_strerror(code));
                request_finish(q, r, NULL, 0);
                if (q->is_certs)
                        certs_done_for_waiting(q, r);
                request_free(q);
                return;
        }
        (void) sym_curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &q->status);
        r = controller_http_status_to_errno(q->status);
        if (r < 0) {
                (void) set_error(c, r, "%s: HTTP %ld (%s).", q->url, q->status, status_meaning(q->status));
                request_finish(q, r, NULL, 0);
                if (q->is_certs)
                        certs_done_for_waiting(q, r);
                request_free(q);
                return;
        }
        if (q->resp_size > 0) {
                char *ct = NULL;
                size_t n = strlen(CONTROLLER_MIME);

                (void) sym_curl_easy_getinfo(q->easy, CURLINFO_CONTENT_TYPE, &ct);
                if (!ct || strncmp(ct, CONTROLLER_MIME, n) != 0 || (ct[n] != '\0' && ct[n] != ';')) {
                        r = set_error(c,
                                      EBADMSG,
                                      "%s: answer of type %s, not " CONTROLLER_MIME ".",
                                      q->url,
                                      ct ?: "(none)");
                        request_finish(q, r, NULL, 0);
                        if (q->is_certs)
                                certs_done_for_waiting(q, r);
                        request_free(q);
                        return;
                }
        }
        /* Done with the transfer: give the handle back before the handler may start others. */
        request_transfer_end(c, q);
        request_verify_and_finish(c, q);
}

static void process_done(ControllerClient *c) {
        CURLMsg *m;
        int left;

        while ((m = sym_curl_multi_info_read(c->multi, &left))) {
                ControllerRequest *q = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                (void) sym_curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &q);
                if (!q)
                        continue;
                request_done(c, q, m->data.result);
        }
}

/* ---- public request functions ---- */

int controller_client_post(
                ControllerClient *c,
                const char *path,
                const ProtobufCMessage *msg,
                ControllerRequestFlags flags,
                ControllerHandler handler,
                void *userdata,
                ControllerRequest **ret) {

        _cleanup_free_ uint8_t *payload = NULL;
        ControllerRequest *q;
        size_t n;
        int r;

        if (!msg)
                return -EINVAL;
        if (flags & CONTROLLER_REQUEST_ONBOARDING) {
                if (!c->onboard_key)
                        return set_error(c, ENOKEY, "No onboarding certificate loaded.");
        } else if (!c->have_identity)
                return set_error(c, ENOKEY, "No device identity loaded.");

        r = proto_pack(msg, &payload, &n);
        if (r < 0)
                return r;
        r = request_new(c, path, handler, userdata, &q);
        if (r < 0)
                return r;
        if (flags & CONTROLLER_REQUEST_ONBOARDING)
                r = controller_envelope_seal(
                                c->onboard_key,
                                c->onboard_hash,
                                c->onboard_pem,
                                payload,
                                n,
                                &q->body,
                                &q->body_size);
        else
                r = seal_device(c, payload, n, &q->body, &q->body_size);
        if (r < 0) {
                request_free(q);
                if (r == -EKEYREVOKED) /* the binding's sentence is already there */
                        return r;
                return set_error(c, r, "Cannot sign the request to %s: %s", path, strerror(-r));
        }
        r = request_start(c, q);
        if (r < 0) {
                request_free(q);
                return r;
        }
        if (ret)
                *ret = q;
        return 0;
}

int controller_client_fetch_certs(
                ControllerClient *c, ControllerHandler handler, void *userdata, ControllerRequest **ret) {
        return request_start_certs(c, NULL, handler, userdata, ret);
}

typedef struct SyncResult {
        bool done;
        int error;
        long status;
        uint8_t *payload;
        size_t payload_size;
} SyncResult;

static void sync_handler(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        SyncResult *s = userdata;

        s->done = true;
        s->error = error;
        s->status = reply->status;
        if (error >= 0 && reply->payload_size > 0) {
                s->payload = memdup_nul(reply->payload, reply->payload_size);
                if (!s->payload)
                        s->error = -ENOMEM;
                s->payload_size = reply->payload_size;
        }
}

static int sync_wait(ControllerClient *c, SyncResult *s) {
        int r;

        while (!s->done) {
                r = sd_event_run(c->event, UINT64_MAX);
                if (r < 0)
                        return r;
        }
        return 0;
}

int controller_client_post_sync(
                ControllerClient *c,
                const char *path,
                const ProtobufCMessage *msg,
                ControllerRequestFlags flags,
                long *ret_status,
                uint8_t **ret_payload,
                size_t *ret_payload_size) {

        SyncResult s = {};
        int r;

        if (sd_event_get_state(c->event) == SD_EVENT_RUNNING)
                return -EBUSY;
        r = controller_client_post(c, path, msg, flags, sync_handler, &s, NULL);
        if (r < 0)
                return r;
        r = sync_wait(c, &s);
        if (r < 0) {
                free(s.payload);
                return r;
        }
        if (ret_status)
                *ret_status = s.status;
        if (s.error < 0) {
                free(s.payload);
                return s.error;
        }
        if (ret_payload) {
                *ret_payload = s.payload;
                *ret_payload_size = s.payload_size;
        } else
                free(s.payload);
        return 0;
}

int controller_client_fetch_certs_sync(ControllerClient *c) {
        SyncResult s = {};
        int r;

        if (sd_event_get_state(c->event) == SD_EVENT_RUNNING)
                return -EBUSY;
        r = controller_client_fetch_certs(c, sync_handler, &s, NULL);
        if (r < 0)
                return r;
        r = sync_wait(c, &s);
        free(s.payload);
        return r < 0 ? r : s.error;
}

/* ---- UUID ---- */

int controller_read_uuid(char ret[static 37]) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_STATUS, UUID_FILE), *s = NULL;
        sd_id128_t id;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_trimmed(path, &s);
        if (r < 0)
                return r;
        if (strlen(s) != 36 || sd_id128_from_string(s, &id) < 0)
                return -EBADMSG;
        for (size_t i = 0; i < 36; i++)
                ret[i] = (char) (s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
        ret[36] = '\0';
        return 0;
}

int controller_device_path(const char *action, char **ret) {
        char uuid[37];
        int r;

        r = controller_read_uuid(uuid);
        if (r < 0)
                return r;
        return asprintf(ret, "id/%s/%s", uuid, action) < 0 ? -ENOMEM : 0;
}
