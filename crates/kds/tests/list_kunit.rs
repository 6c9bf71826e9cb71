//! The cases of Linux's lib/tests/list-test.c (list, hlist and klist suites) and
//! lib/tests/test_list_sort.c, restated against kds's raw layer. Each test names the KUnit
//! case it mirrors; the expected orders are Linux's.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use core::ptr::{addr_of_mut, null_mut};
use kds::container_of;
use kds::list::*;

fn heads<const N: usize>() -> [ListHead; N] {
    core::array::from_fn(|_| ListHead::new())
}

/// Collects the nodes of a list, first to last.
///
/// # Safety
/// `head` must be a valid, initialised list head whose nodes are all live and not modified during
/// the call.
unsafe fn nodes(head: *const ListHead) -> Vec<*mut ListHead> {
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe { list_for_each(head) }.collect()
}

fn p(h: &mut ListHead) -> *mut ListHead {
    h
}

#[repr(C)]
struct TestStruct {
    data: i32,
    list: ListHead,
}

fn structs<const N: usize>() -> [TestStruct; N] {
    core::array::from_fn(|i| TestStruct {
        data: i as i32,
        list: ListHead::new(),
    })
}

// --- list-kunit-test ------------------------------------------------------------------------

#[test]
fn list_init() {
    // Heads built every way (const value, INIT_LIST_HEAD over garbage) are all empty.
    let mut l1 = ListHead::new();
    let mut l2 = ListHead {
        next: 0xffff_ffff as *mut ListHead,
        prev: 0xffff_ffff as *mut ListHead,
    };
    let mut boxed = Box::new(ListHead::new());
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut l1);
        INIT_LIST_HEAD(&mut l2);
        ListHead::init(&mut *boxed);
        assert!(list_empty_careful(&l1));
        assert!(list_empty_careful(&l2));
        assert!(list_empty_careful(&*boxed));
    }
}

#[test]
fn list_add_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add(&mut a, &mut list);
        list_add(&mut b, &mut list);
        // [list] -> b -> a
        assert_eq!(list.next, p(&mut b));
        assert_eq!(b.prev, p(&mut list));
        assert_eq!(b.next, p(&mut a));
    }
}

#[test]
fn list_add_tail_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        assert_eq!(list.next, p(&mut a));
        assert_eq!(a.prev, p(&mut list));
        assert_eq!(a.next, p(&mut b));
    }
}

#[test]
fn list_del_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        list_del(&mut a);
        assert_eq!(list.next, p(&mut b));
        assert_eq!(b.prev, p(&mut list));
        assert_eq!((a.next, a.prev), (LIST_POISON1, LIST_POISON2));
    }
}

#[test]
fn list_replace_case() {
    let [mut a_old, mut a_new, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a_old, &mut list);
        list_add_tail(&mut b, &mut list);
        list_replace(&mut a_old, &mut a_new);
        assert_eq!(list.next, p(&mut a_new));
        assert_eq!(b.prev, p(&mut a_new));
        assert_eq!(a_new.next, p(&mut b));
        assert_eq!(a_new.prev, p(&mut list));
    }
}

#[test]
fn list_replace_init_case() {
    let [mut a_old, mut a_new, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a_old, &mut list);
        list_add_tail(&mut b, &mut list);
        list_replace_init(&mut a_old, &mut a_new);
        assert_eq!(list.next, p(&mut a_new));
        assert_eq!(b.prev, p(&mut a_new));
        assert_eq!(a_new.next, p(&mut b));
        assert_eq!(a_new.prev, p(&mut list));
        assert!(list_empty_careful(&a_old));
    }
}

#[test]
fn list_swap_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        list_swap(&mut a, &mut b);
        // [list] -> b -> a
        assert_eq!(list.next, p(&mut b));
        assert_eq!(list.prev, p(&mut a));
        assert_eq!(b.next, p(&mut a));
        assert_eq!(b.prev, p(&mut list));
        assert_eq!(a.next, p(&mut list));
        assert_eq!(a.prev, p(&mut b));
    }
}

#[test]
fn list_del_init_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        list_del_init(&mut a);
        assert_eq!(list.next, p(&mut b));
        assert_eq!(b.prev, p(&mut list));
        assert!(list_empty_careful(&a));
    }
}

#[test]
fn list_del_init_careful_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        list_del_init_careful(&mut a);
        assert_eq!(list.next, p(&mut b));
        assert_eq!(b.prev, p(&mut list));
        assert!(list_empty_careful(&a));
    }
}

#[test]
fn list_move_case() {
    let [mut a, mut b, mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list1);
        ListHead::init(&mut list2);
        list_add_tail(&mut a, &mut list1);
        list_add_tail(&mut b, &mut list2);
        list_move(&mut a, &mut list2);
        assert!(list_empty(&list1));
        assert_eq!(list2.next, p(&mut a));
        assert_eq!(a.next, p(&mut b));
    }
}

