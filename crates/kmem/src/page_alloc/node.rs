//! Nodes in the page allocator (include/linux/mmzone.h `pglist_data`, mm/page_alloc.c
//! `build_zonelists`, `zone_statistics`, `__alloc_pages_node`).
//!
//! Node 0's zones are the page allocator's own `zones` (as `contig_page_data` on a kernel
//! without NUMA); a machine booted with more than one node has a [`NumaNodes`] in memblock
//! memory with the other nodes' zones, the distances, the CPU → node map, each node's
//! fallback order and its NUMA counters. Without it every function here answers for one
//! node, and the allocation paths are those of the one-node allocator.
//!
//! A page's node is in its flags (`NODES_PGSHIFT`, `page_to_nid`); [`PageAllocator::page_zone`]
//! finds its zone from node and zone index. An allocation starts on a preferred node (the
//! allocating CPU's, `numa_node_id`, or the one `alloc_pages_node` names) and walks that
//! node's fallback order, each node's zones highest first (`ZONELIST_FALLBACK` in node order);
//! `__GFP_THISNODE` stops at the preferred node (`ZONELIST_NOFALLBACK`).
//!
//! # Locking
//! [`NumaNodes`] is written once at boot and only read after; its counters are atomics.
//! Each node's zones follow the zone locking of `page_alloc/mod.rs`.

use core::sync::atomic::Ordering;

use super::PageAllocator;
use crate::addr::Order;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mmzone::{NumaNodes, Zone, ZoneGeometry, ZoneType};
use crate::platform::Platform;

/// `NUMA_NO_NODE`: no preference, the allocating CPU's node.
pub const NUMA_NO_NODE: i32 = -1;

/// The page allocator's pointer to its [`NumaNodes`] (null on a one-node machine).
pub(crate) struct NumaRef<L: lock_api::RawMutex>(pub(crate) *const NumaNodes<L>);

// SAFETY: the pointee is written once at boot, before the machine is shared, and is then
// read-only apart from atomics and zones that follow the zone locking (Zone is Send + Sync
// under the same bounds).
unsafe impl<L: lock_api::RawMutex + Send> Send for NumaRef<L> {}
// SAFETY: shared references only read the pointee, which is immutable after boot apart from
// atomics and zones whose own locks serialise writers (Zone is Sync under these bounds).
unsafe impl<L: lock_api::RawMutex + Sync + Send> Sync for NumaRef<L> {}

