//! Maple tree tests: lib/test_maple_tree.c (Linux 6.18) cases ported with their expected
//! values (docs/upstream/test_maple_tree.md lists which), allocation-failure injection, and a
//! proptest against a `BTreeMap` model of ranges with `mt_validate` after every step.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod maple_support;
mod trees_support;

use std::vec::Vec;

use kds::alloc::Gfp;
use kds::maple_tree::*;
use kds::Error;
use maple_support::Model;
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
        assert!(mt.height() < 4);
    }
    for i in (5..215).step_by(10) {
        check_store_range(&mt, 11450 + i, 11450 + i + 1, None, Ok(()));
    }
    for i in (5..65).step_by(10) {
        check_store_range(&mt, 11770 + i, 11770 + i + 1, None, Ok(()));
    }
    assert!(mt.height() < 4);
    for i in (5..45).step_by(10) {
        check_store_range(&mt, 11700 + i, 11700 + i + 1, None, Ok(()));
    }
    // "Cause a 3 child split all the way up the tree."
    assert!(mt.height() >= 4);
    ok(&mt);
    mt.destroy();
    for i in 0..=1200 {
        check_store_range(&mt, i * 10, (i + 1) * 10, v(i * 10), Ok(()));
        assert!(mt.height() < 4);
    }
    for i in (5..455).step_by(10) {
        check_store_range(&mt, 7800 + i, 7800 + i + 1, None, Ok(()));
    }
    for i in 1..16 {
        check_store_range(&mt, 8185 + i, 8185 + i + 1, v(8185 + i), Ok(()));
    }
    check_store_range(&mt, 8184, 8184, v(8184), Ok(()));
    assert_eq!(mt.height(), 4);
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

/// /proc/self/maps of `check_alloc_range` / `check_alloc_rev_range`: inclusive start,
/// exclusive end.
const MAPS: [usize; 42] = [
    0x565234af2000,
    0x565234af4000,
    0x565234af4000,
    0x565234af9000,
    0x565234af9000,
    0x565234afb000,
    0x565234afc000,
    0x565234afd000,
    0x565234afd000,
    0x565234afe000,
    0x565235def000,
    0x565235e10000,
    0x7f36d4bfd000,
    0x7f36d4ee2000,
    0x7f36d4ee2000,
    0x7f36d4f04000,
    0x7f36d4f04000,
    0x7f36d504c000,
    0x7f36d504c000,
    0x7f36d5098000,
    0x7f36d5098000,
    0x7f36d5099000,
    0x7f36d5099000,
    0x7f36d509d000,
    0x7f36d509d000,
    0x7f36d509f000,
    0x7f36d509f000,
    0x7f36d50a5000,
    0x7f36d50b9000,
    0x7f36d50db000,
    0x7f36d50db000,
    0x7f36d50dc000,
    0x7f36d50dc000,
    0x7f36d50fa000,
    0x7f36d50fa000,
    0x7f36d5102000,
    0x7f36d5102000,
    0x7f36d5103000,
    0x7f36d5103000,
    0x7f36d5104000,
    0x7f36d5104000,
    0x7f36d5105000,
];
const MAPS_TAIL: [usize; 6] = [
    0x7fff5876b000,
    0x7fff5878d000,
    0x7fff5878e000,
    0x7fff58791000,
    0x7fff58791000,
    0x7fff58793000,
];
/// Start of hole, end of hole (exclusive), size.
const HOLES: [usize; 9] = [
    0x565234afb000,
    0x565234afc000,
    0x1000,
    0x565234afe000,
    0x565235def000,
    0x12F1000,
    0x565235e10000,
    0x7f36d4bfd000,
    0x28E49EDED000,
];

/// An allocation request: min, max, size, expected start, expected result.
type AllocReq = (usize, usize, usize, usize, Result<(), Error>);

fn fill_maps(mt: &Mt) {
    mt.store_range(MTREE_ALLOC_MAX, MAX, Some(XA_ZERO_ENTRY), GFP)
        .unwrap();
    for r in MAPS.chunks(2).chain(MAPS_TAIL.chunks(2)) {
        check_insert_range(mt, r[0] >> 12, (r[1] >> 12) - 1, v(r[0] >> 12), Ok(()));
        ok(mt);
    }
}

