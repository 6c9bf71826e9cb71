//! The kernel's raw spinlock, the `RawLock` of the bare-metal platform.
//!
//! This kernel runs on one CPU with interrupts disabled for its whole life, so a lock can never
//! be contended legitimately: if `lock` finds the lock held, the holder is the
//! caller itself (recursive locking) and spinning would hang forever. It panics instead, with a
//! message, so a locking bug in kmem shows up as a failed test rather than a timeout — the
//! uniprocessor equivalent of lockdep's "possible recursive locking detected".
//!
//! The lock is still a real test-and-set lock with acquire/release ordering, so the same type
//! stays correct when later issues bring up more CPUs (and then only the panic must go).

use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-set spinlock implementing [`lock_api::RawMutex`].
///
/// # Invariants
/// `locked` is true exactly while a guard (or a `lock` without `unlock`) is outstanding.
pub struct RawSpinlock {
    locked: AtomicBool,
}

// SAFETY: `lock` returns only once `locked` went false → true by this caller (acquire), `unlock`
// stores false with release ordering, so at most one holder exists at a time and the holder's
// writes are visible to the next one.
unsafe impl lock_api::RawMutex for RawSpinlock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self {
        locked: AtomicBool::new(false),
    };

    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        if !self.try_lock() {
            // One CPU, interrupts off: the holder is us.
            panic!("spinlock: recursive locking on the only CPU (deadlock)");
        }
    }

    fn try_lock(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    unsafe fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

/// A spinlock-protected value.
pub type SpinLock<T> = lock_api::Mutex<RawSpinlock, T>;
