//! Red-black trees, as in `<linux/rbtree.h>`, `<linux/rbtree_augmented.h>` and lib/rbtree.c.
//!
//! # Raw layer
//! [`RbNode`] is `struct rb_node`: embedded in the structure it links, with the parent pointer
//! and the colour packed in one word (`__rb_parent_color`, colour in bit 0: [`RB_RED`] = 0,
//! [`RB_BLACK`] = 1; nodes are at least 4-byte aligned so the bit is free). The tree does not
//! know keys: insertion is Linux's two steps, the caller walks down comparing its own keys,
//! links the new node with [`rb_link_node`] at the empty child slot it found, then rebalances
//! with [`rb_insert_color`]. [`rb_erase`], [`rb_replace_node`], [`rb_next`], [`rb_prev`],
//! [`rb_first`], [`rb_last`], post-order traversal ([`rb_first_postorder`],
//! [`rb_next_postorder`]), the cached-leftmost root ([`RbRootCached`]) and the `rb_add` /
//! `rb_find` helpers complete the layer. Augmented trees (a value per node computed from its
//! subtree, kept up to date through rotations) are in [`augmented`]; the invariant checker of
//! lib/rbtree_test.c is in [`check`].
//!
//! The raw functions are `unsafe`: the caller guarantees every pointer is valid, nodes do not
//! move while linked, and no one else accesses the tree concurrently (Linux: the tree's lock).
//!
//! # Safe layer
//! [`RbTree`] is an ordered map on top (insert, get, remove, range, cursors, entry), owning its
//! nodes through a [`NodeAlloc`](crate::alloc::NodeAlloc).
//!
//! # Invariants (checked by [`check::rb_check`])
//! 1. In-order traversal visits keys in the caller's order.
//! 2. The root is black; a red node has no red child.
//! 3. Every path from a node to an empty child has the same number of black nodes.
//! 4. For each linked node `n`, `rb_parent(n.rb_left) == n` and `rb_parent(n.rb_right) == n`.
//! 5. Augmented trees: each node's augmented value equals the value recomputed from its subtree.
//!
//! # Locking
//! None inside. Writers need exclusive access; Linux's lockless lookups under a seqcount are
//! not offered (readers take the same lock or `&` access to the safe map).

pub mod augmented;
pub mod check;
mod map;

pub use map::{
    Cursor, CursorMut, Entry, IntoIter, Iter, IterMut, OccupiedEntry, Range, RbTree, VacantEntry,
};

use core::cmp::Ordering;
use core::ptr;

/// Colour of a red node (`RB_RED`, include/linux/rbtree_augmented.h).
pub const RB_RED: usize = 0;
/// Colour of a black node (`RB_BLACK`).
pub const RB_BLACK: usize = 1;

/// `struct rb_node`: a red-black tree link embedded in the structure it orders.
#[repr(C)]
#[derive(Debug)]
pub struct RbNode {
    /// Parent pointer with the colour in bit 0.
    __rb_parent_color: usize,
    /// The right child, or null.
    pub rb_right: *mut RbNode,
    /// The left child, or null.
    pub rb_left: *mut RbNode,
}

// SAFETY: an RbNode is plain pointers; all dereferencing goes through `unsafe` functions whose
// callers provide the synchronisation.
unsafe impl Send for RbNode {}
// SAFETY: `&RbNode` exposes only the pointer values (plain words); every dereference is an `unsafe`
// function whose caller synchronises.
unsafe impl Sync for RbNode {}

impl RbNode {
    /// Returns an unlinked node (all zero, as a `kzalloc`ed `struct rb_node`).
    pub const fn new() -> Self {
        RbNode {
            __rb_parent_color: 0,
            rb_right: ptr::null_mut(),
            rb_left: ptr::null_mut(),
        }
    }

    /// Returns the raw parent-and-colour word.
    #[inline]
    pub fn parent_color(&self) -> usize {
        self.__rb_parent_color
    }
}

impl Default for RbNode {
    fn default() -> Self {
        Self::new()
    }
}

/// `struct rb_root`: the root of a tree.
#[repr(C)]
#[derive(Debug)]
pub struct RbRoot {
    /// The root node, or null for an empty tree.
    pub rb_node: *mut RbNode,
}

// SAFETY: an RbRoot is one plain pointer; moving it to another thread moves only that word, and
// every dereference of it is an `unsafe` function whose caller synchronises.
unsafe impl Send for RbRoot {}
// SAFETY: `&RbRoot` exposes only the pointer value (a plain word); every dereference goes through
// an `unsafe` function whose caller synchronises.
unsafe impl Sync for RbRoot {}

