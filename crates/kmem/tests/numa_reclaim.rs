//! Per-node reclaim (issue 19; mm/vmscan.c): each node has its own lruvec and kswapd. A
//! process bound to node 1 that outgrows it makes node 1's kswapd reclaim node 1's pages,
//! and node 0's pages stay where they are; a node held below its watermarks by kernel
//! memory (nothing reclaimable) makes its kswapd give up (`kswapd_failures`) rather than
//! swap out the other node's pages over and over; `/sys/devices/system/node/nodeN/meminfo`
//! shows each node's LRU lists and /proc/meminfo their sums.

mod common;
use common::*;
use kmem::page_alloc::MAX_RECLAIM_RETRIES;
use kmem::vma::mempolicy::MPOL_BIND;
use kmem::vmscan::LruList;
use kmem::{GfpFlags, PagePtr, PAGE_SIZE};

use std::sync::atomic::Ordering;

const MB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

/// 128 MiB on two nodes of 64 MiB (node 0 holds ZONE_DMA and the kernel).
fn two_nodes() -> M {
    boot_two_nodes(128 * MB, "")
}

/// Writes `i ^ salt` into the first word of each page.
fn touch_salted(m: &M, p: i32, a: u64, pages: u64, salt: u64) {
    for i in 0..pages {
        m.upoke(p, a + i * PAGE, 8, i ^ salt).unwrap();
    }
}

/// Reads every page back, checking what `touch` wrote.
fn check(m: &M, p: i32, a: u64, pages: u64, salt: u64) {
    for i in 0..pages {
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), i ^ salt, "page {i}");
    }
}

/// How many pages of `a..a + pages` are resident, by node.
fn resident(m: &M, p: i32, a: u64, pages: u64) -> [u64; 2] {
    let mut n = [0; 2];
    for i in 0..pages {
        if let Ok(Some(pg)) = m.follow_page(p, a + i * PAGE) {
            n[m.page_to_nid(pg)] += 1;
        }
    }
    n
}

/// The `Node N <label>` value of nodeN/meminfo, in kB.
fn node_kb(m: &M, nid: usize, label: &str) -> u64 {
    let text = proc(m, &format!("/sys/devices/system/node/node{nid}/meminfo"));
    let prefix = format!("Node {nid} {label}");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} not in\n{text}"))
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// Takes every page a user allocation can get on both nodes, then gives `keep` back and
/// drains this CPU's lists, so they are free for what the test runs next (the bare-metal
/// `user_swap`/`user_swap_fork` self-tests' hog).
fn hog_all_but(m: &M, keep: usize) -> Vec<PagePtr> {
    let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_NOWARN;
    let mut hog = Vec::new();
    while let Some(p) = m.alloc_page(gfp) {
        hog.push(p);
    }
    for _ in 0..keep {
        m.__free_page(hog.pop().unwrap());
    }
    m.drain_local_pages();
    hog
}

