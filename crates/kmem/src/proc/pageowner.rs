//! Who owns each physical page: the data behind `kmem map`, in the spirit of Linux's
//! `/proc/kpageflags` (fs/proc/page.c, `stable_page_flags`) and `page_owner`, but one value per
//! page saying which allocator holds it. Read without stopping the machine: every word of a
//! `struct page` is an atomic, so the answer may be stale for pages changing meanwhile (as
//! `/proc/kpageflags` may be).

use crate::addr::{Pfn, PhysAddr};
use crate::mm::mm_types::{pg, PageType};
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

/// The owner of one physical page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageOwner {
    /// No RAM at this frame (a hole in the firmware map).
    Hole,
    /// `PG_reserved`: firmware, the kernel image, memblock allocations.
    Reserved,
    /// `PG_reserved` and holding the memmap (the `struct page` array) itself.
    Memmap,
    /// In the buddy allocator's free lists, in a free block of this order.
    Free(u8),
    /// Free on a per-CPU list (refcount 0, not `PageBuddy`).
    FreePcp,
    /// A slab page (`PageSlab`) of the cache whose address is given (`slab->slab_cache`,
    /// see [`VmLayer::for_each_cache_addr`]).
    Slab(usize),
    /// A large kmalloc block (`PageLargeKmalloc`).
    LargeKmalloc,
    /// A page-table page (`PageTable`).
    PageTable,
    /// Mapped by a vmalloc area (or holding an area's page array).
    Vmalloc,
    /// Allocated from the page allocator by anyone else (`alloc_pages` callers).
    Allocated,
}

impl<P: Platform> VmLayer<P> {
    /// Fills `out[i]` with the owner of the page at `start + i` (frames at or past `max_pfn`
    /// are [`PageOwner::Hole`]).
    pub fn page_owners(&self, start: Pfn, out: &mut [PageOwner]) {
        out.fill(PageOwner::Hole);
        let s = start.as_u64();
        let e = s + out.len() as u64;
        let max = self.max_pfn().as_u64();
        // Frames in a memory region are classified; the rest stay holes.
        self.with_memblock(|mb| {
            for r in mb.memory.regions() {
                let rs = r.base.pfn().as_u64().max(s);
                let re = PhysAddr::new(r.end()).pfn().as_u64().min(e).min(max);
                for o in out
                    .iter_mut()
                    .take((re.max(rs) - s) as usize)
                    .skip((rs - s) as usize)
                {
                    *o = PageOwner::Allocated;
                }
            }
        });
        // The block backing the memmap (SPARSEMEM: the vmemmap's sections; FLATMEM: the array).
        let (mm_lo, mm_len) = self.memmap_phys;
        let mm_hi = mm_lo + mm_len;
        let mut i = 0usize;
        while i < out.len() {
            if out[i] == PageOwner::Hole {
                i += 1;
                continue;
            }
            let pfn = Pfn::new(s + i as u64);
            let step = self.classify_pfn(pfn, mm_lo..mm_hi, &mut out[i..]);
            i += step.max(1);
        }
        self.for_each_vmalloc_page(&mut |p| {
            let pfn = self.page_to_pfn(p).as_u64();
            if (s..e).contains(&pfn) {
                out[(pfn - s) as usize] = PageOwner::Vmalloc;
            }
        });
    }

    /// Classifies the page at `pfn` into `out[0]`; a free buddy block fills its whole run
    /// (clipped to `out`). Returns how many entries were written.
    fn classify_pfn(
        &self,
        pfn: Pfn,
        memmap: core::ops::Range<u64>,
        out: &mut [PageOwner],
    ) -> usize {
        let Some(page) = self.pfn_to_page(pfn).and_then(|p| self.page_ref(p)) else {
            out[0] = PageOwner::Hole;
            return 1;
        };
        if page.is_reserved() {
            let phys = pfn.phys().as_u64();
            out[0] = if memmap.contains(&phys) {
                PageOwner::Memmap
            } else {
                PageOwner::Reserved
            };
            return 1;
        }
        if page.is_buddy() {
            let order = page.private().min(63);
            let n = (1usize << order).min(out.len());
            out[..n].fill(PageOwner::Free(order as u8));
            return n;
        }
        let head = if page.is_tail() {
            self.page_ref(page.compound_head()).unwrap_or(page)
        } else {
            page
        };
        let (owner, order) = match head.page_type() {
            Some(PageType::Slab) => (PageOwner::Slab(head.mapping()), 0),
            Some(PageType::LargeKmalloc) => (PageOwner::LargeKmalloc, 0),
            Some(PageType::Table) => (PageOwner::PageTable, 0),
            Some(PageType::Buddy | PageType::Guard) => (PageOwner::Free(0), 0),
            // A block on a per-CPU list: `private` holds its order (0..=3,
            // PAGE_ALLOC_COSTLY_ORDER).
            None if head.refcount() == 0 => (PageOwner::FreePcp, page.private().min(3)),
            // An allocated block: its first page keeps the allocation order (kmem's check of
            // the order given to __free_pages); the other pages of a non-compound block have
            // refcount 0 and nothing else to tell them by.
            None if !page.is_tail() => (
                PageOwner::Allocated,
                ((page.flags() & pg::ORDER_MASK) >> pg::ORDER_SHIFT).min(10) as usize,
            ),
            None => (PageOwner::Allocated, 0),
        };
        let n = (1usize << order).min(out.len());
        out[..n].fill(owner);
        n
    }

    /// Calls `f` with the address every slab page of a cache carries ([`PageOwner::Slab`])
    /// and the cache's name (aliases of a merged cache give the same address).
    pub fn for_each_cache_addr(&self, f: &mut dyn FnMut(usize, &str)) {
        self.for_each_cache(&mut |h, name| f(h.ptr.as_ptr() as usize, name));
    }
}
