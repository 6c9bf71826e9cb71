//! A safe ordered map on the raw rbtree (the layer Rust users call).
//!
//! # Invariants
//! - Every node is a `Node<K, V>` allocated from `self.alloc` with `Layout::new::<Node<K, V>>()`,
//!   fully initialised, linked in `self.root` exactly once; `self.len` counts them.
//! - Keys are unique and in `Ord` order; `root.rb_leftmost` is the first node.
//! - `spare` is a singly linked list (through `rb.rb_right`) of allocated but uninitialised
//!   nodes kept by [`RbTree::reserve`], so insertion can be made infallible beforehand.
//!
//! # Locking
//! Plain Rust ownership: `&mut self` to modify, `&self` to read.

use core::alloc::Layout;
use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds};
use core::ptr::{self, NonNull};

use super::check::{rb_check_cached, RbCheckError, RbCheckInfo};
use super::{
    rb_erase_cached, rb_first_postorder, rb_insert_color_cached, rb_last, rb_link_node, rb_next,
    rb_next_postorder, rb_prev, RbNode, RbRootCached,
};
use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};

#[repr(C)]
struct Node<K, V> {
    rb: RbNode,
    key: K,
    value: V,
}

#[inline(always)]
fn node<K, V>(rb: *mut RbNode) -> *mut Node<K, V> {
    // `rb` is the first field of the `#[repr(C)]` Node.
    rb.cast()
}

/// An ordered map from `K` to `V` on a red-black tree, with nodes from the allocator `A`.
///
/// Insertion allocates one node with the caller's [`Gfp`] flags and can fail with
/// [`Error::ENOMEM`]; [`RbTree::reserve`] preallocates nodes so that later insertions cannot
/// fail (the `RBTreeNodeReservation` idea of Linux's rust/kernel/rbtree.rs).
///
/// # Examples
/// ```
/// # use kds::alloc::{Gfp, NodeAlloc};
/// # struct Sys; unsafe impl NodeAlloc for Sys {
/// #   fn alloc(&self, l: core::alloc::Layout, _: Gfp) -> Option<core::ptr::NonNull<u8>> {
/// #     extern crate std; core::ptr::NonNull::new(unsafe { std::alloc::alloc(l) }) }
/// #   unsafe fn free(&self, p: core::ptr::NonNull<u8>, l: core::alloc::Layout) {
/// #     extern crate std; unsafe { std::alloc::dealloc(p.as_ptr(), l) } } }
/// use kds::rbtree::RbTree;
/// let mut t = RbTree::new_in(Sys);
/// t.insert(3, "c", Gfp::GFP_KERNEL).unwrap();
/// t.insert(1, "a", Gfp::GFP_KERNEL).unwrap();
/// assert_eq!(t.get(&1), Some(&"a"));
/// assert_eq!(t.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 3]);
/// ```
pub struct RbTree<K, V, A: NodeAlloc> {
    root: RbRootCached,
    len: usize,
    spare: *mut RbNode,
    nr_spare: usize,
    alloc: A,
    _marker: PhantomData<(K, V)>,
}

// SAFETY: the tree owns its keys and values; sending it sends them.
unsafe impl<K: Send, V: Send, A: NodeAlloc + Send> Send for RbTree<K, V, A> {}
// SAFETY: `&RbTree` only gives out `&K`/`&V`.
unsafe impl<K: Sync, V: Sync, A: NodeAlloc + Sync> Sync for RbTree<K, V, A> {}

/// Where a missing key would be linked.
#[derive(Clone, Copy)]
struct Slot {
    parent: *mut RbNode,
    left: bool,
    leftmost: bool,
}

enum Search {
    Found(*mut RbNode),
    Vacant(Slot),
}

impl<K, V, A: NodeAlloc> RbTree<K, V, A> {
    const LAYOUT: Layout = Layout::new::<Node<K, V>>();

