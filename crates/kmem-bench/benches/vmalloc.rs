//! vmalloc + vfree of 1, 16 and 256 pages (lazy purge as in Linux, and purging on every
//! free), the test_vmalloc.c fix-size scenario's throughput, and vmalloc(4 MiB) against
//! vmalloc_huge(4 MiB) (two huge PMD mappings) and kmalloc(4 MiB) (the largest kmalloc, an
//! order-10 buddy block) and alloc_pages(order 10).
//!
//! Every vmalloc'd page is also mapped into the real process (one mmap per physically
//! contiguous run) and unmapped on vfree: on the hosted platform that system-call cost is part
//! of what is measured, as page-table updates and TLB shootdowns are in the kernel.
//!
//! Run: `cargo bench -p kmem-bench --bench vmalloc`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kmem::arch::Arch;
use kmem::{BootParams, GfpFlags, Machine, Order, PAGE_SIZE};
use kmem_hosted::{HostedConfig, HostedPlatform};

type M = Machine<HostedPlatform>;

fn boot(mem: u64) -> M {
    let params = BootParams::simulated(Arch::X86_64, mem, 2).unwrap();
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 1);
    cfg.console = kmem_hosted::Console::Null;
    Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap()
}

fn sizes(c: &mut Criterion) {
    let m = boot(1 << 30);
    for pages in [1usize, 16, 256] {
        let mut g = c.benchmark_group(format!("vmalloc_vfree_{pages}_pages"));
        m.set_lazy_max_pages(None);
        g.bench_function("lazy_purge", |b| {
            b.iter(|| {
                let v = m.vmalloc(pages * PAGE_SIZE).unwrap();
                m.vfree(black_box(v));
            })
        });
        m.set_lazy_max_pages(Some(0));
        g.bench_function("immediate_purge", |b| {
            b.iter(|| {
                let v = m.vmalloc(pages * PAGE_SIZE).unwrap();
                m.vfree(black_box(v));
            })
        });
        m.set_lazy_max_pages(None);
        g.finish();
    }
}

fn test_vmalloc_fix_size(c: &mut Criterion) {
    // fix_size_alloc_test: vmalloc(3 pages), touch, vfree.
    let m = boot(1 << 30);
    c.bench_function("test_vmalloc_fix_size_alloc", |b| {
        b.iter(|| {
            let v = m.vmalloc(3 * PAGE_SIZE).unwrap();
            // SAFETY: three pages were just allocated at `v`.
            unsafe { v.as_ptr::<u8>().write_volatile(0) };
            m.vfree(v);
        })
    });
}

fn four_mib(c: &mut Criterion) {
    let m = boot(1 << 30);
    let mut g = c.benchmark_group("alloc_free_4MiB");
    g.bench_function("vmalloc", |b| {
        b.iter(|| {
            let v = m.vmalloc(4 << 20).unwrap();
            m.vfree(black_box(v));
        })
    });
    g.bench_function("vmalloc_huge", |b| {
        b.iter(|| {
            let v = m.vmalloc_huge(4 << 20, GfpFlags::GFP_KERNEL).unwrap();
            m.vfree(black_box(v));
        })
    });
    g.bench_function("kmalloc", |b| {
        b.iter(|| {
            let p = m.kmalloc(4 << 20, GfpFlags::GFP_KERNEL).unwrap();
            m.kfree(black_box(p.as_ptr()));
        })
    });
    g.bench_function("alloc_pages_order10", |b| {
        b.iter(|| {
            let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(10)).unwrap();
            m.__free_pages(black_box(p), Order::new(10));
        })
    });
    g.finish();
}

criterion_group!(benches, sizes, test_vmalloc_fix_size, four_mib);
criterion_main!(benches);
