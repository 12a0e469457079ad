#include <pthread.h>
#include <stdlib.h>
#include <string.h>
static void *worker(void *arg) {
    long n = (long)arg;
    for (int i = 0; i < 3; i++) {
        char *p = malloc(n + i);
        memset(p, 1, n + i);
        free(p);
    }
    return NULL;
}
int main(void) {
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, (void *)(16 + i));
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    return 0;
}
