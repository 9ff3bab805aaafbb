/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc: the reference controller. One binary: "evc serve" runs the HTTPS API, every other verb administers the
 * same SQLite store (tables for people, --json for programs). */
#include "evc.h"

#include <json-c/json.h>
#include <time.h>

#include "encoding.h"
#include "evc-cli.h"
#include "evc-keys.h"
#include "info.pb-c.h"
#include "log.h"
#include "main-func.h"
#include "memory-util.h"
#include "proto-util.h"

#define PCR_ARGS_MAX 24

static const char *arg_dir = NULL;
static const char *arg_listen = "127.0.0.1:8443";
static const char *arg_port_file = NULL;
static const char *arg_cert = NULL;
static const char *arg_serial = NULL;
static const char *arg_kind = NULL;
static const char *arg_value = NULL;
static const char *arg_baseos = NULL;
static const char *arg_device = NULL;
static const char *arg_pcrs[PCR_ARGS_MAX];
static size_t arg_n_pcrs = 0;
static unsigned arg_nonce_ttl_ms = EVC_NONCE_TTL_DEFAULT_MS;
static size_t arg_body_max = EVC_BODY_MAX_DEFAULT;
static unsigned arg_threads = EVC_THREADS_DEFAULT;
bool arg_json = false;
const char *arg_size = NULL, *arg_key_source = NULL, *arg_vault_pcrs = NULL, *arg_policy_id = NULL,
           *arg_state = NULL, *arg_uuid = NULL, *arg_name = NULL, *arg_vault = NULL;
bool arg_rotate = false, arg_unchecked = false;

static int help(void) {
        printf("evc — eve-trust reference controller\n\n"
               "  evc init --dir DIR\n"
               "  evc serve --dir DIR [--listen 127.0.0.1:PORT] [--port-file FILE] [--nonce-ttl SEC] "
               "[--body-max BYTES]\n"
               "  evc device add --cert DEVICE.pem [--serial S] | list | show DEV | revoke DEV | "
               "reset-certs DEV\n"
               "  evc onboard allow SERIAL --cert ONBOARD.pem\n"
               "  evc baseline show DEV | accept DEV\n"
               "  evc upgrade expect DEV --pcr N=HEX [--pcr …] [--baseos VERSION]\n"
               "  evc config set DEV [KEY=VALUE …] [--baseos VERSION]\n"
               "  evc secret set DEV NAME --kind wifi|datastore|cloudinit --value VALUE | list DEV\n"
               "  evc location-lock on|off DEV\n"
               "  evc share drop DEV VAULT_UUID   destroys the controller share of a tpm+controller vault:\n"
               "                                  that vault can never be opened again (its data is "
               "lost)\n\n"
               "DIR defaults to $EVC_DIR. DEV is a UUID, serial or certificate-hash prefix. --json for "
               "machine output.\n");
        return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        if (isempty(s) || *s == '-')
                return -EINVAL;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Options may appear anywhere; what remains is positional. */
static int parse_argv(int argc, char **argv, char ***ret_pos, size_t *ret_n) {
        static const char *const with_value[] = {
                "--dir",        "--listen", "--port-file", "--cert",     "--serial",  "--kind",   "--value",
                "--baseos",     "--pcr",    "--nonce-ttl", "--body-max", "--threads", "--device", "--size",
                "--key-source", "--pcrs",   "--policy-id", "--state",    "--uuid",    "--name",   "--vault"
        };
        char **pos = calloc((size_t) argc + 1, sizeof(char *));
        size_t n = 0;

        if (!pos)
                return log_oom();
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = NULL;
                bool needs = false;

                if (streq(a, "--help") || streq(a, "-h")) {
                        free(pos);
                        return help() + 1;
                }
                if (streq(a, "--json")) {
                        arg_json = true;
                        continue;
                }
                if (streq(a, "--rotate") || streq(a, "--unchecked")) {
                        *(streq(a, "--rotate") ? &arg_rotate : &arg_unchecked) = true;
                        continue;
                }
                for (size_t k = 0; k < ELEMENTSOF(with_value); k++)
                        if (streq(a, with_value[k]))
                                needs = true;
                if (!needs) {
                        if (a[0] == '-' && a[1] == '-') {
                                free(pos);
                                return log_error_errno(EINVAL, "Unknown option %s (see --help).", a);
                        }
                        pos[n++] = argv[i];
                        continue;
                }
                if (i + 1 >= argc) {
                        free(pos);
                        return log_error_errno(EINVAL, "%s needs a value.", a);
                }
                v = argv[++i];
                if (streq(a, "--dir"))
                        arg_dir = v;
                else if (streq(a, "--listen"))
                        arg_listen = v;
                else if (streq(a, "--port-file"))
                        arg_port_file = v;
                else if (streq(a, "--cert"))
                        arg_cert = v;
                else if (streq(a, "--serial"))
                        arg_serial = v;
                else if (streq(a, "--kind"))
                        arg_kind = v;
                else if (streq(a, "--value"))
                        arg_value = v;
                else if (streq(a, "--baseos"))
                        arg_baseos = v;
                else if (streq(a, "--device"))
                        arg_device = v;
                else if (streq(a, "--size"))
                        arg_size = v;
                else if (streq(a, "--key-source"))
                        arg_key_source = v;
                else if (streq(a, "--pcrs"))
                        arg_vault_pcrs = v;
                else if (streq(a, "--policy-id"))
                        arg_policy_id = v;
                else if (streq(a, "--state"))
                        arg_state = v;
                else if (streq(a, "--uuid"))
                        arg_uuid = v;
                else if (streq(a, "--name"))
                        arg_name = v;
                else if (streq(a, "--vault"))
                        arg_vault = v;
                else if (streq(a, "--pcr")) {
                        if (arg_n_pcrs >= PCR_ARGS_MAX) {
                                free(pos);
                                return log_error_errno(E2BIG, "Too many --pcr.");
                        }
                        arg_pcrs[arg_n_pcrs++] = v;
                } else {
                        unsigned long long x;
                        unsigned long long max = streq(a, "--nonce-ttl") ? 86400
                                        : streq(a, "--threads")          ? EVC_THREADS_MAX
                                                                         : 64 * 1024 * 1024;
                        if (parse_uint(v, max, &x) < 0 || x == 0) {
                                free(pos);
                                return log_error_errno(EINVAL, "Bad value for %s: %s", a, v);
                        }
                        if (streq(a, "--nonce-ttl"))
                                arg_nonce_ttl_ms = (unsigned) x * 1000;
                        else if (streq(a, "--threads"))
                                arg_threads = (unsigned) x;
                        else
                                arg_body_max = (size_t) x;
                }
        }
        if (!arg_dir)
                arg_dir = getenv_nonempty("EVC_DIR");
        *ret_pos = pos;
        *ret_n = n;
        return 0;
}

