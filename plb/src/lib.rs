//! # mmp-plb: the protection lookaside buffer
//!
//! In MMP every load, store and fetch is checked against the running domain's permissions
//! table; the protection lookaside buffer (PLB) caches those answers per CPU, keyed by
//! (protection domain, address range), so that most checks never walk the table. This crate
//! sits on `mmp-domains`, beside `mmp-gates`, below `mmp-machine`, which gives each CPU one.
//!
//! **Entries.** A PLB entry is filled from a table lookup's [`Cover`]: an entry filled from an
//! upper-level table entry covers its whole aligned block (its tag has don't-care low bits),
//! one filled from a leaf covers an aligned group of 16 words with their 16 permissions. Both
//! are stored alike, as a tag mask and a 16-word permission vector (a uniform block repeats
//! one permission), so a hit is one compare and a shift.
//!
//! **Consistency** (the MMP paper leaves it open). Each protection domain has an *epoch*.
//! An update that narrows any permission bumps the epoch after writing the table; every entry
//! records the epoch it was filled under and hits only while that epoch is current. A checker
//! reads the epoch before it probes or fills. So once a narrowing update has returned, no CPU
//! can hit an entry filled before it: the next check misses and walks the new table. Widening
//! needs no invalidation: an update that only widens advances a second counter, and a PLB hit
//! that denies an access from before the last widening is re-checked against the table before
//! it faults (as rust-vmm's IOTLB treats a failed translation as a miss). The
//! price is that a narrowing flushes all of that domain's entries on every CPU, lazily, with
//! no inter-processor interrupt and no waiting; the `check` benchmark's `revoke_*` ids measure
//! it. [`shared`] holds the multi-threaded form of the protocol that the loom models verify.
//!
//! **Windows.** A sidecar's answer can be cached once more as a byte range per access kind,
//! in which its entry allows that access on every word ([`Plb::open_windows`],
//! [`Plb::window_allows`]): a check there is one range test and counts what the sidecar
//! would. A window closes when its sidecar is written or flushed, and its user closes all of
//! them when the domain or the narrowing epoch it probes with changes
//! ([`Plb::close_all_windows`]). Nothing opens one unless asked, so a PLB whose user never
//! does pays one test per sidecar write for them.

#![forbid(unsafe_code)]

pub mod shared;

use mmp_domains::table::VECTOR_WORDS;
use mmp_domains::{Cover, Lookup, PdId, Perm, PermTable, WordAddr, WordRange};

/// How the PLB picks a victim in a full set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// Least recently used.
    Lru,
    /// Uniformly random, from a seeded generator (deterministic runs).
    Random {
        /// Generator seed.
        seed: u64,
    },
}

/// The shape of a PLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlbConfig {
    /// Total entries; 0 turns the PLB off (every access walks the table).
    pub entries: usize,
    /// Ways per set: 1 is direct-mapped, `entries` fully associative.
    pub ways: usize,
    /// Victim choice.
    pub replacement: Replacement,
    /// Sidecar registers (the last entry used per address register); 0 for none.
    pub sidecars: usize,
}

impl Default for PlbConfig {
    /// 64 entries, 4-way, LRU, two sidecars (data and instruction).
    fn default() -> Self {
        PlbConfig {
            entries: 64,
            ways: 4,
            replacement: Replacement::Lru,
            sidecars: 2,
        }
    }
}

/// A PLB shape that cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlbConfigError {
    /// Ways must be 1 to 65,536 and divide the entry count.
    #[error("{entries} PLB entries cannot be split into sets of {ways} ways")]
    Ways {
        /// Entries asked for.
        entries: usize,
        /// Ways asked for.
        ways: usize,
    },
    /// The set count (`entries / ways`) must be a power of two.
    #[error("{entries} PLB entries in {ways} ways make {sets} sets, not a power of two")]
    Sets {
        /// Entries asked for.
        entries: usize,
        /// Ways asked for.
        ways: usize,
        /// The resulting set count.
        sets: usize,
    },
    /// At most 16 sidecar registers.
    #[error("{sidecars} sidecar registers asked for; at most 16")]
    Sidecars {
        /// Sidecars asked for.
        sidecars: usize,
    },
}

/// Event counts of one PLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlbStats {
    /// Probes answered by the entry array.
    pub hits: u64,
    /// Probes answered by a sidecar register.
    pub sidecar_hits: u64,
    /// Probes that found nothing (each is followed by a table walk).
    pub misses: u64,
    /// Hits that denied the access from before the domain's last widening, re-checked
    /// against the table.
    pub denied_hits: u64,
    /// Entries written.
    pub fills: u64,
    /// Valid entries replaced by a fill.
    pub evictions: u64,
    /// Entries dropped as stale (an older epoch) or by a flush.
    pub invalidations: u64,
    /// Table memory references made by the walks after misses and denied hits.
    pub table_refs: u64,
}

impl PlbStats {
    /// Hits (array and sidecar) over all probes; 0 when nothing was probed.
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        let hits = self.hits + self.sidecar_hits;
        let all = hits + self.misses;
        if all == 0 {
            0.0
        } else {
            hits as f64 / all as f64
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &PlbStats) {
        self.hits += other.hits;
        self.sidecar_hits += other.sidecar_hits;
        self.misses += other.misses;
        self.denied_hits += other.denied_hits;
        self.fills += other.fills;
        self.evictions += other.evictions;
        self.invalidations += other.invalidations;
        self.table_refs += other.table_refs;
    }
}

/// A domain's two update counters, read together before a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Epochs {
    /// Advanced by every update that narrows some permission: entries from an older
    /// `narrow` never hit.
    pub narrow: u64,
    /// Advanced by every update that only widens: an entry from an older `widen` may be
    /// narrower than the table, so a denial it gives is re-checked against the table.
    pub widen: u64,
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The entry's permission for the word.
    pub perm: Perm,
    /// Whether the entry postdates the domain's last widening, so a denial it gives is
    /// final.
    pub denial_is_final: bool,
}

/// What [`Plb::probe_or_walk`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    /// The PLB answered (a sidecar or the entry array).
    Hit(Hit),
    /// It missed; the table walk's answer, now filled.
    Walked(Lookup),
}

/// A miss [`Plb::probe_or_miss`] counted: the word, and the way its fill replaces. Hand it
/// with the walk's answer to [`Plb::fill_miss`]; dropped unfilled, the PLB stays as after a
/// probe that missed, with the miss and any eviction counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a miss is filled with the walk's answer by `Plb::fill_miss`"]
pub struct Miss {
    /// The slot the fill replaces; `usize::MAX`: the fill chooses (shapes without a fixed
    /// path).
    victim: usize,
    pd: PdId,
    w: WordAddr,
    epochs: Epochs,
    reg: usize,
}

impl Miss {
    /// The word that missed.
    #[must_use]
    pub fn word(&self) -> WordAddr {
        self.w
    }
}

/// Where [`Plb::probe_allows_then_open`] stopped: the first word that was not an allowing
/// hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A word no sidecar or entry covers, in a PLB whose set shape has a path of its own
    /// (1, 2, 4 or 8 ways): probed, and counted as a miss, exactly as
    /// [`Plb::probe_or_miss`] would, so the caller walks and hands the answer to
    /// [`Plb::fill_miss`] without probing again.
    Miss(Miss),
    /// Any other word that is not an allowing hit (a stale entry, a denial, a miss in a
    /// set of another shape): nothing was changed for it, and the caller probes it as
    /// usual.
    Word(WordAddr),
}

