//! Call and return gates on the machine: crossings, the cross-domain call stack, and the
//! frame registers.

use mmp_domains::{Access, ByteAddr, PdId, PdKind, Perm, WordAddr};
use mmp_gates::{ArgWindow, FrameRegs, Gate};
use mmp_machine::{AccessError, FaultKind, Machine, MachineConfig};

/// Three domains, each with 4 KiB of code: A at 0x1_0000, B at 0x2_0000, C at 0x3_0000.
/// B's entry `fb_entry` (0x2_0000) and C's entry (0x3_0000) are call gates in their callers'
/// tables; each domain's return instruction (code + 0xff0) is a return gate.
struct World {
    m: Machine,
    a: PdId,
    b: PdId,
    c: PdId,
}

const CODE: [u64; 3] = [0x1_0000, 0x2_0000, 0x3_0000];
const RET_AT: u64 = 0xff0;

fn world(cpus: usize) -> World {
    let mut m = Machine::new(MachineConfig {
        cpus,
        ..MachineConfig::default()
    })
    .unwrap();
    let a = m.create_pd(PdKind::Kernel).unwrap();
    let b = m.create_pd(PdKind::Kernel).unwrap();
    let c = m.create_pd(PdKind::Kernel).unwrap();
    for (pd, code) in [(a, CODE[0]), (b, CODE[1]), (c, CODE[2])] {
        m.set_perm(pd, ByteAddr(code), 4096, Perm::ExecuteRead)
            .unwrap();
        m.set_gate(pd, ByteAddr(code + RET_AT), Some(Gate::Return))
            .unwrap();
        // Each domain's own stack area is in its table (a thread's frame registers give it
        // more).
    }
    m.set_gate(a, ByteAddr(CODE[1]), Some(Gate::Call { dest: b }))
        .unwrap();
    m.set_gate(b, ByteAddr(CODE[2]), Some(Gate::Call { dest: c }))
        .unwrap();
    m.set_gate(c, ByteAddr(CODE[1]), Some(Gate::Call { dest: b }))
        .unwrap();
    for cpu in 0..cpus {
        m.switch_pd(cpu, a).unwrap();
    }
    m.set_frame_regs(0, regs(0xa000, 0x4000)).unwrap();
    World { m, a, b, c }
}

fn regs(fb: u64, sl: u64) -> FrameRegs {
    FrameRegs {
        fb: ByteAddr(fb),
        sl: ByteAddr(sl),
        args: ArgWindow::NONE,
    }
}

fn fault(r: Result<PdId, AccessError>) -> FaultKind {
    match r {
        Err(AccessError::Fault(f)) => f.kind,
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn nested_crossings_a_b_c_b_unwind_in_order() {
    let World { mut m, a, b, c } = world(1);
    assert_eq!(
        m.call(
            0,
            ByteAddr(CODE[1]),
            ByteAddr(CODE[0] + 0x10),
            ByteAddr(0x9000)
        )
        .unwrap(),
        b
    );
    assert_eq!(
        m.call(
            0,
            ByteAddr(CODE[2]),
            ByteAddr(CODE[1] + 0x20),
            ByteAddr(0x8000)
        )
        .unwrap(),
        c
    );
    assert_eq!(
        m.call(
            0,
            ByteAddr(CODE[1]),
            ByteAddr(CODE[2] + 0x30),
            ByteAddr(0x7000)
        )
        .unwrap(),
        b
    );
    assert_eq!(m.call_stack(0).unwrap().depth(), 3);
    assert_eq!(m.frame_regs(0).unwrap().fb, ByteAddr(0x7000));
    m.check_invariants().unwrap();
    assert_eq!(
        m.ret(0, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[2] + 0x30))
            .unwrap(),
        c
    );
    assert_eq!(m.frame_regs(0).unwrap().fb, ByteAddr(0x8000));
    assert_eq!(
        m.ret(0, ByteAddr(CODE[2] + RET_AT), ByteAddr(CODE[1] + 0x20))
            .unwrap(),
        b
    );
    assert_eq!(
        m.ret(0, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10))
            .unwrap(),
        a
    );
    assert_eq!(m.frame_regs(0).unwrap().fb, ByteAddr(0xa000));
    assert_eq!(m.call_stack(0).unwrap().depth(), 0);
    let s = m.crossing_totals();
    assert_eq!(
        (s.pair(a, b), s.pair(b, c), s.pair(c, b), s.total()),
        (1, 1, 1, 3)
    );
    assert_eq!(s.gate(WordAddr(CODE[1] / 4)), 2);
    m.check_invariants().unwrap();
}

