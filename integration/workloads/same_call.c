// A loop on one notified call, for the live session's exact totals: wait until the file
// argv[2] exists (the test's client is attached by then), then call getppid(2) COUNT times
// (argv[1]) with the same arguments, shared among THREADS threads (argv[3], default 1) that
// call at once, print "done COUNT" and exit 0.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *loop(void *calls) {
    for (long i = 0; i < (long)calls; i++)
        syscall(SYS_getppid, 0, 0, 0, 0, 0, 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4)
        return 2;
    long count = atol(argv[1]);
    long threads = argc == 4 ? atol(argv[3]) : 1;
    if (threads < 1 || threads > 64)
        return 2;
    for (int waited = 0; access(argv[2], F_OK) != 0; waited++) {
        if (waited > 3000)
            return 3; // 30 s
        usleep(10000);
    }
    pthread_t t[64];
    for (long i = 1; i < threads; i++)
        if (pthread_create(&t[i], NULL, loop, (void *)(count / threads)) != 0)
            return 4;
    // The main thread is the first of them, with the remainder.
    loop((void *)(count / threads + count % threads));
    for (long i = 1; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("done %ld\n", count);
    return 0;
}
