/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-vaultd's state: the vaults, the queue of worker jobs, the worker processes and what they report, and
 * the key entries exchanged with eve-attestd. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "encoding.h"
#include "evetrust.pb-c.h"
#include "log.h"
#include "luks2-util.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"
#include "vault-share.h"
#include "vaultd.h"

#define WORKER_OUTPUT_MAX (UINT64_C(1) << 20)

static const char *const vault_state_table[_VAULT_STATE_MAX] = {
        [VAULT_CREATING] = "Creating", [VAULT_LOCKED] = "Locked",   [VAULT_UNLOCKING] = "Unlocking",
        [VAULT_UNLOCKED] = "Unlocked", [VAULT_LOCKING] = "Locking", [VAULT_DELETING] = "Deleting",
        [VAULT_ERROR] = "Error",
};

const char *vault_state_to_string(VaultState s) {
        return s >= 0 && s < _VAULT_STATE_MAX ? vault_state_table[s] : NULL;
}

static const char *const job_type_table[_JOB_TYPE_MAX] = {
        [JOB_CREATE] = "create",   [JOB_UNLOCK] = "unlock",   [JOB_LOCK] = "lock",
        [JOB_ROTATE] = "rotate",   [JOB_CONFIRM] = "confirm", [JOB_ERASE] = "erase",
        [JOB_INSPECT] = "inspect", [JOB_ADD_RECOVERY] = "add-recovery",
};

const char *job_type_to_string(JobType t) {
        return t >= 0 && t < _JOB_TYPE_MAX ? job_type_table[t] : NULL;
}

static void blob_done(Blob *b) {
        b->data = mfree(b->data);
        b->size = 0;
}

