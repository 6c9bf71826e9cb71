//! A machine: one booted instance of the memory subsystem on one [`Platform`].
//!
//! [`Machine::boot`] does what Linux's `setup_arch` → `mm_core_init` path does for memory:
//! read the firmware map, register RAM with memblock, reserve the first MiB, the kernel image
//! and the memmap, initialise every `struct page`, set up the zones (spans, watermarks,
//! `lowmem_reserve`, per-CPU list sizes), and hand all free memory to the buddy allocator
//! (`memblock_free_all`). The machine's own state ([`MmState`]) lives in memory taken from
//! memblock, like Linux's `pglist_data`, so it never moves: free-list heads can point at
//! themselves.
//!
//! # Locking (order, outermost first)
//! 1. a CPU section ([`crate::platform::CpuGuard`]): per-CPU page lists;
//! 2. a zone lock ([`crate::mmzone::Zone::free`]): that zone's free areas;
//! 3. the memblock lock, then the log lock: leaves, never held while taking another lock.
//!
//! Reports (bad page state, allocation failures) are printed after the zone lock is dropped.

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

use kds::list::ListHead;

use crate::addr::{Pfn, PhysAddr, VirtAddr, NR_PAGE_ORDERS, PAGE_SHIFT, PAGE_SIZE};
use crate::arch::{AddrTranslation, Arch, E820Table, E820Type, TranslationRegion};
use crate::memblock::{Memblock, MemblockError};
use crate::mm_types::{pg, Page, PagePtr, PAGE_TYPE_NONE};
use crate::mmzone::{
    FreeArea, MigrateType, PerCpuPages, Zone, ZoneFree, ZoneGeometry, ZoneStats, ZoneType,
    MIGRATE_TYPES, NR_ZONE_KINDS, PAGEBLOCK_NR_PAGES,
};
use crate::page_alloc::cpu_dead_state;
use crate::platform::{CpuDeadHook, LogLevel, Platform};
use crate::printk::{LineBuf, LogBuf, CONSOLE_LOGLEVEL_DEFAULT, LOG_BUF_LEN};

/// The sections of the kernel image, for the `Memory:` line.
#[derive(Clone, Copy, Debug)]
pub struct KernelImage {
    /// Physical load address.
    pub start: PhysAddr,
    /// Text bytes.
    pub code: u64,
    /// Read-write data bytes.
    pub rwdata: u64,
    /// Read-only data bytes.
    pub rodata: u64,
    /// Init sections bytes.
    pub init: u64,
    /// BSS bytes.
    pub bss: u64,
}

impl KernelImage {
    /// Total bytes.
    pub fn size(&self) -> u64 {
        self.code + self.rwdata + self.rodata + self.init + self.bss
    }
    /// A typical image for a simulated machine, loaded at 16 MiB
    /// (`CONFIG_PHYSICAL_START`), scaled down on small machines.
    pub fn simulated(arch: Arch, ram: u64) -> KernelImage {
        const K: u64 = 1024;
        let (code, rw, ro, init, bss) = match arch {
            Arch::X86_64 => (16384 * K, 2560 * K, 6144 * K, 2048 * K, 3072 * K),
            Arch::I386 => (8192 * K, 1024 * K, 3072 * K, 1024 * K, 1024 * K),
        };
        let total = code + rw + ro + init + bss;
        let cap = ram / 16;
        let scale = |v: u64| {
            if total <= cap {
                v
            } else {
                (v * cap / total) & !0xfff
            }
        };
        KernelImage {
            start: PhysAddr::new(16 << 20),
            code: scale(code),
            rwdata: scale(rw),
            rodata: scale(ro),
            init: scale(init),
            bss: scale(bss),
        }
    }
}

/// What to boot.
#[derive(Clone, Copy, Debug)]
pub struct BootParams<'a> {
    /// Architecture.
    pub arch: Arch,
    /// The firmware memory map.
    pub e820: E820Table,
    /// Online CPUs (sizes per-CPU tunables; at most the platform's possible CPUs).
    pub nr_cpus: usize,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The kernel image; `None` simulates one at 16 MiB.
    pub kernel: Option<KernelImage>,
    /// Extra ranges to reserve (a bare-metal kernel's page tables, initrd…).
    pub reserve: &'a [(PhysAddr, u64)],
}

impl<'a> BootParams<'a> {
    /// Parameters for a simulated QEMU `pc` machine with `mem` bytes of RAM.
    ///
    /// # Errors
    /// [`BootError::TooLittleMemory`] below 16 MiB.
    pub fn simulated(arch: Arch, mem: u64, nr_cpus: usize) -> Result<Self, BootError> {
        if mem < (16 << 20) {
            return Err(BootError::TooLittleMemory);
        }
        let e820 = E820Table::qemu_pc(mem).ok_or(BootError::TooLittleMemory)?;
        Ok(Self {
            arch,
            e820,
            nr_cpus,
            cmdline: "",
            kernel: None,
            reserve: &[],
        })
    }
}

