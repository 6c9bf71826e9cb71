//! Memory compaction (mm/compaction.c): moves movable pages out of the bottom of a zone into
//! free pages at its top, so that free memory coalesces into high-order blocks.
//!
//! # The two scanners
//! `compact_zone` runs two scanners towards each other over a zone, one pageblock at a
//! time. The **migrate scanner** (`isolate_migratepages`) starts at the zone's start (or
//! where the last run stopped, `compact_cached_migrate_pfn`) and isolates up to
//! `COMPACT_CLUSTER_MAX` (32) movable pages — pages on an LRU list, taken off it with a
//! reference — skipping free blocks by their order. The **free scanner**
//! (`isolate_freepages`) starts at the zone's end (`compact_cached_free_pfn`) and takes
//! free blocks off the buddy lists in pageblocks that are migration targets (movable or
//! CMA, never a whole free pageblock) until it has as many free pages as there are pages to
//! move. The isolated pages are then migrated (`migrate_pages(…, compaction_alloc,
//! compaction_free, mode, MR_COMPACTION)`): each target is an order-0 page split from the
//! isolated free blocks. Pages that fail are put back on their LRU lists. The run ends when
//! the scanners meet (`COMPACT_COMPLETE`), or, for an allocation of order `n`, as soon as a
//! free block of order ≥ `n` that the allocation may use exists (`COMPACT_SUCCESS`).
//!
//! # Skip hints and cached positions
//! A pageblock where the migrate scanner isolated nothing, or the free scanner found no
//! free page, gets its skip bit (`PB_compact_skip`, [`crate::mmzone::PB_MIGRATE_SKIP`]), and
//! later runs skip it; the scanners' positions are cached per zone. Both are reset
//! (`__reset_isolation_suitable`) when the scanners met in a direct compaction and the next
//! run starts over, and when a deferred zone restarts. `compact_memory`, proactive
//! compaction and the highest direct priority ignore the hints and scan the whole zone.
//!
//! # Who runs it
//! - `echo 1 > /proc/sys/vm/compact_memory` → `compact_nodes` (every zone, `MIGRATE_SYNC`).
//! - Direct compaction: the allocation slow path for costly orders, through the
//!   [`crate::page_alloc::CompactHook`] the task layer registers → `try_to_compact_pages`,
//!   with deferral (`defer_compaction`: after a failure the next `1 << shift` attempts are
//!   skipped, `shift` up to 6).
//! - kcompactd: woken by kswapd for the order it balanced (`wakeup_kcompactd`); kmem has no
//!   kernel threads, so it runs synchronously on the waking CPU (`kcompactd_do_work`), as
//!   kswapd does.
//!   Only costly orders (above `PAGE_ALLOC_COSTLY_ORDER`) compact, directly or through
//!   kcompactd: smaller ones are the slab allocators', made inside a CPU section, where
//!   migration must not run.
//! - Proactive compaction: when kcompactd's timer is ticked (`kcompactd_tick`, by the
//!   machine's owner: kmem has no timers) at least `HPAGE_FRAG_CHECK_INTERVAL_MSEC` after the
//!   last check, or `compaction_proactiveness` is raised, and the node's fragmentation score
//!   is above `fragmentation_score_wmark(high)`, the whole node is compacted until the score
//!   falls to the low mark; a run that did not lower the score defers the next ticks by
//!   `1 << COMPACT_MAX_DEFER_SHIFT` periods.
//!
//! # Migration
//! Compaction does not name page migration: the layer that owns address spaces hands it a
//! [`CompactMigrate`] (isolate an LRU page, migrate a batch to targets compaction provides,
//! put a page back).
//!
//! # Locking and invariants
//! Compaction holds no lock across its loop. The zone lock is taken only to take one free
//! block off its list (`page_alloc/compaction.rs`); LRU isolation takes `lru_lock` inside
//! [`CompactMigrate::isolate`]; migration takes what it needs (`tasklist_lock` is held by
//! the caller, see `task/compact.rs`). The migrate scanner reads `struct page` fields
//! without locks, as Linux does: a page seen as buddy, or on an LRU list, is only a
//! candidate; isolation re-checks under the owning lock. Every page compaction isolates is
//! either migrated, put back, or (free pages) freed before `compact_zone` returns: nothing
//! stays isolated between runs.

