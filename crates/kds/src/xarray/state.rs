//! The advanced API (include/linux/xarray.h, Documentation/core-api/xarray.rst "Advanced
//! API"): [`XaState`], a cursor into the array (`struct xa_state`), and the guards through
//! which it works, [`XasRcu`] (a read section) and [`XasLocked`] (the array's lock).
//!
//! # The state
//! An `XaState` names a position: `index`, and for multi-index operations an order split into
//! `shift` (a multiple of 6: the node level) and `sibs` (extra slots at that level). After a
//! walk it also caches *where* the walk ended: `node` and `offset`. Besides a real node,
//! `node` takes the special values of Linux ([`XasNode`]):
//! - `Head` (Linux `NULL`): the entry lives in the array's head (index 0 of a tiny array);
//! - `Restart` (`XAS_RESTART`): nothing cached; the next operation walks from the top.
//!   [`XaState::set`], [`XaState::reset`] and [`XasGuard::pause`] put the state here;
//! - `Bounds` (`XAS_BOUNDS`): the walk went past the end of the tree (or a store shrank it);
//! - `Error(e)` (`XA_ERROR(e)`): an operation failed; every later operation is a no-op
//!   until the state is reset. [`XaState::error`] reads it, [`XaState::nomem`] turns an
//!   `ENOMEM` into an allocated node and a restart (the `xas_nomem` retry loop).
//!
//! # Sections (the Rust form of "hold the RCU read lock or the xa_lock")
//! Linux's contract is that `xas_*` calls happen under `rcu_read_lock()` or `xa_lock()`.
//! Here that is a value: [`XaState::rcu`] opens a read section and [`XaState::lock`] takes
//! the lock; both return an [`XasGuard`] that borrows the state and offers the operations
//! (reads on both, stores and marks only on [`XasLocked`]). Dropping the guard ends the
//! section; the state keeps its position for the next one, as in Linux. A node cached in
//! one section may have been freed before the next, which Linux leaves to the caller; here
//! binding a new section re-checks that the cached node is still on the path to `index`
//! and restarts the walk if not, so a stale cursor can never touch freed memory.
//!
//! # Allocation
//! Stores under [`XasLocked`] allocate nodes with `GFP_NOWAIT` (Linux: under the spinlock).
//! When that fails the state holds `ENOMEM`; the caller drops the guard and calls
//! [`XaState::nomem`] with its real GFP flags, which allocates a node for the next attempt:
//!
//! ```ignore
//! # use kds::xarray::*; use kds::alloc::Gfp;
//! # let xa = XArray::new_in(kds::alloc::Global); // feature "alloc"
//! let mut xas = XaState::new(&xa, 5);
//! loop {
//!     xas.lock().store(Some(xa_mk_value(5)));
//!     if !xas.nomem(Gfp::GFP_KERNEL) {
//!         break;
//!     }
//! }
//! assert_eq!(xas.error(), None);
//! assert_eq!(xa.load(5), Some(xa_mk_value(5)));
//! ```

use core::ptr;

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::Error;
use crate::sync::Ordering::*;

use super::entry::*;
use super::node::*;
use super::*;

/// `XA_RETRY_ENTRY`: what a reader finds in a slot of a node being removed; see
/// [`XasGuard::retry`].
pub const XA_RETRY_ENTRY: XaEntry = match XaEntry::from_raw(RETRY) {
    Some(e) => e,
    None => panic!(),
};

// The cached-node encoding, as in Linux: a node pointer (4-byte aligned), or one of these.
pub(super) const NULL: usize = 0;
pub(super) const BOUNDS: usize = 1;
pub(super) const ERROR: usize = 2;
pub(super) const RESTART: usize = 3;

pub use super::node::{XaNodeId, XaNodeUpdate, XaUpdateFn};

/// Where an [`XaState`] points (Linux's `xas->xa_node`, decoded).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XasNode {
    /// `NULL`: the head of the array.
    Head,
    /// `XAS_BOUNDS`: past the end of the tree.
    Bounds,
    /// `XAS_RESTART`: walk again from the top.
    Restart,
    /// `XA_ERROR(e)`.
    Error(Error),
    /// A node.
    Node(XaNodeId),
}

