//! SLUB and the kmalloc family on the kernel's real memory: kmalloc edge cases (sizes 0, 1, the
//! cache boundary, `KMALLOC_MAX_SIZE`, beyond), alignment, `krealloc`, GFP_DMA placement, a
//! `kmem_cache` with a constructor, and slub_debug catching corruption — the red-zone and poison
//! cases of lib/tests/slub_kunit.c with its expected error counts.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use kmem::arch::MAX_DMA_ADDR;
use kmem::platform::Platform;
use kmem::slab::common::{
    SlabAllocatorKind, SlabFlags, KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE, ZERO_SIZE_PTR,
};
use kmem::{GfpFlags, VirtAddr};

use super::{settle, KernelCtx};
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, println, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    kmalloc_zero_and_null,
    kmalloc_every_small_size,
    kmalloc_large_and_limits,
    krealloc_keeps_contents,
    kmalloc_gfp_dma_is_low,
    kmem_cache_with_constructor,
    slub_debug_catches_redzone_overwrite,
    slub_debug_catches_redzone_overwrite_after_free,
    slub_debug_catches_use_after_free_poison,
    kmalloc_returns_all_memory,
];

const GFP: GfpFlags = GfpFlags::GFP_KERNEL;

/// Whether the kernel booted SLOB (`slab=slob`): mm/slob.c's rules replace SLUB's where they
/// differ (ksize in 2-byte units, 8-byte alignment, constructor on every allocation, no
/// debugging).
fn slob(mm: &Kmem) -> bool {
    mm.slab_allocator() == SlabAllocatorKind::Slob
}

/// SLOB's `ksize(kmalloc(size))`: the size in 2-byte units below `PAGE_SIZE - 8`, then the
/// page block.
fn slob_ksize(size: usize) -> usize {
    if size < kmem::PAGE_SIZE - 8 {
        size.next_multiple_of(2)
    } else {
        kmem::PAGE_SIZE << kmem::slab::common::get_order(size)
    }
}

fn kmalloc_zero_and_null(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let warns = mm.warn_count();
    let z = mm.kmalloc(0, GFP);
    check_eq!(z.map(|p| p.as_ptr() as usize), Some(ZERO_SIZE_PTR));
    check_eq!(mm.ksize(ZERO_SIZE_PTR as *const u8), 0);
    // kfree of NULL and of ZERO_SIZE_PTR do nothing, silently.
    mm.kfree(core::ptr::null());
    mm.kfree(ZERO_SIZE_PTR as *const u8);
    check_eq!(mm.warn_count(), warns);
    let one = mm.kmalloc(1, GFP).expect("kmalloc(1)");
    // The smallest kmalloc block: 2 bytes (one SLOB unit) with SLOB, 8 with SLUB, 32 with
    // SLAB.
    let smallest = if mm.is_kfence_address(one.as_ptr()) {
        1 // a KFENCE object has the size asked for (kfence_ksize)
    } else if slob(mm) {
        2
    } else if mm.slab_allocator() == SlabAllocatorKind::Slab {
        32
    } else {
        8
    };
    check_eq!(mm.ksize(one.as_ptr()), smallest);
    mm.kfree(one.as_ptr());
    Ok(())
}

/// The largest power of two dividing `n` (`n > 0`).
fn pow2_divisor(n: usize) -> usize {
    1 << n.trailing_zeros()
}

