//! How much memory the host can give a simulated machine, checked before one is built, so that
//! a machine larger than the host (`kmem --mem 2T`) is refused with a one-line message instead
//! of being killed — with other processes — by the host's OOM killer later.
//!
//! "Available" is the least of:
//! - `MemAvailable + SwapFree` of `/proc/meminfo`: MemAvailable is the host kernel's estimate of
//!   the memory a new workload can get without swapping (page cache it can drop included);
//!   the machine's RAM is a memfd, i.e. shmem, which swap can hold, so free swap counts too;
//! - the memory cgroup's room: `memory.max − memory.current` (cgroup v2) or
//!   `memory.limit_in_bytes − memory.usage_in_bytes` (cgroup v1), when a limit is set — a
//!   container's OOM killer acts at its limit, whatever the host has.
//!
//! Where none of these can be read the check passes (no limit known).

#![forbid(unsafe_code)]

use std::fs;

/// Bytes of host memory a new workload can use now, if the host says.
pub fn host_memory_available() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok();
    let field = |name: &str| -> Option<u64> {
        let text = meminfo.as_deref()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb.saturating_mul(1024))
    };
    let host = field("MemAvailable:").map(|a| a.saturating_add(field("SwapFree:").unwrap_or(0)));
    let read = |p: &str| -> Option<u64> { fs::read_to_string(p).ok()?.trim().parse().ok() };
    let room = |limit: Option<u64>, used: Option<u64>| Some(limit?.saturating_sub(used?));
    let cgroup = room(
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    )
    .or_else(|| {
        room(
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        )
    });
    match (host, cgroup) {
        (Some(h), Some(c)) => Some(h.min(c)),
        (h, c) => h.or(c),
    }
}

/// Host memory a machine's boot touches at once for `phys_size` bytes of physical memory: the
/// memmap (one 64-byte `struct page` per frame, faulted in whole at boot) and, for the
/// kernel's own boot-time structures (page tables, per-CPU areas, slab caches, the log),
/// 1/256 of RAM plus 32 MiB. The rest of RAM is faulted in as the machine uses it.
pub fn boot_host_memory(phys_size: u64) -> u64 {
    let pages = phys_size / crate::PAGE_SIZE as u64;
    let memmap = pages.saturating_mul(core::mem::size_of::<kmem::Page>() as u64);
    memmap
        .saturating_add(phys_size / 256)
        .saturating_add(32 << 20)
}

/// Checks that the host can give `needed` bytes.
///
/// # Errors
/// `needs N GiB of host memory, M available` when it cannot.
pub fn check_host_memory(needed: u64) -> Result<(), String> {
    match host_memory_available() {
        Some(avail) if needed > avail => Err(format!(
            "needs {} of host memory, {} available",
            gib(needed),
            gib(avail)
        )),
        _ => Ok(()),
    }
}

/// `n` bytes in GiB with one decimal (`32.0 GiB`).
fn gib(n: u64) -> String {
    let tenths = (u128::from(n) * 10).div_ceil(1 << 30);
    format!("{}.{} GiB", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gib_rounds_up_to_a_tenth() {
        assert_eq!(gib(32 << 30), "32.0 GiB");
        assert_eq!(gib(1), "0.1 GiB");
        assert_eq!(gib(3 << 29), "1.5 GiB");
    }

    #[test]
    fn the_host_cannot_give_more_than_exists() {
        assert!(check_host_memory(u64::MAX)
            .unwrap_err()
            .starts_with("needs 17179869184.0 GiB of host memory, "));
        assert_eq!(check_host_memory(1), Ok(()));
    }
}
