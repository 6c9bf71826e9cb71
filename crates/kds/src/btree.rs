//! A B+tree with multi-word keys, after lib/btree.c (`<linux/btree.h>`).
//!
//! Keys are `L` machine words compared as a big-endian multi-word number (word 0 most
//! significant): [`BTreeGeo32`] and [`BTreeGeo64`] use one word on 64-bit machines,
//! [`BTreeGeo128`] two (Linux's `btree_geo32` / `btree_geo64` / `btree_geo128`; on 32-bit
//! machines the 64- and 128-bit geometries use two and four words). Values are non-zero
//! words (Linux: non-NULL pointers, `BUG_ON(!val)`).
//!
//! Nodes are `NODESIZE` = 128 bytes of key/value pairs as in Linux (`MAX(L1_CACHE_BYTES,
//! 128)`): `no_pairs = NODESIZE / size_of::<usize>() / (L + 1)`, e.g. 8 pairs for one-word
//! keys. They come from the [`NodeAlloc`] given at creation (Linux: a mempool), with the
//! caller's GFP flags; an insertion that needs new nodes allocates all of them before
//! changing anything, so [`Error::ENOMEM`] leaves the tree unchanged.
//!
//! # Invariants (checked by [`BTree::check`])
//! - All leaves are at depth `height - 1`; every node has `1..=no_pairs` entries (the root of
//!   a non-empty tree included).
//! - Keys are strictly increasing inside a node; in an inner node, entry `i` points at a child
//!   whose keys are all `>= key[i]` (for `i > 0`) and `< key[i + 1]` (a lower-bound separator:
//!   removals never need to update it).
//!
//! # Differences from lib/btree.c
//! Inserting a key that is already present is [`Error::EEXIST`] (Linux documents it as not
//! allowed and does not check). Lookups and iteration order are as in Linux: [`BTree::last`]
//! and [`BTree::get_prev`] walk keys downwards, [`BTree::visitor`] visits in descending order.
//!
//! # Locking
//! None inside (as Linux): `&mut self` to modify.

use core::alloc::Layout;
use core::cmp::Ordering;
use core::num::NonZeroUsize;
use core::ptr::{self, NonNull};

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};

/// `NODESIZE` (lib/btree.c: `MAX(L1_CACHE_BYTES, 128)`).
pub const NODESIZE: usize = 128;
const LONG_PER_U64: usize = 64 / usize::BITS as usize;

/// `btree_geo32`: 32-bit keys (one word).
pub type BTreeGeo32<A> = BTree<1, A>;
/// `btree_geo64`: 64-bit keys.
pub type BTreeGeo64<A> = BTree<LONG_PER_U64, A>;
/// `btree_geo128`: 128-bit keys.
pub type BTreeGeo128<A> = BTree<{ 2 * LONG_PER_U64 }, A>;

/// A key of `L` words, most significant first.
pub type Key<const L: usize> = [usize; L];

/// Returns the number of key/value pairs per node for `L`-word keys.
pub const fn no_pairs(l: usize) -> usize {
    NODESIZE / core::mem::size_of::<usize>() / (l + 1)
}

const MAX_PAIRS: usize = no_pairs(1);
/// Deep enough for any tree that fits in memory (fan-out >= 2 ... but >= 3 in practice).
const MAX_HEIGHT: usize = 48;

#[repr(C)]
struct Node<const L: usize> {
    fill: usize,
    keys: [Key<L>; MAX_PAIRS],
    /// Values (leaves) or child pointers (inner nodes).
    ptrs: [usize; MAX_PAIRS],
}

/// `struct btree_head` with its geometry `L`: a B+tree from `Key<L>` to non-zero words.
pub struct BTree<const L: usize, A: NodeAlloc> {
    root: *mut Node<L>,
    height: usize,
    len: usize,
    alloc: A,
}

// SAFETY: the tree owns its nodes; values are plain words.
unsafe impl<const L: usize, A: NodeAlloc + Send> Send for BTree<L, A> {}
// SAFETY: `&BTree` only reads.
unsafe impl<const L: usize, A: NodeAlloc + Sync> Sync for BTree<L, A> {}

