//! The embedded real-kernel experiment: a trace of Debian's 6.1 kernel recorded under QEMU
//! by `scripts/kernel-trace.sh`, and the layout `mmp-split` made from the same kernel's
//! modules. `mmp-replay` with no arguments replays [`trace`] on [`layout`].
//!
//! The trace is ftrace's `function` tracer output (options `sym-offset` and irq-info, every
//! function of 19 modules: loop, crc32c_generic, ext4 with jbd2, mbcache and crc16, vfat with
//! fat, nls_cp437 and nls_ascii, e1000, bridge with stp and llc, tun, veth, nf_tables with
//! nfnetlink and libcrc32c) while the guest loads those modules and exercises them (ext4 and
//! vfat on loop devices, e1000 on QEMU's user network, a bridge over a veth pair, a tun
//! device, an nf_tables counting rule). The layout is `mmp-split --kallsyms kallsyms.txt
//! --proc-modules modules.txt --out layout.json modules/` over that run's files. Both are
//! stored xz-compressed (about 240 KiB together) in `benchmarks/data/kernel/`, with the
//! run's `/proc/modules`, the module lines of its `/proc/kallsyms` and the guest's own
//! summary.

use std::io::BufRead;

/// The recorded trace, xz-compressed ftrace text.
pub const TRACE_XZ: &[u8] = include_bytes!("../data/kernel/trace.txt.xz");
/// The layout split from the same kernel's modules, xz-compressed JSON.
pub const LAYOUT_XZ: &[u8] = include_bytes!("../data/kernel/layout.json.xz");
/// What the guest said about the run (kernel, CPUs, ring buffer, events lost).
pub const INFO: &str = include_str!("../data/kernel/info.txt");
/// The Debian package the kernel came from.
pub const PACKAGE: &str = include_str!("../data/kernel/kernel-package.txt");
/// The run's `/proc/modules`.
pub const PROC_MODULES: &str = include_str!("../data/kernel/proc-modules.txt");
/// The loaded modules' lines of the run's `/proc/kallsyms` (lines with a `[module]` field),
/// xz-compressed: where each module symbol was.
pub const KALLSYMS_MODULES_XZ: &[u8] = include_bytes!("../data/kernel/kallsyms-modules.txt.xz");

/// The loaded modules' lines of the run's `/proc/kallsyms`.
///
/// # Errors
/// The xz stream's error, if the embedded bytes are corrupt.
pub fn kallsyms_modules() -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    lzma_rust2::XzReader::new(std::io::Cursor::new(KALLSYMS_MODULES_XZ), true)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// A name for the embedded trace in reports.
#[must_use]
pub fn name() -> String {
    format!(
        "embedded real-kernel trace ({}, QEMU TCG, ftrace function tracer)",
        PACKAGE.trim()
    )
}

/// The trace's text, streamed out of its compressed bytes.
#[must_use]
pub fn trace() -> impl BufRead + Send + 'static {
    std::io::BufReader::with_capacity(
        1 << 16,
        lzma_rust2::XzReader::new(std::io::Cursor::new(TRACE_XZ), true),
    )
}

/// Why the embedded layout could not be read (a build with corrupt data files).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The xz stream is corrupt.
    #[error("the embedded layout's xz stream: {0}")]
    Xz(#[from] std::io::Error),
    /// The JSON is not a valid layout.
    #[error("the embedded layout: {0}")]
    Layout(#[from] mmp_split::LayoutError),
}

/// The layout of the same kernel's modules.
///
/// # Errors
/// [`EmbeddedError`] if the embedded bytes do not decompress to a valid layout.
pub fn layout() -> Result<mmp_split::Layout, EmbeddedError> {
    use std::io::Read;
    let mut text = String::new();
    lzma_rust2::XzReader::new(std::io::Cursor::new(LAYOUT_XZ), true).read_to_string(&mut text)?;
    Ok(mmp_split::Layout::from_json(&text)?)
}
