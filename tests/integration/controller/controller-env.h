/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* controller-env.h: the node around the controller-binding and key-rotation tests (issue 13): evc over TLS
 * on 127.0.0.1, a node tree with swtpm provisioned by eve-tpm-setup (attest-fixtures.h), eve-register,
 * eve-attestd up to COMPLETE, eve-configd on a private bus. The one stand-in is the config vault's State
 * ("Locked": configd keeps the config in memory), as in the configd tests. */
#pragma once

#include "attest-fixtures.h"
#include "config.pb-c.h"
#include "vault-standin.h"

typedef struct Env {
        PrivateBus *bus;
        Evc *evc;
        Node *node;
        char uuid[37];
        Daemon *attestd, *configd;
        VaultStandin vault;
        bool vault_started;
} Env;

/* evc, the node, the acl "[Kind …] AllowUser=root" for every kind, eve-register (must succeed), and, with
 * attest, eve-attestd until COMPLETE. */
Env *env_new(bool attest);
/* eve-configd with --retry=200ms --info-interval=1s and the interval given ("1h": only at start and on
 * Refresh()). */
void env_configd(Env *e, const char *interval);
/* Runs program (no arguments); returns its exit status, its output and log (stderr) in *out (may be NULL).
 */
int run_logged(const char *program, char **out);
/* Runs eve-register; returns its exit status, its output and log in *out (may be NULL). */
int env_register(Env *e, char **out);

/* `evc secret set UUID NAME --kind KIND --value VALUE`, must succeed. */
void env_secret(Env *e, const char *name, const char *kind, const char *value);
/* org.eve.Config properties. */
char *config_prop(const char *name);
uint64_t config_prop_u64(const char *name);
/* Waits for LastFetchResult to be updated or not-modified. */
void wait_fetched(Env *e, unsigned timeout_ms);
/* Refresh(): 0 and the result in *ret, or a negative errno and the D-Bus error message in *ret. */
int config_refresh(char **ret);
/* GetSecret(name)[field]: 0 and the value, or a negative errno and the D-Bus error name in *ret. */
int config_secret(const char *name, const char *field, char **ret);

/* The hex certHashes (32 characters) of the stored $EVE_CERTS_DIR/controller/<kind>-*.pem files, sorted,
 * NULL-terminated (free with strv_free_test). */
char **stored_certs(const char *kind);
void strv_free_test(char **l);
size_t strv_len_test(char *const *l);
bool strv_has_test(char *const *l, const char *s);
/* Polls until stored_certs(kind) has has (or, with !want, lacks it). */
void wait_stored_cert(Env *e, const char *kind, const char *hex, bool want, unsigned timeout_ms);

/* The config evc serves this node now, fetched in the node's name (the TPM device key, the integrity token
 * eve-attestd stored): what eve-configd would get. */
Org__Lfedge__Eve__Config__ConfigResponse *fetch_config_as_node(const char *have_hash);
/* The hex of the first cipher context's controllerCertHash. */
char *context_cert_hex(const Org__Lfedge__Eve__Config__ConfigResponse *c);
