/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool to_journal = false;
static const char *prefix = NULL;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_prefix(const char *p) {
        prefix = p;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",  [LOG_ERR] = "err",
                [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        return -EINVAL;
}

/* systemd sets $JOURNAL_STREAM to "dev:ino" of the stream it connected to stderr; only then are level prefixes
 * understood rather than printed. */
static bool stderr_is_journal(void) {
        const char *e = getenv_nonempty("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(void) {
        const char *e = getenv_nonempty("EVE_LOG_LEVEL");

        if (e) {
                int l = log_level_from_string(e);
                if (l >= 0)
                        max_level = l;
        }
        to_journal = stderr_is_journal();
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        int saved = errno, e = ERRNO_VALUE(error);
        char msg[2048];
        va_list ap;

        /* %m prints the text of the error we were given, not of whatever errno happens to hold. */
        errno = e;
        va_start(ap, format);
        (void) vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);

        if (to_journal)
                (void) fprintf(stderr, "<%i>%s\n", level, msg);
        else if (max_level >= LOG_DEBUG)
                (void) fprintf(stderr, "%s%s(%s:%i %s) %s\n", prefix ?: "", prefix ? ": " : "", file, line, func,
                               msg);
        else
                (void) fprintf(stderr, "%s%s%s\n", prefix ?: "", prefix ? ": " : "", msg);

        errno = saved;
        return -e;
}