    /// Returns an empty map allocating from `alloc`.
    pub const fn new_in(alloc: A) -> Self {
        RbTree {
            root: RbRootCached::new(),
            len: 0,
            spare: ptr::null_mut(),
            nr_spare: 0,
            alloc,
            _marker: PhantomData,
        }
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns true if the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Preallocates `n` more nodes, so that the next `n` insertions of new keys cannot fail.
    ///
    /// # Errors
    /// [`Error::ENOMEM`] if an allocation fails (the nodes already obtained are kept).
    pub fn reserve(&mut self, n: usize, gfp: Gfp) -> Result<()> {
        for _ in 0..n {
            let p = self
                .alloc
                .alloc(Self::LAYOUT, gfp)
                .ok_or(Error::ENOMEM)?
                .cast::<RbNode>()
                .as_ptr();
            // SAFETY: `p` is a fresh block large enough for a Node, hence for its RbNode.
            unsafe {
                p.write(RbNode {
                    __rb_parent_color: 0,
                    rb_right: self.spare,
                    rb_left: ptr::null_mut(),
                })
            };
            self.spare = p;
            self.nr_spare += 1;
        }
        Ok(())
    }

    /// Returns the number of preallocated nodes (see [`RbTree::reserve`]).
    pub fn reserved(&self) -> usize {
        self.nr_spare
    }

    /// Frees all preallocated nodes.
    pub fn shrink_reserve(&mut self) {
        while !self.spare.is_null() {
            let p = self.spare;
            // SAFETY: spare nodes are allocated blocks with an initialised RbNode header.
            unsafe {
                self.spare = (*p).rb_right;
                self.alloc
                    .free(NonNull::new_unchecked(p.cast()), Self::LAYOUT);
            }
        }
        self.nr_spare = 0;
    }

    fn new_node(&mut self, gfp: Gfp) -> Result<*mut Node<K, V>> {
        if !self.spare.is_null() {
            let p = self.spare;
            // SAFETY: the spare list holds allocated nodes with an initialised header.
            self.spare = unsafe { (*p).rb_right };
            self.nr_spare -= 1;
            return Ok(node(p));
        }
        Ok(self
            .alloc
            .alloc(Self::LAYOUT, gfp)
            .ok_or(Error::ENOMEM)?
            .cast::<Node<K, V>>()
            .as_ptr())
    }

    fn search<Q>(&self, key: &Q) -> Search
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut cur = self.root.rb_root.rb_node;
        let mut slot = Slot {
            parent: ptr::null_mut(),
            left: true,
            leftmost: true,
        };
        while !cur.is_null() {
            // SAFETY: `cur` is a linked node of this tree (invariant), initialised.
            let n = unsafe { &*node::<K, V>(cur) };
            slot.parent = cur;
            match key.cmp(n.key.borrow()) {
                Ordering::Less => {
                    slot.left = true;
                    cur = n.rb.rb_left;
                }
                Ordering::Greater => {
                    slot.left = false;
                    slot.leftmost = false;
                    cur = n.rb.rb_right;
                }
                Ordering::Equal => return Search::Found(cur),
            }
        }
        Search::Vacant(slot)
    }

    /// Links a new node; returns it.
    fn link(&mut self, slot: Slot, key: K, value: V, gfp: Gfp) -> Result<*mut Node<K, V>> {
        let n = self.new_node(gfp)?;
        // SAFETY: `n` is an allocated, exclusively owned Node block; `slot` came from a search of
        // this tree with no modification since (we hold `&mut self`).
        unsafe {
            ptr::addr_of_mut!((*n).key).write(key);
            ptr::addr_of_mut!((*n).value).write(value);
            let rb = ptr::addr_of_mut!((*n).rb);
            let link: *mut *mut RbNode = if slot.parent.is_null() {
                &mut self.root.rb_root.rb_node
            } else if slot.left {
                &mut (*slot.parent).rb_left
            } else {
                &mut (*slot.parent).rb_right
            };
            rb_link_node(rb, slot.parent, link);
            rb_insert_color_cached(rb, &mut self.root, slot.leftmost);
        }
        self.len += 1;
        Ok(n)
    }

