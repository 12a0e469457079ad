//! The memory protection level: MemGuard's architecture-dependent part, as one trait.
//!
//! The portable level ([`crate::MemGuard`]) keeps the quasi-invariant terms and decides which
//! granules must be write-protected; an implementation of [`MemoryProtection`] protects them
//! and runs the debugged code's writes, taking (and for page backends, emulating) the faults
//! they raise. Addresses are byte offsets into the backend's arena, `[0, arena_len)`.

use mmp_domains::PdId;

/// A write by the debugged code that hit a write-protected granule. The write still
/// completed (MemGuard reports, it does not block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFault {
    /// Arena offset of the first byte of the write.
    pub addr: u64,
    /// Bytes written.
    pub len: u64,
    /// The program counter the caller gave for the write.
    pub pc: u64,
    /// The domain that wrote.
    pub pd: PdId,
}

/// What a backend counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Protection faults taken.
    pub faults: u64,
    /// Single-steps made to finish a faulting write (page backends).
    pub single_steps: u64,
}

/// A caller error or a backend failure; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemGuardError {
    /// The range is empty, wraps, or leaves the arena.
    #[error("[{addr:#x}, +{len:#x}) is not inside the guarded arena of {arena:#x} bytes")]
    OutOfArena {
        /// First byte.
        addr: u64,
        /// Length.
        len: u64,
        /// The arena's size.
        arena: u64,
    },
    /// A write of more than 8 bytes (one instruction writes at most 8).
    #[error("a write of {len} bytes at {addr:#x}: one instruction writes 1 to 8 bytes")]
    BadWriteSize {
        /// First byte.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// No such term (never protected, or released).
    #[error("no quasi-invariant term {term}")]
    NoSuchTerm {
        /// The term's id.
        term: u64,
    },
    /// The approved write does not fit its term.
    #[error("an approved write of {len} bytes at {addr:#x} leaves term {term}")]
    OutsideTerm {
        /// The term.
        term: u64,
        /// First byte.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// The backend failed (a system call, the supervisor).
    #[error("{backend} backend: {what}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What failed.
        what: String,
    },
}

/// MemGuard's memory protection level. Granules are the unit of protection: 4-byte words on
/// MMP, 4 KiB pages on the page backends.
pub trait MemoryProtection {
    /// A short name (`mmp`, `page_model`, `page_real`).
    fn name(&self) -> &'static str;
    /// Bytes in the arena.
    fn arena_len(&self) -> u64;
    /// Bytes per granule (a power of two).
    fn granule(&self) -> u64;
    /// Write-protects granules `[first, end)` for the debugged code, saving their original
    /// protection. Protecting a protected granule changes nothing.
    ///
    /// # Errors
    /// [`MemGuardError::Backend`] if the protection could not be set (nothing changed).
    fn protect(&mut self, first: u64, end: u64) -> Result<(), MemGuardError>;
    /// Restores granules `[first, end)` to their original protection.
    ///
    /// # Errors
    /// [`MemGuardError::Backend`].
    fn restore(&mut self, first: u64, end: u64) -> Result<(), MemGuardError>;
    /// The debugged code's write of `bytes` (1 to 8) at `addr`, one instruction at `pc`,
    /// as the hardware runs it: a write to a protected granule faults, the fault is appended
    /// to `faults`, and the write then completes (page backends restore the page,
    /// single-step the write and re-protect it).
    ///
    /// # Errors
    /// [`MemGuardError::OutOfArena`], [`MemGuardError::BadWriteSize`],
    /// [`MemGuardError::Backend`]; nothing was written.
    fn write(
        &mut self,
        pc: u64,
        addr: u64,
        bytes: &[u8],
        faults: &mut Vec<WriteFault>,
    ) -> Result<(), MemGuardError>;
    /// An approved write: completes without a fault being reported (the protection is lifted
    /// around it as needed and is as before afterwards).
    ///
    /// # Errors
    /// As [`MemoryProtection::write`], with any length.
    fn write_approved(&mut self, addr: u64, bytes: &[u8]) -> Result<(), MemGuardError>;
    /// Reads `out.len()` bytes at `addr` (never faults).
    ///
    /// # Errors
    /// [`MemGuardError::OutOfArena`].
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemGuardError>;
    /// Counters so far.
    fn stats(&self) -> BackendStats;
}

/// Checks that `[addr, addr + len)` is a non-empty range inside an arena of `arena` bytes.
///
/// # Errors
/// [`MemGuardError::OutOfArena`].
pub fn check_range(addr: u64, len: u64, arena: u64) -> Result<(), MemGuardError> {
    match addr.checked_add(len) {
        Some(end) if len > 0 && end <= arena => Ok(()),
        _ => Err(MemGuardError::OutOfArena { addr, len, arena }),
    }
}

/// Checks a write by the debugged code: [`check_range`], then at most 8 bytes.
///
/// # Errors
/// [`MemGuardError::OutOfArena`], [`MemGuardError::BadWriteSize`].
pub fn check_write(addr: u64, len: u64, arena: u64) -> Result<(), MemGuardError> {
    check_range(addr, len, arena)?;
    if len > 8 {
        return Err(MemGuardError::BadWriteSize { addr, len });
    }
    Ok(())
}
