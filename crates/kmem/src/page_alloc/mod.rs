//! The buddy page allocator (mm/page_alloc.c).
//!
//! Each zone keeps `free_area[0..=MAX_PAGE_ORDER]`, one free list per migratetype per order.
//! A free block of order `n` is `1 << n` naturally aligned frames; its first `struct page`
//! is marked `PageBuddy` with the order in `private`. Allocation takes the smallest block
//! that fits and halves it (`expand`), putting the unused halves back; freeing merges a
//! block with its buddy at `pfn ^ (1 << order)` while the buddy is free at the same order
//! (`__free_one_page`).
//!
//! Orders 0..=3 (`PAGE_ALLOC_COSTLY_ORDER`) go through per-CPU page lists first: allocation
//! pops from the current CPU's list and refills it `batch` blocks at a time under the zone
//! lock; freeing pushes onto it and gives `batch` back when it holds more than `high`. A
//! non-empty list of the preferred zone is served before the zonelist walk and the watermark
//! check; `alloc_pages_bulk` fills an array of order-0 pages in one CPU section (see
//! `page_alloc/bulk.rs` for both and for the free-time checks).
//!
//! # Migratetypes
//! Every pageblock (order 9) has a migratetype. A free block sits on the list of its
//! pageblock's type; a block of pageblock order or more has all its pageblocks of one type.
//! When a type's lists are empty the allocator falls back as Linux does (`fallbacks[]`):
//! first it tries to *claim* a whole pageblock from the largest suitable block
//! (`__rmqueue_claim`: whole block for order ≥ pageblock_order, otherwise the pageblock changes
//! type when at least half of it is free), then *steals* the smallest block without
//! claiming (`__rmqueue_steal`).
//!
//! # Zones and watermarks
//! `gfp_zone` picks the highest usable zone; the zonelist falls back to lower zones. A zone
//! serves an allocation only while its free pages stay above the watermark plus
//! `lowmem_reserve[highest zone]`; `__GFP_HIGH` may dip to half of min, and non-blocking
//! high-priority requests (GFP_ATOMIC) to 3/8 of it (`__zone_watermark_ok`).
//!
//! # Locking
//! The zone lock protects the free areas and the pages on them. A CPU's pcp lists are used
//! only inside its [`CpuGuard`](crate::platform::CpuGuard). The fast path (pcp hit) takes no lock and does no atomic
//! read-modify-write.
//!
//! # Bad input
//! kmem records the order of every allocation in its head page and checks it on free, even
//! though Linux only catches a wrong order with debugging on. Freeing with the wrong order,
//! freeing a free page (double free), a reserved page, a tail page, a typed page (slab,
//! page table) or an address without a `struct page` prints `BUG: Bad page state` and
//! changes nothing.

use core::sync::atomic::{AtomicUsize, Ordering};

use kds::list::{self, ListHead};

