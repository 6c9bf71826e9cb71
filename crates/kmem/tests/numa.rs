//! NUMA in the core (issue 19): nodes from a topology or `numa=fake=N`, per-node zones and
//! spans, zonelists by distance (mm/page_alloc.c `build_zonelists`), `alloc_pages_node`,
//! `__GFP_THISNODE`, `page_to_nid`, the NUMA counters (`zone_statistics`) and the per-node
//! /proc files and boot log lines.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::page_alloc::NUMA_NO_NODE;
use kmem::{BootError, BootParams, GfpFlags, Machine, NumaMemblk, NumaTopology, Order, PagePtr};
use kmem_hosted::{HostedConfig, HostedPlatform};

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

fn blk(nid: u32, start: u64, end: u64) -> NumaMemblk {
    NumaMemblk { nid, start, end }
}

fn boot_numa(
    mem: u64,
    blks: &[NumaMemblk],
    nr: usize,
    dist: &[u8],
    cmdline: &str,
) -> Result<common::M, BootError> {
    let mut params = BootParams::simulated(Arch::X86_64, mem, 2).unwrap();
    params.cmdline = cmdline;
    if nr > 0 {
        params.numa = Some(NumaTopology {
            nr_nodes: nr,
            memblks: blks,
            distance: dist,
            cpu_to_node: &[],
            hotpluggable: &[],
        });
    }
    let plat = HostedPlatform::new(HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        42,
    ))
    .unwrap();
    Machine::boot(plat, &params)
}

/// 4 GiB, node 0 below 2 GiB, node 1 from 2 GiB (with the PCI hole and the RAM above 4 GiB).
fn two_nodes() -> common::M {
    boot_numa(4 * G, &[blk(0, 0, 2 * G), blk(1, 2 * G, 5 * G)], 2, &[], "").unwrap()
}

fn dmesg(m: &common::M) -> String {
    let mut s = String::new();
    m.dmesg(&mut s, false).unwrap();
    s
}

#[test]
fn two_nodes_have_their_zones_and_spans() {
    let m = two_nodes();
    assert_eq!(m.nr_online_nodes(), 2);
    let zi = proc(&m, "/proc/zoneinfo");
    for z in [
        "Node 0, zone      DMA",
        "Node 0, zone    DMA32",
        "Node 1, zone    DMA32",
    ] {
        assert!(zi.contains(z), "{z} missing:\n{zi}");
    }
    assert!(zi.contains("Node 1, zone   Normal\n  pages free"));
    // Node 1 spans 2 GiB .. 5 GiB: DMA32 up to 4 GiB (the hole included), Normal above.
    let s1 = m.node_span(1);
    assert_eq!(s1.start_pfn.as_u64(), (2 * G) >> 12);
    assert_eq!(s1.end_pfn().as_u64(), (5 * G) >> 12);
    let n1 = m.node_zone(1, kmem::mmzone::ZoneType::Normal);
    assert_eq!(n1.geo.spanned, G >> 12);
    assert_eq!(n1.geo.present, G >> 12);
    // Every zone of node 0 ends at or below 2 GiB.
    assert!(m
        .node_zones(0)
        .all(|z| z.geo.end_pfn().as_u64() <= (2 * G) >> 12));
    // Node 0's present pages and node 1's add up to the machine's.
    let total: u64 = m.zones().map(|z| z.geo.present).sum();
    assert_eq!(m.node_span(0).present + s1.present, total);
    // Each node's zones are per-node in buddyinfo too.
    let bi = proc(&m, "/proc/buddyinfo");
    assert!(bi.contains("Node 1, zone   Normal"), "{bi}");
    m.check_invariants().unwrap();
}

#[test]
fn boot_log_prints_the_node_lines() {
    let m = two_nodes();
    let log = dmesg(&m);
    for line in [
        "  node   0: [mem 0x0000000000001000-0x000000000009efff]",
        "  node   1: [mem 0x0000000080000000-0x00000000bffdffff]",
        "  node   1: [mem 0x0000000100000000-0x000000013fffffff]",
        "Initmem setup node 0 [mem 0x0000000000001000-0x000000007fffffff]",
        "Initmem setup node 1 [mem 0x0000000080000000-0x000000013fffffff]",
        "Fallback order for Node 0: 0 1 \n",
        "Fallback order for Node 1: 1 0 \n",
        "Built 2 zonelists, mobility grouping on.",
        "CPUs=2, Nodes=2",
    ] {
        assert!(log.contains(line), "{line:?} missing:\n{log}");
    }
    // No SLIT given: no distance table line.
    assert!(!log.contains("NUMA: Initialized distance table"));
}

