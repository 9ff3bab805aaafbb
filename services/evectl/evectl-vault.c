/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evectl vault list|show|create|delete|lock|unlock|rotate|recovery-key: org.eve.Vault (eve-vaultd) for
 * people (tables) and scripts (--json). create shows a progress line while the vault is allocated and
 * formatted. A recovery key is printed once (create --recovery-key, recovery-key) and read from stdin or a
 * prompt without echo (unlock --recovery-key), never from argv (ps would show it). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "bus-util.h"
#include "encoding.h"
#include "evectl-util.h"
#include "evectl.h"
#include "log.h"
#include "memory-util.h"
#include "tpm2-util.h"

#define VAULT_DEST "org.eve.Vault"
#define VAULT_DAEMON "eve-vaultd"
#define VAULT_MANAGER_PATH "/org/eve/Vault"
#define VAULT_MANAGER_IFACE "org.eve.Vault.Manager"
#define VAULT_IFACE "org.eve.Vault.Vault"

static const char *arg_size = NULL;
static const char *arg_key_source = NULL;
static const char *arg_pcrs = NULL;
static bool arg_recovery_key = false;

static int vault_error(int r, const sd_bus_error *e, const char *what) {
        return evectl_bus_error(r, e, VAULT_DAEMON, VAULT_DEST, what);
}

static int vault_path(const char *name, char **ret) {
        int r = sd_bus_path_encode(VAULT_MANAGER_PATH "/vault", name, ret);
        return r < 0 ? log_oom() : 0;
}

static int get_vault(sd_bus *bus, const char *path, const char *what, json_object **ret) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = evectl_get_all(bus, VAULT_DEST, path, VAULT_IFACE, &e, ret);
        if (r < 0 && sd_bus_error_has_name(&e, SD_BUS_ERROR_UNKNOWN_OBJECT))
                return log_error_errno(SYNTHETIC_ERRNO(ENOENT), "No such vault.");
        if (r < 0)
                return vault_error(r, &e, what);
        return 0;
}

/* The vault's object path by name (GetVault: also tells whether it exists). */
static int find_vault(sd_bus *bus, const char *name, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(
                        bus,
                        VAULT_DEST,
                        VAULT_MANAGER_PATH,
                        VAULT_MANAGER_IFACE,
                        "GetVault",
                        &e,
                        &reply,
                        "s",
                        name);
        if (r < 0 && sd_bus_error_has_name(&e, "org.eve.Vault.Error.NoSuchVault"))
                return log_error_errno(r, "No vault named '%s' (see evectl vault list).", name);
        if (r < 0)
                return vault_error(r, &e, "read the vaults");
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_error_errno(r, "Bad reply from %s: %m", VAULT_DAEMON);
        *ret = strdup(path);
        return *ret ? 0 : log_oom();
}

static char *pcr_list(json_object *o, const char *key) {
        json_object *a;
        uint32_t mask = 0;

        if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array))
                return strdup("");
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                int p = json_object_get_int(json_object_array_get_idx(a, i));
                if (p >= 0 && p < (int) TPM2_PCRS_MAX)
                        mask |= UINT32_C(1) << p;
        }
        return tpm2_pcr_mask_to_string(mask);
}

static const char *key_source_text(json_object *v, char buf[static 96]) {
        const char *s = evectl_json_str(v, "KeySource") ?: "?",
                   *want = evectl_json_str(v, "RequestedKeySource");

        if (!isempty(want))
                (void) snprintf(buf, 96, "%s (changing to %s)", s, want);
        else
                (void) snprintf(buf, 96, "%s", s);
        return buf;
}

static bool has_recovery_key(json_object *v) {
        json_object *b;
        return json_object_object_get_ex(v, "HasRecoveryKey", &b) && json_object_get_boolean(b);
}

