//! SLUB's per-CPU sheaves and the barn (Linux 6.18 mm/slub.c): capacities, the prefilled
//! sheaf API, statistics, the debug bypass, double-free detection on the sheaf path, and a
//! model-based test driving sheaves, barn and slabs together from several CPUs (threads).

mod common;
use common::*;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::Arc;

use kmem::arch::Arch;
use kmem::{CacheHandle, GfpFlags, KmemCacheArgs, Sheaf, SlabFlags};

fn census(m: &M, c: CacheHandle) -> kmem::SheafCensus {
    // SAFETY: the tests call this with no other thread using the cache.
    unsafe { m.slub_sheaf_census(c) }.unwrap()
}

#[test]
fn kmalloc_caches_get_the_default_capacity() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    // calculate_sheaf_capacity: 60/26/12/4 by object size, rounded up to fill the sheaf's
    // kmalloc bucket (32-byte header): 60 -> 512 B, 26 -> 28 in 256 B, 12 -> 128 B, 4 -> 64 B.
    for (size, cap) in [
        (8, 60),
        (64, 60),
        (192, 60),
        (256, 28),
        (512, 28),
        (1024, 12),
        (4096, 4),
    ] {
        let c = m.kmalloc_cache(size, GfpFlags::GFP_KERNEL).unwrap();
        assert_eq!(census(&m, c).capacity, cap, "kmalloc-{size}");
    }
    // A cache that does not ask has none, one that asks gets its request (6.18).
    let plain = m
        .kmem_cache_create("plain", 100, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    assert_eq!(census(&m, plain).capacity, 0);
    let args = KmemCacheArgs {
        sheaf_capacity: 5,
        ..KmemCacheArgs::default()
    };
    let asked = m
        .kmem_cache_create_args("asked", 100, &args, SlabFlags::NONE)
        .unwrap();
    assert_eq!(census(&m, asked).capacity, 5);
    let big = KmemCacheArgs {
        sheaf_capacity: 100,
        ..KmemCacheArgs::default()
    };
    let c = m
        .kmem_cache_create_args("big_sheaves", 100, &big, SlabFlags::NONE)
        .unwrap();
    assert_eq!(census(&m, c).capacity, 100);
    // Caches with sheaves are not merged.
    let again = m
        .kmem_cache_create_args("asked2", 100, &args, SlabFlags::NONE)
        .unwrap();
    assert_ne!(again, asked);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn slub_debug_caches_have_no_sheaves() {
    let m = boot_with(Arch::X86_64, 64 << 20, 2, "slub_debug=FZPU", 42);
    let c = m.kmalloc_cache(64, GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(census(&m, c).capacity, 0);
    let args = KmemCacheArgs {
        sheaf_capacity: 16,
        ..KmemCacheArgs::default()
    };
    let d = m
        .kmem_cache_create_args("dbg_sheaf", 64, &args, SlabFlags::NONE)
        .unwrap();
    assert_eq!(census(&m, d).capacity, 0);
    // The prefill API still works (an oversize sheaf through the debug paths).
    let mut sh = m
        .kmem_cache_prefill_sheaf(d, GfpFlags::GFP_KERNEL, 10)
        .unwrap();
    assert_eq!(sh.size(), 10);
    let o = m
        .kmem_cache_alloc_from_sheaf(d, GfpFlags::GFP_KERNEL, &mut sh)
        .unwrap();
    m.kmem_cache_free(d, o.as_ptr());
    m.kmem_cache_return_sheaf(d, GfpFlags::GFP_KERNEL, sh);
    assert_eq!(m.validate(d), 0);
    m.kmem_cache_destroy(d);
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    let st = m.slab_stats(c).unwrap();
    assert_eq!(st.alloc_pcs + st.free_pcs, 0);
}

#[test]
fn fast_paths_use_the_sheaves_and_count() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let args = KmemCacheArgs {
        sheaf_capacity: 8,
        ..KmemCacheArgs::default()
    };
    let c = m
        .kmem_cache_create_args("counted", 192, &args, SlabFlags::NONE)
        .unwrap();
    assert_eq!(census(&m, c).capacity, 8);
    let v: Vec<_> = (0..100)
        .map(|_| m.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL).unwrap())
        .collect();
    for p in &v {
        m.kmem_cache_free(c, p.as_ptr());
    }
    let st = m.slab_stats(c).unwrap();
    // Every allocation but the one per refill came off the main sheaf; every free went on.
    assert!(st.alloc_pcs >= 80, "{}", st.alloc_pcs);
    assert!(st.free_pcs >= 80, "{}", st.free_pcs);
    assert!(st.sheaf_refill >= 100);
    // Frees overflowed main and spare: full sheaves went to the barn.
    assert!(st.barn_put > 0);
    let ce = census(&m, c);
    // Objects handed out by refills are in the sheaves or were flushed back to slabs.
    assert_eq!(
        st.sheaf_refill - st.sheaf_flush,
        (ce.cpu_objects + ce.barn_objects) as u64
    );
    assert_eq!(
        st.sheaf_alloc - st.sheaf_free,
        (ce.cpu_sheaves + ce.barn_full + ce.barn_empty) as u64
    );
    // Slabs count the CPU slab's free objects as in use too (as /proc/slabinfo does).
    assert!(m.slab_info(c).unwrap().active_objs >= ce.cpu_objects + ce.barn_objects);
    assert!(!m.kmem_cache_shrink(c), "shrink gives every slab back");
    let ce = census(&m, c);
    assert_eq!((ce.cpu_sheaves, ce.barn_full, ce.barn_empty), (0, 0, 0));
    let mut stats = String::new();
    m.show_slab_stats(&mut stats).unwrap();
    assert!(stats.contains("alloc_pcs"), "{stats}");
    m.kmem_cache_destroy(c);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn prefill_alloc_refill_return() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let args = KmemCacheArgs {
        sheaf_capacity: 8,
        ..KmemCacheArgs::default()
    };
    let c = m
        .kmem_cache_create_args("prefilled", 64, &args, SlabFlags::NONE)
        .unwrap();
    let mut sh = m
        .kmem_cache_prefill_sheaf(c, GfpFlags::GFP_KERNEL, 5)
        .unwrap();
    assert_eq!((sh.size(), sh.capacity()), (8, 8));
    let mut got = HashSet::new();
    while let Some(o) = m.kmem_cache_alloc_from_sheaf(c, GfpFlags::__GFP_ZERO, &mut sh) {
        // SAFETY: a 64-byte object, zeroed on request.
        assert!(unsafe { std::slice::from_raw_parts(o.as_ptr(), 64) }
            .iter()
            .all(|b| *b == 0));
        assert!(got.insert(o.as_ptr() as usize));
    }
    assert_eq!(got.len(), 8);
    // Refill within the capacity, then beyond it (an oversize sheaf replaces it).
    m.kmem_cache_refill_sheaf(c, GfpFlags::GFP_KERNEL, &mut sh, 3)
        .unwrap();
    assert_eq!(sh.size(), 8);
    m.kmem_cache_refill_sheaf(c, GfpFlags::GFP_KERNEL, &mut sh, 20)
        .unwrap();
    assert_eq!((sh.size(), sh.capacity()), (20, 20));
    m.kmem_cache_return_sheaf(c, GfpFlags::GFP_KERNEL, sh);
    // The regular sheaf the refill replaced became the CPU's spare (SHEAF_RETURN_FAST); the
    // oversize one was flushed and freed (no statistic, as in Linux).
    let st = m.slab_stats(c).unwrap();
    assert_eq!(st.sheaf_prefill_oversize, 1);
    assert_eq!((st.sheaf_return_fast, st.sheaf_return_slow), (1, 0));
    // The next prefill takes that spare.
    let sh2 = m
        .kmem_cache_prefill_sheaf(c, GfpFlags::GFP_KERNEL, 8)
        .unwrap();
    assert_eq!(m.slab_stats(c).unwrap().sheaf_prefill_fast, 1);
    // A sheaf used with the wrong cache is refused with a warning.
    let other = m
        .kmem_cache_create_args("other", 64, &args, SlabFlags::NONE)
        .unwrap();
    let mut sh2 = sh2;
    assert!(m
        .kmem_cache_alloc_from_sheaf(other, GfpFlags::GFP_KERNEL, &mut sh2)
        .is_none());
    assert!(m
        .platform()
        .take_captured()
        .contains("sheaf of another cache"));
    m.kmem_cache_return_sheaf(c, GfpFlags::GFP_KERNEL, sh2);
    for o in got {
        m.kmem_cache_free(c, o as *mut u8);
    }
    m.kmem_cache_destroy(c);
    m.kmem_cache_destroy(other);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn double_free_on_the_sheaf_top_is_caught() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let c = m.kmalloc_cache(64, GfpFlags::GFP_KERNEL).unwrap();
    let p = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    let q = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    m.kfree(p);
    m.kfree(p);
    let log = m.platform().take_captured();
    assert!(log.contains("Object already free"), "{log}");
    // Not handed out twice: the next two allocations differ.
    let a = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    let b = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    assert_ne!(a, b);
    for x in [a, b, q] {
        m.kfree(x);
    }
}

