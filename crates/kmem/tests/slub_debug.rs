//! slub_debug and bad input: lib/tests/slub_kunit.c cases (their error counts), the report
//! formats of mm/slub.c, and misuse (double free, foreign pointers, wrong cache) leaving the
//! allocator working.

mod common;

use common::M;
use kmem::arch::Arch;
use std::sync::atomic::{AtomicUsize, Ordering};

use kmem::slab::common::SlabFlags;
use kmem::slab::slub::NmiPoint;
use kmem::GfpFlags;

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn boot_cmdline(cmdline: &'static str) -> M {
    common::boot_with(Arch::X86_64, 128 << 20, 2, cmdline, 11)
}

fn poke(p: *mut u8, i: usize, v: u8) {
    // SAFETY: tests poke bytes of slab objects (and their red zones) inside machine memory.
    unsafe { *p.add(i) = v }
}

fn peek(p: *mut u8, i: usize) -> u8 {
    // SAFETY: tests peek only bytes of slab objects of their own (and their red zones), inside
    // machine memory that no Rust reference covers; a read of one byte needs no alignment.
    unsafe { *p.add(i) }
}

/// `test_kmem_cache_create`: a cache that ignores `slub_debug` (SLAB_NO_USER_FLAGS).
fn test_cache(m: &M, name: &str, size: usize, flags: SlabFlags) -> kmem::CacheHandle {
    m.kmem_cache_create(name, size, 0, flags | SlabFlags::NO_USER_FLAGS, None)
        .unwrap()
}

/// Allocation and free still work and the cache validates clean.
fn still_works(m: &M, c: kmem::CacheHandle) {
    let v: Vec<_> = (0..100)
        .map(|_| m.kmem_cache_alloc(c, K).unwrap())
        .collect();
    for p in v {
        m.kmem_cache_free(c, p.as_ptr());
    }
    assert_eq!(m.validate(c), 0);
}

// ---------------------------------------------------------------- slub_kunit.c

#[test]
fn kunit_clobber_zone() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(&m, "TestSlub_RZ_alloc", 64, SlabFlags::RED_ZONE);
    let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
    poke(p, 64, 0x12);
    assert_eq!(m.validate(s), 2);
    m.kmem_cache_free(s, p);
    m.kmem_cache_destroy(s);
}

#[test]
fn kunit_next_pointer() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(&m, "TestSlub_next_ptr_free", 64, SlabFlags::POISON);
    let off = m.slab_layout(s).unwrap().offset;
    let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
    m.kmem_cache_free(s, p);
    // SAFETY: the free pointer slot of a free object of ours.
    let tmp = unsafe { std::ptr::read(p.add(off).cast::<usize>()) };
    poke(p, off, !peek(p, off));
    // Corrupted freechain, wrong in-use count, and the fix of the count.
    assert_eq!(m.validate(s), 3);
    // SAFETY: `p + off` is the free-pointer slot of our freed object: inside its slab (off < object
    // size), word aligned, and read just above; no one allocates from the cache meanwhile, so the
    // write only restores the saved word.
    unsafe { std::ptr::write(p.add(off).cast::<usize>(), tmp) };
    // The count fixed last time is now wrong the other way.
    assert_eq!(m.validate(s), 2);
    assert_eq!(m.validate(s), 0);
    m.kmem_cache_destroy(s);
}

#[test]
fn kunit_first_word() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(&m, "TestSlub_1th_word_free", 64, SlabFlags::POISON);
    let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
    m.kmem_cache_free(s, p);
    poke(p, 0, 0x78);
    assert_eq!(m.validate(s), 2);
    m.kmem_cache_destroy(s);
}

#[test]
fn kunit_clobber_50th_byte() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(&m, "TestSlub_50th_word_free", 64, SlabFlags::POISON);
    let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
    m.kmem_cache_free(s, p);
    poke(p, 50, 0x9a);
    assert_eq!(m.validate(s), 2);
    m.kmem_cache_destroy(s);
}

#[test]
fn kunit_clobber_redzone_free() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(&m, "TestSlub_RZ_free", 64, SlabFlags::RED_ZONE);
    let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
    m.kmem_cache_free(s, p);
    poke(p, 64, 0xab);
    assert_eq!(m.validate(s), 2);
    m.kmem_cache_destroy(s);
}

// ---------------------------------------------------------------- slub_debug= and reports

