/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-register as a process against evc over TLS: first registration with the onboarding certificate and
 * serial, idempotent reruns, a device the administrator added beforehand, refusals with a clear message
 * (serial not allowed: 403; serial taken by another device: 409; revoked), and a controller that is down
 * (fine when an earlier boot stored the UUID, an error otherwise). */
#include "attest-fixtures.h"
#include "controller-client.h"

/* Runs eve-register with the node's environment; stdout+stderr in *out. */
static int run_register(char **out) {
        _cleanup_free_ char *exe = build_path("services/register/eve-register"), *cmd = NULL;
        char *argv[] = { (char *) "sh", (char *) "-c", NULL, NULL };
        char *o = NULL;
        int r;

        ASSERT_OK(asprintf(&cmd, "exec %s 2>&1", exe));
        argv[2] = cmd;
        r = test_run(argv, &o);
        ASSERT_GE(r, 0);
        if (out)
                *out = o;
        else
                free(o);
        return r;
}

static char *stored_uuid(void) {
        char u[37];
        if (controller_read_uuid(u) < 0)
                return NULL;
        return strdup(u);
}

TEST(first_registration_and_rerun) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *out = NULL, *uuid = NULL, *ctl = NULL;
        json_object *dev;

        node_allow_onboarding(n, e);
        if (run_register(&out) != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed:\n%s", out);
        uuid = stored_uuid();
        ASSERT_NOT_NULL(uuid);
        dev = evc_device_json(e, uuid);
        ASSERT_STREQ(json_str(dev, "serial"), n->serial);
        ASSERT_TRUE(json_get_bool(dev, "registered"));
        json_object_put(dev);
        ASSERT_OK(asprintf(&ctl, "%s/controller", n->certs));
        ASSERT_TRUE(file_exists(n->status, "uuid"));

        /* Again: nothing to do, same UUID, no second registration. */
        out = mfree(out);
        ASSERT_EQ(run_register(&out), 0);
        ASSERT_NOT_NULL(strstr(out, "unchanged"));
        ASSERT_NULL(strstr(out, "registering"));
        {
                _cleanup_free_ char *again = stored_uuid();
                ASSERT_STREQ(again, uuid);
        }
}

TEST(preregistered_by_admin_needs_no_onboarding) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = node_preregister(n, e), *out = NULL, *got = NULL;

        ASSERT_OK(unlink(n->onboard_cert));
        ASSERT_EQ(run_register(&out), 0);
        got = stored_uuid();
        ASSERT_STREQ(got, uuid);
}

TEST(refusals_are_clear) {
        Evc *e = evc_new(NULL);
        Node *a = node_new(e);
        _cleanup_free_ char *out = NULL, *onb_cert = NULL, *onb_key = NULL, *serial = NULL, *uuid = NULL;

        /* Not on the allow list: 403, nothing stored. */
        ASSERT_EQ(run_register(&out), 1);
        ASSERT_NOT_NULL(strstr(out, "not allowed"));
        ASSERT_NULL(stored_uuid());

        /* Allowed: registers. A second node with the same onboarding certificate and serial: 409. */
        node_allow_onboarding(a, e);
        out = mfree(out);
        ASSERT_EQ(run_register(&out), 0);
        uuid = stored_uuid();
        onb_cert = read_text_file(a->onboard_cert);
        onb_key = read_text_file(a->onboard_key);
        serial = strdup(a->serial);
        {
                Node *b = node_new(e);
                write_text(b->config, "onboard.cert.pem", onb_cert, 0644);
                write_text(b->config, "onboard.key.pem", onb_key, 0600);
                write_text(b->config, "soft_serial", serial, 0644);
                out = mfree(out);
                ASSERT_EQ(run_register(&out), 1);
                ASSERT_NOT_NULL(strstr(out, "409"));
                ASSERT_NULL(stored_uuid());
        }
        (void) uuid;
}

TEST(revoked_device) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = node_preregister(n, e), *out = NULL;

        ASSERT_EQ(EVC_RUN(e, NULL, "device", "revoke", uuid), 0);
        ASSERT_EQ(run_register(&out), 1);
        ASSERT_NOT_NULL(strstr(out, "revoked"));
}

TEST(controller_down) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *out = NULL, *uuid = NULL;

        /* Never registered and no controller: an error. */
        evc_stop(e);
        ASSERT_EQ(run_register(&out), 1);
        ASSERT_NULL(stored_uuid());

        /* Registered on an earlier boot: the stored UUID stands. */
        evc_serve(e);
        node_allow_onboarding(n, e);
        ASSERT_EQ(run_register(NULL), 0);
        uuid = stored_uuid();
        ASSERT_NOT_NULL(uuid);
        evc_stop(e);
        out = mfree(out);
        ASSERT_EQ(run_register(&out), 0);
        ASSERT_NOT_NULL(strstr(out, "unreachable"));
        {
                _cleanup_free_ char *again = stored_uuid();
                ASSERT_STREQ(again, uuid);
        }
}

DEFINE_TEST_MAIN
