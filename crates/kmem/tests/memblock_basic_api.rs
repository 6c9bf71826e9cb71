//! Linux's tools/testing/memblock/tests/basic_api.c (6.18, with `MEMBLOCK_RSRV_KERN`),
//! ported with its expected values: memblock_add/reserve/remove/free (overlaps, merges,
//! splits, `PHYS_ADDR_MAX`, array doubling), the bottom-up switch, memblock_trim_memory,
//! memblock_overlaps_region and memblock_set_node. One test per upstream case, same name.
mod memblock_sim;

use kmem::addr::PHYS_ADDR_MAX;
use kmem::memblock::{
    numa_valid_node, MemblockError, MemblockFlags, MemblockKind, MEMBLOCK_ALLOC_ANYWHERE,
};
use memblock_sim::*;

const EXPECTED_MEMBLOCK_REGIONS: usize = 128;
const MAX: u64 = PHYS_ADDR_MAX.as_u64();

/// Asserts region `(base, size)`.
#[track_caller]
fn rgn(r: kmem::memblock::MemblockRegion, base: u64, size: u64) {
    assert_eq!((r.base.as_u64(), r.size), (base, size));
}

#[test]
fn memblock_initialization_check() {
    let s = Sim::new();
    assert_eq!(s.mb.memory.cnt(), 0);
    assert_eq!(s.mb.memory.max(), EXPECTED_MEMBLOCK_REGIONS);
    assert_eq!(s.mb.memory.name(), "memory");
    assert_eq!(s.mb.reserved.cnt(), 0);
    assert_eq!(s.mb.reserved.max(), EXPECTED_MEMBLOCK_REGIONS);
    assert_eq!(s.mb.reserved.name(), "reserved");
    assert!(!s.mb.bottom_up());
    assert_eq!(s.mb.current_limit(), MEMBLOCK_ALLOC_ANYWHERE);
}

/// Adds `r1` then `r2` to memory; returns the simulator.
fn add2(r1: (u64, u64), r2: (u64, u64)) -> Sim {
    let mut s = Sim::new();
    s.reset_memblock_regions();
    s.mb.add(p(r1.0), r1.1).unwrap();
    s.mb.add(p(r2.0), r2.1).unwrap();
    s
}

#[test]
fn memblock_add_simple_check() {
    let mut s = Sim::new();
    s.mb.add(p(SZ_1G), SZ_4M).unwrap();
    rgn(s.mem_rgn(0), SZ_1G, SZ_4M);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_4M);
}

#[test]
fn memblock_add_node_simple_check() {
    let mut s = Sim::new();
    let f = MemblockFlags::MEMBLOCK_HOTPLUG;
    s.mb.add_node(p(SZ_1M), SZ_16M, 1, f).unwrap();
    rgn(s.mem_rgn(0), SZ_1M, SZ_16M);
    assert_eq!(s.mem_rgn(0).nid, 1);
    assert_eq!(s.mem_rgn(0).flags, f);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_16M);
}

#[test]
fn memblock_add_disjoint_check() {
    let s = add2((SZ_1G, SZ_8K), (SZ_1G + SZ_16K, SZ_8K));
    rgn(s.mem_rgn(0), SZ_1G, SZ_8K);
    rgn(s.mem_rgn(1), SZ_1G + SZ_16K, SZ_8K);
    assert_eq!(s.mb.memory.cnt(), 2);
    assert_eq!(s.mb.memory.total_size(), SZ_16K);
}

#[test]
fn memblock_add_overlap_top_check() {
    let s = add2((SZ_512M, SZ_1G), (SZ_256M, SZ_512M));
    let total = (SZ_512M - SZ_256M) + SZ_1G;
    rgn(s.mem_rgn(0), SZ_256M, total);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), total);
}

#[test]
fn memblock_add_overlap_bottom_check() {
    let s = add2((SZ_128M, SZ_512M), (SZ_256M, SZ_1G));
    let total = (SZ_256M - SZ_128M) + SZ_1G;
    rgn(s.mem_rgn(0), SZ_128M, total);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), total);
}