static int open_evc(Evc **ret) {
        if (!arg_dir)
                return log_error_errno(EINVAL, "No controller directory: use --dir DIR or $EVC_DIR.");
        return evc_load(arg_dir, ret);
}

int print_json(json_object *o) {
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
        return 0;
}

json_object *jstr(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

const char *fmt_time(int64_t t, char buf[static 32]) {
        struct tm tm;
        time_t tt = (time_t) t;

        if (t <= 0 || !gmtime_r(&tt, &tm))
                return "-";
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return buf;
}

/* ---- device ---- */

static int device_add(Evc *e) {
        _cleanup_free_ uint8_t *pem = NULL;
        _cleanup_free_ char *uuid = NULL;
        size_t n;
        int r;

        if (!arg_cert)
                return log_error_errno(EINVAL, "device add needs --cert DEVICE.pem");
        r = evc_read_file(arg_cert, &pem, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", arg_cert);
        r = evc_device_add(e, (const char *) pem, n, arg_serial, &uuid);
        if (r < 0)
                return r;
        if (arg_json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "uuid", jstr(uuid));
                return print_json(o);
        }
        printf("%s\n", uuid);
        return 0;
}

#define DEVICE_COLS                                                                              \
        "id, uuid, serial, registered, revoked, trust, trust_reason, last_attest, last_result, " \
        "lower(hex(cert_hash)), "                                                                \
        "ecdh_pem IS NOT NULL, attest_pem IS NOT NULL, certs_locked, info_time, location_lock, " \
        "baseos_version, "                                                                       \
        "(SELECT count(*) FROM escrow WHERE device_id = devices.id), "                           \
        "(SELECT count(*) FROM secrets WHERE device_id = devices.id), itoken IS NOT NULL, "      \
        "cleartext_fallback, "                                                                   \
        "(SELECT lower(hex(substr(cert_hash, 1, 16))) FROM ckeys WHERE id = devices.ecdh_in_use)"
#define DEVICE_COL_INFO 21

static json_object *device_json(sqlite3_stmt *st) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "uuid", jstr((const char *) sqlite3_column_text(st, 1)));
        json_object_object_add(o, "serial", jstr((const char *) sqlite3_column_text(st, 2)));
        json_object_object_add(o, "registered", json_object_new_boolean(sqlite3_column_int(st, 3)));
        json_object_object_add(o, "revoked", json_object_new_boolean(sqlite3_column_int(st, 4)));
        json_object_object_add(o, "trust", jstr((const char *) sqlite3_column_text(st, 5)));
        json_object_object_add(o, "trust_reason", jstr((const char *) sqlite3_column_text(st, 6)));
        json_object_object_add(o, "last_attest", json_object_new_int64(sqlite3_column_int64(st, 7)));
        json_object_object_add(o, "last_result", jstr((const char *) sqlite3_column_text(st, 8)));
        json_object_object_add(o, "cert_sha256", jstr((const char *) sqlite3_column_text(st, 9)));
        json_object_object_add(o, "has_ecdh_cert", json_object_new_boolean(sqlite3_column_int(st, 10)));
        json_object_object_add(o, "has_attest_cert", json_object_new_boolean(sqlite3_column_int(st, 11)));
        json_object_object_add(o, "certs_locked", json_object_new_boolean(sqlite3_column_int(st, 12)));
        json_object_object_add(o, "info_time", json_object_new_int64(sqlite3_column_int64(st, 13)));
        json_object_object_add(o, "location_lock", json_object_new_boolean(sqlite3_column_int(st, 14)));
        json_object_object_add(o, "baseos_version", jstr((const char *) sqlite3_column_text(st, 15)));
        json_object_object_add(o, "escrowed_keys", json_object_new_int64(sqlite3_column_int64(st, 16)));
        json_object_object_add(o, "secrets", json_object_new_int64(sqlite3_column_int64(st, 17)));
        json_object_object_add(o, "has_integrity_token", json_object_new_boolean(sqlite3_column_int(st, 18)));
        json_object_object_add(o, "cleartext_fallback", json_object_new_boolean(sqlite3_column_int(st, 19)));
        json_object_object_add(
                        o, "controller_ecdh_in_use", jstr((const char *) sqlite3_column_text(st, 20)));
        return o;
}

