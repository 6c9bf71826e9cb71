//! SLUB and kmalloc: caches, /proc/slabinfo against a 2-CPU Linux, the kmalloc family.

mod common;

use std::collections::HashMap;

use common::{boot, proc};
use kmem::arch::Arch;
use kmem::slab::common::{SlabFlags, KMALLOC_MAX_SIZE};
use kmem::{GfpFlags, ZERO_SIZE_PTR};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

/// Reads byte `i` of a block the test allocated.
fn peek(p: *mut u8, i: usize) -> u8 {
    // SAFETY: tests only pass blocks they allocated from the machine, in bounds.
    unsafe { *p.add(i) }
}

/// Fills `n` bytes of a block the test allocated.
fn fill(p: *mut u8, v: u8, n: usize) {
    // SAFETY: tests pass only blocks they allocated from the machine with at least `n` bytes, so
    // the `n` bytes written stay inside the block, which no Rust reference covers.
    unsafe { std::ptr::write_bytes(p, v, n) }
}

/// Copies `n` bytes of a block the test allocated.
fn bytes(p: *mut u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| peek(p, i)).collect()
}

/// (objsize, objperslab, pagesperslab) by cache name from a slabinfo text.
fn parse_slabinfo(s: &str) -> HashMap<String, (usize, usize, usize)> {
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| {
                (
                    f[0].to_string(),
                    (
                        f[3].parse().unwrap(),
                        f[4].parse().unwrap(),
                        f[5].parse().unwrap(),
                    ),
                )
            })
        })
        .collect()
}

#[test]
fn slabinfo_matches_linux_for_two_cpus() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let ours = proc(&m, "/proc/slabinfo");
    let reference = std::fs::read_to_string("/work/shared/reference/proc/slabinfo")
        .unwrap_or_else(|_| include_str!("data/slabinfo.ref").to_string());
    let mut lines = ours.lines();
    assert_eq!(lines.next(), Some("slabinfo - version: 2.1"));
    assert_eq!(lines.next(), reference.lines().nth(1));
    let ours = parse_slabinfo(&ours);
    let theirs = parse_slabinfo(&reference);
    let mut checked = 0;
    for (name, geo) in &theirs {
        let kmalloc = name.starts_with("kmalloc-")
            || name.starts_with("dma-kmalloc-")
            || name.starts_with("kmalloc-rcl-")
            || name.starts_with("kmalloc-cg-");
        if !kmalloc || name == "kmalloc_buckets" {
            continue;
        }
        assert_eq!(ours.get(name), Some(geo), "{name}");
        checked += 1;
    }
    assert!(checked >= 52, "checked {checked}");
    for n in [
        "kmalloc-8",
        "kmalloc-96",
        "kmalloc-192",
        "kmalloc-8k",
        "kmem_cache",
    ] {
        assert!(ours.contains_key(n), "{n}");
    }
}

#[test]
fn slabinfo_line_order_is_newest_first() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let s = proc(&m, "slabinfo");
    let names: Vec<&str> = s
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("kmalloc-cg-8k") < pos("dma-kmalloc-8k"));
    assert!(pos("kmalloc-rcl-96") < pos("kmalloc-8k"));
    assert!(pos("kmalloc-8k") < pos("kmalloc-8"));
    assert!(pos("kmalloc-192") < pos("kmalloc-96"));
    assert_eq!(*names.last().unwrap(), "kmem_cache");
}

#[test]
fn kmalloc_family_semantics() {
    kmalloc_family_on("");
}

/// The same semantics under SLOB (mm/slob.c of Linux 6.3), with its `ksize` rules.
#[test]
fn kmalloc_family_semantics_slob() {
    kmalloc_family_on("slab=slob");
}

