//! NUMA at boot (arch/x86/mm/numa.c `numa_init`, mm/numa_memblks.c, mm/numa_emulation.c,
//! mm/mm_init.c `free_area_init_node`): the topology from [`BootParams::numa`] or
//! `numa=fake=N` on the command line becomes memblock's node ids (`memblock_set_node`),
//! each node's zone spans (`zone_spanned_pages_in_node`, `zone_absent_pages_in_node`) and
//! the boot log's node lines. A machine without either keeps the one node set up by
//! `dummy_numa_init`, and this module does nothing.
//!
//! kmem supports NUMA on x86_64 (SPARSEMEM) only.

use crate::addr::{Pfn, PhysAddr};
use crate::arch::Arch;
use crate::memblock::{Memblock, MemblockKind};
use crate::mm::MemoryModel;
use crate::mmzone::{PcpSlot, ZoneGeometry, NR_ZONE_KINDS};
use crate::numa::{NumaInfo, NumaMemblk, NumaTopology, MAX_NUMA_NODES};
use crate::platform::{LogLevel, Platform};

use super::{BootError, BootParams};

/// What boot worked out about the nodes (only for a machine with more than one).
pub(crate) struct EarlyNuma {
    pub(crate) info: NumaInfo,
    /// The ranges of `numa=fake=N`, printed as `Faking node …` (`nr_fake` of them).
    pub(crate) fake: [NumaMemblk; MAX_NUMA_NODES],
    pub(crate) nr_fake: usize,
    /// Each node's zone spans; node 0's are also `EarlyMemory::geos`.
    pub(crate) geos: [[ZoneGeometry; NR_ZONE_KINDS]; MAX_NUMA_NODES],
    /// Each node's span and present pages.
    pub(crate) span: [ZoneGeometry; MAX_NUMA_NODES],
    /// Per-CPU lists of the nodes' populated zones (node 0's are `EarlyMemory::pcps`).
    pub(crate) pcps: [[*mut PcpSlot; NR_ZONE_KINDS]; MAX_NUMA_NODES],
    /// The memblock allocation for the nodes' state (`NumaNodes`), zeroed.
    pub(crate) nodes: *mut u8,
}

/// `numa=fake=N` from the command line (N ≥ 2; `numa=fake=1` is one node, as without it).
fn fake_nodes(cmdline: &str) -> Option<usize> {
    let n = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("numa=fake="))?;
    let n: usize = n.trim_end_matches(['N', 'n']).parse().ok()?;
    (n >= 2).then_some(n)
}