static int blob_set(Blob *b, const void *p, size_t n) {
        uint8_t *c = malloc(MAX(n, (size_t) 1));

        if (!c)
                return -ENOMEM;
        memcpy(c, p, n);
        free(b->data);
        b->data = c;
        b->size = n;
        return 0;
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- vaults ---- */

bool vault_name_is_valid_for_bus(const char *name) {
        return vault_name_is_valid_on_node(name); /* CONTRACT.md: [a-z0-9][a-z0-9-]{0,31} */
}

static Vault *vault_free(Vault *v) {
        if (!v)
                return NULL;
        free(v->name);
        free(v->object_path);
        free(v->image);
        free(v->map_name);
        free(v->mount_point);
        free(v->last_error);
        free(v->last_error_name);
        free(v->last_operation_result);
        free(v->progress_phase);
        blob_done(&v->escrow_blob);
        blob_done(&v->received);
        return mfree(v);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Vault *, vault_free);

Vault *manager_find_vault(Manager *m, const char *name) {
        for (Vault *v = m->vaults; v; v = v->next)
                if (streq(v->name, name))
                        return v;
        return NULL;
}

Vault *manager_find_vault_by_uuid(Manager *m, const char *uuid) {
        for (Vault *v = m->vaults; v; v = v->next)
                if (v->uuid[0] && strcasecmp(v->uuid, uuid) == 0)
                        return v;
        return NULL;
}

size_t manager_count_vaults(Manager *m) {
        size_t n = 0;

        for (Vault *v = m->vaults; v; v = v->next)
                n++;
        return n;
}

int manager_add_vault(Manager *m, const char *name, uint64_t size, Vault **ret) {
        _cleanup_(vault_freep) Vault *v = NULL;
        _cleanup_free_ char *file = NULL;
        Vault **p;
        int r;

        if (!vault_name_is_valid_for_bus(name))
                return -EINVAL;
        if (manager_find_vault(m, name))
                return -EEXIST;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        *v = (Vault){
                .manager = m,
                .size = size,
                .key_source = KEY_SOURCE_TPM,
                .requested_key_source = _KEY_SOURCE_INVALID,
                .state = VAULT_LOCKED,
                .unlock_method = UNLOCK_NONE,
                .last_operation = "",
        };
        v->name = strdup(name);
        v->last_error = strdup("");
        v->last_error_name = strdup("");
        v->last_operation_result = strdup("");
        v->progress_phase = strdup("");
        if (!v->name || !v->last_error || !v->last_error_name || !v->last_operation_result ||
            !v->progress_phase)
                return -ENOMEM;
        r = sd_bus_path_encode(VAULT_PATH_PREFIX, name, &v->object_path);
        if (r < 0)
                return r;
        if (asprintf(&file, "%s.img", name) < 0 || asprintf(&v->map_name, "eve-vault-%s", name) < 0)
                return -ENOMEM;
        v->image = eve_path_join(EVE_PATH_VAULT_IMG, file);
        v->mount_point = streq(name, VAULT_DEFAULT_IMAGE) ? strdup(eve_path(EVE_PATH_VAULT))
                                                          : eve_path_join(EVE_PATH_VAULTS, name);
        if (!v->image || !v->mount_point)
                return -ENOMEM;

        for (p = &m->vaults; *p && strcmp((*p)->name, name) < 0; p = &(*p)->next)
                ;
        v->next = *p;
        *p = v;
        if (ret)
                *ret = v;
        TAKE_PTR(v);
        return 0;
}

void manager_remove_vault(Manager *m, Vault *v) {
        for (Vault **p = &m->vaults; *p; p = &(*p)->next)
                if (*p == v) {
                        *p = v->next;
                        break;
                }
        /* Jobs still queued for it see removed and finish without a worker. */
        v->removed = true;
        if (v->n_jobs == 0)
                vault_free(v);
}

static int set_str(char **s, const char *v) {
        char *c = strdup(v ?: "");

        if (!c)
                return -ENOMEM;
        free(*s);
        *s = c;
        return 0;
}

/* name: a VAULT_ERROR_* (prefixed here) or a full org.eve.Vault.Error.* name; "" clears. */
static void vault_set_error(Vault *v, const char *name, const char *message) {
        _cleanup_free_ char *full = NULL;

        if (!isempty(name) && strncmp(name, VAULT_ERROR_PREFIX, strlen(VAULT_ERROR_PREFIX)) != 0 &&
            asprintf(&full, VAULT_ERROR_PREFIX "%s", name) < 0)
                full = NULL;
        (void) set_str(&v->last_error_name, full ?: name);
        (void) set_str(&v->last_error, message);
}

/* ---- jobs ---- */

static void manager_dispatch(Manager *m);

Job *job_new(Vault *v, JobType type, sd_bus_message *request) {
        Job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        *j = (Job){
                .manager = v->manager,
                .vault = v,
                .type = type,
                .request = request ? sd_bus_message_ref(request) : NULL,
                .key_source = _KEY_SOURCE_INVALID,
                .out_fd = -EBADF,
                .progress_fd = -EBADF,
        };
        v->n_jobs++;
        return j;
}

static Job *job_free(Job *j) {
        if (!j)
                return NULL;
        while (j->members) {
                Job *x = j->members;
                j->members = x->next;
                job_free(x);
        }
        sd_event_source_disable_unref(j->child_source);
        sd_event_source_disable_unref(j->out_source);
        sd_event_source_disable_unref(j->progress_source);
        sd_bus_slot_unref(j->unit_call);
        sd_bus_slot_unref(j->unit_match);
        sd_event_source_disable_unref(j->unit_timer);
        free(j->unit_job);
        safe_close(j->out_fd);
        safe_close(j->progress_fd);
        sd_bus_message_unref(j->request);
        erase_and_free(j->keys_json);
        eve_secret_free(j->recovery_key);
        free(j->uuid);
        free(j->pcr_source);
        if (j->type == JOB_ADD_RECOVERY)
                eve_secret_free(j->out); /* it carried the recovery key */
        else
                free(j->out);
        if (j->vault) {
                Vault *v = j->vault;
                v->n_jobs--;
                if (v->removed && v->n_jobs == 0)
                        vault_free(v);
        }
        return mfree(j);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);

void job_enqueue(Job *j) {
        Manager *m = j->manager;
        Job **p;

        for (p = &m->queue; *p; p = &(*p)->next)
                ;
        *p = j;
        manager_dispatch(m);
}

static char *pcr_list(uint32_t mask) {
        return tpm2_pcr_mask_to_string(mask);
}

/* The worker's command line: only names, paths and policy (never key material). */
static int job_argv(Job *j, char ***ret) {
        Vault *v = j->vault;
        char **a;
        size_t n = 0, k = 0;
        bool ok = true;

        for (Job *x = j->members; x; x = x->next)
                k++;
        a = calloc(24 + 6 * k, sizeof(char *));

#define ADD(s)                        \
        do {                          \
                char *_s = strdup(s); \
                ok = ok && _s;        \
                a[n++] = _s;          \
        } while (0)
        if (!a)
                return -ENOMEM;
        ADD(j->manager->worker_path);
        ADD(job_type_to_string(j->type));
        if (!v) /* a batch: one unlock of each member's vault, in order */
                for (Job *x = j->members; x; x = x->next) {
                        ADD("--image");
                        ADD(x->vault->image);
                        ADD("--map");
                        ADD(x->vault->map_name);
                        ADD("--mount");
                        ADD(x->vault->mount_point);
                }
        else {
                ADD("--image");
                ADD(v->image);
        }
        switch (j->type) {
        case JOB_CREATE: {
                char size[32];
                _cleanup_free_ char *pcrs = j->pcr_mask ? pcr_list(j->pcr_mask) : NULL;

                (void) snprintf(size, sizeof(size), "%" PRIu64, j->size);
                ADD("--name");
                ADD(v->name);
                ADD("--size");
                ADD(size);
                ADD("--key-source");
                ADD(key_source_to_string(j->key_source >= 0 ? j->key_source : KEY_SOURCE_TPM));
                if (j->pcr_mask) {
                        ADD("--pcrs");
                        ADD(pcrs ?: "");
                }
                if (j->uuid) {
                        ADD("--uuid");
                        ADD(j->uuid);
                }
                if (j->pcr_source) {
                        ADD("--pcr-source");
                        ADD(j->pcr_source);
                }
                ADD("--progress-fd");
                ADD("3");
                break;
        }
        case JOB_UNLOCK:
                if (v) {
                        ADD("--map");
                        ADD(v->map_name);
                        ADD("--mount");
                        ADD(v->mount_point);
                }
                ADD("--escrow-always");
                ADD("--progress-fd");
                ADD("3");
                break;
        case JOB_ROTATE: {
                _cleanup_free_ char *pcrs = j->pcr_mask ? pcr_list(j->pcr_mask) : NULL;

                ADD("--hold");
                if (j->key_source >= 0) {
                        ADD("--key-source");
                        ADD(key_source_to_string(j->key_source));
                }
                if (j->pcr_mask) {
                        ADD("--pcrs");
                        ADD(pcrs ?: "");
                }
                if (j->pcr_source) {
                        ADD("--pcr-source");
                        ADD(j->pcr_source);
                }
                break;
        }
        case JOB_CONFIRM: {
                char g[32];

                (void) snprintf(g, sizeof(g), "%" PRIu64, j->generation);
                ADD("--generation");
                ADD(g);
                break;
        }
        case JOB_LOCK:
        case JOB_ERASE:
        case JOB_INSPECT:
                ADD("--map");
                ADD(v->map_name);
                ADD("--mount");
                ADD(v->mount_point);
                break;
        default:
                break;
        }
        if (j->keys_json) {
                ADD("--keys-fd");
                ADD("4");
        }
#undef ADD
        if (!ok) {
                for (size_t i = 0; i < n; i++)
                        free(a[i]);
                free(a);
                return -ENOMEM;
        }
        *ret = a;
        return 0;
}

static void strv_free(char **a) {
        for (size_t i = 0; a && a[i]; i++)
                free(a[i]);
        free(a);
}

/* The keys for --keys-fd in a sealed memfd (never argv or the environment). */
static int keys_memfd(const char *json) {
        _cleanup_close_ int fd = memfd_create("eve-vault-keys", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        size_t n = strlen(json), off = 0;

        if (fd < 0)
                return -errno;
        while (off < n) {
                ssize_t k = write(fd, json + off, n - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                off += (size_t) k;
        }
        (void) fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void job_finish(Job *j, int status_code, int signal_no);

static void job_read_output(Job *j) {
        for (;;) {
                char buf[4096];
                ssize_t k;

                if (j->out_fd < 0)
                        return;
                k = read(j->out_fd, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        if (k == 0 || errno != EAGAIN) {
                                j->out_source = sd_event_source_disable_unref(j->out_source);
                                j->out_fd = safe_close(j->out_fd);
                        }
                        return;
                }
                if (j->out_size + (size_t) k > WORKER_OUTPUT_MAX)
                        continue; /* a runaway worker: the result will not parse */
                /* add-recovery's output carries the recovery key: secret memory, no copy left behind. */
                char *p = j->type == JOB_ADD_RECOVERY
                                ? eve_secret_realloc(j->out, j->out_size + (size_t) k + 1)
                                : realloc(j->out, j->out_size + (size_t) k + 1);
                if (!p)
                        return;
                j->out = p;
                memcpy(j->out + j->out_size, buf, (size_t) k);
                if (j->type == JOB_ADD_RECOVERY)
                        erase(buf, sizeof(buf));
                j->out_size += (size_t) k;
                j->out[j->out_size] = '\0';
        }
}

/* A batch: each complete result line finishes the member it belongs to (the first one still waiting: the
 * worker reports in order). */
static void batch_take_results(Job *j) {
        char *nl;

        while (j->members && j->out && (nl = strchr(j->out, '\n'))) {
                Job *x = j->members;
                size_t n = (size_t) (nl - j->out);
                json_object *o;

                j->members = x->next;
                x->next = NULL;
                j->batch_reported++;
                x->out = strndup(j->out, n);
                x->out_size = x->out ? n : 0;
                memmove(j->out, nl + 1, j->out_size - n);
                j->out_size -= n + 1;
                /* A line of another vault is no result of this one. */
                o = x->out ? json_tokener_parse(x->out) : NULL;
                if (!o || !streq_ptr(jstr(o, "image"), x->vault->image)) {
                        log_error("Vault %s: the batch worker's result is not this vault's.",
                                  x->vault->name);
                        x->out = mfree(x->out);
                        x->out_size = 0;
                }
                json_object_put(o);
                job_finish(x, 0, 0);
        }
}

static int on_worker_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Job *j = userdata;

        job_read_output(j);
        if (!j->vault)
                batch_take_results(j);
        return 0;
}

static void progress_line(Job *j, const char *line) {
        Vault *v = j->vault;
        char phase[32];
        uint64_t done, total;

        if (sscanf(line, "%31s %" SCNu64 " %" SCNu64, phase, &done, &total) != 3)
                return;
        if (!v) {
                /* A batch: "batch I N" when the worker begins vault I; other phases: the vault it is on. */
                if (streq(phase, "batch")) {
                        j->batch_started = (size_t) MIN(done + 1, (uint64_t) SIZE_MAX);
                        return;
                }
                if (!j->members)
                        return;
                v = j->members->vault;
        }
        (void) set_str(&v->progress_phase, phase);
        v->progress_done = done;
        v->progress_total = total;
        vault_emit_progress(v);
}

/* Reads what the progress fd has; false when it had nothing (now). */
static bool progress_read(Job *j) {
        char buf[512];
        ssize_t k;

        if (j->progress_fd < 0)
                return false;
        k = read(j->progress_fd, buf, sizeof(buf));
        if (k <= 0) {
                if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                        j->progress_source = sd_event_source_disable_unref(j->progress_source);
                        j->progress_fd = safe_close(j->progress_fd);
                }
                return false;
        }
        for (ssize_t i = 0; i < k; i++) {
                if (buf[i] == '\n') {
                        j->progress_line[j->progress_len] = '\0';
                        progress_line(j, j->progress_line);
                        j->progress_len = 0;
                } else if (j->progress_len < sizeof(j->progress_line) - 1)
                        j->progress_line[j->progress_len++] = buf[i];
        }
        return true;
}

static int on_worker_progress(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) progress_read(userdata);
        return 0;
}

static void batch_finish(Job *j, int exit_code, int signal_no);

static int on_worker_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Job *j = userdata;

        j->child_source = sd_event_source_disable_unref(j->child_source);
        job_read_output(j);
        if (!j->vault) {
                /* Which vault it was on: every "batch I N" it wrote before it ended. */
                while (progress_read(j))
                        ;
                batch_finish(j,
                             si->si_code == CLD_EXITED ? si->si_status : -1,
                             si->si_code == CLD_EXITED ? 0 : si->si_status);
        } else if (si->si_code == CLD_EXITED)
                job_finish(j, si->si_status, 0);
        else
                job_finish(j, -1, si->si_status);
        return 0;
}

