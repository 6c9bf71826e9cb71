//! Node-aware slab (issue 19): `kmalloc_node`, `kzalloc_node`, `kmem_cache_alloc_node`
//! (mm/slub.c `slab_alloc_node` with a node, `__kmalloc_large_node`), `__GFP_THISNODE`, and
//! 6.18's rule that only objects of the CPU's node go onto its sheaves.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::page_alloc::NUMA_NO_NODE;
use kmem::slab::common::SlabFlags;
use kmem::{GfpFlags, Order, PagePtr, SlabNodeAttr, VirtAddr};
use std::collections::HashSet;

const M: u64 = 1 << 20;

/// Two nodes of `mem / 2` each.
fn two_nodes(mem: u64, cmdline: &str) -> common::M {
    boot_two_nodes(mem, cmdline)
}

fn nid(m: &common::M, p: *const u8) -> usize {
    let page = m.virt_to_page(VirtAddr::new(p as usize)).unwrap();
    m.page_to_nid(page)
}

const SIZES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];

/// Every kmalloc size class, enough objects for several slabs, on each node; freed objects
/// come back.
fn every_size_class_on_its_node(m: &common::M) {
    for node in [1, 0] {
        for size in SIZES {
            let n = (128 * 1024 / size).clamp(64, 4096);
            let ps: Vec<*mut u8> = (0..n)
                .map(|_| {
                    m.kmalloc_node(size, GfpFlags::GFP_KERNEL, node)
                        .unwrap()
                        .as_ptr()
                })
                .collect();
            for &p in &ps {
                assert_eq!(nid(m, p), node as usize, "kmalloc_node({size}, {node})");
                // SAFETY: `p` is a live block of `size` bytes.
                unsafe { p.write_bytes(0x5a, size) };
            }
            let set: HashSet<_> = ps.iter().copied().collect();
            assert_eq!(set.len(), n);
            for &p in &ps {
                m.kfree(p);
            }
            let again: Vec<*mut u8> = (0..n)
                .map(|_| {
                    m.kmalloc_node(size, GfpFlags::GFP_KERNEL, node)
                        .unwrap()
                        .as_ptr()
                })
                .collect();
            assert!(again.iter().all(|&p| nid(m, p) == node as usize));
            let reused = again.iter().filter(|p| set.contains(p)).count();
            assert!(reused > 0, "kmalloc_node({size}, {node}) reused nothing");
            for &p in &again {
                m.kfree(p);
            }
        }
    }
}

#[test]
fn kmalloc_node_gives_each_nodes_memory() {
    let m = two_nodes(512 * M, "");
    every_size_class_on_its_node(&m);
    // Large kmalloc: alloc_pages_node.
    let p = m
        .kmalloc_node(64 << 10, GfpFlags::GFP_KERNEL, 1)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), 1);
    m.kfree(p);
    // kzalloc_node zeroes.
    let p = m
        .kzalloc_node(200, GfpFlags::GFP_KERNEL, 1)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), 1);
    // SAFETY: a live 200-byte block.
    assert!(unsafe { std::slice::from_raw_parts(p, 200) }
        .iter()
        .all(|&b| b == 0));
    m.kfree(p);
    // NUMA_NO_NODE is plain kmalloc; node 0 size 0 is ZERO_SIZE_PTR.
    let p = m
        .kmalloc_node(64, GfpFlags::GFP_KERNEL, NUMA_NO_NODE)
        .unwrap()
        .as_ptr();
    m.kfree(p);
    assert_eq!(
        m.kmalloc_node(0, GfpFlags::GFP_KERNEL, 1).unwrap().as_ptr() as usize,
        0x10
    );
    assert_lockdep_quiet(&m);
}

#[test]
fn kmalloc_node_with_slub_debug() {
    let m = two_nodes(512 * M, "slub_debug=FZPU");
    every_size_class_on_its_node(&m);
    let c = m
        .kmem_cache_create("numa_dbg", 100, 8, SlabFlags::NONE, None)
        .unwrap();
    let ps: Vec<_> = (0..200)
        .map(|i| {
            m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, i % 2)
                .unwrap()
                .as_ptr()
        })
        .collect();
    for (i, &p) in ps.iter().enumerate() {
        assert_eq!(nid(&m, p), i % 2);
    }
    for &p in &ps {
        m.kmem_cache_free(c, p);
    }
    m.kmem_cache_destroy(c);
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(!log.contains("BUG "), "{log}");
}

