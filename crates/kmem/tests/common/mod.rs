//! Shared helpers for kmem's integration tests: machines on the hosted platform.
#![allow(dead_code)]

use kmem::arch::Arch;
use kmem::{BootParams, Machine};
use kmem_hosted::{HostedConfig, HostedPlatform};

pub type M = Machine<HostedPlatform>;

/// Boots a deterministic machine (captured console, manual clock, fixed seed).
pub fn boot(arch: Arch, mem: u64, cpus: usize) -> M {
    boot_with(arch, mem, cpus, "", 42)
}

/// Boots a deterministic machine with a kernel command line and a random seed.
pub fn boot_with(arch: Arch, mem: u64, cpus: usize, cmdline: &str, seed: u64) -> M {
    let mut params = BootParams::simulated(arch, mem, cpus).unwrap();
    params.cmdline = cmdline;
    let plat = HostedPlatform::new(HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        seed,
    ))
    .unwrap();
    Machine::boot(plat, &params).unwrap()
}

/// Shrinks every cache and drains this CPU's page lists, then counts free pages: the buddy
/// free areas plus what sits on any CPU's page lists (a CPU-dead hook's own frees land on
/// the lists of the CPU that runs it, as Linux's hotplug callbacks run on a surviving CPU).
pub fn settle(m: &M) -> usize {
    assert_lockdep_quiet(m);
    let mut caches = Vec::new();
    m.for_each_cache(&mut |c, _| caches.push(c));
    for c in caches {
        m.kmem_cache_shrink(c);
    }
    m.drain_local_pages();
    m.nr_free_pages() + m.zones().map(|z| m.zone_pcp_pages(z)).sum::<usize>()
}

pub fn proc(m: &M, path: &str) -> String {
    let mut s = String::new();
    m.proc_read(path, &mut s).unwrap();
    s
}

/// The lock validator (on in debug builds) found nothing wrong with the order locks were
/// taken in so far.
pub fn assert_lockdep_quiet(m: &M) {
    if let Some(ld) = m.lockdep() {
        assert_eq!(
            ld.report_count(),
            0,
            "lockdep reported:\n{}",
            m.platform().take_captured()
        );
    }
}
