//! Zones (include/linux/mmzone.h): ranges of physical memory with different addressing
//! properties, each with its own buddy free areas.

/// `enum zone_type`, in Linux's order. Which zones exist depends on the machine: x86_64 has
/// DMA, DMA32 and Normal; i386 has DMA, Normal and HighMem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// `ZONE_DMA`: below 16 MiB, for ISA DMA.
    Dma = 0,
    /// `ZONE_DMA32`: below 4 GiB (x86_64 only).
    Dma32 = 1,
    /// `ZONE_NORMAL`: permanently mapped by the kernel.
    Normal = 2,
    /// `ZONE_HIGHMEM`: above the direct map (i386: above 896 MiB); mapped on demand.
    HighMem = 3,
    /// `ZONE_MOVABLE`: only movable allocations (empty unless `movablecore=` is given).
    Movable = 4,
    /// `ZONE_DEVICE`: device memory (always empty here).
    Device = 5,
}

/// Number of zone kinds kmem knows. Which of them a machine configures depends on its
/// architecture ([`crate::arch::Arch::zones`]), as Linux's `MAX_NR_ZONES` depends on config.
pub const NR_ZONE_KINDS: usize = 6;

impl ZoneType {
    /// All zone types, lowest first.
    pub const ALL: [ZoneType; NR_ZONE_KINDS] = [
        ZoneType::Dma,
        ZoneType::Dma32,
        ZoneType::Normal,
        ZoneType::HighMem,
        ZoneType::Movable,
        ZoneType::Device,
    ];

    /// The zone type with index `i` (`i < NR_ZONE_KINDS`; larger values map to Device).
    #[inline]
    pub const fn from_index(i: usize) -> ZoneType {
        const T: [ZoneType; 8] = [
            ZoneType::Dma,
            ZoneType::Dma32,
            ZoneType::Normal,
            ZoneType::HighMem,
            ZoneType::Movable,
            ZoneType::Device,
            ZoneType::Device,
            ZoneType::Device,
        ];
        T[i & 7]
    }
    /// The zone's index.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
    /// The name Linux prints (`zone_names[]` in mm/page_alloc.c).
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
            ZoneType::HighMem => "HighMem",
            ZoneType::Movable => "Movable",
            ZoneType::Device => "Device",
        }
    }
}

use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicUsize, Ordering};

use kds::list::ListHead;

use crate::addr::{Pfn, NR_PAGE_ORDERS};
use crate::sparse::SectionTable;

/// `pageblock_order` (include/linux/pageblock-flags.h): `HPAGE_PMD_ORDER`, 9 on x86_64.
pub const PAGEBLOCK_ORDER: u32 = 9;
/// Pages per pageblock.
pub const PAGEBLOCK_NR_PAGES: usize = 1 << PAGEBLOCK_ORDER;
/// `PAGE_ALLOC_COSTLY_ORDER`: orders above this are "costly"; pcp lists hold orders 0..=3.
pub const PAGE_ALLOC_COSTLY_ORDER: u32 = 3;

/// `enum migratetype` (include/linux/mmzone.h, a kernel with `CONFIG_CMA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MigrateType {
    /// `MIGRATE_UNMOVABLE`
    Unmovable = 0,
    /// `MIGRATE_MOVABLE`
    Movable = 1,
    /// `MIGRATE_RECLAIMABLE`
    Reclaimable = 2,
    /// `MIGRATE_HIGHATOMIC`: reserved for high-order atomic allocations.
    HighAtomic = 3,
    /// `MIGRATE_CMA`: pageblocks of a CMA area; only movable allocations may borrow them.
    Cma = 4,
    /// `MIGRATE_ISOLATE`: pages that must not be allocated.
    Isolate = 5,
}

/// The pageblock flag `PB_compact_skip` (include/linux/pageblock-flags.h), kept in the top bit
/// of a pageblock's flags byte above its migratetype.
pub const PB_MIGRATE_SKIP: u8 = 0x80;

/// `MIGRATE_TYPES`.
pub const MIGRATE_TYPES: usize = 6;
/// `MIGRATE_PCPTYPES`: the types kept on per-CPU lists.
pub const MIGRATE_PCPTYPES: usize = 3;
/// `NR_PCP_LISTS`: one list per pcp migratetype and order 0..=PAGE_ALLOC_COSTLY_ORDER.
pub const NR_PCP_LISTS: usize = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER as usize + 1);