static int job_spawn(Job *j) {
        Manager *m = j->manager;
        _cleanup_close_ int keys_fd = -EBADF;
        int out[2] = { -EBADF, -EBADF }, prog[2] = { -EBADF, -EBADF };
        char **argv = NULL;
        pid_t pid;
        int r;

        r = job_argv(j, &argv);
        if (r < 0)
                return r;
        if (j->keys_json) {
                keys_fd = keys_memfd(j->keys_json);
                j->keys_json = erase_and_free(j->keys_json); /* the memfd has it now; we keep nothing */
                if (keys_fd < 0) {
                        strv_free(argv);
                        return keys_fd;
                }
        }
        if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(prog, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                safe_close(out[0]);
                safe_close(out[1]);
                strv_free(argv);
                return r;
        }

        pid = fork();
        if (pid < 0) {
                r = -errno;
                safe_close(out[0]);
                safe_close(out[1]);
                safe_close(prog[0]);
                safe_close(prog[1]);
                strv_free(argv);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                (void) fcntl(out[1], F_SETFL, 0);
                (void) fcntl(prog[1], F_SETFL, 0);
                if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
                    dup2(prog[1], 3) < 0 || (keys_fd >= 0 && dup2(keys_fd, 4) < 0))
                        _exit(127);
                execv(argv[0], argv);
                fprintf(stderr, "Cannot run %s: %m\n", argv[0]);
                _exit(127);
        }
        strv_free(argv);
        safe_close(out[1]);
        safe_close(prog[1]);
        j->pid = pid;
        j->out_fd = out[0];
        j->progress_fd = prog[0];
        log_debug("Vault %s: worker %s started (pid %d).",
                  j->vault ? j->vault->name : "batch",
                  job_type_to_string(j->type),
                  (int) pid);

        r = sd_event_add_child(m->event, &j->child_source, pid, WEXITED, on_worker_exit, j);
        if (r >= 0)
                r = sd_event_add_io(m->event, &j->out_source, j->out_fd, EPOLLIN, on_worker_output, j);
        if (r >= 0)
                r =
                                sd_event_add_io(m->event,
                                                &j->progress_source,
                                                j->progress_fd,
                                                EPOLLIN,
                                                on_worker_progress,
                                                j);
        if (r < 0) {
                /* Cannot watch it: stop it and reap it here (it has not done anything we rely on). */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                j->pid = 0;
                return r;
        }
        return 0;
}

static void vault_set_busy_state(Vault *v, JobType t) {
        switch (t) {
        case JOB_CREATE:
                v->state = VAULT_CREATING;
                break;
        case JOB_UNLOCK:
                if (v->state != VAULT_UNLOCKED)
                        v->state = VAULT_UNLOCKING;
                break;
        case JOB_LOCK:
                v->state = VAULT_LOCKING;
                break;
        case JOB_ERASE:
                v->state = VAULT_DELETING;
                break;
        default:
                break;
        }
}

/* The worker of a batch is gone: the members it reported are finished; the one it was on without a result
 * is finished as a worker that died during its unlock (WorkerFailed, then inspected); those it never began
 * are unlocked each by itself, first in the queue (the usual path). */
static void batch_finish(Job *j, int exit_code, int signal_no) {
        Manager *m = j->manager;

        batch_take_results(j);
        if (j->members && j->batch_started > j->batch_reported) {
                Job *x = j->members;

                j->members = x->next;
                x->next = NULL;
                job_finish(x, exit_code, signal_no);
        }
        if (j->members) {
                Job *last = j->members;
                size_t n = 1;

                for (; last->next; last = last->next)
                        n++;
                log_warning("The batch unlock ended early: %zu vault(s) unlocked one by one.", n);
                last->next = m->queue;
                m->queue = TAKE_PTR(j->members);
        }
        if (m->running == j)
                m->running = NULL;
        job_free(j);
        manager_update_status(m);
        manager_dispatch(m);
        manager_converge(m);
}

