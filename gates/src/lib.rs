//! # mmp-gates: call gates, return gates and the cross-domain call stack
//!
//! MMP crosses protection domains without a trap: a word marked as a call gate transfers
//! control into its destination domain and pushes (return address, caller PD, frame base) on
//! a per-CPU cross-domain call stack; a return gate pops it and checks the return address.
//! Frame-base and stack-limit registers bound the running thread's stack. This crate sits on
//! `mmp-domains`, beside the PLB, below the supervisor that places gates.
//!
//! Status: the gate model is being built (tracked in the project's issues); this crate
//! currently holds only its place in the workspace.
