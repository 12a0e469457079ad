//! One trace, many machines: the trace is decoded once, in blocks of [`BLOCK`] events, and
//! every engine replays every block, the engines spread over `jobs` threads.
//!
//! What it guarantees: each engine sees exactly the events, in the order, that
//! [`Replay::run`] would give it, so its report equals the report of replaying the trace on
//! it alone (the timings apart); the engines come back in the order given. The decoder runs
//! on the calling thread, at most eight blocks (`AHEAD`) ahead of the slowest engine, so
//! memory stays at a few blocks whatever the trace's length. A block packs each memory
//! reference in 8 bytes, since every engine streams every block: a grid of 12 points reads
//! each item 12 times.

use std::sync::Arc;
use std::time::Instant;

use super::{Replay, ReplayError};
use crate::trace::binary::{BinaryReader, EventSink};
use crate::trace::{Event, EventSource, MemKind};

/// Events per block handed to the engines.
pub const BLOCK: usize = 1 << 14;

/// Why replaying on many engines stopped.
#[derive(Debug, thiserror::Error)]
pub enum ManyError {
    /// The trace could not be read (the decoder's error, with its place).
    #[error(transparent)]
    Decode(ReplayError),
    /// Engine `engine` (its index in the list given) could not follow the trace.
    #[error("grid point {engine}: {error}")]
    Engine {
        /// The engine's index.
        engine: usize,
        /// Its error.
        error: ReplayError,
    },
}

/// Where a packed reference's key `size << 2 | kind` starts: the top 6 bits of its `u64`,
/// the address taking the other 58 (sign-extended, so a 64-bit kernel's canonical addresses
/// pack too).
const KEY_SHIFT: u32 = 58;

/// The memory reference as one `u64` (its key above [`KEY_SHIFT`], its address below), if it
/// packs: its size is below 16 and its address is the sign extension of its low 58 bits.
#[inline(always)]
fn pack(kind: MemKind, addr: u64, size: u32) -> Option<u64> {
    let fits = size < 16 && ((((addr << 6) as i64) >> 6) as u64) == addr;
    fits.then(|| (u64::from((size << 2) | kind as u32) << KEY_SHIFT) | (addr << 6 >> 6))
}

/// The kind, address and size of a reference [`pack`] packed.
#[inline(always)]
fn unpack(p: u64) -> (MemKind, u64, u32) {
    let key = (p >> KEY_SHIFT) as u32;
    let kind = match key & 3 {
        0 => MemKind::Load,
        1 => MemKind::Store,
        2 => MemKind::Modify,
        _ => MemKind::Fetch,
    };
    (kind, (((p << 6) as i64) >> 6) as u64, key >> 2)
}

/// [`BLOCK`] events at most, in trace order: the memory references packed (8 bytes each, so
/// that every engine streams half the bytes an [`Event`] would take), and the other events
/// (with any reference that does not pack) apart, each with the number of packed references
/// before it. An engine replays the references between two others in one tight loop.
#[derive(Debug, Default)]
struct Events {
    mems: Vec<u64>,
    others: Vec<(u32, Event)>,
}

impl Events {
    fn new() -> Events {
        Events {
            mems: Vec::with_capacity(BLOCK),
            others: Vec::new(),
        }
    }

    #[inline(always)]
    fn push_mem(&mut self, kind: MemKind, addr: u64, size: u32) {
        match pack(kind, addr, size) {
            Some(p) => self.mems.push(p),
            None => self.push_other(Event::Mem { kind, addr, size }),
        }
    }

    #[cold]
    fn push_other(&mut self, e: Event) {
        // At most BLOCK of them: the count fits.
        self.others.push((self.mems.len() as u32, e));
    }

    fn push(&mut self, e: Event) {
        match e {
            Event::Mem { kind, addr, size } => self.push_mem(kind, addr, size),
            e => self.push_other(e),
        }
    }

    fn len(&self) -> usize {
        self.mems.len() + self.others.len()
    }

    fn full(&self) -> bool {
        self.len() >= BLOCK
    }

