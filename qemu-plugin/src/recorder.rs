//! What the plugin keeps while the guest runs, per vCPU, and the recording it writes at
//! exit.
//!
//! **Visits.** A visit is a maximal run of translation blocks of one domain on one vCPU. When
//! a vCPU runs a block of another domain than the one before it, the visit ends: it is
//! counted for its domain with the instructions its blocks ran (into a log2 histogram too),
//! and the change is counted by its edge: (from domain, to domain, the address of the last
//! instruction of the block before, the first address of the block after). The first block
//! a vCPU runs starts a visit without a change; the visit open at exit is counted as a visit.
//!
//! **Accesses.** The plugin hands [`Shard::access`] the loads and stores it wants (see
//! [`wanted`]): every access made while module code runs, and every access by any kernel
//! code into the module area. They are counted by (the instruction's domain, its address,
//! the target's domain, the target, load or store), with the largest size seen; a target in
//! static memory (the kernel image, the module area) is kept exactly, any other only as its
//! [`Place`] (and the core kernel's domain). Both domains are the ones [`Loads`] gave at
//! the time of the access: module memory changes hands as modules load.
//!
//! **The recording** is text, one record a line, sorted so that equal runs give equal files:
//!
//! ```text
//! mmp-qemu-recording 1
//! domain N NAME                      every domain: user, vmlinux, unmapped-module-memory,
//!                                    then load-1, load-2, ... (one per module load)
//! range N core|init START END        each load's memory at exit (hexadecimal, END exclusive)
//! vcpus N
//! insns N                            instructions run, all vCPUs
//! visits DOM COUNT INSNS             per domain: visits and the instructions they ran
//! hist DOM BUCKET COUNT              visits of DOM that ran [2^BUCKET, 2^(BUCKET+1)) instructions
//! change FROM TO FROM_PC TO_PC COUNT domain changes by edge (addresses hexadecimal)
//! access DOM PC TDOM TARGET SIZE r|w COUNT
//!                                    accesses by code of DOM at PC to TARGET (of domain TDOM):
//!                                    TARGET hexadecimal or a place (`@direct-map`, ...)
//! ```

//!
//! **The access stream** (optional) is binary: [`STREAM_MAGIC`], then one [`RECORD`]-byte
//! record for each instruction fetch (one per translation block run, its bytes) and each
//! load or store made while module code runs, in the order each vCPU made them:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | vCPU |
//! | 1..3 | domain (little-endian) |
//! | 3 | kind: 0 load, 1 store, 2 fetch |
//! | 4..6 | size in bytes (little-endian) |
//! | 6..14 | address (little-endian) |

use std::collections::HashMap;
use std::io::{self, Write};

use crate::map::{CORE, Loads, Place, UNMAPPED};

/// The first bytes of an access stream.
pub const STREAM_MAGIC: &[u8; 8] = b"MMPQSTR1";
/// Bytes of an access-stream record.
pub const RECORD: usize = 14;

/// What an access-stream record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A load.
    Load = 0,
    /// A store.
    Store = 1,
    /// The instructions of a translation block, fetched.
    Fetch = 2,
}

/// The access-stream record of `size` bytes at `addr`, by code of domain `dom` on `vcpu`
/// (see the [module docs](self)).
#[must_use]
pub fn stream_record(vcpu: u8, dom: u16, kind: StreamKind, size: u16, addr: u64) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[0] = vcpu;
    r[1..3].copy_from_slice(&dom.to_le_bytes());
    r[3] = kind as u8;
    r[4..6].copy_from_slice(&size.to_le_bytes());
    r[6..14].copy_from_slice(&addr.to_le_bytes());
    r
}

/// Histogram buckets: one per power of two of a visit's instructions.
pub const BUCKETS: usize = 64;

/// Whether the plugin records an access at `addr` made by code of domain `pc_domain`: any
/// access while module code runs (the module area, named or not), and any access into the
/// module area.
#[must_use]
pub fn wanted(pc_domain: u16, addr: u64) -> bool {
    pc_domain >= UNMAPPED || Place::of(addr) == Place::Modules
}

