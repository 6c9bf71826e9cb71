//! Boot, below the page allocator (mm/mm_init.c, arch/x86/kernel/e820.c, setup.c): the
//! firmware map → memblock → zone sizes → memmap steps of `setup_arch` and `mm_core_init`.
//!
//! [`early_setup`] registers the firmware map's RAM with memblock, reserves what x86
//! reserves, and takes from memblock — in Linux's order, top-down from the direct-map limit —
//! the machine's state, the printk buffer, the memmap, pageblock migratetype bytes and
//! per-CPU page lists. [`memory_model`] and [`zones`] build the two lowest layers' values
//! from that; once the state sits at its final address, [`print_boot_log`] writes the
//! boot log's first part and [`memmap_init`] initialises every `struct page`. What follows
//! (`memblock_free_all`, watermarks, `kmem_cache_init`, `vmalloc_init`) belongs to the
//! layers above and is sequenced by [`crate::Machine::boot`].
//!
//! # Invariants
//! Runs on one thread, before the machine exists for anyone else; the pointers in
//! [`EarlyMemory`] are fresh memblock allocations nothing else uses.

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize};

use kds::list::ListHead;

use crate::addr::{Pfn, PhysAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::arch::{AddrTranslation, Arch, E820Table, E820Type, TranslationRegion};
use crate::locking::{
    Lock, CPUHP_STATE_MUTEX, LOGBUF_LOCK, MEMBLOCK_LOCK, MEM_HOTPLUG_LOCK, ZONE_LOCK,
};
use crate::memblock::{Memblock, MemblockError};
use crate::mm::cpuhp::CpuhpTable;
use crate::mm::mm_types::Page;
use crate::mm::printk::{LineBuf, LogBuf, CONSOLE_LOGLEVEL_DEFAULT, LOG_BUF_LEN};
use crate::mm::{KernelImage, LinesTo, MemoryModel, NodeStats, Taint};
use crate::mmzone::{
    FreeArea, MigrateType, PcpSlot, Zone, ZoneFree, ZoneGeometry, ZoneStats, ZoneType,
    MIGRATE_TYPES, NR_ZONE_KINDS, PAGEBLOCK_NR_PAGES,
};
use crate::platform::{LogLevel, Platform};
use crate::sparse::SectionTable;

mod movable;
mod numa;
mod sparse;

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
    /// The NUMA nodes (ACPI SRAT/SLIT, `--numa`); `None` for one node (or `numa=fake=N` on
    /// the command line).
    pub numa: Option<crate::numa::NumaTopology<'a>>,
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
            numa: None,
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
    /// The platform's vmemmap window could not be mapped.
    NoVmemmap,
    /// The NUMA topology is invalid (see [`crate::numa::NumaError`]), a node has no
    /// memory, or the architecture has no NUMA support in kmem.
    BadNumaTopology,
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
            BootError::NoVmemmap => f.write_str("could not map the virtual memory map"),
            BootError::BadNumaTopology => f.write_str("invalid NUMA topology"),
        }
    }
}

impl From<MemblockError> for BootError {
    fn from(e: MemblockError) -> Self {
        BootError::Memblock(e)
    }
}

/// What [`early_setup`] took from memblock and worked out, for the steps after it.
pub(crate) struct EarlyMemory {
    pub(crate) mb: Memblock,
    /// The kernel's e820 table: the firmware's after `trim_bios_range`.
    pub(crate) e820: E820Table,
    pub(crate) max_pfn: Pfn,
    pub(crate) lowmem_end: PhysAddr,
    pub(crate) kernel: KernelImage,
    pub(crate) geos: [ZoneGeometry; NR_ZONE_KINDS],
    /// The machine's state (`state_size` bytes, zeroed).
    pub(crate) state: *mut u8,
    log: *mut u8,
    memmap: sparse::BootMemmap,
    pageblocks: [(*mut u8, usize); NR_ZONE_KINDS],
    pcps: [*mut PcpSlot; NR_ZONE_KINDS],
    /// Slots in each of the `pcps` arrays (`possible_cpus`).
    pcp_cpus: usize,
    /// Pages taken for per-CPU data (the `pcps` arrays).
    percpu_pages: usize,
    /// RCU's per-CPU counters (`rcu_data`), `possible_cpus` entries, zeroed.
    rcu_cpus: *mut kds::rcu::RcuCpu,
    /// The nodes of a NUMA machine (`None`: one node).
    pub(crate) numa: Option<numa::EarlyNuma>,
    /// ZONE_MOVABLE at boot (`kernelcore=`, `movablecore=`, `movable_node`).
    movable: movable::BootMovable,
}