#[test]
fn kmem_cache_alloc_node_and_thisnode_exhaustion() {
    let m = two_nodes(256 * M, "");
    let c = m
        .kmem_cache_create("numa_test", 256, 8, SlabFlags::NONE, None)
        .unwrap();
    let ps: Vec<_> = (0..300)
        .map(|_| {
            m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, 1)
                .unwrap()
                .as_ptr()
        })
        .collect();
    assert!(ps.iter().all(|&p| nid(&m, p) == 1));
    for &p in &ps {
        m.kmem_cache_free(c, p);
    }
    m.kmem_cache_shrink(c);

    // Exhaust node 1 (no reclaim), then a cache without free objects on node 1.
    let thisnode = GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_THISNODE;
    let mut pages: Vec<PagePtr> = Vec::new();
    while let Some(pg) = m.alloc_pages_node(1, thisnode | GfpFlags::__GFP_NOWARN, Order::new(0)) {
        pages.push(pg);
    }
    assert!(pages.len() > 10_000);
    let d = m
        .kmem_cache_create("numa_empty", 512, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    assert!(m
        .kmem_cache_alloc_node(d, thisnode | GfpFlags::__GFP_NOWARN, 1)
        .is_none());
    assert!(m
        .kmalloc_node(64 << 10, thisnode | GfpFlags::__GFP_NOWARN, 1)
        .is_none());
    // Without __GFP_THISNODE the node's zonelist falls back to node 0.
    let pg = m
        .alloc_pages_node(1, GfpFlags::GFP_NOWAIT, Order::new(0))
        .expect("page fallback");
    assert_eq!(m.page_to_nid(pg), 0);
    m.__free_pages(pg, Order::new(0));
    let p = m
        .kmem_cache_alloc_node(d, GfpFlags::GFP_NOWAIT, 1)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), 0);
    m.kmem_cache_free(d, p);
    for pg in pages {
        m.__free_pages(pg, Order::new(0));
    }
    let p = m.kmem_cache_alloc_node(d, thisnode, 1).unwrap().as_ptr();
    assert_eq!(nid(&m, p), 1);
    m.kmem_cache_free(d, p);
    m.kmem_cache_destroy(d);
    m.kmem_cache_destroy(c);
    // An offline node: a warning and NULL.
    assert!(m
        .kmalloc_node(64, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, 5)
        .is_none());
}

/// A remote object freed on a CPU of node 0 does not go onto that CPU's sheaf, so plain
/// kmalloc on node 0 never gets it back (6.18 `slab_free`'s `slab_nid == numa_mem_id`).
#[test]
fn remote_frees_stay_off_the_local_sheaf() {
    let m = two_nodes(512 * M, "");
    let local = m.numa_node_id();
    let remote = 1 - local as i32;
    for _ in 0..50 {
        let p = m
            .kmalloc_node(64, GfpFlags::GFP_KERNEL, remote)
            .unwrap()
            .as_ptr();
        assert_eq!(nid(&m, p), remote as usize);
        m.kfree(p);
        let q = m.kmalloc(64, GfpFlags::GFP_KERNEL).unwrap().as_ptr();
        assert_eq!(
            nid(&m, q),
            local,
            "a remote object came back from the local sheaf"
        );
        m.kfree(q);
    }
}

