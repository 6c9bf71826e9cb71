//! Linux's tools/testing/memblock/tests/alloc_nid_api.c (6.18, with `MEMBLOCK_RSRV_KERN`),
//! ported with its expected values: memblock_alloc_try_nid and memblock_alloc_try_nid_raw
//! (every case runs for both), the range cases (`memblock_sim::nid_range`, shared with the
//! exact-nid suite) and the NUMA cases on common.c's eight-node layout. Generic cases run
//! in both directions (`<case>_top_down`, `<case>_bottom_up`).
mod memblock_sim;

use kmem::memblock::{MemblockFlags, MemblockRegion, NUMA_NO_NODE};
use memblock_sim::nid_range::*;
use memblock_sim::*;

/// The fraction of `MEM_SIZE` in each node, in 1/10000 (alloc_nid_api.c `node_fractions`).
const NODE_FRACTIONS: [u64; NUMA_NODES] = [2500, 625, 1250, 1250, 625, 625, 2500, 625];

fn numa(s: &mut Sim) {
    s.setup_numa_memblock(&NODE_FRACTIONS);
}

/// Allocates on node `nid` in `[min, max)`, checks the memory's content.
#[track_caller]
fn alloc_ok(s: &mut Sim, f: Flags, size: u64, min: u64, max: u64, nid: i32) {
    let ptr = s.alloc_nid(f, size, SMP_CACHE_BYTES, min, max, nid);
    s.assert_mem_content(ptr.expect("allocation failed"), size, f);
}

fn node(s: &Sim, nid: usize) -> MemblockRegion {
    s.mem_rgn(nid)
}

fn alloc_nid_top_down_numa_simple_check(s: &mut Sim, f: Flags) {
    numa(s);
    let req = node(s, 3);
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_4;
    alloc_ok(s, f, size, s.start(), s.end(), 3);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_nid_top_down_numa_small_node_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 1), node(s, 6));
    let size = SZ_2 * req.size;
    alloc_ok(s, f, size, s.start(), s.end(), 1);
    rgn(s.res(0), exp.end() - size, size);
    assert!(exp.base.as_u64() <= s.res(0).base.as_u64());
    totals(s, 1, size);
}

fn alloc_nid_top_down_numa_node_reserved_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 2), node(s, 6));
    let size = req.size;
    s.reserve(req.base.as_u64(), req.size);
    alloc_ok(s, f, size, s.start(), s.end(), 2);
    rgn(s.res(1), exp.end() - size, size);
    totals(s, 2, size + req.size);
}

fn alloc_nid_top_down_numa_part_reserved_check(s: &mut Sim, f: Flags) {
    numa(s);
    let req = node(s, 4);
    assert!(SZ_8 <= req.size);
    let r1 = (req.base.as_u64(), req.size / SZ_2);
    let size = r1.1 / SZ_4;
    s.reserve(r1.0, r1.1);
    alloc_ok(s, f, size, s.start(), s.end(), 4);
    rgn(s.res(1), req.end() - size, size);
    totals(s, 2, size + r1.1);
}

fn alloc_nid_top_down_numa_part_reserved_fallback_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 4), node(s, NUMA_NODES - 1));
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_2;
    let r1 = (req.base.as_u64() + size / SZ_2, size);
    s.reserve(r1.0, r1.1);
    alloc_ok(s, f, size, s.start(), s.end(), 4);
    rgn(s.res(1), exp.end() - size, size);
    totals(s, 2, size + r1.1);
}

fn alloc_nid_top_down_numa_split_range_low_check(s: &mut Sim, f: Flags) {
    numa(s);
    let req = node(s, 2);
    let size = SZ_512;
    let min = req.end() - SZ_256;
    alloc_ok(s, f, size, min, min + size, 2);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_nid_top_down_numa_split_range_high_check(s: &mut Sim, f: Flags) {
    numa(s);
    let exp = node(s, 2);
    let size = SZ_512;
    let min = exp.end() - SZ_256;
    alloc_ok(s, f, size, min, min + size, 3);
    rgn(s.res(0), exp.end() - size, size);
    totals(s, 1, size);
}

fn alloc_nid_top_down_numa_no_overlap_split_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, node2) = (node(s, 2), node(s, 6));
    let size = SZ_512;
    let min = node2.base.as_u64() - SZ_256;
    alloc_ok(s, f, size, min, min + size, 2);
    rgn(s.res(0), req.end() - size, size);
    totals(s, 1, size);
}

