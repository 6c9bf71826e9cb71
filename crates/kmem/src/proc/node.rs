//! `/sys/devices/system/node` (drivers/base/node.c): `online`, `possible`, `has_memory`,
//! `has_cpu` and, per node, `nodeN/{numastat,distance,cpulist,meminfo,vmstat}`: `meminfo`
//! and `vmstat` from the node's zones and its share of the node counters
//! ([`crate::mm::NodeStats`]: each page is counted on the node it lives on).
#![forbid(unsafe_code)]

use core::fmt::Write;

use super::ProcError;
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

const DIR: &str = "/sys/devices/system/node/";

/// The NUMA event names of /proc/vmstat and `nodeN/vmstat` (mm/vmstat.c `vmstat_text`,
/// after the zone items), in [`crate::mmzone::NumaStat`]'s order as `numa_stat` returns it.
pub(crate) const NUMA_VMSTAT_ITEMS: [&str; 6] = [
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_interleave",
    "numa_local",
    "numa_other",
];

/// The node items of /proc/vmstat that kmem counts, in mm/vmstat.c `vmstat_text` order
/// (`NR_LRU_BASE` …, `NR_ANON_MAPPED`, `NR_FILE_MAPPED`, `NR_SHMEM`, `NR_PAGETABLE`,
/// `NR_SWAPCACHE`); `TaskLayer::show_vmstat` prints the same names.
pub(crate) const NODE_VMSTAT_ITEMS: [(&str, crate::mm::NodeStat); 10] = {
    use crate::mm::NodeStat as S;
    [
        ("nr_inactive_anon", S::InactiveAnon),
        ("nr_active_anon", S::ActiveAnon),
        ("nr_inactive_file", S::InactiveFile),
        ("nr_active_file", S::ActiveFile),
        ("nr_unevictable", S::Unevictable),
        ("nr_anon_pages", S::AnonMapped),
        ("nr_mapped", S::FileMapped),
        ("nr_shmem", S::Shmem),
        ("nr_page_table_pages", S::PageTables),
        ("nr_swapcached", S::SwapCached),
    ]
};

/// A path under the node directory: a top-level mask file or `(node, attribute)`.
enum File<'a> {
    Mask(&'a str),
    Attr(usize, &'a str),
}

fn parse(path: &str) -> Option<File<'_>> {
    let rest = path
        .strip_prefix(DIR)
        .or_else(|| path.strip_prefix(&DIR[1..]))?;
    if matches!(
        rest,
        "online" | "possible" | "has_memory" | "has_normal_memory" | "has_cpu"
    ) {
        return Some(File::Mask(rest));
    }
    let (dev, attr) = rest.split_once('/')?;
    let nr = dev.strip_prefix("node")?;
    if nr.is_empty() || !nr.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(File::Attr(nr.parse().ok()?, attr))
}

/// Writes `items` as a range list (`0-2,5`), as `bitmap_print_to_pagebuf(true, …)`.
fn write_list(out: &mut dyn Write, items: impl Iterator<Item = usize>) -> core::fmt::Result {
    let mut run: Option<(usize, usize)> = None;
    let mut first = true;
    let mut flush = |out: &mut dyn Write, (a, b): (usize, usize)| -> core::fmt::Result {
        if !first {
            out.write_char(',')?;
        }
        first = false;
        if a == b {
            write!(out, "{a}")
        } else {
            write!(out, "{a}-{b}")
        }
    };
    for i in items {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                flush(out, r)?;
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        flush(out, r)?;
    }
    out.write_char('\n')
}

