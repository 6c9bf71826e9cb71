//! XArray tests: lib/test_xarray.c's check_* cases ported (in our own words, with their
//! expected outcomes), allocation-failure injection, a reader/writer stress test, and a
//! proptest against `BTreeMap` with the invariant checker after every step.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod trees_support;

use std::collections::BTreeMap;
use std::vec::Vec;

use kds::alloc::Gfp;
use kds::xarray::*;
use kds::Error;
use proptest::prelude::*;
use trees_support::TestAlloc;

const GFP: Gfp = Gfp::GFP_KERNEL;

/// `xa_mk_index`.
fn idx(i: usize) -> XaEntry {
    xa_mk_value(i & isize::MAX as usize)
}
fn v(i: usize) -> Option<XaEntry> {
    Some(idx(i))
}

type Xa<'a> = XArray<&'a TestAlloc>;

fn store_index(xa: &Xa, i: usize) -> Option<XaEntry> {
    xa.store(i, v(i), GFP).unwrap()
}
fn erase_index(xa: &Xa, i: usize) {
    assert_eq!(xa.erase(i), v(i), "erase {i}");
    assert_eq!(xa.load(i), None);
}
fn ok(xa: &Xa) {
    if let Err(e) = xa.check() {
        panic!("xarray invariant: {e}");
    }
}

#[test]
fn check_xa_err() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    // Index 0 lives in the head: no node needed even if allocation fails.
    a.fail_all();
    assert_eq!(xa.store(0, v(0), Gfp::GFP_NOWAIT), Ok(None));
    assert_eq!(xa.erase(0), v(0));
    assert_eq!(xa.store(1, v(1), Gfp::GFP_NOWAIT), Err(Error::ENOMEM));
    assert_eq!(xa.store(1, v(1), Gfp::GFP_NOWAIT), Err(Error::ENOMEM));
    assert!(xa.is_empty());
    a.heal();
    assert_eq!(xa.store(1, v(1), GFP), Ok(None));
    assert_eq!(xa.store(1, Some(xa_mk_value(0)), GFP), Ok(v(1)));
    assert_eq!(xa.erase(1), Some(xa_mk_value(0)));
    assert_eq!(xa.store(0, Some(XA_ZERO_ENTRY), GFP), Err(Error::EINVAL));
    assert!(xa.is_empty());
}

#[test]
fn enomem_mid_path_leaves_array_unchanged() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    store_index(&xa, 5);
    let nodes = xa.check().unwrap();
    // A far index needs several new levels and leaves; fail after each possible count.
    for budget in 0..6 {
        a.fail_after(budget);
        let r = xa.store(1 << 40, v(1 << 40), GFP);
        a.heal();
        match r {
            Err(Error::ENOMEM) => {
                assert_eq!(
                    xa.check().unwrap(),
                    nodes,
                    "budget {budget}: partial path left behind"
                );
                assert_eq!(xa.load(5), v(5));
                assert_eq!(xa.load(1 << 40), None);
            }
            Ok(None) => {
                erase_index(&xa, 1 << 40);
                ok(&xa);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(xa);
    assert_eq!(a.live(), 0);
}

#[test]
fn check_xa_load() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    const N: usize = 512;
    for i in 0..N {
        for j in 0..N {
            let e = xa.load(j);
            if j < i {
                assert_eq!(e.and_then(|e| e.to_value()), Some(j));
            } else {
                assert_eq!(e, None);
            }
        }
        assert_eq!(store_index(&xa, i), None);
    }
    ok(&xa);
    for i in 0..N {
        for j in 0..N {
            let e = xa.load(j);
            if j >= i {
                assert_eq!(e.and_then(|e| e.to_value()), Some(j));
            } else {
                assert_eq!(e, None);
            }
        }
        erase_index(&xa, i);
    }
    assert!(xa.is_empty());
    ok(&xa);
}

fn check_xa_mark_1(xa: &Xa, index: usize) {
    // NULL entries have no marks and cannot get one.
    assert!(!xa.get_mark(index, XA_MARK_0));
    xa.set_mark(index, XA_MARK_0);
    assert!(!xa.get_mark(index, XA_MARK_0));
    // Storing does not make a mark appear.
    assert_eq!(store_index(xa, index), None);
    assert!(!xa.get_mark(index, XA_MARK_0));
    xa.set_mark(index, XA_MARK_0);
    assert!(xa.get_mark(index, XA_MARK_0));
    // One mark does not set another.
    assert!(!xa.get_mark(index + 1, XA_MARK_0));
    assert!(!xa.get_mark(index, XA_MARK_1));
    // Erasing clears marks; they cannot be set again.
    erase_index(xa, index);
    assert!(xa.is_empty());
    assert!(!xa.get_mark(index, XA_MARK_0));
    xa.set_mark(index, XA_MARK_0);
    assert!(!xa.get_mark(index, XA_MARK_0));
    // A multi-index entry stored over marked entries takes the union of their marks.
    assert_eq!(index % 4, 0);
    for order in 2..8u32 {
        let base = index & !((1 << order) - 1);
        let next = base + (1 << order);
        assert_eq!(store_index(xa, index + 1), None);
        xa.set_mark(index + 1, XA_MARK_0);
        assert_eq!(store_index(xa, index + 2), None);
        xa.set_mark(index + 2, XA_MARK_2);
        assert_eq!(store_index(xa, next), None);
        xa.store_order(index, order, v(index), GFP).unwrap();
        ok(xa);
        for i in base..next {
            assert!(xa.get_mark(i, XA_MARK_0), "order {order} index {i}");
            assert!(!xa.get_mark(i, XA_MARK_1));
            assert!(xa.get_mark(i, XA_MARK_2));
            // Two entries from `i` on, one of them marked.
            assert_eq!(xa.iter_start(i).count(), 2);
            assert_eq!(xa.iter_marked(XA_MARK_0).count(), 1);
        }
        assert!(!xa.get_mark(next, XA_MARK_0));
        assert!(!xa.get_mark(next, XA_MARK_1));
        assert!(!xa.get_mark(next, XA_MARK_2));
        erase_index(xa, index);
        erase_index(xa, next);
        assert!(xa.is_empty());
        ok(xa);
    }
}

#[test]
fn check_xa_mark() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    // Linux walks index 0..16384 step 4; debug builds walk a quarter of that (time only).
    let end = if cfg!(debug_assertions) { 4096 } else { 16384 };
    for index in (0..end).step_by(4) {
        check_xa_mark_1(&xa, index);
    }
    // check_xa_mark_2: 1000 marked entries are found by a marked walk.
    store_index(&xa, 0);
    xa.set_mark(0, XA_MARK_0);
    for index in 3500..4500 {
        store_index(&xa, index);
        xa.set_mark(index, XA_MARK_0);
    }
    assert_eq!(xa.iter_marked(XA_MARK_0).count(), 1001);
    for index in 3500..4500 {
        xa.clear_mark(index, XA_MARK_0);
    }
    assert_eq!(
        xa.iter_marked(XA_MARK_0)
            .map(|(i, _)| i)
            .collect::<Vec<_>>(),
        [0]
    );
    ok(&xa);
    xa.destroy();
    assert!(xa.is_empty());
    // check_xa_mark_3: a marked multi-index entry is found once from inside it.
    xa.store_order(0x40, 2, v(0x40), GFP).unwrap();
    xa.set_mark(0x41, XA_MARK_0);
    let mut found = 0;
    let mut i = 0x41;
    while let Some(e) = if found == 0 {
        xa.find(&mut i, usize::MAX, XaFilter::Marked(XA_MARK_0))
    } else {
        xa.find_after(&mut i, usize::MAX, XaFilter::Marked(XA_MARK_0))
    } {
        assert_eq!(e, idx(0x40));
        found += 1;
    }
    assert_eq!(found, 1);
    xa.destroy();
    drop(xa);
    assert_eq!(a.live(), 0);
}

