//! Maple nodes (`struct maple_node` of include/linux/maple_tree.h) on 64-bit.
//!
//! One Rust type holds the three node kinds kmem uses; [`MapleType`] says which view applies:
//!
//! | type              | slots | pivots | gaps | where                                  |
//! |-------------------|-------|--------|------|----------------------------------------|
//! | `maple_leaf_64`   | 16    | 15     | –    | leaves (entries)                       |
//! | `maple_range_64`  | 16    | 15     | –    | internal nodes of ordinary trees       |
//! | `maple_arange_64` | 10    | 9      | 10   | internal nodes of allocation trees     |
//!
//! Slot `i` covers `pivot[i-1] + 1 ..= pivot[i]`; slot 0 starts at the node's minimum and the
//! last used slot (`end`, the node metadata) ends at the node's maximum, both implied by the
//! parent. Pivots, `end` and the type are written before a node is published and never change
//! afterwards; slots and gaps are atomics because a writer may replace one child pointer (and
//! refresh the gaps above it) in place.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::alloc::{Gfp, NodeAlloc};
use crate::sync::{AtomicPtr, AtomicU8, AtomicUsize, Ordering::*};

/// `MAPLE_RANGE64_SLOTS` (64-bit).
pub const MAPLE_RANGE64_SLOTS: usize = 16;
/// `MAPLE_ARANGE64_SLOTS` (64-bit).
pub const MAPLE_ARANGE64_SLOTS: usize = 10;
/// `MAPLE_HEIGHT_MAX`.
pub const MAPLE_HEIGHT_MAX: usize = 31;

/// `enum maple_type` (without `maple_dense`, which Linux does not use either).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum MapleType {
    /// `maple_leaf_64`.
    Leaf64 = 1,
    /// `maple_range_64`.
    Range64 = 2,
    /// `maple_arange_64`.
    Arange64 = 3,
}

impl MapleType {
    /// `mt_slots[]`.
    pub const fn slots(self) -> usize {
        match self {
            MapleType::Arange64 => MAPLE_ARANGE64_SLOTS,
            _ => MAPLE_RANGE64_SLOTS,
        }
    }
    /// `mt_pivots[]`.
    pub const fn pivots(self) -> usize {
        self.slots() - 1
    }
    /// `mt_min_slots[]`: a non-root node whose `end` is below this is underfull
    /// (lib/maple_tree.c: `MAPLE_RANGE64_SLOTS / 2 - 2`, `MAPLE_ARANGE64_SLOTS / 2 - 1`).
    pub const fn min_slots(self) -> usize {
        match self {
            MapleType::Arange64 => MAPLE_ARANGE64_SLOTS / 2 - 1,
            _ => MAPLE_RANGE64_SLOTS / 2 - 2,
        }
    }
    /// Returns true for leaves.
    pub const fn is_leaf(self) -> bool {
        matches!(self, MapleType::Leaf64)
    }
}

/// A maple node. Linux packs `maple_range_64` and `maple_arange_64` into one 256-byte,
/// 256-aligned block whose low pointer bits encode the type; here the type is a field, both
/// layouts have their own arrays (384 bytes with the alignment), and there is no parent
/// pointer: writers keep the root-to-leaf path of each walk instead.
#[repr(C, align(64))]
pub(super) struct Node {
    pub(super) ty: MapleType,
    /// Metadata `end`: the offset of the last used slot.
    pub(super) end: u8,
    /// Metadata `gap` (allocation trees): the offset of the largest gap (updated in place
    /// together with the gaps).
    pub(super) gap_off: AtomicU8,
    pub(super) pivots: [usize; MAPLE_RANGE64_SLOTS - 1],
    pub(super) slots: [AtomicUsize; MAPLE_RANGE64_SLOTS],
    /// Largest gap below each slot (`maple_arange_64` only).
    pub(super) gaps: [AtomicUsize; MAPLE_ARANGE64_SLOTS],
    /// Link on the reserve or retired list (writer only).
    pub(super) next_free: AtomicPtr<Node>,
}

