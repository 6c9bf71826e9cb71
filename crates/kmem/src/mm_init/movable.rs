//! ZONE_MOVABLE at boot (mm/mm_init.c `cmdline_parse_kernelcore`, `cmdline_parse_movablecore`,
//! `find_usable_zone_for_movable`, `find_zone_movable_pfns_for_nodes`,
//! `adjust_zone_range_for_zone_movable`, `zone_spanned_pages_in_node`; mm/memory_hotplug.c
//! `cmdline_parse_movable_node`; Documentation/admin-guide/kernel-parameters.txt).
//!
//! - `kernelcore=SIZE|N%` asks for that much memory usable by every allocation, spread evenly
//!   over the nodes with memory; the rest of each node, above its kernel part, is ZONE_MOVABLE.
//!   `movablecore=SIZE|N%` asks for the movable part instead (rounded up to
//!   `MAX_ORDER_NR_PAGES`); with both, the larger kernel part wins.
//! - `movable_node`: memory the firmware marks hotpluggable (ACPI SRAT's hot-pluggable flag →
//!   `memblock_mark_hotplug`; kmem's [`crate::numa::NumaTopology::hotpluggable`]) is
//!   ZONE_MOVABLE from its node's first hotpluggable range on; `kernelcore=`/`movablecore=`
//!   are ignored. The nodes holding kernel memory lose the flag at boot
//!   (`numa_clear_kernel_node_hotplug`), so node 0 never goes movable.
//! - `kernelcore=mirror` needs mirrored memory (EFI's `EFI_MEMORY_MORE_RELIABLE`), which a
//!   kmem machine never has: Linux's `The system has no mirror memory, ignore
//!   kernelcore=mirror.` and no ZONE_MOVABLE (movablecore= is ignored with it, as in Linux).
//!
//! The result is `zone_movable_pfn[]`: per node the first PFN of ZONE_MOVABLE (0 for none),
//! aligned up to `MAX_ORDER_NR_PAGES`. Each zone of a node with ZONE_MOVABLE is then clamped
//! as `adjust_zone_range_for_zone_movable` does: the zone ZONE_MOVABLE is taken from
//! (`movable_zone`, the highest populated one) ends where ZONE_MOVABLE starts, zones wholly
//! above it are empty. Without any of the options nothing changes.
//!
//! Bad values behave as in Linux: a bare `kernelcore`/`movablecore` prints `Malformed early
//! option '…'` (Linux would dereference NULL for a bare `kernelcore`; kmem does not), a
//! percentage above 100 is `WARN_ON`'d and then asks for more than the machine has (no
//! ZONE_MOVABLE), and an unparsable number is 0 (no ZONE_MOVABLE, no message).

#![forbid(unsafe_code)]

use crate::addr::{PhysAddr, MAX_PAGE_ORDER, PAGE_SHIFT};
use crate::arch::Arch;
use crate::memblock::Memblock;
use crate::mm::MemoryModel;
use crate::mmzone::{ZoneGeometry, ZoneType, NR_ZONE_KINDS};
use crate::numa::MAX_NUMA_NODES;
use crate::platform::{LogLevel, Platform};

/// `MAX_ORDER_NR_PAGES`.
const MAX_ORDER_NR_PAGES: u64 = 1 << MAX_PAGE_ORDER;

/// What the command line asked for (`required_kernelcore` and friends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CoreParams {
    /// `required_kernelcore` (pages).
    pub(crate) kernelcore: u64,
    /// `required_kernelcore_percent`.
    pub(crate) kernelcore_percent: u64,
    /// `required_movablecore` (pages).
    pub(crate) movablecore: u64,
    /// `required_movablecore_percent`.
    pub(crate) movablecore_percent: u64,
    /// `mirrored_kernelcore`.
    pub(crate) mirror: bool,
    /// `movable_node_enabled`.
    pub(crate) movable_node: bool,
    /// A bare `kernelcore` / `movablecore` (`Malformed early option`).
    pub(crate) malformed: [bool; 2],
    /// A percentage above 100 for `kernelcore=` / `movablecore=` (`WARN_ON(coremem > 100)`).
    pub(crate) over_100: [bool; 2],
}