#[test]
fn list_move_tail_case() {
    let [mut a, mut b, mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list1);
        ListHead::init(&mut list2);
        list_add_tail(&mut a, &mut list1);
        list_add_tail(&mut b, &mut list2);
        list_move_tail(&mut a, &mut list2);
        assert!(list_empty(&list1));
        assert_eq!(list2.next, p(&mut b));
        assert_eq!(b.next, p(&mut a));
    }
}

#[test]
fn list_bulk_move_tail_case() {
    let [mut a, mut b, mut c, mut d, mut x, mut y, mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list1);
        ListHead::init(&mut list2);
        list_add_tail(&mut x, &mut list1);
        list_add_tail(&mut y, &mut list1);
        for n in [&mut a, &mut b, &mut c, &mut d] {
            list_add_tail(n, &mut list2);
        }
        list_bulk_move_tail(&mut y, &mut b, &mut c);
        assert_eq!(nodes(&list1), [p(&mut x), p(&mut b), p(&mut c), p(&mut y)]);
        assert_eq!(nodes(&list2), [p(&mut a), p(&mut d)]);
    }
}

#[test]
fn list_is_head_case() {
    let [mut a, mut b, mut c] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut a);
        ListHead::init(&mut c);
        list_add_tail(&mut b, &mut a);
    }
    assert!(list_is_head(&a, &a), "head element of same list");
    assert!(!list_is_head(&b, &a), "non-head element of same list");
    assert!(!list_is_head(&c, &a), "head element of different list");
}

#[test]
fn list_is_first_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        assert!(list_is_first(&a, &list));
        assert!(!list_is_first(&b, &list));
    }
}

#[test]
fn list_is_last_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        assert!(!list_is_last(&a, &list));
        assert!(list_is_last(&b, &list));
    }
}

#[test]
fn list_empty_case() {
    let [mut a, mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list1);
        ListHead::init(&mut list2);
        list_add_tail(&mut a, &mut list1);
        assert!(!list_empty(&list1));
        assert!(list_empty(&list2));
    }
}

#[test]
fn list_empty_careful_case() {
    let [mut a, mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list1);
        ListHead::init(&mut list2);
        list_add_tail(&mut a, &mut list1);
        assert!(!list_empty_careful(&list1));
        assert!(list_empty_careful(&list2));
    }
}

#[test]
fn list_rotate_left_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        list_add_tail(&mut a, &mut list);
        list_add_tail(&mut b, &mut list);
        list_rotate_left(&mut list);
        assert_eq!(list.next, p(&mut b));
        assert_eq!(b.prev, p(&mut list));
        assert_eq!(b.next, p(&mut a));
    }
}

#[test]
fn list_rotate_to_front_case() {
    let [mut a, mut b, mut c, mut d, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        for n in [&mut a, &mut b, &mut c, &mut d] {
            list_add_tail(n, &mut list);
        }
        list_rotate_to_front(&mut c, &mut list);
        assert_eq!(nodes(&list), [p(&mut c), p(&mut d), p(&mut a), p(&mut b)]);
    }
}

#[test]
fn list_is_singular_case() {
    let [mut a, mut b, mut list] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        assert!(!list_is_singular(&list));
        list_add_tail(&mut a, &mut list);
        assert!(list_is_singular(&list));
        list_add_tail(&mut b, &mut list);
        assert!(!list_is_singular(&list));
    }
}

/// Builds `[list1] -> e0 -> e1 -> e2` and returns the entry addresses.
///
/// # Safety
/// `e` and `list1` must not move while linked (the returned pointers and the list refer to them);
/// `list1` is (re)initialised, any list it was on is forgotten.
unsafe fn three(e: &mut [ListHead; 3], list1: &mut ListHead) -> [*mut ListHead; 3] {
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(list1);
        for n in e.iter_mut() {
            list_add_tail(n, list1);
        }
    }
    [addr_of_mut!(e[0]), addr_of_mut!(e[1]), addr_of_mut!(e[2])]
}

#[test]
fn list_cut_position_case() {
    let mut e = heads::<3>();
    let [mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = three(&mut e, &mut list1);
        ListHead::init(&mut list2);
        list_cut_position(&mut list2, &mut list1, ep[1]);
        assert_eq!(nodes(&list2), [ep[0], ep[1]]);
        assert_eq!(nodes(&list1), [ep[2]]);
    }
}

#[test]
fn list_cut_before_case() {
    let mut e = heads::<3>();
    let [mut list1, mut list2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = three(&mut e, &mut list1);
        ListHead::init(&mut list2);
        list_cut_before(&mut list2, &mut list1, ep[1]);
        assert_eq!(nodes(&list2), [ep[0]]);
        assert_eq!(nodes(&list1), [ep[1], ep[2]]);
    }
}