fn kmalloc_every_small_size(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let bugs = mm.bug_count();
    for size in (1..=KMALLOC_MAX_CACHE_SIZE)
        .step_by(7)
        .chain([96, 192, 4096, 8192])
    {
        let p = mm.kmalloc(size, GFP);
        check!(p.is_some(), "kmalloc({size}) failed");
        let p = p.expect("checked").as_ptr();
        let ks = mm.ksize(p);
        let want_ks = if slob(mm) {
            slob_ksize(size)
        } else if mm.is_kfence_address(p) {
            // A KFENCE object (kfence.sample_interval=): its size is what was asked for
            // (`kfence_ksize`).
            size
        } else {
            mm.kmalloc_size_roundup(size)
        };
        check!(
            ks >= size && ks == want_ks,
            "ksize {ks} for kmalloc({size})"
        );
        // include/linux/slab.h: at least 8-byte aligned; power-of-two sizes aligned to the
        // size; others to the largest power of two dividing the size (SLOB: only 8, and
        // natural alignment for powers of two).
        let want = if slob(mm) && !size.is_power_of_two() {
            8
        } else {
            pow2_divisor(size).max(8)
        };
        check!(
            (p as usize).is_multiple_of(want),
            "kmalloc({size}) = {p:p} not aligned to {want}"
        );
        // The whole ksize() is usable once ksize() was asked: 6.18's `__ksize` makes the
        // object's requested size (`orig_size`) its object size (mm/slub.c
        // `skip_orig_size_check`), so slub_debug=FZPU's kmalloc red zone reports nothing.
        // SAFETY: the object has `ks` bytes.
        unsafe { core::ptr::write_bytes(p, 0x5a, ks) };
        mm.kfree(p);
    }
    check_eq!(mm.bug_count(), bugs);
    let z = mm.kzalloc(3000, GFP).expect("kzalloc").as_ptr();
    // SAFETY: 3000 bytes were allocated.
    let zeroed = unsafe { core::slice::from_raw_parts(z, 3000) }
        .iter()
        .all(|&b| b == 0);
    mm.kfree(z);
    check!(zeroed, "kzalloc memory not zeroed");
    Ok(())
}

fn kmalloc_large_and_limits(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    // Just above the caches: a compound page block of order 2 (16 KiB).
    let p = mm
        .kmalloc(KMALLOC_MAX_CACHE_SIZE + 1, GFP)
        .expect("kmalloc(8K + 1)")
        .as_ptr();
    check_eq!(mm.ksize(p), 16 * 1024);
    check_eq!(p as usize % (16 * 1024), 0);
    mm.kfree(p);
    // The largest kmalloc: one order-10 block.
    let p = mm.kmalloc(KMALLOC_MAX_SIZE, GFP);
    check!(p.is_some(), "kmalloc(KMALLOC_MAX_SIZE) failed");
    let p = p.expect("checked").as_ptr();
    check_eq!(mm.ksize(p), KMALLOC_MAX_SIZE);
    // SAFETY: the block has KMALLOC_MAX_SIZE bytes; touch its first and last byte.
    unsafe {
        p.write_volatile(1);
        p.add(KMALLOC_MAX_SIZE - 1).write_volatile(2);
    }
    mm.kfree(p);
    // Beyond: fails (quietly with __GFP_NOWARN, with a warning without it).
    let warns = mm.warn_count();
    check!(mm
        .kmalloc(KMALLOC_MAX_SIZE + 1, GFP | GfpFlags::__GFP_NOWARN)
        .is_none());
    check_eq!(mm.warn_count(), warns);
    check!(
        mm.kmalloc_array(usize::MAX / 2, 4, GFP | GfpFlags::__GFP_NOWARN)
            .is_none(),
        "overflow not caught"
    );
    Ok(())
}

fn krealloc_keeps_contents(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let mut p = mm.kmalloc(10, GFP).expect("kmalloc(10)").as_ptr();
    let mut len = 10;
    // SAFETY: `p` has `len` bytes.
    unsafe { core::ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10) };
    for new in [16, 100, 1000, 9000, 70_000, 50] {
        let q = mm.krealloc(p, new, GFP);
        check!(q.is_some(), "krealloc to {new} failed");
        p = q.expect("checked").as_ptr();
        check!(mm.ksize(p) >= new);
        // SAFETY: the object keeps at least the first min(len, new) bytes.
        let head = unsafe { core::slice::from_raw_parts(p, 10.min(new)) };
        check!(
            head == &b"0123456789"[..10.min(new)],
            "contents lost growing {len} -> {new}"
        );
        len = new;
    }
    mm.kfree(p);
    Ok(())
}

