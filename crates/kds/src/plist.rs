//! Priority-sorted lists, as in `<linux/plist.h>` and lib/plist.c.
//!
//! A [`PlistHead`] holds [`PlistNode`]s sorted by ascending `prio` (lower value = higher
//! priority, as for kernel tasks), FIFO among equal priorities. Two lists are threaded through
//! the nodes:
//!
//! ```text
//!  node_list: head <-> 1a <-> 1b <-> 3a <-> 5a <-> 5b <-> 5c   (every node, sorted)
//!  prio_list:          1a <--------> 3a <-> 5a                 (first node of each prio)
//! ```
//!
//! `prio_list` has no separate head: it is a ring through the first node of each priority, so
//! [`plist_add`] skips whole priority groups and costs O(number of distinct priorities).
//!
//! # Invariants (checked by [`plist_check_head`])
//! - `node_list` is a valid ring in ascending `prio` order.
//! - A node is on the `prio_list` ring exactly when it is the first node of its priority;
//!   every other node's `prio_list` is empty (points at itself).
//! - The `prio_list` ring visits the priority leaders in ascending order.
//!
//! # Safe layer
//! [`PList`] holds `&'a` items linked through a [`PLink`] field named by a [`PAdapter`]
//! ([`define_plist_adapter!`](crate::define_plist_adapter)); it must be pinned, rejects an
//! item that is already linked, checks membership before removing or requeueing, and unlinks
//! everything on drop.
//!
//! # Locking
//! None; the caller serialises access (Linux protects plists with the lock of the object they
//! belong to, e.g. an rt_mutex's wait_lock).

use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr;

use crate::adapter::{IntrusiveLink, LinkAdapter};
use crate::list::{__list_del_entry, list_add, list_add_tail, list_del_init, list_empty, ListHead};

/// `struct plist_head`: the head of a priority list.
#[repr(C)]
#[derive(Debug)]
pub struct PlistHead {
    /// All nodes, sorted by priority.
    pub node_list: ListHead,
}

/// `struct plist_node`: a node with a priority.
#[repr(C)]
#[derive(Debug)]
pub struct PlistNode {
    /// The priority; lower sorts first.
    pub prio: i32,
    /// Link in the ring of priority leaders (empty unless first of its priority).
    pub prio_list: ListHead,
    /// Link in the list of all nodes.
    pub node_list: ListHead,
}

impl PlistHead {
    /// Returns an uninitialised head; call [`plist_head_init`] at its final address.
    pub const fn new() -> Self {
        Self {
            node_list: ListHead::new(),
        }
    }
}

impl Default for PlistHead {
    fn default() -> Self {
        Self::new()
    }
}

impl PlistNode {
    /// Returns an uninitialised node; call [`plist_node_init`] at its final address.
    pub const fn new(prio: i32) -> Self {
        Self {
            prio,
            prio_list: ListHead::new(),
            node_list: ListHead::new(),
        }
    }
}

/// # Safety
/// `l` must be the `prio_list` field of a live `PlistNode`; the result is that node.
#[inline(always)]
unsafe fn node_of_prio(l: *mut ListHead) -> *mut PlistNode {
    crate::container_of!(l, PlistNode, prio_list)
}

/// # Safety
/// `l` must be the `node_list` field of a live `PlistNode`; the result is that node.
#[inline(always)]
unsafe fn node_of_node(l: *mut ListHead) -> *mut PlistNode {
    crate::container_of!(l, PlistNode, node_list)
}

/// `plist_head_init(head)`: makes the head empty.
///
/// # Safety
/// `head` must be valid and not move while nodes are on it.
#[inline]
pub unsafe fn plist_head_init(head: *mut PlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe { ListHead::init(ptr::addr_of_mut!((*head).node_list)) }
}

/// `plist_node_init(node, prio)`: sets the priority and makes the node unlinked.
///
/// # Safety
/// `node` must be valid, not on a list, and not move while on one.
#[inline]
pub unsafe fn plist_node_init(node: *mut PlistNode, prio: i32) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*node).prio = prio;
        ListHead::init(ptr::addr_of_mut!((*node).prio_list));
        ListHead::init(ptr::addr_of_mut!((*node).node_list));
    }
}

/// `plist_head_empty(head)`.
///
/// # Safety
/// `head` must be initialised.
#[inline]
pub unsafe fn plist_head_empty(head: *const PlistHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { list_empty(ptr::addr_of!((*head).node_list)) }
}

