//! The supervisor's side of gates: who may place them, the entry points as gates into PD 0,
//! stacks and frame registers, and exclusive frames.

use mmp_domains::{ByteAddr, PdKind, Perm};
use mmp_gates::{ArgWindow, Gate};
use mmp_supervisor::policy::{ENTRY_BASE, SUPERVISOR_RETURN, SupervisorCall};
use mmp_supervisor::{FaultKind, Supervisor, SupervisorConfig, SupervisorError};

const CPU: usize = 0;

/// PD 0 creates a core kernel K and a module M; K owns 4 KiB of code (execute-read for
/// itself) and a stack is active on the CPU (frame base `FB`).
struct World {
    sup: Supervisor,
    k: mmp_domains::PdId,
    m: mmp_domains::PdId,
    code: ByteAddr,
    stack: ByteAddr,
}

const FB: u64 = 0x800;

fn world() -> World {
    let mut sup = Supervisor::new(SupervisorConfig::default()).unwrap();
    let k = sup.alloc_pd(CPU, PdKind::Kernel).unwrap();
    let m = sup.alloc_pd(CPU, PdKind::Kernel).unwrap();
    let stack = sup.alloc(CPU, 0x1000, None, true).unwrap();
    sup.set_stack(CPU, stack, CPU, stack + FB).unwrap();
    sup.switch(CPU, k).unwrap();
    let code = sup.alloc(CPU, 0x1000, None, false).unwrap();
    sup.set_perm(CPU, code, 0x1000, Perm::ExecuteRead, k, false)
        .unwrap();
    World {
        sup,
        k,
        m,
        code,
        stack,
    }
}

#[test]
fn only_the_owner_of_code_may_make_a_call_gate_into_it() {
    let World {
        mut sup,
        k,
        m,
        code,
        ..
    } = world();
    // K may not make a gate into another domain, even on its own code.
    assert_eq!(
        sup.set_gate(CPU, m, code, Some(Gate::Call { dest: m })),
        Err(SupervisorError::GateDestination {
            pd: k,
            addr: code,
            dest: m
        })
    );
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    sup.set_gate(CPU, k, code + 0x40, Some(Gate::Return))
        .unwrap();
    // M does not own K's code: it can neither add nor remove gates there.
    sup.switch(CPU, m).unwrap();
    assert!(matches!(
        sup.set_gate(CPU, m, code + 8, Some(Gate::Call { dest: m })),
        Err(SupervisorError::NotOwner { owner, .. }) if owner == k
    ));
    assert!(matches!(
        sup.set_gate(CPU, m, code, None),
        Err(SupervisorError::NotOwner { .. })
    ));
    assert!(matches!(
        sup.set_gate(CPU, m, code + 2, None),
        Err(SupervisorError::Unaligned { .. })
    ));
    // The gate works, and counts.
    assert_eq!(
        sup.call(CPU, code, ByteAddr(0x10), sup_sp(&sup), ArgWindow::NONE),
        Ok(k)
    );
    assert_eq!(sup.ret(CPU, code + 0x40, ByteAddr(0x10)), Ok(m));
    assert_eq!(sup.machine().crossing_totals().pair(m, k), 1);
    sup.check_invariants().unwrap();
    // Freeing the code removes every gate on it.
    sup.switch(CPU, k).unwrap();
    sup.free(CPU, code, None).unwrap();
    assert_eq!(sup.gate(m, code), None);
    assert_eq!(sup.gate(k, code + 0x40), None);
    sup.check_invariants().unwrap();
}

fn sup_sp(sup: &Supervisor) -> ByteAddr {
    sup.machine().frame_regs(CPU).unwrap().fb - 16
}

