//! Stores (`xas_store` and the `__xa_*` operations built on it), marks and allocation of ids.

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use crate::sync::Ordering::*;

use super::entry::*;
use super::node::*;
use super::shape::After;
use super::*;

impl<'a, A: NodeAlloc> XaLockGuard<'a, A> {
    /// The store loop of `xas_store` at `pos`; returns the old entry and where the store leaves
    /// an `XaState` (nodes emptied by storing `NULL` are deleted).
    pub(super) fn store_at(&self, pos: Pos, mut entry: usize) -> (usize, After) {
        if pos.node.is_null() {
            let old = self.xa.head.swap(entry, AcqRel);
            if is_node(old) {
                self.free_nodes(to_node(old));
            }
            if entry == 0 {
                self.xa.head_marks.store(0, Release);
            }
            return (old, After::Stay);
        }
        let node = pos.node;
        // SAFETY: live tree node (writer).
        let n = unsafe { &*node };
        let mut off = pos.off;
        let mut first = n.slots[off].load(Relaxed);
        if is_sibling(first) {
            off = to_sibling(first);
            first = n.slots[off].load(Relaxed);
        }
        let sibs = pos.sibs;
        if first == entry && sibs == 0 {
            return (first, After::Stay);
        }
        let canon = off;
        let max = off + sibs;
        let old_canon = first;
        let raw_entry = entry;
        if sibs > 0 {
            self.squash_marks(node, off, sibs);
        }
        if entry == 0 {
            self.init_marks(node, off);
        }
        let mut next = first;
        let mut delta: isize = 0;
        let mut values: isize = 0;
        let value = is_value(entry);
        let last = n.nr_slots() - 1;
        loop {
            n.slots[off].store(entry, Release);
            if is_child(next, n.shift) {
                self.free_nodes(to_node(next));
            }
            delta += (next == 0) as isize - (entry == 0) as isize;
            values += !is_value(first) as isize - !value as isize;
            if entry == 0 && self.track_free() {
                self.set_mark_at(node, off, XA_FREE_MARK);
            }
            if entry != 0 {
                if off == max {
                    break;
                }
                if !is_sibling(entry) {
                    entry = mk_sibling(canon);
                }
            } else if off == last {
                break;
            }
            off += 1;
            next = n.slots[off].load(Relaxed);
            if !is_sibling(next) {
                if entry == 0 && off > max {
                    break;
                }
                first = next;
            }
        }
        // Siblings beyond the run that still point at the canonical slot now belong to the
        // new entry (a smaller store over a larger entry): they change value-ness with it.
        // (Linux counts only the run here, so its `nr_values` drifts; ours stays exact.)
        if value != is_value(old_canon) && raw_entry != 0 {
            let mut o = max + 1;
            while o < n.nr_slots() && n.slots[o].load(Relaxed) == mk_sibling(canon) {
                values += !is_value(old_canon) as isize - !value as isize;
                o += 1;
            }
        }
        // `update_node`.
        if delta == 0 && values == 0 {
            return (first, After::Stay);
        }
        n.add_count(delta);
        n.add_values(values);
        self.notify(node);
        let after = if delta < 0 {
            self.delete_node(node)
        } else {
            After::Stay
        };
        (first, after)
    }

    /// The generic store: `(index, shift, sibs)` as set by `xas_set_order` / `xas_set_range`.
    fn store_raw(
        &self,
        index: usize,
        shift: u32,
        sibs: usize,
        entry: usize,
        gfp: Gfp,
    ) -> Result<usize> {
        Ok(self.store_pos(index, shift, sibs, entry, gfp)?.0)
    }

