//! The importers of other tools' traces, on real (and hand-written) samples in `tests/data`.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::PathBuf;

use mmp_benchmarks::import::uftrace::Symbols;
use mmp_benchmarks::import::{self, InputFormat, ReadOptions};
use mmp_benchmarks::trace::binary::BinaryWriter;
use mmp_benchmarks::trace::{Event, EventSource, MemKind, TraceError, TraceWidth};
use mmp_domains::Perm;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn text_of(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

fn drain(src: &mut dyn EventSource) -> Vec<Event> {
    let mut v = Vec::new();
    while let Some(e) = src.next_event().unwrap() {
        v.push(e);
    }
    v
}

/// Every event of sample `name` read as `format`, checking the position at the end.
fn events(name: &str, format: InputFormat) -> Vec<Event> {
    let mut src = import::open(&data(name), Some(format)).unwrap();
    let v = drain(src.as_mut());
    let len = std::fs::metadata(data(name)).unwrap().len();
    assert_eq!(src.position(), len, "{name}: position at the end");
    v
}

/// Every event of `text` read as `format`, or the first error.
fn events_of(text: &str, format: InputFormat) -> Result<Vec<Event>, TraceError> {
    let mut src = import::from_reader(Cursor::new(text.as_bytes().to_vec()), Some(format))?;
    let mut v = Vec::new();
    while let Some(e) = src.next_event()? {
        v.push(e);
    }
    Ok(v)
}

fn dom(no: u32, name: &str) -> Event {
    Event::Domain {
        no,
        name: name.into(),
    }
}

fn func(domain: u32, k: u64, name: &str) -> Event {
    Event::Function {
        addr: addr(domain, k),
        domain,
        name: name.into(),
    }
}

fn addr(domain: u32, k: u64) -> u64 {
    (u64::from(domain) << 24) + 16 + 4 * k
}

fn call(domain: u32, k: u64) -> Event {
    Event::Call {
        target: addr(domain, k),
    }
}

fn fetch(domain: u32, k: u64) -> Event {
    Event::Mem {
        kind: MemKind::Fetch,
        addr: addr(domain, k),
        size: 4,
    }
}

const RET: Event = Event::Return;

fn switch(domain: u32) -> Event {
    Event::Switch { domain }
}

fn cpu(cpu: u32) -> Event {
    Event::Cpu { cpu }
}

fn thread(tid: u32) -> Event {
    Event::Thread { tid }
}

/// Where a control event runs: a CPU (before any thread event), a thread, or an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ctx {
    Cpu(u32),
    Thread(u32),
    Irq(usize),
}