impl RbRoot {
    /// `RB_ROOT`: an empty tree.
    pub const fn new() -> Self {
        RbRoot {
            rb_node: ptr::null_mut(),
        }
    }

    /// `RB_EMPTY_ROOT`: returns true if the tree has no node.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rb_node.is_null()
    }
}

impl Default for RbRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// `struct rb_root_cached`: a root that also caches the leftmost (smallest) node.
#[repr(C)]
#[derive(Debug)]
pub struct RbRootCached {
    /// The tree.
    pub rb_root: RbRoot,
    /// The leftmost node, or null for an empty tree.
    pub rb_leftmost: *mut RbNode,
}

// SAFETY: an RbRootCached is two plain pointers (root and leftmost); moving it moves only those
// words, and every dereference is an `unsafe` function whose caller synchronises.
unsafe impl Send for RbRootCached {}
// SAFETY: `&RbRootCached` exposes only the two pointer values (plain words); every dereference goes
// through an `unsafe` function whose caller synchronises.
unsafe impl Sync for RbRootCached {}

impl RbRootCached {
    /// `RB_ROOT_CACHED`: an empty tree.
    pub const fn new() -> Self {
        RbRootCached {
            rb_root: RbRoot::new(),
            rb_leftmost: ptr::null_mut(),
        }
    }
}

