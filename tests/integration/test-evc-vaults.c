/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vaults driven by evc (issue 12, controller side): the vault list and application bindings in the config
 * (extension fields 17760 of proto/config.proto), validation with EVE's rules, config hashes, and the node's
 * vault status (VaultInfo with its extension) shown by the admin commands. Real "evc serve" over TLS, the
 * software device of test-evc-client.c. */
#include <json-c/json.h>

#include "config.pb-c.h"
#include "info.pb-c.h"
#include "proto-util.h"
#include "test-evc-client.h"

#define KS(x) ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_KEY_SOURCE__EVE_TRUST_VAULT_KEY_SOURCE_##x
#define DS(x) ORG__LFEDGE__EVE__CONFIG__EVE_TRUST_VAULT_DESIRED_STATE__EVE_TRUST_VAULT_DESIRED_STATE_##x

/* Runs "evc vault add …" and returns the UUID it prints. */
static char *
                vault_add(Srv *s,
                          Dev *d,
                          const char *name,
                          const char *a1,
                          const char *a2,
                          const char *a3,
                          const char *a4,
                          const char *a5,
                          const char *a6) {
        char *out = NULL;

        ASSERT_EQ(evc_admin(s, &out, "vault", "add", d->uuid, name, a1, a2, a3, a4, a5, a6, NULL), 0);
        ASSERT_GE(strlen(out), 36);
        out[36] = 0;
        return out;
}

static const Org__Lfedge__Eve__Config__EveTrustVaultConfig *
                vault_in(const Org__Lfedge__Eve__Config__EdgeDevConfig *c, const char *uuid) {
        for (size_t i = 0; i < c->n_eve_trust_vaults; i++)
                if (streq(c->eve_trust_vaults[i]->uuidandversion->uuid, uuid))
                        return c->eve_trust_vaults[i];
        return NULL;
}

static const Org__Lfedge__Eve__Config__AppInstanceConfig *
                app_in(const Org__Lfedge__Eve__Config__EdgeDevConfig *c, const char *name) {
        for (size_t i = 0; i < c->n_apps; i++)
                if (streq_ptr(c->apps[i]->displayname, name))
                        return c->apps[i];
        return NULL;
}

/* A fresh config (200) after a change; the previous hash must not come back as 304. */
static Org__Lfedge__Eve__Config__ConfigResponse *next_config(Srv *s, Dev *d, const char *prev) {
        Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;

        ASSERT_EQ(get_config(s, d, prev, d->token, 32, &c), 200);
        ASSERT_TRUE(!prev || !streq(c->confighash, prev));
        return c;
}

static void unchanged(Srv *s, Dev *d, const char *hash) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;
        ASSERT_EQ(get_config(s, d, hash, d->token, 32, &c), 304);
}

