/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Access control on the bus, as a user meets it: the real eve-vaultd, eve-attestd and eve-configd on a
 * private dbus-daemon that loads the project's policy files (dbus/ *.conf), registered with evc over TLS.
 * Every method of org.eve.Vault*, org.eve.Attest and org.eve.Config is found in the daemons' own
 * --bus-introspect output (a method added later is covered without touching this test) and called, with
 * well-typed arguments, by the unprivileged user "nobody". Methods that change something or hand out key
 * material must answer the daemon's named AccessDenied error; the reads open to everyone are listed below by
 * name (a new method is never silently counted as a read). Properties.Set on each interface is refused too.
 * Afterwards the vaults are as they were. The figures (calls, denied) are printed for docs/SECURITY.md. */
#include <inttypes.h>
#include <sys/wait.h>

#include "attest-fixtures.h"
#include "bus-util.h"
#include "controller-client.h"
#include "vault-test.h"

#define ATTESTD "services/attestd/eve-attestd"
#define VAULTD "services/vaultd/eve-vaultd"
#define CONFIGD "services/configd/eve-configd"

/* Open to every caller by design (docs/DBUS_API.md): listings and state; GetSecret is answered per secret
 * from its ACL (test-configd proves an unlisted uid is refused). */
static const char *const open_methods[] = { "ListVaults", "GetVault", "ListSecrets", "GetSecret" };

static bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

/* Well-formed values for string arguments by name (and "size": 64 MiB), so that a daemon that checks its
 * arguments before the caller (as systemd's daemons do before polkit) gets as far as the access check;
 * others get "". */
static const char *string_for(const char *arg) {
        if (streq_ptr(arg, "name"))
                return "sec-test";
        if (streq_ptr(arg, "key_source"))
                return "tpm";
        return "";
}

typedef struct Call {
        const char *service, *path, *interface, *member, *signature;
        char *const *arg_names;    /* of the top-level arguments, NULL-terminated */
        const char *set_interface; /* Properties.Set: the interface whose property is set */
        char *error;               /* the error name nobody got, or NULL on success */
} Call;

/* A zero value of every type in sig, appended to m (arrays empty, strings empty, object paths "/"). */
static int append_default(sd_bus_message *m, const char **sig) {
        char c = **sig;
        int r;

        (*sig)++;
        switch (c) {
        case 'y':
                return sd_bus_message_append_basic(m, c, &(uint8_t){ 0 });
        case 'b':
        case 'i':
        case 'u':
        case 'h':
                if (c == 'h')
                        return sd_bus_message_append_basic(m, c, &(int){ STDERR_FILENO });
                return sd_bus_message_append_basic(m, c, &(int32_t){ 0 });
        case 'n':
        case 'q':
                return sd_bus_message_append_basic(m, c, &(int16_t){ 0 });
        case 'x':
        case 't':
                return sd_bus_message_append_basic(m, c, &(int64_t){ 0 });
        case 'd':
                return sd_bus_message_append_basic(m, c, &(double){ 0 });
        case 's':
        case 'g':
                return sd_bus_message_append_basic(m, c, "");
        case 'o':
                return sd_bus_message_append_basic(m, c, "/");
        case 'v':
                return sd_bus_message_append(m, "v", "s", "");
        case 'a': {
                /* The element type, up to its end. */
                const char *start = *sig;
                _cleanup_free_ char *elem = NULL;
                int depth = 0;
                do {
                        if (**sig == '(' || **sig == '{')
                                depth++;
                        else if (**sig == ')' || **sig == '}')
                                depth--;
                        (*sig)++;
                } while (depth > 0 || (*sig)[-1] == 'a');
                elem = strndup(start, (size_t) (*sig - start));
                if (!elem)
                        return -ENOMEM;
                r = sd_bus_message_open_container(m, 'a', elem);
                return r < 0 ? r : sd_bus_message_close_container(m);
        }
        case '(': {
                const char *start = *sig;
                _cleanup_free_ char *contents = NULL;
                int depth = 1;
                while (depth > 0) {
                        depth += **sig == '(' ? 1 : **sig == ')' ? -1 : 0;
                        (*sig)++;
                }
                contents = strndup(start, (size_t) (*sig - 1 - start));
                if (!contents)
                        return -ENOMEM;
                r = sd_bus_message_open_container(m, 'r', contents);
                for (const char *p = contents; r >= 0 && *p;)
                        r = append_default(m, &p);
                return r < 0 ? r : sd_bus_message_close_container(m);
        }
        default:
                return -EINVAL;
        }
}

