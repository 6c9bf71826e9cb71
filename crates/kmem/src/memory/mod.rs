//! User page tables and page faults (mm/memory.c, kernel/fork.c `dup_mmap`, mm/mmap.c
//! `exit_mmap`, arch/x86/mm/fault.c).
//!
//! Each [`MmStruct`] has its own page table in the machine's format (x86_64 4-level, i386
//! 2-level, [`crate::pgtable`]); its table pages come from the page allocator like the
//! kernel's (typed `PGTY_table`, counted in `NR_PAGETABLE`, `PageTables:` in meminfo). Its
//! non-leaf entries carry `_PAGE_TABLE` (user-reachable), its PTEs `_PAGE_USER`.
//!
//! - [`MemoryLayer::handle_mm_fault`]: a fault at a user address, as `do_user_addr_fault` →
//!   `handle_mm_fault` → `handle_pte_fault` take it: no VMA (or a stack that may not grow
//!   there) or an access the VMA forbids is `VM_FAULT_SIGSEGV`; an empty PTE of anonymous
//!   memory maps the shared zero page for a read and a fresh zeroed page for a write
//!   (`do_anonymous_page`); a write to a write-protected present page is `do_wp_page`:
//!   reuse when the page is exclusive (one mapper, one reference), else copy
//!   (`wp_page_copy`). A page that cannot be allocated is `VM_FAULT_OOM`. Every call counts
//!   in `pgfault`.
//! - `copy_page_range` (fork): every present PTE is shared with the child, its page gets a
//!   reference and a mapper (`page_dup_rmap`), and in private writable mappings both PTEs
//!   lose `_PAGE_RW`, so that the first write of either side copies (COW).
//! - zapping (munmap, `MADV_DONTNEED`, exit): PTEs cleared, mappers and references dropped,
//!   pages freed at the last reference; munmap and exit then free the page tables no other
//!   mapping uses (`free_pgtables`: those inside the gap between the neighbouring VMAs),
//!   and `exit_mmap` the root.
//! - `PROT_NONE`: kmem keeps such PTEs present without `_PAGE_USER` (hardware then refuses
//!   user access); Linux uses `_PAGE_PROTNONE` (present bit clear) for NUMA hinting faults,
//!   which kmem does not have.
//!
//! The zero page (`empty_zero_page`) is allocated when the first address space is made and
//! kept for the machine's life, as Linux's is part of the kernel image.
//!
//! User TLBs are not modelled on the hosted platform (each user access walks the table);
//! the flushes PTE changes owe are deferred ([`crate::pgtable::TlbFlush::defer`]).
//!
//! # Locking
//! The caller holds `tasklist_lock` (task layer), standing for `mmap_lock` and the page
//! table lock; page allocation happens under it (as Linux allocates under `mmap_lock`).

mod fault;
mod fork;
mod madvise;
pub mod mempolicy;
/// The movable-ops owners' registry (for page migration).
pub mod movable;
pub mod shmem;
mod swapin;

pub use fault::{FaultFlags, VmFault};
pub use madvise::*;

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::addr::Order;
use crate::arch::Arch;
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::highmem::KmapLayer;
use crate::mm::mm_types::PagePtr;
use crate::page_alloc::PageAllocator;
use crate::pgtable::{PageTable, PtFormat, PteFlags};
use crate::platform::Platform;
use crate::vma::{
    MmCounter, MmStruct, PteOps, VmAreaStruct, VmBacking, VmFlags, MAP_POPULATE, PAGE,
};

/// The memory layer's own state.
pub struct MemState<P: Platform> {
    /// PFN + 1 of the zero page, 0 before the first address space.
    zero_pfn: AtomicUsize,
    /// Swap areas, slots and the swap cache ([`crate::swap`]).
    pub(crate) swap: crate::swap::SwapState<P>,
    /// The LRU lists and reclaim counters ([`crate::vmscan`]); initialised in place by
    /// `TaskLayer::reclaim_init` at boot.
    pub(crate) lru: crate::vmscan::VmscanState<P>,
    /// Shmem objects.
    pub(crate) shmem: shmem::ShmemState<P::RawLock>,
    /// The registered movable-ops owners ([`movable`]).
    pub(crate) movable: movable::MovableOpsTable,
    /// The weighted-interleave weights ([`mempolicy`]).
    pub(crate) il_weights: mempolicy::IlWeights,
}

