//! /proc/buddyinfo, /proc/pagetypeinfo and /proc/zoneinfo in Linux's exact formats
//! (mm/vmstat.c: `frag_show_print`, `pagetypeinfo_showfree_print`,
//! `pagetypeinfo_showblockcount_print`, `zoneinfo_show_print`).

#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use crate::addr::NR_PAGE_ORDERS;
use crate::mmzone::{
    MigrateType, Zone, ZoneType, MIGRATE_TYPES, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, WMARK_HIGH,
    WMARK_LOW, WMARK_MIN, WMARK_PROMO,
};
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

/// Per-node counters listed under `per-node stats` (Linux 6.18's `node_stat_name` order).
/// kmem has no page cache, anonymous memory or swap, so those read 0 — truthfully.
const NODE_STATS: &[&str] = &[
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_isolated_anon",
    "nr_isolated_file",
    "workingset_nodes",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "nr_anon_pages",
    "nr_mapped",
    "nr_file_pages",
    "nr_dirty",
    "nr_writeback",
    "nr_shmem",
    "nr_shmem_hugepages",
    "nr_shmem_pmdmapped",
    "nr_file_hugepages",
    "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages",
    "nr_vmscan_write",
    "nr_vmscan_immediate_reclaim",
    "nr_dirtied",
    "nr_written",
    "nr_throttled_written",
    "nr_kernel_misc_reclaimable",
    "nr_foll_pin_acquired",
    "nr_foll_pin_released",
    "nr_kernel_stack",
    "nr_page_table_pages",
    "nr_sec_page_table_pages",
    "nr_iommu_pages",
    "nr_swapcached",
    "pgpromote_success",
    "pgpromote_candidate",
    "pgpromote_candidate_nrl",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgdemote_proactive",
    "nr_hugetlb",
    "nr_balloon_pages",
    "nr_kernel_file_pages",
];

/// `fls`: one plus the index of the highest set bit, 0 for 0.
fn fls(x: usize) -> usize {
    (usize::BITS - x.leading_zeros()) as usize
}

impl<P: Platform> VmLayer<P> {
    /// Per-node counter values kmem knows; others are 0.
    fn node_stat(&self, name: &str) -> usize {
        match name {
            "nr_slab_reclaimable" => self.node_stat_hook(crate::mm::NodeStat::SlabReclaimable),
            "nr_slab_unreclaimable" => self.node_stat_hook(crate::mm::NodeStat::SlabUnreclaimable),
            "nr_page_table_pages" => self.node_stat_hook(crate::mm::NodeStat::PageTables),
            _ => 0,
        }
    }

    /// Writes `/proc/buddyinfo`.
    pub fn show_buddyinfo(&self, out: &mut dyn Write) -> fmt::Result {
        for z in self.zones() {
            if !z.is_populated() {
                continue;
            }
            write!(out, "Node {}, zone {:>8} ", self.zone_nid(z), z.kind.name())?;
            for n in self.zone_free_area_counts(z) {
                write!(out, "{n:6} ")?;
            }
            out.write_char('\n')?;
        }
        Ok(())
    }

