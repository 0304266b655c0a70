// For interactive enforcement: two threads make the same call at the same time, with the
// same arguments. With the argument "extra" the call is getppid (outside a policy learned
// without it), else gettid. Prints "t0=R t1=R" (R: ok, or the errno) and exits 0.
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long nr;
static int result[2];

static void *call(void *arg) {
    int i = (int)(long)arg;
    errno = 0;
    // Explicit zeros: the registers a call does not use still reach seccomp, and they would
    // differ between the threads (auditor compares all six).
    long r = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
    result[i] = r < 0 ? errno : 0;
    return NULL;
}

int main(int argc, char **argv) {
    nr = argc > 1 && strcmp(argv[1], "extra") == 0 ? SYS_getppid : SYS_gettid;
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, call, (void *)i) != 0) return 2;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    char line[64];
    int n = snprintf(line, sizeof line, "t0=%s t1=%s\n", result[0] ? strerror(result[0]) : "ok",
                     result[1] ? strerror(result[1]) : "ok");
    return write(1, line, (size_t)n) == n ? 0 : 1;
}
