//! The hosted platform's primitives under kmem's fast paths: entering and leaving a CPU
//! section (`get_cpu`/`put_cpu`), the clock and the random source, with a thread-local counter
//! and an uncontended `parking_lot` lock pair as reference points in the same run.

use std::cell::Cell;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kmem::platform::{CpuGuard, Platform};
use kmem_hosted::{Clock, Console, HostedConfig, HostedPlatform};

fn platform() -> HostedPlatform {
    HostedPlatform::new(HostedConfig {
        phys_size: 16 << 20,
        console: Console::Null,
        clock: Clock::Monotonic,
        ..HostedConfig::default()
    })
    .expect("platform")
}

fn cpu_sections(c: &mut Criterion) {
    let plat = platform();
    let other = platform();
    let mut g = c.benchmark_group("hosted_cpu");
    g.bench_function("cpu_get+cpu_put", |b| {
        b.iter(|| {
            let cpu = plat.cpu_get();
            plat.cpu_put(black_box(cpu));
        })
    });
    g.bench_function("CpuGuard", |b| {
        b.iter(|| {
            let guard = CpuGuard::new(&plat);
            black_box(guard.cpu());
        })
    });
    g.bench_function("nested cpu_get+cpu_put", |b| {
        let outer = plat.cpu_get();
        b.iter(|| {
            let cpu = plat.cpu_get();
            plat.cpu_put(black_box(cpu));
        });
        plat.cpu_put(outer);
    });
    g.bench_function("alternating two platforms", |b| {
        b.iter(|| {
            let a = plat.cpu_get();
            plat.cpu_put(black_box(a));
            let o = other.cpu_get();
            other.cpu_put(black_box(o));
        })
    });
    // Reference points.
    thread_local! {
        static COUNTER: Cell<usize> = const { Cell::new(0) };
    }
    g.bench_function("peer: thread_local Cell inc+dec", |b| {
        b.iter(|| {
            COUNTER.with(|c| c.set(c.get() + 1));
            black_box(COUNTER.with(Cell::get));
            COUNTER.with(|c| c.set(c.get() - 1));
        })
    });
    let m = parking_lot::Mutex::new(0u64);
    g.bench_function("peer: parking_lot lock+unlock", |b| {
        b.iter(|| {
            *m.lock() += 1;
        })
    });
    g.finish();
}

fn clock_random(c: &mut Criterion) {
    let plat = platform();
    let mut g = c.benchmark_group("hosted_misc");
    g.bench_function("jiffies (monotonic)", |b| {
        b.iter(|| black_box(plat.jiffies()))
    });
    g.bench_function("random_u64", |b| b.iter(|| black_box(plat.random_u64())));
    g.bench_function("current_pid", |b| b.iter(|| black_box(plat.current_pid())));
    g.finish();
}

criterion_group!(benches, cpu_sections, clock_random);
criterion_main!(benches);
