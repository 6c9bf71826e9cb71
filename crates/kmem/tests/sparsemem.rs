//! SPARSEMEM_VMEMMAP (issue 19): 128 MiB sections, a memmap only for present sections mapped
//! through the vmemmap page tables, `pfn_valid`/`pfn_to_online_page`, section usemaps.
//! Linux: include/linux/mmzone.h, mm/sparse.c, mm/sparse-vmemmap.c.

mod common;
use common::*;
use kmem::arch::{Arch, E820Entry, E820Table, E820Type};
use kmem::page_alloc::PageAllocator;
use kmem::pgtable::PageSize;
use kmem::sparse::{
    section_nr_to_pfn, PAGES_PER_SECTION, SECTION_HAS_MEM_MAP, SECTION_IS_EARLY, SECTION_IS_ONLINE,
    SECTION_MARKED_PRESENT, SECTION_MEMMAP_BYTES,
};
use kmem::{BootParams, GfpFlags, Machine, Pfn};
use kmem_hosted::{HostedConfig, HostedPlatform};

const G: u64 = 1 << 30;
/// x86_64's `VMEMMAP_START`.
const VMEMMAP: u64 = 0xffff_ea00_0000_0000;

/// QEMU's 5 GiB `pc` machine: RAM below 3 GiB and from 4 GiB to 6 GiB; sections 24–31 are
/// the PCI hole.
fn in_hole(nr: usize) -> bool {
    (24..32).contains(&nr)
}

#[test]
fn hole_sections_have_no_memmap() {
    let m = boot(Arch::X86_64, 5 * G, 2);
    let t = m.sections();
    assert!(t.is_sparse());
    let all = SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP | SECTION_IS_ONLINE | SECTION_IS_EARLY;
    for nr in 0..48 {
        let pfn = section_nr_to_pfn(nr);
        let last = Pfn::new(pfn.as_u64() + PAGES_PER_SECTION - 1);
        let want = !in_hole(nr);
        assert_eq!(m.pfn_valid(pfn), want, "section {nr}");
        assert_eq!(m.pfn_valid(last), want, "section {nr}");
        assert_eq!(m.pfn_to_page(last).is_some(), want, "section {nr}");
        assert_eq!(m.pfn_to_online_page(last).is_some(), want, "section {nr}");
        let flags = t.section(nr).map_or(0, |s| s.flags());
        assert_eq!(flags, if want { all } else { 0 }, "section {nr}");
    }
    // Nothing above the last present section.
    assert!(!m.pfn_valid(section_nr_to_pfn(48)));
    assert!(m.pfn_to_page(section_nr_to_pfn(48)).is_none());
    assert_eq!(t.nr_present(1 << 19), 40);
    m.check_invariants().unwrap();
}

#[test]
fn vmemmap_is_mapped_by_pmds_for_present_sections_only() {
    let m = boot(Arch::X86_64, 5 * G, 2);
    let pa: &PageAllocator<_> = &m;
    let mut backing = Vec::new();
    m.with_kernel_page_table(|pt, _| {
        for nr in 0..48usize {
            let va = VMEMMAP + (nr * SECTION_MEMMAP_BYTES) as u64;
            let t = pt.lookup(pa, va);
            assert_eq!(t.is_some(), !in_hole(nr), "section {nr}");
            if let Some(t) = t {
                assert_eq!(t.size, PageSize::Huge);
                assert_eq!(t.phys.as_u64() % SECTION_MEMMAP_BYTES as u64, 0);
                backing.push(t.phys.as_u64());
            }
        }
    })
    .unwrap();
    // sparse_buffer_init: one block, the sections' memmaps in order.
    for w in backing.windows(2) {
        assert_eq!(w[1], w[0] + SECTION_MEMMAP_BYTES as u64);
    }
    // A page's struct page is shown at vmemmap + pfn * 64, and the page table's backing
    // for it is what the direct map shows at that physical address.
    for pfn in [0x1000u64, 0x10_0000, 0x17_ffff] {
        let p = m.pfn_to_page(Pfn::new(pfn)).unwrap();
        assert_eq!(m.to_model(p.as_ptr() as usize), VMEMMAP + pfn * 64);
    }
}

