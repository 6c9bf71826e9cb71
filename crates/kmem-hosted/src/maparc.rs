//! A reference-counted box whose storage comes from `mmap`, not from the global allocator.
//!
//! [`MapArc`] is `Arc` with [`MapWeak`], minus everything this crate does not need, with one
//! difference that matters: its block is an anonymous private mapping of its own. Creating,
//! cloning, downgrading and dropping it never calls the global allocator, so a platform can be
//! built from inside a `#[global_allocator]` (issue 3, `KmemAlloc`) or an `LD_PRELOAD` malloc
//! (issue 8) without re-entering it. The cost is one mapping (at least a page) per value, which
//! is fine for the handful of platform instances a process has.
//!
//! # Invariants
//! - `strong` counts the `MapArc`s; the value is alive exactly while `strong > 0` and is
//!   dropped in place by whoever takes `strong` from 1 to 0.
//! - `weak` counts the `MapWeak`s plus one shared by all `MapArc`s together (as in `Arc`); the
//!   mapping is unmapped by whoever takes `weak` from 1 to 0, after the value was dropped.
//! - Code that may run concurrently with the value's drop only touches the two counters, never
//!   forms a reference to the whole block.

use core::marker::PhantomData;
use core::mem::{align_of, size_of, ManuallyDrop};
use core::ptr::{self, addr_of, addr_of_mut, NonNull};
use core::sync::atomic::{fence, AtomicUsize, Ordering};
use std::io;

use crate::PAGE_SIZE;

/// Counts beyond this abort, as `Arc` does (a leaked-clone loop would otherwise wrap).
const MAX_REFCOUNT: usize = isize::MAX as usize;

#[repr(C)]
struct Block<T> {
    strong: AtomicUsize,
    weak: AtomicUsize,
    value: ManuallyDrop<T>,
}

impl<T> Block<T> {
    /// Bytes mapped for one block: its size rounded up to whole pages.
    const MAP_LEN: usize = {
        assert!(
            align_of::<Block<T>>() <= PAGE_SIZE,
            "MapArc: over-aligned value"
        );
        (size_of::<Block<T>>() + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
    };
}

/// Returns the strong counter of `p` without forming a reference to the value.
///
/// # Safety
/// `p` must point at a mapped block (some `MapArc` or `MapWeak` to it is alive).
unsafe fn strong<'a, T>(p: NonNull<Block<T>>) -> &'a AtomicUsize {
    // SAFETY: the block is mapped (caller) and the counters are only accessed atomically.
    unsafe { &*addr_of!((*p.as_ptr()).strong) }
}

/// Returns the weak counter of `p` without forming a reference to the value.
///
/// # Safety
/// As [`strong`].
unsafe fn weak<'a, T>(p: NonNull<Block<T>>) -> &'a AtomicUsize {
    // SAFETY: the block is mapped (caller), so `weak` is a valid field, and the counters are only
    // ever accessed atomically, so a shared reference to this one races with nothing.
    unsafe { &*addr_of!((*p.as_ptr()).weak) }
}

/// Drops the implicit weak reference or a `MapWeak`, unmapping the block on the last one.
///
/// # Safety
/// The caller owns one weak reference to `p` and gives it up.
unsafe fn release_weak<T>(p: NonNull<Block<T>>) {
    // SAFETY: the caller's weak reference keeps the block mapped until the decrement.
    if unsafe { weak(p) }.fetch_sub(1, Ordering::Release) == 1 {
        fence(Ordering::Acquire);
        // SAFETY: the last weak reference is gone, so nobody can reach the block any more; it
        // was mapped by `MapArc::new` with exactly `MAP_LEN` bytes.
        let rc = unsafe { libc::munmap(p.as_ptr().cast(), Block::<T>::MAP_LEN) };
        debug_assert_eq!(rc, 0, "munmap of a MapArc block failed");
    }
}

/// A shared, reference-counted value stored in its own anonymous mapping.
pub(crate) struct MapArc<T> {
    ptr: NonNull<Block<T>>,
    _owns: PhantomData<T>,
}

/// A non-owning reference to a [`MapArc`] value; see [`MapWeak::upgrade`].
pub(crate) struct MapWeak<T> {
    ptr: NonNull<Block<T>>,
}

// SAFETY: like `Arc<T>`: the value is shared between threads and may be dropped on any of them.
unsafe impl<T: Send + Sync> Send for MapArc<T> {}
// SAFETY: like `Arc<T>`: `&MapArc<T>` hands out only `&T` and clones whose counts are atomic, so
// sharing it between threads needs `T: Sync` (and `Send`, since the last clone may drop `T` on any
// thread).
unsafe impl<T: Send + Sync> Sync for MapArc<T> {}
// SAFETY: like `std::sync::Weak<T>`.
unsafe impl<T: Send + Sync> Send for MapWeak<T> {}
// SAFETY: like `std::sync::Weak<T>`: `&MapWeak<T>` only upgrades through the atomic count to a
// `MapArc<T>`, which is Send + Sync under the same bounds.
unsafe impl<T: Send + Sync> Sync for MapWeak<T> {}

impl<T> MapArc<T> {
    /// Moves `value` into a fresh mapping.
    ///
    /// # Errors
    /// The `mmap` error (e.g. `ENOMEM`); `value` is dropped then.
    pub(crate) fn new(value: T) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping at a kernel-chosen address replaces nothing.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                Block::<T>::MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let p = raw.cast::<Block<T>>();
        // SAFETY: `p` is a fresh, page-aligned (hence aligned for `Block<T>`), writable mapping
        // of at least `size_of::<Block<T>>()` bytes.
        unsafe {
            p.write(Block {
                strong: AtomicUsize::new(1),
                weak: AtomicUsize::new(1),
                value: ManuallyDrop::new(value),
            });
        }
        // SAFETY: mmap succeeded, so `p` is not null.
        let ptr = unsafe { NonNull::new_unchecked(p) };
        Ok(Self {
            ptr,
            _owns: PhantomData,
        })
    }