/// The kmalloc family on a machine booted with `cmdline`. Where SLOB differs from SLUB it is
/// `ksize`: the request rounded up to 2-byte units below `PAGE_SIZE - 8`, whole pages above
/// (SLUB: the size class), and `kmalloc_size_roundup` (mm/slob.c: `ALIGN(size, 8)`).
fn kmalloc_family_on(cmdline: &str) {
    let m = common::boot_with(Arch::X86_64, 64 << 20, 2, cmdline, 42);
    let slob = cmdline == "slab=slob";
    let ks_of = |req: usize, slub: usize| {
        if !slob {
            slub
        } else if req < 4096 - 8 {
            req.next_multiple_of(2)
        } else {
            4096 << kmem::slab::common::get_order(req)
        }
    };
    let p = m.kmalloc(100, K).unwrap();
    assert_eq!(m.ksize(p.as_ptr()), ks_of(100, 128));
    assert_eq!(m.kmalloc(0, K).unwrap().as_ptr() as usize, ZERO_SIZE_PTR);
    m.kfree(std::ptr::null());
    m.kfree(ZERO_SIZE_PTR as *const u8);
    assert_eq!(m.ksize(ZERO_SIZE_PTR as *const u8), 0);
    // Size classes.
    for (req, ks) in [
        (1, 8),
        (8, 8),
        (9, 16),
        (65, 96),
        (96, 96),
        (97, 128),
        (129, 192),
        (193, 256),
        (4097, 8192),
    ] {
        let q = m.kmalloc(req, K).unwrap();
        assert_eq!(m.ksize(q.as_ptr()), ks_of(req, ks), "kmalloc({req})");
        m.kfree(q.as_ptr());
    }
    // Natural alignment of power-of-two sizes.
    for shift in 3..=13 {
        let q = m.kmalloc(1 << shift, K).unwrap();
        assert_eq!(q.as_ptr() as usize % (1 << shift), 0);
        m.kfree(q.as_ptr());
    }
    // Large kmalloc.
    let big = m.kmalloc(100_000, K).unwrap();
    assert_eq!(m.ksize(big.as_ptr()), 128 << 10);
    assert_eq!(big.as_ptr() as usize % 4096, 0);
    m.kfree(big.as_ptr());
    let before = m.warn_count();
    assert!(m.kmalloc(KMALLOC_MAX_SIZE + 1, K).is_none());
    assert_eq!(m.warn_count(), before + 1);
    let max = m.kmalloc(KMALLOC_MAX_SIZE, K).unwrap();
    m.kfree(max.as_ptr());
    // kzalloc / kcalloc.
    let z = m.kzalloc(300, K).unwrap();
    assert!((0..300).all(|i| peek(z.as_ptr(), i) == 0));
    m.kfree(z.as_ptr());
    assert!(m.kcalloc(usize::MAX / 2, 4, K).is_none());
    let c = m.kcalloc(10, 8, K).unwrap();
    assert_eq!(m.ksize(c.as_ptr()), ks_of(80, 96));
    m.kfree(c.as_ptr());
    // krealloc.
    fill(p.as_ptr(), 0x42, 100);
    // Within ksize the block stays (SLUB: 120 fits kmalloc-128; SLOB: ksize is 100).
    let same = m
        .krealloc(p.as_ptr(), if slob { 100 } else { 120 }, K)
        .unwrap();
    assert_eq!(same, p);
    let moved = m.krealloc(p.as_ptr(), 1000, K).unwrap();
    assert_ne!(moved, p);
    assert!((0..100).all(|i| peek(moved.as_ptr(), i) == 0x42));
    assert_eq!(
        m.krealloc(moved.as_ptr(), 0, K).unwrap().as_ptr() as usize,
        ZERO_SIZE_PTR
    );
    let fresh = m.krealloc(std::ptr::null_mut(), 50, K).unwrap();
    assert_eq!(m.ksize(fresh.as_ptr()), ks_of(50, 64));
    let grown = m.krealloc(fresh.as_ptr(), 20000, K).unwrap();
    assert_eq!(m.ksize(grown.as_ptr()), 32768);
    m.kfree(grown.as_ptr());
    // kmemdup / kstrdup / kfree_sensitive.
    let d = m.kmemdup(b"hello", K).unwrap();
    assert_eq!(bytes(d.as_ptr(), 5), b"hello");
    m.kfree_sensitive(d.as_ptr());
    let s = m.kstrdup("kmem", K).unwrap();
    assert_eq!(bytes(s.as_ptr(), 5), b"kmem\0");
    m.kfree(s.as_ptr());
    assert_eq!(m.kmalloc_size_roundup(65), if slob { 72 } else { 96 });
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn gfp_selects_kmalloc_type() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let name = |g: GfpFlags| {
        m.kmem_cache_name(m.kmalloc_cache(100, g).unwrap())
            .unwrap()
            .to_string()
    };
    assert_eq!(name(K), "kmalloc-128");
    assert_eq!(name(K | GfpFlags::__GFP_RECLAIMABLE), "kmalloc-rcl-128");
    assert_eq!(name(K | GfpFlags::__GFP_DMA), "dma-kmalloc-128");
    assert_eq!(name(GfpFlags::GFP_KERNEL_ACCOUNT), "kmalloc-cg-128");
    let p = m.kmalloc(64, K | GfpFlags::__GFP_DMA).unwrap();
    let pa = m
        .virt_to_phys(kmem::VirtAddr::from_ptr(p.as_ptr()))
        .unwrap();
    assert!(pa.as_u64() < 16 << 20, "dma object at {pa:?}");
    m.kfree(p.as_ptr());
}