static int show_vault(json_object *v) {
        _cleanup_free_ char *pcrs = pcr_list(v, "SealingPCRs"), *moved = pcr_list(v, "MovedPCRs");
        char gen[24], keyslots[16], size[16], when[32], source[96], last[160];
        const char *ks = evectl_json_str(v, "KeySource");
        const char *note = streq_ptr(ks, "controller")
                        ? "no TPM binding: whoever holds the controller's share and the disk can open it"
                        : NULL;

        (void) snprintf(gen, sizeof(gen), "%" PRIu64, evectl_json_u64(v, "KeyGeneration"));
        (void) snprintf(keyslots, sizeof(keyslots), "%" PRIu64, evectl_json_u64(v, "Keyslots"));
        evectl_format_bytes(evectl_json_u64(v, "Size"), size);
        evectl_format_time(evectl_json_u64(v, "LastOperationTime"), when);
        (void) snprintf(last,
                        sizeof(last),
                        "%s: %s (%s)",
                        evectl_json_str(v, "LastOperation") ?: "",
                        evectl_json_str(v, "LastOperationResult") ?: "",
                        when);
        {
                const char *const fields[] = {
                        "Name",           evectl_json_str(v, "Name"),
                        "UUID",           evectl_json_str(v, "UUID"),
                        "State",          evectl_json_str(v, "State"),
                        "Unlock method",  evectl_json_str(v, "UnlockMethod"),
                        "Mount point",    evectl_json_str(v, "MountPoint"),
                        "Device",         evectl_json_str(v, "Device"),
                        "Image",          evectl_json_str(v, "Image"),
                        "Size",           size,
                        "Key source",     key_source_text(v, source),
                        "Note",           note,
                        "Key generation", gen,
                        "Keyslots",       keyslots,
                        "Sealing PCRs",   pcrs,
                        "PCR policy",     evectl_json_str(v, "PCRPolicy"),
                        "Moved PCRs",     moved,
                        "Escrow",         evectl_json_str(v, "EscrowState"),
                        "Key change",     evectl_json_str(v, "Rotation"),
                        "Recovery key",   has_recovery_key(v) ? "yes" : "no",
                        "Last error",     evectl_json_str(v, "LastError"),
                        "Last operation", isempty(evectl_json_str(v, "LastOperation")) ? NULL : last,
                };
                evectl_print_fields(stdout, fields, ELEMENTSOF(fields));
        }
        return 0;
}

/* ---- list, show ---- */

static int vault_list(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(table_freep) Table *t = NULL;
        json_object *all = json_object_new_array();
        const char *name, *uuid, *state, *path;
        int r;

        if (!all)
                return log_oom();
        r = sd_bus_call_method(
                        bus,
                        VAULT_DEST,
                        VAULT_MANAGER_PATH,
                        VAULT_MANAGER_IFACE,
                        "ListVaults",
                        &e,
                        &reply,
                        NULL);
        if (r < 0) {
                json_object_put(all);
                return vault_error(r, &e, "list the vaults");
        }
        t = table_new(8,
                      "name",
                      "state",
                      "unlock",
                      "key source",
                      "gen",
                      "escrow",
                      "mount point",
                      "last error");
        if (!t) {
                json_object_put(all);
                return log_oom();
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssso)", &name, &uuid, &state, &path)) > 0) {
                json_object *v = NULL;
                char gen[24], source[96];

                r = get_vault(bus, path, "read the vault", &v);
                if (r < 0)
                        break;
                (void) snprintf(gen, sizeof(gen), "%" PRIu64, evectl_json_u64(v, "KeyGeneration"));
                r =
                                table_add_row(t,
                                              name,
                                              evectl_json_str(v, "State"),
                                              evectl_json_str(v, "UnlockMethod"),
                                              key_source_text(v, source),
                                              gen,
                                              evectl_json_str(v, "EscrowState"),
                                              evectl_json_str(v, "MountPoint"),
                                              evectl_json_str(v, "LastError"));
                json_object_array_add(all, v);
        }
        if (r < 0) {
                json_object_put(all);
                return r;
        }
        r = arg_evectl.json ? evectl_json_print(all) : table_print(t, stdout);
        json_object_put(all);
        return r;
}

static int vault_show(sd_bus *bus, const char *name) {
        _cleanup_free_ char *path = NULL;
        json_object *v = NULL;
        int r;

        r = find_vault(bus, name, &path);
        if (r < 0)
                return r;
        r = get_vault(bus, path, "read the vault", &v);
        if (r < 0)
                return r;
        r = arg_evectl.json ? evectl_json_print(v) : show_vault(v);
        json_object_put(v);
        return r;
}