/// `check_alloc_range`.
#[test]
fn alloc_range() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    fill_maps(&mt);
    let mut min = 0x565234af2000usize;
    {
        let g = mt.lock();
        let mut mas = g.mas(0, 0);
        for h in HOLES.chunks(3) {
            mas.empty_area(min >> 12, h[1] >> 12, h[2] >> 12).unwrap();
            assert_eq!(mas.index, h[0] >> 12);
            min = h[1];
            mas.reset();
        }
    }
    let ebusy = Err(Error::EBUSY);
    let req: [AllocReq; 7] = [
        (
            0x565234af9000,
            0x7fff58791000,
            0x1000,
            0x565234afb000,
            Ok(()),
        ),
        (0x0, 0x7fff58791000, 0x1F00, 0x0, Ok(())),
        (
            34148797436 << 12,
            0x7fff587af000,
            0x3000,
            34148798629 << 12,
            Ok(()),
        ),
        (34148798623 << 12, 34148798683 << 12, 0x15000, 0, ebusy),
        (
            34148798623 << 12,
            0x7fff587af000,
            0x10000,
            34148798632 << 12,
            Ok(()),
        ),
        (0, MAX, MAX, 0, ebusy),
        (
            0,
            MAX,
            4503599618982063usize << 12,
            34359052178 << 12,
            ebusy,
        ),
    ];
    for (i, &(s, e, size, exp, ret)) in req.iter().enumerate() {
        let r = mt.alloc_range(v(s >> 12), size >> 12, s >> 12, e >> 12, GFP);
        match ret {
            Ok(()) => assert_eq!(r, Ok(exp >> 12), "request {i}"),
            Err(err) => assert_eq!(r, Err(err), "request {i}"),
        }
        ok(&mt);
    }
}

/// `check_alloc_rev_range`.
#[test]
fn alloc_rev_range() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    fill_maps(&mt);
    let mut min = 0usize;
    {
        let g = mt.lock();
        let mut mas = g.mas(0, 0);
        for h in HOLES.chunks(3) {
            mas.empty_area_rev(min, h[1] >> 12, h[2] >> 12).unwrap();
            assert_eq!(mas.last + 1, h[1] >> 12);
            assert_eq!(mas.index, (h[1] >> 12) - (h[2] >> 12));
            min = h[1] >> 12;
            mas.reset();
        }
    }
    let ebusy = Err(Error::EBUSY);
    let req: [AllocReq; 6] = [
        (
            0x565234af9000,
            0x7fff58791000,
            0x1000,
            0x7fff5878d << 12,
            Ok(()),
        ),
        (0x0, 0x565234AF1 << 12, 0x3000, 0x565234AEE << 12, Ok(())),
        (0x0, MAX, 0x1000, 562949953421311 << 12, Ok(())),
        (0x0, 0x7F36D510A << 12, 0x4000, 0x7F36D5106 << 12, Ok(())),
        (0x0, 34148798629 << 12, 19 << 12, 34148797418 << 12, Ok(())),
        (0x0, MAX, 562915594369134usize << 12, 0, ebusy),
    ];
    for (i, &(s, e, size, exp, ret)) in req.iter().enumerate() {
        // check_mtree_alloc_rrange passes `end - 1`.
        let r = mt.alloc_rrange(v(s >> 12), size >> 12, s >> 12, (e >> 12) - 1, GFP);
        match ret {
            Ok(()) => assert_eq!(r, Ok(exp >> 12), "request {i}"),
            Err(err) => assert_eq!(r, Err(err), "request {i}"),
        }
        ok(&mt);
    }
    mt.erase(34148798727);
    let r = mt.alloc_rrange(p(0x1000), 210253414, 0, 34359052173 - 1, GFP);
    assert_eq!(r, Ok(34148798725));
    ok(&mt);
}

/// `check_empty_area_window`.
#[test]
fn empty_area_window() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    for i in 1..=20 {
        mt.store_range(i * 10, i * 10 + 9, v(i), GFP).unwrap();
    }
    mt.store_range(160, 169, None, GFP).unwrap();
    ok(&mt);
    let mut mas = mt.mas(0, 0);
    let ebusy = Err(Error::EBUSY);
    assert_eq!(mas.empty_area_rev(5, 90, 10), ebusy);
    assert_eq!(mas.empty_area_rev(6, 90, 5), ebusy);
    assert_eq!(mas.empty_area_rev(5, 90, 5), Ok(()));
    assert_eq!((mas.index, mas.last), (5, 9));
    assert_eq!(mas.empty_area_rev(5, 217, 9), Ok(()));
    assert_eq!((mas.index, mas.last), (161, 169));
    assert_eq!(mas.empty_area_rev(100, 218, 3), Ok(()));
    assert_eq!((mas.index, mas.last), (216, 218));
    assert_eq!(mas.empty_area_rev(100, 218, 16), ebusy);
    assert_eq!(mas.empty_area_rev(167, 200, 4), ebusy);
    assert_eq!(mas.empty_area_rev(100, 162, 4), ebusy);
    assert_eq!(mas.empty_area(0, 100, 9), Ok(()));
    assert_eq!((mas.index, mas.last), (0, 8));
    assert_eq!(mas.empty_area(0, 100, 4), Ok(()));
    assert_eq!((mas.index, mas.last), (0, 3));
    assert_eq!(mas.empty_area(0, 100, 11), ebusy);
    assert_eq!(mas.empty_area(5, 100, 6), ebusy);
    assert_eq!(mas.empty_area(0, 8, 10), ebusy);
    let _ = mas.empty_area(100, 165, 3);
    assert_eq!(mas.empty_area(100, 163, 6), ebusy);
    // Argument checks (mas_empty_area): min > max and size 0 are -EINVAL.
    assert_eq!(mas.empty_area(10, 9, 1), Err(Error::EINVAL));
    assert_eq!(mas.empty_area_rev(0, 9, 0), Err(Error::EINVAL));
}

