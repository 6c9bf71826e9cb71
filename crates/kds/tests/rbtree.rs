//! rbtree tests: lib/rbtree_test.c's checks ported (plain, cached and augmented trees, the
//! invariant checker after every insert and erase), raw-layer API cases, and the safe map
//! against `BTreeMap` (proptest).
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)
#![allow(clippy::needless_range_loop)]

extern crate std;

mod trees_support;

use std::collections::BTreeMap;
use std::vec::Vec;

use core::ptr;
use kds::alloc::Gfp;
use kds::rbtree::augmented::{
    rb_erase_augmented, rb_erase_augmented_cached, rb_insert_augmented, rb_insert_augmented_cached,
};
use kds::rbtree::check::{rb_check, rb_check_augmented, rb_check_cached, RbCheckError};
use kds::rbtree::*;
use kds::Error;
use proptest::prelude::*;
use trees_support::{Rng, TestAlloc};

const GFP: Gfp = Gfp::GFP_KERNEL;

/// `struct test_node` of lib/rbtree_test.c.
#[repr(C)]
struct TestNode {
    key: u32,
    rb: RbNode,
    val: u32,
    augmented: u32,
}

impl TestNode {
    fn new(key: u32, val: u32) -> Self {
        TestNode {
            key,
            rb: RbNode::new(),
            val,
            augmented: 0,
        }
    }
}

fn entry(rb: *const RbNode) -> *mut TestNode {
    kds::container_of!(rb, TestNode, rb)
}

fn node_val(n: &TestNode) -> u32 {
    n.val
}

kds::rb_declare_callbacks_max!(AugmentCallbacks, TestNode, rb, u32, augmented, node_val);

/// `insert()`: walk by key (equal keys go right), link, rebalance.
///
/// # Safety
/// `node` points at a live, unlinked `TestNode` that does not move while linked, and `root` at a
/// valid tree whose nodes are all live `TestNode`s.
unsafe fn insert(node: *mut TestNode, root: *mut RbRoot) {
    // SAFETY: the caller guarantees valid, linked test nodes.
    unsafe {
        let key = (*node).key;
        let mut link: *mut *mut RbNode = &mut (*root).rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            link = if key < (*entry(parent)).key {
                &mut (*parent).rb_left
            } else {
                &mut (*parent).rb_right
            };
        }
        rb_link_node(&mut (*node).rb, parent, link);
        rb_insert_color(&mut (*node).rb, root);
    }
}

/// `insert_cached()`.
///
/// # Safety
/// `node` points at a live, unlinked `TestNode` that does not move while linked, and `root` at a
/// valid cached tree whose nodes are all live `TestNode`s.
unsafe fn insert_cached(node: *mut TestNode, root: *mut RbRootCached) {
    // SAFETY: the caller guarantees valid, linked test nodes.
    unsafe {
        let key = (*node).key;
        let mut link: *mut *mut RbNode = &mut (*root).rb_root.rb_node;
        let mut parent = ptr::null_mut();
        let mut leftmost = true;
        while !(*link).is_null() {
            parent = *link;
            if key < (*entry(parent)).key {
                link = &mut (*parent).rb_left;
            } else {
                link = &mut (*parent).rb_right;
                leftmost = false;
            }
        }
        rb_link_node(&mut (*node).rb, parent, link);
        rb_insert_color_cached(&mut (*node).rb, root, leftmost);
    }
}

/// `insert_augmented()`: raise the subtree maximum along the walk, then link.
///
/// # Safety
/// `node` points at a live, unlinked `TestNode` that does not move while linked, and `root` at a
/// valid augmented tree (`AugmentCallbacks`) of live `TestNode`s.
unsafe fn insert_augmented(node: *mut TestNode, root: *mut RbRoot) {
    // SAFETY: the caller guarantees valid, linked test nodes.
    unsafe {
        let key = (*node).key;
        let val = (*node).val;
        let mut link: *mut *mut RbNode = &mut (*root).rb_node;
        let mut rb_parent = ptr::null_mut();
        while !(*link).is_null() {
            rb_parent = *link;
            let parent = entry(rb_parent);
            if (*parent).augmented < val {
                (*parent).augmented = val;
            }
            link = if key < (*parent).key {
                &mut (*parent).rb.rb_left
            } else {
                &mut (*parent).rb.rb_right
            };
        }
        (*node).augmented = val;
        rb_link_node(&mut (*node).rb, rb_parent, link);
        rb_insert_augmented::<AugmentCallbacks>(&mut (*node).rb, root);
    }
}