/// The sized frees (`kfree_sized`, used by `KmemAlloc`'s dealloc and libkmem_malloc's sized
/// frees, and its push-only `kfree_sized_fast`) keep the same rule: a remote object freed on
/// a CPU of node 0 never goes onto that CPU's sheaf (issue 19).
#[test]
fn remote_sized_frees_stay_off_the_local_sheaf() {
    let m = two_nodes(512 * M, "");
    let local = m.numa_node_id();
    let remote = 1 - local as i32;
    let gfp = GfpFlags::GFP_KERNEL;
    for i in 0..50 {
        let p = m.kmalloc_node(64, gfp, remote).unwrap().as_ptr();
        assert_eq!(nid(&m, p), remote as usize);
        if i % 2 == 0 {
            // SAFETY: `p` came from kmalloc(64) of this machine and is freed once.
            unsafe { m.kfree_sized(p, 64, gfp) };
        // SAFETY: `p` came from kmalloc(64) of this machine and is freed once; when the fast
        // path refuses it has done nothing.
        } else if !unsafe { m.kfree_sized_fast(p, 64, gfp) } {
            // SAFETY: `p` came from kmalloc(64) of this machine; the fast path refused it, so
            // this is its one free.
            unsafe { m.kfree_sized(p, 64, gfp) };
        }
        let q = m.kmalloc(64, gfp).unwrap().as_ptr();
        assert_eq!(
            nid(&m, q),
            local,
            "a remote object came back from the local sheaf (sized free {i})"
        );
        // SAFETY: `q` came from kmalloc(64) of this machine and is freed once.
        unsafe { m.kfree_sized(q, 64, gfp) };
    }
}

#[test]
fn one_node_machine_is_unchanged() {
    let m = boot(Arch::X86_64, 256 * M, 2);
    let p = m
        .kmalloc_node(64, GfpFlags::GFP_KERNEL, 0)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), 0);
    m.kfree(p);
    let c = m
        .kmem_cache_create("one_node", 64, 8, SlabFlags::NONE, None)
        .unwrap();
    let q = m
        .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, 0)
        .unwrap()
        .as_ptr();
    m.kmem_cache_free(c, q);
    m.kmem_cache_destroy(c);
    assert!(m
        .kmalloc_node(64, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, 1)
        .is_none());
}

/// `vmalloc_node`: every page of the area on the node.
#[test]
fn vmalloc_node_takes_the_nodes_pages() {
    let m = two_nodes(512 * M, "");
    for node in [1, 0] {
        let v = m.vmalloc_node(1 << 20, node).unwrap();
        for off in (0..1 << 20).step_by(4096) {
            let pg = m
                .vmalloc_to_page(VirtAddr::new(v.as_usize() + off))
                .unwrap();
            assert_eq!(m.page_to_nid(pg), node as usize);
        }
        m.vfree(v);
    }
    let v = m.vzalloc_node(40000, 1).unwrap();
    assert!(
        // SAFETY: 40000 bytes were just allocated at `v`.
        unsafe { std::slice::from_raw_parts(v.as_ptr::<u8>(), 40000) }
            .iter()
            .all(|&b| b == 0)
    );
    m.vfree(v);
}