    /// Writes `/proc/pagetypeinfo`.
    pub fn show_pagetypeinfo(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(out, "Page block order: {PAGEBLOCK_ORDER}")?;
        writeln!(out, "Pages per block:  {PAGEBLOCK_NR_PAGES}")?;
        out.write_char('\n')?;
        write!(out, "{:<43} ", "Free pages count per migrate type at order")?;
        for o in 0..NR_PAGE_ORDERS {
            write!(out, "{o:6} ")?;
        }
        out.write_char('\n')?;
        for z in self.zones() {
            if !z.is_populated() {
                continue;
            }
            let counts = self.free_area_counts_by_type(z);
            for mt in MigrateType::ALL {
                if mt == MigrateType::Cma && !self.cma_enabled() {
                    continue;
                }
                write!(
                    out,
                    "Node {:4}, zone {:>8}, type {:>12} ",
                    self.zone_nid(z),
                    z.kind.name(),
                    mt.name()
                )?;
                for n in counts[mt as usize] {
                    // Linux stops counting at 100000 and prints ">100000".
                    if n > 100_000 {
                        write!(out, ">{:6} ", 100_000)?;
                    } else {
                        write!(out, "{n:6} ")?;
                    }
                }
                out.write_char('\n')?;
            }
        }
        write!(out, "\n{:<23}", "Number of blocks type ")?;
        for mt in MigrateType::ALL {
            if mt == MigrateType::Cma && !self.cma_enabled() {
                continue;
            }
            write!(out, "{:>12} ", mt.name())?;
        }
        out.write_char('\n')?;
        for z in self.zones() {
            if !z.is_populated() {
                continue;
            }
            write!(out, "Node {}, zone {:>8} ", self.zone_nid(z), z.kind.name())?;
            let c = self.pageblock_counts_valid(z);
            for (i, n) in c.iter().enumerate().take(MIGRATE_TYPES) {
                if i == MigrateType::Cma as usize && !self.cma_enabled() {
                    continue;
                }
                write!(out, "{n:12} ")?;
            }
            out.write_char('\n')?;
        }
        Ok(())
    }

    /// `pagetypeinfo_showblockcount_print` (mm/vmstat.c): from the zone's first PFN, one
    /// PFN every `pageblock_nr_pages`; a block counts under its migratetype when the PFN is
    /// valid (has a memmap: not in a hole such as the PCI hole, whose sections are absent)
    /// and its page belongs to the zone.
    fn pageblock_counts_valid(&self, z: &Zone<P::RawLock>) -> [usize; MIGRATE_TYPES] {
        let kind = z.kind;
        let (start, end) = (z.span().start_pfn.as_u64(), z.span().end_pfn().as_u64());
        let mut c = [0; MIGRATE_TYPES];
        for pfn in (start..end).step_by(PAGEBLOCK_NR_PAGES) {
            let pfn = crate::addr::Pfn::new(pfn);
            if !self.pfn_valid(pfn) || self.page(pfn).zone_type() != kind {
                continue;
            }
            c[z.pageblock_migratetype(pfn) as usize] += 1;
        }
        c
    }

