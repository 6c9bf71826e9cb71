//! `alloc_pages_nolock` and `free_pages_nolock` (mm/page_alloc.c): the page allocator from any
//! context, never waiting.
//!
//! Linux 6.15 added them as `try_alloc_pages()`/`free_pages_nolock()` for BPF (renamed
//! `alloc_pages_nolock()` in 6.16); SLUB's `kmalloc_nolock()` (6.18) gets its slabs from them.
//! They run where a lock may already be held by the same CPU (an NMI, a kprobe inside the
//! allocator), so nothing here waits:
//!
//! - the CPU section is entered with [`MemoryModel::cpu_guard_try`] (Linux's
//!   `pcp_spin_trylock`); if it cannot be entered at once the allocation fails;
//! - the zone lock is only ever try-locked (`ALLOC_TRYLOCK` in `rmqueue_bulk`, `FPI_TRYLOCK`
//!   in `free_one_page`);
//! - only orders up to `PAGE_ALLOC_COSTLY_ORDER` are served (`pcp_allowed_order`), at the min
//!   watermark (`alloc_flags = ALLOC_TRYLOCK`), zeroed (`__GFP_ZERO` is implied), with no
//!   reclaim, no retry and no failure warning (`__GFP_NOWARN`);
//! - a free that cannot take the zone lock is parked on the zone's `trylock_free_pages` list
//!   (`add_page_to_zone_llist`) and freed by the next ordinary free that takes the zone lock
//!   (`free_one_page`); a free into a pcp list never drains the list to the buddy lists
//!   (`free_unref_page_commit` skips `free_pcppages_bulk` under `FPI_TRYLOCK`).
//!
//! The accepted GFP flags are `__GFP_ACCOUNT` only (`VM_WARN_ON_ONCE(gfp_flags &
//! ~__GFP_ACCOUNT)`); others are reported with a warning and ignored.
//!
//! # Deferred frees
//! A parked block links through `lru.next`; `private` holds its order and whether its
//! per-CPU `in_use` count was already dropped (it was not when even the CPU section could not
//! be entered). The list is a lock-free LIFO (`llist_add`, `llist_del_all`): a
//! compare-and-swap push and an exchange drain, safe from any context.

use core::sync::atomic::Ordering;

use kds::list::{self, ListHead};

use crate::addr::Order;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{pg, Page, PagePtr};
use crate::mmzone::{MigrateType, Zone, MIGRATE_PCPTYPES, PAGE_ALLOC_COSTLY_ORDER, WMARK_MIN};
use crate::platform::Platform;

use super::{gfp_zone, pcp_index, AllocFlags, PageAllocator};

/// `private` bit of a parked block: its CPU's `in_use` count still includes it.
const PARKED_UNACCOUNTED: usize = 1 << 8;

impl<P: Platform> PageAllocator<P> {
    /// `alloc_pages_nolock`: allocates `1 << order` zeroed frames from any context without
    /// waiting for a lock (see the module documentation), preferably on the current CPU's
    /// node; see [`Self::alloc_pages_nolock_node`].
    #[track_caller]
    pub fn alloc_pages_nolock(&self, gfp: GfpFlags, order: Order) -> Option<PagePtr> {
        self.alloc_pages_nolock_node(gfp, super::NUMA_NO_NODE, order)
    }

