//! NUMA topology (vocabulary): what the firmware or the command line says about the nodes
//! ([`NumaTopology`]), checked and turned into the machine's fixed tables ([`NumaInfo`]):
//! the distance matrix (`numa_set_distance`, mm/numa_memblks.c), the CPU → node map
//! (`numa_set_node`, arch/x86/mm/numa.c) and each node's fallback order (`build_zonelists` /
//! `find_next_best_node`, mm/page_alloc.c), plus `numa=fake=N`'s equal split
//! (mm/numa_emulation.c).
//!
//! kmem models up to [`MAX_NUMA_NODES`] nodes (Linux's `MAX_NUMNODES` is `1 << NODES_SHIFT`;
//! kmem keeps a node id in three page-flag bits). Every node owns memory (no memoryless
//! nodes).
#![forbid(unsafe_code)]

/// Nodes kmem can model (node ids `0..MAX_NUMA_NODES`).
pub const MAX_NUMA_NODES: usize = 8;
/// `LOCAL_DISTANCE` (include/linux/numa.h).
pub const LOCAL_DISTANCE: u8 = 10;
/// `REMOTE_DISTANCE` (include/linux/numa.h).
pub const REMOTE_DISTANCE: u8 = 20;
/// CPUs with an entry in the CPU → node map; CPUs above map round-robin.
pub const NUMA_MAX_CPUS: usize = 256;
/// `PENALTY_FOR_NODE_WITH_CPUS` (mm/page_alloc.c).
const PENALTY_FOR_NODE_WITH_CPUS: u32 = 1;

/// One `numa_add_memblk(nid, start, end)`: the physical range `[start, end)` is on `nid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumaMemblk {
    /// The node.
    pub nid: u32,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The nodes as the firmware (ACPI SRAT/SLIT) or the command line describe them.
#[derive(Clone, Copy, Debug)]
pub struct NumaTopology<'a> {
    /// Nodes `0..nr_nodes` (at most [`MAX_NUMA_NODES`]; each must own memory).
    pub nr_nodes: usize,
    /// The node of each physical range (SRAT memory affinity). RAM no range covers stays
    /// on node 0.
    pub memblks: &'a [NumaMemblk],
    /// SLIT: `nr_nodes * nr_nodes` entries, `distance[from * nr_nodes + to]`; empty for
    /// Linux's defaults (10 local, 20 remote).
    pub distance: &'a [u8],
    /// `cpu_to_node[cpu]` (SRAT processor affinity); CPUs past its end are spread
    /// round-robin (`numa_init_array`).
    pub cpu_to_node: &'a [u32],
    /// `hotpluggable[i]`: `memblks[i]` is hot-pluggable (SRAT memory affinity's
    /// `ACPI_SRAT_MEM_HOT_PLUGGABLE` → `memblock_mark_hotplug`); missing entries are not.
    /// With `movable_node` such memory becomes ZONE_MOVABLE at boot, unless its node holds
    /// kernel memory.
    pub hotpluggable: &'a [bool],
}

/// Why a topology was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumaError {
    /// `nr_nodes` is 0 or above [`MAX_NUMA_NODES`].
    BadNodeCount,
    /// A memblk or CPU names a node `>= nr_nodes`, or a memblk is empty.
    BadNode,
    /// The distance table has the wrong length, a diagonal entry other than
    /// `LOCAL_DISTANCE`, or an off-diagonal one at or below it (`numa_set_distance`'s
    /// checks, mm/numa_memblks.c).
    BadDistance,
    /// A node owns no RAM.
    MemorylessNode,
}

impl core::fmt::Display for NumaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NumaError::BadNodeCount => "NUMA: bad node count",
            NumaError::BadNode => "NUMA: memory or CPU on a node that does not exist",
            NumaError::BadDistance => "NUMA: invalid distance table",
            NumaError::MemorylessNode => "NUMA: a node has no memory",
        })
    }
}

