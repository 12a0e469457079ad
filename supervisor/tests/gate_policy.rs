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
