//! Loading a layout through the memory supervisor, by the `mmp_*` calls the MMP kernel paper
//! describes, so that its policy checks the split.
//!
//! [`Layout::load_supervised`] computes the same addresses as [`Layout::load`] (its
//! [address rules](crate::load#address-rules)) and then, on `cpu`:
//! 1. PD 0 creates PD 1, the core kernel (`mmp_alloc_PD`), and the core kernel runs;
//! 2. the core kernel creates one domain per module, in PD order (so layout PD `p` is the
//!    supervisor's domain of index `p` on a fresh supervisor), and passes each the
//!    supervisor's entry points (execute-read, not transitive), which PD 0 gave it;
//! 3. the core kernel allocates, at their addresses (`mmp_alloc` with a placement), every
//!    word the layout gives an owner: the functions gates and entry points name, the data
//!    objects grants name, and each module's own memory, merged per owner;
//! 4. it gives each module its own: permission on the module's functions (execute-read) and
//!    memory (by class), then passes the module its words (`mmp_mem_chown`), so the module
//!    holds them as owner; the core kernel takes execute-read on its own functions;
//! 5. each owner, running in turn, places the call gates into itself (`set_gate`: for its
//!    importers, and for entry points in every other domain) and grants its data objects
//!    to their holders (`mmp_set_perm`).
//!
//! The policy refuses what the split cannot do: two owners claiming one word (an `Overlap`),
//! a gate placed by a domain that does not own the word, memory on the supervisor's own
//! region. The error names the layout entry. The load is all or nothing: it runs first on a
//! copy of the supervisor ([`Supervisor::snapshot`]) and only then on the supervisor itself;
//! a supervisor with a fault handler installed cannot be copied, and the load is refused with
//! [`SupervisedError::CannotCopy`] (install handlers afterwards).

use std::collections::HashMap;

use mmp_domains::{AddrWidth, ByteAddr, PdId, PdKind, Perm};
use mmp_machine::Gate;
use mmp_supervisor::policy::{ENTRY_BASE, ENTRY_LEN};
use mmp_supervisor::{Supervisor, SupervisorError};

use crate::layout::{EntryKind, Layout};
use crate::load::{FUNCTION_BYTES, LoadError};

/// Why a layout could not be loaded through the supervisor. The supervisor is as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisedError {
    /// The layout does not load by the address rules.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The supervisor's machine is not 48 bits wide.
    #[error("the supervisor's machine is {bits}-bit; a kernel layout needs 48 bits")]
    NotBits48 {
        /// Its address bits.
        bits: u8,
    },
    /// The supervisor has a fault handler installed, so it cannot be copied for the dry run.
    #[error("the supervisor has a fault handler installed; load the layout before installing one")]
    CannotCopy,
    /// A call the policy refused, with the layout entry it was made for.
    #[error("{step}: {source}")]
    Refused {
        /// What the call was for: `gate 12 (printk)`, `memory of ext4 at 0x…`, ...
        step: String,
        /// The supervisor's error.
        source: SupervisorError,
    },
}

/// What [`Layout::load_supervised`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisedLoad {
    /// Each layout domain's supervisor domain, by name.
    pub pds: HashMap<String, PdId>,
    /// Supervisor calls made.
    pub calls: u64,
    /// Regions allocated (word ranges merged per owner).
    pub regions: usize,
}

/// One owner's words: `[lo, hi)` and what asked for them (for errors).
#[derive(Debug, Clone)]
struct Claim {
    owner: usize,
    lo: u64,
    hi: u64,
    what: String,
}

impl Layout {
    /// Loads the layout through `sup`'s `mmp_*` calls, on `cpu`, as the [module
    /// docs](self) describe; the CPU runs what it ran before afterwards.
    ///
    /// # Errors
    /// [`SupervisedError::Load`] for a layout [`Layout::load`] would refuse;
    /// [`SupervisedError::NotBits48`]; [`SupervisedError::CannotCopy`];
    /// [`SupervisedError::Refused`] naming the entry whose call the policy refused. The
    /// supervisor is unchanged after any of them.
    pub fn load_supervised(
        &self,
        sup: &mut Supervisor,
        cpu: usize,
    ) -> Result<SupervisedLoad, SupervisedError> {
        self.validate().map_err(LoadError::from)?;
        let width = sup.machine().config().width;
        if width != AddrWidth::Bits48 {
            return Err(SupervisedError::NotBits48 { bits: width.bits() });
        }
        let mut dry = sup.snapshot().ok_or(SupervisedError::CannotCopy)?;
        self.run_supervised(&mut dry, cpu)?;
        self.run_supervised(sup, cpu)
    }

