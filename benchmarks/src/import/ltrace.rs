//! `ltrace -f -T -i` output (also without `-f`, `-T` or `-i`, with `-t`/`-tt`/`-ttt`/`-r`
//! timestamps, and with the `[pid N]` prefix ltrace writes to a terminal).
//!
//! ```text
//! 16955 [0x5645a6cbb191] hello_plain->malloc(16)   = 0x5645d32d22a0 <0.002460>
//! 17936 [0x564da3b051ab] threads->malloc(16 <unfinished ...>
//! 17936 [0x564da3b051ab] <... malloc resumed> )    = 0x7f4260000b70 <0.001200>
//! 16955 [0xffffffffffffffff] +++ exited (status 0) +++
//! ```
//! Each PID is a replay CPU. The calling object (`hello_plain`, `libc.so.6`, ...) is a domain;
//! a line without `obj->` is called from the main program, domain `program`. ltrace does not
//! print which library the callee is in, so the callee's domain is the library named after
//! `@` when the name is written `name@lib`, and otherwise one domain named `?` (an unknown
//! library) holds every such callee. A call ltrace cannot name (`libc.so.6->(0x7f.., 0) = 0`,
//! frequent inside glibc) is a call of the function [`UNNAMED`] in the caller's own domain.
//!
//! Each PID keeps a stack: the domain running at its base, then one frame (the callee's
//! domain and name) per open call. For a call line from object `C`:
//! - the PID's first line: a [`Event::Switch`] to `C`;
//! - else if the running domain (the stack's top) is not `C`: if calls are open and `C` is
//!   on the stack, one [`Event::Return`] per frame popped until it is on top; otherwise a
//!   [`Event::Switch`] to `C`, and the stack is reset to `C` alone (open calls are forgotten:
//!   their `resumed` lines are skipped);
//! - then a [`Event::Call`] of the callee, and its [`Event::Return`] at once when the line is
//!   complete; `<unfinished ...>` (and `<no return ...>`) leave the call open.
//!
//! `<... name resumed>` returns from the newest open call of `name` (returning first from any
//! newer ones); it is skipped when none is open. `+++ ... +++` (exits, kills) and
//! `--- SIGNAL ---` lines, and system calls (`SYS_name(...)`, from `-S`), are skipped.

use std::collections::HashMap;

use super::{Format, LineParser, Out, all_digits, importer, never};
use crate::trace::{DomainNo, Event, TraceWidth};

/// The main program's domain name, for lines without `obj->`.
pub const PROGRAM: &str = "program";
/// The domain of callees whose library is unknown.
pub const UNKNOWN_LIBRARY: &str = "?";
/// The name given a call ltrace prints without one (`libc.so.6->(args)`); it stays in the
/// caller's domain.
pub const UNNAMED: &str = "(unnamed)";

/// Reads `ltrace` output. See the [module docs](self).
#[derive(Debug)]
pub struct LtraceReader<R>(super::Driver<R, LtraceParser>);

importer!(LtraceReader, LtraceParser, TraceWidth::Bits32);

/// What a line does.
#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    /// A call: the calling object, the callee's name and library, and whether it returned.
    Call {
        caller: Option<&'a str>,
        name: &'a str,
        lib: Option<&'a str>,
        returned: bool,
    },
    /// `<... name resumed>`
    Resumed(&'a str),
}