impl Default for RbRootCached {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Parent/colour word accessors (include/linux/rbtree_augmented.h).

#[inline(always)]
fn __rb_parent(pc: usize) -> *mut RbNode {
    (pc & !3) as *mut RbNode
}

#[inline(always)]
fn __rb_is_black(pc: usize) -> bool {
    pc & 1 == RB_BLACK
}

/// `rb_parent`: returns the parent of `node` (null for the root).
///
/// # Safety
/// `node` must be valid for reads.
#[inline(always)]
pub unsafe fn rb_parent(node: *const RbNode) -> *mut RbNode {
    // SAFETY: the caller guarantees `node` is readable.
    __rb_parent(unsafe { (*node).__rb_parent_color })
}

/// `rb_color`: returns [`RB_RED`] or [`RB_BLACK`].
///
/// # Safety
/// `node` must be valid for reads.
#[inline(always)]
pub unsafe fn rb_color(node: *const RbNode) -> usize {
    // SAFETY: the caller guarantees `node` is readable.
    unsafe { (*node).__rb_parent_color & 1 }
}

/// `rb_is_red`.
///
/// # Safety
/// `node` must be valid for reads.
#[inline(always)]
pub unsafe fn rb_is_red(node: *const RbNode) -> bool {
    // SAFETY: forwarded.
    unsafe { rb_color(node) == RB_RED }
}

/// `rb_is_black`.
///
/// # Safety
/// `node` must be valid for reads.
#[inline(always)]
pub unsafe fn rb_is_black(node: *const RbNode) -> bool {
    // SAFETY: forwarded.
    unsafe { rb_color(node) == RB_BLACK }
}

/// # Safety
/// `node` must be valid for reads and writes, and no other thread may access it during the call.
#[inline(always)]
unsafe fn rb_set_parent(node: *mut RbNode, parent: *mut RbNode) {
    // SAFETY: the caller guarantees `node` is writable.
    unsafe { (*node).__rb_parent_color = rb_color(node) | parent as usize }
}

/// # Safety
/// `node` must be valid for writes, and no other thread may access it during the call.
#[inline(always)]
unsafe fn rb_set_parent_color(node: *mut RbNode, parent: *mut RbNode, color: usize) {
    // SAFETY: the caller guarantees `node` is writable.
    unsafe { (*node).__rb_parent_color = parent as usize | color }
}

/// # Safety
/// `node` must be valid for reads and writes, and no other thread may access it during the call.
#[inline(always)]
unsafe fn rb_set_black(node: *mut RbNode) {
    // SAFETY: the caller guarantees `node` is writable.
    unsafe { (*node).__rb_parent_color |= RB_BLACK }
}

/// `RB_EMPTY_NODE`: returns true if `node` was cleared with [`rb_clear_node`] (not in a tree).
///
/// # Safety
/// `node` must be valid for reads.
#[inline]
pub unsafe fn rb_empty_node(node: *const RbNode) -> bool {
    // SAFETY: the caller guarantees `node` is readable.
    unsafe { (*node).__rb_parent_color == node as usize }
}

/// `RB_CLEAR_NODE`: marks `node` as not in any tree (its parent is itself).
///
/// # Safety
/// `node` must be valid for writes and not linked in a tree.
#[inline]
pub unsafe fn rb_clear_node(node: *mut RbNode) {
    // SAFETY: the caller guarantees `node` is writable.
    unsafe { (*node).__rb_parent_color = node as usize }
}

/// `rb_link_node`: attaches `node` as a red leaf under `parent` at `*rb_link` (the empty child
/// slot found by the caller's walk; `&mut root.rb_node` with a null parent for an empty tree).
///
/// Follow with [`rb_insert_color`] (or an augmented or cached variant) to rebalance.
///
/// # Safety
/// `node` must be valid, unlinked and stay at its address while linked; `rb_link` must be the
/// null child slot of `parent` (or the root slot when `parent` is null) of a valid tree.
#[inline]
pub unsafe fn rb_link_node(node: *mut RbNode, parent: *mut RbNode, rb_link: *mut *mut RbNode) {
    // SAFETY: the caller guarantees both pointers are valid for writes.
    unsafe {
        (*node).__rb_parent_color = parent as usize;
        (*node).rb_left = ptr::null_mut();
        (*node).rb_right = ptr::null_mut();
        *rb_link = node;
    }
}

/// # Safety
/// `root` must be valid for writes, and `parent`, unless null, a valid node of `root` of which
/// `old` is a child; the caller has exclusive access to the tree.
#[inline(always)]
unsafe fn __rb_change_child(
    old: *mut RbNode,
    new: *mut RbNode,
    parent: *mut RbNode,
    root: *mut RbRoot,
) {
    // SAFETY: the caller guarantees `parent` (if not null) and `root` are valid.
    unsafe {
        if !parent.is_null() {
            if (*parent).rb_left == old {
                (*parent).rb_left = new;
            } else {
                (*parent).rb_right = new;
            }
        } else {
            (*root).rb_node = new;
        }
    }
}

/// Helper for rotations: `new` takes `old`'s parent and colour, `old` becomes `new`'s child
/// with `color`.
///
/// # Safety
/// `old` and `new` must be valid nodes of the tree `root` (valid for writes), `new` a child of
/// `old`, and the caller must have exclusive access to the tree.
#[inline(always)]
unsafe fn __rb_rotate_set_parents(
    old: *mut RbNode,
    new: *mut RbNode,
    root: *mut RbRoot,
    color: usize,
) {
    // SAFETY: the caller guarantees all nodes are valid members of `root`.
    unsafe {
        let parent = rb_parent(old);
        (*new).__rb_parent_color = (*old).__rb_parent_color;
        rb_set_parent_color(old, new, color);
        __rb_change_child(old, new, parent, root);
    }
}

/// Insertion rebalancing (lib/rbtree.c `__rb_insert`), generic over the augment rotation.
///
/// # Safety
/// `node` must have just been linked (red, by `rb_link_node`) into the valid tree `root`, every
/// node of which is valid for reads and writes, and the caller must have exclusive access to the
/// tree.
#[inline(always)]
unsafe fn __rb_insert<A: augmented::RbAugmentCallbacks>(mut node: *mut RbNode, root: *mut RbRoot) {
    // SAFETY: the caller guarantees `node` was just linked into the valid tree `root`; every
    // pointer followed below is a node of that tree (or checked for null first).
    unsafe {
        // `node` is red, so its parent/colour word is its parent pointer.
        let mut parent = __rb_parent((*node).__rb_parent_color);
        loop {
            if parent.is_null() {
                // The inserted node is the root: the root must be black.
                rb_set_parent_color(node, ptr::null_mut(), RB_BLACK);
                break;
            }
            if rb_is_black(parent) {
                break;
            }
            // Parent is red, so it is not the root and the grandparent exists (and is black).
            let gparent = __rb_parent((*parent).__rb_parent_color);
            let mut tmp = (*gparent).rb_right;
            if parent != tmp {
                // parent == gparent->rb_left
                if !tmp.is_null() && rb_is_red(tmp) {
                    // Case 1: red uncle, flip colours and continue from the grandparent.
                    rb_set_parent_color(tmp, gparent, RB_BLACK);
                    rb_set_parent_color(parent, gparent, RB_BLACK);
                    node = gparent;
                    parent = rb_parent(node);
                    rb_set_parent_color(node, parent, RB_RED);
                    continue;
                }
                tmp = (*parent).rb_right;
                if node == tmp {
                    // Case 2: node is the right child; left-rotate at parent.
                    tmp = (*node).rb_left;
                    (*parent).rb_right = tmp;
                    (*node).rb_left = parent;
                    if !tmp.is_null() {
                        rb_set_parent_color(tmp, parent, RB_BLACK);
                    }
                    rb_set_parent_color(parent, node, RB_RED);
                    A::rotate(parent, node);
                    parent = node;
                    tmp = (*node).rb_right;
                }
                // Case 3: right-rotate at grandparent.
                (*gparent).rb_left = tmp;
                (*parent).rb_right = gparent;
                if !tmp.is_null() {
                    rb_set_parent_color(tmp, gparent, RB_BLACK);
                }
                __rb_rotate_set_parents(gparent, parent, root, RB_RED);
                A::rotate(gparent, parent);
                break;
            } else {
                tmp = (*gparent).rb_left;
                if !tmp.is_null() && rb_is_red(tmp) {
                    // Case 1 (mirror).
                    rb_set_parent_color(tmp, gparent, RB_BLACK);
                    rb_set_parent_color(parent, gparent, RB_BLACK);
                    node = gparent;
                    parent = rb_parent(node);
                    rb_set_parent_color(node, parent, RB_RED);
                    continue;
                }
                tmp = (*parent).rb_left;
                if node == tmp {
                    // Case 2 (mirror): right-rotate at parent.
                    tmp = (*node).rb_right;
                    (*parent).rb_left = tmp;
                    (*node).rb_right = parent;
                    if !tmp.is_null() {
                        rb_set_parent_color(tmp, parent, RB_BLACK);
                    }
                    rb_set_parent_color(parent, node, RB_RED);
                    A::rotate(parent, node);
                    parent = node;
                    tmp = (*node).rb_left;
                }
                // Case 3 (mirror): left-rotate at grandparent.
                (*gparent).rb_right = tmp;
                (*parent).rb_left = gparent;
                if !tmp.is_null() {
                    rb_set_parent_color(tmp, gparent, RB_BLACK);
                }
                __rb_rotate_set_parents(gparent, parent, root, RB_RED);
                A::rotate(gparent, parent);
                break;
            }
        }
    }
}

/// Erase rebalancing (lib/rbtree.c `____rb_erase_color`): `parent` lost a black descendant on
/// the side where its child is null or `node`.
///
/// # Safety
/// `parent` must be a node of the valid tree `root` whose black height is one short on the side of
/// its null (or just-erased) child; every node of the tree must be valid for reads and writes, and
/// the caller must have exclusive access to it.
#[inline(always)]
unsafe fn __rb_erase_color<A: augmented::RbAugmentCallbacks>(
    mut parent: *mut RbNode,
    root: *mut RbRoot,
) {
    // SAFETY: the caller guarantees `parent` is a node of the valid tree `root` whose black
    // height is one short on one side; black-height invariants guarantee the non-null siblings
    // dereferenced below.
    unsafe {
        let mut node: *mut RbNode = ptr::null_mut();
        loop {
            let mut sibling = (*parent).rb_right;
            if node != sibling {
                // node is the left child (possibly null).
                if rb_is_red(sibling) {
                    // Case 1: left-rotate at parent.
                    let tmp1 = (*sibling).rb_left;
                    (*parent).rb_right = tmp1;
                    (*sibling).rb_left = parent;
                    rb_set_parent_color(tmp1, parent, RB_BLACK);
                    __rb_rotate_set_parents(parent, sibling, root, RB_RED);
                    A::rotate(parent, sibling);
                    sibling = tmp1;
                }
                let mut tmp1 = (*sibling).rb_right;
                if tmp1.is_null() || rb_is_black(tmp1) {
                    let tmp2 = (*sibling).rb_left;
                    if tmp2.is_null() || rb_is_black(tmp2) {
                        // Case 2: sibling colour flip.
                        rb_set_parent_color(sibling, parent, RB_RED);
                        if rb_is_red(parent) {
                            rb_set_black(parent);
                        } else {
                            node = parent;
                            parent = rb_parent(node);
                            if !parent.is_null() {
                                continue;
                            }
                        }
                        break;
                    }
                    // Case 3: right-rotate at sibling.
                    tmp1 = (*tmp2).rb_right;
                    (*sibling).rb_left = tmp1;
                    (*tmp2).rb_right = sibling;
                    (*parent).rb_right = tmp2;
                    if !tmp1.is_null() {
                        rb_set_parent_color(tmp1, sibling, RB_BLACK);
                    }
                    A::rotate(sibling, tmp2);
                    tmp1 = sibling;
                    sibling = tmp2;
                }
                // Case 4: left-rotate at parent and colour flips.
                let tmp2 = (*sibling).rb_left;
                (*parent).rb_right = tmp2;
                (*sibling).rb_left = parent;
                rb_set_parent_color(tmp1, sibling, RB_BLACK);
                if !tmp2.is_null() {
                    rb_set_parent(tmp2, parent);
                }
                __rb_rotate_set_parents(parent, sibling, root, RB_BLACK);
                A::rotate(parent, sibling);
                break;
            } else {
                sibling = (*parent).rb_left;
                if rb_is_red(sibling) {
                    // Case 1 (mirror): right-rotate at parent.
                    let tmp1 = (*sibling).rb_right;
                    (*parent).rb_left = tmp1;
                    (*sibling).rb_right = parent;
                    rb_set_parent_color(tmp1, parent, RB_BLACK);
                    __rb_rotate_set_parents(parent, sibling, root, RB_RED);
                    A::rotate(parent, sibling);
                    sibling = tmp1;
                }
                let mut tmp1 = (*sibling).rb_left;
                if tmp1.is_null() || rb_is_black(tmp1) {
                    let tmp2 = (*sibling).rb_right;
                    if tmp2.is_null() || rb_is_black(tmp2) {
                        // Case 2 (mirror).
                        rb_set_parent_color(sibling, parent, RB_RED);
                        if rb_is_red(parent) {
                            rb_set_black(parent);
                        } else {
                            node = parent;
                            parent = rb_parent(node);
                            if !parent.is_null() {
                                continue;
                            }
                        }
                        break;
                    }
                    // Case 3 (mirror): left-rotate at sibling.
                    tmp1 = (*tmp2).rb_left;
                    (*sibling).rb_right = tmp1;
                    (*tmp2).rb_left = sibling;
                    (*parent).rb_left = tmp2;
                    if !tmp1.is_null() {
                        rb_set_parent_color(tmp1, sibling, RB_BLACK);
                    }
                    A::rotate(sibling, tmp2);
                    tmp1 = sibling;
                    sibling = tmp2;
                }
                // Case 4 (mirror): right-rotate at parent and colour flips.
                let tmp2 = (*sibling).rb_right;
                (*parent).rb_left = tmp2;
                (*sibling).rb_right = parent;
                rb_set_parent_color(tmp1, sibling, RB_BLACK);
                if !tmp2.is_null() {
                    rb_set_parent(tmp2, parent);
                }
                __rb_rotate_set_parents(parent, sibling, root, RB_BLACK);
                A::rotate(parent, sibling);
                break;
            }
        }
    }
}

/// Unlinks `node` (include/linux/rbtree_augmented.h `__rb_erase_augmented`); returns the node
/// from which colour rebalancing must start, or null.
///
/// # Safety
/// `node` must be a member of the valid tree `root`, every node of which is valid for reads and
/// writes, and the caller must have exclusive access to the tree; `node` leaves it.
#[inline(always)]
unsafe fn __rb_erase_augmented<A: augmented::RbAugmentCallbacks>(
    node: *mut RbNode,
    root: *mut RbRoot,
) -> *mut RbNode {
    // SAFETY: the caller guarantees `node` is a member of the valid tree `root`.
    unsafe {
        let child = (*node).rb_right;
        let mut tmp = (*node).rb_left;
        let rebalance;
        if tmp.is_null() {
            // At most one (right) child: splice it in.
            let pc = (*node).__rb_parent_color;
            let parent = __rb_parent(pc);
            __rb_change_child(node, child, parent, root);
            if !child.is_null() {
                // A lone child of a node is red, and the node black: the child takes its place
                // and colour.
                (*child).__rb_parent_color = pc;
                rebalance = ptr::null_mut();
            } else {
                rebalance = if __rb_is_black(pc) {
                    parent
                } else {
                    ptr::null_mut()
                };
            }
            tmp = parent;
        } else if child.is_null() {
            // Only a left child (red, the node black).
            let pc = (*node).__rb_parent_color;
            (*tmp).__rb_parent_color = pc;
            let parent = __rb_parent(pc);
            __rb_change_child(node, tmp, parent, root);
            rebalance = ptr::null_mut();
            tmp = parent;
        } else {
            // Two children: the successor (leftmost of the right subtree) takes node's place.
            let mut successor = child;
            let mut parent;
            let child2;
            tmp = (*child).rb_left;
            if tmp.is_null() {
                // The successor is node's right child.
                parent = successor;
                child2 = (*successor).rb_right;
                A::copy(node, successor);
            } else {
                loop {
                    parent = successor;
                    successor = tmp;
                    tmp = (*tmp).rb_left;
                    if tmp.is_null() {
                        break;
                    }
                }
                child2 = (*successor).rb_right;
                (*parent).rb_left = child2;
                (*successor).rb_right = child;
                rb_set_parent(child, successor);
                A::copy(node, successor);
                A::propagate(parent, successor);
            }
            tmp = (*node).rb_left;
            (*successor).rb_left = tmp;
            rb_set_parent(tmp, successor);
            let pc = (*node).__rb_parent_color;
            tmp = __rb_parent(pc);
            __rb_change_child(node, successor, tmp, root);
            if !child2.is_null() {
                rb_set_parent_color(child2, parent, RB_BLACK);
                rebalance = ptr::null_mut();
            } else {
                rebalance = if rb_is_black(successor) {
                    parent
                } else {
                    ptr::null_mut()
                };
            }
            (*successor).__rb_parent_color = pc;
            tmp = successor;
        }
        A::propagate(tmp, ptr::null_mut());
        rebalance
    }
}

/// `rb_insert_color`: rebalances after [`rb_link_node`].
///
/// # Safety
/// `node` must have just been linked with [`rb_link_node`] into the valid tree `root`, and the
/// caller must have exclusive access to the tree.
#[inline]
pub unsafe fn rb_insert_color(node: *mut RbNode, root: *mut RbRoot) {
    // SAFETY: forwarded from the caller.
    unsafe { __rb_insert::<augmented::NoAugment>(node, root) }
}

/// `rb_erase`: removes `node` from the tree and rebalances. The node is left with stale
/// pointers; use [`rb_clear_node`] if [`rb_empty_node`] must report it unlinked.
///
/// # Safety
/// `node` must be a member of the valid tree `root`; exclusive access to the tree.
#[inline]
pub unsafe fn rb_erase(node: *mut RbNode, root: *mut RbRoot) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let rebalance = __rb_erase_augmented::<augmented::NoAugment>(node, root);
        if !rebalance.is_null() {
            __rb_erase_color::<augmented::NoAugment>(rebalance, root);
        }
    }
}

