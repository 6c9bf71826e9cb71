//! Model-checks the RCU grace-period core (`kds::rcu`): a reader that entered its read-side
//! section before a grace period started is never overtaken by the end of that grace period,
//! so an object unlinked before the cookie was taken is never freed under a reader; and the
//! XArray freeing its nodes through an RCU domain instead of its reader count.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p kds --test rcu_loom --release`
//! (scripts/loom-test). The "object" is a loom cell: the reader's access is a read of it, the
//! free a write, so loom reports any free not ordered after the reader's access.
//!
//! What the models catch (each tried by weakening the code and running this file; all three
//! models fail):
//! - `RcuCpu::read_lock` entering with a `Relaxed` RMW: the reader no longer synchronises with
//!   the driver's scan and may load the object unlinked before it.
//! - `RcuCpu::read_unlock` leaving its outermost section with a `Relaxed` RMW: the reader's
//!   access is not ordered before the free.
//!
//! Not covered: here the updater drives its own grace period, so the orderings that matter
//! only when another thread drives (`RcuGp::snap`'s RMW, the `Release` end of a grace period)
//! are argued in the module documentation, not model-checked.
#![cfg(loom)]
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed as StdRelaxed};
use std::sync::Mutex;

use kds::alloc::{Gfp, NodeAlloc};
use kds::rcu::{RcuCookie, RcuCpu, RcuDomain, RcuGp};
use kds::xarray::{xa_mk_value, XArray};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, Ordering::*};
use loom::sync::Arc;
use loom::thread;

/// Two CPUs: the reader runs on CPU 0, the updater is outside any section.
struct Domain {
    gp: RcuGp,
    cpus: [RcuCpu; 2],
}

impl Domain {
    fn new() -> Self {
        Domain {
            gp: RcuGp::new(),
            cpus: [RcuCpu::new(), RcuCpu::new()],
        }
    }
    /// `synchronize_rcu` by polling.
    fn synchronize(&self) {
        let c = self.gp.start_poll();
        while !self.poll(c) {
            thread::yield_now();
        }
    }
}

// SAFETY: the reader thread of each model is the only user of CPU 0, and sections are
// entered and left on it in order; the RCU property is what these models check.
unsafe impl RcuDomain for Domain {
    fn read_lock(&self) -> usize {
        self.cpus[0].read_lock();
        0
    }
    unsafe fn read_unlock(&self, token: usize) {
        self.cpus[token].read_unlock();
    }
    fn start_poll(&self) -> RcuCookie {
        self.gp.start_poll()
    }
    fn poll(&self, cookie: RcuCookie) -> bool {
        self.gp.drive(&self.cpus);
        self.gp.poll_state(cookie)
    }
}

/// The object readers find through the shared pointer.
struct Obj {
    val: UnsafeCell<usize>,
}

#[test]
fn synchronize_waits_for_pre_existing_reader() {
    loom::model(|| {
        let d = Arc::new(Domain::new());
        let old = Box::into_raw(Box::new(Obj {
            val: UnsafeCell::new(1),
        }));
        let ptr = Arc::new(AtomicPtr::new(old));
        let reader = {
            let (d, ptr) = (d.clone(), ptr.clone());
            thread::spawn(move || {
                let t = d.read_lock();
                let p = ptr.load(Acquire);
                // SAFETY: `p` is live while the section is open: the property under test.
                let v = unsafe { (*p).val.with(|v| *v) };
                assert!(v == 1 || v == 2);
                // SAFETY: the token of the section entered above.
                unsafe { d.read_unlock(t) };
            })
        };
        let new = Box::into_raw(Box::new(Obj {
            val: UnsafeCell::new(2),
        }));
        let unlinked = ptr.swap(new, AcqRel);
        d.synchronize();
        // The free: a write of the cell, then the memory goes.
        // SAFETY: unlinked and a grace period has passed: no reader holds it.
        unsafe {
            (*unlinked).val.with_mut(|v| *v = 0);
            drop(Box::from_raw(unlinked));
        }
        reader.join().unwrap();
        // SAFETY: nothing refers to it any more.
        drop(unsafe { Box::from_raw(ptr.load(Acquire)) });
    });
}

