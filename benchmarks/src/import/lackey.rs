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
//! to it). At the end, one [`Event::Insns`] counts the `I` lines.
//!
//! # Layouts
//! The derived layout, with no heap log: before the first reference to each 4 KiB page, a
//! [`Event::Grant`] gives `program` the page, execute-read if that reference is a fetch and
//! read-write otherwise (each page is granted once; a reference spanning two pages grants
//! each).
//!
//! With a [`HeapLayout`] (a [`HeapLog`] of the same run, [`ReadOptions::lackey_heap`](super::ReadOptions::lackey_heap)),
//! the layout comes from the log's regions, the program's mappings as `/proc/self/maps`
//! listed them (see [`heap`](super::heap#the-regions)):
//! - [`LayoutGrain::Coarse`]: before the first reference into a region, one grant gives
//!   `program` the whole region with its mapping's permission (heap arenas and the stack
//!   are regions like the others);
//! - [`LayoutGrain::Fine`]: the same for every region but the heap arenas; there, each
//!   object the log allocates is granted read-write (its bytes, so every word they touch)
//!   at the `n`-th store to the log's sync word, the moment its allocation returned, and
//!   set back to none when it is freed ([`HeapStep`]). The allocator's own references to
//!   its chunk headers and free chunks therefore fault, as they would for a program
//!   domain that holds only its objects.
//!
//! In both, a reference outside every region (a mapping made and unmapped between the two
//! snapshots) falls back to a 4 KiB page grant as above. Each store to the sync word takes
//! the next allocation record in either grain; one with no record left, or a trace that ends
//! before the log's records are all taken, is an error (the log is not of this run).

use std::collections::HashSet;
use std::sync::Arc;

use mmp_domains::Perm;

use super::heap::{HeapLog, HeapStep, LayoutGrain, SYNC_SIZE};
use super::{Format, LineParser, Out, all_digits, importer, never};
use crate::trace::{Event, MAX_MEM_SIZE, MemKind, TraceWidth};

/// A heap log and the grain of the layout to derive from it (see the [module
/// docs](self#layouts)).
#[derive(Debug, Clone)]
pub struct HeapLayout {
    /// The heap log of the traced run.
    pub log: Arc<HeapLog>,
    /// Coarse or fine.
    pub grain: LayoutGrain,
}

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
    open: |r, o| {
        Ok(match &o.lackey_heap {
            Some(h) => Box::new(LackeyReader::with_heap(r, h.clone())),
            None => Box::new(LackeyReader::new(r)),
        })
    },
};

/// Whether `line` looks like a lackey line (a reference or the `==PID==` banner).
pub(super) fn sniff(line: &str) -> bool {
    let t = line.trim();
    if let Some(r) = t.strip_prefix("==") {
        return r.split_once("==").is_some_and(|(pid, _)| all_digits(pid));
    }
    matches!(parse_line(line), Ok(Some(_)))
}

impl<R: std::io::BufRead> LackeyReader<R> {
    /// A reader of `input` whose layout comes from `heap` (see the [module
    /// docs](self#layouts)). Nothing is read until the first event is asked for.
    pub fn with_heap(input: R, heap: HeapLayout) -> Self {
        let regions = heap.log.regions.len();
        let parser = LackeyParser {
            heap: Some(HeapState {
                heap,
                granted: vec![false; regions],
                next: 0,
            }),
            ..LackeyParser::default()
        };
        LackeyReader(super::Driver::new(input, parser, TraceWidth::Bits48))
    }
}

/// The line parser: the pages granted and the instructions counted.
#[derive(Debug, Default)]
struct LackeyParser {
    granted: HashSet<u64>,
    insns: u64,
    heap: Option<HeapState>,
}

/// A heap layout's progress: the regions granted, and the next allocation record.
#[derive(Debug)]
struct HeapState {
    heap: HeapLayout,
    granted: Vec<bool>,
    next: usize,
}

impl LackeyParser {
    /// Grants the page holding `page * PAGE` if it is not yet granted.
    fn page(&mut self, page: u64, perm: Perm, out: &mut Out) {
        if self.granted.insert(page) {
            out.push(Event::Grant {
                domain: 1,
                addr: page * PAGE,
                len: PAGE,
                perm,
            });
        }
    }

    /// The grants `[addr, end)` needs before it is referenced, from the heap log's regions.
    fn regions(&mut self, addr: u64, end: u64, perm: Perm, out: &mut Out) {
        let mut a = addr;
        while a < end {
            let Some(h) = &mut self.heap else { return };
            let log = &h.heap.log;
            match log.region_of(a) {
                Some(i) => {
                    let r = &log.regions[i];
                    let whole = !(r.heap && h.heap.grain == LayoutGrain::Fine);
                    if whole && !h.granted[i] {
                        h.granted[i] = true;
                        out.push(Event::Grant {
                            domain: 1,
                            addr: r.start,
                            len: r.end - r.start,
                            perm: r.perm,
                        });
                    }
                    a = r.end;
                }
                None => {
                    let next = log
                        .regions
                        .get(log.regions.partition_point(|r| r.end <= a))
                        .map_or(u64::MAX, |r| r.start);
                    self.page(a / PAGE, perm, out);
                    a = ((a / PAGE + 1) * PAGE).min(next);
                }
            }
        }
    }

    /// Takes the next allocation record at a store to the sync word.
    fn sync(&mut self, out: &mut Out) -> Result<(), String> {
        let Some(h) = &mut self.heap else {
            return Ok(());
        };
        let log = &h.heap.log;
        let Some(&HeapStep { revoke, grant }) = log.steps.get(h.next) else {
            return Err(format!(
                "a store to the heap log's sync word {:#x} with no allocation record left \
                 (the log has {}): the heap log is not of this run",
                log.sync,
                log.steps.len()
            ));
        };
        h.next += 1;
        if h.heap.grain == LayoutGrain::Fine {
            for (range, perm) in [(revoke, Perm::None), (grant, Perm::ReadWrite)] {
                if let Some((a, b)) = range {
                    out.push(Event::Grant {
                        domain: 1,
                        addr: a,
                        len: b - a,
                        perm,
                    });
                }
            }
        }
        Ok(())
    }
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
        let end = addr + u64::from(size);
        match &self.heap {
            None => {
                for page in addr / PAGE..=(end - 1) / PAGE {
                    self.page(page, perm, out);
                }
            }
            Some(_) => self.regions(addr, end, perm, out),
        }
        out.push(Event::Mem { kind, addr, size });
        if kind == MemKind::Fetch {
            self.insns += 1;
        }
        let sync = self.heap.as_ref().map(|h| h.heap.log.sync);
        if kind == MemKind::Store && size == SYNC_SIZE && sync == Some(addr) {
            self.sync(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Out) -> Result<(), String> {
        out.push(Event::Insns { count: self.insns });
        match &self.heap {
            Some(h) if h.next < h.heap.log.steps.len() => Err(format!(
                "the trace ends after {} of the heap log's {} allocation records took effect \
                 (stores to its sync word {:#x}): the heap log is not of this run, or the \
                 trace is cut",
                h.next,
                h.heap.log.steps.len(),
                h.heap.log.sync
            )),
            _ => Ok(()),
        }
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
