//! Page reclaim (mm/vmscan.c, mm/swap.c's LRU half): the LRU lists, their aging, reclaim of
//! anonymous pages to swap, kswapd and direct reclaim, and `drop_caches`.
//!
//! # Lists and flags
//! Every user page (anonymous, shmem, page cache) is on one list of the node's [`Lruvec`]
//! while it is allocated and not isolated: `PG_lru` says it is, `PG_swapbacked` picks the
//! anon or file pair, `PG_active` the active or inactive list, `PG_unevictable` the
//! unevictable list. New pages enter the inactive list (`folio_add_lru`); a page found
//! referenced on the inactive list is activated (`pgactivate`); the active list is aged
//! into the inactive one when the inactive list is too small (`inactive_is_low`, with
//! Linux's `int_sqrt(10 * GB)` ratio; `pgdeactivate`).
//!
//! # Reclaim
//! `shrink_node` scans every evictable list, from priority `DEF_PRIORITY` (12: scan
//! `size >> 12` pages) down to 0, until `nr_to_reclaim` pages are freed. Anonymous lists are
//! scanned only while swap has free slots (`get_scan_count`'s `SCAN_FILE` otherwise). For an
//! inactive anonymous page `shrink_folio_list` does what Linux does: referenced → activate;
//! not in the swap cache → `add_to_swap`; mapped → `try_to_unmap` (through
//! [`ReclaimOps`], the rmap of the layer that owns address spaces); dirty → `pageout`
//! (`swap_writepage`); then the page leaves the swap cache (`__remove_mapping`) and is
//! freed (`pgsteal`). Shmem pages (swap-backed, not anonymous) are kept: kmem does not
//! write shmem to swap.
//!
//! # kswapd and direct reclaim
//! The page allocator never names this module: the owner of the machine registers a
//! [`crate::page_alloc::ReclaimHook`] whose `wake_kswapd` runs when an allocation misses
//! the low watermark and whose `direct` runs in the slow path before failing. kmem has no
//! kernel threads, so kswapd runs synchronously when woken, on the waking CPU, until every
//! zone is above its high watermark or nothing more can be reclaimed (`balance_pgdat`); its
//! work is counted as kswapd's (`pgscan_kswapd`, `pgsteal_kswapd`).
//!
//! # Locking
//! `lru_lock` ([`VmscanState::lru`]) protects the lists and every page's `PG_lru`,
//! `PG_active` and `lru` link while it is on a list. Reclaim isolates pages (takes a
//! reference, takes them off the list) under it, and works on them with it dropped:
//! `swap_lock` and the rmap's locks are never taken under it, nor the allocator entered.

pub mod lru;
pub mod rmap_ops;
mod shrink;

use core::sync::atomic::AtomicUsize;

use crate::locking::{Lock, LRU_LOCK};
use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::VmEvent;
use crate::platform::Platform;
use crate::swap::put_page;
use crate::vmalloc::VmLayer;

pub use lru::{LruList, Lruvec, NR_LRU_LISTS};
pub use rmap_ops::RmapReclaim;
pub use shrink::{ScanControl, DEF_PRIORITY, SWAP_CLUSTER_MAX};

/// What reclaim needs from the layer that owns address spaces (rmap, mm/rmap.c).
pub trait ReclaimOps {
    /// `folio_referenced`: how many PTEs mapping `page` were young, clearing their young
    /// bits.
    fn referenced(&self, page: PagePtr) -> usize;
    /// `folio_mapped`: whether any PTE maps `page`.
    fn mapped(&self, page: PagePtr) -> bool;
    /// `try_to_unmap`: replaces every PTE mapping `page` — an anonymous page in the swap
    /// cache, its entry in `private` — by a swap PTE (`swap_duplicate` for each), moving a
    /// dirty PTE's dirty bit to the page, and drops the mappings' page references. Returns
    /// whether no PTE maps the page afterwards.
    fn try_to_unmap(&self, page: PagePtr) -> bool;
    /// Drops `page` (clean, unmapped, not swap-backed) from its page cache, dropping the
    /// cache's reference (`__remove_mapping` for file pages); `false` to keep it.
    fn remove_from_page_cache(&self, page: PagePtr) -> bool {
        let _ = page;
        false
    }
}

/// Reclaim counters of /proc/vmstat that are not the machine's [`VmEvent`]s (`pgscan_*`,
/// `pgsteal_*`, `pgactivate`, `pgdeactivate`, `pgrefill` are).
#[derive(Default)]
pub struct VmscanStats {
    /// `allocstall_normal` (all zones counted together)
    pub allocstall: AtomicUsize,
    /// `pageoutrun`: kswapd runs.
    pub pageoutrun: AtomicUsize,
    /// `drop_pagecache`
    pub drop_pagecache: AtomicUsize,
}

