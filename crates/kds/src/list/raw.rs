//! The raw layer: [`ListHead`] and the Linux-named `unsafe` list operations.

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
// SAFETY: through `&ListHead` only the two pointer values are read (Copy words); dereferencing them
// requires `unsafe` functions whose callers synchronise.
unsafe impl Sync for ListHead {}

impl ListHead {
    /// Returns an unlinked head with null pointers; call [`ListHead::init`] once it is at its
    /// final address.
    pub const fn new() -> Self {
        Self {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        }
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

/// `INIT_LIST_HEAD(list)`: the Linux spelling of [`ListHead::init`].
///
/// # Safety
/// As [`ListHead::init`].
#[inline]
#[allow(non_snake_case)]
pub unsafe fn INIT_LIST_HEAD(list: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe { ListHead::init(list) }
}

/// # Safety
/// `new`, `prev` and `next` must be valid for writes, `prev` and `next` adjacent on one list
/// (`prev.next == next`), and `new` not on any list the caller still relies on.
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

/// `__list_del(prev, next)`: makes `prev` and `next` point at each other.
///
/// # Safety
/// `prev` and `next` must be valid for writes and belong to the same list (the entry between them
/// is being removed).
#[inline]
unsafe fn __list_del(prev: *mut ListHead, next: *mut ListHead) {
    // SAFETY: the caller guarantees both nodes are valid.
    unsafe {
        (*next).prev = prev;
        (*prev).next = next;
    }
}

/// `__list_del_entry(entry)`: unlinks `entry` without touching its own pointers.
///
/// # Safety
/// `entry` must be a valid node currently on a list.
#[inline]
pub unsafe fn __list_del_entry(entry: *mut ListHead) {
    // SAFETY: the caller guarantees `entry` is linked, so its neighbours are valid.
    unsafe { __list_del((*entry).prev, (*entry).next) }
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

/// `list_del_init_careful(entry)`: [`list_del_init`] whose final store of `next` is a release,
/// pairing with [`list_empty_careful`] run without the lock (Linux's
/// `smp_store_release(&entry->next, entry)`).
///
/// # Safety
/// As [`list_del_init`].
#[inline]
pub unsafe fn list_del_init_careful(entry: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __list_del_entry(entry);
        (*entry).prev = entry;
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    // SAFETY: forwarded caller guarantee; the fence above orders the earlier stores first.
    unsafe { ptr::write_volatile(ptr::addr_of_mut!((*entry).next), entry) };
}

/// `list_replace(old, new)`: puts `new` where `old` is; `old`'s pointers are left stale.
///
/// # Safety
/// `old` must be linked (or an empty head), `new` valid and not linked.
#[inline]
pub unsafe fn list_replace(old: *mut ListHead, new: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*new).next = (*old).next;
        (*(*new).next).prev = new;
        (*new).prev = (*old).prev;
        (*(*new).prev).next = new;
    }
}

/// `list_replace_init(old, new)`: [`list_replace`], then reinitialises `old` as empty.
///
/// # Safety
/// As [`list_replace`].
#[inline]
pub unsafe fn list_replace_init(old: *mut ListHead, new: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        list_replace(old, new);
        ListHead::init(old);
    }
}

/// `list_swap(entry1, entry2)`: exchanges the positions of two entries (same list or not).
///
/// # Safety
/// Both entries must be valid linked nodes (not heads of the lists they are on).
#[inline]
pub unsafe fn list_swap(entry1: *mut ListHead, entry2: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let mut pos = (*entry2).prev;
        list_del(entry2);
        list_replace(entry1, entry2);
        if pos == entry1 {
            pos = entry2;
        }
        list_add(entry1, pos);
    }
}

/// `list_move(list, head)`: deletes `list` from its list and adds it after `head`.
///
/// # Safety
/// `list` must be linked, `head` an initialised node.
#[inline]
pub unsafe fn list_move(list: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __list_del_entry(list);
        list_add(list, head);
    }
}

/// `list_move_tail(list, head)`: deletes `list` from its list and adds it before `head`.
///
/// # Safety
/// As [`list_move`].
#[inline]
pub unsafe fn list_move_tail(list: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        __list_del_entry(list);
        list_add_tail(list, head);
    }
}

/// `list_bulk_move_tail(head, first, last)`: moves the run `first..=last` of one list to the
/// tail of `head`.
///
/// # Safety
/// `first..=last` must be a forward run of linked nodes on one list that does not contain
/// `head`; `head` must be initialised.
#[inline]
pub unsafe fn list_bulk_move_tail(head: *mut ListHead, first: *mut ListHead, last: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        (*(*first).prev).next = (*last).next;
        (*(*last).next).prev = (*first).prev;

        (*(*head).prev).next = first;
        (*first).prev = (*head).prev;

        (*last).next = head;
        (*head).prev = last;
    }
}

