//! The model's map of allocated words: a map from word index to [`Word`] with the
//! operations of a `BTreeMap<u64, Word>` (the same ascending order), stored in chunks of 64
//! words shared copy-on-write. Copying a model (a harness forks one per fuzz input) then
//! costs a pointer per chunk, and a call that changes a word copies only that word's chunk.
//! It is a container, not a policy: every rule stays per word in [`Model`](crate::model::Model).
//!
//! A chunk remembers, once asked, whether all its words are allocated and whether they are
//! all equal, until one of them changes: walks over many words ([`Words::runs`],
//! [`Words::range_runs`]) then take such a chunk whole.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::model::Word;

/// log2 of the words in a chunk.
const SHIFT: u32 = 6;
/// Words in a chunk.
const CHUNK: u64 = 1 << SHIFT;

type Slots = [Option<Word>; CHUNK as usize];

/// What a chunk's slots are as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    /// Every slot holds a word.
    full: bool,
    /// Every slot holds a word, and all are equal.
    uniform: bool,
}

/// 64 slots, and their [`Summary`] once worked out (forgotten by [`slots_mut`]).
#[derive(Debug, Clone)]
struct Chunk {
    slots: Slots,
    summary: OnceLock<Summary>,
}

impl PartialEq for Chunk {
    fn eq(&self, other: &Chunk) -> bool {
        self.slots == other.slots
    }
}

impl Eq for Chunk {}

impl Chunk {
    fn empty() -> Arc<Chunk> {
        Arc::new(Chunk {
            slots: std::array::from_fn(|_| None),
            summary: OnceLock::new(),
        })
    }

    fn summary(&self) -> Summary {
        *self.summary.get_or_init(|| {
            let full = self.slots.iter().all(Option::is_some);
            Summary {
                full,
                uniform: full && self.slots.windows(2).all(|p| p[0] == p[1]),
            }
        })
    }
}

/// A chunk's slots, to change: copied first if shared, and its summary forgotten.
fn slots_mut(ch: &mut Arc<Chunk>) -> &mut Slots {
    let c = Arc::make_mut(ch);
    c.summary = OnceLock::new();
    &mut c.slots
}

/// Allocated words by index. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    /// Chunks by `index >> SHIFT`; a chunk with no word is removed.
    chunks: BTreeMap<u64, Arc<Chunk>>,
    len: usize,
}

fn split(w: u64) -> (u64, usize) {
    (w >> SHIFT, (w & (CHUNK - 1)) as usize)
}

impl Words {
    /// No words.
    #[must_use]
    pub fn new() -> Words {
        Words::default()
    }

    /// How many words there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Word `w`.
    #[must_use]
    pub fn get(&self, w: &u64) -> Option<&Word> {
        let (c, i) = split(*w);
        self.chunks.get(&c).and_then(|ch| ch.slots[i].as_ref())
    }

    /// Word `w`, to change (its chunk copied first if shared).
    pub fn get_mut(&mut self, w: &u64) -> Option<&mut Word> {
        let (c, i) = split(*w);
        let ch = self.chunks.get_mut(&c)?;
        ch.slots[i].as_ref()?;
        slots_mut(ch)[i].as_mut()
    }