#[test]
fn memblock_add_within_check() {
    let s = add2((SZ_8M, SZ_32M), (SZ_16M, SZ_1M));
    rgn(s.mem_rgn(0), SZ_8M, SZ_32M);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_32M);
}

#[test]
fn memblock_add_twice_check() {
    let s = add2((SZ_16K, SZ_2M), (SZ_16K, SZ_2M));
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_2M);
}

#[test]
fn memblock_add_between_check() {
    let mut s = add2((SZ_1G, SZ_8K), (SZ_1G + SZ_16K, SZ_8K));
    s.mb.add(p(SZ_1G + SZ_8K), SZ_8K).unwrap();
    rgn(s.mem_rgn(0), SZ_1G, 3 * SZ_8K);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), 3 * SZ_8K);
}

#[test]
fn memblock_add_near_max_check() {
    let mut s = Sim::new();
    let base = MAX - SZ_1M;
    s.mb.add(p(base), SZ_2M).unwrap();
    rgn(s.mem_rgn(0), base, MAX - base);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), MAX - base);
}

#[test]
fn memblock_add_many_check() {
    let mut s = Sim::new();
    s.mb.allow_resize();
    let (size, gap) = (SZ_64, SZ_64);
    // A block big enough for the doubled array, then 128 small ones apart.
    let mut base = page_align(DUMMY_BASE);
    let new_memory_regions_size = page_align(INIT_MEMBLOCK_REGIONS as u64 * 2 * REGION_BYTES);
    s.mb.add(p(base), new_memory_regions_size).unwrap();
    base += new_memory_regions_size + gap;
    for i in 0..INIT_MEMBLOCK_REGIONS as u64 {
        s.mb.add(p(base), size).unwrap();
        base += size + gap;
        assert_eq!(s.mb.memory.cnt() as u64, i + 2);
        assert_eq!(
            s.mb.memory.total_size(),
            new_memory_regions_size + (i + 1) * size
        );
    }
    // memblock_double_array() ran and reserved the memory it used.
    assert_eq!(s.mb.memory.max(), INIT_MEMBLOCK_REGIONS * 2);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), new_memory_regions_size);
    // memblock_add still works after the doubling.
    s.mb.add(p(SZ_16K), SZ_16K).unwrap();
    rgn(s.mem_rgn(0), SZ_16K, SZ_16K);
    assert_eq!(s.mb.memory.cnt(), INIT_MEMBLOCK_REGIONS + 2);
    assert_eq!(
        s.mb.memory.total_size(),
        INIT_MEMBLOCK_REGIONS as u64 * size + new_memory_regions_size + SZ_16K
    );
    assert_eq!(s.mb.memory.max(), INIT_MEMBLOCK_REGIONS * 2);
}

fn res2(r1: (u64, u64), r2: (u64, u64)) -> Sim {
    let mut s = Sim::new();
    s.reserve(r1.0, r1.1);
    s.reserve(r2.0, r2.1);
    s
}

#[test]
fn memblock_reserve_simple_check() {
    let mut s = Sim::new();
    s.reserve(SZ_2G, SZ_128M);
    rgn(s.res(0), SZ_2G, SZ_128M);
}

#[test]
fn memblock_reserve_disjoint_check() {
    let s = res2((SZ_256M, SZ_16M), (SZ_512M, SZ_512M));
    rgn(s.res(0), SZ_256M, SZ_16M);
    rgn(s.res(1), SZ_512M, SZ_512M);
    assert_eq!(s.mb.reserved.cnt(), 2);
    assert_eq!(s.mb.reserved.total_size(), SZ_16M + SZ_512M);
}

#[test]
fn memblock_reserve_overlap_top_check() {
    let s = res2((SZ_1G, SZ_1G), (SZ_128M, SZ_1G));
    let total = (SZ_1G - SZ_128M) + SZ_1G;
    rgn(s.res(0), SZ_128M, total);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), total);
}