/// A machine's reclaim state: the node's LRU lists under `lru_lock`, and the counters.
pub struct VmscanState<P: Platform> {
    pub(crate) lru: Lock<P::RawLock, Lruvec>,
    /// The counters.
    pub stats: VmscanStats,
}

impl<P: Platform> Default for VmscanState<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> VmscanState<P> {
    /// Empty lists; call [`Self::init`] once the state is at its final address.
    pub fn new() -> Self {
        Self {
            lru: Lock::new(&LRU_LOCK, Lruvec::new()),
            stats: VmscanStats::default(),
        }
    }
    /// `lruvec_init`.
    ///
    /// # Safety
    /// Once, before any page is added; `self` never moves afterwards.
    pub unsafe fn init(&self) {
        // Lock order: &lruvec->lru_lock, boot.
        // SAFETY: forwarded from the caller: the state stays where it is.
        unsafe { self.lru.lock().init() };
    }
    /// Attaches `lru_lock` to the machine's lock validator.
    ///
    /// # Safety
    /// Once, before the lock is first taken; `ld` outlives the lock.
    pub unsafe fn lockdep_attach(&self, ld: *const crate::locking::Lockdep) {
        // SAFETY: forwarded from the caller.
        unsafe { self.lru.attach(ld) };
    }

    /// Pages on list `l` (`lruvec_page_state(NR_LRU_BASE + l)`).
    pub fn nr_pages(&self, l: LruList) -> usize {
        self.lru.lock().len(l)
    }

    /// `folio_add_lru`: a new user page (held by the caller) enters the inactive list of its
    /// kind. `swapbacked` marks an anonymous or shmem page.
    pub fn folio_add_lru(&self, l: &VmLayer<P>, page: PagePtr, swapbacked: bool) {
        if !l.check_page_ptr(page, "folio_add_lru") || page.test_flag(pg::LRU) {
            return;
        }
        if swapbacked {
            page.set_flag_bits(pg::SWAPBACKED);
        }
        // Lock order: &lruvec->lru_lock, under no other lock.
        self.lru.lock().add(page, &l.node_stats);
    }

    /// `mark_page_accessed` (`folio_mark_accessed`): a referenced inactive page is activated;
    /// an unreferenced one gets `PG_referenced`.
    pub fn mark_page_accessed(&self, l: &VmLayer<P>, page: PagePtr) {
        if !page.test_flag(pg::REFERENCED) {
            page.set_flag_bits(pg::REFERENCED);
            return;
        }
        if page.test_flag(pg::ACTIVE) || page.test_flag(pg::UNEVICTABLE) {
            return;
        }
        let mut lru = self.lru.lock();
        if page.test_flag(pg::LRU) {
            lru.del(page, &l.node_stats);
            page.set_flag_bits(pg::ACTIVE);
            page.clear_flag_bits(pg::REFERENCED);
            lru.add(page, &l.node_stats);
            drop(lru);
            l.count_vm_events(VmEvent::PgActivate, 1);
        }
    }

    /// `folio_put`: drops a reference to a user page; the last one takes it off its LRU list
    /// (`__page_cache_release`) and frees it.
    #[track_caller]
    pub fn folio_put(&self, l: &VmLayer<P>, page: PagePtr) {
        if !l.check_page_ptr(page, "folio_put") {
            return;
        }
        if page.refcount() == 1 && page.test_flag(pg::LRU) {
            // Only we hold it; isolation takes the LRU lock and a reference first, so under
            // the lock nobody else can reach it.
            let mut lru = self.lru.lock();
            if page.refcount() == 1 && page.test_flag(pg::LRU) {
                lru.del(page, &l.node_stats);
            }
        }
        put_page(l, page);
    }

    /// `folio_isolate_lru`: takes `page` off its LRU list with a reference of its own (for
    /// migration); `false` when it is on no list (already isolated, not a user page) or
    /// being freed.
    pub fn folio_isolate_lru(&self, l: &VmLayer<P>, page: PagePtr) -> bool {
        if !l.check_page_ptr(page, "folio_isolate_lru") {
            return false;
        }
        // Lock order: &lruvec->lru_lock, under tasklist_lock (migration); docs/LOCKING.md.
        let mut lru = self.lru.lock();
        if !page.test_flag(pg::LRU) || !page.try_get() {
            return false;
        }
        lru.del(page, &l.node_stats);
        true
    }

    /// `folio_putback_lru`: an isolated page goes back on the list its flags name and the
    /// isolation's reference is dropped (freeing the page if it was the last).
    pub fn folio_putback_lru(&self, l: &VmLayer<P>, page: PagePtr) {
        if page.refcount() > 1 && !page.test_flag(pg::LRU) {
            self.lru.lock().add(page, &l.node_stats);
        }
        self.folio_put(l, page);
    }

    /// Whether every LRU list is empty (tests: all user pages are gone).
    pub fn lru_empty(&self) -> bool {
        self.lru.lock().is_empty()
    }
}