impl<P: Platform> MemState<P> {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            zero_pfn: AtomicUsize::new(0),
            swap: crate::swap::SwapState::new(),
            lru: crate::vmscan::VmscanState::new(),
            shmem: shmem::ShmemState::new(),
            movable: movable::MovableOpsTable::new(),
            il_weights: mempolicy::IlWeights::new(),
        }
    }
}

impl<P: Platform> Default for MemState<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-memory layer: the highmem layer plus the zero page. Dereferences to the
/// [`KmapLayer`] below it.
pub struct MemoryLayer<P: Platform> {
    pub(crate) km: KmapLayer<P>,
    pub(crate) mem: MemState<P>,
}

impl<P: Platform> core::ops::Deref for MemoryLayer<P> {
    type Target = KmapLayer<P>;
    #[inline]
    fn deref(&self) -> &KmapLayer<P> {
        &self.km
    }
}

impl<P: Platform> MemoryLayer<P> {
    /// The machine's reclaim state: each node's LRU lists and kswapd ([`crate::vmscan`]).
    pub fn vmscan(&self) -> &crate::vmscan::VmscanState<P> {
        &self.mem.lru
    }

    /// Where user page-table pages come from.
    pub(crate) fn pt_mem(&self) -> &PageAllocator<P> {
        &self.km.vm.sl.pa
    }

    /// The zero page (`ZERO_PAGE(0)`), allocated on first use.
    pub fn zero_page(&self) -> Option<PagePtr> {
        let z = self.mem.zero_pfn.load(Ordering::Acquire);
        if z != 0 {
            return self.pfn_to_page(crate::addr::Pfn::new(z as u64 - 1));
        }
        let page = self.alloc_page(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)?;
        let pfn = self.page_to_pfn(page).as_u64() as usize + 1;
        match self
            .mem
            .zero_pfn
            .compare_exchange(0, pfn, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Some(page),
            Err(other) => {
                self.__free_pages(page, Order::new(0));
                self.pfn_to_page(crate::addr::Pfn::new(other as u64 - 1))
            }
        }
    }

    /// Whether a PTE maps the zero page.
    pub fn is_zero_pte(&self, fmt: PtFormat, pte: u64) -> bool {
        let z = self.mem.zero_pfn.load(Ordering::Acquire);
        z != 0 && pte & PteFlags::PRESENT.0 != 0 && {
            let pa = pte & fmt.addr_mask();
            pa >> crate::addr::PAGE_SHIFT == z as u64 - 1
        }
    }

    /// The real address of a user page's bytes (any zone, HighMem included: kmem reaches
    /// every physical page through the platform's mapping, as `kmap_local_page` would).
    pub(crate) fn user_page_bytes(&self, page: PagePtr) -> *mut u8 {
        // SAFETY: the page is RAM of this machine; callers only touch the page they hold.
        unsafe { self.phys_to_real(self.page_to_pfn(page).phys()) }
    }

    /// `mk_pte` with the protection of `vma` (`vm_get_page_prot`): present, user unless the
    /// VMA is inaccessible (PROT_NONE), NX unless executable (x86_64), writable only if
    /// `write` (callers decide: shared writable, or an exclusive anonymous page).
    pub(crate) fn mk_pte(&self, pa: u64, flags: VmFlags, write: bool) -> u64 {
        let mut f = PteFlags::PRESENT.0 | PteFlags::ACCESSED.0;
        if flags.intersects(VmFlags::VM_ACCESS_FLAGS) {
            f |= PteFlags::USER.0;
        }
        if write {
            f |= PteFlags::RW.0 | PteFlags::DIRTY.0;
        }
        if !flags.contains(VmFlags::VM_EXEC) && self.arch() == Arch::X86_64 {
            f |= PteFlags::NX.0;
        }
        pa | f
    }

    /// `mm_pgtables_bytes`: the bytes of `mm`'s page-table pages.
    pub fn pgtables_bytes(&self, mm: &MmStruct) -> u64 {
        mm.pgd.as_ref().map_or(0, |pt| {
            pt.table_pages_below(self.pt_mem(), mm.task_size) as u64 * PAGE
        })
    }