/// `plist_node_empty(node)`: whether the node is on no list.
///
/// # Safety
/// `node` must be initialised.
#[inline]
pub unsafe fn plist_node_empty(node: *const PlistNode) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { list_empty(ptr::addr_of!((*node).node_list)) }
}

/// `plist_first(head)`: the highest-priority (lowest `prio`) node.
///
/// # Safety
/// `head` must be initialised and non-empty.
#[inline]
pub unsafe fn plist_first(head: *const PlistHead) -> *mut PlistNode {
    // SAFETY: forwarded caller guarantee.
    unsafe { node_of_node((*head).node_list.next) }
}

/// `plist_last(head)`: the lowest-priority node.
///
/// # Safety
/// As [`plist_first`].
#[inline]
pub unsafe fn plist_last(head: *const PlistHead) -> *mut PlistNode {
    // SAFETY: forwarded caller guarantee.
    unsafe { node_of_node((*head).node_list.prev) }
}

/// `plist_next(pos)`: the node after `pos` (the head's container if `pos` is last).
///
/// # Safety
/// `pos` must be on a list.
#[inline]
pub unsafe fn plist_next(pos: *const PlistNode) -> *mut PlistNode {
    // SAFETY: forwarded caller guarantee.
    unsafe { node_of_node((*pos).node_list.next) }
}

/// `plist_prev(pos)`: the node before `pos`.
///
/// # Safety
/// As [`plist_next`].
#[inline]
pub unsafe fn plist_prev(pos: *const PlistNode) -> *mut PlistNode {
    // SAFETY: forwarded caller guarantee.
    unsafe { node_of_node((*pos).node_list.prev) }
}

/// `plist_add(node, head)`: inserts `node` after all nodes of priority `<= node.prio`.
///
/// # Safety
/// `node` must be initialised and on no list; `head` initialised.
pub unsafe fn plist_add(node: *mut PlistNode, head: *mut PlistHead) {
    // SAFETY: forwarded caller guarantee; all nodes reached are on `head`.
    unsafe {
        debug_assert!(plist_node_empty(node));
        debug_assert!(list_empty(ptr::addr_of!((*node).prio_list)));
        let hl = ptr::addr_of_mut!((*head).node_list);
        let mut node_next: *mut ListHead = hl;
        if !plist_head_empty(head) {
            let first = plist_first(head);
            let mut iter = first;
            let mut prev: *mut PlistNode = ptr::null_mut();
            // Walk the leaders until one has a larger prio; `node` goes before it.
            loop {
                if (*node).prio < (*iter).prio {
                    node_next = ptr::addr_of_mut!((*iter).node_list);
                    break;
                }
                prev = iter;
                iter = node_of_prio((*iter).prio_list.next);
                if iter == first {
                    break;
                }
            }
            // A new priority becomes a leader, placed before `iter` in the ring (or at its
            // end when `iter` wrapped to `first`).
            if prev.is_null() || (*prev).prio != (*node).prio {
                list_add_tail(
                    ptr::addr_of_mut!((*node).prio_list),
                    ptr::addr_of_mut!((*iter).prio_list),
                );
            }
        }
        list_add_tail(ptr::addr_of_mut!((*node).node_list), node_next);
    }
}

/// `plist_del(node, head)`: removes `node`; if it led its priority, the next node of the same
/// priority takes over in the leader ring.
///
/// # Safety
/// `node` must be on `head`.
pub unsafe fn plist_del(node: *mut PlistNode, head: *mut PlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let pl = ptr::addr_of_mut!((*node).prio_list);
        if !list_empty(pl) {
            let hl = ptr::addr_of_mut!((*head).node_list);
            if (*node).node_list.next != hl {
                let next = node_of_node((*node).node_list.next);
                // Only a same-priority successor is off the ring; it inherits the slot.
                if list_empty(ptr::addr_of!((*next).prio_list)) {
                    list_add(ptr::addr_of_mut!((*next).prio_list), pl);
                }
            }
            list_del_init(pl);
        }
        list_del_init(ptr::addr_of_mut!((*node).node_list));
    }
}

