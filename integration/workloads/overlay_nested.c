// gcc: -static
// For the overlay test: what a nested engine does to build a container's root from layers.
// overlay_nested DIR [EXTRA_OPTIONS [LOWER]]: inside DIR (owned by the container's root) make
// a lower layer with d/hidden, d/shown-below and gone, an upper layer whose d is opaque
// (trusted.overlay.opaque=y) and holds d/kept, and a whiteout for gone (a 0:0 character
// device); mount an overlay of them on DIR/merged (lowerdir LOWER if given) with
// EXTRA_OPTIONS appended, then report what the merged tree shows, write through it and
// unmount. Prints one `key=value` line per step.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static char buf[8][4096];

static const char *at(int i, const char *dir, const char *rel) {
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, rel);
    return buf[i];
}

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("x\n", f);
        fclose(f);
    }
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: overlay_nested DIR [EXTRA_OPTIONS [LOWER]]\n");
        return 2;
    }
    const char *dir = argv[1];
    const char *extra = argc > 2 ? argv[2] : "";
    const char *dirs[] = {"lower", "lower/d", "upper", "upper/d", "work", "merged"};
    for (unsigned i = 0; i < sizeof dirs / sizeof *dirs; i++) mkdir(at(0, dir, dirs[i]), 0755);
    touch(at(0, dir, "lower/d/hidden"));
    touch(at(0, dir, "lower/shown-below"));
    touch(at(0, dir, "lower/gone"));
    touch(at(0, dir, "upper/d/kept"));
    int r = setxattr(at(0, dir, "upper/d"), "trusted.overlay.opaque", "y", 1, 0);
    printf("opaque=%d errno=%d\n", r, r ? errno : 0);
    r = mknod(at(0, dir, "upper/gone"), S_IFCHR | 0600, makedev(0, 0));
    printf("whiteout=%d errno=%d\n", r, r ? errno : 0);

    char data[8192];
    snprintf(data, sizeof data, "lowerdir=%s,upperdir=%s,workdir=%s%s%s",
             argc > 3 ? argv[3] : at(1, dir, "lower"), at(2, dir, "upper"), at(3, dir, "work"),
             *extra ? "," : "", extra);
    const char *merged = at(4, dir, "merged");
    r = mount("overlay", merged, "overlay", 0, data);
    printf("mount=%d errno=%d\n", r, r ? errno : 0);
    if (r) return 0;

    // What the merged tree shows: d's entries, sorted; whether gone and shown-below are there.
    DIR *d = opendir(at(5, dir, "merged/d"));
    char *names[64];
    int n = 0;
    struct dirent *e;
    while (d && n < 64 && (e = readdir(d)))
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("d=");
    for (int i = 0; i < n; i++) printf("%s%s", i ? "," : "", names[i]);
    printf("\n");
    printf("gone=%s\n", access(at(5, dir, "merged/gone"), F_OK) == 0 ? "present" : "absent");
    printf("shown-below=%s\n",
           access(at(5, dir, "merged/shown-below"), F_OK) == 0 ? "present" : "absent");
    // A write through the overlay lands in the upper layer.
    FILE *nf = fopen(at(5, dir, "merged/d/new"), "w");
    printf("write=%d\n", nf ? 0 : errno);
    if (nf) fclose(nf);
    printf("upper-new=%s\n", access(at(6, dir, "upper/d/new"), F_OK) == 0 ? "present" : "absent");
    FILE *mi = fopen("/proc/self/mountinfo", "r");
    char line[8192];
    while (mi && fgets(line, sizeof line, mi)) {
        char mnt[4096], opts[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s %4095s", mnt, opts) == 2 && strcmp(mnt, merged) == 0)
            printf("opts=%s\n", opts);
    }
    r = umount(merged);
    printf("umount=%d errno=%d\n", r, r ? errno : 0);
    return 0;
}
