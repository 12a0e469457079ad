//! `mmp-qemu-plugin`: a QEMU TCG plugin that watches a real Linux kernel run and records
//! what the MMP kernel paper's bochs prototype counted: every protection-domain change with
//! the instructions run in each domain, and the memory accesses that cross module
//! boundaries.
//!
//! It sits outside the model's layers: it links none of the workspace's crates and none link
//! it (QEMU's plugin API is GPL-2.0-or-later, and so is this crate). It writes a text
//! recording (see [`recorder`]) that `mmp-replay kernel-mmp` reads beside the split of the
//! same kernel. Domains come from the program counter: user space, the core kernel (every
//! kernel address outside the module area), and each module by the memory the kernel's
//! module loader gave it, which the plugin learns as the guest loads modules (see [`map`]).
//!
//! Load it as `qemu-system-x86_64 -plugin libmmp_qemu_plugin.so,loader=HEX,out=RECORDING`.
//! The QEMU glue is left out of the unit tests' build (it needs QEMU's symbols); the map and
//! the recorder, which hold every rule, are tested on the host.

#![forbid(unsafe_code)]

pub mod map;
pub mod recorder;

#[cfg(not(test))]
mod glue;
