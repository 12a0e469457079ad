//! A heap-object log: the mallocs and frees of a run, its memory map, and how they line up
//! with a Valgrind lackey trace of the same run, for the lackey importer's coarse and fine
//! layouts ([`LayoutGrain`]).
//!
//! The log is written by the `LD_PRELOAD` logger `benchmarks/tests/data/heap/heaplog.c`
//! (`scripts/record-heap-trace.sh` builds it and records a run). One record a line:
//!
//! ```text
//! mmp-heap-log 1
//! sync 0x4840060
//! map 04000000-04001000 r--p 00000000 fe:00 325843   /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
//! calloc 4 8 0x40352a0
//! malloc 10 0x40352d0
//! realloc 0x0 8 0x4036470
//! free 0x40352d0
//! end
//! ```
//!
//! - `mmp-heap-log 1` is the first line (the format's version is 1);
//! - `sync ADDR`, once, before the first allocation record: the 8-byte word the logger
//!   stores to after writing each allocation record. In the lackey trace of the same run,
//!   the `n`-th store (` S ADDR,8`) to it is the moment the `n`-th allocation record takes
//!   effect: the allocator has returned;
//! - `map LINE`: a line of `/proc/self/maps` (`START-END PERMS OFFSET DEV INODE [PATH]`),
//!   copied when the logger starts and when the program exits;
//! - `malloc SIZE PTR`, `calloc NMEMB SIZE PTR`, `realloc OLD SIZE NEW`, `free PTR`: one
//!   call each, with what it returned;
//! - `end`: the program exited normally (a log without it is read as far as it goes).
//!
//! Sizes are decimal, addresses hexadecimal with `0x`. Blank lines and lines starting
//! with `#` are skipped. Every object lies below 2^48 (lackey traces are 48 bits wide).
//!
//! The log is untrusted input: anything else, and an allocation that overlaps an object
//! still live, is a [`HeapLogError`] naming its line.
//!
//! # The regions
//! [`HeapLog::regions`] are the mappings of all `map` snapshots, a later snapshot's mapping
//! replacing every earlier one it overlaps (the heap grows between the two snapshots);
//! mappings with no permission (`---p`, guard pages) and those reaching past 2^48 (such as
//! `[vsyscall]`) are left out. A mapping's permission: read-write if writable (MMP has no
//! write-and-execute, and Valgrind maps the brk heap `rwx`), else execute-read if
//! executable, else read-only. A region that holds the start of any object the
//! log allocates is a **heap arena**.
//!
//! # Objects
//! Each allocation record is a [`HeapStep`]: the byte range it makes live (`grant`) and the
//! one it ends (`revoke`). `malloc` and `calloc` grant `[PTR, PTR + size)`; `free` revokes
//! the live object at `PTR`; `realloc` revokes the old object and grants the new one (when
//! it returns 0 with a size, it failed and changes nothing; with size 0 it freed the old).
//! An allocation of 0 bytes, or one that returned 0, grants nothing; freeing 0 or a pointer
//! the log never allocated (allocated before the logger started, or by a call it does not
//! wrap) revokes nothing and is counted in [`HeapLog::unknown_frees`].

use std::collections::BTreeMap;

use mmp_domains::Perm;

/// The first line of a heap log.
pub const HEADER: &str = "mmp-heap-log 1";
/// Objects and regions must lie below this (lackey traces are 48 bits wide).
pub const LIMIT: u64 = 1 << 48;
/// The size of the sync word's store.
pub const SYNC_SIZE: u32 = 8;

/// How the lackey importer lays out a trace it reads with a heap log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutGrain {
    /// One region per mapping of the program and its libraries (heap arena and stack
    /// included as whole regions), each granted whole at the first reference into it.
    Coarse,
    /// As coarse, except the heap arenas: there one grant per live heap object, granted when
    /// its allocation returns and revoked (permission none) when it is freed.
    Fine,
}

impl LayoutGrain {
    /// Both grains, coarse first.
    pub const ALL: [LayoutGrain; 2] = [LayoutGrain::Coarse, LayoutGrain::Fine];

    /// Its name on the command line: `coarse` or `fine`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            LayoutGrain::Coarse => "coarse",
            LayoutGrain::Fine => "fine",
        }
    }
}

impl std::fmt::Display for LayoutGrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LayoutGrain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LayoutGrain::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| format!("unknown layout grain `{s}` (one of: coarse, fine)"))
    }
}

/// A mapping of the traced program (see the [module docs](self#the-regions)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The permission its mapping gives.
    pub perm: Perm,
    /// The mapped file or pseudo-name (`[stack]`), empty for an anonymous mapping.
    pub name: String,
    /// Whether an object the log allocates starts in it.
    pub heap: bool,
}