static int call_as_nobody(void *userdata) {
        Call *c = userdata;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *sig = c->signature;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, c->service, c->path, c->interface, c->member);
        if (r >= 0 && c->set_interface)
                r = sd_bus_message_append(m, "ssv", c->set_interface, "State", "s", "Unlocked");
        for (size_t i = 0; r >= 0 && !c->set_interface && *sig; i++) {
                const char *name = c->arg_names && c->arg_names[i] ? c->arg_names[i] : NULL;
                if (*sig == 's') {
                        r = sd_bus_message_append_basic(m, 's', string_for(name));
                        sig++;
                } else if (*sig == 't' && streq_ptr(name, "size")) {
                        r = sd_bus_message_append_basic(m, 't', &(uint64_t){ UINT64_C(64) << 20 });
                        sig++;
                } else
                        r = append_default(m, &sig);
        }
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, UINT64_C(5000000), &error, &reply);
        if (r >= 0)
                return 0;
        /* The error name travels back through the exit code's channel: an index into a short list. */
        if (!sd_bus_error_is_set(&error))
                return 1;
        if (has_suffix(error.name, ".Error.AccessDenied"))
                return 2;
        if (streq(error.name, SD_BUS_ERROR_PROPERTY_READ_ONLY) ||
            streq(error.name, SD_BUS_ERROR_UNKNOWN_PROPERTY))
                return 3;
        fprintf(stderr, "%s.%s as nobody: %s: %s\n", c->interface, c->member, error.name, error.message);
        return 4;
}

/* The methods (name, input signature) of each org.eve.* interface in a daemon's --bus-introspect output. */
typedef struct Method {
        char *interface, *name, *signature;
        char *arg_names[16];
        size_t n_args;
} Method;

static size_t parse_methods(const char *xml, Method *ret, size_t max) {
        _cleanup_free_ char *iface = NULL;
        size_t n = 0;

        for (const char *p = xml; (p = strchr(p, '<')); p++) {
                const char *q;
                if (has_prefix(p, "<interface name=\"")) {
                        q = p + strlen("<interface name=\"");
                        free(iface);
                        iface = strndup(q, strcspn(q, "\""));
                        ASSERT_NOT_NULL(iface);
                } else if (has_prefix(p, "<method name=\"") && iface && has_prefix(iface, "org.eve.")) {
                        Method *m = &ret[n++];
                        const char *end = strstr(p, "/>"), *close = strstr(p, "</method>");
                        ASSERT_TRUE(n <= max);
                        q = p + strlen("<method name=\"");
                        m->interface = strdup(iface);
                        m->name = strndup(q, strcspn(q, "\""));
                        m->signature = strdup("");
                        ASSERT_TRUE(m->interface && m->name && m->signature);
                        /* <method name="X"/> has no arguments. */
                        if (end && (!close || end < strchr(p, '>') + 1))
                                continue;
                        for (const char *a = p; close && (a = strstr(a, "<arg ")) && a < close; a++) {
                                const char *t = strstr(a, "type=\""), *gt = strchr(a, '>');
                                if (!strstr(a, "direction=\"in\"") || strstr(a, "direction=\"in\"") > gt)
                                        continue;
                                _cleanup_free_ char *s = NULL;
                                const char *an = strstr(a, "name=\"");
                                if (an && an < gt && m->n_args < ELEMENTSOF(m->arg_names) - 1) {
                                        an += strlen("name=\"");
                                        m->arg_names[m->n_args++] = strndup(an, strcspn(an, "\""));
                                }
                                t += strlen("type=\"");
                                ASSERT_OK(asprintf(&s, "%s%.*s", m->signature, (int) strcspn(t, "\""), t));
                                free(m->signature);
                                m->signature = TAKE_PTR(s);
                        }
                }
        }
        return n;
}

static bool is_open(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(open_methods); i++)
                if (streq(open_methods[i], name))
                        return true;
        return false;
}

static char *introspect(const char *rel) {
        _cleanup_free_ char *exe = build_path(rel);
        char *argv[] = { exe, (char *) "--bus-introspect", NULL }, *out = NULL;

        ASSERT_EQ(test_run(argv, &out), 0);
        return out;
}

static void run_register(Node *n, Evc *e) {
        _cleanup_free_ char *exe = build_path("services/register/eve-register"), *out = NULL;
        char *argv[] = { exe, NULL };

        node_allow_onboarding(n, e);
        if (test_run(argv, &out) != 0)
                test_fail(__FILE__, __LINE__, "eve-register failed:\n%s", out);
}