/* ---- create, with a progress line ---- */

typedef struct Waiting {
        const char *name;
        bool done;
        int r;
        sd_bus_error error;
        char *path;
        char last_phase[32];
        unsigned last_percent;
        bool printed;
} Waiting;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Waiting *w = userdata;
        const char *path;

        w->done = true;
        if (sd_bus_message_is_method_error(m, NULL)) {
                (void) sd_bus_error_copy(&w->error, sd_bus_message_get_error(m));
                w->r = -sd_bus_message_get_errno(m) ?: -EIO;
                return 0;
        }
        if (sd_bus_message_read(m, "o", &path) >= 0)
                w->path = strdup(path);
        return 0;
}

static const char *phase_text(const char *phase) {
        return streq(phase, "allocate")          ? "reserving space"
                        : streq(phase, "format") ? "writing the LUKS2 header"
                        : streq(phase, "mkfs")   ? "making the ext4 file system"
                                                 : phase;
}

/* PropertiesChanged of the new vault: show its Progress (phase, done, total) as one line. */
static int on_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Waiting *w = userdata;
        const char *iface, *prop, *phase;
        uint64_t done, total;
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || !streq(iface, VAULT_IFACE))
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &prop);
                if (r >= 0 && streq(prop, "Progress")) {
                        r = sd_bus_message_read(m, "v", "(stt)", &phase, &done, &total);
                        if (r >= 0 && !isempty(phase) && total > 0) {
                                unsigned pct = (unsigned) (done * 100 / total);
                                bool tty = isatty(STDERR_FILENO);

                                /* On a terminal one line rewritten in place; in a log a line per phase and
                                 * per 10%. */
                                if (tty || !streq(phase, w->last_phase) ||
                                    pct / 10 != w->last_percent / 10) {
                                        char d[16], t[16];

                                        evectl_format_bytes(done, d);
                                        evectl_format_bytes(total, t);
                                        if (streq(phase, "allocate"))
                                                fprintf(stderr,
                                                        "%sVault %s: %s, %s of %s (%u%%)%s",
                                                        tty ? "\r" : "",
                                                        w->name,
                                                        phase_text(phase),
                                                        d,
                                                        t,
                                                        pct,
                                                        tty ? "\033[K" : "\n");
                                        else
                                                fprintf(stderr,
                                                        "%sVault %s: %s%s%s",
                                                        tty ? "\r" : "",
                                                        w->name,
                                                        phase_text(phase),
                                                        done >= total ? ", done" : "…",
                                                        tty ? "\033[K" : "\n");
                                        w->printed = tty;
                                }
                                (void) snprintf(w->last_phase, sizeof(w->last_phase), "%s", phase);
                                w->last_percent = pct;
                        }
                } else if (r >= 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        return 0;
}

static int parse_pcrs(const char *s, uint32_t **ret, size_t *ret_n) {
        uint32_t mask, *a;
        size_t n = 0;
        int r;

        *ret = NULL;
        *ret_n = 0;
        if (!s)
                return 0;
        r = tpm2_pcr_mask_from_string(s, &mask);
        if (r < 0 || mask == 0)
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL), "Invalid PCR list '%s' (e.g. 0,1,2,3,4,6,7).", s);
        a = calloc(TPM2_PCRS_MAX, sizeof(uint32_t));
        if (!a)
                return log_oom();
        for (unsigned i = 0; i < TPM2_PCRS_MAX; i++)
                if (mask & (UINT32_C(1) << i))
                        a[n++] = i;
        *ret = a;
        *ret_n = n;
        return 0;
}

static int print_result(sd_bus *bus, const char *path, const char *message) {
        json_object *v = NULL;
        int r;

        r = get_vault(bus, path, "read the vault", &v);
        if (r < 0)
                return r;
        if (arg_evectl.json)
                r = evectl_json_print(v);
        else {
                const char *state = evectl_json_str(v, "State"), *err = evectl_json_str(v, "LastError");

                printf("%s State: %s.\n", message, state ?: "?");
                if (!isempty(err))
                        printf("Reason: %s\n", err);
                r = 0;
        }
        json_object_put(v);
        return r;
}

