//! # mmp-memguard: quasi-invariants on MMP
//!
//! MemGuard protects "quasi-invariants" (data that should only change through approved
//! writes) by write-protecting their pages and filtering the faults. On the MMP supervisor a
//! quasi-invariant becomes a per-word read-only grant instead, so writes to neighbouring words
//! never fault. This crate is a client of `mmp-supervisor`, with the page-granular algorithm
//! kept beside it as a measured baseline.
//!
//! Status: being built (tracked in the project's issues); this crate currently holds only its
//! place in the workspace.