    /// Replays the block on `r` as [`Replay::run`] would the same events.
    fn feed(&self, r: &mut Replay) -> Result<(), ReplayError> {
        let t = Instant::now();
        let mut from = 0;
        let mut res = Ok(());
        for (at, e) in &self.others {
            let at = *at as usize;
            feed_mems(r, &self.mems[from..at]);
            from = at;
            res = r.step(e);
            if res.is_err() {
                break;
            }
        }
        if res.is_ok() {
            feed_mems(r, &self.mems[from..]);
        }
        r.flush_window_hits();
        r.seconds += t.elapsed().as_secs_f64();
        res
    }
}

/// Replays packed references on `r`. As the binary reader's fast path, the report counts
/// them as events after the run (a fault names its event all the same) and as memory
/// events as the events that are not others.
#[inline(always)]
fn feed_mems(r: &mut Replay, mems: &[u64]) {
    for (n, &p) in mems.iter().enumerate() {
        let (kind, addr, size) = unpack(p);
        r.mem_lagging(kind, addr, size, n as u64);
    }
    r.events += mems.len() as u64;
}

type Block = Arc<Events>;

/// Replays the binary trace `src` on every engine of `engines`, decoding it once; `jobs`
/// threads (at least 1, at most one per engine) run the engines, and `progress` gets the
/// reader's byte position once per block.
///
/// # Errors
/// [`ManyError::Decode`] for an unreadable trace; [`ManyError::Engine`] naming the first
/// engine (by index) that could not follow it. Engines that ran are left as they stopped.
pub fn replay_binary<R: std::io::Read>(
    src: &mut BinaryReader<R>,
    engines: &mut [Replay],
    jobs: usize,
    progress: impl FnMut(u64),
) -> Result<(), ManyError> {
    /// Collects decoded events into blocks and ships each full one.
    struct Collect<'a, F: ?Sized, P> {
        block: Events,
        ship: &'a mut F,
        progress: P,
        /// A worker stopped: decoding goes on to the next other event, keeping nothing.
        stopped: bool,
    }
    impl<F: FnMut(Events) -> bool + ?Sized, P: FnMut(u64)> EventSink for Collect<'_, F, P> {
        type Error = ReplayError;

        #[inline(always)]
        fn mem(&mut self, kind: MemKind, addr: u64, size: u32) {
            if self.stopped {
                return;
            }
            self.block.push_mem(kind, addr, size);
            if self.block.full() {
                let full = std::mem::replace(&mut self.block, Events::new());
                self.stopped = !(self.ship)(full);
            }
        }

        fn other(&mut self, e: Event) -> Result<(), ReplayError> {
            if self.stopped {
                return Err(ReplayError::Stopped);
            }
            self.block.push(e);
            if self.block.full() {
                let full = std::mem::replace(&mut self.block, Events::new());
                if !(self.ship)(full) {
                    return Err(ReplayError::Stopped);
                }
            }
            Ok(())
        }

        fn position(&mut self, bytes: u64) {
            (self.progress)(bytes);
        }
    }
    run(engines, jobs, |ship| {
        let mut c = Collect {
            block: Events::new(),
            ship,
            progress,
            stopped: false,
        };
        src.for_each(&mut c)?;
        if c.stopped {
            return Err(ReplayError::Stopped);
        }
        if c.block.len() != 0 {
            (c.ship)(std::mem::take(&mut c.block));
        }
        Ok(())
    })
}

/// Replays `src` (any format's reader) on every engine of `engines`, decoding it once; as
/// [`replay_binary`], `progress` getting the source's position once per block.
///
/// # Errors
/// As [`replay_binary`].
pub fn replay_events(
    src: &mut dyn EventSource,
    engines: &mut [Replay],
    jobs: usize,
    mut progress: impl FnMut(u64),
) -> Result<(), ManyError> {
    run(engines, jobs, |ship| {
        let mut block = Events::new();
        while let Some(e) = src.next_event()? {
            block.push(e);
            if block.full() {
                progress(src.position());
                if !ship(std::mem::replace(&mut block, Events::new())) {
                    return Err(ReplayError::Stopped);
                }
            }
        }
        if block.len() != 0 {
            ship(block);
        }
        Ok(())
    })
}