/// `plist_requeue(node, head)`: moves `node` behind the other nodes of its priority
/// (round-robin among equals).
///
/// # Safety
/// `node` must be on `head`.
pub unsafe fn plist_requeue(node: *mut PlistNode, head: *mut PlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        debug_assert!(!plist_head_empty(head) && !plist_node_empty(node));
        if node == plist_last(head) {
            return;
        }
        let mut iter = plist_next(node);
        if (*node).prio != (*iter).prio {
            return;
        }
        plist_del(node, head);
        let hl = ptr::addr_of_mut!((*head).node_list);
        let mut node_next: *mut ListHead = hl;
        while ptr::addr_of_mut!((*iter).node_list) != hl {
            if (*node).prio != (*iter).prio {
                node_next = ptr::addr_of_mut!((*iter).node_list);
                break;
            }
            iter = plist_next(iter);
        }
        list_add_tail(ptr::addr_of_mut!((*node).node_list), node_next);
    }
}

/// `plist_for_each(pos, head)`: the nodes in priority order.
///
/// # Safety
/// The list must stay valid while iterating; only the yielded node may be removed.
pub unsafe fn plist_for_each(head: *const PlistHead) -> impl Iterator<Item = *mut PlistNode> {
    // SAFETY: forwarded caller guarantee.
    unsafe { crate::list::list_for_each_safe(ptr::addr_of!((*head).node_list)) }.map(|l| {
        // SAFETY: every node on `node_list` is embedded in a `PlistNode`.
        unsafe { node_of_node(l) }
    })
}

/// Why [`plist_check_head`] rejected a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlistError {
    /// A `next`/`prev` pair does not match on `node_list`.
    NodeListCorrupt,
    /// A `next`/`prev` pair does not match on the `prio_list` ring.
    PrioListCorrupt,
    /// Nodes are not in ascending priority.
    Unsorted,
    /// A priority leader is missing from, or a follower is on, the `prio_list` ring.
    WrongLeader,
    /// The number of nodes differs from the expected one.
    Count,
}

/// # Safety
/// `top` must be valid for reads and on a ring whose every node reachable through `next` is valid
/// for reads while the check runs (the walk is bounded, so a ring that never returns to `top` is
/// reported, not followed forever).
unsafe fn check_ring(top: *const ListHead) -> bool {
    // SAFETY: the caller guarantees `top` is on a ring of valid nodes; we bound the walk.
    unsafe {
        let mut prev = top;
        let mut n = (*top).next;
        let mut steps = 0usize;
        loop {
            if !ptr::eq((*n).prev, prev) || !ptr::eq((*prev).next, n) {
                return false;
            }
            if ptr::eq(n, top) {
                return true;
            }
            steps += 1;
            if steps > (1 << 30) {
                return false;
            }
            prev = n;
            n = (*n).next;
        }
    }
}

/// The invariant checker of lib/plist.c (`plist_check_head` with `plist_test_check`): verifies
/// both rings, the order, the leader ring, and that the list holds `expect` nodes (if given).
///
/// # Errors
/// The first violated invariant.
///
/// # Safety
/// `head` must be initialised and its nodes valid.
pub unsafe fn plist_check_head(
    head: *const PlistHead,
    expect: Option<usize>,
) -> Result<(), PlistError> {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let hl = ptr::addr_of!((*head).node_list);
        if !check_ring(hl) {
            return Err(PlistError::NodeListCorrupt);
        }
        if plist_head_empty(head) {
            return match expect {
                Some(n) if n != 0 => Err(PlistError::Count),
                _ => Ok(()),
            };
        }
        let first = plist_first(head);
        if !check_ring(ptr::addr_of!((*first).prio_list)) {
            return Err(PlistError::PrioListCorrupt);
        }
        let mut leader = first;
        let mut count = 0usize;
        for n in plist_for_each(head) {
            count += 1;
            if n == first {
                continue;
            }
            if (*n).prio == (*leader).prio {
                if !list_empty(ptr::addr_of!((*n).prio_list)) {
                    return Err(PlistError::WrongLeader);
                }
                continue;
            }
            if (*leader).prio > (*n).prio {
                return Err(PlistError::Unsorted);
            }
            if !ptr::eq((*leader).prio_list.next, ptr::addr_of!((*n).prio_list)) {
                return Err(PlistError::WrongLeader);
            }
            leader = n;
        }
        if !ptr::eq((*leader).prio_list.next, ptr::addr_of!((*first).prio_list)) {
            return Err(PlistError::WrongLeader);
        }
        match expect {
            Some(e) if e != count => Err(PlistError::Count),
            _ => Ok(()),
        }
    }
}

