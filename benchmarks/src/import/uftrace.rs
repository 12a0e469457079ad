//! `uftrace replay` output (recorded with `uftrace record --nest-libcall`, replayed with
//! `uftrace replay --libname`).
//!
//! ```text
//! # DURATION     TID     FUNCTION
//!             [ 16914] | main() {
//!    1.202 us [ 16914] |   sysconf@libc.so.6();
//!             [ 16914] |   work() {
//!    0.832 us [ 16914] |     malloc@libc.so.6();
//!    3.056 us [ 16914] |   } /* work */
//! ```
//! A name `f@lib` is library `lib`'s (`libc.so.6`, ...), a domain of its own; the main
//! program is domain 1, `program` (declared up front), where every thread starts. A name
//! without `@lib` is a call uftrace did not attribute to a library: the program's own
//! functions, a library's calls to its own functions (through its PLT, or static ones), and
//! some calls into other libraries (uftrace drops the library of a symbol it knows by an
//! alias: glibc's `free`, ...). Its object is, in order: the library an earlier line named
//! the same function with (`f@lib`); with [`Symbols`] (the recording's dynamic symbols), the
//! caller's own object if it defines the function, else the first object that does; else the
//! caller's. So a library calling its own exports is no crossing, and with the symbols an
//! unattributed call into another library is one (the tests measure both against the dynamic
//! linker's bindings).
//!
//! Each thread (TID) is a replay CPU, on which `program` runs at the start: a
//! [`Event::Switch`] to it comes before the thread's first event. `f() {` is a
//! [`Event::Call`] (the call stays open), `f();` a call and a [`Event::Return`], `}` a return
//! when the thread has an open call (else it closes a call made before the trace started, and
//! is skipped). Comment and event lines (`/* linux:schedule */`, `/* linux:task-exit */`) are
//! skipped; the duration may be blank; without a `[TID]` column every line is one thread's.
//! Arguments (`-A`) and return values (`-R`) are ignored. The trailer uftrace prints when a
//! program exits inside functions (`uftrace stopped tracing with remaining functions`, a rule
//! of `=`, `task: N`, and `[k] name` lines) ends the trace: the calls it lists stay open.

use std::collections::HashMap;

use super::{
    Format, LineParser, Out, all_digits, importer, is_decimal, never, strip_trailing_comment,
};
use crate::trace::{DomainNo, Event, Place, TraceError, TraceWidth};

/// The main program's domain name (always domain 1).
pub const PROGRAM: &str = "program";

/// Reads `uftrace replay` output. See the [module docs](self).
#[derive(Debug)]
pub struct UftraceReader<R>(super::Driver<R, UftraceParser>);

importer!(UftraceReader, UftraceParser, TraceWidth::Bits32);

/// What a line does.
#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    /// `f@lib() {`: the name and the library.
    Enter(&'a str, Option<&'a str>),
    /// `f@lib();`
    Leaf(&'a str, Option<&'a str>),
    /// `}`
    Exit,
}

/// Whether `s` is a uftrace duration (`1.764 us`).
fn is_duration(s: &str) -> bool {
    match s.split_once(char::is_whitespace) {
        Some((n, unit)) => is_decimal(n) && matches!(unit.trim(), "ns" | "us" | "ms" | "s" | "m"),
        None => false,
    }
}