#[test]
fn slub_debug_redzone_report_on_kfree() {
    let m = boot_cmdline("slub_debug=FZPU");
    assert_eq!(m.slub_debug_flags(), SlabFlags::DEBUG_DEFAULT);
    let p = m.kmalloc(64, K).unwrap().as_ptr();
    assert_eq!(p as usize % 64, 0, "kmalloc-64 stays naturally aligned");
    assert_eq!(peek(p, 64), 0xcc, "active red zone");
    m.platform().take_captured();
    poke(p, 64, 0x12);
    m.kfree(p);
    let log = m.platform().take_captured();
    assert!(
        log.contains("BUG kmalloc-64 (Not tainted): Right Redzone overwritten"),
        "{log}"
    );
    assert!(log.contains("First byte 0x12 instead of 0xcc"), "{log}");
    assert!(log.contains("INFO: Slab 0x"), "{log}");
    assert!(log.contains("INFO: Object 0x"), "{log}");
    assert!(log.contains("INFO: Allocated in "), "{log}");
    assert!(log.contains("slub_debug.rs"), "{log}");
    assert!(log.contains("Redzone  "), "{log}");
    assert!(log.contains("Object   "), "{log}");
    assert!(log.contains("cc cc cc cc"), "{log}");
    assert!(
        log.contains("FIX kmalloc-64: Restoring Right Redzone 0x"),
        "{log}"
    );
    assert!(log.contains("FIX kmalloc-64: Object at 0x"), "{log}");
    assert!(m.bug_count() >= 1);
    // The machine goes on.
    let c = m.kmalloc_cache(64, K).unwrap();
    still_works(&m, c);
    for size in [8, 100, 5000, 20000] {
        let q = m.kmalloc(size, K).unwrap();
        m.kfree(q.as_ptr());
    }
}

#[test]
fn slub_debug_per_cache_list() {
    let m = boot_cmdline("slub_debug=Z,kmalloc-128");
    let l128 = m.slab_layout(m.find_cache("kmalloc-128").unwrap()).unwrap();
    let l64 = m.slab_layout(m.find_cache("kmalloc-64").unwrap()).unwrap();
    assert!(l128.flags.contains(SlabFlags::RED_ZONE));
    assert!(!l64.flags.contains(SlabFlags::RED_ZONE));
    assert_eq!(l64.size, 64);
}

#[test]
fn use_after_free_caught_by_poison() {
    let m = boot_cmdline("slub_debug=FP");
    let c = m
        .kmem_cache_create("uaf", 100, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    assert_eq!(peek(p, 0), 0x6b);
    assert_eq!(peek(p, 99), 0xa5);
    m.platform().take_captured();
    poke(p, 10, 0x00);
    // The next allocation of that object finds the poison broken.
    let q = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let log = m.platform().take_captured();
    assert!(
        log.contains("BUG uaf (Not tainted): Poison overwritten"),
        "{log}"
    );
    assert!(log.contains("First byte 0x0 instead of 0x6b"), "{log}");
    m.kmem_cache_free(c, q);
    still_works(&m, c);
}

// ---------------------------------------------------------------- bad input

#[test]
fn double_free_with_consistency_checks() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let c = test_cache(&m, "df_checked", 64, SlabFlags::CONSISTENCY_CHECKS);
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let q = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    m.kmem_cache_free(c, q);
    m.platform().take_captured();
    let (bugs, errors, reports) = (m.bug_count(), m.slab_errors(), m.report_count());
    m.kmem_cache_free(c, p);
    let log = m.platform().take_captured();
    // The BUG (a bug and a slab error) and its FIX (a slab error): two reports.
    assert!(m.bug_count() > bugs && m.slab_errors() > errors);
    assert_eq!(m.report_count() - reports, 2);
    assert!(
        log.contains("BUG df_checked (Not tainted): Object already free"),
        "{log}"
    );
    assert!(log.contains("FIX df_checked: Object at 0x"), "{log}");
    still_works(&m, c);
    // No object is handed out twice.
    let a = m.kmem_cache_alloc(c, K).unwrap();
    let b = m.kmem_cache_alloc(c, K).unwrap();
    assert_ne!(a, b);
}

#[test]
fn double_free_without_debugging_is_caught_at_the_freelist_head() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("df_plain", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, p);
    m.platform().take_captured();
    m.kmem_cache_free(c, p);
    let log = m.platform().take_captured();
    assert!(log.contains("Object already free"), "{log}");
    assert_eq!(m.bug_count(), 1);
    // The BUG and its FIX line, each counted (what libkmem_malloc.so watches after each
    // call).
    assert_eq!(m.report_count(), 2);
    let a = m.kmem_cache_alloc(c, K).unwrap();
    let b = m.kmem_cache_alloc(c, K).unwrap();
    assert_ne!(a, b);
    m.kmem_cache_free(c, a.as_ptr());
    m.kmem_cache_free(c, b.as_ptr());
    assert_eq!(m.validate(c), 0);
}

