// A 64-bit process making a 32-bit syscall through `int $0x80` (i386 getpid is 20, x86_64's
// 20 is writev): auditor must report it as i386 getpid, never as writev.
#include <stdio.h>

int main(void) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    printf("compat getpid=%ld\n", ret);
    return ret > 0 ? 0 : 1;
}