/// `insert_augmented_cached()`: as [`insert_augmented`], also tracking whether the node
/// becomes the leftmost.
///
/// # Safety
/// `node` points at a live, unlinked `TestNode` that does not move while linked, and `root` at a
/// valid cached augmented tree of live `TestNode`s.
unsafe fn insert_augmented_cached(node: *mut TestNode, root: *mut RbRootCached) {
    // SAFETY: the caller guarantees valid, linked test nodes.
    unsafe {
        let key = (*node).key;
        let val = (*node).val;
        let mut link: *mut *mut RbNode = &mut (*root).rb_root.rb_node;
        let mut rb_parent = ptr::null_mut();
        let mut leftmost = true;
        while !(*link).is_null() {
            rb_parent = *link;
            let parent = entry(rb_parent);
            if (*parent).augmented < val {
                (*parent).augmented = val;
            }
            if key < (*parent).key {
                link = &mut (*parent).rb.rb_left;
            } else {
                link = &mut (*parent).rb.rb_right;
                leftmost = false;
            }
        }
        (*node).augmented = val;
        rb_link_node(&mut (*node).rb, rb_parent, link);
        rb_insert_augmented_cached::<AugmentCallbacks>(&mut (*node).rb, root, leftmost);
    }
}

/// # Safety
/// `a` and `b` are the `rb` fields of live `TestNode`s.
unsafe fn key_order(a: *const RbNode, b: *const RbNode) -> bool {
    // SAFETY: the caller guarantees valid, linked test nodes.
    unsafe { (*entry(a)).key <= (*entry(b)).key }
}

fn check(root: &RbRoot, nr: usize) {
    // SAFETY: the test owns every node of `root`.
    let info = unsafe { rb_check(root, |a, b| key_order(a, b)) }.expect("rbtree invariant");
    assert_eq!(info.count, nr);
}

fn check_augmented(root: &RbRoot, nr: usize) {
    // SAFETY: the test owns every node of `root` and keeps them alive and in place; `augmented_ok`
    // only recomputes the subtree max of a linked node.
    let info = unsafe {
        rb_check_augmented(
            root,
            |a, b| key_order(a, b),
            |rb| {
                let n = &*entry(rb);
                let mut max = n.val;
                for c in [n.rb.rb_left, n.rb.rb_right] {
                    if !c.is_null() {
                        max = max.max((*entry(c)).augmented);
                    }
                }
                n.augmented == max
            },
        )
    }
    .expect("augmented rbtree invariant");
    assert_eq!(info.count, nr);
}

fn make_nodes(rng: &mut Rng, n: usize) -> Vec<TestNode> {
    (0..n)
        .map(|_| TestNode::new(rng.next_u64() as u32, rng.next_u64() as u32))
        .collect()
}

// lib/rbtree_test.c: nnodes = 100, check_loops = 100.
const NNODES: usize = 100;
const CHECK_LOOPS: usize = 100;

#[test]
fn rbtree_test_plain_check_after_every_step() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..CHECK_LOOPS {
        let mut nodes = make_nodes(&mut rng, NNODES);
        let mut root = RbRoot::new();
        for j in 0..NNODES {
            check(&root, j);
            // SAFETY: `nodes` does not move (no push after this point) and outlives the tree.
            unsafe { insert(&mut nodes[j], &mut root) };
        }
        check(&root, NNODES);
        for j in 0..NNODES {
            check(&root, NNODES - j);
            // SAFETY: node j is in the tree.
            unsafe { rb_erase(&mut nodes[j].rb, &mut root) };
        }
        check(&root, 0);
        assert!(root.is_empty());
    }
}

