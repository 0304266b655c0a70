// For the TOCTOU test: while a second thread keeps rewriting the path buffer between "a/node"
// and "b/node", call mknodat(path, c 1:3) N times in DIR (the broker emulates it). After each
// call, report which of a/node and b/node exists, then remove them:
//   call=I ret=R a=0|1 b=0|1
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char path[] = "a/node";
static atomic_int stop;

static void *flip(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        // One byte decides the directory; volatile so every store reaches memory.
        *(volatile char *)&path[0] = 'b';
        *(volatile char *)&path[0] = 'a';
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: mknod_race DIR N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    mkdir("a", 0755);
    mkdir("b", 0755);
    pthread_t t;
    if (pthread_create(&t, NULL, flip, NULL) != 0) return 2;
    for (int i = 0; i < n; i++) {
        int r = mknodat(AT_FDCWD, path, S_IFCHR | 0600, makedev(1, 3));
        int e = r ? errno : 0;
        int a = access("a/node", F_OK) == 0, b = access("b/node", F_OK) == 0;
        printf("call=%d ret=%d errno=%d a=%d b=%d\n", i, r, e, a, b);
        unlink("a/node");
        unlink("b/node");
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    return 0;
}