impl MigrateType {
    /// All types in order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
        MigrateType::HighAtomic,
        MigrateType::Cma,
        MigrateType::Isolate,
    ];
    /// From an index (`< MIGRATE_TYPES`; larger values map to Isolate).
    #[inline]
    pub const fn from_index(i: usize) -> MigrateType {
        // A table lookup rather than a match: this sits on the page free fast path.
        const T: [MigrateType; 8] = [
            MigrateType::Unmovable,
            MigrateType::Movable,
            MigrateType::Reclaimable,
            MigrateType::HighAtomic,
            MigrateType::Cma,
            MigrateType::Isolate,
            MigrateType::Isolate,
            MigrateType::Isolate,
        ];
        T[i & 7]
    }
    /// The name in /proc/pagetypeinfo (`migratetype_names`).
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "Unmovable",
            MigrateType::Movable => "Movable",
            MigrateType::Reclaimable => "Reclaimable",
            MigrateType::HighAtomic => "HighAtomic",
            MigrateType::Cma => "CMA",
            MigrateType::Isolate => "Isolate",
        }
    }
    /// `gfp_migratetype`: `__GFP_MOVABLE` → Movable, `__GFP_RECLAIMABLE` → Reclaimable.
    #[inline]
    pub const fn from_gfp(gfp: crate::gfp::GfpFlags) -> MigrateType {
        let b = gfp.bits();
        if b & crate::gfp::GfpFlags::__GFP_MOVABLE.bits() != 0 {
            MigrateType::Movable
        } else if b & crate::gfp::GfpFlags::__GFP_RECLAIMABLE.bits() != 0 {
            MigrateType::Reclaimable
        } else {
            MigrateType::Unmovable
        }
    }
    /// `fallbacks[]` of mm/page_alloc.c: where each pcp type looks when its lists are empty.
    pub const fn fallbacks(self) -> [MigrateType; 2] {
        match self {
            MigrateType::Unmovable => [MigrateType::Reclaimable, MigrateType::Movable],
            MigrateType::Movable => [MigrateType::Reclaimable, MigrateType::Unmovable],
            _ => [MigrateType::Unmovable, MigrateType::Movable],
        }
    }
}

/// `struct free_area`: one free list per migratetype for one order.
pub struct FreeArea {
    /// The free lists, linked through `page->lru`.
    pub free_list: [ListHead; MIGRATE_TYPES],
    /// Blocks on each list (Linux counts these by walking; kmem keeps them; u32 keeps
    /// `struct zone` at its size without CMA).
    pub nr_free_mt: [u32; MIGRATE_TYPES],
    /// Blocks on all lists (`nr_free`).
    pub nr_free: usize,
}

/// What the zone lock protects: the free areas.
pub struct ZoneFree {
    /// `free_area[NR_PAGE_ORDERS]`.
    pub area: [FreeArea; NR_PAGE_ORDERS],
}

/// Watermark indices (`enum zone_watermarks`).
pub const WMARK_MIN: usize = 0;
/// Low watermark: kswapd wakes below it; the fast path needs free pages above it.
pub const WMARK_LOW: usize = 1;
/// High watermark: kswapd sleeps above it.
pub const WMARK_HIGH: usize = 2;
/// Promotion watermark (memory tiering).
pub const WMARK_PROMO: usize = 3;

/// Per-zone counters that /proc/zoneinfo and /proc/vmstat show.
#[derive(Default)]
pub struct ZoneStats {
    /// `NR_FREE_PAGES`: pages in the buddy free areas (not on pcp lists).
    pub nr_free_pages: AtomicIsize,
    /// `numa_hit`-like count of allocations served by this zone.
    pub alloc_hits: AtomicUsize,
    /// Allocations that fell back to this zone from a higher one (`numa_foreign`-like).
    pub fallback_hits: AtomicUsize,
    /// `NR_FREE_CMA_PAGES`: pages on the `MIGRATE_CMA` free lists (page_alloc keeps it in
    /// `add_to_free_list`/`del_from_free_list`).
    pub nr_free_cma: AtomicIsize,
    /// `zone->cma_pages`: pages of CMA areas in the zone (/proc/zoneinfo `cma`).
    pub cma_pages: AtomicUsize,
}

impl ZoneStats {
    /// Current free pages in the buddy lists.
    #[inline]
    pub fn free_pages(&self) -> usize {
        self.nr_free_pages.load(Ordering::Relaxed).max(0) as usize
    }
    /// Current free pages on the CMA free lists.
    #[inline]
    pub fn free_cma_pages(&self) -> usize {
        self.nr_free_cma.load(Ordering::Relaxed).max(0) as usize
    }
}

