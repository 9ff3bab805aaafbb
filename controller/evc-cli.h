/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* evc-cli.h: what the command-line files of evc share (evc.c: the program and most verbs; evc-cli-vault.c:
 * vault and application verbs). */
#pragma once

#include <json-c/json.h>

#include "evc.h"
#include "info.pb-c.h"

extern bool arg_json;
/* evc vault / evc app */
extern const char *arg_size, *arg_key_source, *arg_vault_pcrs, *arg_policy_id, *arg_state, *arg_uuid,
                *arg_name, *arg_vault;
extern bool arg_rotate, arg_unchecked;

int print_json(json_object *o);
json_object *jstr(const char *s);
const char *fmt_time(int64_t t, char buf[static 32]);
const char *col(sqlite3_stmt *st, int i);

int verb_vault(Evc *e, char **pos, size_t n);
int verb_app(Evc *e, char **pos, size_t n);
/* The vaults a device reported (DataSecAtRest.vaultList with our extension), for 'evc device show'. */
void print_vault_info(const Org__Lfedge__Eve__Info__ZInfoDevice *di, json_object *o);