TEST(evc_vault_config) {
        Srv *s = srv_start(NULL);
        Dev *d;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c0 = NULL, *c1 = NULL, *c2 = NULL,
                                                                        *c3 = NULL, *c4 = NULL, *c5 = NULL,
                                                                        *c6 = NULL, *c7 = NULL, *c8 = NULL;
        _cleanup_free_ char *u1 = NULL, *u2 = NULL, *u3 = NULL, *out = NULL;
        const Org__Lfedge__Eve__Config__EveTrustVaultConfig *v;

        fetch_certs(s);
        d = dev_ready(s, "SN-V1");
        c0 = next_config(s, d, NULL);
        ASSERT_EQ(c0->config->n_eve_trust_vaults, 0);

        u1 = vault_add(s,
                       d,
                       "data",
                       "--size",
                       "256M",
                       "--key-source",
                       "tpm+controller",
                       "--pcrs",
                       "0,1,2,3,4,7");
        u2 = vault_add(s, d, "logs", NULL, NULL, NULL, NULL, NULL, NULL);
        c1 = next_config(s, d, c0->confighash);
        ASSERT_EQ(c1->config->n_eve_trust_vaults, 2);
        ASSERT_STREQ(c1->config->eve_trust_vaults[0]->name, "data"); /* by name */
        v = vault_in(c1->config, u1);
        ASSERT_NOT_NULL(v);
        ASSERT_STREQ(v->uuidandversion->version, "1");
        ASSERT_EQ(v->size_limit_bytes, UINT64_C(256) << 20);
        ASSERT_EQ(v->key_source, KS(TPM_AND_CONTROLLER));
        ASSERT_EQ(v->n_pcr_indices, 6);
        ASSERT_EQ(v->pcr_indices[5], 7);
        ASSERT_EQ(v->policy_id, 1);
        ASSERT_EQ(v->desired_state, DS(UNLOCKED));
        ASSERT_EQ(v->key_generation, 1);
        v = vault_in(c1->config, u2);
        ASSERT_NOT_NULL(v);
        ASSERT_EQ(v->size_limit_bytes, 0);
        ASSERT_EQ(v->key_source, KS(TPM));
        ASSERT_EQ(v->n_pcr_indices, 0);
        ASSERT_EQ(v->policy_id, 0);

        /* Lock, raise the key generation, change the PCR list (a new policy id), back to the default list.
         */
        ASSERT_EQ(EVC(s, NULL, "vault", "set", d->uuid, "data", "--state", "locked"), 0);
        c2 = next_config(s, d, c1->confighash);
        v = vault_in(c2->config, u1);
        ASSERT_STREQ(v->uuidandversion->version, "2");
        ASSERT_EQ(v->desired_state, DS(LOCKED));
        ASSERT_STREQ(vault_in(c2->config, u2)->uuidandversion->version, "1"); /* the other one untouched */
        ASSERT_EQ(EVC(s, NULL, "vault", "set", d->uuid, u1, "--rotate"), 0);
        c3 = next_config(s, d, c2->confighash);
        v = vault_in(c3->config, u1);
        ASSERT_EQ(v->key_generation, 2);
        ASSERT_STREQ(v->uuidandversion->version, "3");
        ASSERT_EQ(EVC(s, NULL, "vault", "set", d->uuid, "data", "--pcrs", "0,2,4"), 0);
        c4 = next_config(s, d, c3->confighash);
        v = vault_in(c4->config, u1);
        ASSERT_EQ(v->n_pcr_indices, 3);
        ASSERT_EQ(v->policy_id, 2);
        ASSERT_EQ(EVC(s, NULL, "vault", "set", d->uuid, "data", "--pcrs", "0,2,4,8", "--policy-id", "40"),
                  0);
        c5 = next_config(s, d, c4->confighash);
        ASSERT_EQ(vault_in(c5->config, u1)->policy_id, 40);

        /* Refused with a reason, nothing changed (the config hash stays). */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--pcrs", "1,2,3"), 0); /* PCR 0 missing */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--pcrs", "0,5"), 0);   /* PCR 5 */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--pcrs", "0,16"), 0);  /* beyond 15 */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--pcrs", "0,1,1"), 0); /* a repeat */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--pcrs", "zero"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--size", "1M"), 0); /* below 32 MiB */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--size", "lots"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "logs"), 0); /* duplicate name */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "../etc"), 0);
        /* Only names the node gives its vaults (mapping, mount point and unit names come from them). */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "Data"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "my_vault"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "abcdefghijklmnopqrstuvwxyz0123456"), 0); /* 33 */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "image"), 0); /* the node's own */
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "config"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--key-source", "usb"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--state", "ajar"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--uuid", "nope"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "add", d->uuid, "x", "--uuid", u1), 0); /* UUID taken */
        ASSERT_NE(EVC(s, NULL, "vault", "set", d->uuid, "data"), 0);            /* nothing to change */
        ASSERT_NE(EVC(s, NULL, "vault", "set", d->uuid, "data", "--name", "logs"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "set", d->uuid, "nosuch", "--rotate"), 0);
        ASSERT_NE(EVC(s, NULL, "vault", "remove", d->uuid, "nosuch"), 0);
        unchanged(s, d, c5->confighash);

        /* --unchecked sends what the admin typed, for a node to refuse (and report). */
        u3 = vault_add(s, d, "bad", "--pcrs", "1,5", "--size", "1M", "--unchecked", NULL);
        c6 = next_config(s, d, c5->confighash);
        v = vault_in(c6->config, u3);
        ASSERT_NOT_NULL(v);
        ASSERT_EQ(v->n_pcr_indices, 2);
        ASSERT_EQ(v->size_limit_bytes, UINT64_C(1) << 20);
        ASSERT_EQ(EVC(s, NULL, "vault", "remove", d->uuid, u3), 0);

        /* Applications: bound by UUID, merged with their cloud-init secret. */
        ASSERT_EQ(EVC(s, NULL, "app", "set", d->uuid, "web", "--vault", "data"), 0);
        ASSERT_EQ(EVC(s, NULL, "secret", "set", d->uuid, "web", "--kind", "cloudinit", "--value", "#cloud"),
                  0);
        ASSERT_NE(EVC(s, NULL, "app", "set", d->uuid, "db", "--vault", "nosuch"), 0);
        ASSERT_NE(EVC(s, NULL, "app", "set", d->uuid, "db"), 0);
        c7 = next_config(s, d, c6->confighash);
        ASSERT_EQ(c7->config->n_apps, 1);
        ASSERT_STREQ(app_in(c7->config, "web")->eve_trust_vault_uuid, u1);
        ASSERT_NOT_NULL(app_in(c7->config, "web")->uuidandversion);
        ASSERT_NOT_NULL(app_in(c7->config, "web")->cipherdata);
        ASSERT_EQ(EVC(s, &out, "app", "list", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, "data"));
        /* A vault an application runs on is not removed under it. */
        ASSERT_NE(EVC(s, NULL, "vault", "remove", d->uuid, "data"), 0);
        ASSERT_EQ(EVC(s, NULL, "app", "set", d->uuid, "web", "--vault", "none"), 0);
        ASSERT_EQ(EVC(s, NULL, "vault", "remove", d->uuid, "data"), 0);
        c8 = next_config(s, d, c7->confighash);
        ASSERT_EQ(c8->config->n_eve_trust_vaults, 1);
        ASSERT_NULL(vault_in(c8->config, u1));
        ASSERT_STREQ(app_in(c8->config, "web")->eve_trust_vault_uuid, "");
        ASSERT_EQ(EVC(s, NULL, "app", "remove", d->uuid, "web"), 0);
        ASSERT_NE(EVC(s, NULL, "app", "remove", d->uuid, "web"), 0);
}