/// `numa_init`: applies the topology to memblock and builds the tables. `None` for one node.
///
/// # Errors
/// [`BootError::BadNumaTopology`] for a topology [`NumaInfo::new`] refuses, a node without
/// RAM, a `numa=fake=` that cannot give each node 32 MiB, or an architecture other than
/// x86_64.
pub(crate) fn numa_init(
    params: &BootParams<'_>,
    mb: &mut Memblock,
    max_pfn: Pfn,
) -> Result<Option<EarlyNuma>, BootError> {
    let mut fake = [NumaMemblk {
        nid: 0,
        start: 0,
        end: 0,
    }; MAX_NUMA_NODES];
    let mut nr_fake = 0;
    let topo = match (params.numa, fake_nodes(params.cmdline)) {
        (Some(t), _) if t.nr_nodes <= 1 && t.distance.is_empty() => return Ok(None),
        (Some(t), _) => t,
        (None, Some(n)) => {
            let mut ram = [(0u64, 0u64); 128];
            let mut nr = 0;
            for r in mb.memory.regions().iter().take(ram.len()) {
                ram[nr] = (r.base.as_u64(), r.end());
                nr += 1;
            }
            // The physical node starts at 0 (dummy_numa_init's numa_add_memblk(0, 0, …)).
            if nr > 0 {
                ram[0].0 = 0;
            }
            let total: u64 = ram[..nr].iter().map(|(s, e)| e - s).sum();
            let mut sizes = [0u64; MAX_NUMA_NODES];
            let n = crate::numa::equal_sizes(total, n, &mut sizes);
            nr_fake = crate::numa::split_nodes(&ram[..nr], &sizes[..n], &mut fake)
                .ok_or(BootError::BadNumaTopology)?;
            NumaTopology {
                nr_nodes: nr_fake,
                memblks: &fake[..nr_fake],
                distance: &[],
                cpu_to_node: &[],
                hotpluggable: &[],
            }
        }
        (None, None) => return Ok(None),
    };
    if params.arch != Arch::X86_64 {
        return Err(BootError::BadNumaTopology);
    }
    let info = NumaInfo::new(&topo, params.nr_cpus).map_err(|_| BootError::BadNumaTopology)?;
    // numa_register_meminfo → memblock_set_node for every memblk.
    for b in topo.memblks {
        let end = b.end.min(max_pfn.phys().as_u64());
        if end > b.start {
            mb.set_node(
                PhysAddr::new(b.start),
                end - b.start,
                MemblockKind::Memory,
                b.nid as i32,
            )?;
        }
    }
    mark_hotplug(&topo, mb, max_pfn)?;
    let mut e = EarlyNuma {
        info,
        fake,
        nr_fake,
        geos: [[ZoneGeometry::default(); NR_ZONE_KINDS]; MAX_NUMA_NODES],
        span: [ZoneGeometry::default(); MAX_NUMA_NODES],
        pcps: [[core::ptr::null_mut(); NR_ZONE_KINDS]; MAX_NUMA_NODES],
        nodes: core::ptr::null_mut(),
    };
    for nid in 0..info.nr_nodes {
        let (span, geos) = node_geometry(params.arch, mb, max_pfn, nid as i32);
        if span.present == 0 {
            return Err(BootError::BadNumaTopology);
        }
        e.span[nid] = span;
        e.geos[nid] = geos;
    }
    // Node spans must not overlap: a zone's buddy merging stays inside its span.
    for a in 0..info.nr_nodes {
        for b in a + 1..info.nr_nodes {
            let (x, y) = (e.span[a], e.span[b]);
            if x.start_pfn < y.end_pfn() && y.start_pfn < x.end_pfn() {
                return Err(BootError::BadNumaTopology);
            }
        }
    }
    Ok(Some(e))
}

/// The firmware's hot-pluggable ranges (`acpi_numa_memory_affinity_init`:
/// `memblock_mark_hotplug`), then `numa_clear_kernel_node_hotplug` (mm/numa_memblks.c): every
/// node holding kernel memory (a `memblock.reserved` range: the first MiB, the kernel image,
/// the boot's own reservations) loses the flag on all its memory.
fn mark_hotplug(topo: &NumaTopology<'_>, mb: &mut Memblock, max_pfn: Pfn) -> Result<(), BootError> {
    if !topo.hotpluggable.iter().any(|&h| h) {
        return Ok(());
    }
    let clip = |b: &NumaMemblk| {
        let end = b.end.min(max_pfn.phys().as_u64());
        (end > b.start).then(|| (PhysAddr::new(b.start), end - b.start))
    };
    for (b, _) in topo
        .memblks
        .iter()
        .zip(topo.hotpluggable)
        .filter(|(_, &h)| h)
    {
        if let Some((base, size)) = clip(b) {
            mb.mark_hotplug(base, size)?;
        }
    }
    let mut kernel_nodes = 0u64;
    for r in mb.reserved.regions() {
        for b in topo.memblks {
            if b.start < r.end() && r.base.as_u64() < b.end {
                kernel_nodes |= 1 << b.nid;
            }
        }
    }
    for b in topo.memblks {
        if kernel_nodes & (1 << b.nid) != 0 {
            if let Some((base, size)) = clip(b) {
                mb.clear_hotplug(base, size)?;
            }
        }
    }
    Ok(())
}

