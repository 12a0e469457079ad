//! # mmp-supervisor: the memory supervisor, PD 0
//!
//! The MMP kernel paper moves protection policy out of the kernel into a small memory
//! supervisor running as protection domain 0. It sits on the hardware model, `mmp-machine`
//! (CPUs with PD registers and PLBs, permissions tables with gate records, memory), and is
//! the only code that changes a table: it allocates domains and memory and implements the
//! `mmp_*` API, every call checked against ownership and grant chains. MemGuard and the
//! benchmarks' supervisor runs are its clients; its reference model and the operation
//! language that tests it live beside it, in `mmp-oracle`.
//!
//! Every call is made on behalf of the domain running on a CPU (the first argument), is
//! checked against the policy below, and either succeeds completely or returns a typed
//! [`SupervisorError`] and changes nothing: tables, PLBs (through the epochs), ownership,
//! grants, the domain tree, stacks and tracking are all as before ([`Supervisor::digest`] is
//! the same). Checks run in the order [`policy`] documents. The calls, by area: domains
//! ([`Supervisor::alloc_pd`], [`Supervisor::free_pd`]), regions ([`Supervisor::alloc`],
//! [`Supervisor::free`], [`Supervisor::mem_chown`], [`Supervisor::export_read_only`]),
//! grants ([`Supervisor::set_perm`]), stacks ([`Supervisor::supr_set_perm`],
//! [`Supervisor::set_stack`]), gates ([`Supervisor::set_gate`]), sealing and tracking
//! ([`Supervisor::seal`], [`Supervisor::track`], [`Supervisor::take_dirty`]), accesses with
//! the fault policy ([`Supervisor::access_ok`], [`Supervisor::load`], [`Supervisor::call`],
//! ...). The [`Mmp`] trait names them all, so generic code can drive the supervisor and its
//! model alike. [`Supervisor::check_invariants`] is the one invariant checker.
//!
//! # Policy
//! - **Ownership.** Every allocated word belongs to one region with one owner. Heap regions
//!   belong to the domain that allocated them (which gets read-write on them); stack segments
//!   and the supervisor's own region belong to PD 0.
//! - **Grants.** A word's owner may set any domain's permission on it. A non-owner may set a
//!   permission only where it holds a *transitive* grant, at most what it holds (rights only
//!   shrink along a chain), and only for a domain that holds nothing there or is below it on
//!   the word's grant chain (never itself, the owner, or a domain higher on the chain). When a
//!   holder's permission narrows, everything it granted is narrowed to fit (the lattice meet);
//!   when it is revoked or loses `transitive`, everything it granted is revoked, recursively.
//! - **Ownership passes** (`mem_chown`, or a freed domain's memory going to its parent): the
//!   new owner's own grant there is dropped (it keeps its permission as owner), grants the old
//!   owner made are re-rooted to the new owner, and the old owner loses its permission.
//! - **Freeing** memory revokes every domain's permission on it, forgets its grants, tracking,
//!   dirty marks and global export, and gives the addresses back to the buddy allocator.
//! - **Domains** form a tree. `free_pd` by an ancestor: with `recursive` the subtree goes,
//!   otherwise children move to the freed domain's parent (the heir). The heir receives the
//!   memory and stacks the freed domains owned or created; grants the freed domains made as
//!   holders are revoked, recursively.
//! - **Global read-only export** gives read-only to every domain, present and future, that
//!   holds nothing on the word (as a grant from the owner).
//! - **Seal** downgrades every domain's read-write to read-only, permanently: afterwards no
//!   `set_perm`, `supr_set_perm`, `mem_chown` or `free` touching the word succeeds.
//! - **Entry points.** PDs that PD 0 creates get transitive execute-read on every entry point,
//!   so they may pass call permission on to the domains they create; others get none. Each
//!   entry word is also a call gate into PD 0 in exactly the tables that hold execute-read
//!   there, and PD 0's table has a return gate at [`SUPERVISOR_RETURN`](policy::SUPERVISOR_RETURN).
//! - **Gates** ([`Supervisor::set_gate`]): only the owner of a heap word may place or remove
//!   a gate on it, in any domain's table, and a call gate it places must enter the owner
//!   itself (PD 0 may place any). Gates go when their word is freed or changes owner.
//! - **Stacks and frames.** `set_stack` loads the CPU's frame registers (`sl` = the stack's
//!   base, `fb`); the running thread reads and writes `[sl, fb)` through them, and each
//!   cross-domain call moves `fb` down to the caller's stack pointer, exporting the argument
//!   slots the call names (see `Machine::call_export`). A callee takes a frame for itself
//!   alone with `supr_set_perm(exclusive)`. Freeing the active stack clears the CPU's frame
//!   registers and call stack.

#![forbid(unsafe_code)]

mod access;
pub mod api;
pub mod buddy;
mod domains;
mod gates;
mod grant_map;
mod grants;
mod invariants;
pub mod planted;
pub mod policy;
mod region_map;
mod regions;
mod seal;
mod stacks;
mod supervisor;
mod tree;

pub use api::{AccessResult, CallResult, Mmp};
pub use buddy::BuddyInvariantError;
pub use invariants::PolicyInvariantError;
pub use mmp_gates::{ArgWindow, CrossingStats, FrameRegs, Gate};
pub use mmp_machine::{AccessError, Fault, FaultKind, Machine, MachineConfig, MachineError};
pub use policy::{
    FaultAction, FaultPolicy, FaultRecord, FaultReport, Grant, RegionKind, Resolution,
    SupervisorCall, SupervisorError,
};
pub use region_map::Region;
pub use supervisor::{ActiveStack, FaultHandler, Supervisor, SupervisorConfig};
