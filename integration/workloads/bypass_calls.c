// For the hardening tests: call each syscall that could bypass emulate-mount or
// emulate-setxattr (the new mount API, the *xattrat family), with arguments the kernel
// rejects without side effects (NULL pointers, fd -1), and print what each returned:
// `NAME=RET errno=E`. On a kernel that has them (6.15+ for open_tree_attr), the kernel's own
// answer is EBADF, EFAULT or EINVAL; ENOSYS means the seccomp filter refused the call.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void try(const char *name, long nr) {
    errno = 0;
    long r = syscall(nr, -1L, 0L, 0L, 0L, 0L, 0L);
    printf("%s=%ld errno=%d\n", name, r, r < 0 ? errno : 0);
}

int main(void) {
    try("open_tree", 428);
    try("move_mount", 429);
    try("fsopen", 430);
    try("fsconfig", 431);
    try("fsmount", 432);
    try("fspick", 433);
    try("mount_setattr", 442);
    try("setxattrat", 463);
    try("getxattrat", 464);
    try("listxattrat", 465);
    try("removexattrat", 466);
    try("open_tree_attr", 467);
    return 0;
}
