//! Linux's tools/testing/memblock/tests/alloc_exact_nid_api.c (6.18, with
//! `MEMBLOCK_RSRV_KERN`), ported with its expected values: memblock_alloc_exact_nid_raw on
//! the range cases of alloc_nid_api.c (`memblock_alloc_exact_nid_range_checks`, shared in
//! `memblock_sim::nid_range`) and on the NUMA cases, where it must not fall back to another
//! node. Generic cases run in both directions.
mod memblock_sim;

use kmem::memblock::{MemblockFlags, MemblockRegion, NUMA_NO_NODE};
use memblock_sim::nid_range::*;
use memblock_sim::*;

/// alloc_exact_nid_api.c `node_fractions`.
const NODE_FRACTIONS: [u64; NUMA_NODES] = [2500, 625, 1250, 1250, 625, 625, 2500, 625];

fn numa(s: &mut Sim) {
    s.setup_numa_memblock(&NODE_FRACTIONS);
}

fn node(s: &Sim, nid: usize) -> MemblockRegion {
    s.mem_rgn(nid)
}

/// `memblock_alloc_exact_nid_raw` on node `nid` in `[min, max)`: the memory is not zeroed.
#[track_caller]
fn exact_ok(s: &mut Sim, size: u64, min: u64, max: u64, nid: i32) {
    let ptr = s.alloc_nid(Flags::Exact, size, SMP_CACHE_BYTES, min, max, nid);
    s.assert_not_zeroed(ptr.expect("allocation failed"), size);
}

#[track_caller]
fn exact_none(s: &mut Sim, size: u64, min: u64, max: u64, nid: i32) {
    let got = s.alloc_nid(Flags::Exact, size, SMP_CACHE_BYTES, min, max, nid);
    assert!(got.is_none(), "allocated {got:?}");
}

fn alloc_exact_nid_top_down_numa_simple_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 3);
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_4;
    exact_ok(s, size, s.start(), s.end(), 3);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_exact_nid_top_down_numa_part_reserved_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 4);
    assert!(SZ_8 <= req.size);
    let r1 = (req.base.as_u64(), req.size / SZ_2);
    let size = r1.1 / SZ_4;
    s.reserve(r1.0, r1.1);
    exact_ok(s, size, s.start(), s.end(), 4);
    rgn(s.res(1), req.end() - size, size);
    totals(s, 2, size + r1.1);
}

fn alloc_exact_nid_top_down_numa_split_range_low_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 2);
    let size = SZ_512;
    let min = req.end() - SZ_256;
    exact_ok(s, size, min, min + size, 2);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_exact_nid_top_down_numa_no_overlap_split_check(s: &mut Sim) {
    numa(s);
    let (req, node2) = (node(s, 2), node(s, 6));
    let size = SZ_512;
    let min = node2.base.as_u64() - SZ_256;
    exact_ok(s, size, min, min + size, 2);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_exact_nid_top_down_numa_no_overlap_low_check(s: &mut Sim) {
    numa(s);
    let (req, min_node, max_node) = (node(s, 0), node(s, 2), node(s, 5));
    let size = SZ_64;
    exact_ok(s, size, min_node.base.as_u64(), max_node.end(), 0);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_exact_nid_bottom_up_numa_simple_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 3);
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_4;
    exact_ok(s, size, s.start(), s.end(), 3);
    rgn(s.res(0), req.base.as_u64(), size);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size);
}

fn alloc_exact_nid_bottom_up_numa_part_reserved_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 4);
    assert!(SZ_8 <= req.size);
    let r1 = (req.base.as_u64(), req.size / SZ_2);
    let size = r1.1 / SZ_4;
    let kern = MemblockFlags::MEMBLOCK_RSRV_KERN;
    assert_eq!(s.mb.reserve_node(p(r1.0), r1.1, 4, kern), Ok(()));
    exact_ok(s, size, s.start(), s.end(), 4);
    rgn(s.res(0), req.base.as_u64(), size + r1.1);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size + r1.1);
}

fn alloc_exact_nid_bottom_up_numa_split_range_low_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 2);
    let size = SZ_512;
    let min = req.end() - SZ_256;
    exact_ok(s, size, min, min + size, 2);
    rgn(s.res(0), req.base.as_u64(), size);
    totals(s, 1, size);
}

fn alloc_exact_nid_bottom_up_numa_no_overlap_split_check(s: &mut Sim) {
    numa(s);
    let (req, node2) = (node(s, 2), node(s, 6));
    let size = SZ_512;
    let min = node2.base.as_u64() - SZ_256;
    exact_ok(s, size, min, min + size, 2);
    rgn(s.res(0), req.base.as_u64(), size);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size);
}

fn alloc_exact_nid_bottom_up_numa_no_overlap_low_check(s: &mut Sim) {
    numa(s);
    let (req, min_node, max_node) = (node(s, 0), node(s, 2), node(s, 5));
    let size = SZ_64;
    exact_ok(s, size, min_node.base.as_u64(), max_node.end(), 0);
    rgn(s.res(0), req.base.as_u64(), size);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size);
}

