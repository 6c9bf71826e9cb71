//! Per-node counters (issue 19): `/sys/devices/system/node/nodeN/{meminfo,vmstat}`
//! (drivers/base/node.c `node_read_meminfo`, `node_read_vmstat`). Each page is counted on
//! the node it lives on; the nodes' values add up to /proc/vmstat and /proc/meminfo, and a
//! page that migrates to another node takes its counters along (mm/migrate.c
//! `__folio_migrate_mapping`).

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::vma::mempolicy::*;
use kmem::vma::{MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE};
use kmem::{GfpFlags, PAGE_SIZE};

const MB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

/// The labels of Linux 6.18's `nodeN/meminfo` on x86_64 (THP and hugetlb configured, no
/// highmem, no unaccepted memory), in order.
const LABELS: [&str; 37] = [
    "MemTotal",
    "MemFree",
    "MemUsed",
    "SwapCached",
    "Active",
    "Inactive",
    "Active(anon)",
    "Inactive(anon)",
    "Active(file)",
    "Inactive(file)",
    "Unevictable",
    "Mlocked",
    "Dirty",
    "Writeback",
    "FilePages",
    "Mapped",
    "AnonPages",
    "Shmem",
    "KernelStack",
    "PageTables",
    "SecPageTables",
    "NFS_Unstable",
    "Bounce",
    "WritebackTmp",
    "KReclaimable",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "AnonHugePages",
    "ShmemHugePages",
    "ShmemPmdMapped",
    "FileHugePages",
    "FilePmdMapped",
    "Balloon",
    "HugePages_Total",
    "HugePages_Free",
    "HugePages_Surp",
];

fn node_file(m: &M, nid: usize, file: &str) -> String {
    proc(m, &format!("/sys/devices/system/node/node{nid}/{file}"))
}

