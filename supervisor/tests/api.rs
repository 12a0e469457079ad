//! The supervisor's rules one at a time (the differential proptest in `policy.rs` covers their
//! combinations against the reference model).

use mmp_domains::{Access, ByteAddr, PdKind, Perm};
use mmp_supervisor::{
    FaultAction, FaultKind, FaultPolicy, MachineConfig, Resolution, Supervisor, SupervisorConfig,
    SupervisorError,
};

const A: usize = 0;
const B: usize = 1;

fn two_cpus() -> Supervisor {
    let cfg = SupervisorConfig {
        machine: MachineConfig {
            cpus: 2,
            ..MachineConfig::default()
        },
        table_memory_cap: None,
    };
    Supervisor::new(cfg).unwrap()
}

#[test]
fn handler_fixes_the_cause_and_the_access_resumes() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(B, PdKind::Kernel).unwrap();
    let m = sup.alloc_pd(B, PdKind::Kernel).unwrap();
    sup.switch(B, k).unwrap();
    let r = sup.alloc(B, 64, None, false).unwrap();
    sup.store(B, r, 4, 77).unwrap();
    sup.switch(A, m).unwrap();
    sup.set_fault_policy(A, m, FaultPolicy::Handler).unwrap();
    // The handler asks the owner (running on CPU B) to grant read-only, then retries.
    sup.set_fault_handler(
        m,
        Box::new(move |s: &mut Supervisor, f| {
            s.set_perm(B, f.addr, f.size, Perm::ReadOnly, f.pd, false)
                .map_or(Resolution::Deny, |()| Resolution::Retry)
        }),
    )
    .unwrap();
    assert_eq!(sup.load(A, r, 4), Ok(77));
    let rec = sup.faults().last().copied().unwrap();
    assert_eq!(rec.action, FaultAction::Resumed);
    assert_eq!(rec.fault.access, Access::Read);
    // A write is still refused: the handler grants read-only, the retry faults again.
    let e = sup.store(A, r, 4, 1).unwrap_err();
    assert_eq!(e.action, FaultAction::Denied);
    assert_eq!(e.fault.access, Access::Write);
    assert_eq!(sup.load(A, r, 4), Ok(77));
    sup.check_invariants().unwrap();
}

#[test]
fn kill_destroys_the_domain_and_its_cpu_returns_to_the_parent() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.switch(A, k).unwrap();
    let child = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let grandchild = sup.alloc_pd(B, PdKind::Kernel).unwrap(); // made by PD 0 on CPU B
    let r = sup.alloc(A, 4096, None, false).unwrap();
    sup.set_perm(A, r, 64, Perm::ReadWrite, child, false)
        .unwrap();
    sup.mem_chown(A, r + 64, 64, child).unwrap();
    sup.set_fault_policy(A, child, FaultPolicy::Kill).unwrap();
    sup.switch(B, child).unwrap();
    let e = sup.store(B, r + 128, 4, 1).unwrap_err();
    assert_eq!(e.action, FaultAction::Killed);
    assert!(!sup.pd_exists(child));
    assert_eq!(sup.machine().running(B), Ok(k));
    // Its memory went back to its parent; the unrelated domain is untouched.
    assert_eq!(sup.owner(r + 64), Some(k));
    assert!(sup.pd_exists(grandchild));
    // Its stale id is refused everywhere.
    assert_eq!(
        sup.set_perm(A, r, 4, Perm::ReadOnly, child, false),
        Err(SupervisorError::UnknownPd { pd: child })
    );
    sup.check_invariants().unwrap();
}

#[test]
fn report_policy_records_reads_writes_and_fetches_apart() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.set_fault_policy(A, k, FaultPolicy::Report).unwrap();
    sup.switch(A, k).unwrap();
    assert_eq!(sup.load(A, ByteAddr(0x10_0000), 4), Ok(0));
    assert_eq!(sup.store(A, ByteAddr(0x10_0000), 4, 9), Ok(()));
    assert_eq!(sup.fetch(A, ByteAddr(0x10_0000), 4), Ok(0));
    let kinds: Vec<Access> = sup.faults().iter().map(|f| f.fault.access).collect();
    assert_eq!(kinds, [Access::Read, Access::Write, Access::Execute]);
    assert!(
        sup.faults()
            .iter()
            .all(|f| f.action == FaultAction::Reported
                && matches!(
                    f.fault.kind,
                    FaultKind::NoPermission {
                        held: Perm::None,
                        ..
                    }
                ))
    );
    assert_eq!(
        sup.machine().memory().read(ByteAddr(0x10_0000), 4),
        0,
        "a blocked store wrote"
    );
}