/// Per-CPU page lists of one zone on one CPU (`struct per_cpu_pages`): the part only the
/// lists' holder touches. The counters other CPUs read are the slot's [`PcpCounters`].
pub struct PerCpuPages {
    /// One list per (migratetype, order ≤ 3): index `order * MIGRATE_PCPTYPES + mt`.
    pub lists: [ListHead; NR_PCP_LISTS],
    /// Pages freed in a row without an allocation in between (halved on each allocation), to
    /// size bulk frees and grow `high` (Linux 6.7's pcp auto-tuning).
    pub free_count: usize,
}

/// The counters of one CPU's lists that other CPUs read without holding them
/// (/proc/zoneinfo's `count`/`high`, the allocation statistics): written only by the lists'
/// holder ([`PcpGuard`]), read by anyone. Relaxed atomics — plain loads and stores on x86 and
/// arm64, as Linux's `READ_ONCE`/`WRITE_ONCE` of `pcp->count` — so a reader's racy value is
/// a statistic's, never a data race; they live outside the lists' `UnsafeCell`, so a reader
/// never aliases the holder's `&mut PerCpuPages`.
#[derive(Default)]
pub struct PcpCounters {
    /// Pages on all lists (`pcp->count`).
    count: AtomicUsize,
    /// Drain to the buddy allocator above this (`pcp->high`).
    high: AtomicUsize,
    /// Allocations served on this CPU (`numa_hit`), folded on read like vm_stat diffs.
    alloc_count: AtomicUsize,
    /// Pages allocated minus pages freed on this CPU.
    in_use: AtomicIsize,
}

/// One CPU's [`PerCpuPages`] of a zone with what lets another CPU drain them (Linux 6.x's
/// `pcp->lock`, without its atomic on the owner's path).
///
/// - **The owner** (the CPU, inside its CPU section: every allocation and free) announces
///   its use with a plain store to `busy`, reads `drain`, and if no drainer is pending uses
///   the lists with no atomic read-modify-write; `busy` is cleared when it is done. With a
///   drainer pending it takes `lock` instead, as Linux's owner takes `pcp->lock`.
/// - **A remote drainer** (`drain_all_pages` for CMA and compaction, the CPU-dead hook)
///   raises `drain`, has the platform make every CPU execute a full barrier
///   ([`crate::platform::Platform::membarrier`]), waits for `busy` to fall, and takes `lock`.
///   The barrier closes the store→load race of the owner's `busy`/`drain` pair: after it,
///   either the drainer sees `busy` set (and waits) or the owner sees `drain` raised (and
///   locks). Linux 5.19+ drains remote lists under `pcp->lock`; before, it sent each CPU an
///   IPI to drain its own.
/// - A platform without the barrier gets a `drain` that is raised forever at boot, so every
///   owner locks (Linux's behaviour).
///
/// All-zero bytes are a valid, unlocked slot (the memory comes zeroed from memblock). 240
/// bytes, as `PerCpuPages` was before it had a lock: the slot's header took the place of the
/// per-CPU `batch` copy (the zone's `pcp_batch`).
#[repr(C)]
pub struct PcpSlot {
    lock: AtomicBool,
    busy: AtomicBool,
    drain: core::sync::atomic::AtomicU32,
    ctr: PcpCounters,
    pcp: core::cell::UnsafeCell<PerCpuPages>,
}

/// How a [`PcpGuard`] holds its lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PcpHold {
    /// The owner, lock-free (`busy` set).
    Owner,
    /// `lock` held.
    Locked,
}

/// The lists of one CPU, held (see [`PcpSlot`]).
pub(crate) struct PcpGuard<'a> {
    slot: &'a PcpSlot,
    hold: PcpHold,
}

impl core::ops::Deref for PcpGuard<'_> {
    type Target = PerCpuPages;
    fn deref(&self) -> &PerCpuPages {
        // SAFETY: the guard holds the lists (owner with no drainer, or the lock), so nobody
        // else has a reference to them.
        unsafe { &*self.slot.pcp.get() }
    }
}

impl core::ops::DerefMut for PcpGuard<'_> {
    fn deref_mut(&mut self) -> &mut PerCpuPages {
        // SAFETY: the guard holds this slot's `pcp->lock`, so no other guard (and no other
        // reference to the lists) exists, and `&mut self` makes this the only reference through
        // this guard.
        unsafe { &mut *self.slot.pcp.get() }
    }
}