#[test]
fn rbtree_test_cached_check_after_every_step() {
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    for _ in 0..CHECK_LOOPS {
        let mut nodes = make_nodes(&mut rng, NNODES);
        let mut root = RbRootCached::new();
        for j in 0..NNODES {
            // SAFETY: all linked nodes are alive.
            let info = unsafe { rb_check_cached(&root, |a, b| key_order(a, b)) }.unwrap();
            assert_eq!(info.count, j);
            // SAFETY: `nodes` is not pushed to after `make_nodes`, so node j stays in place and
            // outlives `root`; it is not linked yet, and every node already in the tree is live.
            unsafe { insert_cached(&mut nodes[j], &mut root) };
        }
        // Erase in a random order.
        let mut order: Vec<usize> = (0..NNODES).collect();
        for i in (1..NNODES).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for (done, &j) in order.iter().enumerate() {
            // SAFETY: all linked nodes are alive.
            let info = unsafe { rb_check_cached(&root, |a, b| key_order(a, b)) }.unwrap();
            assert_eq!(info.count, NNODES - done);
            // SAFETY: node j is linked.
            unsafe { rb_erase_cached(&mut nodes[j].rb, &mut root) };
        }
        assert!(root.rb_leftmost.is_null());
    }
}

#[test]
fn rbtree_test_augmented_check_after_every_step() {
    let mut rng = Rng(42);
    for _ in 0..CHECK_LOOPS {
        let mut nodes = make_nodes(&mut rng, NNODES);
        let mut root = RbRoot::new();
        for j in 0..NNODES {
            check_augmented(&root, j);
            // SAFETY: `nodes` does not move and outlives `root`; node j is not linked yet, and the
            // augmented tree links only live nodes of `nodes`.
            unsafe { insert_augmented(&mut nodes[j], &mut root) };
        }
        check_augmented(&root, NNODES);
        for j in 0..NNODES {
            check_augmented(&root, NNODES - j);
            // SAFETY: node j is linked.
            unsafe { rb_erase_augmented::<AugmentCallbacks>(&mut nodes[j].rb, &mut root) };
        }
        check_augmented(&root, 0);
    }
}

/// lib/rbtree_test.c's "augmented rbtree testing" with a cached root (`insert_augmented_cached`
/// / `erase_augmented_cached`): after every step the augmented invariant holds and
/// `rb_leftmost` is the first node in order.
#[test]
fn rbtree_test_augmented_cached_check_after_every_step() {
    let mut rng = Rng(0xa5a5_1234);
    for _ in 0..CHECK_LOOPS {
        let mut nodes = make_nodes(&mut rng, NNODES);
        let mut root = RbRootCached::new();
        let check_both = |root: &RbRootCached, nr: usize| {
            check_augmented(&root.rb_root, nr);
            // SAFETY: all linked nodes are alive.
            let info = unsafe { rb_check_cached(root, |a, b| key_order(a, b)) }.unwrap();
            assert_eq!(info.count, nr);
            // SAFETY: `root` is the test's tree; its nodes (`nodes`) are alive and not moved while
            // linked.
            assert_eq!(root.rb_leftmost, unsafe { rb_first(&root.rb_root) });
        };
        for j in 0..NNODES {
            check_both(&root, j);
            // SAFETY: `nodes` does not move and outlives `root`; node j is not linked yet, and the
            // cached augmented tree links only live nodes of `nodes`.
            unsafe { insert_augmented_cached(&mut nodes[j], &mut root) };
        }
        for j in 0..NNODES {
            check_both(&root, NNODES - j);
            // SAFETY: node j is linked.
            unsafe { rb_erase_augmented_cached::<AugmentCallbacks>(&mut nodes[j].rb, &mut root) };
        }
        check_both(&root, 0);
        assert!(root.rb_leftmost.is_null());
    }
}

