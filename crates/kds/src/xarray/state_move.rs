//! Moving an [`XaState`]: `xas_next`/`xas_prev`, `xas_find`, `xas_find_marked`,
//! `xas_find_conflict` and the `xas_for_each*` loops (lib/xarray.c, include/linux/xarray.h).
#![forbid(unsafe_code)]

use core::ops::ControlFlow;

use crate::alloc::NodeAlloc;

use super::entry::*;
use super::state::*;
use super::*;

impl<'a, A: NodeAlloc, S: XaSection<'a, A>> XasGuard<'_, 'a, A, S> {
    /// `__xas_next` / `__xas_prev`: the slow path of a move by one index.
    fn step_slow(&mut self, forward: bool) -> usize {
        let frozen = self.xas.node & 2 != 0;
        if !frozen {
            self.xas.index = if forward {
                self.xas.index.wrapping_add(1)
            } else {
                self.xas.index.wrapping_sub(1)
            };
        }
        if self.xas.node == NULL {
            return self.set_bounds();
        }
        if self.xas.node & 3 != 0 {
            return self.load_raw();
        }
        if self.xas.offset != get_offset(self.xas.index, self.xas.node) {
            self.xas.offset = if forward {
                self.xas.offset.wrapping_add(1)
            } else {
                self.xas.offset.wrapping_sub(1)
            };
        }
        // Off either end of the node: up to the parent's neighbouring slot.
        while (forward && self.xas.offset as usize == XA_CHUNK_SIZE)
            || (!forward && self.xas.offset == u8::MAX)
        {
            self.up(self.xas.node);
            self.xas.offset = if forward {
                self.xas.offset.wrapping_add(1)
            } else {
                self.xas.offset.wrapping_sub(1)
            };
            if self.xas.node == NULL {
                return self.set_bounds();
            }
        }
        loop {
            let entry = entry_at(self.xas.node, self.xas.offset as usize);
            if !is_child(entry, nref(self.xas.node).shift) {
                return entry;
            }
            self.xas.node = to_node(entry) as usize;
            self.xas.offset = get_offset(self.xas.index, self.xas.node);
        }
    }

    /// `xas_next`: moves to the next index and returns the raw content of its slot, cheaply
    /// when it is in the same leaf. Unlike a find, empty indices are visited, and inside a
    /// multi-index entry the sibling entries are returned (internal entries), as in Linux.
    /// As in Linux, start a walk at an entry's first index: a load elsewhere inside a
    /// multi-index entry leaves the offset on its first slot, and the steps after it are
    /// taken from there. Stepping past `usize::MAX` goes out of bounds (or into the top
    /// node's unused slots) rather than wrapping to index 0's entry.
    #[allow(clippy::should_implement_trait)] // Linux's name; not an iterator (it never ends)
    pub fn next(&mut self) -> Option<XaEntry> {
        let node = self.xas.node;
        if node & 3 != 0
            || node == NULL
            || nref(node).shift != 0
            || self.xas.offset as usize == XA_CHUNK_MASK
        {
            return out(self.step_slow(true));
        }
        self.xas.index = self.xas.index.wrapping_add(1);
        self.xas.offset += 1;
        out(entry_at(node, self.xas.offset as usize))
    }

    /// `xas_prev`: moves to the previous index; see [`next`](Self::next) for where to start
    /// and what it returns. Stepping back from 0 goes out of bounds.
    pub fn prev(&mut self) -> Option<XaEntry> {
        let node = self.xas.node;
        if node & 3 != 0 || node == NULL || nref(node).shift != 0 || self.xas.offset == 0 {
            return out(self.step_slow(false));
        }
        self.xas.index = self.xas.index.wrapping_sub(1);
        self.xas.offset -= 1;
        out(entry_at(node, self.xas.offset as usize))
    }

    /// `xas_move_index`.
    fn move_index(&mut self, offset: usize) {
        let shift = nref(self.xas.node).shift as u32;
        self.xas.index &= (!XA_CHUNK_MASK).wrapping_shl(shift);
        self.xas.index = self.xas.index.wrapping_add(offset.wrapping_shl(shift));
    }

    /// `xas_next_offset`.
    fn next_offset(&mut self) {
        self.xas.offset = self.xas.offset.wrapping_add(1);
        self.move_index(self.xas.offset as usize);
    }

    fn find_raw(&mut self, max: usize) -> usize {
        if self.xas.node == ERROR || self.xas.node == BOUNDS {
            return 0;
        }
        if self.xas.index > max {
            return self.set_bounds();
        }
        if self.xas.node == NULL {
            self.xas.index = 1;
            return self.set_bounds();
        } else if self.xas.node == RESTART {
            let entry = self.load_raw();
            if entry != 0 || self.xas.node & 3 != 0 || self.xas.node == NULL {
                return entry;
            }
        } else if nref(self.xas.node).shift == 0
            && self.xas.offset as usize != self.xas.index & XA_CHUNK_MASK
        {
            self.xas.offset = ((self.xas.index.wrapping_sub(1) & XA_CHUNK_MASK) + 1) as u8;
        }
        self.next_offset();
        while self.xas.node != NULL && self.xas.index <= max {
            if self.xas.offset as usize == XA_CHUNK_SIZE {
                self.up(self.xas.node);
                self.xas.offset += 1;
                continue;
            }
            let entry = entry_at(self.xas.node, self.xas.offset as usize);
            if is_child(entry, nref(self.xas.node).shift) {
                self.xas.node = to_node(entry) as usize;
                self.xas.offset = 0;
                continue;
            }
            if entry != 0 && !is_sibling(entry) {
                return entry;
            }
            self.next_offset();
        }
        if self.xas.node == NULL {
            self.xas.node = BOUNDS;
        }
        0
    }