#[test]
fn cache_lifecycle_ctor_bulk_shrink_destroy() {
    static CTOR_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn ctor(p: *mut u8) {
        CTOR_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        fill(p, 0x77, 40);
    }
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("test_ctor", 40, 0, SlabFlags::NONE, Some(ctor))
        .unwrap();
    let info = m.slab_info(c).unwrap();
    let mut objs = Vec::new();
    for _ in 0..10 {
        let o = m.kmem_cache_alloc(c, K).unwrap();
        assert_eq!(peek(o.as_ptr(), 0), 0x77);
        objs.push(o);
    }
    // The constructor ran once per object of the one slab, not per allocation.
    assert_eq!(
        CTOR_CALLS.load(std::sync::atomic::Ordering::Relaxed),
        info.objperslab as usize
    );
    for o in &objs {
        fill(o.as_ptr(), 1, 1);
        m.kmem_cache_free(c, o.as_ptr());
    }
    let o = m.kmem_cache_alloc(c, K).unwrap();
    assert_eq!(
        CTOR_CALLS.load(std::sync::atomic::Ordering::Relaxed),
        info.objperslab as usize
    );
    m.kmem_cache_free(c, o.as_ptr());
    // Bulk.
    let mut bulk = vec![std::ptr::null_mut(); 300];
    assert_eq!(m.kmem_cache_alloc_bulk(c, K, &mut bulk), 300);
    let mut set: Vec<usize> = bulk.iter().map(|p| *p as usize).collect();
    set.sort();
    set.dedup();
    assert_eq!(set.len(), 300);
    m.kmem_cache_free_bulk(c, &bulk);
    let pages_before = m.pages_in_use();
    m.kmem_cache_shrink(c);
    assert!(m.pages_in_use() <= pages_before);
    m.kmem_cache_destroy(c);
    assert!(m.slab_info(c).is_none());
    assert!(m.find_cache("test_ctor").is_none());
    // The stale handle is reported, not used.
    let w = m.warn_count();
    assert!(m.kmem_cache_alloc(c, K).is_none());
    assert_eq!(m.warn_count(), w + 1);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn merging_follows_linux_rules() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let a = m
        .kmem_cache_create("merge_a", 60, 0, SlabFlags::NONE, None)
        .unwrap();
    // Same size after alignment: aliased to kmalloc-64.
    assert_eq!(m.kmem_cache_name(a), Some("kmalloc-64"));
    let b = m
        .kmem_cache_create("merge_b", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    assert_eq!(m.kmem_cache_name(b), Some("merge_b"));
    let c = m
        .kmem_cache_create("merge_c", 64, 0, SlabFlags::RECLAIM_ACCOUNT, None)
        .unwrap();
    assert_eq!(m.kmem_cache_name(c), Some("kmalloc-rcl-64"));
    let d = m
        .kmem_cache_create("merge_d", 64, 0, SlabFlags::RED_ZONE, None)
        .unwrap();
    assert_eq!(m.kmem_cache_name(d), Some("merge_d"));
    fn ctor(_: *mut u8) {}
    let e = m
        .kmem_cache_create("merge_e", 64, 0, SlabFlags::NONE, Some(ctor))
        .unwrap();
    assert_eq!(m.kmem_cache_name(e), Some("merge_e"));
    // Destroying an alias only drops a reference.
    m.kmem_cache_destroy(a);
    assert!(m.find_cache("kmalloc-64").is_some());
}

#[test]
fn destroy_with_live_objects_reports_and_keeps_the_cache() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("leaky", 100, 0, SlabFlags::NONE, None)
        .unwrap();
    let o = m.kmem_cache_alloc(c, K).unwrap();
    m.platform().take_captured();
    m.kmem_cache_destroy(c);
    let log = m.platform().take_captured();
    assert!(
        log.contains(
            "BUG leaky (Not tainted): Objects remaining in leaky on __kmem_cache_shutdown()"
        ),
        "{log}"
    );
    assert!(log.contains("INFO: Object 0x"), "{log}");
    assert!(
        log.contains("kmem_cache_destroy leaky: Slab cache still has objects"),
        "{log}"
    );
    // Kept and usable.
    assert_eq!(m.kmem_cache_name(c), Some("leaky"));
    m.kmem_cache_free(c, o.as_ptr());
    m.kmem_cache_destroy(c);
    assert!(m.kmem_cache_name(c).is_none());
}

