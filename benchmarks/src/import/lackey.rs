//! Valgrind lackey's memory trace (`valgrind --tool=lackey --trace-mem=yes`).
//!
//! ```text
//! ==16958== Lackey, an example Valgrind tool
//! I  0401ab70,3
//!  S 1fff000768,8
//!  L 04032f58,8
//!  M 0403a010,4
//! ```
//! `I` is an instruction fetch, `L` a load, `S` a store, `M` a modify, each of `size` bytes
//! (1 and up) at a hexadecimal address below 2^48 (the trace is 48 bits wide). `==PID==`
//! lines are skipped.
//!
//! Everything is one domain, `program` (domain 1, declared first, then a [`Event::Switch`]
//! to it). The derived layout: before the first reference to each 4 KiB page, a
//! [`Event::Grant`] gives `program` the page, execute-read if that reference is a fetch and
//! read-write otherwise (each page is granted once; a reference spanning two pages grants
//! each). At the end, one [`Event::Insns`] counts the `I` lines.

use std::collections::HashSet;

use mmp_domains::Perm;

use super::{Format, LineParser, Out, all_digits, importer, never};
use crate::trace::{Event, MAX_MEM_SIZE, MemKind, TraceWidth};

/// The one domain's name.
pub const PROGRAM: &str = "program";
/// Pages the derived layout grants.
pub const PAGE: u64 = 4096;
/// Addresses must be below this.
const LIMIT: u64 = 1 << 48;

/// Reads lackey's memory trace. See the [module docs](self).
#[derive(Debug)]
pub struct LackeyReader<R>(super::Driver<R, LackeyParser>);

importer!(LackeyReader, LackeyParser, TraceWidth::Bits48);

/// Parses a line: the reference; `None` for a line to skip.
fn parse_line(line: &str) -> Result<Option<(MemKind, u64, u32)>, String> {
    let t = line.trim();
    if t.starts_with("==") {
        return Ok(None);
    }
    let bad = || "expected `I  ADDR,SIZE` or ` L|S|M ADDR,SIZE`".to_string();
    let (k, rest) = t.split_once(char::is_whitespace).ok_or_else(bad)?;
    let kind = match k {
        "I" => MemKind::Fetch,
        "L" => MemKind::Load,
        "S" => MemKind::Store,
        "M" => MemKind::Modify,
        _ => return Err(bad()),
    };
    let (a, s) = rest.trim().split_once(',').ok_or_else(bad)?;
    if a.is_empty() || !a.bytes().all(|b| b.is_ascii_hexdigit()) || !all_digits(s) {
        return Err(bad());
    }
    let addr = u64::from_str_radix(a, 16).map_err(|_| "address above 2^48".to_string())?;
    let size: u32 = s
        .parse()
        .ok()
        .filter(|&n| n <= MAX_MEM_SIZE)
        .ok_or_else(|| format!("size {s} over {MAX_MEM_SIZE}"))?;
    if size == 0 {
        return Err("size 0".into());
    }
    if addr
        .checked_add(u64::from(size))
        .is_none_or(|end| end > LIMIT)
    {
        return Err("address above 2^48".into());
    }
    Ok(Some((kind, addr, size)))
}

/// Valgrind lackey's output: no header, known by its banner or its lines' shape.
pub(super) const FORMAT: Format = Format {
    name: "lackey",
    magic: never,
    header: never,
    sniff,
    sniff_rank: 1,
    open: |r, _| Ok(Box::new(LackeyReader::new(r))),
};

/// Whether `line` looks like a lackey line (a reference or the `==PID==` banner).
pub(super) fn sniff(line: &str) -> bool {
    let t = line.trim();
    if let Some(r) = t.strip_prefix("==") {
        return r.split_once("==").is_some_and(|(pid, _)| all_digits(pid));
    }
    matches!(parse_line(line), Ok(Some(_)))
}

/// The line parser: the pages granted and the instructions counted.
#[derive(Debug, Default)]
struct LackeyParser {
    granted: HashSet<u64>,
    insns: u64,
}

impl LineParser for LackeyParser {
    fn start(&mut self, out: &mut Out) {
        if let Ok(domain) = out.domain(PROGRAM) {
            out.push(Event::Switch { domain });
        }
    }

    fn line(&mut self, line: &str, out: &mut Out) -> Result<(), String> {
        let Some((kind, addr, size)) = parse_line(line)? else {
            return Ok(());
        };
        let perm = if kind == MemKind::Fetch {
            Perm::ExecuteRead
        } else {
            Perm::ReadWrite
        };
        let last = (addr + u64::from(size) - 1) / PAGE;
        for page in addr / PAGE..=last {
            if self.granted.insert(page) {
                out.push(Event::Grant {
                    domain: 1,
                    addr: page * PAGE,
                    len: PAGE,
                    perm,
                });
            }
        }
        out.push(Event::Mem { kind, addr, size });
        if kind == MemKind::Fetch {
            self.insns += 1;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Out) {
        out.push(Event::Insns { count: self.insns });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            parse_line("I  0401ab70,3"),
            Ok(Some((MemKind::Fetch, 0x0401_ab70, 3)))
        );
        assert_eq!(parse_line(" M 10,4"), Ok(Some((MemKind::Modify, 0x10, 4))));
        assert_eq!(parse_line("==1== hi"), Ok(None));
        assert!(parse_line(" L 10,0").unwrap_err().contains("size 0"));
        assert!(
            parse_line(" L ffffffffffff,2")
                .unwrap_err()
                .contains("2^48")
        );
        assert!(parse_line(" L ffffffffffff,1").is_ok());
        assert!(
            parse_line(" L 1ffffffffffffffffff,1")
                .unwrap_err()
                .contains("2^48")
        );
        assert!(parse_line(" X 10,4").is_err());
        assert!(parse_line(" L +10,4").is_err());
        assert!(parse_line(" L 10,-4").is_err());
        assert!(parse_line(" L 10,99999999999").is_err());
        assert!(parse_line("hello").is_err());
    }
}
