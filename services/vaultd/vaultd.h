/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vaultd.h: eve-vaultd, the bus face of the vaults (org.eve.Vault). It holds the vaults' public state and
 * runs every LUKS/TPM operation in an eve-vault-worker process started from the event loop (systemd-homed's
 * homework pattern): the bus is never blocked on a worker, and key material released by the controller
 * stays here only until the worker that needs it has read it from its pipe. One worker runs at a time (a TPM
 * is a serial device, and a swtpm serves one connection at a time). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "luks2-util.h"
#include "vault-core.h"

#define VAULT_BUS_NAME "org.eve.Vault"
#define VAULT_MANAGER_PATH "/org/eve/Vault"
#define VAULT_PATH_PREFIX "/org/eve/Vault/vault"
#define VAULT_MANAGER_IFACE "org.eve.Vault.Manager"
#define VAULT_IFACE "org.eve.Vault.Vault"
#define VAULT_ERROR_PREFIX "org.eve.Vault.Error."
#define VAULT_ERR(name) VAULT_ERROR_PREFIX name
#define VAULT_ERROR_ACCESS_DENIED VAULT_ERR("AccessDenied")
#define VAULT_ERROR_NO_SUCH_VAULT VAULT_ERR("NoSuchVault")
#define VAULT_ERROR_WORKER_FAILED "WorkerFailed"

#define VAULT_DEFAULT_IMAGE "image"   /* the Application Data Store, mounted at /persist/vault */
#define VAULT_DEFAULT_CONFIG "config" /* sensitive node configuration, /persist/vaults/config */
#define VAULT_KEYS_MAX 64U            /* entries per SubmitKeys/ConfirmEscrow call */

/* AttestVolumeKey key types (proto/evetrust.proto). */
#define KEY_TYPE_VSK 1U
#define KEY_TYPE_VAULT_ESCROW 17750U
#define KEY_TYPE_SHARE_REQUEST 17751U
#define KEY_TYPE_SHARE 17752U

typedef struct Manager Manager;
typedef struct Vault Vault;
typedef struct Job Job;
typedef struct VaultConfig VaultConfig;

typedef enum VaultState {
        VAULT_CREATING,
        VAULT_LOCKED,
        VAULT_UNLOCKING,
        VAULT_UNLOCKED,
        VAULT_LOCKING,
        VAULT_DELETING,
        VAULT_ERROR, /* the image is unusable (LastError says why); nothing is tried until Unlock() */
        _VAULT_STATE_MAX,
        _VAULT_STATE_INVALID = -EINVAL,
} VaultState;

typedef enum JobType {
        JOB_CREATE,
        JOB_UNLOCK,
        JOB_LOCK,
        JOB_ROTATE,
        JOB_CONFIRM,
        JOB_ERASE,
        JOB_INSPECT,
        JOB_ADD_RECOVERY, /* a new recovery key, handed to the caller once */
        _JOB_TYPE_MAX,
        _JOB_TYPE_INVALID = -EINVAL,
} JobType;

typedef struct Blob {
        uint8_t *data;
        size_t size;
} Blob;

struct Vault {
        Manager *manager;
        Vault *next;
        char *name;
        char *object_path;
        char *image;
        char *map_name;
        char *mount_point;
        uint64_t size;

        /* from the image's eve-vault token, as the last worker read it */
        char uuid[LUKS2_UUID_STRING_SIZE];
        uint64_t generation;
        KeySource key_source;
        KeySource requested_key_source; /* _KEY_SOURCE_INVALID: no key change requested */
        uint32_t pcr_mask;
        uint32_t requested_pcr_mask;
        char pcr_source[64];
        EscrowState escrow;
        RotationStep rotation;
        unsigned keyslots;
        bool has_filesystem;
        bool has_recovery_key;

