// Times a syscall under a seccomp filter read from a file of raw `struct sock_filter` records
// (as `auditor compile -o FILE` writes them), or under no filter when the file is "-". Prints
// the median CPU ns per call over ROUNDS rounds of N calls. The call (third argument):
//   getppid      allowed whatever its arguments: the kernel's action cache answers it;
//   personality  personality(0xffffffff), a query both profiles allow by argument value;
//   socket       socket(AF_UNIX, SOCK_DGRAM, 0) and its close: allowed by argument (domain);
//   refused      acct(NULL + 1): in neither profile (Docker allows it with CAP_SYS_PACCT
//                only), so the filter runs to its default action; EFAULT without a filter.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    // Thread CPU time: the cost of the calls, not of whatever else the machine runs meanwhile.
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILTER.bpf|- CALLS [getppid|personality|socket|refused]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    const char *what = argc > 3 ? argv[3] : "getppid";
    int kind = !strcmp(what, "getppid") ? 0 : !strcmp(what, "personality") ? 1
             : !strcmp(what, "socket") ? 2 : !strcmp(what, "refused") ? 3 : -1;
    if (kind < 0) {
        fprintf(stderr, "unknown call %s\n", what);
        return 2;
    }
    if (argv[1][0] != '-') {
        FILE *f = fopen(argv[1], "rb");
        if (!f) { perror(argv[1]); return 2; }
        static struct sock_filter prog[65536];
        size_t len = fread(prog, sizeof prog[0], 65536, f);
        fclose(f);
        struct sock_fprog fp = {.len = (unsigned short)len, .filter = prog};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp)) {
            perror("seccomp");
            return 3;
        }
    }
    enum { ROUNDS = 9 };
    double r[ROUNDS];
    for (int k = -1; k < ROUNDS; k++) { // round -1: warm-up
        long calls = k < 0 ? n / 10 : n;
        double t0 = now_ns();
        for (long i = 0; i < calls; i++) {
            switch (kind) {
            case 0: syscall(SYS_getppid); break;
            case 1: syscall(SYS_personality, 0xffffffffUL); break;
            case 2: {
                long fd = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
                if (fd < 0) { perror("socket"); return 4; }
                syscall(SYS_close, fd);
                break;
            }
            default: syscall(SYS_acct, (char *)1); break;
            }
        }
        if (k >= 0) r[k] = (now_ns() - t0) / n;
    }
    qsort(r, ROUNDS, sizeof r[0], cmp);
    printf("%.1f\n", r[ROUNDS / 2]);
    return 0;
}