pub mod engine;
mod scan;

use crate::addr::Pfn;
use crate::errno::Errno;
use crate::mm::mm_types::PagePtr;
use crate::mmzone::{MigrateType, ZoneType};
pub use crate::page_alloc::compaction::{
    CompactGlobals, CompactStats, ContigPageInfo, COMPACTION_HPAGE_ORDER, COMPACT_MAX_DEFER_SHIFT,
    HPAGE_FRAG_CHECK_INTERVAL_MSEC,
};
pub use crate::page_alloc::{CompactPriority, CompactResult};

/// `COMPACT_CLUSTER_MAX` (`SWAP_CLUSTER_MAX`): pages isolated for one migration batch.
pub const COMPACT_CLUSTER_MAX: usize = 32;

/// Free blocks the free scanner may hold at once (split into targets on demand).
pub(crate) const FREE_BLOCKS_MAX: usize = 64;

/// `enum migrate_mode` as compaction uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MigrateMode {
    /// `MIGRATE_ASYNC`: never blocks; direct compaction's first attempt.
    Async,
    /// `MIGRATE_SYNC_LIGHT`: may block, but not on writeback (kcompactd, direct retries).
    SyncLight,
    /// `MIGRATE_SYNC`: may block (compact_memory).
    Sync,
}

/// Where migration gets its target pages and returns the unused ones
/// (`compaction_alloc`/`compaction_free`).
pub trait MigrateTarget {
    /// A free order-0 page (one reference) to copy `src` into, or `None` when compaction
    /// has no more free pages (migration then fails with `-ENOMEM`).
    fn alloc(&mut self, src: PagePtr) -> Option<PagePtr>;
    /// Gives back a target page that was not used.
    fn free(&mut self, page: PagePtr);
}

/// What compaction needs from page migration, implemented by the layer that owns address
/// spaces (the task layer, over mm/migrate.c's `migrate_pages`).
pub trait CompactMigrate {
    /// `isolate_lru_page` (or `isolate_movable_page`): takes `page` off its LRU list with a
    /// reference for migration. `unevictable`: pages on the unevictable list may be taken
    /// (`ISOLATE_UNEVICTABLE`, from `compact_unevictable_allowed`). Returns whether it was.
    fn isolate(&self, page: PagePtr, unevictable: bool) -> bool;
    /// `isolate_movable_ops_page`: takes a page that is on no LRU list but belongs to a
    /// kernel user with movable operations (balloon, zsmalloc: `page_has_movable_ops`) for
    /// migration. Returns whether it did; by default nothing is movable this way.
    fn isolate_movable(&self, page: PagePtr) -> bool {
        let _ = page;
        false
    }
    /// `putback_movable_pages` for one page isolated by [`Self::isolate`] or
    /// [`Self::isolate_movable`].
    fn putback(&self, page: PagePtr);
    /// `migrate_pages(from, compaction_alloc, compaction_free, mode, MR_COMPACTION)`: moves
    /// every isolated page of `from` to a page from `target`, leaving `None` in the slots of
    /// the pages it moved (their isolation reference is consumed: the old pages are freed).
    /// Pages it could not move stay in `from`, still isolated; the caller puts them back.
    ///
    /// # Errors
    /// `ENOMEM` when `target` ran out of pages (compaction then stops: its scanners met);
    /// other errors are counted as failures of the pages left.
    fn migrate(
        &self,
        from: &mut [Option<PagePtr>],
        target: &mut dyn MigrateTarget,
        mode: MigrateMode,
    ) -> Result<(), Errno>;
}