/// Boots a machine with the given e820 RAM ranges (plus QEMU's low reserved ranges).
fn boot_e820(ram: &[(u64, u64)]) -> Machine<HostedPlatform> {
    let mut e = E820Table::new();
    e.push(E820Entry::new(0, 0x9fc00, E820Type::Ram));
    e.push(E820Entry::new(0x9fc00, 0x400, E820Type::Reserved));
    e.push(E820Entry::new(0xf0000, 0x10000, E820Type::Reserved));
    for &(s, len) in ram {
        e.push(E820Entry::new(s, len, E820Type::Ram));
    }
    let mut params = BootParams::simulated(Arch::X86_64, 5 * G, 2).unwrap();
    params.e820 = e;
    let plat = HostedPlatform::new(HostedConfig::deterministic(e.ram_end(), 42)).unwrap();
    Machine::boot(plat, &params).unwrap()
}

fn memory_line_reserved_k(m: &Machine<HostedPlatform>) -> u64 {
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    let line = log.lines().find(|l| l.starts_with("Memory: ")).unwrap();
    let r = line
        .split(", ")
        .find(|w| w.ends_with("K reserved"))
        .unwrap();
    r.trim_end_matches("K reserved").parse().unwrap()
}

/// The PCI hole costs no memmap: 5 GiB with a 1 GiB hole reserves what 5 GiB without one
/// does (FLATMEM paid 16 MiB of `struct page`s for the hole).
#[test]
fn a_hole_costs_no_memmap() {
    let mb = 1 << 20;
    let holed = boot_e820(&[(mb, 3 * G - mb), (4 * G, 2 * G)]);
    let flat = boot_e820(&[(mb, 5 * G - mb)]);
    let (a, b) = (
        memory_line_reserved_k(&holed),
        memory_line_reserved_k(&flat),
    );
    assert!(
        a.abs_diff(b) <= 64,
        "reserved {a}K with the hole, {b}K without"
    );
    assert_eq!(holed.sections().nr_present(1 << 19), 40);
    assert_eq!(flat.sections().nr_present(1 << 19), 40);
}

/// i386 without NUMA is FLATMEM (arch/x86/Kconfig: ARCH_FLATMEM_ENABLE for X86_32): no
/// sections, every PFN below max_pfn valid.
#[test]
fn i386_stays_flatmem() {
    let m = boot(Arch::I386, G, 2);
    assert!(!m.sections().is_sparse());
    let last = Pfn::new(m.max_pfn().as_u64() - 1);
    assert!(m.pfn_valid(last));
    assert!(m.pfn_to_online_page(last).is_some());
    assert!(!m.pfn_valid(m.max_pfn()));
}