/// Unlinks `node` from both lists without fixing up leaders (a helper for misuse tests of the
/// checker; never needed by users).
///
/// # Safety
/// `node` must be on a plist; the plist is left inconsistent on purpose.
#[doc(hidden)]
pub unsafe fn __plist_corrupt_unlink_prio(node: *mut PlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __list_del_entry(ptr::addr_of_mut!((*node).prio_list));
        ListHead::init(ptr::addr_of_mut!((*node).prio_list));
    }
}

// ---------------------------------------------------------------------------------------------
// Safe layer
// ---------------------------------------------------------------------------------------------

/// The link a struct embeds to be put on a safe [`PList`]: a [`PlistNode`] (with its
/// priority) that knows whether it is linked (its `node_list.next` is null while unlinked).
#[repr(transparent)]
pub struct PLink {
    node: UnsafeCell<PlistNode>,
}

impl PLink {
    /// Returns an unlinked link.
    pub const fn new() -> Self {
        Self {
            node: UnsafeCell::new(PlistNode::new(0)),
        }
    }

    /// Returns whether the link is on a list.
    pub fn is_linked(&self) -> bool {
        // SAFETY: reading a pointer value; the safe layer is single-threaded (`!Sync`).
        unsafe { !(*self.node.get()).node_list.next.is_null() }
    }

    /// Returns the priority the item was last added with.
    pub fn prio(&self) -> i32 {
        // SAFETY: `node` is this link's own cell, always initialised; the safe layer is
        // single-threaded (`!Sync`), so no write to `prio` runs during this read.
        unsafe { (*self.node.get()).prio }
    }

    /// Returns the raw node.
    pub fn as_raw(&self) -> *mut PlistNode {
        self.node.get()
    }
}

impl Default for PLink {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `PLink` is `#[repr(transparent)]` over `UnsafeCell<PlistNode>`.
unsafe impl IntrusiveLink for PLink {
    type Node = PlistNode;
}

/// Names the [`PLink`] field of a struct that a [`PList`] links through: a [`LinkAdapter`]
/// whose link is a [`PLink`] (implemented for every such adapter). Declare one with
/// [`define_plist_adapter!`](crate::define_plist_adapter).
pub trait PAdapter: LinkAdapter<Link = PLink> {}

impl<T: LinkAdapter<Link = PLink> + ?Sized> PAdapter for T {}

/// Declares a [`PAdapter`]: `define_plist_adapter!(pub Waiters = Waiter { link });`.
#[macro_export]
macro_rules! define_plist_adapter {
    ($vis:vis $name:ident = $item:ty { $field:ident }) => {
        $crate::define_link_adapter!($vis $name = $item { $field }: $crate::plist::PLink);
    };
}

/// A priority-sorted list of `&'a A::Item`s (`struct plist_head` with typed entries); pin it
/// before adding.
///
/// # Invariants
/// Once used, `head` is initialised, satisfies [`plist_check_head`], and every node on it is
/// the link of an item borrowed for `'a`. Dropping the list unlinks every item.
///
/// # Examples
/// ```
/// use core::pin::pin;
/// use kds::plist::{PLink, PList};
/// struct Waiter { name: &'static str, link: PLink }
/// kds::define_plist_adapter!(Waiters = Waiter { link });
/// let (a, b, c) = (
///     Waiter { name: "a", link: PLink::new() },
///     Waiter { name: "b", link: PLink::new() },
///     Waiter { name: "c", link: PLink::new() },
/// );
/// let mut q = pin!(PList::<Waiters>::new());
/// assert!(q.as_mut().add(&a, 20).is_ok());
/// assert!(q.as_mut().add(&b, 10).is_ok());
/// assert!(q.as_mut().add(&c, 20).is_ok());
/// let order: Vec<&str> = q.iter().map(|(_, w)| w.name).collect();
/// assert_eq!(order, ["b", "a", "c"]); // by priority, FIFO among equals
/// assert!(q.as_mut().requeue(&a)); // round-robin among priority 20
/// assert_eq!(q.last().map(|w| w.name), Some("a"));
/// ```
pub struct PList<'a, A: PAdapter> {
    head: UnsafeCell<PlistHead>,
    _items: PhantomData<&'a A::Item>,
    _pin: PhantomPinned,
}