use crate::addr::{Order, Pfn, VirtAddr, MAX_PAGE_ORDER, NR_PAGE_ORDERS, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::cpuhp::{CpuhpEntry, CpuhpState};
use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::{MemoryModel, ORDERS};
use crate::mmzone::{
    MigrateType, PcpGuard, Zone, ZoneFree, ZoneType, MIGRATE_PCPTYPES, NR_PCP_LISTS, NR_ZONE_KINDS,
    PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, PAGE_ALLOC_COSTLY_ORDER, WMARK_HIGH, WMARK_LOW, WMARK_MIN,
    WMARK_PROMO,
};
use crate::platform::Platform;

mod bulk;
pub mod cma;
pub mod compaction;
mod introspect;
mod isolation;
pub mod memmap_share;
mod node;
mod nolock;
mod show_mem;
mod wmark;

pub use cma::{Cma, CmaState, MigrateHook, MAX_CMA_AREAS};
pub use compaction::{CompactHook, CompactPriority, CompactResult};
pub use node::NUMA_NO_NODE;

/// The page allocator layer of a machine: the memory model plus the zones (`pglist_data`'s
/// `node_zones`), their free areas and per-CPU lists. Dereferences to the
/// [`MemoryModel`] below it. See the module documentation for the locking rules.
pub struct PageAllocator<P: Platform> {
    pub(crate) mm: MemoryModel<P>,
    pub(crate) zones: [Zone<P::RawLock>; NR_ZONE_KINDS],
    pub(crate) min_free_kbytes: AtomicUsize,
    /// `totalram_pages`.
    pub(crate) totalram: AtomicUsize,
    /// The reclaim callbacks registered from above ([`ReclaimHook`]).
    pub(crate) reclaim: crate::locking::Lock<P::RawLock, Option<ReclaimHook>>,
    /// CMA areas, `cma_map` and the migration hook (`page_alloc/cma.rs`).
    pub(crate) cma: crate::locking::Lock<P::RawLock, CmaState>,
    /// `totalcma_pages`.
    pub(crate) totalcma: AtomicUsize,
    /// Compaction's counters, sysctls and hook (`page_alloc/compaction.rs`).
    pub compaction: compaction::CompactGlobals<P::RawLock>,
    /// The other nodes of a NUMA machine (`page_alloc/node.rs`); null with one node.
    pub(crate) numa: node::NumaRef<P::RawLock>,
}

/// Reclaim as the page allocator's slow path calls it, registered by the layer that owns
/// reclaim (the allocator never names it, as with [`crate::mm::cpuhp`]).
#[derive(Clone, Copy)]
pub struct ReclaimHook {
    /// The registering layer, handed back to the callbacks.
    pub ctx: *const (),
    /// `wakeup_kswapd`: an allocation of `order` for zones up to `highest` missed the low
    /// watermark; wakes the kswapd of node `nid` (called for each node of the zonelist,
    /// `wake_all_kswapds`).
    pub wake_kswapd: unsafe fn(ctx: *const (), nid: usize, order: u32, highest: ZoneType),
    /// `__alloc_pages_direct_reclaim`: frees pages for an allocation of `order` with `gfp`
    /// whose zonelist is node `nid`'s, restricted to `nodemask` (bit per node); returns how
    /// many (0: no progress).
    pub direct:
        unsafe fn(ctx: *const (), gfp: GfpFlags, order: u32, nid: usize, nodemask: u64) -> usize,
}

// SAFETY: `ctx` is only handed back to the callbacks, whose registrant guarantees it may be
// used from any thread while registered (`set_reclaim_hook`'s contract).
unsafe impl Send for ReclaimHook {}

/// `MAX_RECLAIM_RETRIES`: direct reclaim rounds before an allocation gives up.
pub const MAX_RECLAIM_RETRIES: usize = 16;

impl<P: Platform> core::ops::Deref for PageAllocator<P> {
    type Target = MemoryModel<P>;
    #[inline]
    fn deref(&self) -> &MemoryModel<P> {
        &self.mm
    }
}

impl<P: Platform> PageAllocator<P> {
    /// The layer over `mm` with `zones` as laid out at boot (free areas still empty).
    pub(crate) fn new(
        mm: MemoryModel<P>,
        zones: [Zone<P::RawLock>; NR_ZONE_KINDS],
        numa: *const crate::mmzone::NumaNodes<P::RawLock>,
    ) -> Self {
        Self {
            mm,
            zones,
            min_free_kbytes: AtomicUsize::new(0),
            totalram: AtomicUsize::new(0),
            reclaim: crate::locking::Lock::new(&crate::locking::RECLAIM_HOOK, None),
            cma: crate::locking::Lock::new(&crate::locking::CMA_MUTEX, CmaState::new()),
            totalcma: AtomicUsize::new(0),
            compaction: compaction::CompactGlobals::new(),
            numa: node::NumaRef(numa),
        }
    }

    /// A zone of node 0 by kind (see [`Self::node_zone`] for the others).
    #[inline]
    pub fn zone(&self, kind: ZoneType) -> &Zone<P::RawLock> {
        &self.zones[kind.index()]
    }
    /// The configured zones of every online node, node by node, lowest first
    /// (`for_each_zone`).
    pub fn zones(&self) -> impl Iterator<Item = &Zone<P::RawLock>> + '_ {
        (0..self.nr_online_nodes()).flat_map(move |n| self.node_zones(n))
    }
    /// `totalram_pages()`.
    pub fn totalram_pages(&self) -> usize {
        self.totalram.load(Ordering::Relaxed)
    }
    /// Pages currently allocated from the page allocator (not on any free or pcp list).
    pub fn pages_in_use(&self) -> isize {
        self.zones()
            .map(|z| self.pcp_pages_in_use(z))
            .sum::<isize>()
    }
    /// Registers (or with `None` removes) the reclaim callbacks of the slow path.
    ///
    /// # Safety
    /// While registered, `hook.ctx` must stay valid for the callbacks from any thread, and
    /// the callbacks must not allocate with `__GFP_DIRECT_RECLAIM` or `__GFP_KSWAPD_RECLAIM`
    /// (reclaim does not recurse).
    pub unsafe fn set_reclaim_hook(&self, hook: Option<ReclaimHook>) {
        // Lock order: reclaim_hook (leaf), under no lock.
        *self.reclaim.lock() = hook;
    }
    /// The registered reclaim callbacks.
    fn reclaim_hook(&self) -> Option<ReclaimHook> {
        // Lock order: reclaim_hook (leaf), copied out before any callback runs.
        *self.reclaim.lock()
    }
    /// The slow path's reclaim: wakes kswapd, retries at the min watermark, then reclaims
    /// directly (up to [`MAX_RECLAIM_RETRIES`] rounds while they make progress).
    fn alloc_pages_reclaim(
        &self,
        gfp: GfpFlags,
        order: Order,
        slow: AllocFlags,
        highest: ZoneType,
    ) -> Option<PagePtr> {
        let hook = self.reclaim_hook();
        if let Some(h) = hook {
            if gfp.contains(GfpFlags::__GFP_KSWAPD_RECLAIM) {
                // wake_all_kswapds: each node of the zonelist once, in fallback order.
                for &nid in self.zonelist_nodes(slow.nid, gfp) {
                    if slow.nodemask & (1 << nid) != 0 {
                        // SAFETY: registered with a ctx valid while registered
                        // (set_reclaim_hook).
                        unsafe {
                            (h.wake_kswapd)(h.ctx, usize::from(nid), order.as_u32(), highest)
                        };
                    }
                }
            }
        }
        if let Some(p) = self.get_page_from_freelist(gfp, order, slow, highest) {
            return Some(p);
        }
        // Direct compaction first for costly orders (async), then between reclaim rounds.
        let mut cst = Some((CompactPriority::Async, 0));
        if let Some(p) = self.slowpath_compact(gfp, order, slow, highest, &mut cst) {
            return Some(p);
        }
        if !gfp.contains(GfpFlags::__GFP_DIRECT_RECLAIM) {
            return None;
        }
        for _ in 0..MAX_RECLAIM_RETRIES {
            // SAFETY: the reclaim hook was registered with a `ctx` that stays valid while it is
            // registered (`set_reclaim_hook`'s contract), and `h` was read from that registration.
            let progress = hook.map_or(0, |h| unsafe {
                (h.direct)(h.ctx, gfp, order.as_u32(), slow.nid, slow.nodemask)
            });
            if let Some(p) = self.get_page_from_freelist(gfp, order, slow, highest) {
                return Some(p);
            }
            // __alloc_pages_direct_reclaim: the pages reclaim freed may sit on per-CPU lists,
            // which the watermark check does not count: drain them and try again.
            if progress > 0 {
                self.drain_all_pages();
                if let Some(p) = self.get_page_from_freelist(gfp, order, slow, highest) {
                    return Some(p);
                }
            }
            if let Some(p) = self.slowpath_compact(gfp, order, slow, highest, &mut cst) {
                return Some(p);
            }
            if progress == 0 && cst.is_none() {
                break;
            }
        }
        None
    }
    /// `min_free_kbytes`.
    pub fn min_free_kbytes(&self) -> usize {
        self.min_free_kbytes.load(Ordering::Relaxed)
    }

    /// Initialises the free lists and per-CPU lists in place (they point at themselves, so
    /// only once the layer sits at its final address in the machine's state).
    pub(crate) fn init_lists(&self) {
        for z in self.zone_slots() {
            // Lock order: &zone->lock (rank 5), boot; docs/LOCKING.md.
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
            // A platform that cannot make the other CPUs execute a barrier gets owners that
            // always lock their lists (mmzone.rs `PcpSlot`): a drainer stays pending forever.
            let locked = !self.platform().membarrier();
            for cpu in 0..self.possible_cpus {
                if locked {
                    // SAFETY: `cpu < possible_cpus` (the loop) and this zone has lists (its
                    // `pcp` is non-null, checked above, with `possible_cpus` slots).
                    unsafe { z.pcp_drain_begin(cpu) };
                }
                // SAFETY: boot runs alone; nobody else uses per-CPU data yet.
                let mut p_guard = unsafe { z.pcp_remote(cpu, || {}) };
                let p = &mut *p_guard;
                for l in p.lists.iter_mut() {
                    // SAFETY: boot runs alone and `p` is this CPU's own entry; the list head
                    // is inside memblock memory that never moves.
                    unsafe { ListHead::init(l) };
                }
            }
        }
    }

    /// `memblock_free_all`: every free memblock range goes to the buddy allocator.
    pub(crate) fn memblock_free_all(&self) {
        // Lock order: memblock_lock (rank 1), &zone->lock under it; docs/LOCKING.md.
        let mut mb = self.memblock.lock();
        // free_low_memory_core_early: hotpluggable memory (kept from boot allocations under
        // movable_node) goes to the buddy allocator like the rest.
        if mb.memory.regions().iter().any(|r| r.is_hotpluggable()) {
            let _ = mb.clear_hotplug(
                crate::addr::PhysAddr::new(0),
                crate::addr::PHYS_ADDR_MAX.as_u64(),
            );
        }
        // mm/memblock.c memmap_init_reserved_pages: reserved regions take the node of the
        // memory they lie in (memblock_set_node on memblock.reserved per memory region). A
        // reserved array too full to split keeps its nodes; only debugfs shows them.
        for i in 0..mb.memory.cnt() {
            let r = mb.memory.regions()[i];
            let _ = mb.set_node(
                r.base,
                r.size,
                crate::memblock::MemblockKind::Reserved,
                r.nid,
            );
        }
        let mut total = 0usize;
        for r in mb.free_ranges() {
            let start = r.base.as_u64().div_ceil(PAGE_SIZE as u64);
            let end = r.end() >> PAGE_SHIFT;
            if end > start {
                total += self.free_boot_range(Pfn::new(start), Pfn::new(end));
            }
        }
        drop(mb);
        self.totalram.store(total, Ordering::Relaxed);
    }

    /// Attaches the zone locks to the machine's lock validator, if it has one.
    ///
    /// # Safety
    /// Once, at boot, after `MemoryModel::lockdep_init` and before any zone lock is taken.
    pub(crate) unsafe fn lockdep_attach(&self) {
        let Some(ld) = self.lockdep() else { return };
        for z in self.zone_slots() {
            // SAFETY: the validator lives as long as the platform, so as the zones.
            unsafe { z.free.attach(ld) };
        }
        // SAFETY: the validator lives as long as the platform, so as long as `cma`'s mutex (a field
        // of this layer) can be locked; `attach`'s contract is met.
        unsafe { self.cma.attach(ld) };
    }

    /// Registers the page allocator's CPU-dead teardown (`page_alloc_cpu_dead`).
    pub(crate) fn register_cpuhp(&self) {
        let entry = CpuhpEntry {
            name: "mm/page_alloc:pcp",
            ctx: (self as *const Self).cast(),
            teardown: page_alloc_cpu_dead::<P>,
        };
        // Lock order: cpuhp_state_mutex (rank 6, leaf), boot; docs/LOCKING.md.
        self.cpuhp.lock().register(CpuhpState::PageAllocDead, entry);
    }
}

