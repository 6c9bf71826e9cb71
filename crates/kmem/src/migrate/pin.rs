//! `pin_user_pages` / `unpin_user_pages` (mm/gup.c): a pin is a reference that says "a
//! device may be reading or writing this page": Linux adds `GUP_PIN_COUNTING_BIAS` to the
//! refcount of an order-0 page, so `folio_maybe_dma_pinned` is `refcount >= 1024`, and
//! migration, seeing references it cannot account for, fails with `-EAGAIN`.

use crate::errno::Errno;
use crate::memory::{FaultFlags, VmFault};
use crate::mm::mm_types::PagePtr;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::task::TaskLayer;
use crate::vma::PAGE;

/// `GUP_PIN_COUNTING_BIAS` (include/linux/mm.h).
pub const GUP_PIN_COUNTING_BIAS: i32 = 1 << 10;
/// `FOLL_WRITE`: pin for writing (faults the pages in writable, breaking COW).
pub const FOLL_WRITE: u32 = 0x01;
/// `FOLL_LONGTERM`: a long-term pin (accepted; kmem does not move CMA pages out first).
pub const FOLL_LONGTERM: u32 = 0x100;

impl<P: Platform> TaskLayer<P> {
    /// `pin_user_pages_remote`: pins the `pages.len()` pages of task `pid` from `start`
    /// (page-aligned), faulting them in first as an access would (a write access with
    /// `FOLL_WRITE`); `pages[i]` gets the `i`-th. Returns how many were pinned (fewer when a
    /// fault fails after the first page).
    ///
    /// # Errors
    /// `ESRCH`, `EINVAL` (unaligned `start` or unknown flags), `EFAULT` (the first page
    /// cannot be faulted in), `ENOMEM`.
    pub fn pin_user_pages(
        &self,
        pid: i32,
        start: u64,
        gup_flags: u32,
        pages: &mut [Option<PagePtr>],
    ) -> Result<usize, Errno> {
        if start & (PAGE - 1) != 0 || gup_flags & !(FOLL_WRITE | FOLL_LONGTERM) != 0 {
            return Err(Errno::EINVAL);
        }
        let write = gup_flags & FOLL_WRITE != 0;
        let r = self.with_task(pid, |t| {
            let mut n = 0;
            for (i, slot) in pages.iter_mut().enumerate() {
                let addr = start + i as u64 * PAGE;
                let page = loop {
                    let pte =
                        t.mm.pgd
                            .as_ref()
                            .map_or(0, |pt| pt.pte_get(t.layer.pt_mem(), addr));
                    let ok =
                        pte & PteFlags::PRESENT.0 != 0 && (!write || pte & PteFlags::RW.0 != 0);
                    if ok {
                        break t
                            .mm
                            .pgd
                            .as_ref()
                            .and_then(|pt| t.layer.pte_page(pt.format(), pte));
                    }
                    let f = FaultFlags {
                        write,
                        exec: false,
                        user: false,
                    };
                    match t.layer.handle_mm_fault(t.mm, addr, f) {
                        VmFault::Done => {}
                        VmFault::Oom => return if n == 0 { Err(Errno::ENOMEM) } else { Ok(n) },
                        _ => return if n == 0 { Err(Errno::EFAULT) } else { Ok(n) },
                    }
                };
                // The zero page (a read pin of an untouched page) is pinned like any page.
                let Some(page) = page else {
                    return if n == 0 { Err(Errno::EFAULT) } else { Ok(n) };
                };
                for _ in 0..GUP_PIN_COUNTING_BIAS {
                    page.get();
                }
                *slot = Some(page);
                n += 1;
            }
            Ok(n)
        })?;
        r
    }

    /// `unpin_user_pages`: drops one pin of each page (pages freed meanwhile by their
    /// mappers are freed here, at their last reference).
    pub fn unpin_user_pages(&self, pages: &[PagePtr]) {
        for &page in pages {
            if !self.check_page_ptr(page, "unpin_user_pages") {
                continue;
            }
            if page.refcount() < GUP_PIN_COUNTING_BIAS {
                self.warn(format_args!("unpin_user_pages: page is not pinned"));
                continue;
            }
            for _ in 0..GUP_PIN_COUNTING_BIAS - 1 {
                page.put_testzero();
            }
            self.mem.mem.lru.folio_put(&self.mem.km.vm, page);
        }
    }

    /// Whether `page` may be pinned for DMA (`folio_maybe_dma_pinned`).
    pub fn page_maybe_dma_pinned(&self, page: PagePtr) -> bool {
        self.check_page_ptr(page, "page_maybe_dma_pinned")
            && page.refcount() >= GUP_PIN_COUNTING_BIAS
    }
}

impl<P: Platform> TaskLayer<P> {
    /// `follow_page`: the page task `pid` maps at `addr` (no reference taken; `None` for no
    /// present PTE or the zero page).
    ///
    /// # Errors
    /// `ESRCH`.
    pub fn follow_page(&self, pid: i32, addr: u64) -> Result<Option<PagePtr>, Errno> {
        self.with_task(pid, |t| {
            let pt = t.mm.pgd.as_ref()?;
            let pte = pt.pte_get(t.layer.pt_mem(), addr & !(PAGE - 1));
            if t.layer.is_zero_pte(pt.format(), pte) {
                return None;
            }
            t.layer.pte_page(pt.format(), pte)
        })
    }
}