/// e820 → memblock: registers RAM (page-aligned, without page 0 and the 640K–1M hole),
/// reserves the first MiB, the kernel image and `params.reserve`, and limits later
/// allocations to the direct map. Returns memblock, `max_pfn`, the direct-map end and the
/// kernel image.
fn e820_memblock_setup(
    params: &BootParams<'_>,
    e820: &E820Table,
) -> Result<(Memblock, Pfn, PhysAddr, KernelImage), BootError> {
    let arch = params.arch;
    let mut mb = Memblock::new();
    // The first page is BIOS-owned (arch/x86/kernel/setup.c trim_bios_range) and 640K-1M is
    // the legacy ROM area.
    for e in e820.entries() {
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

    // x86 reserves the first 1 MiB (arch/x86/kernel/setup.c, "x86/setup: Always reserve the
    // first 1M of RAM") and the kernel image.
    mb.reserve(PhysAddr::new(0), 1 << 20)?;
    let kernel = params
        .kernel
        .unwrap_or_else(|| KernelImage::simulated(arch, params.e820.ram_total()));
    mb.reserve(kernel.start, kernel.size())?;
    for (base, size) in params.reserve {
        mb.reserve(*base, *size)?;
    }
    // Without firmware NUMA tables x86 fakes one node over all RAM (arch/x86/mm/numa.c
    // dummy_numa_init: numa_add_memblk(0, 0, PFN_PHYS(max_pfn)), then memblock_set_node on
    // memblock.memory); debugfs memblock/memory shows node 0 from then on.
    mb.set_node(
        PhysAddr::new(0),
        max_pfn.phys().as_u64(),
        crate::memblock::MemblockKind::Memory,
        0,
    )?;
    // Everything allocated from here on must be reachable through the direct map.
    mb.set_current_limit(lowmem_end);
    Ok((mb, max_pfn, lowmem_end, kernel))
}

/// The legacy BIOS area: 640 KiB to 1 MiB (`BIOS_BEGIN`, `BIOS_END`).
const BIOS_BEGIN: u64 = 0xa0000;
const BIOS_END: u64 = 0x10_0000;

/// `trim_bios_range` (arch/x86/kernel/setup.c): page 0 becomes reserved (the BIOS owns it)
/// and RAM claimed in 640 KiB–1 MiB is dropped. A table too full to split stays as it was.
fn trim_bios_range(firmware: &E820Table) -> E820Table {
    let mut t = *firmware;
    let _ = t.range_update(0, PAGE_SIZE as u64, E820Type::Ram, E820Type::Reserved);
    let _ = t.range_remove(BIOS_BEGIN, BIOS_END - BIOS_BEGIN, E820Type::Ram);
    t
}

/// Zone spans and present pages (`free_area_init` → `calculate_node_totalpages`).
fn zone_geometry(arch: Arch, mb: &Memblock, max_pfn: Pfn) -> [ZoneGeometry; NR_ZONE_KINDS] {
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
    geos
}

/// Allocations from memblock in the direct map (`memblock_alloc`, `memblock_alloc_raw`).
struct EarlyAlloc<'a, P: Platform> {
    direct_map: *mut u8,
    plat: &'a P,
}

impl<P: Platform> EarlyAlloc<'_, P> {
    /// `memblock_alloc_raw`: uninitialised memory.
    fn raw(&self, mb: &mut Memblock, size: usize, align: usize) -> Result<*mut u8, BootError> {
        let pa = mb.phys_alloc(size as u64, align as u64)?;
        // SAFETY: memblock returned a range of RAM below the direct-map limit, which the
        // platform backs at `direct_map + pa` (Platform's contract).
        Ok(unsafe { self.direct_map.add(pa.as_u64() as usize) })
    }

    /// `memblock_alloc`: zeroed memory. The whole pages inside the block are zeroed by the
    /// platform without backing them where it can ([`Platform::zero_unbacked`]), so a block
    /// of which only a part is ever written — a `per_cpu_pageset` for every possible CPU, the
    /// 128 KiB printk buffer — costs a host only the pages written; the rest is written
    /// with zeroes here.
    fn zeroed(&self, mb: &mut Memblock, size: usize, align: usize) -> Result<*mut u8, BootError> {
        let p = self.raw(mb, size, align)?;
        let start = p as usize;
        let end = start + size;
        let (first, last) = (start.next_multiple_of(PAGE_SIZE), end & !(PAGE_SIZE - 1));
        // SAFETY: `[first, last)` is whole pages inside the block memblock just gave us
        // (page aligned, in the direct map below its end), allocated to this caller alone, and
        // nothing refers to it yet.
        let unbacked =
            last > first && unsafe { self.plat.zero_unbacked(first as *mut u8, last - first) };
        // SAFETY: `p` is valid for `size` bytes (just allocated) and not yet used; when the
        // platform zeroed the interior pages, the writes cover only the head and the tail.
        unsafe {
            if unbacked {
                core::ptr::write_bytes(p, 0, first - start);
                core::ptr::write_bytes(last as *mut u8, 0, end - last);
            } else {
                core::ptr::write_bytes(p, 0, size);
            }
        }
        Ok(p)
    }
}