    /// Unlinks `rb`, frees its node and returns its key and value.
    ///
    /// # Safety
    /// `rb` must be a linked node of this tree.
    unsafe fn unlink(&mut self, rb: *mut RbNode) -> (K, V) {
        // SAFETY: the caller guarantees `rb` is ours; after erasing, the node is exclusively
        // owned, its key/value are moved out once, and the block is freed with its layout.
        unsafe {
            rb_erase_cached(rb, &mut self.root);
            self.len -= 1;
            let n = node::<K, V>(rb);
            let k = ptr::addr_of!((*n).key).read();
            let v = ptr::addr_of!((*n).value).read();
            self.alloc
                .free(NonNull::new_unchecked(n.cast()), Self::LAYOUT);
            (k, v)
        }
    }

    /// Inserts `key` → `value`; returns the previous value of `key`, if any (the key itself is
    /// then not updated, like `BTreeMap::insert`).
    ///
    /// # Errors
    /// [`Error::ENOMEM`] if the key is new and no node could be allocated (nor was reserved);
    /// the map is unchanged and `key`/`value` are dropped.
    pub fn insert(&mut self, key: K, value: V, gfp: Gfp) -> Result<Option<V>>
    where
        K: Ord,
    {
        match self.search(&key) {
            Search::Found(rb) => {
                // SAFETY: a linked node, and we hold `&mut self`.
                let n = unsafe { &mut *node::<K, V>(rb) };
                Ok(Some(core::mem::replace(&mut n.value, value)))
            }
            Search::Vacant(slot) => {
                self.link(slot, key, value, gfp)?;
                Ok(None)
            }
        }
    }

