//! `compact_zone` and its callers (mm/compaction.c): `compact_node`/`compact_nodes` for
//! `/proc/sys/vm/compact_memory`, `try_to_compact_pages` for direct compaction,
//! kcompactd (`wakeup_kcompactd`, `kcompactd_do_work`) and proactive compaction.

#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use super::scan::{pageblock_start, Isolate};
use super::{
    CompactControl, CompactMigrate, CompactPriority, CompactResult, MigrateMode, MigrateTarget,
};
use crate::addr::{Order, Pfn, NR_PAGE_ORDERS};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mmzone::{MigrateType, Zone, ZoneType, MIGRATE_PCPTYPES, WMARK_MIN};
use crate::page_alloc::compaction::COMPACT_MAX_DEFER_SHIFT;
use crate::page_alloc::compaction::{fragmentation_score_wmark, HPAGE_FRAG_CHECK_INTERVAL_MSEC};
use crate::page_alloc::PageAllocator;
use crate::platform::Platform;

/// `compaction_alloc`/`compaction_free` over a run's isolated free blocks.
struct Targets<'a, P: Platform> {
    pa: &'a PageAllocator<P>,
    cc: &'a mut CompactControl,
}

impl<P: Platform> MigrateTarget for Targets<'_, P> {
    fn alloc(&mut self, _src: PagePtr) -> Option<PagePtr> {
        let cc = &mut *self.cc;
        if cc.nr_freeblocks == 0 {
            if cc.contended || cc.scanners_met() {
                return None;
            }
            self.pa.isolate_freepages(cc);
            if cc.nr_freeblocks == 0 {
                return None;
            }
        }
        // The smallest block first, so that larger ones are split as late as possible.
        let i = (0..cc.nr_freeblocks).min_by_key(|&i| cc.freepages[i].1)?;
        let (pfn, order) = cc.freepages[i];
        cc.nr_freeblocks -= 1;
        cc.freepages[i] = cc.freepages[cc.nr_freeblocks];
        // Split: the upper halves stay isolated, the first page is the target.
        for o in (0..order).rev() {
            if cc.nr_freeblocks == cc.freepages.len() {
                // No room to keep the rest: give it back to the allocator.
                let p = self.pa.page(pfn + (1u64 << o));
                self.pa.compaction_prep_page(p, Order::new(o));
                self.pa.__free_pages(p, Order::new(o));
                cc.nr_freepages -= 1 << o;
            } else {
                cc.freepages[cc.nr_freeblocks] = (pfn + (1u64 << o), o);
                cc.nr_freeblocks += 1;
            }
        }
        // The split halves kept above are still counted; the target is not.
        cc.nr_freepages -= 1;
        let page = self.pa.page(pfn);
        self.pa.compaction_prep_page(page, Order::ZERO);
        Some(page)
    }

    fn free(&mut self, page: PagePtr) {
        self.pa.__free_pages(page, Order::ZERO);
    }
}

impl<P: Platform> PageAllocator<P> {
    /// Whether the scanners can run over `zone`: it has pages and a boot span. The scanners
    /// walk the boot span only (their memmap check is `max_pfn`, the boot memmap): a zone
    /// that was empty at boot and holds only hot-added memory (ZONE_NORMAL of a machine
    /// below 4 GiB grown by `online_kernel`) has an empty boot span, whose last pageblock
    /// `pageblock_start(end - 1)` would wrap below zero. Such a zone is skipped: hot-added
    /// memory is not compacted (its memmap can go away with its block; compacting it needs
    /// a `pfn_to_online_page` check per pageblock, as Linux's `pageblock_pfn_to_page` has).
    pub(crate) fn compactable(zone: &Zone<P::RawLock>) -> bool {
        zone.is_populated() && zone.geo.spanned > 0
    }

    /// `reset_cached_positions`: the scanners start again at the zone's ends.
    fn reset_cached_positions(zone: &Zone<P::RawLock>) {
        if !Self::compactable(zone) {
            return;
        }
        let (zs, ze) = Self::zone_span(zone);
        let c = &zone.compact;
        c.cached_migrate_pfn[0].store(zs as usize, Ordering::Relaxed);
        c.cached_migrate_pfn[1].store(zs as usize, Ordering::Relaxed);
        c.cached_free_pfn
            .store(pageblock_start(ze - 1) as usize, Ordering::Relaxed);
    }

