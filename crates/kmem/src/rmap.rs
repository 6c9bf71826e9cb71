//! Reverse mapping of user pages (mm/rmap.c): for each page mapped into processes, how many
//! PTEs map it (`_mapcount`) and which VMAs may (its anon_vma, [`crate::vma::anon_vma`]).
//!
//! - `page_add_new_anon_rmap`: a page fresh from a fault gets `_mapcount` 0 (one mapper),
//!   `mapping = anon_vma | PAGE_MAPPING_ANON` and `index` = its linear page index in the
//!   VMA, and counts in `NR_ANON_MAPPED`.
//! - `page_dup_rmap`: fork maps it once more.
//! - `page_remove_rmap`: one mapper less; the last one takes it out of `NR_ANON_MAPPED`.
//! - [`KmapLayer::rmap_walk_anon`] visits every (address space, VMA, address) that may map a
//!   page; [`KmapLayer::try_to_unmap`] clears (or replaces, e.g. by a swap entry) every PTE
//!   mapping it; [`KmapLayer::folio_referenced`] tests and clears their accessed bits. These
//!   are what reclaim uses.
//! - [`KmapLayer::rmap_walk_file`] visits every VMA mapping a shmem page (shared or private)
//!   through its object's `i_mmap` (a list of the VMAs mapping the object, kept by
//!   [`crate::vma`]'s `insert_vma`/`remove_vma`); page migration uses it for shmem, memfd
//!   and SysV pages.
//!
//! The mapcount lives in the `page_type` word (Linux's `_mapcount` union): `PAGE_TYPE_NONE`
//! (−1) means unmapped, so a page freed with no mapper has the value the allocator expects.
//!
//! # Locking
//! Callers hold the task layer's `tasklist_lock` (it stands for the anon_vma lock and the
//! page table locks, see [`crate::vma`]).

use core::ptr::NonNull;

use crate::addr::PhysAddr;
use crate::highmem::KmapLayer;
use crate::mm::mm_types::PagePtr;
use crate::mm::NodeStat;
use crate::pgtable::{PtFormat, PteFlags};
use crate::platform::Platform;
use crate::vma::anon_vma::for_each_vma;
use crate::vma::{AnonVma, MmCounter, MmStruct, VmAreaStruct};

/// `PAGE_MAPPING_ANON`: the low bit of `page->mapping` of an anonymous page.
pub const PAGE_MAPPING_ANON: usize = 1;

/// The PFN-bearing bits of a present PTE.
pub fn pte_phys(fmt: PtFormat, pte: u64) -> PhysAddr {
    PhysAddr::new(pte & fmt.addr_mask())
}

impl<P: Platform> KmapLayer<P> {
    /// The page a present PTE maps, if it is RAM of this machine.
    pub fn pte_page(&self, fmt: PtFormat, pte: u64) -> Option<PagePtr> {
        if pte & PteFlags::PRESENT.0 == 0 {
            return None;
        }
        self.pfn_to_page(pte_phys(fmt, pte).pfn())
    }

    /// `page_mapcount`.
    pub fn page_mapcount(&self, page: PagePtr) -> i32 {
        page.mapcount()
    }

    /// `page_ref_count`.
    pub fn page_count(&self, page: PagePtr) -> i32 {
        page.refcount()
    }

    /// `get_page`.
    pub fn get_page(&self, page: PagePtr) {
        page.ref_inc();
    }

    /// `put_page` for a user page: drops a reference; the last one frees it (its rmap
    /// fields cleared first).
    pub fn put_user_page(&self, page: PagePtr) {
        if page.refcount() == 1 {
            page.set_mapping(0);
            page.set_index(0);
            page.set_mapcount(0);
        }
        // put_page, not __free_pages: a reference that is not the last may be dropped from
        // a dirty swap-cache page (reclaim's try_to_unmap).
        self.put_page(page);
    }

