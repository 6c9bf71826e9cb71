//! Reader protection: when a node that lock-free readers may be looking at can be freed.
//!
//! This is the only place that knows how readers are protected, so that switching to real RCU
//! (the `rcu` hook trait being added to `kds`) changes only this module: `ReadSide::enter`
//! becomes `rcu_read_lock`, `ReadSide::quiescent` becomes "a grace period has elapsed since
//! the nodes were retired" (or the retired list is handed to `call_rcu`).
//!
//! Today it is the XArray's scheme (see `crate::xarray`): readers count themselves in an
//! atomic; writers put unlinked nodes on a retired list (`MtLockGuard`'s writer state) and free
//! the list at the end of a write operation only if an `AcqRel` read-modify-write of the
//! count finds no reader. A reader that enters after that RMW synchronises with it and can no
//! longer reach the unlinked nodes (they were unlinked before it, with `Release` stores); a
//! reader that left before it published its reads with its `Release` decrement. Freed nodes are
//! therefore never reused while a reader may see them.

use crate::sync::{AtomicUsize, Ordering::*};

/// The per-tree reader registry.
pub(super) struct ReadSide {
    readers: AtomicUsize,
}

/// A read-side critical section (`rcu_read_lock()` .. `rcu_read_unlock()` for this tree).
pub struct MtReadGuard<'a> {
    rs: &'a ReadSide,
}

impl ReadSide {
    crate::sync::const_fn_unless_loom! {
        pub(super) fn new() -> ReadSide {
            ReadSide {
                readers: AtomicUsize::new(0),
            }
        }
    }

    /// Enters a read-side section.
    #[inline]
    pub(super) fn enter(&self) -> MtReadGuard<'_> {
        self.readers.fetch_add(1, Acquire);
        MtReadGuard { rs: self }
    }

    /// Returns true if nodes unlinked before this call can be freed now.
    #[inline]
    pub(super) fn quiescent(&self) -> bool {
        self.readers.fetch_add(0, AcqRel) == 0
    }
}

impl Drop for MtReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.rs.readers.fetch_sub(1, Release);
    }
}