/// The `setup_arch` part of boot: memblock set up from the firmware map, then the machine's
/// state (`state_size` bytes, 64-aligned), the printk buffer, the memmap, pageblock bytes and
/// per-CPU lists allocated from it, in that order.
pub(crate) fn early_setup<P: Platform>(
    plat: &P,
    params: &BootParams<'_>,
    state_size: usize,
) -> Result<EarlyMemory, BootError> {
    if params.nr_cpus == 0 || params.nr_cpus > plat.possible_cpus() {
        return Err(BootError::BadCpuCount);
    }
    if params.e820.ram_end() > plat.phys_end().as_u64() {
        return Err(BootError::RamNotBacked);
    }
    let e820 = trim_bios_range(&params.e820);
    let (mut mb, max_pfn, lowmem_end, kernel) = e820_memblock_setup(params, &e820)?;
    let mut numa = numa::numa_init(params, &mut mb, max_pfn)?;
    let nr_nodes = numa.as_ref().map_or(1, |n| n.info.nr_nodes);
    let movable = movable::find_zone_movable_pfns_for_nodes(
        params.arch,
        params.cmdline,
        &mut mb,
        max_pfn,
        nr_nodes,
    );
    if let Some(n) = &mut numa {
        for nid in 0..nr_nodes {
            if let Some(g) = movable::node_zone_geos(params.arch, &mb, max_pfn, nid, &movable) {
                n.geos[nid] = g;
            }
        }
    }
    let ea = EarlyAlloc {
        direct_map: plat.direct_map_base(),
        plat,
    };
    let state = ea.zeroed(&mut mb, state_size, 64)?;
    let log = ea.zeroed(&mut mb, LOG_BUF_LEN, PAGE_SIZE)?;
    let memmap = sparse::sparse_init(plat, &ea, &mut mb, params.arch, max_pfn)?;

    let geos = match &numa {
        Some(n) => n.geos[0],
        None => movable::node_zone_geos(params.arch, &mb, max_pfn, 0, &movable)
            .unwrap_or_else(|| zone_geometry(params.arch, &mb, max_pfn)),
    };
    // Pageblock migratetype bytes and per-CPU lists for every populated zone.
    let mut pageblocks = [(core::ptr::null_mut::<u8>(), 0usize); NR_ZONE_KINDS];
    let mut pcps = [core::ptr::null_mut::<PcpSlot>(); NR_ZONE_KINDS];
    let mut percpu_pages = 0;
    // A platform that can grow gets per-CPU lists for the zones memory hotplug onlines into
    // (Linux sets them up in `online_pages` for a zone that was empty; kmem's allocation
    // paths read them without a lock, so they exist from boot).
    let hotplug = plat.max_phys_end() > plat.phys_end() && params.arch == Arch::X86_64;
    for z in ZoneType::ALL {
        let g = geos[z.index()];
        let hot_zone = hotplug && matches!(z, ZoneType::Normal | ZoneType::Movable);
        if g.present == 0 && !hot_zone {
            continue;
        }
        // SPARSEMEM keeps pageblock flags in the sections' usage blocks.
        if !memmap.sections.is_sparse() {
            let first = g.start_pfn.as_u64() & !(PAGEBLOCK_NR_PAGES as u64 - 1);
            let n = (g.end_pfn().as_u64() - first).div_ceil(PAGEBLOCK_NR_PAGES as u64) as usize;
            let p = ea.zeroed(&mut mb, n, 8)?;
            // SAFETY: `p` has `n` bytes; every pageblock starts MIGRATE_MOVABLE, as at boot in
            // Linux (memmap_init_range).
            unsafe { core::ptr::write_bytes(p, MigrateType::Movable as u8, n) };
            pageblocks[z.index()] = (p, n);
        }
        // The zone's per_cpu_pageset (setup_zone_pageset: alloc_percpu), one per possible
        // CPU.
        let bytes = plat.possible_cpus() * core::mem::size_of::<PcpSlot>();
        pcps[z.index()] = ea.zeroed(&mut mb, bytes, 64)?.cast();
        percpu_pages += bytes.div_ceil(PAGE_SIZE);
    }
    if let Some(n) = &mut numa {
        // The other nodes' zones' per_cpu_pageset, then their pglist_data (alloc_node_data).
        for nid in 1..n.info.nr_nodes {
            for z in ZoneType::ALL {
                // As node 0's: the zones hotplug onlines into get lists on a growable
                // platform.
                let hot_zone = hotplug && matches!(z, ZoneType::Normal | ZoneType::Movable);
                if n.geos[nid][z.index()].present == 0 && !hot_zone {
                    continue;
                }
                let bytes = plat.possible_cpus() * core::mem::size_of::<PcpSlot>();
                n.pcps[nid][z.index()] = ea.zeroed(&mut mb, bytes, 64)?.cast();
                percpu_pages += bytes.div_ceil(PAGE_SIZE);
            }
        }
        let bytes = core::mem::size_of::<crate::mmzone::NumaNodes<P::RawLock>>();
        n.nodes = ea.zeroed(&mut mb, bytes, 64)?;
    }
    let rcu_bytes = plat.possible_cpus() * core::mem::size_of::<kds::rcu::RcuCpu>();
    let rcu_cpus = ea.zeroed(&mut mb, rcu_bytes, 64)?.cast();
    // rcu_data is per-CPU data too (DEFINE_PER_CPU_SHARED_ALIGNED in kernel/rcu/tree.c).
    percpu_pages += rcu_bytes.div_ceil(PAGE_SIZE);
    Ok(EarlyMemory {
        mb,
        e820,
        max_pfn,
        lowmem_end,
        kernel,
        geos,
        state,
        log,
        memmap,
        pageblocks,
        pcps,
        pcp_cpus: plat.possible_cpus(),
        percpu_pages,
        rcu_cpus,
        numa,
        movable,
    })
}

