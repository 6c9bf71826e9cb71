//! [`Mutex`]: a `lock_api::Mutex` that reports to a [`Lockdep`].

use core::fmt;
use core::ops::{Deref, DerefMut};
#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::panic::Location;
#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::sync::atomic::{AtomicPtr, Ordering::*};

use super::{LockClass, Lockdep};

/// A `lock_api::Mutex` that reports its acquisitions to a [`Lockdep`] once attached
/// ([`Mutex::attach`]); unattached, or in builds without the validator, it is a plain lock.
///
/// Drop-in for `lock_api::Mutex<R, T>`: `new` takes the lock's class, `lock`/`try_lock`
/// are the same calls (the acquisition site is taken with `#[track_caller]`).
pub struct Mutex<R: lock_api::RawMutex, T: ?Sized> {
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    class: &'static LockClass,
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    ld: AtomicPtr<Lockdep>,
    inner: lock_api::Mutex<R, T>,
}

impl<R: lock_api::RawMutex, T> Mutex<R, T> {
    /// An unlocked mutex of `class` holding `value`.
    pub const fn new(class: &'static LockClass, value: T) -> Self {
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        let _ = class;
        Self {
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            class,
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            ld: AtomicPtr::new(core::ptr::null_mut()),
            inner: lock_api::Mutex::new(value),
        }
    }

    /// Returns the protected value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<R: lock_api::RawMutex, T: ?Sized> Mutex<R, T> {
    /// Makes every later acquisition of this mutex report to `ld`. Only the first call has an
    /// effect (write-once); a null `ld` is ignored. Acquisitions before it are not tracked,
    /// and their releases are not reported either.
    ///
    /// # Safety
    /// `ld` must stay valid and not move for as long as this mutex can be locked or a guard of
    /// it dropped, and its host must be valid whenever that happens.
    pub unsafe fn attach(&self, ld: *const Lockdep) {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        let _ = self
            .ld
            .compare_exchange(core::ptr::null_mut(), ld.cast_mut(), Release, Relaxed);
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        let _ = ld;
    }

    /// The validator this mutex reports to, if attached (and built in).
    pub fn lockdep(&self) -> Option<&Lockdep> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            let p = self.ld.load(Acquire);
            // SAFETY: `attach`'s contract keeps an attached validator valid while the mutex
            // is usable.
            (!p.is_null()).then(|| unsafe { &*p })
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        None
    }

    /// The lock's class (`None` in builds without the validator).
    pub fn class(&self) -> Option<&'static LockClass> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        return Some(self.class);
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        None
    }

    #[cfg(any(debug_assertions, feature = "lockdep"))]
    #[track_caller]
    fn dep_acquire(&self, subclass: u8, trylock: bool) -> Option<&Lockdep> {
        let ld = self.lockdep()?;
        ld.acquire_at(
            self.class,
            subclass,
            self as *const Self as *const () as usize,
            trylock,
            Location::caller(),
        )
        .then_some(ld)
    }

    /// Acquires the mutex, blocking until it is free (`spin_lock` / `mutex_lock`).
    #[inline]
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn lock(&self) -> MutexGuard<'_, R, T> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        let held = self.dep_acquire(0, false);
        MutexGuard {
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            held,
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            lock: self,
            inner: self.inner.lock(),
        }
    }

    /// Acquires the mutex as subclass `subclass` of its class (`spin_lock_nested`): for
    /// holding two locks of one class in a fixed order, e.g. two SLUB node list locks while
    /// moving slabs between caches at boot.
    #[inline]
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn lock_nested(&self, subclass: u8) -> MutexGuard<'_, R, T> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        let held = self.dep_acquire(subclass, false);
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        let _ = subclass;
        MutexGuard {
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            held,
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            lock: self,
            inner: self.inner.lock(),
        }
    }

    /// Acquires the mutex if it is free (`spin_trylock`).
    #[inline]
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, R, T>> {
        let inner = self.inner.try_lock()?;
        Some(MutexGuard {
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            held: self.dep_acquire(0, true),
            #[cfg(any(debug_assertions, feature = "lockdep"))]
            lock: self,
            inner,
        })
    }

    /// Whether the mutex is locked by anyone.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Whether the current task holds this mutex (`lockdep_is_held`); `None` when the
    /// validator cannot tell (not attached, off, or not built in).
    pub fn is_held(&self) -> Option<bool> {
        self.lockdep()?.is_held(self as *const Self as *const ())
    }

    /// Returns the protected value; no locking needed since `&mut self` is exclusive.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// Unlocks a mutex whose guard was forgotten (`lock_api::Mutex::force_unlock`), recording
    /// the release with the validator (which reports a bad unlock balance if the current task
    /// is not known to hold it).
    ///
    /// # Safety
    /// As `lock_api::Mutex::force_unlock`: the mutex must be locked, by the current context,
    /// with its guard forgotten.
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub unsafe fn force_unlock(&self) {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        if let Some(ld) = self.lockdep() {
            ld.release_at(
                self.class,
                self as *const Self as *const () as usize,
                Location::caller(),
            );
        }
        // SAFETY: forwarded caller guarantee.
        unsafe { self.inner.force_unlock() }
    }
}

impl<R: lock_api::RawMutex, T: ?Sized + fmt::Debug> fmt::Debug for Mutex<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<R: lock_api::RawMutex, T: Default> Default for Mutex<R, T> {
    /// A mutex of the class [`UNNAMED`].
    fn default() -> Self {
        Mutex::new(&UNNAMED, T::default())
    }
}

/// The class of mutexes made by `Default` (Linux names such locks by their init site).
pub static UNNAMED: LockClass = LockClass::new("(unnamed)");

/// Proof that a [`Mutex`] is held; unlocks (and tells the validator) when dropped.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, R: lock_api::RawMutex, T: ?Sized> {
    /// The validator the acquisition was recorded with, if it was.
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    held: Option<&'a Lockdep>,
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    lock: &'a Mutex<R, T>,
    inner: lock_api::MutexGuard<'a, R, T>,
}

impl<R: lock_api::RawMutex, T: ?Sized> Deref for MutexGuard<'_, R, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<R: lock_api::RawMutex, T: ?Sized> DerefMut for MutexGuard<'_, R, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

#[cfg(any(debug_assertions, feature = "lockdep"))]
impl<R: lock_api::RawMutex, T: ?Sized> Drop for MutexGuard<'_, R, T> {
    /// Records the release (then the lock itself is released as `inner` drops, as Linux
    /// calls `lock_release` before the raw unlock).
    fn drop(&mut self) {
        if let Some(ld) = self.held {
            let m = self.lock;
            ld.release_at(
                m.class,
                m as *const Mutex<R, T> as *const () as usize,
                Location::caller(),
            );
        }
    }
}

impl<R: lock_api::RawMutex, T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
