//! The kernel heap ([`crate::heap`]): `alloc` collections and kds's rbtree map running on
//! kmalloc inside the kernel, and the memory coming back when they are dropped (measured after
//! shrinking every cache, so empty slabs are back in the buddy allocator).

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kds::alloc::Gfp;
use kds::rbtree::RbTree;
use kmem::platform::Platform;
use kmem::VirtAddr;

use super::KernelCtx;
use crate::heap::KernelNodeAlloc;
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{boot, check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    heap_runs_on_kmalloc,
    heap_vec_grows_in_kmem_memory,
    heap_btreemap_of_strings,
    heap_box_honours_alignment,
    heap_rbtree_map_matches_btreemap,
];

use super::settle as free_pages;

/// Checks that `p` is memory kmem handed out: in the direct map, on an allocated page.
fn check_heap_ptr<T>(mm: &Kmem, p: *const T) -> TestResult {
    let a = p as u64;
    check!(
        a >= boot::DIRECT_MAP_BASE,
        "{a:#x} is not a direct-map address"
    );
    let page = mm.virt_to_page(VirtAddr::from_ptr(p));
    check!(page.is_some(), "{a:#x} has no struct page");
    let page = mm.page_ref(page.expect("checked"));
    check!(
        page.is_some(),
        "{a:#x}: its struct page is not in the memmap"
    );
    let page = page.expect("checked");
    check!(
        page.refcount() > 0 && !page.is_buddy(),
        "{a:#x} is on a free page"
    );
    Ok(())
}

fn heap_runs_on_kmalloc(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let b = Box::new([7u8; 100]);
    let p = &*b as *const [u8; 100] as *const u8;
    check_heap_ptr(mm, p)?;
    // A 100-byte object comes from kmalloc-128 (SLOB: a 100-byte block; a KFENCE object,
    // with kfence.sample_interval=N, has the size asked for, as kfence_ksize gives it).
    let slob = mm.slab_allocator() == kmem::slab::common::SlabAllocatorKind::Slob;
    let exact = slob || mm.is_kfence_address(p);
    check_eq!(mm.ksize(p), if exact { 100 } else { 128 });
    let big: Vec<u8> = alloc::vec![1; 20_000];
    // Above the kmalloc caches: a compound page block (ksize is its full size).
    check_eq!(mm.ksize(big.as_ptr()), 32 * 1024);
    Ok(())
}

fn heap_vec_grows_in_kmem_memory(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let free0 = free_pages(mm);
    {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..100_000u64 {
            v.push(i * i);
        }
        check_heap_ptr(mm, v.as_ptr())?;
        check!(free_pages(mm) < free0, "a 800 KB vector took no pages");
        let sum: u64 = v.iter().sum();
        check_eq!(sum, (0..100_000u64).map(|i| i * i).sum::<u64>());
        v.truncate(10);
        v.shrink_to_fit();
        check_eq!(v[9], 81);
    }
    check_eq!(free_pages(mm), free0);
    Ok(())
}

fn heap_btreemap_of_strings(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let free0 = free_pages(mm);
    {
        let mut map: BTreeMap<u32, String> = BTreeMap::new();
        for i in 0..2000u32 {
            map.insert(i.wrapping_mul(2_654_435_761) % 10_007, format!("value-{i}"));
        }
        let len = map.len();
        check!(len > 1500, "only {len} distinct keys");
        map.retain(|k, _| k % 2 == 0);
        check!(map.keys().all(|k| k % 2 == 0));
        check!(map.values().all(|v| v.starts_with("value-")));
        let (k, v) = map.iter().next().expect("non-empty");
        check_heap_ptr(mm, v.as_ptr())?;
        check!(*k < 10_007);
    }
    check_eq!(free_pages(mm), free0);
    Ok(())
}

fn heap_box_honours_alignment(ctx: &KernelCtx) -> TestResult {
    #[repr(C, align(8192))]
    struct Aligned([u8; 100]);
    let mm = ctx.mm;
    let free0 = free_pages(mm);
    {
        let boxes: Vec<Box<Aligned>> = (0..8).map(|i| Box::new(Aligned([i; 100]))).collect();
        for (i, b) in boxes.iter().enumerate() {
            let a = &**b as *const Aligned as usize;
            check_eq!(a % 8192, 0);
            check_eq!(b.0[99], i as u8);
        }
        let zeroed: Box<[u64]> = alloc::vec![0u64; 3000].into_boxed_slice();
        check!(zeroed.iter().all(|&x| x == 0));
    }
    check_eq!(free_pages(mm), free0);
    Ok(())
}

fn heap_rbtree_map_matches_btreemap(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let plat = mm.platform();
    let free0 = free_pages(mm);
    {
        let mut tree: RbTree<u64, u64, KernelNodeAlloc> = RbTree::new_in(KernelNodeAlloc);
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        for i in 0..3000u64 {
            let k = plat.random_u64() % 1024;
            if plat.random_u64().is_multiple_of(3) {
                check_eq!(tree.remove(&k), model.remove(&k));
            } else {
                let old = tree.insert(k, i, Gfp::GFP_KERNEL);
                check!(old.is_ok(), "rbtree insert failed: out of memory");
                check_eq!(old.ok().flatten(), model.insert(k, i));
            }
        }
        check_eq!(tree.len(), model.len());
        check!(tree
            .iter()
            .map(|(k, v)| (*k, *v))
            .eq(model.iter().map(|(k, v)| (*k, *v))));
        check!(tree.check().is_ok(), "rbtree invariants violated");
        check_eq!(
            tree.first_key_value().map(|(k, _)| *k),
            model.keys().next().copied()
        );
    }
    check_eq!(free_pages(mm), free0);
    Ok(())
}
