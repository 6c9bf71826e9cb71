//! Writing through an [`XaState`] under the lock: `xas_store`, marks, `xas_create_range`,
//! `xas_split_alloc`/`xas_split`, and `xa_delete_node` (lib/xarray.c).
//!
//! Every write walks from the top with the locked primitives of `shape.rs`/`store.rs`
//! rather than trusting the cached node, then leaves the state where Linux's would be
//! (on the node stored into, on its surviving ancestor, or at `XAS_BOUNDS` after a shrink).

use core::ptr;

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use crate::sync::Ordering::*;

use super::entry::*;
use super::node::*;
use super::shape::After;
use super::state::*;
use super::*;

/// The largest order [`XasGuard::create_range`] builds: 2^24 indices, 2^18 leaves (about
/// 150 MiB of nodes). Page-cache folios, its users in Linux, are far smaller.
pub const XA_CREATE_RANGE_MAX_ORDER: u32 = 24;

impl<'a, A: NodeAlloc> XasGuard<'_, 'a, A, XaLockGuard<'a, A>> {
    /// True if the cached node is still in the tree (retired nodes have count 0 and stay
    /// allocated until the lock is dropped).
    fn cached_live(&self) -> bool {
        let n = self.xas.node;
        n & 3 == 0 && n != NULL && nref(n).count() > 0
    }

    /// `xas_store`: stores `entry` at the state's index and order (`None` erases) and
    /// returns the entry that was there. Storing over part of a larger entry replaces all of
    /// it; storing an order-`n` entry replaces every entry in its range. On failure the
    /// state holds the error ([`XaState::error`]): `ENOMEM` (retry after
    /// [`XaState::nomem`]) or `EINVAL` (a sibling entry, or a node-looking entry where it
    /// would sit in a non-leaf slot: order `>= XA_CHUNK_SHIFT` or replacing such an entry).
    /// Node-looking user pointers otherwise go in leaf slots. [`XA_ZERO_ENTRY`] and
    /// [`XA_RETRY_ENTRY`] may be stored, as in Linux.
    pub fn store(&mut self, entry: Option<XaEntry>) -> Option<XaEntry> {
        if self.xas.node == ERROR {
            return None;
        }
        let raw = raw_of(entry);
        // Node-looking entries are checked by `store_pos` (leaf slots only).
        if is_sibling(raw) {
            self.xas.set_err(Error::EINVAL);
            return None;
        }
        let (index, shift, sibs) = (
            self.xas.index,
            self.xas.shift as u32,
            self.xas.sibs as usize,
        );
        match self.sec.store_pos(index, shift, sibs, raw, Gfp::GFP_NOWAIT) {
            Err(e) => {
                self.xas.set_err(e);
                None
            }
            Ok((old, node, canon, after)) => {
                match after {
                    After::Stay if node.is_null() => self.xas.node = NULL,
                    After::Stay => {
                        self.xas.node = node as usize;
                        self.xas.offset = canon as u8;
                    }
                    After::At(p, off) => {
                        self.xas.node = p as usize;
                        self.xas.offset = off as u8;
                    }
                    After::Bounds => self.xas.node = BOUNDS,
                }
                out(old)
            }
        }
    }

