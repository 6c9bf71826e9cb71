//! The one place that chooses between real atomics and loom's model-checked ones.
//!
//! Every lock-free structure in `kds` (the `kfifo`, `xarray` and `idr` modules and the small
//! `spinlock::SpinLock`) imports its atomics from here, so building with
//! `RUSTFLAGS="--cfg loom"` swaps them all at once and no `#[cfg(loom)]` appears in logic.

#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// Defines a function that is `const` with real atomics and a plain `fn` under loom (loom's
/// atomics cannot be created in a const context); for constructors such as `XArray::new_in`.
macro_rules! const_fn_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
pub(crate) use const_fn_unless_loom;

/// Returns `N` zeroed `AtomicUsize`s (a const array repeat with real atomics, which compiles
/// to a memset; loom's atomics are built one by one).
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn zeroed_atomic_usizes<const N: usize>() -> [AtomicUsize; N] {
    [const { AtomicUsize::new(0) }; N]
}
/// Returns `N` zeroed `AtomicUsize`s.
#[cfg(loom)]
pub(crate) fn zeroed_atomic_usizes<const N: usize>() -> [AtomicUsize; N] {
    core::array::from_fn(|_| AtomicUsize::new(0))
}

/// A use-after-free detector for lock-free reclamation: readers [`FreeCheck::observe`] an
/// object when they reach it, and its freer calls [`FreeCheck::before_free`] just before freeing
/// it. With real atomics it is zero-sized and both calls are no-ops; under loom it is a loom
/// cell (an `observe` is a read of it, `before_free` a write), so loom reports every reader's
/// access that is not ordered before the free: a use-after-free in the model.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct FreeCheck;

#[cfg(not(loom))]
impl FreeCheck {
    /// Returns a fresh detector.
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        FreeCheck
    }
    /// A reader reached the object.
    #[inline(always)]
    pub(crate) fn observe(&self) {}
    /// The object is about to be freed.
    #[inline(always)]
    pub(crate) fn before_free(&self) {}
}

/// A use-after-free detector (the loom version: a loom cell).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct FreeCheck(loom::cell::UnsafeCell<()>);

#[cfg(loom)]
impl FreeCheck {
    /// Returns a fresh detector.
    pub(crate) fn new() -> Self {
        FreeCheck(loom::cell::UnsafeCell::new(()))
    }
    /// A reader reached the object: a read access loom orders against `before_free`.
    pub(crate) fn observe(&self) {
        self.0.with(|_| ());
    }
    /// The object is about to be freed: a write access, which loom checks against every
    /// `observe` not ordered before it (and every later one).
    pub(crate) fn before_free(&self) {
        self.0.with_mut(|_| ());
    }
}

/// One element slot of a lock-free buffer: the unit loom tracks for data races.
#[cfg(not(loom))]
pub(crate) type Slot<T> = core::cell::UnsafeCell<core::mem::MaybeUninit<T>>;
/// One element slot of a lock-free buffer: the unit loom tracks for data races.
#[cfg(loom)]
pub(crate) type Slot<T> = loom::cell::UnsafeCell<core::mem::MaybeUninit<T>>;

/// Returns an empty slot.
#[cfg(not(loom))]
pub(crate) const fn new_slot<T>() -> Slot<T> {
    core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit())
}
/// Returns an empty slot.
#[cfg(loom)]
pub(crate) fn new_slot<T>() -> Slot<T> {
    loom::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit())
}