#[test]
fn checker_detects_corruption() {
    let mut nodes: Vec<TestNode> = (0..16).map(|k| TestNode::new(k, 0)).collect();
    let mut root = RbRoot::new();
    for n in nodes.iter_mut() {
        // SAFETY: nodes outlive the tree and do not move.
        unsafe { insert(n, &mut root) };
    }
    check(&root, 16);
    // Break the order: the checker must notice.
    // SAFETY: the tree holds live nodes.
    let first_rb = unsafe { rb_first(&root) };
    let first = nodes.iter().position(|n| ptr::eq(&n.rb, first_rb)).unwrap();
    nodes[first].key = 1000;
    // SAFETY: still a structurally valid tree.
    assert_eq!(
        // SAFETY: still a structurally valid tree of live nodes.
        unsafe { rb_check(&root, |a, b| key_order(a, b)) },
        Err(RbCheckError::Order)
    );
    nodes[first].key = 0;
    check(&root, 16);
    // A node linked without rb_insert_color is red: a red root must be reported.
    let mut lone = TestNode::new(1, 0);
    let mut bad = RbRoot::new();
    // SAFETY: `lone` outlives `bad`.
    unsafe {
        rb_link_node(&mut lone.rb, ptr::null_mut(), &mut bad.rb_node);
        assert_eq!(
            rb_check(&bad, |a, b| key_order(a, b)),
            Err(RbCheckError::RedRed)
        );
        rb_insert_color(&mut lone.rb, &mut bad);
        assert!(rb_check(&bad, |a, b| key_order(a, b)).is_ok());
        // A second red child linked under it without rebalancing is fine (black root), but a
        // third below that one is a red-red violation.
        let mut l1 = TestNode::new(0, 0);
        let mut l2 = TestNode::new(0, 0);
        rb_link_node(&mut l1.rb, &mut lone.rb, &mut lone.rb.rb_left);
        rb_link_node(&mut l2.rb, &mut l1.rb, &mut l1.rb.rb_left);
        assert_eq!(
            rb_check(&bad, |a, b| key_order(a, b)),
            Err(RbCheckError::RedRed)
        );
    }
}

#[test]
fn first_last_next_prev_postorder() {
    let mut nodes: Vec<TestNode> = (0..1000u32)
        .map(|k| TestNode::new(k * 7 % 1000, 0))
        .collect();
    let mut root = RbRoot::new();
    // SAFETY: nodes outlive the tree and do not move.
    unsafe {
        assert!(rb_first(&root).is_null());
        assert!(rb_last(&root).is_null());
        assert!(rb_first_postorder(&root).is_null());
        for n in nodes.iter_mut() {
            insert(n, &mut root);
        }
        let mut k = 0;
        let mut rb = rb_first(&root);
        while !rb.is_null() {
            assert_eq!((*entry(rb)).key, k);
            k += 1;
            rb = rb_next(rb);
        }
        assert_eq!(k, 1000);
        let mut rb = rb_last(&root);
        while !rb.is_null() {
            k -= 1;
            assert_eq!((*entry(rb)).key, k);
            rb = rb_prev(rb);
        }
        assert_eq!(k, 0);
        // Post-order: every node after both its children; each node once.
        let mut seen = std::collections::HashSet::new();
        let mut rb = rb_first_postorder(&root);
        while !rb.is_null() {
            for c in [(*rb).rb_left, (*rb).rb_right] {
                if !c.is_null() {
                    assert!(seen.contains(&(c as usize)));
                }
            }
            assert!(seen.insert(rb as usize));
            rb = rb_next_postorder(rb);
        }
        assert_eq!(seen.len(), 1000);
    }
}

#[test]
fn clear_node_and_empty_node() {
    let mut n = TestNode::new(1, 0);
    // SAFETY: `n` is a local, unlinked node.
    unsafe {
        rb_clear_node(&mut n.rb);
        assert!(rb_empty_node(&n.rb));
        assert!(rb_next(&n.rb).is_null());
        assert!(rb_prev(&n.rb).is_null());
        let mut root = RbRoot::new();
        insert(&mut n, &mut root);
        assert!(!rb_empty_node(&n.rb));
        rb_erase(&mut n.rb, &mut root);
        rb_clear_node(&mut n.rb);
        assert!(rb_empty_node(&n.rb));
        assert!(root.is_empty());
    }
}

