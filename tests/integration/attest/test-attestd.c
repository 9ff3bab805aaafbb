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

/* The <interface name="org.eve.Attest"> block of an introspection XML. */
static char *attest_interface(const char *xml) {
        const char *p = strstr(xml, " <interface name=\"org.eve.Attest\">"), *end;

        ASSERT_NOT_NULL(p);
        end = strstr(p, "</interface>\n");
        ASSERT_NOT_NULL(end);
        return strndup(p, (size_t) (end + strlen("</interface>\n") - p));
}

TEST(introspection_matches_dbus_xml) {
        _cleanup_free_ char *exe = build_path(ATTESTD), *xml = NULL,
                            *path = test_srcpath("dbus/org.eve.Attest.xml"), *file = NULL, *served = NULL,
                            *committed = NULL;
        char *argv[] = { exe, (char *) "--bus-introspect", NULL };

        ASSERT_EQ(test_run(argv, &xml), 0);
        file = read_text_file(path);
        ASSERT_NOT_NULL(file);
        served = attest_interface(xml);
        committed = attest_interface(file);
        /* The contract's members (CONTRACT.md) are all there. */
        static const char *const members[] = {
                "\"State\" type=\"u\"",      "\"StateName\" type=\"s\"",
                "\"LastError\" type=\"s\"",  "\"LastSuccess\" type=\"t\"",
                "\"Attempts\" type=\"u\"",   "\"ControllerReachable\" type=\"b\"",
                "<method name=\"Restart\">", "<method name=\"GetIntegrityToken\">",
        };
        for (size_t i = 0; i < ELEMENTSOF(members); i++)
                if (!strstr(served, members[i]))
                        test_fail(__FILE__, __LINE__, "eve-attestd does not serve %s", members[i]);
        if (!streq(served, committed))
                test_fail(__FILE__,
                          __LINE__,
                          "dbus/org.eve.Attest.xml differs from what eve-attestd --bus-introspect "
                          "prints:\n%s",
                          served);
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

        /* evectl: a table for people, JSON for scripts. */
        {
                _cleanup_free_ char *evectl = build_path("services/evectl/evectl"), *out = NULL, *js = NULL;
                char *table[] = { evectl, (char *) "attest", (char *) "status", NULL };
                char *json[] = { evectl, (char *) "--json", (char *) "attest", (char *) "status", NULL };
                json_object *o;

                ASSERT_EQ(test_run(table, &out), 0);
                ASSERT_NOT_NULL(strstr(out, "complete (7)"));
                ASSERT_NOT_NULL(strstr(out, "Controller reachable:  yes"));
                ASSERT_NOT_NULL(strstr(out, "Attempts:              1"));
                ASSERT_EQ(test_run(json, &js), 0);
                o = json_tokener_parse(js);
                ASSERT_NOT_NULL(o);
                ASSERT_EQ(json_int(o, "state"), 7);
                ASSERT_STREQ(json_str(o, "state_name"), "complete");
                ASSERT_EQ(json_int(o, "attempts"), 1);
                ASSERT_TRUE(json_get_bool(o, "controller_reachable"));
                ASSERT_EQ((uint64_t) json_int(o, "last_success"), p.last_success);
                json_object_put(o);
        }

        /* Only root or the admin group may restart or read the token; anyone may read the state. */
        ASSERT_EQ(test_call_as("nobody", as_nobody, NULL), (int) S_COMPLETE);

        /* Restart (through evectl): a second round, a fresh token (evc makes a new one per success). */
        {
                _cleanup_free_ char *evectl = build_path("services/evectl/evectl"), *out = NULL;
                char *argv[] = { evectl, (char *) "attest", (char *) "restart", NULL };
                ASSERT_EQ(test_run(argv, &out), 0);
                ASSERT_NOT_NULL(strstr(out, "restarted"));
        }
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

static uint32_t attempts_now(void) {
        _cleanup_(attest_props_done) AttestProps p = {};
        attest_props(&p);
        return p.attempts;
}

/* Starts attestd with a test hook; waits for the first refusal; checks State and LastError. */
static void refused_with(Evc *e, const char *hook, const char *code, bool second_round) {
        _cleanup_(attest_props_done) AttestProps p = {};
        _cleanup_free_ char *env = NULL;
        Daemon *d;

        ASSERT_OK(asprintf(&env, "EVE_ATTESTD_TEST_HOOK=%s", hook));
        d = daemon_start(ATTESTD, "org.eve.Attest", env, "--retry-base=30s", NULL);
        if (second_round) {
                /* The hook needs a first good round (a nonce to replay). */
                attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 30000);
                ASSERT_OK(restart());
        }
        attest_wait_state(d, ATTEST_STATE_BIT(S_RESTART_WAIT), 30000);
        attest_props(&p);
        ASSERT_STREQ(p.state_name, "restart-wait");
        if (strncmp(p.last_error, code, strlen(code)) != 0)
                test_fail(__FILE__,
                          __LINE__,
                          "hook %s: LastError \"%s\", expected %s",
                          hook,
                          p.last_error,
                          code);
        ASSERT_TRUE(p.reachable);
        ASSERT_GE(p.next_attempt, 1);
        /* The controller withdrew the token: attestd holds none either. */
        {
                _cleanup_free_ uint8_t *tok = NULL;
                size_t n = 99;
                ASSERT_OK(get_token(&tok, &n));
                ASSERT_EQ(n, 0);
        }
        daemon_stop(d);
        (void) e;
}

