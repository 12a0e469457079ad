#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void leave(int code) { printf("bye %d\n", code); exit(code); }
static int work(int n) { char buf[64]; snprintf(buf, sizeof buf, "%d", n); if (strlen(buf) > 1) leave(0); return n; }
int main(void) { for (int i = 0; i < 20; i++) work(i); return 0; }
