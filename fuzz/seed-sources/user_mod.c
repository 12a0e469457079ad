extern int printk(const char *fmt, ...);
extern volatile unsigned long jiffies;
extern int cm_register(int id);
extern int cm_state[8];
extern void ghost_fn(void);

int um_probe(int x)
{
    int r;
    ghost_fn();
    r = cm_register(x) + cm_state[x & 7] + (int)jiffies;
    printk("um_probe %d\n", r);
    return r;
}

static const void *__ksymtab_um_probe __attribute__((section("__ksymtab"), used)) =
    (const void *)&um_probe;

static const char m1[] __attribute__((section(".modinfo"), used, aligned(1))) = "license=GPL";
static const char m2[] __attribute__((section(".modinfo"), used, aligned(1))) = "depends=core_mod";
static const char m3[] __attribute__((section(".modinfo"), used, aligned(1))) = "name=user_mod";