/// `rb_insert_color_cached`: [`rb_insert_color`] that also updates the leftmost cache;
/// `leftmost` says whether the caller's walk only went left.
///
/// # Safety
/// As [`rb_insert_color`].
#[inline]
pub unsafe fn rb_insert_color_cached(node: *mut RbNode, root: *mut RbRootCached, leftmost: bool) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if leftmost {
            (*root).rb_leftmost = node;
        }
        rb_insert_color(node, &mut (*root).rb_root);
    }
}

/// `rb_erase_cached`: [`rb_erase`] that updates the leftmost cache; returns the new leftmost
/// node if `node` was the leftmost, else null.
///
/// # Safety
/// As [`rb_erase`].
#[inline]
pub unsafe fn rb_erase_cached(node: *mut RbNode, root: *mut RbRootCached) -> *mut RbNode {
    // SAFETY: forwarded from the caller.
    unsafe {
        let mut leftmost = ptr::null_mut();
        if (*root).rb_leftmost == node {
            leftmost = rb_next(node);
            (*root).rb_leftmost = leftmost;
        }
        rb_erase(node, &mut (*root).rb_root);
        leftmost
    }
}

/// `rb_first`: returns the leftmost (first in order) node, or null.
///
/// # Safety
/// `root` must be a valid tree.
pub unsafe fn rb_first(root: *const RbRoot) -> *mut RbNode {
    // SAFETY: the caller guarantees a valid tree.
    unsafe {
        let mut n = (*root).rb_node;
        if n.is_null() {
            return n;
        }
        while !(*n).rb_left.is_null() {
            n = (*n).rb_left;
        }
        n
    }
}

