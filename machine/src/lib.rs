//! # mmp-machine: the MMP hardware, whole
//!
//! The MMP papers describe hardware: every CPU has a protection-domain (PD) register and a
//! protection lookaside buffer (PLB), every domain a permissions table with gate records
//! beside it, and every load, store and fetch is checked against the running domain's table
//! on every word it touches. This crate joins the pieces below it (`mmp-domains` for tables,
//! `mmp-plb`, `mmp-gates`) into that machine and adds sparse memory and write tracking. It
//! holds no policy: who may change a table is the memory supervisor's business
//! (`mmp-supervisor`, PD 0, which runs on this machine). A client that wants bare hardware,
//! such as a trace replay or a layout loader, may drive the [`Machine`] directly, knowing
//! that nothing checks its table writes.
//!
//! The [`Machine`] runs its CPUs in one thread (a simulator interleaves them), so its
//! methods take `&mut self`. Its parts, a file each:
//!
//! - [`machine`](crate::Machine): configuration, CPUs, domains (create, destroy, switch);
//! - `tables`: table writes ([`Machine::set_perm`], [`Machine::apply_writes`]) and gate
//!   records; a write that narrows any permission advances the domain's epoch before it
//!   returns, so no CPU's PLB allows the old permission afterwards and there is no flush for
//!   a caller to forget;
//! - `check`: [`Machine::check`], [`Machine::load`], [`Machine::store`], [`Machine::fetch`]
//!   of 1, 2, 4 or 8 bytes, checked on every word they touch; PD 0 is not checked; faults
//!   are precise (a faulting access has no effect);
//! - `transfer`: [`Machine::call`], [`Machine::ret`], [`Machine::jump`] through call and
//!   return gates, with the frame registers and the cross-domain call stack;
//! - `tracking`: which words' stores are recorded, and their dirty marks;
//! - [`fault`]: [`Fault`], [`FaultKind`], [`MachineError`], [`AccessError`];
//! - [`memory`]: sparse simulated memory; [`segmap`]: the word-range map tracking uses;
//!   [`wordset`]: the bit set of dirty words;
//! - `invariants`: [`Machine::check_invariants`].

#![forbid(unsafe_code)]

mod check;
pub mod fault;
mod invariants;
mod machine;
pub mod memory;
pub mod segmap;
mod tables;
mod tracking;
mod transfer;
pub mod wordset;

pub use check::{DATA_SIDECAR, FETCH_SIDECAR};
pub use fault::{AccessError, Fault, FaultKind, MachineError};
pub use invariants::MachineInvariantError;
pub use machine::{CALL_STACK_BUFFER, CALL_STACK_FRAMES, Machine, MachineConfig};
pub use memory::Memory;
pub use mmp_gates::{ArgWindow, CallStack, CrossingStats, Frame, FrameRegs, Gate, GateTable};
pub use segmap::{SegMap, SegMapInvariantError};
pub use tables::TableWrite;
pub use transfer::CpuContext;
pub use wordset::WordSet;
