//! SLUB and kmalloc against general-purpose allocators on identical work.
//!
//! Peers: glibc malloc (`System`), mimalloc, jemalloc (tikv-jemallocator), talc, rlsf,
//! buddy_system_allocator and linked_list_allocator, each used as an allocator object (this
//! binary's global allocator is the system one). kmem runs through [`KmemAlloc`] (the
//! `GlobalAlloc` path: kmalloc/kfree) and, for the cache benchmark, `kmem_cache_alloc`.
//! Pool-based peers (talc, rlsf, buddy, linked list) get a 1 GiB sparse mapping; in one
//! thread they are used without a lock, across threads behind their own lock or a mutex.
//!
//! Workloads:
//! - `lifo64`: allocate 64 bytes and free them at once, one thread;
//! - `random1m`: 1M live objects of random size 16–512 B, then freed in random order
//!   (time per alloc+free pair is the figure to compare);
//! - `xthread64`: one thread allocates 64-byte blocks, another frees them (a ring buffer
//!   carries the pointers);
//! - `kmem_cache192`: `kmem_cache_alloc` + `kmem_cache_free` of a 192-byte cache.
//!
//! `kmem` is kmem with SLUB (the default), `kmem-slob` with SLOB (`slab=slob`), `kmem-slab`
//! with SLAB (`slab=slab`); the `kmem_cache192` group has a `/slob` and a `/slab` copy of
//! each function.
//!
//! Run: `cargo bench -p kmem-bench --bench slub -- --warm-up-time 1 --measurement-time 2`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kmem::arch::Arch;
use kmem::slab::common::{SlabAllocatorKind, SlabFlags};
use kmem::{BootParams, GfpFlags, Machine};
use kmem_hosted::{HostedConfig, HostedPlatform, KmemAlloc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// An allocator under test.
trait Peer: Sync {
    fn name(&self) -> &'static str;
    /// # Safety
    /// `l` has a non-zero size.
    unsafe fn a(&self, l: Layout) -> *mut u8;
    /// # Safety
    /// `p` came from `a` with `l` and is freed once.
    unsafe fn f(&self, p: *mut u8, l: Layout);
}

struct Global<A: GlobalAlloc + Sync + 'static>(&'static str, &'static A);

impl<A: GlobalAlloc + Sync + 'static> Peer for Global<A> {
    fn name(&self) -> &'static str {
        self.0
    }
    #[inline]
    unsafe fn a(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.1.alloc(l) }
    }
    #[inline]
    unsafe fn f(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { self.1.dealloc(p, l) }
    }
}

/// A 1 GiB sparse pool for the pool-based peers.
fn pool() -> (*mut u8, usize) {
    let len = 1usize << 30;
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe { libc_mmap(len) };
    (p, len)
}

/// # Safety
/// None beyond `mmap`'s: the call maps fresh anonymous memory at an address of the kernel's
/// choosing and touches no existing memory; `unsafe` only because it is an FFI call. The caller
/// owns the result (or `MAP_FAILED`).
unsafe fn libc_mmap(len: usize) -> *mut u8 {
    extern "C" {
        fn mmap(a: *mut u8, l: usize, p: i32, f: i32, fd: i32, o: i64) -> *mut u8;
    }
    // PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE
    // SAFETY: anonymous mapping, no existing memory is touched.
    unsafe { mmap(std::ptr::null_mut(), len, 3, 0x02 | 0x20 | 0x4000, -1, 0) }
}

/// A peer used by one thread only (no lock), or by several behind `parking_lot::Mutex`.
struct Unlocked<T>(
    &'static str,
    UnsafeCell<T>,
    fn(&mut T, Layout) -> *mut u8,
    unsafe fn(&mut T, *mut u8, Layout),
);
// SAFETY: single-threaded benchmarks only use it from one thread.
unsafe impl<T> Sync for Unlocked<T> {}

impl<T> Peer for Unlocked<T> {
    fn name(&self) -> &'static str {
        self.0
    }
    #[inline]
    unsafe fn a(&self, l: Layout) -> *mut u8 {
        // SAFETY: one thread at a time (see the type).
        (self.2)(unsafe { &mut *self.1.get() }, l)
    }
    #[inline]
    unsafe fn f(&self, p: *mut u8, l: Layout) {
        // SAFETY: an `Unlocked` peer is used by one thread only (the type's contract), so this is
        // the only reference into the cell; `p` came from `a` with `l` and is freed once (the
        // caller's contract, forwarded to the peer's free).
        unsafe { (self.3)(&mut *self.1.get(), p, l) }
    }
}

