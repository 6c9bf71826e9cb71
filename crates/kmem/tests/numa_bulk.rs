//! The page allocator's bulk and never-waiting paths on a NUMA machine (issue 19; Linux 6.18
//! mm/page_alloc.c `alloc_pages_bulk_noprof(gfp, preferred_nid, nodemask, …)`,
//! `alloc_pages_nolock(gfp, nid, order)`): pages from the preferred node, the node mask,
//! a single page from elsewhere when the preferred node cannot serve the batch, the NUMA
//! counters.

mod common;
use common::*;
use kmem::page_alloc::NUMA_NO_NODE;
use kmem::{GfpFlags, Order, PagePtr};

const MB: u64 = 1 << 20;

fn bulk(m: &M, gfp: GfpFlags, nid: i32, mask: u64, n: usize) -> Vec<PagePtr> {
    let mut v = vec![None; n];
    let got = m.alloc_pages_bulk_node(gfp, nid, mask, &mut v);
    v.into_iter().take(got).map(Option::unwrap).collect()
}

fn free(m: &M, v: Vec<PagePtr>) {
    for p in v {
        m.__free_page(p);
    }
}

fn hits(m: &M, nid: usize) -> usize {
    m.numa_stat(nid)[0]
}

#[test]
fn bulk_takes_the_preferred_nodes_pages() {
    let m = boot_two_nodes(256 * MB, "");
    let local = m.numa_node_id();
    for nid in [0, 1] {
        let before = hits(&m, nid);
        let v = bulk(&m, GfpFlags::GFP_KERNEL, nid as i32, u64::MAX, 64);
        assert_eq!(v.len(), 64);
        assert!(v.iter().all(|&p| m.page_to_nid(p) == nid), "node {nid}");
        // zone_statistics for each page: a hit on the node asked for.
        assert_eq!(hits(&m, nid) - before, 64);
        free(&m, v);
    }
    // NUMA_NO_NODE and the plain call: the CPU's node.
    let v = bulk(&m, GfpFlags::GFP_KERNEL, NUMA_NO_NODE, u64::MAX, 32);
    assert!(v.iter().all(|&p| m.page_to_nid(p) == local));
    free(&m, v);
    let mut a = vec![None; 32];
    assert_eq!(m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut a), 32);
    assert!(a.iter().all(|p| m.page_to_nid(p.unwrap()) == local));
    free(&m, a.into_iter().map(Option::unwrap).collect());
    // A mask without the preferred node: its zonelist's first allowed node.
    let v = bulk(&m, GfpFlags::GFP_KERNEL, 1, 0b01, 16);
    assert_eq!(v.len(), 16);
    assert!(v.iter().all(|&p| m.page_to_nid(p) == 0));
    free(&m, v);
}

#[test]
fn a_full_preferred_node_gives_one_page_from_elsewhere() {
    let m = boot_two_nodes(256 * MB, "");
    let thisnode = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_THISNODE | GfpFlags::__GFP_NOWARN;
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages_node(1, thisnode, Order::ZERO) {
        held.push(p);
    }
    // No zone of node 1 passes the watermark: alloc_pages_bulk_noprof's `goto failed`,
    // one page through the ordinary allocator, from node 0.
    let v = bulk(&m, GfpFlags::GFP_KERNEL, 1, u64::MAX, 16);
    assert_eq!(v.len(), 1);
    assert_eq!(m.page_to_nid(v[0]), 0);
    free(&m, v);
    // With __GFP_THISNODE not even that.
    assert!(bulk(&m, thisnode, 1, u64::MAX, 16).is_empty());
    // Slots already filled are kept and counted.
    let first = m
        .alloc_pages_node(0, GfpFlags::GFP_KERNEL, Order::ZERO)
        .unwrap();
    let mut a = vec![Some(first), None, None];
    assert_eq!(m.alloc_pages_bulk_node(thisnode, 1, u64::MAX, &mut a), 1);
    assert_eq!(a[0], Some(first));
    free(&m, held);
    assert_eq!(m.alloc_pages_bulk_node(thisnode, 1, u64::MAX, &mut a), 3);
    assert!(a[1..].iter().all(|p| m.page_to_nid(p.unwrap()) == 1));
    free(&m, a.into_iter().map(Option::unwrap).collect());
    // An offline node: a warning and nothing.
    m.platform().take_captured();
    assert!(bulk(&m, GfpFlags::GFP_KERNEL, 5, u64::MAX, 4).is_empty());
    assert!(m
        .platform()
        .take_captured()
        .contains("allocation from offline node 5"));
}

#[test]
fn alloc_pages_nolock_takes_the_node_asked_for() {
    let m = boot_two_nodes(256 * MB, "");
    for nid in [0, 1] {
        let p = m
            .alloc_pages_nolock_node(GfpFlags::empty, nid, Order::ZERO)
            .unwrap();
        assert_eq!(m.page_to_nid(p), nid as usize);
        m.free_pages_nolock(p, Order::ZERO);
    }
    let p = m.alloc_pages_nolock(GfpFlags::empty, Order::ZERO).unwrap();
    assert_eq!(m.page_to_nid(p), m.numa_node_id());
    m.free_pages_nolock(p, Order::ZERO);
    assert!(m
        .alloc_pages_nolock_node(GfpFlags::empty, 3, Order::ZERO)
        .is_none());
}
