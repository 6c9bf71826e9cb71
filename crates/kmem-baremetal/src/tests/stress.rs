//! A random mixed workload on the real machine: page blocks of several orders and GFP flags,
//! kmalloc objects of every size class and beyond, and objects of a private cache, allocated
//! and freed in random order, each stamped with a pattern that is checked when it is freed.
//! Afterwards every page is back, the buddy invariants hold and no cache reports corruption.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use alloc::vec::Vec;

use kmem::platform::Platform;
use kmem::slab::common::SlabFlags;
use kmem::{GfpFlags, Order, VirtAddr, PAGE_SIZE};

use super::{settle, KernelCtx};
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, println, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![mixed_random_workload];

/// Operations of the workload.
const OPS: usize = 30_000;
/// Live allocations kept at most (a full table frees before allocating).
const MAX_LIVE: usize = 3_000;

#[derive(Clone, Copy)]
enum Kind {
    Pages(Order),
    Kmalloc(usize),
    Cache,
}

#[derive(Clone, Copy)]
struct Live {
    p: *mut u8,
    kind: Kind,
    stamp: u64,
}

impl Live {
    fn len(&self) -> usize {
        match self.kind {
            Kind::Pages(o) => o.bytes(),
            Kind::Kmalloc(n) => n,
            Kind::Cache => OBJ_SIZE,
        }
    }
}

const OBJ_SIZE: usize = 72;

/// Where the stamp goes: the first `min(8, n)` bytes, and the last 8 when they do not overlap
/// the first.
fn stamp_ranges(n: usize) -> [(usize, usize); 2] {
    if n >= 16 {
        [(0, 8), (n - 8, 8)]
    } else {
        [(0, n.min(8)), (0, 0)]
    }
}

/// Writes `stamp` at the start and end of the allocation.
fn stamp(l: &Live) {
    let bytes = l.stamp.to_le_bytes();
    for (off, k) in stamp_ranges(l.len()) {
        // SAFETY: the allocation has `l.len()` bytes and the range is inside it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), l.p.add(off), k) };
    }
}

fn stamp_ok(l: &Live) -> bool {
    let bytes = l.stamp.to_le_bytes();
    stamp_ranges(l.len()).iter().all(|&(off, k)| {
        // SAFETY: `stamp_ranges(l.len())` yields ranges inside the live allocation of `l.len()`
        // bytes, written by `stamp` when it was made, and no `&mut` to it exists while we read.
        let got = unsafe { core::slice::from_raw_parts(l.p.add(off), k) };
        got == &bytes[..k]
    })
}

fn free(mm: &Kmem, cache: kmem::slab::common::CacheHandle, l: Live) {
    match l.kind {
        Kind::Pages(o) => mm.free_pages(VirtAddr::from_ptr(l.p), o),
        Kind::Kmalloc(_) => mm.kfree(l.p),
        Kind::Cache => mm.kmem_cache_free(cache, l.p),
    }
}

fn mixed_random_workload(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let plat = mm.platform();
    let errors0 = mm.slab_errors();
    let free0 = settle(mm);
    let (bugs0, in_use0) = (mm.bug_count(), mm.pages_in_use());
    let cache = mm.kmem_cache_create("baremetal_stress", OBJ_SIZE, 0, SlabFlags::NONE, None);
    check!(cache.is_ok(), "kmem_cache_create failed: {:?}", cache.err());
    let cache = cache.expect("checked");
    let gfps = [
        GfpFlags::GFP_KERNEL,
        GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
        GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
        GfpFlags::GFP_ATOMIC,
        GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA,
    ];
    let (mut allocs, mut frees, mut failures, mut peak) = (0usize, 0usize, 0usize, 0usize);
    {
        let mut live: Vec<Live> = Vec::with_capacity(MAX_LIVE);
        for op in 0..OPS {
            let r = plat.random_u64();
            let want_free = live.len() == MAX_LIVE || (!live.is_empty() && r % 100 < 45);
            if want_free {
                let i = (r >> 8) as usize % live.len();
                let l = live.swap_remove(i);
                check!(
                    stamp_ok(&l),
                    "op {op}: allocation at {:p} was overwritten",
                    l.p
                );
                free(mm, cache, l);
                frees += 1;
                continue;
            }
            let gfp = gfps[(r >> 16) as usize % gfps.len()] | GfpFlags::__GFP_NOWARN;
            let (kind, p) = match (r >> 24) % 10 {
                0..=2 => {
                    // Orders 0..=5, small ones more often.
                    let o = Order::new(((r >> 32) % 64).trailing_ones().min(5));
                    (
                        Kind::Pages(o),
                        mm.__get_free_pages(gfp, o).map(|v| v.as_ptr::<u8>()),
                    )
                }
                3..=7 => {
                    let size = if (r >> 32).is_multiple_of(50) {
                        1 + (r >> 40) as usize % (64 * 1024)
                    } else {
                        1 + (r >> 40) as usize % 3000
                    };
                    (
                        Kind::Kmalloc(size),
                        mm.kmalloc(size, gfp).map(|p| p.as_ptr()),
                    )
                }
                _ => (
                    Kind::Cache,
                    mm.kmem_cache_alloc(cache, gfp).map(|p| p.as_ptr()),
                ),
            };
            let Some(p) = p else {
                failures += 1;
                continue;
            };
            let l = Live {
                p,
                kind,
                stamp: r ^ op as u64,
            };
            if gfp.contains(GfpFlags::__GFP_ZERO) {
                // SAFETY: the allocation has `l.len()` bytes.
                let z = unsafe { core::slice::from_raw_parts(p, l.len().min(PAGE_SIZE)) };
                check!(
                    z.iter().all(|&b| b == 0),
                    "op {op}: __GFP_ZERO memory not zeroed"
                );
            }
            stamp(&l);
            live.push(l);
            allocs += 1;
            peak = peak.max(live.len());
        }
        for l in live.drain(..) {
            check!(stamp_ok(&l), "allocation at {:p} was overwritten", l.p);
            free(mm, cache, l);
            frees += 1;
        }
    }
    println!(
        "  {allocs} allocations, {frees} frees, {failures} failed allocations, peak {peak} live"
    );
    check_eq!(allocs, frees);
    check_eq!(mm.validate(cache), 0);
    mm.kmem_cache_destroy(cache);
    let mut errors = 0;
    let mut caches = [None; 256];
    let mut n = 0;
    mm.for_each_cache(&mut |c, _| {
        if n < caches.len() {
            caches[n] = Some(c);
            n += 1;
        }
    });
    for c in caches[..n].iter().flatten() {
        errors += mm.validate(*c);
    }
    check_eq!(errors, 0);
    check_eq!(settle(mm), free0);
    check_eq!(
        (mm.slab_errors(), mm.bug_count(), mm.pages_in_use()),
        (errors0, bugs0, in_use0)
    );
    if let Err(e) = mm.check_invariants() {
        check!(false, "buddy invariants: {e}");
    }
    Ok(())
}
