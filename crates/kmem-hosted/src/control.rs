//! The platform's control block, [`Inner`]: the state a [`HostedPlatform`](crate::HostedPlatform)
//! handle, the threads that entered CPU sections on it (`cpu`, by weak reference, for
//! hot-unplug) and its [`VirtWindow`](crate::VirtWindow)s (by strong reference) share.
//!
//! It lives in its own mapping ([`MapArc`], see `maparc`), so it is built without the global
//! allocator. It sits below `cpu`, `window` and `platform`, which all reach it, and above the
//! pieces it is made of (`physmem`, `hook`, `console`, `config`).

#![forbid(unsafe_code)]

use core::sync::atomic::AtomicU64;
use std::io::{self, Read};
use std::time::Instant;

use crate::config::{Clock, HostedConfig, DEFAULT_MAX_PHYS};
use crate::console::ConsoleSink;
use crate::hook::HookCell;
use crate::maparc::MapArc;
use crate::physmem::PhysMem;
use crate::sys;

/// `TASK_COMM_LEN` (include/linux/sched.h): 15 characters and a NUL.
pub(crate) const TASK_COMM_LEN: usize = 16;

/// The platform's shared state (in a [`MapArc`]).
pub(crate) struct Inner {
    /// Physical memory: the memfd and the direct map.
    pub(crate) mem: PhysMem,
    /// The CPU-dead hook, run by exiting threads (`cpu`).
    pub(crate) hook: HookCell,
    /// The jiffies source.
    pub(crate) clock: Clock,
    /// When the platform was created (jiffies 0 of [`Clock::Monotonic`]).
    pub(crate) start: Instant,
    /// Jiffies added by `advance_jiffies`.
    pub(crate) jiffies_offset: AtomicU64,
    /// SplitMix64 state.
    pub(crate) rng: AtomicU64,
    /// Where printk output goes.
    pub(crate) console: ConsoleSink,
    comm: [u8; TASK_COMM_LEN],
    comm_len: usize,
}

/// Physical memory of `size` bytes with the default room to grow: [`DEFAULT_MAX_PHYS`] of
/// address space, or, where the host refuses a reservation that large, half of it, a quarter,
/// and so on, never below `size`. Address space is what limits it, not memory: `ulimit -v`
/// (RLIMIT_AS counts PROT_NONE reservations, so the 64 GiB one fails with `ENOMEM` under any
/// smaller limit) and Valgrind (whose address-space manager fails any single mapping of 64 GiB
/// with `EINVAL`) would otherwise make every default platform fail to start.
fn default_phys_mem(size: u64) -> io::Result<PhysMem> {
    let mut max = size.max(DEFAULT_MAX_PHYS);
    loop {
        match PhysMem::new(size, max) {
            Err(e)
                if max > size && matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EINVAL)) =>
            {
                // Halving a multiple of 4 KiB above 4 KiB keeps it one; `size` is one.
                max = (max / 2).max(size);
            }
            r => return r,
        }
    }
}

impl Inner {
    /// Builds the control block of a new platform: physical memory of `config.phys_size`
    /// bytes with address space reserved up to the maximum, the clock, the random seed, the
    /// console and the process name. See [`HostedPlatform::new`](crate::HostedPlatform::new)
    /// for the errors.
    pub(crate) fn create(config: HostedConfig) -> io::Result<MapArc<Inner>> {
        let mem = if config.max_phys_size == 0 {
            default_phys_mem(config.phys_size)?
        } else {
            PhysMem::new(config.phys_size, config.max_phys_size)?
        };
        let seed = config.seed.or_else(sys::os_random_u64).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x6b6d_656d, |d| d.as_nanos() as u64)
        });
        let (comm, comm_len) = read_comm();
        MapArc::new(Inner {
            mem,
            hook: HookCell::new(),
            clock: config.clock,
            start: Instant::now(),
            jiffies_offset: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
            console: ConsoleSink::new(config.console),
            comm,
            comm_len,
        })
    }

    /// The process name (`current->comm`).
    pub(crate) fn comm(&self) -> &str {
        core::str::from_utf8(&self.comm[..self.comm_len]).unwrap_or("kmem")
    }
}

/// Reads the process name from `/proc/self/comm` (without allocating).
fn read_comm() -> ([u8; TASK_COMM_LEN], usize) {
    let mut buf = [0u8; TASK_COMM_LEN];
    let n = std::fs::File::open("/proc/self/comm")
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    let text = &buf[..n];
    let mut len = text.iter().position(|&b| b == b'\n').unwrap_or(n);
    // Keep the longest valid UTF-8 prefix (comm is bytes; a name cut at 15 may split a char).
    while core::str::from_utf8(&buf[..len]).is_err() {
        len -= 1;
    }
    if len == 0 {
        let name = b"kmem";
        buf[..name.len()].copy_from_slice(name);
        len = name.len();
    }
    (buf, len)
}
