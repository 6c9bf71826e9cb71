//! The swap cache (mm/swap_state.c): pages on their way to or from swap, found by their
//! swap entry, and swap-in with readahead.
//!
//! A page in the swap cache has `PG_swapcache`, its `swp_entry_t` in `private`, one reference
//! held by the cache, and its slot's `SWAP_HAS_CACHE` bit set. It enters when reclaim gives
//! an anonymous page a slot (`add_to_swap`) or when a fault reads a slot in
//! (`read_swap_cache_async`), and leaves when reclaim frees it after writeback
//! (`delete_from_swap_cache`) or when its slot is no longer needed (`folio_free_swap`).
//! A page that was read in and not written to stays in the cache after the fault: if reclaim
//! picks it again it is clean and its slot still holds the data, so it is dropped without
//! being written (the reason the swap cache exists).
//!
//! Each area's cache is an XArray indexed by slot offset (Linux splits it in 64 MiB
//! `address_space`s, `SWAP_ADDRESS_SPACE_PAGES`; one array per area is the same index).
//!
//! # Page references
//! As in Linux, a page's references are: one per PTE mapping it, one for the swap cache,
//! and temporary ones of whoever works on it; being on an LRU list holds none. So a
//! swap-cache page with exactly the cache's reference and the caller's is mapped by nobody.

use core::sync::atomic::Ordering;

use kds::xarray::XaEntry;

