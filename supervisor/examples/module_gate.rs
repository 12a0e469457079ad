//! A kernel module calling the core kernel through a call gate.
//!
//! PD 0 creates the core kernel's domain K; K loads a module as its child domain M: it gives
//! M its own code (execute-read, then ownership) and nothing of its own. K exports one
//! function to M the only way a domain can: it places a call gate at the function's entry
//! word in M's table (only the owner of code may make a call gate into it, and the gate
//! enters the owner) and a return gate at the function's return instruction in its own
//! table. K also sets up the thread's stack (the frame registers give the running thread
//! `[stack base, fb)`, whatever its table says).
//!
//! M then fills a buffer on its stack and calls K's function through the gate, exporting the
//! buffer's words writable. K runs as itself (a different domain on the same CPU, with no
//! trap), reads and updates the buffer through the argument window and nothing more, and
//! returns through its return gate. Finally M tries to reach K's code the wrong ways: a jump
//! or call past the gate is an execute fault (M holds nothing on K's code), while a jump onto
//! the gate (a tail call) crosses just as the call did: any transfer onto a call gate does.
//! Crossing counts and the faults are printed; every expectation is asserted.
//!
//! Run with `cargo run -p mmp-supervisor --example module_gate`.

use mmp_domains::{Access, ByteAddr, PdKind, Perm};
use mmp_gates::{ArgWindow, Gate};
use mmp_supervisor::{
    FaultAction, FaultKind, FaultReport, Supervisor, SupervisorConfig, SupervisorError,
};

