/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reports to the controller (facts/eve-api.md §1.8): ZInfoMsg{ZInfoDevice} to /id/<uuid>/info with the TPM
 * status (HSMStatus, from eve-tpm-setup's status file), the vault list with status and errors (from
 * org.eve.Vault), the attestation state and last error (from org.eve.Attest); and the cipher counters as EVE
 * reports them, ZMetricMsg{deviceMetric.cipher} to /id/<uuid>/metrics. At start and every info_interval. */
#include <time.h>

#include "configd-manager.h"
#include "crypto-util.h"
#include "info.pb-c.h"
#include "log.h"
#include "metrics.pb-c.h"
#include "paths.h"
#include "proto-util.h"

#define VAULTS_MAX 64U
#define AGENT_NAME "eve-configd"

typedef Org__Lfedge__Eve__Info__ZInfoMsg ZInfoMsg;
typedef Org__Lfedge__Eve__Info__ZInfoDevice ZInfoDevice;
typedef Org__Lfedge__Eve__Info__VaultInfo VaultInfo;
typedef Org__Lfedge__Eve__Info__ErrorInfo ErrorInfo;
typedef Org__Lfedge__Eve__Info__DeviceEntity DeviceEntity;
typedef Org__Lfedge__Eve__Info__DataSecAtRest DataSecAtRest;
typedef Org__Lfedge__Eve__Info__AttestationInfo AttestationInfo;
typedef Google__Protobuf__Timestamp Timestamp;

typedef Org__Lfedge__Eve__Info__EveTrustVaultStatus VaultStatus;

/* One vault as org.eve.Vault shows it (its per-vault properties), for VaultInfo and its extension. */
typedef struct VaultReport {
        char *name;
        char *state;
        char *error;
        bool have_status; /* the properties below were read */
        char *uuid, *unlock_method, *escrow, *key_source, *pcr_policy, *last_op, *last_op_result;
        uint32_t moved_pcrs, pcrs;
        uint64_t generation, last_op_usec;
} VaultReport;

/* One entry of org.eve.Vault.Manager.ConfiguredVaults: the controller's vault as eve-vaultd took it. */
typedef struct ConfiguredReport {
        char *uuid, *name, *version, *refusal;
} ConfiguredReport;

typedef struct InfoRound InfoRound;

/* One vault's GetAll, answered into round->vaults[index]. */
typedef struct VaultQuery {
        InfoRound *round;
        size_t index;
} VaultQuery;

/* What one report gathers before it is sent. The manager lists the rounds still waiting for bus answers,
 * so that configd stopping mid-round frees them (the answers never come once the bus is closed). */
struct InfoRound {
        Manager *m;
        InfoRound *next, **prevp;
        uint32_t attest_state;
        char *attest_error;
        bool have_attest;
        VaultReport vaults[VAULTS_MAX];
        size_t n_vaults;
        bool have_vaults;
        ConfiguredReport configured[VAULTS_MAX];
        size_t n_configured;
        VaultQuery queries[VAULTS_MAX];
        unsigned pending; /* bus calls outstanding */
};

static void info_round_free(InfoRound *r) {
        if (!r)
                return;
        if (r->prevp) {
                *r->prevp = r->next;
                if (r->next)
                        r->next->prevp = r->prevp;
        }
        free(r->attest_error);
        for (size_t i = 0; i < r->n_vaults; i++) {
                VaultReport *v = &r->vaults[i];
                free(v->name);
                free(v->state);
                free(v->error);
                free(v->uuid);
                free(v->unlock_method);
                free(v->escrow);
                free(v->key_source);
                free(v->pcr_policy);
                free(v->last_op);
                free(v->last_op_result);
        }
        for (size_t i = 0; i < r->n_configured; i++) {
                free(r->configured[i].uuid);
                free(r->configured[i].name);
                free(r->configured[i].version);
                free(r->configured[i].refusal);
        }
        free(r);
}

static Timestamp now_timestamp(void) {
        struct timespec ts;
        Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

        clock_gettime(CLOCK_REALTIME, &ts);
        t.seconds = ts.tv_sec;
        t.nanos = (int32_t) ts.tv_nsec;
        return t;
}

