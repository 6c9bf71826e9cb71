//! Page migration (mm/migrate.c, the migration half of mm/rmap.c): moving the contents of
//! in-use user pages to other page frames while the processes mapping them keep running,
//! for CMA (`alloc_contig_range`), compaction and memory offlining.
//!
//! # The API
//! 1. **Isolate** the pages: [`TaskLayer::isolate_migratepage`] takes a page off its LRU
//!    list with a reference of its own (`folio_isolate_lru`), or isolates a page of a
//!    registered movable-ops owner (`isolate_movable_ops_page`), and appends it to a
//!    [`MigrateList`]. Pages migration cannot move (free pages, slab, page tables, kernel
//!    allocations, pages already isolated) give `-EBUSY`.
//! 2. **Migrate**: [`TaskLayer::migrate_pages`]`(from, get_new, put_new, mode, reason)`.
//!    For each page, `get_new(src)` gives a target page (`alloc_migration_target` by
//!    default); each PTE mapping the page becomes a **migration entry** (a swap-type PTE,
//!    include/linux/swapops.h: type `SWP_MIGRATION_READ`, `_READ_EXCLUSIVE` or `_WRITE`,
//!    offset = PFN with the PTE's young and dirty bits above it; [`MigrationEntry`]); when
//!    the page then holds only the references expected of it (its cache's and the
//!    isolation's) its data and flags (dirty, referenced, active, unevictable, workingset,
//!    swapbacked, uptodate; swapcache with the swap entry in `private`; `mapping`, `index`)
//!    move to the new page, which replaces it in the swap cache or the shmem page cache;
//!    the migration entries become PTEs of the new page (`remove_migration_ptes`), the new
//!    page goes on the LRU list its flags name, and the old one is freed. Pages that
//!    migrated leave `from`; the others stay on it.
//! 3. **Put back** what stayed: [`TaskLayer::putback_movable_pages`].
//!
//! Page kinds handled: private anonymous pages, anonymous pages shared after fork (every
//! mapper is found through the anon_vma chain), shmem / memfd / SysV shm pages (mapped or
//! not; found through [`crate::rmap`]'s `rmap_walk_file`), swap-cache pages (mapped or
//! not), and pages of movable-ops owners (kernel users such as balloon drivers and
//! zsmalloc, [`MovableOps`]).
//!
//! # Results and failures (as Linux's `migrate_pages`)
//! `Ok(n)`: `n` pages could not be migrated (0: all moved). A page with references nobody
//! accounts for (a GUP pin: `pin_user_pages` adds `GUP_PIN_COUNTING_BIAS`, a racing
//! lookup) fails with `-EAGAIN` and is retried on the next pass, up to
//! [`NR_MAX_MIGRATE_PAGES_RETRY`] passes; then it counts as failed and stays on `from`.
//! `Err(ENOMEM)`: a target page could not be allocated; the pages not yet migrated stay on
//! `from`. Counters: `pgmigrate_success` and `pgmigrate_fail` in /proc/vmstat.
//!
//! `mode` ([`MigrateMode`]) and `reason` ([`MigrateReason`]) are Linux's; kmem never blocks
//! on a page (no page locks or writeback in flight), so the three modes behave alike.
//!
//! # Locking
//! `migrate_pages` runs under `tasklist_lock` (which stands for the mmap, page-table,
//! anon_vma and i_mmap locks): it takes it, or, when this CPU already holds it (a
//! migration entered from an allocation made under it: compaction in a fault's slow path),
//! runs under the holder's. So no other path ever sees a migration entry: a PTE is a
//! migration entry only inside one `migrate_pages` call. Under it: `&lruvec->lru_lock`
//! (isolation, putback, the new page's LRU add), `shmem_lock` and `swap_lock` (the cache
//! replacement), and the allocator's locks (`get_new`, which may enter reclaim; reclaim
//! then finds this CPU holding `tasklist_lock` and walks the rmap at once). CMA calls it
//! under `cma_mutex` (`cma_mutex → tasklist_lock`, docs/LOCKING.md); nothing takes
//! `cma_mutex` under `tasklist_lock`.
//!
//! # Invariants
//! - A page on a [`MigrateList`] is isolated: off the LRU (`PG_lru` clear) with one
//!   reference held by the list (see `list.rs`).
//! - While a page is being migrated, `refcount == 1 (isolation) + cache refs + mapcount`;
//!   after `try_to_migrate`, `mapcount == 0` and each former mapping is a migration entry
//!   naming its PFN; after the move, no migration entry names it.