/// Why a boot failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// Not enough RAM for the kernel image and the memmap.
    TooLittleMemory,
    /// The firmware map has RAM beyond what the platform backs.
    RamNotBacked,
    /// memblock failed.
    Memblock(MemblockError),
    /// `nr_cpus` is zero or above the platform's possible CPUs.
    BadCpuCount,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::TooLittleMemory => f.write_str("too little memory to boot"),
            BootError::RamNotBacked => {
                f.write_str("firmware map has RAM the platform does not back")
            }
            BootError::Memblock(e) => write!(f, "{e}"),
            BootError::BadCpuCount => f.write_str("bad CPU count"),
        }
    }
}

impl From<MemblockError> for BootError {
    fn from(e: MemblockError) -> Self {
        BootError::Memblock(e)
    }
}

/// Counters of reports, like the kernel's taint flags.
#[derive(Default)]
pub struct Taint {
    /// `BUG:` reports (bad page state, slab corruption…).
    pub bugs: AtomicUsize,
    /// `WARNING:` reports and allocation-failure warnings.
    pub warnings: AtomicUsize,
}

/// The machine's state, in memblock memory. See the module documentation.
pub struct MmState<P: Platform> {
    /// The platform. Moved out and dropped by `Machine::drop`.
    pub(crate) plat: P,
    pub(crate) arch: Arch,
    pub(crate) nr_cpus: usize,
    pub(crate) possible_cpus: usize,
    pub(crate) e820: E820Table,
    pub(crate) memblock: lock_api::Mutex<P::RawLock, Memblock>,
    pub(crate) zones: [Zone<P::RawLock>; NR_ZONE_KINDS],
    /// The memmap: `struct page` for PFNs `0..max_pfn`.
    pub(crate) mem_map: *mut Page,
    pub(crate) max_pfn: Pfn,
    /// End of the direct map (physical).
    pub(crate) lowmem_end: PhysAddr,
    pub(crate) direct_map: *mut u8,
    pub(crate) translation: AddrTranslation,
    pub(crate) log: lock_api::Mutex<P::RawLock, LogBuf>,
    pub(crate) console_loglevel: AtomicU8,
    pub(crate) taint: Taint,
    pub(crate) node_stats: NodeStats,
    pub(crate) taint_flags: core::sync::atomic::AtomicU32,
    pub(crate) kernel: KernelImage,
    pub(crate) min_free_kbytes: AtomicUsize,
    /// `totalram_pages`.
    pub(crate) totalram: AtomicUsize,
    /// Present pages of all zones (`physpages` in the Memory: line).
    pub(crate) physpages: usize,
    pub(crate) jiffies_at_boot: u64,
    /// The slab allocator's machine-wide state (mm/slab_common.c).
    pub(crate) slab: crate::slab_common::SlabState<P::RawLock>,
    /// vmalloc, the kernel page tables and kmap (mm/vmalloc.c, mm/highmem.c).
    pub(crate) vm: crate::vmalloc::VmState<P::RawLock>,
}

// SAFETY: all raw pointers point into memblock memory owned by the machine; access follows
// the locking rules in the module documentation.
unsafe impl<P: Platform> Send for MmState<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for MmState<P> {}

/// One booted memory subsystem. See the module documentation.
pub struct Machine<P: Platform> {
    /// The state, in memblock memory; it owns the platform (`MmState::plat`), so that the
    /// CPU-dead hook, which only gets the state, can act as the machine.
    mm: NonNull<MmState<P>>,
}

impl<P: Platform> Drop for Machine<P> {
    fn drop(&mut self) {
        // SAFETY: the state is live until the platform goes; `plat` is read out exactly once
        // (here) and nothing touches the state afterwards. Dropping the platform releases the
        // memory the state lives in, so it must be moved out first.
        let plat = unsafe { core::ptr::read(core::ptr::addr_of!((*self.mm.as_ptr()).plat)) };
        drop(plat);
    }
}

// SAFETY: the state is Sync and Send (see MmState); the platform is Send + Sync by its trait.
unsafe impl<P: Platform> Send for Machine<P> {}
// SAFETY: as above.
unsafe impl<P: Platform> Sync for Machine<P> {}