    /// `__reset_isolation_suitable`: clears every pageblock's skip bit and the cached
    /// positions.
    pub fn reset_isolation_suitable(&self, kind: ZoneType) {
        Self::reset_isolation_suitable_zone(self.zone(kind));
    }

    /// [`Self::reset_isolation_suitable`] of any node's zone.
    fn reset_isolation_suitable_zone(zone: &Zone<P::RawLock>) {
        if !Self::compactable(zone) {
            return;
        }
        let (zs, ze) = Self::zone_span(zone);
        let mut p = pageblock_start(zs);
        while p < ze {
            zone.set_pageblock_skip(Pfn::new(p.max(zs)), false);
            p += crate::mmzone::PAGEBLOCK_NR_PAGES as u64;
        }
        Self::reset_cached_positions(zone);
        zone.compact.blockskip_flush.store(false, Ordering::Relaxed);
    }

    /// Whether a free block of at least `order` that an allocation of `mt` may take is on
    /// the zone's lists (`__compact_finished`'s search; fallbacks that would claim a block).
    fn free_block_for(&self, zone: &Zone<P::RawLock>, order: u32, mt: MigrateType) -> bool {
        let by_type = self.free_area_counts_by_type(zone);
        let claimable = |o: u32| {
            o >= crate::mmzone::PAGEBLOCK_ORDER / 2
                || matches!(mt, MigrateType::Unmovable | MigrateType::Reclaimable)
        };
        (order as usize..NR_PAGE_ORDERS).any(|o| {
            by_type[mt as usize][o] > 0
                || (mt == MigrateType::Movable && by_type[MigrateType::Cma as usize][o] > 0)
                || (claimable(o as u32)
                    && mt.fallbacks().iter().any(|f| by_type[*f as usize][o] > 0))
        })
    }

    /// `zone_watermark_ok` at `order` (`__zone_watermark_ok`): free pages above `wmark` plus
    /// the reserve, and a free block of the order on a pcp type's (or CMA's) list.
    pub fn zone_watermark_ok_order(
        &self,
        kind: ZoneType,
        order: u32,
        wmark: usize,
        hi: ZoneType,
    ) -> bool {
        self.zone_watermark_ok_zone(self.zone(kind), order, wmark, hi)
    }

    /// [`Self::zone_watermark_ok_order`] of any node's zone.
    fn zone_watermark_ok_zone(
        &self,
        zone: &Zone<P::RawLock>,
        order: u32,
        wmark: usize,
        hi: ZoneType,
    ) -> bool {
        let free = zone.stats.free_pages() as isize - ((1isize << order) - 1);
        let reserve = zone.lowmem_reserve[hi.index()].load(Ordering::Relaxed);
        if free <= (zone.wmark(wmark) + reserve) as isize {
            return false;
        }
        if order == 0 {
            return true;
        }
        let by_type = self.free_area_counts_by_type(zone);
        (order as usize..NR_PAGE_ORDERS).any(|o| {
            (0..MIGRATE_PCPTYPES).any(|mt| by_type[mt][o] > 0)
                || by_type[MigrateType::Cma as usize][o] > 0
        })
    }

    /// `compaction_suit_allocation_order`: `Success` when the allocation would already
    /// succeed, `Skipped` when the zone cannot be compacted for it, `Continue` otherwise.
    pub fn compaction_suit_allocation_order(
        &self,
        kind: ZoneType,
        order: u32,
        hi: ZoneType,
    ) -> CompactResult {
        self.compaction_suit_zone(self.zone(kind), order, hi)
    }

    /// [`Self::compaction_suit_allocation_order`] of any node's zone.
    fn compaction_suit_zone(
        &self,
        zone: &Zone<P::RawLock>,
        order: u32,
        hi: ZoneType,
    ) -> CompactResult {
        if self.zone_watermark_ok_zone(zone, order, WMARK_MIN, hi) {
            return CompactResult::Success;
        }
        if !self.compaction_suitable(zone, order, hi) {
            return CompactResult::Skipped;
        }
        CompactResult::Continue
    }

