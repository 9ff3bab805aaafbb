/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The controller client against the real evc over TLS on 127.0.0.1, with the device key in a swtpm
 * provisioned by eve-tpm-setup: /certs verified and stored as CONTRACT.md says, TLS pinned to the config
 * dir's root (another CA's server is refused), certificates that do not chain are refused and nothing is
 * stored, requests signed in the TPM are accepted by evc, a signer missing from the store is fetched once,
 * HTTP statuses mapped, response size limit, connect and total timeouts, requests in parallel on an sd-event
 * loop. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "attest-fixtures.h"
#include "controller-client.h"
#include "crypto-util.h"
#include "encoding.h"
#include "evc-crypto.h"
#include "eveuuid.pb-c.h"
#include "proto-util.h"
#include "register.pb-c.h"

static unsigned count_files(const char *dir, const char *prefix) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        return n;
}

static char *controller_dir(Node *n) {
        char *p;
        ASSERT_OK(asprintf(&p, "%s/controller", n->certs));
        return p;
}

/* The files CONTRACT.md names: <kind>-<hex SHA-256(PEM)[:16]>.pem, each holding exactly the PEM /certs
 * served (its name is the hash of its bytes), each issued by evc's root. Returns how many of that kind. */
static unsigned assert_stored(Node *n, Evc *e, const char *kind) {
        _cleanup_free_ char *dir = controller_dir(n);
        _cleanup_(closedirp) DIR *d = opendir(dir);
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t root = NULL;
        struct dirent *de;
        unsigned count = 0;

        ASSERT_NOT_NULL(d);
        ASSERT_OK(evc_load_crt_file(e->root_pem, &root));
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *pem = NULL, *hex = NULL, *want = NULL;
                _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
                uint8_t h[32];

                if (strncmp(de->d_name, kind, strlen(kind)) != 0 || de->d_name[strlen(kind)] != '-')
                        continue;
                ASSERT_OK(asprintf(&path, "%s/%s", dir, de->d_name));
                pem = read_text_file(path);
                ASSERT_NOT_NULL(pem);
                evc_sha256(pem, strlen(pem), h);
                hex = hex_encode(h, 16);
                ASSERT_OK(asprintf(&want, "%s-%s.pem", kind, hex));
                ASSERT_STREQ(de->d_name, want);
                ASSERT_OK(evc_load_crt_pem(pem, strlen(pem), &crt));
                ASSERT_OK(evc_verify_chain(crt, root));
                count++;
        }
        return count;
}

/* The name of the one signing-*.pem file. */
static char *signing_file(Node *n) {
        _cleanup_free_ char *dir = controller_dir(n);
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        ASSERT_NOT_NULL(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "signing-", 8) == 0)
                        return strdup(de->d_name);
        return NULL;
}

static ControllerClient *client(void) {
        ControllerClient *c = NULL;
        ASSERT_OK(controller_client_new(NULL, &c));
        return c;
}

TEST(certs_fetched_verified_and_stored) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(controller_client_freep) ControllerClient *c = client();
        _cleanup_free_ char *dir = controller_dir(n);

        ASSERT_OK(controller_client_fetch_certs_sync(c));
        ASSERT_EQ(assert_stored(n, e, "signing"), 1);
        ASSERT_GE(assert_stored(n, e, "ecdh"), 1);
        /* Idempotent. */
        ASSERT_OK(controller_client_fetch_certs_sync(c));
        ASSERT_EQ(count_files(dir, "signing-"), 1);
}

