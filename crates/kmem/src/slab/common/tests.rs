//! Unit tests of slab_common: kmalloc indices, names, orders, slub_debug parsing, flags.

extern crate std;
use super::*;
use std::format;
use std::string::String;

/// The fast paths' table gives `kmalloc_index` for every cached size, and 0 outside.
#[test]
fn kmalloc_index_fast_is_kmalloc_index() {
    for size in 1..=KMALLOC_MAX_CACHE_SIZE {
        assert_eq!(kmalloc_index_fast(size), kmalloc_index(size), "size {size}");
    }
    for size in [0, KMALLOC_MAX_CACHE_SIZE + 1, usize::MAX] {
        assert_eq!(kmalloc_index_fast(size), 0, "size {size}");
    }
}

#[test]
fn kmalloc_index_matches_linux() {
    assert_eq!(kmalloc_index(0), 0);
    assert_eq!(kmalloc_index(1), 3);
    assert_eq!(kmalloc_index(8), 3);
    assert_eq!(kmalloc_index(9), 4);
    assert_eq!(kmalloc_index(64), 6);
    assert_eq!(kmalloc_index(65), 1);
    assert_eq!(kmalloc_index(96), 1);
    assert_eq!(kmalloc_index(97), 7);
    assert_eq!(kmalloc_index(129), 2);
    assert_eq!(kmalloc_index(192), 2);
    assert_eq!(kmalloc_index(193), 8);
    assert_eq!(kmalloc_index(4096), 12);
    assert_eq!(kmalloc_index(4097), 13);
    assert_eq!(kmalloc_index(8192), 13);
    assert_eq!(kmalloc_size_roundup(100), 128);
    assert_eq!(kmalloc_size_roundup(8193), 16384);
    assert_eq!(kmalloc_size_roundup(0), 0);
}

#[test]
fn names() {
    let mut s = String::new();
    kmalloc_cache_name(KmallocType::Dma, 13, &mut s).unwrap();
    assert_eq!(s, "dma-kmalloc-8k");
    s.clear();
    kmalloc_cache_name(KmallocType::Reclaim, 1, &mut s).unwrap();
    assert_eq!(s, "kmalloc-rcl-96");
}

#[test]
fn orders_for_two_cpus_match_reference() {
    let p = OrderParams::new(2);
    // (size, objperslab, pagesperslab) from /proc/slabinfo of a 2-CPU Linux machine.
    for (size, objs, pages) in [
        (8u32, 512u32, 1u32),
        (16, 256, 1),
        (32, 128, 1),
        (64, 64, 1),
        (96, 42, 1),
        (128, 32, 1),
        (192, 21, 1),
        (256, 16, 1),
        (512, 16, 2),
        (1024, 16, 4),
        (2048, 16, 8),
        (4096, 8, 8),
        (8192, 4, 8),
    ] {
        let o = calculate_order(size, &p).unwrap();
        assert_eq!(1 << o, pages, "size {size}");
        assert_eq!(order_objects(o, size), objs, "size {size}");
    }
}

#[test]
fn slub_debug_parsing() {
    let mut d = SlubDebug::new();
    d.setup(Some("FZPU"), |_| {});
    assert_eq!(d.global, SlabFlags::DEBUG_DEFAULT);
    let mut d = SlubDebug::new();
    d.setup(Some("Z,kmalloc-64"), |_| {});
    assert_eq!(d.global, SlabFlags::NONE);
    assert_eq!(
        d.cache_flags(SlabFlags::NONE, "kmalloc-64"),
        SlabFlags::RED_ZONE
    );
    assert_eq!(
        d.cache_flags(SlabFlags::NONE, "kmalloc-128"),
        SlabFlags::NONE
    );
    let mut d = SlubDebug::new();
    d.setup(Some("P,dentry*;F"), |_| {});
    assert_eq!(
        d.cache_flags(SlabFlags::NONE, "dentry_x"),
        SlabFlags::POISON
    );
    assert_eq!(
        d.cache_flags(SlabFlags::NONE, "x"),
        SlabFlags::CONSISTENCY_CHECKS
    );
    let mut d = SlubDebug::new();
    d.setup(None, |_| {});
    assert_eq!(d.global, SlabFlags::DEBUG_DEFAULT);
}

#[test]
fn flags_parse_and_print() {
    let f = SlabFlags::parse("SLAB_RED_ZONE|POISON").unwrap();
    assert_eq!(f, SlabFlags::RED_ZONE | SlabFlags::POISON);
    assert_eq!(format!("{f}"), "SLAB_RED_ZONE|SLAB_POISON");
    assert!(SlabFlags::parse("BOGUS").is_err());
}

#[test]
fn slabinfo_line_format() {
    let mut s = String::new();
    let i = SlabInfo {
        active_objs: 36,
        num_objs: 36,
        objsize: 8192,
        object_size: 8192,
        objperslab: 4,
        pagesperslab: 8,
        num_slabs: 9,
        partial_slabs: 0,
        refcount: 1,
        active_slabs: 9,
        ..SlabInfo::default()
    };
    write_slabinfo_line(&mut s, "kmalloc-8k", &i).unwrap();
    assert_eq!(
        s,
        "kmalloc-8k            36     36   8192    4    8 : tunables    0    0    0 : slabdata      9      9      0\n"
    );
}