    /// Returns the value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.search(key) {
            // SAFETY: a linked node lives as long as `&self`.
            Search::Found(rb) => Some(unsafe { &(*node::<K, V>(rb)).value }),
            Search::Vacant(_) => None,
        }
    }

    /// Returns the stored key and value of `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.search(key) {
            Search::Found(rb) => {
                // SAFETY: a linked node lives as long as `&self`.
                let n = unsafe { &*node::<K, V>(rb) };
                Some((&n.key, &n.value))
            }
            Search::Vacant(_) => None,
        }
    }

    /// Returns the value of `key` for modification.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.search(key) {
            // SAFETY: a linked node; `&mut self` makes the borrow exclusive.
            Search::Found(rb) => Some(unsafe { &mut (*node::<K, V>(rb)).value }),
            Search::Vacant(_) => None,
        }
    }

    /// Returns true if `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        matches!(self.search(key), Search::Found(_))
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Removes `key`; returns the stored key and value.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.search(key) {
            // SAFETY: `rb` is a linked node of this tree.
            Search::Found(rb) => Some(unsafe { self.unlink(rb) }),
            Search::Vacant(_) => None,
        }
    }

    /// Returns the entry of `key`, for in-place insertion or update.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V, A>
    where
        K: Ord,
    {
        match self.search(&key) {
            Search::Found(rb) => Entry::Occupied(OccupiedEntry { tree: self, rb }),
            Search::Vacant(slot) => Entry::Vacant(VacantEntry {
                tree: self,
                key,
                slot,
            }),
        }
    }

    /// Returns the first (smallest) entry, in O(1) (the cached leftmost node).
    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        // SAFETY: a null-checked linked node lives as long as `&self`.
        unsafe { kv(self.root.rb_leftmost) }
    }

    /// Returns the last (largest) entry.
    pub fn last_key_value(&self) -> Option<(&K, &V)> {
        // SAFETY: `rb_last` of our valid tree; a linked node lives as long as `&self`.
        unsafe { kv(rb_last(&self.root.rb_root)) }
    }

    /// Removes and returns the first entry.
    pub fn pop_first(&mut self) -> Option<(K, V)> {
        let rb = self.root.rb_leftmost;
        // SAFETY: a linked node, if not null.
        (!rb.is_null()).then(|| unsafe { self.unlink(rb) })
    }

    /// Removes and returns the last entry.
    pub fn pop_last(&mut self) -> Option<(K, V)> {
        // SAFETY: our valid tree.
        let rb = unsafe { rb_last(&self.root.rb_root) };
        // SAFETY: a linked node, if not null.
        (!rb.is_null()).then(|| unsafe { self.unlink(rb) })
    }

    /// Returns an in-order iterator.
    pub fn iter(&self) -> Iter<'_, K, V> {
        // SAFETY: our valid tree.
        let back = unsafe { rb_last(&self.root.rb_root) };
        Iter {
            raw: RawRange {
                front: self.root.rb_leftmost,
                back,
            },
            len: self.len,
            _marker: PhantomData,
        }
    }

    /// Returns an in-order iterator with mutable values.
    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        // SAFETY: our valid tree.
        let back = unsafe { rb_last(&self.root.rb_root) };
        IterMut {
            raw: RawRange {
                front: self.root.rb_leftmost,
                back,
            },
            len: self.len,
            _marker: PhantomData,
        }
    }

    /// Returns the keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Returns the values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Returns the first node with key `>= key` (`Included`) or `> key` (`Excluded`).
    fn lower_bound<Q>(&self, bound: Bound<&Q>) -> *mut RbNode
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut cur = self.root.rb_root.rb_node;
        let mut best = ptr::null_mut();
        let (key, incl) = match bound {
            Bound::Unbounded => return self.root.rb_leftmost,
            Bound::Included(k) => (k, true),
            Bound::Excluded(k) => (k, false),
        };
        while !cur.is_null() {
            // SAFETY: a linked node.
            let n = unsafe { &*node::<K, V>(cur) };
            let go_left = match n.key.borrow().cmp(key) {
                Ordering::Greater => true,
                Ordering::Equal => incl,
                Ordering::Less => false,
            };
            if go_left {
                best = cur;
                cur = n.rb.rb_left;
            } else {
                cur = n.rb.rb_right;
            }
        }
        best
    }

    /// Returns the last node with key `<= key` (`Included`) or `< key` (`Excluded`).
    fn upper_bound<Q>(&self, bound: Bound<&Q>) -> *mut RbNode
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut cur = self.root.rb_root.rb_node;
        let mut best = ptr::null_mut();
        let (key, incl) = match bound {
            // SAFETY: our valid tree.
            Bound::Unbounded => return unsafe { rb_last(&self.root.rb_root) },
            Bound::Included(k) => (k, true),
            Bound::Excluded(k) => (k, false),
        };
        while !cur.is_null() {
            // SAFETY: a linked node.
            let n = unsafe { &*node::<K, V>(cur) };
            let go_right = match n.key.borrow().cmp(key) {
                Ordering::Less => true,
                Ordering::Equal => incl,
                Ordering::Greater => false,
            };
            if go_right {
                best = cur;
                cur = n.rb.rb_right;
            } else {
                cur = n.rb.rb_left;
            }
        }
        best
    }

    fn raw_range<Q, R>(&self, range: R) -> RawRange
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let front = self.lower_bound(range.start_bound());
        let back = self.upper_bound(range.end_bound());
        if front.is_null() || back.is_null() {
            return RawRange::EMPTY;
        }
        // SAFETY: both are linked nodes.
        let (f, b): (&Q, &Q) = unsafe {
            (
                (*node::<K, V>(front)).key.borrow(),
                (*node::<K, V>(back)).key.borrow(),
            )
        };
        if f > b {
            return RawRange::EMPTY;
        }
        RawRange { front, back }
    }

    /// Returns an in-order iterator over the entries whose keys are in `range`. An empty or
    /// inverted range yields nothing (it does not panic, unlike `BTreeMap::range`).
    pub fn range<Q, R>(&self, range: R) -> Range<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        Range {
            raw: self.raw_range(range),
            _marker: PhantomData,
        }
    }

    /// Returns a cursor at the first entry (or at no entry if the map is empty).
    pub fn cursor_front(&self) -> Cursor<'_, K, V, A> {
        Cursor {
            tree: self,
            cur: self.root.rb_leftmost,
        }
    }

    /// Returns a cursor at the last entry.
    pub fn cursor_back(&self) -> Cursor<'_, K, V, A> {
        // SAFETY: our valid tree.
        let cur = unsafe { rb_last(&self.root.rb_root) };
        Cursor { tree: self, cur }
    }

    /// Returns a cursor at the first entry whose key is `>= key`.
    pub fn cursor_lower_bound<Q>(&self, key: &Q) -> Cursor<'_, K, V, A>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        Cursor {
            tree: self,
            cur: self.lower_bound(Bound::Included(key)),
        }
    }

    /// Returns a mutable cursor at the first entry.
    pub fn cursor_front_mut(&mut self) -> CursorMut<'_, K, V, A> {
        let cur = self.root.rb_leftmost;
        CursorMut { tree: self, cur }
    }

    /// Returns a mutable cursor at the last entry.
    pub fn cursor_back_mut(&mut self) -> CursorMut<'_, K, V, A> {
        // SAFETY: our valid tree.
        let cur = unsafe { rb_last(&self.root.rb_root) };
        CursorMut { tree: self, cur }
    }

    /// Returns a mutable cursor at the first entry whose key is `>= key`.
    pub fn cursor_lower_bound_mut<Q>(&mut self, key: &Q) -> CursorMut<'_, K, V, A>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let cur = self.lower_bound(Bound::Included(key));
        CursorMut { tree: self, cur }
    }

    /// Removes every entry (post-order, as Linux's `rbtree_postorder_for_each_entry_safe`).
    pub fn clear(&mut self) {
        // SAFETY: post-order visits each node once, after its children; `rb_next_postorder`
        // is called before the node is freed; every node is then freed exactly once.
        unsafe {
            let mut rb = rb_first_postorder(&self.root.rb_root);
            while !rb.is_null() {
                let next = rb_next_postorder(rb);
                let n = node::<K, V>(rb);
                ptr::drop_in_place(n);
                self.alloc
                    .free(NonNull::new_unchecked(n.cast()), Self::LAYOUT);
                rb = next;
            }
        }
        self.root = RbRootCached::new();
        self.len = 0;
    }

    /// Runs the invariant checker of lib/rbtree_test.c on the tree (strictly increasing keys,
    /// colours, black height, parent links, leftmost cache, count).
    ///
    /// # Errors
    /// The first violated invariant.
    pub fn check(&self) -> core::result::Result<RbCheckInfo, RbCheckError>
    where
        K: Ord,
    {
        // SAFETY: our valid tree; the closure gets linked nodes.
        let info = unsafe {
            rb_check_cached(&self.root, |a, b| {
                (*node::<K, V>(a as *mut RbNode)).key < (*node::<K, V>(b as *mut RbNode)).key
            })?
        };
        if info.count != self.len {
            return Err(RbCheckError::Postorder);
        }
        Ok(info)
    }

    /// Returns the raw root (for the checker and for callers mixing in raw-layer walks).
    pub fn raw_root(&self) -> &RbRootCached {
        &self.root
    }
}