/// Splits off the first whitespace-separated token of `s`.
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Whether `s` is a timestamp of `-t`, `-tt`, `-ttt` or `-r`.
fn is_time(s: &str) -> bool {
    s.contains([':', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
        && s.bytes().any(|b| b.is_ascii_digit())
}

/// Whether `s` holds no whitespace and is not empty.
fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// Parses a line: the PID (0 without the PID column) and what it does; `None` for a line
/// to skip.
fn parse_line(line: &str) -> Result<Option<(u64, Op<'_>)>, String> {
    let mut s = line.trim();
    let mut pid = 0;
    if let Some(r) = s.strip_prefix("[pid ") {
        let (n, r) = r.split_once(']').ok_or("expected `[pid N]`")?;
        pid = n.trim().parse().map_err(|_| "bad PID in `[pid N]`")?;
        s = r.trim_start();
    } else {
        let (tok, r) = split_token(s);
        if all_digits(tok) {
            pid = tok.parse().map_err(|_| "PID too large")?;
            s = r;
        }
    }
    loop {
        let (tok, r) = split_token(s);
        if !is_time(tok) {
            break;
        }
        s = r;
    }
    if let Some(r) = s.strip_prefix('[') {
        let (ip, r) = r.split_once(']').ok_or("expected `[0xADDRESS]`")?;
        let ok = ip == "?"
            || ip
                .strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err("expected `[0xADDRESS]`".into());
        }
        s = r.trim_start();
    }
    if s.starts_with("+++") || s.starts_with("---") {
        return Ok(None);
    }
    if let Some(r) = s.strip_prefix("<...") {
        let (name, _) = r
            .split_once("resumed>")
            .ok_or("expected `<... name resumed>`")?;
        let name = name.trim();
        if !name.is_empty() && !is_word(name) {
            return Err("bad name in `<... name resumed>`".into());
        }
        let name = if name.is_empty() { UNNAMED } else { name };
        return Ok(Some((pid, Op::Resumed(name))));
    }
    let open = s.find('(').ok_or("expected `obj->name(args) = value`")?;
    let head = &s[..open];
    if !is_word(head) {
        return Err("expected `obj->name(args) = value`".into());
    }
    let (caller, callee) = match head.split_once("->") {
        Some((c, n)) => (Some(c), n),
        None => (None, head),
    };
    let (name, lib) = match callee.rsplit_once('@') {
        Some((n, l)) => (n, Some(l)),
        None => (callee, None),
    };
    // `obj->(args)`: a call ltrace cannot name (common inside glibc): the unnamed function.
    let unnamed = name.is_empty() && lib.is_none() && caller.is_some_and(|c| !c.is_empty());
    if (name.is_empty() && !unnamed)
        || caller.is_some_and(str::is_empty)
        || lib.is_some_and(str::is_empty)
    {
        return Err("bad name: expected `obj->name` or `obj->name@lib`".into());
    }
    let name = if unnamed { UNNAMED } else { name };
    if caller.is_none() && name.starts_with("SYS_") {
        return Ok(None);
    }
    let returned = !(s.ends_with("<unfinished ...>") || s.ends_with("<no return ...>"));
    Ok(Some((
        pid,
        Op::Call {
            caller,
            name,
            lib,
            returned,
        },
    )))
}

/// `ltrace -f -T -i` output: no header, known by its lines' shape.
pub(super) const FORMAT: Format = Format {
    name: "ltrace",
    magic: never,
    header: never,
    sniff,
    sniff_rank: 5,
    open: |r, _| Ok(Box::new(LtraceReader::new(r))),
};

/// Whether `line` looks like an ltrace call line (with its PID).
pub(super) fn sniff(line: &str) -> bool {
    let t = line.trim_start();
    let pid = t.starts_with("[pid ") || split_token(t).0.bytes().all(|b| b.is_ascii_digit());
    pid && t.contains('(') && matches!(parse_line(line), Ok(Some(_)))
}

/// A frame of a PID's stack: the domain running, and the open call's name (`None` at the
/// base).
#[derive(Debug)]
struct Frame {
    domain: DomainNo,
    name: Option<String>,
}

/// The line parser: each PID's stack.
#[derive(Debug, Default)]
struct LtraceParser {
    stacks: HashMap<u64, Vec<Frame>>,
}

impl LineParser for LtraceParser {
    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String> {
        let Some((pid, op)) = parse_line(line)? else {
            return Ok(());
        };
        match op {
            Op::Call {
                caller,
                name,
                lib,
                returned,
            } => {
                let dc = out.domain(caller.unwrap_or(PROGRAM))?;
                // An unnamed callee stays in the caller's object (ltrace names every call
                // that leaves it through a PLT it resolved).
                let de = match lib {
                    Some(lib) => out.domain(lib)?,
                    None if name == UNNAMED => dc,
                    None => out.domain(UNKNOWN_LIBRARY)?,
                };
                let target = out.function(de, name)?;
                out.enter(pid)?;
                let stack = self.stacks.entry(pid).or_default();
                match stack.last() {
                    None => {
                        out.push(Event::Switch { domain: dc });
                        stack.push(Frame {
                            domain: dc,
                            name: None,
                        });
                    }
                    Some(top) if top.domain != dc => {
                        match stack.iter().rposition(|f| f.domain == dc) {
                            Some(p) if stack.len() > 1 => {
                                for _ in p + 1..stack.len() {
                                    out.push(Event::Return);
                                }
                                stack.truncate(p + 1);
                            }
                            _ => {
                                out.push(Event::Switch { domain: dc });
                                stack.clear();
                                stack.push(Frame {
                                    domain: dc,
                                    name: None,
                                });
                            }
                        }
                    }
                    Some(_) => {}
                }
                out.push(Event::Call { target });
                if returned {
                    out.push(Event::Return);
                } else {
                    stack.push(Frame {
                        domain: de,
                        name: Some(name.to_string()),
                    });
                }
            }
            Op::Resumed(name) => {
                let Some(stack) = self.stacks.get_mut(&pid) else {
                    return Ok(());
                };
                if let Some(p) = stack.iter().rposition(|f| f.name.as_deref() == Some(name)) {
                    out.enter(pid)?;
                    for _ in p..stack.len() {
                        out.push(Event::Return);
                    }
                    stack.truncate(p);
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
            p("16955 [0x5645a6cbb191] hello_plain->malloc(16)   = 0x5645d32d22a0 <0.002460>"),
            Some((
                16955,
                Op::Call {
                    caller: Some("hello_plain"),
                    name: "malloc",
                    lib: None,
                    returned: true
                }
            ))
        );
        assert_eq!(
            p("[pid 7] 12:00:01.5 [0x1] libc.so.6->f@libm.so.6(1 <unfinished ...>"),
            Some((
                7,
                Op::Call {
                    caller: Some("libc.so.6"),
                    name: "f",
                    lib: Some("libm.so.6"),
                    returned: false
                }
            ))
        );
        assert_eq!(
            p("17936 [0x564da3b051ab] <... malloc resumed> )    = 0x7f4260000b70 <0.001200>"),
            Some((17936, Op::Resumed("malloc")))
        );
        assert_eq!(
            p("puts(\"hi\") = 3"),
            Some((
                0,
                Op::Call {
                    caller: None,
                    name: "puts",
                    lib: None,
                    returned: true
                }
            ))
        );
        assert_eq!(
            p("16955 [0xffffffffffffffff] +++ exited (status 0) +++"),
            None
        );
        assert_eq!(p("--- SIGCHLD (Child exited) ---"), None);
        assert_eq!(p("1 [0x1] SYS_brk(0) = 0"), None);
        assert!(parse_line("1 [0x1] hello").is_err());
        assert!(parse_line("1 [zz] f()").is_err());
        assert!(parse_line("1 [0x1] ->f()").is_err());
        assert!(parse_line("1 [0x1] <... f resumed").is_err());
    }
}