/// `list_is_first(list, head)`: whether `list` is the first entry of `head`.
///
/// # Safety
/// `list` must be valid and `head` initialised.
#[inline]
pub unsafe fn list_is_first(list: *const ListHead, head: *const ListHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { ptr::eq((*list).prev, head) }
}

/// `list_is_last(list, head)`: whether `list` is the last entry of `head`.
///
/// # Safety
/// As [`list_is_first`].
#[inline]
pub unsafe fn list_is_last(list: *const ListHead, head: *const ListHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { ptr::eq((*list).next, head) }
}

/// `list_is_head(list, head)`: whether `list` is the head itself (a pointer comparison).
#[inline]
pub fn list_is_head(list: *const ListHead, head: *const ListHead) -> bool {
    ptr::eq(list, head)
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

/// `list_empty_careful(head)`: whether the list is empty and no other CPU is half-way through
/// modifying it (both `next` and `prev` must point back at `head`).
///
/// # Safety
/// `head` must be a valid, initialised head.
#[inline]
pub unsafe fn list_empty_careful(head: *const ListHead) -> bool {
    // SAFETY: forwarded caller guarantee; the acquire pairs with `list_del_init_careful`.
    let next = unsafe { ptr::read_volatile(ptr::addr_of!((*head).next)) };
    core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
    // SAFETY: forwarded caller guarantee.
    ptr::eq(next, head) && ptr::eq(next, unsafe { (*head).prev })
}

/// `list_rotate_left(head)`: moves the first entry to the tail.
///
/// # Safety
/// `head` must be a valid, initialised head.
#[inline]
pub unsafe fn list_rotate_left(head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !list_empty(head) {
            list_move_tail((*head).next, head);
        }
    }
}

/// `list_rotate_to_front(list, head)`: rotates so that `list` becomes the first entry.
///
/// # Safety
/// `list` must be an entry of `head`.
#[inline]
pub unsafe fn list_rotate_to_front(list: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee. Moving the head to just before `list` makes `list`
    // its next entry.
    unsafe { list_move_tail(head, list) }
}

/// `list_is_singular(head)`: whether the list has exactly one entry.
///
/// # Safety
/// `head` must be a valid, initialised head.
#[inline]
pub unsafe fn list_is_singular(head: *const ListHead) -> bool {
    // SAFETY: forwarded caller guarantee.
    unsafe { !list_empty(head) && ptr::eq((*head).next, (*head).prev) }
}

/// # Safety
/// `head` must be a valid, non-empty list with `entry` on it, and `list` valid for writes and free
/// to be overwritten (it becomes the head of the cut-off part).
#[inline]
unsafe fn __list_cut_position(list: *mut ListHead, head: *mut ListHead, entry: *mut ListHead) {
    // SAFETY: the caller guarantees `entry` is on `head` and `list` may be overwritten.
    unsafe {
        let new_first = (*entry).next;
        (*list).next = (*head).next;
        (*(*list).next).prev = list;
        (*list).prev = entry;
        (*entry).next = list;
        (*head).next = new_first;
        (*new_first).prev = head;
    }
}

/// `list_cut_position(list, head, entry)`: moves the entries of `head` up to and including
/// `entry` to `list` (whose old contents are overwritten). If `entry` is `head` itself the
/// result is an empty `list`.
///
/// # Safety
/// `entry` must be `head` or on `head`; `list` must be valid and hold no entries worth keeping.
#[inline]
pub unsafe fn list_cut_position(list: *mut ListHead, head: *mut ListHead, entry: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if list_empty(head) {
            return;
        }
        if list_is_singular(head) && !ptr::eq((*head).next, entry) && !ptr::eq(head, entry) {
            return;
        }
        if ptr::eq(entry, head) {
            ListHead::init(list);
        } else {
            __list_cut_position(list, head, entry);
        }
    }
}

/// `list_cut_before(list, head, entry)`: moves the entries of `head` before `entry` (not
/// including it) to `list`. If `entry` is the first entry, `list` becomes empty.
///
/// # Safety
/// As [`list_cut_position`].
#[inline]
pub unsafe fn list_cut_before(list: *mut ListHead, head: *mut ListHead, entry: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if ptr::eq((*head).next, entry) {
            ListHead::init(list);
            return;
        }
        (*list).next = (*head).next;
        (*(*list).next).prev = list;
        (*list).prev = (*entry).prev;
        (*(*list).prev).next = list;
        (*head).next = entry;
        (*entry).prev = head;
    }
}