/// The machine's checked NUMA tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumaInfo {
    /// `nr_online_nodes`.
    pub nr_nodes: usize,
    /// `node_distance(from, to)`.
    pub distance: [[u8; MAX_NUMA_NODES]; MAX_NUMA_NODES],
    /// Each node's fallback order (its zonelist's node order), `nr_nodes` entries.
    pub order: [[u8; MAX_NUMA_NODES]; MAX_NUMA_NODES],
    /// `cpu_to_node` for CPUs below [`NUMA_MAX_CPUS`].
    pub cpu_node: [u8; NUMA_MAX_CPUS],
    /// Whether the distance table came from the topology (`NUMA: Initialized distance
    /// table` is printed only then).
    pub has_slit: bool,
}

impl NumaInfo {
    /// One node, everything on it.
    pub const fn single() -> Self {
        let mut distance = [[REMOTE_DISTANCE; MAX_NUMA_NODES]; MAX_NUMA_NODES];
        distance[0][0] = LOCAL_DISTANCE;
        Self {
            nr_nodes: 1,
            distance,
            order: [[0; MAX_NUMA_NODES]; MAX_NUMA_NODES],
            cpu_node: [0; NUMA_MAX_CPUS],
            has_slit: false,
        }
    }

    /// Checks `t` and builds the tables; `nr_cpus` CPUs get a node each.
    ///
    /// # Errors
    /// The first [`NumaError`] found. Whether each node owns RAM is checked by the boot
    /// code, which knows the memory map.
    pub fn new(t: &NumaTopology<'_>, nr_cpus: usize) -> Result<Self, NumaError> {
        let n = t.nr_nodes;
        if n == 0 || n > MAX_NUMA_NODES {
            return Err(NumaError::BadNodeCount);
        }
        if t.memblks
            .iter()
            .any(|b| b.nid as usize >= n || b.end <= b.start)
            || t.cpu_to_node.iter().any(|&c| c as usize >= n)
        {
            return Err(NumaError::BadNode);
        }
        let mut info = Self::single();
        info.nr_nodes = n;
        for (i, row) in info.distance.iter_mut().enumerate() {
            for (j, d) in row.iter_mut().enumerate() {
                *d = if i == j {
                    LOCAL_DISTANCE
                } else {
                    REMOTE_DISTANCE
                };
            }
        }
        if !t.distance.is_empty() {
            if t.distance.len() != n * n {
                return Err(NumaError::BadDistance);
            }
            for i in 0..n {
                for j in 0..n {
                    let d = t.distance[i * n + j];
                    if (i == j && d != LOCAL_DISTANCE) || (i != j && d <= LOCAL_DISTANCE) {
                        return Err(NumaError::BadDistance);
                    }
                    info.distance[i][j] = d;
                }
            }
            info.has_slit = true;
        }
        for cpu in 0..nr_cpus.min(NUMA_MAX_CPUS) {
            info.cpu_node[cpu] = match t.cpu_to_node.get(cpu) {
                Some(&c) => c as u8,
                None => (cpu % n) as u8,
            };
        }
        info.build_zonelists();
        Ok(info)
    }

    /// `node_distance(a, b)`.
    #[inline]
    pub fn distance(&self, a: usize, b: usize) -> u8 {
        self.distance[a % MAX_NUMA_NODES][b % MAX_NUMA_NODES]
    }

    /// `cpu_to_node(cpu)`.
    #[inline]
    pub fn cpu_to_node(&self, cpu: usize) -> usize {
        match self.cpu_node.get(cpu) {
            Some(&n) => n as usize,
            None => cpu % self.nr_nodes.max(1),
        }
    }

    /// Whether any CPU of `0..nr_cpus` is on `nid` (`cpumask_of_node` not empty).
    fn node_has_cpus(&self, nid: usize, nr_cpus: usize) -> bool {
        (0..nr_cpus.min(NUMA_MAX_CPUS)).any(|c| self.cpu_node[c] as usize == nid)
    }

    /// The fallback order of `nid`, nearest first (its zonelist's nodes).
    pub fn fallback_order(&self, nid: usize) -> &[u8] {
        &self.order[nid % MAX_NUMA_NODES][..self.nr_nodes]
    }

