//! The page allocator's side of memory compaction (mm/compaction.c, mm/vmstat.c,
//! mm/page_alloc.c): what compaction needs from the free areas and what the allocation slow
//! path needs from compaction. The scanners themselves (`compact_zone`) live in
//! [`crate::compaction`], above the layers that can migrate pages; the slow path reaches
//! them only through a [`CompactHook`] registered at boot, as it reaches reclaim.
//!
//! - **Fragmentation** (mm/vmstat.c): `fill_contig_page_info`, `__fragmentation_index`
//!   (`/sys/kernel/debug/extfrag/extfrag_index`), `unusable_free_index` (`unusable_index`),
//!   and mm/compaction.c's `extfrag_for_order` / `fragmentation_score_*` for proactive
//!   compaction.
//! - **Suitability and deferral**: `compaction_suitable` (order-0 watermark plus
//!   `compact_gap`, then `extfrag_threshold` for costly orders), `defer_compaction`,
//!   `compaction_deferred`, `compaction_defer_reset`, `compaction_restarting` with
//!   `COMPACT_MAX_DEFER_SHIFT`.
//! - **Free pages for migration targets**: `__isolate_free_page` takes a free block off its
//!   list under the zone lock (keeping the min watermark); the block is then the
//!   compaction's, counted as allocated, until it becomes a migration target
//!   (`post_alloc_hook`) or is given back with `__free_pages`.
//! - **Direct compaction** (`__alloc_pages_direct_compact`, `should_compact_retry`): for
//!   costly orders (and non-movable orders above 0) the slow path compacts before and
//!   between direct reclaim rounds, at a priority that goes from async to sync.
//!
//! # Locking
//! The zone lock is taken only to move a block off a free list (and to read the free-area
//! counts); the CPU section that keeps the in-use count is entered after it is dropped.
//! The hook's callback runs under no page-allocator lock. The counters and sysctls are
//! atomics.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::{AllocFlags, PageAllocator};
use crate::addr::{Order, Pfn, NR_PAGE_ORDERS};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mmzone::{
    MigrateType, Zone, ZoneType, PAGEBLOCK_ORDER, PAGE_ALLOC_COSTLY_ORDER, WMARK_LOW, WMARK_MIN,
};
use crate::platform::Platform;

/// `COMPACT_MAX_DEFER_SHIFT` (mm/compaction.c): at most `1 << 6` attempts are skipped.
pub const COMPACT_MAX_DEFER_SHIFT: usize = 6;
/// `COMPACTION_HPAGE_ORDER`: the order proactive compaction works for (`HPAGE_PMD_ORDER`).
pub const COMPACTION_HPAGE_ORDER: u32 = PAGEBLOCK_ORDER;
/// `HPAGE_FRAG_CHECK_INTERVAL_MSEC`: kcompactd's proactive check period.
pub const HPAGE_FRAG_CHECK_INTERVAL_MSEC: u64 = 500;
/// `MAX_COMPACT_RETRIES` (mm/page_alloc.c).
pub const MAX_COMPACT_RETRIES: usize = 16;
/// `sysctl_extfrag_threshold`'s default.
pub const EXTFRAG_THRESHOLD_DEFAULT: usize = 500;
/// `sysctl_compaction_proactiveness`'s default.
pub const COMPACTION_PROACTIVENESS_DEFAULT: usize = 20;

/// `enum compact_result` (include/linux/compaction.h), in Linux's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompactResult {
    /// `COMPACT_NOT_SUITABLE_ZONE`: the zone is not worth compacting (fragindex).
    NotSuitableZone,
    /// `COMPACT_SKIPPED`: not enough free memory to compact.
    Skipped,
    /// `COMPACT_DEFERRED`: recent failures defer compaction at this order.
    Deferred,
    /// `COMPACT_NO_SUITABLE_PAGE`: no page of the order yet (internal).
    NoSuitablePage,
    /// `COMPACT_CONTINUE`: keep going.
    Continue,
    /// `COMPACT_COMPLETE`: the whole zone was scanned without success.
    Complete,
    /// `COMPACT_PARTIAL_SKIPPED`: the scanners met, but part of the zone was skipped.
    PartialSkipped,
    /// `COMPACT_CONTENDED`: aborted (target allocation failed, or contention).
    Contended,
    /// `COMPACT_SUCCESS`: a page of the order is free.
    Success,
}

