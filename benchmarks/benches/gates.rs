//! `cargo bench -p mmp-benchmarks --bench gates`: the cost of control transfers on the
//! machine, one CPU, MLPT tables, the default PLB. Each iteration is one call and its return
//! (throughput 1 element: a round trip).
//!
//! - `call_return`: a cross-domain round trip. Domain A calls B's entry word through a call
//!   gate in A's table, exporting one read-only argument word `[SP, SP + 4)` of A's stack; B
//!   (now running, frame base `SP`) loads the argument through its argument window and
//!   returns through the return gate in its table, which pops the cross-domain call stack,
//!   checks the return address, and switches back to A. Three machine operations: `call_export`,
//!   `load`, `ret`;
//! - `direct_call`: an ordinary call and return inside A: a call to A's own code (no gate
//!   there: an execute check at the target) and a return from an instruction with no return
//!   gate (an execute check at the return address). Two machine operations: `call`, `ret`;
//! - `args4_window` and `args4_table_export`: the round trip passing four stack words, B
//!   loading all four, once through the argument window (`call_export` with a 4-word
//!   window) and once the MMP kernel paper's way (section 3.3.1): a read-only table write
//!   for the four slots into B's table before the call and a revoking write after the
//!   return, what the supervisor's stylized entry point (`Supervisor::export_stack_args`)
//!   writes; the entry point's own crossings into the supervisor are left out, so the
//!   difference is the table writes, the epoch the revoke advances and B's PLB misses.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmp_domains::{ByteAddr, PdId, PdKind, Perm};
use mmp_gates::{ArgWindow, FrameRegs, Gate};
use mmp_machine::{Machine, MachineConfig};

/// A's code: `[A_CODE, A_CODE + CODE_LEN)`.
const A_CODE: u64 = 0x1_0000;
/// B's code.
const B_CODE: u64 = 0x2_0000;
const CODE_LEN: u64 = 0x100;
/// Where A's calls return to.
const A_RET_ADDR: u64 = A_CODE + 0x10;
/// A function of A's own, and its return instruction.
const A_LOCAL_FN: u64 = A_CODE + 0x40;
const A_LOCAL_RET: u64 = A_CODE + 0x48;
/// B's entry word (A's call gate) and its return instruction (B's return gate).
const B_ENTRY: u64 = B_CODE;
const B_RET: u64 = B_CODE + 0x10;
/// The thread's stack `[SL, FB)` (no table permission: the frame registers grant it).
const SL: u64 = 0x8000;
const FB: u64 = 0xa000;
/// A's stack pointer at the call: the new frame base, with the argument word just above it.
const SP: u64 = FB - 0x10;
const ARG: u64 = 0x1234_5678;

fn machine() -> (Machine, PdId, PdId) {
    let mut m = Machine::new(MachineConfig::default()).expect("valid config");
    let a = m.create_pd(PdKind::Kernel).expect("room");
    let b = m.create_pd(PdKind::Kernel).expect("room");
    m.set_perm(a, ByteAddr(A_CODE), CODE_LEN, Perm::ExecuteRead)
        .expect("live");
    m.set_perm(b, ByteAddr(B_CODE), CODE_LEN, Perm::ExecuteRead)
        .expect("live");
    m.set_gate(a, ByteAddr(B_ENTRY), Some(Gate::Call { dest: b }))
        .expect("live");
    m.set_gate(b, ByteAddr(B_RET), Some(Gate::Return))
        .expect("live");
    m.switch_pd(0, a).expect("live");
    m.set_frame_regs(
        0,
        FrameRegs {
            fb: ByteAddr(FB),
            sl: ByteAddr(SL),
            args: ArgWindow::NONE,
        },
    )
    .expect("no calls in progress");
    m.memory_mut().write(ByteAddr(SP), 4, ARG);
    (m, a, b)
}

const ONE_ARG: ArgWindow = ArgWindow {
    words: 1,
    writable: false,
};

