//! Hash lists with a single-pointer head, as in the `hlist_*` half of `<linux/list.h>`.
//!
//! [`HlistHead`] is one pointer (`first`), so a table of them costs half as much as a table
//! of [`ListHead`](crate::list::ListHead)s; [`HlistNode`] has `next` and `pprev`, where `pprev`
//! points at whatever pointer points at this node (the head's `first` or the previous node's
//! `next`). That lets a node unlink itself in O(1) without knowing its head.
//!
//! # Invariants
//! For a node `n` on a list: `*(*n).pprev == n`, and if `(*n).next` is non-null then
//! `(*(*n).next).pprev == &mut (*n).next`. A node with a null `pprev` is *unhashed* (on no
//! list, [`hlist_unhashed`]); a node whose `pprev` points at its own `next` is *fake*
//! ([`hlist_add_fake`]): it looks hashed but is on no list. An empty head has a null `first`,
//! so a zeroed or `const`-initialised head is valid and may move while empty; once a node is
//! linked the head must stay put.
//!
//! # Safe layer
//! [`HList`] holds `&'a` items linked through an [`HLink`] field named by an [`HAdapter`]
//! ([`define_hlist_adapter!`](crate::define_hlist_adapter)); it must be pinned, rejects an
//! item that is already hashed, checks membership before removing or inserting next to an
//! item, and unhashes everything on drop. The `hashtable` module's `HashTable` is the keyed
//! version (it sits on this module).
//!
//! # Locking
//! None; the caller serialises access to each list (e.g. a lock per hash bucket).

use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr;

use crate::adapter::{IntrusiveLink, LinkAdapter};
use crate::list::AlreadyLinked;

/// `LIST_POISON1`/`LIST_POISON2` as hlist pointers (include/linux/poison.h).
pub const HLIST_POISON1: *mut HlistNode = 0x100 as *mut HlistNode;
/// `LIST_POISON2` as the `pprev` poison.
pub const HLIST_POISON2: *mut *mut HlistNode = 0x122 as *mut *mut HlistNode;

/// `struct hlist_head`: the head of a hash list, a single pointer.
#[repr(C)]
#[derive(Debug)]
pub struct HlistHead {
    /// The first node, or null when empty.
    pub first: *mut HlistNode,
}

/// `struct hlist_node`: the link embedded in a hashed structure.
#[repr(C)]
#[derive(Debug)]
pub struct HlistNode {
    /// The next node, or null at the end.
    pub next: *mut HlistNode,
    /// The pointer that points at this node; null when unhashed.
    pub pprev: *mut *mut HlistNode,
}

// SAFETY: plain pointers; the unsafe functions' callers provide synchronisation.
unsafe impl Send for HlistHead {}
// SAFETY: `&HlistHead` exposes only the first-node pointer value; dereferencing it needs `unsafe`
// functions whose callers synchronise.
unsafe impl Sync for HlistHead {}
// SAFETY: a node is two plain pointers; moving it between threads moves words, and the functions
// that follow them are `unsafe` with callers providing synchronisation.
unsafe impl Send for HlistNode {}
// SAFETY: `&HlistNode` exposes only pointer values; dereferencing them needs `unsafe` functions
// whose callers synchronise.
unsafe impl Sync for HlistNode {}

impl HlistHead {
    /// `HLIST_HEAD_INIT`: an empty head.
    pub const fn new() -> Self {
        Self {
            first: ptr::null_mut(),
        }
    }
}

impl Default for HlistHead {
    fn default() -> Self {
        Self::new()
    }
}

impl HlistNode {
    /// `INIT_HLIST_NODE` as a value: an unhashed node.
    pub const fn new() -> Self {
        Self {
            next: ptr::null_mut(),
            pprev: ptr::null_mut(),
        }
    }
}

impl Default for HlistNode {
    fn default() -> Self {
        Self::new()
    }
}

/// `INIT_HLIST_HEAD(ptr)`: makes the head empty.
///
/// # Safety
/// `h` must be valid for writes.
#[inline]
#[allow(non_snake_case)]
pub unsafe fn INIT_HLIST_HEAD(h: *mut HlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe { (*h).first = ptr::null_mut() }
}