/// Allocation flags derived from GFP (`ALLOC_*` of mm/internal.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AllocFlags {
    wmark: usize,
    /// `ALLOC_MIN_RESERVE`: `__GFP_HIGH`.
    min_reserve: bool,
    /// `ALLOC_NON_BLOCK`: the caller cannot reclaim.
    non_block: bool,
    /// `ALLOC_NO_WATERMARKS`: `__GFP_MEMALLOC`.
    no_watermarks: bool,
    /// The preferred node (`ac->preferred_zoneref`'s node).
    nid: usize,
    /// `ac->nodemask`: the nodes the zonelist walk may use (bit per node; all by default).
    nodemask: u64,
}

/// `gfp_zone`: the highest zone kind an allocation may use on `arch`.
#[inline]
pub fn gfp_zone(arch: crate::arch::Arch, gfp: GfpFlags) -> ZoneType {
    let has = |z: ZoneType| arch.zones().contains(&z);
    if !gfp.intersects(GfpFlags::GFP_ZONEMASK)
        || gfp.bits() & GfpFlags::GFP_ZONEMASK.bits() == GfpFlags::__GFP_MOVABLE.bits()
    {
        ZoneType::Normal
    } else if gfp.contains(GfpFlags::__GFP_DMA) {
        ZoneType::Dma
    } else if gfp.contains(GfpFlags::__GFP_DMA32) {
        if has(ZoneType::Dma32) {
            ZoneType::Dma32
        } else {
            ZoneType::Normal
        }
    } else if gfp.contains(GfpFlags::__GFP_HIGHMEM) {
        if gfp.contains(GfpFlags::__GFP_MOVABLE) {
            ZoneType::Movable
        } else if has(ZoneType::HighMem) {
            ZoneType::HighMem
        } else {
            ZoneType::Normal
        }
    } else {
        ZoneType::Normal
    }
}

#[inline]
fn pcp_index(order: Order, mt: MigrateType) -> usize {
    order.as_usize() * MIGRATE_PCPTYPES + mt as usize
}

/// `nr_free_pages`-like snapshot of one zone's free areas.
pub type FreeAreaCounts = [usize; NR_PAGE_ORDERS];

// ------------------------------------------------------------------ free-area primitives
// All of these run under the zone lock (`free` is the locked data).

impl<P: Platform> PageAllocator<P> {
    pub(crate) fn add_to_free_list(
        &self,
        free: &mut ZoneFree,
        page: PagePtr,
        order: Order,
        mt: MigrateType,
        tail: bool,
    ) {
        page.set_private(order.as_usize());
        page.set_page_type(crate::mm::mm_types::PageType::Buddy);
        let area = &mut free.area[order.as_usize()];
        let head: *mut ListHead = &mut area.free_list[mt as usize];
        // SAFETY: the list head lives in the (pinned) zone; the page is free and ours under
        // the zone lock.
        unsafe {
            if tail {
                list::list_add_tail(page.lru(), head)
            } else {
                list::list_add(page.lru(), head)
            }
        }
        area.nr_free += 1;
        area.nr_free_mt[mt as usize] += 1;
        if mt == MigrateType::Cma {
            self.account_free_cma(page, order.pages() as isize);
        }
    }

    pub(crate) fn del_from_free_list(
        &self,
        free: &mut ZoneFree,
        page: PagePtr,
        order: Order,
        mt: MigrateType,
    ) {
        // SAFETY: the page is on this free list (caller's invariant), under the zone lock.
        unsafe { list::list_del(page.lru()) };
        page.clear_page_type();
        page.set_private(0);
        let area = &mut free.area[order.as_usize()];
        area.nr_free -= 1;
        area.nr_free_mt[mt as usize] -= 1;
        if mt == MigrateType::Cma {
            self.account_free_cma(page, -(order.pages() as isize));
        }
    }

    fn change_pageblock_range(
        &self,
        zone: &Zone<P::RawLock>,
        pfn: Pfn,
        order: Order,
        mt: MigrateType,
    ) {
        let mut p = pfn.as_u64();
        let end = p + order.pages() as u64;
        while p < end {
            if zone.contains_pfn(Pfn::new(p)) {
                zone.set_pageblock_migratetype(Pfn::new(p), mt);
            }
            p += PAGEBLOCK_NR_PAGES as u64;
        }
    }

    /// `__free_one_page`: puts a block on the free lists, merging with free buddies.
    pub(crate) fn free_one_page_locked(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        mut pfn: Pfn,
        mut order: Order,
    ) {
        let mt = zone.pageblock_migratetype(pfn);
        while order.as_u32() < MAX_PAGE_ORDER {
            let buddy_pfn = pfn.buddy(order);
            if !zone.contains_pfn(buddy_pfn) {
                break;
            }
            let buddy = self.page(buddy_pfn);
            if !buddy.is_buddy() || buddy.private() != order.as_usize() {
                break;
            }
            let buddy_mt = zone.pageblock_migratetype(buddy_pfn);
            if order.as_u32() >= PAGEBLOCK_ORDER && buddy_mt != mt {
                let mergeable = |m: MigrateType| (m as usize) < MIGRATE_PCPTYPES;
                if !mergeable(mt) || !mergeable(buddy_mt) {
                    break;
                }
            }
            self.del_from_free_list(free, buddy, order, buddy_mt);
            if order.as_u32() >= PAGEBLOCK_ORDER && buddy_mt != mt {
                // Match the buddy's type so later splits land on the right lists.
                self.change_pageblock_range(zone, buddy_pfn, order, mt);
            }
            // The merged block keeps the freed block's type throughout (Linux passes one
            // `migratetype` down the whole loop); the buddy's pageblocks were matched above.
            if buddy_pfn < pfn {
                pfn = buddy_pfn;
            }
            order = Order::new(order.as_u32() + 1);
        }
        if order.as_u32() >= PAGEBLOCK_ORDER {
            self.change_pageblock_range(zone, pfn, order, mt);
        }
        self.add_to_free_list(free, self.page(pfn), order, mt, false);
    }

