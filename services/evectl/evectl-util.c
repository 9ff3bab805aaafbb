/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "evectl-util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "bus-util.h"
#include "log.h"

int evectl_bus_open(sd_bus **ret) {
        int r = sd_bus_open_system(ret);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the system bus: %m");
        return 0;
}

int evectl_bus_error(
                int r, const sd_bus_error *e, const char *daemon, const char *bus_name, const char *what) {
        const char *n = e ? e->name : NULL;

        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return log_error_errno(r, "%s is not running (%s is not on the bus).", daemon, bus_name);
        if (n &&
            (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED) ||
             (strstr(n, ".Error.AccessDenied") && strncmp(n, "org.eve.", 8) == 0)))
                return log_error_errno(
                                r,
                                "Permission denied: only root or members of group %s may %s.",
                                bus_admin_group(),
                                what);
        if (e && e->message)
                return log_error_errno(r, "Cannot %s: %s", what, e->message);
        return log_error_errno(r, "Cannot %s: %m", what);
}

static json_object *read_basic(sd_bus_message *m, char type, int *r) {
        union {
                const char *s;
                int b;
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
        } v;

        *r = sd_bus_message_read_basic(m, type, &v);
        if (*r <= 0)
                return NULL;
        switch (type) {
        case 's':
        case 'o':
        case 'g':
                return json_object_new_string(v.s);
        case 'b':
                return json_object_new_boolean(v.b);
        case 'y':
                return json_object_new_int(v.y);
        case 'n':
                return json_object_new_int(v.n);
        case 'q':
                return json_object_new_int(v.q);
        case 'i':
                return json_object_new_int(v.i);
        case 'u':
                return json_object_new_int64(v.u);
        case 'x':
                return json_object_new_int64(v.x);
        case 't':
                return json_object_new_uint64(v.t);
        case 'd':
                return json_object_new_double(v.d);
        default:
                *r = -EOPNOTSUPP;
                return NULL;
        }
}

static int read_value(sd_bus_message *m, json_object **ret);