/// `INIT_HLIST_NODE(h)`: makes the node unhashed.
///
/// # Safety
/// `h` must be valid for writes.
#[inline]
#[allow(non_snake_case)]
pub unsafe fn INIT_HLIST_NODE(h: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*h).next = ptr::null_mut();
        (*h).pprev = ptr::null_mut();
    }
}

/// `hlist_unhashed(h)`: whether the node is on no list (`pprev` null).
///
/// # Safety
/// `h` must be valid.
#[inline]
pub unsafe fn hlist_unhashed(h: *const HlistNode) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { (*h).pprev.is_null() }
}

/// `hlist_unhashed_lockless(h)`: [`hlist_unhashed`] with a single untorn read, for use
/// without the list's lock.
///
/// # Safety
/// `h` must be valid.
#[inline]
pub unsafe fn hlist_unhashed_lockless(h: *const HlistNode) -> bool {
    // SAFETY: forwarded caller guarantee; a volatile read is Linux's READ_ONCE.
    unsafe { ptr::read_volatile(ptr::addr_of!((*h).pprev)).is_null() }
}

/// `hlist_empty(h)`: whether the list has no nodes.
///
/// # Safety
/// `h` must be valid.
#[inline]
pub unsafe fn hlist_empty(h: *const HlistHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { (*h).first.is_null() }
}

/// `__hlist_del(n)`: unlinks `n` without touching its own pointers.
///
/// # Safety
/// `n` must be hashed (on a list) and valid.
#[inline]
pub unsafe fn __hlist_del(n: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee: `pprev` and `next` (if any) are valid.
    unsafe {
        let next = (*n).next;
        let pprev = (*n).pprev;
        *pprev = next;
        if !next.is_null() {
            (*next).pprev = pprev;
        }
    }
}

/// `hlist_del(n)`: unlinks `n` and poisons its pointers (it then reads as hashed, as in Linux;
/// use [`hlist_del_init`] to make it reusable).
///
/// # Safety
/// As [`__hlist_del`].
#[inline]
pub unsafe fn hlist_del(n: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __hlist_del(n);
        (*n).next = HLIST_POISON1;
        (*n).pprev = HLIST_POISON2;
    }
}

/// `hlist_del_init(n)`: unlinks `n` if hashed and leaves it unhashed.
///
/// # Safety
/// `n` must be valid; if hashed, its list must be valid.
#[inline]
pub unsafe fn hlist_del_init(n: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !hlist_unhashed(n) {
            __hlist_del(n);
            INIT_HLIST_NODE(n);
        }
    }
}

/// `hlist_add_head(n, h)`: adds `n` at the front of `h`.
///
/// # Safety
/// `n` must be valid and unhashed; `h` valid and not moved while non-empty.
#[inline]
pub unsafe fn hlist_add_head(n: *mut HlistNode, h: *mut HlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let first = (*h).first;
        (*n).next = first;
        if !first.is_null() {
            (*first).pprev = ptr::addr_of_mut!((*n).next);
        }
        (*h).first = n;
        (*n).pprev = ptr::addr_of_mut!((*h).first);
    }
}

/// `hlist_add_before(n, next)`: adds `n` before the hashed node `next`.
///
/// # Safety
/// `n` unhashed and valid; `next` hashed and valid.
#[inline]
pub unsafe fn hlist_add_before(n: *mut HlistNode, next: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*n).pprev = (*next).pprev;
        (*n).next = next;
        (*next).pprev = ptr::addr_of_mut!((*n).next);
        *(*n).pprev = n;
    }
}

/// `hlist_add_behind(n, prev)`: adds `n` after the hashed node `prev`.
///
/// # Safety
/// `n` unhashed and valid; `prev` hashed and valid.
#[inline]
pub unsafe fn hlist_add_behind(n: *mut HlistNode, prev: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*n).next = (*prev).next;
        (*prev).next = n;
        (*n).pprev = ptr::addr_of_mut!((*prev).next);
        if !(*n).next.is_null() {
            (*(*n).next).pprev = ptr::addr_of_mut!((*n).next);
        }
    }
}

