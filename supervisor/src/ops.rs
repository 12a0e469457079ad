//! The operation language of the supervisor's differential tests and fuzz target, and the
//! harness that runs each operation on the [`Supervisor`] and on its reference [`Model`] and
//! compares everything.
//!
//! Operations name domains, CPUs and addresses indirectly (an index into the domains and
//! addresses seen so far, plus an offset), so random bytes make mostly meaningful calls while
//! still reaching every bad-input class: stale ids, the wrong CPU, zero, wrapping and huge
//! lengths, addresses beyond the width. After every operation the harness checks that:
//! - the supervisor and the model returned the same result (value or typed error);
//! - a failed call left the supervisor's [`digest`](Supervisor::digest) unchanged;
//! - [`Supervisor::check_invariants`] holds;
//! - every word the operation touched (and its neighbours) has the same region, owner, seal,
//!   export, tracking, dirty mark, and per-domain permission and grant in both;
//! - the domain tree, fault policies, running domains, active stacks and fault log agree.
//!
//! [`Harness::finish`] compares every allocated word. [`run_bytes`] is the whole check for
//! one byte string: the fuzz target `supervisor_ops` calls it, and so do ordinary tests.

use arbitrary::{Arbitrary, Unstructured};
use mmp_domains::{Access, AddrWidth, PdId, PdKind, Perm, TableFormat};
use mmp_plb::PlbConfig;

use mmp_machine::MachineConfig;
use crate::model::{Held, Model};
use crate::policy::{ENTRY_BASE, ENTRY_LEN, FaultPolicy, SUPERVISOR_RETURN};
use crate::supervisor::{Supervisor, SupervisorConfig};
use mmp_gates::{ArgWindow, Gate};

/// An address operand. Decoded with weights: mostly addresses seen, rarely raw ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    /// The `idx`-th address seen (modulo how many), plus `words` words.
    Seen {
        /// Which address.
        idx: u8,
        /// Word offset.
        words: u8,
    },
    /// The `idx`-th address seen (modulo how many), plus `off` bytes (which may be unaligned
    /// or negative).
    Near {
        /// Which address.
        idx: u8,
        /// Byte offset.
        off: i16,
    },
    /// The `idx`-th region the calling domain owns (modulo how many; PD 0's first region if
    /// none), plus `words` words.
    Owned {
        /// Which region.
        idx: u8,
        /// Word offset.
        words: u8,
    },
    /// The `idx`-th run of words the calling domain holds by a grant (modulo how many; a seen
    /// address if none), plus `words` words (modulo the run's length).
    Held {
        /// Which run.
        idx: u8,
        /// Word offset.
        words: u8,
    },
    /// A word of the stack active on some CPU.
    Stack {
        /// Word offset from the stack's base.
        slot: u8,
    },
    /// The `idx`-th gate word (modulo how many): gates placed on allocated words, the entry
    /// points and PD 0's return gate.
    Gate {
        /// Which gate.
        idx: u8,
    },
    /// The entry points, plus `off` bytes.
    Entry {
        /// Byte offset.
        off: u8,
    },
    /// Any address.
    Raw(u64),
}

/// A length operand. Decoded with weights: mostly a few words, rarely raw lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// 0 to 255 bytes.
    Bytes(u8),
    /// 4 to 64 bytes in words.
    FewWords(u8),
    /// 4 to 1,024 bytes in words.
    Words(u8),
    /// 1 to 8 pages of 4 KiB.
    Pages(u8),
    /// Any length.
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Addr {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=64 => Addr::Seen {
                idx: u.arbitrary()?,
                words: u.arbitrary()?,
            },
            65..=79 => Addr::Gate {
                idx: u.arbitrary()?,
            },
            80..=139 => Addr::Owned {
                idx: u.arbitrary()?,
                words: u.arbitrary()?,
            },
            140..=179 => Addr::Held {
                idx: u.arbitrary()?,
                words: u.arbitrary()?,
            },
            180..=199 => Addr::Near {
                idx: u.arbitrary()?,
                off: u.arbitrary()?,
            },
            200..=229 => Addr::Stack {
                slot: u.arbitrary()?,
            },
            230..=241 => Addr::Entry {
                off: u.arbitrary()?,
            },
            _ => Addr::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Len {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=99 => Len::FewWords(u.arbitrary()?),
            100..=169 => Len::Words(u.arbitrary()?),
            170..=209 => Len::Bytes(u.arbitrary()?),
            210..=243 => Len::Pages(u.arbitrary()?),
            _ => Len::Raw(u.arbitrary()?),
        })
    }
}

