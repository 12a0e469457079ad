//! The QEMU side: arguments, the translation callback that instruments each block, and the
//! exit callback that writes the recording.
//!
//! Arguments: `out=FILE` (the recording), `stream=FILE` (optional: the access stream of the
//! module code, see [`crate::recorder`]) and `loader=HEX`, the address of the kernel's
//! `load_module` (with `nokaslr`, the same in every boot of one kernel image): each time a
//! vCPU enters it, a module load begins ([`Loads::begin`]), and the core kernel's stores
//! into the module area show where the module goes ([`Loads::core_store`]).
//!
//! Each translated block gets an execution callback that hands the vCPU's [`Shard`] the
//! block's domain (as [`Loads`] knew it at translation: QEMU translates a block again when
//! its code changes, as it does when a new module's code is copied into freed memory),
//! first address, instruction count and last instruction; each kernel instruction gets a
//! memory callback that passes on the accesses [`wanted`] keeps, with the target's domain as
//! [`Loads`] knows it now. QEMU calls a vCPU's callbacks from that vCPU's thread, so each
//! vCPU's shard sits behind its own lock, which no other thread takes until exit; the
//! module memory map is one, behind a lock taken only while a module loads, and each vCPU
//! reads its own copy of the latest version.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use qemu_plugin::install::{Args, Info};
use qemu_plugin::plugin::{HasCallbacks, Register};
use qemu_plugin::{MemRW, PluginId, TranslationBlock, register};

use crate::map::{CORE, FIRST_MODULE, Loads, Place, layout};
use crate::recorder::{STREAM_MAGIC, Shard, StreamKind, stream_record, wanted};

/// vCPUs the plugin keeps apart; a higher index is not recorded (and counted).
const MAX_VCPUS: usize = 64;

/// A vCPU's shard and its copy of the module memory map.
#[derive(Debug, Default)]
struct Local {
    shard: Shard,
    view: Arc<Loads>,
    /// The version of `view`.
    version: u64,
}

#[derive(Debug)]
struct State {
    /// `load_module`'s address (0: none given, and no module is ever seen).
    loader: u64,
    /// The module memory map, changed only while a module loads.
    loads: Mutex<Loads>,
    /// Whether a load is taking pages (so stores and module code must be looked at).
    taking: AtomicBool,
    /// The latest copy of `loads`, and its version.
    view: RwLock<Arc<Loads>>,
    version: AtomicU64,
    locals: Box<[Mutex<Local>]>,
    out: PathBuf,
    /// The access stream, if asked for.
    stream: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// The vCPU's local state, its view brought up to date.
    fn local(&self, vcpu: u32) -> Option<MutexGuard<'_, Local>> {
        let mut l = lock(self.locals.get(usize::try_from(vcpu).ok()?)?);
        let now = self.version.load(Ordering::Acquire);
        if l.version != now {
            l.view = self.current();
            l.version = now;
        }
        Some(l)
    }

    fn current(&self) -> Arc<Loads> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `loads` the latest view.
    fn publish(&self, loads: &Loads) {
        let mut v = self.view.write().unwrap_or_else(PoisonError::into_inner);
        *v = Arc::new(loads.clone());
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// A vCPU entered `load_module`.
    fn load_begins(&self) {
        let mut l = lock(&self.loads);
        if l.begin().is_some() {
            self.taking.store(true, Ordering::Release);
            self.publish(&l);
        }
    }

    /// The core kernel stored at `addr` while a load takes pages.
    fn core_store(&self, addr: u64) {
        let mut l = lock(&self.loads);
        if l.core_store(addr) {
            self.publish(&l);
        }
    }

    /// Appends a record to the access stream, if there is one (a vCPU past 255 is not
    /// streamed).
    fn emit(&self, vcpu: u32, dom: u16, kind: StreamKind, size: u16, addr: u64) {
        if let (Some(s), Ok(v)) = (&self.stream, u8::try_from(vcpu)) {
            let r = stream_record(v, dom, kind, size, addr);
            // A write error shows at the flush at exit.
            let _ = std::io::Write::write_all(&mut *lock(s), &r);
        }
    }

    /// Module code of `dom` ran while a load takes pages.
    fn module_ran(&self, dom: u16) {
        let mut l = lock(&self.loads);
        l.ran(dom);
        self.taking.store(l.taking(), Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct MmpPlugin {
    state: Option<Arc<State>>,
}

fn setting<'a>(args: &'a Args, key: &str) -> Option<&'a str> {
    args.raw
        .iter()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
}

impl Register for MmpPlugin {
    fn register(&mut self, id: PluginId, args: &Args, _info: &Info) -> qemu_plugin::Result<()> {
        // A bad argument ends QEMU with the reason: returning an error would make the
        // plugin crate panic inside QEMU's loader.
        let fail = |why: String| -> ! {
            eprintln!("mmp-qemu-plugin: {why}");
            std::process::exit(1)
        };
        let Some(out) = setting(args, "out") else {
            fail("needs out=FILE (and loader=HEX, the address of load_module)".into())
        };
        let loader = match setting(args, "loader") {
            Some(h) => u64::from_str_radix(h.trim_start_matches("0x"), 16)
                .unwrap_or_else(|_| fail(format!("loader={h}: not a hexadecimal address"))),
            None => 0,
        };
        // Fail now, not after the run, if the recording cannot be written.
        if let Err(e) = std::fs::write(out, b"") {
            fail(format!("{out}: {e}"))
        }
        let stream = setting(args, "stream").map(|path| {
            let mut f = std::fs::File::create(path)
                .map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
                .unwrap_or_else(|e| fail(format!("{path}: {e}")));
            if let Err(e) = std::io::Write::write_all(&mut f, STREAM_MAGIC) {
                fail(format!("{path}: {e}"))
            }
            Mutex::new(f)
        });
        let state = Arc::new(State {
            loader,
            loads: Mutex::new(Loads::new()),
            taking: AtomicBool::new(false),
            view: RwLock::new(Arc::new(Loads::new())),
            version: AtomicU64::new(0),
            locals: (0..MAX_VCPUS)
                .map(|_| Mutex::new(Local::default()))
                .collect(),
            out: PathBuf::from(out),
            stream,
        });
        self.state = Some(state.clone());
        qemu_plugin::qemu_plugin_register_atexit_cb(id, move |_| write(&state))?;
        Ok(())
    }
}

fn write(state: &State) {
    let mut all = Shard::default();
    let mut vcpus = 0;
    for l in state.locals.iter() {
        let mut l = lock(l);
        l.shard.close();
        if l.shard.insns > 0 {
            vcpus += 1;
        }
        all.merge(&l.shard);
    }
    if let Some(s) = &state.stream
        && let Err(e) = std::io::Write::flush(&mut *lock(s))
    {
        eprintln!("mmp-qemu-plugin: the access stream: {e}");
    }
    let loads = lock(&state.loads).clone();
    let result = std::fs::File::create(&state.out).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        all.write(&loads, vcpus, &mut w)?;
        std::io::Write::flush(&mut w)
    });
    match result {
        Ok(()) => eprintln!(
            "mmp-qemu-plugin: {} module loads, {} instructions, {} domain-change edges, {} access keys -> {}",
            loads.loads(),
            all.insns,
            all.changes.len(),
            all.accesses.len(),
            state.out.display()
        ),
        Err(e) => eprintln!("mmp-qemu-plugin: {}: {e}", state.out.display()),
    }
}