/// `name value` lines as pairs.
fn pairs(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The kB value of `Node N label:` in `nodeN/meminfo`.
fn node_kb(m: &M, nid: usize, label: &str) -> u64 {
    kb_field(
        &node_file(m, nid, "meminfo"),
        &format!("Node {nid} {label}:"),
    )
}

fn nvmstat(m: &M, nid: usize, name: &str) -> u64 {
    pairs(&node_file(m, nid, "vmstat"))
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not in node{nid}/vmstat"))
        .1
}

fn map(m: &M, p: i32, pages: u64, flags: u32) -> u64 {
    m.mmap(p, 0, pages * PAGE, PROT_READ | PROT_WRITE, flags, -1, 0)
        .unwrap()
}

#[test]
fn node_meminfo_has_linux_lines_in_order() {
    let m = boot_two_nodes(256 * MB, "");
    for nid in 0..2 {
        let s = node_file(&m, nid, "meminfo");
        let labels: Vec<&str> = s
            .lines()
            .map(|l| {
                let rest = l.strip_prefix(&format!("Node {nid} ")).unwrap();
                rest.split_once(':').unwrap().0
            })
            .collect();
        assert_eq!(labels, LABELS, "{s}");
        for l in s.lines() {
            let (label, _) = l.split_once(':').unwrap();
            if l.contains("HugePages_") {
                // hugetlb_report_node_meminfo: "%5u".
                let pad = if l.contains("Total") { " " } else { "  " };
                assert_eq!(l, format!("{label}:{pad}    0"), "{s}");
            } else {
                // "Node %d Label:<pad> %8lu kB": the label padded to 15 columns.
                let label = label.strip_prefix(&format!("Node {nid} ")).unwrap();
                let v = kb_field(l, &format!("Node {nid} {label}:"));
                assert_eq!(
                    l,
                    format!("Node {nid} {:<15} {v:8} kB", format!("{label}:"))
                );
            }
        }
    }
    // A one-node i386 machine has the highmem lines after Mlocked.
    let m = boot(Arch::I386, 1 << 30, 1);
    let s = node_file(&m, 0, "meminfo");
    assert!(
        s.contains("Node 0 Mlocked:               0 kB\nNode 0 HighTotal:"),
        "{s}"
    );
    let high = node_kb(&m, 0, "HighTotal");
    let low = node_kb(&m, 0, "LowTotal");
    assert!(high > 0);
    assert_eq!(high + low, node_kb(&m, 0, "MemTotal"));
    assert_eq!(
        high + low,
        kb_field(&proc(&m, "/proc/meminfo"), "MemTotal:")
    );
}

/// A task bound to each node, a shared mapping (shmem takes the local node's pages: kmem
/// has no shared policies).
fn load(m: &M) -> (i32, i32) {
    let p = m.spawn("n1").unwrap();
    m.set_mempolicy(p, MPOL_BIND, 0b10).unwrap();
    let a = map(m, p, 300, MAP_PRIVATE | MAP_ANONYMOUS);
    touch(m, p, a, 300);
    let s = map(m, p, 50, MAP_SHARED | MAP_ANONYMOUS);
    touch(m, p, s, 50);
    assert!(nids(m, p, a, 300).iter().all(|&n| n == 1));
    let local = m.numa_node_id();
    assert!(nids(m, p, s, 50).iter().all(|&n| n == local));
    let q = m.spawn("n0").unwrap();
    m.set_mempolicy(q, MPOL_BIND, 0b01).unwrap();
    let b = map(m, q, 100, MAP_PRIVATE | MAP_ANONYMOUS);
    touch(m, q, b, 100);
    (p, q)
}

#[test]
fn node_counters_add_up_to_the_machines() {
    let m = boot_two_nodes(256 * MB, "");
    let local = m.numa_node_id();
    let shmem = nvmstat(&m, local, "nr_shmem");
    let _tasks = load(&m);
    // The pages are counted where they live.
    assert!(nvmstat(&m, 1, "nr_anon_pages") >= 300);
    assert!(nvmstat(&m, 0, "nr_anon_pages") >= 100);
    assert_eq!(nvmstat(&m, local, "nr_shmem") - shmem, 50);
    assert_eq!(nvmstat(&m, 1 - local, "nr_shmem"), 0);
    let slab1 = node_kb(&m, 1, "SUnreclaim");
    let big = m
        .kmalloc_node(64 << 10, GfpFlags::GFP_KERNEL, 1)
        .unwrap()
        .as_ptr();
    assert_eq!(node_kb(&m, 1, "SUnreclaim") - slab1, 64);
    // Every line of nodeN/vmstat: the nodes add up to /proc/vmstat, in the same order.
    let (v0, v1) = (
        pairs(&node_file(&m, 0, "vmstat")),
        pairs(&node_file(&m, 1, "vmstat")),
    );
    let all = pairs(&proc(&m, "/proc/vmstat"));
    assert_eq!(v0.len(), 17);
    let mut at = 0;
    for ((n0, a), (n1, b)) in v0.iter().zip(&v1) {
        assert_eq!(n0, n1);
        let pos = all.iter().position(|(n, _)| n == n0).unwrap();
        assert!(pos >= at, "{n0} out of /proc/vmstat's order");
        at = pos;
        assert_eq!(a + b, all[pos].1, "{n0}");
    }
    // nodeN/meminfo: the nodes add up to /proc/meminfo, and agree with nodeN/vmstat.
    let info = proc(&m, "/proc/meminfo");
    for label in [
        "MemTotal",
        "MemFree",
        "SwapCached",
        "Active",
        "Inactive",
        "Active(anon)",
        "Inactive(anon)",
        "Unevictable",
        "Mapped",
        "AnonPages",
        "Shmem",
        "PageTables",
        "KReclaimable",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
    ] {
        let sum = node_kb(&m, 0, label) + node_kb(&m, 1, label);
        assert_eq!(sum, kb_field(&info, &format!("{label}:")), "{label}");
    }
    let files = node_kb(&m, 0, "FilePages") + node_kb(&m, 1, "FilePages");
    let cached = kb_field(&info, "Cached:") + kb_field(&info, "SwapCached:");
    assert_eq!(files, cached);
    for nid in 0..2 {
        assert_eq!(
            node_kb(&m, nid, "AnonPages"),
            nvmstat(&m, nid, "nr_anon_pages") * 4
        );
        assert_eq!(
            node_kb(&m, nid, "MemFree"),
            nvmstat(&m, nid, "nr_free_pages") * 4
        );
    }
    m.kfree(big);
}

#[test]
fn migrated_pages_take_their_counters_along() {
    let m = boot_two_nodes(256 * MB, "");
    // Shmem pages come from the local node; the anonymous ones are bound there too.
    let from = m.numa_node_id();
    let to = 1 - from;
    let p = m.spawn("move").unwrap();
    m.set_mempolicy(p, MPOL_BIND, 1 << from).unwrap();
    let s = map(&m, p, 32, MAP_SHARED | MAP_ANONYMOUS);
    touch(&m, p, s, 32);
    let a = map(&m, p, 16, MAP_PRIVATE | MAP_ANONYMOUS);
    touch(&m, p, a, 16);
    assert!(nids(&m, p, s, 32).iter().all(|&n| n == from));
    assert!(nids(&m, p, a, 16).iter().all(|&n| n == from));
    let stats = |n| (nvmstat(&m, n, "nr_shmem"), nvmstat(&m, n, "nr_anon_pages"));
    let before = [stats(from), stats(to)];
    for (addr, pages) in [(s, 32), (a, 16)] {
        m.mbind(p, addr, pages * PAGE, MPOL_BIND, 1 << to, MPOL_MF_MOVE)
            .unwrap();
        assert!(nids(&m, p, addr, pages).iter().all(|&n| n == to));
    }
    let after = [stats(from), stats(to)];
    assert_eq!(after[0].0, before[0].0 - 32, "shmem left node {from}");
    assert_eq!(after[1].0, before[1].0 + 32, "shmem came to node {to}");
    assert_eq!(after[0].1, before[0].1 - 16, "anon left node {from}");
    assert_eq!(after[1].1, before[1].1 + 16, "anon came to node {to}");
    for i in 0..32 {
        assert_eq!(m.upeek(p, s + i * PAGE, 8).unwrap(), i);
    }
    // Gone with the task: back to where they were before it.
    m.exit(p).unwrap();
    assert_eq!(stats(to).0, before[1].0);
    assert_eq!(stats(from).0, before[0].0 - 32);
}

#[test]
fn one_node_vmstat_is_the_machines() {
    let m = boot(Arch::X86_64, 256 * MB, 1);
    let p = m.spawn("one").unwrap();
    let a = map(&m, p, 64, MAP_PRIVATE | MAP_ANONYMOUS);
    touch(&m, p, a, 64);
    let v = pairs(&node_file(&m, 0, "vmstat"));
    // No NUMA events on one node, as /proc/vmstat.
    assert_eq!(v.len(), 11);
    let all = pairs(&proc(&m, "/proc/vmstat"));
    for (n, x) in &v {
        assert_eq!(all.iter().find(|(a, _)| a == n).unwrap().1, *x, "{n}");
    }
    assert!(!node_file(&m, 0, "vmstat").contains("numa_"));
    assert!(m
        .proc_read("/sys/devices/system/node/node1/vmstat", &mut String::new())
        .is_err());
}