#[test]
fn slab_pages_are_accounted_and_returned() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("acct", 512, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let before_slab = proc(&m, "meminfo");
    let mut v = Vec::new();
    for _ in 0..1000 {
        v.push(m.kmem_cache_alloc(c, K).unwrap());
    }
    let info = m.slab_info(c).unwrap();
    assert!(info.active_objs >= 1000);
    assert!(info.num_objs >= 1000);
    assert_eq!(info.pagesperslab, 2);
    for o in v {
        m.kmem_cache_free(c, o.as_ptr());
    }
    m.kmem_cache_shrink(c);
    let info = m.slab_info(c).unwrap();
    assert!(info.num_slabs <= 2, "{info:?}");
    m.kmem_cache_destroy(c);
    assert_eq!(
        proc(&m, "meminfo")
            .lines()
            .find(|l| l.starts_with("SUnreclaim")),
        before_slab.lines().find(|l| l.starts_with("SUnreclaim"))
    );
}

#[test]
fn threads_alloc_and_free_remotely() {
    let m = std::sync::Arc::new(boot(Arch::X86_64, 256 << 20, 4));
    let c = m
        .kmem_cache_create("xthread", 48, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(64);
    let prod = {
        let m = m.clone();
        std::thread::spawn(move || {
            for round in 0..200 {
                let v: Vec<usize> = (0..500)
                    .map(|i| {
                        let p = if i % 2 == 0 {
                            m.kmem_cache_alloc(c, K).unwrap().as_ptr()
                        } else {
                            m.kmalloc(16 + (i * 7 + round) % 600, K).unwrap().as_ptr()
                        };
                        fill(p, 0xab, 1);
                        p as usize
                    })
                    .collect();
                tx.send(v).unwrap();
            }
        })
    };
    let cons = {
        let m = m.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while let Ok(v) = rx.recv() {
                for (i, p) in v.into_iter().enumerate() {
                    assert_eq!(peek(p as *mut u8, 0), 0xab);
                    if i % 2 == 0 {
                        m.kmem_cache_free(c, p as *mut u8);
                    } else {
                        m.kfree(p as *const u8);
                    }
                    n += 1;
                }
            }
            n
        })
    };
    prod.join().unwrap();
    assert_eq!(cons.join().unwrap(), 100_000);
    assert_eq!(m.bug_count(), 0);
    assert_eq!(m.validate(c), 0);
    m.check_invariants().unwrap();
}

