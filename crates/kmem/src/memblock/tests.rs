//! memblock's own tests: merging and splitting, the free-range walk against a bitmap
//! model, allocation direction, page 0 and ranges near `PHYS_ADDR_MAX`. The upstream
//! tools/testing/memblock suites live in `tests/memblock_*.rs`.
extern crate std;
use super::*;
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