/// Builds `[list1] -> e0 -> e1 -> e4` and `[list2] -> e2 -> e3`.
///
/// # Safety
/// `e`, `list1` and `list2` must not move while linked (the returned pointers and the lists refer
/// to them); both heads are (re)initialised.
unsafe fn five(
    e: &mut [ListHead; 5],
    list1: &mut ListHead,
    list2: &mut ListHead,
) -> [*mut ListHead; 5] {
    let ep: [*mut ListHead; 5] = core::array::from_fn(|i| addr_of_mut!(e[i]));
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(list1);
        ListHead::init(list2);
        list_add_tail(ep[0], list1);
        list_add_tail(ep[1], list1);
        list_add_tail(ep[2], list2);
        list_add_tail(ep[3], list2);
        list_add_tail(ep[4], list1);
    }
    ep
}

#[test]
fn list_splice_case() {
    let mut e = heads::<5>();
    let [mut l1, mut l2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = five(&mut e, &mut l1, &mut l2);
        list_splice(&l2, ep[1]);
        assert_eq!(nodes(&l1), ep);
    }
}

#[test]
fn list_splice_tail_case() {
    let mut e = heads::<5>();
    let [mut l1, mut l2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = five(&mut e, &mut l1, &mut l2);
        list_splice_tail(&mut l2, ep[4]);
        assert_eq!(nodes(&l1), ep);
    }
}

#[test]
fn list_splice_init_case() {
    let mut e = heads::<5>();
    let [mut l1, mut l2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = five(&mut e, &mut l1, &mut l2);
        list_splice_init(&mut l2, ep[1]);
        assert_eq!(nodes(&l1), ep);
        assert!(list_empty_careful(&l2));
    }
}

#[test]
fn list_splice_tail_init_case() {
    let mut e = heads::<5>();
    let [mut l1, mut l2] = heads();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = five(&mut e, &mut l1, &mut l2);
        list_splice_tail_init(&mut l2, ep[4]);
        assert_eq!(nodes(&l1), ep);
        assert!(list_empty_careful(&l2));
    }
}

#[test]
fn list_entry_case() {
    let mut s = TestStruct {
        data: 0,
        list: ListHead::new(),
    };
    let sp: *mut TestStruct = &mut s;
    assert_eq!(kds::list_entry!(&mut s.list, TestStruct, list), sp);
}

#[test]
fn list_entry_is_head_case() {
    let [mut s1, mut s2, mut s3] = structs::<3>();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut s1.list);
        ListHead::init(&mut s3.list);
        list_add_tail(&mut s2.list, &mut s1.list);
    }
    let head: *const ListHead = &s1.list;
    assert!(
        kds::list_entry_is_head!(&s1, head, TestStruct, list),
        "head element of same list"
    );
    assert!(
        !kds::list_entry_is_head!(&s2, head, TestStruct, list),
        "non-head element"
    );
    assert!(
        !kds::list_entry_is_head!(&s3, head, TestStruct, list),
        "head of different list"
    );
}

/// `[list] -> s1 -> s2`
///
/// # Safety
/// `s` and `list` must not move while linked (the returned pointers and the list refer to them);
/// `list` is (re)initialised.
unsafe fn two_structs(s: &mut [TestStruct; 2], list: &mut ListHead) -> [*mut TestStruct; 2] {
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(list);
        list_add_tail(&mut s[0].list, list);
        list_add_tail(&mut s[1].list, list);
    }
    [addr_of_mut!(s[0]), addr_of_mut!(s[1])]
}

#[test]
fn list_first_entry_case() {
    let mut s = structs::<2>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let sp = two_structs(&mut s, &mut list);
        assert_eq!(kds::list_first_entry!(&list, TestStruct, list), sp[0]);
    }
}

#[test]
fn list_last_entry_case() {
    let mut s = structs::<2>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let sp = two_structs(&mut s, &mut list);
        assert_eq!(kds::list_last_entry!(&list, TestStruct, list), sp[1]);
    }
}

#[test]
fn list_first_entry_or_null_case() {
    let mut s = structs::<2>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        assert_eq!(
            kds::list_first_entry_or_null!(&list, TestStruct, list),
            None
        );
        let sp = two_structs(&mut s, &mut list);
        assert_eq!(
            kds::list_first_entry_or_null!(&list, TestStruct, list),
            Some(sp[0])
        );
    }
}

#[test]
fn list_next_entry_case() {
    let mut s = structs::<2>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let sp = two_structs(&mut s, &mut list);
        assert_eq!(kds::list_next_entry!(sp[0], TestStruct, list), sp[1]);
    }
}

#[test]
fn list_prev_entry_case() {
    let mut s = structs::<2>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let sp = two_structs(&mut s, &mut list);
        assert_eq!(kds::list_prev_entry!(sp[1], TestStruct, list), sp[0]);
    }
}

#[test]
fn list_for_each_case() {
    let mut e = heads::<3>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = three(&mut e, &mut list);
        let mut i = 0;
        for cur in list_for_each(&list) {
            assert_eq!(cur, ep[i]);
            i += 1;
        }
        assert_eq!(i, 3);
    }
}