#[test]
fn check_xa_shrink() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    assert_eq!(store_index(&xa, 0), None);
    assert_eq!(store_index(&xa, 1), None);
    assert_eq!(xa.check(), Ok(1));
    // Erasing 1 shrinks the tree back to a head entry.
    assert_eq!(xa.erase(1), v(1));
    assert_eq!(xa.check(), Ok(0));
    assert_eq!(xa.load(0), v(0));
    erase_index(&xa, 0);
    assert!(xa.is_empty());
    for order in 0..15u32 {
        let max = (1usize << order) - 1;
        xa.store_order(0, order, Some(xa_mk_value(0)), GFP).unwrap();
        assert_eq!(xa.load(max), Some(xa_mk_value(0)));
        assert_eq!(xa.load(max + 1), None);
        let shape = xa.check().unwrap();
        assert_eq!(store_index(&xa, usize::MAX), None);
        assert!(xa.check().unwrap() > shape);
        assert_eq!(xa.load(max + 1), None);
        erase_index(&xa, usize::MAX);
        // The tree shrinks back to the same shape.
        assert_eq!(xa.check().unwrap(), shape);
        assert_eq!(xa.erase(0), Some(xa_mk_value(0)));
        assert!(xa.is_empty());
    }
}

#[test]
fn check_insert() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    for i in 0..1024usize {
        xa.insert(i, v(i), GFP).unwrap();
        assert_eq!(xa.load(i.wrapping_sub(1)), None);
        assert_eq!(xa.load(i + 1), None);
        erase_index(&xa, i);
    }
    for i in 10..usize::BITS {
        let b = 1usize << i;
        xa.insert(b, v(b), GFP).unwrap();
        assert_eq!(xa.load(b - 1), None);
        assert_eq!(xa.load(b + 1), None);
        erase_index(&xa, b);
        xa.insert(b - 1, v(b - 1), GFP).unwrap();
        assert_eq!(xa.load(b - 2), None);
        assert_eq!(xa.load(b), None);
        erase_index(&xa, b - 1);
    }
    xa.insert(usize::MAX, v(usize::MAX), GFP).unwrap();
    assert_eq!(xa.load(0), None);
    assert_eq!(xa.load(usize::MAX - 1), None);
    erase_index(&xa, usize::MAX);
    assert!(xa.is_empty());
}

