/*
 * fleet_workload: one "container" of the fleet benchmark (`cargo xtask bench`).
 *
 *   fleet_workload SOCKET NAME START_EPOCH_MS SECONDS RATE
 *
 * Installs a seccomp filter that notifies getppid() (no new privileges, a new listener), hands
 * the listener to the auditor agent at SOCKET the way runc does (the OCI seccomp agent message,
 * container id NAME, listenerMetadata "bench", the fd attached with SCM_RIGHTS) and closes its
 * own copy. At START_EPOCH_MS (wall clock, so that every workload of the fleet starts together)
 * it calls getppid() (raw syscall(2)) RATE times a second for SECONDS, each call at its own
 * slot of the schedule (a call that is late goes at once: the schedule never stretches). Every
 * call is one round trip through the agent. Prints one line:
 *
 *   fleet_workload calls=N failures=F p50_us=P50 p99_us=P99
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

static long long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(long long t)
{
    struct timespec ts = {.tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s SOCKET NAME START_EPOCH_MS SECONDS RATE\n", argv[0]);
        return 2;
    }
    long long start_epoch_ms = atoll(argv[3]);
    double seconds = atof(argv[4]);
    double rate = atof(argv[5]);
    if (rate <= 0 || seconds <= 0) {
        fprintf(stderr, "SECONDS and RATE must be positive\n");
        return 2;
    }
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
    char msg[768];
    int len = snprintf(msg, sizeof msg,
                       "{\"ociVersion\":\"1.0.2\",\"fds\":[\"seccompFd\"],\"pid\":%d,\"metadata\":\"bench\","
                       "\"state\":{\"ociVersion\":\"1.0.2\",\"id\":\"%s\",\"status\":\"running\",\"pid\":%d}}",
                       getpid(), argv[2], getpid());
    if (len <= 0 || (size_t)len >= sizeof msg) {
        fprintf(stderr, "NAME too long\n");
        return 2;
    }
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

    /* The fleet's common start, on this process's monotonic clock. */
    long long wait = start_epoch_ms * 1000000LL - now_ns(CLOCK_REALTIME);
    long long start = now_ns(CLOCK_MONOTONIC) + (wait > 0 ? wait : 0);
    long long period = (long long)(1e9 / rate);
    size_t total = (size_t)(seconds * rate) + 1, n = 0;
    long long *lat = malloc(total * sizeof *lat);
    if (!lat)
        return 1;
    unsigned long failures = 0;
    long long end = start + (long long)(seconds * 1e9);
    for (size_t i = 0; i < total; i++) {
        long long slot = start + (long long)i * period;
        if (slot >= end)
            break;
        if (now_ns(CLOCK_MONOTONIC) < slot)
            sleep_until(slot);
        long long t0 = now_ns(CLOCK_MONOTONIC);
        if (t0 >= end)
            break; /* behind the schedule: the calls not made show it */
        long r = syscall(SYS_getppid);
        lat[n++] = now_ns(CLOCK_MONOTONIC) - t0;
        if (r < 0)
            failures++;
    }
    qsort(lat, n, sizeof *lat, cmp);
    printf("fleet_workload calls=%zu failures=%lu p50_us=%.2f p99_us=%.2f\n", n, failures,
           n ? lat[n / 2] / 1e3 : 0, n ? lat[(size_t)(n * 0.99)] / 1e3 : 0);
    return 0;
}
