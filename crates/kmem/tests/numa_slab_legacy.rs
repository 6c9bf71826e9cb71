//! Node awareness of the legacy allocators (issue 19): SLAB's per-node `kmem_cache_node`,
//! `____cache_alloc_node`/`fallback_alloc` and alien caches (mm/slab.c of v6.7), and SLOB's
//! node matching (mm/slob.c of v6.3), on two-node machines.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::page_alloc::NUMA_NO_NODE;
use kmem::slab::common::SlabFlags;
use kmem::{GfpFlags, Order, PagePtr, VirtAddr};
use std::collections::HashSet;

const M: u64 = 1 << 20;

/// Two nodes of `mem / 2` each, two CPUs (CPU 0 on node 0, CPU 1 on node 1).
fn two_nodes(mem: u64, cmdline: &str) -> common::M {
    boot_two_nodes(mem, cmdline)
}

fn nid(m: &common::M, p: *const u8) -> usize {
    let page = m.virt_to_page(VirtAddr::new(p as usize)).unwrap();
    m.page_to_nid(page)
}

fn clean_log(m: &common::M) {
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(
        !log.contains("BUG") && !log.contains("still has objects") && !log.contains("WARNING"),
        "{log}"
    );
}

const SIZES: [usize; 14] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4000, 4096, 8192,
];

/// Every kmalloc size on each node, several slabs' worth; all of the node asked for, no
/// block handed out twice.
fn every_size_on_each_node(m: &common::M, what: &str) {
    for node in [1, 0] {
        for size in SIZES {
            let n = (64 * 1024 / size).clamp(32, 1024);
            let ps: Vec<*mut u8> = (0..n)
                .map(|_| {
                    m.kmalloc_node(size, GfpFlags::GFP_KERNEL, node)
                        .unwrap()
                        .as_ptr()
                })
                .collect();
            for &p in &ps {
                assert_eq!(
                    nid(m, p),
                    node as usize,
                    "{what}: kmalloc_node({size}, {node})"
                );
                // SAFETY: `p` is a live block of `size` bytes.
                unsafe { p.write_bytes(0x5a, size) };
            }
            let set: HashSet<_> = ps.iter().copied().collect();
            assert_eq!(set.len(), n, "{what}: a block handed out twice");
            for &p in &ps {
                m.kfree(p);
            }
        }
    }
}

#[test]
fn slab_kmem_cache_alloc_node_takes_the_nodes_slabs() {
    let m = two_nodes(256 * M, "slab=slab");
    let c = m
        .kmem_cache_create("slab_node", 256, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let ps: Vec<_> = (0..300)
        .map(|_| {
            m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, 1)
                .unwrap()
                .as_ptr()
        })
        .collect();
    assert!(ps.iter().all(|&p| nid(&m, p) == 1));
    let n1 = m.slab_cache_node(c, 1).unwrap();
    let n0 = m.slab_cache_node(c, 0).unwrap();
    let per_slab = m.slab_info(c).unwrap().objperslab as usize;
    assert!(n1.total_slabs * per_slab >= 300, "{n1:?}");
    assert_eq!(n0.total_slabs, 0, "node 0 grew for node-1 requests: {n0:?}");
    assert!(n1.nodeallocs >= 300 || m.numa_node_id() == 1);
    // A few on node 0 too: /proc/slabinfo (SLAB's format) sums the nodes (get_slabinfo).
    let zs: Vec<_> = (0..20)
        .map(|_| {
            m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, 0)
                .unwrap()
                .as_ptr()
        })
        .collect();
    let (n0, n1) = (
        m.slab_cache_node(c, 0).unwrap(),
        m.slab_cache_node(c, 1).unwrap(),
    );
    assert!(n0.total_slabs > 0);
    let info = m.slab_info(c).unwrap();
    assert_eq!(info.num_slabs, n0.total_slabs + n1.total_slabs);
    assert_eq!(
        info.num_objs - info.active_objs,
        n0.free_objects + n1.free_objects
    );
    let line = proc(&m, "/proc/slabinfo")
        .lines()
        .find(|l| l.starts_with("slab_node "))
        .unwrap()
        .to_string();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[2], info.num_objs.to_string(), "{line}");
    assert_eq!(f[7], "tunables", "SLAB's slabinfo format: {line}");
    assert_eq!(
        f[14],
        (n0.total_slabs + n1.total_slabs).to_string(),
        "{line}"
    );
    for p in zs {
        m.kmem_cache_free(c, p);
    }
    for &p in &ps {
        m.kmem_cache_free(c, p);
    }
    assert!(!m.kmem_cache_shrink(c));
    assert_eq!(m.slab_info(c).unwrap().active_objs, 0);
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_destroy(c);
    every_size_on_each_node(&m, "slab=slab");
    assert!(m.slab_cache_node(c, 2).is_none());
    clean_log(&m);
}

