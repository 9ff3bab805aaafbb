/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "configd-acl.h"

#include <dirent.h>
#include <pwd.h>

#include "crypto-util.h"
#include "log.h"
#include "paths.h"

#define ACL_DIR "secrets.d"

static char *builtin_wifi[] = { (char *) "eve-network.service" };
static char *builtin_datastore[] = { (char *) "eve-downloader.service" };
static char *builtin_cloudinit[] = { (char *) "eve-app@%i.service" };
static const Acl builtin[_SECRET_KIND_MAX] = {
        [SECRET_KIND_WIFI] = { .units = builtin_wifi, .n_units = 1 },
        [SECRET_KIND_DATASTORE] = { .units = builtin_datastore, .n_units = 1 },
        [SECRET_KIND_CLOUDINIT] = { .units = builtin_cloudinit, .n_units = 1 },
};

void strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

static void acl_done(Acl *a) {
        for (size_t i = 0; i < a->n_units; i++)
                free(a->units[i]);
        free(a->units);
        free(a->uids);
        *a = (Acl){};
}

AclConfig *acl_config_free(AclConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_sections; i++) {
                free(c->sections[i].secret);
                acl_done(&c->sections[i].acl);
        }
        free(c->sections);
        free(c);
        return NULL;
}

/* Valid unit name characters (plus '%' for "%i" and '@' for instances). */
static bool unit_name_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 255 || !strchr(s, '.'))
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr(":-_.\\@%", *p)))
                        return false;
        return true;
}

static int parse_uid(const char *s, uid_t *ret) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        char *end;
        unsigned long v;

        if (*s >= '0' && *s <= '9') {
                errno = 0;
                v = strtoul(s, &end, 10);
                if (errno != 0 || *end || v >= (uid_t) -1)
                        return -EINVAL;
                *ret = (uid_t) v;
                return 0;
        }
        if (getpwnam_r(s, &pw, buf, sizeof buf, &res) != 0 || !res)
                return -ESRCH;
        *ret = res->pw_uid;
        return 0;
}

static AclSection *section_get(AclConfig *c, const char *secret, SecretKind kind) {
        AclSection *n;
        char *copy = NULL;

        /* A later section replaces an earlier one for the same key. */
        for (size_t i = 0; i < c->n_sections; i++) {
                AclSection *s = &c->sections[i];
                if (secret ? streq_ptr(s->secret, secret) : (!s->secret && s->kind == kind)) {
                        acl_done(&s->acl);
                        return s;
                }
        }
        if (c->n_sections >= ACL_SECTIONS_MAX)
                return NULL;
        if (secret && !(copy = strdup(secret)))
                return NULL;
        n = realloc(c->sections, (c->n_sections + 1) * sizeof *n);
        if (!n) {
                free(copy);
                return NULL;
        }
        c->sections = n;
        c->sections[c->n_sections] = (AclSection){ .secret = copy, .kind = kind };
        return &c->sections[c->n_sections++];
}

