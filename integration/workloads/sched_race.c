// For the emulate-sched hardening test: while a second thread flips the sched_param it points
// to between PRIO and 99, the main thread asks N times for SCHED_FIFO with that param on
// itself, and after each answer reads back what it got. Prints `ok=… refused=… max_prio=…`:
// a handler that read the param twice (once to decide, once to act) would be seen at 99.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

static struct sched_param param;
static volatile int done;
static int prio;

static void *flipper(void *arg) {
    (void)arg;
    while (!done) {
        __atomic_store_n(&param.sched_priority, prio, __ATOMIC_RELAXED);
        __atomic_store_n(&param.sched_priority, 99, __ATOMIC_RELAXED);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: sched_race PRIO N\n");
        return 2;
    }
    prio = atoi(argv[1]);
    long n = atol(argv[2]), ok = 0, refused = 0;
    int max_prio = 0;
    param.sched_priority = prio;
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    for (long i = 0; i < n; i++) {
        if (sched_setscheduler(0, SCHED_FIFO, &param) == 0) ok++;
        else refused++;
        struct sched_param now;
        if (sched_getparam(0, &now) == 0 && now.sched_priority > max_prio)
            max_prio = now.sched_priority;
        // Back to SCHED_OTHER (always allowed) so that the next raise is a raise again.
        struct sched_param zero = {0};
        sched_setscheduler(0, SCHED_OTHER, &zero);
    }
    done = 1;
    pthread_join(t, NULL);
    printf("ok=%ld refused=%ld max_prio=%d\n", ok, refused, max_prio);
    return 0;
}
