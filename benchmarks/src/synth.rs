//! A synthetic trace of the MMP kernel paper's boot experiment (section 4).
//!
//! The paper booted Linux on bochs with its modules in their own protection domains and
//! counted 284,822 protection-domain changes, 97.5% of them to or from the IDE driver, over
//! 955,240,000 instructions (3,353 instructions in each domain on average). [`BootTrace`]
//! generates a trace with exactly those figures, seeded and deterministic, streamed (it
//! never holds the trace in memory):
//!
//! - six domains: `vmlinux` (the core kernel, running at the start), the IDE disk driver
//!   `ide_disk`, and `ext3`, `jbd`, `serial`, `unix`;
//! - each domain's code at `d << 24` (its functions from `+16`), its data at
//!   `(d << 24) + 0x80_0000` (64 KiB, read-write to it), and the kernel's buffer cache at
//!   `0x0030_0000` (64 KiB) granted read-write to the IDE driver as well;
//! - episodes: the kernel calls a module (a call through a call gate: one change), the module
//!   calls back into the kernel 0 to 3 times (two changes each), and returns (one change).
//!   142,411 call/return pairs in all, 138,851 of them to or from the IDE driver, so
//!   277,702 of the 284,822 changes (97.50%) involve it;
//! - after every change, the instructions of the visit (3,353 on average, jittered in pairs
//!   so the total is exact) and its memory references: an instruction fetch at the entry of
//!   a called function and four data references (the IDE driver's go half to the buffer
//!   cache).

use std::collections::VecDeque;

use mmp_domains::Perm;

use crate::rng::SplitMix64;
use crate::trace::{DomainNo, Event, EventSource, MemKind, TraceError, TraceWidth};

/// Domain changes in the paper's boot.
pub const BOOT_CHANGES: u64 = 284_822;
/// Instructions in the paper's boot.
pub const BOOT_INSTRUCTIONS: u64 = 955_240_000;
/// Call/return pairs to or from the IDE driver (277,702 changes: 97.50%).
pub const IDE_PAIRS: u64 = 138_851;
/// The default seed.
pub const DEFAULT_SEED: u64 = 0x4d4d_5020_626f_6f74;
/// The IDE driver's domain name.
pub const IDE: &str = "ide_disk";

const DOMAINS: [(&str, &[&str]); 6] = [
    (
        "vmlinux",
        &[
            "printk",
            "kmalloc",
            "kfree",
            "__wake_up",
            "schedule",
            "add_timer",
            "del_timer",
            "do_IRQ",
            "blk_get_queue",
            "end_that_request_first",
            "submit_bh",
            "ll_rw_block",
            "generic_make_request",
            "spin_lock_irqsave",
        ],
    ),
    (
        "ide_disk",
        &[
            "ide_intr",
            "ide_do_request",
            "ide_dma_intr",
            "ide_end_request",
            "idedisk_do_request",
            "ide_build_dmatable",
            "ide_wait_stat",
            "do_rw_disk",
        ],
    ),
    (
        "ext3",
        &[
            "ext3_readpage",
            "ext3_lookup",
            "ext3_get_block",
            "ext3_read_inode",
        ],
    ),
    (
        "jbd",
        &["journal_start", "journal_stop", "journal_dirty_metadata"],
    ),
    (
        "serial",
        &["rs_interrupt", "rs_write", "serial_console_write"],
    ),
    ("unix", &["unix_create", "unix_stream_sendmsg"]),
];

/// The kernel's buffer cache, shared with the IDE driver.
pub const BUFFER_CACHE: u64 = 0x0030_0000;
const REGION: u64 = 0x1_0000;

fn code_base(d: DomainNo) -> u64 {
    u64::from(d) << 24
}

fn func_addr(d: DomainNo, k: usize) -> u64 {
    code_base(d) + 16 + 4 * k as u64
}

fn data_base(d: DomainNo) -> u64 {
    code_base(d) + 0x80_0000
}

/// The boot-experiment trace generator. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct BootTrace {
    rng: SplitMix64,
    queue: VecDeque<Event>,
    ide_pairs: u64,
    other_pairs: u64,
    segment: u64,
    jitter: u64,
    emitted: u64,
    started: bool,
}

impl BootTrace {
    /// The generator for `seed`; the same seed gives the same trace.
    #[must_use]
    pub fn new(seed: u64) -> BootTrace {
        BootTrace {
            rng: SplitMix64::new(seed),
            queue: VecDeque::new(),
            ide_pairs: IDE_PAIRS,
            other_pairs: BOOT_CHANGES / 2 - IDE_PAIRS,
            segment: 0,
            jitter: 0,
            emitted: 0,
            started: false,
        }
    }