#[test]
fn double_free_below_the_sheaf_top_is_caught_at_flush() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let args = KmemCacheArgs {
        sheaf_capacity: 8,
        ..KmemCacheArgs::default()
    };
    let c = m
        .kmem_cache_create_args("df_sheaf", 64, &args, SlabFlags::NONE)
        .unwrap();
    // Four objects out of the first refill of 8: room for the three frees below.
    let v: Vec<_> = (0..4)
        .map(|_| {
            m.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
                .unwrap()
                .as_ptr()
        })
        .collect();
    let (p, q) = (v[0], v[1]);
    m.kmem_cache_free(c, p);
    m.kmem_cache_free(c, q);
    m.kmem_cache_free(c, p); // p is below q: the naive check cannot see it
    assert!(!m.platform().take_captured().contains("already free"));
    // The flush sorts the sheaf: the two copies of p meet and one is refused.
    m.kmem_cache_shrink(c);
    let log = m.platform().take_captured();
    assert!(
        log.contains("BUG df_sheaf (Not tainted): Object already free"),
        "{log}"
    );
    assert_eq!(m.validate(c), 0);
    m.kmem_cache_free(c, v[2]);
    m.kmem_cache_free(c, v[3]);
    m.kmem_cache_destroy(c);
    assert!(!m.platform().take_captured().contains("still has objects"));
}