// The counters: one holder writes (load and store, no read-modify-write: nobody else writes
// while the guard is held), anyone reads.
impl PcpGuard<'_> {
    /// `pcp->count`.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.slot.ctr.count.load(Ordering::Relaxed)
    }
    /// Sets `pcp->count`.
    #[inline]
    pub(crate) fn set_count(&mut self, v: usize) {
        self.slot.ctr.count.store(v, Ordering::Relaxed);
    }
    /// `pcp->count += n`.
    #[inline]
    pub(crate) fn add_count(&mut self, n: usize) {
        self.set_count(self.count() + n);
    }
    /// `pcp->count -= n`.
    #[inline]
    pub(crate) fn sub_count(&mut self, n: usize) {
        self.set_count(self.count() - n);
    }
    /// `pcp->high`.
    #[inline]
    pub(crate) fn high(&self) -> usize {
        self.slot.ctr.high.load(Ordering::Relaxed)
    }
    /// Sets `pcp->high`.
    #[inline]
    pub(crate) fn set_high(&mut self, v: usize) {
        self.slot.ctr.high.store(v, Ordering::Relaxed);
    }
    /// One allocation of `pages` pages served through these lists.
    #[inline]
    pub(crate) fn note_alloc(&mut self, pages: usize) {
        let c = &self.slot.ctr;
        c.alloc_count
            .store(c.alloc_count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.add_in_use(pages as isize);
    }
    /// Pages allocated minus pages freed on this CPU, moved by `delta`.
    #[inline]
    pub(crate) fn add_in_use(&mut self, delta: isize) {
        let c = &self.slot.ctr.in_use;
        c.store(c.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }
}

impl Drop for PcpGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.hold {
            PcpHold::Owner => self.slot.busy.store(false, Ordering::Release),
            PcpHold::Locked => self.slot.lock.store(false, Ordering::Release),
        }
    }
}

impl PcpSlot {
    fn try_lock(&self) -> Option<PcpGuard<'_>> {
        self.lock
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| PcpGuard {
                slot: self,
                hold: PcpHold::Locked,
            })
    }
    fn lock(&self) -> PcpGuard<'_> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            while self.lock.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }
    /// The owner's entry: `None` when a drainer is pending (the caller locks instead).
    #[inline]
    fn owner_enter(&self) -> Option<PcpGuard<'_>> {
        self.busy.store(true, Ordering::Relaxed);
        // Only the compiler is kept from moving the `drain` load above the `busy` store: the
        // CPU may still do so, and a drainer's `membarrier` makes up for it (see the type).
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        if self.drain.load(Ordering::Acquire) == 0 {
            return Some(PcpGuard {
                slot: self,
                hold: PcpHold::Owner,
            });
        }
        self.busy.store(false, Ordering::Release);
        None
    }
}

// SAFETY: the lists are only reached by their owner with no drainer pending, or under the
// slot's lock (see the type).
unsafe impl Sync for PcpSlot {}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<PcpSlot>() == 240);

/// Zone geometry and tunables set at boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZoneGeometry {
    /// First PFN of the zone (`zone_start_pfn`).
    pub start_pfn: Pfn,
    /// `spanned_pages`: PFNs from start to end, holes included.
    pub spanned: u64,
    /// `present_pages`: RAM pages in the span.
    pub present: u64,
}

impl ZoneGeometry {
    /// One past the last PFN.
    #[inline]
    pub fn end_pfn(&self) -> Pfn {
        self.start_pfn + self.spanned
    }
    /// Whether the PFN lies in the zone's span.
    #[inline]
    pub fn contains(&self, pfn: Pfn) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn()
    }
}

/// Compaction's per-zone state (`struct zone`'s `compact_*` fields, include/linux/mmzone.h),
/// used by `page_alloc/compaction.rs` (deferral) and `compaction/` (the scanners). All
/// atomics: compaction runs without the zone lock.
pub struct ZoneCompact {
    /// `compact_cached_migrate_pfn[2]`: where the migrate scanner resumes, for async (0)
    /// and sync (1) compaction; 0 means the zone's start.
    pub cached_migrate_pfn: [AtomicUsize; 2],
    /// `compact_cached_free_pfn`: where the free scanner resumes; 0 means the zone's end.
    pub cached_free_pfn: AtomicUsize,
    /// `compact_considered`: compaction attempts skipped since the last deferral.
    pub considered: AtomicUsize,
    /// `compact_defer_shift`: attempts are skipped `1 << shift` times
    /// (at most `COMPACT_MAX_DEFER_SHIFT`).
    pub defer_shift: AtomicUsize,
    /// `compact_order_failed`: orders at or above this are deferred.
    pub order_failed: AtomicUsize,
    /// `compact_blockskip_flush`: the scanners met; the skip bits are cleared on the next
    /// full run (`__reset_isolation_suitable`).
    pub blockskip_flush: AtomicBool,
}

impl ZoneCompact {
    /// No history.
    pub const fn new() -> Self {
        Self {
            cached_migrate_pfn: [AtomicUsize::new(0), AtomicUsize::new(0)],
            cached_free_pfn: AtomicUsize::new(0),
            considered: AtomicUsize::new(0),
            defer_shift: AtomicUsize::new(0),
            order_failed: AtomicUsize::new(0),
            blockskip_flush: AtomicBool::new(false),
        }
    }
}