    fn declarations(&mut self) {
        for (i, (name, funcs)) in DOMAINS.iter().enumerate() {
            let d = i as DomainNo + 1;
            self.queue.push_back(Event::Domain {
                no: d,
                name: (*name).to_string(),
            });
            for (k, f) in funcs.iter().enumerate() {
                self.queue.push_back(Event::Function {
                    addr: func_addr(d, k),
                    domain: d,
                    name: (*f).to_string(),
                });
            }
            self.queue.push_back(Event::Grant {
                domain: d,
                addr: data_base(d),
                len: REGION,
                perm: Perm::ReadWrite,
            });
        }
        for d in [1, 2] {
            self.queue.push_back(Event::Grant {
                domain: d,
                addr: BUFFER_CACHE,
                len: REGION,
                perm: Perm::ReadWrite,
            });
        }
        self.queue.push_back(Event::Switch { domain: 1 });
    }

    /// The instructions of the next visit: the mean, plus the remainder spread over the
    /// first visits, plus a jitter that the next visit takes back.
    fn visit_insns(&mut self) -> u64 {
        let i = self.segment;
        self.segment += 1;
        let base =
            BOOT_INSTRUCTIONS / BOOT_CHANGES + u64::from(i < BOOT_INSTRUCTIONS % BOOT_CHANGES);
        if i.is_multiple_of(2) {
            self.jitter = self.rng.below(3000);
            base + self.jitter
        } else {
            base - self.jitter
        }
    }

    /// One visit to domain `d`, entered by a call to function `k` (or by a return).
    fn visit(&mut self, d: DomainNo, entry: Option<usize>) {
        let count = self.visit_insns();
        self.queue.push_back(Event::Insns { count });
        if let Some(k) = entry {
            self.queue.push_back(Event::Mem {
                kind: MemKind::Fetch,
                addr: func_addr(d, k),
                size: 4,
            });
        }
        for j in 0..4 {
            let shared = d == 2 && j % 2 == 1;
            let base = if shared { BUFFER_CACHE } else { data_base(d) };
            let off = self.rng.below(REGION / 8) * 8;
            let kind = if self.rng.below(4) == 0 {
                MemKind::Store
            } else {
                MemKind::Load
            };
            let size = [4, 8, 1, 2][self.rng.below(4) as usize];
            self.queue.push_back(Event::Mem {
                kind,
                addr: base + off,
                size,
            });
        }
    }

    fn call(&mut self, d: DomainNo) {
        let n = DOMAINS[d as usize - 1].1.len();
        let k = self.rng.below(n as u64) as usize;
        self.queue.push_back(Event::Call {
            target: func_addr(d, k),
        });
        self.visit(d, Some(k));
    }

    fn ret(&mut self, to: DomainNo) {
        self.queue.push_back(Event::Return);
        self.visit(to, None);
    }

    /// One episode: the kernel calls a module, which calls back 0 to 3 times.
    fn episode(&mut self) {
        let total = self.ide_pairs + self.other_pairs;
        let ide = self.rng.below(total) < self.ide_pairs;
        let (module, left) = if ide {
            (2, &mut self.ide_pairs)
        } else {
            (3 + self.rng.below(4) as DomainNo, &mut self.other_pairs)
        };
        *left -= 1;
        let max_back = if ide { 3 } else { 2 };
        let back = self.rng.below(max_back + 1).min(*left);
        *left -= back;
        self.call(module);
        for _ in 0..back {
            self.call(1);
            self.ret(module);
        }
        self.ret(1);
    }

    /// Events generated so far.
    #[must_use]
    pub fn emitted(&self) -> u64 {
        self.emitted
    }
}

impl Iterator for BootTrace {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if !self.started {
            self.started = true;
            self.declarations();
        }
        if self.queue.is_empty() && self.ide_pairs + self.other_pairs > 0 {
            self.episode();
        }
        let e = self.queue.pop_front()?;
        self.emitted += 1;
        Some(e)
    }
}

impl EventSource for BootTrace {
    fn width(&self) -> TraceWidth {
        TraceWidth::Bits32
    }

    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        Ok(self.next())
    }

    fn position(&self) -> u64 {
        self.segment
    }
}