// ---------------------------------------------------------------- the model

/// Work sent to a CPU thread.
type Job = Box<dyn FnOnce(&M) + Send>;

/// A thread acting as one CPU: runs the closures sent to it, one at a time.
struct Cpu {
    tx: mpsc::Sender<Job>,
    done: mpsc::Receiver<()>,
    handle: std::thread::JoinHandle<()>,
}

impl Cpu {
    fn start(m: &Arc<M>) -> Cpu {
        let (tx, rx) = mpsc::channel::<Job>();
        let (dtx, done) = mpsc::channel();
        let m = m.clone();
        let handle = std::thread::spawn(move || {
            for f in rx {
                f(&m);
                dtx.send(()).unwrap();
            }
        });
        Cpu { tx, done, handle }
    }
    fn run<R: Send + 'static>(&self, f: impl FnOnce(&M) -> R + Send + 'static) -> R {
        let (rtx, rrx) = mpsc::channel();
        self.tx
            .send(Box::new(move |m: &M| rtx.send(f(m)).unwrap()))
            .unwrap();
        self.done.recv().unwrap();
        rrx.recv().unwrap()
    }
    /// The thread exits: its CPU goes offline (slub_cpu_dead).
    fn offline(self) {
        drop(self.tx);
        self.handle.join().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const OBJ: usize = 96;

fn fill(p: usize, tag: u64) {
    // SAFETY: an allocated OBJ-byte object owned by the model.
    unsafe { std::ptr::write_bytes(p as *mut u8, tag as u8, OBJ) };
}
fn check(p: usize, tag: u64) {
    // SAFETY: `p` is an allocated OBJ-byte object owned by the model and written by `fill`, so the
    // slice covers initialised bytes of one live object; no `&mut` to it exists meanwhile.
    let b = unsafe { std::slice::from_raw_parts(p as *const u8, OBJ) };
    assert!(
        b.iter().all(|x| *x == tag as u8),
        "object {p:#x} overwritten"
    );
}

/// Checks the counters against what the model holds: every object the slabs count as in use
/// is the model's, in a sheaf, or free on a CPU slab (which slabinfo counts as in use; exact
/// once no CPU holds a slab), and every sheaf allocated and not freed is somewhere.
fn check_consistent(m: &M, c: CacheHandle, live: usize, held: &HashMap<u64, Sheaf>, exact: bool) {
    let ce = census(m, c);
    let st = m.slab_stats(c).unwrap();
    let in_held: usize = held.values().map(|s| s.size()).sum();
    let active = m.slab_info(c).unwrap().active_objs;
    let accounted = live + in_held + ce.cpu_objects + ce.barn_objects;
    if exact {
        assert_eq!(
            active, accounted,
            "an object was lost or counted twice ({ce:?})"
        );
    } else {
        assert!(active >= accounted, "objects counted twice ({ce:?})");
    }
    assert_eq!(
        st.sheaf_alloc - st.sheaf_free,
        (ce.cpu_sheaves + ce.barn_full + ce.barn_empty + held.len()) as u64,
        "a sheaf was lost ({ce:?})"
    );
    assert!(ce.barn_full <= 10, "MAX_FULL_SHEAVES");
}

fn run_model(seed: u64, steps: usize) {
    let m = Arc::new(boot(Arch::X86_64, 128 << 20, 4));
    let args = KmemCacheArgs {
        sheaf_capacity: 8,
        ..KmemCacheArgs::default()
    };
    let c = m
        .kmem_cache_create_args("model", OBJ, &args, SlabFlags::NONE)
        .unwrap();
    let before = settle(&m);
    let mut cpus: Vec<Cpu> = (0..3).map(|_| Cpu::start(&m)).collect();
    let mut rng = Rng(seed);
    let mut live: HashMap<usize, u64> = HashMap::new();
    let mut held: HashMap<u64, Sheaf> = HashMap::new();
    let mut next_tag = 1u64;
    for step in 0..steps {
        let cpu = rng.below(cpus.len());
        match rng.below(100) {
            0..=44 => {
                let n = 1 + rng.below(30);
                let objs = cpus[cpu].run(move |m| {
                    (0..n)
                        .map(|_| {
                            m.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
                                .unwrap()
                                .as_ptr() as usize
                        })
                        .collect::<Vec<_>>()
                });
                for o in objs {
                    next_tag += 1;
                    fill(o, next_tag);
                    assert!(
                        live.insert(o, next_tag).is_none(),
                        "{o:#x} handed out twice"
                    );
                }
            }
            45..=84 if !live.is_empty() => {
                let n = 1 + rng.below(30.min(live.len()));
                let mut objs = Vec::new();
                for _ in 0..n {
                    let k = *live.keys().nth(rng.below(live.len())).unwrap();
                    check(k, live.remove(&k).unwrap());
                    objs.push(k);
                }
                cpus[cpu].run(move |m| {
                    for o in objs {
                        m.kmem_cache_free(c, o as *mut u8);
                    }
                });
            }
            85..=89 => {
                let size = 1 + rng.below(12); // sometimes above the capacity (oversize)
                let sh = cpus[cpu]
                    .run(move |m| m.kmem_cache_prefill_sheaf(c, GfpFlags::GFP_KERNEL, size));
                let sh = sh.unwrap();
                assert!(sh.size() >= size);
                next_tag += 1;
                held.insert(next_tag, sh);
            }
            90..=93 if !held.is_empty() => {
                // Allocate a few from a held sheaf, maybe refill it, maybe give it back.
                let k = *held.keys().nth(rng.below(held.len())).unwrap();
                let mut sh = held.remove(&k).unwrap();
                let take = rng.below(sh.size() + 1);
                let refill = rng.below(3) == 0;
                let give_back = rng.below(2) == 0;
                let size = 1 + rng.below(12);
                let (sh, objs) = cpus[cpu].run(move |m| {
                    let objs: Vec<usize> = (0..take)
                        .map(|_| {
                            m.kmem_cache_alloc_from_sheaf(c, GfpFlags::GFP_KERNEL, &mut sh)
                                .unwrap()
                                .as_ptr() as usize
                        })
                        .collect();
                    if refill {
                        m.kmem_cache_refill_sheaf(c, GfpFlags::GFP_KERNEL, &mut sh, size)
                            .unwrap();
                        assert!(sh.size() >= size);
                    }
                    if give_back {
                        m.kmem_cache_return_sheaf(c, GfpFlags::GFP_KERNEL, sh);
                        (None, objs)
                    } else {
                        (Some(sh), objs)
                    }
                });
                for o in objs {
                    next_tag += 1;
                    fill(o, next_tag);
                    assert!(
                        live.insert(o, next_tag).is_none(),
                        "{o:#x} handed out twice"
                    );
                }
                if let Some(sh) = sh {
                    held.insert(k, sh);
                }
            }
            94..=96 => {
                // CPU offline: the thread exits; a new one (a new or reused CPU id) replaces it.
                cpus.swap_remove(cpu).offline();
                cpus.push(Cpu::start(&m));
            }
            97 => {
                cpus[cpu].run(move |m| {
                    m.kmem_cache_shrink(c);
                });
            }
            _ => {}
        }
        if step % 16 == 0 {
            check_consistent(&m, c, live.len(), &held, false);
        }
    }
    // Every worker CPU offline: no CPU slab is left, so the count is exact.
    for cpu in cpus.drain(..) {
        cpu.offline();
    }
    check_consistent(&m, c, live.len(), &held, true);
    for (o, tag) in live.drain() {
        check(o, tag);
        m.kmem_cache_free(c, o as *mut u8);
    }
    for (_, sh) in held.drain() {
        m.kmem_cache_return_sheaf(c, GfpFlags::GFP_KERNEL, sh);
    }
    m.kmem_cache_shrink(c);
    check_consistent(&m, c, 0, &HashMap::new(), true);
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    assert_eq!(settle(&m), before, "pages did not all come back");
    assert_eq!(m.slab_info(c).unwrap().num_slabs, 0);
    m.kmem_cache_destroy(c);
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    m.check_invariants().unwrap();
}

#[test]
fn model_sheaves_barn_and_slabs_across_cpus() {
    for seed in [1u64, 0x9e37_79b9, 0xdead_beef, 12345] {
        run_model(seed, 600);
    }
}

#[test]
fn other_allocators_have_no_sheaves() {
    for cmd in ["slab=slab", "slab=slob"] {
        let m = boot_with(Arch::X86_64, 64 << 20, 1, cmd, 42);
        let args = KmemCacheArgs {
            sheaf_capacity: 8,
            ..KmemCacheArgs::default()
        };
        let c = m
            .kmem_cache_create_args("no_sheaves", 64, &args, SlabFlags::NONE)
            .unwrap();
        assert!(m
            .kmem_cache_prefill_sheaf(c, GfpFlags::GFP_KERNEL, 4)
            .is_none());
        // SAFETY: nothing else uses the machine.
        assert!(unsafe { m.slub_sheaf_census(c) }.is_none());
        let p = m.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL).unwrap();
        m.kmem_cache_free(c, p.as_ptr());
        assert_eq!(m.bug_count(), 0, "{cmd}");
    }
}

