//! Maple tree tests: lib/test_maple_tree.c (Linux 6.18) cases ported with their expected
//! values (docs/upstream/test_maple_tree.md lists which), allocation-failure injection, and a
//! proptest against a `BTreeMap` model of ranges with `mt_validate` after every step.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod trees_support;

use std::collections::BTreeMap;
use std::vec::Vec;

use kds::alloc::Gfp;
use kds::maple_tree::*;
use kds::Error;
use proptest::prelude::*;
use trees_support::TestAlloc;

const GFP: Gfp = Gfp::GFP_KERNEL;
const MAX: usize = usize::MAX;
const MTREE_ALLOC_MAX: usize = 0x2000000000000;

type Mt<'a> = MapleTree<&'a TestAlloc>;

fn v(i: usize) -> Option<XaEntry> {
    Some(xa_mk_value(i & isize::MAX as usize))
}
/// A raw word as an entry (the `(void *)0xb1` of the fuzzer cases).
fn p(raw: usize) -> Option<XaEntry> {
    XaEntry::from_raw(raw)
}
fn ok(mt: &Mt) {
    if let Err(e) = mt.validate() {
        panic!("mt_validate: {e}");
    }
}
fn new(a: &TestAlloc, flags: MtFlags) -> Mt<'_> {
    MapleTree::new(flags, a)
}
fn check_load(mt: &Mt, i: usize, e: Option<XaEntry>) {
    assert_eq!(mt.load(i), e, "load {i}");
}
fn check_index_load(mt: &Mt, i: usize) {
    check_load(mt, i, v(i));
}
fn insert_index(mt: &Mt, i: usize) -> Result<(), Error> {
    mt.insert(i, v(i), GFP)
}
fn erase_index(mt: &Mt, i: usize) {
    assert_eq!(mt.erase(i), v(i), "erase {i}");
    check_load(mt, i, None);
}
fn check_store_range(mt: &Mt, s: usize, e: usize, ptr: Option<XaEntry>, exp: Result<(), Error>) {
    assert_eq!(mt.store_range(s, e, ptr, GFP), exp, "store {s}-{e}");
    if exp.is_ok() {
        for i in s..=e {
            check_load(mt, i, ptr);
        }
    }
}
fn check_insert_range(mt: &Mt, s: usize, e: usize, ptr: Option<XaEntry>, exp: Result<(), Error>) {
    assert_eq!(mt.insert_range(s, e, ptr, GFP), exp, "insert {s}-{e}");
    if exp.is_ok() {
        for i in s..=e {
            check_load(mt, i, ptr);
        }
    }
}

/// `check_seq`.
fn check_seq(mt: &Mt, max: usize) {
    assert!(mt.is_empty());
    for i in 0..=max {
        insert_index(mt, i).unwrap();
        for j in 0..=i {
            check_index_load(mt, j);
        }
        if i > 0 {
            assert!(mt.height() > 0);
        }
        check_load(mt, i + 1, None);
    }
    ok(mt);
}

/// `check_rev_seq`.
fn check_rev_seq(mt: &Mt, max: usize) {
    assert!(mt.is_empty());
    let mut i = max;
    while i > 0 {
        insert_index(mt, i).unwrap();
        for j in i..=max {
            check_index_load(mt, j);
        }
        check_load(mt, i - 1, None);
        mt.set_in_rcu();
        assert!(mt.height() > 0);
        mt.clear_in_rcu();
        i -= 1;
    }
    check_load(mt, max + 1, None);
    ok(mt);
}

#[test]
fn seq_and_rev_seq() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    check_seq(&mt, 16);
    mt.destroy();
    check_seq(&mt, 1000);
    mt.destroy();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    check_rev_seq(&mt, 1000);
    mt.destroy();
}

#[test]
fn seed_insert_load() {
    // maple_tree_seed(): set[] = {5015, 5014, 5017, 25, 1000, 1001, 1002, 1003, 1005, 0,
    // 5003, 5002}; `&tree` and `ptr` are two aligned pointers.
    let set = [
        5015, 5014, 5017, 25, 1000, 1001, 1002, 1003, 1005, 0, 5003, 5002,
    ];
    let (tree, ptr) = (p(0x1000), p(0x2000));
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    check_load(&mt, set[0], None);
    mt.insert(set[9], tree, GFP).unwrap();
    check_load(&mt, set[9], tree);
    check_load(&mt, set[0], None);
    mt.insert(set[10], ptr, GFP).unwrap();
    check_load(&mt, set[9], tree);
    check_load(&mt, set[11], None);
    check_load(&mt, set[10], ptr);
    mt.destroy();
    mt.insert(set[0], tree, GFP).unwrap();
    assert_eq!(mt.insert(set[0], tree, GFP), Err(Error::EEXIST));
    check_load(&mt, set[0], tree);
    check_load(&mt, set[1], None);
    mt.insert(set[1], ptr, GFP).unwrap();
    check_load(&mt, set[1], ptr);
    check_load(&mt, set[0], tree);
    mt.insert(set[6], ptr, GFP).unwrap();
    mt.insert(set[7], tree, GFP).unwrap();
    check_load(&mt, set[0], tree);
    check_load(&mt, set[1], ptr);
    check_load(&mt, set[6], ptr);
    check_load(&mt, set[7], tree);
    mt.destroy();
    mt.insert(set[5], ptr, GFP).unwrap();
    mt.insert(set[7], tree, GFP).unwrap();
    mt.insert(set[6], ptr, GFP).unwrap();
    check_load(&mt, set[5], ptr);
    check_load(&mt, set[6], ptr);
    check_load(&mt, set[7], tree);
    mt.destroy();
    let vals = [ptr, tree, ptr, tree, ptr, tree, ptr, tree, ptr, tree];
    for k in 0..10 {
        mt.insert(set[k], vals[k], GFP).unwrap();
        for j in 0..=k {
            check_load(&mt, set[j], vals[j]);
        }
        ok(&mt);
    }
    mt.destroy();
}