fn alloc_exact_nid_numa_small_node_generic_check(s: &mut Sim) {
    numa(s);
    let size = SZ_2 * node(s, 1).size;
    exact_none(s, size, s.start(), s.end(), 1);
}

fn alloc_exact_nid_numa_node_reserved_generic_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 2);
    s.reserve(req.base.as_u64(), req.size);
    exact_none(s, req.size, s.start(), s.end(), 2);
}

fn alloc_exact_nid_numa_part_reserved_fail_generic_check(s: &mut Sim) {
    numa(s);
    let req = node(s, 4);
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_2;
    s.reserve(req.base.as_u64() + size / SZ_2, size);
    exact_none(s, size, s.start(), s.end(), 4);
}

fn alloc_exact_nid_numa_split_range_high_generic_check(s: &mut Sim) {
    numa(s);
    let min = node(s, 3).base.as_u64() - SZ_256;
    exact_none(s, SZ_512, min, min + SZ_512, 3);
}

fn alloc_exact_nid_numa_no_overlap_high_generic_check(s: &mut Sim) {
    numa(s);
    let (min_node, max_node) = (node(s, 2), node(s, 5));
    exact_none(s, SZ_64, min_node.base.as_u64(), max_node.end(), 7);
}

fn alloc_exact_nid_numa_large_region_generic_check(s: &mut Sim) {
    numa(s);
    exact_none(s, MEM_SIZE / SZ_2, s.start(), s.end(), 3);
}

/// The requested node fills the gap between two plain reservations: the new region stays
/// apart, as it carries node 6 and `MEMBLOCK_RSRV_KERN`.
fn alloc_exact_nid_numa_reserved_full_merge_generic_check(s: &mut Sim) {
    numa(s);
    let (req, next) = (node(s, 6), node(s, 7));
    let size = req.size;
    let r1 = (next.base.as_u64(), SZ_128);
    let r2 = (r1.0 - (size + SZ_128), SZ_128);
    s.reserve(r1.0, r1.1);
    s.reserve(r2.0, r2.1);
    exact_ok(s, size, r2.0 + r2.1, r1.0, 6);
    rgn(s.res(0), r2.0, r2.1);
    rgn(s.res(2), r1.0, r1.1);
    rgn(s.res(1), req.base.as_u64(), size);
    assert_eq!(s.res(1).flags, MemblockFlags::MEMBLOCK_RSRV_KERN);
    assert_eq!(s.res(1).node(), 6);
    totals(s, 3, r1.1 + r2.1 + size);
}

fn alloc_exact_nid_numa_split_all_reserved_generic_check(s: &mut Sim) {
    numa(s);
    let next = node(s, 7);
    let size = SZ_256;
    let r2 = (
        next.base.as_u64() + SZ_128,
        s.end() - (next.base.as_u64() + SZ_128),
    );
    let r1 = (s.start(), MEM_SIZE - (r2.1 + size));
    s.reserve(r1.0, r1.1);
    s.reserve(r2.0, r2.1);
    exact_none(s, size, r1.0 + r1.1, r2.0, NUMA_NO_NODE);
}

macro_rules! tests {
    ($($test:ident => $case:path, $bottom_up:expr;)*) => {$(
        #[test]
        fn $test() {
            $case(&mut Sim::with_direction($bottom_up));
        }
    )*};
}

/// The range cases with `memblock_alloc_exact_nid_raw`.
macro_rules! range_tests {
    ($($test:ident => $case:path, $bottom_up:expr;)*) => {$(
        #[test]
        fn $test() {
            $case(&mut Sim::with_direction($bottom_up), Flags::Exact);
        }
    )*};
}

range_tests! {
    exact_nid_top_down_simple => alloc_nid_top_down_simple_check, false;
    exact_nid_bottom_up_simple => alloc_nid_bottom_up_simple_check, true;
    exact_nid_top_down_end_misaligned => alloc_nid_top_down_end_misaligned_check, false;
    exact_nid_bottom_up_start_misaligned => alloc_nid_bottom_up_start_misaligned_check, true;
    exact_nid_top_down_narrow_range => alloc_nid_top_down_narrow_range_check, false;
    exact_nid_bottom_up_narrow_range => alloc_nid_bottom_up_narrow_range_check, true;
    exact_nid_top_down_reserved_with_space => alloc_nid_top_down_reserved_with_space_check, false;
    exact_nid_bottom_up_reserved_with_space => alloc_nid_bottom_up_reserved_with_space_check, true;
    exact_nid_top_down_reserved_no_space => alloc_nid_top_down_reserved_no_space_check, false;
    exact_nid_bottom_up_reserved_no_space => alloc_nid_bottom_up_reserved_no_space_check, true;
    exact_nid_top_down_cap_max => alloc_nid_top_down_cap_max_check, false;
    exact_nid_bottom_up_cap_max => alloc_nid_bottom_up_cap_max_check, true;
    exact_nid_top_down_cap_min => alloc_nid_top_down_cap_min_check, false;
    exact_nid_bottom_up_cap_min => alloc_nid_bottom_up_cap_min_check, true;
    exact_nid_min_reserved_top_down => alloc_nid_min_reserved_generic_check, false;
    exact_nid_min_reserved_bottom_up => alloc_nid_min_reserved_generic_check, true;
    exact_nid_max_reserved_top_down => alloc_nid_max_reserved_generic_check, false;
    exact_nid_max_reserved_bottom_up => alloc_nid_max_reserved_generic_check, true;
    exact_nid_exact_address_top_down => alloc_nid_exact_address_generic_check, false;
    exact_nid_exact_address_bottom_up => alloc_nid_exact_address_generic_check, true;
    exact_nid_reserved_full_merge_top_down => alloc_nid_reserved_full_merge_generic_check, false;
    exact_nid_reserved_full_merge_bottom_up => alloc_nid_reserved_full_merge_generic_check, true;
    exact_nid_reserved_all_top_down => alloc_nid_reserved_all_generic_check, false;
    exact_nid_reserved_all_bottom_up => alloc_nid_reserved_all_generic_check, true;
    exact_nid_low_max_top_down => alloc_nid_low_max_generic_check, false;
    exact_nid_low_max_bottom_up => alloc_nid_low_max_generic_check, true;
}