    /// Creates a weak reference.
    pub(crate) fn downgrade(this: &Self) -> MapWeak<T> {
        // SAFETY: `this` keeps the block mapped.
        let old = unsafe { weak(this.ptr) }.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFCOUNT {
            std::process::abort();
        }
        MapWeak { ptr: this.ptr }
    }

    /// The number of weak references, plus one for the strong ones together (as `Arc`).
    #[cfg(test)]
    pub(crate) fn weak_count(this: &Self) -> usize {
        // SAFETY: `this` keeps the block mapped.
        unsafe { weak(this.ptr) }.load(Ordering::SeqCst)
    }

    /// The block's address: identifies the value while any reference to it exists.
    pub(crate) fn as_id(this: &Self) -> *const () {
        this.ptr.as_ptr().cast_const().cast()
    }
}

impl<T> core::ops::Deref for MapArc<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `self` is a strong reference, so the value is alive and only read shared.
        unsafe { &*addr_of!((*self.ptr.as_ptr()).value).cast::<T>() }
    }
}

impl<T> Clone for MapArc<T> {
    fn clone(&self) -> Self {
        // SAFETY: `self` keeps the block mapped.
        let old = unsafe { strong(self.ptr) }.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFCOUNT {
            std::process::abort();
        }
        Self {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for MapArc<T> {
    fn drop(&mut self) {
        // SAFETY: `self` keeps the block mapped until the decrement.
        if unsafe { strong(self.ptr) }.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: we took the strong count to 0: no other `MapArc` exists and `upgrade` cannot
        // create one, so we have exclusive access to the value, which is dropped exactly once.
        unsafe { ManuallyDrop::drop(&mut *addr_of_mut!((*self.ptr.as_ptr()).value)) };
        // SAFETY: the strong references together owned one weak reference; give it up.
        unsafe { release_weak(self.ptr) };
    }
}

impl<T> MapWeak<T> {
    /// Returns a strong reference if the value is still alive.
    pub(crate) fn upgrade(&self) -> Option<MapArc<T>> {
        // SAFETY: `self` keeps the block mapped.
        let s = unsafe { strong(self.ptr) };
        let mut cur = s.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return None;
            }
            if cur > MAX_REFCOUNT {
                std::process::abort();
            }
            match s.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    return Some(MapArc {
                        ptr: self.ptr,
                        _owns: PhantomData,
                    })
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Turns the weak reference into its raw block address (its identity), to be given back to
    /// [`MapWeak::from_raw`] exactly once.
    pub(crate) fn into_raw(self) -> *const () {
        let p = self.ptr.as_ptr().cast_const().cast();
        core::mem::forget(self);
        p
    }

    /// Takes back a weak reference given away by [`MapWeak::into_raw`].
    ///
    /// # Safety
    /// `raw` must come from `MapWeak::<T>::into_raw` and not have been taken back before.
    pub(crate) unsafe fn from_raw(raw: *const ()) -> Self {
        // SAFETY: `into_raw` produced it from a non-null block pointer.
        let ptr = unsafe { NonNull::new_unchecked(raw.cast_mut().cast::<Block<T>>()) };
        Self { ptr }
    }

    /// Whether the value has been dropped (no strong reference is left).
    pub(crate) fn is_dead(&self) -> bool {
        // SAFETY: `self` keeps the block mapped.
        unsafe { strong(self.ptr) }.load(Ordering::Acquire) == 0
    }

    /// The block's address, equal to [`MapArc::as_id`] of the value it refers to. The address
    /// cannot be reused while this weak reference exists.
    #[cfg(test)]
    pub(crate) fn as_id(&self) -> *const () {
        self.ptr.as_ptr().cast_const().cast()
    }
}

impl<T> Drop for MapWeak<T> {
    fn drop(&mut self) {
        // SAFETY: we own this weak reference.
        unsafe { release_weak(self.ptr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            assert!(!self.0.swap(true, Ordering::SeqCst), "dropped twice");
        }
    }

    #[test]
    fn value_dropped_once_when_last_strong_goes() {
        let dropped = Arc::new(AtomicBool::new(false));
        let a = MapArc::new(Flag(dropped.clone())).unwrap();
        let b = a.clone();
        let w = MapArc::downgrade(&a);
        drop(a);
        assert!(!dropped.load(Ordering::SeqCst));
        assert!(w.upgrade().is_some());
        drop(b);
        assert!(dropped.load(Ordering::SeqCst));
        assert!(w.is_dead());
        assert!(w.upgrade().is_none());
    }

    #[test]
    fn ids_match_and_deref_reads_value() {
        let a = MapArc::new(0x1234_u64).unwrap();
        let w = MapArc::downgrade(&a);
        assert_eq!(MapArc::as_id(&a), w.as_id());
        assert_eq!(*a, 0x1234);
        assert_eq!(*w.upgrade().unwrap(), 0x1234);
        assert_eq!(MapArc::as_id(&a) as usize % PAGE_SIZE, 0);
    }

    #[test]
    fn raw_round_trip_keeps_the_weak_count() {
        let a = MapArc::new(5u32).unwrap();
        let raw = MapArc::downgrade(&a).into_raw();
        assert_eq!(raw, MapArc::as_id(&a));
        drop(a);
        // SAFETY: `raw` came from `into_raw` and is taken back once; the block is still mapped
        // because the weak reference it stands for was never released.
        let w = unsafe { MapWeak::<u32>::from_raw(raw) };
        assert!(w.is_dead());
        assert_eq!(w.as_id(), raw);
    }

    #[test]
    fn concurrent_clone_upgrade_drop() {
        let dropped = Arc::new(AtomicBool::new(false));
        let a = MapArc::new(Flag(dropped.clone())).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = MapArc::downgrade(&a);
                let s = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let x = s.clone();
                        let y = w.upgrade().expect("alive while s is held");
                        drop(x);
                        drop(y);
                    }
                })
            })
            .collect();
        drop(a);
        for t in threads {
            t.join().unwrap();
        }
        assert!(dropped.load(Ordering::SeqCst));
    }
}
