/*
 * pipe_pair: the noisy-neighbour benchmark's neighbour that never reaches an agent
 * (`cargo xtask bench-fleet`): what the scheduler alone costs a quiet container.
 *
 *   pipe_pair START_EPOCH_MS SECONDS
 *
 * At START_EPOCH_MS (wall clock, as fleet_workload) two threads pass one byte back and forth
 * through two pipes, back to back, for SECONDS: the same pattern of wake-ups as a workload
 * flooding its seccomp supervisor (each side blocks until the other answers), with no seccomp
 * filter and no agent. Prints one line:
 *
 *   pipe_pair round_trips=N
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int there[2], back[2];

static long long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *echo(void *arg)
{
    (void)arg;
    char c;
    while (read(there[0], &c, 1) == 1)
        if (write(back[1], &c, 1) != 1)
            break;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s START_EPOCH_MS SECONDS\n", argv[0]);
        return 2;
    }
    long long start = atoll(argv[1]) * 1000000LL;
    double seconds = atof(argv[2]);
    if (pipe(there) != 0 || pipe(back) != 0)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL) != 0)
        return 1;
    long long wait = start - now_ns(CLOCK_REALTIME);
    if (wait > 0) {
        struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
        nanosleep(&ts, NULL);
    }
    long long end = now_ns(CLOCK_MONOTONIC) + (long long)(seconds * 1e9);
    long long n = 0;
    char c = 'x';
    while (now_ns(CLOCK_MONOTONIC) < end) {
        for (int i = 0; i < 1000; i++, n++)
            if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1)
                return 1;
    }
    printf("pipe_pair round_trips=%lld\n", n);
    return 0;
}