/// `enum compact_priority`: lower is more thorough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompactPriority {
    /// `COMPACT_PRIO_SYNC_FULL` (`MIN_COMPACT_PRIORITY`): sync migration, skip hints
    /// ignored, the whole zone.
    SyncFull = 0,
    /// `COMPACT_PRIO_SYNC_LIGHT` (`MIN_COMPACT_COSTLY_PRIORITY`, `DEF_COMPACT_PRIORITY`).
    SyncLight = 1,
    /// `COMPACT_PRIO_ASYNC` (`INIT_COMPACT_PRIORITY`).
    Async = 2,
}

/// Direct compaction as the slow path calls it (`try_to_compact_pages`), registered by the
/// layer that can migrate pages.
#[derive(Clone, Copy)]
pub struct CompactHook {
    /// The registering layer, handed back.
    pub ctx: *const (),
    /// Compacts the zones an allocation of `order` with `gfp` may use (highest first) at
    /// `prio`; returns the best result of the zones (`COMPACT_SKIPPED` when none was
    /// suitable).
    pub direct: unsafe fn(
        ctx: *const (),
        gfp: GfpFlags,
        order: u32,
        highest: ZoneType,
        prio: CompactPriority,
        nid: usize,
        nodemask: u64,
    ) -> CompactResult,
    /// `wakeup_kcompactd(pgdat, …)`: kswapd balanced node `nid` after an allocation of
    /// `order` missed its watermark; the node's kcompactd runs (synchronously) if a zone of
    /// the node up to `highest` can be compacted for it.
    pub wake_kcompactd: unsafe fn(ctx: *const (), nid: usize, order: u32, highest: ZoneType),
}

// SAFETY: `ctx` is only handed back to the callback, whose registrant guarantees it may be
// used from any thread while registered (`set_compact_hook`'s contract).
unsafe impl Send for CompactHook {}

/// The compaction event counters of /proc/vmstat (`COMPACTMIGRATE_SCANNED` …
/// `KCOMPACTD_FREE_SCANNED`, include/linux/vm_event_item.h).
#[derive(Default)]
pub struct CompactStats {
    /// `compact_migrate_scanned`
    pub migrate_scanned: AtomicU64,
    /// `compact_free_scanned`
    pub free_scanned: AtomicU64,
    /// `compact_isolated`: pages isolated by both scanners.
    pub isolated: AtomicU64,
    /// `compact_stall`: direct compaction runs.
    pub stall: AtomicU64,
    /// `compact_fail`
    pub fail: AtomicU64,
    /// `compact_success`
    pub success: AtomicU64,
    /// `compact_daemon_wake`
    pub daemon_wake: AtomicU64,
    /// `compact_daemon_migrate_scanned`
    pub daemon_migrate_scanned: AtomicU64,
    /// `compact_daemon_free_scanned`
    pub daemon_free_scanned: AtomicU64,
}

impl CompactStats {
    /// `(name, value)` in /proc/vmstat's order (mm/vmstat.c `vmstat_text`).
    pub fn lines(&self) -> [(&'static str, u64); 9] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("compact_migrate_scanned", g(&self.migrate_scanned)),
            ("compact_free_scanned", g(&self.free_scanned)),
            ("compact_isolated", g(&self.isolated)),
            ("compact_stall", g(&self.stall)),
            ("compact_fail", g(&self.fail)),
            ("compact_success", g(&self.success)),
            ("compact_daemon_wake", g(&self.daemon_wake)),
            (
                "compact_daemon_migrate_scanned",
                g(&self.daemon_migrate_scanned),
            ),
            ("compact_daemon_free_scanned", g(&self.daemon_free_scanned)),
        ]
    }
}

/// `/proc/sys/vm` knobs of compaction (mm/compaction.c `vm_compaction[]`).
pub struct CompactSysctl {
    /// `extfrag_threshold` (0..=1000, default 500).
    pub extfrag_threshold: AtomicUsize,
    /// `compaction_proactiveness` (0..=100, default 20).
    pub proactiveness: AtomicUsize,
    /// `compact_unevictable_allowed` (0 or 1, default 1).
    pub unevictable_allowed: AtomicBool,
}

