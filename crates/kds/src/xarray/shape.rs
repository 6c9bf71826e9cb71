//! The tree's shape: growing (`xas_expand`, `xas_create`), shrinking and deleting nodes.

use core::ptr;

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::Result;
use crate::sync::Ordering::*;

use super::entry::*;
use super::node::*;
use super::*;

/// Where a store leaves an `XaState` (Linux's `xas_delete_node` / `xas_shrink` move
/// `xas->xa_node`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum After {
    /// The node stored into survives: the state stays on it.
    Stay,
    /// The node was deleted: the state moves to its deepest surviving ancestor, at the slot
    /// the deleted child occupied.
    At(*mut XaNode, usize),
    /// The top node was deleted or the tree shrank: `XAS_BOUNDS`.
    Bounds,
}

impl<'a, A: NodeAlloc> XaLockGuard<'a, A> {
    // -- tree shape ------------------------------------------------------------------------

    /// `xas_shrink`: moves a lone entry at slot 0 of the top node up into the head. Returns
    /// true if the tree shrank (an `XaState` that stored then points at `XAS_BOUNDS`).
    pub(super) fn shrink(&self) -> bool {
        let mut shrunk = false;
        loop {
            let head = self.head();
            if !is_node(head) {
                return shrunk;
            }
            let node = to_node(head);
            // SAFETY: the top node is live.
            let n = unsafe { &*node };
            if n.count() != 1 {
                return shrunk;
            }
            let e = n.slots[0].load(Relaxed);
            // Not an entry of a leaf that looks like a node: the head would take it for the
            // top node (Linux's IDR `radix_tree_shrink` keeps slot 0 in place for this).
            if e == 0 || is_node(e) != (n.shift != 0) {
                return shrunk;
            }
            shrunk = true;
            if is_node(e) {
                // SAFETY: a live child node.
                unsafe { (*to_node(e)).parent.store(ptr::null_mut(), Relaxed) };
            }
            let mut hm = 0u8;
            for m in 0..XA_MAX_MARKS {
                if n.marks[m].load(Relaxed) & 1 != 0 {
                    hm |= 1 << m;
                }
            }
            self.xa.head_marks.store(hm, Release);
            self.xa.head.store(e, Release);
            n.count.store(0, Relaxed);
            n.nr_values.store(0, Relaxed);
            if !is_node(e) {
                n.slots[0].store(RETRY, Release);
            }
            self.notify(node);
            self.retire(node);
        }
    }

    /// `xas_delete_node`: removes empty nodes from `node` upwards, then shrinks. Returns where
    /// an `XaState` that stored into `node` is left (see [`After`]).
    pub(super) fn delete_node(&self, mut node: *mut XaNode) -> After {
        let mut at = After::Stay;
        loop {
            // SAFETY: `node` is live (tree node).
            let n = unsafe { &*node };
            if n.count() != 0 {
                break;
            }
            let parent = n.parent.load(Relaxed);
            let off = n.offset.load(Relaxed) as usize;
            self.retire(node);
            if parent.is_null() {
                self.xa.head.store(0, Release);
                self.xa.head_marks.store(0, Release);
                return After::Bounds;
            }
            at = After::At(parent, off);
            // SAFETY: `parent` is live.
            let p = unsafe { &*parent };
            p.slots[off].store(0, Release);
            p.add_count(-1);
            for m in 1..XA_MAX_MARKS as u8 {
                self.clear_mark_at(parent, off, XaMark(m));
            }
            if self.track_free() {
                self.set_mark_at(parent, off, XA_FREE_MARK);
            } else {
                self.clear_mark_at(parent, off, XaMark(0));
            }
            node = parent;
            self.notify(node);
        }
        // SAFETY: `node` is live.
        if unsafe { (*node).parent.load(Relaxed) }.is_null() && self.shrink() {
            return After::Bounds;
        }
        at
    }

    /// Undoes a partial `create` after an allocation failure.
    fn rollback(&self, deepest: *mut XaNode) {
        if !deepest.is_null() {
            let _ = self.delete_node(deepest);
        }
        self.shrink();
    }

    /// `xas_expand`: adds levels on top until a top node of shift `>= shift` exists.
    fn expand(&self, shift: u32, gfp: Gfp) -> Result<()> {
        let mut head = self.head();
        if head == 0 {
            return Ok(());
        }
        let mut cur = if is_node(head) {
            // SAFETY: the top node is live.
            unsafe { (*to_node(head)).shift as u32 }
        } else {
            // A single entry at index 0 goes into slot 0 of a new leaf.
            let node = self.alloc_node(0, ptr::null_mut(), 0, gfp)?;
            self.adopt_head(node, head);
            head = self.head();
            0
        };
        while cur < shift {
            let node = match self.alloc_node(cur + XA_CHUNK_SHIFT, ptr::null_mut(), 0, gfp) {
                Ok(n) => n,
                Err(e) => {
                    self.shrink();
                    return Err(e);
                }
            };
            self.adopt_head(node, head);
            head = self.head();
            cur += XA_CHUNK_SHIFT;
        }
        Ok(())
    }