#[test]
fn replace_node_keeps_shape() {
    let mut nodes: Vec<TestNode> = (0..50u32).map(|k| TestNode::new(k, 0)).collect();
    let mut spare = TestNode::new(25, 0);
    let mut root = RbRootCached::new();
    // SAFETY: nodes outlive the tree and do not move.
    unsafe {
        for n in nodes.iter_mut() {
            insert_cached(n, &mut root);
        }
        rb_replace_node_cached(&mut nodes[25].rb, &mut spare.rb, &mut root);
        rb_check_cached(&root, |a, b| key_order(a, b)).unwrap();
        let mut spare0 = TestNode::new(0, 0);
        rb_replace_node_cached(&mut nodes[0].rb, &mut spare0.rb, &mut root);
        assert_eq!(root.rb_leftmost, &mut spare0.rb as *mut RbNode);
        rb_check_cached(&root, |a, b| key_order(a, b)).unwrap();
        let mut keys = Vec::new();
        let mut rb = rb_first(&root.rb_root);
        while !rb.is_null() {
            keys.push((*entry(rb)).key);
            rb = rb_next(rb);
        }
        assert_eq!(keys, (0..50).collect::<Vec<_>>());
        // Erase everything including the replacements.
        rb_erase_cached(&mut spare.rb, &mut root);
        rb_erase_cached(&mut spare0.rb, &mut root);
        for (i, n) in nodes.iter_mut().enumerate() {
            if i != 0 && i != 25 {
                rb_erase_cached(&mut n.rb, &mut root);
            }
        }
        assert!(root.rb_root.is_empty());
    }
}

#[test]
fn rb_add_find_find_first_find_add() {
    let mut nodes: Vec<TestNode> = [5u32, 3, 5, 9, 1, 5, 7]
        .iter()
        .map(|&k| TestNode::new(k, 0))
        .collect();
    let mut root = RbRootCached::new();
    // SAFETY: the tree only links live TestNodes.
    let less = |a: *const RbNode, b: *const RbNode| unsafe { (*entry(a)).key < (*entry(b)).key };
    // SAFETY: nodes outlive the tree and do not move.
    unsafe {
        let mut leftmosts = Vec::new();
        for n in nodes.iter_mut() {
            leftmosts.push(rb_add_cached(&mut n.rb, &mut root, less));
        }
        assert_eq!(leftmosts, [true, true, false, false, true, false, false]);
        rb_check_cached(&root, |a, b| key_order(a, b)).unwrap();
        // rb_find_first returns the leftmost (first inserted, since equal keys go right) 5.
        let first5 = rb_find_first(&root.rb_root, |n| 5.cmp(&(*entry(n)).key));
        assert_eq!(first5, &mut nodes[0].rb as *mut RbNode);
        assert!(!rb_find(&root.rb_root, |n| 7.cmp(&(*entry(n)).key)).is_null());
        assert!(rb_find(&root.rb_root, |n| 8.cmp(&(*entry(n)).key)).is_null());
        let mut dup = TestNode::new(9, 0);
        let found = rb_find_add(&mut dup.rb, &mut root.rb_root, |a, b| {
            (*entry(a)).key.cmp(&(*entry(b)).key)
        });
        assert_eq!(found, &mut nodes[3].rb as *mut RbNode);
        let mut new = TestNode::new(8, 0);
        let found = rb_find_add(&mut new.rb, &mut root.rb_root, |a, b| {
            (*entry(a)).key.cmp(&(*entry(b)).key)
        });
        assert!(found.is_null());
        rb_check(&root.rb_root, |a, b| key_order(a, b)).unwrap();
        let mut plain = RbRoot::new();
        let mut a = TestNode::new(2, 0);
        let mut b = TestNode::new(1, 0);
        rb_add(&mut a.rb, &mut plain, less);
        rb_add(&mut b.rb, &mut plain, less);
        assert_eq!(rb_first(&plain), &mut b.rb as *mut RbNode);
    }
}

// ------------------------------------------------------------------------------------------
// The safe map.

#[test]
fn map_basic_and_alloc_accounting() {
    let a = TestAlloc::new();
    {
        let mut t = RbTree::new_in(&a);
        for k in (0..1000u64).rev() {
            assert_eq!(t.insert(k, k * 2, GFP), Ok(None));
        }
        assert_eq!(t.insert(5, 0, GFP), Ok(Some(10)));
        assert_eq!(t.len(), 1000);
        assert_eq!(a.live(), 1000);
        t.check().unwrap();
        assert_eq!(t.get(&5), Some(&0));
        assert_eq!(t.first_key_value(), Some((&0, &0)));
        assert_eq!(t.last_key_value(), Some((&999, &1998)));
        for k in (0..1000u64).step_by(2) {
            assert!(t.remove(&k).is_some());
            t.check().unwrap();
        }
        assert_eq!(t.remove(&0), None);
        assert_eq!(t.len(), 500);
        assert_eq!(a.live(), 500);
        assert_eq!(t.pop_first(), Some((1, 2)));
        assert_eq!(t.pop_last(), Some((999, 1998)));
        let v: Vec<u64> = t.keys().copied().take(3).collect();
        assert_eq!(v, [3, 5, 7]);
    }
    assert_eq!(a.live(), 0, "drop frees every node");
}

