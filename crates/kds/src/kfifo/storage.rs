//! Where a fifo keeps its elements: inline, allocated or borrowed storage.

use core::alloc::{GlobalAlloc, Layout};
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::sync::Slot;

pub(super) mod private {
    use super::Slot;
    /// The sealed part of [`super::Storage`].
    pub trait Store<T> {
        /// The first slot.
        fn slots(&self) -> *const Slot<T>;
        /// The number of slots, a power of two `>= 2`.
        fn size(&self) -> u32;
    }
}

/// Where a fifo keeps its elements: [`Inline`], [`Allocated`] or [`Borrowed`] (sealed).
pub trait Storage<T>: private::Store<T> {}

/// Storage inside the fifo: `N` elements (`DECLARE_KFIFO(name, T, N)`).
pub struct Inline<T, const N: usize> {
    pub(super) buf: [Slot<T>; N],
}

impl<T, const N: usize> Inline<T, N> {
    pub(super) const CHECK: () = assert!(
        N.is_power_of_two() && N >= 2 && N <= 1 << 31,
        "kfifo size must be a power of two >= 2"
    );
}

impl<T, const N: usize> private::Store<T> for Inline<T, N> {
    #[inline(always)]
    fn slots(&self) -> *const Slot<T> {
        self.buf.as_ptr()
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        N as u32
    }
}
impl<T, const N: usize> Storage<T> for Inline<T, N> {}

/// An allocator for dynamic fifos (`kfifo_alloc`): in-kernel code implements it with kmalloc
/// and its GFP flags, hosted code can use [`GlobalAllocator`].
///
/// # Safety
/// `alloc` must return memory valid for `layout` (or `None`) that stays valid until passed to
/// `free` with the same layout.
pub unsafe trait KfifoAlloc {
    /// Allocates memory for `layout`, or returns `None` on exhaustion.
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>>;
    /// Frees memory returned by [`KfifoAlloc::alloc`].
    ///
    /// # Safety
    /// `ptr` must come from `alloc` on this allocator with this `layout`, and not be used
    /// afterwards.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout);
}

/// Adapts any [`GlobalAlloc`] (e.g. `std::alloc::System`) to [`KfifoAlloc`].
#[derive(Debug, Default, Clone, Copy)]
pub struct GlobalAllocator<A>(pub A);

// SAFETY: `GlobalAlloc`'s contract is the one `KfifoAlloc` asks for (a null return is mapped to
// `None`; sizes are never zero since fifos have at least 2 elements).
unsafe impl<A: GlobalAlloc> KfifoAlloc for GlobalAllocator<A> {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: `layout` has a non-zero size (at least two elements of a sized type; a
        // zero-sized `T` is rejected by `KfifoAllocated::alloc`).
        NonNull::new(unsafe { self.0.alloc(layout) })
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded caller guarantee.
        unsafe { self.0.dealloc(ptr.as_ptr(), layout) }
    }
}

/// Storage from a [`KfifoAlloc`], freed on drop (`kfifo_alloc` / `kfifo_free`).
pub struct Allocated<T, A: KfifoAlloc> {
    pub(super) data: NonNull<Slot<T>>,
    pub(super) size: u32,
    pub(super) alloc: A,
}

impl<T, A: KfifoAlloc> private::Store<T> for Allocated<T, A> {
    #[inline(always)]
    fn slots(&self) -> *const Slot<T> {
        self.data.as_ptr()
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        self.size
    }
}
impl<T, A: KfifoAlloc> Storage<T> for Allocated<T, A> {}

impl<T, A: KfifoAlloc> Drop for Allocated<T, A> {
    fn drop(&mut self) {
        let layout =
            Layout::array::<Slot<T>>(self.size as usize).expect("layout was valid at alloc");
        // SAFETY: allocated in `KfifoAllocated::alloc` with this layout and allocator.
        unsafe { self.alloc.free(self.data.cast(), layout) }
    }
}

/// Storage in a caller's buffer (`kfifo_init`).
pub struct Borrowed<'b, T> {
    pub(super) data: *const Slot<T>,
    pub(super) size: u32,
    pub(super) _b: PhantomData<&'b mut [T]>,
}

impl<T> private::Store<T> for Borrowed<'_, T> {
    #[inline(always)]
    fn slots(&self) -> *const Slot<T> {
        self.data
    }
    #[inline(always)]
    fn size(&self) -> u32 {
        self.size
    }
}
impl<T> Storage<T> for Borrowed<'_, T> {}