    /// `PageAnon`.
    pub fn page_is_anon(&self, page: PagePtr) -> bool {
        page.mapping() & PAGE_MAPPING_ANON != 0
    }

    /// `page_anon_vma`.
    pub fn page_anon_vma(&self, page: PagePtr) -> Option<NonNull<AnonVma>> {
        let m = page.mapping();
        if m & PAGE_MAPPING_ANON == 0 {
            return None;
        }
        NonNull::new((m & !PAGE_MAPPING_ANON) as *mut AnonVma)
    }

    /// `page->index`: the linear page index of an anonymous page.
    pub fn page_index(&self, page: PagePtr) -> u64 {
        page.index() as u64
    }

    /// `folio_add_new_anon_rmap`: `page` (fresh, unmapped) is mapped once, at linear page
    /// index `index` of a VMA whose anon_vma is `av`.
    pub fn page_add_new_anon_rmap(&self, page: PagePtr, av: NonNull<AnonVma>, index: u64) {
        page.set_mapcount(1);
        page.set_mapping(av.as_ptr() as usize | PAGE_MAPPING_ANON);
        page.set_index(index as usize);
        self.mod_page_node_stat(page, NodeStat::AnonMapped, 1);
    }

    /// `page_dup_rmap` (`folio_dup_file_rmap_pte`/`folio_try_dup_anon_rmap_pte`): one more
    /// mapper (fork).
    pub fn page_dup_rmap(&self, page: PagePtr) {
        page.set_mapcount(page.mapcount() + 1);
    }

    /// `folio_add_file_rmap_pte`: a page-cache (shmem) page gets one more mapper.
    pub fn page_add_file_rmap(&self, page: PagePtr) {
        let n = page.mapcount() + 1;
        page.set_mapcount(n);
        if n == 1 {
            self.mod_page_node_stat(page, NodeStat::FileMapped, 1);
        }
    }

    /// `folio_remove_rmap_pte`: one mapper less.
    pub fn page_remove_rmap(&self, page: PagePtr) {
        let n = page.mapcount() - 1;
        page.set_mapcount(n);
        if n == 0 {
            let stat = if self.page_is_anon(page) {
                NodeStat::AnonMapped
            } else {
                NodeStat::FileMapped
            };
            self.mod_page_node_stat(page, stat, -1);
        }
    }

    /// `rmap_walk_anon`: calls `f(mm, vma, addr)` for every VMA on the page's anon_vma
    /// whose range holds the page's linear index (the places that may map it; `f` checks
    /// the PTE).
    ///
    /// # Safety
    /// The task layer's lock must be held (the anon_vma, its VMAs and their address spaces
    /// stay live and unchanged during the walk), and `f` must not change any VMA tree.
    pub unsafe fn rmap_walk_anon(
        &self,
        page: PagePtr,
        mut f: impl FnMut(NonNull<MmStruct>, &VmAreaStruct, u64),
    ) {
        let Some(av) = self.page_anon_vma(page) else {
            return;
        };
        let index = page.index() as u64;
        // SAFETY: the anon_vma of a mapped page is live (a chain of a VMA mapping it names
        // it), and the lock is held by the caller's guarantee.
        unsafe {
            for_each_vma(av, |vp| {
                let vma = &*vp.as_ptr();
                if index < vma.vm_pgoff || index >= vma.vm_pgoff + vma.pages() {
                    return;
                }
                let addr = vma.vm_start + (index - vma.vm_pgoff) * crate::vma::PAGE;
                if let Some(mm) = NonNull::new(vma.vm_mm as *mut MmStruct) {
                    f(mm, vma, addr);
                }
            });
        }
    }