#[test]
fn kfree_of_pointers_kmem_never_returned() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    // A host pointer: no struct page.
    let local = 0u64;
    let b = m.bug_count();
    m.kfree((&local as *const u64).cast());
    assert_eq!(m.bug_count(), b + 1);
    // A page from the page allocator.
    let page = m.__get_free_page(K).unwrap();
    let w = m.warn_count();
    m.kfree(page.as_ptr::<u8>());
    assert_eq!(m.warn_count(), w + 1);
    assert!(m.platform().captured().contains("Not a kmalloc allocation"));
    m.free_page(page);
    // The middle of a slab object.
    let p = m.kmalloc(64, K).unwrap().as_ptr();
    m.platform().take_captured();
    // SAFETY: inside the 64-byte object.
    m.kfree(unsafe { p.add(8) });
    let log = m.platform().take_captured();
    assert!(log.contains("Invalid object pointer 0x"), "{log}");
    // The middle of a large kmalloc.
    let big = m.kmalloc(50_000, K).unwrap().as_ptr();
    let w = m.warn_count();
    // SAFETY: inside the block.
    m.kfree(unsafe { big.add(4096) });
    assert_eq!(m.warn_count(), w + 1);
    m.kfree(big);
    m.kfree(p);
    let c = m.kmalloc_cache(64, K).unwrap();
    still_works(&m, c);
    m.check_invariants().unwrap();
}

#[test]
fn free_into_the_wrong_cache() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let a = m
        .kmem_cache_create("cache_a", 200, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let b = m
        .kmem_cache_create("cache_b", 200, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let p = m.kmem_cache_alloc(a, K).unwrap().as_ptr();
    m.platform().take_captured();
    m.kmem_cache_free(b, p);
    let log = m.platform().take_captured();
    assert!(
        log.contains("kmem_cache_free: Wrong slab cache. cache_b but object is from cache_a"),
        "{log}"
    );
    // Freed into cache_a, where it belongs: destroying cache_a now succeeds quietly.
    m.kmem_cache_destroy(a);
    assert!(m.kmem_cache_name(a).is_none());
    still_works(&m, b);
}

#[test]
fn redzone_write_with_consistency_checks_on_cache_free() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let c = test_cache(
        &m,
        "rz_checked",
        40,
        SlabFlags::RED_ZONE | SlabFlags::CONSISTENCY_CHECKS | SlabFlags::STORE_USER,
    );
    let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    poke(p, 40, 0x55);
    // SAFETY: the byte before the object: its left red zone.
    unsafe { *p.sub(1) = 0x66 };
    m.platform().take_captured();
    m.kmem_cache_free(c, p);
    let log = m.platform().take_captured();
    assert!(log.contains("Left Redzone overwritten"), "{log}");
    assert!(log.contains("Right Redzone overwritten"), "{log}");
    // Repaired: validation is clean, the leaked object stays allocated.
    assert_eq!(m.validate(c), 0);
    still_works(&m, c);
}

#[test]
fn kunit_kmalloc_redzone_access() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(
        &m,
        "TestSlub_RZ_kmalloc",
        32,
        SlabFlags::KMALLOC | SlabFlags::STORE_USER | SlabFlags::RED_ZONE,
    );
    // kmalloc_trace(s, GFP_KERNEL, 18): an object of the cache for an 18-byte request.
    let p = m.kmalloc_trace(s, K, 18).unwrap().as_ptr();
    assert_eq!(
        peek(p, 18),
        0xcc,
        "the slack beyond the request is red-zoned"
    );
    poke(p, 18, 0xab);
    poke(p, 19, 0xab);
    assert_eq!(m.validate(s), 2);
    m.kmem_cache_free(s, p);
    m.kmem_cache_destroy(s);
}

