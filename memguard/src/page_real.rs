//! MemGuard's page-granular algorithm on real memory (Linux x86-64 only).
//!
//! [`PageReal`] is the baseline the word-granular MMP level is measured against, run on the
//! host's MMU instead of the simulated machine:
//!
//! - **Protect** a page: `mprotect(PROT_READ)` (its original protection, read-write, is the
//!   one every arena page has, so restoring needs no saved value).
//! - **Restore** a page: `mprotect(PROT_READ | PROT_WRITE)`.
//! - A write by the debugged code to a protected page raises a real `SIGSEGV`. The handler
//!   records the fault (address, and the real `RIP` from the signal context), makes the page
//!   read-write again, sets the x86 trap flag (`EFLAGS.TF`, bit `0x100`) in the saved context
//!   and returns: the faulting store re-executes, completes, and the CPU raises a debug trap,
//!   delivered as `SIGTRAP`. The `SIGTRAP` handler makes the page read-only again, clears
//!   the trap flag and counts a single-step.
//! - One store can touch two pages (an unaligned 8-byte store across a page boundary): it
//!   faults once per protected page it touches, so up to two pages wait for the `SIGTRAP`
//!   to be protected again. Such a write reports two faults and one single-step.
//!
//! **Cost.** Every spurious fault (a write to an unprotected word of a protected page, which
//! the word-granular MMP level never takes) costs two signal deliveries (`SIGSEGV`, `SIGTRAP`),
//! each with its `sigreturn`, and two `mprotect` calls (each with its TLB shootdown). The
//! module's ignored test `spurious_fault_cost` measures it.
//!
//! **Constraints.** Signal dispositions are per process, so only one [`PageReal`] is alive at a
//! time: [`PageReal::new`] waits until the previous one is dropped. The handlers keep their
//! state in `static` atomics (they must not allocate or lock). A `SIGSEGV` outside the arena,
//! or a `SIGTRAP` that is not the single-step of a faulting write, is never swallowed: the
//! handler resets the signal to its default action and re-raises it, so the process dies as
//! it would have without MemGuard (this replaces, for that death, the standard library's
//! stack-overflow message).
//!
//! **Writes of 3, 5, 6 or 7 bytes.** x86-64 has no single store of those widths, so they run
//! as two overlapping stores of the next smaller power of two (a 7-byte write is a 4-byte
//! store at `addr` and one at `addr + 3`, both inside the write). Each store to a protected
//! page faults on its own, so such a write reports two faults per protected page. Writes of
//! 1, 2, 4 and 8 bytes are exactly one `mov` (inline assembly, since stable Rust has no
//! unaligned volatile store), as the debugged code's instruction would be.

use std::ffi::{c_int, c_void};
use std::fmt;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, compiler_fence};

use mmp_domains::PdId;

use crate::protection::{
    BackendStats, MemGuardError, MemoryProtection, WriteFault, check_range, check_write,
};

/// Bytes per page (and per granule).
const PAGE: usize = 4096;
/// The trap flag in `EFLAGS`.
const TRAP_FLAG: libc::greg_t = 0x100;
/// `si_code` of a write to a mapped page without write permission (not exported by `libc`).
const SEGV_ACCERR: c_int = 2;
/// Index of `RIP` in `uc_mcontext.gregs` (a small non-negative constant).
const REG_RIP: usize = libc::REG_RIP as usize;
/// Index of `EFLAGS` in `uc_mcontext.gregs` (a small non-negative constant).
const REG_EFL: usize = libc::REG_EFL as usize;
/// The backend's name.
const NAME: &str = "page_real";

/// Whether a [`PageReal`] is alive (the process-wide lock `new` takes).
static IN_USE: AtomicBool = AtomicBool::new(false);
/// A token of the thread that holds [`IN_USE`] (0: none), to refuse a second `new` on that
/// thread instead of waiting forever.
static OWNER: AtomicUsize = AtomicUsize::new(0);
/// Start address of the live arena.
static ARENA_BASE: AtomicUsize = AtomicUsize::new(0);
/// Length of the live arena in bytes; 0 when no arena is live (the handlers then touch
/// nothing).
static ARENA_LEN: AtomicUsize = AtomicUsize::new(0);
/// Pages made writable by the `SIGSEGV` handler, waiting for the `SIGTRAP` (0: empty slot).
static PENDING: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
/// Faults taken since the live `PageReal` was created.
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// Single-steps made since the live `PageReal` was created.
static STEPS: AtomicU64 = AtomicU64::new(0);
/// Address of the last fault (0: none yet).
static LAST_ADDR: AtomicUsize = AtomicUsize::new(0);
/// `RIP` of the last faulting instruction (0: none yet).
static LAST_RIP: AtomicU64 = AtomicU64::new(0);
/// Set by the `SIGTRAP` handler when it could not protect a page again.
static REPROTECT_FAILED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Its address identifies the thread in [`OWNER`].
    static THREAD_TOKEN: u8 = const { 0 };
}

