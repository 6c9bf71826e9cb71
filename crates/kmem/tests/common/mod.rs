//! Shared helpers for kmem's integration tests: machines on the hosted platform.
#![allow(dead_code)]

use kmem::arch::Arch;
use kmem::{BootParams, Machine};
use kmem_hosted::{HostedConfig, HostedPlatform};

pub type M = Machine<HostedPlatform>;

/// Boots a deterministic machine (captured console, manual clock, fixed seed).
pub fn boot(arch: Arch, mem: u64, cpus: usize) -> M {
    let params = BootParams::simulated(arch, mem, cpus).unwrap();
    let plat = HostedPlatform::new(HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        42,
    ))
    .unwrap();
    Machine::boot(plat, &params).unwrap()
}

pub fn proc(m: &M, path: &str) -> String {
    let mut s = String::new();
    m.proc_read(path, &mut s).unwrap();
    s
}
