// vfork + exec, and exec from a non-leader thread (the kernel's de_thread gives the exec'ing
// thread the leader's id): tracking must follow both.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void *exec_from_thread(void *a) {
    (void)a;
    execl("/bin/true", "true", (char *)NULL);
    return NULL;
}

int main(void) {
    pid_t p = vfork();
    if (p == 0) {
        execl("/bin/echo", "echo", "vforked", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    pthread_t t;
    pthread_create(&t, NULL, exec_from_thread, NULL);
    pthread_join(t, NULL); // never returns: the thread's exec replaces the process
    return 1;
}
