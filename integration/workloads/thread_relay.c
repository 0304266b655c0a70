// Threads one after another, each making three getppid calls on CPU 1, then moving to CPU 0
// and exiting there, where the main thread (on CPU 0) starts the next one: the next thread is
// likely to get the kernel stack the last one freed (the kernel caches freed stacks per CPU)
// and to make its first syscall on CPU 1, where the last syscall was the dead thread's.
// Every call must be counted, under its own thread. With one CPU everything runs on it.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int cpus;

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu < cpus ? cpu : 0, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static void *relay(void *a) {
    (void)a;
    for (int i = 0; i < 3; i++) syscall(SYS_getppid);
    pin(0);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    cpus = sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1;
    pin(0);
    for (int i = 0; i < n; i++) {
        pthread_attr_t attr;
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(cpus - 1, &s);
        pthread_attr_init(&attr);
        pthread_attr_setaffinity_np(&attr, sizeof s, &s);
        pthread_t t;
        if (pthread_create(&t, &attr, relay, NULL) != 0) return 1;
        pthread_join(t, NULL);
        pthread_attr_destroy(&attr);
    }
    return 0;
}