/// `memcpy` that handles copies of up to 16 bytes inline with at most two overlapping
/// unaligned loads and stores per side (a library call costs more than such a copy).
///
/// # Safety
/// As `core::ptr::copy_nonoverlapping::<u8>`.
#[cfg(not(loom))]
#[inline(always)]
unsafe fn copy_bytes(dst: *mut u8, src: *const u8, n: usize) {
    use core::ptr::{read_unaligned as rd, write_unaligned as wr};
    // SAFETY: every access below is within `src..src+n` / `dst..dst+n`, valid per the caller.
    unsafe {
        if n > 16 {
            core::ptr::copy_nonoverlapping(src, dst, n);
        } else if n >= 8 {
            let (a, b) = (rd(src.cast::<u64>()), rd(src.add(n - 8).cast::<u64>()));
            wr(dst.cast::<u64>(), a);
            wr(dst.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let (a, b) = (rd(src.cast::<u32>()), rd(src.add(n - 4).cast::<u32>()));
            wr(dst.cast::<u32>(), a);
            wr(dst.add(n - 4).cast::<u32>(), b);
        } else {
            for i in 0..n {
                *dst.add(i) = *src.add(i);
            }
        }
    }
}

/// Copies `n` elements from `src` into the slots starting at `dst`.
///
/// # Safety
/// `dst..dst+n` must be slots the caller may write (no concurrent access), `src` valid for
/// `n` reads, and the two must not overlap.
#[inline(always)]
pub(crate) unsafe fn copy_to_slots<T: Copy>(dst: *const Slot<T>, src: *const T, n: usize) {
    #[cfg(not(loom))]
    // SAFETY: `Slot<T>` has `T`'s layout (`UnsafeCell` and `MaybeUninit` are transparent), so
    // this is a plain copy into memory the caller owns for now.
    unsafe {
        copy_bytes(
            dst.cast_mut().cast::<u8>(),
            src.cast::<u8>(),
            n * core::mem::size_of::<T>(),
        )
    }
    #[cfg(loom)]
    for i in 0..n {
        // SAFETY: forwarded caller guarantee; loom checks the exclusivity claim.
        unsafe { (*dst.add(i)).with_mut(|p| (*p).write(*src.add(i))) };
    }
}

/// Copies `n` elements from the slots starting at `src` into `dst`.
///
/// # Safety
/// The slots must be initialised and not concurrently written, `dst` valid for `n` writes.
#[inline(always)]
pub(crate) unsafe fn copy_from_slots<T: Copy>(dst: *mut T, src: *const Slot<T>, n: usize) {
    #[cfg(not(loom))]
    // SAFETY: layout as in `copy_to_slots`; forwarded caller guarantee.
    unsafe {
        copy_bytes(
            dst.cast::<u8>(),
            src.cast::<u8>(),
            n * core::mem::size_of::<T>(),
        )
    }
    #[cfg(loom)]
    for i in 0..n {
        // SAFETY: forwarded caller guarantee; loom checks it.
        unsafe { *dst.add(i) = (*src.add(i)).with(|p| (*p).assume_init()) };
    }
}

/// Returns the raw address of a run of slots, for handing buffer memory to DMA or user-copy
/// code. Not modelled under loom (it panics there): loom tests use the copying paths.
#[inline(always)]
pub(crate) fn slots_as_mut_ptr<T>(s: *const Slot<T>) -> *mut T {
    #[cfg(loom)]
    {
        let _ = s;
        panic!("raw kfifo buffer access is not modelled under loom");
    }
    #[cfg(not(loom))]
    s.cast_mut().cast::<T>()
}

/// Views caller-provided memory as slots (`kfifo_init` over an external buffer). Not available
/// under loom (it panics there).
#[inline(always)]
pub(crate) fn slots_from_mut_ptr<T>(p: *mut T) -> *const Slot<T> {
    #[cfg(loom)]
    {
        let _ = p;
        panic!("external kfifo buffers are not modelled under loom");
    }
    #[cfg(not(loom))]
    p.cast::<Slot<T>>().cast_const()
}

/// Pads and aligns a value to 128 bytes (two 64-byte lines: adjacent-line prefetch on x86 pulls
/// pairs of lines), so that a producer's and a consumer's index never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> core::ops::DerefMut for CachePadded<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Reads an atomic through `&mut` (no other thread can access it): a plain load the compiler
/// may keep in a register.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn load_mut(a: &mut AtomicU32) -> u32 {
    *a.get_mut()
}
/// Reads an atomic through `&mut`.
#[cfg(loom)]
pub(crate) fn load_mut(a: &mut AtomicU32) -> u32 {
    a.with_mut(|v| *v)
}

/// Writes an atomic through `&mut`: a plain store.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn store_mut(a: &mut AtomicU32, v: u32) {
    *a.get_mut() = v;
}
/// Writes an atomic through `&mut`.
#[cfg(loom)]
pub(crate) fn store_mut(a: &mut AtomicU32, v: u32) {
    a.with_mut(|x| *x = v)
}

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}
