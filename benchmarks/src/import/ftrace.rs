//! The Linux kernel's ftrace output, as the `trace` (or `trace_pipe`) file prints it.
//!
//! # `function` tracer ([`FtraceReader`])
//! ```text
//! # tracer: function
//! #           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
//!           insmod-93      [000] .....    15.904541: foo_init+0x0/0x1000 [foo] <-do_one_initcall+0x59/0x220
//!             bash-1977    [000] ....  17284.993652: sys_close <-system_call_fastpath
//! ```
//! With or without the irq-info flags column, the `sym-offset` option (`+0x0/0x1000`, which
//! is stripped) and the `record-tgid` column. The task is split off at the last `-PID`
//! before the `[CPU]` field (task names may hold spaces and dashes). A name followed by
//! `[mod]` is module `mod`'s (dashes spelt as underscores, as the kernel does); any other is
//! the core kernel's, domain 1 `vmlinux`, declared up front. Each CPU is a replay CPU.
//!
//! The tracer logs function entries only. So the reader keeps a stack of domains for each
//! thread (by `TASK-PID`; PID 0, the idle task, is one thread per CPU: [`IDLE_THREAD`]` | cpu`)
//! and for each interrupt open on a CPU (by the irq-info flags' third character: `s` softirq,
//! `h`/`H` hardirq, `z`/`Z` NMI). Before a line's own events:
//! - when the CPU's thread changes, every interrupt open on it ends ([`Event::InterruptReturn`])
//!   and an [`Event::Thread`] switches the CPU to the line's thread (the replay saves the old
//!   one, with its domain and open calls, and resumes the new one where it stopped);
//! - an interrupt deeper than the line's level ends; a line at a deeper level than the open
//!   interrupts enters one ([`Event::Interrupt`] into `vmlinux`, the interrupt entry), with a
//!   stack that starts at `vmlinux`.
//!
//! Then, on the stack of the line's context, for a line `callee <-caller` with `Dc` the
//! caller's domain and `De` the callee's:
//! - the context's first line: [`Event::Switch`] to `Dc`, stack `[Dc]`;
//! - else if the stack's top is not `Dc`: if `Dc` is deeper in the stack, one
//!   [`Event::Return`] per domain popped until it is on top (the returns the tracer did not
//!   log); otherwise a [`Event::Switch`] to `Dc`, stack `[Dc]`;
//! - then if `De != Dc`, a [`Event::Call`] of the callee and `De` pushed; if `De == Dc`, an
//!   instruction fetch ([`Event::Mem`], 4 bytes) of the callee's entry instead (a call within
//!   the domain, with no logged return to close it).
//!
//! A trace without the irq-info column has no interrupts; one without the TASK-PID column is
//! not a `function` tracer line.
//!
//! The caller's function is declared too (an [`Event::Function`]) when first seen. A line
//! without ` <-caller` (the `print-parent` option off) is taken as called from the domain on
//! top of its context's stack (`vmlinux` when it has none). Other events' lines (such as
//! `trace_printk`'s `func: message`), `=> ` stack-trace lines and `CPU:N [LOST n EVENTS]`
//! lines are skipped.
//!
//! # `function_graph` tracer ([`FtraceGraphReader`])
//! ```text
//! # tracer: function_graph
//! # CPU  DURATION                  FUNCTION CALLS
//!  0)               |  ide_intr [ide_core]() {
//!  0)   0.125 us    |    printk();
//!  0) + 12.250 us   |  }
//!  ------------------------------------------
//!  0)  kworker-12    =>   bash-1977
//!  ------------------------------------------
//!  0) ! 104.332 us  |  } /* do_sys_open */
//! ```
//! Also with the `funcgraph-abstime` column (a timestamp and `|` before the CPU), the
//! `funcgraph-proc` column (`TASK-PID |` after the CPU), without the duration column, and with
//! the overhead marks `+ ! # * @ $`. Separator, task-switch, irq-marker (`==========>`,
//! `<==========`) and comment (`/* ... */`) lines are skipped. Domain 1 `vmlinux` runs on
//! every CPU at the start: a [`Event::Switch`] to it comes before each CPU's first event.
//! `f() {` is a [`Event::Call`] (the call stays open), `f();` a call and a
//! [`Event::Return`], `}` a return when the CPU has an open call (else it closes a call made
//! before the trace started, and is skipped). Every call is a [`Event::Call`] here, within a
//! domain too, since returns are logged.