#[test]
fn bulk_free_detached_freelists() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("bulk", 72, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    for round in 0..5u64 {
        let mut v = vec![std::ptr::null_mut(); 1000];
        assert_eq!(m.kmem_cache_alloc_bulk(c, K, &mut v), 1000);
        for p in &v {
            fill(*p, round as u8, 72);
        }
        // A deterministic shuffle, with NULLs mixed in (skipped, as in Linux).
        let mut order: Vec<usize> = (0..1000).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ round;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut shuffled: Vec<*mut u8> = order.iter().map(|&i| v[i]).collect();
        shuffled.insert(500, std::ptr::null_mut());
        // Half sorted (long same-slab runs), half shuffled.
        v.sort();
        m.kmem_cache_free_bulk(c, &v[..500]);
        let rest: Vec<*mut u8> = shuffled
            .into_iter()
            .filter(|p| p.is_null() || v[500..].contains(p))
            .collect();
        m.kmem_cache_free_bulk(c, &rest);
        assert_eq!(m.validate(c), 0);
        let info = m.slab_info(c).unwrap();
        assert!(info.active_objs <= info.num_objs);
    }
    let mut v = vec![std::ptr::null_mut(); 2000];
    assert_eq!(m.kmem_cache_alloc_bulk(c, K, &mut v), 2000);
    let mut s = v.clone();
    s.sort();
    s.dedup();
    assert_eq!(s.len(), 2000, "an object was handed out twice");
    m.kmem_cache_free_bulk(c, &v);
    m.kmem_cache_destroy(c);
    assert!(m.kmem_cache_name(c).is_none(), "objects leaked");
    assert_eq!(m.bug_count(), 0);
}

/// Linux's kmalloc size classes (mm/slab_common.c `kmalloc_info[]`, `kmalloc_index` with
/// KMALLOC_MIN_SIZE 8 and 96/192 enabled), written out independently of kmem's tables.
fn expected_class(n: usize) -> (usize, &'static str) {
    const CLASSES: [(usize, &str); 13] = [
        (8, "kmalloc-8"),
        (16, "kmalloc-16"),
        (32, "kmalloc-32"),
        (64, "kmalloc-64"),
        (96, "kmalloc-96"),
        (128, "kmalloc-128"),
        (192, "kmalloc-192"),
        (256, "kmalloc-256"),
        (512, "kmalloc-512"),
        (1024, "kmalloc-1k"),
        (2048, "kmalloc-2k"),
        (4096, "kmalloc-4k"),
        (8192, "kmalloc-8k"),
    ];
    *CLASSES.iter().find(|(c, _)| *c >= n).expect("a slab size")
}