#[test]
fn gates_go_when_the_code_changes_owner_and_never_sit_on_stacks() {
    let World {
        mut sup,
        k,
        m,
        code,
        stack,
    } = world();
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    assert!(matches!(
        sup.set_gate(CPU, m, stack, Some(Gate::Return)),
        Err(SupervisorError::Reserved { .. })
    ));
    assert!(matches!(
        sup.set_gate(CPU, m, ENTRY_BASE, Some(Gate::Return)),
        Err(SupervisorError::Reserved { .. })
    ));
    sup.mem_chown(CPU, code, 0x1000, m).unwrap();
    assert_eq!(sup.gate(m, code), None);
    sup.check_invariants().unwrap();
}

#[test]
fn the_supervisors_entry_points_are_call_gates_into_pd0() {
    let World { mut sup, k, m, .. } = world();
    let entry = SupervisorCall::Alloc.entry_addr();
    let pd0 = mmp_domains::PdId::SUPERVISOR;
    assert_eq!(sup.gate(k, entry), Some(Gate::Call { dest: pd0 }));
    assert_eq!(sup.gate(pd0, SUPERVISOR_RETURN), Some(Gate::Return));
    // A call to the entry word crosses into PD 0; PD 0's return gate comes back.
    let sp = sup_sp(&sup);
    assert_eq!(
        sup.call(CPU, entry, ByteAddr(0x20), sp, ArgWindow::NONE),
        Ok(pd0)
    );
    assert_eq!(sup.ret(CPU, SUPERVISOR_RETURN, ByteAddr(0x20)), Ok(k));
    assert_eq!(sup.machine().crossing_totals().pair(k, pd0), 1);
    // Revoking M's entry permission removes its gate: the entry word is then just a word
    // it may not execute.
    sup.switch(CPU, pd0).unwrap();
    sup.set_perm(CPU, entry, 4, Perm::None, m, false).unwrap();
    assert_eq!(sup.gate(m, entry), None);
    sup.switch(CPU, m).unwrap();
    let e = sup
        .call(CPU, entry, ByteAddr(0x20), sup_sp(&sup), ArgWindow::NONE)
        .unwrap_err();
    assert!(matches!(e.fault.kind, FaultKind::NoPermission { .. }));
    sup.check_invariants().unwrap();
}

#[test]
fn set_stack_loads_the_frame_registers_and_waits_for_calls_to_return() {
    let World {
        mut sup,
        k,
        m,
        code,
        stack,
    } = world();
    let regs = sup.machine().frame_regs(CPU).unwrap();
    assert_eq!((regs.sl, regs.fb), (stack, stack + FB));
    // The thread reads and writes its stack through the registers alone.
    sup.store(CPU, stack + 0x100, 4, 5).unwrap();
    assert!(
        sup.store(CPU, stack + FB, 4, 5).is_err(),
        "above the frame base"
    );
    assert!(
        sup.fetch(CPU, stack + 0x100, 4).is_err(),
        "never executable"
    );
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    sup.switch(CPU, m).unwrap();
    sup.call(CPU, code, ByteAddr(0x10), stack + 0x700, ArgWindow::NONE)
        .unwrap();
    sup.switch(CPU, mmp_domains::PdId::SUPERVISOR).unwrap();
    assert_eq!(
        sup.set_stack(CPU, stack, CPU, stack + FB),
        Err(SupervisorError::CallsInProgress { cpu: CPU, depth: 1 })
    );
    // Freeing the active stack ends the thread: registers and call stack are cleared.
    sup.free(CPU, stack, None).unwrap();
    assert_eq!(sup.machine().call_stack(CPU).unwrap().depth(), 0);
    assert_eq!(sup.machine().frame_regs(CPU).unwrap().fb, ByteAddr(0));
    sup.check_invariants().unwrap();
}

