// Four threads, each making a syscall the others do not, joined by the main thread.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

static void *t_getcwd(void *a) { char b[256]; (void)a; return getcwd(b, sizeof b); }
static void *t_uname(void *a) { struct utsname u; (void)a; uname(&u); return NULL; }
static void *t_yield(void *a) { (void)a; sched_yield(); return NULL; }
static void *t_prio(void *a) { (void)a; (void)getpriority(PRIO_PROCESS, 0); return NULL; }

int main(void) {
    void *(*fns[4])(void *) = {t_getcwd, t_uname, t_yield, t_prio};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, fns[i], NULL) != 0) return 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    puts("threads done");
    return 0;
}
