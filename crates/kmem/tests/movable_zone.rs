//! ZONE_MOVABLE at boot (issue 19): `kernelcore=`, `movablecore=` (sizes and percentages),
//! `kernelcore=mirror`, `movable_node` with hotpluggable memory; the zones, the boot lines
//! and where allocations land. Linux: mm/mm_init.c `find_zone_movable_pfns_for_nodes`,
//! `adjust_zone_range_for_zone_movable`; Documentation/admin-guide/kernel-parameters.txt.
//!
//! The QEMU `pc` machines kmem simulates have this memory (memblock, in PFNs):
//! - 2 GiB: `[0x1, 0x9f)` (158 pages) and `[0x100, 0x7ffe0)` (524000): 524158 pages.
//! - 8 GiB: `[0x1, 0x9f)`, `[0x100, 0xbffe0)` (786144), `[0x100000, 0x240000)` (1310720).
//!
//! `MAX_ORDER_NR_PAGES` is 1024 (0x400); ZONE_MOVABLE is taken from the highest populated
//! zone (`movable_zone`: DMA32 up to 4 GiB of RAM, else Normal) and never below its lowest
//! PFN (`usable_startpfn`: 0x1000 for DMA32, 0x100000 for Normal).

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::memory_hotplug::OnlineType;
use kmem::mmzone::ZoneType;
use kmem::{BootParams, GfpFlags, Machine, NumaMemblk, Order, VirtAddr};
use kmem_hosted::{HostedConfig, HostedPlatform};

const G: u64 = 1 << 30;
const PAGE: u64 = kmem::PAGE_SIZE as u64;

fn dmesg(m: &M) -> String {
    let mut s = String::new();
    m.dmesg(&mut s, false).unwrap();
    s
}

/// The lines under `Movable zone start for each node`.
fn movable_starts(m: &M) -> Vec<String> {
    let log = dmesg(m);
    let mut it = log
        .lines()
        .skip_while(|l| !l.ends_with("Movable zone start for each node"));
    it.next().expect("no 'Movable zone start' line");
    it.take_while(|l| !l.ends_with("Early memory node ranges"))
        .map(|l| l.split_once("] ").map_or(l, |x| x.1).to_string())
        .collect()
}

/// `(start_pfn, spanned, present)` of a zone of a node.
fn zone(m: &M, nid: usize, kind: ZoneType) -> (u64, u64, u64) {
    let g = m.node_zone(nid, kind).geo;
    (g.start_pfn.as_u64(), g.spanned, g.present)
}

fn boot_numa_hot(mem: u64, blks: &[NumaMemblk], hot: &[bool], cmdline: &str) -> M {
    let o = NumaBoot {
        cmdline,
        hotpluggable: hot,
        ..NumaBoot::default()
    };
    boot_numa(mem, blks, &o)
}

fn blk(nid: u32, start: u64, end: u64) -> NumaMemblk {
    NumaMemblk { nid, start, end }
}

/// kernelcore=1G on 2 GiB, one node. movable_zone = DMA32 (Normal is empty),
/// usable_startpfn = 0x1000. kernelcore_node = 262144: [0x1, 0x9f) is below usable_startpfn
/// (158 kernel pages), so is [0x100, 0x1000) (3840); the remaining 258146 pages come from
/// 0x1000: zone_movable_pfn = 0x1000 + 258146 = 0x40062, aligned up to 0x40400.
/// DMA32 = [0x1000, 0x40400) = 259072 pages; Movable = [0x40400, 0x7ffe0) = 261088.
#[test]
fn kernelcore_size_on_one_node() {
    let m = boot_with(Arch::X86_64, 2 * G, 2, "kernelcore=1G", 42);
    assert_eq!(movable_starts(&m), ["  Node 0: 0x0000000040400000"]);
    assert_eq!(zone(&m, 0, ZoneType::Dma32), (0x1000, 259_072, 259_072));
    assert_eq!(zone(&m, 0, ZoneType::Movable), (0x40400, 261_088, 261_088));
    // The zone ranges stay the architecture's; the tail hole counts in Movable.
    let log = dmesg(&m);
    assert!(log.contains("  DMA32    [mem 0x0000000001000000-0x000000007ffdffff]"));
    assert!(log.contains("On node 0, zone Movable: 32 pages in unavailable ranges"));
    assert!(log.contains("Total pages: 524158"));
    let zi = proc(&m, "/proc/zoneinfo");
    assert!(zi.contains("Node 0, zone  Movable\n  pages free"), "{zi}");
    assert!(zi.contains("        spanned  261088\n        present  261088"));
    assert!(proc(&m, "/proc/buddyinfo").contains("Node 0, zone  Movable "));
    assert!(proc(&m, "/proc/pagetypeinfo").contains("Node    0, zone  Movable, type      Movable "));
    m.show_mem();
    assert!(dmesg(&m).contains("Node 0 Movable free:"));
    assert!(dmesg(&m).contains("present:1044352kB managed:"));
    m.check_invariants().unwrap();
}

