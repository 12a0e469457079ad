//! The domain tree: every live domain other than PD 0, its parent and its fault policy.
//! PD 0 is the root and has no node.

use std::collections::BTreeMap;

use mmp_domains::PdId;

use crate::invariants::PolicyInvariantError;
use crate::policy::FaultPolicy;

/// A domain in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PdNode {
    /// The domain that created it (or inherited it when its creator was freed).
    pub(crate) parent: PdId,
    /// What the supervisor does when it faults.
    pub(crate) policy: FaultPolicy,
}

/// The domain tree. Keeps: every node's parent is PD 0 or a node, and following parents
/// from any node reaches PD 0 (see [`DomainTree::check_invariants`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct DomainTree {
    nodes: BTreeMap<PdId, PdNode>,
}

impl DomainTree {
    /// Whether `pd` is a node (PD 0 is not).
    pub(crate) fn contains(&self, pd: PdId) -> bool {
        self.nodes.contains_key(&pd)
    }

    /// Whether `pd` is alive: PD 0 or a node.
    pub(crate) fn exists(&self, pd: PdId) -> bool {
        pd.is_supervisor() || self.contains(pd)
    }

    /// The live domains other than PD 0, ascending.
    pub(crate) fn ids(&self) -> impl Iterator<Item = PdId> + '_ {
        self.nodes.keys().copied()
    }

    /// How many live domains there are besides PD 0.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `pd`'s parent (`None` for PD 0 or an unknown domain).
    pub(crate) fn parent(&self, pd: PdId) -> Option<PdId> {
        self.nodes.get(&pd).map(|n| n.parent)
    }

    /// `pd`'s fault policy (`None` for PD 0 or an unknown domain).
    pub(crate) fn policy(&self, pd: PdId) -> Option<FaultPolicy> {
        self.nodes.get(&pd).map(|n| n.policy)
    }

    /// Sets a node's fault policy (nothing for an unknown domain).
    pub(crate) fn set_policy(&mut self, pd: PdId, policy: FaultPolicy) {
        if let Some(n) = self.nodes.get_mut(&pd) {
            n.policy = policy;
        }
    }

    /// Adds `pd` below `parent`, with the [`FaultPolicy::Deny`] policy.
    pub(crate) fn insert(&mut self, pd: PdId, parent: PdId) {
        self.nodes.insert(
            pd,
            PdNode {
                parent,
                policy: FaultPolicy::Deny,
            },
        );
    }

    /// Removes one node without touching its children (undoing an [`DomainTree::insert`]).
    pub(crate) fn remove(&mut self, pd: PdId) {
        self.nodes.remove(&pd);
    }

    /// Whether `anc` is a proper ancestor of `pd`.
    pub(crate) fn is_ancestor(&self, anc: PdId, mut pd: PdId) -> bool {
        while let Some(n) = self.nodes.get(&pd) {
            if n.parent == anc {
                return true;
            }
            pd = n.parent;
        }
        false
    }

    /// `pd` and (with `recursive`) its descendants, ascending.
    pub(crate) fn doomed(&self, pd: PdId, recursive: bool) -> Vec<PdId> {
        let mut out = vec![pd];
        if recursive {
            out.extend(self.ids().filter(|&q| self.is_ancestor(pd, q)));
        }
        out.sort_unstable();
        out
    }

    /// Removes the `doomed` nodes (ascending) and gives their surviving children to `heir`.
    pub(crate) fn remove_reparenting(&mut self, doomed: &[PdId], heir: PdId) {
        for d in doomed {
            self.nodes.remove(d);
        }
        for n in self.nodes.values_mut() {
            if doomed.binary_search(&n.parent).is_ok() {
                n.parent = heir;
            }
        }
    }

    /// Checks that every node's parent is alive and that every node is below PD 0.
    ///
    /// # Errors
    /// [`PolicyInvariantError::DeadParent`] or [`PolicyInvariantError::NotBelowSupervisor`].
    pub(crate) fn check_invariants(&self) -> Result<(), PolicyInvariantError> {
        for (&pd, n) in &self.nodes {
            if !self.exists(n.parent) {
                return Err(PolicyInvariantError::DeadParent {
                    pd,
                    parent: n.parent,
                });
            }
            let mut p = pd;
            for _ in 0..=self.nodes.len() {
                match self.nodes.get(&p) {
                    Some(n) => p = n.parent,
                    None => break,
                }
            }
            if !p.is_supervisor() {
                return Err(PolicyInvariantError::NotBelowSupervisor { pd });
            }
        }
        Ok(())
    }
}