#[test]
fn check_cmpxchg() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let five = Some(xa_mk_value(5));
    let six = Some(xa_mk_value(6));
    let lots = Some(xa_mk_value(12345678));
    assert_eq!(store_index(&xa, 12345678), None);
    assert_eq!(
        xa.insert(12345678, Some(xa_mk_value(1)), GFP),
        Err(Error::EBUSY)
    );
    assert_eq!(xa.cmpxchg(12345678, six, five, GFP), Ok(lots));
    assert_eq!(xa.cmpxchg(12345678, lots, five, GFP), Ok(lots));
    assert_eq!(xa.cmpxchg(12345678, five, lots, GFP), Ok(five));
    assert_eq!(xa.cmpxchg(5, five, None, GFP), Ok(None));
    assert_eq!(xa.cmpxchg(5, None, five, GFP), Ok(None));
    assert_eq!(xa.insert(5, five, GFP), Err(Error::EBUSY));
    assert_eq!(xa.cmpxchg(5, five, None, GFP), Ok(five));
    assert_eq!(xa.insert(5, five, GFP), Ok(()));
    erase_index(&xa, 12345678);
    assert_eq!(xa.erase(5), five);
    assert!(xa.is_empty());
}

#[test]
fn check_cmpxchg_order() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let five = Some(xa_mk_value(5));
    let order = 3;
    assert_eq!(xa.store_order(0, order, five, GFP), Ok(None));
    assert_eq!(xa.get_order(5), order);
    for i in 0..1 << order {
        assert_eq!(xa.load(i), five);
        assert_eq!(xa.get_order(i), order);
    }
    assert_eq!(xa.load(1 << order), None);
    assert_eq!(xa.store_order(1 << order, order, five, GFP), Ok(None));
    for i in 1 << order..(1 << order) + (1 << order) - 1 {
        assert_eq!(xa.load(i), five);
        assert_eq!(xa.get_order(i), order);
    }
    // Replacing the first entry with NULL drops its order, not the second's.
    assert_eq!(xa.cmpxchg(0, five, None, GFP), Ok(five));
    for i in 0..1 << order {
        assert_eq!(xa.load(i), None);
        assert_eq!(xa.get_order(i), 0);
    }
    for i in 1 << order..(1 << order) + (1 << order) - 1 {
        assert_eq!(xa.load(i), five);
        assert_eq!(xa.get_order(i), order);
    }
    xa.store_order(0, usize::BITS - 1, None, GFP).unwrap();
    assert!(xa.is_empty());
}

fn check_reserve(xa: &Xa) {
    // A reserved entry makes the array non-empty but reads as NULL.
    assert!(xa.is_empty());
    xa.reserve(12345678, GFP).unwrap();
    assert!(!xa.is_empty());
    assert_eq!(xa.load(12345678), None);
    xa.release(12345678);
    assert!(xa.is_empty());
    // Releasing a used entry does nothing.
    xa.reserve(12345678, GFP).unwrap();
    assert_eq!(xa.store(12345678, v(12345678), Gfp::GFP_NOWAIT), Ok(None));
    xa.release(12345678);
    erase_index(xa, 12345678);
    assert!(xa.is_empty());
    // cmpxchg sees a reserved entry as XA_ZERO_ENTRY and returns NULL for it.
    xa.reserve(12345678, GFP).unwrap();
    assert_eq!(
        xa.cmpxchg(12345678, Some(XA_ZERO_ENTRY), v(12345678), Gfp::GFP_NOWAIT),
        Ok(None)
    );
    xa.release(12345678);
    erase_index(xa, 12345678);
    assert!(xa.is_empty());
    // xa_insert treats it as busy; erase returns NULL for it.
    xa.reserve(12345678, GFP).unwrap();
    assert_eq!(xa.insert(12345678, v(12345678), GFP), Err(Error::EBUSY));
    assert!(!xa.is_empty());
    assert_eq!(xa.erase(12345678), None);
    assert!(xa.is_empty());
    // Iteration skips reserved entries.
    store_index(xa, 5);
    xa.reserve(6, GFP).unwrap();
    store_index(xa, 7);
    assert_eq!(xa.iter().map(|(i, _)| i).collect::<Vec<_>>(), [5, 7]);
    // In an allocating array a released reservation can be allocated again.
    if xa.flags() != XaFlags::NONE {
        assert_eq!(
            xa.alloc(Some(xa_mk_value(8)), XaLimit::new(5, 10), GFP),
            Ok(8)
        );
        xa.release(6);
        assert_eq!(
            xa.alloc(Some(xa_mk_value(6)), XaLimit::new(5, 10), GFP),
            Ok(6)
        );
    }
    ok(xa);
    xa.destroy();
}

#[test]
fn check_reserve_plain_and_alloc() {
    let a = TestAlloc::new();
    check_reserve(&XArray::new_in(&a));
    check_reserve(&XArray::with_flags(&a, XaFlags::ALLOC));
    assert_eq!(a.live(), 0);
}

#[test]
fn check_xas_erase_like() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    for i in 0..200usize {
        for j in i..2 * i + 17 {
            store_index(&xa, j);
        }
        xa.store(usize::MAX, Some(xa_mk_value(0)), GFP).unwrap();
        xa.erase(usize::MAX);
        let all: Vec<_> = xa.iter().collect();
        for (j, (index, e)) in (i..).zip(all) {
            assert_eq!(e, idx(j));
            assert_eq!(index, j);
            xa.erase(index);
        }
        assert!(xa.is_empty());
    }
}

