//! RCU on hosted machines (threads as CPUs): the grace-period rules as a model test, call_rcu
//! and rcu_barrier, misuse, kfree_rcu batching, SLAB_TYPESAFE_BY_RCU, the XArray on RCU, and
//! mm/slub_kunit.c's two kfree_rcu cases.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use common::{boot, M};
use kmem::arch::Arch;
use kmem::mm::rcu::RcuHead;
use kmem::platform::Platform;
use kmem::slab::common::SlabFlags;
use kmem::GfpFlags;

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn x86() -> M {
    boot(Arch::X86_64, 128 << 20, 4)
}

/// Spins (yielding) until `f` holds.
fn wait_for(f: impl Fn() -> bool) {
    while !f() {
        std::thread::yield_now();
    }
}

/// A reader that began before `synchronize_rcu` started has ended when it returns; a reader
/// that is still inside holds it back (not a timing assertion: the reader cannot leave until
/// the main thread lets it, after checking).
#[test]
fn synchronize_waits_for_pre_existing_readers() {
    let m = x86();
    let (inside, go, left, synced) = (
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = m.rcu_read_lock();
            inside.store(true, SeqCst);
            wait_for(|| go.load(SeqCst));
            left.store(true, SeqCst);
            drop(g);
        });
        wait_for(|| inside.load(SeqCst));
        let gp = m.rcu_stats().completed;
        s.spawn(|| {
            m.synchronize_rcu();
            assert!(
                left.load(SeqCst),
                "synchronize_rcu returned inside a reader"
            );
            synced.store(true, SeqCst);
        });
        // However long we wait here, the grace period cannot end.
        for _ in 0..1000 {
            m.rcu_core();
            std::thread::yield_now();
        }
        assert!(!synced.load(SeqCst));
        assert_eq!(m.rcu_stats().completed, gp);
        go.store(true, SeqCst);
    });
    assert!(synced.load(SeqCst));
    assert!(m.rcu_stats().completed > 0);
    common::assert_lockdep_quiet(&m);
}

#[repr(C)]
struct Obj {
    head: RcuHead,
    id: usize,
    order: &'static AtomicUsize,
    log: &'static std::sync::Mutex<Vec<usize>>,
}

/// # Safety
/// `h` is the head of a leaked `Box<Obj>`.
unsafe fn obj_cb(h: NonNull<RcuHead>) {
    // SAFETY: `head` is the first field of a boxed Obj (repr(C)).
    let o = unsafe { Box::from_raw(h.as_ptr().cast::<Obj>()) };
    o.order.fetch_add(1, SeqCst);
    o.log.lock().unwrap().push(o.id);
}

/// Callbacks run only after every reader that existed when they were queued has ended, in
/// the order they were queued; rcu_barrier waits for every queued callback.
#[test]
fn callbacks_wait_for_readers_and_barrier_waits_for_callbacks() {
    let m = x86();
    // Statics, not leaked boxes: the sanitizer's leak check counts a leaked box as lost.
    static RAN: AtomicUsize = AtomicUsize::new(0);
    static LOG: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let (ran, log): (&'static AtomicUsize, &'static std::sync::Mutex<Vec<usize>>) = (&RAN, &LOG);
    let queue = |id| {
        let o = Box::into_raw(Box::new(Obj {
            head: RcuHead::new(),
            id,
            order: ran,
            log,
        }));
        // SAFETY: the head of a leaked box, freed by the callback.
        unsafe { m.call_rcu(NonNull::new(o.cast::<RcuHead>()).unwrap(), obj_cb) };
    };
    {
        let _r = m.rcu_read_lock();
        for id in 0..10 {
            queue(id);
        }
        // Invocation points inside the reader run nothing: its own section holds the
        // grace period.
        for _ in 0..10 {
            m.rcu_core();
        }
        assert_eq!(ran.load(SeqCst), 0);
    }
    // A reader on another CPU, entered before the next callbacks, holds them too.
    let (inside, go) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            let _g = m.rcu_read_lock();
            inside.store(true, SeqCst);
            wait_for(|| go.load(SeqCst));
        });
        wait_for(|| inside.load(SeqCst));
        for id in 10..20 {
            queue(id);
        }
        for _ in 0..100 {
            m.rcu_core();
        }
        assert!(
            ran.load(SeqCst) <= 10,
            "callbacks ran under a pre-existing reader"
        );
        go.store(true, SeqCst);
    });
    m.rcu_barrier();
    assert_eq!(ran.load(SeqCst), 20);
    assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
    let st = m.rcu_stats();
    assert_eq!(st.cbs_queued, st.cbs_invoked);
    assert_eq!(st.barriers, 1);
    let f = common::proc(&m, "/sys/kernel/debug/rcu/rcugp");
    assert!(
        f.contains("callbacks: queued=21  invoked=21  pending=0  barriers=1"),
        "{f}"
    );
    assert!(
        f.starts_with(&format!("rcu_sched: completed={}", st.completed)),
        "{f}"
    );
    common::assert_lockdep_quiet(&m);
}