    /// `expand`: splits a block of order `high` taken from the lists down to `low`, putting
    /// the upper halves back on `mt`'s lists.
    fn expand(&self, free: &mut ZoneFree, pfn: Pfn, low: Order, high: Order, mt: MigrateType) {
        let mut h = high.as_u32();
        while h > low.as_u32() {
            h -= 1;
            let o = Order::new(h);
            self.add_to_free_list(free, self.page(pfn + o.pages() as u64), o, mt, false);
        }
    }

    /// `__rmqueue_smallest`.
    fn rmqueue_smallest(
        &self,
        free: &mut ZoneFree,
        order: Order,
        mt: MigrateType,
    ) -> Option<PagePtr> {
        for cur in order.as_u32()..=MAX_PAGE_ORDER {
            let cur = Order::new(cur);
            let head: *mut ListHead = &mut free.area[cur.as_usize()].free_list[mt as usize];
            // SAFETY: list heads in the pinned zone, under the zone lock.
            let first = unsafe { list::list_first(head) };
            if let Some(l) = first {
                // SAFETY: free-list entries are `page->lru` links of memmap pages.
                let page = unsafe { PagePtr::from_lru(l) };
                self.del_from_free_list(free, page, cur, mt);
                self.expand(free, self.page_to_pfn(page), order, cur, mt);
                return Some(page);
            }
        }
        None
    }

    /// `move_freepages_block`: moves the free blocks of one pageblock from `old` lists to
    /// `new` lists and returns how many pages moved.
    fn move_freepages_block(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        pfn: Pfn,
        old: MigrateType,
        new: MigrateType,
    ) -> usize {
        let start = pfn.as_u64() & !(PAGEBLOCK_NR_PAGES as u64 - 1);
        let end = start + PAGEBLOCK_NR_PAGES as u64;
        let mut p = start;
        let mut moved = 0;
        while p < end {
            let pf = Pfn::new(p);
            if !zone.contains_pfn(pf) {
                p += 1;
                continue;
            }
            let page = self.page(pf);
            if page.is_buddy() {
                let o = Order::new(page.private() as u32);
                self.del_from_free_list(free, page, o, old);
                self.add_to_free_list(free, page, o, new, true);
                moved += o.pages();
                p += o.pages() as u64;
            } else {
                p += 1;
            }
        }
        moved
    }

    /// `__rmqueue_claim`: takes the largest fallback block and claims its pageblock.
    fn rmqueue_claim(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        order: Order,
        start_mt: MigrateType,
    ) -> Option<PagePtr> {
        for cur in (order.as_u32()..=MAX_PAGE_ORDER).rev() {
            let cur = Order::new(cur);
            // should_try_claim_block
            let claimable = cur.as_u32() >= PAGEBLOCK_ORDER / 2
                || start_mt == MigrateType::Reclaimable
                || start_mt == MigrateType::Unmovable;
            let Some(fb) = start_mt
                .fallbacks()
                .into_iter()
                .find(|f| free.area[cur.as_usize()].nr_free_mt[*f as usize] > 0)
            else {
                continue;
            };
            if !claimable {
                break;
            }
            let head: *mut ListHead = &mut free.area[cur.as_usize()].free_list[fb as usize];
            // SAFETY: non-empty list (count > 0) in the pinned zone, under the lock.
            let page = unsafe { PagePtr::from_lru((*head).next) };
            let pfn = self.page_to_pfn(page);
            if cur.as_u32() >= PAGEBLOCK_ORDER {
                self.del_from_free_list(free, page, cur, fb);
                self.change_pageblock_range(zone, pfn, cur, start_mt);
                self.expand(free, pfn, order, cur, start_mt);
                return Some(page);
            }
            // Claim the pageblock if at least half of it is free.
            let free_in_block = {
                let start = pfn.as_u64() & !(PAGEBLOCK_NR_PAGES as u64 - 1);
                let mut n = 0;
                let mut p = start;
                while p < start + PAGEBLOCK_NR_PAGES as u64 {
                    let pf = Pfn::new(p);
                    if zone.contains_pfn(pf) && self.page(pf).is_buddy() {
                        let o = self.page(pf).private();
                        n += 1usize << o;
                        p += 1u64 << o;
                    } else {
                        p += 1;
                    }
                }
                n
            };
            if free_in_block >= PAGEBLOCK_NR_PAGES / 2 {
                self.move_freepages_block(zone, free, pfn, fb, start_mt);
                zone.set_pageblock_migratetype(pfn, start_mt);
                return self.rmqueue_smallest(free, order, start_mt);
            }
        }
        None
    }

    /// `__rmqueue_steal`: takes the smallest fallback block without claiming.
    fn rmqueue_steal(
        &self,
        free: &mut ZoneFree,
        order: Order,
        start_mt: MigrateType,
    ) -> Option<PagePtr> {
        for cur in order.as_u32()..=MAX_PAGE_ORDER {
            let cur = Order::new(cur);
            for fb in start_mt.fallbacks() {
                if free.area[cur.as_usize()].nr_free_mt[fb as usize] == 0 {
                    continue;
                }
                let head: *mut ListHead = &mut free.area[cur.as_usize()].free_list[fb as usize];
                // SAFETY: non-empty list in the pinned zone, under the lock.
                let page = unsafe { PagePtr::from_lru((*head).next) };
                self.del_from_free_list(free, page, cur, fb);
                self.expand(free, self.page_to_pfn(page), order, cur, fb);
                return Some(page);
            }
        }
        None
    }

    /// `__rmqueue`.
    pub(crate) fn rmqueue_locked(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        order: Order,
        mt: MigrateType,
    ) -> Option<PagePtr> {
        // ALLOC_CMA (gfp_to_alloc_flags_cma): movable allocations may borrow CMA pages, and
        // take them first while more than half of the zone's free pages are CMA (6.18's
        // __rmqueue); otherwise right after their own lists (RMQUEUE_CMA comes before
        // RMQUEUE_CLAIM in 6.18).
        let alloc_cma = mt == MigrateType::Movable;
        if alloc_cma && zone.stats.free_cma_pages() > zone.stats.free_pages() / 2 {
            if let Some(p) = self.rmqueue_smallest(free, order, MigrateType::Cma) {
                return Some(p);
            }
        }
        if let Some(p) = self.rmqueue_smallest(free, order, mt) {
            return Some(p);
        }
        if (mt as usize) >= MIGRATE_PCPTYPES {
            return None;
        }
        if alloc_cma && zone.stats.free_cma_pages() > 0 {
            if let Some(p) = self.rmqueue_smallest(free, order, MigrateType::Cma) {
                return Some(p);
            }
        }
        self.rmqueue_claim(zone, free, order, mt)
            .or_else(|| self.rmqueue_steal(free, order, mt))
    }
}

impl<P: Platform> PageAllocator<P> {
    // ------------------------------------------------------------------ pcp lists

