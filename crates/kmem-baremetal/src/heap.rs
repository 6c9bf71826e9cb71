//! The kernel heap: the `#[global_allocator]`, so `alloc` collections (`Box`, `Vec`,
//! `BTreeMap`, …) inside this kernel allocate from kmem, and [`KernelNodeAlloc`], the
//! [`kds::alloc::NodeAlloc`] that kds structures (the rbtree map…) take, passing their GFP flags
//! through.
//!
//! Backend: the buddy allocator, one power-of-two block of pages per allocation
//! (`__get_free_pages`), until kmem's SLUB/kmalloc is available. Blocks are aligned to their
//! size (buddy blocks are naturally aligned, and the direct map starts on a 1 GiB boundary), so
//! any alignment up to the block size is honoured.
//!
//! Before kmem has booted, and for requests above `MAX_PAGE_ORDER`, allocation returns null
//! (the `alloc` crate then reports an allocation error, which panics: the run fails).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};

use kmem::{GfpFlags, Order, VirtAddr};

use crate::mm::MACHINE;

/// The global allocator of the kernel.
pub struct KernelHeap;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;

/// The block order that serves `layout` (`None` if too large).
fn order_for(layout: Layout) -> Option<Order> {
    Order::for_size(layout.size().max(layout.align()))
}

/// Allocates for `layout` with `gfp`; null on failure.
fn alloc_with(layout: Layout, gfp: GfpFlags) -> *mut u8 {
    let (Some(mm), Some(order)) = (MACHINE.get(), order_for(layout)) else {
        return null_mut();
    };
    match mm.__get_free_pages(gfp, order) {
        Some(va) => va.as_ptr(),
        None => null_mut(),
    }
}

/// Frees a block from [`alloc_with`] with the same layout.
fn free_with(ptr: *mut u8, layout: Layout) {
    if let (Some(mm), Some(order)) = (MACHINE.get(), order_for(layout)) {
        mm.free_pages(VirtAddr::from_ptr(ptr), order);
    }
}

// SAFETY: `alloc_with` returns null or a fresh buddy block of at least `max(size, align)` bytes
// aligned to its own size (hence to `align`), owned until `dealloc` frees it with the same
// layout and therefore the same order.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_with(layout, GfpFlags::GFP_KERNEL)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_with(layout, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        free_with(ptr, layout)
    }
}

/// kds's node allocator on the kernel heap, with the caller's GFP flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelNodeAlloc;

// SAFETY: as for the global allocator; zero-sized layouts get a dangling aligned pointer and are
// never passed to the backend.
unsafe impl kds::alloc::NodeAlloc for KernelNodeAlloc {
    fn alloc(&self, layout: Layout, gfp: kds::alloc::Gfp) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return NonNull::new(layout.align() as *mut u8);
        }
        // kds's Gfp has the bit values of Linux's gfp_t, like kmem's GfpFlags.
        NonNull::new(alloc_with(layout, GfpFlags::from_bits(gfp.bits())))
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            free_with(ptr.as_ptr(), layout);
        }
    }
}