impl Stop {
    /// The word it stopped at.
    #[must_use]
    pub fn word(&self) -> WordAddr {
        match self {
            Stop::Miss(m) => m.w,
            Stop::Word(w) => *w,
        }
    }
}

/// One PLB entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The protection domain the entry belongs to.
    pub pd: PdId,
    /// The domain's narrowing epoch when the entry was filled.
    pub epoch: u64,
    /// The domain's widening count when the entry was filled.
    pub widen: u64,
    /// `word & mask` of the words the entry covers.
    pub tag: u64,
    /// Which word-address bits the tag compares (low bits are don't-care).
    pub mask: u64,
    /// Permissions of the 16 words of a group, word 0 in the low bits; a block entry repeats
    /// one permission.
    pub vector: u32,
}

impl Entry {
    /// The entry a lookup of word `w` for `pd` fills.
    #[inline(always)]
    #[must_use]
    pub fn from_lookup(pd: PdId, epochs: Epochs, w: WordAddr, l: &Lookup) -> Entry {
        let w = w.0;
        // Both arms are plain values, so this compiles to selects, not a branch: a miss
        // stream's covers alternate unpredictably between blocks and vectors.
        let (block_log2, perms) = match l.cover {
            Cover::Block { log2_words } => (u32::from(log2_words), 0),
            Cover::Vector16 { perms } => (0, perms),
        };
        let is_block = matches!(l.cover, Cover::Block { .. });
        let (log2, vector) = std::hint::select_unpredictable(
            is_block,
            (block_log2, 0x5555_5555u32 * l.perm as u32),
            (VECTOR_WORDS.trailing_zeros(), perms),
        );
        let mask = u64::MAX.checked_shl(log2).unwrap_or(0);
        Entry {
            pd,
            epoch: epochs.narrow,
            widen: epochs.widen,
            tag: w & mask,
            mask,
            vector,
        }
    }

    /// Whether the entry covers word `w` of `pd` under `epoch`.
    #[inline]
    #[must_use]
    pub fn matches(&self, pd: PdId, w: WordAddr, epoch: u64) -> bool {
        let w = w.0;
        self.pd == pd && w & self.mask == self.tag && self.epoch == epoch
    }

    /// The permission the entry gives word `w` (which it must cover).
    #[inline]
    #[must_use]
    pub fn perm(&self, w: WordAddr) -> Perm {
        let w = w.0;
        Perm::from_bits(u64::from(self.vector >> (2 * (w % VECTOR_WORDS))))
    }

    /// First and one-past-last word the entry covers (the end wraps to word 0 for an entry
    /// that covers the whole word space).
    #[must_use]
    pub fn span(&self) -> (WordAddr, WordAddr) {
        (
            WordAddr(self.tag),
            WordAddr(self.tag.wrapping_add((!self.mask).wrapping_add(1))),
        )
    }
}

/// Most sidecar registers a PLB has.
pub const MAX_SIDECARS: usize = 16;

/// A byte range `[lo, lo + len)` in which sidecar `reg`'s entry (of `pd`, filled under
/// narrowing epoch `epoch`) allows one kind of access on every word; `len` 0 is closed.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: u64,
    len: u64,
    pd: PdId,
    epoch: u64,
    reg: u8,
}

impl Window {
    const CLOSED: Window = Window {
        lo: 0,
        len: 0,
        pd: PdId::SUPERVISOR,
        epoch: EMPTY_EPOCH,
        reg: u8::MAX,
    };
}

/// The epoch of an empty slot: no domain's narrowing epoch ever reaches it.
const EMPTY_EPOCH: u64 = u64::MAX;

impl Entry {
    /// An empty slot. It matches no word of any domain: its tag has a bit its mask clears
    /// (and its epoch is one no domain reaches), so a probe compares ways without asking
    /// which are valid.
    const EMPTY: Entry = Entry {
        pd: PdId::SUPERVISOR,
        epoch: EMPTY_EPOCH,
        widen: 0,
        tag: 1,
        mask: 0,
        vector: 0,
    };

    #[inline]
    fn is_valid(&self) -> bool {
        self.epoch != EMPTY_EPOCH
    }
}

/// A protection lookaside buffer. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct Plb {
    cfg: PlbConfig,
    set_mask: u64,
    /// Ways per set actually present (0 with no entries).
    set_ways: usize,
    /// 1, 2, 3, 4 for sets of 1, 2, 4, 8 ways (the shapes with a path of their own); 0 for
    /// any other.
    fixed_shape: u8,
    /// The entry array, set by set; an empty slot holds [`Entry::EMPTY`].
    entries: Vec<Entry>,
    /// Last-use tick of each slot (LRU).
    stamps: Vec<u64>,
    /// Sidecar registers, inline (the first `cfg.sidecars` are in use); an empty one holds
    /// [`Entry::EMPTY`].
    sidecars: [Entry; MAX_SIDECARS],
    /// Per access kind (indexed by [`Access`] as `usize`): a byte range in which a sidecar
    /// register's entry allows that access on every word (see [`Plb::window_allows`]).
    windows: [Window; 3],
    /// Bit `a` set: window `a` may be open (so a miss-heavy stream, which opens none, closes
    /// none either).
    open: u8,
    /// The slot of the last array hit, so a re-walk after a denial refills it; `usize::MAX`
    /// after a miss.
    last_hit: usize,
    tick: u64,
    rng: u64,
    stats: PlbStats,
}

/// A PLB entry that grants more than the table it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PLB entry {entry:?} gives word {word:#x} {plb}, but the table only {table}")]
pub struct Inconsistency {
    /// The entry.
    pub entry: Entry,
    /// The word that disagrees.
    pub word: WordAddr,
    /// What the entry says.
    pub plb: Perm,
    /// What the table says.
    pub table: Perm,
}

/// A sidecar register that holds an entry of another domain or epoch than the one its
/// PLB's user probes with now (see [`Plb::sidecar_final_current`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sidecar {reg} holds {entry:?}, not an entry of {pd:?} under narrowing epoch {epoch}")]
pub struct SidecarError {
    /// The sidecar.
    pub reg: usize,
    /// What it holds.
    pub entry: Entry,
    /// The domain probed with now.
    pub pd: PdId,
    /// Its narrowing epoch now.
    pub epoch: u64,
}

/// An open window (see [`Plb::window_allows`]) that allows more than the sidecar entry it
/// was opened from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {access:?} window [{lo:#x}, +{len:#x}) of sidecar {reg} is not allowed by its entry \
     {entry:?}"
)]
pub struct WindowError {
    /// The access kind the window answers.
    pub access: mmp_domains::Access,
    /// Its first byte.
    pub lo: u64,
    /// Its length in bytes.
    pub len: u64,
    /// The sidecar it was opened from.
    pub reg: usize,
    /// What that sidecar holds.
    pub entry: Entry,
}