    /// `rmqueue_bulk`: moves up to `count` blocks of `order` to a pcp list.
    fn rmqueue_bulk(
        &self,
        zone: &Zone<P::RawLock>,
        order: Order,
        count: usize,
        mt: MigrateType,
        list: *mut ListHead,
    ) -> usize {
        // Lock order: &zone->lock (rank 5), under cpu_section; docs/LOCKING.md.
        let mut free = zone.free.lock();
        let mut got = 0;
        while got < count {
            let Some(page) = self.rmqueue_locked(zone, &mut free, order, mt) else {
                break;
            };
            page.set_private(order.as_usize());
            // SAFETY: the page was just taken off the free lists; the pcp list belongs to the
            // current CPU (caller holds its guard).
            unsafe { list::list_add_tail(page.lru(), list) };
            got += 1;
        }
        zone.stats
            .nr_free_pages
            .fetch_sub((got << order.as_u32()) as isize, Ordering::Relaxed);
        got
    }

    /// `free_pcppages_bulk`: gives `count` pages of a pcp back to the buddy lists, oldest
    /// first (list tails), walking the lists in turn.
    fn free_pcppages_bulk(&self, zone: &Zone<P::RawLock>, pcp: &mut PcpGuard<'_>, count: usize) {
        let mm = self;
        // Lock order: &zone->lock (rank 5), under cpu_section; docs/LOCKING.md.
        let mut free = zone.free.lock();
        let mut left = count.min(pcp.count());
        let mut freed = 0usize;
        for i in 0..NR_PCP_LISTS {
            if left == 0 {
                break;
            }
            let l: *mut ListHead = &mut pcp.lists[i];
            // SAFETY: the pcp list is the current CPU's (caller's guard), pinned in memblock;
            // its entries are page->lru links of pages on it.
            unsafe {
                while left > 0 && !list::list_empty(l) {
                    let last = (*l).prev;
                    let page = PagePtr::from_lru(last);
                    // The pages come off the list in free order, scattered over the memmap:
                    // start loading the next one and its order-0 buddy while this one merges.
                    let next = (*last).prev;
                    if next != l {
                        let np = PagePtr::from_lru(next);
                        prefetch(np.as_ptr());
                        let nb = mm.page_to_pfn(np).buddy(Order::ZERO);
                        if nb < mm.max_pfn {
                            prefetch(mm.page(nb).as_ptr());
                        }
                    }
                    list::list_del(last);
                    let order = Order::new(page.private() as u32);
                    page.set_private(0);
                    pcp.sub_count(order.pages());
                    left = left.saturating_sub(order.pages());
                    freed += order.pages();
                    mm.free_one_page_locked(zone, &mut free, mm.page_to_pfn(page), order);
                }
            }
        }
        drop(free);
        zone.stats
            .nr_free_pages
            .fetch_add(freed as isize, Ordering::Relaxed);
    }

    /// The pcp list reached `high` (`free_unref_page_commit`): while the zone is above its
    /// high watermark `high` grows by `batch` towards `high_max` (`nr_pcp_high`), otherwise a
    /// bulk free sized by the run of frees gives pages back (`nr_pcp_free`).
    #[cold]
    fn pcp_over_high(&self, zone: &Zone<P::RawLock>, pcp: &mut PcpGuard<'_>) {
        let batch = zone.pcp_batch;
        if zone.pcp_high_min != zone.pcp_high_max
            && zone.stats.free_pages() > zone.wmark(WMARK_HIGH)
        {
            pcp.set_high((pcp.high() + batch).min(zone.pcp_high_max));
            if pcp.count() < pcp.high() {
                return;
            }
        }
        let high = pcp.high();
        let to_free = if high < batch {
            1
        } else {
            pcp.free_count
                .clamp(batch, high.saturating_sub(batch).max(batch))
        };
        self.free_pcppages_bulk(zone, pcp, to_free);
    }

    /// `drain_local_pages`: empties the current CPU's pcp lists in every zone.
    pub fn drain_local_pages(&self) {
        // Lock order: cpu_section (rank 3), &zone->lock under it; docs/LOCKING.md.
        let g = self.cpu_guard();
        for z in self.zones() {
            if z.pcp.is_null() {
                continue;
            }
            // SAFETY: we hold this CPU's guard.
            let mut pcp = unsafe { z.pcp_of(g.cpu()) };
            let n = pcp.count();
            if n > 0 {
                self.free_pcppages_bulk(z, &mut pcp, n);
            }
        }
    }

    // ------------------------------------------------------------------ allocation

    #[inline]
    fn zone_watermark_ok(
        &self,
        zone: &Zone<P::RawLock>,
        order: Order,
        highest: ZoneType,
        af: AllocFlags,
        alloc_cma: bool,
    ) -> bool {
        if af.no_watermarks {
            return true;
        }
        let mut free = zone.stats.free_pages() as isize - (order.pages() as isize - 1);
        // __zone_watermark_unusable_free: without ALLOC_CMA the free CMA pages do not count.
        if !alloc_cma {
            free -= zone.stats.free_cma_pages() as isize;
        }
        let mut min = zone.wmark(af.wmark) as isize;
        if af.min_reserve {
            min -= min / 2;
            if af.non_block {
                min -= min / 4;
            }
        }
        free > min + zone.lowmem_reserve[highest.index()].load(Ordering::Relaxed) as isize
    }

    #[inline]
    fn rmqueue(&self, zone: &Zone<P::RawLock>, order: Order, mt: MigrateType) -> Option<PagePtr> {
        if order.as_u32() <= PAGE_ALLOC_COSTLY_ORDER && (mt as usize) < MIGRATE_PCPTYPES {
            // Lock order: cpu_section (rank 3), &zone->lock under it (rmqueue_bulk);
            // docs/LOCKING.md.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's guard.
            let mut pcp = unsafe { zone.pcp_of(g.cpu()) };
            let l: *mut ListHead = &mut pcp.lists[pcp_index(order, mt)];
            // SAFETY: the current CPU's pcp list.
            if unsafe { list::list_empty(l) } {
                // nr_pcp_alloc: `high` moves into [high_min, high_max] first.
                pcp.set_high(pcp.high().max(zone.pcp_high_min).min(zone.pcp_high_max));
                let batch = if order.as_u32() == 0 {
                    zone.pcp_batch
                } else {
                    (zone.pcp_batch >> order.as_u32()).max(2)
                };
                let got = self.rmqueue_bulk(zone, order, batch.max(1), mt, l);
                pcp.add_count(got << order.as_u32());
                if got == 0 {
                    return None;
                }
            }
            // SAFETY: non-empty pcp list of this CPU (guard held).
            return Some(unsafe { bulk::pcp_pop(&mut pcp, l, order) });
        }
        let page = {
            // Lock order: &zone->lock (rank 5), outside any CPU section (no pcp); docs/LOCKING.md.
            let mut free = zone.free.lock();
            self.rmqueue_locked(zone, &mut free, order, mt)
        }?;
        zone.stats
            .nr_free_pages
            .fetch_sub(order.pages() as isize, Ordering::Relaxed);
        // Lock order: cpu_section (rank 3), no lock under it; docs/LOCKING.md.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's guard.
        unsafe { zone.pcp_of(g.cpu()) }.note_alloc(order.pages());
        Some(page)
    }

