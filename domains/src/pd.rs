//! Protection-domain identifiers.

use std::fmt;

/// Whether a protection domain runs user or kernel code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PdKind {
    /// Kernel domain (the high bit of the id is 0, as in the paper).
    Kernel,
    /// User domain (the high bit of the id is 1).
    User,
}

/// A protection-domain id: a slot index, a generation, and the user/kernel bit.
///
/// Layout of the 32 bits: bit 31 is the user bit (0 = kernel, as in the MMP paper), bits 16..31
/// the generation (15 bits), bits 0..16 the slot index. A slot's generation advances every
/// time the slot is reused, so a stale id never names a new domain. PD 0 (index 0, generation
/// 0, kernel) is the memory supervisor, whose accesses are not checked.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PdId(u32);

impl PdId {
    /// The memory supervisor, PD 0.
    pub const SUPERVISOR: PdId = PdId(0);
    /// Largest slot index plus one.
    pub const MAX_SLOTS: u32 = 1 << 16;
    /// Largest generation plus one.
    pub const MAX_GENERATIONS: u32 = 1 << 15;

    /// Builds an id; `None` if `index` or `generation` is out of range.
    #[must_use]
    pub const fn new(index: u32, generation: u32, kind: PdKind) -> Option<PdId> {
        if index >= Self::MAX_SLOTS || generation >= Self::MAX_GENERATIONS {
            return None;
        }
        let user = match kind {
            PdKind::Kernel => 0,
            PdKind::User => 1 << 31,
        };
        Some(PdId(user | (generation << 16) | index))
    }

    /// The id from its 32-bit encoding.
    #[must_use]
    pub const fn from_raw(raw: u32) -> PdId {
        PdId(raw)
    }

    /// The 32-bit encoding.
    #[must_use]
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The slot index.
    #[must_use]
    pub const fn index(self) -> u32 {
        self.0 & 0xffff
    }

    /// The slot's generation when this id was issued.
    #[must_use]
    pub const fn generation(self) -> u32 {
        (self.0 >> 16) & 0x7fff
    }

    /// User or kernel.
    #[must_use]
    pub const fn kind(self) -> PdKind {
        if self.0 >> 31 == 1 {
            PdKind::User
        } else {
            PdKind::Kernel
        }
    }

    /// Whether this is PD 0, the supervisor.
    #[must_use]
    pub const fn is_supervisor(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for PdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PdId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind() {
            PdKind::Kernel => "k",
            PdKind::User => "u",
        };
        write!(f, "PD{}{k}.g{}", self.index(), self.generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let p = PdId::new(7, 3, PdKind::User).unwrap();
        assert_eq!((p.index(), p.generation(), p.kind()), (7, 3, PdKind::User));
        assert_eq!(PdId::from_raw(p.raw()), p);
        assert!(PdId::new(1 << 16, 0, PdKind::Kernel).is_none());
        assert!(PdId::new(0, 1 << 15, PdKind::Kernel).is_none());
        assert!(PdId::SUPERVISOR.is_supervisor());
        assert_eq!(PdId::SUPERVISOR.kind(), PdKind::Kernel);
        assert_ne!(
            PdId::new(1, 0, PdKind::Kernel),
            PdId::new(1, 1, PdKind::Kernel)
        );
    }
}