/// Visits of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visits {
    /// Visits that ended (or were open at exit).
    pub count: u64,
    /// Instructions they ran.
    pub insns: u64,
    /// `hist[b]`: visits that ran `[2^b, 2^(b+1))` instructions.
    pub hist: [u64; BUCKETS],
}

impl Default for Visits {
    fn default() -> Self {
        Visits {
            count: 0,
            insns: 0,
            hist: [0; BUCKETS],
        }
    }
}

impl Visits {
    fn add(&mut self, insns: u64) {
        self.count += 1;
        self.insns += insns;
        self.hist[bucket(insns)] += 1;
    }

    fn merge(&mut self, o: &Visits) {
        self.count += o.count;
        self.insns += o.insns;
        for (a, b) in self.hist.iter_mut().zip(o.hist.iter()) {
            *a += b;
        }
    }
}

/// The histogram bucket of a visit of `insns` instructions.
#[must_use]
pub fn bucket(insns: u64) -> usize {
    (63 - insns.max(1).leading_zeros()) as usize
}

/// A domain change's edge: from, to, last instruction before, first after.
pub type Edge = (u16, u16, u64, u64);
/// An access's key: the instruction's domain and address, the target's domain and the target
/// (an address, or a [`Place::code`]), and whether it stores.
pub type AccessKey = (u16, u64, u16, u64, bool);

/// One vCPU's state and counts. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Shard {
    /// The running visit's domain (none before the first block).
    dom: Option<u16>,
    /// Instructions of the running visit.
    visit_insns: u64,
    /// The last instruction of the last block.
    last_pc: u64,
    /// Instructions run.
    pub insns: u64,
    /// Visits by domain number.
    pub visits: Vec<Visits>,
    /// Domain changes by edge.
    pub changes: HashMap<Edge, u64>,
    /// Accesses: count and largest size in bytes.
    pub accesses: HashMap<AccessKey, (u64, u8)>,
}

impl Shard {
    /// The vCPU runs a block of `insns` instructions of domain `dom`, from `first_pc` to the
    /// instruction at `last_pc`.
    pub fn block(&mut self, dom: u16, first_pc: u64, insns: u32, last_pc: u64) {
        match self.dom {
            Some(d) if d == dom => {}
            Some(d) => {
                self.end_visit(d);
                *self
                    .changes
                    .entry((d, dom, self.last_pc, first_pc))
                    .or_insert(0) += 1;
                self.dom = Some(dom);
            }
            None => self.dom = Some(dom),
        }
        self.visit_insns += u64::from(insns);
        self.insns += u64::from(insns);
        self.last_pc = last_pc;
    }

    fn end_visit(&mut self, d: u16) {
        let k = usize::from(d);
        if self.visits.len() <= k {
            self.visits.resize_with(k + 1, Visits::default);
        }
        self.visits[k].add(self.visit_insns);
        self.visit_insns = 0;
    }

    /// The instruction at `pc`, of domain `dom`, accessed `size` bytes at `addr`, which
    /// belongs to domain `owner` (a store if `store`).
    pub fn access(&mut self, dom: u16, pc: u64, owner: u16, addr: u64, size: u8, store: bool) {
        let place = Place::of(addr);
        let (owner, target) = if place.is_static() {
            (owner, addr)
        } else {
            (CORE, place.code())
        };
        let e = self
            .accesses
            .entry((dom, pc, owner, target, store))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(size);
    }

    /// Ends the open visit (at exit).
    pub fn close(&mut self) {
        if let Some(d) = self.dom.take() {
            self.end_visit(d);
        }
    }

