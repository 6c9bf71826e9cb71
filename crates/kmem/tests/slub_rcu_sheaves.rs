//! `kfree_rcu` into SLUB's sheaves (Linux 6.18 mm/slub.c `__kfree_rcu_sheaf`,
//! `rcu_free_sheaf`, `flush_all_rcu_sheaves`) and `kmem_cache_shrink` reaching every CPU's
//! sheaves.

mod common;
use common::*;

use std::collections::HashSet;
use std::sync::Arc;

use kmem::arch::Arch;
use kmem::{CacheHandle, GfpFlags, KmemCacheArgs, SlabFlags};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn sheaf_cache(m: &M, name: &str, capacity: u32) -> CacheHandle {
    let args = KmemCacheArgs {
        sheaf_capacity: capacity,
        ..KmemCacheArgs::default()
    };
    m.kmem_cache_create_args(name, 64, &args, SlabFlags::NONE)
        .unwrap()
}

fn alloc(m: &M, c: CacheHandle) -> *mut u8 {
    m.kmem_cache_alloc(c, K).unwrap().as_ptr()
}

/// Objects given to `kfree_rcu` go into the cache's `rcu_free` sheaf (FREE_RCU_SHEAF), are
/// not handed out again while a reader that predates them runs, and come back whole after
/// the grace period: the full sheaves go to the barn and serve allocations again.
#[test]
fn kfree_rcu_fills_sheaves_that_return_after_the_grace_period() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let c = sheaf_cache(&m, "rcu_sheaf", 8);
    let queued_before = m.kfree_rcu_stats().queued;
    let objs: Vec<_> = (0..20).map(|_| alloc(&m, c)).collect();
    let reader = m.rcu_read_lock();
    for &p in &objs {
        // SAFETY: live 64-byte objects of this machine; the head fits at 0.
        unsafe { m.kfree_rcu(p, 0) };
    }
    let st = m.slab_stats(c).unwrap();
    assert_eq!((st.free_rcu_sheaf, st.free_rcu_sheaf_fail), (20, 0));
    assert_eq!(
        m.kfree_rcu_stats().queued,
        queued_before,
        "none went to the bulk pages"
    );
    // During the grace period none of them is allocated again.
    let gone: HashSet<_> = objs.iter().copied().collect();
    let fresh: Vec<_> = (0..40).map(|_| alloc(&m, c)).collect();
    assert!(fresh.iter().all(|p| !gone.contains(p)));
    drop(reader);
    for p in fresh {
        m.kmem_cache_free(c, p);
    }
    // Two sheaves were full (8 + 8) and went to RCU at once; the barrier hands over the
    // partly filled one (4) and waits for all three.
    let put_before = m.slab_stats(c).unwrap().barn_put;
    m.kvfree_rcu_barrier();
    let st = m.slab_stats(c).unwrap();
    assert!(
        st.barn_put >= put_before + 2,
        "{} {}",
        st.barn_put,
        put_before
    );
    // The barn's full sheaves serve allocations: the kfree_rcu'd objects come back.
    let again: Vec<_> = (0..60).map(|_| alloc(&m, c)).collect();
    assert_eq!(again.iter().collect::<HashSet<_>>().len(), again.len());
    assert!(again.iter().filter(|p| gone.contains(p)).count() >= 16);
    for p in again {
        m.kmem_cache_free(c, p);
    }
    assert!(!m.kmem_cache_shrink(c));
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    m.kmem_cache_destroy(c);
    assert_eq!((m.bug_count(), m.slab_errors()), (0, 0));
    assert_lockdep_quiet(&m);
}

/// kmalloc caches have sheaves by default: `kfree_rcu` of kmalloc objects takes the sheaf
/// path, and `kvfree_rcu_barrier` gives everything back.
#[test]
fn kfree_rcu_of_kmalloc_objects_uses_the_sheaves() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let c = m.kmalloc_cache(128, K).unwrap();
    let before = m.slab_stats(c).unwrap().free_rcu_sheaf;
    let v: Vec<_> = (0..100)
        .map(|_| m.kmalloc(100, K).unwrap().as_ptr())
        .collect();
    for &p in &v {
        // SAFETY: live kmalloc(100) objects; the head fits at 0.
        unsafe { m.kfree_rcu(p, 0) };
    }
    assert_eq!(m.slab_stats(c).unwrap().free_rcu_sheaf - before, 100);
    m.kvfree_rcu_barrier();
    let again: Vec<_> = (0..100)
        .map(|_| m.kmalloc(100, K).unwrap().as_ptr())
        .collect();
    assert_eq!(again.iter().collect::<HashSet<_>>().len(), 100);
    for p in again {
        m.kfree(p);
    }
    assert_eq!((m.bug_count(), m.slab_errors()), (0, 0));
}