/// [`MemoryModel::memmap_early`]: the boot sections with a memmap (FLATMEM: the sections
/// starting below `max_pfn`, whose memmap the array covers up to `max_pfn`; the boot direct
/// map's bound, `MemoryModel::memmap_early_end`, checked first, keeps lookups below it).
fn memmap_early(em: &EarlyMemory) -> [u64; crate::mm::EARLY_MEMMAP_SECTIONS / 64] {
    use crate::sparse::{section_nr_to_pfn, SECTION_HAS_MEM_MAP, SECTION_IS_EARLY};
    let mut bits = [0u64; crate::mm::EARLY_MEMMAP_SECTIONS / 64];
    let t = em.memmap.sections;
    let both = SECTION_HAS_MEM_MAP | SECTION_IS_EARLY;
    for nr in 0..crate::mm::EARLY_MEMMAP_SECTIONS {
        let has = if t.is_sparse() {
            t.section(nr).is_some_and(|s| s.flags() & both == both)
        } else {
            section_nr_to_pfn(nr) < em.max_pfn
        };
        if has {
            bits[nr / 64] |= 1 << (nr % 64);
        }
    }
    bits
}

/// The memory model layer's value (memblock itself is handed over later, after the boot
/// log has been printed from it).
pub(crate) fn memory_model<P: Platform>(
    plat: P,
    params: &BootParams<'_>,
    em: &EarlyMemory,
    lockdep: *const crate::locking::Lockdep,
    depot: crate::mm::stackdepot::StackDepot,
) -> MemoryModel<P> {
    let arch = params.arch;
    let direct_map = plat.direct_map_base();
    let mut translation = AddrTranslation::new();
    if let Some(vmemmap) = arch.vmemmap_base() {
        translation.add(TranslationRegion {
            real: em.memmap.memmap as usize,
            model: vmemmap,
            len: em.memmap.span as u64,
        });
    }
    translation.add(TranslationRegion {
        real: direct_map as usize,
        model: arch.page_offset(),
        len: em.lowmem_end.as_u64(),
    });
    MemoryModel {
        arch,
        nr_cpus: params.nr_cpus,
        possible_cpus: plat.possible_cpus(),
        e820: em.e820,
        memblock: Lock::new(&MEMBLOCK_LOCK, Memblock::new()),
        mem_map: em.memmap.memmap,
        sections: em.memmap.sections,
        memmap_phys: em.memmap.phys,
        vmemmap_mapped: em.memmap.vmemmap,
        pfn_limit: core::sync::atomic::AtomicU64::new(em.max_pfn.as_u64()),
        mem_hotplug: Lock::new(&MEM_HOTPLUG_LOCK, ()),
        memhp_default_online: AtomicU8::new(0),
        movable_node: em.movable.params.movable_node,
        max_pfn: em.max_pfn,
        lowmem_end: em.lowmem_end,
        direct_map_end: core::sync::atomic::AtomicU64::new(em.lowmem_end.as_u64()),
        direct_map,
        memmap_early: memmap_early(em),
        memmap_early_end: em
            .lowmem_end
            .as_u64()
            .min((crate::mm::EARLY_MEMMAP_SECTIONS as u64) << crate::sparse::SECTION_SIZE_BITS),
        memmap_hot: [const { core::sync::atomic::AtomicU64::new(0) };
            crate::mm::EARLY_MEMMAP_SECTIONS / 64],
        translation: core::cell::UnsafeCell::new(translation),
        // SAFETY: `em.log` has LOG_BUF_LEN bytes from memblock, used only by this buffer.
        log: Lock::new(&LOGBUF_LOCK, unsafe { LogBuf::new(em.log, LOG_BUF_LEN) }),
        console_loglevel: AtomicU8::new(CONSOLE_LOGLEVEL_DEFAULT),
        taint: Taint::default(),
        node_stats: NodeStats::default(),
        vm_events: crate::mm::VmEvents::default(),
        taint_flags: AtomicU32::new(0),
        kernel: em.kernel,
        percpu_pages: AtomicUsize::new(em.percpu_pages),
        jiffies_at_boot: plat.jiffies(),
        cpuhp: Lock::new(&CPUHP_STATE_MUTEX, CpuhpTable::new()),
        lockdep,
        depot,
        // SAFETY: `em.rcu_cpus` has `possible_cpus` zeroed entries (a zeroed `RcuCpu` is
        // `RcuCpu::new()`: both counters 0) in memblock memory that never moves, used only
        // by this state.
        rcu: unsafe {
            crate::mm::rcu::RcuState::new(em.rcu_cpus.cast_const(), plat.possible_cpus())
        },
        plat,
    }
}

