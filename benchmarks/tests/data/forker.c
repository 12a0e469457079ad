/* Forks a child that allocates, writes and exits; the parent waits for it and prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    pid_t pid = fork();
    if (pid == 0) {
        char *p = malloc(32);
        memset(p, 'x', 31);
        p[31] = 0;
        free(p);
        _exit(3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child %d\n", WEXITSTATUS(status));
    return 0;
}
