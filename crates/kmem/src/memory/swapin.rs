//! Swap in the fault and zap paths (mm/memory.c `do_swap_page`, the swap half of
//! `zap_pte_range`), and the LRU side of anonymous pages: what the memory layer calls with
//! the machine's [`SwapState`] and [`VmscanState`].
//!
//! - [`MemoryLayer::do_swap_page`]: a fault on a swap PTE finds the page in the swap cache
//!   (minor) or reads it with readahead (major, `pgmajfault`), maps it (the fault's
//!   reference becomes the PTE's), drops the PTE's count on the slot (`swap_free`), and
//!   frees the swap copy when it is now stale or swap is getting full
//!   (`should_try_to_free_swap`: a write fault, or `vm_swap_full`). A write fault maps the
//!   page writable and dirty; a read fault maps it read-only, so a later write goes through
//!   `do_wp_page` as in Linux. `MM_SWAPENTS` moves back to `MM_ANONPAGES`.
//! - [`MemoryLayer::zap_swap_pte`]: a swap PTE goes (munmap, exit): its slot count drops
//!   and an unmapped swap-cache page is freed (`free_swap_and_cache`).
//! - [`MemoryLayer::zap_anon_page`]: a present anonymous PTE goes: the mapper is removed,
//!   a swap-cache copy no PTE needs is freed (`free_swap_cache`) and the reference dropped
//!   through `folio_put`, which takes a last-referenced page off its LRU list.
//! - [`MemoryLayer::lru_add_anon`]: a page just mapped by a fault enters the inactive anon
//!   list (`folio_add_lru_vma`).
//!
//! # Locking
//! As the rest of the memory layer: the caller holds the task layer's lock.

use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mm::VmEvent;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::swap::entry::{is_swap_pte, pte_swp_exclusive, SwpEntry};
use crate::swap::SwapState;
use crate::vma::anon_vma::anon_vma_prepare;
use crate::vma::{MmCounter, MmStruct, VmFlags};
use crate::vmscan::VmscanState;

use super::{MemoryLayer, VmFault};

impl<P: Platform> MemoryLayer<P> {
    /// `folio_add_lru_vma` for a freshly mapped anonymous page.
    pub fn lru_add_anon(&self, lru: &VmscanState<P>, page: PagePtr) {
        lru.folio_add_lru(&self.km.vm, page, true);
    }

    /// `do_swap_page`: see the module documentation. `pte` is the swap PTE at `addr`.
    pub fn do_swap_page(
        &self,
        swap: &SwapState<P>,
        lru: &VmscanState<P>,
        mm: &mut MmStruct,
        addr: u64,
        pte: u64,
        write: bool,
    ) -> VmFault {
        let arch = self.arch();
        if !is_swap_pte(arch, pte) {
            return VmFault::Sigbus;
        }
        let e = SwpEntry::from_pte(arch, pte);
        let exclusive = pte_swp_exclusive(arch, pte);
        let Some(vp) = mm.vma_ptr(addr) else {
            return VmFault::SegvMapErr;
        };
        let ka = mm.kalloc();
        // SAFETY: a live VMA of `mm`, which the caller holds exclusively; nothing below
        // changes the VMA tree while the reference is used.
        let vma = unsafe { &mut *vp.as_ptr() };
        let flags = vma.vm_flags;
        let l = &self.km.vm;
        let page = match swap.lookup_swap_cache(e) {
            Some(p) => Some(p),
            None => {
                self.count_vm_events(VmEvent::PgMajFault, 1);
                // swapin_readahead: the pages read come from the VMA's policy.
                let (pol, ilx) = super::mempolicy::get_vma_policy(mm, vma, addr);
                let alloc =
                    |g| self.alloc_pages_mpol(g, crate::addr::Order::ZERO, pol.as_ref(), ilx);
                let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE;
                swap.swapin_readahead_mpol(l, e, gfp, &alloc, &mut |p| {
                    lru.folio_add_lru(l, p, true)
                })
            }
        };
        let Some(page) = page else {
            // The slot went meanwhile (another path swapped it in): retry the access.
            if swap.swap_count(e) == 0 {
                return VmFault::Done;
            }
            return VmFault::Oom;
        };
        let Ok(av) = anon_vma_prepare(&ka, vma, vp) else {
            lru.folio_put(l, page);
            return VmFault::Oom;
        };
        let index = vma.linear_page_index(addr);
        swap.swap_free(l, e);
        // Nobody else names the slot or maps the page: the page is exclusive to this PTE.
        let sole = exclusive || (swap.swap_count(e) == 0 && page.mapcount() == 0);
        // should_try_to_free_swap: the copy in swap is stale after a write, and worth
        // dropping when swap is more than half full, if no other PTE names the slot.
        if (write || swap.vm_swap_full()) && swap.swap_count(e) == 0 {
            swap.free_swap_cache(l, page);
        }
        // A write maps an exclusive page writable and dirty; otherwise read-only, and the
        // retried write goes through do_wp_page (reuse or copy).
        let writable = write && sole && flags.contains(VmFlags::VM_WRITE);
        let pa = self.page_to_pfn(page).phys().as_u64();
        let new = self.mk_pte(pa, flags, writable);
        match mm
            .pgd
            .as_mut()
            .map(|pt| pt.pte_set(self.pt_mem(), addr, new))
        {
            Some(Ok(_)) => {}
            _ => {
                lru.folio_put(l, page);
                return VmFault::Oom;
            }
        }
        if page.mapcount() == 0 {
            self.page_add_new_anon_rmap(page, av, index);
        } else {
            self.page_dup_rmap(page);
        }
        mm.add_counter(MmCounter::SwapEnts, -1);
        mm.add_counter(MmCounter::AnonPages, 1);
        VmFault::Done
    }

    /// The swap half of `zap_pte_range` for one swap PTE.
    pub fn zap_swap_pte(&self, swap: &SwapState<P>, lru: &VmscanState<P>, pte: u64) {
        let arch = self.arch();
        if !is_swap_pte(arch, pte) {
            return;
        }
        let l = &self.km.vm;
        if let Some(page) = swap.free_swap_and_cache(l, SwpEntry::from_pte(arch, pte)) {
            lru.folio_put(l, page);
        }
    }

    /// `zap_pte_range` for one present PTE mapping the anonymous `page`.
    pub fn zap_anon_page(&self, swap: &SwapState<P>, lru: &VmscanState<P>, page: PagePtr) {
        let l = &self.km.vm;
        self.page_remove_rmap(page);
        swap.free_swap_cache(l, page);
        if page.refcount() == 1 {
            page.set_mapping(0);
            page.set_index(0);
        }
        lru.folio_put(l, page);
    }

    /// Whether a PTE value is a swap PTE on this machine (for the fault and zap paths).
    pub fn pte_is_swap(&self, pte: u64) -> bool {
        pte & PteFlags::PRESENT.0 == 0 && is_swap_pte(self.arch(), pte)
    }
}