impl<'a, A: PAdapter> Default for PList<'a, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, A: PAdapter> PList<'a, A> {
    /// Returns an empty list (initialised on first use after pinning).
    pub const fn new() -> Self {
        Self {
            head: UnsafeCell::new(PlistHead::new()),
            _items: PhantomData,
            _pin: PhantomPinned,
        }
    }

    /// The initialised head (only called on a pinned list, or read-only on an empty one).
    fn raw(&self) -> *mut PlistHead {
        let h = self.head.get();
        // SAFETY: a used list is pinned (all linking methods take `Pin`); an unused one has a
        // null `next` and is initialised here.
        unsafe {
            if (*h).node_list.next.is_null() {
                plist_head_init(h);
            }
        }
        h
    }

    /// Returns whether the list is empty.
    pub fn is_empty(&self) -> bool {
        // SAFETY: reading the head we own.
        unsafe {
            let h = self.head.get();
            (*h).node_list.next.is_null() || plist_head_empty(h)
        }
    }

    /// Adds `item` with priority `prio` behind every item of priority `<= prio` (`plist_add`).
    ///
    /// # Errors
    /// Returns the item back if it is already on a list.
    pub fn add(
        self: Pin<&mut Self>,
        item: &'a A::Item,
        prio: i32,
    ) -> Result<(), crate::list::AlreadyLinked<&'a A::Item>> {
        let link = A::link(item);
        if link.is_linked() {
            return Err(crate::list::AlreadyLinked(item));
        }
        // SAFETY: pinned head; the node is unlinked and belongs to an item borrowed for 'a.
        unsafe {
            plist_node_init(link.as_raw(), prio);
            plist_add(link.as_raw(), self.raw());
        }
        Ok(())
    }

    /// Returns whether `item` is on this list (O(n)).
    pub fn contains(&self, item: &A::Item) -> bool {
        self.iter().any(|(_, x)| ptr::eq(x, item))
    }

    fn unlink(&self, n: *mut PlistNode) {
        // SAFETY: `n` is on this list (callers check); afterwards both lists are reset to
        // null so the link reads as unlinked even if its item later moves.
        unsafe {
            plist_del(n, self.raw());
            (*n).node_list = ListHead::new();
            (*n).prio_list = ListHead::new();
        }
    }

    /// Removes `item` if it is on this list (`plist_del`); returns whether it was.
    pub fn remove(self: Pin<&mut Self>, item: &A::Item) -> bool {
        if !self.contains(item) {
            return false;
        }
        self.unlink(A::link(item).as_raw());
        true
    }

    /// Moves `item` behind the other items of its priority (`plist_requeue`); returns whether
    /// it is on this list.
    pub fn requeue(self: Pin<&mut Self>, item: &A::Item) -> bool {
        if !self.contains(item) {
            return false;
        }
        // SAFETY: the item is on this pinned list.
        unsafe { plist_requeue(A::link(item).as_raw(), self.raw()) };
        true
    }

    /// Returns the highest-priority item (`plist_first`).
    pub fn first(&self) -> Option<&'a A::Item> {
        // SAFETY: non-empty, so the first node is an item's link.
        (!self.is_empty()).then(|| unsafe { &*A::item(plist_first(self.head.get())) })
    }

    /// Returns the lowest-priority item (`plist_last`).
    pub fn last(&self) -> Option<&'a A::Item> {
        // SAFETY: the list is not empty, so `plist_last` returns the link of an item on it,
        // borrowed for 'a, and `A::item` recovers that live item.
        (!self.is_empty()).then(|| unsafe { &*A::item(plist_last(self.head.get())) })
    }

    /// Removes and returns the highest-priority item.
    pub fn pop_first(self: Pin<&mut Self>) -> Option<&'a A::Item> {
        let it = self.first()?;
        self.unlink(A::link(it).as_raw());
        Some(it)
    }

    /// Iterates over `(prio, item)` in priority order (`plist_for_each`).
    pub fn iter(&self) -> impl Iterator<Item = (i32, &'a A::Item)> + '_ {
        let h = self.head.get();
        // SAFETY: a used head is initialised; an unused one is never walked (empty check).
        let nodes = (!self.is_empty()).then(|| unsafe { plist_for_each(h) });
        nodes.into_iter().flatten().map(|n| {
            // SAFETY: every node is an item's link (type invariant).
            unsafe { ((*n).prio, &*A::item(n)) }
        })
    }

    /// Checks the list's invariants ([`plist_check_head`]).
    ///
    /// # Errors
    /// The first violated invariant.
    pub fn check(&self) -> Result<(), PlistError> {
        if self.is_empty() {
            return Ok(());
        }
        // SAFETY: initialised head with valid nodes.
        unsafe { plist_check_head(self.head.get(), None) }
    }

    fn clear_inner(&mut self) {
        let h = self.head.get();
        // SAFETY: the head is ours; each node is an item's link; reset them all.
        unsafe {
            if (*h).node_list.next.is_null() {
                return;
            }
            let hl = ptr::addr_of_mut!((*h).node_list);
            let mut l = (*hl).next;
            while l != hl {
                let next = (*l).next;
                let n = node_of_node(l);
                (*n).node_list = ListHead::new();
                (*n).prio_list = ListHead::new();
                l = next;
            }
            plist_head_init(h);
        }
    }
}