/// Blocking calls inside a read-side section warn (Linux's lockdep-RCU splat) and return
/// instead of waiting for themselves.
#[test]
fn synchronize_inside_reader_warns_and_returns() {
    let m = x86();
    let g = m.rcu_read_lock();
    assert!(m.rcu_read_lock_held());
    m.synchronize_rcu();
    m.rcu_barrier();
    drop(g);
    assert!(!m.rcu_read_lock_held());
    assert_eq!(m.warn_count(), 2);
    let log = m.platform().captured();
    assert!(log.contains("WARNING: suspicious RCU usage"), "{log}");
    assert!(
        log.contains("Illegal synchronize_rcu() in RCU read-side critical section!"),
        "{log}"
    );
    m.synchronize_rcu();
    assert_eq!(m.warn_count(), 2);
}

/// The polled API: a cookie's grace period ends once the readers before it are gone.
#[test]
fn polled_grace_periods() {
    let m = x86();
    let g = m.rcu_read_lock();
    let c = m.start_poll_synchronize_rcu();
    assert!(!m.poll_state_synchronize_rcu(c));
    drop(g);
    assert!(m.poll_state_synchronize_rcu(c));
    let c2 = m.get_state_synchronize_rcu();
    assert!(c2 > c);
    m.synchronize_rcu();
    assert!(m.poll_state_synchronize_rcu(c2));
}