/// `check_empty_area_fill`.
#[test]
fn empty_area_fill() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    let max = 0x25D78000usize;
    for shift in 12..=16 {
        let size = 1usize << shift;
        for _ in 0..5000 {
            let g = mt.lock();
            let mut mas = g.mas(0, 0);
            assert_eq!(mas.empty_area(0, max, size), Ok(()));
            assert_eq!(mas.last, mas.index + size - 1);
            mas.store_gfp(p(size), GFP).unwrap();
        }
    }
    ok(&mt);
    let mut mas = mt.mas(0, 0);
    assert_eq!(mas.empty_area(0, max, 0x1000), Err(Error::EBUSY));
    let mut i = 629440511usize;
    while i <= 629440800 {
        mt.store_range(i, i + 5, p(i), GFP).unwrap();
        i += 6;
    }
    mt.erase(631668735);
    mt.erase(629506047);
    ok(&mt);
    let mut mas = mt.mas(0, 0);
    assert_eq!(mas.empty_area(629506048, 690000000, 0x5000), Ok(()));
}

/// `check_root_expand` (`&check_prev_entry` is an aligned pointer, then with bit 0 and 1 set).
#[test]
fn root_expand() {
    let a = TestAlloc::new();
    let ptr = 0x4000usize;
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    {
        let g = mt.lock();
        let mut mas = g.mas(0, 0);
        mas.set(3);
        assert_eq!(mas.walk(), None);
        assert_eq!((mas.index, mas.last), (0, MAX));
        mas.set(1);
        mas.store_gfp(p(ptr), GFP).unwrap();
        mas.set(0);
        assert_eq!(mas.walk(), None);
        mas.set(1);
        assert_eq!(mas.walk(), p(ptr));
        mas.set(2);
        assert_eq!(mas.walk(), None);
    }
    mt.destroy();
    let mt = new(&a, MtFlags::NONE);
    {
        let g = mt.lock();
        let mut mas = g.mas(0, 0);
        mas.store_gfp(p(ptr), GFP).unwrap();
        mas.set(5);
        assert_eq!(mas.walk(), None);
        assert_eq!((mas.index, mas.last), (1, MAX));
        mas.set_range(0, 100);
        assert_eq!(mas.walk(), p(ptr));
        assert_eq!(mas.last, 0);
    }
    for bits in [1, 2] {
        mt.destroy();
        let g = mt.lock();
        let mut mas = g.mas(0, 0);
        mas.store_gfp(p(ptr | bits), GFP).unwrap();
        assert_eq!(mas.next(MAX), None);
        assert!(mas.index == 1 || mas.last == MAX);
        mas.set(1);
        assert_eq!(mas.prev(0), p(ptr | bits));
        assert!(mas.index == 0 || mas.last == 0);
    }
    drop(mt);
    ok(&new(&a, MtFlags::NONE));
}

/// `check_rev_find`.
#[test]
fn rev_find() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    for i in 0..=200 {
        mt.store_range(i * 10, i * 10 + 5, v(i), GFP).unwrap();
    }
    let mut mas = mt.mas(0, 0);
    mas.set(1000);
    assert_eq!(mas.find_rev(1000), v(100));
    assert_eq!(mas.find_rev(1000), None);
    mas.set(999);
    assert_eq!(mas.find_rev(997), None);
    mas.set(1000);
    assert_eq!(mas.find_rev(900), v(100));
    assert_eq!(mas.find_rev(900), v(99));
    mas.set(20);
    assert_eq!(mas.find_rev(0), v(2));
    assert_eq!(mas.find_rev(0), v(1));
    assert_eq!(mas.find_rev(0), v(0));
    assert_eq!(mas.find_rev(0), None);
}

/// The expected entries of `check_find`: 0, 1, 4, 16, ... (64 holds `XA_ZERO_ENTRY`).
fn find_expect(val: usize) -> Option<XaEntry> {
    if val == 64 {
        Some(XA_ZERO_ENTRY)
    } else {
        v(val)
    }
}

fn next_val(val: usize) -> usize {
    match val {
        0 => 1,
        _ if val.checked_mul(4).is_none() || (val << 2) < val => MAX,
        _ => val << 2,
    }
}

