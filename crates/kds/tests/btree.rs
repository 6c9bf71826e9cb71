//! B+tree tests: the lib/btree.c contract (insert / update / remove / lookup / get_prev /
//! last / merge / visitor / grim_visitor, nodes from an allocator that can fail) and a
//! proptest against `BTreeMap` with the invariant checker after every step.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod trees_support;

use core::num::NonZeroUsize;
use std::collections::BTreeMap;
use std::vec::Vec;

use kds::alloc::Gfp;
use kds::btree::*;
use kds::Error;
use proptest::prelude::*;
use trees_support::{Rng, TestAlloc};

const GFP: Gfp = Gfp::GFP_KERNEL;

fn val(v: usize) -> NonZeroUsize {
    NonZeroUsize::new(v + 1).unwrap()
}

#[test]
fn geometry_matches_linux() {
    // 128-byte nodes: 8 pairs of one-word keys, 5 of two-word keys (64-bit).
    assert_eq!(no_pairs(1), 8);
    assert_eq!(no_pairs(2), 5);
    assert_eq!(no_pairs(4), 3);
}

#[test]
fn contract_geo64() {
    let a = TestAlloc::new();
    let mut t: BTreeGeo64<_> = BTree::new_in(&a);
    assert_eq!(t.lookup(&[5]), None);
    assert_eq!(t.last(), None);
    assert_eq!(t.update(&[5], val(1)), Err(Error::ENOENT));
    assert_eq!(t.remove(&[5]), None);
    let mut rng = Rng(99);
    let mut keys: Vec<usize> = (0..3000).map(|_| rng.next_u64() as usize >> 1).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut shuffled = keys.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (n, &k) in shuffled.iter().enumerate() {
        t.insert(&[k], val(k), GFP).unwrap();
        if n % 97 == 0 {
            t.check().unwrap();
        }
    }
    t.check().unwrap();
    assert_eq!(t.insert(&[keys[3]], val(0), GFP), Err(Error::EEXIST));
    assert_eq!(t.len(), keys.len());
    for &k in &keys {
        assert_eq!(t.lookup(&[k]), Some(val(k)));
    }
    // update: present keys only.
    t.update(&[keys[10]], val(7)).unwrap();
    assert_eq!(t.lookup(&[keys[10]]), Some(val(7)));
    t.update(&[keys[10]], val(keys[10])).unwrap();
    // last / get_prev walk every key downwards.
    let (mut k, v) = t.last().unwrap();
    assert_eq!(k, [*keys.last().unwrap()]);
    assert_eq!(v, val(k[0]));
    let mut seen = std::vec![k[0]];
    while let Some(v) = t.get_prev(&mut k) {
        assert_eq!(v, val(k[0]));
        seen.push(k[0]);
    }
    seen.reverse();
    assert_eq!(seen, keys);
    // get_prev of a key that is absent: the next smaller one.
    let mut probe = [keys[100] + 1];
    if probe[0] != keys[101] {
        assert_eq!(t.get_prev(&mut probe), Some(val(keys[100])));
        assert_eq!(probe, [keys[100]]);
    }
    let mut probe = [keys[0]];
    assert_eq!(t.get_prev(&mut probe), None);
    // visitor: descending order, indices 0..n.
    let mut visited = Vec::new();
    assert_eq!(t.visitor(|v, k, i| visited.push((v, k[0], i))), keys.len());
    assert!(visited
        .iter()
        .enumerate()
        .all(|(i, (v, k, idx))| *idx == i && *v == val(*k)));
    assert!(visited.windows(2).all(|w| w[0].1 > w[1].1));
    // remove half, then everything.
    for &k in keys.iter().step_by(2) {
        assert_eq!(t.remove(&[k]), Some(val(k)));
    }
    t.check().unwrap();
    assert_eq!(
        t.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(),
        keys.iter().skip(1).step_by(2).copied().collect::<Vec<_>>()
    );
    let n = t.grim_visitor(|_, _, _| {});
    assert_eq!(n, keys.len() / 2);
    assert!(t.is_empty());
    assert_eq!(t.lookup(&[keys[1]]), None);
    drop(t);
    assert_eq!(a.live(), 0);
}

#[test]
fn geo128_keys_compare_word_by_word() {
    let a = TestAlloc::new();
    let mut t: BTreeGeo128<_> = BTree::new_in(&a);
    let mut keys = Vec::new();
    for hi in 0..30usize {
        for lo in [0usize, 1, usize::MAX, 1 << 40] {
            keys.push([hi, lo][..].try_into().unwrap_or([hi; 2]));
        }
    }
    for (i, k) in keys.iter().enumerate() {
        t.insert(k, val(i), GFP).unwrap();
    }
    t.check().unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(t.iter().map(|(k, _)| k).collect::<Vec<_>>(), sorted);
    assert_eq!(t.last().unwrap().0, [29, usize::MAX]);
}

