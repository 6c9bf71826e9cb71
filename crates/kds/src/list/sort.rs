//! `list_sort` (lib/list_sort.c): a stable bottom-up merge sort over raw lists, with Linux's
//! merge schedule.
//!
//! Linux (since 5.4, lib/list_sort.c) keeps pending sorted runs whose sizes are powers of two
//! and merges two runs of size 2^k only once a third run of that size has begun to form, so
//! every merge is at worst 2:1 unbalanced ("deferred merges"). The number of comparisons is
//! observable through the callback and is part of the contract; kmem's tests check it against
//! an independent model of that schedule and against hand-counted small cases.

use core::ptr;

use super::*;

/// Merges two null-terminated `next`-chains, `a` holding the earlier elements; on ties `a`
/// wins, which is what makes the sort stable. Only `next` pointers are maintained.
///
/// # Safety
/// `a` and `b` must be non-empty, null-terminated `next`-chains of valid nodes, disjoint, and used
/// by nothing else during the merge; `cmp` is called only with nodes of the two chains.
#[inline]
unsafe fn merge<F>(cmp: &mut F, mut a: *mut ListHead, mut b: *mut ListHead) -> *mut ListHead
where
    F: FnMut(*const ListHead, *const ListHead) -> i32,
{
    let mut head: *mut ListHead = ptr::null_mut();
    let mut tail: *mut *mut ListHead = &mut head;
    // SAFETY: the caller guarantees both chains consist of valid, non-empty sequences of nodes;
    // `tail` always points at `head` or at the `next` field of the last node taken, both of
    // which are live for the whole loop.
    unsafe {
        loop {
            if cmp(a, b) <= 0 {
                *tail = a;
                tail = ptr::addr_of_mut!((*a).next);
                a = (*a).next;
                if a.is_null() {
                    *tail = b;
                    break;
                }
            } else {
                *tail = b;
                tail = ptr::addr_of_mut!((*b).next);
                b = (*b).next;
                if b.is_null() {
                    *tail = a;
                    break;
                }
            }
        }
    }
    head
}

/// The last merge: merges the chains `a` (earlier) and `b` and rebuilds the circular doubly
/// linked list under `head` at the same time, as lib/list_sort.c's `merge_final` does —
/// including its one quirk visible to the callback: while it relinks a long leftover tail it
/// calls `cmp(b, b)` once every 256 elements (Linux does so to give the callback a chance to
/// `cond_resched()`).
///
/// # Safety
/// `head` must be a valid list head the sort owns, and `a`, `b` non-empty, null-terminated,
/// disjoint `next`-chains of valid nodes used by nothing else; on return every node is linked into
/// `head`'s circular list.
unsafe fn merge_final<F>(
    cmp: &mut F,
    head: *mut ListHead,
    mut a: *mut ListHead,
    mut b: *mut ListHead,
) where
    F: FnMut(*const ListHead, *const ListHead) -> i32,
{
    let mut tail = head;
    // SAFETY: `head` is the valid list head and `a`, `b` valid non-empty null-terminated
    // chains of valid nodes (caller's guarantee); every node is written once as it is linked
    // after `tail`.
    unsafe {
        loop {
            if cmp(a, b) <= 0 {
                (*tail).next = a;
                (*a).prev = tail;
                tail = a;
                a = (*a).next;
                if a.is_null() {
                    break;
                }
            } else {
                (*tail).next = b;
                (*b).prev = tail;
                tail = b;
                b = (*b).next;
                if b.is_null() {
                    b = a;
                    break;
                }
            }
        }
        // Splice the rest (`b`) and rebuild its `prev` links.
        (*tail).next = b;
        let mut count: u8 = 0;
        while !b.is_null() {
            count = count.wrapping_add(1);
            if count == 0 {
                cmp(b, b);
            }
            (*b).prev = tail;
            tail = b;
            b = (*b).next;
        }
        (*tail).next = head;
        (*head).prev = tail;
    }
}

/// `list_sort(priv, head, cmp)`: sorts the list stably with a comparison callback.
///
/// `cmp(a, b)` returns a value `> 0` when `a` must come after `b` and `<= 0` otherwise (Linux's
/// convention, so a callback returning `a - b` works; `priv` is whatever the closure
/// captures). Equal elements keep their order.
///
/// The schedule is Linux's: elements are pushed one at a time onto a stack of pending sorted
/// runs (linked through `prev`, each run a null-terminated `next` chain). Before the element
/// numbered `count` is pushed, the two runs just above the position of the lowest clear bit of
/// `count` are merged, unless `count + 1` is a power of two. This keeps every merge at most 2:1
/// unbalanced while letting runs stay cache-sized, and needs no stack array: it allocates
/// nothing. At the end the pending runs are merged from the newest, and the last merge rebuilds
/// the `prev` links. O(n log n) comparisons; `n log2 n - 1.2 n` on average, as Linux documents.
///
/// # Safety
/// `head` must be a valid, initialised head whose nodes are all valid; `cmp` must not modify
/// the list.
pub unsafe fn list_sort<F>(head: *mut ListHead, mut cmp: F)
where
    F: FnMut(*const ListHead, *const ListHead) -> i32,
{
    // SAFETY: forwarded caller guarantee; each node is in exactly one of `list` (the
    // unsorted rest) or one pending run at any time, and every pointer followed below was
    // written in this function or belongs to the caller's valid list.
    unsafe {
        let mut list = (*head).next;
        if list == (*head).prev {
            return; // zero or one element
        }
        (*(*head).prev).next = ptr::null_mut();
        let mut pending: *mut ListHead = ptr::null_mut();
        let mut count: usize = 0;
        loop {
            // Find the run to merge: skip one pending run per trailing one bit of `count`.
            let mut tail: *mut *mut ListHead = &mut pending;
            let mut bits = count;
            while bits & 1 != 0 {
                tail = ptr::addr_of_mut!((**tail).prev);
                bits >>= 1;
            }
            if bits != 0 {
                let a = *tail;
                let b = (*a).prev;
                let merged = merge(&mut cmp, b, a);
                (*merged).prev = (*b).prev;
                *tail = merged;
            }
            // Push the next element as a run of one.
            (*list).prev = pending;
            pending = list;
            list = (*list).next;
            (*pending).next = ptr::null_mut();
            count += 1;
            if list.is_null() {
                break;
            }
        }
        // Merge all pending runs, newest first, keeping the oldest for the final merge.
        list = pending;
        pending = (*pending).prev;
        loop {
            let next = (*pending).prev;
            if next.is_null() {
                break;
            }
            list = merge(&mut cmp, pending, list);
            pending = next;
        }
        merge_final(&mut cmp, head, pending, list);
    }
}