/// `check_find`.
#[test]
fn find() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    let top = 4398046511104usize;
    insert_index(&mt, 0).unwrap();
    let mut val = 1usize;
    for _ in 0..=20 {
        if val != 64 {
            insert_index(&mt, val).unwrap();
        } else {
            mt.insert(val, Some(XA_ZERO_ENTRY), GFP).unwrap();
        }
        val <<= 2;
    }
    // mas_find up to 268435456, then mas_for_each with and without mas_pause.
    for pause in [false, true] {
        let mut mas = mt.mas(0, 0);
        let mut val = 0;
        while let Some(e) = mas.find(if pause { MAX } else { 268435456 }) {
            assert_eq!(Some(e), find_expect(val));
            val = next_val(val);
            if pause {
                mas.pause();
            }
        }
    }
    let mut val = 0;
    for (_, e) in mt.iter(0, 300) {
        assert_eq!(Some(e), v(val));
        val = next_val(val);
        if val == 64 {
            val <<= 2;
        }
    }
    insert_index(&mt, MAX).unwrap();
    let (mut val, mut count) = (0usize, 0);
    for (_, e) in mt.iter(0, MAX) {
        if val == top {
            assert_eq!(Some(e), v(isize::MAX as usize));
        } else {
            assert_eq!(Some(e), v(val));
        }
        val = next_val(val);
        if val == 64 {
            val <<= 2;
        }
        count += 1;
        assert!(count <= 25);
    }
    erase_index(&mt, MAX);
    let mut index = 17;
    assert_eq!(mt.find(&mut index, 512), v(256));
    let mut index = 17;
    assert_eq!(mt.find(&mut index, 20), None);
    find_tail(&mt, top);
}

/// The second half of `check_find`: ULONG_MAX present, pause, mas_prev from the end.
fn find_tail(mt: &Mt, top: usize) {
    insert_index(mt, MAX).unwrap();
    let g = mt.lock();
    let mut mas = g.mas(0, 0);
    let mut val = 0usize;
    while let Some(e) = mas.find(MAX) {
        if val == 64 {
            assert_eq!(e, XA_ZERO_ENTRY);
        } else if val == top {
            assert_eq!(Some(e), v(isize::MAX as usize));
        } else {
            assert_eq!(Some(e), v(val));
        }
        val = next_val(val);
        mas.pause();
    }
    mas.set(1048576);
    assert!(mas.find(1048576).is_some());
    mas.reset();
    mas.index = MAX;
    mas.find(MAX);
    let entry = mas.prev(0);
    let (index, last) = (mas.index, mas.last);
    mas.reset();
    mas.index = MAX;
    mas.last = MAX;
    mas.erase();
    mas.reset();
    let entry2 = mas.prev(0);
    assert_eq!(entry, entry2);
    assert_eq!((index, last), (mas.index, mas.last));
    mas.status = MaStatus::None;
    mas.index = MAX;
    mas.last = MAX;
    assert_eq!(mas.prev(0), entry);
    mas.set(0);
    assert_eq!(mas.prev(0), None);
}

/// `check_find_2`.
#[test]
fn find_2() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    assert_eq!(mt.mas(0, 0).find(MAX), None);
    for i in 0..256 {
        insert_index(&mt, i).unwrap();
        let mut mas = mt.mas(0, 0);
        let mut j = 0;
        while let Some(e) = mas.find(MAX) {
            assert_eq!(Some(e), v(j));
            j += 1;
        }
        assert_eq!(j, i + 1);
    }
    for i in 0..256 {
        erase_index(&mt, i);
        let mut mas = mt.mas(0, 0);
        let mut j = i + 1;
        while let Some(e) = mas.find(MAX) {
            assert_eq!(Some(e), v(j));
            j += 1;
        }
        assert_eq!(j, 256);
        ok(&mt);
    }
    assert!(mt.is_empty());
}

/// `check_gap_combining` (64-bit sequences).
#[test]
fn gap_combining() {
    let seq100 = [
        74, 75, 76, 50, 100, 2, 44, 45, 46, 43, 20, 50, 3, 80, 81, 82, 76, 2, 79, 85, 4,
    ];
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    let index = seq100[0];
    check_seq(&mt, 100);
    mt.erase(seq100[2]);
    check_load(&mt, seq100[2], None);
    mt.erase(seq100[1]);
    check_load(&mt, seq100[1], None);
    let mut mas = mt.mas(index, index);
    assert_eq!(mas.find(MAX), v(index));
    mas.next(MAX);
    assert_eq!(mas.next(MAX), v(index + 4));
    mas.reset();
    assert_eq!(mas.empty_area_rev(seq100[3], seq100[4], seq100[5]), Ok(()));
    assert_eq!(mas.index, index + 1);
    for &i in &seq100[6..=8] {
        mt.erase(i);
        check_load(&mt, i, None);
    }
    let index = seq100[9];
    mas.set(index);
    assert_eq!(mas.find(MAX), v(index));
    assert_eq!(mas.next(MAX), v(index + 4));
    mas.reset();
    assert_eq!(
        mas.empty_area_rev(seq100[10], seq100[11], seq100[12]),
        Ok(())
    );
    assert_eq!(mas.index, seq100[6]);
    mt.store(seq100[13], None, GFP).unwrap();
    check_load(&mt, seq100[13], None);
    check_load(&mt, seq100[14], v(seq100[14]));
    mt.store(seq100[14], None, GFP).unwrap();
    check_load(&mt, seq100[13], None);
    check_load(&mt, seq100[14], None);
    mas.reset();
    assert_eq!(
        mas.empty_area_rev(seq100[16], seq100[15], seq100[17]),
        Ok(())
    );
    assert_eq!(mas.index, seq100[13]);
    ok(&mt);
    mt.store_range(seq100[18], seq100[14], None, GFP).unwrap();
    mt.erase(seq100[15]);
    mas.reset();
    assert_eq!(
        mas.empty_area_rev(seq100[16], seq100[19], seq100[20]),
        Ok(())
    );
    assert_eq!(mas.index, seq100[18]);
    ok(&mt);
    mt.destroy();
    // seq2000: multi-level gaps.
    check_seq(&mt, 2000);
    mt.erase(1152);
    mt.erase(1151);
    let mut mas = mt.mas(0, 0);
    assert_eq!(mas.empty_area_rev(1100, 1200, 2), Ok(()));
    assert_eq!(mas.index, 1151);
    ok(&mt);
    mt.destroy();
    // seq400: rebalancing over two levels.
    check_seq(&mt, 400);
    mt.store_range(286, 318, None, GFP).unwrap();
    ok(&mt);
    mt.destroy();
    check_seq(&mt, 400);
    for s in [256, 260, 266, 270, 286, 275, 280, 290] {
        mt.store_range(s, 398, v(s), GFP).unwrap();
        ok(&mt);
    }
    mt.store_range(286, 310, v(286), GFP).unwrap();
    ok(&mt);
}

