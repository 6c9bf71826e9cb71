//! `madvise` (mm/madvise.c): advice values, Linux's checks and walk, and each advice's
//! effect on anonymous memory. `MADV_DONTNEED` zaps at once; `MADV_FREE` frees lazily
//! (see `madvise_free`): the pages stay mapped until reclaim finds them still clean.

use crate::errno::Errno;
use crate::mm::mm_types::pg;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::swap::SwpEntry;
use crate::vma::{page_align, MmCounter, MmStruct, PteOps, VmBacking, VmFlags, PAGE};
use crate::vmscan::{ReclaimOps, SWAP_CLUSTER_MAX};

use super::{FaultFlags, MemoryLayer, VmFault};

/// `MADV_NORMAL`.
pub const MADV_NORMAL: u32 = 0;
/// `MADV_RANDOM`.
pub const MADV_RANDOM: u32 = 1;
/// `MADV_SEQUENTIAL`.
pub const MADV_SEQUENTIAL: u32 = 2;
/// `MADV_WILLNEED`.
pub const MADV_WILLNEED: u32 = 3;
/// `MADV_DONTNEED`.
pub const MADV_DONTNEED: u32 = 4;
/// `MADV_FREE`.
pub const MADV_FREE: u32 = 8;
/// `MADV_REMOVE`.
pub const MADV_REMOVE: u32 = 9;
/// `MADV_DONTFORK`.
pub const MADV_DONTFORK: u32 = 10;
/// `MADV_DOFORK`.
pub const MADV_DOFORK: u32 = 11;
/// `MADV_MERGEABLE` (KSM; not configured: `EINVAL`).
pub const MADV_MERGEABLE: u32 = 12;
/// `MADV_UNMERGEABLE`.
pub const MADV_UNMERGEABLE: u32 = 13;
/// `MADV_HUGEPAGE`.
pub const MADV_HUGEPAGE: u32 = 14;
/// `MADV_NOHUGEPAGE`.
pub const MADV_NOHUGEPAGE: u32 = 15;
/// `MADV_DONTDUMP`.
pub const MADV_DONTDUMP: u32 = 16;
/// `MADV_DODUMP`.
pub const MADV_DODUMP: u32 = 17;
/// `MADV_WIPEONFORK`.
pub const MADV_WIPEONFORK: u32 = 18;
/// `MADV_KEEPONFORK`.
pub const MADV_KEEPONFORK: u32 = 19;
/// `MADV_COLD`.
pub const MADV_COLD: u32 = 20;
/// `MADV_PAGEOUT`.
pub const MADV_PAGEOUT: u32 = 21;
/// `MADV_POPULATE_READ`.
pub const MADV_POPULATE_READ: u32 = 22;
/// `MADV_POPULATE_WRITE`.
pub const MADV_POPULATE_WRITE: u32 = 23;

/// `madvise_behavior_valid` (without KSM, with THP flags accepted).
fn behavior_valid(b: u32) -> bool {
    matches!(b, 0..=4 | 8..=11 | 14..=23)
}

impl<P: Platform> MemoryLayer<P> {
    /// `do_madvise`.
    ///
    /// # Errors
    /// `EINVAL` (unknown advice, misaligned start, overflow, advice the mapping does not
    /// take), `ENOMEM` (part of the range unmapped: the mapped parts are still advised),
    /// `EFAULT` (`MADV_POPULATE_*` on memory that cannot be faulted in).
    ///
    /// Without the rmap (`ops`, given by the task layer, which holds `tasklist_lock`),
    /// `MADV_PAGEOUT` only deactivates, as `MADV_COLD` does.
    pub fn madvise(
        &self,
        mm: &mut MmStruct,
        start: u64,
        len_in: u64,
        advice: u32,
    ) -> Result<(), Errno> {
        self.madvise_with(mm, start, len_in, advice, None)
    }

    /// [`Self::madvise`] with the rmap reclaim runs on (`MADV_PAGEOUT`).
    pub(crate) fn madvise_with(
        &self,
        mm: &mut MmStruct,
        start: u64,
        len_in: u64,
        advice: u32,
        ops: Option<&dyn ReclaimOps>,
    ) -> Result<(), Errno> {
        if !behavior_valid(advice) {
            return Err(Errno::EINVAL);
        }
        if start & (PAGE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len_in).unwrap_or(0);
        if len_in != 0 && len == 0 {
            return Err(Errno::EINVAL);
        }
        let Some(end) = start.checked_add(len) else {
            return Err(Errno::EINVAL);
        };
        if end == start {
            return Ok(());
        }
        // madvise_walk_vmas
        let mut start = start;
        let mut unmapped = Ok(());
        let Some(mut v) = mm.find_vma(start).map(|v| (v.vm_start, v.vm_end)) else {
            return Err(Errno::ENOMEM);
        };
        loop {
            if start < v.0 {
                unmapped = Err(Errno::ENOMEM);
                start = v.0;
                if start >= end {
                    break;
                }
            }
            let tmp = v.1.min(end);
            self.madvise_vma(mm, start, tmp, advice, ops)?;
            start = tmp;
            if start >= end {
                break;
            }
            match mm.find_vma(start) {
                Some(n) => v = (n.vm_start, n.vm_end),
                None => return Err(Errno::ENOMEM),
            }
        }
        unmapped
    }