#[test]
fn kmalloc_slack_is_redzoned_with_zu_and_krealloc_moves_it() {
    let m = boot_cmdline("slub_debug=ZU");
    let p = m.kmalloc(40, K).unwrap().as_ptr();
    assert_eq!(m.ksize(p), 64);
    assert_eq!(peek(p, 40), 0xcc);
    // Growing in place within the object is legitimate after krealloc.
    let q = m.krealloc(p, 60, K).unwrap().as_ptr();
    assert_eq!(q, p);
    poke(q, 59, 1);
    assert_eq!(m.validate(m.kmalloc_cache(64, K).unwrap()), 0);
    // Writing past the request is caught.
    let r = m.krealloc(q, 50, K).unwrap().as_ptr();
    assert_eq!(peek(r, 50), 0xcc);
    m.platform().take_captured();
    poke(r, 52, 7);
    assert_eq!(m.validate(m.kmalloc_cache(64, K).unwrap()), 2);
    let log = m.platform().take_captured();
    assert!(log.contains("kmalloc Redzone overwritten"), "{log}");
    m.kfree(r);
}

/// mm/slub.c `__ksize` calls `skip_orig_size_check` (6.18): a caller of `ksize()` may use the
/// whole object, so its requested size becomes the object size and the kmalloc red zone no
/// longer covers the slack. krealloc reads the requested size without it (`__do_krealloc`)
/// and red-zones the slack anew; allocation hooks (kmemleak here) leave it alone.
#[test]
fn ksize_makes_the_whole_object_usable() {
    for cmdline in ["slub_debug=FZPU", "slub_debug=FZPU kmemleak=on"] {
        let m = boot_cmdline(cmdline);
        let c = m.kmalloc_cache(64, K).unwrap();
        m.platform().take_captured();
        // Without ksize(): a write past the request is caught (the hooks did not widen it).
        // ksize() of a pointer inside the object neither widens it nor writes elsewhere.
        let p = m.kmalloc(40, K).unwrap().as_ptr();
        m.ksize(p.wrapping_add(8));
        assert_eq!(m.validate(c), 0, "{cmdline}");
        poke(p, 41, 1);
        assert_eq!(m.validate(c), 2, "{cmdline}");
        let log = m.platform().take_captured();
        assert!(
            log.contains("kmalloc Redzone overwritten"),
            "{cmdline}: {log}"
        );
        m.kfree(p);
        m.platform().take_captured();
        // After ksize(): the whole object is the caller's.
        let p = m.kmalloc(40, K).unwrap().as_ptr();
        let ks = m.ksize(p);
        assert_eq!(ks, 64);
        for i in 0..ks {
            poke(p, i, 0x5a);
        }
        assert_eq!(m.validate(c), 0, "{cmdline}");
        // krealloc within the object sets the requested size again.
        let q = m.krealloc(p, 48, K).unwrap().as_ptr();
        assert_eq!(q, p);
        assert_eq!(peek(q, 50), 0xcc, "{cmdline}");
        m.kfree(q);
        let log = m.platform().take_captured();
        assert!(!log.contains("Redzone"), "{cmdline}: {log}");
    }
}

/// lib/tests/slub_kunit.c `test_krealloc_redzone_zeroing` (6.18): krealloc with __GFP_ZERO
/// zeroes from the old requested size (orig_size) when growing in place, red-zones the tail
/// when shrinking, and copies only the requested bytes when it moves the object.
#[test]
fn kunit_krealloc_redzone_zeroing() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(
        &m,
        "TestSlub_krealloc",
        64,
        SlabFlags::KMALLOC | SlabFlags::STORE_USER | SlabFlags::RED_ZONE,
    );
    let errors = m.slab_errors();
    let p = m.kmalloc_trace(s, K, 48).unwrap().as_ptr();
    (0..48).for_each(|i| poke(p, i, 0xff));
    let z = K | GfpFlags::__GFP_ZERO;
    // Shrink.
    let p = m.krealloc(p, 40, z).unwrap().as_ptr();
    for i in 40..64 {
        assert_eq!(peek(p, i), 0xcc, "shrink: byte {i}");
    }
    // Grow within the same 64-byte object.
    let p = m.krealloc(p, 56, z).unwrap().as_ptr();
    for i in 40..56 {
        assert_eq!(peek(p, i), 0, "grow in place: byte {i}");
    }
    for i in 56..64 {
        assert_eq!(peek(p, i), 0xcc, "grow in place: red zone byte {i}");
    }
    assert_eq!(m.validate(s), 0);
    assert_eq!(m.slab_errors(), errors);
    (0..56).for_each(|i| poke(p, i, 0xff));
    // Grow into a bigger 128-byte object.
    let p = m.krealloc(p, 112, z).unwrap().as_ptr();
    for i in 0..56 {
        assert_eq!(peek(p, i), 0xff, "moved: byte {i}");
    }
    for i in 56..112 {
        assert_eq!(peek(p, i), 0, "moved: byte {i}");
    }
    m.kfree(p);
    m.kmem_cache_destroy(s);
    assert_eq!(m.slab_errors(), errors);
}

