//! IDR and IDA (lib/idr.c, include/linux/idr.h) on the [`XArray`].
//!
//! # IDR
//! [`Idr`] maps small integer ids to entries: an allocating XArray (`XA_FLAGS_ALLOC`) whose
//! `XA_FREE_MARK` finds the lowest free id, plus a base (`idr_init_base`) and the cursor of
//! `idr_alloc_cyclic`. Ids are `int`s: allocation never goes past `INT_MAX` unless asked for
//! explicitly through [`Idr::idr_alloc_u32`]; a full range is [`Error::ENOSPC`]. A `NULL`
//! pointer may be allocated: the id is then taken but [`Idr::idr_find`] returns `None`, and
//! the iterators skip it, as in Linux.
//!
//! # IDA
//! [`Ida`] allocates bare ids: XArray index `id / IDA_BITMAP_BITS` holds the bits of a chunk of
//! 1024 ids, as a value entry while only the first `BITS_PER_XA_VALUE` (63) bits are used, as a
//! pointer to a 128-byte bitmap ("bitmap leaves", allocated from the array's allocator)
//! afterwards. `XA_FREE_MARK` stays set on chunks with a free bit.
//!
//! # Compatibility: the pre-4.x API
//! `idr_pre_get` / `idr_get_new` / `idr_get_new_above` (and `ida_pre_get` / `ida_get_new` /
//! `ida_get_new_above` / `ida_remove`) are kept as a documented shim: `*_pre_get` preloads
//! nodes (and one IDA bitmap) with the caller's GFP flags; `*_get_new*` then allocates
//! *without* calling the allocator and returns [`Error::EAGAIN`] when the preload is used up, so
//! callers keep their old loop `again: if (!idr_pre_get(gfp)) return -ENOMEM; err =
//! idr_get_new(...); if (err == -EAGAIN) goto again;`.
//!
//! # Locking
//! As the XArray: every operation takes the array's lock; lookups are lock-free — RCU
//! read-side sections when the allocator offers an RCU domain ([`NodeAlloc::rcu`], e.g. a kmem
//! machine's), the array's reader count otherwise (the XArray module's "Concurrency").

use crate::sync::{AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};
use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use crate::xarray::{xa_mk_value, XArray, XaEntry, XaFlags, XaLimit, XaLockGuard};

/// `INT_MAX`: the largest id of the `int` interfaces.
pub const INT_MAX: u32 = i32::MAX as u32;

/// `struct idr`.
pub struct Idr<A: NodeAlloc> {
    xa: XArray<A>,
    base: u32,
    next: AtomicU32,
}

fn enospc(e: Error) -> Error {
    if e == Error::EBUSY {
        Error::ENOSPC
    } else {
        e
    }
}

impl<A: NodeAlloc> Idr<A> {
    crate::sync::const_fn_unless_loom! {
        /// `DEFINE_IDR` / `idr_init`: an empty IDR allocating nodes from `alloc`.
        pub fn new_in(alloc: A) -> Self {
            Self::with_base(alloc, 0)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// `idr_init_base`: ids start at `base`.
        pub fn with_base(alloc: A, base: u32) -> Self {
            Idr {
                xa: XArray::with_flags(alloc, XaFlags::ALLOC),
                base,
                next: AtomicU32::new(0),
            }
        }
    }

    /// Returns the underlying XArray.
    pub fn xarray(&self) -> &XArray<A> {
        &self.xa
    }

    /// `idr_alloc_u32`: allocates the lowest free id in `*nextid..=max` for `ptr`, stores it
    /// in `*nextid`.
    ///
    /// # Errors
    /// [`Error::ENOSPC`] (range full; `*nextid` unchanged), [`Error::ENOMEM`],
    /// [`Error::EINVAL`] (`ptr` a reserved internal value, up to 4096).
    pub fn idr_alloc_u32(
        &self,
        ptr: Option<XaEntry>,
        nextid: &mut u32,
        max: u32,
        gfp: Gfp,
    ) -> Result<()> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        self.alloc_locked(&g, ptr, nextid, max, gfp)
    }

    fn alloc_locked(
        &self,
        g: &XaLockGuard<'_, A>,
        ptr: Option<XaEntry>,
        nextid: &mut u32,
        max: u32,
        gfp: Gfp,
    ) -> Result<()> {
        if max < self.base {
            return Err(Error::ENOSPC);
        }
        let id = nextid.saturating_sub(self.base);
        let got = g
            .alloc(ptr, XaLimit::new(id, max - self.base), gfp)
            .map_err(enospc)?;
        *nextid = got + self.base;
        Ok(())
    }