    /// `alloc_pages_nolock(gfp, nid, order)` (Linux 6.18): as [`Self::alloc_pages_nolock`]
    /// with a preferred node (`NUMA_NO_NODE`: the CPU's), walking that node's zonelist.
    /// `None` when the order is above `PAGE_ALLOC_COSTLY_ORDER`, when a lock it needs is held
    /// (the caller may be interrupting its holder), when memory is short, or for a node that
    /// is not online; no warning is printed for any of these.
    #[track_caller]
    pub fn alloc_pages_nolock_node(
        &self,
        gfp: GfpFlags,
        nid: i32,
        order: Order,
    ) -> Option<PagePtr> {
        if gfp.without(GfpFlags::__GFP_ACCOUNT).bits() != 0 {
            self.warn(format_args!(
                "alloc_pages_nolock: gfp {:#x}({}) has flags other than __GFP_ACCOUNT",
                gfp.bits(),
                gfp
            ));
        }
        if order.as_u32() > PAGE_ALLOC_COSTLY_ORDER {
            return None;
        }
        let gfp = GfpFlags::__GFP_NOWARN
            | GfpFlags::__GFP_ZERO
            | GfpFlags::__GFP_NOMEMALLOC
            | GfpFlags::__GFP_COMP
            | (gfp & GfpFlags::__GFP_ACCOUNT);
        let nid = match nid {
            super::NUMA_NO_NODE if self.numa.0.is_null() => 0,
            super::NUMA_NO_NODE => self.numa_node_id(),
            n if n >= 0 && (n as usize) < self.nr_online_nodes() => n as usize,
            _ => return None,
        };
        let highest = gfp_zone(self.arch(), gfp);
        let af = AllocFlags {
            wmark: WMARK_MIN,
            min_reserve: false,
            non_block: true,
            no_watermarks: false,
            nid,
            nodemask: u64::MAX,
        };
        let mt = MigrateType::from_gfp(gfp);
        let zones = self.arch().zones();
        let top = zones.iter().position(|z| *z == highest).unwrap_or(0);
        for &node in self.zonelist_nodes(nid, gfp) {
            for &kind in zones[..=top].iter().rev() {
                let zone = self.node_zone(node as usize, kind);
                if !zone.is_populated() || !self.zone_watermark_ok(zone, order, highest, af, false)
                {
                    continue;
                }
                if let Some(p) = self.rmqueue_trylock(zone, order, mt) {
                    self.prep_new_page(p, order, gfp);
                    self.zone_statistics(nid, p);
                    return Some(p);
                }
            }
        }
        None
    }

    /// `rmqueue_pcplist` with `pcp_spin_trylock` and `rmqueue_bulk` under `ALLOC_TRYLOCK`.
    fn rmqueue_trylock(
        &self,
        zone: &Zone<P::RawLock>,
        order: Order,
        mt: MigrateType,
    ) -> Option<PagePtr> {
        if (mt as usize) >= MIGRATE_PCPTYPES {
            return None;
        }
        // Lock order: cpu_section (rank 3) entered without waiting; &zone->lock only
        // try-locked under it; docs/LOCKING.md.
        let g = self.cpu_guard_try()?;
        // SAFETY: we hold this CPU's guard, and no `*_nolock` caller interrupts code holding a
        // reference to this CPU's pcp (kmem's reentry points are in the slab layer only).
        // `pcp->lock` is only try-locked: `drain_all_pages` may hold it (pcp_spin_trylock).
        let mut pcp = unsafe { zone.pcp_try(g.cpu()) }?;
        let l: *mut ListHead = &mut pcp.lists[pcp_index(order, mt)];
        // SAFETY: the current CPU's pcp list.
        if unsafe { list::list_empty(l) } {
            let batch = if order.as_u32() == 0 {
                zone.pcp_batch
            } else {
                (zone.pcp_batch >> order.as_u32()).max(2)
            };
            // Lock order: &zone->lock (rank 5) try-locked: never waits; docs/LOCKING.md.
            let mut free = zone.free.try_lock()?;
            let mut got = 0;
            while got < batch.max(1) {
                let Some(page) = self.rmqueue_locked(zone, &mut free, order, mt) else {
                    break;
                };
                page.set_private(order.as_usize());
                // SAFETY: the page was just taken off the free lists; the list is this CPU's.
                unsafe { list::list_add_tail(page.lru(), l) };
                got += 1;
            }
            drop(free);
            zone.stats
                .nr_free_pages
                .fetch_sub((got << order.as_u32()) as isize, Ordering::Relaxed);
            pcp.add_count(got << order.as_u32());
            if got == 0 {
                return None;
            }
        }
        // SAFETY: non-empty pcp list of this CPU (guard held).
        Some(unsafe { super::bulk::pcp_pop(&mut pcp, l, order) })
    }