TEST(tls_pinned_to_config_root) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        TestCA *other = test_ca_new("other");
        _cleanup_free_ char *dir = controller_dir(n), *pem = read_text_file(other->cert);

        /* The TLS root (v2tlsbaseroot-certificates.pem, taking precedence over root-certificate.pem) is
         * another CA: the TLS handshake fails, nothing is stored. */
        write_text(n->config, "v2tlsbaseroot-certificates.pem", pem, 0644);
        {
                _cleanup_(controller_client_freep) ControllerClient *c = client();
                ASSERT_ERROR(controller_client_fetch_certs_sync(c), EKEYREJECTED);
                ASSERT_TRUE(strlen(controller_client_last_error(c)) > 0);
        }
        ASSERT_EQ(count_files(dir, "signing-"), 0);

        /* The right TLS root but a chain root that did not issue the controller's certificates: refused. */
        {
                _cleanup_free_ char *evc_root = read_text_file(e->root_pem);
                write_text(n->config, "v2tlsbaseroot-certificates.pem", evc_root, 0644);
                write_text(n->config, "root-certificate.pem", pem, 0644);
        }
        {
                _cleanup_(controller_client_freep) ControllerClient *c = client();
                ASSERT_ERROR(controller_client_fetch_certs_sync(c), EBADMSG);
                ASSERT_NOT_NULL(strstr(controller_client_last_error(c), "does not verify"));
        }
        ASSERT_EQ(count_files(dir, "signing-"), 0);
        ASSERT_EQ(count_files(dir, "ecdh-"), 0);
}

TEST(missing_config_is_a_clear_error) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        ControllerClient *c = NULL;
        _cleanup_free_ char *server = NULL;

        ASSERT_OK(asprintf(&server, "%s/server", n->config));
        write_text(n->config, "server", "https://evil/path\n", 0644);
        ASSERT_ERROR(controller_client_new(NULL, &c), EINVAL);
        ASSERT_OK(unlink(server));
        ASSERT_ERROR(controller_client_new(NULL, &c), ENOENT);
        ASSERT_NULL(c);
}

static char *post_uuid(ControllerClient *c, int *ret_error) {
        Org__Lfedge__Eve__Uuid__UuidRequest req = ORG__LFEDGE__EVE__UUID__UUID_REQUEST__INIT;
        _cleanup_(proto_freep) Org__Lfedge__Eve__Uuid__UuidResponse *resp = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        size_t size = 0;
        long status = 0;

        *ret_error = controller_client_post_sync(c, "uuid", &req.base, 0, &status, &payload, &size);
        if (*ret_error < 0)
                return NULL;
        ASSERT_EQ(status, 200);
        ASSERT_OK(PROTO_UNPACK(
                        &org__lfedge__eve__uuid__uuid_response__descriptor, payload, size, 4096, &resp));
        return strdup(resp->uuid);
}

TEST(tpm_signed_request_and_signer_refetch) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = NULL, *got = NULL, *dir = controller_dir(n);
        _cleanup_(controller_client_freep) ControllerClient *c = client();
        int r;

        /* No identity yet: a clear refusal, nothing sent. */
        ASSERT_NULL(post_uuid(c, &r));
        ASSERT_EQ(r, -ENOKEY);

        /* Not known to evc: 401 → -EPERM. */
        ASSERT_OK(controller_client_load_identity(c, NULL));
        ASSERT_NULL(post_uuid(c, &r));
        ASSERT_EQ(r, -EPERM);
        ASSERT_NOT_NULL(strstr(controller_client_last_error(c), "401"));

        /* Known: the TPM-signed envelope verifies at evc; the answer's signer is not stored yet, so the
         * client fetches /certs once on its own and stores it. */
        uuid = node_preregister(n, e);
        ASSERT_EQ(count_files(dir, "signing-"), 0);
        got = post_uuid(c, &r);
        ASSERT_OK(r);
        ASSERT_STREQ(got, uuid);
        ASSERT_EQ(count_files(dir, "signing-"), 1);

        /* A new client reads the stored signer: no refetch needed, and a planted file that does not chain to
         * the root is ignored. */
        {
                _cleanup_(controller_client_freep) ControllerClient *c2 = client();
                TestCA *other = test_ca_new("planted");
                _cleanup_free_ char *pem = read_text_file(other->cert), *g = NULL;

                write_text(dir, "signing-00000000000000000000000000000000.pem", pem, 0644);
                ASSERT_OK(controller_client_load_identity(c2, NULL));
                g = post_uuid(c2, &r);
                ASSERT_OK(r);
                ASSERT_STREQ(g, uuid);
        }

        /* Revoked: 403 → -EACCES. */
        ASSERT_EQ(EVC_RUN(e, NULL, "device", "revoke", uuid), 0);
        free(got);
        got = post_uuid(c, &r);
        ASSERT_EQ(r, -EACCES);
}