#[test]
fn memblock_reserve_overlap_bottom_check() {
    let s = res2((SZ_2K, SZ_128K), (SZ_128K, SZ_128K));
    let total = (SZ_128K - SZ_2K) + SZ_128K;
    rgn(s.res(0), SZ_2K, total);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), total);
}

#[test]
fn memblock_reserve_within_check() {
    let s = res2((SZ_1M, SZ_8M), (SZ_2M, SZ_64K));
    rgn(s.res(0), SZ_1M, SZ_8M);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), SZ_8M);
}

#[test]
fn memblock_reserve_twice_check() {
    let s = res2((SZ_16K, SZ_2M), (SZ_16K, SZ_2M));
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), SZ_2M);
}

#[test]
fn memblock_reserve_between_check() {
    let mut s = res2((SZ_1G, SZ_8K), (SZ_1G + SZ_16K, SZ_8K));
    s.reserve(SZ_1G + SZ_8K, SZ_8K);
    rgn(s.res(0), SZ_1G, 3 * SZ_8K);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), 3 * SZ_8K);
}

#[test]
fn memblock_reserve_near_max_check() {
    let mut s = Sim::new();
    let base = MAX - SZ_1M;
    s.reserve(base, SZ_2M);
    rgn(s.res(0), base, MAX - base);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), MAX - base);
}

/// `PAGE_ALIGN((INIT_MEMBLOCK_REGIONS * 2) * sizeof(struct memblock_region))`.
fn new_reserved_regions_size() -> u64 {
    page_align(INIT_MEMBLOCK_REGIONS as u64 * 2 * REGION_BYTES)
}

/// The 129th reservation doubles the array; the doubled array is reserved, and
/// reserving still works after.
#[track_caller]
fn check_doubled_reserved(s: &mut Sim) {
    let n = INIT_MEMBLOCK_REGIONS as u64;
    assert_eq!(s.mb.reserved.cnt(), INIT_MEMBLOCK_REGIONS + 2);
    assert_eq!(
        s.mb.reserved.total_size(),
        (n + 1) * MEM_SIZE + new_reserved_regions_size()
    );
    assert_eq!(s.mb.reserved.max(), INIT_MEMBLOCK_REGIONS * 2);
}

#[track_caller]
fn check_reserve_after_double(s: &mut Sim) {
    let n = INIT_MEMBLOCK_REGIONS as u64;
    s.reserve(SZ_16K, SZ_16K);
    rgn(s.res(0), SZ_16K, SZ_16K);
    assert_eq!(s.mb.reserved.cnt(), INIT_MEMBLOCK_REGIONS + 3);
    assert_eq!(
        s.mb.reserved.total_size(),
        (n + 1) * MEM_SIZE + new_reserved_regions_size() + SZ_16K
    );
    assert_eq!(s.mb.reserved.max(), INIT_MEMBLOCK_REGIONS * 2);
}

#[test]
fn memblock_reserve_many_check() {
    let mut s = Sim::new();
    s.mb.allow_resize();
    s.mb.add(p(DUMMY_BASE), MEM_SIZE).unwrap();
    let mut memory_base = SZ_128K;
    for i in 0..INIT_MEMBLOCK_REGIONS as u64 {
        s.reserve(memory_base, MEM_SIZE);
        assert_eq!(s.mb.reserved.cnt() as u64, i + 1);
        assert_eq!(s.mb.reserved.total_size(), (i + 1) * MEM_SIZE);
        memory_base += MEM_SIZE * 2;
    }
    s.reserve(memory_base, MEM_SIZE);
    check_doubled_reserved(&mut s);
    check_reserve_after_double(&mut s);
}

/// `MEMORY_BASE(idx)`: the reservations keep a gap so they do not merge.
fn memory_base(idx: u64) -> u64 {
    SZ_128K + MEM_SIZE * 2 * idx
}