fn alloc_nid_top_down_numa_no_overlap_low_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (min_node, max_node) = (node(s, 2), node(s, 5));
    let size = SZ_64;
    let (min, max) = (min_node.base.as_u64(), max_node.end());
    alloc_ok(s, f, size, min, max, 0);
    rgn(s.res(0), max - size, size);
    totals(s, 1, size);
}

fn alloc_nid_top_down_numa_no_overlap_high_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (min_node, max_node) = (node(s, 2), node(s, 5));
    let size = SZ_64;
    let (min, max) = (min_node.base.as_u64(), max_node.end());
    alloc_ok(s, f, size, min, max, 7);
    rgn(s.res(0), max - size, size);
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_simple_check(s: &mut Sim, f: Flags) {
    numa(s);
    let req = node(s, 3);
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_4;
    alloc_ok(s, f, size, s.start(), s.end(), 3);
    rgn(s.res(0), req.base.as_u64(), size);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_small_node_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 1), node(s, 0));
    let size = SZ_2 * req.size;
    alloc_ok(s, f, size, s.start(), s.end(), 1);
    rgn(s.res(0), exp.base.as_u64(), size);
    assert!(s.res(0).end() <= exp.end());
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_node_reserved_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 2), node(s, 0));
    let size = req.size;
    s.reserve(req.base.as_u64(), req.size);
    alloc_ok(s, f, size, s.start(), s.end(), 2);
    rgn(s.res(0), exp.base.as_u64(), size);
    totals(s, 2, size + req.size);
}

fn alloc_nid_bottom_up_numa_part_reserved_check(s: &mut Sim, f: Flags) {
    numa(s);
    let req = node(s, 4);
    assert!(SZ_8 <= req.size);
    let r1 = (req.base.as_u64(), req.size / SZ_2);
    let size = r1.1 / SZ_4;
    let kern = MemblockFlags::MEMBLOCK_RSRV_KERN;
    s.mb.reserve_node(p(r1.0), r1.1, 4, kern).unwrap();
    alloc_ok(s, f, size, s.start(), s.end(), 4);
    rgn(s.res(0), req.base.as_u64(), size + r1.1);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size + r1.1);
}

fn alloc_nid_bottom_up_numa_part_reserved_fallback_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 4), node(s, 0));
    assert!(SZ_4 <= req.size);
    let size = req.size / SZ_2;
    let r1 = (req.base.as_u64() + size / SZ_2, size);
    s.reserve(r1.0, r1.1);
    alloc_ok(s, f, size, s.start(), s.end(), 4);
    rgn(s.res(0), exp.base.as_u64(), size);
    totals(s, 2, size + r1.1);
}

fn alloc_nid_bottom_up_numa_split_range_low_check(s: &mut Sim, f: Flags) {
    numa(s);
    let req = node(s, 2);
    let size = SZ_512;
    let min = req.end() - SZ_256;
    alloc_ok(s, f, size, min, min + size, 2);
    rgn(s.res(0), req.base.as_u64(), size);
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_split_range_high_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, exp) = (node(s, 3), node(s, 0));
    let size = SZ_512;
    let min = req.base.as_u64() - SZ_256;
    alloc_ok(s, f, size, min, min + size, 3);
    rgn(s.res(0), exp.base.as_u64(), size);
    assert!(s.res(0).end() <= req.end());
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_no_overlap_split_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, node2) = (node(s, 2), node(s, 6));
    let size = SZ_512;
    let min = node2.base.as_u64() - SZ_256;
    alloc_ok(s, f, size, min, min + size, 2);
    rgn(s.res(0), req.base.as_u64(), size);
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_no_overlap_low_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (min_node, max_node) = (node(s, 2), node(s, 5));
    let size = SZ_64;
    let (min, max) = (min_node.base.as_u64(), max_node.end());
    alloc_ok(s, f, size, min, max, 0);
    rgn(s.res(0), min, size);
    assert!(s.res(0).end() <= min_node.end());
    totals(s, 1, size);
}

fn alloc_nid_bottom_up_numa_no_overlap_high_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (min_node, max_node) = (node(s, 2), node(s, 5));
    let size = SZ_64;
    let (min, max) = (min_node.base.as_u64(), max_node.end());
    alloc_ok(s, f, size, min, max, 7);
    rgn(s.res(0), min, size);
    totals(s, 1, size);
}

fn alloc_nid_numa_large_region_generic_check(s: &mut Sim, f: Flags) {
    numa(s);
    let size = MEM_SIZE / SZ_2;
    let (min, max) = (s.start(), s.end());
    assert!(s.alloc_nid(f, size, SMP_CACHE_BYTES, min, max, 3).is_none());
}