#[test]
fn map_enomem_leaves_map_unchanged_and_reserve_makes_insert_infallible() {
    let a = TestAlloc::new();
    let mut t = RbTree::new_in(&a);
    t.insert(1, 1, GFP).unwrap();
    a.fail_all();
    assert_eq!(t.insert(2, 2, Gfp::GFP_NOWAIT), Err(Error::ENOMEM));
    assert_eq!(Error::ENOMEM.to_errno(), -12);
    // Replacing an existing key needs no memory.
    assert_eq!(t.insert(1, 10, GFP), Ok(Some(1)));
    assert_eq!(t.len(), 1);
    t.check().unwrap();
    assert_eq!(t.entry(3).or_insert(3, GFP), Err(Error::ENOMEM));
    assert_eq!(t.reserve(1, GFP), Err(Error::ENOMEM));
    a.heal();
    t.reserve(2, GFP).unwrap();
    assert_eq!(t.reserved(), 2);
    a.fail_all();
    assert_eq!(t.insert(2, 2, Gfp::GFP_ATOMIC), Ok(None));
    assert_eq!(*t.entry(3).or_insert(3, Gfp::GFP_ATOMIC).unwrap(), 3);
    assert_eq!(t.insert(4, 4, Gfp::GFP_ATOMIC), Err(Error::ENOMEM));
    assert_eq!(t.reserved(), 0);
    t.check().unwrap();
    a.heal();
    t.reserve(3, GFP).unwrap();
    drop(t);
    assert_eq!(a.live(), 0, "spare nodes are freed too");
}

#[test]
fn map_entry_api() {
    let a = TestAlloc::new();
    let mut t: RbTree<&str, u32, _> = RbTree::new_in(&a);
    for w in ["a", "b", "a", "c", "a"] {
        *t.entry(w).or_insert(0, GFP).unwrap() += 1;
    }
    assert_eq!(t.get("a"), Some(&3));
    match t.entry("b") {
        Entry::Occupied(mut o) => {
            assert_eq!(o.insert(9), 1);
            assert_eq!(*o.get(), 9);
            assert_eq!(o.remove_entry(), ("b", 9));
        }
        Entry::Vacant(_) => panic!("b is present"),
    }
    match t.entry("z") {
        Entry::Vacant(v) => {
            assert_eq!(*v.key(), "z");
            *v.insert(5, GFP).unwrap() += 1;
        }
        Entry::Occupied(_) => panic!("z is absent"),
    }
    t.entry("c").and_modify(|v| *v = 100);
    assert_eq!(
        t.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        [("a", 3), ("c", 100), ("z", 6)]
    );
    t.check().unwrap();
}

#[test]
fn map_cursors() {
    let a = TestAlloc::new();
    let mut t = RbTree::new_in(&a);
    for k in (0..20u32).map(|x| x * 10) {
        t.insert(k, k, GFP).unwrap();
    }
    let mut c = t.cursor_lower_bound(&55);
    assert_eq!(c.current(), Some((&60, &60)));
    assert_eq!(c.peek_prev(), Some((&50, &50)));
    assert_eq!(c.peek_next(), Some((&70, &70)));
    c.move_prev();
    c.move_prev();
    assert_eq!(c.current().unwrap().0, &40);
    assert!(t.cursor_lower_bound(&191).current().is_none());
    let mut c = t.cursor_back();
    assert_eq!(c.current().unwrap().0, &190);
    c.move_next();
    assert!(c.current().is_none());
    let mut c = t.cursor_front();
    c.move_prev();
    assert!(c.current().is_none());

    // Remove every multiple of 20 through a mutable cursor, doubling the others.
    let mut c = t.cursor_front_mut();
    while let Some((k, v)) = c.current() {
        if k % 20 == 0 {
            c.remove_current();
        } else {
            *v *= 2;
            c.move_next();
        }
    }
    t.check().unwrap();
    assert_eq!(
        t.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        (0..10)
            .map(|i| (i * 20 + 10, (i * 20 + 10) * 2))
            .collect::<Vec<_>>()
    );
    let mut c = t.cursor_back_mut();
    assert_eq!(c.remove_current(), Some((190, 380)));
    assert!(c.current().is_none());
    let mut c = t.cursor_lower_bound_mut(&50);
    assert_eq!(c.current().map(|(k, _)| *k), Some(50));
    assert_eq!(c.peek_next(), Some((&70, &140)));
    t.check().unwrap();
}

