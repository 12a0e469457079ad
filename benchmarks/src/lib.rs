//! # mmp-benchmarks: traces, the replay harness, workloads and baselines
//!
//! The top of the MMP picture: clients that measure the model. The replay engine drives the
//! hardware model (`mmp-machine`) directly, with no supervisor in between, since a trace
//! says what the hardware saw; the `supervisor` and `memguard` benches use the layers above
//! as dev-dependencies. [`trace`] holds the event model, our binary format and text form;
//! [`import`] reads other tools' traces (ftrace, uftrace, ltrace, Valgrind lackey), one
//! registered format each; [`kernel`] holds the embedded real-kernel trace and layout;
//! [`synth`] generates the MMP kernel paper's boot trace
//! and a coarse-layout memory workload; [`replay`] drives the machine from any of them and
//! reports crossings, PLB behaviour, table references and footprints, and faults; [`plot`]
//! draws the SVGs of `mmp-replay`; [`tally`] counts by enum. The workloads the criterion benches in `benches/` share
//! (seeded layouts, pre-generated address streams) and the naive baselines they are
//! compared with live here too, so every bench and its baseline see the same inputs.
//!
//! # The model from code
//!
//! `cargo doc --open` opens on this page. The three examples below are the shortest paths
//! through the workspace, and each is compiled and run by `cargo test --doc`.
//!
//! **A machine with a supervisor and domains.** `mmp_supervisor::Supervisor` is PD 0 on the
//! hardware model; every `mmp_*` call names the CPU it runs on. A kernel domain allocates
//! memory, creates a driver domain, grants it one word read-only, and the driver's write to
//! that word is refused and reported with the domain, address and access:
//!
//! ```
//! use mmp_domains::{Access, PdKind, Perm};
//! use mmp_supervisor::{FaultAction, FaultPolicy, Supervisor, SupervisorConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const CPU: usize = 0;
//! let mut sup = Supervisor::new(SupervisorConfig::default())?;
//! let kernel = sup.alloc_pd(CPU, PdKind::Kernel)?;
//! sup.switch(CPU, kernel)?;
//! let data = sup.alloc(CPU, 4096, None, false)?; // owned by the kernel
//! sup.store(CPU, data, 4, 7)?;
//!
//! let driver = sup.alloc_pd(CPU, PdKind::Kernel)?;
//! sup.set_perm(CPU, data, 4, Perm::ReadOnly, driver, false)?; // one word, read-only
//! sup.set_fault_policy(CPU, driver, FaultPolicy::Report)?; // report, skip the access
//!
//! sup.switch(CPU, driver)?;
//! assert_eq!(sup.load(CPU, data, 4)?, 7); // granted
//! sup.store(CPU, data, 4, 8)?; // refused: reported and skipped
//! sup.store(CPU, data + 4, 4, 8)?; // the next word: never granted
//!
//! let faults = sup.faults();
//! assert_eq!(faults.len(), 2);
//! assert_eq!(faults[0].fault.pd, driver);
//! assert_eq!(faults[0].fault.addr, data);
//! assert_eq!(faults[0].fault.access, Access::Write);
//! assert_eq!(faults[0].action, FaultAction::Reported);
//! for f in faults {
//!     println!("{f}"); // Display names the CPU, domain, address, size, access and why
//! }
//! sup.switch(CPU, kernel)?;
//! assert_eq!(sup.load(CPU, data, 4)?, 7); // the kernel's word is unchanged
//! sup.check_invariants()?;
//! # Ok(())
//! # }
//! ```
//!
//! **A trace replayed from code.** [`import::from_reader`] tells the format from the first
//! bytes (here our text form; ftrace, uftrace, ltrace and lackey output read the same way),
//! and [`replay::Replay`] runs it on a machine whose domains, gates and grants come from the
//! trace's own declarations (or, with [`replay::Replay::with_layout`], from a split layout):
//!
//! ```
//! use mmp_benchmarks::import;
//! use mmp_benchmarks::replay::{Replay, ReplayConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let trace = "\
//! mmp-trace 1 width 32
//! domain 1 vmlinux
//! domain 2 ext4
//! function 0x1000010 1 vfs_write
//! function 0x2000010 2 ext4_file_write_iter
//! grant 2 0x400000 0x1000 rw
//! switch 1
//! call 0x1000010
//! call 0x2000010
//! store 0x400000 4
//! store 0x500000 4
//! return
//! return
//! ";
//! let mut src = import::from_reader(std::io::Cursor::new(trace), None)?;
//! let mut replay = Replay::new(ReplayConfig::default(), src.width())?;
//! replay.run(&mut *src, |_| {})?;
//! let report = replay.report();
//! assert_eq!(report.crossings, 2); // into ext4 and back
//! assert_eq!(report.crossing_pairs[0].calls + report.crossing_pairs[1].calls, 1);
//! assert_eq!(report.faults.total, 1); // ext4 holds no permission at 0x500000
//! # Ok(())
//! # }
//! ```
//!
//! **A split layout loaded.** `mmp-split --out` writes a [`mmp_split::Layout`] as JSON
//! ([`mmp_split::Layout::from_json`] reads it back). [`mmp_split::Layout::load`] puts it
//! straight into a 48-bit machine; [`mmp_split::Layout::load_supervised`] builds it through
//! the supervisor's `mmp_*` calls, as the MMP kernel paper does, and fails naming the entry
//! the policy refuses. The embedded layout of Debian 6.1's modules, loaded both ways:
//!
//! ```
//! use mmp_domains::{AddrWidth, TableFormat};
//! use mmp_machine::{Machine, MachineConfig};
//! use mmp_supervisor::{Supervisor, SupervisorConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layout = mmp_benchmarks::kernel::layout()?; // or Layout::from_json(&text)?
//! let config = MachineConfig {
//!     width: AddrWidth::Bits48,
//!     format: TableFormat::Mlpt,
//!     max_pds: 1024,
//!     ..MachineConfig::default()
//! };
//!
//! let mut machine = Machine::new(config.clone())?;
//! let loaded = layout.load(&mut machine)?;
//! let ext4 = loaded.pd("ext4").expect("ext4 is one of the modules");
//! assert!(loaded.gates > 1000);
//! machine.check_invariants()?;
//!
//! let mut sup = Supervisor::new(SupervisorConfig { machine: config, ..Default::default() })?;
//! let through = layout.load_supervised(&mut sup, 0)?;
//! assert!(through.pds.contains_key("ext4"));
//! sup.check_invariants()?;
//! println!("ext4 is {ext4}; {} mmp_* calls built the layout", through.calls);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod baseline;
pub mod import;
pub mod kernel;
pub mod kernel_mmp;
pub mod plot;
pub mod replay;
pub mod rng;
pub mod synth;
pub mod tally;
pub mod trace;
pub mod workloads;