    #[inline]
    fn get_page_from_freelist(
        &self,
        gfp: GfpFlags,
        order: Order,
        af: AllocFlags,
        highest: ZoneType,
    ) -> Option<PagePtr> {
        let mt = MigrateType::from_gfp(gfp);
        let zones = self.arch().zones();
        let top = zones.iter().position(|z| *z == highest).unwrap_or(0);
        for &nid in self.zonelist_nodes(af.nid, gfp) {
            if af.nodemask & (1 << nid) == 0 {
                continue;
            }
            for &kind in zones[..=top].iter().rev() {
                let zone = self.node_zone(nid as usize, kind);
                if !zone.is_populated() {
                    continue;
                }
                if !self.zone_watermark_ok(zone, order, highest, af, mt == MigrateType::Movable) {
                    continue;
                }
                if let Some(p) = self.rmqueue(zone, order, mt) {
                    return Some(p);
                }
            }
        }
        None
    }

    #[inline]
    fn prep_new_page(&self, page: PagePtr, order: Order, gfp: GfpFlags) {
        page.set_refcount(1);
        page.set_index(0);
        let mut f = page.flags() & !(pg::ORDER_MASK | pg::HEAD);
        f |= (order.as_u32() as u64) << pg::ORDER_SHIFT;
        if gfp.contains(GfpFlags::__GFP_COMP) && order.as_u32() > 0 {
            f |= pg::HEAD;
            let head = page.as_ptr() as usize;
            for i in 1..order.pages() {
                page.add(i).set_compound_head_raw(head | 1);
            }
        }
        page.set_flags(f);
        if gfp.contains(GfpFlags::__GFP_ZERO) {
            let pa = self.page_to_pfn(page).phys();
            // SAFETY: the block was just allocated to us and lies below phys_end.
            unsafe { core::ptr::write_bytes(self.phys_to_real(pa), 0, order.bytes()) };
        }
    }