/// `next_prev_test` (64-bit values).
#[test]
fn next_prev() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    let nr = 200;
    let level2 = [707, 1000, 710, 715, 720, 725];
    for i in 0..=nr {
        mt.store_range(i * 10, i * 10 + 5, v(i), GFP).unwrap();
    }
    let g = mt.lock();
    let mut mas = g.mas(0, 0);
    let mut n = 0;
    while mas.find(1000).is_some() {
        n += 1;
    }
    assert_eq!(n, 101);
    mas.set(686);
    assert_eq!(mas.walk(), None);
    let at = |mas: &MaState<_>, i: usize, l: usize| assert_eq!((mas.index, mas.last), (i, l));
    assert_eq!(mas.next(1000), v(69));
    at(&mas, 690, 695);
    assert_eq!(mas.prev(0), v(68));
    at(&mas, 680, 685);
    assert_eq!(mas.next(1000), v(69));
    assert_eq!(mas.next(1000), v(70));
    at(&mas, 700, 705);
    mas.set(70);
    assert_eq!(mas.walk(), v(7));
    assert_eq!(mas.next(1000), v(8));
    at(&mas, 80, 85);
    assert_eq!(mas.prev(70), v(7));
    at(&mas, 70, 75);
    mas.set(level2[0]);
    assert_eq!(mas.walk(), None);
    assert_eq!(mas.next(level2[1]), v(level2[2] / 10));
    at(&mas, level2[2], level2[3]);
    assert_eq!(mas.next(level2[1]), v(level2[4] / 10));
    at(&mas, level2[4], level2[5]);
    assert_eq!(mas.prev(0), v(level2[2] / 10));
    at(&mas, level2[2], level2[3]);
    // Running off the end and back on.
    mas.set(nr * 10);
    assert_eq!(mas.walk(), v(nr));
    at(&mas, nr * 10, nr * 10 + 5);
    assert_eq!(mas.next(MAX), None);
    at(&mas, MAX, MAX);
    assert_eq!(mas.prev(0), v(nr));
    at(&mas, nr * 10, nr * 10 + 5);
    // Running off the start and back on.
    mas.set(10);
    assert_eq!(mas.walk(), v(1));
    at(&mas, 10, 15);
    assert_eq!(mas.prev(0), v(0));
    at(&mas, 0, 5);
    assert_eq!(mas.prev(0), None);
    at(&mas, 0, 0);
    mas.index = 0;
    mas.last = 5;
    mas.store(None).unwrap();
    mas.set(10);
    mas.walk();
    assert_eq!(mas.prev(0), None);
    at(&mas, 0, 0);
    drop(g);
    mt.destroy();
    mt.store_range(0, 0, v(0), GFP).unwrap();
    mt.store_range(5, 5, v(5), GFP).unwrap();
    let mut mas = mt.mas(5, 5);
    assert_eq!(mas.prev(4), None);
}