impl Default for ZoneCompact {
    fn default() -> Self {
        Self::new()
    }
}

/// `struct zone`.
///
/// # Locking
/// `free` (the free areas and every frame on them) is under the zone lock. `pcp` entries
/// belong to their CPU: only code inside that CPU's [`crate::platform::CpuGuard`] touches
/// them (or the CPU-dead hook, once the CPU is gone). Geometry and tunables are written
/// once at boot, before the machine is shared; counters are atomics.
pub struct Zone<L: lock_api::RawMutex> {
    /// The zone's kind.
    pub kind: ZoneType,
    /// Span and present pages.
    pub geo: ZoneGeometry,
    /// `managed_pages`: pages the buddy allocator manages.
    pub managed: AtomicUsize,
    /// `_watermark[]`: min, low, high, promo.
    pub watermark: [AtomicUsize; 4],
    /// `lowmem_reserve[]`, indexed by zone kind: pages kept back from allocations whose
    /// highest usable zone is that kind.
    pub lowmem_reserve: [AtomicUsize; crate::mmzone::NR_ZONE_KINDS],
    /// The free areas, under the zone lock.
    pub free: crate::locking::Lock<L, ZoneFree>,
    /// Counters.
    pub stats: ZoneStats,
    /// FLATMEM: one byte per pageblock, its migratetype (`zone->pageblock_flags`), index
    /// `(pfn - start_pfn rounded down to a pageblock) >> PAGEBLOCK_ORDER`. Null with
    /// SPARSEMEM, where each section's usage block holds its pageblocks' bytes.
    pub(crate) pageblock_mt: *mut u8,
    /// The machine's `mem_section` table (SPARSEMEM), or [`SectionTable::flat`].
    pub(crate) sections: SectionTable,
    /// Memory onlined into the zone by memory hotplug (`move_pfn_range_to_zone`), kept apart
    /// from the boot geometry `geo`, which never changes: the hot span `[start, end)` (empty
    /// when equal) and its present pages. Written under `mem_hotplug_lock`.
    pub(crate) hot_start: core::sync::atomic::AtomicU64,
    /// End of the hot span.
    pub(crate) hot_end: core::sync::atomic::AtomicU64,
    /// Present pages onlined into the zone by memory hotplug, less those offlined (negative
    /// when boot memory was offlined).
    pub(crate) hot_present: core::sync::atomic::AtomicI64,
    /// Number of pageblocks covered by `pageblock_mt`.
    pub(crate) nr_pageblocks: usize,
    /// `possible_cpus` per-CPU page lists.
    pub(crate) pcp: *mut PcpSlot,
    /// How many slots `pcp` has (`possible_cpus`; 0 without lists).
    pub(crate) pcp_cpus: usize,
    /// `pcp->batch` for every CPU.
    pub pcp_batch: usize,
    /// `pcp->high_min`.
    pub pcp_high_min: usize,
    /// `pcp->high_max`.
    pub pcp_high_max: usize,
    /// `trylock_free_pages`: blocks freed by `free_pages_nolock` that could not take the
    /// zone lock, linked through `lru.next` (page_alloc/nolock.rs): the address of the first
    /// block's `struct page`, or 0.
    pub(crate) trylock_free_pages: AtomicUsize,
    /// How many blocks `trylock_free_pages` holds.
    pub(crate) nr_trylock_free: AtomicUsize,
    /// Compaction's cached scanner positions, deferral and skip-flush state.
    pub compact: ZoneCompact,
}

// SAFETY: the raw pointers refer to memblock memory owned by the machine; access follows the
// locking rules above.
unsafe impl<L: lock_api::RawMutex + Send> Send for Zone<L> {}
// SAFETY: shared use follows the zone's locking rules above: list heads and counters behind the
// zone lock (L: Sync), pcp data per CPU under its CPU section, the rest atomics.
unsafe impl<L: lock_api::RawMutex + Sync + Send> Sync for Zone<L> {}

