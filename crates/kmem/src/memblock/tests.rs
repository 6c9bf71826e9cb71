//! memblock's own tests: merging and splitting, the free-range walk against a bitmap
//! model, allocation direction, page 0 and ranges near `PHYS_ADDR_MAX`. The upstream
//! tools/testing/memblock suites live in `tests/memblock_*.rs`.
extern crate std;
use super::*;
use crate::addr::PHYS_ADDR_MAX;
use std::vec::Vec;

fn ranges(mb: &Memblock) -> Vec<(u64, u64)> {
    mb.free_ranges()
        .map(|r| (r.base.as_u64(), r.end()))
        .collect()
}

#[test]
fn add_merges_and_remove_splits() {
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0x1000), 0x1000).unwrap();
    mb.add(PhysAddr::new(0x3000), 0x1000).unwrap();
    mb.add(PhysAddr::new(0x2000), 0x1000).unwrap();
    assert_eq!(mb.memory.regions().len(), 1);
    assert_eq!(mb.phys_mem_size(), 0x3000);
    mb.remove(PhysAddr::new(0x2000), 0x800).unwrap();
    assert_eq!(mb.memory.regions().len(), 2);
    assert_eq!(mb.phys_mem_size(), 0x2800);
}

#[test]
fn free_ranges_subtract_reserved() {
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0), 0x10000).unwrap();
    mb.add(PhysAddr::new(0x20000), 0x10000).unwrap();
    mb.reserve(PhysAddr::new(0x1000), 0x1000).unwrap();
    mb.reserve(PhysAddr::new(0xf000), 0x12000).unwrap();
    assert_eq!(
        ranges(&mb),
        [(0, 0x1000), (0x2000, 0xf000), (0x21000, 0x30000)]
    );
}

#[test]
fn top_down_and_bottom_up() {
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0x10_0000), 0x100_0000).unwrap();
    let a = mb.phys_alloc(0x3000, 0x1000).unwrap();
    assert_eq!(a.as_u64(), 0x110_0000 - 0x3000);
    let b = mb.phys_alloc(0x1000, 0x10_0000).unwrap();
    assert_eq!(b.as_u64(), 0x100_0000);
    mb.set_bottom_up(true);
    let c = mb.phys_alloc(0x1000, 0x1000).unwrap();
    assert_eq!(c.as_u64(), 0x10_0000);
    assert_eq!(mb.reserved_size(), 0x5000);
    mb.free(a, 0x3000).unwrap();
    assert_eq!(mb.reserved_size(), 0x2000);
    assert_eq!(
        mb.phys_alloc(0x1000_0000, 0x1000),
        Err(MemblockError::NoMemory)
    );
    assert_eq!(mb.phys_alloc(0, 0x1000), Err(MemblockError::Invalid));
    let low = mb.alloc_bootmem_low_pages(0x1000).unwrap();
    assert!(low.as_u64() < 0xffff_ffff);
}

/// mm/memblock.c memblock_find_in_range_node: "avoid allocating the first page" — an
/// allocation never returns physical page 0 (0 is memblock's failure value in Linux).
#[test]
fn never_hands_out_page_zero() {
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0), 0x10000).unwrap();
    mb.set_bottom_up(true);
    let a = mb.phys_alloc(0x1000, 0x1000).unwrap();
    assert_eq!(a.as_u64(), 0x1000, "bottom-up starts above page 0");
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0), 0x2000).unwrap();
    mb.reserve(PhysAddr::new(0x1000), 0x1000).unwrap();
    assert_eq!(
        mb.phys_alloc(0x1000, 0x1000),
        Err(MemblockError::NoMemory),
        "top-down: only page 0 is free, and it is never handed out"
    );
}

