//! The buddy page allocator against `buddy_system_allocator`'s frame allocator on the same
//! sequences, and the time to boot a 4 GiB machine.
//!
//! Run: `cargo bench -p kmem-bench --bench page_alloc`

use std::hint::black_box;
use std::time::{Duration, Instant};

use buddy_system_allocator::FrameAllocator;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kmem::arch::Arch;
use kmem::{BootParams, GfpFlags, Machine, Order, PagePtr};
use kmem_hosted::{HostedConfig, HostedPlatform};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

type M = Machine<HostedPlatform>;

fn boot(mem: u64) -> M {
    let params = BootParams::simulated(Arch::X86_64, mem, 2).unwrap();
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 1);
    cfg.console = kmem_hosted::Console::Null;
    Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap()
}

/// A frame allocator over the same number of frames as kmem's 4 GiB machine.
fn peer(frames: usize) -> FrameAllocator<32> {
    let mut f = FrameAllocator::<32>::new();
    f.add_frame(0x100, 0x100 + frames);
    f
}

fn pair(c: &mut Criterion) {
    let m = boot(4 << 30);
    let mut g = c.benchmark_group("order0_alloc_free_pair");
    g.bench_function("kmem_pcp", |b| {
        b.iter(|| {
            let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO).unwrap();
            m.__free_pages(black_box(p), Order::ZERO);
        })
    });
    let mut f = peer(1 << 20);
    g.bench_function("buddy_system_allocator", |b| {
        b.iter(|| {
            let p = f.alloc(1).unwrap();
            f.dealloc(black_box(p), 1);
        })
    });
    g.finish();
}

/// 16 order-0 pages at once (`alloc_pages_bulk`, issue 14) against 16 `alloc_pages` calls,
/// each followed by 16 frees.
fn bulk16(c: &mut Criterion) {
    let m = boot(4 << 30);
    let mut g = c.benchmark_group("order0_16_pages_alloc_free");
    g.bench_function("alloc_pages_bulk", |b| {
        let mut pages = [None; 16];
        b.iter(|| {
            let n = m.alloc_pages_bulk(GfpFlags::GFP_KERNEL, &mut pages);
            assert_eq!(n, 16);
            for p in pages.iter_mut() {
                m.__free_pages(black_box(p.take().unwrap()), Order::ZERO);
            }
        })
    });
    g.bench_function("alloc_pages_x16", |b| {
        let mut pages = [None; 16];
        b.iter(|| {
            for p in pages.iter_mut() {
                *p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO);
            }
            for p in pages.iter_mut() {
                m.__free_pages(black_box(p.take().unwrap()), Order::ZERO);
            }
        })
    });
    g.finish();
}

const BATCH: usize = 100_000;

fn batch_random_free(c: &mut Criterion) {
    let m = boot(4 << 30);
    let mut g = c.benchmark_group("batch_100k_order0_then_random_free");
    g.sample_size(10);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    g.bench_function("kmem", |b| {
        let mut v: Vec<PagePtr> = Vec::with_capacity(BATCH);
        b.iter(|| {
            for _ in 0..BATCH {
                v.push(m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO).unwrap());
            }
            v.shuffle(&mut rng);
            for p in v.drain(..) {
                m.__free_pages(p, Order::ZERO);
            }
        })
    });
    let mut f = peer(1 << 20);
    g.bench_function("buddy_system_allocator", |b| {
        let mut v: Vec<usize> = Vec::with_capacity(BATCH);
        b.iter(|| {
            for _ in 0..BATCH {
                v.push(f.alloc(1).unwrap());
            }
            v.shuffle(&mut rng);
            for p in v.drain(..) {
                f.dealloc(p, 1);
            }
        })
    });
    g.finish();
}

fn mixed_orders(c: &mut Criterion) {
    let m = boot(4 << 30);
    let mut g = c.benchmark_group("mixed_orders_0_10_1000_live");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
    let orders: Vec<u32> = (0..4096).map(|_| rng.gen_range(0..=10)).collect();
    g.bench_function("kmem", |b| {
        let mut live: Vec<(PagePtr, Order)> = Vec::new();
        let mut i = 0;
        b.iter(|| {
            let o = Order::new(orders[i % orders.len()]);
            i += 1;
            if live.len() >= 1000 {
                let (p, o) = live.swap_remove(i % live.len());
                m.__free_pages(p, o);
            }
            if let Some(p) = m.alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, o) {
                live.push((p, o));
            }
        });
        for (p, o) in live {
            m.__free_pages(p, o);
        }
    });
    let mut f = peer(1 << 20);
    g.bench_function("buddy_system_allocator", |b| {
        let mut live: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        b.iter(|| {
            let n = 1usize << orders[i % orders.len()];
            i += 1;
            if live.len() >= 1000 {
                let (p, n) = live.swap_remove(i % live.len());
                f.dealloc(p, n);
            }
            if let Some(p) = f.alloc(n) {
                live.push((p, n));
            }
        });
    });
    g.finish();
}

fn boot_4g(c: &mut Criterion) {
    let mut g = c.benchmark_group("boot");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("boot_4GiB_machine", |b| {
        b.iter_batched(|| (), |_| black_box(boot(4 << 30)), BatchSize::PerIteration)
    });
    g.finish();
    // One plain timing for the report, including the platform's memfd setup.
    let t = Instant::now();
    let m = boot(4 << 30);
    eprintln!("boot 4 GiB (incl. platform setup): {:?}", t.elapsed());
    drop(m);
}

criterion_group!(
    benches,
    pair,
    bulk16,
    batch_random_free,
    mixed_orders,
    boot_4g
);
criterion_main!(benches);
