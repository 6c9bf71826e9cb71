//! Iteration: the `list_for_each*` iterator constructors of the raw layer.

use core::marker::PhantomData;
use core::ptr;

use super::*;

/// A walk over the nodes of a list, not including the head: the engine of every
/// `list_for_each*` variant.
///
/// `REV` walks `prev` pointers (`_prev`/`_reverse`). `SAFE` reads the following pointer before
/// a node is yielded, so the yielded node may be removed (`_safe`); without it the following
/// pointer is read when the next node is asked for, so the body may insert after the node.
pub struct Iter<const REV: bool, const SAFE: bool> {
    head: *const ListHead,
    pos: *mut ListHead,
}

impl<const REV: bool, const SAFE: bool> Iter<REV, SAFE> {
    /// # Safety
    /// `n` must be a valid node of the list being walked (the iterator's constructor contract keeps
    /// every node on it valid).
    #[inline(always)]
    unsafe fn step(n: *mut ListHead) -> *mut ListHead {
        // SAFETY: the iterator's constructor contract keeps every node on the list valid.
        unsafe {
            if REV {
                (*n).prev
            } else {
                (*n).next
            }
        }
    }
}

impl<const REV: bool, const SAFE: bool> Iterator for Iter<REV, SAFE> {
    type Item = *mut ListHead;
    #[inline]
    fn next(&mut self) -> Option<*mut ListHead> {
        if SAFE {
            if ptr::eq(self.pos, self.head) {
                return None;
            }
            let cur = self.pos;
            // SAFETY: constructor contract: `cur` is a valid node of the list.
            self.pos = unsafe { Self::step(cur) };
            Some(cur)
        } else {
            // `pos` holds the node yielded last (or the start), advanced lazily.
            // SAFETY: constructor contract: `pos` is still a valid node of the list.
            let cur = unsafe { Self::step(self.pos) };
            if ptr::eq(cur, self.head) {
                return None;
            }
            self.pos = cur;
            Some(cur)
        }
    }
}

/// The iterator kept from the first version of this module: `list_for_each_safe` order.
pub type RawIter = Iter<false, true>;

/// `list_for_each_safe(pos, n, head)` as an iterator of raw node pointers.
///
/// # Safety
/// `head` must be a valid initialised head, and every node on the list must stay valid while
/// the iterator is used; only the node just yielded may be unlinked.
pub unsafe fn iter(head: *const ListHead) -> RawIter {
    // SAFETY: forwarded caller guarantee.
    unsafe { list_for_each_safe(head) }
}

/// `list_for_each(pos, head)`: the nodes from first to last.
///
/// # Safety
/// `head` must be a valid initialised head and the list must stay valid while iterating; the
/// body may add entries after the current one but not remove it.
#[inline]
pub unsafe fn list_for_each(head: *const ListHead) -> Iter<false, false> {
    Iter {
        head,
        pos: head.cast_mut(),
    }
}

/// `list_for_each_prev(pos, head)`: the nodes from last to first.
///
/// # Safety
/// As [`list_for_each`].
#[inline]
pub unsafe fn list_for_each_prev(head: *const ListHead) -> Iter<true, false> {
    Iter {
        head,
        pos: head.cast_mut(),
    }
}

/// `list_for_each_safe(pos, n, head)`: the nodes from first to last; the yielded node may be
/// removed.
///
/// # Safety
/// As [`iter`].
#[inline]
pub unsafe fn list_for_each_safe(head: *const ListHead) -> Iter<false, true> {
    Iter {
        head,
        // SAFETY: forwarded caller guarantee.
        pos: unsafe { (*head).next },
    }
}

/// `list_for_each_prev_safe(pos, n, head)`: the nodes from last to first; the yielded node may
/// be removed.
///
/// # Safety
/// As [`iter`].
#[inline]
pub unsafe fn list_for_each_prev_safe(head: *const ListHead) -> Iter<true, true> {
    Iter {
        head,
        // SAFETY: forwarded caller guarantee.
        pos: unsafe { (*head).prev },
    }
}