impl<L: lock_api::RawMutex> Zone<L> {
    /// Whether the zone has any memory (`populated_zone`).
    #[inline]
    pub fn is_populated(&self) -> bool {
        self.present_pages() > 0
    }
    /// `present_pages`: boot memory plus memory onlined by hotplug.
    #[inline]
    pub fn present_pages(&self) -> u64 {
        (self.geo.present as i64 + self.hot_present.load(Ordering::Relaxed)).max(0) as u64
    }
    /// The hot span `[start, end)` (empty if nothing was onlined into the zone).
    #[inline]
    fn hot_span(&self) -> (u64, u64) {
        (
            self.hot_start.load(Ordering::Acquire),
            self.hot_end.load(Ordering::Acquire),
        )
    }
    /// `zone_spans_pfn`: the PFN lies in the boot span or in the hotplugged span.
    #[inline]
    pub fn contains_pfn(&self, pfn: Pfn) -> bool {
        if self.geo.contains(pfn) {
            return true;
        }
        let (s, e) = self.hot_span();
        (s..e).contains(&pfn.as_u64())
    }
    /// The zone's geometry as `/proc/zoneinfo` shows it: the boot span grown to cover the
    /// hotplugged one, and all present pages.
    pub fn span(&self) -> ZoneGeometry {
        let (hs, he) = self.hot_span();
        let mut g = self.geo;
        if he > hs {
            let (bs, be) = (g.start_pfn.as_u64(), g.end_pfn().as_u64());
            let (s, e) = if g.spanned == 0 {
                (hs, he)
            } else {
                (bs.min(hs), be.max(he))
            };
            g.start_pfn = Pfn::new(s);
            g.spanned = e - s;
        }
        g.present = self.present_pages();
        g
    }
    /// `zone_managed_pages`.
    #[inline]
    pub fn managed_pages(&self) -> usize {
        self.managed.load(Ordering::Relaxed)
    }
    /// A watermark (`min_wmark_pages` etc.).
    #[inline]
    pub fn wmark(&self, which: usize) -> usize {
        self.watermark[which].load(Ordering::Relaxed)
    }
    /// The pageblock index of a PFN in this zone.
    #[inline]
    pub(crate) fn pageblock_index(&self, pfn: Pfn) -> usize {
        let base = self.geo.start_pfn.as_u64() & !(PAGEBLOCK_NR_PAGES as u64 - 1);
        ((pfn.as_u64() - base) >> PAGEBLOCK_ORDER) as usize
    }
    /// The pageblock-flags byte of `pfn`: the zone's array (FLATMEM) or its section's usage
    /// block (SPARSEMEM, `get_pageblock_bitmap`); `None` for a PFN in no valid section. The
    /// migratetype is in the low bits, [`PB_MIGRATE_SKIP`] in the top one. Atomic, because
    /// the skip bit is set and cleared by compaction without the zone lock (Linux's pageblock
    /// bitmap uses atomic bit operations for `PB_compact_skip` too).
    #[inline]
    fn pageblock_byte(&self, pfn: Pfn) -> Option<&AtomicU8> {
        let p = if self.sections.is_sparse() {
            self.sections.pageblock_byte(pfn)?
        } else {
            let i = self.pageblock_index(pfn);
            if i >= self.nr_pageblocks {
                return None;
            }
            // SAFETY: `pageblock_mt` has `nr_pageblocks` bytes covering the zone's span and
            // `i` is below that, so the offset stays inside the array.
            unsafe { self.pageblock_mt.add(i) }
        };
        // SAFETY: `p` is a pageblock byte of this machine — the FLATMEM array in memblock
        // memory, or a section's usage block, freed only by `remove_memory` after the
        // section left every zone — so it outlives `&self`; `AtomicU8` has the layout of
        // `u8`, and every access to these bytes goes through this function (atomically).
        Some(unsafe { &*p.cast::<AtomicU8>() })
    }
    /// `get_pageblock_migratetype` (`MIGRATE_UNMOVABLE` for a PFN without a memmap, which
    /// callers never pass).
    #[inline]
    pub fn pageblock_migratetype(&self, pfn: Pfn) -> MigrateType {
        match self.pageblock_byte(pfn) {
            Some(b) => {
                MigrateType::from_index((b.load(Ordering::Relaxed) & !PB_MIGRATE_SKIP) as usize)
            }
            None => MigrateType::Unmovable,
        }
    }
    /// `set_pageblock_migratetype`. Called under the zone lock (or at boot); keeps the
    /// pageblock's skip bit.
    #[inline]
    pub(crate) fn set_pageblock_migratetype(&self, pfn: Pfn, mt: MigrateType) {
        if let Some(b) = self.pageblock_byte(pfn) {
            let _ = b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some((v & PB_MIGRATE_SKIP) | mt as u8)
            });
        }
    }
    /// `get_pageblock_skip`: whether compaction's scanners skip the pageblock of `pfn`.
    #[inline]
    pub fn pageblock_skip(&self, pfn: Pfn) -> bool {
        if !self.contains_pfn(pfn) {
            return false;
        }
        self.pageblock_byte(pfn)
            .is_some_and(|b| b.load(Ordering::Relaxed) & PB_MIGRATE_SKIP != 0)
    }
    /// `set_pageblock_skip` / `clear_pageblock_skip`. Returns the old value.
    #[inline]
    pub fn set_pageblock_skip(&self, pfn: Pfn, skip: bool) -> bool {
        if !self.contains_pfn(pfn) {
            return false;
        }
        let Some(b) = self.pageblock_byte(pfn) else {
            return false;
        };
        let old = if skip {
            b.fetch_or(PB_MIGRATE_SKIP, Ordering::Relaxed)
        } else {
            b.fetch_and(!PB_MIGRATE_SKIP, Ordering::Relaxed)
        };
        old & PB_MIGRATE_SKIP != 0
    }
    /// Number of pageblocks of each migratetype over the zone's span: every block with a
    /// memmap (/proc/pagetypeinfo also checks the block's page belongs to the zone; see
    /// `VmLayer::show_pagetypeinfo`).
    pub fn pageblock_counts(&self) -> [usize; MIGRATE_TYPES] {
        let mut c = [0; MIGRATE_TYPES];
        let first = self.geo.start_pfn.as_u64() & !(PAGEBLOCK_NR_PAGES as u64 - 1);
        for pfn in (first..self.geo.end_pfn().as_u64()).step_by(PAGEBLOCK_NR_PAGES) {
            if let Some(b) = self.pageblock_byte(Pfn::new(pfn)) {
                // A racy read of a byte only skews a statistic.
                let mt = (b.load(Ordering::Relaxed) & !PB_MIGRATE_SKIP) as usize;
                c[mt.min(MIGRATE_TYPES - 1)] += 1;
            }
        }
        c
    }
    /// The per-CPU lists of `cpu`, for `cpu` itself (`pcp_spin_lock`): lock-free while no
    /// drainer is pending, else locked (spinning while the drainer holds them).
    ///
    /// # Safety
    /// `cpu < possible_cpus`, the zone has lists (`pcp` non-null), and the caller is inside
    /// `cpu`'s CPU section. A CPU holding its own lists must not ask for them again (no
    /// nesting).
    #[inline]
    pub(crate) unsafe fn pcp_of(&self, cpu: usize) -> PcpGuard<'_> {
        // SAFETY: `pcp` has `possible_cpus` entries and `cpu` is below that (caller).
        let slot = unsafe { &*self.pcp.add(cpu) };
        match slot.owner_enter() {
            Some(g) => g,
            None => slot.lock(),
        }
    }
    /// [`Self::pcp_of`] without waiting (`pcp_spin_trylock`): `None` while the code this
    /// call interrupted on the same CPU holds them, or a drainer does.
    ///
    /// # Safety
    /// As [`Self::pcp_of`].
    #[inline]
    pub(crate) unsafe fn pcp_try(&self, cpu: usize) -> Option<PcpGuard<'_>> {
        // SAFETY: `pcp` has `possible_cpus` entries and `cpu` is below that (this function's
        // contract), so `self.pcp.add(cpu)` is a live slot for as long as the zone lives.
        let slot = unsafe { &*self.pcp.add(cpu) };
        if slot.busy.load(Ordering::Relaxed) {
            return None;
        }
        slot.owner_enter().or_else(|| slot.try_lock())
    }
    /// Announces a drainer of `cpu`'s lists (before the platform's `membarrier` and
    /// [`Self::pcp_remote`]); [`Self::pcp_drain_end`] withdraws it. Also used at boot to
    /// lock every owner forever on a platform without `membarrier`.
    ///
    /// # Safety
    /// `cpu < possible_cpus` and the zone has lists (`pcp` non-null).
    pub(crate) unsafe fn pcp_drain_begin(&self, cpu: usize) {
        // SAFETY: the zone has `possible_cpus` slots and `cpu` is below that (this function's
        // contract), so the slot is live; only its atomic `drain` counter is touched.
        let slot = unsafe { &*self.pcp.add(cpu) };
        slot.drain.fetch_add(1, Ordering::SeqCst);
    }
    /// Withdraws one [`Self::pcp_drain_begin`].
    ///
    /// # Safety
    /// `cpu < possible_cpus` and the zone has lists (`pcp` non-null).
    pub(crate) unsafe fn pcp_drain_end(&self, cpu: usize) {
        // SAFETY: the zone has `possible_cpus` slots and `cpu` is below that (this function's
        // contract), so the slot is live; only its atomic `drain` counter is touched.
        let slot = unsafe { &*self.pcp.add(cpu) };
        slot.drain.fetch_sub(1, Ordering::Release);
    }
    /// Another CPU's lists, locked (`drain_pages_zone`), once their owner is out of any
    /// lock-free use; `relax` runs while waiting.
    ///
    /// # Safety
    /// `cpu < possible_cpus`, the zone has lists; the caller announced itself with
    /// [`Self::pcp_drain_begin`] and then had the platform's `membarrier` run (or no thread
    /// can be `cpu`'s owner: boot, a dead CPU), and does not hold these lists.
    pub(crate) unsafe fn pcp_remote(&self, cpu: usize, relax: impl Fn()) -> PcpGuard<'_> {
        // SAFETY: `pcp` has `possible_cpus` entries and `cpu` is below that (caller).
        let slot = unsafe { &*self.pcp.add(cpu) };
        while slot.busy.load(Ordering::Acquire) {
            relax();
        }
        slot.lock()
    }
    /// One CPU's counters (`None` for a zone without lists or a CPU beyond the slots).
    fn pcp_counters(&self, cpu: usize) -> Option<&PcpCounters> {
        if self.pcp.is_null() || cpu >= self.pcp_cpus {
            return None;
        }
        // SAFETY: a zone with lists has `pcp_cpus` live slots and `cpu` is below that
        // (checked); only the slot's atomic counters are read through the shared reference.
        Some(&unsafe { &*self.pcp.add(cpu) }.ctr)
    }
    /// A racy snapshot of `(alloc_count, in_use)` of one CPU's lists (statistics); zeros for
    /// a CPU the zone has no lists for.
    pub(crate) fn pcp_stat_snapshot(&self, cpu: usize) -> (usize, isize) {
        self.pcp_counters(cpu).map_or((0, 0), |c| {
            (
                c.alloc_count.load(Ordering::Relaxed),
                c.in_use.load(Ordering::Relaxed),
            )
        })
    }
    /// A racy snapshot of one CPU's pcp count, high and batch (for /proc/zoneinfo; the
    /// batch, `pcp->batch`, is the zone's `pcp_batch` on every CPU).
    pub(crate) fn pcp_count_snapshot(&self, cpu: usize) -> (usize, usize, usize) {
        let (count, high) = self.pcp_counters(cpu).map_or((0, 0), |c| {
            (
                c.count.load(Ordering::Relaxed),
                c.high.load(Ordering::Relaxed),
            )
        });
        (count, high, self.pcp_batch)
    }
}

