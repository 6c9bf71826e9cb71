//! kvmalloc (mm/util.c): `kvmalloc`, `kvzalloc`, `kvfree`, `kvrealloc` — kmalloc first, vmalloc
//! as the fallback.

use core::ptr;

use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::platform::Platform;

use super::{VmLayer, INT_MAX};
use crate::slab::kfree_rcu::Channel;

/// kvfree_rcu's vmalloc channel (registered with the slab layer by `vmalloc_init`).
///
/// # Safety
/// `ctx` is this machine's `VmLayer<P>`, alive for the call; `addr` a vmalloc address handed
/// to `kvfree_rcu`, freed once.
pub(crate) unsafe fn kvfree_rcu_vfree<P: Platform>(ctx: *const (), addr: VirtAddr) {
    // SAFETY: the caller's guarantee.
    let vm = unsafe { &*ctx.cast::<VmLayer<P>>() };
    vm.vfree(addr);
}

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

    /// `kvfree_rcu(ptr, rhf)`: [`Self::kvfree`] after a grace period, batched (see
    /// [`crate::slab::kfree_rcu`]); `head_offset` is the offset of a two-word `struct
    /// rcu_head` inside the block, used only when no bulk page can be had. Never sleeps.
    /// NULL is ignored.
    ///
    /// # Safety
    /// `addr` is a live kmalloc or vmalloc block of this machine with 16 writable, 8-aligned
    /// bytes at `head_offset`, freed once; the caller does not touch it afterwards.
    pub unsafe fn kvfree_rcu(&self, addr: VirtAddr, head_offset: usize) {
        let ch = self.kvfree_channel(addr);
        // SAFETY: forwarded from the caller.
        unsafe { self.kvfree_call_rcu(addr.as_ptr(), Some(head_offset), ch) }
    }

    /// `kvfree_rcu_mightsleep(ptr)` (`kvfree_rcu` with one argument): as
    /// [`Self::kvfree_rcu`] without a head; if no bulk page can be had it waits for a grace
    /// period (so: under no lock, outside read-side sections) and frees at once. The block is
    /// not touched until [`Self::kvfree`]-like freeing reports a bad pointer then.
    pub fn kvfree_rcu_mightsleep(&self, addr: VirtAddr) {
        let ch = self.kvfree_channel(addr);
        // SAFETY: no head: nothing is written to the block; it is only passed to `kfree` or
        // `vfree` (by its channel), which check it.
        unsafe { self.kvfree_call_rcu(addr.as_ptr(), None, ch) }
    }

    fn kvfree_channel(&self, addr: VirtAddr) -> Channel {
        if self.is_vmalloc_addr(addr) {
            Channel::Vmalloc
        } else {
            Channel::Slab
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