pub(super) const NODE_LAYOUT: Layout = Layout::new::<Node>();

/// One slot's worth of content while a writer rebuilds nodes: the range end, the slot word
/// (an entry or a child pointer) and the largest gap below it.
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct Item {
    pub(super) last: usize,
    pub(super) slot: usize,
    pub(super) gap: usize,
}

/// Capacity of a writer's scratch list: a node's worth left of the write, the write's pieces,
/// a node's worth right of it and a pulled-in sibling.
pub(super) const BUF_CAP: usize = 4 * MAPLE_RANGE64_SLOTS;

/// A fixed-size list of [`Item`]s (the role of `struct maple_big_node`).
pub(super) struct Buf {
    pub(super) items: [Item; BUF_CAP],
    pub(super) len: usize,
}

impl Buf {
    pub(super) fn new() -> Buf {
        Buf {
            items: [Item::default(); BUF_CAP],
            len: 0,
        }
    }
    pub(super) fn push(&mut self, it: Item) {
        self.items[self.len] = it;
        self.len += 1;
    }
    pub(super) fn as_slice(&self) -> &[Item] {
        &self.items[..self.len]
    }
}

impl Node {
    #[inline(always)]
    pub(super) fn slot(&self, i: usize) -> usize {
        self.slots[i].load(Acquire)
    }
    #[inline(always)]
    pub(super) fn end(&self) -> usize {
        self.end as usize
    }
    /// The last index of slot `i` in a node whose maximum is `max`.
    #[inline(always)]
    pub(super) fn pivot(&self, i: usize, max: usize) -> usize {
        if i >= self.end() {
            max
        } else {
            self.pivots[i]
        }
    }
    /// The first index of slot `i` in a node whose minimum is `min`.
    #[inline(always)]
    pub(super) fn slot_min(&self, i: usize, min: usize) -> usize {
        if i == 0 {
            min
        } else {
            self.pivots[i - 1] + 1
        }
    }
    /// The offset of the slot covering `index` (which must lie in the node's range).
    #[inline(always)]
    pub(super) fn offset_of(&self, index: usize) -> usize {
        let end = self.end();
        let mut i = 0;
        while i < end && self.pivots[i] < index {
            i += 1;
        }
        i
    }
    /// The largest gap in this node (`ma_max_gap` / `mas_leaf_max_gap`).
    pub(super) fn max_gap(&self, min: usize, max: usize) -> usize {
        if self.ty.is_leaf() {
            let mut best = 0;
            for i in 0..=self.end() {
                if self.slot(i) == 0 {
                    best = best.max(range_size(self.slot_min(i, min), self.pivot(i, max)));
                }
            }
            best
        } else if self.ty == MapleType::Arange64 {
            self.gaps[self.gap_off.load(Relaxed) as usize].load(Relaxed)
        } else {
            0
        }
    }
    /// Recomputes the gap metadata of an `maple_arange_64` node after `gaps[..]` changed in
    /// place (writer only); returns the largest gap.
    pub(super) fn refresh_gap_meta(&self) -> usize {
        let mut best = 0;
        let mut off = 0;
        for i in 0..=self.end() {
            let g = self.gaps[i].load(Relaxed);
            if g > best {
                best = g;
                off = i;
            }
        }
        self.gap_off.store(off as u8, Relaxed);
        best
    }
    /// Appends the node's slots as [`Item`]s `from..=to` to `buf`.
    pub(super) fn items_into(&self, from: usize, to: usize, max: usize, buf: &mut Buf) {
        for i in from..=to {
            let gap = if self.ty == MapleType::Arange64 {
                self.gaps[i].load(Relaxed)
            } else {
                0
            };
            buf.push(Item {
                last: self.pivot(i, max),
                slot: self.slot(i),
                gap,
            });
        }
    }
}

