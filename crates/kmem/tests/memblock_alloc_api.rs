//! Linux's tools/testing/memblock/tests/alloc_api.c (6.18, with `MEMBLOCK_RSRV_KERN`),
//! ported with its expected values: memblock_alloc and memblock_alloc_raw, top-down and
//! bottom-up. Every case runs for both functions (`TEST_F_NONE`, `TEST_F_RAW`); the generic
//! cases run in both directions (`<case>_top_down`, `<case>_bottom_up`).
mod memblock_sim;

use memblock_sim::*;

#[track_caller]
fn rgn(r: kmem::memblock::MemblockRegion, base: u64, size: u64) {
    assert_eq!((r.base.as_u64(), r.size), (base, size));
}

#[track_caller]
fn totals(s: &Sim, cnt: usize, total: u64) {
    assert_eq!(s.mb.reserved.cnt(), cnt);
    assert_eq!(s.mb.reserved.total_size(), total);
}

/// A small allocation lands aligned near the end of memory.
fn alloc_top_down_simple_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let size = SZ_2;
    let expected_start = s.end() - SMP_CACHE_BYTES;
    let ptr = s.alloc(f, size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, size, f);
    rgn(s.res(0), expected_start, size);
    totals(s, 1, size);
}

/// Next to a reservation at a misaligned address: two entries, the new one aligned.
fn alloc_top_down_disjoint_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r2_size, alignment) = (SZ_16, SMP_CACHE_BYTES * 2);
    let r1 = (s.end() - SZ_2, SZ_2);
    let expected_start = s.end() - alignment;
    s.reserve(r1.0, r1.1);
    let ptr = s.alloc(f, r2_size, alignment).unwrap();
    s.assert_mem_content(ptr, r2_size, f);
    rgn(s.res(1), r1.0, r1.1);
    rgn(s.res(0), expected_start, r2_size);
    totals(s, 2, r1.1 + r2_size);
}

/// Room at the end, next to a kernel reservation (first fit): the two merge.
fn alloc_top_down_before_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r1_size, r2_size) = (SMP_CACHE_BYTES, SZ_512);
    let total = r1_size + r2_size;
    s.reserve_kern(s.end() - total, r1_size);
    let ptr = s.alloc(f, r2_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r2_size, f);
    rgn(s.res(0), s.end() - total, total);
    totals(s, 1, total);
}

/// No room after the reservation (second fit): allocated below it, merged.
fn alloc_top_down_after_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r2_size = SZ_512;
    let r1 = (s.end() - SMP_CACHE_BYTES, SZ_8);
    s.reserve_kern(r1.0, r1.1);
    let ptr = s.alloc(f, r2_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r2_size, f);
    rgn(s.res(0), r1.0 - r2_size, r1.1 + r2_size);
    totals(s, 1, r1.1 + r2_size);
}

/// A gap too small between two reservations: allocated below the lower one, merged.
fn alloc_top_down_second_fit_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_1K;
    let r1 = (s.end() - SZ_512, SZ_512);
    let r2 = (r1.0 - SZ_512, SZ_256);
    s.reserve_kern(r1.0, r1.1);
    s.reserve_kern(r2.0, r2.1);
    let ptr = s.alloc(f, r3_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r3_size, f);
    rgn(s.res(0), r2.0 - r3_size, r2.1 + r3_size);
    totals(s, 2, r1.1 + r2.1 + r3_size);
}

/// A gap of exactly the size between two reservations: everything merges.
fn alloc_in_between_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (gap, r3_size) = (SMP_CACHE_BYTES, SZ_64);
    let rgn_size = (MEM_SIZE - (2 * gap + r3_size)) / 2;
    let r1 = (s.end() - (gap + rgn_size), rgn_size);
    let r2 = (s.start() + gap, rgn_size);
    let total = r1.1 + r2.1 + r3_size;
    s.reserve_kern(r1.0, r1.1);
    s.reserve_kern(r2.0, r2.1);
    let ptr = s.alloc(f, r3_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r3_size, f);
    rgn(s.res(0), r1.0 - r2.1 - r3_size, total);
    totals(s, 1, total);
}

/// Only gaps too small for the request: no allocation.
fn alloc_small_gaps_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (region_size, gap) = (SZ_1K, SZ_256);
    let mut region_end = s.start();
    while region_end < s.end() {
        s.reserve(region_end + gap, region_size);
        region_end += gap + region_size;
    }
    assert!(s.alloc(f, region_size, SMP_CACHE_BYTES).is_none());
}

/// All memory reserved: no allocation.
fn alloc_all_reserved_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    s.reserve(s.start(), MEM_SIZE);
    assert!(s.alloc(f, SZ_256, SMP_CACHE_BYTES).is_none());
}

/// Almost full, not enough left: no allocation.
fn alloc_no_space_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    s.reserve(s.start(), MEM_SIZE - SZ_256);
    assert!(s.alloc(f, SZ_1K, SMP_CACHE_BYTES).is_none());
}

/// Almost full, exactly enough left: allocated, everything merges.
fn alloc_limited_space_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let available = SZ_256;
    s.reserve_kern(s.start(), MEM_SIZE - available);
    let ptr = s.alloc(f, available, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, available, f);
    rgn(s.res(0), s.start(), MEM_SIZE);
    totals(s, 1, MEM_SIZE);
}