    /// `xas_store` from the top: returns the old entry, the node and canonical slot stored
    /// into (null for the head) and where the store left the state.
    pub(super) fn store_pos(
        &self,
        index: usize,
        shift: u32,
        sibs: usize,
        entry: usize,
        gfp: Gfp,
    ) -> Result<(usize, *mut XaNode, usize, After)> {
        // A node-looking entry only fits a leaf slot; neither it nor `XA_ZERO_ENTRY` goes in
        // the head (`xas_store`'s `allow_root`: a reserved index 0 is a node's slot, so a
        // later store there needs no memory).
        let leaf_only = is_node(entry);
        if leaf_only && shift > 0 {
            return Err(Error::EINVAL);
        }
        let pos = if entry != 0 {
            let allow_root = !leaf_only && entry != ZERO;
            let pos = self.create(index, shift, sibs, allow_root, gfp)?;
            // SAFETY: a live tree node (writer).
            if leaf_only && !pos.node.is_null() && unsafe { (*pos.node).shift } > 0 {
                // Storing would replace a larger multi-index entry in a non-leaf slot.
                self.shrink();
                return Err(Error::EINVAL);
            }
            pos
        } else {
            match self.locate(index, shift, sibs) {
                Some(p) => p,
                None => return Ok((0, core::ptr::null_mut(), 0, After::Bounds)),
            }
        };
        // The canonical slot the store lands in (`store_at` redirects from a sibling).
        let canon = if pos.node.is_null() {
            0
        } else {
            // SAFETY: a live tree node (writer).
            let e = unsafe { (*pos.node).slots[pos.off].load(Relaxed) };
            if is_sibling(e) {
                to_sibling(e)
            } else {
                pos.off
            }
        };
        let (old, after) = self.store_at(pos, entry);
        if entry != 0 && self.track_free() {
            // The stored slot is no longer free (a non-NULL store never deletes nodes, so
            // `pos.node` is still live).
            if pos.node.is_null() {
                self.set_head_mark(XA_FREE_MARK, false);
            } else {
                self.clear_mark_at(pos.node, canon, XA_FREE_MARK);
            }
        }
        Ok((old, pos.node, canon, after))
    }

    fn check_entry(entry: Option<XaEntry>) -> Result<()> {
        match entry {
            Some(e) if !storable(e.raw()) => Err(Error::EINVAL),
            _ => Ok(()),
        }
    }

    fn entry_for_store(&self, entry: Option<XaEntry>) -> usize {
        match entry {
            None if self.track_free() => ZERO,
            e => raw_of(e),
        }
    }

    // -- the locked operations --------------------------------------------------------------

    /// `xa_load` under the lock.
    pub fn load(&self, index: usize) -> Option<XaEntry> {
        to_opt(self.walk(index).2)
    }

    /// `__xa_store`; see [`XArray::store`].
    ///
    /// # Errors
    /// As [`XArray::store`].
    pub fn store(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<Option<XaEntry>> {
        Self::check_entry(entry)?;
        let e = self.entry_for_store(entry);
        Ok(to_opt(self.store_raw(index, 0, 0, e, gfp)?))
    }

    /// `__xa_erase`; see [`XArray::erase`].
    pub fn erase(&self, index: usize) -> Option<XaEntry> {
        match self.store_raw(index, 0, 0, 0, Gfp::GFP_NOWAIT) {
            Ok(old) => to_opt(old),
            Err(_) => unreachable!("erasing never allocates"),
        }
    }

    /// `__xa_insert`; see [`XArray::insert`].
    ///
    /// # Errors
    /// As [`XArray::insert`].
    pub fn insert(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        Self::check_entry(entry)?;
        let e = if entry.is_none() { ZERO } else { raw_of(entry) };
        if self.walk(index).2 != 0 {
            return Err(Error::EBUSY);
        }
        self.store_raw(index, 0, 0, e, gfp)?;
        Ok(())
    }

    /// `__xa_cmpxchg`; see [`XArray::cmpxchg`].
    ///
    /// # Errors
    /// As [`XArray::cmpxchg`].
    pub fn cmpxchg(
        &self,
        index: usize,
        old: Option<XaEntry>,
        new: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        Self::check_entry(new)?;
        let e = self.entry_for_store(new);
        let curr = self.walk(index).2;
        if curr == raw_of(old) {
            self.store_raw(index, 0, 0, e, gfp)?;
        }
        Ok(to_opt(curr))
    }

    /// `__xa_reserve`; see [`XArray::reserve`].
    ///
    /// # Errors
    /// As [`XArray::reserve`].
    pub fn reserve(&self, index: usize, gfp: Gfp) -> Result<()> {
        if self.walk(index).2 == 0 {
            self.store_raw(index, 0, 0, ZERO, gfp)?;
        }
        Ok(())
    }

    /// `__xa_release`-like: see [`XArray::release`].
    pub fn release(&self, index: usize) {
        if self.walk(index).2 == ZERO {
            let _ = self.store_raw(index, 0, 0, 0, Gfp::GFP_NOWAIT);
        }
    }

    /// See [`XArray::store_order`].
    ///
    /// # Errors
    /// As [`XArray::store_order`].
    ///
    /// # Panics
    /// If `order >= usize::BITS`.
    pub fn store_order(
        &self,
        index: usize,
        order: u32,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        assert!(order < usize::BITS, "order too large");
        Self::check_entry(entry)?;
        let index = (index >> order) << order;
        let shift = order - order % XA_CHUNK_SHIFT;
        let sibs = (1usize << (order % XA_CHUNK_SHIFT)) - 1;
        Ok(to_opt(self.store_raw(
            index,
            shift,
            sibs,
            raw_of(entry),
            gfp,
        )?))
    }

    /// See [`XArray::store_range`].
    ///
    /// # Errors
    /// As [`XArray::store_range`].
    pub fn store_range(
        &self,
        mut first: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        Self::check_entry(entry)?;
        if last < first {
            return Err(Error::EINVAL);
        }
        let e = raw_of(entry);
        if is_node(e) && first != last {
            // Refuse before storing anything if a piece would need a non-leaf slot.
            let mut f = first;
            loop {
                let (shift, sibs) = set_range(f, last);
                if shift > 0 {
                    return Err(Error::EINVAL);
                }
                let next = f as u128 + sibs as u128 + 1;
                if next > last as u128 {
                    break;
                }
                f = next as usize;
            }
        }
        loop {
            let (shift, sibs) = set_range(first, last);
            self.store_raw(first, shift, sibs, e, gfp)?;
            let next = first as u128 + ((sibs as u128 + 1) << shift);
            if next > last as u128 {
                return Ok(());
            }
            first = next as usize;
        }
    }

    /// `__xa_set_mark`; see [`XArray::set_mark`].
    pub fn set_mark(&self, index: usize, mark: XaMark) {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return;
        }
        if node.is_null() {
            self.set_head_mark(mark, true);
        } else {
            self.set_mark_at(node, off, mark);
        }
    }