fn check_multi_store_1(xa: &Xa, index: usize, order: u32) {
    let min = index & !((1usize << order) - 1);
    let max = min + (1usize << order);
    xa.store_order(index, order, v(index), GFP).unwrap();
    assert_eq!(xa.load(min), v(index));
    assert_eq!(xa.load(max - 1), v(index));
    assert_eq!(xa.load(max), None);
    assert_eq!(xa.load(min.wrapping_sub(1)), None);
    // A single-index store at `index` replaces the whole entry.
    assert_eq!(xa.store(index, v(min), GFP), Ok(v(index)));
    assert_eq!(xa.load(min), v(min));
    assert_eq!(xa.load(max - 1), v(min));
    assert_eq!(xa.load(max), None);
    assert_eq!(xa.load(min.wrapping_sub(1)), None);
    erase_index(xa, min);
    assert!(xa.is_empty());
}

fn check_multi_store_3(xa: &Xa, index: usize, order: u32) {
    xa.store_order(index, order, v(index), GFP).unwrap();
    let all: Vec<_> = xa.iter().collect();
    assert_eq!(all, [(index, idx(index))]);
    let from_inside: Vec<_> = xa.iter_start(index + 1).map(|(_, e)| e).collect();
    assert_eq!(from_inside, [idx(index)]);
    xa.destroy();
}

#[test]
fn check_multi_store() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    // Loading from any position returns the same value.
    xa.store_order(0, 1, Some(xa_mk_value(0)), GFP).unwrap();
    assert_eq!(xa.load(0), Some(xa_mk_value(0)));
    assert_eq!(xa.load(1), Some(xa_mk_value(0)));
    assert_eq!(xa.load(2), None);
    ok(&xa);
    // Storing next to it does not change it.
    xa.store(3, Some(xa_mk_value(3)), GFP).unwrap();
    assert_eq!(xa.load(0), Some(xa_mk_value(0)));
    assert_eq!(xa.load(1), Some(xa_mk_value(0)));
    assert_eq!(xa.load(2), None);
    // Overwriting several indices works.
    xa.store_order(0, 2, Some(xa_mk_value(1)), GFP).unwrap();
    for i in 0..4 {
        assert_eq!(xa.load(i), Some(xa_mk_value(1)));
    }
    assert_eq!(xa.load(4), None);
    ok(&xa);
    // One store of NULL erases many values.
    xa.store_order(0, usize::BITS - 1, None, GFP).unwrap();
    assert!(xa.is_empty());
    // Even when the first slot is empty but the others are not.
    store_index(&xa, 1);
    store_index(&xa, 2);
    xa.store_order(0, 2, None, GFP).unwrap();
    assert!(xa.is_empty());

    let max_order = if usize::BITS == 32 { 30 } else { 60 };
    for i in 0..max_order {
        for j in 0..max_order {
            xa.store_order(0, i, v(i as usize), GFP).unwrap();
            xa.store_order(0, j, v(j as usize), GFP).unwrap();
            for k in 0..max_order {
                let e = xa.load((1usize << k) - 1);
                if i < k && j < k {
                    assert_eq!(e, None, "i {i} j {j} k {k}");
                } else {
                    assert_eq!(e, v(j as usize), "i {i} j {j} k {k}");
                }
            }
            ok(&xa);
            xa.erase(0);
            assert!(xa.is_empty(), "i {i} j {j}");
        }
    }
    for i in 0..20 {
        check_multi_store_1(&xa, 200, i);
        check_multi_store_1(&xa, 0, i);
        check_multi_store_1(&xa, (1 << i) + 1, i);
    }
    // check_multi_store_2: replace then erase an order-9 entry through an inner index.
    xa.store_order(4095, 9, Some(xa_mk_value(0)), GFP).unwrap();
    assert_eq!(
        xa.store(4095, Some(xa_mk_value(1)), GFP),
        Ok(Some(xa_mk_value(0)))
    );
    assert_eq!(xa.erase(4095), Some(xa_mk_value(1)));
    assert!(xa.is_empty());
    for i in 1..20 {
        check_multi_store_3(&xa, 0, i);
        check_multi_store_3(&xa, 1 << i, i);
    }
    drop(xa);
    assert_eq!(a.live(), 0);
}

