// For the emulate-finit-module test: finit_try LABEL:FILE:PARAMS:FLAGS... — for each step,
// finit_module(open(FILE), PARAMS, FLAGS) and print `LABEL=RC errno=E`.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *step = strdup(argv[i]);
        char *label = strtok(step, ":");
        char *file = strtok(NULL, ":");
        char *params = strtok(NULL, ":");
        char *flags = strtok(NULL, ":");
        if (!label || !file) {
            fprintf(stderr, "bad step %s\n", argv[i]);
            return 2;
        }
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        long r = syscall(SYS_finit_module, fd, params && strcmp(params, "-") ? params : "",
                         flags ? strtoul(flags, NULL, 0) : 0);
        printf("%s=%ld errno=%d\n", label, r, r < 0 ? errno : 0);
        fflush(stdout);
        if (fd >= 0) close(fd);
        free(step);
    }
    return 0;
}