    /// Sets word `w`; returns the word it replaces.
    pub fn insert(&mut self, w: u64, x: Word) -> Option<Word> {
        let (c, i) = split(w);
        let ch = self.chunks.entry(c).or_insert_with(Chunk::empty);
        let old = slots_mut(ch)[i].replace(x);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Sets every word of `[lo, hi)` to a copy of `x` (what [`Words::insert`] of each would
    /// do, a chunk at a time).
    pub fn fill(&mut self, lo: u64, hi: u64, x: &Word) {
        let mut w = lo;
        while w < hi {
            let (c, i) = split(w);
            let n = ((hi - w) as usize).min(CHUNK as usize - i);
            let ch = self.chunks.entry(c).or_insert_with(Chunk::empty);
            for slot in &mut slots_mut(ch)[i..i + n] {
                if slot.replace(x.clone()).is_none() {
                    self.len += 1;
                }
            }
            w += n as u64;
        }
    }

    /// Calls `f` on every word `touch` accepts, ascending, to change it; a chunk with no such
    /// word is not copied.
    pub fn update_where(
        &mut self,
        touch: impl Fn(&Word) -> bool,
        mut f: impl FnMut(u64, &mut Word),
    ) {
        for (&c, ch) in &mut self.chunks {
            if !ch.slots.iter().flatten().any(&touch) {
                continue;
            }
            let base = c << SHIFT;
            for (i, slot) in slots_mut(ch).iter_mut().enumerate() {
                if let Some(x) = slot
                    && touch(x)
                {
                    f(base + i as u64, x);
                }
            }
        }
    }

    /// Removes word `w`; returns it.
    pub fn remove(&mut self, w: &u64) -> Option<Word> {
        let (c, i) = split(*w);
        let ch = self.chunks.get_mut(&c)?;
        ch.slots[i].as_ref()?;
        let old = slots_mut(ch)[i].take();
        self.len -= 1;
        if ch.slots.iter().all(Option::is_none) {
            self.chunks.remove(&c);
        }
        old
    }

    /// The chunks that overlap `range`, ascending, each with its first word's index and the
    /// slots `[a, b)` of it inside the range (never empty).
    fn chunks_in(&self, range: Range<u64>) -> impl Iterator<Item = (u64, &Chunk, usize, usize)> {
        let (lo, hi) = (range.start, range.end);
        let chunks = if lo < hi {
            self.chunks.range(lo >> SHIFT..=(hi - 1) >> SHIFT)
        } else {
            self.chunks.range(1..1)
        };
        chunks.map(move |(&c, ch)| {
            let base = c << SHIFT;
            let a = lo.saturating_sub(base).min(CHUNK) as usize;
            let b = (hi - base).min(CHUNK) as usize;
            (base, &**ch, a, b)
        })
    }

    /// The words in `range`, ascending.
    pub fn range(&self, range: Range<u64>) -> impl Iterator<Item = (u64, &Word)> + '_ {
        self.chunks_in(range).flat_map(move |(base, ch, a, b)| {
            ch.slots[a..b]
                .iter()
                .enumerate()
                .filter_map(move |(i, x)| Some((base + (a + i) as u64, x.as_ref()?)))
        })
    }

    /// The words in `range` as runs `[start, end)` of equal words, ascending: what
    /// [`Words::range`] lists, with a chunk whose words are all equal given as one run (its
    /// part in the range) and every other word as a run of one. Runs that touch may be
    /// equal.
    pub fn range_runs(&self, range: Range<u64>) -> impl Iterator<Item = (u64, u64, &Word)> + '_ {
        self.chunks_in(range).flat_map(move |(base, ch, a, b)| {
            // A uniform chunk: its first slot in the range, standing for all of them.
            let (end, len) = if ch.summary().uniform {
                (a + 1, (b - a) as u64)
            } else {
                (b, 1)
            };
            ch.slots[a..end]
                .iter()
                .enumerate()
                .filter_map(move |(i, x)| {
                    let w = base + (a + i) as u64;
                    Some((w, w + len, x.as_ref()?))
                })
        })
    }

    /// Every word, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Word)> + '_ {
        self.range(0..u64::MAX)
    }

    /// Every word's index, ascending.
    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(w, _)| w)
    }

    /// The maximal runs `[start, end)` of consecutive words, ascending: what
    /// [`Words::keys`] lists, grouped.
    #[must_use]
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (&c, ch) in &self.chunks {
            let base = c << SHIFT;
            if ch.summary().full {
                match out.last_mut() {
                    Some(last) if last.1 == base => last.1 = base + CHUNK,
                    _ => out.push((base, base + CHUNK)),
                }
                continue;
            }
            let ch = &ch.slots;
            let mut i = 0;
            while i < ch.len() {
                if ch[i].is_none() {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < ch.len() && ch[i].is_some() {
                    i += 1;
                }
                let (a, b) = (base + start as u64, base + i as u64);
                match out.last_mut() {
                    Some(last) if last.1 == a => last.1 = b,
                    _ => out.push((a, b)),
                }
            }
        }
        out
    }

    /// The lowest word's index.
    #[must_use]
    pub fn first(&self) -> Option<u64> {
        self.keys().next()
    }

    /// The highest word's index.
    #[must_use]
    pub fn last(&self) -> Option<u64> {
        let (&c, ch) = self.chunks.iter().next_back()?;
        let i = ch.slots.iter().rposition(Option::is_some)?;
        Some((c << SHIFT) + i as u64)
    }
}