/// Two CPUs allocate on both nodes (and with no node) and free each other's objects: every
/// object is of the node asked for, and slabinfo's counts come back when all is freed.
#[test]
fn cross_cpu_node_allocations_and_frees() {
    let m = two_nodes(512 * M, "");
    let c = m
        .kmem_cache_create("numa_x", 96, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let (tx_a, rx_a) = std::sync::mpsc::sync_channel::<Vec<(usize, i32)>>(8);
    let (tx_b, rx_b) = std::sync::mpsc::sync_channel::<Vec<(usize, i32)>>(8);
    std::thread::scope(|s| {
        let m = &m;
        for (tx, rx, salt) in [(tx_a, rx_b, 0), (tx_b, rx_a, 1)] {
            s.spawn(move || {
                for round in 0..100 {
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
            });
        }
    });
    m.kmem_cache_shrink(c);
    m.kmem_cache_destroy(c);
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(
        !log.contains("BUG ") && !log.contains("still has objects"),
        "{log}"
    );
}

/// With the debugging hooks on (kmemleak, KFENCE sampling) node requests still get their
/// node's memory and are tracked like any kmalloc block.
#[test]
fn kmalloc_node_with_kmemleak_and_kfence() {
    let m = two_nodes(512 * M, "kmemleak=on kfence.sample_interval=1");
    let ps: Vec<_> = (0..500)
        .map(|i| {
            m.kmalloc_node(32 + i % 200, GfpFlags::GFP_KERNEL, 1)
                .unwrap()
                .as_ptr()
        })
        .collect();
    assert!(ps.iter().all(|&p| nid(&m, p) == 1));
    for p in ps {
        m.kfree(p);
    }
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(!log.contains("BUG") && !log.contains("WARNING"), "{log}");
}

/// SLAB and SLOB have no node awareness in kmem: `kmalloc_node` and `kmem_cache_alloc_node`
/// still allocate and free correctly there (any node; large kmalloc does take the node).
#[test]
fn slab_and_slob_accept_node_requests() {
    for cmdline in ["slab=slab", "slab=slob"] {
        let m = two_nodes(256 * M, cmdline);
        let c = m
            .kmem_cache_create("numa_other", 72, 8, SlabFlags::NONE, None)
            .unwrap();
        for node in [0, 1, NUMA_NO_NODE] {
            let p = m.kmalloc_node(300, GfpFlags::GFP_KERNEL, node).unwrap();
            let o = m
                .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, node)
                .unwrap();
            let big = m.kmalloc_node(40000, GfpFlags::GFP_KERNEL, node).unwrap();
            if node >= 0 {
                assert_eq!(nid(&m, big.as_ptr()), node as usize, "{cmdline}");
            }
            m.kfree(big.as_ptr());
            m.kmem_cache_free(c, o.as_ptr());
            m.kfree(p.as_ptr());
        }
        m.kmem_cache_destroy(c);
        let mut log = String::new();
        m.dmesg(&mut log, false).unwrap();
        assert!(
            !log.contains("BUG") && !log.contains("still has objects"),
            "{log}"
        );
    }
}

// ------------------------------------------------------------------ one kmem_cache_node per node

/// `/sys/kernel/slab/<cache>/<attr>` (`show_slab_objects`): the total, then ` N<nid>=<n>`;
/// the file and the call agree.
fn attr(m: &common::M, c: kmem::CacheHandle, a: &str) -> String {
    let mut s = String::new();
    m.slab_node_attr_show(c, SlabNodeAttr::from_name(a).unwrap(), &mut s)
        .unwrap();
    let name = m.kmem_cache_name(c).unwrap().to_string();
    assert_eq!(proc(m, &format!("/sys/kernel/slab/{name}/{a}")), s);
    s
}

/// The CPU's node and the other one.
fn local_remote(m: &common::M) -> (i32, i32) {
    let local = m.numa_node_id() as i32;
    (local, 1 - local)
}

/// `count` objects on `node`, by `kmem_cache_alloc_node`.
fn alloc_on(m: &common::M, c: kmem::CacheHandle, node: i32, count: usize) -> Vec<*mut u8> {
    (0..count)
        .map(|_| {
            let p = m
                .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, node)
                .unwrap()
                .as_ptr();
            assert_eq!(nid(m, p), node as usize);
            p
        })
        .collect()
}