/// The number of indices in `first..=last`, saturating at `usize::MAX` (a gap of the whole
/// index space).
#[inline(always)]
pub(super) const fn range_size(first: usize, last: usize) -> usize {
    (last - first).saturating_add(1)
}

/// Allocates an uninitialised node block.
pub(super) fn alloc_block<A: NodeAlloc>(alloc: &A, gfp: Gfp) -> Option<*mut Node> {
    alloc.alloc(NODE_LAYOUT, gfp).map(|p| p.as_ptr().cast())
}

/// Initialises the block `n` as a node of type `ty` holding `items` (at most `ty.slots()`),
/// with minimum `min` (used for leaf gaps). Returns the node's largest gap.
///
/// # Safety
/// `n` is a block from [`alloc_block`] that nobody else can see.
pub(super) unsafe fn fill_node(n: *mut Node, ty: MapleType, items: &[Item], min: usize) -> usize {
    debug_assert!(!items.is_empty() && items.len() <= ty.slots());
    let end = items.len() - 1;
    let mut pivots = [0usize; MAPLE_RANGE64_SLOTS - 1];
    for (i, it) in items.iter().enumerate().take(ty.pivots()) {
        pivots[i] = it.last;
    }
    let node = Node {
        ty,
        end: end as u8,
        gap_off: AtomicU8::new(0),
        pivots,
        slots: crate::sync::zeroed_atomic_usizes(),
        gaps: crate::sync::zeroed_atomic_usizes(),
        next_free: AtomicPtr::new(ptr::null_mut()),
    };
    // SAFETY: the caller hands us a private block of the node layout.
    unsafe { ptr::write(n, node) };
    // SAFETY: just initialised, still private.
    let node = unsafe { &mut *n };
    let mut best = 0usize;
    let mut best_off = 0usize;
    let mut lo = min;
    for (i, it) in items.iter().enumerate() {
        node.slots[i].store(it.slot, Relaxed);
        let g = match ty {
            MapleType::Leaf64 if it.slot == 0 => range_size(lo, it.last),
            MapleType::Arange64 => {
                node.gaps[i].store(it.gap, Relaxed);
                it.gap
            }
            _ => 0,
        };
        if g > best {
            best = g;
            best_off = i;
        }
        lo = it.last.wrapping_add(1);
    }
    node.gap_off.store(best_off as u8, Relaxed);
    best
}

/// Frees a node block.
///
/// # Safety
/// `n` came from [`alloc_block`] on `alloc`, and nobody can reach it any more.
pub(super) unsafe fn free_block<A: NodeAlloc>(alloc: &A, n: *mut Node) {
    // SAFETY: the caller's guarantee.
    unsafe { alloc.free(NonNull::new_unchecked(n.cast()), NODE_LAYOUT) }
}

/// Frees a list of nodes linked through `next_free`.
///
/// # Safety
/// As [`free_block`] for every node on the list.
pub(super) unsafe fn free_list<A: NodeAlloc>(alloc: &A, mut n: *mut Node) {
    while !n.is_null() {
        // SAFETY: the caller's guarantee; `next` is read before the block is freed.
        unsafe {
            let next = (*n).next_free.load(Relaxed);
            free_block(alloc, n);
            n = next;
        }
    }
}

/// Frees a whole subtree at once (only with exclusive access: `&mut` tree or no readers).
///
/// # Safety
/// `top` and everything below it are nodes nobody else can reach.
pub(super) unsafe fn free_subtree<A: NodeAlloc>(alloc: &A, top: *mut Node) {
    // SAFETY: the caller's guarantee; children are freed before their parent, recursion depth
    // is the tree height (at most MAPLE_HEIGHT_MAX).
    unsafe {
        let n = &*top;
        if !n.ty.is_leaf() {
            for i in 0..=n.end() {
                free_subtree(alloc, n.slot(i) as *mut Node);
            }
        }
        free_block(alloc, top);
    }
}
