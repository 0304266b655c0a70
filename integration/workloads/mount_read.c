// gcc: -static
// For the FUSE mount test: mount(2) SRC on DIR as FSTYPE (no data, no flags), print
// `mount=R errno=E`; if it worked, the file system type the container's mountinfo shows for
// DIR (`fstype=`), the first line of DIR/FILE (`content=`), what the FUSE server serving it
// looks like from the container (`server=COMM seccomp=N nnp=N uid=U`), then unmount.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static void status_field(const char *status, const char *key, char *out, size_t n) {
    const char *p = strstr(status, key);
    out[0] = 0;
    if (!p) return;
    p += strlen(key);
    while (*p == ' ' || *p == '\t') p++;
    size_t i = 0;
    while (p[i] && p[i] != '\n' && p[i] != '\t' && i + 1 < n) { out[i] = p[i]; i++; }
    out[i] = 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: mount_read SRC DIR FSTYPE FILE\n");
        return 2;
    }
    const char *src = argv[1], *dir = argv[2], *type = argv[3], *file = argv[4];
    int r = mount(src, dir, type, 0, NULL);
    printf("mount=%d errno=%d\n", r, r ? errno : 0);
    fflush(stdout);
    if (r) return 0;

    FILE *mi = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    while (mi && fgets(line, sizeof(line), mi)) {
        char mnt[1024], fstype[256];
        // id parent major:minor root mountpoint options [optional...] - fstype source super
        if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 || strcmp(mnt, dir) != 0) continue;
        char *dash = strstr(line, " - ");
        if (dash && sscanf(dash + 3, "%255s", fstype) == 1) printf("fstype=%s\n", fstype);
    }
    if (mi) fclose(mi);

    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        printf("content=%s\n", line);
    } else {
        printf("content-errno=%d\n", errno);
    }
    if (f) fclose(f);

    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[512], comm[64] = {0}, status[8192];
        snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
        FILE *c = fopen(p, "r");
        if (!c) continue;
        if (!fgets(comm, sizeof(comm), c)) comm[0] = 0;
        fclose(c);
        comm[strcspn(comm, "\n")] = 0;
        if (strncmp(comm, "fuse", 4) != 0) continue;
        snprintf(p, sizeof(p), "/proc/%s/status", e->d_name);
        FILE *s = fopen(p, "r");
        size_t n = s ? fread(status, 1, sizeof(status) - 1, s) : 0;
        if (s) fclose(s);
        status[n] = 0;
        char seccomp[32], nnp[32], uid[64];
        status_field(status, "Seccomp:", seccomp, sizeof(seccomp));
        status_field(status, "NoNewPrivs:", nnp, sizeof(nnp));
        status_field(status, "Uid:", uid, sizeof(uid));
        printf("server=%s seccomp=%s nnp=%s uid=%s\n", comm, seccomp, nnp, uid);
    }
    if (d) closedir(d);
    fflush(stdout);
    r = umount2(dir, 0);
    printf("umount=%d errno=%d\n", r, r ? errno : 0);
    return 0;
}
