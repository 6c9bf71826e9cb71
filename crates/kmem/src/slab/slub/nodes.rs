//! `s->node[nid]` (mm/slub.c `get_node`, `init_kmem_cache_nodes`, 6.18 `get_barn`): one
//! `kmem_cache_node` and one barn per node, `remote_node_defrag_ratio` and `get_any_partial`'s
//! choice of a node, and the per-node counts of `/sys/kernel/slab/<cache>/` (`show_slab_objects`).
//!
//! Node 0's `kmem_cache_node` and barn are fields of `struct kmem_cache`. On a NUMA machine
//! the nodes 1.. live in a block of pages of their own, preceded by a header holding the
//! NUMA-only field `remote_node_defrag_ratio`; the `struct page` of the cache's per-CPU
//! block points at it (`private`, unused on such pages):
//!
//! ```text
//! cpu_slab ──> | kmem_cache_cpu × possible_cpus |     (its first struct page: private ─┐)
//!              ┌──────────────────────────────────────────────────────────────────────┘
//!              └> | header | node 1 + barn | node 2 + barn | …
//! ```
//!
//! So `struct kmem_cache` keeps its size (it fills its 640-byte objects) and a one-node
//! machine allocates, prints and does exactly what it did. Linux allocates the nodes from
//! the `kmem_cache_node` cache; kmem takes pages (the first caches are made before any
//! cache could serve them), one page for up to 8 nodes.

use core::fmt::Write;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use kds::list::{self, ListHead};

use crate::addr::{Order, VirtAddr};
use crate::gfp::GfpFlags;
use crate::locking::Lock;
use crate::mm::mm_types::PagePtr;
use crate::platform::Platform;
use crate::slab::common::{get_order, CacheHandle, SlabAllocatorKind, SlabError};
use crate::slab::SlabLayer;

use super::barn::BarnLists;
use super::{cache_ref, Cache, KmemCacheCpu, KmemCacheNode, Slab};

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
    /// Bytes of the block of nodes 1..: nothing on one node.
    fn remote_nodes_bytes(&self) -> usize {
        match self.nr_online_nodes() {
            0 | 1 => 0,
            n => size_of::<RemoteHeader>() + (n - 1) * size_of::<NodeSlot<P::RawLock>>(),
        }
    }

    /// The `struct page` of a per-CPU block.
    fn cpu_block_page(&self, cpu_slab: *mut KmemCacheCpu) -> Option<PagePtr> {
        self.virt_to_page(VirtAddr::new(cpu_slab as usize))
    }

    fn remote_header(&self, s: &Cache<P>) -> *mut RemoteHeader {
        self.cpu_block_page(s.cpu_slab)
            .map_or(ptr::null_mut(), |pg| pg.private() as *mut RemoteHeader)
    }

    /// The slot of node `nid`: `None` for node 0, a node that is not online, or a cache
    /// without the block (never on a NUMA machine).
    #[inline]
    fn node_slot<'a>(&self, s: &'a Cache<P>, nid: usize) -> Option<&'a NodeSlot<P::RawLock>> {
        if nid == 0 || nid >= self.nr_online_nodes() {
            return None;
        }
        let header = self.remote_header(s);
        if header.is_null() {
            return None;
        }
        let first = header.wrapping_add(1).cast::<NodeSlot<P::RawLock>>();
        // SAFETY: a non-null header on a NUMA machine is the block `alloc_remote_nodes` hung
        // off the cache's per-CPU block: the header then `nr_online_nodes - 1` written slots
        // (64-byte aligned in page-aligned memory), alive as long as the cache `s`; `nid - 1`
        // is below that count.
        Some(unsafe { &*first.add(nid - 1) })
    }

    /// `get_node(s, nid)`: node 0's for a node that is not online.
    #[inline]
    pub(super) fn get_node<'a>(
        &self,
        s: &'a Cache<P>,
        nid: usize,
    ) -> &'a KmemCacheNode<P::RawLock> {
        self.node_slot(s, nid).map_or(&s.node, |n| &n.node)
    }

    /// The barn of node `nid`.
    #[inline]
    pub(super) fn node_barn<'a>(
        &self,
        s: &'a Cache<P>,
        nid: usize,
    ) -> &'a Lock<P::RawLock, BarnLists> {
        self.node_slot(s, nid).map_or(&s.barn, |n| &n.barn)
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

    /// `init_kmem_cache_nodes` for nodes 1..: a block of them with the default defrag ratio,
    /// hung off the `struct page` of the per-CPU block `cpu_slab` of a cache being made.
    /// Nothing on a one-node machine.
    pub(super) fn alloc_remote_nodes(&self, cpu_slab: *mut KmemCacheCpu) -> Result<(), SlabError> {
        let nr = self.nr_online_nodes();
        if nr <= 1 {
            return Ok(());
        }
        let order = Order::new(get_order(self.remote_nodes_bytes()));
        let page = self
            .alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO, order)
            .ok_or(SlabError::NoMemory)?;
        let Some(block) = self.page_address(page) else {
            self.__free_pages(page, order);
            return Err(SlabError::NoMemory);
        };
        let header = block.as_ptr::<RemoteHeader>();
        // SAFETY: the block is ours, page aligned and large enough for the header and
        // `nr - 1` slots (`remote_nodes_bytes`); the slots are 64-byte aligned after the
        // 64-byte header. `attach`: the validator lives, unmoved, as long as the platform,
        // which outlives every cache and so every lock of one.
        unsafe {
            header.write(RemoteHeader {
                remote_node_defrag_ratio: AtomicU32::new(DEFAULT_REMOTE_NODE_DEFRAG_RATIO),
            });
            let first = header.add(1).cast::<NodeSlot<P::RawLock>>();
            for i in 0..nr - 1 {
                first.add(i).write(NodeSlot {
                    node: KmemCacheNode::new(),
                    barn: Lock::new(&crate::locking::BARN_LOCK, BarnLists::new()),
                });
                let slot = &*first.add(i);
                if let Some(ld) = self.lockdep() {
                    slot.node.list_lock.attach(ld);
                    slot.barn.attach(ld);
                }
                slot.node.init_lists();
            }
        }
        let Some(cpu_page) = self.cpu_block_page(cpu_slab) else {
            self.__free_pages(page, order);
            return Err(SlabError::NoMemory);
        };
        cpu_page.set_private(header as usize);
        Ok(())
    }

    /// Frees the block of nodes 1.. of a cache being destroyed (its per-CPU block is
    /// `cpu_slab`, freed next).
    pub(super) fn free_remote_nodes(&self, cpu_slab: *mut KmemCacheCpu) {
        let Some(cpu_page) = self.cpu_block_page(cpu_slab) else {
            return;
        };
        let header = cpu_page.private();
        cpu_page.set_private(0);
        if header == 0 {
            return;
        }
        if let Some(page) = self.virt_to_page(VirtAddr::new(header)) {
            self.__free_pages(page, Order::new(get_order(self.remote_nodes_bytes())));
        }
    }

    /// `s->remote_node_defrag_ratio` (`None` on a one-node machine).
    pub(super) fn defrag_ratio<'a>(&self, s: &'a Cache<P>) -> Option<&'a AtomicU32> {
        self.numa()?;
        let header = self.remote_header(s);
        // SAFETY: on a NUMA machine the header was written by `alloc_remote_nodes` and lives
        // as long as the cache; a null one (never, short of a foreign per-CPU block) is None.
        unsafe { header.as_ref() }.map(|h| &h.remote_node_defrag_ratio)
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