/// kfree_rcu keeps the object until a grace period has passed, batches it, and frees it.
#[test]
fn kfree_rcu_frees_after_grace_period_in_batches() {
    let m = x86();
    let warm = m
        .kmem_cache_create("warm", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    m.kmem_cache_destroy(warm);
    let before = common::settle(&m);
    let c = m
        .kmem_cache_create("rcu_objs", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let reader = m.rcu_read_lock();
    let objs: Vec<_> = (0..2000)
        .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
        .collect();
    for &p in &objs {
        // SAFETY: live objects of this machine, 64 bytes: the head fits at 0.
        unsafe { m.kfree_rcu(p, 0) };
    }
    // All still allocated: the reader holds the grace period, so shrinking frees no slab.
    m.kmem_cache_shrink(c);
    assert!(m.slab_info(c).unwrap().active_objs >= 2000);
    drop(reader);
    m.kvfree_rcu_barrier();
    m.kmem_cache_shrink(c);
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    let st = m.kfree_rcu_stats();
    assert_eq!((st.queued, st.freed), (2000, 2000));
    let f = common::proc(&m, "/sys/kernel/debug/rcu/rcugp");
    assert!(f.contains("kfree_rcu: objects=2000  freed=2000"), "{f}");
    // 2000 pointers need four bulk pages (509 each); the batches were handed on.
    assert!(st.batches >= 1);
    m.kmem_cache_destroy(c);
    assert_eq!(m.slab_errors(), 0);
    m.kfree_rcu_shrink_cache();
    assert_eq!(common::settle(&m), before);
    common::assert_lockdep_quiet(&m);
}

/// SLAB_TYPESAFE_BY_RCU: an emptied slab goes back to the page allocator only after a grace
/// period (`rcu_free_slab`); destroying the cache waits for it.
#[test]
fn typesafe_by_rcu_slabs_wait_for_a_grace_period() {
    let m = x86();
    // A first cache creation keeps memory (the `struct kmem_cache` slab, parked dead
    // structures): warm up with one, so the count below compares like with like.
    let warm = m
        .kmem_cache_create("warm", 256, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    m.kmem_cache_destroy(warm);
    let before = common::settle(&m);
    let c = m
        .kmem_cache_create("rcu_typesafe", 256, 0, SlabFlags::TYPESAFE_BY_RCU, None)
        .unwrap();
    let objs: Vec<_> = (0..256)
        .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
        .collect();
    let st0 = m.rcu_stats();
    {
        let _r = m.rcu_read_lock();
        for &p in &objs {
            m.kmem_cache_free(c, p);
        }
        m.kmem_cache_shrink(c);
        let st = m.rcu_stats();
        assert!(st.cbs_queued > st0.cbs_queued, "no slab was handed to RCU");
        m.rcu_core();
        assert_eq!(m.rcu_stats().cbs_invoked, st0.cbs_invoked);
    }
    m.kmem_cache_destroy(c);
    let st = m.rcu_stats();
    assert_eq!(st.cbs_queued, st.cbs_invoked);
    assert_eq!(common::settle(&m), before);
    common::assert_lockdep_quiet(&m);
}

/// An XArray on the machine's kmalloc uses RCU: a reader holds back the freeing of the nodes
/// a writer unlinked; they are freed by a later write once the grace period has ended.
#[test]
fn xarray_nodes_freed_after_grace_period() {
    use kds::xarray::{xa_mk_value, XArray};
    let m = x86();
    let xa = XArray::new_in(kmem::slab::kmalloc::KmallocNodeAlloc(&m));
    for i in 0..200 {
        xa.store(i, Some(xa_mk_value(i)), kds::alloc::Gfp::GFP_KERNEL)
            .unwrap();
    }
    // The reader is on another CPU: writing inside a read guard would be cpu_section →
    // xa_lock, against `&xa->xa_lock → cpu_section` (docs/LOCKING.md).
    let (inside, go) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = xa.read();
            assert_eq!(g.load(5), Some(xa_mk_value(5)));
            inside.store(true, SeqCst);
            wait_for(|| go.load(SeqCst));
            // Erased meanwhile: this reader may see the entry or not, but the nodes it
            // walks are still allocated.
            let e = g.load(7);
            assert!(e.is_none() || e == Some(xa_mk_value(7)));
        });
        wait_for(|| inside.load(SeqCst));
        for i in 0..200 {
            xa.erase(i);
        }
        for _ in 0..10 {
            drop(xa.lock());
        }
        assert!(xa.lock().retired_nodes() > 0, "freed under a reader");
        go.store(true, SeqCst);
    });
    m.synchronize_rcu();
    // Two write sections: the first frees the batch whose grace period ended.
    drop(xa.lock());
    drop(xa.lock());
    assert_eq!(xa.lock().retired_nodes(), 0);
    drop(xa);
    common::assert_lockdep_quiet(&m);
}

// ---------------------------------------------------------------- slub_kunit.c

/// `struct test_kfree_rcu_struct { struct rcu_head rcu; }`.
const TEST_KFREE_RCU_STRUCT: usize = 16;

/// slub_kunit.c test_kfree_rcu: kfree_rcu of an object, then kmem_cache_destroy at once; no
/// slab error (kmem_cache_destroy waits for in-flight kfree_rcu()s).
#[test]
fn kunit_kfree_rcu() {
    let m = x86();
    let s = m
        .kmem_cache_create(
            "TestSlub_kfree_rcu",
            TEST_KFREE_RCU_STRUCT,
            0,
            SlabFlags::NO_MERGE | SlabFlags::NO_USER_FLAGS,
            None,
        )
        .unwrap();
    let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
    // SAFETY: a live object of `s` with the head at offset 0.
    unsafe { m.kfree_rcu(p, 0) };
    m.kmem_cache_destroy(s);
    assert_eq!(m.slab_errors(), 0, "{}", m.platform().captured());
    assert!(m.find_cache("TestSlub_kfree_rcu").is_none());
}

