//! # mmp-supervisor: the memory supervisor, PD 0, and the machine it runs
//!
//! The MMP kernel paper moves protection policy into a small memory supervisor running as
//! protection domain 0: it owns the permissions tables, allocates domains and memory, and
//! implements the `mmp_*` API checked against ownership and grant chains. It sits on the
//! hardware model (`mmp-domains`, `mmp-plb`, `mmp-gates`); MemGuard, the Linux split tool and
//! the benchmarks are its clients.
//!
//! This crate holds the [`machine`] now: CPUs with their PD registers and PLBs, the per-domain
//! permissions tables, and sparse simulated memory, with every load, store and fetch checked.
//! The supervisor's policy layer (the `mmp_*` API) is being built on top of it.

pub mod machine;
pub mod memory;

pub use machine::{AccessError, Fault, FaultKind, Machine, MachineConfig, MachineError};