/// One operation: a supervisor call, a context switch, or an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)] // the fields are the calls' arguments
pub enum Op {
    /// The context switch.
    Switch { cpu: u8, pd: u8 },
    /// `alloc_pd`.
    AllocPd { cpu: u8, user: bool },
    /// `free_pd`.
    FreePd { cpu: u8, pd: u8, recursive: bool },
    /// `alloc`.
    Alloc {
        cpu: u8,
        len: Len,
        place: Option<Addr>,
        stack: bool,
    },
    /// `free`.
    Free { cpu: u8, at: Addr, len: Option<Len> },
    /// `set_perm`.
    SetPerm {
        cpu: u8,
        at: Addr,
        len: Len,
        perm: u8,
        pd: u8,
        transitive: bool,
    },
    /// `mem_chown`.
    Chown { cpu: u8, at: Addr, len: Len, pd: u8 },
    /// Global read-only export.
    Export { cpu: u8, at: Addr, len: Len },
    /// `supr_set_perm`.
    SuprSetPerm {
        cpu: u8,
        at: Addr,
        len: Len,
        perm: u8,
        exclusive: bool,
        pd: u8,
    },
    /// `set_stack` of the `stack`-th stack allocated (or a seen address), with the frame
    /// base `fb_words` words above its base.
    SetStack {
        cpu: u8,
        stack: u8,
        on_cpu: u8,
        fb_words: u16,
    },
    /// `access_ok`.
    AccessOk {
        cpu: u8,
        pd: u8,
        at: Addr,
        len: Len,
        access: u8,
    },
    /// `seal`.
    Seal { cpu: u8, at: Addr, len: Len },
    /// `track` / untrack.
    Track {
        cpu: u8,
        at: Addr,
        len: Len,
        on: bool,
    },
    /// `take_dirty`.
    TakeDirty { cpu: u8, at: Addr, len: Len },
    /// Set a fault policy.
    SetPolicy {
        cpu: u8,
        pd: u8,
        policy: FaultPolicy,
    },
    /// A load.
    Load { cpu: u8, at: Addr, size: u8 },
    /// A store.
    Store {
        cpu: u8,
        at: Addr,
        size: u8,
        value: u64,
    },
    /// An instruction fetch.
    Fetch { cpu: u8, at: Addr, size: u8 },
    /// `set_gate`: `kind` picks a call gate into the `dest`-th domain, a return gate, or
    /// removal.
    SetGate {
        cpu: u8,
        pd: u8,
        at: Addr,
        kind: u8,
        dest: u8,
    },
    /// A call to `at` (or with `gate`, to that gate word, see [`Addr::Gate`]) returning to
    /// `ret`, with the stack pointer `down` words below the frame base, exporting `args % 5`
    /// words.
    Call {
        cpu: u8,
        gate: Option<u8>,
        at: Addr,
        ret: Addr,
        down: u8,
        args: u8,
        writable: bool,
    },
    /// A return at `at` (or with `gate`, at that gate word) to `to` (`None`: the newest
    /// frame's return address).
    Ret {
        cpu: u8,
        gate: Option<u8>,
        at: Addr,
        to: Option<Addr>,
    },
    /// A jump.
    Jump { cpu: u8, at: Addr },
    /// A well-behaved return: at a return gate in the running domain's table (the
    /// `idx`-th), to the newest frame's return address.
    Return { cpu: u8, idx: u8 },
}

/// Largest allocation the harness makes (the model keeps one entry per word).
const MAX_ALLOC: u64 = 1 << 14;

/// The supervisor and its model side by side. See the [module docs](self).
#[derive(Debug)]
pub struct Harness {
    /// The supervisor under test.
    pub sup: Supervisor,
    /// The reference model.
    pub model: Model,
    /// Every domain id seen (PD 0 and an id never issued first).
    ids: Vec<PdId>,
    /// Every address returned by `alloc`, and the entry points.
    addrs: Vec<u64>,
    /// Every stack allocated.
    stack_addrs: Vec<u64>,
    cpus: usize,
    /// Frames on all call stacks after the last transfer (to count crossings).
    depth: usize,
    /// Operations run.
    pub ops: usize,
    /// Operations that failed (identically in both).
    pub failed: usize,
    /// Per operation kind: (succeeded, failed), and per error kind the count.
    pub stats: std::collections::BTreeMap<String, (usize, usize)>,
}

/// Machine shapes the harness runs: table format, address width, CPUs, PLB.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Table format.
    pub format: TableFormat,
    /// Address width.
    pub width: AddrWidth,
    /// CPUs.
    pub cpus: usize,
    /// PLB entries (fully associative; 1 is the smallest PLB).
    pub plb_entries: usize,
}

