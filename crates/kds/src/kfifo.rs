//! Lock-free single-producer/single-consumer FIFOs, as in `<linux/kfifo.h>` and lib/kfifo.c.
//!
//! # Layout and indices
//! A fifo is a power-of-two ring of `size` elements plus two free-running `u32` indices, `in`
//! (next slot to write) and `out` (next slot to read). They are never wrapped explicitly: the
//! slot of index `i` is `i & (size - 1)`, the fill level is `in - out` (wrapping), and the free
//! space `size - (in - out)`. This is why the size must be a power of two (a divisor of 2^32)
//! and why it is at most 2^31.
//!
//! ```text
//!   out & mask           in & mask
//!       v                    v
//!  [ .. | a | b | c | d | .. ]     len = in - out = 4
//! ```
//!
//! # Concurrency (the ordering Linux relies on)
//! One producer and one consumer may run at the same time without a lock:
//! 1. the producer reads `out` with *acquire* (the consumer has finished reading those slots),
//!    copies into the free slots, then publishes `in` with *release*;
//! 2. the consumer reads `in` with *acquire* (the producer's copies are visible), copies out,
//!    then publishes `out` with *release*.
//!
//! Each side only writes its own index, so no read-modify-write is needed (Linux's
//! `smp_wmb()` in `kfifo_copy_in/out` plays the role of the release stores). With more than one
//! producer or consumer a lock is needed, as in Linux (`kfifo_in_spinlocked`). The safe API
//! enforces the contract: mutating methods take `&mut self`, and [`KfifoBase::split`] hands out
//! one [`Producer`] and one [`Consumer`] that may live on different threads. The unsafe
//! `*_unchecked` methods are the raw lockless entry points for callers that uphold the contract
//! themselves. The loom test `tests/kfifo_loom.rs` model-checks this protocol.
//!
//! # Kinds
//! - Element fifos [`KfifoBase<T, S>`] of any `T: Copy` (a byte fifo is `T = u8`), with storage
//!   inside ([`Kfifo<T, N>`], `DECLARE_KFIFO`/`DEFINE_KFIFO`), allocated by a caller-chosen
//!   allocator ([`KfifoAllocated`], `kfifo_alloc`, rounding up to a power of two), or over a
//!   caller's buffer ([`KfifoBuffer`], `kfifo_init`, rounding down). Sizes below 2 are
//!   rejected.
//! - Record fifos [`KfifoRec<S, R>`] over a byte fifo: each record is stored as an `R`-byte
//!   (1 or 2) little-endian length header followed by the payload (`STRUCT_KFIFO_REC_1/2`).
//!
//! The Linux-named free functions (`kfifo_in`, `kfifo_out`, ...) work on both kinds through the
//! [`Fifo`] trait.

use core::alloc::{GlobalAlloc, Layout};
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::sync::{
    copy_from_slots, copy_to_slots, load_mut, new_slot, slots_as_mut_ptr, slots_from_mut_ptr,
    store_mut, AtomicU32, CachePadded, Ordering, Slot,
};

/// Why creating a dynamic fifo or a user copy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KfifoError {
    /// `-EINVAL`: the size is below 2 elements (or above 2^31).
    Inval,
    /// `-ENOMEM`: the allocator returned nothing.
    NoMem,
    /// `-EFAULT`: a user copy faulted; `copied` bytes were transferred before the fault.
    Fault {
        /// Bytes transferred before the fault.
        copied: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

mod private {
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
    buf: [Slot<T>; N],
}

impl<T, const N: usize> Inline<T, N> {
    const CHECK: () = assert!(
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
    data: NonNull<Slot<T>>,
    size: u32,
    alloc: A,
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
    data: *const Slot<T>,
    size: u32,
    _b: PhantomData<&'b mut [T]>,
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

// ---------------------------------------------------------------------------------------------
// The element fifo
// ---------------------------------------------------------------------------------------------

/// A fifo of `T` elements over storage `S` (`struct __kfifo` + its buffer).
///
/// # Invariants
/// `in - out <= size` (wrapping arithmetic); slots `out..in` (masked) are initialised.
pub struct KfifoBase<T: Copy, S: Storage<T>> {
    in_: CachePadded<AtomicU32>,
    out: CachePadded<AtomicU32>,
    store: S,
    _t: PhantomData<T>,
}

// SAFETY: sharing a fifo lets at most one producer and one consumer run at once (guaranteed by
// `&mut self` methods, `split`, or the callers of the unsafe `_unchecked` methods), and the
// index protocol in the module docs orders their slot accesses; elements move between threads.
unsafe impl<T: Copy + Send, S: Storage<T> + Send> Sync for KfifoBase<T, S> {}
// SAFETY: the fifo owns its elements and storage.
unsafe impl<T: Copy + Send, S: Storage<T> + Send> Send for KfifoBase<T, S> {}
// SAFETY: the allocation is owned; the allocator moves with it.
unsafe impl<T: Send, A: KfifoAlloc + Send> Send for Allocated<T, A> {}
// SAFETY: the borrowed buffer is exclusively borrowed for 'b.
unsafe impl<T: Send> Send for Borrowed<'_, T> {}

/// `DECLARE_KFIFO(name, T, N)` / `DEFINE_KFIFO`: a fifo with `N` elements inside.
pub type Kfifo<T, const N: usize> = KfifoBase<T, Inline<T, N>>;
/// `DECLARE_KFIFO_PTR` after `kfifo_alloc`: a fifo whose buffer came from an allocator.
pub type KfifoAllocated<T, A> = KfifoBase<T, Allocated<T, A>>;
/// A fifo over a caller's buffer (`kfifo_init`).
pub type KfifoBuffer<'b, T> = KfifoBase<T, Borrowed<'b, T>>;

#[cfg(not(loom))]
impl<T: Copy, const N: usize> Kfifo<T, N> {
    /// `DEFINE_KFIFO(name, T, N)`: an empty fifo of `N` elements (a power of two >= 2, checked
    /// at compile time).
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Inline::<T, N>::CHECK;
        Self {
            in_: CachePadded(AtomicU32::new(0)),
            out: CachePadded(AtomicU32::new(0)),
            store: Inline {
                buf: [const { new_slot() }; N],
            },
            _t: PhantomData,
        }
    }
}

#[cfg(loom)]
impl<T: Copy, const N: usize> Kfifo<T, N> {
    /// `DEFINE_KFIFO(name, T, N)` (loom build).
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Inline::<T, N>::CHECK;
        Self {
            in_: CachePadded(AtomicU32::new(0)),
            out: CachePadded(AtomicU32::new(0)),
            store: Inline {
                buf: core::array::from_fn(|_| new_slot()),
            },
            _t: PhantomData,
        }
    }
}

impl<T: Copy, const N: usize> Default for Kfifo<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

fn with_store<T: Copy, S: Storage<T>>(store: S) -> KfifoBase<T, S> {
    KfifoBase {
        in_: CachePadded(AtomicU32::new(0)),
        out: CachePadded(AtomicU32::new(0)),
        store,
        _t: PhantomData,
    }
}

impl<T: Copy, A: KfifoAlloc> KfifoAllocated<T, A> {
    /// `kfifo_alloc(fifo, size, gfp)`: allocates room for `size` elements rounded up to a
    /// power of two, with `alloc` (which carries the GFP flags in kernel use).
    ///
    /// # Errors
    /// [`KfifoError::Inval`] if the rounded size is below 2 or above 2^31, or `T` is zero-sized;
    /// [`KfifoError::NoMem`] if the allocator fails.
    pub fn alloc(size: usize, alloc: A) -> Result<Self, KfifoError> {
        let size = size.checked_next_power_of_two().ok_or(KfifoError::Inval)?;
        if !(2..=1 << 31).contains(&size) || core::mem::size_of::<T>() == 0 {
            return Err(KfifoError::Inval);
        }
        let layout = Layout::array::<Slot<T>>(size).map_err(|_| KfifoError::Inval)?;
        let data = alloc
            .alloc(layout)
            .ok_or(KfifoError::NoMem)?
            .cast::<Slot<T>>();
        Ok(with_store(Allocated {
            data,
            size: size as u32,
            alloc,
        }))
    }
}

impl<'b, T: Copy> KfifoBuffer<'b, T> {
    /// `kfifo_init(fifo, buffer, size)`: a fifo over `buffer`, using the largest power of two
    /// of elements that fits.
    ///
    /// # Errors
    /// [`KfifoError::Inval`] if fewer than 2 elements fit.
    pub fn init(buffer: &'b mut [T]) -> Result<Self, KfifoError> {
        let n = buffer.len().min(1 << 31);
        if n < 2 {
            return Err(KfifoError::Inval);
        }
        let size = 1usize << (usize::BITS - 1 - n.leading_zeros());
        Ok(with_store(Borrowed {
            data: slots_from_mut_ptr(buffer.as_mut_ptr()),
            size: size as u32,
            _b: PhantomData,
        }))
    }
}

/// One DMA scatter-gather segment: a run of fifo buffer memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaSegment {
    /// Start of the run.
    pub addr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

/// The (up to two) segments of `kfifo_dma_{in,out}_prepare`: the run up to the end of the
/// buffer, and the wrapped-around run from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaSegments {
    segs: [DmaSegment; 2],
    n: usize,
}

