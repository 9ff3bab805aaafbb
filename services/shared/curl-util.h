/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* curl-util.h: libcurl (GnuTLS flavour) loaded with dlopen() only while something needs it. Linked in, the
 * library and the ~16 libraries it pulls (Kerberos, LDAP, SASL, libssh2, nghttp2, rtmp, brotli, psl …) cost
 * every daemon their relocated data pages for its whole life, fetching or not (docs/PERFORMANCE.md, "Idle
 * memory"); loaded on demand they cost nothing between requests. The functions are reached through the
 * sym_curl_* pointers, valid between a successful curl_dl_acquire() and the matching curl_dl_release().
 * Acquisitions are counted: the last release runs curl_global_cleanup() and dlclose()s the library, which
 * unmaps it and its dependencies (GnuTLS stays: the daemons use it directly). Not thread-safe. */
#pragma once

#include <curl/curl.h>

extern typeof(curl_easy_cleanup) *sym_curl_easy_cleanup;
extern typeof(curl_easy_getinfo) *sym_curl_easy_getinfo;
extern typeof(curl_easy_init) *sym_curl_easy_init;
extern typeof(curl_easy_setopt) *sym_curl_easy_setopt;
extern typeof(curl_easy_strerror) *sym_curl_easy_strerror;
extern typeof(curl_multi_add_handle) *sym_curl_multi_add_handle;
extern typeof(curl_multi_assign) *sym_curl_multi_assign;
extern typeof(curl_multi_cleanup) *sym_curl_multi_cleanup;
extern typeof(curl_multi_info_read) *sym_curl_multi_info_read;
extern typeof(curl_multi_init) *sym_curl_multi_init;
extern typeof(curl_multi_remove_handle) *sym_curl_multi_remove_handle;
extern typeof(curl_multi_setopt) *sym_curl_multi_setopt;
extern typeof(curl_multi_socket_action) *sym_curl_multi_socket_action;
extern typeof(curl_slist_append) *sym_curl_slist_append;
extern typeof(curl_slist_free_all) *sym_curl_slist_free_all;

/* Loads the library (the first time) and counts one user. On failure nothing is loaded, *ret_error (if
 * given) is a sentence for a person ("libcurl unavailable: <why>", to be freed) and the result is
 * -EOPNOTSUPP (library missing or lacking a symbol) or -EIO (curl_global_init failed). */
int curl_dl_acquire(char **ret_error);
/* Drops one user; the last unloads the library. */
void curl_dl_release(void);
