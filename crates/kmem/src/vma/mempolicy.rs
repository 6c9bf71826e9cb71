//! NUMA memory policies, the VMA side (mm/mempolicy.c): `struct mempolicy`, its checks
//! (`sanitize_mpol_flags`, `mpol_new`, `mpol_set_nodemask`), the interleave node of a page
//! offset (`interleave_nid`, `weighted_interleave_nid`). `MmStruct::mbind_range` (in
//! `mmap.rs`, with the other VMA surgery) splits VMAs at a range's ends, gives each VMA
//! inside the policy and merges neighbours with equal policies (`vma_modify_policy`).
//!
//! The constants are Linux's (include/uapi/linux/mempolicy.h). A node mask is a bit mask of
//! node ids below [`MAX_NUMA_NODES`] (kmem's `MAX_NUMNODES`).
#![forbid(unsafe_code)]

use super::PAGE;
use crate::errno::Errno;
use crate::numa::MAX_NUMA_NODES;

/// `MPOL_DEFAULT`.
pub const MPOL_DEFAULT: u32 = 0;
/// `MPOL_PREFERRED`.
pub const MPOL_PREFERRED: u32 = 1;
/// `MPOL_BIND`.
pub const MPOL_BIND: u32 = 2;
/// `MPOL_INTERLEAVE`.
pub const MPOL_INTERLEAVE: u32 = 3;
/// `MPOL_LOCAL`.
pub const MPOL_LOCAL: u32 = 4;
/// `MPOL_PREFERRED_MANY`.
pub const MPOL_PREFERRED_MANY: u32 = 5;
/// `MPOL_WEIGHTED_INTERLEAVE`.
pub const MPOL_WEIGHTED_INTERLEAVE: u32 = 6;
/// `MPOL_MAX`: the first invalid mode.
pub const MPOL_MAX: u32 = 7;

/// `MPOL_F_STATIC_NODES` (a mode flag, or-ed into the mode).
pub const MPOL_F_STATIC_NODES: u32 = 1 << 15;
/// `MPOL_F_RELATIVE_NODES`.
pub const MPOL_F_RELATIVE_NODES: u32 = 1 << 14;
/// `MPOL_F_NUMA_BALANCING`.
pub const MPOL_F_NUMA_BALANCING: u32 = 1 << 13;
/// `MPOL_MODE_FLAGS`.
pub const MPOL_MODE_FLAGS: u32 =
    MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;

/// `get_mempolicy` flag `MPOL_F_NODE`: return a node id instead of the mode.
pub const MPOL_F_NODE: u32 = 1 << 0;
/// `get_mempolicy` flag `MPOL_F_ADDR`: the policy of the VMA at `addr`.
pub const MPOL_F_ADDR: u32 = 1 << 1;
/// `get_mempolicy` flag `MPOL_F_MEMS_ALLOWED`: the nodes a policy may use.
pub const MPOL_F_MEMS_ALLOWED: u32 = 1 << 2;

/// `mbind` flag `MPOL_MF_STRICT`: pages already there must follow the policy (`EIO`).
pub const MPOL_MF_STRICT: u32 = 1 << 0;
/// `mbind` flag `MPOL_MF_MOVE`: move pages that do not follow it.
pub const MPOL_MF_MOVE: u32 = 1 << 1;
/// `mbind` flag `MPOL_MF_MOVE_ALL`: … even shared ones.
pub const MPOL_MF_MOVE_ALL: u32 = 1 << 2;
/// `MPOL_MF_VALID`.
pub const MPOL_MF_VALID: u32 = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL;

/// A set of nodes (`nodemask_t`), bit `n` for node `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeMask(pub u64);

impl NodeMask {
    /// No node.
    pub const EMPTY: NodeMask = NodeMask(0);
    /// Whether `nid` is in the set.
    pub fn contains(self, nid: usize) -> bool {
        nid < 64 && self.0 & (1 << nid) != 0
    }
    /// `nodes_weight`.
    pub fn weight(self) -> usize {
        self.0.count_ones() as usize
    }
    /// `first_node` (`None` when empty).
    pub fn first(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }
    /// The nodes, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&n| self.contains(n))
    }
    /// The `k`-th node of the set (0-based, `k < weight`).
    pub fn nth(self, k: usize) -> Option<usize> {
        self.iter().nth(k)
    }
}

impl core::fmt::Display for NodeMask {
    /// A node list as Linux prints it (`nodelist_parse` syntax: `0-1,3`).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut first = true;
        let mut n = 0;
        while n < 64 {
            if !self.contains(n) {
                n += 1;
                continue;
            }
            let mut e = n;
            while e + 1 < 64 && self.contains(e + 1) {
                e += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if e > n {
                write!(f, "{n}-{e}")?;
            } else {
                write!(f, "{n}")?;
            }
            n = e + 1;
        }
        Ok(())
    }
}