/// The advanced-API cursor (`struct xa_state`); see the [`xarray` module
/// documentation](super) ("The advanced API").
pub struct XaState<'a, A: NodeAlloc> {
    pub(super) xa: &'a XArray<A>,
    pub(super) index: usize,
    pub(super) shift: u8,
    pub(super) sibs: u8,
    pub(super) offset: u8,
    pub(super) node: usize,
    pub(super) err: Error,
    /// `xa_alloc`: nodes from [`XaState::nomem`] / [`XasLocked::split_alloc`] (raw blocks
    /// linked through `next_free`), handed to the array's reserve when the lock is taken.
    pub(super) spare: *mut XaNode,
    pub(super) nr_spare: usize,
    pub(super) update: Option<XaUpdateFn<'a>>,
}

impl<'a, A: NodeAlloc> XaState<'a, A> {
    /// `XA_STATE(xas, xa, index)`: a state at `index`, nothing cached.
    pub fn new(xa: &'a XArray<A>, index: usize) -> Self {
        XaState {
            xa,
            index,
            shift: 0,
            sibs: 0,
            offset: 0,
            node: RESTART,
            err: Error::EINVAL,
            spare: ptr::null_mut(),
            nr_spare: 0,
            update: None,
        }
    }

    /// `XA_STATE_ORDER(xas, xa, index, order)`: a state for the order-`order` entry
    /// containing `index`.
    pub fn new_order(xa: &'a XArray<A>, index: usize, order: u32) -> Self {
        let mut s = Self::new(xa, index);
        s.set_order(index, order);
        s
    }

    /// The array.
    pub fn array(&self) -> &'a XArray<A> {
        self.xa
    }

    /// `xas.xa_index`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The order the state covers (`xa_shift` + log2(`xa_sibs` + 1)).
    pub fn order(&self) -> u32 {
        self.shift as u32 + (self.sibs as u32 + 1).ilog2()
    }

    /// `xas.xa_node`, decoded.
    pub fn node(&self) -> XasNode {
        match self.node {
            NULL => XasNode::Head,
            BOUNDS => XasNode::Bounds,
            RESTART => XasNode::Restart,
            ERROR => XasNode::Error(self.err),
            n => XasNode::Node(XaNodeId(n)),
        }
    }

    /// `xas.xa_offset`: the slot in the cached node.
    pub fn offset(&self) -> usize {
        self.offset as usize
    }

    /// `xas_set`: moves to `index` (order 0 is not implied: the order is kept) and forgets
    /// the cached walk.
    pub fn set(&mut self, index: usize) {
        self.index = index;
        self.node = RESTART;
    }

    /// `xas_set_order`: moves to the order-`order` entry containing `index`. An order above
    /// `usize::BITS` puts the state into the error state `EINVAL`.
    pub fn set_order(&mut self, index: usize, order: u32) {
        if order > usize::BITS {
            self.set_err(Error::EINVAL);
            return;
        }
        self.index = if order < usize::BITS {
            (index >> order) << order
        } else {
            0
        };
        self.shift = (order - order % XA_CHUNK_SHIFT) as u8;
        self.sibs = ((1u32 << (order % XA_CHUNK_SHIFT)) - 1) as u8;
        self.node = RESTART;
    }

    /// `xas_set_update`: installs the callback told about every node whose counters change
    /// while this state stores (the page cache's shadow-node tracking).
    pub fn set_update(&mut self, update: &'a dyn Fn(&XaNodeUpdate)) {
        self.update = Some(update);
    }

    /// `xas_reset`: forgets the cached walk (and, as in Linux, an error).
    pub fn reset(&mut self) {
        self.node = RESTART;
    }

    /// `xas_set_err`: puts the state into the error state.
    pub fn set_err(&mut self, err: Error) {
        self.node = ERROR;
        self.err = err;
    }

    /// `xas_error`: the error of the state, if it is in the error state.
    pub fn error(&self) -> Option<Error> {
        (self.node == ERROR).then_some(self.err)
    }

    /// `xas_invalid`: true in the `Restart`, `Bounds` and error states.
    pub fn invalid(&self) -> bool {
        self.node & 3 != 0
    }

    /// `xas_valid`.
    pub fn valid(&self) -> bool {
        !self.invalid()
    }

    /// `xas_nomem`: if the last operation failed with `ENOMEM`, allocates nodes with `gfp`
    /// for the next attempt, clears the error and returns true; otherwise frees any node
    /// left over (`xas_destroy`) and returns false (also when the allocation fails: the
    /// error stays).
    ///
    /// Linux allocates one node per call and relies on the failed `xas_create` leaving the
    /// nodes it did build in the tree, so each round gets one level further. Here a failed
    /// store removes its partial path again (the array never holds empty nodes between
    /// operations), so one node per round would never get further: `nomem` allocates
    /// [`XA_PRELOAD_NODES`], enough for any single store (what `radix_tree_preload` keeps).
    /// Nodes not used stay in the array's reserve for later stores.
    pub fn nomem(&mut self, gfp: Gfp) -> bool {
        if self.error() != Some(Error::ENOMEM) {
            self.destroy();
            return false;
        }
        while self.nr_spare < XA_PRELOAD_NODES {
            let Some(p) = self.xa.alloc.alloc(NODE_LAYOUT, gfp) else {
                if self.nr_spare == 0 {
                    return false;
                }
                break;
            };
            let p = p.cast::<XaNode>().as_ptr();
            // SAFETY: a fresh block of the node layout; only its link is initialised until
            // the lock guard takes it into the reserve.
            unsafe {
                ptr::addr_of_mut!((*p).next_free).write(crate::sync::AtomicPtr::new(self.spare))
            };
            self.spare = p;
            self.nr_spare += 1;
        }
        self.node = RESTART;
        true
    }

    /// `xas_destroy`: frees nodes allocated by [`XaState::nomem`] and not used.
    pub fn destroy(&mut self) {
        while !self.spare.is_null() {
            let p = self.spare;
            // SAFETY: spare blocks are ours, linked through `next_free`, from `xa.alloc`.
            unsafe {
                self.spare = (*p).next_free.load(Relaxed);
                self.xa
                    .alloc
                    .free(core::ptr::NonNull::new_unchecked(p.cast()), NODE_LAYOUT);
            }
        }
        self.nr_spare = 0;
    }

    /// `rcu_read_lock()` for this state: a read section in which it can load, find and move.
    pub fn rcu(&mut self) -> XasRcu<'_, 'a, A> {
        let sec = self.xa.read();
        let mut g = XasGuard { xas: self, sec };
        g.revalidate();
        g
    }

    /// `xas_lock()`: takes the array's lock; the guard can also store and change marks.
    pub fn lock(&mut self) -> XasLocked<'_, 'a, A> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let sec = self.xa.lock();
        sec.update.set(self.update);
        // Hand the nodes from `nomem` to the writer's reserve, where `alloc_node` finds them.
        let w = sec.w();
        while !self.spare.is_null() {
            let p = self.spare;
            // SAFETY: spare blocks are ours and linked through `next_free`.
            unsafe {
                self.spare = (*p).next_free.load(Relaxed);
                (*p).next_free.store(w.reserve, Relaxed);
            }
            w.reserve = p;
            w.nr_reserve += 1;
        }
        self.nr_spare = 0;
        let mut g = XasGuard { xas: self, sec };
        g.revalidate();
        g
    }
}