    /// `__compact_finished`.
    fn compact_finished(&self, cc: &CompactControl) -> CompactResult {
        let zone = self.node_zone(cc.nid, cc.zone);
        if cc.contended {
            return CompactResult::Contended;
        }
        if cc.scanners_met() {
            Self::reset_cached_positions(zone);
            if cc.direct {
                zone.compact.blockskip_flush.store(true, Ordering::Relaxed);
            }
            return if cc.whole_zone {
                CompactResult::Complete
            } else {
                CompactResult::PartialSkipped
            };
        }
        if cc.proactive {
            let p = self.compaction.sysctl.proactiveness.load(Ordering::Relaxed);
            return if self.fragmentation_score_of(zone) > fragmentation_score_wmark(p, true) {
                CompactResult::Continue
            } else {
                CompactResult::Success
            };
        }
        let Some(order) = cc.order else {
            return CompactResult::Continue;
        };
        if cc.migrate_pfn != pageblock_start(cc.migrate_pfn) {
            return CompactResult::Continue;
        }
        if self.free_block_for(zone, order, cc.migratetype) {
            return CompactResult::Success;
        }
        // COMPACT_NO_SUITABLE_PAGE: compact_finished turns it into CONTINUE.
        CompactResult::Continue
    }

    /// Puts back every isolated page still in `cc.migratepages`.
    fn putback_migratepages(cc: &mut CompactControl, ops: &dyn CompactMigrate) {
        for slot in cc.migratepages.iter_mut().take(cc.nr_migratepages) {
            if let Some(p) = slot.take() {
                ops.putback(p);
            }
        }
        cc.nr_migratepages = 0;
    }

    /// `release_free_list`: gives the unused free blocks back. Returns the highest PFN.
    fn release_freepages(&self, cc: &mut CompactControl) -> Option<u64> {
        let mut high = None;
        for &(pfn, order) in &cc.freepages[..cc.nr_freeblocks] {
            let page = self.page(pfn);
            self.compaction_prep_page(page, Order::new(order));
            self.__free_pages(page, Order::new(order));
            high = high.max(Some(pfn.as_u64()));
        }
        cc.nr_freeblocks = 0;
        cc.nr_freepages = 0;
        high
    }

    /// Sets the scanners' starting points (`compact_zone`'s setup).
    fn compact_zone_start(&self, cc: &mut CompactControl) {
        let zone = self.node_zone(cc.nid, cc.zone);
        let (zs, ze) = Self::zone_span(zone);
        let last_block = pageblock_start(ze - 1);
        if cc.whole_zone {
            cc.migrate_pfn = zs;
            cc.free_pfn = last_block;
            return;
        }
        let sync = usize::from(cc.mode != MigrateMode::Async);
        let c = &zone.compact;
        cc.free_pfn = c.cached_free_pfn.load(Ordering::Relaxed) as u64;
        if cc.free_pfn < zs || cc.free_pfn > last_block {
            cc.free_pfn = last_block;
            c.cached_free_pfn
                .store(last_block as usize, Ordering::Relaxed);
        }
        cc.migrate_pfn = c.cached_migrate_pfn[sync].load(Ordering::Relaxed) as u64;
        if cc.migrate_pfn < zs || cc.migrate_pfn > ze {
            cc.migrate_pfn = zs;
            c.cached_migrate_pfn[0].store(zs as usize, Ordering::Relaxed);
            c.cached_migrate_pfn[1].store(zs as usize, Ordering::Relaxed);
        }
        if cc.migrate_pfn <= zs {
            cc.whole_zone = true;
        }
    }