mod contig;
mod core;
mod list;
mod movable;
mod pin;

pub use contig::COMPACT_CLUSTER_MAX;
pub use list::MigrateList;
pub use movable::{MovableOps, MovableOpsType};
pub use pin::{FOLL_LONGTERM, FOLL_WRITE, GUP_PIN_COUNTING_BIAS};

pub use crate::swap::entry::MigrationEntry;

use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::VmEvent;
use crate::platform::Platform;
use crate::task::TaskLayer;

/// `NR_MAX_MIGRATE_PAGES_RETRY` (mm/migrate.c): passes over the pages that failed with
/// `-EAGAIN`.
pub const NR_MAX_MIGRATE_PAGES_RETRY: usize = 10;

/// `enum migrate_mode` (include/linux/migrate_mode.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateMode {
    /// `MIGRATE_ASYNC`: never block.
    Async,
    /// `MIGRATE_SYNC_LIGHT`: may block, but not on writeback.
    SyncLight,
    /// `MIGRATE_SYNC`: may block.
    Sync,
}

/// `enum migrate_reason` (include/linux/migrate_mode.h), in Linux's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateReason {
    /// `MR_COMPACTION`
    Compaction,
    /// `MR_MEMORY_FAILURE`
    MemoryFailure,
    /// `MR_MEMORY_HOTPLUG`
    MemoryHotplug,
    /// `MR_SYSCALL` (move_pages, migrate_pages)
    Syscall,
    /// `MR_MEMPOLICY_MBIND`
    MempolicyMbind,
    /// `MR_NUMA_MISPLACED`
    NumaMisplaced,
    /// `MR_CONTIG_RANGE` (alloc_contig_range: CMA)
    ContigRange,
    /// `MR_LONGTERM_PIN`
    LongtermPin,
    /// `MR_DEMOTION`
    Demotion,
    /// `MR_DAMON`
    Damon,
}

/// Proof that this CPU holds `tasklist_lock` (made only by `with_tasklist`).
pub(crate) struct TasklistHeld(());

/// `new_folio_t`: gives the target page for a source page (`None`: no memory, `-ENOMEM`).
pub type NewPage<'a> = &'a mut dyn FnMut(PagePtr) -> Option<PagePtr>;
/// `free_folio_t`: takes back a target page that was not used.
pub type PutNewPage<'a> = &'a mut dyn FnMut(PagePtr);

impl<P: Platform> TaskLayer<P> {
    /// `isolate_lru_page` / `isolate_movable_ops_page` for migration: takes `page` (a PFN
    /// scanner's find, or a page a caller holds) off its LRU list, or out of its movable-ops
    /// owner, with a reference for `list`, and appends it.
    ///
    /// # Errors
    /// `EBUSY`: the page is free, unmovable (slab, page table, kernel allocation, reserved),
    /// already isolated, or its owner refused.
    pub fn isolate_migratepage(&self, page: PagePtr, list: &mut MigrateList) -> Result<(), Errno> {
        let l = &self.mem.km.vm;
        if !l.check_page_ptr(page, "isolate_migratepage") {
            return Err(Errno::EINVAL);
        }
        if page.refcount() <= 0 || page.page_type().is_some() || page.is_reserved() {
            return Err(Errno::EBUSY);
        }
        if self.isolate_movable_ops_page(page) {
            list.push(page);
            return Ok(());
        }
        if !self.mem.mem.lru.folio_isolate_lru(l, page) {
            return Err(Errno::EBUSY);
        }
        list.push(page);
        Ok(())
    }