    /// The lock this state holds, for the `__xa_*` operations and the debugging helpers
    /// ([`XaLockGuard::node_entry`]). Changes made through it are seen by the state's next
    /// walk; a cached node they removed is never written through (it is checked first).
    pub fn lock_guard(&self) -> &XaLockGuard<'a, A> {
        &self.sec
    }

    /// `__xa_store` while holding the lock through this state (Linux code mixes the two under
    /// one `xas_lock`); the state restarts afterwards.
    ///
    /// # Errors
    /// As [`XArray::store`].
    pub fn xa_store(
        &mut self,
        index: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        let r = self.sec.store(index, entry, gfp);
        self.xas.reset();
        r
    }

    /// `xas_set_mark`: sets `mark` on the entry the state points at (after a load, find or
    /// store), propagating it up the tree. Nothing happens in an invalid state.
    pub fn set_mark(&mut self, mark: XaMark) {
        if self.xas.node == NULL {
            self.sec.set_head_mark(mark, true);
        } else if self.cached_live() {
            self.sec
                .set_mark_at(self.xas.node as *mut XaNode, self.xas.offset as usize, mark);
        }
    }

    /// `xas_clear_mark`.
    pub fn clear_mark(&mut self, mark: XaMark) {
        if self.xas.node == NULL {
            self.sec.set_head_mark(mark, false);
        } else if self.cached_live() {
            self.sec
                .clear_mark_at(self.xas.node as *mut XaNode, self.xas.offset as usize, mark);
        }
    }

    /// `xas_init_marks`: clears every mark of the entry the state points at (an allocating
    /// array's `XA_FREE_MARK` is set instead).
    pub fn init_marks(&mut self) {
        if self.xas.node == NULL {
            self.sec.init_marks(ptr::null_mut(), 0);
        } else if self.cached_live() {
            self.sec
                .init_marks(self.xas.node as *mut XaNode, self.xas.offset as usize);
        }
    }

    /// `xas_create_range`: creates every node needed to store order-0 entries at each index
    /// of the state's range, and leaves the state at order 0 on the first index, ready for a
    /// loop of [`store`](Self::store) and [`next`](XasGuard::next). On `ENOMEM` the state
    /// keeps its index and order and holds the error (the leaves it built are removed
    /// again). Orders above [`XA_CREATE_RANGE_MAX_ORDER`] are `EINVAL`: Linux would try to
    /// build every leaf of the range until memory ran out.
    pub fn create_range(&mut self) {
        if self.xas.node == ERROR {
            return;
        }
        if self.xas.order() > XA_CREATE_RANGE_MAX_ORDER {
            self.xas.set_err(Error::EINVAL);
            return;
        }
        let index = self.xas.index;
        let size = (self.xas.sibs as u128 + 1) << self.xas.shift;
        let last = (index as u128 + size - 1).min(usize::MAX as u128) as usize;
        // From the last chunk down, as Linux does, so the state ends on the first one.
        let mut chunk_last = last;
        loop {
            let pos = match self.sec.create(chunk_last, 0, 0, true, Gfp::GFP_NOWAIT) {
                Ok(p) => p,
                Err(e) => {
                    self.xas.set_err(e);
                    self.drop_empty_leaves(chunk_last, last);
                    return;
                }
            };
            let chunk_first = chunk_last & !XA_CHUNK_MASK;
            if chunk_first <= index {
                self.xas.shift = 0;
                self.xas.sibs = 0;
                if pos.node.is_null() {
                    self.xas.node = NULL;
                } else {
                    self.xas.node = pos.node as usize;
                    self.xas.offset = get_offset(index, self.xas.node);
                }
                return;
            }
            chunk_last = chunk_first - 1;
        }
    }

    /// After a failed [`create_range`](Self::create_range): removes the still-empty leaves it
    /// built for the chunks after `failed` up to `last`, so that the array holds no empty
    /// node between operations (Linux leaves them for the retry to fill).
    fn drop_empty_leaves(&mut self, failed: usize, last: usize) {
        let mut chunk = (failed | XA_CHUNK_MASK).wrapping_add(1);
        while chunk != 0 && chunk <= last {
            if let Some(pos) = self.sec.locate(chunk, 0, 0) {
                if !pos.node.is_null() && nref(pos.node as usize).count() == 0 {
                    let _ = self.sec.delete_node(pos.node);
                }
            }
            chunk = chunk.wrapping_add(XA_CHUNK_SIZE);
        }
    }

    /// `xas_split`: splits the order-`order` entry containing the state's index into entries
    /// of the state's order, each `entry`, each with the marks the old entry had. Readers see
    /// the old entry or the new ones, never a gap. Splitting across a node level needs the
    /// nodes from [`XaState::split_alloc`] (otherwise the state holds `ENOMEM`); splitting
    /// across more than one level is `EINVAL`, as in Linux.
    pub fn split(&mut self, entry: Option<XaEntry>, order: u32) {
        if self.xas.node == ERROR {
            return;
        }
        let raw = raw_of(entry);
        // A node-looking entry may only be split into leaf slots.
        let misplaced = is_node(raw) && self.xas.shift > 0;
        if raw == 0 || misplaced || is_sibling(raw) || order >= usize::BITS {
            self.xas.set_err(Error::EINVAL);
            return;
        }
        let index = (self.xas.index >> order) << order;
        let (node, canon, old) = self.sec.walk(index);
        self.xas.node = RESTART;
        if node.is_null() || old == 0 {
            return;
        }
        let n = nref(node as usize);
        let old_sibs = (1usize << (order % XA_CHUNK_SHIFT)) - 1;
        // The entry must be exactly of `order` (Linux trusts the caller; a wrong order here
        // would rewrite slots of other entries).
        let mut sibs = 0;
        while canon + 1 + sibs < n.nr_slots() && n.slot(canon + 1 + sibs) == mk_sibling(canon) {
            sibs += 1;
        }
        if n.shift as u32 != order - order % XA_CHUNK_SHIFT || sibs != old_sibs {
            self.xas.set_err(Error::EINVAL);
            return;
        }
        let marks: [bool; XA_MAX_MARKS] =
            core::array::from_fn(|m| n.get_mark(canon, XaMark(m as u8)));
        let new_shift = self.xas.shift as u32;
        let group = self.xas.sibs as usize + 1;
        if new_shift == n.shift as u32 {
            for rel in 0..=old_sibs {
                let off = canon + rel;
                if rel % group == 0 {
                    for (m, &on) in marks.iter().enumerate() {
                        if on && !(m == 0 && self.sec.track_free()) {
                            self.sec.set_mark_at(node, off, XaMark(m as u8));
                        }
                    }
                    n.slots[off].store(raw, Release);
                } else {
                    n.slots[off].store(mk_sibling(off - rel % group), Release);
                }
            }
        } else if new_shift + XA_CHUNK_SHIFT == n.shift as u32 {
            if let Err(e) = self.split_down(node, canon, old_sibs, raw, marks, group) {
                self.xas.set_err(e);
                return;
            }
        } else {
            self.xas.set_err(Error::EINVAL);
            return;
        }
        if n.parent.load(Relaxed).is_null() {
            self.sec.shrink();
        }
    }

    /// The one-level-down case of [`split`](Self::split): a full child node per old slot.
    fn split_down(
        &mut self,
        node: *mut XaNode,
        canon: usize,
        old_sibs: usize,
        raw: usize,
        marks: [bool; XA_MAX_MARKS],
        group: usize,
    ) -> Result<()> {
        let n = nref(node as usize);
        let child_shift = n.shift as u32 - XA_CHUNK_SHIFT;
        if self.sec.preloaded() < old_sibs + 1 {
            return Err(Error::ENOMEM);
        }
        let mut pattern = 0u64;
        for off in (0..XA_CHUNK_SIZE).step_by(group) {
            pattern |= 1 << off;
        }
        let track_free = self.sec.track_free();
        for rel in 0..=old_sibs {
            let off = canon + rel;
            let child = self
                .sec
                .alloc_node(child_shift, node, off, Gfp::GFP_NOWAIT)?;
            let c = nref(child as usize);
            for j in 0..XA_CHUNK_SIZE {
                let e = if j % group == 0 {
                    raw
                } else {
                    mk_sibling(j - j % group)
                };
                c.slots[j].store(e, Relaxed);
            }
            c.count.store(XA_CHUNK_SIZE as u8, Relaxed);
            c.nr_values.store(
                if is_value(raw) {
                    XA_CHUNK_SIZE as u8
                } else {
                    0
                },
                Relaxed,
            );
            for (m, &on) in marks.iter().enumerate() {
                let bits = if on && !(m == 0 && track_free) {
                    pattern
                } else {
                    0
                };
                c.marks[m].store(bits, Relaxed);
                if bits != 0 {
                    n.marks[m].fetch_or(1 << off, Release);
                }
            }
            // Publish the full child (`Release`: readers see it initialised).
            n.slots[off].store(mk_node(child), Release);
            self.sec.notify(child);
        }
        if is_value(raw) {
            n.add_values(-(old_sibs as isize + 1));
        }
        self.sec.notify(node);
        Ok(())
    }
}