/// Every kmalloc class boundary n-1, n, n+1: the cache chosen and `ksize`, exactly; past
/// 8 KiB the page allocator's power-of-two blocks (`kmalloc_large`), up to 4 MiB.
#[test]
fn kmalloc_class_boundaries() {
    for cmdline in ["", "slub_debug=FZPU"] {
        let m = common::boot_with(Arch::X86_64, 128 << 20, 2, cmdline, 5);
        let mut sizes = vec![1usize, 2, 7];
        for c in [
            8usize, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
        ] {
            sizes.extend([c - 1, c, c + 1]);
        }
        for n in sizes {
            let p = m.kmalloc(n, K).unwrap().as_ptr();
            if n <= 8192 {
                let (class, name) = expected_class(n);
                assert_eq!(m.ksize(p), class, "{cmdline}: kmalloc({n})");
                let c = m.kmalloc_cache(n, K).unwrap();
                assert_eq!(m.kmem_cache_name(c), Some(name), "{cmdline}: kmalloc({n})");
            } else {
                assert_eq!(
                    m.ksize(p),
                    16384,
                    "{cmdline}: kmalloc({n}) is an order-2 block"
                );
                assert!(m.kmalloc_cache(n, K).is_none());
            }
            m.kfree(p);
        }
        // The large sizes: each power of two, one less and one more.
        for order in 2..=10u32 {
            let b = 4096usize << order;
            for n in [b / 2 + 1, b - 1, b] {
                let p = m.kmalloc(n, K).unwrap().as_ptr();
                assert_eq!(m.ksize(p), b, "{cmdline}: kmalloc({n})");
                m.kfree(p);
            }
        }
        assert!(m
            .kmalloc(KMALLOC_MAX_SIZE + 1, K | GfpFlags::__GFP_NOWARN)
            .is_none());
        assert_eq!(m.bug_count(), 0);
    }
}

/// `KmemCacheArgs::min_order`: `slub_min_order=` for one cache, raising `slub_max_order` for
/// it (setup_slub_min_order); such a cache is not merged into another, and the other caches
/// keep SLUB's order.
#[test]
fn a_cache_may_ask_for_a_least_slab_order() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let plain = m
        .kmem_cache_create("plain_4368", 4368, 16, SlabFlags::NONE, None)
        .unwrap();
    let l = m.slab_layout(plain).unwrap();
    assert_eq!((l.order, l.objects), (3, 7));
    let args = kmem::KmemCacheArgs {
        align: 16,
        min_order: 4,
        ..kmem::KmemCacheArgs::default()
    };
    let big = m
        .kmem_cache_create_args("big_4368", 4368, &args, SlabFlags::NONE)
        .unwrap();
    assert_ne!(big, plain, "merged into the cache of order 3");
    let l = m.slab_layout(big).unwrap();
    assert_eq!((l.order, l.objects), (4, 15));
    let mut objs = Vec::new();
    for _ in 0..31 {
        objs.push(m.kmem_cache_alloc(big, K).unwrap());
    }
    for o in objs {
        m.kmem_cache_free(big, o.as_ptr());
    }
    m.kmem_cache_destroy(big);
    m.kmem_cache_destroy(plain);
}

/// `kmalloc_large_size`: the size of a large kmalloc block, `None` for a slab object (even
/// a page-aligned one) and for memory kmem did not hand out, with nothing reported.
#[test]
fn kmalloc_large_size_tells_large_blocks_only() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let big = m.kmalloc(40 << 10, GfpFlags::GFP_KERNEL).unwrap().as_ptr();
    assert_eq!(m.kmalloc_large_size(big), Some(64 << 10));
    assert_eq!(m.kmalloc_large_size(big), Some(m.ksize(big)));
    let page_sized = m.kmalloc(4096, GfpFlags::GFP_KERNEL).unwrap().as_ptr();
    assert_eq!(
        page_sized as usize % 4096,
        0,
        "kmalloc-4k objects are page aligned"
    );
    assert_eq!(m.kmalloc_large_size(page_sized), None);
    let small = m.kmalloc(64, GfpFlags::GFP_KERNEL).unwrap().as_ptr();
    assert_eq!(m.kmalloc_large_size(small), None);
    let local = 0u64;
    assert_eq!(
        m.kmalloc_large_size(&local as *const u64 as *const u8),
        None
    );
    assert_eq!(m.bug_count() + m.warn_count(), 0);
    for p in [big, page_sized, small] {
        m.kfree(p);
    }
}
