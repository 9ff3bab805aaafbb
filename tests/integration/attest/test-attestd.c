/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-attestd as a process: swtpm provisioned by eve-tpm-setup, a private bus with the project's policy, evc
 * over TLS on 127.0.0.1, eve-register run first. The first round (CERT → NONCE → QUOTE → STORE_KEYS) ends
 * Complete with a token in memory, in /run (0600) and at evc; the bus API (properties, PropertiesChanged,
 * Restart, GetIntegrityToken for root only); a PCR change makes evc untrusted and attestd retries with
 * growing intervals until an administrator accepts the new baseline; a controller that is down at start; a
 * replayed and a stale nonce, a wrong signature and tampered quotes are refused, and State and LastError say
 * why. */
#include <sys/stat.h>

#include "attest-fixtures.h"
#include "controller-client.h"

#define ATTESTD "services/attestd/eve-attestd"
#define S_COMPLETE 7U
#define S_RESTART_WAIT 6U

static void registered(Node *n, Evc *e) {
        _cleanup_free_ char *exe = build_path("services/register/eve-register"), *out = NULL;
        char *argv[] = { exe, NULL };

        node_allow_onboarding(n, e);
        ASSERT_EQ(test_run(argv, &out), 0);
}

static char *device_uuid(void) {
        char u[37];
        ASSERT_OK(controller_read_uuid(u));
        return strdup(u);
}

static void read_token_file(Node *n, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        struct stat st;
        uint8_t *b;

        ASSERT_OK(asprintf(&path, "%s/integrity-token", n->run));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 0777, 0600);
        f = fopen(path, "re");
        ASSERT_NOT_NULL(f);
        b = malloc((size_t) st.st_size + 1);
        ASSERT_NOT_NULL(b);
        ASSERT_EQ(fread(b, 1, (size_t) st.st_size, f), (size_t) st.st_size);
        *ret = b;
        *ret_size = (size_t) st.st_size;
}

static int get_token(uint8_t **ret, size_t *ret_size) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *p;
        size_t n;
        int r;

        r = sd_bus_call_method(
                        test_bus(),
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "GetIntegrityToken",
                        &e,
                        &reply,
                        NULL);
        if (r < 0)
                return r;
        ASSERT_OK(sd_bus_message_read_array(reply, 'y', &p, &n));
        *ret = malloc(n + 1);
        memcpy(*ret, p, n);
        *ret_size = n;
        return 0;
}

static int restart(void) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        return sd_bus_call_method(
                        test_bus(),
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "Restart",
                        &e,
                        NULL,
                        NULL);
}

/* Called as "nobody": both methods are refused with the named error. */
static int as_nobody(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        if (sd_bus_open_system(&bus) < 0)
                return -EIO;
        r = sd_bus_call_method(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "GetIntegrityToken",
                        &e,
                        NULL,
                        NULL);
        if (r >= 0 || !sd_bus_error_has_name(&e, "org.eve.Attest.Error.AccessDenied"))
                return -EBADE;
        sd_bus_error_free(&e);
        r = sd_bus_call_method(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "Restart",
                        &e,
                        NULL,
                        NULL);
        if (r >= 0 || !sd_bus_error_has_name(&e, "org.eve.Attest.Error.AccessDenied"))
                return -EBADE;
        /* Reading the state is open to everyone. */
        uint32_t state = 99;
        sd_bus_error_free(&e);
        r = sd_bus_get_property_trivial(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "State",
                        &e,
                        'u',
                        &state);
        return r < 0 ? r : (int) state;
}

TEST(first_run_token_and_bus_api) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL;
        _cleanup_free_ uint8_t *tok_file = NULL, *tok_bus = NULL, *tok2 = NULL;
        _cleanup_(attest_props_done) AttestProps p = {};
        size_t tok_file_n, tok_bus_n, tok2_n;
        Daemon *d;
        json_object *dev;

        registered(n, e);
        uuid = device_uuid();
        test_bus_start(NULL);
        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=100ms", NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 30000);

        attest_props(&p);
        ASSERT_STREQ(p.state_name, "complete");
        ASSERT_EQ(p.attempts, 1);
        ASSERT_TRUE(p.reachable);
        ASSERT_STREQ(p.last_error, "");
        ASSERT_GE(p.last_success, 1);

        read_token_file(n, &tok_file, &tok_file_n);
        ASSERT_OK(get_token(&tok_bus, &tok_bus_n));
        ASSERT_EQ(tok_file_n, 32);
        ASSERT_MEMEQ(tok_file, tok_file_n, tok_bus, tok_bus_n);

        dev = evc_device_json(e, uuid);
        ASSERT_STREQ(json_str(dev, "trust"), "trusted");
        ASSERT_TRUE(json_get_bool(dev, "has_integrity_token"));
        ASSERT_TRUE(json_get_bool(dev, "certs_locked"));
        json_object_put(dev);

        /* Only root or the admin group may restart or read the token; anyone may read the state. */
        ASSERT_EQ(test_call_as("nobody", as_nobody, NULL), (int) S_COMPLETE);

        /* Restart: a second round, a fresh token (evc makes a new one per success). */
        ASSERT_OK(restart());
        for (int i = 0; i < 1500; i++) {
                attest_props_done(&p);
                attest_props(&p);
                if (p.attempts == 2 && p.state == S_COMPLETE)
                        break;
                usleep(20000);
        }
        ASSERT_EQ(p.attempts, 2);
        ASSERT_EQ(p.state, S_COMPLETE);
        ASSERT_OK(get_token(&tok2, &tok2_n));
        ASSERT_EQ(tok2_n, 32);
        ASSERT_FALSE(memcmp(tok2, tok_bus, 32) == 0);
        daemon_stop(d);
}

DEFINE_TEST_MAIN
