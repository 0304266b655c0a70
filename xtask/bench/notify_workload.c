/*
 * notify_workload: the workload of the broker benchmark (`cargo xtask bench`).
 *
 *   notify_workload THREADS CALLS WARMUP
 *
 * THREADS threads each make WARMUP untimed then CALLS timed getppid() syscalls (raw syscall(2),
 * so no libc caching skips the kernel). Run under a filter that notifies getppid, each call is
 * one round trip through the supervisor. Prints one line:
 *
 *   notify_workload threads=T calls=C p50_us=P50 p99_us=P99 per_sec=RATE
 *
 * with the percentiles of the per-call wall time over every thread's timed calls and RATE the
 * timed calls of all threads divided by the wall time from the common start to the last end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static unsigned long calls, warmup;
static pthread_barrier_t start;
static double *lat;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *run(void *arg)
{
    double *mine = lat + (unsigned long)arg * calls;
    for (unsigned long i = 0; i < warmup; i++)
        syscall(SYS_getppid);
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < calls; i++) {
        double t0 = now_ns();
        syscall(SYS_getppid);
        mine[i] = now_ns() - t0;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS CALLS WARMUP\n", argv[0]);
        return 2;
    }
    unsigned long threads = strtoul(argv[1], NULL, 10);
    calls = strtoul(argv[2], NULL, 10);
    warmup = strtoul(argv[3], NULL, 10);
    if (threads == 0 || threads > 64 || calls == 0)
        return 2;
    lat = calloc(threads * calls, sizeof *lat);
    pthread_t tid[64];
    if (!lat || pthread_barrier_init(&start, NULL, threads + 1) != 0)
        return 1;
    for (unsigned long t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, run, (void *)t) != 0)
            return 1;
    pthread_barrier_wait(&start);
    double t0 = now_ns();
    for (unsigned long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double wall = now_ns() - t0;
    unsigned long n = threads * calls;
    qsort(lat, n, sizeof *lat, cmp);
    printf("notify_workload threads=%lu calls=%lu p50_us=%.3f p99_us=%.3f per_sec=%.0f\n", threads,
           calls, lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, (double)n / (wall / 1e9));
    return 0;
}