/// Ranges reaching past the largest physical address are capped at it
/// (memblock_cap_size), and nothing in memblock panics near it.
#[test]
fn ranges_near_phys_addr_max_are_capped() {
    let max = (1u64 << crate::addr::MAX_PHYSADDR_BITS) - 1;
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(max - 0xf_ffff), 0x20_0000).unwrap();
    assert_eq!(mb.phys_mem_size(), 0xf_ffff);
    assert_eq!(mb.end_of_dram().map(|a| a.as_u64()), Some(max));
    mb.add(PhysAddr::new(0x1000), u64::MAX).unwrap();
    assert_eq!(mb.phys_mem_size(), max - 0x1000);
    mb.reserve(PhysAddr::new(max - 0x1000), 0x10_0000).unwrap();
    assert_eq!(mb.reserved_size(), 0x1000);
    let free: u64 = mb.free_ranges().map(|r| r.size).sum();
    assert_eq!(free, max - 0x2000);
    mb.remove(PhysAddr::new(max - 0x2000), u64::MAX).unwrap();
    assert_eq!(mb.end_of_dram().map(|a| a.as_u64()), Some(max - 0x2000));
}

/// A region ending past the 52-bit limit used to make `end_of_dram` panic in
/// `PhysAddr::new` ("physical address wider than 52 bits").
#[test]
fn end_of_dram_near_phys_addr_max_does_not_panic() {
    let max = (1u64 << crate::addr::MAX_PHYSADDR_BITS) - 1;
    let mut mb = Memblock::new();
    let _ = mb.add(PhysAddr::new(max - 0xf_ffff), 0x20_0000);
    let _ = mb.end_of_dram();
    let _ = mb.free_ranges().count();
}

proptest::proptest! {
    #[test]
    fn reserve_free_matches_bitmap(ops in proptest::collection::vec((0u64..64, 1u64..8, proptest::bool::ANY), 1..60)) {
        // Reference model: one bool per 4 KiB unit over 64 units.
        let mut model = [false; 72];
        let mut mb = Memblock::new();
        mb.add(PhysAddr::new(0), 64 * 0x1000).unwrap();
        for (start, len, reserve) in ops {
            if reserve {
                mb.reserve(PhysAddr::new(start * 0x1000), len * 0x1000).unwrap();
            } else {
                mb.free(PhysAddr::new(start * 0x1000), len * 0x1000).unwrap();
            }
            for u in start..start + len {
                model[u as usize] = reserve;
            }
            let regions = mb.reserved.regions();
            for w in regions.windows(2) {
                proptest::prop_assert!(w[0].end() < w[1].base.as_u64(), "sorted, merged");
            }
            let mut free_units = [false; 72];
            for r in mb.free_ranges() {
                for u in r.base.as_u64() / 0x1000..r.end() / 0x1000 {
                    free_units[u as usize] = true;
                }
            }
            for u in 0..64 {
                proptest::prop_assert_eq!(free_units[u], !model[u]);
            }
        }
    }
}

const HOTPLUG: MemblockFlags = MemblockFlags::MEMBLOCK_HOTPLUG;

/// Two memory banks: [64K, 128K) and [1M, 1M + 64K).
fn two_banks(high_flags: MemblockFlags) -> Memblock {
    let mut mb = Memblock::new();
    mb.add_node(
        PhysAddr::new(0x1_0000),
        0x1_0000,
        0,
        MemblockFlags::MEMBLOCK_NONE,
    )
    .unwrap();
    mb.add_node(PhysAddr::new(0x10_0000), 0x1_0000, 1, high_flags)
        .unwrap();
    mb
}

#[test]
fn movable_node_skips_hotpluggable_memory() {
    let mut mb = two_banks(HOTPLUG);
    assert_eq!(mb.phys_alloc(0x1000, 0x1000).unwrap().as_u64(), 0x10_f000);
    mb.set_movable_node(true);
    assert_eq!(mb.phys_alloc(0x1000, 0x1000).unwrap().as_u64(), 0x1_f000);
    // clear_hotplug makes the bank usable again.
    mb.clear_hotplug(PhysAddr::new(0x10_0000), 0x1_0000)
        .unwrap();
    assert_eq!(mb.memory.regions()[1].flags, MemblockFlags::MEMBLOCK_NONE);
    assert_eq!(mb.phys_alloc(0x1000, 0x1000).unwrap().as_u64(), 0x10_e000);
}