/// A remote object freed on this CPU waits in this node's alien cache for its home node;
/// the 13th overflows the 12-entry cache and sends the batch home; the reap and shrink send
/// the rest home; every object comes back free on its node.
#[test]
fn slab_remote_frees_go_through_the_alien_cache() {
    let m = two_nodes(256 * M, "slab=slab");
    let local = m.numa_node_id();
    let remote = 1 - local;
    let c = m
        .kmem_cache_create("slab_alien", 128, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let ps: Vec<_> = (0..40)
        .map(|_| {
            m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, remote as i32)
                .unwrap()
                .as_ptr()
        })
        .collect();
    assert!(ps.iter().all(|&p| nid(&m, p) == remote));
    let free_before = m.slab_cache_node(c, remote).unwrap().free_objects;
    m.kmem_cache_free(c, ps[0]);
    let n = m.slab_cache_node(c, local).unwrap();
    assert!(n.has_alien);
    assert_eq!(n.alien_avail[remote], 1, "{n:?}");
    assert_eq!(n.nodefrees, 1);
    // Not on the home node yet.
    assert_eq!(
        m.slab_cache_node(c, remote).unwrap().free_objects,
        free_before
    );
    for &p in &ps[1..12] {
        m.kmem_cache_free(c, p);
    }
    let n = m.slab_cache_node(c, local).unwrap();
    assert_eq!((n.alien_avail[remote], n.acoverflow), (12, 0), "{n:?}");
    // The 13th: the full cache goes home (into the home node's shared array or slabs).
    m.kmem_cache_free(c, ps[12]);
    let n = m.slab_cache_node(c, local).unwrap();
    assert_eq!((n.alien_avail[remote], n.acoverflow), (1, 1), "{n:?}");
    let r = m.slab_cache_node(c, remote).unwrap();
    assert_eq!(
        r.free_objects + r.shared_avail,
        free_before + 12,
        "12 objects went home: {r:?}"
    );
    // The periodic reap sends one alien cache home per run, round robin over the nodes.
    m.slab_tick();
    m.slab_tick();
    assert_eq!(m.slab_cache_node(c, local).unwrap().alien_avail[remote], 0);
    // The rest: shrink drains the alien caches and the shared arrays.
    for &p in &ps[13..] {
        m.kmem_cache_free(c, p);
    }
    assert!(m.slab_cache_node(c, local).unwrap().alien_avail[remote] > 0);
    assert!(!m.kmem_cache_shrink(c));
    for node in [0, 1] {
        let n = m.slab_cache_node(c, node).unwrap();
        assert_eq!((n.total_slabs, n.alien_avail[1 - node]), (0, 0), "{n:?}");
    }
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_destroy(c);
    clean_log(&m);
}

/// `noaliencache`: no alien caches; a remote object goes straight back to its node.
#[test]
fn slab_noaliencache_frees_remote_objects_at_once() {
    let m = two_nodes(256 * M, "slab=slab noaliencache");
    let local = m.numa_node_id();
    let remote = 1 - local;
    let c = m
        .kmem_cache_create("slab_noalien", 128, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let p = m
        .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, remote as i32)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), remote);
    let before = m.slab_cache_node(c, remote).unwrap().free_objects;
    m.kmem_cache_free(c, p);
    let n = m.slab_cache_node(c, local).unwrap();
    assert!(!n.has_alien, "{n:?}");
    assert_eq!(n.nodefrees, 1);
    assert_eq!(
        m.slab_cache_node(c, remote).unwrap().free_objects,
        before + 1
    );
    m.kmem_cache_destroy(c);
    clean_log(&m);
}