fn kmalloc_gfp_dma_is_low(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    for size in [64, 1000, 20_000] {
        let p = mm.kmalloc(size, GFP | GfpFlags::GFP_DMA);
        check!(p.is_some(), "kmalloc({size}, GFP_DMA) failed");
        let p = p.expect("checked").as_ptr();
        let pa = mm.virt_to_phys(VirtAddr::from_ptr(p));
        mm.kfree(p);
        check!(
            pa.is_some_and(|pa| pa.as_u64() < MAX_DMA_ADDR),
            "GFP_DMA object at {pa:?}"
        );
    }
    if let Some(c) = mm.kmalloc_cache(64, GfpFlags::GFP_DMA) {
        check_eq!(mm.kmem_cache_name(c), Some("dma-kmalloc-64"));
    }
    Ok(())
}

static CTOR_CALLS: AtomicUsize = AtomicUsize::new(0);
const CTOR_PATTERN: u64 = 0xc0ff_ee00_0bad_cafe;

/// The constructor: runs once per object when its slab is created (not on every allocation).
fn ctor(p: *mut u8) {
    CTOR_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: SLUB passes an object of the cache (>= 8 bytes, 8-aligned).
    unsafe { p.cast::<u64>().write(CTOR_PATTERN) };
}

fn kmem_cache_with_constructor(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    // kmem keeps a destroyed cache's `struct kmem_cache` for the next kmem_cache_create (so a
    // stale handle is detected instead of touching freed memory). Create and destroy one
    // cache first so that the kept structure exists before the baseline is taken; then the
    // cache under test must give back every page it took.
    let warm = mm.kmem_cache_create("baremetal_warmup", 200, 0, SlabFlags::NONE, None);
    check!(warm.is_ok(), "kmem_cache_create failed: {:?}", warm.err());
    mm.kmem_cache_destroy(warm.expect("checked"));
    let free0 = settle(mm);
    let c = mm.kmem_cache_create("baremetal_ctor", 200, 0, SlabFlags::NONE, Some(ctor));
    check!(c.is_ok(), "kmem_cache_create failed: {:?}", c.err());
    let c = c.expect("checked");
    let calls0 = CTOR_CALLS.load(Ordering::Relaxed);
    let mut objs = [core::ptr::null_mut::<u8>(); 100];
    for o in objs.iter_mut() {
        *o = mm
            .kmem_cache_alloc(c, GFP)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr());
    }
    check!(objs.iter().all(|p| !p.is_null()), "kmem_cache_alloc failed");
    for &o in &objs {
        // SAFETY: a live object of the cache.
        check_eq!(unsafe { o.cast::<u64>().read() }, CTOR_PATTERN);
    }
    let calls = CTOR_CALLS.load(Ordering::Relaxed) - calls0;
    if slob(mm) {
        return slob_ctor_rest(mm, c, &mut objs, calls, calls0, free0);
    }
    // Constructed once per object of every slab created (mm/slub.c `setup_object` in
    // `allocate_slab`): exactly num_objs, which covers the 100 objects handed out.
    let info = mm.slab_info(c);
    check!(info.is_some(), "no slabinfo for the cache");
    let info = info.expect("checked");
    // With kfence.sample_interval=, KFENCE may serve some: each is constructed once when it
    // is handed out (`kfence_guarded_alloc`), outside any slab.
    let kfence = objs.iter().filter(|&&o| mm.is_kfence_address(o)).count();
    check_eq!(calls - kfence, info.num_objs);
    check!(
        calls >= 100 && info.num_slabs * info.objperslab as usize == info.num_objs,
        "constructor ran {calls} times for 100 objects ({} slabs of {})",
        info.num_slabs,
        info.objperslab
    );
    // An object freed and allocated again is not constructed again (its state is kept).
    // SAFETY: objs[0] is live; we change its first word before freeing it.
    unsafe { objs[0].cast::<u64>().write(42) };
    mm.kmem_cache_free(c, objs[0]);
    let again = mm
        .kmem_cache_alloc(c, GFP)
        .expect("realloc object")
        .as_ptr();
    let extra = usize::from(mm.is_kfence_address(again));
    check_eq!(CTOR_CALLS.load(Ordering::Relaxed) - calls0, calls + extra);
    objs[0] = again;
    for &o in &objs {
        mm.kmem_cache_free(c, o);
    }
    check_eq!(mm.validate(c), 0);
    mm.kmem_cache_destroy(c);
    check!(
        mm.find_cache("baremetal_ctor").is_none(),
        "cache still listed after destroy"
    );
    check_eq!(settle(mm), free0);
    Ok(())
}