#[test]
fn nomap_memory_is_never_allocated() {
    let mut mb = two_banks(MemblockFlags::MEMBLOCK_NONE);
    mb.mark_nomap(PhysAddr::new(0x10_0000), 0x1_0000).unwrap();
    assert!(!mb.is_map_memory(PhysAddr::new(0x10_8000)));
    assert!(mb.is_memory(PhysAddr::new(0x10_8000)));
    assert_eq!(mb.phys_alloc(0x1000, 0x1000).unwrap().as_u64(), 0x1_f000);
    // A flag on part of a region splits it; clearing it merges the pieces again.
    mb.clear_nomap(PhysAddr::new(0x10_4000), 0x1000).unwrap();
    assert_eq!(mb.memory.cnt(), 4);
    mb.clear_nomap(PhysAddr::new(0x10_0000), 0x1_0000).unwrap();
    assert_eq!(mb.memory.cnt(), 2);
    assert!(mb.is_map_memory(PhysAddr::new(0x10_8000)));
}

#[test]
fn mirrored_memory_is_preferred_once_marked() {
    let mut mb = two_banks(MemblockFlags::MEMBLOCK_NONE);
    // Without kernelcore=mirror, memblock_mark_mirror does nothing.
    mb.mark_mirror(PhysAddr::new(0x1_0000), 0x1_0000).unwrap();
    assert!(!mb.has_mirror());
    assert_eq!(mb.memory.regions()[0].flags, MemblockFlags::MEMBLOCK_NONE);
    mb.set_mirrored_kernelcore(true);
    mb.mark_mirror(PhysAddr::new(0x1_0000), 0x1_0000).unwrap();
    assert!(mb.has_mirror() && mb.memory.regions()[0].is_mirror());
    assert_eq!(mb.phys_alloc(0x1000, 0x1000).unwrap().as_u64(), 0x1_f000);
    // Mirrored memory full: fall back to the rest.
    assert_eq!(mb.phys_alloc(0xf000, 0x1000).unwrap().as_u64(), 0x1_0000);
    assert_eq!(mb.phys_alloc(0x1000, 0x1000).unwrap().as_u64(), 0x10_f000);
}

#[test]
fn allocations_carry_node_and_rsrv_kern() {
    let mut mb = two_banks(MemblockFlags::MEMBLOCK_NONE);
    let a = mb.phys_alloc_try_nid(0x1000, 0x1000, 0).unwrap();
    assert_eq!(a.as_u64(), 0x1_f000);
    let r = mb.reserved.regions()[0];
    assert_eq!((r.nid, r.flags), (0, MemblockFlags::MEMBLOCK_RSRV_KERN));
    // A plain reservation next to it does not merge (other node and flags).
    mb.reserve(PhysAddr::new(0x1_e000), 0x1000).unwrap();
    assert_eq!(mb.reserved.cnt(), 2);
    assert_eq!(mb.reserved_kern_size(PHYS_ADDR_MAX, NUMA_NO_NODE), 0x1000);
    assert_eq!(mb.reserved_kern_size(PHYS_ADDR_MAX, 1), 0);
    // Node 1 full: falls back to any node, reserved without a node.
    mb.reserve(PhysAddr::new(0x10_0000), 0x1_0000).unwrap();
    let b = mb.phys_alloc_try_nid(0x1000, 0x1000, 1).unwrap();
    assert_eq!(b.as_u64(), 0x1_d000);
    assert_eq!(mb.reserved.regions()[0].nid, NUMA_NO_NODE);
}

#[test]
fn set_node_splits_and_merges() {
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0x1000), 0x4000).unwrap();
    assert_eq!(mb.memory.regions()[0].nid, MAX_NUMNODES);
    let k = MemblockKind::Memory;
    mb.set_node(PhysAddr::new(0x2000), 0x1000, k, 1).unwrap();
    assert_eq!(mb.memory.cnt(), 3);
    let pfn = crate::addr::Pfn::new;
    assert_eq!(mb.search_pfn_nid(pfn(2)), Some((1, pfn(2), pfn(3))));
    mb.set_node(PhysAddr::new(0), PHYS_ADDR_MAX.as_u64(), k, 0)
        .unwrap();
    assert_eq!(mb.memory.cnt(), 1);
    assert_eq!(mb.memory.regions()[0].nid, 0);
    assert_eq!(mb.phys_mem_size(), 0x4000);
}