    /// Converts a raw order from outside (the shell, a trace) into an [`Order`], printing
    /// Linux's `WARN_ON_ONCE(order > MAX_PAGE_ORDER)` when it is too large.
    #[track_caller]
    pub fn check_order(&self, order: u32, gfp: GfpFlags) -> Option<Order> {
        match Order::try_new(order) {
            Ok(o) => Some(o),
            Err(_) => {
                if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                    self.warn(format_args!(
                        "__alloc_pages: order {order} > MAX_PAGE_ORDER ({MAX_PAGE_ORDER})"
                    ));
                }
                None
            }
        }
    }

    /// `alloc_pages`: allocates `1 << order` contiguous frames.
    ///
    /// Returns the first frame's `struct page` with one reference, or `None` (with a
    /// `page allocation failure` warning unless `__GFP_NOWARN`) when no zone the flags allow
    /// can serve it above its watermarks.
    #[track_caller]
    #[inline]
    pub fn alloc_pages(&self, gfp: GfpFlags, order: Order) -> Option<PagePtr> {
        if self.numa.0.is_null() {
            // One node: node 0's path, with nothing to count.
            if let Some(p) = self.alloc_pages_fast(gfp, order, 0) {
                return Some(p);
            }
            return self.alloc_pages_nid(gfp, order, 0, u64::MAX);
        }
        self.alloc_pages_nid(gfp, order, self.numa_node_id(), u64::MAX)
    }

    /// `__alloc_pages` with preferred node `nid` (online), on the nodes of `nodemask`.
    #[track_caller]
    #[inline]
    fn alloc_pages_nid(
        &self,
        gfp: GfpFlags,
        order: Order,
        nid: usize,
        nodemask: u64,
    ) -> Option<PagePtr> {
        // A hot pcp list of the preferred zone is served without the zonelist walk and the
        // watermark check (see `bulk`).
        let fast = nodemask & (1 << nid) != 0;
        if let Some(p) = fast
            .then(|| self.alloc_pages_fast(gfp, order, nid))
            .flatten()
        {
            self.zone_statistics(nid, p);
            return Some(p);
        }
        let highest = gfp_zone(self.arch(), gfp);
        let fast = AllocFlags {
            wmark: WMARK_LOW,
            min_reserve: false,
            non_block: false,
            no_watermarks: false,
            nid,
            nodemask,
        };
        let page = self
            .get_page_from_freelist(gfp, order, fast, highest)
            .or_else(|| {
                // Slow path: wake kswapd, retry at the min watermark with the reserves the
                // flags allow (gfp_to_alloc_flags), then reclaim directly if registered.
                let slow = AllocFlags {
                    wmark: WMARK_MIN,
                    min_reserve: gfp.contains(GfpFlags::__GFP_HIGH),
                    non_block: !gfp.contains(GfpFlags::__GFP_DIRECT_RECLAIM),
                    no_watermarks: gfp.contains(GfpFlags::__GFP_MEMALLOC)
                        && !gfp.contains(GfpFlags::__GFP_NOMEMALLOC),
                    nid,
                    nodemask,
                };
                self.alloc_pages_reclaim(gfp, order, slow, highest)
            });
        match page {
            Some(p) => {
                self.prep_new_page(p, order, gfp);
                self.zone_statistics(nid, p);
                Some(p)
            }
            None => {
                self.warn_alloc(gfp, format_args!("page allocation failure: order:{order}"));
                None
            }
        }
    }

    /// `alloc_page`: one frame.
    #[track_caller]
    pub fn alloc_page(&self, gfp: GfpFlags) -> Option<PagePtr> {
        self.alloc_pages(gfp, Order::ZERO)
    }

    /// `__free_pages`: drops a reference to a block from [`Machine::alloc_pages`] and frees
    /// it when it was the last. `order` must be the allocation's order.
    ///
    /// Misuse (wrong order, double free, reserved or foreign page) is reported as
    /// `BUG: Bad page state` and leaves everything unchanged.
    #[track_caller]
    #[inline]
    pub fn __free_pages(&self, page: PagePtr, order: Order) {
        if !self.check_page_ptr(page, "__free_pages") {
            return;
        }
        if !self.free_page_ok(page, order) {
            return;
        }
        // The common case, the only reference: no other holder can race with us, so a plain
        // store replaces the atomic decrement.
        if page.refcount() == 1 {
            page.set_refcount(0);
        } else if !page.put_testzero() {
            return;
        }
        self.free_pages_prepared(page, order);
    }

    /// Frees a block whose last reference is gone.
    #[inline]
    fn free_pages_prepared(&self, page: PagePtr, order: Order) {
        if page.is_head() {
            for i in 1..order.pages() {
                page.add(i).set_compound_head_raw(0);
            }
        }
        page.set_flags(page.flags() & !(pg::ORDER_MASK | pg::HEAD | pg::CLEAR_AT_FREE));
        page.set_mapping(0);
        page.set_index(0);
        let pfn = self.page_to_pfn(page);
        let zone = self.page_zone(page);
        let mut mt = zone.pageblock_migratetype(pfn);
        if mt == MigrateType::Cma {
            // free_frozen_pages: CMA pages go to the movable pcp list.
            mt = MigrateType::Movable;
        }
        // Lock order: cpu_section (rank 3), &zone->lock under it (pcp_over_high); docs/LOCKING.md.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's guard.
        let mut pcp = unsafe { zone.pcp_of(g.cpu()) };
        pcp.add_in_use(-(order.pages() as isize));
        if order.as_u32() <= PAGE_ALLOC_COSTLY_ORDER && (mt as usize) < MIGRATE_PCPTYPES {
            page.set_private(order.as_usize());
            // SAFETY: the page is ours (last reference gone); the list is this CPU's.
            unsafe { list::list_add(page.lru(), &mut pcp.lists[pcp_index(order, mt)]) };
            pcp.add_count(order.pages());
            pcp.free_count += order.pages();
            // nr_pcp_high: `high` moves into [high_min, high_max] first.
            pcp.set_high(pcp.high().max(zone.pcp_high_min).min(zone.pcp_high_max));
            if pcp.count() >= pcp.high() {
                self.pcp_over_high(zone, &mut pcp);
            }
            return;
        }
        drop(g);
        // free_one_page: first the blocks `free_pages_nolock` could not free (nolock.rs).
        self.drain_trylock_free_pages(zone);
        // Lock order: &zone->lock (rank 5), after the CPU section (no pcp); docs/LOCKING.md.
        let mut free = zone.free.lock();
        self.free_one_page_locked(zone, &mut free, pfn, order);
        drop(free);
        zone.stats
            .nr_free_pages
            .fetch_add(order.pages() as isize, Ordering::Relaxed);
    }

    /// `put_page` for an order-0 page on no LRU list: drops a reference and frees the page
    /// when it was the last, clearing the reclaim and swap flags first as
    /// `free_pages_prepare` does (`PG_dirty` included: a dirty anonymous page whose last user
    /// is gone has nothing to write). Unlike [`Self::__free_pages`], a reference that is not
    /// the last is dropped without checking the page's flags (a mapped, dirty, swap-cache
    /// page is fine to hold). A double put is reported as `__free_pages` reports it.
    #[track_caller]
    pub fn put_page(&self, page: PagePtr) {
        if !self.check_page_ptr(page, "put_page") {
            return;
        }
        if page.refcount() <= 0 {
            self.__free_pages(page, Order::ZERO);
            return;
        }
        if !page.put_testzero() {
            return;
        }
        page.set_flags(page.flags() & !(pg::DIRTY | pg::CLEAR_AT_FREE));
        page.set_private(0);
        page.set_refcount(1);
        self.__free_pages(page, Order::ZERO);
    }

    /// `__free_page`.
    #[track_caller]
    pub fn __free_page(&self, page: PagePtr) {
        self.__free_pages(page, Order::ZERO)
    }

    /// `__get_free_pages`: allocates and returns the direct-map address. HighMem cannot be
    /// returned (`__GFP_HIGHMEM` is masked off, as Linux does).
    #[track_caller]
    pub fn __get_free_pages(&self, gfp: GfpFlags, order: Order) -> Option<VirtAddr> {
        let page = self.alloc_pages(gfp.without(GfpFlags::__GFP_HIGHMEM), order)?;
        self.page_address(page)
    }

    /// `__get_free_page`.
    #[track_caller]
    pub fn __get_free_page(&self, gfp: GfpFlags) -> Option<VirtAddr> {
        self.__get_free_pages(gfp, Order::ZERO)
    }

    /// `get_zeroed_page`.
    #[track_caller]
    pub fn get_zeroed_page(&self, gfp: GfpFlags) -> Option<VirtAddr> {
        self.__get_free_pages(gfp | GfpFlags::__GFP_ZERO, Order::ZERO)
    }

    /// `free_pages`: frees by direct-map address. NULL is a no-op.
    #[track_caller]
    pub fn free_pages(&self, addr: VirtAddr, order: Order) {
        if !addr.is_null() {
            self.free_pages_checked(addr, order);
        }
    }

    /// `free_pages` of a non-null address; `false` if `addr` is not the start of a page of
    /// this machine (reported).
    #[track_caller]
    fn free_pages_checked(&self, addr: VirtAddr, order: Order) -> bool {
        match self.virt_to_page(addr) {
            Some(p) if addr.page_offset() == 0 => {
                self.__free_pages(p, order);
                true
            }
            Some(p) => {
                self.bad_page(p, "free_pages: address is not page aligned");
                false
            }
            None => {
                self.bad_address("free_pages", self.to_model(addr.as_usize()));
                false
            }
        }
    }

    /// `free_page`.
    #[track_caller]
    pub fn free_page(&self, addr: VirtAddr) {
        self.free_pages(addr, Order::ZERO)
    }

    /// `split_page`: turns an order-`order` non-compound block into `1 << order` order-0
    /// pages, each with its own reference.
    #[track_caller]
    pub fn split_page(&self, page: PagePtr, order: Order) {
        if !self.check_page_ptr(page, "split_page") {
            return;
        }
        if page.is_head() || page.is_tail() {
            self.bad_page(page, "VM_BUG_ON_PAGE(PageCompound(page)) in split_page");
            return;
        }
        if page.page_type().is_some() || page.refcount() <= 0 {
            self.bad_page(page, "split_page: not a plain allocated block");
            return;
        }
        for i in 0..order.pages() {
            let p = page.add(i);
            p.set_flags(p.flags() & !pg::ORDER_MASK);
            p.set_refcount(1);
        }
    }

    /// `alloc_pages_exact`: allocates exactly `size` bytes (rounded to pages), freeing the
    /// unused tail of the power-of-two block.
    #[track_caller]
    pub fn alloc_pages_exact(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let order = Order::for_size(size)?;
        let gfp = gfp.without(GfpFlags::__GFP_COMP | GfpFlags::__GFP_HIGHMEM);
        let page = self.alloc_pages(gfp, order)?;
        self.split_page(page, order);
        let used = size.div_ceil(PAGE_SIZE).max(1);
        for i in used..order.pages() {
            self.__free_pages(page.add(i), Order::ZERO);
        }
        self.page_address(page)
    }

    /// `free_pages_exact`: frees the pages of an [`alloc_pages_exact`](Self::alloc_pages_exact)
    /// block one by one. The walk stops at the first address that is not a page of this
    /// machine (reported once), where Linux's `free_page` hits `VM_BUG_ON(!virt_addr_valid)`.
    #[track_caller]
    pub fn free_pages_exact(&self, addr: VirtAddr, size: usize) {
        if addr.is_null() {
            return;
        }
        let n = size.div_ceil(PAGE_SIZE).max(1);
        for i in 0..n {
            let next = (i as u64)
                .checked_mul(PAGE_SIZE as u64)
                .and_then(|off| addr.as_u64().checked_add(off));
            let Some(a) = next else {
                return;
            };
            if !self.free_pages_checked(VirtAddr::new(a as usize), Order::ZERO) {
                return;
            }
        }
    }

    /// Frees boot memory `[start, end)` into the buddy allocator (`__free_pages_core`);
    /// returns the number of pages.
    pub(crate) fn free_boot_range(&self, start: Pfn, end: Pfn) -> usize {
        let mut pfn = start.as_u64();
        let end = end.as_u64();
        let mut total = 0;
        while pfn < end {
            let zone = self.page_zone(self.page(Pfn::new(pfn)));
            let zend = zone.geo.end_pfn().as_u64().min(end);
            let align = if pfn == 0 {
                MAX_PAGE_ORDER
            } else {
                pfn.trailing_zeros().min(MAX_PAGE_ORDER)
            };
            let fit = 63 - (zend - pfn).leading_zeros();
            let order = Order::new(align.min(fit));
            for i in 0..order.pages() as u64 {
                let p = self.page(Pfn::new(pfn + i));
                p.set_flags(p.flags() & !pg::RESERVED);
                p.set_refcount(0);
            }
            // Lock order: &zone->lock (rank 5), under memblock_lock; docs/LOCKING.md.
            let mut free = zone.free.lock();
            self.free_one_page_locked(zone, &mut free, Pfn::new(pfn), order);
            drop(free);
            zone.stats
                .nr_free_pages
                .fetch_add(order.pages() as isize, Ordering::Relaxed);
            zone.managed.fetch_add(order.pages(), Ordering::Relaxed);
            total += order.pages();
            pfn += order.pages() as u64;
        }
        total
    }

    /// Prints `Memory: …K/…K available (…)` (`mem_init_print_info`).
    pub(crate) fn print_memory_line(&self) {
        let k = |b: u64| b / 1024;
        let img = self.kernel_image();
        let free: usize = self.zones().map(|z| z.stats.free_pages()).sum();
        // Present pages of all zones at boot (`physpages` in the Memory: line).
        let phys: usize = self.zones().map(|z| z.geo.present as usize).sum();
        let total = self.totalram_pages();
        let high: usize = self
            .zones()
            .filter(|z| z.kind == ZoneType::HighMem)
            .map(|z| z.managed_pages())
            .sum();
        let kb = crate::mm::pages_to_kb;
        let cma = self.totalcma_pages();
        match self.arch() {
            crate::arch::Arch::X86_64 => self.printk(crate::platform::LogLevel::Info, format_args!(
                "Memory: {}K/{}K available ({}K kernel code, {}K rwdata, {}K rodata, {}K init, {}K bss, {}K reserved, {}K cma-reserved)",
                kb(free), kb(phys), k(img.code), k(img.rwdata), k(img.rodata), k(img.init), k(img.bss), kb(phys - total - cma), kb(cma)
            )),
            crate::arch::Arch::I386 => self.printk(crate::platform::LogLevel::Info, format_args!(
                "Memory: {}K/{}K available ({}K kernel code, {}K rwdata, {}K rodata, {}K init, {}K bss, {}K reserved, {}K cma-reserved, {}K highmem)",
                kb(free), kb(phys), k(img.code), k(img.rwdata), k(img.rodata), k(img.init), k(img.bss), kb(phys - total - cma), kb(cma), kb(high)
            )),
        }
    }

    /// Checks the buddy allocator's invariants (like lib/rbtree_test.c's `check()`): every
    /// free block is aligned to its order, inside its zone, marked buddy with its order, on
    /// the list of its pageblock's type; counters agree; no two free buddies of one order
    /// were left unmerged (except across an unmergeable pageblock boundary).
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        for zone in self.zones() {
            if !zone.is_populated() {
                continue;
            }
            // Lock order: &zone->lock (rank 5), reader; docs/LOCKING.md.
            let free = zone.free.lock();
            let mut pages = 0usize;
            for o in 0..ORDERS {
                let order = Order::new(o as u32);
                let mut n = 0;
                for mt in MigrateType::ALL {
                    let head: *const ListHead = &free.area[o].free_list[mt as usize];
                    let mut nmt = 0;
                    // SAFETY: walked under the zone lock.
                    for l in unsafe { list::iter(head) } {
                        // SAFETY: free-list entries are page->lru links.
                        let page = unsafe { PagePtr::from_lru(l) };
                        let pfn = self.page_to_pfn(page);
                        if !pfn.is_aligned_to(order) && o > 0 {
                            return Err("free block not aligned to its order");
                        }
                        if !zone.contains_pfn(pfn)
                            || !zone.contains_pfn(pfn + (order.pages() as u64 - 1))
                        {
                            return Err("free block outside its zone");
                        }
                        if !page.is_buddy() || page.private() != o || page.refcount() != 0 {
                            return Err("free block head not marked buddy with its order");
                        }
                        let pb_mt = zone.pageblock_migratetype(pfn);
                        if pb_mt != mt {
                            return Err("free block on a list other than its pageblock's type");
                        }
                        if o < MAX_PAGE_ORDER as usize {
                            let b = pfn.buddy(order);
                            if zone.contains_pfn(b) {
                                let bp = self.page(b);
                                if bp.is_buddy()
                                    && bp.private() == o
                                    && (o < PAGEBLOCK_ORDER as usize
                                        || zone.pageblock_migratetype(b) == mt)
                                {
                                    return Err("two free buddies left unmerged");
                                }
                            }
                        }
                        nmt += 1;
                    }
                    if nmt != free.area[o].nr_free_mt[mt as usize] as usize {
                        return Err("per-type free count disagrees with the list");
                    }
                    n += nmt;
                }
                if n != free.area[o].nr_free {
                    return Err("nr_free disagrees with the lists");
                }
                pages += n << o;
            }
            if pages != zone.stats.free_pages() {
                return Err("NR_FREE_PAGES disagrees with the free areas");
            }
        }
        Ok(())
    }
}