static int vault_create(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *call = NULL, *match = NULL;
        _cleanup_free_ uint32_t *pcrs = NULL;
        _cleanup_free_ char *path = NULL, *msg = NULL;
        Waiting w = { .name = name, .error = SD_BUS_ERROR_NULL };
        uint64_t size = UINT64_C(64) << 20;
        size_t n_pcrs;
        int r;

        if (arg_size && parse_size(arg_size, &size) < 0)
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL), "Invalid size '%s' (e.g. 512M, 2G).", arg_size);
        r = parse_pcrs(arg_pcrs, &pcrs, &n_pcrs);
        if (r < 0)
                return r;
        r = vault_path(name, &path);
        if (r < 0)
                return r;
        /* Watch the new vault's object before asking for it, so no progress is missed. */
        r = sd_bus_match_signal(
                        bus,
                        &match,
                        VAULT_DEST,
                        path,
                        "org.freedesktop.DBus.Properties",
                        "PropertiesChanged",
                        on_properties,
                        &w);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the vault's progress: %m");
        r = sd_bus_message_new_method_call(
                        bus, &m, VAULT_DEST, VAULT_MANAGER_PATH, VAULT_MANAGER_IFACE, "CreateVault");
        if (r >= 0)
                r = sd_bus_message_append(m, "sts", name, size, arg_key_source ?: "tpm");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'u', pcrs, n_pcrs * sizeof(uint32_t));
        if (r >= 0)
                r = sd_bus_call_async(bus, &call, m, on_reply, &w, EVECTL_LONG_CALL_TIMEOUT_USEC);
        if (r < 0)
                return log_error_errno(r, "Cannot ask %s to create the vault: %m", VAULT_DAEMON);
        while (!w.done) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return log_error_errno(r, "Lost the bus connection: %m");
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        return log_error_errno(r, "Lost the bus connection: %m");
        }
        if (w.printed)
                fputc('\n', stderr);
        if (w.r < 0) {
                r = vault_error(w.r, &w.error, "create vaults");
                sd_bus_error_free(&w.error);
                free(w.path);
                return r;
        }
        if (asprintf(&msg, "Created vault %s.", name) < 0)
                msg = NULL;
        r = print_result(bus, w.path ?: path, msg ?: "Created.");
        free(w.path);
        return r;
}

/* ---- delete, lock, unlock, rotate ---- */

/* A vault method without a result; secret (may be NULL): its one string argument, sent in a message erased
 * when freed. */
static int
                vault_call(sd_bus *bus,
                           const char *name,
                           const char *method,
                           const char *secret,
                           const char *what,
                           const char *done) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = find_vault(bus, name, &path);
        if (r < 0)
                return r;
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                r = sd_bus_message_new_method_call(bus, &m, VAULT_DEST, path, VAULT_IFACE, method);
                if (r >= 0 && secret) {
                        r = sd_bus_message_sensitive(m);
                        if (r >= 0)
                                r = sd_bus_message_append(m, "s", secret);
                }
                if (r >= 0)
                        r = sd_bus_call(bus, m, EVECTL_LONG_CALL_TIMEOUT_USEC, &e, &reply);
        }
        if (r < 0 && sd_bus_error_has_name(&e, "org.eve.Vault.Error.DeviceMapperUnavailable"))
                /* The key is fine; this machine cannot map it. Say exactly that. */
                return log_error_errno(r, "Vault %s: %s", name, e.message ?: "device-mapper unavailable");
        if (r < 0)
                return vault_error(r, &e, what);
        return print_result(bus, path, done);
}

/* ---- the recovery key ---- */

/* AddRecoveryKey: a new recovery key (replacing one the vault had), printed this once. */
static int vault_add_recovery_key(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        const char *key;
        int r;

        r = find_vault(bus, name, &path);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, VAULT_DEST, path, VAULT_IFACE, "AddRecoveryKey");
        if (r >= 0)
                r = sd_bus_call(bus, m, EVECTL_LONG_CALL_TIMEOUT_USEC, &e, &reply);
        if (r < 0)
                return vault_error(r, &e, "make recovery keys");
        (void) sd_bus_message_sensitive(reply); /* erased when freed */
        r = sd_bus_message_read(reply, "s", &key);
        if (r < 0)
                return log_error_errno(r, "Bad reply from %s: %m", VAULT_DAEMON);
        if (arg_evectl.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(name));
                json_object_object_add(o, "recovery_key", json_object_new_string(key));
                r = evectl_json_print(o);
                json_object_put(o);
        } else {
                printf("Recovery key of vault %s (shown only this once; keep it offline):\n\n    %s\n\n"
                       "It opens the vault when the TPM refuses: evectl vault unlock %s --recovery-key\n"
                       "(it is then re-sealed to the TPM), or without eve-vaultd, as the passphrase of\n"
                       "cryptsetup open (docs/VAULTS.md, \"Recovery key\").\n",
                       name,
                       key,
                       name);
                r = 0;
        }
        (void) fflush(stdout);
        return r;
}

