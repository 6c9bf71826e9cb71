//! lib/tests/test_list_sort.c, restated against kds's raw layer, and the comparison counts of
//! Linux's merge schedule (lib/list_sort.c), checked by hand and against a vector model.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use core::ptr::addr_of_mut;
use kds::container_of;
use kds::list::*;

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

// --- list_sort (lib/tests/test_list_sort.c) ---------------------------------------------------

const TEST_LIST_LEN: usize = 512 + 128 + 2;
const POISON1: u32 = 0xDEAD_BEEF;
const POISON2: u32 = 0xA324_354C;

#[repr(C)]
struct DebugEl {
    poison1: u32,
    list: ListHead,
    poison2: u32,
    value: i32,
    serial: usize,
}

#[test]
fn list_sort_test() {
    // 642 elements with values below 642/3 to force ties; the list must come out sorted,
    // stable (equal values keep serial order), intact, and the comparator must only ever see
    // real, unpoisoned elements.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut els: Vec<Box<DebugEl>> = (0..TEST_LIST_LEN)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            Box::new(DebugEl {
                poison1: POISON1,
                list: ListHead::new(),
                poison2: POISON2,
                value: (seed % (TEST_LIST_LEN as u64 / 3)) as i32,
                serial: i,
            })
        })
        .collect();
    let addrs: Vec<*const DebugEl> = els.iter().map(|b| &**b as *const DebugEl).collect();
    let mut head = ListHead::new();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    let check = |e: *const DebugEl| unsafe {
        assert!((*e).serial < TEST_LIST_LEN, "incorrect serial");
        assert_eq!(addrs[(*e).serial], e, "phantom element");
        assert_eq!(
            ((*e).poison1, (*e).poison2),
            (POISON1, POISON2),
            "bad poison"
        );
    };
    let mut calls = 0usize;
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut head);
        for e in els.iter_mut() {
            list_add_tail(&mut e.list, &mut head);
        }
        list_sort(&mut head, |a, b| {
            calls += 1;
            let (ea, eb) = (
                container_of!(a, DebugEl, list),
                container_of!(b, DebugEl, list),
            );
            check(ea);
            check(eb);
            (*ea).value - (*eb).value
        });
        let mut count = 1;
        let mut cur = head.next;
        while (*cur).next != addr_of_mut!(head) {
            assert_eq!((*(*cur).next).prev, cur, "list is corrupted");
            let (a, b) = (
                container_of!(cur, DebugEl, list),
                container_of!((*cur).next, DebugEl, list),
            );
            check(a);
            check(b);
            assert!((*a).value <= (*b).value, "list is not sorted");
            if (*a).value == (*b).value {
                assert!(
                    (*a).serial < (*b).serial,
                    "order of equivalent elements not preserved"
                );
            }
            count += 1;
            cur = (*cur).next;
        }
        assert_eq!(head.prev, cur, "list is corrupted");
        assert_eq!(count, TEST_LIST_LEN, "list length changed after sorting");
    }
    // O(n log n): well under n * ceil(log2 n) comparisons.
    assert!(calls <= TEST_LIST_LEN * 10, "{calls} comparisons");
}

#[test]
fn list_sort_small_and_empty() {
    let mut head = ListHead::new();
    let mut s = structs::<2>();
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut head);
        list_sort(&mut head, |_, _| {
            unreachable!("no comparison for an empty list")
        });
        assert!(list_empty(&head));
        list_add(&mut s[0].list, &mut head);
        list_sort(&mut head, |_, _| {
            unreachable!("no comparison for one element")
        });
        list_add(&mut s[1].list, &mut head); // [1, 0]
        list_sort(&mut head, |a, b| {
            (*container_of!(a, TestStruct, list)).data - (*container_of!(b, TestStruct, list)).data
        });
        let v: Vec<i32> = kds::list_for_each_entry!(&head, TestStruct, list)
            .map(|e| (*e).data)
            .collect();
        assert_eq!(v, [0, 1]);
        assert_eq!(head.prev, addr_of_mut!(s[1].list));
    }
}