/// The index of the `(` that opens the parenthesised group `s` ends with.
fn matching_open(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Parses a line: the thread and what it does; `None` for a line to skip.
fn parse_line(line: &str) -> Result<Option<(u64, Op<'_>)>, String> {
    let (prefix, func) = line
        .split_once('|')
        .ok_or("expected `DURATION [TID] | function`")?;
    let p = prefix.trim();
    let (duration, tid) = match p.rfind('[') {
        Some(i) => {
            let inner = p[i + 1..]
                .strip_suffix(']')
                .map(str::trim)
                .filter(|t| all_digits(t))
                .ok_or("expected `[TID]` before `|`")?;
            let tid = inner.parse().map_err(|_| "TID too large")?;
            (p[..i].trim(), tid)
        }
        None => (p, 0),
    };
    if !duration.is_empty() && !is_duration(duration) {
        return Err("bad duration: expected `N.NNN us`".into());
    }
    let f = func.trim();
    if f.starts_with("/*") {
        return Ok(None); // an event or a comment
    }
    let f = strip_trailing_comment(f);
    if f.starts_with('}') {
        return Ok(Some((tid, Op::Exit)));
    }
    let (mut body, enter) = if let Some(b) = f.strip_suffix('{') {
        (b.trim_end(), true)
    } else if let Some(b) = f.strip_suffix(';') {
        (b.trim_end(), false)
    } else {
        return Err("expected `name() {`, `name();` or `}`".into());
    };
    if !body.ends_with(')') {
        // a leaf's return value (`-R`): `f() = 0;`
        if let Some(i) = body.rfind(" = ") {
            body = body[..i].trim_end();
        }
    }
    let open = body
        .ends_with(')')
        .then(|| matching_open(body))
        .flatten()
        .ok_or("expected `name() {`, `name();` or `}`")?;
    let full = body[..open].trim();
    let (name, lib) = match full.rsplit_once('@') {
        Some((n, l)) => (n, Some(l)),
        None => (full, None),
    };
    if name.is_empty() || lib.is_some_and(|l| l.is_empty() || l.contains(char::is_whitespace)) {
        return Err("bad function name: expected `name` or `name@library`".into());
    }
    Ok(Some((
        tid,
        if enter {
            Op::Enter(name, lib)
        } else {
            Op::Leaf(name, lib)
        },
    )))
}

/// `uftrace replay` output: its `# DURATION ... TID` header, or a line of its shape.
pub(super) const FORMAT: Format = Format {
    name: "uftrace",
    magic: never,
    header: |t| {
        t.strip_prefix('#')
            .map(str::trim)
            .is_some_and(|r| r.starts_with("DURATION") && r.contains("TID"))
    },
    sniff,
    sniff_rank: 2,
    open: |r, options| {
        Ok(match &options.uftrace_symbols {
            Some(symbols) => Box::new(UftraceReader::with_symbols(r, symbols.clone())),
            None => Box::new(UftraceReader::new(r)),
        })
    },
};

/// Whether `line` looks like a `uftrace replay` line (with its `[TID]` column).
pub(super) fn sniff(line: &str) -> bool {
    line.split_once('|')
        .is_some_and(|(p, _)| p.trim_end().ends_with(']') && p.contains('['))
        && matches!(parse_line(line), Ok(Some(_)))
}

/// The first line of the trailer `uftrace replay` prints when the program exits inside
/// functions.
const TRAILER: &str = "uftrace stopped tracing with remaining functions";

/// Which object defines each function, for the calls uftrace leaves unattributed: the
/// defined dynamic symbols of the program and of each library a recording loaded, one
/// `OBJECT SYMBOL` pair a line, objects named as `uftrace replay --libname` names them
/// (`libc.so.6`, `libsqlite3.so.0.8.6`) and the program as `program`, in load order (the
/// program first). `scripts/uftrace-symbols.sh DATA_DIR` writes it from a uftrace recording;
/// `mmp-replay --uftrace-symbols FILE` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    objects: Vec<String>,
    /// Each symbol's defining objects (indices into `objects`), in load order.
    defined: HashMap<String, Vec<usize>>,
}

impl Symbols {
    /// Parses the `OBJECT SYMBOL` lines (blank lines and `#` comments skipped).
    ///
    /// # Errors
    /// [`TraceError::Parse`] naming the line that is not two words.
    pub fn parse(text: &str) -> Result<Symbols, TraceError> {
        let mut s = Symbols::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut words = t.split_whitespace();
            let (Some(object), Some(symbol), None) = (words.next(), words.next(), words.next())
            else {
                return Err(TraceError::Parse {
                    place: Place::Line(i as u64 + 1),
                    message: "expected `OBJECT SYMBOL`".into(),
                    text: super::shorten(t).into_owned(),
                });
            };
            let o = *index.entry(object.to_string()).or_insert_with(|| {
                s.objects.push(object.to_string());
                s.objects.len() - 1
            });
            let by = s.defined.entry(symbol.to_string()).or_default();
            if !by.contains(&o) {
                by.push(o);
            }
        }
        Ok(s)
    }

    /// The object that defines `symbol` for a call from `caller`: `caller` itself if it
    /// defines it, else the first object in load order that does; `None` if none does.
    #[must_use]
    pub fn resolve<'a>(&'a self, caller: &str, symbol: &str) -> Option<&'a str> {
        let by = self.defined.get(symbol)?;
        by.iter()
            .map(|&o| self.objects[o].as_str())
            .find(|&o| o == caller)
            .or_else(|| by.first().map(|&o| self.objects[o].as_str()))
    }
}