impl Shape {
    /// The shape a selector byte picks: every table format (MLPT most often), both widths, a
    /// one-entry and a 16-entry PLB, one and two CPUs. Tests and the fuzz target share it.
    #[must_use]
    pub fn from_selector(i: u8) -> Shape {
        let format = match i % 8 {
            0..=4 => TableFormat::Mlpt,
            5 | 6 => TableFormat::Sst,
            _ => TableFormat::Flat,
        };
        Shape {
            format,
            width: if i % 5 == 3 {
                AddrWidth::Bits48
            } else {
                AddrWidth::Bits32
            },
            cpus: 1 + usize::from(i % 3 != 0),
            plb_entries: if i % 2 == 0 { 1 } else { 16 },
        }
    }
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            format: TableFormat::Mlpt,
            width: AddrWidth::Bits32,
            cpus: 2,
            plb_entries: 16,
        }
    }
}

impl Harness {
    /// A fresh supervisor (domain limit 10, so the limit is reached) and model.
    ///
    /// # Panics
    /// If the shape is not a valid machine (the harness's own shapes always are).
    #[must_use]
    pub fn new(shape: Shape) -> Harness {
        let max_pds = 10;
        let plb = PlbConfig {
            entries: shape.plb_entries.max(1),
            ways: shape.plb_entries.max(1),
            ..PlbConfig::default()
        };
        let cfg = SupervisorConfig {
            machine: MachineConfig {
                cpus: shape.cpus,
                width: shape.width,
                format: shape.format,
                plb,
                max_pds,
            },
            table_memory_cap: None,
        };
        let sup = Supervisor::new(cfg).expect("the harness's shapes are valid");
        Harness {
            sup,
            model: Model::new(shape.width, shape.cpus, max_pds),
            ids: vec![PdId::SUPERVISOR, PdId::from_raw(0x7fff_0fff)],
            addrs: vec![ENTRY_BASE],
            stack_addrs: Vec::new(),
            cpus: shape.cpus,
            depth: 0,
            ops: 0,
            failed: 0,
            stats: std::collections::BTreeMap::new(),
        }
    }