/// `simple_strtoull(s, &end, 0)`: C notation (0x hex, 0 octal, decimal); the value and the
/// rest.
fn strtoull(s: &str) -> (u64, &str) {
    let b = s.as_bytes();
    let (radix, mut i) = if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' {
        (16, 2)
    } else if b.len() > 1 && b[0] == b'0' {
        (8, 1)
    } else {
        (10, 0)
    };
    let mut v: u64 = 0;
    while let Some(d) = b.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        v = v.wrapping_mul(u64::from(radix)).wrapping_add(u64::from(d));
        i += 1;
    }
    (v, &s[i..])
}

/// `memparse` (lib/cmdline.c): a number with an optional K/M/G/T/P/E suffix.
fn memparse(s: &str) -> u64 {
    let (v, rest) = strtoull(s);
    let shift = match rest.as_bytes().first().map(|c| c | 0x20) {
        Some(b'e') => 60,
        Some(b'p') => 50,
        Some(b't') => 40,
        Some(b'g') => 30,
        Some(b'm') => 20,
        Some(b'k') => 10,
        _ => 0,
    };
    v.checked_shl(shift).unwrap_or(0)
}

/// `cmdline_parse_core`: a percentage of total memory or a size in bytes. Returns
/// `(pages, percent, over_100)`; a size resets the percentage, a percentage leaves the
/// pages as they were (Linux writes only `*percent` then).
fn parse_core(v: &str, pages: u64) -> (u64, u64, bool) {
    let (n, rest) = strtoull(v);
    if rest.starts_with('%') {
        return (pages, n, n > 100);
    }
    (memparse(v) >> PAGE_SHIFT, 0, false)
}

impl CoreParams {
    /// The early parameters `kernelcore=`, `movablecore=` and `movable_node`, each
    /// occurrence in order (a later one overrides, as each runs its handler).
    pub(crate) fn parse(cmdline: &str) -> Self {
        let mut p = Self::default();
        for w in cmdline.split_whitespace() {
            let (name, val) = match w.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (w, None),
            };
            match (name, val) {
                ("movable_node", _) => p.movable_node = true,
                ("kernelcore", None) => p.malformed[0] = true,
                ("movablecore", None) => p.malformed[1] = true,
                // parse_option_str(p, "mirror"): one of the comma-separated words.
                ("kernelcore", Some(v)) if v.split(',').any(|x| x == "mirror") => {
                    p.mirror = true;
                }
                ("kernelcore", Some(v)) => {
                    let (pages, pct, over) = parse_core(v, p.kernelcore);
                    (p.kernelcore, p.kernelcore_percent) = (pages, pct);
                    p.over_100[0] |= over;
                }
                ("movablecore", Some(v)) => {
                    let (pages, pct, over) = parse_core(v, p.movablecore);
                    (p.movablecore, p.movablecore_percent) = (pages, pct);
                    p.over_100[1] |= over;
                }
                _ => {}
            }
        }
        p
    }
}

/// What boot decided about ZONE_MOVABLE.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BootMovable {
    /// The command line's requests.
    pub(crate) params: CoreParams,
    /// `zone_movable_pfn[nid]`: where ZONE_MOVABLE starts on each node, 0 for none.
    pub(crate) pfn: [u64; MAX_NUMA_NODES],
    /// `movable_zone`: the zone ZONE_MOVABLE's pages are taken from.
    pub(crate) movable_zone: ZoneType,
    /// `kernelcore=mirror` without mirrored memory (the warning is printed).
    pub(crate) no_mirror: bool,
}

impl BootMovable {
    /// Whether any node has ZONE_MOVABLE at boot.
    pub(crate) fn any(&self) -> bool {
        self.pfn.iter().any(|&p| p != 0)
    }
}