/* The controller rotates its signing key: the next answer names a signer the client does not know; it
 * fetches /certs once, verifies the new certificate against the root, replaces the old signing file, and
 * goes on. */
TEST(signing_rotation_refetches_once) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_free_ char *uuid = node_preregister(n, e), *got = NULL, *before = NULL, *after = NULL;
        _cleanup_(controller_client_freep) ControllerClient *c = client();
        int r;

        ASSERT_OK(controller_client_fetch_certs_sync(c));
        ASSERT_OK(controller_client_load_identity(c, NULL));
        ASSERT_EQ(assert_stored(n, e, "signing"), 1);
        before = signing_file(n);
        ASSERT_EQ(EVC_RUN(e, NULL, "keys", "rotate", "signing"), 0);
        got = post_uuid(c, &r);
        ASSERT_OK(r);
        ASSERT_STREQ(got, uuid);
        ASSERT_EQ(assert_stored(n, e, "signing"), 1); /* the old one is gone */
        after = signing_file(n);
        ASSERT_FALSE(streq(before, after));
}

TEST(onboarding_register_statuses) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(controller_client_freep) ControllerClient *c = client();
        _cleanup_free_ char *device_pem = NULL, *b64 = NULL, *path = NULL;
        Org__Lfedge__Eve__Register__ZRegisterMsg msg = ORG__LFEDGE__EVE__REGISTER__ZREGISTER_MSG__INIT;
        long status = 0;

        ASSERT_OK(asprintf(&path, "%s/device.cert.pem", n->config));
        device_pem = read_text_file(path);
        b64 = base64_encode(device_pem, strlen(device_pem));
        msg.pemcert = (ProtobufCBinaryData){ .len = strlen(b64), .data = (uint8_t *) b64 };
        msg.serial = n->serial;

        ASSERT_ERROR(controller_client_post_sync(
                                     c,
                                     "register",
                                     &msg.base,
                                     CONTROLLER_REQUEST_ONBOARDING,
                                     &status,
                                     NULL,
                                     NULL),
                     ENOKEY);
        ASSERT_OK(controller_client_load_onboarding(c, NULL, NULL));
        ASSERT_ERROR(controller_client_post_sync(
                                     c,
                                     "register",
                                     &msg.base,
                                     CONTROLLER_REQUEST_ONBOARDING,
                                     &status,
                                     NULL,
                                     NULL),
                     EACCES);
        ASSERT_EQ(status, 403);
        node_allow_onboarding(n, e);
        ASSERT_OK(controller_client_post_sync(
                        c, "register", &msg.base, CONTROLLER_REQUEST_ONBOARDING, &status, NULL, NULL));
        ASSERT_EQ(status, 201);
        ASSERT_OK(controller_client_post_sync(
                        c, "register", &msg.base, CONTROLLER_REQUEST_ONBOARDING, &status, NULL, NULL));
        ASSERT_EQ(status, 200);
        /* The same device certificate through another onboarding certificate: 409. */
        {
                _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
                _cleanup_(gnutls_x509_privkey_deinitp) gnutls_x509_privkey_t key = NULL;
                _cleanup_free_ char *cp = NULL, *kp = NULL;

                ASSERT_OK(asprintf(&cp, "%s/onboard2.pem", n->root));
                ASSERT_OK(asprintf(&kp, "%s/onboard2-key.pem", n->root));
                ASSERT_OK(evc_generate_cert(EVC_CERT_ROOT, "onboard2", NULL, NULL, cp, kp, &crt, &key));
                ASSERT_EQ(EVC_RUN(e, NULL, "onboard", "allow", "SN-other", "--cert", cp), 0);
                ASSERT_OK(controller_client_load_onboarding(c, cp, kp));
        }
        msg.serial = (char *) "SN-other";
        ASSERT_ERROR(controller_client_post_sync(
                                     c,
                                     "register",
                                     &msg.base,
                                     CONTROLLER_REQUEST_ONBOARDING,
                                     &status,
                                     NULL,
                                     NULL),
                     EEXIST);
        ASSERT_EQ(status, 409);
}