/// The zones as laid out by [`early_setup`], free areas empty (`zone_init_free_lists` runs
/// in place once they sit in the state).
pub(crate) fn zones<L: lock_api::RawMutex>(em: &EarlyMemory) -> [Zone<L>; NR_ZONE_KINDS] {
    core::array::from_fn(|i| {
        new_zone(
            ZoneType::from_index(i),
            em.geos[i],
            em.pageblocks[i],
            (em.pcps[i], em.pcp_cpus),
            em.memmap.sections,
        )
    })
}

/// A zone laid out at boot, free areas empty (`zone_init_free_lists` runs in place).
fn new_zone<L: lock_api::RawMutex>(
    kind: ZoneType,
    geo: ZoneGeometry,
    pageblocks: (*mut u8, usize),
    (pcp, pcp_cpus): (*mut PcpSlot, usize),
    sections: SectionTable,
) -> Zone<L> {
    Zone {
        kind,
        geo,
        managed: AtomicUsize::new(0),
        watermark: Default::default(),
        lowmem_reserve: Default::default(),
        free: Lock::new(
            &ZONE_LOCK,
            ZoneFree {
                area: core::array::from_fn(|_| FreeArea {
                    free_list: core::array::from_fn(|_| ListHead::new()),
                    nr_free_mt: [0; MIGRATE_TYPES],
                    nr_free: 0,
                }),
            },
        ),
        stats: ZoneStats::default(),
        pageblock_mt: pageblocks.0,
        sections,
        hot_start: core::sync::atomic::AtomicU64::new(0),
        hot_end: core::sync::atomic::AtomicU64::new(0),
        hot_present: core::sync::atomic::AtomicI64::new(0),
        nr_pageblocks: pageblocks.1,
        pcp,
        pcp_cpus: if pcp.is_null() { 0 } else { pcp_cpus },
        pcp_batch: 0,
        pcp_high_min: 0,
        pcp_high_max: 0,
        trylock_free_pages: AtomicUsize::new(0),
        nr_trylock_free: AtomicUsize::new(0),
        compact: crate::mmzone::ZoneCompact::new(),
    }
}

/// Writes the nodes' state of a NUMA machine into its memblock allocation (free areas empty,
/// as [`zones`]); null for one node. The state never moves.
pub(crate) fn numa_nodes<L: lock_api::RawMutex>(
    em: &EarlyMemory,
) -> *const crate::mmzone::NumaNodes<L> {
    let Some(n) = &em.numa else {
        return core::ptr::null();
    };
    let p = n.nodes.cast::<crate::mmzone::NumaNodes<L>>();
    // SAFETY: `n.nodes` is a fresh, zeroed, 64-aligned memblock allocation of
    // `size_of::<NumaNodes<L>>()` bytes (early_setup, with the same lock type through
    // `P::RawLock`) that nothing else uses; each field is written once through a raw pointer
    // before anyone reads it.
    unsafe {
        core::ptr::addr_of_mut!((*p).info).write(n.info);
        core::ptr::addr_of_mut!((*p).span).write(n.span);
        core::ptr::addr_of_mut!((*p).stat).write(Default::default());
        for i in 0..crate::numa::MAX_NUMA_NODES - 1 {
            for k in ZoneType::ALL {
                let zp = core::ptr::addr_of_mut!((*p).zones[i][k.index()]);
                zp.write(new_zone(
                    k,
                    n.geos[i + 1][k.index()],
                    (core::ptr::null_mut(), 0),
                    (n.pcps[i + 1][k.index()], em.pcp_cpus),
                    em.memmap.sections,
                ));
            }
        }
    }
    p
}