/// A memory-reference trace with a coarse layout, shaped like a real program's run under
/// Valgrind's lackey: one domain with four regions (code `rx`, 2 MiB at 4 MiB; read-only
/// data, 1 MiB at 8 MiB; a 64 MiB heap `rw` at 64 MiB, one aligned upper-level block; a
/// 1 MiB stack `rw` below 192 MiB), then `n` references. The mix follows a real lackey trace
/// (`tests/data/lackey.txt` is its head): three references in four are instruction fetches,
/// running in sequence with a short branch one time in 70 and a far call one time in 1,024;
/// data references stay in their region (stack 45%, heap 43%, read-only data 12%) 70% of
/// the time, as the real trace's stay in their 512 KiB region 70% of the time; sizes are 8
/// bytes (60%), 1 (22%), 4 (13%), 16 (3%) and 2 (2%), aligned to their size (16 to 8); a
/// third of stack and heap references are stores. Seeded; every reference is allowed.
#[must_use]
pub fn memref_trace(seed: u64, n: usize) -> Vec<Event> {
    const CODE: u64 = 0x40_0000;
    const RODATA: u64 = 0x80_0000;
    const HEAP: u64 = 0x400_0000;
    const HEAP_LEN: u64 = 0x400_0000;
    const STACK_TOP: u64 = 0xc00_0000;
    const MIB: u64 = 1 << 20;
    let mut rng = SplitMix64::new(seed);
    let mut v = vec![
        Event::Domain {
            no: 1,
            name: "program".into(),
        },
        Event::Grant {
            domain: 1,
            addr: CODE,
            len: 2 * MIB,
            perm: Perm::ExecuteRead,
        },
        Event::Grant {
            domain: 1,
            addr: RODATA,
            len: MIB,
            perm: Perm::ReadOnly,
        },
        Event::Grant {
            domain: 1,
            addr: HEAP,
            len: HEAP_LEN,
            perm: Perm::ReadWrite,
        },
        Event::Grant {
            domain: 1,
            addr: STACK_TOP - MIB,
            len: MIB,
            perm: Perm::ReadWrite,
        },
        Event::Switch { domain: 1 },
    ];
    let mut pc = CODE;
    let mut heap = HEAP;
    let mut sp = STACK_TOP - 4096;
    // 0: stack, 1: heap, 2: read-only data.
    let mut region = 0;
    while v.len() < n {
        if rng.below(4) != 0 {
            // Instructions run in sequence, with short branches and rare far calls.
            pc = match rng.below(1024) {
                0 => CODE + rng.below(2 * MIB / 4) * 4,
                1..=15 => (pc + rng.below(8192) * 4).saturating_sub(16 * 1024),
                _ => pc + 4,
            }
            .clamp(CODE, CODE + 2 * MIB - 4);
            v.push(Event::Mem {
                kind: MemKind::Fetch,
                addr: pc,
                size: 4,
            });
            continue;
        }
        // Data references stay in their region 70% of the time.
        if rng.below(10) >= 7 {
            region = match rng.below(100) {
                0..=44 => 0,
                45..=87 => 1,
                _ => 2,
            };
        }
        let size = match rng.below(100) {
            0..=59 => 8u32,
            60..=81 => 1,
            82..=94 => 4,
            95..=96 => 2,
            _ => 16,
        };
        let store = rng.below(3) == 0;
        let kind = if store { MemKind::Store } else { MemKind::Load };
        let (kind, addr) = match region {
            0 => {
                sp = (sp + 8 * rng.below(9)).clamp(STACK_TOP - MIB + 64, STACK_TOP - 32) - 32;
                (kind, sp + 8 * rng.below(4))
            }
            1 => {
                heap = if rng.below(5) == 0 {
                    HEAP + rng.below(HEAP_LEN - 64)
                } else {
                    (heap + rng.below(64)).min(HEAP + HEAP_LEN - 64)
                };
                (kind, heap)
            }
            _ => (MemKind::Load, RODATA + rng.below(MIB - 64)),
        };
        // Compilers align data to its size.
        let addr = addr & !(u64::from(size.min(8)) - 1);
        v.push(Event::Mem { kind, addr, size });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_trace_has_the_papers_figures() {
        let mut insns = 0u64;
        let (mut calls, mut rets) = (0u64, 0u64);
        let mut depth = 0i64;
        for e in BootTrace::new(DEFAULT_SEED) {
            match e {
                Event::Insns { count } => insns += count,
                Event::Call { .. } => {
                    calls += 1;
                    depth += 1;
                    assert!(depth <= 2);
                }
                Event::Return => {
                    rets += 1;
                    depth -= 1;
                    assert!(depth >= 0);
                }
                _ => {}
            }
        }
        assert_eq!(insns, BOOT_INSTRUCTIONS);
        assert_eq!(calls + rets, BOOT_CHANGES);
        assert_eq!(calls, rets);
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let a: Vec<Event> = BootTrace::new(7).take(50_000).collect();
        let b: Vec<Event> = BootTrace::new(7).take(50_000).collect();
        let c: Vec<Event> = BootTrace::new(8).take(50_000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