        /* what the daemon saw */
        VaultState state;
        UnlockMethod unlock_method; /* how the key was last obtained and verified */
        uint32_t moved_pcrs;
        char *last_error;
        char *last_error_name; /* org.eve.Vault.Error.* of the last failure, "" none */
        const char *last_operation;
        char *last_operation_result;
        uint64_t last_operation_usec;
        char *progress_phase;
        uint64_t progress_done, progress_total;
        unsigned n_jobs; /* queued or running */
        bool removed;

        /* escrow for the controller: a blob made here this boot (escrow_generation), and the copy the
         * controller released (re-uploaded while no fresher blob exists: STORE_KEYS replaces all entries) */
        Blob escrow_blob;
        uint64_t escrow_generation;
        uint32_t received_type;
        Blob received;
};

struct Job {
        Manager *manager;
        Vault *vault; /* NULL: a batch (members) */
        Job *next;
        /* A batch: the unlock jobs of several vaults run by one worker (the vaults unlocked at start, docs/
         * VAULTS.md "Unlock at start"), in the worker's order; each is finished as its result line arrives. */
        Job *members;
        size_t batch_started;  /* vaults the worker has begun ("batch I N" on the progress fd) */
        size_t batch_reported; /* … and whose result it printed */
        JobType type;
        sd_bus_message *request; /* answered when the job is done; NULL for the daemon's own jobs */
        bool chain_unlock;       /* create: unlock (map, mkfs, mount) right after; unlock: of a new vault */
        bool was_unlocked;       /* unlock: the vault was Unlocked when the job started (keys checked again) */
        bool requested;          /* rotate: recorded as requested (the worker said so) */

        /* arguments */
        uint64_t size;
        KeySource key_source;
        uint32_t pcr_mask;
        uint64_t generation;
        char *uuid;       /* create: the vault's UUID (the controller's); NULL: a random one */
        char *pcr_source; /* create, rotate: "default" or "policy:<id>"; NULL: the worker's default */
        char *keys_json;  /* escrow/share for the worker's --keys-fd; erased when the worker has it */
        char *recovery_key; /* add-recovery: the new key (secret memory) until the reply carries it */

        /* lock: waiting for systemd to stop the vault's mount unit first */
        sd_bus_slot *unit_call, *unit_match;
        sd_event_source *unit_timer;
        char *unit_job;

        /* the running worker */
        pid_t pid;
        sd_event_source *child_source, *out_source, *progress_source;
        int out_fd, progress_fd;
        char *out;
        size_t out_size;
        char progress_line[256];
        size_t progress_len;
};

struct Manager {
        sd_event *event;
        sd_bus *bus;
        Vault *vaults; /* sorted by name */
        Job *queue, *running;
        const char *worker_path;
        uint64_t image_size, config_size;
        bool escrow_pending; /* last value of the EscrowPending property */

        /* The vaults the controller asks for (ApplyConfig, vaultd-converge.c), journalled in
         * <EVE_VAULT_IMG_DIR>/controller-vaults.json. */
        VaultConfig *configs; /* accepted entries (and the last accepted one of a UUID now refused) */
        size_t n_configs;
        VaultConfig *statuses; /* every entry of the last ApplyConfig, with its refusal (ConfiguredVaults) */
        size_t n_statuses;
        char **deleting; /* UUIDs of vaults the controller removed, until they are gone */
        size_t n_deleting;
        char **apps; /* pairs: application unit instance, vault UUID */
        size_t n_apps;
        bool converging;
};

/* One vault as the controller configures it (proto/config.proto EveTrustVaultConfig). */
struct VaultConfig {
        char uuid[LUKS2_UUID_STRING_SIZE];
        char *version;
        char *name;
        uint64_t size; /* 0: the default size */
        KeySource key_source;
        uint32_t pcr_mask; /* 0: the default set */
        uint32_t policy_id;
        bool locked; /* desired state */
        uint64_t key_generation;
        /* journalled progress */
        uint64_t done_generation; /* the key_generation the vault's current key answers */
        uint64_t rotating_to;     /* a key change for this key_generation was started … */
        uint64_t rotate_base;     /* … when the vault's own KeyGeneration was this */
        bool creating;            /* its creation was started and has not been seen finished */
        /* in memory */
        char *refusal;     /* why the entry was refused ("" or NULL: accepted) */
        bool unlock_tried; /* converging does not retry an unlock that did not open it */
        bool blocked;      /* a converging job failed: nothing more until the entry changes */
        bool recreated;    /* an unfinished image of an interrupted creation was replaced in this run */
};