    /// `free_pages_nolock`: drops a reference to a block and frees it when it was the last,
    /// from any context, never waiting (see the module documentation). Misuse is reported as
    /// [`Self::__free_pages`] reports it.
    #[track_caller]
    pub fn free_pages_nolock(&self, page: PagePtr, order: Order) {
        if !self.check_page_ptr(page, "free_pages_nolock") || !self.free_page_ok(page, order) {
            return;
        }
        if !page.put_testzero() {
            return;
        }
        if page.is_head() {
            for i in 1..order.pages() {
                page.add(i).set_compound_head_raw(0);
            }
        }
        page.set_flags(page.flags() & !(pg::ORDER_MASK | pg::HEAD));
        page.set_mapping(0);
        page.set_index(0);
        let pfn = self.page_to_pfn(page);
        let zone = self.page_zone(page);
        let mt = zone.pageblock_migratetype(pfn);
        // Lock order: cpu_section (rank 3) entered without waiting; docs/LOCKING.md.
        let Some(g) = self.cpu_guard_try() else {
            park_page(zone, page, order.as_usize() | PARKED_UNACCOUNTED);
            return;
        };
        // SAFETY: we hold this CPU's guard (no reentry point holds a pcp reference).
        let Some(mut pcp) = (unsafe { zone.pcp_try(g.cpu()) }) else {
            // `drain_all_pages` holds the lists: park the page as above.
            drop(g);
            park_page(zone, page, order.as_usize() | PARKED_UNACCOUNTED);
            return;
        };
        pcp.add_in_use(-(order.pages() as isize));
        if order.as_u32() <= PAGE_ALLOC_COSTLY_ORDER && (mt as usize) < MIGRATE_PCPTYPES {
            page.set_private(order.as_usize());
            // SAFETY: the page is ours (last reference gone); the list is this CPU's.
            unsafe { list::list_add(page.lru(), &mut pcp.lists[pcp_index(order, mt)]) };
            pcp.add_count(order.pages());
            pcp.free_count += order.pages();
            // FPI_TRYLOCK: no free_pcppages_bulk even above `high`.
            return;
        }
        drop(g);
        // Lock order: &zone->lock (rank 5) try-locked: never waits; docs/LOCKING.md.
        let Some(mut free) = zone.free.try_lock() else {
            park_page(zone, page, order.as_usize());
            return;
        };
        self.free_one_page_locked(zone, &mut free, pfn, order);
        drop(free);
        zone.stats
            .nr_free_pages
            .fetch_add(order.pages() as isize, Ordering::Relaxed);
    }

    /// Frees the blocks parked on `zone`'s `trylock_free_pages` list (the drain at the top of
    /// `free_one_page`). Called with no lock held, outside any CPU section, by ordinary
    /// (waiting) frees.
    pub(crate) fn drain_trylock_free_pages(&self, zone: &Zone<P::RawLock>) {
        if zone.trylock_free_pages.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut p = zone.trylock_free_pages.swap(0, Ordering::Acquire) as *mut Page;
        let mut unaccounted = 0isize;
        let mut freed = 0usize;
        // Lock order: &zone->lock (rank 5), no CPU section; docs/LOCKING.md.
        let mut free = zone.free.lock();
        while !p.is_null() {
            // SAFETY: parked blocks are memmap entries linked through `lru.next` by
            // `park_page`; this drain took the whole list, so they are ours.
            let page = unsafe { PagePtr::from_raw(core::ptr::NonNull::new_unchecked(p)) };
            // SAFETY: `page` is a parked block that this drain took off the list, so it is ours;
            // its `lru.next` holds the next parked block, written by `park_page` before the block
            // was published.
            let next = unsafe { (*page.lru()).next.cast::<Page>() };
            let tag = page.private();
            let order = Order::new((tag & 0xff) as u32);
            if tag & PARKED_UNACCOUNTED != 0 {
                unaccounted += order.pages() as isize;
            }
            page.set_private(0);
            self.free_one_page_locked(zone, &mut free, self.page_to_pfn(page), order);
            freed += order.pages();
            zone.nr_trylock_free.fetch_sub(1, Ordering::Relaxed);
            p = next;
        }
        drop(free);
        zone.stats
            .nr_free_pages
            .fetch_add(freed as isize, Ordering::Relaxed);
        if unaccounted != 0 {
            // Lock order: cpu_section (rank 3), nothing under it; docs/LOCKING.md.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's guard.
            unsafe { zone.pcp_of(g.cpu()) }.add_in_use(-unaccounted);
        }
    }

    /// Number of blocks parked on the zones' `trylock_free_pages` lists, not yet freed.
    pub fn trylock_free_pages_count(&self) -> usize {
        self.zones()
            .map(|z| z.nr_trylock_free.load(Ordering::Relaxed))
            .sum()
    }
}

/// `add_page_to_zone_llist`: parks a block whose free could not take the zone lock.
fn park_page<L: lock_api::RawMutex>(zone: &Zone<L>, page: PagePtr, tag: usize) {
    page.set_private(tag);
    let mut head = zone.trylock_free_pages.load(Ordering::Relaxed);
    loop {
        // SAFETY: the block is ours until the push publishes it.
        unsafe { (*page.lru()).next = head as *mut ListHead };
        match zone.trylock_free_pages.compare_exchange_weak(
            head,
            page.as_ptr() as usize,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    zone.nr_trylock_free.fetch_add(1, Ordering::Relaxed);
}