    /// Writes `/proc/zoneinfo`.
    pub fn show_zoneinfo(&self, out: &mut dyn Write) -> fmt::Result {
        let mut first_populated = [true; crate::numa::MAX_NUMA_NODES];
        let zones = self.arch().zones();
        for z in self.zones() {
            let nid = self.zone_nid(z);
            write!(out, "Node {nid}, zone {:>8}", z.kind.name())?;
            if z.is_populated() && first_populated[nid] {
                first_populated[nid] = false;
                write!(out, "\n  per-node stats")?;
                for name in NODE_STATS {
                    // kmem keeps one set of node counters (LRU, slab, page tables): node 0's.
                    let v = if nid == 0 { self.node_stat(name) } else { 0 };
                    write!(out, "\n      {:<12} {}", name, v)?;
                }
            }
            let free = z.stats.free_pages();
            write!(
                out,
                "\n  pages free     {}\n        boost    0\n        min      {}\n        low      {}\n        high     {}\n        promo    {}\n        spanned  {}\n        present  {}\n        managed  {}\n        cma      {}",
                free,
                z.wmark(WMARK_MIN),
                z.wmark(WMARK_LOW),
                z.wmark(WMARK_HIGH),
                z.wmark(WMARK_PROMO),
                z.span().spanned,
                z.span().present,
                z.managed_pages(),
                z.stats.cma_pages.load(core::sync::atomic::Ordering::Relaxed)
            )?;
            write!(out, "\n        protection: (")?;
            for (i, k) in zones.iter().enumerate() {
                let v = z.lowmem_reserve[k.index()].load(core::sync::atomic::Ordering::Relaxed);
                if i == 0 {
                    write!(out, "{v}")?;
                } else {
                    write!(out, ", {v}")?;
                }
            }
            out.write_char(')')?;
            if !z.is_populated() {
                out.write_char('\n')?;
                continue;
            }
            let counts = self.zone_free_area_counts(z);
            let blocks: usize = counts
                .iter()
                .enumerate()
                .filter(|(o, _)| *o >= PAGEBLOCK_ORDER as usize)
                .map(|(o, n)| n << o)
                .sum();
            let hits = self.pcp_alloc_count(z);
            // One node: the zone's allocations, all hits and local. NUMA: the counters.
            let numa = self.zone_numa_stat(z).unwrap_or([hits, 0, 0, 0, hits, 0]);
            for (name, v) in [
                ("nr_free_pages", free),
                ("nr_free_pages_blocks", blocks),
                ("nr_zone_inactive_anon", 0),
                ("nr_zone_active_anon", 0),
                ("nr_zone_inactive_file", 0),
                ("nr_zone_active_file", 0),
                ("nr_zone_unevictable", 0),
                ("nr_zone_write_pending", 0),
                ("nr_mlock", 0),
                ("nr_zspages", 0),
                ("nr_free_cma", z.stats.free_cma_pages()),
                ("numa_hit", numa[0]),
                ("numa_miss", numa[1]),
                ("numa_foreign", numa[2]),
                ("numa_interleave", numa[3]),
                ("numa_local", numa[4]),
                ("numa_other", numa[5]),
            ] {
                write!(out, "\n      {name:<12} {v}")?;
            }
            write!(out, "\n  pagesets")?;
            let mem = z.managed_pages() >> (27 - crate::addr::PAGE_SHIFT);
            let threshold = (2 * fls(self.nr_cpus()) * (1 + fls(mem))).min(125);
            for cpu in 0..self.nr_cpus() {
                let (count, high, batch) = z.pcp_count_snapshot(cpu);
                write!(
                    out,
                    "\n    cpu: {cpu}\n              count:    {count}\n              high:     {high}\n              batch:    {batch}\n              high_min: {}\n              high_max: {}",
                    z.pcp_high_min, z.pcp_high_max
                )?;
                write!(out, "\n  vm stats threshold: {threshold}")?;
            }
            write!(
                out,
                "\n  node_unreclaimable:  0\n  start_pfn:           {}",
                z.span().start_pfn.as_u64()
            )?;
            out.write_char('\n')?;
        }
        Ok(())
    }

    /// Free pages of one zone kind (0 if not configured).
    pub fn zone_free_pages(&self, kind: ZoneType) -> usize {
        self.zone(kind).stats.free_pages()
    }

    /// `nr_free_pages()`: free pages in all buddy free areas (pcp lists excluded, as Linux).
    pub fn nr_free_pages(&self) -> usize {
        self.zones().map(|z| z.stats.free_pages()).sum()
    }

    /// `calculate_totalreserve_pages`.
    pub fn totalreserve_pages(&self) -> usize {
        let mut total = 0;
        for z in self.zones() {
            let mut max = 0;
            for k in self.arch().zones() {
                max = max
                    .max(z.lowmem_reserve[k.index()].load(core::sync::atomic::Ordering::Relaxed));
            }
            max += z.wmark(WMARK_HIGH);
            total += max.min(z.managed_pages());
        }
        total
    }

    /// `si_mem_available` with no page cache: free pages minus the reserves.
    pub fn mem_available_pages(&self) -> usize {
        let wmark_low: usize = self.zones().map(|z| z.wmark(WMARK_LOW)).sum();
        let reclaimable = self.node_stat("nr_slab_reclaimable");
        let avail = self.nr_free_pages() as isize - self.totalreserve_pages() as isize
            + (reclaimable - (reclaimable / 2).min(wmark_low)) as isize;
        avail.max(0) as usize
    }
}