/// `calculate_node_totalpages` for node `nid`: its span (`get_pfn_range_for_nid`) and each
/// zone's part of it (`zone_spanned_pages_in_node`: the zone's range clamped to the node's),
/// present pages counted from the node's memblock regions.
fn node_geometry(
    arch: Arch,
    mb: &Memblock,
    max_pfn: Pfn,
    nid: i32,
) -> (ZoneGeometry, [ZoneGeometry; NR_ZONE_KINDS]) {
    let mine = || mb.memory.regions().iter().filter(move |r| r.nid == nid);
    let pfns = |r: &crate::memblock::MemblockRegion| {
        (r.base.pfn().as_u64(), PhysAddr::new(r.end()).pfn().as_u64())
    };
    let node_start = mine().map(|r| pfns(r).0).min().unwrap_or(0);
    let node_end = mine().map(|r| pfns(r).1).max().unwrap_or(0);
    let mut geos = [ZoneGeometry::default(); NR_ZONE_KINDS];
    let mut prev_end = 0u64;
    let mut node_present = 0;
    for &z in arch.zones() {
        let zend = arch.zone_end_pfn(z, max_pfn).as_u64();
        let (lo, hi) = (prev_end, zend.max(prev_end));
        prev_end = hi;
        let (s, e) = (
            lo.clamp(node_start, node_end),
            hi.clamp(node_start, node_end),
        );
        if e <= s {
            continue;
        }
        let present: u64 = mine()
            .map(|r| {
                let (rs, re) = pfns(r);
                re.min(e).saturating_sub(rs.max(s))
            })
            .sum();
        node_present += present;
        geos[z.index()] = ZoneGeometry {
            start_pfn: Pfn::new(s),
            spanned: e - s,
            present,
        };
    }
    let span = ZoneGeometry {
        start_pfn: Pfn::new(node_start),
        spanned: node_end.saturating_sub(node_start),
        present: node_present,
    };
    (span, geos)
}

/// The lines `numa_init` prints before the zone ranges: `numa=fake`'s nodes
/// (mm/numa_emulation.c `emu_setup_memblk`) and, with a SLIT, the distance table
/// (mm/numa_memblks.c `numa_alloc_distance`, KERN_DEBUG).
pub(crate) fn print_numa_init<P: Platform>(mm: &MemoryModel<P>, n: &EarlyNuma) {
    for b in &n.fake[..n.nr_fake] {
        mm.printk(
            LogLevel::Info,
            format_args!(
                "Faking node {} at [mem {:#018x}-{:#018x}] ({}MB)",
                b.nid,
                b.start,
                b.end - 1,
                (b.end - b.start) >> 20
            ),
        );
    }
    if n.info.has_slit {
        mm.printk(
            LogLevel::Debug,
            format_args!("NUMA: Initialized distance table, cnt={}", n.info.nr_nodes),
        );
    }
}

/// `free_area_init_node`'s `Initmem setup node N [mem …]`, one per node.
pub(crate) fn print_initmem<P: Platform>(mm: &MemoryModel<P>, n: &EarlyNuma) {
    for nid in 0..n.info.nr_nodes {
        let s = n.span[nid];
        mm.printk(
            LogLevel::Info,
            format_args!(
                "Initmem setup node {nid} [mem {:#018x}-{:#018x}]",
                s.start_pfn.phys().as_u64(),
                s.end_pfn().phys().as_u64() - 1
            ),
        );
    }
}

/// `build_zonelists`' `Fallback order for Node N: a b …` (each number followed by a space).
pub(crate) fn print_fallback_order<P: Platform>(mm: &MemoryModel<P>, n: &EarlyNuma) {
    for nid in 0..n.info.nr_nodes {
        let mut line = crate::mm::printk::LineBuf::new();
        for &o in n.info.fallback_order(nid) {
            let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{o} "));
        }
        mm.printk(
            LogLevel::Info,
            format_args!("Fallback order for Node {nid}: {}", line.as_str()),
        );
    }
}