/// `rb_last`: returns the rightmost (last in order) node, or null.
///
/// # Safety
/// `root` must be a valid tree.
pub unsafe fn rb_last(root: *const RbRoot) -> *mut RbNode {
    // SAFETY: the caller guarantees a valid tree.
    unsafe {
        let mut n = (*root).rb_node;
        if n.is_null() {
            return n;
        }
        while !(*n).rb_right.is_null() {
            n = (*n).rb_right;
        }
        n
    }
}

/// `rb_first_cached`: returns the cached leftmost node in O(1).
///
/// # Safety
/// `root` must be valid for reads.
#[inline]
pub unsafe fn rb_first_cached(root: *const RbRootCached) -> *mut RbNode {
    // SAFETY: the caller guarantees `root` is readable.
    unsafe { (*root).rb_leftmost }
}

/// `rb_next`: returns the in-order successor of `node`, or null.
///
/// # Safety
/// `node` must be a member of a valid tree (or cleared with [`rb_clear_node`]).
#[inline]
pub unsafe fn rb_next(node: *const RbNode) -> *mut RbNode {
    // SAFETY: the caller guarantees `node` is in a valid tree.
    unsafe {
        if rb_empty_node(node) {
            return ptr::null_mut();
        }
        let mut node = node as *mut RbNode;
        if !(*node).rb_right.is_null() {
            node = (*node).rb_right;
            while !(*node).rb_left.is_null() {
                node = (*node).rb_left;
            }
            return node;
        }
        loop {
            let parent = rb_parent(node);
            if parent.is_null() || node != (*parent).rb_right {
                return parent;
            }
            node = parent;
        }
    }
}