const char *col(sqlite3_stmt *st, int i) {
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? (const char *) t : "-";
}

static int device_list(Evc *e) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_object *arr = arg_json ? json_object_new_array() : NULL;
        int r;

        r = evc_prepare(e->store, "SELECT " DEVICE_COLS " FROM devices ORDER BY created, id", &st);
        if (r < 0)
                return r;
        if (!arg_json)
                printf("%-36s  %-16s  %-10s  %-9s  %s\n", "UUID", "SERIAL", "STATE", "TRUST", "LAST ATTESTATION");
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (arg_json) {
                        json_object_array_add(arr, device_json(st));
                        continue;
                }
                printf("%-36s  %-16s  %-10s  %-9s  %s\n", col(st, 1), col(st, 2),
                       sqlite3_column_int(st, 4) ? "revoked" : sqlite3_column_int(st, 3) ? "registered" : "added",
                       col(st, 5), col(st, 8));
        }
        return arg_json ? print_json(arr) : 0;
}

static void print_info(sqlite3_stmt *st, int c, json_object *o) {
        _cleanup_(proto_freep) Org__Lfedge__Eve__Info__ZInfoMsg *m = NULL;
        const Org__Lfedge__Eve__Info__ZInfoDevice *di;

        if (sqlite3_column_type(st, c) == SQLITE_NULL)
                return;
        if (PROTO_UNPACK(&org__lfedge__eve__info__zinfo_msg__descriptor, sqlite3_column_blob(st, c),
                         (size_t) sqlite3_column_bytes(st, c), 1024 * 1024, &m) < 0)
                return;
        di = m->info_content_case == ORG__LFEDGE__EVE__INFO__ZINFO_MSG__INFO_CONTENT_DINFO ? m->dinfo : NULL;
        if (o) {
                json_object *i = json_object_new_object();
                json_object_object_add(i, "devId", jstr(m->devid));
                if (di) {
                        json_object_object_add(i, "HSMStatus", json_object_new_int(di->hsmstatus));
                        json_object_object_add(i, "HSMInfo", jstr(di->hsminfo));
                        json_object_object_add(i, "maintenance_mode", json_object_new_boolean(di->maintenance_mode));
                        if (di->attestation_info)
                                json_object_object_add(i, "attestation_state",
                                                       json_object_new_int(di->attestation_info->state));
                }
                json_object_object_add(o, "info", i);
                print_vault_info(di, o);
                return;
        }
        print_vault_info(di, NULL);
        printf("  info: devId %s", m->devid ?: "-");
        if (di)
                printf(", HSM status %d (%s), maintenance %s, attestation state %d", di->hsmstatus,
                       di->hsminfo ?: "-", di->maintenance_mode ? "yes" : "no",
                       di->attestation_info ? (int) di->attestation_info->state : -1);
        printf("\n");
}

/* The controller shares a device holds: vault UUIDs and dates, never the values. */
static int print_shares(Evc *e, int64_t id, json_object *o) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_object *arr = o ? json_object_new_array() : NULL;
        char tb[32];
        int r, n = 0;

        r = evc_prepare(e->store,
                        "SELECT vault_uuid, created FROM shares WHERE device_id = ? ORDER BY vault_uuid",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (arr) {
                        json_object *s = json_object_new_object();
                        json_object_object_add(s, "vault_uuid", jstr(col(st, 0)));
                        json_object_object_add(
                                        s, "created", json_object_new_int64(sqlite3_column_int64(st, 1)));
                        json_object_array_add(arr, s);
                        continue;
                }
                if (n++ == 0)
                        printf("  controller shares (tpm+controller vaults):\n");
                printf("    vault %s  created %s\n", col(st, 0), fmt_time(sqlite3_column_int64(st, 1), tb));
        }
        if (arr)
                json_object_object_add(o, "controller_shares", arr);
        else if (n == 0)
                printf("  controller shares: none\n");
        return 0;
}