/// kernelcore=50%: required_kernelcore = 524158 * 100 * 50 / 10000 = 262079; 262079 - 158 -
/// 3840 = 258081 from 0x1000 → 0x40021 → 0x40400, as kernelcore=1G.
/// movablecore=25%: 524158 * 25 / 100 = 131039, rounded up to 131072 (MAX_ORDER_NR_PAGES);
/// kernelcore = 524158 - 131072 = 393086; 393086 - 3998 = 389088 from 0x1000 → 0x5ffe0 →
/// 0x60000.
/// kernelcore=1536M movablecore=1G: movablecore gives 524158 - 262144 = 262014, the larger
/// 393216 wins: 393216 - 3998 = 389218 → 0x60062 → 0x60400.
#[test]
fn percentages_and_movablecore_on_one_node() {
    for (cmdline, start, dma32) in [
        ("kernelcore=50%", 0x40400u64, 259_072u64),
        ("movablecore=25%", 0x60000, 0x60000 - 0x1000),
        ("kernelcore=1536M movablecore=1G", 0x60400, 0x60400 - 0x1000),
        ("movablecore=1G kernelcore=1536M", 0x60400, 0x60400 - 0x1000),
    ] {
        let m = boot_with(Arch::X86_64, 2 * G, 2, cmdline, 42);
        assert_eq!(
            movable_starts(&m),
            [format!("  Node 0: {:#018x}", start << 12)],
            "{cmdline}"
        );
        assert_eq!(
            zone(&m, 0, ZoneType::Dma32),
            (0x1000, dma32, dma32),
            "{cmdline}"
        );
        let mv = 0x7ffe0 - start;
        assert_eq!(zone(&m, 0, ZoneType::Movable), (start, mv, mv), "{cmdline}");
    }
}

/// 8 GiB on two nodes (node 0: the RAM below 4 GiB and [4G, 0x142000000); node 1 the rest),
/// kernelcore=4G = 1048576 pages, movable_zone = Normal, usable_startpfn = 0x100000.
/// Pass 1, kernelcore_node = 524288. Node 0: everything below 4 GiB is kernel memory
/// (158 + 786144 pages, more than its share), required_kernelcore = 262274 left, node 0's
/// Normal gets none (zone_movable_pfn = 0x100000). Node 1: required < kernelcore_node, so
/// kernelcore_node = 262274 / 2 = 131137: zone_movable_pfn = 0x142000 + 131137 = 0x162041,
/// required = 131137. Pass 2 (usable_nodes = 1, 131137 pages owed): node 0 takes them from
/// 0x100000: 0x120041; node 1 takes none. Aligned: 0x120400 and 0x162400.
#[test]
fn kernelcore_spreads_over_two_nodes() {
    let m = boot_numa_hot(
        8 * G,
        &[blk(0, 0, 0x1_4200_0000), blk(1, 0x1_4200_0000, 9 * G)],
        &[],
        "kernelcore=4G",
    );
    assert_eq!(
        movable_starts(&m),
        [
            "  Node 0: 0x0000000120400000",
            "  Node 1: 0x0000000162400000"
        ]
    );
    assert_eq!(zone(&m, 0, ZoneType::Normal), (0x100000, 0x20400, 0x20400));
    assert_eq!(zone(&m, 0, ZoneType::Movable), (0x120400, 0x21c00, 0x21c00));
    assert_eq!(zone(&m, 1, ZoneType::Normal), (0x142000, 0x20400, 0x20400));
    assert_eq!(zone(&m, 1, ZoneType::Movable), (0x162400, 0xddc00, 0xddc00));
    // DMA32 stays as it was.
    assert_eq!(zone(&m, 0, ZoneType::Dma32).1, 0x100000 - 0x1000);
    let zi = proc(&m, "/proc/zoneinfo");
    assert!(zi.contains("Node 1, zone  Movable\n  pages free"));
    let meminfo = proc(&m, "/sys/devices/system/node/node1/meminfo");
    assert!(meminfo.contains("Node 1 MemTotal:"), "{meminfo}");
    m.check_invariants().unwrap();
}

