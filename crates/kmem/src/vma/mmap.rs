//! The VMA side of `mmap`, `munmap`, `mprotect` and `brk` (mm/mmap.c, mm/vma.c,
//! mm/mprotect.c), with Linux's checks in Linux's order.

use super::anon_vma::{anon_vma_clone, unlink_anon_vmas};
use super::flags::*;
use super::mm::{IMmapLink, MmStruct, VmAreaStruct, VmBacking};
use super::PteOps;
use crate::errno::Errno;

/// `sysctl_max_map_count` default (`DEFAULT_MAX_MAP_COUNT`, include/linux/mm.h).
pub const MAX_MAP_COUNT: usize = 65530;

/// The flags a merge compares (`VM_SOFTDIRTY` ignored, `is_mergeable_vma`).
fn merge_flags(f: VmFlags) -> u64 {
    f.0 & !VmFlags::VM_IGNORE_MERGE.0
}

impl MmStruct {
    /// `arch_get_unmapped_area_topdown` / `__get_unmapped_area`: where a mapping of `len`
    /// bytes goes. `addr` is a hint (or the address with `MAP_FIXED`).
    ///
    /// # Errors
    /// `ENOMEM`: `len` larger than the space, a fixed range outside it, or no gap.
    pub fn get_unmapped_area(&self, addr: u64, len: u64, flags: u32) -> Result<u64, Errno> {
        let task_size = self.task_size;
        if len > task_size || len < PAGE {
            return Err(Errno::ENOMEM);
        }
        if flags & MAP_FIXED != 0 {
            if addr > task_size - len {
                return Err(Errno::ENOMEM);
            }
            return Ok(addr);
        }
        if addr != 0 {
            let a = page_align(addr).ok_or(Errno::ENOMEM)?;
            if task_size - len >= a && a >= MMAP_MIN_ADDR && self.range_free_with_gaps(a, a + len) {
                return Ok(a);
            }
        }
        let low = PAGE.max(MMAP_MIN_ADDR);
        if let Some(a) = self.unmapped_area_topdown(len, low, self.mmap_base) {
            return Ok(a);
        }
        // A failed top-down search falls back to bottom-up from `TASK_UNMAPPED_BASE`
        // (`PAGE_ALIGN(TASK_SIZE / 3)`) to the end of the space.
        let base = page_align(task_size / 3).unwrap_or(task_size);
        self.unmapped_area_bottomup(len, base, task_size)
            .ok_or(Errno::ENOMEM)
    }

    /// Whether `[start, end)` is free, with the guard gap below stacks kept.
    fn range_free_with_gaps(&self, start: u64, end: u64) -> bool {
        let next_ok = self.find_vma(start).is_none_or(|v| end <= v.start_gap());
        let prev_ok = self
            .find_vma_before(start + 1)
            .is_none_or(|v| v.vm_end <= start || (v.vm_start > start && end <= v.start_gap()));
        next_ok && prev_ok
    }

    /// `unmapped_area_topdown`: the highest `len`-byte gap inside `[low, high)`.
    fn unmapped_area_topdown(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        // Gaps, from the top: between each VMA's end and the next one's guarded start.
        let mut gap_end = high;
        let mut cursor = high;
        // The VMA that begins at or above `high` limits the first gap through its guard.
        if let Some(v) = self.find_vma(high) {
            if v.vm_start < high {
                gap_end = gap_end.min(v.start_gap());
                cursor = v.vm_start;
            } else {
                gap_end = gap_end.min(v.start_gap());
            }
        }
        loop {
            let prev = self.find_vma_before(cursor.min(gap_end).max(1));
            let gap_start = prev.map_or(0, |v| v.vm_end).max(low);
            if gap_end >= gap_start && gap_end - gap_start >= len {
                return Some((gap_end - len) & !(PAGE - 1));
            }
            let v = prev?;
            if v.vm_start <= low {
                return None;
            }
            cursor = v.vm_start;
            gap_end = v.start_gap().min(cursor);
        }
    }