/// The machine's compaction state kept in the page allocator: counters, sysctls, the
/// direct-compaction hook and kcompactd's request.
pub struct CompactGlobals<L: lock_api::RawMutex> {
    /// The counters.
    pub stats: CompactStats,
    /// The sysctls.
    pub sysctl: CompactSysctl,
    pub(crate) hook: crate::locking::Lock<L, Option<CompactHook>>,
    /// Each node's `pgdat->kcompactd_max_order`, plus one (0: no request).
    pub kcompactd_order: [AtomicUsize; crate::numa::MAX_NUMA_NODES],
    /// Each node's `pgdat->kcompactd_highest_zoneidx`.
    pub kcompactd_zoneidx: [AtomicUsize; crate::numa::MAX_NUMA_NODES],
    /// kcompactd's last proactive check, in jiffies.
    pub proactive_last: AtomicU64,
    /// `pgdat->proactive_compact_trigger` / the deferral of proactive runs that did not
    /// lower the score (`proactive_defer`, in check periods).
    pub proactive_defer: AtomicUsize,
    /// A compaction of the whole machine is running (`compact_memory` is not reentered).
    pub running: AtomicBool,
    /// The CPU running compaction plus one (0: none): an allocation made by migration on
    /// that CPU does not compact again (Linux's `PF_MEMALLOC`).
    pub owner: AtomicUsize,
}

impl<L: lock_api::RawMutex> CompactGlobals<L> {
    /// Linux's defaults.
    pub(crate) fn new() -> Self {
        Self {
            stats: CompactStats::default(),
            sysctl: CompactSysctl {
                extfrag_threshold: AtomicUsize::new(EXTFRAG_THRESHOLD_DEFAULT),
                proactiveness: AtomicUsize::new(COMPACTION_PROACTIVENESS_DEFAULT),
                unevictable_allowed: AtomicBool::new(true),
            },
            hook: crate::locking::Lock::new(&crate::locking::COMPACT_HOOK, None),
            kcompactd_order: [const { AtomicUsize::new(0) }; crate::numa::MAX_NUMA_NODES],
            kcompactd_zoneidx: [const { AtomicUsize::new(0) }; crate::numa::MAX_NUMA_NODES],
            proactive_last: AtomicU64::new(0),
            proactive_defer: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            owner: AtomicUsize::new(0),
        }
    }
}

/// `struct contig_page_info` (mm/vmstat.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContigPageInfo {
    /// Free pages in the zone's free areas.
    pub free_pages: u64,
    /// Free blocks of any order.
    pub free_blocks_total: u64,
    /// Free blocks of the asked order that the free blocks hold.
    pub free_blocks_suitable: u64,
}

impl ContigPageInfo {
    /// `fill_contig_page_info` from a zone's free-block counts per order.
    pub fn from_counts(counts: &[usize; NR_PAGE_ORDERS], suitable_order: u32) -> Self {
        let mut info = Self::default();
        for (o, &blocks) in counts.iter().enumerate() {
            let blocks = blocks as u64;
            info.free_blocks_total += blocks;
            info.free_pages += blocks << o;
            if o as u32 >= suitable_order {
                info.free_blocks_suitable += blocks << (o as u32 - suitable_order);
            }
        }
        info
    }

    /// `__fragmentation_index`: -1000 when a block of `order` is free; otherwise, in
    /// thousandths, how much of the failure is due to fragmentation (0: lack of memory, 1000:
    /// fragmentation); 0 with no free memory at all.
    pub fn fragmentation_index(&self, order: u32) -> i32 {
        let requested = 1u64 << order;
        if self.free_blocks_total == 0 {
            return 0;
        }
        if self.free_blocks_suitable != 0 {
            return -1000;
        }
        1000 - ((1000 + self.free_pages * 1000 / requested) / self.free_blocks_total) as i32
    }

    /// `unusable_free_index`: thousandths of free memory that cannot serve an allocation of
    /// `order` (1000 with no free memory).
    pub fn unusable_index(&self, order: u32) -> i32 {
        if self.free_pages == 0 {
            return 1000;
        }
        ((self.free_pages - (self.free_blocks_suitable << order)) * 1000 / self.free_pages) as i32
    }

    /// `extfrag_for_order`: percent of free memory not in blocks of `order` (0 with none).
    pub fn extfrag_percent(&self, order: u32) -> u32 {
        if self.free_pages == 0 {
            return 0;
        }
        ((self.free_pages - (self.free_blocks_suitable << order)) * 100 / self.free_pages) as u32
    }
}

/// `fragmentation_score_wmark`: the score proactive compaction starts above (`low ==
/// false`) and stops at (`low == true`), from `compaction_proactiveness`.
pub fn fragmentation_score_wmark(proactiveness: usize, low: bool) -> u32 {
    let wmark_low = 100usize.saturating_sub(proactiveness).max(5) as u32;
    if low {
        wmark_low
    } else {
        (wmark_low + 10).min(100)
    }
}

