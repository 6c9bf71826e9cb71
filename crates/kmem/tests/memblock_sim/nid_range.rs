//! The range cases of tools/testing/memblock/tests/alloc_nid_api.c (`NUMA_NO_NODE`,
//! `[min_addr, max_addr)` limits), shared, as upstream shares them, by the
//! memblock_alloc_try_nid(_raw) suite and the memblock_alloc_exact_nid_raw suite
//! (`memblock_alloc_exact_nid_range_checks`). Expected values are upstream's.

use super::*;
use kmem::memblock::NUMA_NO_NODE;

#[track_caller]
pub fn rgn(r: MemblockRegion, base: u64, size: u64) {
    assert_eq!((r.base.as_u64(), r.size), (base, size));
}

#[track_caller]
pub fn totals(s: &Sim, cnt: usize, total: u64) {
    assert_eq!(s.mb.reserved.cnt(), cnt);
    assert_eq!(s.mb.reserved.total_size(), total);
}

/// Allocates `size` in `[min, max)` on any node, checks the memory's content.
#[track_caller]
fn alloc_ok(s: &mut Sim, f: Flags, size: u64, min: u64, max: u64) {
    let ptr = s.alloc_nid(f, size, SMP_CACHE_BYTES, min, max, NUMA_NO_NODE);
    let ptr = ptr.expect("allocation failed");
    s.assert_mem_content(ptr, size, f);
}

pub fn alloc_nid_top_down_simple_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_128;
    let min = s.start() + SMP_CACHE_BYTES * 2;
    let max = min + SZ_512;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), max - size, size);
    assert_eq!(s.res(0).end(), max);
    totals(s, 1, size);
}

pub fn alloc_nid_top_down_end_misaligned_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (size, misalign) = (SZ_128, SZ_2);
    let min = s.start() + SMP_CACHE_BYTES * 2;
    let max = min + SZ_512 + misalign;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), max - size - misalign, size);
    assert!(s.res(0).end() < max);
    totals(s, 1, size);
}

pub fn alloc_nid_exact_address_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_1K;
    let min = s.start() + SMP_CACHE_BYTES;
    let max = min + size;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), min, size);
    assert_eq!(s.res(0).end(), max);
    totals(s, 1, size);
}

pub fn alloc_nid_top_down_narrow_range_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_256;
    let min = s.start() + SZ_512;
    let max = min + SMP_CACHE_BYTES;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), max - size, size);
    totals(s, 1, size);
}

pub fn alloc_nid_low_max_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let min = s.start();
    let max = min + SMP_CACHE_BYTES;
    assert!(s
        .alloc_nid(f, SZ_1K, SMP_CACHE_BYTES, min, max, NUMA_NO_NODE)
        .is_none());
}

pub fn alloc_nid_min_reserved_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r1_size, r2_size) = (SZ_128, SZ_64);
    let max = s.end();
    let min = max - r2_size;
    let reserved_base = min - r1_size;
    s.reserve_kern(reserved_base, r1_size);
    alloc_ok(s, f, r2_size, min, max);
    rgn(s.res(0), reserved_base, r1_size + r2_size);
    totals(s, 1, r1_size + r2_size);
}

pub fn alloc_nid_max_reserved_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r1_size, r2_size) = (SZ_64, SZ_128);
    let max = s.end() - r1_size;
    let min = max - r2_size;
    s.reserve_kern(max, r1_size);
    alloc_ok(s, f, r2_size, min, max);
    rgn(s.res(0), min, r1_size + r2_size);
    totals(s, 1, r1_size + r2_size);
}

/// r1 near the end, r2 below it with room for `gap` + `r3_size` between.
fn two_reservations(s: &mut Sim, r3_size: u64, gap: u64, kern: bool) -> ((u64, u64), (u64, u64)) {
    let r1 = (s.end() - SMP_CACHE_BYTES * 2, SMP_CACHE_BYTES);
    let r2 = (r1.0 - (r3_size + gap + SZ_128), SZ_128);
    for r in [r1, r2] {
        if kern {
            s.reserve_kern(r.0, r.1);
        } else {
            s.reserve(r.0, r.1);
        }
    }
    (r1, r2)
}

pub fn alloc_nid_top_down_reserved_with_space_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_64;
    let (r1, r2) = two_reservations(s, r3_size, SMP_CACHE_BYTES, true);
    let (min, max) = (r2.0 + r2.1, r1.0);
    alloc_ok(s, f, r3_size, min, max);
    rgn(s.res(1), max - r3_size, r1.1 + r3_size);
    rgn(s.res(0), r2.0, r2.1);
    totals(s, 2, r1.1 + r2.1 + r3_size);
}

pub fn alloc_nid_reserved_full_merge_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_64;
    let (r1, r2) = two_reservations(s, r3_size, 0, true);
    let (min, max) = (r2.0 + r2.1, r1.0);
    alloc_ok(s, f, r3_size, min, max);
    rgn(s.res(0), r2.0, r1.1 + r2.1 + r3_size);
    totals(s, 1, r1.1 + r2.1 + r3_size);
}

pub fn alloc_nid_top_down_reserved_no_space_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_256;
    let r1 = (s.end() - SMP_CACHE_BYTES * 2, SMP_CACHE_BYTES);
    let r2 = (r1.0 - (SZ_128 + SMP_CACHE_BYTES), SZ_128);
    s.reserve_kern(r1.0, r1.1);
    s.reserve_kern(r2.0, r2.1);
    let (min, max) = (r2.0 + r2.1, r1.0);
    alloc_ok(s, f, r3_size, min, max);
    rgn(s.res(1), r1.0, r1.1);
    rgn(s.res(0), r2.0 - r3_size, r2.1 + r3_size);
    totals(s, 2, r1.1 + r2.1 + r3_size);
}