/// Slabs of remote objects sit on the remote node's partial list, each node's counts apart;
/// a free on this CPU of the remote node's objects changes the remote node's list;
/// `kmem_cache_shrink` empties both nodes.
#[test]
fn each_node_has_its_own_partial_list() {
    let m = two_nodes(512 * M, "");
    let (local, remote) = local_remote(&m);
    let c = m
        .kmem_cache_create("kn_lists", 512, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let objs = m.slab_layout(c).unwrap().objects as usize;
    // Eight full slabs on the remote node: off every list, counted on that node only.
    let far = alloc_on(&m, c, remote, 8 * objs);
    assert_eq!(attr(&m, c, "slabs"), format!("8 N{remote}=8\n"));
    assert_eq!(attr(&m, c, "partial"), "0\n");
    // One free in each (on this CPU): full slabs freeze onto this CPU's partial list, and
    // unfreeze onto their own node's list (`__unfreeze_partials`), here at the flush.
    for k in 0..8 {
        m.kmem_cache_free(c, far[k * objs]);
    }
    m.kmem_cache_shrink(c);
    assert_eq!(attr(&m, c, "partial"), format!("8 N{remote}=8\n"));
    assert_eq!(
        attr(&m, c, "objects_partial"),
        format!("{0} N{remote}={0}\n", 8 * (objs - 1))
    );
    // Emptying one of them from this CPU: the remote node keeps min_partial (5), so the
    // slab is freed and only the remote node's counts drop.
    for &p in &far[1..objs] {
        m.kmem_cache_free(c, p);
    }
    assert_eq!(attr(&m, c, "partial"), format!("7 N{remote}=7\n"));
    assert_eq!(attr(&m, c, "slabs"), format!("7 N{remote}=7\n"));
    // Local slabs are counted apart.
    let near = alloc_on(&m, c, local, 3 * objs);
    let (n0, n1) = if local == 0 { (3, 7) } else { (7, 3) };
    let slabs = attr(&m, c, "slabs");
    assert!(
        slabs == format!("10 N0={n0} N1={n1}\n") || slabs == format!("11 N0={n0} N1={n1}\n"),
        "{slabs}"
    );
    assert_eq!(
        attr(&m, c, "total_objects"),
        format!(
            "{} N0={} N1={}\n",
            slabs.split(' ').next().unwrap().parse::<usize>().unwrap() * objs,
            slabs_of(&slabs, 0) * objs,
            slabs_of(&slabs, 1) * objs
        )
    );
    let info = m.slab_info(c).unwrap();
    assert_eq!(
        info.num_slabs,
        slabs_of(&slabs, 0) + slabs_of(&slabs, 1),
        "slabinfo sums the nodes"
    );
    // Everything freed: kmem_cache_shrink gives back every node's slabs.
    for p in near.into_iter().chain(far[objs..].iter().copied()) {
        m.kmem_cache_free(c, p);
    }
    assert!(attr(&m, c, "partial").contains(&format!("N{remote}=")));
    assert!(!m.kmem_cache_shrink(c), "slabs left after shrink");
    for a in ["slabs", "partial", "objects", "total_objects"] {
        assert_eq!(attr(&m, c, a), "0\n", "{a}");
    }
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    m.kmem_cache_destroy(c);
    assert_lockdep_quiet(&m);
}

fn slabs_of(line: &str, nid: usize) -> usize {
    let key = format!("N{nid}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&key))
        .map_or(0, |v| v.parse().unwrap())
}

/// With slub_debug every free goes straight to the slab's node list (no CPU partial
/// lists): a free on this CPU of a remote object makes its full slab partial on the remote
/// node. `validate` walks both nodes and finds a corruption on the remote one.
#[test]
fn debug_frees_and_validate_on_each_node() {
    let m = two_nodes(512 * M, "slub_debug=FZPU");
    let (local, remote) = local_remote(&m);
    let c = m
        .kmem_cache_create("kn_debug", 200, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let objs = m.slab_layout(c).unwrap().objects as usize;
    let far = alloc_on(&m, c, remote, 2 * objs);
    let near = alloc_on(&m, c, local, objs);
    assert_eq!(attr(&m, c, "partial"), "0\n");
    m.kmem_cache_free(c, far[0]);
    assert_eq!(attr(&m, c, "partial"), format!("1 N{remote}=1\n"));
    m.kmem_cache_free(c, near[0]);
    assert_eq!(attr(&m, c, "partial"), "2 N0=1 N1=1\n");
    assert_eq!(m.validate(c), 0);
    // A write past a remote object's end (its red zone) is found by validate.
    // SAFETY: the red zone right after a live object of `object_size` 200 bytes lies in the
    // same slab; slub_debug repairs it.
    unsafe { far[5].add(200).write(0x42) };
    assert!(m.validate(c) > 0, "validate missed the remote node's slab");
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(log.contains("Right Redzone overwritten"), "{log}");
    for p in far[1..].iter().chain(&near[1..]) {
        m.kmem_cache_free(c, *p);
    }
    assert!(!m.kmem_cache_shrink(c));
    m.kmem_cache_destroy(c);
}

/// `__kmem_cache_shutdown` walks every node: objects left on the remote node are reported
/// and the cache stays.
#[test]
fn destroy_reports_objects_left_on_the_remote_node() {
    let m = two_nodes(512 * M, "");
    let (_, remote) = local_remote(&m);
    let c = m
        .kmem_cache_create("kn_leak", 128, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let ps = alloc_on(&m, c, remote, 40);
    for &p in &ps[2..] {
        m.kmem_cache_free(c, p);
    }
    m.kmem_cache_destroy(c);
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(
        log.contains("Objects remaining in kn_leak on __kmem_cache_shutdown()"),
        "{log}"
    );
    assert!(log.contains("Slab cache still has objects"), "{log}");
    assert_eq!(attr(&m, c, "slabs"), format!("1 N{remote}=1\n"));
    m.kmem_cache_free(c, ps[0]);
    m.kmem_cache_free(c, ps[1]);
    m.kmem_cache_destroy(c);
    assert!(m.slab_info(c).is_none(), "destroyed");
}

/// `get_any_partial`: with no partial slab on the CPU's node, a plain allocation takes one
/// from a node holding more than `min_partial` (unless `remote_node_defrag_ratio` is 0);
/// a request for a node takes one only after that node gave no new slab, and never with
/// `__GFP_THISNODE`.
#[test]
fn get_any_partial_takes_a_remote_partial_slab() {
    let m = two_nodes(256 * M, "");
    let (local, remote) = local_remote(&m);
    let c = m
        .kmem_cache_create("kn_any", 256, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    assert_eq!(m.slab_remote_node_defrag_ratio(c), Some(100));
    assert!(m.slab_set_remote_node_defrag_ratio(c, 101).is_err());
    let file = "/sys/kernel/slab/kn_any/remote_node_defrag_ratio";
    assert_eq!(proc(&m, file), "100\n");
    assert_eq!(m.proc_mode(file), Some(0o644));
    assert_eq!(
        m.proc_write(file, "101\n").unwrap_err().to_string(),
        "Numerical result out of range"
    );
    assert_eq!(
        m.proc_write(file, "x").unwrap_err().to_string(),
        "Invalid argument"
    );
    m.proc_write(file, "37\n").unwrap();
    assert_eq!(proc(&m, file), "37\n");
    let min_partial = m.slab_layout(c).unwrap().min_partial as usize;
    let objs = m.slab_layout(c).unwrap().objects as usize;
    let slabs = min_partial + 3;
    let far = alloc_on(&m, c, remote, slabs * objs);
    for k in 0..slabs {
        m.kmem_cache_free(c, far[k * objs]);
    }
    m.kmem_cache_shrink(c);
    assert_eq!(
        attr(&m, c, "partial"),
        format!("{slabs} N{remote}={slabs}\n")
    );

    // Ratio 0: always local (a new slab on this node).
    m.slab_set_remote_node_defrag_ratio(c, 0).unwrap();
    let p = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), local as usize);
    m.kmem_cache_free(c, p);
    m.kmem_cache_shrink(c);
    assert_eq!(
        attr(&m, c, "partial"),
        format!("{slabs} N{remote}={slabs}\n")
    );

    // The default (100, i.e. 1000 of 1024): the remote node's partial slab serves.
    m.slab_set_remote_node_defrag_ratio(c, 100).unwrap();
    let p = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), remote as usize, "get_any_partial not taken");
    m.kmem_cache_free(c, p);
    m.kmem_cache_shrink(c);

    // A request for the local node: a new local slab while the node has memory.
    let p = m
        .kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, local)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), local as usize);
    m.kmem_cache_free(c, p);
    m.kmem_cache_shrink(c);
    // The local node out of pages: with __GFP_THISNODE nothing, without it the remote
    // node's partial slab (before any new slab from the zonelist).
    let thisnode = GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_THISNODE | GfpFlags::__GFP_NOWARN;
    let mut pages: Vec<PagePtr> = Vec::new();
    while let Some(pg) = m.alloc_pages_node(local, thisnode, Order::new(0)) {
        pages.push(pg);
    }
    assert!(m.kmem_cache_alloc_node(c, thisnode, local).is_none());
    let total_before = attr(&m, c, "slabs");
    let p = m
        .kmem_cache_alloc_node(c, GfpFlags::GFP_NOWAIT, local)
        .unwrap()
        .as_ptr();
    assert_eq!(nid(&m, p), remote as usize);
    assert_eq!(attr(&m, c, "slabs"), total_before, "a new slab was taken");
    m.kmem_cache_free(c, p);
    for pg in pages {
        m.__free_pages(pg, Order::new(0));
    }
    for p in far.iter().enumerate().filter(|(i, _)| i % objs != 0) {
        m.kmem_cache_free(c, *p.1);
    }
    assert!(!m.kmem_cache_shrink(c));
    m.kmem_cache_destroy(c);
}