impl<P: Platform> PageAllocator<P> {
    /// Registers (or with `None` removes) direct compaction for the slow path.
    ///
    /// # Safety
    /// While registered, `hook.ctx` must stay valid for the callback from any thread; the
    /// callback must not allocate with `__GFP_DIRECT_RECLAIM` (compaction does not recurse).
    pub unsafe fn set_compact_hook(&self, hook: Option<CompactHook>) {
        // Lock order: compact_hook (leaf), under no lock.
        *self.compaction.hook.lock() = hook;
    }

    fn compact_hook(&self) -> Option<CompactHook> {
        // Lock order: compact_hook (leaf), copied out before the callback runs.
        *self.compaction.hook.lock()
    }

    /// Wakes node `nid`'s kcompactd through the registered hook (the node's kswapd calls it
    /// after a run for `order`); nothing without a hook.
    ///
    /// Only costly orders wake it: kcompactd runs synchronously in the waker's context, and
    /// orders up to `PAGE_ALLOC_COSTLY_ORDER` are allocated by the slab allocators inside a
    /// CPU section, where migration must not run (Linux's kcompactd is a thread and takes
    /// every order above 0).
    pub fn kcompactd_wake(&self, nid: usize, order: u32) {
        if order <= PAGE_ALLOC_COSTLY_ORDER {
            return;
        }
        let Some(h) = self.compact_hook() else { return };
        let top = *self.arch().zones().last().unwrap_or(&ZoneType::Normal);
        // SAFETY: registered with a ctx valid while registered (set_compact_hook).
        unsafe { (h.wake_kcompactd)(h.ctx, nid, order, top) };
    }

    /// `fill_contig_page_info` for zone `kind` and `order`.
    pub fn contig_page_info(&self, kind: ZoneType, order: u32) -> ContigPageInfo {
        ContigPageInfo::from_counts(&self.free_area_counts(kind), order)
    }

    /// `fragmentation_index(zone, order)`.
    pub fn fragmentation_index(&self, kind: ZoneType, order: u32) -> i32 {
        self.contig_page_info(kind, order)
            .fragmentation_index(order)
    }

    /// `fragmentation_score_zone`: `extfrag_for_order(zone, COMPACTION_HPAGE_ORDER)`.
    pub fn fragmentation_score_zone(&self, kind: ZoneType) -> u32 {
        self.fragmentation_score_of(self.zone(kind))
    }

    /// [`Self::fragmentation_score_zone`] of any node's zone.
    pub fn fragmentation_score_of(&self, zone: &Zone<P::RawLock>) -> u32 {
        ContigPageInfo::from_counts(&self.zone_free_area_counts(zone), COMPACTION_HPAGE_ORDER)
            .extfrag_percent(COMPACTION_HPAGE_ORDER)
    }

    /// `fragmentation_score_node`: the zones' scores weighted by their present pages.
    pub fn fragmentation_score_node(&self) -> u32 {
        let node: u64 = self.zones().map(|z| z.geo.present).sum();
        if node == 0 {
            return 0;
        }
        self.zones()
            .filter(|z| z.is_populated())
            .map(|z| {
                let s = u64::from(self.fragmentation_score_of(z));
                (s * z.geo.present / node) as u32
            })
            .sum()
    }

    /// `__compaction_suitable`: whether the zone keeps its order-0 watermark (low for costly
    /// orders, min otherwise) plus `compact_gap(order)` (twice the order's pages), counting
    /// free CMA pages (they are migration targets).
    pub fn compaction_watermark_ok(
        &self,
        zone: &Zone<P::RawLock>,
        order: u32,
        hi: ZoneType,
    ) -> bool {
        let wm = if order > PAGE_ALLOC_COSTLY_ORDER {
            zone.wmark(WMARK_LOW)
        } else {
            zone.wmark(WMARK_MIN)
        };
        let wm = wm + (2usize << order);
        let reserve = zone.lowmem_reserve[hi.index()].load(Ordering::Relaxed);
        zone.stats.free_pages() > wm + reserve
    }

    /// `compaction_suitable`: the watermark check, then for costly orders the fragmentation
    /// index: a zone whose failure would be due to lack of memory (index at or below
    /// `extfrag_threshold`) is not compacted.
    pub fn compaction_suitable(&self, zone: &Zone<P::RawLock>, order: u32, hi: ZoneType) -> bool {
        if !self.compaction_watermark_ok(zone, order, hi) {
            return false;
        }
        if order > PAGE_ALLOC_COSTLY_ORDER {
            let fragindex = self.fragmentation_index(zone.kind, order);
            let threshold = self
                .compaction
                .sysctl
                .extfrag_threshold
                .load(Ordering::Relaxed);
            if fragindex >= 0 && fragindex as usize <= threshold {
                return false;
            }
        }
        true
    }

