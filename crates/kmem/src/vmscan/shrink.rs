//! Reclaim's policy (mm/vmscan.c): isolating pages, `shrink_folio_list`, active-list aging,
//! `shrink_node`, direct reclaim, kswapd's `balance_pgdat` and `drop_caches`.

use core::sync::atomic::Ordering;

use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::VmEvent;
use crate::mmzone::WMARK_HIGH;
use crate::platform::Platform;
use crate::swap::SwapState;
use crate::vmalloc::VmLayer;

use super::lru::LruList;
use super::{ReclaimOps, VmscanState};

/// `DEF_PRIORITY`: the first pass scans `1/4096` of each list.
pub const DEF_PRIORITY: u32 = 12;
/// `SWAP_CLUSTER_MAX`: pages isolated at once, and direct reclaim's goal.
pub const SWAP_CLUSTER_MAX: usize = 32;

/// `struct scan_control`: one reclaim run's goal and progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanControl {
    /// Pages to free before stopping.
    pub nr_to_reclaim: usize,
    /// kswapd (true) or direct reclaim: which counters the run feeds.
    pub kswapd: bool,
    /// Pages scanned on inactive lists.
    pub nr_scanned: usize,
    /// Pages freed.
    pub nr_reclaimed: usize,
}

/// What `shrink_folio_list` decided for one page.
enum Verdict {
    /// Back to the inactive list.
    Keep,
    /// To the active list (`pgactivate`).
    Activate,
    /// Freed.
    Freed,
}

/// `inactive_is_low`: whether the inactive list is too small for its active list
/// (mm/vmscan.c: `inactive_ratio = int_sqrt(10 * gb)`, 1 below 1 GiB).
pub fn inactive_is_low(inactive: usize, active: usize) -> bool {
    let gb = (inactive + active) >> (30 - crate::addr::PAGE_SHIFT);
    let ratio = if gb > 0 { isqrt(10 * gb) } else { 1 };
    inactive * ratio < active
}

