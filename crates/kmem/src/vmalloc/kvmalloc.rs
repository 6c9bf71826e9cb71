//! kvmalloc (mm/util.c): `kvmalloc`, `kvzalloc`, `kvfree`, `kvrealloc` — kmalloc first, vmalloc
//! as the fallback.

use core::ptr;

use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::platform::Platform;

use super::{VmLayer, INT_MAX};

impl<P: Platform> VmLayer<P> {
    /// `kvmalloc`: kmalloc first, vmalloc if that fails — Linux's rules (mm/slub.c
    /// `__kvmalloc_node_noprof`): above a page, the kmalloc attempt is made `__GFP_NOWARN`,
    /// without direct reclaim unless `__GFP_RETRY_MAYFAIL`, and without `__GFP_NOFAIL`; sizes
    /// up to a page never fall back; non-blocking GFP never falls back; sizes over `INT_MAX`
    /// are refused (with a warning unless `__GFP_NOWARN`).
    #[track_caller]
    pub fn kvmalloc(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let mut kgfp = gfp;
        if size > PAGE_SIZE {
            kgfp |= GfpFlags::__GFP_NOWARN;
            if !gfp.contains(GfpFlags::__GFP_RETRY_MAYFAIL) {
                kgfp = kgfp.without(GfpFlags::__GFP_DIRECT_RECLAIM);
            }
            kgfp = kgfp.without(GfpFlags::__GFP_NOFAIL);
        }
        if let Some(p) = self.kmalloc(size, kgfp) {
            return Some(VirtAddr::from_ptr(p.as_ptr()));
        }
        if size <= PAGE_SIZE || !gfp.allows_blocking() {
            return None;
        }
        if size > INT_MAX {
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                self.warn(format_args!("kvmalloc: size {size} > INT_MAX"));
            }
            return None;
        }
        // kvmalloc can always use VM_ALLOW_HUGE_VMAP: callers assume nothing about the
        // mapping.
        self.vmalloc_huge(size, gfp)
    }

    /// `kvzalloc`: zeroed [`Machine::kvmalloc`].
    #[track_caller]
    pub fn kvzalloc(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        self.kvmalloc(size, gfp | GfpFlags::__GFP_ZERO)
    }

    /// `kvfree`: vfree for vmalloc addresses, kfree otherwise. NULL is a no-op.
    #[track_caller]
    pub fn kvfree(&self, addr: VirtAddr) {
        if self.is_vmalloc_addr(addr) {
            self.vfree(addr);
        } else {
            self.kfree(addr.as_ptr::<u8>());
        }
    }

    /// `kvrealloc`: vrealloc for vmalloc addresses; otherwise krealloc, falling back to a
    /// kvmalloc and copy (`kvrealloc_node_align_noprof`).
    #[track_caller]
    pub fn kvrealloc(&self, p: VirtAddr, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        if self.is_vmalloc_addr(p) {
            return self.vrealloc(p, size, gfp);
        }
        let mut kgfp = gfp;
        if size > PAGE_SIZE {
            kgfp = (kgfp | GfpFlags::__GFP_NOWARN).without(GfpFlags::__GFP_NOFAIL);
            if !gfp.contains(GfpFlags::__GFP_RETRY_MAYFAIL) {
                kgfp = kgfp.without(GfpFlags::__GFP_DIRECT_RECLAIM);
            }
        }
        if let Some(n) = self.krealloc(p.as_ptr::<u8>(), size, kgfp) {
            return Some(VirtAddr::from_ptr(n.as_ptr()));
        }
        let n = self.kvmalloc(size, gfp)?;
        if !p.is_null() {
            let old = self.ksize(p.as_ptr::<u8>()).min(size);
            // SAFETY: the old object has `ksize` bytes, the new one at least `size`.
            unsafe { ptr::copy_nonoverlapping(p.as_ptr::<u8>(), n.as_ptr::<u8>(), old) };
            self.kfree(p.as_ptr::<u8>());
        }
        Some(n)
    }
}
