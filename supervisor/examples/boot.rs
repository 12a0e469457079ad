//! The MMP kernel paper's boot, step by step (its section 3): the memory supervisor (PD 0)
//! creates the core kernel's domain (PD 1), grants the boot loader its code, data and
//! stack, and enters it by a cross-domain call; the core kernel then allocates memory,
//! creates a module's domain, exports to it (code through a call gate, data read-only, a
//! region by ownership), keeps it from calling the supervisor, and the module calls back into
//! the core kernel through the gate.
//!
//! `cargo run -p mmp-supervisor --example boot`

use mmp_domains::{ByteAddr, PdKind, Perm};
use mmp_gates::{ArgWindow, Gate};
use mmp_supervisor::policy::SupervisorCall;
use mmp_supervisor::{
    FaultAction, FaultPolicy, FaultReport, Supervisor, SupervisorConfig, SupervisorError,
};

const CPU: usize = 0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // At reset the CPU runs PD 0, the memory supervisor; its accesses are never checked.
    let mut sup = Supervisor::new(SupervisorConfig::default())?;
    let pd0 = sup.machine().running(CPU)?;
    println!("reset: CPU {CPU} runs {pd0}, the memory supervisor");

    // "Once initialized, the supervisor creates a new domain (PD-ID=1) to hold code and data
    // for the core of the kernel."
    let kernel = sup.alloc_pd(CPU, PdKind::Kernel)?;
    println!("mmp_alloc_PD(kernel) = {kernel}");

    // "To start the kernel, the supervisor must first load the boot loader into PD 1": its
    // code (execute-read), its data (read-write) and a read-write stack.
    let code = sup.alloc(CPU, 0x1000, None, false)?;
    let data = sup.alloc(CPU, 0x1000, None, false)?;
    let stack = sup.alloc(CPU, 0x2000, None, true)?;
    sup.store(CPU, data, 4, 0x1005_1ade)?; // the loader's image, written by PD 0
    sup.set_perm(CPU, code, 0x1000, Perm::ExecuteRead, kernel, false)?;
    sup.set_perm(CPU, data, 0x1000, Perm::ReadWrite, kernel, false)?;
    let fb = stack + 0x2000;
    sup.set_stack(CPU, stack, CPU, fb)?;
    println!("boot loader: code {code:#x}, data {data:#x}, stack [{stack:#x}, {fb:#x})");

    // The entry is a call gate in PD 0's table; the loader returns through a return gate.
    let entry = code;
    let ret_gate = code + 0xff0;
    sup.set_gate(CPU, pd0, entry, Some(Gate::Call { dest: kernel }))?;
    sup.set_gate(CPU, kernel, ret_gate, Some(Gate::Return))?;
    // "The supervisor then performs a cross-domain call ... to the boot loader."
    let back_to = ByteAddr(0x100); // in the supervisor's own region
    let sp = fb - 0x40;
    let now = sup.call(CPU, entry, back_to, sp, ArgWindow::NONE)?;
    assert_eq!(now, kernel);
    let depth = sup.machine().call_stack(CPU)?.depth();
    println!("cross-domain call into {now}: call stack depth {depth}, frame base {sp:#x}");
    assert_eq!(sup.load(CPU, data, 4)?, 0x1005_1ade);
    // Its stack frame is its own through the frame registers: no table grant needed.
    sup.store(CPU, sp - 4, 4, 7)?;
    assert_eq!(
        sup.access_ok(CPU, kernel, sp - 0x20, 0x20, mmp_domains::Access::Write),
        Ok(())
    );

    // "The boot loader wants to load the core kernel, and so needs to ask the memory
    // supervisor for additional memory space": it owns what it allocates.
    let core = sup.alloc(CPU, 0x4000, None, false)?;
    sup.set_perm(CPU, core, 0x2000, Perm::ExecuteRead, kernel, false)?;
    sup.set_perm(CPU, core + 0x2000, 0x2000, Perm::ReadWrite, kernel, false)?;
    assert_eq!(sup.owner(core), Some(kernel));
    println!("mmp_alloc(0x4000) = {core:#x}, owned by {kernel}: core kernel text and data");

    // "Once the core kernel starts running, it can create child PDs to hold kernel modules."
    let module = sup.alloc_pd(CPU, PdKind::Kernel)?;
    sup.set_fault_policy(CPU, module, FaultPolicy::Deny)?;
    let mcode = sup.alloc(CPU, 0x1000, None, false)?;
    let mheap = sup.alloc(CPU, 0x1000, None, false)?;
    println!("core kernel creates module domain {module}");
    // It exports: the module's code and a heap region by ownership (the module manages
    // them), and its core data read-only (say, jiffies).
    sup.mem_chown(CPU, mcode, 0x1000, module)?;
    sup.mem_chown(CPU, mheap, 0x1000, module)?;
    let jiffies = core + 0x2000;
    sup.set_perm(CPU, jiffies, 0x40, Perm::ReadOnly, module, false)?;
    // A call gate into the core kernel's `printk` in the module's table (only the owner of
    // the code may make a gate into it), and the kernel's return gate.
    let printk = core + 0x100;
    let kernel_ret = core + 0x1ff0;
    sup.set_gate(CPU, module, printk, Some(Gate::Call { dest: kernel }))?;
    sup.set_gate(CPU, kernel, kernel_ret, Some(Gate::Return))?;
    // "The core kernel can block kernel modules from calling the memory supervisor by not
    // exporting call permission on the supervisor entry points to the kernel modules": it
    // passes on only the two entries the module needs to manage what it owns (set_perm and
    // set_gate), not mmp_alloc.
    for call in [SupervisorCall::SetPerm, SupervisorCall::SetGate] {
        sup.set_perm(CPU, call.entry_addr(), 4, Perm::ExecuteRead, module, false)?;
    }
    println!(
        "exports: code {mcode:#x} and heap {mheap:#x} by mem_chown, jiffies {jiffies:#x} \
         read-only, a gate to printk, the set_perm and set_gate entries"
    );
    sup.switch(CPU, module)?;
    let refused = sup.alloc(CPU, 0x1000, None, false);
    println!("the module calls mmp_alloc: {}", show(&refused));
    assert!(matches!(
        refused,
        Err(SupervisorError::EntryNotPermitted {
            call: SupervisorCall::Alloc,
            ..
        })
    ));
    // The module, owner of its code, gates its init in the kernel's table and returns
    // through its own return gate; its heap is its own.
    let mod_init = mcode;
    let mod_ret = mcode + 0xff0;
    sup.set_gate(CPU, kernel, mod_init, Some(Gate::Call { dest: module }))?;
    sup.set_gate(CPU, module, mod_ret, Some(Gate::Return))?;
    sup.set_perm(CPU, mcode, 0x1000, Perm::ExecuteRead, module, false)?;
    sup.set_perm(CPU, mheap, 0x1000, Perm::ReadWrite, module, false)?;
    sup.switch(CPU, kernel)?;

    // The core kernel calls the module's init; the module reads jiffies, writes its heap,
    // calls printk through the gate, returns, and returns to the kernel.
    let sp2 = sp - 0x100;
    assert_eq!(
        sup.call(CPU, mod_init, core + 0x44, sp2, ArgWindow::NONE)?,
        module
    );
    let j = sup.load(CPU, jiffies, 4)?;
    sup.store(CPU, mheap, 4, j + 1)?;
    let wrote = sup.store(CPU, jiffies, 4, 0);
    println!(
        "the module writes the read-only jiffies: {}",
        show_fault(&wrote)
    );
    assert!(matches!(
        wrote,
        Err(FaultReport {
            action: FaultAction::Denied,
            ..
        })
    ));
    assert_eq!(
        sup.call(CPU, printk, mcode + 0x20, sp2 - 0x40, ArgWindow::NONE)?,
        kernel
    );
    assert_eq!(sup.ret(CPU, kernel_ret, mcode + 0x20)?, module);
    assert_eq!(sup.ret(CPU, mod_ret, core + 0x44)?, kernel);

    // The boot loader's work is done: it returns to the supervisor.
    assert_eq!(sup.ret(CPU, ret_gate, back_to)?, pd0);
    println!("the boot loader returns to {pd0}");

    let stats = sup.machine().crossing_totals();
    println!("crossings:");
    for ((from, to), n) in stats.pairs() {
        println!("  {from} -> {to}: {n}");
    }
    assert_eq!(stats.total(), 3);
    println!(
        "gate lookups {}, call-stack spills {}",
        sup.machine().gate_lookups(),
        sup.machine().stack_traffic_totals().spills
    );
    sup.check_invariants()?;
    println!("invariants hold");
    Ok(())
}

fn show<T: std::fmt::Debug>(r: &Result<T, SupervisorError>) -> String {
    match r {
        Ok(v) => format!("allowed ({v:?})"),
        Err(e) => format!("refused: {e}"),
    }
}

fn show_fault<T>(r: &Result<T, FaultReport>) -> String {
    match r {
        Ok(_) => "no fault".to_string(),
        Err(rep) => format!("{rep}"),
    }
}