/// Checks the shared rules on a whole stream: declarations before use, dense CPUs, a
/// switch before each context's first control event (an interrupt enters its domain), an
/// interrupt return only with an interrupt open and no thread switch inside one, and
/// returns never outnumbering calls in a context. Returns (calls, returns) per CPU.
fn check_rules(events: &[Event]) -> HashMap<u32, (u64, u64)> {
    let mut domains = HashSet::new();
    let mut functions = HashSet::new();
    let mut per_cpu: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut per_ctx: HashMap<Ctx, (u64, u64)> = HashMap::new();
    let mut switched = HashSet::new();
    let mut thread: HashMap<u32, Ctx> = HashMap::new();
    let mut irqs: HashMap<u32, Vec<Ctx>> = HashMap::new();
    let mut serial = 0;
    let mut current = 0;
    let mut max_cpu = 0;
    for (i, e) in events.iter().enumerate() {
        let ctx = irqs
            .get(&current)
            .and_then(|v| v.last().copied())
            .or_else(|| thread.get(&current).copied())
            .unwrap_or(Ctx::Cpu(current));
        match e {
            Event::Domain { no, .. } => {
                assert_eq!(
                    *no as usize,
                    domains.len() + 1,
                    "event {i}: domains numbered in order"
                );
                domains.insert(*no);
            }
            Event::Function { addr, domain, .. } => {
                assert!(domains.contains(domain), "event {i}: undeclared domain");
                assert_eq!(
                    addr >> 24,
                    u64::from(*domain),
                    "event {i}: address in its domain"
                );
                assert!(
                    functions.insert(*addr),
                    "event {i}: function declared twice"
                );
            }
            Event::Cpu { cpu } => {
                assert_ne!(*cpu, current, "event {i}: a Cpu event that changes nothing");
                assert!(*cpu <= max_cpu + 1, "event {i}: CPUs numbered densely");
                max_cpu = max_cpu.max(*cpu);
                current = *cpu;
            }
            Event::Thread { tid } => {
                assert!(
                    irqs.get(&current).is_none_or(Vec::is_empty),
                    "event {i}: a thread switch inside an interrupt"
                );
                thread.insert(current, Ctx::Thread(*tid));
            }
            Event::Interrupt { domain } => {
                assert!(domains.contains(domain), "event {i}: undeclared domain");
                serial += 1;
                irqs.entry(current).or_default().push(Ctx::Irq(serial));
                switched.insert(Ctx::Irq(serial));
            }
            Event::InterruptReturn => {
                assert!(
                    irqs.get_mut(&current).and_then(Vec::pop).is_some(),
                    "event {i}: no interrupt open on CPU {current}"
                );
            }
            Event::Switch { domain } => {
                assert!(domains.contains(domain), "event {i}: undeclared domain");
                switched.insert(ctx);
            }
            Event::Call { target } => {
                assert!(functions.contains(target), "event {i}: undeclared callee");
                assert!(switched.contains(&ctx), "event {i}: no switch in {ctx:?}");
                per_ctx.entry(ctx).or_default().0 += 1;
                per_cpu.entry(current).or_default().0 += 1;
            }
            Event::Return => {
                let c = per_ctx.entry(ctx).or_default();
                c.1 += 1;
                assert!(
                    c.1 <= c.0,
                    "event {i}: a return with no open call in {ctx:?}"
                );
                per_cpu.entry(current).or_default().1 += 1;
            }
            Event::Mem {
                kind: MemKind::Fetch,
                addr,
                ..
            } if addr >> 24 != 0 && functions.contains(addr) => {
                assert!(switched.contains(&ctx), "event {i}: no switch in {ctx:?}");
            }
            _ => {}
        }
    }
    per_cpu
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[test]
fn ftrace_function_sample() {
    let ev = events("ftrace_function.txt", InputFormat::Ftrace);
    let expected = vec![
        dom(1, "vmlinux"),
        // foo_init [foo] <-do_one_initcall
        dom(2, "foo"),
        func(2, 0, "foo_init"),
        func(1, 0, "do_one_initcall"),
        // insmod-93: a thread of its own, from its first line
        thread(93),
        switch(1),
        call(2, 0),
        // printk <-foo_init [foo]
        func(1, 1, "printk"),
        call(1, 1),
        // vprintk <-printk: a call within vmlinux
        func(1, 2, "vprintk"),
        fetch(1, 2),
        // foo_helper [foo] <-foo_init [foo]: the return from printk is implied
        func(2, 1, "foo_helper"),
        RET,
        fetch(2, 1),
        // kmalloc_trace <-foo_helper [foo]
        func(1, 3, "kmalloc_trace"),
        call(1, 3),
        // (trace_printk line skipped) CPU 1: ide_intr [ide_core] <-handle_irq_event
        dom(3, "ide_core"),
        func(3, 0, "ide_intr"),
        func(1, 4, "handle_irq_event"),
        cpu(1),
        thread(12),
        switch(1),
        call(3, 0),
        // ide_read_status [ide_core] <-ide_intr [ide_core]
        func(3, 1, "ide_read_status"),
        fetch(3, 1),
        // __wake_up <-ide_intr [ide_core]
        func(1, 5, "__wake_up"),
        call(1, 5),
        // CPU 0: do_init_module <-load_module
        func(1, 6, "do_init_module"),
        func(1, 7, "load_module"),
        cpu(0),
        fetch(1, 6),
        // CPU 1: snd_pcm_period_elapsed [snd-pcm] <-azx_interrupt [snd_hda_codec]
        dom(4, "snd_pcm"),
        func(4, 0, "snd_pcm_period_elapsed"),
        dom(5, "snd_hda_codec"),
        func(5, 0, "azx_interrupt"),
        cpu(1),
        // another thread on CPU 1: kworker/0:1-12's calls stay open in its own stack
        thread(7),
        switch(5),
        call(4, 0),
        // CPU 0, no flags column: sys_close <-system_call_fastpath, bash-1977's first line
        func(1, 8, "sys_close"),
        func(1, 9, "system_call_fastpath"),
        cpu(0),
        thread(1977),
        switch(1),
        fetch(1, 8),
    ];
    assert_eq!(ev, expected);
    check_rules(&ev);
    let src = import::open(&data("ftrace_function.txt"), None).unwrap();
    assert_eq!(src.width(), TraceWidth::Bits32);
}

#[test]
fn ftrace_graph_sample() {
    let ev = events("ftrace_graph.txt", InputFormat::FtraceGraph);
    let expected = vec![
        dom(1, "vmlinux"),
        // the two leading `}` close calls made before the trace: skipped
        dom(2, "ide_core"),
        func(2, 0, "ide_intr"),
        switch(1),
        call(2, 0),
        func(1, 0, "printk"),
        call(1, 0),
        RET,
        func(2, 1, "ide_read_status"),
        call(2, 1),
        func(1, 1, "__raw_readb"),
        call(1, 1),
        RET,
        RET,
        RET,
        // CPU 1
        func(1, 2, "do_sys_open"),
        cpu(1),
        switch(1),
        call(1, 2),
        func(1, 3, "getname"),
        call(1, 3),
        func(1, 4, "kmem_cache_alloc"),
        call(1, 4),
        RET,
        // task switch and irq markers skipped; CPU 0
        func(1, 5, "do_IRQ"),
        cpu(0),
        call(1, 5),
        func(1, 6, "handle_irq"),
        call(1, 6),
        RET,
        RET,
        // `} /* do_sys_open */` on CPU 0 has no open call: skipped; CPU 1
        cpu(1),
        RET,
        RET,
        dom(3, "ext4"),
        func(3, 0, "ext4_file_open"),
        call(3, 0),
    ];
    assert_eq!(ev, expected);
    check_rules(&ev);
}

#[test]
fn ftrace_graph_columns_variants() {
    // funcgraph-abstime and funcgraph-proc
    let t = "\
# tracer: function_graph
  360.774522 |   1)    sh-4802     |               |  d_free() {
  360.774523 |   1)    sh-4802     |   0.616 us    |    call_rcu [rcu-x]();
  360.774530 |   1)    sh-4802     | + 11.010 us   |  } /* d_free */
  360.774531 |   1)    sh-4802     |   <========== |