#[test]
fn memblock_reserve_all_locations_check() {
    let n = INIT_MEMBLOCK_REGIONS as u64;
    for skip in 0..=n {
        let mut s = Sim::new();
        s.mb.allow_resize();
        s.mb.add(p(DUMMY_BASE), MEM_SIZE).unwrap();
        for i in (0..=n).filter(|&i| i != skip) {
            s.reserve(memory_base(i), MEM_SIZE);
            let seen = if i < skip { i + 1 } else { i };
            assert_eq!(s.mb.reserved.cnt() as u64, seen);
            assert_eq!(s.mb.reserved.total_size(), seen * MEM_SIZE);
        }
        s.reserve(memory_base(skip), MEM_SIZE);
        check_doubled_reserved(&mut s);
        check_reserve_after_double(&mut s);
    }
}

#[test]
fn memblock_reserve_many_may_conflict_check() {
    let n = INIT_MEMBLOCK_REGIONS as u64;
    let offset = page_align(DUMMY_BASE);
    let at = |idx: u64| offset + MEM_SIZE * 2 * idx;
    for skip in 1..=n + 1 {
        let mut s = Sim::new();
        s.mb.allow_resize();
        s.reset_memblock_attributes();
        // Memory for the doubled array, and the range reserved as the 129th region.
        s.mb.add(p(at(0)), MEM_SIZE).unwrap();
        s.mb.add(p(at(skip)), MEM_SIZE).unwrap();
        for i in (1..=n + 1).filter(|&i| i != skip) {
            s.reserve(at(i), MEM_SIZE);
            let seen = if i < skip { i } else { i - 1 };
            assert_eq!(s.mb.reserved.cnt() as u64, seen);
            assert_eq!(s.mb.reserved.total_size(), seen * MEM_SIZE);
        }
        s.reserve(at(skip), MEM_SIZE);
        check_doubled_reserved(&mut s);
        // The new array comes from memory region 0, not from the range being reserved.
        assert_eq!(s.res(0).end(), at(0) + SZ_32K);
        assert_eq!(s.res(0).size, new_reserved_regions_size());
        check_reserve_after_double(&mut s);
    }
}

fn remove_after(adds: &[(u64, u64)], r: (u64, u64)) -> Sim {
    let mut s = Sim::new();
    for &(b, sz) in adds {
        s.mb.add(p(b), sz).unwrap();
    }
    s.mb.remove(p(r.0), r.1).unwrap();
    s
}

#[test]
fn memblock_remove_simple_check() {
    let s = remove_after(&[(SZ_2K, SZ_4K), (SZ_128K, SZ_4M)], (SZ_2K, SZ_4K));
    rgn(s.mem_rgn(0), SZ_128K, SZ_4M);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_4M);
}

#[test]
fn memblock_remove_absent_check() {
    let s = remove_after(&[(SZ_512K, SZ_4M)], (SZ_64M, SZ_1G));
    rgn(s.mem_rgn(0), SZ_512K, SZ_4M);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_4M);
}

#[test]
fn memblock_remove_overlap_top_check() {
    let s = remove_after(&[(SZ_32M, SZ_32M)], (SZ_16M, SZ_32M));
    let total = (SZ_32M + SZ_32M) - (SZ_16M + SZ_32M);
    rgn(s.mem_rgn(0), SZ_32M + SZ_16M, total);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), total);
}

#[test]
fn memblock_remove_overlap_bottom_check() {
    let s = remove_after(&[(SZ_2M, SZ_64M)], (SZ_32M, SZ_256M));
    rgn(s.mem_rgn(0), SZ_2M, SZ_32M - SZ_2M);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), SZ_32M - SZ_2M);
}

