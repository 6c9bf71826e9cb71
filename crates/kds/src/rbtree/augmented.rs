//! Augmented red-black trees (`<linux/rbtree_augmented.h>`).
//!
//! Each node carries a value computed from its subtree (e.g. the maximum free size below it,
//! which vmalloc's free-area search uses to skip subtrees that cannot fit). The tree keeps the
//! values right through three callbacks, as in Linux's `struct rb_augment_callbacks`:
//! - `propagate(node, stop)`: recompute from `node` up to (excluding) `stop`;
//! - `copy(old, new)`: `new` takes `old`'s place, copy the value;
//! - `rotate(old, new)`: `new` becomes `old`'s parent by a rotation: `new` takes `old`'s old
//!   value (same subtree) and `old` is recomputed.
//!
//! Insertion is the caller's walk (updating the values along the path for the new node, as
//! Linux callers do), [`rb_link_node`](super::rb_link_node), then [`rb_insert_augmented`].
//! Erasure is [`rb_erase_augmented`]. [`rb_declare_callbacks_max!`](crate::rb_declare_callbacks_max)
//! generates the callbacks for the common "subtree maximum" case (`RB_DECLARE_CALLBACKS_MAX`),
//! [`rb_declare_callbacks!`](crate::rb_declare_callbacks) for a custom compute function
//! (`RB_DECLARE_CALLBACKS`).

use super::{RbNode, RbRoot, RbRootCached};

/// The callbacks that keep augmented values right (`struct rb_augment_callbacks`).
///
/// Implemented on a (usually zero-sized) type; the functions are static so calls inline.
pub trait RbAugmentCallbacks {
    /// Recomputes the augmented value of `node` and its ancestors, stopping at `stop` (which is
    /// not updated) or at the root; may stop early once a value is unchanged.
    ///
    /// # Safety
    /// `node` (if not null) and its ancestors up to `stop` are valid nodes of one tree.
    unsafe fn propagate(node: *mut RbNode, stop: *mut RbNode);
    /// Copies the augmented value of `old` to `new`.
    ///
    /// # Safety
    /// Both are valid nodes embedded in the augmented structure.
    unsafe fn copy(old: *mut RbNode, new: *mut RbNode);
    /// After a rotation made `new` the parent of `old`: `new` gets `old`'s previous value and
    /// `old` is recomputed from its new children.
    ///
    /// # Safety
    /// Both are valid nodes of one tree.
    unsafe fn rotate(old: *mut RbNode, new: *mut RbNode);
}

/// The callbacks of a plain (non-augmented) tree: all no-ops (`dummy_callbacks` in lib/rbtree.c).
#[derive(Debug, Clone, Copy)]
pub struct NoAugment;

impl RbAugmentCallbacks for NoAugment {
    #[inline(always)]
    unsafe fn propagate(_node: *mut RbNode, _stop: *mut RbNode) {}
    #[inline(always)]
    unsafe fn copy(_old: *mut RbNode, _new: *mut RbNode) {}
    #[inline(always)]
    unsafe fn rotate(_old: *mut RbNode, _new: *mut RbNode) {}
}

/// `rb_insert_augmented`: rebalances after [`rb_link_node`](super::rb_link_node), keeping the
/// augmented values right. The caller has already updated the values on the path to the new
/// node (and set the new node's own value).
///
/// # Safety
/// As [`rb_insert_color`](super::rb_insert_color); `A`'s callbacks must match the node type.
pub unsafe fn rb_insert_augmented<A: RbAugmentCallbacks>(node: *mut RbNode, root: *mut RbRoot) {
    // SAFETY: forwarded from the caller.
    unsafe { super::__rb_insert::<A>(node, root) }
}

/// `rb_insert_augmented_cached`: [`rb_insert_augmented`] on a cached root.
///
/// # Safety
/// As [`rb_insert_augmented`].
pub unsafe fn rb_insert_augmented_cached<A: RbAugmentCallbacks>(
    node: *mut RbNode,
    root: *mut RbRootCached,
    newleft: bool,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if newleft {
            (*root).rb_leftmost = node;
        }
        rb_insert_augmented::<A>(node, &mut (*root).rb_root);
    }
}

/// `rb_erase_augmented`: removes `node`, keeping the augmented values right.
///
/// # Safety
/// As [`rb_erase`](super::rb_erase); `A`'s callbacks must match the node type.
pub unsafe fn rb_erase_augmented<A: RbAugmentCallbacks>(node: *mut RbNode, root: *mut RbRoot) {
    // SAFETY: forwarded from the caller.
    unsafe {
        let rebalance = super::__rb_erase_augmented::<A>(node, root);
        if !rebalance.is_null() {
            super::__rb_erase_color::<A>(rebalance, root);
        }
    }
}

/// `rb_erase_augmented_cached`: [`rb_erase_augmented`] on a cached root.
///
/// # Safety
/// As [`rb_erase_augmented`].
pub unsafe fn rb_erase_augmented_cached<A: RbAugmentCallbacks>(
    node: *mut RbNode,
    root: *mut RbRootCached,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if (*root).rb_leftmost == node {
            (*root).rb_leftmost = super::rb_next(node);
        }
        rb_erase_augmented::<A>(node, &mut (*root).rb_root);
    }
}