/// Blocks the decoder may run ahead of the slowest engine.
const AHEAD: usize = 8;

/// What the decoder and the workers share: the blocks not yet replayed by every engine, and
/// each engine's place.
struct Shared<'e> {
    /// `blocks[k]` is block number `base + k`.
    blocks: std::collections::VecDeque<Block>,
    base: usize,
    /// The decoder has shipped its last block.
    done: bool,
    /// An engine failed: everyone stops.
    failed: Option<(usize, ReplayError)>,
    /// The decoder failed, or a worker panicked: everyone stops.
    stopped: bool,
    /// Each engine (None while a worker has it), the number of the next block it needs, and
    /// the worker that ran it last.
    engines: Vec<(Option<&'e mut Replay>, usize, usize)>,
}

impl Shared<'_> {
    /// Drops the blocks every engine has replayed.
    fn trim(&mut self) {
        let slowest = self.engines.iter().map(|e| e.1).min().unwrap_or(self.base);
        while self.base < slowest && self.blocks.pop_front().is_some() {
            self.base += 1;
        }
    }
}

/// Runs `decode` on this thread with a `ship` function that queues each block for every
/// engine (false once an engine has failed), while `jobs` worker threads replay the queued
/// blocks: a free worker takes the engine furthest behind whose next block is decoded, so
/// engines that cost more are not left to one worker. Gathers the first error.
fn run(
    engines: &mut [Replay],
    jobs: usize,
    decode: impl FnOnce(&mut dyn FnMut(Events) -> bool) -> Result<(), ReplayError>,
) -> Result<(), ManyError> {
    use std::sync::{Condvar, Mutex};
    if engines.is_empty() {
        return Ok(());
    }
    let workers = jobs.clamp(1, engines.len());
    let shared = Mutex::new(Shared {
        blocks: std::collections::VecDeque::new(),
        base: 0,
        done: false,
        failed: None,
        stopped: false,
        engines: engines
            .iter_mut()
            .map(|e| (Some(e), 0, usize::MAX))
            .collect(),
    });
    let changed = Condvar::new();
    // A poisoned lock means a worker panicked; the panic is resumed at the join below.
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|me| {
                let (shared, changed) = (&shared, &changed);
                s.spawn(move || work(me, shared, changed))
            })
            .collect();
        let mut ship = |block: Events| {
            let mut g = lock();
            while g.blocks.len() >= AHEAD && g.failed.is_none() && !g.stopped {
                g = changed
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if g.failed.is_some() || g.stopped {
                return false;
            }
            g.blocks.push_back(Arc::new(block));
            changed.notify_all();
            true
        };
        let decoded = decode(&mut ship);
        {
            let mut g = lock();
            g.done = true;
            // A decoder error stops the workers too: the engines' reports stay as they are.
            g.stopped |= decoded.is_err();
            changed.notify_all();
        }
        for h in handles {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        let failed = lock().failed.take();
        match (failed, decoded) {
            (Some((engine, error)), _) => Err(ManyError::Engine { engine, error }),
            (None, Err(e)) => Err(ManyError::Decode(e)),
            (None, Ok(())) => Ok(()),
        }
    })
}