#[test]
fn a_return_that_skips_a_frame_faults_and_changes_nothing() {
    let World { mut m, c, .. } = world(1);
    m.call(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9000),
    )
    .unwrap();
    m.call(
        0,
        ByteAddr(CODE[2]),
        ByteAddr(CODE[1] + 0x20),
        ByteAddr(0x8000),
    )
    .unwrap();
    // C returns straight to A's return address, skipping B's frame.
    let k = fault(m.ret(0, ByteAddr(CODE[2] + RET_AT), ByteAddr(CODE[0] + 0x10)));
    assert_eq!(
        k,
        FaultKind::ReturnMismatch {
            expected: ByteAddr(CODE[1] + 0x20)
        }
    );
    assert_eq!(m.running(0).unwrap(), c);
    assert_eq!(m.call_stack(0).unwrap().depth(), 2);
    assert_eq!(m.frame_regs(0).unwrap().fb, ByteAddr(0x8000));
}

#[test]
fn other_domains_code_without_a_gate_is_an_execute_fault() {
    let World { mut m, a, .. } = world(1);
    // Past the gate, into B's body.
    let k = fault(m.call(
        0,
        ByteAddr(CODE[1] + 8),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9000),
    ));
    assert!(
        matches!(
            k,
            FaultKind::NoPermission {
                held: Perm::None,
                ..
            }
        ),
        "{k:?}"
    );
    assert!(
        m.jump(0, ByteAddr(CODE[1] + 8), ByteAddr(0), ByteAddr(0x9000))
            .is_err()
    );
    // Its own code is an ordinary call: no crossing.
    assert_eq!(
        m.call(
            0,
            ByteAddr(CODE[0] + 0x40),
            ByteAddr(CODE[0] + 0x10),
            ByteAddr(0x9000)
        )
        .unwrap(),
        a
    );
    assert_eq!(m.call_stack(0).unwrap().depth(), 0);
}

#[test]
fn overflow_underflow_and_frame_order_are_faults() {
    let World { mut m, .. } = world(1);
    assert_eq!(
        fault(m.ret(0, ByteAddr(CODE[0] + RET_AT), ByteAddr(0x1234))),
        FaultKind::StackUnderflow
    );
    m.set_call_stack_capacity(2).unwrap();
    m.call(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9000),
    )
    .unwrap();
    // The new frame base must be below the old one.
    assert_eq!(
        fault(m.call(
            0,
            ByteAddr(CODE[2]),
            ByteAddr(CODE[1] + 0x20),
            ByteAddr(0x9000)
        )),
        FaultKind::FrameOrder {
            fb: ByteAddr(0x9000)
        }
    );
    m.call(
        0,
        ByteAddr(CODE[2]),
        ByteAddr(CODE[1] + 0x20),
        ByteAddr(0x8000),
    )
    .unwrap();
    assert_eq!(
        fault(m.call(
            0,
            ByteAddr(CODE[1]),
            ByteAddr(CODE[2] + 0x30),
            ByteAddr(0x7000)
        )),
        FaultKind::StackOverflow
    );
    assert_eq!(m.call_stack(0).unwrap().depth(), 2);
    m.check_invariants().unwrap();
}

#[test]
fn the_callee_cannot_read_the_callers_frame_without_an_export() {
    let World { mut m, b, .. } = world(1);
    m.store(0, ByteAddr(0x9800), 4, 7).unwrap(); // A's frame, through A's frame registers
    m.call(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9000),
    )
    .unwrap();
    // B's frame registers cover [sl, 0x9000): its own frame, not A's above it.
    m.store(0, ByteAddr(0x8ff0), 4, 1).unwrap();
    assert!(m.load(0, ByteAddr(0x9800), 4).is_err());
    // With the slot exported (read-only, for the call), B reads it.
    m.set_perm(b, ByteAddr(0x9800), 4, Perm::ReadOnly).unwrap();
    assert_eq!(m.load(0, ByteAddr(0x9800), 4).unwrap(), 7);
    assert!(m.store(0, ByteAddr(0x9800), 4, 8).is_err());
}

