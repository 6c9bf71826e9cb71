//! The kernel heap: the `#[global_allocator]`, so `alloc` collections (`Box`, `Vec`,
//! `BTreeMap`, …) inside this kernel allocate with kmem's `kmalloc`, and [`KernelNodeAlloc`],
//! the [`kds::alloc::NodeAlloc`] that kds structures (the rbtree map…) take, passing their GFP
//! flags through to `kmalloc`.
//!
//! # Alignment
//! `kmalloc` guarantees (include/linux/slab.h, the comment above `kmalloc`): at least
//! `ARCH_KMALLOC_MINALIGN` (8) bytes; for power-of-two sizes, alignment to the size; for other
//! sizes, alignment to the largest power of two dividing the size. So a layout is served by
//! `kmalloc(layout.pad_to_align().size())`: the padded size is a multiple of the alignment, hence
//! its largest power-of-two divisor is at least the alignment. Large sizes (above the kmalloc
//! caches) are compound pages, aligned to their own size. This is how Linux's Rust allocator
//! (rust/kernel/alloc/allocator.rs, `aligned_size`) calls `krealloc` too.
//!
//! SLOB (`slab=slob`, mm/slob.c of Linux 6.3) guarantees less: 8 bytes, and the size for
//! power-of-two sizes. Under it a layout aligned to more than 8 is served by `kmalloc` of the
//! padded size rounded up to a power of two.
//!
//! # kmemcheck
//! Every allocation of this heap carries `__GFP_NOTRACK` (Linux 4.14's
//! `__GFP_NOTRACK_FALSE_POSITIVE`, include/linux/gfp.h: "allocations where kmemcheck reports
//! false positives"). Rust moves values with `memcpy`, padding and the unused bytes of an enum's
//! smaller variants included: `Vec::remove` of a task whose state is `Zombie(Exit::Code(_))`
//! copied eight never-written bytes to the stack, which kmemcheck reports as a read of
//! uninitialised memory into untracked memory. Safe Rust never reads such bytes as a value, so
//! on this heap every report would be a false positive; kmemcheck keeps checking what kmem's
//! callers allocate with kmalloc and kmem_cache_alloc themselves (the kmemcheck self-tests).
//!
//! Before kmem has booted, allocation returns null (the `alloc` crate then reports an
//! allocation error, which panics: the run fails).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};

use kmem::GfpFlags;

use crate::mm::MACHINE;

/// The global allocator of the kernel.
pub struct KernelHeap;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;

/// The `kmalloc` size that serves `layout` with its alignment (never 0: `kmalloc(0)` returns
/// `ZERO_SIZE_PTR`, which is not memory).
fn kmalloc_size(layout: Layout, slob: bool) -> usize {
    let n = layout.pad_to_align().size().max(1);
    if slob && layout.align() > 8 {
        n.next_power_of_two()
    } else {
        n
    }
}

/// Whether the kernel booted SLOB.
fn is_slob(mm: &crate::mm::Kmem) -> bool {
    mm.slab_allocator() == kmem::slab::common::SlabAllocatorKind::Slob
}

/// `kmalloc` for `layout` with `gfp`; null on failure.
fn alloc_with(layout: Layout, gfp: GfpFlags) -> *mut u8 {
    let Some(mm) = MACHINE.get() else {
        return null_mut();
    };
    let gfp = gfp | GfpFlags::__GFP_NOTRACK;
    match mm.kmalloc(kmalloc_size(layout, is_slob(mm)), gfp) {
        Some(p) => {
            debug_assert!(
                p.as_ptr().align_offset(layout.align()) == 0,
                "kmalloc broke {layout:?}"
            );
            p.as_ptr()
        }
        None => null_mut(),
    }
}

/// `kfree`.
fn free(ptr: *mut u8) {
    if let Some(mm) = MACHINE.get() {
        mm.kfree(ptr);
    }
}

// SAFETY: `alloc_with` returns null or a fresh kmalloc object of at least the padded size,
// aligned to `layout.align()` (module documentation), owned until `dealloc` kfrees it;
// `realloc` uses krealloc with the padded new size, which keeps the contents up to the old size
// and returns an object aligned as a fresh kmalloc of that size would be (or the same object
// when it is large enough, whose alignment is unchanged).
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_with(layout, GfpFlags::GFP_KERNEL)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_with(layout, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        free(ptr)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(mm) = MACHINE.get() else {
            return null_mut();
        };
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize` (GlobalAlloc::realloc's contract).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOTRACK;
        match mm.krealloc(ptr, kmalloc_size(new, is_slob(mm)), gfp) {
            Some(p) => p.as_ptr(),
            None => null_mut(),
        }
    }
}

/// kds's node allocator on `kmalloc`, with the caller's GFP flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelNodeAlloc;

// SAFETY: `alloc` returns None or, through `alloc_with` (as the global allocator does), a fresh
// kmalloc object of at least `layout.size()` bytes aligned to `layout.align()`, owned until
// `free` kfrees it; zero-sized layouts get a dangling aligned pointer and are never passed to
// kmalloc or kfree.
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
            free(ptr.as_ptr());
        }
    }

    /// The machine's RCU: XArray and IDR readers are RCU read-side sections, retired nodes
    /// are freed after grace periods.
    fn rcu(&self) -> Option<&dyn kds::rcu::RcuDomain> {
        let m = MACHINE.get()?;
        let mm: &kmem::mm::MemoryModel<crate::platform::BareMetal> = m;
        Some(mm)
    }
}
