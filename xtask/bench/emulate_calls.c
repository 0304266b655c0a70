// The emulated-calls benchmark's workload: emulate_calls DIR N KIND times N calls of one kind
// in DIR (a directory the caller may write) and prints `p50_us=… p99_us=… failed=…`.
// KIND: mknod (mknodat c 1:3, then unlink), setxattr (trusted.overlay.opaque on a directory),
// mount (an overlay of DIR's layers, then umount), nice (setpriority of itself, alternating
// -1 and 0). Under `auditor enforce --userns` with the bench policy each call is emulated;
// run directly as host root, the kernel does it (the floor).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: emulate_calls DIR N mknod|setxattr|mount|nice\n");
        return 2;
    }
    const char *dir = argv[1], *kind = argv[3];
    long n = atol(argv[2]);
    double *t = calloc(n, sizeof *t);
    char node[4096], lower[4096], upper[4096], work[4096], merged[4096], data[16384];
    snprintf(node, sizeof node, "%s/null", dir);
    snprintf(lower, sizeof lower, "%s/lower", dir);
    snprintf(upper, sizeof upper, "%s/upper", dir);
    snprintf(work, sizeof work, "%s/work", dir);
    snprintf(merged, sizeof merged, "%s/merged", dir);
    snprintf(data, sizeof data, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    mkdir(lower, 0755);
    mkdir(upper, 0755);
    mkdir(work, 0755);
    mkdir(merged, 0755);
    long failed = 0;
    for (long i = 0; i < n; i++) {
        double start = now_us();
        int r;
        if (!strcmp(kind, "mknod")) {
            r = mknodat(AT_FDCWD, node, S_IFCHR | 0666, makedev(1, 3));
        } else if (!strcmp(kind, "setxattr")) {
            r = setxattr(upper, "trusted.overlay.opaque", i % 2 ? "y" : "n", 1, 0);
        } else if (!strcmp(kind, "mount")) {
            r = mount("overlay", merged, "overlay", 0, data);
        } else if (!strcmp(kind, "nice")) {
            r = setpriority(PRIO_PROCESS, 0, i % 2 ? 0 : -1);
        } else {
            fprintf(stderr, "unknown kind %s\n", kind);
            return 2;
        }
        t[i] = now_us() - start;
        if (r) {
            if (failed++ == 0) fprintf(stderr, "%s: %s\n", kind, strerror(errno));
        }
        // Undo, untimed.
        if (!r && !strcmp(kind, "mknod")) unlink(node);
        if (!r && !strcmp(kind, "mount")) umount(merged);
    }
    qsort(t, n, sizeof *t, cmp);
    printf("p50_us=%.1f p99_us=%.1f failed=%ld\n", t[n / 2], t[(n * 99) / 100], failed);
    return 0;
}