#[test]
fn memblock_remove_within_check() {
    let s = remove_after(&[(SZ_1M, SZ_32M)], (SZ_16M, SZ_1M));
    let r1_size = SZ_16M - SZ_1M;
    let r2_size = (SZ_1M + SZ_32M) - (SZ_16M + SZ_1M);
    rgn(s.mem_rgn(0), SZ_1M, r1_size);
    rgn(s.mem_rgn(1), SZ_16M + SZ_1M, r2_size);
    assert_eq!(s.mb.memory.cnt(), 2);
    assert_eq!(s.mb.memory.total_size(), r1_size + r2_size);
}

#[test]
fn memblock_remove_only_region_check() {
    let s = remove_after(&[(SZ_2K, SZ_4K)], (SZ_2K, SZ_4K));
    rgn(s.mem_rgn(0), 0, 0);
    assert_eq!(s.mb.memory.cnt(), 0);
    assert_eq!(s.mb.memory.total_size(), 0);
}

#[test]
fn memblock_remove_near_max_check() {
    let s = remove_after(&[(MAX - SZ_2M, SZ_2M)], (MAX - SZ_1M, SZ_2M));
    let total = SZ_2M - (MAX - (MAX - SZ_1M));
    rgn(s.mem_rgn(0), MAX - SZ_2M, total);
    assert_eq!(s.mb.memory.cnt(), 1);
    assert_eq!(s.mb.memory.total_size(), total);
}

#[test]
fn memblock_remove_overlap_two_check() {
    let s = remove_after(&[(SZ_16M, SZ_32M), (SZ_64M, SZ_64M)], (SZ_32M, SZ_64M));
    let (r2_end, r3_end) = (SZ_64M + SZ_64M, SZ_32M + SZ_64M);
    let (n1, n2) = (SZ_32M - SZ_16M, r2_end - r3_end);
    rgn(s.mem_rgn(0), SZ_16M, n1);
    rgn(s.mem_rgn(1), r3_end, n2);
    assert_eq!(s.mb.memory.cnt(), 2);
    assert_eq!(s.mb.memory.total_size(), n1 + n2);
}

fn free_after(res: &[(u64, u64)], r: (u64, u64)) -> Sim {
    let mut s = Sim::new();
    for &(b, sz) in res {
        s.reserve(b, sz);
    }
    s.mb.free(p(r.0), r.1).unwrap();
    s
}

#[test]
fn memblock_free_simple_check() {
    let s = free_after(&[(SZ_4M, SZ_1M), (SZ_8M, SZ_1M)], (SZ_4M, SZ_1M));
    rgn(s.res(0), SZ_8M, SZ_1M);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), SZ_1M);
}

#[test]
fn memblock_free_absent_check() {
    let s = free_after(&[(SZ_2M, SZ_8K)], (SZ_16M, SZ_128M));
    rgn(s.res(0), SZ_2M, SZ_8K);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), SZ_8K);
}

#[test]
fn memblock_free_overlap_top_check() {
    let s = free_after(&[(SZ_8M, SZ_32M)], (SZ_1M, SZ_8M));
    let total = (SZ_32M + SZ_8M) - (SZ_1M + SZ_8M);
    rgn(s.res(0), SZ_1M + SZ_8M, total);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), total);
}

#[test]
fn memblock_free_overlap_bottom_check() {
    let s = free_after(&[(SZ_8M, SZ_32M)], (SZ_32M, SZ_32M));
    rgn(s.res(0), SZ_8M, SZ_32M - SZ_8M);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), SZ_32M - SZ_8M);
}

#[test]
fn memblock_free_within_check() {
    let s = free_after(&[(SZ_1M, SZ_8M)], (SZ_4M, SZ_1M));
    let r1_size = SZ_4M - SZ_1M;
    let r2_size = (SZ_1M + SZ_8M) - (SZ_4M + SZ_1M);
    rgn(s.res(0), SZ_1M, r1_size);
    rgn(s.res(1), SZ_4M + SZ_1M, r2_size);
    assert_eq!(s.mb.reserved.cnt(), 2);
    assert_eq!(s.mb.reserved.total_size(), r1_size + r2_size);
}