static Org__Lfedge__Eve__Info__HwSecurityModuleStatus hsm_status(void) {
        _cleanup_free_ char *path = eve_path_join(EVE_PATH_STATUS, "tpm-status"), *text = NULL;
        size_t n;

        if (!path || crypto_read_file(path, false, &text, &n) < 0)
                return ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__UNKNOWN;
        if (strncmp(text, "ENABLED", 7) == 0)
                return ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__ENABLED;
        if (strncmp(text, "DISABLED", 8) == 0)
                return ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__DISABLED;
        if (strncmp(text, "NOTFOUND", 8) == 0)
                return ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__NOTFOUND;
        return ORG__LFEDGE__EVE__INFO__HW_SECURITY_MODULE_STATUS__UNKNOWN;
}

/* A vault's State (org.eve.Vault) as EVE's DataSecAtRestStatus. */
static Org__Lfedge__Eve__Info__DataSecAtRestStatus vault_status(const char *state, const char *error) {
        if (streq_ptr(state, "Unlocked"))
                return ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ENABLED;
        if (!isempty(error) || streq_ptr(state, "Failed") || streq_ptr(state, "Error"))
                return ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR;
        if (streq_ptr(state, "Locked"))
                return ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR;
        return ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_UNKNOWN;
}

/* ---- the extension (info.proto EveTrustVaultStatus) ---- */

static Org__Lfedge__Eve__Info__EveTrustVaultState trust_state(const char *s) {
        static const char *const names[] = { "",         "Creating", "Locked",  "Unlocking",
                                             "Unlocked", "Error",    "Deleting" };

        for (size_t i = 1; i < ELEMENTSOF(names); i++)
                if (streq_ptr(s, names[i]))
                        return (Org__Lfedge__Eve__Info__EveTrustVaultState) i;
        if (streq_ptr(s, "Locking"))
                return ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_UNLOCKED;
        return ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_UNSPECIFIED;
}

/* tpm+controller counts as CONTROLLER: the key needed the controller's share. */
static Org__Lfedge__Eve__Info__EveTrustUnlockMethod trust_unlock(const char *s) {
        if (streq_ptr(s, "tpm"))
                return ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_TPM;
        if (streq_ptr(s, "controller") || streq_ptr(s, "tpm+controller"))
                return ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_CONTROLLER;
        if (streq_ptr(s, "recovery"))
                return ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_RECOVERY;
        return ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_NONE;
}

static Org__Lfedge__Eve__Info__EveTrustEscrowState trust_escrow(const char *s) {
        if (streq_ptr(s, "pending"))
                return ORG__LFEDGE__EVE__INFO__EVE_TRUST_ESCROW_STATE__EVE_TRUST_ESCROW_STATE_PENDING;
        if (streq_ptr(s, "confirmed"))
                return ORG__LFEDGE__EVE__INFO__EVE_TRUST_ESCROW_STATE__EVE_TRUST_ESCROW_STATE_CONFIRMED;
        return ORG__LFEDGE__EVE__INFO__EVE_TRUST_ESCROW_STATE__EVE_TRUST_ESCROW_STATE_NONE;
}

static Org__Lfedge__Eve__Config__EveTrustVaultKeySource trust_key_source(const char *s) {
        if (streq_ptr(s, "tpm"))
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_TPM;
        if (streq_ptr(s, "tpm+controller"))
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_TPM_AND_CONTROLLER;
        if (streq_ptr(s, "controller"))
                return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_CONTROLLER;
        return ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_UNSPECIFIED;
}

static size_t mask_to_list(uint32_t mask, uint32_t *out) {
        size_t n = 0;
        for (uint32_t i = 0; i < 32; i++)
                if (mask & (UINT32_C(1) << i))
                        out[n++] = i;
        return n;
}

/* Storage for one VaultInfo's extension while the report is packed. */
typedef struct StatusSlot {
        VaultStatus st;
        Timestamp at;
        uint32_t moved[32], pcrs[32];
} StatusSlot;

static const ConfiguredReport *configured_for(const InfoRound *round, const char *uuid, const char *name) {
        for (size_t i = 0; i < round->n_configured; i++)
                if ((!isempty(uuid) && strcasecmp(round->configured[i].uuid, uuid) == 0) ||
                    (isempty(uuid) && streq_ptr(round->configured[i].name, name)))
                        return &round->configured[i];
        return NULL;
}

