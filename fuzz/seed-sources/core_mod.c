extern int printk(const char *fmt, ...);
extern void *kmalloc(unsigned long size, unsigned int flags);
extern volatile unsigned long jiffies;

int cm_state[8];
const int cm_table[4] = {1, 2, 3, 5};
int cm_private;
static int cm_count;

int cm_register(int id)
{
    void *p = kmalloc(64, 0);
    cm_state[id & 7] = (int)jiffies + cm_table[id & 3] + cm_private;
    cm_count++;
    printk("cm_register %d %p\n", id, p);
    return cm_count;
}

void cm_unregister(int id)
{
    cm_state[id & 7] = 0;
    printk("cm_unregister %d\n", id);
}

static const void *__ksymtab_cm_register __attribute__((section("__ksymtab"), used)) =
    (const void *)&cm_register;
static const void *__ksymtab_cm_state __attribute__((section("__ksymtab"), used)) =
    (const void *)&cm_state;
static const void *__ksymtab_cm_unregister __attribute__((section("__ksymtab_gpl"), used)) =
    (const void *)&cm_unregister;
static const void *__ksymtab_cm_table __attribute__((section("__ksymtab_gpl"), used)) =
    (const void *)&cm_table;
/* A __ksymtab_ name outside the ksymtab sections exports nothing. */
const void *__ksymtab_cm_fake __attribute__((used)) = (const void *)&cm_count;

static const char m1[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=core_mod";
static const char m2[] __attribute__((section(".modinfo"), used, aligned(1))) = "depends=";
static const char m3[] __attribute__((section(".modinfo"), used, aligned(1))) = "license=GPL";
