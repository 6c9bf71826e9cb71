//! `kmalloc_nolock`/`kfree_nolock` and `alloc_pages_nolock`/`free_pages_nolock` (Linux 6.18):
//! their limits, and every try-lock failure path — the call returns NULL (or defers) instead
//! of waiting, the deferred work is done at the next safe point, and nothing leaks. The
//! slub_kunit cases themselves are in slub_debug.rs.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use common::M;
use kmem::arch::Arch;
use kmem::mmzone::ZoneType;
use kmem::slab::common::ZERO_SIZE_PTR;
use kmem::slab::slub::NmiPoint;
use kmem::{GfpFlags, Order};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn boot() -> M {
    common::boot(Arch::X86_64, 64 << 20, 2)
}

/// Allocates `kmalloc(size)` objects until one allocation took the slow path with the hook
/// installed (the hook saw `point` at least once); returns them for freeing.
fn drive_slow_path(m: &M, size: usize, fired: &AtomicUsize) -> Vec<*mut u8> {
    let mut v = Vec::new();
    for _ in 0..10_000 {
        v.push(m.kmalloc(size, K).unwrap().as_ptr());
        if fired.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    assert!(fired.load(Ordering::Relaxed) > 0, "the slow path never ran");
    v
}

#[test]
fn kmalloc_nolock_limits_and_flags() {
    let m = boot();
    // Size 0: ZERO_SIZE_PTR; above KMALLOC_MAX_CACHE_SIZE: NULL, silently.
    assert_eq!(
        m.kmalloc_nolock(0, GfpFlags::empty, -1).unwrap().as_ptr() as usize,
        ZERO_SIZE_PTR
    );
    let warns = m.warn_count();
    assert!(m.kmalloc_nolock(8193, GfpFlags::empty, -1).is_none());
    assert!(m.kmalloc_nolock(1 << 20, GfpFlags::empty, -1).is_none());
    assert_eq!(m.warn_count(), warns, "failures are silent (__GFP_NOWARN)");
    // 8 KiB is the largest; size classes as kmalloc's.
    let p = m.kmalloc_nolock(8192, GfpFlags::empty, -1).unwrap();
    assert_eq!(m.ksize(p.as_ptr()), 8192);
    m.kfree_nolock(p.as_ptr());
    let p = m.kmalloc_nolock(100, GfpFlags::empty, -1).unwrap();
    assert_eq!(m.ksize(p.as_ptr()), 128);
    m.kfree(p.as_ptr()); // kfree works on nolock objects
                         // __GFP_ACCOUNT: the kmalloc-cg caches; __GFP_ZERO zeroes.
    let p = m.kmalloc_nolock(64, GfpFlags::__GFP_ACCOUNT | GfpFlags::__GFP_ZERO, -1);
    let p = p.unwrap().as_ptr();
    let cg = m.kmalloc_cache(64, GfpFlags::GFP_KERNEL_ACCOUNT).unwrap();
    assert_eq!(m.kmem_cache_name(cg), Some("kmalloc-cg-64"));
    // SAFETY: a 64-byte object we own.
    assert!(unsafe { std::slice::from_raw_parts(p, 64) }
        .iter()
        .all(|&b| b == 0));
    m.kfree_nolock(p);
    // Other flags: warned about (VM_WARN_ON_ONCE), ignored.
    m.platform().take_captured();
    let p = m.kmalloc_nolock(32, K, -1).unwrap();
    assert_eq!(m.warn_count(), warns + 1);
    assert!(m.platform().take_captured().contains("kmalloc_nolock: gfp"));
    m.kfree_nolock(p.as_ptr());
    // kfree_nolock: NULL and ZERO_SIZE_PTR do nothing; large kmalloc is refused.
    m.kfree_nolock(std::ptr::null());
    m.kfree_nolock(ZERO_SIZE_PTR as *const u8);
    let big = m.kmalloc(64 << 10, K).unwrap().as_ptr();
    m.kfree_nolock(big);
    assert!(m
        .platform()
        .take_captured()
        .contains("large_kmalloc is not supported by kfree_nolock()"));
    m.kfree(big);
    assert_eq!(m.slab_errors(), 0);
    common::assert_lockdep_quiet(&m);
}

/// In a "kprobe" at `slab_attach_kprobe_locked` of kmalloc-16, a nested
/// `kmalloc_nolock(16)` finds the cache busy and is served from kmalloc-32 (the next
/// bucket); a nested `kfree_nolock` into kmalloc-16 is deferred and done at the next slow
/// path; a request whose retry would exceed 8 KiB fails.
#[test]
fn busy_cache_retries_next_bucket_and_defers_frees() {
    let m = boot();
    let victim = m.kmalloc(16, K).unwrap().as_ptr() as usize;
    let cache16 = m.kmalloc_cache(16, K).unwrap();
    m.kmem_cache_shrink(cache16);
    let before = m.slab_info(cache16).unwrap().active_objs;
    // With sheaves, this CPU's first kmalloc(16) allocates kmalloc-16's main sheaf from
    // another kmalloc cache's slab path; the kprobe must fire in kmalloc-16's own refill.
    let warm = m.kmalloc(16, K).unwrap().as_ptr();
    m.kfree(warm);
    let fired = AtomicUsize::new(0);
    let nested = AtomicPtr::new(std::ptr::null_mut());
    let deferred_inside = AtomicUsize::new(usize::MAX);
    let hook = |p: NmiPoint| {
        if p != NmiPoint::SlabAttachKprobeLocked || fired.fetch_add(1, Ordering::Relaxed) > 0 {
            return;
        }
        let q = m.kmalloc_nolock(16, GfpFlags::empty, -1).unwrap().as_ptr();
        nested.store(q, Ordering::Relaxed);
        m.kfree_nolock(victim as *const u8);
        deferred_inside.store(m.nolock_deferred(), Ordering::Relaxed);
    };
    // SAFETY: the hook calls only kmalloc_nolock, kfree_nolock, kfree_rcu_nolock and
    // atomic reads (nolock_deferred).
    let v = unsafe { m.with_nmi_hook(&hook, || drive_slow_path(&m, 16, &fired)) };
    let q = nested.load(Ordering::Relaxed);
    assert_eq!(m.ksize(q), 32, "served by kmalloc-32");
    assert_eq!(
        deferred_inside.load(Ordering::Relaxed),
        1,
        "the free was deferred"
    );
    // The next slow-path free is a safe point: the deferred free happens.
    for p in v {
        m.kfree(p);
    }
    m.kmem_cache_shrink(cache16);
    assert_eq!(m.nolock_deferred(), 0);
    assert_eq!(m.slab_info(cache16).unwrap().active_objs, before - 1);
    m.kfree_nolock(q);
    assert_eq!(m.validate(cache16), 0);

    // kmalloc-8k busy: the retry (8193 bytes) is above KMALLOC_MAX_CACHE_SIZE: NULL.
    let fired = AtomicUsize::new(0);
    let got = AtomicUsize::new(0);
    let hook = |p: NmiPoint| {
        if p == NmiPoint::SlabAttachKprobeLocked && fired.fetch_add(1, Ordering::Relaxed) == 0 {
            let r = m.kmalloc_nolock(8192, GfpFlags::empty, -1);
            got.store(r.is_some() as usize + 1, Ordering::Relaxed);
        }
    };
    // SAFETY: the hook calls only kmalloc_nolock, kfree_nolock, kfree_rcu_nolock and
    // atomic reads (nolock_deferred).
    let v = unsafe { m.with_nmi_hook(&hook, || drive_slow_path(&m, 8192, &fired)) };
    assert_eq!(
        got.load(Ordering::Relaxed),
        1,
        "NULL when both buckets are busy"
    );
    for p in v {
        m.kfree(p);
    }
    assert_eq!(m.slab_errors(), 0);
    common::assert_lockdep_quiet(&m);
}

/// A debug cache (no CPU slabs) interrupted with its `list_lock` held: the nested
/// `kmalloc_nolock` cannot take the lock (try-lock), gets a new slab it cannot list, defers
/// its release and returns NULL; a nested `kfree_nolock` is deferred. Both are done at the
/// next safe point with the debug checks, and the slab and page counts come back.
#[test]
fn debug_cache_list_lock_trylock_fails_and_defers() {
    let m = common::boot_with(Arch::X86_64, 64 << 20, 2, "slub_debug=FZPU", 42);
    let c64 = m.kmalloc_cache(64, K).unwrap();
    let keep = m.kmalloc(64, K).unwrap().as_ptr();
    let victim = m.kmalloc(64, K).unwrap().as_ptr() as usize;
    let slabs_before = m.slab_info(c64).unwrap().num_slabs;
    let fired = AtomicUsize::new(0);
    let result = AtomicUsize::new(0);
    let hook = |p: NmiPoint| {
        if p != NmiPoint::ListLockHeld || fired.fetch_add(1, Ordering::Relaxed) > 0 {
            return;
        }
        let r = m.kmalloc_nolock(64, GfpFlags::empty, -1);
        result.store(r.is_some() as usize + 1, Ordering::Relaxed);
        m.kfree_nolock(victim as *const u8);
    };
    // SAFETY: the hook calls only kmalloc_nolock, kfree_nolock and atomic reads.
    let p = unsafe { m.with_nmi_hook(&hook, || m.kmalloc(64, K)) }
        .unwrap()
        .as_ptr();
    assert_eq!(fired.load(Ordering::Relaxed), 1);
    assert_eq!(result.load(Ordering::Relaxed), 1, "NULL: list_lock is held");
    assert_eq!(m.nolock_deferred(), 2, "the new slab and the object");
    m.kfree(p);
    // kfree took the slow path (debug cache): the deferred work is done.
    assert_eq!(m.nolock_deferred(), 0);
    assert_eq!(m.validate(c64), 0);
    assert_eq!(m.slab_errors(), 0, "{}", m.platform().captured());
    assert_eq!(m.slab_info(c64).unwrap().num_slabs, slabs_before);
    m.kfree(keep);
    common::assert_lockdep_quiet(&m);
}

/// kfree_nolock on a debug cache always defers; the drain frees with the debug checks, so a
/// double free through kfree_nolock is still caught (when it is drained).
#[test]
fn kfree_nolock_on_debug_cache_defers_and_checks() {
    let m = common::boot_with(Arch::X86_64, 64 << 20, 2, "slub_debug=FZPU", 42);
    let c = m.kmalloc_cache(128, K).unwrap();
    let before = m.slab_info(c).unwrap().active_objs;
    let p = m.kmalloc_nolock(100, GfpFlags::empty, -1).unwrap().as_ptr();
    assert_eq!(m.slab_info(c).unwrap().active_objs, before + 1);
    m.kfree_nolock(p);
    assert_eq!(m.nolock_deferred(), 1);
    assert_eq!(m.validate(c), 0); // a safe point: drained first
    assert_eq!(m.nolock_deferred(), 0);
    assert_eq!(m.slab_info(c).unwrap().active_objs, before);
    m.kfree_nolock(p);
    m.slub_drain_deferred();
    assert!(m.slab_errors() > 0, "the double free is reported");
    assert!(m.platform().captured().contains("Object already free"));
}

/// `alloc_pages_nolock` / `free_pages_nolock` with the zone lock held by the caller's own
/// CPU (as when an NMI interrupts a holder): NULL instead of waiting, and the free is parked
/// and done by the next ordinary free that takes the zone lock. Orders above
/// PAGE_ALLOC_COSTLY_ORDER are refused.
#[test]
fn page_nolock_trylock_paths() {
    let m = boot();
    assert!(m
        .alloc_pages_nolock(GfpFlags::empty, Order::new(4))
        .is_none());
    // Take all of ZONE_DMA so that only DMA32 can serve.
    let mut dma = Vec::new();
    while let Some(p) = m.alloc_pages(
        K | GfpFlags::__GFP_DMA | GfpFlags::__GFP_NOWARN,
        Order::ZERO,
    ) {
        dma.push(p);
    }
    m.drain_local_pages();
    let free_before = common::settle(&m);
    let big = m.alloc_pages(K, Order::new(4)).unwrap();
    let under_lock = Cell::new(None);
    m.for_each_free_block(ZoneType::Dma32, |_, _, _| {
        if under_lock.get().is_none() {
            let r = m.alloc_pages_nolock(GfpFlags::empty, Order::ZERO);
            under_lock.set(Some(r.is_some()));
            m.free_pages_nolock(big, Order::new(4));
        }
    });
    assert_eq!(under_lock.get(), Some(false), "NULL: the zone lock is held");
    assert_eq!(
        m.trylock_free_pages_count(),
        1,
        "the order-4 free was parked"
    );
    // Without the lock: served (through the pcp list), zeroed.
    let p = m.alloc_pages_nolock(GfpFlags::empty, Order::ZERO).unwrap();
    let va = m.page_address(p).unwrap().as_ptr::<u8>();
    // SAFETY: the page we were just given.
    assert!(unsafe { std::slice::from_raw_parts(va, 4096) }
        .iter()
        .all(|&b| b == 0));
    m.free_pages_nolock(p, Order::ZERO);
    // An ordinary free that takes the zone lock frees the parked block first.
    let other = m.alloc_pages(K, Order::new(4)).unwrap();
    m.__free_pages(other, Order::new(4));
    assert_eq!(m.trylock_free_pages_count(), 0);
    assert_eq!(
        common::settle(&m),
        free_before,
        "the parked block is free again"
    );
    for p in dma {
        m.__free_pages(p, Order::ZERO);
    }
    m.check_invariants().unwrap();
    common::assert_lockdep_quiet(&m);
}

/// SLAB and SLOB (gone from Linux before `kmalloc_nolock` came) have no any-context
/// allocation: `kmalloc_nolock` fails, `kfree_nolock` and `kfree_rcu_nolock` free as
/// `kfree`/`kfree_rcu` do (they have no reentry points, so nothing is interrupted).
#[test]
fn slab_and_slob_have_no_kmalloc_nolock() {
    for cmdline in ["slab=slab", "slab=slob"] {
        let m = common::boot_with(Arch::X86_64, 64 << 20, 2, cmdline, 42);
        assert!(
            m.kmalloc_nolock(64, GfpFlags::empty, -1).is_none(),
            "{cmdline}"
        );
        // Warm up (SLAB makes a CPU's arrays on its first use, kfree_rcu keeps a bulk page).
        let w = m.kmalloc(64, K).unwrap().as_ptr();
        // SAFETY: a live 64-byte kmalloc object, not used again.
        unsafe { m.kfree_rcu(w, 0) };
        m.kvfree_rcu_barrier();
        m.kfree_rcu_shrink_cache();
        let free_before = common::settle(&m);
        let p = m.kmalloc(64, K).unwrap().as_ptr();
        m.kfree_nolock(p);
        let q = m.kmalloc(64, K).unwrap().as_ptr();
        // SAFETY: a live 64-byte kmalloc object with 16 bytes at offset 0, not used again.
        unsafe { m.kfree_rcu_nolock(q, 0) };
        assert_eq!(m.nolock_deferred(), 0, "{cmdline}: nothing deferred");
        m.kvfree_rcu_barrier();
        m.kfree_rcu_shrink_cache();
        assert_eq!(common::settle(&m), free_before, "{cmdline}");
        assert_eq!(m.slab_errors(), 0);
    }
}