/// `struct compact_control`: one compaction run over one zone.
pub struct CompactControl {
    /// The zone.
    pub zone: ZoneType,
    /// The order to make available; `None` for a full compaction (`order == -1`,
    /// `is_via_compact_memory`).
    pub order: Option<u32>,
    /// The node whose zone `zone` is (`cc->zone`'s `zone_to_nid`; 0 unless set).
    pub nid: usize,
    /// The migratetype of the allocation (`gfp_migratetype`).
    pub migratetype: MigrateType,
    /// The highest zone the allocation may use.
    pub highest: ZoneType,
    /// Migration mode.
    pub mode: MigrateMode,
    /// `ignore_skip_hint`: scan pageblocks whose skip bit is set.
    pub ignore_skip_hint: bool,
    /// `ignore_block_suitable`: any pageblock may give free pages (not only movable).
    pub ignore_block_suitable: bool,
    /// `whole_zone`: start at the zone's ends, not at the cached positions.
    pub whole_zone: bool,
    /// `direct_compaction`.
    pub direct: bool,
    /// `proactive_compaction`: stop at the fragmentation score's low mark.
    pub proactive: bool,
    /// `migrate_pfn`: the migrate scanner's next PFN.
    pub migrate_pfn: u64,
    /// `free_pfn`: the free scanner's next pageblock (it scans downwards).
    pub free_pfn: u64,
    /// `total_migrate_scanned`.
    pub total_migrate_scanned: u64,
    /// `total_free_scanned`.
    pub total_free_scanned: u64,
    /// Pages migrated in this run (`nr_succeeded` summed).
    pub nr_migrated: u64,
    pub(crate) migratepages: [Option<PagePtr>; COMPACT_CLUSTER_MAX],
    pub(crate) nr_migratepages: usize,
    /// Free blocks isolated by the free scanner, `(pfn, order)`.
    pub(crate) freepages: [(Pfn, u32); FREE_BLOCKS_MAX],
    pub(crate) nr_freeblocks: usize,
    /// `nr_freepages`: pages in `freepages`.
    pub(crate) nr_freepages: usize,
    /// `contended`: the run was aborted.
    pub contended: bool,
    /// `finish_pageblock`: a migration failed in async mode; skip the rest of the block.
    pub(crate) finish_pageblock: bool,
}

impl CompactControl {
    /// A run over `zone` for `order` (`None`: full compaction) with `mode`.
    pub fn new(zone: ZoneType, order: Option<u32>, mode: MigrateMode) -> Self {
        Self {
            zone,
            order,
            nid: 0,
            migratetype: MigrateType::Unmovable,
            highest: zone,
            mode,
            ignore_skip_hint: false,
            ignore_block_suitable: false,
            whole_zone: false,
            direct: false,
            proactive: false,
            migrate_pfn: 0,
            free_pfn: 0,
            total_migrate_scanned: 0,
            total_free_scanned: 0,
            nr_migrated: 0,
            migratepages: [None; COMPACT_CLUSTER_MAX],
            nr_migratepages: 0,
            freepages: [(Pfn::new(0), 0); FREE_BLOCKS_MAX],
            nr_freeblocks: 0,
            nr_freepages: 0,
            contended: false,
            finish_pageblock: false,
        }
    }

    /// `compact_memory`'s control: whole zone, hints ignored, `MIGRATE_SYNC`.
    pub fn full(zone: ZoneType) -> Self {
        Self {
            ignore_skip_hint: true,
            whole_zone: true,
            ..Self::new(zone, None, MigrateMode::Sync)
        }
    }

    /// `compact_scanners_met`: the free scanner's pageblock is at or below the migrate
    /// scanner's.
    pub fn scanners_met(&self) -> bool {
        (self.free_pfn >> crate::mmzone::PAGEBLOCK_ORDER)
            <= (self.migrate_pfn >> crate::mmzone::PAGEBLOCK_ORDER)
    }
}
