//! # mmp-split: a Linux kernel split into protection domains
//!
//! The MMP kernel paper puts the core kernel in PD 1 and every module in a domain of its own,
//! with call gates for the functions a module imports and grants for the data it uses. This
//! crate reads those facts from a real kernel's module ELF files and symbol maps and writes a
//! domain layout the supervisor can load. It is a client of `mmp-supervisor`.
//!
//! Status: being built (tracked in the project's issues); this crate currently holds only its
//! place in the workspace.
