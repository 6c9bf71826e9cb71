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
//! # Locking
//! None; the caller serialises access to each list (e.g. a lock per hash bucket).

use core::marker::PhantomData;
use core::ptr;

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
// SAFETY: as above.
unsafe impl Sync for HlistHead {}
// SAFETY: as above.
unsafe impl Send for HlistNode {}
// SAFETY: as above.
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