/// `__GFP_THISNODE` on a full node fails; without it `fallback_alloc` finds node 0.
#[test]
fn slab_thisnode_fails_on_a_full_node_and_falls_back_without_it() {
    let m = two_nodes(256 * M, "slab=slab");
    let thisnode = GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_THISNODE;
    let d = m
        .kmem_cache_create("slab_full", 512, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let mut pages: Vec<PagePtr> = Vec::new();
    while let Some(pg) = m.alloc_pages_node(1, thisnode | GfpFlags::__GFP_NOWARN, Order::new(0)) {
        pages.push(pg);
    }
    assert!(pages.len() > 10_000);
    assert!(m
        .kmem_cache_alloc_node(d, thisnode | GfpFlags::__GFP_NOWARN, 1)
        .is_none());
    assert!(m
        .kmalloc_node(700, thisnode | GfpFlags::__GFP_NOWARN, 1)
        .is_none_or(|p| nid(&m, p.as_ptr()) == 1));
    let p = m
        .kmem_cache_alloc_node(d, GfpFlags::GFP_NOWAIT, 1)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), 0, "fallback_alloc takes node 0");
    m.kmem_cache_free(d, p);
    for pg in pages {
        m.__free_pages(pg, Order::new(0));
    }
    let p = m.kmem_cache_alloc_node(d, thisnode, 1).unwrap().as_ptr();
    assert_eq!(nid(&m, p), 1);
    m.kmem_cache_free(d, p);
    assert!(!m.kmem_cache_shrink(d));
    assert_eq!(m.validate(d), 0);
    m.kmem_cache_destroy(d);
    // A node that is not online: a warning (here suppressed) and NULL.
    assert!(m
        .kmalloc_node(64, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, 5)
        .is_none());
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A model check: random allocations on node 0, 1 or any, random frees (remote ones through
/// the alien caches), reaps and shrinks. No object is handed out twice while live, each is
/// of the node asked for, and at the end nothing is lost: the cache is empty and validates.
fn model_run(cmdline: &str, seed: u64) {
    let m = two_nodes(256 * M, cmdline);
    let c = m
        .kmem_cache_create("slab_model", 72, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let mut rng = Rng(seed);
    let mut live: Vec<*mut u8> = Vec::new();
    let mut set: HashSet<usize> = HashSet::new();
    for step in 0..20_000 {
        match rng.below(100) {
            0..=54 => {
                let node = [0, 1, NUMA_NO_NODE][rng.below(3) as usize];
                let p = m
                    .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, node)
                    .unwrap()
                    .as_ptr();
                if node >= 0 {
                    assert_eq!(nid(&m, p), node as usize, "step {step}");
                }
                assert!(
                    set.insert(p as usize),
                    "step {step}: {p:?} handed out twice"
                );
                // SAFETY: a live 72-byte object.
                unsafe { p.write_bytes(step as u8, 72) };
                live.push(p);
            }
            55..=97 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let p = live.swap_remove(i);
                set.remove(&(p as usize));
                m.kmem_cache_free(c, p);
            }
            98 => m.slab_tick(),
            _ => {
                m.kmem_cache_shrink(c);
            }
        }
    }
    let info = m.slab_info(c).unwrap();
    assert!(info.active_objs >= live.len(), "{info:?} < {}", live.len());
    for p in live {
        m.kmem_cache_free(c, p);
    }
    assert!(!m.kmem_cache_shrink(c), "objects lost");
    assert_eq!(m.slab_info(c).unwrap().active_objs, 0);
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_destroy(c);
    clean_log(&m);
}

#[test]
fn slab_node_model_check() {
    for seed in [1, 0x5eed, 0xdead_beef] {
        model_run("slab=slab", seed);
    }
    model_run("slab=slab noaliencache", 7);
    model_run("slab=slab slab_debug=FZPU", 11);
}

/// Two CPUs (one per node) allocate on both nodes and free each other's objects: remote
/// frees on both sides go through the alien caches; nothing lost, the cache validates.
#[test]
fn slab_cross_node_frees_from_two_cpus() {
    let m = two_nodes(256 * M, "slab=slab");
    let c = m
        .kmem_cache_create("slab_x", 96, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let (tx_a, rx_a) = std::sync::mpsc::sync_channel::<Vec<(usize, i32)>>(8);
    let (tx_b, rx_b) = std::sync::mpsc::sync_channel::<Vec<(usize, i32)>>(8);
    std::thread::scope(|s| {
        let m = &m;
        let mut threads = Vec::new();
        for (tx, rx, salt) in [(tx_a, rx_b, 0), (tx_b, rx_a, 1)] {
            threads.push(s.spawn(move || {
                for round in 0..60 {
                    let v: Vec<(usize, i32)> = (0..300)
                        .map(|i| {
                            let node = [(round + i + salt) % 2, NUMA_NO_NODE as usize][i % 5 / 4];
                            let node = node as i32;
                            let p = if i % 2 == 0 {
                                m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, node)
                            } else {
                                m.kmalloc_node(8 << (i % 10), GfpFlags::GFP_KERNEL, node)
                            };
                            let p = p.unwrap().as_ptr();
                            if node >= 0 {
                                assert_eq!(nid(m, p), node as usize);
                            }
                            (p as usize, (i % 2) as i32)
                        })
                        .collect();
                    tx.send(v).unwrap();
                    let got = rx.recv().unwrap();
                    for (p, kind) in got {
                        if kind == 0 {
                            m.kmem_cache_free(c, p as *mut u8);
                        } else {
                            m.kfree(p as *const u8);
                        }
                    }
                }
            }));
        }
        // A real join waits for the thread's exit, where its CPU dies and its arrays are
        // drained (the scope's own wait may return before that).
        for t in threads {
            t.join().unwrap();
        }
    });
    assert!(!m.kmem_cache_shrink(c));
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_destroy(c);
    clean_log(&m);
}