    /// Runs the standard prelude (through [`Harness::step`], so it is checked too): three
    /// domains from PD 0, the first (A) on CPU 0 with a page, a stack and a child (C), the
    /// second (B) on CPU 1 with a small region, and a grant chain over A's page: A gives B
    /// read-write transitively, B passes it on to the third (U) and read-only to C; B places
    /// a call gate into its region in A's table and a return gate in its own.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn prelude(&mut self) -> Result<(), String> {
        for op in [
            Op::AllocPd {
                cpu: 0,
                user: false,
            },
            Op::AllocPd {
                cpu: 0,
                user: false,
            },
            Op::AllocPd { cpu: 0, user: true },
            Op::Switch { cpu: 0, pd: 2 },
            Op::Alloc {
                cpu: 0,
                len: Len::Pages(1),
                place: None,
                stack: false,
            },
            Op::Alloc {
                cpu: 0,
                len: Len::Words(255),
                place: None,
                stack: true,
            },
            Op::AllocPd {
                cpu: 0,
                user: false,
            },
            Op::SetStack {
                cpu: 0,
                stack: 0,
                on_cpu: 0,
                fb_words: 128,
            },
            Op::Switch { cpu: 1, pd: 3 },
            Op::Alloc {
                cpu: 1,
                len: Len::Bytes(200),
                place: None,
                stack: false,
            },
            // A grant chain over the first domain's page: A -> B -> U (transitive), B -> C.
            Op::SetPerm {
                cpu: 0,
                at: Addr::Seen { idx: 1, words: 0 },
                len: Len::Pages(0),
                perm: 2,
                pd: 3,
                transitive: true,
            },
            Op::SetPerm {
                cpu: 1,
                at: Addr::Seen { idx: 1, words: 0 },
                len: Len::Words(255),
                perm: 2,
                pd: 4,
                transitive: true,
            },
            Op::SetPerm {
                cpu: 1,
                at: Addr::Seen { idx: 1, words: 128 },
                len: Len::Words(255),
                perm: 1,
                pd: 5,
                transitive: false,
            },
            // B's region is code: a call gate into it in A's table, a return gate in B's.
            Op::SetGate {
                cpu: 1,
                pd: 2,
                at: Addr::Owned { idx: 0, words: 4 },
                kind: 0,
                dest: 3,
            },
            Op::SetGate {
                cpu: 1,
                pd: 3,
                at: Addr::Owned { idx: 0, words: 8 },
                kind: 2,
                dest: 0,
            },
        ] {
            self.step(op)?;
        }
        Ok(())
    }

    fn cpu(&self, c: u8) -> usize {
        if c == u8::MAX {
            self.cpus
        } else {
            usize::from(c) % self.cpus
        }
    }

    fn pd(&self, i: u8) -> PdId {
        self.ids[usize::from(i) % self.ids.len()]
    }

    fn addr(&self, a: Addr, cpu: usize) -> u64 {
        let seen = |idx: u8| self.addrs[usize::from(idx) % self.addrs.len()];
        match a {
            Addr::Owned { idx, words } => {
                let me = self
                    .model
                    .running
                    .get(cpu)
                    .copied()
                    .unwrap_or(PdId::SUPERVISOR);
                let mine: Vec<(u64, u64)> = self
                    .sup
                    .regions()
                    .iter()
                    .filter(|r| r.owner == me)
                    .map(|r| (r.start, r.end - r.start))
                    .collect();
                match mine.get(usize::from(idx) % mine.len().max(1)) {
                    Some(&(start, n)) => 4 * (start + u64::from(words) % n),
                    None => seen(idx) + 4 * u64::from(words),
                }
            }
            Addr::Held { idx, words } => {
                let me = self
                    .model
                    .running
                    .get(cpu)
                    .copied()
                    .unwrap_or(PdId::SUPERVISOR);
                let held = self.sup.grants_held(me);
                match held.get(usize::from(idx) % held.len().max(1)) {
                    Some(&(a, b, _)) => 4 * (a + u64::from(words) % (b - a)),
                    None => seen(idx) + 4 * u64::from(words),
                }
            }
            Addr::Seen { idx, words } => seen(idx) + 4 * u64::from(words),
            Addr::Near { idx, off } => seen(idx).wrapping_add_signed(i64::from(off)),
            Addr::Stack { slot } => {
                let base = self.model.stacks.iter().flatten().next().map_or(0, |s| s.0);
                base + 4 * u64::from(slot)
            }
            Addr::Entry { off } => ENTRY_BASE + u64::from(off),
            Addr::Gate { idx } => {
                // Half the time a gate in the running domain's own table (one it can use),
                // a quarter any placed gate or PD 0's return gate, a quarter an entry point.
                let me = self.model.running.get(cpu).copied();
                let mut gates: Vec<u64> = self
                    .model
                    .words
                    .iter()
                    .filter(|(_, x)| {
                        !x.gates.is_empty()
                            && (idx % 4 == 2 || me.is_some_and(|me| x.gates.contains_key(&me)))
                    })
                    .map(|(&w, _)| w * 4)
                    .collect();
                if idx % 4 == 2 || gates.is_empty() || me == Some(PdId::SUPERVISOR) {
                    gates.push(SUPERVISOR_RETURN);
                }
                if idx % 4 == 3 {
                    gates = (0..ENTRY_LEN / 4).map(|i| ENTRY_BASE + 4 * i).collect();
                }
                gates[usize::from(idx / 4) % gates.len()]
            }
            Addr::Raw(x) => x,
        }
    }

    fn len(l: Len) -> u64 {
        match l {
            Len::Bytes(b) => u64::from(b),
            Len::FewWords(w) => 4 * (u64::from(w % 16) + 1),
            Len::Words(w) => 4 * (u64::from(w) + 1),
            Len::Pages(p) => 4096 * (u64::from(p % 8) + 1),
            Len::Raw(x) => x,
        }
    }

    fn alloc_len(&self, l: Len) -> u64 {
        let x = Self::len(l);
        if x <= MAX_ALLOC || x > self.sup.config().machine.width.byte_limit() {
            x
        } else {
            x % MAX_ALLOC + 1
        }
    }

    fn perm(p: u8) -> Perm {
        Perm::from_bits(u64::from(p % 4))
    }

    fn access(a: u8) -> Access {
        match a % 3 {
            0 => Access::Read,
            1 => Access::Write,
            _ => Access::Execute,
        }
    }

    /// Runs one operation on both and checks everything the [module docs](self) list.
    ///
    /// # Errors
    /// A description of the first disagreement or broken invariant.
    #[allow(clippy::too_many_lines)] // one arm per operation
    pub fn step(&mut self, op: Op) -> Result<(), String> {
        self.ops += 1;
        let before = self.sup.digest();
        let mismatch = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            format!("{op:?}:\n  supervisor: {a:?}\n  model:      {b:?}")
        };
        // (ok, words to compare, compare everything)
        let (ok, span, all): (bool, Option<(u64, u64)>, bool) = match op {
            Op::Switch { cpu, pd } => {
                let (cpu, pd) = (self.cpu(cpu), self.pd(pd));
                let a = self.sup.switch(cpu, pd);
                let b = self.model.switch(cpu, pd);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), None, false)
            }
            Op::AllocPd { cpu, user } => {
                let cpu = self.cpu(cpu);
                let kind = if user { PdKind::User } else { PdKind::Kernel };
                let a = self.sup.alloc_pd(cpu, kind);
                let id = *a.as_ref().unwrap_or(&PdId::from_raw(u32::MAX));
                let b = self.model.alloc_pd(cpu, kind, id);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                if let Ok(id) = a {
                    self.ids.push(id);
                }
                // Its entry-point grants; its global read-only grants are compared at the end.
                let entry = (ENTRY_BASE / 4, (ENTRY_BASE + ENTRY_LEN) / 4);
                (self.note(op, &a), Some(entry), false)
            }
            Op::FreePd { cpu, pd, recursive } => {
                let (cpu, pd) = (self.cpu(cpu), self.pd(pd));
                let a = self.sup.free_pd(cpu, pd, recursive);
                let b = self.model.free_pd(cpu, pd, recursive);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), None, true)
            }
            Op::Alloc {
                cpu,
                len,
                place,
                stack,
            } => {
                let cpu = self.cpu(cpu);
                let (n, place) = (self.alloc_len(len), place.map(|p| self.addr(p, cpu)));
                let a = self.sup.alloc(cpu, n, place, stack);
                let b = self.model.alloc(cpu, n, place, stack);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                if let Ok(x) = a {
                    self.addrs.push(x);
                    if stack {
                        self.stack_addrs.push(x);
                    }
                }
                let span = a.as_ref().ok().map(|&x| (x / 4, (x + n).div_ceil(4)));
                (self.note(op, &a), span, false)
            }
            Op::Free { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                let at = self.addr(at, cpu);
                let len = len.map(Self::len);
                let span = len.map_or((at / 4, at / 4 + 1), |l| {
                    (at / 4, at.saturating_add(l).div_ceil(4))
                });
                let a = self.sup.free(cpu, at, len);
                let b = self.model.free(cpu, at, len);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span), len.is_none() && a.is_ok())
            }
            Op::SetPerm {
                cpu,
                at,
                len,
                perm,
                pd,
                transitive,
            } => {
                let cpu = self.cpu(cpu);
                let (at, len) = (self.addr(at, cpu), Self::len(len));
                let (perm, pd) = (Self::perm(perm), self.pd(pd));
                let a = self.sup.set_perm(cpu, at, len, perm, pd, transitive);
                let b = self.model.set_perm(cpu, at, len, perm, pd, transitive);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                if a.is_ok() {
                    let caller = self.model.running[cpu];
                    let by = if self.sup.owner(at) == Some(caller) {
                        "SetPerm+owner"
                    } else {
                        "SetPerm+holder"
                    };
                    self.stats.entry(by.into()).or_default().0 += 1;
                    if transitive {
                        self.stats.entry("SetPerm+transitive".into()).or_default().0 += 1;
                    }
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::Chown { cpu, at, len, pd } => {
                let cpu = self.cpu(cpu);
                let (at, len, pd) = (self.addr(at, cpu), Self::len(len), self.pd(pd));
                let a = self.sup.mem_chown(cpu, at, len, pd);
                let b = self.model.mem_chown(cpu, at, len, pd);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::Export { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                let (at, len) = (self.addr(at, cpu), Self::len(len));
                let a = self.sup.export_read_only(cpu, at, len);
                let b = self.model.export_read_only(cpu, at, len);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::SuprSetPerm {
                cpu,
                at,
                len,
                perm,
                exclusive,
                pd,
            } => {
                let cpu = self.cpu(cpu);
                let (at, len) = (self.addr(at, cpu), Self::len(len));
                let (perm, pd) = (Self::perm(perm), self.pd(pd));
                let a = self.sup.supr_set_perm(cpu, at, len, perm, exclusive, pd);
                let b = self.model.supr_set_perm(cpu, at, len, perm, exclusive, pd);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::SetStack {
                cpu,
                stack,
                on_cpu,
                fb_words,
            } => {
                let (cpu, on_cpu) = (self.cpu(cpu), self.cpu(on_cpu));
                let stack = if self.stack_addrs.is_empty() || stack == u8::MAX {
                    self.addr(
                        Addr::Seen {
                            idx: stack,
                            words: 0,
                        },
                        cpu,
                    )
                } else {
                    self.stack_addrs[usize::from(stack) % self.stack_addrs.len()]
                };
                let fb = if fb_words & 0x8000 == 0 {
                    stack.wrapping_add(4 * u64::from(fb_words % 4097))
                } else {
                    stack.wrapping_add(u64::from(fb_words & 0x7fff))
                };
                let a = self.sup.set_stack(cpu, stack, on_cpu, fb);
                let b = self.model.set_stack(cpu, stack, on_cpu, fb);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), None, false)
            }
            Op::AccessOk {
                cpu,
                pd,
                at,
                len,
                access,
            } => {
                let cpu = self.cpu(cpu);
                let (pd, at, len) = (self.pd(pd), self.addr(at, cpu), Self::len(len));
                let access = Self::access(access);
                let a = self.sup.access_ok(cpu, pd, at, len, access);
                let b = self.model.access_ok(cpu, pd, at, len, access);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), None, false)
            }
            Op::Seal { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                let (at, len) = (self.addr(at, cpu), Self::len(len));
                let a = self.sup.seal(cpu, at, len);
                let b = self.model.seal(cpu, at, len);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::Track { cpu, at, len, on } => {
                let cpu = self.cpu(cpu);
                let (at, len) = (self.addr(at, cpu), Self::len(len));
                let a = self.sup.track(cpu, at, len, on);
                let b = self.model.track(cpu, at, len, on);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::TakeDirty { cpu, at, len } => {
                let cpu = self.cpu(cpu);
                let (at, len) = (self.addr(at, cpu), Self::len(len));
                let a = self.sup.take_dirty(cpu, at, len);
                let b = self.model.take_dirty(cpu, at, len);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, len)), false)
            }
            Op::SetPolicy { cpu, pd, policy } => {
                let (cpu, pd) = (self.cpu(cpu), self.pd(pd));
                let a = self.sup.set_fault_policy(cpu, pd, policy);
                let b = self.model.set_fault_policy(cpu, pd, policy);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), None, false)
            }
            Op::Load { cpu, at, size } | Op::Fetch { cpu, at, size } => {
                let cpu = self.cpu(cpu);
                let (at, size) = (self.addr(at, cpu), u64::from(size % 9));
                let (a, b) = if matches!(op, Op::Load { .. }) {
                    (
                        self.sup.load(cpu, at, size),
                        self.model.access(cpu, at, size, Access::Read, 0),
                    )
                } else {
                    (
                        self.sup.fetch(cpu, at, size),
                        self.model.access(cpu, at, size, Access::Execute, 0),
                    )
                };
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                // An access changes state (a kill, a record) even when it faults.
                (true, None, killed(&a))
            }
            Op::Store {
                cpu,
                at,
                size,
                value,
            } => {
                let cpu = self.cpu(cpu);
                let (at, size) = (self.addr(at, cpu), u64::from(size % 9));
                let a = self.sup.store(cpu, at, size, value);
                let b = self
                    .model
                    .access(cpu, at, size, Access::Write, value)
                    .map(|_| ());
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (true, Some(span(at, size.max(1))), killed(&a))
            }
            Op::SetGate {
                cpu,
                pd,
                at,
                kind,
                dest,
            } => {
                let cpu = self.cpu(cpu);
                let (pd, at) = (self.pd(pd), self.addr(at, cpu));
                let gate = match kind % 4 {
                    0 | 1 => Some(Gate::Call {
                        dest: self.pd(dest),
                    }),
                    2 => Some(Gate::Return),
                    _ => None,
                };
                let a = self.sup.set_gate(cpu, pd, at, gate);
                let b = self.model.set_gate(cpu, pd, at, gate);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                (self.note(op, &a), Some(span(at, 4)), false)
            }
            Op::Call {
                cpu,
                gate,
                at,
                ret,
                down,
                args,
                writable,
            } => {
                let cpu = self.cpu(cpu);
                let at = gate.map_or(at, |idx| Addr::Gate { idx });
                let (at, ret) = (self.addr(at, cpu), self.addr(ret, cpu));
                let fb = self.model.regs.get(cpu).map_or(0, |r| r.fb);
                let sp = fb.wrapping_sub(4 * (u64::from(down) + 1));
                let args = ArgWindow {
                    words: u32::from(args % 5),
                    writable,
                };
                let a = self.sup.call(cpu, at, ret, sp, args);
                let b = self.model.call(cpu, at, ret, sp, args);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                self.note_transfer(op, &a);
                (true, None, killed(&a))
            }
            Op::Ret { cpu, gate, at, to } => {
                let cpu = self.cpu(cpu);
                let at = self.addr(gate.map_or(at, |idx| Addr::Gate { idx }), cpu);
                let to = match to {
                    Some(t) => self.addr(t, cpu),
                    None => self.newest_return(cpu),
                };
                self.ret_both(op, cpu, at, to)?
            }
            Op::Return { cpu, idx } => {
                let cpu = self.cpu(cpu);
                let me = self.model.running.get(cpu).copied();
                let mut at: Vec<u64> = self
                    .model
                    .words
                    .iter()
                    .filter(|(_, x)| me.is_some_and(|me| x.gates.get(&me) == Some(&Gate::Return)))
                    .map(|(&w, _)| w * 4)
                    .collect();
                at.push(SUPERVISOR_RETURN);
                let at = at[usize::from(idx) % at.len()];
                let to = self.newest_return(cpu);
                self.ret_both(op, cpu, at, to)?
            }
            Op::Jump { cpu, at } => {
                let cpu = self.cpu(cpu);
                let at = self.addr(at, cpu);
                let a = self.sup.jump(cpu, at);
                let b = self.model.jump(cpu, at);
                if a != b {
                    return Err(mismatch(&a, &b));
                }
                self.note_transfer(op, &a);
                (true, None, killed(&a))
            }
        };
        let name = format!("{op:?}");
        let name = name.split([' ', '{']).next().unwrap_or("?").to_string();
        let e = self.stats.entry(name).or_default();
        if ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        if !ok {
            self.failed += 1;
            let after = self.sup.digest();
            if after != before {
                return Err(format!("{op:?} failed but changed the supervisor's state"));
            }
        }
        self.sup
            .check_invariants()
            .map_err(|e| format!("after {op:?}: invariant broken: {e}"))?;
        self.compare_globals()
            .map_err(|e| format!("after {op:?}: {e}"))?;
        if all {
            self.finish().map_err(|e| format!("after {op:?}: {e}"))?;
        } else if let Some((lo, hi)) = span {
            let hi = hi.min(lo.saturating_add(4096)).min(self.model_limit());
            for w in lo.saturating_sub(2)..hi.saturating_add(2).min(self.model_limit()) {
                self.compare_word(w)
                    .map_err(|e| format!("after {op:?}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Counts a call's error kind in [`Harness::stats`] (as `Op/Error`); true if it succeeded.
    fn note<T>(&mut self, op: Op, r: &Result<T, crate::policy::SupervisorError>) -> bool {
        if let Err(e) = r {
            let name = format!("{op:?}");
            let name = name.split([' ', '{']).next().unwrap_or("?");
            let err = format!("{e:?}");
            let err = err.split([' ', '{', '(']).next().unwrap_or("?");
            self.stats.entry(format!("{name}/{err}")).or_default().1 += 1;
        }
        r.is_ok()
    }

    /// The return address of `cpu`'s newest frame (0 if none), from the model.
    fn newest_return(&self, cpu: usize) -> u64 {
        self.model
            .calls
            .get(cpu)
            .and_then(|c| c.last())
            .map_or(0, |f| f.ret_addr)
    }

    /// Runs a return on both and compares; the step's (ok, span, compare-all) triple.
    #[allow(clippy::type_complexity)]
    fn ret_both(
        &mut self,
        op: Op,
        cpu: usize,
        at: u64,
        to: u64,
    ) -> Result<(bool, Option<(u64, u64)>, bool), String> {
        let a = self.sup.ret(cpu, at, to);
        let b = self.model.ret(cpu, at, to);
        if a != b {
            return Err(format!("{op:?}:\n  supervisor: {a:?}\n  model:      {b:?}"));
        }
        self.note_transfer(op, &a);
        Ok((true, None, killed(&a)))
    }

    /// Counts a transfer's outcome in [`Harness::stats`]: `Op/ok` or `Op/FaultKind`.
    fn note_transfer<T>(&mut self, op: Op, r: &Result<T, crate::policy::FaultReport>) {
        let name = format!("{op:?}");
        let name = name.split([' ', '{']).next().unwrap_or("?");
        let what = match r {
            Ok(_) if self.model.calls.iter().map(Vec::len).sum::<usize>() != self.depth => {
                "cross".to_string()
            }
            Ok(_) => "ok".to_string(),
            Err(e) => {
                let k = format!("{:?}", e.fault.kind);
                k.split([' ', '{']).next().unwrap_or("?").to_string()
            }
        };
        self.stats.entry(format!("{name}/{what}")).or_default().0 += 1;
        self.depth = self.model.calls.iter().map(Vec::len).sum();
    }

    fn model_limit(&self) -> u64 {
        self.sup.config().machine.width.word_limit()
    }

    fn compare_globals(&self) -> Result<(), String> {
        let pds = self.sup.pds();
        let mpds: Vec<PdId> = self.model.pds.keys().copied().collect();
        if pds != mpds {
            return Err(format!("domains differ: {pds:?} vs {mpds:?}"));
        }
        for (&pd, n) in &self.model.pds {
            if self.sup.parent(pd) != Some(n.parent) || self.sup.fault_policy(pd) != Some(n.policy)
            {
                return Err(format!("{pd}: parent or policy differ"));
            }
        }
        for cpu in 0..self.cpus {
            let running = self.sup.machine().running(cpu).ok();
            if running != Some(self.model.running[cpu]) {
                return Err(format!(
                    "CPU {cpu} runs {running:?} vs {}",
                    self.model.running[cpu]
                ));
            }
            let m = self.sup.machine();
            let regs = m.frame_regs(cpu).ok();
            if regs != Some(self.model.regs[cpu]) {
                return Err(format!(
                    "CPU {cpu}'s frame registers: {regs:?} vs {:?}",
                    self.model.regs[cpu]
                ));
            }
            let frames = m.call_stack(cpu).map(|c| c.frames().to_vec()).ok();
            if frames.as_ref() != Some(&self.model.calls[cpu]) {
                return Err(format!(
                    "CPU {cpu}'s call stack: {frames:?} vs {:?}",
                    self.model.calls[cpu]
                ));
            }
            let s = self.sup.active_stack(cpu).map(|s| (s.base, s.fb));
            if s != self.model.stacks[cpu] {
                return Err(format!(
                    "CPU {cpu}'s stack: {s:?} vs {:?}",
                    self.model.stacks[cpu]
                ));
            }
        }
        if self.sup.faults() != self.model.faults.as_slice() {
            return Err("fault logs differ".into());
        }
        let crossings: std::collections::BTreeMap<(PdId, PdId), u64> = self
            .sup
            .machine()
            .crossing_totals()
            .pairs()
            .into_iter()
            .collect();
        if crossings != self.model.crossings {
            return Err(format!(
                "crossings: {crossings:?} vs {:?}",
                self.model.crossings
            ));
        }
        Ok(())
    }

    /// Compares one word in every respect.
    fn compare_word(&self, w: u64) -> Result<(), String> {
        let addr = w * 4;
        let r = self.sup.region_at(addr);
        let x = self.model.words.get(&w);
        let here = match (r, x) {
            (None, None) => None,
            (Some(r), Some(x)) => {
                if (r.start, r.end) != x.region || r.owner != x.owner || r.kind != x.kind {
                    return Err(format!("word {addr:#x}: region {r:?} vs {x:?}"));
                }
                Some(x)
            }
            _ => return Err(format!("word {addr:#x}: region {r:?} vs {x:?}")),
        };
        let m = self.sup.machine();
        let flags = (
            self.sup.is_sealed(addr),
            self.sup.is_global(addr),
            m.tracked().get(w).is_some(),
            m.dirty().contains(&w),
        );
        let mflags = here.map_or((false, false, false, false), |x| {
            (x.sealed, x.global, x.tracked, x.dirty)
        });
        if flags != mflags {
            return Err(format!("word {addr:#x}: flags {flags:?} vs {mflags:?}"));
        }
        for pd in std::iter::once(PdId::SUPERVISOR).chain(self.model.pds.keys().copied()) {
            let (g, mg) = (self.sup.gate(pd, addr), self.model.gate(pd, w));
            if g != mg {
                return Err(format!("word {addr:#x}, {pd}'s gate: {g:?} vs {mg:?}"));
            }
        }
        for &pd in self.model.pds.keys() {
            let held = here.and_then(|x| x.held.get(&pd).copied());
            let mine = (self.sup.perm(pd, addr), self.sup.grant(pd, addr));
            let model = held.map_or((Perm::None, None), |Held { perm, grant }| (perm, grant));
            if mine != model {
                return Err(format!("word {addr:#x}, {pd}: {mine:?} vs {model:?}"));
            }
        }
        Ok(())
    }

    /// Compares every word the model has allocated, and the regions' edges.
    ///
    /// # Errors
    /// The first disagreement.
    pub fn finish(&self) -> Result<(), String> {
        let regions = self.sup.regions();
        let mut n = 0u64;
        for r in &regions {
            n += r.end - r.start;
            for w in r.start..r.end {
                self.compare_word(w)?;
            }
            if r.start > 0 {
                self.compare_word(r.start - 1)?;
            }
            if r.end < self.model_limit() {
                self.compare_word(r.end)?;
            }
        }
        if n != self.model.words.len() as u64 {
            return Err(format!(
                "{n} words allocated vs {} in the model",
                self.model.words.len()
            ));
        }
        Ok(())
    }
}

fn killed<T>(r: &Result<T, crate::policy::FaultReport>) -> bool {
    matches!(r, Err(e) if e.action == crate::policy::FaultAction::Killed)
}

fn span(at: u64, len: u64) -> (u64, u64) {
    (at / 4, at.saturating_add(len).div_ceil(4))
}

/// The fuzz target's whole body: the first byte picks the [`Shape`], the rest are
/// operations (at most 300).
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn fuzz_one(data: &[u8]) -> Result<(), String> {
    let Some((&sel, rest)) = data.split_first() else {
        return Ok(());
    };
    run_bytes(Shape::from_selector(sel), rest, 300).map(|_| ())
}

/// Runs the prelude and then operations decoded from `data` (at most `max_ops`), checking
/// each; then compares everything. Returns the harness for statistics.
///
/// # Errors
/// The first disagreement or broken invariant.
pub fn run_bytes(shape: Shape, data: &[u8], max_ops: usize) -> Result<Harness, String> {
    let mut h = Harness::new(shape);
    h.prelude()?;
    let mut u = Unstructured::new(data);
    for _ in 0..max_ops {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        h.step(op)?;
    }
    h.finish()?;
    Ok(h)
}
