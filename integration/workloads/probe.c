// For the policy round trip: print "ok"; with the argument "extra", also call getppid (which
// the learned policy does not contain) and print "getppid=RET errno=ERRNO". Always exits 0.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char line[64];
    int n;
    if (argc > 1 && strcmp(argv[1], "extra") == 0) {
        errno = 0;
        long r = syscall(SYS_getppid);
        n = snprintf(line, sizeof line, "getppid=%ld errno=%d\n", r < 0 ? -1L : 0L, r < 0 ? errno : 0);
    } else {
        n = snprintf(line, sizeof line, "ok\n");
    }
    // One write(2), the same in both modes.
    return write(1, line, (size_t)n) == n ? 0 : 1;
}