fn keycmp<const L: usize>(a: &Key<L>, b: &Key<L>) -> Ordering {
    a.cmp(b)
}

impl<const L: usize, A: NodeAlloc> BTree<L, A> {
    const PAIRS: usize = no_pairs(L);
    const LAYOUT: Layout = Layout::new::<Node<L>>();

    /// `btree_init_mempool`: an empty tree with nodes from `alloc`.
    ///
    /// # Panics
    /// If `L` is 0 or the geometry leaves fewer than 3 pairs per node.
    pub const fn new_in(alloc: A) -> Self {
        assert!(L >= 1 && no_pairs(L) >= 3, "unsupported btree geometry");
        BTree {
            root: ptr::null_mut(),
            height: 0,
            len: 0,
            alloc,
        }
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns true if the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the height (0 for an empty tree, 1 for a single leaf).
    pub fn height(&self) -> usize {
        self.height
    }

    fn new_node(&self, gfp: Gfp) -> Result<*mut Node<L>> {
        let p = self
            .alloc
            .alloc(Self::LAYOUT, gfp)
            .ok_or(Error::ENOMEM)?
            .cast::<Node<L>>()
            .as_ptr();
        // SAFETY: a fresh block of the node layout.
        unsafe {
            p.write(Node {
                fill: 0,
                keys: [[0; L]; MAX_PAIRS],
                ptrs: [0; MAX_PAIRS],
            })
        };
        Ok(p)
    }

    fn free_node(&self, n: *mut Node<L>) {
        // SAFETY: `n` came from `new_node` and is no longer linked.
        unsafe {
            self.alloc
                .free(NonNull::new_unchecked(n.cast()), Self::LAYOUT)
        };
    }

    /// Index of the child of inner node `n` that may hold `key`.
    fn child_index(n: &Node<L>, key: &Key<L>) -> usize {
        let mut i = n.fill - 1;
        while i > 0 && keycmp(&n.keys[i], key) == Ordering::Greater {
            i -= 1;
        }
        i
    }

    /// `btree_lookup`: returns the value of `key`.
    pub fn lookup(&self, key: &Key<L>) -> Option<NonZeroUsize> {
        let mut node = self.root;
        if node.is_null() {
            return None;
        }
        for _ in 1..self.height {
            // SAFETY: inner nodes of our tree point at live children.
            let n = unsafe { &*node };
            node = n.ptrs[Self::child_index(n, key)] as *mut Node<L>;
        }
        // SAFETY: a live leaf.
        let n = unsafe { &*node };
        (0..n.fill)
            .find(|&i| n.keys[i] == *key)
            .and_then(|i| NonZeroUsize::new(n.ptrs[i]))
    }

    /// `btree_update`: replaces the value of an existing `key`.
    ///
    /// # Errors
    /// [`Error::ENOENT`] if `key` is absent.
    pub fn update(&mut self, key: &Key<L>, val: NonZeroUsize) -> Result<()> {
        let mut node = self.root;
        if node.is_null() {
            return Err(Error::ENOENT);
        }
        for _ in 1..self.height {
            // SAFETY: live nodes, exclusively borrowed.
            let n = unsafe { &*node };
            node = n.ptrs[Self::child_index(n, key)] as *mut Node<L>;
        }
        // SAFETY: a live leaf, exclusively borrowed.
        let n = unsafe { &mut *node };
        let i = (0..n.fill)
            .find(|&i| n.keys[i] == *key)
            .ok_or(Error::ENOENT)?;
        n.ptrs[i] = val.get();
        Ok(())
    }

    /// `btree_insert`: adds `key` → `val`.
    ///
    /// # Errors
    /// [`Error::EEXIST`] if `key` is present; [`Error::ENOMEM`] (tree unchanged).
    pub fn insert(&mut self, key: &Key<L>, val: NonZeroUsize, gfp: Gfp) -> Result<()> {
        if self.root.is_null() {
            let n = self.new_node(gfp)?;
            // SAFETY: a fresh node.
            unsafe {
                (*n).keys[0] = *key;
                (*n).ptrs[0] = val.get();
                (*n).fill = 1;
            }
            self.root = n;
            self.height = 1;
            self.len = 1;
            return Ok(());
        }
        // Walk down, recording the path and how many nodes a split cascade would need.
        let mut path = [(ptr::null_mut::<Node<L>>(), 0usize); MAX_HEIGHT];
        let mut node = self.root;
        for slot in path.iter_mut().take(self.height - 1) {
            // SAFETY: live nodes.
            let n = unsafe { &*node };
            let i = Self::child_index(n, key);
            *slot = (node, i);
            node = n.ptrs[i] as *mut Node<L>;
        }
        // SAFETY: a live leaf.
        let leaf = unsafe { &*node };
        if (0..leaf.fill).any(|i| leaf.keys[i] == *key) {
            return Err(Error::EEXIST);
        }
        path[self.height - 1] = (node, 0);
        let mut need = 0;
        let mut level = self.height;
        while level > 0 {
            // SAFETY: live nodes on the path.
            if unsafe { (*path[level - 1].0).fill } < Self::PAIRS {
                break;
            }
            need += 1;
            level -= 1;
        }
        if level == 0 {
            need += 1; // a new root
        }
        let mut spare = [ptr::null_mut::<Node<L>>(); MAX_HEIGHT + 1];
        for k in 0..need {
            match self.new_node(gfp) {
                Ok(n) => spare[k] = n,
                Err(e) => {
                    for &n in &spare[..k] {
                        self.free_node(n);
                    }
                    return Err(e);
                }
            }
        }
        let mut spare_iter = spare[..need].iter().copied();
        // Insert bottom-up: (key, ptr) into the node at `level`.
        let mut ins_key = *key;
        let mut ins_ptr = val.get();
        let mut level = self.height;
        loop {
            if level == 0 {
                // The old root split: grow a new root over it and its new sibling.
                let r = spare_iter.next().expect("preallocated root");
                // SAFETY: a fresh node; the old root is live.
                unsafe {
                    (*r).keys[0] = (*self.root).keys[0];
                    (*r).ptrs[0] = self.root as usize;
                    (*r).keys[1] = ins_key;
                    (*r).ptrs[1] = ins_ptr;
                    (*r).fill = 2;
                }
                self.root = r;
                self.height += 1;
                break;
            }
            let (node, _) = path[level - 1];
            // SAFETY: a live node on the path, exclusively ours.
            let n = unsafe { &mut *node };
            let pos = if level == self.height {
                (0..n.fill)
                    .find(|&i| keycmp(&n.keys[i], &ins_key) == Ordering::Greater)
                    .unwrap_or(n.fill)
            } else {
                // The new child goes right after the child that split.
                path[level - 1].1 + 1
            };
            if n.fill < Self::PAIRS {
                insert_at(n, pos, ins_key, ins_ptr);
                break;
            }
            // Split: the upper half moves to a new right sibling, whose first key becomes its
            // separator in the parent.
            let right = spare_iter.next().expect("preallocated split node");
            // SAFETY: a fresh node.
            let r = unsafe { &mut *right };
            let half = Self::PAIRS.div_ceil(2);
            let moved = n.fill - half;
            r.keys[..moved].copy_from_slice(&n.keys[half..n.fill]);
            r.ptrs[..moved].copy_from_slice(&n.ptrs[half..n.fill]);
            r.fill = moved;
            n.fill = half;
            if pos <= half {
                insert_at(n, pos, ins_key, ins_ptr);
            } else {
                insert_at(r, pos - half, ins_key, ins_ptr);
            }
            ins_key = r.keys[0];
            ins_ptr = right as usize;
            level -= 1;
        }
        self.len += 1;
        Ok(())
    }

    /// `btree_remove`: removes `key`; returns its value.
    pub fn remove(&mut self, key: &Key<L>) -> Option<NonZeroUsize> {
        if self.root.is_null() {
            return None;
        }
        let mut path = [(ptr::null_mut::<Node<L>>(), 0usize); MAX_HEIGHT];
        let mut node = self.root;
        for slot in path.iter_mut().take(self.height - 1) {
            // SAFETY: live nodes.
            let n = unsafe { &*node };
            let i = Self::child_index(n, key);
            *slot = (node, i);
            node = n.ptrs[i] as *mut Node<L>;
        }
        // SAFETY: a live leaf, exclusively ours.
        let leaf = unsafe { &mut *node };
        let i = (0..leaf.fill).find(|&i| leaf.keys[i] == *key)?;
        let val = leaf.ptrs[i];
        remove_at(leaf, i);
        self.len -= 1;
        // Rebalance upwards: drop empty nodes, merge a node into its left or right neighbour
        // when both fit in one node.
        let mut level = self.height - 1;
        let mut cur = node;
        while level > 0 {
            let (parent, ci) = path[level - 1];
            // SAFETY: live nodes, exclusively ours (`cur` is a child of `parent`, not an alias).
            let (p, c) = unsafe { (&mut *parent, &mut *cur) };
            if c.fill == 0 {
                self.free_node(cur);
                remove_at(p, ci);
            } else if c.fill < Self::PAIRS / 2 && p.fill > 1 {
                // Merge with a neighbour if the pair fits.
                let (li, ri) = if ci > 0 { (ci - 1, ci) } else { (ci, ci + 1) };
                let l = p.ptrs[li] as *mut Node<L>;
                let r = p.ptrs[ri] as *mut Node<L>;
                // SAFETY: distinct live siblings.
                let (ln, rn) = unsafe { (&mut *l, &mut *r) };
                if ln.fill + rn.fill <= Self::PAIRS {
                    let f = ln.fill;
                    ln.keys[f..f + rn.fill].copy_from_slice(&rn.keys[..rn.fill]);
                    ln.ptrs[f..f + rn.fill].copy_from_slice(&rn.ptrs[..rn.fill]);
                    if level < self.height - 1 {
                        // Inner nodes: the right node's first key is not maintained; its
                        // separator in the parent is a valid lower bound for that child.
                        ln.keys[f] = p.keys[ri];
                    }
                    ln.fill += rn.fill;
                    self.free_node(r);
                    remove_at(p, ri);
                } else {
                    break;
                }
            } else {
                break;
            }
            cur = parent;
            level -= 1;
        }
        // Shrink the root.
        loop {
            // SAFETY: the live root.
            let r = unsafe { &*self.root };
            if r.fill == 0 {
                self.free_node(self.root);
                self.root = ptr::null_mut();
                self.height = 0;
                break;
            }
            if self.height > 1 && r.fill == 1 {
                let child = r.ptrs[0] as *mut Node<L>;
                self.free_node(self.root);
                self.root = child;
                self.height -= 1;
                continue;
            }
            break;
        }
        NonZeroUsize::new(val)
    }

    /// `btree_last`: returns the largest key and its value.
    pub fn last(&self) -> Option<(Key<L>, NonZeroUsize)> {
        let mut node = self.root;
        if node.is_null() {
            return None;
        }
        for _ in 1..self.height {
            // SAFETY: live nodes.
            let n = unsafe { &*node };
            node = n.ptrs[n.fill - 1] as *mut Node<L>;
        }
        // SAFETY: a live, non-empty leaf.
        let n = unsafe { &*node };
        Some((n.keys[n.fill - 1], NonZeroUsize::new(n.ptrs[n.fill - 1])?))
    }

    fn prev_rec(&self, node: *mut Node<L>, height: usize, key: &Key<L>) -> Option<(Key<L>, usize)> {
        // SAFETY: live nodes of our tree.
        let n = unsafe { &*node };
        if height == 1 {
            return (0..n.fill)
                .rev()
                .find(|&i| keycmp(&n.keys[i], key) == Ordering::Less)
                .map(|i| (n.keys[i], n.ptrs[i]));
        }
        let mut j = Self::child_index(n, key) as isize;
        while j >= 0 {
            if let Some(r) = self.prev_rec(n.ptrs[j as usize] as *mut Node<L>, height - 1, key) {
                return Some(r);
            }
            j -= 1;
        }
        None
    }

    /// `btree_get_prev`: returns the entry with the largest key smaller than `*key` and
    /// stores that key in `*key`; `None` if there is none.
    pub fn get_prev(&self, key: &mut Key<L>) -> Option<NonZeroUsize> {
        if self.root.is_null() {
            return None;
        }
        let (k, v) = self.prev_rec(self.root, self.height, key)?;
        *key = k;
        NonZeroUsize::new(v)
    }

    /// `btree_visitor`: calls `f(value, key, index)` for every entry in descending key order;
    /// returns the number of entries.
    pub fn visitor(&self, mut f: impl FnMut(NonZeroUsize, &Key<L>, usize)) -> usize {
        let mut count = 0;
        if let Some((mut k, v)) = self.last() {
            f(v, &k, count);
            count += 1;
            while let Some(v) = self.get_prev(&mut k) {
                f(v, &k, count);
                count += 1;
            }
        }
        count
    }

    /// `btree_grim_visitor`: as [`BTree::visitor`], then empties the tree and frees its nodes.
    pub fn grim_visitor(&mut self, f: impl FnMut(NonZeroUsize, &Key<L>, usize)) -> usize {
        let n = self.visitor(f);
        self.destroy();
        n
    }

    /// Returns the entries in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (Key<L>, NonZeroUsize)> + '_ {
        let mut stack = [(ptr::null_mut::<Node<L>>(), 0usize); MAX_HEIGHT];
        let mut depth = 0;
        if !self.root.is_null() {
            stack[0] = (self.root, 0);
            depth = 1;
        }
        let height = self.height;
        core::iter::from_fn(move || loop {
            if depth == 0 {
                return None;
            }
            let (node, i) = stack[depth - 1];
            // SAFETY: live nodes of the borrowed tree.
            let n = unsafe { &*node };
            if i >= n.fill {
                depth -= 1;
                continue;
            }
            stack[depth - 1].1 += 1;
            if depth == height {
                return Some((
                    n.keys[i],
                    NonZeroUsize::new(n.ptrs[i]).expect("non-zero value"),
                ));
            }
            stack[depth] = (n.ptrs[i] as *mut Node<L>, 0);
            depth += 1;
        })
    }

