//! Compaction's files: `/sys/kernel/debug/extfrag/{unusable_index,extfrag_index}`
//! (mm/vmstat.c `unusable_show_print`, `extfrag_show_print`), the `/proc/sys/vm` knobs of
//! mm/compaction.c's `vm_compaction[]` table (`compact_memory` 0200, `extfrag_threshold`,
//! `compaction_proactiveness`, `compact_unevictable_allowed` 0644, with their ranges), and
//! the `compact_*` lines of `/proc/vmstat`.

#![forbid(unsafe_code)]

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use super::ProcError;
use crate::addr::NR_PAGE_ORDERS;
use crate::errno::Errno;
use crate::page_alloc::compaction::ContigPageInfo;
use crate::platform::Platform;
use crate::task::TaskLayer;
use crate::vmalloc::VmLayer;

/// `/sys/kernel/debug/extfrag/unusable_index`.
pub const UNUSABLE_INDEX: &str = "/sys/kernel/debug/extfrag/unusable_index";
/// `/sys/kernel/debug/extfrag/extfrag_index`.
pub const EXTFRAG_INDEX: &str = "/sys/kernel/debug/extfrag/extfrag_index";

/// The compaction sysctls under `/proc/sys/vm/`, with their modes.
const SYSCTLS: [(&str, u16); 4] = [
    ("compact_memory", 0o200),
    ("compaction_proactiveness", 0o644),
    ("compact_unevictable_allowed", 0o644),
    ("extfrag_threshold", 0o644),
];

/// The sysctl name of `path` (`/proc/sys/vm/NAME` or `sys/vm/NAME`), if it is one of ours.
fn sysctl_name(path: &str) -> Option<(&'static str, u16)> {
    let p = path.strip_prefix("/proc/").unwrap_or(path);
    let name = p.strip_prefix("sys/vm/")?;
    SYSCTLS.iter().copied().find(|(n, _)| *n == name)
}

fn debugfs_name(path: &str) -> Option<&'static str> {
    let p = path.strip_prefix('/').unwrap_or(path);
    [UNUSABLE_INDEX, EXTFRAG_INDEX]
        .into_iter()
        .find(|f| f[1..] == *p)
}

impl<P: Platform> VmLayer<P> {
    /// One row per populated zone: `Node 0, zone %8s ` then one index per order, printed by
    /// `cell` from the zone's `contig_page_info` at that order.
    fn show_frag(
        &self,
        out: &mut dyn Write,
        cell: fn(&ContigPageInfo, u32, &mut dyn Write) -> fmt::Result,
    ) -> fmt::Result {
        for z in self.zones() {
            if !z.is_populated() {
                continue;
            }
            write!(out, "Node 0, zone {:>8} ", z.kind.name())?;
            let counts = self.free_area_counts(z.kind);
            for order in 0..NR_PAGE_ORDERS as u32 {
                cell(&ContigPageInfo::from_counts(&counts, order), order, out)?;
            }
            out.write_char('\n')?;
        }
        Ok(())
    }

    /// `/sys/kernel/debug/extfrag/unusable_index`: `%d.%03d ` per order.
    pub fn show_unusable_index(&self, out: &mut dyn Write) -> fmt::Result {
        self.show_frag(out, |info, order, out| {
            let i = info.unusable_index(order);
            write!(out, "{}.{:03} ", i / 1000, i % 1000)
        })
    }

    /// `/sys/kernel/debug/extfrag/extfrag_index`: `%2d.%03d ` per order (`-1.000` where
    /// a block of the order is free).
    pub fn show_extfrag_index(&self, out: &mut dyn Write) -> fmt::Result {
        self.show_frag(out, |info, order, out| {
            let i = info.fragmentation_index(order);
            // C's `/` and `%` truncate toward zero, as Rust's do: -1000 prints "-1.000".
            write!(out, "{:2}.{:03} ", i / 1000, (i % 1000).abs())
        })
    }
}

/// Parses a sysctl integer in `lo..=hi` (`proc_dointvec_minmax`).
fn parse_minmax(text: &str, lo: i64, hi: i64) -> Result<usize, ProcError> {
    let v: i64 = text
        .trim()
        .parse()
        .map_err(|_| ProcError::Errno(Errno::EINVAL))?;
    if v < lo || v > hi {
        return Err(ProcError::Errno(Errno::EINVAL));
    }
    Ok(v as usize)
}

impl<P: Platform> TaskLayer<P> {
    /// The mode of a compaction file, if `path` is one.
    pub(crate) fn compaction_proc_mode(&self, path: &str) -> Option<u16> {
        if let Some((_, mode)) = sysctl_name(path) {
            return Some(mode);
        }
        debugfs_name(path).map(|_| 0o444)
    }

    /// Reads a compaction file; `None` when `path` is not one.
    pub(crate) fn compaction_proc_read(
        &self,
        path: &str,
        out: &mut dyn Write,
    ) -> Option<Result<(), ProcError>> {
        let vl = &self.mem.km.vm;
        if let Some(f) = debugfs_name(path) {
            let r = if f == UNUSABLE_INDEX {
                vl.show_unusable_index(out)
            } else {
                vl.show_extfrag_index(out)
            };
            return Some(r.map_err(ProcError::from));
        }
        let (name, _) = sysctl_name(path)?;
        let s = &self.compaction.sysctl;
        let v = match name {
            "compact_memory" => return Some(Err(ProcError::Errno(Errno::EACCES))),
            "compaction_proactiveness" => s.proactiveness.load(Ordering::Relaxed),
            "compact_unevictable_allowed" => {
                usize::from(s.unevictable_allowed.load(Ordering::Relaxed))
            }
            _ => s.extfrag_threshold.load(Ordering::Relaxed),
        };
        Some(writeln!(out, "{v}").map_err(ProcError::from))
    }

    /// Writes a compaction sysctl; `None` when `path` is not one. `compact_memory` takes
    /// only `1` (`sysctl_compaction_handler`); the others their ranges (`EINVAL` outside).
    pub(crate) fn compaction_proc_write(
        &self,
        path: &str,
        text: &str,
    ) -> Option<Result<(), ProcError>> {
        if debugfs_name(path).is_some() {
            return Some(Err(ProcError::Errno(Errno::EACCES)));
        }
        let (name, _) = sysctl_name(path)?;
        let s = &self.compaction.sysctl;
        let r = match name {
            "compact_memory" => parse_minmax(text, 1, 1).map(|_| self.compact_memory()),
            "compaction_proactiveness" => parse_minmax(text, 0, 100).map(|v| {
                let old = s.proactiveness.swap(v, Ordering::Relaxed);
                if v > old {
                    self.proactiveness_written();
                }
            }),
            "compact_unevictable_allowed" => parse_minmax(text, 0, 1)
                .map(|v| s.unevictable_allowed.store(v == 1, Ordering::Relaxed)),
            _ => {
                parse_minmax(text, 0, 1000).map(|v| s.extfrag_threshold.store(v, Ordering::Relaxed))
            }
        };
        Some(r)
    }

    /// The `compact_*` lines of `/proc/vmstat`, in mm/vmstat.c's order.
    pub(crate) fn show_vmstat_compact(&self, out: &mut dyn Write) -> fmt::Result {
        for (name, v) in self.compaction.stats.lines() {
            writeln!(out, "{name} {v}")?;
        }
        Ok(())
    }
}
