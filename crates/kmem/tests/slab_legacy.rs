//! SLAB (mm/slab.c of Linux 6.7) behind the slab interface: `slab=slab` boots it;
//! `/proc/slabinfo` with the real tunables and slabdata, writable tunables with Linux's
//! checks, ksize by SLAB's rules (smallest cache 32 bytes), kmem_cache objects with
//! constructors, the reap, SLAB's debugging reports (red zone, poison, double free), and a
//! model-based test against a reference.

mod common;

use std::collections::HashMap;

use common::{boot_with, proc, settle};
use kmem::arch::Arch;
use kmem::platform::Platform;
use kmem::slab::common::{SlabAllocatorKind, SlabFlags};
use kmem::{GfpFlags, PAGE_SIZE};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn slab(cpus: usize) -> common::M {
    boot_with(Arch::X86_64, 128 << 20, cpus, "slab=slab", 7)
}

fn slab_dbg(opts: &str) -> common::M {
    boot_with(Arch::X86_64, 128 << 20, 2, &format!("slab=slab {opts}"), 7)
}

/// The `/proc/slabinfo` line of `name`, split into words.
fn slabinfo_line(m: &common::M, name: &str) -> Vec<String> {
    let s = proc(m, "/proc/slabinfo");
    let l = s
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{s}"));
    l.split_whitespace().map(str::to_string).collect()
}

/// `(limit, batchcount, sharedfactor)` of a cache.
fn tunables(m: &common::M, name: &str) -> (u32, u32, u32) {
    let w = slabinfo_line(m, name);
    let i = w.iter().position(|x| x == "tunables").unwrap();
    (
        w[i + 1].parse().unwrap(),
        w[i + 2].parse().unwrap(),
        w[i + 3].parse().unwrap(),
    )
}

#[test]
fn slab_option_selects_slab() {
    let m = slab(2);
    assert_eq!(m.slab_allocator(), SlabAllocatorKind::Slab);
    let log = m.platform().take_captured();
    assert!(!log.contains("using SLUB"), "{log}");
    assert_eq!(m.bug_count() + m.warn_count(), 0, "{log}");
}

/// Done-when: on 2 CPUs kmalloc-64 has `120 60 8` and kmalloc-8k `8 4 0`
/// (`enable_cpucache`); on 1 CPU the shared factor is 0.
#[test]
fn slabinfo_shows_enable_cpucache_tunables() {
    let m = slab(2);
    assert_eq!(tunables(&m, "kmalloc-64"), (120, 60, 8));
    assert_eq!(tunables(&m, "kmalloc-8k"), (8, 4, 0));
    assert_eq!(tunables(&m, "kmalloc-512"), (54, 27, 8));
    assert_eq!(tunables(&m, "kmalloc-2k"), (24, 12, 8));
    assert_eq!(tunables(&m, "kmalloc-4k"), (24, 12, 8));
    let w = slabinfo_line(&m, "kmalloc-64");
    // objsize 64, 64 objects per order-0 slab (OBJFREELIST: no room lost to the freelist).
    assert_eq!((&w[3][..], &w[4][..], &w[5][..]), ("64", "64", "1"));
    let w = slabinfo_line(&m, "kmalloc-32");
    // On-slab: 4096 / (32 + 1) = 124.
    assert_eq!((&w[3][..], &w[4][..]), ("32", "124"));
    let w = slabinfo_line(&m, "kmalloc-96");
    // ARCH_KMALLOC_FLAGS = SLAB_HWCACHE_ALIGN: 96-byte objects take 128.
    assert_eq!(&w[3][..], "128");
    let w = slabinfo_line(&m, "kmalloc-8k");
    assert_eq!((&w[3][..], &w[4][..], &w[5][..]), ("8192", "1", "2"));
    let one = slab(1);
    assert_eq!(tunables(&one, "kmalloc-64"), (120, 60, 0));
    assert_eq!(tunables(&one, "kmalloc-8k"), (8, 4, 0));
}