/// Worker `me`: takes the engine furthest behind whose next block is there (of those, one it
/// ran last, whose state its cache still holds), replays every block decoded so far on it,
/// puts it back; returns when every engine has replayed every block (or one failed). A
/// worker that panics stops the others and the decoder, so the panic reaches the caller
/// rather than leaving them waiting.
fn work(me: usize, shared: &std::sync::Mutex<Shared<'_>>, changed: &std::sync::Condvar) {
    /// On unwinding: stop everyone.
    struct StopOnPanic<'a, 'e>(&'a std::sync::Mutex<Shared<'e>>, &'a std::sync::Condvar);
    impl Drop for StopOnPanic<'_, '_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut g = self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                g.stopped = true;
                self.1.notify_all();
            }
        }
    }
    let _guard = StopOnPanic(shared, changed);
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut g = lock();
    loop {
        if g.failed.is_some() || g.stopped {
            return;
        }
        let have = g.base + g.blocks.len();
        let pick = g
            .engines
            .iter()
            .enumerate()
            .filter(|(_, e)| e.0.is_some() && e.1 < have)
            .min_by_key(|(_, e)| (e.1, e.2 != me))
            .map(|(i, _)| i);
        let Some(i) = pick else {
            // Nothing to do now: finished, or waiting for a block or for another worker.
            let all_done = g.done && g.engines.iter().all(|e| e.0.is_some() && e.1 >= have);
            if all_done {
                return;
            }
            g = changed
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        // Every block decoded so far, not just the next: an engine's state (its PLB, its
        // tables) stays in this core's cache while it runs them.
        let next = g.engines[i].1;
        let blocks: Vec<Block> = g.blocks.range(next - g.base..).cloned().collect();
        let engine = g.engines[i].0.take().expect("picked engines are present");
        drop(g);
        let mut ran = 0;
        let mut result = Ok(());
        for b in &blocks {
            result = b.feed(engine);
            if result.is_err() {
                break;
            }
            ran += 1;
        }
        drop(blocks);
        g = lock();
        g.engines[i] = (Some(engine), next + ran, me);
        if let Err(e) = result
            && g.failed.as_ref().is_none_or(|f| f.0 > i)
        {
            g.failed = Some((i, e));
        }
        g.trim();
        changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import;
    use crate::replay::ReplayConfig;
    use crate::trace::TraceWidth;
    use crate::trace::binary::BinaryWriter;
    use mmp_domains::TableFormat;

    fn engines(cpus: &[usize]) -> Vec<Replay> {
        cpus.iter()
            .map(|&cpus| {
                let cfg = ReplayConfig {
                    cpus,
                    ..ReplayConfig::default()
                };
                Replay::new(cfg, TraceWidth::Bits32).unwrap()
            })
            .collect()
    }

    /// A text trace: one domain granted a page, `n` loads on CPU `cpu` (half outside the
    /// page), more than one block of them.
    fn trace(cpu: u32, n: usize) -> String {
        let mut t = String::from(
            "mmp-trace 1 width 32\ndomain 1 d\ngrant 1 0x400000 0x1000 rw\nswitch 1\n",
        );
        t += &format!("cpu {cpu}\nswitch 1\n");
        for i in 0..n {
            t += &format!("load {:#x} 4\n", 0x400000 + (i % 2048) * 4);
        }
        t
    }

    #[test]
    fn every_engine_gets_the_report_it_would_get_alone_whatever_the_jobs() {
        let n = BLOCK * 2 + 7;
        let text = trace(1, n);
        let outside = (0..n).filter(|i| i % 2048 >= 1024).count() as u64;
        let alone: Vec<_> = [2usize, 4, 8]
            .iter()
            .map(|&c| {
                let mut r = engines(&[c]).remove(0);
                let mut src =
                    import::from_reader(std::io::Cursor::new(text.clone()), None).unwrap();
                r.run(src.as_mut(), |_| {}).unwrap();
                r.report()
            })
            .collect();
        for jobs in [1, 2, 5] {
            let mut rs = engines(&[2, 4, 8]);
            let mut src = import::from_reader(std::io::Cursor::new(text.clone()), None).unwrap();
            replay_events(src.as_mut(), &mut rs, jobs, |_| {}).unwrap();
            for (r, a) in rs.iter().zip(&alone) {
                let mut r = r.report();
                r.seconds = a.seconds;
                r.events_per_sec = a.events_per_sec;
                assert_eq!(&r, a, "jobs {jobs}");
                assert_eq!(r.faults.total, outside);
            }
        }
    }

    #[test]
    fn references_that_do_not_pack_and_events_between_them_replay_as_alone() {
        // Every kind; sizes that pack and sizes that do not (3 bytes, 16, 64); addresses that
        // pack (in the grant, beyond the 48-bit width, sign-extended from bit 57) and that
        // do not (bit 58 set alone); faults among them; other events inside blocks: through
        // the event path and the binary reader's, the reports equal a lone replay's.
        let mut t = String::from(
            "mmp-trace 1 width 48\ndomain 1 d\ngrant 1 0x7fff00000000 0x2000 rw\nswitch 1\n",
        );
        let kinds = ["load", "store", "modify", "fetch"];
        let sizes = [4, 8, 1, 3, 16, 2, 64];
        let addrs: [u64; 5] = [
            0x7fff_0000_0000,
            0x7fff_0000_1ffc,
            0xffff_ffff_ffff_fff0,
            0x0400_0000_0000_0000,
            0x7fff_0000_2000,
        ];
        let n = BLOCK + BLOCK / 2;
        for i in 0..n {
            if i % 997 == 0 {
                t += "insns 5\n";
            }
            let a =
                addrs[i % 5 % (1 + 4 * usize::from(i % 11 == 0))].wrapping_add((i % 7 * 4) as u64);
            t += &format!("{} {a:#x} {}\n", kinds[i % 4], sizes[i % 7]);
        }
        let engines = || {
            [TableFormat::Flat, TableFormat::Mlpt]
                .into_iter()
                .map(|format| {
                    let cfg = ReplayConfig {
                        format,
                        ..ReplayConfig::default()
                    };
                    Replay::new(cfg, TraceWidth::Bits48).unwrap()
                })
                .collect::<Vec<_>>()
        };
        let events = || import::from_reader(std::io::Cursor::new(t.clone()), None).unwrap();
        let mut w =
            BinaryWriter::new(std::io::Cursor::new(Vec::new()), TraceWidth::Bits48).unwrap();
        let mut src = events();
        while let Some(e) = src.next_event().unwrap() {
            w.write(&e).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        let alone: Vec<_> = engines()
            .into_iter()
            .map(|mut r| {
                r.run(events().as_mut(), |_| {}).unwrap();
                r.report()
            })
            .collect();
        assert!(
            alone
                .iter()
                .all(|a| a.faults.total > 0 && a.events > n as u64)
        );
        for jobs in [1, 2] {
            let mut by_events = engines();
            replay_events(events().as_mut(), &mut by_events, jobs, |_| {}).unwrap();
            let mut by_binary = engines();
            let mut src = BinaryReader::new(&bytes[..]).unwrap();
            replay_binary(&mut src, &mut by_binary, jobs, |_| {}).unwrap();
            for rs in [&by_events, &by_binary] {
                for (r, a) in rs.iter().zip(&alone) {
                    let mut r = r.report();
                    r.seconds = a.seconds;
                    r.events_per_sec = a.events_per_sec;
                    assert_eq!(&r, a, "jobs {jobs}");
                }
            }
        }
    }

    #[test]
    fn the_first_engine_that_cannot_follow_is_named_and_a_bad_trace_is_a_decode_error() {
        // CPU 3 exists on the engines of 4 and 8 CPUs, not on those of 2.
        let text = trace(3, 100);
        for jobs in [1, 2, 3] {
            let mut rs = engines(&[4, 2, 8, 2]);
            let mut src = import::from_reader(std::io::Cursor::new(text.clone()), None).unwrap();
            let e = replay_events(src.as_mut(), &mut rs, jobs, |_| {}).unwrap_err();
            assert!(
                matches!(e, ManyError::Engine { engine: 1, .. }),
                "jobs {jobs}: {e}"
            );
            assert!(e.to_string().contains("CPU 3 does not exist"), "{e}");
        }
        let bad = format!("{}load zz 4\n", trace(1, BLOCK + 3));
        let mut rs = engines(&[4, 4]);
        let mut src = import::from_reader(std::io::Cursor::new(bad), None).unwrap();
        let e = replay_events(src.as_mut(), &mut rs, 2, |_| {}).unwrap_err();
        assert!(matches!(e, ManyError::Decode(_)), "{e}");
        assert!(
            e.to_string().contains(&format!("line {}", BLOCK + 3 + 7)),
            "{e}"
        );
    }
}