/* A vault's job about to run: its vault shows it. */
static void job_begin(Job *j) {
        Vault *v = j->vault;

        j->was_unlocked = v->state == VAULT_UNLOCKED;
        vault_set_busy_state(v, j->type);
        (void) set_str(&v->progress_phase, "");
        v->progress_done = v->progress_total = 0;
        vault_emit_changed(v);
}

/* A batch about to run: members of vaults deleted meanwhile are answered and dropped, the others marked busy
 * as their own jobs would be. false: nothing left to run. */
static bool batch_begin(Job *j) {
        for (Job **p = &j->members; *p;) {
                Job *x = *p;

                if (x->vault->removed) {
                        *p = x->next;
                        (void) job_reply(x, VAULT_ERROR_NO_SUCH_VAULT, "the vault was deleted");
                        job_free(x);
                        continue;
                }
                job_begin(x);
                p = &x->next;
        }
        return j->members;
}

static void manager_dispatch(Manager *m) {
        while (!m->running && m->queue) {
                Job *j = m->queue;
                int r;

                m->queue = j->next;
                j->next = NULL;
                if (!j->vault) {
                        if (!batch_begin(j)) {
                                job_free(j);
                                continue;
                        }
                        m->running = j;
                        r = job_spawn(j);
                        if (r < 0) {
                                log_error_errno(r, "Cannot start the batch unlock worker: %m");
                                batch_finish(j, 127, 0);
                        }
                        continue;
                }
                if (j->vault->removed) {
                        (void) job_reply(j, VAULT_ERROR_NO_SUCH_VAULT, "the vault was deleted");
                        job_free(j);
                        manager_converge(m); /* the last job of a vault gone may have held it up */
                        continue;
                }
                job_begin(j);
                m->running = j;
                r = job_spawn(j);
                if (r < 0) {
                        log_error_errno(r, "Vault %s: cannot start the worker: %m", j->vault->name);
                        m->running = NULL;
                        job_finish(j, 127, 0);
                }
        }
}

/* ---- results ---- */

const char *jstr(json_object *o, const char *k) {
        json_object *v;
        return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
                        ? json_object_get_string(v)
                        : NULL;
}
static bool jbool(json_object *o, const char *k) {
        json_object *v;
        return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}
int64_t jint(json_object *o, const char *k, int64_t def) {
        json_object *v;
        return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int)
                        ? json_object_get_int64(v)
                        : def;
}
static uint32_t jpcrs(json_object *o, const char *k) {
        json_object *a;
        uint32_t m = 0;

        if (!json_object_object_get_ex(o, k, &a) || !json_object_is_type(a, json_type_array))
                return 0;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                int p = json_object_get_int(json_object_array_get_idx(a, i));
                if (p >= 0 && p < (int) TPM2_PCRS_MAX)
                        m |= UINT32_C(1) << p;
        }
        return m;
}

static int unlock_method_from(const char *s) {
        for (int i = 0; i < _UNLOCK_METHOD_MAX; i++)
                if (streq_ptr(unlock_method_to_string(i), s))
                        return i;
        return UNLOCK_NONE;
}

/* Takes what the worker read from the token. */
static void vault_apply_token(Vault *v, json_object *o) {
        const char *s;

        if (!jstr(o, "uuid"))
                return;
        (void) snprintf(v->uuid, sizeof(v->uuid), "%s", jstr(o, "uuid"));
        v->generation = (uint64_t) MAX(jint(o, "generation", 0), 0);
        v->key_source = MAX(key_source_from_string(jstr(o, "key_source")), KEY_SOURCE_TPM);
        v->pcr_mask = jpcrs(o, "pcrs");
        (void) snprintf(v->pcr_source, sizeof(v->pcr_source), "%s", jstr(o, "pcr_source") ?: "");
        v->escrow = MAX(escrow_state_from_string(jstr(o, "escrow")), ESCROW_NONE);
        v->rotation = MAX(rotation_step_from_string(jstr(o, "rotation")), ROTATION_NONE);
        s = jstr(o, "requested_key_source");
        v->requested_key_source = s ? key_source_from_string(s) : _KEY_SOURCE_INVALID;
        v->requested_pcr_mask = v->rotation == ROTATION_REQUESTED ? jpcrs(o, "requested_pcrs") : 0;
        v->has_filesystem = jbool(o, "filesystem");
        v->has_recovery_key = jbool(o, "has_recovery_key");
        v->keyslots = (unsigned) MAX(jint(o, "keyslots", 0), 0);
}

static bool wants_share(const Vault *v);

/* Whether the controller may not hold this vault's current key (or a share must be asked for). */
static bool vault_escrow_pending(const Vault *v) {
        return (v->escrow_blob.data && (v->escrow != ESCROW_CONFIRMED || v->rotation == ROTATION_UNCONFIRMED)) ||
                        wants_share(v);
}

/* Takes the escrow blob a worker made; true when there is a new one the controller still needs. */
static bool vault_apply_escrow(Vault *v, json_object *o) {
        const char *b = jstr(o, "escrow_blob");
        _cleanup_free_ uint8_t *blob = NULL;
        bool fresh = false;
        size_t n;

        if (b && base64_decode(b, strlen(b), false, &blob, &n) >= 0) {
                free(v->escrow_blob.data);
                v->escrow_blob.data = TAKE_PTR(blob);
                v->escrow_blob.size = n;
                v->escrow_generation = (uint64_t) MAX(jint(o, "escrow_generation", 0), 0);
                fresh = true;
        }
        /* A blob of a key that is gone is of no use to anybody. */
        if (v->escrow_blob.data && v->escrow_generation != v->generation)
                blob_done(&v->escrow_blob);
        if (!key_source_needs_tpm(v->key_source))
                blob_done(&v->escrow_blob);
        return fresh && v->escrow_blob.data && vault_escrow_pending(v);
}

void manager_update_status(Manager *m) {
        char buf[512] = "";
        size_t n = 0;

        for (Vault *v = m->vaults; v && n < sizeof(buf) - 64; v = v->next)
                n += (size_t) snprintf(
                                buf + n,
                                sizeof(buf) - n,
                                "%s%s %s",
                                n ? ", " : "",
                                v->name,
                                vault_state_to_string(v->state));
        (void) sd_notifyf(false, "STATUS=Vaults: %s", n ? buf : "none");
}

/* CONTRACT.md: eve-configd (user eve-config) keeps the last good configuration in <config vault>/config/, a
 * directory of its own in the vault (the vault's root belongs to root). Made when the vault is mounted; a
 * node without that user (tests) is left alone. */