    /// One VMA's part `[start, end)` (`madvise_vma_behavior`).
    fn madvise_vma(
        &self,
        mm: &mut MmStruct,
        start: u64,
        end: u64,
        advice: u32,
        ops: Option<&dyn ReclaimOps>,
    ) -> Result<(), Errno> {
        let v = mm.vma_lookup(start).ok_or(Errno::ENOMEM)?;
        let flags = v.vm_flags;
        let private_anon = v.backing == VmBacking::Anon && !flags.contains(VmFlags::VM_SHARED);
        let lru_ok =
            !flags.intersects(VmFlags::VM_LOCKED | VmFlags::VM_PFNMAP | VmFlags::VM_HUGETLB);
        let set = |f: VmFlags| flags.union(f);
        let clear = |f: VmFlags| flags.without(f);
        let newflags = match advice {
            MADV_FREE => {
                if !lru_ok || !private_anon {
                    return Err(Errno::EINVAL);
                }
                self.madvise_free(mm, start, end);
                return Ok(());
            }
            MADV_DONTNEED => {
                if !lru_ok {
                    return Err(Errno::EINVAL);
                }
                let vp = mm.vma_ptr(start).ok_or(Errno::ENOMEM)?;
                // SAFETY: a live VMA of `mm`; `zap` does not change the tree.
                let vr = unsafe { &*vp.as_ptr() };
                self.zap(mm, vr, start, end);
                return Ok(());
            }
            MADV_REMOVE => {
                if !flags.contains(VmFlags::VM_SHARED) || !flags.contains(VmFlags::VM_WRITE) {
                    return Err(Errno::EACCES);
                }
                let vp = mm.vma_ptr(start).ok_or(Errno::ENOMEM)?;
                // SAFETY: `vp` is a live VMA of `mm`, which the caller holds mutably, and `zap`
                // changes PTEs only, never the VMA tree, so the shared reference stays valid for
                // the call.
                let vr = unsafe { &*vp.as_ptr() };
                self.zap(mm, vr, start, end);
                return Ok(());
            }
            MADV_WILLNEED => return Ok(()),
            MADV_COLD | MADV_PAGEOUT => {
                if !lru_ok {
                    return Err(Errno::EINVAL);
                }
                let pageout = (advice == MADV_PAGEOUT).then_some(ops).flatten();
                self.madvise_cold_or_pageout(mm, start, end, pageout);
                return Ok(());
            }
            MADV_POPULATE_READ | MADV_POPULATE_WRITE => {
                let write = advice == MADV_POPULATE_WRITE;
                let mut va = start;
                while va < end {
                    let f = FaultFlags {
                        write,
                        exec: false,
                        user: true,
                    };
                    match self.handle_mm_fault(mm, va, f) {
                        VmFault::Done => {}
                        VmFault::Oom => return Err(Errno::ENOMEM),
                        _ => return Err(Errno::EFAULT),
                    }
                    va += PAGE;
                }
                return Ok(());
            }
            MADV_NORMAL => clear(VmFlags::VM_RAND_READ | VmFlags::VM_SEQ_READ),
            MADV_RANDOM => clear(VmFlags::VM_SEQ_READ).union(VmFlags::VM_RAND_READ),
            MADV_SEQUENTIAL => clear(VmFlags::VM_RAND_READ).union(VmFlags::VM_SEQ_READ),
            MADV_DONTFORK => set(VmFlags::VM_DONTCOPY),
            MADV_DOFORK => {
                if flags.contains(VmFlags::VM_IO) {
                    return Err(Errno::EINVAL);
                }
                clear(VmFlags::VM_DONTCOPY)
            }
            MADV_WIPEONFORK => {
                if !private_anon {
                    return Err(Errno::EINVAL);
                }
                set(VmFlags::VM_WIPEONFORK)
            }
            MADV_KEEPONFORK => clear(VmFlags::VM_WIPEONFORK),
            MADV_DONTDUMP => set(VmFlags::VM_DONTDUMP),
            MADV_DODUMP => {
                if flags.intersects(VmFlags::VM_SPECIAL) {
                    return Err(Errno::EINVAL);
                }
                clear(VmFlags::VM_DONTDUMP)
            }
            MADV_HUGEPAGE => clear(VmFlags::VM_NOHUGEPAGE).union(VmFlags::VM_HUGEPAGE),
            MADV_NOHUGEPAGE => clear(VmFlags::VM_HUGEPAGE).union(VmFlags::VM_NOHUGEPAGE),
            _ => return Err(Errno::EINVAL),
        };
        mm.vma_modify_flags(self, start, end, newflags)
    }

