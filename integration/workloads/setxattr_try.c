// For the emulate-setxattr test: setxattr_try MODE PATH NAME VALUE, MODE one of set, lset,
// fset. Makes the one call and prints `NAME=0` or `NAME=ERRNO_NAME` (EPERM, EACCES, …).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EBADF: return "EBADF";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return strerror(e);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s set|lset|fset PATH NAME VALUE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *path = argv[2], *name = argv[3], *value = argv[4];
    int r;
    if (strcmp(mode, "fset") == 0) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            perror("open");
            return 2;
        }
        r = fsetxattr(fd, name, value, strlen(value), 0);
    } else if (strcmp(mode, "lset") == 0) {
        r = lsetxattr(path, name, value, strlen(value), 0);
    } else {
        r = setxattr(path, name, value, strlen(value), 0);
    }
    printf("%s=%s\n", name, errname(r == 0 ? 0 : errno));
    return 0;
}