/// krealloc with __GFP_ZERO of an object without orig_size tracking (no slub_debug) and of a
/// large kmalloc: the bytes from the new size to the end of the object are zeroed when it
/// stays (`__do_krealloc`'s `memset(p + new_size, 0, ks - new_size)`).
#[test]
fn krealloc_zero_without_debugging_clears_the_tail() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let z = K | GfpFlags::__GFP_ZERO;
    for (size, shrunk) in [(64usize, 40usize), (100, 97), (20000, 12000)] {
        let p = m.kmalloc(size, K).unwrap().as_ptr();
        let ks = m.ksize(p);
        (0..ks).for_each(|i| poke(p, i, 0xff));
        let q = m.krealloc(p, shrunk, z).unwrap().as_ptr();
        assert_eq!(q, p);
        assert!((0..shrunk).all(|i| peek(q, i) == 0xff));
        assert!((shrunk..ks).all(|i| peek(q, i) == 0), "{size}->{shrunk}");
        // Without __GFP_ZERO nothing is cleared.
        (0..ks).for_each(|i| poke(q, i, 0xee));
        let r = m.krealloc(q, shrunk, K).unwrap().as_ptr();
        assert!((0..ks).all(|i| peek(r, i) == 0xee));
        m.kfree(r);
    }
    assert_eq!(m.bug_count(), 0);
}

/// lib/tests/slub_kunit.c `test_leak_destroy` (6.18): destroying a cache with an object
/// still allocated counts two slab errors — the `Objects remaining` report and the
/// `Slab cache still has objects` warning (`slab_in_kunit_test()` counts it).
#[test]
fn kunit_leak_destroy() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let s = test_cache(&m, "TestSlub_leak_destroy", 64, SlabFlags::NO_MERGE);
    let errors = m.slab_errors();
    let _leak = m.kmem_cache_alloc(s, K).unwrap();
    m.kmem_cache_destroy(s);
    assert_eq!(m.slab_errors() - errors, 2);
}

/// A double free after the CPU slab was flushed: the object heads its slab's freelist, and
/// hardened SLUB's `set_freepointer` (`BUG_ON(object == fp)`) catches the second free.
/// Before the fix the freelist cycled: kmalloc handed the object out twice and validate
/// never returned.
#[test]
fn double_free_after_flush_is_caught() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("df_flushed", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let keep = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let o = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    m.kmem_cache_free(c, o);
    assert_eq!(m.validate(c), 0);
    m.platform().take_captured();
    let bugs = m.bug_count();
    m.kmem_cache_free(c, o);
    let log = m.platform().take_captured();
    assert!(
        log.contains("BUG df_flushed (Not tainted): Object already free"),
        "{log}"
    );
    assert_eq!(m.bug_count(), bugs + 1);
    let a = m.kmem_cache_alloc(c, K).unwrap();
    let b = m.kmem_cache_alloc(c, K).unwrap();
    assert_ne!(a, b, "an object handed out twice");
    m.kmem_cache_free(c, a.as_ptr());
    m.kmem_cache_free(c, b.as_ptr());
    m.kmem_cache_free(c, keep);
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_destroy(c);
    assert!(m.kmem_cache_name(c).is_none(), "destroyed cleanly");
}

/// A double free naive detection cannot see (the object is not the freelist's head) makes
/// the freelist cycle, as in Linux; every walk over it is bounded: validate reports
/// `Freelist cycle detected` (mm/slub.c `on_freelist`), clears the freelist, and returns;
/// destroy returns; the cache keeps working.
#[test]
fn freelist_cycles_are_bounded_and_reported() {
    for flush in [true, false] {
        let m = common::boot(Arch::X86_64, 64 << 20, 2);
        let c = m
            .kmem_cache_create("df_cycle", 64, 0, SlabFlags::NO_MERGE, None)
            .unwrap();
        let keep = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
        let p = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
        let q = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
        m.kmem_cache_free(c, p);
        m.kmem_cache_free(c, q);
        if flush {
            // Both on the slab's freelist, q at its head.
            assert_eq!(m.validate(c), 0);
        }
        // p is not at the head: undetectable here; p -> q -> p ...
        m.kmem_cache_free(c, p);
        m.platform().take_captured();
        assert!(m.validate(c) >= 2);
        let log = m.platform().take_captured();
        assert!(
            log.contains("Freelist cycle detected") || log.contains("Freechain corrupt"),
            "{log}"
        );
        // The cycle is gone: no object is handed out twice.
        let v: Vec<_> = (0..200)
            .map(|_| m.kmem_cache_alloc(c, K).unwrap())
            .collect();
        let mut sorted = v.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), v.len());
        for o in v {
            m.kmem_cache_free(c, o.as_ptr());
        }
        m.kmem_cache_free(c, keep);
        m.kmem_cache_destroy(c);
    }
}