/// `RB_DECLARE_CALLBACKS`: declares a callbacks type from a compute function.
///
/// `$compute(node: *mut $ty, exit: bool) -> bool` recomputes `node`'s augmented field from its
/// children and stores it; with `exit` it returns true (and may skip the store) if the value
/// did not change, which stops propagation early.
///
/// ```ignore
/// kds::rb_declare_callbacks!(pub MyCallbacks, MyNode, rb, augmented, my_compute);
/// ```
#[macro_export]
macro_rules! rb_declare_callbacks {
    ($vis:vis $name:ident, $ty:ty, $rbfield:ident, $augfield:ident, $compute:path) => {
        /// Augmented rbtree callbacks (generated by `rb_declare_callbacks!`).
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        $crate::__rb_callbacks_impl!($name, $ty, $rbfield, $augfield, $compute);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __rb_callbacks_impl {
    ($name:ident, $ty:ty, $rbfield:ident, $augfield:ident, $compute:path) => {
        impl $crate::rbtree::augmented::RbAugmentCallbacks for $name {
            #[inline]
            unsafe fn propagate(
                mut rb: *mut $crate::rbtree::RbNode,
                stop: *mut $crate::rbtree::RbNode,
            ) {
                while rb != stop {
                    let node = $crate::container_of!(rb, $ty, $rbfield);
                    // SAFETY: the caller guarantees `rb` is embedded in a valid `$ty`.
                    if unsafe { $compute(node, true) } {
                        break;
                    }
                    // SAFETY: `rb` is embedded in a valid `$ty` (caller's guarantee) and linked in
                    // a tree, so its parent pointer is null or a valid node.
                    rb = unsafe { $crate::rbtree::rb_parent(rb) };
                }
            }
            #[inline]
            unsafe fn copy(old: *mut $crate::rbtree::RbNode, new: *mut $crate::rbtree::RbNode) {
                let old = $crate::container_of!(old, $ty, $rbfield);
                let new = $crate::container_of!(new, $ty, $rbfield);
                // SAFETY: the caller guarantees both are embedded in valid `$ty`s.
                unsafe { (*new).$augfield = (*old).$augfield };
            }
            #[inline]
            unsafe fn rotate(old: *mut $crate::rbtree::RbNode, new: *mut $crate::rbtree::RbNode) {
                let old = $crate::container_of!(old, $ty, $rbfield);
                let new = $crate::container_of!(new, $ty, $rbfield);
                // SAFETY: the caller guarantees both are embedded in valid `$ty`s.
                unsafe {
                    (*new).$augfield = (*old).$augfield;
                    $compute(old, false);
                }
            }
        }
    };
}

/// `RB_DECLARE_CALLBACKS_MAX`: declares callbacks keeping `$augfield` = the maximum of
/// `$compute(&node)` over the node's subtree.
///
/// `$compute` is a `fn(&$ty) -> $valty` giving the node's own value; `$valty: Ord + Copy`.
/// Also generates `$name::compute_max(node: *mut $ty, exit: bool) -> bool`
/// (`RBNAME ## _compute_max`) for callers that update values while walking down.
///
/// # Examples
/// ```
/// use kds::rbtree::{RbNode, RbRoot, rb_link_node, augmented::rb_insert_augmented};
/// #[repr(C)]
/// struct Area { rb: RbNode, start: u64, size: u64, subtree_max_size: u64 }
/// fn area_size(a: &Area) -> u64 { a.size }
/// kds::rb_declare_callbacks_max!(AreaCb, Area, rb, u64, subtree_max_size, area_size);
///
/// let mut root = RbRoot::new();
/// let mut a = Area { rb: RbNode::new(), start: 0, size: 4096, subtree_max_size: 4096 };
/// // SAFETY: `a` outlives the tree use and does not move.
/// unsafe {
///     rb_link_node(&mut a.rb, core::ptr::null_mut(), &mut root.rb_node);
///     rb_insert_augmented::<AreaCb>(&mut a.rb, &mut root);
/// }
/// assert_eq!(a.subtree_max_size, 4096);
/// ```
#[macro_export]
macro_rules! rb_declare_callbacks_max {
    ($vis:vis $name:ident, $ty:ty, $rbfield:ident, $valty:ty, $augfield:ident, $compute:path) => {
        /// Subtree-maximum rbtree callbacks (generated by `rb_declare_callbacks_max!`).
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $name {
            /// Recomputes `node`'s subtree maximum; with `exit`, returns true (without storing)
            /// if it is unchanged.
            ///
            /// # Safety
            /// `node` and its children must be valid.
            #[inline]
            #[allow(dead_code)]
            $vis unsafe fn compute_max(node: *mut $ty, exit: bool) -> bool {
                // SAFETY: the caller guarantees `node` and its children are valid `$ty`s.
                unsafe {
                    let mut max: $valty = $compute(&*node);
                    let left = (*node).$rbfield.rb_left;
                    if !left.is_null() {
                        let child = $crate::container_of!(left, $ty, $rbfield);
                        if (*child).$augfield > max {
                            max = (*child).$augfield;
                        }
                    }
                    let right = (*node).$rbfield.rb_right;
                    if !right.is_null() {
                        let child = $crate::container_of!(right, $ty, $rbfield);
                        if (*child).$augfield > max {
                            max = (*child).$augfield;
                        }
                    }
                    if exit && (*node).$augfield == max {
                        return true;
                    }
                    (*node).$augfield = max;
                    false
                }
            }
        }

        $crate::__rb_callbacks_impl!($name, $ty, $rbfield, $augfield, $name::compute_max);
    };
}
