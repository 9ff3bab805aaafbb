/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "killpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_write_class(const struct user_regs_struct *regs) {
        switch (regs->orig_rax) {
        case SYS_write:
        case SYS_pwrite64:
        case SYS_writev:
        case SYS_pwritev:
        case SYS_fsync:
        case SYS_fdatasync:
        case SYS_rename:
        case SYS_renameat:
        case SYS_renameat2:
        case SYS_unlink:
        case SYS_unlinkat:
        case SYS_ftruncate:
        case SYS_mkdir:
        case SYS_mkdirat:
        case SYS_fchmod:
                return true;
        case SYS_openat:
                return regs->rdx & (O_CREAT | O_TRUNC);
        case SYS_open:
                return regs->rsi & (O_CREAT | O_TRUNC);
        default:
                return false;
        }
}

int killpoint_run(
                int (*fn)(void *userdata),
                void *userdata,
                unsigned kill_at,
                bool *ret_killed,
                int *ret_status) {
        unsigned done = 0;
        bool in_syscall = false;
        int status;
        pid_t pid;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
                        _exit(126);
                raise(SIGSTOP);
                _exit(fn(userdata));
        }
        if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return -ECHILD;
        }
        if (ptrace(PTRACE_SETOPTIONS,
                   pid,
                   NULL,
                   (void *) (long) (PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) < 0) {
                int r = -errno;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        *ret_killed = false;
        for (int sig = 0;;) {
                if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *) (long) sig) < 0)
                        return -errno;
                sig = 0;
                if (waitpid(pid, &status, 0) != pid)
                        return -errno;
                if (WIFEXITED(status) || WIFSIGNALED(status)) {
                        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        return (int) done;
                }
                if (!WIFSTOPPED(status))
                        continue;
                if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
                        /* A real signal: deliver it (the SIGTRAP after execve is not one). */
                        sig = WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status);
                        continue;
                }
                in_syscall = !in_syscall;
                if (in_syscall)
                        continue; /* entry: let it run */
                struct user_regs_struct regs;
                if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) < 0)
                        return -errno;
                if (!is_write_class(&regs) || (long long) regs.rax < 0)
                        continue;
                done++;
                if (kill_at > 0 && done == kill_at) {
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, &status, 0);
                        *ret_killed = true;
                        *ret_status = 128 + SIGKILL;
                        return (int) done;
                }
        }
}