#[test]
fn a_thread_cannot_read_another_threads_stack_in_the_same_domain() {
    let World { mut m, .. } = world(2);
    m.set_frame_regs(0, regs(0x9000, 0x8000)).unwrap();
    m.set_frame_regs(1, regs(0x7000, 0x6000)).unwrap();
    m.store(0, ByteAddr(0x8800), 4, 1).unwrap();
    m.store(1, ByteAddr(0x6800), 4, 2).unwrap();
    assert!(
        m.load(0, ByteAddr(0x6800), 4).is_err(),
        "thread 0 read thread 1's stack"
    );
    assert!(
        m.load(1, ByteAddr(0x8800), 4).is_err(),
        "thread 1 read thread 0's stack"
    );
    // Frame registers never allow execution.
    assert!(m.fetch(0, ByteAddr(0x8800), 4).is_err());
}

#[test]
fn exported_argument_slots_are_readable_for_the_call_and_revoked_on_return() {
    let World { mut m, a, b, .. } = world(1);
    m.store(0, ByteAddr(0x9ff0), 4, 41).unwrap(); // A's argument slot, in its own frame
    let one = ArgWindow {
        words: 1,
        writable: false,
    };
    assert_eq!(
        m.call_export(
            0,
            ByteAddr(CODE[1]),
            ByteAddr(CODE[0] + 0x10),
            ByteAddr(0x9ff0),
            one
        )
        .unwrap(),
        b
    );
    assert_eq!(
        m.load(0, ByteAddr(0x9ff0), 4).unwrap(),
        41,
        "the exported slot"
    );
    assert!(
        m.store(0, ByteAddr(0x9ff0), 4, 0).is_err(),
        "a read-only export"
    );
    assert!(
        m.load(0, ByteAddr(0x9ff4), 4).is_err(),
        "the slot after the export"
    );
    assert_eq!(
        m.ret(0, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10))
            .unwrap(),
        a
    );
    // The next call exports nothing: the slot is out of reach again.
    m.call(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9ff0),
    )
    .unwrap();
    assert!(
        m.load(0, ByteAddr(0x9ff0), 4).is_err(),
        "the export outlived its call"
    );
    m.ret(0, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10))
        .unwrap();
    // A writable export lets the callee fill a buffer.
    let buf = ArgWindow {
        words: 4,
        writable: true,
    };
    m.call_export(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9f00),
        buf,
    )
    .unwrap();
    m.store(0, ByteAddr(0x9f0c), 4, 99).unwrap();
    m.ret(0, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10))
        .unwrap();
    assert_eq!(m.load(0, ByteAddr(0x9f0c), 4).unwrap(), 99);
    m.check_invariants().unwrap();
}

#[test]
fn an_export_outside_the_callers_stack_or_without_a_stack_faults() {
    let World { mut m, a, .. } = world(2);
    let two = ArgWindow {
        words: 2,
        writable: false,
    };
    // [0x9ffc, 0xa004) reaches above A's frame base 0xa000.
    assert_eq!(
        fault(m.call_export(
            0,
            ByteAddr(CODE[1]),
            ByteAddr(CODE[0] + 0x10),
            ByteAddr(0x9ffc),
            two
        )),
        FaultKind::ArgExport {
            sl: ByteAddr(0x4000),
            fb: ByteAddr(0xa000)
        }
    );
    // CPU 1 has no active stack (fb 0): it can export no arguments.
    assert_eq!(
        fault(m.call_export(
            1,
            ByteAddr(CODE[1]),
            ByteAddr(CODE[0] + 0x10),
            ByteAddr(0x9000),
            two
        )),
        FaultKind::ArgExport {
            sl: ByteAddr(0),
            fb: ByteAddr(0)
        }
    );
    assert_eq!(m.running(0).unwrap(), a);
    assert_eq!(m.call_stack(0).unwrap().depth(), 0);
}

#[test]
fn a_gate_into_a_destroyed_domain_faults() {
    let World { mut m, a, c, .. } = world(1);
    m.destroy_pd(c).unwrap();
    m.call(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9000),
    )
    .unwrap();
    // B's gate into C now names a dead domain.
    assert_eq!(
        fault(m.call(
            0,
            ByteAddr(CODE[2]),
            ByteAddr(CODE[1] + 0x20),
            ByteAddr(0x8000)
        )),
        FaultKind::Gate
    );
    assert_eq!(
        m.ret(0, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10))
            .unwrap(),
        a
    );
    assert!(m.protected_bytes() > 0);
}

