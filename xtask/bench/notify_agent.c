/*
 * notify_agent: the minimal OCI seccomp agent auditor's agent is compared with in the
 * noisy-neighbour row of bench-fleet.
 *
 *   notify_agent SOCKET
 *
 * Listens on SOCKET; each connection brings one listener fd (SCM_RIGHTS, with runc's OCI
 * seccomp state as the message, ignored). Each listener gets its own thread, which sets
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6) and answers every notification with CONTINUE:
 * receive -> respond, nothing else (no decision, no log). Runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static void *serve(void *arg)
{
    int fd = (int)(long)arg;
    ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (;;) {
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
            if (errno == EINTR || errno == ENOENT)
                continue;
            break; /* the filter's tasks are gone */
        }
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: notify_agent SOCKET\n");
        return 2;
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    unlink(argv[1]);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) || listen(s, 128)) {
        perror("notify_agent: socket");
        return 1;
    }
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            perror("notify_agent: accept");
            return 1;
        }
        char buf[8192];
        char ctl[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
        if (recvmsg(c, &mh, MSG_CMSG_CLOEXEC) > 0) {
            for (struct cmsghdr *m = CMSG_FIRSTHDR(&mh); m; m = CMSG_NXTHDR(&mh, m)) {
                if (m->cmsg_level == SOL_SOCKET && m->cmsg_type == SCM_RIGHTS) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(m), sizeof fd);
                    pthread_t t;
                    if (pthread_create(&t, NULL, serve, (void *)(long)fd) == 0)
                        pthread_detach(t);
                    else
                        close(fd);
                }
            }
        }
        close(c);
    }
}