    /// `btree_merge`: moves every entry of `victim` into `self` (largest first).
    ///
    /// # Errors
    /// [`Error::ENOMEM`]: entries moved so far stay moved; the rest stay in `victim`.
    /// [`Error::EEXIST`] if a key is in both trees (moved up to that key).
    pub fn merge(&mut self, victim: &mut BTree<L, A>, gfp: Gfp) -> Result<()> {
        if self.root.is_null() {
            // Linux: "if target is empty, just swap heads" (the nodes stay with the allocator
            // each tree was given; both trees here must use compatible allocators).
            core::mem::swap(&mut self.root, &mut victim.root);
            core::mem::swap(&mut self.height, &mut victim.height);
            core::mem::swap(&mut self.len, &mut victim.len);
            return Ok(());
        }
        while let Some((k, v)) = victim.last() {
            self.insert(&k, v, gfp)?;
            victim.remove(&k);
        }
        Ok(())
    }

    /// `btree_destroy`: removes every entry and frees all nodes.
    pub fn destroy(&mut self) {
        if !self.root.is_null() {
            self.free_rec(self.root, self.height);
        }
        self.root = ptr::null_mut();
        self.height = 0;
        self.len = 0;
    }

    fn free_rec(&self, node: *mut Node<L>, height: usize) {
        if height > 1 {
            // SAFETY: a live inner node.
            let n = unsafe { &*node };
            for i in 0..n.fill {
                self.free_rec(n.ptrs[i] as *mut Node<L>, height - 1);
            }
        }
        self.free_node(node);
    }

