//! # mmp-domains: the bottom of the MMP hardware model
//!
//! Mondriaan Memory Protection gives every protection domain (PD) its own permissions table:
//! two bits for every 32-bit word of a shared address space. This crate is the
//! hardware-defined part of that picture, with no I/O and no policy: typed addresses
//! ([`addr`]), the four permission values ([`Perm`]), protection-domain ids ([`PdId`]), and the
//! permissions table itself ([`table`]) in three interchangeable formats (flat bitmap, MMP's
//! multi-level table, sorted segments). The PLB and gates crates sit on it, `mmp-machine`
//! joins them into the hardware, and the memory supervisor above that decides who may change
//! a table.
//!
//! [`oracle`] holds the reference table and the differential checker that every other
//! crate's tests use.

#![forbid(unsafe_code)]

pub mod addr;
pub mod oracle;
pub mod pd;
pub mod perm;
pub mod table;

pub use addr::{AddrWidth, ByteAddr, RangeError, WORD_BYTES, WordAddr, WordRange};
pub use pd::{PdId, PdKind};
pub use perm::{Access, Perm};
pub use table::{
    AccessError, Cover, Flat, InvariantError, Lookup, Mlpt, PermTable, Sst, Table, TableError,
    TableFormat,
};
