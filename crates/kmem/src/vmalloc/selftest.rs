//! `vmalloc_selftest`: the checks lib/test_vmalloc.c makes, run on this machine.

use core::ptr;
use core::sync::atomic::Ordering;

use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::pgtable::PteFlags;
use crate::platform::Platform;

use super::{VmLayer, VM_MAP};

impl<P: Platform> VmLayer<P> {
    /// Runs vmalloc's self-tests (for the bare-metal kernel, which has no test harness):
    /// scenarios of lib/test_vmalloc.c (fix-size, random-size, aligned, full-fit), lowest
    /// placement and merging, vmap, a lazy purge, and the page walk against the pages. With
    /// `touch`, memory is also written and read through the returned pointers, which needs
    /// the kernel page table to be live (bare metal: loaded in CR3 or adopted through
    /// [`Platform::kernel_pgd`]; hosted: always).
    ///
    /// # Errors
    /// The first check that failed.
    pub fn vmalloc_selftest(&self, touch: bool) -> Result<(), &'static str> {
        self.kernel_layout().ok_or("vmalloc not initialised")?;
        let poke = |v: VirtAddr, len: usize, b: u8| {
            if touch {
                // SAFETY: `v` was just allocated with at least `len` bytes, mapped writable.
                unsafe { ptr::write_bytes(v.as_ptr::<u8>(), b, len) };
            }
        };
        let peek = |v: VirtAddr, off: usize| -> Option<u8> {
            // SAFETY: callers stay inside an allocation of theirs.
            touch.then(|| unsafe { v.as_ptr::<u8>().add(off).read_volatile() })
        };
        let saved = self.vm().lazy_max.load(Ordering::Relaxed);
        // fix_size_alloc
        for _ in 0..64 {
            let v = self
                .vmalloc(3 * PAGE_SIZE)
                .ok_or("fix_size: vmalloc failed")?;
            poke(v, 1, 0);
            self.vfree(v);
        }
        // random_size_alloc and random_size_align_alloc (platform randomness)
        for _ in 0..64 {
            let r = self.platform().random_u64();
            let n = (r % 100) as usize + 1;
            let v = self
                .vmalloc(n * PAGE_SIZE)
                .ok_or("random_size: vmalloc failed")?;
            poke(v, n * PAGE_SIZE, 0xa5);
            if peek(v, n * PAGE_SIZE - 1).is_some_and(|b| b != 0xa5) {
                return Err("random_size: read back differs");
            }
            // Every page of the area is the page the walk finds.
            for i in [0, n - 1] {
                let model = self.kva_model(v.as_usize()) + (i * PAGE_SIZE) as u64;
                let w = self.translate(model).ok_or("no page table")?;
                let pfn = w.walk.result.ok_or("walk: page not mapped")?.phys.pfn();
                if self.vmalloc_to_pfn(v + (i * PAGE_SIZE) as u64) != Some(pfn) {
                    return Err("vmalloc_to_pfn differs from the walk");
                }
            }
            self.vfree(v);
            let align = 1usize << ((r >> 8) % 23);
            let v = self
                .__vmalloc_node(
                    ((r >> 16) % 10 + 1) as usize * PAGE_SIZE,
                    align,
                    GfpFlags::GFP_KERNEL,
                )
                .ok_or("random_size_align: failed")?;
            if self.kva_model(v.as_usize()) & (align as u64 - 1) != 0 {
                return Err("random_size_align: misaligned");
            }
            self.vfree(v);
        }
        // Placement, merging, full fit (no lazy freeing for exact expectations).
        self.vm().lazy_max.store(0, Ordering::Relaxed);
        self.purge_vmap_area_lazy();
        let base = self.vmalloc_stats();
        let a = self.vmalloc(PAGE_SIZE).ok_or("placement: a")?;
        let b = self.vmalloc(4 * PAGE_SIZE).ok_or("placement: b")?;
        let c = self.vmalloc(PAGE_SIZE).ok_or("placement: c")?;
        self.vfree(b);
        let d = self.vmalloc(2 * PAGE_SIZE).ok_or("placement: d")?;
        if d != b {
            return Err("placement: not the lowest fitting hole");
        }
        self.vfree(d);
        self.vfree(a);
        self.vfree(c);
        if self.vmalloc_stats().free_areas != base.free_areas {
            return Err("merge: free areas did not merge back");
        }
        // vmap of pages written through the direct map.
        let mut pages = [None::<PagePtr>; 3];
        for (i, p) in pages.iter_mut().enumerate() {
            let pg = self
                .alloc_page(GfpFlags::GFP_KERNEL)
                .ok_or("vmap: no page")?;
            if let Some(va) = self.page_address(pg) {
                // SAFETY: the page was just allocated.
                unsafe { va.as_ptr::<u8>().write(i as u8 + 1) };
            }
            *p = Some(pg);
        }
        let arr = [pages[0].unwrap(), pages[1].unwrap(), pages[2].unwrap()];
        let v = self
            .vmap(&arr, VM_MAP, PteFlags::PAGE_KERNEL)
            .ok_or("vmap failed")?;
        for (i, &p) in arr.iter().enumerate() {
            if self.vmalloc_to_page(v + (i * PAGE_SIZE) as u64) != Some(p) {
                return Err("vmap: wrong page");
            }
            if peek(v, i * PAGE_SIZE).is_some_and(|b| b != i as u8 + 1) {
                return Err("vmap: wrong contents");
            }
        }
        self.vunmap(v);
        for p in arr {
            self.__free_page(p);
        }
        self.vm().lazy_max.store(saved, Ordering::Relaxed);
        // Lazy purge: freed areas wait, then one purge returns them.
        let v = self.vmalloc(PAGE_SIZE).ok_or("lazy: vmalloc")?;
        self.vfree(v);
        if self.vmalloc_stats().lazy_areas == 0 && self.lazy_max_pages() > 2 {
            return Err("lazy: area not deferred");
        }
        self.purge_vmap_area_lazy();
        if self.vmalloc_stats().lazy_areas != 0 {
            return Err("lazy: purge left areas");
        }
        self.check_vmalloc()
    }
}
