//! Entries that look like internal entries: user pointers of any alignment whose low bits
//! are `10` (a `char *` into a string) and that are above 4096 look like node pointers.
//! Linux stores them (only `xa_is_advanced` values, internal entries up to
//! `XA_RETRY_ENTRY`, are refused): never in the head, and readers descend only from nodes of
//! shift > 0. lib/test_xarray.c's check_align, and a model test mixing such entries with
//! values and aligned pointers through the simple and the advanced API.
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

type Xa<'a> = XArray<&'a TestAlloc>;

fn ok(xa: &Xa) {
    if let Err(e) = xa.check() {
        panic!("xarray invariant: {e}");
    }
}

/// check_align (lib/test_xarray.c): `name + i` for i in 0..8 from each of `name + 0..3`,
/// pointers of every alignment into "Motorola 68000". Some look like value entries (odd) and
/// some like node entries (low bits 10, above 4096); all are allocated ids 0..7 and come
/// back exactly (Linux: `xa_alloc` returns 0 and `id == i`; no entry is an error entry).
/// align_2: a store after `xa_reserve` needs no memory, for every alignment (the reserved
/// slot of index 0 is a node's slot, as Linux's `xas_store` never puts `XA_ZERO_ENTRY` in the
/// head).
#[test]
fn check_align() {
    let a = TestAlloc::new();
    let xa = XArray::with_flags(&a, XaFlags::ALLOC);
    let name = *b"Motorola 68000\0";
    let at = |i: usize| XaEntry::from_raw(name[i..].as_ptr() as usize);
    for start in 0..4 {
        for i in 0..8u32 {
            assert_eq!(xa.alloc(at(start + i as usize), XA_LIMIT_32B, GFP), Ok(i));
            ok(&xa);
        }
        let got: Vec<_> = xa.iter().collect();
        let want: Vec<_> = (0..8).map(|i| (i, at(start + i).unwrap())).collect();
        assert_eq!(got, want);
        for i in 0..8 {
            assert_eq!(xa.load(i), at(start + i));
        }
        xa.destroy();
    }
    // align_2.
    assert!(xa.is_empty());
    for i in 0..8 {
        assert_eq!(xa.store(0, at(i), GFP), Ok(None));
        ok(&xa);
        assert_eq!(xa.erase(0), at(i));
    }
    for i in 0..8 {
        assert_eq!(xa.reserve(0, GFP), Ok(()));
        a.fail_all();
        assert_eq!(xa.store(0, at(i), Gfp::GFP_NOWAIT), Ok(None));
        a.heal();
        ok(&xa);
        assert_eq!(xa.erase(0), at(i));
    }
    assert!(xa.is_empty());
    drop(xa);
    assert_eq!(a.live(), 0);
}

/// The reserved internal values stay refused, by every store path.
#[test]
fn reserved_internal_values_are_refused() {
    let a = TestAlloc::new();
    let xa = XArray::with_flags(&a, XaFlags::ALLOC);
    for raw in [2usize, 6, 0x102, 256 * 4 + 2, 257 * 4 + 2, 4094] {
        let e = XaEntry::from_raw(raw);
        assert_eq!(xa.store(0, e, GFP), Err(Error::EINVAL), "{raw:#x}");
        assert_eq!(xa.insert(1, e, GFP), Err(Error::EINVAL));
        assert_eq!(xa.cmpxchg(2, None, e, GFP), Err(Error::EINVAL));
        assert_eq!(xa.store_range(3, 9, e, GFP), Err(Error::EINVAL));
        assert_eq!(xa.alloc(e, XA_LIMIT_32B, GFP), Err(Error::EINVAL));
    }
    assert!(xa.is_empty());
    // The first node-looking value (4096 + 2 is the first internal word above 4096).
    let first = XaEntry::from_raw(4098);
    assert_eq!(xa.store(0, first, GFP), Ok(None));
    assert_eq!(xa.load(0), first);
    assert!(
        xa.head_node().is_some(),
        "index 0 is a leaf slot, not the head"
    );
    // Multi-index: fine within a leaf, refused where a non-leaf slot would hold it.
    assert_eq!(xa.store_order(64, 5, first, GFP), Ok(None));
    assert_eq!(xa.get_order(95), 5);
    assert_eq!(xa.store_order(128, 6, first, GFP), Err(Error::EINVAL));
    assert_eq!(xa.store_range(128, 191, first, GFP), Err(Error::EINVAL));
    assert_eq!(xa.store_range(200, 203, first, GFP), Ok(()));
    assert_eq!(xa.load(128), None);
    ok(&xa);
    drop(xa);
    assert_eq!(a.live(), 0);
}

// ---------------------------------------------------------------------------------------------
// A model of intervals `first -> (last, raw entry)`.

type Model = BTreeMap<usize, (usize, usize)>;

/// The raw entry for `v`: a value entry, an aligned pointer or a node-looking pointer.
fn raw(v: usize) -> usize {
    match v % 3 {
        0 => xa_mk_value(v).raw(),
        1 => 0x7f00_0000_0000 + v * 8,
        _ => 0x7f00_0000_0000 + v * 8 + 2,
    }
}
fn node_like(r: usize) -> bool {
    r & 3 == 2 && r > 4096
}

fn model_at(m: &Model, i: usize) -> Option<(usize, usize, usize)> {
    let (&f, &(l, r)) = m.range(..=i).next_back()?;
    (i <= l).then_some((f, l, r))
}

