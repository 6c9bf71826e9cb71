//! Maple tree model test: random `mtree_store_range` / `mtree_erase` / `mtree_insert_range` /
//! `mtree_alloc_range` / `mtree_alloc_rrange` / `mas_empty_area(_rev)` / `mt_find` sequences
//! against a `BTreeMap` of ranges, with `mt_validate` after every step; and lock-free readers
//! racing a writer.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod maple_support;
mod trees_support;

use std::vec::Vec;

use kds::alloc::Gfp;
use kds::maple_tree::*;
use kds::Error;
use maple_support::Model;
use proptest::prelude::*;
use trees_support::TestAlloc;

const GFP: Gfp = Gfp::GFP_KERNEL;
const MAX: usize = usize::MAX;

impl Model {
    fn occupied(&self, a: usize, b: usize) -> bool {
        self.0.range(..=b).any(|(_, &(l, _))| l >= a)
    }
    /// The empty ranges, in order.
    fn gaps(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut next = Some(0usize);
        for (&f, &(l, _)) in &self.0 {
            if let Some(n) = next {
                if f > n {
                    out.push((n, f - 1));
                }
            }
            next = l.checked_add(1);
        }
        if let Some(n) = next {
            out.push((n, MAX));
        }
        out
    }
    /// `mas_empty_area(_rev)` on the model: `(index, last)`.
    fn empty_area(&self, min: usize, max: usize, size: usize, rev: bool) -> Option<(usize, usize)> {
        let fits = |&&(s, e): &&(usize, usize)| {
            let (s, e) = (s.max(min), e.min(max));
            s <= e && (e - s).saturating_add(1) >= size
        };
        let gaps = self.gaps();
        if rev {
            let &(_, e) = gaps.iter().rev().find(fits)?;
            let last = e.min(max);
            Some((last - (size - 1), last))
        } else {
            let &(s, _) = gaps.iter().find(fits)?;
            let index = s.max(min);
            Some((index, index + (size - 1)))
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Store(usize, usize, Option<usize>),
    Insert(usize, usize, usize),
    Erase(usize),
    Alloc(usize, usize, usize, bool),
    Area(usize, usize, usize, bool),
    Find(usize, usize),
}

fn index(n: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..n,
        1 => Just(MAX),
        1 => (MAX - 400)..=MAX,
    ]
}

/// Operations on indices mostly below `n`, stores up to `len` long.
fn op(n: usize, len: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (index(n), 0usize..len, proptest::option::weighted(0.75, 0usize..1000))
            .prop_map(|(a, l, v)| Op::Store(a, a.saturating_add(l), v)),
        2 => (index(n), 0usize..10, 0usize..1000)
            .prop_map(|(a, l, v)| Op::Insert(a, a.saturating_add(l), v)),
        2 => index(n).prop_map(Op::Erase),
        1 => (0usize..n, 0usize..n, 1usize..20, any::<bool>())
            .prop_map(|(a, b, s, r)| Op::Alloc(a.min(b), a.max(b), s, r)),
        2 => (index(n), index(n), 1usize..30, any::<bool>())
            .prop_map(|(a, b, s, r)| Op::Area(a.min(b), a.max(b), s, r)),
        1 => (index(n), index(n)).prop_map(|(a, b)| Op::Find(a.min(b), a.max(b))),
    ]
}