";
    let ev = events_of(t, InputFormat::FtraceGraph).unwrap();
    assert_eq!(
        ev,
        vec![
            dom(1, "vmlinux"),
            func(1, 0, "d_free"),
            switch(1),
            call(1, 0),
            dom(2, "rcu_x"),
            func(2, 0, "call_rcu"),
            call(2, 0),
            RET,
            RET,
        ]
    );
    assert_eq!(import::detect(t.as_bytes()), Some(InputFormat::FtraceGraph));
}

#[test]
fn uftrace_sample() {
    let ev = events("uftrace_replay.txt", InputFormat::Uftrace);
    let expected_head = vec![
        dom(1, "program"),
        func(1, 0, "__monstartup"),
        switch(1),
        call(1, 0),
        RET,
        dom(2, "libc.so.6"),
        func(2, 0, "__cxa_atexit"),
        call(2, 0),
        RET,
        func(1, 1, "main"),
        call(1, 1),
        func(2, 1, "sysconf"),
        call(2, 1),
        RET,
        func(1, 2, "work"),
        call(1, 2),
        func(2, 2, "malloc"),
        call(2, 2),
        RET,
        func(2, 3, "memset"),
        call(2, 3),
        RET,
        // `free();` has no `@lib` (and no line named `free@lib` before): it stays in its
        // caller's object, the program
        func(1, 3, "free"),
        call(1, 3),
        RET,
        RET,
        call(1, 2),
    ];
    assert_eq!(ev[..expected_head.len()], expected_head[..]);
    // Totals, counted from the sample's text: each `f();` is a call and a return, each
    // `f() {` a call, each `}` a return (the sample closes every call).
    let text = text_of("uftrace_replay.txt");
    let leaves = text.lines().filter(|l| l.ends_with("();")).count();
    let opens = text.lines().filter(|l| l.ends_with("() {")).count();
    let closes = text
        .lines()
        .filter(|l| {
            l.split('|')
                .nth(1)
                .is_some_and(|f| f.trim_start().starts_with('}'))
        })
        .count();
    let per_cpu = check_rules(&ev);
    assert_eq!(per_cpu.len(), 1, "one thread");
    assert_eq!(
        per_cpu[&0],
        ((leaves + opens) as u64, (leaves + closes) as u64)
    );
    assert_eq!(opens, closes);
    assert_eq!(count(&ev, |e| matches!(e, Event::Domain { .. })), 2);
}

#[test]
fn uftrace_threads_and_limits() {
    let t = "\
# DURATION     TID     FUNCTION
            [  100] | main() {
            [  101] | worker() {
   1.000 us [  101] |   malloc@libc.so.6();
   1.000 us [  100] |   pthread_join@libpthread.so.0();
   2.000 us [  101] | } /* worker */
   2.000 us [  101] | } /* extra: skipped */
   9.000 us [  100] | } /* main */
";
    let ev = events_of(t, InputFormat::Uftrace).unwrap();
    assert_eq!(
        ev,
        vec![
            dom(1, "program"),
            func(1, 0, "main"),
            switch(1),
            call(1, 0),
            func(1, 1, "worker"),
            cpu(1),
            switch(1),
            call(1, 1),
            dom(2, "libc.so.6"),
            func(2, 0, "malloc"),
            call(2, 0),
            RET,
            dom(3, "libpthread.so.0"),
            func(3, 0, "pthread_join"),
            cpu(0),
            call(3, 0),
            RET,
            cpu(1),
            RET,
            cpu(0),
            RET,
        ]
    );
    check_rules(&ev);
    // 65 threads
    let many: String = (0..65)
        .map(|t| format!("   1.0 us [{t:5}] | f();\n"))
        .collect();
    let e = events_of(&many, InputFormat::Uftrace)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line 65: more than 64"), "{e}");
}

#[test]
fn uftrace_trailer_of_a_program_that_exits_inside_functions() {
    // Real `uftrace replay` of `exiter.c`, which calls `exit` four calls deep: an event line
    // (`/* linux:task-exit */`) and then the trailer listing the calls left open.
    let text = text_of("uftrace_exit.txt");
    assert!(text.contains("uftrace stopped tracing with remaining functions"));
    assert!(text.contains("/* linux:task-exit */"));
    let ev = events("uftrace_exit.txt", InputFormat::Uftrace);
    let body = text.split("uftrace stopped").next().unwrap();
    let leaves = body.lines().filter(|l| l.ends_with("();")).count() as u64;
    let opens = body.lines().filter(|l| l.ends_with("() {")).count() as u64;
    let closes = body
        .lines()
        .filter(|l| l.ends_with(" */") && l.contains("} /*"))
        .count() as u64;
    let per_cpu = check_rules(&ev);
    assert_eq!(per_cpu.len(), 1, "one thread");
    assert_eq!(per_cpu[&0], (leaves + opens, leaves + closes));
    // the four calls the trailer lists (`[3] exit` .. `[0] main`) stay open
    assert_eq!(opens - closes, 4);
    // nothing of the trailer became a function
    for name in ["task", "exit", "leave", "work", "main"] {
        let n = count(
            &ev,
            |e| matches!(e, Event::Function { name: f, .. } if f == name),
        );
        assert!(n <= 1, "{name} declared {n} times");
    }
    assert_eq!(import::detect(text.as_bytes()), Some(InputFormat::Uftrace));
}