    /// `mm_alloc` + `mm_init` + `pgd_alloc`: a new empty address space in a kmalloc block
    /// (it must not move: its VMAs point at it).
    ///
    /// # Errors
    /// `ENOMEM`.
    pub fn mm_alloc(&self) -> Result<core::ptr::NonNull<MmStruct>, Errno> {
        self.zero_page().ok_or(Errno::ENOMEM)?;
        let ka = self.kalloc();
        let pt = PageTable::new(self.pt_mem(), self.arch()).map_err(|_| Errno::ENOMEM)?;
        let mut mm = MmStruct::new(ka, self.arch());
        mm.pgd = Some(pt);
        // `new_box` drops the value when it fails, so take the table out first.
        let pgd = mm.pgd.take();
        match ka.new_box(mm) {
            Some(mut p) => {
                // SAFETY: just made, ours alone.
                unsafe { p.as_mut().pgd = pgd };
                Ok(p)
            }
            None => {
                if let Some(pt) = pgd {
                    pt.destroy(self.pt_mem());
                }
                Err(Errno::ENOMEM)
            }
        }
    }

    /// `setup_arg_pages`: the initial stack VMA, `[stack]`, at the top of the space.
    ///
    /// # Errors
    /// `ENOMEM`.
    pub fn setup_stack(&self, mm: &mut MmStruct) -> Result<(), Errno> {
        let end = mm.task_size;
        let start = end - crate::vma::INITIAL_STACK;
        let v = VmAreaStruct {
            vm_start: start,
            vm_end: end,
            vm_flags: VmFlags::VM_STACK_FLAGS | VmFlags::VM_SOFTDIRTY,
            vm_pgoff: start / PAGE,
            backing: VmBacking::Anon,
            anon_vma: None,
            avc: None,
            vm_mm: 0,
            i_mmap: None,
            shared: crate::vma::IMmapLink::NONE,
            vm_policy: None,
        };
        mm.insert_vma(v)?;
        mm.start_stack = end - PAGE;
        Ok(())
    }

    /// `exit_mmap` + `mmdrop`: unmaps everything, frees the page tables and the mm.
    ///
    /// # Safety
    /// `mm` must come from [`Self::mm_alloc`] and not be used afterwards.
    pub unsafe fn mmput(&self, mm: core::ptr::NonNull<MmStruct>) {
        // SAFETY: by the caller's guarantee we own the mm.
        let m = unsafe { &mut *mm.as_ptr() };
        self.exit_mmap(m);
        let ka = m.kalloc();
        // SAFETY: `mm` came from `mm_alloc` (that is, `new_box` on this machine's kmalloc, which
        // `ka` is a copy of), and neither `mm` nor `m` is used after this free.
        unsafe { ka.free_box(mm) };
    }

    /// `exit_mmap`: every VMA zapped and removed, then the page table freed.
    pub fn exit_mmap(&self, mm: &mut MmStruct) {
        let top = mm.task_size;
        mm.remove_range(self, 0, top);
        if let Some(pt) = mm.pgd.take() {
            pt.destroy_below(self.pt_mem(), top);
        }
    }

    /// `mmap` on an address space: [`MmStruct::do_mmap`], then `MAP_POPULATE` faults every
    /// page in (write faults for writable private mappings, as `populate_vma_page_range`).
    ///
    /// # Errors
    /// As `do_mmap`.
    #[allow(clippy::too_many_arguments)]
    pub fn mm_mmap(
        &self,
        mm: &mut MmStruct,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        backing: VmBacking,
        pgoff: u64,
    ) -> Result<u64, Errno> {
        let mut backing = backing;
        let mut pgoff = pgoff;
        let mut made = None;
        if backing == VmBacking::Anon && flags & crate::vma::MAP_TYPE != crate::vma::MAP_PRIVATE {
            // shmem_zero_setup: shared anonymous memory is a shmem object of its own.
            if len == 0 || flags & crate::vma::MAP_TYPE > crate::vma::MAP_SHARED_VALIDATE {
                return Err(Errno::EINVAL);
            }
            let size = crate::vma::page_align(len).ok_or(Errno::ENOMEM)?;
            let ino = self.shmem_create(shmem::ShmKind::DevZero, "dev/zero", size)?;
            backing = VmBacking::Shmem(ino);
            pgoff = 0;
            made = Some(ino);
        }
        let a = match mm.do_mmap(self, addr, len, prot, flags, backing, pgoff) {
            Ok(a) => a,
            Err(e) => {
                if made.is_some() {
                    // Nothing maps or names it: drop it at once.
                    self.shmem_collect(|_| false);
                }
                return Err(e);
            }
        };
        if flags & MAP_POPULATE != 0 {
            let write = prot & crate::vma::PROT_WRITE != 0;
            let end = a + crate::vma::page_align(len).unwrap_or(0);
            let mut va = a;
            while va < end {
                let f = FaultFlags {
                    write,
                    exec: false,
                    user: true,
                };
                if !matches!(self.handle_mm_fault(mm, va, f), VmFault::Done) {
                    break;
                }
                va += PAGE;
            }
        }
        Ok(a)
    }

