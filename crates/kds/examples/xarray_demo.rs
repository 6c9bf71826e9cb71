//! XArray demo: a sparse array with marks, multi-index entries, reservations and ID
//! allocation — the page-cache and IDR building block.
//!
//! Run with `cargo run -p kds --example xarray_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::alloc::{Gfp, Global};
use kds::xarray::{xa_mk_value, XArray, XaFilter, XaFlags, XA_LIMIT_32B, XA_MARK_0, XA_MARK_1};

fn main() {
    let gfp = Gfp::GFP_KERNEL;
    // A "page cache": file page index -> page frame number, dirty pages marked.
    let cache = XArray::new_in(Global);
    for (index, pfn) in [
        (0usize, 0x1000usize),
        (1, 0x1001),
        (7, 0x2345),
        (1 << 20, 0x9999),
    ] {
        cache
            .store(index, Some(xa_mk_value(pfn)), gfp)
            .expect("out of memory");
    }
    cache.set_mark(7, XA_MARK_0);
    cache.set_mark(1 << 20, XA_MARK_0);
    println!("pages:");
    for (index, e) in cache.iter() {
        let dirty = if cache.get_mark(index, XA_MARK_0) {
            " dirty"
        } else {
            ""
        };
        println!(
            "  index {index:8} -> pfn {:#x}{dirty}",
            e.to_value().unwrap()
        );
    }
    print!("dirty pages (marked walk):");
    for (index, _) in cache.iter_marked(XA_MARK_0) {
        print!(" {index}");
    }
    println!();

    // A 2 MiB folio: one order-9 entry covers 512 indices.
    cache
        .store_order(1024, 9, Some(xa_mk_value(0x40000)), gfp)
        .unwrap();
    println!(
        "order-9 entry: load(1024) = {:?}, load(1535) = {:?}, load(1536) = {:?}, order {}",
        cache.load(1024).and_then(|e| e.to_value()),
        cache.load(1535).and_then(|e| e.to_value()),
        cache.load(1536).and_then(|e| e.to_value()),
        cache.get_order(1300)
    );
    cache.set_mark(1100, XA_MARK_1);
    let mut i = 0;
    let e = cache.find(&mut i, usize::MAX, XaFilter::Marked(XA_MARK_1));
    println!(
        "first XA_MARK_1 entry: index {i}, pfn {:#x}",
        e.unwrap().to_value().unwrap()
    );

    // A range store, then erase of the whole range.
    cache
        .store_range(5000, 5999, Some(xa_mk_value(1)), gfp)
        .unwrap();
    println!(
        "after store_range(5000..=5999): load(5500) = {:?}",
        cache.load(5500).and_then(|e| e.to_value())
    );
    cache.store_range(5000, 5999, None, gfp).unwrap();

    // Reservations: reads as empty, but insert sees it busy.
    cache.reserve(42, gfp).unwrap();
    println!(
        "reserved 42: load = {:?}, insert = {:?}",
        cache.load(42),
        cache.insert(42, Some(xa_mk_value(1)), gfp)
    );
    cache.release(42);

    println!(
        "nodes in the tree: {}",
        cache.check().expect("xarray invariants")
    );

    // ID allocation.
    let ids = XArray::with_flags(Global, XaFlags::ALLOC1);
    let a = ids
        .alloc(Some(xa_mk_value(100)), XA_LIMIT_32B, gfp)
        .unwrap();
    let b = ids
        .alloc(Some(xa_mk_value(200)), XA_LIMIT_32B, gfp)
        .unwrap();
    ids.erase(a as usize);
    let c = ids
        .alloc(Some(xa_mk_value(300)), XA_LIMIT_32B, gfp)
        .unwrap();
    println!("ALLOC1 ids: {a}, {b}, then {c} reuses the freed id");
    let mut next = 0;
    let (d, wrapped) = ids
        .alloc_cyclic(Some(xa_mk_value(400)), XA_LIMIT_32B, &mut next, gfp)
        .unwrap();
    println!("cyclic alloc: id {d} (wrapped: {wrapped}), next cursor {next}");
}
