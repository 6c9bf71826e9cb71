//! SLUB (plain and with slub_debug) and SLOB against a model: random sequences of kmalloc / krealloc / kfree / kmem_cache
//! operations, with a map of live blocks (address → size, fill byte) as the oracle. After
//! every sequence: no two live blocks overlap, every block still holds its fill, `ksize` is
//! exactly the model's (Linux's kmalloc classes; krealloc keeps a block while it fits), and
//! `validate` finds nothing.

mod common;

use std::collections::BTreeMap;

use kmem::arch::Arch;
use kmem::slab::common::SlabFlags;
use kmem::GfpFlags;
use proptest::prelude::*;

const K: GfpFlags = GfpFlags::GFP_KERNEL;

#[derive(Clone, Debug)]
enum Op {
    Kmalloc(usize),
    CacheAlloc(usize),
    Free(usize),
    Realloc(usize, usize),
    Shrink,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..3000).prop_map(Op::Kmalloc),
        1 => (8000usize..40_000).prop_map(Op::Kmalloc),
        3 => (0usize..3).prop_map(Op::CacheAlloc),
        5 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), 1usize..5000).prop_map(|(a, b)| Op::Realloc(a, b)),
        1 => Just(Op::Shrink),
    ]
}

/// The model's `ksize` of `kmalloc(n)` under each allocator.
///
/// - SLUB (`""` or any other cmdline): Linux's size classes (mm/slab_common.c
///   `kmalloc_info[]`: 8, 16, 32, 64, 96, 128, 192, 256, then powers of two to 8 KiB), then
///   the page allocator's power-of-two blocks.
/// - SLAB (`slab=slab`, Linux 6.7): the same classes from 32 bytes up (`KMALLOC_SHIFT_LOW` 5);
///   `ksize` is the cache's object size (mm/slab.h `slab_ksize`), so kmalloc-96 gives 96.
/// - SLOB (`slab=slob`, Linux 6.3 mm/slob.c `__ksize`): the size asked for, in 2-byte units,
///   below `PAGE_SIZE - 8` (the size header); whole pages (`PAGE_SIZE << order`) above.
fn model_ksize(cmdline: &str, n: usize) -> usize {
    let pages = |n: usize| n.next_power_of_two().max(4096);
    match cmdline {
        "slab=slob" if n < 4096 - 8 => n.next_multiple_of(2),
        "slab=slob" => pages(n),
        "slab=slab" | "slab=slab slab_debug=ZPU" if n <= 32 => 32,
        _ => match n {
            0..=8 => 8,
            9..=16 => 16,
            17..=32 => 32,
            33..=64 => 64,
            65..=96 => 96,
            97..=128 => 128,
            129..=192 => 192,
            _ if n <= 8192 => n.next_power_of_two(),
            _ => pages(n),
        },
    }
}

fn check_fill(p: usize, len: usize, v: u8) -> bool {
    // SAFETY: `p` is a live block of at least `len` bytes (model invariant).
    (0..len).all(|i| unsafe { *((p + i) as *const u8) } == v)
}

fn fill(p: usize, len: usize, v: u8) {
    // SAFETY: `p` is a live block of at least `len` bytes (model invariant) that only the model
    // uses, so writing all `len` bytes stays inside it and aliases nothing.
    unsafe { std::ptr::write_bytes(p as *mut u8, v, len) }
}

