//! Memory hotplug on a node other than 0 (issue 19): `add_memory(1, …)` extends node 1 above
//! all boot memory (QEMU's hotplug window), its blocks online into node 1's ZONE_MOVABLE or
//! ZONE_NORMAL, node 1's allocations land there, offlining migrates a process's pages out
//! with their data, removal gives every counter back; an offline or unknown node is refused
//! with nothing changed. Linux: mm/memory_hotplug.c (`add_memory`, `__try_online_node`,
//! `zone_for_pfn_range`, `online_pages`), drivers/base/node.c (`nodeN/meminfo`).

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::memory_hotplug::OnlineType;
use kmem::mmzone::ZoneType;
use kmem::{GfpFlags, Order};

const G: u64 = 1 << 30;
const PAGE: u64 = kmem::PAGE_SIZE as u64;
/// First block above boot memory (5 GiB: node 1 ends there).
const HOT: usize = 40;

/// 4 GiB on two nodes (node 0 below 2 GiB, node 1 from 2 GiB to 5 GiB with the PCI hole),
/// on a platform that may grow to `max` bytes.
fn boot_two_nodes_growable(max: u64) -> M {
    let o = NumaBoot {
        max_phys_size: max,
        ..NumaBoot::default()
    };
    boot_numa(4 * G, &two_node_blks(2 * G, 5 * G), &o)
}

/// A `nodeN/meminfo` line's kB value.
fn node_kb(m: &M, nid: usize, key: &str) -> u64 {
    let s = proc(m, &format!("/sys/devices/system/node/node{nid}/meminfo"));
    let l = s
        .lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("{key} in {s}"));
    l.split_whitespace().rev().nth(1).unwrap().parse().unwrap()
}

fn meminfo_kb(m: &M, key: &str) -> u64 {
    let s = proc(m, "/proc/meminfo");
    let l = s.lines().find(|l| l.starts_with(key)).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn dmesg(m: &M) -> String {
    let mut s = String::new();
    m.dmesg(&mut s, false).unwrap();
    s
}

fn pat(i: u64, off: u64) -> u64 {
    (i << 16) ^ off ^ 0x5a5a_0000_0000_0000
}

/// The scenario on node 1: add 1 GiB to it, online it movable, node 1's movable
/// allocations and a process bound to node 1 land there; offline migrates the process out
/// (data intact), remove; node 1's MemTotal and every counter return.
#[test]
fn node1_add_online_movable_offline_remove() {
    let m = boot_two_nodes_growable(6 * G);
    let warm = m.spawn("warmup").unwrap();
    m.exit(warm).unwrap();
    let (total0, node0, node1) = (
        meminfo_kb(&m, "MemTotal:"),
        node_kb(&m, 0, "MemTotal:"),
        node_kb(&m, 1, "MemTotal:"),
    );
    let free0 = settle(&m);

    m.add_memory(1, 5 * G, G).unwrap();
    for nr in HOT..HOT + 8 {
        let b = m.memory_block(nr).unwrap();
        assert_eq!((b.nid, b.online), (1, false), "block {nr}");
    }
    assert_eq!(node_kb(&m, 1, "MemTotal:"), node1, "not online yet");
    for nr in HOT..HOT + 8 {
        m.online_memory_block(nr, OnlineType::OnlineMovable)
            .unwrap();
        assert_eq!(m.memory_block(nr).unwrap().zone, Some(ZoneType::Movable));
    }
    assert_eq!(node_kb(&m, 1, "MemTotal:"), node1 + G / 1024);
    assert_eq!(node_kb(&m, 0, "MemTotal:"), node0);
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0 + G / 1024);
    assert!(m.node_zone(1, ZoneType::Movable).is_populated());
    assert!(!m.node_zone(0, ZoneType::Movable).is_populated());
    assert!(dmesg(&m).contains("Built 2 zonelists, mobility grouping on.  Total pages: "));
    assert!(proc(&m, "/proc/zoneinfo").contains("Node 1, zone  Movable"));
    m.check_invariants().unwrap();

    // Node 1's movable pages come from the new zone.
    let hot = |p| m.page_to_pfn(p).as_u64() >= (5 * G) / PAGE;
    let mut pages = Vec::new();
    for _ in 0..32 {
        let p = m
            .alloc_pages_node(1, GfpFlags::GFP_HIGHUSER_MOVABLE, Order::new(2))
            .unwrap();
        assert_eq!(m.page_to_nid(p), 1);
        assert_eq!(m.page_ref(p).unwrap().zone_type(), ZoneType::Movable);
        assert!(hot(p));
        pages.push(p);
    }
    for p in pages {
        m.__free_pages(p, Order::new(2));
    }

    // A process bound to node 1 fills part of it; offlining moves its pages out.
    let pid = m.spawn("filler").unwrap();
    m.set_mempolicy(pid, kmem::vma::mempolicy::MPOL_BIND, 0b10)
        .unwrap();
    let n = 2048u64;
    let a = anon(&m, pid, n);
    for i in 0..n {
        for off in [0, PAGE - 8] {
            m.upoke(pid, a + i * PAGE + off, 8, pat(i, off)).unwrap();
        }
    }
    let page_of = |i: u64| m.follow_page(pid, a + i * PAGE).unwrap().unwrap();
    assert!((0..n).all(|i| hot(page_of(i)) && m.page_to_nid(page_of(i)) == 1));
    for nr in HOT..HOT + 8 {
        m.offline_memory_block(nr).unwrap();
    }
    for i in 0..n {
        assert!(!hot(page_of(i)), "page {i} moved out");
        for off in [0, PAGE - 8] {
            assert_eq!(m.upeek(pid, a + i * PAGE + off, 8).unwrap(), pat(i, off));
        }
    }
    assert!(!m.node_zone(1, ZoneType::Movable).is_populated());
    assert_eq!(node_kb(&m, 1, "MemTotal:"), node1);
    m.remove_memory(5 * G, G).unwrap();
    assert!(m.memory_block(HOT).is_none());
    m.exit(pid).unwrap();
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0);
    assert_eq!(settle(&m), free0, "every page came back");
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    m.check_invariants().unwrap();
}