#[test]
fn uftrace_symbols_name_the_object_of_unattributed_calls() {
    let t = "\
# DURATION     TID     FUNCTION
            [    7] | main() {
            [    7] |   sqlite3_open@libsqlite3.so() {
   1.000 us [    7] |     sqlite3_initialize();
   1.000 us [    7] |     free();
   2.000 us [    7] |   } /* sqlite3_open */
   1.000 us [    7] |   free();
   9.000 us [    7] | } /* main */
";
    let symbols = Symbols::parse(
        "# OBJECT SYMBOL\n\
         program main\n\
         libsqlite3.so sqlite3_open\n\
         libsqlite3.so sqlite3_initialize\n\
         libc.so.6 free\n",
    )
    .unwrap();
    assert_eq!(symbols.resolve("program", "free"), Some("libc.so.6"));
    assert_eq!(symbols.resolve("libsqlite3.so", "main"), Some("program"));
    assert_eq!(symbols.resolve("program", "nowhere"), None);
    let read = |symbols: Option<Symbols>| {
        let options = ReadOptions {
            uftrace_symbols: symbols,
            ..ReadOptions::default()
        };
        let mut src = import::from_reader_with(
            Cursor::new(t.to_string()),
            Some(InputFormat::Uftrace),
            &options,
        )
        .unwrap();
        drain(&mut *src)
    };
    let domain_of = |ev: &[Event], name: &str| {
        ev.iter()
            .find_map(|e| match e {
                Event::Function {
                    name: f, domain, ..
                } if f == name => Some(*domain),
                _ => None,
            })
            .unwrap()
    };
    // Without symbols: `sqlite3_initialize` and the first `free` stay in SQLite (their
    // caller's object), so the program's `free` is SQLite's function too.
    let ev = read(None);
    check_rules(&ev);
    assert_eq!(domain_of(&ev, "sqlite3_initialize"), 2);
    assert_eq!(domain_of(&ev, "free"), 2);
    assert_eq!(count(&ev, |e| matches!(e, Event::Domain { .. })), 2);
    // With them: `free` is libc's, a third domain.
    let ev = read(Some(symbols));
    check_rules(&ev);
    assert_eq!(domain_of(&ev, "sqlite3_initialize"), 2);
    assert_eq!(domain_of(&ev, "free"), 3);
    assert!(ev.contains(&dom(3, "libc.so.6")));
    // A line that is not `OBJECT SYMBOL` is an error naming it.
    let e = Symbols::parse("program main\nlibc.so.6\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line 2: expected `OBJECT SYMBOL`"), "{e}");
    let e = Symbols::parse("a b c\n").unwrap_err().to_string();
    assert!(e.starts_with("line 1:"), "{e}");
}

#[test]
fn ltrace_unnamed_calls_sample() {
    // Real `ltrace -f -T -i -e '*'` of hello.c: glibc's calls ltrace cannot name
    // (`libc.so.6->(0x7f.., 0, ..) = 0`), unfinished calls, and `+++ exited`.
    let text = text_of("ltrace_unnamed.txt");
    let unnamed = text.lines().filter(|l| l.contains("->(")).count() as u64;
    assert!(unnamed >= 10, "{unnamed} unnamed calls");
    let ev = events("ltrace_unnamed.txt", InputFormat::Ltrace);
    let calls = text.lines().filter(|l| l.contains("->")).count() as u64;
    let complete = text
        .lines()
        .filter(|l| l.contains("->") && !l.contains("<unfinished ...>"))
        .count() as u64;
    let per_cpu = check_rules(&ev);
    assert_eq!(per_cpu.len(), 1);
    // A return per complete call; the two unfinished calls (`hello->malloc`, `printf`) are
    // forgotten when `libc.so.6`, not on the stack [hello, ?], starts calling, so their
    // `resumed` lines are skipped (see `ltrace_unwinds_and_switches`).
    assert_eq!(calls - complete, 2);
    assert_eq!(per_cpu[&0], (calls, complete));
    // the unnamed calls are one function, `(unnamed)`, called from libc.so.6: libc's own
    let libc = ev
        .iter()
        .find_map(|e| match e {
            Event::Domain { no, name } if name == "libc.so.6" => Some(*no),
            _ => None,
        })
        .unwrap();
    let unnamed_fn: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Function { name, domain, addr } if name == "(unnamed)" => Some((*domain, *addr)),
            _ => None,
        })
        .collect();
    assert_eq!(unnamed_fn.len(), 1);
    assert_eq!(unnamed_fn[0].0, libc);
    let target = unnamed_fn[0].1;
    assert_eq!(count(&ev, |e| *e == Event::Call { target }) as u64, unnamed);
    assert_eq!(import::detect(text.as_bytes()), Some(InputFormat::Ltrace));
}

/// Real ftrace output of a Debian kernel under QEMU (`tests/data/ftrace-real/README.md`).
fn ftrace_real(name: &str) -> (String, Vec<Event>, InputFormat) {
    let path = format!("ftrace-real/{name}");
    let text = text_of(&path);
    let format = import::detect(text.as_bytes()).expect("detected");
    let ev = events(&path, format);
    (text, ev, format)
}