/// The rest of `kmem_cache_with_constructor` under SLOB, which constructs on every
/// allocation (mm/slob.c `slob_alloc_node`).
fn slob_ctor_rest(
    mm: &Kmem,
    c: kmem::CacheHandle,
    objs: &mut [*mut u8; 100],
    calls: usize,
    calls0: usize,
    free0: usize,
) -> TestResult {
    check_eq!(calls, 100);
    // SAFETY: objs[0] is live; we change its first word before freeing it.
    unsafe { objs[0].cast::<u64>().write(42) };
    mm.kmem_cache_free(c, objs[0]);
    objs[0] = mm.kmem_cache_alloc(c, GFP).expect("object again").as_ptr();
    check_eq!(CTOR_CALLS.load(Ordering::Relaxed) - calls0, 101);
    // SAFETY: live object, constructed again.
    check_eq!(unsafe { objs[0].cast::<u64>().read() }, CTOR_PATTERN);
    for &o in objs.iter() {
        mm.kmem_cache_free(c, o);
    }
    mm.kmem_cache_destroy(c);
    check!(mm.find_cache("baremetal_ctor").is_none());
    check_eq!(settle(mm), free0);
    Ok(())
}

/// The slab errors one debugging finding counts: SLUB prints a `BUG` report and a `FIX` line
/// (2, as slub_kunit counts them); SLAB prints one `slab error` / `Slab corruption` report.
fn errors_per_report(mm: &Kmem) -> usize {
    if mm.slab_allocator() == SlabAllocatorKind::Slab {
        1
    } else {
        2
    }
}

/// Whether the kernel log contains `needle` (searched line by line as it is written out).
fn dmesg_contains(mm: &Kmem, needle: &str) -> bool {
    struct Find<'a> {
        needle: &'a str,
        found: bool,
    }
    impl fmt::Write for Find<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.found |= s.contains(self.needle);
            Ok(())
        }
    }
    let mut f = Find {
        needle,
        found: false,
    };
    let _ = mm.dmesg(&mut f, false);
    f.found
}

/// slub_kunit's `test_clobber_zone`: a byte written just past a live object lands in its right
/// red zone; validating the cache reports it (one `BUG` report and one `FIX` line: 2 errors).
fn slub_debug_catches_redzone_overwrite(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if slob(mm) {
        println!("  (SLOB has no debugging: nothing to check)");
        return Ok(());
    }
    let c = mm.kmem_cache_create(
        "TestSlub_RZ_alloc",
        64,
        0,
        SlabFlags::RED_ZONE | SlabFlags::NO_USER_FLAGS,
        None,
    );
    check!(c.is_ok(), "kmem_cache_create failed: {:?}", c.err());
    let c = c.expect("checked");
    let p = mm.kmem_cache_alloc(c, GFP).expect("object").as_ptr();
    println!("  (a slub_debug 'Right Redzone overwritten' report is expected next)");
    mm.dmesg_clear();
    let errors0 = mm.slab_errors();
    // SAFETY: the object is 64 bytes followed by its red zone, which is inside the slab; the
    // write is the corruption under test.
    unsafe { p.add(64).write_volatile(0x12) };
    mm.validate(c);
    check_eq!(mm.slab_errors() - errors0, errors_per_report(mm));
    let needle = if mm.slab_allocator() == SlabAllocatorKind::Slab {
        "memory outside object was overwritten"
    } else {
        "Redzone overwritten"
    };
    check!(dmesg_contains(mm, needle), "no '{}' in the log", needle);
    mm.kmem_cache_free(c, p);
    mm.kmem_cache_destroy(c);
    Ok(())
}