static int device_show(Evc *e, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int64_t id = evc_device_find(e, what);
        char tb[32], tb2[32];
        int r;

        if (id < 0)
                return (int) id;
        r = evc_prepare(e->store, "SELECT " DEVICE_COLS ", info FROM devices WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        if (arg_json) {
                json_object *o = device_json(st);
                print_info(st, DEVICE_COL_INFO, o);
                r = print_shares(e, id, o);
                if (r < 0) {
                        json_object_put(o);
                        return r;
                }
                return print_json(o);
        }
        printf("device %s\n  serial: %s\n  state: %s\n  trust: %s%s%s%s\n  certificate SHA-256: %s\n"
               "  attestation certs: ecdh %s, quote key %s%s\n  last attestation: %s %s\n  integrity token: %s\n"
               "  escrowed keys: %lld   secrets: %lld   location lock: %s   base OS: %s\n  info received: %s\n",
               col(st, 1), col(st, 2),
               sqlite3_column_int(st, 4) ? "revoked" : sqlite3_column_int(st, 3) ? "registered" : "added (not yet seen)",
               col(st, 5), sqlite3_column_type(st, 6) != SQLITE_NULL ? " (" : "",
               sqlite3_column_type(st, 6) != SQLITE_NULL ? col(st, 6) : "",
               sqlite3_column_type(st, 6) != SQLITE_NULL ? ")" : "", col(st, 9),
               sqlite3_column_int(st, 10) ? "yes" : "no", sqlite3_column_int(st, 11) ? "yes" : "no",
               sqlite3_column_int(st, 12) ? " (locked)" : "", fmt_time(sqlite3_column_int64(st, 7), tb), col(st, 8),
               sqlite3_column_int(st, 18) ? "issued" : "none", (long long) sqlite3_column_int64(st, 16),
               (long long) sqlite3_column_int64(st, 17), sqlite3_column_int(st, 14) ? "on" : "off", col(st, 15),
               fmt_time(sqlite3_column_int64(st, 13), tb2));
        printf("  cleartext fallback: %s   controller ECDH certificate its config names: %s\n",
               sqlite3_column_int(st, 19) ? "on" : "off",
               col(st, 20));
        print_info(st, DEVICE_COL_INFO, NULL);
        return print_shares(e, id, NULL);
}

/* Runs one UPDATE on a device inside a transaction, with an audit event; invalidates its cached config. */
static int device_update(Evc *e, int64_t id, const char *sql, const char *event) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store, sql, &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, id);
        r = evc_step_done(e->store, st);
        if (r < 0)
                goto fail;
        evc_stmt_release(TAKE_PTR(st));
        r = evc_config_invalidate(e, id);
        if (r < 0)
                goto fail;
        r = evc_event(e->store, id, event);
        if (r < 0)
                goto fail;
        return evc_tx_commit(e->store);
fail:
        evc_tx_rollback(e->store);
        return r;
}

static int verb_device(Evc *e, char **pos, size_t n) {
        int64_t id;

        if (n >= 2 && streq(pos[1], "add"))
                return device_add(e);
        if (n >= 2 && streq(pos[1], "list"))
                return device_list(e);
        if (n < 3)
                return log_error_errno(EINVAL, "Usage: evc device add|list|show|revoke|reset-certs [DEV]");
        if (streq(pos[1], "show"))
                return device_show(e, pos[2]);
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        if (streq(pos[1], "revoke"))
                return device_update(e, id,
                                     "UPDATE devices SET revoked = 1, itoken = NULL WHERE id = ?1; ",
                                     "revoked by admin");
        if (streq(pos[1], "reset-certs"))
                return device_update(e, id,
                                     "UPDATE devices SET certs_locked = 0, ecdh_pem = NULL, attest_pem = NULL, "
                                     "ek_pem = NULL, itoken = NULL WHERE id = ?1",
                                     "attestation certificates reset by admin");
        return log_error_errno(EINVAL, "Unknown verb 'device %s'.", pos[1]);
}

/* ---- onboard ---- */

static int verb_onboard(Evc *e, char **pos, size_t n) {
        _cleanup_(gnutls_x509_crt_deinitp) gnutls_x509_crt_t crt = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *pem = NULL;
        uint8_t h[EVC_SHA256_SIZE];
        size_t sz;
        int r;

        if (n < 3 || !streq(pos[1], "allow") || !arg_cert)
                return log_error_errno(EINVAL, "Usage: evc onboard allow SERIAL --cert ONBOARD.pem");
        r = evc_read_file(arg_cert, &pem, &sz);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", arg_cert);
        r = evc_load_crt_pem(pem, sz, &crt);
        if (r < 0)
                return log_error_errno(r, "%s is not a PEM certificate.", arg_cert);
        r = evc_crt_der_sha256(crt, h);
        if (r < 0)
                return r;
        r = evc_prepare(e->store, "INSERT OR REPLACE INTO onboard_allow (serial, cert_hash, cert_pem) VALUES (?, ?, ?)",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, pos[2], -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, (const char *) pem, (int) sz, SQLITE_TRANSIENT);
        r = evc_step_done(e->store, st);
        if (r < 0)
                return r;
        if (!arg_json)
                printf("Serial %s may register with that onboarding certificate.\n", pos[2]);
        return 0;
}

