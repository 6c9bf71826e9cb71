//! A futex-based raw mutex that never allocates.
//!
//! `parking_lot` parks threads through a global hash table that it allocates (and grows as the
//! number of threads grows) with the global allocator the first time a thread has to wait. The
//! locks this crate takes on the way into a global allocator (the shared CPU slot, the CPU
//! dead hook) must not do that, so they use [`RawFutexMutex`]: a three-state mutex on a Linux
//! futex word, in the style described by Ulrich Drepper's "Futexes Are Tricky" (mutex 2).
//!
//! # States of the word
//! - `0`: unlocked;
//! - `1`: locked, nobody waits;
//! - `2`: locked, and some thread may be sleeping in `FUTEX_WAIT` (unlock must wake one).
//!
//! A waiter always sets `2` before sleeping, so an unlock that sees `1` knows there is nobody
//! to wake. The lock is not fair and not reentrant.

use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// Spins before sleeping: the critical sections protected here are short.
const SPIN_LIMIT: u32 = 100;

/// A raw mutex on a futex word; usable as `lock_api::Mutex<RawFutexMutex, T>`.
///
/// It never calls the global allocator, never uses thread-locals and works during thread
/// exit, which makes it suitable under a global allocator. Prefer `parking_lot::RawMutex`
/// elsewhere.
pub struct RawFutexMutex {
    state: AtomicU32,
}

impl RawFutexMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        while spins < SPIN_LIMIT {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
            spins += 1;
        }
        // Taking the lock from here on leaves CONTENDED behind: we cannot know whether others
        // still sleep, so the unlock must wake one (a spurious wake-up at worst).
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            futex_wait(&self.state, CONTENDED);
        }
    }
}

impl Default for RawFutexMutex {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `lock` returns only after moving the word from UNLOCKED to LOCKED or CONTENDED with
// Acquire ordering, and only the holder stores UNLOCKED (with Release) in `unlock`; so at most
// one holder exists at a time and critical sections are ordered.
unsafe impl lock_api::RawMutex for RawFutexMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self::new();
    type GuardMarker = lock_api::GuardSend;

    #[inline]
    fn lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    unsafe fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex_wake_one(&self.state);
        }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }
}

/// Sleeps while `*word == expected` (returns on wake-up, signal or spuriously).
fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT only reads the aligned u32 behind `word`, which outlives the call;
    // a null timeout means no timeout. Errors (EAGAIN, EINTR) just mean "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread sleeping on `word`.
fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE does not access memory; it only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// A mutex over `T` built on [`RawFutexMutex`].
pub type FutexMutex<T> = lock_api::Mutex<RawFutexMutex, T>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn try_lock_respects_holder() {
        let m = FutexMutex::new(0);
        let g = m.lock();
        assert!(m.try_lock().is_none());
        assert!(m.is_locked());
        drop(g);
        assert!(m.try_lock().is_some());
        assert!(!m.is_locked());
    }

    #[test]
    fn counter_under_contention() {
        let m = Arc::new(FutexMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut g = m.lock();
                        // A non-atomic read-modify-write: lost updates show a broken lock.
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 80_000);
    }
}
