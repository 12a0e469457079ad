//! Where a guest address belongs: the protection domain whose code runs at a program
//! counter, and the kind of memory a data address falls in.
//!
//! Domain numbers: [`USER`] for user space (and firmware, which runs below the kernel half
//! too), [`CORE`] for every kernel address outside the module area (the kernel image, and
//! anything else the core kernel runs), [`UNMAPPED`] for a module-area address no module's
//! memory covers, and 3 and up for the modules, one per module load, in load order.
//!
//! **Where modules lie is learnt as the kernel loads them** ([`Loads`]). A boot's placement
//! cannot be known beforehand: the kernel frees a module's init memory some time after its
//! init function returns (after an RCU grace period, from a work queue), and whether the next
//! module's allocation takes that memory depends on timing. So the plugin watches the loader:
//! each entry to the kernel's `load_module` begins a load ([`Loads::begin`]), and the loader
//! zeroes each allocation it makes for the module (`move_module`'s `memset`, the core
//! allocation first, then the init allocation) before copying the sections in. The pages the
//! core kernel stores to in the module area during a load, from the load's start until the
//! module's own code first runs, are the module's ([`Loads::core_store`]): the contiguous run
//! the first of them starts is its core allocation, any other page its init allocation. A
//! store into an earlier module's core allocation (the loader links the new module into the
//! module list through the previous one's `struct module`) leaves it with that module; a store
//! into an earlier module's init allocation means the memory was freed and taken again. The
//! recording lists each load's pages; `mmp-replay kernel-mmp` names each load by the module
//! whose `/proc/modules` address (read at the end of the run) lies in its core allocation.

use std::fmt;

/// The domain of user-space code (every address below the kernel half).
pub const USER: u16 = 0;
/// The core kernel's domain: kernel addresses outside the module area.
pub const CORE: u16 = 1;
/// Module-area addresses that no range of the map names.
pub const UNMAPPED: u16 = 2;
/// The first module's domain number.
pub const FIRST_MODULE: u16 = 3;

/// x86-64 (4-level paging, no KASLR) virtual-memory regions of Linux, as
/// `Documentation/x86/x86_64/mm.rst` gives them.
pub mod layout {
    /// First kernel-half address.
    pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
    /// The direct map of physical memory (the heap, page cache, `kmalloc`).
    pub const DIRECT_MAP: (u64, u64) = (0xffff_8880_0000_0000, 0xffff_c880_0000_0000);
    /// `vmalloc` and `ioremap` space (kernel stacks live here with `VMAP_STACK`).
    pub const VMALLOC: (u64, u64) = (0xffff_c900_0000_0000, 0xffff_e900_0000_0000);
    /// The `struct page` array.
    pub const VMEMMAP: (u64, u64) = (0xffff_ea00_0000_0000, 0xffff_eb00_0000_0000);
    /// The kernel image (text, data, bss), 1 GiB with `RANDOMIZE_BASE`.
    pub const KERNEL_IMAGE: (u64, u64) = (0xffff_ffff_8000_0000, 0xffff_ffff_c000_0000);
    /// The module area.
    pub const MODULES: (u64, u64) = (0xffff_ffff_c000_0000, 0xffff_ffff_ff00_0000);
}

/// The kind of memory a data address falls in. The kernel image and the module area are
/// static memory, which symbols name; the rest is dynamic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// User space.
    User,
    /// The direct map (heap objects, page cache).
    DirectMap,
    /// `vmalloc` space (kernel stacks, `vmalloc` memory).
    Vmalloc,
    /// The `struct page` array.
    Vmemmap,
    /// Any other kernel address outside the image and the module area (fixmap, CPU entry
    /// area, ...).
    OtherKernel,
    /// The kernel image.
    Image,
    /// The module area.
    Modules,
}

impl Place {
    /// Where `addr` is.
    #[must_use]
    pub fn of(addr: u64) -> Place {
        use layout::*;
        let within = |(lo, hi): (u64, u64)| (lo..hi).contains(&addr);
        if addr < KERNEL_HALF {
            Place::User
        } else if within(MODULES) {
            Place::Modules
        } else if within(KERNEL_IMAGE) {
            Place::Image
        } else if within(DIRECT_MAP) {
            Place::DirectMap
        } else if within(VMALLOC) {
            Place::Vmalloc
        } else if within(VMEMMAP) {
            Place::Vmemmap
        } else {
            Place::OtherKernel
        }
    }

    /// Whether symbols can name the address (the image or the module area): the recording
    /// keeps such addresses exactly, and only the place of the others.
    #[must_use]
    pub fn is_static(self) -> bool {
        matches!(self, Place::Image | Place::Modules)
    }