/* ---- baseline / upgrade ---- */

static int baseline_show(Evc *e, int64_t id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_object *o = arg_json ? json_object_new_object() : NULL;
        int r;

        r = evc_prepare(e->store,
                        "SELECT 'baseline', pcr, lower(hex(value)) FROM baseline WHERE device_id = ?1 UNION ALL "
                        "SELECT 'expected', pcr, lower(hex(value)) FROM expected_pcrs WHERE device_id = ?1 "
                        "ORDER BY 1, 2",
                        &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        if (!arg_json)
                printf("%-9s  %-3s  %s\n", "KIND", "PCR", "SHA-256");
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (o) {
                        json_object *k = NULL;
                        char idx[8];
                        if (!json_object_object_get_ex(o, col(st, 0), &k)) {
                                k = json_object_new_object();
                                json_object_object_add(o, col(st, 0), k);
                        }
                        snprintf(idx, sizeof idx, "%d", sqlite3_column_int(st, 1));
                        json_object_object_add(k, idx, jstr(col(st, 2)));
                } else
                        printf("%-9s  %-3d  %s\n", col(st, 0), sqlite3_column_int(st, 1), col(st, 2));
        }
        return o ? print_json(o) : 0;
}

static int baseline_accept(Evc *e, int64_t id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *last = NULL;
        size_t n;
        uint32_t mask = 0;
        int r;

        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store, "SELECT last_pcrs FROM devices WHERE id = ?", &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) != SQLITE_ROW || (r = evc_column_blob(st, 0, &last, &n)) < 0 || !last ||
            n != 4 + 24 * 32) {
                r = log_error_errno(ENODATA, "No verified quote from this device yet: nothing to accept.");
                goto fail;
        }
        evc_stmt_release(TAKE_PTR(st));
        for (unsigned i = 0; i < 4; i++)
                mask |= (uint32_t) last[i] << (8 * i);
        r = evc_prepare(e->store, "DELETE FROM baseline WHERE device_id = ?1; ", &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, id);
        if ((r = evc_step_done(e->store, st)) < 0)
                goto fail;
        evc_stmt_release(TAKE_PTR(st));
        for (unsigned i = 0; i < 24; i++) {
                if (!(mask & (1U << i)))
                        continue;
                r = evc_prepare(e->store, "INSERT INTO baseline (device_id, pcr, value) VALUES (?, ?, ?)", &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_int64(st, 1, id);
                sqlite3_bind_int(st, 2, (int) i);
                sqlite3_bind_blob(st, 3, last + 4 + 32 * i, 32, SQLITE_TRANSIENT);
                if ((r = evc_step_done(e->store, st)) < 0)
                        goto fail;
                evc_stmt_release(TAKE_PTR(st));
        }
        r = evc_prepare(e->store,
                        "UPDATE devices SET trust = 'unknown', trust_reason = 'baseline accepted; awaiting a new quote' "
                        "WHERE id = ?",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, id);
        if ((r = evc_step_done(e->store, st)) < 0 || (r = evc_event(e->store, id, "baseline accepted by admin")) < 0)
                goto fail;
        r = evc_tx_commit(e->store);
        if (r >= 0 && !arg_json)
                printf("Baseline replaced by the last verified quote; the next good quote makes the device trusted.\n");
        return r;
fail:
        evc_tx_rollback(e->store);
        return r;
}

static int verb_baseline(Evc *e, char **pos, size_t n) {
        int64_t id;

        if (n < 3)
                return log_error_errno(EINVAL, "Usage: evc baseline show|accept DEV");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        if (streq(pos[1], "show"))
                return baseline_show(e, id);
        if (streq(pos[1], "accept"))
                return baseline_accept(e, id);
        return log_error_errno(EINVAL, "Unknown verb 'baseline %s'.", pos[1]);
}

static int set_baseos(Evc *e, int64_t id, const char *version) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = evc_prepare(e->store, "UPDATE devices SET baseos_version = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, version, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, id);
        return evc_step_done(e->store, st);
}

