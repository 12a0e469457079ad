//! Typed byte and word addresses, the address-space width, and validated word ranges.
//!
//! MMP protects memory at the granularity of 32-bit words. Every range a caller passes in bytes
//! is turned into a [`WordRange`] by [`AddrWidth::word_range`], which is where all range
//! validation lives: a zero length, a range that wraps, and a range that reaches past the
//! configured address width are typed [`RangeError`]s.
//!
//! **Partial words.** A byte range covers every word it touches: `[addr, addr + len)` becomes
//! the words `[addr / 4, ceil((addr + len) / 4))`. So a 3-byte grant at `0x1001` covers the
//! whole word at `0x1000`. Permissions are per word in hardware, and this is the only rule under
//! which an access that lies inside a granted byte range is always allowed.

use std::fmt;

/// Bytes in a protected word.
pub const WORD_BYTES: u64 = 4;

/// The width of the simulated virtual address space.
///
/// 32 bits is the MMP papers' configuration; 48 bits models the x86-64 canonical user half.
/// Every table format works with either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AddrWidth {
    /// A 4 GiB address space (the MMP papers).
    #[default]
    Bits32,
    /// A 256 TiB address space (x86-64 user half).
    Bits48,
}

impl AddrWidth {
    /// Number of address bits.
    #[must_use]
    pub const fn bits(self) -> u8 {
        match self {
            AddrWidth::Bits32 => 32,
            AddrWidth::Bits48 => 48,
        }
    }

    /// Number of bits in a word index (`bits - 2`).
    #[must_use]
    pub const fn word_bits(self) -> u8 {
        self.bits() - 2
    }

    /// One past the highest byte address: `2^bits`.
    #[must_use]
    pub const fn byte_limit(self) -> u64 {
        1u64 << self.bits()
    }

    /// One past the highest word index: `2^(bits - 2)`.
    #[must_use]
    pub const fn word_limit(self) -> u64 {
        1u64 << self.word_bits()
    }

    /// Validates the byte range `[addr, addr + len)` and returns the words it touches.
    ///
    /// # Errors
    /// [`RangeError::ZeroLength`] if `len == 0`, [`RangeError::Wraps`] if `addr + len`
    /// overflows 64 bits, [`RangeError::BeyondWidth`] if the range ends past `2^bits`.
    pub fn word_range(self, addr: u64, len: u64) -> Result<WordRange, RangeError> {
        if len == 0 {
            return Err(RangeError::ZeroLength { addr });
        }
        let end = addr
            .checked_add(len)
            .ok_or(RangeError::Wraps { addr, len })?;
        if end > self.byte_limit() {
            return Err(RangeError::BeyondWidth {
                addr,
                len,
                bits: self.bits(),
            });
        }
        Ok(WordRange {
            start: WordAddr(addr / WORD_BYTES),
            end: WordAddr(end.div_ceil(WORD_BYTES)),
        })
    }

    /// Checks that a word range lies inside this address space.
    ///
    /// # Errors
    /// [`RangeError::BeyondWidth`] naming the range's bytes if it ends past `2^bits`.
    pub fn contains(self, range: WordRange) -> Result<(), RangeError> {
        if range.end.0 > self.word_limit() {
            return Err(RangeError::BeyondWidth {
                addr: range.start.byte().0,
                len: range.len_words().saturating_mul(WORD_BYTES),
                bits: self.bits(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for AddrWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-bit", self.bits())
    }
}

/// A byte address in the modelled address space. Every address a caller hands the machine,
/// the supervisor or their clients is one of these, so it cannot be mistaken for a
/// [`WordAddr`] (a word index) or a length. Adding or subtracting a `u64` moves it by that
/// many bytes, wrapping as `u64` does in release builds (use [`ByteAddr::checked_add`] where
/// the sum may overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteAddr(pub u64);

impl ByteAddr {
    /// The word that holds this byte.
    #[must_use]
    #[inline]
    pub const fn word(self) -> WordAddr {
        WordAddr(self.0 / WORD_BYTES)
    }

    /// The address `len` bytes on, or `None` if it wraps `u64`.
    #[must_use]
    #[inline]
    pub const fn checked_add(self, len: u64) -> Option<ByteAddr> {
        match self.0.checked_add(len) {
            Some(a) => Some(ByteAddr(a)),
            None => None,
        }
    }

    /// The address `len` bytes on, wrapping at 2^64.
    #[must_use]
    #[inline]
    pub const fn wrapping_add(self, len: u64) -> ByteAddr {
        ByteAddr(self.0.wrapping_add(len))
    }

    /// The address `len` bytes back, wrapping at 0.
    #[must_use]
    #[inline]
    pub const fn wrapping_sub(self, len: u64) -> ByteAddr {
        ByteAddr(self.0.wrapping_sub(len))
    }

    /// Whether the address is the first byte of a word.
    #[must_use]
    #[inline]
    pub const fn is_word_aligned(self) -> bool {
        self.0.is_multiple_of(WORD_BYTES)
    }
}

impl fmt::Display for ByteAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for ByteAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl std::ops::Add<u64> for ByteAddr {
    type Output = ByteAddr;
    #[inline]
    fn add(self, len: u64) -> ByteAddr {
        ByteAddr(self.0 + len)
    }
}

impl std::ops::AddAssign<u64> for ByteAddr {
    #[inline]
    fn add_assign(&mut self, len: u64) {
        self.0 += len;
    }
}

impl std::ops::Sub<u64> for ByteAddr {
    type Output = ByteAddr;
    #[inline]
    fn sub(self, len: u64) -> ByteAddr {
        ByteAddr(self.0 - len)
    }
}

impl std::ops::Sub for ByteAddr {
    /// The distance in bytes.
    type Output = u64;
    #[inline]
    fn sub(self, other: ByteAddr) -> u64 {
        self.0 - other.0
    }
}

/// A word index: byte address divided by four. Adding a `u64` moves it by that many words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WordAddr(pub u64);

impl WordAddr {
    /// The address of the word's first byte.
    #[must_use]
    #[inline]
    pub const fn byte(self) -> ByteAddr {
        ByteAddr(self.0 * WORD_BYTES)
    }
}

impl fmt::LowerHex for WordAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl std::ops::Add<u64> for WordAddr {
    type Output = WordAddr;
    #[inline]
    fn add(self, words: u64) -> WordAddr {
        WordAddr(self.0 + words)
    }
}

impl std::ops::Sub for WordAddr {
    /// The distance in words.
    type Output = u64;
    #[inline]
    fn sub(self, other: WordAddr) -> u64 {
        self.0 - other.0
    }
}

impl fmt::Display for WordAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "word {:#x} (byte {:#x})", self.0, self.0 * WORD_BYTES)
    }
}

/// A non-empty, half-open range of words `[start, end)`.
///
/// Constructed only through [`WordRange::new`] or [`AddrWidth::word_range`], so `start < end`
/// always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WordRange {
    start: WordAddr,
    end: WordAddr,
}

