//! Read-side walks: the range containing an index, and gap (empty area) searches.
//!
//! Every walk starts at the root and descends by pivots; callers hold a read section
//! ([`MtReadGuard`](super::MtReadGuard)) or the writer lock, which keeps every node reachable
//! during the walk allocated.

use super::node::*;
use super::*;

/// A range of the tree and its entry (raw word, 0 for `NULL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) entry: usize,
}

/// One level of a walk: the node, the offset taken, and the node's range.
#[derive(Clone, Copy)]
pub(super) struct Lvl {
    pub(super) node: *mut Node,
    pub(super) off: usize,
    pub(super) min: usize,
    pub(super) max: usize,
}

impl Lvl {
    pub(super) const EMPTY: Lvl = Lvl {
        node: ptr::null_mut(),
        off: 0,
        min: 0,
        max: 0,
    };
}

/// A root-to-leaf path.
pub(super) type Path = [Lvl; MAPLE_HEIGHT_MAX];

/// Where a gap search found room: the whole empty range (clipping is the caller's).
#[derive(Clone, Copy, Debug)]
pub(super) struct Gap {
    pub(super) first: usize,
    pub(super) last: usize,
}

impl<A: NodeAlloc> MapleTree<A> {
    /// `mas_walk` core: the range containing `index` (caller holds a read section or the lock).
    pub(super) fn range_at(&self, index: usize) -> Range {
        let mut n = self.root.load(Acquire) as *const Node;
        if n.is_null() {
            return Range {
                first: 0,
                last: usize::MAX,
                entry: 0,
            };
        }
        let (mut min, mut max) = (0usize, usize::MAX);
        loop {
            // SAFETY: `n` was reached from the root inside a read section or under the lock:
            // it stays allocated (rcu.rs), and its pivots/type were published before it.
            let node = unsafe { &*n };
            let off = node.offset_of(index);
            let lo = node.slot_min(off, min);
            let hi = node.pivot(off, max);
            let s = node.slot(off);
            if node.ty.is_leaf() {
                return Range {
                    first: lo,
                    last: hi,
                    entry: s,
                };
            }
            min = lo;
            max = hi;
            n = s as *const Node;
        }
    }

    /// Fills `path` with the walk to `index`; returns the height (writer only).
    pub(super) fn walk_path(&self, index: usize, path: &mut Path) -> usize {
        let mut n = self.root.load(Relaxed) as *mut Node;
        let (mut min, mut max) = (0usize, usize::MAX);
        let mut d = 0;
        while !n.is_null() {
            // SAFETY: under the writer lock every node reachable from the root is live.
            let node = unsafe { &*n };
            let off = node.offset_of(index);
            path[d] = Lvl {
                node: n,
                off,
                min,
                max,
            };
            d += 1;
            if node.ty.is_leaf() {
                break;
            }
            let lo = node.slot_min(off, min);
            max = node.pivot(off, max);
            min = lo;
            n = node.slot(off) as *mut Node;
        }
        d
    }

    /// Lowest empty range meeting `lo..=hi` in at least `size` indices (`mas_empty_area`).
    pub(super) fn gap_fwd(&self, lo: usize, hi: usize, size: usize) -> Option<Gap> {
        let root = self.root.load(Acquire) as *const Node;
        if root.is_null() {
            return Some(Gap {
                first: 0,
                last: usize::MAX,
            });
        }
        self.gap_search(root, 0, usize::MAX, lo, hi, size, false)
    }

    /// Highest empty range meeting `lo..=hi` in at least `size` indices
    /// (`mas_empty_area_rev`).
    pub(super) fn gap_rev(&self, lo: usize, hi: usize, size: usize) -> Option<Gap> {
        let root = self.root.load(Acquire) as *const Node;
        if root.is_null() {
            return Some(Gap {
                first: 0,
                last: usize::MAX,
            });
        }
        self.gap_search(root, 0, usize::MAX, lo, hi, size, true)
    }

    /// Depth-first gap search below `n` (covering `min..=max`), skipping subtrees whose
    /// recorded gap is too small (allocation trees) and subtrees outside the window.
    #[allow(clippy::too_many_arguments)]
    fn gap_search(
        &self,
        n: *const Node,
        min: usize,
        max: usize,
        lo: usize,
        hi: usize,
        size: usize,
        rev: bool,
    ) -> Option<Gap> {
        // SAFETY: reached from the root under a read section or the lock (see `range_at`).
        let node = unsafe { &*n };
        let end = node.end();
        for k in 0..=end {
            let i = if rev { end - k } else { k };
            let s = node.slot_min(i, min);
            let e = node.pivot(i, max);
            if e < lo || s > hi {
                continue;
            }
            let slot = node.slot(i);
            if node.ty.is_leaf() {
                if slot == 0 && range_size(s.max(lo), e.min(hi)) >= size {
                    return Some(Gap { first: s, last: e });
                }
                continue;
            }
            if node.ty == MapleType::Arange64 && node.gaps[i].load(Relaxed) < size {
                continue;
            }
            if let Some(g) = self.gap_search(slot as *const Node, s, e, lo, hi, size, rev) {
                return Some(g);
            }
        }
        None
    }
}
