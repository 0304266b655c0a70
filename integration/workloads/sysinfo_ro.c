// For the sysinfo handler's hardening test: sysinfo(2) into memory the caller cannot write —
// a read-only page, a string literal, NULL — must fail with EFAULT, as the kernel's own
// sysinfo does, and leave that memory as it was. Prints `NAME=RET errno=E` for each, then
// `untouched=1` if the read-only page is still all zero.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char literal[256] = "a string literal, in read-only memory";

static void try(const char *name, void *p) {
    errno = 0;
    long r = syscall(SYS_sysinfo, p);
    printf("%s=%ld errno=%d\n", name, r, r < 0 ? errno : 0);
}

int main(void) {
    unsigned char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    try("rodata_page", page);
    try("literal", (void *)literal);
    try("null", NULL);
    int zero = 1;
    for (int i = 0; i < 4096; i++) zero &= page[i] == 0;
    printf("untouched=%d literal_ok=%d\n", zero, literal[0] == 'a');
    return 0;
}