impl<K, V, A: NodeAlloc> Drop for RbTree<K, V, A> {
    fn drop(&mut self) {
        self.clear();
        self.shrink_reserve();
    }
}

impl<K: fmt::Debug, V: fmt::Debug, A: NodeAlloc> fmt::Debug for RbTree<K, V, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// # Safety
/// `rb` is null or a linked node alive for `'a`.
unsafe fn kv<'a, K, V>(rb: *mut RbNode) -> Option<(&'a K, &'a V)> {
    if rb.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a live node.
    let n = unsafe { &*node::<K, V>(rb) };
    Some((&n.key, &n.value))
}

/// A pair of inclusive ends of an in-order run of nodes.
#[derive(Clone, Copy)]
struct RawRange {
    front: *mut RbNode,
    back: *mut RbNode,
}

impl RawRange {
    const EMPTY: RawRange = RawRange {
        front: ptr::null_mut(),
        back: ptr::null_mut(),
    };

    /// # Safety
    /// The ends are linked nodes of a tree not modified while the range is in use.
    unsafe fn next(&mut self) -> *mut RbNode {
        let n = self.front;
        if n.is_null() {
            return n;
        }
        if n == self.back {
            *self = Self::EMPTY;
        } else {
            // SAFETY: the caller guarantees `n` is linked.
            self.front = unsafe { rb_next(n) };
        }
        n
    }