/// `rb_prev`: returns the in-order predecessor of `node`, or null.
///
/// # Safety
/// As [`rb_next`].
#[inline]
pub unsafe fn rb_prev(node: *const RbNode) -> *mut RbNode {
    // SAFETY: the caller guarantees `node` is in a valid tree.
    unsafe {
        if rb_empty_node(node) {
            return ptr::null_mut();
        }
        let mut node = node as *mut RbNode;
        if !(*node).rb_left.is_null() {
            node = (*node).rb_left;
            while !(*node).rb_right.is_null() {
                node = (*node).rb_right;
            }
            return node;
        }
        loop {
            let parent = rb_parent(node);
            if parent.is_null() || node != (*parent).rb_left {
                return parent;
            }
            node = parent;
        }
    }
}

/// `rb_replace_node`: puts `new` in `victim`'s place without rebalancing; the caller
/// guarantees `new` sorts at the same position.
///
/// # Safety
/// `victim` must be in the valid tree `root`; `new` must be valid, unlinked, and not move.
pub unsafe fn rb_replace_node(victim: *mut RbNode, new: *mut RbNode, root: *mut RbRoot) {
    // SAFETY: the caller guarantees validity of all three.
    unsafe {
        let parent = rb_parent(victim);
        (*new).__rb_parent_color = (*victim).__rb_parent_color;
        (*new).rb_left = (*victim).rb_left;
        (*new).rb_right = (*victim).rb_right;
        if !(*victim).rb_left.is_null() {
            rb_set_parent((*victim).rb_left, new);
        }
        if !(*victim).rb_right.is_null() {
            rb_set_parent((*victim).rb_right, new);
        }
        __rb_change_child(victim, new, parent, root);
    }
}