static int add_words(const char *file, unsigned line, Acl *a, bool units, char *value) {
        char *save = NULL;

        for (char *w = strtok_r(value, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (a->n_units + a->n_uids >= ACL_ENTRIES_MAX) {
                        log_warning("%s:%u: more than %u entries, ignoring the rest.",
                                    file,
                                    line,
                                    ACL_ENTRIES_MAX);
                        return 0;
                }
                if (units) {
                        char **n;
                        if (!unit_name_ok(w)) {
                                log_warning("%s:%u: '%s' is not a unit name, ignoring it.", file, line, w);
                                continue;
                        }
                        n = realloc(a->units, (a->n_units + 1) * sizeof *n);
                        if (!n)
                                return -ENOMEM;
                        a->units = n;
                        a->units[a->n_units] = strdup(w);
                        if (!a->units[a->n_units])
                                return -ENOMEM;
                        a->n_units++;
                } else {
                        uid_t uid, *n;
                        if (parse_uid(w, &uid) < 0) {
                                log_warning("%s:%u: unknown user '%s', ignoring it.", file, line, w);
                                continue;
                        }
                        n = realloc(a->uids, (a->n_uids + 1) * sizeof *n);
                        if (!n)
                                return -ENOMEM;
                        a->uids = n;
                        a->uids[a->n_uids++] = uid;
                }
        }
        return 0;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = '\0';
        return s;
}

int acl_config_parse(AclConfig *c, const char *name, const char *text) {
        _cleanup_free_ char *copy = strdup(text);
        AclSection *cur = NULL;
        unsigned line = 0;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *p = copy, *next; p; p = next) {
                char *l, *eq;

                next = strchr(p, '\n');
                if (next)
                        *next++ = '\0';
                line++;
                l = strip(p);
                if (*l == '\0' || *l == '#' || *l == ';')
                        continue;
                if (*l == '[') {
                        char *end = strchr(l, ']'), *arg;
                        cur = NULL;
                        if (!end || end[1] != '\0') {
                                log_warning("%s:%u: bad section header, ignoring the section.", name, line);
                                continue;
                        }
                        *end = '\0';
                        l++;
                        arg = strchr(l, ' ');
                        if (!arg) {
                                log_warning("%s:%u: section without a name, ignoring it.", name, line);
                                continue;
                        }
                        *arg++ = '\0';
                        arg = strip(arg);
                        if (streq(l, "Kind")) {
                                SecretKind k = secret_kind_from_string(arg);
                                if (k < 0) {
                                        log_warning("%s:%u: unknown kind '%s', ignoring the section.",
                                                    name,
                                                    line,
                                                    arg);
                                        continue;
                                }
                                cur = section_get(c, NULL, k);
                        } else if (streq(l, "Secret")) {
                                if (*arg == '\0' || strlen(arg) > SECRET_NAME_MAX || strchr(arg, '/')) {
                                        log_warning("%s:%u: bad secret name, ignoring the section.",
                                                    name,
                                                    line);
                                        continue;
                                }
                                cur = section_get(c, arg, _SECRET_KIND_INVALID);
                        } else {
                                log_warning("%s:%u: unknown section [%s], ignoring it.", name, line, l);
                                continue;
                        }
                        if (!cur)
                                return -ENOMEM;
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq) {
                        log_warning("%s:%u: not KEY=VALUE, ignoring the line.", name, line);
                        continue;
                }
                *eq = '\0';
                if (!cur) {
                        log_warning("%s:%u: assignment outside a section, ignoring it.", name, line);
                        continue;
                }
                l = strip(l);
                if (!streq(l, "AllowUnit") && !streq(l, "AllowUser")) {
                        log_warning("%s:%u: unknown key '%s', ignoring it.", name, line, l);
                        continue;
                }
                r = add_words(name, line, &cur->acl, streq(l, "AllowUnit"), eq + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int filter_conf(const struct dirent *de) {
        size_t n = strlen(de->d_name);
        return de->d_name[0] != '.' && n > 5 && streq(de->d_name + n - 5, ".conf");
}

int acl_config_load(const char *dir, AclConfig **ret) {
        _cleanup_(acl_config_freep) AclConfig *c = NULL;
        _cleanup_free_ char *def = NULL;
        struct dirent **names = NULL;
        int n, r = 0;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        if (!dir) {
                def = eve_path_join(EVE_PATH_CONFIG, ACL_DIR);
                if (!def)
                        return -ENOMEM;
                dir = def;
        }
        n = scandir(dir, &names, filter_conf, alphasort);
        if (n < 0) {
                if (errno != ENOENT)
                        log_warning_errno(
                                        errno,
                                        "Cannot read the ACL directory %s, using the defaults: %m",
                                        dir);
                *ret = TAKE_PTR(c);
                return 0;
        }
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                size_t size;

                if (r >= 0 && asprintf(&path, "%s/%s", dir, names[i]->d_name) < 0)
                        r = -ENOMEM;
                if (r >= 0) {
                        int k = crypto_read_file(path, /* secure= */ false, &text, &size);
                        if (k < 0)
                                log_warning_errno(k, "Cannot read %s, ignoring it: %m", path);
                        else if (size > ACL_FILE_MAX || strlen(text) != size)
                                log_warning("%s is larger than 64 KiB or not text, ignoring it.", path);
                        else
                                r = acl_config_parse(c, path, text);
                }
                free(names[i]);
        }
        free(names);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

const Acl *acl_for_secret(const AclConfig *c, const Secret *s) {
        const Acl *kind = NULL;

        for (size_t i = 0; c && i < c->n_sections; i++) {
                const AclSection *x = &c->sections[i];
                if (x->secret && streq(x->secret, s->name))
                        return &x->acl;
                if (!x->secret && x->kind == s->kind)
                        kind = &x->acl;
        }
        return kind ?: &builtin[s->kind];
}

char *unit_name_escape(const char *s) {
        char *r = malloc(strlen(s) * 4 + 1), *p = r;

        if (!r)
                return NULL;
        for (const char *c = s; *c; c++) {
                if (*c == '/')
                        *p++ = '-';
                else if ((c == s && *c == '.') ||
                         !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                           (*c >= '0' && *c <= '9') || *c == ':' || *c == '_' || *c == '.'))
                        p += sprintf(p, "\\x%02x", (unsigned) (uint8_t) *c);
                else
                        *p++ = *c;
        }
        *p = '\0';
        return r;
}

static char *expand(const char *unit, const Secret *s) {
        _cleanup_free_ char *esc = NULL;
        const char *i = strstr(unit, "%i");
        char *r;

        if (!i)
                return strdup(unit);
        esc = unit_name_escape(s->item);
        if (!esc || asprintf(&r, "%.*s%s%s", (int) (i - unit), unit, esc, i + 2) < 0)
                return NULL;
        return r;
}

char **acl_units_expand(const Acl *acl, const Secret *s) {
        char **l = calloc(acl->n_units + 1, sizeof *l);

        if (!l)
                return NULL;
        for (size_t i = 0; i < acl->n_units; i++) {
                l[i] = expand(acl->units[i], s);
                if (!l[i]) {
                        strv_free(l);
                        return NULL;
                }
        }
        return l;
}

bool acl_allows(const Acl *acl, const Secret *s, uid_t uid, const char *unit) {
        for (size_t i = 0; i < acl->n_uids; i++)
                if (acl->uids[i] == uid)
                        return true;
        if (isempty(unit))
                return false;
        for (size_t i = 0; i < acl->n_units; i++) {
                _cleanup_free_ char *u = expand(acl->units[i], s);
                if (u && streq(u, unit))
                        return true;
        }
        return false;
}
