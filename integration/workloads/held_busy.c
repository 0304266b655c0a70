// For interactive enforcement: while one thread's call waits for a prompt, the other thread's
// notified calls must still be answered. With the argument "extra" a thread calls getppid
// (outside a policy learned without it) while the main thread makes 50 calls of an unassigned
// syscall number (notified, answered by the broker without a prompt); else the thread calls
// gettid and the main thread nothing. Prints "busy=N served_while_held=B getppid=R".
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long nr;
static atomic_int returned;
static int result;

static void *call(void *arg) {
    // Learning: still running when main joins (the futex wait of the join is learned too).
    if (nr != SYS_getppid) usleep(600 * 1000);
    (void)arg;
    errno = 0;
    long r = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
    result = r < 0 ? errno : 0;
    atomic_store(&returned, 1);
    return NULL;
}

int main(int argc, char **argv) {
    int extra = argc > 1 && strcmp(argv[1], "extra") == 0;
    nr = extra ? SYS_getppid : SYS_gettid;
    pthread_t t;
    if (pthread_create(&t, NULL, call, NULL) != 0) return 2;
    int busy = 0, served_while_held = 0;
    // Both modes sleep (so that the learned policy allows it); then the thread's call waits.
    usleep(300 * 1000);
    if (extra) {
        for (int i = 0; i < 50; i++)
            if (syscall(1000, 0L, 0L, 0L, 0L, 0L, 0L) < 0 && errno == EPERM) busy++;
        served_while_held = !atomic_load(&returned);
    }
    pthread_join(t, NULL);
    char line[96];
    int n = snprintf(line, sizeof line, "busy=%d served_while_held=%d getppid=%s\n", busy,
                     served_while_held, result ? strerror(result) : "ok");
    return write(1, line, (size_t)n) == n ? 0 : 1;
}