impl<R: std::io::BufRead> UftraceReader<R> {
    /// A reader of `input` that resolves the calls uftrace leaves unattributed with
    /// `symbols` (see [`Symbols`]).
    pub fn with_symbols(input: R, symbols: Symbols) -> Self {
        UftraceReader(super::Driver::new(
            input,
            UftraceParser {
                symbols: Some(symbols),
                ..UftraceParser::default()
            },
            TraceWidth::Bits32,
        ))
    }
}

/// The line parser: each started thread's stack of domains (its open calls' callees, over
/// `program`), the library each function was last named with, the symbols given, and
/// whether the trailer began.
#[derive(Debug, Default)]
struct UftraceParser {
    stacks: HashMap<u64, Vec<DomainNo>>,
    library_of: HashMap<String, DomainNo>,
    symbols: Option<Symbols>,
    trailer: bool,
}

impl LineParser for UftraceParser {
    fn start(&mut self, out: &mut Out) {
        let _ = out.domain(PROGRAM);
    }

    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String> {
        if self.trailer || line.trim() == TRAILER {
            self.trailer = true;
            return Ok(());
        }
        let Some((tid, op)) = parse_line(line)? else {
            return Ok(());
        };
        match op {
            Op::Enter(name, lib) | Op::Leaf(name, lib) => {
                // A thread starts in `program`.
                let caller = self
                    .stacks
                    .get(&tid)
                    .and_then(|s| s.last().copied())
                    .unwrap_or(1);
                let d = match lib {
                    Some(lib) => {
                        let d = out.domain(lib)?;
                        if self.library_of.get(name) != Some(&d) {
                            self.library_of.insert(name.to_string(), d);
                        }
                        d
                    }
                    None => match self.library_of.get(name) {
                        Some(&d) => d,
                        None => {
                            let by = self.symbols.as_ref().and_then(|s| {
                                s.resolve(out.domain_name(caller).unwrap_or(PROGRAM), name)
                            });
                            match by {
                                Some(object) => out.domain(object)?,
                                None => caller,
                            }
                        }
                    },
                };
                let target = out.function(d, name)?;
                out.enter(tid)?;
                let stack = self.stacks.entry(tid).or_insert_with(|| {
                    out.push(Event::Switch { domain: 1 });
                    vec![1]
                });
                out.push(Event::Call { target });
                if matches!(op, Op::Leaf(..)) {
                    out.push(Event::Return);
                } else {
                    stack.push(d);
                }
            }
            Op::Exit => {
                if let Some(stack) = self.stacks.get_mut(&tid).filter(|s| s.len() > 1) {
                    out.enter(tid)?;
                    out.push(Event::Return);
                    stack.pop();
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
    fn lines() {
        let p = |l| parse_line(l).unwrap();
        assert_eq!(
            p("   1.092 us [ 16914] | __cxa_atexit@libc.so.6();"),
            Some((16914, Op::Leaf("__cxa_atexit", Some("libc.so.6"))))
        );
        assert_eq!(
            p("            [ 16914] |   work() {"),
            Some((16914, Op::Enter("work", None)))
        );
        assert_eq!(
            p("  15.478 us [ 16914] | } /* main */"),
            Some((16914, Op::Exit))
        );
        assert_eq!(
            p("  1.0 us [7] |   operator()() {"),
            Some((7, Op::Enter("operator()", None)))
        );
        assert_eq!(
            p("  1.0 us [7] |   f(1, (2)) = 3;"),
            Some((7, Op::Leaf("f", None)))
        );
        assert_eq!(p("   1.0 us |   g();"), Some((0, Op::Leaf("g", None))));
        assert_eq!(p("  [ 1] |   /* linux:schedule */"), None);
        assert!(parse_line("[ 1] | f()").is_err());
        assert!(parse_line("[ x] | f();").is_err());
        assert!(parse_line("1.0 furlongs [ 1] | f();").is_err());
        assert!(parse_line("[ 1] | f@();").is_err());
        assert!(parse_line("no bar here").is_err());
        assert!(parse_line("[ 1] | f) {").is_err());
    }
}
