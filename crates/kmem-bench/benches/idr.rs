//! kds IDR / IDA against the `slab` crate (a Vec with a free list), the usual Rust answer to
//! "hand out small integer ids".
//!
//! - `churn_10k`: with 10k ids allocated, free a random id and allocate one (which reuses the
//!   lowest free id: IDR/IDA scan `XA_FREE_MARK`, slab pops its free list).
//! - `alloc_100k`: allocate ids 0..100k into an empty allocator.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kds::alloc::{Gfp, Global};
use kds::idr::{Ida, Idr};
use kds::xarray::xa_mk_value;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use slab::Slab;

const LIVE: usize = 10_000;
const FRESH: usize = 100_000;

fn churn(c: &mut Criterion) {
    let gfp = Gfp::GFP_KERNEL;
    let mut rng = SmallRng::seed_from_u64(5);
    let victims: Vec<usize> = (0..4096).map(|_| rng.gen_range(0..LIVE)).collect();
    let idr = Idr::new_in(Global);
    let ida = Ida::new_in(Global);
    let mut slab = Slab::with_capacity(LIVE);
    for i in 0..LIVE {
        idr.idr_alloc(Some(xa_mk_value(i)), 0, 0, gfp).unwrap();
        ida.ida_alloc(gfp).unwrap();
        slab.insert(i);
    }
    let mut g = c.benchmark_group("idr_churn_10k");
    let mut j = 0;
    g.bench_function("kds_idr", |b| {
        b.iter(|| {
            j = (j + 1) & 4095;
            let v = victims[j];
            idr.idr_remove(v as u32);
            black_box(idr.idr_alloc(Some(xa_mk_value(v)), 0, 0, gfp).unwrap())
        })
    });
    g.bench_function("kds_ida", |b| {
        b.iter(|| {
            j = (j + 1) & 4095;
            let v = victims[j];
            ida.ida_free(v as u32);
            black_box(ida.ida_alloc(gfp).unwrap())
        })
    });
    g.bench_function("slab", |b| {
        b.iter(|| {
            j = (j + 1) & 4095;
            let v = victims[j];
            slab.remove(v);
            black_box(slab.insert(v))
        })
    });
    g.finish();
}

fn fresh(c: &mut Criterion) {
    let gfp = Gfp::GFP_KERNEL;
    let mut g = c.benchmark_group("idr_alloc_100k");
    g.sample_size(10);
    g.bench_function("kds_idr", |b| {
        b.iter_batched(
            || Idr::new_in(Global),
            |idr| {
                for i in 0..FRESH {
                    black_box(idr.idr_alloc(Some(xa_mk_value(i)), 0, 0, gfp).unwrap());
                }
                idr
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("kds_ida", |b| {
        b.iter_batched(
            || Ida::new_in(Global),
            |ida| {
                for _ in 0..FRESH {
                    black_box(ida.ida_alloc(gfp).unwrap());
                }
                ida
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("slab", |b| {
        b.iter_batched(
            Slab::new,
            |mut s| {
                for i in 0..FRESH {
                    black_box(s.insert(i));
                }
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, churn, fresh);
criterion_main!(benches);