#[test]
fn enomem_leaves_tree_unchanged() {
    let a = TestAlloc::new();
    let mut t: BTreeGeo32<_> = BTree::new_in(&a);
    a.fail_all();
    assert_eq!(t.insert(&[1], val(1), GFP), Err(Error::ENOMEM));
    assert!(t.is_empty());
    a.heal();
    for k in 0..500 {
        t.insert(&[k], val(k), GFP).unwrap();
    }
    let nodes = t.check().unwrap();
    // Keep inserting with a small budget: every failure must leave the tree as it was.
    let mut k = 500;
    let mut failures = 0;
    while k < 3000 {
        a.fail_after(k % 3);
        match t.insert(&[k], val(k), GFP) {
            Ok(()) => k += 1,
            Err(Error::ENOMEM) => {
                failures += 1;
                assert_eq!(t.lookup(&[k]), None);
                assert_eq!(t.len(), k);
                t.check().unwrap();
                a.heal();
                t.insert(&[k], val(k), GFP).unwrap();
                k += 1;
            }
            Err(e) => panic!("{e}"),
        }
        a.heal();
    }
    assert!(failures > 0);
    assert!(t.check().unwrap() > nodes);
    drop(t);
    assert_eq!(a.live(), 0);
}

#[test]
fn merge_moves_everything() {
    let a = TestAlloc::new();
    let mut target: BTreeGeo64<_> = BTree::new_in(&a);
    let mut victim: BTreeGeo64<_> = BTree::new_in(&a);
    // Into an empty target: the heads are swapped.
    for k in 0..100 {
        victim.insert(&[k * 2], val(k), GFP).unwrap();
    }
    target.merge(&mut victim, GFP).unwrap();
    assert!(victim.is_empty());
    assert_eq!(target.len(), 100);
    for k in 0..100 {
        victim.insert(&[k * 2 + 1], val(k), GFP).unwrap();
    }
    target.merge(&mut victim, GFP).unwrap();
    assert!(victim.is_empty());
    assert_eq!(target.len(), 200);
    target.check().unwrap();
    assert_eq!(
        target.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    drop(target);
    drop(victim);
    assert_eq!(a.live(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(usize),
    Remove(usize),
    Update(usize, usize),
    Prev(usize),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn btree_matches_btreemap(ops in proptest::collection::vec(prop_oneof![
        4 => (0usize..600).prop_map(Op::Insert),
        3 => (0usize..600).prop_map(Op::Remove),
        1 => (0usize..600, 0usize..1000).prop_map(|(k, v)| Op::Update(k, v)),
        1 => (0usize..700).prop_map(Op::Prev),
    ], 1..500)) {
        let a = TestAlloc::new();
        let mut t: BTreeGeo32<_> = BTree::new_in(&a);
        let mut m = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(k) => {
                    let r = t.insert(&[k], val(k), GFP);
                    if let std::collections::btree_map::Entry::Vacant(e) = m.entry(k) { prop_assert_eq!(r, Ok(())); e.insert(val(k)); } else { prop_assert_eq!(r, Err(Error::EEXIST)); }
                }
                Op::Remove(k) => prop_assert_eq!(t.remove(&[k]), m.remove(&k)),
                Op::Update(k, v) => {
                    let r = t.update(&[k], val(v));
                    match m.get_mut(&k) { Some(x) => { prop_assert_eq!(r, Ok(())); *x = val(v); } None => prop_assert_eq!(r, Err(Error::ENOENT)) }
                }
                Op::Prev(k) => {
                    let mut key = [k];
                    let got = t.get_prev(&mut key).map(|v| (key[0], v));
                    let want = m.range(..k).next_back().map(|(k, v)| (*k, *v));
                    prop_assert_eq!(got, want);
                }
            }
            if let Err(e) = t.check() { return Err(TestCaseError::fail(e)); }
            prop_assert_eq!(t.len(), m.len());
        }
        let got: Vec<_> = t.iter().map(|(k, v)| (k[0], v)).collect();
        let want: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(t.last().map(|(k, v)| (k[0], v)), m.last_key_value().map(|(k, v)| (*k, *v)));
        drop(t);
        prop_assert_eq!(a.live(), 0);
    }
}
