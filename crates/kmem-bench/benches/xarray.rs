//! kds XArray against std `BTreeMap` and `HashMap` (default SipHash): dense and sparse keys.
//!
//! - `dense_load`: lookup of a random index among 0..1M (all present), value entries.
//! - `dense_load_guard`: the same inside one long read section (`XArray::read`), i.e. the
//!   cost without entering/leaving the reader count per lookup.
//! - `dense_store`: overwrite of a random present index (no allocation).
//! - `dense_build_1m`: store indices 0..1M into an empty map.
//! - `sparse_load`: lookup of a random present key among 100k random 64-bit keys.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kds::alloc::{Gfp, Global};
use kds::xarray::{xa_mk_value, XArray};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DENSE: usize = 1_000_000;
const SPARSE: usize = 100_000;

fn build_xa(keys: &[usize]) -> XArray<Global> {
    let xa = XArray::new_in(Global);
    for &k in keys {
        xa.store(k, Some(xa_mk_value(k >> 1)), Gfp::GFP_KERNEL)
            .unwrap();
    }
    xa
}

fn dense(c: &mut Criterion) {
    let keys: Vec<usize> = (0..DENSE).collect();
    let mut probe = keys.clone();
    probe.shuffle(&mut SmallRng::seed_from_u64(3));
    let xa = build_xa(&keys);
    let bt: BTreeMap<usize, usize> = keys.iter().map(|&k| (k, k)).collect();
    let hm: HashMap<usize, usize> = keys.iter().map(|&k| (k, k)).collect();
    let mut g = c.benchmark_group("xarray_dense_load_1m");
    let mut i = 0;
    g.bench_function("kds_xarray", |b| {
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(xa.load(probe[i]))
        })
    });
    g.bench_function("kds_xarray_read_guard", |b| {
        let r = xa.read();
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(r.load(probe[i]))
        })
    });
    g.bench_function("std_btreemap", |b| {
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(bt.get(&probe[i]))
        })
    });
    g.bench_function("std_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(hm.get(&probe[i]))
        })
    });
    g.finish();

    let mut bt = bt;
    let mut hm = hm;
    let mut g = c.benchmark_group("xarray_dense_store_1m");
    g.bench_function("kds_xarray", |b| {
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(
                xa.store(probe[i], Some(xa_mk_value(i)), Gfp::GFP_KERNEL)
                    .unwrap(),
            )
        })
    });
    g.bench_function("std_btreemap", |b| {
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(bt.insert(probe[i], i))
        })
    });
    g.bench_function("std_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % DENSE;
            black_box(hm.insert(probe[i], i))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("xarray_dense_build_1m");
    g.sample_size(10);
    g.bench_function("kds_xarray", |b| {
        b.iter_batched(|| (), |_| build_xa(&keys), BatchSize::PerIteration)
    });
    g.bench_function("std_btreemap", |b| {
        b.iter_batched(
            || (),
            |_| {
                let mut m = BTreeMap::new();
                for &k in &keys {
                    m.insert(k, k);
                }
                m
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("std_hashmap", |b| {
        b.iter_batched(
            || (),
            |_| {
                let mut m = HashMap::new();
                for &k in &keys {
                    m.insert(k, k);
                }
                m
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn sparse(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(4);
    let keys: Vec<usize> = (0..SPARSE).map(|_| rng.gen::<usize>()).collect();
    let mut probe = keys.clone();
    probe.shuffle(&mut rng);
    let xa = build_xa(&keys);
    let bt: BTreeMap<usize, usize> = keys.iter().map(|&k| (k, k)).collect();
    let hm: HashMap<usize, usize> = keys.iter().map(|&k| (k, k)).collect();
    let mut g = c.benchmark_group("xarray_sparse_load_100k");
    let mut i = 0;
    g.bench_function("kds_xarray", |b| {
        b.iter(|| {
            i = (i + 1) % SPARSE;
            black_box(xa.load(probe[i]))
        })
    });
    g.bench_function("std_btreemap", |b| {
        b.iter(|| {
            i = (i + 1) % SPARSE;
            black_box(bt.get(&probe[i]))
        })
    });
    g.bench_function("std_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % SPARSE;
            black_box(hm.get(&probe[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, dense, sparse);
criterion_main!(benches);