fn isqrt(n: usize) -> usize {
    let mut x = 0usize;
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

impl<P: Platform> VmscanState<P> {
    /// `isolate_lru_folios`: up to `nr` pages from the tail of `l`, each with a reference
    /// taken and `PG_lru` cleared, into `out`; returns how many were scanned.
    fn isolate(
        &self,
        vl: &VmLayer<P>,
        l: LruList,
        nr: usize,
        out: &mut [Option<PagePtr>],
    ) -> usize {
        let mut lru = self.lru.lock();
        let mut n = 0;
        let mut scanned = 0;
        while n < nr.min(out.len()) {
            let Some(page) = lru.tail(l) else { break };
            scanned += 1;
            lru.del(page, &vl.node_stats);
            if page.try_get() {
                out[n] = Some(page);
                n += 1;
            } else {
                // Being freed by its last holder: leave it off the list, it is going.
            }
        }
        scanned
    }

    /// `move_folios_to_lru` for one page: back on the list its flags name, then the
    /// isolation reference is dropped (freeing the page if everyone else let go meanwhile).
    fn putback(&self, l: &VmLayer<P>, page: PagePtr) {
        if page.refcount() > 1 {
            self.lru.lock().add(page, &l.node_stats);
        }
        self.folio_put(l, page);
    }

    /// `shrink_folio_list` for one isolated anonymous page.
    fn shrink_one(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        page: PagePtr,
    ) -> Verdict {
        // A shmem page (swap-backed, not anonymous): kmem does not write shmem to swap
        // (Linux's shmem_writeout), so reclaim keeps it.
        if page.test_flag(pg::SWAPBACKED)
            && page.mapping() != 0
            && page.mapping() & crate::rmap::PAGE_MAPPING_ANON == 0
        {
            return Verdict::Keep;
        }
        // folio_check_references: a mapped, recently used anonymous page is activated;
        // PG_referenced alone (no young PTE) does not save it.
        let referenced_ptes = ops.referenced(page);
        let referenced = page.test_clear_flag(pg::REFERENCED);
        if referenced_ptes > 0 {
            if page.test_flag(pg::SWAPBACKED) || referenced || referenced_ptes > 1 {
                return Verdict::Activate;
            }
            page.set_flag_bits(pg::REFERENCED);
            return Verdict::Keep;
        }
        if !page.test_flag(pg::SWAPBACKED) {
            // A page-cache page: clean and unmapped ones leave their cache.
            if !ops.mapped(page) && !page.test_flag(pg::DIRTY) && ops.remove_from_page_cache(page) {
                self.release(l, page);
                return Verdict::Freed;
            }
            return Verdict::Keep;
        }
        if !page.test_flag(pg::SWAPCACHE) && swap.add_to_swap(l, page).is_none() {
            // Swap is full: keep the page active (`activate_locked`).
            return Verdict::Activate;
        }
        if ops.mapped(page) && !ops.try_to_unmap(page) {
            return Verdict::Keep;
        }
        if page.test_flag(pg::DIRTY) && swap.swap_writepage(l, page).is_err() {
            return Verdict::Activate;
        }
        // __remove_mapping: only the swap cache and our isolation hold the page.
        if page.refcount() != 2 {
            return Verdict::Keep;
        }
        swap.delete_from_swap_cache(l, page);
        self.release(l, page);
        Verdict::Freed
    }

    /// Frees an isolated page whose only reference is the isolation's.
    fn release(&self, l: &VmLayer<P>, page: PagePtr) {
        page.clear_flag_bits(pg::ACTIVE);
        crate::swap::put_page(l, page);
    }

    /// `shrink_inactive_list`: isolates up to `nr` pages of inactive list `lst` and reclaims
    /// what it can; returns pages freed.
    fn shrink_inactive_list(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        lst: LruList,
        nr: usize,
        sc: &mut ScanControl,
    ) -> usize {
        let mut batch = [None; SWAP_CLUSTER_MAX];
        let scanned = self.isolate(l, lst, nr.min(SWAP_CLUSTER_MAX), &mut batch);
        sc.nr_scanned += scanned;
        let (scan, steal) = if sc.kswapd {
            (VmEvent::PgScanKswapd, VmEvent::PgStealKswapd)
        } else {
            (VmEvent::PgScanDirect, VmEvent::PgStealDirect)
        };
        l.count_vm_events(scan, scanned as u64);
        let mut freed = 0;
        for page in batch.iter().flatten().copied() {
            match self.shrink_one(l, swap, ops, page) {
                Verdict::Freed => freed += 1,
                Verdict::Keep => self.putback(l, page),
                Verdict::Activate => {
                    page.set_flag_bits(pg::ACTIVE);
                    l.count_vm_events(VmEvent::PgActivate, 1);
                    self.putback(l, page);
                }
            }
        }
        l.count_vm_events(steal, freed as u64);
        sc.nr_reclaimed += freed;
        freed
    }

    /// `shrink_active_list`: moves up to `nr` pages from the tail of active list `lst` to
    /// the inactive list, clearing their young bits on the way (anonymous pages are
    /// deactivated even when referenced, as Linux does).
    fn shrink_active_list(&self, l: &VmLayer<P>, ops: &dyn ReclaimOps, lst: LruList, nr: usize) {
        let mut batch = [None; SWAP_CLUSTER_MAX];
        let scanned = self.isolate(l, lst, nr.min(SWAP_CLUSTER_MAX), &mut batch);
        l.count_vm_events(VmEvent::PgRefill, scanned as u64);
        for page in batch.iter().flatten().copied() {
            let _ = ops.referenced(page);
            page.clear_flag_bits(pg::ACTIVE | pg::REFERENCED);
            l.count_vm_events(VmEvent::PgDeactivate, 1);
            self.putback(l, page);
        }
    }

    /// `shrink_lruvec` at one priority: each evictable list gets `size >> priority` pages
    /// scanned (all of it at priority 0); anonymous lists only while swap has room.
    fn shrink_lruvec(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        priority: u32,
        sc: &mut ScanControl,
    ) {
        let may_swap = swap.nr_swap_pages() > 0;
        for (inactive, active) in [
            (LruList::InactiveAnon, LruList::ActiveAnon),
            (LruList::InactiveFile, LruList::ActiveFile),
        ] {
            if !inactive.is_file() && !may_swap {
                continue;
            }
            let (ni, na) = {
                let lru = self.lru.lock();
                (lru.len(inactive), lru.len(active))
            };
            if inactive_is_low(ni, na) || ni == 0 {
                let scan = (na >> priority).max(if priority == 0 { na } else { 0 });
                let mut left = scan.max(1).min(na);
                while left > 0 {
                    let n = left.min(SWAP_CLUSTER_MAX);
                    self.shrink_active_list(l, ops, active, n);
                    left -= n;
                }
            }
            let ni = self.lru.lock().len(inactive);
            let mut left = (ni >> priority).max(if priority <= 2 {
                ni.min(SWAP_CLUSTER_MAX)
            } else {
                0
            });
            while left > 0 && sc.nr_reclaimed < sc.nr_to_reclaim {
                let n = left.min(SWAP_CLUSTER_MAX);
                self.shrink_inactive_list(l, swap, ops, inactive, n, sc);
                left -= n;
            }
        }
    }

    /// `shrink_node` with `do_try_to_free_pages`' priority loop: scans harder at each
    /// priority until `sc.nr_to_reclaim` pages are freed or priority 0 is done.
    pub fn shrink_node(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        sc: &mut ScanControl,
    ) -> usize {
        let mut priority = DEF_PRIORITY;
        loop {
            self.shrink_lruvec(l, swap, ops, priority, sc);
            if sc.nr_reclaimed >= sc.nr_to_reclaim || priority == 0 {
                break;
            }
            priority -= 1;
        }
        sc.nr_reclaimed
    }

    /// `try_to_free_pages`: direct reclaim by an allocation that missed its watermark;
    /// returns pages freed (0: no progress, the allocation may fail or the OOM killer run).
    pub fn try_to_free_pages(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        order: u32,
    ) -> usize {
        self.stats.allocstall.fetch_add(1, Ordering::Relaxed);
        let mut sc = ScanControl {
            nr_to_reclaim: SWAP_CLUSTER_MAX.max(1 << order),
            kswapd: false,
            ..ScanControl::default()
        };
        self.shrink_node(l, swap, ops, &mut sc)
    }

    /// Whether every populated zone is above its high watermark (`pgdat_balanced`).
    fn balanced(l: &VmLayer<P>) -> bool {
        l.zones()
            .filter(|z| z.is_populated())
            .all(|z| z.stats.free_pages() > z.wmark(WMARK_HIGH))
    }

    /// kswapd's `balance_pgdat`, run synchronously when woken (see the module
    /// documentation): reclaims until every zone is above its high watermark or a pass frees
    /// nothing. Returns pages freed.
    pub fn kswapd_run(&self, l: &VmLayer<P>, swap: &SwapState<P>, ops: &dyn ReclaimOps) -> usize {
        self.stats.pageoutrun.fetch_add(1, Ordering::Relaxed);
        let mut total = 0;
        while !Self::balanced(l) {
            let mut sc = ScanControl {
                nr_to_reclaim: SWAP_CLUSTER_MAX,
                kswapd: true,
                ..ScanControl::default()
            };
            let got = self.shrink_node(l, swap, ops, &mut sc);
            total += got;
            if got == 0 {
                break;
            }
        }
        total
    }

    /// `echo 1 > /proc/sys/vm/drop_caches` (`drop_pagecache_sb`): every clean, unmapped
    /// page-cache page leaves its cache and is freed. Returns pages freed.
    pub fn drop_pagecache(&self, l: &VmLayer<P>, ops: &dyn ReclaimOps) -> usize {
        self.stats.drop_pagecache.fetch_add(1, Ordering::Relaxed);
        let mut freed = 0;
        for lst in [LruList::InactiveFile, LruList::ActiveFile] {
            let n = self.lru.lock().len(lst);
            let mut left = n;
            while left > 0 {
                let mut batch = [None; SWAP_CLUSTER_MAX];
                let k = left.min(SWAP_CLUSTER_MAX);
                self.isolate(l, lst, k, &mut batch);
                left -= k;
                for page in batch.iter().flatten().copied() {
                    if !ops.mapped(page)
                        && !page.test_flag(pg::DIRTY)
                        && ops.remove_from_page_cache(page)
                    {
                        self.release(l, page);
                        freed += 1;
                    } else {
                        self.putback(l, page);
                    }
                }
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_ratio_follows_int_sqrt_of_ten_gb() {
        // Below 1 GiB the ratio is 1: low when inactive < active.
        assert!(inactive_is_low(10, 11));
        assert!(!inactive_is_low(10, 10));
        // 1 GiB of pages: ratio int_sqrt(10) = 3.
        let gb = 1 << (30 - crate::addr::PAGE_SHIFT);
        assert!(inactive_is_low(gb / 4 - 1, 3 * gb / 4 + 1));
        assert!(!inactive_is_low(gb / 4, 3 * gb / 4));
        assert_eq!(isqrt(10), 3);
        assert_eq!(isqrt(160), 12);
    }
}