static void config_vault_prepare(Vault *v) {
        _cleanup_free_ char *dir = NULL;
        struct passwd pw, *res = NULL;
        char buf[4096];

        if (!streq(v->name, VAULT_DEFAULT_CONFIG) || !v->mount_point ||
            getpwnam_r("eve-config", &pw, buf, sizeof buf, &res) != 0 || !res)
                return;
        if (asprintf(&dir, "%s/config", v->mount_point) < 0)
                return;
        if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || chown(dir, res->pw_uid, res->pw_gid) < 0)
                log_warning_errno(errno, "Cannot prepare %s for eve-configd: %m", dir);
}

/* add-recovery: the worker's first line "recovery-key KEY" goes into j->recovery_key (secret memory) and out
 * of the output, which is then the result alone. */
static void job_take_recovery_key(Job *j) {
        static const char prefix[] = "recovery-key ";
        char *nl;
        size_t n;

        if (!j->out || strncmp(j->out, prefix, strlen(prefix)) != 0 || !(nl = strchr(j->out, '\n')))
                return;
        n = (size_t) (nl - j->out) - strlen(prefix);
        if (n == VAULT_RECOVERY_KEY_LEN && (j->recovery_key = eve_secret_alloc(n + 1))) {
                memcpy(j->recovery_key, j->out + strlen(prefix), n);
                j->recovery_key[n] = '\0';
        }
        n = (size_t) (nl + 1 - j->out);
        memmove(j->out, j->out + n, j->out_size - n + 1);
        erase(j->out + j->out_size - n + 1, n);
        j->out_size -= n;
}

static void job_finish(Job *j, int exit_code, int signal_no) {
        _cleanup_free_ char *message = NULL;
        Manager *m = j->manager;
        Vault *v = j->vault;
        json_object *o = NULL;
        const char *error = NULL, *reason = NULL;
        bool ok = false, fresh_escrow = false;

        if (m->running == j)
                m->running = NULL;
        if (j->type == JOB_ADD_RECOVERY)
                job_take_recovery_key(j);
        if (j->out)
                o = json_tokener_parse(j->out);
        if (!o || !json_object_is_type(o, json_type_object)) {
                int k;
                if (signal_no > 0)
                        k = asprintf(&message,
                                     "the vault worker was killed by signal %d (%s) during %s",
                                     signal_no,
                                     strsignal(signal_no),
                                     job_type_to_string(j->type));
                else
                        k = asprintf(&message,
                                     "the vault worker failed (exit status %d) during %s without a "
                                     "result",
                                     exit_code,
                                     job_type_to_string(j->type));
                if (k < 0)
                        message = NULL; /* out of memory: the generic reason below */
                error = VAULT_ERROR_WORKER_FAILED;
                reason = message ?: "the vault worker failed";
                log_error("Vault %s: %s.", v->name, reason);
                json_object_put(o);
                o = NULL;
        } else {
                ok = jbool(o, "ok");
                vault_apply_token(v, o);
                fresh_escrow = vault_apply_escrow(v, o);
                error = jstr(o, "error");
                reason = jstr(o, "reason");
                if (!ok && !error)
                        error = VAULT_ERROR_FAILED;
                if (jstr(o, "recovered") && !streq(jstr(o, "recovered"), "none"))
                        log_notice("Vault %s: an interrupted key change (journal step %s) was %s.",
                                   v->name,
                                   jstr(o, "recovered"),
                                   jbool(o, "rolled_forward") ? "completed" : "rolled back");
        }

        /* The vault's state after the job. */
        switch (j->type) {
        case JOB_CREATE:
                if (ok) {
                        v->state = VAULT_LOCKED;
                        v->unlock_method = UNLOCK_NONE;
                } else
                        v->state = VAULT_ERROR; /* kept only when its place holds something else */
                break;
        case JOB_UNLOCK:
        case JOB_INSPECT:
                if (o) {
                        bool activated = jbool(o, "activated"), mounted = jbool(o, "mounted"),
                             delegated = jbool(o, "mount_delegated");
                        UnlockMethod km = unlock_method_from(jstr(o, "key_method"));

                        /* Unlocked: mapped, and mounted here or (where eve-vaultd may not mount) by
                         * systemd's mount unit, which is started now. */
                        if (!ok && streq_ptr(error, VAULT_ERROR_BAD_IMAGE))
                                v->state = VAULT_ERROR;
                        else if (activated && (mounted || delegated || j->type == JOB_INSPECT)) {
                                v->state = VAULT_UNLOCKED;
                                if (mounted)
                                        config_vault_prepare(v);
                                if (delegated && j->type == JOB_UNLOCK)
                                        vault_start_mount_unit(v);
                        } else if (activated) {
                                v->state = VAULT_ERROR;
                                if (!error)
                                        error = VAULT_ERROR_FAILED;
                        } else
                                v->state = VAULT_LOCKED;
                        /* How it was opened this boot: a later key check of an open vault (released keys
                         * checked again, after which the TPM path works) does not change that. */
                        if (j->type == JOB_UNLOCK && !(j->was_unlocked && v->state == VAULT_UNLOCKED)) {
                                v->unlock_method = km;
                                v->moved_pcrs = jpcrs(o, "moved_pcrs");
                        } else if (v->state != VAULT_UNLOCKED)
                                v->unlock_method = UNLOCK_NONE;
                } else if (v->state != VAULT_UNLOCKED)
                        v->state = VAULT_LOCKED;
                break;
        case JOB_LOCK:
                if (o && !jbool(o, "activated") && !jbool(o, "mounted")) {
                        v->state = VAULT_LOCKED;
                        v->unlock_method = UNLOCK_NONE;
                } else if (o)
                        v->state = jbool(o, "mounted") ? VAULT_UNLOCKED : VAULT_ERROR;
                else
                        v->state = VAULT_ERROR;
                break;
        case JOB_ERASE:
                if (ok && !error)
                        break;
                v->state = VAULT_ERROR;
                break;
        default:
                break;
        }
        j->requested = o && jbool(o, "requested");
        if (error) {
                vault_set_error(v, error, reason);
                if (!streq(error, VAULT_ERROR_NO_DM))
                        log_warning("Vault %s: %s: %s",
                                    v->name,
                                    job_type_to_string(j->type),
                                    reason ?: error);
                else
                        log_notice("Vault %s: %s", v->name, reason ?: error);
        } else if (j->type != JOB_INSPECT) {
                vault_set_error(v, "", "");
                if (reason)
                        log_notice("Vault %s: %s", v->name, reason); /* a note (requested, no escrow yet) */
        }
        v->last_operation = job_type_to_string(j->type);
        (void) set_str(&v->last_operation_result, error ? v->last_error_name : "success");
        v->last_operation_usec = now_realtime_usec();
        (void) set_str(&v->progress_phase, "");
        v->progress_done = v->progress_total = 0;

        if (j->type == JOB_ERASE && ok && !error) {
                log_info("Vault %s deleted: its keyslots are destroyed and its image removed.", v->name);
                (void) job_reply(j, NULL, NULL);
                bus_vault_removed(v);
                manager_remove_vault(m, v); /* freed with the job (its last one) */
                v = NULL;
        } else {
                vault_emit_changed(v);
                if (j->type == JOB_CREATE && ok && j->chain_unlock) {
                        /* The first activation (mkfs, mount) answers the caller. */
                        Job *u = job_new(v, JOB_UNLOCK, NULL);
                        if (u) {
                                u->request = TAKE_PTR(j->request);
                                u->chain_unlock = true;
                                job_enqueue(u);
                        }
                } else
                        (void) job_reply(j, error, reason);
                if (o == NULL && !v->removed) {
                        /* A worker died mid-way: read back what it left (a journal step, keyslots). */
                        Job *i = job_new(v, JOB_INSPECT, NULL);
                        if (i)
                                job_enqueue(i);
                }
                if (j->type == JOB_CREATE && !ok && !streq_ptr(error, VAULT_ERROR_EXISTS)) {
                        bus_vault_removed(v);
                        manager_remove_vault(m, v);
                }
        }
        manager_converge_job_done(m, v, j->type, ok && !error);
        json_object_put(o);
        /* Also when it stays true: a new blob (a vault created or re-sealed after this boot's escrow exchange)
         * tells eve-attestd to upload again, even while another vault was pending all along. */
        if (manager_escrow_pending(m) != m->escrow_pending || (m->escrow_pending && fresh_escrow)) {
                m->escrow_pending = manager_escrow_pending(m);
                manager_emit_changed(m, "EscrowPending");
        }
        manager_update_status(m);
        job_free(j);
        manager_dispatch(m);
        manager_converge(m);
}