impl<A: NodeAlloc> Drop for XaState<'_, A> {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Proof of a section over an array: a read section ([`XaReadGuard`]) or the lock
/// ([`XaLockGuard`]). Nodes reached inside a section stay allocated until it ends.
pub trait XaSection<'a, A: NodeAlloc>: sealed::Sealed {}
impl<'a, A: NodeAlloc> XaSection<'a, A> for XaReadGuard<'a, A> {}
impl<'a, A: NodeAlloc> XaSection<'a, A> for XaLockGuard<'a, A> {}
mod sealed {
    pub trait Sealed {}
    impl<A: crate::alloc::NodeAlloc> Sealed for super::XaReadGuard<'_, A> {}
    impl<A: crate::alloc::NodeAlloc> Sealed for super::XaLockGuard<'_, A> {}
}

/// An [`XaState`] inside a section `S`: the advanced operations. Dereferences (shared) to
/// the state for its accessors (`index`, `order`, `node`, `error`, ...); the setters are
/// methods of the guard too.
pub struct XasGuard<'s, 'a, A: NodeAlloc, S: XaSection<'a, A>> {
    pub(super) xas: &'s mut XaState<'a, A>,
    pub(super) sec: S,
}

/// An [`XaState`] in a read section (`rcu_read_lock`).
pub type XasRcu<'s, 'a, A> = XasGuard<'s, 'a, A, XaReadGuard<'a, A>>;
/// An [`XaState`] under the array's lock (`xas_lock`).
pub type XasLocked<'s, 'a, A> = XasGuard<'s, 'a, A, XaLockGuard<'a, A>>;