    /// `idr_alloc`: allocates an id in `start..end` (`end <= 0` means up to `INT_MAX`).
    ///
    /// # Errors
    /// [`Error::EINVAL`] if `start < 0`; [`Error::ENOSPC`]; [`Error::ENOMEM`].
    pub fn idr_alloc(&self, ptr: Option<XaEntry>, start: i32, end: i32, gfp: Gfp) -> Result<i32> {
        if start < 0 {
            return Err(Error::EINVAL);
        }
        let max = if end > 0 { end as u32 - 1 } else { INT_MAX };
        let mut id = start as u32;
        self.idr_alloc_u32(ptr, &mut id, max, gfp)?;
        Ok(id as i32)
    }

    /// `idr_alloc_cyclic`: like [`Idr::idr_alloc`], starting at the cursor (the id after the
    /// last one allocated) and wrapping around to `start`.
    ///
    /// # Errors
    /// As [`Idr::idr_alloc`].
    pub fn idr_alloc_cyclic(
        &self,
        ptr: Option<XaEntry>,
        start: i32,
        end: i32,
        gfp: Gfp,
    ) -> Result<i32> {
        if start < 0 {
            return Err(Error::EINVAL);
        }
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let max = if end > 0 { end as u32 - 1 } else { INT_MAX };
        let mut id = self.next.load(Relaxed);
        if (id as i32) < start {
            id = start as u32;
        }
        let mut r = self.alloc_locked(&g, ptr, &mut id, max, gfp);
        if r == Err(Error::ENOSPC) && id > start as u32 {
            id = start as u32;
            r = self.alloc_locked(&g, ptr, &mut id, max, gfp);
        }
        r?;
        self.next.store(id.wrapping_add(1), Relaxed);
        Ok(id as i32)
    }

    /// `idr_get_cursor`.
    pub fn idr_get_cursor(&self) -> u32 {
        self.next.load(Relaxed)
    }

    /// `idr_set_cursor`.
    pub fn idr_set_cursor(&self, val: u32) {
        self.next.store(val, Relaxed);
    }

    /// `idr_find`: returns the entry of `id` (`None` if free or allocated with a NULL pointer).
    pub fn idr_find(&self, id: u32) -> Option<XaEntry> {
        if id < self.base {
            return None;
        }
        self.xa.load((id - self.base) as usize)
    }

    /// `idr_remove`: frees `id`; returns its entry.
    pub fn idr_remove(&self, id: u32) -> Option<XaEntry> {
        if id < self.base {
            return None;
        }
        self.xa.erase((id - self.base) as usize)
    }

    /// `idr_replace`: replaces the entry of the allocated `id`; returns the old one.
    ///
    /// # Errors
    /// [`Error::ENOENT`] if `id` is not allocated; [`Error::EINVAL`] (`ptr` a reserved
    /// internal value).
    pub fn idr_replace(&self, ptr: Option<XaEntry>, id: u32) -> Result<Option<XaEntry>> {
        if id < self.base {
            return Err(Error::ENOENT);
        }
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let index = (id - self.base) as usize;
        if !g.is_occupied(index) {
            return Err(Error::ENOENT);
        }
        g.store(index, ptr, Gfp::GFP_NOWAIT)
    }

    /// `idr_for_each`: calls `f(id, entry)` for each id with a non-NULL entry, in id order,
    /// stopping at the first non-zero return (which is returned). Ids above `INT_MAX` end the
    /// walk, as in Linux.
    pub fn idr_for_each(&self, mut f: impl FnMut(i32, XaEntry) -> i32) -> i32 {
        for (index, e) in self.xa.iter() {
            let id = index as u64 + self.base as u64;
            if id > INT_MAX as u64 {
                break;
            }
            let r = f(id as i32, e);
            if r != 0 {
                return r;
            }
        }
        0
    }

    /// `idr_get_next_ul`: returns the first non-NULL entry with id `>= *id`, updating `*id`.
    pub fn idr_get_next_ul(&self, id: &mut u64) -> Option<XaEntry> {
        let start = id.saturating_sub(self.base as u64) as usize;
        let mut index = start;
        let e = self
            .xa
            .find(&mut index, usize::MAX, crate::xarray::XA_PRESENT)?;
        *id = index as u64 + self.base as u64;
        Some(e)
    }