/// A partly filled `rcu_free` sheaf is handed over by `kmem_cache_shrink` (its objects come
/// back after the grace period, `rcu_free_sheaf_nobarn`) and by `kmem_cache_destroy`'s
/// barrier, which then finds no object left.
#[test]
fn shrink_and_destroy_hand_over_the_partial_rcu_sheaf() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let c = sheaf_cache(&m, "rcu_part", 8);
    let v: Vec<_> = (0..3).map(|_| alloc(&m, c)).collect();
    for &p in &v {
        // SAFETY: live 64-byte objects.
        unsafe { m.kfree_rcu(p, 0) };
    }
    m.kmem_cache_shrink(c);
    m.rcu_barrier();
    assert!(
        !m.kmem_cache_shrink(c),
        "every slab is free after the grace period"
    );
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    // Destroy right after kfree_rcu: its barrier flushes the rcu sheaf first.
    let w: Vec<_> = (0..5).map(|_| alloc(&m, c)).collect();
    for &p in &w {
        // SAFETY: each `p` is a live 64-byte object of `c`, allocated just above, handed to
        // `kfree_rcu` once and not used afterwards.
        unsafe { m.kfree_rcu(p, 0) };
    }
    m.kmem_cache_destroy(c);
    let log = m.platform().take_captured();
    assert!(!log.contains("still has objects"), "{log}");
    assert_eq!((m.bug_count(), m.slab_errors()), (0, 0));
}

/// `kfree_rcu` of one object twice: the sheaf is checked before it becomes allocatable; the
/// double free is reported and the object is not handed out twice.
#[test]
fn kfree_rcu_twice_is_reported_not_handed_out_twice() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let c = sheaf_cache(&m, "rcu_twice", 8);
    let v: Vec<_> = (0..7).map(|_| alloc(&m, c)).collect();
    for &p in &v {
        // SAFETY: live 64-byte objects.
        unsafe { m.kfree_rcu(p, 0) };
    }
    // The eighth pointer is the first one again: the sheaf is full and goes to RCU.
    // SAFETY: deliberately wrong (a double kfree_rcu); kmem must catch it. The head is not
    // written on the sheaf path.
    unsafe { m.kfree_rcu(v[0], 0) };
    m.rcu_barrier();
    let log = m.platform().take_captured();
    assert!(log.contains("Object already free"), "{log}");
    let got: Vec<_> = (0..32).map(|_| alloc(&m, c)).collect();
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
    for p in got {
        m.kmem_cache_free(c, p);
    }
    assert_eq!(m.validate(c), 0);
}

/// `kmem_cache_shrink` on one CPU reaches the sheaves of another: the other CPU flushes
/// them itself (Linux queues `flush_cpu_sheaves` work on every CPU; kmem asks the CPU, which
/// acts at its next safe point: a SLUB slow path of the cache or its `slab_tick`).
#[test]
fn shrink_reaches_every_cpus_sheaves() {
    let m = Arc::new(boot(Arch::X86_64, 64 << 20, 4));
    let c = sheaf_cache(&m, "rcu_cpus", 16);
    let m2 = m.clone();
    let (tx, rx) = std::sync::mpsc::channel::<u8>();
    let (back, done) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        // The other CPU: allocates and frees, so its main sheaf holds objects.
        let v: Vec<_> = (0..10).map(|_| alloc(&m2, c)).collect();
        for p in v {
            m2.kmem_cache_free(c, p);
        }
        back.send(()).unwrap();
        // Wait for the shrink, then let this CPU run its periodic work (`slab_tick`).
        rx.recv().unwrap();
        m2.slab_tick();
        back.send(()).unwrap();
        rx.recv().unwrap();
    });
    done.recv().unwrap();
    // SAFETY: the other thread is blocked; nobody changes the cache meanwhile.
    let held = unsafe { m.slub_sheaf_census(c) }.unwrap().cpu_objects;
    assert!(held > 0);
    m.kmem_cache_shrink(c);
    tx.send(0).unwrap();
    done.recv().unwrap();
    // SAFETY: the other thread sent `done` and now waits in `rx.recv()`, so no thread uses the
    // cache during the census, as `slub_sheaf_census` asks.
    let ce = unsafe { m.slub_sheaf_census(c) }.unwrap();
    assert_eq!((ce.cpu_objects, ce.cpu_sheaves), (0, 0), "{ce:?}");
    assert!(!m.kmem_cache_shrink(c));
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    tx.send(0).unwrap();
    other.join().unwrap();
    m.kmem_cache_destroy(c);
    assert_eq!((m.bug_count(), m.slab_errors()), (0, 0));
}