impl<'a, A: NodeAlloc, S: XaSection<'a, A>> core::ops::Deref for XasGuard<'_, 'a, A, S> {
    type Target = XaState<'a, A>;
    fn deref(&self) -> &XaState<'a, A> {
        self.xas
    }
}
// No `DerefMut`: a `&mut XaState` could be swapped for a state of another array, whose
// cached node this guard's section does not protect. The setters are forwarded instead.

/// `xa_entry`: a slot of a node the section keeps allocated.
#[inline(always)]
pub(super) fn entry_at(node: usize, off: usize) -> usize {
    // SAFETY: `node` is a node the caller reached in its current section (see `revalidate`).
    unsafe { node_ref(mk_node(node as *mut XaNode)) }.slot(off)
}

#[inline(always)]
pub(super) fn nref<'r>(node: usize) -> &'r XaNode {
    // SAFETY: as `entry_at`.
    unsafe { node_ref(mk_node(node as *mut XaNode)) }
}

#[inline(always)]
pub(super) fn get_offset(index: usize, node: usize) -> u8 {
    ((index >> nref(node).shift) & XA_CHUNK_MASK) as u8
}

/// Decodes a raw entry for the caller (`None` for empty).
#[inline(always)]
pub(super) fn out(e: usize) -> Option<XaEntry> {
    XaEntry::from_raw(e)
}

impl<'a, A: NodeAlloc, S: XaSection<'a, A>> XasGuard<'_, 'a, A, S> {
    /// Keeps a cached node only if it is on the current path to `index` (so it is live in
    /// this section); otherwise restarts the walk.
    fn revalidate(&mut self) {
        let want = self.xas.node;
        if want & 3 != 0 || want == NULL {
            return;
        }
        let mut e = self.xas.xa.head.load(Acquire);
        let mut top = true;
        while is_node(e) {
            let n = to_node(e) as usize;
            if n == want {
                return;
            }
            let node = nref(n);
            if node.shift == 0 || (top && self.xas.index > top_max_of(node)) {
                break;
            }
            top = false;
            e = node.slot((self.xas.index >> node.shift) & XA_CHUNK_MASK);
            if is_sibling(e) {
                break;
            }
        }
        self.xas.node = RESTART;
    }

    /// [`XaState::set`] inside the section.
    pub fn set(&mut self, index: usize) {
        self.xas.set(index);
    }

    /// [`XaState::set_order`] inside the section.
    pub fn set_order(&mut self, index: usize, order: u32) {
        self.xas.set_order(index, order);
    }

    /// [`XaState::reset`] inside the section.
    pub fn reset(&mut self) {
        self.xas.reset();
    }

    /// [`XaState::set_err`] inside the section.
    pub fn set_err(&mut self, err: Error) {
        self.xas.set_err(err);
    }

    pub(super) fn set_bounds(&mut self) -> usize {
        self.xas.node = BOUNDS;
        0
    }

    /// `xas_start`.
    pub(super) fn start(&mut self) -> usize {
        if self.xas.valid() {
            return self.reload_raw();
        }
        if self.xas.node == ERROR {
            return 0;
        }
        let entry = self.xas.xa.head.load(Acquire);
        if !is_node(entry) {
            if self.xas.index != 0 {
                return self.set_bounds();
            }
        } else if (self.xas.index >> nref(to_node(entry) as usize).shift) > XA_CHUNK_MASK {
            return self.set_bounds();
        }
        self.xas.node = NULL;
        entry
    }

    /// `xas_descend`: one level down towards `index`.
    pub(super) fn descend(&mut self, node: usize) -> usize {
        let n = nref(node);
        let mut off = (self.xas.index >> n.shift) & XA_CHUNK_MASK;
        let mut entry = n.slot(off);
        self.xas.node = node;
        while is_sibling(entry) {
            off = to_sibling(entry);
            entry = n.slot(off);
            if n.shift != 0 && is_node(entry) {
                entry = RETRY;
            }
        }
        self.xas.offset = off as u8;
        entry
    }

    pub(super) fn load_raw(&mut self) -> usize {
        let mut entry = self.start();
        while is_node(entry) {
            let node = to_node(entry) as usize;
            let shift = nref(node).shift;
            if self.xas.shift > shift {
                break;
            }
            entry = self.descend(node);
            if shift == 0 {
                break;
            }
        }
        entry
    }