/// `online_kernel` on node 1 grows node 1's ZONE_NORMAL; `online` then picks the zone the
/// block meets (Normal next to it, `zone_for_pfn_range`).
#[test]
fn node1_online_kernel_grows_its_normal_zone() {
    let m = boot_two_nodes_growable(6 * G);
    let present = |nid| m.node_zone(nid, ZoneType::Normal).present_pages();
    let (p0, p1) = (present(0), present(1));
    m.add_memory(1, 5 * G, 256 << 20).unwrap();
    m.online_memory_block(HOT, OnlineType::OnlineKernel)
        .unwrap();
    assert_eq!(present(1), p1 + 32_768);
    assert_eq!(present(0), p0);
    assert_eq!(
        m.zone_for_block(HOT + 1, OnlineType::Online),
        Some(ZoneType::Normal)
    );
    m.online_memory_block(HOT + 1, OnlineType::Online).unwrap();
    assert_eq!(present(1), p1 + 65_536);
    let b = m.memory_block(HOT + 1).unwrap();
    assert_eq!((b.nid, b.zone), (1, Some(ZoneType::Normal)));
    // Kernel allocations on node 1 may use it; the free blocks offline again.
    m.offline_memory_block(HOT + 1).unwrap();
    m.offline_memory_block(HOT).unwrap();
    assert_eq!(present(1), p1);
    m.remove_memory(5 * G, 256 << 20).unwrap();
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

/// An offline node (one the machine does not have), `NUMA_NO_NODE` and a node number past
/// `MAX_NUMNODES` are refused with `EINVAL`; nothing is added.
#[test]
fn offline_or_unknown_node_is_refused() {
    let m = boot_two_nodes_growable(6 * G);
    let total0 = meminfo_kb(&m, "MemTotal:");
    let blocks0 = m.memory_blocks().count();
    assert_eq!(m.add_memory(2, 5 * G, G), Err(Errno::EINVAL));
    assert!(dmesg(&m).contains("Cannot online node 2 due to NULL pgdat"));
    assert_eq!(m.add_memory(-1, 5 * G, G), Err(Errno::EINVAL));
    assert_eq!(m.add_memory(64, 5 * G, G), Err(Errno::EINVAL));
    assert_eq!(m.memory_blocks().count(), blocks0);
    assert!(m.memory_block(HOT).is_none());
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0);
    // The range is still free for node 1.
    m.add_memory(1, 5 * G, 128 << 20).unwrap();
    assert_eq!(m.memory_block(HOT).unwrap().nid, 1);

    // On a one-node machine node 1 is offline.
    let one = boot(Arch::X86_64, G, 2);
    assert_eq!(one.add_memory(1, 4 * G, G), Err(Errno::EINVAL));
    assert!(dmesg(&one).contains("Cannot online node 1 due to NULL pgdat"));
    m.check_invariants().unwrap();
}
