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

/// A counter of /proc/vmstat (`name value` lines).
pub fn vmstat(m: &M, name: &str) -> u64 {
    let s = proc(m, "/proc/vmstat");
    s.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in /proc/vmstat:\n{s}"))
        .trim()
        .parse()
        .unwrap()
}

/// The number of a `Label:   N kB` line of a /proc file's text (meminfo, smaps_rollup,
/// status); `label` includes the colon.
pub fn kb_field(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("{label} not in\n{text}"))
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// Spawns and exits one task, so that the zero page and the task layer's other one-time
/// allocations exist, and returns the settled free-page count (see [`settle`]) to compare
/// with after the test's tasks are gone.
pub fn baseline(m: &M) -> usize {
    let p = m.spawn("warmup").unwrap();
    m.exit(p).unwrap();
    settle(m)
}

/// Creates a swap file of `size` bytes, `kmem-{tag}-{pid}` in the temporary directory, and
/// gives it to `swapon`. Returns its path (the test removes it) and the name the machine
/// knows it by (for `swapoff`).
pub fn swapon_file(m: &M, tag: &str, size: u64) -> (std::path::PathBuf, String) {
    let path = std::env::temp_dir().join(format!("kmem-{tag}-{}", std::process::id()));
    let name = path.to_str().unwrap().to_string();
    m.swapon(
        &name,
        kmem_hosted::FileSwap::create(&path, size).unwrap(),
        None,
    )
    .unwrap();
    (path, name)
}
