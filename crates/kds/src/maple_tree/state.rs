//! The advanced API: `struct ma_state` (`MA_STATE`) and the `mas_*` operations.
//!
//! A [`MaState`] holds a position — the range `index..=last` — and a status (Linux's
//! `enum maple_status`: start, active, paused, none, underflow, overflow, error). Unlike
//! Linux's it caches no node pointer: each call walks from the root (a few node visits), which
//! makes a state safe to keep across writes and lock drops; [`MaState::pause`] keeps Linux's
//! meaning for iteration. States from [`MapleTree::mas`] only read; states from
//! [`MtLockGuard::mas`] may also write.

use super::read::Range;
use super::*;

/// `enum maple_status`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MaStatus {
    /// `ma_start`: the next call walks to `index`.
    Start,
    /// `ma_active`: positioned at `index..=last`.
    Active,
    /// `ma_none`: the tree was empty or the search failed.
    None,
    /// `ma_pause`: the next iteration continues after `last`.
    Pause,
    /// `ma_overflow`: a forward search went past its limit.
    Overflow,
    /// `ma_underflow`: a backward search went below its limit.
    Underflow,
    /// `ma_error`: the last write failed with this error.
    Error(Error),
}

/// `struct ma_state`: see the [module documentation](self).
pub struct MaState<'a, A: NodeAlloc> {
    mt: &'a MapleTree<A>,
    wr: Option<&'a MtLockGuard<'a, A>>,
    /// First index of the current range (`mas->index`).
    pub index: usize,
    /// Last index of the current range (`mas->last`).
    pub last: usize,
    /// `mas->status`.
    pub status: MaStatus,
}

impl<'a, A: NodeAlloc> MaState<'a, A> {
    pub(super) fn new_read(mt: &'a MapleTree<A>, index: usize, last: usize) -> Self {
        MaState {
            mt,
            wr: None,
            index,
            last,
            status: MaStatus::Start,
        }
    }

    pub(super) fn new_write(g: &'a MtLockGuard<'a, A>, index: usize, last: usize) -> Self {
        MaState {
            mt: g.mt,
            wr: Some(g),
            index,
            last,
            status: MaStatus::Start,
        }
    }

