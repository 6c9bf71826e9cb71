//! Pageblock isolation and contiguous ranges (mm/page_isolation.c, mm/page_alloc.c
//! `alloc_contig_range`/`free_contig_range`), for CMA.
//!
//! `alloc_contig_range(start, end)`: every pageblock touching the range becomes
//! `MIGRATE_ISOLATE` (its free blocks move to the isolate lists, so nothing allocates them and
//! pages freed there stay there); every CPU's pcp lists are drained (`drain_all_pages`);
//! in-use pages are handed to the migration hook (without one, or when pages stay in use,
//! `-EBUSY`); then the free blocks
//! covering the range are taken, the parts outside it freed again, and the pageblocks get
//! their type back (`undo_isolate_page_range`).

use core::sync::atomic::Ordering;

use super::cma::MigrateHook;
use super::PageAllocator;
use crate::addr::{Order, Pfn, MAX_PAGE_ORDER};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mmzone::{MigrateType, Zone, ZoneFree, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::platform::Platform;

const PB: u64 = PAGEBLOCK_NR_PAGES as u64;

/// What a walk over the range found.
#[derive(PartialEq, Eq)]
enum RangeState {
    /// Every page is free (on the isolate lists).
    Free,
    /// Some pages are allocated (candidates for migration).
    InUse,
    /// A page is neither free nor allocated (on another CPU's pcp list).
    Busy,
}

impl<P: Platform> PageAllocator<P> {
    /// The free block holding `pfn`, if any (`is_free_buddy_page`).
    pub(crate) fn free_block_containing(
        &self,
        zone: &Zone<P::RawLock>,
        pfn: Pfn,
    ) -> Option<(Pfn, Order)> {
        for o in 0..=MAX_PAGE_ORDER {
            let head = Pfn::new(pfn.as_u64() & !((1u64 << o) - 1));
            if !zone.contains_pfn(head) {
                break;
            }
            let hp = self.page(head);
            if hp.is_buddy() && hp.private() >= o as usize {
                return Some((head, Order::new(hp.private() as u32)));
            }
        }
        None
    }

    /// Splits a free block larger than a pageblock that covers `pfn` into pageblocks, so
    /// that pageblocks can change type one at a time (`isolate_single_pageblock`).
    fn split_large_free_block(&self, zone: &Zone<P::RawLock>, free: &mut ZoneFree, pfn: Pfn) {
        for o in PAGEBLOCK_ORDER + 1..=MAX_PAGE_ORDER {
            let head = Pfn::new(pfn.as_u64() & !((1u64 << o) - 1));
            if !zone.contains_pfn(head) {
                return;
            }
            let hp = self.page(head);
            if hp.is_buddy() && hp.private() == o as usize {
                let mt = zone.pageblock_migratetype(head);
                self.del_from_free_list(free, hp, Order::new(o), mt);
                let mut p = head.as_u64();
                while p < head.as_u64() + (1u64 << o) {
                    let pf = Pfn::new(p);
                    let pmt = zone.pageblock_migratetype(pf);
                    let pbo = Order::new(PAGEBLOCK_ORDER);
                    self.add_to_free_list(free, self.page(pf), pbo, pmt, false);
                    p += PB;
                }
                return;
            }
        }
    }

    /// `start_isolate_page_range` over whole pageblocks `[pb_start, pb_end)` of type `mt`.
    fn start_isolate(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        pb_start: u64,
        pb_end: u64,
        mt: MigrateType,
    ) -> Result<(), Errno> {
        let mut p = pb_start;
        while p < pb_end {
            if zone.pageblock_migratetype(Pfn::new(p)) != mt {
                return Err(Errno::EBUSY);
            }
            p += PB;
        }
        let mut p = pb_start;
        while p < pb_end {
            self.split_large_free_block(zone, free, Pfn::new(p));
            self.move_freepages_block(zone, free, Pfn::new(p), mt, MigrateType::Isolate);
            zone.set_pageblock_migratetype(Pfn::new(p), MigrateType::Isolate);
            p += PB;
        }
        Ok(())
    }

    /// `undo_isolate_page_range`: the pageblocks get type `mt` back with their free blocks.
    fn undo_isolate(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        pb_start: u64,
        pb_end: u64,
        mt: MigrateType,
    ) {
        let mut p = pb_start;
        while p < pb_end {
            self.move_freepages_block(zone, free, Pfn::new(p), MigrateType::Isolate, mt);
            zone.set_pageblock_migratetype(Pfn::new(p), mt);
            p += PB;
        }
        // unset_migratetype_isolate: whole free pageblocks merge with their buddies again.
        let pbo = Order::new(PAGEBLOCK_ORDER);
        let mut p = pb_start;
        while p < pb_end {
            let pg = self.page(Pfn::new(p));
            if pg.is_buddy() && pg.private() == PAGEBLOCK_ORDER as usize {
                self.del_from_free_list(free, pg, pbo, mt);
                self.free_one_page_locked(zone, free, Pfn::new(p), pbo);
            }
            p += PB;
        }
    }

    /// Classifies `[start, end)` under the zone lock.
    fn range_state(&self, zone: &Zone<P::RawLock>, start: Pfn, end: Pfn) -> RangeState {
        let mut st = RangeState::Free;
        let mut p = start;
        while p < end {
            if let Some((head, o)) = self.free_block_containing(zone, p) {
                p = head + o.pages() as u64;
                continue;
            }
            if self.page(p).refcount() > 0 {
                st = RangeState::InUse;
            } else {
                return RangeState::Busy;
            }
            p = p + 1;
        }
        st
    }

    /// `alloc_contig_range(start, end, MIGRATE_CMA)`: takes `[start, end)` (one zone, CMA
    /// pageblocks) as order-0 pages with one reference each, migrating in-use pages out with
    /// `hook`.
    ///
    /// # Errors
    /// `-EBUSY` when a page stays in use or a pageblock is already isolated; the hook's error.
    pub(crate) fn alloc_contig_range(
        &self,
        start: Pfn,
        end: Pfn,
        hook: Option<&MigrateHook>,
    ) -> Result<(), Errno> {
        let mt = MigrateType::Cma;
        let (first, last) = (self.page(start), self.page(Pfn::new(end.as_u64() - 1)));
        if last.zone_type() != first.zone_type() || last.nid() != first.nid() {
            return Err(Errno::EINVAL);
        }
        let zone = self.page_zone(first);
        let pb_start = start.as_u64() & !(PB - 1);
        let pb_end = (end.as_u64() + PB - 1) & !(PB - 1);
        {
            // Lock order: &zone->lock (rank 5) under cma_mutex; docs/LOCKING.md.
            let mut free = zone.free.lock();
            self.start_isolate(zone, &mut free, pb_start, pb_end, mt)?;
        }
        // drain_all_pages: pages of the range on any CPU's pcp lists go to the isolate lists.
        self.drain_all_pages();
        let res = self.contig_migrate(zone, start, end, hook);
        // Lock order: &zone->lock (rank 5) under cma_mutex; docs/LOCKING.md.
        let mut free = zone.free.lock();
        let res = res.and_then(|()| {
            if self.range_state(zone, start, end) == RangeState::Free {
                Ok(())
            } else {
                Err(Errno::EBUSY)
            }
        });
        if let Err(e) = res {
            self.undo_isolate(zone, &mut free, pb_start, pb_end, mt);
            return Err(e);
        }
        // Take the free blocks covering the range; remember the parts outside it.
        let mut outside = [(start, start); 2];
        let mut p = start;
        while p < end {
            let Some((head, o)) = self.free_block_containing(zone, p) else {
                break;
            };
            self.del_from_free_list(&mut free, self.page(head), o, MigrateType::Isolate);
            let bend = head + o.pages() as u64;
            if head < start {
                outside[0] = (head, start);
            }
            if bend > end {
                outside[1] = (end, bend);
            }
            p = bend;
        }
        self.undo_isolate(zone, &mut free, pb_start, pb_end, mt);
        let mut back = 0usize;
        for (a, b) in outside {
            let mut q = a;
            while q < b {
                self.free_one_page_locked(zone, &mut free, q, Order::ZERO);
                back += 1;
                q = q + 1;
            }
        }
        drop(free);
        let taken = (end.as_u64() - start.as_u64()) as usize;
        zone.stats
            .nr_free_pages
            .fetch_sub(taken as isize, Ordering::Relaxed);
        let _ = back;
        let mut q = start;
        while q < end {
            self.prep_new_page(self.page(q), Order::ZERO, GfpFlags::GFP_KERNEL);
            q = q + 1;
        }
        // Lock order: cpu_section (rank 3), no lock under it; docs/LOCKING.md.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's guard.
        unsafe { zone.pcp_of(g.cpu()) }.add_in_use(taken as isize);
        Ok(())
    }

    /// The migration step of `alloc_contig_range` (`__alloc_contig_migrate_range`).
    fn contig_migrate(
        &self,
        zone: &Zone<P::RawLock>,
        start: Pfn,
        end: Pfn,
        hook: Option<&MigrateHook>,
    ) -> Result<(), Errno> {
        let state = {
            // Lock order: &zone->lock (rank 5) under cma_mutex; docs/LOCKING.md.
            let _free = zone.free.lock();
            self.range_state(zone, start, end)
        };
        match state {
            RangeState::Free => Ok(()),
            RangeState::Busy => Err(Errno::EBUSY),
            RangeState::InUse => {
                let Some(h) = hook else {
                    return Err(Errno::EBUSY);
                };
                // SAFETY: the registrant promised `func` is sound with `ctx` while registered
                // (`register_migrate_hook`); no zone lock or CPU section is held here.
                unsafe { (h.func)(h.ctx, start, end) }?;
                self.drain_all_pages();
                Ok(())
            }
        }
    }

    /// `drain_all_pages(NULL)`: every CPU's pcp lists of every zone go back to the buddy
    /// allocator. Each CPU's lists are drained from here under their `pcp->lock` (Linux
    /// drains remote CPUs' lists this way since 5.19), so a CPU that is idle, or busy
    /// elsewhere, need not run anything: the drainer announces itself on every list, has the
    /// platform run a barrier on every CPU (one `membarrier` for the whole drain), then waits
    /// for each owner to leave its lists (mmzone.rs `PcpSlot`). The caller must not hold its
    /// own CPU's lists.
    pub fn drain_all_pages(&self) {
        let each = |f: &dyn Fn(&Zone<P::RawLock>, usize)| {
            for z in self.zones() {
                if z.pcp.is_null() {
                    continue;
                }
                for cpu in 0..self.possible_cpus {
                    f(z, cpu);
                }
            }
        };
        // SAFETY: `each` passes only zones with lists and CPUs below `possible_cpus`.
        each(&|z, cpu| unsafe { z.pcp_drain_begin(cpu) });
        // At boot a platform without the barrier made every owner lock (`init_lists`).
        let _ = self.platform().membarrier();
        each(&|z, cpu| {
            // Lock order: &pcp->lock of `cpu` (under cpu_section when it is this CPU's own,
            // or under none), &zone->lock under it; docs/LOCKING.md.
            // SAFETY: `cpu < possible_cpus`, the zone has lists, the drain was announced and
            // the barrier ran above, and the caller holds none of the lists.
            let mut pcp = unsafe { z.pcp_remote(cpu, || self.platform().cpu_relax()) };
            let n = pcp.count();
            if n > 0 {
                self.free_pcppages_bulk(z, &mut pcp, n);
            }
        });
        // SAFETY: `each` passes only zones with lists and CPUs below `possible_cpus`; every
        // `pcp_drain_begin` above is withdrawn once.
        each(&|z, cpu| unsafe { z.pcp_drain_end(cpu) });
    }

    /// `free_contig_range`: drops the reference of each of `count` pages from `pfn`.
    pub(crate) fn free_contig_range(&self, pfn: Pfn, count: usize) {
        let mut bad = 0;
        for i in 0..count as u64 {
            let page = self.page(pfn + i);
            if page.refcount() != 1 {
                bad += 1;
            }
            self.__free_pages(page, Order::ZERO);
        }
        if bad != 0 {
            self.warn(format_args!("{bad} pages are still in use!"));
        }
    }
}

impl<P: Platform> PageAllocator<P> {
    /// `start_isolate_page_range` for memory offlining (mm/memory_hotplug.c): every
    /// pageblock of `[pb_start, pb_end)` becomes MIGRATE_ISOLATE whatever its type, which is
    /// saved in `saved` (one entry per pageblock), and its free pages move to the isolate
    /// lists, so nothing is allocated there any more. Under the zone lock.
    pub(crate) fn isolate_pageblocks(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        (pb_start, pb_end): (u64, u64),
        saved: &mut [MigrateType],
    ) {
        for (i, p) in (pb_start..pb_end).step_by(PB as usize).enumerate() {
            let mt = zone.pageblock_migratetype(Pfn::new(p));
            saved[i] = mt;
            if mt != MigrateType::Isolate {
                self.split_large_free_block(zone, free, Pfn::new(p));
                self.move_freepages_block(zone, free, Pfn::new(p), mt, MigrateType::Isolate);
                zone.set_pageblock_migratetype(Pfn::new(p), MigrateType::Isolate);
            }
        }
    }

    /// `undo_isolate_page_range` after [`Self::isolate_pageblocks`]: each pageblock gets its
    /// saved type back with its free blocks. Under the zone lock.
    pub(crate) fn unisolate_pageblocks(
        &self,
        zone: &Zone<P::RawLock>,
        free: &mut ZoneFree,
        (pb_start, pb_end): (u64, u64),
        saved: &[MigrateType],
    ) {
        for (i, p) in (pb_start..pb_end).step_by(PB as usize).enumerate() {
            if saved[i] != MigrateType::Isolate {
                self.undo_isolate(zone, free, p, p + PB, saved[i]);
            }
        }
    }
}
