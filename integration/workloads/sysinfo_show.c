// For the sysinfo handler test: prints `totalram=BYTES freeram=BYTES` from sysinfo(2).
#include <stdio.h>
#include <sys/sysinfo.h>

int main(void) {
    struct sysinfo si;
    if (sysinfo(&si) != 0) {
        perror("sysinfo");
        return 1;
    }
    printf("totalram=%llu freeram=%llu\n", (unsigned long long)si.totalram * si.mem_unit,
           (unsigned long long)si.freeram * si.mem_unit);
    return 0;
}
