/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vault-test.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "evetrust.pb-c.h"
#include "proto-util.h"

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        (void) nanosleep(&ts, NULL);
}

void vt_assert_contains(const char *s, const char *part) {
        if (!s || !strstr(s, part))
                test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", s ?: "(null)", part);
}

char *vt_build_path(const char *rel) {
        char *p = NULL;
        ASSERT_OK(asprintf(&p, "%s/%s", getenv("EVE_TEST_BUILDDIR") ?: ".", rel));
        return p;
}

void vt_provision(Swtpm *t, uint8_t pcr_byte) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint8_t d[TPM2_SHA256_SIZE];

        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_SRK, true, NULL));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_DEVICE, true, NULL));
        ASSERT_OK(tpm2_key_ensure(c, TPM2_KEY_ECDH, true, NULL));
        memset(d, pcr_byte, sizeof(d));
        ASSERT_OK(tpm2_pcr_extend(c, 0, d));
        ASSERT_OK(tpm2_pcr_extend(c, 7, d));
}

void vt_extend(Swtpm *t, unsigned pcr, uint8_t byte) {
        _cleanup_(tpm2_context_unrefp) Tpm2Context *c = NULL;
        uint8_t d[TPM2_SHA256_SIZE];

        ASSERT_OK(tpm2_context_new(t->tcti, &c));
        memset(d, byte, sizeof(d));
        ASSERT_OK(tpm2_pcr_extend(c, pcr, d));
}

sd_bus *vt_bus(void) {
        sd_bus *bus = NULL;
        ASSERT_OK(sd_bus_open_system(&bus));
        return bus;
}

char *vt_path(const char *name) {
        char *p = NULL;
        ASSERT_OK(sd_bus_path_encode(VT_MANAGER "/vault", name, &p));
        return p;
}

int vt_call(const char *path,
            const char *iface,
            const char *method,
            sd_bus_error *ret_error,
            sd_bus_message **ret_reply,
            const char *types,
            ...) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, VT_BUS, path, iface, method);
        if (r < 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        r = sd_bus_call(bus, m, 120 * UINT64_C(1000000), &error, &reply);
        if (r < 0)
                log_debug("%s.%s: %s: %s", iface, method, error.name, error.message);
        if (ret_error)
                *ret_error = error;
        else
                sd_bus_error_free(&error);
        if (ret_reply && r >= 0)
                *ret_reply = TAKE_PTR(reply);
        return r;
}

static int get_property(const char *path, const char *iface, const char *property, char type, void *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        if (type == 's') {
                char *s = NULL;
                int r = sd_bus_get_property_string(bus, VT_BUS, path, iface, property, &error, &s);
                if (r >= 0)
                        *(char **) ret = s;
                return r;
        }
        return sd_bus_get_property_trivial(bus, VT_BUS, path, iface, property, &error, type, ret);
}

char *vt_get_str(const char *name, const char *property) {
        _cleanup_free_ char *path = vt_path(name);
        char *s = NULL;
        ASSERT_OK(get_property(path, VT_IFACE, property, 's', &s));
        return s;
}

uint64_t vt_get_u64(const char *name, const char *property) {
        _cleanup_free_ char *path = vt_path(name);
        uint64_t v = 0;
        ASSERT_OK(get_property(path, VT_IFACE, property, 't', &v));
        return v;
}

uint32_t vt_get_u32(const char *name, const char *property) {
        _cleanup_free_ char *path = vt_path(name);
        uint32_t v = 0;
        ASSERT_OK(get_property(path, VT_IFACE, property, 'u', &v));
        return v;
}

bool vt_get_bool_manager(const char *property) {
        int v = 0;
        ASSERT_OK(get_property(VT_MANAGER, VT_MANAGER_IFACE, property, 'b', &v));
        return v;
}

