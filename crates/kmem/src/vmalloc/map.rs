//! The kernel page tables (arch/x86/mm/init.c, mm/vmalloc.c `vmap_range_noflush`,
//! `vunmap_range`): the direct map built at boot (`init_memory_mapping`), mapping and unmapping
//! runs of pages in the kernel page table and mirroring them in the platform's window, the
//! translation between model and real kernel virtual addresses, and the TLB model's API.

#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::locking::LockGuard;
use crate::mm::mm_types::PagePtr;
use crate::pgtable::{PageSize, PageTable, PtError, PteFlags, Tlb, TlbStats};
use crate::platform::Platform;

use super::table_pool::{TablePool, TABLES_PER_MAP};
use super::{KernelPgt, VmLayer};

impl<P: Platform> VmLayer<P> {
    /// The direct map as `init_mem_mapping` builds it (arch/x86/mm/init.c): the first MiB
    /// (`ISA_END_ADDRESS`) in 4 KiB pages, then every RAM range above it up to the end of
    /// lowmem, split as `split_mem_range` does — 4 KiB pages up to the first huge-page
    /// boundary, huge pages (2 MiB, or 4 MiB on i386 without PAE; QEMU's default CPU has no
    /// 1 GiB pages), 4 KiB pages for the tail. Calls `f(phys, huge)` for every page.
    pub(crate) fn for_each_direct_map_page(
        &self,
        mut f: impl FnMut(u64, bool) -> Result<(), PtError>,
    ) -> Result<(), PtError> {
        const ISA_END_ADDRESS: u64 = 0x10_0000;
        let huge = crate::pgtable::PtFormat::new(self.arch()).page_bytes(PageSize::Huge);
        let low = self.lowmem_end().as_u64();
        let page = PAGE_SIZE as u64;
        let e820 = *self.e820();
        let ram = e820
            .entries()
            .iter()
            .filter(|e| e.kind == crate::arch::E820Type::Ram && e.end() > ISA_END_ADDRESS)
            .map(|e| {
                let s = e.addr.as_u64().max(ISA_END_ADDRESS).div_ceil(page) * page;
                (s, e.end().min(low) & !(page - 1))
            });
        for (s, t) in core::iter::once((0, ISA_END_ADDRESS.min(low))).chain(ram) {
            let mut a = s;
            while a < t {
                let is_huge = s != 0 && a & (huge - 1) == 0 && a + huge <= t;
                f(a, is_huge)?;
                a += if is_huge { huge } else { page };
            }
        }
        Ok(())
    }

    /// `direct_pages_count[]`: pages of the direct map by size (4 KiB, huge), for
    /// /proc/meminfo's `DirectMap4k`/`DirectMap2M` (`DirectMap4M` on i386).
    pub(crate) fn direct_pages_count(&self) -> [usize; 2] {
        let mut n = [0; 2];
        let _ = self.for_each_direct_map_page(|_, huge| {
            n[usize::from(huge)] += 1;
            Ok(())
        });
        n
    }

