//! `mt_validate`: the structural invariants of the module documentation.

use super::node::*;
use super::*;

struct Walk {
    nodes: usize,
    leaf_depth: Option<usize>,
    /// Entry of the previous range in index order (`mt_validate_nulls`), 1 before the first.
    prev_entry: usize,
    /// The next index expected (ranges must tile `0..=usize::MAX`).
    next_index: usize,
}

impl<A: NodeAlloc> MapleTree<A> {
    /// Checks the tree (caller holds the lock); returns the number of nodes.
    pub(super) fn check(&self) -> core::result::Result<usize, &'static str> {
        let root = self.root.load(Relaxed) as *const Node;
        if root.is_null() {
            return if self.height() == 0 {
                Ok(0)
            } else {
                Err("empty tree with a height")
            };
        }
        let mut w = Walk {
            nodes: 0,
            leaf_depth: None,
            prev_entry: 1,
            next_index: 0,
        };
        self.check_node(root, 0, usize::MAX, 0, true, &mut w)?;
        if w.leaf_depth.map(|d| d + 1) != Some(self.height()) {
            return Err("height does not match the leaf depth");
        }
        if w.next_index != 0 {
            return Err("ranges do not end at ULONG_MAX");
        }
        Ok(w.nodes)
    }

    /// Checks one node covering `min..=max` at `depth`; returns its largest gap.
    fn check_node(
        &self,
        n: *const Node,
        min: usize,
        max: usize,
        depth: usize,
        is_root: bool,
        w: &mut Walk,
    ) -> core::result::Result<usize, &'static str> {
        // SAFETY: under the lock every node reachable from the root is live.
        let node = unsafe { &*n };
        w.nodes += 1;
        if depth >= MAPLE_HEIGHT_MAX {
            return Err("tree too tall");
        }
        let end = node.end();
        if end >= node.ty.slots() {
            return Err("node end beyond its slots");
        }
        if is_root && !node.ty.is_leaf() && end == 0 {
            return Err("internal root with a single child");
        }
        let mut lo = min;
        let mut best = 0;
        for i in 0..=end {
            let hi = node.pivot(i, max);
            if hi < lo || (i < end && hi >= max) {
                return Err("pivots not ascending inside the node range");
            }
            let s = node.slot(i);
            let gap = if node.ty.is_leaf() {
                self.check_leaf_slot(lo, hi, s, depth, w)?
            } else {
                if s == 0 || s % core::mem::align_of::<Node>() != 0 {
                    return Err("internal slot without a node");
                }
                let g = self.check_node(s as *const Node, lo, hi, depth + 1, false, w)?;
                if node.ty == MapleType::Arange64 && node.gaps[i].load(Relaxed) != g {
                    return Err("gap does not match the subtree");
                }
                g
            };
            best = best.max(gap);
            lo = hi.wrapping_add(1);
        }
        if node.ty == MapleType::Arange64 && node.max_gap(min, max) != best {
            return Err("gap metadata does not name the largest gap");
        }
        if !node.ty.is_leaf() && self.is_alloc() != (node.ty == MapleType::Arange64) {
            return Err("internal node type does not match the tree flags");
        }
        Ok(best)
    }

    fn check_leaf_slot(
        &self,
        lo: usize,
        hi: usize,
        s: usize,
        depth: usize,
        w: &mut Walk,
    ) -> core::result::Result<usize, &'static str> {
        if *w.leaf_depth.get_or_insert(depth) != depth {
            return Err("leaves at different depths");
        }
        if lo != w.next_index {
            return Err("ranges do not tile the index space");
        }
        w.next_index = hi.wrapping_add(1);
        if s == 0 && w.prev_entry == 0 {
            return Err("two adjacent NULL ranges");
        }
        if s != 0 && s & 3 == 2 && s <= XA_RETRY_RAW {
            return Err("reserved internal entry in a leaf");
        }
        w.prev_entry = s;
        Ok(if s == 0 { range_size(lo, hi) } else { 0 })
    }
}