impl<P: Platform> Machine<P> {
    /// Boots a machine on `plat`.
    ///
    /// # Errors
    /// See [`BootError`].
    pub fn boot(plat: P, params: &BootParams<'_>) -> Result<Self, BootError> {
        let arch = params.arch;
        if params.nr_cpus == 0 || params.nr_cpus > plat.possible_cpus() {
            return Err(BootError::BadCpuCount);
        }
        let ram_end = params.e820.ram_end();
        if ram_end > plat.phys_end().as_u64() {
            return Err(BootError::RamNotBacked);
        }
        let mut mb = Memblock::new();

        // e820 → memblock. The first page is BIOS-owned (arch/x86/kernel/setup.c
        // trim_bios_range) and 640K-1M is the legacy ROM area.
        for e in params.e820.entries() {
            if e.kind != E820Type::Ram {
                continue;
            }
            let mut start = e.addr.as_u64().max(PAGE_SIZE as u64);
            start = (start + PAGE_SIZE as u64 - 1) & !(PAGE_SIZE as u64 - 1);
            let end = e.end() & !(PAGE_SIZE as u64 - 1);
            // Drop the 0xa0000-0x100000 hole.
            let (a, b) = (0xa0000u64, 0x100000u64);
            for (s, t) in [(start, end.min(a)), (start.max(b), end)] {
                if t > s {
                    mb.add(PhysAddr::new(s), t - s)?;
                }
            }
        }
        let max_pfn = Pfn::new(
            mb.end_of_dram()
                .ok_or(BootError::TooLittleMemory)?
                .pfn()
                .as_u64(),
        );
        let lowmem_end = PhysAddr::new(arch.lowmem_limit(max_pfn.phys().as_u64()));

        // x86 reserves the first 1 MiB (arch/x86/kernel/setup.c, "x86/setup: Always reserve
        // the first 1M of RAM") and the kernel image.
        mb.reserve(PhysAddr::new(0), 1 << 20)?;
        let kernel = params
            .kernel
            .unwrap_or_else(|| KernelImage::simulated(arch, params.e820.ram_total()));
        mb.reserve(kernel.start, kernel.size())?;
        for (base, size) in params.reserve {
            mb.reserve(*base, *size)?;
        }
        // Everything allocated from here on must be reachable through the direct map.
        mb.current_limit = lowmem_end.as_u64();

        let direct_map = plat.direct_map_base();
        let possible_cpus = plat.possible_cpus();
        let alloc_raw =
            |mb: &mut Memblock, size: usize, align: usize| -> Result<*mut u8, BootError> {
                let pa = mb.phys_alloc(size as u64, align as u64)?;
                // SAFETY: memblock returned a range of RAM below the direct-map limit, which the
                // platform backs at `direct_map + pa`.
                Ok(unsafe { direct_map.add(pa.as_u64() as usize) })
            };
        // memblock_alloc: zeroed memory.
        let alloc = |mb: &mut Memblock, size: usize, align: usize| -> Result<*mut u8, BootError> {
            let p = alloc_raw(mb, size, align)?;
            // SAFETY: `p` is valid for `size` bytes (just allocated) and not yet used.
            unsafe { core::ptr::write_bytes(p, 0, size) };
            Ok(p)
        };

        let state_p = alloc(&mut mb, core::mem::size_of::<MmState<P>>(), 64)?.cast::<MmState<P>>();
        let log_p = alloc(&mut mb, LOG_BUF_LEN, PAGE_SIZE)?;
        let memmap_bytes = max_pfn.as_usize() * core::mem::size_of::<Page>();
        // memblock_alloc_raw: every entry is written by init_memmap below.
        let memmap_p = alloc_raw(&mut mb, memmap_bytes, PAGE_SIZE)?.cast::<Page>();
        plat.prefault(memmap_p.cast(), memmap_bytes);

        // Zone geometry.
        let mut geos = [ZoneGeometry::default(); NR_ZONE_KINDS];
        let mut prev_end = Pfn::new(0);
        let first_pfn = mb.start_of_dram().map(|a| a.pfn()).unwrap_or(Pfn::new(0));
        for &z in arch.zones() {
            let end = arch.zone_end_pfn(z, max_pfn);
            if end <= prev_end {
                continue;
            }
            let start = prev_end.max(first_pfn);
            let mut present = 0;
            for r in mb.memory.regions() {
                let (s, e) = (r.base.pfn().as_u64(), PhysAddr::new(r.end()).pfn().as_u64());
                let (s, e) = (s.max(start.as_u64()), e.min(end.as_u64()));
                if e > s {
                    present += e - s;
                }
            }
            geos[z.index()] = ZoneGeometry {
                start_pfn: start,
                spanned: end - start,
                present,
            };
            prev_end = end;
        }
        // Pageblock migratetype bytes and per-CPU lists for every populated zone.
        let mut pb = [(core::ptr::null_mut::<u8>(), 0usize); NR_ZONE_KINDS];
        let mut pcps = [core::ptr::null_mut::<PerCpuPages>(); NR_ZONE_KINDS];
        for z in ZoneType::ALL {
            let g = geos[z.index()];
            if g.present == 0 {
                continue;
            }
            let first = g.start_pfn.as_u64() & !(PAGEBLOCK_NR_PAGES as u64 - 1);
            let n = (g.end_pfn().as_u64() - first).div_ceil(PAGEBLOCK_NR_PAGES as u64) as usize;
            let p = alloc(&mut mb, n, 8)?;
            // SAFETY: `p` has `n` bytes; every pageblock starts MIGRATE_MOVABLE, as at boot in
            // Linux (memmap_init_range).
            unsafe { core::ptr::write_bytes(p, MigrateType::Movable as u8, n) };
            pb[z.index()] = (p, n);
            let bytes = possible_cpus * core::mem::size_of::<PerCpuPages>();
            pcps[z.index()] = alloc(&mut mb, bytes, 64)?.cast();
        }

        let translation = {
            let mut t = AddrTranslation::new();
            if let Some(vmemmap) = arch.vmemmap_base() {
                t.add(TranslationRegion {
                    real: memmap_p as usize,
                    model: vmemmap,
                    len: memmap_bytes as u64,
                });
            }
            t.add(TranslationRegion {
                real: direct_map as usize,
                model: arch.page_offset(),
                len: lowmem_end.as_u64(),
            });
            t
        };

        let zones: [Zone<P::RawLock>; NR_ZONE_KINDS] = core::array::from_fn(|i| Zone {
            kind: ZoneType::from_index(i),
            geo: geos[i],
            managed: AtomicUsize::new(0),
            watermark: Default::default(),
            lowmem_reserve: Default::default(),
            free: lock_api::Mutex::new(ZoneFree {
                area: core::array::from_fn(|_| FreeArea {
                    free_list: core::array::from_fn(|_| ListHead::new()),
                    nr_free_mt: [0; MIGRATE_TYPES],
                    nr_free: 0,
                }),
            }),
            stats: ZoneStats::default(),
            pageblock_mt: pb[i].0,
            nr_pageblocks: pb[i].1,
            pcp: pcps[i],
            pcp_batch: 0,
            pcp_high_min: 0,
            pcp_high_max: 0,
        });
        let physpages = geos.iter().map(|g| g.present as usize).sum();
        let state = MmState {
            arch,
            nr_cpus: params.nr_cpus,
            possible_cpus,
            e820: params.e820,
            memblock: lock_api::Mutex::new(Memblock::new()),
            zones,
            mem_map: memmap_p,
            max_pfn,
            lowmem_end,
            direct_map,
            translation,
            // SAFETY: `log_p` has LOG_BUF_LEN bytes from memblock, used only by this buffer.
            log: lock_api::Mutex::new(unsafe { LogBuf::new(log_p, LOG_BUF_LEN) }),
            console_loglevel: AtomicU8::new(CONSOLE_LOGLEVEL_DEFAULT),
            taint: Taint::default(),
            node_stats: NodeStats::default(),
            taint_flags: core::sync::atomic::AtomicU32::new(0),
            kernel,
            min_free_kbytes: AtomicUsize::new(0),
            totalram: AtomicUsize::new(0),
            physpages,
            jiffies_at_boot: plat.jiffies(),
            plat,
            slab: crate::slab_common::SlabState::new(),
            vm: crate::vmalloc::VmState::new(),
        };
        // SAFETY: `state_p` is a fresh, zeroed, suitably aligned allocation of the right size.
        unsafe { state_p.write(state) };
        // SAFETY: just written; non-null because it came from the direct map.
        let mm = unsafe { NonNull::new_unchecked(state_p) };
        let m = Machine { mm };
        m.init_lists();

        // The boot log, in Linux's words.
        m.printk(
            LogLevel::Notice,
            format_args!(
                "Linux version 6.18.0-kmem ({}) kmem {}{}",
                arch,
                env!("CARGO_PKG_VERSION"),
                if params.kernel.is_none() {
                    " simulated machine"
                } else {
                    ""
                }
            ),
        );
        m.printk(
            LogLevel::Info,
            format_args!("Command line: {}", params.cmdline),
        );
        m.printk(
            LogLevel::Info,
            format_args!("BIOS-provided physical RAM map:"),
        );
        for e in params.e820.entries() {
            m.printk(
                LogLevel::Info,
                format_args!(
                    "BIOS-e820: [mem {:#018x}-{:#018x}] {}",
                    e.addr.as_u64(),
                    e.end() - 1,
                    e.kind.name()
                ),
            );
        }
        m.printk(
            LogLevel::Info,
            format_args!(
                "last_pfn = {:#x} max_arch_pfn = {:#x}",
                max_pfn.as_u64(),
                match arch {
                    Arch::X86_64 => 0x4_0000_0000u64,
                    Arch::I386 => 0x10_0000,
                }
            ),
        );
        if arch == Arch::I386 {
            let high = max_pfn.phys().as_u64().saturating_sub(lowmem_end.as_u64());
            if high > 0 {
                m.printk(
                    LogLevel::Notice,
                    format_args!("{}MB HIGHMEM available.", high >> 20),
                );
            }
            m.printk(
                LogLevel::Notice,
                format_args!("{}MB LOWMEM available.", lowmem_end.as_u64() >> 20),
            );
            m.printk(
                LogLevel::Info,
                format_args!("  mapped low ram: 0 - {:08x}", lowmem_end.as_u64()),
            );
            m.printk(
                LogLevel::Info,
                format_args!("  low ram: 0 - {:08x}", lowmem_end.as_u64()),
            );
        }
        if params
            .cmdline
            .split_whitespace()
            .any(|w| w == "memblock=debug")
        {
            let mut dump = crate::printk::LineBuf::new();
            let _ = mb.dump(&mut LinesTo(&m, &mut dump));
        }
        m.print_zone_ranges(&mb);

        // memmap_init: every struct page starts reserved with one reference, in its zone.
        m.init_memmap();

        // Per-zone tunables, then memblock_free_all.
        *m.mm().memblock.lock() = mb;
        m.free_all_bootmem();
        m.setup_per_zone_wmarks_and_reserves();
        m.setup_pcp_sizes();
        m.print_memory_line();

        // kmem_cache_init (mm_core_init → kmem_cache_init): the slab allocator.
        m.kmem_cache_init(params.cmdline)
            .map_err(|_| BootError::TooLittleMemory)?;
        // vmalloc_init (mm_core_init → vmalloc_init): kernel page tables and vmalloc space.
        m.vmalloc_init();

        m.platform().set_cpu_dead_hook(CpuDeadHook {
            ctx: m.mm.as_ptr() as *const (),
            func: cpu_dead_trampoline::<P>,
        });
        Ok(m)
    }