/// `arch_zone_lowest_possible_pfn[]` / `arch_zone_highest_possible_pfn[]` (free_area_init):
/// the architecture's zones laid end to end from the first PFN of RAM; ZONE_MOVABLE's are 0.
fn arch_zone_limits(
    arch: Arch,
    mb: &Memblock,
    max_pfn: crate::addr::Pfn,
) -> ([u64; NR_ZONE_KINDS], [u64; NR_ZONE_KINDS]) {
    let mut low = [0u64; NR_ZONE_KINDS];
    let mut high = [0u64; NR_ZONE_KINDS];
    let mut start = mb.start_of_dram().map_or(0, |a| a.pfn().as_u64());
    for &z in arch.zones() {
        if z == ZoneType::Movable {
            continue;
        }
        let end = arch.zone_end_pfn(z, max_pfn).as_u64().max(start);
        low[z.index()] = start;
        high[z.index()] = end;
        start = end;
    }
    (low, high)
}

/// The PFN ranges of node `nid`'s memory (`for_each_mem_pfn_range(i, nid, …)`).
fn node_ranges(mb: &Memblock, nid: usize) -> impl Iterator<Item = (u64, u64)> + '_ {
    mb.memory
        .regions()
        .iter()
        .filter(move |r| r.nid == nid as i32)
        .map(|r| {
            (
                r.base.as_u64().div_ceil(1 << PAGE_SHIFT),
                r.end() >> PAGE_SHIFT,
            )
        })
        .filter(|(s, e)| e > s)
}

/// `get_pfn_range_for_nid`.
fn node_span(mb: &Memblock, nid: usize) -> (u64, u64) {
    let s = node_ranges(mb, nid).map(|r| r.0).min().unwrap_or(0);
    let e = node_ranges(mb, nid).map(|r| r.1).max().unwrap_or(0);
    (s, e)
}

/// `find_zone_movable_pfns_for_nodes` for a machine of `nr_nodes` nodes whose memblock
/// memory carries its node ids (and hotplug flags). With `movable_node`, memblock is told
/// so (`movable_node_is_enabled`: its allocations then skip hotpluggable memory).
pub(crate) fn find_zone_movable_pfns_for_nodes(
    arch: Arch,
    cmdline: &str,
    mb: &mut Memblock,
    max_pfn: crate::addr::Pfn,
    nr_nodes: usize,
) -> BootMovable {
    let params = CoreParams::parse(cmdline);
    if params.movable_node {
        mb.set_movable_node(true);
    }
    if params.mirror {
        mb.set_mirrored_kernelcore(true);
    }
    let (low, high) = arch_zone_limits(arch, mb, max_pfn);
    // find_usable_zone_for_movable: the highest zone the architecture populates.
    let movable_zone = arch
        .zones()
        .iter()
        .rev()
        .copied()
        .find(|&z| z != ZoneType::Movable && high[z.index()] > low[z.index()])
        .unwrap_or(ZoneType::Normal);
    let mut bm = BootMovable {
        params,
        pfn: [0; MAX_NUMA_NODES],
        movable_zone,
        no_mirror: false,
    };
    let nr_nodes = nr_nodes.min(MAX_NUMA_NODES);
    if params.movable_node {
        for r in mb.memory.regions().iter().filter(|r| r.is_hotpluggable()) {
            let nid = (r.nid.max(0) as usize).min(MAX_NUMA_NODES - 1);
            let start = r.base.pfn().as_u64();
            bm.pfn[nid] = match bm.pfn[nid] {
                0 => start,
                p => p.min(start),
            };
        }
    } else if params.mirror {
        // kmem has no mirrored memory (memblock_has_mirror() is false): Linux's `goto out`.
        bm.no_mirror = !mb.has_mirror();
        return bm;
    } else if !spread_kernelcore(&mut bm, mb, low[movable_zone.index()], nr_nodes) {
        return bm;
    }
    // out2: align each node's start to MAX_ORDER_NR_PAGES; none if it is past the node.
    for nid in 0..nr_nodes {
        let p = bm.pfn[nid].next_multiple_of(MAX_ORDER_NR_PAGES);
        bm.pfn[nid] = if p >= node_span(mb, nid).1 { 0 } else { p };
    }
    bm
}

