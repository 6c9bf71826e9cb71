//! `dup_mmap` and `copy_page_range` (kernel/fork.c, mm/memory.c): the child's address space
//! after `fork`.

use core::ptr::NonNull;

use crate::errno::Errno;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::vma::anon_vma::anon_vma_fork;
use crate::vma::{MmCounter, MmStruct, VmAreaStruct, VmFlags};

use super::MemoryLayer;

impl<P: Platform> MemoryLayer<P> {
    /// `dup_mmap`: gives `child` (fresh from [`Self::mm_alloc`]) a copy of every VMA of
    /// `parent` except `VM_DONTCOPY` ones, sharing the pages copy-on-write.
    ///
    /// # Errors
    /// `ENOMEM` (the child is left with what was copied; the caller drops it).
    pub fn dup_mmap(&self, parent: &mut MmStruct, child: &mut MmStruct) -> Result<(), Errno> {
        child.start_brk = parent.start_brk;
        child.brk = parent.brk;
        child.start_stack = parent.start_stack;
        child.mmap_base = parent.mmap_base;
        // The child inherits the task policy (`mpol_dup` in copy_process).
        child.task_policy = parent.task_policy;
        child.hiwater_rss = 0;
        let ka = child.kalloc();
        let mut addr = 0;
        while let Some(pv) = parent.find_vma(addr) {
            addr = pv.vm_end;
            if pv.vm_flags.contains(VmFlags::VM_DONTCOPY) {
                continue;
            }
            let start = pv.vm_start;
            let nv = VmAreaStruct {
                vm_start: pv.vm_start,
                vm_end: pv.vm_end,
                vm_flags: pv.vm_flags,
                vm_pgoff: pv.vm_pgoff,
                backing: pv.backing,
                anon_vma: None,
                avc: None,
                vm_mm: 0,
                i_mmap: pv.i_mmap,
                shared: crate::vma::IMmapLink::NONE,
                vm_policy: pv.vm_policy,
            };
            let cp = child.insert_vma(nv)?;
            let Some(pp) = parent.vma_ptr(start) else {
                return Err(Errno::EINVAL);
            };
            // SAFETY: two live VMAs of two different address spaces, both held exclusively
            // (tasklist_lock); neither tree changes while the references live.
            let (pvr, cvr) = unsafe { (&*pp.as_ptr(), &mut *cp.as_ptr()) };
            if pvr.vm_flags.contains(VmFlags::VM_WIPEONFORK) {
                continue;
            }
            anon_vma_fork(&ka, cvr, cp, pvr)?;
            self.copy_page_range(parent, child, pp)?;
        }
        Ok(())
    }

    /// `copy_page_range` for one VMA: every PTE of the parent's VMA is copied; pages gain a
    /// reference and a mapper; in COW mappings both PTEs are write-protected.
    fn copy_page_range(
        &self,
        parent: &mut MmStruct,
        child: &mut MmStruct,
        vp: NonNull<VmAreaStruct>,
    ) -> Result<(), Errno> {
        // SAFETY: a live VMA of `parent`; the walk below changes PTEs only.
        let v = unsafe { &*vp.as_ptr() };
        let cow = v.is_cow_mapping();
        let (Some(mut ppt), Some(mut cpt)) = (parent.pgd.take(), child.pgd.take()) else {
            return Err(Errno::ENOMEM);
        };
        let fmt = ppt.format();
        let mem = self.pt_mem();
        let mut err = None;
        let mut delta = [0i64; 4];
        let flush = ppt.pte_update_range(mem, v.vm_start, v.vm_end, |va, pte| {
            if err.is_some() {
                return pte;
            }
            let mut ppte = pte;
            let mut cpte = pte;
            let mut counter = None;
            if pte & PteFlags::PRESENT.0 == 0 {
                // A swap entry: the child's PTE names the slot too (`swap_duplicate`).
                let e = crate::swap::entry::SwpEntry::from_pte(self.arch(), pte);
                if self.mem.swap.swap_duplicate(&self.km.vm, e).is_err() {
                    err = Some(Errno::ENOMEM);
                    return pte;
                }
                // Neither side is exclusive any more.
                ppte = e.to_pte(self.arch(), false);
                cpte = ppte;
                counter = Some(MmCounter::SwapEnts);
            } else if !self.is_zero_pte(fmt, pte) {
                if let Some(page) = self.pte_page(fmt, pte) {
                    counter = Some(if self.page_is_anon(page) {
                        MmCounter::AnonPages
                    } else {
                        MmCounter::ShmemPages
                    });
                    if cow && pte & PteFlags::RW.0 != 0 {
                        ppte &= !PteFlags::RW.0;
                        cpte &= !PteFlags::RW.0;
                    }
                    // The child's PTE starts old (`pte_mkold`).
                    cpte &= !PteFlags::ACCESSED.0;
                    if cpt.pte_set(mem, va, cpte).is_err() {
                        err = Some(Errno::ENOMEM);
                        return pte;
                    }
                    self.get_page(page);
                    self.page_dup_rmap(page);
                    if let Some(c) = counter {
                        delta[c as usize] += 1;
                    }
                    return ppte;
                }
            }
            if cpt.pte_set(mem, va, cpte).is_err() {
                err = Some(Errno::ENOMEM);
                return pte;
            }
            if let Some(c) = counter {
                delta[c as usize] += 1;
            }
            ppte
        });
        let _ = flush.defer();
        parent.pgd = Some(ppt);
        child.pgd = Some(cpt);
        for (i, d) in delta.iter().enumerate() {
            child.add_counter(
                match i {
                    0 => MmCounter::FilePages,
                    1 => MmCounter::AnonPages,
                    2 => MmCounter::SwapEnts,
                    _ => MmCounter::ShmemPages,
                },
                *d,
            );
        }
        err.map_or(Ok(()), Err)
    }
}