    /// # Safety
    /// As [`RawRange::next`].
    unsafe fn next_back(&mut self) -> *mut RbNode {
        let n = self.back;
        if n.is_null() {
            return n;
        }
        if n == self.front {
            *self = Self::EMPTY;
        } else {
            // SAFETY: the caller guarantees `n` is linked.
            self.back = unsafe { rb_prev(n) };
        }
        n
    }
}

/// An in-order iterator over a [`RbTree`].
pub struct Iter<'a, K, V> {
    raw: RawRange,
    len: usize,
    _marker: PhantomData<&'a (K, V)>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: the tree is borrowed for 'a, so its nodes are linked and unmodified.
        let r = unsafe { kv(self.raw.next()) };
        if r.is_some() {
            self.len -= 1;
        }
        r
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        // SAFETY: the tree is borrowed for 'a, so the range's ends are linked nodes of a tree
        // nobody modifies while the iterator lives (`next_back`'s contract).
        let r = unsafe { kv(self.raw.next_back()) };
        if r.is_some() {
            self.len -= 1;
        }
        r
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

/// An in-order iterator with mutable values.
pub struct IterMut<'a, K, V> {
    raw: RawRange,
    len: usize,
    _marker: PhantomData<&'a mut (K, V)>,
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);
    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: the tree is mutably borrowed for 'a; each node is yielded once.
        let rb = unsafe { self.raw.next() };
        if rb.is_null() {
            return None;
        }
        self.len -= 1;
        // SAFETY: `rb` is a node of the tree mutably borrowed for 'a, and the raw iterator yields
        // each node once, so this `&mut` aliases no other yielded reference.
        let n = unsafe { &mut *node::<K, V>(rb) };
        Some((&n.key, &mut n.value))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<K, V> DoubleEndedIterator for IterMut<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        // SAFETY: the tree is mutably borrowed for 'a and only this iterator reaches it, so the
        // range's ends stay linked and the tree's shape is unmodified; each node is yielded once.
        let rb = unsafe { self.raw.next_back() };
        if rb.is_null() {
            return None;
        }
        self.len -= 1;
        // SAFETY: `rb` is a node of the tree mutably borrowed for 'a, and the front and back ends
        // never yield the same node twice, so this `&mut` aliases no other yielded reference.
        let n = unsafe { &mut *node::<K, V>(rb) };
        Some((&n.key, &mut n.value))
    }
}

/// An in-order iterator over a key range of a [`RbTree`].
pub struct Range<'a, K, V> {
    raw: RawRange,
    _marker: PhantomData<&'a (K, V)>,
}

impl<'a, K, V> Iterator for Range<'a, K, V> {
    type Item = (&'a K, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: the tree is borrowed for 'a.
        unsafe { kv(self.raw.next()) }
    }
}

impl<K, V> DoubleEndedIterator for Range<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        // SAFETY: the tree is borrowed for 'a.
        unsafe { kv(self.raw.next_back()) }
    }
}

/// An owning in-order iterator.
pub struct IntoIter<K, V, A: NodeAlloc> {
    tree: RbTree<K, V, A>,
}

impl<K, V, A: NodeAlloc> Iterator for IntoIter<K, V, A> {
    type Item = (K, V);
    fn next(&mut self) -> Option<(K, V)> {
        self.tree.pop_first()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.tree.len, Some(self.tree.len))
    }
}

impl<K, V, A: NodeAlloc> DoubleEndedIterator for IntoIter<K, V, A> {
    fn next_back(&mut self) -> Option<(K, V)> {
        self.tree.pop_last()
    }
}

impl<K, V, A: NodeAlloc> IntoIterator for RbTree<K, V, A> {
    type Item = (K, V);
    type IntoIter = IntoIter<K, V, A>;
    fn into_iter(self) -> IntoIter<K, V, A> {
        IntoIter { tree: self }
    }
}

impl<'a, K, V, A: NodeAlloc> IntoIterator for &'a RbTree<K, V, A> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;
    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

/// A read-only cursor: a position at an entry, or past either end ("no entry").
pub struct Cursor<'a, K, V, A: NodeAlloc> {
    tree: &'a RbTree<K, V, A>,
    cur: *mut RbNode,
}

