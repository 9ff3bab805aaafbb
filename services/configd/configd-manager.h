/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* configd-manager.h: eve-configd's one owning object: the current configuration and where it lives (memory,
 * the config vault), the fetch loop, the consumers' side (D-Bus, credential socket), the counters, the info
 * reports. configd-manager.c: config lifecycle, vault tracking, secret delivery, credential socket;
 * configd-fetch.c: the controller; configd-info.c: reports; configd-bus.c: org.eve.Config. */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "configd-acl.h"
#include "configd-cipher.h"
#include "configd-config.h"
#include "controller-client.h"

#define CONFIGD_BUS_NAME "org.eve.Config"
#define CONFIGD_OBJECT_PATH "/org/eve/Config"
#define CONFIGD_INTERFACE "org.eve.Config"
#define CONFIGD_ERROR_ACCESS_DENIED "org.eve.Config.Error.AccessDenied"
#define CONFIGD_ERROR_NO_SUCH_SECRET "org.eve.Config.Error.NoSuchSecret"
#define CONFIGD_ERROR_NO_CONFIG "org.eve.Config.Error.NoConfig"
#define CONFIGD_ERROR_NO_SUCH_FIELD "org.eve.Config.Error.NoSuchField"
#define CONFIGD_ERROR_FETCH_FAILED "org.eve.Config.Error.FetchFailed"

#define VAULT_BUS_NAME "org.eve.Vault"
#define VAULT_OBJECT_PREFIX "/org/eve/Vault/vault"
#define VAULT_INTERFACE "org.eve.Vault.Vault"
#define VAULT_MANAGER_PATH "/org/eve/Vault"
#define VAULT_MANAGER_INTERFACE "org.eve.Vault.Manager"
#define CONFIG_VAULT_NAME "config"
#define ATTEST_BUS_NAME "org.eve.Attest"
#define ATTEST_OBJECT_PATH "/org/eve/Attest"
#define ATTEST_INTERFACE "org.eve.Attest"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define FETCH_INTERVAL_DEFAULT (60 * USEC_PER_SEC)
#define FETCH_RETRY_DEFAULT (5 * USEC_PER_SEC)
#define INFO_INTERVAL_DEFAULT (600 * USEC_PER_SEC)
#define CERTS_REFETCH_MIN (10 * USEC_PER_SEC) /* at most one /certs refetch per 10 s; later causes wait */
#define TPM_IDLE_CLOSE (2 * USEC_PER_SEC)

typedef enum ConfigOrigin {
        CONFIG_ORIGIN_NONE,
        CONFIG_ORIGIN_STORED,     /* read back from the config vault at start */
        CONFIG_ORIGIN_CONTROLLER, /* fetched in this run */
        _CONFIG_ORIGIN_MAX,
} ConfigOrigin;

typedef enum FetchResult {
        FETCH_NEVER,
        FETCH_UPDATED,      /* 200: a new config */
        FETCH_NOT_MODIFIED, /* 304 */
        FETCH_FORBIDDEN,    /* 403: re-attestation asked for */
        FETCH_UNAVAILABLE,  /* 503 or no answer: backing off */
        FETCH_REFUSED,      /* another refusal (bad answer, unknown device, …) */
        FETCH_NOT_READY,    /* no controller address, identity or UUID yet */
        _FETCH_RESULT_MAX,
} FetchResult;

const char *config_origin_to_string(ConfigOrigin o);
/* µs of clock (CLOCK_REALTIME for the properties, CLOCK_MONOTONIC for intervals). */
uint64_t now_usec(clockid_t clock);
const char *fetch_result_to_string(FetchResult r);

