// For the Drift view's exact counts: call sync(2) COUNT times (argv[1]) as fast as the agent
// answers, then print "done COUNT" and exit 0. Static: it runs inside a busybox container.
// gcc: -static
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 1000;
    for (long i = 0; i < count; i++)
        syscall(SYS_sync);
    printf("done %ld\n", count);
    return 0;
}