fn thread_token() -> usize {
    THREAD_TOKEN.with(|t| ptr::from_ref(t) as usize)
}

fn os_err(what: &str) -> MemGuardError {
    MemGuardError::Backend {
        backend: NAME,
        what: format!("{what}: {}", io::Error::last_os_error()),
    }
}

fn backend_err(what: String) -> MemGuardError {
    MemGuardError::Backend {
        backend: NAME,
        what,
    }
}

/// Saves `errno` on entry to a signal handler and restores it on exit, so the interrupted
/// code never sees the handler's system calls.
struct SavedErrno(c_int);

impl SavedErrno {
    fn save() -> SavedErrno {
        // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for the
        // thread's lifetime.
        SavedErrno(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SavedErrno {
    fn drop(&mut self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// Not our signal: reset `sig` to its default action and raise it again. The signal is
/// blocked while its handler runs, so it is delivered (and kills the process) as soon as
/// the handler returns. Async-signal-safe (`sigaction` and `raise` are).
fn give_up(sig: c_int) {
    // SAFETY: an all-zero `sigaction` is valid (integers, an empty mask, no restorer); with
    // `sa_sigaction = SIG_DFL` it installs the default action. `raise` has no preconditions.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &raw const dfl, ptr::null_mut());
        libc::raise(sig);
    }
}

/// The `SIGSEGV` handler: see the [module docs](self). Touches only atomics and makes only
/// async-signal-safe system calls.
extern "C" fn on_segv(_sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: with SA_SIGINFO the kernel passes a valid `siginfo_t`; for a SIGSEGV it
    // generated, the fault fields (`si_addr`) are the active union member, and for one it
    // did not (`si_code <= 0`) the value is read but never trusted.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let base = ARENA_BASE.load(Ordering::SeqCst);
    let len = ARENA_LEN.load(Ordering::SeqCst);
    if code != SEGV_ACCERR || len == 0 || addr < base || addr - base >= len {
        return give_up(libc::SIGSEGV);
    }
    let page = addr & !(PAGE - 1);
    if PENDING.iter().any(|s| s.load(Ordering::SeqCst) == page) {
        // The page was made writable and still faults: something else is wrong.
        return give_up(libc::SIGSEGV);
    }
    let Some(slot) = PENDING.iter().find(|s| {
        s.compare_exchange(0, page, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }) else {
        // A third page for one store: no x86 store does that.
        return give_up(libc::SIGSEGV);
    };
    // SAFETY: `page` is page-aligned and the page lies inside the live arena mapping (checked
    // above), which only this module maps and changes.
    if unsafe {
        libc::mprotect(
            page as *mut c_void,
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    } != 0
    {
        slot.store(0, Ordering::SeqCst);
        return give_up(libc::SIGSEGV);
    }
    // SAFETY: with SA_SIGINFO the third argument is the interrupted thread's `ucontext_t`,
    // valid and exclusively ours for the duration of the handler; the kernel reloads the
    // registers from it when the handler returns.
    let gregs = unsafe { &mut (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    gregs[REG_EFL] |= TRAP_FLAG;
    LAST_ADDR.store(addr, Ordering::SeqCst);
    LAST_RIP.store(
        u64::from_ne_bytes(gregs[REG_RIP].to_ne_bytes()),
        Ordering::SeqCst,
    );
    FAULTS.fetch_add(1, Ordering::SeqCst);
}

/// The `SIGTRAP` handler: the single-step after a faulting store. See the
/// [module docs](self).
extern "C" fn on_trap(_sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: with SA_SIGINFO the kernel passes a valid `siginfo_t`; `si_code` is in the
    // common header.
    let code = unsafe { (*info).si_code };
    if code != libc::TRAP_TRACE || PENDING.iter().all(|s| s.load(Ordering::SeqCst) == 0) {
        return give_up(libc::SIGTRAP);
    }
    for slot in &PENDING {
        let page = slot.swap(0, Ordering::SeqCst);
        if page == 0 {
            continue;
        }
        // SAFETY: `page` was put here by `on_segv` after checking it is a page of the live
        // arena, which stays mapped while a `PageReal` is alive (and the handlers are only
        // installed then).
        if unsafe { libc::mprotect(page as *mut c_void, PAGE, libc::PROT_READ) } != 0 {
            REPROTECT_FAILED.store(true, Ordering::SeqCst);
        }
    }
    // SAFETY: as in `on_segv`: the interrupted thread's `ucontext_t`.
    let gregs = unsafe { &mut (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    gregs[REG_EFL] &= !TRAP_FLAG;
    STEPS.fetch_add(1, Ordering::SeqCst);
}

/// The process-wide "a `PageReal` is alive" lock; released on drop.
struct LiveLock;

impl LiveLock {
    /// Waits (yielding) until no other `PageReal` is alive; `None` if the calling thread
    /// itself holds one (waiting would never end).
    fn acquire() -> Option<LiveLock> {
        let me = thread_token();
        loop {
            if IN_USE
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                OWNER.store(me, Ordering::Relaxed);
                return Some(LiveLock);
            }
            if OWNER.load(Ordering::Relaxed) == me {
                return None;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for LiveLock {
    fn drop(&mut self) {
        OWNER.store(0, Ordering::Relaxed);
        IN_USE.store(false, Ordering::Release);
    }
}

/// An anonymous private mapping; unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Result<Mapping, MemGuardError> {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks overlaps nothing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_err("mmap"));
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| backend_err("mmap gave 0".into()))?;
        Ok(Mapping { base, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping `new` made, and nothing refers to it
        // any more (its owner is being dropped).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A signal handler this module installed; the previous action is put back on drop.
struct Installed {
    sig: c_int,
    prev: libc::sigaction,
}

type Handler = extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);

impl Installed {
    fn new(sig: c_int, handler: Handler) -> Result<Installed, MemGuardError> {
        // SAFETY: an all-zero `sigaction` is valid (integers, an empty mask, no restorer).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = handler as libc::sighandler_t;
        act.sa_flags = libc::SA_SIGINFO;
        // SAFETY: as above.
        let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are to live `sigaction`s; the handler has the SA_SIGINFO
        // signature and is async-signal-safe.
        if unsafe { libc::sigaction(sig, &raw const act, &raw mut prev) } != 0 {
            return Err(os_err("sigaction"));
        }
        Ok(Installed { sig, prev })
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: `prev` is the action the kernel gave back when this one was installed.
        unsafe { libc::sigaction(self.sig, &raw const self.prev, ptr::null_mut()) };
    }
}

/// MemGuard's page-granular memory protection level on real memory: an `mmap`ed arena whose
/// protected pages are read-only, with writes to them handled by `SIGSEGV` and trap-flag
/// single-stepping. See the [module docs](self).
///
/// Only one is alive in the process at a time ([`PageReal::new`] waits for the previous one
/// to be dropped). Dropping it unmaps the arena and puts back the `SIGSEGV` and `SIGTRAP`
/// actions that were installed before [`PageReal::new`].
pub struct PageReal {
    // Field order is drop order: the handlers go first, then the arena, then the lock.
    segv: Installed,
    trap: Installed,
    map: Mapping,
    /// Which pages are read-only.
    protected: Vec<bool>,
    pd: PdId,
    _live: LiveLock,
}

impl PageReal {
    /// Maps a read-write arena of `pages` 4 KiB pages and installs the `SIGSEGV` and `SIGTRAP`
    /// handlers; every [`WriteFault`] reports `pd` as the writer. If another `PageReal` is
    /// alive (on another thread) this waits until it is dropped. The fault and single-step
    /// counters start at zero.
    ///
    /// # Errors
    /// [`MemGuardError::Backend`] if `pages` is 0 or too large, if the system page size is
    /// not 4 KiB, if the calling thread already holds a live `PageReal`, or if `mmap` or
    /// `sigaction` fails (nothing is left installed or mapped).
    pub fn new(pages: usize, pd: PdId) -> Result<PageReal, MemGuardError> {
        let len = pages
            .checked_mul(PAGE)
            .filter(|&l| l > 0 && isize::try_from(l).is_ok())
            .ok_or_else(|| backend_err(format!("an arena of {pages} pages")))?;
        // SAFETY: `sysconf` has no preconditions.
        let sys_page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if usize::try_from(sys_page) != Ok(PAGE) {
            return Err(backend_err(format!("the system page size is {sys_page}")));
        }
        let live = LiveLock::acquire()
            .ok_or_else(|| backend_err("this thread already holds a live PageReal".into()))?;
        let map = Mapping::new(len)?;
        for s in &PENDING {
            s.store(0, Ordering::SeqCst);
        }
        FAULTS.store(0, Ordering::SeqCst);
        STEPS.store(0, Ordering::SeqCst);
        LAST_ADDR.store(0, Ordering::SeqCst);
        LAST_RIP.store(0, Ordering::SeqCst);
        REPROTECT_FAILED.store(false, Ordering::SeqCst);
        ARENA_BASE.store(map.base.as_ptr() as usize, Ordering::SeqCst);
        ARENA_LEN.store(len, Ordering::SeqCst);
        let disarm = |e| {
            ARENA_LEN.store(0, Ordering::SeqCst);
            e
        };
        let segv = Installed::new(libc::SIGSEGV, on_segv).map_err(disarm)?;
        let trap = Installed::new(libc::SIGTRAP, on_trap).map_err(disarm)?;
        Ok(PageReal {
            segv,
            trap,
            map,
            protected: vec![false; pages],
            pd,
            _live: live,
        })
    }

    /// Pages in the arena.
    #[must_use]
    pub fn pages(&self) -> usize {
        self.protected.len()
    }

    /// Whether page `page` is read-only now (`false` outside the arena).
    #[must_use]
    pub fn is_protected(&self, page: u64) -> bool {
        usize::try_from(page)
            .ok()
            .and_then(|p| self.protected.get(p))
            .copied()
            .unwrap_or(false)
    }

    /// The real `RIP` of the last faulting store (inside this module's store routine; the
    /// [`WriteFault`]s carry the caller's pc instead). `None` before the first fault.
    #[must_use]
    pub fn last_rip(&self) -> Option<u64> {
        Some(LAST_RIP.load(Ordering::SeqCst)).filter(|&r| r != 0)
    }

    /// The arena offset of the byte the last fault was taken on (for a store straddling two
    /// protected pages, the first byte of the second page). `None` before the first fault.
    #[must_use]
    pub fn last_fault_addr(&self) -> Option<u64> {
        let a = LAST_ADDR.load(Ordering::SeqCst);
        (a != 0).then(|| (a - self.base_addr()) as u64)
    }

    fn base_addr(&self) -> usize {
        self.map.base.as_ptr() as usize
    }

    /// Granules `[first, end)` as page indices, if a non-empty range inside the arena.
    fn granules(&self, first: u64, end: u64) -> Result<(usize, usize), MemGuardError> {
        let n = self.protected.len();
        match (usize::try_from(first), usize::try_from(end)) {
            (Ok(a), Ok(b)) if a < b && b <= n => Ok((a, b)),
            _ => Err(MemGuardError::OutOfArena {
                addr: first.saturating_mul(PAGE as u64),
                len: end.saturating_sub(first).saturating_mul(PAGE as u64),
                arena: self.map.len as u64,
            }),
        }
    }

    /// Sets the protection of pages `[first, end)` (inside the arena).
    fn mprotect(&self, first: usize, end: usize, prot: c_int) -> Result<(), MemGuardError> {
        debug_assert!(first < end && end <= self.protected.len());
        // SAFETY: the pages are inside the arena mapping (the callers check the range), which
        // only this module uses; no Rust reference into the arena exists.
        let r = unsafe {
            libc::mprotect(
                self.map.base.as_ptr().add(first * PAGE).cast(),
                (end - first) * PAGE,
                prot,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(os_err(&format!("mprotect of pages [{first}, {end})")))
        }
    }

    /// Makes the pages in `[first, end)` marked protected read-only again, a run at a time;
    /// a run that cannot be is marked unprotected (it is writable) and reported.
    fn reprotect_marked(&mut self, first: usize, end: usize) -> Result<(), MemGuardError> {
        let mut result = Ok(());
        let mut p = first;
        while p < end {
            if !self.protected[p] {
                p += 1;
                continue;
            }
            let run = p + self.protected[p..end].iter().take_while(|&&x| x).count();
            if let Err(e) = self.mprotect(p, run, libc::PROT_READ) {
                self.protected[p..run].fill(false);
                result = result.and(Err(e));
            }
            p = run;
        }
        result
    }

    /// A pointer to arena offset `addr` (which the caller has range-checked).
    fn at(&self, addr: u64) -> *mut u8 {
        // The offset is inside the arena, whose length fits in a usize.
        #[allow(clippy::cast_possible_truncation)]
        let off = addr as usize;
        // SAFETY: `off` is inside the mapping (callers check the range with `check_range`).
        unsafe { self.map.base.as_ptr().add(off) }
    }
}

impl Drop for PageReal {
    fn drop(&mut self) {
        // Disarm the handlers before they are uninstalled (the fields drop after this body):
        // no fault is handled as ours any more.
        ARENA_LEN.store(0, Ordering::SeqCst);
        ARENA_BASE.store(0, Ordering::SeqCst);
        for s in &PENDING {
            s.store(0, Ordering::SeqCst);
        }
    }
}

impl fmt::Debug for PageReal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageReal")
            .field("base", &self.map.base)
            .field("pages", &self.protected.len())
            .field(
                "protected_pages",
                &self.protected.iter().filter(|&&p| p).count(),
            )
            .field("pd", &self.pd)
            .field("signals", &(self.segv.sig, self.trap.sig))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Stores `v` at `p` with one `mov byte`.
///
/// # Safety
/// `p` is inside the live arena (a write-protected page is handled by the handlers).
unsafe fn store1(p: *mut u8, v: u8) {
    // SAFETY: the caller guarantees `p` is valid for a 1-byte write once the handlers have
    // lifted a protection; the asm writes exactly that byte and nothing else.
    unsafe {
        std::arch::asm!("mov byte ptr [{p}], {v}", p = in(reg) p, v = in(reg_byte) v,
            options(nostack, preserves_flags));
    }
}

/// Stores `v` at `p` with one `mov word` (any alignment).
///
/// # Safety
/// `[p, p + 2)` is inside the live arena.
unsafe fn store2(p: *mut u8, v: u16) {
    // SAFETY: as `store1`, for 2 bytes; x86 allows unaligned stores.
    unsafe {
        std::arch::asm!("mov word ptr [{p}], {v:x}", p = in(reg) p, v = in(reg) v,
            options(nostack, preserves_flags));
    }
}

/// Stores `v` at `p` with one `mov dword` (any alignment).
///
/// # Safety
/// `[p, p + 4)` is inside the live arena.
unsafe fn store4(p: *mut u8, v: u32) {
    // SAFETY: as `store1`, for 4 bytes; x86 allows unaligned stores.
    unsafe {
        std::arch::asm!("mov dword ptr [{p}], {v:e}", p = in(reg) p, v = in(reg) v,
            options(nostack, preserves_flags));
    }
}

/// Stores `v` at `p` with one `mov qword` (any alignment).
///
/// # Safety
/// `[p, p + 8)` is inside the live arena.
unsafe fn store8(p: *mut u8, v: u64) {
    // SAFETY: as `store1`, for 8 bytes; x86 allows unaligned stores.
    unsafe {
        std::arch::asm!("mov qword ptr [{p}], {v}", p = in(reg) p, v = in(reg) v,
            options(nostack, preserves_flags));
    }
}

/// Stores `b` (1 to 8 bytes) at `p`: one instruction for 1, 2, 4 and 8 bytes, two
/// overlapping ones otherwise (see the module docs).
///
/// # Safety
/// `[p, p + b.len())` is inside the live arena.
unsafe fn store(p: *mut u8, bytes: &[u8]) {
    // SAFETY (all arms): each store's bytes lie inside `[p, p + bytes.len())`, which the
    // caller guarantees is inside the arena.
    unsafe {
        if let Ok(v) = bytes.try_into() {
            store8(p, u64::from_le_bytes(v));
        } else if let Ok(v) = bytes.try_into() {
            store4(p, u32::from_le_bytes(v));
        } else if let Ok(v) = bytes.try_into() {
            store2(p, u16::from_le_bytes(v));
        } else if let [v] = *bytes {
            store1(p, v);
        } else {
            let n = bytes.len();
            debug_assert!((3..8).contains(&n));
            let w = if n > 4 { 4 } else { 2 };
            store(p, &bytes[..w]);
            store(p.add(n - w), &bytes[n - w..]);
        }
    }
}

impl MemoryProtection for PageReal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arena_len(&self) -> u64 {
        self.map.len as u64
    }

    fn granule(&self) -> u64 {
        PAGE as u64
    }

    fn protect(&mut self, first: u64, end: u64) -> Result<(), MemGuardError> {
        let (a, b) = self.granules(first, end)?;
        if !self.protected[a..b].iter().all(|&p| p) {
            self.mprotect(a, b, libc::PROT_READ)?;
            self.protected[a..b].fill(true);
        }
        Ok(())
    }

    fn restore(&mut self, first: u64, end: u64) -> Result<(), MemGuardError> {
        let (a, b) = self.granules(first, end)?;
        if self.protected[a..b].iter().any(|&p| p) {
            self.mprotect(a, b, libc::PROT_READ | libc::PROT_WRITE)?;
            self.protected[a..b].fill(false);
        }
        Ok(())
    }

    fn write(
        &mut self,
        pc: u64,
        addr: u64,
        bytes: &[u8],
        faults: &mut Vec<WriteFault>,
    ) -> Result<(), MemGuardError> {
        let len = bytes.len() as u64;
        check_write(addr, len, self.arena_len())?;
        let p = self.at(addr);
        let before = FAULTS.load(Ordering::SeqCst);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `[addr, addr + len)` is inside the arena (checked above); protected pages
        // are made writable for the store by the handlers this `PageReal` installed.
        unsafe { store(p, bytes) };
        compiler_fence(Ordering::SeqCst);
        let after = FAULTS.load(Ordering::SeqCst);
        for _ in before..after {
            faults.push(WriteFault {
                addr,
                len,
                pc,
                pd: self.pd,
            });
        }
        if REPROTECT_FAILED.swap(false, Ordering::SeqCst) {
            // The SIGTRAP handler could not protect a page again: try once more from here.
            // Inside the arena, so the page indices fit in a usize.
            #[allow(clippy::cast_possible_truncation)]
            let first = addr as usize / PAGE;
            #[allow(clippy::cast_possible_truncation)]
            let end = (addr + len).div_ceil(PAGE as u64) as usize;
            self.reprotect_marked(first, end)?;
        }
        Ok(())
    }

    fn write_approved(&mut self, addr: u64, bytes: &[u8]) -> Result<(), MemGuardError> {
        let len = bytes.len() as u64;
        check_range(addr, len, self.arena_len())?;
        // Inside the arena, so the page indices fit in a usize.
        #[allow(clippy::cast_possible_truncation)]
        let (first, end) = (
            (addr / PAGE as u64) as usize,
            (addr + len).div_ceil(PAGE as u64) as usize,
        );
        let locked = self.protected[first..end].iter().any(|&p| p);
        if locked {
            self.mprotect(first, end, libc::PROT_READ | libc::PROT_WRITE)?;
        }
        // SAFETY: the destination is inside the arena (checked above) and writable now; the
        // source is a separate Rust slice, so they do not overlap.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.at(addr), bytes.len()) };
        if locked {
            self.reprotect_marked(first, end)?;
        }
        Ok(())
    }

    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), MemGuardError> {
        check_range(addr, out.len() as u64, self.arena_len())?;
        // SAFETY: the source is inside the arena (checked above), which is always readable;
        // `out` is a separate Rust slice.
        unsafe { ptr::copy_nonoverlapping(self.at(addr), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            faults: FAULTS.load(Ordering::SeqCst),
            single_steps: STEPS.load(Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PD: PdId = PdId::from_raw(7);
    const PAGE64: u64 = PAGE as u64;

    fn read8(m: &PageReal, addr: u64) -> u64 {
        let mut b = [0u8; 8];
        m.read(addr, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    fn stats(faults: u64, single_steps: u64) -> BackendStats {
        BackendStats {
            faults,
            single_steps,
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn spurious_fault_completes_and_reprotects() {
        let mut m = PageReal::new(4, PD).unwrap();
        assert_eq!(
            (m.name(), m.granule(), m.arena_len()),
            ("page_real", 4096, 4 * 4096)
        );
        m.protect(1, 2).unwrap();
        assert!(m.is_protected(1) && !m.is_protected(0) && !m.is_protected(2));
        let mut faults = Vec::new();
        let addr = PAGE64 + 16;
        m.write(
            0x40,
            addr,
            &0x1122_3344_5566_7788u64.to_le_bytes(),
            &mut faults,
        )
        .unwrap();
        assert_eq!(read8(&m, addr), 0x1122_3344_5566_7788);
        assert_eq!(
            faults,
            [WriteFault {
                addr,
                len: 8,
                pc: 0x40,
                pd: PD
            }]
        );
        assert_eq!(m.stats(), stats(1, 1));
        assert_eq!(m.last_fault_addr(), Some(addr));
        assert!(m.last_rip().is_some());
        assert!(m.is_protected(1));
        // Still read-only: the next write faults again.
        faults.clear();
        m.write(0x44, addr, &[9, 9, 9, 9], &mut faults).unwrap();
        assert_eq!(faults.len(), 1);
        assert_eq!(m.stats(), stats(2, 2));
        assert_eq!(read8(&m, addr), 0x1122_3344_0909_0909);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn unprotected_pages_do_not_fault() {
        let mut m = PageReal::new(3, PD).unwrap();
        m.protect(1, 2).unwrap();
        let mut faults = Vec::new();
        for (i, addr) in [0, 4095, 2 * PAGE64, 3 * PAGE64 - 8]
            .into_iter()
            .enumerate()
        {
            let len = [1, 1, 4, 8][i];
            m.write(1, addr, &vec![0xab; len], &mut faults).unwrap();
        }
        assert!(faults.is_empty());
        assert_eq!(m.stats(), stats(0, 0));
        assert_eq!(read8(&m, 3 * PAGE64 - 8), u64::MAX / 255 * 0xab);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn every_width_writes_its_bytes() {
        let mut m = PageReal::new(2, PD).unwrap();
        let mut faults = Vec::new();
        for protect in [false, true] {
            if protect {
                m.protect(0, 2).unwrap();
            }
            for len in 1..=8u64 {
                let addr = 100 * len + 4093 * u64::from(protect);
                m.write_approved(addr, &[0; 8]).unwrap();
                let data: Vec<u8> = (1..=len).map(|i| (i * 17).to_le_bytes()[0]).collect();
                faults.clear();
                m.write(3, addr, &data, &mut faults).unwrap();
                let mut back = [0u8; 8];
                m.read(addr, &mut back).unwrap();
                assert_eq!(&back[..data.len()], &data[..], "len {len}");
                assert!(back[data.len()..].iter().all(|&b| b == 0), "len {len}");
                // Protected: one fault per store (the write stays inside page 1).
                let want = match (protect, len.is_power_of_two()) {
                    (false, _) => 0,
                    (true, true) => 1,
                    (true, false) => 2,
                };
                assert_eq!(faults.len(), want, "len {len}: {faults:?}");
            }
        }
        assert!(m.is_protected(0) && m.is_protected(1));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn approved_write_does_not_fault_and_keeps_protection() {
        let mut m = PageReal::new(3, PD).unwrap();
        m.protect(1, 2).unwrap();
        // Spans an unprotected page, a protected one and another unprotected one.
        let data: Vec<u8> = (0..5000u32).map(|i| i.to_le_bytes()[0]).collect();
        m.write_approved(PAGE64 - 100, &data).unwrap();
        let mut back = vec![0; data.len()];
        m.read(PAGE64 - 100, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(m.stats(), stats(0, 0));
        assert!(m.is_protected(1) && !m.is_protected(0) && !m.is_protected(2));
        let mut faults = Vec::new();
        m.write(5, 0, &[1], &mut faults).unwrap();
        m.write(5, 2 * PAGE64, &[1], &mut faults).unwrap();
        assert!(faults.is_empty());
        m.write(5, PAGE64 + 8, &[1], &mut faults).unwrap();
        assert_eq!(faults.len(), 1);
        assert_eq!(m.stats(), stats(1, 1));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn store_straddling_two_protected_pages() {
        let mut m = PageReal::new(2, PD).unwrap();
        m.protect(0, 2).unwrap();
        let mut faults = Vec::new();
        m.write(
            0x99,
            4092,
            &0x0102_0304_0506_0708u64.to_le_bytes(),
            &mut faults,
        )
        .unwrap();
        assert_eq!(read8(&m, 4092), 0x0102_0304_0506_0708);
        // One fault per page, one single-step for the store.
        assert_eq!(faults.len(), 2);
        assert!(
            faults
                .iter()
                .all(|f| f.addr == 4092 && f.len == 8 && f.pc == 0x99)
        );
        assert_eq!(m.stats(), stats(2, 1));
        assert_eq!(m.last_fault_addr(), Some(PAGE64));
        // Both pages are read-only again.
        faults.clear();
        m.write(1, 0, &[1], &mut faults).unwrap();
        m.write(1, PAGE64 + 100, &[1], &mut faults).unwrap();
        assert_eq!(faults.len(), 2);
        assert_eq!(m.stats(), stats(4, 3));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn restore_makes_writes_fault_free_and_both_are_idempotent() {
        let mut m = PageReal::new(3, PD).unwrap();
        m.protect(0, 3).unwrap();
        m.protect(1, 2).unwrap();
        assert!((0..3).all(|p| m.is_protected(p)));
        m.restore(0, 3).unwrap();
        m.restore(0, 2).unwrap();
        assert!((0..3).all(|p| !m.is_protected(p)));
        let mut faults = Vec::new();
        for p in 0..3 {
            m.write(1, p * PAGE64 + 8, &[7; 8], &mut faults).unwrap();
        }
        assert!(faults.is_empty());
        assert_eq!(m.stats(), stats(0, 0));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn bad_arguments_change_nothing() {
        let mut m = PageReal::new(2, PD).unwrap();
        let mut faults = Vec::new();
        let arena = 2 * PAGE64;
        assert_eq!(
            m.write(1, arena - 4, &[0; 8], &mut faults),
            Err(MemGuardError::OutOfArena {
                addr: arena - 4,
                len: 8,
                arena
            })
        );
        assert!(matches!(
            m.write(1, 0, &[], &mut faults),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert_eq!(
            m.write(1, 0, &[0; 9], &mut faults),
            Err(MemGuardError::BadWriteSize { addr: 0, len: 9 })
        );
        assert!(matches!(
            m.protect(1, 3),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            m.restore(1, 1),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            m.write_approved(u64::MAX, &[1]),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(matches!(
            m.read(arena, &mut [0]),
            Err(MemGuardError::OutOfArena { .. })
        ));
        assert!(faults.is_empty());
        assert!(!m.is_protected(0) && !m.is_protected(1) && !m.is_protected(99));
        assert!(matches!(
            PageReal::new(0, PD),
            Err(MemGuardError::Backend { .. })
        ));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn instances_in_sequence_start_fresh() {
        for round in 0..3 {
            let mut m = PageReal::new(1 + round, PD).unwrap();
            assert_eq!(m.stats(), stats(0, 0));
            assert_eq!((m.last_rip(), m.last_fault_addr()), (None, None));
            assert_eq!(read8(&m, 0), 0, "a fresh arena is zeroed");
            m.protect(0, 1).unwrap();
            let mut faults = Vec::new();
            m.write(round as u64, 8, &[1, 2], &mut faults).unwrap();
            assert_eq!(faults.len(), 1);
            assert_eq!(m.stats(), stats(1, 1));
            drop(m);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_second_instance_on_the_same_thread_is_refused() {
        let m = PageReal::new(1, PD).unwrap();
        assert!(matches!(
            PageReal::new(1, PD),
            Err(MemGuardError::Backend { .. })
        ));
        drop(m);
        PageReal::new(1, PD).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn threads_take_turns() {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let mut m = PageReal::new(2, PD).unwrap();
                        m.protect(1, 2).unwrap();
                        let mut faults = Vec::new();
                        for i in 0..20 {
                            m.write(t, PAGE64 + 8 * i, &t.to_le_bytes(), &mut faults)
                                .unwrap();
                        }
                        assert_eq!(faults.len(), 20);
                        assert_eq!(m.stats(), stats(20, 20));
                        assert_eq!(read8(&m, PAGE64 + 8 * 19), t);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn many_writes_each_fault_once() {
        let mut m = PageReal::new(4, PD).unwrap();
        m.protect(0, 4).unwrap();
        let mut faults = Vec::new();
        for i in 0..1000u64 {
            let addr = (i * 8 + i % 8) % (4 * PAGE64 - 8);
            let before = faults.len();
            let len = if addr % PAGE64 > PAGE64 - 8 { 1 } else { 8 };
            m.write(i, addr, &i.to_le_bytes()[..len], &mut faults)
                .unwrap();
            assert_eq!(faults.len(), before + 1, "write {i} at {addr:#x}");
            assert_eq!(faults[before].pc, i);
        }
        assert_eq!(m.stats(), stats(1000, 1000));
        assert!((0..4).all(|p| m.is_protected(p)));
    }

    /// Runs `child` in a forked process (it inherits the live `PageReal` and its handlers) and
    /// returns the signal that killed it, or `None` if it exited.
    fn fork_and_wait(child: impl FnOnce()) -> Option<c_int> {
        // SAFETY: the child only runs `child` (system calls and the module's handlers, no
        // locks another thread could hold) and then `_exit`s without unwinding.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain system calls; `_exit` never returns.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core);
                child();
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a live int.
        let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert_eq!(r, pid);
        libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn foreign_signals_are_not_swallowed() {
        let mut m = PageReal::new(1, PD).unwrap();
        m.protect(0, 1).unwrap();
        let mut faults = Vec::with_capacity(4);
        // A segfault outside the arena kills the process, after an arena fault was handled.
        let died = fork_and_wait(|| {
            m.write(1, 0, &[1], &mut faults).unwrap();
            let dangling = std::hint::black_box(16usize) as *mut u8;
            // SAFETY: deliberately invalid; this is the point of the test (in the child).
            unsafe { dangling.write_volatile(1) };
        });
        assert_eq!(died, Some(libc::SIGSEGV));
        // A SIGTRAP that is not a single-step too.
        // SAFETY: `raise` has no preconditions.
        let died = fork_and_wait(|| unsafe {
            libc::raise(libc::SIGTRAP);
        });
        assert_eq!(died, Some(libc::SIGTRAP));
        // The parent is untouched and still works.
        let mut faults = Vec::new();
        m.write(1, 0, &[1], &mut faults).unwrap();
        assert_eq!(faults.len(), 1);
        assert_eq!(m.stats(), stats(1, 1));
    }

    /// The cost of a spurious fault: run with
    /// `cargo test -p mmp-memguard --lib page_real -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn spurious_fault_cost() {
        const N: u32 = 10_000;
        let mut m = PageReal::new(2, PD).unwrap();
        m.protect(0, 1).unwrap();
        let mut faults = Vec::with_capacity(N as usize);
        let t = std::time::Instant::now();
        for i in 0..N {
            m.write(1, 64, &u64::from(i).to_le_bytes(), &mut faults)
                .unwrap();
        }
        let faulting = t.elapsed() / N;
        assert_eq!(faults.len(), N as usize);
        let t = std::time::Instant::now();
        for i in 0..N {
            m.write(1, PAGE64 + 64, &u64::from(i).to_le_bytes(), &mut faults)
                .unwrap();
        }
        let plain = t.elapsed() / N;
        assert_eq!(faults.len(), N as usize);
        // The two mprotect calls alone.
        let t = std::time::Instant::now();
        for _ in 0..N {
            m.restore(0, 1).unwrap();
            m.protect(0, 1).unwrap();
        }
        let mprotects = t.elapsed() / N;
        println!(
            "page_real: spurious-fault write {faulting:?}, plain write {plain:?}, \
             two mprotect calls {mprotects:?}"
        );
    }
}