impl DmaSegments {
    const EMPTY: DmaSegment = DmaSegment {
        addr: core::ptr::null_mut(),
        len: 0,
    };

    /// The segments (0, 1 or 2; zero means nothing to transfer).
    pub fn as_slice(&self) -> &[DmaSegment] {
        &self.segs[..self.n]
    }

    /// The number of segments (Linux's returned `nents`).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there is no segment.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Total bytes over all segments.
    pub fn total(&self) -> usize {
        self.as_slice().iter().map(|s| s.len).sum()
    }
}

/// The source of `kfifo_from_user`: memory that may fault, like a user-space buffer.
pub trait UserSource {
    /// Copies `n` bytes starting at byte `offset` of the source into `dst`; returns the number
    /// of bytes *not* copied (0 on success), like `copy_from_user`. The bytes copied are a
    /// prefix.
    ///
    /// # Safety
    /// `dst` must be valid for `n` byte writes.
    unsafe fn copy_from_user(&self, dst: *mut u8, offset: usize, n: usize) -> usize;
}

/// The destination of `kfifo_to_user`.
pub trait UserSink {
    /// Copies `n` bytes from `src` to byte `offset` of the sink; returns the number of bytes
    /// *not* copied, like `copy_to_user`.
    ///
    /// # Safety
    /// `src` must be valid for `n` byte reads.
    unsafe fn copy_to_user(&mut self, offset: usize, src: *const u8, n: usize) -> usize;
}

/// A "user" buffer in ordinary memory that faults at byte `fault_at` (never, with `usize::MAX`).
#[derive(Debug)]
pub struct UserBuf<B> {
    /// The bytes.
    pub buf: B,
    /// The first byte offset that faults.
    pub fault_at: usize,
}

impl<B: AsRef<[u8]>> UserSource for UserBuf<B> {
    unsafe fn copy_from_user(&self, dst: *mut u8, offset: usize, n: usize) -> usize {
        let b = self.buf.as_ref();
        let end = (offset + n).min(self.fault_at).min(b.len());
        let ok = end.saturating_sub(offset);
        // SAFETY: `ok` bytes are in bounds of `b`; `dst` valid for `n >= ok` writes (caller).
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr().add(offset), dst, ok) };
        n - ok
    }
}

impl<B: AsMut<[u8]>> UserSink for UserBuf<B> {
    unsafe fn copy_to_user(&mut self, offset: usize, src: *const u8, n: usize) -> usize {
        let fault_at = self.fault_at;
        let b = self.buf.as_mut();
        let end = (offset + n).min(fault_at).min(b.len());
        let ok = end.saturating_sub(offset);
        // SAFETY: `ok` bytes are in bounds of `b`; `src` valid for `n >= ok` reads (caller).
        unsafe { core::ptr::copy_nonoverlapping(src, b.as_mut_ptr().add(offset), ok) };
        n - ok
    }
}

impl<T: Copy, S: Storage<T>> KfifoBase<T, S> {
    #[inline(always)]
    fn mask(&self) -> u32 {
        private::Store::size(&self.store) - 1
    }

    #[inline(always)]
    fn slots(&self) -> *const Slot<T> {
        private::Store::slots(&self.store)
    }

    /// `kfifo_size`: the capacity in elements.
    #[inline]
    pub fn size(&self) -> usize {
        private::Store::size(&self.store) as usize
    }

