// For the broker fault tests: write our pid to PIDFILE, then call mknodat on NODE (a character
// device the policy's handler refuses, so each call is a quick round trip through the broker)
// until a call fails with ENOSYS — what the kernel answers once the broker's listener is gone —
// then write "enosys CALLS" to DONEFILE and exit 0. Gives up after 60 s (exit 3).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: mknod_loop PIDFILE DONEFILE NODE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    fprintf(f, "%d\n", getpid());
    fclose(f);
    time_t start = time(NULL);
    long calls = 0;
    for (;;) {
        calls++;
        if (mknodat(AT_FDCWD, argv[3], S_IFCHR | 0600, makedev(1, 1)) != 0 && errno == ENOSYS) break;
        if (time(NULL) - start > 60) return 3;
    }
    f = fopen(argv[2], "w");
    if (!f) return 2;
    fprintf(f, "enosys %ld\n", calls);
    fclose(f);
    return 0;
}
