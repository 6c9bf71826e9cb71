//! How to build a platform: [`HostedConfig`] and the [`Clock`] choice.
//!
//! Plain data, below everything that builds or runs a platform (`control`, `platform`,
//! `boot`, `global`).

#![forbid(unsafe_code)]

use crate::console::Console;

/// Default reservation for physical memory growth (memory hotplug): 64 GiB of address space,
/// which costs nothing until memory is added.
pub const DEFAULT_MAX_PHYS: u64 = 64 << 30;

/// The source of jiffies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// Milliseconds of `CLOCK_MONOTONIC` since the platform was created (HZ = 1000), plus
    /// whatever [`advance_jiffies`](crate::HostedPlatform::advance_jiffies) added.
    #[default]
    Monotonic,
    /// Starts at 0 and moves only by
    /// [`advance_jiffies`](crate::HostedPlatform::advance_jiffies): deterministic.
    Manual,
}

/// How to build a [`HostedPlatform`](crate::HostedPlatform).
///
/// # Examples
/// ```
/// use kmem_hosted::{Console, HostedConfig, HostedPlatform};
/// let plat = HostedPlatform::new(HostedConfig {
///     phys_size: 64 << 20,
///     console: Console::Capture,
///     ..HostedConfig::default()
/// })
/// .unwrap();
/// # let _ = plat;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostedConfig {
    /// Bytes of physical memory (`phys_end`), a non-zero multiple of 4 KiB. The memfd is
    /// sparse: pages cost host memory only once touched.
    pub phys_size: u64,
    /// Largest `phys_end` that [`grow_phys`](crate::HostedPlatform::grow_phys) may reach, a
    /// multiple of 4 KiB; 0 means `max(phys_size, DEFAULT_MAX_PHYS)`, or less where the host
    /// refuses to reserve that much address space (`ulimit -v`, Valgrind), never below
    /// `phys_size`. An explicit maximum is never shrunk.
    pub max_phys_size: u64,
    /// Where printk output goes.
    pub console: Console,
    /// The jiffies source.
    pub clock: Clock,
    /// Seed of [`Platform::random_u64`](kmem::platform::Platform::random_u64); `None` seeds
    /// from `getrandom(2)`.
    pub seed: Option<u64>,
}

impl HostedConfig {
    /// A configuration with `phys_size` bytes of memory and the defaults for everything else.
    pub const fn new(phys_size: u64) -> Self {
        Self {
            phys_size,
            max_phys_size: 0,
            console: Console::Stderr,
            clock: Clock::Monotonic,
            seed: None,
        }
    }

    /// A deterministic configuration for tests: manual clock, fixed seed, captured console.
    pub const fn deterministic(phys_size: u64, seed: u64) -> Self {
        Self {
            phys_size,
            max_phys_size: 0,
            console: Console::Capture,
            clock: Clock::Manual,
            seed: Some(seed),
        }
    }
}

impl Default for HostedConfig {
    /// 1 GiB of memory (the CLI's default), console on stderr, monotonic clock, OS seed.
    fn default() -> Self {
        Self::new(1 << 30)
    }
}
