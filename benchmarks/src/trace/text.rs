//! The text form of a trace: one event a line, for hand-written tests and for reading.
//!
//! ```text
//! # a comment; blank lines are skipped
//! mmp-trace 1 width 32           (optional first line: the form, its version, the width)
//! domain 1 vmlinux
//! function 0x100000 1 start_kernel
//! grant 1 0x200000 0x10000 rw     (permission: none, r, rw, rx)
//! cpu 0
//! load 0x200000 4                 (also store, modify, fetch: address, size in bytes)
//! call 0x100000
//! return
//! switch 2
//! syscall 7
//! insns 3353
//! thread 93                       (the CPU now runs thread 93)
//! irq 1                           (an interrupt enters domain 1)
//! iret                            (the newest interrupt ends)
//! ```
//! Numbers are decimal or `0x` hex. Without the first line the width is 32 bits. A line
//! longer than [`MAX_LINE`](super::lines::MAX_LINE) bytes is an error.

use std::io::{BufRead, Write};

use super::lines::{Lines, shorten};
use super::{
    DomainNo, Event, EventSource, MAX_MEM_SIZE, MemKind, Place, TraceError, TraceWidth,
    perm_from_keyword, perm_keyword,
};

/// The text form's first-line keyword.
pub const HEADER: &str = "mmp-trace";
/// The text form's version.
pub const VERSION: u32 = 1;

/// Parses a decimal or `0x` hexadecimal number.
#[must_use]
pub fn parse_num(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Reads the text form from any buffered reader, one line at a time.
#[derive(Debug)]
pub struct TextReader<R> {
    lines: Lines<R>,
    width: TraceWidth,
    peeked: Option<Event>,
    failed: bool,
}

impl<R: BufRead> TextReader<R> {
    /// A reader of `input`. Reads the optional header line at once.
    ///
    /// # Errors
    /// A [`TraceError`] for an unreadable or malformed first event line.
    pub fn new(input: R) -> Result<Self, TraceError> {
        let mut r = TextReader {
            lines: Lines::new(input),
            width: TraceWidth::Bits32,
            peeked: None,
            failed: false,
        };
        r.peeked = r.read_event(true)?;
        Ok(r)
    }

    fn err(&self, message: impl Into<String>) -> TraceError {
        TraceError::Parse {
            place: Place::Line(self.lines.line_no),
            message: message.into(),
            text: shorten(&self.lines.text()).into_owned(),
        }
    }

    fn read_event(&mut self, first: bool) -> Result<Option<Event>, TraceError> {
        loop {
            if !self.lines.next_line()? {
                return Ok(None);
            }
            let text = self.lines.text();
            let t = text.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if first && t.starts_with(HEADER) {
                let f: Vec<&str> = t.split_whitespace().collect();
                match f.as_slice() {
                    [_, v, "width", w] => {
                        if parse_num(v) != Some(u64::from(VERSION)) {
                            return Err(self.err(format!("unsupported text-form version {v}")));
                        }
                        self.width = w
                            .parse::<u8>()
                            .ok()
                            .and_then(TraceWidth::from_bits)
                            .ok_or_else(|| self.err("width must be 32 or 48"))?;
                    }
                    _ => return Err(self.err("header must be `mmp-trace 1 width 32|48`")),
                }
                continue;
            }
            return self.parse_line().map(Some);
        }
    }

    fn parse_line(&self) -> Result<Event, TraceError> {
        let text = self.lines.text();
        let f: Vec<&str> = text.split_whitespace().collect();
        let num = |i: usize, what: &str| -> Result<u64, TraceError> {
            f.get(i)
                .and_then(|s| parse_num(s))
                .ok_or_else(|| self.err(format!("expected {what}")))
        };
        let dom = |i: usize| -> Result<DomainNo, TraceError> {
            num(i, "a domain number")
                .ok()
                .and_then(|n| DomainNo::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| self.err("expected a domain number (1 and up)"))
        };
        let arity = |n: usize| -> Result<(), TraceError> {
            if f.len() == n {
                Ok(())
            } else {
                Err(self.err(format!("`{}` takes {} fields", f[0], n - 1)))
            }
        };
        let mem = |kind| -> Result<Event, TraceError> {
            arity(3)?;
            let size = num(2, "a size")?;
            let size = u32::try_from(size)
                .ok()
                .filter(|&s| (1..=MAX_MEM_SIZE).contains(&s))
                .ok_or_else(|| self.err(format!("size must be 1 to {MAX_MEM_SIZE}")))?;
            Ok(Event::Mem {
                kind,
                addr: num(1, "an address")?,
                size,
            })
        };
        let small = |i: usize, what: &str| -> Result<u32, TraceError> {
            u32::try_from(num(i, what)?).map_err(|_| self.err(format!("{what} too large")))
        };
        match f[0] {
            "domain" => {
                arity(3)?;
                Ok(Event::Domain {
                    no: dom(1)?,
                    name: f[2].to_string(),
                })
            }
            "function" => {
                arity(4)?;
                Ok(Event::Function {
                    addr: num(1, "an address")?,
                    domain: dom(2)?,
                    name: f[3].to_string(),
                })
            }
            "grant" => {
                arity(5)?;
                Ok(Event::Grant {
                    domain: dom(1)?,
                    addr: num(2, "an address")?,
                    len: num(3, "a length")?,
                    perm: perm_from_keyword(f[4])
                        .ok_or_else(|| self.err("permission must be none, r, rw or rx"))?,
                })
            }
            "cpu" => {
                arity(2)?;
                Ok(Event::Cpu {
                    cpu: small(1, "a CPU number")?,
                })
            }
            "load" => mem(MemKind::Load),
            "store" => mem(MemKind::Store),
            "modify" => mem(MemKind::Modify),
            "fetch" => mem(MemKind::Fetch),
            "call" => {
                arity(2)?;
                Ok(Event::Call {
                    target: num(1, "a target address")?,
                })
            }
            "return" => {
                arity(1)?;
                Ok(Event::Return)
            }
            "switch" => {
                arity(2)?;
                Ok(Event::Switch { domain: dom(1)? })
            }
            "syscall" => {
                arity(2)?;
                Ok(Event::Syscall {
                    no: small(1, "a call number")?,
                })
            }
            "insns" => {
                arity(2)?;
                Ok(Event::Insns {
                    count: num(1, "an instruction count")?,
                })
            }
            "thread" => {
                arity(2)?;
                Ok(Event::Thread {
                    tid: small(1, "a thread number")?,
                })
            }
            "irq" => {
                arity(2)?;
                Ok(Event::Interrupt { domain: dom(1)? })
            }
            "iret" => {
                arity(1)?;
                Ok(Event::InterruptReturn)
            }
            other => Err(self.err(format!("unknown event `{other}`"))),
        }
    }
}

impl<R: BufRead> EventSource for TextReader<R> {
    fn width(&self) -> TraceWidth {
        self.width
    }

    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        if self.failed {
            return Ok(None);
        }
        if let Some(e) = self.peeked.take() {
            return Ok(Some(e));
        }
        let r = self.read_event(false);
        self.failed = r.is_err();
        r
    }

    fn position(&self) -> u64 {
        self.lines.pos
    }
}