#[test]
fn real_ftrace_function_samples_import_every_entry() {
    // Every `func <-parent` line is a call (into another domain) or a fetch (within one);
    // headers, `##### CPU N buffer started ####`, `CPU:N [LOST ...]`, `<stack trace>`,
    // ` => ` frames and `tracing_mark_write:` lines are not calls.
    for (name, modules) in [
        ("ftrace_function_real.txt", false),
        ("ftrace_function_symoff_real.txt", true),
        ("ftrace_lost_real.txt", false),
        ("ftrace_pipe_lost_real.txt", false),
        ("ftrace_stack_real.txt", false),
    ] {
        let (text, ev, format) = ftrace_real(name);
        assert_eq!(format, InputFormat::Ftrace, "{name}");
        let entries = text.lines().filter(|l| l.contains(" <-")).count();
        let calls = count(&ev, |e| matches!(e, Event::Call { .. }));
        let fetches = count(&ev, |e| {
            matches!(
                e,
                Event::Mem {
                    kind: MemKind::Fetch,
                    ..
                }
            )
        });
        assert_eq!(calls + fetches, entries, "{name}");
        check_rules(&ev);
        let loop_domain = ev
            .iter()
            .any(|e| matches!(e, Event::Domain { name, .. } if name == "loop"));
        assert_eq!(loop_domain, modules, "{name}: the loop module as a domain");
    }
    let text = text_of("ftrace-real/ftrace_lost_real.txt");
    assert!(text.contains("CPU:0 [LOST EVENTS]") && text.contains("##### CPU 1 buffer started"));
    let text = text_of("ftrace-real/ftrace_stack_real.txt");
    assert!(text.contains("<stack trace>") && text.contains("tracing_mark_write: "));
}

#[test]
fn real_ftrace_graph_samples_import_every_call() {
    // `f() {` and `f();` are calls, `f();` and `}` returns (a `}` whose call was made before
    // the trace started, on that CPU, is skipped); task-switch blocks, `/* marker */`
    // comments and overhead marks (`+ ! # * $`) are not.
    for name in ["ftrace_graph_real.txt", "ftrace_graph_proc_real.txt"] {
        let (text, ev, format) = ftrace_real(name);
        assert_eq!(format, InputFormat::FtraceGraph, "{name}");
        let body = |l: &&str| !l.starts_with('#') && l.contains('|');
        let func = |l: &str| l.rsplit('|').next().unwrap_or("").trim().to_string();
        let opens = text
            .lines()
            .filter(body)
            .filter(|l| func(l).ends_with(") {"))
            .count();
        let leaves = text
            .lines()
            .filter(body)
            .filter(|l| func(l).ends_with(");"))
            .count();
        let closes = text
            .lines()
            .filter(body)
            .filter(|l| func(l).starts_with('}'))
            .count();
        let calls = count(&ev, |e| matches!(e, Event::Call { .. }));
        let returns = count(&ev, |e| *e == RET);
        assert_eq!(calls, opens + leaves, "{name}");
        assert!(
            returns >= leaves && returns <= leaves + closes,
            "{name}: {returns} returns"
        );
        check_rules(&ev);
    }
    // The loop module's calls are a domain of their own; in the other sample its functions
    // appear only in closes of calls made before the trace began (`} /* loop_process_work
    // [loop] */`), which are skipped.
    let (_, ev, _) = ftrace_real("ftrace_graph_real.txt");
    assert!(ev.contains(&dom(2, "loop")));
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Function { name, domain: 2, .. } if name == "lo_complete_rq")
        )
    );
}

#[test]
fn a_tracer_that_records_no_calls_is_refused_with_the_reason() {
    let text = text_of("ftrace-real/ftrace_nop_real.txt");
    let e = import::from_reader(Cursor::new(text), None)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("ftrace's `nop` tracer records no function calls"),
        "{e}"
    );
}

#[test]
fn ltrace_sample() {
    let ev = events("ltrace.txt", InputFormat::Ltrace);
    let expected_head = vec![
        dom(1, "hello_plain"),
        dom(2, "?"),
        func(2, 0, "sysconf"),
        switch(1),
        call(2, 0),
        RET,
        func(2, 1, "malloc"),
        call(2, 1),
        RET,
        func(2, 2, "memset"),
        call(2, 2),
        RET,
        func(2, 3, "free"),
        call(2, 3),
        RET,
        call(2, 1),
        RET,
    ];
    assert_eq!(ev[..expected_head.len()], expected_head[..]);
    // Every `obj->name(...) = value` line is a complete call (no unfinished ones here).
    let calls = text_of("ltrace.txt")
        .lines()
        .filter(|l| l.contains("->"))
        .count() as u64;
    let per_cpu = check_rules(&ev);
    assert_eq!(per_cpu.len(), 1);
    assert_eq!(per_cpu[&0], (calls, calls));
    assert_eq!(count(&ev, |e| matches!(e, Event::Switch { .. })), 1);
}

