/* wordfreq.c: counts the words of a built-in text in a chained hash table that grows,
 * then keeps the most frequent ones and frees everything: a small, realistic mix of
 * heap objects (strings of many sizes, list nodes, a table that is reallocated, an
 * array built with realloc) for scripts/record-heap-trace.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *text[] = {
    "Mondriaan memory protection gives every protection domain a table of permissions",
    "with two bits for every word of one shared address space and checks every load",
    "store and fetch against the running domain's table through a protection lookaside",
    "buffer the tables cost little memory when most of the address space is covered by",
    "large regions and a little more when every heap object has permissions of its own",
    "a word here and a word there the table of words grows and shrinks as objects live",
    "and die and the buffer misses add a little traffic to the memory the program uses",
};

struct entry {
    char *word;
    unsigned count;
    struct entry *next;
};

struct table {
    struct entry **slots;
    size_t size, used;
};

static unsigned long hash(const char *s) {
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

static void grow(struct table *t) {
    size_t n = t->size * 2;
    struct entry **s = calloc(n, sizeof *s);
    for (size_t i = 0; i < t->size; i++) {
        struct entry *e = t->slots[i];
        while (e) {
            struct entry *next = e->next;
            size_t k = hash(e->word) % n;
            e->next = s[k];
            s[k] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = s;
    t->size = n;
}

static void add(struct table *t, const char *w, size_t len) {
    char *word = malloc(len + 1);
    memcpy(word, w, len);
    word[len] = 0;
    size_t k = hash(word) % t->size;
    for (struct entry *e = t->slots[k]; e; e = e->next)
        if (strcmp(e->word, word) == 0) {
            e->count++;
            free(word);
            return;
        }
    struct entry *e = malloc(sizeof *e);
    e->word = word;
    e->count = 1;
    e->next = t->slots[k];
    t->slots[k] = e;
    if (++t->used > t->size)
        grow(t);
}

int main(void) {
    struct table t = {calloc(4, sizeof(struct entry *)), 4, 0};
    for (size_t l = 0; l < sizeof text / sizeof *text; l++) {
        const char *s = text[l];
        while (*s) {
            while (*s == ' ')
                s++;
            const char *b = s;
            while (*s && *s != ' ')
                s++;
            if (s > b)
                add(&t, b, (size_t)(s - b));
        }
    }
    /* The words seen more than once, in an array grown with realloc. */
    struct entry **top = NULL;
    size_t ntop = 0;
    for (size_t i = 0; i < t.size; i++)
        for (struct entry *e = t.slots[i]; e; e = e->next)
            if (e->count > 1) {
                top = realloc(top, (ntop + 1) * sizeof *top);
                top[ntop++] = e;
            }
    unsigned best = 0;
    const char *bw = "";
    for (size_t i = 0; i < ntop; i++)
        if (top[i]->count > best) {
            best = top[i]->count;
            bw = top[i]->word;
        }
    char line[64];
    snprintf(line, sizeof line, "%zu words, %zu repeated, most: %s (%u)\n", t.used, ntop, bw, best);
    fputs(line, stdout);
    free(top);
    for (size_t i = 0; i < t.size; i++) {
        struct entry *e = t.slots[i];
        while (e) {
            struct entry *next = e->next;
            free(e->word);
            free(e);
            e = next;
        }
    }
    free(t.slots);
    return 0;
}
