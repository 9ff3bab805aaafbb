/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcurl through dlopen(): one table of the functions the controller client calls, resolved with dlsym()
 * when the library is loaded and cleared when it is unloaded. */
#include "curl-util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#ifndef LIBCURL_SONAME
#        define LIBCURL_SONAME "libcurl-gnutls.so.4"
#endif

typeof(curl_easy_cleanup) *sym_curl_easy_cleanup;
typeof(curl_easy_getinfo) *sym_curl_easy_getinfo;
typeof(curl_easy_init) *sym_curl_easy_init;
typeof(curl_easy_setopt) *sym_curl_easy_setopt;
typeof(curl_easy_strerror) *sym_curl_easy_strerror;
typeof(curl_multi_add_handle) *sym_curl_multi_add_handle;
typeof(curl_multi_assign) *sym_curl_multi_assign;
typeof(curl_multi_cleanup) *sym_curl_multi_cleanup;
typeof(curl_multi_info_read) *sym_curl_multi_info_read;
typeof(curl_multi_init) *sym_curl_multi_init;
typeof(curl_multi_remove_handle) *sym_curl_multi_remove_handle;
typeof(curl_multi_setopt) *sym_curl_multi_setopt;
typeof(curl_multi_socket_action) *sym_curl_multi_socket_action;
typeof(curl_slist_append) *sym_curl_slist_append;
typeof(curl_slist_free_all) *sym_curl_slist_free_all;
/* Only needed while loading. */
static typeof(curl_global_cleanup) *sym_curl_global_cleanup;
static typeof(curl_global_init) *sym_curl_global_init;
static typeof(curl_version_info) *sym_curl_version_info;

#define SYM(name) \
        { #name, (void **) &sym_##name }
static const struct {
        const char *name;
        void **ptr;
} symbols[] = {
        SYM(curl_easy_cleanup),        SYM(curl_easy_getinfo),        SYM(curl_easy_init),
        SYM(curl_easy_setopt),         SYM(curl_easy_strerror),       SYM(curl_multi_add_handle),
        SYM(curl_multi_assign),        SYM(curl_multi_cleanup),       SYM(curl_multi_info_read),
        SYM(curl_multi_init),          SYM(curl_multi_remove_handle), SYM(curl_multi_setopt),
        SYM(curl_multi_socket_action), SYM(curl_slist_append),        SYM(curl_slist_free_all),
        SYM(curl_global_cleanup),      SYM(curl_global_init),         SYM(curl_version_info),
};

static void *curl_dl;
static unsigned curl_users;

static void symbols_clear(void) {
        for (size_t i = 0; i < ELEMENTSOF(symbols); i++)
                *symbols[i].ptr = NULL;
}

/* "libcurl unavailable: <why><detail>" for the caller's person, -EOPNOTSUPP. */
static int unavailable(char **ret_error, const char *why, const char *detail) {
        log_debug("libcurl unavailable: %s%s", why, detail ?: "");
        if (ret_error && asprintf(ret_error, "libcurl unavailable: %s%s", why, detail ?: "") < 0)
                *ret_error = NULL;
        return -EOPNOTSUPP;
}

int curl_dl_acquire(char **ret_error) {
        const curl_version_info_data *v;
        void *dl;

        if (ret_error)
                *ret_error = NULL;
        if (curl_users > 0) {
                curl_users++;
                return 0;
        }
        dl = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return unavailable(ret_error, dlerror() ?: LIBCURL_SONAME " cannot be loaded", NULL);
        for (size_t i = 0; i < ELEMENTSOF(symbols); i++) {
                *symbols[i].ptr = dlsym(dl, symbols[i].name);
                if (!*symbols[i].ptr) {
                        symbols_clear();
                        (void) dlclose(dl);
                        return unavailable(ret_error, LIBCURL_SONAME " lacks ", symbols[i].name);
                }
        }
        if (sym_curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                symbols_clear();
                (void) dlclose(dl);
                (void) unavailable(ret_error, "curl_global_init failed", NULL);
                return -EIO;
        }
        v = sym_curl_version_info(CURLVERSION_NOW);
        if (!v || !v->ssl_version || strncmp(v->ssl_version, "GnuTLS", 6) != 0)
                log_warning("libcurl is built with %s, not GnuTLS: TLS runs through another library.",
                            v && v->ssl_version ? v->ssl_version : "no TLS");
        curl_dl = dl;
        curl_users = 1;
        log_debug("Loaded %s.", LIBCURL_SONAME);
        return 0;
}

void curl_dl_release(void) {
        if (curl_users == 0 || --curl_users > 0)
                return;
        sym_curl_global_cleanup();
        symbols_clear();
        if (dlclose(curl_dl) != 0)
                log_debug("Cannot unload %s: %s", LIBCURL_SONAME, dlerror() ?: "unknown error");
        else
                log_debug("Unloaded %s.", LIBCURL_SONAME);
        curl_dl = NULL;
}