fn gates(c: &mut Criterion) {
    let (mut m, a, b) = machine();

    // The round trip works: B runs inside with A's argument, A runs after, one crossing.
    let before = m.crossing_totals().pair(a, b);
    let inside = m
        .call_export(
            0,
            ByteAddr(B_ENTRY),
            ByteAddr(A_RET_ADDR),
            ByteAddr(SP),
            ONE_ARG,
        )
        .expect("call gate");
    assert_eq!(inside, b);
    assert_eq!(m.running(0).expect("cpu 0"), b);
    assert_eq!(m.load(0, ByteAddr(SP), 4).expect("argument window"), ARG);
    assert!(
        m.load(0, ByteAddr(SP + 4), 4).is_err(),
        "read past the argument window"
    );
    assert_eq!(
        m.ret(0, ByteAddr(B_RET), ByteAddr(A_RET_ADDR))
            .expect("return gate"),
        a
    );
    assert_eq!(m.running(0).expect("cpu 0"), a);
    assert_eq!(m.crossing_totals().pair(a, b), before + 1);
    assert_eq!(m.call_stack(0).expect("cpu 0").depth(), 0);
    // And the direct call stays in A.
    assert_eq!(
        m.call(0, ByteAddr(A_LOCAL_FN), ByteAddr(A_RET_ADDR), ByteAddr(SP))
            .expect("own code"),
        a
    );
    assert_eq!(
        m.ret(0, ByteAddr(A_LOCAL_RET), ByteAddr(A_RET_ADDR))
            .expect("own code"),
        a
    );
    m.check_invariants().expect("invariants");

    let mut g = c.benchmark_group("gates");
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_return", |bch| {
        bch.iter(|| {
            let callee = m
                .call_export(
                    0,
                    black_box(ByteAddr(B_ENTRY)),
                    ByteAddr(A_RET_ADDR),
                    black_box(ByteAddr(SP)),
                    ONE_ARG,
                )
                .expect("call gate");
            let arg = m
                .load(0, black_box(ByteAddr(SP)), 4)
                .expect("argument window");
            let caller = m
                .ret(0, black_box(ByteAddr(B_RET)), ByteAddr(A_RET_ADDR))
                .expect("return gate");
            black_box((callee, arg, caller))
        })
    });
    assert_eq!(m.running(0).expect("cpu 0"), a);
    assert_eq!(m.call_stack(0).expect("cpu 0").depth(), 0);
    m.check_invariants().expect("invariants");

    g.bench_function("direct_call", |bch| {
        bch.iter(|| {
            let callee = m
                .call(
                    0,
                    black_box(ByteAddr(A_LOCAL_FN)),
                    ByteAddr(A_RET_ADDR),
                    black_box(ByteAddr(SP)),
                )
                .expect("own code");
            let caller = m
                .ret(0, black_box(ByteAddr(A_LOCAL_RET)), ByteAddr(A_RET_ADDR))
                .expect("own code");
            black_box((callee, caller))
        })
    });
    assert_eq!(m.running(0).expect("cpu 0"), a);
    m.check_invariants().expect("invariants");

    const FOUR: ArgWindow = ArgWindow {
        words: 4,
        writable: false,
    };
    let load4 = |m: &mut Machine| -> u64 {
        (0..4)
            .map(|i| {
                m.load(0, black_box(ByteAddr(SP + 4 * i)), 4)
                    .expect("exported")
            })
            .sum()
    };
    g.bench_function("args4_window", |bch| {
        bch.iter(|| {
            let callee = m
                .call_export(
                    0,
                    ByteAddr(B_ENTRY),
                    ByteAddr(A_RET_ADDR),
                    ByteAddr(SP),
                    FOUR,
                )
                .expect("call gate");
            let sum = load4(&mut m);
            let caller = m
                .ret(0, ByteAddr(B_RET), ByteAddr(A_RET_ADDR))
                .expect("return gate");
            black_box((callee, sum, caller))
        })
    });
    let (e0, s0) = (m.epochs(b).expect("live"), m.plb_stats(0).expect("cpu 0"));
    let mut rounds = 0u64;
    g.bench_function("args4_table_export", |bch| {
        bch.iter(|| {
            m.set_perm(b, ByteAddr(SP), 16, Perm::ReadOnly)
                .expect("export");
            let callee = m
                .call(0, ByteAddr(B_ENTRY), ByteAddr(A_RET_ADDR), ByteAddr(SP))
                .expect("call gate");
            let sum = load4(&mut m);
            let caller = m
                .ret(0, ByteAddr(B_RET), ByteAddr(A_RET_ADDR))
                .expect("return gate");
            m.set_perm(b, ByteAddr(SP), 16, Perm::None).expect("revoke");
            rounds += 1;
            black_box((callee, sum, caller))
        })
    });
    let (e1, s1) = (m.epochs(b).expect("live"), m.plb_stats(0).expect("cpu 0"));
    eprintln!(
        "args4_table_export: per round trip {:.2} table writes, {:.2} narrowing epochs, {:.2} PLB misses, {:.2} table references",
        (e1.narrow - e0.narrow + e1.widen - e0.widen) as f64 / rounds as f64,
        (e1.narrow - e0.narrow) as f64 / rounds as f64,
        (s1.misses - s0.misses) as f64 / rounds as f64,
        (s1.table_refs - s0.table_refs) as f64 / rounds as f64,
    );
    m.check_invariants().expect("invariants");
    g.finish();
}

criterion_group!(benches, gates);
criterion_main!(benches);
