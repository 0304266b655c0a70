// gcc: -static
// For the emulate-sched test: sched_try STEP... where a STEP is one of
//   fifo:PRIO       sched_setscheduler(T, SCHED_FIFO, PRIO) on a second thread T (by its tid)
//   attr:PRIO       sched_setattr(0, {SCHED_FIFO, PRIO}) on the calling thread
//   nice:N[:PID]    setpriority(PRIO_PROCESS, PID or 0, N)
//   pgrp:N          setpriority(PRIO_PGRP, 0, N)
// and prints `STEP=RC errno=E` for each, then what the kernel reports afterwards
// (`policy=`, `prio=` of T; `now=` of the nice value for nice steps).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile pid_t worker_tid;
static volatile int done;

static void *worker(void *arg) {
    (void)arg;
    worker_tid = (pid_t)syscall(SYS_gettid);
    while (!done) usleep(1000);
    return NULL;
}

struct attr {
    unsigned size, policy;
    unsigned long long flags;
    int nice;
    unsigned priority;
    unsigned long long runtime, deadline, period;
};

int main(int argc, char **argv) {
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    while (!worker_tid) usleep(1000);
    for (int i = 1; i < argc; i++) {
        char step[256];
        snprintf(step, sizeof step, "%s", argv[i]);
        char *op = strtok(step, ":"), *a = strtok(NULL, ":"), *b = strtok(NULL, ":");
        int v = a ? atoi(a) : 0;
        long r = -1;
        if (!strcmp(op, "fifo")) {
            struct sched_param p = {.sched_priority = v};
            r = sched_setscheduler(worker_tid, SCHED_FIFO, &p);
            printf("%s=%ld errno=%d\n", argv[i], r, r ? errno : 0);
            struct sched_param now;
            sched_getparam(worker_tid, &now);
            printf("policy=%d prio=%d\n", sched_getscheduler(worker_tid), now.sched_priority);
            continue;
        } else if (!strcmp(op, "attr")) {
            struct attr at = {.size = sizeof at, .policy = SCHED_FIFO, .priority = v};
            r = syscall(SYS_sched_setattr, 0, &at, 0);
        } else if (!strcmp(op, "nice")) {
            r = setpriority(PRIO_PROCESS, b ? atoi(b) : 0, v);
        } else if (!strcmp(op, "pgrp")) {
            r = setpriority(PRIO_PGRP, 0, v);
        }
        printf("%s=%ld errno=%d\n", argv[i], r, r ? errno : 0);
        if (!strcmp(op, "nice") && !b) {
            errno = 0;
            printf("now=%d\n", getpriority(PRIO_PROCESS, 0));
        }
    }
    done = 1;
    pthread_join(t, NULL);
    return 0;
}
