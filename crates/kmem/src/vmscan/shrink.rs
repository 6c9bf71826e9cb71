//! Reclaim's policy (mm/vmscan.c): isolating pages, `shrink_folio_list`, active-list aging,
//! `shrink_node`, direct reclaim, kswapd's `balance_pgdat` and `drop_caches`.

use core::sync::atomic::Ordering;

use crate::gfp::GfpFlags;
use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::VmEvent;
use crate::mmzone::{ZoneType, WMARK_HIGH};
use crate::numa::MAX_NUMA_NODES;
use crate::page_alloc::MAX_RECLAIM_RETRIES;
use crate::platform::Platform;
use crate::rmap::PAGE_MAPPING_ANON;
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
    /// `isolate_lru_folios`: up to `nr` pages from the tail of node `nid`'s list `l`, each
    /// with a reference taken and `PG_lru` cleared, into `out`; returns how many were scanned.
    fn isolate(
        &self,
        vl: &VmLayer<P>,
        nid: usize,
        l: LruList,
        nr: usize,
        out: &mut [Option<PagePtr>],
    ) -> usize {
        let mut lru = self.lruvec(nid).lock();
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
            self.folio_lruvec(page).lock().add(page, &l.node_stats);
        }
        self.folio_put(l, page);
    }

    /// `shrink_folio_list` for one isolated page; `ignore_references` (`MADV_PAGEOUT`'s
    /// `reclaim_pages`) skips `folio_check_references`.
    fn shrink_one(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        page: PagePtr,
        ignore_references: bool,
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
        let referenced_ptes = if ignore_references {
            0
        } else {
            ops.referenced(page)
        };
        let referenced = page.test_clear_flag(pg::REFERENCED);
        if referenced_ptes > 0 {
            if page.test_flag(pg::SWAPBACKED) || referenced || referenced_ptes > 1 {
                return Verdict::Activate;
            }
            page.set_flag_bits(pg::REFERENCED);
            return Verdict::Keep;
        }
        if !page.test_flag(pg::SWAPBACKED) && page.mapping() & PAGE_MAPPING_ANON != 0 {
            return self.shrink_lazyfree(l, ops, page);
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

    /// `shrink_folio_list` for an isolated anonymous page `MADV_FREE` made lazily freeable:
    /// unmapped while clean and freed without swap (`pglazyfreed`); written again, it is
    /// swap-backed once more and activated (mm/vmscan.c, `try_to_unmap_one`).
    fn shrink_lazyfree(&self, l: &VmLayer<P>, ops: &dyn ReclaimOps, page: PagePtr) -> Verdict {
        if ops.mapped(page) && !ops.try_to_unmap_lazyfree(page) {
            return if page.test_flag(pg::SWAPBACKED) {
                Verdict::Activate
            } else {
                Verdict::Keep
            };
        }
        // folio_ref_freeze(folio, 1): only the isolation's reference is left.
        if page.refcount() != 1 {
            return Verdict::Keep;
        }
        l.count_vm_events(VmEvent::PgLazyFreed, 1);
        page.clear_flag_bits(pg::DIRTY);
        page.set_mapping(0);
        page.set_index(0);
        self.release(l, page);
        Verdict::Freed
    }

    /// Frees an isolated page whose only reference is the isolation's.
    fn release(&self, l: &VmLayer<P>, page: PagePtr) {
        page.clear_flag_bits(pg::ACTIVE);
        crate::swap::put_page(l, page);
    }

    /// `shrink_inactive_list`: isolates up to `nr` pages of node `nid`'s inactive list `lst`
    /// and reclaims what it can; returns pages freed.
    #[allow(clippy::too_many_arguments)]
    fn shrink_inactive_list(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        nid: usize,
        lst: LruList,
        nr: usize,
        sc: &mut ScanControl,
    ) -> usize {
        let mut batch = [None; SWAP_CLUSTER_MAX];
        let scanned = self.isolate(l, nid, lst, nr.min(SWAP_CLUSTER_MAX), &mut batch);
        sc.nr_scanned += scanned;
        let (scan, steal) = if sc.kswapd {
            (VmEvent::PgScanKswapd, VmEvent::PgStealKswapd)
        } else {
            (VmEvent::PgScanDirect, VmEvent::PgStealDirect)
        };
        l.count_vm_events(scan, scanned as u64);
        let freed = self.shrink_folio_list(l, swap, ops, &batch, false);
        l.count_vm_events(steal, freed as u64);
        sc.nr_reclaimed += freed;
        freed
    }

    /// `shrink_folio_list` over isolated pages: each is freed, or put back on the list its
    /// flags name (activated first when reclaim says so, `pgactivate`). Returns pages freed.
    fn shrink_folio_list(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        pages: &[Option<PagePtr>],
        ignore_references: bool,
    ) -> usize {
        let mut freed = 0;
        for page in pages.iter().flatten().copied() {
            match self.shrink_one(l, swap, ops, page, ignore_references) {
                Verdict::Freed => freed += 1,
                Verdict::Keep => self.putback(l, page),
                Verdict::Activate => {
                    page.set_flag_bits(pg::ACTIVE);
                    l.count_vm_events(VmEvent::PgActivate, 1);
                    self.putback(l, page);
                }
            }
        }
        freed
    }

    /// `reclaim_pages` (`MADV_PAGEOUT`): reclaims pages isolated by
    /// [`VmscanState::folio_isolate_lru`] regardless of their references, as
    /// `reclaim_folio_list` does (no `pgscan`/`pgsteal`); what cannot be reclaimed goes back
    /// on its list. Returns pages freed.
    pub fn reclaim_pages(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        pages: &[Option<PagePtr>],
    ) -> usize {
        self.shrink_folio_list(l, swap, ops, pages, true)
    }

    /// `shrink_active_list`: moves up to `nr` pages from the tail of node `nid`'s active list
    /// `lst` to the inactive list, clearing their young bits on the way (anonymous pages are
    /// deactivated even when referenced, as Linux does).
    fn shrink_active_list(
        &self,
        l: &VmLayer<P>,
        ops: &dyn ReclaimOps,
        nid: usize,
        lst: LruList,
        nr: usize,
    ) {
        let mut batch = [None; SWAP_CLUSTER_MAX];
        let scanned = self.isolate(l, nid, lst, nr.min(SWAP_CLUSTER_MAX), &mut batch);
        l.count_vm_events(VmEvent::PgRefill, scanned as u64);
        for page in batch.iter().flatten().copied() {
            let _ = ops.referenced(page);
            page.clear_flag_bits(pg::ACTIVE | pg::REFERENCED);
            l.count_vm_events(VmEvent::PgDeactivate, 1);
            self.putback(l, page);
        }
    }

    /// `shrink_lruvec` of node `nid` at one priority: each evictable list gets
    /// `size >> priority` pages scanned (all of it at priority 0); anonymous lists only while
    /// swap has room.
    fn shrink_lruvec(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        nid: usize,
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
                let lru = self.lruvec(nid).lock();
                (lru.len(inactive), lru.len(active))
            };
            if inactive_is_low(ni, na) || ni == 0 {
                let scan = (na >> priority).max(if priority == 0 { na } else { 0 });
                let mut left = scan.max(1).min(na);
                while left > 0 {
                    let n = left.min(SWAP_CLUSTER_MAX);
                    self.shrink_active_list(l, ops, nid, active, n);
                    left -= n;
                }
            }
            let ni = self.lruvec(nid).lock().len(inactive);
            let mut left = (ni >> priority).max(if priority <= 2 {
                ni.min(SWAP_CLUSTER_MAX)
            } else {
                0
            });
            while left > 0 && sc.nr_reclaimed < sc.nr_to_reclaim {
                let n = left.min(SWAP_CLUSTER_MAX);
                self.shrink_inactive_list(l, swap, ops, nid, inactive, n, sc);
                left -= n;
            }
        }
    }

    /// `shrink_node` of node `nid` at one priority (`shrink_lruvec` of the node's lruvec).
    /// Progress revives a hopeless node's kswapd (mm/vmscan.c: "a successful direct reclaim
    /// run will revive a dormant kswapd": `kswapd_failures` back to 0).
    fn shrink_node(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        nid: usize,
        priority: u32,
        sc: &mut ScanControl,
    ) {
        let before = sc.nr_reclaimed;
        self.shrink_lruvec(l, swap, ops, nid, priority, sc);
        if sc.nr_reclaimed > before {
            self.kswapd(nid).failures.store(0, Ordering::Relaxed);
        }
    }

    /// `do_try_to_free_pages`' priority loop over `nodes`: each priority shrinks every node
    /// in order (`shrink_zones` over the zonelist, one `shrink_node` per node), scanning
    /// harder at each priority until `sc.nr_to_reclaim` pages are freed or priority 0 is
    /// done. Returns pages freed.
    pub fn shrink_nodes(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        nodes: &[u8],
        sc: &mut ScanControl,
    ) -> usize {
        let mut priority = DEF_PRIORITY;
        loop {
            for &nid in nodes {
                if sc.nr_reclaimed >= sc.nr_to_reclaim {
                    break;
                }
                self.shrink_node(l, swap, ops, usize::from(nid), priority, sc);
            }
            if sc.nr_reclaimed >= sc.nr_to_reclaim || priority == 0 {
                break;
            }
            priority -= 1;
        }
        sc.nr_reclaimed
    }

    /// `try_to_free_pages`: direct reclaim by an allocation of `order` with `gfp` that
    /// missed its watermark on the zonelist of node `nid`, restricted to `nodemask`: the
    /// zonelist's nodes are shrunk in fallback order (only `nid` with `__GFP_THISNODE`).
    /// Returns pages freed (0: no progress, the allocation may fail or the OOM killer run).
    #[allow(clippy::too_many_arguments)]
    pub fn try_to_free_pages(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        gfp: GfpFlags,
        order: u32,
        nid: usize,
        nodemask: u64,
    ) -> usize {
        self.stats.allocstall.fetch_add(1, Ordering::Relaxed);
        let mut sc = ScanControl {
            nr_to_reclaim: SWAP_CLUSTER_MAX.max(1 << order),
            kswapd: false,
            ..ScanControl::default()
        };
        let mut nodes = [0u8; MAX_NUMA_NODES];
        let mut n = 0;
        for &x in l.zonelist_nodes(nid, gfp) {
            if nodemask & (1 << x) != 0 {
                nodes[n] = x;
                n += 1;
            }
        }
        self.shrink_nodes(l, swap, ops, &nodes[..n], &mut sc)
    }

    /// `pgdat_balanced`: whether some populated zone of node `nid` up to `highest` is above
    /// its high watermark with the lowmem reserve an allocation for `highest` keeps there
    /// (mm/vmscan.c: any eligible zone balanced makes the node balanced; a node without one
    /// is balanced too).
    pub fn pgdat_balanced(l: &VmLayer<P>, nid: usize, highest: ZoneType) -> bool {
        let mut eligible = false;
        for &kind in l.arch().zones() {
            if kind.index() > highest.index() {
                break;
            }
            let z = l.node_zone(nid, kind);
            if !z.is_populated() {
                continue;
            }
            eligible = true;
            let reserve = z.lowmem_reserve[highest.index()].load(Ordering::Relaxed);
            if z.stats.free_pages() > z.wmark(WMARK_HIGH) + reserve {
                return true;
            }
        }
        !eligible
    }

    /// `wakeup_kswapd` for node `nid` and kswapd's `balance_pgdat`, run synchronously (see
    /// the module documentation): nothing when the node is balanced for `highest` or hopeless
    /// (`kswapd_failures` ≥ `MAX_RECLAIM_RETRIES`); else the node's own lruvec is shrunk,
    /// `SWAP_CLUSTER_MAX` pages at a time, until it is balanced or a pass frees nothing (a
    /// failure). Returns pages freed.
    pub fn wakeup_kswapd(
        &self,
        l: &VmLayer<P>,
        swap: &SwapState<P>,
        ops: &dyn ReclaimOps,
        nid: usize,
        highest: ZoneType,
    ) -> usize {
        if nid >= l.nr_online_nodes() {
            return 0;
        }
        let k = self.kswapd(nid);
        if k.failures.load(Ordering::Relaxed) as usize >= MAX_RECLAIM_RETRIES
            || Self::pgdat_balanced(l, nid, highest)
        {
            return 0;
        }
        self.stats.pageoutrun.fetch_add(1, Ordering::Relaxed);
        k.runs.fetch_add(1, Ordering::Relaxed);
        let mut total = 0;
        while !Self::pgdat_balanced(l, nid, highest) {
            let mut sc = ScanControl {
                nr_to_reclaim: SWAP_CLUSTER_MAX,
                kswapd: true,
                ..ScanControl::default()
            };
            let got = self.shrink_nodes(l, swap, ops, &[nid as u8], &mut sc);
            total += got;
            if got == 0 {
                break;
            }
        }
        if total == 0 {
            k.failures.fetch_add(1, Ordering::Relaxed);
        }
        k.reclaimed.fetch_add(total, Ordering::Relaxed);
        total
    }

    /// Wakes the kswapd of every online node for allocations up to the highest zone (tests,
    /// and callers without an allocation's context). Returns pages freed.
    pub fn kswapd_run(&self, l: &VmLayer<P>, swap: &SwapState<P>, ops: &dyn ReclaimOps) -> usize {
        let highest = l.arch().zones().last().copied().unwrap_or(ZoneType::Normal);
        (0..l.nr_online_nodes())
            .map(|nid| self.wakeup_kswapd(l, swap, ops, nid, highest))
            .sum()
    }

    /// `echo 1 > /proc/sys/vm/drop_caches` (`drop_pagecache_sb`): every clean, unmapped
    /// page-cache page leaves its cache and is freed. Returns pages freed.
    pub fn drop_pagecache(&self, l: &VmLayer<P>, ops: &dyn ReclaimOps) -> usize {
        self.stats.drop_pagecache.fetch_add(1, Ordering::Relaxed);
        let mut freed = 0;
        for (nid, lst) in (0..l.nr_online_nodes())
            .flat_map(|nid| [(nid, LruList::InactiveFile), (nid, LruList::ActiveFile)])
        {
            let n = self.lruvec(nid).lock().len(lst);
            let mut left = n;
            while left > 0 {
                let mut batch = [None; SWAP_CLUSTER_MAX];
                let k = left.min(SWAP_CLUSTER_MAX);
                self.isolate(l, nid, lst, k, &mut batch);
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
