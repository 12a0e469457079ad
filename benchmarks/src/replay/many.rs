//! One trace, many machines: the trace is decoded once, in blocks of [`BLOCK`] events, and
//! every engine replays every block, the engines spread over `jobs` threads.
//!
//! What it guarantees: each engine sees exactly the events, in the order, that
//! [`Replay::run`] would give it, so its report equals the report of replaying the trace on
//! it alone (the timings apart); the engines come back in the order given. The decoder runs
//! on the calling thread, at most eight blocks (`AHEAD`) ahead of the slowest engine, so
//! memory stays at a few blocks whatever the trace's length.

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

/// One item of a block: a memory reference inline (16 bytes), anything else by its index
/// in the block's `others`. The reference's kind is the variant, so that replaying an item
/// dispatches once, into a check specialised for its kind (as the binary reader's fast
/// path does), rather than once on the item and again on its kind.
#[derive(Debug, Clone, Copy)]
enum Item {
    Load { addr: u64, size: u32 },
    Store { addr: u64, size: u32 },
    Modify { addr: u64, size: u32 },
    Fetch { addr: u64, size: u32 },
    Other(u32),
}

/// [`BLOCK`] events at most, in trace order.
#[derive(Debug, Default)]
struct Events {
    items: Vec<Item>,
    others: Vec<Event>,
}

impl Events {
    fn new() -> Events {
        Events {
            items: Vec::with_capacity(BLOCK),
            others: Vec::new(),
        }
    }

    #[inline(always)]
    fn push_mem(&mut self, kind: MemKind, addr: u64, size: u32) {
        self.items.push(match kind {
            MemKind::Load => Item::Load { addr, size },
            MemKind::Store => Item::Store { addr, size },
            MemKind::Modify => Item::Modify { addr, size },
            MemKind::Fetch => Item::Fetch { addr, size },
        });
    }

    fn push(&mut self, e: Event) {
        match e {
            Event::Mem { kind, addr, size } => self.push_mem(kind, addr, size),
            e => {
                // At most BLOCK of them: the index fits.
                self.items.push(Item::Other(self.others.len() as u32));
                self.others.push(e);
            }
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= BLOCK
    }

    /// Replays the block on `r` as [`Replay::run`] would the same events.
    fn feed(&self, r: &mut Replay) -> Result<(), ReplayError> {
        let t = Instant::now();
        // As the binary reader's fast path: the report counts memory events as the events
        // that are not others.
        let mem = |r: &mut Replay, kind, addr, size| {
            r.mem(kind, addr, size);
            r.events += 1;
            Ok(())
        };
        let res = self.items.iter().try_for_each(|it| match *it {
            Item::Load { addr, size } => mem(r, MemKind::Load, addr, size),
            Item::Store { addr, size } => mem(r, MemKind::Store, addr, size),
            Item::Modify { addr, size } => mem(r, MemKind::Modify, addr, size),
            Item::Fetch { addr, size } => mem(r, MemKind::Fetch, addr, size),
            Item::Other(i) => r.step(&self.others[i as usize]),
        });
        r.flush_window_hits();
        r.seconds += t.elapsed().as_secs_f64();
        res
    }
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
        if !c.block.items.is_empty() {
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
        if !block.items.is_empty() {
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