TEST(response_size_limit) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(controller_client_freep) ControllerClient *c = client();
        _cleanup_free_ char *dir = controller_dir(n);

        controller_client_set_response_max(c, 300); /* /certs is ~1.5 KiB */
        ASSERT_ERROR(controller_client_fetch_certs_sync(c), EFBIG);
        ASSERT_EQ(count_files(dir, "signing-"), 0);
}

TEST(timeouts_and_refusals) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        _cleanup_free_ char *server = NULL;
        uint64_t t0;

        /* A listener that accepts TCP but never speaks TLS: the total timeout ends it. */
        ASSERT_OK(fd);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(listen(fd, 4));
        ASSERT_OK(getsockname(fd, (struct sockaddr *) &sa, &len));
        ASSERT_OK(asprintf(&server, "127.0.0.1:%u\n", ntohs(sa.sin_port)));
        write_text(n->config, "server", server, 0644);
        {
                _cleanup_(controller_client_freep) ControllerClient *c = client();
                controller_client_set_timeouts(c, 200000, 400000);
                t0 = now_msec();
                ASSERT_ERROR(controller_client_fetch_certs_sync(c), ETIMEDOUT);
                /* curl's connect timeout covers the TLS handshake */
                ASSERT_LE(now_msec() - t0, 3000);
                ASSERT_GE(now_msec() - t0, 150);
        }
        /* Nothing listening: refused at once. */
        fd = safe_close(fd);
        {
                _cleanup_(controller_client_freep) ControllerClient *c = client();
                ASSERT_ERROR(controller_client_fetch_certs_sync(c), ECONNREFUSED);
        }
}

typedef struct Done {
        unsigned n;
        int error[4];
        long status[4];
        sd_event *event;
} Done;

static void on_done(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        Done *d = userdata;

        d->error[d->n] = error;
        d->status[d->n] = reply->status;
        if (++d->n == 3)
                (void) sd_event_exit(d->event, 0);
}

static void never_called(ControllerClient *c, int error, const ControllerReply *reply, void *userdata) {
        test_fail(__FILE__, __LINE__, "a cancelled request's handler ran");
}

TEST(parallel_requests_on_an_event_loop) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        _cleanup_free_ char *uuid = node_preregister(n, e); /* known to evc: /uuid answers 200 */
        Org__Lfedge__Eve__Uuid__UuidRequest req = ORG__LFEDGE__EVE__UUID__UUID_REQUEST__INIT;
        ControllerRequest *cancelled = NULL;
        Done d = {};

        ASSERT_OK(sd_event_new(&event));
        d.event = event;
        ASSERT_OK(controller_client_new(event, &c));
        ASSERT_OK(controller_client_load_identity(c, NULL));
        ASSERT_OK(controller_client_post(c, "uuid", &req.base, 0, on_done, &d, NULL));
        ASSERT_OK(controller_client_fetch_certs(c, on_done, &d, NULL));
        ASSERT_OK(controller_client_post(c, "uuid", &req.base, 0, never_called, NULL, &cancelled));
        ASSERT_OK(controller_client_post(c, "uuid", &req.base, 0, on_done, &d, NULL));
        controller_request_cancel(cancelled);
        ASSERT_OK(sd_event_loop(event));
        ASSERT_EQ(d.n, 3);
        for (unsigned i = 0; i < 3; i++) {
                ASSERT_OK(d.error[i]);
                ASSERT_EQ(d.status[i], 200);
        }
        ASSERT_EQ(controller_client_pending(c), 0);
        ASSERT_EQ(strlen(uuid), 36);
}

/* libcurl and the libraries it pulls, as this process maps them now ("" when none). The names are those of
 * the Debian GnuTLS flavour's tree; a name absent from a build's tree simply never shows. */
static char *curl_tree_mapped(void) {
        static const char *const names[] = { "libcurl", "libkrb5.",   "libgssapi_krb5", "libldap",
                                             "libssh2", "libnghttp2", "librtmp",        "libsasl2",
                                             "libpsl",  "libbrotli",  "libk5crypto" };
        _cleanup_free_ char *maps = read_text_file("/proc/self/maps");
        char *found = strdup("");

        ASSERT_NOT_NULL(maps);
        ASSERT_NOT_NULL(found);
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strstr(maps, names[i])) {
                        char *t;
                        ASSERT_OK(asprintf(&t, "%s%s ", found, names[i]));
                        free(found);
                        found = t;
                }
        return found;
}