#[test]
fn list_for_each_prev_case() {
    let mut e = heads::<3>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = three(&mut e, &mut list);
        let mut i = 2i32;
        for cur in list_for_each_prev(&list) {
            assert_eq!(cur, ep[i as usize]);
            i -= 1;
        }
        assert_eq!(i, -1);
    }
}

#[test]
fn list_for_each_safe_case() {
    let mut e = heads::<3>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = three(&mut e, &mut list);
        let mut i = 0;
        for cur in list_for_each_safe(&list) {
            assert_eq!(cur, ep[i]);
            list_del(cur);
            i += 1;
        }
        assert_eq!(i, 3);
        assert!(list_empty(&list));
    }
}

#[test]
fn list_for_each_prev_safe_case() {
    let mut e = heads::<3>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        let ep = three(&mut e, &mut list);
        let mut i = 2i32;
        for cur in list_for_each_prev_safe(&list) {
            assert_eq!(cur, ep[i as usize]);
            list_del(cur);
            i -= 1;
        }
        assert_eq!(i, -1);
        assert!(list_empty(&list));
    }
}

#[test]
fn list_for_each_entry_case() {
    let mut s = structs::<5>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        for x in s.iter_mut() {
            list_add_tail(&mut x.list, &mut list);
        }
        let mut i = 0;
        for cur in kds::list_for_each_entry!(&list, TestStruct, list) {
            assert_eq!((*cur).data, i);
            i += 1;
        }
        assert_eq!(i, 5);
    }
}

#[test]
fn list_for_each_entry_reverse_case() {
    let mut s = structs::<5>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        for x in s.iter_mut() {
            list_add_tail(&mut x.list, &mut list);
        }
        let mut i = 4;
        for cur in kds::list_for_each_entry!(reverse & list, TestStruct, list) {
            assert_eq!((*cur).data, i);
            i -= 1;
        }
        assert_eq!(i, -1);
    }
}

// Beyond list-test.c: the iterator variants it does not cover.

#[test]
fn list_for_each_entry_continue_from_safe() {
    let mut s = structs::<5>();
    let mut list = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut list);
        for x in s.iter_mut() {
            list_add_tail(&mut x.list, &mut list);
        }
        let start: *mut TestStruct = &mut s[1];
        let cont: Vec<i32> = kds::list_for_each_entry!(continue start, &list, TestStruct, list)
            .map(|e| (*e).data)
            .collect();
        assert_eq!(cont, [2, 3, 4]);
        let from: Vec<i32> = kds::list_for_each_entry!(from start, &list, TestStruct, list)
            .map(|e| (*e).data)
            .collect();
        assert_eq!(from, [1, 2, 3, 4]);
        let back: Vec<i32> =
            kds::list_for_each_entry!(continue_reverse start, &list, TestStruct, list)
                .map(|e| (*e).data)
                .collect();
        assert_eq!(back, [0]);
        // _safe: delete the odd entries while walking; _safe_reverse sees the rest.
        for e in kds::list_for_each_entry!(safe & list, TestStruct, list) {
            if (*e).data % 2 == 1 {
                list_del(addr_of_mut!((*e).list));
            }
        }
        let rest: Vec<i32> = kds::list_for_each_entry!(safe_reverse & list, TestStruct, list)
            .map(|e| (*e).data)
            .collect();
        assert_eq!(rest, [4, 2, 0]);
        assert_eq!(list_count_nodes(&list), 3);
        // list_for_each_continue over raw nodes from the head is the whole list.
        assert_eq!(list_for_each_continue(&mut list, &list).count(), 3);
        // list_cut_position with the head as entry empties the target.
        let mut other = ListHead::new();
        list_cut_position(&mut other, &mut list, &mut list);
        assert!(list_empty(&other));
        assert_eq!(list_count_nodes(&list), 3);
    }
}

// --- hlist ------------------------------------------------------------------------------------

mod hlist_cases {
    use super::*;
    use kds::hlist::*;

    #[repr(C)]
    struct HTest {
        data: i32,
        list: HlistNode,
    }

    fn hnodes<const N: usize>() -> [HlistNode; N] {
        core::array::from_fn(|_| HlistNode::new())
    }
    fn hp(n: &mut HlistNode) -> *mut HlistNode {
        n
    }

