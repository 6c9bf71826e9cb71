//! The migrate and free scanners (mm/compaction.c `isolate_migratepages`,
//! `isolate_migratepages_block`, `isolate_freepages`, `isolate_freepages_block`) and the
//! skip hints they keep.

#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use super::{CompactControl, CompactMigrate, MigrateMode, COMPACT_CLUSTER_MAX, FREE_BLOCKS_MAX};
use crate::addr::{Pfn, MAX_PAGE_ORDER};
use crate::mm::mm_types::{pg, PagePtr};
use crate::mmzone::{MigrateType, Zone, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER};
use crate::page_alloc::PageAllocator;
use crate::platform::Platform;

const PB: u64 = PAGEBLOCK_NR_PAGES as u64;

/// `pageblock_start_pfn`.
pub(crate) const fn pageblock_start(pfn: u64) -> u64 {
    pfn & !(PB - 1)
}
/// `pageblock_end_pfn`.
pub(crate) const fn pageblock_end(pfn: u64) -> u64 {
    pageblock_start(pfn) + PB
}

/// What `isolate_migratepages` found (`isolate_migrate_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isolate {
    /// `ISOLATE_NONE`: nothing to migrate before the free scanner.
    None,
    /// `ISOLATE_SUCCESS`: `cc.migratepages` holds pages.
    Success,
}

impl<P: Platform> PageAllocator<P> {
    /// The zone's first and one-past-last PFN.
    pub(crate) fn zone_span(zone: &Zone<P::RawLock>) -> (u64, u64) {
        let s = zone.geo.start_pfn.as_u64();
        (s, s + zone.geo.spanned)
    }

    /// `pageblock_pfn_to_page`: the first page of `[start, end)` when the whole range is in
    /// `zone` with a memmap (kmem's memmap covers every PFN below `max_pfn`).
    fn pageblock_page(&self, zone: &Zone<P::RawLock>, start: u64, end: u64) -> Option<PagePtr> {
        if end <= start || end > self.max_pfn.as_u64() {
            return None;
        }
        let (zs, ze) = Self::zone_span(zone);
        if start < zs || end > ze {
            return None;
        }
        Some(self.page(Pfn::new(start)))
    }

    /// `isolation_suitable`: the pageblock's skip bit is clear, or hints are ignored.
    fn isolation_suitable(cc: &CompactControl, zone: &Zone<P::RawLock>, pfn: u64) -> bool {
        cc.ignore_skip_hint || !zone.pageblock_skip(Pfn::new(pfn))
    }

    /// `update_cached_migrate`: later runs start the migrate scanner after `pfn`'s block.
    fn update_cached_migrate(cc: &CompactControl, zone: &Zone<P::RawLock>, pfn: u64) {
        let pfn = pageblock_end(pfn) as usize;
        let c = &zone.compact.cached_migrate_pfn;
        c[0].fetch_max(pfn, Ordering::Relaxed);
        if cc.mode != MigrateMode::Async {
            c[1].fetch_max(pfn, Ordering::Relaxed);
        }
    }

    /// `update_pageblock_skip` for the free scanner: marks the block and moves the cached
    /// free position down to `pfn`.
    fn update_pageblock_skip(zone: &Zone<P::RawLock>, block: u64, pfn: u64) {
        zone.set_pageblock_skip(Pfn::new(block), true);
        zone.compact
            .cached_free_pfn
            .fetch_min(pfn as usize, Ordering::Relaxed);
    }

    /// `suitable_migration_source`: async direct compaction moves pages only out of blocks
    /// of the allocation's own kind (movable and CMA count as one); otherwise every block.
    fn suitable_migration_source(cc: &CompactControl, zone: &Zone<P::RawLock>, pfn: u64) -> bool {
        if cc.mode != MigrateMode::Async || !cc.direct {
            return true;
        }
        let mt = zone.pageblock_migratetype(Pfn::new(pfn));
        if cc.migratetype == MigrateType::Movable {
            matches!(mt, MigrateType::Movable | MigrateType::Cma)
        } else {
            mt == cc.migratetype
        }
    }

    /// `suitable_migration_target`: never break up a free pageblock; otherwise movable and
    /// CMA blocks (any block with `ignore_block_suitable`).
    fn suitable_migration_target(
        cc: &CompactControl,
        zone: &Zone<P::RawLock>,
        page: PagePtr,
        pfn: u64,
    ) -> bool {
        if page.is_buddy() && page.private() as u32 >= PAGEBLOCK_ORDER {
            return false;
        }
        if cc.ignore_block_suitable {
            return true;
        }
        matches!(
            zone.pageblock_migratetype(Pfn::new(pfn)),
            MigrateType::Movable | MigrateType::Cma
        )
    }