/// What one allocation record does to the live objects: byte ranges `(start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapStep {
    /// The object it ends, if any.
    pub revoke: Option<(u64, u64)>,
    /// The object it makes live, if any.
    pub grant: Option<(u64, u64)>,
}

/// A parsed heap log. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapLog {
    /// The sync word's address.
    pub sync: u64,
    /// The regions, in address order, disjoint.
    pub regions: Vec<Region>,
    /// One step per allocation record, in log order.
    pub steps: Vec<HeapStep>,
    /// Frees (and reallocs) of 0 or of a pointer the log never allocated.
    pub unknown_frees: u64,
    /// Whether the log ends with `end`.
    pub complete: bool,
}

/// A heap log that cannot be read. Each names the line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeapLogError {
    /// The first line is not [`HEADER`].
    #[error("line {line}: not a heap log: expected `{HEADER}` first: {text:?}")]
    Header {
        /// The line.
        line: u64,
        /// What it holds.
        text: String,
    },
    /// A line that does not parse.
    #[error("line {line}: {message}: {text:?}")]
    Parse {
        /// The line.
        line: u64,
        /// What is wrong.
        message: String,
        /// The line's text (shortened).
        text: String,
    },
    /// An allocation that overlaps an object still live.
    #[error(
        "line {line}: the object at {start:#x} ({len} bytes) overlaps the live object at {other:#x} allocated on line {other_line}"
    )]
    Overlap {
        /// The allocation's line.
        line: u64,
        /// Its first byte.
        start: u64,
        /// Its length.
        len: u64,
        /// The live object's first byte.
        other: u64,
        /// The line that allocated it.
        other_line: u64,
    },
    /// An allocation record before the `sync` line, or a log without one.
    #[error("line {line}: no `sync` line before the first allocation record")]
    NoSync {
        /// The line of the first allocation record, or the last line.
        line: u64,
    },
}

/// A live object: its end and the line that allocated it.
#[derive(Debug, Clone, Copy)]
struct Live {
    end: u64,
    line: u64,
}

/// Parses an address: `0x` and hex digits.
fn addr(s: &str) -> Result<u64, String> {
    let h = s
        .strip_prefix("0x")
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("`{s}` is not an address (0x and hex digits)"))?;
    u64::from_str_radix(h, 16).map_err(|_| format!("`{s}` is more than 64 bits"))
}

/// Parses a decimal size.
fn size(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a size (decimal digits)"));
    }
    s.parse().map_err(|_| format!("`{s}` is more than 64 bits"))
}

/// `[ptr, ptr + len)`, checked to lie below [`LIMIT`].
fn object(ptr: u64, len: u64) -> Result<(u64, u64), String> {
    match ptr.checked_add(len) {
        Some(end) if end <= LIMIT => Ok((ptr, end)),
        _ => Err(format!(
            "the object at {ptr:#x} of {len} bytes reaches past 2^48"
        )),
    }
}

/// One `/proc/self/maps` line: start, end, permission (none for `---`), name.
type Mapping = (u64, u64, Option<Perm>, String);