/* ---- start ---- */

/* Queues the creation of a vault the daemon makes by itself (a default one, or one on a blank partition),
 * opened at once through the TPM. */
static int queue_create(Vault *v, uint64_t size) {
        Job *j = job_new(v, JOB_CREATE, NULL);

        if (!j)
                return -ENOMEM;
        j->size = size;
        j->key_source = KEY_SOURCE_TPM;
        j->chain_unlock = true;
        v->state = VAULT_CREATING;
        job_enqueue(j);
        return 0;
}

static int create_default(Manager *m, const char *name, uint64_t size) {
        Vault *v;
        int r;

        r = manager_add_vault(m, name, size, &v);
        if (r < 0)
                return r;
        log_info("Creating the default vault %s (%" PRIu64 " MiB).", name, size >> 20);
        return queue_create(v, size);
}

/* An image file whose creation never got as far as its LUKS2 header: both header slots (the primary at 0 and
 * the secondary at 16 KiB) still zero, as allocated. A real vault never has that; a damaged header is left
 * alone (its unlock says why). */
static bool image_unfinished(int dfd, const char *file) {
        _cleanup_close_ int fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        uint8_t buf[32768];
        ssize_t n;

        if (fd < 0)
                return false;
        n = pread(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return false;
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] != 0)
                        return false;
        return true;
}

/* A vault on a partition (docs/VAULTS.md "Partitions"): <image dir>/<name>.img is a symlink to the block
 * device. One with a LUKS2 header is a vault like any other; a blank one is made a vault (the worker refuses
 * a partition that holds anything); a symlink to anything else is left alone. */
static int start_partition_vault(Manager *m, const char *file, const char *name) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_VAULT_IMG, file);
        uint64_t size = 0;
        Vault *v;
        int r;

        if (!path)
                return log_oom();
        r = vault_image_block_device(path, &size);
        if (r <= 0) {
                if (r < 0)
                        log_warning_errno(r, "Ignoring %s: %m", path);
                else
                        log_warning("Ignoring %s: a symlink, but not to a block device.", path);
                return 0;
        }
        r = manager_add_vault(m, name, size, &v);
        if (r < 0)
                return log_error_errno(r, "Cannot add vault %s: %m", name);
        /* The header's magic, read here: eve-vaultd does not link libcryptsetup (its worker does). */
        r = luks2_has_header(path);
        if (r != 0)
                return 0; /* a vault already (or a damaged or unreadable one: its unlock says why) */
        log_info("Creating vault %s on the partition %s (%" PRIu64 " MiB).", name, path, size >> 20);
        return queue_create(v, size) < 0 ? log_oom() : 0;
}

int manager_start(Manager *m) {
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_(job_freep) Job *batch = NULL;
        const char *dir = eve_path(EVE_PATH_VAULT_IMG);
        struct dirent *de;
        Job **tail;
        size_t n_unlock = 0;
        int r;

        r = eve_mkdir_p(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);
        (void) manager_load_configs(m);
        d = opendir(dir);
        if (!d)
                return log_error_errno(errno, "Cannot read %s: %m", dir);
        while ((de = readdir(d))) {
                _cleanup_free_ char *name = NULL;
                size_t n = strlen(de->d_name);
                struct stat st;
                Vault *v;

                if (n <= 4 || !streq(de->d_name + n - 4, ".img"))
                        continue;
                name = strndup(de->d_name, n - 4);
                if (!name)
                        return log_oom();
                if (!vault_name_is_valid_for_bus(name)) {
                        log_warning("Ignoring %s/%s: not a vault name.", dir, de->d_name);
                        continue;
                }
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISLNK(st.st_mode)) {
                        r = start_partition_vault(m, de->d_name, name);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        continue;
                if (image_unfinished(dirfd(d), de->d_name)) {
                        /* Power lost while a vault was being allocated, before LUKS2 wrote its header: no key
                         * and no data in it. Gone, so a default vault is created again below. */
                        log_notice("%s/%s was never finished (its creation was interrupted): removing it.",
                                   dir,
                                   de->d_name);
                        if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                                log_warning_errno(errno, "Cannot remove %s/%s: %m", dir, de->d_name);
                        continue;
                }
                r = manager_add_vault(m, name, (uint64_t) st.st_size, &v);
                if (r < 0)
                        return log_error_errno(r, "Cannot add vault %s: %m", name);
        }
        if (!manager_find_vault(m, VAULT_DEFAULT_CONFIG)) {
                r = create_default(m, VAULT_DEFAULT_CONFIG, m->config_size);
                if (r < 0)
                        return log_error_errno(
                                        r, "Cannot create the default vault %s: %m", VAULT_DEFAULT_CONFIG);
        }
        if (!manager_find_vault(m, VAULT_DEFAULT_IMAGE)) {
                r = create_default(m, VAULT_DEFAULT_IMAGE, m->image_size);
                if (r < 0)
                        return log_error_errno(
                                        r, "Cannot create the default vault %s: %m", VAULT_DEFAULT_IMAGE);
        }
        /* The config vault first: eve-configd waits for it. The TPM path only; the controller comes later.
         * Several vaults: one worker for all (one process start, one TPM context), each reported as it is
         * done (docs/VAULTS.md "Unlock at start"). */
        batch = calloc(1, sizeof(*batch));
        if (!batch)
                return log_oom();
        *batch = (Job){ .manager = m, .type = JOB_UNLOCK, .out_fd = -EBADF, .progress_fd = -EBADF };
        tail = &batch->members;
        for (int pass = 0; pass < 2; pass++)
                for (Vault *v = m->vaults; v; v = v->next)
                        if (v->n_jobs == 0 && (streq(v->name, VAULT_DEFAULT_CONFIG) == (pass == 0)) &&
                            !manager_wants_locked(m, v)) {
                                v->state = VAULT_UNLOCKING;
                                *tail = job_new(v, JOB_UNLOCK, NULL);
                                if (!*tail)
                                        return log_oom();
                                tail = &(*tail)->next;
                                n_unlock++;
                        }
        if (n_unlock > 1)
                job_enqueue(TAKE_PTR(batch));
        else if (n_unlock == 1) {
                job_enqueue(TAKE_PTR(batch->members));
                batch = job_free(batch);
        }
        /* Vaults the controller wants locked stay so; their tokens are read all the same. */
        for (Vault *v = m->vaults; v; v = v->next)
                if (v->n_jobs == 0) {
                        Job *j = job_new(v, JOB_INSPECT, NULL);
                        if (!j)
                                return log_oom();
                        log_info("Vault %s stays locked: the controller wants it locked.", v->name);
                        job_enqueue(j);
                }
        (void) manager_write_app_units(m);
        manager_update_status(m);
        manager_converge(m);
        return 0;
}