/// `struct mempolicy`: a mode (never `MPOL_DEFAULT`: the default policy is `None`), its
/// nodes (one node for `MPOL_PREFERRED`, none for `MPOL_LOCAL`), the mode flags and the
/// node mask the caller gave (`w.user_nodemask`, reported by `get_mempolicy` under
/// `MPOL_F_STATIC_NODES`/`MPOL_F_RELATIVE_NODES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemPolicy {
    /// `MPOL_PREFERRED` … `MPOL_WEIGHTED_INTERLEAVE`.
    pub mode: u32,
    /// `pol->nodes`.
    pub nodes: NodeMask,
    /// `MPOL_F_STATIC_NODES` / `MPOL_F_RELATIVE_NODES` / `MPOL_F_NUMA_BALANCING`.
    pub flags: u32,
    /// The mask as given.
    pub user_nodes: NodeMask,
}

/// `get_nodes`: a user node mask. Bits at or above `MAX_NUMNODES` must be clear.
///
/// # Errors
/// `EINVAL`.
pub fn get_nodes(mask: u64) -> Result<NodeMask, Errno> {
    if MAX_NUMA_NODES < 64 && mask >> MAX_NUMA_NODES != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(NodeMask(mask))
}

/// `sanitize_mpol_flags`: splits `mode` into (mode, flags).
///
/// # Errors
/// `EINVAL`: unknown mode, `STATIC|RELATIVE` together, `NUMA_BALANCING` with a mode other
/// than bind and preferred-many.
pub fn sanitize_mpol_flags(mode: u32) -> Result<(u32, u32), Errno> {
    let flags = mode & MPOL_MODE_FLAGS;
    let mode = mode & !MPOL_MODE_FLAGS;
    if mode >= MPOL_MAX {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_F_NUMA_BALANCING != 0 && mode != MPOL_BIND && mode != MPOL_PREFERRED_MANY {
        return Err(Errno::EINVAL);
    }
    Ok((mode, flags))
}

/// `mpol_new` + `mpol_set_nodemask`: the policy for `mode` (flags stripped) over `nodes` on
/// a machine whose nodes with memory are `allowed`. `Ok(None)` is the default policy.
///
/// The mask is intersected with `allowed` (nodes that are not online are dropped, as
/// cpuset's `mems_allowed` ∩ `N_MEMORY` does); with `MPOL_F_RELATIVE_NODES` bit `n` names
/// the `n mod weight`-th allowed node (`mpol_relative_nodemask`).
///
/// # Errors
/// `EINVAL`: `MPOL_DEFAULT` or `MPOL_LOCAL` with nodes, an empty mask for the other modes
/// (an empty `MPOL_PREFERRED` is `MPOL_LOCAL`, unless with static/relative flags), or no
/// allowed node left in the mask.
pub fn mpol_new(
    mode: u32,
    flags: u32,
    nodes: NodeMask,
    allowed: NodeMask,
) -> Result<Option<MemPolicy>, Errno> {
    let rel_or_static = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0;
    let mut mode = mode;
    match mode {
        MPOL_DEFAULT => {
            return if nodes.weight() == 0 {
                Ok(None)
            } else {
                Err(Errno::EINVAL)
            };
        }
        MPOL_PREFERRED if nodes.weight() == 0 => {
            if rel_or_static {
                return Err(Errno::EINVAL);
            }
            mode = MPOL_LOCAL;
        }
        MPOL_LOCAL if nodes.weight() != 0 || rel_or_static => return Err(Errno::EINVAL),
        MPOL_LOCAL => {}
        _ if nodes.weight() == 0 => return Err(Errno::EINVAL),
        _ => {}
    }
    if mode == MPOL_LOCAL {
        return Ok(Some(MemPolicy {
            mode,
            nodes: NodeMask::EMPTY,
            flags,
            user_nodes: NodeMask::EMPTY,
        }));
    }
    let eff = if flags & MPOL_F_RELATIVE_NODES != 0 {
        let w = allowed.weight().max(1);
        NodeMask(
            nodes
                .iter()
                .filter_map(|b| allowed.nth(b % w))
                .fold(0, |m, n| m | 1 << n),
        )
    } else {
        NodeMask(nodes.0 & allowed.0)
    };
    let Some(first) = eff.first() else {
        return Err(Errno::EINVAL);
    };
    Ok(Some(MemPolicy {
        mode,
        nodes: if mode == MPOL_PREFERRED {
            NodeMask(1 << first)
        } else {
            eff
        },
        flags,
        user_nodes: nodes,
    }))
}

impl MemPolicy {
    /// `interleave_nid` / `weighted_interleave_nid`: the node of interleave index `ilx`
    /// (a page offset). Weighted interleave takes the weights of `weight(nid)` (the sysfs
    /// `weighted_interleave/nodeN` values).
    pub fn interleave_nid(&self, ilx: u64, weight: impl Fn(usize) -> u64) -> Option<usize> {
        let n = self.nodes.weight() as u64;
        if n == 0 {
            return None;
        }
        if self.mode != MPOL_WEIGHTED_INTERLEAVE {
            return self.nodes.nth((ilx % n) as usize);
        }
        let total: u64 = self.nodes.iter().map(|nid| weight(nid).max(1)).sum();
        let mut target = ilx % total;
        for nid in self.nodes.iter() {
            let w = weight(nid).max(1);
            if target < w {
                return Some(nid);
            }
            target -= w;
        }
        self.nodes.first()
    }

    /// The interleave index of `addr` in the VMA at `vm_start` with offset `vm_pgoff`
    /// (`get_vma_policy`: `vm_pgoff + (addr - vm_start) >> PAGE_SHIFT`).
    pub fn vma_ilx(vm_start: u64, vm_pgoff: u64, addr: u64) -> u64 {
        vm_pgoff + (addr - vm_start) / PAGE
    }

    /// The mode as `get_mempolicy` reports it (with the mode flags the caller gave).
    pub fn reported_mode(pol: Option<&MemPolicy>) -> u32 {
        pol.map_or(MPOL_DEFAULT, |p| {
            p.mode | (p.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES))
        })
    }

    /// The mask `get_mempolicy` reports: the user's under static/relative, else the
    /// policy's (`get_policy_nodemask`; empty for local and default).
    pub fn reported_nodes(pol: Option<&MemPolicy>) -> NodeMask {
        match pol {
            None => NodeMask::EMPTY,
            Some(p) if p.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 => p.user_nodes,
            Some(p) => p.nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: NodeMask = NodeMask(0b11);

    #[test]
    fn mpol_new_checks_as_linux() {
        assert_eq!(mpol_new(MPOL_DEFAULT, 0, NodeMask::EMPTY, TWO), Ok(None));
        assert_eq!(
            mpol_new(MPOL_DEFAULT, 0, NodeMask(1), TWO),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mpol_new(MPOL_BIND, 0, NodeMask::EMPTY, TWO),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mpol_new(MPOL_INTERLEAVE, 0, NodeMask(0b100), TWO),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mpol_new(MPOL_LOCAL, 0, NodeMask(1), TWO),
            Err(Errno::EINVAL)
        );
        let p = mpol_new(MPOL_LOCAL, 0, NodeMask::EMPTY, TWO)
            .unwrap()
            .unwrap();
        assert_eq!((p.mode, p.nodes), (MPOL_LOCAL, NodeMask::EMPTY));
        let p = mpol_new(MPOL_PREFERRED, 0, NodeMask::EMPTY, TWO)
            .unwrap()
            .unwrap();
        assert_eq!(p.mode, MPOL_LOCAL);
        assert_eq!(
            mpol_new(MPOL_PREFERRED, MPOL_F_STATIC_NODES, NodeMask::EMPTY, TWO),
            Err(Errno::EINVAL)
        );
        let p = mpol_new(MPOL_PREFERRED, 0, NodeMask(0b110), TWO)
            .unwrap()
            .unwrap();
        assert_eq!(p.nodes, NodeMask(0b10));
        let p = mpol_new(MPOL_BIND, MPOL_F_RELATIVE_NODES, NodeMask(0b100), TWO)
            .unwrap()
            .unwrap();
        assert_eq!(p.nodes, NodeMask(0b01));
        assert_eq!(sanitize_mpol_flags(MPOL_MAX), Err(Errno::EINVAL));
        assert_eq!(
            sanitize_mpol_flags(MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            sanitize_mpol_flags(MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING),
            Err(Errno::EINVAL)
        );
        assert_eq!(get_nodes(1 << MAX_NUMA_NODES), Err(Errno::EINVAL));
    }

    #[test]
    fn interleave_spreads_by_offset() {
        let p = mpol_new(MPOL_INTERLEAVE, 0, NodeMask(0b1011), NodeMask(0xff))
            .unwrap()
            .unwrap();
        let nids: [usize; 4] = core::array::from_fn(|i| p.interleave_nid(i as u64, |_| 1).unwrap());
        assert_eq!(nids, [0, 1, 3, 0]);
        let mut w = p;
        w.mode = MPOL_WEIGHTED_INTERLEAVE;
        let weight = |n| if n == 1 { 3 } else { 1 };
        let nids: [usize; 6] =
            core::array::from_fn(|i| w.interleave_nid(i as u64, weight).unwrap());
        assert_eq!(nids, [0, 1, 1, 1, 3, 0]);
    }
}
