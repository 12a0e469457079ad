/* heaplog.c: an LD_PRELOAD logger of malloc, calloc, realloc and free, for
 * scripts/record-heap-trace.sh (mmp-benchmarks' heap-object layouts).
 *
 * Build: gcc -O1 -fPIC -shared -o heaplog.so heaplog.c
 * Run:   MMP_HEAP_LOG_FD=3 LD_PRELOAD=./heaplog.so PROGRAM 3>heap.log
 *
 * With MMP_HEAP_LOG_PROG=NAME set, only a process whose program name (argv[0]'s last
 * part) is NAME logs: under `valgrind` the launcher loads the preload too, before it
 * starts the tool, and must stay silent.
 *
 * It writes the log to the file descriptor named by MMP_HEAP_LOG_FD with write(2)
 * only: it never calls malloc itself (the real allocator is reached through glibc's
 * __libc_malloc and friends, not dlsym, which may allocate). The format, one record a
 * line (see benchmarks/src/import/heap.rs, which reads it):
 *
 *   mmp-heap-log 1
 *   sync 0xADDR                 the 8-byte word this logger stores to after each record
 *   map LINE                    a line of /proc/self/maps, at start and at exit
 *   malloc SIZE 0xPTR
 *   calloc NMEMB SIZE 0xPTR
 *   realloc 0xOLD SIZE 0xNEW
 *   free 0xPTR
 *   end
 *
 * After writing each malloc, calloc, realloc or free record the logger stores the
 * record's number (1, 2, ...) to the sync word. In a memory trace of the same run
 * (Valgrind lackey), the n-th store to that word is the moment the n-th record takes
 * effect: the allocation has returned, or the free has.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

/* The sync word: stored to after each record. */
volatile unsigned long mmp_heap_sync;

static int log_fd = -2; /* -2: not yet set up; -1: no log */
static unsigned long records;

static void put(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(log_fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Appends a string to buf at *at. */
static void str(char *buf, size_t *at, const char *s) {
    while (*s)
        buf[(*at)++] = *s++;
}

static void dec(char *buf, size_t *at, unsigned long v) {
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        buf[(*at)++] = t[--n];
}

static void hex(char *buf, size_t *at, unsigned long v) {
    char t[24];
    int n = 0;
    do {
        t[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    buf[(*at)++] = '0';
    buf[(*at)++] = 'x';
    while (n)
        buf[(*at)++] = t[--n];
}

/* Copies /proc/self/maps into the log, each line prefixed with "map ". */
static void copy_maps(void) {
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0)
        return;
    char in[4096], out[4096 + 4096 / 2 * 4];
    int line_start = 1;
    for (;;) {
        ssize_t n = read(fd, in, sizeof in);
        if (n <= 0)
            break;
        size_t at = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (line_start) {
                str(out, &at, "map ");
                line_start = 0;
            }
            out[at++] = in[i];
            if (in[i] == '\n')
                line_start = 1;
            if (at > sizeof out - 8) {
                put(out, at);
                at = 0;
            }
        }
        put(out, at);
    }
    close(fd);
}

static void setup(void) {
    if (log_fd != -2)
        return;
    log_fd = -1;
    const char *s = getenv("MMP_HEAP_LOG_FD");
    if (!s || !*s)
        return;
    int fd = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || fd > 100000)
            return;
        fd = fd * 10 + (*s - '0');
    }
    const char *only = getenv("MMP_HEAP_LOG_PROG");
    if (only && *only) {
        const char *me = program_invocation_short_name;
        while (*only && *me && *only == *me)
            only++, me++;
        if (*only || *me)
            return;
    }
    log_fd = fd;
    char buf[64];
    size_t at = 0;
    str(buf, &at, "mmp-heap-log 1\nsync ");
    hex(buf, &at, (unsigned long)&mmp_heap_sync);
    buf[at++] = '\n';
    put(buf, at);
    copy_maps();
}

__attribute__((constructor)) static void start(void) { setup(); }

__attribute__((destructor)) static void finish(void) {
    if (log_fd < 0)
        return;
    copy_maps();
    put("end\n", 4);
}

/* Writes one record (the line in buf) and marks the moment in the trace. */
static void record(char *buf, size_t at) {
    buf[at++] = '\n';
    put(buf, at);
    mmp_heap_sync = ++records;
}

void *malloc(size_t size) {
    setup();
    void *p = __libc_malloc(size);
    if (log_fd >= 0) {
        char buf[96];
        size_t at = 0;
        str(buf, &at, "malloc ");
        dec(buf, &at, size);
        buf[at++] = ' ';
        hex(buf, &at, (unsigned long)p);
        record(buf, at);
    }
    return p;
}

void *calloc(size_t nmemb, size_t size) {
    setup();
    void *p = __libc_calloc(nmemb, size);
    if (log_fd >= 0) {
        char buf[96];
        size_t at = 0;
        str(buf, &at, "calloc ");
        dec(buf, &at, nmemb);
        buf[at++] = ' ';
        dec(buf, &at, size);
        buf[at++] = ' ';
        hex(buf, &at, (unsigned long)p);
        record(buf, at);
    }
    return p;
}

void *realloc(void *old, size_t size) {
    setup();
    void *p = __libc_realloc(old, size);
    if (log_fd >= 0) {
        char buf[96];
        size_t at = 0;
        str(buf, &at, "realloc ");
        hex(buf, &at, (unsigned long)old);
        buf[at++] = ' ';
        dec(buf, &at, size);
        buf[at++] = ' ';
        hex(buf, &at, (unsigned long)p);
        record(buf, at);
    }
    return p;
}

void free(void *p) {
    setup();
    __libc_free(p);
    if (log_fd >= 0) {
        char buf[64];
        size_t at = 0;
        str(buf, &at, "free ");
        hex(buf, &at, (unsigned long)p);
        record(buf, at);
    }
}