    /// `isolate_migratepages_block`: scans `[low, end)` and isolates movable pages into
    /// `cc.migratepages` until it holds `COMPACT_CLUSTER_MAX`. Returns the PFN where the
    /// scan stopped. A block scanned to its end without an isolation gets its skip bit.
    pub(crate) fn isolate_migratepages_block(
        &self,
        cc: &mut CompactControl,
        ops: &dyn CompactMigrate,
        low: u64,
        end: u64,
    ) -> u64 {
        let zone = self.node_zone(cc.nid, cc.zone);
        let unevictable = self
            .compaction
            .sysctl
            .unevictable_allowed
            .load(Ordering::Relaxed);
        let mut pfn = low;
        let mut nr_scanned = 0u64;
        let mut nr_isolated = 0u64;
        while pfn < end {
            nr_scanned += 1;
            let page = self.page(Pfn::new(pfn));
            if page.is_buddy() {
                // A racy read: a block being split may show a stale order; bound it.
                let order = (page.private() as u32).min(MAX_PAGE_ORDER);
                let skip = (1u64 << order) - 1;
                pfn += skip + 1;
                nr_scanned += skip;
                continue;
            }
            if page.is_head() || page.is_tail() || page.is_reserved() {
                pfn += 1;
                continue;
            }
            if !page.test_flag(pg::LRU) {
                pfn += 1;
                if page.page_type().is_none()
                    && page.refcount() > 0
                    && ops.isolate_movable(page)
                    && self.add_migratepage(cc, page, &mut nr_isolated)
                {
                    break;
                }
                continue;
            }
            if page.test_flag(pg::UNEVICTABLE) && !unevictable {
                pfn += 1;
                continue;
            }
            // Async compaction does not wait on pages under writeback or dirty pages that
            // need a write first (`isolate_migratepages_block`'s ISOLATE_ASYNC_MIGRATE).
            if cc.mode == MigrateMode::Async && page.test_flag(pg::WRITEBACK) {
                pfn += 1;
                continue;
            }
            pfn += 1;
            // Migration fails on an anonymous page pinned in memory (references beyond its
            // mappings, e.g. pin_user_pages' bias): a racy check spares isolating it.
            let anon = page.mapping() & crate::rmap::PAGE_MAPPING_ANON != 0;
            if anon && !page.test_flag(pg::SWAPCACHE) && page.refcount() - 1 > page.mapcount() {
                continue;
            }
            if ops.isolate(page, unevictable) && self.add_migratepage(cc, page, &mut nr_isolated) {
                break;
            }
        }
        let pfn = pfn.min(end);
        if pfn == end && nr_isolated == 0 && !cc.ignore_skip_hint {
            zone.set_pageblock_skip(Pfn::new(pageblock_start(low)), true);
        }
        if pfn == end {
            Self::update_cached_migrate(cc, zone, pfn - 1);
        }
        cc.total_migrate_scanned += nr_scanned;
        let st = &self.compaction.stats;
        st.isolated.fetch_add(nr_isolated, Ordering::Relaxed);
        pfn
    }

    /// Adds an isolated page to the batch; returns whether the batch is full.
    fn add_migratepage(&self, cc: &mut CompactControl, page: PagePtr, nr: &mut u64) -> bool {
        cc.migratepages[cc.nr_migratepages] = Some(page);
        cc.nr_migratepages += 1;
        *nr += 1;
        cc.nr_migratepages == COMPACT_CLUSTER_MAX
    }

    /// `isolate_migratepages`: isolates pages from the next suitable pageblock below the
    /// free scanner.
    pub(crate) fn isolate_migratepages(
        &self,
        cc: &mut CompactControl,
        ops: &dyn CompactMigrate,
    ) -> Isolate {
        let zone = self.node_zone(cc.nid, cc.zone);
        let (zs, _) = Self::zone_span(zone);
        let mut low = cc.migrate_pfn;
        let mut block_start = pageblock_start(low).max(zs);
        let mut block_end = pageblock_end(low);
        while block_end <= cc.free_pfn {
            let Some(_) = self.pageblock_page(zone, block_start, block_end) else {
                Self::update_cached_migrate(cc, zone, block_end - 1);
                low = block_end;
                block_start = block_end;
                block_end += PB;
                continue;
            };
            let at_block_start = low == pageblock_start(low) || low == zs;
            if at_block_start && !Self::isolation_suitable(cc, zone, block_start) {
                low = block_end;
                block_start = block_end;
                block_end += PB;
                continue;
            }
            if !Self::suitable_migration_source(cc, zone, block_start) {
                Self::update_cached_migrate(cc, zone, block_end - 1);
                low = block_end;
                block_start = block_end;
                block_end += PB;
                continue;
            }
            low = self.isolate_migratepages_block(cc, ops, low, block_end);
            break;
        }
        cc.migrate_pfn = low;
        if cc.nr_migratepages > 0 {
            Isolate::Success
        } else {
            Isolate::None
        }
    }

