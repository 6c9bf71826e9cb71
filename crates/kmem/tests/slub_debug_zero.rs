//! `__GFP_ZERO` under `slub_debug`: with the kmalloc red zone on, only the requested size is
//! zeroed (mm/slub.c `slab_post_alloc_hook`: `zero_size = orig_size`); zeroing the whole
//! object would overwrite the red zone, be reported, and leak the object when the free is
//! refused. Found by the bare-metal kernel's mixed workload under `slub_debug=FZPU`.

mod common;
use common::*;

use kmem::arch::Arch;
use kmem::{GfpFlags, Order, SlabFlags, VirtAddr};

fn boot(cmdline: &str) -> M {
    boot_with(Arch::X86_64, 128 << 20, 1, cmdline, 42)
}

#[test]
fn kzalloc_keeps_the_kmalloc_redzone() {
    let m = boot("slub_debug=FZPU");
    for size in [1usize, 13, 100, 700, 3000] {
        let p = m.kzalloc(size, GfpFlags::GFP_KERNEL).unwrap();
        // SAFETY: `size` bytes were asked for and must read as zero.
        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
        assert!(bytes.iter().all(|b| *b == 0));
        m.kfree(p.as_ptr());
    }
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}

/// A mixed random workload (pages, kmalloc with every GFP mix, a private cache), everything
/// freed: every page comes back, with and without slub_debug.
#[test]
fn mixed_workload_gives_every_page_back() {
    for cmd in ["", "slub_debug=FZPU"] {
        let m = boot(cmd);
        // kmem keeps a destroyed cache's structure for the next create (stale handles are
        // detected): make that one exist before the baseline.
        let warm = m
            .kmem_cache_create("warmup", 72, 0, SlabFlags::NONE, None)
            .unwrap();
        m.kmem_cache_destroy(warm);
        let free0 = settle(&m);
        let c = m
            .kmem_cache_create("stress", 72, 0, SlabFlags::NONE, None)
            .unwrap();
        let gfps = [
            GfpFlags::GFP_KERNEL,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
            GfpFlags::GFP_ATOMIC,
            GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA,
        ];
        let free = |k: u8, p: *mut u8, n: usize| match k {
            0 => m.free_pages(VirtAddr::from_ptr(p), Order::new(n as u32)),
            1 => m.kfree(p),
            _ => m.kmem_cache_free(c, p),
        };
        let mut live: Vec<(u8, *mut u8, usize)> = Vec::new();
        // Allocations made of each kind: pages, kmalloc, the private cache.
        let mut made = [0usize; 3];
        let mut r: u64 = 0x1234567;
        for _ in 0..10_000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            if live.len() >= 1000 || (r.is_multiple_of(3) && !live.is_empty()) {
                let (k, p, n) = live.swap_remove((r >> 8) as usize % live.len());
                free(k, p, n);
                continue;
            }
            let gfp = gfps[(r >> 20) as usize % gfps.len()] | GfpFlags::__GFP_NOWARN;
            // The kind comes from other bits than the free decision above (`r % 3 == 0`
            // there left `r % 3 == 0` here only for an empty list).
            match (r >> 24) % 3 {
                0 => {
                    let o = ((r >> 16) % 4) as u32;
                    if let Some(a) = m.__get_free_pages(gfp, Order::new(o)) {
                        live.push((0, a.as_ptr(), o as usize));
                        made[0] += 1;
                    }
                }
                1 => {
                    let n = if (r >> 32).is_multiple_of(50) {
                        1 + ((r >> 40) % 65536) as usize
                    } else {
                        1 + ((r >> 40) % 3000) as usize
                    };
                    if let Some(a) = m.kmalloc(n, gfp) {
                        live.push((1, a.as_ptr(), n));
                        made[1] += 1;
                    }
                }
                _ => {
                    if let Some(a) = m.kmem_cache_alloc(c, gfp) {
                        live.push((2, a.as_ptr(), 72));
                        made[2] += 1;
                    }
                }
            }
        }
        // Every kind was exercised (the workload once freed on exactly the draws that
        // would have allocated pages, and never allocated any).
        assert!(
            made.iter().all(|&n| n > 500),
            "{cmd}: allocations made {made:?}"
        );
        for (k, p, n) in live.drain(..) {
            free(k, p, n);
        }
        m.kmem_cache_destroy(c);
        assert_eq!(m.bug_count(), 0, "{cmd}: {}", m.platform().take_captured());
        assert_eq!(settle(&m), free0, "{cmd}: pages did not all come back");
        m.check_invariants().unwrap();
    }
}