/* The recovery key from stdin, or typed at a prompt without echo: never from argv. Secret memory. */
static int read_recovery_key(const char *name, char **ret) {
        _cleanup_secret_ char *buf = eve_secret_alloc(256);
        struct termios old, quiet;
        bool tty = isatty(STDIN_FILENO);
        size_t n = 0;
        int c;

        if (!buf)
                return log_oom();
        if (tty) {
                fprintf(stderr, "Recovery key of vault %s: ", name);
                if (tcgetattr(STDIN_FILENO, &old) < 0)
                        return log_error_errno(errno, "Cannot read the terminal: %m");
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t) ECHO;
                (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        while ((c = getchar()) != EOF && c != '\n')
                if (n < 255)
                        buf[n++] = (char) c;
        buf[n] = '\0';
        if (tty) {
                (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
                fputc('\n', stderr);
        }
        if (n == 0)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "No recovery key given.");
        *ret = TAKE_PTR(buf);
        return 0;
}

static int vault_unlock_with_recovery_key(sd_bus *bus, const char *name) {
        _cleanup_secret_ char *key = NULL;
        int r;

        r = read_recovery_key(name, &key);
        if (r < 0)
                return r;
        return vault_call(
                        bus,
                        name,
                        "UnlockWithRecoveryKey",
                        key,
                        "unlock vaults",
                        "Unlocked with the recovery key; re-sealed to the TPM.");
}

static int vault_rotate(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ uint32_t *pcrs = NULL;
        _cleanup_free_ char *path = NULL;
        size_t n_pcrs;
        int r, completed = 0;

        r = parse_pcrs(arg_pcrs, &pcrs, &n_pcrs);
        if (r < 0)
                return r;
        r = find_vault(bus, name, &path);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, VAULT_DEST, path, VAULT_IFACE, "ChangeKey");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", arg_key_source ?: "");
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'u', pcrs, n_pcrs * sizeof(uint32_t));
        if (r >= 0)
                r = sd_bus_call(bus, m, EVECTL_LONG_CALL_TIMEOUT_USEC, &e, &reply);
        if (r < 0)
                return vault_error(r, &e, "change vault keys");
        r = sd_bus_message_read(reply, "b", &completed);
        if (r < 0)
                return log_error_errno(r, "Bad reply from %s: %m", VAULT_DAEMON);
        return print_result(
                        bus,
                        path,
                        completed ? "Key changed; the old key stays until the controller confirms it stores "
                                    "the "
                                    "new escrow."
                                  : "Key change requested; it runs when the key material it needs (the "
                                    "controller's share) arrives.");
}

static int vault_delete(sd_bus *bus, const char *name) {
        _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(
                        bus,
                        VAULT_DEST,
                        VAULT_MANAGER_PATH,
                        VAULT_MANAGER_IFACE,
                        "DeleteVault",
                        &e,
                        NULL,
                        "s",
                        name);
        if (r < 0)
                return vault_error(r, &e, "delete vaults");
        if (arg_evectl.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "deleted", json_object_new_string(name));
                r = evectl_json_print(o);
                json_object_put(o);
                return r;
        }
        printf("Vault %s deleted: its keyslots are destroyed, its data is gone.\n", name);
        return 0;
}