/// `hlist_add_fake(n)`: makes `n` look hashed (so [`hlist_del`] is harmless) while on no list.
///
/// # Safety
/// `n` must be valid and not on a list.
#[inline]
pub unsafe fn hlist_add_fake(n: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe { (*n).pprev = ptr::addr_of_mut!((*n).next) }
}

/// `hlist_fake(h)`: whether `h` was made fake by [`hlist_add_fake`].
///
/// # Safety
/// `h` must be valid.
#[inline]
pub unsafe fn hlist_fake(h: *mut HlistNode) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { ptr::eq((*h).pprev, ptr::addr_of_mut!((*h).next)) }
}

/// `hlist_is_singular_node(n, h)`: whether `n` is the only node of `h`.
///
/// # Safety
/// Both must be valid.
#[inline]
pub unsafe fn hlist_is_singular_node(n: *mut HlistNode, h: *mut HlistHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { (*n).next.is_null() && ptr::eq((*n).pprev, ptr::addr_of_mut!((*h).first)) }
}

/// `hlist_move_list(old, new)`: moves all nodes of `old` to `new` (whose old contents are
/// overwritten) and empties `old`.
///
/// # Safety
/// Both heads must be valid; `new` must hold nothing worth keeping.
#[inline]
pub unsafe fn hlist_move_list(old: *mut HlistHead, new: *mut HlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*new).first = (*old).first;
        if !(*new).first.is_null() {
            (*(*new).first).pprev = ptr::addr_of_mut!((*new).first);
        }
        (*old).first = ptr::null_mut();
    }
}

/// `hlist_splice_init(from, last, to)`: moves all nodes of `from` (whose last node is `last`)
/// to the front of `to`, and empties `from`.
///
/// # Safety
/// `from` must be non-empty with last node `last`; `to` valid.
#[inline]
pub unsafe fn hlist_splice_init(from: *mut HlistHead, last: *mut HlistNode, to: *mut HlistHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !(*to).first.is_null() {
            (*(*to).first).pprev = ptr::addr_of_mut!((*last).next);
        }
        (*last).next = (*to).first;
        (*to).first = (*from).first;
        (*(*from).first).pprev = ptr::addr_of_mut!((*to).first);
        (*from).first = ptr::null_mut();
    }
}

/// `hlist_count_nodes(head)`: the number of nodes.
///
/// # Safety
/// `head` and its nodes must be valid.
pub unsafe fn hlist_count_nodes(head: *const HlistHead) -> usize {
    // SAFETY: forwarded caller guarantee.
    unsafe { hlist_for_each(head) }.count()
}

/// The walk behind `hlist_for_each*`: yields each node; with `SAFE` the following pointer is
/// read before the node is yielded, so the node may be deleted.
pub struct HlistIter<const SAFE: bool> {
    pos: *mut HlistNode,
}

impl<const SAFE: bool> Iterator for HlistIter<SAFE> {
    type Item = *mut HlistNode;
    #[inline]
    fn next(&mut self) -> Option<*mut HlistNode> {
        // Both variants read `next` before yielding (an hlist node has no way back to the
        // walk after being deleted); `SAFE` only documents the permission to delete.
        let cur = self.pos;
        if cur.is_null() {
            return None;
        }
        // SAFETY: the constructor's contract keeps every node valid while iterating.
        self.pos = unsafe { (*cur).next };
        Some(cur)
    }
}

/// `hlist_for_each(pos, head)`: the nodes of `head`.
///
/// # Safety
/// `head` and its nodes must stay valid while iterating.
#[inline]
pub unsafe fn hlist_for_each(head: *const HlistHead) -> HlistIter<false> {
    HlistIter {
        // SAFETY: forwarded caller guarantee.
        pos: unsafe { (*head).first },
    }
}

