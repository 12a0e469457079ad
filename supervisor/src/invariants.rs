//! The digest of the whole policy state, and the one invariant checker that unit tests,
//! proptests, the fuzz target and the reference model's differential driver all call.

use std::hash::{Hash, Hasher};

use mmp_domains::table::runs;
use mmp_domains::{ByteAddr, PdId, Perm, WordAddr, WordRange};
use mmp_gates::{FrameRegs, Gate};
use mmp_machine::{MachineInvariantError, SegMapInvariantError};

use crate::buddy::BuddyInvariantError;
use crate::policy::{ENTRY_WORDS, RegionKind, SUPERVISOR_RETURN};
use crate::region_map::Region;
use crate::supervisor::{ActiveStack, Supervisor};

/// A broken invariant of the supervisor's policy state (or of the machine under it). Every
/// variant names the domain, words or CPU involved; addresses are bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyInvariantError {
    /// The machine's own invariants (tables, CPUs, call stacks, PLB consistency).
    #[error(transparent)]
    Machine(#[from] MachineInvariantError),
    /// The buddy allocator's own invariants.
    #[error(transparent)]
    Buddy(#[from] BuddyInvariantError),
    /// A grant, seal or export map is not canonical.
    #[error(transparent)]
    SegMap(#[from] SegMapInvariantError),
    /// A region is empty, overlaps the one before, or passes the width.
    #[error("bad region {region:?}")]
    BadRegion {
        /// The region.
        region: Region,
    },
    /// A region's owner is dead.
    #[error("region {region:?} has a dead owner")]
    DeadOwner {
        /// The region.
        region: Region,
    },
    /// A stack region's creator is dead, or its owner is not PD 0.
    #[error("stack {region:?}: bad creator or owner")]
    BadStackRegion {
        /// The region.
        region: Region,
    },
    /// The buddy allocator's free space and the regions leave a gap or overlap.
    #[error("buddy allocator and regions disagree at {at:#x} (next range at {next:#x})")]
    BuddyDisagrees {
        /// Where the covered space ends.
        at: ByteAddr,
        /// Where the next range starts.
        next: ByteAddr,
    },
    /// The buddy allocator's free space and the regions do not reach the width.
    #[error("buddy allocator and regions end at {at:#x}")]
    BuddyEnd {
        /// Where they end.
        at: ByteAddr,
    },
    /// A domain's parent is dead.
    #[error("{pd}'s parent {parent} is dead")]
    DeadParent {
        /// The domain.
        pd: PdId,
        /// Its parent.
        parent: PdId,
    },
    /// Following parents from a domain does not reach PD 0.
    #[error("{pd} is not below PD 0 in the tree")]
    NotBelowSupervisor {
        /// The domain.
        pd: PdId,
    },
    /// A live domain has no table on the machine.
    #[error("{pd} has no table")]
    NoTable {
        /// The domain.
        pd: PdId,
    },
    /// Grants are kept for a domain that does not exist.
    #[error("grants kept for dead {pd}")]
    GrantsOfDeadPd {
        /// The domain.
        pd: PdId,
    },
    /// A domain's grant map is kept though it holds no grant.
    #[error("an empty grant map is kept for {pd}")]
    EmptyGrantMap {
        /// The domain.
        pd: PdId,
    },
    /// A domain holds a permission on words no region holds.
    #[error("{pd} holds {perm} on unowned words [{start:#x}, {end:#x})")]
    HoldsUnowned {
        /// The domain.
        pd: PdId,
        /// What it holds.
        perm: Perm,
        /// First byte.
        start: ByteAddr,
        /// End byte.
        end: ByteAddr,
    },
    /// A domain may write a sealed word.
    #[error("{pd} can write sealed word {addr:#x}")]
    WritableSealed {
        /// The domain.
        pd: PdId,
        /// The word's byte address.
        addr: ByteAddr,
    },
    /// A sealed or exported word is not allocated.
    #[error("sealed or exported word {addr:#x} is unallocated")]
    UnallocatedMark {
        /// The word's byte address.
        addr: ByteAddr,
    },
    /// A CPU's active stack is not a stack segment reaching its frame base.
    #[error("CPU {cpu}'s active stack {stack:?} is not a stack")]
    NotAStack {
        /// The CPU.
        cpu: usize,
        /// The active stack.
        stack: ActiveStack,
    },
    /// A CPU's stack limit register is not its active stack's base.
    #[error("CPU {cpu}'s stack limit {sl:#x} is not its active stack's base")]
    StackLimit {
        /// The CPU.
        cpu: usize,
        /// The stack limit register.
        sl: ByteAddr,
    },
    /// A CPU without an active stack has frame registers, or frames from a stack (calls
    /// made with no stack push frame base 0).
    #[error("CPU {cpu} has no active stack but frame registers {regs:?} and {depth} frames")]
    StrayFrames {
        /// The CPU.
        cpu: usize,
        /// Its frame registers.
        regs: FrameRegs,
        /// Frames on its call stack.
        depth: usize,
    },
    /// PD 0's table lacks its return gate, or holds a gate off the heap.
    #[error("PD 0's gates are {gates:?}: its return gate and gates on heap words expected")]
    SupervisorGates {
        /// PD 0's gates, by word.
        gates: Vec<(WordAddr, Gate)>,
    },
    /// A gate lies outside heap memory and the entry points.
    #[error("{pd} has gate {gate:?} at {addr:#x}")]
    StrayGate {
        /// The domain whose table holds it.
        pd: PdId,
        /// The gate.
        gate: Gate,
        /// The word's byte address.
        addr: ByteAddr,
    },
    /// On an entry word, a domain's execute-read and its call gate into PD 0 disagree.
    #[error("{pd}'s entry word {addr:#x}: execute-read {held}, gate {gated}")]
    EntryGate {
        /// The domain.
        pd: PdId,
        /// The entry word's byte address.
        addr: ByteAddr,
        /// Whether it holds execute-read there.
        held: bool,
        /// Whether its table has the call gate there.
        gated: bool,
    },
    /// A domain holds a permission on another's word with no grant behind it.
    #[error("{pd} holds {perm} at {addr:#x} with no grant (owner {owner})")]
    NoGrant {
        /// The holder.
        pd: PdId,
        /// What it holds.
        perm: Perm,
        /// The first such word's byte address.
        addr: ByteAddr,
        /// The word's owner.
        owner: PdId,
    },
    /// A grant comes from a dead domain.
    #[error("{pd}'s grant at {addr:#x} comes from dead {grantor}")]
    DeadGrantor {
        /// The holder.
        pd: PdId,
        /// The word's byte address.
        addr: ByteAddr,
        /// The grantor.
        grantor: PdId,
    },
    /// A grantor (neither the owner nor PD 0) holds no grant where it granted.
    #[error("{pd}'s grantor {grantor} holds no grant at {addr:#x}")]
    GrantorHoldsNothing {
        /// The holder.
        pd: PdId,
        /// The grantor.
        grantor: PdId,
        /// The word's byte address.
        addr: ByteAddr,
    },
    /// A grantor passed on a grant it may not pass on.
    #[error("{grantor} granted {pd} at {addr:#x} without a transitive grant")]
    NotTransitive {
        /// The holder.
        pd: PdId,
        /// The grantor.
        grantor: PdId,
        /// The word's byte address.
        addr: ByteAddr,
    },
    /// A holder holds more than its grantor.
    #[error("{pd} holds {perm} at {addr:#x} but its grantor {grantor} holds only {held}")]
    GrantorHoldsLess {
        /// The holder.
        pd: PdId,
        /// What it holds.
        perm: Perm,
        /// The word's byte address.
        addr: ByteAddr,
        /// The grantor.
        grantor: PdId,
        /// What the grantor holds.
        held: Perm,
    },
    /// Following grantors from a holder ends before the owner.
    #[error("chain from {pd} at {addr:#x} breaks at {at}")]
    ChainBreaks {
        /// The holder.
        pd: PdId,
        /// The word's byte address.
        addr: ByteAddr,
        /// The domain holding no grant.
        at: PdId,
    },
    /// Following grantors from a holder goes round in a cycle.
    #[error("grant cycle at {addr:#x} from {pd}")]
    GrantCycle {
        /// The holder.
        pd: PdId,
        /// The word's byte address.
        addr: ByteAddr,
    },
}

type Result<T> = std::result::Result<T, PolicyInvariantError>;

/// The digest's hasher: the word-at-a-time multiply-rotate hash of rustc's `FxHasher`, several
/// times faster than SipHash on the many small integers a state is made of. A digest detects
/// changes; it is no defence against crafted collisions, and needs none.
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Supervisor {
    /// A digest of the whole policy state: domains, tree, regions, grants, seals, exports,
    /// stacks, policies, tracking, dirty marks, every table's contents and epochs, memory,
    /// gates, frame registers and call stacks. A failed call leaves it unchanged.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut h = Fx(self.digest_beside_tables());
        // Tables, over the span of the regions only: everywhere else every table holds
        // nothing (an invariant `check_invariants` checks).
        let first = self.regions.iter().next().map(|r| r.start.0);
        let last = self.regions.iter().last().map(|r| r.end.0);
        if let Some(span) = first.zip(last).and_then(|(lo, hi)| WordRange::new(lo, hi)) {
            h.write_u64(self.tables_digest(span));
        }
        h.finish()
    }

    /// [`Supervisor::digest`] of everything but the tables' contents (their epochs are still
    /// in it): a failed call leaves it unchanged too, and it costs no walk of the tables. A
    /// caller that compares the tables some other way (the fuzz harness compares them with
    /// its model, and digests them with [`Supervisor::tables_digest`] over the words a
    /// call named) uses this one.
    #[must_use]
    pub fn digest_beside_tables(&self) -> u64 {
        let mut h = Fx(0);
        self.tree.hash(&mut h);
        self.regions.hash(&mut h);
        self.grants.hash(&mut h);
        self.sealed.hash(&mut h);
        self.global.hash(&mut h);
        self.stacks.hash(&mut h);
        self.machine.tracked().hash(&mut h);
        self.machine.dirty().hash(&mut h);
        for pd in self.tree.ids() {
            self.machine
                .epochs(pd)
                .map(|e| (e.narrow, e.widen))
                .hash(&mut h);
        }
        self.machine.memory().digest().hash(&mut h);
        self.machine.gate_table(PdId::SUPERVISOR).hash(&mut h);
        for pd in self.tree.ids() {
            self.machine.gate_table(pd).hash(&mut h);
        }
        for cpu in 0..self.cfg.machine.cpus {
            self.machine.frame_regs(cpu).ok().hash(&mut h);
            self.machine
                .call_stack(cpu)
                .map(|c| c.frames())
                .ok()
                .hash(&mut h);
        }
        h.finish()
    }

    /// A digest of every live domain's permissions on the words of `range` (each domain's
    /// id and its table's runs there). Two states whose tables agree on `range` have the
    /// same one.
    #[must_use]
    pub fn tables_digest(&self, range: WordRange) -> u64 {
        let mut h = Fx(0);
        for pd in self.tree.ids() {
            if let Some(t) = self.machine.table(pd) {
                pd.hash(&mut h);
                for (run, p) in runs(t, range) {
                    (run.start().0, run.end().0, p).hash(&mut h);
                }
            }
        }
        h.finish()
    }

    /// Checks every policy invariant and the machine's own:
    /// - regions are disjoint, non-empty, inside the width, owned by live domains, and exactly
    ///   the words the buddy allocator has in use;
    /// - every word a domain holds (other than as its owner) is allocated and backed by a
    ///   grant whose chain reaches the owner (or PD 0 for stacks and entry points) through
    ///   live domains, without cycles, with rights only shrinking along it; grantors other
    ///   than owners and PD 0 hold transitive grants;
    /// - no domain other than PD 0 holds rights on memory no one owns;
    /// - sealed words are allocated and read-only (or less) for every domain, and no PLB
    ///   entry allows a write there (implied by the machine's check that every PLB entry
    ///   agrees with its table);
    /// - globally exported words are allocated; active stacks are stack segments;
    /// - the domain tree is a tree of live domains rooted at PD 0;
    /// - the machine's invariants (tables, PLB consistency).
    ///
    /// # Errors
    /// The first broken invariant.
    pub fn check_invariants(&self) -> Result<()> {
        self.machine.check_invariants()?;
        let alive = |pd: PdId| self.tree.exists(pd);
        self.regions.check_invariants(alive)?;
        self.tree.check_invariants()?;
        for pd in self.tree.ids() {
            if !self.machine.pd_exists(pd) {
                return Err(PolicyInvariantError::NoTable { pd });
            }
        }
        self.grants.check_invariants(|pd| self.tree.contains(pd))?;
        self.sealed.check_invariants()?;
        self.global.check_invariants()?;
        self.check_holdings()?;
        for (a, b, ()) in self.sealed.iter().chain(self.global.iter()) {
            if let Some((g, _)) = self.regions.gaps(a, b).first() {
                return Err(PolicyInvariantError::UnallocatedMark {
                    addr: ByteAddr(g * 4),
                });
            }
        }
        self.check_stacks()?;
        self.check_gates()
    }

    /// Every permission a domain holds is on allocated words, backed by ownership or a grant
    /// chain, and never read-write on a sealed word.
    fn check_holdings(&self) -> Result<()> {
        let width_words = self.width().word_limit();
        let Some(all) = WordRange::new(0, width_words) else {
            return Ok(());
        };
        for pd in self.tree.ids() {
            let Some(t) = self.machine.table(pd) else {
                return Err(PolicyInvariantError::NoTable { pd });
            };
            for (r, p) in runs(t, all) {
                if p == Perm::None {
                    continue;
                }
                for (a, b, owner) in self.regions.pieces_or_gaps(r.start().0, r.end().0) {
                    let Some(owner) = owner else {
                        return Err(PolicyInvariantError::HoldsUnowned {
                            pd,
                            perm: p,
                            start: ByteAddr(a * 4),
                            end: ByteAddr(b * 4),
                        });
                    };
                    if owner == pd {
                        continue;
                    }
                    self.check_chain(pd, p, owner, a, b)?;
                }
                if p == Perm::ReadWrite
                    && let Some((s, _, ())) = self.sealed.overlapping(r.start().0, r.end().0).next()
                {
                    return Err(PolicyInvariantError::WritableSealed {
                        pd,
                        addr: ByteAddr(s * 4),
                    });
                }
            }
        }
        Ok(())
    }

    /// Active stacks are stack segments, and the frame registers and call stacks match them.
    fn check_stacks(&self) -> Result<()> {
        for (cpu, s) in self.stacks.iter().enumerate() {
            if let Some(s) = s
                && !self.regions.is_stack_at(s.base, s.fb, true)
            {
                return Err(PolicyInvariantError::NotAStack { cpu, stack: *s });
            }
            let regs = self.machine.frame_regs(cpu).unwrap_or_default();
            let frames = self.machine.call_stack(cpu).map_or(&[][..], |c| c.frames());
            let depth = frames.len();
            match s {
                Some(s) if regs.sl != s.base => {
                    return Err(PolicyInvariantError::StackLimit { cpu, sl: regs.sl });
                }
                // Calls made with no stack active push frame base 0, and may be in progress.
                None if regs != FrameRegs::default() || frames.iter().any(|f| f.fb.0 != 0) => {
                    return Err(PolicyInvariantError::StrayFrames { cpu, regs, depth });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Gate invariants: PD 0's table holds its return gate, and otherwise only gates on heap
    /// words (the cross-domain calls it makes, as into a boot loader); every other gate is on
    /// a word of a heap region, or an entry word where its domain holds execute-read; on the
    /// entry words, a domain has a call gate into PD 0 exactly where it holds execute-read.
    fn check_gates(&self) -> Result<()> {
        let pd0 = self.machine.gates(PdId::SUPERVISOR);
        let heap =
            |w: WordAddr| matches!(self.regions.at(w.0), Some(r) if r.kind == RegionKind::Heap);
        let own_return = (SUPERVISOR_RETURN.word(), Gate::Return);
        if !pd0.contains(&own_return) || pd0.iter().any(|&(w, g)| (w, g) != own_return && !heap(w))
        {
            return Err(PolicyInvariantError::SupervisorGates { gates: pd0 });
        }
        let (elo, ehi) = (ENTRY_WORDS.start().0, ENTRY_WORDS.end().0);
        let entry_gate = Gate::Call {
            dest: PdId::SUPERVISOR,
        };
        for pd in self.tree.ids() {
            for (w, g) in self.machine.gates(pd) {
                let ok = if (elo..ehi).contains(&w.0) {
                    g == entry_gate
                } else {
                    matches!(self.regions.at(w.0), Some(r) if r.kind == RegionKind::Heap)
                };
                if !ok {
                    return Err(PolicyInvariantError::StrayGate {
                        pd,
                        gate: g,
                        addr: w.byte(),
                    });
                }
            }
            for w in elo..ehi {
                let held = self.machine.perm(pd, ByteAddr(w * 4)) == Perm::ExecuteRead;
                let gated = self.machine.gate(pd, ByteAddr(w * 4)) == Some(entry_gate);
                if held != gated {
                    return Err(PolicyInvariantError::EntryGate {
                        pd,
                        addr: ByteAddr(w * 4),
                        held,
                        gated,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks that `pd`'s `p` on words `[a, b)` (owned by `owner`) is backed by a grant
    /// chain.
    fn check_chain(&self, pd: PdId, p: Perm, owner: PdId, a: u64, b: u64) -> Result<()> {
        let map = self.grants.of(pd);
        if let Some(&(g, _)) = map.gaps(a, b).first() {
            return Err(PolicyInvariantError::NoGrant {
                pd,
                perm: p,
                addr: ByteAddr(g * 4),
                owner,
            });
        }
        for (c, d, g) in map.overlapping(a, b) {
            if g.grantor == owner || g.grantor.is_supervisor() && owner.is_supervisor() {
                continue;
            }
            if !self.tree.contains(g.grantor) {
                return Err(PolicyInvariantError::DeadGrantor {
                    pd,
                    addr: ByteAddr(c * 4),
                    grantor: g.grantor,
                });
            }
            // The grantor holds a transitive grant that includes `p` (depth bounded by the
            // number of domains, so a cycle is reported rather than followed forever).
            let gm = self.grants.of(g.grantor);
            if gm.is_empty() {
                return Err(PolicyInvariantError::GrantorHoldsNothing {
                    pd,
                    grantor: g.grantor,
                    addr: ByteAddr(c * 4),
                });
            }
            for (e, f, gg) in gm.overlapping(c, d) {
                if !gg.transitive {
                    return Err(PolicyInvariantError::NotTransitive {
                        pd,
                        grantor: g.grantor,
                        addr: ByteAddr(e * 4),
                    });
                }
                for (x, _, q) in self.perm_runs(g.grantor, e, f) {
                    if !q.includes(p) {
                        return Err(PolicyInvariantError::GrantorHoldsLess {
                            pd,
                            perm: p,
                            addr: ByteAddr(x * 4),
                            grantor: g.grantor,
                            held: q,
                        });
                    }
                }
            }
            if let Some(&(x, _)) = gm.gaps(c, d).first() {
                return Err(PolicyInvariantError::GrantorHoldsNothing {
                    pd,
                    grantor: g.grantor,
                    addr: ByteAddr(x * 4),
                });
            }
        }
        // No cycles: from each word, following grantors reaches the owner within #pds steps.
        for (c, _, _) in map.overlapping(a, b) {
            let mut q = pd;
            let mut steps = 0;
            while q != owner && !q.is_supervisor() {
                match self.grants.get(q, c) {
                    Some(g) => q = g.grantor,
                    None => {
                        return Err(PolicyInvariantError::ChainBreaks {
                            pd,
                            addr: ByteAddr(c * 4),
                            at: q,
                        });
                    }
                }
                steps += 1;
                if steps > self.tree.len() + 1 {
                    return Err(PolicyInvariantError::GrantCycle {
                        pd,
                        addr: ByteAddr(c * 4),
                    });
                }
            }
        }
        Ok(())
    }
}