/// The NUMA event counters of one node (`enum numa_stat_item`, include/linux/mmzone.h),
/// as /sys/devices/system/node/nodeN/numastat and /proc/vmstat show them.
#[derive(Default)]
pub struct NumaStat {
    /// `NUMA_HIT`: allocated on the node that was asked for.
    pub hit: AtomicUsize,
    /// `NUMA_MISS`: allocated here although another node was asked for.
    pub miss: AtomicUsize,
    /// `NUMA_FOREIGN`: asked for here but allocated on another node.
    pub foreign: AtomicUsize,
    /// `NUMA_INTERLEAVE_HIT`: interleave policy allocations that got their node.
    pub interleave: AtomicUsize,
    /// `NUMA_LOCAL`: allocated on the node of the allocating CPU.
    pub local: AtomicUsize,
    /// `NUMA_OTHER`: allocated on a node other than the allocating CPU's.
    pub other: AtomicUsize,
}

impl NumaStat {
    /// The six counters in numastat's order: hit, miss, foreign, interleave, local, other.
    pub fn values(&self) -> [usize; 6] {
        [
            &self.hit,
            &self.miss,
            &self.foreign,
            &self.interleave,
            &self.local,
            &self.other,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// The nodes of a NUMA machine beyond node 0 (whose zones sit in the page allocator
/// itself): `pglist_data` of nodes `1..nr_nodes`, the topology, and every node's span and
/// NUMA counters. Allocated from memblock at boot only when the machine has more than one
/// node, as Linux's `alloc_node_data` allocates `NODE_DATA(nid)`; never moves.
pub struct NumaNodes<L: lock_api::RawMutex> {
    /// Distances, CPU → node map, fallback orders.
    pub info: crate::numa::NumaInfo,
    /// `node_start_pfn`, `node_spanned_pages`, `node_present_pages` of every node.
    pub span: [ZoneGeometry; crate::numa::MAX_NUMA_NODES],
    /// The NUMA counters of every zone of every node (`zone->vm_numa_event`).
    pub stat: [[NumaStat; NR_ZONE_KINDS]; crate::numa::MAX_NUMA_NODES],
    /// `node_zones` of nodes `1..nr_nodes` (index `nid - 1`); the others stay empty.
    pub zones: [[Zone<L>; NR_ZONE_KINDS]; crate::numa::MAX_NUMA_NODES - 1],
}
