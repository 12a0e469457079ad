//! # mmp-supervisor: the memory supervisor, PD 0
//!
//! The MMP kernel paper moves protection policy into a small memory supervisor running as
//! protection domain 0: it owns the permissions tables, allocates domains and memory, and
//! implements the `mmp_*` API (`alloc_pd`, `alloc`, `set_perm`, `mem_chown`, stacks, gates)
//! checked against ownership and grant chains. It sits on the hardware model (`mmp-domains`,
//! `mmp-plb`, `mmp-gates`); MemGuard, the Linux split tool and the benchmarks are its clients.
//!
//! Status: the supervisor is being built (tracked in the project's issues); this crate
//! currently holds only its place in the workspace.