static void fill_status(const InfoRound *round, const VaultReport *v, StatusSlot *s) {
        const ConfiguredReport *c = configured_for(round, v->uuid, v->name);
        const char *policy = v->pcr_policy ? strstr(v->pcr_policy, "policy:") : NULL;

        s->st = (VaultStatus) ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATUS__INIT;
        s->st.uuid = v->uuid ?: (char *) "";
        s->st.config_version = c ? c->version : (char *) "";
        s->st.state = trust_state(v->state);
        s->st.unlock_method = trust_unlock(v->unlock_method);
        s->st.n_moved_pcrs = mask_to_list(v->moved_pcrs, s->moved);
        s->st.moved_pcrs = s->moved;
        s->st.escrow_state = trust_escrow(v->escrow);
        s->st.key_generation = v->generation;
        s->st.key_source = trust_key_source(v->key_source);
        s->st.n_pcr_indices = mask_to_list(v->pcrs, s->pcrs);
        s->st.pcr_indices = s->pcrs;
        s->st.policy_id = policy ? (uint32_t) strtoul(policy + 7, NULL, 10) : 0;
        s->st.last_operation = v->last_op ?: (char *) "";
        s->st.last_operation_ok = streq_ptr(v->last_op_result, "success");
        s->st.last_error = v->error ?: (char *) "";
        if (v->last_op_usec) {
                s->at = (Timestamp) GOOGLE__PROTOBUF__TIMESTAMP__INIT;
                s->at.seconds = (int64_t) (v->last_op_usec / USEC_PER_SEC);
                s->at.nanos = (int32_t) (v->last_op_usec % USEC_PER_SEC * 1000);
                s->st.last_operation_time = &s->at;
        }
        if (c && !isempty(c->refusal)) {
                /* The controller's latest entry for this vault was refused; the vault stays as it was. */
                s->st.last_operation = (char *) "apply-config";
                s->st.last_operation_ok = false;
                s->st.last_error = c->refusal;
        }
}

static void on_posted(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        Manager *m = userdata;

        m->info_request = NULL;
        if (error < 0)
                log_warning("Posting the info report failed: %s", controller_client_last_error(c));
        else
                m->info_sent++;
}

static void on_metrics_posted(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        if (error < 0)
                log_debug("Posting the cipher metrics failed: %s", controller_client_last_error(c));
}

static int post_metrics(Manager *m) {
        Org__Lfedge__Eve__Metrics__ZMetricMsg msg = ORG__LFEDGE__EVE__METRICS__ZMETRIC_MSG__INIT;
        Org__Lfedge__Eve__Metrics__DeviceMetric dm = ORG__LFEDGE__EVE__METRICS__DEVICE_METRIC__INIT;
        Org__Lfedge__Eve__Metrics__CipherMetric cm = ORG__LFEDGE__EVE__METRICS__CIPHER_METRIC__INIT,
                                                *cmp = &cm;
        Org__Lfedge__Eve__Metrics__TypeCounter tc[_CIPHER_ERROR_MAX], *tcp[_CIPHER_ERROR_MAX];
        Timestamp at = now_timestamp(), ls = GOOGLE__PROTOBUF__TIMESTAMP__INIT,
                  lf = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        _cleanup_free_ char *path = NULL;
        char uuid[37];
        int r;

        r = controller_read_uuid(uuid);
        if (r < 0)
                return r;
        r = controller_device_path("metrics", &path);
        if (r < 0)
                return r;
        cm.agent_name = (char *) AGENT_NAME;
        cm.failure_count = m->metrics.failure;
        cm.success_count = m->metrics.success;
        if (m->metrics.last_success) {
                ls.seconds = (int64_t) (m->metrics.last_success / USEC_PER_SEC);
                cm.last_success = &ls;
        }
        if (m->metrics.last_failure) {
                lf.seconds = (int64_t) (m->metrics.last_failure / USEC_PER_SEC);
                cm.last_failure = &lf;
        }
        for (size_t i = 1; i < _CIPHER_ERROR_MAX; i++) {
                if (m->metrics.by_error[i] == 0)
                        continue;
                tc[cm.n_tc] = (Org__Lfedge__Eve__Metrics__TypeCounter)
                                ORG__LFEDGE__EVE__METRICS__TYPE_COUNTER__INIT;
                tc[cm.n_tc].error_code = (Org__Lfedge__Eve__Metrics__CipherError) i;
                tc[cm.n_tc].count = m->metrics.by_error[i];
                tcp[cm.n_tc] = &tc[cm.n_tc];
                cm.n_tc++;
        }
        cm.tc = tcp;
        dm.n_cipher = 1;
        dm.cipher = &cmp;
        msg.devid = uuid;
        msg.attimestamp = &at;
        msg.metric_content_case = ORG__LFEDGE__EVE__METRICS__ZMETRIC_MSG__METRIC_CONTENT_DM;
        msg.dm = &dm;
        return controller_client_post(m->client, path, &msg.base, 0, on_metrics_posted, m, NULL);
}