impl HasCallbacks for MmpPlugin {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> qemu_plugin::Result<()> {
        let Some(state) = self.state.clone() else {
            return Ok(());
        };
        let first = tb.vaddr();
        let Ok(n) = u32::try_from(tb.size()) else {
            return Ok(());
        };
        let mut last = first;
        let mut bytes = 0usize;
        let dom = state.current().domain_of(first);
        for insn in tb.instructions() {
            let pc = insn.vaddr();
            last = pc;
            bytes += insn.size();
            if pc < layout::KERNEL_HALF {
                continue;
            }
            let st = state.clone();
            insn.register_memory_access_callback(
                move |vcpu, info, addr| {
                    let modules = Place::of(addr) == Place::Modules;
                    if dom == CORE
                        && modules
                        && info.is_store()
                        && st.taking.load(Ordering::Acquire)
                    {
                        st.core_store(addr);
                    }
                    if dom >= FIRST_MODULE {
                        let kind = if info.is_store() {
                            StreamKind::Store
                        } else {
                            StreamKind::Load
                        };
                        st.emit(vcpu, dom, kind, 1 << info.size_shift(), addr);
                    }
                    if wanted(dom, addr)
                        && let Some(mut l) = st.local(vcpu)
                    {
                        let owner = l.view.domain_of(addr);
                        let size = 1 << info.size_shift();
                        l.shard.access(dom, pc, owner, addr, size, info.is_store());
                    }
                },
                MemRW::QEMU_PLUGIN_MEM_RW,
            );
        }
        let begins = state.loader != 0 && first == state.loader;
        let bytes = u16::try_from(bytes).unwrap_or(u16::MAX);
        tb.register_execute_callback(move |vcpu| {
            if begins {
                state.load_begins();
            }
            if dom >= FIRST_MODULE && state.taking.load(Ordering::Acquire) {
                state.module_ran(dom);
            }
            if dom >= FIRST_MODULE {
                state.emit(vcpu, dom, StreamKind::Fetch, bytes, first);
            }
            if let Some(mut l) = state.local(vcpu) {
                l.shard.block(dom, first, n, last);
            }
        });
        Ok(())
    }
}

register!(MmpPlugin::default());
