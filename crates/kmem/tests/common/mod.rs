//! Shared helpers for kmem's integration tests: machines on the hosted platform.
#![allow(dead_code)]

use kmem::arch::Arch;
use kmem::{BootParams, Machine, NumaMemblk, NumaTopology};
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

/// Two nodes on x86_64: node 0 `[0, split)`, node 1 `[split, end)` (`end` past the RAM
/// size when the PCI hole lies inside node 1).
pub fn two_node_blks(split: u64, end: u64) -> [NumaMemblk; 2] {
    [
        NumaMemblk {
            nid: 0,
            start: 0,
            end: split,
        },
        NumaMemblk {
            nid: 1,
            start: split,
            end,
        },
    ]
}

/// How [`boot_numa`] boots: `hotpluggable` per memblk (SRAT's flag; empty: none),
/// `max_phys_size` the hosted platform's growth limit (0: cannot grow).
#[derive(Default)]
pub struct NumaBoot<'a> {
    pub cmdline: &'a str,
    pub hotpluggable: &'a [bool],
    pub max_phys_size: u64,
}

/// Boots a deterministic x86_64 machine of `mem` bytes and two CPUs on the nodes `blks`
/// give (as many nodes as the highest `nid` + 1; CPU `c` on node `c % nodes`, Linux's
/// default distances 10/20).
pub fn boot_numa(mem: u64, blks: &[NumaMemblk], o: &NumaBoot<'_>) -> M {
    let nodes = blks.iter().map(|b| b.nid as usize + 1).max().unwrap_or(1);
    let mut params = BootParams::simulated(Arch::X86_64, mem, 2).unwrap();
    params.cmdline = o.cmdline;
    params.numa = Some(NumaTopology {
        nr_nodes: nodes,
        memblks: blks,
        distance: &[],
        cpu_to_node: &[],
        hotpluggable: o.hotpluggable,
    });
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
    if o.max_phys_size != 0 {
        cfg.max_phys_size = o.max_phys_size;
    }
    Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap()
}

/// Boots `mem` bytes on two equal nodes (node 0 holds ZONE_DMA and the kernel), two CPUs
/// (CPU 0 on node 0, CPU 1 on node 1), with a kernel command line.
pub fn boot_two_nodes(mem: u64, cmdline: &str) -> M {
    boot_numa(
        mem,
        &two_node_blks(mem / 2, mem),
        &NumaBoot {
            cmdline,
            ..NumaBoot::default()
        },
    )
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

/// A private anonymous read-write mapping of `pages` pages in task `p` (`mmap(NULL, …,
/// PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)`); its address.
pub fn anon(m: &M, p: i32, pages: u64) -> u64 {
    use kmem::vma::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    m.mmap(
        p,
        0,
        pages * kmem::PAGE_SIZE as u64,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        -1,
        0,
    )
    .unwrap()
}

/// Writes `i` into the first word of the `i`th page of `a..a + pages` in task `p`.
pub fn touch(m: &M, p: i32, a: u64, pages: u64) {
    for i in 0..pages {
        m.upoke(p, a + i * kmem::PAGE_SIZE as u64, 8, i).unwrap();
    }
}

/// The node of each page mapped at `a..a + pages` in task `p`.
pub fn nids(m: &M, p: i32, a: u64, pages: u64) -> Vec<usize> {
    (0..pages)
        .map(|i| {
            let pg = m.follow_page(p, a + i * kmem::PAGE_SIZE as u64);
            m.page_to_nid(pg.unwrap().unwrap())
        })
        .collect()
}

/// Takes every free page of `nid` (kernel allocations that stay on it).
pub fn fill_node(m: &M, nid: i32) -> Vec<kmem::PagePtr> {
    use kmem::GfpFlags;
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_THISNODE | GfpFlags::__GFP_NOWARN;
    let mut v = Vec::new();
    while let Some(pg) = m.alloc_pages_node(nid, gfp, kmem::Order::ZERO) {
        v.push(pg);
    }
    v
}