fn check_xa_alloc_1(xa: &Xa, base: u32) {
    let alloc_index = |i: u32| assert_eq!(xa.alloc(v(i as usize), XA_LIMIT_32B, GFP), Ok(i));
    assert!(xa.is_empty());
    // An empty array assigns `base` first.
    alloc_index(base);
    erase_index(xa, base as usize);
    assert!(xa.is_empty());
    alloc_index(base);
    // Allocating and erasing a lot does not lose base.
    for i in base + 1..2 * XA_CHUNK_SIZE as u32 {
        alloc_index(i);
    }
    for i in base..2 * XA_CHUNK_SIZE as u32 {
        erase_index(xa, i as usize);
    }
    alloc_index(base);
    // Destroying does the same as erasing.
    xa.destroy();
    alloc_index(base);
    alloc_index(base + 1);
    erase_index(xa, base as usize + 1);
    // Storing a value marks it used.
    store_index(xa, base as usize + 1);
    alloc_index(base + 2);
    // Erasing base frees it.
    erase_index(xa, base as usize);
    alloc_index(base);
    erase_index(xa, base as usize + 1);
    erase_index(xa, base as usize + 2);
    for i in 1..5000 {
        alloc_index(base + i);
    }
    ok(xa);
    xa.destroy();
    // Failing properly at the top of the range.
    assert_eq!(
        xa.alloc(
            v(u32::MAX as usize - 1),
            XaLimit::new(u32::MAX - 1, u32::MAX),
            GFP
        ),
        Ok(0xffff_fffe)
    );
    assert_eq!(
        xa.alloc(
            v(u32::MAX as usize),
            XaLimit::new(u32::MAX - 1, u32::MAX),
            GFP
        ),
        Ok(0xffff_ffff)
    );
    assert_eq!(
        xa.alloc(v(0), XaLimit::new(u32::MAX - 1, u32::MAX), GFP),
        Err(Error::EBUSY)
    );
    xa.destroy();
    assert_eq!(xa.alloc(v(10), XaLimit::new(10, 5), GFP), Err(Error::EBUSY));
    store_index(xa, 3);
    assert_eq!(xa.alloc(v(10), XaLimit::new(10, 5), GFP), Err(Error::EBUSY));
    erase_index(xa, 3);
    assert!(xa.is_empty());
}

fn check_xa_alloc_2(xa: &Xa, base: u32) {
    // Allocating a NULL reserves the id.
    assert_eq!(xa.alloc(None, XA_LIMIT_32B, GFP), Ok(base));
    assert!(!xa.is_empty());
    assert_eq!(xa.erase(base as usize), None);
    assert!(xa.is_empty());
    assert_eq!(xa.alloc(None, XA_LIMIT_32B, GFP), Ok(base));
    xa.destroy();
    assert!(xa.is_empty());
    for i in base..base + 10 {
        assert_eq!(xa.alloc(None, XA_LIMIT_32B, GFP), Ok(i));
    }
    assert_eq!(xa.store(3, v(3), GFP), Ok(None));
    assert_eq!(xa.store(4, v(4), GFP), Ok(None));
    assert_eq!(xa.store(4, None, GFP), Ok(v(4)));
    assert_eq!(xa.erase(5), None);
    assert_eq!(xa.alloc(None, XA_LIMIT_32B, GFP), Ok(5));
    let present: Vec<_> = xa.iter().map(|(i, _)| i).collect();
    assert_eq!(present, [3]);
    for i in present {
        erase_index(xa, i);
    }
    for i in base..base + 9 {
        assert_eq!(xa.erase(i as usize), None);
        assert!(!xa.is_empty());
    }
    assert_eq!(xa.erase(8), None);
    assert!(!xa.is_empty());
    assert_eq!(xa.erase(base as usize + 9), None);
    assert!(xa.is_empty());
    xa.destroy();
}

fn check_xa_alloc_3(xa: &Xa, base: u32) {
    let limit = XaLimit::new(1, 0x3fff);
    let mut next = 0u32;
    assert_eq!(xa.alloc_cyclic(v(1), limit, &mut next, GFP), Ok((1, false)));
    next = 0x3ffd;
    assert_eq!(
        xa.alloc_cyclic(v(0x3ffd), limit, &mut next, GFP),
        Ok((0x3ffd, false))
    );
    erase_index(xa, 0x3ffd);
    erase_index(xa, 1);
    assert!(xa.is_empty());
    for i in 0x3ffeusize..0x4003 {
        let want = if i < 0x4000 { i } else { i - 0x3fff };
        let (id, wrapped) = xa.alloc_cyclic(v(want), limit, &mut next, GFP).unwrap();
        assert_eq!(id as usize, want);
        assert_eq!(wrapped, id == 1);
    }
    // Wrapping around the whole u32 range is reported once.
    if base != 0 {
        erase_index(xa, base as usize);
    }
    erase_index(xa, base as usize + 1);
    next = u32::MAX;
    assert_eq!(
        xa.alloc_cyclic(v(u32::MAX as usize), XA_LIMIT_32B, &mut next, GFP),
        Ok((u32::MAX, false))
    );
    assert_eq!(
        xa.alloc_cyclic(v(base as usize), XA_LIMIT_32B, &mut next, GFP),
        Ok((base, true))
    );
    assert_eq!(
        xa.alloc_cyclic(v(base as usize + 1), XA_LIMIT_32B, &mut next, GFP),
        Ok((base + 1, false))
    );
    let all: Vec<_> = xa.iter().map(|(i, _)| i).collect();
    for i in all {
        erase_index(xa, i);
    }
    assert!(xa.is_empty());
}

#[test]
fn check_xa_alloc() {
    let a = TestAlloc::new();
    let xa0 = XArray::with_flags(&a, XaFlags::ALLOC);
    let xa1 = XArray::with_flags(&a, XaFlags::ALLOC1);
    check_xa_alloc_1(&xa0, 0);
    check_xa_alloc_1(&xa1, 1);
    check_xa_alloc_2(&xa0, 0);
    check_xa_alloc_2(&xa1, 1);
    check_xa_alloc_3(&xa0, 0);
    check_xa_alloc_3(&xa1, 1);
    ok(&xa0);
    ok(&xa1);
    // Plain arrays cannot allocate.
    let plain = XArray::new_in(&a);
    assert_eq!(plain.alloc(v(1), XA_LIMIT_32B, GFP), Err(Error::EINVAL));
}