    /// The name the recording writes (`@direct-map`, ...), for a dynamic place.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Place::User => "@user",
            Place::DirectMap => "@direct-map",
            Place::Vmalloc => "@vmalloc",
            Place::Vmemmap => "@vmemmap",
            Place::OtherKernel => "@other-kernel",
            Place::Image => "@image",
            Place::Modules => "@modules",
        }
    }

    /// A small number standing for a dynamic place in an access key (no static address is
    /// this small).
    #[must_use]
    pub fn code(self) -> u64 {
        self as u64 + 1
    }

    /// The place [`Place::code`] gave `code`, if it is one.
    #[must_use]
    pub fn from_code(code: u64) -> Option<Place> {
        const ALL: [Place; 7] = [
            Place::User,
            Place::DirectMap,
            Place::Vmalloc,
            Place::Vmemmap,
            Place::OtherKernel,
            Place::Image,
            Place::Modules,
        ];
        ALL.get(usize::try_from(code.checked_sub(1)?).ok()?)
            .copied()
    }
}

/// Bytes of a page.
pub const PAGE: u64 = 4096;

/// Module memory, page by page, as the loader lays it out. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loads {
    /// Page number to (its module's domain, whether it is init memory).
    pages: std::collections::HashMap<u64, (u16, bool)>,
    /// Loads begun.
    loads: u16,
    /// The load taking pages: its domain, and its core run so far (first and last page), if
    /// it has one.
    open: Option<(u16, Option<(u64, u64)>)>,
}

impl Loads {
    /// No module.
    #[must_use]
    pub fn new() -> Loads {
        Loads::default()
    }

    /// The kernel entered `load_module`: a load begins (and the one before stops taking
    /// pages). Returns its domain, or `None` once every domain number is taken.
    pub fn begin(&mut self) -> Option<u16> {
        let dom = FIRST_MODULE.checked_add(self.loads)?;
        self.loads += 1;
        self.open = Some((dom, None));
        Some(dom)
    }

    /// Whether a load is taking pages (begun, and its module's code has not run yet).
    #[must_use]
    pub fn taking(&self) -> bool {
        self.open.is_some()
    }

    /// How many loads have begun.
    #[must_use]
    pub fn loads(&self) -> u16 {
        self.loads
    }

    /// Code of domain `dom` ran: if it is the open load's module, its allocations are done
    /// and it takes no more pages.
    pub fn ran(&mut self, dom: u16) {
        if self.open.is_some_and(|(d, _)| d == dom) {
            self.open = None;
        }
    }

    /// The core kernel stored into the module area at `addr`. Returns whether a page
    /// changed hands (see the [module docs](self)).
    pub fn core_store(&mut self, addr: u64) -> bool {
        let Some((dom, run)) = self.open else {
            return false;
        };
        if Place::of(addr) != Place::Modules {
            return false;
        }
        let page = addr / PAGE;
        match self.pages.get(&page) {
            Some(&(d, _)) if d == dom => return false,
            Some(&(_, false)) => return false,
            _ => {}
        }
        let init = match run {
            None => {
                self.open = Some((dom, Some((page, page))));
                false
            }
            Some((first, last)) if page == last + 1 => {
                self.open = Some((dom, Some((first, page))));
                false
            }
            Some(_) => true,
        };
        self.pages.insert(page, (dom, init));
        true
    }

    /// The domain whose code (or memory) is at `addr` now.
    #[must_use]
    pub fn domain_of(&self, addr: u64) -> u16 {
        match Place::of(addr) {
            Place::User => USER,
            Place::Modules => self.pages.get(&(addr / PAGE)).map_or(UNMAPPED, |p| p.0),
            _ => CORE,
        }
    }

    /// Each load's memory now, as runs of pages: (domain, init memory, start, end), sorted
    /// by domain, then init after core, then address.
    #[must_use]
    pub fn runs(&self) -> Vec<(u16, bool, u64, u64)> {
        let mut pages: Vec<(u16, bool, u64)> =
            self.pages.iter().map(|(&p, &(d, i))| (d, i, p)).collect();
        pages.sort_unstable();
        let mut out: Vec<(u16, bool, u64, u64)> = Vec::new();
        for (d, i, p) in pages {
            match out.last_mut() {
                Some(r) if r.0 == d && r.1 == i && r.3 == p * PAGE => r.3 += PAGE,
                _ => out.push((d, i, p * PAGE, (p + 1) * PAGE)),
            }
        }
        out
    }

