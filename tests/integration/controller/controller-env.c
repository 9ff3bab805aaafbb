/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "controller-env.h"

#include <dirent.h>

#include "bus-util.h"
#include "controller-client.h"
#include "encoding.h"
#include "paths.h"
#include "proto-util.h"

#define CONFIG_NAME "org.eve.Config"
#define CONFIG_PATH "/org/eve/Config"

static int env_free(void *p) {
        Env *e = p;

        if (e->vault_started)
                vault_standin_stop(&e->vault);
        free(e);
        return 0;
}

int run_logged(const char *program, char **out) {
        /* its log (stderr) with its output */
        char *argv[] = {
                (char *) "/bin/sh", (char *) "-c", (char *) "exec \"$0\" 2>&1", (char *) program, NULL
        };

        return test_run(argv, out);
}

int env_register(Env *e, char **out) {
        _cleanup_free_ char *reg = build_path("services/register/eve-register");

        return run_logged(reg, out);
}

Env *env_new(bool attest) {
        Env *e = calloc(1, sizeof *e);
        _cleanup_free_ char *out = NULL, *acl_dir = NULL;
        int r;

        ASSERT_NOT_NULL(e);
        test_defer(env_free, e);
        e->bus = test_bus_start(NULL);
        e->evc = evc_new(NULL);
        e->node = node_new(e->evc);
        node_allow_onboarding(e->node, e->evc);
        /* TLS trusts evc's root through its own file, so that replacing root-certificate.pem changes only
         * what the binding and the object signatures see. */
        {
                _cleanup_free_ char *root = read_text_file(e->evc->root_pem);
                write_text(e->node->config, "v2tlsbaseroot-certificates.pem", root, 0644);
        }
        r = env_register(e, &out);
        if (r != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed (%d):\n%s", r, out ?: "");
        ASSERT_OK(controller_read_uuid(e->uuid));
        ASSERT_OK(asprintf(&acl_dir, "%s/secrets.d", e->node->config));
        ASSERT_OK(eve_mkdir_p(acl_dir, 0755));
        write_text(acl_dir,
                   "50-test.conf",
                   "[Kind wifi]\nAllowUser=root\n[Kind datastore]\nAllowUser=root\n"
                   "[Kind cloudinit]\nAllowUser=root\n",
                   0644);
        ASSERT_OK(vault_standin_start(&e->vault, "Locked"));
        e->vault_started = true;
        if (attest) {
                e->attestd = attestd_start_complete(NULL);
        }
        return e;
}

void env_configd(Env *e, const char *interval) {
        _cleanup_free_ char *arg = NULL;

        ASSERT_OK(asprintf(&arg, "--interval=%s", interval));
        e->configd =
                        daemon_start("services/configd/eve-configd",
                                     CONFIG_NAME,
                                     NULL,
                                     arg,
                                     "--retry=200ms",
                                     "--info-interval=1s",
                                     NULL);
}

void env_secret(Env *e, const char *name, const char *kind, const char *value) {
        ASSERT_EQ(EVC_RUN(e->evc, NULL, "secret", "set", e->uuid, name, "--kind", kind, "--value", value),
                  0);
}

char *config_prop(const char *name) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        ASSERT_OK(sd_bus_get_property_string(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, name, &error, &s));
        return s;
}

uint64_t config_prop_u64(const char *name) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        ASSERT_OK(sd_bus_get_property_trivial(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, name, &error, 't', &v));
        return v;
}

void wait_fetched(Env *e, unsigned timeout_ms) {
        uint64_t end = now_msec() + timeout_ms;

        for (;;) {
                _cleanup_free_ char *v = config_prop("LastFetchResult");
                if (streq(v, "updated") || streq(v, "not-modified"))
                        return;
                if (now_msec() > end) {
                        _cleanup_free_ char *err = config_prop("LastFetchError");
                        daemon_dump(e->configd);
                        test_fail(__FILE__, __LINE__, "no successful fetch: %s (%s)", v, err);
                }
                usleep(20000);
        }
}

int config_refresh(char **ret) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s;
        int r;

        r = sd_bus_call_method(
                        test_bus(), CONFIG_NAME, CONFIG_PATH, CONFIG_NAME, "Refresh", &error, &reply, NULL);
        if (r < 0) {
                *ret = strdup(error.message ?: error.name ?: "?");
                return r;
        }
        ASSERT_OK(sd_bus_message_read(reply, "s", &s));
        *ret = strdup(s);
        return 0;
}