/// `kmalloc_fast` / `kfree_sized_fast` (the `KmemAlloc` fast paths): a pop or push on the
/// thread's own CPU's main sheaf and nothing else; `None`/`false` having done nothing for
/// every other case, which the full calls then serve (and report).
#[test]
fn kmalloc_fast_serves_only_a_sheaf_pop_or_push() {
    let gfp = GfpFlags::GFP_KERNEL;
    let m = boot(Arch::X86_64, 64 << 20, 1);
    // Out of range: nothing done.
    assert!(m.kmalloc_fast(0, gfp).is_none());
    assert!(m.kmalloc_fast(8193, gfp).is_none());
    // The first allocation fills the sheaf (the full path), then the fast path pops.
    let p = m.kmalloc(64, gfp).unwrap().as_ptr();
    let q = m.kmalloc_fast(64, gfp).expect("a sheaf pop").as_ptr();
    assert_ne!(p, q);
    assert_eq!(m.ksize(q), 64);
    // SAFETY: `q` came from kmalloc(64) and is freed once here.
    assert!(unsafe { m.kfree_sized_fast(q, 64, gfp) });
    // Freeing it again: the top of the sheaf, a double free left to the full path.
    // SAFETY: deliberately a double free, which `kfree_sized_fast` must refuse untouched.
    assert!(!unsafe { m.kfree_sized_fast(q, 64, gfp) });
    assert_eq!(m.bug_count(), 0);
    // SAFETY: a deliberate double free of `q`, still a kmalloc(64) object of this machine:
    // `kfree_sized`'s checked path finds it on top of the sheaf, reports it and frees nothing.
    unsafe { m.kfree_sized(q, 64, gfp) };
    let log = m.platform().take_captured();
    assert!(log.contains("Object already free"), "{log}");
    // __GFP_ZERO on the fast path.
    let z = m
        .kmalloc_fast(64, gfp | GfpFlags::__GFP_ZERO)
        .unwrap()
        .as_ptr();
    // SAFETY: a live 64-byte object.
    assert!(unsafe { std::slice::from_raw_parts(z, 64) }
        .iter()
        .all(|&b| b == 0));
    m.kfree(z);
    m.kfree(p);
    // With slub_debug (no sheaves) and with a debugging hook the fast path does nothing.
    for cmdline in ["slub_debug=FZPU", "kmemleak=on", "slab=slab"] {
        let m = boot_with(Arch::X86_64, 64 << 20, 1, cmdline, 42);
        let p = m.kmalloc(64, gfp).unwrap().as_ptr();
        m.kfree(p);
        assert!(m.kmalloc_fast(64, gfp).is_none(), "{cmdline}");
        let p = m.kmalloc(64, gfp).unwrap().as_ptr();
        // SAFETY: from kmalloc(64), not freed: the fast path must refuse it untouched.
        assert!(!unsafe { m.kfree_sized_fast(p, 64, gfp) }, "{cmdline}");
        m.kfree(p);
        assert_eq!(m.bug_count(), 0, "{cmdline}");
    }
}
