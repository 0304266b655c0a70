/*
 * handover_workload: the workload of the handover benchmark (`cargo xtask bench`).
 *
 *   handover_workload SOCKET SECONDS
 *
 * Installs a seccomp filter that notifies getppid() (no new privileges, a new listener),
 * hands the listener to the auditor agent at SOCKET the way runc does (the OCI seccomp agent
 * message with the fd attached, SCM_RIGHTS), closes its own copy, then times getppid() calls
 * (raw syscall(2)) for SECONDS. Every call is one round trip through the agent; one that fails
 * (ENOSYS: no agent held the listener) is counted. Prints one line:
 *
 *   handover_workload calls=N failures=F p50_us=P50 p99_us=P99 max_us=MAX
 *
 * MAX is the longest a call waited: during a handover, the pause.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET SECONDS\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[2]);
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
        perror("prctl");
        return 1;
    }
    int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0) {
        perror("seccomp");
        return 1;
    }
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr)) {
        perror("connect");
        return 1;
    }
    char msg[512];
    int len = snprintf(msg, sizeof msg,
                       "{\"ociVersion\":\"1.0.2\",\"fds\":[\"seccompFd\"],\"pid\":%d,\"metadata\":\"bench\","
                       "\"state\":{\"ociVersion\":\"1.0.2\",\"id\":\"handover-bench-%d\",\"status\":\"running\",\"pid\":%d}}",
                       getpid(), getpid(), getpid());
    struct iovec iov = {.iov_base = msg, .iov_len = (size_t)len};
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &listener, sizeof(int));
    if (sendmsg(sock, &mh, 0) != len) {
        perror("sendmsg");
        return 1;
    }
    close(sock);
    close(listener);

    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    unsigned long failures = 0;
    double end = now_ns() + seconds * 1e9, max = 0;
    while (1) {
        double t0 = now_ns();
        if (t0 >= end)
            break;
        long r = syscall(SYS_getppid);
        double d = now_ns() - t0;
        if (r < 0)
            failures++;
        if (d > max)
            max = d;
        if (n == cap) {
            cap *= 2;
            lat = realloc(lat, cap * sizeof *lat);
        }
        lat[n++] = d;
    }
    qsort(lat, n, sizeof *lat, cmp);
    printf("handover_workload calls=%zu failures=%lu p50_us=%.2f p99_us=%.2f max_us=%.0f\n", n, failures,
           n ? lat[n / 2] / 1e3 : 0, n ? lat[(size_t)(n * 0.99)] / 1e3 : 0, max / 1e3);
    return 0;
}