/// Runs `ops` on a machine booted with `cmdline` ("" for plain SLUB, "slub_debug=FZPU",
/// "slab=slob", …: every slab allocator runs the same model).
fn run(ops: Vec<Op>, cmdline: &str) {
    // Only plain SLUB and SLAB merge caches (debugging forbids it; SLOB never merges).
    let merges = cmdline.is_empty() || cmdline == "slab=slab";
    let m = if !cmdline.is_empty() {
        let mut params = kmem::BootParams::simulated(Arch::X86_64, 128 << 20, 2).unwrap();
        params.cmdline = cmdline;
        let plat = kmem_hosted::HostedPlatform::new(kmem_hosted::HostedConfig::deterministic(
            params.e820.ram_end().next_multiple_of(4096),
            3,
        ))
        .unwrap();
        kmem::Machine::boot(plat, &params).unwrap()
    } else {
        common::boot(Arch::X86_64, 128 << 20, 2)
    };
    let caches = [
        m.kmem_cache_create("model_a", 24, 0, SlabFlags::NO_MERGE, None)
            .unwrap(),
        m.kmem_cache_create("model_b", 200, 64, SlabFlags::HWCACHE_ALIGN, None)
            .unwrap(),
        m.kmem_cache_create("model_c", 1000, 0, SlabFlags::RECLAIM_ACCOUNT, None)
            .unwrap(),
    ];
    let sizes = [24usize, 200, 1000];
    // addr -> (size, fill, Some(cache index) or None for kmalloc)
    let mut live: BTreeMap<usize, (usize, u8, Option<usize>)> = BTreeMap::new();
    let mut tag = 1u8;
    for op in ops {
        tag = tag.wrapping_add(1).max(1);
        match op {
            Op::Kmalloc(n) => {
                let p = m.kmalloc(n, K).unwrap().as_ptr() as usize;
                assert_eq!(
                    m.ksize(p as *const u8),
                    model_ksize(cmdline, n),
                    "kmalloc({n})"
                );
                fill(p, n, tag);
                assert!(live.insert(p, (n, tag, None)).is_none(), "handed out twice");
            }
            Op::CacheAlloc(i) => {
                let p = m.kmem_cache_alloc(caches[i], K).unwrap().as_ptr() as usize;
                if i == 1 {
                    assert_eq!(p % 64, 0);
                }
                fill(p, sizes[i], tag);
                assert!(live.insert(p, (sizes[i], tag, Some(i))).is_none());
            }
            Op::Free(k) => {
                if live.is_empty() {
                    continue;
                }
                let (&p, &(n, v, c)) = live.iter().nth(k % live.len()).unwrap();
                assert!(check_fill(p, n, v), "block {p:#x} clobbered");
                live.remove(&p);
                match c {
                    Some(i) => m.kmem_cache_free(caches[i], p as *mut u8),
                    None => m.kfree(p as *const u8),
                }
            }
            Op::Realloc(k, n) => {
                let Some((&p, &(old, v, None))) = live
                    .iter()
                    .filter(|(_, (_, _, c))| c.is_none())
                    .nth(k % live.len().max(1))
                else {
                    continue;
                };
                let ks = m.ksize(p as *const u8);
                let q = m.krealloc(p as *mut u8, n, K).unwrap().as_ptr() as usize;
                assert!(check_fill(q, old.min(n), v), "krealloc lost data");
                // The block stays while it is big enough (`__do_krealloc`), else moves to
                // the class of the new size.
                if n <= ks {
                    assert_eq!(q, p, "krealloc({old} -> {n}) moved a block that fits");
                    assert_eq!(m.ksize(q as *const u8), ks);
                } else {
                    assert_eq!(
                        m.ksize(q as *const u8),
                        model_ksize(cmdline, n),
                        "krealloc -> {n}"
                    );
                }
                live.remove(&p);
                fill(q, n, tag);
                assert!(live.insert(q, (n, tag, None)).is_none());
            }
            Op::Shrink => {
                for c in caches {
                    m.kmem_cache_shrink(c);
                }
            }
        }
    }
    // No overlaps, contents intact.
    let mut end = 0usize;
    for (&p, &(n, v, _)) in &live {
        assert!(p >= end, "blocks overlap at {p:#x}");
        end = p + n;
        assert!(check_fill(p, n, v));
    }
    for c in caches {
        assert_eq!(m.validate(c), 0);
    }
    for (p, (_, _, c)) in live {
        match c {
            Some(i) => m.kmem_cache_free(caches[i], p as *mut u8),
            None => m.kfree(p as *const u8),
        }
    }
    // Without debugging model_b (200 B, 64-aligned: 256) is an alias of kmalloc-256 and
    // destroying it drops a reference; model_c (1000 B) is 24 bytes short of kmalloc-rcl-1k,
    // too far to merge. With slub_debug nothing merges.
    let b_name = if merges { "kmalloc-256" } else { "model_b" };
    assert_eq!(m.kmem_cache_name(caches[1]), Some(b_name));
    assert_eq!(m.kmem_cache_name(caches[2]), Some("model_c"));
    for c in caches {
        m.kmem_cache_destroy(c);
    }
    assert!(
        m.kmem_cache_name(caches[0]).is_none(),
        "model_a kept: objects leaked"
    );
    assert!(
        m.kmem_cache_name(caches[2]).is_none(),
        "model_c kept: objects leaked"
    );
    assert_eq!(m.kmem_cache_name(caches[1]).is_some(), merges);
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn slub_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        run(ops, "");
    }

    #[test]
    fn slob_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        run(ops, "slab=slob");
    }

    #[test]
    fn slab_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        run(ops, "slab=slab");
    }

    #[test]
    fn slab_debug_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops, "slab=slab slab_debug=ZPU");
    }

    #[test]
    fn slub_debug_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops, "slub_debug=FZPU");
    }
}