typedef struct CipherMetrics {
        uint64_t success, failure;            /* decryptions */
        uint64_t last_success, last_failure;  /* µs CLOCK_REALTIME, 0 never */
        uint64_t by_error[_CIPHER_ERROR_MAX]; /* wire CipherError, incl. CLEARTEXT_FALLBACK */
        uint64_t by_failure[_CIPHER_FAILURE_MAX];
} CipherMetrics;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;

        /* Options. */
        char *tcti;
        char *acl_dir;
        char *vault_mount; /* where the config vault is mounted (default $EVE_VAULTS_DIR/config) */
        bool check_mount;  /* only store when vault_mount is a mount point (off only for tests) */
        sd_event_source *mount_watch; /* the mount table, while the vault is Unlocked but not yet mounted */
        uint64_t fetch_interval, fetch_retry, info_interval;
        unsigned info_settle; /* follow-up reports in a row for vaults caught on their way (configd-info.c)
                               */
        bool fetch_enabled, info_enabled;

        /* The configuration. */
        Config *config;
        ConfigOrigin origin;
        bool stored;         /* the current config is what the vault holds */
        char *storage_state; /* a sentence: where the config is, and why */
        char *store_path;
        char *vault_state; /* State of the "config" vault per org.eve.Vault; NULL unknown */
        sd_bus_slot *vault_props_slot, *vault_owner_slot;

        CipherKey *key;
        sd_event_source *tpm_idle;
        AclConfig *acl;
        CipherMetrics metrics;

        /* The controller. */
        ControllerClient *client;
        ControllerRequest *fetch_request, *certs_request, *info_request;
        struct InfoRound *info_rounds; /* info reports still gathering bus answers (configd-info.c) */
        Config *pending_config; /* a new config naming unstored certificates, applied when /certs is in */
        sd_bus_slot *token_slot;
        sd_event_source *fetch_timer, *info_timer, *certs_timer;
        unsigned fetch_failures; /* consecutive, for the backoff */
        FetchResult last_result;
        char *last_error;
        uint64_t last_attempt, last_success; /* µs CLOCK_REALTIME */
        uint64_t fetches, forbidden;
        uint64_t certs_refetch_at; /* CLOCK_MONOTONIC µs of the last /certs refetch */
        sd_bus_message **refresh_waiters;
        size_t n_refresh_waiters;
        uint64_t info_sent;

        /* The credential socket. */
        char *credsock_path;
        int credsock_fd;
        sd_event_source *credsock_source;
        uint64_t credentials_served, credentials_refused;
} Manager;

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Loads the ACL drop-ins, the ECDH key description, starts watching the config vault. */
int manager_startup(Manager *m);
int manager_reload_acl(Manager *m);

/* Makes c the current config (takes it): stores it when the vault is unlocked, emits PropertiesChanged. */
int manager_set_config(Manager *m, Config *c, ConfigOrigin origin);
/* Re-evaluates where the config is (after a vault state change or a new config). */
void manager_update_storage(Manager *m);
void manager_emit_changed(Manager *m, const char *property, ...);

/* The one way a secret leaves: finds it (-ENOMEDIUM no config, -ENOENT no such secret), checks the ACL
 * (-EACCES), decrypts or takes the cleartext (-EBADMSG with *ret_failure), counts. field: NULL/"" all
 * fields, else only that field (-ENODATA when the kind has no such field or it is empty). */
int manager_deliver(
                Manager *m,
                const char *name,
                const char *field,
                uid_t uid,
                const char *unit,
                const char *who,
                SecretValues *ret,
                CipherFailure *ret_failure);

int manager_credsock_start(Manager *m);

/* configd-fetch.c */
int manager_fetch_start(Manager *m);
void manager_fetch_schedule(Manager *m, uint64_t delay_usec);
/* Starts a fetch now (unless one runs); waiter (may be NULL) gets a reply when it ends. */
int manager_fetch_now(Manager *m, sd_bus_message *waiter);
void manager_certs_refetch(Manager *m, const char *why);

/* configd-info.c */
int manager_info_start(Manager *m);
int manager_info_send(Manager *m);
/* Frees the reports still gathering: after the bus is closed, when no answer can come any more. */
void manager_info_rounds_free(Manager *m);

/* configd-vaults.c: the config's vault section and application bindings to org.eve.Vault.Manager.ApplyConfig
 * (after every new config, and when eve-vaultd appears). */
int manager_vaults_apply(Manager *m);

/* configd-bus.c */
extern const struct BusObjectImpl *const configd_bus_objects[];
int manager_bus_register(Manager *m);