    /// `__isolate_free_page` for the free scanner: takes the free block whose head is `pfn`
    /// off its list, if it still is a free block head outside an isolated pageblock and the
    /// zone keeps its min watermark plus the block. Returns the block's order; the block is then compaction's (counted as
    /// allocated) until [`Self::compaction_prep_page`] or `__free_pages`.
    pub(crate) fn isolate_free_page(&self, zone: &Zone<P::RawLock>, pfn: Pfn) -> Option<Order> {
        let page = self.page(pfn);
        let order = {
            // Lock order: &zone->lock (rank 5), under no other lock; docs/LOCKING.md.
            let mut free = zone.free.lock();
            if !page.is_buddy() {
                return None;
            }
            let order = Order::new(page.private() as u32);
            let mt = zone.pageblock_migratetype(pfn);
            // An isolated pageblock is being gathered (alloc_contig_range for CMA): its free
            // pages are not compaction's to take.
            if mt == MigrateType::Isolate {
                return None;
            }
            let wm = zone.wmark(WMARK_MIN) + order.pages();
            if zone.stats.free_pages() <= wm {
                return None;
            }
            self.del_from_free_list(&mut free, page, order, mt);
            order
        };
        zone.stats
            .nr_free_pages
            .fetch_sub(order.pages() as isize, Ordering::Relaxed);
        self.account_in_use(zone, order.pages() as isize);
        Some(order)
    }

    /// Counts `delta` pages as allocated from `zone` (the per-CPU in-use count that
    /// `rmqueue` and `free_pages_prepared` keep).
    fn account_in_use(&self, zone: &Zone<P::RawLock>, delta: isize) {
        if zone.pcp.is_null() {
            return;
        }
        // Lock order: cpu_section (rank 3), &pcp->lock under it; docs/LOCKING.md.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's guard; the zone has lists (checked above) and this CPU
        // does not hold its lists already (nothing in compaction does).
        unsafe { zone.pcp_of(g.cpu()) }.add_in_use(delta);
    }

    /// `post_alloc_hook` for a block that [`Self::isolate_free_page`] (or a split of it)
    /// gave compaction: the block becomes an ordinary allocation of `order` with one
    /// reference, to be a migration target or to be freed with `__free_pages`.
    pub(crate) fn compaction_prep_page(&self, page: PagePtr, order: Order) {
        self.prep_new_page(page, order, GfpFlags::__GFP_MOVABLE);
    }

    /// `defer_compaction`: compaction of `order` failed in `zone`; the next attempts are
    /// skipped, twice as many each time (up to `1 << COMPACT_MAX_DEFER_SHIFT`).
    pub fn defer_compaction(&self, zone: &Zone<P::RawLock>, order: u32) {
        let c = &zone.compact;
        c.considered.store(0, Ordering::Relaxed);
        let s = c.defer_shift.load(Ordering::Relaxed);
        if s < COMPACT_MAX_DEFER_SHIFT {
            c.defer_shift.store(s + 1, Ordering::Relaxed);
        }
        if (order as usize) < c.order_failed.load(Ordering::Relaxed) {
            c.order_failed.store(order as usize, Ordering::Relaxed);
        }
    }

    /// `compaction_deferred`: whether this attempt at `order` is skipped (counting it).
    pub fn compaction_deferred(&self, zone: &Zone<P::RawLock>, order: u32) -> bool {
        let c = &zone.compact;
        if (order as usize) < c.order_failed.load(Ordering::Relaxed) {
            return false;
        }
        let limit = 1usize << c.defer_shift.load(Ordering::Relaxed);
        let n = c.considered.load(Ordering::Relaxed) + 1;
        if n >= limit {
            c.considered.store(limit, Ordering::Relaxed);
            return false;
        }
        c.considered.store(n, Ordering::Relaxed);
        true
    }

    /// `compaction_defer_reset`: compaction (or the allocation after it) succeeded at
    /// `order`.
    pub fn compaction_defer_reset(&self, zone: &Zone<P::RawLock>, order: u32, alloc_success: bool) {
        let c = &zone.compact;
        if alloc_success {
            c.considered.store(0, Ordering::Relaxed);
            c.defer_shift.store(0, Ordering::Relaxed);
        }
        if order as usize >= c.order_failed.load(Ordering::Relaxed) {
            c.order_failed.store(order as usize + 1, Ordering::Relaxed);
        }
    }