impl Plb {
    /// A PLB of the given shape, empty.
    ///
    /// # Errors
    /// A [`PlbConfigError`] if the shape is impossible.
    pub fn new(cfg: PlbConfig) -> Result<Plb, PlbConfigError> {
        if cfg.sidecars > MAX_SIDECARS {
            return Err(PlbConfigError::Sidecars {
                sidecars: cfg.sidecars,
            });
        }
        let sets = if cfg.entries == 0 {
            1
        } else {
            if cfg.ways == 0 || cfg.ways > 1 << 16 || !cfg.entries.is_multiple_of(cfg.ways) {
                return Err(PlbConfigError::Ways {
                    entries: cfg.entries,
                    ways: cfg.ways,
                });
            }
            let sets = cfg.entries / cfg.ways;
            if !sets.is_power_of_two() {
                return Err(PlbConfigError::Sets {
                    entries: cfg.entries,
                    ways: cfg.ways,
                    sets,
                });
            }
            sets
        };
        let seed = match cfg.replacement {
            Replacement::Random { seed } => seed,
            Replacement::Lru => 0,
        };
        Ok(Plb {
            cfg,
            set_mask: sets as u64 - 1,
            set_ways: cfg.ways.min(cfg.entries),
            fixed_shape: match cfg.ways.min(cfg.entries) {
                1 => 1,
                2 => 2,
                4 => 3,
                8 => 4,
                _ => 0,
            },
            entries: vec![Entry::EMPTY; cfg.entries],
            stamps: vec![0; cfg.entries],
            sidecars: [Entry::EMPTY; MAX_SIDECARS],
            windows: [Window::CLOSED; 3],
            open: 0,
            last_hit: usize::MAX,
            tick: 0,
            rng: seed,
            stats: PlbStats::default(),
        })
    }

    /// The shape.
    #[must_use]
    pub fn config(&self) -> PlbConfig {
        self.cfg
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> PlbStats {
        self.stats
    }

    /// Zeroes the counters (entries stay).
    pub fn reset_stats(&mut self) {
        self.stats = PlbStats::default();
    }

    /// The first slot of the set that holds `pd`'s word `w`.
    #[inline]
    fn set_first(&self, pd: PdId, w: WordAddr) -> usize {
        let w = w.0;
        // Index by the 16-word group, so a group's entries share a set; the PD is mixed in so
        // domains sharing addresses spread out.
        let set = ((w >> 4) ^ u64::from(pd.raw()).wrapping_mul(0x9e37_79b9)) & self.set_mask;
        set as usize * self.set_ways
    }

    /// The way of the set at `first` whose entry covers `pd`'s word `w`, if any (at most
    /// one does: a fill follows a miss, and a probe drops the stale entries it meets).
    #[inline(always)]
    fn way_in_set(&self, first: usize, pd: PdId, w: WordAddr) -> Option<usize> {
        // The default shape (4 ways) by one test (of `set_ways`, so that it is not folded
        // into the jump); the other fixed shapes by one jump.
        if self.set_ways == 4 {
            return way_of::<4>(&self.entries, first, pd, w);
        }
        match self.fixed_shape {
            1 => way_of::<1>(&self.entries, first, pd, w),
            2 => way_of::<2>(&self.entries, first, pd, w),
            4 => way_of::<8>(&self.entries, first, pd, w),
            _ => way_of_any(&self.entries[first..first + self.set_ways], pd, w),
        }
    }

    /// Looks up word `w` of `pd` under the domain's current `epochs`, through sidecar `reg`
    /// (ignored if there is no such sidecar). Counts a hit or a miss; drops stale entries it
    /// meets.
    #[inline(always)]
    pub fn probe(&mut self, pd: PdId, w: WordAddr, epochs: Epochs, reg: usize) -> Option<Hit> {
        let epoch = epochs.narrow;
        let hit = |e: &Entry| Hit {
            perm: e.perm(w),
            denial_is_final: e.widen == epochs.widen,
        };
        // An empty sidecar never matches: its epoch is one no domain reaches.
        if reg < self.cfg.sidecars
            && let e = &self.sidecars[reg]
            && e.matches(pd, w, epoch)
        {
            self.stats.sidecar_hits += 1;
            self.last_hit = usize::MAX;
            return Some(hit(e));
        }
        self.tick += 1;
        // At most one entry of a set covers a word (a fill follows a miss, and a probe drops
        // the stale entries it meets), so the ways are compared without branching on which
        // one matches: the hit way varies, and a branch per way mispredicts.
        let first = self.set_first(pd, w);
        let found = self
            .way_in_set(first, pd, w)
            .map_or(usize::MAX, |way| first + way);
        if found != usize::MAX {
            let e = self.entries[found];
            if e.epoch == epoch {
                self.stamps[found] = self.tick;
                self.stats.hits += 1;
                self.last_hit = found;
                if reg < self.cfg.sidecars {
                    self.sidecars[reg] = e;
                    self.close_windows(reg);
                }
                return Some(hit(&e));
            }
            self.entries[found] = Entry::EMPTY;
            self.stamps[found] = 0;
            self.stats.invalidations += 1;
        }
        self.stats.misses += 1;
        self.last_hit = usize::MAX;
        None
    }

    /// [`Plb::probe`] of each word `first..=last` (at most two words apart) in turn, as
    /// long as each would hit with an answer that allows `access`: each such word is
    /// counted, stamped and loaded into sidecar `reg` exactly as `probe` would. If all of
    /// them do, then opens the windows of `kinds` from sidecar `reg` for word `last`, as
    /// [`Plb::open_windows`] would, and returns `Ok`. Otherwise stops at the first word that
    /// would not be such a hit, the words before it staying counted: a miss in a set of a
    /// fixed shape comes back as [`Stop::Miss`], counted as `probe` would count it, for the
    /// caller to walk and fill; any other word as [`Stop::Word`], nothing changed for it,
    /// for the caller to probe as usual. Either way, if the probes wrote sidecar `reg`, its
    /// windows are closed.
    ///
    /// This is the machine's path for an access its caller's windows did not answer: one
    /// pass that reloads the sidecar and reopens its windows, instead of closing them on
    /// the reload and opening them again. Inlined, so a caller that passes a constant list
    /// of kinds gets the work for those only.
    ///
    /// # Errors
    /// Where it stopped: the first word that is not an allowing hit.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn probe_allows_then_open(
        &mut self,
        pd: PdId,
        first: WordAddr,
        last: WordAddr,
        epochs: Epochs,
        reg: usize,
        access: mmp_domains::Access,
        kinds: &[mmp_domains::Access],
    ) -> Result<(), Stop> {
        debug_assert!(first <= last && last.0 - first.0 <= 2);
        if reg >= self.cfg.sidecars {
            return self
                .probe_allows_without_sidecar(pd, first, last, epochs, access)
                .map_err(Stop::Word);
        }
        let epoch = epochs.narrow;
        let mut w = first.0;
        // Whether sidecar `reg` was written (so the windows opened from it are stale).
        let mut reloaded = false;
        loop {
            let e = &self.sidecars[reg];
            if e.matches(pd, WordAddr(w), epoch) {
                if !e.perm(WordAddr(w)).allows(access) {
                    break;
                }
                self.stats.sidecar_hits += 1;
                self.last_hit = usize::MAX;
            } else {
                let set = self.set_first(pd, WordAddr(w));
                let Some(way) = self.way_in_set(set, pd, WordAddr(w)) else {
                    if reloaded {
                        self.close_windows(reg);
                    }
                    return Err(match self.miss_in_set(set, pd, WordAddr(w), epochs, reg) {
                        Some(miss) => Stop::Miss(miss),
                        None => Stop::Word(WordAddr(w)),
                    });
                };
                let i = set + way;
                let e = &self.entries[i];
                if e.epoch != epoch || !e.perm(WordAddr(w)).allows(access) {
                    break;
                }
                self.sidecars[reg] = *e;
                self.tick += 1;
                self.stamps[i] = self.tick;
                self.stats.hits += 1;
                self.last_hit = i;
                reloaded = true;
            }
            if w == last.0 {
                self.open_windows_after(pd, last, epoch, reg, kinds, reloaded);
                return Ok(());
            }
            w += 1;
        }
        if reloaded {
            self.close_windows(reg);
        }
        Err(Stop::Word(WordAddr(w)))
    }