    /// The platform.
    #[inline]
    pub fn platform(&self) -> &P {
        &self.mm().plat
    }

    #[inline]
    pub(crate) fn mm(&self) -> &MmState<P> {
        // SAFETY: `mm` points at the state written at boot, which lives in platform memory
        // for as long as `self` (and so the platform) lives.
        unsafe { self.mm.as_ref() }
    }

    /// The architecture.
    #[inline]
    pub fn arch(&self) -> Arch {
        self.mm().arch
    }
    /// Online CPUs.
    #[inline]
    pub fn nr_cpus(&self) -> usize {
        self.mm().nr_cpus
    }
    /// The firmware map the machine booted with.
    pub fn e820(&self) -> &E820Table {
        &self.mm().e820
    }
    /// The highest PFN plus one (`max_pfn`).
    #[inline]
    pub fn max_pfn(&self) -> Pfn {
        self.mm().max_pfn
    }
    /// The end of the direct map (`max_low_pfn` as an address).
    #[inline]
    pub fn lowmem_end(&self) -> PhysAddr {
        self.mm().lowmem_end
    }
    /// A zone by kind.
    #[inline]
    pub fn zone(&self, kind: ZoneType) -> &Zone<P::RawLock> {
        &self.mm().zones[kind.index()]
    }
    /// The configured zones, lowest first.
    pub fn zones(&self) -> impl Iterator<Item = &Zone<P::RawLock>> + '_ {
        self.arch().zones().iter().map(move |z| self.zone(*z))
    }
    /// Runs `f` with the memblock allocator (kept after boot, like `ARCH_KEEP_MEMBLOCK`).
    pub fn with_memblock<R>(&self, f: impl FnOnce(&mut Memblock) -> R) -> R {
        f(&mut self.mm().memblock.lock())
    }
    /// Report counters.
    pub fn taint(&self) -> &Taint {
        &self.mm().taint
    }
    /// `BUG:` reports so far.
    pub fn bug_count(&self) -> usize {
        self.mm().taint.bugs.load(Ordering::Relaxed)
    }
    /// `WARNING:` reports so far (allocation failures included).
    pub fn warn_count(&self) -> usize {
        self.mm().taint.warnings.load(Ordering::Relaxed)
    }
    /// `totalram_pages()`.
    pub fn totalram_pages(&self) -> usize {
        self.mm().totalram.load(Ordering::Relaxed)
    }
    /// Pages currently allocated from the page allocator (not on any free or pcp list).
    pub fn pages_in_use(&self) -> isize {
        self.arch()
            .zones()
            .iter()
            .map(|z| self.zone_pages_in_use(*z))
            .sum::<isize>()
    }
    /// The kernel image description.
    pub fn kernel_image(&self) -> KernelImage {
        self.mm().kernel
    }
    /// `min_free_kbytes`.
    pub fn min_free_kbytes(&self) -> usize {
        self.mm().min_free_kbytes.load(Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- memory model

    /// `pfn_to_page`: the `struct page` of a PFN below `max_pfn`.
    #[inline]
    pub fn pfn_to_page(&self, pfn: Pfn) -> Option<PagePtr> {
        if pfn < self.mm().max_pfn {
            // SAFETY: the memmap has `max_pfn` entries.
            Some(unsafe {
                PagePtr::from_raw(NonNull::new_unchecked(
                    self.mm().mem_map.add(pfn.as_usize()),
                ))
            })
        } else {
            None
        }
    }
    /// `pfn_to_page` without the bounds check.
    ///
    /// # Safety
    /// `pfn` must be below [`Machine::max_pfn`].
    #[inline]
    pub unsafe fn pfn_to_page_unchecked(&self, pfn: Pfn) -> PagePtr {
        // SAFETY: caller guarantees `pfn < max_pfn`.
        unsafe {
            PagePtr::from_raw(NonNull::new_unchecked(
                self.mm().mem_map.add(pfn.as_usize()),
            ))
        }
    }
    /// `page_to_pfn`.
    #[inline]
    pub fn page_to_pfn(&self, page: PagePtr) -> Pfn {
        let off =
            (page.as_ptr() as usize - self.mm().mem_map as usize) / core::mem::size_of::<Page>();
        Pfn::new(off as u64)
    }
    /// Whether a pointer is a `struct page` of this machine's memmap.
    pub fn is_memmap_ptr(&self, p: *const Page) -> bool {
        let base = self.mm().mem_map as usize;
        let a = p as usize;
        a >= base
            && a < base + self.mm().max_pfn.as_usize() * core::mem::size_of::<Page>()
            && (a - base).is_multiple_of(core::mem::size_of::<Page>())
    }
    /// `__va`: the direct-map address of a physical address, if it is in the direct map
    /// (lowmem).
    #[inline]
    pub fn phys_to_virt(&self, pa: PhysAddr) -> Option<VirtAddr> {
        if pa < self.mm().lowmem_end {
            Some(VirtAddr::new(
                self.mm().direct_map as usize + pa.as_u64() as usize,
            ))
        } else {
            None
        }
    }
    /// `__pa`: the physical address of a direct-map address.
    #[inline]
    pub fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        let base = self.mm().direct_map as usize;
        let a = va.as_usize();
        if a >= base && ((a - base) as u64) < self.mm().lowmem_end.as_u64() {
            Some(PhysAddr::new((a - base) as u64))
        } else {
            None
        }
    }
    /// `virt_to_page`.
    #[inline]
    pub fn virt_to_page(&self, va: VirtAddr) -> Option<PagePtr> {
        self.virt_to_phys(va)
            .and_then(|pa| self.pfn_to_page(pa.pfn()))
    }
    /// `page_address`: the direct-map address of a page; `None` for a HighMem page.
    #[inline]
    pub fn page_address(&self, page: PagePtr) -> Option<VirtAddr> {
        self.phys_to_virt(self.page_to_pfn(page).phys())
    }
    /// The real address of physical memory whether or not it is in the direct map (HighMem
    /// included): what kmap and the hosted platform's mirrors use.
    ///
    /// # Safety
    /// The caller must only access memory it owns, and only below `phys_end`.
    #[inline]
    pub unsafe fn phys_to_real(&self, pa: PhysAddr) -> *mut u8 {
        // SAFETY: within the platform's mapping by the caller's guarantee.
        unsafe { self.mm().direct_map.add(pa.as_u64() as usize) }
    }
    /// The model address (the machine's own layout) of a real address, for display.
    #[inline]
    pub fn to_model(&self, real: usize) -> u64 {
        self.mm().translation.to_model(real)
    }
    /// The real address of a model address, if one of the machine's regions covers it.
    #[inline]
    pub fn from_model(&self, model: u64) -> Option<usize> {
        self.mm().translation.from_model(model)
    }
    /// Adds a region to the model-address translation (vmalloc space, kmap windows…).
    pub fn add_translation(&self, r: TranslationRegion) -> bool {
        // SAFETY: the translation table is only extended during setup by the owner of the
        // machine before other threads use the new region; readers see either the old or
        // the new length (a single word write of `len` after the entry).
        let t = unsafe { &mut *core::ptr::addr_of!(self.mm().translation).cast_mut() };
        t.add(r)
    }

    // ---------------------------------------------------------------- printk

    /// Logs one line at `level` (`printk`). Lines longer than 1 KiB are cut.
    pub fn printk(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        let mut line = LineBuf::new();
        let _ = line.write_fmt(args);
        let ts = self.timestamp_ns();
        self.mm().log.lock().push(level as u8, ts, line.as_str());
        if (level as u8) < self.mm().console_loglevel.load(Ordering::Relaxed) {
            let _ = line.write_str("\n");
            self.platform().console_write(level, line.as_str());
        }
    }
    /// Nanoseconds since boot by the platform's clock.
    pub fn timestamp_ns(&self) -> u64 {
        let j = self
            .platform()
            .jiffies()
            .saturating_sub(self.mm().jiffies_at_boot);
        j * (1_000_000_000 / self.platform().hz().max(1))
    }
    /// Sets the console log level: records below it are echoed to the console.
    pub fn set_console_loglevel(&self, level: u8) {
        self.mm().console_loglevel.store(level, Ordering::Relaxed);
    }
    /// Writes the log as `dmesg` shows it (with timestamps when `timestamps`).
    pub fn dmesg(&self, out: &mut dyn Write, timestamps: bool) -> fmt::Result {
        let log = self.mm().log.lock();
        let mut res = Ok(());
        log.for_each(|_, ts, line| {
            if res.is_ok() {
                if timestamps {
                    res = crate::printk::write_timestamp(out, ts).and_then(|_| out.write_str(" "));
                }
                if res.is_ok() {
                    res = writeln!(out, "{line}");
                }
            }
        });
        res
    }
    /// Empties the log (`dmesg -C`).
    pub fn dmesg_clear(&self) {
        self.mm().log.lock().clear();
    }

    // ---------------------------------------------------------------- boot helpers

    fn init_lists(&self) {
        for z in &self.mm().zones {
            let mut free = z.free.lock();
            for area in free.area.iter_mut() {
                for l in area.free_list.iter_mut() {
                    // SAFETY: the list head is inside the machine state, which never moves.
                    unsafe { ListHead::init(l) };
                }
            }
            if z.pcp.is_null() {
                continue;
            }
            for cpu in 0..self.mm().possible_cpus {
                // SAFETY: boot runs alone; nobody else uses per-CPU data yet.
                let p = unsafe { z.pcp_of(cpu) };
                for l in p.lists.iter_mut() {
                    // SAFETY: as above.
                    unsafe { ListHead::init(l) };
                }
            }
        }
    }

    fn print_zone_ranges(&self, mb: &Memblock) {
        self.printk(LogLevel::Info, format_args!("Zone ranges:"));
        for &z in self.arch().zones() {
            let g = self.zone(z).geo;
            if z == ZoneType::Movable {
                continue;
            }
            if g.spanned == 0 {
                self.printk(LogLevel::Info, format_args!("  {:<8} empty", z.name()));
            } else {
                self.printk(
                    LogLevel::Info,
                    format_args!(
                        "  {:<8} [mem {:#018x}-{:#018x}]",
                        z.name(),
                        g.start_pfn.phys().as_u64(),
                        g.end_pfn().phys().as_u64() - 1
                    ),
                );
            }
        }
        self.printk(
            LogLevel::Info,
            format_args!("Movable zone start for each node"),
        );
        self.printk(LogLevel::Info, format_args!("Early memory node ranges"));
        for r in mb.memory.regions() {
            self.printk(
                LogLevel::Info,
                format_args!(
                    "  node   0: [mem {:#018x}-{:#018x}]",
                    r.base.as_u64(),
                    r.end() - 1
                ),
            );
        }
        if let (Some(s), Some(e)) = (mb.start_of_dram(), mb.end_of_dram()) {
            self.printk(
                LogLevel::Info,
                format_args!(
                    "Initmem setup node 0 [mem {:#018x}-{:#018x}]",
                    s.as_u64(),
                    e.as_u64() - 1
                ),
            );
        }
        let total: u64 = self.zones().map(|z| z.geo.present).sum();
        self.printk(
            LogLevel::Info,
            format_args!("Built 1 zonelists, mobility grouping on.  Total pages: {total}"),
        );
    }

    fn init_memmap(&self) {
        let mm = self.mm();
        // Hole pages below the first zone belong to the lowest zone, as in Linux.
        let mut start = 0u64;
        for &z in mm.arch.zones() {
            let g = self.zone(z).geo;
            if g.spanned == 0 {
                continue;
            }
            let end = g.end_pfn().as_u64();
            let template = Page {
                flags: pg::RESERVED | ((z as u64) << pg::ZONE_SHIFT),
                lru: ListHead::new(),
                compound_head: 0,
                mapping: 0,
                index: 0,
                private: 0,
                page_type: PAGE_TYPE_NONE,
                refcount: core::sync::atomic::AtomicI32::new(1),
            };
            for pfn in start..end.min(mm.max_pfn.as_u64()) {
                // SAFETY: `pfn < max_pfn`; boot runs alone, the entry is ours to initialise.
                unsafe {
                    mm.mem_map.add(pfn as usize).write(Page {
                        refcount: core::sync::atomic::AtomicI32::new(1),
                        ..core::ptr::read(&template)
                    })
                };
            }
            start = end;
        }
    }

    /// `memblock_free_all`: every free memblock range goes to the buddy allocator.
    fn free_all_bootmem(&self) {
        let mb = self.mm().memblock.lock();
        let mut total = 0usize;
        for r in mb.free_ranges() {
            let start = r.base.as_u64().div_ceil(PAGE_SIZE as u64);
            let end = r.end() >> PAGE_SHIFT;
            if end > start {
                total += self.free_boot_range(Pfn::new(start), Pfn::new(end));
            }
        }
        drop(mb);
        self.mm().totalram.store(total, Ordering::Relaxed);
    }

    // ---------------------------------------------------------------- CPU hotplug

    /// Drains and forgets the per-CPU state of `cpu` (what CPU hot-unplug does). The
    /// platform calls this through the CPU-dead hook; it is public for platforms that take
    /// CPUs offline by other means.
    ///
    /// # Safety
    /// No thread may be inside a CPU section for `cpu` during the call.
    pub unsafe fn cpu_dead(&self, cpu: usize) {
        // SLUB first (`slub_cpu_dead`): deactivating the CPU's slabs may free pages, which
        // must not land on lists of the CPU being drained afterwards (`page_alloc_cpu_dead`).
        // SAFETY: forwarded.
        unsafe { crate::slub::cpu_dead(self, cpu) };
        // SAFETY: forwarded.
        unsafe { cpu_dead_state(self.mm(), cpu) }
    }
}

