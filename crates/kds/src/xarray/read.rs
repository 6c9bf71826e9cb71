//! The lock-free read side: [`XaReadGuard`], searches and [`XaIter`].

use crate::alloc::NodeAlloc;
use crate::sync::{AtomicU8, AtomicUsize, Ordering::*};

use super::entry::*;
use super::node::*;
use super::*;

/// A read-side section; see [`XArray::read`].
pub struct XaReadGuard<'a, A: NodeAlloc> {
    pub(super) xa: &'a XArray<A>,
    /// The RCU read-side token, or `None` when the reader count is used.
    pub(super) token: Option<usize>,
    /// An RCU section belongs to its thread.
    pub(super) _not_send: core::marker::PhantomData<*const ()>,
}

impl<A: NodeAlloc> Drop for XaReadGuard<'_, A> {
    fn drop(&mut self) {
        match (self.token, self.xa.alloc.rcu()) {
            // SAFETY: the token came from this domain's `read_lock` in `XArray::read`, on this
            // thread (the guard is not Send); guards nest by scope, and each drops once.
            (Some(t), Some(rcu)) => unsafe { rcu.read_unlock(t) },
            _ => {
                self.xa.readers.fetch_sub(1, Release);
            }
        }
    }
}

impl<A: NodeAlloc> XaReadGuard<'_, A> {
    /// Walks to `index`; returns the raw entry (may be `ZERO`).
    #[inline]
    fn load_raw(&self, index: usize) -> usize {
        'restart: loop {
            let head = self.xa.head.load(Acquire);
            if !is_node(head) {
                return if index == 0 { head } else { 0 };
            }
            // SAFETY: nodes reachable from the head stay allocated while we are a reader.
            let mut node = unsafe { node_ref(head) };
            if index > top_max(node.shift as u32) {
                return 0;
            }
            loop {
                let off = (index >> node.shift) & XA_CHUNK_MASK;
                let mut e = node.slot(off);
                if is_sibling(e) {
                    e = node.slot(to_sibling(e));
                    if is_child(e, node.shift) {
                        continue 'restart;
                    }
                }
                if is_child(e, node.shift) {
                    // SAFETY: `e` is a child entry of a node we reached as a reader; children stay
                    // allocated while we are inside the read section.
                    node = unsafe { node_ref(e) };
                    continue;
                }
                // A retry entry in a node whose count is 0: the node is being freed
                // (`free_nodes`/`shrink` zero the count before writing it); walk again. In
                // a live node it is a user's entry (advanced API) and is returned.
                if e == RETRY && node.count() == 0 {
                    continue 'restart;
                }
                return e;
            }
        }
    }

    /// `xa_load` inside this read section.
    #[inline]
    pub fn load(&self, index: usize) -> Option<XaEntry> {
        to_opt(self.load_raw(index))
    }

    /// `xa_get_mark` inside this read section.
    pub fn get_mark(&self, index: usize, mark: XaMark) -> bool {
        let head = self.xa.head.load(Acquire);
        if !is_node(head) {
            return index == 0
                && head != 0
                && self.xa.head_marks.load(Acquire) & (1 << mark.0) != 0;
        }
        // SAFETY: reachable nodes stay allocated while we are a reader.
        let mut node = unsafe { node_ref(head) };
        if index > top_max(node.shift as u32) {
            return false;
        }
        loop {
            let mut off = (index >> node.shift) & XA_CHUNK_MASK;
            let mut e = node.slot(off);
            if is_sibling(e) {
                off = to_sibling(e);
                e = node.slot(off);
            }
            if !node.get_mark(off, mark) {
                return false;
            }
            if is_child(e, node.shift) {
                // SAFETY: `e` is a child entry of a node we reached as a reader; children stay
                // allocated while we are inside the read section.
                node = unsafe { node_ref(e) };
                continue;
            }
            return e != 0;
        }
    }

    /// `xa_get_order` inside this read section.
    pub fn get_order(&self, index: usize) -> u32 {
        let head = self.xa.head.load(Acquire);
        if !is_node(head) {
            return 0;
        }
        // SAFETY: reachable nodes stay allocated while we are a reader.
        let mut node = unsafe { node_ref(head) };
        if index > top_max(node.shift as u32) {
            return 0;
        }
        loop {
            let mut off = (index >> node.shift) & XA_CHUNK_MASK;
            let mut e = node.slot(off);
            if is_sibling(e) {
                off = to_sibling(e);
                e = node.slot(off);
            }
            if is_child(e, node.shift) {
                // SAFETY: `e` is a child entry of a node we reached as a reader; children stay
                // allocated while we are inside the read section.
                node = unsafe { node_ref(e) };
                continue;
            }
            if e == 0 {
                return 0;
            }
            let mut sibs = 0;
            while off + 1 + sibs < node.nr_slots() && node.slot(off + 1 + sibs) == mk_sibling(off) {
                sibs += 1;
            }
            return node.shift as u32 + (sibs + 1).ilog2();
        }
    }

    fn search(&self, start: usize, max: usize, filter: XaFilter) -> Option<Found> {
        loop {
            match search_from(
                &self.xa.head,
                &self.xa.head_marks,
                start,
                max,
                filter,
                false,
            ) {
                Search::Found(f) => return Some(f),
                Search::NotFound => return None,
                Search::Retry => continue,
            }
        }
    }

    /// `xa_find` inside this read section.
    pub fn find(&self, index: &mut usize, max: usize, filter: XaFilter) -> Option<XaEntry> {
        if *index > max {
            return None;
        }
        let f = self.search(*index, max, filter)?;
        *index = f.index;
        to_opt(f.entry)
    }

    /// `xa_find_after` inside this read section.
    pub fn find_after(&self, index: &mut usize, max: usize, filter: XaFilter) -> Option<XaEntry> {
        let mut from = *index;
        loop {
            if from == usize::MAX || from >= max {
                return None;
            }
            let f = self.search(from + 1, max, filter)?;
            if f.first <= *index {
                // The multi-index entry containing `*index`: skip past its end.
                from = f.last;
                continue;
            }
            *index = f.index;
            return to_opt(f.entry);
        }
    }
}

