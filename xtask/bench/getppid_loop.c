/*
 * getppid_loop: the benchmark's workload for `cargo xtask bench`.
 *
 *   getppid_loop CALLS [WARMUP [DELAY_MS]]
 *
 * Sleeps DELAY_MS (default 0: a tracer started just before may still be busy with its own
 * start-up, which is not what it costs a syscall), then makes WARMUP then CALLS getppid()
 * syscalls in a tight loop and prints one line on stdout:
 *
 *   getppid_loop calls=CALLS warmup=WARMUP total=TOTAL ns_per_call=NS cpu_ns_per_call=CPU
 *
 * where NS is the CLOCK_MONOTONIC (wall) time of the CALLS loop divided by CALLS, CPU the same
 * with this thread's CPU time (CLOCK_THREAD_CPUTIME_ID, which leaves out time the loop waited
 * for a CPU on a busy machine), and TOTAL is every getppid() this program made (what a tracer
 * must have counted). The raw syscall(2) is used so that no libc caching can skip the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int parse_count(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static double now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    unsigned long long calls, warmup = 0, delay_ms = 0;
    if (argc < 2 || argc > 4 || parse_count(argv[1], &calls) != 0 || calls == 0 ||
        (argc >= 3 && parse_count(argv[2], &warmup) != 0) ||
        (argc == 4 && parse_count(argv[3], &delay_ms) != 0)) {
        fprintf(stderr, "usage: %s CALLS [WARMUP [DELAY_MS]]\n", argv[0]);
        return 2;
    }

    struct timespec delay = {(time_t)(delay_ms / 1000), (long)(delay_ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR)
        ;

    for (unsigned long long i = 0; i < warmup; i++)
        syscall(SYS_getppid);

    double c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    double t0 = now_ns(CLOCK_MONOTONIC);
    for (unsigned long long i = 0; i < calls; i++)
        syscall(SYS_getppid);
    double t1 = now_ns(CLOCK_MONOTONIC);
    double c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);

    printf("getppid_loop calls=%llu warmup=%llu total=%llu ns_per_call=%.2f cpu_ns_per_call=%.2f\n",
           calls, warmup, calls + warmup, (t1 - t0) / (double)calls, (c1 - c0) / (double)calls);
    return 0;
}