static void help(void) {
        printf("evectl [--json] vault list                       the vaults, one line each\n"
               "evectl [--json] vault show NAME                  everything about one vault\n"
               "evectl [--json] vault create NAME [--size SIZE] [--key-source "
               "tpm|tpm+controller|controller]\n"
               "                                 [--pcrs LIST] [--recovery-key]\n"
               "                                                 a new vault (size e.g. 512M; PCRs e.g. "
               "0,1,2,3,4,6,7;\n"
               "                                                 --recovery-key: one, printed once)\n"
               "evectl [--json] vault delete NAME                destroys its keys: the data is gone\n"
               "evectl [--json] vault lock NAME                  unmounts and closes it\n"
               "evectl [--json] vault unlock NAME [--recovery-key] opens and mounts it (with the recovery "
               "key:\n"
               "                                                 read from stdin or a prompt, never argv)\n"
               "evectl [--json] vault recovery-key NAME          a new recovery key (replaces one), shown "
               "once\n"
               "evectl [--json] vault rotate NAME [--key-source SRC] [--pcrs LIST]\n"
               "                                                 a new key (and key source or PCRs)\n"
               "Changes need root or membership in group %s. The controller key source is weaker: no TPM "
               "binding.\n",
               "eve-admin");
}

int verb_vault(int argc, char **argv) {
        enum { ARG_SIZE = 0x100, ARG_KEY_SOURCE, ARG_PCRS, ARG_RECOVERY_KEY };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                { "size", required_argument, NULL, ARG_SIZE },
                { "key-source", required_argument, NULL, ARG_KEY_SOURCE },
                { "pcrs", required_argument, NULL, ARG_PCRS },
                { "recovery-key", no_argument, NULL, ARG_RECOVERY_KEY },
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *cmd, *name = NULL;
        int c, r;

        /* Options anywhere after "vault" (getopt permutes): the command and its vault name remain. */
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'j':
                        arg_evectl.json = true;
                        break;
                case ARG_SIZE:
                        arg_size = optarg;
                        break;
                case ARG_KEY_SOURCE:
                        arg_key_source = optarg;
                        break;
                case ARG_PCRS:
                        arg_pcrs = optarg;
                        break;
                case ARG_RECOVERY_KEY:
                        arg_recovery_key = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind >= argc) {
                help();
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "evectl vault: a command is required.");
        }
        cmd = argv[optind++];
        if (!streq(cmd, "list")) {
                if (optind != argc - 1)
                        return log_error_errno(
                                        SYNTHETIC_ERRNO(EINVAL),
                                        "evectl vault %s: one vault name expected.",
                                        cmd);
                name = argv[optind];
        } else if (optind != argc)
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "evectl vault list takes no arguments.");
        if ((arg_size || arg_key_source || arg_pcrs) && !streq(cmd, "create") && !streq(cmd, "rotate"))
                return log_error_errno(
                                SYNTHETIC_ERRNO(EINVAL),
                                "--size, --key-source and --pcrs are for create and "
                                "rotate.");
        if (arg_size && !streq(cmd, "create"))
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "--size is for create.");
        if (arg_recovery_key && !streq(cmd, "create") && !streq(cmd, "unlock"))
                return log_error_errno(SYNTHETIC_ERRNO(EINVAL), "--recovery-key is for create and unlock.");

        r = evectl_bus_open(&bus);
        if (r < 0)
                return r;
        if (streq(cmd, "list"))
                return vault_list(bus);
        if (streq(cmd, "show"))
                return vault_show(bus, name);
        if (streq(cmd, "create")) {
                r = vault_create(bus, name);
                return r < 0 || !arg_recovery_key ? r : vault_add_recovery_key(bus, name);
        }
        if (streq(cmd, "recovery-key"))
                return vault_add_recovery_key(bus, name);
        if (streq(cmd, "unlock") && arg_recovery_key)
                return vault_unlock_with_recovery_key(bus, name);
        if (streq(cmd, "delete"))
                return vault_delete(bus, name);
        if (streq(cmd, "lock"))
                return vault_call(bus, name, "Lock", NULL, "lock vaults", "Locked.");
        if (streq(cmd, "unlock"))
                return vault_call(bus, name, "Unlock", NULL, "unlock vaults", "Unlocked.");
        if (streq(cmd, "rotate"))
                return vault_rotate(bus, name);
        return log_error_errno(
                        SYNTHETIC_ERRNO(EINVAL),
                        "Unknown command 'vault %s' (see evectl vault --help).",
                        cmd);
}