/// slub_kunit's `test_clobber_redzone_free`: the same after the object was freed.
fn slub_debug_catches_redzone_overwrite_after_free(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if slob(mm) {
        println!("  (SLOB has no debugging: nothing to check)");
        return Ok(());
    }
    let c = mm.kmem_cache_create(
        "TestSlub_RZ_free",
        64,
        0,
        SlabFlags::RED_ZONE | SlabFlags::NO_USER_FLAGS,
        None,
    );
    check!(c.is_ok(), "kmem_cache_create failed: {:?}", c.err());
    let c = c.expect("checked");
    let p = mm.kmem_cache_alloc(c, GFP).expect("object").as_ptr();
    mm.kmem_cache_free(c, p);
    println!("  (a slub_debug red zone report is expected next)");
    let errors0 = mm.slab_errors();
    // SAFETY: the freed object's red zone is still slab memory; the write is the corruption
    // under test.
    unsafe { p.add(64).write_volatile(0xab) };
    mm.validate(c);
    check_eq!(mm.slab_errors() - errors0, errors_per_report(mm));
    mm.kmem_cache_destroy(c);
    Ok(())
}

/// slub_kunit's `test_first_word`: a write into a freed, poisoned object (use after free) is
/// found by validation (2 errors).
fn slub_debug_catches_use_after_free_poison(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if slob(mm) {
        println!("  (SLOB has no debugging: nothing to check)");
        return Ok(());
    }
    let c = mm.kmem_cache_create(
        "TestSlub_1th_word_free",
        64,
        0,
        SlabFlags::POISON | SlabFlags::NO_USER_FLAGS,
        None,
    );
    check!(c.is_ok(), "kmem_cache_create failed: {:?}", c.err());
    let c = c.expect("checked");
    let p = mm.kmem_cache_alloc(c, GFP).expect("object").as_ptr();
    mm.kmem_cache_free(c, p);
    println!("  (a slub_debug poison report is expected next)");
    let errors0 = mm.slab_errors();
    // SAFETY: the freed object is still slab memory; the write is the use-after-free under test.
    unsafe { p.write_volatile(0x78) };
    mm.validate(c);
    check_eq!(mm.slab_errors() - errors0, errors_per_report(mm));
    mm.kmem_cache_destroy(c);
    Ok(())
}

/// Thousands of kmalloc objects of mixed sizes, freed in a scrambled order: after shrinking the
/// caches, every page is back in the buddy allocator.
fn kmalloc_returns_all_memory(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let errors0 = mm.slab_errors();
    let free0 = settle(mm);
    let mut objs = [(core::ptr::null_mut::<u8>(), 0usize); 4096];
    for (i, o) in objs.iter_mut().enumerate() {
        let size =
            1 + (mm.platform().random_u64() as usize % if i % 64 == 0 { 40_000 } else { 2048 });
        let p = mm
            .kmalloc(size, GFP)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr());
        check!(!p.is_null(), "kmalloc({size}) failed");
        // SAFETY: `size` bytes were allocated.
        unsafe { core::ptr::write_bytes(p, i as u8, size) };
        *o = (p, size);
    }
    check!(settle(mm) < free0, "4096 objects took no pages");
    for k in 0..objs.len() {
        let i = (k * 1657) % objs.len(); // 1657 is coprime to 4096: visits every slot once
        let (p, size) = objs[i];
        // SAFETY: live object of `size` bytes.
        let last = unsafe { p.add(size - 1).read() };
        check_eq!(last, i as u8);
        mm.kfree(p);
    }
    check_eq!(settle(mm), free0);
    check_eq!(mm.slab_errors(), errors0);
    Ok(())
}