/* An untrusted device gets only the base-OS part, but still the vault list: its absence would mean "delete".
 */
TEST(evc_vaults_reach_an_untrusted_device) {
        Srv *s = srv_start(NULL);
        Dev *d;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Config__ConfigResponse *c = NULL;
        _cleanup_free_ char *u = NULL;

        fetch_certs(s);
        d = dev_ready(s, "SN-V2");
        u = vault_add(s, d, "data", "--key-source", "tpm+controller", NULL, NULL, NULL, NULL);
        ASSERT_EQ(EVC(s, NULL, "app", "set", d->uuid, "web", "--vault", u), 0);
        memset(d->pcr[9], 0x99, 32);
        ASSERT_EQ(attest_once(s, d, FLAW_NONE, NULL), Q_FAILED);
        ASSERT_EQ(EVC(s, NULL, "config", "set", d->uuid, "--baseos", "14.0.0"), 0);
        ASSERT_EQ(get_config(s, d, NULL, NULL, 0, &c), 200);
        ASSERT_STREQ(c->config->baseos->base_os_version, "14.0.0");
        ASSERT_EQ(c->config->n_eve_trust_vaults, 1);
        ASSERT_NOT_NULL(vault_in(c->config, u));
        ASSERT_EQ(c->config->n_apps, 0);
        ASSERT_EQ(c->config->n_ciphercontexts, 0);
}

static Org__Lfedge__Eve__Info__VaultInfo *vault_info(const char *name, int status, const char *err) {
        Org__Lfedge__Eve__Info__VaultInfo *vi = calloc(1, sizeof *vi);

        ASSERT_NOT_NULL(vi);
        org__lfedge__eve__info__vault_info__init(vi);
        vi->name = (char *) name;
        vi->status = (Org__Lfedge__Eve__Info__DataSecAtRestStatus) status;
        if (err) {
                Org__Lfedge__Eve__Info__ErrorInfo *ei = calloc(1, sizeof *ei);
                ASSERT_NOT_NULL(ei);
                org__lfedge__eve__info__error_info__init(ei);
                ei->description = (char *) err;
                vi->vaulterr = ei;
        }
        return vi;
}