/// Sorts `values` with `list_sort` and returns (sorted values, comparisons made).
fn sort_counting(values: &[i32]) -> (Vec<i32>, usize) {
    let mut els: Vec<Box<TestStruct>> = values
        .iter()
        .map(|&v| {
            Box::new(TestStruct {
                data: v,
                list: ListHead::new(),
            })
        })
        .collect();
    let mut head = ListHead::new();
    let mut calls = 0usize;
    // SAFETY: every head and node here is a local of this test, initialised before it is linked, not moved while linked, and touched by this thread only.
    unsafe {
        ListHead::init(&mut head);
        for e in els.iter_mut() {
            list_add_tail(&mut e.list, &mut head);
        }
        list_sort(&mut head, |a, b| {
            calls += 1;
            (*container_of!(a, TestStruct, list)).data - (*container_of!(b, TestStruct, list)).data
        });
        let out = kds::list_for_each_entry!(&head, TestStruct, list)
            .map(|e| (*e).data)
            .collect();
        (out, calls)
    }
}

/// An independent model of lib/list_sort.c's merge schedule over vectors: pending runs on a
/// stack, the pair above the lowest clear bit of `count` merged before each push, the rest
/// merged newest first, and merge_final's `cmp(b, b)` once per 256 relinked leftovers.
fn linux_schedule_comparisons(values: &[i32]) -> usize {
    fn merge(a: &[i32], b: &[i32], calls: &mut usize) -> (Vec<i32>, usize) {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < a.len() && j < b.len() {
            *calls += 1;
            if a[i] <= b[j] {
                out.push(a[i]);
                i += 1;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
        let left = (a.len() - i) + (b.len() - j);
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        (out, left)
    }
    if values.len() < 2 {
        return 0;
    }
    let mut calls = 0;
    let mut pending: Vec<Vec<i32>> = Vec::new();
    for (count, &v) in values.iter().enumerate() {
        let k = count.trailing_ones() as usize;
        if count >> k != 0 {
            let at = pending.len() - 1 - k;
            let newer = pending.remove(at);
            let (m, _) = merge(&pending[at - 1], &newer, &mut calls);
            pending[at - 1] = m;
        }
        pending.push(vec![v]);
    }
    let mut list = pending.pop().unwrap();
    while pending.len() > 1 {
        list = merge(&pending.pop().unwrap(), &list, &mut calls).0;
    }
    let (_, leftover) = merge(&pending[0], &list, &mut calls);
    calls + leftover / 256
}

#[test]
fn list_sort_uses_linux_merge_schedule() {
    // Counted by hand through lib/list_sort.c: five sorted or five reversed elements take
    // 1 + 1 (pairs) + 2 or 1 (merging the pending runs) + 2 or 3 (merge_final) comparisons.
    assert_eq!(sort_counting(&[1, 2, 3, 4, 5]), (vec![1, 2, 3, 4, 5], 6));
    assert_eq!(sort_counting(&[5, 4, 3, 2, 1]), (vec![1, 2, 3, 4, 5], 6));
    assert_eq!(sort_counting(&[2, 1]).1, 1);
    // Random lengths and values (with ties), and long sorted runs that reach merge_final's
    // every-256 callback: the count equals the model's exactly.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in (0..300).chain([642, 1000, 4097]) {
        let values: Vec<i32> = (0..n)
            .map(|_| (next() % (n as u64 / 3 + 1)) as i32)
            .collect();
        let (sorted, calls) = sort_counting(&values);
        let mut expect = values.clone();
        expect.sort();
        assert_eq!(sorted, expect);
        assert_eq!(calls, linux_schedule_comparisons(&values), "n = {n}");
    }
    for n in [257usize, 600, 2000] {
        let values: Vec<i32> = (0..n as i32).collect();
        let (_, calls) = sort_counting(&values);
        assert_eq!(calls, linux_schedule_comparisons(&values), "sorted n = {n}");
    }
}