#[test]
fn alloc_pages_node_places_pages_on_the_node() {
    let m = two_nodes();
    for nid in [0, 1] {
        let p = m
            .alloc_pages_node(nid, GfpFlags::GFP_KERNEL, Order::ZERO)
            .unwrap();
        assert_eq!(m.page_to_nid(p), nid as usize);
        let big = m
            .alloc_pages_node(nid, GfpFlags::GFP_KERNEL, Order::new(9))
            .unwrap();
        assert_eq!(m.page_to_nid(big), nid as usize);
        m.__free_pages(p, Order::ZERO);
        m.__free_pages(big, Order::new(9));
    }
    // NUMA_NO_NODE is the CPU's node.
    let p = m
        .alloc_pages_node(NUMA_NO_NODE, GfpFlags::GFP_KERNEL, Order::ZERO)
        .unwrap();
    assert_eq!(m.page_to_nid(p), m.numa_node_id());
    m.__free_pages(p, Order::ZERO);
    // DMA comes from node 0 whatever the node asked for (node 1 has no DMA zone).
    let d = m
        .alloc_pages_node(1, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_DMA, Order::ZERO)
        .unwrap();
    assert_eq!(m.page_to_nid(d), 0);
    m.__free_pages(d, Order::ZERO);
    m.check_invariants().unwrap();
}