/// Writes `event` as one text-form line (with its newline).
///
/// # Errors
/// The writer's error.
pub fn write_event(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    match event {
        Event::Domain { no, name } => writeln!(out, "domain {no} {name}"),
        Event::Function { addr, domain, name } => {
            writeln!(out, "function {addr:#x} {domain} {name}")
        }
        Event::Grant {
            domain,
            addr,
            len,
            perm,
        } => writeln!(
            out,
            "grant {domain} {addr:#x} {len:#x} {}",
            perm_keyword(*perm)
        ),
        Event::Cpu { cpu } => writeln!(out, "cpu {cpu}"),
        Event::Mem { kind, addr, size } => writeln!(out, "{} {addr:#x} {size}", kind.keyword()),
        Event::Call { target } => writeln!(out, "call {target:#x}"),
        Event::Return => writeln!(out, "return"),
        Event::Switch { domain } => writeln!(out, "switch {domain}"),
        Event::Syscall { no } => writeln!(out, "syscall {no}"),
        Event::Insns { count } => writeln!(out, "insns {count}"),
        Event::Thread { tid } => writeln!(out, "thread {tid}"),
        Event::Interrupt { domain } => writeln!(out, "irq {domain}"),
        Event::InterruptReturn => writeln!(out, "iret"),
    }
}

/// Writes the text form's header line for `width`.
///
/// # Errors
/// The writer's error.
pub fn write_header(out: &mut impl Write, width: TraceWidth) -> std::io::Result<()> {
    writeln!(out, "{HEADER} {VERSION} width {}", width.bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Result<Vec<Event>, TraceError> {
        let mut r = TextReader::new(s.as_bytes())?;
        let mut v = Vec::new();
        while let Some(e) = r.next_event()? {
            v.push(e);
        }
        Ok(v)
    }

    #[test]
    fn every_event_round_trips_through_the_text_form() {
        let events = vec![
            Event::Domain {
                no: 1,
                name: "vmlinux".into(),
            },
            Event::Function {
                addr: 0x1000,
                domain: 1,
                name: "f".into(),
            },
            Event::Grant {
                domain: 1,
                addr: 0x2000,
                len: 0x100,
                perm: mmp_domains::Perm::ReadWrite,
            },
            Event::Cpu { cpu: 1 },
            Event::Mem {
                kind: MemKind::Modify,
                addr: 0x2001,
                size: 3,
            },
            Event::Call { target: 0x1000 },
            Event::Return,
            Event::Switch { domain: 1 },
            Event::Syscall { no: 9 },
            Event::Insns { count: 77 },
        ];
        let mut s = Vec::new();
        write_header(&mut s, TraceWidth::Bits48).unwrap();
        for e in &events {
            write_event(&mut s, e).unwrap();
        }
        let text = String::from_utf8(s).unwrap();
        let mut r = TextReader::new(text.as_bytes()).unwrap();
        assert_eq!(r.width(), TraceWidth::Bits48);
        let mut back = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            back.push(e);
        }
        assert_eq!(back, events);
    }

    #[test]
    fn garbage_lines_are_errors_naming_the_line() {
        let e = all("# c\ndomain 1 k\n\nlode 0x10 4\n").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("line 4: unknown event `lode`"), "{m}");
        assert!(
            all("load 0x10\n")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        assert!(all("load 0x10 0\n").is_err());
        assert!(all("domain 0 k\n").is_err());
        assert!(all("grant 1 0 4 wx\n").is_err());
        assert!(all("mmp-trace 1 width 40\n").is_err());
        assert!(all("mmp-trace 2 width 32\n").is_err());
    }

    #[test]
    fn an_overlong_line_is_an_error_naming_it() {
        let long = format!(
            "domain 1 k\ndomain 2 {}\n",
            "x".repeat(super::super::lines::MAX_LINE)
        );
        let m = all(&long).unwrap_err().to_string();
        assert!(m.starts_with("line 2: line longer than"), "{}", &m[..80]);
    }
}