/// Searches the tree for the first match at an index in `start..=max`.
pub(super) fn search_from(
    head: &AtomicUsize,
    head_marks: &AtomicU8,
    start: usize,
    max: usize,
    filter: XaFilter,
    match_null: bool,
) -> Search {
    let h = head.load(Acquire);
    if h == 0 {
        return Search::NotFound;
    }
    if !is_node(h) {
        if start != 0 {
            return Search::NotFound;
        }
        let ok = match filter {
            XaFilter::Present => h != ZERO,
            XaFilter::Marked(m) => {
                head_marks.load(Acquire) & (1 << m.0) != 0 && (h != ZERO || match_null)
            }
        };
        return if ok {
            Search::Found(Found {
                index: 0,
                entry: h,
                first: 0,
                last: 0,
            })
        } else {
            Search::NotFound
        };
    }
    // SAFETY: the caller is a reader or the writer; reachable nodes stay allocated.
    let node = unsafe { node_ref(h) };
    if start > top_max(node.shift as u32) {
        return Search::NotFound;
    }
    search_node(node, 0, start, max, filter, match_null)
}

pub(super) fn search_node(
    node: &XaNode,
    base: usize,
    start: usize,
    max: usize,
    filter: XaFilter,
    match_null: bool,
) -> Search {
    let shift = node.shift as u32;
    let nr = node.nr_slots();
    let mut off = if start > base {
        (start - base) >> shift
    } else {
        0
    };
    let mut first_slot = start > base;
    while off < nr {
        let slot_base = base + (off << shift);
        if slot_base > max {
            return Search::NotFound;
        }
        let mut canon = off;
        let mut e = node.slot(off);
        if is_sibling(e) {
            if !first_slot {
                off += 1;
                continue;
            }
            canon = to_sibling(e);
            e = node.slot(canon);
            if is_child(e, node.shift) {
                return Search::Retry;
            }
        }
        if let XaFilter::Marked(m) = filter {
            if !node.get_mark(canon, m) {
                // Jump to the next marked slot.
                let bits = node.mark_bits(m) & (!0u64).checked_shl(off as u32 + 1).unwrap_or(0);
                if bits == 0 {
                    return Search::NotFound;
                }
                off = bits.trailing_zeros() as usize;
                first_slot = false;
                continue;
            }
        }
        first_slot = false;
        if e == RETRY && node.count() == 0 {
            // The node is being freed (see `load_raw`).
            return Search::Retry;
        }
        if is_child(e, node.shift) {
            // SAFETY: reachable nodes stay allocated for readers and the writer.
            let child = unsafe { node_ref(e) };
            match search_node(
                child,
                slot_base,
                start.max(slot_base),
                max,
                filter,
                match_null,
            ) {
                Search::NotFound => {
                    off += 1;
                    continue;
                }
                r => return r,
            }
        }
        if (e == 0 || e == ZERO) && !match_null {
            off += 1;
            continue;
        }
        let mut sibs = 0;
        while canon + 1 + sibs < nr && node.slot(canon + 1 + sibs) == mk_sibling(canon) {
            sibs += 1;
        }
        let first = base + (canon << shift);
        let span = ((sibs as u128 + 1) << shift) - 1;
        let last = (first as u128 + span).min(usize::MAX as u128) as usize;
        return Search::Found(Found {
            index: start.max(first),
            entry: e,
            first,
            last,
        });
    }
    Search::NotFound
}

/// An iterator over an [`XArray`] (`xa_for_each*`).
pub struct XaIter<'a, A: NodeAlloc> {
    pub(super) xa: &'a XArray<A>,
    pub(super) index: usize,
    pub(super) max: usize,
    pub(super) filter: XaFilter,
    pub(super) started: bool,
    pub(super) done: bool,
}

impl<A: NodeAlloc> Iterator for XaIter<'_, A> {
    type Item = (usize, XaEntry);
    fn next(&mut self) -> Option<(usize, XaEntry)> {
        if self.done {
            return None;
        }
        let r = if self.started {
            self.xa.find_after(&mut self.index, self.max, self.filter)
        } else {
            self.started = true;
            self.xa.find(&mut self.index, self.max, self.filter)
        };
        match r {
            Some(e) => Some((self.index, e)),
            None => {
                self.done = true;
                None
            }
        }
    }
}
