//! [`BootCell`]: a value created once during boot and shared read-only afterwards.
//!
//! The kernel's few globals (the booted kmem machine, for the global allocator and the tests)
//! are `BootCell`s: `set` once from `kernel_main`, then `get` from anywhere. There is one CPU and
//! no interrupts, but the cell is still written before its `ready` flag is published (release)
//! and read after the flag is observed (acquire).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// A write-once cell.
///
/// # Invariants
/// `value` is initialised exactly when `state == READY`; it is never written after that.
pub struct BootCell<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: after publication the value is only shared (`&T`), so `T: Sync` suffices for sharing
// the cell; `T: Send` because the value may be set from one context and used from another.
unsafe impl<T: Send + Sync> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        BootCell {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Stores `value` and returns a reference to it.
    ///
    /// # Panics
    /// If the cell was already set.
    pub fn set(&self, value: T) -> &T {
        let claimed =
            self.state
                .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed);
        assert!(claimed.is_ok(), "BootCell set twice");
        // SAFETY: the state went EMPTY → WRITING here, so no one else writes or reads `value`.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(READY, Ordering::Release);
        self.get().expect("just set")
    }

    /// Returns the value if it has been set.
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY means initialised and never written again (type invariant).
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}