#[test]
fn a_callee_takes_its_frame_exclusively_with_supr_set_perm() {
    let World {
        mut sup,
        k,
        m,
        code,
        stack,
    } = world();
    // The thread manager (PD 0) gave M read-write on part of the stack earlier.
    let frame = stack + 0x600;
    sup.switch(CPU, mmp_domains::PdId::SUPERVISOR).unwrap();
    sup.supr_set_perm(CPU, frame, 0x40, Perm::ReadWrite, false, m)
        .unwrap();
    sup.switch(CPU, k).unwrap();
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    sup.switch(CPU, m).unwrap();
    sup.call(CPU, code, ByteAddr(0x10), frame + 0x40, ArgWindow::NONE)
        .unwrap();
    // K, now running below the new frame base, takes the frame for itself alone.
    sup.supr_set_perm(CPU, frame, 0x40, Perm::ReadWrite, true, k)
        .unwrap();
    assert_eq!(sup.perm(m, frame), Perm::None, "M kept the frame");
    assert_eq!(sup.perm(k, frame), Perm::ReadWrite);
    sup.check_invariants().unwrap();
}

#[test]
fn a_callee_cannot_grant_itself_its_callers_frames() {
    let World {
        mut sup,
        k,
        m,
        code,
        stack,
    } = world();
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    sup.switch(CPU, m).unwrap();
    // M's frame is [stack + 0x600, stack + FB); it calls K with its stack pointer at 0x600.
    let sp = stack + 0x600;
    sup.call(CPU, code, ByteAddr(0x10), sp, ArgWindow::NONE)
        .unwrap();
    let before = sup.digest();
    // K's attempt on M's frame, above K's frame base, is refused and changes nothing.
    assert_eq!(
        sup.supr_set_perm(CPU, sp, 0x40, Perm::ReadWrite, true, k),
        Err(SupervisorError::AboveFrameBase {
            cpu: CPU,
            addr: sp,
            fb: sp
        })
    );
    // So is a range that starts in K's own frame and runs into M's.
    assert_eq!(
        sup.supr_set_perm(CPU, sp - 8, 16, Perm::ReadWrite, false, k),
        Err(SupervisorError::AboveFrameBase {
            cpu: CPU,
            addr: sp,
            fb: sp
        })
    );
    assert_eq!(sup.digest(), before, "a refused call changed the state");
    // Below the frame base it takes its own frame.
    sup.supr_set_perm(CPU, sp - 0x40, 0x40, Perm::ReadWrite, true, k)
        .unwrap();
    assert_eq!(sup.perm(k, sp - 0x40), Perm::ReadWrite);
    sup.check_invariants().unwrap();
}

#[test]
fn access_ok_answers_what_the_thread_can_touch_its_frame_and_argument_window_included() {
    let World {
        mut sup,
        k,
        m,
        code,
        stack,
    } = world();
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    sup.switch(CPU, m).unwrap();
    let sp = stack + 0x600;
    let two = ArgWindow {
        words: 2,
        writable: false,
    };
    sup.call(CPU, code, ByteAddr(0x10), sp, two).unwrap();
    let ok = |sup: &mut Supervisor, pd, addr: ByteAddr, len, access| {
        sup.access_ok(CPU, pd, addr, len, access)
    };
    use mmp_domains::Access::{Execute, Read, Write};
    // K's own frame, below its frame base: its table says nothing, its registers allow.
    assert_eq!(sup.perm(k, sp - 0x40), Perm::None);
    assert_eq!(ok(&mut sup, k, sp - 0x40, 0x40, Read), Ok(()));
    assert_eq!(ok(&mut sup, k, sp - 0x40, 0x40, Write), Ok(()));
    assert_eq!(
        ok(&mut sup, k, stack, 0x600, Write),
        Ok(()),
        "down to the stack limit"
    );
    // The two argument words its caller exported: read, not write.
    assert_eq!(ok(&mut sup, k, sp, 8, Read), Ok(()));
    assert_eq!(ok(&mut sup, k, sp - 4, 12, Read), Ok(()));
    let denied = |r: Result<(), SupervisorError>, at: ByteAddr| {
        assert!(
            matches!(r, Err(SupervisorError::Denied { first_bad, held: Perm::None, .. }) if first_bad == at),
            "{r:?}"
        );
    };
    denied(ok(&mut sup, k, sp, 8, Write), sp);
    // Past the window is M's frame; executing the stack is never allowed.
    denied(ok(&mut sup, k, sp, 12, Read), sp + 8);
    denied(ok(&mut sup, k, sp - 0x40, 4, Execute), sp - 0x40);
    // The registers are the running thread's: M, not running, has no frame there.
    denied(ok(&mut sup, m, sp - 0x40, 4, Read), sp - 0x40);
    // What access_ok allows, the machine's check allows.
    assert!(sup.load(CPU, sp - 0x40, 4).is_ok());
    assert!(sup.load(CPU, sp + 4, 4).is_ok());
    assert!(sup.load(CPU, sp + 8, 4).is_err());
}