#[test]
fn lower_upper_mid_split() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    let lb = |mt: &Mt| {
        let huge = 4000usize * 1000 * 1000;
        let mut i = huge;
        while i > 4096 {
            mt.insert(i, p(i), GFP).unwrap();
            let mut j = huge;
            while j >= i {
                check_load(mt, j - 1, None);
                check_load(mt, j, p(j));
                check_load(mt, j + 1, None);
                j /= 2;
            }
            i /= 2;
        }
        ok(mt);
        mt.destroy();
    };
    lb(&mt);
    let huge = 4000usize * 1000 * 1000;
    let mut i = 4096;
    while i < huge {
        mt.insert(i, p(i), GFP).unwrap();
        check_load(&mt, i, p(i));
        i *= 2;
    }
    ok(&mt);
    mt.destroy();
    let huge = 8000usize * 1000 * 1000;
    mt.insert(huge, p(huge), GFP).unwrap();
    mt.insert(0, v(0), GFP).unwrap();
    lb(&mt);
    drop(mt);
    assert_eq!(a.live(), 0);
}

/// `check_ranges`, first part.
#[test]
fn ranges_basic() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    let r = [10, 15, 20, 25, 17, 22, 9, 1000, 100, 200, 45, 168, 118, 128];
    assert!(mt.is_empty());
    check_insert_range(&mt, r[0], r[1], v(r[0]), Ok(()));
    check_insert_range(&mt, r[2], r[3], v(r[2]), Ok(()));
    check_insert_range(&mt, r[4], r[5], v(r[4]), Err(Error::EEXIST));
    assert!(mt.height() > 0);
    check_store_range(&mt, r[4], r[5], v(r[4]), Ok(()));
    check_store_range(&mt, r[6], r[7], v(r[6]), Ok(()));
    check_store_range(&mt, r[8], r[9], v(r[8]), Ok(()));
    ok(&mt);
    mt.destroy();
    assert_eq!(mt.height(), 0);
    check_seq(&mt, 50);
    check_store_range(&mt, 5, 47, v(47), Ok(()));
    ok(&mt);
    mt.destroy();
    for n in [100, 200] {
        check_seq(&mt, n);
        check_store_range(&mt, r[10], r[11], v(r[10]), Ok(()));
        ok(&mt);
        mt.destroy();
    }
    check_seq(&mt, 30);
    check_store_range(&mt, 6, 18, v(6), Ok(()));
    ok(&mt);
    mt.destroy();
    // Overwrite across multiple levels.
    check_seq(&mt, 400);
    check_store_range(&mt, r[12], r[13], v(r[12]), Ok(()));
    for i in [140, 141, 142, 143, 130, 131, 132, 133, 134, 135] {
        mt.erase(i);
    }
    check_load(&mt, r[12], v(r[12]));
    check_load(&mt, r[13], v(r[12]));
    check_load(&mt, r[13] - 1, v(r[12]));
    check_load(&mt, r[13] + 1, v(r[13] + 1));
    check_load(&mt, 135, None);
    check_load(&mt, 140, None);
    ok(&mt);
    mt.destroy();
}