    /// Adds `o`'s counts into this shard's (both closed).
    pub fn merge(&mut self, o: &Shard) {
        self.insns += o.insns;
        if self.visits.len() < o.visits.len() {
            self.visits.resize_with(o.visits.len(), Visits::default);
        }
        for (a, b) in self.visits.iter_mut().zip(&o.visits) {
            a.merge(b);
        }
        for (k, v) in &o.changes {
            *self.changes.entry(*k).or_insert(0) += v;
        }
        for (k, v) in &o.accesses {
            let e = self.accesses.entry(*k).or_insert((0, 0));
            e.0 += v.0;
            e.1 = e.1.max(v.1);
        }
    }

    /// Writes the recording of these counts (closed and merged), with the modules' memory as
    /// `loads` learnt it, for `vcpus` vCPUs. See the [module docs](self) for the format.
    ///
    /// # Errors
    /// The writer's.
    pub fn write(&self, loads: &Loads, vcpus: usize, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "mmp-qemu-recording 1")?;
        write!(w, "{loads}")?;
        writeln!(w, "vcpus {vcpus}")?;
        writeln!(w, "insns {}", self.insns)?;
        for (d, v) in self.visits.iter().enumerate() {
            if v.count > 0 {
                writeln!(w, "visits {d} {} {}", v.count, v.insns)?;
            }
        }
        for (d, v) in self.visits.iter().enumerate() {
            for (b, &n) in v.hist.iter().enumerate() {
                if n > 0 {
                    writeln!(w, "hist {d} {b} {n}")?;
                }
            }
        }
        let mut changes: Vec<_> = self.changes.iter().collect();
        changes.sort_unstable();
        for ((f, t, a, b), n) in changes {
            writeln!(w, "change {f} {t} {a:x} {b:x} {n}")?;
        }
        let mut accesses: Vec<_> = self.accesses.iter().collect();
        accesses.sort_unstable();
        for ((dom, pc, owner, target, store), (n, size)) in accesses {
            let rw = if *store { 'w' } else { 'r' };
            match Place::from_code(*target) {
                Some(p) => writeln!(
                    w,
                    "access {dom} {pc:x} {owner} {} {size} {rw} {n}",
                    p.token()
                )?,
                None => writeln!(w, "access {dom} {pc:x} {owner} {target:x} {size} {rw} {n}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{CORE, USER};

    const EXT4: u64 = 0xffff_ffff_c0a0_0000;
    const K: u64 = 0xffff_ffff_8100_0000;

    fn loads() -> Loads {
        let mut l = Loads::new();
        l.begin();
        for a in (EXT4..EXT4 + 0x10000).step_by(4096) {
            l.core_store(a);
        }
        l
    }

    #[test]
    fn a_domain_change_is_counted_once_per_transition_with_the_instructions_of_the_visit() {
        let mut s = Shard::default();
        // core: two blocks (5 + 7 instructions), then ext4 (3 + 4), then core again (2).
        s.block(CORE, K, 5, K + 0x10);
        s.block(CORE, K + 0x20, 7, K + 0x40);
        s.block(3, EXT4, 3, EXT4 + 0x8);
        s.block(3, EXT4 + 0x100, 4, EXT4 + 0x110);
        s.block(CORE, K + 0x44, 2, K + 0x48);
        s.close();
        assert_eq!(s.insns, 21);
        assert_eq!(s.changes.len(), 2);
        assert_eq!(s.changes[&(CORE, 3, K + 0x40, EXT4)], 1);
        assert_eq!(s.changes[&(3, CORE, EXT4 + 0x110, K + 0x44)], 1);
        let core = &s.visits[usize::from(CORE)];
        assert_eq!((core.count, core.insns), (2, 14));
        assert_eq!(core.hist[bucket(12)], 1);
        assert_eq!(core.hist[bucket(2)], 1);
        let ext4 = &s.visits[3];
        assert_eq!((ext4.count, ext4.insns), (1, 7));
        assert_eq!(ext4.hist[2], 1, "7 instructions fall in [4, 8)");
    }

    #[test]
    fn the_same_edge_taken_again_adds_to_its_count() {
        let mut s = Shard::default();
        for _ in 0..3 {
            s.block(USER, 0x40_0000, 10, 0x40_0010);
            s.block(CORE, K, 10, K + 4);
        }
        s.close();
        assert_eq!(s.changes[&(USER, CORE, 0x40_0010, K)], 3);
        assert_eq!(s.changes[&(CORE, USER, K + 4, 0x40_0000)], 2);
        assert_eq!(s.visits[usize::from(USER)].count, 3);
        assert_eq!(s.visits[usize::from(CORE)].count, 3);
    }

    #[test]
    fn stream_records_are_laid_out_as_documented() {
        let r = stream_record(1, 0x0203, StreamKind::Fetch, 0x0405, 0x0607_0809_0a0b_0c0d);
        assert_eq!(r, [1, 3, 2, 2, 5, 4, 0x0d, 0x0c, 0x0b, 0x0a, 9, 8, 7, 6]);
        assert_eq!(STREAM_MAGIC.len(), 8);
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(3), 1);
        assert_eq!(bucket(4), 2);
        assert_eq!(bucket(3353), 11);
        assert_eq!(bucket(u64::MAX), 63);
    }

    #[test]
    fn accesses_keep_static_targets_exactly_and_dynamic_ones_by_place() {
        assert!(wanted(3, 0xffff_8880_0000_0000));
        assert!(wanted(UNMAPPED, K));
        assert!(wanted(CORE, EXT4 + 0x2000));
        assert!(!wanted(CORE, K + 0x100));
        assert!(!wanted(CORE, 0xffff_8880_0000_0000));
        let mut s = Shard::default();
        s.access(3, EXT4 + 4, CORE, 0xffff_8880_0000_1000, 8, false);
        s.access(3, EXT4 + 4, CORE, 0xffff_8880_0002_0000, 4, false);
        s.access(3, EXT4 + 4, CORE, K + 0x1000, 8, true);
        s.access(CORE, K + 8, 3, EXT4 + 0x3000, 2, false);
        // The same bytes after another module took them over.
        s.access(CORE, K + 8, 4, EXT4 + 0x3000, 2, false);
        let direct = Place::DirectMap.code();
        assert_eq!(s.accesses[&(3, EXT4 + 4, CORE, direct, false)], (2, 8));
        assert_eq!(s.accesses[&(3, EXT4 + 4, CORE, K + 0x1000, true)], (1, 8));
        assert_eq!(s.accesses[&(CORE, K + 8, 3, EXT4 + 0x3000, false)], (1, 2));
        assert_eq!(s.accesses[&(CORE, K + 8, 4, EXT4 + 0x3000, false)], (1, 2));
    }

    #[test]
    fn merged_shards_write_one_sorted_recording() {
        let mut a = Shard::default();
        a.block(CORE, K, 5, K + 4);
        a.block(3, EXT4, 5, EXT4 + 4);
        a.access(3, EXT4, 3, 0xffff_8880_0000_0000, 8, true);
        a.close();
        let mut b = Shard::default();
        b.block(CORE, K, 5, K + 4);
        b.block(3, EXT4, 5, EXT4 + 4);
        b.access(3, EXT4, 3, 0xffff_8880_0000_0000, 4, true);
        b.close();
        let mut m = Shard::default();
        m.merge(&a);
        m.merge(&b);
        let mut out = Vec::new();
        m.write(&loads(), 2, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "mmp-qemu-recording 1\n\
             domain 0 user\ndomain 1 vmlinux\ndomain 2 unmapped-module-memory\ndomain 3 load-1\n\
             range 3 core ffffffffc0a00000 ffffffffc0a10000\n\
             vcpus 2\ninsns 20\n\
             visits 1 2 10\nvisits 3 2 10\n\
             hist 1 2 2\nhist 3 2 2\n\
             change 1 3 ffffffff81000004 ffffffffc0a00000 2\n\
             access 3 ffffffffc0a00000 1 @direct-map 8 w 2\n"
        );
    }
}