    /// `build_all_zonelists`: each node's order by `find_next_best_node`, with the global
    /// `node_load` penalty spreading nodes of equal distance round-robin.
    fn build_zonelists(&mut self) {
        let n = self.nr_nodes;
        // The CPUs the map names: the topology's, or as many as fit.
        let nr_cpus = NUMA_MAX_CPUS;
        let mut node_load = [0u32; MAX_NUMA_NODES];
        for local in 0..n {
            let mut used = [false; MAX_NUMA_NODES];
            let mut prev = local;
            for k in 0..n {
                let node = self.find_next_best_node(local, &mut used, &node_load, nr_cpus);
                if self.distance[local][node] != self.distance[local][prev] {
                    node_load[node] += 1;
                }
                self.order[local][k] = node as u8;
                prev = node;
            }
        }
    }

    /// `find_next_best_node`: the local node first, then the unused node with the least
    /// `(distance + (n < node) + has_cpus) * MAX_NUMNODES + node_load`.
    fn find_next_best_node(
        &self,
        node: usize,
        used: &mut [bool; MAX_NUMA_NODES],
        node_load: &[u32; MAX_NUMA_NODES],
        nr_cpus: usize,
    ) -> usize {
        if !used[node] {
            used[node] = true;
            return node;
        }
        let mut best = None;
        let mut min_val = u32::MAX;
        for n in 0..self.nr_nodes {
            if used[n] {
                continue;
            }
            let mut val = u32::from(self.distance[node][n]);
            val += u32::from(n < node);
            if self.node_has_cpus(n, nr_cpus) {
                val += PENALTY_FOR_NODE_WITH_CPUS;
            }
            val *= crate::memblock::MAX_NUMNODES as u32;
            val += node_load[n];
            if val < min_val {
                min_val = val;
                best = Some(n);
            }
        }
        let b = best.unwrap_or(node);
        used[b] = true;
        b
    }
}

/// Splits the RAM ranges `ram` into nodes of the given sizes, as `numa=fake=N` does
/// (mm/numa_emulation.c: node ends on `FAKE_NODE_MIN_SIZE`, 32 MiB, boundaries; the last
/// node takes the rest); a hole belongs to the node whose memory it follows. Writes one
/// memblk per node to `out` and returns how many, or `None` when a node would get less than
/// 32 MiB or the sizes exceed RAM.
pub fn split_nodes(ram: &[(u64, u64)], sizes: &[u64], out: &mut [NumaMemblk]) -> Option<usize> {
    const FAKE_NODE_MIN_SIZE: u64 = 32 << 20;
    let nr = sizes.len();
    if nr == 0 || nr > MAX_NUMA_NODES || out.len() < nr {
        return None;
    }
    let first = ram.first()?.0;
    let mut cursor = first;
    let mut ri = 0;
    for (nid, &want) in sizes.iter().enumerate() {
        if want < FAKE_NODE_MIN_SIZE {
            return None;
        }
        let start = cursor;
        let mut left = want;
        if nid + 1 == nr {
            cursor = ram.last()?.1;
            left = 0;
        }
        while left > 0 && ri < ram.len() {
            let (s, e) = ram[ri];
            let from = cursor.max(s);
            let avail = e.saturating_sub(from);
            if avail > left {
                // Node ends fall on FAKE_NODE_MIN_SIZE boundaries (numa_emulation.c rounds
                // sizes to it).
                cursor = (from + left).next_multiple_of(FAKE_NODE_MIN_SIZE).min(e);
                left = 0;
            } else {
                cursor = e;
                left -= avail;
                ri += 1;
            }
        }
        if left > 0 || cursor <= start {
            return None;
        }
        out[nid] = NumaMemblk {
            nid: nid as u32,
            start,
            end: cursor,
        };
    }
    Some(nr)
}