    /// `__xa_clear_mark`; see [`XArray::clear_mark`].
    pub fn clear_mark(&self, index: usize, mark: XaMark) {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return;
        }
        if node.is_null() {
            self.set_head_mark(mark, false);
        } else {
            self.clear_mark_at(node, off, mark);
        }
    }

    /// The lowest free index in `min..=max` of an allocating array.
    fn find_free(&self, min: usize, max: usize) -> Option<usize> {
        let head = self.head();
        let cand = if head == 0 {
            min
        } else if !is_node(head) {
            if self.xa.head_marks.load(Relaxed) & 1 != 0 {
                min
            } else {
                min.max(1)
            }
        } else {
            // SAFETY: the top node is live.
            let top = unsafe { &*to_node(head) };
            let tmax = top_max(top.shift as u32);
            if min > tmax {
                min
            } else {
                match search_node(top, 0, min, max, XaFilter::Marked(XA_FREE_MARK), true) {
                    Search::Found(f) => f.index,
                    _ if tmax == usize::MAX => return None,
                    _ => min.max(tmax + 1),
                }
            }
        };
        (cand <= max).then_some(cand)
    }

    /// `__xa_alloc`; see [`XArray::alloc`].
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc(&self, entry: Option<XaEntry>, limit: XaLimit, gfp: Gfp) -> Result<u32> {
        Self::check_entry(entry)?;
        if !self.track_free() {
            return Err(Error::EINVAL);
        }
        let mut min = limit.min as usize;
        if self.xa.flags.zero_busy() {
            min = min.max(1);
        }
        let max = limit.max as usize;
        if min > max {
            return Err(Error::EBUSY);
        }
        let id = self.find_free(min, max).ok_or(Error::EBUSY)?;
        let e = if entry.is_none() { ZERO } else { raw_of(entry) };
        self.store_raw(id, 0, 0, e, gfp)?;
        Ok(id as u32)
    }

    /// `__xa_alloc_cyclic`; see [`XArray::alloc_cyclic`].
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc_cyclic(
        &self,
        entry: Option<XaEntry>,
        limit: XaLimit,
        next: &mut u32,
        gfp: Gfp,
    ) -> Result<(u32, bool)> {
        let min = limit.min;
        let lo = min.max(*next);
        let mut wrapped = false;
        let mut r = self.alloc(entry, XaLimit::new(lo, limit.max), gfp);
        if r.is_ok() && self.w().wrapped {
            self.w().wrapped = false;
            wrapped = true;
        }
        if r.is_err() && lo > min {
            r = self.alloc(entry, XaLimit::new(min, limit.max), gfp);
            wrapped = r.is_ok();
        }
        let id = r?;
        *next = id.wrapping_add(1);
        if *next == 0 {
            self.w().wrapped = true;
        }
        Ok((id, wrapped))
    }

    /// `xa_destroy` under the lock.
    pub fn destroy(&self) {
        let old = self.xa.head.swap(0, AcqRel);
        self.xa.head_marks.store(0, Release);
        if is_node(old) {
            self.free_nodes(to_node(old));
        }
    }

    /// `xas_find_marked(XA_FREE_MARK)`-style helper for the IDA: first index in `min..=max` whose
    /// slot is free or carries `XA_FREE_MARK`, with its entry.
    pub(crate) fn find_free_or_marked(
        &self,
        min: usize,
        max: usize,
    ) -> Option<(usize, Option<XaEntry>)> {
        let idx = self.find_free(min, max)?;
        Some((idx, XaEntry::from_raw(self.walk(idx).2)))
    }

    /// Returns true if `index` holds an entry, a reserved slot included (IDR: "allocated").
    pub fn is_occupied(&self, index: usize) -> bool {
        self.walk(index).2 != 0
    }

    /// The first present (non-reserved) entry at an index `>= start`, with its index.
    pub fn find_present(&self, start: usize) -> Option<(usize, XaEntry)> {
        match search_from(
            &self.xa.head,
            &self.xa.head_marks,
            start,
            usize::MAX,
            XA_PRESENT,
            false,
        ) {
            Search::Found(f) => Some((f.index, XaEntry::from_raw(f.entry)?)),
            _ => None,
        }
    }

    /// Returns whether `XA_FREE_MARK` is set on the entry at `index`.
    pub(crate) fn free_mark(&self, index: usize) -> bool {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return false;
        }
        if node.is_null() {
            return self.xa.head_marks.load(Relaxed) & 1 != 0;
        }
        // SAFETY: a live node under the lock.
        unsafe { (*node).get_mark(off, XA_FREE_MARK) }
    }

    /// Sets or clears `XA_FREE_MARK` on the present entry at `index` (IDA bitmaps).
    pub(crate) fn set_free_mark(&self, index: usize, free: bool) {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return;
        }
        if node.is_null() {
            self.set_head_mark(XA_FREE_MARK, free);
        } else if free {
            self.set_mark_at(node, off, XA_FREE_MARK);
        } else {
            self.clear_mark_at(node, off, XA_FREE_MARK);
        }
    }
}

