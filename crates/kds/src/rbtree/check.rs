//! The invariant checker of lib/rbtree_test.c (`check()` and `check_augmented()`).
//!
//! [`rb_check`] walks a tree and verifies, for every node: its children point back at it, no
//! red node has a red parent and the root is black, every node with an empty child slot has
//! the same number of black nodes on its path to the root, consecutive nodes are in order,
//! the node count is at least `2^black_height - 1`, and the post-order walk visits the same
//! number of nodes. Tests run it after every step; vmalloc can run it in debug builds.

use super::{
    rb_first, rb_first_postorder, rb_is_black, rb_is_red, rb_next, rb_next_postorder, rb_parent,
    RbNode, RbRoot, RbRootCached,
};

/// What [`rb_check`] found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbCheckError {
    /// A child's parent pointer does not point at its parent.
    BadParent,
    /// The root is red, or a red node has a red parent.
    RedRed,
    /// Two paths to empty children have different black counts.
    BlackHeight,
    /// Two consecutive nodes are out of order.
    Order,
    /// Fewer nodes than `2^black_height - 1`.
    TooFewNodes,
    /// The post-order walk visited a different number of nodes.
    Postorder,
    /// An augmented value differs from its recomputation.
    Augmented,
    /// The cached leftmost node is not the first node.
    Leftmost,
}

/// What [`rb_check`] measured on a valid tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbCheckInfo {
    /// Number of nodes.
    pub count: usize,
    /// Black nodes on every path from a node with an empty child slot to the root.
    pub black_height: usize,
}

/// Checks the red-black invariants; `in_order(prev, next)` must hold for consecutive nodes
/// (e.g. `key(prev) <= key(next)`).
///
/// # Errors
/// The first violated invariant.
///
/// # Safety
/// `root` must be a tree of valid nodes with no concurrent writer.
pub unsafe fn rb_check(
    root: *const RbRoot,
    mut in_order: impl FnMut(*const RbNode, *const RbNode) -> bool,
) -> Result<RbCheckInfo, RbCheckError> {
    // SAFETY: the caller guarantees the tree is valid; every pointer followed is a tree node.
    unsafe {
        let mut count = 0usize;
        let mut blacks: Option<usize> = None;
        let mut prev: *const RbNode = core::ptr::null();
        let mut rb = rb_first(root);
        while !rb.is_null() {
            let left = (*rb).rb_left;
            let right = (*rb).rb_right;
            if (!left.is_null() && rb_parent(left) != rb)
                || (!right.is_null() && rb_parent(right) != rb)
            {
                return Err(RbCheckError::BadParent);
            }
            let parent = rb_parent(rb);
            if rb_is_red(rb) && (parent.is_null() || rb_is_red(parent)) {
                return Err(RbCheckError::RedRed);
            }
            if left.is_null() || right.is_null() {
                let mut b = 0;
                let mut n: *const RbNode = rb;
                while !n.is_null() {
                    if rb_is_black(n) {
                        b += 1;
                    }
                    n = rb_parent(n);
                }
                match blacks {
                    None => blacks = Some(b),
                    Some(x) if x != b => return Err(RbCheckError::BlackHeight),
                    _ => {}
                }
            }
            if !prev.is_null() && !in_order(prev, rb) {
                return Err(RbCheckError::Order);
            }
            prev = rb;
            count += 1;
            rb = rb_next(rb);
        }
        let black_height = blacks.unwrap_or(0);
        // lib/rbtree_test.c: WARN_ON_ONCE(count < (1 << black_path_count(rb_last)) - 1).
        if black_height < usize::BITS as usize && count < (1usize << black_height) - 1 {
            return Err(RbCheckError::TooFewNodes);
        }
        let mut post = 0usize;
        let mut n = rb_first_postorder(root);
        while !n.is_null() {
            post += 1;
            n = rb_next_postorder(n);
        }
        if post != count {
            return Err(RbCheckError::Postorder);
        }
        Ok(RbCheckInfo {
            count,
            black_height,
        })
    }
}

/// [`rb_check`] plus `check_augmented`: `augmented_ok(node)` must return true for every node
/// (its stored value equals the value recomputed from its children).
///
/// # Errors
/// The first violated invariant.
///
/// # Safety
/// As [`rb_check`].
pub unsafe fn rb_check_augmented(
    root: *const RbRoot,
    in_order: impl FnMut(*const RbNode, *const RbNode) -> bool,
    mut augmented_ok: impl FnMut(*const RbNode) -> bool,
) -> Result<RbCheckInfo, RbCheckError> {
    // SAFETY: forwarded from the caller.
    unsafe {
        let info = rb_check(root, in_order)?;
        let mut rb = rb_first(root);
        while !rb.is_null() {
            if !augmented_ok(rb) {
                return Err(RbCheckError::Augmented);
            }
            rb = rb_next(rb);
        }
        Ok(info)
    }
}

/// [`rb_check`] on a cached root, also checking the leftmost cache.
///
/// # Errors
/// The first violated invariant.
///
/// # Safety
/// As [`rb_check`].
pub unsafe fn rb_check_cached(
    root: *const RbRootCached,
    in_order: impl FnMut(*const RbNode, *const RbNode) -> bool,
) -> Result<RbCheckInfo, RbCheckError> {
    // SAFETY: forwarded from the caller.
    unsafe {
        if (*root).rb_leftmost != rb_first(&(*root).rb_root) {
            return Err(RbCheckError::Leftmost);
        }
        rb_check(&(*root).rb_root, in_order)
    }
}
