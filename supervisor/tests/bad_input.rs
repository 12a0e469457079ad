//! One case per bad-input class: each call is refused with the typed error that names what
//! was wrong, and the supervisor's state digest (tables, epochs, ownership, grants, domains,
//! stacks, tracking, memory) is exactly what it was before.

use mmp_domains::{ByteAddr, PdId, PdKind, Perm, RangeError};
use mmp_supervisor::{MachineConfig, Supervisor, SupervisorConfig, SupervisorError};

/// A supervisor with PD 0 on CPU 1, kernel domain `k` on CPU 0 owning a 4 KiB region `r`,
/// and a user domain `u`, both created by PD 0 (so both may call the supervisor).
struct Env {
    sup: Supervisor,
    k: PdId,
    u: PdId,
    r: ByteAddr,
}

const K: usize = 0;
const PD0: usize = 1;

fn env() -> Env {
    let cfg = SupervisorConfig {
        machine: MachineConfig {
            cpus: 2,
            ..MachineConfig::default()
        },
        table_memory_cap: None,
    };
    let mut sup = Supervisor::new(cfg).unwrap();
    let k = sup.alloc_pd(PD0, PdKind::Kernel).unwrap();
    let u = sup.alloc_pd(PD0, PdKind::User).unwrap();
    sup.switch(K, k).unwrap();
    let r = sup.alloc(K, 4096, None, false).unwrap();
    Env { sup, k, u, r }
}

/// Runs `call`, checks that it failed as `expected` says and changed nothing.
fn refused<T: std::fmt::Debug>(
    e: &mut Env,
    call: impl FnOnce(&mut Env) -> Result<T, SupervisorError>,
    expected: impl FnOnce(&SupervisorError) -> bool,
) {
    let before = e.sup.digest();
    let got = call(e);
    match &got {
        Err(err) => assert!(expected(err), "unexpected error: {err:?}"),
        Ok(v) => panic!("call succeeded with {v:?}"),
    }
    assert_eq!(e.sup.digest(), before, "a refused call changed the state");
    e.sup.check_invariants().unwrap();
}

fn zero_length() {
    let mut e = env();
    let (r, u) = (e.r, e.u);
    refused(
        &mut e,
        |e| e.sup.set_perm(K, r, 0, Perm::ReadOnly, u, false),
        |err| matches!(err, SupervisorError::Range(RangeError::ZeroLength { addr }) if *addr == r.0),
    );
    refused(
        &mut e,
        |e| e.sup.alloc(K, 0, None, false),
        |err| matches!(err, SupervisorError::Range(RangeError::ZeroLength { .. })),
    );
}

fn wrapping_range() {
    let mut e = env();
    let (r, u) = (e.r, e.u);
    refused(
        &mut e,
        |e| e.sup.set_perm(K, r, u64::MAX, Perm::ReadOnly, u, false),
        |err| {
            matches!(err, SupervisorError::Range(RangeError::Wraps { addr, len })
                if *addr == r.0 && *len == u64::MAX)
        },
    );
    refused(
        &mut e,
        |e| e.sup.free(K, ByteAddr(u64::MAX - 3), Some(8)),
        |err| matches!(err, SupervisorError::Range(RangeError::Wraps { .. })),
    );
}

fn address_beyond_the_width() {
    let mut e = env();
    let u = e.u;
    refused(
        &mut e,
        |e| {
            e.sup
                .set_perm(K, ByteAddr(0xffff_fff0), 0x100, Perm::ReadOnly, u, false)
        },
        |err| {
            matches!(err, SupervisorError::Range(RangeError::BeyondWidth { addr, len, bits: 32 })
                if *addr == 0xffff_fff0 && *len == 0x100)
        },
    );
    refused(
        &mut e,
        |e| e.sup.alloc(K, 64, Some(ByteAddr(1 << 40)), false),
        |err| matches!(err, SupervisorError::Range(RangeError::BeyondWidth { .. })),
    );
}

fn unknown_pd() {
    let mut e = env();
    let r = e.r;
    let ghost = PdId::new(77, 3, PdKind::Kernel).unwrap();
    refused(
        &mut e,
        |e| e.sup.set_perm(K, r, 4, Perm::ReadOnly, ghost, false),
        |err| matches!(err, SupervisorError::UnknownPd { pd } if *pd == ghost),
    );
    refused(
        &mut e,
        |e| e.sup.switch(K, ghost),
        |err| matches!(err, SupervisorError::UnknownPd { .. }),
    );
}

fn freed_pd_with_a_stale_generation() {
    let mut e = env();
    let r = e.r;
    let c = e.sup.alloc_pd(K, PdKind::Kernel).unwrap();
    e.sup.free_pd(K, c, false).unwrap();
    // The slot is reused by a new domain with a newer generation; the old id stays dead.
    let d = e.sup.alloc_pd(K, PdKind::Kernel).unwrap();
    assert_eq!(d.index(), c.index());
    assert_ne!(d, c);
    refused(
        &mut e,
        |e| e.sup.set_perm(K, r, 4, Perm::ReadOnly, c, false),
        |err| matches!(err, SupervisorError::UnknownPd { pd } if *pd == c),
    );
    refused(
        &mut e,
        |e| e.sup.free_pd(K, c, true),
        |err| matches!(err, SupervisorError::UnknownPd { pd } if *pd == c),
    );
}