static char *vault_state(void) {
        _cleanup_free_ char *a = vt_get_str("image", "State"), *b = vt_get_str("config", "State");
        char *s = NULL;

        ASSERT_OK(
                        asprintf(&s,
                                 "%s/%s/%" PRIu64 "/%" PRIu64,
                                 a,
                                 b,
                                 vt_get_u64("image", "KeyGeneration"),
                                 vt_get_u64("config", "KeyGeneration")));
        return s;
}

TEST(every_mutating_method_denied_to_an_unprivileged_caller) {
        static const struct {
                const char *rel, *service, *path_of;
        } daemons[] = {
                { VAULTD, "org.eve.Vault", NULL },
                { ATTESTD, "org.eve.Attest", "/org/eve/Attest" },
                { CONFIGD, "org.eve.Config", "/org/eve/Config" },
        };
        _cleanup_free_ char *worker = build_path("services/vaultd/eve-vault-worker"), *env = NULL,
                            *image = vt_path("image"), *before = NULL, *after = NULL;
        unsigned calls = 0, denied = 0, open = 0, sets = 0, sets_refused = 0, wrong = 0;
        Evc *e = evc_new(NULL);
        Node *n = node_new(e);

        test_bus_start(NULL);
        run_register(n, e);
        ASSERT_OK(asprintf(&env, "EVE_VAULT_WORKER=%s", worker));
        daemon_start(VAULTD, "org.eve.Vault", env, "--image-size", "32M", "--config-size", "32M", NULL);
        vt_wait_op("config", "unlock", 0);
        vt_wait_op("image", "unlock", 0);
        daemon_start(ATTESTD, "org.eve.Attest", NULL, "--retry-base=30s", NULL);
        daemon_start(CONFIGD, "org.eve.Config", NULL, "--no-fetch", "--no-info", "--no-mount-check", NULL);
        before = vault_state();

        for (size_t d = 0; d < ELEMENTSOF(daemons); d++) {
                _cleanup_free_ char *xml = introspect(daemons[d].rel);
                Method methods[64] = {};
                size_t nm = parse_methods(xml, methods, ELEMENTSOF(methods));
                _cleanup_free_ char *last_iface = NULL;

                ASSERT_GE(nm, 2u);
                for (size_t i = 0; i < nm; i++) {
                        Method *m = &methods[i];
                        const char *path = daemons[d].path_of
                                        ?: streq(m->interface, "org.eve.Vault.Vault") ? image
                                                                                      : VT_MANAGER;
                        Call c = {
                                .service = daemons[d].service,
                                .path = path,
                                .interface = m->interface,
                                .member = m->name,
                                .signature = m->signature,
                                .arg_names = m->arg_names,
                        };
                        int r;

                        if (!last_iface || !streq(last_iface, m->interface)) {
                                /* Properties.Set on the interface (every property is read-only). */
                                Call s = {
                                        .service = c.service,
                                        .path = path,
                                        .interface = "org.freedesktop.DBus.Properties",
                                        .member = "Set",
                                        .signature = "",
                                        .set_interface = m->interface,
                                };
                                r = test_call_as("nobody", call_as_nobody, &s);
                                sets++;
                                if (r == 2 || r == 3 || r == 4)
                                        sets_refused++;
                                free(last_iface);
                                last_iface = strdup(m->interface);
                        }
                        if (is_open(m->name)) {
                                open++;
                                continue;
                        }
                        calls++;
                        r = test_call_as("nobody", call_as_nobody, &c);
                        if (r == 2) {
                                denied++;
                                printf("denied: %s.%s\n", c.interface, c.member);
                        } else {
                                wrong++;
                                fprintf(stderr,
                                        "NOT DENIED: %s %s.%s(%s) as nobody (result %d)\n",
                                        c.service,
                                        c.interface,
                                        c.member,
                                        c.signature,
                                        r);
                        }
                }
                for (size_t i = 0; i < nm; i++) {
                        free(methods[i].interface);
                        free(methods[i].name);
                        free(methods[i].signature);
                        for (size_t k = 0; k < methods[i].n_args; k++)
                                free(methods[i].arg_names[k]);
                }
        }
        after = vault_state();
        printf("access control: %u mutating or key-releasing methods called as nobody, %u denied (%u%%); %u "
               "open reads skipped; Properties.Set refused %u/%u\n",
               calls,
               denied,
               calls ? 100 * denied / calls : 0,
               open,
               sets_refused,
               sets);
        ASSERT_EQ(wrong, 0u);
        ASSERT_GE(calls, 10u);
        ASSERT_EQ(denied, calls);
        ASSERT_EQ(sets_refused, sets);
        ASSERT_STREQ(before, after);
}

DEFINE_TEST_MAIN