#[test]
fn thisnode_stops_at_the_node_and_fallback_counts_miss_and_foreign() {
    // 256 MiB in two nodes of 128 MiB.
    let m = boot_numa(
        256 * M,
        &[blk(0, 0, 128 * M), blk(1, 128 * M, 256 * M)],
        2,
        &[],
        "",
    )
    .unwrap();
    let before = settle(&m);
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
    let mut held: Vec<(PagePtr, Order)> = Vec::new();
    // Exhaust node 1 with __GFP_THISNODE: every page is on node 1, then it fails.
    while let Some(p) = m.alloc_pages_node(1, gfp | GfpFlags::__GFP_THISNODE, Order::ZERO) {
        assert_eq!(m.page_to_nid(p), 1);
        held.push((p, Order::ZERO));
    }
    assert!(held.len() > 20_000, "{} pages on node 1", held.len());
    let s0 = m.numa_stat(0);
    let s1 = m.numa_stat(1);
    // Without __GFP_THISNODE node 1 falls back to node 0: a miss on 0, foreign on 1.
    let p = m.alloc_pages_node(1, gfp, Order::ZERO).unwrap();
    assert_eq!(m.page_to_nid(p), 0);
    held.push((p, Order::ZERO));
    assert_eq!(m.numa_stat(0)[1], s0[1] + 1, "numa_miss on node 0");
    assert_eq!(m.numa_stat(1)[2], s1[2] + 1, "numa_foreign on node 1");
    assert_eq!(m.numa_stat(1)[0], s1[0], "no numa_hit on node 1");
    // Counters agree: every allocation is a hit or a miss, and local or other.
    for nid in 0..2 {
        let s = m.numa_stat(nid);
        assert_eq!(s[0] + s[1], s[4] + s[5], "node {nid}: {s:?}");
    }
    // numastat in /proc/zoneinfo sums to the node's counters.
    let zi = proc(&m, "/proc/zoneinfo");
    let node1 = &zi[zi.find("Node 1,").unwrap()..];
    let foreign: usize = node1
        .lines()
        .filter_map(|l| l.trim().strip_prefix("numa_foreign"))
        .map(|v| v.trim().parse::<usize>().unwrap())
        .sum();
    assert_eq!(foreign, m.numa_stat(1)[2]);
    for (p, o) in held {
        m.__free_pages(p, o);
    }
    assert_eq!(settle(&m), before);
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn offline_node_is_refused_with_a_warning() {
    let m = two_nodes();
    let w = m.warn_count();
    assert!(m
        .alloc_pages_node(2, GfpFlags::GFP_KERNEL, Order::ZERO)
        .is_none());
    assert!(m
        .alloc_pages_node(-5, GfpFlags::GFP_KERNEL, Order::ZERO)
        .is_none());
    assert_eq!(m.warn_count(), w + 2);
    assert!(dmesg(&m).contains("allocation from offline node 2"));
    // One node: node 1 is offline too.
    let one = boot(Arch::X86_64, 256 * M, 2);
    assert_eq!(one.nr_online_nodes(), 1);
    let nowarn = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
    assert!(one.alloc_pages_node(1, nowarn, Order::ZERO).is_none());
    let p = one.alloc_pages_node(0, nowarn, Order::ZERO).unwrap();
    assert_eq!(one.page_to_nid(p), 0);
    one.__free_pages(p, Order::ZERO);
    // A one-node machine does not count NUMA events.
    assert_eq!(one.numa_stat(0), [0; 6]);
}

#[test]
fn slit_orders_the_zonelists() {
    // Three nodes in a line: 0 - 1 - 2, 0 and 2 far apart.
    #[rustfmt::skip]
    let d = [10, 20, 40,
             20, 10, 20,
             40, 20, 10];
    let m = boot_numa(
        3 * G,
        &[blk(0, 0, G), blk(1, G, 2 * G), blk(2, 2 * G, 4 * G)],
        3,
        &d,
        "",
    )
    .unwrap();
    assert_eq!(m.fallback_order(0), &[0, 1, 2]);
    assert_eq!(m.fallback_order(2), &[2, 1, 0]);
    assert_eq!(m.node_distance(0, 2), 40);
    let log = dmesg(&m);
    assert!(
        log.contains("NUMA: Initialized distance table, cnt=3"),
        "{log}"
    );
    assert!(log.contains("Fallback order for Node 2: 2 1 0 \n"));
    // Node 2 exhausted under __GFP_THISNODE, the next page for node 2 comes from node 1.
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages_node(2, gfp | GfpFlags::__GFP_THISNODE, Order::new(9)) {
        held.push(p);
    }
    let mut small = Vec::new();
    while let Some(p) = m.alloc_pages_node(2, gfp | GfpFlags::__GFP_THISNODE, Order::ZERO) {
        small.push(p);
    }
    let p = m.alloc_pages_node(2, gfp, Order::ZERO).unwrap();
    assert_eq!(m.page_to_nid(p), 1);
    m.__free_pages(p, Order::ZERO);
    for p in held {
        m.__free_pages(p, Order::new(9));
    }
    for p in small {
        m.__free_pages(p, Order::ZERO);
    }
    m.check_invariants().unwrap();
}

#[test]
fn numa_fake_splits_ram_equally() {
    let m = boot_numa(2 * G, &[], 0, &[], "numa=fake=4").unwrap();
    assert_eq!(m.nr_online_nodes(), 4);
    let log = dmesg(&m);
    assert!(
        // 512 MiB of RAM: the hole below 1 MiB pushes the end to the next 32 MiB.
        log.contains("Faking node 0 at [mem 0x0000000000000000-0x0000000021ffffff] (544MB)"),
        "{log}"
    );
    assert!(log.contains("Faking node 1 at [mem 0x0000000022000000-0x0000000041ffffff] (512MB)"));
    assert!(log.contains("Faking node 3 at [mem 0x0000000062000000-0x000000007ffdffff] (479MB)"));
    assert!(log.contains("Built 4 zonelists"));
    for nid in 0..4 {
        let p = m
            .alloc_pages_node(nid, GfpFlags::GFP_KERNEL, Order::ZERO)
            .unwrap();
        assert_eq!(m.page_to_nid(p), nid as usize);
        m.__free_pages(p, Order::ZERO);
    }
    // numa=fake=1 is one node.
    let one = boot_numa(G, &[], 0, &[], "numa=fake=1").unwrap();
    assert_eq!(one.nr_online_nodes(), 1);
}

#[test]
fn bad_topologies_do_not_boot() {
    let bad = |blks: &[NumaMemblk], nr, d: &[u8]| boot_numa(G, blks, nr, d, "").err();
    let err = Some(BootError::BadNumaTopology);
    // A memblk on a node that does not exist.
    assert_eq!(bad(&[blk(0, 0, G / 2), blk(2, G / 2, G)], 2, &[]), err);
    // Node 1 owns no RAM.
    assert_eq!(bad(&[blk(0, 0, G), blk(1, 8 * G, 9 * G)], 2, &[]), err);
    // Distances: wrong size, local not 10, remote not above 10.
    assert_eq!(
        bad(&[blk(0, 0, G / 2), blk(1, G / 2, G)], 2, &[10, 20]),
        err
    );
    assert_eq!(
        bad(&[blk(0, 0, G / 2), blk(1, G / 2, G)], 2, &[10, 10, 10, 10]),
        err
    );
    // Interleaved nodes (spans overlap).
    assert_eq!(
        bad(
            &[blk(0, 0, G / 4), blk(1, G / 4, G / 2), blk(0, G / 2, G)],
            2,
            &[]
        ),
        err
    );
    // Too many nodes, and numa=fake that cannot give each node 32 MiB.
    assert_eq!(bad(&[], 9, &[]), err);
    assert_eq!(
        boot_numa(64 * M, &[], 0, &[], "numa=fake=8").err(),
        Some(BootError::BadNumaTopology)
    );
    // i386 has no NUMA in kmem.
    let mut params = BootParams::simulated(Arch::I386, 256 * M, 1).unwrap();
    let blks = [blk(0, 0, 128 * M), blk(1, 128 * M, 256 * M)];
    params.numa = Some(NumaTopology {
        nr_nodes: 2,
        memblks: &blks,
        distance: &[],
        cpu_to_node: &[],
        hotpluggable: &[],
    });
    let plat = HostedPlatform::new(HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        1,
    ))
    .unwrap();
    assert_eq!(
        Machine::boot(plat, &params).err(),
        Some(BootError::BadNumaTopology)
    );
}