    /// `kfifo_len`: the number of stored elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.in_
            .load(Ordering::Acquire)
            .wrapping_sub(self.out.load(Ordering::Acquire)) as usize
    }

    /// `kfifo_avail`: the number of free element slots.
    #[inline]
    pub fn avail(&self) -> usize {
        self.size() - self.len()
    }

    /// `kfifo_is_empty`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `kfifo_is_full`.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() > self.mask() as usize
    }

    /// `kfifo_esize`: the element size in bytes.
    pub const fn esize(&self) -> usize {
        core::mem::size_of::<T>()
    }

    /// `kfifo_reset`: empties the fifo (both indices to 0).
    pub fn reset(&mut self) {
        self.in_.store(0, Ordering::Relaxed);
        self.out.store(0, Ordering::Relaxed);
    }

    /// `kfifo_reset_out`: discards the contents by moving `out` up to `in` (a consumer-side
    /// operation).
    pub fn reset_out(&mut self) {
        let i = self.in_.load(Ordering::Acquire);
        self.out.store(i, Ordering::Release);
    }

    /// Copies `len` elements from `src` into the ring at index `off` (`kfifo_copy_in`).
    ///
    /// # Safety
    /// The slots `off..off+len` must be free and owned by the caller (producer side).
    #[inline(always)]
    unsafe fn copy_in(&self, src: *const T, len: u32, off: u32) {
        let size = self.mask() + 1;
        let off = off & self.mask();
        let l = len.min(size - off);
        // SAFETY: `off + l <= size` and `len - l <= off` (since `len <= size`), so both runs are
        // in bounds; the caller owns these slots.
        unsafe {
            copy_to_slots(self.slots().add(off as usize), src, l as usize);
            if l < len {
                copy_to_slots(self.slots(), src.add(l as usize), (len - l) as usize);
            }
        }
    }

    /// Copies `len` elements from the ring at index `off` into `dst` (`kfifo_copy_out`).
    ///
    /// # Safety
    /// The slots `off..off+len` must be filled and owned by the caller (consumer side).
    #[inline(always)]
    unsafe fn copy_out(&self, dst: *mut T, len: u32, off: u32) {
        let size = self.mask() + 1;
        let off = off & self.mask();
        let l = len.min(size - off);
        // SAFETY: as in `copy_in`.
        unsafe {
            copy_from_slots(dst, self.slots().add(off as usize), l as usize);
            if l < len {
                copy_from_slots(dst.add(l as usize), self.slots(), (len - l) as usize);
            }
        }
    }

    /// Producer side of `kfifo_in` with the producer's own index `i` (== `in`) and a known
    /// `out` bound; returns elements written. The `*_with_*` helpers all take both indices so
    /// the split handles can keep their own index in a register instead of re-reading it.
    #[inline(always)]
    unsafe fn in_with_out(&self, buf: &[T], i: u32, out: u32) -> (u32, u32) {
        // SAFETY: forwarded caller guarantee (producer side, `i == in`).
        let len = unsafe { self.write_at(buf, i, out) };
        self.in_.store(i.wrapping_add(len), Ordering::Release);
        (len, 0)
    }

    /// Copies as many elements of `buf` as fit into the ring at index `i` (== `in`) given the
    /// bound `out`; returns how many. Does not publish them.
    ///
    /// The common case (everything fits without wrapping) is a predicted branch whose result,
    /// `buf.len()`, does not depend on the value loaded from `out`, so back-to-back operations
    /// do not wait on each other's index stores.
    ///
    /// # Safety
    /// Producer side: the caller is the only writer of slots `in..` and of `in`.
    #[inline(always)]
    unsafe fn write_at(&self, buf: &[T], i: u32, out: u32) -> u32 {
        let n = buf.len();
        let size = self.mask() + 1;
        let off = i & self.mask();
        let unused = size - i.wrapping_sub(out);
        if n <= (size - off) as usize && n as u32 <= unused {
            // SAFETY: `off + n <= size` and the `n` slots are free and ours.
            unsafe { copy_to_slots(self.slots().add(off as usize), buf.as_ptr(), n) };
            return n as u32;
        }
        // SAFETY: forwarded caller guarantee.
        unsafe { self.write_slow(buf, i, unused) }
    }

    /// The wrapping or partial case of `write_at`, kept out of line so the fast path stays
    /// small.
    #[cold]
    #[inline(never)]
    unsafe fn write_slow(&self, buf: &[T], i: u32, unused: u32) -> u32 {
        let len = (buf.len().min(u32::MAX as usize) as u32).min(unused);
        // SAFETY: slots `in..in+len` are free (`len <= unused`) and ours (caller).
        unsafe { self.copy_in(buf.as_ptr(), len, i) };
        len
    }

    /// Copies up to `buf.len()` filled elements from index `o` (== `out`) given the bound `i`
    /// (an `in` value); returns how many. Does not consume them. Fast path as in `write_at`.
    ///
    /// # Safety
    /// Consumer side: the caller is the only reader of slots `out..` and writer of `out`.
    #[inline(always)]
    unsafe fn read_at(&self, buf: &mut [T], o: u32, i: u32) -> u32 {
        let n = buf.len();
        let size = self.mask() + 1;
        let off = o & self.mask();
        let used = i.wrapping_sub(o);
        if n <= (size - off) as usize && n as u32 <= used {
            // SAFETY: `off + n <= size` and the `n` slots are filled and ours.
            unsafe { copy_from_slots(buf.as_mut_ptr(), self.slots().add(off as usize), n) };
            return n as u32;
        }
        // SAFETY: forwarded caller guarantee.
        unsafe { self.read_slow(buf, o, used) }
    }

    /// The wrapping or partial case of `read_at`, out of line.
    #[cold]
    #[inline(never)]
    unsafe fn read_slow(&self, buf: &mut [T], o: u32, used: u32) -> u32 {
        let len = (buf.len().min(u32::MAX as usize) as u32).min(used);
        // SAFETY: slots `out..out+len` are filled (`len <= in - out`) and ours (caller).
        unsafe { self.copy_out(buf.as_mut_ptr(), len, o) };
        len
    }

    /// Producer side of `kfifo_put` with a known `out` bound.
    #[inline(always)]
    unsafe fn put_with_out(&self, val: T, i: u32, out: u32) -> bool {
        if i.wrapping_sub(out) > self.mask() {
            return false;
        }
        // SAFETY: the slot of `in` is free (checked above) and the producer owns it.
        unsafe { copy_to_slots(self.slots().add((i & self.mask()) as usize), &val, 1) };
        self.in_.store(i.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side of `kfifo_get`/`kfifo_peek` with a known `in` bound.
    #[inline(always)]
    unsafe fn get_with_in(&self, o: u32, i: u32, consume: bool) -> Option<T> {
        if i == o {
            return None;
        }
        let mut v = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the slot of `out` is filled (`in != out`) and the consumer owns it.
        unsafe {
            copy_from_slots(
                v.as_mut_ptr(),
                self.slots().add((o & self.mask()) as usize),
                1,
            )
        };
        if consume {
            self.out.store(o.wrapping_add(1), Ordering::Release);
        }
        // SAFETY: written just above.
        Some(unsafe { v.assume_init() })
    }

    /// `kfifo_in` without exclusivity: copies as many elements of `buf` as fit and returns
    /// their number.
    ///
    /// # Safety
    /// No other producer may run concurrently (one concurrent consumer is fine).
    #[inline]
    pub unsafe fn in_unchecked(&self, buf: &[T]) -> usize {
        let out = self.out.load(Ordering::Acquire);
        let i = self.in_.load(Ordering::Relaxed);
        // SAFETY: forwarded caller guarantee.
        unsafe { self.in_with_out(buf, i, out) }.0 as usize
    }

    /// Consumer side of `kfifo_out_peek`/`kfifo_out` with a known `in` bound.
    #[inline(always)]
    unsafe fn out_with_in(&self, buf: &mut [T], o: u32, i: u32, consume: bool) -> (u32, u32) {
        // SAFETY: forwarded caller guarantee (consumer side, `o == out`).
        let len = unsafe { self.read_at(buf, o, i) };
        if consume {
            self.out.store(o.wrapping_add(len), Ordering::Release);
        }
        (len, 0)
    }

    /// `kfifo_out` without exclusivity: moves up to `buf.len()` elements out; returns how
    /// many.
    ///
    /// # Safety
    /// No other consumer may run concurrently (one concurrent producer is fine).
    #[inline]
    pub unsafe fn out_unchecked(&self, buf: &mut [T]) -> usize {
        let i = self.in_.load(Ordering::Acquire);
        let o = self.out.load(Ordering::Relaxed);
        // SAFETY: forwarded caller guarantee.
        unsafe { self.out_with_in(buf, o, i, true) }.0 as usize
    }

    /// `kfifo_in(fifo, buf, n)`: copies as many elements of `buf` as fit (a partial write is
    /// allowed) and returns their number.
    #[inline]
    pub fn push_slice(&mut self, buf: &[T]) -> usize {
        // With `&mut self` no other thread can see the indices, so they are read and written
        // as plain integers (the compiler may keep them in registers across calls).
        let i = load_mut(&mut self.in_);
        let o = load_mut(&mut self.out);
        // SAFETY: `&mut self` makes us the only producer and consumer.
        let len = unsafe { self.write_at(buf, i, o) };
        store_mut(&mut self.in_, i.wrapping_add(len));
        len as usize
    }

    /// `kfifo_out(fifo, buf, n)`: moves up to `buf.len()` elements out; returns how many.
    #[inline]
    pub fn pop_slice(&mut self, buf: &mut [T]) -> usize {
        let i = load_mut(&mut self.in_);
        let o = load_mut(&mut self.out);
        // SAFETY: `&mut self` makes us the only producer and consumer.
        let len = unsafe { self.read_at(buf, o, i) };
        store_mut(&mut self.out, o.wrapping_add(len));
        len as usize
    }

    /// `kfifo_out_peek(fifo, buf, n)`: copies up to `buf.len()` elements without removing them.
    #[inline]
    pub fn peek_slice(&self, buf: &mut [T]) -> usize {
        let i = self.in_.load(Ordering::Acquire);
        // SAFETY: reading filled slots does not conflict with a producer (it writes only free
        // slots); a consumer cannot run concurrently with `&self` methods of the safe API
        // except through `split`, whose `Consumer` borrows the fifo mutably-exclusively.
        unsafe { self.out_with_in(buf, self.out.load(Ordering::Relaxed), i, false) }.0 as usize
    }

    /// `kfifo_put(fifo, val)`: adds one element; returns `false` if the fifo is full.
    #[inline]
    pub fn put(&mut self, val: T) -> bool {
        let i = load_mut(&mut self.in_);
        let o = load_mut(&mut self.out);
        if i.wrapping_sub(o) > self.mask() {
            return false;
        }
        // SAFETY: the slot of `in` is free and `&mut self` makes us its only user.
        unsafe { copy_to_slots(self.slots().add((i & self.mask()) as usize), &val, 1) };
        store_mut(&mut self.in_, i.wrapping_add(1));
        true
    }

    /// `kfifo_get(fifo, &val)`: removes and returns the first element.
    #[inline]
    pub fn get(&mut self) -> Option<T> {
        let i = load_mut(&mut self.in_);
        let o = load_mut(&mut self.out);
        if i == o {
            return None;
        }
        let mut v = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the slot of `out` is filled and `&mut self` makes us its only user.
        unsafe {
            copy_from_slots(
                v.as_mut_ptr(),
                self.slots().add((o & self.mask()) as usize),
                1,
            )
        };
        store_mut(&mut self.out, o.wrapping_add(1));
        // SAFETY: written just above.
        Some(unsafe { v.assume_init() })
    }

    /// `kfifo_peek(fifo, &val)`: returns the first element without removing it.
    #[inline]
    pub fn peek(&self) -> Option<T> {
        let i = self.in_.load(Ordering::Acquire);
        let o = self.out.load(Ordering::Relaxed);
        // SAFETY: as in `peek_slice`: no consumer runs concurrently with `&self` reads.
        unsafe { self.get_with_in(o, i, false) }
    }

    /// `kfifo_skip_count(fifo, n)`: discards up to `n` elements; `kfifo_skip` is `skip(1)`.
    pub fn skip(&mut self, n: usize) {
        let i = load_mut(&mut self.in_);
        let o = load_mut(&mut self.out);
        let n = n.min(i.wrapping_sub(o) as usize) as u32;
        store_mut(&mut self.out, o.wrapping_add(n));
    }

    fn setup_sgl(&self, len: u32, off: u32) -> DmaSegments {
        let es = core::mem::size_of::<T>();
        let size = self.mask() + 1;
        let off = off & self.mask();
        let l = len.min(size - off);
        let mut s = DmaSegments {
            segs: [DmaSegments::EMPTY; 2],
            n: 0,
        };
        // SAFETY (pointer arithmetic only): `off < size`.
        let base = slots_as_mut_ptr(self.slots()).cast::<u8>();
        if l > 0 {
            s.segs[0] = DmaSegment {
                addr: base.wrapping_add(off as usize * es),
                len: l as usize * es,
            };
            s.n = 1;
        }
        if len > l {
            s.segs[s.n] = DmaSegment {
                addr: base,
                len: (len - l) as usize * es,
            };
            s.n += 1;
        }
        s
    }

    /// `kfifo_dma_in_prepare(fifo, sgl, nents, len)`: the free buffer runs (at most two) into
    /// which a device may write up to `len` elements. Nothing changes until
    /// [`KfifoBase::dma_in_finish`].
    pub fn dma_in_prepare(&mut self, len: usize) -> DmaSegments {
        let i = self.in_.load(Ordering::Relaxed);
        let unused = self.mask() + 1 - i.wrapping_sub(self.out.load(Ordering::Acquire));
        let len = (len.min(u32::MAX as usize) as u32).min(unused);
        self.setup_sgl(len, i)
    }

    /// `kfifo_dma_in_finish(fifo, len)`: commits `len` elements written by the device.
    ///
    /// # Safety
    /// The first `len` elements of the segments from `dma_in_prepare` must have been written
    /// and `len` must not exceed their total.
    pub unsafe fn dma_in_finish(&mut self, len: usize) {
        let i = self.in_.load(Ordering::Relaxed);
        self.in_
            .store(i.wrapping_add(len as u32), Ordering::Release);
    }

    /// `kfifo_dma_out_prepare(fifo, sgl, nents, len)`: the filled runs (at most two) holding
    /// up to `len` elements for a device to read.
    pub fn dma_out_prepare(&mut self, len: usize) -> DmaSegments {
        let o = self.out.load(Ordering::Relaxed);
        let used = self.in_.load(Ordering::Acquire).wrapping_sub(o);
        let len = (len.min(u32::MAX as usize) as u32).min(used);
        self.setup_sgl(len, o)
    }

    /// `kfifo_dma_out_finish(fifo, len)`: removes `len` elements the device has read.
    pub fn dma_out_finish(&mut self, len: usize) {
        self.skip(len);
    }

    /// `kfifo_from_user(fifo, from, len, &copied)`: copies up to `len` bytes (whole elements)
    /// from `from`, as many as fit; returns the bytes copied.
    ///
    /// # Errors
    /// [`KfifoError::Fault`] with the bytes copied (whole elements, which stay in the fifo)
    /// if the source faulted.
    pub fn from_user<U: UserSource + ?Sized>(
        &mut self,
        from: &U,
        len: usize,
    ) -> Result<usize, KfifoError> {
        let es = core::mem::size_of::<T>();
        let i = self.in_.load(Ordering::Relaxed);
        let unused = self.mask() + 1 - i.wrapping_sub(self.out.load(Ordering::Acquire));
        let n = ((len / es).min(u32::MAX as usize) as u32).min(unused);
        let size = self.mask() + 1;
        let off = i & self.mask();
        let l = n.min(size - off);
        let base = slots_as_mut_ptr(self.slots()).cast::<u8>();
        // SAFETY: both runs are within the buffer (as in `copy_in`) and are free slots we own.
        let mut not_copied =
            unsafe { from.copy_from_user(base.add(off as usize * es), 0, l as usize * es) };
        if not_copied != 0 {
            not_copied += (n - l) as usize * es;
        } else {
            // SAFETY: as above.
            not_copied =
                unsafe { from.copy_from_user(base, l as usize * es, (n - l) as usize * es) };
        }
        let lost = not_copied.div_ceil(es) as u32;
        let done = n - lost;
        self.in_.store(i.wrapping_add(done), Ordering::Release);
        let copied = done as usize * es;
        if not_copied != 0 {
            Err(KfifoError::Fault { copied })
        } else {
            Ok(copied)
        }
    }

    /// `kfifo_to_user(fifo, to, len, &copied)`: copies up to `len` bytes (whole elements) out
    /// to `to`; returns the bytes copied.
    ///
    /// # Errors
    /// [`KfifoError::Fault`] with the bytes copied if the sink faulted; only the elements
    /// copied completely are removed.
    pub fn to_user<U: UserSink + ?Sized>(
        &mut self,
        to: &mut U,
        len: usize,
    ) -> Result<usize, KfifoError> {
        let es = core::mem::size_of::<T>();
        let o = self.out.load(Ordering::Relaxed);
        let used = self.in_.load(Ordering::Acquire).wrapping_sub(o);
        let n = ((len / es).min(u32::MAX as usize) as u32).min(used);
        let size = self.mask() + 1;
        let off = o & self.mask();
        let l = n.min(size - off);
        let base = slots_as_mut_ptr(self.slots()).cast::<u8>();
        // SAFETY: both runs are within the buffer and hold filled slots we own.
        let mut not_copied =
            unsafe { to.copy_to_user(0, base.add(off as usize * es), l as usize * es) };
        if not_copied != 0 {
            not_copied += (n - l) as usize * es;
        } else {
            // SAFETY: as above.
            not_copied = unsafe { to.copy_to_user(l as usize * es, base, (n - l) as usize * es) };
        }
        let done = n - not_copied.div_ceil(es) as u32;
        self.out.store(o.wrapping_add(done), Ordering::Release);
        let copied = done as usize * es;
        if not_copied != 0 {
            Err(KfifoError::Fault { copied })
        } else {
            Ok(copied)
        }
    }

    /// Splits the fifo into its producer and consumer halves, which may run on two threads at
    /// once without a lock.
    pub fn split(&mut self) -> (Producer<'_, T, S>, Consumer<'_, T, S>) {
        let i = self.in_.load(Ordering::Relaxed);
        let o = self.out.load(Ordering::Relaxed);
        (
            Producer {
                fifo: self,
                head: i,
                cached_out: o,
            },
            Consumer {
                fifo: self,
                tail: o,
                cached_in: i,
            },
        )
    }
}

/// The producer half of a [`KfifoBase::split`] fifo.
///
/// It keeps its own index (`in`, of which it is the only writer) in `head`, and caches the
/// last `out` it read: free space can only grow behind its back, so the cached value is a safe
/// underestimate, re-read only when it seems too small (this keeps the consumer's cache line
/// from bouncing on every operation).
pub struct Producer<'f, T: Copy, S: Storage<T>> {
    fifo: &'f KfifoBase<T, S>,
    head: u32,
    cached_out: u32,
}

