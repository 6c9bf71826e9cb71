//! `/sys/kernel/mm/mempolicy/weighted_interleave/nodeN` (mm/mempolicy.c `node_show`,
//! `node_store`): `MPOL_WEIGHTED_INTERLEAVE`'s weight of each node with memory, 1–255
//! (default 1), mode 0644. Writing 0 or a non-number fails with `EINVAL`.
#![forbid(unsafe_code)]

use core::fmt::Write;

use super::ProcError;
use crate::errno::Errno;
use crate::platform::Platform;
use crate::task::TaskLayer;

const DIR: &str = "/sys/kernel/mm/mempolicy/weighted_interleave/node";

/// The node of a `weighted_interleave/nodeN` path.
fn node_of(path: &str) -> Option<usize> {
    let rest = path
        .strip_prefix(DIR)
        .or_else(|| path.strip_prefix(&DIR[1..]))?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) || rest.len() > 3 {
        return None;
    }
    rest.parse().ok()
}

impl<P: Platform> TaskLayer<P> {
    fn il_node(&self, path: &str) -> Option<usize> {
        node_of(path).filter(|&n| n < self.nr_online_nodes())
    }

    /// Reads `weighted_interleave/nodeN` (`None`: not such a file).
    pub(crate) fn mempolicy_sysfs_read(
        &self,
        path: &str,
        out: &mut dyn Write,
    ) -> Option<Result<(), ProcError>> {
        let nid = self.il_node(path)?;
        Some(writeln!(out, "{}", self.il_weight(nid)).map_err(ProcError::from))
    }

    /// The mode of `weighted_interleave/nodeN`: 0644.
    pub(crate) fn mempolicy_sysfs_mode(&self, path: &str) -> Option<u16> {
        self.il_node(path).map(|_| 0o644)
    }

    /// Writes `weighted_interleave/nodeN` (`kstrtou8`, then 1–255).
    pub(crate) fn mempolicy_sysfs_write(
        &self,
        path: &str,
        text: &str,
    ) -> Option<Result<(), ProcError>> {
        let nid = self.il_node(path)?;
        let Ok(w) = text.trim().parse::<u8>() else {
            return Some(Err(ProcError::Errno(Errno::EINVAL)));
        };
        Some(self.set_il_weight(nid, w).map_err(ProcError::Errno))
    }
}
