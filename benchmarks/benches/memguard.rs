//! `cargo bench -p mmp-benchmarks --bench memguard`: one write by the debugged code to a
//! word next to a quasi-invariant, on the same page, through MemGuard.
//!
//! - `mmp_neighbour_write`: on the word-granular MMP level (no fault: only the
//!   quasi-invariant's words are read-only);
//! - `page_real_neighbour_write` (Linux x86-64): on real pages, where the page is
//!   write-protected, so each write takes a `SIGSEGV`, an `mprotect`, a single-step `SIGTRAP`
//!   and another `mprotect` (MemGuard's false-sharing cost).
//!
//! The `false_sharing` example prints the same comparison as JSON.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmp_memguard::{MemGuard, MemoryProtection, Supervised};

/// A quasi-invariant at 0x100 (8 bytes) and its neighbour, the hot word at 0x108.
fn guarded<P: MemoryProtection>(backend: P) -> MemGuard<P> {
    let mut g = MemGuard::new(backend);
    g.protect(0x100, 8).expect("inside the arena");
    g
}

fn neighbour_write<P: MemoryProtection>(g: &mut MemGuard<P>, v: u64) {
    g.store(0x600d, black_box(0x108), &v.to_le_bytes())
        .expect("a neighbour write completes");
}

fn memguard(c: &mut Criterion) {
    let mut grp = c.benchmark_group("memguard");
    grp.throughput(Throughput::Elements(1));
    let mut mmp = guarded(Supervised::mmp(4096).expect("setup"));
    let mut v = 0u64;
    grp.bench_function("mmp_neighbour_write", |b| {
        b.iter(|| {
            v += 1;
            neighbour_write(&mut mmp, v);
        })
    });
    let c = mmp.counters();
    assert_eq!(
        (c.faults, c.violations),
        (0, 0),
        "MMP faulted on a neighbour"
    );
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let mut real = guarded(
            mmp_memguard::page_real::PageReal::new(1, mmp_domains::PdId::from_raw(1))
                .expect("setup"),
        );
        grp.bench_function("page_real_neighbour_write", |b| {
            b.iter(|| {
                v += 1;
                neighbour_write(&mut real, v);
            })
        });
        let c = real.counters();
        assert_eq!(c.faults, c.writes, "not every neighbour write faulted");
        assert_eq!(c.spurious_faults, c.writes);
    }
    grp.finish();
}

criterion_group!(benches, memguard);
criterion_main!(benches);
