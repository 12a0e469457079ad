//! # mmp-memguard: quasi-invariants on MMP
//!
//! MemGuard protects "quasi-invariants" (data that should only change through approved
//! writes) by write-protecting their pages and filtering the faults. On the MMP supervisor a
//! quasi-invariant becomes a per-word read-only grant instead, so writes to neighbouring words
//! never fault. This crate is a client of `mmp-supervisor`, with the page-granular algorithm
//! kept beside it as a measured baseline.
//!
//! MemGuard's two levels map onto two pieces:
//! - the portable [`MemGuard`] level ([`portable`]): terms, enable/disable, protect, release,
//!   approved writes, violation reports folded by pc;
//! - the memory protection level, the [`MemoryProtection`] trait ([`protection`]), with three
//!   implementations: [`Supervised::mmp`] (word-granular, on the supervisor),
//!   [`Supervised::page_model`] (the page algorithm on the simulated machine) and, on Linux
//!   x86-64 only, [`page_real::PageReal`] (the page algorithm on real memory with `mprotect`,
//!   `SIGSEGV` and the trap flag).

// `unsafe` lives in `page_real` alone (system calls, signal handlers and single stores on
// real memory); every other module is refused it.
#![deny(unsafe_code)]

pub mod portable;
pub mod protection;
pub mod supervised;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[allow(unsafe_code)]
pub mod page_real;

pub use portable::{Counters, MemGuard, MemGuardInvariantError, Term, TermId, Violation};
pub use protection::{
    BackendStats, MemGuardError, MemoryProtection, WriteFault, check_range, check_write,
};
pub use supervised::Supervised;
