//! The slab allocators (mm/slab_common.c, mm/slub.c, mm/slab.h): object caches and kmalloc
//! on top of the page allocator.
//!
//! - [`common`]: what every slab allocator shares — cache flags, the kmalloc size classes
//!   and caches, merging, the boot options, `/proc/slabinfo` lines, the [`common::SlabAllocator`]
//!   interface an implementation provides, and the public cache API;
//! - [`slub`]: SLUB, the implementation behind that interface (the room for `slab.rs` and
//!   `slob.rs` is beside it);
//! - [`kmalloc`]: the kmalloc family (`kmalloc`, `kfree`, `krealloc`, `ksize`, large kmalloc
//!   straight from the page allocator).
//!
//! [`SlabLayer`] is the machine as the slab allocators see it: the page allocator below
//! (through `Deref`) plus the machine-wide slab state. Nothing here knows vmalloc or /proc.
//!
//! # Locking
//! `slab_mutex` (the cache list) → a cache's node `list_lock` → the zone lock (taken inside
//! the page allocator when a slab is allocated or freed); SLUB's per-CPU fast path runs in a
//! CPU section without locks. The whole order is in docs/LOCKING.md.

pub mod common;
pub mod kmalloc;
pub mod slub;

use crate::mm::cpuhp::{CpuhpEntry, CpuhpState};
use crate::page_alloc::PageAllocator;
use crate::platform::Platform;
use common::SlabState;

/// The slab layer of a machine: the page allocator plus the slab state. Dereferences to the
/// [`PageAllocator`] below it.
pub struct SlabLayer<P: Platform> {
    pub(crate) pa: PageAllocator<P>,
    pub(crate) slab: SlabState<P::RawLock>,
}

impl<P: Platform> core::ops::Deref for SlabLayer<P> {
    type Target = PageAllocator<P>;
    #[inline]
    fn deref(&self) -> &PageAllocator<P> {
        &self.pa
    }
}

impl<P: Platform> SlabLayer<P> {
    /// The machine-wide slab state.
    #[inline]
    pub(crate) fn slab(&self) -> &SlabState<P::RawLock> {
        &self.slab
    }

    /// Attaches `slab_mutex` to the machine's lock validator, if it has one (each cache's
    /// node list locks are attached when the cache is created).
    ///
    /// # Safety
    /// Once, at boot, after `MemoryModel::lockdep_init` and before the lock is taken.
    pub(crate) unsafe fn lockdep_attach(&self) {
        let Some(ld) = self.lockdep() else { return };
        // SAFETY: the validator lives as long as the platform, so as the slab state.
        unsafe { self.slab.mutex.attach(ld) };
    }

    /// Registers SLUB's CPU-dead teardown (`slub_cpu_dead`).
    pub(crate) fn slab_register_cpuhp(&self) {
        let entry = CpuhpEntry {
            name: "slub:dead",
            ctx: (self as *const Self).cast(),
            teardown: slub::slub_cpu_dead::<P>,
        };
        self.cpuhp.lock().register(CpuhpState::SlubDead, entry);
    }
}