    /// Checks the invariants (see the module docs); returns the number of nodes.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check(&self) -> core::result::Result<usize, &'static str> {
        if self.root.is_null() {
            return if self.len == 0 && self.height == 0 {
                Ok(0)
            } else {
                Err("empty root, non-zero len")
            };
        }
        let mut count = 0;
        let nodes = self.check_rec(self.root, self.height, None, None, &mut count)?;
        if count != self.len {
            return Err("len differs from entries");
        }
        // SAFETY: the live root.
        if self.height > 1 && unsafe { (*self.root).fill } < 2 {
            return Err("inner root with one child");
        }
        Ok(nodes)
    }

    fn check_rec(
        &self,
        node: *mut Node<L>,
        height: usize,
        lo: Option<Key<L>>,
        hi: Option<Key<L>>,
        count: &mut usize,
    ) -> core::result::Result<usize, &'static str> {
        // SAFETY: live nodes of our tree.
        let n = unsafe { &*node };
        if n.fill == 0 || n.fill > Self::PAIRS {
            return Err("bad fill");
        }
        // An inner node's key 0 is not a separator (child 0 takes everything below key 1).
        let first = if height == 1 { 1 } else { 2 };
        for i in first..n.fill {
            if keycmp(&n.keys[i - 1], &n.keys[i]) != Ordering::Less {
                return Err("keys not increasing");
            }
        }
        if height == 1 {
            for i in 0..n.fill {
                if lo.is_some_and(|l| n.keys[i] < l) || hi.is_some_and(|h| n.keys[i] >= h) {
                    return Err("leaf key outside its separators");
                }
                if n.ptrs[i] == 0 {
                    return Err("zero value");
                }
            }
            *count += n.fill;
            return Ok(1);
        }
        let mut nodes = 1;
        for i in 0..n.fill {
            let clo = if i == 0 { lo } else { Some(n.keys[i]) };
            let chi = if i + 1 < n.fill {
                Some(n.keys[i + 1])
            } else {
                hi
            };
            if i > 0 && lo.is_some_and(|l| n.keys[i] < l) {
                return Err("separator below the node's bound");
            }
            nodes += self.check_rec(n.ptrs[i] as *mut Node<L>, height - 1, clo, chi, count)?;
        }
        Ok(nodes)
    }
}