/// `check_iteration` (the two overwrites whose expectations follow from 6.18's
/// `mas_find_setup`; see docs/upstream/test_maple_tree.md for the third).
#[test]
fn iteration() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    for i in 0..=125 {
        mt.store_range(i * 10, i * 10 + 9, v(i), GFP).unwrap();
    }
    let g = mt.lock();
    let mut mas = g.mas(0, 0);
    assert_eq!(
        mas.for_each(95).map(|(i, l, _)| (i, l)).last(),
        Some((90, 99))
    );
    mas.set(0);
    let mut i = 0;
    while let Some(val) = mas.find(925) {
        assert_eq!((mas.index, mas.last), (i * 10, i * 10 + 9));
        if i == 92 {
            mas.index = 925;
            mas.last = 929;
            mas.store(Some(val)).unwrap();
        }
        i += 1;
    }
    assert_eq!(mas.find(MAX), v(i));
    mas.set(0);
    i = 0;
    while let Some(val) = mas.find(785) {
        assert_eq!((mas.index, mas.last), (i * 10, i * 10 + 9));
        if i == 78 {
            mas.index = 780;
            mas.last = 785;
            mas.store(Some(val)).unwrap();
        } else {
            i += 1;
        }
    }
    assert_eq!(mas.find(MAX), v(i));
    mas.destroy();
    drop(g);
    ok(&mt);
}

impl Model {
    fn insert(&mut self, a: usize, b: usize, e: usize) -> Result<(), Error> {
        if a > b {
            return Err(Error::EINVAL);
        }
        if self.0.range(..=b).any(|(_, &(l, _))| l >= a) {
            return Err(Error::EEXIST);
        }
        self.store(a, b, e);
        Ok(())
    }
    fn erase(&mut self, i: usize) -> Option<XaEntry> {
        let (f, _, e) = self.range_at(i)?;
        self.0.remove(&f);
        XaEntry::from_raw(e)
    }
}

/// Checks the tree against the model at every boundary of the model's ranges.
fn same(mt: &Mt, m: &Model) {
    ok(mt);
    for (&f, &(l, _)) in &m.0 {
        for i in [f.wrapping_sub(1), f, l, l.wrapping_add(1)] {
            assert_eq!(mt.load(i), m.load(i), "load {i}");
        }
    }
    let got: Vec<(usize, XaEntry)> = mt.iter(0, MAX).collect();
    let want: Vec<(usize, XaEntry)> =
        m.0.iter()
            .filter(|(_, &(_, e))| e != XA_ZERO_ENTRY.raw())
            .map(|(&f, &(_, e))| (f, XaEntry::from_raw(e).unwrap()))
            .collect();
    assert_eq!(got, want);
}

/// Runs a `check_fuzzer` script: `i N V` insert, `s N V` store, `r A B V` store range,
/// `n A B V` insert range, `e N` erase, `l N` load (values hex), checking against the model
/// after every step.
fn run_script(mt: &Mt, script: &str) {
    let mut m = Model::default();
    for op in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let w: Vec<&str> = op.split_whitespace().collect();
        let num = |k: usize| -> usize {
            match w[k] {
                "MAX" => MAX,
                "MAX-10" => MAX - 10,
                s => s.parse().unwrap(),
            }
        };
        let hex = |k: usize| usize::from_str_radix(w[k], 16).unwrap();
        match w[0] {
            "i" => assert_eq!(
                mt.insert(num(1), p(hex(2)), GFP),
                m.insert(num(1), num(1), hex(2))
            ),
            "s" => {
                mt.store(num(1), p(hex(2)), GFP).unwrap();
                m.store(num(1), num(1), hex(2));
            }
            "r" => {
                let r = mt.store_range(num(1), num(2), p(hex(3)), GFP);
                if num(1) > num(2) {
                    assert_eq!(r, Err(Error::EINVAL));
                } else {
                    r.unwrap();
                    m.store(num(1), num(2), hex(3));
                }
            }
            "n" => assert_eq!(
                mt.insert_range(num(1), num(2), p(hex(3)), GFP),
                m.insert(num(1), num(2), hex(3))
            ),
            "e" => assert_eq!(mt.erase(num(1)), m.erase(num(1)), "{op}"),
            "l" => assert_eq!(mt.load(num(1)), m.load(num(1)), "{op}"),
            _ => panic!("bad op {op}"),
        }
        same(mt, &m);
    }
    mt.destroy();
}

