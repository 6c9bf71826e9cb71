//! [`ReclaimOps`] over the machine's anonymous rmap ([`crate::rmap`]): what reclaim uses on
//! real address spaces. `try_to_unmap` replaces each PTE mapping a swap-cache page by its
//! swap entry (`swap_duplicate` per PTE, `_PAGE_SWP_EXCLUSIVE` when the page had one
//! mapper), moving a dirty PTE's dirty bit to the page, as mm/rmap.c `try_to_unmap_one`.

use crate::highmem::KmapLayer;
use crate::mm::mm_types::{pg, PagePtr};
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::swap::entry::SwpEntry;
use crate::swap::SwapState;

use super::ReclaimOps;

/// Reclaim's view of the rmap. See the module documentation.
pub struct RmapReclaim<'a, P: Platform> {
    km: &'a KmapLayer<P>,
    swap: &'a SwapState<P>,
}

impl<'a, P: Platform> RmapReclaim<'a, P> {
    /// The rmap of `km`'s address spaces, swapping to `swap`.
    ///
    /// # Safety
    /// For as long as the value lives, the task layer's lock must be held (what
    /// [`KmapLayer::rmap_walk_anon`] requires: anon_vmas, VMAs and address spaces stay live
    /// and unchanged).
    pub unsafe fn new(km: &'a KmapLayer<P>, swap: &'a SwapState<P>) -> Self {
        Self { km, swap }
    }
}

impl<P: Platform> ReclaimOps for RmapReclaim<'_, P> {
    fn referenced(&self, page: PagePtr) -> usize {
        // SAFETY: the lock is held for this value's life (constructor contract).
        unsafe { self.km.folio_referenced(page) }
    }
    fn mapped(&self, page: PagePtr) -> bool {
        page.mapcount() > 0
    }
    fn try_to_unmap(&self, page: PagePtr) -> bool {
        if !page.test_flag(pg::SWAPCACHE) {
            return false;
        }
        let e = SwpEntry::from_val(page.private() as u64);
        let arch = self.km.arch();
        let l = &self.km.vm;
        // SAFETY: the task layer's lock is held for this value's life (constructor contract), which
        // is what `try_to_unmap`'s rmap walk needs; reclaim isolated `page` and holds its own
        // reference to it.
        unsafe {
            self.km.try_to_unmap(page, |old| {
                if self.swap.swap_duplicate(l, e).is_err() {
                    // No count left for one more PTE: keep this mapping (the caller sees
                    // the page still mapped and keeps it).
                    return old;
                }
                if old & PteFlags::DIRTY.0 != 0 {
                    page.set_flag_bits(pg::DIRTY);
                }
                e.to_pte(arch, page.mapcount() == 1)
            })
        }
    }
    fn try_to_unmap_lazyfree(&self, page: PagePtr) -> bool {
        // SAFETY: the task layer's lock is held for this value's life (constructor contract), which
        // `try_to_unmap`'s rmap walk needs; reclaim isolated the lazy-free `page` and holds its own
        // reference to it.
        unsafe {
            self.km.try_to_unmap(page, |old| {
                if old & PteFlags::DIRTY.0 != 0 {
                    page.set_flag_bits(pg::DIRTY);
                }
                if page.test_flag(pg::SWAPBACKED) {
                    // Written again (found at an earlier PTE): every mapping stays.
                    return old;
                }
                // Only the isolation's reference besides the mappers' (mm/rmap.c: "The only
                // page refs must be one from isolation plus the rmap(s)").
                let clean = !page.test_flag(pg::DIRTY);
                if clean && page.refcount() as i64 == 1 + i64::from(page.mapcount()) {
                    return 0;
                }
                page.set_flag_bits(pg::SWAPBACKED);
                old
            })
        }
    }
}