#[test]
fn node1_pressure_reclaims_node1_only() {
    let m = two_nodes();
    let (path, name) = swapon_file(&m, "numa-reclaim-bind", 128 * MB);
    // A: 2048 pages on node 0, written first (the oldest pages of the machine).
    let a = m.spawn("node0").unwrap();
    m.set_mempolicy(a, MPOL_BIND, 0b01).unwrap();
    let aa = anon(&m, a, 2048);
    touch_salted(&m, a, aa, 2048, 0xa);
    assert_eq!(resident(&m, a, aa, 2048), [2048, 0]);
    let node0_anon = m.vmscan().node_nr_pages(0, LruList::InactiveAnon)
        + m.vmscan().node_nr_pages(0, LruList::ActiveAnon);
    assert!(node0_anon >= 2048, "{node0_anon}");
    // B: bound to node 1, 1.5 times node 1's memory.
    let b = m.spawn("node1").unwrap();
    m.set_mempolicy(b, MPOL_BIND, 0b10).unwrap();
    let pages = 24 * 1024;
    let ba = anon(&m, b, pages);
    touch_salted(&m, b, ba, pages, 0xb);
    check(&m, b, ba, pages, 0xb);
    let vs = m.vmscan();
    // Node 1's kswapd ran and freed pages; node 0's was never needed.
    assert!(vs.kswapd(1).runs.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(
        vs.kswapd(1)
            .reclaimed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert_eq!(
        vs.kswapd(0).runs.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(vmstat(&m, "pswpout") > 0 && vmstat(&m, "pswpin") > 0);
    // B's resident pages are all on node 1; A's pages were not touched by reclaim.
    assert_eq!(resident(&m, b, ba, pages)[0], 0);
    assert_eq!(resident(&m, a, aa, 2048), [2048, 0]);
    check(&m, a, aa, 2048, 0xa);
    // The per-node LRU sizes: node 1 holds B's anonymous pages, and the machine's
    // /proc/meminfo is the sum of the nodes' nodeN/meminfo.
    assert_eq!(
        vs.node_nr_pages(0, LruList::InactiveAnon) + vs.node_nr_pages(1, LruList::InactiveAnon),
        vs.nr_pages(LruList::InactiveAnon)
    );
    let info = proc(&m, "/proc/meminfo");
    for label in [
        "Active(anon):",
        "Inactive(anon):",
        "SwapCached:",
        "Active:",
        "Inactive:",
    ] {
        let sum = node_kb(&m, 0, label) + node_kb(&m, 1, label);
        assert_eq!(sum, kb_field(&info, label), "{label}\n{info}");
    }
    // Each node's `SwapCached` counter agrees with a walk of its LRU lists (nothing is
    // isolated now); B's swapped-in pages are node 1's.
    assert!(vs.node_swapcache_pages(1) > 0);
    for nid in 0..2 {
        let walked = vs.node_swapcache_pages(nid) as u64 * 4;
        assert_eq!(
            walked,
            node_kb(&m, nid, "SwapCached:"),
            "node {nid}\n{info}"
        );
    }
    let n1 = node_kb(&m, 1, "Active(anon):") + node_kb(&m, 1, "Inactive(anon):");
    assert!(n1 >= resident(&m, b, ba, pages)[1] * 4, "{n1}");
    m.exit(b).unwrap();
    m.exit(a).unwrap();
    m.swapoff(&name).unwrap();
    assert!(vs.lru_empty());
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

/// The bare-metal `user_swap` thrash, hosted: node 0 is held at its min watermark by kernel
/// pages, so its kswapd can never balance it; a task on node 0's CPU falls back to node 1
/// and outgrows it. Node 0's kswapd must give up (it has nothing to reclaim) instead of
/// reclaiming node 1's pages until none is left at every wakeup.
#[test]
fn unbalanceable_node_does_not_make_kswapd_thrash() {
    let m = two_nodes();
    let (path, name) = swapon_file(&m, "numa-reclaim-thrash", 128 * MB);
    let held = fill_node(&m, 0);
    assert!(!held.is_empty());
    let p = m.spawn("demand").unwrap();
    let pages = 20 * 1024;
    let a = anon(&m, p, pages);
    touch_salted(&m, p, a, pages, 0x5);
    check(&m, p, a, pages, 0x5);
    let out = vmstat(&m, "pswpout");
    let inn = vmstat(&m, "pswpin");
    // Node 1 has about 16k pages: writing 20k pages in order and reading them back in order
    // swaps each page out about once (the read pass evicts the pages it will read next, as
    // LRU does on a sequential scan) and in once. A kswapd that empties node 1 at each
    // wakeup writes out many times the task's size.
    let vs = m.vmscan();
    assert!(out > 0 && inn > 0, "pswpout {out} pswpin {inn}");
    assert!(out <= pages + pages / 8, "pswpout {out} for {pages} pages");
    assert!(inn <= pages + pages / 8, "pswpin {inn} for {pages} pages");
    let f0 = vs
        .kswapd(0)
        .failures
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(f0 as usize >= MAX_RECLAIM_RETRIES, "kswapd0 failures {f0}");
    assert_eq!(
        vs.kswapd(0)
            .reclaimed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        vs.kswapd(1)
            .reclaimed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    m.exit(p).unwrap();
    for pg in held {
        m.__free_page(pg);
    }
    m.swapoff(&name).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

/// The bare-metal `user_swap` self-test's setup, hosted: every page a user allocation can
/// get is taken on both nodes, 1024 are given back, and a task writes and reads back 2048
/// pages with swap on. Both kswapds gave up while the hog took memory (nothing on their
/// lists), so direct reclaim does the work; the pages it frees land on per-CPU lists, which
/// the watermark check does not count — without the drain and retry after direct reclaim
/// (`__alloc_pages_direct_reclaim`) the task was OOM-killed with 740 pages reclaimed.
#[test]
fn hog_both_nodes_then_swap() {
    let m = two_nodes();
    let (path, name) = swapon_file(&m, "numa-reclaim-hog", 16 * MB);
    let hog = hog_all_but(&m, 1024);
    let p = m.spawn("demand").unwrap();
    let pages = 2048;
    let a = anon(&m, p, pages);
    touch_salted(&m, p, a, pages, 0x7);
    check(&m, p, a, pages, 0x7);
    let (out, inn) = (vmstat(&m, "pswpout"), vmstat(&m, "pswpin"));
    assert!(out > 0 && inn > 0, "pswpout {out} pswpin {inn}");
    // Each swap-in fault reads at most its aligned window of 8 slots (`page_cluster` 3), so
    // reading 2048 pages back reads at most 8 times that; the thrash the bare-metal test
    // saw was about 134 times (274k swap-ins).
    assert!(inn <= 8 * pages, "pswpin {inn} for {pages} pages");
    m.exit(p).unwrap();
    for pg in hog {
        m.__free_page(pg);
    }
    m.swapoff(&name).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

/// The bare-metal `user_swap_fork` self-test's setup, hosted: both nodes hogged down to 768
/// free pages (so both kswapds give up and direct reclaim does the work), a task writes
/// 1024 pages with swap on and forks, and parent and child read everything back. Then
/// whatever is free above the min watermarks is taken too. Returns the hog, the two pids
/// and the address of the pages.
fn hog_swap_fork(m: &M) -> (Vec<PagePtr>, [i32; 2], u64) {
    let mut hog = hog_all_but(m, 768);
    let p = m.spawn("swapfork").unwrap();
    let pages = 1024;
    let a = anon(m, p, pages);
    touch_salted(m, p, a, pages, 0x9);
    // Whatever is free above the watermarks goes too: fork's page-table pages must come
    // from direct reclaim (fork copies the page tables with `tasklist_lock` held).
    let nowait = GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_NOWARN;
    while let Some(pg) = m.alloc_page(nowait) {
        hog.push(pg);
    }
    let stalls = m.vmscan().stats.allocstall.load(Ordering::Relaxed);
    let c = m.fork(p).unwrap();
    assert!(
        m.vmscan().stats.allocstall.load(Ordering::Relaxed) > stalls,
        "fork did not reclaim"
    );
    check(m, c, a, pages, 0x9);
    check(m, p, a, pages, 0x9);
    let (out, inn) = (vmstat(m, "pswpout"), vmstat(m, "pswpin"));
    assert!(out > 0 && inn > 0, "pswpout {out} pswpin {inn}");
    (hog, [p, c], a)
}

/// Fork under the hog: its page-table copy reclaims directly with `tasklist_lock` held;
/// parent and child read back what was written, swap entries are all freed at exit.
#[test]
fn hog_both_nodes_then_swap_and_fork() {
    let m = two_nodes();
    let (path, name) = swapon_file(&m, "numa-reclaim-fork", 16 * MB);
    let (hog, pids, _) = hog_swap_fork(&m);
    for p in pids {
        m.exit(p).unwrap();
    }
    for pg in hog {
        m.__free_page(pg);
    }
    assert_eq!(m.si_swapinfo().free, m.si_swapinfo().total);
    m.swapoff(&name).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

/// A `fmt::Write` whose every write takes a page (`GFP_KERNEL`), as the bare-metal
/// kernel's `String` grows through kmalloc: a write can wake kswapd, which reclaims in the
/// allocating context.
struct AllocatingSink<'a> {
    m: &'a M,
    pages: Vec<PagePtr>,
    text: String,
}

impl std::fmt::Write for AllocatingSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if let Some(pg) = self
            .m
            .alloc_page(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)
        {
            self.pages.push(pg);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// /proc/swaps written into a sink that allocates, with memory short (the bare-metal
/// `user_swap_fork` prints /proc/swaps with its hog still held): the allocation reclaims,
/// and reclaim takes the swap table's lock to drop clean pages from the swap cache
/// (`delete_from_swap_cache`) — the lock `show_swaps` held while writing ("spinlock:
/// recursive locking on the only CPU" on `qemu-test --mem 256M --numa 2`). Linux's
/// `swap_show` writes into the seq_file buffer `seq_read` allocated beforehand.
#[test]
fn show_swaps_into_allocating_sink_under_pressure() {
    let m = two_nodes();
    let (path, name) = swapon_file(&m, "numa-reclaim-show", 16 * MB);
    let mut hog = hog_all_but(&m, 768);
    let p = m.spawn("demand").unwrap();
    let pages = 1024;
    let a = anon(&m, p, pages);
    touch_salted(&m, p, a, pages, 0x3);
    // One page of each swap readahead window read back: the others of the window stay in
    // the swap cache, unmapped and clean — what reclaim frees at once.
    for i in (0..pages / 2).step_by(8) {
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), i ^ 0x3);
    }
    assert!(
        vmstat(&m, "nr_swapcached") > 0,
        "{}",
        proc(&m, "/proc/vmstat")
    );
    // What is free above the min watermarks goes too: the sink's page comes from reclaim.
    while let Some(pg) = m.alloc_page(GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_NOWARN) {
        hog.push(pg);
    }
    let mut sink = AllocatingSink {
        m: &m,
        pages: Vec::new(),
        text: String::new(),
    };
    m.show_swaps(&mut sink).unwrap();
    // The sink's pages came from reclaim, which dropped pages from the swap cache.
    assert!(!sink.pages.is_empty());
    assert!(sink.text.starts_with("Filename\t"), "{}", sink.text);
    assert!(sink.text.contains(&name), "{}", sink.text);
    for pg in sink.pages {
        m.__free_page(pg);
    }
    check(&m, p, a, pages, 0x3);
    m.exit(p).unwrap();
    for pg in hog {
        m.__free_page(pg);
    }
    m.swapoff(&name).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}
