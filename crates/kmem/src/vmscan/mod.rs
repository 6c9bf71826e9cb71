//! Page reclaim (mm/vmscan.c, mm/swap.c's LRU half): the LRU lists, their aging, reclaim of
//! anonymous pages to swap, kswapd and direct reclaim, and `drop_caches`.
//!
//! # Lists and flags
//! Every user page (anonymous, shmem, page cache) is on one list of its node's [`Lruvec`]
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
//! freed (`pgsteal`). An anonymous page without `PG_swapbacked` was lazily freed by
//! `MADV_FREE` and sits on the file lists: it is not swapped; still clean, it is unmapped
//! and freed (`pglazyfreed`); written again, it gets `PG_swapbacked` back and is activated
//! onto the anon lists. Shmem pages (swap-backed, not anonymous) are kept: kmem does not
//! write shmem to swap.
//!
//! # kswapd and direct reclaim
//! The page allocator never names this module: the owner of the machine registers a
//! [`crate::page_alloc::ReclaimHook`] whose `wake_kswapd` runs when an allocation misses
//! the low watermark and whose `direct` runs in the slow path before failing. Each node has
//! its own lruvec (a page is on the lists of its node, `folio_lruvec`) and its own kswapd
//! (`kswapdN`): the slow path wakes the kswapd of every node of its zonelist
//! (`wake_all_kswapds`). kmem has no kernel threads, so kswapd runs synchronously when
//! woken, on the waking CPU, shrinking only its node's lists until one of the node's zones
//! up to the allocation's highest zone is above its high watermark (`pgdat_balanced`) or a
//! pass frees nothing; after `MAX_RECLAIM_RETRIES` such failures the node is left to direct
//! reclaim until reclaim makes progress there (`kswapd_failures`). Its work is counted as
//! kswapd's (`pgscan_kswapd`, `pgsteal_kswapd`). Direct reclaim shrinks the zonelist's
//! nodes in fallback order at each priority (`shrink_zones`).
//!
//! # Locking
//! `lru_lock` ([`VmscanState::lru`]) protects the lists and every page's `PG_lru`,
//! `PG_active` and `lru` link while it is on a list. Reclaim isolates pages (takes a
//! reference, takes them off the list) under it, and works on them with it dropped:
//! `swap_lock` and the rmap's locks are never taken under it, nor the allocator entered.