use std::collections::HashMap;

use super::{
    Format, LineParser, Out, all_digits, importer, is_decimal, never, strip_trailing_comment,
};
use crate::trace::{DomainNo, Event, MemKind, TraceWidth};

/// The core kernel's domain name (always domain 1).
pub const VMLINUX: &str = "vmlinux";

/// Reads the `function` tracer's output. See the [module docs](self).
#[derive(Debug)]
pub struct FtraceReader<R>(super::Driver<R, FunctionParser>);

importer!(FtraceReader, FunctionParser, TraceWidth::Bits32);

/// Reads the `function_graph` tracer's output. See the [module docs](self).
#[derive(Debug)]
pub struct FtraceGraphReader<R>(super::Driver<R, GraphParser>);

importer!(FtraceGraphReader, GraphParser, TraceWidth::Bits32);

/// A kernel symbol: its name and its module (`None` for the core kernel's).
type Sym<'a> = (&'a str, Option<String>);

/// Whether `s` is `0xHEX` or `0xHEX/0xHEX` (a `sym-offset` suffix).
fn is_offset(s: &str) -> bool {
    let hex = |h: &str| {
        h.strip_prefix("0x")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    match s.split_once('/') {
        Some((a, b)) => hex(a) && hex(b),
        None => hex(s),
    }
}

/// Parses a symbol as `%ps`/`%pS` print it: `name`, `name+0x1e/0x1000`, each optionally
/// followed by ` [module]`.
fn parse_sym(s: &str) -> Option<Sym<'_>> {
    let s = s.trim();
    let (sym, module) = match s.strip_suffix(']') {
        Some(rest) => {
            let i = rest.rfind('[')?;
            let m = &rest[i + 1..];
            if m.is_empty() || m.contains(|c: char| c.is_whitespace() || c == '[') {
                return None;
            }
            (rest[..i].trim_end(), Some(m.replace('-', "_")))
        }
        None => (s, None),
    };
    let name = match sym.find('+') {
        Some(i) if is_offset(&sym[i + 1..]) => &sym[..i],
        _ => sym,
    };
    if name.is_empty()
        || name.contains(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '(' | ')'))
    {
        return None;
    }
    Some((name, module))
}

/// Splits off the first whitespace-separated token of `s` (which starts with it).
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Finds the ` [CPU]` field that follows `TASK-PID` (and an optional `(TGID)`): the CPU,
/// the PID and the text after the field.
fn find_cpu_field(line: &str) -> Option<(u64, u32, &str)> {
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(off) = line[from..].find('[') {
        let i = from + off;
        from = i + 1;
        let after = &line[i + 1..];
        let Some(close) = after.find(']') else {
            break;
        };
        let inner = &after[..close];
        if !all_digits(inner) || i == 0 || !bytes[i - 1].is_ascii_whitespace() {
            continue;
        }
        let mut before = line[..i].trim_end();
        if before.ends_with(')')
            && let Some(o) = before.rfind('(')
        {
            before = before[..o].trim_end();
        }
        let Some(dash) = before.rfind('-') else {
            continue;
        };
        if !all_digits(&before[dash + 1..]) || before[..dash].trim().is_empty() {
            continue;
        }
        let (Ok(cpu), Ok(pid)) = (inner.parse(), before[dash + 1..].parse()) else {
            continue;
        };
        return Some((cpu, pid, &after[close + 1..]));
    }
    None
}