fn not_the_owner() {
    let mut e = env();
    let (r, u, k) = (e.r, e.u, e.k);
    e.sup.switch(PD0, u).unwrap();
    refused(
        &mut e,
        |e| e.sup.free(PD0, r, None),
        |err| {
            matches!(err, SupervisorError::NotOwner { pd, addr, owner }
                if *pd == u && *addr == r && *owner == k)
        },
    );
    refused(
        &mut e,
        |e| e.sup.mem_chown(PD0, r, 64, u),
        |err| matches!(err, SupervisorError::NotOwner { .. }),
    );
    refused(
        &mut e,
        |e| e.sup.seal(PD0, r, 64),
        |err| matches!(err, SupervisorError::NotOwner { .. }),
    );
}

fn user_creating_kernel() {
    let mut e = env();
    let u = e.u;
    e.sup.switch(PD0, u).unwrap();
    refused(
        &mut e,
        |e| e.sup.alloc_pd(PD0, PdKind::Kernel),
        |err| matches!(err, SupervisorError::UserCreatingKernel { pd } if *pd == u),
    );
}

fn double_free() {
    let mut e = env();
    let r2 = e.sup.alloc(K, 256, None, false).unwrap();
    e.sup.free(K, r2, None).unwrap();
    let k = e.k;
    refused(
        &mut e,
        |e| e.sup.free(K, r2, None),
        |err| matches!(err, SupervisorError::NotAllocated { pd, addr } if *pd == k && *addr == r2),
    );
    refused(
        &mut e,
        |e| e.sup.free(K, r2, Some(16)),
        |err| matches!(err, SupervisorError::NotAllocated { .. }),
    );
}

fn placement_overlap() {
    let mut e = env();
    let r = e.r;
    refused(
        &mut e,
        |e| e.sup.alloc(K, 16, Some(r + 4), false),
        |err| {
            matches!(err, SupervisorError::Overlap { addr, len: 16, existing }
                if *addr == r + 4 && *existing == r)
        },
    );
    refused(
        &mut e,
        |e| e.sup.alloc(K, 16, Some(r + 2), false),
        |err| matches!(err, SupervisorError::Unaligned { align: 4, .. }),
    );
}

fn sealed_range() {
    let mut e = env();
    let (r, u) = (e.r, e.u);
    e.sup.seal(K, r, 64).unwrap();
    e.sup.seal(K, r, 64).unwrap(); // idempotent
    assert_eq!(e.sup.perm(e.k, r), Perm::ReadOnly);
    refused(
        &mut e,
        |e| e.sup.set_perm(K, r + 60, 8, Perm::ReadWrite, u, false),
        |err| matches!(err, SupervisorError::Sealed { addr, .. } if *addr == r + 60),
    );
    refused(
        &mut e,
        |e| e.sup.mem_chown(K, r, 4096, u),
        |err| matches!(err, SupervisorError::Sealed { addr, .. } if *addr == r),
    );
    refused(
        &mut e,
        |e| e.sup.free(K, r, None),
        |err| matches!(err, SupervisorError::Sealed { .. }),
    );
    // The seal holds against the owner's own stores.
    assert!(e.sup.store(K, r, 4, 1).is_err());
}

fn permission_not_held_for_a_transitive_grant() {
    let mut e = env();
    let (r, u, k) = (e.r, e.u, e.k);
    let v = e.sup.alloc_pd(PD0, PdKind::User).unwrap();
    e.sup.set_perm(K, r, 64, Perm::ReadOnly, u, true).unwrap();
    e.sup.switch(PD0, u).unwrap();
    refused(
        &mut e,
        |e| e.sup.set_perm(PD0, r, 64, Perm::ReadWrite, v, false),
        |err| {
            matches!(err, SupervisorError::NotPermitted { pd, target, addr, held, wanted }
                if *pd == u && *target == v && *addr == r
                    && *held == Perm::ReadOnly && *wanted == Perm::ReadWrite)
        },
    );
    // Nor may the holder revoke from the owner, higher on the chain.
    refused(
        &mut e,
        |e| e.sup.set_perm(PD0, r, 4, Perm::None, k, false),
        |err| matches!(err, SupervisorError::NotPermitted { target, .. } if *target == k),
    );
    // Within what it holds, it may.
    e.sup
        .set_perm(PD0, r, 64, Perm::ReadOnly, v, false)
        .unwrap();
}

fn supervisor_entry_not_permitted() {
    let mut e = env();
    // A domain the core kernel creates gets no call permission on the supervisor.
    let m = e.sup.alloc_pd(K, PdKind::Kernel).unwrap();
    e.sup.switch(PD0, m).unwrap();
    refused(
        &mut e,
        |e| e.sup.alloc(PD0, 64, None, false),
        |err| {
            matches!(err, SupervisorError::EntryNotPermitted { pd, call, entry }
                if *pd == m && *call == mmp_supervisor::SupervisorCall::Alloc
                    && *entry == mmp_supervisor::SupervisorCall::Alloc.entry_addr())
        },
    );
}

