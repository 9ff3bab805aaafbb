/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "configd-credsock.h"

#include <stddef.h>
#include <sys/stat.h>

#include "log.h"

static bool hex_digit(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int credsock_parse_peer(const struct sockaddr_un *sa, socklen_t salen, char **ret_unit, char **ret_id) {
        _cleanup_free_ char *unit = NULL, *id = NULL;
        const char *p, *end, *u, *slash;
        size_t n;

        if (!sa || salen <= offsetof(struct sockaddr_un, sun_path) + 1 || salen > sizeof(*sa) ||
            sa->sun_family != AF_UNIX)
                return -EBADMSG;
        n = salen - offsetof(struct sockaddr_un, sun_path);
        p = sa->sun_path;
        if (p[0] != '\0')
                return -EBADMSG; /* not abstract */
        p++, n--;
        end = p + n;
        if (memchr(p, '\0', n))
                return -EBADMSG;

        /* <hex random> */
        for (u = p; u < end && hex_digit(*u); u++)
                ;
        if (u == p || end - u < 6 || memcmp(u, "/unit/", 6) != 0)
                return -EBADMSG;
        u += 6;
        slash = memchr(u, '/', (size_t) (end - u));
        if (!slash || slash == u || slash + 1 >= end)
                return -EBADMSG;
        if (memchr(slash + 1, '/', (size_t) (end - slash - 1)))
                return -EBADMSG; /* credential ids are file names */

        unit = strndup(u, (size_t) (slash - u));
        id = strndup(slash + 1, (size_t) (end - slash - 1));
        if (!unit || !id)
                return -ENOMEM;
        if (streq(id, ".") || streq(id, "..") || !strchr(unit, '.'))
                return -EBADMSG;
        *ret_unit = TAKE_PTR(unit);
        *ret_id = TAKE_PTR(id);
        return 0;
}

int credsock_split_id(const char *id, char **ret_name, char **ret_field) {
        const char *at = strrchr(id, '@');
        char *name, *field;

        name = at ? strndup(id, (size_t) (at - id)) : strdup(id);
        field = strdup(at ? at + 1 : "");
        if (!name || !field) {
                free(name);
                free(field);
                return -ENOMEM;
        }
        *ret_name = name;
        *ret_field = field;
        return 0;
}

int credsock_listen(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        /* Created 0600 from the start: nobody but root and our own user can connect, not even for a moment.
         */
        old = umask(0177);
        r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        (void) umask(old);
        if (r < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