/// # Safety
/// `list` must be a valid, non-empty list head, `prev` and `next` valid and adjacent on another
/// list (`prev.next == next`); `list`'s nodes move there and `list` is left stale.
#[inline]
unsafe fn __list_splice(list: *const ListHead, prev: *mut ListHead, next: *mut ListHead) {
    // SAFETY: the caller guarantees `list` is non-empty and `prev`/`next` adjacent.
    unsafe {
        let first = (*list).next;
        let last = (*list).prev;
        (*first).prev = prev;
        (*prev).next = first;
        (*last).next = next;
        (*next).prev = last;
    }
}

/// `list_splice(list, head)`: joins the entries of `list` after `head` (stack order). `list`
/// itself is left stale.
///
/// # Safety
/// Both must be valid initialised heads of different lists.
#[inline]
pub unsafe fn list_splice(list: *const ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !list_empty(list) {
            __list_splice(list, head, (*head).next);
        }
    }
}

/// `list_splice_tail(list, head)`: joins the entries of `list` before `head` (queue order).
///
/// # Safety
/// As [`list_splice`].
#[inline]
pub unsafe fn list_splice_tail(list: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !list_empty(list) {
            __list_splice(list, (*head).prev, head);
        }
    }
}

/// `list_splice_init(list, head)`: [`list_splice`], then reinitialises `list` as empty.
///
/// # Safety
/// As [`list_splice`].
#[inline]
pub unsafe fn list_splice_init(list: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !list_empty(list) {
            __list_splice(list, head, (*head).next);
            ListHead::init(list);
        }
    }
}

/// `list_splice_tail_init(list, head)`: [`list_splice_tail`], then reinitialises `list`.
///
/// # Safety
/// As [`list_splice`].
#[inline]
pub unsafe fn list_splice_tail_init(list: *mut ListHead, head: *mut ListHead) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        if !list_empty(list) {
            __list_splice(list, (*head).prev, head);
            ListHead::init(list);
        }
    }
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

/// `list_entry(ptr, type, member)`: the struct containing the node (`container_of`).
#[macro_export]
macro_rules! list_entry {
    ($ptr:expr, $ty:ty, $field:ident) => {
        $crate::container_of!($ptr, $ty, $field)
    };
}

/// `list_first_entry(head, type, member)`: the struct of the first entry (the list must not be
/// empty). Must be used inside `unsafe`.
#[macro_export]
macro_rules! list_first_entry {
    ($head:expr, $ty:ty, $field:ident) => {
        $crate::container_of!((*$head).next, $ty, $field)
    };
}

/// `list_last_entry(head, type, member)`: the struct of the last entry (the list must not be
/// empty). Must be used inside `unsafe`.
#[macro_export]
macro_rules! list_last_entry {
    ($head:expr, $ty:ty, $field:ident) => {
        $crate::container_of!((*$head).prev, $ty, $field)
    };
}

/// `list_first_entry_head, type, member`: `Option<*mut type>` of the first entry.
/// Must be used inside `unsafe`.
#[macro_export]
macro_rules! list_first_entry_or_null {
    ($head:expr, $ty:ty, $field:ident) => {
        $crate::list::list_first($head).map(|n| $crate::container_of!(n, $ty, $field))
    };
}

/// `list_next_entry(pos, member)` with the type spelled out: the struct after `pos`.
/// Must be used inside `unsafe`.
#[macro_export]
macro_rules! list_next_entry {
    ($pos:expr, $ty:ty, $field:ident) => {
        $crate::container_of!((*$pos).$field.next, $ty, $field)
    };
}

/// `list_prev_entry(pos, member)` with the type spelled out: the struct before `pos`.
/// Must be used inside `unsafe`.
#[macro_export]
macro_rules! list_prev_entry {
    ($pos:expr, $ty:ty, $field:ident) => {
        $crate::container_of!((*$pos).$field.prev, $ty, $field)
    };
}

/// `list_entry_is_head(pos, head, member)`: whether the entry pointer `pos` is really the head.
#[macro_export]
macro_rules! list_entry_is_head {
    ($pos:expr, $head:expr, $ty:ty, $field:ident) => {
        ::core::ptr::eq(
            ($pos as *const $ty)
                .cast::<u8>()
                .wrapping_add(::core::mem::offset_of!($ty, $field)),
            ($head as *const $crate::list::ListHead).cast::<u8>(),
        )
    };
}
