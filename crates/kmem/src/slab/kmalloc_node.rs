//! Allocation on a NUMA node (include/linux/slab.h `kmalloc_node`, `kzalloc_node`,
//! `kmem_cache_alloc_node`; mm/slub.c `__kmalloc_node_noprof`, `__kmalloc_large_node`).
//!
//! `NUMA_NO_NODE` is the ordinary allocation. A node: SLUB takes the object from a slab of
//! that node (slub/node.rs), a large kmalloc takes its pages from `alloc_pages_node`. The
//! caller's `__GFP_THISNODE` makes the request fail instead of falling back to another node.
//! SLAB: per-node lists and alien caches (slab/slab/node.rs); SLOB: node matching of its
//! pages (slab/slob/). KFENCE's sampling ignores the node.

use core::panic::Location;
use core::ptr::NonNull;

use crate::gfp::GfpFlags;
use crate::page_alloc::NUMA_NO_NODE;
use crate::platform::Platform;
use crate::slab::common::{
    get_order, CacheHandle, SlabAllocatorKind, KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE,
    ZERO_SIZE_PTR,
};
use crate::slab::{slab, slob, slub, SlabLayer};

impl<P: Platform> SlabLayer<P> {
    /// `kmalloc_node`: `size` bytes from `node`'s memory (`NUMA_NO_NODE`: [`Self::kmalloc`]).
    /// Without `__GFP_THISNODE` a node without free memory gives another node's memory;
    /// with it the allocation fails. A node that is not online fails with a warning.
    #[track_caller]
    pub fn kmalloc_node(&self, size: usize, gfp: GfpFlags, node: i32) -> Option<NonNull<u8>> {
        if node == NUMA_NO_NODE {
            return self.kmalloc(size, gfp);
        }
        if size == 0 {
            // SAFETY: ZERO_SIZE_PTR is 16, not null.
            return Some(unsafe { NonNull::new_unchecked(ZERO_SIZE_PTR as *mut u8) });
        }
        let caller = Location::caller();
        let p = if size > KMALLOC_MAX_CACHE_SIZE {
            if size > KMALLOC_MAX_SIZE {
                if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                    self.warn(format_args!(
                        "kmalloc: size {size} exceeds KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE})"
                    ));
                }
                return None;
            }
            self.kmalloc_large_order_node(get_order(size), gfp, node)
        } else {
            match self.slab().kind {
                SlabAllocatorKind::Slub => slub::kmalloc_small_node(self, size, gfp, caller, node),
                SlabAllocatorKind::Slab => slab::kmalloc_node(self, size, gfp, caller, node),
                SlabAllocatorKind::Slob => self.slob_kmalloc_node(size, gfp, node),
            }
        };
        if self.slab_hooked() {
            if self.leak.tracking() {
                self.kmemleak_kmalloc(p, size, gfp, caller);
            }
            if self.kmemcheck.built() {
                self.kmemcheck_kmalloc_hook(p, gfp);
            }
        }
        p
    }

    /// `kzalloc_node`: zeroed [`Self::kmalloc_node`].
    #[track_caller]
    pub fn kzalloc_node(&self, size: usize, gfp: GfpFlags, node: i32) -> Option<NonNull<u8>> {
        self.kmalloc_node(size, gfp | GfpFlags::__GFP_ZERO, node)
    }

    /// `kmem_cache_alloc_node`: an object of `c` from a slab on `node` (`NUMA_NO_NODE`:
    /// [`Self::kmem_cache_alloc`]).
    #[track_caller]
    pub fn kmem_cache_alloc_node(
        &self,
        c: CacheHandle,
        gfp: GfpFlags,
        node: i32,
    ) -> Option<NonNull<u8>> {
        if node == NUMA_NO_NODE {
            return self.kmem_cache_alloc(c, gfp);
        }
        let caller = Location::caller();
        let p = match self.slab().kind {
            SlabAllocatorKind::Slub => {
                slub::slab_alloc_node_handle(self, c, gfp, caller, None, node)
            }
            SlabAllocatorKind::Slab => slab::kmem_cache_alloc_node(self, c, gfp, caller, node),
            SlabAllocatorKind::Slob => slob::kmem_cache_alloc_node(self, c, gfp, caller, node),
        };
        if self.slab_hooked() {
            if self.leak.tracking() {
                self.kmemleak_cache_alloc(c, p, gfp, caller);
            }
            if self.kmemcheck.built() {
                self.kmemcheck_cache_alloc_hook(c, p, gfp);
            }
        }
        p
    }
}
