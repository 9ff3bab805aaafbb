/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config's vault section to eve-vaultd (issue 12): EdgeDevConfig.eve_trust_vaults (extension field
 * 17760, proto/config.proto) and the applications bound to a vault (AppInstanceConfig.eve_trust_vault_uuid),
 * handed over with org.eve.Vault.Manager.ApplyConfig after every new config (fetched or loaded from the
 * config vault) and whenever eve-vaultd (re)appears on the bus. eve-vaultd validates and converges
 * (vaultd-converge.c); what it refused it reports in ConfiguredVaults, which the info report carries to the
 * controller. */
#include "configd-manager.h"
#include "log.h"

typedef Org__Lfedge__Eve__Config__EveTrustVaultConfig VaultConfigMsg;
typedef Org__Lfedge__Eve__Config__AppInstanceConfig AppConfig;

static const char *key_source_name(int k, char *buf, size_t size) {
        switch (k) {
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_UNSPECIFIED:
                return "";
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_TPM:
                return "tpm";
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_TPM_AND_CONTROLLER:
                return "tpm+controller";
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_CONTROLLER:
                return "controller";
        default: /* eve-vaultd refuses it by name */
                (void) snprintf(buf, size, "unknown-%d", k);
                return buf;
        }
}

static const char *desired_name(int d, char *buf, size_t size) {
        switch (d) {
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_DESIRED_STATE__EVE_TRUST_VAULT_DESIRED_STATE_UNSPECIFIED:
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_DESIRED_STATE__EVE_TRUST_VAULT_DESIRED_STATE_UNLOCKED:
                return "unlocked";
        case ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_DESIRED_STATE__EVE_TRUST_VAULT_DESIRED_STATE_LOCKED:
                return "locked";
        default:
                (void) snprintf(buf, size, "unknown-%d", d);
                return buf;
        }
}

static int append_vault(sd_bus_message *m, const VaultConfigMsg *v) {
        const Org__Lfedge__Eve__Config__UUIDandVersion *id = v->uuidandversion;
        char ks[32], ds[32];
        int r;

        r = sd_bus_message_open_container(m, 'r', "ssstsauust");
        if (r >= 0)
                r = sd_bus_message_append(
                                m,
                                "ssst",
                                id && id->uuid ? id->uuid : "",
                                id && id->version ? id->version : "",
                                v->name ?: "",
                                v->size_limit_bytes);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", key_source_name(v->key_source, ks, sizeof ks));
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'u', v->pcr_indices, v->n_pcr_indices * sizeof(uint32_t));
        if (r >= 0)
                r = sd_bus_message_append(
                                m,
                                "ust",
                                v->policy_id,
                                desired_name(v->desired_state, ds, sizeof ds),
                                v->key_generation);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* The application's unit instance: its display name, else its UUID, escaped as systemd-escape does (the same
 * name its cloud-init secret's default ACL uses, docs/CONFIG.md). */
static int append_app(sd_bus_message *m, const AppConfig *a) {
        _cleanup_free_ char *esc = NULL;
        const char *item = a->displayname;

        if (isempty(a->eve_trust_vault_uuid))
                return 0;
        if (isempty(item) && a->uuidandversion)
                item = a->uuidandversion->uuid;
        if (isempty(item))
                return 0;
        esc = unit_name_escape(item);
        if (!esc)
                return -ENOMEM;
        return sd_bus_message_append(m, "(ss)", esc, a->eve_trust_vault_uuid);
}

static int on_applied(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *uuid, *name, *version, *why;
        unsigned refused = 0, total = 0;

        if (e) {
                log_warning("eve-vaultd did not take the vault configuration: %s", e->message ?: e->name);
                return 0;
        }
        if (sd_bus_message_enter_container(reply, 'a', "(ssss)") < 0)
                return 0;
        while (sd_bus_message_read(reply, "(ssss)", &uuid, &name, &version, &why) > 0) {
                total++;
                if (isempty(why))
                        continue;
                refused++;
                log_warning("Vault %s (%s, version %s) refused by eve-vaultd: %s", name, uuid, version, why);
        }
        log_info("Vault configuration handed to eve-vaultd: %u vaults, %u refused.", total, refused);
        return 0;
}

int manager_vaults_apply(Manager *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        const EdgeDevConfig *c;
        int r;

        if (!m->bus || !m->config || !m->config->response || !(c = m->config->response->config))
                return 0;
        r = sd_bus_message_new_method_call(
                        m->bus,
                        &msg,
                        VAULT_BUS_NAME,
                        VAULT_MANAGER_PATH,
                        VAULT_MANAGER_INTERFACE,
                        "ApplyConfig");
        if (r >= 0)
                /* Never start eve-vaultd for this: it reads its own journal when it starts, and we call
                 * again when it appears. */
                r = sd_bus_message_set_auto_start(msg, false);
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(ssstsauust)");
        for (size_t i = 0; r >= 0 && i < c->n_eve_trust_vaults; i++)
                r = append_vault(msg, c->eve_trust_vaults[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < c->n_apps; i++)
                r = append_app(msg, c->apps[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_call_async(m->bus, NULL, msg, on_applied, m, 0);
        if (r < 0)
                return log_warning_errno(r, "Cannot hand the vault configuration to eve-vaultd: %m");
        return 0;
}
