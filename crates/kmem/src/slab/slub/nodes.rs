//! `s->node[nid]` (mm/slub.c `get_node`, `init_kmem_cache_nodes`, 6.18 `get_barn`): one
//! `kmem_cache_node` and one barn per node, `remote_node_defrag_ratio` and `get_any_partial`'s
//! choice of a node, and the per-node counts of `/sys/kernel/slab/<cache>/` (`show_slab_objects`).
//!
//! Node 0's `kmem_cache_node` and barn are fields of `struct kmem_cache`. On a NUMA machine
//! the nodes 1.. live after the per-CPU array, in the same block (`alloc_kmem_cache_cpus`
//! allocates it larger), preceded by a header holding the NUMA-only field
//! `remote_node_defrag_ratio`:
//!
//! ```text
//! cpu_slab ──> | kmem_cache_cpu × possible_cpus | header | node 1 + barn | node 2 + barn | …
//! ```
//!
//! So `struct kmem_cache` keeps its size (it fills its 640-byte objects) and a one-node
//! machine allocates, prints and does exactly what it did (Linux allocates the nodes from the
//! `kmem_cache_node` cache; kmem's block is per-CPU memory and counts in `Percpu:`).

use core::fmt::Write;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use kds::list::{self, ListHead};

use crate::locking::Lock;
use crate::mm::mm_types::PagePtr;
use crate::platform::Platform;
use crate::slab::common::{CacheHandle, SlabAllocatorKind};
use crate::slab::SlabLayer;

use super::barn::BarnLists;
use super::{cache_ref, Cache, KmemCacheNode, Slab};

/// One node ≥ 1 of a cache: its `kmem_cache_node` and its barn.
#[repr(C, align(64))]
pub(super) struct NodeSlot<L: lock_api::RawMutex> {
    node: KmemCacheNode<L>,
    barn: Lock<L, BarnLists>,
}

/// The NUMA-only fields of `struct kmem_cache`, before the nodes.
#[repr(C, align(64))]
struct RemoteHeader {
    /// `s->remote_node_defrag_ratio` (internal units: 0..=1000; sysfs shows a tenth).
    remote_node_defrag_ratio: AtomicU32,
}

/// `kmem_cache_open`'s default `remote_node_defrag_ratio` (mm/slub.c): 1000, shown as 100.
pub(super) const DEFAULT_REMOTE_NODE_DEFRAG_RATIO: u32 = 1000;

/// The `/sys/kernel/slab/<cache>/` files with per-node numbers (`show_slab_objects`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabNodeAttr {
    /// `partial`: partial slabs (`SO_PARTIAL`).
    Partial,
    /// `objects_partial`: objects in use in partial slabs (`SO_PARTIAL | SO_OBJECTS`).
    ObjectsPartial,
    /// `slabs`: all slabs (`SO_ALL`).
    Slabs,
    /// `objects`: objects in use (`SO_ALL | SO_OBJECTS`; CPU slabs and sheaves count as used).
    Objects,
    /// `total_objects`: object slots (`SO_ALL | SO_TOTAL`).
    TotalObjects,
}

impl SlabNodeAttr {
    /// The attribute of a file name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "partial" => Self::Partial,
            "objects_partial" => Self::ObjectsPartial,
            "slabs" => Self::Slabs,
            "objects" => Self::Objects,
            "total_objects" => Self::TotalObjects,
            _ => return None,
        })
    }
}

impl<P: Platform> SlabLayer<P> {
    /// Bytes after the per-CPU array of a cache's per-CPU block: nothing on one node.
    pub(super) fn remote_nodes_bytes(&self) -> usize {
        match self.nr_online_nodes() {
            0 | 1 => 0,
            n => size_of::<RemoteHeader>() + (n - 1) * size_of::<NodeSlot<P::RawLock>>(),
        }
    }

    fn remote_header(&self, s: &Cache<P>) -> *mut RemoteHeader {
        s.cpu_slab
            .wrapping_add(self.platform().possible_cpus())
            .cast()
    }