    /// `compact_zone`: runs both scanners over `cc.zone` until `compact_finished` says
    /// stop, migrating batch after batch through `ops`. Counts `compact_migrate_scanned`,
    /// `compact_free_scanned` and `compact_isolated`.
    pub fn compact_zone(&self, cc: &mut CompactControl, ops: &dyn CompactMigrate) -> CompactResult {
        let zone = self.node_zone(cc.nid, cc.zone);
        if !Self::compactable(zone) {
            return CompactResult::Skipped;
        }
        if let Some(order) = cc.order {
            if self.compaction_restarting(zone, order) {
                Self::reset_isolation_suitable_zone(zone);
            }
            let r = self.compaction_suit_zone(zone, order, cc.highest);
            if r != CompactResult::Continue {
                return r;
            }
        }
        self.compact_zone_start(cc);
        let mut update_cached = cc.mode == MigrateMode::Async
            && zone.compact.cached_migrate_pfn[0].load(Ordering::Relaxed)
                == zone.compact.cached_migrate_pfn[1].load(Ordering::Relaxed);
        let mut ret;
        loop {
            ret = self.compact_finished(cc);
            if ret != CompactResult::Continue {
                break;
            }
            cc.finish_pageblock = false;
            match self.isolate_migratepages(cc, ops) {
                Isolate::None => {
                    if update_cached {
                        let v = zone.compact.cached_migrate_pfn[0].load(Ordering::Relaxed);
                        zone.compact.cached_migrate_pfn[1].store(v, Ordering::Relaxed);
                    }
                    continue;
                }
                Isolate::Success => update_cached = false,
            }
            if let Err(e) = self.migrate_batch(cc, ops) {
                if e == Errno::ENOMEM && !cc.scanners_met() {
                    ret = CompactResult::Contended;
                    break;
                }
            }
        }
        Self::putback_migratepages(cc, ops);
        if let Some(high) = self.release_freepages(cc) {
            let high = pageblock_start(high) as usize;
            zone.compact
                .cached_free_pfn
                .fetch_max(high, Ordering::Relaxed);
        }
        if cc.nr_migrated > 0 {
            // drain_all_pages: the sources freed to the CPUs' page lists merge into the
            // buddy lists.
            self.drain_all_pages();
        }
        let st = &self.compaction.stats;
        st.migrate_scanned
            .fetch_add(cc.total_migrate_scanned, Ordering::Relaxed);
        st.free_scanned
            .fetch_add(cc.total_free_scanned, Ordering::Relaxed);
        ret
    }

    /// One `migrate_pages` call over the isolated batch; what failed is put back.
    fn migrate_batch(
        &self,
        cc: &mut CompactControl,
        ops: &dyn CompactMigrate,
    ) -> Result<(), Errno> {
        let mut batch = cc.migratepages;
        let n = cc.nr_migratepages;
        cc.migratepages = [None; super::COMPACT_CLUSTER_MAX];
        let mode = cc.mode;
        let r = ops.migrate(&mut batch[..n], &mut Targets { pa: self, cc }, mode);
        let mut failed = 0;
        for slot in batch.iter_mut().take(n) {
            if let Some(p) = slot.take() {
                ops.putback(p);
                failed += 1;
            }
        }
        cc.nr_migrated += (n - failed) as u64;
        cc.nr_migratepages = 0;
        if failed > 0 && cc.direct && cc.mode == MigrateMode::Async {
            // Async direct compaction gives up on the rest of a block that failed.
            cc.migrate_pfn = pageblock_start(cc.migrate_pfn.saturating_sub(1))
                + crate::mmzone::PAGEBLOCK_NR_PAGES as u64;
            cc.finish_pageblock = true;
        }
        r
    }

    /// `compact_node` of every online node: a full compaction of every populated zone
    /// (`compact_memory`, or proactive compaction with `proactive`).
    pub fn compact_node(&self, ops: &dyn CompactMigrate, proactive: bool) {
        for nid in 0..self.nr_online_nodes() {
            self.compact_pgdat(nid, ops, proactive);
        }
    }

    /// `compact_node(pgdat)`: a full compaction of every populated zone of node `nid`.
    pub fn compact_pgdat(&self, nid: usize, ops: &dyn CompactMigrate, proactive: bool) {
        for &kind in self.arch().zones() {
            if !self.node_zone(nid, kind).is_populated() {
                continue;
            }
            let mut cc = CompactControl::full(kind);
            cc.nid = nid;
            if proactive {
                cc.mode = MigrateMode::SyncLight;
                cc.proactive = true;
            }
            self.compact_zone(&mut cc, ops);
            if proactive {
                let st = &self.compaction.stats;
                st.daemon_migrate_scanned
                    .fetch_add(cc.total_migrate_scanned, Ordering::Relaxed);
                st.daemon_free_scanned
                    .fetch_add(cc.total_free_scanned, Ordering::Relaxed);
            }
        }
    }

