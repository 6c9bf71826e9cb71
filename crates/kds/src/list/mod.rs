//! Intrusive circular doubly linked lists, as in `<linux/list.h>` and `lib/list_sort.c`.
//!
//! # Raw layer
//! [`ListHead`] is `struct list_head`: two pointers, embedded in the structures it links. An
//! empty list is a head whose `next` and `prev` point at itself, so a head must not move once
//! initialised ([`ListHead::init`], `INIT_LIST_HEAD`). The free functions carry Linux's names
//! and argument order (`list_add(new, head)`) and are `unsafe`: the caller guarantees that
//! every pointer is valid, pinned, and not concurrently accessed. The `list_for_each*` family
//! are iterator constructors ([`list_for_each`], [`list_for_each_entry`], ...), and the
//! [`list_for_each_entry!`](crate::list_for_each_entry) macro family supplies the
//! `container_of` offset the way Linux's macros take `member`.
//!
//! # Safe layer
//! [`List`] holds items of one type, linked through a [`Link`] field named by an [`Adapter`]
//! (declare one with [`define_list_adapter!`](crate::define_list_adapter)). The list borrows
//! its items for its lifetime `'a`, rejects an item that is already linked, unlinks everything
//! when dropped, and offers iterators, a [`CursorMut`] and a stable [`List::sort_by`]. Its
//! links are the same [`ListHead`]s, but it keeps its ends in the `List` value instead of a
//! circular head (see [`List`] for why), so it needs no pinning.
//!
//! # Invariants
//! For every initialised node `n` on a list: `(*(*n).next).prev == n` and
//! `(*(*n).prev).next == n`. A node removed with [`list_del`] has both pointers set to the
//! poison values [`LIST_POISON1`]/[`LIST_POISON2`], as Linux does, so use after removal is
//! detectable. In the safe layer a [`Link`] whose `next` is a private "unlinked" marker (a
//! non-null address never dereferenced) is on no list; any other value (a neighbour, or null at
//! the end of the chain) means it is on exactly one list.
//!
//! # Locking
//! None: like Linux's lists, the caller serialises all access to one list (a lock around it,
//! or exclusive ownership). The safe [`List`] is `!Sync` and `!Send`.

mod iter;
mod raw;
mod safe;
mod sort;

pub use iter::*;
pub use raw::*;
pub use safe::*;
pub use sort::*;

#[cfg(test)]
mod tests {
    use super::*;

    struct Node {
        v: u32,
        link: Link,
    }
    crate::define_list_adapter!(NodeLink = Node { link });

    #[test]
    fn safe_list_rejects_foreign_items_and_moves() {
        let items: [Node; 3] = core::array::from_fn(|i| Node {
            v: i as u32,
            link: Link::new(),
        });
        let mut a = List::<NodeLink>::new();
        let mut b = List::<NodeLink>::new();
        assert!(a.push_back(&items[0]).is_ok());
        assert!(a.push_back(&items[1]).is_ok());
        // An item of list `a` can be neither added to nor removed from list `b`.
        assert!(b.push_back(&items[0]).is_err());
        assert!(b.remove(&items[0]).is_none());
        assert_eq!(a.len(), 2);
        // Lists may move while holding items (no self-pointers).
        let mut moved = a;
        assert!(moved.push_front(&items[2]).is_ok());
        let order: [u32; 3] = {
            let mut it = moved.iter().map(|n| n.v);
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(order, [2, 0, 1]);
        b.append(&mut moved);
        assert!(moved.is_empty());
        assert_eq!(b.iter().rev().map(|n| n.v).next(), Some(1));
        drop(b);
        assert!(items.iter().all(|n| !n.link.is_linked()));
    }

    #[repr(C)]
    struct Item {
        val: u32,
        link: ListHead,
    }

    #[test]
    fn add_del_order() {
        let mut head = ListHead::new();
        let mut items: [Item; 3] = core::array::from_fn(|i| Item {
            val: i as u32,
            link: ListHead::new(),
        });
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