#[test]
fn sysfs_node_files() {
    let m = two_nodes();
    assert_eq!(proc(&m, "/sys/devices/system/node/online"), "0-1\n");
    assert_eq!(
        proc(&m, "/sys/devices/system/node/node0/distance"),
        "10 20\n"
    );
    assert_eq!(
        proc(&m, "/sys/devices/system/node/node1/distance"),
        "20 10\n"
    );
    // Two CPUs, round-robin over the nodes.
    assert_eq!(proc(&m, "/sys/devices/system/node/node0/cpulist"), "0\n");
    assert_eq!(proc(&m, "/sys/devices/system/node/node1/cpulist"), "1\n");
    let p = m
        .alloc_pages_node(1, GfpFlags::GFP_KERNEL, Order::ZERO)
        .unwrap();
    let ns = proc(&m, "/sys/devices/system/node/node1/numastat");
    let s = m.numa_stat(1);
    assert_eq!(
        ns,
        format!(
            "numa_hit {}\nnuma_miss {}\nnuma_foreign {}\ninterleave_hit {}\nlocal_node {}\nother_node {}\n",
            s[0], s[1], s[2], s[3], s[4], s[5]
        )
    );
    assert!(s[0] >= 1);
    let mi = proc(&m, "/sys/devices/system/node/node1/meminfo");
    assert!(mi.starts_with("Node 1 MemTotal:"), "{mi}");
    let free: usize = m.node_zones(1).map(|z| z.stats.free_pages()).sum();
    assert!(
        mi.contains(&format!("Node 1 MemFree:        {:8} kB\n", free * 4)),
        "{mi}"
    );
    m.__free_pages(p, Order::ZERO);
    assert!(m
        .proc_read(
            "/sys/devices/system/node/node2/distance",
            &mut String::new()
        )
        .is_err());
    // One node: node0 only.
    let one = boot(Arch::X86_64, 256 * M, 2);
    assert_eq!(proc(&one, "/sys/devices/system/node/online"), "0\n");
    assert_eq!(
        proc(&one, "/sys/devices/system/node/node0/cpulist"),
        "0-1\n"
    );
    assert_eq!(
        proc(&one, "/sys/devices/system/node/node0/distance"),
        "10\n"
    );
}

#[test]
fn proc_vmstat_sums_the_nodes_numa_events() {
    let m = two_nodes();
    let p = m
        .alloc_pages_node(1, GfpFlags::GFP_KERNEL, Order::ZERO)
        .unwrap();
    let vm = proc(&m, "/proc/vmstat");
    let get = |name: &str| -> usize {
        vm.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} missing:\n{vm}"))
            .parse()
            .unwrap()
    };
    let (s0, s1) = (m.numa_stat(0), m.numa_stat(1));
    assert_eq!(get("numa_hit"), s0[0] + s1[0]);
    assert_eq!(get("numa_foreign"), s0[2] + s1[2]);
    assert_eq!(
        get("numa_local") + get("numa_other"),
        get("numa_hit") + get("numa_miss")
    );
    m.__free_pages(p, Order::ZERO);
    // One node: no numa_* lines.
    let one = boot(Arch::X86_64, 256 * M, 2);
    assert!(!proc(&one, "/proc/vmstat").contains("numa_hit"));
}