/// The consumer half of a [`KfifoBase::split`] fifo; caches `in` like [`Producer`] caches `out`.
pub struct Consumer<'f, T: Copy, S: Storage<T>> {
    fifo: &'f KfifoBase<T, S>,
    tail: u32,
    cached_in: u32,
}

impl<T: Copy, S: Storage<T>> Producer<'_, T, S> {
    /// `kfifo_in`: copies as many elements of `buf` as fit; returns their number.
    #[inline]
    pub fn push_slice(&mut self, buf: &[T]) -> usize {
        let f = self.fifo;
        let i = self.head;
        if (f.mask() + 1 - i.wrapping_sub(self.cached_out))
            < buf.len().min(u32::MAX as usize) as u32
        {
            self.cached_out = f.out.load(Ordering::Acquire);
        }
        // SAFETY: this is the only producer (split borrows the fifo exclusively), `head` is
        // the current `in`, and `cached_out` is an `out` value read with acquire that can
        // only lag the real one.
        let n = unsafe { f.in_with_out(buf, i, self.cached_out) }.0;
        self.head = i.wrapping_add(n);
        n as usize
    }

    /// `kfifo_put`: adds one element; `false` if full.
    #[inline]
    pub fn put(&mut self, val: T) -> bool {
        let f = self.fifo;
        let i = self.head;
        if i.wrapping_sub(self.cached_out) > f.mask() {
            self.cached_out = f.out.load(Ordering::Acquire);
        }
        // SAFETY: the only producer; `head` is `in`; `cached_out` lags the real `out`.
        let ok = unsafe { f.put_with_out(val, i, self.cached_out) };
        self.head = i.wrapping_add(ok as u32);
        ok
    }

    /// `kfifo_avail` as seen by the producer (exact at the time of the call).
    pub fn avail(&mut self) -> usize {
        self.cached_out = self.fifo.out.load(Ordering::Acquire);
        self.fifo.size() - self.head.wrapping_sub(self.cached_out) as usize
    }

    /// `kfifo_size`.
    pub fn size(&self) -> usize {
        self.fifo.size()
    }
}