/* An idle daemon does not carry libcurl: loaded for a burst of requests, unloaded (with its dependencies)
 * once none has run for the unload delay, loaded again by the next request. */
TEST(libcurl_mapped_only_while_requests_run) {
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(controller_client_freep) ControllerClient *c = NULL;
        _cleanup_free_ char *before = curl_tree_mapped(), *during = NULL, *after = NULL,
                            *dir = controller_dir(n);

        ASSERT_STREQ(before, ""); /* nothing in this test binary links them */
        ASSERT_OK(sd_event_new(&event));
        ASSERT_OK(controller_client_new(event, &c));
        controller_client_set_unload_delay(c, 200 * 1000);
        after = curl_tree_mapped();
        ASSERT_STREQ(after, ""); /* a client alone loads nothing */

        ASSERT_OK(controller_client_fetch_certs_sync(c));
        ASSERT_OK(controller_client_fetch_certs_sync(c)); /* within the delay: the same load serves it */
        during = curl_tree_mapped();
        ASSERT_NOT_NULL(strstr(during, "libcurl"));
        for (unsigned i = 0; i < 50; i++) {
                free(after);
                after = curl_tree_mapped();
                if (streq(after, ""))
                        break;
                ASSERT_OK(sd_event_run(event, 100 * 1000));
        }
        ASSERT_STREQ(after, "");

        /* Loaded again on demand. */
        ASSERT_OK(controller_client_fetch_certs_sync(c));
        ASSERT_EQ(count_files(dir, "signing-"), 1);
        free(during);
        during = curl_tree_mapped();
        ASSERT_NOT_NULL(strstr(during, "libcurl"));
}

/* Without a loadable libcurl the client still starts, and a request fails with a sentence, not a crash. Run
 * in a child whose LD_LIBRARY_PATH offers a broken libcurl first (the loader reads it at start only). */
TEST(libcurl_unavailable_is_a_clear_error) {
        if (getenv("EVE_TEST_CURL_BROKEN")) {
                /* The loader has read it; the fixtures' tools (tpm2-tools link libcurl) must not see it. */
                ASSERT_OK(unsetenv("LD_LIBRARY_PATH"));
                Evc *e = evc_new(NULL);
                Node *n = node_new(e);
                _cleanup_(controller_client_freep) ControllerClient *c = client();
                _cleanup_free_ char *dir = controller_dir(n);

                ASSERT_ERROR(controller_client_fetch_certs_sync(c), EOPNOTSUPP);
                ASSERT_TRUE(strncmp(controller_client_last_error(c), "libcurl unavailable: ", 21) == 0);
                ASSERT_NOT_NULL(strstr(controller_client_last_error(c), "file too short"));
                ASSERT_EQ(count_files(dir, "signing-"), 0);
                ASSERT_EQ(controller_client_pending(c), 0);
                /* Asked again, the same answer (nothing half-loaded stays behind). */
                ASSERT_ERROR(controller_client_fetch_certs_sync(c), EOPNOTSUPP);
                return;
        }
        _cleanup_free_ char *libdir = test_mkdtemp("badcurl"), *ldpath = NULL;
        char exe[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);

        ASSERT_TRUE(k > 0);
        exe[k] = '\0';
        /* Empty files under both names libcurl goes by. */
        write_text(libdir, "libcurl-gnutls.so.4", "", 0644);
        write_text(libdir, "libcurl.so.4", "", 0644);
        ASSERT_OK(asprintf(&ldpath, "LD_LIBRARY_PATH=%s", libdir));
        char *argv[] = { (char *) "env",
                         ldpath,
                         (char *) "EVE_TEST_CURL_BROKEN=1",
                         (char *) "TESTFUNCS=libcurl_unavailable_is_a_clear_error",
                         exe,
                         NULL };
        ASSERT_EQ(test_run(argv, NULL), 0);
}

DEFINE_TEST_MAIN