const char *vault_state_to_string(VaultState s);
const char *job_type_to_string(JobType t);

/* vaultd-manager.c */
int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);
int manager_start(Manager *m); /* loads the vaults, creates the default ones, queues their unlock */
bool vault_name_is_valid_for_bus(const char *name);
Vault *manager_find_vault(Manager *m, const char *name);
Vault *manager_find_vault_by_uuid(Manager *m, const char *uuid);
int manager_add_vault(Manager *m, const char *name, uint64_t size, Vault **ret);
void manager_remove_vault(Manager *m, Vault *v);
size_t manager_count_vaults(Manager *m);
Job *job_new(Vault *v, JobType type, sd_bus_message *request);
void job_enqueue(Job *j);
int manager_submit_keys(Manager *m, sd_bus_message *msg, unsigned *ret_served, sd_bus_error *error);
int manager_escrow_keys(Manager *m, sd_bus_message *reply);
int manager_confirm_escrow(Manager *m, sd_bus_message *msg, sd_bus_error *error);
bool manager_escrow_pending(Manager *m);
void manager_update_status(Manager *m);

/* vaultd-units.c */
void vault_start_mount_unit(Vault *v);
/* Stops the vault's mount unit (waiting for systemd's job), then queues j. */
void job_enqueue_after_unmount(Job *j);

/* The worker's result and the convergence journal (json-c): a string member or NULL; an integer member or
 * def. */
struct json_object;
const char *jstr(struct json_object *o, const char *k);
int64_t jint(struct json_object *o, const char *k, int64_t def);

/* vaultd-converge.c */
/* Reads the journal (at start, before the first unlocks). */
int manager_load_configs(Manager *m);
void manager_configs_free(Manager *m);
/* Whether converging wants the vault locked (manager_start does not unlock it then). */
bool manager_wants_locked(Manager *m, Vault *v);
/* Takes ApplyConfig's arguments, journals them, writes the application drop-ins, converges. */
int manager_apply_config(Manager *m, sd_bus_message *msg, sd_bus_error *error);
int manager_append_config_status(Manager *m, sd_bus_message *reply);
/* One step towards the configured vaults when nothing runs; called after every job. */
void manager_converge(Manager *m);
/* A job the convergence started ended: remembers a failure so that it is not retried in a loop. */
void manager_converge_job_done(Manager *m, Vault *v, JobType type, bool ok);

/* vaultd-units.c */
/* The directory of runtime units: $EVE_SYSTEMD_UNIT_DIR, else $EVE_ROOT/run/systemd/system when $EVE_ROOT
 * is set, else /run/systemd/system. */
const char *vault_unit_dir(void);
/* Each controller-configured vault's mount unit (and its mapping's device drop-in), each application's
 * drop-in (RequiresMountsFor= its vault), the vaults' Wants= of their applications; stale ones removed;
 * systemd reloaded. */
int manager_write_app_units(Manager *m);

/* vaultd-bus.c */
extern const sd_bus_vtable manager_vtable[];
extern const sd_bus_vtable vault_vtable[];
int bus_register(Manager *m);
int bus_print_introspection(void);
void vault_emit_changed(Vault *v);
void bus_vault_added(Vault *v);
void bus_vault_removed(Vault *v);
void vault_emit_progress(Vault *v);
void manager_emit_changed(Manager *m, const char *property);
/* Answers a finished job's request: the method's return, or the job's error. */
int job_reply(Job *j, const char *error_name, const char *message);