    #[test]
    fn hlist_init() {
        let l1 = HlistHead::new();
        let mut l2 = HlistHead {
            first: 0xffff_ffff as *mut HlistNode,
        };
        let l3 = HlistHead::default();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            INIT_HLIST_HEAD(&mut l2);
            assert!(hlist_empty(&l1));
            assert!(hlist_empty(&l2));
            assert!(hlist_empty(&l3));
        }
    }

    #[test]
    fn hlist_unhashed_case() {
        // Garbage pointers, as INIT_HLIST_NODE must not read them.
        let mut a = HlistNode {
            next: 0x10 as *mut HlistNode,
            pprev: 0x10 as *mut *mut HlistNode,
        };
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            INIT_HLIST_NODE(&mut a);
            assert!(hlist_unhashed(&a));
            hlist_add_head(&mut a, &mut list);
            assert!(!hlist_unhashed(&a));
            hlist_del_init(&mut a);
            assert!(hlist_unhashed(&a));
        }
    }

    #[test]
    fn hlist_unhashed_lockless_case() {
        let mut a = HlistNode::new();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            assert!(hlist_unhashed_lockless(&a));
            hlist_add_head(&mut a, &mut list);
            assert!(!hlist_unhashed_lockless(&a));
            hlist_del_init(&mut a);
            assert!(hlist_unhashed_lockless(&a));
        }
    }

    #[test]
    fn hlist_del_case() {
        let [mut a, mut b] = hnodes();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut a, &mut list);
            hlist_add_behind(&mut b, &mut a);
            hlist_del(&mut a);
            assert_eq!(list.first, hp(&mut b));
            assert_eq!(b.pprev, addr_of_mut!(list.first));
        }
    }

    #[test]
    fn hlist_del_init_case() {
        let [mut a, mut b] = hnodes();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut a, &mut list);
            hlist_add_behind(&mut b, &mut a);
            hlist_del_init(&mut a);
            assert_eq!(list.first, hp(&mut b));
            assert_eq!(b.pprev, addr_of_mut!(list.first));
            assert_eq!(a.next, null_mut());
            assert_eq!(a.pprev, null_mut());
        }
    }

    #[test]
    fn hlist_add() {
        let [mut a, mut b, mut c, mut d] = hnodes();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut a, &mut list);
            hlist_add_head(&mut b, &mut list);
            hlist_add_before(&mut c, &mut a);
            hlist_add_behind(&mut d, &mut a);
            // [list] -> b -> c -> a -> d
            assert_eq!(list.first, hp(&mut b));
            assert_eq!(c.pprev, addr_of_mut!(b.next));
            assert_eq!(b.next, hp(&mut c));
            assert_eq!(a.pprev, addr_of_mut!(c.next));
            assert_eq!(c.next, hp(&mut a));
            assert_eq!(d.pprev, addr_of_mut!(a.next));
            assert_eq!(a.next, hp(&mut d));
        }
    }

    #[test]
    fn hlist_fake_case() {
        let mut a = HlistNode::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            assert!(!hlist_fake(&mut a));
            hlist_add_fake(&mut a);
            assert!(hlist_fake(&mut a));
            // A fake node reads as hashed, and deleting it is harmless.
            assert!(!hlist_unhashed(&a));
            hlist_del_init(&mut a);
            assert!(hlist_unhashed(&a));
        }
    }

    #[test]
    fn hlist_is_singular_node_case() {
        let [mut a, mut b] = hnodes();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            assert!(!hlist_is_singular_node(&mut a, &mut list));
            hlist_add_head(&mut a, &mut list);
            assert!(hlist_is_singular_node(&mut a, &mut list));
            hlist_add_head(&mut b, &mut list);
            assert!(!hlist_is_singular_node(&mut a, &mut list));
            assert!(!hlist_is_singular_node(&mut b, &mut list));
        }
    }

    #[test]
    fn hlist_empty_case() {
        let mut a = HlistNode::new();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            assert!(hlist_empty(&list));
            hlist_add_head(&mut a, &mut list);
            assert!(!hlist_empty(&list));
        }
    }

    #[test]
    fn hlist_move_list_case() {
        let mut a = HlistNode::new();
        let [mut l1, mut l2] = [HlistHead::new(), HlistHead::new()];
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut a, &mut l1);
            assert!(!hlist_empty(&l1));
            assert!(hlist_empty(&l2));
            hlist_move_list(&mut l1, &mut l2);
            assert!(hlist_empty(&l1));
            assert!(!hlist_empty(&l2));
            assert_eq!(a.pprev, addr_of_mut!(l2.first));
        }
    }

    #[test]
    fn hlist_entry() {
        let mut s = HTest {
            data: 0,
            list: HlistNode::new(),
        };
        let sp: *mut HTest = &mut s;
        assert_eq!(container_of!(&mut s.list, HTest, list), sp);
    }

    #[test]
    fn hlist_entry_safe() {
        let mut s = HTest {
            data: 0,
            list: HlistNode::new(),
        };
        let sp: *mut HTest = &mut s;
        assert_eq!(kds::hlist_entry_safe!(&mut s.list, HTest, list), Some(sp));
        assert_eq!(kds::hlist_entry_safe!(null_mut(), HTest, list), None);
    }

    /// # Safety
    /// `list` must be a valid, initialised head and the nodes of `e` unlinked; none of them may
    /// move while linked.
    unsafe fn chain<const N: usize>(e: &mut [HlistNode; N], list: &mut HlistHead) {
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut e[0], list);
            for i in 1..N {
                let prev: *mut HlistNode = &mut e[i - 1];
                hlist_add_behind(&mut e[i], prev);
            }
        }
    }

    #[test]
    fn hlist_for_each_case() {
        let mut e = hnodes::<3>();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            chain(&mut e, &mut list);
            let got: Vec<_> = hlist_for_each(&list).collect();
            assert_eq!(got, [hp(&mut e[0]), hp(&mut e[1]), hp(&mut e[2])]);
        }
    }

    #[test]
    fn hlist_for_each_safe_case() {
        let mut e = hnodes::<3>();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            chain(&mut e, &mut list);
            let ep: Vec<*mut HlistNode> = e.iter_mut().map(|n| n as *mut _).collect();
            let mut i = 0;
            for cur in hlist_for_each_safe(&list) {
                assert_eq!(cur, ep[i]);
                hlist_del(cur);
                i += 1;
            }
            assert_eq!(i, 3);
            assert!(hlist_empty(&list));
        }
    }

    fn entries() -> [HTest; 5] {
        core::array::from_fn(|i| HTest {
            data: i as i32,
            list: HlistNode::new(),
        })
    }

    /// # Safety
    /// `list` must be a valid, initialised head and the links of `e` unlinked; none of them may
    /// move while linked.
    unsafe fn chain_entries(e: &mut [HTest; 5], list: &mut HlistHead) {
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut e[0].list, list);
            for i in 1..5 {
                let prev: *mut HlistNode = &mut e[i - 1].list;
                hlist_add_behind(&mut e[i].list, prev);
            }
        }
    }

    #[test]
    fn hlist_for_each_entry_case() {
        let mut e = entries();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            chain_entries(&mut e, &mut list);
            let mut i = 0;
            for cur in kds::hlist_for_each_entry!(&list, HTest, list) {
                assert_eq!((*cur).data, i);
                i += 1;
            }
            assert_eq!(i, 5);
        }
    }

    #[test]
    fn hlist_for_each_entry_continue_case() {
        let mut e = entries();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            chain_entries(&mut e, &mut list);
            let start: *mut HTest = &mut e[0];
            let mut i = 1;
            for cur in kds::hlist_for_each_entry!(continue start, HTest, list) {
                assert_eq!((*cur).data, i);
                (*cur).data = 42;
                i += 1;
            }
            assert_eq!(i, 5);
            assert_eq!(e[0].data, 0, "the first entry was not visited");
            assert_eq!(e[1].data, 42);
        }
    }

    #[test]
    fn hlist_for_each_entry_from_case() {
        let mut e = entries();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            chain_entries(&mut e, &mut list);
            let start: *mut HTest = &mut e[0];
            let mut i = 0;
            for cur in kds::hlist_for_each_entry!(from start, HTest, list) {
                assert_eq!((*cur).data, i);
                (*cur).data = 42;
                i += 1;
            }
            assert_eq!(i, 5);
            assert_eq!(e[0].data, 42, "the first entry was visited");
        }
    }

    #[test]
    fn hlist_for_each_entry_safe_case() {
        let mut e = entries();
        let mut list = HlistHead::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            chain_entries(&mut e, &mut list);
            let mut i = 0;
            for cur in kds::hlist_for_each_entry!(safe & list, HTest, list) {
                assert_eq!((*cur).data, i);
                hlist_del(addr_of_mut!((*cur).list));
                i += 1;
            }
            assert_eq!(i, 5);
            assert!(hlist_empty(&list));
        }
    }

    #[test]
    fn hlist_splice_and_count() {
        let mut e = hnodes::<3>();
        let [mut from, mut to] = [HlistHead::new(), HlistHead::new()];
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            hlist_add_head(&mut e[0], &mut from);
            hlist_add_behind(&mut e[1], &mut e[0]);
            hlist_add_head(&mut e[2], &mut to);
            hlist_splice_init(&mut from, &mut e[1], &mut to);
            assert!(hlist_empty(&from));
            let got: Vec<_> = hlist_for_each(&to).collect();
            assert_eq!(got, [hp(&mut e[0]), hp(&mut e[1]), hp(&mut e[2])]);
            assert_eq!(e[2].pprev, addr_of_mut!(e[1].next));
            assert_eq!(hlist_count_nodes(&to), 3);
        }
    }
}