    /// Drops what a present or swap PTE holds (`zap_pte_range` for one entry); returns the
    /// RSS counter it counted in.
    fn zap_one(&self, fmt: PtFormat, pte: u64) -> Option<MmCounter> {
        if pte & PteFlags::PRESENT.0 == 0 {
            // A swap entry: its slot count drops (`free_swap_and_cache`).
            self.zap_swap_pte(&self.mem.swap, &self.mem.lru, pte);
            return Some(MmCounter::SwapEnts);
        }
        if self.is_zero_pte(fmt, pte) {
            return None;
        }
        let page = self.pte_page(fmt, pte)?;
        let c = if self.page_is_anon(page) {
            MmCounter::AnonPages
        } else {
            MmCounter::ShmemPages
        };
        // page_remove_rmap, free_swap_cache, folio_put (off the LRU at the last reference).
        self.zap_anon_page(&self.mem.swap, &self.mem.lru, page);
        Some(c)
    }
}

impl<P: Platform> PteOps for MemoryLayer<P> {
    fn zap(&self, mm: &mut MmStruct, _vma: &VmAreaStruct, start: u64, end: u64) {
        let Some(mut pt) = mm.pgd.take() else { return };
        let fmt = pt.format();
        let mut delta = [0i64; 4];
        let flush = pt.pte_update_range(self.pt_mem(), start, end, |_, pte| {
            if let Some(c) = self.zap_one(fmt, pte) {
                delta[c as usize] -= 1;
            }
            0
        });
        let _ = flush.defer();
        mm.pgd = Some(pt);
        for (i, d) in delta.iter().enumerate() {
            mm.rss_stat[i] += d;
        }
    }

    fn change_protection(&self, mm: &mut MmStruct, vma: &VmAreaStruct, start: u64, end: u64) {
        let Some(mut pt) = mm.pgd.take() else { return };
        let fmt = pt.format();
        let flags = vma.vm_flags;
        let shared_write = flags.contains(VmFlags::VM_WRITE) && flags.contains(VmFlags::VM_SHARED);
        let flush = pt.pte_update_range(self.pt_mem(), start, end, |_, pte| {
            if pte & PteFlags::PRESENT.0 == 0 {
                return pte;
            }
            let keep = pte & (PteFlags::ACCESSED.0 | PteFlags::DIRTY.0);
            // Private memory stays write-protected: the next write fault reuses or copies.
            (self.mk_pte(pte & fmt.addr_mask(), flags, shared_write)
                & !(PteFlags::ACCESSED.0 | PteFlags::DIRTY.0))
                | keep
        });
        let _ = flush.defer();
        mm.pgd = Some(pt);
    }

    fn free_pgtables(&self, mm: &mut MmStruct, start: u64, end: u64, floor: u64, ceiling: u64) {
        if let Some(pt) = mm.pgd.as_mut() {
            // Only user tables: a range ends at TASK_SIZE at most, so the kernel's slots a
            // user table may carry (bare metal) are never reached.
            pt.free_pgd_range(
                self.pt_mem(),
                start,
                end.min(mm.task_size),
                (floor, ceiling),
            );
        }
    }

    fn i_mmap(&self, ino: u64) -> Option<core::ptr::NonNull<crate::vma::IMmap>> {
        self.shmem_i_mmap(ino)
    }

    fn move_ptes(&self, mm: &mut MmStruct, old: u64, new: u64, len: u64) -> Result<(), Errno> {
        let Some(pt) = mm.pgd.as_mut() else {
            return Ok(());
        };
        let mem = &self.km.vm.sl.pa;
        let mut off = 0;
        while off < len {
            let e = pt.pte_get(mem, old + off);
            if e != 0 {
                pt.pte_set(mem, new + off, e).map_err(|_| Errno::ENOMEM)?;
                let _ = pt.pte_set(mem, old + off, 0);
            }
            off += PAGE;
        }
        Ok(())
    }
}