static void info_post(InfoRound *round) {
        Manager *m = round->m;
        ZInfoMsg msg = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INIT;
        ZInfoDevice dev = ORG__LFEDGE__EVE__INFO__ZINFO_DEVICE__INIT;
        DataSecAtRest dsar = ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST__INIT;
        AttestationInfo ai = ORG__LFEDGE__EVE__INFO__ATTESTATION_INFO__INIT;
        ErrorInfo aerr = ORG__LFEDGE__EVE__INFO__ERROR_INFO__INIT;
        DeviceEntity aent = ORG__LFEDGE__EVE__INFO__DEVICE_ENTITY__INIT, *aentp = &aent;
        VaultInfo vi[2 * VAULTS_MAX], *vip[2 * VAULTS_MAX];
        ErrorInfo verr[2 * VAULTS_MAX];
        DeviceEntity vent[2 * VAULTS_MAX], *ventp[2 * VAULTS_MAX];
        _cleanup_free_ StatusSlot *slots = calloc(2 * VAULTS_MAX, sizeof(StatusSlot));
        size_t n = round->n_vaults;
        Timestamp at = now_timestamp();
        _cleanup_free_ char *path = NULL;
        char uuid[37];
        int r;

        if (!slots) {
                log_oom();
                return;
        }
        if (controller_read_uuid(uuid) < 0 || controller_device_path("info", &path) < 0) {
                log_debug("No device UUID yet: no info report.");
                return;
        }

        dev.hsmstatus = hsm_status();
        for (size_t i = 0; i < round->n_vaults; i++) {
                VaultReport *v = &round->vaults[i];

                vi[i] = (VaultInfo) ORG__LFEDGE__EVE__INFO__VAULT_INFO__INIT;
                vi[i].name = v->name;
                vi[i].status = vault_status(v->state, v->error);
                vi[i].pcrstatus = ORG__LFEDGE__EVE__INFO__PCRSTATUS__PCR_ENABLED;
                if (!isempty(v->error) ||
                    vi[i].status == ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR) {
                        verr[i] = (ErrorInfo) ORG__LFEDGE__EVE__INFO__ERROR_INFO__INIT;
                        vent[i] = (DeviceEntity) ORG__LFEDGE__EVE__INFO__DEVICE_ENTITY__INIT;
                        vent[i].entity = ORG__LFEDGE__EVE__INFO__ENTITY__ENTITY_VAULT;
                        vent[i].entity_name = v->name;
                        ventp[i] = &vent[i];
                        verr[i].description = !isempty(v->error) ? v->error : v->state;
                        verr[i].timestamp = &at;
                        verr[i].severity = ORG__LFEDGE__EVE__INFO__SEVERITY__SEVERITY_ERROR;
                        verr[i].n_entities = 1;
                        verr[i].entities = &ventp[i];
                        vi[i].vaulterr = &verr[i];
                }
                if (v->have_status) {
                        fill_status(round, v, &slots[i]);
                        vi[i].eve_trust_status = &slots[i].st;
                }
                vip[i] = &vi[i];
        }
        /* The controller's vaults eve-vaultd refused and does not have: their refusal. */
        for (size_t k = 0; k < round->n_configured && n < 2 * VAULTS_MAX; k++) {
                const ConfiguredReport *c = &round->configured[k];
                bool present = false;

                for (size_t i = 0; i < round->n_vaults; i++)
                        present = present ||
                                        (round->vaults[i].uuid &&
                                         strcasecmp(round->vaults[i].uuid, c->uuid) == 0);
                if (present || isempty(c->refusal))
                        continue;
                vi[n] = (VaultInfo) ORG__LFEDGE__EVE__INFO__VAULT_INFO__INIT;
                vi[n].name = c->name;
                vi[n].status = ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR;
                verr[n] = (ErrorInfo) ORG__LFEDGE__EVE__INFO__ERROR_INFO__INIT;
                vent[n] = (DeviceEntity) ORG__LFEDGE__EVE__INFO__DEVICE_ENTITY__INIT;
                vent[n].entity = ORG__LFEDGE__EVE__INFO__ENTITY__ENTITY_VAULT;
                vent[n].entity_name = c->name;
                ventp[n] = &vent[n];
                verr[n].description = c->refusal;
                verr[n].timestamp = &at;
                verr[n].severity = ORG__LFEDGE__EVE__INFO__SEVERITY__SEVERITY_ERROR;
                verr[n].n_entities = 1;
                verr[n].entities = &ventp[n];
                vi[n].vaulterr = &verr[n];
                slots[n].st = (VaultStatus) ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATUS__INIT;
                slots[n].st.uuid = c->uuid;
                slots[n].st.config_version = c->version;
                slots[n].st.state =
                                ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_ERROR;
                slots[n].st.last_operation = (char *) "apply-config";
                slots[n].st.last_error = c->refusal;
                slots[n].st.last_operation_time = &at;
                vi[n].eve_trust_status = &slots[n].st;
                vip[n] = &vi[n];
                n++;
        }
        dsar.n_vaultlist = n;
        dsar.vaultlist = vip;
        dsar.status = n > 0 ? vi[0].status
                            : ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_UNKNOWN;
        dev.datasecatrestinfo = &dsar;

        if (round->have_attest) {
                ai.state = (Org__Lfedge__Eve__Info__AttestationState) MIN(round->attest_state, 7U);
                if (!isempty(round->attest_error)) {
                        aent.entity = ORG__LFEDGE__EVE__INFO__ENTITY__ENTITY_ATTESTATION;
                        aerr.description = round->attest_error;
                        aerr.timestamp = &at;
                        aerr.severity = ORG__LFEDGE__EVE__INFO__SEVERITY__SEVERITY_ERROR;
                        aerr.n_entities = 1;
                        aerr.entities = &aentp;
                        ai.error = &aerr;
                }
                dev.attestation_info = &ai;
        }

        msg.ztype = ORG__LFEDGE__EVE__INFO__ZINFO_TYPES__ZiDevice;
        msg.devid = uuid;
        msg.attimestamp = &at;
        msg.info_content_case = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO;
        msg.dinfo = &dev;

        r = controller_client_post(m->client, path, &msg.base, 0, on_posted, m, &m->info_request);
        if (r < 0)
                log_warning("Cannot post the info report: %s", controller_client_last_error(m->client));
        r = post_metrics(m);
        if (r < 0)
                log_debug_errno(r, "Cannot post the cipher metrics: %m");
}