#[test]
fn ltrace_threads_sample() {
    let ev = events("ltrace_threads.txt", InputFormat::Ltrace);
    let expected_head = vec![
        dom(1, "threads"),
        dom(2, "?"),
        func(2, 0, "malloc"),
        switch(1),
        call(2, 0), // 17936: malloc(16 <unfinished ...>
        cpu(1),
        switch(1),
        call(2, 0), // 17937: malloc(17 <unfinished ...>
        cpu(0),
        RET, // 17936: <... malloc resumed>
        func(2, 1, "free"),
        call(2, 1), // 17936: free( <unfinished ...>
        cpu(1),
        RET, // 17937: <... malloc resumed>
        cpu(0),
        RET, // 17936: <... free resumed>
        cpu(1),
        call(2, 1), // 17937: free(...) = <void>
        RET,
    ];
    assert_eq!(ev[..expected_head.len()], expected_head[..]);
    // Counted from the text: a call per `->` line, a return per complete call and per
    // `resumed` line; two threads (the main thread only exits).
    let text = text_of("ltrace_threads.txt");
    let mut want: HashMap<&str, (u64, u64)> = HashMap::new();
    for l in text.lines() {
        let pid = l.split_whitespace().next().unwrap();
        if l.contains("->") {
            let c = want.entry(pid).or_default();
            c.0 += 1;
            if !l.ends_with("<unfinished ...>") {
                c.1 += 1;
            }
        } else if l.contains(" resumed>") {
            want.entry(pid).or_default().1 += 1;
        }
    }
    assert!(text.contains("<unfinished ...>") && text.contains("resumed>"));
    let per_cpu = check_rules(&ev);
    assert_eq!(per_cpu.len(), 2);
    assert_eq!(per_cpu[&0], want["17936"]);
    assert_eq!(per_cpu[&1], want["17937"]);
}

#[test]
fn ltrace_unwinds_and_switches() {
    // An unfinished call in libc whose callee calls back into the program: the program's
    // next call unwinds, and the late `resumed` is skipped.
    let t = "\
1 [0x1] prog->qsort(0x1, 2 <unfinished ...>
1 [0x2] libc.so.6->cmp@prog(1, 2) = 0
1 [0x3] prog->puts(\"x\") = 2
1 [0x1] <... qsort resumed> ) = <void>
1 [0x4] other(1) = 0
";
    let ev = events_of(t, InputFormat::Ltrace).unwrap();
    assert_eq!(
        ev,
        vec![
            dom(1, "prog"),
            dom(2, "?"),
            func(2, 0, "qsort"),
            switch(1),
            call(2, 0),
            // libc.so.6 is not on the stack [prog, ?]: switch, open calls forgotten
            dom(3, "libc.so.6"),
            func(1, 0, "cmp"),
            switch(3),
            call(1, 0),
            RET,
            // prog is not on the stack [libc.so.6] either
            func(2, 1, "puts"),
            switch(1),
            call(2, 1),
            RET,
            // qsort's call was forgotten: its resumed line is skipped
            dom(4, "program"),
            func(2, 2, "other"),
            switch(4),
            call(2, 2),
            RET,
        ]
    );
    check_rules(&ev);
    // Nested unfinished calls of one object: the outer resumes first, closing both.
    let t = "\
5 [0x1] a->f(1 <unfinished ...>
5 [0x1] a->g(1 <unfinished ...>
5 [0x1] <... f resumed> ) = 0
5 [0x1] <... g resumed> ) = 0
";
    let ev = events_of(t, InputFormat::Ltrace).unwrap();
    assert_eq!(count(&ev, |e| *e == RET), 2);
    check_rules(&ev);
}

#[test]
fn real_ltrace_of_a_fork_with_signals_and_exits() {
    // `ltrace -f -T -i` of forker.c: the child's `<... fork resumed>` (no call of its own to
    // close), `_exit` unfinished for good, the parent's `waitpid` with `<no return ...>`,
    // `+++ exited (status 3) +++`, `--- SIGCHLD (Child exited) ---`.
    let text = text_of("ltrace_fork.txt");
    for kind in [
        "--- SIGCHLD",
        "+++ exited (status 3) +++",
        "<no return ...>",
    ] {
        assert!(text.contains(kind), "{kind}");
    }
    let ev = events("ltrace_fork.txt", InputFormat::Ltrace);
    let per_cpu = check_rules(&ev);
    // calls: fork, _exit, waitpid, printf; returns: fork, waitpid (resumed), printf
    let calls: u64 = per_cpu.values().map(|c| c.0).sum();
    let returns: u64 = per_cpu.values().map(|c| c.1).sum();
    assert_eq!((calls, returns), (4, 3));
    assert_eq!(per_cpu.len(), 2, "parent and child");
}

#[test]
fn real_lackey_of_a_fork_with_messages_mid_trace() {
    // Valgrind lackey of forker.c: the banner, both processes' references in one log, and
    // the child's exit summary (`==PID== Counted 1 call to main()`, ...) mid-trace. Cut from
    // the real log: its first 200 lines, 121 around the child's summary, the last 40.
    let text = text_of("lackey_fork.txt");
    let pids: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("=="))
        .filter_map(|l| l.split_once("=="))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(pids.len(), 2, "two processes' messages");
    let ev = events("lackey_fork.txt", InputFormat::Lackey);
    let lines = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    let kinds = |k: MemKind| count(&ev, |e| matches!(e, Event::Mem { kind, .. } if *kind == k));
    assert_eq!(kinds(MemKind::Fetch), lines("I "));
    assert_eq!(kinds(MemKind::Load), lines(" L "));
    assert_eq!(kinds(MemKind::Store), lines(" S "));
    assert_eq!(kinds(MemKind::Modify), lines(" M "));
    assert!(lines("I ") > 100);
}