    /// `putback_movable_pages`: every page left on `list` goes back where it came from (its
    /// LRU list, or its movable-ops owner) and the isolation's reference is dropped.
    pub fn putback_movable_pages(&self, list: &mut MigrateList) {
        let l = &self.mem.km.vm;
        while let Some(page) = list.pop() {
            if self.putback_movable_ops_page(page) {
                continue;
            }
            self.mem.mem.lru.folio_putback_lru(l, page);
        }
    }

    /// `alloc_migration_target`: the default target, a movable user page of any zone
    /// (`GFP_HIGHUSER_MOVABLE | __GFP_RETRY_MAYFAIL | __GFP_NOWARN`; isolated pageblocks,
    /// e.g. a CMA range being taken, are never handed out).
    pub fn alloc_migration_target(&self, _src: PagePtr) -> Option<PagePtr> {
        self.alloc_page(
            GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_RETRY_MAYFAIL | GfpFlags::__GFP_NOWARN,
        )
    }

    /// `migrate_pages`: migrates the isolated pages on `from` (see the module
    /// documentation). `get_new(src)` gives each target; `put_new` takes back unused targets
    /// (`None`: they are freed). Returns how many pages could not be migrated; those stay
    /// on `from` (give them back with [`Self::putback_movable_pages`]).
    ///
    /// # Errors
    /// `ENOMEM` when `get_new` found no page: the pages not migrated stay on `from`.
    pub fn migrate_pages(
        &self,
        from: &mut MigrateList,
        get_new: NewPage<'_>,
        put_new: Option<PutNewPage<'_>>,
        mode: MigrateMode,
        reason: MigrateReason,
    ) -> Result<usize, Errno> {
        self.with_tasklist(|t| self.migrate_pages_locked(t, from, get_new, put_new, mode, reason))
    }

    /// `move_pages(2)` on a machine with one node, as kmem's shell offers it: every page
    /// task `pid` maps in `[start, start + nr pages)` (the zero page aside) moves to a new
    /// frame (`MR_SYSCALL`, `MIGRATE_SYNC`). Returns how many present pages did not move
    /// (busy at isolation, or failed).
    ///
    /// # Errors
    /// `ESRCH`, `EINVAL` (the range wraps past the top of the address space), `ENOMEM` (no
    /// target page; the pages not moved are put back).
    pub fn move_pages(&self, pid: i32, start: u64, nr: u64) -> Result<usize, Errno> {
        const PAGE: u64 = crate::vma::PAGE;
        let first = start & !(PAGE - 1);
        let end = nr
            .checked_mul(PAGE)
            .and_then(|len| first.checked_add(len))
            .ok_or(Errno::EINVAL)?;
        let mut list = MigrateList::new();
        let mut busy = 0;
        // Only the parts of the range inside a VMA can hold pages: walk those, VMA by VMA,
        // not every address of the range (`nr` may be far larger than what is mapped).
        let mut addr = first;
        while addr < end {
            let next = self.with_task(pid, |t| {
                t.mm.find_vma(addr)
                    .map(|v| (v.vm_start.max(addr), v.vm_end.min(end)))
            })?;
            let Some((lo, hi)) = next.filter(|&(lo, _)| lo < end) else {
                break;
            };
            for a in (lo..hi).step_by(PAGE as usize) {
                let Some(page) = self.follow_page(pid, a)? else {
                    continue;
                };
                // A page mapped twice in the range is isolated once.
                if list.contains(page) {
                    continue;
                }
                if self.isolate_migratepage(page, &mut list).is_err() {
                    busy += 1;
                }
            }
            addr = hi;
        }
        let mut get = |src| self.alloc_migration_target(src);
        let r = self.migrate_pages(
            &mut list,
            &mut get,
            None,
            MigrateMode::Sync,
            MigrateReason::Syscall,
        );
        self.putback_movable_pages(&mut list);
        r.map(|failed| failed + busy)
    }