    /// `compact_nodes` (`echo 1 > /proc/sys/vm/compact_memory`): drains the page lists and
    /// compacts every zone of every node. A write while a run is in progress returns at once.
    pub fn compact_nodes(&self, ops: &dyn CompactMigrate) {
        if self.compaction.running.swap(true, Ordering::Acquire) {
            return;
        }
        self.drain_all_pages();
        self.compact_node(ops, false);
        self.compaction.running.store(false, Ordering::Release);
    }

    /// `try_to_compact_pages`: direct compaction for an allocation of `order` with `gfp`
    /// on the current CPU's node; see [`Self::try_to_compact_pages_node`].
    pub fn try_to_compact_pages(
        &self,
        ops: &dyn CompactMigrate,
        gfp: GfpFlags,
        order: u32,
        highest: ZoneType,
        prio: CompactPriority,
    ) -> CompactResult {
        let nid = if self.nr_online_nodes() > 1 {
            self.numa_node_id()
        } else {
            0
        };
        self.try_to_compact_pages_node(ops, gfp, order, highest, prio, nid, u64::MAX)
    }

    /// `try_to_compact_pages` for an allocation preferring node `nid` on the nodes of
    /// `nodemask`: zone by zone along the zonelist (`nid`'s fallback order, each node's zones
    /// from `highest` down; `nid` alone with `__GFP_THISNODE`), with deferral, until one
    /// succeeds. Returns the best result.
    #[allow(clippy::too_many_arguments)]
    pub fn try_to_compact_pages_node(
        &self,
        ops: &dyn CompactMigrate,
        gfp: GfpFlags,
        order: u32,
        highest: ZoneType,
        prio: CompactPriority,
        nid: usize,
        nodemask: u64,
    ) -> CompactResult {
        let mut rc = CompactResult::Skipped;
        let zones = self.arch().zones();
        let top = zones.iter().position(|z| *z == highest).unwrap_or(0);
        let nodes = self
            .zonelist_nodes(nid.min(self.nr_online_nodes().saturating_sub(1)), gfp)
            .iter()
            .map(|&n| n as usize)
            .filter(|&n| nodemask & (1 << n) != 0);
        for (node, &kind) in nodes.flat_map(|n| zones[..=top].iter().rev().map(move |k| (n, k))) {
            let zone = self.node_zone(node, kind);
            if !zone.is_populated() {
                continue;
            }
            if prio > CompactPriority::SyncFull && self.compaction_deferred(zone, order) {
                rc = rc.max(CompactResult::Deferred);
                continue;
            }
            let full = prio == CompactPriority::SyncFull;
            let mode = if prio == CompactPriority::Async {
                MigrateMode::Async
            } else {
                MigrateMode::SyncLight
            };
            let mut cc = CompactControl::new(kind, Some(order), mode);
            cc.nid = node;
            cc.migratetype = MigrateType::from_gfp(gfp);
            cc.highest = highest;
            cc.direct = true;
            cc.whole_zone = full;
            cc.ignore_skip_hint = full;
            cc.ignore_block_suitable = full;
            let status = self.compact_zone(&mut cc, ops);
            rc = rc.max(status);
            if status == CompactResult::Success {
                self.compaction_defer_reset(zone, order, false);
                break;
            }
            if prio != CompactPriority::Async
                && matches!(
                    status,
                    CompactResult::Complete | CompactResult::PartialSkipped
                )
            {
                self.defer_compaction(zone, order);
            }
        }
        rc
    }

    /// `wakeup_kcompactd(pgdat, order, highest)`: records the request for node `nid`'s
    /// kcompactd; when a zone of the node up to `highest` can be compacted for it, the
    /// node's kcompactd runs now (synchronously: kmem has no kernel threads). Order 0 or a
    /// node that is not online is no request.
    pub fn wakeup_kcompactd(
        &self,
        ops: &dyn CompactMigrate,
        nid: usize,
        order: u32,
        highest: ZoneType,
    ) {
        if order == 0 || nid >= self.nr_online_nodes() {
            return;
        }
        let c = &self.compaction;
        c.kcompactd_order[nid].fetch_max(order as usize + 1, Ordering::Relaxed);
        c.kcompactd_zoneidx[nid].fetch_max(highest.index(), Ordering::Relaxed);
        let suitable = self.arch().zones().iter().any(|&k| {
            let zone = self.node_zone(nid, k);
            k.index() <= highest.index()
                && zone.is_populated()
                && self.compaction_suit_zone(zone, order, highest) == CompactResult::Continue
        });
        if suitable {
            self.kcompactd_do_work(nid, ops);
        } else {
            c.kcompactd_order[nid].store(0, Ordering::Relaxed);
        }
    }

