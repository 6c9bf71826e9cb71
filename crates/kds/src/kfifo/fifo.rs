//! The element fifo ([`KfifoBase`]), its DMA and user-copy paths, and the split
//! [`Producer`]/[`Consumer`] halves.

use core::alloc::Layout;
use core::marker::PhantomData;

use crate::sync::{
    copy_from_slots, copy_to_slots, load_mut, new_slot, slots_as_mut_ptr, slots_from_mut_ptr,
    store_mut, AtomicU32, CachePadded, Ordering, Slot,
};

use super::*;

/// A fifo of `T` elements over storage `S` (`struct __kfifo` + its buffer).
///
/// # Invariants
/// `in - out <= size` (wrapping arithmetic); slots `out..in` (masked) are initialised.
pub struct KfifoBase<T: Copy, S: Storage<T>> {
    pub(super) in_: CachePadded<AtomicU32>,
    pub(super) out: CachePadded<AtomicU32>,
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
    pub(super) segs: [DmaSegment; 2],
    pub(super) n: usize,
}

impl DmaSegments {
    pub(super) const EMPTY: DmaSegment = DmaSegment {
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
    pub(super) fn mask(&self) -> u32 {
        private::Store::size(&self.store) - 1
    }

    #[inline(always)]
    pub(super) fn slots(&self) -> *const Slot<T> {
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
    pub(super) unsafe fn copy_in(&self, src: *const T, len: u32, off: u32) {
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
    pub(super) unsafe fn copy_out(&self, dst: *mut T, len: u32, off: u32) {
        let size = self.mask() + 1;
        let off = off & self.mask();
        let l = len.min(size - off);
        // SAFETY: `off + l <= size` and `len - l <= off` (since `len <= size`), so both runs lie
        // inside the slot array; the caller owns these filled slots (consumer side), so no producer
        // writes them during the copy, and `dst` has room for `len` items.
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
    ///
    /// # Safety
    /// Producer side: the caller is the only writer of slots `in..` and of `in`, `i` is the current
    /// `in`, and `out` was loaded (Acquire) from the fifo's `out`, so every slot in `i..out + size`
    /// is free.
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
    ///
    /// # Safety
    /// As `write_at`: the caller is the only producer, `i` is the current `in`, and `unused` does
    /// not exceed the free slots after `i`.
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
    ///
    /// # Safety
    /// As `read_at`: the caller is the only consumer, `o` is the current `out`, and `used` does not
    /// exceed the filled slots after `o`.
    #[cold]
    #[inline(never)]
    unsafe fn read_slow(&self, buf: &mut [T], o: u32, used: u32) -> u32 {
        let len = (buf.len().min(u32::MAX as usize) as u32).min(used);
        // SAFETY: slots `out..out+len` are filled (`len <= in - out`) and ours (caller).
        unsafe { self.copy_out(buf.as_mut_ptr(), len, o) };
        len
    }

    /// Producer side of `kfifo_put` with a known `out` bound.
    ///
    /// # Safety
    /// Producer side: the caller is the only writer of slots `in..` and of `in`, `i` is the current
    /// `in`, and `out` was loaded (Acquire) from the fifo's `out`.
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
    ///
    /// # Safety
    /// Consumer side: the caller is the only reader of slots `out..` and writer of `out`, `o` is
    /// the current `out`, and `i` was loaded (Acquire) from the fifo's `in`, so slots `o..i` are
    /// filled.
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
    ///
    /// # Safety
    /// Consumer side: the caller is the only reader of slots `out..` and writer of `out`, `o` is
    /// the current `out`, and `i` was loaded (Acquire) from the fifo's `in`.
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

    pub(super) fn setup_sgl(&self, len: u32, off: u32) -> DmaSegments {
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
            // SAFETY: the wrapped run starts at slot 0 and is `n - l <= off` slots long, so it
            // stays within the buffer, in free slots only the producer (us) writes.
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
            // SAFETY: the wrapped run starts at slot 0 and is `n - l <= off` slots long, so it
            // stays within the buffer, in filled slots only the consumer (us) reads.
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::KfifoRec;
    use super::*;

    /// A fifo whose `in` and `out` both stand `before` steps short of `u32::MAX + 1`, as they do
    /// after ~4 billion elements have passed through: the indices are free-running and only
    /// masked on access, so everything must keep working as they wrap.
    fn near_wrap<const N: usize>(before: u32) -> Kfifo<u32, N> {
        let f = Kfifo::<u32, N>::new();
        let start = 0u32.wrapping_sub(before);
        f.in_.store(start, Ordering::Relaxed);
        f.out.store(start, Ordering::Relaxed);
        f
    }

    #[test]
    fn indices_wrap_u32() {
        for before in [1u32, 3, 7, 8, 9] {
            let mut f = near_wrap::<8>(before);
            assert!(f.is_empty());
            assert_eq!((f.len(), f.avail()), (0, 8));
            // Fill across the wrap: `in` passes u32::MAX while `out` has not.
            assert_eq!(f.push_slice(&[10, 11, 12, 13, 14, 15]), 6);
            assert_eq!((f.len(), f.avail()), (6, 2));
            assert!(f.put(16) && f.put(17) && !f.put(18), "exactly 8 fit");
            assert!(f.is_full());
            assert_eq!(f.peek(), Some(10));
            let mut buf = [0u32; 3];
            assert_eq!(f.pop_slice(&mut buf), 3);
            assert_eq!(buf, [10, 11, 12]);
            f.skip(1);
            assert_eq!(f.get(), Some(14));
            // DMA segments are split where the buffer (not the index) wraps.
            let segs = f.dma_out_prepare(8);
            assert_eq!(segs.total(), 3 * core::mem::size_of::<u32>(), "bytes");
            let mut rest = [0u32; 8];
            assert_eq!(f.pop_slice(&mut rest), 3);
            assert_eq!(&rest[..3], &[15, 16, 17]);
            assert!(f.is_empty() && f.get().is_none());
            // Both indices have now wrapped past zero.
            let (i, o) = (f.in_.load(Ordering::Relaxed), f.out.load(Ordering::Relaxed));
            assert_eq!(i, o);
            assert_eq!(i, 8u32.wrapping_sub(before));
        }
    }

    #[test]
    fn record_fifo_wraps_u32() {
        let f = Kfifo::<u8, 16>::new();
        let start = u32::MAX - 4;
        f.in_.store(start, Ordering::Relaxed);
        f.out.store(start, Ordering::Relaxed);
        let mut r = KfifoRec::<_, 1>::from_fifo(f);
        assert_eq!(r.push(b"abcdef"), 6); // header + 6 bytes straddle the wrap
        assert_eq!(r.push(b"xyz"), 3);
        assert_eq!(r.peek_len(), 6);
        let mut buf = [0u8; 8];
        assert_eq!(r.pop(&mut buf), 6);
        assert_eq!(&buf[..6], b"abcdef");
        assert_eq!(r.pop(&mut buf), 3);
        assert_eq!(&buf[..3], b"xyz");
        assert!(r.is_empty());
    }
}
