//! The writer lock ([`XaLockGuard`]), reclamation of retired nodes, node allocation and marks.

use core::cell::Cell;
use core::ptr;

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use crate::sync::{AtomicPtr, AtomicU64, AtomicU8, Ordering::*};

use super::entry::*;
use super::node::*;
use super::node::{XaNodeId, XaNodeUpdate, XaUpdateFn};
use super::*;

/// The writer lock of an [`XArray`], with the locked (`__xa_*`) operations.
pub struct XaLockGuard<'a, A: NodeAlloc> {
    pub(super) xa: &'a XArray<A>,
    /// The `xa_update_node_t` of the `XaState` working under this lock (`xas_set_update`):
    /// called whenever a node's `count`/`nr_values` changes, a node is added, or a node is
    /// freed (then with both counts 0). It gets a copy of the node's counters, never the
    /// guard, so it cannot re-enter the writer state.
    pub(super) update: Cell<Option<XaUpdateFn<'a>>>,
}

impl<A: NodeAlloc> Drop for XaLockGuard<'_, A> {
    fn drop(&mut self) {
        self.reclaim_if_quiescent();
        self.xa.lock.store(false, Release);
    }
}

impl<'a, A: NodeAlloc> XaLockGuard<'a, A> {
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(super) fn w(&self) -> &mut WriterState {
        // SAFETY: the writer state is only accessed with the lock held, which this guard
        // proves, and never across a call that could re-enter (no callbacks under the lock).
        unsafe { &mut *self.xa.w.get() }
    }

    /// `xas_update`: tells the update callback (if any) about `node`.
    pub(super) fn notify(&self, node: *mut XaNode) {
        if let Some(f) = self.update.get() {
            // SAFETY: `node` is a live or just-unlinked (retired, not yet freed) node.
            let n = unsafe { &*node };
            f(&XaNodeUpdate {
                node: XaNodeId(node as usize),
                shift: n.shift as u32,
                count: n.count(),
                nr_values: n.nr_values(),
            });
        }
    }

    #[inline(always)]
    pub(super) fn head(&self) -> usize {
        self.xa.head.load(Relaxed)
    }

    #[inline(always)]
    pub(super) fn track_free(&self) -> bool {
        self.xa.flags.track_free()
    }

    fn reclaim_if_quiescent(&self) {
        if let Some(rcu) = self.xa.alloc.rcu() {
            return self.reclaim_after_grace_period(rcu);
        }
        let w = self.w();
        if w.retired.is_null() {
            return;
        }
        // An RMW on the reader count: readers entering later synchronise with it and cannot
        // see the retired nodes; readers that left released their reads to it.
        if self
            .xa
            .readers
            .compare_exchange(0, 0, AcqRel, Acquire)
            .is_err()
        {
            return;
        }
        let retired = core::mem::replace(&mut w.retired, ptr::null_mut());
        // SAFETY: retired nodes are unlinked tree nodes, and no reader is inside (checked
        // above), so none can still hold one.
        unsafe { free_retired(&self.xa.alloc, retired) };
    }

    /// With an RCU domain: frees the batch whose grace period has ended, then hands the
    /// retired nodes to a new grace period if none is pending (module docs, "With RCU").
    fn reclaim_after_grace_period(&self, rcu: &dyn crate::rcu::RcuDomain) {
        let w = self.w();
        if !w.waiting.is_null() && rcu.poll(w.cookie) {
            let done = core::mem::replace(&mut w.waiting, ptr::null_mut());
            // SAFETY: these nodes were unlinked before `w.cookie` was taken, and its grace
            // period has ended: every reader that could have reached them has left.
            unsafe { free_retired(&self.xa.alloc, done) };
        }
        if w.waiting.is_null() && !w.retired.is_null() {
            w.waiting = core::mem::replace(&mut w.retired, ptr::null_mut());
            w.cookie = rcu.start_poll();
        }
    }

    /// Returns the number of nodes waiting for readers to leave (or for a grace period).
    pub fn retired_nodes(&self) -> usize {
        let mut c = 0;
        for mut n in [self.w().retired, self.w().waiting] {
            while !n.is_null() {
                c += 1;
                // SAFETY: retired nodes stay allocated until reclaimed under this lock.
                n = unsafe { (*n).next_free.load(Relaxed) };
            }
        }
        c
    }

    // -- nodes -----------------------------------------------------------------------------

    pub(super) fn alloc_node(
        &self,
        shift: u32,
        parent: *mut XaNode,
        offset: usize,
        gfp: Gfp,
    ) -> Result<*mut XaNode> {
        let w = self.w();
        let p = if !w.reserve.is_null() {
            let p = w.reserve;
            // SAFETY: reserve nodes are allocated blocks linked through `next_free`.
            w.reserve = unsafe { (*p).next_free.load(Relaxed) };
            w.nr_reserve -= 1;
            p
        } else if w.reserve_only {
            return Err(Error::EAGAIN);
        } else {
            self.xa
                .alloc
                .alloc(NODE_LAYOUT, gfp)
                .ok_or(Error::ENOMEM)?
                .cast::<XaNode>()
                .as_ptr()
        };
        let free = if self.track_free() { u64::MAX } else { 0 };
        // SAFETY: `p` is an allocated block of the node layout, exclusively ours.
        unsafe {
            p.write(XaNode {
                shift: shift as u8,
                offset: AtomicU8::new(offset as u8),
                count: AtomicU8::new(0),
                nr_values: AtomicU8::new(0),
                parent: AtomicPtr::new(parent),
                next_free: AtomicPtr::new(ptr::null_mut()),
                marks: [AtomicU64::new(free), AtomicU64::new(0), AtomicU64::new(0)],
                slots: crate::sync::zeroed_atomic_usizes(),
                free_check: crate::sync::FreeCheck::new(),
            });
        }
        Ok(p)
    }

