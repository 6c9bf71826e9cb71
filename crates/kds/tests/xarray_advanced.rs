//! lib/test_xarray.c's cases of the advanced API (`xa_state`), ported in our own words with
//! Linux's expected values: xas_retry, xa_shrink, xas_erase, multi_store (with node
//! counters), multi_store_advanced, the get_order checks, find_entry, pause, move,
//! create_range, store_iter, align, split, account, workingset, and the marks checks that
//! iterate with an `XaState`. Where a loop bound is reduced in debug builds it says so
//! (`BIG`); release builds (`cargo test --release`) run Linux's bounds.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod trees_support;

use std::cell::RefCell;
use std::ops::ControlFlow::{self, Break, Continue};
use std::ptr::NonNull;
use std::vec::Vec;

use kds::alloc::Gfp;
use kds::xarray::*;
use kds::Error;
use trees_support::TestAlloc;

const GFP: Gfp = Gfp::GFP_KERNEL;
const MAX: usize = usize::MAX;
/// Linux's `max_order` of 20 for the heavier loops; 12 in debug builds (time only).
const BIG: u32 = if cfg!(debug_assertions) { 12 } else { 20 };

type Xa<'a> = XArray<&'a TestAlloc>;

fn idx(i: usize) -> XaEntry {
    xa_mk_value(i & isize::MAX as usize)
}
fn v(i: usize) -> Option<XaEntry> {
    Some(idx(i))
}
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
/// A pointer entry (Linux stores `xa` itself).
fn ptr_entry(p: &u64) -> Option<XaEntry> {
    XaEntry::from_ptr(NonNull::from(p))
}
fn cont<T>(_: T) -> ControlFlow<()> {
    Continue(())
}

/// test_xarray.c `xa_store_order`: the `xas_nomem` loop.
fn xa_store_order(xa: &Xa, index: usize, order: u32, entry: Option<XaEntry>) -> Option<XaEntry> {
    let mut xas = XaState::new_order(xa, index, order);
    loop {
        let curr = xas.lock().store(entry);
        if !xas.nomem(GFP) {
            return curr;
        }
    }
}

#[test]
fn check_xas_retry() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let mut xas = XaState::new(&xa, 0);
    store_index(&xa, 0);
    store_index(&xa, 1);
    {
        let mut r = xas.rcu();
        assert_eq!(r.find(MAX), Some(xa_mk_value(0)));
        erase_index(&xa, 1);
        assert_eq!(r.reload(), Some(XA_RETRY_ENTRY));
        assert!(!r.retry(None));
        assert!(!r.retry(Some(xa_mk_value(0))));
        r.reset();
        assert_eq!(r.node(), XasNode::Restart);
        assert_eq!(r.next_entry(MAX), Some(xa_mk_value(0)));
        assert_eq!(r.node(), XasNode::Head);
    }
    assert_eq!(store_index(&xa, 1), None);
    {
        let mut r = xas.rcu();
        assert!(r.reload().unwrap().is_internal());
        r.reset();
        assert_eq!(r.next_entry(MAX), Some(xa_mk_value(0)));
    }
    // Iterating through retry entries.
    {
        let mut l = xas.lock();
        l.set(0);
        l.store(Some(XA_RETRY_ENTRY));
        l.set(1);
        l.store(Some(XA_RETRY_ENTRY));
        l.set(0);
        l.for_each(MAX, |l, _| {
            let i = l.index();
            l.store(v(i));
            cont(())
        });
    }
    erase_index(&xa, 0);
    erase_index(&xa, 1);
    assert!(xa.is_empty());
}