/// Pageblock flags live in the sections' usage blocks: /proc/pagetypeinfo counts only the
/// present sections' blocks (DMA32 at 5 GiB: 3 GiB minus DMA's 16 MiB, less the 128 KiB at
/// the top of low RAM that still has a memmap).
#[test]
fn pageblocks_are_counted_per_present_section() {
    let m = boot(Arch::X86_64, 5 * G, 2);
    let s = proc(&m, "/proc/pagetypeinfo");
    let count = |zone: &str| -> usize {
        let l = s
            .lines()
            .find(|l| l.starts_with("Node 0, zone") && l.contains(zone))
            .unwrap();
        l.split_whitespace()
            .skip(4)
            .map(|w| w.parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(count("DMA32"), (3 * G as usize - (16 << 20)) / (2 << 20));
    assert_eq!(count("Normal"), (2 * G as usize) / (2 << 20));
}

/// Boots `mem` of x86_64 on a platform without a vmemmap window (bare metal's path: one
/// memmap array in the direct map under the section table).
fn boot_without_window(mem: u64) -> Machine<HostedPlatform> {
    let params = BootParams::simulated(Arch::X86_64, mem, 2).unwrap();
    let plat = HostedPlatform::new(HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        42,
    ))
    .unwrap();
    plat.disable_vmemmap();
    Machine::boot(plat, &params).unwrap()
}

/// Without a vmemmap window the machine boots with SPARSEMEM's section table over one array
/// (bare metal's path), at sizes whose last section is partly beyond `max_pfn` (it crashed
/// writing the struct pages of that section's tail, past the array), with the PCI hole, and
/// works: every valid PFN has its page, pages allocate and free, hot-add says `EINVAL`.
#[test]
fn no_vmemmap_window_keeps_one_array() {
    for mem in [64 << 20, 128 << 20, 5 * G] {
        let m = boot_without_window(mem);
        assert!(m.sections().is_sparse(), "{mem}");
        let max = m.max_pfn().as_u64();
        assert!(m.pfn_valid(Pfn::new(max - 1)));
        assert!(m.pfn_to_page(Pfn::new(max - 1)).is_some());
        assert!(m.pfn_to_page(Pfn::new(max)).is_none());
        // Struct pages are where the translation shows them: vmemmap + pfn * 64.
        let p = m.pfn_to_page(Pfn::new(0x1000)).unwrap();
        assert_eq!(m.to_model(p.as_ptr() as usize), VMEMMAP + 0x1000 * 64);
        if mem == 5 * G {
            assert!(!m.pfn_valid(section_nr_to_pfn(24)), "the PCI hole");
            assert!(m.pfn_to_page(section_nr_to_pfn(24)).is_none());
        }
        let gfp = kmem::gfp::GfpFlags::GFP_KERNEL;
        let pages: Vec<_> = (0..64)
            .map(|i| m.alloc_pages(gfp, kmem::Order::new(i % 4)).unwrap())
            .collect();
        for (i, p) in pages.into_iter().enumerate() {
            m.__free_pages(p, kmem::Order::new((i % 4) as u32));
        }
        assert_eq!(
            m.add_memory(0, 8 * G, 128 << 20),
            Err(kmem::errno::Errno::EINVAL)
        );
        m.check_invariants().unwrap();
    }
}

/// The slab free looks a pointer's `struct page` up through a bitmap of boot sections
/// (`virt_to_page_fast`) and only elsewhere through `mem_section`: objects on both sides of
/// the PCI hole are freed and reused, a pointer into the hole is reported as having no
/// `struct page` (its memmap is not mapped: reading it would fault), an interior pointer
/// is reported as an invalid object pointer, and the allocator is intact afterwards.
#[test]
fn slab_frees_on_both_sides_of_the_pci_hole() {
    let m = boot(Arch::X86_64, 5 * G, 2);
    for nr in 0..48 {
        assert_eq!(
            m.memmap_early_section(section_nr_to_pfn(nr)),
            !in_hole(nr),
            "section {nr}"
        );
    }
    let pa_of = |p: *mut u8| m.virt_to_phys(kmem::VirtAddr::new(p as usize)).unwrap();
    // GFP_DMA objects come from ZONE_DMA (section 0), GFP_KERNEL ones from ZONE_NORMAL
    // above the hole (sections 32..).
    let low = m.kmalloc(192, GfpFlags::GFP_DMA).unwrap().as_ptr();
    let high = m.kmalloc(192, GfpFlags::GFP_KERNEL).unwrap().as_ptr();
    assert!(pa_of(low).as_u64() < 16 << 20);
    assert!(pa_of(high).as_u64() >= 4 * G);
    for (p, gfp) in [(low, GfpFlags::GFP_DMA), (high, GfpFlags::GFP_KERNEL)] {
        m.kfree(p);
        assert_eq!(m.kmalloc(192, gfp).unwrap().as_ptr(), p, "freed and reused");
    }
    let bugs = m.bug_count();
    let base = high as usize - pa_of(high).as_u64() as usize;
    let hole = (base + (3 * G + G / 2) as usize) as *const u8;
    m.kfree(hole);
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(log.contains("has no struct page"), "{log}");
    assert_eq!(m.bug_count(), bugs + 1);
    m.kfree(high.wrapping_add(8));
    m.kfree(low.wrapping_add(8));
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert_eq!(log.matches("Invalid object pointer").count(), 2, "{log}");
    m.kfree(low);
    m.kfree(high);
    m.check_invariants().unwrap();
}