    /// The slot of node `nid` (1 ≤ `nid` < `nr_online_nodes`).
    fn node_slot<'a>(&self, s: &'a Cache<P>, nid: usize) -> &'a NodeSlot<P::RawLock> {
        debug_assert!(nid >= 1 && nid < self.nr_online_nodes());
        let first = self
            .remote_header(s)
            .wrapping_add(1)
            .cast::<NodeSlot<P::RawLock>>();
        // SAFETY: on a NUMA machine `alloc_kmem_cache_cpus` made the block hold the header and
        // `nr_online_nodes - 1` slots after the per-CPU array (64-byte aligned, as the slots),
        // `init_remote_nodes` wrote them, and the block lives as long as the cache `s`.
        unsafe { &*first.add(nid - 1) }
    }

    /// `get_node(s, nid)`: node 0's for a node that is not online.
    #[inline]
    pub(super) fn get_node<'a>(
        &self,
        s: &'a Cache<P>,
        nid: usize,
    ) -> &'a KmemCacheNode<P::RawLock> {
        if nid == 0 || nid >= self.nr_online_nodes() {
            &s.node
        } else {
            &self.node_slot(s, nid).node
        }
    }

    /// The barn of node `nid`.
    #[inline]
    pub(super) fn node_barn<'a>(
        &self,
        s: &'a Cache<P>,
        nid: usize,
    ) -> &'a Lock<P::RawLock, BarnLists> {
        if nid == 0 || nid >= self.nr_online_nodes() {
            &s.barn
        } else {
            &self.node_slot(s, nid).barn
        }
    }

    /// 6.18 `get_barn(s)`: the barn of the current CPU's node.
    #[inline]
    pub(super) fn get_barn<'a>(&self, s: &'a Cache<P>) -> &'a Lock<P::RawLock, BarnLists> {
        if self.numa().is_none() {
            &s.barn
        } else {
            self.node_barn(s, self.numa_node_id())
        }
    }

    /// Writes the nodes 1.. of a new cache (`init_kmem_cache_nodes`) after its per-CPU array.
    ///
    /// # Safety
    /// `s` was just written in place by `open_cache`, its per-CPU block has
    /// [`Self::remote_nodes_bytes`] bytes after the array, and nobody else sees `s` yet.
    pub(super) unsafe fn init_remote_nodes(&self, s: &Cache<P>) {
        let nr = self.nr_online_nodes();
        if nr <= 1 {
            return;
        }
        // SAFETY: the block has room for the header (the caller's guarantee).
        unsafe {
            self.remote_header(s).write(RemoteHeader {
                remote_node_defrag_ratio: AtomicU32::new(DEFAULT_REMOTE_NODE_DEFRAG_RATIO),
            });
        }
        let first = self
            .remote_header(s)
            .wrapping_add(1)
            .cast::<NodeSlot<P::RawLock>>();
        for nid in 1..nr {
            // SAFETY: slot `nid - 1` lies in the block (the caller's guarantee), aligned.
            unsafe {
                first.add(nid - 1).write(NodeSlot {
                    node: KmemCacheNode::new(),
                    barn: Lock::new(&crate::locking::BARN_LOCK, BarnLists::new()),
                });
            }
            let slot = self.node_slot(s, nid);
            if let Some(ld) = self.lockdep() {
                // SAFETY: the validator lives, unmoved, as long as the platform, which
                // outlives every cache and every lock of one (as for node 0's locks in
                // `open_cache`).
                unsafe {
                    slot.node.list_lock.attach(ld);
                    slot.barn.attach(ld);
                }
            }
            slot.node.init_lists();
        }
    }

    /// `s->remote_node_defrag_ratio` (`None` on a one-node machine).
    pub(super) fn defrag_ratio<'a>(&self, s: &'a Cache<P>) -> Option<&'a AtomicU32> {
        self.numa()?;
        // SAFETY: on a NUMA machine the header was written by `init_remote_nodes` and lives
        // as long as the cache.
        Some(unsafe { &(*self.remote_header(s)).remote_node_defrag_ratio })
    }

    /// `get_any_partial`'s choice: on a NUMA machine, unless the defrag ratio says no this
    /// time (`get_cycles() % 1024 > ratio`; kmem draws the platform's random number), the
    /// nodes of `local`'s zonelist nearest first (`local` itself included, as Linux walks the
    /// whole zonelist) whose partial list holds more than `min_partial` slabs. Calls `take`
    /// on each such node until it returns something.
    pub(super) fn get_any_partial<R>(
        &self,
        s: &Cache<P>,
        local: usize,
        mut take: impl FnMut(usize) -> Option<R>,
    ) -> Option<R> {
        let ratio = self.defrag_ratio(s)?.load(Ordering::Relaxed);
        if ratio == 0 || (self.platform().random_u64() % 1024) as u32 > ratio {
            return None;
        }
        for &nid in self.fallback_order(local) {
            let nid = nid as usize;
            if self
                .get_node(s, nid)
                .nr_partial_hint
                .load(Ordering::Relaxed)
                > s.min_partial as usize
            {
                if let Some(r) = take(nid) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// The nodes of a cache, with their number.
    pub(super) fn for_each_kmem_cache_node<'a>(
        &'a self,
        s: &'a Cache<P>,
    ) -> impl Iterator<Item = (usize, &'a KmemCacheNode<P::RawLock>)> + 'a {
        (0..self.nr_online_nodes()).map(move |nid| (nid, self.get_node(s, nid)))
    }
}

/// Objects in use (`count_inuse`) or free (`count_free`) in the slabs on a node's partial
/// list (`count_partial`).
pub(super) fn count_partial<L: lock_api::RawMutex>(n: &KmemCacheNode<L>, what: Count) -> usize {
    // Lock order: &n->list_lock (rank 4), maybe under slab_mutex; docs/LOCKING.md.
    let mut g = n.list_lock.lock();
    let head: *mut ListHead = &mut g.partial;
    let mut x = 0;
    // SAFETY: this node's partial list under its lock.
    for l in unsafe { list::list_for_each(head) } {
        // SAFETY: partial-list entries are slab_list links.
        let slab = Slab(unsafe { PagePtr::from_lru(l) });
        let objects = slab.objects() as usize;
        let inuse = (slab.counters().inuse() as usize).min(objects);
        x += match what {
            Count::Free => objects - inuse,
            Count::Inuse => inuse,
        };
    }
    x
}

/// What `count_partial` counts.
#[derive(Clone, Copy)]
pub(super) enum Count {
    Free,
    Inuse,
}

impl<P: Platform> SlabLayer<P> {
    /// `show_slab_objects`: the total of `attr` over the nodes, then ` N<nid>=<n>` for each
    /// node with a non-zero count on a NUMA machine, and a newline. `None` for a stale handle
    /// or when SLUB is not the slab allocator.
    pub fn slab_node_attr_show(
        &self,
        h: CacheHandle,
        attr: SlabNodeAttr,
        out: &mut dyn Write,
    ) -> Option<()> {
        if self.slab().kind != SlabAllocatorKind::Slub {
            return None;
        }
        let s = cache_ref::<P>(h);
        if s.gen.load(Ordering::Relaxed) != h.gen {
            return None;
        }
        let mut nodes = [0usize; crate::numa::MAX_NUMA_NODES];
        for (nid, n) in self.for_each_kmem_cache_node(s) {
            let total = n.total_objects.load(Ordering::Relaxed);
            nodes[nid] = match attr {
                SlabNodeAttr::Partial => n.nr_partial_hint.load(Ordering::Relaxed),
                SlabNodeAttr::ObjectsPartial => count_partial(n, Count::Inuse),
                SlabNodeAttr::Slabs => n.nr_slabs.load(Ordering::Relaxed),
                SlabNodeAttr::Objects => total.saturating_sub(count_partial(n, Count::Free)),
                SlabNodeAttr::TotalObjects => total,
            };
        }
        let total: usize = nodes.iter().sum();
        write!(out, "{total}").ok()?;
        if self.numa().is_some() {
            for (nid, x) in nodes.iter().enumerate().filter(|(_, x)| **x != 0) {
                write!(out, " N{nid}={x}").ok()?;
            }
        }
        writeln!(out).ok()
    }

    /// `remote_node_defrag_ratio_show`: the ratio in sysfs units (a tenth of the internal
    /// value); `None` on a one-node machine (Linux has the file only with `CONFIG_NUMA`).
    pub fn slab_remote_node_defrag_ratio(&self, h: CacheHandle) -> Option<u32> {
        if self.slab().kind != SlabAllocatorKind::Slub {
            return None;
        }
        let s = cache_ref::<P>(h);
        if s.gen.load(Ordering::Relaxed) != h.gen {
            return None;
        }
        Some(self.defrag_ratio(s)?.load(Ordering::Relaxed) / 10)
    }

    /// `remote_node_defrag_ratio_store`: `ratio` in sysfs units, at most 100 (`-ERANGE`
    /// above: `Err(())`); kept as ten times that.
    #[allow(clippy::result_unit_err)]
    pub fn slab_set_remote_node_defrag_ratio(&self, h: CacheHandle, ratio: u32) -> Result<(), ()> {
        if ratio > 100 || self.slab().kind != SlabAllocatorKind::Slub {
            return Err(());
        }
        let s = cache_ref::<P>(h);
        if s.gen.load(Ordering::Relaxed) != h.gen {
            return Err(());
        }
        self.defrag_ratio(s)
            .ok_or(())?
            .store(ratio * 10, Ordering::Relaxed);
        Ok(())
    }
}
