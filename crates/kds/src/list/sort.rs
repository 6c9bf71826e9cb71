//! `list_sort` (lib/list_sort.c): a stable bottom-up merge sort over raw lists.

use core::ptr;

use super::*;

/// Merges two null-terminated `next`-chains, `a` holding the earlier elements; on ties `a`
/// wins, which is what makes the sort stable. Only `next` pointers are maintained.
#[inline]
unsafe fn merge<F>(cmp: &mut F, mut a: *mut ListHead, mut b: *mut ListHead) -> *mut ListHead
where
    F: FnMut(*const ListHead, *const ListHead) -> i32,
{
    let mut head: *mut ListHead = ptr::null_mut();
    let mut tail: *mut *mut ListHead = &mut head;
    // SAFETY: the caller guarantees both chains consist of valid nodes; `tail` always points
    // at `head` or at the `next` field of the last node taken.
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

/// `list_sort(priv, head, cmp)`: sorts the list stably with a comparison callback.
///
/// `cmp(a, b)` returns a value `> 0` when `a` must come after `b` and `<= 0` otherwise (Linux's
/// convention, so a callback returning `a - b` works; `priv` is whatever the closure
/// captures). Equal elements keep their order.
///
/// This is a bottom-up merge sort (see lib/list_sort.c for Linux's own variant): elements are
/// taken one at a time and merged into a binary counter of sorted runs of sizes 2^i, then the
/// runs are merged from the smallest. It runs in O(n log n) comparisons, allocates nothing (the
/// counter is 64 pointers on the stack, enough for any address space), and the run sizes stay
/// powers of two so merges are balanced. `prev` pointers are rebuilt in one final pass.
///
/// # Safety
/// `head` must be a valid, initialised head whose nodes are all valid; `cmp` must not modify
/// the list.
pub unsafe fn list_sort<F>(head: *mut ListHead, mut cmp: F)
where
    F: FnMut(*const ListHead, *const ListHead) -> i32,
{
    // SAFETY: forwarded caller guarantee; each node is in exactly one of `list`, `runs` or the
    // `carry` chain at any time.
    unsafe {
        let first = (*head).next;
        if first == (*head).prev {
            return; // zero or one element
        }
        // Turn the list into a null-terminated chain.
        (*(*head).prev).next = ptr::null_mut();
        let mut runs: [*mut ListHead; 64] = [ptr::null_mut(); 64];
        let mut max = 0;
        let mut list = first;
        while !list.is_null() {
            let mut carry = list;
            list = (*list).next;
            (*carry).next = ptr::null_mut();
            let mut i = 0;
            // Older runs sit in `runs[i]`, so they are the left operand.
            while !runs[i].is_null() {
                carry = merge(&mut cmp, runs[i], carry);
                runs[i] = ptr::null_mut();
                i += 1;
            }
            runs[i] = carry;
            if i >= max {
                max = i + 1;
            }
        }
        // Lower slots hold newer elements: fold them into the older, higher ones.
        let mut result: *mut ListHead = ptr::null_mut();
        for run in runs.iter().take(max) {
            if !run.is_null() {
                result = if result.is_null() {
                    *run
                } else {
                    merge(&mut cmp, *run, result)
                };
            }
        }
        // Rebuild the circular doubly linked list.
        let mut prev = head;
        let mut n = result;
        while !n.is_null() {
            (*prev).next = n;
            (*n).prev = prev;
            prev = n;
            n = (*n).next;
        }
        (*prev).next = head;
        (*head).prev = prev;
    }
}