/// `hlist_for_each_safe(pos, n, head)`: the nodes of `head`; the yielded node may be deleted.
///
/// # Safety
/// As [`hlist_for_each`].
#[inline]
pub unsafe fn hlist_for_each_safe(head: *const HlistHead) -> HlistIter<true> {
    HlistIter {
        // SAFETY: forwarded caller guarantee.
        pos: unsafe { (*head).first },
    }
}

/// `hlist_for_each_from`-style walk: `pos` (if non-null) and the nodes after it.
///
/// # Safety
/// As [`hlist_for_each`].
#[inline]
pub unsafe fn hlist_for_each_from(pos: *mut HlistNode) -> HlistIter<true> {
    HlistIter { pos }
}

/// `hlist_for_each_continue`-style walk: the nodes after `pos`.
///
/// # Safety
/// `pos` must be a valid node; as [`hlist_for_each`].
#[inline]
pub unsafe fn hlist_for_each_continue(pos: *mut HlistNode) -> HlistIter<true> {
    HlistIter {
        // SAFETY: forwarded caller guarantee.
        pos: unsafe { (*pos).next },
    }
}

/// A walk yielding containing structs (`hlist_for_each_entry*`).
pub struct HlistEntryIter<T, const SAFE: bool> {
    inner: HlistIter<SAFE>,
    offset: usize,
    _t: PhantomData<*mut T>,
}

impl<T, const SAFE: bool> HlistEntryIter<T, SAFE> {
    /// Wraps a node walk, mapping each node through `container_of` with `offset`.
    pub fn new(inner: HlistIter<SAFE>, offset: usize) -> Self {
        Self {
            inner,
            offset,
            _t: PhantomData,
        }
    }
}

impl<T, const SAFE: bool> Iterator for HlistEntryIter<T, SAFE> {
    type Item = *mut T;
    #[inline]
    fn next(&mut self) -> Option<*mut T> {
        self.inner
            .next()
            .map(|n| n.cast::<u8>().wrapping_sub(self.offset).cast::<T>())
    }
}

/// `hlist_entry_safe(ptr, type, member)`: `container_of` that maps null to `None`.
#[macro_export]
macro_rules! hlist_entry_safe {
    ($ptr:expr, $ty:ty, $field:ident) => {{
        let __p: *mut $crate::hlist::HlistNode = $ptr;
        if __p.is_null() {
            None
        } else {
            Some($crate::container_of!(__p, $ty, $field))
        }
    }};
}

/// `hlist_for_each_entry(pos, head, member)` and friends as iterators of `*mut T`:
/// `hlist_for_each_entry!(head, T, member)`, `(safe head, T, member)`,
/// `(continue pos, T, member)`, `(from pos, T, member)` where `pos: *mut T`. Must be used
/// inside `unsafe`.
#[macro_export]
macro_rules! hlist_for_each_entry {
    (safe $head:expr, $ty:ty, $field:ident) => {
        $crate::hlist::HlistEntryIter::<$ty, true>::new(
            $crate::hlist::hlist_for_each_safe($head),
            ::core::mem::offset_of!($ty, $field),
        )
    };
    (continue $pos:expr, $ty:ty, $field:ident) => {
        $crate::hlist::HlistEntryIter::<$ty, true>::new(
            $crate::hlist::hlist_for_each_continue(::core::ptr::addr_of_mut!((*$pos).$field)),
            ::core::mem::offset_of!($ty, $field),
        )
    };
    (from $pos:expr, $ty:ty, $field:ident) => {
        $crate::hlist::HlistEntryIter::<$ty, true>::new(
            $crate::hlist::hlist_for_each_from(::core::ptr::addr_of_mut!((*$pos).$field)),
            ::core::mem::offset_of!($ty, $field),
        )
    };
    ($head:expr, $ty:ty, $field:ident) => {
        $crate::hlist::HlistEntryIter::<$ty, false>::new(
            $crate::hlist::hlist_for_each($head),
            ::core::mem::offset_of!($ty, $field),
        )
    };
}

// ---------------------------------------------------------------------------------------------
// Safe layer
// ---------------------------------------------------------------------------------------------