/// `list_for_each_continue(pos, head)`: the nodes after `pos` up to the last.
///
/// # Safety
/// `pos` must be `head` or a node of it; otherwise as [`list_for_each`].
#[inline]
pub unsafe fn list_for_each_continue(
    pos: *mut ListHead,
    head: *const ListHead,
) -> Iter<false, false> {
    Iter { head, pos }
}

/// `list_for_each_from`-style walk: the nodes from `pos` (included) up to the last.
///
/// # Safety
/// As [`list_for_each_continue`]; the yielded node may be removed.
#[inline]
pub unsafe fn list_for_each_from(pos: *mut ListHead, head: *const ListHead) -> Iter<false, true> {
    Iter { head, pos }
}

/// `list_for_each_continue_reverse`-style walk: the nodes before `pos` down to the first.
///
/// # Safety
/// As [`list_for_each_continue`].
#[inline]
pub unsafe fn list_for_each_continue_reverse(
    pos: *mut ListHead,
    head: *const ListHead,
) -> Iter<true, false> {
    Iter { head, pos }
}

/// A walk yielding the containing structs (`list_for_each_entry*`): an [`Iter`] mapped
/// through `container_of` with a field offset.
pub struct EntryIter<T, const REV: bool, const SAFE: bool> {
    inner: Iter<REV, SAFE>,
    offset: usize,
    _t: PhantomData<*mut T>,
}

impl<T, const REV: bool, const SAFE: bool> Iterator for EntryIter<T, REV, SAFE> {
    type Item = *mut T;
    #[inline]
    fn next(&mut self) -> Option<*mut T> {
        self.inner
            .next()
            .map(|n| n.cast::<u8>().wrapping_sub(self.offset).cast::<T>())
    }
}

