//! `handle_mm_fault` for anonymous memory (mm/memory.c), with the x86 checks of
//! `do_user_addr_fault` (arch/x86/mm/fault.c) in front.

use crate::gfp::GfpFlags;
use crate::mm::VmEvent;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::vma::anon_vma::anon_vma_prepare;
use crate::vma::{
    MmCounter, MmStruct, VmAreaStruct, VmBacking, VmFlags, PAGE, STACK_GUARD_GAP, STK_LIM,
};

use super::MemoryLayer;

/// What kind of access faulted (the page-fault error code's `X86_PF_WRITE`,
/// `X86_PF_INSTR`, `X86_PF_USER`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultFlags {
    /// A write.
    pub write: bool,
    /// An instruction fetch.
    pub exec: bool,
    /// From user mode.
    pub user: bool,
}

/// The outcome of a fault (`vm_fault_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFault {
    /// Handled: retry the access.
    Done,
    /// `VM_FAULT_SIGSEGV` from `bad_area`: no mapping there (`SEGV_MAPERR`) …
    SegvMapErr,
    /// … or the mapping forbids the access (`SEGV_ACCERR`, `access_error`).
    SegvAccErr,
    /// `VM_FAULT_OOM`: no page could be allocated.
    Oom,
    /// `VM_FAULT_SIGBUS`: the backing has no page there (beyond a shmem object's end, or a
    /// swap entry without a swap layer to read it).
    Sigbus,
}

impl<P: Platform> MemoryLayer<P> {
    /// `handle_mm_fault` behind `do_user_addr_fault`: finds the VMA (growing a stack down
    /// to `addr` if needed), checks the access, and resolves the PTE. Counts `pgfault`.
    pub fn handle_mm_fault(&self, mm: &mut MmStruct, addr: u64, f: FaultFlags) -> VmFault {
        self.count_vm_events(VmEvent::PgFault, 1);
        let Some(v) = mm.find_vma(addr) else {
            return VmFault::SegvMapErr;
        };
        let mut start = v.vm_start;
        if start > addr {
            if !v.vm_flags.contains(VmFlags::VM_GROWSDOWN) || !self.expand_stack(mm, start, addr) {
                return VmFault::SegvMapErr;
            }
            start = addr & !(PAGE - 1);
        }
        let Some(v) = mm.vma_lookup(start) else {
            return VmFault::SegvMapErr;
        };
        // access_error
        let fl = v.vm_flags;
        if f.write && !fl.contains(VmFlags::VM_WRITE) {
            return VmFault::SegvAccErr;
        }
        if f.exec && !fl.contains(VmFlags::VM_EXEC) {
            return VmFault::SegvAccErr;
        }
        if !fl.intersects(VmFlags::VM_ACCESS_FLAGS) {
            return VmFault::SegvAccErr;
        }
        self.handle_pte_fault(mm, addr & !(PAGE - 1), f.write)
    }

    /// `expand_downwards`: grows the stack VMA starting at `start` down to `addr`, within
    /// `RLIMIT_STACK` and keeping `stack_guard_gap` above the mapping below.
    fn expand_stack(&self, mm: &mut MmStruct, start: u64, addr: u64) -> bool {
        let new_start = addr & !(PAGE - 1);
        let Some(v) = mm.vma_lookup(start) else {
            return false;
        };
        if v.vm_end - new_start > STK_LIM || new_start < crate::vma::MMAP_MIN_ADDR {
            return false;
        }
        if let Some(prev) = mm.find_vma_before(new_start + 1) {
            if prev.vm_end > new_start
                || (!prev.vm_flags.contains(VmFlags::VM_GROWSDOWN)
                    && prev.vm_flags.intersects(VmFlags::VM_ACCESS_FLAGS)
                    && new_start - prev.vm_end < STACK_GUARD_GAP)
            {
                return false;
            }
        }
        let end = v.vm_end;
        mm.set_vma_range(start, new_start, end).is_ok()
    }