impl<T: Copy, S: Storage<T>> Consumer<'_, T, S> {
    /// `kfifo_out`: moves up to `buf.len()` elements out; returns how many.
    #[inline]
    pub fn pop_slice(&mut self, buf: &mut [T]) -> usize {
        self.read(buf, true)
    }

    /// `kfifo_out_peek`: copies up to `buf.len()` elements without removing them.
    #[inline]
    pub fn peek_slice(&mut self, buf: &mut [T]) -> usize {
        self.read(buf, false)
    }

    #[inline(always)]
    fn read(&mut self, buf: &mut [T], consume: bool) -> usize {
        let f = self.fifo;
        let o = self.tail;
        if self.cached_in.wrapping_sub(o) < buf.len().min(u32::MAX as usize) as u32 {
            self.cached_in = f.in_.load(Ordering::Acquire);
        }
        // SAFETY: this is the only consumer; `tail` is `out`; `cached_in` was read with
        // acquire and lags.
        let n = unsafe { f.out_with_in(buf, o, self.cached_in, consume) }.0;
        if consume {
            self.tail = o.wrapping_add(n);
        }
        n as usize
    }

    /// `kfifo_get`: removes and returns the first element.
    #[inline]
    pub fn get(&mut self) -> Option<T> {
        self.read_one(true)
    }

    /// `kfifo_peek`: the first element, not removed.
    #[inline]
    pub fn peek(&mut self) -> Option<T> {
        self.read_one(false)
    }

    #[inline(always)]
    fn read_one(&mut self, consume: bool) -> Option<T> {
        let f = self.fifo;
        let o = self.tail;
        if self.cached_in == o {
            self.cached_in = f.in_.load(Ordering::Acquire);
        }
        // SAFETY: the only consumer; `tail` is `out`; `cached_in` lags the real `in`.
        let v = unsafe { f.get_with_in(o, self.cached_in, consume) };
        if consume && v.is_some() {
            self.tail = o.wrapping_add(1);
        }
        v
    }

    /// `kfifo_len` as seen by the consumer (exact at the time of the call).
    pub fn len(&mut self) -> usize {
        self.cached_in = self.fifo.in_.load(Ordering::Acquire);
        self.cached_in.wrapping_sub(self.tail) as usize
    }

    /// Whether the fifo is empty right now.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// `kfifo_skip_count`: discards up to `n` elements.
    pub fn skip(&mut self, n: usize) {
        let n = n.min(self.len()) as u32;
        self.tail = self.tail.wrapping_add(n);
        self.fifo.out.store(self.tail, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Record fifos
// ---------------------------------------------------------------------------------------------

/// A record fifo: variable-length byte records, each behind an `R`-byte (1 or 2) little-endian
/// length header (`STRUCT_KFIFO_REC_1/2`, `struct kfifo_rec_ptr_1/2`).
///
/// Record input is all-or-nothing; output copies at most the buffer's length but always
/// consumes the whole record.
pub struct KfifoRec<S: Storage<u8>, const R: usize> {
    fifo: KfifoBase<u8, S>,
}

/// `STRUCT_KFIFO_REC_1(N)` / `STRUCT_KFIFO_REC_2(N)` with storage inside.
pub type KfifoRecInline<const N: usize, const R: usize> = KfifoRec<Inline<u8, N>, R>;

impl<S: Storage<u8>, const R: usize> KfifoRec<S, R> {
    const CHECK: () = assert!(R == 1 || R == 2, "record header size must be 1 or 2");
    /// The largest record payload: 255 or 65535 bytes (`__kfifo_max_r`).
    pub const MAX_RECORD: usize = (1 << (8 * R)) - 1;

    /// Wraps a byte fifo (any storage) as a record fifo.
    pub fn from_fifo(fifo: KfifoBase<u8, S>) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        Self { fifo }
    }

    /// Returns the underlying byte fifo.
    pub fn into_inner(self) -> KfifoBase<u8, S> {
        self.fifo
    }

    /// Reads the length header at `out` (`__kfifo_peek_n`).
    fn peek_n(&self) -> usize {
        let f = &self.fifo;
        let o = f.out.load(Ordering::Relaxed);
        let mut h = [0u8; 2];
        // SAFETY: a record is present (callers check non-empty), so its header slots are
        // filled and owned by the consumer side (we hold `&self` under the record API's
        // exclusive use).
        unsafe { f.copy_out(h.as_mut_ptr(), R as u32, o) };
        if R == 1 {
            h[0] as usize
        } else {
            u16::from_le_bytes(h) as usize
        }
    }

    /// Writes a length header at `in` (`__kfifo_poke_n`).
    fn poke_n(&self, n: usize) {
        let f = &self.fifo;
        let h = (n as u16).to_le_bytes();
        // SAFETY: callers checked that `n + R` bytes are free; producer-owned slots.
        unsafe { f.copy_in(h.as_ptr(), R as u32, f.in_.load(Ordering::Relaxed)) };
    }

    fn unused(&self) -> usize {
        self.fifo.avail()
    }

    /// `kfifo_size`: capacity in bytes.
    pub fn size(&self) -> usize {
        self.fifo.size()
    }

    /// `kfifo_len`: bytes in use, headers included.
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// `kfifo_is_empty`: no record stored.
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    /// `kfifo_is_full`.
    pub fn is_full(&self) -> bool {
        self.fifo.is_full()
    }

    /// `kfifo_avail`: the largest record that would fit right now.
    pub fn avail(&self) -> usize {
        let a = self.unused();
        if a <= R {
            0
        } else {
            (a - R).min(Self::MAX_RECORD)
        }
    }

    /// `kfifo_reset`.
    pub fn reset(&mut self) {
        self.fifo.reset();
    }

    /// `kfifo_in` on a record fifo: stores `rec` as one record if it fits entirely; returns its
    /// length, or 0 if it does not fit. A record longer than [`Self::MAX_RECORD`] is rejected
    /// (returns 0; Linux would store a truncated header and corrupt the stream).
    pub fn push(&mut self, rec: &[u8]) -> usize {
        let len = rec.len();
        if len > Self::MAX_RECORD || len + R > self.unused() {
            return 0;
        }
        self.poke_n(len);
        let f = &self.fifo;
        let i = f.in_.load(Ordering::Relaxed);
        // SAFETY: `len + R` bytes are free (checked) and we are the only producer (`&mut`).
        unsafe { f.copy_in(rec.as_ptr(), len as u32, i.wrapping_add(R as u32)) };
        f.in_
            .store(i.wrapping_add((len + R) as u32), Ordering::Release);
        len
    }

    /// `kfifo_out_peek` on a record fifo: copies the first record's payload (truncated to
    /// `buf.len()`) without removing it; returns the bytes copied (0 when empty).
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        if self.fifo.is_empty() {
            return 0;
        }
        let n = self.peek_n();
        let len = buf.len().min(n);
        let o = self.fifo.out.load(Ordering::Relaxed);
        // SAFETY: the record's `n` payload bytes are filled; we read `len <= n` of them.
        unsafe {
            self.fifo
                .copy_out(buf.as_mut_ptr(), len as u32, o.wrapping_add(R as u32))
        };
        len
    }

    /// `kfifo_out` on a record fifo: copies the first record's payload (truncated to
    /// `buf.len()`), removes the whole record, and returns the bytes copied.
    pub fn pop(&mut self, buf: &mut [u8]) -> usize {
        if self.fifo.is_empty() {
            return 0;
        }
        let n = self.peek_n();
        let len = self.peek(buf);
        let o = self.fifo.out.load(Ordering::Relaxed);
        self.fifo
            .out
            .store(o.wrapping_add((n + R) as u32), Ordering::Release);
        len
    }

    /// `kfifo_skip` on a record fifo: removes the first record.
    pub fn skip(&mut self) {
        if self.fifo.is_empty() {
            return;
        }
        let n = self.peek_n();
        let o = self.fifo.out.load(Ordering::Relaxed);
        self.fifo
            .out
            .store(o.wrapping_add((n + R) as u32), Ordering::Release);
    }

    /// `kfifo_peek_len`: the payload length of the first record (0 when empty).
    pub fn peek_len(&self) -> usize {
        if self.fifo.is_empty() {
            0
        } else {
            self.peek_n()
        }
    }

    /// `kfifo_dma_in_prepare` on a record fifo: room for one record of up to `len` bytes
    /// (clamped to [`Self::MAX_RECORD`]) after its header; empty if it does not fit.
    pub fn dma_in_prepare(&mut self, len: usize) -> DmaSegments {
        let len = len.min(Self::MAX_RECORD);
        if len + R > self.unused() {
            return DmaSegments {
                segs: [DmaSegments::EMPTY; 2],
                n: 0,
            };
        }
        let i = self.fifo.in_.load(Ordering::Relaxed);
        self.fifo.setup_sgl(len as u32, i.wrapping_add(R as u32))
    }

    /// `kfifo_dma_in_finish` on a record fifo: commits a record of `len` bytes.
    ///
    /// # Safety
    /// `len` bytes must have been written into the segments of the matching prepare, and
    /// `len` must not exceed their total.
    pub unsafe fn dma_in_finish(&mut self, len: usize) {
        let len = len.min(Self::MAX_RECORD);
        self.poke_n(len);
        let i = self.fifo.in_.load(Ordering::Relaxed);
        self.fifo
            .in_
            .store(i.wrapping_add((len + R) as u32), Ordering::Release);
    }

    /// `kfifo_dma_out_prepare` on a record fifo: the payload of the first record, up to `len`
    /// bytes; empty if the fifo is empty.
    pub fn dma_out_prepare(&mut self, len: usize) -> DmaSegments {
        if self.fifo.is_empty() {
            return DmaSegments {
                segs: [DmaSegments::EMPTY; 2],
                n: 0,
            };
        }
        let len = len.min(self.peek_n());
        let o = self.fifo.out.load(Ordering::Relaxed);
        self.fifo.setup_sgl(len as u32, o.wrapping_add(R as u32))
    }

    /// `kfifo_dma_out_finish` on a record fifo: removes the first record.
    pub fn dma_out_finish(&mut self) {
        self.skip();
    }

    /// `kfifo_from_user` on a record fifo: stores up to `len` bytes (clamped to
    /// [`Self::MAX_RECORD`]) of `from` as one record if it fits; returns the bytes stored
    /// (0 if it does not fit).
    ///
    /// # Errors
    /// [`KfifoError::Fault`] with `copied: 0` if the source faulted; nothing is stored.
    pub fn from_user<U: UserSource + ?Sized>(
        &mut self,
        from: &U,
        len: usize,
    ) -> Result<usize, KfifoError> {
        let len = len.min(Self::MAX_RECORD);
        if len + R > self.unused() {
            return Ok(0);
        }
        let f = &self.fifo;
        let i = f.in_.load(Ordering::Relaxed);
        let size = f.mask() + 1;
        let off = i.wrapping_add(R as u32) & f.mask();
        let l = (len as u32).min(size - off);
        let base = slots_as_mut_ptr(f.slots());
        // SAFETY: the runs lie in the buffer's free slots, which the producer owns.
        let mut nc = unsafe { from.copy_from_user(base.add(off as usize), 0, l as usize) };
        if nc == 0 {
            // SAFETY: as above.
            nc = unsafe { from.copy_from_user(base, l as usize, len - l as usize) };
        }
        if nc != 0 {
            return Err(KfifoError::Fault { copied: 0 });
        }
        self.poke_n(len);
        self.fifo
            .in_
            .store(i.wrapping_add((len + R) as u32), Ordering::Release);
        Ok(len)
    }

    /// `kfifo_to_user` on a record fifo: copies the first record's payload (truncated to
    /// `len`) to `to` and removes the record; returns the bytes copied (0 when empty).
    ///
    /// # Errors
    /// [`KfifoError::Fault`] with `copied: 0` if the sink faulted; the record stays.
    pub fn to_user<U: UserSink + ?Sized>(
        &mut self,
        to: &mut U,
        len: usize,
    ) -> Result<usize, KfifoError> {
        if self.fifo.is_empty() {
            return Ok(0);
        }
        let n = self.peek_n();
        let len = len.min(n);
        let f = &self.fifo;
        let o = f.out.load(Ordering::Relaxed);
        let size = f.mask() + 1;
        let off = o.wrapping_add(R as u32) & f.mask();
        let l = (len as u32).min(size - off);
        let base = slots_as_mut_ptr(f.slots());
        // SAFETY: the runs lie in the record's filled slots, which the consumer owns.
        let mut nc = unsafe { to.copy_to_user(0, base.add(off as usize), l as usize) };
        if nc == 0 {
            // SAFETY: as above.
            nc = unsafe { to.copy_to_user(l as usize, base, len - l as usize) };
        }
        if nc != 0 {
            return Err(KfifoError::Fault { copied: 0 });
        }
        self.fifo
            .out
            .store(o.wrapping_add((n + R) as u32), Ordering::Release);
        Ok(len)
    }
}

