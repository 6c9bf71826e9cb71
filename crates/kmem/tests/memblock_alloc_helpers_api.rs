//! Linux's tools/testing/memblock/tests/alloc_helpers_api.c (6.18, with
//! `MEMBLOCK_RSRV_KERN`), ported with its expected values: memblock_alloc_from, top-down
//! and bottom-up; the generic cases run in both directions.
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

/// `memblock_alloc_from`.
fn alloc_from(s: &mut Sim, size: u64, align: u64, min_addr: u64) -> Option<kmem::addr::VirtAddr> {
    s.mb.alloc_from(&mut s.mem, size, align, p(min_addr)).ok()
}

/// Above an aligned minimum: a cleared region at the minimum.
fn alloc_from_simple_generic_check(s: &mut Sim) {
    s.setup_memblock();
    let size = SZ_16;
    let min_addr = s.end() - SMP_CACHE_BYTES;
    let ptr = alloc_from(s, size, SMP_CACHE_BYTES, min_addr).unwrap();
    s.assert_zeroed(ptr, size);
    rgn(s.res(0), min_addr, size);
    totals(s, 1, size);
}

/// Above a misaligned minimum: a cleared region at the next aligned address.
fn alloc_from_misaligned_generic_check(s: &mut Sim) {
    s.setup_memblock();
    let size = SZ_32;
    let min_addr = s.end() - (SMP_CACHE_BYTES * 2 - 1);
    let ptr = alloc_from(s, size, SMP_CACHE_BYTES, min_addr).unwrap();
    s.assert_zeroed(ptr, size);
    rgn(s.res(0), s.end() - SMP_CACHE_BYTES, size);
    totals(s, 1, size);
}

/// A minimum too close to the end: memory is granted below it.
fn alloc_from_top_down_high_addr_check(s: &mut Sim) {
    s.setup_memblock();
    let size = SZ_32;
    let min_addr = s.end() - SZ_16;
    assert!(alloc_from(s, size, SMP_CACHE_BYTES, min_addr).is_some());
    rgn(s.res(0), s.end() - SMP_CACHE_BYTES, size);
    totals(s, 1, size);
}

/// No space above the minimum: allocated next to the reservation there, merged.
fn alloc_from_top_down_no_space_above_check(s: &mut Sim) {
    s.setup_memblock();
    let (r1_size, r2_size) = (SZ_64, SZ_2);
    let min_addr = s.end() - SMP_CACHE_BYTES * 2;
    s.reserve_kern(min_addr, r2_size);
    assert!(alloc_from(s, r1_size, SMP_CACHE_BYTES, min_addr).is_some());
    rgn(s.res(0), min_addr - r1_size, r1_size + r2_size);
    totals(s, 1, r1_size + r2_size);
}

/// A minimum below the start of memory, the rest reserved: allocated at the start, merged.
fn alloc_from_top_down_min_addr_cap_check(s: &mut Sim) {
    s.setup_memblock();
    let r1_size = SZ_64;
    let start = s.start();
    let min_addr = start - SMP_CACHE_BYTES * 3;
    s.reserve_kern(start + r1_size, MEM_SIZE - r1_size);
    assert!(alloc_from(s, r1_size, SMP_CACHE_BYTES, min_addr).is_some());
    rgn(s.res(0), start, MEM_SIZE);
    totals(s, 1, MEM_SIZE);
}

/// A minimum too close to the end: allocated at the start of memory.
fn alloc_from_bottom_up_high_addr_check(s: &mut Sim) {
    s.setup_memblock();
    let size = SZ_32;
    let min_addr = s.end() - SZ_8;
    assert!(alloc_from(s, size, SMP_CACHE_BYTES, min_addr).is_some());
    rgn(s.res(0), s.start(), size);
    totals(s, 1, size);
}

/// No space above the minimum: allocated at the start of memory.
fn alloc_from_bottom_up_no_space_above_check(s: &mut Sim) {
    s.setup_memblock();
    let r1_size = SZ_64;
    let min_addr = s.start() + SZ_128;
    let r2_size = s.end() - min_addr;
    s.reserve(min_addr - SMP_CACHE_BYTES, r2_size);
    assert!(alloc_from(s, r1_size, SMP_CACHE_BYTES, min_addr).is_some());
    rgn(s.res(0), s.start(), r1_size);
    totals(s, 2, r1_size + r2_size);
}

/// A minimum below the start of memory: allocated at the start.
fn alloc_from_bottom_up_min_addr_cap_check(s: &mut Sim) {
    s.setup_memblock();
    let r1_size = SZ_64;
    let start = s.start();
    let min_addr = start - SMP_CACHE_BYTES * 3;
    assert!(alloc_from(s, r1_size, SMP_CACHE_BYTES, min_addr).is_some());
    rgn(s.res(0), start, r1_size);
    totals(s, 1, r1_size);
}

macro_rules! tests {
    ($($test:ident => $case:ident($bottom_up:expr);)*) => {$(
        #[test]
        fn $test() {
            let mut s = Sim::with_direction($bottom_up);
            $case(&mut s);
        }
    )*};
}

tests! {
    alloc_from_simple_top_down => alloc_from_simple_generic_check(false);
    alloc_from_simple_bottom_up => alloc_from_simple_generic_check(true);
    alloc_from_misaligned_top_down => alloc_from_misaligned_generic_check(false);
    alloc_from_misaligned_bottom_up => alloc_from_misaligned_generic_check(true);
    alloc_from_top_down_high_addr => alloc_from_top_down_high_addr_check(false);
    alloc_from_bottom_up_high_addr => alloc_from_bottom_up_high_addr_check(true);
    alloc_from_top_down_no_space_above => alloc_from_top_down_no_space_above_check(false);
    alloc_from_bottom_up_no_space_above => alloc_from_bottom_up_no_space_above_check(true);
    alloc_from_top_down_min_addr_cap => alloc_from_top_down_min_addr_cap_check(false);
    alloc_from_bottom_up_min_addr_cap => alloc_from_bottom_up_min_addr_cap_check(true);
}
