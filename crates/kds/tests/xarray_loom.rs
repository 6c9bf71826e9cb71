//! Model-checks the XArray's lock-free readers against a writer that unlinks, retires and
//! frees nodes (the reader-count scheme of the `xarray` module docs, "Concurrency").
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p kds --test xarray_loom --release`
//! (scripts/loom-test). Under loom the array's head, slots, marks, lock and reader count are
//! loom atomics (`kds::sync`), and every node carries a `FreeCheck`: a reader entering a node
//! is a read of it, freeing the node a write. So loom reports, as a causality violation, any
//! execution in which a reader touches a node that is freed concurrently with or before that
//! access: exactly the use-after-free the scheme must rule out. The allocator below never
//! reuses or returns a block during an iteration, so such a read stays a report, not a crash.
//!
//! What the models catch (each tried once by weakening the code and running this file):
//! - `XArray::read` entering with `fetch_add(1, Relaxed)` instead of `Acquire`: a reader that
//!   enters after the writer's reclaim check no longer synchronises with it, may load the old
//!   head and walks into the freed node.
//! - the writer checking the reader count with a plain `load(Acquire)` instead of the `AcqRel`
//!   read-modify-write in `XaLockGuard::reclaim_if_quiescent` (the store-buffering race: the
//!   writer reads 0 while the reader reads the old head).
//! - `XaReadGuard::drop` leaving with `fetch_sub(1, Relaxed)`: the reader's last accesses are
//!   not ordered before the free.
//!
//! Each model also counts, across its iterations, how often the node was freed while the
//! reader was still running and how often the free had to wait for the reader (the retired
//! list was non-empty after the write), and asserts both happened: the race is really explored.
#![cfg(loom)]
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use kds::alloc::{Gfp, NodeAlloc};
use kds::xarray::{xa_mk_value, XArray, XaEntry};
use loom::sync::Arc;
use loom::thread;

/// A `NodeAlloc` for the models: blocks come from the global allocator, `free` only counts and
/// quarantines them, and they are returned when the allocator is dropped at the end of the
/// iteration (so a freed node is never reused or unmapped while a buggy reader might read it).
#[derive(Default)]
struct Quarantine {
    blocks: Mutex<Vec<(usize, Layout)>>,
    allocated: AtomicUsize,
    freed: AtomicUsize,
}

impl Quarantine {
    fn live(&self) -> usize {
        self.allocated.load(Relaxed) - self.freed.load(Relaxed)
    }
}

// SAFETY: blocks come from `std::alloc::alloc` with the requested layout (node layouts are
// never zero-sized) and stay valid until the allocator is dropped, after every `free`.
unsafe impl NodeAlloc for Quarantine {
    fn alloc(&self, layout: Layout, _gfp: Gfp) -> Option<NonNull<u8>> {
        // SAFETY: `layout` is a node layout, not zero-sized.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        self.blocks
            .lock()
            .unwrap()
            .push((p.as_ptr() as usize, layout));
        self.allocated.fetch_add(1, Relaxed);
        Some(p)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        let blocks = self.blocks.lock().unwrap();
        assert!(
            blocks.contains(&(ptr.as_ptr() as usize, layout)),
            "free of a block this allocator did not hand out"
        );
        self.freed.fetch_add(1, Relaxed);
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(self.live(), 0, "the XArray leaked nodes");
        }
        for &(p, layout) in self.blocks.get_mut().unwrap().iter() {
            // SAFETY: allocated above with this layout; the XArray using it is gone.
            unsafe { std::alloc::dealloc(p as *mut u8, layout) };
        }
    }
}

fn v(n: usize) -> Option<XaEntry> {
    Some(xa_mk_value(n))
}

/// Counts, over all iterations of one model, the two outcomes of the writer's reclaim check.
#[derive(Default)]
struct Outcomes {
    /// The writer freed the retired nodes before the reader finished.
    freed_during_read: AtomicUsize,
    /// The writer found a reader inside and left the nodes retired.
    deferred: AtomicUsize,
}

/// One model: `setup` builds the tree, a reader thread runs `read` in one read section, and
/// the main thread runs `write` (which must unlink at least one node) concurrently.
fn race(
    setup: fn(&XArray<Quarantine>),
    read: fn(&XArray<Quarantine>),
    write: fn(&XArray<Quarantine>),
) {
    let outcomes = std::sync::Arc::new(Outcomes::default());
    let seen = outcomes.clone();
    let mut model = loom::model::Builder::new();
    // Walking a retired node's 64 slots (`xas_free_nodes`) is 64 loom operations: more
    // branches than loom's default limit of 1000 allows for in one execution.
    model.max_branches = model.max_branches.max(10_000);
    model.check(move || {
        let xa = Arc::new(XArray::new_in(Quarantine::default()));
        setup(&xa);
        let nodes = xa.allocator().live();
        assert!(nodes > 0, "the setup must build a tree of nodes");
        // Bookkeeping outside the model (not a synchronisation loom should see).
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let reader = {
            let (xa, done) = (xa.clone(), done.clone());
            thread::spawn(move || {
                read(&xa);
                done.store(true, Relaxed);
            })
        };
        write(&xa);
        if xa.allocator().live() < nodes {
            if !done.load(Relaxed) {
                // Freed while the reader had not finished (or not yet entered).
                seen.freed_during_read.fetch_add(1, Relaxed);
            }
        } else if xa.lock().retired_nodes() > 0 {
            seen.deferred.fetch_add(1, Relaxed);
        }
        reader.join().unwrap();
        // With the reader gone the next write-side section frees what was deferred.
        drop(xa.lock());
        assert!(
            xa.allocator().live() < nodes,
            "the unlinked node was never freed"
        );
        xa.check().unwrap();
    });
    assert!(
        outcomes.freed_during_read.load(Relaxed) > 0,
        "no early free explored"
    );
    assert!(
        outcomes.deferred.load(Relaxed) > 0,
        "no deferred free explored"
    );
}

/// Erasing index 1 of `{0, 1}` leaves one entry at slot 0 of the only node: `xas_shrink`
/// moves it into the head and retires the node (slot 0 becomes a retry entry). A reader
/// inside the same node must see index 1 as present or erased and index 0 always present.
#[test]
fn reader_vs_erase_that_shrinks_the_tree() {
    race(
        |xa| {
            xa.store(0, v(10), Gfp::GFP_KERNEL).unwrap();
            xa.store(1, v(11), Gfp::GFP_KERNEL).unwrap();
        },
        |xa| {
            let g = xa.read();
            let one = g.load(1);
            assert!(one == v(11) || one.is_none(), "index 1 read {one:?}");
            assert_eq!(g.load(0), v(10));
        },
        |xa| assert_eq!(xa.erase(1), v(11)),
    );
}

/// Erasing the only entry of a node leaves the array empty: `xas_delete_node` unlinks the
/// node from the head and retires it. Readers in single-call sections (one per load, as
/// `xa_load`) see the entry or nothing, and index 0 never.
#[test]
fn reader_vs_erase_that_deletes_the_node() {
    race(
        |xa| {
            xa.store(5, v(15), Gfp::GFP_KERNEL).unwrap();
        },
        |xa| {
            let five = xa.load(5);
            assert!(five == v(15) || five.is_none(), "index 5 read {five:?}");
            assert_eq!(xa.load(0), None);
        },
        |xa| {
            assert_eq!(xa.erase(5), v(15));
            assert!(xa.is_empty());
        },
    );
}

/// A two-level tree (`{0, 64}`: a top node of shift 6 over two leaves). Erasing 64 deletes its
/// leaf, leaving the top node with one child, which `xas_shrink` then removes too: two nodes
/// retired by one erase, an interior one among them. The reader walks both levels.
#[test]
fn reader_vs_erase_that_deletes_a_leaf_and_the_top() {
    race(
        |xa| {
            xa.store(0, v(10), Gfp::GFP_KERNEL).unwrap();
            xa.store(64, v(74), Gfp::GFP_KERNEL).unwrap();
        },
        |xa| {
            let g = xa.read();
            let far = g.load(64);
            assert!(far == v(74) || far.is_none(), "index 64 read {far:?}");
            assert_eq!(g.load(0), v(10));
        },
        |xa| assert_eq!(xa.erase(64), v(74)),
    );
}

/// Storing a multi-index entry over a whole leaf replaces the leaf (`xas_free_nodes`): its
/// slots become retry entries and it is retired. A reader inside the leaf must restart and
/// read either the old entry or the new one, never a retry entry or a freed slot.
#[test]
fn reader_vs_store_that_replaces_a_leaf() {
    race(
        |xa| {
            xa.store(1, v(11), Gfp::GFP_KERNEL).unwrap();
            xa.store(64, v(74), Gfp::GFP_KERNEL).unwrap();
        },
        |xa| {
            let one = xa.load(1);
            assert!(one == v(11) || one == v(99), "index 1 read {one:?}");
        },
        |xa| {
            xa.store_order(0, 6, v(99), Gfp::GFP_KERNEL).unwrap();
        },
    );
}

/// The search path (`xa_find`, used by iteration and marked searches) against the erase of
/// the previous model: each step of the iteration is its own read section, and whatever the
/// interleaving it yields index 0 and, at most, index 64 with its old entry.
#[test]
fn iterating_reader_vs_erase_that_deletes_a_leaf_and_the_top() {
    race(
        |xa| {
            xa.store(0, v(10), Gfp::GFP_KERNEL).unwrap();
            xa.store(64, v(74), Gfp::GFP_KERNEL).unwrap();
        },
        |xa| {
            let seen: Vec<(usize, usize)> = xa.iter().map(|(i, e)| (i, e.raw())).collect();
            let (zero, far) = ((0, v(10).unwrap().raw()), (64, v(74).unwrap().raw()));
            assert!(
                seen == [zero] || seen == [zero, far],
                "iteration saw {seen:?}"
            );
        },
        |xa| assert_eq!(xa.erase(64), v(74)),
    );
}

/// The advanced API's reader: an `XaState` loads index 63 (the last slot of the first leaf)
/// and steps with `xas_next` to 64, climbing to the top node through the leaf's parent
/// pointer and descending into the second leaf, while the writer erases 64 (deleting the
/// second leaf, then shrinking away the top). Every node the cursor climbs to or descends
/// into must still be allocated; it reads 64's old entry, nothing, or a retry entry.
#[test]
fn xas_next_reader_vs_erase_that_deletes_a_leaf_and_the_top() {
    race(
        |xa| {
            xa.store(63, v(73), Gfp::GFP_KERNEL).unwrap();
            xa.store(64, v(74), Gfp::GFP_KERNEL).unwrap();
        },
        |xa| {
            let mut xas = kds::xarray::XaState::new(xa, 63);
            let mut r = xas.rcu();
            assert_eq!(r.load(), v(73));
            let e = r.next();
            assert!(
                e == v(74) || e.is_none() || e == Some(kds::xarray::XA_RETRY_ENTRY),
                "index 64 read {e:?}"
            );
        },
        |xa| assert_eq!(xa.erase(64), v(74)),
    );
}