    pub(super) fn preload(&self, gfp: Gfp) -> Result<()> {
        let w = self.w();
        while w.nr_reserve < XA_PRELOAD_NODES {
            let p = self
                .xa
                .alloc
                .alloc(NODE_LAYOUT, gfp)
                .ok_or(Error::ENOMEM)?
                .cast::<XaNode>()
                .as_ptr();
            // SAFETY: a fresh block; only its link field is initialised until it is used.
            unsafe { ptr::addr_of_mut!((*p).next_free).write(AtomicPtr::new(w.reserve)) };
            w.reserve = p;
            w.nr_reserve += 1;
        }
        Ok(())
    }

    /// Returns the number of preloaded nodes.
    pub fn preloaded(&self) -> usize {
        self.w().nr_reserve
    }

    /// Makes node allocation fail with `EAGAIN` instead of calling the allocator (the
    /// `idr_get_new` compatibility path); returns the previous setting.
    pub(crate) fn set_reserve_only(&self, on: bool) -> bool {
        core::mem::replace(&mut self.w().reserve_only, on)
    }

    pub(super) fn retire(&self, node: *mut XaNode) {
        let w = self.w();
        // SAFETY: `node` was just unlinked and is ours to queue.
        unsafe { (*node).next_free.store(w.retired, Relaxed) };
        w.retired = node;
    }

    /// `xas_free_nodes`: retires a detached subtree, replacing its entries with retry entries
    /// so that readers inside it restart. Each node's `count` drops to 0 *before* its first
    /// retry entry is written (`Release`), so a reader that finds a retry entry in a node
    /// with a non-zero count knows it was stored by a user, not by this.
    pub(super) fn free_nodes(&self, top: *mut XaNode) {
        let mut node = top;
        let mut off = 0;
        // SAFETY: the subtree was detached under the lock; nodes stay allocated (retired).
        unsafe {
            loop {
                let n = &*node;
                if off == 0 {
                    n.count.store(0, Relaxed);
                }
                if off < n.nr_slots() {
                    let e = n.slots[off].load(Relaxed);
                    if is_child(e, n.shift) {
                        node = to_node(e);
                        off = 0;
                        continue;
                    }
                    if e != 0 {
                        n.slots[off].store(RETRY, Release);
                    }
                    off += 1;
                    continue;
                }
                let parent = n.parent.load(Relaxed);
                let poff = n.offset.load(Relaxed) as usize;
                n.nr_values.store(0, Relaxed);
                self.notify(node);
                self.retire(node);
                if node == top {
                    return;
                }
                node = parent;
                off = poff + 1;
            }
        }
    }

    // -- marks -----------------------------------------------------------------------------

    pub(super) fn set_head_mark(&self, m: XaMark, on: bool) {
        if on {
            self.xa.head_marks.fetch_or(1 << m.0, Release);
        } else {
            self.xa.head_marks.fetch_and(!(1 << m.0), Release);
        }
    }

    /// `xas_set_mark` at `(node, off)`, propagating up.
    pub(super) fn set_mark_at(&self, mut node: *mut XaNode, mut off: usize, m: XaMark) {
        while !node.is_null() {
            // SAFETY: `node` is a live node of the tree (writer).
            let n = unsafe { &*node };
            let bit = 1u64 << off;
            if n.marks[m.0 as usize].fetch_or(bit, Release) & bit != 0 {
                return;
            }
            off = n.offset.load(Relaxed) as usize;
            node = n.parent.load(Relaxed);
        }
        self.set_head_mark(m, true);
    }

    /// `xas_clear_mark` at `(node, off)`, propagating up while a node becomes unmarked.
    pub(super) fn clear_mark_at(&self, mut node: *mut XaNode, mut off: usize, m: XaMark) {
        while !node.is_null() {
            // SAFETY: `node` is a live node of the tree (writer).
            let n = unsafe { &*node };
            let bit = 1u64 << off;
            let old = n.marks[m.0 as usize].fetch_and(!bit, Release);
            if old & bit == 0 || old & !bit != 0 {
                return;
            }
            off = n.offset.load(Relaxed) as usize;
            node = n.parent.load(Relaxed);
        }
        self.set_head_mark(m, false);
    }

    /// `xas_init_marks`: clears every mark of the slot (sets `XA_FREE_MARK` if tracking).
    pub(super) fn init_marks(&self, node: *mut XaNode, off: usize) {
        for m in 0..XA_MAX_MARKS as u8 {
            if node.is_null() {
                self.set_head_mark(XaMark(m), false);
            } else if m == 0 && self.track_free() {
                self.set_mark_at(node, off, XaMark(m));
            } else {
                self.clear_mark_at(node, off, XaMark(m));
            }
        }
    }

    /// `xas_squash_marks`: moves the marks of the slots `off+1..=off+sibs` onto `off`.
    pub(super) fn squash_marks(&self, node: *mut XaNode, off: usize, sibs: usize) {
        // SAFETY: a live node of the tree.
        let n = unsafe { &*node };
        let range = (((1u128 << (sibs + 1)) - 1) as u64) << off;
        for m in 0..XA_MAX_MARKS {
            let old = n.marks[m].load(Relaxed);
            if old & range & !(1 << off) != 0 {
                n.marks[m].store((old & !range) | (1 << off), Release);
            }
        }
    }
}