#[test]
fn check_xa_shrink() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let mut xas = XaState::new(&xa, 1);
    assert_eq!(store_index(&xa, 0), None);
    assert_eq!(store_index(&xa, 1), None);
    {
        let mut l = xas.lock();
        assert_eq!(l.load(), Some(xa_mk_value(1)));
        let XasNode::Node(node) = l.node() else {
            panic!("not on a node")
        };
        let raw = |l: &XasLocked<'_, '_, &TestAlloc>| {
            let g: &XaLockGuard<'_, &TestAlloc> = l.lock_guard();
            g.node_entry(node, 0)
        };
        assert_eq!(raw(&l), Some(xa_mk_value(0).raw()));
        assert_eq!(l.store(None), Some(xa_mk_value(1)));
        assert_eq!(xa.load(1), None);
        assert_eq!(l.node(), XasNode::Bounds);
        assert_eq!(raw(&l), Some(XA_RETRY_ENTRY.raw()));
        assert_eq!(l.load(), None);
    }
    assert_eq!(xa.load(0), Some(xa_mk_value(0)));
    erase_index(&xa, 0);
    assert!(xa.is_empty());
    for order in 0..15 {
        let max = (1usize << order) - 1;
        xa_store_order(&xa, 0, order, Some(xa_mk_value(0)));
        assert_eq!(xa.load(max), Some(xa_mk_value(0)));
        assert_eq!(xa.load(max + 1), None);
        let node = xa.head_node();
        assert_eq!(store_index(&xa, MAX), None);
        assert_ne!(xa.head_node(), node);
        assert_eq!(xa.load(max + 1), None);
        erase_index(&xa, MAX);
        assert_eq!(xa.head_node(), node);
        ok(&xa);
        assert_eq!(xa.erase(0), Some(xa_mk_value(0)));
    }
    assert!(xa.is_empty());
}

#[test]
fn check_xas_erase() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let mut xas = XaState::new(&xa, 0);
    for i in 0..200usize {
        for j in i..2 * i + 17 {
            xas.set(j);
            loop {
                xas.lock().store(v(j));
                if !xas.nomem(GFP) {
                    break;
                }
            }
        }
        xas.set(MAX);
        loop {
            xas.lock().store(Some(xa_mk_value(0)));
            if !xas.nomem(GFP) {
                break;
            }
        }
        let mut l = xas.lock();
        l.store(None);
        l.set(0);
        let mut j = i;
        l.for_each(MAX, |l, e| {
            assert_eq!(e, idx(j));
            l.store(None);
            j += 1;
            cont(())
        });
        drop(l);
        assert!(xa.is_empty(), "i={i}");
    }
}

fn head_counts(xa: &Xa) -> (usize, usize) {
    let id = xa.head_node().expect("a node at the top");
    xa.lock().node_counts(id).unwrap()
}

fn check_multi_store_1(xa: &Xa, index: usize, order: u32) {
    let mut xas = XaState::new(xa, index);
    let min = index & !((1usize << order) - 1);
    let max = min + (1usize << order);
    xa_store_order(xa, index, order, v(index));
    assert_eq!(xa.load(min), v(index));
    assert_eq!(xa.load(max - 1), v(index));
    assert_eq!(xa.load(max), None);
    assert_eq!(xa.load(min.wrapping_sub(1)), None);
    assert_eq!(xas.lock().store(v(min)), v(index));
    assert_eq!(xa.load(min), v(min));
    assert_eq!(xa.load(max - 1), v(min));
    assert_eq!(xa.load(max), None);
    assert_eq!(xa.load(min.wrapping_sub(1)), None);
    erase_index(xa, min);
    assert!(xa.is_empty());
}

fn check_multi_store_2(xa: &Xa, index: usize, order: u32) {
    let mut xas = XaState::new(xa, index);
    xa_store_order(xa, index, order, Some(xa_mk_value(0)));
    let mut l = xas.lock();
    assert_eq!(l.store(Some(xa_mk_value(1))), Some(xa_mk_value(0)));
    assert_eq!(l.index(), index);
    assert_eq!(l.store(None), Some(xa_mk_value(1)));
    drop(l);
    assert!(xa.is_empty());
}

fn check_multi_store_3(xa: &Xa, index: usize, order: u32) {
    let mut xas = XaState::new(xa, 0);
    let mut n = 0;
    xa_store_order(xa, index, order, v(index));
    let mut l = xas.lock();
    l.for_each(MAX, |_, e| {
        assert_eq!(e, idx(index));
        n += 1;
        cont(())
    });
    assert_eq!(n, 1);
    l.set(index + 1);
    l.for_each(MAX, |_, e| {
        assert_eq!(e, idx(index));
        n += 1;
        cont(())
    });
    assert_eq!(n, 2);
    drop(l);
    xa.destroy();
}