/// Words of the buffer M passes to K.
const ARG_WORDS: u32 = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const CPU: usize = 0;
    let mut sup = Supervisor::new(SupervisorConfig::default())?;

    // PD 0 creates the core kernel and runs it.
    let k = sup.alloc_pd(CPU, PdKind::Kernel)?;
    sup.switch(CPU, k)?;
    // K's code: a heap region K owns; K makes it execute-read for itself.
    let kcode = sup.alloc(CPU, 256, None, false)?;
    sup.set_perm(CPU, kcode, 256, Perm::ExecuteRead, k, false)?;
    let entry = kcode + 0x40; // `k_sum`: the function K exports to modules
    let ret_at = entry + 0x20; // its return instruction
    println!("core kernel {k}: code at {kcode:#x}, k_sum at {entry:#x} (returns at {ret_at:#x})");

    // K loads a module: a child domain with its own code (execute-read, then ownership).
    let m = sup.alloc_pd(CPU, PdKind::Kernel)?;
    let mcode = sup.alloc(CPU, 256, None, false)?;
    sup.set_perm(CPU, mcode, 256, Perm::ExecuteRead, m, false)?;
    sup.mem_chown(CPU, mcode, 256, m)?;
    assert_eq!(sup.owner(mcode), Some(m));
    assert_eq!(sup.perm(m, mcode), Perm::ExecuteRead);
    assert_eq!(
        sup.perm(m, entry),
        Perm::None,
        "M must hold nothing on K's code"
    );
    println!("module {m}: child of {k}, code at {mcode:#x} (its own), nothing on K's code");

    // K exports `k_sum` to M: a call gate into K at the entry, in M's table, and a return
    // gate at the return instruction, in K's own table.
    sup.set_gate(CPU, m, entry, Some(Gate::Call { dest: k }))?;
    sup.set_gate(CPU, k, ret_at, Some(Gate::Return))?;
    println!(
        "K places a call gate to {k} at {entry:#x} in M's table, a return gate at {ret_at:#x}"
    );
    // A gate must enter the owner of the code: K cannot make one that runs its code as M.
    let wrong = sup.set_gate(CPU, m, entry, Some(Gate::Call { dest: m }));
    println!(
        "K asks for a gate into {m} on its own code: {}",
        wrong_err(&wrong)
    );
    assert!(matches!(
        wrong,
        Err(SupervisorError::GateDestination { .. })
    ));
    assert_eq!(sup.gate(m, entry), Some(Gate::Call { dest: k }));

    // The thread's stack: K allocates a stack segment and makes it active on the CPU. The
    // frame registers give the running thread [stack, fb), so no table grants are needed.
    let stack = sup.alloc(CPU, 4096, None, true)?;
    let fb = stack + 4096;
    sup.set_stack(CPU, stack, CPU, fb)?;
    println!("thread stack [{stack:#x}, {fb:#x}) active on CPU {CPU}");

    // The module runs and fills a buffer on its stack.
    sup.switch(CPU, m)?;
    let sp = fb - 0x40; // M's stack pointer: the buffer is [sp, sp + 4 * ARG_WORDS)
    let ret_addr = mcode + 0x10; // where the call returns in M's code
    for i in 0..u64::from(ARG_WORDS) {
        sup.store(CPU, sp + 4 * i, 4, 10 * (i + 1))?;
    }
    println!(
        "M writes [10, 20, 30, 40] at {sp:#x} and calls k_sum through the gate, exporting \
         {ARG_WORDS} words writable"
    );

    // The call crosses into K: no trap, a frame on the cross-domain call stack.
    let args = ArgWindow {
        words: ARG_WORDS,
        writable: true,
    };
    let now = sup.call(CPU, entry, ret_addr, sp, args)?;
    assert_eq!(now, k);
    assert_eq!(sup.machine().running(CPU)?, k);
    let depth = sup.machine().call_stack(CPU)?.depth();
    assert_eq!(depth, 1);
    println!("  now running {now} (call stack depth {depth})");
    // K runs its own code, and reads and writes exactly the exported buffer.
    sup.fetch(CPU, entry, 4)?;
    let mut sum = 0;
    for i in 0..u64::from(ARG_WORDS) {
        sum += sup.load(CPU, sp + 4 * i, 4)?;
    }
    sup.store(CPU, sp, 4, sum)?;
    println!("  K reads the buffer, sums it ({sum}) and writes the sum into its first word");
    assert_eq!(sum, 100);
    // One word past the export is the caller's stack: K cannot reach it.
    let past = sp + 4 * u64::from(ARG_WORDS);
    let over = sup.load(CPU, past, 4);
    println!("  K reads one word past the export: {}", fault_text(&over));
    assert!(matches!(
        over,
        Err(FaultReport { fault, action: FaultAction::Denied })
            if fault.pd == k && fault.access == Access::Read
                && matches!(fault.kind, FaultKind::NoPermission { .. })
    ));
    // K returns through its return gate, back to M.
    let back = sup.ret(CPU, ret_at, ret_addr)?;
    assert_eq!(back, m);
    assert_eq!(sup.machine().call_stack(CPU)?.depth(), 0);
    let result = sup.load(CPU, sp, 4)?;
    println!("back in {back}: the buffer's first word is now {result}");
    assert_eq!(result, 100);

    // M tries to reach K's code the wrong ways.
    let past_gate = entry + 8;
    let jumped = sup.jump(CPU, past_gate, ret_addr, sp);
    println!(
        "M jumps to {past_gate:#x}, past the gate: {}",
        fault_text(&jumped)
    );
    expect_execute_fault(&jumped, m, past_gate);
    let called = sup.call(CPU, past_gate, ret_addr, sp, ArgWindow::NONE);
    println!(
        "M calls {past_gate:#x}, past the gate: {}",
        fault_text(&called)
    );
    expect_execute_fault(&called, m, past_gate);
    assert_eq!(
        sup.machine().running(CPU)?,
        m,
        "a faulting transfer switched domains"
    );
    // Any transfer onto a call gate crosses: a jump (a tail call) enters K as the call did,
    // and K's return goes back to the return address the jump named.
    let onto = sup.jump(CPU, entry, ret_addr, sp)?;
    println!("M jumps onto the gate at {entry:#x}: now running {onto}");
    assert_eq!(onto, k);
    assert_eq!(sup.ret(CPU, ret_at, ret_addr)?, m);

    // Crossing counts.
    let stats = sup.machine().crossing_totals();
    println!("crossings:");
    for ((caller, callee), n) in stats.pairs() {
        println!("  {caller} -> {callee}: {n}");
    }
    println!(
        "  through the gate at {entry:#x}: {}",
        stats.gate(entry.word())
    );
    assert_eq!(stats.pair(m, k), 2, "the call and the jump");
    assert_eq!(stats.gate(entry.word()), 2);
    assert_eq!(stats.total(), 2, "a faulting transfer was counted");

    let faults = sup.faults();
    println!("faults recorded: {}", faults.len());
    for f in faults {
        println!("  {f}");
    }
    assert_eq!(faults.len(), 3);
    sup.check_invariants()?;
    Ok(())
}

/// A refused supervisor call's error, for printing.
fn wrong_err(r: &Result<(), SupervisorError>) -> String {
    match r {
        Ok(()) => "allowed".to_string(),
        Err(e) => format!("refused: {e}"),
    }
}

/// A transfer's fault report, for printing.
fn fault_text<T>(r: &Result<T, FaultReport>) -> String {
    match r {
        Ok(_) => "no fault".to_string(),
        Err(rep) => format!("{rep}"),
    }
}

/// Asserts `r` is `pd`'s execute fault at `addr` (it holds nothing there), denied.
fn expect_execute_fault<T>(r: &Result<T, FaultReport>, pd: mmp_domains::PdId, addr: ByteAddr) {
    assert!(
        matches!(
            r,
            Err(FaultReport { fault, action: FaultAction::Denied })
                if fault.pd == pd && fault.addr == addr && fault.access == Access::Execute
                    && matches!(fault.kind, FaultKind::NoPermission { held: Perm::None, .. })
        ),
        "expected an execute fault at {addr:#x}"
    );
}