/// One `function` tracer line: the CPU, the task, the interrupt level, the callee and the
/// caller (if printed).
#[derive(Debug)]
struct FunctionLine<'a> {
    cpu: u64,
    pid: u32,
    /// 0 task context, 1 softirq, 2 hardirq, 3 NMI (from the irq-info flags; 0 without).
    level: u8,
    callee: Sym<'a>,
    caller: Option<Sym<'a>>,
}

/// The interrupt level the irq-info flags column gives: its third character is `s` in a
/// softirq, `h` in a hardirq, `H` in a hardirq inside a softirq, `z` or `Z` in an NMI.
fn irq_level(flags: &str) -> u8 {
    match flags.as_bytes().get(2) {
        Some(b's') => 1,
        Some(b'h' | b'H') => 2,
        Some(b'z' | b'Z') => 3,
        _ => 0,
    }
}

/// Parses a `function` tracer line; `None` for a line to skip.
fn parse_function_line(line: &str) -> Result<Option<FunctionLine<'_>>, String> {
    let t = line.trim();
    if t.starts_with("=>") || (t.starts_with("CPU:") && t.contains("[LOST")) {
        return Ok(None);
    }
    let (cpu, pid, after) =
        find_cpu_field(line).ok_or("expected `TASK-PID [CPU] TIMESTAMP: callee <-caller`")?;
    let is_ts = |t: &str| t.strip_suffix(':').is_some_and(is_decimal);
    let (tok, mut rest) = split_token(after);
    let mut level = 0;
    if !is_ts(tok) {
        // the irq-info flags column
        let (ts, r) = split_token(rest);
        if !is_ts(ts) {
            return Err("expected a timestamp `SECONDS:` after the CPU".into());
        }
        level = irq_level(tok);
        rest = r;
    }
    let func = rest.trim();
    let first = func
        .split_whitespace()
        .next()
        .ok_or("no function after the timestamp")?;
    if first.ends_with(':')
        || func.starts_with("<stack trace>")
        || func.starts_with("<user stack trace>")
    {
        return Ok(None); // another event's line
    }
    let (callee, caller) = match func.find(" <-") {
        Some(i) => (&func[..i], Some(&func[i + 3..])),
        None => (func, None),
    };
    let callee = parse_sym(callee).ok_or("bad callee: expected `name[+0xoff/0xsize] [module]`")?;
    let caller = match caller {
        Some(c) => Some(parse_sym(c).ok_or("bad caller: expected `name[+0xoff/0xsize] [module]`")?),
        None => None,
    };
    Ok(Some(FunctionLine {
        cpu,
        pid,
        level,
        callee,
        caller,
    }))
}

/// The `function` tracer's output: its `# tracer: function` header, or a line of its shape.
pub(super) const FUNCTION: Format = Format {
    name: "ftrace",
    magic: never,
    header: |t| tracer(t) == Some("function"),
    sniff: sniff_function,
    sniff_rank: 4,
    open: |r, _| Ok(Box::new(FtraceReader::new(r))),
};

/// The `function_graph` tracer's output: its header, or a line of its shape.
pub(super) const GRAPH: Format = Format {
    name: "ftrace-graph",
    magic: never,
    header: |t| tracer(t) == Some("function_graph"),
    sniff: sniff_graph,
    sniff_rank: 3,
    open: |r, _| Ok(Box::new(FtraceGraphReader::new(r))),
};

/// The tracer a `# tracer: NAME` header line names.
pub(super) fn tracer(t: &str) -> Option<&str> {
    t.strip_prefix('#')?
        .trim()
        .strip_prefix("tracer:")
        .map(str::trim)
}

/// Whether `line` looks like a `function` tracer line.
pub(super) fn sniff_function(line: &str) -> bool {
    matches!(parse_function_line(line), Ok(Some(_)))
}

/// The thread number of the idle task (PID 0) on `cpu`: each CPU has its own.
pub const IDLE_THREAD: u32 = 0x8000_0000;

