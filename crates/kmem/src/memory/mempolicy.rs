//! Allocation under a memory policy (mm/mempolicy.c: `alloc_pages_mpol`, `policy_nodemask`,
//! `get_vma_policy`), used by the fault path for anonymous pages, and the weighted-interleave
//! weights (`/sys/kernel/mm/mempolicy/weighted_interleave/nodeN`, default 1).
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU8, Ordering};

use crate::addr::Order;
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::numa::MAX_NUMA_NODES;
use crate::platform::Platform;
use crate::vma::mempolicy::*;
use crate::vma::{MmStruct, VmAreaStruct};

use super::MemoryLayer;

/// The weighted-interleave weights, one per node (`iw_table`; 1 until set).
pub struct IlWeights([AtomicU8; MAX_NUMA_NODES]);

impl IlWeights {
    /// Every weight 1.
    pub const fn new() -> Self {
        IlWeights([const { AtomicU8::new(1) }; MAX_NUMA_NODES])
    }
}

impl Default for IlWeights {
    fn default() -> Self {
        Self::new()
    }
}

/// `get_vma_policy`: the policy that applies at `addr` of `vma` (the VMA's, else the
/// task's; `None`: the default, local allocation) and the interleave index of `addr`.
pub fn get_vma_policy(mm: &MmStruct, vma: &VmAreaStruct, addr: u64) -> (Option<MemPolicy>, u64) {
    // Through references: copying a `None` `Option<MemPolicy>` whole reads its uninitialised
    // payload, which kmemcheck reports when the VMA or mm is a tracked slab object (the
    // swap-in path of the debuggers' boot did).
    let pol = vma.vm_policy.as_ref().or(mm.task_policy.as_ref()).copied();
    (pol, MemPolicy::vma_ilx(vma.vm_start, vma.vm_pgoff, addr))
}

impl<P: Platform> MemoryLayer<P> {
    /// The weighted-interleave weight of `nid` (`weighted_interleave/nodeN`).
    pub fn il_weight(&self, nid: usize) -> u8 {
        self.mem
            .il_weights
            .0
            .get(nid)
            .map_or(1, |w| w.load(Ordering::Relaxed))
    }

    /// Writes `weighted_interleave/nodeN` (`node_store`): 1–255.
    ///
    /// # Errors
    /// `EINVAL`: weight 0 or a node that is not online.
    pub fn set_il_weight(&self, nid: usize, weight: u8) -> Result<(), Errno> {
        if weight == 0 || nid >= self.nr_online_nodes() {
            return Err(Errno::EINVAL);
        }
        self.mem.il_weights.0[nid].store(weight, Ordering::Relaxed);
        Ok(())
    }

    /// The first node of `local`'s fallback order (itself, then by distance) in `nodes`:
    /// the node of the zonelist's first zone inside the mask (`preferred_zoneref`).
    fn nearest_in(&self, local: usize, nodes: NodeMask) -> usize {
        self.fallback_order(local)
            .iter()
            .map(|&n| n as usize)
            .find(|&n| nodes.contains(n))
            .or_else(|| nodes.first())
            .unwrap_or(local)
    }

    /// `alloc_pages_mpol`: `1 << order` frames as `pol` says for interleave index `ilx`.
    ///
    /// - default / `MPOL_LOCAL`: the CPU's node, falling back by distance;
    /// - `MPOL_PREFERRED`: its node, falling back by distance;
    /// - `MPOL_BIND`: the mask's nodes only, nearest first (no spill: the allocation fails
    ///   instead);
    /// - `MPOL_PREFERRED_MANY`: the mask's nodes without reclaim or warning, then any node;
    /// - `MPOL_INTERLEAVE` / `MPOL_WEIGHTED_INTERLEAVE`: the node of `ilx`
    ///   ([`MemPolicy::interleave_nid`]), falling back; `numa_interleave` counts the pages
    ///   that got it.
    pub fn alloc_pages_mpol(
        &self,
        gfp: GfpFlags,
        order: Order,
        pol: Option<&MemPolicy>,
        ilx: u64,
    ) -> Option<PagePtr> {
        let local = self.numa_node_id();
        let Some(pol) = pol else {
            return self.alloc_pages(gfp, order);
        };
        match pol.mode {
            MPOL_PREFERRED => {
                let nid = pol.nodes.first().unwrap_or(local);
                self.alloc_pages_node(nid as i32, gfp, order)
            }
            MPOL_BIND => {
                let nid = self.nearest_in(local, pol.nodes);
                self.alloc_pages_nodemask(gfp, order, nid, pol.nodes.0)
            }
            MPOL_PREFERRED_MANY => {
                let nid = self.nearest_in(local, pol.nodes);
                let first = (gfp | GfpFlags::__GFP_NOWARN) & !GfpFlags::__GFP_DIRECT_RECLAIM;
                self.alloc_pages_nodemask(first, order, nid, pol.nodes.0)
                    .or_else(|| self.alloc_pages_node(nid as i32, gfp, order))
            }
            MPOL_INTERLEAVE | MPOL_WEIGHTED_INTERLEAVE => {
                let ilx = ilx >> order.as_u32();
                let nid = pol
                    .interleave_nid(ilx, |n| u64::from(self.il_weight(n)))
                    .unwrap_or(local);
                let page = self.alloc_pages_node(nid as i32, gfp, order)?;
                if self.page_to_nid(page) == nid {
                    self.count_numa_interleave(page);
                }
                Some(page)
            }
            _ => self.alloc_pages(gfp, order),
        }
    }
}