    /// The tree.
    pub fn tree(&self) -> &'a MapleTree<A> {
        self.mt
    }

    /// `mas_set`: position at `index` and restart.
    pub fn set(&mut self, index: usize) {
        self.set_range(index, index);
    }

    /// `mas_set_range`.
    pub fn set_range(&mut self, index: usize, last: usize) {
        self.index = index;
        self.last = last;
        self.status = MaStatus::Start;
    }

    /// `mas_reset`: restart from the root at the current `index`.
    pub fn reset(&mut self) {
        self.status = MaStatus::Start;
    }

    /// `mas_pause`: the next `find`/`next` continues after `last` (after the lock was dropped
    /// and taken again).
    pub fn pause(&mut self) {
        self.status = MaStatus::Pause;
    }

    /// `mas_is_err`.
    pub fn is_err(&self) -> bool {
        matches!(self.status, MaStatus::Error(_))
    }

    fn range_at(&self, index: usize) -> Range {
        let _g = self.mt.read();
        self.mt.range_at(index)
    }

    fn go(&mut self, r: Range) -> Option<XaEntry> {
        self.index = r.first;
        self.last = r.last;
        to_entry(r.entry)
    }

    /// `mas_walk`: the entry at `index` (or `None`); `index..=last` become its range.
    pub fn walk(&mut self) -> Option<XaEntry> {
        let r = self.range_at(self.index);
        self.status = MaStatus::Active;
        self.go(r)
    }

    /// `mas_next_slot`: advances to the next range (skipping `NULL` unless `empty`).
    fn next_slot(&mut self, max: usize, empty: bool) -> Option<XaEntry> {
        loop {
            if self.last >= max {
                // Off the limit: the state collapses to its last index (upstream
                // next_prev_test expects ULONG_MAX..ULONG_MAX after running off the end).
                self.index = self.last;
                self.status = MaStatus::Overflow;
                return None;
            }
            let r = self.range_at(self.last + 1);
            let e = self.go(r);
            if e.is_some() || empty {
                return e;
            }
        }
    }

    /// `mas_prev_slot`.
    fn prev_slot(&mut self, min: usize, empty: bool) -> Option<XaEntry> {
        loop {
            if self.index <= min {
                self.last = self.index;
                self.status = MaStatus::Underflow;
                return None;
            }
            let r = self.range_at(self.index - 1);
            let e = self.go(r);
            if e.is_some() || empty {
                return e;
            }
        }
    }

    /// `mas_next_setup`; `Err(e)` answers the call.
    fn next_setup(&mut self, max: usize) -> core::result::Result<(), Option<XaEntry>> {
        if self.last >= max {
            self.status = MaStatus::Overflow;
            return Err(None);
        }
        match self.status {
            MaStatus::Active => {}
            MaStatus::None | MaStatus::Pause | MaStatus::Start => {
                self.walk();
            }
            MaStatus::Overflow => self.status = MaStatus::Active,
            MaStatus::Underflow => {
                if let Some(e) = self.walk() {
                    return Err(Some(e));
                }
            }
            MaStatus::Error(_) => return Err(None),
        }
        Ok(())
    }

    /// `mas_next`: the next non-empty entry after the current range, starting at most at
    /// `max`.
    pub fn next(&mut self, max: usize) -> Option<XaEntry> {
        match self.next_setup(max) {
            Err(e) => e,
            Ok(()) => self.next_slot(max, false),
        }
    }

    /// `mas_next_range`: the next range, empty or not.
    pub fn next_range(&mut self, max: usize) -> Option<XaEntry> {
        match self.next_setup(max) {
            Err(e) => e,
            Ok(()) => self.next_slot(max, true),
        }
    }

    /// `mas_prev_setup`.
    fn prev_setup(&mut self, min: usize) -> core::result::Result<(), Option<XaEntry>> {
        if self.index <= min {
            self.last = self.index;
            self.status = MaStatus::Underflow;
            return Err(None);
        }
        match self.status {
            MaStatus::Active => {}
            MaStatus::Start | MaStatus::None | MaStatus::Pause => {
                self.walk();
            }
            MaStatus::Underflow => self.status = MaStatus::Active,
            MaStatus::Overflow => {
                if let Some(e) = self.walk() {
                    return Err(Some(e));
                }
            }
            MaStatus::Error(_) => return Err(None),
        }
        Ok(())
    }

    /// `mas_prev`: the previous non-empty entry before the current range, ending at least at
    /// `min`.
    pub fn prev(&mut self, min: usize) -> Option<XaEntry> {
        match self.prev_setup(min) {
            Err(e) => e,
            Ok(()) => self.prev_slot(min, false),
        }
    }

    /// `mas_prev_range`.
    pub fn prev_range(&mut self, min: usize) -> Option<XaEntry> {
        match self.prev_setup(min) {
            Err(e) => e,
            Ok(()) => self.prev_slot(min, true),
        }
    }

    /// `mas_find_setup`.
    fn find_setup(&mut self, max: usize) -> core::result::Result<(), Option<XaEntry>> {
        match self.status {
            MaStatus::Active => {
                return if self.last < max { Ok(()) } else { Err(None) };
            }
            MaStatus::Start => {}
            MaStatus::Pause | MaStatus::None => {
                if self.last >= max {
                    return Err(None);
                }
                if self.status == MaStatus::Pause {
                    self.last += 1;
                }
                self.index = self.last;
                self.status = MaStatus::Start;
            }
            MaStatus::Underflow | MaStatus::Overflow => {
                let limit = if self.status == MaStatus::Underflow {
                    self.index
                } else {
                    self.last
                };
                if limit >= max {
                    self.status = MaStatus::Overflow;
                    return Err(None);
                }
                if let Some(e) = self.walk() {
                    return Err(Some(e));
                }
            }
            MaStatus::Error(_) => return Err(None),
        }
        if self.status == MaStatus::Start {
            if self.index > max {
                return Err(None);
            }
            if let Some(e) = self.walk() {
                return Err(Some(e));
            }
        }
        if self.index == max {
            return Err(None);
        }
        Ok(())
    }

    /// `mas_find`: on the first call the entry at or after `index` up to `max`, afterwards the
    /// entry after the current one.
    pub fn find(&mut self, max: usize) -> Option<XaEntry> {
        match self.find_setup(max) {
            Err(e) => e,
            Ok(()) => {
                let e = self.next_slot(max, false);
                self.status = MaStatus::Active;
                e
            }
        }
    }

    /// `mas_find_range`: as [`MaState::find`], stepping over empty ranges too.
    pub fn find_range(&mut self, max: usize) -> Option<XaEntry> {
        match self.find_setup(max) {
            Err(e) => e,
            Ok(()) => self.next_slot(max, true),
        }
    }

    /// `mas_for_each(mas, entry, max)`: iterates with [`MaState::find`], yielding
    /// `(index, last, entry)`. To write inside the loop, use the open form
    /// `while let Some(e) = mas.find(max) { ... }`.
    pub fn for_each(&mut self, max: usize) -> MasIter<'_, 'a, A> {
        MasIter { mas: self, max }
    }

    /// `mas_find_rev_setup`.
    fn find_rev_setup(&mut self, min: usize) -> core::result::Result<(), Option<XaEntry>> {
        match self.status {
            MaStatus::Active => {}
            MaStatus::Start => {}
            MaStatus::Pause | MaStatus::None => {
                if self.index <= min {
                    self.status = MaStatus::Underflow;
                    return Err(None);
                }
                if self.status == MaStatus::Pause {
                    self.index -= 1;
                }
                self.last = self.index;
                self.status = MaStatus::Start;
            }
            MaStatus::Overflow | MaStatus::Underflow => {
                if self.index <= min {
                    self.status = MaStatus::Underflow;
                    return Err(None);
                }
                self.status = MaStatus::Active;
            }
            MaStatus::Error(_) => return Err(None),
        }
        if self.status == MaStatus::Start {
            if self.index < min {
                return Err(None);
            }
            if let Some(e) = self.walk() {
                return Err(Some(e));
            }
        }
        if self.index < min {
            return Err(None);
        }
        Ok(())
    }

    /// `mas_find_rev`: on the first call the entry at or below `index` down to `min`,
    /// afterwards the entry before the current one.
    pub fn find_rev(&mut self, min: usize) -> Option<XaEntry> {
        match self.find_rev_setup(min) {
            Err(e) => e,
            Ok(()) => self.prev_slot(min, false),
        }
    }

    /// `mas_empty_area`: finds the lowest empty range of `size` indices inside `min..=max`;
    /// sets `index..=last` to it.
    ///
    /// # Errors
    /// `EINVAL` (`min > max` or `size == 0`), `EBUSY` (no room).
    pub fn empty_area(&mut self, min: usize, max: usize, size: usize) -> Result<()> {
        self.empty_area_common(min, max, size, false)
    }

    /// `mas_empty_area_rev`: as [`MaState::empty_area`], the highest such range (top-down
    /// `get_unmapped_area`).
    ///
    /// # Errors
    /// As [`MaState::empty_area`].
    pub fn empty_area_rev(&mut self, min: usize, max: usize, size: usize) -> Result<()> {
        self.empty_area_common(min, max, size, true)
    }

    fn empty_area_common(&mut self, min: usize, max: usize, size: usize, rev: bool) -> Result<()> {
        if min > max || size == 0 {
            return Err(Error::EINVAL);
        }
        if max - min < size - 1 {
            return Err(Error::EBUSY);
        }
        let g = {
            let _g = self.mt.read();
            if rev {
                self.mt.gap_rev(min, max, size)
            } else {
                self.mt.gap_fwd(min, max, size)
            }
        };
        let g = g.ok_or(Error::EBUSY)?;
        if rev {
            self.last = g.last.min(max);
            self.index = self.last - (size - 1);
        } else {
            self.index = g.first.max(min);
            self.last = self.index + (size - 1);
        }
        self.status = MaStatus::Active;
        Ok(())
    }

    // -- writes ------------------------------------------------------------------------------

    fn writer(&self) -> Result<&'a MtLockGuard<'a, A>> {
        self.wr.ok_or(Error::EINVAL)
    }

    /// `mas_store_gfp`: stores `entry` at `index..=last`, allocating with `gfp`.
    ///
    /// # Errors
    /// `EINVAL` (read-only state, `index > last`, reserved entry), `ENOMEM`.
    pub fn store_gfp(&mut self, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        self.store_inner(entry, gfp).map(|_| ())
    }

    /// `mas_store`: stores `entry` at `index..=last` with `GFP_NOWAIT` (use
    /// [`MaState::nomem`] to retry after `ENOMEM`); returns the first entry overwritten.
    ///
    /// # Errors
    /// As [`MaState::store_gfp`]; the state records the error for [`MaState::nomem`].
    pub fn store(&mut self, entry: Option<XaEntry>) -> Result<Option<XaEntry>> {
        self.store_inner(entry, Gfp::GFP_NOWAIT)
    }

    fn store_inner(&mut self, entry: Option<XaEntry>, gfp: Gfp) -> Result<Option<XaEntry>> {
        let g = self.writer()?;
        match g.store_range(self.index, self.last, entry, gfp) {
            Ok(old) => {
                self.status = MaStatus::Active;
                Ok(old)
            }
            Err(e) => {
                self.status = MaStatus::Error(e);
                Err(e)
            }
        }
    }

    /// `mas_preallocate`: reserves the nodes for one store, so that
    /// [`MaState::store_prealloc`] cannot fail.
    ///
    /// # Errors
    /// `ENOMEM`, `EINVAL` (read-only state).
    pub fn preallocate(&mut self, _entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        let g = self.writer()?;
        g.fill_reserve(g.nodes_needed(), gfp)
    }

    /// `mas_expected_entries`: reserves nodes for about `nr_entries` stores into an empty
    /// tree (Linux's estimate: a gap between each entry and a trailing `NULL`, leaves two
    /// slots short of full, plus their parents and 3 nodes of working room). kmem has no bulk
    /// mode: the stores are ordinary ones, drawing on the reserve and allocating if it runs
    /// out. Free the rest with [`MaState::destroy`].
    ///
    /// # Errors
    /// `ENOMEM`, `EINVAL` (read-only state).
    pub fn expected_entries(&mut self, nr_entries: usize) -> Result<()> {
        let g = self.writer()?;
        let nonleaf_cap = if self.mt.is_alloc() {
            MAPLE_ARANGE64_SLOTS - 2
        } else {
            MAPLE_RANGE64_SLOTS - 2
        };
        let mut nr_nodes = nr_entries.max(nr_entries.saturating_mul(2).saturating_add(1));
        nr_nodes = nr_nodes.div_ceil(MAPLE_RANGE64_SLOTS - 2);
        nr_nodes += nr_nodes.div_ceil(nonleaf_cap);
        g.fill_reserve(nr_nodes.saturating_add(3), Gfp::GFP_KERNEL)
    }

    /// `mas_store_prealloc`: stores with the nodes of [`MaState::preallocate`].
    ///
    /// # Panics
    /// If the state is read-only or `index > last`, or if nothing was preallocated and an
    /// atomic allocation fails (a caller bug, Linux's `BUG_ON`).
    pub fn store_prealloc(&mut self, entry: Option<XaEntry>) -> Option<XaEntry> {
        let g = self
            .writer()
            .expect("mas_store_prealloc on a read-only ma_state");
        let old = g
            .store_range(self.index, self.last, entry, Gfp::GFP_ATOMIC)
            .expect("mas_store_prealloc without mas_preallocate");
        self.status = MaStatus::Active;
        old
    }

    /// `mas_erase`: erases the range containing `index`; `index..=last` become that range.
    pub fn erase(&mut self) -> Option<XaEntry> {
        let g = self.writer().ok()?;
        let r = self.range_at(self.index);
        self.index = r.first;
        self.last = r.last;
        self.status = MaStatus::Active;
        if r.entry == 0 {
            return None;
        }
        g.erase(r.first)
    }

    /// `mas_nomem`: after a store failed with `ENOMEM`, allocates the nodes it needs with
    /// `gfp`; returns true if the caller should retry.
    pub fn nomem(&mut self, gfp: Gfp) -> bool {
        if self.status != MaStatus::Error(Error::ENOMEM) {
            return false;
        }
        let Ok(g) = self.writer() else {
            return false;
        };
        if g.fill_reserve(g.nodes_needed(), gfp).is_err() {
            return false;
        }
        self.status = MaStatus::Start;
        true
    }

    /// `mas_destroy`: frees nodes reserved by [`MaState::preallocate`] and not used.
    pub fn destroy(&mut self) {
        if let Some(g) = self.wr {
            g.drain_reserve();
        }
    }
}

/// The iterator of [`MaState::for_each`].
pub struct MasIter<'s, 'a, A: NodeAlloc> {
    mas: &'s mut MaState<'a, A>,
    max: usize,
}

impl<A: NodeAlloc> Iterator for MasIter<'_, '_, A> {
    type Item = (usize, usize, XaEntry);
    fn next(&mut self) -> Option<(usize, usize, XaEntry)> {
        let e = self.mas.find(self.max)?;
        Some((self.mas.index, self.mas.last, e))
    }
}
