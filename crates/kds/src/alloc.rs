//! Node allocation for the structures that allocate (XArray, B+tree, the safe rbtree map).
//!
//! `kds` sits below the memory allocator (`kmem` depends on `kds`), so it cannot call kmalloc.
//! A structure that needs nodes is generic over [`NodeAlloc`], the allocator passed in by its
//! owner (like a mempool in lib/btree.c or the slab cache of lib/radix-tree.c). Every allocation
//! takes [`Gfp`] flags, with the bit values of Linux's `gfp_t`, and may fail: callers turn a
//! failure into [`Error::ENOMEM`](crate::Error::ENOMEM), never a panic.
//!
//! With the cargo feature `alloc` (off by default), `Global` implements [`NodeAlloc`] on the
//! `alloc` crate's global allocator.

use core::alloc::Layout;
use core::ptr::NonNull;

/// A set of GFP flags (`gfp_t`) with Linux's bit values.
///
/// Bit numbers are the `___GFP_*_BIT` enum of include/linux/gfp_types.h; `kmem::gfp::GfpFlags`
/// uses the same bits, so `Gfp::from_bits(flags.bits())` converts between them. `kds` itself
/// only forwards the flags to the allocator (and reads [`Gfp::__GFP_ZERO`] nowhere: nodes are
/// always initialised by the structure).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(transparent)]
pub struct Gfp(u32);

impl Gfp {
    /// `__GFP_HIGH` (bit 5): may use part of the emergency reserves.
    pub const __GFP_HIGH: Gfp = Gfp(1 << 5);
    /// `__GFP_IO` (bit 6): may start physical I/O.
    pub const __GFP_IO: Gfp = Gfp(1 << 6);
    /// `__GFP_FS` (bit 7): may call into the filesystem.
    pub const __GFP_FS: Gfp = Gfp(1 << 7);
    /// `__GFP_ZERO` (bit 8): return zeroed memory.
    pub const __GFP_ZERO: Gfp = Gfp(1 << 8);
    /// `__GFP_DIRECT_RECLAIM` (bit 10): the caller may sleep and reclaim.
    pub const __GFP_DIRECT_RECLAIM: Gfp = Gfp(1 << 10);
    /// `__GFP_KSWAPD_RECLAIM` (bit 11): wake kswapd at the low watermark.
    pub const __GFP_KSWAPD_RECLAIM: Gfp = Gfp(1 << 11);
    /// `__GFP_NOWARN` (bit 13): no allocation-failure report.
    pub const __GFP_NOWARN: Gfp = Gfp(1 << 13);
    /// `__GFP_ACCOUNT` (bit 22): charge to the memory cgroup.
    pub const __GFP_ACCOUNT: Gfp = Gfp(1 << 22);
    /// `__GFP_RECLAIM`: direct and kswapd reclaim.
    pub const __GFP_RECLAIM: Gfp = Gfp(Self::__GFP_DIRECT_RECLAIM.0 | Self::__GFP_KSWAPD_RECLAIM.0);
    /// `GFP_KERNEL`: may sleep, do I/O and call the filesystem.
    pub const GFP_KERNEL: Gfp = Gfp(Self::__GFP_RECLAIM.0 | Self::__GFP_IO.0 | Self::__GFP_FS.0);
    /// `GFP_KERNEL_ACCOUNT`: `GFP_KERNEL`, charged to the memory cgroup.
    pub const GFP_KERNEL_ACCOUNT: Gfp = Gfp(Self::GFP_KERNEL.0 | Self::__GFP_ACCOUNT.0);
    /// `GFP_ATOMIC`: cannot sleep, may use reserves.
    pub const GFP_ATOMIC: Gfp = Gfp(Self::__GFP_HIGH.0 | Self::__GFP_KSWAPD_RECLAIM.0);
    /// `GFP_NOWAIT`: cannot sleep, no reserves (`__GFP_KSWAPD_RECLAIM|__GFP_NOWARN`, Linux 6.18).
    pub const GFP_NOWAIT: Gfp = Gfp(Self::__GFP_KSWAPD_RECLAIM.0 | Self::__GFP_NOWARN.0);

    /// Returns the flags with the given raw `gfp_t` bits.
    pub const fn from_bits(bits: u32) -> Gfp {
        Gfp(bits)
    }

    /// Returns the raw `gfp_t` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Returns true if every flag of `other` is set in `self`.
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }

    /// Returns true if the allocation may sleep (`gfpflags_allow_blocking`).
    pub const fn allows_blocking(self) -> bool {
        self.contains(Self::__GFP_DIRECT_RECLAIM)
    }
}

impl core::ops::BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}

/// An allocator of fixed-layout nodes, passed to the structures that allocate.
///
/// Implementations may fail at any time (return `None`); the structures report
/// [`Error::ENOMEM`](crate::Error::ENOMEM) and stay consistent. A test allocator that fails on
/// demand is how the kernel's "inject allocation failure" tests are ported.
///
/// # Safety
/// `alloc` must return either `None` or a pointer to a fresh block valid for reads and writes of
/// `layout.size()` bytes, aligned to `layout.align()`, that stays valid until passed to `free`.
pub unsafe trait NodeAlloc {
    /// Allocates a block for `layout` with the allocation context `gfp`.
    fn alloc(&self, layout: Layout, gfp: Gfp) -> Option<NonNull<u8>>;

    /// Frees a block returned by [`NodeAlloc::alloc`].
    ///
    /// # Safety
    /// `ptr` must come from `self.alloc(layout, _)` with the same `layout`, and not have been freed.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout);

    /// The RCU domain whose grace periods protect lock-free readers of structures built on
    /// this allocator (the XArray, IDR), or `None` (the default): such structures then fall
    /// back to a reader count of their own. An allocator backed by a kmem machine returns the
    /// machine's RCU.
    fn rcu(&self) -> Option<&dyn crate::rcu::RcuDomain> {
        None
    }
}

// SAFETY: forwards to `A`, which upholds the contract.
unsafe impl<A: NodeAlloc + ?Sized> NodeAlloc for &A {
    #[inline]
    fn alloc(&self, layout: Layout, gfp: Gfp) -> Option<NonNull<u8>> {
        (**self).alloc(layout, gfp)
    }
    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantee is passed on unchanged.
        unsafe { (**self).free(ptr, layout) }
    }
    #[inline]
    fn rcu(&self) -> Option<&dyn crate::rcu::RcuDomain> {
        (**self).rcu()
    }
}

/// The `alloc` crate's global allocator as a [`NodeAlloc`] (feature `alloc`).
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Global;

#[cfg(feature = "alloc")]
// SAFETY: `alloc::alloc::alloc` returns null or a block fitting `layout` (size is never 0 here:
// zero-sized layouts are answered with a dangling aligned pointer and never passed to dealloc).
unsafe impl NodeAlloc for Global {
    #[inline]
    fn alloc(&self, layout: Layout, _gfp: Gfp) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            // A zero-sized node: any aligned non-null address is valid for 0 bytes.
            return NonNull::new(layout.align() as *mut u8);
        }
        // SAFETY: `layout` has a non-zero size.
        NonNull::new(unsafe { crate::alloc_crate::alloc::alloc(layout) })
    }
    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return;
        }
        // SAFETY: the caller guarantees `ptr` came from `alloc` with this layout.
        unsafe { crate::alloc_crate::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}