#[test]
fn lackey_sample() {
    let ev = events("lackey.txt", InputFormat::Lackey);
    assert_eq!(
        ev[..7],
        [
            dom(1, "program"),
            switch(1),
            Event::Grant {
                domain: 1,
                addr: 0x0401_a000,
                len: 4096,
                perm: Perm::ExecuteRead
            },
            Event::Mem {
                kind: MemKind::Fetch,
                addr: 0x0401_ab70,
                size: 3
            },
            Event::Mem {
                kind: MemKind::Fetch,
                addr: 0x0401_ab73,
                size: 5
            },
            Event::Grant {
                domain: 1,
                addr: 0x1f_ff00_0000,
                len: 4096,
                perm: Perm::ReadWrite
            },
            Event::Mem {
                kind: MemKind::Store,
                addr: 0x1f_ff00_0768,
                size: 8
            },
        ]
    );
    // Counted from the text (`grep -c '^I'` etc. give 304, 48, 33 and 9).
    let text = text_of("lackey.txt");
    let lines = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    let kinds = |k: MemKind| count(&ev, |e| matches!(e, Event::Mem { kind, .. } if *kind == k));
    assert_eq!(kinds(MemKind::Fetch), lines("I "));
    assert_eq!(kinds(MemKind::Load), lines(" L "));
    assert_eq!(kinds(MemKind::Store), lines(" S "));
    assert_eq!(kinds(MemKind::Modify), lines(" M "));
    assert_eq!(lines("I "), 304);
    assert_eq!(ev.last(), Some(&Event::Insns { count: 304 }));
    // Each page is granted once, before its first reference.
    let mut granted = HashSet::new();
    for e in &ev {
        match e {
            Event::Grant { addr, len, .. } => {
                assert_eq!((addr % 4096, *len), (0, 4096));
                assert!(granted.insert(*addr), "page {addr:#x} granted twice");
            }
            Event::Mem { addr, size, .. } => {
                assert!(granted.contains(&(addr & !4095)));
                assert!(granted.contains(&((addr + u64::from(*size) - 1) & !4095)));
            }
            _ => {}
        }
    }
    let src = import::open(&data("lackey.txt"), None).unwrap();
    assert_eq!(src.width(), TraceWidth::Bits48);
}

#[test]
fn lackey_page_crossing_and_errors() {
    let ev = events_of(" L 1ffe,4\nI  1ffc,2\n", InputFormat::Lackey).unwrap();
    let grant = |addr, perm| Event::Grant {
        domain: 1,
        addr,
        len: 4096,
        perm,
    };
    assert_eq!(
        ev,
        vec![
            dom(1, "program"),
            switch(1),
            grant(0x1000, Perm::ReadWrite),
            grant(0x2000, Perm::ReadWrite),
            Event::Mem {
                kind: MemKind::Load,
                addr: 0x1ffe,
                size: 4
            },
            Event::Mem {
                kind: MemKind::Fetch,
                addr: 0x1ffc,
                size: 2
            },
            Event::Insns { count: 1 },
        ]
    );
    let e = events_of("I  10,4\n L 20,0\n", InputFormat::Lackey).unwrap_err();
    assert!(e.to_string().starts_with("line 2: size 0"), "{e}");
    let e = events_of("==1==\n S 1000000000000,1\n", InputFormat::Lackey).unwrap_err();
    assert!(
        e.to_string().starts_with("line 2: address above 2^48"),
        "{e}"
    );
}

#[test]
fn garbage_lines_are_errors_naming_the_line() {
    let cases = [
        (
            InputFormat::Ftrace,
            "# tracer: function\n bash-1 [000] .... 1.0: f <-g\nthis is not ftrace\n",
        ),
        (
            InputFormat::FtraceGraph,
            "# tracer: function_graph\n 0)   |  f() {\n 0)   |  what is this\n",
        ),
        (
            InputFormat::Uftrace,
            "# DURATION TID FUNCTION\n [ 1] | f();\n [ 1] | f(\n",
        ),
        (InputFormat::Ltrace, "1 [0x1] a->f() = 0\n\n1 [0x1] a->\n"),
        (InputFormat::Lackey, "==1== x\nI  10,4\nI  zz,4\n"),
    ];
    for (format, text) in cases {
        let mut src =
            import::from_reader(Cursor::new(text.as_bytes().to_vec()), Some(format)).unwrap();
        let err = loop {
            match src.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{format}: no error"),
                Err(e) => break e,
            }
        };
        let m = err.to_string();
        assert!(m.starts_with("line 3: "), "{format}: {m}");
        assert!(matches!(err, TraceError::Parse { .. }), "{format}");
        assert!(
            src.next_event().unwrap().is_none(),
            "{format}: nothing after an error"
        );
    }
}

#[test]
fn a_memory_reference_over_the_size_cap_is_an_error_naming_its_line() {
    let t = "domain 1 k\nswitch 1\nload 0x10 4096\nload 0x10 4097\n";
    let e = events_of(t, InputFormat::Text).unwrap_err().to_string();
    assert!(e.starts_with("line 4: size must be 1 to 4096"), "{e}");
    let t = "==1== Lackey\nI  0401ab70,3\n L 0401ab70,4097\n";
    let e = events_of(t, InputFormat::Lackey).unwrap_err().to_string();
    assert!(e.starts_with("line 3: size 4097 over 4096"), "{e}");
}

#[test]
fn the_256th_domain_is_an_error() {
    let mut t = String::from("# tracer: function\n");
    for m in 1..=255 {
        t.push_str(&format!(" insmod-9 [000] .... 1.0: f [m{m}] <-g\n"));
    }
    let e = events_of(&t, InputFormat::Ftrace).unwrap_err().to_string();
    assert!(e.starts_with("line 256: too many domains"), "{e}");
    t.truncate(t.rfind(" insmod").unwrap());
    let ev = events_of(&t, InputFormat::Ftrace).unwrap();
    assert_eq!(count(&ev, |e| matches!(e, Event::Domain { .. })), 255);
    check_rules(&ev);
}