impl<A: PAdapter> Drop for PList<'_, A> {
    fn drop(&mut self) {
        self.clear_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The self-test of lib/plist.c (`plist_test`), in our own words: 241 nodes, 1000 random
    /// add/delete steps driven by the same linear congruential sequence, the checker after
    /// every step, and a requeue of the touched node whose result must not be followed by a
    /// node of equal priority.
    #[test]
    fn plist_selftest() {
        const NR: usize = 241;
        let mut head = PlistHead::new();
        let mut nodes: [PlistNode; NR] = core::array::from_fn(|_| PlistNode::new(0));
        let mut r: u64 = 0x5eed;
        let mut nr_expect = 0usize;
        // SAFETY: head and nodes live on this frame and do not move while linked.
        unsafe {
            plist_head_init(&mut head);
            for n in nodes.iter_mut() {
                plist_node_init(n, 0);
            }
            for _ in 0..1000 {
                r = r * 193_939 % 47_629;
                let i = (r % NR as u64) as usize;
                let n: *mut PlistNode = &mut nodes[i];
                if plist_node_empty(n) {
                    r = r * 193_939 % 47_629;
                    (*n).prio = (r % 99) as i32;
                    plist_add(n, &mut head);
                    nr_expect += 1;
                } else {
                    plist_del(n, &mut head);
                    nr_expect -= 1;
                }
                plist_check_head(&head, Some(nr_expect)).unwrap();
                if !plist_node_empty(n) {
                    plist_requeue(n, &mut head);
                    if n != plist_last(&head) {
                        assert_ne!((*n).prio, (*plist_next(n)).prio);
                    }
                    plist_check_head(&head, Some(nr_expect)).unwrap();
                }
            }
            assert!(nr_expect > 0);
            for node in nodes.iter_mut() {
                let n: *mut PlistNode = node;
                if plist_node_empty(n) {
                    continue;
                }
                plist_del(n, &mut head);
                nr_expect -= 1;
                plist_check_head(&head, Some(nr_expect)).unwrap();
            }
            assert!(plist_head_empty(&head));
        }
    }

    #[test]
    fn fifo_among_equals_and_requeue() {
        let mut head = PlistHead::new();
        let mut n: [PlistNode; 5] = core::array::from_fn(|_| PlistNode::new(0));
        let prios = [5, 1, 5, 3, 1];
        // SAFETY: `head` and the nodes are locals of this test that outlive every use and are not
        // moved while linked.
        unsafe {
            plist_head_init(&mut head);
            for (i, p) in prios.iter().enumerate() {
                plist_node_init(&mut n[i], *p);
                plist_add(&mut n[i], &mut head);
            }
            let base: *const PlistNode = &n[0];
            let order = |h: &PlistHead| -> std::vec::Vec<usize> {
                plist_for_each(h)
                    .map(|p| p.offset_from(base) as usize)
                    .collect()
            };
            assert_eq!(order(&head), [1, 4, 3, 0, 2]);
            assert_eq!(plist_first(&head), &mut n[1] as *mut _);
            assert_eq!(plist_last(&head), &mut n[2] as *mut _);
            plist_requeue(&mut n[1], &mut head);
            assert_eq!(order(&head), [4, 1, 3, 0, 2]);
            plist_del(&mut n[4], &mut head);
            plist_check_head(&head, Some(4)).unwrap();
            plist_del(&mut n[3], &mut head);
            plist_check_head(&head, Some(3)).unwrap();
            assert_eq!(order(&head), [1, 0, 2]);
            // The checker notices a leader missing from the ring.
            __plist_corrupt_unlink_prio(&mut n[0]);
            assert_eq!(
                plist_check_head(&head, Some(3)),
                Err(PlistError::WrongLeader)
            );
        }
    }
    extern crate std;
}