#[test]
fn a_saved_context_resumes_on_any_cpu_and_its_call_returns() {
    let World { mut m, a, b, c } = world(2);
    // Thread 1 on CPU 0 calls A -> B and is stopped there.
    m.call(
        0,
        ByteAddr(CODE[1]),
        ByteAddr(CODE[0] + 0x10),
        ByteAddr(0x9000),
    )
    .unwrap();
    let t1 = m.save_context(0).unwrap();
    assert_eq!(
        (t1.pd, t1.stack.depth(), t1.regs.fb),
        (b, 1, ByteAddr(0x9000))
    );
    // Thread 2 runs on CPU 0 from scratch, in C.
    m.clear_frames(0).unwrap();
    m.switch_pd(0, c).unwrap();
    assert_eq!(m.call_stack(0).unwrap().depth(), 0);
    // Thread 1 resumes on CPU 1 and its return reaches A through its own saved frame.
    m.restore_context(1, &t1).unwrap();
    assert_eq!(m.running(1), Ok(b));
    assert_eq!(
        m.ret(1, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10)),
        Ok(a)
    );
    assert_eq!(m.frame_regs(1).unwrap().fb, ByteAddr(0xa000));
    assert_eq!(m.running(0), Ok(c), "CPU 0 is untouched");
    m.check_invariants().unwrap();
    // A context whose domain is gone, or whose stack is another size, is refused and
    // changes nothing.
    let saved = m.save_context(1).unwrap();
    let in_c = m.save_context(0).unwrap();
    m.switch_pd(0, a).unwrap();
    m.destroy_pd(c).unwrap();
    assert!(matches!(
        m.restore_context(1, &in_c),
        Err(mmp_machine::MachineError::UnknownPd { .. })
    ));
    assert_eq!(m.save_context(1).unwrap(), saved);
    let mut other = in_c;
    other.pd = b;
    other.stack = mmp_gates::CallStack::new(other.stack.capacity() + 1);
    assert!(matches!(
        m.restore_context(1, &other),
        Err(mmp_machine::MachineError::Config(_))
    ));
    assert_eq!(m.save_context(1).unwrap(), saved);
    assert!(m.restore_context(9, &saved).is_err());
}

#[test]
fn a_gated_call_with_no_stack_set_crosses_and_returns() {
    let World { mut m, a, b, c } = world(2);
    // CPU 1 has no stack: the frame registers are an optional speed-up, not a condition.
    assert_eq!(m.frame_regs(1).unwrap(), FrameRegs::default());
    let sp = ByteAddr(0x9000);
    assert_eq!(
        m.call(1, ByteAddr(CODE[1]), ByteAddr(CODE[0] + 0x10), sp),
        Ok(b)
    );
    assert_eq!(
        m.call(1, ByteAddr(CODE[2]), ByteAddr(CODE[1] + 0x20), sp),
        Ok(c)
    );
    m.check_invariants().unwrap();
    // Nothing checks frames, and the callee gets no stack from the call.
    assert_eq!(m.frame_regs(1).unwrap(), FrameRegs::default());
    let frames: Vec<u64> = m
        .call_stack(1)
        .unwrap()
        .frames()
        .iter()
        .map(|f| f.fb.0)
        .collect();
    assert_eq!(frames, [0, 0]);
    assert!(
        m.load(1, ByteAddr(0x8ff0), 4).is_err(),
        "no stack, no stack access"
    );
    assert_eq!(
        m.ret(1, ByteAddr(CODE[2] + RET_AT), ByteAddr(CODE[1] + 0x20)),
        Ok(b)
    );
    assert_eq!(
        m.ret(1, ByteAddr(CODE[1] + RET_AT), ByteAddr(CODE[0] + 0x10)),
        Ok(a)
    );
    assert_eq!(m.crossing_totals().pairs().len(), 2);
    m.check_invariants().unwrap();
}