struct Locked<T>(
    &'static str,
    parking_lot::Mutex<T>,
    fn(&mut T, Layout) -> *mut u8,
    unsafe fn(&mut T, *mut u8, Layout),
);
// SAFETY: the mutex serialises all use; the pools are plain memory.
unsafe impl<T> Sync for Locked<T> {}

impl<T> Peer for Locked<T> {
    fn name(&self) -> &'static str {
        self.0
    }
    #[inline]
    unsafe fn a(&self, l: Layout) -> *mut u8 {
        (self.2)(&mut self.1.lock(), l)
    }
    #[inline]
    unsafe fn f(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { (self.3)(&mut self.1.lock(), p, l) }
    }
}

type Rlsf = rlsf::Tlsf<'static, u32, u32, 28, 16>;

fn talc_new() -> talc::Talc<talc::ErrOnOom> {
    let (p, len) = pool();
    let mut t = talc::Talc::new(talc::ErrOnOom);
    // SAFETY: the pool is ours for the life of the process.
    unsafe { t.claim(talc::Span::from_base_size(p, len)).unwrap() };
    t
}
fn talc_a(t: &mut talc::Talc<talc::ErrOnOom>, l: Layout) -> *mut u8 {
    // SAFETY: non-zero layouts only.
    unsafe { t.malloc(l).map_or(std::ptr::null_mut(), NonNull::as_ptr) }
}
/// # Safety
/// `p` is a non-null block that `talc_a` returned from this same heap `t` for the layout `l`, and
/// is freed once.
unsafe fn talc_f(t: &mut talc::Talc<talc::ErrOnOom>, p: *mut u8, l: Layout) {
    // SAFETY: forwarded.
    unsafe { t.free(NonNull::new_unchecked(p), l) }
}
fn rlsf_new() -> Rlsf {
    let (p, len) = pool();
    let mut t = Rlsf::new();
    // SAFETY: the pool is ours for the life of the process.
    unsafe {
        t.insert_free_block_ptr(NonNull::new(std::ptr::slice_from_raw_parts_mut(p, len)).unwrap());
    }
    t
}
fn rlsf_a(t: &mut Rlsf, l: Layout) -> *mut u8 {
    t.allocate(l).map_or(std::ptr::null_mut(), NonNull::as_ptr)
}
/// # Safety
/// `p` is a non-null block that `rlsf_a` returned from this same heap `t` for the layout `l`, and
/// is freed once.
unsafe fn rlsf_f(t: &mut Rlsf, p: *mut u8, l: Layout) {
    // SAFETY: forwarded.
    unsafe { t.deallocate(NonNull::new_unchecked(p), l.align()) }
}
fn buddy_new() -> buddy_system_allocator::Heap<32> {
    let (p, len) = pool();
    let mut h = buddy_system_allocator::Heap::<32>::new();
    // SAFETY: the pool is ours for the life of the process.
    unsafe { h.init(p as usize, len) };
    h
}
fn buddy_a(h: &mut buddy_system_allocator::Heap<32>, l: Layout) -> *mut u8 {
    h.alloc(l).map_or(std::ptr::null_mut(), NonNull::as_ptr)
}
/// # Safety
/// `p` is a non-null block that `buddy_a` returned from this same heap `h` for the layout `l`, and
/// is freed once.
unsafe fn buddy_f(h: &mut buddy_system_allocator::Heap<32>, p: *mut u8, l: Layout) {
    // SAFETY: forwarded.
    h.dealloc(unsafe { NonNull::new_unchecked(p) }, l)
}
fn ll_new() -> linked_list_allocator::Heap {
    let (p, len) = pool();
    // SAFETY: the pool is ours for the life of the process.
    unsafe { linked_list_allocator::Heap::new(p, len) }
}
fn ll_a(h: &mut linked_list_allocator::Heap, l: Layout) -> *mut u8 {
    h.allocate_first_fit(l)
        .map_or(std::ptr::null_mut(), NonNull::as_ptr)
}
/// # Safety
/// `p` is a non-null block that `ll_a` returned from this same heap `h` for the layout `l`, and is
/// freed once.
unsafe fn ll_f(h: &mut linked_list_allocator::Heap, p: *mut u8, l: Layout) {
    // SAFETY: forwarded.
    unsafe { h.deallocate(NonNull::new_unchecked(p), l) }
}

