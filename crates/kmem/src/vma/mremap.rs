//! `mremap` (mm/mremap.c): shrink, grow in place, or move (`MREMAP_MAYMOVE`,
//! `MREMAP_FIXED`, `MREMAP_DONTUNMAP`), with Linux's checks.

use super::anon_vma::anon_vma_clone;
use super::flags::*;
use super::mm::{MmStruct, VmAreaStruct};
use super::PteOps;
use crate::errno::Errno;

impl MmStruct {
    /// `mremap(addr, old_len, new_len, flags, new_addr)`; returns the new address.
    ///
    /// # Errors
    /// `EINVAL` (bad flags, misaligned addresses, overlapping ranges, zero new length),
    /// `EFAULT` (no mapping at `addr`, or the old range crosses mappings), `ENOMEM` (no
    /// room to grow in place without `MREMAP_MAYMOVE`, or nowhere to move).
    pub fn mremap(
        &mut self,
        ops: &dyn PteOps,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        if flags & !(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_DONTUNMAP != 0 && (flags & MREMAP_MAYMOVE == 0 || old_len != new_len) {
            return Err(Errno::EINVAL);
        }
        if offset_in_page(addr) != 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_align(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_align(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 {
            return Err(Errno::EINVAL);
        }
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
            return self.mremap_to(ops, addr, old_len, new_addr, new_len, flags);
        }
        if old_len >= new_len {
            if old_len == new_len {
                return Ok(addr);
            }
            self.do_munmap(ops, addr + new_len, old_len - new_len)?;
            return Ok(addr);
        }
        let (vs, ve) = self.vma_to_resize(addr, old_len, new_len, flags)?;
        // old_len exactly to the end of the area: can it simply grow?
        if old_len == ve - addr {
            let delta = new_len - old_len;
            if let Some(end) = ve.checked_add(delta) {
                if end <= self.task_size && self.find_vma_intersection(ve, end).is_none() {
                    self.set_vma_range(vs, vs, end)?;
                    return Ok(addr);
                }
            }
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let shared = self
            .vma_lookup(addr)
            .is_some_and(|v| v.vm_flags.contains(VmFlags::VM_MAYSHARE));
        let to = self.get_unmapped_area(0, new_len, if shared { MAP_SHARED } else { 0 })?;
        self.move_vma(ops, addr, old_len, new_len, to, false)
    }

    /// `vma_to_resize`: the VMA holding `[addr, addr + old_len)`, checked for resizing;
    /// returns its range.
    fn vma_to_resize(
        &self,
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
    ) -> Result<(u64, u64), Errno> {
        let v = self.vma_lookup(addr).ok_or(Errno::EFAULT)?;
        if old_len == 0
            && !v
                .vm_flags
                .intersects(VmFlags::VM_SHARED | VmFlags::VM_MAYSHARE)
        {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_DONTUNMAP != 0
            && v.vm_flags
                .intersects(VmFlags::VM_DONTEXPAND | VmFlags::VM_PFNMAP)
        {
            return Err(Errno::EINVAL);
        }
        // We can't remap across vm area boundaries.
        if old_len > v.vm_end - addr {
            return Err(Errno::EFAULT);
        }
        if new_len != old_len
            && v.vm_flags
                .intersects(VmFlags::VM_DONTEXPAND | VmFlags::VM_PFNMAP)
        {
            return Err(Errno::EFAULT);
        }
        Ok((v.vm_start, v.vm_end))
    }

    /// `mremap_to`: `MREMAP_FIXED` (move to `new_addr`, replacing what is there) and
    /// `MREMAP_DONTUNMAP` (move, leaving the old range mapped but empty).
    fn mremap_to(
        &mut self,
        ops: &dyn PteOps,
        addr: u64,
        mut old_len: u64,
        new_addr: u64,
        new_len: u64,
        flags: u32,
    ) -> Result<u64, Errno> {
        let fixed = flags & MREMAP_FIXED != 0;
        if fixed {
            if offset_in_page(new_addr) != 0 {
                return Err(Errno::EINVAL);
            }
            if new_len > self.task_size || new_addr > self.task_size - new_len {
                return Err(Errno::EINVAL);
            }
            // Ensure the old/new locations do not overlap.
            if addr + old_len > new_addr && new_addr + new_len > addr {
                return Err(Errno::EINVAL);
            }
            self.do_munmap(ops, new_addr, new_len)?;
        }
        if old_len > new_len {
            self.do_munmap(ops, addr + new_len, old_len - new_len)?;
            old_len = new_len;
        }
        self.vma_to_resize(addr, old_len, new_len, flags)?;
        let to = if fixed {
            new_addr
        } else {
            let shared = self
                .vma_lookup(addr)
                .is_some_and(|v| v.vm_flags.contains(VmFlags::VM_MAYSHARE));
            self.get_unmapped_area(0, new_len, if shared { MAP_SHARED } else { 0 })?
        };
        self.move_vma(
            ops,
            addr,
            old_len,
            new_len,
            to,
            flags & MREMAP_DONTUNMAP != 0,
        )
    }

    /// `move_vma`: a new VMA at `to` of `new_len` bytes takes the old range's pages
    /// (`copy_vma` + `move_page_tables`), then the old range goes (or, with
    /// `MREMAP_DONTUNMAP`, stays mapped and empty).
    fn move_vma(
        &mut self,
        ops: &dyn PteOps,
        addr: u64,
        old_len: u64,
        new_len: u64,
        to: u64,
        dontunmap: bool,
    ) -> Result<u64, Errno> {
        if self.map_count >= super::MAX_MAP_COUNT - 3 {
            return Err(Errno::ENOMEM);
        }
        let ka = self.ka;
        let v = self.vma_lookup(addr).ok_or(Errno::EFAULT)?;
        let new = VmAreaStruct {
            vm_start: to,
            vm_end: to + new_len,
            vm_flags: v.vm_flags,
            vm_pgoff: v.vm_pgoff + (addr - v.vm_start) / PAGE,
            backing: v.backing,
            anon_vma: None,
            avc: None,
            vm_mm: 0,
            i_mmap: v.i_mmap,
            shared: super::mm::IMmapLink::NONE,
            vm_policy: v.vm_policy,
        };
        let np = self.insert_vma(new)?;
        let op = self.vma_ptr(addr).ok_or(Errno::EFAULT)?;
        // SAFETY: two distinct live VMAs of this mm (disjoint ranges); nothing else touches
        // them during the clone.
        let (oldv, newv) = unsafe { (&*op.as_ptr(), &mut *np.as_ptr()) };
        if anon_vma_clone(&ka, newv, np, oldv).is_err() {
            let _ = self.remove_vma(to);
            return Err(Errno::ENOMEM);
        }
        if let Err(e) = ops.move_ptes(self, addr, to, old_len) {
            // Move back what was moved, then drop the new VMA.
            let _ = ops.move_ptes(self, to, addr, old_len);
            if let Some(mut n) = self.remove_vma(to) {
                super::anon_vma::unlink_anon_vmas(&ka, &mut n);
            }
            return Err(e);
        }
        if dontunmap {
            // The old range stays, empty; its pages now belong to the new VMA.
            return Ok(to);
        }
        self.do_munmap(ops, addr, old_len)?;
        Ok(to)
    }
}