    /// `rmap_walk_file` for a page at offset `index` of the shmem object whose `i_mmap` is
    /// `im`: calls `f(mm, addr, vm_flags)` for every VMA on it that maps that offset (shared
    /// or private; `f` checks the PTE). kmem's `i_mmap` is a list, not Linux's interval tree,
    /// so every VMA of the object is looked at.
    ///
    /// # Safety
    /// The task layer's lock must be held (the list, its VMAs and their address spaces stay
    /// live and unchanged during the walk); `f` must not change any VMA tree.
    pub unsafe fn rmap_walk_file(
        &self,
        im: NonNull<crate::vma::IMmap>,
        index: u64,
        mut f: impl FnMut(NonNull<MmStruct>, u64, crate::vma::VmFlags),
    ) {
        // SAFETY: the caller's guarantee: the list and its VMAs are live under the lock.
        unsafe {
            for vp in im.as_ref().iter() {
                let (start, pgoff, pages, flags, mm) = {
                    let v = vp.as_ref();
                    (v.vm_start, v.vm_pgoff, v.pages(), v.vm_flags, v.vm_mm)
                };
                if index < pgoff || index >= pgoff + pages {
                    continue;
                }
                if let Some(mm) = NonNull::new(mm as *mut MmStruct) {
                    f(mm, start + (index - pgoff) * crate::vma::PAGE, flags);
                }
            }
        }
    }

    /// `try_to_unmap`: every PTE mapping the anonymous `page` is replaced by
    /// `replacement(mm_pte)` (0 to just unmap; reclaim passes a swap entry; the PTE itself
    /// to keep that mapping), the page's
    /// mapcount and references dropped and the RSS moved (`MM_ANONPAGES` → `MM_SWAPENTS`
    /// for a non-zero replacement). Returns whether the page is no longer mapped.
    ///
    /// # Safety
    /// As [`Self::rmap_walk_anon`]; the caller holds its own reference to `page`.
    pub unsafe fn try_to_unmap(&self, page: PagePtr, replacement: impl Fn(u64) -> u64) -> bool {
        let pa = self.page_to_pfn(page).phys();
        let mem = &self.vm.sl.pa;
        // SAFETY: the caller's guarantee; the closure changes PTEs and counters only.
        unsafe {
            self.rmap_walk_anon(page, |mut mmp, _vma, addr| {
                let mm = mmp.as_mut();
                let Some(pt) = mm.pgd.as_mut() else { return };
                let fmt = pt.format();
                let pte = pt.pte_get(mem, addr);
                if pte & PteFlags::PRESENT.0 == 0 || pte_phys(fmt, pte) != pa {
                    return;
                }
                let new = replacement(pte);
                // The replacement may keep the mapping (no swap count left, a lazily
                // freed page written again): nothing changes for this PTE.
                if new == pte || pt.pte_set(mem, addr, new).is_err() {
                    return;
                }
                mm.add_counter(MmCounter::AnonPages, -1);
                if new != 0 {
                    mm.add_counter(MmCounter::SwapEnts, 1);
                }
                self.page_remove_rmap(page);
                self.put_user_page(page);
            });
        }
        page.mapcount() <= 0
    }

    /// `folio_referenced`: how many PTEs mapping the anonymous `page` have their accessed
    /// bit set; the bits are cleared (`ptep_clear_flush_young`).
    ///
    /// # Safety
    /// As [`Self::rmap_walk_anon`].
    pub unsafe fn folio_referenced(&self, page: PagePtr) -> usize {
        let pa = self.page_to_pfn(page).phys();
        let mem = &self.vm.sl.pa;
        let mut n = 0;
        // SAFETY: the caller's guarantee; the closure changes PTE bits only.
        unsafe {
            self.rmap_walk_anon(page, |mut mmp, _vma, addr| {
                let mm = mmp.as_mut();
                let Some(pt) = mm.pgd.as_mut() else { return };
                let fmt = pt.format();
                let pte = pt.pte_get(mem, addr);
                if pte & PteFlags::PRESENT.0 == 0 || pte_phys(fmt, pte) != pa {
                    return;
                }
                if pte & PteFlags::ACCESSED.0 != 0 {
                    n += 1;
                    let _ = pt.pte_set(mem, addr, pte & !PteFlags::ACCESSED.0);
                }
            });
        }
        n
    }
}