#[test]
fn a_jump_onto_a_call_gate_crosses() {
    let World { mut m, a, b, .. } = world(1);
    // A tail call from A into B: B's return must go where A's caller said.
    let ret_to = ByteAddr(CODE[0] + 0x44);
    assert_eq!(
        m.jump(0, ByteAddr(CODE[1]), ret_to, ByteAddr(0x9000)),
        Ok(b)
    );
    assert_eq!(m.call_stack(0).unwrap().top().unwrap().ret_addr, ret_to);
    assert_eq!(m.frame_regs(0).unwrap().fb, ByteAddr(0x9000));
    assert_eq!(m.gate_lookups(), 1);
    assert_eq!(m.crossing_totals().pairs(), vec![((a, b), 1)]);
    assert_eq!(m.ret(0, ByteAddr(CODE[1] + RET_AT), ret_to), Ok(a));
    // An ordinary jump inside A's own code crosses nothing.
    assert_eq!(
        m.jump(0, ByteAddr(CODE[0] + 0x80), ret_to, ByteAddr(0x9000)),
        Ok(a)
    );
    assert_eq!(m.gate_lookups(), 1);
    m.check_invariants().unwrap();
}

#[test]
fn a_chain_deeper_than_the_on_chip_buffer_spills_and_returns_correctly() {
    let World { mut m, a, b, c } = world(1);
    m.set_call_stack_buffer(2).unwrap();
    m.set_call_stack_capacity(40).unwrap();
    // A -> B -> C -> B -> C ... 30 deep, each with its own return address and frame.
    let mut want = Vec::new();
    let mut sp = 0x9ff0;
    let mut running = a;
    for i in 0..30u64 {
        let (gate, from) = if running == b {
            (CODE[2], CODE[1])
        } else {
            (CODE[1], if running == a { CODE[0] } else { CODE[2] })
        };
        let ret_to = ByteAddr(from + 0x100 + 4 * i);
        let next = m.call(0, ByteAddr(gate), ret_to, ByteAddr(sp)).unwrap();
        want.push((running, ret_to, next));
        running = next;
        sp -= 0x40;
        m.check_invariants().unwrap();
    }
    let t = m.stack_traffic(0).unwrap();
    assert_eq!(
        (t.spills, t.refills),
        (28, 0),
        "every push past 2 spills a frame"
    );
    assert_eq!(m.call_stack(0).unwrap().resident(), 2);
    while let Some((caller, ret_to, callee)) = want.pop() {
        let code =
            [CODE[0], CODE[1], CODE[2]][[a, b, c].iter().position(|&p| p == callee).unwrap()];
        assert_eq!(m.ret(0, ByteAddr(code + RET_AT), ret_to), Ok(caller));
        m.check_invariants().unwrap();
    }
    let t = m.stack_traffic(0).unwrap();
    assert_eq!((t.spills, t.refills), (28, 28));
    assert_eq!(
        t.memory_refs(),
        56 * mmp_gates::CallStack::FRAME_WORDS as u64
    );
    assert_eq!(m.frame_regs(0).unwrap().fb, ByteAddr(0xa000));
    assert_eq!(m.gate_lookups(), 30, "one gate lookup a crossing");
}

#[test]
fn a_replays_check_lifts_a_walked_denial_by_the_frame_registers_as_a_load_does() {
    // `check_then_reopen_windows` (a trace replay's check) walks and fills a PLB miss
    // itself. A's table grants nothing at its stack, [0x4000, 0xa000), which its frame
    // registers cover: a word there passes, a word past either end faults on that word,
    // with the fault and the counts that a plain load or store gives.
    let World { m, .. } = world(1);
    let cases = [
        (0x8800, 4, true),
        (0x8802, 4, true),
        (0x9ffc, 4, true),
        (0x9ffc, 8, false),
        (0x9ffe, 8, false),
        (0x3ffc, 8, false),
        (0xa000, 4, false),
    ];
    for (addr, size, allowed) in cases {
        for access in [Access::Read, Access::Write] {
            let (mut replay, mut plain) = (m.clone(), m.clone());
            let got = replay.check_then_reopen_windows(0, ByteAddr(addr), size, access, |_, _| {});
            let want = match access {
                Access::Write => plain.store(0, ByteAddr(addr), size, 0),
                _ => plain.load(0, ByteAddr(addr), size).map(|_| ()),
            };
            let what = format!("{access:?} of {size} bytes at {addr:#x}");
            assert_eq!(got.is_ok(), allowed, "{what}");
            assert_eq!(got.map_err(AccessError::Fault), want, "{what}");
            assert_eq!(replay.plb_stats(0), plain.plb_stats(0), "{what}");
            assert!(replay.plb_stats(0).unwrap().misses >= 1, "{what}: a miss");
            replay.check_invariants().unwrap();
        }
    }
}
