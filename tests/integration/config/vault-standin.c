/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vault-standin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#define VAULT_PATH "/org/eve/Vault/vault/config"
#define VAULT_INTERFACE "org.eve.Vault.Vault"

static int get_state(
                sd_bus *bus,
                const char *path,
                const char *interface,
                const char *property,
                sd_bus_message *reply,
                void *userdata,
                sd_bus_error *error) {

        VaultStandin *v = userdata;
        char s[sizeof v->state];

        pthread_mutex_lock(&v->lock);
        memcpy(s, v->state, sizeof s);
        pthread_mutex_unlock(&v->lock);
        return sd_bus_message_append(reply, "s", s);
}

static const sd_bus_vtable vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static void *serve(void *p) {
        VaultStandin *v = p;
        sd_bus *bus = NULL;

        if (sd_bus_open_system(&bus) < 0 ||
            sd_bus_add_object_vtable(bus, NULL, VAULT_PATH, VAULT_INTERFACE, vtable, v) < 0 ||
            sd_bus_request_name(bus, "org.eve.Vault", 0) < 0) {
                atomic_store(&v->failed, true);
                sd_bus_flush_close_unref(bus);
                return NULL;
        }
        atomic_store(&v->ready, true);
        while (!atomic_load(&v->stop)) {
                if (atomic_exchange(&v->emit, false))
                        (void) sd_bus_emit_properties_changed(bus, VAULT_PATH, VAULT_INTERFACE, "State", NULL);
                if (sd_bus_process(bus, NULL) > 0)
                        continue;
                (void) sd_bus_wait(bus, 20000);
        }
        sd_bus_flush_close_unref(bus);
        return NULL;
}

int vault_standin_start(VaultStandin *v, const char *state) {
        *v = (VaultStandin) {};
        pthread_mutex_init(&v->lock, NULL);
        snprintf(v->state, sizeof v->state, "%s", state);
        if (pthread_create(&v->thread, NULL, serve, v) != 0)
                return -EIO;
        for (int i = 0; i < 500 && !atomic_load(&v->ready) && !atomic_load(&v->failed); i++)
                usleep(10000);
        if (!atomic_load(&v->ready)) {
                vault_standin_stop(v);
                return -EIO;
        }
        return 0;
}

void vault_standin_set(VaultStandin *v, const char *state) {
        pthread_mutex_lock(&v->lock);
        snprintf(v->state, sizeof v->state, "%s", state);
        pthread_mutex_unlock(&v->lock);
        atomic_store(&v->emit, true);
}

void vault_standin_stop(VaultStandin *v) {
        atomic_store(&v->stop, true);
        pthread_join(v->thread, NULL);
        pthread_mutex_destroy(&v->lock);
}