uint32_t vt_get_pcrs(const char *name, const char *property) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *path = vt_path(name);
        const uint32_t *p;
        size_t n;
        uint32_t mask = 0;

        ASSERT_OK(sd_bus_get_property(bus, VT_BUS, path, VT_IFACE, property, NULL, &reply, "au"));
        ASSERT_OK(sd_bus_message_read_array(reply, 'u', (const void **) &p, &n));
        for (size_t i = 0; i < n / sizeof(uint32_t); i++)
                mask |= UINT32_C(1) << p[i];
        return mask;
}

void vt_wait_str(const char *name, const char *property, const char *value) {
        _cleanup_free_ char *last = NULL;

        for (unsigned i = 0; i < 2000; i++) {
                free(last);
                last = vt_get_str(name, property);
                if (streq(last, value))
                        return;
                sleep_ms(10);
        }
        test_fail(__FILE__,
                  __LINE__,
                  "vault %s: %s is \"%s\", not \"%s\", after 20 s",
                  name,
                  property,
                  last,
                  value);
}

static bool transitional(const char *state) {
        return streq(state, "Creating") || streq(state, "Unlocking") || streq(state, "Locking") ||
                        streq(state, "Deleting");
}

void vt_wait_op(const char *name, const char *op, uint64_t since) {
        for (unsigned i = 0; i < 2000; i++) {
                _cleanup_free_ char *state = vt_get_str(name, "State"),
                                    *last = vt_get_str(name, "LastOperation");
                if (vt_get_u64(name, "LastOperationTime") > since && (!op || streq(last, op)) &&
                    !transitional(state))
                        return;
                sleep_ms(10);
        }
        test_fail(__FILE__, __LINE__, "vault %s: no %s finished after 20 s", name, op ?: "operation");
}

/* ---- the daemon ---- */

static int daemon_teardown(void *p) {
        VaultDaemon *d = p;

        if (d->pid > 0)
                (void) test_stop_process(d->pid, 10000);
        free(d->root);
        free(d->log);
        free(d);
        return 0;
}

static void spawn(VaultDaemon *d) {
        _cleanup_free_ char *exe = vt_build_path("services/vaultd/eve-vaultd"),
                            *worker = vt_build_path("services/vaultd/eve-vault-worker");
        char *argv[] = {
                exe, (char *) "--image-size", (char *) "32M", (char *) "--config-size", (char *) "32M", NULL
        };

        ASSERT_OK(setenv("EVE_ROOT", d->root, 1));
        ASSERT_OK(setenv("EVE_TPM2_TCTI", d->tpm->tcti, 1));
        ASSERT_OK(setenv("EVE_VAULT_WORKER", worker, 1));
        if (d->crash_at)
                ASSERT_OK(setenv("EVE_VAULT_WORKER_CRASH_AT", d->crash_at, 1));
        d->pid = test_spawn(argv, d->log, -1);
        ASSERT_OK(d->pid);
        ASSERT_OK(unsetenv("EVE_VAULT_WORKER_CRASH_AT"));
        ASSERT_OK(unsetenv("EVE_ROOT"));
        for (unsigned i = 0; i < 1000 && !test_bus_has_name(VT_BUS); i++)
                sleep_ms(10);
        ASSERT_TRUE(test_bus_has_name(VT_BUS));
        /* Every vault's first unlock (after creating the default ones on a first start). */
        vt_wait_op("config", "unlock", 0);
        vt_wait_op("image", "unlock", 0);
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *name, *uuid, *state, *path;

                ASSERT_OK(vt_call(VT_MANAGER, VT_MANAGER_IFACE, "ListVaults", NULL, &reply, NULL));
                ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(ssso)"));
                /* Any operation: one the daemon could not create (a partition holding data) stays so. */
                while (ASSERT_OK(sd_bus_message_read(reply, "(ssso)", &name, &uuid, &state, &path)) > 0)
                        vt_wait_op(name, NULL, 0);
        }
}

VaultDaemon *vt_daemon_start(Swtpm *t, const char *root, const char *crash_at) {
        VaultDaemon *d = calloc(1, sizeof(*d));

        ASSERT_NOT_NULL(d);
        d->tpm = t;
        d->root = root ? strdup(root) : test_mkdtemp("root");
        ASSERT_NOT_NULL(d->root);
        ASSERT_OK(asprintf(&d->log, "%s/vaultd.log", d->root));
        d->crash_at = crash_at;
        test_defer(daemon_teardown, d);
        spawn(d);
        return d;
}