impl Words {
    /// The word ranges `[lo, hi)` that may differ between `self` and `before`, an earlier
    /// copy of it: every chunk that is not the very one `before` shares (copy-on-write means
    /// an unchanged chunk is still shared), merged where adjacent. A superset of the words
    /// that changed, found in time proportional to the chunks.
    #[must_use]
    pub fn changed_since(&self, before: &Words) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut note = |c: u64| {
            let (lo, hi) = (c << SHIFT, (c + 1) << SHIFT);
            match out.last_mut() {
                Some(last) if last.1 == lo => last.1 = hi,
                _ => out.push((lo, hi)),
            }
        };
        let (mut a, mut b) = (
            self.chunks.iter().peekable(),
            before.chunks.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(&(&c, _)), None) => {
                    note(c);
                    a.next();
                }
                (None, Some(&(&c, _))) => {
                    note(c);
                    b.next();
                }
                (Some(&(&c, x)), Some(&(&d, y))) => {
                    if c < d {
                        note(c);
                        a.next();
                    } else if d < c {
                        note(d);
                        b.next();
                    } else {
                        if !Arc::ptr_eq(x, y) {
                            note(c);
                        }
                        a.next();
                        b.next();
                    }
                }
            }
        }
        out
    }
}

impl std::ops::Index<&u64> for Words {
    type Output = Word;

    /// # Panics
    /// If word `w` is not allocated.
    fn index(&self, w: &u64) -> &Word {
        self.get(w).expect("an allocated word")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VecMap;
    use mmp_domains::PdId;
    use mmp_supervisor::policy::RegionKind;

    fn word(n: u64) -> Word {
        Word {
            region: (n, n + 1),
            owner: PdId::SUPERVISOR,
            kind: RegionKind::Heap,
            held: VecMap::new(),
            gates: VecMap::new(),
        }
    }

    /// Against a `BTreeMap<u64, Word>`: the same contents and order after any sequence of
    /// inserts and removes, and a copy unaffected by changes to the original.
    #[test]
    fn behaves_as_a_btreemap_and_copies_are_independent() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut words = Words::new();
        let mut oracle: BTreeMap<u64, Word> = BTreeMap::new();
        let mut copy = None;
        for step in 0..20_000 {
            let w = next() % 1000 + if next() % 4 == 0 { 1 << 40 } else { 0 };
            if next() % 50 == 0 {
                // A range filled at once, across chunk boundaries.
                let (len, n) = (next() % 200, next() % 50);
                words.fill(w, w + len, &word(n));
                for v in w..w + len {
                    oracle.insert(v, word(n));
                }
            } else if next() % 100 == 0 {
                // Words changed where a test accepts them.
                let k = next() % 7;
                words.update_where(|x| x.region.1 % 7 == k, |_, x| x.region.0 += 3);
                for x in oracle.values_mut() {
                    if x.region.1 % 7 == k {
                        x.region.0 += 3;
                    }
                }
            } else if next() % 3 == 0 {
                assert_eq!(words.remove(&w), oracle.remove(&w));
            } else {
                let n = next() % 50;
                assert_eq!(words.insert(w, word(n)), oracle.insert(w, word(n)));
            }
            if let Some(x) = words.get_mut(&w) {
                x.region.1 += 1;
                oracle.get_mut(&w).unwrap().region.1 += 1;
            }
            if step == 10_000 {
                copy = Some((words.clone(), oracle.clone()));
            }
            assert_eq!(words.len(), oracle.len());
        }
        let all: Vec<(u64, &Word)> = words.iter().collect();
        let want: Vec<(u64, &Word)> = oracle.iter().map(|(&w, x)| (w, x)).collect();
        assert_eq!(all, want);
        let some: Vec<u64> = words.range(100..700).map(|(w, _)| w).collect();
        let want: Vec<u64> = oracle.range(100..700).map(|(&w, _)| w).collect();
        assert_eq!(some, want);
        // Runs of equal words, expanded, are the words.
        for (lo, hi) in [(0, u64::MAX), (100, 700), (37, 38), (64, 128)] {
            let expanded: Vec<(u64, &Word)> = words
                .range_runs(lo..hi)
                .flat_map(|(a, b, x)| (a..b).map(move |w| (w, x)))
                .collect();
            let want: Vec<(u64, &Word)> = oracle.range(lo..hi).map(|(&w, x)| (w, x)).collect();
            assert_eq!(expanded, want, "{lo}..{hi}");
        }
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &w in oracle.keys() {
            match runs.last_mut() {
                Some(last) if last.1 == w => last.1 = w + 1,
                _ => runs.push((w, w + 1)),
            }
        }
        assert_eq!(words.runs(), runs);
        assert_eq!(words.first(), oracle.keys().next().copied());
        assert_eq!(words.last(), oracle.keys().next_back().copied());
        // What changed since a copy: every word that differs lies in a reported range.
        let before = words.clone();
        let mut after = words.clone();
        assert!(after.changed_since(&before).is_empty());
        after.insert(5, word(1));
        after.remove(&(1 << 40));
        if let Some(x) = after.get_mut(&700) {
            x.region.0 += 1;
        }
        let changed = after.changed_since(&before);
        for w in [5, 1 << 40, 700] {
            assert!(
                changed.iter().any(|&(lo, hi)| lo <= w && w < hi),
                "{w} not in {changed:?}"
            );
        }
        assert!(changed.len() <= 3, "{changed:?}");
        let (words, oracle) = copy.unwrap();
        let runs: Vec<(u64, u64, &Word)> = words.range_runs(0..u64::MAX).collect();
        let want: Vec<(u64, u64, &Word)> = oracle.iter().map(|(&w, x)| (w, w + 1, x)).collect();
        let expanded: Vec<(u64, u64, &Word)> = runs
            .iter()
            .flat_map(|&(a, b, x)| (a..b).map(move |w| (w, w + 1, x)))
            .collect();
        assert_eq!(expanded, want, "the copy's runs");
        let all: Vec<(u64, &Word)> = words.iter().collect();
        let want: Vec<(u64, &Word)> = oracle.iter().map(|(&w, x)| (w, x)).collect();
        assert_eq!(all, want, "the copy kept its contents");
    }

