//! Booting a [`kmem::Machine`] on a fresh [`HostedPlatform`].

#![forbid(unsafe_code)]

use std::io;

use kmem::{BootParams, Machine};

use crate::{HostedConfig, HostedPlatform, PAGE_SIZE};

/// Boots a machine described by `params` on a new hosted platform built from `config`.
///
/// Physical memory is sized to cover the firmware map's RAM: `config.phys_size` is raised to
/// the end of the highest RAM range (page aligned) when it is smaller, so
/// `HostedConfig { phys_size: 0, .. }` means "exactly what the map needs". Memory holes in the
/// map (e.g. below 4 GiB on a large x86_64 machine) cost nothing.
///
/// # Examples
/// ```
/// use kmem::arch::Arch;
/// use kmem::BootParams;
/// use kmem_hosted::HostedConfig;
///
/// let params = BootParams::simulated(Arch::X86_64, 64 << 20, 2).unwrap();
/// let m = kmem_hosted::boot(&params, HostedConfig::deterministic(0, 1)).unwrap();
/// assert!(m.totalram_pages() > 0);
/// ```
///
/// # Errors
/// The platform's construction error (see [`HostedPlatform::new`]), or `InvalidInput`
/// carrying the [`kmem::BootError`] text if the machine does not boot.
pub fn boot(params: &BootParams<'_>, config: HostedConfig) -> io::Result<Machine<HostedPlatform>> {
    let page = PAGE_SIZE as u64;
    let ram_end = params
        .e820
        .ram_end()
        .checked_add(page - 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "RAM end overflows"))?
        & !(page - 1);
    let mut config = config;
    config.phys_size = config.phys_size.max(ram_end);
    if config.max_phys_size != 0 {
        config.max_phys_size = config.max_phys_size.max(config.phys_size);
    }
    let plat = HostedPlatform::new(config)?;
    Machine::boot(plat, params).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("kmem boot failed: {e}"),
        )
    })
}
