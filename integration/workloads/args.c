// Syscalls whose arguments auditor captures, with known values.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int a = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int b = socket(AF_UNIX, SOCK_STREAM, 0);
    for (int i = 0; i < 5; i++) prctl(PR_SET_NAME, "argtest", 0, 0, 0);
    (void)personality(0xffffffff);
    struct winsize ws;
    (void)ioctl(a, TIOCGWINSZ, &ws); // ENOTTY on a socket
    (void)unshare(0);
    if (a >= 0) close(a);
    if (b >= 0) close(b);
    puts("args done");
    return 0;
}