    /// `kcompactd_do_work(pgdat)`: compacts each zone of node `nid` up to the requested one
    /// for the requested order (`MIGRATE_SYNC_LIGHT`, with deferral); counts
    /// `compact_daemon_*`.
    pub fn kcompactd_do_work(&self, nid: usize, ops: &dyn CompactMigrate) {
        let c = &self.compaction;
        let Some(req) = c.kcompactd_order.get(nid) else {
            return;
        };
        let Some(order) = req.swap(0, Ordering::Relaxed).checked_sub(1) else {
            return;
        };
        let highest = c.kcompactd_zoneidx[nid].swap(0, Ordering::Relaxed);
        c.stats.daemon_wake.fetch_add(1, Ordering::Relaxed);
        let order = order as u32;
        for &kind in self.arch().zones() {
            if kind.index() > highest {
                break;
            }
            let zone = self.node_zone(nid, kind);
            if !zone.is_populated() || self.compaction_deferred(zone, order) {
                continue;
            }
            if self.compaction_suit_zone(zone, order, kind) != CompactResult::Continue {
                continue;
            }
            let mut cc = CompactControl::new(kind, Some(order), MigrateMode::SyncLight);
            cc.nid = nid;
            let status = self.compact_zone(&mut cc, ops);
            if status == CompactResult::Success {
                self.compaction_defer_reset(zone, order, false);
            } else if matches!(
                status,
                CompactResult::PartialSkipped | CompactResult::Complete
            ) {
                self.defer_compaction(zone, order);
            }
            c.stats
                .daemon_migrate_scanned
                .fetch_add(cc.total_migrate_scanned, Ordering::Relaxed);
            c.stats
                .daemon_free_scanned
                .fetch_add(cc.total_free_scanned, Ordering::Relaxed);
        }
    }

    /// `should_proactive_compact_node`: proactiveness is on and the node's fragmentation
    /// score is above the high mark.
    pub fn should_proactive_compact_node(&self) -> bool {
        let p = self.compaction.sysctl.proactiveness.load(Ordering::Relaxed);
        p != 0 && self.fragmentation_score_node() > fragmentation_score_wmark(p, false)
    }

    /// kcompactd's timeout branch, called by the machine's owner as its timer (kmem has no
    /// timers; nothing calls it on its own): at most once per
    /// `HPAGE_FRAG_CHECK_INTERVAL_MSEC` (longer
    /// while deferred), compacts the node proactively when
    /// [`Self::should_proactive_compact_node`]. A run that did not lower the score defers
    /// the next ones by `1 << COMPACT_MAX_DEFER_SHIFT` periods. Returns whether it ran.
    pub fn kcompactd_tick(&self, ops: &dyn CompactMigrate) -> bool {
        let c = &self.compaction;
        let now = self.platform().jiffies();
        let period = (HPAGE_FRAG_CHECK_INTERVAL_MSEC * self.platform().hz() / 1000).max(1);
        let last = c.proactive_last.load(Ordering::Relaxed);
        let defer = c.proactive_defer.load(Ordering::Relaxed) as u64;
        if now.saturating_sub(last) < period * (defer + 1) {
            return false;
        }
        c.proactive_last.store(now, Ordering::Relaxed);
        c.proactive_defer.store(0, Ordering::Relaxed);
        self.proactive_compact(ops)
    }

    /// One proactive run if the score asks for it (`proactive_compact_node`); returns
    /// whether it ran.
    pub fn proactive_compact(&self, ops: &dyn CompactMigrate) -> bool {
        if !self.should_proactive_compact_node() {
            return false;
        }
        let prev = self.fragmentation_score_node();
        self.compact_node(ops, true);
        if self.fragmentation_score_node() >= prev {
            self.compaction
                .proactive_defer
                .store((1 << COMPACT_MAX_DEFER_SHIFT) - 1, Ordering::Relaxed);
        }
        true
    }
}