/// `kmem_cache_create` with bad arguments fails with Linux's report (mm/slab_common.c
/// `__kmem_cache_create_args`: `pr_warn("%s(%s) failed with error %d")` and a stack dump),
/// not silently; the error is still returned.
#[test]
fn kmem_cache_create_failures_are_reported() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    for (name, size, align) in [("zero", 0usize, 0usize), ("align3", 64, 3), ("", 64, 0)] {
        m.platform().take_captured();
        let r = m.kmem_cache_create(name, size, align, SlabFlags::NONE, None);
        assert!(r.is_err(), "{name:?}");
        let log = m.platform().take_captured();
        assert!(
            log.contains(&format!(
                "__kmem_cache_create_args({name}) failed with error -22"
            )),
            "{name:?}: {log}"
        );
        assert!(
            log.contains("Call Trace:") || log.contains("CPU: "),
            "{log}"
        );
    }
    // Good arguments print nothing.
    m.platform().take_captured();
    let c = m
        .kmem_cache_create("fine", 64, 8, SlabFlags::NONE, None)
        .unwrap();
    assert!(!m.platform().take_captured().contains("failed with error"));
    m.kmem_cache_destroy(c);
}

/// Every byte of both red zones is checked, not only the one next to the object: the first,
/// the middle and the last byte of the left and the right red zone, for several sizes, each
/// reported once (`BUG` + `FIX`) and restored.
#[test]
fn redzones_are_checked_across_their_whole_width() {
    let m = common::boot(Arch::X86_64, 64 << 20, 2);
    for size in [8usize, 24, 40, 64, 100, 200, 1000, 3000] {
        let s = test_cache(&m, &format!("rz_width_{size}"), size, SlabFlags::RED_ZONE);
        let l = m.slab_layout(s).unwrap();
        assert!(l.red_left_pad >= 8 && l.inuse > l.object_size, "{l:?}");
        let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
        let right = l.inuse - l.object_size;
        let left = l.red_left_pad;
        // Offsets from the object's start.
        let mut spots: Vec<(isize, &str)> = vec![];
        for i in [0, right / 2, right - 1] {
            spots.push(((l.object_size + i) as isize, "Right Redzone overwritten"));
        }
        for i in [1, left / 2, left] {
            spots.push((-(i as isize), "Left Redzone overwritten"));
        }
        for (off, what) in spots {
            m.platform().take_captured();
            // SAFETY: a red zone byte of our object, inside its slab.
            unsafe { *p.offset(off) = 0x12 };
            assert_eq!(m.validate(s), 2, "size {size}, offset {off}");
            let log = m.platform().take_captured();
            assert!(log.contains(what), "size {size}, offset {off}: {log}");
            // SAFETY: the same red-zone byte written just above, at `off` from our object `p` and
            // inside its slab; `validate` restored it, and the object is still ours.
            assert_eq!(unsafe { *p.offset(off) }, 0xcc, "restored");
            assert_eq!(m.validate(s), 0);
        }
        m.kmem_cache_free(s, p);
        m.kmem_cache_destroy(s);
    }
}

// ------------------------------------------------- slub_kunit.c: the kmalloc_nolock cases

/// `NR_ITERATIONS`, `NR_OBJECTS` of slub_kunit.c.
const NR_ITERATIONS: usize = 1000;
const NR_OBJECTS: usize = 1000;
/// `sizeof(struct test_kfree_rcu_struct)`: a union of `rcu_head` and `kvfree_rcu_head`.
const TEST_KFREE_RCU_STRUCT: usize = 16;

/// `struct test_nolock_context`.
#[derive(Default)]
struct NolockCtx {
    callback_count: AtomicUsize,
    alloc_ok: AtomicUsize,
    alloc_fail: AtomicUsize,
}