fn alloc_nid_numa_reserved_full_merge_generic_check(s: &mut Sim, f: Flags) {
    numa(s);
    let (req, next) = (node(s, 6), node(s, 7));
    let size = req.size;
    let r1 = (next.base.as_u64(), SZ_128);
    let r2 = (r1.0 - (size + SZ_128), SZ_128);
    let total = r1.1 + r2.1 + size;
    let kern = MemblockFlags::MEMBLOCK_RSRV_KERN;
    s.mb.reserve_node(p(r1.0), r1.1, 6, kern).unwrap();
    s.mb.reserve_node(p(r2.0), r2.1, 6, kern).unwrap();
    alloc_ok(s, f, size, r2.0 + r2.1, r1.0, 6);
    rgn(s.res(0), r2.0, total);
    assert!(s.res(0).base <= req.base && req.end() <= s.res(0).end());
    totals(s, 1, total);
}

fn alloc_nid_numa_split_all_reserved_generic_check(s: &mut Sim, f: Flags) {
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
    let (min, max) = (r1.0 + r1.1, r2.0);
    let got = s.alloc_nid(f, size, SMP_CACHE_BYTES, min, max, NUMA_NO_NODE);
    assert!(got.is_none());
}

/// memblock_alloc_node sets the requested node on the new reserved region.
fn alloc_node_on_correct_nid(s: &mut Sim, _f: Flags) {
    numa(s);
    let size = SZ_512;
    assert!(s
        .mb
        .alloc_node(&mut s.mem, size, SMP_CACHE_BYTES, 2)
        .is_ok());
    assert_eq!(node(s, 2).nid, 2);
    assert_eq!(s.res(0).nid, 2);
}

/// One test per upstream case (and direction), each run for memblock_alloc_try_nid and
/// memblock_alloc_try_nid_raw on a fresh simulated machine.
macro_rules! tests {
    ($($test:ident => $case:path, $bottom_up:expr;)*) => {$(
        #[test]
        fn $test() {
            for f in [Flags::None, Flags::Raw] {
                $case(&mut Sim::with_direction($bottom_up), f);
            }
        }
    )*};
}

tests! {
    alloc_nid_top_down_simple => alloc_nid_top_down_simple_check, false;
    alloc_nid_bottom_up_simple => alloc_nid_bottom_up_simple_check, true;
    alloc_nid_top_down_end_misaligned => alloc_nid_top_down_end_misaligned_check, false;
    alloc_nid_bottom_up_start_misaligned => alloc_nid_bottom_up_start_misaligned_check, true;
    alloc_nid_top_down_narrow_range => alloc_nid_top_down_narrow_range_check, false;
    alloc_nid_bottom_up_narrow_range => alloc_nid_bottom_up_narrow_range_check, true;
    alloc_nid_top_down_reserved_with_space => alloc_nid_top_down_reserved_with_space_check, false;
    alloc_nid_bottom_up_reserved_with_space => alloc_nid_bottom_up_reserved_with_space_check, true;
    alloc_nid_top_down_reserved_no_space => alloc_nid_top_down_reserved_no_space_check, false;
    alloc_nid_bottom_up_reserved_no_space => alloc_nid_bottom_up_reserved_no_space_check, true;
    alloc_nid_top_down_cap_max => alloc_nid_top_down_cap_max_check, false;
    alloc_nid_bottom_up_cap_max => alloc_nid_bottom_up_cap_max_check, true;
    alloc_nid_top_down_cap_min => alloc_nid_top_down_cap_min_check, false;
    alloc_nid_bottom_up_cap_min => alloc_nid_bottom_up_cap_min_check, true;
    alloc_nid_min_reserved_top_down => alloc_nid_min_reserved_generic_check, false;
    alloc_nid_min_reserved_bottom_up => alloc_nid_min_reserved_generic_check, true;
    alloc_nid_max_reserved_top_down => alloc_nid_max_reserved_generic_check, false;
    alloc_nid_max_reserved_bottom_up => alloc_nid_max_reserved_generic_check, true;
    alloc_nid_exact_address_top_down => alloc_nid_exact_address_generic_check, false;
    alloc_nid_exact_address_bottom_up => alloc_nid_exact_address_generic_check, true;
    alloc_nid_reserved_full_merge_top_down => alloc_nid_reserved_full_merge_generic_check, false;
    alloc_nid_reserved_full_merge_bottom_up => alloc_nid_reserved_full_merge_generic_check, true;
    alloc_nid_reserved_all_top_down => alloc_nid_reserved_all_generic_check, false;
    alloc_nid_reserved_all_bottom_up => alloc_nid_reserved_all_generic_check, true;
    alloc_nid_low_max_top_down => alloc_nid_low_max_generic_check, false;
    alloc_nid_low_max_bottom_up => alloc_nid_low_max_generic_check, true;
}