/// `check_fuzzer`: the sequences that once broke Linux's spanning stores and rebalancing.
#[test]
fn fuzzer() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    // 1. A spanning rebalance of a single root node.
    run_script(
        &mt,
        "i 88 b1; i 84 a9; i 2 5; i 4 9; i 14 1d; i 7 f; i 12 19; i 18 25; r 8 18 11",
    );
    // 2. A spanning rebalance of two nodes in the root.
    run_script(
        &mt,
        "s 87 af; s 0 1; l 4; i 4 9; s 8 11; s 44 59; s 68 89; s 2 5; i 43 57; i 24 31;
         i 844 699; s 84 a9; s 4 9; e 4; l 5; e 0",
    );
    // 3. A node overflow on copy.
    run_script(
        &mt,
        "r 0 MAX 1; s 4 9; e 5; e 0; e 4; s 5 b; e 5; s 5 b; e 5; e 4; s 4 9; s 444 379;
         s 0 1; l 0; s 5 b; e 0",
    );
    // 4. A spanning store writing a wrong pivot in the last slot.
    run_script(
        &mt,
        "i 261 20b; s 516 409; s 6 d; i 5 b; i 1256 9d1; s 4 9; e 1; s 56 71; i 1 3; s 24 31;
         e 1; i 2263 11af; i 446 37d; r 6 45 d; r 3 446 7",
    );
    // 5. mas_wr_extend_null() overflowing slots.
    run_script(
        &mt,
        "s 48 61; s 3 7; l 0; s 88 b1; s 81 a3; i 0 1; i 8 11; i 4 9; i 2480 1361;
         i MAX ffffffffffffffff; e MAX",
    );
    // 8. A rebalance setting the new node's max to the last pivot.
    run_script(
        &mt,
        "s 6 d; s 67 87; i 15 1f; i 6716 3479; s 61 7b; i 13 1b; s 8 11; i 1 3; l 0; e 67167;
         n 6 7167 d; i 6 d; e 67; i 1 3; e 667167; i 6 d; s 67 87; i 5 b; e 1; i 6 d; e 67;
         i 15 1f; i 67167 20cbf; i 1 3; l 7; i 16 21; i 36 49; s 67 87; s 6 d; i 367 2df;
         i 115 e7; s 0 1; r 1 3 3; s 1 3; e 67167; n 6 47 d; s 1 3; n 1 67 3; l 67; i 1 3;
         e 67167",
    );
    // 9. A spanning store to the end of the data with a wrong metadata end.
    run_script(
        &mt,
        "i 21 2b; i 12 19; i 6 d; i 8 11; i 2 5; i 91 b7; i 18 25; i 81 a3; r 0 128 1; s 1 3;
         e 8; i 11 17; i 8 11; i 21 2b; i 2 5; i MAX-10 ffffffffffffffeb; e MAX-10;
         r 0 281 1; e 2; i 1211 977; i 111 df; i 13 1b; i 211 1a7; i 11 17; i 5 b; i 1218 985;
         i 61 7b; s 1 3; i 121 f3; i 8 11; i 21 2b; i 2 5; i MAX-10 ffffffffffffffeb;
         e MAX-10",
    );
}

/// `check_bnode_min_spanning`, `check_node_overwrite`, `check_spanning_relatives`.
#[test]
fn spanning_stores() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    {
        let g = mt.lock();
        let mut mas = g.mas(0, 0);
        for i in (0..=50).rev() {
            mas.set_range(i * 10, i * 10 + 9);
            mas.store(p(0x8000)).unwrap();
        }
        mas.set_range(240, 509);
        mas.store(None).unwrap();
        mas.destroy();
    }
    ok(&mt);
    check_load(&mt, 239, p(0x8000));
    check_load(&mt, 240, None);
    check_load(&mt, 509, None);
    check_load(&mt, 510, None);
    assert_eq!(mt.mas(240, 240).walk(), None);
    assert_eq!(mt.mas(240, 240).walk().map(|_| ()), None);
    let mut mas = mt.mas(300, 300);
    mas.walk();
    assert_eq!((mas.index, mas.last), (240, MAX));
    mt.destroy();
    for i in 0..4000 {
        mt.store_range(i * 100, i * 100 + 50, v(i * 100), GFP)
            .unwrap();
    }
    mt.store_range(319951, 367950, None, GFP).unwrap();
    ok(&mt);
    check_load(&mt, 319950, v(319900));
    check_load(&mt, 368000, v(368000));
    mt.destroy();
    for i in 0..=1000 {
        mt.store_range(i * 10, i * 10 + 5, v(i), GFP).unwrap();
    }
    mt.store_range(9365, 9955, None, GFP).unwrap();
    ok(&mt);
    let mut mas = mt.mas(9360, 9360);
    assert_eq!(mas.find(MAX), v(936));
    assert_eq!(mas.next(MAX), v(996));
    assert_eq!((mas.index, mas.last), (9960, 9965));
}

/// `check_forking` / `check_mas_store_gfp` / `check_dup_gaps`: copying a tree entry by entry
/// with `mas_for_each` into a new allocation tree (what `dup_mmap` did before `mtree_dup`).
#[test]
fn copy_by_iteration() {
    let a = TestAlloc::new();
    for (nr, gap) in [(134, 4), (135, 4), (1000, 5), (1500, 0)] {
        let mt = new(&a, MtFlags::ALLOC_RANGE);
        for i in 0..=nr {
            mt.store_range(i * 10, (i + 1) * 10 - gap - 1, v(i), GFP)
                .unwrap();
        }
        let newmt = new(&a, MtFlags::ALLOC_RANGE);
        {
            let g = newmt.lock();
            let mut newmas = g.mas(0, 0);
            let mut mas = mt.mas(0, 0);
            while let Some(e) = mas.find(MAX) {
                newmas.set_range(mas.index, mas.last);
                newmas.store_gfp(Some(e), GFP).unwrap();
            }
            newmas.destroy();
        }
        ok(&newmt);
        let x: Vec<_> = mt.iter(0, MAX).collect();
        let y: Vec<_> = newmt.iter(0, MAX).collect();
        assert_eq!(x, y);
        assert_eq!(x.len(), nr + 1);
    }
    assert_eq!(a.live(), 0);
}