fn check_store_range_1(xa: &Xa, first: usize, last: usize) {
    xa.store_range(first, last, v(first), GFP).unwrap();
    ok(xa);
    assert_eq!(xa.load(first), v(first));
    assert_eq!(xa.load(last), v(first));
    if first > 0 {
        assert_eq!(xa.load(first - 1), None);
    }
    assert_eq!(xa.load(last + 1), None);
    for i in [first, (first + last) / 2, last] {
        assert_eq!(xa.load(i), v(first));
    }
    xa.store_range(first, last, None, GFP).unwrap();
    assert!(xa.is_empty(), "{first}..={last}");
}

#[test]
fn check_store_range() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    for i in 0..64usize {
        for j in i..128 {
            check_store_range_1(&xa, i, j);
            check_store_range_1(&xa, 128 + i, 128 + j);
            check_store_range_1(&xa, 4095 + i, 4095 + j);
            check_store_range_1(&xa, 4096 + i, 4096 + j);
            check_store_range_1(&xa, 123456 + i, 123456 + j);
            check_store_range_1(&xa, (1 << 24) + i, (1 << 24) + j);
        }
    }
    assert_eq!(xa.store_range(5, 4, v(1), GFP), Err(Error::EINVAL));
    // The whole index space.
    xa.store_range(0, usize::MAX, v(7), GFP).unwrap();
    assert_eq!(xa.load(usize::MAX), v(7));
    assert_eq!(xa.load(12345), v(7));
    assert_eq!(xa.iter().count(), 1);
    xa.store_range(0, usize::MAX, None, GFP).unwrap();
    assert!(xa.is_empty());
    drop(xa);
    assert_eq!(a.live(), 0);
}

#[test]
fn check_find() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    // check_find_1: every pair below 100, searched from every start.
    for i in 0..100usize {
        store_index(&xa, i);
        xa.set_mark(i, XA_MARK_0);
        for j in 0..i {
            store_index(&xa, j);
            xa.set_mark(j, XA_MARK_0);
            for k in 0..100 {
                for filter in [XA_PRESENT, XaFilter::Marked(XA_MARK_0)] {
                    let mut index = k;
                    let e = xa.find(&mut index, usize::MAX, filter);
                    if k <= j {
                        assert_eq!(index, j);
                    } else if k <= i {
                        assert_eq!(index, i);
                    } else {
                        assert_eq!(e, None);
                    }
                }
            }
            erase_index(&xa, j);
            assert!(!xa.get_mark(j, XA_MARK_0));
            assert!(xa.get_mark(i, XA_MARK_0));
        }
        erase_index(&xa, i);
        assert!(!xa.get_mark(i, XA_MARK_0));
    }
    assert!(xa.is_empty());
    // check_find_2: iteration order.
    assert_eq!(xa.iter().count(), 0);
    for i in 0..1024usize {
        store_index(&xa, i);
        for (j, (index, e)) in xa.iter().enumerate() {
            assert_eq!(index, j);
            assert_eq!(e, idx(index));
        }
    }
    xa.destroy();
    // check_find_3: a marked search starting above its limit finds nothing.
    for i in 0..40usize {
        for j in 0..40 {
            for k in 0..40 {
                let mut index = j;
                let e = xa.find(&mut index, k, XaFilter::Marked(XA_MARK_0));
                if j > k {
                    assert_eq!(e, None);
                }
            }
        }
        store_index(&xa, i);
        xa.set_mark(i, XA_MARK_0);
    }
    xa.destroy();
    // check_find_4: no wrap past the maximum index.
    store_index(&xa, usize::MAX);
    let mut index = 0;
    assert_eq!(
        xa.find_after(&mut index, usize::MAX, XA_PRESENT),
        v(usize::MAX)
    );
    assert_eq!(index, usize::MAX);
    assert_eq!(xa.find_after(&mut index, usize::MAX, XA_PRESENT), None);
    erase_index(&xa, usize::MAX);
    // check_multi_find_1.
    for order in 2..10u32 {
        let multi = 3usize << order;
        let next = 4usize << order;
        xa.store_order(multi, order, Some(xa_mk_value(multi)), GFP)
            .unwrap();
        assert_eq!(store_index(&xa, next), None);
        assert_eq!(store_index(&xa, next + 1), None);
        let mut index = 0;
        assert_eq!(
            xa.find(&mut index, usize::MAX, XA_PRESENT),
            Some(xa_mk_value(multi))
        );
        assert_eq!(index, multi);
        index = multi + 1;
        assert_eq!(
            xa.find(&mut index, usize::MAX, XA_PRESENT),
            Some(xa_mk_value(multi))
        );
        assert!(index >= multi && index < next);
        assert_eq!(
            xa.find_after(&mut index, usize::MAX, XA_PRESENT),
            Some(xa_mk_value(next))
        );
        assert_eq!(index, next);
        assert_eq!(xa.find_after(&mut index, next, XA_PRESENT), None);
        assert_eq!(index, next);
        assert_eq!(xa.erase(multi), Some(xa_mk_value(multi)));
        erase_index(&xa, next);
        erase_index(&xa, next + 1);
        assert!(xa.is_empty());
    }
    // check_multi_find_3: find_after from inside a multi-index entry skips it.
    for order in 5..usize::BITS {
        let mut index = 1usize << (order - 5);
        xa.store_order(0, order - 4, v(0), GFP).unwrap();
        assert_eq!(xa.find_after(&mut index, usize::MAX, XA_PRESENT), None);
        erase_index(&xa, 0);
    }
    drop(xa);
    assert_eq!(a.live(), 0);
}