fn stack_call_for_an_inactive_stack() {
    let mut e = env();
    let u = e.u;
    let s1 = e.sup.alloc(K, 1024, None, true).unwrap();
    let s2 = e.sup.alloc(K, 1024, None, true).unwrap();
    refused(
        &mut e,
        |e| e.sup.supr_set_perm(K, s1, 64, Perm::ReadWrite, true, u),
        |err| matches!(err, SupervisorError::NoActiveStack { cpu: K }),
    );
    e.sup.set_stack(K, s1, K, s1 + 1024).unwrap();
    refused(
        &mut e,
        |e| e.sup.supr_set_perm(K, s2, 64, Perm::ReadWrite, true, u),
        |err| matches!(err, SupervisorError::StackNotActive { cpu: K, addr } if *addr == s2),
    );
    e.sup
        .supr_set_perm(K, s1, 64, Perm::ReadWrite, true, u)
        .unwrap();
}

fn stack_call_above_the_frame_base() {
    let mut e = env();
    let u = e.u;
    let s = e.sup.alloc(K, 1024, None, true).unwrap();
    e.sup.set_stack(K, s, K, s + 512).unwrap();
    refused(
        &mut e,
        |e| {
            e.sup
                .supr_set_perm(K, s + 512, 64, Perm::ReadWrite, true, u)
        },
        |err| {
            matches!(err, SupervisorError::AboveFrameBase { cpu: K, addr, fb }
                if *addr == s + 512 && *fb == s + 512)
        },
    );
    refused(
        &mut e,
        |e| {
            e.sup
                .supr_set_perm(K, s + 480, 64, Perm::ReadOnly, false, u)
        },
        |err| matches!(err, SupervisorError::AboveFrameBase { addr, .. } if *addr == s + 512),
    );
    e.sup
        .supr_set_perm(K, s + 448, 64, Perm::ReadWrite, true, u)
        .unwrap();
}

fn table_memory_cap_reached() {
    let mut e = env();
    let (r, u) = (e.r, e.u);
    let used = e.sup.machine().table_bytes();
    e.sup.set_table_memory_cap(Some(used + 64));
    // Fine-grained grants (every other word) need leaves; sooner or later one does not fit.
    let mut hit = false;
    for i in 0..512 {
        let before = e.sup.digest();
        match e.sup.set_perm(K, r + 8 * i, 4, Perm::ReadOnly, u, false) {
            Ok(()) => {}
            Err(SupervisorError::OutOfTableMemory { pd, cap, .. }) => {
                assert_eq!(pd, u);
                assert_eq!(cap, used + 64);
                assert_eq!(e.sup.digest(), before, "a refused call changed the state");
                e.sup.check_invariants().unwrap();
                hit = true;
                break;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert!(hit, "the cap was never reached");
}

fn pd_count_cap_reached() {
    let cfg = SupervisorConfig {
        machine: MachineConfig {
            max_pds: 3,
            ..MachineConfig::default()
        },
        table_memory_cap: None,
    };
    let mut sup = Supervisor::new(cfg).unwrap();
    sup.alloc_pd(0, PdKind::Kernel).unwrap();
    sup.alloc_pd(0, PdKind::Kernel).unwrap();
    let before = sup.digest();
    assert_eq!(
        sup.alloc_pd(0, PdKind::Kernel),
        Err(SupervisorError::TooManyPds { max: 3 })
    );
    assert_eq!(sup.digest(), before);
}

/// The table: one case per bad-input class. Each case builds its own supervisor, makes the
/// bad call(s), and checks the typed error and the unchanged digest.
#[test]
fn every_bad_input_class_is_refused_and_changes_nothing() {
    let cases: [(&str, fn()); 16] = [
        ("zero length", zero_length),
        ("wrapping range", wrapping_range),
        ("address beyond the width", address_beyond_the_width),
        ("unknown pd", unknown_pd),
        (
            "freed pd with a stale generation",
            freed_pd_with_a_stale_generation,
        ),
        ("not the owner", not_the_owner),
        ("user creating kernel", user_creating_kernel),
        ("double free", double_free),
        ("placement overlap", placement_overlap),
        ("sealed range", sealed_range),
        (
            "permission not held for a transitive grant",
            permission_not_held_for_a_transitive_grant,
        ),
        (
            "supervisor entry not permitted",
            supervisor_entry_not_permitted,
        ),
        (
            "stack call for an inactive stack",
            stack_call_for_an_inactive_stack,
        ),
        (
            "stack call above the frame base",
            stack_call_above_the_frame_base,
        ),
        ("table memory cap reached", table_memory_cap_reached),
        ("pd count cap reached", pd_count_cap_reached),
    ];
    for (name, case) in cases {
        if let Err(panic) = std::panic::catch_unwind(case) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            panic!("bad-input case {name:?} failed: {msg}");
        }
    }
}