use crate::addr::{Order, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{pg, Page, PagePtr};
use crate::mm::NodeStat;
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

use super::entry::SwpEntry;
use super::swapfile::{node_gfp, SwapState};

/// `page_cluster` (/proc/sys/vm/page-cluster, mm/swap.c `swap_setup`): readahead reads up to
/// `1 << page_cluster` pages around a faulting slot; 3 on machines with more than 16 MiB.
pub const PAGE_CLUSTER: u32 = 3;

/// The page's memory as a page-sized array.
///
/// # Safety
/// The caller owns the page's contents for `'a` (no PTE maps it writable, nobody else
/// reads or writes them through the kernel).
#[allow(clippy::mut_from_ref)] // the page's memory is not the layer's: see # Safety
unsafe fn page_bytes<P: Platform>(l: &VmLayer<P>, page: PagePtr) -> &mut [u8; PAGE_SIZE] {
    let pa = l.page_to_pfn(page).phys();
    // SAFETY: every page of the memmap lies below phys_end; the caller owns the contents.
    unsafe { &mut *l.phys_to_real(pa).cast::<[u8; PAGE_SIZE]>() }
}

/// `put_page` for a page on no LRU list ([`crate::page_alloc::PageAllocator::put_page`]).
/// Pages on an LRU list go through `vmscan`'s `folio_put`, which takes them off it.
#[track_caller]
pub fn put_page<P: Platform>(l: &VmLayer<P>, page: PagePtr) {
    l.put_page(page);
}

impl<P: Platform> SwapState<P> {
    /// `add_to_swap_cache`: puts `page` (which the caller holds) in the cache under `e`,
    /// whose `SWAP_HAS_CACHE` the caller owns. The cache takes a reference.
    ///
    /// # Errors
    /// `ENOMEM` when a node cannot be allocated; `EBUSY` when `e` already has a page.
    pub fn add_to_swap_cache(
        &self,
        l: &VmLayer<P>,
        page: PagePtr,
        e: SwpEntry,
    ) -> Result<(), Errno> {
        let entry = XaEntry::from_ptr(core::ptr::NonNull::new(page.as_ptr()).ok_or(Errno::EINVAL)?)
            .ok_or(Errno::EINVAL)?;
        let t = self.table.lock();
        let a = t
            .areas
            .get(e.swp_type())
            .and_then(Option::as_ref)
            .ok_or(Errno::EINVAL)?;
        let r = a.cache.insert(e.offset() as usize, Some(entry), node_gfp());
        drop(t);
        match r {
            Ok(()) => {}
            Err(kds::Error::EBUSY) => return Err(Errno::EBUSY),
            Err(_) => return Err(Errno::ENOMEM),
        }
        page.get();
        page.set_private(e.val() as usize);
        page.set_flag_bits(pg::SWAPCACHE | pg::SWAPBACKED);
        self.stats.swapcached.fetch_add(1, Ordering::Relaxed);
        l.mod_page_node_stat(page, NodeStat::SwapCached, 1);
        Ok(())
    }

    /// `__delete_from_swap_cache` + `put_swap_folio`: takes `page` out of the cache, gives its
    /// slot's cache bit back (freeing the slot when no PTE names it) and drops the cache's
    /// reference. The caller holds its own reference, so this is never the last.
    pub fn delete_from_swap_cache(&self, l: &VmLayer<P>, page: PagePtr) {
        if !page.test_flag(pg::SWAPCACHE) {
            return;
        }
        let e = SwpEntry::from_val(page.private() as u64);
        {
            let t = self.table.lock();
            if let Some(a) = t.areas.get(e.swp_type()).and_then(Option::as_ref) {
                a.cache.erase(e.offset() as usize);
            }
        }
        page.clear_flag_bits(pg::SWAPCACHE);
        page.set_private(0);
        self.stats.swapcached.fetch_sub(1, Ordering::Relaxed);
        l.mod_page_node_stat(page, NodeStat::SwapCached, -1);
        self.put_swap_folio(l, e);
        let last = page.put_testzero();
        debug_assert!(!last, "the swap cache's reference was the last");
    }

    /// The swap-cache half of `__folio_migrate_mapping`: `new` takes `old`'s place in the
    /// cache under the same entry (`PG_swapcache`, `private`, the cache's reference); `old`
    /// leaves it with its reference dropped (the caller holds its own, so it is never the
    /// last). Returns `false` (nothing changed) when `old` is not the cached page.
    pub fn swap_cache_replace(&self, old: PagePtr, new: PagePtr) -> bool {
        if !old.test_flag(pg::SWAPCACHE) {
            return false;
        }
        let e = SwpEntry::from_val(old.private() as u64);
        let Some(entry) = core::ptr::NonNull::new(new.as_ptr()).and_then(XaEntry::from_ptr) else {
            return false;
        };
        {
            // Lock order: swap_lock, under tasklist_lock (migration); docs/LOCKING.md.
            let t = self.table.lock();
            let Some(a) = t.areas.get(e.swp_type()).and_then(Option::as_ref) else {
                return false;
            };
            let cur = a
                .cache
                .load(e.offset() as usize)
                .and_then(|x| x.as_ptr::<Page>());
            if cur != core::ptr::NonNull::new(old.as_ptr()) {
                return false;
            }
            // Replacing a present slot allocates nothing.
            if a.cache
                .store(e.offset() as usize, Some(entry), node_gfp())
                .is_err()
            {
                return false;
            }
        }
        new.get();
        new.set_private(e.val() as usize);
        new.set_flag_bits(pg::SWAPCACHE | pg::SWAPBACKED);
        old.clear_flag_bits(pg::SWAPCACHE);
        old.set_private(0);
        let last = old.put_testzero();
        debug_assert!(!last, "the swap cache's reference was the last");
        true
    }

    /// `swap_cache_get_folio`: the page cached for `e`, with a reference for the caller.
    pub fn lookup_swap_cache(&self, e: SwpEntry) -> Option<PagePtr> {
        let t = self.table.lock();
        let a = t.areas.get(e.swp_type())?.as_ref()?;
        let p = a.cache.load(e.offset() as usize)?.as_ptr::<Page>()?;
        // SAFETY: the cache holds only memmap entries (stored by `add_to_swap_cache`).
        let page = unsafe { PagePtr::from_raw(p) };
        // The cache's reference keeps the page alive while swap_lock is held.
        page.get();
        Some(page)
    }

    /// `add_to_swap`: gives the anonymous page `page` (held by the caller, locked against
    /// other reclaimers) a slot and puts it in the swap cache, dirty so that it is written.
    /// `None` when swap is full or the cache cannot grow.
    pub fn add_to_swap(&self, l: &VmLayer<P>, page: PagePtr) -> Option<SwpEntry> {
        let e = self.get_swap_page(l)?;
        if self.add_to_swap_cache(l, page, e).is_err() {
            self.put_swap_folio(l, e);
            return None;
        }
        page.set_flag_bits(pg::DIRTY);
        Some(e)
    }

    /// `swap_writepage`: writes the swap-cache page `page` to its slot and cleans it. The
    /// caller holds the page unmapped (no PTE maps it), so its contents are stable.
    ///
    /// # Errors
    /// `EIO` from the storage (the page stays dirty); `EINVAL` for a page not in the cache.
    pub fn swap_writepage(&self, l: &VmLayer<P>, page: PagePtr) -> Result<(), Errno> {
        if !page.test_flag(pg::SWAPCACHE) {
            return Err(Errno::EINVAL);
        }
        let e = SwpEntry::from_val(page.private() as u64);
        // SAFETY: the page is unmapped and held by reclaim (caller's contract): nobody
        // writes it meanwhile.
        let buf = unsafe { page_bytes(l, page) };
        self.write_slot(l, e, buf)?;
        page.clear_flag_bits(pg::DIRTY);
        Ok(())
    }

    /// `read_swap_cache_async` (`__read_swap_cache_async` + `swap_read_folio`): the page of
    /// `e`, from the cache or read from the slot into a new page allocated with `gfp`, which
    /// enters the cache and is handed to `new_page` (to go on an LRU list). Returns the page
    /// with a reference for the caller, or `None` when memory or the slot is gone.
    pub fn read_swap_cache_async(
        &self,
        l: &VmLayer<P>,
        e: SwpEntry,
        gfp: GfpFlags,
        new_page: &mut dyn FnMut(PagePtr),
    ) -> Option<PagePtr> {
        self.read_swap_cache_mpol(l, e, gfp, &|g| l.alloc_pages(g, Order::ZERO), new_page)
    }

    /// [`Self::read_swap_cache_async`] allocating a new page with `alloc` (6.18's
    /// `__read_swap_cache_async(…, mpol, ilx, …)`: the faulting VMA's memory policy).
    fn read_swap_cache_mpol(
        &self,
        l: &VmLayer<P>,
        e: SwpEntry,
        gfp: GfpFlags,
        alloc: &dyn Fn(GfpFlags) -> Option<PagePtr>,
        new_page: &mut dyn FnMut(PagePtr),
    ) -> Option<PagePtr> {
        for _ in 0..4 {
            if let Some(p) = self.lookup_swap_cache(e) {
                return Some(p);
            }
            let page = alloc(gfp)?;
            match self.swapcache_prepare(e) {
                Ok(()) => {}
                Err(Errno::EBUSY) => {
                    // Another task is adding this slot's page: look again.
                    l.__free_pages(page, Order::ZERO);
                    continue;
                }
                Err(_) => {
                    l.__free_pages(page, Order::ZERO);
                    return None;
                }
            }
            if self.add_to_swap_cache(l, page, e).is_err() {
                self.put_swap_folio(l, e);
                l.__free_pages(page, Order::ZERO);
                return None;
            }
            // SAFETY: the page is new, in the cache only, mapped by nobody yet.
            let buf = unsafe { page_bytes(l, page) };
            if self.read_slot(l, e, buf).is_err() {
                self.delete_from_swap_cache(l, page);
                l.__free_pages(page, Order::ZERO);
                return None;
            }
            page.set_flag_bits(pg::UPTODATE);
            new_page(page);
            return Some(page);
        }
        None
    }

    /// `swapin_readahead` (`swap_cluster_readahead`): reads the aligned window of
    /// `1 << PAGE_CLUSTER` slots around `e` that PTEs still name into the swap cache, then
    /// returns `e`'s page as [`Self::read_swap_cache_async`] does. (Linux sizes the window
    /// from recent readahead hits, `swapin_nr_pages`; kmem always reads the full window.)
    pub fn swapin_readahead(
        &self,
        l: &VmLayer<P>,
        e: SwpEntry,
        gfp: GfpFlags,
        new_page: &mut dyn FnMut(PagePtr),
    ) -> Option<PagePtr> {
        self.swapin_readahead_mpol(l, e, gfp, &|g| l.alloc_pages(g, Order::ZERO), new_page)
    }

    /// [`Self::swapin_readahead`] allocating every page it reads with `alloc` (6.18's
    /// `swap_cluster_readahead(entry, gfp, mpol, ilx)`: the faulting VMA's memory policy, so
    /// a task bound to a node gets its swapped-in pages there).
    pub fn swapin_readahead_mpol(
        &self,
        l: &VmLayer<P>,
        e: SwpEntry,
        gfp: GfpFlags,
        alloc: &dyn Fn(GfpFlags) -> Option<PagePtr>,
        new_page: &mut dyn FnMut(PagePtr),
    ) -> Option<PagePtr> {
        let mask = (1u64 << PAGE_CLUSTER) - 1;
        let start = e.offset() & !mask;
        let ra_gfp = gfp | GfpFlags::__GFP_NOWARN;
        for off in start..=start + mask {
            if off == e.offset() || off == 0 {
                continue;
            }
            let ra = SwpEntry::new(e.swp_type(), off);
            if self.swap_count(ra) == 0 {
                continue;
            }
            if let Some(p) = self.read_swap_cache_mpol(l, ra, ra_gfp, alloc, new_page) {
                // The readahead page stays in the cache; drop the reference we got.
                let last = p.put_testzero();
                debug_assert!(!last);
            }
        }
        self.read_swap_cache_mpol(l, e, gfp, alloc, new_page)
    }

    /// `free_swap_cache`: the caller is dropping the last mapping of `page` (zap, exit); if
    /// the page is in the swap cache and no swap PTE names its slot any more, it leaves the
    /// cache and the slot is freed (`folio_free_swap`). The caller still holds its reference.
    pub fn free_swap_cache(&self, l: &VmLayer<P>, page: PagePtr) {
        if !page.test_flag(pg::SWAPCACHE) || page.test_flag(pg::LOCKED) {
            return;
        }
        let e = SwpEntry::from_val(page.private() as u64);
        // The caller's reference and the cache's: nobody else maps or works on it.
        if self.swap_count(e) == 0 && page.refcount() == 2 {
            self.delete_from_swap_cache(l, page);
        }
    }

    /// Pages in the swap cache (`total_swapcache_pages`, meminfo `SwapCached`).
    pub fn total_swapcache_pages(&self) -> usize {
        self.stats.swapcached.load(Ordering::Relaxed).max(0) as usize
    }

    /// `free_swap_and_cache` part one: a swap PTE naming `e` is gone (zap, exit). When only
    /// the swap cache still holds the slot and its page is mapped by nobody, the page leaves
    /// the cache and is returned with the caller's reference, for the caller to release
    /// (the owner of the LRU lists must take it off them: see `vmscan`).
    pub fn free_swap_and_cache(&self, l: &VmLayer<P>, e: SwpEntry) -> Option<PagePtr> {
        let left = self.swap_free(l, e)?;
        if left != super::swapfile::SWAP_HAS_CACHE {
            return None;
        }
        let page = self.lookup_swap_cache(e)?;
        // The cache's reference and ours: nobody maps it.
        if page.refcount() == 2 && !page.test_flag(pg::LOCKED) {
            self.delete_from_swap_cache(l, page);
            return Some(page);
        }
        let last = page.put_testzero();
        debug_assert!(!last);
        None
    }
}