#[test]
fn detection_picks_each_samples_format() {
    let samples = [
        ("ftrace_function.txt", InputFormat::Ftrace),
        ("ftrace_graph.txt", InputFormat::FtraceGraph),
        ("uftrace_replay.txt", InputFormat::Uftrace),
        ("ltrace.txt", InputFormat::Ltrace),
        ("ltrace_threads.txt", InputFormat::Ltrace),
        ("lackey.txt", InputFormat::Lackey),
    ];
    for (name, format) in samples {
        let bytes = std::fs::read(data(name)).unwrap();
        assert_eq!(import::detect(&bytes), Some(format), "{name}");
        // without the headers, by the lines' shapes
        let bare: String = text_of(name)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("=="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            import::detect(bare.as_bytes()),
            Some(format),
            "{name} without headers"
        );
        // open with detection reads what open with the format does
        let mut src = import::open(&data(name), None).unwrap();
        assert_eq!(drain(src.as_mut()), events(name, format), "{name}");
    }
    assert_eq!(
        import::detect(b"# hand-made\nmmp-trace 1 width 48\ndomain 1 k\n"),
        Some(InputFormat::Text)
    );
    assert_eq!(
        import::detect(b"domain 1 k\ncall 0x10\n"),
        Some(InputFormat::Text)
    );
    assert_eq!(import::detect(b"hello\nworld\n"), None);
    assert_eq!(import::detect(b""), None);
}

#[test]
fn from_reader_detects_text_and_binary() {
    let mut src = import::from_reader(
        Cursor::new(b"mmp-trace 1 width 48\ndomain 1 k\nswitch 1\n".to_vec()),
        None,
    )
    .unwrap();
    assert_eq!(src.width(), TraceWidth::Bits48);
    assert_eq!(drain(src.as_mut()), vec![dom(1, "k"), switch(1)]);

    let mut w = BinaryWriter::new(Cursor::new(Vec::new()), TraceWidth::Bits32).unwrap();
    for e in [dom(1, "k"), func(1, 0, "f"), switch(1), call(1, 0), RET] {
        w.write(&e).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    assert_eq!(import::detect(&bytes), Some(InputFormat::Binary));
    let mut src = import::from_reader(Cursor::new(bytes), None).unwrap();
    assert_eq!(
        drain(src.as_mut()),
        vec![dom(1, "k"), func(1, 0, "f"), switch(1), call(1, 0), RET]
    );
}

#[test]
fn open_errors_name_the_file() {
    let missing = data("no_such_trace.txt");
    let e = import::open(&missing, None).err().unwrap();
    assert!(matches!(e, TraceError::Io { .. }));
    assert!(e.to_string().contains("no_such_trace.txt"), "{e}");

    let path = std::env::temp_dir().join(format!("mmp-import-test-{}.txt", std::process::id()));
    std::fs::write(&path, "hello\nworld\n").unwrap();
    let e = import::open(&path, None).err().unwrap();
    std::fs::remove_file(&path).unwrap();
    let m = e.to_string();
    assert!(m.starts_with("line 1: "), "{m}");
    assert!(m.contains(&path.display().to_string()), "{m}");
    assert!(m.contains("ftrace-graph") && m.contains("lackey"), "{m}");
}

#[test]
fn format_names_parse() {
    for f in InputFormat::ALL {
        assert_eq!(f.to_string().parse::<InputFormat>().unwrap(), f);
    }
    assert!("ftrace_graph".parse::<InputFormat>().is_err());
    assert_eq!(
        "ftrace-graph".parse::<InputFormat>().unwrap(),
        InputFormat::FtraceGraph
    );
}

/// Mutated samples: every importer returns events or an error, never panics, on any of them.
#[test]
fn mutated_inputs_never_panic() {
    const CHARS: &[char] = &[
        '[', ']', '(', ')', '|', '-', '0', '9', 'x', ' ', '{', '}', ';', '@', ',', '.', ':', '<',
        '>', '+', '/', '*', '=', '#', 'é', 'I', 'L', '\t', 'f',
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let names = [
        "ftrace_function.txt",
        "ftrace_graph.txt",
        "uftrace_replay.txt",
        "ltrace.txt",
        "ltrace_threads.txt",
        "lackey.txt",
    ];
    for name in names {
        let lines: Vec<String> = text_of(name).lines().map(String::from).collect();
        for _ in 0..300 {
            let mut ls = lines.clone();
            for _ in 0..1 + rand(4) {
                let i = rand(ls.len());
                let mut chars: Vec<char> = ls[i].chars().collect();
                for _ in 0..1 + rand(3) {
                    let at = rand(chars.len() + 1);
                    match rand(3) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 => chars.truncate(at),
                        _ => chars.insert(at, CHARS[rand(CHARS.len())]),
                    }
                }
                ls[i] = chars.into_iter().collect();
            }
            let text = ls.join("\n");
            let _ = import::detect(text.as_bytes());
            for format in InputFormat::ALL {
                if let Ok(mut src) =
                    import::from_reader(Cursor::new(text.clone().into_bytes()), Some(format))
                {
                    while let Ok(Some(_)) = src.next_event() {}
                }
            }
        }
    }
}