/* A report that caught a vault on its way (Creating, Unlocking, Locking, Deleting: at boot, the first report
 * comes 2 s after start, often before the vaults are open or found locked) is followed by another soon, so
 * that the controller learns where each vault ended (its moved PCRs, its error) without waiting for the
 * interval. Bounded: at most INFO_SETTLE_MAX follow-ups in a row, then the interval again. */
#define INFO_SETTLE_USEC (5 * USEC_PER_SEC)
#define INFO_SETTLE_MAX 36

static bool round_settling(const InfoRound *round) {
        static const char *const on_the_way[] = { "Creating", "Unlocking", "Locking", "Deleting" };

        for (size_t i = 0; i < round->n_vaults; i++)
                for (size_t j = 0; j < ELEMENTSOF(on_the_way); j++)
                        if (round->vaults[i].state && streq(round->vaults[i].state, on_the_way[j]))
                                return true;
        return false;
}

static void round_step_done(InfoRound *round) {
        Manager *m = round->m;

        if (--round->pending > 0)
                return;
        info_post(round);
        if (!m->info_timer)
                return;
        if (!round_settling(round))
                m->info_settle = 0;
        else if (m->info_settle < INFO_SETTLE_MAX) {
                m->info_settle++;
                (void) sd_event_source_set_time_relative(m->info_timer, INFO_SETTLE_USEC);
                (void) sd_event_source_set_enabled(m->info_timer, SD_EVENT_ONESHOT);
        }
        info_round_free(round);
}