    /// `unmapped_area`: the lowest `len`-byte gap inside `[low, high)`.
    fn unmapped_area_bottomup(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        let mut start = low;
        if let Some(p) = self.find_vma_before(low + 1) {
            start = start.max(p.vm_end);
        }
        loop {
            let next = self.find_vma(start);
            let end = next.map_or(high, |v| v.start_gap().min(high));
            if end >= start && end - start >= len {
                return Some(start);
            }
            let v = next?;
            start = v.vm_end;
            if start >= high {
                return None;
            }
        }
    }

    /// `do_mmap` for anonymous memory and shmem objects: checks, places and creates the
    /// mapping, merging it with its neighbours where it can. Returns the address.
    ///
    /// # Errors
    /// `EINVAL` (length 0, bad flags, a misaligned `MAP_FIXED` address), `ENOMEM` (no room,
    /// too many mappings, length overflow), `EEXIST` (`MAP_FIXED_NOREPLACE` over a
    /// mapping), `EOVERFLOW` (offset overflow).
    #[allow(clippy::too_many_arguments)]
    pub fn do_mmap(
        &mut self,
        ops: &dyn PteOps,
        addr: u64,
        len: u64,
        prot: u32,
        mut flags: u32,
        backing: VmBacking,
        pgoff: u64,
    ) -> Result<u64, Errno> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let map_type = flags & MAP_TYPE;
        if !matches!(map_type, MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE) {
            return Err(Errno::EINVAL);
        }
        if map_type == MAP_SHARED_VALIDATE && flags & !LEGACY_MAP_MASK & !MAP_FIXED_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        // `ksys_mmap_pgoff`/x86 `sys_mmap`: a MAP_FIXED address must be page-aligned.
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && offset_in_page(addr) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut addr = addr;
        if flags & MAP_FIXED == 0 && flags & MAP_FIXED_NOREPLACE == 0 {
            // round_hint_to_min
            addr &= !(PAGE - 1);
            if addr != 0 && addr < MMAP_MIN_ADDR {
                addr = page_align(MMAP_MIN_ADDR).unwrap_or(0);
            }
        }
        let len = page_align(len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Err(Errno::ENOMEM);
        }
        if pgoff.checked_add(len / PAGE).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        if self.map_count > MAX_MAP_COUNT {
            return Err(Errno::ENOMEM);
        }
        if flags & MAP_FIXED_NOREPLACE != 0 {
            flags |= MAP_FIXED;
        }
        let addr = self.get_unmapped_area(addr, len, flags)?;
        if flags & MAP_FIXED_NOREPLACE != 0
            && self.find_vma_intersection(addr, addr + len).is_some()
        {
            return Err(Errno::EEXIST);
        }
        let mut vm_flags = VmFlags::from_prot(prot)
            | VmFlags::from_map_flags(flags)
            | VmFlags::VM_MAYREAD
            | VmFlags::VM_MAYWRITE
            | VmFlags::VM_MAYEXEC;
        let mut pgoff = pgoff;
        match map_type {
            MAP_SHARED | MAP_SHARED_VALIDATE => {
                if vm_flags.intersects(VmFlags::VM_GROWSDOWN) {
                    return Err(Errno::EINVAL);
                }
                vm_flags = vm_flags | VmFlags::VM_SHARED | VmFlags::VM_MAYSHARE;
            }
            _ => {
                if backing == VmBacking::Anon {
                    pgoff = addr / PAGE;
                }
            }
        }
        if flags & MAP_NORESERVE != 0 {
            vm_flags = vm_flags | VmFlags::VM_NORESERVE;
        }
        self.mmap_region(ops, addr, len, vm_flags, backing, pgoff)
    }

    /// `mmap_region`: replaces whatever is in `[addr, addr + len)` by a new mapping.
    ///
    /// # Errors
    /// `ENOMEM`.
    pub fn mmap_region(
        &mut self,
        ops: &dyn PteOps,
        addr: u64,
        len: u64,
        mut vm_flags: VmFlags,
        backing: VmBacking,
        pgoff: u64,
    ) -> Result<u64, Errno> {
        let end = addr + len;
        if self.find_vma_intersection(addr, end).is_some() {
            self.do_munmap(ops, addr, len)?;
        }
        // accountable_mapping: private writable memory is charged (VM_ACCOUNT).
        if vm_flags.0 & (VmFlags::VM_NORESERVE.0 | VmFlags::VM_SHARED.0 | VmFlags::VM_WRITE.0)
            == VmFlags::VM_WRITE.0
        {
            vm_flags = vm_flags | VmFlags::VM_ACCOUNT;
        }
        vm_flags = vm_flags | VmFlags::VM_SOFTDIRTY;
        let new = VmAreaStruct {
            vm_start: addr,
            vm_end: end,
            vm_flags,
            vm_pgoff: pgoff,
            backing,
            anon_vma: None,
            avc: None,
            vm_mm: 0,
            i_mmap: match backing {
                VmBacking::Shmem(ino) => ops.i_mmap(ino),
                VmBacking::Anon => None,
            },
            shared: IMmapLink::NONE,
            vm_policy: None,
        };
        self.insert_and_merge(new)?;
        Ok(addr)
    }

    /// Whether `a` (ending where `b` starts) and `b` can become one VMA
    /// (`is_mergeable_vma` + `is_mergeable_anon_vma` + contiguous offsets).
    fn can_merge(a: &VmAreaStruct, b: &VmAreaStruct) -> bool {
        a.vm_end == b.vm_start
            && merge_flags(a.vm_flags) == merge_flags(b.vm_flags)
            && !a.vm_flags.intersects(VmFlags::VM_SPECIAL)
            && a.backing == b.backing
            && a.vm_policy == b.vm_policy
            && a.vm_pgoff + a.pages() == b.vm_pgoff
            && (a.anon_vma.is_none() || b.anon_vma.is_none() || a.anon_vma == b.anon_vma)
            // A VMA with an anon_vma chain longer than its own link (after fork) only merges
            // with a VMA without one (Linux compares the chains: `list_is_singular`).
            && (super::anon_vma::chains_of(a) <= 1 && super::anon_vma::chains_of(b) <= 1)
    }

    /// Inserts `new` into a free range and merges it with its neighbours
    /// (`vma_merge_new_range`, else `__mmap_new_vma`).
    ///
    /// # Errors
    /// `ENOMEM` (nothing changed).
    pub(crate) fn insert_and_merge(&mut self, new: VmAreaStruct) -> Result<u64, Errno> {
        let (addr, end) = (new.vm_start, new.vm_end);
        let prev = self
            .find_vma_before(addr + 1)
            .filter(|p| p.vm_end == addr && Self::can_merge(p, &new))
            .map(|p| p.vm_start);
        let next = self
            .vma_lookup(end)
            .filter(|n| n.vm_start == end && Self::can_merge(&new, n))
            .map(|n| (n.vm_start, n.vm_end));
        match (prev, next) {
            (Some(ps), Some((ns, ne))) => {
                let compatible = {
                    let p = self.vma_lookup(ps).map(|v| v.anon_vma);
                    let n = self.vma_lookup(ns).map(|v| v.anon_vma);
                    matches!((p, n), (Some(a), Some(b)) if a.is_none() || b.is_none() || a == b)
                };
                if compatible {
                    self.merge_into_prev(ps, ns, ne)?;
                    return Ok(ps);
                }
                self.set_vma_range(ps, ps, end)?;
                Ok(ps)
            }
            (Some(ps), None) => {
                self.set_vma_range(ps, ps, end)?;
                Ok(ps)
            }
            (None, Some((ns, ne))) => {
                self.set_vma_range(ns, addr, ne)?;
                Ok(addr)
            }
            (None, None) => {
                self.insert_vma(new)?;
                Ok(addr)
            }
        }
    }

    /// Makes the VMA at `ps` also cover the next VMA `[ns, ne)`, which goes; the survivor
    /// takes the other's anon_vma if it had none.
    fn merge_into_prev(&mut self, ps: u64, ns: u64, ne: u64) -> Result<(), Errno> {
        let ka = self.ka;
        let mut next = self.remove_vma(ns).ok_or(Errno::EINVAL)?;
        let prev_ptr = self.vma_ptr(ps).ok_or(Errno::EINVAL)?;
        let needs_av = self.vma_lookup(ps).is_some_and(|p| p.anon_vma.is_none());
        if needs_av && next.anon_vma.is_some() {
            let prev = self.vma_mut(ps).ok_or(Errno::EINVAL)?;
            if anon_vma_clone(&ka, prev, prev_ptr, &next).is_err() {
                // Put the next VMA back as it was.
                unlink_anon_vmas(&ka, &mut next);
                return Err(Errno::ENOMEM);
            }
        }
        unlink_anon_vmas(&ka, &mut next);
        if let Err(e) = self.set_vma_range(ps, ps, ne) {
            let _ = self.insert_vma(next);
            return Err(e);
        }
        Ok(())
    }

    /// Merges the VMA starting at `start` with its neighbours where possible (after
    /// `mprotect` changed its flags: `vma_modify` merging).
    pub(crate) fn merge_around(&mut self, start: u64) {
        let Some(v) = self.vma_lookup(start) else {
            return;
        };
        let (s, e) = (v.vm_start, v.vm_end);
        // With the next VMA.
        if let Some(n) = self.vma_lookup(e) {
            if Self::can_merge(v, n) && n.vm_start == e {
                let ne = n.vm_end;
                let _ = self.merge_into_prev(s, e, ne);
            }
        }
        let Some(v) = self.vma_lookup(s) else {
            return;
        };
        if let Some(p) = self.find_vma_before(s + 1).filter(|p| p.vm_end == s) {
            if Self::can_merge(p, v) {
                let (ps, ve) = (p.vm_start, v.vm_end);
                let _ = self.merge_into_prev(ps, s, ve);
            }
        }
    }

    /// `split_vma`: splits the VMA containing `addr` (strictly inside it) in two at `addr`.
    ///
    /// # Errors
    /// `ENOMEM` (too many mappings, or memory; nothing changed).
    pub(crate) fn split_vma(&mut self, addr: u64) -> Result<(), Errno> {
        if self.map_count >= MAX_MAP_COUNT {
            return Err(Errno::ENOMEM);
        }
        let ka = self.ka;
        let v = self.vma_lookup(addr).ok_or(Errno::EINVAL)?;
        if v.vm_start >= addr {
            return Ok(());
        }
        let (s, e) = (v.vm_start, v.vm_end);
        let upper = VmAreaStruct {
            vm_start: addr,
            vm_end: e,
            vm_flags: v.vm_flags,
            vm_pgoff: v.vm_pgoff + (addr - s) / PAGE,
            backing: v.backing,
            anon_vma: None,
            avc: None,
            vm_mm: 0,
            i_mmap: v.i_mmap,
            shared: IMmapLink::NONE,
            vm_policy: v.vm_policy,
        };
        self.set_vma_range(s, s, addr)?;
        let p = match self.insert_vma(upper) {
            Ok(p) => p,
            Err(err) => {
                let _ = self.set_vma_range(s, s, e);
                return Err(err);
            }
        };
        let lower_ptr = self.vma_ptr(s).ok_or(Errno::EINVAL)?;
        // SAFETY: both are live VMAs of this mm and distinct objects (different starts);
        // nothing else touches them during the clone.
        let (lower, upper) = unsafe { (&*lower_ptr.as_ptr(), &mut *p.as_ptr()) };
        if anon_vma_clone(&ka, upper, p, lower).is_err() {
            let _ = self.remove_vma(addr);
            let _ = self.set_vma_range(s, s, e);
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// `do_vmi_munmap`: removes every mapping in `[start, start + len)`.
    ///
    /// # Errors
    /// `EINVAL` (misaligned, zero or out-of-range), `ENOMEM` (a split failed: too many
    /// mappings).
    pub fn do_munmap(&mut self, ops: &dyn PteOps, start: u64, len: u64) -> Result<(), Errno> {
        if offset_in_page(start) != 0 || start > self.task_size || len > self.task_size - start {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = start + len;
        let Some(first) = self.find_vma_intersection(start, end) else {
            return Ok(());
        };
        // Splitting the first and the last VMA may make one mapping more than allowed
        // (`vms_gather_munmap_vmas`: only when the range is strictly inside one VMA).
        if first.vm_start < start && first.vm_end > end && self.map_count >= MAX_MAP_COUNT {
            return Err(Errno::ENOMEM);
        }
        if first.vm_start < start {
            self.split_vma(start)?;
        }
        if let Some(last) = self.vma_lookup(end - 1) {
            if last.vm_end > end {
                self.split_vma(end)?;
            }
        }
        self.remove_range(ops, start, end);
        Ok(())
    }

    /// Zaps and removes every VMA inside `[start, end)` (VMAs already split at the edges),
    /// then frees the page tables only they used (`unmap_region` → `free_pgtables`, bounded
    /// by the previous mapping's end and the next one's start).
    pub(crate) fn remove_range(&mut self, ops: &dyn PteOps, start: u64, end: u64) {
        let ka = self.ka;
        let mut removed = false;
        while let Some(v) = self.find_vma_intersection(start, end) {
            removed = true;
            let s = v.vm_start;
            let p = self.vma_ptr(s).expect("VMA just found");
            // SAFETY: the zap needs the VMA and the mm at once; the VMA is a kmalloc block
            // separate from the mm, and `PteOps` implementations change page tables and
            // counters only, never the VMA tree, so it stays live during the call.
            let vr = unsafe { &*p.as_ptr() };
            ops.zap(self, vr, vr.vm_start, vr.vm_end);
            if let Some(mut old) = self.remove_vma(s) {
                unlink_anon_vmas(&ka, &mut old);
            }
        }
        if removed {
            // FIRST_USER_ADDRESS (0) and USER_PGTABLES_CEILING (0: the top) without neighbours.
            let floor = self.find_vma_before(start).map_or(0, |p| p.vm_end);
            let ceiling = self.find_vma(end).map_or(0, |n| n.vm_start);
            ops.free_pgtables(self, start, end, floor, ceiling);
        }
    }

    /// `mprotect`: sets the access of `[start, start + len)` to `prot`.
    ///
    /// # Errors
    /// `EINVAL` (misaligned start, unknown `prot` bits, `PROT_GROWSDOWN` on a VMA that does
    /// not grow down), `ENOMEM` (part of the range unmapped, or overflow), `EACCES` (access
    /// the mapping may not have: `VM_MAY*` missing).
    pub fn mprotect(
        &mut self,
        ops: &dyn PteOps,
        start: u64,
        len: u64,
        prot: u32,
    ) -> Result<(), Errno> {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot & !grows;
        if grows == (PROT_GROWSDOWN | PROT_GROWSUP) {
            return Err(Errno::EINVAL);
        }
        if offset_in_page(start) != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_align(len).ok_or(Errno::ENOMEM)?;
        let Some(mut end) = start.checked_add(len) else {
            return Err(Errno::ENOMEM);
        };
        if end <= start {
            return Err(Errno::ENOMEM);
        }
        // arch_validate_prot (x86: PROT_READ | WRITE | EXEC | SEM).
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | 0x8) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut start = start;
        let first = self.find_vma(start).ok_or(Errno::ENOMEM)?;
        if grows & PROT_GROWSDOWN != 0 {
            if first.vm_start >= end {
                return Err(Errno::ENOMEM);
            }
            if !first.vm_flags.contains(VmFlags::VM_GROWSDOWN) {
                return Err(Errno::EINVAL);
            }
            start = first.vm_start;
        } else if first.vm_start > start {
            return Err(Errno::ENOMEM);
        }
        if first.vm_start >= end {
            return Err(Errno::ENOMEM);
        }
        let want = VmFlags::from_prot(prot);
        let mut tmp = start;
        while tmp < end {
            let v = self.vma_lookup(tmp).ok_or(Errno::ENOMEM)?;
            let newflags = want | v.vm_flags.without(VmFlags::VM_ACCESS_FLAGS);
            // newflags >> 4 shift VM_MAY% in place of VM_%.
            if newflags.0 & !(newflags.0 >> 4) & VmFlags::VM_ACCESS_FLAGS.0 != 0 {
                return Err(Errno::EACCES);
            }
            let vend = v.vm_end.min(end);
            self.vma_modify_flags(ops, tmp, vend, newflags)?;
            tmp = vend;
            if tmp < end && self.vma_lookup(tmp).is_none() {
                return Err(Errno::ENOMEM);
            }
        }
        end = tmp;
        let _ = end;
        Ok(())
    }

    /// `mprotect_fixup` / `madvise_update_vma` (`vma_modify_flags`): gives `[start, end)`
    /// (inside one VMA) the flags `newflags`, splitting it at the edges and merging the
    /// result with its neighbours; PTEs follow when the access flags change.
    ///
    /// # Errors
    /// `ENOMEM` (a split failed).
    pub(crate) fn vma_modify_flags(
        &mut self,
        ops: &dyn PteOps,
        start: u64,
        end: u64,
        mut newflags: VmFlags,
    ) -> Result<(), Errno> {
        let v = self.vma_lookup(start).ok_or(Errno::ENOMEM)?;
        if merge_flags(newflags) == merge_flags(v.vm_flags) {
            return Ok(());
        }
        // Making private memory writable charges it (VM_ACCOUNT).
        if newflags.contains(VmFlags::VM_WRITE)
            && !v.vm_flags.intersects(
                VmFlags::VM_ACCOUNT
                    | VmFlags::VM_WRITE
                    | VmFlags::VM_SHARED
                    | VmFlags::VM_NORESERVE,
            )
        {
            newflags = newflags | VmFlags::VM_ACCOUNT;
        }
        if v.vm_start < start {
            self.split_vma(start)?;
        }
        if self.vma_lookup(start).is_some_and(|v| v.vm_end > end) {
            self.split_vma(end)?;
        }
        let oldflags = self
            .vma_lookup(start)
            .map(|v| v.vm_flags)
            .unwrap_or_default();
        let vma = self.vma_mut(start).ok_or(Errno::ENOMEM)?;
        vma.vm_flags = newflags;
        let pages = (end - start) / PAGE;
        self.vm_stat_account(oldflags, -(pages as i64));
        self.vm_stat_account(newflags, pages as i64);
        if (oldflags.0 ^ newflags.0) & VmFlags::VM_ACCESS_FLAGS.0 != 0 {
            let p = self.vma_ptr(start).ok_or(Errno::ENOMEM)?;
            // SAFETY: as in `remove_range`: `PteOps` does not change the tree.
            let vr = unsafe { &*p.as_ptr() };
            ops.change_protection(self, vr, start, end);
        }
        self.merge_around(start);
        Ok(())
    }

    /// `brk`: moves the end of the heap to `brk`; returns the new break, or the old one if
    /// the move is refused (Linux's `brk` never fails otherwise).
    pub fn do_brk(&mut self, ops: &dyn PteOps, brk: u64) -> u64 {
        let origbrk = self.brk;
        if brk < self.start_brk || brk > self.task_size {
            return origbrk;
        }
        let (Some(newbrk), Some(oldbrk)) = (page_align(brk), page_align(self.brk)) else {
            return origbrk;
        };
        if oldbrk == newbrk {
            self.brk = brk;
            return brk;
        }
        if brk <= self.brk {
            // Shrinking always succeeds, the heap VMA is split if needed.
            self.brk = brk;
            if self.do_munmap(ops, newbrk, oldbrk - newbrk).is_err() {
                self.brk = origbrk;
                return origbrk;
            }
            return brk;
        }
        // Keep the stack guard gap (and a page) free above the new break.
        if let Some(next) = self.find_vma(oldbrk) {
            if newbrk + PAGE > next.start_gap() {
                return origbrk;
            }
        }
        let flags = VmFlags::VM_DATA_DEFAULT_FLAGS | VmFlags::VM_ACCOUNT | VmFlags::VM_SOFTDIRTY;
        let new = VmAreaStruct {
            vm_start: oldbrk,
            vm_end: newbrk,
            vm_flags: flags,
            vm_pgoff: oldbrk / PAGE,
            backing: VmBacking::Anon,
            anon_vma: None,
            avc: None,
            vm_mm: 0,
            i_mmap: None,
            shared: IMmapLink::NONE,
            vm_policy: None,
        };
        if self.map_count > MAX_MAP_COUNT || self.insert_and_merge(new).is_err() {
            return origbrk;
        }
        self.brk = brk;
        brk
    }
}

impl MmStruct {
    /// `mbind_range`: every VMA of `[start, end)` gets `pol` (`None`: no VMA policy, the
    /// task's applies), split at `start` and `end` first and merged with neighbours whose
    /// policy (and everything else) then matches. Holes in the range are an error unless
    /// `discontig_ok` (`MPOL_MF_DISCONTIG_OK`, which `MPOL_DEFAULT` implies).
    ///
    /// # Errors
    /// `EFAULT`: part of the range is not mapped, or none of it with `discontig_ok` (nothing
    /// changed); `ENOMEM`: a split failed.
    pub fn mbind_range(
        &mut self,
        start: u64,
        end: u64,
        pol: Option<super::mempolicy::MemPolicy>,
        discontig_ok: bool,
    ) -> Result<(), Errno> {
        // No mapping at all in the range fails even when holes are fine
        // (queue_pages_range: "whole range in hole").
        if self.find_vma_intersection(start, end).is_none() {
            return Err(Errno::EFAULT);
        }
        // A hole anywhere in the range fails the whole call (queue_pages_test_walk).
        let mut a = start;
        while a < end {
            match self.find_vma(a) {
                Some(v) if v.vm_start <= a => a = v.vm_end,
                Some(v) if discontig_ok && v.vm_start < end => a = v.vm_start,
                _ if discontig_ok => break,
                _ => return Err(Errno::EFAULT),
            }
        }
        if self.vma_lookup(start).is_some_and(|v| v.vm_start < start) {
            self.split_vma(start)?;
        }
        if self.vma_lookup(end - 1).is_some_and(|v| v.vm_end > end) {
            self.split_vma(end)?;
        }
        let mut a = start;
        while a < end {
            let Some(s) = self.find_vma(a).map(|v| v.vm_start).filter(|&s| s < end) else {
                break;
            };
            let Some(v) = self.vma_mut(s) else {
                break;
            };
            v.vm_policy = pol;
            a = v.vm_end;
        }
        // Merge: each VMA of the range with its neighbours (vma_modify_policy).
        let mut a = start;
        while a < end {
            let Some(s) = self.find_vma(a).map(|v| v.vm_start) else {
                break;
            };
            self.merge_around(s);
            let Some(v) = self.find_vma(a) else {
                break;
            };
            a = v.vm_end;
        }
        Ok(())
    }
}