/// One cross-domain call from M into K passing `ARGS` stack words, `n` times, either through
/// the argument window or the paper's way (table writes before the call and after the
/// return). Returns K's (narrowing, widening) epoch advances and CPU 0's PLB misses.
fn pass_args(paper: bool, n: u64) -> (u64, u64, u64) {
    const ARGS: u32 = 4;
    let World {
        mut sup,
        k,
        m,
        code,
        stack,
    } = world();
    let ret_gate = code + 0xf0;
    sup.set_gate(CPU, m, code, Some(Gate::Call { dest: k }))
        .unwrap();
    sup.set_gate(CPU, k, ret_gate, Some(Gate::Return)).unwrap();
    sup.switch(CPU, m).unwrap();
    let sp = stack + 0x600;
    for i in 0..u64::from(ARGS) {
        sup.store(CPU, sp + 4 * i, 4, 10 + i).unwrap();
    }
    let epochs = |sup: &Supervisor| sup.machine().epochs(k).unwrap();
    let misses = |sup: &Supervisor| sup.machine().plb_stats(CPU).unwrap().misses;
    let (e0, m0) = (epochs(&sup), misses(&sup));
    for _ in 0..n {
        let window = if paper {
            sup.export_stack_args(CPU, sp, ARGS, k).unwrap();
            ArgWindow::NONE
        } else {
            ArgWindow {
                words: ARGS,
                writable: false,
            }
        };
        assert_eq!(sup.call(CPU, code, ByteAddr(0x10), sp, window), Ok(k));
        let sum: u64 = (0..u64::from(ARGS))
            .map(|i| sup.load(CPU, sp + 4 * i, 4).unwrap())
            .sum();
        assert_eq!(sum, 10 + 11 + 12 + 13);
        assert!(
            sup.load(CPU, sp + 4 * u64::from(ARGS), 4).is_err(),
            "past the export"
        );
        assert_eq!(sup.ret(CPU, ret_gate, ByteAddr(0x10)), Ok(m));
        if paper {
            sup.revoke_stack_args(CPU, sp, ARGS, k).unwrap();
            assert_eq!(sup.perm(k, sp), Perm::None, "revoked on return");
        }
    }
    sup.check_invariants().unwrap();
    let e1 = epochs(&sup);
    (
        e1.narrow - e0.narrow,
        e1.widen - e0.widen,
        misses(&sup) - m0,
    )
}

#[test]
fn stack_arguments_the_papers_way_cost_table_writes_epochs_and_misses_the_window_does_not() {
    let n = 50;
    let (narrow, widen, misses) = pass_args(false, n);
    assert_eq!((narrow, widen), (0, 0), "the window writes no table");
    let (pnarrow, pwiden, pmisses) = pass_args(true, n);
    assert_eq!(
        (pnarrow, pwiden),
        (n, n),
        "one widening write to export and one narrowing write to revoke, a call"
    );
    assert!(
        pmisses >= n,
        "each call's first argument load misses after the revoke: {pmisses}"
    );
    assert!(
        misses < n / 10,
        "the window's loads need no PLB entry: {misses} misses"
    );
}