#[test]
fn check_pause_like_iteration_of_many_orders() {
    // check_pause: entries of every order laid end to end are each visited once.
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let order_limit = usize::BITS;
    let mut index = 1usize;
    for order in 0..order_limit - 1 {
        assert_eq!(xa.store_order(index, order, v(index), GFP), Ok(None));
        index += 1 << order;
    }
    ok(&xa);
    let seen: Vec<_> = xa.iter().map(|(_, e)| e).collect();
    assert_eq!(seen.len(), order_limit as usize - 1);
    for (count, e) in seen.iter().enumerate() {
        assert_eq!(*e, idx(1 << count));
    }
    xa.destroy();
    drop(xa);
    assert_eq!(a.live(), 0);
}

#[test]
fn check_destroy_and_accounting() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    xa.destroy();
    assert!(xa.is_empty());
    store_index(&xa, 0);
    xa.destroy();
    assert!(xa.is_empty());
    for i in (0..10000).map(|i| i * 3) {
        store_index(&xa, i);
    }
    xa.set_mark(3, XA_MARK_1);
    store_index(&xa, usize::MAX);
    xa.destroy();
    assert!(xa.is_empty());
    assert!(!xa.get_mark(3, XA_MARK_1));
    drop(xa);
    assert_eq!(a.live(), 0, "every node freed");
}

#[test]
fn readers_concurrent_with_one_writer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    static A: TestAlloc = TestAlloc::new();
    let a: &'static TestAlloc = &A;
    {
        let xa = Arc::new(XArray::new_in(a));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for t in 0..3usize {
            let xa = Arc::clone(&xa);
            let stop = Arc::clone(&stop);
            readers.push(std::thread::spawn(move || {
                let mut seen = 0usize;
                let mut k = t;
                while !stop.load(Ordering::Relaxed) {
                    k = (k * 7 + 13) % 5000;
                    // Whatever a reader sees at an index is either nothing or that index's value.
                    if let Some(e) = xa.load(k * 1000) {
                        assert_eq!(e.to_value(), Some(k * 1000));
                        seen += 1;
                    }
                    let g = xa.read();
                    let mut i = k * 1000;
                    if let Some(e) = g.find(&mut i, usize::MAX, XA_PRESENT) {
                        assert_eq!(e.to_value(), Some(i));
                    }
                }
                seen
            }));
        }
        for round in 0..20 {
            for k in 0..5000usize {
                xa.store(k * 1000, Some(xa_mk_value(k * 1000)), GFP)
                    .unwrap();
            }
            for k in (round % 2..5000).step_by(2) {
                xa.erase(k * 1000);
            }
            xa.destroy();
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        let mut xa = Arc::try_unwrap(xa).ok().unwrap();
        xa.reclaim();
        assert!(xa.is_empty());
    }
    assert_eq!(a.live(), 0);
}

// ---------------------------------------------------------------------------------------------
// Property test against BTreeMap.

#[derive(Debug, Clone)]
enum Op {
    Store(usize, usize),
    Erase(usize),
    Insert(usize, usize),
    SetMark(usize, u8),
    ClearMark(usize, u8),
    Find(usize, usize, Option<u8>),
    Range(usize, usize),
}

