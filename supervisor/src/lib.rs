//! # mmp-supervisor: the memory supervisor, PD 0, and the machine it runs
//!
//! The MMP kernel paper moves protection policy into a small memory supervisor running as
//! protection domain 0: it owns the permissions tables, allocates domains and memory, and
//! implements the `mmp_*` API checked against ownership and grant chains. It sits on the
//! hardware model (`mmp-domains`, `mmp-plb`, `mmp-gates`); MemGuard, the Linux split tool and
//! the benchmarks are its clients.
//!
//! The crate has two layers: the [`machine`] (CPUs with their PD registers, PLBs, frame
//! registers and cross-domain call stacks, the per-domain permissions tables with their gate
//! records, sparse simulated memory; every load, store and fetch checked, and `call`, `ret`
//! and `jump` crossing domains through call and return gates), and on it the [`Supervisor`],
//! the policy layer with the whole `mmp_*` API (see [`supervisor`]), which also decides who
//! may place a gate and keeps its own entry points as gates into PD 0. [`model`] is the supervisor's slow, obviously correct reference model
//! and [`ops`] the operation language and differential driver that proptests and the
//! `supervisor_ops` fuzz target share.

pub mod buddy;
pub mod model;
pub mod ops;
pub mod policy;
pub mod supervisor;

pub use mmp_machine::{AccessError, Fault, FaultKind, Machine, MachineConfig, MachineError};
pub use mmp_gates::{ArgWindow, CrossingStats, FrameRegs, Gate};
pub use policy::{
    FaultAction, FaultPolicy, FaultRecord, FaultReport, Grant, RegionKind, Resolution,
    SupervisorCall, SupervisorError,
};
pub use supervisor::{Supervisor, SupervisorConfig};
