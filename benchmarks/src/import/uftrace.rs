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
//! A name without `@lib` is the main program's, domain 1 `program` (declared up front); a
//! name `f@lib` is library `lib`'s (`libc.so.6`, ...), a domain of its own. Each thread (TID)
//! is a replay CPU, on which `program` runs at the start: a [`Event::Switch`] to it comes
//! before the thread's first event. `f() {` is a [`Event::Call`] (the call stays open),
//! `f();` a call and a [`Event::Return`], `}` a return when the thread has an open call (else
//! it closes a call made before the trace started, and is skipped). Comment lines
//! (`/* linux:schedule */`, ...) are skipped; the duration may be blank; without a `[TID]`
//! column every line is one thread's. Arguments (`-A`) and return values (`-R`) are
//! ignored.

use std::collections::HashMap;

use super::{
    Format, LineParser, Out, all_digits, importer, is_decimal, never, strip_trailing_comment,
};
use crate::trace::{Event, TraceWidth};

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
    open: |r| Ok(Box::new(UftraceReader::new(r))),
};

/// Whether `line` looks like a `uftrace replay` line (with its `[TID]` column).
pub(super) fn sniff(line: &str) -> bool {
    line.split_once('|')
        .is_some_and(|(p, _)| p.trim_end().ends_with(']') && p.contains('['))
        && matches!(parse_line(line), Ok(Some(_)))
}

/// The line parser: each started thread's open calls.
#[derive(Debug, Default)]
struct UftraceParser {
    depth: HashMap<u64, u64>,
}

impl LineParser for UftraceParser {
    fn start(&mut self, out: &mut Out) {
        let _ = out.domain(PROGRAM);
    }

    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String> {
        let Some((tid, op)) = parse_line(line)? else {
            return Ok(());
        };
        let leaf = matches!(op, Op::Leaf(..));
        match op {
            Op::Enter(name, lib) | Op::Leaf(name, lib) => {
                let d = out.domain(lib.unwrap_or(PROGRAM))?;
                let target = out.function(d, name)?;
                out.enter(tid)?;
                let depth = self.depth.entry(tid).or_insert_with(|| {
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
            Op::Exit => {
                if let Some(depth) = self.depth.get_mut(&tid).filter(|d| **d > 0) {
                    out.enter(tid)?;
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