/// Applies a store of `[f, l]` (aligned, order `o`) to the model; returns false if the
/// array must refuse it (a node-looking entry in a non-leaf slot).
fn model_store(m: &mut Model, f: usize, l: usize, o: u32, r: Option<usize>) -> bool {
    let outer = model_at(m, f).filter(|&(lf, ll, _)| lf <= f && ll >= l && (lf, ll) != (f, l));
    if r.is_some_and(node_like) {
        // Order >= 6, or a store that would replace a larger entry of order >= 6: both
        // would put the entry in a non-leaf slot.
        if o >= 6 || outer.is_some_and(|(lf, ll, _)| ll - lf + 1 >= 64) {
            return false;
        }
    }
    if let Some((lf, ll, _)) = outer {
        match r {
            Some(r) => m.insert(lf, (ll, r)),
            None => m.remove(&lf),
        };
        return true;
    }
    let hit: Vec<usize> = m
        .range(..=l)
        .filter(|(_, &(ll, _))| ll >= f)
        .map(|(&k, _)| k)
        .collect();
    for k in hit {
        m.remove(&k);
    }
    if let Some(r) = r {
        m.insert(f, (l, r));
    }
    true
}

#[derive(Clone, Debug)]
enum Op {
    /// Simple API `xa_store` (order 0) or `xa_store_order`.
    Store(usize, u32, usize),
    /// `xas_store` with an `XaState` of the order.
    XasStore(usize, u32, usize),
    Erase(usize, u32),
}

fn index() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..300,
        1 => (0usize..300).prop_map(|i| (1 << 20) + i),
        1 => (0usize..300).prop_map(|i| usize::MAX - i),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let order = prop_oneof![6 => Just(0u32), 2 => 1u32..6, 1 => 6u32..9];
    prop_oneof![
        4 => (index(), order.clone(), 0usize..1000).prop_map(|(i, o, v)| Op::Store(i, o, v)),
        3 => (index(), order.clone(), 0usize..1000).prop_map(|(i, o, v)| Op::XasStore(i, o, v)),
        3 => (index(), order).prop_map(|(i, o)| Op::Erase(i, o)),
    ]
}

fn apply(xa: &Xa, m: &mut Model, op: &Op) {
    let (i, o, r, xas) = match *op {
        Op::Store(i, o, v) => (i, o, Some(raw(v)), false),
        Op::XasStore(i, o, v) => (i, o, Some(raw(v)), true),
        Op::Erase(i, o) => (i, o, None, false),
    };
    let f = (i >> o) << o;
    let l = f + ((1usize << o) - 1);
    let before = model_at(m, f).map(|(_, _, r)| r);
    let allowed = model_store(m, f, l, o, r);
    let e = r.and_then(XaEntry::from_raw);
    let res = if xas {
        let mut xas = XaState::new_order(xa, f, o);
        loop {
            let old = xas.lock().store(e);
            if !xas.nomem(GFP) {
                break xas.error().map_or(Ok(old), Err);
            }
        }
    } else {
        xa.store_order(f, o, e, GFP)
    };
    if allowed && o == 0 {
        assert_eq!(res.map(|o| o.map(XaEntry::raw)), Ok(before), "{op:?}");
    } else if allowed {
        // A multi-index store over a node returns what was in the slot (Linux too).
        assert!(res.is_ok(), "{op:?}");
    } else {
        assert_eq!(res, Err(Error::EINVAL), "{op:?}");
    }
}

fn check_against(xa: &Xa, m: &Model, probe: usize) {
    let got: Vec<_> = xa.iter().map(|(i, e)| (i, e.raw())).collect();
    let want: Vec<_> = m.iter().map(|(&f, &(_, r))| (f, r)).collect();
    assert_eq!(got, want, "xa_for_each");
    let mut xas = XaState::new(xa, 0);
    let mut all = Vec::new();
    xas.rcu().for_each(usize::MAX, |s, e| {
        all.push((s.index(), e.raw()));
        core::ops::ControlFlow::<()>::Continue(())
    });
    assert_eq!(all, want, "xas_for_each");
    let want_at = model_at(m, probe);
    assert_eq!(
        xa.load(probe).map(XaEntry::raw),
        want_at.map(|w| w.2),
        "load {probe}"
    );
    if let Some((f, l, _)) = want_at {
        assert_eq!(
            1usize << xa.get_order(probe),
            l - f + 1,
            "get_order {probe}"
        );
    }
    let mut xas = XaState::new(xa, probe);
    assert_eq!(
        xas.rcu().load().map(XaEntry::raw),
        want_at.map(|w| w.2),
        "xas_load"
    );
    let mut index = probe;
    let next = m.range(probe..).next().map(|(&f, &(_, r))| (f, r));
    let next = want_at.map(|(_, _, r)| (probe, r)).or(next);
    let got = xa
        .find(&mut index, usize::MAX, XA_PRESENT)
        .map(|e| (index, e.raw()));
    assert_eq!(got, next, "xa_find from {probe}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn node_looking_entries_match_model(
        ops in proptest::collection::vec(op(), 1..80),
        probes in proptest::collection::vec(index(), 4),
    ) {
        let a = TestAlloc::new();
        let xa = XArray::new_in(&a);
        let mut m = Model::new();
        for op in &ops {
            apply(&xa, &mut m, op);
            ok(&xa);
            for &p in &probes {
                check_against(&xa, &m, p);
            }
        }
        xa.destroy();
        drop(xa);
        prop_assert_eq!(a.live(), 0);
    }
}