    /// `compaction_restarting`: deferred as long as it can be, and that long has passed.
    pub fn compaction_restarting(&self, zone: &Zone<P::RawLock>, order: u32) -> bool {
        let c = &zone.compact;
        (order as usize) >= c.order_failed.load(Ordering::Relaxed)
            && c.defer_shift.load(Ordering::Relaxed) == COMPACT_MAX_DEFER_SHIFT
            && c.considered.load(Ordering::Relaxed) >= 1 << COMPACT_MAX_DEFER_SHIFT
    }

    /// Whether the slow path compacts for this request: costly orders with direct reclaim
    /// allowed. (Linux also compacts for non-movable orders 1..=3; in kmem those are the
    /// slab allocators' and are made inside a CPU section, where migration must not run.)
    fn wants_direct_compact(&self, gfp: GfpFlags, order: Order) -> bool {
        order.as_u32() > PAGE_ALLOC_COSTLY_ORDER && gfp.contains(GfpFlags::__GFP_DIRECT_RECLAIM)
    }

    /// `__alloc_pages_direct_compact`: compacts through the hook at `prio`, then tries the
    /// free lists. Counts `compact_stall` and `compact_success`/`compact_fail` (not when
    /// every zone was skipped). Returns the page and the compaction result.
    fn alloc_pages_direct_compact(
        &self,
        gfp: GfpFlags,
        order: Order,
        af: AllocFlags,
        highest: ZoneType,
        prio: CompactPriority,
    ) -> (Option<PagePtr>, CompactResult) {
        let Some(h) = self.compact_hook() else {
            return (None, CompactResult::Skipped);
        };
        // SAFETY: registered with a ctx valid while registered (set_compact_hook).
        let r = unsafe {
            (h.direct)(
                h.ctx,
                gfp,
                order.as_u32(),
                highest,
                prio,
                af.nid,
                af.nodemask,
            )
        };
        if r == CompactResult::Skipped {
            return (None, r);
        }
        let st = &self.compaction.stats;
        st.stall.fetch_add(1, Ordering::Relaxed);
        match self.get_page_from_freelist(gfp, order, af, highest) {
            Some(p) => {
                let zone = self.page_zone(p);
                zone.compact.blockskip_flush.store(false, Ordering::Relaxed);
                self.compaction_defer_reset(zone, order.as_u32(), true);
                st.success.fetch_add(1, Ordering::Relaxed);
                (Some(p), r)
            }
            None => {
                st.fail.fetch_add(1, Ordering::Relaxed);
                (None, r)
            }
        }
    }

    /// The slow path's compaction step: the first attempt is async (`INIT_COMPACT_PRIORITY`);
    /// each retry after a failure raises the priority (`should_compact_retry`), down to
    /// `MIN_COMPACT_COSTLY_PRIORITY` for costly orders. `state` carries the priority and the
    /// retry count between calls; `None` from it means compaction has nothing more to try.
    pub(super) fn slowpath_compact(
        &self,
        gfp: GfpFlags,
        order: Order,
        af: AllocFlags,
        highest: ZoneType,
        state: &mut Option<(CompactPriority, usize)>,
    ) -> Option<PagePtr> {
        if !self.wants_direct_compact(gfp, order) {
            *state = None;
            return None;
        }
        let (prio, retries) = (*state)?;
        let (page, r) = self.alloc_pages_direct_compact(gfp, order, af, highest, prio);
        if page.is_some() {
            return page;
        }
        // should_compact_retry: a skipped or deferred run (or one that used every priority)
        // raises the priority; give up after MAX_COMPACT_RETRIES or at the lowest one.
        let min = if order.as_u32() > PAGE_ALLOC_COSTLY_ORDER {
            CompactPriority::SyncLight
        } else {
            CompactPriority::SyncFull
        };
        let next = match r {
            CompactResult::Success if retries + 1 < MAX_COMPACT_RETRIES => {
                Some((prio, retries + 1))
            }
            _ if prio > min => {
                let p = if prio == CompactPriority::Async {
                    CompactPriority::SyncLight
                } else {
                    CompactPriority::SyncFull
                };
                Some((p, retries + 1))
            }
            _ => None,
        };
        *state = next;
        None
    }
}