void vt_daemon_stop(VaultDaemon *d) {
        ASSERT_EQ(test_stop_process(d->pid, 10000), 0); /* SIGTERM ends it cleanly */
        d->pid = 0;
}

VaultDaemon *vt_daemon_restart(VaultDaemon *d, const char *crash_at) {
        if (d->pid > 0)
                vt_daemon_stop(d);
        d->crash_at = crash_at;
        spawn(d);
        return d;
}

/* ---- key entries ---- */

void vt_entries_done(VtEntries *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->e[i].key);
        l->n = 0;
}

void vt_entries_add(VtEntries *l, const VtEntry *e) {
        ASSERT_NOT_NULL(e);
        ASSERT_TRUE(l->n < ELEMENTSOF(l->e));
        l->e[l->n] = *e;
        l->e[l->n].key = malloc(e->size + 1);
        ASSERT_NOT_NULL(l->e[l->n].key);
        memcpy(l->e[l->n].key, e->key, e->size);
        l->n++;
}

void vt_get_escrow_keys(VtEntries *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t type;
        const void *p;
        size_t n;

        ASSERT_OK(vt_call(VT_MANAGER, VT_MANAGER_IFACE, "GetEscrowKeys", NULL, &reply, NULL));
        ret->n = 0;
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "(uay)"));
        while (ASSERT_OK(sd_bus_message_enter_container(reply, 'r', "uay")) > 0) {
                ASSERT_OK(sd_bus_message_read(reply, "u", &type));
                ASSERT_OK(sd_bus_message_read_array(reply, 'y', &p, &n));
                ASSERT_OK(sd_bus_message_exit_container(reply));
                ASSERT_TRUE(ret->n < ELEMENTSOF(ret->e));
                ret->e[ret->n].type = type;
                ret->e[ret->n].key = malloc(n + 1);
                ASSERT_NOT_NULL(ret->e[ret->n].key);
                memcpy(ret->e[ret->n].key, p, n);
                ret->e[ret->n++].size = n;
        }
        ASSERT_OK(sd_bus_message_exit_container(reply));
}

int vt_send_entries(const char *method, const VtEntries *l, sd_bus_error *ret_error, uint32_t *ret_served) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = vt_bus();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        ASSERT_OK(sd_bus_message_new_method_call(bus, &m, VT_BUS, VT_MANAGER, VT_MANAGER_IFACE, method));
        ASSERT_OK(sd_bus_message_open_container(m, 'a', "(uay)"));
        for (size_t i = 0; i < l->n; i++) {
                ASSERT_OK(sd_bus_message_open_container(m, 'r', "uay"));
                ASSERT_OK(sd_bus_message_append(m, "u", l->e[i].type));
                ASSERT_OK(sd_bus_message_append_array(m, 'y', l->e[i].key, l->e[i].size));
                ASSERT_OK(sd_bus_message_close_container(m));
        }
        ASSERT_OK(sd_bus_message_close_container(m));
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r >= 0 && ret_served)
                ASSERT_OK(sd_bus_message_read(reply, "u", ret_served));
        if (ret_error)
                *ret_error = error;
        else
                sd_bus_error_free(&error);
        return r;
}

const VtEntry *vt_find_escrow(const VtEntries *l, const char *uuid) {
        for (size_t i = 0; i < l->n; i++) {
                _cleanup_(proto_freep) Org__Eve__Trust__EveVaultEscrow *e = NULL;

                if (l->e[i].type != 17750)
                        continue;
                ASSERT_OK(
                                PROTO_UNPACK(&org__eve__trust__eve_vault_escrow__descriptor,
                                             l->e[i].key,
                                             l->e[i].size,
                                             4096,
                                             &e));
                if (streq(e->vault_uuid, uuid))
                        return &l->e[i];
        }
        return NULL;
}