/// `xas_set_range`: the `(shift, sibs)` of the largest entry starting at `first` that fits in
/// `first..=last`.
pub(super) fn set_range(first: usize, last: usize) -> (u32, usize) {
    let mut shift = 0u32;
    let mut sibs = last - first;
    let mut offset = XA_CHUNK_MASK;
    let mut f = first;
    while f & XA_CHUNK_MASK == 0 {
        if sibs < XA_CHUNK_MASK {
            break;
        }
        if sibs == XA_CHUNK_MASK && offset < XA_CHUNK_MASK {
            break;
        }
        shift += XA_CHUNK_SHIFT;
        if offset == XA_CHUNK_MASK {
            offset = sibs & XA_CHUNK_MASK;
        }
        sibs >>= XA_CHUNK_SHIFT;
        f >>= XA_CHUNK_SHIFT;
        if shift + XA_CHUNK_SHIFT > usize::BITS {
            break;
        }
    }
    let offset = f & XA_CHUNK_MASK;
    let nr = nr_slots(shift);
    if offset + sibs > nr - 1 {
        sibs = nr - 1 - offset;
    }
    // if (((first + sibs + 1) << shift) - 1) > last: sibs -= 1
    let end = ((f as u128 + sibs as u128 + 1) << shift) - 1;
    if end > last as u128 {
        sibs -= 1;
    }
    (shift, sibs)
}