/// The `kernelcore=`/`movablecore=` part of `find_zone_movable_pfns_for_nodes`: spreads the
/// kernel's pages evenly over the nodes, from `usable_startpfn` (the lowest PFN of
/// `movable_zone`) up. `false` when there is no ZONE_MOVABLE to set up (`goto out`).
fn spread_kernelcore(bm: &mut BootMovable, mb: &Memblock, usable_startpfn: u64, nr: usize) -> bool {
    // early_calculate_totalpages, and the nodes with memory.
    let mut totalpages = 0u64;
    let mut has_mem = [false; MAX_NUMA_NODES];
    for (nid, has) in has_mem.iter_mut().enumerate().take(nr) {
        for (s, e) in node_ranges(mb, nid) {
            totalpages += e - s;
            *has = true;
        }
    }
    let mut usable_nodes = has_mem.iter().filter(|&&m| m).count() as u64;
    let p = bm.params;
    let mut required_kernelcore = p.kernelcore;
    if p.kernelcore_percent != 0 {
        required_kernelcore = totalpages * 100 * p.kernelcore_percent / 10000;
    }
    let mut required_movablecore = p.movablecore;
    if p.movablecore_percent != 0 {
        required_movablecore = totalpages * 100 * p.movablecore_percent / 10000;
    }
    if required_movablecore != 0 {
        // Rounded up so ZONE_MOVABLE is at least what was asked for.
        let movable = required_movablecore
            .next_multiple_of(MAX_ORDER_NR_PAGES)
            .min(totalpages);
        required_kernelcore = required_kernelcore.max(totalpages - movable);
    }
    if required_kernelcore == 0 || required_kernelcore >= totalpages || usable_nodes == 0 {
        return false;
    }
    loop {
        // Spread kernelcore memory as evenly as possible throughout the nodes.
        let mut kernelcore_node = required_kernelcore / usable_nodes;
        for nid in (0..nr).filter(|&n| has_mem[n]) {
            if required_kernelcore < kernelcore_node {
                kernelcore_node = required_kernelcore / usable_nodes;
            }
            let mut remaining = kernelcore_node;
            for (s, e) in node_ranges(mb, nid) {
                let mut start = s.max(bm.pfn[nid]);
                if start >= e {
                    continue;
                }
                // Pages below ZONE_MOVABLE's lowest possible PFN are kernel pages.
                if start < usable_startpfn {
                    let kernel_pages = e.min(usable_startpfn) - start;
                    remaining -= kernel_pages.min(remaining);
                    required_kernelcore -= kernel_pages.min(required_kernelcore);
                    if e <= usable_startpfn {
                        // Fully accounted: a rebalancing pass must not count it again.
                        bm.pfn[nid] = e;
                        continue;
                    }
                    start = usable_startpfn;
                }
                let size = (e - start).min(remaining);
                bm.pfn[nid] = start + size;
                required_kernelcore -= required_kernelcore.min(size);
                remaining -= size;
                if remaining == 0 {
                    break;
                }
            }
        }
        // Kernel pages still owed: another pass over one node fewer.
        usable_nodes -= 1;
        if usable_nodes == 0 || required_kernelcore <= usable_nodes {
            return true;
        }
    }
}