/// One node: no per-node suffix and no `remote_node_defrag_ratio` (no `CONFIG_NUMA` there).
#[test]
fn one_node_attrs_have_no_node_suffix() {
    let m = boot(Arch::X86_64, 256 * M, 2);
    let c = m
        .kmem_cache_create("kn_one", 64, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let p = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    assert_eq!(attr(&m, c, "slabs"), "1\n");
    assert_eq!(m.slab_remote_node_defrag_ratio(c), None);
    assert_eq!(
        m.proc_mode("/sys/kernel/slab/kn_one/remote_node_defrag_ratio"),
        None
    );
    assert_eq!(m.proc_mode("/sys/kernel/slab/kn_one/partial"), Some(0o444));
    assert_eq!(m.proc_mode("/sys/kernel/slab/no_such_cache/partial"), None);
    m.kmem_cache_free(c, p);
    m.kmem_cache_destroy(c);
}

/// The block of nodes 1.. a cache gets on a NUMA machine goes back at destroy: creating and
/// destroying caches (with slabs on both nodes) leaks no page.
#[test]
fn create_destroy_gives_back_the_node_block() {
    let m = two_nodes(256 * M, "");
    let cycle = |i: usize| {
        let c = m
            .kmem_cache_create(&format!("kn_cycle{i}"), 96, 8, SlabFlags::NO_MERGE, None)
            .unwrap();
        let ps: Vec<_> = (0..100)
            .map(|k| {
                m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, k % 2)
                    .unwrap()
            })
            .collect();
        for p in ps {
            m.kmem_cache_free(c, p.as_ptr());
        }
        m.kmem_cache_destroy(c);
    };
    cycle(0);
    let before = settle(&m);
    for i in 1..50 {
        cycle(i);
    }
    assert_eq!(settle(&m), before, "pages leaked by create/destroy");
}