fn index() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..300,
        2 => 0usize..100_000,
        1 => (0usize..64).prop_map(|k| usize::MAX - k),
        1 => (0u32..usize::BITS).prop_map(|b| 1usize << b),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (index(), 0usize..1000).prop_map(|(i, v)| Op::Store(i, v)),
        3 => index().prop_map(Op::Erase),
        1 => (index(), 0usize..1000).prop_map(|(i, v)| Op::Insert(i, v)),
        2 => (index(), 0u8..3).prop_map(|(i, m)| Op::SetMark(i, m)),
        1 => (index(), 0u8..3).prop_map(|(i, m)| Op::ClearMark(i, m)),
        2 => (index(), index(), proptest::option::of(0u8..3)).prop_map(|(a, b, m)| Op::Find(a, b, m)),
        1 => (index(), index()).prop_map(|(a, b)| Op::Range(a.min(b), a.max(b))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn xarray_matches_btreemap(ops in proptest::collection::vec(op(), 1..250)) {
        let a = TestAlloc::new();
        let xa = XArray::new_in(&a);
        let mut m: BTreeMap<usize, (usize, [bool; 3])> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Store(i, val) => {
                    let old = xa.store(i, Some(xa_mk_value(val)), GFP).unwrap();
                    let prev = m.get(&i).map(|e| e.0);
                    prop_assert_eq!(old.and_then(|e| e.to_value()), prev);
                    let marks = m.get(&i).map(|e| e.1).unwrap_or_default();
                    m.insert(i, (val, marks));
                }
                Op::Erase(i) => {
                    prop_assert_eq!(xa.erase(i).and_then(|e| e.to_value()), m.remove(&i).map(|e| e.0));
                }
                Op::Insert(i, val) => {
                    let r = xa.insert(i, Some(xa_mk_value(val)), GFP);
                    if let std::collections::btree_map::Entry::Vacant(e) = m.entry(i) {
                        prop_assert_eq!(r, Ok(()));
                        e.insert((val, [false; 3]));
                    } else {
                        prop_assert_eq!(r, Err(Error::EBUSY));
                    }
                }
                Op::SetMark(i, mk) => {
                    xa.set_mark(i, XaMark::new(mk));
                    if let Some(e) = m.get_mut(&i) { e.1[mk as usize] = true; }
                }
                Op::ClearMark(i, mk) => {
                    xa.clear_mark(i, XaMark::new(mk));
                    if let Some(e) = m.get_mut(&i) { e.1[mk as usize] = false; }
                }
                Op::Find(start, max, mk) => {
                    let filter = mk.map_or(XA_PRESENT, |k| XaFilter::Marked(XaMark::new(k)));
                    let mut index = start;
                    let got = xa.find(&mut index, max, filter).map(|e| (index, e.to_value().unwrap()));
                    let want = if start > max { None } else {
                        m.range(start..=max).find(|(_, e)| mk.is_none_or(|k| e.1[k as usize])).map(|(i, e)| (*i, e.0))
                    };
                    prop_assert_eq!(got, want);
                }
                Op::Range(lo, hi) => {
                    let got: Vec<_> = xa.iter_range(lo, hi).map(|(i, e)| (i, e.to_value().unwrap())).collect();
                    let want: Vec<_> = m.range(lo..=hi).map(|(i, e)| (*i, e.0)).collect();
                    prop_assert_eq!(got, want);
                }
            }
            if let Err(e) = xa.check() {
                return Err(TestCaseError::fail(e));
            }
        }
        for (i, e) in &m {
            prop_assert_eq!(xa.load(*i).and_then(|e| e.to_value()), Some(e.0));
            for k in 0..3u8 {
                prop_assert_eq!(xa.get_mark(*i, XaMark::new(k)), e.1[k as usize]);
            }
        }
        let got: Vec<_> = xa.iter().map(|(i, e)| (i, e.to_value().unwrap())).collect();
        let want: Vec<_> = m.iter().map(|(i, e)| (*i, e.0)).collect();
        prop_assert_eq!(got, want);
        for k in 0..3u8 {
            let got: Vec<_> = xa.iter_marked(XaMark::new(k)).map(|(i, _)| i).collect();
            let want: Vec<_> = m.iter().filter(|(_, e)| e.1[k as usize]).map(|(i, _)| *i).collect();
            prop_assert_eq!(got, want);
        }
        drop(xa);
        prop_assert_eq!(a.live(), 0);
    }

    #[test]
    fn alloc_matches_lowest_free_model(ops in proptest::collection::vec((any::<bool>(), 0u32..300, 0u32..40), 1..300)) {
        let a = TestAlloc::new();
        let xa = XArray::with_flags(&a, XaFlags::ALLOC);
        let mut used = std::collections::BTreeSet::new();
        for (alloc, x, span) in ops {
            if alloc {
                let limit = XaLimit::new(x, x + span);
                let want = (x..=x + span).find(|i| !used.contains(i));
                let got = xa.alloc(Some(xa_mk_value(x as usize)), limit, GFP);
                match want {
                    Some(w) => { prop_assert_eq!(got, Ok(w)); used.insert(w); }
                    None => prop_assert_eq!(got, Err(Error::EBUSY)),
                }
            } else {
                let was = used.remove(&x);
                prop_assert_eq!(xa.erase(x as usize).is_some(), was);
            }
            if let Err(e) = xa.check() {
                return Err(TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn store_range_on_empty_region(first in index(), len in 0usize..5000) {
        let a = TestAlloc::new();
        let xa = XArray::new_in(&a);
        let last = first.saturating_add(len);
        xa.store(first.wrapping_sub(1), Some(xa_mk_value(1)), GFP).unwrap();
        xa.store_range(first, last, Some(xa_mk_value(2)), GFP).unwrap();
        if let Err(e) = xa.check() { return Err(TestCaseError::fail(e)); }
        for i in [first, last, first.saturating_add(len / 2), first.saturating_add(len / 3)] {
            if i <= last { prop_assert_eq!(xa.load(i), Some(xa_mk_value(2))); }
        }
        if last != usize::MAX { prop_assert_eq!(xa.load(last + 1), None); }
        prop_assert_eq!(xa.load(first.wrapping_sub(1)), Some(xa_mk_value(1)));
        let entries: Vec<_> = xa.iter_range(first, last).collect();
        prop_assert!(!entries.is_empty());
        prop_assert_eq!(entries[0].0, first);
        xa.store_range(first, last, None, GFP).unwrap();
        if let Err(e) = xa.check() { return Err(TestCaseError::fail(e)); }
        prop_assert_eq!(xa.iter().count(), 1);
    }
}