/// A writer that sends each completed line to printk (for multi-line dumps at boot).
struct LinesTo<'a, P: Platform>(&'a Machine<P>, &'a mut LineBuf);

impl<P: Platform> Write for LinesTo<'_, P> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, part) in s.split('\n').enumerate() {
            if i > 0 {
                self.0
                    .printk(LogLevel::Info, format_args!("{}", self.1.as_str()));
                self.1.clear();
            }
            self.1.write_str(part)?;
        }
        Ok(())
    }
}

/// Node counters other subsystems (slab, page tables, vmalloc) report to /proc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStat {
    /// `NR_SLAB_RECLAIMABLE_B` in pages.
    SlabReclaimable,
    /// `NR_SLAB_UNRECLAIMABLE_B` in pages.
    SlabUnreclaimable,
    /// `NR_PAGETABLE`.
    PageTables,
    /// Pages mapped by vmalloc.
    VmallocPages,
}

/// Counters for [`NodeStat`], updated by the subsystems that own them.
#[derive(Default)]
pub struct NodeStats {
    /// One counter per [`NodeStat`].
    pub counters: [AtomicIsize; 4],
}

impl<P: Platform> Machine<P> {
    /// Adds `delta` pages to a node counter.
    #[inline]
    pub fn mod_node_stat(&self, which: NodeStat, delta: isize) {
        self.mm().node_stats.counters[which as usize].fetch_add(delta, Ordering::Relaxed);
    }
    /// A node counter in pages.
    pub fn node_stat_hook(&self, which: NodeStat) -> usize {
        self.mm().node_stats.counters[which as usize]
            .load(Ordering::Relaxed)
            .max(0) as usize
    }
}

/// Physical memory actually present (`physpages`) in KiB, etc.
pub(crate) const fn pages_to_kb(pages: usize) -> usize {
    pages << (PAGE_SHIFT - 10)
}

unsafe fn cpu_dead_trampoline<P: Platform>(ctx: *const (), cpu: usize) {
    // A borrowed view of the machine: `ManuallyDrop` so the platform is not dropped here.
    // SAFETY: `ctx` is the non-null MmState registered at boot; the platform calls the hook
    // only while the machine is alive.
    let mm = unsafe { NonNull::new_unchecked(ctx as *mut MmState<P>) };
    let m = core::mem::ManuallyDrop::new(Machine::<P> { mm });
    // SAFETY: `cpu` is unused during the call (CpuDeadHook contract).
    unsafe { m.cpu_dead(cpu) }
}

/// Orders used in tests and reports.
pub(crate) const ORDERS: usize = NR_PAGE_ORDERS;