/// Parses one `/proc/self/maps` line.
fn map_line(rest: &str) -> Result<Mapping, String> {
    let mut f = rest.split_whitespace();
    let bad = || "expected `map START-END PERMS OFFSET DEV INODE [PATH]`".to_string();
    let range = f.next().ok_or_else(bad)?;
    let perms = f.next().ok_or_else(bad)?;
    let (offset, dev, inode) = (
        f.next().ok_or_else(bad)?,
        f.next().ok_or_else(bad)?,
        f.next().ok_or_else(bad)?,
    );
    let name = f.collect::<Vec<_>>().join(" ");
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let hex = |s: &str| {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{s}` is not a hex address"));
        }
        u64::from_str_radix(s, 16).map_err(|_| format!("`{s}` is more than 64 bits"))
    };
    let (start, end) = (hex(a)?, hex(b)?);
    if start >= end {
        return Err(format!("mapping {range} is empty or reversed"));
    }
    let p = perms.as_bytes();
    let ok = p.len() == 4
        && matches!(p[0], b'r' | b'-')
        && matches!(p[1], b'w' | b'-')
        && matches!(p[2], b'x' | b'-')
        && matches!(p[3], b'p' | b's');
    if !ok {
        return Err(format!(
            "`{perms}` is not a mapping's permissions (such as r-xp)"
        ));
    }
    if hex(offset).is_err()
        || !dev.contains(':')
        || inode.is_empty()
        || !inode.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    // MMP has no write-and-execute: a writable mapping (Valgrind maps the brk heap rwx) is
    // read-write.
    let perm = match (p[0], p[1], p[2]) {
        (_, b'w', _) => Some(Perm::ReadWrite),
        (_, _, b'x') => Some(Perm::ExecuteRead),
        (b'r', _, _) => Some(Perm::ReadOnly),
        _ => None,
    };
    Ok((start, end, perm, name))
}

/// Shortens a line for an error message.
fn shown(line: &str) -> String {
    crate::trace::lines::shorten(line).into_owned()
}

impl HeapLog {
    /// Parses a heap log (see the [module docs](self)).
    ///
    /// # Errors
    /// A [`HeapLogError`] naming the first line that is wrong.
    pub fn parse(text: &str) -> Result<HeapLog, HeapLogError> {
        let mut sync = None;
        let mut snapshots: Vec<Vec<Mapping>> = Vec::new();
        let mut in_snapshot = false;
        let mut steps = Vec::new();
        let mut live: BTreeMap<u64, Live> = BTreeMap::new();
        let mut unknown_frees = 0;
        let mut complete = false;
        let mut header = false;
        let mut last = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = i as u64 + 1;
            last = line;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if !header {
                if t != HEADER {
                    return Err(HeapLogError::Header {
                        line,
                        text: shown(t),
                    });
                }
                header = true;
                continue;
            }
            let parse = |message: String| HeapLogError::Parse {
                line,
                message,
                text: shown(t),
            };
            if complete {
                return Err(parse("a record after `end`".into()));
            }
            let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            let args: Vec<&str> = rest.split_whitespace().collect();
            let want = |n: usize| {
                if args.len() == n {
                    Ok(())
                } else {
                    Err(parse(format!(
                        "`{word}` takes {n} fields, found {}",
                        args.len()
                    )))
                }
            };
            if word == "map" {
                let m = map_line(rest).map_err(parse)?;
                if !in_snapshot {
                    snapshots.push(Vec::new());
                    in_snapshot = true;
                }
                if let Some(s) = snapshots.last_mut() {
                    s.push(m);
                }
                continue;
            }
            in_snapshot = false;
            let step = match word {
                "sync" => {
                    want(1)?;
                    if sync.is_some() {
                        return Err(parse("a second `sync` line".into()));
                    }
                    let a = addr(args[0]).map_err(parse)?;
                    object(a, u64::from(SYNC_SIZE)).map_err(parse)?;
                    sync = Some(a);
                    continue;
                }
                "end" => {
                    want(0)?;
                    complete = true;
                    continue;
                }
                "malloc" => {
                    want(2)?;
                    let n = size(args[0]).map_err(parse)?;
                    let p = addr(args[1]).map_err(parse)?;
                    (None, Some((p, n)))
                }
                "calloc" => {
                    want(3)?;
                    let (m, n) = (size(args[0]).map_err(parse)?, size(args[1]).map_err(parse)?);
                    let p = addr(args[2]).map_err(parse)?;
                    let bytes = m
                        .checked_mul(n)
                        .ok_or_else(|| parse(format!("{m} x {n} bytes is more than 64 bits")))?;
                    (None, Some((p, bytes)))
                }
                "realloc" => {
                    want(3)?;
                    let old = addr(args[0]).map_err(parse)?;
                    let n = size(args[1]).map_err(parse)?;
                    let p = addr(args[2]).map_err(parse)?;
                    match (p, n) {
                        (0, 0) => (Some(old), None), // freed the old object
                        (0, _) => (None, None),      // failed: the old one stays
                        _ => (Some(old), Some((p, n))),
                    }
                }
                "free" => {
                    want(1)?;
                    (Some(addr(args[0]).map_err(parse)?), None)
                }
                _ => return Err(parse(format!("unknown record `{word}`"))),
            };
            if sync.is_none() {
                return Err(HeapLogError::NoSync { line });
            }
            let mut s = HeapStep::default();
            if let Some(old) = step.0 {
                match live.remove(&old) {
                    Some(l) if l.end > old => s.revoke = Some((old, l.end)),
                    Some(_) => {} // a 0-byte object: nothing to revoke
                    None => unknown_frees += 1,
                }
            }
            if let Some((p, n)) = step.1
                && p != 0
            {
                let (start, end) = object(p, n).map_err(parse)?;
                if let Some((&o, l)) = live
                    .range(..end.max(start + 1))
                    .next_back()
                    .filter(|(o, l)| l.end > start || **o == start)
                {
                    return Err(HeapLogError::Overlap {
                        line,
                        start,
                        len: n,
                        other: o,
                        other_line: l.line,
                    });
                }
                live.insert(start, Live { end, line });
                if n > 0 {
                    s.grant = Some((start, end));
                }
            }
            steps.push(s);
        }
        if !header {
            return Err(HeapLogError::Header {
                line: last.max(1),
                text: String::new(),
            });
        }
        let Some(sync) = sync else {
            return Err(HeapLogError::NoSync { line: last });
        };
        let regions = Self::merge_regions(&snapshots, &steps);
        Ok(HeapLog {
            sync,
            regions,
            steps,
            unknown_frees,
            complete,
        })
    }

    /// The regions of the snapshots (see the [module docs](self#the-regions)).
    fn merge_regions(snapshots: &[Vec<Mapping>], steps: &[HeapStep]) -> Vec<Region> {
        // start -> region; later snapshots replace what they overlap.
        let mut by_start: BTreeMap<u64, Region> = BTreeMap::new();
        for snap in snapshots {
            for (start, end, perm, name) in snap {
                let (start, end) = (*start, *end);
                let overlapping: Vec<u64> = by_start
                    .range(..end)
                    .filter(|(_, r)| r.end > start)
                    .map(|(&s, _)| s)
                    .collect();
                for s in overlapping {
                    by_start.remove(&s);
                }
                let Some(perm) = *perm else { continue };
                if end > LIMIT {
                    continue;
                }
                by_start.insert(
                    start,
                    Region {
                        start,
                        end,
                        perm,
                        name: name.clone(),
                        heap: false,
                    },
                );
            }
        }
        let mut regions: Vec<Region> = by_start.into_values().collect();
        for (p, _) in steps.iter().filter_map(|s| s.grant) {
            let i = regions.partition_point(|r| r.end <= p);
            if let Some(r) = regions.get_mut(i).filter(|r| r.start <= p) {
                r.heap = true;
            }
        }
        regions
    }

    /// The index of the region holding byte `addr`, if any.
    #[must_use]
    pub fn region_of(&self, addr: u64) -> Option<usize> {
        let i = self.regions.partition_point(|r| r.end <= addr);
        self.regions.get(i).filter(|r| r.start <= addr).map(|_| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "map 00400000-00401000 r-xp 00000000 fe:00 12 /bin/prog\n\
                        map 04035000-04036000 rwxp 00000000 00:00 0\n\
                        map 7fff0000-7fff1000 ---p 00000000 00:00 0\n";

    fn log(body: &str) -> String {
        format!("{HEADER}\nsync 0x600000\n{MAPS}{body}")
    }

    #[test]
    fn steps_follow_the_calls() {
        let l = HeapLog::parse(&log(
            "malloc 10 0x4035010\ncalloc 2 8 0x4035030\nrealloc 0x4035010 40 0x4035050\n\
             free 0x4035030\nfree 0x0\nmalloc 0 0x4035090\nfree 0x4035090\nend\n",
        ))
        .unwrap();
        assert_eq!(l.sync, 0x60_0000);
        assert!(l.complete);
        let g = |a, b| Some((a, b));
        assert_eq!(
            l.steps,
            vec![
                HeapStep {
                    revoke: None,
                    grant: g(0x403_5010, 0x403_501a)
                },
                HeapStep {
                    revoke: None,
                    grant: g(0x403_5030, 0x403_5040)
                },
                HeapStep {
                    revoke: g(0x403_5010, 0x403_501a),
                    grant: g(0x403_5050, 0x403_5078)
                },
                HeapStep {
                    revoke: g(0x403_5030, 0x403_5040),
                    grant: None
                },
                HeapStep::default(),
                HeapStep::default(),
                HeapStep::default(),
            ]
        );
        assert_eq!(l.unknown_frees, 1);
        assert_eq!(l.regions.len(), 2, "the guard mapping is left out");
        assert!(l.regions[1].heap && !l.regions[0].heap);
        assert_eq!(l.regions[0].perm, Perm::ExecuteRead);
        assert_eq!(l.region_of(0x403_5fff), Some(1));
        assert_eq!(l.region_of(0x403_6000), None);
    }

    #[test]
    fn a_later_snapshot_replaces_what_it_overlaps() {
        let l = HeapLog::parse(&log(
            "malloc 8 0x4035010\nmap 04035000-04056000 rw-p 00000000 00:00 0\nend\n",
        ))
        .unwrap();
        let r: Vec<(u64, u64)> = l.regions.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(r, vec![(0x40_0000, 0x40_1000), (0x403_5000, 0x405_6000)]);
    }
}