fn apply(mt: &MapleTree<&TestAlloc>, m: &mut Model, op: &Op) {
    match *op {
        Op::Store(a, b, v) => {
            let e = v.map(xa_mk_value);
            mt.store_range(a, b, e, GFP).unwrap();
            m.store(a, b, e.map_or(0, XaEntry::raw));
        }
        Op::Insert(a, b, v) => {
            let want = if m.occupied(a, b) {
                Err(Error::EEXIST)
            } else {
                Ok(())
            };
            assert_eq!(mt.insert_range(a, b, Some(xa_mk_value(v)), GFP), want);
            if want.is_ok() {
                m.store(a, b, xa_mk_value(v).raw());
            }
        }
        Op::Erase(i) => {
            let want = m.range_at(i).and_then(|(f, _, e)| {
                m.0.remove(&f);
                XaEntry::from_raw(e)
            });
            assert_eq!(mt.erase(i), want);
        }
        Op::Alloc(min, max, size, rev) => {
            let e = Some(xa_mk_value(size));
            let got = if rev {
                mt.alloc_rrange(e, size, min, max, GFP)
            } else {
                mt.alloc_range(e, size, min, max, GFP)
            };
            match m.empty_area(min, max, size, rev) {
                _ if max - min < size - 1 => assert_eq!(got, Err(Error::EBUSY)),
                None => assert_eq!(got, Err(Error::EBUSY)),
                Some((i, l)) => {
                    assert_eq!(got, Ok(i));
                    m.store(i, l, xa_mk_value(size).raw());
                }
            }
        }
        Op::Area(min, max, size, rev) => area(mt, m, min, max, size, rev),
        Op::Find(start, max) => {
            let mut i = start;
            let got = mt.find(&mut i, max);
            let want =
                m.0.iter()
                    .filter(|(&f, &(l, e))| l >= start && f <= max && e != XA_ZERO_ENTRY.raw())
                    .map(|(_, &(l, e))| (XaEntry::from_raw(e), l.wrapping_add(1)))
                    .next();
            assert_eq!(got, want.and_then(|w| w.0));
            if let Some((_, next)) = want {
                assert_eq!(i, next);
            }
        }
    }
}

fn area(mt: &MapleTree<&TestAlloc>, m: &Model, min: usize, max: usize, size: usize, rev: bool) {
    let mut mas = mt.mas(0, 0);
    let got = if rev {
        mas.empty_area_rev(min, max, size)
    } else {
        mas.empty_area(min, max, size)
    };
    if max - min < size - 1 {
        assert_eq!(got, Err(Error::EBUSY));
        return;
    }
    match m.empty_area(min, max, size, rev) {
        None => assert_eq!(got, Err(Error::EBUSY)),
        Some(r) => {
            assert_eq!(got, Ok(()));
            assert_eq!((mas.index, mas.last), r);
        }
    }
}

fn check_all(mt: &MapleTree<&TestAlloc>, m: &Model) {
    if let Err(e) = mt.validate() {
        panic!("mt_validate: {e}");
    }
    for (&f, &(l, _)) in &m.0 {
        for i in [f.wrapping_sub(1), f, l, l.wrapping_add(1)] {
            assert_eq!(mt.load(i), m.load(i), "load {i}");
        }
    }
    let got: Vec<_> = mt.iter(0, MAX).collect();
    let want: Vec<_> =
        m.0.iter()
            .filter(|(_, &(_, e))| e != XA_ZERO_ENTRY.raw())
            .map(|(&f, &(_, e))| (f, XaEntry::from_raw(e).unwrap()))
            .collect();
    assert_eq!(got, want);
    // mas_prev from the top visits the same entries backwards.
    let mut mas = mt.mas(MAX, MAX);
    let mut back = Vec::new();
    if let Some(e) = mas.find_rev(0) {
        back.push((mas.index, e));
        while let Some(e) = mas.find_rev(0) {
            back.push((mas.index, e));
        }
    }
    back.retain(|&(_, e)| e != XA_ZERO_ENTRY);
    back.reverse();
    assert_eq!(back, want);
}

fn run_model(alloc_tree: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let a = TestAlloc::new();
    let flags = if alloc_tree {
        MtFlags::ALLOC_RANGE
    } else {
        MtFlags::NONE
    };
    let mt = MapleTree::new(flags, &a);
    let mut m = Model::default();
    for op in ops {
        if matches!(op, Op::Alloc(..)) && !alloc_tree {
            continue;
        }
        apply(&mt, &mut m, op);
        check_all(&mt, &m);
    }
    drop(mt);
    prop_assert_eq!(a.live(), 0);
    Ok(())
}

