/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bench-swtpm.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

int bench_swtpm_start(BenchSwtpm *t, const char *prefix) {
        _cleanup_free_ char *state = NULL, *server = NULL, *ctrl = NULL, *sock = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (snprintf(t->dir, sizeof(t->dir), "/tmp/%s.XXXXXX", prefix) >= (int) sizeof(t->dir))
                return -ENAMETOOLONG;
        if (!mkdtemp(t->dir))
                return -errno;
        if (asprintf(&state, "dir=%s", t->dir) < 0 || asprintf(&sock, "%s/sock", t->dir) < 0 ||
            asprintf(&server, "type=unixio,path=%s", sock) < 0 ||
            asprintf(&ctrl, "type=unixio,path=%s.ctrl", sock) < 0 ||
            asprintf(&t->tcti, "swtpm:path=%s", sock) < 0)
                return -ENOMEM;
        if (strlen(sock) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, sock);

        t->pid = fork();
        if (t->pid < 0)
                return -errno;
        if (t->pid == 0) {
                char *argv[] = { (char *) "swtpm",
                                 (char *) "socket",
                                 (char *) "--tpm2",
                                 (char *) "--tpmstate",
                                 state,
                                 (char *) "--server",
                                 server,
                                 (char *) "--ctrl",
                                 ctrl,
                                 (char *) "--flags",
                                 (char *) "not-need-init,startup-clear",
                                 NULL };
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                (void) dup2(null, STDIN_FILENO);
                (void) dup2(null, STDOUT_FILENO);
                (void) dup2(null, STDERR_FILENO);
                execvp(argv[0], argv);
                _exit(127);
        }
        for (unsigned i = 0; i < 200; i++) {
                _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -errno;
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0)
                        return 0;
                (void) usleep(10 * 1000);
        }
        return -ETIMEDOUT;
}

void bench_swtpm_stop(BenchSwtpm *t) {
        _cleanup_free_ char *cmd = NULL;

        if (t->pid > 0) {
                (void) kill(t->pid, SIGTERM);
                (void) waitpid(t->pid, NULL, 0);
                t->pid = 0;
        }
        if (t->dir[0] && asprintf(&cmd, "rm -rf -- '%s'", t->dir) >= 0)
                (void) !system(cmd);
        free(t->tcti);
}