    fn handle_pte_fault(&self, mm: &mut MmStruct, addr: u64, write: bool) -> VmFault {
        let Some(pt) = mm.pgd.as_ref() else {
            return VmFault::Sigbus;
        };
        let pte = pt.pte_get(self.pt_mem(), addr);
        if pte == 0 {
            if let Some(VmBacking::Shmem(ino)) = mm.vma_lookup(addr).map(|v| v.backing) {
                return self.do_shmem_fault(mm, addr, write, ino);
            }
            return self.do_anonymous_page(mm, addr, write);
        }
        if pte & PteFlags::PRESENT.0 == 0 {
            // do_swap_page: a swap entry; the page comes back from the swap cache or swap.
            return self.do_swap_page(&self.mem.swap, &self.mem.lru, mm, addr, pte, write);
        }
        if write && pte & PteFlags::RW.0 == 0 {
            return self.do_wp_page(mm, addr, pte);
        }
        // Spurious (another path fixed it) or an access-bit update.
        let mut n = pte | PteFlags::ACCESSED.0;
        if write {
            n |= PteFlags::DIRTY.0;
        }
        if let Some(pt) = mm.pgd.as_mut() {
            let _ = pt.pte_set(self.pt_mem(), addr, n);
        }
        VmFault::Done
    }

    /// A fresh zeroed user page for `addr` of `vma` (`vma_alloc_zeroed_movable_folio`),
    /// placed by the memory policy there ([`super::mempolicy`]).
    fn alloc_user_page(
        &self,
        mm: &MmStruct,
        vma: &VmAreaStruct,
        addr: u64,
    ) -> Option<crate::mm::mm_types::PagePtr> {
        let (pol, ilx) = super::mempolicy::get_vma_policy(mm, vma, addr);
        let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_NOWARN;
        let page = self.alloc_pages_mpol(gfp, crate::addr::Order::ZERO, pol.as_ref(), ilx)?;
        // SAFETY: a fresh page of ours; PAGE_SIZE bytes at its real address.
        unsafe { core::ptr::write_bytes(self.user_page_bytes(page), 0, PAGE as usize) };
        Some(page)
    }

    /// `do_anonymous_page`.
    fn do_anonymous_page(&self, mm: &mut MmStruct, addr: u64, write: bool) -> VmFault {
        let Some(vp) = mm.vma_ptr(addr) else {
            return VmFault::SegvMapErr;
        };
        let ka = mm.kalloc();
        // SAFETY: a live VMA of `mm`, which we hold exclusively; nothing below changes the
        // tree while this reference is used.
        let vma = unsafe { &mut *vp.as_ptr() };
        let flags = vma.vm_flags;
        if !write && !matches!(vma.backing, VmBacking::Shmem(_)) {
            let Some(z) = self.zero_page() else {
                return VmFault::Oom;
            };
            let pa = self.page_to_pfn(z).phys().as_u64();
            let pte = self.mk_pte(pa, flags, false);
            return match mm
                .pgd
                .as_mut()
                .map(|pt| pt.pte_set(self.pt_mem(), addr, pte))
            {
                Some(Ok(_)) => VmFault::Done,
                _ => VmFault::Oom,
            };
        }
        let Ok(av) = anon_vma_prepare(&ka, vma, vp) else {
            return VmFault::Oom;
        };
        let index = vma.linear_page_index(addr);
        let Some(page) = self.alloc_user_page(mm, vma, addr) else {
            return VmFault::Oom;
        };
        let pa = self.page_to_pfn(page).phys().as_u64();
        let pte = self.mk_pte(pa, flags, flags.contains(VmFlags::VM_WRITE));
        match mm
            .pgd
            .as_mut()
            .map(|pt| pt.pte_set(self.pt_mem(), addr, pte))
        {
            Some(Ok(_)) => {}
            _ => {
                self.put_user_page(page);
                return VmFault::Oom;
            }
        }
        self.page_add_new_anon_rmap(page, av, index);
        self.lru_add_anon(&self.mem.lru, page);
        mm.add_counter(MmCounter::AnonPages, 1);
        VmFault::Done
    }