/// CPU hot-unplug on two nodes: threads that exit (taking their CPUs offline) after
/// allocating and freeing on both nodes leave their CPU slabs, partial slabs and sheaves
/// to the right nodes' lists (`slub_cpu_dead`), from which shrinking gives every page back.
#[test]
fn cpu_dead_flushes_to_each_node() {
    let m = std::sync::Arc::new(two_nodes(512 * M, ""));
    let c = m
        .kmem_cache_create("kn_dead", 160, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let before = settle(&m);
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                for i in 0..3000usize {
                    let node = [0, 1, NUMA_NO_NODE][(i + t) % 3];
                    let p = if i % 2 == 0 {
                        m.kmalloc_node([64usize, 192, 1000][i % 3], GfpFlags::GFP_KERNEL, node)
                    } else {
                        m.kmem_cache_alloc_node(c, GfpFlags::GFP_KERNEL, node)
                    };
                    v.push((p.unwrap().as_ptr(), i % 2));
                }
                for (p, kind) in v.into_iter().rev() {
                    if kind == 0 {
                        m.kfree(p);
                    } else {
                        m.kmem_cache_free(c, p);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(settle(&m), before, "slabs stayed with the exited CPUs");
    assert_eq!(attr(&m, c, "slabs"), "0\n");
    m.kmem_cache_destroy(c);
    assert_eq!(m.bug_count(), 0);
}