impl<P: Platform> PageAllocator<P> {
    /// The nodes of a NUMA machine, `None` with one node.
    #[inline]
    pub(crate) fn numa(&self) -> Option<&NumaNodes<P::RawLock>> {
        // SAFETY: non-null only when boot placed a `NumaNodes` in memblock memory that lives
        // and stays put as long as the machine (mm_init::numa_nodes).
        unsafe { self.numa.0.as_ref() }
    }
    /// `nr_online_nodes`.
    #[inline]
    pub fn nr_online_nodes(&self) -> usize {
        self.numa().map_or(1, |n| n.info.nr_nodes)
    }
    /// `node_online(nid)`.
    pub fn node_online(&self, nid: usize) -> bool {
        nid < self.nr_online_nodes()
    }
    /// `NODE_DATA(nid)->node_zones[kind]`; node 0's for a node that is not online.
    #[inline]
    pub fn node_zone(&self, nid: usize, kind: ZoneType) -> &Zone<P::RawLock> {
        if nid == 0 {
            return self.zone(kind);
        }
        match self.numa() {
            Some(n) if nid < n.info.nr_nodes => &n.zones[nid - 1][kind.index()],
            _ => self.zone(kind),
        }
    }
    /// The configured zones of node `nid`, lowest first.
    pub fn node_zones(&self, nid: usize) -> impl Iterator<Item = &Zone<P::RawLock>> + '_ {
        self.arch()
            .zones()
            .iter()
            .map(move |z| self.node_zone(nid, *z))
    }
    /// Every zone slot of every online node, configured or not (for boot-time setup).
    pub(crate) fn zone_slots(&self) -> impl Iterator<Item = &Zone<P::RawLock>> + '_ {
        let remote = self
            .numa()
            .map(|n| &n.zones[..n.info.nr_nodes - 1])
            .unwrap_or(&[]);
        self.zones.iter().chain(remote.iter().flatten())
    }
    /// `page_zone`: the zone a page belongs to, from its node and zone index.
    #[inline]
    pub(crate) fn page_zone(&self, page: PagePtr) -> &Zone<P::RawLock> {
        if self.numa.0.is_null() {
            return self.zone(page.zone_type());
        }
        self.node_zone(page.nid(), page.zone_type())
    }
    /// `page_to_nid`, for a page of this machine (node 0 for a foreign one).
    pub fn page_to_nid(&self, page: PagePtr) -> usize {
        match self.page_ref(page) {
            Some(r) => r.nid(),
            None => 0,
        }
    }
    /// `cpu_to_node(cpu)`.
    #[inline]
    pub fn cpu_to_node(&self, cpu: usize) -> usize {
        self.numa().map_or(0, |n| n.info.cpu_to_node(cpu))
    }
    /// `numa_node_id()`: the node of the CPU this runs on (a hint, as in Linux: the thread
    /// may move right after).
    #[inline]
    pub fn numa_node_id(&self) -> usize {
        match self.numa() {
            None => 0,
            Some(n) => n.info.cpu_to_node(self.plat.raw_cpu_id()),
        }
    }
    /// `node_distance(a, b)` (10 local, 20 remote unless the topology gave a table).
    pub fn node_distance(&self, a: usize, b: usize) -> u8 {
        match self.numa() {
            Some(n) => n.info.distance(a, b),
            None if a == b => crate::numa::LOCAL_DISTANCE,
            None => crate::numa::REMOTE_DISTANCE,
        }
    }
    /// The node order of `nid`'s zonelist, nearest first.
    pub fn fallback_order(&self, nid: usize) -> &[u8] {
        const ZERO: [u8; 1] = [0];
        match self.numa() {
            Some(n) => n.info.fallback_order(nid),
            None => &ZERO,
        }
    }
    /// `node_start_pfn`, `node_spanned_pages` and `node_present_pages` of `nid`.
    pub fn node_span(&self, nid: usize) -> ZoneGeometry {
        match self.numa() {
            Some(n) => n.span[nid % crate::numa::MAX_NUMA_NODES],
            None => {
                let mut zs = self.node_zones(0).filter(|z| z.geo.spanned > 0);
                let first = zs.next().map(|z| z.geo).unwrap_or_default();
                let (end, present) = self.node_zones(0).fold((first.end_pfn(), 0), |(e, p), z| {
                    (e.max(z.geo.end_pfn()), p + z.geo.present)
                });
                ZoneGeometry {
                    start_pfn: first.start_pfn,
                    spanned: end.as_u64() - first.start_pfn.as_u64(),
                    present,
                }
            }
        }
    }
    /// The NUMA counters of `nid` (`numa_hit`, `numa_miss`, `numa_foreign`,
    /// `numa_interleave`, `numa_local`, `numa_other`); zeros on a one-node machine, which
    /// does not count them.
    pub fn numa_stat(&self, nid: usize) -> [usize; 6] {
        let mut v = [0; 6];
        if let Some(n) = self.numa() {
            if nid < n.info.nr_nodes {
                for z in &n.stat[nid] {
                    for (a, b) in v.iter_mut().zip(z.values()) {
                        *a += b;
                    }
                }
            }
        }
        v
    }
    /// The NUMA counters of one zone (`None` on a one-node machine, whose zones count only
    /// their allocations: see /proc/zoneinfo).
    pub fn zone_numa_stat(&self, z: &Zone<P::RawLock>) -> Option<[usize; 6]> {
        let n = self.numa()?;
        Some(n.stat[self.zone_nid(z)][z.kind.index()].values())
    }
    /// The node a zone of this machine belongs to (`zone_to_nid`).
    pub fn zone_nid(&self, z: &Zone<P::RawLock>) -> usize {
        let Some(n) = self.numa() else {
            return 0;
        };
        let p = z as *const Zone<P::RawLock>;
        (1..n.info.nr_nodes)
            .find(|&nid| n.zones[nid - 1].as_ptr_range().contains(&p))
            .unwrap_or(0)
    }
    /// `zone_statistics`: counts an allocation that wanted `preferred` and got a page on
    /// `got`, from a CPU on `local`.
    #[inline]
    pub(super) fn zone_statistics(&self, preferred: usize, page: PagePtr) {
        let Some(n) = self.numa() else {
            return;
        };
        let (got, kind) = (page.nid(), page.zone_type().index());
        let local = n.info.cpu_to_node(self.plat.raw_cpu_id());
        let s = &n.stat[got][kind];
        if got == preferred {
            s.hit.fetch_add(1, Ordering::Relaxed);
        } else {
            s.miss.fetch_add(1, Ordering::Relaxed);
            // Counted in the preferred node's zone of the same kind (Linux: its
            // preferred zone).
            n.stat[preferred][kind]
                .foreign
                .fetch_add(1, Ordering::Relaxed);
        }
        if got == local {
            s.local.fetch_add(1, Ordering::Relaxed);
        } else {
            s.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// The nodes an allocation preferring `nid` may use, in order: the fallback order, or
    /// `nid` alone with `__GFP_THISNODE`.
    #[inline]
    pub(crate) fn zonelist_nodes(&self, nid: usize, gfp: GfpFlags) -> &[u8] {
        const NODES: [u8; crate::numa::MAX_NUMA_NODES] = [0, 1, 2, 3, 4, 5, 6, 7];
        match self.numa() {
            None => &NODES[..1],
            Some(_) if gfp.contains(GfpFlags::__GFP_THISNODE) => &NODES[nid..=nid],
            Some(n) => n.info.fallback_order(nid),
        }
    }
    /// `alloc_pages_node(nid, gfp, order)`: `1 << order` frames, preferably on `nid`
    /// (`NUMA_NO_NODE`: the current CPU's node); only there with `__GFP_THISNODE`. A node
    /// that is not online is a bug in the caller: Linux warns (`VM_WARN_ON`) and kmem prints
    /// a warning and fails the allocation.
    #[track_caller]
    pub fn alloc_pages_node(&self, nid: i32, gfp: GfpFlags, order: Order) -> Option<PagePtr> {
        let nid = if nid == NUMA_NO_NODE {
            self.numa_node_id()
        } else if nid < 0 || nid as usize >= self.nr_online_nodes() {
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                // warn_if_node_offline (include/linux/gfp.h).
                self.warn(format_args!("{gfp} allocation from offline node {nid}"));
            }
            return None;
        } else {
            nid as usize
        };
        self.alloc_pages_nid(gfp, order, nid, u64::MAX)
    }

    /// `__alloc_pages(gfp, order, nid, nodemask)`: as [`Self::alloc_pages_node`] with a
    /// preferred online node, but the zonelist walk takes only the nodes of `nodemask` (bit
    /// per node), as `MPOL_BIND` asks: no page elsewhere, rather a failure.
    #[track_caller]
    pub fn alloc_pages_nodemask(
        &self,
        gfp: GfpFlags,
        order: Order,
        nid: usize,
        nodemask: u64,
    ) -> Option<PagePtr> {
        if nid >= self.nr_online_nodes() {
            return None;
        }
        self.alloc_pages_nid(gfp, order, nid, nodemask)
    }

    /// Counts `numa_interleave` (`NUMA_INTERLEAVE_HIT`) in the zone of `page`, an
    /// interleave-policy allocation that landed on the node it asked for.
    pub fn count_numa_interleave(&self, page: PagePtr) {
        if let Some(n) = self.numa() {
            n.stat[page.nid()][page.zone_type().index()]
                .interleave
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