/// The link a struct embeds to be put on a safe [`HList`] or in a hash table (the
/// `hashtable` module's `HashTable` links through it too): an [`HlistNode`], unhashed when its
/// `pprev` is null.
#[repr(transparent)]
pub struct HLink {
    node: UnsafeCell<HlistNode>,
}

impl HLink {
    /// Returns an unhashed link.
    pub const fn new() -> Self {
        Self {
            node: UnsafeCell::new(HlistNode::new()),
        }
    }

    /// Returns whether the link is in a table (`hash_hashed`).
    pub fn is_hashed(&self) -> bool {
        // SAFETY: reading a pointer value; the safe layer is single-threaded (`!Sync` table).
        unsafe { !hlist_unhashed(self.node.get()) }
    }

    /// Returns the raw node.
    pub fn as_raw(&self) -> *mut HlistNode {
        self.node.get()
    }
}

impl Default for HLink {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `HLink` is `#[repr(transparent)]` over `UnsafeCell<HlistNode>`.
unsafe impl IntrusiveLink for HLink {
    type Node = HlistNode;
}

/// Names the [`HLink`] field of a struct that an [`HList`] links through: a [`LinkAdapter`]
/// whose link is an [`HLink`] (implemented for every such adapter). Declare one with
/// [`define_hlist_adapter!`](crate::define_hlist_adapter).
pub trait HAdapter: LinkAdapter<Link = HLink> {}

impl<T: LinkAdapter<Link = HLink> + ?Sized> HAdapter for T {}

/// Declares an [`HAdapter`]: `define_hlist_adapter!(pub ByNode = Obj { node });`.
#[macro_export]
macro_rules! define_hlist_adapter {
    ($vis:vis $name:ident = $item:ty { $field:ident }) => {
        $crate::define_link_adapter!($vis $name = $item { $field }: $crate::hlist::HLink);
    };
}

/// A singly-headed list of `&'a A::Item`s (`struct hlist_head` with typed entries); pin it
/// before adding, since the first node points back into the head.
///
/// # Invariants
/// Every node on `head` is the link of an item borrowed for `'a`; dropping the list unhashes
/// every item.
///
/// # Examples
/// ```
/// use core::pin::pin;
/// use kds::hlist::{HLink, HList};
/// struct Obj { v: u32, node: HLink }
/// kds::define_hlist_adapter!(ByNode = Obj { node });
/// let (a, b, c) = (Obj { v: 1, node: HLink::new() }, Obj { v: 2, node: HLink::new() }, Obj { v: 3, node: HLink::new() });
/// let mut l = pin!(HList::<ByNode>::new());
/// assert!(l.as_mut().push_front(&a).is_ok());
/// assert!(l.as_mut().add_behind(&a, &c).is_ok());
/// assert!(l.as_mut().add_before(&a, &b).is_ok());
/// assert_eq!(l.iter().map(|o| o.v).collect::<Vec<_>>(), [2, 1, 3]);
/// assert!(l.as_mut().remove(&a));
/// assert!(!a.node.is_hashed());
/// ```
pub struct HList<'a, A: HAdapter> {
    head: UnsafeCell<HlistHead>,
    _items: PhantomData<&'a A::Item>,
    _pin: PhantomPinned,
}