/// slub_kunit.c `test_nolock`: from the interrupting context, `kmalloc_nolock` one
/// `test_kfree_rcu_struct` (with `__GFP_ACCOUNT` every other time, the `kmalloc-cg-*`
/// caches) and give it back with `kfree_rcu_nolock` or `kfree_nolock` (also when the
/// allocation failed: both take NULL).
fn test_nolock(m: &M, ctx: &NolockCtx) {
    let n = ctx.callback_count.load(Ordering::Relaxed);
    let gfp = if n & 1 != 0 {
        GfpFlags::empty
    } else {
        GfpFlags::__GFP_ACCOUNT
    };
    let objp = m
        .kmalloc_nolock(TEST_KFREE_RCU_STRUCT, gfp, -1)
        .map_or(core::ptr::null_mut(), |p| p.as_ptr());
    if objp.is_null() {
        ctx.alloc_fail.fetch_add(1, Ordering::Relaxed);
    } else {
        ctx.alloc_ok.fetch_add(1, Ordering::Relaxed);
    }
    if n & 2 != 0 {
        // SAFETY: a 16-byte kmalloc object (or NULL) with its kvfree_rcu_head at offset 0,
        // not touched again.
        unsafe { m.kfree_rcu_nolock(objp, 0) };
    } else {
        m.kfree_nolock(objp);
    }
    ctx.callback_count.fetch_add(1, Ordering::Relaxed);
}

/// slub_kunit.c `test_kmalloc_and_friends`: `iterations` (upstream: 1000) rounds of 1000 `kmalloc`s
/// (`GFP_KERNEL_ACCOUNT` on even rounds) then 1000 `kfree_rcu`s (rounds with bit 1 set) or
/// `kfree`s. `between` runs after every operation (the perf case's NMIs that land outside
/// the allocator).
fn test_kmalloc_and_friends(m: &M, iterations: usize, between: &dyn Fn(usize)) {
    let mut objects = vec![core::ptr::null_mut::<u8>(); NR_OBJECTS];
    let mut op = 0usize;
    for i in 0..iterations {
        let gfp = if i & 1 != 0 {
            GfpFlags::GFP_KERNEL
        } else {
            GfpFlags::GFP_KERNEL_ACCOUNT
        };
        for j in 0..NR_OBJECTS {
            match m.kmalloc(TEST_KFREE_RCU_STRUCT, gfp) {
                Some(p) => objects[j] = p.as_ptr(),
                None => {
                    for o in &objects[..j] {
                        m.kfree(*o);
                    }
                    return;
                }
            }
            between(op);
            op += 1;
        }
        for o in &objects {
            if i & 2 != 0 {
                // SAFETY: a live 16-byte kmalloc object with its head at offset 0.
                unsafe { m.kfree_rcu(*o, 0) };
            } else {
                m.kfree(*o);
            }
            between(op);
            op += 1;
        }
    }
}

/// Boots the machine for a nolock case and returns it with its settled free page count,
/// measured after one round of `test_nolock` of each kind (one-time lazy allocations on first
/// use are not leaks).
fn nolock_machine() -> (M, usize) {
    let m = common::boot(Arch::X86_64, 128 << 20, 2);
    let warm = NolockCtx::default();
    for _ in 0..4 {
        test_nolock(&m, &warm);
    }
    m.slub_drain_deferred();
    m.kvfree_rcu_barrier();
    m.kfree_rcu_shrink_cache();
    let free = common::settle(&m);
    (m, free)
}

/// Everything the nolock calls deferred and every kfree_rcu is done, and the free page count
/// is back to where it was.
fn nolock_settled(m: &M, free_before: usize, ctx: &NolockCtx, what: &str) {
    m.kvfree_rcu_barrier();
    m.slub_drain_deferred();
    m.kvfree_rcu_barrier();
    assert_eq!(m.nolock_deferred(), 0);
    assert_eq!(m.trylock_free_pages_count(), 0);
    // kfree_rcu keeps spare bulk pages (its page cache); give them back.
    m.kfree_rcu_shrink_cache();
    let cb = ctx.callback_count.load(Ordering::Relaxed);
    let ok = ctx.alloc_ok.load(Ordering::Relaxed);
    let fail = ctx.alloc_fail.load(Ordering::Relaxed);
    // kunit_info's line of the upstream case.
    println!("{what}: callback_count: {cb}, alloc_ok: {ok}, alloc_fail: {fail}");
    assert!(cb > 0 && ok + fail == cb, "{what}: {cb} {ok} {fail}");
    assert!(ok > 0, "{what}: no nolock allocation succeeded");
    assert_eq!(common::settle(m), free_before, "{what}: pages leaked");
}

