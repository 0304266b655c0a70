// For the mount hardening tests: mount(2) SRC on DIR as FSTYPE with the mount data DATA (""
// for none), print `mount=R errno=E`, and if it worked, the per-mount options from mountinfo
// (`opts=`), then unmount (`umount=R errno=E`).
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: mount_fs SRC DIR FSTYPE DATA [FLAGS]\n");
        return 2;
    }
    const char *src = argv[1], *dir = argv[2], *type = argv[3], *data = argv[4];
    unsigned long flags = argc == 6 ? strtoul(argv[5], NULL, 0) : 0;
    int r = mount(src, dir, type, flags, *data ? data : NULL);
    printf("mount=%d errno=%d\n", r, r ? errno : 0);
    if (r) return 0;
    FILE *mi = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    while (mi && fgets(line, sizeof line, mi)) {
        char mnt[4096], opts[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s %4095s", mnt, opts) == 2 && strcmp(mnt, dir) == 0)
            printf("opts=%s\n", opts);
    }
    r = umount(dir);
    printf("umount=%d errno=%d\n", r, r ? errno : 0);
    return 0;
}