    /// A chunk of equal words is one run, and stops being one when a word changes; the
    /// runs of allocated words take a full chunk whole, and split it when a word goes.
    #[test]
    fn equal_words_in_a_chunk_are_one_run_until_one_changes() {
        let mut words = Words::new();
        words.fill(10, 200, &word(1));
        let runs = |w: &Words, lo, hi| -> Vec<(u64, u64)> {
            w.range_runs(lo..hi).map(|(a, b, _)| (a, b)).collect()
        };
        // Chunk 0 is not full (words 0..10 are free): a run per word. Chunks 1 and 2 are
        // whole; chunk 3 holds 192..200 only.
        let got = runs(&words, 60, 300);
        let mut want: Vec<(u64, u64)> = (60..64).map(|w| (w, w + 1)).collect();
        want.extend([(64, 128), (128, 192)]);
        want.extend((192..200).map(|w| (w, w + 1)));
        assert_eq!(got, want);
        // Cut to the range.
        assert_eq!(runs(&words, 70, 100), vec![(70, 100)]);
        // A copy shares the chunks; a change to one word of the original splits its chunk
        // into words there, and leaves the copy's chunk whole.
        let copy = words.clone();
        words.get_mut(&70).unwrap().region.0 += 1;
        assert_eq!(runs(&words, 64, 128).len(), 64);
        assert_eq!(runs(&copy, 64, 128), vec![(64, 128)]);
        // Made equal again, it is one run again.
        words.get_mut(&70).unwrap().region.0 -= 1;
        assert_eq!(runs(&words, 64, 128), vec![(64, 128)]);
        // Allocated runs: whole chunks merge; a word removed splits the run.
        assert_eq!(words.runs(), vec![(10, 200)]);
        words.remove(&100);
        assert_eq!(words.runs(), vec![(10, 100), (101, 200)]);
        assert_eq!(copy.runs(), vec![(10, 200)]);
    }
}