#[cfg(not(loom))]
impl<const N: usize, const R: usize> KfifoRecInline<N, R> {
    /// `DEFINE_KFIFO` of a `STRUCT_KFIFO_REC_R(N)`: an empty record fifo of `N` bytes.
    pub const fn new() -> Self {
        Self { fifo: Kfifo::new() }
    }
}

impl<const N: usize, const R: usize> Default for KfifoRecInline<N, R> {
    fn default() -> Self {
        Self::from_fifo(Kfifo::default())
    }
}

// ---------------------------------------------------------------------------------------------
// The Linux-named API over both kinds
// ---------------------------------------------------------------------------------------------

/// What `kfifo_*` functions dispatch on: element fifos and record fifos.
pub trait Fifo {
    /// The element type (bytes for record fifos).
    type Elem: Copy;
    /// `kfifo_in`.
    fn fifo_in(&mut self, buf: &[Self::Elem]) -> usize;
    /// `kfifo_out`.
    fn fifo_out(&mut self, buf: &mut [Self::Elem]) -> usize;
    /// `kfifo_out_peek`.
    fn fifo_out_peek(&self, buf: &mut [Self::Elem]) -> usize;
    /// `kfifo_skip`.
    fn fifo_skip(&mut self);
    /// `kfifo_len`.
    fn fifo_len(&self) -> usize;
    /// `kfifo_size`.
    fn fifo_size(&self) -> usize;
    /// `kfifo_avail`.
    fn fifo_avail(&self) -> usize;
    /// `kfifo_reset`.
    fn fifo_reset(&mut self);
    /// `kfifo_peek_len`: the next record's length (for element fifos, `kfifo_len`).
    fn fifo_peek_len(&self) -> usize;
}