    /// `xas_find`: returns the first present entry at an index in `index..=max` (after the
    /// current one if the state already points at an entry) and moves there. Reserved and
    /// retry entries are returned (check with [`XasGuard::retry`]). `None` leaves the state
    /// at `Bounds` (or past `max`).
    pub fn find(&mut self, max: usize) -> Option<XaEntry> {
        out(self.find_raw(max))
    }

    /// `xas_next_entry`: the fast step of [`XasGuard::for_each`]: the next present entry
    /// after the current one, up to `max`.
    pub fn next_entry(&mut self, max: usize) -> Option<XaEntry> {
        let node = self.xas.node;
        if node & 3 != 0
            || node == NULL
            || nref(node).shift != 0
            || self.xas.offset as usize != self.xas.index & XA_CHUNK_MASK
        {
            return self.find(max);
        }
        loop {
            if self.xas.index >= max || self.xas.offset as usize == XA_CHUNK_MASK {
                return self.find(max);
            }
            let entry = entry_at(node, self.xas.offset as usize + 1);
            if is_internal(entry) {
                return self.find(max);
            }
            self.xas.offset += 1;
            self.xas.index += 1;
            if entry != 0 {
                return out(entry);
            }
        }
    }

    /// `xas_find_chunk`: the next slot of the current node with `mark` (64 if none).
    fn find_chunk(&self, advance: bool, mark: XaMark) -> usize {
        let mut off = self.xas.offset as usize;
        if advance {
            off += 1;
        }
        if off < XA_CHUNK_SIZE {
            let data = nref(self.xas.node).mark_bits(mark) & (u64::MAX << off);
            if data != 0 {
                return data.trailing_zeros() as usize;
            }
        }
        XA_CHUNK_SIZE
    }

    fn find_marked_raw(&mut self, max: usize, mark: XaMark) -> usize {
        let mut advance = true;
        if self.xas.node == ERROR {
            return 0;
        }
        if self.xas.index > max {
            self.xas.node = RESTART;
            return 0;
        }
        if self.xas.node == NULL {
            self.xas.index = 1;
            return self.marked_out(max);
        } else if self.xas.node <= RESTART {
            advance = false;
            let entry = self.xas.xa.head.load(Acquire);
            self.xas.node = NULL;
            let max_index = if is_node(entry) {
                top_max(nref(to_node(entry) as usize).shift as u32)
            } else {
                0
            };
            if self.xas.index > max_index {
                return self.marked_out(max);
            }
            if !is_node(entry) {
                if self.xas.xa.head_marks.load(Acquire) & (1 << mark.0) != 0 {
                    return entry;
                }
                self.xas.index = 1;
                return self.marked_out(max);
            }
            self.xas.node = to_node(entry) as usize;
            self.xas.offset = (self.xas.index >> nref(self.xas.node).shift) as u8;
        }
        while self.xas.index <= max {
            if self.xas.offset as usize == XA_CHUNK_SIZE {
                self.up(self.xas.node);
                self.xas.offset += 1;
                if self.xas.node == NULL {
                    break;
                }
                advance = false;
                continue;
            }
            if !advance {
                let entry = entry_at(self.xas.node, self.xas.offset as usize);
                if is_sibling(entry) {
                    self.xas.offset = to_sibling(entry) as u8;
                    self.move_index(self.xas.offset as usize);
                }
            }
            let offset = self.find_chunk(advance, mark);
            if offset > self.xas.offset as usize {
                advance = false;
                self.move_index(offset);
                // Mind the wrap.
                if self.xas.index.wrapping_sub(1) >= max {
                    self.xas.node = RESTART;
                    return 0;
                }
                self.xas.offset = offset as u8;
                if offset == XA_CHUNK_SIZE {
                    continue;
                }
            }
            let entry = entry_at(self.xas.node, self.xas.offset as usize);
            let free_search = self.xas.xa.flags.track_free() && mark == XA_FREE_MARK;
            if (entry == 0 && !free_search) || is_sibling(entry) {
                // Nothing usable in this marked slot: search on after it.
                advance = true;
                continue;
            }
            if !is_child(entry, nref(self.xas.node).shift) {
                return entry;
            }
            self.xas.node = to_node(entry) as usize;
            self.xas.offset = get_offset(self.xas.index, self.xas.node);
        }
        self.marked_out(max)
    }