    /// The rest of [`Plb::probe_or_miss`] for `pd`'s word `w`, which sidecar `reg` does not
    /// cover and no way of the set at `first` holds: in a set of a fixed shape, the miss
    /// counted and its victim chosen exactly as there; `None` (nothing done) in a set of
    /// another shape, whose fill chooses after the walk.
    #[inline(always)]
    fn miss_in_set(
        &mut self,
        first: usize,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
    ) -> Option<Miss> {
        if self.fixed_shape == 0 {
            return None;
        }
        // As `probe_set`: one tick for the probe and the fill, the miss, then the victim.
        self.tick += 1;
        self.stats.misses += 1;
        let victim = match self.cfg.replacement {
            Replacement::Lru => {
                let way = if self.set_ways == 4 {
                    oldest::<4>(&self.stamps, first)
                } else {
                    oldest_any(&self.stamps[first..first + self.set_ways])
                };
                self.stats.evictions += u64::from(self.entries[first + way].is_valid());
                first + way
            }
            Replacement::Random { .. } => self.random_victim(first),
        };
        Some(Miss {
            victim,
            pd,
            w,
            epochs,
            reg,
        })
    }

    /// [`Plb::probe_allows_then_open`] for a sidecar the PLB does not have: the words
    /// probed in the array alone, and no window opened. Out of line (a PLB without that
    /// sidecar is rare).
    #[cold]
    #[inline(never)]
    fn probe_allows_without_sidecar(
        &mut self,
        pd: PdId,
        first: WordAddr,
        last: WordAddr,
        epochs: Epochs,
        access: mmp_domains::Access,
    ) -> Result<(), WordAddr> {
        for w in first.0..=last.0 {
            let set = self.set_first(pd, WordAddr(w));
            let Some(i) = self.way_in_set(set, pd, WordAddr(w)).map(|way| set + way) else {
                return Err(WordAddr(w));
            };
            let e = &self.entries[i];
            if e.epoch != epochs.narrow || !e.perm(WordAddr(w)).allows(access) {
                return Err(WordAddr(w));
            }
            self.tick += 1;
            self.stamps[i] = self.tick;
            self.stats.hits += 1;
            self.last_hit = i;
        }
        Ok(())
    }

    /// The fast path of [`Plb::probe`]: the permission sidecar `reg` gives `pd`'s word `w`
    /// if it holds the domain's current entry for it and that answer is final (it allows
    /// `access`, or its denial is final). Counts a sidecar hit only then; on `None` the
    /// caller probes as usual (nothing was changed).
    #[inline]
    pub fn sidecar_final(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
        access: mmp_domains::Access,
    ) -> Option<Perm> {
        self.sidecar_final_if(w, epochs.widen, reg, access, |e| {
            e.matches(pd, w, epochs.narrow)
        })
    }

    /// The answer of sidecar `reg` for word `w` if `holds` says its entry is the domain's
    /// current entry for `w`, and that answer is final (it allows `access`, or was filled
    /// since the last widening `widen`): counted as a sidecar hit. Otherwise `None`, nothing
    /// changed. [`Plb::sidecar_final`] and [`Plb::sidecar_final_current`] differ only in
    /// `holds`.
    #[inline(always)]
    fn sidecar_final_if(
        &mut self,
        w: WordAddr,
        widen: u64,
        reg: usize,
        access: mmp_domains::Access,
        holds: impl FnOnce(&Entry) -> bool,
    ) -> Option<Perm> {
        match self.sidecars.get(reg) {
            Some(e) if holds(e) && (e.widen == widen || e.perm(w).allows(access)) => {
                self.stats.sidecar_hits += 1;
                Some(e.perm(w))
            }
            _ => None,
        }
    }

    /// [`Plb::sidecar_final`] for a caller that keeps the sidecars *current*: every sidecar
    /// register is empty or holds an entry of `pd` filled under narrowing epoch
    /// `epochs.narrow`, because the caller probes with no other domain or epoch and calls
    /// [`Plb::clear_sidecars`] whenever either changes (as the machine does on a switch of
    /// its PD register and on a narrowing of the running domain's table). Then the answer,
    /// the count and the state are exactly `sidecar_final`'s, from a compare of the entry's
    /// tag alone, not of its domain and epoch, as a hardware
    /// sidecar that is cleared on a protection-domain switch carries no domain tag. A debug
    /// build asserts the contract; a release build trusts it.
    #[inline(always)]
    pub fn sidecar_final_current(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
        access: mmp_domains::Access,
    ) -> Option<Perm> {
        self.sidecar_final_if(w, epochs.widen, reg, access, |e| {
            // An empty sidecar never matches: its tag has a bit its mask clears.
            let holds = w.0 & e.mask == e.tag;
            debug_assert!(
                !holds || (e.pd == pd && e.epoch == epochs.narrow),
                "sidecar {reg} holds {e:?}, not an entry of {pd:?} under epoch {}: \
                 the caller did not clear the sidecars",
                epochs.narrow
            );
            holds
        })
    }

    /// Empties every sidecar register and closes the windows opened from them; the array's
    /// entries, the counters and the LRU order stay. What a caller of
    /// [`Plb::sidecar_final_current`] does when the domain or the narrowing epoch it probes
    /// with changes. Nothing a probe answers changes but where it comes from: a word the
    /// sidecar held is found in the array, or walked again if its entry was evicted.
    pub fn clear_sidecars(&mut self) {
        for s in &mut self.sidecars[..self.cfg.sidecars] {
            *s = Entry::EMPTY;
        }
        self.close_all_windows();
    }

    /// Checks [`Plb::sidecar_final_current`]'s contract: every sidecar register is empty or
    /// holds an entry of `pd` filled under narrowing epoch `epoch`.
    ///
    /// # Errors
    /// A [`SidecarError`] naming the first sidecar that does not.
    pub fn check_sidecars_current(&self, pd: PdId, epoch: u64) -> Result<(), SidecarError> {
        match self.sidecars[..self.cfg.sidecars]
            .iter()
            .enumerate()
            .find(|(_, e)| e.is_valid() && (e.pd != pd || e.epoch != epoch))
        {
            Some((reg, e)) => Err(SidecarError {
                reg,
                entry: *e,
                pd,
                epoch,
            }),
            None => Ok(()),
        }
    }