impl<'a, K, V, A: NodeAlloc> Cursor<'a, K, V, A> {
    /// Returns the entry at the cursor, or `None` past the ends.
    pub fn current(&self) -> Option<(&'a K, &'a V)> {
        // SAFETY: the tree is borrowed for 'a; `cur` is null or linked.
        unsafe { kv(self.cur) }
    }
    /// Moves to the next entry (past the end stays there).
    pub fn move_next(&mut self) {
        if !self.cur.is_null() {
            // SAFETY: `cur` is linked.
            self.cur = unsafe { rb_next(self.cur) };
        }
    }
    /// Moves to the previous entry.
    pub fn move_prev(&mut self) {
        if !self.cur.is_null() {
            // SAFETY: `cur` is linked.
            self.cur = unsafe { rb_prev(self.cur) };
        }
    }
    /// Returns the next entry without moving.
    pub fn peek_next(&self) -> Option<(&'a K, &'a V)> {
        if self.cur.is_null() {
            return None;
        }
        // SAFETY: `cur` is linked; the tree is borrowed for 'a.
        unsafe { kv(rb_next(self.cur)) }
    }
    /// Returns the previous entry without moving.
    pub fn peek_prev(&self) -> Option<(&'a K, &'a V)> {
        if self.cur.is_null() {
            return None;
        }
        // SAFETY: `cur` is linked; the tree is borrowed for 'a.
        unsafe { kv(rb_prev(self.cur)) }
    }
    /// Returns the tree.
    pub fn tree(&self) -> &'a RbTree<K, V, A> {
        self.tree
    }
}

/// A cursor that can modify values and remove entries.
pub struct CursorMut<'a, K, V, A: NodeAlloc> {
    tree: &'a mut RbTree<K, V, A>,
    cur: *mut RbNode,
}

impl<K, V, A: NodeAlloc> CursorMut<'_, K, V, A> {
    /// Returns the entry at the cursor.
    pub fn current(&mut self) -> Option<(&K, &mut V)> {
        if self.cur.is_null() {
            return None;
        }
        // SAFETY: `cur` is linked and the tree exclusively borrowed.
        let n = unsafe { &mut *node::<K, V>(self.cur) };
        Some((&n.key, &mut n.value))
    }
    /// Moves to the next entry.
    pub fn move_next(&mut self) {
        if !self.cur.is_null() {
            // SAFETY: `cur` is linked.
            self.cur = unsafe { rb_next(self.cur) };
        }
    }
    /// Moves to the previous entry.
    pub fn move_prev(&mut self) {
        if !self.cur.is_null() {
            // SAFETY: `cur` is linked.
            self.cur = unsafe { rb_prev(self.cur) };
        }
    }
    /// Returns the next entry's key and value without moving.
    pub fn peek_next(&self) -> Option<(&K, &V)> {
        if self.cur.is_null() {
            return None;
        }
        // SAFETY: `cur` is linked.
        unsafe { kv(rb_next(self.cur)) }
    }
    /// Returns the previous entry without moving.
    pub fn peek_prev(&self) -> Option<(&K, &V)> {
        if self.cur.is_null() {
            return None;
        }
        // SAFETY: `cur` is linked.
        unsafe { kv(rb_prev(self.cur)) }
    }
    /// Removes the entry at the cursor and moves to the next one; returns the removed entry.
    pub fn remove_current(&mut self) -> Option<(K, V)> {
        if self.cur.is_null() {
            return None;
        }
        let rb = self.cur;
        // SAFETY: `rb` is linked; its successor is computed before it is unlinked.
        unsafe {
            self.cur = rb_next(rb);
            Some(self.tree.unlink(rb))
        }
    }
}

