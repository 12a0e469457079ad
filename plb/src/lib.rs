//! # mmp-plb: the protection lookaside buffer
//!
//! In MMP every load, store and fetch is checked against the running domain's permissions
//! table; the protection lookaside buffer (PLB) caches those answers per CPU, keyed by
//! (protection domain, address range), so that most checks never walk the table. An entry
//! filled from an upper-level table entry covers its whole aligned block. This crate sits on
//! `mmp-domains` (whose table lookups report how far an answer holds) and below the
//! supervisor, which invalidates entries when it narrows a permission.
//!
//! Status: the PLB model is being built (tracked in the project's issues); this crate
//! currently holds only its place in the workspace.