    /// The fast path for an access to words `first..=last` (at most 2 words apart): true if
    /// sidecar `reg` holds `pd`'s current entry covering all of them and it allows `access`
    /// on each. Counts one sidecar hit per word only then; on false nothing changed.
    #[inline]
    pub fn sidecar_allows_all(
        &mut self,
        pd: PdId,
        first: WordAddr,
        last: WordAddr,
        epochs: Epochs,
        reg: usize,
        access: mmp_domains::Access,
    ) -> bool {
        debug_assert!(last >= first && last - first <= 2);
        // The words are at most 2 apart, so one entry covering both ends covers the middle.
        match self.sidecars.get(reg) {
            Some(e)
                if e.matches(pd, first, epochs.narrow)
                    && last.0 & e.mask == e.tag
                    && e.perm(first).allows(access)
                    && e.perm(last).allows(access)
                    && (last - first < 2 || e.perm(first + 1).allows(access)) =>
            {
                self.stats.sidecar_hits += last - first + 1;
                true
            }
            _ => false,
        }
    }

    /// The fastest path of a check: true if the open window of `access` holds all `size`
    /// bytes at byte address `addr`, so the sidecar register it was opened from allows
    /// `access` on every word they touch. Counts one sidecar hit per word then (what
    /// [`Plb::sidecar_final`] or [`Plb::sidecar_allows_all`] would count); on false nothing
    /// changed. `size` is not checked against the sizes an access may have: that is the
    /// caller's.
    ///
    /// A window is opened by [`Plb::open_windows`] for one domain under one narrowing epoch,
    /// and closed whenever its sidecar is written or flushed. It does not compare the
    /// domain and epoch on every check: **the caller closes the windows
    /// ([`Plb::close_all_windows`]) whenever the domain or the narrowing epoch it probes with
    /// changes** (the machine does so when it loads a domain or a narrowing update
    /// advances the epoch). Then a window answers exactly as its sidecar would.
    #[inline(always)]
    pub fn window_allows(&mut self, addr: u64, size: u64, access: mmp_domains::Access) -> bool {
        let win = &self.windows[access as usize];
        match window_words((win.lo, win.len), addr, size) {
            Some(words) => {
                self.stats.sidecar_hits += words;
                true
            }
            None => false,
        }
    }

    /// Opens the window of each of `accesses` (see [`Plb::window_allows`]) from sidecar
    /// `reg`, which must hold `pd`'s entry for word `w` under narrowing epoch `epoch`;
    /// otherwise nothing is opened. An access kind the entry refuses at `w` gets no window.
    /// A window is the entry's whole span if it allows the access on every word, else the
    /// run of words around `w` in its 16-word vector that do.
    ///
    /// Inlined, so a caller that passes a constant list of accesses gets the work for those
    /// kinds only.
    #[inline(always)]
    pub fn open_windows(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epoch: u64,
        reg: usize,
        accesses: &[mmp_domains::Access],
    ) {
        match self.sidecars.get(reg) {
            Some(e) if e.matches(pd, w, epoch) => {
                self.open_windows_of_sidecar(pd, w, epoch, reg, accesses)
            }
            _ => {}
        }
    }

    /// [`Plb::open_windows_of_sidecar`] after probes through sidecar `reg` that may have
    /// `reloaded` it: then every window opened from it before is stale, so a window of
    /// `kinds` the entry does not open, and any window of another kind from `reg`, is
    /// closed, as writing the sidecar would have closed them.
    #[inline(always)]
    fn open_windows_after(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epoch: u64,
        reg: usize,
        kinds: &[mmp_domains::Access],
        reloaded: bool,
    ) {
        if reloaded && self.open != 0 {
            let mut others = 0b111u8;
            for &k in kinds {
                others &= !(1 << k as u8);
            }
            for a in 0..3 {
                let win = &mut self.windows[a];
                // (A window of `kinds` is closed here only if the entry opens no new one.)
                if usize::from(win.reg) == reg
                    && (others >> a) & 1 == 1
                    && self.open & (1 << a) != 0
                {
                    win.len = 0;
                    self.open &= !(1 << a);
                }
            }
        }
        self.open_windows_from(pd, w, epoch, reg, kinds, reloaded);
    }

    /// [`Plb::open_windows`] for a caller that knows sidecar `reg`, if the PLB has it (its
    /// configuration's `sidecars`), holds `pd`'s entry for word `w` under narrowing epoch
    /// `epoch` (it has just probed `w` through it, and every probe that passes through a
    /// sidecar leaves that entry there): the same windows, without comparing the entry
    /// again.
    #[inline(always)]
    pub fn open_windows_of_sidecar(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epoch: u64,
        reg: usize,
        accesses: &[mmp_domains::Access],
    ) {
        self.open_windows_from(pd, w, epoch, reg, accesses, false);
    }

    /// [`Plb::open_windows_of_sidecar`]; with `close_refused`, a window of `accesses`
    /// opened from `reg` that the entry does not reopen is closed.
    #[inline(always)]
    fn open_windows_from(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epoch: u64,
        reg: usize,
        accesses: &[mmp_domains::Access],
        close_refused: bool,
    ) {
        if reg >= self.cfg.sidecars {
            return;
        }
        let e = &self.sidecars[reg];
        debug_assert!(
            e.matches(pd, w, epoch),
            "sidecar {reg} does not hold {pd:?}'s word {w:?}"
        );
        let (v, mask, tag) = (e.vector, e.mask, e.tag);
        // Bits 2i and 2i+1 of `lo` and `hi`: the low and high bit of word i's permission.
        let (lo, hi) = (v & 0x5555_5555, (v >> 1) & 0x5555_5555);
        let i = 2 * (w.0 % VECTOR_WORDS) as u32;
        for &access in accesses {
            // Bits 2i and 2i+1 both set: word i allows the access (permission 1 read-only,
            // 2 read-write, 3 execute-read; see `Perm::allows`).
            let allowed = match access {
                mmp_domains::Access::Read => lo | hi,
                mmp_domains::Access::Write => hi & !lo,
                mmp_domains::Access::Execute => hi & lo,
            } * 3;
            if (allowed >> i) & 1 == 0 {
                let win = &mut self.windows[access as usize];
                if close_refused && usize::from(win.reg) == reg {
                    win.len = 0;
                    self.open &= !(1 << access as u8);
                }
                continue;
            }
            let (lo_word, words) = if allowed == u32::MAX {
                // The whole span; an entry covering all of a 64-bit word space is cut to
                // 2^61 words, which keeps the byte length in range (a window may be
                // narrower than its entry, never wider).
                let size = (!mask).wrapping_add(1);
                let words = if size == 0 || size > 1 << 61 {
                    1 << 61
                } else {
                    size
                };
                (tag, words)
            } else {
                // The run of allowed words around word i/2: up to the first refused word
                // above and after the last refused word below (two bits a word).
                let above = (!allowed >> i).trailing_zeros().min(32 - i) / 2;
                let below = (!allowed)
                    .checked_shl(32 - i)
                    .map_or(0, u32::leading_zeros)
                    .min(i)
                    / 2;
                (w.0 - u64::from(below), u64::from(above + below))
            };
            self.windows[access as usize] = Window {
                pd,
                epoch,
                lo: lo_word << 2,
                len: words << 2,
                reg: reg as u8,
            };
            self.open |= 1 << access as u8;
        }
    }