    /// The `out:` / `max:` exits of `xas_find_marked`.
    fn marked_out(&mut self, max: usize) -> usize {
        if self.xas.index > max {
            self.xas.node = RESTART;
            return 0;
        }
        self.set_bounds()
    }

    /// `xas_find_marked`: returns the first entry with `mark` at an index in `index..=max`
    /// (after the current one if the state points at an entry). `None` leaves the state at
    /// `Restart` if the search ran past `max`, at `Bounds` if it ran off the tree.
    pub fn find_marked(&mut self, max: usize, mark: XaMark) -> Option<XaEntry> {
        out(self.find_marked_raw(max, mark))
    }

    /// `xas_next_marked`: the fast step of [`XasGuard::for_each_marked`].
    pub fn next_marked(&mut self, max: usize, mark: XaMark) -> Option<XaEntry> {
        let node = self.xas.node;
        if node & 3 != 0 || node == NULL || nref(node).shift != 0 {
            return self.find_marked(max, mark);
        }
        let offset = self.find_chunk(true, mark);
        self.xas.offset = offset as u8;
        self.xas.index = (self.xas.index & !XA_CHUNK_MASK).wrapping_add(offset);
        if self.xas.index > max {
            return None;
        }
        if offset == XA_CHUNK_SIZE {
            return self.find_marked(max, mark);
        }
        let entry = entry_at(node, offset);
        if entry == 0 {
            return self.find_marked(max, mark);
        }
        out(entry)
    }

    /// `xas_for_each(xas, entry, max)`: calls `f` with each present entry from the state's
    /// index to `max` (reserved and retry entries included, as in Linux). `f` may use the
    /// state (store, pause, read its index) and stops the loop with `ControlFlow::Break`,
    /// whose value is returned.
    pub fn for_each<B>(
        &mut self,
        max: usize,
        mut f: impl FnMut(&mut Self, XaEntry) -> ControlFlow<B>,
    ) -> Option<B> {
        let mut e = self.find(max);
        while let Some(entry) = e {
            if let ControlFlow::Break(b) = f(self, entry) {
                return Some(b);
            }
            e = self.next_entry(max);
        }
        None
    }

    /// `xas_for_each_marked(xas, entry, max, mark)`: as [`XasGuard::for_each`] for the
    /// entries with `mark`.
    pub fn for_each_marked<B>(
        &mut self,
        max: usize,
        mark: XaMark,
        mut f: impl FnMut(&mut Self, XaEntry) -> ControlFlow<B>,
    ) -> Option<B> {
        let mut e = self.find_marked(max, mark);
        while let Some(entry) = e {
            if let ControlFlow::Break(b) = f(self, entry) {
                return Some(b);
            }
            e = self.next_marked(max, mark);
        }
        None
    }

    /// `xas_find_conflict`: the next entry that a store of the state's order at its index
    /// would replace (a larger entry covering it, or entries inside its range). Call it in
    /// a loop (`xas_for_each_conflict`) before storing; `None` ends the loop and leaves the
    /// state ready for the store.
    pub fn find_conflict(&mut self) -> Option<XaEntry> {
        if self.xas.node == ERROR || self.xas.node == NULL {
            return None;
        }
        if self.xas.node <= RESTART {
            let mut curr = self.start();
            if curr == 0 {
                return None;
            }
            while is_node(curr) {
                let node = to_node(curr) as usize;
                let leaf = nref(node).shift == 0;
                curr = self.descend(node);
                if leaf {
                    break;
                }
            }
            if curr != 0 {
                return out(curr);
            }
        }
        if nref(self.xas.node).shift > self.xas.shift {
            return None;
        }
        loop {
            let n = nref(self.xas.node);
            if n.shift == self.xas.shift {
                if self.xas.offset & self.xas.sibs == self.xas.sibs {
                    break;
                }
            } else if self.xas.offset as usize == XA_CHUNK_MASK {
                self.up(self.xas.node);
                if self.xas.node == NULL {
                    break;
                }
                continue;
            }
            self.xas.offset += 1;
            let mut curr = entry_at(self.xas.node, self.xas.offset as usize);
            if is_sibling(curr) {
                continue;
            }
            while is_child(curr, nref(self.xas.node).shift) {
                self.xas.node = to_node(curr) as usize;
                self.xas.offset = 0;
                curr = entry_at(self.xas.node, 0);
            }
            if curr != 0 {
                return out(curr);
            }
        }
        self.xas.offset = self.xas.offset.wrapping_sub(self.xas.sibs);
        None
    }

    /// `xas_for_each_conflict`: calls `f` with every entry [`XasGuard::find_conflict`]
    /// finds; `ControlFlow::Break` stops early.
    pub fn for_each_conflict<B>(
        &mut self,
        mut f: impl FnMut(&mut Self, XaEntry) -> ControlFlow<B>,
    ) -> Option<B> {
        while let Some(entry) = self.find_conflict() {
            if let ControlFlow::Break(b) = f(self, entry) {
                return Some(b);
            }
        }
        None
    }
}