impl<P: Platform> VmLayer<P> {
    /// `node_read_meminfo` (drivers/base/node.c, Linux 6.18) for x86 with THP and hugetlb:
    /// every line in its order and format (`Node %d Label: %8lu kB`, the hugetlb lines
    /// `%5u`), from the node's zones and its share of the node counters ([`NodeStat`]).
    /// What kmem does not have (dirty or writeback pages, kernel stacks, THP, hugetlb,
    /// balloon pages) reads 0. `FilePages` is `NR_FILE_PAGES`: shmem plus swap-cache pages,
    /// as /proc/meminfo's `Cached` + `SwapCached`; `Unaccepted` is left out as
    /// /proc/meminfo leaves it out (no `CONFIG_UNACCEPTED_MEMORY`).
    pub(crate) fn node_read_meminfo(&self, nid: usize, out: &mut dyn Write) -> core::fmt::Result {
        use crate::mm::NodeStat as S;
        let ns = |w: S| self.node_page_state(nid, w);
        let total: usize = self.node_zones(nid).map(|z| z.managed_pages()).sum();
        let free: usize = self.node_zones(nid).map(|z| z.stats.free_pages()).sum();
        let (ia, aa) = (ns(S::InactiveAnon), ns(S::ActiveAnon));
        let (ifl, af) = (ns(S::InactiveFile), ns(S::ActiveFile));
        let (srecl, sunrecl) = (ns(S::SlabReclaimable), ns(S::SlabUnreclaimable));
        let line = |out: &mut dyn Write, name: &str, pages: usize| {
            writeln!(
                out,
                "Node {nid} {name} {:8} kB",
                crate::mm::pages_to_kb(pages)
            )
        };
        for (name, pages) in [
            ("MemTotal:      ", total),
            ("MemFree:       ", free),
            ("MemUsed:       ", total.saturating_sub(free)),
            ("SwapCached:    ", ns(S::SwapCached)),
            ("Active:        ", aa + af),
            ("Inactive:      ", ia + ifl),
            ("Active(anon):  ", aa),
            ("Inactive(anon):", ia),
            ("Active(file):  ", af),
            ("Inactive(file):", ifl),
            ("Unevictable:   ", ns(S::Unevictable)),
            ("Mlocked:       ", 0),
        ] {
            line(out, name, pages)?;
        }
        // CONFIG_HIGHMEM (i386): the node's highmem zone and the rest.
        if self.arch() == crate::arch::Arch::I386 {
            let high = |f: &dyn Fn(&crate::mmzone::Zone<P::RawLock>) -> usize| -> usize {
                self.node_zones(nid)
                    .filter(|z| z.kind == crate::mmzone::ZoneType::HighMem)
                    .map(f)
                    .sum()
            };
            let htotal = high(&|z| z.managed_pages());
            let hfree = high(&|z| z.stats.free_pages());
            line(out, "HighTotal:     ", htotal)?;
            line(out, "HighFree:      ", hfree)?;
            line(out, "LowTotal:      ", total.saturating_sub(htotal))?;
            line(out, "LowFree:       ", free.saturating_sub(hfree))?;
        }
        for (name, pages) in [
            ("Dirty:         ", 0),
            ("Writeback:     ", 0),
            ("FilePages:     ", ns(S::Shmem) + ns(S::SwapCached)),
            ("Mapped:        ", ns(S::FileMapped)),
            ("AnonPages:     ", ns(S::AnonMapped)),
            ("Shmem:         ", ns(S::Shmem)),
            ("KernelStack:   ", 0),
            ("PageTables:    ", ns(S::PageTables)),
            ("SecPageTables: ", 0),
            ("NFS_Unstable:  ", 0),
            ("Bounce:        ", 0),
            ("WritebackTmp:  ", 0),
            ("KReclaimable:  ", srecl),
            ("Slab:          ", srecl + sunrecl),
            ("SReclaimable:  ", srecl),
            ("SUnreclaim:    ", sunrecl),
            ("AnonHugePages: ", 0),
            ("ShmemHugePages:", 0),
            ("ShmemPmdMapped:", 0),
            ("FileHugePages: ", 0),
            ("FilePmdMapped: ", 0),
            ("Balloon:       ", 0),
        ] {
            line(out, name, pages)?;
        }
        // mm/hugetlb.c hugetlb_report_node_meminfo.
        writeln!(out, "Node {nid} HugePages_Total: {:5}", 0)?;
        writeln!(out, "Node {nid} HugePages_Free:  {:5}", 0)?;
        writeln!(out, "Node {nid} HugePages_Surp:  {:5}", 0)
    }

    /// `node_read_vmstat` (drivers/base/node.c): the node's share of every counter kmem's
    /// /proc/vmstat shows that Linux keeps per node, in `vmstat_text` order — the zone items
    /// summed over the node's zones (`nr_free_pages`), the NUMA events (`numa_hit` …
    /// `numa_other`, on a NUMA machine only, as /proc/vmstat), then the node items. The
    /// nodes' values add up to /proc/vmstat's.
    pub(crate) fn node_read_vmstat(&self, nid: usize, out: &mut dyn Write) -> core::fmt::Result {
        let free: usize = self.node_zones(nid).map(|z| z.stats.free_pages()).sum();
        writeln!(out, "nr_free_pages {free}")?;
        if self.nr_online_nodes() > 1 {
            for (n, v) in NUMA_VMSTAT_ITEMS.iter().zip(self.numa_stat(nid)) {
                writeln!(out, "{n} {v}")?;
            }
        }
        for (name, w) in NODE_VMSTAT_ITEMS {
            writeln!(out, "{name} {}", self.node_page_state(nid, w))?;
        }
        Ok(())
    }

    /// The mode of a node file, `None` when there is no such file.
    pub(super) fn node_sysfs_mode(&self, path: &str) -> Option<u16> {
        match parse(path)? {
            File::Mask(_) => Some(0o444),
            File::Attr(nid, attr) => {
                if !self.node_online(nid) {
                    return None;
                }
                matches!(
                    attr,
                    "numastat" | "distance" | "cpulist" | "meminfo" | "vmstat"
                )
                .then_some(0o444)
            }
        }
    }

    /// Reads a node file; `None` when `path` is not one.
    pub(super) fn node_sysfs_read(
        &self,
        path: &str,
        out: &mut dyn Write,
    ) -> Option<Result<(), ProcError>> {
        self.node_sysfs_mode(path)?;
        let nodes = self.nr_online_nodes();
        let r = match parse(path)? {
            File::Mask("possible") => write_list(out, 0..crate::numa::MAX_NUMA_NODES),
            File::Mask(_) => write_list(out, 0..nodes),
            File::Attr(nid, "numastat") => {
                let s = self.numa_stat(nid);
                let names = [
                    "numa_hit",
                    "numa_miss",
                    "numa_foreign",
                    "interleave_hit",
                    "local_node",
                    "other_node",
                ];
                names
                    .iter()
                    .zip(s)
                    .try_for_each(|(n, v)| writeln!(out, "{n} {v}"))
            }
            File::Attr(nid, "distance") => {
                let mut r = Ok(());
                for to in 0..nodes {
                    let sep = if to == 0 { "" } else { " " };
                    r = r.and_then(|()| write!(out, "{sep}{}", self.node_distance(nid, to)));
                }
                r.and_then(|()| out.write_char('\n'))
            }
            File::Attr(nid, "cpulist") => write_list(
                out,
                (0..self.nr_cpus()).filter(|&c| self.cpu_to_node(c) == nid),
            ),
            File::Attr(nid, "vmstat") => self.node_read_vmstat(nid, out),
            File::Attr(nid, _) => self.node_read_meminfo(nid, out),
        };
        Some(r.map_err(ProcError::Fmt))
    }
}