/// One CPU's state in the `function` tracer's parser.
#[derive(Debug, Default)]
struct CpuState {
    /// The thread it runs (after an [`Event::Thread`]).
    tid: Option<u32>,
    /// Open interrupts, innermost last: their level and their stack of domains.
    irqs: Vec<(u8, Vec<DomainNo>)>,
}

/// The `function` tracer's line parser: a stack of domains per thread and per open
/// interrupt.
#[derive(Debug, Default)]
struct FunctionParser {
    threads: HashMap<u32, Vec<DomainNo>>,
    cpus: HashMap<u64, CpuState>,
}

impl FunctionParser {
    /// Brings `cpu` to thread `tid` at interrupt level `level`, emitting the thread switch,
    /// interrupt returns and entries that takes.
    fn context(&mut self, cpu: u64, tid: u32, level: u8, out: &mut Out) {
        let st = self.cpus.entry(cpu).or_default();
        let moved = st.tid != Some(tid);
        while let Some(&(lv, _)) = st.irqs.last() {
            if moved || lv > level {
                out.push(Event::InterruptReturn);
                st.irqs.pop();
            } else {
                break;
            }
        }
        if moved {
            st.tid = Some(tid);
            out.push(Event::Thread { tid });
            // A thread runs on one CPU at a time: elsewhere it has stopped.
            for (&c, other) in &mut self.cpus {
                if c != cpu && other.tid == Some(tid) {
                    other.tid = None;
                }
            }
        }
        let st = self.cpus.entry(cpu).or_default();
        if level > st.irqs.last().map_or(0, |&(lv, _)| lv) {
            out.push(Event::Interrupt { domain: 1 });
            st.irqs.push((level, vec![1]));
        }
    }
}

impl LineParser for FunctionParser {
    fn start(&mut self, out: &mut Out) {
        let _ = out.domain(VMLINUX);
    }

    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String> {
        let Some(l) = parse_function_line(line)? else {
            return Ok(());
        };
        let de = out.domain(l.callee.1.as_deref().unwrap_or(VMLINUX))?;
        let callee = out.function(de, l.callee.0)?;
        let dc = match &l.caller {
            Some((name, module)) => {
                let d = out.domain(module.as_deref().unwrap_or(VMLINUX))?;
                out.function(d, name)?;
                d
            }
            None => 0,
        };
        out.enter(l.cpu)?;
        let tid = if l.pid == 0 {
            IDLE_THREAD | u32::try_from(l.cpu).map_err(|_| "CPU number too large")?
        } else {
            l.pid
        };
        self.context(l.cpu, tid, l.level, out);
        let st = self.cpus.entry(l.cpu).or_default();
        let stack = match st.irqs.last_mut() {
            Some((_, s)) => s,
            None => self.threads.entry(tid).or_default(),
        };
        // Without ` <-caller`, the caller is the domain on top of the context's stack.
        let dc = if dc == 0 {
            stack.last().copied().unwrap_or(1)
        } else {
            dc
        };
        match stack.last() {
            None => {
                out.push(Event::Switch { domain: dc });
                stack.push(dc);
            }
            Some(&top) if top != dc => {
                if let Some(p) = stack.iter().rposition(|&d| d == dc) {
                    for _ in p + 1..stack.len() {
                        out.push(Event::Return);
                    }
                    stack.truncate(p + 1);
                } else {
                    out.push(Event::Switch { domain: dc });
                    stack.clear();
                    stack.push(dc);
                }
            }
            Some(_) => {}
        }
        if de == dc {
            out.push(Event::Mem {
                kind: MemKind::Fetch,
                addr: callee,
                size: 4,
            });
        } else {
            out.push(Event::Call { target: callee });
            stack.push(de);
        }
        Ok(())
    }
}