/// slub_kunit.c `test_kmalloc_nolock_and_friends_perf`: `test_nolock` from a perf NMI
/// (100 kHz of CPU cycles) while the test runs `test_kmalloc_and_friends`; no slab error.
/// kmem has no NMIs: the "NMI" is the reentry hook at SLUB's reentry points (each is a
/// sample: the CPU is inside the allocator holding a cache's per-CPU data or list lock) plus
/// a call every 7th operation between the test's own calls (an NMI that lands outside the
/// allocator). Beyond upstream: nothing is left deferred or leaked afterwards.
#[test]
fn kunit_kmalloc_nolock_and_friends_perf() {
    let (m, free_before) = nolock_machine();
    let ctx = NolockCtx::default();
    let hook = |_: NmiPoint| test_nolock(&m, &ctx);
    // SAFETY: the hook calls only kmalloc_nolock, kfree_nolock, kfree_rcu_nolock and
    // atomic reads (nolock_deferred).
    unsafe {
        m.with_nmi_hook(&hook, || {
            test_kmalloc_and_friends(&m, NR_ITERATIONS, &|op| {
                if op.is_multiple_of(7) {
                    test_nolock(&m, &ctx);
                }
            })
        })
    };
    assert_eq!(m.slab_errors(), 0, "{}", m.platform().captured());
    nolock_settled(&m, free_before, &ctx, "HW perf events");
    common::assert_lockdep_quiet(&m);
}

/// slub_kunit.c `test_kmalloc_nolock_and_friends_kprobe`: `test_nolock` from a kprobe on
/// `slab_attach_kprobe_locked` (inside `___slab_alloc` with the CPU's `kmem_cache_cpu`
/// locked) while the test runs `test_kmalloc_and_friends`; no slab error. The nested
/// request for the locked cache is "busy" and is served from the next kmalloc bucket.
#[test]
fn kunit_kmalloc_nolock_and_friends_kprobe() {
    let (m, free_before) = nolock_machine();
    let ctx = NolockCtx::default();
    let hook = |p: NmiPoint| {
        if p == NmiPoint::SlabAttachKprobeLocked {
            test_nolock(&m, &ctx);
        }
    };
    // SAFETY: the hook calls only kmalloc_nolock, kfree_nolock, kfree_rcu_nolock and
    // atomic reads (nolock_deferred).
    unsafe {
        m.with_nmi_hook(&hook, || {
            test_kmalloc_and_friends(&m, NR_ITERATIONS, &|_| {})
        })
    };
    assert_eq!(m.slab_errors(), 0, "{}", m.platform().captured());
    nolock_settled(&m, free_before, &ctx, "kprobes");
    common::assert_lockdep_quiet(&m);
}

/// Beyond upstream: the perf case with `slub_debug=FZPU` on every cache (slub_kunit runs
/// with whatever the kernel was booted with). Debug caches have no CPU slabs: every nested
/// allocation try-locks `list_lock` (and fails inside `ListLockHeld`), every nested free is
/// deferred and later freed with the consistency checks; still no slab error, nothing left.
#[test]
fn kmalloc_nolock_and_friends_perf_with_slub_debug() {
    let m = common::boot_with(Arch::X86_64, 128 << 20, 2, "slub_debug=FZPU", 42);
    let warm = NolockCtx::default();
    test_nolock(&m, &warm);
    m.slub_drain_deferred();
    m.kvfree_rcu_barrier();
    m.kfree_rcu_shrink_cache();
    let free_before = common::settle(&m);
    let ctx = NolockCtx::default();
    // Every debug allocation and free is a reentry point: sample one in 16 (and one
    // operation in 61), over 100 rounds instead of 1000, which keeps the run short.
    let samples = AtomicUsize::new(0);
    let hook = |_: NmiPoint| {
        if samples.fetch_add(1, Ordering::Relaxed).is_multiple_of(16) {
            test_nolock(&m, &ctx);
        }
    };
    // SAFETY: the hook calls only kmalloc_nolock, kfree_nolock, kfree_rcu_nolock and
    // atomic reads (nolock_deferred).
    unsafe {
        m.with_nmi_hook(&hook, || {
            test_kmalloc_and_friends(&m, NR_ITERATIONS / 10, &|op| {
                if op.is_multiple_of(61) {
                    test_nolock(&m, &ctx);
                }
            })
        })
    };
    assert_eq!(m.slab_errors(), 0, "{}", m.platform().captured());
    assert!(
        m.nolock_deferred_total() > 0,
        "debug caches defer every nolock free"
    );
    nolock_settled(&m, free_before, &ctx, "slub_debug perf");
    common::assert_lockdep_quiet(&m);
}