pub mod lru;
pub mod rmap_ops;
mod shrink;

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

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
    /// `try_to_unmap` of a lazily freed anonymous page (`try_to_unmap_one`'s `MADV_FREE`
    /// case): each PTE's dirty bit moves to the page; while the page is clean and only its
    /// mappers and the caller hold it, each PTE is cleared (the mapping's reference and
    /// `MM_ANONPAGES` dropped). A page written again is remapped and gets `PG_swapbacked`
    /// back. Returns whether no PTE maps the page afterwards.
    fn try_to_unmap_lazyfree(&self, page: PagePtr) -> bool {
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

/// kswapd's state of one node (`pgdat->kswapd_failures`, and what kmem counts of its runs).
#[derive(Default)]
pub struct KswapdNode {
    /// `kswapd_failures`: consecutive `balance_pgdat` runs that reclaimed nothing; at
    /// [`crate::page_alloc::MAX_RECLAIM_RETRIES`] the node is hopeless and its kswapd is not
    /// woken until reclaim (direct reclaim, typically) makes progress on it again.
    pub failures: AtomicU32,
    /// Runs of this node's kswapd (`kswapdN` woken and not balanced).
    pub runs: AtomicU32,
    /// Pages this node's kswapd freed.
    pub reclaimed: AtomicUsize,
}

/// The reclaim state of one node after node 0 on a NUMA machine (`pglist_data`'s
/// `__lruvec` and kswapd fields), in pages allocated at boot ([`VmscanState::init_nodes`]).
pub struct NodeReclaim<P: Platform> {
    lru: Lock<P::RawLock, Lruvec>,
    kswapd: KswapdNode,
}

/// A machine's reclaim state: each node's LRU lists under its `lru_lock` and its kswapd
/// (node 0's here, the others' in [`NodeReclaim`]s allocated at boot on a NUMA machine, so
/// that a one-node machine's state keeps its size), and the counters.
pub struct VmscanState<P: Platform> {
    pub(crate) lru: Lock<P::RawLock, Lruvec>,
    kswapd0: KswapdNode,
    /// Nodes `1..=nr_remote`, or null.
    remote: AtomicPtr<NodeReclaim<P>>,
    nr_remote: AtomicU32,
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
            kswapd0: KswapdNode::default(),
            remote: AtomicPtr::new(core::ptr::null_mut()),
            nr_remote: AtomicU32::new(0),
            stats: VmscanStats::default(),
        }
    }
    /// `lruvec_init` of node 0's lruvec.
    ///
    /// # Safety
    /// Once, before any page is added; `self` never moves afterwards.
    pub unsafe fn init(&self) {
        // Lock order: &lruvec->lru_lock, boot.
        // SAFETY: forwarded from the caller: the state stays where it is.
        unsafe { self.lru.lock().init() };
    }
    /// Attaches node 0's `lru_lock` to the machine's lock validator.
    ///
    /// # Safety
    /// Once, before the lock is first taken; `ld` outlives the lock.
    pub unsafe fn lockdep_attach(&self, ld: *const crate::locking::Lockdep) {
        // SAFETY: forwarded from the caller.
        unsafe { self.lru.attach(ld) };
    }
    /// The other nodes' state on a NUMA machine (`alloc_node_data`'s lruvec and kswapd
    /// part): pages from the allocator for nodes `1..nr_online_nodes`, each lruvec
    /// initialised in place and its lock attached to `ld`. Nothing on one node; on failure
    /// the other nodes' pages go on node 0's lists (`folio_lruvec` falls back).
    ///
    /// # Safety
    /// Once, at boot, after [`Self::init`], before any page is added to an LRU list and
    /// before other threads use the state; `ld` (if any) outlives the machine.
    pub unsafe fn init_nodes(&self, l: &VmLayer<P>, ld: Option<*const crate::locking::Lockdep>) {
        let n = l.nr_online_nodes().saturating_sub(1);
        if n == 0 {
            return;
        }
        let bytes = n * core::mem::size_of::<NodeReclaim<P>>();
        let order = crate::addr::Order::new(
            bytes
                .div_ceil(crate::addr::PAGE_SIZE)
                .next_power_of_two()
                .trailing_zeros(),
        );
        let Some(page) = l.alloc_pages(crate::gfp::GfpFlags::GFP_KERNEL, order) else {
            return;
        };
        let Some(va) = l.page_address(page) else {
            l.__free_pages(page, order);
            return;
        };
        let base = va.as_ptr::<NodeReclaim<P>>();
        for i in 0..n {
            // SAFETY: `base` is the start of `1 << order` pages of ours (just allocated,
            // page-aligned, which is enough alignment for `NodeReclaim`), large enough for
            // `n` entries; entry `i` is written once and initialised in place (its list
            // heads point at themselves), where it stays: the pages are never freed.
            unsafe {
                let e = base.add(i);
                e.write(NodeReclaim {
                    lru: Lock::new(&LRU_LOCK, Lruvec::new()),
                    kswapd: KswapdNode::default(),
                });
                (*e).lru.lock().init();
                if let Some(ld) = ld {
                    (*e).lru.attach(ld);
                }
            }
        }
        self.nr_remote.store(n as u32, Ordering::Relaxed);
        self.remote.store(base, Ordering::Release);
    }
    /// Node `nid`'s state after node 0, if it has its own.
    #[inline]
    fn remote(&self, nid: usize) -> Option<&NodeReclaim<P>> {
        let base = self.remote.load(Ordering::Acquire);
        if nid == 0 || base.is_null() || nid > self.nr_remote.load(Ordering::Relaxed) as usize {
            return None;
        }
        // SAFETY: `init_nodes` initialised `nr_remote` entries at `base` before publishing it
        // (Release/Acquire), and they live, unmoved, as long as the machine (`&self`).
        Some(unsafe { &*base.add(nid - 1) })
    }
    /// `mem_cgroup_lruvec(NULL, NODE_DATA(nid))`: node `nid`'s lruvec (node 0's for a node
    /// without one).
    #[inline]
    pub(crate) fn lruvec(&self, nid: usize) -> &Lock<P::RawLock, Lruvec> {
        self.remote(nid).map_or(&self.lru, |r| &r.lru)
    }
    /// Node `nid`'s kswapd (node 0's for a node without one).
    pub fn kswapd(&self, nid: usize) -> &KswapdNode {
        self.remote(nid).map_or(&self.kswapd0, |r| &r.kswapd)
    }
    /// `folio_lruvec`: the lruvec of the node `page` is on.
    #[inline]
    pub(crate) fn folio_lruvec(&self, page: PagePtr) -> &Lock<P::RawLock, Lruvec> {
        self.lruvec(page.nid())
    }
    /// The nodes with their own lruvec.
    fn nr_lruvecs(&self) -> usize {
        if self.remote.load(Ordering::Acquire).is_null() {
            1
        } else {
            1 + self.nr_remote.load(Ordering::Relaxed) as usize
        }
    }

    /// Pages on list `l` of every node (`global_node_page_state(NR_LRU_BASE + l)`).
    pub fn nr_pages(&self, l: LruList) -> usize {
        (0..self.nr_lruvecs())
            .map(|n| self.lruvec(n).lock().len(l))
            .sum()
    }
    /// Pages on list `l` of node `nid` (`node_page_state(pgdat, NR_LRU_BASE + l)`; 0 for a
    /// node without its own lists).
    pub fn node_nr_pages(&self, nid: usize, l: LruList) -> usize {
        if nid >= self.nr_lruvecs() {
            return 0;
        }
        self.lruvec(nid).lock().len(l)
    }
    /// Node `nid`'s swap-cache pages on its LRU lists, counted by walking them (a page
    /// isolated at the moment is not counted; `nodeN/meminfo` reads the node counter,
    /// `node_page_state(nid, SwapCached)`).
    pub fn node_swapcache_pages(&self, nid: usize) -> usize {
        if nid >= self.nr_lruvecs() {
            return 0;
        }
        let lru = self.lruvec(nid).lock();
        LruList::ALL
            .iter()
            .map(|&l| lru.count_flags(l, pg::SWAPCACHE))
            .sum()
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
        self.folio_lruvec(page).lock().add(page, &l.node_stats);
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
        let mut lru = self.folio_lruvec(page).lock();
        if page.test_flag(pg::LRU) {
            lru.del(page, &l.node_stats);
            page.set_flag_bits(pg::ACTIVE);
            page.clear_flag_bits(pg::REFERENCED);
            lru.add(page, &l.node_stats);
            drop(lru);
            l.count_vm_events(VmEvent::PgActivate, 1);
        }
    }

    /// `folio_mark_lazyfree` (mm/swap.c `lru_lazyfree`): an anonymous page that `MADV_FREE`
    /// made clean leaves the anon lists for the inactive file list, losing `PG_swapbacked`,
    /// `PG_active` and `PG_referenced`, so reclaim may drop it without swap (`pglazyfree`).
    /// Pages in the swap cache, unevictable pages and pages off the lists are left as they
    /// are.
    pub fn folio_mark_lazyfree(&self, l: &VmLayer<P>, page: PagePtr) {
        let f = page.flags();
        if f & pg::SWAPBACKED == 0 || f & (pg::SWAPCACHE | pg::UNEVICTABLE) != 0 {
            return;
        }
        // Lock order: &lruvec->lru_lock, under tasklist_lock (madvise).
        let mut lru = self.folio_lruvec(page).lock();
        if !page.test_flag(pg::LRU) {
            return;
        }
        lru.del(page, &l.node_stats);
        page.clear_flag_bits(pg::ACTIVE | pg::REFERENCED | pg::SWAPBACKED);
        lru.add(page, &l.node_stats);
        drop(lru);
        l.count_vm_events(VmEvent::PgLazyFree, 1);
    }

    /// `folio_deactivate` (mm/swap.c `lru_deactivate`, `MADV_COLD`): an active page moves to
    /// the head of its inactive list, losing `PG_active` and `PG_referenced`
    /// (`pgdeactivate`); other pages are left as they are.
    pub fn folio_deactivate(&self, l: &VmLayer<P>, page: PagePtr) {
        if page.test_flag(pg::UNEVICTABLE) || !page.test_flag(pg::ACTIVE) {
            return;
        }
        // Lock order: &lruvec->lru_lock, under tasklist_lock (madvise).
        let mut lru = self.folio_lruvec(page).lock();
        if !page.test_flag(pg::LRU) || !page.test_flag(pg::ACTIVE) {
            return;
        }
        lru.del(page, &l.node_stats);
        page.clear_flag_bits(pg::ACTIVE | pg::REFERENCED);
        lru.add(page, &l.node_stats);
        drop(lru);
        l.count_vm_events(VmEvent::PgDeactivate, 1);
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
            let mut lru = self.folio_lruvec(page).lock();
            if page.refcount() == 1 && page.test_flag(pg::LRU) {
                lru.del(page, &l.node_stats);
            }
        }
        put_page(l, page);
    }

    /// `folio_isolate_lru`: takes `page` off its LRU list with a reference of its own (for
    /// migration, or `MADV_PAGEOUT`, which gives it back with [`Self::reclaim_pages`]);
    /// `false` when it is on no list (already isolated, not a user page) or being freed.
    pub fn folio_isolate_lru(&self, l: &VmLayer<P>, page: PagePtr) -> bool {
        if !l.check_page_ptr(page, "folio_isolate_lru") {
            return false;
        }
        // Lock order: &lruvec->lru_lock, under tasklist_lock (migration, madvise) or none;
        // docs/LOCKING.md.
        let mut lru = self.folio_lruvec(page).lock();
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
            self.folio_lruvec(page).lock().add(page, &l.node_stats);
        }
        self.folio_put(l, page);
    }

    /// Whether every LRU list is empty (tests: all user pages are gone).
    pub fn lru_empty(&self) -> bool {
        (0..self.nr_lruvecs()).all(|n| self.lruvec(n).lock().is_empty())
    }
}