    /// `idr_get_next`: as [`Idr::idr_get_next_ul`] for `int` ids; an id above `INT_MAX` is not
    /// returned (`*id` unchanged).
    pub fn idr_get_next(&self, id: &mut i32) -> Option<XaEntry> {
        let mut i = (*id).max(0) as u64;
        let e = self.idr_get_next_ul(&mut i)?;
        if i > INT_MAX as u64 {
            return None;
        }
        *id = i as i32;
        Some(e)
    }

    /// `idr_is_empty`.
    pub fn idr_is_empty(&self) -> bool {
        self.xa.is_empty()
    }

    /// `idr_destroy`: frees every id and all memory of the tree (not the objects pointed to).
    pub fn idr_destroy(&self) {
        self.xa.destroy()
    }

    /// `idr_preload`: preallocates nodes so that a following `idr_alloc*` with `GFP_NOWAIT`
    /// does not need the allocator.
    ///
    /// # Errors
    /// [`Error::ENOMEM`].
    pub fn idr_preload(&self, gfp: Gfp) -> Result<()> {
        self.xa.preload(gfp)
    }

    /// `idr_preload_end`: nothing to undo here (the preload stays with the IDR; Linux's
    /// per-CPU preload is re-enabled preemption).
    pub fn idr_preload_end(&self) {}

    /// Compatibility: `idr_pre_get` — preloads nodes; returns false on allocation failure.
    pub fn idr_pre_get(&self, gfp: Gfp) -> bool {
        self.xa.preload(gfp).is_ok()
    }

    /// Compatibility: `idr_get_new_above` — allocates the lowest free id `>= start` (up to
    /// `INT_MAX`) without calling the allocator.
    ///
    /// # Errors
    /// [`Error::EAGAIN`]: call [`Idr::idr_pre_get`] and retry; [`Error::ENOSPC`].
    pub fn idr_get_new_above(&self, ptr: Option<XaEntry>, start: i32, id: &mut i32) -> Result<()> {
        if start < 0 {
            return Err(Error::EINVAL);
        }
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let prev = g.set_reserve_only(true);
        let mut n = start as u32;
        let r = self.alloc_locked(&g, ptr, &mut n, INT_MAX, Gfp::GFP_NOWAIT);
        g.set_reserve_only(prev);
        r?;
        *id = n as i32;
        Ok(())
    }

    /// Compatibility: `idr_get_new` — `idr_get_new_above(ptr, 0, id)`.
    ///
    /// # Errors
    /// As [`Idr::idr_get_new_above`].
    pub fn idr_get_new(&self, ptr: Option<XaEntry>, id: &mut i32) -> Result<()> {
        self.idr_get_new_above(ptr, 0, id)
    }
}

// ---------------------------------------------------------------------------------------------
// IDA

/// `IDA_CHUNK_SIZE`: bytes of a bitmap leaf.
pub const IDA_CHUNK_SIZE: usize = 128;
/// `IDA_BITMAP_LONGS`.
pub const IDA_BITMAP_LONGS: usize = IDA_CHUNK_SIZE / core::mem::size_of::<usize>();
/// `IDA_BITMAP_BITS`: ids per XArray slot.
pub const IDA_BITMAP_BITS: u32 = (IDA_BITMAP_LONGS * usize::BITS as usize) as u32;
/// `BITS_PER_XA_VALUE`: bits an inline value entry can hold.
pub const BITS_PER_XA_VALUE: u32 = usize::BITS - 1;

/// `struct ida_bitmap`.
#[repr(C)]
struct IdaBitmap {
    bitmap: [usize; IDA_BITMAP_LONGS],
}

const BITMAP_LAYOUT: Layout = Layout::new::<IdaBitmap>();