#[test]
fn map_into_iter_and_iter_mut() {
    let a = TestAlloc::new();
    let mut t = RbTree::new_in(&a);
    for k in [5u8, 1, 4, 2, 3] {
        t.insert(k, std::string::String::from("x"), GFP).unwrap();
    }
    for (k, v) in t.iter_mut() {
        v.push(char::from(b'0' + *k));
    }
    assert_eq!(
        t.iter().rev().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        ["x5", "x4", "x3", "x2", "x1"]
    );
    let mut it = t.into_iter();
    assert_eq!(it.next().unwrap().0, 1);
    assert_eq!(it.next_back().unwrap().0, 5);
    drop(it);
    assert_eq!(a.live(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    Remove(u16),
    PopFirst,
    PopLast,
    Entry(u16),
    Range(u16, u16, bool, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..512, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0u16..512).prop_map(Op::Remove),
        1 => Just(Op::PopFirst),
        1 => Just(Op::PopLast),
        1 => (0u16..512).prop_map(Op::Entry),
        1 => (0u16..512, 0u16..512, any::<bool>(), any::<bool>()).prop_map(|(a, b, i, j)| Op::Range(a.min(b), a.max(b), i, j)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn map_matches_btreemap(ops in proptest::collection::vec(op(), 1..400)) {
        use core::ops::Bound;
        let a = TestAlloc::new();
        let mut t = RbTree::new_in(&a);
        let mut m = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => prop_assert_eq!(t.insert(k, v, GFP).unwrap(), m.insert(k, v)),
                Op::Remove(k) => prop_assert_eq!(t.remove(&k), m.remove(&k)),
                Op::PopFirst => prop_assert_eq!(t.pop_first(), m.pop_first()),
                Op::PopLast => prop_assert_eq!(t.pop_last(), m.pop_last()),
                Op::Entry(k) => {
                    *t.entry(k).or_insert(0, GFP).unwrap() += 1;
                    *m.entry(k).or_insert(0) += 1;
                }
                Op::Range(lo, hi, li, hi_incl) => {
                    let lb = if li { Bound::Included(lo) } else { Bound::Excluded(lo) };
                    let ub = if hi_incl { Bound::Included(hi) } else { Bound::Excluded(hi) };
                    if lo == hi && !(li && hi_incl) {
                        prop_assert_eq!(t.range((lb, ub)).count(), 0);
                    } else {
                        let got: Vec<_> = t.range((lb, ub)).map(|(k, v)| (*k, *v)).collect();
                        let want: Vec<_> = m.range((lb, ub)).map(|(k, v)| (*k, *v)).collect();
                        prop_assert_eq!(&got, &want);
                        let got_rev: Vec<_> = t.range((lb, ub)).rev().map(|(k, _)| *k).collect();
                        let want_rev: Vec<_> = m.range((lb, ub)).rev().map(|(k, _)| *k).collect();
                        prop_assert_eq!(got_rev, want_rev);
                    }
                }
            }
            t.check().map_err(|e| TestCaseError::fail(std::format!("{e:?}")))?;
            prop_assert_eq!(t.len(), m.len());
            prop_assert_eq!(a.live() as usize, m.len());
        }
        let got: Vec<_> = t.iter().map(|(k, v)| (*k, *v)).collect();
        let want: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(t.first_key_value(), m.first_key_value());
        prop_assert_eq!(t.last_key_value(), m.last_key_value());
    }
}
