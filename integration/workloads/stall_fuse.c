// A FUSE file system that stalls, speaking the kernel's protocol itself (no libfuse): its root
// is an empty directory, and every lookup in it is read by this server and never answered,
// so the caller sleeps in the kernel where SIGKILL cannot reach it (a request its server has
// read). Prints "mounted" and then "stalled /NAME" on stderr. Usage: stall_fuse DEVICE DIR,
// DEVICE being /dev/fuse or another node of it (10:229). Static, to run in a busybox container.
// gcc: -static
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[1 << 20];

static void reply(int fd, uint64_t unique, int error, const void *body, size_t len) {
    char out[sizeof(struct fuse_out_header) + 4096];
    struct fuse_out_header h = {.len = sizeof h + len, .error = error, .unique = unique};
    memcpy(out, &h, sizeof h);
    if (len) memcpy(out + sizeof h, body, len);
    if (write(fd, out, sizeof h + len) < 0) perror("write");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: stall_fuse DEVICE DIR\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    char opts[128];
    snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd, getuid(), getgid());
    if (mount("stall", argv[2], "fuse.stall", MS_NOSUID | MS_NODEV, opts)) {
        perror("mount");
        return 1;
    }
    fprintf(stderr, "mounted\n");
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == ENOENT) continue;
            return errno == ENODEV ? 0 : 1;
        }
        struct fuse_in_header *in = (struct fuse_in_header *)buf;
        switch (in->opcode) {
        case FUSE_INIT: {
            struct fuse_init_in *ii = (struct fuse_init_in *)(in + 1);
            struct fuse_init_out o = {0};
            o.major = FUSE_KERNEL_VERSION;
            o.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor : FUSE_KERNEL_MINOR_VERSION;
            o.max_readahead = ii->max_readahead;
            o.max_write = 65536;
            reply(fd, in->unique, 0, &o, sizeof o);
            break;
        }
        case FUSE_GETATTR: {
            struct fuse_attr_out o = {0};
            o.attr.ino = in->nodeid;
            o.attr.mode = S_IFDIR | 0777;
            o.attr.nlink = 2;
            reply(fd, in->unique, 0, &o, sizeof o);
            break;
        }
        case FUSE_LOOKUP:
            fprintf(stderr, "stalled /%s\n", (char *)(in + 1));
            for (;;) pause();
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
            break;
        default:
            reply(fd, in->unique, -ENOSYS, NULL, 0);
        }
    }
}