#[test]
fn memblock_free_only_region_check() {
    let s = free_after(&[(SZ_2K, SZ_4K)], (SZ_2K, SZ_4K));
    rgn(s.res(0), 0, 0);
    assert_eq!(s.mb.reserved.cnt(), 0);
    assert_eq!(s.mb.reserved.total_size(), 0);
}

#[test]
fn memblock_phys_free_near_max_check() {
    let s = free_after(&[(MAX - SZ_2M, SZ_2M)], (MAX - SZ_1M, SZ_2M));
    let total = SZ_2M - (MAX - (MAX - SZ_1M));
    rgn(s.res(0), MAX - SZ_2M, total);
    assert_eq!(s.mb.reserved.cnt(), 1);
    assert_eq!(s.mb.reserved.total_size(), total);
}

#[test]
fn memblock_free_overlap_two_check() {
    let s = free_after(&[(SZ_16M, SZ_32M), (SZ_64M, SZ_64M)], (SZ_32M, SZ_64M));
    let (r2_end, r3_end) = (SZ_64M + SZ_64M, SZ_32M + SZ_64M);
    let (n1, n2) = (SZ_32M - SZ_16M, r2_end - r3_end);
    rgn(s.res(0), SZ_16M, n1);
    rgn(s.res(1), r3_end, n2);
    assert_eq!(s.mb.reserved.cnt(), 2);
    assert_eq!(s.mb.reserved.total_size(), n1 + n2);
}

#[test]
fn memblock_set_bottom_up_check() {
    let mut s = Sim::new();
    s.mb.set_bottom_up(false);
    assert!(!s.mb.bottom_up());
    s.mb.set_bottom_up(true);
    assert!(s.mb.bottom_up());
}

#[test]
fn memblock_bottom_up_check() {
    let mut s = Sim::new();
    for v in [false, true] {
        s.mb.set_bottom_up(v);
        assert_eq!(s.mb.bottom_up(), v);
    }
}

fn trim(adds: &[(u64, u64)]) -> Sim {
    let mut s = Sim::new();
    for &(b, sz) in adds {
        s.mb.add(p(b), sz).unwrap();
    }
    s.mb.trim_memory(SMP_CACHE_BYTES).unwrap();
    s
}

#[test]
fn memblock_trim_memory_aligned_check() {
    let a = SMP_CACHE_BYTES;
    let s = trim(&[(a, a * 4)]);
    rgn(s.mem_rgn(0), a, a * 4);
    assert_eq!(s.mb.memory.cnt(), 1);
}

#[test]
fn memblock_trim_memory_too_small_check() {
    let a = SMP_CACHE_BYTES;
    let s = trim(&[(a, a * 2), (a * 4, a - SZ_2)]);
    rgn(s.mem_rgn(0), a, a * 2);
    assert_eq!(s.mb.memory.cnt(), 1);
}

#[test]
fn memblock_trim_memory_unaligned_base_check() {
    let (a, off) = (SMP_CACHE_BYTES, SZ_2);
    let (r2_base, r2_size) = (a * 4 + off, a * 2 - off);
    let s = trim(&[(a, a * 2), (r2_base, r2_size)]);
    rgn(s.mem_rgn(0), a, a * 2);
    rgn(s.mem_rgn(1), r2_base + (a - off), r2_size - (a - off));
    assert_eq!(s.mb.memory.cnt(), 2);
}

#[test]
fn memblock_trim_memory_unaligned_end_check() {
    let (a, off) = (SMP_CACHE_BYTES, SZ_2);
    let r2_size = a * 2 - off;
    let s = trim(&[(a, a * 2), (a * 4, r2_size)]);
    rgn(s.mem_rgn(0), a, a * 2);
    rgn(s.mem_rgn(1), a * 4, r2_size - (a - off));
    assert_eq!(s.mb.memory.cnt(), 2);
}