/// The boot log up to the zone ranges, in Linux's words: the banner, the command line, the
/// e820 map, `last_pfn`, the i386 HIGHMEM/LOWMEM lines, the memblock dump with
/// `memblock=debug`, then the zone and node ranges.
///
/// `reserve` runs between the two, where x86's `setup_arch` calls `dma_contiguous_reserve`.
pub(crate) fn print_boot_log<P: Platform>(
    mm: &MemoryModel<P>,
    params: &BootParams<'_>,
    em: &mut EarlyMemory,
    reserve: impl FnOnce(&mut crate::memblock::Memblock),
) {
    print_banner(mm, params, em);
    if params
        .cmdline
        .split_whitespace()
        .any(|w| w == "memblock=debug")
    {
        let mut dump = LineBuf::new();
        let _ = em.mb.dump(&mut LinesTo(mm, &mut dump));
    }
    reserve(&mut em.mb);
    print_zone_ranges(mm, em);
}

fn print_banner<P: Platform>(mm: &MemoryModel<P>, params: &BootParams<'_>, em: &EarlyMemory) {
    let arch = params.arch;
    // The boot log, in Linux's words.
    mm.printk(
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
    mm.printk(
        LogLevel::Info,
        format_args!("Command line: {}", params.cmdline),
    );
    mm.printk(
        LogLevel::Info,
        format_args!("BIOS-provided physical RAM map:"),
    );
    for e in params.e820.entries() {
        mm.printk(
            LogLevel::Info,
            format_args!(
                "BIOS-e820: [mem {:#018x}-{:#018x}] {}",
                e.addr.as_u64(),
                e.end() - 1,
                e.kind.name()
            ),
        );
    }
    // parse_early_param runs after the firmware map is printed.
    movable::print_early_params(mm, &em.movable);
    // trim_bios_range's messages (e820__range_update, e820__range_remove: KERN_DEBUG).
    mm.printk(
        LogLevel::Debug,
        format_args!(
            "e820: update [mem {:#010x}-{:#010x}] {} ==> {}",
            0,
            PAGE_SIZE - 1,
            E820Type::Ram.name(),
            E820Type::Reserved.name()
        ),
    );
    mm.printk(
        LogLevel::Debug,
        format_args!(
            "e820: remove [mem {:#010x}-{:#010x}] {}",
            BIOS_BEGIN,
            BIOS_END - 1,
            E820Type::Ram.name()
        ),
    );
    // e820__end_of_ram_pfn, then on x86_64 above 4 GiB e820__end_of_low_ram_pfn for
    // max_low_pfn (setup_arch); both print through e820_end_pfn.
    let max_arch_pfn = match arch {
        Arch::X86_64 => 0x4_0000_0000u64,
        Arch::I386 => 0x10_0000,
    };
    let last_pfn = |pfn: u64| {
        mm.printk(
            LogLevel::Info,
            format_args!("last_pfn = {pfn:#x} max_arch_pfn = {max_arch_pfn:#x}"),
        );
    };
    last_pfn(em.max_pfn.as_u64());
    if arch == Arch::X86_64 && em.max_pfn.as_u64() > 1 << (32 - PAGE_SHIFT) {
        last_pfn(em.e820.end_pfn(1 << (32 - PAGE_SHIFT)));
    }
    if arch == Arch::I386 {
        let high = em
            .max_pfn
            .phys()
            .as_u64()
            .saturating_sub(em.lowmem_end.as_u64());
        if high > 0 {
            mm.printk(
                LogLevel::Notice,
                format_args!("{}MB HIGHMEM available.", high >> 20),
            );
        }
        mm.printk(
            LogLevel::Notice,
            format_args!("{}MB LOWMEM available.", em.lowmem_end.as_u64() >> 20),
        );
        mm.printk(
            LogLevel::Info,
            format_args!("  mapped low ram: 0 - {:08x}", em.lowmem_end.as_u64()),
        );
        mm.printk(
            LogLevel::Info,
            format_args!("  low ram: 0 - {:08x}", em.lowmem_end.as_u64()),
        );
    }
}

fn print_zone_ranges<P: Platform>(mm: &MemoryModel<P>, em: &EarlyMemory) {
    let mb = &em.mb;
    // With NUMA or ZONE_MOVABLE the ranges are the architecture's, over all nodes
    // (free_area_init prints arch_zone_{lowest,highest}_possible_pfn).
    let all = match &em.numa {
        Some(n) => {
            numa::print_numa_init(mm, n);
            zone_geometry(mm.arch(), mb, mm.max_pfn())
        }
        None if em.movable.any() => zone_geometry(mm.arch(), mb, mm.max_pfn()),
        None => em.geos,
    };
    movable::print_mirror_warning(mm, &em.movable);
    mm.printk(LogLevel::Info, format_args!("Zone ranges:"));
    for &z in mm.arch().zones() {
        let g = all[z.index()];
        if z == ZoneType::Movable {
            continue;
        }
        if g.spanned == 0 {
            mm.printk(LogLevel::Info, format_args!("  {:<8} empty", z.name()));
        } else {
            mm.printk(
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
    mm.printk(
        LogLevel::Info,
        format_args!("Movable zone start for each node"),
    );
    movable::print_movable_starts(mm, &em.movable);
    mm.printk(LogLevel::Info, format_args!("Early memory node ranges"));
    for r in mb.memory.regions() {
        mm.printk(
            LogLevel::Info,
            format_args!(
                "  node {:3}: [mem {:#018x}-{:#018x}]",
                r.nid,
                r.base.as_u64(),
                r.end() - 1
            ),
        );
    }
    match &em.numa {
        Some(n) => numa::print_initmem(mm, n),
        None => {
            if let (Some(s), Some(e)) = (mb.start_of_dram(), mb.end_of_dram()) {
                mm.printk(
                    LogLevel::Info,
                    format_args!(
                        "Initmem setup node 0 [mem {:#018x}-{:#018x}]",
                        s.as_u64(),
                        e.as_u64() - 1
                    ),
                );
            }
        }
    }
    print_unavailable_ranges(mm, em);
    let (nodes, total) = match &em.numa {
        Some(n) => {
            numa::print_fallback_order(mm, n);
            (n.info.nr_nodes, n.span.iter().map(|g| g.present).sum())
        }
        None => (1, all.iter().map(|g| g.present).sum::<u64>()),
    };
    mm.printk(
        LogLevel::Info,
        format_args!("Built {nodes} zonelists, mobility grouping on.  Total pages: {total}"),
    );
}

/// Valid PFNs (those with a memmap Linux would initialise) in `[s, e)`: whole sections at a
/// time with SPARSEMEM, below `max_pfn` with FLATMEM.
fn valid_pfns(arch: Arch, mb: &Memblock, max_pfn: Pfn, s: u64, e: u64) -> u64 {
    let Some(bits) = arch.section_size_bits() else {
        return e.min(max_pfn.as_u64()).saturating_sub(s);
    };
    let per_section = 1u64 << (bits - PAGE_SHIFT);
    let mut n = 0;
    let mut a = s;
    while a < e {
        let t = ((a / per_section) + 1) * per_section;
        if crate::mm::pfn_valid_in(arch, mb, max_pfn, Pfn::new(a)) {
            n += t.min(e) - a;
        }
        a = t;
    }
    n
}

/// The holes `memmap_init` finds (mm/mm_init.c `memmap_init_zone_range`,
/// `init_unavailable_range`): between memory ranges, the valid PFNs of a hole are counted in
/// the zone of the range above it, and the tail up to the end of the last section (FLATMEM:
/// the next `MAX_ORDER_NR_PAGES`) in the last zone; each nonempty hole is one line.
fn print_unavailable_ranges<P: Platform>(mm: &MemoryModel<P>, em: &EarlyMemory) {
    let (arch, max_pfn, mb) = (mm.arch(), mm.max_pfn(), &em.mb);
    let print = |(z, nid): (ZoneType, i32), n: u64| {
        if n > 0 {
            mm.printk(
                LogLevel::Info,
                format_args!(
                    "On node {nid}, zone {}: {} pages in unavailable ranges",
                    z.name(),
                    n
                ),
            );
        }
    };
    let mut hole = 0u64;
    let mut last = ((ZoneType::Dma, 0), 0u64);
    for r in mb.memory.regions() {
        let (rs, re) = (r.base.pfn().as_u64(), PhysAddr::new(r.end()).pfn().as_u64());
        let geos = match &em.numa {
            Some(n) => &n.geos[(r.nid.max(0) as usize).min(crate::numa::MAX_NUMA_NODES - 1)],
            None => &em.geos,
        };
        for &z in arch.zones() {
            let g = geos[z.index()];
            if g.present == 0 {
                continue;
            }
            let (zs, ze) = (g.start_pfn.as_u64(), g.end_pfn().as_u64());
            let (s, e) = (rs.clamp(zs, ze), re.clamp(zs, ze));
            if s >= e {
                continue;
            }
            if hole < s {
                print((z, r.nid), valid_pfns(arch, mb, max_pfn, hole, s));
            }
            hole = e;
            last.0 = (z, r.nid);
        }
        last.1 = re;
    }
    let end = match arch.section_size_bits() {
        Some(bits) => last.1.next_multiple_of(1 << (bits - PAGE_SHIFT)),
        // MAX_ORDER_NR_PAGES
        None => last.1.next_multiple_of(1 << crate::addr::MAX_PAGE_ORDER),
    };
    if hole < end {
        print(last.0, valid_pfns(arch, mb, max_pfn, hole, end));
    }
}

/// `memmap_init`: every `struct page` starts reserved with one reference, in its zone (hole
/// pages below the first zone belong to the lowest zone, as in Linux). With SPARSEMEM only
/// the valid sections' entries exist: they are initialised, the tail of the last section
/// beyond the last zone in that zone (`init_unavailable_range`), and the boot sections are
/// marked online (`online_mem_sections`).
pub(crate) fn memmap_init<P: Platform>(mm: &MemoryModel<P>, em: &EarlyMemory) {
    let sections = mm.sections;
    let limit = if sections.is_sparse() {
        mm.max_pfn
            .as_u64()
            .next_multiple_of(crate::sparse::PAGES_PER_SECTION)
    } else {
        mm.max_pfn.as_u64()
    };
    let mut start = 0u64;
    let mut last = None;
    let nr_nodes = em.numa.as_ref().map_or(1, |n| n.info.nr_nodes);
    for nid in 0..nr_nodes {
        let geos = em.numa.as_ref().map_or(&em.geos, |n| &n.geos[nid]);
        for &z in mm.arch.zones() {
            let g = geos[z.index()];
            if g.spanned == 0 {
                continue;
            }
            let end = g.end_pfn().as_u64();
            init_range(mm, sections, (z, nid), start, end.min(limit));
            start = end;
            last = Some((z, nid));
        }
    }
    if let Some(z) = last {
        init_tail(mm, sections, z, start, limit);
    }
    if sections.is_sparse() {
        for nr in 0..crate::sparse::pfn_to_section_nr(Pfn::new(limit)) {
            if let Some(sec) = sections.section(nr) {
                if sec.flags() & crate::sparse::SECTION_HAS_MEM_MAP != 0 {
                    sec.set(crate::sparse::SECTION_IS_ONLINE);
                }
            }
        }
    }
}

/// `init_unavailable_range` for the last section's tail `[start, end)` beyond the last zone:
/// reserved pages of that zone. Every entry is alike and nothing writes one after boot (no
/// memory can be added to a present section, and PFN walkers only read a reserved page), so
/// once the first whole page of the tail's memmap is written, the platform may map the rest
/// read-only onto it ([`Platform::share_vmemmap`], as HugeTLB's vmemmap optimisation shares
/// one `struct page` page): a small machine's hole then costs a host no memory until it is
/// read (a 16 MiB machine's section: 1.75 of its 2 MiB of memmap).
fn init_tail<P: Platform>(
    mm: &MemoryModel<P>,
    sections: SectionTable,
    z: (ZoneType, usize),
    start: u64,
    end: u64,
) {
    const PER_PAGE: u64 = (PAGE_SIZE / core::mem::size_of::<Page>()) as u64;
    // The first whole memmap page of the tail, and the first after it.
    let first = start.next_multiple_of(PER_PAGE);
    let rest = first + PER_PAGE;
    let shareable = mm.vmemmap_mapped
        && sections.is_sparse()
        && end.is_multiple_of(PER_PAGE)
        && rest < end
        && sections.pfn_valid(Pfn::new(start));
    if !shareable {
        init_range(mm, sections, z, start, end);
        return;
    }
    init_range(mm, sections, z, start, rest);
    // `end` is a section boundary (memmap_init's limit) and `start` lies in the last section,
    // so `[rest, end)` is in that valid section's mapped memmap.
    let at = |pfn: u64| mm.mem_map.wrapping_add(pfn as usize).cast::<u8>();
    let len = (end - rest) as usize * core::mem::size_of::<Page>();
    if !mm.plat.share_vmemmap(at(rest), len, at(first)) {
        init_range(mm, sections, z, rest, end);
    }
}

/// Initialises the valid entries of `[start, end)` as reserved pages of zone `z.0` on node
/// `z.1`.
fn init_range<P: Platform>(
    mm: &MemoryModel<P>,
    sections: SectionTable,
    z: (ZoneType, usize),
    start: u64,
    end: u64,
) {
    let mut pfn = start;
    while pfn < end {
        let sec_end = if sections.is_sparse() {
            ((pfn / crate::sparse::PAGES_PER_SECTION) + 1) * crate::sparse::PAGES_PER_SECTION
        } else {
            end
        };
        let stop = sec_end.min(end);
        if !sections.is_sparse() || sections.pfn_valid(Pfn::new(pfn)) {
            for p in pfn..stop {
                // SAFETY: `p` is below max_pfn (FLATMEM) or in a valid section (SPARSEMEM), so
                // its entry is backed memmap; boot runs alone and nothing has a reference to
                // it yet: it is ours to initialise.
                unsafe {
                    mm.mem_map
                        .add(p as usize)
                        .write(Page::reserved_on(z.0, z.1))
                };
            }
        }
        pfn = stop;
    }
}