/// An entry of a [`RbTree`], from [`RbTree::entry`].
pub enum Entry<'a, K, V, A: NodeAlloc> {
    /// The key is present.
    Occupied(OccupiedEntry<'a, K, V, A>),
    /// The key is absent.
    Vacant(VacantEntry<'a, K, V, A>),
}

impl<'a, K: Ord, V, A: NodeAlloc> Entry<'a, K, V, A> {
    /// Returns the value, inserting `value` if absent.
    ///
    /// # Errors
    /// [`Error::ENOMEM`] if a node was needed and could not be allocated.
    pub fn or_insert(self, value: V, gfp: Gfp) -> Result<&'a mut V> {
        match self {
            Entry::Occupied(o) => Ok(o.into_mut()),
            Entry::Vacant(v) => v.insert(value, gfp),
        }
    }

    /// Returns the value, inserting `f()` if absent.
    ///
    /// # Errors
    /// [`Error::ENOMEM`] if a node was needed and could not be allocated.
    pub fn or_insert_with(self, f: impl FnOnce() -> V, gfp: Gfp) -> Result<&'a mut V> {
        match self {
            Entry::Occupied(o) => Ok(o.into_mut()),
            Entry::Vacant(v) => v.insert(f(), gfp),
        }
    }

    /// Calls `f` on the value if present.
    pub fn and_modify(mut self, f: impl FnOnce(&mut V)) -> Self {
        if let Entry::Occupied(o) = &mut self {
            f(o.get_mut());
        }
        self
    }

    /// Returns the entry's key.
    pub fn key(&self) -> &K {
        match self {
            Entry::Occupied(o) => o.key(),
            Entry::Vacant(v) => &v.key,
        }
    }
}

/// A present entry.
pub struct OccupiedEntry<'a, K, V, A: NodeAlloc> {
    tree: &'a mut RbTree<K, V, A>,
    rb: *mut RbNode,
}

impl<'a, K, V, A: NodeAlloc> OccupiedEntry<'a, K, V, A> {
    /// Returns the key.
    pub fn key(&self) -> &K {
        // SAFETY: `rb` is linked; the tree is exclusively borrowed.
        unsafe { &(*node::<K, V>(self.rb)).key }
    }
    /// Returns the value.
    pub fn get(&self) -> &V {
        // SAFETY: `rb` is a linked node of the tree, which the entry borrows exclusively, so the
        // node and its value are live and `&self` gives only shared access.
        unsafe { &(*node::<K, V>(self.rb)).value }
    }
    /// Returns the value for modification.
    pub fn get_mut(&mut self) -> &mut V {
        // SAFETY: `rb` is a linked node of the exclusively borrowed tree, and `&mut self` makes
        // this the only reference to its value.
        unsafe { &mut (*node::<K, V>(self.rb)).value }
    }
    /// Returns the value for modification, for the tree's borrow.
    pub fn into_mut(self) -> &'a mut V {
        // SAFETY: `rb` is a linked node of the tree borrowed mutably for 'a; the entry is consumed,
        // so the returned `&mut` is the only reference to the value for 'a.
        unsafe { &mut (*node::<K, V>(self.rb)).value }
    }
    /// Replaces the value; returns the old one.
    pub fn insert(&mut self, value: V) -> V {
        core::mem::replace(self.get_mut(), value)
    }
    /// Removes the entry; returns its value.
    pub fn remove(self) -> V {
        self.remove_entry().1
    }
    /// Removes the entry; returns its key and value.
    pub fn remove_entry(self) -> (K, V) {
        // SAFETY: `rb` is a linked node of the tree.
        unsafe { self.tree.unlink(self.rb) }
    }
}

/// An absent entry, remembering where its node would be linked.
pub struct VacantEntry<'a, K, V, A: NodeAlloc> {
    tree: &'a mut RbTree<K, V, A>,
    key: K,
    slot: Slot,
}

impl<'a, K, V, A: NodeAlloc> VacantEntry<'a, K, V, A> {
    /// Returns the key.
    pub fn key(&self) -> &K {
        &self.key
    }
    /// Inserts `value` (no second search); returns it for modification.
    ///
    /// # Errors
    /// [`Error::ENOMEM`] if no node could be allocated (nor was reserved).
    pub fn insert(self, value: V, gfp: Gfp) -> Result<&'a mut V> {
        let n = self.tree.link(self.slot, self.key, value, gfp)?;
        // SAFETY: `n` was just linked and the tree is exclusively borrowed for 'a.
        Ok(unsafe { &mut (*n).value })
    }
}