int manager_new(Manager **ret) {
        Manager *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->worker_path = getenv_nonempty("EVE_VAULT_WORKER") ?: LIBEXECDIR "/eve-vault-worker";
        m->image_size = UINT64_C(1) << 30;
        m->config_size = UINT64_C(64) << 20;
        *ret = m;
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        if (m->running) {
                /* Shutting down mid-job: let the worker finish for a few seconds (an operation takes well under
                 * one, except allocating a large image), then interrupt it: its journal makes that safe, and
                 * the kernel's TPM resource manager flushes what it had loaded. */
                if (m->running->pid > 0) {
                        bool reaped = false;

                        for (unsigned i = 0; i < 500 && !reaped; i++) {
                                reaped = waitpid(m->running->pid, NULL, WNOHANG) != 0;
                                if (!reaped)
                                        (void) usleep(10000);
                        }
                        if (!reaped) {
                                (void) kill(m->running->pid, SIGTERM);
                                (void) waitpid(m->running->pid, NULL, 0);
                        }
                }
                job_free(m->running);
        }
        while (m->queue) {
                Job *j = m->queue;
                m->queue = j->next;
                job_free(j);
        }
        while (m->vaults) {
                Vault *v = m->vaults;
                m->vaults = v->next;
                v->removed = true;
                if (v->n_jobs == 0)
                        vault_free(v);
        }
        manager_configs_free(m);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        return mfree(m);
}

/* ---- keys exchanged with eve-attestd ---- */

static int keys_json_for(const Blob *escrow, const Blob *share, char **ret) {
        _cleanup_(erase_and_freep) char *e = NULL, *s = NULL;
        char *j;

        if (escrow->data && !(e = base64_encode(escrow->data, escrow->size)))
                return -ENOMEM;
        if (share->data && !(s = base64_encode(share->data, share->size)))
                return -ENOMEM;
        if (asprintf(&j,
                     "{%s%s%s%s%s%s%s}",
                     e ? "\"escrow\":\"" : "",
                     e ?: "",
                     e ? "\"" : "",
                     e && s ? "," : "",
                     s ? "\"share\":\"" : "",
                     s ?: "",
                     s ? "\"" : "") < 0)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* The next (key_type, key) of an a(uay) the caller entered: 1 read, 0 at the end; more than VAULT_KEYS_MAX
 * entries are refused with KeyRejected. */
static int
                read_entry(sd_bus_message *msg,
                           size_t *n_entries,
                           uint32_t *ret_type,
                           const void **ret_key,
                           size_t *ret_size,
                           sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'r', "uay");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(msg, "u", ret_type);
        if (r >= 0)
                r = sd_bus_message_read_array(msg, 'y', ret_key, ret_size);
        if (r >= 0)
                r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        if (++*n_entries > VAULT_KEYS_MAX)
                return sd_bus_error_setf(
                                error, VAULT_ERR("KeyRejected"), "More than %u entries.", VAULT_KEYS_MAX);
        return 1;
}

typedef struct Submitted {
        Vault *vault;
        Blob escrow, share;
        uint32_t escrow_type;
        Blob escrow_entry; /* the entry's key as received, kept for re-upload */
} Submitted;

static Submitted *submitted_for(Submitted *s, size_t *n, Vault *v) {
        for (size_t i = 0; i < *n; i++)
                if (s[i].vault == v)
                        return &s[i];
        if (*n >= VAULT_KEYS_MAX)
                return NULL;
        s[*n] = (Submitted){ .vault = v };
        return &s[(*n)++];
}

