/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Secret hygiene (issue 11): a node run that makes every kind of secret, then a search for each of them
 * where they must never be. The run: evc over TLS, swtpm + eve-tpm-setup, eve-register, eve-vaultd creating
 * and sealing the default vaults, eve-attestd attesting and escrowing, eve-configd fetching a config with an
 * encrypted Wi-Fi password and handing it to root over the bus. The secrets the test knows:
 *   - the Wi-Fi password (the config plaintext), as the administrator typed it into evc;
 *   - the integrity token (org.eve.Attest.GetIntegrityToken): allowed only in /run/eve and evc's database;
 *   - each vault's secret (32 bytes) and its keyslot passphrase (base64 of it): unwrapped by the test from
 *     the escrow blobs eve-vaultd handed out, with the node's own TPM once the daemons have stopped.
 * Searched (secret-scan.sh: raw, hex, base64 at every alignment) in: every daemon's stderr log, evc's
 * directory (its database included: the password is stored sealed, escrow only wrapped), the whole node tree
 * (config, certs, status, run, persist: the vault image files are skipped, they hold the LUKS2 keyslots by
 * design), and any core file. Each daemon also runs with a core-size limit of 0 (/proc/PID/limits). */
#include <fcntl.h>
#include <sys/stat.h>

#include "attest-fixtures.h"
#include "bus-util.h"
#include "controller-client.h"
#include "encoding.h"
#include "evetrust.pb-c.h"
#include "memory-util.h"
#include "paths.h"
#include "proto-util.h"
#include "tpm2-util.h"
#include "vault-escrow.h"
#include "vault-test.h"

#define ATTESTD "services/attestd/eve-attestd"
#define VAULTD "services/vaultd/eve-vaultd"
#define CONFIGD "services/configd/eve-configd"
#define S_COMPLETE 7U
#define KT_VAULT_ESCROW 17750U

static void write_secret(const char *dir, const char *name, const void *p, size_t n) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        ASSERT_OK(asprintf(&path, "%s/%s", dir, name));
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ASSERT_OK(fd);
        ASSERT_EQ(write(fd, p, n), (ssize_t) n);
}

static void assert_no_core_dumps(pid_t pid, const char *name) {
        _cleanup_free_ char *path = NULL, *limits = NULL, *line = NULL;

        ASSERT_OK(asprintf(&path, "/proc/%d/limits", (int) pid));
        limits = read_text_file(path);
        ASSERT_NOT_NULL(limits);
        line = strndup(strstr(limits, "Max core file size"), 60);
        ASSERT_NOT_NULL(line);
        if (!strstr(line, " 0 "))
                test_fail(__FILE__, __LINE__, "%s may dump core: %s", name, line);
}

static char *get_wifi_password(void) {
        sd_bus *bus = test_bus();
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *f, *v;
        char *value = NULL;
        int r;

        r = sd_bus_call_method(
                        bus,
                        "org.eve.Config",
                        "/org/eve/Config",
                        "org.eve.Config",
                        "GetSecret",
                        &error,
                        &reply,
                        "s",
                        "wifi.office");
        if (r < 0) {
                fprintf(stderr, "GetSecret: %s: %s\n", error.name, error.message);
                return NULL;
        }
        ASSERT_OK(sd_bus_message_enter_container(reply, 'a', "{ss}"));
        while (sd_bus_message_read(reply, "{ss}", &f, &v) > 0)
                if (streq(f, "wifiPassword"))
                        value = strdup(v);
        return value;
}

static void get_token(uint8_t **ret, size_t *ret_size) {
        sd_bus *bus = test_bus();
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *p;
        size_t n;

        ASSERT_OK(sd_bus_call_method(
                        bus,
                        "org.eve.Attest",
                        "/org/eve/Attest",
                        "org.eve.Attest",
                        "GetIntegrityToken",
                        &error,
                        &reply,
                        NULL));
        ASSERT_OK(sd_bus_message_read_array(reply, 'y', &p, &n));
        ASSERT_GE(n, 16u);
        *ret = malloc(n);
        ASSERT_NOT_NULL(*ret);
        memcpy(*ret, p, n);
        *ret_size = n;
}

