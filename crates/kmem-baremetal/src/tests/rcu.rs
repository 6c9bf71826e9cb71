//! RCU on the bare-metal kernel (one CPU; a read-side section runs with interrupts off): grace
//! periods, call_rcu and rcu_barrier, kfree_rcu batches, SLAB_TYPESAFE_BY_RCU slabs, and the
//! XArray freeing its nodes through RCU.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use alloc::boxed::Box;
use alloc::vec::Vec;

use kmem::mm::rcu::RcuHead;
use kmem::slab::common::SlabFlags;
use kmem::GfpFlags;

use super::{settle, KernelCtx};
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    rcu_grace_periods_on_one_cpu,
    rcu_callbacks_after_reader_and_barrier,
    rcu_kfree_rcu_batches,
    rcu_typesafe_by_rcu_cache,
    rcu_xarray_frees_after_grace_period,
];

/// With one CPU, a grace period requested outside a read-side section ends at once; inside
/// one it cannot.
fn rcu_grace_periods_on_one_cpu(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let done = mm.rcu_stats().completed;
    mm.synchronize_rcu();
    check!(mm.rcu_stats().completed > done, "no grace period completed");
    let r = mm.rcu_read_lock();
    let c = mm.start_poll_synchronize_rcu();
    check!(
        !mm.poll_state_synchronize_rcu(c),
        "grace period ended inside a reader"
    );
    drop(r);
    check!(mm.poll_state_synchronize_rcu(c), "grace period did not end");
    Ok(())
}

static RAN: AtomicUsize = AtomicUsize::new(0);

/// # Safety
/// `h` is the head of a leaked `Box<RcuHead>`.
unsafe fn count_cb(h: NonNull<RcuHead>) {
    // SAFETY: the caller's guarantee.
    drop(unsafe { Box::from_raw(h.as_ptr()) });
    RAN.fetch_add(1, Ordering::Relaxed);
}

/// Callbacks queued inside a reader do not run before it ends; rcu_barrier runs them all.
fn rcu_callbacks_after_reader_and_barrier(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    RAN.store(0, Ordering::Relaxed);
    {
        let _r = mm.rcu_read_lock();
        for _ in 0..100 {
            let h = Box::into_raw(Box::new(RcuHead::new()));
            // SAFETY: a leaked head, freed by the callback.
            unsafe { mm.call_rcu(NonNull::new(h).expect("box"), count_cb) };
        }
        mm.rcu_core();
        check_eq!(RAN.load(Ordering::Relaxed), 0);
    }
    mm.rcu_barrier();
    check_eq!(RAN.load(Ordering::Relaxed), 100);
    let st = mm.rcu_stats();
    check_eq!(st.cbs_queued, st.cbs_invoked);
    Ok(())
}

/// kfree_rcu of a thousand objects: kept under a reader, freed after kvfree_rcu_barrier.
fn rcu_kfree_rcu_batches(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    // The slab group's deliberate corruptions counted before: compare with what is there now.
    let errors = mm.slab_errors();
    let c = mm.kmem_cache_create("rcu_selftest", 48, 0, SlabFlags::NO_MERGE, None);
    check!(c.is_ok(), "kmem_cache_create failed");
    let c = c.expect("checked");
    let r = mm.rcu_read_lock();
    let mut objs = Vec::new();
    for _ in 0..1000 {
        let p = mm.kmem_cache_alloc(c, GfpFlags::GFP_ATOMIC);
        check!(p.is_some(), "allocation failed");
        objs.push(p.expect("checked").as_ptr());
    }
    for &p in &objs {
        // SAFETY: live objects of 48 bytes: the head fits at 0.
        unsafe { mm.kfree_rcu(p, 0) };
    }
    drop(r);
    mm.kvfree_rcu_barrier();
    mm.kmem_cache_shrink(c);
    check_eq!(mm.slab_info(c).map(|i| i.num_slabs), Some(0));
    mm.kmem_cache_destroy(c);
    check_eq!(mm.slab_errors(), errors);
    mm.kfree_rcu_shrink_cache();
    Ok(())
}

/// A SLAB_TYPESAFE_BY_RCU cache: emptied slabs wait for a grace period; destroy waits too.
fn rcu_typesafe_by_rcu_cache(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let c = mm.kmem_cache_create("rcu_typesafe", 512, 0, SlabFlags::TYPESAFE_BY_RCU, None);
    check!(c.is_ok(), "kmem_cache_create failed");
    let c = c.expect("checked");
    let mut objs = Vec::new();
    for _ in 0..200 {
        let p = mm.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL);
        check!(p.is_some(), "allocation failed");
        objs.push(p.expect("checked").as_ptr());
    }
    let queued = mm.rcu_stats().cbs_queued;
    for &p in &objs {
        mm.kmem_cache_free(c, p);
    }
    mm.kmem_cache_shrink(c);
    check!(
        mm.rcu_stats().cbs_queued > queued,
        "no slab was handed to RCU"
    );
    mm.kmem_cache_destroy(c);
    let st = mm.rcu_stats();
    check_eq!(st.cbs_queued, st.cbs_invoked);
    Ok(())
}

/// The XArray on kmalloc uses the machine's RCU: erased nodes wait for a grace period.
fn rcu_xarray_frees_after_grace_period(ctx: &KernelCtx) -> TestResult {
    use kds::alloc::Gfp;
    use kds::xarray::{xa_mk_value, XArray};
    let mm = ctx.mm;
    let free0 = settle(mm);
    {
        let xa = XArray::new_in(crate::heap::KernelNodeAlloc);
        for i in 0..500usize {
            check!(
                xa.store(i * 3, Some(xa_mk_value(i)), Gfp::GFP_KERNEL)
                    .is_ok(),
                "store failed"
            );
        }
        // Erased outside any reader (a write inside a read guard would be cpu_section →
        // xa_lock, against the documented order): the nodes are still handed to a grace
        // period first, and a later write section frees them.
        for i in 0..500usize {
            xa.erase(i * 3);
        }
        {
            let g = xa.read();
            check!(g.load(3).is_none(), "erased entry still visible");
        }
        let g = xa.lock();
        check!(g.retired_nodes() > 0, "nodes freed without a grace period");
        drop(g);
        mm.synchronize_rcu();
        drop(xa.lock());
        check_eq!(xa.lock().retired_nodes(), 0);
    }
    check_eq!(settle(mm), free0);
    Ok(())
}
