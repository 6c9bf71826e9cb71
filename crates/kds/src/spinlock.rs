//! A minimal test-and-test-and-set spinlock, the `spinlock_t` of `klist`.
//!
//! # Invariants
//! `locked` is `true` exactly while one [`SpinGuard`] exists. Acquiring uses `Acquire`,
//! releasing uses `Release`, so everything done under the lock happens-before the next holder.
//! The lock is not fair and does not disable interrupts: it is meant for short critical
//! sections such as relinking a few list nodes.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

use crate::sync::{spin_loop, AtomicBool, Ordering};

/// A spinlock protecting a `T`, like `spinlock_t` next to the data it guards.
pub struct SpinLock<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out at most one `&mut T` at a time, so sharing the lock between
// threads only moves `T` between them: `T: Send` suffices.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// Returns an unlocked spinlock holding `data`.
    #[cfg(not(loom))]
    pub const fn new(data: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(data),
        }
    }

    /// Returns an unlocked spinlock holding `data`.
    #[cfg(loom)]
    pub fn new(data: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(data),
        }
    }

    /// Spins until the lock is acquired and returns the guard (`spin_lock`).
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        // Lock order: no class of its own: its place is its user's (klist: &k->k_lock);
        // docs/LOCKING.md.
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return SpinGuard { lock: self };
            }
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
    }

    /// Acquires the lock if it is free (`spin_trylock`).
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // Lock order: no class of its own: its place is its user's (klist: &k->k_lock);
        // docs/LOCKING.md.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinGuard { lock: self })
    }

    /// Returns the protected data; no locking needed since `&mut self` is exclusive.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Proof that the lock is held; unlocks (`spin_unlock`) when dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard's existence means we hold the lock (type invariant), so no one
        // else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard's existence means we hold the lock (type invariant), so no other guard
        // reaches the data, and `&mut self` makes this the only reference through this guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_under_contention() {
        let l = Arc::new(SpinLock::new(0u64));
        let hs: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *l.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.lock(), 20_000);
        let g = l.lock();
        assert!(l.try_lock().is_none());
        drop(g);
        assert!(l.try_lock().is_some());
    }
}
