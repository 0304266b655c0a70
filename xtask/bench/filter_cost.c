// Times an allowed syscall (getppid) under a seccomp filter read from a file of raw
// `struct sock_filter` records (as `auditor compile -o FILE` writes them), or under no filter
// when the file is "-". Prints the median CPU ns per call over ROUNDS rounds of N calls.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
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
        fprintf(stderr, "usage: %s FILTER.bpf|- CALLS\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
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
    for (long i = 0; i < n / 10; i++) syscall(SYS_getppid); // warm-up
    for (int k = 0; k < ROUNDS; k++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        r[k] = (now_ns() - t0) / n;
    }
    qsort(r, ROUNDS, sizeof r[0], cmp);
    printf("%.1f\n", r[ROUNDS / 2]);
    return 0;
}