/// `rb_replace_node_cached`: [`rb_replace_node`] that keeps the leftmost cache right.
///
/// # Safety
/// As [`rb_replace_node`].
pub unsafe fn rb_replace_node_cached(
    victim: *mut RbNode,
    new: *mut RbNode,
    root: *mut RbRootCached,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if (*root).rb_leftmost == victim {
            (*root).rb_leftmost = new;
        }
        rb_replace_node(victim, new, &mut (*root).rb_root);
    }
}

/// # Safety
/// `node` must be a valid node of a tree whose every node is valid for reads and not written during
/// the call.
unsafe fn rb_left_deepest_node(mut node: *mut RbNode) -> *mut RbNode {
    // SAFETY: the caller guarantees `node` is a valid tree node.
    unsafe {
        loop {
            if !(*node).rb_left.is_null() {
                node = (*node).rb_left;
            } else if !(*node).rb_right.is_null() {
                node = (*node).rb_right;
            } else {
                return node;
            }
        }
    }
}

/// `rb_first_postorder`: returns the first node of a post-order walk (children before parents),
/// or null. A post-order walk may free each node after visiting it.
///
/// # Safety
/// `root` must be a valid tree.
pub unsafe fn rb_first_postorder(root: *const RbRoot) -> *mut RbNode {
    // SAFETY: the caller guarantees a valid tree.
    unsafe {
        if (*root).rb_node.is_null() {
            return ptr::null_mut();
        }
        rb_left_deepest_node((*root).rb_node)
    }
}

/// `rb_next_postorder`: returns the next node of a post-order walk, or null. Only reads
/// `node`'s parent pointer and the parent's children, so the caller may free `node` after
/// this returns.
///
/// # Safety
/// `node` must be valid (not yet freed) and its ancestors not yet visited.
pub unsafe fn rb_next_postorder(node: *const RbNode) -> *mut RbNode {
    // SAFETY: the caller guarantees `node` and its ancestors are valid.
    unsafe {
        if node.is_null() {
            return ptr::null_mut();
        }
        let parent = rb_parent(node);
        if !parent.is_null() && ptr::eq(node, (*parent).rb_left) && !(*parent).rb_right.is_null() {
            rb_left_deepest_node((*parent).rb_right)
        } else {
            parent
        }
    }
}