#[test]
fn slabdata_counts_slabs_and_shared_objects() {
    let m = slab(2);
    let c = m.kmalloc_cache(64, K).unwrap();
    let before = m.slab_info(c).unwrap();
    let ps: Vec<_> = (0..1000)
        .map(|_| m.kmalloc(64, K).unwrap().as_ptr())
        .collect();
    let mid = m.slab_info(c).unwrap();
    assert!(mid.num_slabs >= before.num_slabs + 1000 / 64);
    assert!(mid.active_objs >= 1000);
    for p in &ps {
        m.kfree(*p);
    }
    let after = m.slab_info(c).unwrap();
    // Frees overflow the CPU's array (limit 120) into the shared array (8 * 60 entries).
    assert!(
        after.shared_avail > 0 && after.shared_avail <= 480,
        "{after:?}"
    );
    assert!(after.active_slabs <= after.num_slabs);
    let w = slabinfo_line(&m, "kmalloc-64");
    let i = w.iter().position(|x| x == "slabdata").unwrap();
    assert_eq!(w[i + 3].parse::<usize>().unwrap(), after.shared_avail);
}

/// Writing tunables (`slabinfo_write`): applied, with Linux's checks.
#[test]
fn writing_tunables_takes_effect() {
    let m = slab(2);
    m.proc_write("/proc/slabinfo", "kmalloc-64 240 120 8\n")
        .unwrap();
    assert_eq!(tunables(&m, "kmalloc-64"), (240, 120, 8));
    // The new array is used: 300 frees into an empty array of limit 240 leave 240 - 120 + 60
    // = 180 objects in it (with the old 120/60 it would be 120).
    m.proc_write("/proc/slabinfo", "kmalloc-64 240 120 0")
        .unwrap();
    let c = m.kmalloc_cache(64, K).unwrap();
    let ps: Vec<_> = (0..300)
        .map(|_| m.kmalloc(64, K).unwrap().as_ptr())
        .collect();
    m.kmem_cache_shrink(c);
    for p in &ps {
        m.kfree(*p);
    }
    let full = m.slab_info(c).unwrap().active_objs;
    m.kmem_cache_shrink(c);
    assert_eq!(full - m.slab_info(c).unwrap().active_objs, 180);
    m.proc_write("/proc/slabinfo", "kmalloc-64 240 120 8")
        .unwrap();
    // Out-of-range numbers are accepted and ignored, as mm/slab.c does (res = 0).
    m.proc_write("/proc/slabinfo", "kmalloc-64 10 20 8")
        .unwrap();
    m.proc_write("/proc/slabinfo", "kmalloc-64 0 0 0").unwrap();
    m.proc_write("/proc/slabinfo", "kmalloc-64 10 5 -1")
        .unwrap();
    assert_eq!(tunables(&m, "kmalloc-64"), (240, 120, 8));
    // Bad text, unknown caches, over-long writes: -EINVAL.
    for bad in [
        "kmalloc-64",
        "kmalloc-64 1 2",
        "kmalloc-64 a b c",
        "no-such-cache 1 1 1",
        &format!("kmalloc-64 1 1 1 {}", "x".repeat(200)),
    ] {
        let e = m.proc_write("/proc/slabinfo", bad).unwrap_err();
        assert!(format!("{e}").contains("Invalid argument"), "{bad}: {e}");
    }
    // A limit the allocator cannot hold: -ENOMEM, nothing changed.
    let e = m
        .proc_write("/proc/slabinfo", "kmalloc-64 2000000000 1 0")
        .unwrap_err();
    assert!(format!("{e}").contains("Cannot allocate memory"), "{e}");
    assert_eq!(tunables(&m, "kmalloc-64"), (240, 120, 8));
    // Shared 0 removes the shared array.
    m.proc_write("/proc/slabinfo", "kmalloc-64 16 8 0").unwrap();
    assert_eq!(tunables(&m, "kmalloc-64"), (16, 8, 0));
    for _ in 0..3 {
        let ps: Vec<_> = (0..100)
            .map(|_| m.kmalloc(64, K).unwrap().as_ptr())
            .collect();
        for p in &ps {
            m.kfree(*p);
        }
    }
    assert_eq!(m.slab_info(c).unwrap().shared_avail, 0);
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

/// ksize follows SLAB's rules: the object size of the kmalloc class, smallest 32 bytes,
/// 96 and 192 classes, whole pages above 8 KiB.
#[test]
fn ksize_follows_slab_rules_for_every_size() {
    let m = slab(2);
    for n in 1..=17 * 1024usize {
        let p = m.kmalloc(n, K).unwrap().as_ptr();
        let want = match n {
            0..=32 => 32,
            33..=64 => 64,
            65..=96 => 96,
            97..=128 => 128,
            129..=192 => 192,
            193..=8192 => n.next_power_of_two(),
            _ => PAGE_SIZE << n.div_ceil(PAGE_SIZE).next_power_of_two().trailing_zeros(),
        };
        assert_eq!(m.ksize(p), want, "ksize(kmalloc({n}))");
        assert_eq!(m.kmalloc_size_roundup(n), want, "kmalloc_size_roundup({n})");
        assert_eq!(p as usize % 8, 0);
        if n.is_power_of_two() {
            assert_eq!(
                p as usize % n.min(PAGE_SIZE),
                0,
                "kmalloc({n}) not naturally aligned"
            );
        }
        m.kfree(p);
    }
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

static CTOR_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn ctor(p: *mut u8) {
    CTOR_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: the constructor gets a whole object of the cache (100 bytes).
    unsafe { std::ptr::write_bytes(p, 0xab, 100) };
}

#[test]
fn kmem_cache_works_with_constructor_and_destroy() {
    let m = slab(2);
    let free0 = settle(&m);
    let c = m
        .kmem_cache_create("test_obj", 100, 0, SlabFlags::NONE, Some(ctor))
        .unwrap();
    let w = slabinfo_line(&m, "test_obj");
    // 104-byte stride, with a constructor: the freelist stays out of objects (on-slab):
    // 4096 / 105 = 39.
    assert_eq!((&w[3][..], &w[4][..]), ("104", "39"));
    assert_eq!(tunables(&m, "test_obj"), (120, 60, 8));
    let ps: Vec<_> = (0..500)
        .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
        .collect();
    for &p in &ps {
        // SAFETY: a 100-byte object of the cache.
        let o = unsafe { std::slice::from_raw_parts(p, 100) };
        assert!(o.iter().all(|&b| b == 0xab));
        assert_eq!(m.ksize(p), 100);
    }
    assert!(CTOR_RUNS.load(std::sync::atomic::Ordering::Relaxed) >= 500);
    for &p in &ps {
        m.kmem_cache_free(c, p);
    }
    let z = m.kmem_cache_zalloc(c, K).unwrap().as_ptr();
    // SAFETY: `z` is a live 100-byte object of the cache from `kmem_cache_zalloc`, freed only after
    // the slice is dropped, and written by no one meanwhile.
    assert!(unsafe { std::slice::from_raw_parts(z, 100) }
        .iter()
        .all(|&b| b == 0));
    m.kmem_cache_free(c, z);
    let mut bulk = [std::ptr::null_mut(); 16];
    assert_eq!(m.kmem_cache_alloc_bulk(c, K, &mut bulk), 16);
    m.kmem_cache_free_bulk(c, &bulk);
    m.kmem_cache_destroy(c);
    assert!(m.kmem_cache_alloc(c, K).is_none(), "stale handle refused");
    assert_eq!(m.warn_count(), 1, "the stale handle warning");
    assert!(!proc(&m, "/proc/slabinfo").contains("test_obj"));
    assert_eq!(settle(&m), free0, "every page back");
}

#[test]
fn destroy_with_objects_left_keeps_the_cache() {
    let m = slab(2);
    let c = m
        .kmem_cache_create("leaky", 256, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_destroy(c);
    assert!(m
        .platform()
        .take_captured()
        .contains("Slab cache still has objects"));
    m.kmem_cache_free(c, p);
    m.kmem_cache_destroy(c);
    assert!(!proc(&m, "/proc/slabinfo").contains("leaky"));
}

/// The reap (`cache_reap` through `slab_tick`): an untouched array gives a fifth of its
/// limit back each time.
#[test]
fn reap_drains_idle_arrays() {
    let m = slab(2);
    m.proc_write("/proc/slabinfo", "kmalloc-128 100 50 0")
        .unwrap();
    let c = m.kmalloc_cache(128, K).unwrap();
    let ps: Vec<_> = (0..100)
        .map(|_| m.kmalloc(128, K).unwrap().as_ptr())
        .collect();
    for p in &ps {
        m.kfree(*p);
    }
    let busy = m.slab_info(c).unwrap().active_objs;
    m.slab_tick(); // clears `touched`
    assert_eq!(m.slab_info(c).unwrap().active_objs, busy);
    m.slab_tick(); // gives (100 + 4) / 5 = 20 back
    let after = m.slab_info(c).unwrap().active_objs;
    assert_eq!(busy - after, 20, "{busy} -> {after}");
    for _ in 0..10 {
        m.slab_tick();
    }
    // The array is empty now: draining it changes nothing.
    let idle = m.slab_info(c).unwrap().active_objs;
    m.kmem_cache_shrink(c);
    assert_eq!(m.slab_info(c).unwrap().active_objs, idle);
    assert!(idle <= busy - 60);
}

/// A slow path of a sleeping allocation: the first allocation from a new cache refills.
fn poke(m: &common::M) {
    let c = m
        .kmem_cache_create("poke", 200, 0, SlabFlags::NONE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    m.kmem_cache_destroy(c);
}

/// The periodic reap runs by itself (no `slab_tick`): once `REAPTIMEOUT_AC` has passed on
/// this CPU's clock, the next slow path of a sleeping allocation reaps every cache, so an
/// idle kmalloc-128 array gives objects back; while time stands still it does not.
#[test]
fn reap_runs_periodically_without_slab_tick() {
    let m = slab(2);
    m.proc_write("/proc/slabinfo", "kmalloc-128 100 50 0")
        .unwrap();
    let c = m.kmalloc_cache(128, K).unwrap();
    let ps: Vec<_> = (0..100)
        .map(|_| m.kmalloc(128, K).unwrap().as_ptr())
        .collect();
    for p in &ps {
        m.kfree(*p);
    }
    let busy = m.slab_info(c).unwrap().active_objs;
    for _ in 0..3 {
        poke(&m);
    }
    assert_eq!(
        m.slab_info(c).unwrap().active_objs,
        busy,
        "reaped with no time passing"
    );
    let hz = m.platform().hz();
    // First period clears `touched`, the next ones each give (100 + 4) / 5 = 20 back.
    for _ in 0..3 {
        m.platform().advance_jiffies(2 * hz + 1);
        poke(&m);
    }
    let after = m.slab_info(c).unwrap().active_objs;
    assert!(busy - after >= 20, "{busy} -> {after}: no periodic reap");
    assert_eq!(m.bug_count() + m.warn_count(), 0);
    common::assert_lockdep_quiet(&m);
}

/// SLUB and SLOB have no periodic reap: time passing changes nothing.
#[test]
fn slub_and_slob_have_no_periodic_reap() {
    for opt in ["slab=slub", "slab=slob"] {
        let m = boot_with(Arch::X86_64, 128 << 20, 2, opt, 7);
        let ps: Vec<_> = (0..100)
            .map(|_| m.kmalloc(128, K).unwrap().as_ptr())
            .collect();
        for p in &ps {
            m.kfree(*p);
        }
        let free = m.nr_free_pages();
        m.platform().advance_jiffies(10 * m.platform().hz());
        let q = m.kmalloc(128, K).unwrap().as_ptr();
        m.kfree(q);
        assert_eq!(m.nr_free_pages(), free, "{opt}");
        assert_eq!(m.bug_count() + m.warn_count(), 0, "{opt}");
    }
}

#[test]
fn other_cpus_give_their_objects_back_when_they_die() {
    let m = std::sync::Arc::new(slab(2));
    let c = m.kmalloc_cache(256, K).unwrap();
    let before = m.slab_info(c).unwrap().active_objs;
    let m2 = m.clone();
    std::thread::spawn(move || {
        let ps: Vec<_> = (0..50)
            .map(|_| m2.kmalloc(256, K).unwrap().as_ptr() as usize)
            .collect();
        for p in ps {
            m2.kfree(p as *const u8);
        }
    })
    .join()
    .unwrap();
    assert_eq!(m.slab_info(c).unwrap().active_objs, before);
}

// ------------------------------------------------------------------ debugging

#[test]
fn double_free_is_reported_with_red_zones() {
    let m = slab_dbg("slab_debug=ZPU");
    let c = m
        .kmem_cache_create("dbg", 40, 0, SlabFlags::NONE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let q = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    m.kmem_cache_free(c, q);
    m.platform().take_captured();
    m.kmem_cache_free(c, p);
    let log = m.platform().take_captured();
    assert!(
        log.contains("slab error in verify_redzone_free(): cache `dbg': double free detected"),
        "{log}"
    );
    assert!(
        log.contains("redzone 1:0x9f911029d74e35b, redzone 2:0x9f911029d74e35b"),
        "{log}"
    );
    // The allocator is intact: p is handed out once.
    let a = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let b = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let d = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    assert!(a != b && b != d && a != d);
    for x in [a, b, d] {
        m.kmem_cache_free(c, x);
    }
    assert_eq!(m.validate(c), 0);
}

#[test]
fn red_zone_overwrite_is_reported() {
    let m = slab_dbg("slab_debug=Z");
    let c = m
        .kmem_cache_create("rz", 40, 0, SlabFlags::NONE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    // SAFETY: a deliberate write one word past the 40-byte object, into its red zone
    // (inside the stride, which is machine memory).
    unsafe { std::ptr::write_bytes(p.add(40), 0x41, 8) };
    m.platform().take_captured();
    m.kmem_cache_free(c, p);
    let log = m.platform().take_captured();
    assert!(
        log.contains("slab error in verify_redzone_free(): cache `rz': memory outside object was overwritten"),
        "{log}"
    );
    assert!(
        log.contains("redzone 1:0xd84156c5635688c0, redzone 2:0x4141414141414141"),
        "{log}"
    );
}

#[test]
fn use_after_free_is_reported_as_slab_corruption() {
    let m = slab_dbg("slab_debug=PU");
    let c = m
        .kmem_cache_create("poisoned", 64, 0, SlabFlags::NONE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    // SAFETY: a deliberate use after free of machine memory (the object is in the CPU array).
    unsafe { *p.add(20) = 0x00 };
    m.platform().take_captured();
    let q = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    assert_eq!(q, p, "LIFO: the freed object comes back first");
    let log = m.platform().take_captured();
    assert!(
        log.contains("Slab corruption (Not tainted): poisoned start="),
        "{log}"
    );
    assert!(log.contains(", len=64"), "{log}");
    assert!(log.contains("Last user: ("), "{log}");
    assert!(
        log.contains("010: 6b 6b 6b 6b 00 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b"),
        "{log}"
    );
    assert!(m.slab_errors() >= 1);
    m.kmem_cache_free(c, q);
    assert_eq!(m.validate(c), 0, "the poison was repaired");
}

#[test]
fn double_free_without_debugging_is_caught_at_the_array_top() {
    let m = slab(2);
    let p = m.kmalloc(64, K).unwrap().as_ptr();
    m.kfree(p);
    m.platform().take_captured();
    let reports = m.report_count();
    m.kfree(p);
    let log = m.platform().take_captured();
    assert!(
        log.contains("slab: double free detected in cache 'kmalloc-64'"),
        "{log}"
    );
    assert!(m.report_count() > reports, "SLAB's reports are reports");
    let a = m.kmalloc(64, K).unwrap().as_ptr();
    let b = m.kmalloc(64, K).unwrap().as_ptr();
    assert_ne!(a, b);
}

#[test]
fn bad_pointers_are_reported_and_ignored() {
    let m = slab(2);
    let p = m.kmalloc(64, K).unwrap().as_ptr();
    m.platform().take_captured();
    m.kfree(p.wrapping_add(8));
    let log = m.platform().take_captured();
    assert!(log.contains("invalid object pointer"), "{log}");
    let c = m
        .kmem_cache_create("other", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    m.kmem_cache_free(c, p);
    let log = m.platform().take_captured();
    assert!(
        log.contains("kmem_cache_free: Wrong slab cache. other but object is from kmalloc-64"),
        "{log}"
    );
    // It was freed into kmalloc-64 (its own cache): the next kmalloc(64) gets it back.
    assert_eq!(m.kmalloc(64, K).unwrap().as_ptr(), p);
}

// ------------------------------------------------------------------ model

/// Random kmalloc/kfree/kmem_cache traffic against a reference: no object is handed out
/// twice, contents are kept, and the lists' counters stay true.
#[test]
fn model_random_alloc_free_against_reference() {
    let m = slab(2);
    let c = m
        .kmem_cache_create("model", 72, 0, SlabFlags::NONE, None)
        .unwrap();
    let mut live: HashMap<usize, (usize, u8, bool)> = HashMap::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for step in 0..40_000u32 {
        let r = next();
        if r % 100 < 55 || live.is_empty() {
            let (p, size, cache) = if r.is_multiple_of(3) {
                (m.kmem_cache_alloc(c, K).unwrap().as_ptr(), 72, true)
            } else {
                let size = 1 + (next() % 3000) as usize;
                (m.kmalloc(size, K).unwrap().as_ptr(), size, false)
            };
            let tag = (step % 251) as u8;
            // SAFETY: `size` bytes of a fresh object.
            unsafe { std::ptr::write_bytes(p, tag, size) };
            for (&q, &(qs, _, _)) in &live {
                assert!(
                    p as usize + size <= q || q + qs <= p as usize,
                    "overlap at step {step}"
                );
            }
            assert!(
                live.insert(p as usize, (size, tag, cache)).is_none(),
                "handed out twice"
            );
        } else {
            let k = *live
                .keys()
                .nth((next() % live.len() as u64) as usize)
                .unwrap();
            let (size, tag, cache) = live.remove(&k).unwrap();
            // SAFETY: a live object of `size` bytes.
            let o = unsafe { std::slice::from_raw_parts(k as *const u8, size) };
            assert!(o.iter().all(|&b| b == tag), "contents lost at step {step}");
            if cache {
                m.kmem_cache_free(c, k as *mut u8);
            } else {
                m.kfree(k as *const u8);
            }
        }
        if step.is_multiple_of(5000) {
            assert_eq!(m.validate(c), 0);
        }
    }
    for (k, (_, _, cache)) in live {
        if cache {
            m.kmem_cache_free(c, k as *mut u8);
        } else {
            m.kfree(k as *const u8);
        }
    }
    assert_eq!(m.validate(c), 0);
    assert_eq!(m.bug_count() + m.warn_count(), 0);
    m.kmem_cache_destroy(c);
}

/// `validate` (kmem's `validate_slab_cache` for SLAB): the calling CPU's array is drained,
/// then every object is checked: a live object's clobbered red zone, a freed object's red
/// zone and poison. Each finding is one report, repaired.
#[test]
fn validate_finds_clobbered_red_zones_and_poison() {
    let m = slab(2);
    let f = SlabFlags::RED_ZONE | SlabFlags::NO_USER_FLAGS;
    let c = m.kmem_cache_create("v_rz", 64, 0, f, None).unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    // SAFETY: a deliberate write into the red zone after the 64-byte object (slab memory).
    unsafe { p.add(64).write_volatile(0x12) };
    m.platform().take_captured();
    assert_eq!(m.validate(c), 1);
    let log = m.platform().take_captured();
    assert!(
        log.contains(
            "slab error in validate(): cache `v_rz': memory outside object was overwritten"
        ),
        "{log}"
    );
    assert_eq!(m.validate(c), 0, "repaired");
    let e0 = m.slab_errors();
    m.kmem_cache_free(c, p);
    assert_eq!(m.slab_errors(), e0, "the repaired object frees cleanly");
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    // SAFETY: the freed object's red zone is still slab memory.
    unsafe { p.add(64).write_volatile(0xab) };
    assert_eq!(m.validate(c), 1);
    let log = m.platform().take_captured();
    assert!(
        log.contains("end of a freed object was overwritten"),
        "{log}"
    );
    m.kmem_cache_destroy(c);
    let f = SlabFlags::POISON | SlabFlags::NO_USER_FLAGS;
    let c = m.kmem_cache_create("v_poison", 64, 0, f, None).unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    // SAFETY: a deliberate use after free of slab memory.
    unsafe { p.write_volatile(0x78) };
    assert_eq!(m.validate(c), 1);
    let log = m.platform().take_captured();
    assert!(
        log.contains("Slab corruption (Tainted: G    B): v_poison start="),
        "{log}"
    );
    assert!(log.contains("000: 78 6b 6b 6b"), "{log}");
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_destroy(c);
    assert!(!proc(&m, "/proc/slabinfo").contains("v_poison"));
}

/// Two CPUs allocate, pass objects to each other through a channel and free them, while the
/// main thread retunes the caches and reads /proc/slabinfo: contents kept, nothing reported,
/// the lock validator quiet, every cache's lists and counters consistent at the end. (Pages
/// are not compared: the exited CPUs keep their per-CPU arrays, as Linux keeps the per-CPU
/// memory of an offline CPU.)
#[test]
fn two_cpus_with_cross_frees_and_concurrent_retuning() {
    use std::sync::{mpsc, Arc};
    let m = Arc::new(slab(2));
    // What boot left in kmalloc-64 (the driver core's platform bus), per-CPU arrays drained.
    settle(&m);
    let boot_objs = m
        .slab_info(m.kmalloc_cache(64, K).unwrap())
        .unwrap()
        .active_objs;
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    let a = {
        let m = m.clone();
        std::thread::spawn(move || {
            for i in 0..20_000usize {
                let size = 16 + (i * 37) % 1500;
                let p = m.kmalloc(size, K).unwrap().as_ptr();
                // SAFETY: `size` bytes of a fresh block.
                unsafe { std::ptr::write_bytes(p, (i % 251) as u8, size) };
                tx.send((p as usize, size)).unwrap();
            }
        })
    };
    let b = {
        let m = m.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            while let Ok((p, size)) = rx.recv() {
                // SAFETY: a live block of `size` bytes handed over by the other thread.
                let last = unsafe { *((p + size - 1) as *const u8) };
                assert_eq!(last, (n % 251) as u8);
                m.kfree(p as *const u8);
                n += 1;
            }
            n
        })
    };
    for i in 0..50u32 {
        let t = if i.is_multiple_of(2) {
            "kmalloc-64 60 30 4"
        } else {
            "kmalloc-64 120 60 8"
        };
        m.proc_write("/proc/slabinfo", t).unwrap();
        m.proc_write("/proc/slabinfo", "kmalloc-1k 20 10 2")
            .unwrap();
        let _ = proc(&m, "/proc/slabinfo");
        m.slab_tick();
    }
    a.join().unwrap();
    assert_eq!(b.join().unwrap(), 20_000);
    assert_eq!(
        m.bug_count() + m.warn_count(),
        0,
        "{}",
        m.platform().take_captured()
    );
    settle(&m);
    let mut caches = Vec::new();
    m.for_each_cache(&mut |c, _| caches.push(c));
    for c in caches {
        assert_eq!(m.validate(c), 0);
    }
    // Every object the threads used is back: kmalloc-64 holds what boot put there and no
    // per-CPU arrays of other caches (arrays are 16 + 8 * limit bytes, at least 24, and
    // none of them is 64 bytes).
    let c = m.kmalloc_cache(64, K).unwrap();
    assert_eq!(m.slab_info(c).unwrap().active_objs, boot_objs);
}

/// SLAB_TYPESAFE_BY_RCU (mm/slab.c `slab_destroy` → `call_rcu` → `kmem_rcu_free`): a
/// destroyed slab's pages go back only after a grace period; destroying the cache waits.
///
/// The sequence runs twice and the second run is measured: a hosted thread whose CPU slot is
/// not one of the machine's boot CPUs gets SLAB's per-CPU arrays on first use (the kmalloc
/// caches' too, which stay), so the first run may leave such arrays behind legitimately —
/// under valgrind, with tests interleaved, the test thread's slot is often such a one.
#[test]
fn typesafe_by_rcu_slabs_wait_for_a_grace_period() {
    let m = slab(2);
    let run = |m: &common::M| {
        let c = m
            .kmem_cache_create("rcu_typesafe", 512, 0, SlabFlags::TYPESAFE_BY_RCU, None)
            .unwrap();
        let objs: Vec<_> = (0..200)
            .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
            .collect();
        let st0 = m.rcu_stats();
        for &p in &objs {
            m.kmem_cache_free(c, p);
        }
        m.kmem_cache_shrink(c);
        assert!(
            m.rcu_stats().cbs_queued > st0.cbs_queued,
            "no slab was handed to RCU"
        );
        m.kmem_cache_destroy(c);
        let st = m.rcu_stats();
        assert_eq!(st.cbs_queued, st.cbs_invoked, "destroy did not wait");
    };
    run(&m);
    let before = settle(&m);
    run(&m);
    assert_eq!(settle(&m), before, "pages leaked");
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

/// A cache's alignment holds for every object of every slab (on-slab freelists are
/// `ALIGN(num * sizeof(freelist_idx_t), align)` bytes, mm/slab.c `calculate_slab_order`).
#[test]
fn objects_keep_the_cache_alignment() {
    let m = slab(2);
    for size in (16..=1024).step_by(16) {
        let c = m
            .kmem_cache_create(&format!("align16-{size}"), size, 16, SlabFlags::NONE, None)
            .unwrap();
        let ps: Vec<_> = (0..300)
            .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
            .collect();
        for &p in &ps {
            assert_eq!(p as usize % 16, 0, "size {size}: {p:p}");
        }
        for p in ps {
            m.kmem_cache_free(c, p);
        }
        m.kmem_cache_destroy(c);
    }
}

/// kmalloc of a power of two is naturally aligned (mm/slab_common.c `create_boot_cache`:
/// `align = max(align, size)` for power-of-two sizes, since Linux 5.4).
#[test]
fn kmalloc_power_of_two_is_naturally_aligned() {
    let m = slab(2);
    for shift in 5..=13 {
        let n = 1usize << shift;
        let ps: Vec<_> = (0..40).map(|_| m.kmalloc(n, K).unwrap().as_ptr()).collect();
        for &p in &ps {
            assert_eq!(p as usize % n.min(PAGE_SIZE), 0, "kmalloc({n}) = {p:p}");
        }
        for p in ps {
            m.kfree(p);
        }
    }
}

/// A cache merged into an existing one (`__kmem_cache_alias`) raises its object size, so
/// `ksize` and `krealloc` cover the alias's whole objects: before, a 128-byte cache merged
/// into a cache whose objects were 96 bytes (stride 128) reported ksize 96 and krealloc
/// copied only 96 bytes (python3 under `KMEM_MALLOC_SLAB=slab` crashed on it).
#[test]
fn merged_cache_objects_keep_every_byte_through_krealloc() {
    let m = slab(2);
    for size in (16..=256).step_by(8) {
        let name = format!("alias_probe_{size}");
        let c = m
            .kmem_cache_create(&name, size, 8, SlabFlags::NONE, None)
            .unwrap();
        let p = m
            .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
            .unwrap()
            .as_ptr();
        assert!(
            m.ksize(p) >= size,
            "ksize {} < object size {size}",
            m.ksize(p)
        );
        // SAFETY: a live object of at least `size` bytes.
        unsafe { core::ptr::write_bytes(p, 0x5a, size) };
        let q = m
            .krealloc(p, 4 * size + 100, GfpFlags::GFP_KERNEL)
            .unwrap()
            .as_ptr();
        // SAFETY: krealloc kept (at least) the old `size` bytes.
        let kept = unsafe { core::slice::from_raw_parts(q, size) };
        assert!(
            kept.iter().all(|&b| b == 0x5a),
            "krealloc lost bytes of a {size}-byte object"
        );
        m.kfree(q);
        m.kmem_cache_destroy(c);
    }
}
