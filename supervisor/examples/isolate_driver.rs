//! Isolating a driver from the core kernel.
//!
//! PD 0 (the supervisor) creates the core kernel's domain; the kernel creates a driver domain
//! as its child, gives it its own buffer, read-only access to one kernel structure, and no
//! call permission on the supervisor. The driver's stray write into kernel data is blocked
//! and reported; the kernel keeps running.
//!
//! Run with `cargo run -p mmp-supervisor --example isolate_driver`.

use mmp_domains::{PdKind, Perm};
use mmp_supervisor::{FaultAction, FaultPolicy, Supervisor, SupervisorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const CPU: usize = 0;
    let mut sup = Supervisor::new(SupervisorConfig::default())?;

    // PD 0 creates the core kernel and runs it.
    let kernel = sup.alloc_pd(CPU, PdKind::Kernel)?;
    sup.switch(CPU, kernel)?;
    let kdata = sup.alloc(CPU, 4096, None, false)?; // the kernel's task list
    let kconfig = sup.alloc(CPU, 256, None, false)?; // a structure the driver may read
    let dbuf = sup.alloc(CPU, 8192, None, false)?; // the driver's buffer
    sup.store(CPU, kdata, 8, 0x1111_2222_3333_4444)?;
    sup.store(CPU, kconfig, 4, 0x0000_1000)?;

    // The driver: a child of the kernel. It gets its buffer (read-write, then ownership),
    // read-only on the config, and nothing else: not even call permission on the supervisor.
    let driver = sup.alloc_pd(CPU, PdKind::Kernel)?;
    sup.set_perm(CPU, dbuf, 8192, Perm::ReadWrite, driver, false)?;
    sup.mem_chown(CPU, dbuf, 8192, driver)?;
    sup.set_perm(CPU, kconfig, 256, Perm::ReadOnly, driver, false)?;
    // A fault in the driver is reported and the faulting access skipped.
    sup.set_fault_policy(CPU, driver, FaultPolicy::Report)?;
    println!("kernel {kernel}: task list at {kdata:#x}, config at {kconfig:#x}");
    println!("driver {driver}: buffer at {dbuf:#x} (its own), config read-only");

    // The driver runs.
    sup.switch(CPU, driver)?;
    sup.store(CPU, dbuf + 16, 4, 0xd00d)?;
    let cfg = sup.load(CPU, kconfig, 4)?;
    println!("driver reads the config: {cfg:#x}");
    // A stray write into the kernel's task list (a bad pointer in the driver).
    sup.store(CPU, kdata, 8, 0xdead_beef)?; // the Report policy skips it: the driver goes on
    let last = sup
        .faults()
        .last()
        .map_or_else(|| "nothing recorded".to_string(), ToString::to_string);
    println!("driver's stray write to {kdata:#x} blocked and reported: {last}");
    // Nor can it ask the supervisor for more.
    let grab = sup.set_perm(CPU, kdata, 4096, Perm::ReadWrite, driver, false);
    println!(
        "driver asks the supervisor for the task list: {}",
        grab.unwrap_err()
    );

    // Back in the kernel: its data is intact and it keeps running.
    sup.switch(CPU, kernel)?;
    let task = sup.load(CPU, kdata, 8)?;
    assert_eq!(
        task, 0x1111_2222_3333_4444,
        "the stray write changed kernel data"
    );
    sup.store(CPU, kdata + 8, 8, 42)?;
    println!("kernel's task list is intact ({task:#x}) and the kernel keeps running");

    let faults = sup.faults();
    println!("faults recorded: {}", faults.len());
    for f in faults {
        println!("  {f}");
    }
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].action, FaultAction::Reported);
    sup.check_invariants()?;
    Ok(())
}
