//! `page_owners`: the owner of every page, as `kmem map` draws it.

mod common;

use common::{boot, M};
use kmem::arch::Arch;
use kmem::proc::pageowner::PageOwner;
use kmem::{GfpFlags, Order, Pfn, VirtAddr, PAGE_SIZE};

fn owners(m: &M) -> Vec<PageOwner> {
    let mut v = vec![PageOwner::Hole; m.max_pfn().as_usize()];
    m.page_owners(Pfn::new(0), &mut v);
    v
}

#[test]
fn every_allocator_owns_its_pages() {
    let m = boot(Arch::X86_64, 64 << 20, 1);
    let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(9)).unwrap();
    let pfn = m.page_to_pfn(p).as_usize();
    let k = m.kmalloc(100, GfpFlags::GFP_KERNEL).unwrap();
    let kpfn = m
        .virt_to_page(VirtAddr::new(k.as_ptr() as usize))
        .map(|pg| m.page_to_pfn(pg).as_usize())
        .unwrap();
    let v = m.vmalloc(3 * PAGE_SIZE).unwrap();
    let vpfns: Vec<usize> = (0..3)
        .map(|i| {
            let pg = m
                .vmalloc_to_page(VirtAddr::new(v.as_usize() + i * PAGE_SIZE))
                .unwrap();
            m.page_to_pfn(pg).as_usize()
        })
        .collect();
    let o = owners(&m);
    // The order-9 block: 512 pages of one allocation, bounded by pages that are not.
    assert!(o[pfn..pfn + 512].iter().all(|x| *x == PageOwner::Allocated));
    // The kmalloc object's slab page belongs to kmalloc-128.
    let PageOwner::Slab(addr) = o[kpfn] else {
        panic!("{:?}", o[kpfn]);
    };
    let mut names = Vec::new();
    m.for_each_cache_addr(&mut |a, n| {
        if a == addr {
            names.push(n.to_string());
        }
    });
    assert!(names.iter().any(|n| n == "kmalloc-128"), "{names:?}");
    for f in &vpfns {
        assert_eq!(o[*f], PageOwner::Vmalloc);
    }
    // Free pages: the buddyinfo counts, page for page.
    let free: usize = o.iter().filter(|x| matches!(x, PageOwner::Free(_))).count();
    let nr_free: usize = m.zones().map(|z| z.stats.free_pages()).sum();
    assert_eq!(free, nr_free);
    // The memmap and the rest of the boot allocations are reserved.
    assert!(o.contains(&PageOwner::Memmap));
    assert!(o.contains(&PageOwner::Reserved));
    // After freeing, the block is free again (merged back into larger blocks).
    m.__free_pages(p, Order::new(9));
    let o = owners(&m);
    assert!(o[pfn..pfn + 512]
        .iter()
        .all(|x| matches!(x, PageOwner::Free(_) | PageOwner::FreePcp)));
    m.kfree(k.as_ptr());
    m.vfree(v);
}