    /// `isolate_freepages_block`: takes free blocks in `[*start, end)` (every `stride`
    /// PFNs) into `cc.freepages`; stops once there are enough for the pages to migrate
    /// (unless `strict`). `*start` becomes where it stopped. Returns pages isolated.
    fn isolate_freepages_block(
        &self,
        cc: &mut CompactControl,
        start: &mut u64,
        end: u64,
        stride: u64,
    ) -> usize {
        let zone = self.node_zone(cc.nid, cc.zone);
        let mut pfn = (*start).max(Self::zone_span(zone).0);
        let mut nr_scanned = 0u64;
        let mut total = 0usize;
        while pfn < end {
            nr_scanned += 1;
            let page = self.page(Pfn::new(pfn));
            if !page.is_buddy() {
                pfn += stride;
                continue;
            }
            if cc.nr_freeblocks == FREE_BLOCKS_MAX {
                break;
            }
            let Some(order) = self.isolate_free_page(zone, Pfn::new(pfn)) else {
                break;
            };
            let n = order.pages();
            cc.freepages[cc.nr_freeblocks] = (Pfn::new(pfn), order.as_u32());
            cc.nr_freeblocks += 1;
            cc.nr_freepages += n;
            total += n;
            nr_scanned += n as u64 - 1;
            pfn += n as u64;
            if cc.nr_migratepages <= cc.nr_freepages {
                break;
            }
            pfn += stride - 1;
        }
        *start = pfn.min(end);
        cc.total_free_scanned += nr_scanned;
        if total > 0 {
            let st = &self.compaction.stats;
            st.isolated.fetch_add(total as u64, Ordering::Relaxed);
        }
        total
    }

    /// `isolate_freepages`: the free scanner, from `cc.free_pfn` down to the block after the
    /// migrate scanner's, one pageblock at a time.
    pub(crate) fn isolate_freepages(&self, cc: &mut CompactControl) {
        let zone = self.node_zone(cc.nid, cc.zone);
        let (zs, ze) = Self::zone_span(zone);
        let mut isolate_start = cc.free_pfn;
        let mut block_start = pageblock_start(isolate_start);
        let mut block_end = (block_start + PB).min(ze);
        let low = pageblock_end(cc.migrate_pfn);
        let mut stride = if cc.mode == MigrateMode::Async {
            COMPACT_CLUSTER_MAX as u64
        } else {
            1
        };
        while block_start >= low {
            let next = || block_start.checked_sub(PB);
            let suitable = self
                .pageblock_page(zone, block_start.max(zs), block_end)
                .filter(|&p| Self::suitable_migration_target(cc, zone, p, block_start.max(zs)))
                .is_some()
                && Self::isolation_suitable(cc, zone, block_start);
            if suitable {
                let got = self.isolate_freepages_block(cc, &mut isolate_start, block_end, stride);
                if isolate_start == block_end && !cc.ignore_skip_hint {
                    Self::update_pageblock_skip(zone, block_start, block_start.saturating_sub(PB));
                }
                if cc.nr_freepages >= cc.nr_migratepages || cc.nr_freeblocks == FREE_BLOCKS_MAX {
                    if isolate_start >= block_end {
                        isolate_start = block_start.saturating_sub(PB);
                    }
                    break;
                }
                if isolate_start < block_end {
                    // The block was not finished: the watermark stopped it.
                    break;
                }
                // Sample densely after a success, more sparsely after a miss.
                stride = if got > 0 {
                    1
                } else {
                    (stride * 2).min(COMPACT_CLUSTER_MAX as u64)
                };
            }
            let Some(n) = next() else {
                isolate_start = 0;
                break;
            };
            block_end = block_start;
            block_start = n;
            isolate_start = block_start;
        }
        if block_start < low && cc.nr_freepages < cc.nr_migratepages {
            isolate_start = block_start;
        }
        cc.free_pfn = isolate_start;
    }
}