/// Allocation failure: every store either happens completely or leaves the tree as it was,
/// `mas_nomem` retries, `mas_preallocate` makes `mas_store_prealloc` infallible.
#[test]
fn enomem_injection() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::ALLOC_RANGE);
    let mut m = Model::default();
    let mut failures = 0;
    for round in 0..400usize {
        let (s, e) = (round * 7 % 1000, round * 7 % 1000 + round % 13);
        a.fail_after(round % 3);
        match mt.store_range(s, e, v(round), GFP) {
            Ok(()) => m.store(s, e, v(round).unwrap().raw()),
            Err(err) => {
                assert_eq!(err, Error::ENOMEM);
                failures += 1;
            }
        }
        a.heal();
        same(&mt, &m);
    }
    assert!(failures > 0);
    // mtree_erase reports nothing on failure; erase_gfp does, and the entry stays.
    mt.store_range(2000, 2010, v(2000), GFP).unwrap();
    mt.lock().mas(0, 0).destroy();
    a.fail_all();
    assert_eq!(mt.erase_gfp(2005, GFP), Err(Error::ENOMEM));
    assert_eq!(mt.erase(2005), None);
    a.heal();
    check_load(&mt, 2005, v(2000));
    assert_eq!(mt.erase(2005), v(2000));
    check_load(&mt, 2000, None);
    // mas_nomem-style retry.
    {
        let g = mt.lock();
        g.mas(0, 0).destroy();
        let mut mas = g.mas(5000, 5100);
        a.fail_all();
        assert_eq!(mas.store(v(1)), Err(Error::ENOMEM));
        assert!(mas.is_err());
        assert!(!mas.nomem(GFP));
        a.heal();
        assert!(mas.nomem(GFP));
        assert_eq!(mas.store(v(1)), Ok(None));
        // Preallocate, then the store needs no allocator.
        mas.set_range(6000, 6010);
        mas.preallocate(v(2), GFP).unwrap();
        a.fail_all();
        assert_eq!(mas.store_prealloc(v(2)), None);
        a.heal();
        mas.destroy();
        assert_eq!(g.reserved_nodes(), 0);
    }
    check_load(&mt, 5050, v(1));
    check_load(&mt, 6005, v(2));
    ok(&mt);
    drop(mt);
    assert_eq!(a.live(), 0);
}

/// Argument checks of the normal API (`-EINVAL` cases of mtree_*).
#[test]
fn invalid_arguments() {
    let a = TestAlloc::new();
    let mt = new(&a, MtFlags::NONE);
    assert_eq!(mt.store_range(5, 4, v(1), GFP), Err(Error::EINVAL));
    assert_eq!(mt.insert_range(5, 4, v(1), GFP), Err(Error::EINVAL));
    // XA_RETRY_ENTRY and the internal entries below it are "advanced" entries.
    let retry = XaEntry::from_raw((256 << 2) | 2);
    assert_eq!(mt.store(1, retry, GFP), Err(Error::EINVAL));
    assert_eq!(mt.store(1, XaEntry::from_raw(6), GFP), Err(Error::EINVAL));
    // mtree_alloc_range needs an allocation tree.
    assert_eq!(mt.alloc_range(v(1), 1, 0, 10, GFP), Err(Error::EINVAL));
    // The zero entry is stored but reads as empty, and blocks inserts.
    mt.store(7, Some(XA_ZERO_ENTRY), GFP).unwrap();
    check_load(&mt, 7, None);
    assert_eq!(mt.insert(7, v(7), GFP), Err(Error::EEXIST));
    assert_eq!(mt.mas(7, 7).walk(), Some(XA_ZERO_ENTRY));
    assert_eq!(mt.iter(0, MAX).count(), 0);
    // A read-only state cannot write.
    assert_eq!(mt.mas(1, 1).store(v(1)), Err(Error::EINVAL));
    assert!(!mt.is_empty());
    assert_eq!(mt.erase(7), Some(XA_ZERO_ENTRY));
    assert!(mt.is_empty());
    ok(&mt);
}

/// `MT_FLAGS_LOCK_EXTERN`: writers go through `&mut` (the caller's lock).
#[test]
fn external_lock() {
    let a = TestAlloc::new();
    let mut mt = new(&a, MtFlags::ALLOC_RANGE | MtFlags::LOCK_EXTERN);
    assert!(mt.external_lock() && mt.is_alloc());
    {
        let g = mt.lock_mut();
        for i in 0..100 {
            g.store_range(i * 4096, i * 4096 + 4095, v(i), GFP).unwrap();
        }
        let mut mas = g.mas(0, 0);
        mas.empty_area_rev(0, 1 << 30, 4096).unwrap();
        assert_eq!(mas.index, (1 << 30) - 4095);
    }
    ok(&mt);
    assert_eq!(mt.load(4096 * 50), v(50));
}