/// Builds a tree of `n` ranges of random lengths and holes, as ops.
fn prefill(n: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec((1usize..30, 0usize..4), n).prop_map(|v| {
        let mut at = 0;
        v.into_iter()
            .map(|(len, hole)| {
                let op = Op::Store(at, at + len - 1, Some(at));
                at += len + hole;
                op
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// Small trees (a few nodes), every operation kind, near 0 and near `ULONG_MAX`.
    #[test]
    fn model(alloc_tree in any::<bool>(), ops in proptest::collection::vec(op(400, 40), 1..120)) {
        run_model(alloc_tree, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Deep trees (3–4 levels): spanning stores and erases across many nodes.
    #[test]
    fn model_deep(
        alloc_tree in any::<bool>(),
        pre in prefill(1500),
        ops in proptest::collection::vec(op(30_000, 3000), 1..40),
    ) {
        let all: Vec<Op> = pre.into_iter().chain(ops).collect();
        let a = TestAlloc::new();
        let flags = if alloc_tree { MtFlags::ALLOC_RANGE } else { MtFlags::NONE };
        let mt = MapleTree::new(flags, &a);
        let mut m = Model::default();
        for (i, op) in all.iter().enumerate() {
            if matches!(op, Op::Alloc(..)) && !alloc_tree {
                continue;
            }
            apply(&mt, &mut m, op);
            if i >= 1500 {
                check_all(&mt, &m);
            }
        }
        check_all(&mt, &m);
        prop_assert!(mt.height() >= 3);
        drop(mt);
        prop_assert_eq!(a.live(), 0);
    }
}

/// Lock-free readers race a writer that stores, overwrites and erases ranges: a reader only
/// ever sees a complete old or new state (an index of range `k` reads `None` or `v(k)`), and
/// nothing is freed under it (run under Miri/ASan-free std allocator: a use-after-free would
/// read garbage entries).
#[test]
fn readers_race_writer() {
    let a = TestAlloc::new();
    let mt = MapleTree::new(MtFlags::ALLOC_RANGE | MtFlags::USE_RCU, &a);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (mt, stop) = (&mt, &stop);
            s.spawn(move || {
                let mut rng = trees_support::Rng(0x9e37_79b9 + t);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let i = rng.below(20_000) as usize;
                    if let Some(e) = mt.load(i) {
                        assert_eq!(e, xa_mk_value(i / 10));
                        assert!(i % 10 <= 5);
                    }
                    let mut prev = None;
                    for (f, e) in mt.iter(i, i + 200) {
                        assert_eq!(e, xa_mk_value(f / 10));
                        assert!(prev.is_none_or(|p| p < f));
                        prev = Some(f);
                    }
                }
            });
        }
        let mut rng = trees_support::Rng(7);
        for _ in 0..20_000 {
            let k = rng.below(2000) as usize;
            if rng.below(3) == 0 {
                mt.erase(k * 10);
            } else {
                mt.store_range(k * 10, k * 10 + 5, Some(xa_mk_value(k)), GFP)
                    .unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    mt.validate().unwrap();
}

/// `check_store_null` (tools/testing/radix-tree/maple.c): storing `NULL` over everything
/// leaves an empty tree, whatever was there.
#[test]
fn store_null() {
    let a = TestAlloc::new();
    let mt = MapleTree::new(MtFlags::ALLOC_RANGE, &a);
    let ptr = XaEntry::from_raw(0x1000);
    {
        let g = mt.lock();
        let mut mas = g.mas(0, MAX);
        mas.store_gfp(None, GFP).unwrap();
        assert!(mt.is_empty());
        for (s, e) in [(0, MAX), (0, 0), (1, 1), (5, 500)] {
            mas.set_range(s, e);
            mas.store_gfp(ptr, GFP).unwrap();
            assert!(!mt.is_empty());
            mas.set_range(0, MAX);
            mas.store_gfp(None, GFP).unwrap();
            assert!(mt.is_empty(), "{s}-{e}");
            assert_eq!(mt.height(), 0);
        }
        // A tree of many nodes erased range by range ends empty too.
        for i in 0..500 {
            mas.set_range(i * 10, i * 10 + 5);
            mas.store_gfp(ptr, GFP).unwrap();
        }
        for i in (0..500).rev() {
            mas.set_range(i * 10, i * 10 + 5);
            mas.store_gfp(None, GFP).unwrap();
        }
        assert!(mt.is_empty());
    }
    mt.validate().unwrap();
}

/// `check_dup_gaps`: copies a tree of `nr` ranges `i*10..=(i+1)*10-gap` (from 0 or 1) into a
/// new allocation tree after `mas_expected_entries`, entry by entry (as `dup_mmap` did).
fn check_dup_gaps(a: &TestAlloc, flags: MtFlags, nr: usize, zero_start: bool, gap: usize) {
    let mt = MapleTree::new(flags, a);
    for i in usize::from(!zero_start)..=nr {
        mt.store_range(i * 10, (i + 1) * 10 - gap, Some(xa_mk_value(i)), GFP)
            .unwrap();
    }
    let newmt = MapleTree::new(MtFlags::ALLOC_RANGE, a);
    {
        let g = newmt.lock();
        let mut newmas = g.mas(0, 0);
        assert_eq!(newmas.expected_entries(nr), Ok(()));
        assert!(g.reserved_nodes() >= nr / 7);
        let mut mas = mt.mas(0, 0);
        while let Some(e) = mas.find(MAX) {
            newmas.set_range(mas.index, mas.last);
            newmas.store(Some(e)).unwrap();
        }
        newmas.destroy();
        assert_eq!(g.reserved_nodes(), 0);
    }
    newmt.validate().unwrap();
    assert!(mt.iter(0, MAX).eq(newmt.iter(0, MAX)));
}

/// `check_dup` (sizes sampled from upstream's loops) and `check_forking` (134 entries).
#[test]
fn dup_and_forking() {
    let a = TestAlloc::new();
    let alloc = MtFlags::ALLOC_RANGE;
    for i in (10..1000).step_by(97) {
        check_dup_gaps(&a, alloc, i, true, 5);
    }
    for i in (1000..2000).step_by(199) {
        check_dup_gaps(&a, alloc, i, true, 0);
    }
    check_dup_gaps(&a, alloc, 100_010, true, 5);
    for i in (200..1000).step_by(97) {
        check_dup_gaps(&a, alloc, i, false, 5);
    }
    for i in (1500..3000).step_by(301) {
        check_dup_gaps(&a, MtFlags::NONE, i, false, 5);
    }
    for i in (200..1000).step_by(97) {
        check_dup_gaps(&a, MtFlags::NONE, i, true, 5);
    }
    // check_forking: ranges i*10..=i*10+5.
    let mt = MapleTree::new(alloc, &a);
    for i in 0..=134usize {
        mt.store_range(i * 10, i * 10 + 5, Some(xa_mk_value(i)), GFP)
            .unwrap();
    }
    let newmt = MapleTree::new(alloc, &a);
    {
        let g = newmt.lock();
        let mut newmas = g.mas(0, 0);
        newmas.expected_entries(134).unwrap();
        let mut mas = mt.mas(0, 0);
        while let Some(e) = mas.find(MAX) {
            newmas.set_range(mas.index, mas.last);
            newmas.store(Some(e)).unwrap();
        }
        newmas.destroy();
    }
    newmt.validate().unwrap();
    drop((mt, newmt));
    assert_eq!(a.live(), 0);
}