#[test]
fn memblock_overlaps_region_check() {
    let mut s = Sim::new();
    s.mb.add(p(SZ_1G), SZ_4M).unwrap();
    let ov = |b: u64, sz: u64| s.mb.overlaps_region(MemblockKind::Memory, p(b), sz);
    // Far away.
    assert!(!ov(SZ_1M, SZ_1M));
    assert!(!ov(SZ_2G, SZ_1M));
    // Neighbours.
    assert!(!ov(SZ_1G - SZ_1M, SZ_1M));
    assert!(!ov(SZ_1G + SZ_4M, SZ_1M));
    // Partial overlap.
    assert!(ov(SZ_1G - SZ_1M, SZ_2M));
    assert!(ov(SZ_1G + SZ_2M, SZ_2M));
    // Total overlap.
    assert!(ov(SZ_1G, SZ_4M));
    assert!(ov(SZ_1G - SZ_2M, SZ_8M));
    assert!(ov(SZ_1G + SZ_1M, SZ_1M));
}

#[test]
fn memblock_set_node_check() {
    let mut s = Sim::new();
    s.mb.allow_resize();
    s.mb.add(p(DUMMY_BASE), MEM_SIZE).unwrap();
    let (start, half) = (s.start(), s.mb.phys_mem_size() / 2);
    // Split the range equally between node 0 and node 1.
    s.mb.set_node(p(start), half, MemblockKind::Memory, 0)
        .unwrap();
    s.mb.set_node(p(start + half), half, MemblockKind::Memory, 1)
        .unwrap();
    assert_eq!(s.mb.memory.cnt(), 2);
    rgn(s.mem_rgn(0), start, half);
    assert_eq!(s.mem_rgn(0).node(), 0);
    rgn(s.mem_rgn(1), start + half, half);
    assert_eq!(s.mem_rgn(1).node(), 1);
    // 126 reserved regions, the last one across the node boundary.
    for i in 0..125 {
        s.reserve(start + SZ_16 * i, SZ_8);
    }
    s.reserve(start + half - SZ_8, SZ_16);
    // memmap_init_reserved_pages: set each reserved region's node from the memory
    // regions, again if that doubled the reserved array.
    loop {
        let max_reserved = s.mb.reserved.max();
        let mems: Vec<_> = s.mb.memory.regions().to_vec();
        for m in mems {
            s.mb.set_node(m.base, m.size, MemblockKind::Reserved, m.node())
                .unwrap();
        }
        if max_reserved == s.mb.reserved.max() {
            break;
        }
    }
    let cnt = s.mb.reserved.cnt();
    for (i, r) in s.mb.reserved.regions().iter().enumerate() {
        assert!(numa_valid_node(r.node()));
        assert_eq!(r.node(), i32::from(i == cnt - 1), "region {i}");
    }
}

/// kmem keeps each array inline: past its storage, an operation fails cleanly and changes
/// nothing (Linux would keep doubling into memblock memory).
#[test]
fn kmem_array_storage_limit_fails_cleanly() {
    let mut s = Sim::new();
    s.mb.allow_resize();
    s.mb.add(p(DUMMY_BASE), MEM_SIZE).unwrap();
    let mut err = None;
    for i in 0..1000 {
        if let Err(e) = s.mb.reserve(p(SZ_1M + i * SZ_64), SZ_32) {
            err = Some(e);
            break;
        }
    }
    let Some(MemblockError::TooManyRegions {
        name: "reserved", ..
    }) = err
    else {
        panic!("{err:?}")
    };
    let before = s.mb.reserved.cnt();
    assert!(s.mb.reserve(p(SZ_2M + SZ_16), SZ_8).is_err());
    assert_eq!(s.mb.reserved.cnt(), before);
    // Without memblock_allow_resize() a full array cannot grow at all.
    let mut s = Sim::new();
    for i in 0..INIT_MEMBLOCK_REGIONS as u64 {
        s.reserve(SZ_1M + i * SZ_64, SZ_32);
    }
    assert_eq!(
        s.mb.reserve(p(SZ_2M), SZ_32),
        Err(MemblockError::CannotResize { name: "reserved" })
    );
}
