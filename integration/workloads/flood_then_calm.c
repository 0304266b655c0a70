// Calls getppid() back to back until CALM exists, then once every 50 ms until DONE exists.
// Exits 3 if a call fails (its supervisor is gone), 4 after 60 s whatever happens.
//   flood_then_calm CALM DONE
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CALM DONE\n", argv[0]);
        return 2;
    }
    time_t end = time(NULL) + 60;
    while (access(argv[1], F_OK) != 0) {
        for (int i = 0; i < 1000; i++)
            if (syscall(SYS_getppid) < 0) return 3;
        if (time(NULL) > end) return 4;
    }
    while (access(argv[2], F_OK) != 0) {
        if (syscall(SYS_getppid) < 0) return 3;
        usleep(50000);
        if (time(NULL) > end) return 4;
    }
    return 0;
}
