//! The 2-bit per-word permission values and the three kinds of access they govern.

use std::fmt;

/// A word's permission: two bits in every table format.
///
/// The encoding is the table's: `None = 0`, `ReadOnly = 1`, `ReadWrite = 2`,
/// `ExecuteRead = 3`. A load needs [`Access::Read`] (allowed by `ReadOnly`, `ReadWrite` and
/// `ExecuteRead`), a store [`Access::Write`] (only `ReadWrite`), an instruction fetch
/// [`Access::Execute`] (only `ExecuteRead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum Perm {
    /// No access.
    #[default]
    None = 0,
    /// Loads only.
    ReadOnly = 1,
    /// Loads and stores.
    ReadWrite = 2,
    /// Loads and instruction fetches.
    ExecuteRead = 3,
}

impl Perm {
    /// All four values, in encoding order.
    pub const ALL: [Perm; 4] = [
        Perm::None,
        Perm::ReadOnly,
        Perm::ReadWrite,
        Perm::ExecuteRead,
    ];

    /// The value for the low two bits of `bits` (higher bits are ignored).
    #[inline]
    #[must_use]
    pub const fn from_bits(bits: u64) -> Perm {
        match bits & 3 {
            0 => Perm::None,
            1 => Perm::ReadOnly,
            2 => Perm::ReadWrite,
            _ => Perm::ExecuteRead,
        }
    }

    /// The 2-bit encoding.
    #[inline]
    #[must_use]
    pub const fn bits(self) -> u64 {
        self as u64
    }

    /// Whether this permission allows `access`.
    #[inline]
    #[must_use]
    pub const fn allows(self, access: Access) -> bool {
        // Bit i of the mask for an access is set when the permission with encoding i allows it.
        let mask: u8 = match access {
            Access::Read => 0b1110,
            Access::Write => 0b0100,
            Access::Execute => 0b1000,
        };
        mask & (1 << self as u8) != 0
    }

    /// Whether every access `other` allows is also allowed by `self` (`other <= self` in the
    /// rights lattice `None < ReadOnly < {ReadWrite, ExecuteRead}`).
    #[must_use]
    pub const fn includes(self, other: Perm) -> bool {
        matches!(
            (self, other),
            (_, Perm::None)
                | (
                    Perm::ReadOnly | Perm::ReadWrite | Perm::ExecuteRead,
                    Perm::ReadOnly
                )
                | (Perm::ReadWrite, Perm::ReadWrite)
                | (Perm::ExecuteRead, Perm::ExecuteRead)
        )
    }

    /// The greatest permission both `self` and `other` include (the lattice meet): what is
    /// left when a grant of `other` passes through a holder of `self`.
    #[must_use]
    pub const fn meet(self, other: Perm) -> Perm {
        if self.includes(other) {
            other
        } else if other.includes(self) {
            self
        } else {
            // ReadWrite and ExecuteRead share only reading.
            Perm::ReadOnly
        }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Perm::None => "none",
            Perm::ReadOnly => "read-only",
            Perm::ReadWrite => "read-write",
            Perm::ExecuteRead => "execute-read",
        })
    }
}

/// The kind of a memory access, so faults can tell reads, writes and fetches apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Execute,
}

impl Access {
    /// Its name: `read`, `write` or `execute`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_matches_the_paper() {
        use Access::*;
        let table = [
            (Perm::None, [false, false, false]),
            (Perm::ReadOnly, [true, false, false]),
            (Perm::ReadWrite, [true, true, false]),
            (Perm::ExecuteRead, [true, false, true]),
        ];
        for (p, [r, w, x]) in table {
            assert_eq!(
                (p.allows(Read), p.allows(Write), p.allows(Execute)),
                (r, w, x),
                "{p}"
            );
            assert_eq!(Perm::from_bits(p.bits()), p);
        }
    }

    #[test]
    fn meet_is_the_lattice_meet() {
        for a in Perm::ALL {
            for b in Perm::ALL {
                let m = a.meet(b);
                assert_eq!(m, b.meet(a));
                assert!(a.includes(m) && b.includes(m));
                // m is the greatest such: any c below both is below m.
                for c in Perm::ALL {
                    if a.includes(c) && b.includes(c) {
                        assert!(m.includes(c), "{a} {b} {c}");
                    }
                }
                // includes agrees with access sets.
                let sub = [Access::Read, Access::Write, Access::Execute]
                    .iter()
                    .all(|&x| !b.allows(x) || a.allows(x));
                assert_eq!(a.includes(b), sub, "{a} includes {b}");
            }
        }
    }
}
