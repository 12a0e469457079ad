//! `cargo bench -p mmp-benchmarks --bench supervisor`: the cost of the supervisor's
//! `set_perm`, policy checks included (the targets: an aligned 1 GiB range in O(blocks),
//! under 100 us; a small grant under 200 ns).
//!
//! - `set_perm_1gib`: the owner of an aligned 1 GiB region sets another domain's permission on
//!   all of it, alternating read-only and read-write so every call changes the table;
//! - `small_grant`: the owner grants one word of a 4 KiB region read-only to another domain
//!   and revokes it, one word further on each time (two calls an iteration: divide by 2). The
//!   other domain keeps read-only grants on every 128th word of the region, so its table has a
//!   leaf there already, as it does for a domain with other fine-grained grants nearby;
//! - `small_grant_cold`: the same with no other grant, so every grant builds the table's path
//!   down to the word and every revoke frees it again (canonical form).
//!
//! Both run on MLPT tables, one CPU, no table-memory cap.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mmp_domains::{ByteAddr, PdId, PdKind, Perm};
use mmp_supervisor::{Supervisor, SupervisorConfig};

const GIB: u64 = 1 << 30;

fn setup(len: u64, placement: u64) -> (Supervisor, PdId, ByteAddr) {
    let mut sup = Supervisor::new(SupervisorConfig::default()).expect("valid config");
    let owner = sup.alloc_pd(0, PdKind::Kernel).expect("room");
    let other = sup.alloc_pd(0, PdKind::Kernel).expect("room");
    sup.switch(0, owner).expect("live");
    let base = sup
        .alloc(0, len, Some(ByteAddr(placement)), false)
        .expect("free");
    (sup, other, base)
}

fn supervisor(c: &mut Criterion) {
    let mut g = c.benchmark_group("supervisor");

    let (mut sup, other, base) = setup(GIB, GIB);
    let mut flip = false;
    g.bench_function("set_perm_1gib", |b| {
        b.iter(|| {
            flip = !flip;
            let p = if flip {
                Perm::ReadOnly
            } else {
                Perm::ReadWrite
            };
            sup.set_perm(0, black_box(base), GIB, p, other, false)
                .expect("owner may");
        });
    });
    sup.check_invariants().expect("invariants");

    for (id, warm) in [("small_grant", true), ("small_grant_cold", false)] {
        let (mut sup, other, base) = setup(4096, 0x10_0000);
        if warm {
            for k in 0..8 {
                sup.set_perm(0, base + 512 * k + 508, 4, Perm::ReadOnly, other, false)
                    .expect("owner may");
            }
        }
        let mut i = 0u64;
        g.bench_function(id, |b| {
            b.iter(|| {
                let at = base + 4 * (i % 127);
                i += 1;
                sup.set_perm(0, black_box(at), 4, Perm::ReadOnly, other, false)
                    .expect("owner may");
                sup.set_perm(0, black_box(at), 4, Perm::None, other, false)
                    .expect("owner may");
            });
        });
        sup.check_invariants().expect("invariants");
    }
    g.finish();
}

criterion_group!(benches, supervisor);
criterion_main!(benches);