TEST(no_secret_in_logs_files_or_cores) {
        static const char wifi[] = "Tr0ub4dor&3-secret-scan-wifi";
        _cleanup_free_ char *worker = build_path("services/vaultd/eve-vault-worker"), *env = NULL,
                            *out = NULL, *reg = build_path("services/register/eve-register"), *uuid = NULL,
                            *got = NULL, *acl_dir = NULL, *secrets = NULL, *script = NULL, *evc_dir = NULL,
                            *cmd = NULL, *images = NULL;
        _cleanup_free_ uint8_t *token = NULL;
        size_t token_size, n_vault_secrets = 0;
        VtEntries escrow = {};
        Daemon *vd, *ad, *cd;
        Evc *e;
        Node *n;
        char u[37];
        int r;

        test_bus_start(NULL);
        e = evc_new(NULL);
        n = node_new(e);
        node_allow_onboarding(n, e);
        {
                char *argv[] = { reg, NULL };
                ASSERT_EQ(test_run(argv, &out), 0);
                out = mfree(out);
        }
        ASSERT_OK(controller_read_uuid(u));
        uuid = strdup(u);
        ASSERT_EQ(evc_run(e, NULL, "secret", "set", uuid, "office", "--kind", "wifi", "--value", wifi, NULL),
                  0);
        ASSERT_OK(asprintf(&acl_dir, "%s/secrets.d", n->config));
        ASSERT_OK(eve_mkdir_p(acl_dir, 0755));
        write_text(acl_dir, "50-test.conf", "[Secret wifi.office]\nAllowUser=root\n", 0644);

        ASSERT_OK(asprintf(&env, "EVE_VAULT_WORKER=%s", worker));
        vd = daemon_start(VAULTD, "org.eve.Vault", env, "--image-size", "32M", "--config-size", "32M", NULL);
        vt_wait_op("config", "unlock", 0);
        vt_wait_op("image", "unlock", 0);
        ad = daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=200ms", "--retry-max=1s", NULL);
        attest_wait_state(ad, ATTEST_STATE_BIT(S_COMPLETE), 30000);
        cd =
                        daemon_start(CONFIGD,
                                     "org.eve.Config",
                                     NULL,
                                     "--interval=1s",
                                     "--retry=200ms",
                                     "--no-info",
                                     "--no-mount-check",
                                     NULL);
        for (unsigned i = 0; i < 100 && !(got = get_wifi_password()); i++)
                usleep(200000);
        if (!got)
                daemon_dump(cd);
        ASSERT_STREQ(got, wifi); /* the secret really went through */
        get_token(&token, &token_size);
        vt_get_escrow_keys(&escrow);
        for (const char *d[] = { "vaultd", "attestd", "configd" }, **p = d; p < d + 3; p++) {
                pid_t pid = p == d ? vd->pid : p == d + 1 ? ad->pid : cd->pid;
                assert_no_core_dumps(pid, *p);
        }
        daemon_stop(cd);
        daemon_stop(ad);
        daemon_stop(vd);

        /* The secrets, in a directory the scan skips. */
        secrets = test_mkdtemp("secrets");
        ASSERT_OK(chmod(secrets, 0700));
        write_secret(secrets, "wifi-password", wifi, strlen(wifi));
        write_secret(secrets, "integrity-token", token, token_size);
        {
                _cleanup_(tpm2_context_unrefp) Tpm2Context *tpm = NULL;
                ASSERT_OK(tpm2_context_new(n->tpm->tcti, &tpm));
                for (size_t i = 0; i < escrow.n; i++) {
                        _cleanup_(proto_freep) Org__Eve__Trust__EveVaultEscrow *ve = NULL;
                        _cleanup_(eve_secret_freep) uint8_t *secret = NULL;
                        _cleanup_free_ char *b64 = NULL, *name = NULL;
                        const char *why = NULL;

                        if (escrow.e[i].type != KT_VAULT_ESCROW)
                                continue;
                        ASSERT_OK(
                                        PROTO_UNPACK(&org__eve__trust__eve_vault_escrow__descriptor,
                                                     escrow.e[i].key,
                                                     escrow.e[i].size,
                                                     4096,
                                                     &ve));
                        r = escrow_unwrap(tpm, ve->data.data, ve->data.len, &secret, &why);
                        if (r < 0)
                                test_fail(__FILE__,
                                          __LINE__,
                                          "escrow of %s: %s",
                                          ve->vault_uuid,
                                          why ?: "?");
                        ASSERT_OK(asprintf(&name, "vault-%s", ve->vault_uuid));
                        write_secret(secrets, name, secret, TPM2_SECRET_SIZE);
                        /* The keyslot passphrase is base64 of the secret: searched raw as well. */
                        b64 = base64_encode(secret, TPM2_SECRET_SIZE);
                        ASSERT_NOT_NULL(b64);
                        free(name);
                        ASSERT_OK(asprintf(&name, "passphrase-%s", ve->vault_uuid));
                        write_secret(secrets, name, b64, strlen(b64));
                        n_vault_secrets++;
                }
        }
        ASSERT_EQ(n_vault_secrets, 2u); /* the config and image vaults */

        script = test_srcpath("tests/vm/guest/secret-scan.sh");
        evc_dir = strdup(e->dir);
        ASSERT_OK(asprintf(&images, "%s", n->vault_img));
        /* Key material and the config plaintext: nowhere. The integrity token: only where it lives by
         * design (DESIGN.md: memory and /run for the node; evc's database for the controller). */
        ASSERT_OK(asprintf(
                        &cmd,
                        "%1$s --exclude %2$s --exclude %3$s %2$s/vault-* %2$s/passphrase-* %2$s/wifi-* -- "
                        "%4$s "
                        "%5$s %6$s && "
                        "%1$s --exclude %2$s --exclude %3$s --allow %6$s/run/eve/integrity-token --allow "
                        "%5$s/evc.db %2$s/integrity-token -- %4$s %5$s %6$s",
                        script,
                        secrets,
                        images,
                        test_tmpdir(),
                        evc_dir,
                        n->root));
        {
                char *argv[] = { (char *) "/bin/sh", (char *) "-c", cmd, NULL };
                r = test_run(argv, &out);
        }
        printf("%s", out);
        if (r != 0)
                test_fail(__FILE__, __LINE__, "secret scan found key material (exit %d):\n%s", r, out);
        ASSERT_NOT_NULL(strstr(out, "5 secrets"));
        ASSERT_NOT_NULL(strstr(out, "1 secrets"));
        vt_entries_done(&escrow);
}

DEFINE_TEST_MAIN