int manager_submit_keys(Manager *m, sd_bus_message *msg, unsigned *ret_served, sd_bus_error *error) {
        Submitted sub[VAULT_KEYS_MAX] = {};
        size_t n_sub = 0, n_entries = 0;
        _cleanup_free_ char *refused = NULL;
        unsigned served = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "(uay)");
        if (r < 0)
                return r;
        for (;;) {
                const void *key;
                size_t size;
                uint32_t type;
                const char *why = NULL;
                Vault *v = NULL;
                Submitted *s;

                r = read_entry(msg, &n_entries, &type, &key, &size, error);
                if (r < 0)
                        goto finish;
                if (r == 0)
                        break;

                if (type == KEY_TYPE_VAULT_ESCROW) {
                        _cleanup_(proto_freep) Org__Eve__Trust__EveVaultEscrow *e = NULL;

                        if (PROTO_UNPACK(&org__eve__trust__eve_vault_escrow__descriptor,
                                         key,
                                         size,
                                         4096,
                                         &e) < 0)
                                why = "not an EveVaultEscrow";
                        else if (!(v = manager_find_vault_by_uuid(m, e->vault_uuid)))
                                why = "no vault with this UUID here";
                        else if (!(s = submitted_for(sub, &n_sub, v)))
                                why = "too many vaults";
                        else if (e->generation != v->generation && v->rotation != ROTATION_UNCONFIRMED) {
                                log_notice("Vault %s: ignoring the controller's escrow of generation "
                                           "%" PRIu64 " (current %" PRIu64 ").",
                                           v->name,
                                           e->generation,
                                           v->generation);
                                continue;
                        } else if (blob_set(&s->escrow, e->data.data, e->data.len) < 0 ||
                                   blob_set(&s->escrow_entry, key, size) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        } else
                                s->escrow_type = type;
                } else if (type == KEY_TYPE_VSK) {
                        /* EVE's entry: the escrow of the default vault, V1 or legacy. */
                        if (!(v = manager_find_vault(m, VAULT_DEFAULT_IMAGE)))
                                why = "no default vault";
                        else if (!(s = submitted_for(sub, &n_sub, v)))
                                why = "too many vaults";
                        else if (blob_set(&s->escrow, key, size) < 0 ||
                                 blob_set(&s->escrow_entry, key, size) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        } else
                                s->escrow_type = type;
                } else if (type == KEY_TYPE_SHARE) {
                        VaultShare share;

                        if (vault_share_parse(key, size, &share, &why) < 0)
                                ;
                        else if (!(v = manager_find_vault_by_uuid(m, share.vault_uuid)))
                                why = "no vault with this UUID here";
                        else if (!(s = submitted_for(sub, &n_sub, v)))
                                why = "too many vaults";
                        else if (blob_set(&s->share, key, size) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        }
                } else {
                        log_debug("SubmitKeys: ignoring an entry of type %u.", type);
                        continue;
                }
                if (why) {
                        char *t = NULL;
                        log_warning("SubmitKeys: entry %zu (type %u) refused: %s.",
                                    n_entries - 1,
                                    type,
                                    why);
                        if (asprintf(&t,
                                     "%s%sentry %zu (type %u): %s",
                                     refused ?: "",
                                     refused ? "; " : "",
                                     n_entries - 1,
                                     type,
                                     why) >= 0) {
                                free(refused);
                                refused = t;
                        }
                        if (v) {
                                vault_set_error(v, VAULT_ERROR_KEY_REJECTED, why);
                                vault_emit_changed(v);
                        }
                }
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto finish;

        for (size_t i = 0; i < n_sub; i++) {
                Submitted *s = &sub[i];
                Vault *v = s->vault;
                bool wants_share = v->rotation == ROTATION_REQUESTED &&
                                key_source_needs_controller(v->requested_key_source);
                Job *j;

                if (s->escrow_entry.data) {
                        /* The controller's copy: uploaded again with the next STORE_KEYS unless a fresher
                         * blob exists by then. */
                        v->received_type = s->escrow_type;
                        blob_done(&v->received);
                        v->received = s->escrow_entry;
                        s->escrow_entry = (Blob){};
                }
                if (v->state == VAULT_UNLOCKED && !(s->share.data && wants_share))
                        continue; /* nothing to do: open already */
                if (v->n_jobs > 0 && v->state == VAULT_DELETING)
                        continue;
                j = job_new(v, JOB_UNLOCK, NULL);
                if (!j) {
                        r = -ENOMEM;
                        goto finish;
                }
                r = keys_json_for(&s->escrow, &s->share, &j->keys_json);
                if (r < 0) {
                        job_free(j);
                        goto finish;
                }
                log_info("Vault %s: key material from the controller (%s%s%s), unlocking.",
                         v->name,
                         s->escrow.data ? "escrow" : "",
                         s->escrow.data && s->share.data ? " and " : "",
                         s->share.data ? "share" : "");
                job_enqueue(j);
                served++;
        }
        if (served == 0 && refused) {
                r = sd_bus_error_setf(error, VAULT_ERR("KeyRejected"), "No entry was usable: %s.", refused);
                goto finish;
        }
        *ret_served = served;
        r = 0;
finish:
        for (size_t i = 0; i < n_sub; i++) {
                if (sub[i].escrow.data)
                        erase(sub[i].escrow.data, sub[i].escrow.size);
                if (sub[i].share.data)
                        erase(sub[i].share.data, sub[i].share.size);
                blob_done(&sub[i].escrow);
                blob_done(&sub[i].share);
                blob_done(&sub[i].escrow_entry);
        }
        return r;
}

static int append_entry(sd_bus_message *reply, uint32_t type, const void *p, size_t n) {
        int r = sd_bus_message_open_container(reply, 'r', "uay");
        if (r >= 0)
                r = sd_bus_message_append(reply, "u", type);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', p, n);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int escrow_entry(const Vault *v, uint8_t **ret, size_t *ret_size) {
        Org__Eve__Trust__EveVaultEscrow e = ORG__EVE__TRUST__EVE_VAULT_ESCROW__INIT;

        e.vault_uuid = (char *) v->uuid;
        e.generation = v->escrow_generation;
        e.data = (ProtobufCBinaryData){ .len = v->escrow_blob.size, .data = v->escrow_blob.data };
        return PROTO_PACK(&e, ret, ret_size);
}

static bool wants_share(const Vault *v) {
        return v->rotation == ROTATION_REQUESTED && key_source_needs_controller(v->requested_key_source) &&
                        v->uuid[0];
}

bool manager_escrow_pending(Manager *m) {
        for (Vault *v = m->vaults; v; v = v->next)
                if (vault_escrow_pending(v))
                        return true;
        return false;
}

int manager_escrow_keys(Manager *m, sd_bus_message *reply) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(uay)");
        if (r < 0)
                return r;
        for (Vault *v = m->vaults; v; v = v->next) {
                if (v->escrow_blob.data) {
                        _cleanup_free_ uint8_t *p = NULL;
                        size_t n;

                        r = escrow_entry(v, &p, &n);
                        if (r >= 0)
                                r = append_entry(reply, KEY_TYPE_VAULT_ESCROW, p, n);
                } else if (v->received.data)
                        r = append_entry(reply, v->received_type, v->received.data, v->received.size);
                if (r >= 0 && wants_share(v)) {
                        _cleanup_free_ uint8_t *p = NULL;
                        size_t n;

                        r = vault_share_request_pack(v->uuid, &p, &n);
                        if (r >= 0)
                                r = append_entry(reply, KEY_TYPE_SHARE_REQUEST, p, n);
                }
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

int manager_confirm_escrow(Manager *m, sd_bus_message *msg, sd_bus_error *error) {
        size_t n_entries = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "(uay)");
        if (r < 0)
                return r;
        for (;;) {
                const void *key;
                size_t size;
                uint32_t type;

                r = read_entry(msg, &n_entries, &type, &key, &size, error);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (type != KEY_TYPE_VAULT_ESCROW)
                        continue;
                for (Vault *v = m->vaults; v; v = v->next) {
                        _cleanup_free_ uint8_t *p = NULL;
                        size_t n;
                        Job *j;

                        if (!v->escrow_blob.data || escrow_entry(v, &p, &n) < 0 || n != size ||
                            memcmp(p, key, n) != 0)
                                continue;
                        if (v->escrow == ESCROW_CONFIRMED && v->rotation != ROTATION_UNCONFIRMED)
                                break; /* nothing to write */
                        j = job_new(v, JOB_CONFIRM, NULL);
                        if (!j)
                                return -ENOMEM;
                        j->generation = v->escrow_generation;
                        log_info("Vault %s: the controller stores the escrow of generation %" PRIu64 ".",
                                 v->name,
                                 v->escrow_generation);
                        job_enqueue(j);
                        break;
                }
        }
        return sd_bus_message_exit_container(msg);
}