/// No memory registered: no allocation, nothing reserved.
fn alloc_no_memory_generic_check(s: &mut Sim, f: Flags) {
    s.reset_memblock_regions();
    assert!(s.alloc(f, SZ_1K, SMP_CACHE_BYTES).is_none());
    rgn(s.res(0), 0, 0);
    assert_eq!(s.mb.reserved.total_size(), 0);
}

/// Larger than all memory: no allocation, nothing reserved.
fn alloc_too_large_generic_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    assert!(s.alloc(f, MEM_SIZE + SZ_2, SMP_CACHE_BYTES).is_none());
    rgn(s.res(0), 0, 0);
    assert_eq!(s.mb.reserved.total_size(), 0);
}

/// A small allocation lands at the start of memory.
fn alloc_bottom_up_simple_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let ptr = s.alloc(f, SZ_2, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, SZ_2, f);
    rgn(s.res(0), s.start(), SZ_2);
    totals(s, 1, SZ_2);
}

/// Next to a reservation at a misaligned address: two entries, the new one aligned.
fn alloc_bottom_up_disjoint_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r2_size, alignment) = (SZ_16, SMP_CACHE_BYTES * 2);
    let r1 = (s.start() + SZ_2, SZ_2);
    let expected_start = s.start() + alignment;
    s.reserve(r1.0, r1.1);
    let ptr = s.alloc(f, r2_size, alignment).unwrap();
    s.assert_mem_content(ptr, r2_size, f);
    rgn(s.res(0), r1.0, r1.1);
    rgn(s.res(1), expected_start, r2_size);
    totals(s, 2, r1.1 + r2_size);
}

/// Room at the start, before a kernel reservation (first fit): the two merge.
fn alloc_bottom_up_before_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let (r1_size, r2_size) = (SZ_512, SZ_128);
    s.reserve_kern(s.start() + r1_size, r2_size);
    let ptr = s.alloc(f, r1_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r1_size, f);
    rgn(s.res(0), s.start(), r1_size + r2_size);
    totals(s, 1, r1_size + r2_size);
}

/// No room before the reservation (second fit): allocated after it, merged.
fn alloc_bottom_up_after_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r2_size = SZ_512;
    let r1 = (s.start() + SMP_CACHE_BYTES, SZ_64);
    s.reserve_kern(r1.0, r1.1);
    let ptr = s.alloc(f, r2_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r2_size, f);
    rgn(s.res(0), r1.0, r1.1 + r2_size);
    totals(s, 1, r1.1 + r2_size);
}

/// A gap too small after the first reservation: allocated after the second, merged.
fn alloc_bottom_up_second_fit_check(s: &mut Sim, f: Flags) {
    s.setup_memblock();
    let r3_size = SZ_1K;
    let r1 = (s.start(), SZ_512);
    let r2 = (r1.0 + r1.1 + SZ_512, SZ_256);
    s.reserve_kern(r1.0, r1.1);
    s.reserve_kern(r2.0, r2.1);
    let ptr = s.alloc(f, r3_size, SMP_CACHE_BYTES).unwrap();
    s.assert_mem_content(ptr, r3_size, f);
    rgn(s.res(1), r2.0, r2.1 + r3_size);
    totals(s, 2, r1.1 + r2.1 + r3_size);
}

/// One test per upstream case (and direction), each run for memblock_alloc and
/// memblock_alloc_raw on a fresh simulated machine.
macro_rules! tests {
    ($($test:ident => $case:ident($bottom_up:expr);)*) => {$(
        #[test]
        fn $test() {
            for f in [Flags::None, Flags::Raw] {
                let mut s = Sim::with_direction($bottom_up);
                $case(&mut s, f);
            }
        }
    )*};
}

tests! {
    alloc_top_down_simple => alloc_top_down_simple_check(false);
    alloc_top_down_disjoint => alloc_top_down_disjoint_check(false);
    alloc_top_down_before => alloc_top_down_before_check(false);
    alloc_top_down_after => alloc_top_down_after_check(false);
    alloc_top_down_second_fit => alloc_top_down_second_fit_check(false);
    alloc_bottom_up_simple => alloc_bottom_up_simple_check(true);
    alloc_bottom_up_disjoint => alloc_bottom_up_disjoint_check(true);
    alloc_bottom_up_before => alloc_bottom_up_before_check(true);
    alloc_bottom_up_after => alloc_bottom_up_after_check(true);
    alloc_bottom_up_second_fit => alloc_bottom_up_second_fit_check(true);
    alloc_in_between_top_down => alloc_in_between_generic_check(false);
    alloc_in_between_bottom_up => alloc_in_between_generic_check(true);
    alloc_small_gaps_top_down => alloc_small_gaps_generic_check(false);
    alloc_small_gaps_bottom_up => alloc_small_gaps_generic_check(true);
    alloc_all_reserved_top_down => alloc_all_reserved_generic_check(false);
    alloc_all_reserved_bottom_up => alloc_all_reserved_generic_check(true);
    alloc_no_space_top_down => alloc_no_space_generic_check(false);
    alloc_no_space_bottom_up => alloc_no_space_generic_check(true);
    alloc_limited_space_top_down => alloc_limited_space_generic_check(false);
    alloc_limited_space_bottom_up => alloc_limited_space_generic_check(true);
    alloc_no_memory_top_down => alloc_no_memory_generic_check(false);
    alloc_no_memory_bottom_up => alloc_no_memory_generic_check(true);
    alloc_too_large_top_down => alloc_too_large_generic_check(false);
    alloc_too_large_bottom_up => alloc_too_large_generic_check(true);
}