static int on_attest_all(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        InfoRound *round = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                log_debug("No attestation state for the info report: %s", e->message ?: e->name);
        else if (sd_bus_message_enter_container(reply, 'a', "{sv}") >= 0) {
                while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                        const char *name, *s;
                        int r;

                        if (sd_bus_message_read(reply, "s", &name) < 0)
                                break;
                        if (streq(name, "State"))
                                r = sd_bus_message_read(reply, "v", "u", &round->attest_state),
                                round->have_attest = r >= 0;
                        else if (streq(name, "LastError")) {
                                r = sd_bus_message_read(reply, "v", "s", &s);
                                if (r >= 0)
                                        round->attest_error = strdup(s);
                        } else
                                r = sd_bus_message_skip(reply, "v");
                        if (r < 0 || sd_bus_message_exit_container(reply) < 0)
                                break;
                }
        }
        round_step_done(round);
        return 0;
}

static uint32_t read_pcr_mask(sd_bus_message *reply) {
        const uint32_t *p;
        size_t n;
        uint32_t mask = 0;

        if (sd_bus_message_enter_container(reply, 'v', "au") < 0)
                return 0;
        if (sd_bus_message_read_array(reply, 'u', (const void **) &p, &n) >= 0)
                for (size_t i = 0; i < n / sizeof(uint32_t); i++)
                        if (p[i] < 32)
                                mask |= UINT32_C(1) << p[i];
        (void) sd_bus_message_exit_container(reply);
        return mask;
}

/* The vault's properties (GetAll): LastError for EVE's vaultErr, the rest for our extension. */
static int on_vault_props(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        VaultQuery *q = userdata;
        InfoRound *round = q->round;
        VaultReport *v = &round->vaults[q->index];
        static const struct {
                const char *name;
                size_t offset;
        } strs[] = {
                { "LastError", offsetof(VaultReport, error) },
                { "UUID", offsetof(VaultReport, uuid) },
                { "UnlockMethod", offsetof(VaultReport, unlock_method) },
                { "EscrowState", offsetof(VaultReport, escrow) },
                { "KeySource", offsetof(VaultReport, key_source) },
                { "PCRPolicy", offsetof(VaultReport, pcr_policy) },
                { "LastOperation", offsetof(VaultReport, last_op) },
                { "LastOperationResult", offsetof(VaultReport, last_op_result) },
        };

        if (sd_bus_message_is_method_error(reply, NULL) ||
            sd_bus_message_enter_container(reply, 'a', "{sv}") < 0)
                goto done;
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                const char *name, *s;
                bool handled = false;
                int r = 0;

                if (sd_bus_message_read(reply, "s", &name) < 0)
                        break;
                for (size_t i = 0; i < ELEMENTSOF(strs); i++)
                        if (streq(name, strs[i].name)) {
                                char **field = (char **) ((uint8_t *) v + strs[i].offset);
                                r = sd_bus_message_read(reply, "v", "s", &s);
                                if (r >= 0) {
                                        free(*field);
                                        *field = strdup(s);
                                }
                                handled = true;
                        }
                if (handled)
                        ;
                else if (streq(name, "MovedPCRs"))
                        v->moved_pcrs = read_pcr_mask(reply);
                else if (streq(name, "SealingPCRs"))
                        v->pcrs = read_pcr_mask(reply);
                else if (streq(name, "KeyGeneration"))
                        r = sd_bus_message_read(reply, "v", "t", &v->generation);
                else if (streq(name, "LastOperationTime"))
                        r = sd_bus_message_read(reply, "v", "t", &v->last_op_usec);
                else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0 || sd_bus_message_exit_container(reply) < 0)
                        break;
        }
        v->have_status = v->uuid != NULL;
done:
        round_step_done(round);
        return 0;
}

static int on_configured(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        InfoRound *round = userdata;
        const char *uuid, *name, *version, *refusal;

        if (!sd_bus_message_is_method_error(reply, NULL) &&
            sd_bus_message_enter_container(reply, 'v', "a(ssss)") >= 0 &&
            sd_bus_message_enter_container(reply, 'a', "(ssss)") >= 0)
                while (round->n_configured < VAULTS_MAX &&
                       sd_bus_message_read(reply, "(ssss)", &uuid, &name, &version, &refusal) > 0) {
                        ConfiguredReport *c = &round->configured[round->n_configured];
                        c->uuid = strdup(uuid);
                        c->name = strdup(name);
                        c->version = strdup(version);
                        c->refusal = strdup(refusal);
                        round->n_configured++;
                        if (!c->uuid || !c->name || !c->version || !c->refusal)
                                break;
                }
        round_step_done(round);
        return 0;
}