int config_secret(const char *name, const char *field, char **ret) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *f, *v;
        int r;

        *ret = NULL;
        r = sd_bus_call_method(
                        test_bus(),
                        CONFIG_NAME,
                        CONFIG_PATH,
                        CONFIG_NAME,
                        "GetSecret",
                        &error,
                        &reply,
                        "s",
                        name);
        if (r < 0) {
                *ret = strdup(error.name ?: "?");
                return r;
        }
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "{ss}"));
        while ((r = sd_bus_message_read(reply, "{ss}", &f, &v)) > 0)
                if (streq(f, field)) {
                        free(*ret);
                        *ret = strdup(v);
                }
        ASSERT_OK(r);
        return *ret ? 0 : -ENODATA;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

char **stored_certs(const char *kind) {
        _cleanup_free_ char *dir = NULL;
        DIR *d;
        struct dirent *de;
        char **l = calloc(65, sizeof *l);
        size_t n = 0, pl = strlen(kind);

        ASSERT_NOT_NULL(l);
        ASSERT_OK(asprintf(&dir, "%s/controller", eve_path(EVE_PATH_CERTS)));
        d = opendir(dir);
        ASSERT_NOT_NULL(d);
        while ((de = readdir(d)) && n < 64)
                if (strncmp(de->d_name, kind, pl) == 0 && de->d_name[pl] == '-' &&
                    strlen(de->d_name) == pl + 1 + 32 + 4)
                        l[n++] = strndup(de->d_name + pl + 1, 32);
        closedir(d);
        qsort(l, n, sizeof *l, cmp_str);
        return l;
}

void strv_free_test(char **l) {
        for (size_t i = 0; l && l[i]; i++)
                free(l[i]);
        free(l);
}

size_t strv_len_test(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

bool strv_has_test(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

void wait_stored_cert(Env *e, const char *kind, const char *hex, bool want, unsigned timeout_ms) {
        uint64_t end = now_msec() + timeout_ms;

        for (;;) {
                char **l = stored_certs(kind);
                bool has = strv_has_test(l, hex);
                strv_free_test(l);
                if (has == want)
                        return;
                if (now_msec() > end) {
                        if (e->configd)
                                daemon_dump(e->configd);
                        test_fail(__FILE__,
                                  __LINE__,
                                  "%s-%s.pem is %s stored",
                                  kind,
                                  hex,
                                  want ? "not" : "still");
                }
                usleep(20000);
        }
}

Org__Lfedge__Eve__Config__ConfigResponse *fetch_config_as_node(const char *have_hash) {
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        _cleanup_free_ char *path = NULL, *token_path = NULL, *token = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        Org__Lfedge__Eve__Config__ConfigRequest req = ORG__LFEDGE__EVE__CONFIG__CONFIG_REQUEST__INIT;
        Org__Lfedge__Eve__Config__ConfigResponse *resp = NULL;
        size_t token_size = 0, size = 0;
        long status = 0;

        token_path = eve_path_join(EVE_PATH_RUN, "integrity-token");
        ASSERT_NOT_NULL(token_path);
        {
                FILE *f = fopen(token_path, "re");
                char buf[512];
                ASSERT_NOT_NULL(f);
                token_size = fread(buf, 1, sizeof buf, f);
                fclose(f);
                token = malloc(token_size + 1);
                ASSERT_NOT_NULL(token);
                memcpy(token, buf, token_size);
        }
        ASSERT_OK(controller_client_new(NULL, &c));
        ASSERT_OK(controller_client_load_identity(c, NULL));
        ASSERT_OK(controller_device_path("config", &path));
        req.confighash = (char *) (have_hash ?: "");
        req.integrity_token = (ProtobufCBinaryData){ .len = token_size, .data = (uint8_t *) token };
        ASSERT_OK(controller_client_post_sync(c, path, &req.base, 0, &status, &payload, &size));
        ASSERT_EQ(status, 200);
        ASSERT_OK(
                        PROTO_UNPACK(&org__lfedge__eve__config__config_response__descriptor,
                                     payload,
                                     size,
                                     1024 * 1024,
                                     &resp));
        return resp;
}

char *context_cert_hex(const Org__Lfedge__Eve__Config__ConfigResponse *c) {
        ASSERT_NOT_NULL(c->config);
        ASSERT_GE(c->config->n_ciphercontexts, 1);
        ASSERT_EQ(c->config->ciphercontexts[0]->controllercerthash.len, 16);
        return hex_encode(c->config->ciphercontexts[0]->controllercerthash.data, 16);
}
