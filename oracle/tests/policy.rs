//! Differential tests of the supervisor's policy against its reference model
//! (`mmp_oracle::model`), through the operation harness the fuzz target also uses.

use mmp_oracle::ops::{Shape, fuzz_one, run_bytes};
use proptest::prelude::*;

fn shape(i: u8) -> Shape {
    Shape::from_selector(i)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// At least 1,000 random sequences of 100+ calls and accesses from several domains: the
    /// same results as the model, invariants after every call, and an unchanged digest after
    /// every failed call (all checked inside `Harness::step`).
    #[test]
    fn supervisor_agrees_with_the_model(
        i in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 4000..6000),
    ) {
        let h = run_bytes(shape(i), &data, 140).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(h.ops >= 100, "only {} operations ran", h.ops);
        prop_assert!(h.failed < h.ops, "every operation failed");
    }
}

/// The fuzz target's logic (`fuzz/fuzz_targets/supervisor_ops.rs` calls the same
/// `fuzz_one`), run on stable over seeded random byte strings.
#[test]
fn fuzz_logic_runs_on_random_bytes() {
    let runs: u64 = std::env::var("MMP_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for run in 0..runs {
        let len = 1 + (next() % 6000) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Err(e) = fuzz_one(&data) {
            panic!("run {run} (shape {:?}): {e}", shape(data[0]));
        }
    }
}

/// Prints how often each operation succeeded over a batch of random runs (run with
/// `--ignored --nocapture` to see how well the byte decoding reaches each call).
#[test]
#[ignore = "a report, not a check"]
fn operation_coverage_report() {
    let mut total: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let (mut spills, mut refills, mut lookups) = (0, 0, 0);
    let mut x = 0x1234_5678_9abc_def1u64;
    for _ in 0..100 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let data: Vec<u8> = (0..4000)
            .map(|i| (x.rotate_left(i % 64) >> 7) as u8 ^ (i as u8).wrapping_mul(31))
            .collect();
        let h = run_bytes(shape(x as u8), &data, 200).expect("agrees");
        spills += h.model.traffic.spills;
        refills += h.model.traffic.refills;
        lookups += h.model.gate_lookups;
        for (k, (a, b)) in h.stats {
            let e = total.entry(k).or_default();
            e.0 += a;
            e.1 += b;
        }
    }
    for (k, (a, b)) in total {
        println!("{k:12} ok {a:6} failed {b:6}");
    }
    println!("call-stack spills {spills}, refills {refills}; gate lookups {lookups}");
}

/// Many short inputs, as a fuzzer starts with: each runs the prelude and a few operations.
#[test]
fn fuzz_logic_runs_on_short_inputs() {
    for i in 0..=255u8 {
        let data = [i, i.wrapping_mul(7), 3, i, 200, 17];
        if let Err(e) = fuzz_one(&data) {
            panic!("input {data:?}: {e}");
        }
    }
}

/// The fuzz target skips checking the prelude (a fixed sequence per shape) and forks each
/// input's harness from one that ran it; here every shape's prelude gets every check after
/// every operation, and a fork goes on exactly as the harness it was copied from.
#[test]
fn every_shapes_prelude_passes_every_check_and_forks_go_on_alike() {
    use mmp_oracle::ops::{Checks, Harness};
    for sel in 0..=255u8 {
        let mut h = Harness::with_checks(shape(sel), Checks::THOROUGH);
        h.prelude()
            .unwrap_or_else(|e| panic!("shape {sel}'s prelude: {e}"));
        h.finish().unwrap();
        if sel % 16 != 0 {
            continue;
        }
        let mut copy = h.fork().expect("no fault handlers");
        assert_eq!(copy.sup.digest(), h.sup.digest());
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ sel)
            .collect();
        h.run_ops(&data, 150).unwrap();
        copy.run_ops(&data, 150).unwrap();
        assert_eq!(copy.sup.digest(), h.sup.digest(), "shape {sel}");
        assert_eq!((copy.ops, copy.failed), (h.ops, h.failed), "shape {sel}");
    }
}

/// Crossings nested deeper than the call stack's on-chip buffer: the supervisor and the
/// model agree on every step (the harness compares the spills, refills and gate lookups
/// after each transfer), and on the totals.
#[test]
fn nested_crossings_spill_and_refill_alike_on_both_sides() {
    use mmp_oracle::ops::{Addr, Checks, Harness, Op};
    // Selector 0: one CPU, MLPT, a one-frame buffer.
    let shape = Shape::from_selector(0);
    assert_eq!(shape.call_stack_buffer, 1);
    let mut h = Harness::with_checks(shape, Checks::THOROUGH);
    h.prelude().unwrap();
    let call = |gate| Op::Call {
        cpu: 0,
        gate: Some(gate),
        at: Addr::Raw(0),
        ret: Addr::Raw(0x100),
        down: 1,
        args: 0,
        writable: false,
    };
    // A's own gates (outside the entry points) are its return gate and the call gate into
    // B, in that order, so gate operand 4 picks the call; B's are the call gate into A and
    // its return gate, so 0 picks the call.
    let running = |h: &Harness| h.sup.machine().running(0).unwrap();
    let a = running(&h);
    for i in 0..12 {
        let before = running(&h);
        h.step(call(if i % 2 == 0 { 4 } else { 0 })).unwrap();
        assert_ne!(running(&h), before, "call {i} crossed");
    }
    assert_eq!(h.sup.machine().call_stack(0).unwrap().depth(), 12);
    for _ in 0..12 {
        h.step(Op::Return { cpu: 0, idx: 0 }).unwrap();
    }
    assert_eq!(running(&h), a);
    let t = h.sup.machine().stack_traffic_totals();
    assert_eq!((t.spills, t.refills), (11, 11));
    assert_eq!(t, h.model.traffic);
    assert_eq!(h.sup.machine().gate_lookups(), h.model.gate_lookups);
    h.finish().unwrap();
}
