//! The public page handle cannot reach a `struct page` of another machine or outside the
//! memmap: every public function that takes a `PagePtr` checks it first, reports a foreign
//! one as a bad address and changes nothing. (That safe code cannot write a `struct page` or
//! step a `PagePtr` is checked at compile time by the `compile_fail` examples on
//! `kmem::mm::mm_types::PagePtr`.)
mod common;

use kmem::arch::Arch;
use kmem::pgtable::PteFlags;
use kmem::{GfpFlags, Order};

#[test]
fn a_page_of_another_machine_is_reported_and_left_alone() {
    let m1 = common::boot(Arch::X86_64, 128 << 20, 1);
    let m2 = common::boot(Arch::X86_64, 128 << 20, 1);
    let p = m2.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(1)).unwrap();
    let free1 = m1.nr_free_pages();

    assert!(m1.page_ref(p).is_none());
    assert!(m2.page_ref(p).is_some());
    assert!(m1.page_address(p).is_none());
    assert_eq!(m1.page_to_pfn(p), m1.max_pfn());
    assert!(m1.pfn_to_page(m1.page_to_pfn(p)).is_none());

    let bugs = m1.bug_count();
    m1.__free_pages(p, Order::new(1));
    m1.split_page(p, Order::new(1));
    m1.dump_page(p, "test");
    m1.bad_page(p, "test");
    assert!(m1.vmap(&[p], 0, PteFlags::PAGE_KERNEL).is_none());
    assert!(m1.vm_map_ram(&[p]).is_none());
    assert!(m1.kmap(p).is_none());
    assert_eq!(m1.bug_count(), bugs + 7);
    let mut log = String::new();
    m1.dmesg(&mut log, false).unwrap();
    assert!(log.contains("__free_pages: address"), "{log}");
    assert!(log.contains("has no struct page"), "{log}");

    // Nothing changed on either machine: m1's free memory, m2's page still allocated.
    assert_eq!(m1.nr_free_pages(), free1);
    assert_eq!(m2.page_ref(p).unwrap().refcount(), 1);
    assert_eq!(m2.bug_count(), 0);
    m2.__free_pages(p, Order::new(1));
    assert_eq!(m2.bug_count(), 0);
}

#[test]
fn a_pointer_outside_any_memmap_is_reported() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let p = m.alloc_page(GfpFlags::GFP_KERNEL).unwrap();
    // A PagePtr can only be made from a raw pointer with `unsafe`; this one is the page right
    // after the memmap's last entry, which a caller might compute by mistake.
    let last = m
        .pfn_to_page(kmem::Pfn::new(m.max_pfn().as_u64() - 1))
        .unwrap();
    // SAFETY: only the address is used: kmem must check it before touching the page.
    let past = unsafe {
        kmem::PagePtr::from_raw(core::ptr::NonNull::new(last.as_ptr().wrapping_add(1)).unwrap())
    };
    let bugs = m.bug_count();
    assert!(m.page_ref(past).is_none());
    m.__free_pages(past, Order::ZERO);
    assert_eq!(m.bug_count(), bugs + 1);
    m.__free_pages(p, Order::ZERO);
    assert_eq!(m.bug_count(), bugs + 1);
}