    #[allow(clippy::too_many_lines)]
    fn run_supervised(
        &self,
        sup: &mut Supervisor,
        cpu: usize,
    ) -> Result<SupervisedLoad, SupervisedError> {
        let plan = self.plan()?;
        let calls = std::cell::Cell::new(0u64);
        let call = |step: &dyn Fn() -> String, r: Result<(), SupervisorError>| {
            calls.set(calls.get() + 1);
            r.map_err(|source| SupervisedError::Refused {
                step: step(),
                source,
            })
        };
        let before = sup
            .machine()
            .running(cpu)
            .map_err(|e| SupervisedError::Refused {
                step: format!("CPU {cpu}"),
                source: SupervisorError::Machine(e),
            })?;
        let n = self.domains.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| self.domains[i].pd);
        let mut pds: Vec<PdId> = vec![PdId::SUPERVISOR; n];
        // 1, 2: PD 0 creates the core kernel, which creates the modules.
        call(&|| "running PD 0".into(), sup.switch(cpu, PdId::SUPERVISOR))?;
        let mut core = None;
        for &i in &order {
            let d = &self.domains[i];
            let pd = sup.alloc_pd(cpu, PdKind::Kernel);
            calls.set(calls.get() + 1);
            let pd = pd.map_err(|source| SupervisedError::Refused {
                step: format!("domain {i} ({})", d.name),
                source,
            })?;
            pds[i] = pd;
            if core.is_none() {
                // The first domain (PD 1) is the core kernel: it runs and creates the rest.
                core = Some(i);
                call(&|| format!("running {}", d.name), sup.switch(cpu, pd))?;
            } else {
                // The core kernel passes each module the supervisor's entry points (it got
                // them, transitively, from PD 0), so the module may place its gates and
                // grant its data.
                let r = sup.set_perm(cpu, ENTRY_BASE, ENTRY_LEN, Perm::ExecuteRead, pd, false);
                call(
                    &|| format!("domain {i} ({}): the supervisor's entry points", d.name),
                    r,
                )?;
            }
        }
        let Some(core) = core else {
            call(
                &|| "running the CPU's domain".into(),
                sup.switch(cpu, before),
            )?;
            return Ok(SupervisedLoad {
                pds: HashMap::new(),
                calls: calls.get(),
                regions: 0,
            });
        };
        // 3: every owner's words, merged.
        let mut claims: Vec<Claim> = Vec::new();
        let words = |a: u64, len: u64| (a & !3, (a + len.max(1)).next_multiple_of(4));
        for &((owner, symbol), s) in &plan.functions {
            if let Some(a) = s.addr {
                let (lo, hi) = words(a, FUNCTION_BYTES);
                claims.push(Claim {
                    owner: s.owner,
                    lo,
                    hi,
                    what: format!("function {symbol} of {owner}"),
                });
            }
        }
        for &((owner, symbol), s) in &plan.data {
            if let Some(a) = s.addr
                && s.bytes > 0
            {
                let (lo, hi) = words(a, s.bytes);
                claims.push(Claim {
                    owner: s.owner,
                    lo,
                    hi,
                    what: format!("data object {symbol} of {owner}"),
                });
            }
        }
        for &(index, owner, addr, bytes, _) in &plan.memory {
            let (lo, hi) = words(addr, bytes);
            claims.push(Claim {
                owner,
                lo,
                hi,
                what: format!(
                    "{} {index} (memory of {})",
                    EntryKind::Memory,
                    self.domains[owner].name
                ),
            });
        }
        claims.sort_by_key(|c| (c.lo, c.owner));
        // Adjacent or overlapping claims of one owner merge; two owners' claims on one word
        // stay apart, and the second allocation is the policy's `Overlap`.
        let mut regions: Vec<Claim> = Vec::new();
        for c in claims {
            match regions.last_mut() {
                Some(r) if c.lo <= r.hi && c.owner == r.owner => r.hi = r.hi.max(c.hi),
                _ => regions.push(c),
            }
        }
        for (i, r) in regions.iter().enumerate() {
            let len = r.hi - r.lo;
            let a = sup.alloc(cpu, len, Some(ByteAddr(r.lo)), false).map(|_| ());
            // On an overlap, name the claim already holding the word too.
            let other = match &a {
                Err(SupervisorError::Overlap { existing, .. }) => regions[..i]
                    .iter()
                    .rev()
                    .find(|o| o.lo <= existing.0 && existing.0 < o.hi)
                    .map(|o| format!(" (already {})", o.what)),
                _ => None,
            };
            call(
                &|| {
                    format!(
                        "{} at {:#x}{}",
                        r.what,
                        r.lo,
                        other.as_deref().unwrap_or("")
                    )
                },
                a,
            )?;
        }
        // 4: the modules' own words: their permissions, then ownership.
        let mut perms: Vec<(usize, u64, u64, Perm, String)> = Vec::new();
        for &((owner, symbol), s) in &plan.functions {
            if let Some(a) = s.addr {
                let (lo, hi) = words(a, FUNCTION_BYTES);
                perms.push((
                    s.owner,
                    lo,
                    hi - lo,
                    Perm::ExecuteRead,
                    format!("function {symbol} of {owner}"),
                ));
            }
        }
        for &(index, owner, addr, bytes, perm) in &plan.memory {
            perms.push((
                owner,
                addr,
                bytes,
                perm,
                format!("memory {index} of {}", self.domains[owner].name),
            ));
        }
        for (owner, addr, len, perm, what) in &perms {
            let r = sup.set_perm(cpu, ByteAddr(*addr), *len, *perm, pds[*owner], false);
            call(&|| what.clone(), r)?;
        }
        for r in regions.iter().filter(|r| r.owner != core) {
            let c = sup.mem_chown(cpu, ByteAddr(r.lo), r.hi - r.lo, pds[r.owner]);
            call(
                &|| {
                    format!(
                        "passing {} at {:#x} to {}",
                        r.what, r.lo, self.domains[r.owner].name
                    )
                },
                c,
            )?;
        }
        // 5: each owner places the gates into itself and grants its data.
        for &owner in &order {
            let me = pds[owner];
            call(
                &|| format!("running {}", self.domains[owner].name),
                sup.switch(cpu, me),
            )?;
            let gate = Some(Gate::Call { dest: me });
            for &(index, from, addr, _) in plan.gates.iter().filter(|g| g.3 == owner) {
                // A gate lies on the word holding the entry (`_printk` is not word aligned).
                let r = sup.set_gate(cpu, pds[from], ByteAddr(addr & !3), gate);
                call(
                    &|| format!("gate {index} ({})", self.gates[index].symbol),
                    r,
                )?;
            }
            for &(index, addr, _) in plan.entries.iter().filter(|e| e.2 == owner) {
                for d in (0..n).filter(|&d| d != owner) {
                    let r = sup.set_gate(cpu, pds[d], ByteAddr(addr & !3), gate);
                    call(
                        &|| format!("entry {index} ({})", self.entries[index].symbol),
                        r,
                    )?;
                }
            }
            for &(index, holder, _, addr, bytes, perm) in
                plan.grants.iter().filter(|g| g.2 == owner)
            {
                let r = sup.set_perm(cpu, ByteAddr(addr), bytes, perm, pds[holder], false);
                call(
                    &|| format!("grant {index} ({})", self.grants[index].symbol),
                    r,
                )?;
            }
        }
        call(
            &|| "running the CPU's domain".into(),
            sup.switch(cpu, before),
        )?;
        Ok(SupervisedLoad {
            pds: self
                .domains
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.clone(), pds[i]))
                .collect(),
            calls: calls.get(),
            regions: regions.len(),
        })
    }
}