#[test]
fn nested_section_holds_the_grace_period() {
    loom::model(|| {
        let d = Arc::new(Domain::new());
        let old = Box::into_raw(Box::new(Obj {
            val: UnsafeCell::new(1),
        }));
        let ptr = Arc::new(AtomicPtr::new(old));
        let reader = {
            let (d, ptr) = (d.clone(), ptr.clone());
            thread::spawn(move || {
                let outer = d.read_lock();
                let p = ptr.load(Acquire);
                let inner = d.read_lock();
                // SAFETY: the inner token, left first.
                unsafe { d.read_unlock(inner) };
                // Still inside the outer section: `p` must stay live.
                // SAFETY: `p` was loaded inside the outer read section, which is still held: the
                // writer's `synchronize` cannot return, so the object is not freed or written yet.
                let v = unsafe { (*p).val.with(|v| *v) };
                assert!(v == 1 || v == 2);
                // SAFETY: the outer token.
                unsafe { d.read_unlock(outer) };
            })
        };
        let new = Box::into_raw(Box::new(Obj {
            val: UnsafeCell::new(2),
        }));
        let unlinked = ptr.swap(new, AcqRel);
        d.synchronize();
        // SAFETY: `unlinked` was taken off `ptr` by the swap, and `synchronize` returned, so every
        // reader that could have loaded it has left its section: we are the only user and may write
        // and free it.
        unsafe {
            (*unlinked).val.with_mut(|v| *v = 0);
            drop(Box::from_raw(unlinked));
        }
        reader.join().unwrap();
        // SAFETY: nothing refers to it any more.
        drop(unsafe { Box::from_raw(ptr.load(Acquire)) });
    });
}

/// A node allocator that offers the model's RCU domain and quarantines freed blocks until it
/// is dropped (as in tests/xarray_loom.rs).
struct RcuAlloc {
    rcu: Domain,
    blocks: Mutex<Vec<(usize, Layout)>>,
    live: StdAtomicUsize,
}

// SAFETY: blocks come from `std::alloc::alloc` with the layout asked for and stay valid until
// the allocator is dropped.
unsafe impl NodeAlloc for RcuAlloc {
    fn alloc(&self, layout: Layout, _gfp: Gfp) -> Option<NonNull<u8>> {
        // SAFETY: node layouts are not zero-sized.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        self.blocks
            .lock()
            .unwrap()
            .push((p.as_ptr() as usize, layout));
        self.live.fetch_add(1, StdRelaxed);
        Some(p)
    }
    unsafe fn free(&self, _ptr: NonNull<u8>, _layout: Layout) {
        self.live.fetch_sub(1, StdRelaxed);
    }
    fn rcu(&self) -> Option<&dyn RcuDomain> {
        Some(&self.rcu)
    }
}

impl Drop for RcuAlloc {
    fn drop(&mut self) {
        for &(p, layout) in self.blocks.get_mut().unwrap().iter() {
            // SAFETY: allocated above with this layout; the XArray is gone.
            unsafe { std::alloc::dealloc(p as *mut u8, layout) };
        }
    }
}

/// The XArray's readers under RCU: erasing index 1 of `{0, 1}` shrinks the tree and retires
/// its node, which is handed to a grace period and freed by a later write once it ended.
#[test]
fn xarray_reader_vs_erase_under_rcu() {
    let mut model = loom::model::Builder::new();
    model.max_branches = model.max_branches.max(10_000);
    model.check(|| {
        let xa = Arc::new(XArray::new_in(RcuAlloc {
            rcu: Domain::new(),
            blocks: Mutex::new(Vec::new()),
            live: StdAtomicUsize::new(0),
        }));
        xa.store(0, Some(xa_mk_value(10)), Gfp::GFP_KERNEL).unwrap();
        xa.store(1, Some(xa_mk_value(11)), Gfp::GFP_KERNEL).unwrap();
        let nodes = xa.allocator().live.load(StdRelaxed);
        let reader = {
            let xa = xa.clone();
            thread::spawn(move || {
                let g = xa.read();
                let one = g.load(1);
                assert!(one.is_none() || one == Some(xa_mk_value(11)));
                assert_eq!(g.load(0), Some(xa_mk_value(10)));
            })
        };
        assert_eq!(xa.erase(1), Some(xa_mk_value(11)));
        // A second write section may find the grace period over and free the node.
        drop(xa.lock());
        reader.join().unwrap();
        while xa.allocator().live.load(StdRelaxed) >= nodes {
            drop(xa.lock());
            thread::yield_now();
        }
        xa.check().unwrap();
    });
}