    /// The three windows as byte ranges `(lo, len)` (indexed by [`Access`] as `usize`;
    /// `len` 0 where closed), as [`Plb::window_allows`] reads them: valid under the
    /// contract stated there (the caller closes them when its domain or epoch changes).
    ///
    /// [`Access`]: mmp_domains::Access
    #[inline]
    #[must_use]
    pub fn windows(&self) -> [(u64, u64); 3] {
        self.windows.map(|w| (w.lo, w.len))
    }

    /// The window of `access` as a byte range `(lo, len)`, `len` 0 where closed: one of
    /// [`Plb::windows`].
    #[inline(always)]
    #[must_use]
    pub fn window(&self, access: mmp_domains::Access) -> (u64, u64) {
        let w = &self.windows[access as usize];
        (w.lo, w.len)
    }

    /// Counts `words` sidecar hits that a caller answered from [`Plb::windows`] itself: the
    /// counts [`Plb::window_allows`] would have made for the same accesses.
    pub fn count_window_hits(&mut self, words: u64) {
        self.stats.sidecar_hits += words;
    }

    /// Checks that every open window belongs to domain `pd` under narrowing epoch `epoch`
    /// (what the caller probes with now), lies in the entry its sidecar holds, and covers
    /// only words that entry allows the access on.
    ///
    /// # Errors
    /// The first [`WindowError`].
    pub fn check_windows(&self, pd: PdId, epoch: u64) -> Result<(), WindowError> {
        use mmp_domains::Access;
        for (a, access) in [Access::Read, Access::Write, Access::Execute]
            .into_iter()
            .enumerate()
        {
            let win = &self.windows[a];
            if win.len == 0 {
                continue;
            }
            let reg = usize::from(win.reg);
            let entry = self.sidecars.get(reg).copied().unwrap_or(Entry::EMPTY);
            let err = || WindowError {
                access,
                lo: win.lo,
                len: win.len,
                reg,
                entry,
            };
            if self.open & (1 << a) == 0
                || reg >= self.cfg.sidecars
                || win.pd != pd
                || win.epoch != epoch
                || entry.pd != win.pd
                || entry.epoch != win.epoch
                || !win.lo.is_multiple_of(4)
                || !win.len.is_multiple_of(4)
            {
                return Err(err());
            }
            let (first, last) = (WordAddr(win.lo / 4), WordAddr((win.lo + win.len) / 4 - 1));
            if !entry.matches(win.pd, first, win.epoch) || !entry.matches(win.pd, last, win.epoch) {
                return Err(err());
            }
            // Every word of the window; past 16 words the entry repeats one permission.
            let words = (win.len / 4).min(VECTOR_WORDS);
            let uniform = entry.vector == 0x5555_5555 * (entry.vector & 3);
            if (win.len / 4 > VECTOR_WORDS && !uniform)
                || (0..words).any(|k| !entry.perm(first + k).allows(access))
            {
                return Err(err());
            }
        }
        Ok(())
    }

    /// Closes every window: what the user of the windows does when the domain or the
    /// narrowing epoch it probes with changes (see [`Plb::window_allows`]). No answer and no
    /// count changes: a window only repeats what its sidecar would answer.
    pub fn close_all_windows(&mut self) {
        self.windows = [Window::CLOSED; 3];
        self.open = 0;
    }

    /// Closes the windows opened from sidecar `reg` (it is being written).
    #[inline(always)]
    fn close_windows(&mut self, reg: usize) {
        if self.open == 0 {
            return;
        }
        for (a, win) in self.windows.iter_mut().enumerate() {
            if usize::from(win.reg) == reg {
                win.len = 0;
                self.open &= !(1 << a);
            }
        }
    }

    /// Counts a hit whose denial was not final (the caller re-walks the table).
    pub fn note_denied_hit(&mut self) {
        self.stats.denied_hits += 1;
    }

    /// Records the walk that followed a miss or a re-checked denial, and fills an entry from
    /// it: over an entry for the same words, else a free way, else the replacement victim.
    #[inline]
    pub fn fill(&mut self, pd: PdId, w: WordAddr, epochs: Epochs, l: &Lookup, reg: usize) {
        self.stats.table_refs += u64::from(l.refs);
        if self.entries.is_empty() {
            return;
        }
        self.tick += 1;
        let first = self.set_first(pd, w);
        // After a miss no entry covers these words (the probe would have hit), so the new one
        // goes to the oldest way (empty ways have stamp 0). After a denied hit it replaces the
        // entry that was hit (or, if that was a sidecar, the oldest way).
        let i = if (first..first + self.set_ways).contains(&self.last_hit) {
            self.last_hit
        } else {
            self.victim(first)
        };
        self.put(i, Entry::from_lookup(pd, epochs, w, l), reg);
    }

    /// [`Plb::probe`], and on a miss the walk and the fill in the same pass: `walk` looks
    /// the word up, its answer fills the victim way of the word's set, and comes back as
    /// [`Probed::Walked`]. Counts, entries, LRU order and sidecars end exactly as after
    /// `probe`, then `walk`, then [`Plb::fill`]. The same as [`Plb::probe_or_miss`], then
    /// `walk` and [`Plb::fill_miss`] on a miss.
    #[inline(always)]
    pub fn probe_or_walk(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
        walk: impl FnOnce() -> Lookup,
    ) -> Probed {
        match self.probe_or_miss(pd, w, epochs, reg) {
            Ok(h) => Probed::Hit(h),
            Err(miss) => {
                let l = walk();
                self.fill_miss(miss, &l);
                Probed::Walked(l)
            }
        }
    }

    /// [`Plb::probe_or_walk`] for a caller that needs only the permission: the hit, or on a
    /// miss the walk's answer as a hit whose denial is final (the entry was just filled under
    /// the current epochs). Counts, entries, LRU order and sidecars end as after
    /// `probe_or_walk`. The machine's access check uses this: its answer fits a register.
    /// (Written out, not through `probe_or_walk`: through it, the `check` bench's miss
    /// measured 8 more instructions under callgrind.)
    #[inline(always)]
    pub fn probe_or_walk_hit(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
        walk: impl FnOnce() -> Lookup,
    ) -> Hit {
        match self.probe_or_miss(pd, w, epochs, reg) {
            Ok(h) => h,
            Err(miss) => {
                let l = walk();
                self.fill_miss(miss, &l);
                Hit {
                    perm: l.perm,
                    denial_is_final: true,
                }
            }
        }
    }