tests! {
    alloc_nid_top_down_numa_simple => alloc_nid_top_down_numa_simple_check, false;
    alloc_nid_bottom_up_numa_simple => alloc_nid_bottom_up_numa_simple_check, true;
    alloc_nid_top_down_numa_small_node => alloc_nid_top_down_numa_small_node_check, false;
    alloc_nid_bottom_up_numa_small_node => alloc_nid_bottom_up_numa_small_node_check, true;
    alloc_nid_top_down_numa_node_reserved => alloc_nid_top_down_numa_node_reserved_check, false;
    alloc_nid_bottom_up_numa_node_reserved => alloc_nid_bottom_up_numa_node_reserved_check, true;
    alloc_nid_top_down_numa_part_reserved => alloc_nid_top_down_numa_part_reserved_check, false;
    alloc_nid_bottom_up_numa_part_reserved => alloc_nid_bottom_up_numa_part_reserved_check, true;
    alloc_nid_top_down_numa_part_reserved_fallback =>
        alloc_nid_top_down_numa_part_reserved_fallback_check, false;
    alloc_nid_bottom_up_numa_part_reserved_fallback =>
        alloc_nid_bottom_up_numa_part_reserved_fallback_check, true;
    alloc_nid_top_down_numa_split_range_low => alloc_nid_top_down_numa_split_range_low_check, false;
    alloc_nid_bottom_up_numa_split_range_low => alloc_nid_bottom_up_numa_split_range_low_check, true;
    alloc_nid_top_down_numa_split_range_high =>
        alloc_nid_top_down_numa_split_range_high_check, false;
    alloc_nid_bottom_up_numa_split_range_high =>
        alloc_nid_bottom_up_numa_split_range_high_check, true;
    alloc_nid_top_down_numa_no_overlap_split =>
        alloc_nid_top_down_numa_no_overlap_split_check, false;
    alloc_nid_bottom_up_numa_no_overlap_split =>
        alloc_nid_bottom_up_numa_no_overlap_split_check, true;
    alloc_nid_top_down_numa_no_overlap_low => alloc_nid_top_down_numa_no_overlap_low_check, false;
    alloc_nid_bottom_up_numa_no_overlap_low => alloc_nid_bottom_up_numa_no_overlap_low_check, true;
    alloc_nid_top_down_numa_no_overlap_high =>
        alloc_nid_top_down_numa_no_overlap_high_check, false;
    alloc_nid_bottom_up_numa_no_overlap_high =>
        alloc_nid_bottom_up_numa_no_overlap_high_check, true;
    alloc_nid_numa_large_region_top_down => alloc_nid_numa_large_region_generic_check, false;
    alloc_nid_numa_large_region_bottom_up => alloc_nid_numa_large_region_generic_check, true;
    alloc_nid_numa_reserved_full_merge_top_down =>
        alloc_nid_numa_reserved_full_merge_generic_check, false;
    alloc_nid_numa_reserved_full_merge_bottom_up =>
        alloc_nid_numa_reserved_full_merge_generic_check, true;
    alloc_nid_numa_split_all_reserved_top_down =>
        alloc_nid_numa_split_all_reserved_generic_check, false;
    alloc_nid_numa_split_all_reserved_bottom_up =>
        alloc_nid_numa_split_all_reserved_generic_check, true;
    alloc_node_numa_on_correct_nid_top_down => alloc_node_on_correct_nid, false;
    alloc_node_numa_on_correct_nid_bottom_up => alloc_node_on_correct_nid, true;
}

/// The whole range suite in upstream's order, for both functions (26 runs each).
#[test]
fn memblock_alloc_nid_range_checks_count() {
    assert_eq!(range_checks(Flags::None) + range_checks(Flags::Raw), 52);
}

/// `--movable-node`: the nodes are not hotpluggable then, and allocations still succeed.
#[test]
fn alloc_nid_movable_node_layout() {
    let mut s = Sim::new();
    s.movable_node = true;
    s.setup_numa_memblock(&NODE_FRACTIONS);
    assert!(s
        .mb
        .memory
        .regions()
        .iter()
        .all(|r| r.flags == MemblockFlags::MEMBLOCK_NONE));
    alloc_nid_top_down_numa_simple_check(&mut s, Flags::None);
}
