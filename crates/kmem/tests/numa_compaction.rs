//! Compaction on a NUMA machine (issue 19; mm/compaction.c): one kcompactd per node, woken
//! by that node's kswapd and compacting only its node's zones; `compact_memory` compacts
//! every node (`compact_nodes` → `compact_node(pgdat)`).

mod common;
use common::*;
use kmem::memory::MADV_DONTNEED;
use kmem::vma::mempolicy::MPOL_BIND;
use kmem::PAGE_SIZE;

const MB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

/// Free blocks of order 9 and up on node `nid` (read from the free lists: allocating one
/// to look would itself wake kswapd and kcompactd).
fn big_free_blocks(m: &M, nid: usize) -> usize {
    m.node_zones(nid)
        .filter(|z| z.is_populated())
        .map(|z| m.zone_free_area_counts(z)[9..].iter().sum::<usize>())
        .sum()
}

fn pat(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// A process bound to `nid` touches pages 256 at a time until the node has no order-9
/// block left, then frees every other page. Returns (pid, address, pages touched).
fn fragment_node(m: &M, nid: usize) -> (i32, u64, u64) {
    let p = m.spawn("frag").unwrap();
    m.set_mempolicy(p, MPOL_BIND, 1 << nid).unwrap();
    let max = 128 * MB / PAGE;
    let a = anon(m, p, max);
    let mut n = 0;
    while big_free_blocks(m, nid) > 0 {
        for i in n..n + 256 {
            m.upoke(p, a + i * PAGE, 8, pat(i)).unwrap();
        }
        n += 256;
    }
    assert!(n > 4096, "touched {n} pages");
    for i in (1..n).step_by(2) {
        m.madvise(p, a + i * PAGE, PAGE, MADV_DONTNEED).unwrap();
    }
    m.drain_local_pages();
    (p, a, n)
}

/// The process's pages are intact and all still on `nid` (compaction migrates within a
/// zone).
fn check(m: &M, p: i32, a: u64, n: u64, nid: usize) {
    for i in (0..n).step_by(2) {
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), pat(i), "page {i}");
        let pg = m.follow_page(p, a + i * PAGE).unwrap().unwrap();
        assert_eq!(m.page_to_nid(pg), nid, "page {i}");
    }
}

#[test]
fn compact_memory_compacts_every_node() {
    let m = boot_two_nodes(256 * MB, "");
    let (p, a, n) = fragment_node(&m, 1);
    assert_eq!(big_free_blocks(&m, 1), 0);
    m.proc_write("/proc/sys/vm/compact_memory", "1\n").unwrap();
    assert!(big_free_blocks(&m, 1) > 0, "node 1 compacted");
    check(&m, p, a, n, 1);
    m.exit(p).unwrap();
}

#[test]
fn kswapd_wakes_its_own_nodes_kcompactd() {
    let m = boot_two_nodes(256 * MB, "");
    let (p, a, n) = fragment_node(&m, 1);
    let wakes = vmstat(&m, "compact_daemon_wake");
    // Node 0's kcompactd leaves node 1 alone.
    m.kcompactd_wake(0, 9);
    assert_eq!(
        big_free_blocks(&m, 1),
        0,
        "node 0's kcompactd compacted node 1"
    );
    // Node 1's compacts node 1.
    m.kcompactd_wake(1, 9);
    assert_eq!(vmstat(&m, "compact_daemon_wake"), wakes + 1);
    assert!(
        big_free_blocks(&m, 1) > 0,
        "node 1's kcompactd did not compact it"
    );
    check(&m, p, a, n, 1);
    // A node the machine does not have: nothing.
    m.kcompactd_wake(5, 9);
    assert_eq!(vmstat(&m, "compact_daemon_wake"), wakes + 1);
    m.exit(p).unwrap();
}

#[test]
fn direct_compaction_compacts_the_nodes_of_the_allocation() {
    use kmem::{GfpFlags, Order};
    let m = boot_two_nodes(256 * MB, "");
    let (p, a, n) = fragment_node(&m, 1);
    let stalls = vmstat(&m, "compact_stall");
    let wakes = vmstat(&m, "compact_daemon_wake");
    // Direct reclaim and compaction only (no kswapd, so no kcompactd), node 1 only.
    let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE.without(GfpFlags::__GFP_KSWAPD_RECLAIM)
        | GfpFlags::__GFP_THISNODE
        | GfpFlags::__GFP_NOWARN;
    let pg = m
        .alloc_pages_node(1, gfp, Order::new(9))
        .expect("order 9 on node 1 after direct compaction");
    assert_eq!(m.page_to_nid(pg), 1);
    assert!(vmstat(&m, "compact_stall") > stalls);
    assert_eq!(vmstat(&m, "compact_daemon_wake"), wakes);
    m.__free_pages(pg, Order::new(9));
    check(&m, p, a, n, 1);
    m.exit(p).unwrap();
}