TEST(evc_vault_status_from_info) {
        Srv *s = srv_start(NULL);
        Dev *d;
        _cleanup_free_ char *u1 = NULL, *u2 = NULL, *out = NULL;
        Org__Lfedge__Eve__Info__ZInfoMsg m = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INIT;
        Org__Lfedge__Eve__Info__ZInfoDevice di = ORG__LFEDGE__EVE__INFO__ZINFO_DEVICE__INIT;
        Org__Lfedge__Eve__Info__DataSecAtRest dsar = ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST__INIT;
        Org__Lfedge__Eve__Info__EveTrustVaultStatus
                        x1 = ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATUS__INIT,
                        x2 = ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATUS__INIT;
        Org__Lfedge__Eve__Info__VaultInfo *vl[3];
        uint32_t moved[] = { 4, 8 };
        json_object *j, *r, *v;

        fetch_certs(s);
        d = dev_ready(s, "SN-V3");
        u1 = vault_add(s, d, "data", NULL, NULL, NULL, NULL, NULL, NULL);
        u2 = vault_add(s, d, "cache", NULL, NULL, NULL, NULL, NULL, NULL);
        ASSERT_EQ(EVC(s, &out, "vault", "list", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, "not reported yet"));
        free(out);
        out = NULL;

        /* What a node reports: one vault unlocked, one it could not unlock, and EVE's own default vault. */
        x1.uuid = u1;
        x1.config_version = (char *) "1";
        x1.state = ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_UNLOCKED;
        x1.unlock_method = ORG__LFEDGE__EVE__INFO__EVE_TRUST_UNLOCK_METHOD__EVE_TRUST_UNLOCK_METHOD_TPM;
        x1.escrow_state = ORG__LFEDGE__EVE__INFO__EVE_TRUST_ESCROW_STATE__EVE_TRUST_ESCROW_STATE_CONFIRMED;
        x1.key_generation = 1;
        x1.last_operation = (char *) "create";
        x1.last_operation_ok = true;
        x2.uuid = u2;
        x2.config_version = (char *) "1";
        x2.state = ORG__LFEDGE__EVE__INFO__EVE_TRUST_VAULT_STATE__EVE_TRUST_VAULT_STATE_LOCKED;
        x2.n_moved_pcrs = ELEMENTSOF(moved);
        x2.moved_pcrs = moved;
        x2.last_operation = (char *) "unlock";
        x2.last_error = (char *) "Vault key unavailable; mismatching PCR indexes [4 8]";
        vl[0] =
                        vault_info("data",
                                   ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ENABLED,
                                   NULL);
        vl[0]->eve_trust_status = &x1;
        vl[1] =
                        vault_info("cache",
                                   ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ERROR,
                                   "Vault key unavailable");
        vl[1]->eve_trust_status = &x2;
        vl[2] =
                        vault_info("Application Data Store",
                                   ORG__LFEDGE__EVE__INFO__DATA_SEC_AT_REST_STATUS__DATASEC_AT_REST_ENABLED,
                                   NULL);
        dsar.n_vaultlist = 3;
        dsar.vaultlist = vl;
        di.datasecatrestinfo = &dsar;
        m.devid = d->uuid;
        m.info_content_case = ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO;
        m.dinfo = &di;
        {
                _cleanup_(resp_done) Resp rr = dev_post(s, d, "info", &m.base);
                ASSERT_EQ(rr.status, 201);
        }
        free(vl[0]);
        free(vl[1]->vaulterr);
        free(vl[1]);
        free(vl[2]);

        ASSERT_EQ(EVC(s, &out, "vault", "list", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, "unlocked (tpm), escrow confirmed"));
        ASSERT_NOT_NULL(strstr(out, "moved PCRs 4 8"));
        ASSERT_NOT_NULL(strstr(out, "mismatching PCR indexes"));
        free(out);
        out = NULL;
        ASSERT_EQ(EVC(s, &out, "vault", "list", d->uuid, "--json"), 0);
        j = json_tokener_parse(out);
        ASSERT_NOT_NULL(j);
        ASSERT_EQ(json_object_array_length(j), 2);
        ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(j, 1), "reported", &r)); /* data */
        ASSERT_TRUE(json_object_object_get_ex(r, "state", &v));
        ASSERT_STREQ(json_object_get_string(v), "unlocked");
        json_object_put(j);
        free(out);
        out = NULL;
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid), 0);
        ASSERT_NOT_NULL(strstr(out, "Application Data Store"));
        ASSERT_NOT_NULL(strstr(out, "locked (none)"));
        free(out);
        out = NULL;
        ASSERT_EQ(EVC(s, &out, "device", "show", d->uuid, "--json"), 0);
        j = json_tokener_parse(out);
        ASSERT_NOT_NULL(j);
        ASSERT_TRUE(json_object_object_get_ex(j, "vaults_reported", &r));
        ASSERT_EQ(json_object_array_length(r), 3);
        json_object_put(j);
}

DEFINE_TEST_MAIN