impl<'a, A: HAdapter> Default for HList<'a, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, A: HAdapter> HList<'a, A> {
    /// Returns an empty list (`HLIST_HEAD`).
    pub const fn new() -> Self {
        Self {
            head: UnsafeCell::new(HlistHead::new()),
            _items: PhantomData,
            _pin: PhantomPinned,
        }
    }

    /// Returns whether the list is empty (`hlist_empty`).
    pub fn is_empty(&self) -> bool {
        // SAFETY: reading the head we own.
        unsafe { hlist_empty(self.head.get()) }
    }

    fn unhashed(item: &'a A::Item) -> Result<*mut HlistNode, AlreadyLinked<&'a A::Item>> {
        let link = A::link(item);
        if link.is_hashed() {
            Err(AlreadyLinked(item))
        } else {
            Ok(link.as_raw())
        }
    }

    /// Adds `item` at the front (`hlist_add_head`).
    ///
    /// # Errors
    /// Returns the item back if it is already on a list.
    pub fn push_front(
        self: Pin<&mut Self>,
        item: &'a A::Item,
    ) -> Result<(), AlreadyLinked<&'a A::Item>> {
        let n = Self::unhashed(item)?;
        // SAFETY: pinned head; `n` unhashed and borrowed for 'a.
        unsafe { hlist_add_head(n, self.head.get()) };
        Ok(())
    }

    /// Adds `item` right after `pos`, which must be on this list (`hlist_add_behind`).
    ///
    /// # Errors
    /// Returns the item back if it is already linked or `pos` is not on this list.
    pub fn add_behind(
        self: Pin<&mut Self>,
        pos: &A::Item,
        item: &'a A::Item,
    ) -> Result<(), AlreadyLinked<&'a A::Item>> {
        let n = Self::unhashed(item)?;
        if !self.contains(pos) {
            return Err(AlreadyLinked(item));
        }
        // SAFETY: `pos` is on this pinned list; `n` unhashed and borrowed for 'a.
        unsafe { hlist_add_behind(n, A::link(pos).as_raw()) };
        Ok(())
    }

    /// Adds `item` right before `pos`, which must be on this list (`hlist_add_before`).
    ///
    /// # Errors
    /// As [`HList::add_behind`].
    pub fn add_before(
        self: Pin<&mut Self>,
        pos: &A::Item,
        item: &'a A::Item,
    ) -> Result<(), AlreadyLinked<&'a A::Item>> {
        let n = Self::unhashed(item)?;
        if !self.contains(pos) {
            return Err(AlreadyLinked(item));
        }
        // SAFETY: `pos` is on this pinned list (checked by `contains`), so its link is live and its
        // `pprev` valid; `n` is unhashed and its item is borrowed for 'a, so it outlives its time
        // on the list.
        unsafe { hlist_add_before(n, A::link(pos).as_raw()) };
        Ok(())
    }

    /// Returns the first item.
    pub fn front(&self) -> Option<&'a A::Item> {
        // SAFETY: a non-null `first` is an item's link.
        unsafe {
            let f = (*self.head.get()).first;
            (!f.is_null()).then(|| &*A::item(f))
        }
    }

    /// Removes and returns the first item.
    pub fn pop_front(self: Pin<&mut Self>) -> Option<&'a A::Item> {
        let it = self.front()?;
        // SAFETY: the first node is hashed on this list.
        unsafe { hlist_del_init(A::link(it).as_raw()) };
        Some(it)
    }

    /// Returns whether `item` is on this list (O(n)).
    pub fn contains(&self, item: &A::Item) -> bool {
        self.iter().any(|x| ptr::eq(x, item))
    }

    /// Removes `item` if it is on this list (`hlist_del_init`); returns whether it was.
    pub fn remove(self: Pin<&mut Self>, item: &A::Item) -> bool {
        if !self.contains(item) {
            return false;
        }
        // SAFETY: hashed on this list.
        unsafe { hlist_del_init(A::link(item).as_raw()) };
        true
    }

    /// Iterates over the items (`hlist_for_each_entry`).
    pub fn iter(&self) -> impl Iterator<Item = &'a A::Item> + '_ {
        // SAFETY: every node is an item's link and the iterator borrows the list.
        unsafe { hlist_for_each(self.head.get()) }.map(|n| {
            // SAFETY: `n` is a link yielded by the walk above, embedded in an item the list borrows
            // for 'a.
            unsafe { &*A::item(n) }
        })
    }

    /// Removes every item.
    pub fn clear(self: Pin<&mut Self>) {
        self.clear_inner();
    }

    fn clear_inner(&self) {
        // SAFETY: the head is ours; each node is an item's link; reset them all.
        unsafe {
            let h = self.head.get();
            let mut n = (*h).first;
            while !n.is_null() {
                let next = (*n).next;
                INIT_HLIST_NODE(n);
                n = next;
            }
            (*h).first = ptr::null_mut();
        }
    }
}

impl<A: HAdapter> Drop for HList<'_, A> {
    fn drop(&mut self) {
        self.clear_inner();
    }
}