pub fn alloc_nid_reserved_all_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r3_size, gap) = (SZ_256, SMP_CACHE_BYTES);
    let r1 = (s.end() - SMP_CACHE_BYTES, SMP_CACHE_BYTES);
    let r2 = (s.start(), MEM_SIZE - (r1.1 + gap));
    let (min, max) = (r2.0 + r2.1, r1.0);
    s.reserve(r1.0, r1.1);
    s.reserve(r2.0, r2.1);
    assert!(s
        .alloc_nid(f, r3_size, SMP_CACHE_BYTES, min, max, NUMA_NO_NODE)
        .is_none());
}

pub fn alloc_nid_top_down_cap_max_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_256;
    let (min, max) = (s.end() - SZ_1K, s.end() + SZ_256);
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), s.end() - size, size);
    totals(s, 1, size);
}

pub fn alloc_nid_top_down_cap_min_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_1K;
    let (min, max) = (s.start() - SZ_256, s.end());
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), s.end() - size, size);
    totals(s, 1, size);
}

pub fn alloc_nid_bottom_up_simple_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_128;
    let min = s.start() + SMP_CACHE_BYTES * 2;
    let max = min + SZ_512;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), min, size);
    assert!(s.res(0).end() < max);
    totals(s, 1, size);
}

pub fn alloc_nid_bottom_up_start_misaligned_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (size, misalign) = (SZ_128, SZ_2);
    let min = s.start() + misalign;
    let max = min + SZ_512;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), min + (SMP_CACHE_BYTES - misalign), size);
    assert!(s.res(0).end() < max);
    totals(s, 1, size);
}

pub fn alloc_nid_bottom_up_narrow_range_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_256;
    let min = s.start() + SZ_512;
    let max = min + SMP_CACHE_BYTES;
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), s.start(), size);
    totals(s, 1, size);
}

pub fn alloc_nid_bottom_up_reserved_with_space_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_64;
    let (r1, r2) = two_reservations(s, r3_size, SMP_CACHE_BYTES, true);
    let (min, max) = (r2.0 + r2.1, r1.0);
    alloc_ok(s, f, r3_size, min, max);
    rgn(s.res(1), max, r1.1);
    rgn(s.res(0), r2.0, r2.1 + r3_size);
    totals(s, 2, r1.1 + r2.1 + r3_size);
}

pub fn alloc_nid_bottom_up_reserved_no_space_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_256;
    let r1 = (s.end() - SMP_CACHE_BYTES * 2, SMP_CACHE_BYTES);
    let r2 = (r1.0 - (SZ_128 + SMP_CACHE_BYTES), SZ_128);
    s.reserve(r1.0, r1.1);
    s.reserve(r2.0, r2.1);
    let (min, max) = (r2.0 + r2.1, r1.0);
    alloc_ok(s, f, r3_size, min, max);
    rgn(s.res(0), s.start(), r3_size);
    rgn(s.res(1), r2.0, r2.1);
    rgn(s.res(2), r1.0, r1.1);
    totals(s, 3, r1.1 + r2.1 + r3_size);
}

pub fn alloc_nid_bottom_up_cap_max_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_256;
    let (min, max) = (s.start() + SZ_1K, s.end() + SZ_256);
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), min, size);
    totals(s, 1, size);
}

pub fn alloc_nid_bottom_up_cap_min_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_1K;
    let (min, max) = (s.start(), s.end() - SZ_256);
    alloc_ok(s, f, size, min, max);
    rgn(s.res(0), s.start(), size);
    totals(s, 1, size);
}

/// `memblock_alloc_nid_range_checks`: every range case with flags `f`, in upstream's
/// order and directions. Returns the number of runs.
pub fn range_checks(f: Flags) -> usize {
    type Case = fn(&mut Sim, Flags);
    let paired: [(Case, Case); 7] = [
        (
            alloc_nid_top_down_simple_check,
            alloc_nid_bottom_up_simple_check,
        ),
        (
            alloc_nid_top_down_end_misaligned_check,
            alloc_nid_bottom_up_start_misaligned_check,
        ),
        (
            alloc_nid_top_down_narrow_range_check,
            alloc_nid_bottom_up_narrow_range_check,
        ),
        (
            alloc_nid_top_down_reserved_with_space_check,
            alloc_nid_bottom_up_reserved_with_space_check,
        ),
        (
            alloc_nid_top_down_reserved_no_space_check,
            alloc_nid_bottom_up_reserved_no_space_check,
        ),
        (
            alloc_nid_top_down_cap_max_check,
            alloc_nid_bottom_up_cap_max_check,
        ),
        (
            alloc_nid_top_down_cap_min_check,
            alloc_nid_bottom_up_cap_min_check,
        ),
    ];
    let generic: [Case; 6] = [
        alloc_nid_min_reserved_generic_check,
        alloc_nid_max_reserved_generic_check,
        alloc_nid_exact_address_generic_check,
        alloc_nid_reserved_full_merge_generic_check,
        alloc_nid_reserved_all_generic_check,
        alloc_nid_low_max_generic_check,
    ];
    let mut runs = 0;
    for (top_down, bottom_up) in paired {
        top_down(&mut Sim::with_direction(false), f);
        bottom_up(&mut Sim::with_direction(true), f);
        runs += 2;
    }
    for case in generic {
        for bu in [false, true] {
            case(&mut Sim::with_direction(bu), f);
            runs += 1;
        }
    }
    runs
}