impl<'a, A: NodeAlloc> XaState<'a, A> {
    /// `xas_split_alloc`: allocates (with `gfp`, outside the lock) the nodes that
    /// [`XasGuard::split`] of an order-`order` entry into entries of this state's order
    /// will need. On failure the state holds `ENOMEM` (or `EINVAL` for a split of more than
    /// one level).
    pub fn split_alloc(&mut self, order: u32, gfp: Gfp) {
        let shift = self.shift as u32;
        if shift + XA_CHUNK_SHIFT > order {
            return;
        }
        if shift + 2 * XA_CHUNK_SHIFT <= order {
            self.set_err(Error::EINVAL);
            return;
        }
        let need = 1usize << (order % XA_CHUNK_SHIFT);
        while self.nr_spare < need {
            let Some(p) = self.xa.alloc.alloc(NODE_LAYOUT, gfp) else {
                self.destroy();
                self.set_err(Error::ENOMEM);
                return;
            };
            let p = p.cast::<XaNode>().as_ptr();
            // SAFETY: a fresh block; only its link is initialised until it is used.
            unsafe {
                ptr::addr_of_mut!((*p).next_free).write(crate::sync::AtomicPtr::new(self.spare))
            };
            self.spare = p;
            self.nr_spare += 1;
        }
    }
}

