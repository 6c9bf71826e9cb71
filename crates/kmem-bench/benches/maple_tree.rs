//! kds maple tree against a std `BTreeMap` of ranges (first index -> (last, value)), on a
//! VMA-like layout: 10 000 ranges of 1–16 pages with 0–3 page holes.
//!
//! - `maple_load_10k`: the entry covering a random address (`mtree_load` / `find_vma`).
//! - `maple_store_10k`: overwrite a random existing range with a new entry (`mas_store` of an
//!   `mprotect` that keeps the bounds).
//! - `maple_empty_area_rev_10k`: top-down search for a hole of 4 pages below a random
//!   address (`get_unmapped_area`), against a linear scan of the `BTreeMap`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kds::alloc::{Gfp, Global};
use kds::maple_tree::{xa_mk_value, MapleTree, MtFlags};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const N: usize = 10_000;
const PAGE: usize = 4096;

fn layout() -> Vec<(usize, usize)> {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut at = 0x1000_0000usize;
    (0..N)
        .map(|_| {
            let len = rng.gen_range(1..=16) * PAGE;
            let r = (at, at + len - 1);
            at += len + rng.gen_range(0..=3) * PAGE;
            r
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ranges = layout();
    let mt = MapleTree::new(MtFlags::ALLOC_RANGE, Global);
    let mut bt = BTreeMap::new();
    for (i, &(s, e)) in ranges.iter().enumerate() {
        mt.store_range(s, e, Some(xa_mk_value(i)), Gfp::GFP_KERNEL)
            .unwrap();
        bt.insert(s, (e, i));
    }
    let top = ranges[N - 1].1;
    let mut rng = SmallRng::seed_from_u64(9);
    let mut g = c.benchmark_group("maple_load_10k");
    g.bench_function("kds_maple_tree", |b| {
        b.iter(|| black_box(mt.load(rng.gen_range(0x1000_0000..top))))
    });
    g.bench_function("std_btreemap", |b| {
        b.iter(|| {
            let a = rng.gen_range(0x1000_0000..top);
            black_box(bt.range(..=a).next_back().filter(|(_, &(e, _))| e >= a))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("maple_store_10k");
    g.bench_function("kds_maple_tree", |b| {
        b.iter(|| {
            let (s, e) = ranges[rng.gen_range(0..N)];
            mt.store_range(s, e, Some(xa_mk_value(s >> 12)), Gfp::GFP_KERNEL)
                .unwrap()
        })
    });
    g.bench_function("std_btreemap", |b| {
        b.iter(|| {
            let (s, e) = ranges[rng.gen_range(0..N)];
            bt.insert(s, (e, s >> 12))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("maple_empty_area_rev_10k");
    g.bench_function("kds_maple_tree", |b| {
        b.iter(|| {
            let mut mas = mt.mas(0, 0);
            let hi = rng.gen_range(0x2000_0000..top);
            black_box(mas.empty_area_rev(0, hi, 4 * PAGE).map(|_| mas.index))
        })
    });
    g.bench_function("std_btreemap_scan", |b| {
        b.iter(|| {
            let hi = rng.gen_range(0x2000_0000..top);
            let mut next_start = hi + 1;
            let mut found = None;
            for (&s, &(e, _)) in bt.range(..=hi).rev() {
                let gap_end = next_start.min(hi + 1);
                if gap_end > e + 1 && gap_end - (e + 1) >= 4 * PAGE {
                    found = Some(gap_end - 4 * PAGE);
                    break;
                }
                next_start = s;
            }
            black_box(found)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