/* A dictionary with string keys (a{s…}) as a JSON object; other keys as null. */
static int read_dict(sd_bus_message *m, const char *contents, json_object **ret) {
        _cleanup_free_ char *entry = NULL;
        json_object *o;
        int r;

        if (contents[1] != 's')
                return sd_bus_message_skip(m, NULL) < 0 ? -EBADMSG : (*ret = json_object_new_null(), 0);
        entry = strndup(contents + 1, strlen(contents) - 2); /* "{sv}" → "sv" */
        if (!entry)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', contents);
        if (r < 0)
                return r;
        o = json_object_new_object();
        while ((r = sd_bus_message_enter_container(m, 'e', entry)) > 0) {
                json_object *v = NULL;
                const char *key;

                r = sd_bus_message_read(m, "s", &key);
                if (r >= 0)
                        r = read_value(m, &v);
                if (r >= 0)
                        json_object_object_add(o, key, v);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

/* One value of the message's next complete type, recursively. */
static int read_value(sd_bus_message *m, json_object **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (type == 'a' || type == 'r' || type == 'v') {
                json_object *a = NULL;

                if (type == 'v') {
                        r = sd_bus_message_enter_container(m, 'v', contents);
                        if (r < 0)
                                return r;
                        r = read_value(m, ret);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                        return r;
                }
                if (type == 'a' && contents[0] == '{')
                        return read_dict(m, contents, ret);
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                a = json_object_new_array();
                for (;;) {
                        json_object *item = NULL;

                        r = sd_bus_message_at_end(m, false);
                        if (r < 0 || r > 0)
                                break;
                        r = read_value(m, &item);
                        if (r < 0)
                                break;
                        json_object_array_add(a, item);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0) {
                        json_object_put(a);
                        return r;
                }
                *ret = a;
                return 0;
        }
        *ret = read_basic(m, type, &r);
        return r < 0 ? r : 0;
}

int evectl_get_all(
                sd_bus *bus,
                const char *dest,
                const char *path,
                const char *interface,
                sd_bus_error *error,
                json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *o;
        int r;

        r = sd_bus_call_method(
                        bus,
                        dest,
                        path,
                        "org.freedesktop.DBus.Properties",
                        "GetAll",
                        error,
                        &reply,
                        "s",
                        interface);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        for (;;) {
                json_object *v = NULL;
                const char *name;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0)
                        r = read_value(reply, &v);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                json_object_object_add(o, name, v);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

const char *evectl_json_str(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                        ? json_object_get_string(v)
                        : NULL;
}

uint64_t evectl_json_u64(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int)
                        ? json_object_get_uint64(v)
                        : 0;
}

int evectl_json_print(json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);

        if (!s)
                return log_oom();
        printf("%s\n", s);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

void evectl_format_time(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                strcpy(buf, "never");
}

void evectl_format_bytes(uint64_t bytes, char buf[static 16]) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        int i = -1;

        if (bytes < 1024) {
                (void) snprintf(buf, 16, "%" PRIu64 " B", bytes);
                return;
        }
        while (v >= 1024 && i < 3) {
                v /= 1024;
                i++;
        }
        (void) snprintf(buf, 16, "%.1f %s", v, units[i]);
}

/* ---- tables ---- */

struct Table {
        size_t n_columns, n_cells, n_allocated;
        char **cells; /* row-major, headers first */
};

Table *table_new(size_t n_columns, ...) {
        Table *t = calloc(1, sizeof(*t));
        va_list ap;

        if (!t || n_columns == 0)
                return mfree(t);
        t->n_columns = n_columns;
        va_start(ap, n_columns);
        for (size_t i = 0; i < n_columns; i++) {
                const char *h = va_arg(ap, const char *);
                char **c = realloc(t->cells, (t->n_cells + 1) * sizeof(char *));

                if (!c) {
                        va_end(ap);
                        return table_free(t);
                }
                t->cells = c;
                t->cells[t->n_cells] = strdup(h ?: "");
                if (!t->cells[t->n_cells]) {
                        va_end(ap);
                        return table_free(t);
                }
                for (char *p = t->cells[t->n_cells]; *p; p++)
                        if (*p >= 'a' && *p <= 'z')
                                *p = (char) (*p - 'a' + 'A');
                t->n_cells++;
        }
        va_end(ap);
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        return mfree(t);
}

int table_add_row(Table *t, ...) {
        char **c = realloc(t->cells, (t->n_cells + t->n_columns) * sizeof(char *));
        va_list ap;
        int r = 0;

        if (!c)
                return -ENOMEM;
        t->cells = c;
        va_start(ap, t);
        for (size_t i = 0; i < t->n_columns; i++) {
                const char *v = va_arg(ap, const char *);
                t->cells[t->n_cells] = strdup(isempty(v) ? "-" : v);
                if (!t->cells[t->n_cells])
                        r = -ENOMEM;
                t->n_cells++;
        }
        va_end(ap);
        return r;
}

int table_print(Table *t, FILE *f) {
        _cleanup_free_ size_t *width = calloc(t->n_columns, sizeof(size_t));

        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i] ?: ""));
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t col = i % t->n_columns;
                bool last = col == t->n_columns - 1;

                if (last)
                        fprintf(f, "%s\n", t->cells[i] ?: "");
                else
                        fprintf(f, "%-*s  ", (int) width[col], t->cells[i] ?: "");
        }
        return fflush(f) == 0 ? 0 : -EIO;
}

void evectl_print_fields(FILE *f, const char *const *kv, size_t n) {
        size_t w = 0;

        for (size_t i = 0; i + 1 < n; i += 2)
                if (kv[i + 1])
                        w = MAX(w, strlen(kv[i]));
        for (size_t i = 0; i + 1 < n; i += 2)
                if (kv[i + 1])
                        fprintf(f, "%*s: %s\n", (int) w, kv[i], isempty(kv[i + 1]) ? "-" : kv[i + 1]);
}