/// `rb_add`: inserts `node` into `root`, placing it after equal nodes; `less(a, b)` orders nodes.
///
/// # Safety
/// As [`rb_link_node`] and [`rb_insert_color`]; `less` gets valid node pointers.
pub unsafe fn rb_add(
    node: *mut RbNode,
    root: *mut RbRoot,
    mut less: impl FnMut(*const RbNode, *const RbNode) -> bool,
) {
    // SAFETY: the caller guarantees a valid tree and an unlinked node.
    unsafe {
        let mut link: *mut *mut RbNode = &mut (*root).rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            link = if less(node, parent) {
                &mut (*parent).rb_left
            } else {
                &mut (*parent).rb_right
            };
        }
        rb_link_node(node, parent, link);
        rb_insert_color(node, root);
    }
}

/// `rb_add_cached`: [`rb_add`] on a cached root; returns true if `node` became the leftmost.
///
/// # Safety
/// As [`rb_add`].
pub unsafe fn rb_add_cached(
    node: *mut RbNode,
    root: *mut RbRootCached,
    mut less: impl FnMut(*const RbNode, *const RbNode) -> bool,
) -> bool {
    // SAFETY: the caller guarantees a valid tree and an unlinked node.
    unsafe {
        let mut link: *mut *mut RbNode = &mut (*root).rb_root.rb_node;
        let mut parent = ptr::null_mut();
        let mut leftmost = true;
        while !(*link).is_null() {
            parent = *link;
            if less(node, parent) {
                link = &mut (*parent).rb_left;
            } else {
                link = &mut (*parent).rb_right;
                leftmost = false;
            }
        }
        rb_link_node(node, parent, link);
        rb_insert_color_cached(node, root, leftmost);
        leftmost
    }
}

/// `rb_find_add`: inserts `node` unless a node comparing equal exists; returns that node, or
/// null if `node` was inserted. `cmp(a, b)` compares `a` (the new node) with `b`.
///
/// # Safety
/// As [`rb_add`].
pub unsafe fn rb_find_add(
    node: *mut RbNode,
    root: *mut RbRoot,
    mut cmp: impl FnMut(*const RbNode, *const RbNode) -> Ordering,
) -> *mut RbNode {
    // SAFETY: the caller guarantees a valid tree and an unlinked node.
    unsafe {
        let mut link: *mut *mut RbNode = &mut (*root).rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            match cmp(node, parent) {
                Ordering::Less => link = &mut (*parent).rb_left,
                Ordering::Greater => link = &mut (*parent).rb_right,
                Ordering::Equal => return parent,
            }
        }
        rb_link_node(node, parent, link);
        rb_insert_color(node, root);
        ptr::null_mut()
    }
}

/// `rb_find`: returns a node for which `cmp(node)` is `Equal`, or null. `cmp` tells how the
/// searched key compares with the given node (`Less`: the key is smaller, go left).
///
/// # Safety
/// `root` must be a valid tree.
pub unsafe fn rb_find(
    root: *const RbRoot,
    mut cmp: impl FnMut(*const RbNode) -> Ordering,
) -> *mut RbNode {
    // SAFETY: the caller guarantees a valid tree.
    unsafe {
        let mut node = (*root).rb_node;
        while !node.is_null() {
            match cmp(node) {
                Ordering::Less => node = (*node).rb_left,
                Ordering::Greater => node = (*node).rb_right,
                Ordering::Equal => return node,
            }
        }
        node
    }
}

/// `rb_find_first`: returns the leftmost node for which `cmp(node)` is `Equal`, or null.
///
/// # Safety
/// `root` must be a valid tree.
pub unsafe fn rb_find_first(
    root: *const RbRoot,
    mut cmp: impl FnMut(*const RbNode) -> Ordering,
) -> *mut RbNode {
    // SAFETY: the caller guarantees a valid tree.
    unsafe {
        let mut node = (*root).rb_node;
        let mut found = ptr::null_mut();
        while !node.is_null() {
            match cmp(node) {
                Ordering::Less => node = (*node).rb_left,
                Ordering::Greater => node = (*node).rb_right,
                Ordering::Equal => {
                    found = node;
                    node = (*node).rb_left;
                }
            }
        }
        found
    }
}