#[test]
fn write_tracking_is_word_granular_and_take_clears() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.switch(A, k).unwrap();
    let r = sup.alloc(A, 4096, None, false).unwrap();
    sup.track(A, r, 64, true).unwrap();
    sup.store(A, r, 1, 1).unwrap();
    sup.store(A, r + 20, 4, 1).unwrap();
    sup.store(A, r + 30, 4, 1).unwrap(); // spans words 7 and 8
    sup.store(A, r + 20, 4, 2).unwrap(); // a second write to a dirty word
    sup.store(A, r + 128, 4, 1).unwrap(); // not tracked
    assert_eq!(
        sup.take_dirty(A, r, 4096).unwrap(),
        vec![r, r + 20, r + 28, r + 32]
    );
    assert_eq!(sup.take_dirty(A, r, 4096).unwrap(), Vec::<ByteAddr>::new());
    sup.store(A, r + 4, 4, 1).unwrap();
    assert_eq!(sup.take_dirty(A, r, 8).unwrap(), vec![r + 4]);
    sup.track(A, r, 64, false).unwrap();
    sup.store(A, r + 4, 4, 1).unwrap();
    assert_eq!(sup.take_dirty(A, r, 64).unwrap(), Vec::<ByteAddr>::new());
}

#[test]
fn access_ok_names_the_first_denied_word_and_what_is_held() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let u = sup.alloc_pd(A, PdKind::User).unwrap();
    sup.switch(A, k).unwrap();
    let r = sup.alloc(A, 4096, None, false).unwrap();
    sup.set_perm(A, r, 32, Perm::ReadWrite, u, false).unwrap();
    sup.set_perm(A, r + 32, 32, Perm::ReadOnly, u, false)
        .unwrap();
    assert_eq!(sup.access_ok(A, u, r, 64, Access::Read), Ok(()));
    assert_eq!(
        sup.access_ok(A, u, r + 2, 40, Access::Write),
        Err(SupervisorError::Denied {
            pd: u,
            addr: r + 2,
            len: 40,
            access: Access::Write,
            first_bad: r + 32,
            held: Perm::ReadOnly,
        })
    );
}

#[test]
fn global_export_reaches_present_and_future_domains() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let before = sup.alloc_pd(A, PdKind::User).unwrap();
    sup.switch(A, k).unwrap();
    let r = sup.alloc(A, 256, None, false).unwrap();
    sup.export_read_only(A, r, 256).unwrap();
    let after = sup.alloc_pd(B, PdKind::User).unwrap();
    let grandchild = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    for pd in [before, after, grandchild] {
        assert_eq!(sup.perm(pd, r + 100), Perm::ReadOnly, "{pd}");
    }
    assert_eq!(sup.perm(k, r + 100), Perm::ReadWrite);
    sup.check_invariants().unwrap();
}

#[test]
fn free_pd_reparents_children_or_frees_the_subtree() {
    let mut sup = two_cpus();
    let p = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.switch(A, p).unwrap();
    let c = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.switch(B, c).unwrap();
    // p passes c call permission on the supervisor (p holds it transitively from PD 0), so c
    // can create a child of its own.
    let (entry, len) = (
        mmp_supervisor::policy::ENTRY_BASE,
        mmp_supervisor::policy::ENTRY_LEN,
    );
    sup.set_perm(A, entry, len, Perm::ExecuteRead, c, true)
        .unwrap();
    let g = sup.alloc_pd(B, PdKind::Kernel).unwrap();
    assert_eq!(sup.parent(g), Some(c));
    let r = sup.alloc(B, 256, None, false).unwrap();
    assert_eq!(sup.owner(r), Some(c));
    sup.switch(B, mmp_domains::PdId::SUPERVISOR).unwrap();
    sup.free_pd(A, c, false).unwrap();
    assert_eq!(sup.owner(r), Some(p));
    assert_eq!(sup.parent(g), Some(p));
    sup.switch(A, mmp_domains::PdId::SUPERVISOR).unwrap();
    sup.free_pd(A, p, true).unwrap();
    assert!(!sup.pd_exists(p) && !sup.pd_exists(g));
    assert_eq!(sup.owner(r), Some(mmp_domains::PdId::SUPERVISOR));
    sup.check_invariants().unwrap();
}