    /// Makes `node` the new top with the old head in slot 0.
    fn adopt_head(&self, node: *mut XaNode, head: usize) {
        // SAFETY: `node` is a fresh, unpublished node; `head` the current head.
        unsafe {
            let n = &*node;
            n.slots[0].store(head, Relaxed);
            n.count.store(1, Relaxed);
            n.nr_values.store(is_value(head) as u8, Relaxed);
            let hm = self.xa.head_marks.load(Relaxed);
            for m in 1..XA_MAX_MARKS {
                if hm & (1 << m) != 0 {
                    n.marks[m].fetch_or(1, Relaxed);
                }
            }
            if self.track_free() {
                // Slot 0 is free only if the old top still has a free slot below it (or the
                // old head entry carried XA_FREE_MARK: an IDA bitmap with room).
                let old_has_free = if is_node(head) {
                    (*to_node(head)).marks[0].load(Relaxed) != 0
                } else {
                    hm & 1 != 0
                };
                if !old_has_free {
                    n.marks[0].fetch_and(!1, Relaxed);
                }
            } else if hm & 1 != 0 {
                n.marks[0].fetch_or(1, Relaxed);
            }
            if is_node(head) {
                let old = &*to_node(head);
                old.offset.store(0, Relaxed);
                old.parent.store(node, Release);
            }
        }
        self.xa.head.store(mk_node(node), Release);
        self.notify(node);
    }

    /// `xas_create`: makes sure a slot run for `(index, shift, sibs)` exists; returns it.
    /// Without `allow_root`, index 0 gets a leaf node rather than the head.
    pub(super) fn create(
        &self,
        index: usize,
        shift: u32,
        sibs: usize,
        allow_root: bool,
        gfp: Gfp,
    ) -> Result<Pos> {
        let head = self.head();
        if allow_root && shift == 0 && sibs == 0 && index == 0 && !is_node(head) {
            return Ok(Pos {
                node: ptr::null_mut(),
                off: 0,
                sibs: 0,
            });
        }
        // The top must have shift >= `shift` and cover `index`.
        let mut need = shift;
        while need + XA_CHUNK_SHIFT < usize::BITS && (index >> need) >= XA_CHUNK_SIZE {
            need += XA_CHUNK_SHIFT;
        }
        let mut node;
        let mut created: *mut XaNode = ptr::null_mut();
        if head == 0 {
            node = self.alloc_node(need, ptr::null_mut(), 0, gfp)?;
            created = node;
            self.xa.head.store(mk_node(node), Release);
        } else {
            self.expand(need, gfp)?;
            node = to_node(self.head());
        }
        loop {
            // SAFETY: `node` is live (tree node).
            let n = unsafe { &*node };
            let s = n.shift as u32;
            let off = (index >> s) & XA_CHUNK_MASK;
            if s == shift {
                return Ok(Pos { node, off, sibs });
            }
            let e = n.slots[off].load(Relaxed);
            if e == 0 {
                let child = match self.alloc_node(s - XA_CHUNK_SHIFT, node, off, gfp) {
                    Ok(c) => c,
                    Err(err) => {
                        self.rollback(created);
                        return Err(err);
                    }
                };
                n.add_count(1);
                n.slots[off].store(mk_node(child), Release);
                self.notify(node);
                created = child;
                node = child;
                continue;
            }
            if is_sibling(e) {
                return Ok(Pos {
                    node,
                    off: to_sibling(e),
                    sibs: 0,
                });
            }
            if is_child(e, n.shift) {
                node = to_node(e);
                continue;
            }
            // An entry above the target level (a larger multi-index entry): replace it.
            return Ok(Pos { node, off, sibs: 0 });
        }
    }

    /// `xas_load` for a store of NULL: the slot run for `(index, shift, sibs)` if it exists.
    pub(super) fn locate(&self, index: usize, shift: u32, sibs: usize) -> Option<Pos> {
        let head = self.head();
        if !is_node(head) {
            return (index == 0 && head != 0).then_some(Pos {
                node: ptr::null_mut(),
                off: 0,
                sibs: 0,
            });
        }
        let mut node = to_node(head);
        // SAFETY: the top node is live.
        let top_shift = unsafe { (*node).shift } as u32;
        if index > top_max(top_shift) {
            return None;
        }
        if shift > top_shift {
            return Some(Pos {
                node: ptr::null_mut(),
                off: 0,
                sibs: 0,
            });
        }
        loop {
            // SAFETY: live tree node.
            let n = unsafe { &*node };
            let s = n.shift as u32;
            let mut off = (index >> s) & XA_CHUNK_MASK;
            if s == shift {
                return Some(Pos { node, off, sibs });
            }
            let mut e = n.slots[off].load(Relaxed);
            if is_sibling(e) {
                off = to_sibling(e);
                e = n.slots[off].load(Relaxed);
            }
            if is_child(e, n.shift) {
                node = to_node(e);
                continue;
            }
            return Some(Pos { node, off, sibs: 0 });
        }
    }

    /// Walks to the entry at `index` under the lock: `(node, canonical offset, raw entry)`.
    pub(super) fn walk(&self, index: usize) -> (*mut XaNode, usize, usize) {
        let head = self.head();
        if !is_node(head) {
            return (ptr::null_mut(), 0, if index == 0 { head } else { 0 });
        }
        let mut node = to_node(head);
        // SAFETY: live tree nodes.
        unsafe {
            if index > top_max((*node).shift as u32) {
                return (ptr::null_mut(), 0, 0);
            }
            loop {
                let n = &*node;
                let mut off = (index >> n.shift) & XA_CHUNK_MASK;
                let mut e = n.slots[off].load(Relaxed);
                if is_sibling(e) {
                    off = to_sibling(e);
                    e = n.slots[off].load(Relaxed);
                }
                if is_child(e, n.shift) {
                    node = to_node(e);
                    continue;
                }
                return (node, off, e);
            }
        }
    }
}
