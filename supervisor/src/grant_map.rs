//! The grant map: for every domain, how it holds each word it does not own (who granted it,
//! and whether it may pass it on), as runs of words.

use std::collections::BTreeMap;

use mmp_domains::PdId;
use mmp_machine::SegMap;

use crate::invariants::PolicyInvariantError;
use crate::policy::Grant;

/// Per domain, its grants by word. Keeps: no domain has an empty map, and each map's own
/// invariants hold (see [`GrantMap::check_invariants`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct GrantMap {
    by_pd: BTreeMap<PdId, SegMap<Grant>>,
}

/// The map of a domain that holds no grants.
static NONE: SegMap<Grant> = SegMap::new();

impl GrantMap {
    /// How `pd` holds word `w`, if by a grant.
    pub(crate) fn get(&self, pd: PdId, w: u64) -> Option<Grant> {
        self.by_pd.get(&pd).and_then(|g| g.get(w))
    }

    /// `pd`'s grants (an empty map if it holds none).
    pub(crate) fn of(&self, pd: PdId) -> &SegMap<Grant> {
        self.by_pd.get(&pd).unwrap_or(&NONE)
    }

    /// `(holder, its grants)` for every domain holding any, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (PdId, &SegMap<Grant>)> + '_ {
        self.by_pd.iter().map(|(&pd, m)| (pd, m))
    }

    /// Sets (`Some`) or forgets (`None`) `pd`'s grant on words `[lo, hi)`.
    pub(crate) fn set(&mut self, pd: PdId, lo: u64, hi: u64, g: Option<Grant>) {
        let map = self.by_pd.entry(pd).or_default();
        map.set(lo, hi, g);
        if map.is_empty() {
            self.by_pd.remove(&pd);
        }
    }

    /// Forgets every grant `pd` holds.
    pub(crate) fn remove_pd(&mut self, pd: PdId) {
        self.by_pd.remove(&pd);
    }

    /// The first word of `[lo, hi)` where `anc` is not a strict ancestor of `t` on the
    /// word's grant chain; with `top`, words where `t` holds no grant are fine.
    pub(crate) fn first_not_under(
        &self,
        t: PdId,
        anc: PdId,
        lo: u64,
        hi: u64,
        top: bool,
    ) -> Option<u64> {
        let map = self.of(t);
        let mut first: Option<u64> = None;
        let mut note = |w: u64| {
            if first.is_none_or(|f| w < f) {
                first = Some(w);
            }
        };
        if !top && let Some(&(g, _)) = map.gaps(lo, hi).first() {
            note(g);
        }
        for (a, b, g) in map.overlapping(lo, hi) {
            if g.grantor == anc {
                continue;
            }
            if g.grantor.is_supervisor() {
                note(a);
            } else if let Some(w) = self.first_not_under(g.grantor, anc, a, b, false) {
                note(w);
            }
        }
        first
    }

    /// Checks every holder's map and that every holder is alive, as `alive` says.
    ///
    /// # Errors
    /// The first broken invariant.
    pub(crate) fn check_invariants(
        &self,
        alive: impl Fn(PdId) -> bool,
    ) -> Result<(), PolicyInvariantError> {
        for (&pd, map) in &self.by_pd {
            map.check_invariants()?;
            if map.is_empty() {
                return Err(PolicyInvariantError::EmptyGrantMap { pd });
            }
            if !alive(pd) {
                return Err(PolicyInvariantError::GrantsOfDeadPd { pd });
            }
        }
        Ok(())
    }
}