TEST(refusals_say_why) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL, *path = NULL;
        json_object *dev;

        registered(n, e);
        uuid = device_uuid();
        test_bus_start(NULL);

        refused_with(e, "corrupt-signature", "QUOTE_FAILED", false);
        refused_with(e, "corrupt-quote", "QUOTE_FAILED", false);
        refused_with(e, "tamper-pcr", "QUOTE_FAILED", false);
        refused_with(e, "replay-nonce", "NONCE_MISMATCH", true);
        ASSERT_OK(asprintf(&path, "%s/integrity-token", n->run));
        ASSERT_TRUE(access(path, F_OK) < 0 && errno == ENOENT);

        /* A nonce that expired before the quote came (evc keeps nonces 1 s here). */
        evc_stop(e);
        e->nonce_ttl = strdup("1");
        evc_serve(e);
        refused_with(e, "delay-quote=2500ms", "NONCE_MISMATCH", false);

        /* None of these made the device untrusted: a genuine quote is accepted at once. */
        dev = evc_device_json(e, uuid);
        ASSERT_FALSE(streq_ptr(json_str(dev, "trust"), "untrusted"));
        json_object_put(dev);
        {
                Daemon *d = daemon_start(ATTESTD, "org.eve.Attest", NULL, NULL);
                attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 30000);
                daemon_stop(d);
        }
}

/* The controller is down when attestd starts: it backs off (growing, jittered delays), says the controller
 * is unreachable, and succeeds once evc is up. */
TEST(controller_down_at_start) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(attest_props_done) AttestProps p = {};
        Daemon *d;

        registered(n, e);
        evc_stop(e);
        test_bus_start(NULL);
        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=100ms", "--retry-max=400ms", NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_RESTART_WAIT), 20000);
        while (attempts_now() < 3)
                usleep(20000);
        attest_props(&p);
        ASSERT_FALSE(p.reachable);
        if (!strstr(p.last_error, "connect"))
                test_fail(__FILE__, __LINE__, "LastError: %s", p.last_error);
        ASSERT_STREQ(p.state_name, "restart-wait");

        evc_serve(e);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 20000);
        attest_props_done(&p);
        attest_props(&p);
        ASSERT_TRUE(p.reachable);
        ASSERT_GE(p.attempts, 4);
        ASSERT_STREQ(p.last_error, "");
        daemon_stop(d);
}

/* A PCR change after the baseline: evc marks the device untrusted and releases nothing; attestd keeps trying
 * with growing intervals (base 200 ms, cap 1.6 s: counted over 6 s); an administrator's acceptance lets the
 * next attempt through. */
