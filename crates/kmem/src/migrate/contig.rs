//! Migration for contiguous ranges (mm/page_alloc.c `__alloc_contig_migrate_range`,
//! mm/compaction.c `isolate_migratepages_range`): CMA's migration hook.
//!
//! The range's pageblocks are isolated by the caller (`alloc_contig_range`), so pages freed
//! there stay free and no target is taken from it. The range is scanned in batches: up to
//! [`COMPACT_CLUSTER_MAX`] movable pages are isolated (free blocks skipped whole, unmovable
//! pages left for the caller's final check, which then fails with `-EBUSY`) and migrated
//! with `alloc_migration_target`, `MIGRATE_SYNC`, `MR_CONTIG_RANGE`; a batch is retried
//! (up to 5 tries, Linux's bound) while pages keep failing with `-EAGAIN`.

use crate::addr::Pfn;
use crate::errno::Errno;
use crate::page_alloc::MigrateHook;
use crate::platform::Platform;
use crate::task::TaskLayer;

use super::{MigrateList, MigrateMode, MigrateReason};

/// `COMPACT_CLUSTER_MAX` (`SWAP_CLUSTER_MAX`): pages isolated per batch.
pub const COMPACT_CLUSTER_MAX: usize = crate::vmscan::SWAP_CLUSTER_MAX;

/// Tries per batch in `__alloc_contig_migrate_range`.
const CONTIG_TRIES: usize = 5;

/// The hook CMA calls (`MigrateHook::func`).
///
/// # Safety
/// `ctx` is the machine's `TaskLayer<P>` (registered by `migrate_init`).
unsafe fn contig_hook<P: Platform>(ctx: *const (), start: Pfn, end: Pfn) -> Result<(), Errno> {
    // SAFETY: the function's contract.
    let tl = unsafe { &*ctx.cast::<TaskLayer<P>>() };
    tl.migrate_range(start, end)
}

impl<P: Platform> TaskLayer<P> {
    /// Registers migration as the page allocator's CMA migration hook.
    ///
    /// # Safety
    /// Once, at boot, after the state is placed (it never moves again).
    pub(crate) unsafe fn migrate_init(&self) {
        let hook = MigrateHook {
            ctx: (self as *const Self).cast(),
            func: contig_hook::<P>,
        };
        // SAFETY: the layer lives as long as the machine and is usable from any thread;
        // `migrate_range` takes tasklist_lock (or runs under this CPU's) and the
        // allocator's locks only.
        unsafe { self.register_migrate_hook(hook) };
    }

    /// Isolates up to `COMPACT_CLUSTER_MAX` movable pages of `[*pfn, end)` into `list`,
    /// advancing `*pfn` past what it scanned (`isolate_migratepages_range`).
    fn isolate_range_batch(&self, pfn: &mut u64, end: u64, list: &mut MigrateList) {
        while *pfn < end && list.len() < COMPACT_CLUSTER_MAX {
            let Some(page) = self.pfn_to_page(Pfn::new(*pfn)) else {
                *pfn += 1;
                continue;
            };
            if page.is_buddy() {
                // A free block: skip it whole (`buddy_order_unsafe`).
                *pfn += 1u64 << page.private().min(crate::addr::MAX_PAGE_ORDER as usize);
                continue;
            }
            // Unmovable or busy pages stay; the caller's final check sees them.
            let _ = self.isolate_migratepage(page, list);
            *pfn += 1;
        }
    }

    /// `__alloc_contig_migrate_range`: migrates every movable in-use page of
    /// `[start, end)` elsewhere.
    ///
    /// # Errors
    /// `ENOMEM` (no target page), `EBUSY` (pages still failed after the retries).
    pub fn migrate_range(&self, start: Pfn, end: Pfn) -> Result<(), Errno> {
        let mut pfn = start.as_u64();
        let end = end.as_u64();
        let mut list = MigrateList::new();
        let mut tries = 0;
        while pfn < end || !list.is_empty() {
            if list.is_empty() {
                tries = 0;
                self.isolate_range_batch(&mut pfn, end, &mut list);
                if list.is_empty() {
                    continue;
                }
            } else {
                tries += 1;
                if tries == CONTIG_TRIES {
                    self.putback_movable_pages(&mut list);
                    return Err(Errno::EBUSY);
                }
            }
            let mut get = |src| self.alloc_migration_target(src);
            let r = self.migrate_pages(
                &mut list,
                &mut get,
                None,
                MigrateMode::Sync,
                MigrateReason::ContigRange,
            );
            if let Err(e) = r {
                self.putback_movable_pages(&mut list);
                return Err(e);
            }
        }
        Ok(())
    }
}