    /// The first half of the machine's miss path: [`Plb::probe`], and on a miss the way the
    /// fill will replace, chosen before the walk (the walk changes nothing the choice reads).
    /// Hand the [`Miss`] with the walk's answer to [`Plb::fill_miss`]; together they leave
    /// counts, entries, LRU order and sidecars exactly as `probe`, then the walk, then
    /// [`Plb::fill`] would.
    ///
    /// This does the least work that keeps every count: the set is located once, one pass
    /// over its ways finds the matching entry, the victim comes from the set's stamps alone
    /// (no second compare of its entries), and the caller walks inline, between the halves,
    /// with the answer in registers.
    ///
    /// # Errors
    /// A [`Miss`] if no sidecar or entry covers the word under the current narrowing epoch
    /// (counted as a miss).
    #[inline(always)]
    pub fn probe_or_miss(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
    ) -> Result<Hit, Miss> {
        // An empty sidecar never matches: its epoch is one no domain reaches.
        if reg < self.cfg.sidecars
            && let e = &self.sidecars[reg]
            && e.matches(pd, w, epochs.narrow)
        {
            self.stats.sidecar_hits += 1;
            self.last_hit = usize::MAX;
            return Ok(Hit {
                perm: e.perm(w),
                denial_is_final: e.widen == epochs.widen,
            });
        }
        // Each fixed shape compiled for its own set size; a dense index, so one jump.
        let probed = match self.fixed_shape {
            1 => self.probe_set::<1>(pd, w, epochs, reg),
            2 => self.probe_set::<2>(pd, w, epochs, reg),
            3 => self.probe_set::<4>(pd, w, epochs, reg),
            4 => self.probe_set::<8>(pd, w, epochs, reg),
            // Other shapes (and no entries at all): the fill chooses after the walk.
            _ => self.probe_other_shape(pd, w, epochs, reg),
        };
        let victim = match probed {
            Ok(h) => return Ok(h),
            Err(victim) => victim,
        };
        Err(Miss {
            victim,
            pd,
            w,
            epochs,
            reg,
        })
    }

    /// [`Plb::probe_or_miss`] past the sidecar for the shapes without a fixed path: the hit,
    /// or `Err(usize::MAX)` (the fill chooses the way after the walk). Out of line, so the fixed
    /// shapes' paths stay small.
    #[cold]
    #[inline(never)]
    fn probe_other_shape(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
    ) -> Result<Hit, usize> {
        self.probe(pd, w, epochs, reg).ok_or(usize::MAX)
    }

    /// The second half of the miss path (see [`Plb::probe_or_miss`]): records the walk and
    /// fills its answer `l` into the way chosen, and into the sidecar the probe went through.
    /// `miss` must come from this PLB's last probe (a debug assertion checks that its way
    /// lies in the word's set); it never panics in a release build.
    #[inline(always)]
    pub fn fill_miss(&mut self, miss: Miss, l: &Lookup) {
        let Miss {
            victim,
            pd,
            w,
            epochs,
            reg,
        } = miss;
        // (`usize::MAX`, and any slot a miss from some other PLB names past this one's
        // array, leave the choice to `fill`.)
        debug_assert!(
            victim == usize::MAX
                || (self.set_first(pd, w)..self.set_first(pd, w) + self.set_ways).contains(&victim),
            "a miss is filled by the PLB that counted it"
        );
        if victim >= self.entries.len() {
            self.fill_other_shape(pd, w, epochs, l, reg);
        } else {
            self.stats.table_refs += u64::from(l.refs);
            self.put(victim, Entry::from_lookup(pd, epochs, w, l), reg);
        }
    }

    /// [`Plb::fill`] for the shapes without a fixed path, out of line (see
    /// [`Plb::probe_other_shape`]).
    #[cold]
    #[inline(never)]
    fn fill_other_shape(&mut self, pd: PdId, w: WordAddr, epochs: Epochs, l: &Lookup, reg: usize) {
        self.fill(pd, w, epochs, l, reg);
    }

    /// [`Plb::probe_or_miss`] past the sidecar, for a PLB of `W`-way sets: the hit, or
    /// `Err` with the way a miss's fill replaces (an eviction counted if it holds an entry).
    /// A miss takes one tick for the probe and the fill: nothing is stamped between them, so
    /// the LRU order is the one two ticks would give.
    #[inline(always)]
    fn probe_set<const W: usize>(
        &mut self,
        pd: PdId,
        w: WordAddr,
        epochs: Epochs,
        reg: usize,
    ) -> Result<Hit, usize> {
        let epoch = epochs.narrow;
        self.tick += 1;
        let first = self.set_first(pd, w);
        // The set as a fixed-size array: one bounds check, and every way index below W.
        let set: &[Entry; W] = self.entries[first..first + W]
            .try_into()
            .expect("a set is W slots");
        // The way whose entry covers the word (at most one does, see `probe`).
        let found = way_of_any(set, pd, w).unwrap_or(usize::MAX);
        if found != usize::MAX {
            let e = set[found & (W - 1)];
            let i = first + (found & (W - 1));
            if e.epoch == epoch {
                self.stamps[i] = self.tick;
                self.stats.hits += 1;
                self.last_hit = i;
                if reg < self.cfg.sidecars {
                    self.sidecars[reg] = e;
                    self.close_windows(reg);
                }
                return Ok(Hit {
                    perm: e.perm(w),
                    denial_is_final: e.widen == epochs.widen,
                });
            }
            // A stale entry: dropped, so its way is empty (stamp 0) for the fill.
            self.entries[i] = Entry::EMPTY;
            self.stamps[i] = 0;
            self.stats.invalidations += 1;
        }
        self.stats.misses += 1;
        let victim = match self.cfg.replacement {
            Replacement::Lru => {
                let stamps: &[u64; W] = self.stamps[first..first + W]
                    .try_into()
                    .expect("a set is W slots");
                let way = oldest_any(stamps) & (W - 1);
                self.stats.evictions += u64::from(self.entries[first..first + W][way].is_valid());
                first + way
            }
            Replacement::Random { .. } => self.random_victim(first),
        };
        Err(victim)
    }

    /// [`Plb::victim`] under random replacement, out of line (the machine's miss path is
    /// laid out for LRU).
    #[inline(never)]
    fn random_victim(&mut self, first: usize) -> usize {
        self.victim(first)
    }

    /// The way a fill in the set at `first` replaces: the oldest (LRU; empty ways have stamp
    /// 0), or a free way, else a seeded random one. Counts an eviction if it holds an entry.
    #[inline(always)]
    fn victim(&mut self, first: usize) -> usize {
        let victim = match self.cfg.replacement {
            Replacement::Lru => {
                first
                    + match self.set_ways {
                        1 => 0,
                        2 => oldest::<2>(&self.stamps, first),
                        4 => oldest::<4>(&self.stamps, first),
                        8 => oldest::<8>(&self.stamps, first),
                        n => oldest_any(&self.stamps[first..first + n]),
                    }
            }
            Replacement::Random { .. } => {
                let range = first..first + self.set_ways;
                match range.clone().find(|&i| !self.entries[i].is_valid()) {
                    Some(free) => free,
                    None => {
                        self.rng = self
                            .rng
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        range.start + ((self.rng >> 33) as usize % range.len())
                    }
                }
            }
        };
        if self.entries[victim].is_valid() {
            self.stats.evictions += 1;
        }
        victim
    }

    /// Writes `new` into slot `i` (stamped now) and sidecar `reg`, closing that sidecar's
    /// windows.
    #[inline(always)]
    fn put(&mut self, i: usize, new: Entry, reg: usize) {
        self.last_hit = usize::MAX;
        self.entries[i] = new;
        self.stamps[i] = self.tick;
        self.stats.fills += 1;
        if reg < self.cfg.sidecars {
            self.sidecars[reg] = new;
            self.close_windows(reg);
        }
    }

    /// Drops every entry and sidecar of `pd`.
    pub fn flush_pd(&mut self, pd: PdId) {
        for (e, st) in self.entries.iter_mut().zip(&mut self.stamps) {
            if e.is_valid() && e.pd == pd {
                *e = Entry::EMPTY;
                *st = 0;
                self.stats.invalidations += 1;
            }
        }
        for s in &mut self.sidecars {
            if s.is_valid() && s.pd == pd {
                *s = Entry::EMPTY;
            }
        }
        self.windows = [Window::CLOSED; 3];
        self.open = 0;
    }

