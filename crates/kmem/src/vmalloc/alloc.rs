//! The vmalloc family (mm/vmalloc.c): `__vmalloc_node_range` and its wrappers (`vmalloc`,
//! `vzalloc`, `vmalloc_user`, `vmalloc_32`, `vmalloc_huge`), `vfree` and `remove_vm_area`,
//! `vrealloc`, and the lookups (`is_vmalloc_addr`, `vmalloc_to_page`, `find_vm_area`).

use core::panic::Location;
use core::ptr;
use core::sync::atomic::Ordering;

use crate::addr::{Order, Pfn, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::arch::Arch;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mm::NodeStat;
use crate::page_alloc::NUMA_NO_NODE;
use crate::pgtable::PteFlags;
use crate::platform::Platform;

use super::area::{find_containing, unlink_busy};
use super::{
    va_size, VmInfo, VmLayer, VmapArea, ANY_VM, VM_ALLOC, VM_ALLOW_HUGE_VMAP, VM_MAP_RAM_AREA,
    VM_NO_GUARD, VM_UNINITIALIZED, VM_USERMAP,
};

impl<P: Platform> VmLayer<P> {
    /// `__vmalloc_node_range`: allocates `size` bytes of virtually contiguous memory in
    /// `[start, end)` (model addresses), aligned to `align`, pages from `gfp`, mapped with
    /// `prot`, area flags `vm_flags`.
    ///
    /// Returns the real address, or `None` (with Linux's `vmalloc error:` warning unless
    /// `__GFP_NOWARN`) if the size is zero or exceeds RAM, no address range fits, or pages
    /// run out.
    #[allow(clippy::too_many_arguments)]
    pub fn __vmalloc_node_range(
        &self,
        size: usize,
        align: usize,
        start: u64,
        end: u64,
        gfp: GfpFlags,
        prot: PteFlags,
        vm_flags: u32,
        caller: &'static Location<'static>,
    ) -> Option<VirtAddr> {
        let r = (start, end, prot, vm_flags);
        self.vmalloc_node_range_nid(size, align, r, gfp, NUMA_NO_NODE, caller)
    }

    /// [`Machine::__vmalloc_node_range`] with its `node` argument: the pages come from
    /// `alloc_pages_node(node)` (`NUMA_NO_NODE`: `alloc_pages`); `r` is `(start, end, prot,
    /// vm_flags)`.
    fn vmalloc_node_range_nid(
        &self,
        size: usize,
        align: usize,
        r: (u64, u64, PteFlags, u32),
        gfp: GfpFlags,
        node: i32,
        caller: &'static Location<'static>,
    ) -> Option<VirtAddr> {
        let (start, end, prot, vm_flags) = r;
        let real_size = size;
        if size == 0 {
            self.warn(format_args!("__vmalloc_node_range: zero size"));
            return None;
        }
        const PMD_SIZE: usize = 2 << 20;
        let huge =
            vm_flags & VM_ALLOW_HUGE_VMAP != 0 && self.arch() == Arch::X86_64 && size >= PMD_SIZE;
        let (size, align) = if huge {
            (
                size.checked_add(PMD_SIZE - 1)? & !(PMD_SIZE - 1),
                align.max(PMD_SIZE),
            )
        } else {
            (size.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1), align)
        };
        let nr_pages = size >> PAGE_SHIFT;
        if nr_pages > self.totalram_pages() {
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, exceeds total pages"),
            );
            return None;
        }
        let guard = if vm_flags & VM_NO_GUARD != 0 {
            0
        } else {
            PAGE_SIZE
        };
        let Some(va) =
            self.alloc_vmap_area((size + guard) as u64, align.max(1) as u64, start, end, gfp)
        else {
            let hint = if Some(start) == self.kernel_layout().map(|l| l.vmalloc_start) {
                ", use vmalloc=<size> to increase size"
            } else {
                ""
            };
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, vm_struct allocation failed{hint}"),
            );
            return None;
        };
        // SAFETY: `va` is our new busy area, VM_UNINITIALIZED: nobody else reads these
        // fields until the flags are published under the areas lock.
        unsafe {
            (*va).caller = Some(caller);
            (*va).requested_size = real_size;
        }
        // The pages array, then the pages (`__vmalloc_area_node`).
        let arr_bytes = nr_pages * core::mem::size_of::<PagePtr>();
        let Some(arr_order) = Order::for_size(arr_bytes) else {
            self.free_vmap_area_now(va);
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, failed to allocate page array size {arr_bytes}"),
            );
            return None;
        };
        let nested =
            gfp.without(GfpFlags::__GFP_HIGHMEM | GfpFlags::__GFP_ZERO) | GfpFlags::__GFP_NOWARN;
        let Some(arr) = self.__get_free_pages(nested, arr_order) else {
            self.free_vmap_area_now(va);
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, failed to allocate page array size {arr_bytes}"),
            );
            return None;
        };
        let arr = arr.as_ptr::<PagePtr>();
        let mut page_gfp = gfp | GfpFlags::__GFP_NOWARN;
        if !gfp.intersects(GfpFlags::GFP_DMA | GfpFlags::GFP_DMA32) {
            page_gfp |= GfpFlags::__GFP_HIGHMEM;
        }
        // Huge mappings take PMD-sized blocks, split into order-0 pages so that they are
        // freed one by one.
        let order = if huge { Order::new(9) } else { Order::ZERO };
        // SAFETY: the array block holds `nr_pages` entries (`arr_bytes`), and `nr_pages` is a
        // multiple of `order`'s pages (the size was rounded to PMD_SIZE when huge).
        let got = unsafe { self.vm_area_alloc_pages(page_gfp, order, node, arr, nr_pages) };
        // SAFETY: `got` entries were written.
        let pages = unsafe { core::slice::from_raw_parts(arr, got) };
        if got < nr_pages && huge {
            // No PMD-sized blocks: fall back to small pages, as Linux does.
            self.vmalloc_area_abort(va, arr, arr_order, pages);
            let r = (start, end, prot, vm_flags & !VM_ALLOW_HUGE_VMAP);
            return self.vmalloc_node_range_nid(real_size, align, r, gfp, node, caller);
        }
        if got < nr_pages {
            self.vmalloc_area_abort(va, arr, arr_order, pages);
            self.warn_alloc(
                gfp,
                format_args!(
                    "vmalloc error: size {real_size}, failed to allocate pages, allocated {got} of {nr_pages} pages"
                ),
            );
            return None;
        }
        // SAFETY: `va` is the busy area allocated above, owned by this call until it is mapped or
        // aborted.
        let va_start = unsafe { (*va).va_start };
        if !self.kernel_map(va_start, pages, prot, huge) {
            self.vmalloc_area_abort(va, arr, arr_order, pages);
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, failed to map pages"),
            );
            return None;
        }
        self.mod_node_stat(NodeStat::VmallocPages, nr_pages as isize);
        {
            // Lock order: vmap_area_lock (rank 2), publishing the area; docs/LOCKING.md.
            let _a = self.vm().areas.lock();
            // SAFETY: the areas lock orders this with /proc readers.
            unsafe {
                (*va).pages = arr;
                (*va).pages_order = arr_order.as_u32();
                (*va).nr_pages = nr_pages;
                (*va).flags = vm_flags & !(VM_UNINITIALIZED | VM_MAP_RAM_AREA);
            }
        }
        let addr = VirtAddr::new(self.kva_real(va_start));
        // kmemleak_vmalloc(area, real_size, gfp_mask): the size asked for.
        self.kmemleak_vmalloc(addr, real_size, gfp, caller);
        Some(addr)
    }

    /// `vm_area_alloc_pages`: allocates blocks of `order` with `gfp` into `arr` until
    /// `nr_pages` pages are there or memory runs out; blocks above order 0 are split so that
    /// their pages are freed one by one. Returns how many entries were written.
    ///
    /// # Safety
    /// `arr` has room for `nr_pages` entries, and `nr_pages` is a multiple of `order.pages()`.
    unsafe fn vm_area_alloc_pages(
        &self,
        gfp: GfpFlags,
        order: Order,
        node: i32,
        arr: *mut PagePtr,
        nr_pages: usize,
    ) -> usize {
        let mut got = 0;
        while got < nr_pages {
            let p = if node == NUMA_NO_NODE {
                self.alloc_pages(gfp, order)
            } else {
                self.alloc_pages_node(node, gfp, order)
            };
            let Some(p) = p else {
                break;
            };
            if order.as_u32() > 0 {
                self.split_page(p, order);
            }
            for i in 0..order.pages() {
                // SAFETY: `got + i < nr_pages` (nr_pages is a multiple of the block) entries
                // fit in the array (caller's guarantee).
                unsafe { arr.add(got + i).write(p.add(i)) };
            }
            got += order.pages();
        }
        got
    }

    /// Undoes a `__vmalloc_node_range` that failed after its area was reserved: frees the
    /// pages got so far (`pages`, the start of the array `arr`), the array (a block of
    /// `arr_order`) and the area.
    fn vmalloc_area_abort(
        &self,
        va: *mut VmapArea,
        arr: *mut PagePtr,
        arr_order: Order,
        pages: &[PagePtr],
    ) {
        for &p in pages {
            self.__free_page(p);
        }
        self.free_pages(VirtAddr::from_ptr(arr), arr_order);
        self.free_vmap_area_now(va);
    }

    /// `__vmalloc_node`: [`Machine::__vmalloc_node_range`] over the whole vmalloc space with
    /// `PAGE_KERNEL`.
    #[track_caller]
    pub fn __vmalloc_node(&self, size: usize, align: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__vmalloc_node_range(
            size,
            align,
            l.vmalloc_start,
            l.vmalloc_end,
            gfp,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC,
            Location::caller(),
        )
    }

    /// `vmalloc_node`: `size` bytes of virtually contiguous memory whose pages come from
    /// NUMA node `node` (preferably: without `__GFP_THISNODE` the node's zonelist may give
    /// another node's pages, as in Linux; `NUMA_NO_NODE`: [`Machine::vmalloc`]).
    #[track_caller]
    pub fn vmalloc_node(&self, size: usize, node: i32) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        let r = (
            l.vmalloc_start,
            l.vmalloc_end,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC,
        );
        self.vmalloc_node_range_nid(size, 1, r, GfpFlags::GFP_KERNEL, node, Location::caller())
    }

    /// `vzalloc_node`: zeroed [`Machine::vmalloc_node`].
    #[track_caller]
    pub fn vzalloc_node(&self, size: usize, node: i32) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        let r = (
            l.vmalloc_start,
            l.vmalloc_end,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC,
        );
        let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO;
        self.vmalloc_node_range_nid(size, 1, r, gfp, node, Location::caller())
    }

    /// `__vmalloc`: `size` bytes with `gfp`.
    #[track_caller]
    pub fn __vmalloc(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        self.__vmalloc_node(size, 1, gfp)
    }

    /// `vmalloc`: `size` bytes of virtually contiguous memory (`GFP_KERNEL`, HighMem pages
    /// allowed), followed by an unmapped guard page.
    ///
    /// # Examples
    /// ```
    /// # let params = kmem::BootParams::simulated(kmem::arch::Arch::X86_64, 64 << 20, 2).unwrap();
    /// # let m = kmem_hosted::boot(&params, kmem_hosted::HostedConfig::deterministic(0, 1)).unwrap();
    /// let v = m.vmalloc(40000).unwrap();
    /// // SAFETY: 40000 bytes were just allocated at `v`.
    /// unsafe { core::ptr::write_bytes(v.as_ptr::<u8>(), 0x5a, 40000) };
    /// assert!(m.is_vmalloc_addr(v));
    /// m.vfree(v);
    /// ```
    #[track_caller]
    pub fn vmalloc(&self, size: usize) -> Option<VirtAddr> {
        self.__vmalloc_node(size, 1, GfpFlags::GFP_KERNEL)
    }

    /// `vmalloc_huge`: [`Machine::vmalloc`] that maps sizes of 2 MiB or more with huge PMD
    /// entries (x86_64; the size is rounded up to 2 MiB), falling back to 4 KiB pages when
    /// no 2 MiB blocks are free.
    #[track_caller]
    pub fn vmalloc_huge(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__vmalloc_node_range(
            size,
            1,
            l.vmalloc_start,
            l.vmalloc_end,
            gfp,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC | VM_ALLOW_HUGE_VMAP,
            Location::caller(),
        )
    }

    /// `vzalloc`: zeroed [`Machine::vmalloc`].
    #[track_caller]
    pub fn vzalloc(&self, size: usize) -> Option<VirtAddr> {
        self.__vmalloc_node(size, 1, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
    }

    /// `vmalloc_user`: zeroed, `SHMLBA`-aligned, `VM_USERMAP` (mappable to user space).
    #[track_caller]
    pub fn vmalloc_user(&self, size: usize) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__vmalloc_node_range(
            size,
            PAGE_SIZE,
            l.vmalloc_start,
            l.vmalloc_end,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC | VM_USERMAP,
            Location::caller(),
        )
    }

    /// `vmalloc_32`: pages addressable with 32 bits (`GFP_VMALLOC32`: `GFP_DMA32` on
    /// x86_64, lowmem `GFP_KERNEL` on i386).
    #[track_caller]
    pub fn vmalloc_32(&self, size: usize) -> Option<VirtAddr> {
        let gfp = match self.arch() {
            Arch::X86_64 => GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
            // 32-bit: GFP_KERNEL, and no HighMem (the DMA32-less case keeps it lowmem).
            Arch::I386 => GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
        };
        self.__vmalloc_node(size, 1, gfp)
    }

    /// `vfree`: releases memory from the vmalloc family (and `vmalloc_huge`). NULL is a no-op;
    /// a pointer that is not the start of a vmalloc area is reported (`Trying to vfree()
    /// nonexistent vm area`) and ignored. The address space is freed lazily.
    #[track_caller]
    pub fn vfree(&self, addr: VirtAddr) {
        if addr.is_null() {
            return;
        }
        self.kmemleak_free(addr.as_ptr::<u8>());
        if addr.page_offset() != 0 {
            self.warn(format_args!(
                "Trying to vfree() bad address ({:#x})",
                self.to_model(addr.as_usize())
            ));
            return;
        }
        let Some(va) = self.remove_vm_area(addr, VM_ALLOC) else {
            self.warn(format_args!(
                "Trying to vfree() nonexistent vm area ({:#x})",
                self.to_model(addr.as_usize())
            ));
            return;
        };
        // SAFETY: `va` was unlinked from the busy tree by remove_vm_area; it is ours.
        let (pages, nr, order) = unsafe { ((*va).pages, (*va).nr_pages, (*va).pages_order) };
        if !pages.is_null() {
            for i in 0..nr {
                // SAFETY: `nr` entries were written at allocation.
                self.__free_page(unsafe { pages.add(i).read() });
            }
            self.mod_node_stat(NodeStat::VmallocPages, -(nr as isize));
            self.free_pages(VirtAddr::from_ptr(pages), Order::new(order));
        }
        self.free_vmap_area_lazy(va);
    }

    /// `remove_vm_area`: unlinks the area starting at `addr` (of a kind in `want`),
    /// unmaps it without a TLB flush and returns it.
    pub(super) fn remove_vm_area(&self, addr: VirtAddr, want: u32) -> Option<*mut VmapArea> {
        if !self.vm().ready.load(Ordering::Acquire) {
            return None;
        }
        let model = self.kva_model(addr.as_usize());
        let va = {
            // Lock order: vmap_area_lock (rank 2); docs/LOCKING.md.
            let mut a = self.vm().areas.lock();
            // SAFETY: the busy tree holds valid objects (lock held).
            let va = unsafe { find_containing(&a.busy_root, model) }?;
            // SAFETY: `va` was found in the busy tree under the areas lock, which we still hold, so
            // it is a live VmapArea.
            let (start, f) = unsafe { ((*va).va_start, (*va).flags) };
            let kind_ok = if want == ANY_VM {
                f & VM_MAP_RAM_AREA == 0
            } else {
                f & want != 0
            };
            let ok = start == model && f & VM_UNINITIALIZED == 0 && kind_ok;
            if !ok {
                return None;
            }
            // SAFETY: `va` is in the busy tree of `a` (found under this same lock hold), so
            // unlinking it is valid.
            unsafe { unlink_busy(&mut a, va) };
            va
        };
        // SAFETY: `va` is ours now.
        let (start, size, guard) = unsafe {
            (
                (*va).va_start,
                va_size(&*va),
                if (*va).flags & VM_NO_GUARD != 0 {
                    0
                } else {
                    PAGE_SIZE as u64
                },
            )
        };
        self.kernel_unmap_range(start, (size - guard) as usize, false);
        Some(va)
    }

    /// `is_vmalloc_addr`: whether `addr` lies in the vmalloc space.
    pub fn is_vmalloc_addr(&self, addr: VirtAddr) -> bool {
        match self.kernel_layout() {
            Some(l) => l.is_vmalloc_addr(self.kva_model(addr.as_usize())),
            None => false,
        }
    }

    /// `vmalloc_to_page`: the page mapped at a vmalloc (or kmap) address, by a page walk.
    pub fn vmalloc_to_page(&self, addr: VirtAddr) -> Option<PagePtr> {
        self.kernel_layout()?;
        let model = self.kva_model(addr.as_usize());
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        let g = self.vm().pgt.lock();
        let t = g.pt.as_ref()?.lookup(self.pt_mem(), model)?;
        drop(g);
        self.pfn_to_page(t.phys.pfn())
    }

    /// The page backing a memmap address (a `struct page`'s own memory): with
    /// SPARSEMEM_VMEMMAP the vmemmap is mapped by the kernel page table, so this is a walk of
    /// it; with a memmap in the direct map, `virt_to_page`. `None` for any other address.
    pub fn vmemmap_to_page(&self, addr: VirtAddr) -> Option<PagePtr> {
        if !self.vmemmap_mapped {
            return self.virt_to_page(addr);
        }
        let base = self.mem_map as usize;
        let off = addr.as_usize().checked_sub(base)?;
        let vbase = self.arch().vmemmap_base()?;
        let model = vbase.checked_add(off as u64)?;
        // Only the memmap's own span (the window covers the platform's largest memory).
        if self.from_model(model) != Some(addr.as_usize()) {
            return None;
        }
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        let g = self.vm().pgt.lock();
        let t = g.pt.as_ref()?.lookup(self.pt_mem(), model)?;
        drop(g);
        self.pfn_to_page(t.phys.pfn())
    }

    /// `vmalloc_to_pfn`.
    pub fn vmalloc_to_pfn(&self, addr: VirtAddr) -> Option<Pfn> {
        self.vmalloc_to_page(addr).map(|p| self.page_to_pfn(p))
    }

    /// `find_vm_area`: the area containing `addr`.
    pub fn find_vm_area(&self, addr: VirtAddr) -> Option<VmInfo> {
        self.kernel_layout()?;
        let model = self.kva_model(addr.as_usize());
        // Lock order: vmap_area_lock (rank 2); docs/LOCKING.md.
        let a = self.vm().areas.lock();
        // SAFETY: busy tree of valid objects under the lock.
        let va = unsafe { find_containing(&a.busy_root, model) }?;
        // SAFETY: `va` was found in the busy tree under the areas lock `a`, held while the
        // reference lives.
        let v = unsafe { &*va };
        if v.flags & VM_UNINITIALIZED != 0 {
            return None;
        }
        Some(VmInfo {
            addr: VirtAddr::new(self.kva_real(v.va_start)),
            model_addr: v.va_start,
            size: va_size(v) as usize,
            requested_size: v.requested_size,
            flags: v.flags,
            nr_pages: v.nr_pages,
        })
    }

    /// `vrealloc`: resizes a vmalloc allocation. `p` NULL allocates; `size` 0 frees and
    /// returns `None`. Shrinking (and growing within the area's pages) keeps the address;
    /// otherwise a new area is allocated, the old contents copied and the old area freed.
    ///
    /// # Errors
    /// `None` (old allocation untouched) if `p` is not a vmalloc area or memory runs out.
    #[track_caller]
    pub fn vrealloc(&self, p: VirtAddr, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        if size == 0 {
            self.vfree(p);
            return None;
        }
        let mut old_size = 0;
        if !p.is_null() {
            let Some(vm) = self.find_vm_area(p).filter(|v| v.addr == p) else {
                self.warn(format_args!(
                    "Trying to vrealloc() nonexistent vm area ({:#x})",
                    self.to_model(p.as_usize())
                ));
                return None;
            };
            let alloced = vm.nr_pages * PAGE_SIZE;
            old_size = vm.requested_size;
            if size <= alloced {
                if size < old_size && gfp.contains(GfpFlags::__GFP_ZERO) {
                    // SAFETY: `[p + size, p + old_size)` is inside the mapped area.
                    unsafe { ptr::write_bytes(p.as_ptr::<u8>().add(size), 0, old_size - size) };
                }
                self.set_requested_size(vm.model_addr, size);
                return Some(p);
            }
        }
        let n = self.__vmalloc_node_range(
            size,
            1,
            self.kernel_layout()?.vmalloc_start,
            self.kernel_layout()?.vmalloc_end,
            gfp,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC,
            Location::caller(),
        )?;
        if !p.is_null() {
            // SAFETY: both areas are mapped for at least `old_size` bytes and distinct.
            unsafe { ptr::copy_nonoverlapping(p.as_ptr::<u8>(), n.as_ptr::<u8>(), old_size) };
            self.vfree(p);
        }
        Some(n)
    }

    fn set_requested_size(&self, model: u64, size: usize) {
        // Lock order: vmap_area_lock (rank 2); docs/LOCKING.md.
        let a = self.vm().areas.lock();
        // SAFETY: busy tree of valid objects under the lock.
        if let Some(va) = unsafe { find_containing(&a.busy_root, model) } {
            // SAFETY: `va` was found in the busy tree under the areas lock, still held, so writing
            // its field races with no one.
            unsafe { (*va).requested_size = size };
        }
    }
}
