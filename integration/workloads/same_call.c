// A loop on one notified call, for the live session's exact totals: wait until the file
// argv[2] exists (the test's client is attached by then), then call getppid(2) COUNT times
// (argv[1]) with the same arguments, print "done COUNT" and exit 0.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    long count = atol(argv[1]);
    for (int waited = 0; access(argv[2], F_OK) != 0; waited++) {
        if (waited > 3000)
            return 3; // 30 s
        usleep(10000);
    }
    for (long i = 0; i < count; i++)
        syscall(SYS_getppid, 0, 0, 0, 0, 0, 0);
    printf("done %ld\n", count);
    return 0;
}