/// What a `function_graph` line does.
#[derive(Debug, PartialEq, Eq)]
enum GraphOp<'a> {
    /// `f() {`
    Enter(Sym<'a>),
    /// `f();`
    Leaf(Sym<'a>),
    /// `}`
    Exit,
}

/// Whether `s` is a `function_graph` duration field: blank, or an optional overhead mark and
/// `N.NNN us`, or an irq marker.
fn is_duration_field(s: &str) -> bool {
    let t = s.trim();
    let t = t
        .strip_prefix(['+', '!', '#', '*', '@', '$'])
        .unwrap_or(t)
        .trim();
    if t.is_empty() || t.contains("==========>") || t.contains("<==========") {
        return true;
    }
    let (num, unit) = split_token(t);
    matches!(unit.trim(), "ns" | "us" | "ms" | "s") && is_decimal(num)
}

/// Parses a `function_graph` line: the CPU (0 without the CPU column) and what it does;
/// `None` for a line to skip.
fn parse_graph_line(line: &str) -> Result<Option<(u64, GraphOp<'_>)>, String> {
    let mut rest = line.trim();
    if rest.bytes().all(|b| b == b'-') || (rest.starts_with("CPU:") && rest.contains("[LOST")) {
        return Ok(None);
    }
    // funcgraph-abstime: `SECONDS |`
    let (tok, r) = split_token(rest);
    if tok.contains('.')
        && is_decimal(tok)
        && let Some(r) = r.trim_start().strip_prefix('|')
    {
        rest = r.trim_start();
    }
    let (tok, r) = split_token(rest);
    let cpu = match tok.strip_suffix(')').filter(|n| all_digits(n)) {
        Some(n) => {
            rest = r;
            n.parse().map_err(|_| "CPU number too large")?
        }
        None => 0,
    };
    let func = match rest.split_once('|') {
        None => {
            if rest.contains("=>") {
                return Ok(None); // a task switch
            }
            rest // no duration column
        }
        Some((first, after)) => {
            let (duration, func) = if is_duration_field(first) {
                (first, after)
            } else {
                // funcgraph-proc: `TASK-PID |` before the duration
                after
                    .split_once('|')
                    .ok_or("expected `DURATION |` after the task")?
            };
            if !is_duration_field(duration) {
                return Err("bad duration field".into());
            }
            if duration.contains("==========>") || duration.contains("<==========") {
                return Ok(None); // an irq marker
            }
            func
        }
    };
    let f = func.trim();
    if f.starts_with("/*") {
        return Ok(None); // a comment (trace_printk)
    }
    let f = strip_trailing_comment(f);
    if f == "}" {
        return Ok(Some((cpu, GraphOp::Exit)));
    }
    let (body, enter) = if let Some(b) = f.strip_suffix('{') {
        (b.trim_end(), true)
    } else if let Some(b) = f.strip_suffix(';') {
        (b.trim_end(), false)
    } else {
        return Err("expected `name() {`, `name();` or `}`".into());
    };
    let head = match (body.ends_with(')'), body.find('(')) {
        (true, Some(i)) => &body[..i],
        _ => return Err("expected `name() {`, `name();` or `}`".into()),
    };
    let sym = parse_sym(head).ok_or("bad function name: expected `name [module]`")?;
    Ok(Some((
        cpu,
        if enter {
            GraphOp::Enter(sym)
        } else {
            GraphOp::Leaf(sym)
        },
    )))
}

/// Whether `line` looks like a `function_graph` line (with its `N)` CPU column).
pub(super) fn sniff_graph(line: &str) -> bool {
    let has_cpu = line
        .split_whitespace()
        .take(3)
        .any(|t| t.strip_suffix(')').is_some_and(all_digits));
    has_cpu && matches!(parse_graph_line(line), Ok(Some(_)))
}

/// The `function_graph` tracer's line parser: each started CPU's open calls.
#[derive(Debug, Default)]
struct GraphParser {
    depth: HashMap<u64, u64>,
}

impl LineParser for GraphParser {
    fn start(&mut self, out: &mut Out) {
        let _ = out.domain(VMLINUX);
    }

    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String> {
        let Some((cpu, op)) = parse_graph_line(line)? else {
            return Ok(());
        };
        let leaf = matches!(op, GraphOp::Leaf(_));
        match op {
            GraphOp::Enter((name, module)) | GraphOp::Leaf((name, module)) => {
                let d = out.domain(module.as_deref().unwrap_or(VMLINUX))?;
                let target = out.function(d, name)?;
                out.enter(cpu)?;
                let depth = self.depth.entry(cpu).or_insert_with(|| {
                    out.push(Event::Switch { domain: 1 });
                    0
                });
                out.push(Event::Call { target });
                if leaf {
                    out.push(Event::Return);
                } else {
                    *depth += 1;
                }
            }
            GraphOp::Exit => {
                if let Some(depth) = self.depth.get_mut(&cpu).filter(|d| **d > 0) {
                    out.enter(cpu)?;
                    out.push(Event::Return);
                    *depth -= 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols() {
        assert_eq!(parse_sym("sys_close"), Some(("sys_close", None)));
        assert_eq!(
            parse_sym("foo_init+0x0/0x1000 [foo-bar]"),
            Some(("foo_init", Some("foo_bar".to_string())))
        );
        assert_eq!(
            parse_sym("ide_intr [ide_core]").map(|s| s.0),
            Some("ide_intr")
        );
        assert_eq!(parse_sym("a+b"), Some(("a+b", None)));
        assert_eq!(parse_sym(""), None);
        assert_eq!(parse_sym("two words"), None);
        assert_eq!(parse_sym("f []"), None);
    }

    #[test]
    fn function_lines() {
        let l = parse_function_line(
            "     kworker/0:1-12      [001] d..1.   15.904600: ide_intr [ide_core] <-handle_irq_event",
        )
        .unwrap()
        .unwrap();
        assert_eq!(l.cpu, 1);
        assert_eq!(l.callee, ("ide_intr", Some("ide_core".into())));
        assert_eq!(l.caller, Some(("handle_irq_event", None)));
        let l = parse_function_line("  my task-x-77 (   77) [003]  5.5: f <-g")
            .unwrap()
            .unwrap();
        assert_eq!(l.cpu, 3);
        assert!(
            parse_function_line(" bash-1 [000] .... 1.0: foo: hello")
                .unwrap()
                .is_none()
        );
        assert!(parse_function_line(" => sys_close").unwrap().is_none());
        assert!(parse_function_line(" bash-1 [000] .... x: f <-g").is_err());
        assert!(parse_function_line(" bash [000] 1.0: f <-g").is_err());
        assert!(parse_function_line(" bash-1 [000] 1.0:").is_err());
    }

    #[test]
    fn graph_lines() {
        let p = |l| parse_graph_line(l).unwrap();
        assert_eq!(
            p(" 0)               |  ide_intr [ide_core]() {"),
            Some((0, GraphOp::Enter(("ide_intr", Some("ide_core".into())))))
        );
        assert_eq!(p(" 0) + 12.250 us   |  }"), Some((0, GraphOp::Exit)));
        assert_eq!(
            p(" 2) ! 104.332 us  |  } /* do_sys_open */"),
            Some((2, GraphOp::Exit))
        );
        assert_eq!(
            p(" 3214.435766 |   1)   0.390 us    |    printk();"),
            Some((1, GraphOp::Leaf(("printk", None))))
        );
        assert_eq!(
            p(" 0)    sh-4802     |   0.616 us    |      rcu_process_gp_end();"),
            Some((0, GraphOp::Leaf(("rcu_process_gp_end", None))))
        );
        assert_eq!(p(" 0)   ==========> |"), None);
        assert_eq!(p(" 0)    <idle>-0    |   <========== |"), None);
        assert_eq!(p(" 0)  kworker-12    =>   bash-1977"), None);
        assert_eq!(p(" ------------------------------------------"), None);
        assert_eq!(p(" 0)               |  /* hello */"), None);
        assert!(parse_graph_line(" 0)   |  garbage").is_err());
        assert!(parse_graph_line(" 0) 12 parsecs |  f();").is_err());
    }
}