/// `check_ranges`, the overwrites at the end of the tree.
#[test]
fn ranges_end_of_tree() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    check_seq(&mt, 400);
    check_store_range(&mt, 353, 361, v(353), Ok(()));
    check_store_range(&mt, 347, 352, v(347), Ok(()));
    check_load(&mt, 346, v(346));
    for i in 347..=352 {
        check_load(&mt, i, v(347));
    }
    for i in 353..=361 {
        check_load(&mt, i, v(353));
    }
    check_load(&mt, 362, v(362));
    ok(&mt);
    mt.destroy();
    for end in [363, 364] {
        check_seq(&mt, 400);
        check_store_range(&mt, 352, 364, None, Ok(()));
        check_store_range(&mt, 351, end, v(352), Ok(()));
        check_load(&mt, 350, v(350));
        check_load(&mt, 351, v(352));
        for i in 352..=end {
            check_load(&mt, i, v(352));
        }
        if end == 363 {
            check_load(&mt, 364, None);
        }
        check_load(&mt, 365, v(365));
        ok(&mt);
        mt.destroy();
    }
    check_seq(&mt, 400);
    check_store_range(&mt, 362, 367, v(362), Ok(()));
    check_store_range(&mt, 353, 361, v(353), Ok(()));
    ok(&mt);
    mt.destroy();
    for i in 0..=500 {
        check_store_range(&mt, i * 5, (i + 1) * 5, v(i * 5), Ok(()));
    }
    check_store_range(&mt, 2400, 2400, v(2400), Ok(()));
    check_store_range(&mt, 2411, 2411, v(2411), Ok(()));
    check_store_range(&mt, 2412, 2412, v(2412), Ok(()));
    check_store_range(&mt, 2396, 2400, v(4052020), Ok(()));
    check_store_range(&mt, 2402, 2402, v(2402), Ok(()));
    ok(&mt);
    mt.destroy();
    for i in 0..=500 {
        check_store_range(&mt, i * 5, (i + 1) * 5, v(i * 5), Ok(()));
    }
    check_store_range(&mt, 2422, 2422, v(2422), Ok(()));
    check_store_range(&mt, 2424, 2424, v(2424), Ok(()));
    check_store_range(&mt, 2425, 2425, v(2), Ok(()));
    check_store_range(&mt, 2460, 2470, None, Ok(()));
    check_store_range(&mt, 2435, 2460, v(2435), Ok(()));
    check_store_range(&mt, 2461, 2470, v(2461), Ok(()));
    ok(&mt);
    mt.destroy();
}

/// `check_ranges`, allocation trees: rebalanced gaps and splits all the way up.
#[test]
fn ranges_alloc_tree() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    for i in 0..=50 {
        check_store_range(&mt, i * 10, (i + 1) * 10, v(i * 10), Ok(()));
    }
    for i in 161..=163 {
        check_store_range(&mt, i, i, v(i), Ok(()));
    }
    check_store_range(&mt, 240, 249, None, Ok(()));
    for i in [200, 210, 220, 230] {
        mt.erase(i);
    }
    ok(&mt);
    mt.destroy();
    for i in 0..=500 {
        check_store_range(&mt, i * 10, (i + 1) * 10, v(i * 10), Ok(()));
    }
    check_store_range(&mt, 4600, 4959, v(1), Ok(()));
    ok(&mt);
    mt.destroy();
    for i in 0..=500 {
        check_store_range(&mt, i * 10, (i + 1) * 10, v(i * 10), Ok(()));
    }
    for i in [4811, 4812, 4861, 4862] {
        check_store_range(&mt, i, i, v(i), Ok(()));
    }
    check_store_range(&mt, 4842, 4849, None, Ok(()));
    ok(&mt);
    mt.destroy();
    for i in 0..=1300 {
        check_store_range(&mt, i * 10, (i + 1) * 10, v(i * 10), Ok(()));
    }
    for i in (5..215).step_by(10) {
        check_store_range(&mt, 11450 + i, 11450 + i + 1, None, Ok(()));
    }
    for i in (5..65).step_by(10) {
        check_store_range(&mt, 11770 + i, 11770 + i + 1, None, Ok(()));
    }
    for i in (5..45).step_by(10) {
        check_store_range(&mt, 11700 + i, 11700 + i + 1, None, Ok(()));
    }
    ok(&mt);
    mt.destroy();
    for i in 0..=1200 {
        check_store_range(&mt, i * 10, (i + 1) * 10, v(i * 10), Ok(()));
    }
    for i in (5..455).step_by(10) {
        check_store_range(&mt, 7800 + i, 7800 + i + 1, None, Ok(()));
    }
    for i in 1..16 {
        check_store_range(&mt, 8185 + i, 8185 + i + 1, v(8185 + i), Ok(()));
    }
    check_store_range(&mt, 8184, 8184, v(8184), Ok(()));
    ok(&mt);
}

/// `check_next_entry` and `check_prev_entry`.
#[test]
fn next_and_prev_entry() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    check_seq(&mt, 30);
    let mut mas = mt.mas(0, 0);
    assert_eq!(mas.walk(), v(0));
    for i in 1..=31 {
        let e = mas.next(30);
        assert_eq!(e, if i > 30 { None } else { v(i) }, "next {i}");
    }
    mt.destroy();
    check_seq(&mt, 30);
    let mut mas = mt.mas(16, 16);
    assert_eq!(mas.find(MAX), v(16));
    assert_eq!(mas.prev(0), v(15));
    drop(mt);

    let mt = new(&a, MtFlags::ALLOC_RANGE);
    let g = mt.lock();
    let mut mas = g.mas(0, 0);
    for i in 0..=16 {
        mas.set_range(i * 10, i * 10 + 5);
        mas.store_gfp(v(i), GFP).unwrap();
    }
    mas.set(20);
    assert_eq!(mas.walk(), v(2));
    assert_eq!(mas.prev(19), None);
    mas.set(80);
    assert_eq!(mas.walk(), v(8));
    assert_eq!(mas.prev(76), None);
}