static int on_vaults(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        InfoRound *round = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Manager *m = round->m;

        if (e)
                log_debug("No vault list for the info report: %s", e->message ?: e->name);
        else if (sd_bus_message_enter_container(reply, 'a', "(ssso)") >= 0) {
                const char *name, *uuid, *state, *path;

                while (round->n_vaults < VAULTS_MAX &&
                       sd_bus_message_read(reply, "(ssso)", &name, &uuid, &state, &path) > 0) {
                        VaultReport *v = &round->vaults[round->n_vaults];
                        VaultQuery *q = &round->queries[round->n_vaults];

                        v->name = strdup(name);
                        v->state = strdup(state);
                        v->error = strdup("");
                        if (!v->name || !v->state || !v->error)
                                break;
                        round->n_vaults++;
                        /* Why it is not unlocked (LastError), and the rest of its status. */
                        *q = (VaultQuery){ round, round->n_vaults - 1 };
                        if (sd_bus_call_method_async(
                                            m->bus,
                                            NULL,
                                            VAULT_BUS_NAME,
                                            path,
                                            "org.freedesktop.DBus.Properties",
                                            "GetAll",
                                            on_vault_props,
                                            q,
                                            "s",
                                            VAULT_INTERFACE) >= 0)
                                round->pending++;
                }
                round->have_vaults = true;
        }
        /* Without vaultd's list: at least the config vault, as tracked here. */
        if (round->n_vaults == 0 && m->vault_state) {
                VaultReport *v = &round->vaults[0];
                v->name = strdup(CONFIG_VAULT_NAME);
                v->state = strdup(m->vault_state);
                v->error = strdup("");
                if (v->name && v->state && v->error)
                        round->n_vaults++;
        }
        round_step_done(round);
        return 0;
}

int manager_info_send(Manager *m) {
        InfoRound *round;
        int r;

        if (!m->client || m->info_request)
                return 0;
        round = calloc(1, sizeof *round);
        if (!round)
                return -ENOMEM;
        round->m = m;
        round->next = m->info_rounds;
        if (round->next)
                round->next->prevp = &round->next;
        round->prevp = &m->info_rounds;
        m->info_rounds = round;
        round->pending = 1; /* released below */
        if (m->bus) {
                r = sd_bus_call_method_async(
                                m->bus,
                                NULL,
                                ATTEST_BUS_NAME,
                                ATTEST_OBJECT_PATH,
                                "org.freedesktop.DBus.Properties",
                                "GetAll",
                                on_attest_all,
                                round,
                                "s",
                                ATTEST_INTERFACE);
                if (r >= 0)
                        round->pending++;
                r = sd_bus_call_method_async(
                                m->bus,
                                NULL,
                                VAULT_BUS_NAME,
                                VAULT_MANAGER_PATH,
                                VAULT_MANAGER_INTERFACE,
                                "ListVaults",
                                on_vaults,
                                round,
                                "");
                if (r >= 0)
                        round->pending++;
                r = sd_bus_call_method_async(
                                m->bus,
                                NULL,
                                VAULT_BUS_NAME,
                                VAULT_MANAGER_PATH,
                                "org.freedesktop.DBus.Properties",
                                "Get",
                                on_configured,
                                round,
                                "ss",
                                VAULT_MANAGER_INTERFACE,
                                "ConfiguredVaults");
                if (r >= 0)
                        round->pending++;
        }
        round_step_done(round);
        return 0;
}

void manager_info_rounds_free(Manager *m) {
        while (m->info_rounds)
                info_round_free(m->info_rounds);
}

static int on_info_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) manager_info_send(m);
        (void) sd_event_source_set_time_relative(s, m->info_interval);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

int manager_info_start(Manager *m) {
        int r;

        if (!m->info_enabled || !m->fetch_enabled)
                return 0;
        /* The first report shortly after start, once the first fetch had a chance to set the client up. */
        r = sd_event_add_time_relative(
                        m->event, &m->info_timer, CLOCK_MONOTONIC, 2 * USEC_PER_SEC, 0, on_info_timer, m);
        if (r < 0)
                return log_error_errno(r, "Cannot arm the info timer: %m");
        return 0;
}
