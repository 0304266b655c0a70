/*
 * notify_supervisor: the minimal seccomp-notify supervisor auditor's broker is compared with.
 *
 *   notify_supervisor PROGRAM [ARGS...]
 *
 * Forks; the child installs a filter that notifies getppid and allows everything else
 * (SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, as auditor
 * does), hands the listener over (the parent takes it with pidfd_getfd) and execs PROGRAM.
 * The parent sets SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6, as auditor does) and answers every
 * notification with CONTINUE from one thread: receive -> respond, nothing else. It exits with
 * the child's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Newer than Debian's 6.1 headers. */
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static void *serve(void *arg)
{
    int fd = *(int *)arg;
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (;;) {
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
            if (errno == EINTR || errno == ENOENT)
                continue;
            return NULL;
        }
        resp.id = req.id;
        resp.val = 0;
        resp.error = 0;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp); /* ENOENT: the caller was killed */
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    int tell[2], go[2];
    if (pipe(tell) != 0 || pipe(go) != 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(120);
        int lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                          SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
        if (lfd < 0)
            _exit(121);
        char c;
        if (write(tell[1], &lfd, sizeof lfd) != sizeof lfd || read(go[0], &c, 1) != 1)
            _exit(122);
        close(lfd);
        close(tell[1]);
        close(go[0]);
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int child_fd, fd, status;
    if (read(tell[0], &child_fd, sizeof child_fd) != sizeof child_fd)
        goto fail;
    int pidfd = syscall(SYS_pidfd_open, pid, 0);
    fd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, child_fd, 0);
    if (fd < 0) {
        perror("notify_supervisor: pidfd_getfd");
        goto fail;
    }
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) != 0)
        perror("notify_supervisor: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (needs 6.6)");
    pthread_t t;
    if (pthread_create(&t, NULL, serve, &fd) != 0 || write(go[1], "g", 1) != 1)
        goto fail;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
fail:
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 1;
}