/// movablecore=1G on the same machine: required_kernelcore = 2097022 - 262144 = 1834878,
/// share 917439 per node. Node 0: 158 + 786144 kernel pages below 4 GiB, the 131137 left of
/// its share from 0x100000: 0x120041; node 1: 917439 from 0x142000: 0x221fbf. Aligned:
/// 0x120400 and 0x222000 — 138240 + 122880 = 261120 movable pages, a little less than asked
/// (the per-node round-ups), as in Linux.
#[test]
fn movablecore_on_two_nodes() {
    let m = boot_numa_hot(
        8 * G,
        &[blk(0, 0, 0x1_4200_0000), blk(1, 0x1_4200_0000, 9 * G)],
        &[],
        "movablecore=1G",
    );
    assert_eq!(
        movable_starts(&m),
        [
            "  Node 0: 0x0000000120400000",
            "  Node 1: 0x0000000222000000"
        ]
    );
    assert_eq!(zone(&m, 0, ZoneType::Movable), (0x120400, 0x21c00, 0x21c00));
    assert_eq!(zone(&m, 1, ZoneType::Movable), (0x222000, 0x1e000, 0x1e000));
}

/// Values Linux ignores: no ZONE_MOVABLE, the zones as without the option, never a panic.
#[test]
fn bad_values_are_ignored_as_linux_does() {
    let plain = boot_with(Arch::X86_64, 2 * G, 2, "", 42);
    let geos = |m: &M| {
        m.node_zones(0)
            .map(|z| (z.kind, z.geo.start_pfn, z.geo.spanned, z.geo.present))
            .collect::<Vec<_>>()
    };
    for (cmdline, line) in [
        ("kernelcore", Some("Malformed early option 'kernelcore'")),
        ("movablecore", Some("Malformed early option 'movablecore'")),
        // simple_strtoull and memparse read 0: nothing asked, nothing said.
        ("kernelcore=abc", None),
        ("kernelcore=0", None),
        // More than the machine has: no ZONE_MOVABLE.
        ("kernelcore=4G", None),
        // WARN_ON(coremem > 100), then more than the machine has.
        ("kernelcore=150%", Some("WARNING: CPU: ")),
        // movablecore=100%: no kernel pages asked, and no ZONE_MOVABLE (Linux's goto out).
        ("movablecore=100%", None),
        ("movablecore=200%", Some("movablecore= above 100%")),
        // kmem has no mirrored memory; movablecore= is ignored with kernelcore=mirror.
        (
            "kernelcore=mirror movablecore=1G",
            Some("The system has no mirror memory, ignore kernelcore=mirror."),
        ),
        // movable_node without hotpluggable memory changes nothing at boot.
        ("movable_node kernelcore=1G", None),
    ] {
        let m = boot_with(Arch::X86_64, 2 * G, 2, cmdline, 42);
        assert!(movable_starts(&m).is_empty(), "{cmdline}");
        assert_eq!(geos(&m), geos(&plain), "{cmdline}");
        if let Some(l) = line {
            assert!(dmesg(&m).contains(l), "{cmdline}: {}", dmesg(&m));
        }
        m.check_invariants().unwrap();
    }
}

/// Process pages (GFP_HIGHUSER_MOVABLE) come from ZONE_MOVABLE first; kernel allocations
/// (GFP_KERNEL, kmalloc, slab) never do.
#[test]
fn user_pages_land_in_movable_kernel_pages_do_not() {
    let m = boot_with(Arch::X86_64, 2 * G, 2, "kernelcore=1G", 42);
    let pid = m.spawn("user").unwrap();
    let n = 2048u64;
    let a = anon(&m, pid, n);
    for i in 0..n {
        m.upoke(pid, a + i * PAGE, 8, i).unwrap();
    }
    for i in 0..n {
        let p = m.follow_page(pid, a + i * PAGE).unwrap().unwrap();
        assert_eq!(m.page_ref(p).unwrap().zone_type(), ZoneType::Movable);
    }
    let mut objs = Vec::new();
    for i in 0..4096usize {
        let p = m.kmalloc(64 + (i % 8) * 512, GfpFlags::GFP_KERNEL).unwrap();
        let page = m.virt_to_page(VirtAddr::from_ptr(p.as_ptr())).unwrap();
        assert_ne!(m.page_ref(page).unwrap().zone_type(), ZoneType::Movable);
        objs.push(p);
    }
    let mut pages = Vec::new();
    for _ in 0..256 {
        let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(2)).unwrap();
        assert_ne!(m.page_ref(p).unwrap().zone_type(), ZoneType::Movable);
        pages.push(p);
    }
    for p in objs {
        m.kfree(p.as_ptr());
    }
    for p in pages {
        m.__free_pages(p, Order::new(2));
    }
    m.exit(pid).unwrap();
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