#[test]
fn check_multi_store() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let me = 0u64;
    xa_store_order(&xa, 0, 1, Some(xa_mk_value(0)));
    assert_eq!(xa.load(0), Some(xa_mk_value(0)));
    assert_eq!(xa.load(1), Some(xa_mk_value(0)));
    assert_eq!(xa.load(2), None);
    assert_eq!(head_counts(&xa), (2, 2));
    xa.store(3, ptr_entry(&me), GFP).unwrap();
    assert_eq!(xa.load(0), Some(xa_mk_value(0)));
    assert_eq!(xa.load(1), Some(xa_mk_value(0)));
    assert_eq!(xa.load(2), None);
    assert_eq!(head_counts(&xa), (3, 2));
    xa_store_order(&xa, 0, 2, Some(xa_mk_value(1)));
    for i in 0..4 {
        assert_eq!(xa.load(i), Some(xa_mk_value(1)));
    }
    assert_eq!(xa.load(4), None);
    assert_eq!(head_counts(&xa), (4, 4));
    xa_store_order(&xa, 0, usize::BITS - 1, None);
    assert!(xa.is_empty());
    store_index(&xa, 1);
    store_index(&xa, 2);
    xa_store_order(&xa, 0, 2, None);
    assert!(xa.is_empty());
    let max_order = if usize::BITS == 32 { 30 } else { 60 };
    for i in 0..max_order {
        for j in 0..max_order {
            xa_store_order(&xa, 0, i, v(i as usize));
            xa_store_order(&xa, 0, j, v(j as usize));
            ok(&xa);
            for k in 0..max_order {
                let e = xa.load((1usize << k) - 1);
                if i < k && j < k {
                    assert_eq!(e, None);
                } else {
                    assert_eq!(e, v(j as usize));
                }
            }
            xa.erase(0);
            assert!(xa.is_empty());
        }
    }
    for i in 0..20 {
        check_multi_store_1(&xa, 200, i);
        check_multi_store_1(&xa, 0, i);
        check_multi_store_1(&xa, (1 << i) + 1, i);
    }
    check_multi_store_2(&xa, 4095, 9);
    for i in 1..20 {
        check_multi_store_3(&xa, 0, i);
        check_multi_store_3(&xa, 1 << i, i);
    }
    drop(xa);
    assert_eq!(a.live(), 0);
}

/// `check_xa_multi_store_adv_add`: the page cache's `__filemap_add_folio`.
fn adv_add(xa: &Xa, index: usize, order: u32, p: Option<XaEntry>) {
    let nrpages = 1usize << order;
    assert_eq!(index & (nrpages - 1), 0);
    let mut xas = XaState::new(xa, index);
    xas.set_order(index, order);
    loop {
        xas.lock().store(p);
        assert!(matches!(xas.error(), None | Some(Error::ENOMEM)));
        if !xas.nomem(GFP) {
            break;
        }
    }
    assert_eq!(xas.error(), None);
    assert_eq!(xa.load(index), p);
}

/// `check_xa_multi_store_adv_delete`: `page_cache_delete`.
fn adv_delete(xa: &Xa, index: usize, order: u32) {
    let mut xas = XaState::new(xa, index);
    xas.set_order(index, order);
    let mut l = xas.lock();
    l.store(None);
    l.init_marks();
}

/// `test_get_entry`: `filemap_get_entry`.
fn get_entry(xa: &Xa, index: usize) -> Option<XaEntry> {
    let mut xas = XaState::new(xa, index);
    let mut r = xas.rcu();
    loop {
        r.reset();
        let p = r.load();
        if !r.retry(p) {
            return p;
        }
    }
}

