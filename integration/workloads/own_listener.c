// Self-protection: try to install a seccomp filter with a listener of our own (which would see
// calls before auditor's broker does). Prints "listener=FD" or "listener=-1 errno=N"; exit 0.
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {.len = 1, .filter = allow};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (r >= 0)
        printf("listener=%ld\n", r);
    else
        printf("listener=-1 errno=%d\n", errno);
    return 0;
}
