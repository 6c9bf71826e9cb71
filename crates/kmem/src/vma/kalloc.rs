//! Where process-memory objects come from: kmalloc of the machine they belong to, behind a
//! small type-erased handle so that [`super::MmStruct`] is not generic over the platform.
//!
//! Linux has a slab cache per object (`vm_area_cachep`, `mm_cachep`, `anon_vma_cachep`,
//! `maple_node_cache`); kmem uses the kmalloc caches, so that a machine that runs no process
//! shows the /proc files of one without this subsystem.

use core::alloc::Layout;
use core::ptr::NonNull;

use kds::alloc::{Gfp, NodeAlloc};

use crate::gfp::GfpFlags;
use crate::highmem::KmapLayer;
use crate::platform::Platform;

/// A handle on a machine's kmalloc (see the module documentation). Only kmem makes and
/// uses one (it points into the machine's state, so it must not outlive it).
#[derive(Clone, Copy)]
pub struct KAlloc {
    ctx: *const (),
    alloc: unsafe fn(*const (), usize) -> Option<NonNull<u8>>,
    free: unsafe fn(*const (), *mut u8),
}

// SAFETY: the context is a `KmapLayer` inside a machine's state, which is Send + Sync and
// outlives every object made from this handle (objects live in the state's task layer).
unsafe impl Send for KAlloc {}
// SAFETY: `KAlloc` is a copyable pair of function pointers and a context pointer to a `KmapLayer`
// in a machine's state, which is Sync and outlives every handle, so sharing a handle between
// threads only shares that Sync layer.
unsafe impl Sync for KAlloc {}

/// # Safety
/// `ctx` must be a live `KmapLayer<P>`.
unsafe fn kmalloc_fn<P: Platform>(ctx: *const (), size: usize) -> Option<NonNull<u8>> {
    // SAFETY: by the caller's guarantee.
    let l = unsafe { &*ctx.cast::<KmapLayer<P>>() };
    l.kmalloc(size, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)
}

/// # Safety
/// `ctx` must be a live `KmapLayer<P>`; `p` from `kmalloc_fn` on it.
unsafe fn kfree_fn<P: Platform>(ctx: *const (), p: *mut u8) {
    // SAFETY: by the caller's guarantee.
    let l = unsafe { &*ctx.cast::<KmapLayer<P>>() };
    l.kfree(p);
}

impl<P: Platform> KmapLayer<P> {
    /// The kmalloc handle process memory allocates its objects with. The layer must not
    /// move while objects made through the handle live (it does not: it is part of a
    /// machine's state, which never moves).
    pub(crate) fn kalloc(&self) -> KAlloc {
        KAlloc {
            ctx: (self as *const Self).cast(),
            alloc: kmalloc_fn::<P>,
            free: kfree_fn::<P>,
        }
    }
}

impl KAlloc {
    /// Allocates a `T` holding `v`; `None` when memory is short.
    pub(crate) fn new_box<T>(&self, v: T) -> Option<NonNull<T>> {
        const { assert!(core::mem::align_of::<T>() <= 8) };
        // SAFETY: `ctx` is the live layer this handle was made from (see `kalloc`).
        let p = unsafe { (self.alloc)(self.ctx, core::mem::size_of::<T>().max(1)) }?;
        let p = p.cast::<T>();
        // SAFETY: a fresh kmalloc block of at least `size_of::<T>()` bytes, 8-aligned
        // (ARCH_KMALLOC_MINALIGN), which suffices for `T` (checked above).
        unsafe { p.as_ptr().write(v) };
        Some(p)
    }

    /// Drops and frees a `T` from [`KAlloc::new_box`], returning its value.
    ///
    /// # Safety
    /// `p` must come from `new_box` on this handle's machine and not be used afterwards.
    pub(crate) unsafe fn take_box<T>(&self, p: NonNull<T>) -> T {
        // SAFETY: by the caller's guarantee `p` holds a live `T` we now own.
        let v = unsafe { p.as_ptr().read() };
        // SAFETY: `p` came from `new_box` on this handle's machine (caller's guarantee), so it is a
        // block of this machine's kmalloc; its value was moved out above and the block is not used
        // again.
        unsafe { (self.free)(self.ctx, p.as_ptr().cast()) };
        v
    }
}

impl KAlloc {
    /// Drops and frees a `T` from [`KAlloc::new_box`].
    ///
    /// # Safety
    /// As [`KAlloc::take_box`].
    pub(crate) unsafe fn free_box<T>(&self, p: NonNull<T>) {
        // SAFETY: by the caller's guarantee.
        let v = unsafe { self.take_box(p) };
        core::mem::drop(v);
    }
}

/// Maple-tree nodes need more alignment than kmalloc promises (64 bytes; a debug cache's
/// red zones shift objects): each node is carved from a block `align` bytes larger, with the
/// block's address stored in the word before the node.
// SAFETY: `alloc` returns None or a block of `layout.size()` bytes aligned to
// `layout.align()`, inside a kmalloc block that stays allocated until `free`.
unsafe impl NodeAlloc for KAlloc {
    fn alloc(&self, layout: Layout, _gfp: Gfp) -> Option<NonNull<u8>> {
        let align = layout.align().max(8);
        let bytes = layout.size().checked_add(align)?.checked_add(8)?;
        // SAFETY: `ctx` is the live layer (see `kalloc`).
        let raw = unsafe { (self.alloc)(self.ctx, bytes) }?;
        let base = raw.as_ptr() as usize;
        let node = (base + 8 + align - 1) & !(align - 1);
        let p = node as *mut u8;
        // SAFETY: `node - 8 >= base` and `node + size <= base + bytes`, so both the back
        // pointer and the node lie inside the block; `node - 8` is 8-aligned.
        unsafe { p.sub(8).cast::<usize>().write(base) };
        NonNull::new(p)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`, which stored the block's address before it.
        let base = unsafe { ptr.as_ptr().sub(8).cast::<usize>().read() };
        // SAFETY: the block came from this machine's kmalloc and is freed once.
        unsafe { (self.free)(self.ctx, base as *mut u8) };
    }
}