static KMEM: KmemAlloc = KmemAlloc::new();
/// kmem with SLOB behind kmalloc (`slab=slob`).
static KMEM_SLOB: KmemAlloc = KmemAlloc::with_params(
    kmem_hosted::global::KMEM_ALLOC_DEFAULT_RAM,
    SlabAllocatorKind::Slob,
);
/// kmem with SLAB behind kmalloc (`slab=slab`).
static KMEM_SLAB: KmemAlloc = KmemAlloc::with_params(
    kmem_hosted::global::KMEM_ALLOC_DEFAULT_RAM,
    SlabAllocatorKind::Slab,
);
static SYSTEM: System = System;
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn single_thread_peers() -> Vec<Box<dyn Peer>> {
    vec![
        Box::new(Global("kmem", &KMEM)),
        Box::new(Global("kmem-slob", &KMEM_SLOB)),
        Box::new(Global("kmem-slab", &KMEM_SLAB)),
        Box::new(Global("glibc", &SYSTEM)),
        Box::new(Global("mimalloc", &MIMALLOC)),
        Box::new(Global("jemalloc", &JEMALLOC)),
        Box::new(Unlocked(
            "talc",
            UnsafeCell::new(talc_new()),
            talc_a,
            talc_f,
        )),
        Box::new(Unlocked(
            "rlsf",
            UnsafeCell::new(rlsf_new()),
            rlsf_a,
            rlsf_f,
        )),
        Box::new(Unlocked(
            "buddy_system_allocator",
            UnsafeCell::new(buddy_new()),
            buddy_a,
            buddy_f,
        )),
        Box::new(Unlocked(
            "linked_list_allocator",
            UnsafeCell::new(ll_new()),
            ll_a,
            ll_f,
        )),
    ]
}

fn shared_peers() -> Vec<Box<dyn Peer>> {
    vec![
        Box::new(Global("kmem", &KMEM)),
        Box::new(Global("kmem-slob", &KMEM_SLOB)),
        Box::new(Global("kmem-slab", &KMEM_SLAB)),
        Box::new(Global("glibc", &SYSTEM)),
        Box::new(Global("mimalloc", &MIMALLOC)),
        Box::new(Global("jemalloc", &JEMALLOC)),
        Box::new(Locked(
            "talc",
            parking_lot::Mutex::new(talc_new()),
            talc_a,
            talc_f,
        )),
        Box::new(Locked(
            "rlsf",
            parking_lot::Mutex::new(rlsf_new()),
            rlsf_a,
            rlsf_f,
        )),
        Box::new(Locked(
            "buddy_system_allocator",
            parking_lot::Mutex::new(buddy_new()),
            buddy_a,
            buddy_f,
        )),
        Box::new(Locked(
            "linked_list_allocator",
            parking_lot::Mutex::new(ll_new()),
            ll_a,
            ll_f,
        )),
    ]
}

fn lifo(c: &mut Criterion, name: &str, size: usize) {
    let mut g = c.benchmark_group(name);
    let l = Layout::from_size_align(size, 8).unwrap();
    for p in single_thread_peers() {
        g.bench_function(p.name(), |b| {
            b.iter(|| {
                // SAFETY: non-zero layout; freed at once.
                unsafe {
                    let x = p.a(l);
                    p.f(black_box(x), l);
                }
            })
        });
    }
    g.finish();
}

fn lifo64(c: &mut Criterion) {
    lifo(c, "lifo64", 64);
}

/// Issue 14's 4 KiB LIFO pair, and the 192-byte pair of the peers (what
/// `kmem_cache192_pair` is compared with).
fn lifo_more(c: &mut Criterion) {
    lifo(c, "lifo4k", 4096);
    lifo(c, "lifo192", 192);
}

const LIVE: usize = 1_000_000;

