//! Policy bugs planted on purpose, to show that the differential fuzz target
//! (`supervisor_ops`) still finds what it should: `scripts/fuzz-planted.sh` builds the target
//! with the `planted-bugs` feature and fuzzes with each bug switched on in turn. Without the
//! feature `plant` does not exist and every planted branch is a constant `false` that
//! compiles away; nothing here is reachable in a normal build.

/// A bug the supervisor can be built to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// A holder of a transitive grant may grant permissions its own hold does not include
    /// (read-only passed on as read-write or execute-read).
    TransitiveGrantWidens,
    /// A `free` of part of a region (a length given) leaves the freed words' grants behind.
    PartialFreeLeavesGrants,
    /// `mem_chown` does not refuse sealed words.
    ChownIgnoresSeal,
    /// A `set_perm` refused (no authority, or a sealed word) still writes the target's
    /// permissions: a failed call that changes the state.
    RefusedGrantWrites,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 4] = [
        PlantedBug::TransitiveGrantWidens,
        PlantedBug::PartialFreeLeavesGrants,
        PlantedBug::ChownIgnoresSeal,
        PlantedBug::RefusedGrantWrites,
    ];

    /// The bug's name (`transitive-grant-widens`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PlantedBug::TransitiveGrantWidens => "transitive-grant-widens",
            PlantedBug::PartialFreeLeavesGrants => "partial-free-leaves-grants",
            PlantedBug::ChownIgnoresSeal => "chown-ignores-seal",
            PlantedBug::RefusedGrantWrites => "refused-grant-writes",
        }
    }

    /// The bug a name names.
    #[must_use]
    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[cfg(feature = "planted-bugs")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Switches `bug` on (`None`: every bug off) for every supervisor in the process.
#[cfg(feature = "planted-bugs")]
pub fn plant(bug: Option<PlantedBug>) {
    let v = bug.map_or(0, |b| b as u8 + 1);
    ACTIVE.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `bug` is switched on (always `false` without the `planted-bugs` feature).
#[inline(always)]
pub(crate) fn active(bug: PlantedBug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == bug as u8 + 1
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}