macro_rules! entry_iter_fns {
    ($( $(#[$m:meta])* $name:ident => $base:ident, $rev:literal, $safe:literal; )*) => {$(
        $(#[$m])*
        ///
        /// `offset` is `offset_of!(T, member)`; the macro of the same name supplies it.
        ///
        /// # Safety
        /// As the node walk of the same kind; every node on the list must be the `member` of
        /// a live `T`.
        #[inline]
        pub unsafe fn $name<T>(head: *const ListHead, offset: usize) -> EntryIter<T, $rev, $safe> {
            // SAFETY: forwarded caller guarantee.
            EntryIter { inner: unsafe { $base(head) }, offset, _t: PhantomData }
        }
    )*};
}

entry_iter_fns! {
    /// `list_for_each_entry(pos, head, member)`: the entries from first to last.
    list_for_each_entry => list_for_each, false, false;
    /// `list_for_each_entry_reverse(pos, head, member)`: the entries from last to first.
    list_for_each_entry_reverse => list_for_each_prev, true, false;
    /// `list_for_each_entry_safe(pos, n, head, member)`: first to last; the yielded entry may
    /// be removed.
    list_for_each_entry_safe => list_for_each_safe, false, true;
    /// `list_for_each_entry_safe_reverse(pos, n, head, member)`: last to first, removal
    /// allowed.
    list_for_each_entry_safe_reverse => list_for_each_prev_safe, true, true;
}

/// `list_for_each_entry_continue(pos, head, member)`: the entries after the node `pos`.
///
/// # Safety
/// As [`list_for_each_continue`], and every node must be the `member` of a live `T`.
#[inline]
pub unsafe fn list_for_each_entry_continue<T>(
    pos: *mut ListHead,
    head: *const ListHead,
    offset: usize,
) -> EntryIter<T, false, false> {
    EntryIter {
        // SAFETY: forwarded caller guarantee.
        inner: unsafe { list_for_each_continue(pos, head) },
        offset,
        _t: PhantomData,
    }
}

/// `list_for_each_entry_from(pos, head, member)`: the entries from the node `pos` (included).
///
/// # Safety
/// As [`list_for_each_entry_continue`].
#[inline]
pub unsafe fn list_for_each_entry_from<T>(
    pos: *mut ListHead,
    head: *const ListHead,
    offset: usize,
) -> EntryIter<T, false, true> {
    EntryIter {
        // SAFETY: forwarded caller guarantee.
        inner: unsafe { list_for_each_from(pos, head) },
        offset,
        _t: PhantomData,
    }
}

/// `list_for_each_entry_continue_reverse(pos, head, member)`: the entries before `pos`.
///
/// # Safety
/// As [`list_for_each_entry_continue`].
#[inline]
pub unsafe fn list_for_each_entry_continue_reverse<T>(
    pos: *mut ListHead,
    head: *const ListHead,
    offset: usize,
) -> EntryIter<T, true, false> {
    EntryIter {
        // SAFETY: forwarded caller guarantee.
        inner: unsafe { list_for_each_continue_reverse(pos, head) },
        offset,
        _t: PhantomData,
    }
}

/// `list_for_each_entry(pos, head, member)` as `for pos in list_for_each_entry!(head, T, member)`;
/// also `_reverse`, `_safe`, `_safe_reverse` by a first token, and `continue`/`from`/
/// `continue_reverse` with a starting node. Must be used inside `unsafe`.
///
/// ```
/// use kds::list::{self, ListHead};
/// struct Item { v: u32, link: ListHead }
/// let mut head = ListHead::new();
/// let mut a = Item { v: 1, link: ListHead::new() };
/// let mut b = Item { v: 2, link: ListHead::new() };
/// // SAFETY: all three live on this frame and do not move while linked.
/// unsafe {
///     ListHead::init(&mut head);
///     list::list_add_tail(&mut a.link, &mut head);
///     list::list_add_tail(&mut b.link, &mut head);
///     let mut sum = 0;
///     for it in kds::list_for_each_entry!(&head, Item, link) {
///         sum += (*it).v;
///     }
///     assert_eq!(sum, 3);
///     let rev: Vec<u32> = kds::list_for_each_entry!(reverse &head, Item, link).map(|p| (*p).v).collect();
///     assert_eq!(rev, [2, 1]);
/// }
/// ```
#[macro_export]
macro_rules! list_for_each_entry {
    (reverse $head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry_reverse::<$ty>(
            $head,
            ::core::mem::offset_of!($ty, $field),
        )
    };
    (safe $head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry_safe::<$ty>($head, ::core::mem::offset_of!($ty, $field))
    };
    (safe_reverse $head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry_safe_reverse::<$ty>(
            $head,
            ::core::mem::offset_of!($ty, $field),
        )
    };
    (continue $pos:expr, $head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry_continue::<$ty>(
            ::core::ptr::addr_of_mut!((*$pos).$field),
            $head,
            ::core::mem::offset_of!($ty, $field),
        )
    };
    (continue_reverse $pos:expr, $head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry_continue_reverse::<$ty>(
            ::core::ptr::addr_of_mut!((*$pos).$field),
            $head,
            ::core::mem::offset_of!($ty, $field),
        )
    };
    (from $pos:expr, $head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry_from::<$ty>(
            ::core::ptr::addr_of_mut!((*$pos).$field),
            $head,
            ::core::mem::offset_of!($ty, $field),
        )
    };
    ($head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_for_each_entry::<$ty>($head, ::core::mem::offset_of!($ty, $field))
    };
}

/// Counts the entries of a list (`list_count_nodes`).
///
/// # Safety
/// `head` must be a valid, initialised head of a valid list.
pub unsafe fn list_count_nodes(head: *const ListHead) -> usize {
    // SAFETY: forwarded caller guarantee.
    unsafe { list_for_each(head) }.count()
}
