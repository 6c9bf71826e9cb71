//! The `struct page`s of reported free memory, shared (issue 14): once free page reporting
//! has given a large free block's memory back to the host, the memmap pages that describe
//! only the block's tail pages are handed to the platform to be mapped copy-on-write onto one
//! shared page (`Platform::share_vmemmap_cow`), so a free block costs the host neither its
//! memory nor its `struct page`s.
//!
//! Linux's precedent is the HugeTLB vmemmap optimisation (mm/hugetlb_vmemmap.c): the tail
//! `struct page`s of a huge page are all alike, so the memmap pages holding them are
//! remapped onto one read-only page, and restored before anything writes them. The tail
//! pages of a free buddy block are alike as well — each is an unused page of its zone and
//! node, as `memmap_init` and `online_pages` leave it (no reference, no type, no mapping,
//! not compound) — apart from words nothing reads while the page is free (`lru`, `index`,
//! `private`: leftovers of the page's last use, or of a merged buddy's head). Those are put
//! back to their `memmap_init` values first, so every memmap page of tails has the same
//! contents; then the platform maps it copy-on-write: it reads exactly as before, and the
//! first write to it — when the block is allocated or split (`expand`,
//! `prep_compound_page`), or by anything else — gets a private copy from the host, so
//! unlike HugeTLB's read-only page no writer has to restore it first.
//!
//! # Locking
//! Under the zone lock: the block is free and stays so while its tails are rewritten and
//! handed to the platform (every writer of a free block's pages takes it off the free lists
//! first, under that lock).

use core::sync::atomic::Ordering;

use kds::list::ListHead;

use super::PageAllocator;
use crate::addr::{Pfn, MAX_PAGE_ORDER, PAGE_SIZE};
use crate::mm::mm_types::{pg, Page, PagePtr, PAGE_TYPE_NONE};
use crate::platform::Platform;

/// `struct page`s per memmap page.
const PER_PAGE: usize = PAGE_SIZE / core::mem::size_of::<Page>();

/// The smallest free block with a memmap page of tails alone: two memmap pages' worth of
/// pages (the first memmap page holds the head).
pub const MIN_SHARE_ORDER: u32 = (2 * PER_PAGE).trailing_zeros();

const _: () = assert!(PAGE_SIZE.is_multiple_of(core::mem::size_of::<Page>()));

impl<P: Platform> PageAllocator<P> {
    /// Hands the memmap pages that hold only tail pages of the free block holding `pfn` (of
    /// order [`MIN_SHARE_ORDER`] or more) to the platform to be shared
    /// copy-on-write (see the module documentation), after putting the words of theirs that
    /// nothing reads while the pages are free back to their `memmap_init` values. A memmap
    /// page with a tail that is not a plain free page of the block's zone (a reference, a
    /// type, a mapping, a compound link, another flag) is left alone. Returns the number of
    /// memmap pages shared: 0 when `pfn` is not such a block any more (allocated meanwhile),
    /// or the platform cannot share (the default).
    pub fn share_free_memmap(&self, pfn: Pfn) -> usize {
        let Some(page) = self.pfn_to_page(pfn) else {
            return 0;
        };
        let zone = self.page_zone(page);
        // Lock order: &zone->lock (rank 5), taken alone; docs/LOCKING.md.
        let _free = zone.free.lock();
        let Some((head, order)) = self.free_block_containing(zone, pfn) else {
            return 0;
        };
        if order.as_u32() < MIN_SHARE_ORDER {
            return 0;
        }
        let page = self.page(head);
        let order = order.as_usize().min(MAX_PAGE_ORDER as usize);
        // A free block's head is aligned to its order and its memmap contiguous (one section:
        // a block never crosses one).
        let head = page.as_ptr() as usize;
        let start = (head + PAGE_SIZE) & !(PAGE_SIZE - 1);
        let end = head + (core::mem::size_of::<Page>() << order);
        let canon = Page::reserved_on(page.zone_type(), page.nid());
        let flags = canon.flags.load(Ordering::Relaxed) & !pg::RESERVED;
        let mut shared = 0;
        let mut run = start;
        let mut at = start;
        while at < end {
            // SAFETY: `[at, at + PAGE_SIZE)` holds `PER_PAGE` entries of the block's memmap
            // (between its head's memmap page and its end), valid while the block is.
            let ok = unsafe { self.canonicalise_tails(at as *mut Page, flags) };
            at += PAGE_SIZE;
            if !ok || at == end {
                let stop = if ok { at } else { at - PAGE_SIZE };
                if stop > run && self.plat.share_vmemmap_cow(run as *mut u8, stop - run) {
                    shared += (stop - run) / PAGE_SIZE;
                }
                run = at;
            }
        }
        shared
    }

    /// Checks that the `PER_PAGE` entries at `p` are plain free pages with `flags` (no
    /// reference, type, mapping or compound link) and, if so, resets the words nothing reads
    /// while they are free (`lru`, `index`, `private`) to their `memmap_init` values, so that
    /// all of them read the same. Returns whether they were such pages.
    ///
    /// # Safety
    /// `p` must point at `PER_PAGE` memmap entries of tail pages of a free block whose zone
    /// lock the caller holds.
    unsafe fn canonicalise_tails(&self, p: *mut Page, flags: u64) -> bool {
        for i in 0..PER_PAGE {
            // SAFETY: entry `i` of the caller's `PER_PAGE` memmap entries.
            let q = unsafe { PagePtr::from_raw(core::ptr::NonNull::new_unchecked(p.add(i))) };
            if q.flags() != flags
                || q.refcount() != 0
                || q.raw_page_type() != PAGE_TYPE_NONE
                || q.mapping() != 0
                || q.compound_head_raw() != 0
            {
                return false;
            }
        }
        for i in 0..PER_PAGE {
            // SAFETY: entry `i` of the caller's `PER_PAGE` memmap entries (in bounds, valid while
            // the block is); the page is a free block's tail under the zone lock, so no
            // one else reads or writes its `lru` (a non-atomic list link, as the list code
            // writes it under that lock); the other words are atomic. Only words that differ
            // are written (a memmap page shared before is not copied again for nothing).
            unsafe {
                let e = p.add(i);
                let lru = core::ptr::addr_of_mut!((*e).lru);
                if !(*lru).next.is_null() || !(*lru).prev.is_null() {
                    lru.write(ListHead::new());
                }
                if (*e).index.load(Ordering::Relaxed) != 0 {
                    (*e).index.store(0, Ordering::Relaxed);
                }
                if (*e).private.load(Ordering::Relaxed) != 0 {
                    (*e).private.store(0, Ordering::Relaxed);
                }
            }
        }
        true
    }
}