impl<'a, A: NodeAlloc> XaLockGuard<'a, A> {
    /// Finds `id` among the nodes of the tree (depth first); null if it is not there.
    fn find_node(&self, id: XaNodeId) -> *mut XaNode {
        let head = self.head();
        if !is_node(head) {
            return ptr::null_mut();
        }
        let top = to_node(head);
        if top as usize == id.0 {
            return top;
        }
        let mut node = top;
        let mut off = 0;
        loop {
            let n = nref(node as usize);
            if n.shift > 0 && off < n.nr_slots() {
                let e = n.slots[off].load(Relaxed);
                if is_node(e) {
                    if to_node(e) as usize == id.0 {
                        return to_node(e);
                    }
                    node = to_node(e);
                    off = 0;
                } else {
                    off += 1;
                }
                continue;
            }
            if node == top {
                return ptr::null_mut();
            }
            off = n.offset.load(Relaxed) as usize + 1;
            node = n.parent.load(Relaxed);
        }
    }

    /// `xa_delete_node`: removes the node `id` and everything below it (the page cache's
    /// shadow-node shrinker), telling `update` about the nodes that change. Returns false
    /// (and does nothing) if `id` is not a node of the tree.
    pub fn xa_delete_node(&self, id: XaNodeId, update: Option<&'a dyn Fn(&XaNodeUpdate)>) -> bool {
        let node = self.find_node(id);
        if node.is_null() {
            return false;
        }
        let prev = self.update.replace(update);
        let n = nref(node as usize);
        let parent = n.parent.load(Relaxed);
        let pos = Pos {
            node: parent,
            off: n.offset.load(Relaxed) as usize,
            sibs: 0,
        };
        let _ = self.store_at(pos, 0);
        self.update.set(prev);
        true
    }

    /// `xa_entry_locked` for a node named by `id` that is in the tree or was removed while
    /// this lock has been held (retired, not yet freed): the raw slot `off`. `None` for a
    /// node this lock cannot vouch for.
    pub fn node_entry(&self, id: XaNodeId, off: usize) -> Option<usize> {
        let mut r = self.w().retired;
        let mut found = !self.find_node(id).is_null();
        while !found && !r.is_null() {
            found = r as usize == id.0;
            r = nref(r as usize).next_free.load(Relaxed);
        }
        (found && off < XA_CHUNK_SIZE).then(|| nref(id.0).slots[off].load(Relaxed))
    }

    /// `node->count` and `node->nr_values` of the node `id` if it is in the tree.
    pub fn node_counts(&self, id: XaNodeId) -> Option<(usize, usize)> {
        let n = self.find_node(id);
        (!n.is_null()).then(|| {
            let n = nref(n as usize);
            (n.count(), n.nr_values())
        })
    }
}