impl IdaBitmap {
    fn test(&self, bit: u32) -> bool {
        self.bitmap[bit as usize / usize::BITS as usize] & (1 << (bit % usize::BITS)) != 0
    }
    fn set(&mut self, bit: u32) {
        self.bitmap[bit as usize / usize::BITS as usize] |= 1 << (bit % usize::BITS);
    }
    fn clear(&mut self, bit: u32) {
        self.bitmap[bit as usize / usize::BITS as usize] &= !(1 << (bit % usize::BITS));
    }
    /// The first clear bit at or after `from` (a word at a time, like `find_next_zero_bit`).
    fn first_zero_from(&self, from: u32) -> Option<u32> {
        let mut w = (from / usize::BITS) as usize;
        if w >= IDA_BITMAP_LONGS {
            return None;
        }
        let mut word = !self.bitmap[w] & (usize::MAX << (from % usize::BITS));
        loop {
            if word != 0 {
                return Some(w as u32 * usize::BITS + word.trailing_zeros());
            }
            w += 1;
            if w == IDA_BITMAP_LONGS {
                return None;
            }
            word = !self.bitmap[w];
        }
    }
    /// The first set bit at or after `from` (`find_next_bit`).
    fn first_set_from(&self, from: u32) -> Option<u32> {
        let mut w = (from / usize::BITS) as usize;
        if w >= IDA_BITMAP_LONGS {
            return None;
        }
        let mut word = self.bitmap[w] & (usize::MAX << (from % usize::BITS));
        loop {
            if word != 0 {
                return Some(w as u32 * usize::BITS + word.trailing_zeros());
            }
            w += 1;
            if w == IDA_BITMAP_LONGS {
                return None;
            }
            word = self.bitmap[w];
        }
    }
    fn is_full(&self) -> bool {
        self.bitmap.iter().all(|&w| w == usize::MAX)
    }
    fn is_empty(&self) -> bool {
        self.bitmap.iter().all(|&w| w == 0)
    }
}

/// `struct ida`: an id allocator without entries.
pub struct Ida<A: NodeAlloc> {
    xa: XArray<A>,
    /// A preallocated bitmap for the compatibility API (`ida_pre_get`).
    spare: AtomicPtr<IdaBitmap>,
    warnings: AtomicUsize,
}

// SAFETY: the spare bitmap is owned memory handed between threads only under the XArray lock.
unsafe impl<A: NodeAlloc + Send> Send for Ida<A> {}
// SAFETY: every access to bitmaps happens under the XArray lock.
unsafe impl<A: NodeAlloc + Send + Sync> Sync for Ida<A> {}

enum Chunk {
    Empty,
    Value(usize),
    Bitmap(*mut IdaBitmap),
}

fn chunk_of(e: Option<XaEntry>) -> Chunk {
    match e {
        None => Chunk::Empty,
        Some(e) => match e.to_value() {
            Some(v) => Chunk::Value(v),
            None => Chunk::Bitmap(
                e.as_ptr::<IdaBitmap>()
                    .map_or(ptr::null_mut(), NonNull::as_ptr),
            ),
        },
    }
}

impl<A: NodeAlloc> Ida<A> {
    crate::sync::const_fn_unless_loom! {
        /// `DEFINE_IDA` / `ida_init`.
        pub fn new_in(alloc: A) -> Self {
            Ida {
                xa: XArray::with_flags(alloc, XaFlags::ALLOC),
                spare: AtomicPtr::new(ptr::null_mut()),
                warnings: AtomicUsize::new(0),
            }
        }
    }

    /// Returns how many misuse warnings (`ida_free` of a free id) were issued.
    pub fn warnings(&self) -> usize {
        self.warnings.load(Relaxed)
    }

    fn new_bitmap(&self, gfp: Gfp, reserve_only: bool) -> Result<*mut IdaBitmap> {
        let s = self.spare.swap(ptr::null_mut(), AcqRel);
        let p = if !s.is_null() {
            s
        } else if reserve_only {
            return Err(Error::EAGAIN);
        } else {
            self.xa
                .allocator()
                .alloc(BITMAP_LAYOUT, gfp)
                .ok_or(Error::ENOMEM)?
                .cast::<IdaBitmap>()
                .as_ptr()
        };
        // SAFETY: a block of the bitmap layout, exclusively ours.
        unsafe {
            p.write(IdaBitmap {
                bitmap: [0; IDA_BITMAP_LONGS],
            })
        };
        Ok(p)
    }

    fn free_bitmap(&self, p: *mut IdaBitmap) {
        // SAFETY: `p` came from `new_bitmap` (allocator or spare, both of BITMAP_LAYOUT).
        unsafe {
            self.xa
                .allocator()
                .free(NonNull::new_unchecked(p.cast()), BITMAP_LAYOUT)
        };
    }

