//! `/sys/devices/system/memory` (drivers/base/memory.c): `block_size_bytes` and, per memory
//! block, `memoryN/{phys_index,state,online,removable,valid_zones}`; `state` and `online` are
//! writable (`echo online_movable > memoryN/state`, `echo offline > …`, `echo 0 > …/online`;
//! through a machine, offlining migrates in-use pages: `TaskLayer::offline_memory_block`).

use core::fmt::Write;

use super::ProcError;
use crate::errno::Errno;
use crate::memory_hotplug::{OnlineType, MEMORY_BLOCK_SIZE};
use crate::mmzone::ZoneType;
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

const DIR: &str = "/sys/devices/system/memory/";

/// A path under the memory directory: `block_size_bytes` or `(block, attribute)`.
enum Node<'a> {
    BlockSize,
    Attr(usize, &'a str),
}

fn parse(path: &str) -> Option<Node<'_>> {
    let rest = path
        .strip_prefix(DIR)
        .or_else(|| path.strip_prefix(&DIR[1..]))?;
    if rest == "block_size_bytes" {
        return Some(Node::BlockSize);
    }
    let (dev, attr) = rest.split_once('/')?;
    let nr = dev.strip_prefix("memory")?;
    if nr.is_empty() || !nr.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Node::Attr(nr.parse().ok()?, attr))
}

impl<P: Platform> VmLayer<P> {
    /// The mode of a memory-block file, `None` when there is no such file.
    pub(super) fn memory_sysfs_mode(&self, path: &str) -> Option<u16> {
        match parse(path)? {
            Node::BlockSize => Some(0o444),
            Node::Attr(nr, attr) => {
                self.memory_block(nr)?;
                match attr {
                    "state" | "online" => Some(0o644),
                    "phys_index" | "removable" | "valid_zones" => Some(0o444),
                    _ => None,
                }
            }
        }
    }

    /// Reads a memory-block file; `None` when `path` is not one.
    pub(super) fn memory_sysfs_read(
        &self,
        path: &str,
        out: &mut dyn Write,
    ) -> Option<Result<(), ProcError>> {
        self.memory_sysfs_mode(path)?;
        let r = match parse(path)? {
            Node::BlockSize => writeln!(out, "{MEMORY_BLOCK_SIZE:x}"),
            Node::Attr(nr, attr) => {
                let b = self.memory_block(nr)?;
                match attr {
                    "phys_index" => writeln!(out, "{nr:08x}"),
                    "state" => writeln!(out, "{}", if b.online { "online" } else { "offline" }),
                    "online" => writeln!(out, "{}", u8::from(b.online)),
                    // removable_show: IS_ENABLED(CONFIG_MEMORY_HOTREMOVE).
                    "removable" => writeln!(out, "1"),
                    _ => self.write_valid_zones(nr, b.online, b.zone, out),
                }
            }
        };
        Some(r.map_err(ProcError::Fmt))
    }

    /// `valid_zones_show`: an online block's zone (`none` across zones); for an offline one
    /// the default zone, then the other zones it may go to.
    fn write_valid_zones(
        &self,
        nr: usize,
        online: bool,
        zone: Option<ZoneType>,
        out: &mut dyn Write,
    ) -> core::fmt::Result {
        if online {
            return writeln!(out, "{}", zone.map_or("none", ZoneType::name));
        }
        let Some(def) = self.zone_for_block(nr, OnlineType::Online) else {
            return writeln!(out, "none");
        };
        out.write_str(def.name())?;
        for t in [OnlineType::OnlineKernel, OnlineType::OnlineMovable] {
            if let Some(z) = self.zone_for_block(nr, t).filter(|&z| z != def) {
                write!(out, " {}", z.name())?;
            }
        }
        out.write_char('\n')
    }

    /// Writes a memory-block file (`state_store`, the device core's `online_store`); `None`
    /// when `path` is not one. `offline` offlines a block (the task layer's migrates).
    pub(super) fn memory_sysfs_write(
        &self,
        path: &str,
        text: &str,
        offline: &dyn Fn(usize) -> Result<(), Errno>,
    ) -> Option<Result<(), ProcError>> {
        let mode = self.memory_sysfs_mode(path)?;
        if mode & 0o222 == 0 {
            return Some(Err(ProcError::Errno(Errno::EACCES)));
        }
        let Node::Attr(nr, attr) = parse(path)? else {
            return Some(Err(ProcError::Errno(Errno::EIO)));
        };
        let v = text.trim();
        let r = match (attr, v) {
            ("state", "offline") | ("online", "0") => offline(nr),
            ("online", "1") => self.online_memory_block(nr, OnlineType::Online),
            ("state", _) => match OnlineType::parse(v) {
                Some(t) => self.online_memory_block(nr, t),
                None => Err(Errno::EINVAL),
            },
            _ => Err(Errno::EINVAL),
        };
        Some(r.map_err(ProcError::Errno))
    }
}