/// Hints the CPU to load the cache line at `p` (`prefetchw`-like); no effect on correctness.
/// Also used by SLUB's sheaf flush.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults and has no architectural effect; SSE is part of the
    // x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p.cast::<i8>(), core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `int_sqrt`.
fn isqrt(n: usize) -> usize {
    if n < 2 {
        return n;
    }
    // Newton's method on integers.
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

/// `page_alloc_cpu_dead`: gives a dead CPU's pcp lists back to the buddy allocator (its
/// [`CpuhpState::PageAllocDead`] teardown).
///
/// # Safety
/// No thread may use `cpu`'s per-CPU data during the call.
unsafe fn page_alloc_cpu_dead<P: Platform>(ctx: *const (), cpu: usize) {
    // SAFETY: registered in `register_cpuhp` with `ctx` = this layer, which lives as long as
    // the machine (cpuhp table invariant); the hook runs only while the machine is alive.
    let mm = unsafe { &*ctx.cast::<PageAllocator<P>>() };
    for zone in mm.zone_slots() {
        if zone.pcp.is_null() {
            continue;
        }
        // SAFETY: caller guarantees no thread is `cpu`'s owner; a concurrent drainer holds
        // the lock, which `pcp_remote` waits for.
        let mut pcp = unsafe { zone.pcp_remote(cpu, || mm.platform().cpu_relax()) };
        if pcp.count() == 0 {
            continue;
        }
        // Lock order: &zone->lock (rank 5), CPU-dead teardown, no other lock; docs/LOCKING.md.
        let mut free = zone.free.lock();
        let mut freed = 0;
        for l in pcp.lists.iter_mut() {
            let l: *mut ListHead = l;
            // SAFETY: the dead CPU's list; nobody else touches it.
            while let Some(n) = unsafe { list::list_first(l) } {
                // SAFETY: pcp entries are page->lru links.
                let page = unsafe { PagePtr::from_lru(n) };
                // SAFETY: on this list.
                unsafe { list::list_del(n) };
                let order = Order::new(page.private() as u32);
                page.set_private(0);
                mm.free_one_page_locked(zone, &mut free, mm.page_to_pfn(page), order);
                freed += order.pages();
            }
        }
        pcp.set_count(0);
        drop(free);
        zone.stats
            .nr_free_pages
            .fetch_add(freed as isize, Ordering::Relaxed);
    }
}