TEST(pcr_change_retries_with_backoff_until_accepted) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL;
        uint64_t stamps[64], t0;
        uint32_t seen, first;
        size_t ns = 0;
        Daemon *d;
        json_object *dev;

        registered(n, e);
        uuid = device_uuid();
        test_bus_start(NULL);
        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 30000);
        daemon_stop(d);

        /* Reboot into something else: PCR 4 moves. */
        node_reboot(n);
        node_extend(n, 4, "an unknown boot loader");
        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=200ms", "--retry-max=1600ms", NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_RESTART_WAIT), 30000);
        dev = evc_device_json(e, uuid);
        ASSERT_STREQ(json_str(dev, "trust"), "untrusted");
        ASSERT_NOT_NULL(strstr(json_str(dev, "trust_reason"), "4"));
        ASSERT_FALSE(json_get_bool(dev, "has_integrity_token"));
        json_object_put(dev);

        first = seen = attempts_now();
        t0 = now_msec();
        stamps[ns++] = t0;
        while (now_msec() - t0 < 6000) {
                uint32_t a = attempts_now();
                if (a != seen) {
                        ASSERT_EQ(a, seen + 1);
                        ASSERT_LE(ns, ELEMENTSOF(stamps) - 1);
                        stamps[ns++] = now_msec();
                        seen = a;
                }
                usleep(10000);
        }
        /* 6 s of delays in [d/2, d] with d = 200, 400, 800, 1600, 1600 … ms: between 4 and 10 more attempts.
         */
        if (seen - first < 3 || seen - first > 10)
                test_fail(__FILE__, __LINE__, "%u attempts in 6 s", seen - first);
        /* Growing: the 4th wait (≥ 800 ms) is longer than the 1st (≤ 200 ms + a round); none beyond the cap.
         */
        ASSERT_GE(ns, 5);
        ASSERT_GE(stamps[4] - stamps[3], stamps[1] - stamps[0]);
        for (size_t i = 1; i < ns; i++)
                ASSERT_LE(stamps[i] - stamps[i - 1], 1600 + 1500);
        {
                _cleanup_(attest_props_done) AttestProps p = {};
                attest_props(&p);
                ASSERT_TRUE(strncmp(p.last_error, "QUOTE_FAILED", 12) == 0);
        }

        /* The administrator accepts the new software: the next attempt succeeds. */
        ASSERT_EQ(EVC_RUN(e, NULL, "baseline", "accept", uuid), 0);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 10000);
        dev = evc_device_json(e, uuid);
        ASSERT_STREQ(json_str(dev, "trust"), "trusted");
        json_object_put(dev);
        daemon_stop(d);
}

/* --reattest-interval: after a success the next round comes by itself, each with a fresh token. */
TEST(periodic_reattestation) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(attest_props_done) AttestProps p = {};
        Daemon *d;
        uint64_t t0;

        registered(n, e);
        test_bus_start(NULL);
        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--reattest-interval=300ms", NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 30000);
        t0 = now_msec();
        while (attempts_now() < 4 && now_msec() - t0 < 20000)
                usleep(20000);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 10000);
        attest_props(&p);
        ASSERT_GE(p.attempts, 4);
        ASSERT_STREQ(p.last_error, "");
        ASSERT_GE(p.next_attempt, 1); /* the next one is scheduled */
        daemon_stop(d);
}

/* gps_info from a location file, judged by evc's location lock: no source → refused; the recorded place →
 * fine; a node carried elsewhere → refused. */
TEST(location_from_a_file) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL, *loc = NULL, *arg = NULL;
        Daemon *d;

        registered(n, e);
        uuid = device_uuid();
        ASSERT_EQ(EVC_RUN(e, NULL, "location-lock", "on", uuid), 0);
        test_bus_start(NULL);

        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=30s", NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_RESTART_WAIT), 30000);
        daemon_stop(d);

        ASSERT_OK(asprintf(&loc, "%s/location", n->root));
        ASSERT_OK(asprintf(&arg, "--location-file=%s", loc));
        write_text(n->root, "location", "48.8566 2.3522\n", 0644);
        d = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=30s", arg, NULL);
        attest_wait_state(d, ATTEST_STATE_BIT(S_COMPLETE), 30000);

        write_text(n->root, "location", "-33.9249,18.4241\n", 0644);
        ASSERT_OK(restart());
        attest_wait_state(d, ATTEST_STATE_BIT(S_RESTART_WAIT), 30000);
        daemon_stop(d);
}

DEFINE_TEST_MAIN