impl<T: Copy, S: Storage<T>> Fifo for KfifoBase<T, S> {
    type Elem = T;
    fn fifo_in(&mut self, buf: &[T]) -> usize {
        self.push_slice(buf)
    }
    fn fifo_out(&mut self, buf: &mut [T]) -> usize {
        self.pop_slice(buf)
    }
    fn fifo_out_peek(&self, buf: &mut [T]) -> usize {
        self.peek_slice(buf)
    }
    fn fifo_skip(&mut self) {
        self.skip(1)
    }
    fn fifo_len(&self) -> usize {
        self.len()
    }
    fn fifo_size(&self) -> usize {
        self.size()
    }
    fn fifo_avail(&self) -> usize {
        self.avail()
    }
    fn fifo_reset(&mut self) {
        self.reset()
    }
    fn fifo_peek_len(&self) -> usize {
        self.len()
    }
}

impl<S: Storage<u8>, const R: usize> Fifo for KfifoRec<S, R> {
    type Elem = u8;
    fn fifo_in(&mut self, buf: &[u8]) -> usize {
        self.push(buf)
    }
    fn fifo_out(&mut self, buf: &mut [u8]) -> usize {
        self.pop(buf)
    }
    fn fifo_out_peek(&self, buf: &mut [u8]) -> usize {
        self.peek(buf)
    }
    fn fifo_skip(&mut self) {
        self.skip()
    }
    fn fifo_len(&self) -> usize {
        self.len()
    }
    fn fifo_size(&self) -> usize {
        self.size()
    }
    fn fifo_avail(&self) -> usize {
        self.avail()
    }
    fn fifo_reset(&mut self) {
        self.reset()
    }
    fn fifo_peek_len(&self) -> usize {
        self.peek_len()
    }
}