/// SLOB: `kmalloc_node` of every size and `kmem_cache_alloc_node` give the node's memory;
/// `__GFP_THISNODE` on a full node fails, without it another node's page serves.
#[test]
fn slob_matches_the_node() {
    let m = two_nodes(256 * M, "slab=slob");
    every_size_on_each_node(&m, "slab=slob");
    let c = m
        .kmem_cache_create("slob_node", 72, 8, SlabFlags::NONE, None)
        .unwrap();
    let big = m
        .kmem_cache_create("slob_big", 6000, 8, SlabFlags::NONE, None)
        .unwrap();
    for node in [1, 0, 1] {
        let ps: Vec<_> = (0..200)
            .map(|_| {
                m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, node)
                    .unwrap()
                    .as_ptr()
            })
            .collect();
        assert!(ps.iter().all(|&p| nid(&m, p) == node as usize));
        let b = m
            .kmem_cache_alloc_node(big, GfpFlags::GFP_KERNEL, node)
            .unwrap()
            .as_ptr();
        assert_eq!(nid(&m, b), node as usize);
        m.kmem_cache_free(big, b);
        for p in ps {
            m.kmem_cache_free(c, p);
        }
    }
    // Mixed: node-1 and unplaced blocks share SLOB's lists; a node-0 request never gets a
    // node-1 page's block.
    let ones: Vec<_> = (0..50)
        .map(|i| {
            m.kmalloc_node(40 + i, GfpFlags::GFP_KERNEL, 1)
                .unwrap()
                .as_ptr()
        })
        .collect();
    for i in 0..50 {
        let p = m
            .kmalloc_node(40 + i, GfpFlags::GFP_KERNEL, 0)
            .unwrap()
            .as_ptr();
        assert_eq!(nid(&m, p), 0);
        m.kfree(p);
    }
    ones.into_iter().for_each(|p| m.kfree(p));
    let thisnode = GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_THISNODE;
    let mut pages: Vec<PagePtr> = Vec::new();
    while let Some(pg) = m.alloc_pages_node(1, thisnode | GfpFlags::__GFP_NOWARN, Order::new(0)) {
        pages.push(pg);
    }
    let d = m
        .kmem_cache_create("slob_full", 1500, 8, SlabFlags::NONE, None)
        .unwrap();
    // Fill the node-1 pages SLOB still has, then one more must fail.
    let mut held = Vec::new();
    while let Some(p) = m.kmem_cache_alloc_node(d, thisnode | GfpFlags::__GFP_NOWARN, 1) {
        assert_eq!(nid(&m, p.as_ptr()), 1);
        held.push(p.as_ptr());
        assert!(held.len() < 10_000);
    }
    let p = m
        .kmem_cache_alloc_node(d, GfpFlags::GFP_NOWAIT, 1)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), 0, "fallback to node 0 without __GFP_THISNODE");
    m.kmem_cache_free(d, p);
    held.into_iter().for_each(|p| m.kmem_cache_free(d, p));
    for pg in pages {
        m.__free_pages(pg, Order::new(0));
    }
    m.kmem_cache_destroy(d);
    m.kmem_cache_destroy(big);
    m.kmem_cache_destroy(c);
    clean_log(&m);
}

/// One node: SLAB keeps one `kmem_cache_node`, no alien caches, and node requests work.
#[test]
fn slab_one_node_machine() {
    let m = boot_with(Arch::X86_64, 128 * M, 2, "slab=slab", 7);
    let c = m
        .kmem_cache_create("slab_one", 64, 8, SlabFlags::NONE, None)
        .unwrap();
    let p = m
        .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, 0)
        .unwrap()
        .as_ptr();
    let n = m.slab_cache_node(c, 0).unwrap();
    assert!(!n.has_alien && n.total_slabs > 0, "{n:?}");
    assert!(m.slab_cache_node(c, 1).is_none());
    m.kmem_cache_free(c, p);
    assert!(m
        .kmalloc_node(64, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, 1)
        .is_none());
    m.kmem_cache_destroy(c);
    clean_log(&m);
}