/// slub_kunit.c test_kfree_rcu_wq_destroy: ten times, kfree_rcu an object and destroy its
/// cache from another thread (a workqueue there) after a random delay; no slab error.
#[test]
fn kunit_kfree_rcu_wq_destroy() {
    const KMEM_CACHE_DESTROY_NR: usize = 10;
    let m = x86();
    for _ in 0..KMEM_CACHE_DESTROY_NR {
        let s = m
            .kmem_cache_create(
                "TestSlub_kfree_rcu_wq_destroy",
                TEST_KFREE_RCU_STRUCT,
                0,
                SlabFlags::NO_MERGE | SlabFlags::NO_USER_FLAGS,
                None,
            )
            .unwrap();
        let p = m.kmem_cache_alloc(s, K).unwrap().as_ptr();
        // SAFETY: `p` is a live object of `s`, just allocated and not used again, and the RCU head
        // sits at offset 0 of its `TEST_KFREE_RCU_STRUCT` bytes.
        unsafe { m.kfree_rcu(p, 0) };
        // msleep(get_random_u8()) stands for letting the batch age: yield a few times.
        for _ in 0..(m.platform().random_u64() % 256) {
            std::thread::yield_now();
        }
        std::thread::scope(|sc| {
            sc.spawn(|| m.kmem_cache_destroy(s));
        });
    }
    assert_eq!(m.slab_errors(), 0, "{}", m.platform().captured());
    common::assert_lockdep_quiet(&m);
}

/// With no page to be had for a bulk array: `kfree_rcu(ptr, rhf)` chains the object through
/// its own head and frees it after a grace period; the headless `kfree_rcu_mightsleep` waits
/// for a grace period and frees at once (Linux's fallbacks).
#[test]
fn kfree_rcu_without_pages_uses_the_head_or_waits() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let c = m
        .kmem_cache_create("rcu_nopage", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let a = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let b = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    let mut pages = Vec::new();
    while let Some(p) = m.alloc_page(K | GfpFlags::__GFP_NOWARN) {
        pages.push(p);
    }
    let r = m.rcu_read_lock();
    // SAFETY: a live 64-byte object: the head fits at 8.
    unsafe { m.kfree_rcu(a, 8) };
    assert_eq!(m.kfree_rcu_stats().freed, 0, "freed under a reader");
    drop(r);
    m.kfree_rcu_mightsleep(b);
    let st = m.kfree_rcu_stats();
    assert_eq!(
        (st.queued, st.freed),
        (2, 1),
        "the headless one is freed inline"
    );
    for p in pages {
        m.__free_pages(p, kmem::Order::ZERO);
    }
    m.kvfree_rcu_barrier();
    assert_eq!(m.kfree_rcu_stats().freed, 2);
    m.kmem_cache_shrink(c);
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    m.kmem_cache_destroy(c);
    assert_eq!(m.slab_errors(), 0);
    common::assert_lockdep_quiet(&m);
}

/// A thread leaving is a CPU going offline: its CPU-dead hook runs RCU's invocation point, so
/// callbacks it queued run by the time it has exited, with no barrier.
#[test]
fn thread_exit_runs_ready_callbacks() {
    let m = x86();
    static RAN: AtomicUsize = AtomicUsize::new(0);
    static LOG: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let (ran, log): (&'static AtomicUsize, &'static std::sync::Mutex<Vec<usize>>) = (&RAN, &LOG);
    std::thread::scope(|s| {
        // Joined explicitly: `scope` alone returns when the closure has finished, before the
        // OS thread's exit (and the pthread key destructor that takes its CPU offline) has
        // run; `join` waits for the thread itself (pthread_join).
        let t = s.spawn(|| {
            // Enter a CPU section first so the thread has a CPU to take offline.
            drop(m.rcu_read_lock());
            let o = Box::into_raw(Box::new(Obj {
                head: RcuHead::new(),
                id: 7,
                order: ran,
                log,
            }));
            // SAFETY: the head of a leaked box, freed by the callback.
            unsafe { m.call_rcu(NonNull::new(o.cast::<RcuHead>()).unwrap(), obj_cb) };
        });
        t.join().unwrap();
    });
    assert_eq!(
        ran.load(SeqCst),
        1,
        "the exiting thread's CPU-dead hook ran no callback"
    );
    assert_eq!(*log.lock().unwrap(), vec![7]);
    common::assert_lockdep_quiet(&m);
}
