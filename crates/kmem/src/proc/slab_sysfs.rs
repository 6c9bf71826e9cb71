//! `/sys/kernel/slab/<cache>/` (mm/slub.c's sysfs attributes, SLUB only): the per-node
//! counts `partial`, `objects_partial`, `slabs`, `objects`, `total_objects`
//! (`show_slab_objects`: the total, then ` N<node>=<count>` for each node with a non-zero
//! count on a NUMA machine), and, on a NUMA machine, `remote_node_defrag_ratio` (mode 0644;
//! 0..=100, `ERANGE` above).
#![forbid(unsafe_code)]

use core::fmt::Write;

use super::ProcError;
use crate::errno::Errno;
use crate::platform::Platform;
use crate::slab::common::CacheHandle;
use crate::slab::slub::SlabNodeAttr;
use crate::vmalloc::VmLayer;

const DIR: &str = "/sys/kernel/slab/";

/// `(cache, attribute)` of a path under the directory.
fn parse(path: &str) -> Option<(&str, &str)> {
    let rest = path
        .strip_prefix(DIR)
        .or_else(|| path.strip_prefix(&DIR[1..]))?;
    let (cache, attr) = rest.split_once('/')?;
    (!cache.is_empty() && !attr.contains('/')).then_some((cache, attr))
}

/// A file of the directory.
#[derive(Clone, Copy)]
enum Attr {
    Nodes(SlabNodeAttr),
    RemoteNodeDefragRatio,
}

impl<P: Platform> VmLayer<P> {
    fn slab_sysfs_file(&self, path: &str) -> Option<(CacheHandle, Attr)> {
        let (name, attr) = parse(path)?;
        let c = self.find_cache(name)?;
        if attr == "remote_node_defrag_ratio" {
            // Only on a NUMA machine (Linux: `CONFIG_NUMA`), only SLUB.
            self.slab_remote_node_defrag_ratio(c)?;
            return Some((c, Attr::RemoteNodeDefragRatio));
        }
        let a = SlabNodeAttr::from_name(attr)?;
        // Only SLUB has the directory: the show function answers `None` otherwise.
        self.slab_node_attr_show(c, a, &mut Discard)?;
        Some((c, Attr::Nodes(a)))
    }

    /// The mode of a slab sysfs file, `None` when there is no such file.
    pub(super) fn slab_sysfs_mode(&self, path: &str) -> Option<u16> {
        Some(match self.slab_sysfs_file(path)?.1 {
            Attr::Nodes(_) => 0o444,
            Attr::RemoteNodeDefragRatio => 0o644,
        })
    }

    /// Reads a slab sysfs file; `None` when `path` is not one.
    pub(super) fn slab_sysfs_read(
        &self,
        path: &str,
        out: &mut dyn Write,
    ) -> Option<Result<(), ProcError>> {
        let (c, attr) = self.slab_sysfs_file(path)?;
        let done = match attr {
            Attr::RemoteNodeDefragRatio => self
                .slab_remote_node_defrag_ratio(c)
                .and_then(|v| writeln!(out, "{v}").ok()),
            Attr::Nodes(a) => self.slab_node_attr_show(c, a, out),
        };
        Some(done.ok_or(ProcError::Fmt(core::fmt::Error)))
    }

    /// Writes a slab sysfs file (`remote_node_defrag_ratio_store`: `kstrtouint`, then
    /// `ERANGE` above 100); `None` when `path` is not one.
    pub(super) fn slab_sysfs_write(&self, path: &str, text: &str) -> Option<Result<(), ProcError>> {
        let (c, attr) = self.slab_sysfs_file(path)?;
        if !matches!(attr, Attr::RemoteNodeDefragRatio) {
            return Some(Err(ProcError::Errno(Errno::EACCES)));
        }
        let Ok(v) = text.trim().parse::<u32>() else {
            return Some(Err(ProcError::Errno(Errno::EINVAL)));
        };
        Some(
            self.slab_set_remote_node_defrag_ratio(c, v)
                .map_err(|()| ProcError::Errno(Errno::ERANGE)),
        )
    }
}

/// A writer that discards (to ask whether a file exists without printing it).
struct Discard;

impl Write for Discard {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}