static int verb_upgrade(Evc *e, char **pos, size_t n) {
        uint8_t values[PCR_ARGS_MAX][32];
        unsigned idx[PCR_ARGS_MAX];
        int64_t id;
        int r;

        if (n < 3 || !streq(pos[1], "expect") || arg_n_pcrs == 0)
                return log_error_errno(EINVAL, "Usage: evc upgrade expect DEV --pcr N=HEX [--pcr …] [--baseos V]");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        for (size_t i = 0; i < arg_n_pcrs; i++) {
                if (evc_pcr_value_parse(arg_pcrs[i], &idx[i], values[i]) < 0)
                        return log_error_errno(
                                        EINVAL,
                                        "Bad --pcr %s (want N=64 hex digits, N in 0..23).",
                                        arg_pcrs[i]);
        }
        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        for (size_t i = 0; i < arg_n_pcrs; i++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                r = evc_prepare(e->store, "INSERT OR REPLACE INTO expected_pcrs (device_id, pcr, value) VALUES (?, ?, ?)",
                                &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_int64(st, 1, id);
                sqlite3_bind_int(st, 2, (int) idx[i]);
                sqlite3_bind_blob(st, 3, values[i], 32, SQLITE_TRANSIENT);
                if ((r = evc_step_done(e->store, st)) < 0)
                        goto fail;
        }
        if (arg_baseos && (r = set_baseos(e, id, arg_baseos)) < 0)
                goto fail;
        {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                /* An untrusted device gets another chance: its next quote is judged against the announcement. */
                r = evc_prepare(e->store,
                                "UPDATE devices SET trust = 'unknown', trust_reason = 'upgrade announced' "
                                "WHERE id = ? AND trust = 'untrusted'",
                                &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_int64(st, 1, id);
                if ((r = evc_step_done(e->store, st)) < 0)
                        goto fail;
        }
        if ((r = evc_config_invalidate(e, id)) < 0 || (r = evc_event(e->store, id, "upgrade announced")) < 0)
                goto fail;
        return evc_tx_commit(e->store);
fail:
        evc_tx_rollback(e->store);
        return r;
}

/* ---- config / secrets / location lock ---- */

static int verb_config(Evc *e, char **pos, size_t n) {
        int64_t id;
        int r;

        if (n < 3 || !streq(pos[1], "set") || (n == 3 && !arg_baseos))
                return log_error_errno(EINVAL, "Usage: evc config set DEV [KEY=VALUE …] [--baseos VERSION]");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        for (size_t i = 3; i < n; i++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                const char *value;
                size_t key_len;

                if (evc_config_item_parse(pos[i], &key_len, &value) < 0) {
                        r = log_error_errno(
                                        EINVAL,
                                        "Bad KEY=VALUE: %s (KEY: 1-128 of A-Z a-z 0-9 . _ -; VALUE: at most "
                                        "4096 bytes, no control characters).",
                                        pos[i]);
                        goto fail;
                }
                if (value[0] == 0)
                        r = evc_prepare(e->store, "DELETE FROM config_items WHERE device_id = ? AND key = ?", &st);
                else
                        r = evc_prepare(e->store,
                                        "INSERT OR REPLACE INTO config_items (device_id, key, value) VALUES (?, ?, ?)",
                                        &st);
                if (r < 0)
                        goto fail;
                sqlite3_bind_int64(st, 1, id);
                sqlite3_bind_text(st, 2, pos[i], (int) key_len, SQLITE_TRANSIENT);
                if (value[0] != 0)
                        sqlite3_bind_text(st, 3, value, -1, SQLITE_TRANSIENT);
                if ((r = evc_step_done(e->store, st)) < 0)
                        goto fail;
        }
        if (arg_baseos && (r = set_baseos(e, id, arg_baseos)) < 0)
                goto fail;
        if ((r = evc_config_invalidate(e, id)) < 0 || (r = evc_event(e->store, id, "config changed")) < 0)
                goto fail;
        return evc_tx_commit(e->store);
fail:
        evc_tx_rollback(e->store);
        return r;
}

static int verb_secret(Evc *e, char **pos, size_t n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint8_t *sealed = NULL;
        size_t sealed_size;
        int64_t id;
        int r;

        if (n >= 2 && streq(pos[1], "cleartext-fallback")) {
                if (n < 4 || (!streq(pos[2], "on") && !streq(pos[2], "off")))
                        return log_error_errno(EINVAL, "Usage: evc secret cleartext-fallback on|off DEV");
                id = evc_device_find(e, pos[3]);
                if (id < 0)
                        return (int) id;
                return device_update(
                                e,
                                id,
                                streq(pos[2], "on")
                                                ? "UPDATE devices SET cleartext_fallback = 1 WHERE id = ?1"
                                                : "UPDATE devices SET cleartext_fallback = 0 WHERE id = ?1",
                                streq(pos[2], "on") ? "cleartext fallback on" : "cleartext fallback off");
        }
        if (n < 3)
                return log_error_errno(
                                EINVAL,
                                "Usage: evc secret set DEV NAME --kind K --value V | list DEV | "
                                "cleartext-fallback on|off DEV");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        if (streq(pos[1], "list")) {
                json_object *arr = arg_json ? json_object_new_array() : NULL;
                char tb[32];

                r = evc_prepare(e->store, "SELECT name, kind, updated FROM secrets WHERE device_id = ? ORDER BY name", &st);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(st, 1, id);
                if (!arr)
                        printf("%-24s  %-10s  %s\n", "NAME", "KIND", "UPDATED");
                while (sqlite3_step(st) == SQLITE_ROW) {
                        if (arr) {
                                json_object *o = json_object_new_object();
                                json_object_object_add(o, "name", jstr(col(st, 0)));
                                json_object_object_add(o, "kind", jstr(col(st, 1)));
                                json_object_object_add(o, "updated", json_object_new_int64(sqlite3_column_int64(st, 2)));
                                json_object_array_add(arr, o);
                        } else
                                printf("%-24s  %-10s  %s\n", col(st, 0), col(st, 1),
                                       fmt_time(sqlite3_column_int64(st, 2), tb));
                }
                return arr ? print_json(arr) : 0;
        }
        if (!streq(pos[1], "set") || n < 4 || !arg_kind || !arg_value)
                return log_error_errno(EINVAL, "Usage: evc secret set DEV NAME --kind wifi|datastore|cloudinit --value V");
        if (!streq(arg_kind, "wifi") && !streq(arg_kind, "datastore") && !streq(arg_kind, "cloudinit"))
                return log_error_errno(EINVAL, "--kind must be wifi, datastore or cloudinit.");
        if (strlen(pos[3]) > 128)
                return log_error_errno(EINVAL, "Secret name too long.");
        r = evc_secret_seal(e, arg_value, &sealed, &sealed_size);
        if (r < 0)
                return log_error_errno(r, "Failed to seal the secret: %m");
        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store,
                        "INSERT OR REPLACE INTO secrets (device_id, name, kind, sealed, updated) VALUES (?, ?, ?, ?, ?)",
                        &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, pos[3], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, arg_kind, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, sealed, (int) sealed_size, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, (int64_t) time(NULL));
        if ((r = evc_step_done(e->store, st)) < 0 || (r = evc_config_invalidate(e, id)) < 0 ||
            (r = evc_event(e->store, id, "secret set")) < 0)
                goto fail;
        return evc_tx_commit(e->store);
fail:
        evc_tx_rollback(e->store);
        return r;
}

/* ---- controller shares ---- */

static int verb_share(Evc *e, char **pos, size_t n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *what = NULL;
        char vault[37];
        int64_t id;
        int r;

        if (n < 4 || !streq(pos[1], "drop"))
                return log_error_errno(EINVAL, "Usage: evc share drop DEV VAULT_UUID");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        if (evc_uuid_canonical(pos[3], vault) < 0)
                return log_error_errno(EINVAL, "\"%s\" is not a vault UUID.", pos[3]);
        if (asprintf(&what, "controller share of vault %s destroyed by admin", vault) < 0)
                return log_oom();
        r = evc_tx_begin(e->store);
        if (r < 0)
                return r;
        r = evc_prepare(e->store, "DELETE FROM shares WHERE device_id = ? AND vault_uuid = ?", &st);
        if (r < 0)
                goto fail;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, vault, -1, SQLITE_TRANSIENT);
        if ((r = evc_step_done(e->store, st)) < 0)
                goto fail;
        if (sqlite3_changes(e->store->db) == 0) {
                r = log_error_errno(ENOENT, "This device holds no controller share for vault %s.", vault);
                goto fail;
        }
        if ((r = evc_event(e->store, id, what)) < 0 || (r = evc_tx_commit(e->store)) < 0)
                goto fail;
        if (!arg_json)
                printf("Controller share of vault %s destroyed: that vault can no longer be opened.\n",
                       vault);
        return 0;
fail:
        evc_tx_rollback(e->store);
        return r;
}