fn insert_at<const L: usize>(n: &mut Node<L>, pos: usize, key: Key<L>, ptr: usize) {
    let f = n.fill;
    n.keys.copy_within(pos..f, pos + 1);
    n.ptrs.copy_within(pos..f, pos + 1);
    n.keys[pos] = key;
    n.ptrs[pos] = ptr;
    n.fill = f + 1;
}

fn remove_at<const L: usize>(n: &mut Node<L>, pos: usize) {
    let f = n.fill;
    n.keys.copy_within(pos + 1..f, pos);
    n.ptrs.copy_within(pos + 1..f, pos);
    n.fill = f - 1;
}

impl<const L: usize, A: NodeAlloc> Drop for BTree<L, A> {
    fn drop(&mut self) {
        self.destroy();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    struct Sys;
    // SAFETY: forwards to std's allocator.
    unsafe impl NodeAlloc for Sys {
        fn alloc(&self, l: Layout, _: Gfp) -> Option<NonNull<u8>> {
            // SAFETY: node layouts are non-zero-sized.
            NonNull::new(unsafe { std::alloc::alloc(l) })
        }
        unsafe fn free(&self, p: NonNull<u8>, l: Layout) {
            // SAFETY: `p` came from `alloc` with `l`.
            unsafe { std::alloc::dealloc(p.as_ptr(), l) }
        }
    }

    #[test]
    fn four_word_keys() {
        // btree_geo128 on a 32-bit machine: four words, three pairs per node.
        let mut t: BTree<4, Sys> = BTree::new_in(Sys);
        for i in 0..500usize {
            let k = [i % 7, usize::MAX - i, i, 0];
            t.insert(&k, NonZeroUsize::new(i + 1).unwrap(), Gfp::GFP_KERNEL)
                .unwrap();
        }
        t.check().unwrap();
        assert!(t.height() >= 5);
        let keys: std::vec::Vec<_> = t.iter().map(|(k, _)| k).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for i in 0..500usize {
            assert_eq!(
                t.remove(&[i % 7, usize::MAX - i, i, 0]),
                NonZeroUsize::new(i + 1)
            );
        }
        assert!(t.is_empty());
        t.check().unwrap();
    }
}
