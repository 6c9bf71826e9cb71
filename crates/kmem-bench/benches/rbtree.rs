//! kds rbtree against intrusive-collections' `RBTree` and std `BTreeMap`: 1M random u64 keys.
//!
//! - `insert_1m`: build a map of 1M random keys (each implementation allocates one node per
//!   key from the system allocator; `BTreeMap` allocates B-tree nodes).
//! - `lookup`: one successful lookup of a random present key in the 1M-key map.
//! - `erase_1m`: remove all 1M keys in random order (setup, not timed, builds the map).
//!
//! `kds_rbtree` is the safe `kds::rbtree::RbTree` map (nodes from a `NodeAlloc` over the
//! system allocator), i.e. the raw Linux algorithms under the safe layer.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use intrusive_collections::{intrusive_adapter, Bound, KeyAdapter, RBTree, RBTreeLink};
use kds::alloc::{Gfp, Global};
use kds::rbtree::RbTree;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const N: usize = 1_000_000;

struct INode {
    link: RBTreeLink,
    key: u64,
    val: u64,
}
intrusive_adapter!(IAdapter = Box<INode>: INode { link: RBTreeLink });
impl<'a> KeyAdapter<'a> for IAdapter {
    type Key = u64;
    fn get_key(&self, n: &'a INode) -> u64 {
        n.key
    }
}

fn keys() -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    (0..N).map(|_| rng.gen()).collect()
}

fn build_kds(keys: &[u64]) -> RbTree<u64, u64, Global> {
    let mut t = RbTree::new_in(Global);
    for &k in keys {
        t.insert(k, k, Gfp::GFP_KERNEL).unwrap();
    }
    t
}

fn build_ic(keys: &[u64]) -> RBTree<IAdapter> {
    let mut t = RBTree::new(IAdapter::new());
    for &k in keys {
        t.insert(Box::new(INode {
            link: RBTreeLink::new(),
            key: k,
            val: k,
        }));
    }
    t
}

fn build_std(keys: &[u64]) -> BTreeMap<u64, u64> {
    // One insert per key, like the others (`collect` would sort first and bulk-build).
    let mut m = BTreeMap::new();
    for &k in keys {
        m.insert(k, k);
    }
    m
}

fn insert(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("rbtree_insert_1m");
    g.sample_size(10);
    g.bench_function("kds_rbtree", |b| {
        b.iter_batched(|| (), |_| build_kds(&keys), BatchSize::PerIteration)
    });
    g.bench_function("intrusive_collections", |b| {
        b.iter_batched(|| (), |_| build_ic(&keys), BatchSize::PerIteration)
    });
    g.bench_function("std_btreemap", |b| {
        b.iter_batched(|| (), |_| build_std(&keys), BatchSize::PerIteration)
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut probe = keys.clone();
    probe.shuffle(&mut SmallRng::seed_from_u64(1));
    let kt = build_kds(&keys);
    let it = build_ic(&keys);
    let st = build_std(&keys);
    let mut g = c.benchmark_group("rbtree_lookup_in_1m");
    let mut i = 0;
    g.bench_function("kds_rbtree", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(kt.get(&probe[i]))
        })
    });
    g.bench_function("intrusive_collections", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(it.find(&probe[i]).get().map(|n| n.val))
        })
    });
    g.bench_function("std_btreemap", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(st.get(&probe[i]))
        })
    });
    g.finish();
    // Keep the ordered-range API honest too (not reported): lower bound search.
    let _ = it.lower_bound(Bound::Included(&0)).get().map(|n| n.key);
}

fn erase(c: &mut Criterion) {
    let keys = keys();
    let mut order = keys.clone();
    order.shuffle(&mut SmallRng::seed_from_u64(2));
    let mut g = c.benchmark_group("rbtree_erase_1m");
    g.sample_size(10);
    g.bench_function("kds_rbtree", |b| {
        b.iter_batched(
            || build_kds(&keys),
            |mut t| {
                for k in &order {
                    black_box(t.remove(k));
                }
                t
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("intrusive_collections", |b| {
        b.iter_batched(
            || build_ic(&keys),
            |mut t| {
                for k in &order {
                    black_box(t.find_mut(k).remove());
                }
                t
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("std_btreemap", |b| {
        b.iter_batched(
            || build_std(&keys),
            |mut t| {
                for k in &order {
                    black_box(t.remove(k));
                }
                t
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, insert, lookup, erase);
criterion_main!(benches);