/* ---- controller keys ---- */

static int keys_list(Evc *e) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_object *arr = arg_json ? json_object_new_array() : NULL;
        char tb[32];
        int r;

        r = evc_prepare(e->store,
                        "SELECT k.id, k.kind, coalesce(d.uuid, 'shared'), lower(hex(substr(k.cert_hash, 1, "
                        "16))), "
                        "k.created, CASE WHEN k.retired IS NULL THEN 'current' "
                        "WHEN EXISTS (SELECT 1 FROM devices x WHERE x.ecdh_in_use = k.id AND x.revoked = 0) "
                        "THEN 'retired, still served' ELSE 'retired' END "
                        "FROM ckeys k LEFT JOIN devices d ON d.id = k.device_id ORDER BY k.kind DESC, k.id",
                        &st);
        if (r < 0)
                return r;
        if (!arr)
                printf("%-4s  %-7s  %-36s  %-32s  %-20s  %s\n",
                       "ID",
                       "KIND",
                       "FOR",
                       "CERTHASH",
                       "CREATED",
                       "STATE");
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (arr) {
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "id", json_object_new_int64(sqlite3_column_int64(st, 0)));
                        json_object_object_add(o, "kind", jstr(col(st, 1)));
                        json_object_object_add(o, "for", jstr(col(st, 2)));
                        json_object_object_add(o, "cert_hash", jstr(col(st, 3)));
                        json_object_object_add(
                                        o, "created", json_object_new_int64(sqlite3_column_int64(st, 4)));
                        json_object_object_add(o, "state", jstr(col(st, 5)));
                        json_object_array_add(arr, o);
                } else
                        printf("%-4lld  %-7s  %-36s  %-32s  %-20s  %s\n",
                               (long long) sqlite3_column_int64(st, 0),
                               col(st, 1),
                               col(st, 2),
                               col(st, 3),
                               fmt_time(sqlite3_column_int64(st, 4), tb),
                               col(st, 5));
        }
        return arr ? print_json(arr) : 0;
}