/// The zones of node `nid` with ZONE_MOVABLE carved out (`zone_spanned_pages_in_node` with
/// `adjust_zone_range_for_zone_movable`, present pages from the node's memblock ranges);
/// `None` when the node has no ZONE_MOVABLE (its zones stay as computed without it).
pub(crate) fn node_zone_geos(
    arch: Arch,
    mb: &Memblock,
    max_pfn: crate::addr::Pfn,
    nid: usize,
    bm: &BootMovable,
) -> Option<[ZoneGeometry; NR_ZONE_KINDS]> {
    let zmp = *bm.pfn.get(nid)?;
    if zmp == 0 {
        return None;
    }
    let (low, high) = arch_zone_limits(arch, mb, max_pfn);
    let (ns, ne) = node_span(mb, nid);
    let mut geos = [ZoneGeometry::default(); NR_ZONE_KINDS];
    for &z in arch.zones() {
        let (lo, hi) = (low[z.index()], high[z.index()]);
        let (mut s, mut e) = (ns.clamp(lo, hi), ne.clamp(lo, hi));
        if z == ZoneType::Movable {
            s = zmp;
            e = ne.min(high[bm.movable_zone.index()]);
        } else if s < zmp && e > zmp {
            e = zmp;
        } else if s >= zmp {
            s = e;
        }
        if e < ns || s > ne {
            continue;
        }
        let (s, e) = (s.max(ns), e.min(ne));
        if e <= s {
            continue;
        }
        let present = node_ranges(mb, nid)
            .map(|(rs, re)| re.min(e).saturating_sub(rs.max(s)))
            .sum();
        geos[z.index()] = ZoneGeometry {
            start_pfn: crate::addr::Pfn::new(s),
            spanned: e - s,
            present,
        };
    }
    Some(geos)
}

/// The early parameters' own messages, where `parse_early_param` runs (after the firmware
/// map): `Malformed early option`, and `cmdline_parse_core`'s `WARN_ON(coremem > 100)`.
pub(crate) fn print_early_params<P: Platform>(mm: &MemoryModel<P>, bm: &BootMovable) {
    for (i, name) in ["kernelcore", "movablecore"].into_iter().enumerate() {
        if bm.params.malformed[i] {
            mm.printk(
                LogLevel::Warning,
                format_args!("Malformed early option '{name}'"),
            );
        }
        if bm.params.over_100[i] {
            mm.warn(format_args!("cmdline_parse_core: {name}= above 100%"));
        }
    }
}

/// `find_zone_movable_pfns_for_nodes`' warning, printed before `Zone ranges:`.
pub(crate) fn print_mirror_warning<P: Platform>(mm: &MemoryModel<P>, bm: &BootMovable) {
    if bm.no_mirror {
        mm.printk(
            LogLevel::Warning,
            format_args!("The system has no mirror memory, ignore kernelcore=mirror."),
        );
    }
}

/// The lines under `Movable zone start for each node` (free_area_init: `  Node %d: %#018Lx`).
pub(crate) fn print_movable_starts<P: Platform>(mm: &MemoryModel<P>, bm: &BootMovable) {
    for (nid, &p) in bm.pfn.iter().enumerate() {
        if p != 0 {
            mm.printk(
                LogLevel::Info,
                format_args!(
                    "  Node {nid}: {:#018x}",
                    PhysAddr::new(p << PAGE_SHIFT).as_u64()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_percentages_and_bad_values() {
        let p = CoreParams::parse("kernelcore=512M movablecore=25%");
        assert_eq!(p.kernelcore, 512 << 8);
        assert_eq!((p.movablecore, p.movablecore_percent), (0, 25));
        // A later size resets the percentage; a later percentage keeps the size (Linux).
        let p = CoreParams::parse("kernelcore=50% kernelcore=1G");
        assert_eq!((p.kernelcore, p.kernelcore_percent), (1 << 18, 0));
        let p = CoreParams::parse("kernelcore=1G kernelcore=50%");
        assert_eq!((p.kernelcore, p.kernelcore_percent), (1 << 18, 50));
        let p = CoreParams::parse("kernelcore=0x10000000 movable_node");
        assert_eq!(p.kernelcore, 0x10000);
        assert!(p.movable_node);
        let p = CoreParams::parse("kernelcore=abc movablecore kernelcore=150%");
        assert_eq!(p.kernelcore, 0);
        assert_eq!(p.kernelcore_percent, 150);
        assert_eq!(p.malformed, [false, true]);
        assert_eq!(p.over_100, [true, false]);
        assert!(CoreParams::parse("kernelcore=mirror").mirror);
        assert!(!CoreParams::parse("kernelcore=mirrored").mirror);
        assert_eq!(
            CoreParams::parse("kernelcore=1E0"),
            CoreParams {
                kernelcore: (1u64 << 60) >> PAGE_SHIFT,
                ..CoreParams::default()
            }
        );
    }
}