    /// Drops every entry and sidecar.
    pub fn flush_all(&mut self) {
        for e in &mut self.entries {
            if e.is_valid() {
                *e = Entry::EMPTY;
                self.stats.invalidations += 1;
            }
        }
        self.stamps.fill(0);
        self.sidecars.fill(Entry::EMPTY);
        self.windows = [Window::CLOSED; 3];
        self.open = 0;
        self.last_hit = usize::MAX;
    }

    /// The valid entries (array, then sidecars).
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.entries
            .iter()
            .chain(&self.sidecars[..self.cfg.sidecars])
            .filter(|e| e.is_valid())
            .copied()
    }

    /// Checks that no entry whose narrowing epoch is current grants more than its domain's
    /// table, and that an entry filled since the last widening matches it exactly (so its
    /// denials are right): for every word checked, the table's permission includes the
    /// entry's. An entry may be
    /// *narrower* than the table after a widening (widening does not invalidate; a denied hit
    /// is re-checked against the table), never wider. `current(pd)` gives the table and epoch
    /// of a live domain (`None` for a dead one, whose entries can never hit again because ids
    /// are not reused). Vector entries are checked at all 16 words, block entries at their
    /// first and last words.
    ///
    /// # Errors
    /// The first [`Inconsistency`].
    pub fn check_consistent<'t, F>(&self, current: F) -> Result<(), Inconsistency>
    where
        F: Fn(PdId) -> Option<(&'t dyn PermTable, Epochs)>,
    {
        for e in self.entries() {
            let Some((table, epochs)) = current(e.pd) else {
                continue;
            };
            let exact = e.widen == epochs.widen;
            if e.epoch != epochs.narrow {
                continue;
            }
            let (lo, hi) = e.span();
            let (lo, hi) = (lo.0, hi.0);
            let words: Vec<WordAddr> = if hi.wrapping_sub(lo) == VECTOR_WORDS {
                (lo..hi).map(WordAddr).collect()
            } else {
                vec![WordAddr(lo), WordAddr(hi.wrapping_sub(1))]
            };
            for w in words {
                let t = table.perm(w);
                if !t.includes(e.perm(w)) || (exact && t != e.perm(w)) {
                    return Err(Inconsistency {
                        entry: e,
                        word: w,
                        plb: e.perm(w),
                        table: t,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Whether the `size` bytes (1, 2, 4 or 8) at byte address `addr` lie in `window`, a byte
/// range `(lo, len)` as [`Plb::windows`] gives it; if so, the words they touch, which is
/// the count of sidecar hits the check would make. The one test behind
/// [`Plb::window_allows`], for callers that keep a copy of the windows.
#[inline(always)]
#[must_use]
pub fn window_words((lo, len): (u64, u64), addr: u64, size: u64) -> Option<u64> {
    let off = addr.wrapping_sub(lo);
    (off < len && len - off >= size).then_some(((addr & 3) + size + 3) >> 2)
}

/// The way of the `W`-way set at `first` whose entry covers `pd`'s word `w`, if any. One
/// fixed-size slice, so the compares unroll with one bounds check and no loop.
#[inline(always)]
fn way_of<const W: usize>(entries: &[Entry], first: usize, pd: PdId, w: WordAddr) -> Option<usize> {
    let set: &[Entry; W] = entries[first..first + W]
        .try_into()
        .expect("a set is W slots");
    way_of_any(set, pd, w)
}

/// [`way_of`] for a set of any size.
#[inline(always)]
fn way_of_any(set: &[Entry], pd: PdId, w: WordAddr) -> Option<usize> {
    let w = w.0;
    let mut found = usize::MAX;
    for (i, e) in set.iter().enumerate() {
        // An empty slot never matches (see `Entry::EMPTY`).
        let m = (e.pd == pd) & (w & e.mask == e.tag);
        found = if m { i } else { found };
    }
    (found != usize::MAX).then_some(found)
}

/// The least recently used way of the `W`-way set at `first` (empty ways have stamp 0).
#[inline(always)]
fn oldest<const W: usize>(stamps: &[u64], first: usize) -> usize {
    let set: &[u64; W] = stamps[first..first + W]
        .try_into()
        .expect("a set is W slots");
    oldest_any(set)
}

/// [`oldest`] for a set of any size.
#[inline(always)]
fn oldest_any(stamps: &[u64]) -> usize {
    // Stamp and way in one key, so the minimum needs no data-dependent branch. (A stamp past
    // 2^48 only blurs the order, never the way.)
    let best = stamps
        .iter()
        .enumerate()
        .map(|(way, &stamp)| (stamp << 16) | way as u64)
        .min()
        .unwrap_or(0);
    (best & 0xffff) as usize
}

/// How setting a range to a permission changes what a domain may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    /// Some word loses an access it allows now.
    pub narrows: bool,
    /// Some word gains an access it does not allow now.
    pub widens: bool,
}

impl Change {
    /// The domain's counters after an update with this change: a narrowing advances
    /// `narrow` (invalidating every entry), else a widening advances `widen`.
    #[must_use]
    pub fn apply(self, e: Epochs) -> Epochs {
        if self.narrows {
            Epochs {
                narrow: e.narrow + 1,
                ..e
            }
        } else if self.widens {
            Epochs {
                widen: e.widen + 1,
                ..e
            }
        } else {
            e
        }
    }
}

/// Ranges longer than this many words are walked by the table's runs
/// ([`PermTable::runs`]) rather than by lookups.
const LONG_RANGE_WORDS: u64 = 1 << 16;

/// How setting `range` to `perm` would change `table`; walks the table by its covers, so a
/// large uniform range costs one lookup per block, and stops once both are known. A long
/// range is walked by the table's runs instead, whose cost follows what the table holds, not
/// the range's length (a flat table's lookups cover 16 words, so a 48-bit range would take
/// 2^40 of them).
#[must_use]
pub fn change<T: PermTable + ?Sized>(table: &T, range: WordRange, perm: Perm) -> Change {
    let mut c = Change::default();
    let mut note = |held: Perm| {
        c.narrows |= !perm.includes(held);
        c.widens |= !held.includes(perm);
        c.narrows && c.widens
    };
    if range.len_words() > LONG_RANGE_WORDS {
        for (_, held) in table.runs(range) {
            if note(held) {
                break;
            }
        }
        return c;
    }
    let (mut w, end) = (range.start().0, range.end().0);
    while w < end {
        let l = table.lookup(WordAddr(w));
        match l.cover {
            Cover::Block { log2_words } => {
                if note(l.perm) {
                    break;
                }
                w = (w | ((1u64 << log2_words) - 1)).saturating_add(1);
            }
            Cover::Vector16 { perms } => {
                let group_end = (w | (VECTOR_WORDS - 1)) + 1;
                for x in w..group_end.min(end) {
                    if note(Perm::from_bits(u64::from(
                        perms >> (2 * (x % VECTOR_WORDS)),
                    ))) {
                        return c;
                    }
                }
                w = group_end;
            }
        }
    }
    c
}