/// A boot memory block wholly in ZONE_MOVABLE offlines by migrating the process pages in it;
/// the data survives.
#[test]
fn offlining_a_boot_movable_block_migrates_its_pages() {
    let m = boot_with(Arch::X86_64, 2 * G, 2, "kernelcore=1G", 42);
    // Block 9 = [0x48000000, 0x50000000): above 0x40400000, below the boot allocations at
    // the top of memory.
    assert_eq!(
        proc(&m, "/sys/devices/system/memory/memory9/valid_zones"),
        "Movable\n"
    );
    assert_eq!(
        proc(&m, "/sys/devices/system/memory/memory8/valid_zones"),
        "none\n"
    );
    let pid = m.spawn("filler").unwrap();
    let n = 200_000u64;
    let a = anon(&m, pid, n);
    for i in 0..n {
        m.upoke(pid, a + i * PAGE, 8, i ^ 0x5a5a).unwrap();
    }
    let in_block9 = |m: &M| {
        (0..n)
            .filter(|&i| {
                let p = m.follow_page(pid, a + i * PAGE).unwrap().unwrap();
                m.page_to_pfn(p).as_u64() >> 15 == 9
            })
            .count()
    };
    assert!(in_block9(&m) > 0, "the process has pages in block 9");
    m.proc_write("/sys/devices/system/memory/memory9/state", "offline")
        .unwrap();
    assert_eq!(
        proc(&m, "/sys/devices/system/memory/memory9/state"),
        "offline\n"
    );
    assert_eq!(in_block9(&m), 0);
    for i in (0..n).step_by(97) {
        assert_eq!(m.upeek(pid, a + i * PAGE, 8).unwrap(), i ^ 0x5a5a);
    }
    m.proc_write("/sys/devices/system/memory/memory9/state", "online")
        .unwrap();
    assert_eq!(
        proc(&m, "/sys/devices/system/memory/memory9/valid_zones"),
        "Movable\n"
    );
    m.exit(pid).unwrap();
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

/// movable_node: node 1's memory is hotpluggable (SRAT), so it is all ZONE_MOVABLE, from its
/// first hotpluggable range: 0x82000 (already aligned). Node 0 holds the kernel: a
/// hotpluggable flag there is cleared (`numa_clear_kernel_node_hotplug`). Boot allocations
/// avoid the hotpluggable memory, so node 1's Movable pages are all managed.
#[test]
fn movable_node_makes_hotpluggable_nodes_movable() {
    let blks = [blk(0, 0, 0x8200_0000), blk(1, 0x8200_0000, 5 * G)];
    let m = boot_numa_hot(4 * G, &blks, &[true, true], "movable_node");
    assert_eq!(movable_starts(&m), ["  Node 1: 0x0000000082000000"]);
    // Node 1: [0x82000, 0xbffe0) and [0x100000, 0x140000), 253920 + 262144 pages.
    assert_eq!(zone(&m, 1, ZoneType::Movable), (0x82000, 0xbe000, 516_064));
    assert_eq!(zone(&m, 1, ZoneType::Dma32), (0, 0, 0));
    assert_eq!(zone(&m, 1, ZoneType::Normal), (0, 0, 0));
    assert_eq!(zone(&m, 0, ZoneType::Movable), (0, 0, 0));
    let mv = m.node_zone(1, ZoneType::Movable);
    assert_eq!(mv.managed_pages() as u64, 516_064);
    // Without movable_node the flag alone changes nothing.
    let m = boot_numa_hot(4 * G, &blks, &[false, true], "");
    assert!(movable_starts(&m).is_empty());
    assert_eq!(zone(&m, 1, ZoneType::Movable), (0, 0, 0));
    // movable_node overrides kernelcore=.
    let m = boot_numa_hot(4 * G, &blks, &[false, true], "movable_node kernelcore=1G");
    assert_eq!(movable_starts(&m), ["  Node 1: 0x0000000082000000"]);
}

/// With movable_node, hot-added memory no zone claims defaults to ZONE_MOVABLE
/// (`default_zone_for_pfn`): valid_zones lists Movable first and `online` puts it there.
#[test]
fn movable_node_hot_add_defaults_to_movable() {
    let mut params = BootParams::simulated(Arch::X86_64, G, 2).unwrap();
    params.cmdline = "movable_node";
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
    cfg.max_phys_size = 8 * G;
    let m = Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap();
    m.add_memory(0, 4 * G, G).unwrap();
    let vz = "/sys/devices/system/memory/memory32/valid_zones";
    assert_eq!(proc(&m, vz), "Movable Normal\n");
    assert_eq!(
        m.zone_for_block(32, OnlineType::Online),
        Some(ZoneType::Movable)
    );
    m.proc_write("/sys/devices/system/memory/memory32/state", "online")
        .unwrap();
    assert_eq!(proc(&m, vz), "Movable\n");
    // Next to ZONE_MOVABLE now, the next block follows it either way.
    assert_eq!(
        proc(&m, "/sys/devices/system/memory/memory33/valid_zones"),
        "Movable Normal\n"
    );
    m.check_invariants().unwrap();
}