// --- klist ------------------------------------------------------------------------------------

mod klist_cases {
    use kds::klist::*;
    use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
    use std::sync::Mutex;

    // The callbacks are plain functions, so each test gets its own counter slot keyed by a
    // thread-local; a global mutex serialises the tests that use them.
    static SERIAL: Mutex<()> = Mutex::new(());
    static NODE_COUNT: AtomicIsize = AtomicIsize::new(0);
    static LAST_NODE: AtomicUsize = AtomicUsize::new(0);

    fn check_node(n: &KlistNode) {
        NODE_COUNT.fetch_add(1, Ordering::SeqCst);
        LAST_NODE.store(n as *const _ as usize, Ordering::SeqCst);
    }
    fn check_delete_node(n: &KlistNode) {
        NODE_COUNT.fetch_sub(1, Ordering::SeqCst);
        LAST_NODE.store(n as *const _ as usize, Ordering::SeqCst);
    }
    fn count() -> isize {
        NODE_COUNT.load(Ordering::SeqCst)
    }
    fn last() -> usize {
        LAST_NODE.load(Ordering::SeqCst)
    }
    fn addr(n: &KlistNode) -> usize {
        n as *const _ as usize
    }
    fn at(n: Option<&KlistNode>) -> usize {
        n.map_or(0, addr)
    }
    fn setup() -> std::sync::MutexGuard<'static, ()> {
        let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        NODE_COUNT.store(0, Ordering::SeqCst);
        LAST_NODE.store(0, Ordering::SeqCst);
        g
    }

    #[test]
    fn klist_test_add_tail() {
        let _g = setup();
        let (a, b) = (KlistNode::new(), KlistNode::new());
        let list = Klist::new(Some(check_node), None);
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_tail(&a, &list) };
        assert_eq!((count(), last()), (1, addr(&a)));
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_tail(&b, &list) };
        assert_eq!((count(), last()), (2, addr(&b)));
        let mut i = klist_iter_init(&list);
        assert_eq!(at(klist_next(&mut i)), addr(&a));
        assert_eq!(at(klist_next(&mut i)), addr(&b));
        assert!(klist_next(&mut i).is_none());
        klist_iter_exit(i);
    }

    #[test]
    fn klist_test_add_head() {
        let _g = setup();
        let (a, b) = (KlistNode::new(), KlistNode::new());
        let list = Klist::new(Some(check_node), None);
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_head(&a, &list) };
        assert_eq!((count(), last()), (1, addr(&a)));
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_head(&b, &list) };
        assert_eq!((count(), last()), (2, addr(&b)));
        let mut i = klist_iter_init(&list);
        assert_eq!(at(klist_next(&mut i)), addr(&b));
        assert_eq!(at(klist_next(&mut i)), addr(&a));
        assert!(klist_next(&mut i).is_none());
    }

    #[test]
    fn klist_test_add_behind() {
        let _g = setup();
        let [a, b, c, d] = [(); 4].map(|_| KlistNode::new());
        let list = Klist::new(Some(check_node), None);
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            klist_add_head(&a, &list);
            klist_add_head(&b, &list);
            klist_add_behind(&c, &a);
        }
        assert_eq!((count(), last()), (3, addr(&c)));
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_behind(&d, &b) };
        assert_eq!((count(), last()), (4, addr(&d)));
        // [list] -> b -> d -> a -> c
        let mut i = klist_iter_init(&list);
        for want in [&b, &d, &a, &c] {
            assert_eq!(at(klist_next(&mut i)), addr(want));
        }
        assert!(klist_next(&mut i).is_none());
    }

    #[test]
    fn klist_test_add_before() {
        let _g = setup();
        let [a, b, c, d] = [(); 4].map(|_| KlistNode::new());
        let list = Klist::new(Some(check_node), None);
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe {
            klist_add_head(&a, &list);
            klist_add_head(&b, &list);
            klist_add_before(&c, &a);
        }
        assert_eq!((count(), last()), (3, addr(&c)));
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_before(&d, &b) };
        assert_eq!((count(), last()), (4, addr(&d)));
        // [list] -> d -> b -> c -> a
        let mut i = klist_iter_init(&list);
        for want in [&d, &b, &c, &a] {
            assert_eq!(at(klist_next(&mut i)), addr(want));
        }
        assert!(klist_next(&mut i).is_none());
    }

    #[test]
    fn klist_test_del_refcount_greater_than_zero() {
        let _g = setup();
        let [a, b, c, d] = [(); 4].map(|_| KlistNode::new());
        let list = Klist::new(Some(check_node), Some(check_delete_node));
        for n in [&a, &b, &c, &d] {
            // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
            unsafe { klist_add_tail(n, &list) };
        }
        let mut i = klist_iter_init(&list);
        assert_eq!(at(klist_next(&mut i)), addr(&a));
        assert_eq!(at(klist_next(&mut i)), addr(&b));
        assert_eq!(at(klist_next(&mut i)), addr(&c));
        // Deleting c while the iterator stands on it only marks it dead.
        klist_del(&c);
        assert!(klist_node_attached(&c));
        assert_eq!((count(), last()), (4, addr(&d)));
        klist_iter_exit(i);
        // The iterator let go: c is gone and put ran.
        assert_eq!((count(), last()), (3, addr(&c)));
        assert!(!klist_node_attached(&c));
    }

    #[test]
    fn klist_test_del_refcount_zero() {
        let _g = setup();
        let [a, b, c, d] = [(); 4].map(|_| KlistNode::new());
        let list = Klist::new(Some(check_node), Some(check_delete_node));
        for n in [&a, &b, &c, &d] {
            // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
            unsafe { klist_add_tail(n, &list) };
        }
        klist_del(&c);
        assert_eq!((count(), last()), (3, addr(&c)));
        let mut i = klist_iter_init(&list);
        for want in [&a, &b, &d] {
            assert_eq!(at(klist_next(&mut i)), addr(want));
        }
        assert!(klist_next(&mut i).is_none());
    }

    #[test]
    fn klist_test_remove() {
        let _g = setup();
        let [a, b, c, d] = [(); 4].map(|_| KlistNode::new());
        let list = Klist::new(Some(check_node), Some(check_delete_node));
        for n in [&a, &b, &c, &d] {
            // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
            unsafe { klist_add_tail(n, &list) };
        }
        klist_remove(&c);
        assert_eq!((count(), last()), (3, addr(&c)));
        let mut i = klist_iter_init(&list);
        for want in [&a, &b, &d] {
            assert_eq!(at(klist_next(&mut i)), addr(want));
        }
        assert!(klist_next(&mut i).is_none());
    }

    #[test]
    fn klist_test_node_attached() {
        let a = KlistNode::new();
        let list = Klist::new(None, None);
        assert!(!klist_node_attached(&a));
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_head(&a, &list) };
        assert!(klist_node_attached(&a));
        klist_del(&a);
        assert!(!klist_node_attached(&a));
    }

    // Beyond list-test.c.

    #[test]
    fn klist_misuse_and_reverse() {
        let [a, b, c] = [(); 3].map(|_| KlistNode::new());
        let list = Klist::new(None, None);
        // Deleting an unattached node is refused, as is deleting twice.
        assert!(!a.del());
        for n in [&a, &b, &c] {
            // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
            unsafe { klist_add_tail(n, &list) };
        }
        let mut it = list.iter();
        assert_eq!(at(it.next()), addr(&a));
        assert!(b.del());
        assert!(!b.del(), "a second delete is rejected");
        // The iterator skips the dead node b.
        assert_eq!(at(it.next()), addr(&c));
        assert_eq!(at(it.prev()), addr(&a));
        drop(it);
        let mut r = list.iter();
        assert_eq!(at(r.prev()), addr(&c));
        assert_eq!(at(r.prev()), addr(&a));
        assert!(r.prev().is_none());
        // Starting from a node.
        let mut first = list.iter();
        let n = first.next().map(|n| n as *const KlistNode).unwrap();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        let mut from = unsafe { klist_iter_init_node(&list, Some(&*n)) };
        assert_eq!(at(from.next()), addr(&c));
    }

    #[test]
    fn klist_safe_static_nodes_and_drop_detaches() {
        static A: KlistNode = KlistNode::new();
        static B: KlistNode = KlistNode::new();
        let (a, b): (&'static KlistNode, &'static KlistNode) = (&A, &B);
        {
            let list = core::pin::pin!(Klist::new(None, None));
            assert!(list.as_ref().add_tail(a));
            assert!(list.as_ref().add_head(b));
            assert!(!list.as_ref().add_tail(a), "an attached node is rejected");
            let mut it = list.iter();
            assert_eq!(at(it.next()), addr(b));
            assert_eq!(at(it.next()), addr(a));
            drop(it);
            assert!(b.del());
            assert!(a.is_attached());
        }
        // Dropping the klist detached the remaining node; it can join another list.
        assert!(!a.is_attached());
        let other = core::pin::pin!(Klist::new(None, None));
        assert!(other.as_ref().add_tail(a));
        assert_eq!(at(other.iter().next()), addr(a));
    }

    #[test]
    fn klist_empty_may_move() {
        // An empty klist holds no self-pointers: iterate, move it, then use it.
        let list = Klist::new(None, None);
        assert!(list.iter().next().is_none());
        let moved = Box::new(list);
        let a = KlistNode::new();
        // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
        unsafe { klist_add_tail(&a, &moved) };
        assert_eq!(at(moved.iter().next()), addr(&a));
        klist_del(&a);
        let moved_again = *moved;
        assert!(moved_again.iter().next().is_none());
        assert!(moved_again.iter().prev().is_none());
    }

    #[test]
    fn klist_concurrent_iterate_and_remove() {
        // Two threads walk the list repeatedly while the main thread removes every node; the
        // walkers must only ever see live nodes, and every node must end detached.
        const N: usize = 64;
        let nodes: Vec<KlistNode> = (0..N).map(|_| KlistNode::new()).collect();
        let list = Klist::new(None, None);
        for n in &nodes {
            // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
            unsafe { klist_add_tail(n, &list) };
        }
        let base = nodes.as_ptr() as usize;
        let end = base + N * core::mem::size_of::<KlistNode>();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let mut it = list.iter();
                        let mut prev = 0usize;
                        while let Some(n) = it.next() {
                            let a = addr(n);
                            assert!(a >= base && a < end);
                            assert!(a > prev, "order is preserved");
                            prev = a;
                        }
                    }
                });
            }
            for n in &nodes {
                klist_remove(n);
            }
        });
        assert!(nodes.iter().all(|n| !n.is_attached()));
        assert!(list.iter().next().is_none());
    }
}
