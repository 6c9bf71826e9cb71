//! Maple tree demo: a process address space as the VMA code keeps it — ranges of pages,
//! `find_vma`, a top-down `get_unmapped_area`, `munmap` of part of a mapping, and the
//! preallocate-then-store pattern of `mmap`.
//!
//! Run with `cargo run -p kds --example maple_tree_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::alloc::{Gfp, Global};
use kds::maple_tree::{xa_mk_value, MapleTree, MtFlags};

const PAGE: usize = 4096;

fn show(mm: &MapleTree<Global>) {
    for (start, e) in mm.iter(0, usize::MAX) {
        let mut mas = mm.mas(start, start);
        mas.walk();
        println!(
            "  {:012x}-{:012x} vma #{}",
            mas.index,
            mas.last + 1,
            e.to_value().unwrap_or(0)
        );
    }
}

fn main() {
    let gfp = Gfp::GFP_KERNEL;
    let mm = MapleTree::new(MtFlags::ALLOC_RANGE | MtFlags::USE_RCU, Global);
    // Program text, data and a stack, as a loader would map them.
    mm.store_range(0x400000, 0x400000 + 4 * PAGE - 1, Some(xa_mk_value(1)), gfp)
        .expect("out of memory");
    mm.store_range(0x600000, 0x600000 + 2 * PAGE - 1, Some(xa_mk_value(2)), gfp)
        .expect("out of memory");
    let stack_top = 0x7fff_ffff_f000usize;
    mm.store_range(
        stack_top - 32 * PAGE,
        stack_top - 1,
        Some(xa_mk_value(3)),
        gfp,
    )
    .expect("out of memory");
    println!("address space:");
    show(&mm);

    // mmap(NULL, 8 pages): top-down get_unmapped_area below the stack gap, then a store that
    // cannot fail because its nodes were preallocated (mas_preallocate + mas_store_prealloc).
    {
        let g = mm.lock();
        let mut mas = g.mas(0, 0);
        mas.empty_area_rev(0x10000, stack_top - 64 * PAGE - 1, 8 * PAGE)
            .expect("no room");
        println!("get_unmapped_area: {:#x}", mas.index);
        mas.preallocate(Some(xa_mk_value(4)), gfp)
            .expect("out of memory");
        mas.store_prealloc(Some(xa_mk_value(4)));
        mas.destroy();
    }

    // find_vma(0x401234) and munmap of the middle two pages of the text.
    println!(
        "find_vma(0x401234): {:?}",
        mm.load(0x401234).and_then(|e| e.to_value())
    );
    mm.store_range(0x401000, 0x402fff, None, gfp)
        .expect("out of memory");
    println!("after munmap(0x401000, 2 pages):");
    show(&mm);
    mm.validate().expect("mt_validate");
    println!("tree height {}", mm.height());
}
