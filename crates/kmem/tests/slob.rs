//! SLOB (mm/slob.c of Linux 6.3) behind the slab interface: `slab=slob` boots it; kmalloc's
//! block header, 2-byte units and natural alignment; ksize by Linux's rules for every size;
//! kmem_cache emulation (constructor on every allocation, no merging); no /proc/slabinfo;
//! /proc/meminfo's Slab; bad frees reported with the allocator intact.

mod common;

use common::{boot_with, proc, settle};
use kmem::arch::Arch;
use kmem::slab::common::{SlabAllocatorKind, SlabFlags};
use kmem::{GfpFlags, PAGE_SIZE};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn slob() -> common::M {
    boot_with(Arch::X86_64, 64 << 20, 2, "slab=slob", 7)
}

fn meminfo_kb(m: &common::M, key: &str) -> usize {
    let s = proc(m, "/proc/meminfo");
    let l = s.lines().find(|l| l.starts_with(key)).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn slab_option_selects_slob() {
    let m = slob();
    assert_eq!(m.slab_allocator(), SlabAllocatorKind::Slob);
    assert!(!m.platform().take_captured().contains("using SLUB"));
    let m = boot_with(Arch::X86_64, 64 << 20, 2, "slab=slub", 7);
    assert_eq!(m.slab_allocator(), SlabAllocatorKind::Slub);
}

/// `ksize(kmalloc(n))` for every n up to 9 KiB: SLOB rounds to 2-byte units below
/// `PAGE_SIZE - 8` (`SLOB_UNITS(*m) * SLOB_UNIT`), and gives whole pages from there
/// (`folio_size`); kmalloc blocks are 8-aligned, power-of-two sizes naturally aligned.
#[test]
fn ksize_follows_slob_rules_for_every_size() {
    let m = slob();
    for n in 1..=9 * 1024usize {
        let p = m.kmalloc(n, K).unwrap().as_ptr();
        let want = if n < PAGE_SIZE - 8 {
            n.next_multiple_of(2)
        } else {
            PAGE_SIZE << (n.div_ceil(PAGE_SIZE)).next_power_of_two().trailing_zeros()
        };
        assert_eq!(m.ksize(p), want, "ksize(kmalloc({n}))");
        assert_eq!(p as usize % 8, 0, "kmalloc({n}) not 8-aligned");
        if n.is_power_of_two() {
            assert_eq!(
                p as usize % n.min(PAGE_SIZE),
                0,
                "kmalloc({n}) not naturally aligned"
            );
        }
        m.kfree(p);
    }
    assert_eq!(m.kmalloc_size_roundup(3), 8, "mm/slob.c: ALIGN(size, 8)");
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

#[test]
fn blocks_share_pages_and_pages_go_back_when_empty() {
    let m = slob();
    let before = settle(&m);
    let slab_before = meminfo_kb(&m, "Slab:");
    let ps: Vec<_> = (0..100)
        .map(|i| m.kmalloc(10 + i, K).unwrap().as_ptr())
        .collect();
    // 100 blocks of 18..118 bytes with 8-byte headers fit in a few pages.
    let used = before - settle(&m);
    assert!((1..=4).contains(&used), "{used} pages for 100 small blocks");
    assert!(
        meminfo_kb(&m, "Slab:") > slab_before,
        "SLOB pages count as Slab"
    );
    // Blocks are distinct and keep their contents.
    for (i, p) in ps.iter().enumerate() {
        // SAFETY: each block has 10 + i bytes.
        unsafe { std::ptr::write_bytes(*p, i as u8, 10 + i) };
    }
    for (i, p) in ps.iter().enumerate() {
        // SAFETY: block `i` is still allocated (freed below) and has 10 + i bytes, all written
        // above, so every read `p.add(j)` with j < 10 + i is inside it and initialised.
        assert!((0..10 + i).all(|j| unsafe { *p.add(j) } == i as u8));
    }
    for p in ps {
        m.kfree(p);
    }
    assert_eq!(settle(&m), before, "every page back once empty");
    assert_eq!(meminfo_kb(&m, "Slab:"), slab_before);
}

#[test]
fn no_slabinfo_under_slob() {
    let m = slob();
    let mut s = String::new();
    let e = m.proc_read("/proc/slabinfo", &mut s).unwrap_err();
    assert_eq!(e.to_string(), "No such file or directory");
    let e = m
        .proc_write("/proc/slabinfo", "kmalloc-64 1 1 1")
        .unwrap_err();
    assert_eq!(e.to_string(), "No such file or directory");
    // Under SLUB it exists, read-only.
    let m = boot_with(Arch::X86_64, 64 << 20, 2, "", 7);
    let e = m
        .proc_write("/proc/slabinfo", "kmalloc-64 1 1 1")
        .unwrap_err();
    assert_eq!(e.to_string(), "Permission denied");
    assert!(proc(&m, "/proc/slabinfo").contains(": tunables    0    0    0"));
}

static CTOR_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn ctor(p: *mut u8) {
    CTOR_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: the object has 40 bytes.
    unsafe { std::ptr::write_bytes(p, 0x5c, 40) };
}

#[test]
fn kmem_cache_emulation() {
    let m = slob();
    let c = m
        .kmem_cache_create("slob_test", 40, 0, SlabFlags::HWCACHE_ALIGN, Some(ctor))
        .unwrap();
    // Never merged: even a kmalloc-sized cache is its own.
    let d = m
        .kmem_cache_create("slob_plain", 64, 0, SlabFlags::NONE, None)
        .unwrap();
    assert_eq!(m.kmem_cache_name(d), Some("slob_plain"));
    let mut objs = Vec::new();
    for _ in 0..50 {
        let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
        assert_eq!(p as usize % 64, 0, "SLAB_HWCACHE_ALIGN: SLOB_ALIGN");
        // SAFETY: 40 bytes.
        assert_eq!(unsafe { *p.add(39) }, 0x5c);
        objs.push(p);
    }
    // The constructor runs on every allocation, also of reused memory.
    m.kmem_cache_free(c, objs.pop().unwrap());
    let n = CTOR_RUNS.load(std::sync::atomic::Ordering::Relaxed);
    objs.push(m.kmem_cache_alloc(c, K).unwrap().as_ptr());
    assert!(CTOR_RUNS.load(std::sync::atomic::Ordering::Relaxed) > n);
    let mut bulk = [std::ptr::null_mut(); 16];
    assert_eq!(m.kmem_cache_alloc_bulk(d, K, &mut bulk), 16);
    m.kmem_cache_free_bulk(d, &bulk);
    for p in objs {
        m.kmem_cache_free(c, p);
    }
    // Objects of a page or more come from the page allocator.
    let big = m
        .kmem_cache_create("slob_big", 5000, 0, SlabFlags::NONE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(big, K).unwrap().as_ptr();
    assert_eq!(p as usize % PAGE_SIZE, 0);
    m.kmem_cache_free(big, p);
    for h in [c, d, big] {
        m.kmem_cache_destroy(h);
        assert!(m.kmem_cache_name(h).is_none());
    }
    assert_eq!(m.bug_count() + m.warn_count(), 0);
    // A stale handle is reported, not used.
    assert!(m.kmem_cache_alloc(c, K).is_none());
    assert_eq!(m.warn_count(), 1);
}

#[test]
fn bad_frees_are_reported_and_change_nothing() {
    let m = slob();
    let a = m.kmalloc(100, K).unwrap().as_ptr();
    let b = m.kmalloc(100, K).unwrap().as_ptr();
    // SAFETY: 100 bytes.
    unsafe { std::ptr::write_bytes(b, 0x77, 100) };
    m.kfree(a);
    m.kfree(a); // double free
    assert_eq!(m.warn_count(), 1, "{}", m.platform().take_captured());
    m.kfree(b.wrapping_add(3)); // not a block start
    assert_eq!(m.warn_count(), 2);
    let c = m
        .kmem_cache_create("slob_bad", 32, 0, SlabFlags::NONE, None)
        .unwrap();
    let o = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, o);
    m.kmem_cache_free(c, o); // double free
    assert_eq!(m.warn_count(), 3);
    // b is intact and the heap still works.
    // SAFETY: b is live with 100 bytes.
    assert!((0..100).all(|i| unsafe { *b.add(i) } == 0x77));
    let x = m.kmalloc(100, K).unwrap().as_ptr();
    assert_ne!(x, b);
    m.kfree(x);
    m.kfree(b);
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

#[test]
fn krealloc_and_zeroing() {
    let m = slob();
    let p = m.kzalloc(300, K).unwrap().as_ptr();
    // SAFETY: 300 bytes.
    assert!((0..300).all(|i| unsafe { *p.add(i) } == 0));
    // SAFETY: 300 bytes.
    unsafe { std::ptr::write_bytes(p, 9, 300) };
    let q = m.krealloc(p, 5000, K).unwrap().as_ptr();
    // SAFETY: 5000 bytes, the first 300 copied.
    assert!((0..300).all(|i| unsafe { *q.add(i) } == 9));
    assert_eq!(m.ksize(q), 8192);
    let r = m.krealloc(q, 10, K).unwrap().as_ptr();
    assert_eq!(r, q, "shrinking keeps the block");
    m.kfree(r);
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

#[test]
fn threads_share_the_heap() {
    let m = std::sync::Arc::new(slob());
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                for i in 0..2000usize {
                    let n = 1 + (i * 37 + t * 11) % 700;
                    let p = m.kmalloc(n, K).unwrap().as_ptr();
                    // SAFETY: n bytes.
                    unsafe { std::ptr::write_bytes(p, t as u8, n) };
                    v.push((p as usize, n));
                    if i % 3 == 0 {
                        let (p, n) = v.swap_remove(i % v.len());
                        // SAFETY: a live block of n bytes.
                        assert!((0..n).all(|j| unsafe { *((p + j) as *const u8) } == t as u8));
                        m.kfree(p as *const u8);
                    }
                }
                for (p, _) in v {
                    m.kfree(p as *const u8);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

#[test]
fn gfp_dma_gets_dma_memory() {
    let m = slob();
    // Fill some Normal/DMA32 SLOB pages first, so the lists hold pages of other zones.
    let normal: Vec<_> = (0..50)
        .map(|_| m.kmalloc(64, K).unwrap().as_ptr())
        .collect();
    for _ in 0..20 {
        let p = m.kmalloc(64, K | GfpFlags::GFP_DMA).unwrap().as_ptr();
        let pa = m.virt_to_phys(kmem::VirtAddr::new(p as usize)).unwrap();
        assert!(
            pa.as_u64() < kmem::arch::MAX_DMA_ADDR,
            "GFP_DMA block at {pa:?}"
        );
        m.kfree(p);
    }
    for p in normal {
        m.kfree(p);
    }
}

/// Free pages (buddy and per-CPU lists) without `settle`'s cache walk, which takes
/// `slab_mutex` and so may not run inside a read-side section.
fn free_pages(m: &common::M) -> usize {
    m.nr_free_pages()
        + m.arch()
            .zones()
            .iter()
            .map(|z| m.pcp_pages(*z))
            .sum::<usize>()
}

/// SLAB_TYPESAFE_BY_RCU under SLOB (mm/slob.c `kmem_cache_free` → `call_rcu` →
/// `kmem_rcu_free`): an object freed inside a read-side section is neither handed out again
/// nor given back to the page allocator until the section has ended and a grace period has
/// passed; destroying the cache waits for the callbacks and leaks nothing.
#[test]
fn typesafe_by_rcu_frees_after_a_grace_period() {
    let m = slob();
    // Warm up: the first cache structure takes a SLOB block that stays (dead-list reuse).
    let warm = m
        .kmem_cache_create("slob_warm", 100, 0, SlabFlags::NONE, None)
        .unwrap();
    m.kmem_cache_destroy(warm);
    let before = settle(&m);
    let c = m
        .kmem_cache_create("slob_rcu", 100, 0, SlabFlags::TYPESAFE_BY_RCU, None)
        .unwrap();
    let big = m
        .kmem_cache_create("slob_rcu_big", 5000, 0, SlabFlags::TYPESAFE_BY_RCU, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    // SAFETY: 100 bytes.
    unsafe { std::ptr::write_bytes(p, 0xa5, 100) };
    let q = m.kmem_cache_alloc(big, K).unwrap().as_ptr();
    let st0 = m.rcu_stats();
    {
        let _r = m.rcu_read_lock();
        let held = free_pages(&m);
        m.kmem_cache_free(c, p);
        m.kmem_cache_free(big, q);
        assert!(m.rcu_stats().cbs_queued >= st0.cbs_queued + 2, "not queued");
        m.rcu_core();
        assert_eq!(m.rcu_stats().cbs_invoked, st0.cbs_invoked, "freed inside");
        assert_eq!(free_pages(&m), held, "pages freed inside the read section");
        // The object is still SLOB's to the reader: not handed out again, its bytes intact
        // (the footer sits behind the 100 bytes), its pages still allocated.
        let again: Vec<_> = (0..64)
            .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
            .collect();
        assert!(!again.contains(&p), "object reused inside the read section");
        // SAFETY: the object is not freed until the grace period ends.
        assert!((0..100).all(|i| unsafe { *p.add(i) } == 0xa5));
        for o in again {
            m.kmem_cache_free(c, o);
        }
    }
    m.rcu_barrier();
    assert_eq!(m.rcu_stats().cbs_invoked, m.rcu_stats().cbs_queued);
    // Freed now: the next allocation may take the block again.
    let r = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, r);
    m.kmem_cache_destroy(c);
    m.kmem_cache_destroy(big);
    let st = m.rcu_stats();
    assert_eq!(st.cbs_queued, st.cbs_invoked, "destroy did not wait");
    assert_eq!(settle(&m), before, "pages leaked");
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}