    /// `do_read_fault` / `do_shared_fault` / `do_cow_fault` on a shmem object: the cache
    /// page at the VMA's offset is mapped (writable if the mapping is shared and writable),
    /// or, for a write to a private mapping, copied into a fresh anonymous page.
    fn do_shmem_fault(&self, mm: &mut MmStruct, addr: u64, write: bool, ino: u64) -> VmFault {
        let Some(v) = mm.vma_lookup(addr) else {
            return VmFault::SegvMapErr;
        };
        let flags = v.vm_flags;
        let pgoff = v.linear_page_index(addr);
        let page = match self.shmem_get_page(ino, pgoff) {
            Ok(p) => p,
            Err(crate::errno::Errno::ENOMEM) => return VmFault::Oom,
            Err(_) => return VmFault::Sigbus,
        };
        let shared = flags.contains(VmFlags::VM_SHARED);
        if write && !shared {
            // do_cow_fault: map the cache page first, then let do_wp_page copy it.
            let pa = self.page_to_pfn(page).phys().as_u64();
            let pte = self.mk_pte(pa, flags, false);
            if !matches!(
                mm.pgd
                    .as_mut()
                    .map(|pt| pt.pte_set(self.pt_mem(), addr, pte)),
                Some(Ok(_))
            ) {
                return VmFault::Oom;
            }
            self.get_page(page);
            self.page_add_file_rmap(page);
            mm.add_counter(MmCounter::ShmemPages, 1);
            return self.do_wp_page(mm, addr, pte);
        }
        let pa = self.page_to_pfn(page).phys().as_u64();
        let pte = self.mk_pte(pa, flags, shared && flags.contains(VmFlags::VM_WRITE));
        if !matches!(
            mm.pgd
                .as_mut()
                .map(|pt| pt.pte_set(self.pt_mem(), addr, pte)),
            Some(Ok(_))
        ) {
            return VmFault::Oom;
        }
        self.get_page(page);
        self.page_add_file_rmap(page);
        mm.add_counter(MmCounter::ShmemPages, 1);
        VmFault::Done
    }

    /// `do_wp_page`: a write to a present, write-protected page.
    fn do_wp_page(&self, mm: &mut MmStruct, addr: u64, pte: u64) -> VmFault {
        let Some(vp) = mm.vma_ptr(addr) else {
            return VmFault::SegvMapErr;
        };
        let ka = mm.kalloc();
        // SAFETY: `vp` is a live VMA of `mm`, which we hold exclusively (`&mut MmStruct`), and
        // nothing below changes the VMA tree while `vma` is used; the VMA is a separate allocation
        // from `mm`, so the two `&mut` do not overlap.
        let vma = unsafe { &mut *vp.as_ptr() };
        let flags = vma.vm_flags;
        let Some(fmt) = mm.pgd.as_ref().map(|p| p.format()) else {
            return VmFault::Sigbus;
        };
        let zero = self.is_zero_pte(fmt, pte);
        let old = if zero { None } else { self.pte_page(fmt, pte) };
        if let Some(page) = old {
            let shared = flags.contains(VmFlags::VM_SHARED);
            // A swap-cache copy no other PTE names is stale once written: drop it, so the
            // page is exclusive again (`folio_free_swap` in `wp_can_reuse_anon_folio`).
            if page.mapcount() == 1 && page.refcount() == 2 {
                self.mem.swap.free_swap_cache(&self.km.vm, page);
            }
            // wp_can_reuse_anon_folio: exclusive = one mapper and our one reference.
            if shared || (self.page_is_anon(page) && page.mapcount() == 1 && page.refcount() == 1) {
                if !shared {
                    self.count_vm_events(VmEvent::CowReuse, 1);
                }
                let n = pte | PteFlags::RW.0 | PteFlags::DIRTY.0 | PteFlags::ACCESSED.0;
                if let Some(pt) = mm.pgd.as_mut() {
                    let _ = pt.pte_set(self.pt_mem(), addr, n);
                }
                return VmFault::Done;
            }
        }
        // wp_page_copy
        let Ok(av) = anon_vma_prepare(&ka, vma, vp) else {
            return VmFault::Oom;
        };
        let index = vma.linear_page_index(addr);
        let Some(new) = self.alloc_user_page(mm, vma, addr) else {
            return VmFault::Oom;
        };
        if let Some(src) = old {
            // SAFETY: two distinct pages (a fresh one and one we map), PAGE_SIZE each.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.user_page_bytes(src),
                    self.user_page_bytes(new),
                    PAGE as usize,
                )
            };
        }
        let pa = self.page_to_pfn(new).phys().as_u64();
        let n = self.mk_pte(pa, flags, true);
        match mm.pgd.as_mut().map(|pt| pt.pte_set(self.pt_mem(), addr, n)) {
            Some(Ok(_)) => {}
            _ => {
                self.put_user_page(new);
                return VmFault::Oom;
            }
        }
        self.page_add_new_anon_rmap(new, av, index);
        self.lru_add_anon(&self.mem.lru, new);
        self.count_vm_events(VmEvent::CowCopy, 1);
        mm.add_counter(MmCounter::AnonPages, 1);
        if let Some(page) = old {
            let c = if self.page_is_anon(page) {
                MmCounter::AnonPages
            } else {
                MmCounter::ShmemPages
            };
            mm.add_counter(c, -1);
            self.zap_anon_page(&self.mem.swap, &self.mem.lru, page);
        }
        VmFault::Done
    }
}