    fn bitmap_entry(p: *mut IdaBitmap) -> Option<XaEntry> {
        XaEntry::from_ptr(NonNull::new(p).expect("bitmap"))
    }

    /// `ida_alloc_range`: allocates the lowest free id in `min..=max` (`max` above `INT_MAX`
    /// is clamped to `INT_MAX`).
    ///
    /// # Errors
    /// [`Error::ENOSPC`] (no free id; also `min > INT_MAX`), [`Error::ENOMEM`].
    pub fn ida_alloc_range(&self, min: u32, max: u32, gfp: Gfp) -> Result<u32> {
        self.alloc_range(min, max, gfp, false)
    }

    fn alloc_range(&self, min: u32, max: u32, gfp: Gfp, reserve_only: bool) -> Result<u32> {
        if min > INT_MAX {
            return Err(Error::ENOSPC);
        }
        let max = max.min(INT_MAX);
        if min > max {
            return Err(Error::ENOSPC);
        }
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let prev = g.set_reserve_only(reserve_only);
        let r = self.alloc_locked(&g, min, max, gfp, reserve_only);
        g.set_reserve_only(prev);
        r
    }

    fn alloc_locked(
        &self,
        g: &XaLockGuard<'_, A>,
        min: u32,
        max: u32,
        gfp: Gfp,
        reserve_only: bool,
    ) -> Result<u32> {
        let last_chunk = (max / IDA_BITMAP_BITS) as usize;
        let mut index = (min / IDA_BITMAP_BITS) as usize;
        let mut bit = min % IDA_BITMAP_BITS;
        loop {
            let (i, e) = g
                .find_free_or_marked(index, last_chunk)
                .ok_or(Error::ENOSPC)?;
            if i > index {
                bit = 0;
            }
            let base = i as u64 * IDA_BITMAP_BITS as u64;
            let id_of = |b: u32| base + b as u64;
            match chunk_of(e) {
                Chunk::Empty => {
                    if id_of(bit) > max as u64 {
                        return Err(Error::ENOSPC);
                    }
                    if bit < BITS_PER_XA_VALUE {
                        g.store(i, Some(xa_mk_value(1 << bit)), gfp)?;
                    } else {
                        let b = self.new_bitmap(gfp, reserve_only)?;
                        // SAFETY: a fresh bitmap, ours until stored.
                        unsafe { (*b).set(bit) };
                        if let Err(err) = g.store(i, Self::bitmap_entry(b), gfp) {
                            self.free_bitmap(b);
                            return Err(err);
                        }
                    }
                    g.set_free_mark(i, true);
                    return Ok(id_of(bit) as u32);
                }
                Chunk::Value(v) => {
                    let free = (!v) & (usize::MAX >> 1) & (usize::MAX << bit.min(usize::BITS - 1));
                    let nb = if bit < BITS_PER_XA_VALUE && free != 0 {
                        free.trailing_zeros()
                    } else {
                        bit.max(BITS_PER_XA_VALUE)
                    };
                    if id_of(nb) > max as u64 {
                        return Err(Error::ENOSPC);
                    }
                    if nb < BITS_PER_XA_VALUE {
                        g.store(i, Some(xa_mk_value(v | (1 << nb))), gfp)?;
                    } else {
                        // Outgrows the value entry: convert to a bitmap leaf.
                        let b = self.new_bitmap(gfp, reserve_only)?;
                        // SAFETY: a fresh bitmap, ours until stored.
                        unsafe {
                            (*b).bitmap[0] = v;
                            (*b).set(nb);
                        }
                        if let Err(err) = g.store(i, Self::bitmap_entry(b), gfp) {
                            self.free_bitmap(b);
                            return Err(err);
                        }
                    }
                    g.set_free_mark(i, true);
                    return Ok(id_of(nb) as u32);
                }
                Chunk::Bitmap(b) => {
                    // SAFETY: bitmaps are only touched under the lock, which we hold.
                    let bm = unsafe { &mut *b };
                    match bm.first_zero_from(bit) {
                        Some(nb) if id_of(nb) <= max as u64 => {
                            bm.set(nb);
                            if bm.is_full() {
                                g.set_free_mark(i, false);
                            }
                            return Ok(id_of(nb) as u32);
                        }
                        Some(_) => return Err(Error::ENOSPC),
                        None => {
                            // Free bits only below `bit`: go on with the next chunk.
                            index = i + 1;
                            bit = 0;
                            if index > last_chunk {
                                return Err(Error::ENOSPC);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `ida_alloc`: the lowest free id.
    ///
    /// # Errors
    /// As [`Ida::ida_alloc_range`].
    pub fn ida_alloc(&self, gfp: Gfp) -> Result<u32> {
        self.ida_alloc_range(0, u32::MAX, gfp)
    }

    /// `ida_alloc_min`.
    ///
    /// # Errors
    /// As [`Ida::ida_alloc_range`].
    pub fn ida_alloc_min(&self, min: u32, gfp: Gfp) -> Result<u32> {
        self.ida_alloc_range(min, u32::MAX, gfp)
    }

    /// `ida_alloc_max`.
    ///
    /// # Errors
    /// As [`Ida::ida_alloc_range`].
    pub fn ida_alloc_max(&self, max: u32, gfp: Gfp) -> Result<u32> {
        self.ida_alloc_range(0, max, gfp)
    }

    /// `ida_exists`: returns true if `id` is allocated.
    pub fn ida_exists(&self, id: u32) -> bool {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let bit = id % IDA_BITMAP_BITS;
        match chunk_of(g.load((id / IDA_BITMAP_BITS) as usize)) {
            Chunk::Empty => false,
            Chunk::Value(v) => bit < BITS_PER_XA_VALUE && v & (1 << bit) != 0,
            // SAFETY: under the lock.
            Chunk::Bitmap(b) => unsafe { (*b).test(bit) },
        }
    }

    /// `ida_find_first_range(ida, min, max)`: the lowest allocated id in `min..=max` (`max`
    /// above `INT_MAX` is clamped to it), searching across chunks (Linux 6.16+, with the
    /// cross-chunk fix).
    ///
    /// # Errors
    /// [`Error::EINVAL`] if `min` is above `INT_MAX` (Linux's `(int)min < 0`);
    /// [`Error::ENOENT`] if no id in the range is allocated (also when `min > max`).
    pub fn ida_find_first_range(&self, min: u32, max: u32) -> Result<u32> {
        if min > i32::MAX as u32 {
            return Err(Error::EINVAL);
        }
        let max = max.min(i32::MAX as u32);
        if min > max {
            return Err(Error::ENOENT);
        }
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let last = (max / IDA_BITMAP_BITS) as usize;
        let (mut index, mut offset) = ((min / IDA_BITMAP_BITS) as usize, min % IDA_BITMAP_BITS);
        while let Some((i, e)) = g.find_present(index) {
            if i > last {
                break;
            }
            if i != index {
                offset = 0;
            }
            let bit = match chunk_of(Some(e)) {
                Chunk::Empty => None,
                Chunk::Value(v) => {
                    let rest = if offset >= BITS_PER_XA_VALUE {
                        0
                    } else {
                        v >> offset
                    };
                    (rest != 0).then(|| offset + rest.trailing_zeros())
                }
                // SAFETY: a bitmap entry stays valid while the lock is held.
                Chunk::Bitmap(b) => unsafe { (*b).first_set_from(offset) },
            };
            if let Some(bit) = bit {
                let id = i as u32 * IDA_BITMAP_BITS + bit;
                return if id <= max {
                    Ok(id)
                } else {
                    Err(Error::ENOENT)
                };
            }
            index = i + 1;
            offset = 0;
        }
        Err(Error::ENOENT)
    }

    /// `ida_find_first(ida)`: the lowest allocated id.
    ///
    /// # Errors
    /// [`Error::ENOENT`] if the IDA is empty.
    pub fn ida_find_first(&self) -> Result<u32> {
        self.ida_find_first_range(0, u32::MAX)
    }

    /// `ida_free`: releases `id`. Freeing an id that is not allocated issues a warning
    /// (counted in [`Ida::warnings`], Linux's `WARN(1, "ida_free called for id=%d which is not
    /// allocated.")`) and changes nothing.
    pub fn ida_free(&self, id: u32) {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let index = (id / IDA_BITMAP_BITS) as usize;
        let bit = id % IDA_BITMAP_BITS;
        let ok = match chunk_of(g.load(index)) {
            Chunk::Empty => false,
            Chunk::Value(v) => {
                if bit < BITS_PER_XA_VALUE && v & (1 << bit) != 0 {
                    let nv = v & !(1 << bit);
                    if nv == 0 {
                        g.erase(index);
                    } else {
                        let _ = g.store(index, Some(xa_mk_value(nv)), Gfp::GFP_NOWAIT);
                        g.set_free_mark(index, true);
                    }
                    true
                } else {
                    false
                }
            }
            Chunk::Bitmap(b) => {
                // SAFETY: under the lock.
                let bm = unsafe { &mut *b };
                if bm.test(bit) {
                    bm.clear(bit);
                    if bm.is_empty() {
                        g.erase(index);
                        self.free_bitmap(b);
                    } else {
                        g.set_free_mark(index, true);
                    }
                    true
                } else {
                    false
                }
            }
        };
        if !ok {
            self.warnings.fetch_add(1, Relaxed);
        }
    }

    /// `ida_destroy`: frees every id and all memory.
    pub fn ida_destroy(&self) {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let mut index = 0;
        while let Some((i, e)) = g.find_present(index) {
            if let Chunk::Bitmap(b) = chunk_of(Some(e)) {
                self.free_bitmap(b);
            }
            if i == usize::MAX {
                break;
            }
            index = i + 1;
        }
        g.destroy();
    }

    /// `ida_is_empty`.
    pub fn ida_is_empty(&self) -> bool {
        self.xa.is_empty()
    }

    /// Compatibility: `ida_pre_get` — preloads nodes and one bitmap; false on failure.
    pub fn ida_pre_get(&self, gfp: Gfp) -> bool {
        if self.xa.preload(gfp).is_err() {
            return false;
        }
        if self.spare.load(Acquire).is_null() {
            let Some(p) = self.xa.allocator().alloc(BITMAP_LAYOUT, gfp) else {
                return false;
            };
            let p = p.cast::<IdaBitmap>().as_ptr();
            if self
                .spare
                .compare_exchange(ptr::null_mut(), p, AcqRel, Acquire)
                .is_err()
            {
                self.free_bitmap(p);
            }
        }
        true
    }

    /// Compatibility: `ida_get_new_above` — the lowest free id `>= start`, without calling the
    /// allocator.
    ///
    /// # Errors
    /// [`Error::EAGAIN`]: call [`Ida::ida_pre_get`] and retry; [`Error::ENOSPC`].
    pub fn ida_get_new_above(&self, start: u32, id: &mut u32) -> Result<()> {
        *id = self.alloc_range(start, INT_MAX, Gfp::GFP_NOWAIT, true)?;
        Ok(())
    }

    /// Compatibility: `ida_get_new`.
    ///
    /// # Errors
    /// As [`Ida::ida_get_new_above`].
    pub fn ida_get_new(&self, id: &mut u32) -> Result<()> {
        self.ida_get_new_above(0, id)
    }

    /// Compatibility: `ida_remove` (= [`Ida::ida_free`]).
    pub fn ida_remove(&self, id: u32) {
        self.ida_free(id)
    }

    /// Checks the XArray invariants and that `XA_FREE_MARK` matches bitmap fullness.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check(&self) -> core::result::Result<(), &'static str> {
        self.xa.check_free_on_present()?;
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.xa.lock();
        let mut index = 0;
        while let Some((i, e)) = g.find_present(index) {
            let full = match chunk_of(Some(e)) {
                // SAFETY: bitmaps are only touched under the lock, which we hold.
                Chunk::Bitmap(b) => unsafe { (*b).is_full() },
                Chunk::Value(0) => return Err("empty value chunk left in the tree"),
                _ => false,
            };
            if let Chunk::Bitmap(b) = chunk_of(Some(e)) {
                // SAFETY: `b` is a bitmap of the tree we hold the lock of (taken above), so no one
                // frees or changes it meanwhile.
                if unsafe { (*b).is_empty() } {
                    return Err("empty bitmap left in the tree");
                }
            }
            if g.free_mark(i) == full {
                return Err("XA_FREE_MARK differs from chunk fullness");
            }
            if i == usize::MAX {
                break;
            }
            index = i + 1;
        }
        Ok(())
    }
}

impl<A: NodeAlloc> Drop for Ida<A> {
    fn drop(&mut self) {
        self.ida_destroy();
        let s = self.spare.load(Relaxed);
        if !s.is_null() {
            self.free_bitmap(s);
        }
    }
}