/// `kfifo_in(fifo, buf, n)`: elements (or one record) in; returns how many elements (bytes).
pub fn kfifo_in<F: Fifo + ?Sized>(fifo: &mut F, buf: &[F::Elem]) -> usize {
    fifo.fifo_in(buf)
}
/// `kfifo_out(fifo, buf, n)`.
pub fn kfifo_out<F: Fifo + ?Sized>(fifo: &mut F, buf: &mut [F::Elem]) -> usize {
    fifo.fifo_out(buf)
}
/// `kfifo_out_peek(fifo, buf, n)`.
pub fn kfifo_out_peek<F: Fifo + ?Sized>(fifo: &F, buf: &mut [F::Elem]) -> usize {
    fifo.fifo_out_peek(buf)
}
/// `kfifo_skip(fifo)`: drops one element or record.
pub fn kfifo_skip<F: Fifo + ?Sized>(fifo: &mut F) {
    fifo.fifo_skip()
}
/// `kfifo_reset(fifo)`.
pub fn kfifo_reset<F: Fifo + ?Sized>(fifo: &mut F) {
    fifo.fifo_reset()
}
/// `kfifo_size(fifo)`.
pub fn kfifo_size<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_size()
}
/// `kfifo_len(fifo)`.
pub fn kfifo_len<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_len()
}
/// `kfifo_avail(fifo)`.
pub fn kfifo_avail<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_avail()
}
/// `kfifo_is_empty(fifo)`.
pub fn kfifo_is_empty<F: Fifo + ?Sized>(fifo: &F) -> bool {
    fifo.fifo_len() == 0
}
/// `kfifo_is_full(fifo)`.
pub fn kfifo_is_full<F: Fifo + ?Sized>(fifo: &F) -> bool {
    fifo.fifo_len() >= fifo.fifo_size()
}
/// `kfifo_peek_len(fifo)`.
pub fn kfifo_peek_len<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_peek_len()
}
/// `kfifo_put(fifo, val)`: returns whether it was stored.
pub fn kfifo_put<T: Copy, S: Storage<T>>(fifo: &mut KfifoBase<T, S>, val: T) -> bool {
    fifo.put(val)
}
/// `kfifo_get(fifo, &val)`.
pub fn kfifo_get<T: Copy, S: Storage<T>>(fifo: &mut KfifoBase<T, S>) -> Option<T> {
    fifo.get()
}
/// `kfifo_peek(fifo, &val)`.
pub fn kfifo_peek<T: Copy, S: Storage<T>>(fifo: &KfifoBase<T, S>) -> Option<T> {
    fifo.peek()
}
/// `kfifo_alloc(fifo, size, gfp)`.
///
/// # Errors
/// As [`KfifoBase::alloc`].
pub fn kfifo_alloc<T: Copy, A: KfifoAlloc>(
    size: usize,
    alloc: A,
) -> Result<KfifoAllocated<T, A>, KfifoError> {
    KfifoAllocated::alloc(size, alloc)
}
/// `kfifo_free(fifo)`: frees the buffer (dropping does the same).
pub fn kfifo_free<T: Copy, A: KfifoAlloc>(fifo: KfifoAllocated<T, A>) {
    drop(fifo)
}
/// `kfifo_init(fifo, buffer, size)`.
///
/// # Errors
/// As [`KfifoBase::init`].
pub fn kfifo_init<T: Copy>(buffer: &mut [T]) -> Result<KfifoBuffer<'_, T>, KfifoError> {
    KfifoBuffer::init(buffer)
}