    /// Runs `f` with `tasklist_lock` held: taken here, or the caller's when this CPU holds
    /// it already (an allocation made under it). `f` gets the proof.
    pub(crate) fn with_tasklist<R>(&self, f: impl FnOnce(&TasklistHeld) -> R) -> R {
        let me = self.platform().raw_cpu_id() + 1;
        if self
            .tasklist_owner
            .load(::core::sync::atomic::Ordering::Acquire)
            == me
        {
            // This CPU holds tasklist_lock for the whole call (we are inside an allocation
            // made under it).
            return f(&TasklistHeld(()));
        }
        let g = self.tasklist();
        let r = f(&TasklistHeld(()));
        drop(g);
        r
    }

    fn migrate_pages_locked(
        &self,
        t: &TasklistHeld,
        from: &mut MigrateList,
        get_new: NewPage<'_>,
        mut put_new: Option<PutNewPage<'_>>,
        mode: MigrateMode,
        reason: MigrateReason,
    ) -> Result<usize, Errno> {
        let _ = (mode, reason);
        let mut failed = MigrateList::new();
        let mut succeeded = 0u64;
        let mut res = Ok(());
        for _pass in 0..NR_MAX_MIGRATE_PAGES_RETRY {
            let mut retry = MigrateList::new();
            while let Some(src) = from.pop() {
                match self.migrate_one_page(t, src, get_new, &mut put_new) {
                    Ok(()) => succeeded += 1,
                    Err(Errno::EAGAIN) => retry.push(src),
                    Err(Errno::ENOMEM) => {
                        // The page and those waiting for a retry failed; the rest of
                        // `from` was not tried (mm/migrate.c counts them as Linux does:
                        // `nr_failed_pages += nr_pages + nr_retry_pages`).
                        failed.push(src);
                        failed.splice(&mut retry);
                        res = Err(Errno::ENOMEM);
                        break;
                    }
                    Err(_) => failed.push(src),
                }
            }
            if res.is_err() || retry.is_empty() {
                break;
            }
            from.splice(&mut retry);
        }
        // Pages still on `from` after the last pass failed for good (-EAGAIN), unless the
        // run stopped on -ENOMEM (then they were not tried).
        let nr_failed = failed.len() + if res.is_ok() { from.len() } else { 0 };
        from.splice(&mut failed);
        self.count_vm_events(VmEvent::PgMigrateSuccess, succeeded);
        self.count_vm_events(VmEvent::PgMigrateFail, nr_failed as u64);
        res.map(|()| from.len())
    }

    /// One page: a target from `get_new`, then the move; the target goes back through
    /// `put_new` when unused.
    fn migrate_one_page(
        &self,
        t: &TasklistHeld,
        src: PagePtr,
        get_new: &mut dyn FnMut(PagePtr) -> Option<PagePtr>,
        put_new: &mut Option<PutNewPage<'_>>,
    ) -> Result<(), Errno> {
        // The page was freed under us (only the isolation holds it): done.
        if src.refcount() == 1
            && src.mapcount() <= 0
            && !src.test_flag(pg::SWAPCACHE)
            && self.movable_ops_of(src).is_none()
            && self.page_shmem_ino(src).is_none()
        {
            src.clear_flag_bits(pg::ACTIVE | pg::UNEVICTABLE);
            src.set_mapping(0);
            src.set_index(0);
            self.mem.mem.lru.folio_put(&self.mem.km.vm, src);
            return Ok(());
        }
        let Some(dst) = get_new(src) else {
            return Err(Errno::ENOMEM);
        };
        let r = if let Some(ops) = self.movable_ops_of(src) {
            self.migrate_movable_ops_page(ops, src, dst)
        } else {
            match self.page_owner(src) {
                // SAFETY: tasklist_lock is held (we were given the proof); `src` is
                // isolated; `dst` is a fresh page.
                Some(owner) => unsafe { self.migrate_one(t, src, dst, owner) },
                None => Err(Errno::EBUSY),
            }
        };
        if r.is_err() {
            match put_new.as_mut() {
                Some(f) => f(dst),
                None => self.put_page(dst),
            }
        }
        r
    }
}