    /// `MADV_FREE` on `[start, end)` of a private anonymous VMA (`madvise_free_pte_range`):
    /// swap entries are freed and their PTEs cleared; each anonymous page (not the zero
    /// page) gets a clean, old PTE and moves to the inactive file list
    /// (`folio_mark_lazyfree`). A page in the swap cache or with `PG_dirty` must be mapped
    /// only here: it then leaves the swap cache (if no swap PTE still names its slot) and
    /// loses `PG_dirty`; otherwise it is left alone. Reclaim may then drop the page without
    /// swap; a write before that, through this PTE or another mapper's, keeps the data.
    fn madvise_free(&self, mm: &mut MmStruct, start: u64, end: u64) {
        let Some(mut pt) = mm.pgd.take() else { return };
        let fmt = pt.format();
        let (swap, lru, l) = (&self.mem.swap, &self.mem.lru, &self.km.vm);
        let mut swapents = 0i64;
        let flush = pt.pte_update_range(self.pt_mem(), start, end, |_, pte| {
            if pte & PteFlags::PRESENT.0 == 0 {
                if self.pte_is_swap(pte) {
                    // free_swap_and_cache + pte_clear
                    self.zap_swap_pte(swap, lru, pte);
                    swapents -= 1;
                    return 0;
                }
                return pte;
            }
            if self.is_zero_pte(fmt, pte) {
                return pte;
            }
            let Some(page) = self.pte_page(fmt, pte) else {
                return pte;
            };
            if !self.page_is_anon(page) || page.test_flag(pg::LOCKED) {
                return pte;
            }
            if page.test_flag(pg::SWAPCACHE) || page.test_flag(pg::DIRTY) {
                // Only an exclusive page drops its swap slot and its dirty bit; a clean
                // page mapped elsewhere too is still marked (the other PTEs keep their
                // dirty bits, which reclaim finds).
                if page.mapcount() != 1 {
                    return pte;
                }
                if page.test_flag(pg::SWAPCACHE) {
                    // folio_free_swap: only when no swap PTE still names the slot.
                    let e = SwpEntry::from_val(page.private() as u64);
                    if swap.swap_count(e) != 0 {
                        return pte;
                    }
                    swap.delete_from_swap_cache(l, page);
                }
                page.clear_flag_bits(pg::DIRTY);
            }
            lru.folio_mark_lazyfree(l, page);
            // pte_mkold(pte_mkclean(pte))
            pte & !(PteFlags::ACCESSED.0 | PteFlags::DIRTY.0)
        });
        let _ = flush.defer();
        mm.pgd = Some(pt);
        mm.add_counter(MmCounter::SwapEnts, swapents);
    }

    /// `MADV_COLD` / `MADV_PAGEOUT` on `[start, end)` of a VMA
    /// (`madvise_cold_or_pageout_pte_range`), [`SWAP_CLUSTER_MAX`] pages at a time: each page
    /// on an LRU list and mapped only here loses `PG_referenced`; for `MADV_COLD` its PTE is
    /// made old and it is deactivated (`folio_deactivate`); for `MADV_PAGEOUT` (`pageout`:
    /// the rmap) it is isolated and reclaimed regardless of its references (`reclaim_pages`:
    /// anonymous pages go to swap, lazily freed ones are dropped; without swap they stay).
    /// Pages of shmem are left alone (kmem does not reclaim them).
    fn madvise_cold_or_pageout(
        &self,
        mm: &mut MmStruct,
        start: u64,
        end: u64,
        pageout: Option<&dyn ReclaimOps>,
    ) {
        let (lru, l) = (&self.mem.lru, &self.km.vm);
        let mut va = start;
        while va < end {
            let stop = end.min(va + SWAP_CLUSTER_MAX as u64 * PAGE);
            let Some(mut pt) = mm.pgd.take() else { return };
            let fmt = pt.format();
            let mut batch = [None; SWAP_CLUSTER_MAX];
            let mut n = 0;
            let flush = pt.pte_update_range(self.pt_mem(), va, stop, |_, pte| {
                if pte & PteFlags::PRESENT.0 == 0 || self.is_zero_pte(fmt, pte) {
                    return pte;
                }
                let Some(page) = self.pte_page(fmt, pte) else {
                    return pte;
                };
                if !page.test_flag(pg::LRU) || page.mapcount() != 1 || !self.page_is_anon(page) {
                    return pte;
                }
                page.clear_flag_bits(pg::REFERENCED);
                if page.test_flag(pg::ACTIVE) {
                    page.set_flag_bits(pg::WORKINGSET);
                }
                if pageout.is_some() {
                    if lru.folio_isolate_lru(l, page) {
                        batch[n] = Some(page);
                        n += 1;
                    }
                    return pte;
                }
                lru.folio_deactivate(l, page);
                pte & !PteFlags::ACCESSED.0
            });
            let _ = flush.defer();
            mm.pgd = Some(pt);
            if let Some(ops) = pageout {
                lru.reclaim_pages(l, &self.mem.swap, ops, &batch[..n]);
            }
            va = stop;
        }
    }
}
