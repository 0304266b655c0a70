// For the learn --policy fixpoint test: create DIR/null (c 1:3). Only if that works, use the
// node (open, write) and call sched_getscheduler, a call nothing else in this workload makes:
// learning it needs a round in which the mknod was granted.
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0) return 2;
    unlink("null");
    if (mknodat(AT_FDCWD, "null", S_IFCHR | 0666, makedev(1, 3)) != 0) {
        perror("mknod");
        return 0;
    }
    int fd = open("null", O_WRONLY);
    if (fd >= 0 && write(fd, "x", 1) == 1) puts("wrote to null");
    if (fd >= 0) close(fd);
    printf("policy=%d\n", sched_getscheduler(0));
    unlink("null");
    return 0;
}
