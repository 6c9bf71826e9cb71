//! `/sys/devices/system/node` (drivers/base/node.c): `online`, `possible`, `has_memory`,
//! `has_cpu` and, per node, `nodeN/{numastat,distance,cpulist,meminfo}`. `meminfo` has the
//! first twelve lines of Linux's `node_read_meminfo` (`MemTotal` … `Mlocked`: the node's
//! swap cache and LRU lists, from the node's lruvec, which the task layer passes in — see
//! `proc/pid.rs`); kmem keeps the other counters per machine, not per node.
#![forbid(unsafe_code)]

use core::fmt::Write;

use super::ProcError;
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

const DIR: &str = "/sys/devices/system/node/";

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
    /// `node_read_meminfo` (drivers/base/node.c) up to `Mlocked`, in its format; `ns` gives
    /// the node's `SwapCached` and LRU counters in pages.
    pub(crate) fn node_read_meminfo(
        &self,
        nid: usize,
        ns: &dyn Fn(crate::mm::NodeStat) -> usize,
        out: &mut dyn Write,
    ) -> core::fmt::Result {
        use crate::mm::NodeStat as S;
        let total: usize = self.node_zones(nid).map(|z| z.managed_pages()).sum();
        let free: usize = self.node_zones(nid).map(|z| z.stats.free_pages()).sum();
        let (ia, aa) = (ns(S::InactiveAnon), ns(S::ActiveAnon));
        let (ifl, af) = (ns(S::InactiveFile), ns(S::ActiveFile));
        let lines = [
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
        ];
        for (name, pages) in lines {
            writeln!(
                out,
                "Node {nid} {name} {:8} kB",
                crate::mm::pages_to_kb(pages)
            )?;
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
                matches!(attr, "numastat" | "distance" | "cpulist" | "meminfo").then_some(0o444)
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
            File::Attr(nid, _) => self.node_read_meminfo(nid, &|_| 0, out),
        };
        Some(r.map_err(ProcError::Fmt))
    }
}
