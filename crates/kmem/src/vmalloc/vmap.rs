//! Mapping given pages (mm/vmalloc.c): `get_vm_area` / `free_vm_area`, `vmap` / `vunmap`,
//! `vm_map_ram` / `vm_unmap_ram`.

use core::panic::Location;

use crate::addr::{VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::pgtable::PteFlags;
use crate::platform::Platform;

use super::{
    va_size, VmLayer, ANY_VM, VM_ALLOC, VM_MAP, VM_MAP_RAM_AREA, VM_NO_GUARD, VM_UNINITIALIZED,
};

impl<P: Platform> VmLayer<P> {
    /// `__get_vm_area_caller`: reserves `size` bytes (page aligned up, plus a guard page
    /// unless [`VM_NO_GUARD`]) of address space in `[start, end)`, aligned to `align`,
    /// without mapping anything. Release with [`Machine::free_vm_area`].
    #[track_caller]
    pub fn __get_vm_area(
        &self,
        size: usize,
        align: usize,
        flags: u32,
        start: u64,
        end: u64,
    ) -> Option<VirtAddr> {
        let size = size.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
        if size == 0 {
            return None;
        }
        let guard = if flags & VM_NO_GUARD != 0 {
            0
        } else {
            PAGE_SIZE
        };
        let va = self.alloc_vmap_area(
            (size + guard) as u64,
            align.max(PAGE_SIZE) as u64,
            start,
            end,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN,
        )?;
        let va_start = {
            // Lock order: vmap_area_lock (rank 2), publishing the area; docs/LOCKING.md.
            let _a = self.vm().areas.lock();
            // SAFETY: our new busy area; the lock orders the writes with /proc readers.
            unsafe {
                (*va).flags = flags & !(VM_UNINITIALIZED | VM_MAP_RAM_AREA);
                (*va).caller = Some(Location::caller());
                (*va).requested_size = size;
                (*va).va_start
            }
        };
        Some(VirtAddr::new(self.kva_real(va_start)))
    }

    /// `get_vm_area`: [`Machine::__get_vm_area`] anywhere in the vmalloc space.
    #[track_caller]
    pub fn get_vm_area(&self, size: usize, flags: u32) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__get_vm_area(size, PAGE_SIZE, flags, l.vmalloc_start, l.vmalloc_end)
    }

    /// `free_vm_area`: releases an area from [`Machine::get_vm_area`] (unmapping whatever
    /// was mapped in it; the address space is freed lazily).
    #[track_caller]
    pub fn free_vm_area(&self, addr: VirtAddr) {
        match self.remove_vm_area(addr, ANY_VM) {
            Some(va) => self.free_vmap_area_lazy(va),
            None => self.warn(format_args!(
                "free_vm_area: nonexistent vm area ({:#x})",
                self.to_model(addr.as_usize())
            )),
        }
    }

    /// `vmap`: maps `pages` virtually contiguously (`VM_MAP`), with a guard page unless
    /// `flags` has [`VM_NO_GUARD`].
    #[track_caller]
    pub fn vmap(&self, pages: &[PagePtr], flags: u32, prot: PteFlags) -> Option<VirtAddr> {
        if !pages.iter().all(|&p| self.check_page_ptr(p, "vmap")) {
            return None;
        }
        let l = self.kernel_layout()?;
        if pages.is_empty() || pages.len() > self.totalram_pages() {
            return None;
        }
        let size = pages.len() * PAGE_SIZE;
        let guard = if flags & VM_NO_GUARD != 0 {
            0
        } else {
            PAGE_SIZE
        };
        let va = self.alloc_vmap_area(
            (size + guard) as u64,
            PAGE_SIZE as u64,
            l.vmalloc_start,
            l.vmalloc_end,
            GfpFlags::GFP_KERNEL,
        )?;
        // SAFETY: our new busy area, VM_UNINITIALIZED until published below.
        let start = unsafe {
            (*va).caller = Some(Location::caller());
            (*va).requested_size = size;
            (*va).va_start
        };
        if !self.kernel_map_pages(start, pages, prot) {
            self.free_vmap_area_now(va);
            return None;
        }
        {
            // Lock order: vmap_area_lock (rank 2), publishing the area; docs/LOCKING.md.
            let _a = self.vm().areas.lock();
            // SAFETY: published under the lock, which orders it with readers.
            unsafe {
                (*va).flags = (flags | VM_MAP) & !(VM_ALLOC | VM_UNINITIALIZED | VM_MAP_RAM_AREA)
            };
        }
        Some(VirtAddr::new(self.kva_real(start)))
    }

    /// `vunmap`: removes a [`Machine::vmap`] mapping (the pages are the caller's). NULL is a
    /// no-op; anything else that is not a vmap area is reported.
    #[track_caller]
    pub fn vunmap(&self, addr: VirtAddr) {
        if addr.is_null() {
            return;
        }
        match self.remove_vm_area(addr, VM_MAP) {
            Some(va) => self.free_vmap_area_lazy(va),
            None => self.warn(format_args!(
                "Trying to vunmap() nonexistent vm area ({:#x})",
                self.to_model(addr.as_usize())
            )),
        }
    }

    /// `vm_map_ram`: a fast mapping of `pages` without a `vm_struct` or guard page (shown as
    /// `vm_map_ram` in /proc/vmallocinfo).
    pub fn vm_map_ram(&self, pages: &[PagePtr]) -> Option<VirtAddr> {
        if !pages.iter().all(|&p| self.check_page_ptr(p, "vm_map_ram")) {
            return None;
        }
        let l = self.kernel_layout()?;
        if pages.is_empty() {
            return None;
        }
        let size = (pages.len() * PAGE_SIZE) as u64;
        let va = self.alloc_vmap_area(
            size,
            PAGE_SIZE as u64,
            l.vmalloc_start,
            l.vmalloc_end,
            GfpFlags::GFP_KERNEL,
        )?;
        // SAFETY: our new busy area; `va_start` is not written after insertion.
        let start = unsafe { (*va).va_start };
        if !self.kernel_map_pages(start, pages, PteFlags::PAGE_KERNEL) {
            self.free_vmap_area_now(va);
            return None;
        }
        {
            // Lock order: vmap_area_lock (rank 2), publishing the area; docs/LOCKING.md.
            let _a = self.vm().areas.lock();
            // SAFETY: published under the lock, which orders it with readers.
            unsafe { (*va).flags = VM_MAP_RAM_AREA | VM_NO_GUARD };
        }
        Some(VirtAddr::new(self.kva_real(start)))
    }

    /// `vm_unmap_ram`: removes a [`Machine::vm_map_ram`] mapping of `count` pages.
    #[track_caller]
    pub fn vm_unmap_ram(&self, addr: VirtAddr, count: usize) {
        match self.remove_vm_area(addr, VM_MAP_RAM_AREA) {
            Some(va) => {
                // SAFETY: ours now.
                let n = unsafe { (va_size(&*va) >> PAGE_SHIFT) as usize };
                if n != count {
                    self.warn(format_args!("vm_unmap_ram: count {count} != mapped {n}"));
                }
                self.free_vmap_area_lazy(va)
            }
            None => self.warn(format_args!(
                "vm_unmap_ram: bad address {:#x}",
                self.to_model(addr.as_usize())
            )),
        }
    }
}