tests! {
    alloc_exact_nid_top_down_numa_simple => alloc_exact_nid_top_down_numa_simple_check, false;
    alloc_exact_nid_bottom_up_numa_simple => alloc_exact_nid_bottom_up_numa_simple_check, true;
    alloc_exact_nid_top_down_numa_part_reserved =>
        alloc_exact_nid_top_down_numa_part_reserved_check, false;
    alloc_exact_nid_bottom_up_numa_part_reserved =>
        alloc_exact_nid_bottom_up_numa_part_reserved_check, true;
    alloc_exact_nid_top_down_numa_split_range_low =>
        alloc_exact_nid_top_down_numa_split_range_low_check, false;
    alloc_exact_nid_bottom_up_numa_split_range_low =>
        alloc_exact_nid_bottom_up_numa_split_range_low_check, true;
    alloc_exact_nid_top_down_numa_no_overlap_split =>
        alloc_exact_nid_top_down_numa_no_overlap_split_check, false;
    alloc_exact_nid_bottom_up_numa_no_overlap_split =>
        alloc_exact_nid_bottom_up_numa_no_overlap_split_check, true;
    alloc_exact_nid_top_down_numa_no_overlap_low =>
        alloc_exact_nid_top_down_numa_no_overlap_low_check, false;
    alloc_exact_nid_bottom_up_numa_no_overlap_low =>
        alloc_exact_nid_bottom_up_numa_no_overlap_low_check, true;
    alloc_exact_nid_numa_small_node_top_down => alloc_exact_nid_numa_small_node_generic_check, false;
    alloc_exact_nid_numa_small_node_bottom_up => alloc_exact_nid_numa_small_node_generic_check, true;
    alloc_exact_nid_numa_node_reserved_top_down =>
        alloc_exact_nid_numa_node_reserved_generic_check, false;
    alloc_exact_nid_numa_node_reserved_bottom_up =>
        alloc_exact_nid_numa_node_reserved_generic_check, true;
    alloc_exact_nid_numa_part_reserved_fail_top_down =>
        alloc_exact_nid_numa_part_reserved_fail_generic_check, false;
    alloc_exact_nid_numa_part_reserved_fail_bottom_up =>
        alloc_exact_nid_numa_part_reserved_fail_generic_check, true;
    alloc_exact_nid_numa_split_range_high_top_down =>
        alloc_exact_nid_numa_split_range_high_generic_check, false;
    alloc_exact_nid_numa_split_range_high_bottom_up =>
        alloc_exact_nid_numa_split_range_high_generic_check, true;
    alloc_exact_nid_numa_no_overlap_high_top_down =>
        alloc_exact_nid_numa_no_overlap_high_generic_check, false;
    alloc_exact_nid_numa_no_overlap_high_bottom_up =>
        alloc_exact_nid_numa_no_overlap_high_generic_check, true;
    alloc_exact_nid_numa_large_region_top_down =>
        alloc_exact_nid_numa_large_region_generic_check, false;
    alloc_exact_nid_numa_large_region_bottom_up =>
        alloc_exact_nid_numa_large_region_generic_check, true;
    alloc_exact_nid_numa_reserved_full_merge_top_down =>
        alloc_exact_nid_numa_reserved_full_merge_generic_check, false;
    alloc_exact_nid_numa_reserved_full_merge_bottom_up =>
        alloc_exact_nid_numa_reserved_full_merge_generic_check, true;
    alloc_exact_nid_numa_split_all_reserved_top_down =>
        alloc_exact_nid_numa_split_all_reserved_generic_check, false;
    alloc_exact_nid_numa_split_all_reserved_bottom_up =>
        alloc_exact_nid_numa_split_all_reserved_generic_check, true;
}

/// `memblock_alloc_exact_nid_range_checks` as upstream runs it: the whole range suite.
#[test]
fn memblock_alloc_exact_nid_range_checks() {
    assert_eq!(range_checks(Flags::Exact), 26);
}