#[test]
fn dump_is_linux_format() {
    let mut mb = Memblock::new();
    mb.add_node(
        PhysAddr::new(0x1000),
        0x9e000,
        0,
        MemblockFlags::MEMBLOCK_NONE,
    )
    .unwrap();
    mb.reserve(PhysAddr::new(0x1000), 0x1000).unwrap();
    let mut s = std::string::String::new();
    mb.dump(&mut s).unwrap();
    assert_eq!(
        s,
        "MEMBLOCK configuration:\n \
         memory size = 0x000000000009e000 reserved size = 0x0000000000001000\n \
         memory.cnt  = 0x1\n \
         memory[0x0]\t[0x0000000000001000-0x000000000009efff], 0x000000000009e000 bytes on node 0 flags: 0x0\n \
         reserved.cnt  = 0x1\n \
         reserved[0x0]\t[0x0000000000001000-0x0000000000001fff], 0x0000000000001000 bytes flags: 0x0\n"
    );
    assert_eq!(MemblockFlags::MEMBLOCK_NONE.name(), "NONE");
    assert_eq!(MemblockFlags::MEMBLOCK_RSRV_KERN.name(), "RSV_KERN");
    assert_eq!(MemblockFlags::from_bits_retain(0x100).name(), "UNKNOWN");
}

#[test]
fn bad_arguments_are_errors() {
    let mut mb = Memblock::new();
    mb.add(PhysAddr::new(0x1000), 0x10000).unwrap();
    assert_eq!(mb.phys_alloc(0x1000, 3), Err(MemblockError::Invalid));
    assert_eq!(mb.phys_alloc(0, 0x1000), Err(MemblockError::Invalid));
    assert_eq!(mb.trim_memory(3), Err(MemblockError::Invalid));
    // Alignment 0 means SMP_CACHE_BYTES; a huge alignment finds nothing and does not panic.
    assert_eq!(
        mb.phys_alloc(0x10, 0).unwrap().as_u64() % SMP_CACHE_BYTES,
        0
    );
    assert_eq!(mb.phys_alloc(0x10, 1 << 63), Err(MemblockError::NoMemory));
    mb.set_bottom_up(true);
    assert_eq!(mb.phys_alloc(0x10, 1 << 63), Err(MemblockError::NoMemory));
    let mut s = std::string::String::new();
    std::fmt::Write::write_fmt(
        &mut s,
        format_args!(
            "{}",
            MemblockError::TooManyRegions {
                name: "reserved",
                max: 128
            }
        ),
    )
    .unwrap();
    assert_eq!(
        s,
        "memblock: Failed to double reserved array from 128 to 256 entries !"
    );
}

proptest::proptest! {
    /// The reverse walk visits the forward walk's ranges in reverse order, and both agree
    /// with the node filter.
    #[test]
    fn reverse_walk_mirrors_forward_walk(
        res in proptest::collection::vec((0u64..64, 1u64..8), 0..30),
        nid in -1i32..3,
    ) {
        let mut mb = Memblock::new();
        for n in 0..3u64 {
            mb.add_node(PhysAddr::new(0x1000 + n * 0x20_000), 0x18_000, n as i32, MemblockFlags::MEMBLOCK_NONE).unwrap();
        }
        for (start, len) in res {
            mb.reserve(PhysAddr::new(start * 0x1000), len * 0x1000).unwrap();
        }
        let f = MemblockFlags::MEMBLOCK_NONE;
        let fwd: Vec<_> = mb.free_mem_ranges(nid, f).collect();
        let mut rev: Vec<_> = mb.free_mem_ranges_rev(nid, f).collect();
        rev.reverse();
        proptest::prop_assert_eq!(&fwd, &rev);
        for (s, e, n) in fwd {
            proptest::prop_assert!(s < e);
            proptest::prop_assert!(nid < 0 || n == nid);
            proptest::prop_assert!(!mb.is_region_reserved(s, e - s));
        }
    }
}