#[test]
fn narrowing_a_holder_narrows_everything_it_granted() {
    let mut sup = two_cpus();
    let o = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let h = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let x = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let y = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.switch(A, o).unwrap();
    sup.switch(B, h).unwrap();
    let r = sup.alloc(A, 64, None, false).unwrap();
    sup.set_perm(A, r, 64, Perm::ReadWrite, h, true).unwrap();
    sup.set_perm(B, r, 64, Perm::ReadWrite, x, true).unwrap();
    sup.switch(B, x).unwrap();
    sup.set_perm(B, r, 64, Perm::ReadWrite, y, false).unwrap();
    // x cannot revoke from h, higher on the chain.
    assert!(matches!(
        sup.set_perm(B, r, 64, Perm::None, h, false),
        Err(SupervisorError::NotPermitted { .. })
    ));
    // The owner narrows h: x and y narrow with it.
    sup.set_perm(A, r, 32, Perm::ReadOnly, h, true).unwrap();
    for pd in [h, x, y] {
        assert_eq!(sup.perm(pd, r), Perm::ReadOnly, "{pd}");
        assert_eq!(sup.perm(pd, r + 32), Perm::ReadWrite, "{pd}");
    }
    // Revoking h revokes the whole chain.
    sup.set_perm(A, r, 64, Perm::None, h, false).unwrap();
    for pd in [h, x, y] {
        assert_eq!(sup.perm(pd, r + 40), Perm::None, "{pd}");
    }
    sup.check_invariants().unwrap();
}

#[test]
fn seal_downgrades_every_writer_even_with_a_warm_plb() {
    let mut sup = two_cpus();
    let k = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let u = sup.alloc_pd(A, PdKind::User).unwrap();
    sup.switch(A, k).unwrap();
    sup.switch(B, u).unwrap();
    let r = sup.alloc(A, 64, None, false).unwrap();
    sup.set_perm(A, r, 64, Perm::ReadWrite, u, false).unwrap();
    sup.store(B, r, 4, 5).unwrap(); // u's PLB now holds a writable entry
    sup.seal(A, r, 64).unwrap();
    assert!(sup.store(B, r, 4, 6).is_err());
    assert!(sup.store(A, r, 4, 6).is_err());
    assert_eq!(sup.load(B, r, 4), Ok(5));
    sup.check_invariants().unwrap();
}

#[test]
fn exclusive_stack_grant_revokes_everyone_else() {
    let mut sup = two_cpus();
    let tm = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let f = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    let g = sup.alloc_pd(A, PdKind::Kernel).unwrap();
    sup.switch(A, tm).unwrap();
    let s = sup.alloc(A, 1024, None, true).unwrap();
    assert_eq!(sup.owner(s), Some(mmp_domains::PdId::SUPERVISOR));
    sup.set_stack(A, s, A, s + 1024).unwrap();
    sup.supr_set_perm(A, s + 512, 256, Perm::ReadWrite, false, f)
        .unwrap();
    sup.supr_set_perm(A, s + 512, 64, Perm::ReadWrite, true, g)
        .unwrap();
    assert_eq!(sup.perm(f, s + 512), Perm::None);
    assert_eq!(sup.perm(f, s + 600), Perm::ReadWrite);
    assert_eq!(sup.perm(g, s + 512), Perm::ReadWrite);
    // Freeing the stack deactivates it.
    sup.free(A, s, None).unwrap();
    assert_eq!(sup.active_stack(A), None);
    sup.check_invariants().unwrap();
}

#[test]
fn regions_in_a_range_are_those_that_overlap_it_and_the_allocated_span_holds_them_all() {
    use mmp_domains::WordRange;
    let mut sup = two_cpus();
    let k = sup.alloc_pd(B, PdKind::Kernel).unwrap();
    sup.switch(B, k).unwrap();
    // Regions of several sizes, one placed far above the others, and one freed between.
    let mut starts = Vec::new();
    for len in [64, 4096, 12, 256, 8192] {
        starts.push(sup.alloc(B, len, None, false).unwrap().0 / 4);
    }
    sup.alloc(B, 4096, Some(ByteAddr(1 << 28)), false).unwrap();
    sup.free(B, ByteAddr(starts[2] * 4), None).unwrap();
    let all = sup.regions();
    let span = sup.allocated_span().unwrap();
    assert_eq!(span.start().0, all[0].start.0);
    assert_eq!(span.end().0, all.last().unwrap().end.0);
    // Every range from a word just before to a word just after each region's edges.
    let mut edges: Vec<u64> = all.iter().flat_map(|r| [r.start.0, r.end.0]).collect();
    edges.extend([0, 1, 1 << 26, span.end().0 + 5]);
    let near: Vec<u64> = edges
        .iter()
        .flat_map(|&e| [e.saturating_sub(1), e, e + 1])
        .collect();
    for &lo in &near {
        for &hi in &near {
            let Some(range) = WordRange::new(lo, hi) else {
                continue;
            };
            let expected: Vec<_> = all
                .iter()
                .filter(|r| r.start.0 < hi && lo < r.end.0)
                .copied()
                .collect();
            assert_eq!(sup.regions_in(range), expected, "words [{lo}, {hi})");
        }
    }
}
