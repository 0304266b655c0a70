// For the emulate-mount test: inside the container, try the new mount API (fsopen, which the
// policy answers with ENOSYS), then mount(2) SRC on DIR as ext4; if that works, write
// DIR/hello, report the mount's per-mount options from mountinfo, and unmount.
// Prints one `key=value` line per step.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mount_ext4 SRC DIR\n");
        return 2;
    }
    const char *src = argv[1], *dir = argv[2];
    long fs = syscall(SYS_fsopen, "ext4", 0);
    printf("fsopen=%ld errno=%d\n", fs, fs < 0 ? errno : 0);
    int r = mount(src, dir, "ext4", 0, "errors=remount-ro");
    printf("mount=%d errno=%d\n", r, r ? errno : 0);
    if (r) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/hello", dir);
    FILE *f = fopen(path, "w");
    printf("write=%d\n", f && fputs("written inside the container\n", f) >= 0 && fclose(f) == 0);
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