    /// `xas_load`: walks to `index` and returns its entry: `None` if empty, otherwise the
    /// raw entry, which may be [`XA_ZERO_ENTRY`] (reserved) or [`XA_RETRY_ENTRY`]; a state
    /// of order above 0 stops at its level and may return a node (internal) entry. Leaves
    /// the state on the node holding the slot.
    pub fn load(&mut self) -> Option<XaEntry> {
        out(self.load_raw())
    }

    fn reload_raw(&self) -> usize {
        let node = self.xas.node;
        if node == NULL {
            return self.xas.xa.head.load(Acquire);
        }
        if node & 3 != 0 {
            return 0;
        }
        let n = nref(node);
        let off = (self.xas.index >> n.shift) & XA_CHUNK_MASK;
        let e = n.slot(off);
        if !is_sibling(e) {
            return e;
        }
        n.slot(to_sibling(e))
    }

    /// `xas_reload`: re-reads the slot the state points at (after a retry or a concurrent
    /// change), without walking.
    pub fn reload(&self) -> Option<XaEntry> {
        out(self.reload_raw())
    }

    /// `xas_retry`: true if `entry` must be skipped: [`XA_ZERO_ENTRY`] (reserved), or
    /// [`XA_RETRY_ENTRY`], in which case the state is also reset so that the next step
    /// walks again from the top.
    pub fn retry(&mut self, entry: Option<XaEntry>) -> bool {
        match entry.map(XaEntry::raw) {
            Some(ZERO) => true,
            Some(RETRY) => {
                self.xas.reset();
                true
            }
            _ => false,
        }
    }

    /// `xas_get_mark`: whether the entry the state points at has `mark`.
    pub fn get_mark(&self, mark: XaMark) -> bool {
        let node = self.xas.node;
        if node & 3 != 0 {
            return false;
        }
        if node == NULL {
            return self.xas.xa.head_marks.load(Acquire) & (1 << mark.0) != 0;
        }
        nref(node).get_mark(self.xas.offset as usize, mark)
    }

    /// `xas.xa_node->count` and `->nr_values` of the node the state points at.
    pub fn node_counts(&self) -> Option<(usize, usize)> {
        let n = self.xas.node;
        if n & 3 != 0 || n == NULL {
            return None;
        }
        let r = nref(n);
        Some((r.count(), r.nr_values()))
    }

    /// `xas_get_order`: the order of the entry the state points at (after a load or a find).
    pub fn get_order(&self) -> u32 {
        let node = self.xas.node;
        if node & 3 != 0 || node == NULL {
            return 0;
        }
        let n = nref(node);
        let mut order = 0;
        loop {
            let slot = self.xas.offset as usize + (1 << order);
            if slot >= XA_CHUNK_SIZE || !is_sibling(n.slot(slot)) {
                break;
            }
            order += 1;
        }
        order + n.shift as u32
    }

    /// `xas_pause`: prepares to drop the section in the middle of an iteration: the state
    /// forgets its node and moves past the current entry (all of a multi-index entry), so
    /// the next find continues after it.
    pub fn pause(&mut self) {
        let node = self.xas.node;
        if node & 3 != 0 {
            return;
        }
        self.xas.node = RESTART;
        if node == NULL {
            self.xas.index = self.xas.index.wrapping_add(1);
            return;
        }
        let n = nref(node);
        let mut off = self.xas.offset as usize;
        loop {
            off += 1;
            if off >= XA_CHUNK_SIZE || !is_sibling(n.slot(off)) {
                break;
            }
        }
        let shift = n.shift as u32;
        self.xas.index &= usize::MAX.wrapping_shl(shift);
        self.xas.index = self
            .xas
            .index
            .wrapping_add((off - self.xas.offset as usize).wrapping_shl(shift));
        if self.xas.index == 0 {
            self.xas.node = BOUNDS;
        }
    }

    /// `xa_parent`, `node->offset`.
    pub(super) fn up(&mut self, node: usize) {
        let n = nref(node);
        self.xas.offset = n.offset.load(Relaxed);
        self.xas.node = n.parent.load(Acquire) as usize;
    }
}

/// Largest index under a top node.
fn top_max_of(n: &XaNode) -> usize {
    top_max(n.shift as u32)
}