fn random1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("random1m_pair");
    g.sample_size(10);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let sizes: Vec<usize> = (0..LIVE).map(|_| rng.gen_range(16..=512)).collect();
    let mut order: Vec<usize> = (0..LIVE).collect();
    order.shuffle(&mut rng);
    let mut ptrs = vec![std::ptr::null_mut::<u8>(); LIVE];
    for p in single_thread_peers() {
        // Quadratic-time frees: a single pass takes minutes.
        if p.name() == "linked_list_allocator" || p.name() == "buddy_system_allocator" {
            continue;
        }
        g.bench_function(p.name(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    for (i, s) in sizes.iter().enumerate() {
                        // SAFETY: non-zero layouts, freed below.
                        ptrs[i] = unsafe { p.a(Layout::from_size_align_unchecked(*s, 8)) };
                    }
                    for &i in &order {
                        // SAFETY: allocated above with this layout.
                        unsafe { p.f(ptrs[i], Layout::from_size_align_unchecked(sizes[i], 8)) };
                    }
                    // Per pair.
                    total += t.elapsed() / LIVE as u32;
                }
                total
            })
        });
    }
    g.finish();
}

const XT: usize = 200_000;

fn xthread64(c: &mut Criterion) {
    let mut g = c.benchmark_group("xthread64");
    g.sample_size(10);
    let l = Layout::from_size_align(64, 8).unwrap();
    for p in shared_peers() {
        let p: &'static dyn Peer = Box::leak(p);
        g.bench_function(p.name(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (mut tx, mut rx) = rtrb::RingBuffer::<usize>::new(4096);
                    let t = Instant::now();
                    let cons = std::thread::spawn(move || {
                        let mut n = 0;
                        while n < XT {
                            if let Ok(x) = rx.pop() {
                                // SAFETY: allocated by the producer with `l`.
                                unsafe { p.f(x as *mut u8, l) };
                                n += 1;
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                    });
                    for _ in 0..XT {
                        // SAFETY: non-zero layout; the consumer frees it.
                        let mut x = unsafe { p.a(l) } as usize;
                        loop {
                            match tx.push(x) {
                                Ok(()) => break,
                                Err(rtrb::PushError::Full(v)) => {
                                    x = v;
                                    std::hint::spin_loop();
                                }
                            }
                        }
                    }
                    cons.join().unwrap();
                    total += t.elapsed() / XT as u32;
                }
                total
            })
        });
    }
    g.finish();
}

fn kmem_cache192(c: &mut Criterion) {
    let mut g = c.benchmark_group("kmem_cache192_pair");
    // SLUB (the default) under the historical names, then SLOB and SLAB.
    for (cmdline, suffix) in [("", ""), ("slab=slob", "/slob"), ("slab=slab", "/slab")] {
        kmem_cache192_on(&mut g, cmdline, suffix);
    }
    g.finish();
}

fn kmem_cache192_on(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cmdline: &'static str,
    suffix: &str,
) {
    let mut params = BootParams::simulated(Arch::X86_64, 1 << 30, 2).unwrap();
    params.cmdline = cmdline;
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 1);
    cfg.console = kmem_hosted::Console::Null;
    let m = Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap();
    let s = m
        .kmem_cache_create("bench192", 192, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    g.bench_function(format!("kmem_cache_alloc_free{suffix}"), |b| {
        b.iter(|| {
            let x = m.kmem_cache_alloc(s, GfpFlags::GFP_KERNEL).unwrap();
            m.kmem_cache_free(s, black_box(x.as_ptr()));
        })
    });
    g.bench_function(format!("kmalloc_kfree_192{suffix}"), |b| {
        b.iter(|| {
            let x = m.kmalloc(192, GfpFlags::GFP_KERNEL).unwrap();
            m.kfree(black_box(x.as_ptr()));
        })
    });
    if cmdline.is_empty() {
        // A cache with per-CPU sheaves (`kmem_cache_args.sheaf_capacity`, Linux 6.18); the
        // kmalloc caches have them by default.
        let args = kmem::KmemCacheArgs {
            sheaf_capacity: 32,
            ..kmem::KmemCacheArgs::default()
        };
        let s = m
            .kmem_cache_create_args("bench192s", 192, &args, SlabFlags::NO_MERGE)
            .unwrap();
        g.bench_function("kmem_cache_alloc_free_sheaves", |b| {
            b.iter(|| {
                let x = m.kmem_cache_alloc(s, GfpFlags::GFP_KERNEL).unwrap();
                m.kmem_cache_free(s, black_box(x.as_ptr()));
            })
        });
    }
}

criterion_group!(
    benches,
    lifo64,
    lifo_more,
    random1m,
    xthread64,
    kmem_cache192
);
criterion_main!(benches);