static int verb_keys(Evc *e, char **pos, size_t n) {
        int64_t device_id = 0;
        int r;

        if (n >= 2 && streq(pos[1], "list"))
                return keys_list(e);
        if (n >= 3 && streq(pos[1], "ecdh-scope") &&
            (streq(pos[2], "shared") || streq(pos[2], "per-device"))) {
                r = evc_keys_set_scope(e, streq(pos[2], "per-device"));
                if (r >= 0 && !arg_json)
                        printf("ECDH scope: %s. Affected devices get a new config hash.\n", pos[2]);
                return r;
        }
        if (n < 3 || !streq(pos[1], "rotate") || (!streq(pos[2], "signing") && !streq(pos[2], "ecdh")))
                return log_error_errno(
                                EINVAL,
                                "Usage: evc keys list | rotate signing | rotate ecdh [--device DEV] | "
                                "ecdh-scope shared|per-device");
        if (arg_device) {
                device_id = evc_device_find(e, arg_device);
                if (device_id < 0)
                        return (int) device_id;
        }
        r = evc_keys_rotate(e, pos[2], device_id);
        if (r >= 0 && !arg_json)
                printf("New %s key in use; the old private key is destroyed, its certificate stays in "
                       "/certs while a "
                       "device's config names it.\n",
                       pos[2]);
        return r;
}

static int verb_location_lock(Evc *e, char **pos, size_t n) {
        int64_t id;

        if (n < 3 || (!streq(pos[1], "on") && !streq(pos[1], "off")))
                return log_error_errno(EINVAL, "Usage: evc location-lock on|off DEV");
        id = evc_device_find(e, pos[2]);
        if (id < 0)
                return (int) id;
        return device_update(e, id,
                             streq(pos[1], "on") ? "UPDATE devices SET location_lock = 1 WHERE id = ?1"
                                                 : "UPDATE devices SET location_lock = 0, location_lat = NULL, "
                                                   "location_lon = NULL WHERE id = ?1",
                             streq(pos[1], "on") ? "location lock on" : "location lock off");
}

static int run(int argc, char **argv) {
        _cleanup_(evc_freep) Evc *e = NULL;
        _cleanup_free_ char **pos = NULL;
        size_t n = 0;
        int r;

        r = parse_argv(argc, argv, &pos, &n);
        if (r != 0)
                return r < 0 ? r : 0;
        if (n == 0)
                return help();
        if (streq(pos[0], "init")) {
                if (!arg_dir)
                        return log_error_errno(EINVAL, "init needs --dir DIR.");
                r = evc_init_dir(arg_dir);
                if (r >= 0 && !arg_json)
                        printf("Initialised %s: devices trust certs/root.pem; keys are in keys/.\n", arg_dir);
                return r;
        }
        (void) eve_harden_process();
        r = open_evc(&e);
        if (r < 0)
                return r;
        if (streq(pos[0], "serve")) {
                e->nonce_ttl_ms = arg_nonce_ttl_ms;
                e->body_max = arg_body_max;
                e->threads = arg_threads;
                return evc_serve(e, arg_listen, arg_port_file);
        }
        if (streq(pos[0], "device"))
                return verb_device(e, pos, n);
        if (streq(pos[0], "onboard"))
                return verb_onboard(e, pos, n);
        if (streq(pos[0], "baseline"))
                return verb_baseline(e, pos, n);
        if (streq(pos[0], "upgrade"))
                return verb_upgrade(e, pos, n);
        if (streq(pos[0], "config"))
                return verb_config(e, pos, n);
        if (streq(pos[0], "secret"))
                return verb_secret(e, pos, n);
        if (streq(pos[0], "location-lock"))
                return verb_location_lock(e, pos, n);
        if (streq(pos[0], "share"))
                return verb_share(e, pos, n);
        if (streq(pos[0], "keys"))
                return verb_keys(e, pos, n);
        if (streq(pos[0], "vault"))
                return verb_vault(e, pos, n);
        if (streq(pos[0], "app"))
                return verb_app(e, pos, n);
        return log_error_errno(EINVAL, "Unknown command \"%s\" (see --help).", pos[0]);
}

EVE_DEFINE_MAIN(run);