/// Equal sizes for `nr` nodes over `total` bytes of RAM as `split_nodes_interleave` works
/// them out: `total / nr` rounded down to 32 MiB (`FAKE_NODE_MIN_SIZE`), the 32 MiB chunks
/// left over given one each to the first nodes (`big`); the last node takes the rest.
pub fn equal_sizes(total: u64, nr: usize, out: &mut [u64; MAX_NUMA_NODES]) -> usize {
    const CHUNK: u64 = 32 << 20;
    let nr = nr.clamp(1, MAX_NUMA_NODES);
    let each = (total / nr as u64) & !(CHUNK - 1);
    let big = ((total - each * nr as u64) / CHUNK) as usize;
    for (i, s) in out.iter_mut().take(nr).enumerate() {
        *s = each + if i < big { CHUNK } else { 0 };
    }
    nr
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn topo(n: usize, dist: &[u8]) -> NumaInfo {
        let t = NumaTopology {
            nr_nodes: n,
            memblks: &[],
            distance: dist,
            cpu_to_node: &[],
            hotpluggable: &[],
        };
        NumaInfo::new(&t, 4).unwrap()
    }

    #[test]
    fn default_distances_and_two_node_orders() {
        let i = topo(2, &[]);
        assert_eq!(i.distance(0, 1), 20);
        assert_eq!(i.distance(1, 1), 10);
        assert_eq!(i.fallback_order(0), &[0, 1]);
        assert_eq!(i.fallback_order(1), &[1, 0]);
        // CPUs round-robin over the nodes (numa_init_array).
        assert_eq!(
            (0..4).map(|c| i.cpu_to_node(c)).collect::<Vec<_>>(),
            [0, 1, 0, 1]
        );
    }

    #[test]
    fn slit_orders_by_distance() {
        // A 4-node ring: 0-1-2-3-0 at 20, across at 30.
        #[rustfmt::skip]
        let d = [10, 20, 30, 20,
                 20, 10, 20, 30,
                 30, 20, 10, 20,
                 20, 30, 20, 10];
        let i = topo(4, &d);
        assert_eq!(i.fallback_order(0)[0], 0);
        assert_eq!(i.fallback_order(0)[3], 2);
        assert_eq!(i.fallback_order(2)[3], 0);
        assert_eq!(i.fallback_order(1)[3], 3);
    }

    #[test]
    fn bad_topologies_are_refused() {
        let t = |n, d: &'static [u8], c: &'static [u32]| NumaTopology {
            nr_nodes: n,
            memblks: &[],
            distance: d,
            cpu_to_node: c,
            hotpluggable: &[],
        };
        assert_eq!(
            NumaInfo::new(&t(0, &[], &[]), 1),
            Err(NumaError::BadNodeCount)
        );
        assert_eq!(
            NumaInfo::new(&t(9, &[], &[]), 1),
            Err(NumaError::BadNodeCount)
        );
        assert_eq!(
            NumaInfo::new(&t(2, &[10, 20], &[]), 1),
            Err(NumaError::BadDistance)
        );
        assert_eq!(
            NumaInfo::new(&t(2, &[10, 10, 20, 10], &[]), 1),
            Err(NumaError::BadDistance)
        );
        assert_eq!(
            NumaInfo::new(&t(2, &[], &[0, 2]), 2),
            Err(NumaError::BadNode)
        );
    }

    #[test]
    fn split_follows_ram_around_holes() {
        let ram = [
            (0x1000, 0x9f000),
            (0x100000, 0xc000_0000),
            (0x1_0000_0000, 0x1_4000_0000),
        ];
        let mut out = [NumaMemblk {
            nid: 0,
            start: 0,
            end: 0,
        }; MAX_NUMA_NODES];
        let n = split_nodes(&ram, &[2 << 30, 1 << 30], &mut out).unwrap();
        assert_eq!(n, 2);
        assert_eq!(out[0].start, 0x1000);
        // 2 GiB of RAM counted across the low hole, rounded up to 32 MiB.
        assert_eq!(out[0].end, 0x8200_0000);
        assert_eq!(out[1].end, 0x1_4000_0000);
        assert!(split_nodes(&ram, &[1 << 20, 1 << 30], &mut out).is_none());
    }
}