    /// Maps the direct map planned by [`Self::for_each_direct_map_page`] in `pt`.
    pub(super) fn map_direct_map(&self, pt: &mut PageTable) -> Result<(), PtError> {
        let po = self.arch().page_offset();
        self.for_each_direct_map_page(|a, huge| {
            let (size, flags) = if huge {
                (PageSize::Huge, PteFlags::PAGE_KERNEL_LARGE)
            } else {
                (PageSize::Small, PteFlags::PAGE_KERNEL)
            };
            match pt.map(self.pt_mem(), po + a, PhysAddr::new(a), size, flags) {
                Ok(()) | Err(PtError::AlreadyMapped) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// `vmemmap_populate_hugepages` for the boot sections (mm/sparse-vmemmap.c): each valid
    /// section's 2 MiB of memmap as one PMD at `vmemmap + section_nr × 2 MiB`, backed by the
    /// boot memmap block in section order (the platform already mirrors them; this enters
    /// them in the kernel page table). Nothing for FLATMEM or a memmap kept in the direct map.
    pub(super) fn map_vmemmap(&self, pt: &mut PageTable) -> Result<(), PtError> {
        use crate::sparse::{SECTION_HAS_MEM_MAP, SECTION_MEMMAP_BYTES};
        let (Some(base), true) = (self.arch().vmemmap_base(), self.vmemmap_mapped) else {
            return Ok(());
        };
        let t = self.sections();
        let nr_end = crate::sparse::pfn_to_section_nr(crate::addr::Pfn::new(
            self.max_pfn()
                .as_u64()
                .next_multiple_of(crate::sparse::PAGES_PER_SECTION),
        ));
        let mut pa = self.memmap_phys.0;
        for nr in 0..nr_end {
            if t.section(nr)
                .is_none_or(|s| s.flags() & SECTION_HAS_MEM_MAP == 0)
            {
                continue;
            }
            let va = base + (nr * SECTION_MEMMAP_BYTES) as u64;
            pt.map(
                self.pt_mem(),
                va,
                PhysAddr::new(pa),
                PageSize::Huge,
                PteFlags::PAGE_KERNEL_LARGE,
            )?;
            pa += SECTION_MEMMAP_BYTES as u64;
        }
        Ok(())
    }

    /// `vmemmap_populate` of one hot-added section: maps its 2 MiB of memmap at physical
    /// `pa` (PMD aligned) as a PMD in the kernel page table and in the platform's window.
    pub(crate) fn map_vmemmap_section(&self, nr: usize, pa: PhysAddr) -> bool {
        use crate::sparse::SECTION_MEMMAP_BYTES;
        let Some(base) = self.arch().vmemmap_base() else {
            return false;
        };
        let off = nr * SECTION_MEMMAP_BYTES;
        let real = self.mem_map.cast::<u8>().wrapping_add(off);
        if !self.platform().map_vmemmap(real, pa, SECTION_MEMMAP_BYTES) {
            return false;
        }
        // Lock order: init_mm.page_table_lock (rank 5) under mem_hotplug_lock; LOCKING.md.
        let mut g = self.vm().pgt.lock();
        let Some(pt) = g.pt.as_mut() else {
            return false;
        };
        let va = base + off as u64;
        let ok = pt
            .map(
                self.pt_mem(),
                va,
                pa,
                PageSize::Huge,
                PteFlags::PAGE_KERNEL_LARGE,
            )
            .is_ok();
        drop(g);
        if !ok {
            self.platform().unmap_vmemmap(real, SECTION_MEMMAP_BYTES);
        }
        ok
    }

    /// `vmemmap_free` of one section: removes its PMD from the kernel page table and the
    /// platform's window and returns the physical address that backed it.
    pub(crate) fn unmap_vmemmap_section(&self, nr: usize) -> Option<PhysAddr> {
        use crate::sparse::SECTION_MEMMAP_BYTES;
        let base = self.arch().vmemmap_base()?;
        let off = nr * SECTION_MEMMAP_BYTES;
        let va = base + off as u64;
        // Lock order: init_mm.page_table_lock (rank 5) under mem_hotplug_lock; LOCKING.md.
        let mut g = self.vm().pgt.lock();
        let g = &mut *g;
        let pt = g.pt.as_mut()?;
        let (t, flush) = pt.unmap(self.pt_mem(), va).ok()?;
        let _ = flush.flush(&mut g.tlb);
        let pa = t.phys;
        self.platform().unmap_vmemmap(
            self.mem_map.cast::<u8>().wrapping_add(off),
            SECTION_MEMMAP_BYTES,
        );
        Some(pa)
    }

    /// The model address of a kernel virtual (real) address in the window.
    pub(super) fn kva_model(&self, real: usize) -> u64 {
        let w = self.vm().window.load(Ordering::Relaxed);
        if w == 0 {
            return real as u64;
        }
        let (s, e) = self.layout_unchecked().window();
        match real.checked_sub(w) {
            Some(off) if (off as u64) < e - s => s + off as u64,
            _ => u64::MAX,
        }
    }

    /// The real address of a kernel virtual (model) address in the window.
    pub(crate) fn kernel_real(&self, model: u64) -> usize {
        self.kva_real(model)
    }

    /// The real address of a model address in the window.
    pub(super) fn kva_real(&self, model: u64) -> usize {
        let w = self.vm().window.load(Ordering::Relaxed);
        if w == 0 {
            return model as usize;
        }
        let (s, _) = self.layout_unchecked().window();
        w + (model - s) as usize
    }

    /// Maps one run of pages at model address `va` in the kernel page table and mirrors it.
    /// Returns false (with nothing left mapped) on failure.
    pub(crate) fn kernel_map_pages(&self, va: u64, pages: &[PagePtr], prot: PteFlags) -> bool {
        self.kernel_map(va, pages, prot, false)
    }

    /// Maps `pages` at `va`; with `huge`, each run of `PTRS_PER_PMD` pages (physically
    /// contiguous, `va` PMD-aligned) is one huge PMD entry (`vmap_pmd_range`).
    pub(super) fn kernel_map(
        &self,
        va: u64,
        pages: &[PagePtr],
        prot: PteFlags,
        huge: bool,
    ) -> bool {
        // Declared before the guard, so dropped after it: tables go back with no lock held.
        let pool = TablePool::new(self.pt_mem());
        // Lock order: init_mm.page_table_lock (rank 5), no allocation under it (TablePool);
        // docs/LOCKING.md.
        let mut g = self.vm().pgt.lock();
        let Some(pt) = g.pt.as_mut() else {
            return false;
        };
        let (step, size) = if huge {
            let bytes = pt.format().page_bytes(PageSize::Huge) as usize;
            (bytes / PAGE_SIZE, PageSize::Huge)
        } else {
            (1, PageSize::Small)
        };
        let mut ok = true;
        let mut mapped = 0;
        'chunks: for (i, chunk) in pages.chunks(step).enumerate() {
            let at = va + (i * step * PAGE_SIZE) as u64;
            let pa = self.page_to_pfn(chunk[0]).phys();
            let r = if chunk.len() == step {
                let r;
                (g, r) = self.map_locked(g, &pool, at, pa, size, prot);
                r
            } else {
                Err(PtError::Misaligned)
            };
            if r.is_err() {
                if !huge {
                    ok = false;
                    break;
                }
                // `vmap_try_huge_pmd` failed: map this chunk with PTEs instead.
                for (j, &p) in chunk.iter().enumerate() {
                    let pa = self.page_to_pfn(p).phys();
                    let a = at + (j * PAGE_SIZE) as u64;
                    let r;
                    (g, r) = self.map_locked(g, &pool, a, pa, PageSize::Small, prot);
                    if r.is_err() {
                        ok = false;
                        break 'chunks;
                    }
                    mapped += 1;
                }
                continue;
            }
            mapped += step;
        }
        if ok && self.vm().window.load(Ordering::Relaxed) != 0 {
            ok = self.mirror_pages(va, pages, prot);
        }
        if !ok {
            let end = va + (mapped * PAGE_SIZE) as u64;
            let kg = &mut *g;
            if let Some(Ok(f)) = kg.pt.as_mut().map(|pt| pt.unmap_range(&pool, va, end)) {
                let (s, e) = f.flush(&mut kg.tlb);
                self.platform().flush_tlb_kernel_range(s, e);
            }
            drop(g);
            self.kernel_unmirror(va, pages.len() * PAGE_SIZE);
        }
        ok
    }

    /// One `PageTable::map` under `init_mm.page_table_lock` (held by `g`), with table pages
    /// from `pool`; when the pool runs dry (or has no room for a table given back), drops
    /// the lock, refills the pool and retries (`__pte_alloc_kernel`'s order). Returns the
    /// guard (retaken if it was dropped) and the result.
    fn map_locked<'g>(
        &'g self,
        mut g: LockGuard<'g, P::RawLock, KernelPgt>,
        pool: &TablePool<'_, P>,
        va: u64,
        pa: PhysAddr,
        size: PageSize,
        prot: PteFlags,
    ) -> (LockGuard<'g, P::RawLock, KernelPgt>, Result<(), PtError>) {
        // Each refill gives the page table one more of the tables a `map` may need.
        for _ in 0..=TABLES_PER_MAP {
            if pool.freed_full() {
                drop(g);
                pool.refill();
                // Lock order: init_mm.page_table_lock (rank 5), retaken after the refill (also
                // below); docs/LOCKING.md.
                g = self.vm().pgt.lock();
            }
            let Some(pt) = g.pt.as_mut() else {
                return (g, Err(PtError::NoMemory));
            };
            match pt.map(pool, va, pa, size, prot) {
                Err(PtError::NoMemory) if pool.is_dry() => {
                    drop(g);
                    let refilled = pool.refill();
                    // Lock order: init_mm.page_table_lock (rank 5), retaken after the refill;
                    // docs/LOCKING.md.
                    g = self.vm().pgt.lock();
                    if !refilled {
                        return (g, Err(PtError::NoMemory));
                    }
                }
                r => return (g, r),
            }
        }
        (g, Err(PtError::NoMemory))
    }

    /// Mirrors `pages` at `va` in the platform's window, one call per physically contiguous
    /// run. Returns `false` if the platform refused one.
    fn mirror_pages(&self, va: u64, pages: &[PagePtr], prot: PteFlags) -> bool {
        let writable = prot.contains(PteFlags::RW);
        let mut i = 0;
        while i < pages.len() {
            let first = self.page_to_pfn(pages[i]);
            let mut j = i + 1;
            while j < pages.len() && self.page_to_pfn(pages[j]) == first + (j - i) as u64 {
                j += 1;
            }
            let real = self.kva_real(va + (i * PAGE_SIZE) as u64);
            if !self.platform().map_kernel_range(
                real as *mut u8,
                first.phys(),
                (j - i) * PAGE_SIZE,
                writable,
            ) {
                return false;
            }
            i = j;
        }
        true
    }

    fn kernel_unmirror(&self, va: u64, len: usize) {
        if self.vm().window.load(Ordering::Relaxed) != 0 && len > 0 {
            self.platform()
                .unmap_kernel_range(self.kva_real(va) as *mut u8, len);
        }
    }

    /// Unmaps `[va, va + len)` from the kernel page table and the mirror. With `flush`, the
    /// TLB is flushed now; otherwise the caller owes the flush (lazy purge).
    pub(crate) fn kernel_unmap_range(&self, va: u64, len: usize, flush: bool) {
        {
            // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
            let mut g = self.vm().pgt.lock();
            let g = &mut *g;
            if let Some(pt) = g.pt.as_mut() {
                if let Ok(f) = pt.unmap_range(self.pt_mem(), va, va + len as u64) {
                    if flush {
                        let (s, e) = f.flush(&mut g.tlb);
                        self.platform().flush_tlb_kernel_range(s, e);
                    } else {
                        // Owed: the purge flushes the union of the lazy areas.
                        let _ = f.defer();
                    }
                }
            }
        }
        self.kernel_unmirror(va, len);
    }

    /// The TLB model's counters.
    pub fn tlb_stats(&self) -> TlbStats {
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        self.vm().pgt.lock().tlb.stats()
    }

    /// `flush_tlb_kernel_range` on the TLB model and the platform.
    pub fn flush_tlb_kernel_range(&self, start: u64, end: u64) {
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        let (s, e) =
            crate::pgtable::TlbFlush::range(start, end).flush(&mut self.vm().pgt.lock().tlb);
        self.platform().flush_tlb_kernel_range(s, e);
    }

    /// `flush_tlb_all` on the TLB model and the platform.
    pub fn flush_tlb_all(&self) {
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        self.vm().pgt.lock().tlb.flush_all();
        self.platform().flush_tlb_kernel_range(0, u64::MAX);
    }

    /// The physical address of the kernel's top-level page table (what CR3 would hold).
    pub fn kernel_pgd(&self) -> Option<PhysAddr> {
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        self.vm().pgt.lock().pt.as_ref().map(|p| p.root())
    }

    /// Runs `f` with the kernel page table and the TLB model (for tests and the bare-metal
    /// kernel's self-tests).
    pub fn with_kernel_page_table<R>(
        &self,
        f: impl FnOnce(&mut PageTable, &mut Tlb) -> R,
    ) -> Option<R> {
        // Lock order: init_mm.page_table_lock (rank 5), the caller's closure under it (V4);
        // docs/LOCKING.md.
        let mut g = self.vm().pgt.lock();
        let g = &mut *g;
        let pt = g.pt.as_mut()?;
        Some(f(pt, &mut g.tlb))
    }

    /// The model address of a kernel pointer (vmalloc, kmap, or direct map) for display.
    pub fn kva_to_model(&self, addr: VirtAddr) -> u64 {
        if self.kernel_layout().is_some() {
            let m = self.kva_model(addr.as_usize());
            if m != u64::MAX {
                return m;
            }
        }
        self.to_model(addr.as_usize())
    }
}