    /// Domain names by number: `user`, `vmlinux`, `unmapped-module-memory`, then `load-1`,
    /// `load-2`, ... (the reader names each load by its module).
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut n = vec![
            "user".to_string(),
            "vmlinux".to_string(),
            "unmapped-module-memory".to_string(),
        ];
        n.extend((1..=self.loads).map(|k| format!("load-{k}")));
        n
    }
}

impl fmt::Display for Loads {
    /// The recording's header: `domain N NAME` lines, then `range N core|init START END`
    /// lines (hexadecimal, END exclusive).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, n) in self.names().iter().enumerate() {
            writeln!(f, "domain {k} {n}")?;
        }
        for (d, init, s, e) in self.runs() {
            let kind = if init { "init" } else { "core" };
            writeln!(f, "range {d} {kind} {s:x} {e:x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u64 = 0xffff_ffff_c020_1000;

    /// Stores to every 8th byte of `[a, a + len)`, as a memset does (the pages in order).
    fn memset(l: &mut Loads, a: u64, len: u64) {
        for x in (a..a + len).step_by(8) {
            l.core_store(x);
        }
    }

    #[test]
    fn a_load_takes_the_pages_the_loader_zeroes_core_first() {
        let mut l = Loads::new();
        assert_eq!(l.domain_of(C), UNMAPPED);
        assert_eq!(l.begin(), Some(3));
        memset(&mut l, C, 0x8000);
        memset(&mut l, C + 0x9000, 0x2000);
        assert_eq!(l.domain_of(C), 3);
        assert_eq!(l.domain_of(C + 0x7fff), 3);
        assert_eq!(l.domain_of(C + 0x8000), UNMAPPED, "the guard page");
        assert_eq!(l.domain_of(C + 0x9000), 3);
        assert_eq!(l.domain_of(0xffff_ffff_8100_0000), CORE);
        assert_eq!(l.domain_of(0x4000), USER);
        assert_eq!(
            l.runs(),
            [(3, false, C, C + 0x8000), (3, true, C + 0x9000, C + 0xb000)]
        );
        // Its code runs: later stores take nothing.
        l.ran(3);
        l.core_store(C + 0x20_0000);
        assert_eq!(l.domain_of(C + 0x20_0000), UNMAPPED);
    }

    #[test]
    fn a_later_module_takes_over_freed_init_memory_but_not_core_memory() {
        let mut l = Loads::new();
        l.begin();
        memset(&mut l, C, 0x8000);
        memset(&mut l, C + 0x9000, 0x2000);
        l.ran(3);
        assert_eq!(l.begin(), Some(4));
        // The loader links the new module in through the old one's struct module.
        l.core_store(C + 0x4010);
        // The new core allocation starts in the old init memory.
        memset(&mut l, C + 0x9000, 0x4000);
        memset(&mut l, C + 0xe000, 0x1000);
        assert_eq!(l.domain_of(C + 0x4010), 3);
        assert_eq!(l.domain_of(C + 0x9000), 4);
        assert_eq!(l.domain_of(C + 0xc000), 4);
        assert_eq!(l.domain_of(C + 0xe000), 4);
        assert_eq!(
            l.runs(),
            [
                (3, false, C, C + 0x8000),
                (4, false, C + 0x9000, C + 0xd000),
                (4, true, C + 0xe000, C + 0xf000)
            ]
        );
        assert_eq!(l.names()[3..], ["load-1".to_string(), "load-2".to_string()]);
    }

    #[test]
    fn stores_before_any_load_take_nothing() {
        let mut l = Loads::new();
        assert!(!l.core_store(C));
        assert_eq!(l.domain_of(C), UNMAPPED);
        l.begin();
        assert!(!l.core_store(0xffff_8880_0000_0000));
        assert!(l.core_store(C));
    }

    #[test]
    fn places_follow_the_x86_64_memory_map() {
        assert_eq!(Place::of(0x7fff_ffff_ffff), Place::User);
        assert_eq!(Place::of(0xffff_8880_1234_0000), Place::DirectMap);
        assert_eq!(Place::of(0xffff_c900_0001_0000), Place::Vmalloc);
        assert_eq!(Place::of(0xffff_ea00_0000_0040), Place::Vmemmap);
        assert_eq!(Place::of(0xffff_ffff_8100_0000), Place::Image);
        assert_eq!(Place::of(0xffff_ffff_c000_0000), Place::Modules);
        assert_eq!(Place::of(0xffff_fe00_0000_0000), Place::OtherKernel);
        for p in [Place::User, Place::Vmalloc, Place::Modules] {
            assert_eq!(Place::from_code(p.code()), Some(p));
        }
        assert_eq!(Place::from_code(0), None);
        assert_eq!(Place::from_code(0xffff_ffff_8100_0000), None);
    }
}