impl WordRange {
    /// The words `[start, end)`; `None` if the range would be empty.
    #[must_use]
    pub const fn new(start: u64, end: u64) -> Option<Self> {
        if start < end {
            Some(WordRange {
                start: WordAddr(start),
                end: WordAddr(end),
            })
        } else {
            None
        }
    }

    /// First word of the range.
    #[must_use]
    pub const fn start(self) -> WordAddr {
        self.start
    }

    /// One past the last word of the range.
    #[must_use]
    pub const fn end(self) -> WordAddr {
        self.end
    }

    /// Number of words (at least 1).
    #[must_use]
    pub const fn len_words(self) -> u64 {
        self.end.0 - self.start.0
    }

    /// Whether `w` lies in the range.
    #[must_use]
    pub const fn contains(self, w: WordAddr) -> bool {
        self.start.0 <= w.0 && w.0 < self.end.0
    }

    /// The overlap of two ranges, if any.
    #[must_use]
    pub fn intersect(self, other: WordRange) -> Option<WordRange> {
        WordRange::new(self.start.0.max(other.start.0), self.end.0.min(other.end.0))
    }
}

impl fmt::Display for WordRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bytes [{:#x}, {:#x})",
            self.start.0 * WORD_BYTES,
            self.end.0 * WORD_BYTES
        )
    }
}

/// A byte range a caller got wrong. Each variant names the address and length it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The length was zero.
    #[error("zero-length range at {addr:#x}")]
    ZeroLength {
        /// The start address given.
        addr: u64,
    },
    /// `addr + len` does not fit in 64 bits.
    #[error("range at {addr:#x} of {len:#x} bytes wraps around the address space")]
    Wraps {
        /// The start address given.
        addr: u64,
        /// The length given.
        len: u64,
    },
    /// The range ends past the configured address width.
    #[error("range at {addr:#x} of {len:#x} bytes reaches beyond the {bits}-bit address space")]
    BeyondWidth {
        /// The start address given.
        addr: u64,
        /// The length given.
        len: u64,
        /// The configured width.
        bits: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_words_cover_every_word_touched() {
        let r = AddrWidth::Bits32.word_range(0x1001, 3).unwrap();
        assert_eq!((r.start().0, r.end().0), (0x400, 0x401));
        let r = AddrWidth::Bits32.word_range(0x1003, 2).unwrap();
        assert_eq!((r.start().0, r.end().0), (0x400, 0x402));
        let r = AddrWidth::Bits32.word_range(0x1000, 8).unwrap();
        assert_eq!((r.start().0, r.end().0), (0x400, 0x402));
    }

    #[test]
    fn bad_ranges_are_typed_errors() {
        let w = AddrWidth::Bits32;
        assert_eq!(w.word_range(5, 0), Err(RangeError::ZeroLength { addr: 5 }));
        assert_eq!(
            w.word_range(u64::MAX - 1, 4),
            Err(RangeError::Wraps {
                addr: u64::MAX - 1,
                len: 4
            })
        );
        assert_eq!(
            w.word_range(0xffff_fffc, 8),
            Err(RangeError::BeyondWidth {
                addr: 0xffff_fffc,
                len: 8,
                bits: 32
            })
        );
        // The last word of the space is fine; 48-bit accepts what 32-bit refuses.
        assert!(w.word_range(0xffff_fffc, 4).is_ok());
        assert!(AddrWidth::Bits48.word_range(0xffff_fffc, 8).is_ok());
        assert!(AddrWidth::Bits48.word_range(1 << 48, 4).is_err());
    }
}
