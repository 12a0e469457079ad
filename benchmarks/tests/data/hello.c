#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int work(int n){ char *p = malloc(n); memset(p, 1, n); int s=0; for(int i=0;i<n;i++) s+=p[i]; free(p); return s; }
int main(void){ long pg = sysconf(_SC_PAGESIZE); int s = 0; for (int i=0;i<3;i++) s += work(16+i); printf("%ld %d\n", pg, s); return 0; }
