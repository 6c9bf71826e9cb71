//! Intrusive circular doubly linked lists, as in `<linux/list.h>`.
//!
//! # Raw layer
//! [`ListHead`] is `struct list_head`: two pointers, embedded in the structures it links. An
//! empty list is a head whose `next` and `prev` point at itself, so a head must not move once
//! initialised ([`ListHead::init`], `INIT_LIST_HEAD`). The free functions carry Linux's names
//! and argument order (`list_add(new, head)`) and are `unsafe`: the caller guarantees that
//! every pointer is valid, pinned, and not concurrently accessed.
//!
//! # Invariants
//! For every initialised node `n` on a list: `(*(*n).next).prev == n` and
//! `(*(*n).prev).next == n`. A node removed with [`list_del`] has both pointers set to the
//! poison values [`LIST_POISON1`]/[`LIST_POISON2`], as Linux does, so use after removal is
//! detectable.

use core::ptr;

/// `LIST_POISON1` from include/linux/poison.h (0x100 + POISON_POINTER_DELTA, delta 0 here).
pub const LIST_POISON1: *mut ListHead = 0x100 as *mut ListHead;
/// `LIST_POISON2` from include/linux/poison.h (0x122 + POISON_POINTER_DELTA).
pub const LIST_POISON2: *mut ListHead = 0x122 as *mut ListHead;

/// `struct list_head`: a link embedded in a structure, or the head of a list.
#[repr(C)]
#[derive(Debug)]
pub struct ListHead {
    /// The next entry (the first entry, for a head).
    pub next: *mut ListHead,
    /// The previous entry (the last entry, for a head).
    pub prev: *mut ListHead,
}

// SAFETY: a ListHead is two plain pointers; all access to what they point at goes through
// `unsafe` functions whose callers provide the synchronisation.
unsafe impl Send for ListHead {}
// SAFETY: as above; shared references only read the pointer values.
unsafe impl Sync for ListHead {}

impl ListHead {
    /// Returns an unlinked head with null pointers; call [`ListHead::init`] once it is at its
    /// final address.
    pub const fn new() -> Self {
        Self { next: ptr::null_mut(), prev: ptr::null_mut() }
    }

    /// `INIT_LIST_HEAD`: makes `this` an empty list (both pointers at itself).
    ///
    /// # Safety
    /// `this` must be valid for writes, and must not move while it is linked.
    #[inline]
    pub unsafe fn init(this: *mut ListHead) {
        // SAFETY: the caller guarantees `this` is valid for writes.
        unsafe {
            (*this).next = this;
            (*this).prev = this;
        }
    }
}

impl Default for ListHead {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
unsafe fn __list_add(new: *mut ListHead, prev: *mut ListHead, next: *mut ListHead) {
    // SAFETY: the caller guarantees all three nodes are valid and `prev`/`next` adjacent.
    unsafe {
        (*next).prev = new;
        (*new).next = next;
        (*new).prev = prev;
        (*prev).next = new;
    }
}

/// `list_add(new, head)`: inserts `new` right after `head` (stack order).
///
/// # Safety
/// `new` must be valid and not on any list; `head` must be an initialised, valid node.
#[inline]
pub unsafe fn list_add(new: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe { __list_add(new, head, (*head).next) }
}

/// `list_add_tail(new, head)`: inserts `new` right before `head` (queue order).
///
/// # Safety
/// As [`list_add`].
#[inline]
pub unsafe fn list_add_tail(new: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe { __list_add(new, (*head).prev, head) }
}

#[inline]
unsafe fn __list_del_entry(entry: *mut ListHead) {
    // SAFETY: the caller guarantees `entry` is linked, so its neighbours are valid.
    unsafe {
        let next = (*entry).next;
        let prev = (*entry).prev;
        (*next).prev = prev;
        (*prev).next = next;
    }
}

/// `list_del(entry)`: unlinks `entry` and poisons its pointers.
///
/// # Safety
/// `entry` must be a valid node currently on a list.
#[inline]
pub unsafe fn list_del(entry: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __list_del_entry(entry);
        (*entry).next = LIST_POISON1;
        (*entry).prev = LIST_POISON2;
    }
}

/// `list_del_init(entry)`: unlinks `entry` and reinitialises it as an empty list.
///
/// # Safety
/// `entry` must be a valid node currently on a list (or an empty head).
#[inline]
pub unsafe fn list_del_init(entry: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __list_del_entry(entry);
        ListHead::init(entry);
    }
}

/// `list_empty(head)`: whether the list has no entries.
///
/// # Safety
/// `head` must be a valid, initialised head.
#[inline]
pub unsafe fn list_empty(head: *const ListHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { ptr::eq((*head).next, head) }
}

/// `list_first(head)`: the first node, or `None` when empty (Linux's `list_first_entry_or_null`
/// without the `container_of`).
///
/// # Safety
/// `head` must be a valid, initialised head.
#[inline]
pub unsafe fn list_first(head: *const ListHead) -> Option<*mut ListHead> {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if list_empty(head) {
            None
        } else {
            Some((*head).next)
        }
    }
}

/// Iterator over the nodes of a list (`list_for_each`), not including the head.
///
/// The next pointer is read before a node is yielded, so the yielded node may be removed
/// (`list_for_each_safe` semantics).
pub struct RawIter {
    head: *const ListHead,
    pos: *mut ListHead,
}

impl Iterator for RawIter {
    type Item = *mut ListHead;
    #[inline]
    fn next(&mut self) -> Option<*mut ListHead> {
        if ptr::eq(self.pos, self.head) {
            return None;
        }
        let cur = self.pos;
        // SAFETY: `iter`'s contract: every node on the list is valid during iteration.
        self.pos = unsafe { (*cur).next };
        Some(cur)
    }
}

/// `list_for_each_safe(pos, n, head)` as an iterator of raw node pointers.
///
/// # Safety
/// `head` must be a valid initialised head, and every node on the list must stay valid while
/// the iterator is used; only the node just yielded may be unlinked.
pub unsafe fn iter(head: *const ListHead) -> RawIter {
    // SAFETY: forwarded caller guarantee.
    RawIter { head, pos: unsafe { (*head).next } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Item {
        val: u32,
        link: ListHead,
    }

    #[test]
    fn add_del_order() {
        let mut head = ListHead::new();
        let mut items: [Item; 3] = core::array::from_fn(|i| Item { val: i as u32, link: ListHead::new() });
        // SAFETY: everything lives on this stack frame and does not move.
        unsafe {
            ListHead::init(&mut head);
            for it in items.iter_mut() {
                list_add_tail(&mut it.link, &mut head);
            }
            let vals: [u32; 3] = {
                let mut v = [0; 3];
                for (i, n) in iter(&head).enumerate() {
                    v[i] = (*crate::container_of!(n, Item, link)).val;
                }
                v
            };
            assert_eq!(vals, [0, 1, 2]);
            list_del(&mut items[1].link);
            assert_eq!(items[1].link.next, LIST_POISON1);
            assert_eq!(iter(&head).count(), 2);
            list_add(&mut items[1].link, &mut head);
            let first = list_first(&head).unwrap();
            assert_eq!((*crate::container_of!(first, Item, link)).val, 1);
            list_del(&mut items[0].link);
            list_del(&mut items[1].link);
            list_del(&mut items[2].link);
            assert!(list_empty(&head));
        }
    }
}