fn check_xa_multi_store_adv(xa: &Xa, pos: usize, order: u32, some: &[u64; 2]) {
    let nrpages = 1usize << order;
    let (p1, p2) = (ptr_entry(&some[0]), ptr_entry(&some[1]));
    let index = pos >> 12;
    let base = index & !(nrpages - 1);
    let next = (base + nrpages) & !(nrpages - 1);
    let next_next = (next + nrpages) & !(nrpages - 1);
    adv_add(xa, base, order, p1);
    for i in 0..nrpages {
        assert_eq!(get_entry(xa, base + i), p1);
    }
    assert_eq!(get_entry(xa, next), None);
    adv_add(xa, next, 0, p2);
    assert_eq!(get_entry(xa, next), p2);
    adv_delete(xa, next, 0);
    adv_add(xa, next, order, p2);
    for i in 0..nrpages {
        assert_eq!(get_entry(xa, next + i), p2);
    }
    adv_delete(xa, next, order);
    adv_delete(xa, base, order);
    assert!(xa.is_empty());
    // Holes at base and next_next.
    adv_add(xa, next, order, p2);
    for i in 0..nrpages {
        assert_eq!(get_entry(xa, base + i), None);
        assert_eq!(get_entry(xa, next + i), p2);
        assert_eq!(get_entry(xa, next_next + i), None);
    }
    adv_delete(xa, next, order);
    assert!(xa.is_empty());
    // Holes at base and next.
    adv_add(xa, next_next, order, p2);
    for i in 0..nrpages {
        assert_eq!(get_entry(xa, base + i), None);
        assert_eq!(get_entry(xa, next + i), None);
        assert_eq!(get_entry(xa, next_next + i), p2);
    }
    adv_delete(xa, next_next, order);
    assert!(xa.is_empty());
}

#[test]
fn check_multi_store_advanced() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let some = [0xdeadbeefu64, 0xdeaddead];
    let end = MAX / 2;
    let mut pos = 7usize;
    while pos < end {
        for i in 0..BIG {
            check_xa_multi_store_adv(&xa, pos, i, &some);
            check_xa_multi_store_adv(&xa, pos + 157, i, &some);
        }
        // unsigned long arithmetic wraps in C.
        pos = pos.wrapping_mul(pos).wrapping_add(564);
    }
    drop(xa);
    assert_eq!(a.live(), 0);
}

#[test]
fn check_get_order() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    for i in 0..3 {
        assert_eq!(xa.get_order(i), 0);
    }
    for order in 0..BIG {
        for i in 0..10usize {
            xa_store_order(&xa, i << order, order, v(i << order));
            for j in i << order..(i + 1) << order {
                assert_eq!(xa.get_order(j), order);
            }
            xa.erase(i << order);
        }
    }
    assert!(xa.is_empty());
}

#[test]
fn check_xas_get_order() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let mut xas = XaState::new(&xa, 0);
    for order in 0..BIG {
        for i in 0..10usize {
            xas.set_order(i << order, order);
            loop {
                xas.lock().store(Some(xa_mk_value(i)));
                if !xas.nomem(GFP) {
                    break;
                }
            }
            for j in i << order..(i + 1) << order {
                xas.set_order(j, 0);
                let mut r = xas.rcu();
                r.load();
                assert_eq!(r.get_order(), order);
            }
            let mut l = xas.lock();
            l.set_order(i << order, order);
            l.store(None);
        }
    }
    assert!(xa.is_empty());
}

#[test]
fn check_xas_conflict_get_order() {
    let a = TestAlloc::new();
    let xa = XArray::new_in(&a);
    let mut xas = XaState::new(&xa, 0);
    for order in 0..BIG {
        for i in 0..10usize {
            xas.set_order(i << order, order);
            loop {
                xas.lock().store(Some(xa_mk_value(i)));
                if !xas.nomem(GFP) {
                    break;
                }
            }
            let j = i << order;
            let conflicts_once = |xas: &mut XaState<'_, &TestAlloc>, index, o| {
                let mut only_once = 0;
                xas.set_order(index, o);
                xas.lock().for_each_conflict(|l, e| {
                    assert_eq!(e, xa_mk_value(i));
                    assert_eq!(l.get_order(), order);
                    only_once += 1;
                    cont(())
                });
                assert_eq!(only_once, 1, "order {order} i {i} at {index} order {o}");
            };
            for k in 0..order {
                conflicts_once(&mut xas, j + (1 << k), k);
            }
            if order < BIG - 1 {
                conflicts_once(&mut xas, (i & !1) << order, order + 1);
            }
            xas.set_order(i << order, order);
            xas.lock().store(None);
        }
    }
    assert!(xa.is_empty());
}
