//! rbtree demo: the safe ordered map, then the raw augmented layer doing what vmalloc does —
//! find the lowest free area that fits, skipping subtrees by their cached maximum free size.
//!
//! Run with `cargo run -p kds --example rbtree_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use core::ptr;

use kds::alloc::{Gfp, Global};
use kds::rbtree::augmented::{rb_erase_augmented, rb_insert_augmented};
use kds::rbtree::{rb_first, rb_link_node, rb_next, RbNode, RbRoot, RbTree};

/// A free address range, ordered by start, augmented with the largest size in its subtree.
#[repr(C)]
struct FreeArea {
    rb: RbNode,
    start: u64,
    size: u64,
    subtree_max_size: u64,
}

fn area_size(a: &FreeArea) -> u64 {
    a.size
}

kds::rb_declare_callbacks_max!(FreeAreaCb, FreeArea, rb, u64, subtree_max_size, area_size);

fn area(rb: *const RbNode) -> *mut FreeArea {
    kds::container_of!(rb, FreeArea, rb)
}

/// Inserts `a` ordered by start, raising the subtree maxima on the way down.
///
/// # Safety
/// `a` must be a valid, unlinked `FreeArea` that does not move while linked, and `root` a valid
/// tree whose nodes are all live, pinned `FreeArea`s.
unsafe fn insert_area(a: *mut FreeArea, root: *mut RbRoot) {
    // SAFETY: the caller guarantees `a` and all linked areas are valid and pinned.
    unsafe {
        let mut link: *mut *mut RbNode = &mut (*root).rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            let p = area(parent);
            (*p).subtree_max_size = (*p).subtree_max_size.max((*a).size);
            link = if (*a).start < (*p).start {
                &mut (*p).rb.rb_left
            } else {
                &mut (*p).rb.rb_right
            };
        }
        (*a).subtree_max_size = (*a).size;
        rb_link_node(&mut (*a).rb, parent, link);
        rb_insert_augmented::<FreeAreaCb>(&mut (*a).rb, root);
    }
}

/// Returns the lowest-addressed area of at least `size` bytes (mm/vmalloc.c `find_vmap_lowest_match`).
///
/// # Safety
/// `root` must be a valid tree whose nodes are all live `FreeArea`s with correct
/// `subtree_max_size`, not modified during the call.
unsafe fn lowest_fit(root: *const RbRoot, size: u64) -> *mut FreeArea {
    // SAFETY: the caller guarantees a valid tree of FreeAreas.
    unsafe {
        let mut n = (*root).rb_node;
        while !n.is_null() {
            let a = area(n);
            let left = (*n).rb_left;
            if !left.is_null() && (*area(left)).subtree_max_size >= size {
                n = left;
            } else if (*a).size >= size {
                return a;
            } else {
                let right = (*n).rb_right;
                if !right.is_null() && (*area(right)).subtree_max_size >= size {
                    n = right;
                } else {
                    return ptr::null_mut();
                }
            }
        }
        ptr::null_mut()
    }
}

fn main() {
    // The safe map.
    let mut pids = RbTree::new_in(Global);
    for (pid, name) in [(300, "sshd"), (1, "init"), (42, "kthreadd"), (1000, "bash")] {
        pids.insert(pid, name, Gfp::GFP_KERNEL)
            .expect("out of memory");
    }
    println!("map in order:");
    for (pid, name) in &pids {
        println!("  {pid:5} {name}");
    }
    println!(
        "pids in 10..=500: {:?}",
        pids.range(10..=500).map(|(p, _)| *p).collect::<Vec<_>>()
    );
    let mut c = pids.cursor_lower_bound(&100);
    print!("cursor from 100:");
    while let Some((p, _)) = c.current() {
        print!(" {p}");
        c.move_next();
    }
    println!();
    pids.remove(&42);
    let info = pids.check().expect("rbtree invariants");
    println!(
        "after removing 42: {} nodes, black height {}",
        info.count, info.black_height
    );

    // The raw augmented layer: a vmalloc-like free-area search.
    let sizes = [4096u64, 65536, 8192, 1 << 20, 16384, 4096, 262144, 12288];
    let mut areas: Vec<FreeArea> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| FreeArea {
            rb: RbNode::new(),
            start: (i as u64) << 24,
            size,
            subtree_max_size: 0,
        })
        .collect();
    let mut root = RbRoot::new();
    for a in areas.iter_mut() {
        // SAFETY: `areas` is not resized while the tree is in use.
        unsafe { insert_area(a, &mut root) };
    }
    for want in [4096u64, 10000, 100_000, 1 << 20, 2 << 20] {
        // SAFETY: the tree holds only live areas.
        let a = unsafe { lowest_fit(&root, want) };
        if a.is_null() {
            println!("no free area of {want} bytes");
        } else {
            // SAFETY: a live area.
            let (start, size) = unsafe { ((*a).start, (*a).size) };
            println!("lowest fit for {want:8} bytes: area at {start:#010x} of {size} bytes");
        }
    }
    // Take the 1 MiB area out; the largest fit drops to 256 KiB.
    // SAFETY: areas[3] is linked.
    unsafe { rb_erase_augmented::<FreeAreaCb>(&mut areas[3].rb, &mut root) };
    // SAFETY: the root node is a live area.
    let max = unsafe { (*area(root.rb_node)).subtree_max_size };
    println!("after allocating the 1 MiB area, the largest free area is {max} bytes");
    let mut n = 0;
    // SAFETY: walking live areas.
    unsafe {
        let mut rb = rb_first(&root);
        while !rb.is_null() {
            n += 1;
            rb = rb_next(rb);
        }
    }
    println!("{n} free areas remain");
}
