//! vmalloc, vmap and kvmalloc on the CPU's real page tables: kmem extends the table in CR3
//! (see [`crate::platform`]), so a vmalloc address works for loads and stores, maps the pages
//! kmem says it does (checked with an independent page-table walk from CR3 and through the
//! direct map), and is unmapped again by `vfree`.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use kmem::machine::NodeStat;
use kmem::pgtable::PteFlags;
use kmem::vmalloc::VM_MAP;
use kmem::{GfpFlags, PagePtr, VirtAddr, PAGE_SIZE};

use super::{settle, KernelCtx};
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{arch, boot, check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    vmalloc_uses_the_cpu_page_tables,
    vfree_unmaps_from_the_cpu_page_tables,
    vmap_makes_scattered_pages_contiguous,
    tlb_is_flushed_when_a_mapping_changes,
    kvmalloc_beyond_kmalloc_is_vmalloc,
];

/// Walks the live page tables from CR3 for `va`, reading each table through the direct map;
/// returns the physical address `va` translates to, if it is mapped. Knows 4 KiB pages and
/// 2 MiB pages (the boot tables use those for the identity and direct maps).
fn walk(va: u64) -> Option<u64> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let mut table = arch::read_cr3() & ADDR;
    for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] {
        let idx = (va >> shift) & 511;
        let entry_p = (boot::DIRECT_MAP_BASE + table + idx * 8) as *const u64;
        // SAFETY: `table` is a page-table page (from CR3 or a present entry of the level
        // above); all RAM is readable through the direct map.
        let e = unsafe { entry_p.read_volatile() };
        if e & 1 == 0 {
            return None;
        }
        if level == 2 && e & (1 << 7) != 0 {
            return Some((e & ADDR & !0x1f_ffff) | (va & 0x1f_ffff));
        }
        if level == 1 {
            return Some((e & ADDR) | (va & 0xfff));
        }
        table = e & ADDR;
    }
    None
}

/// Free pages after settling, plus the page-table pages kmem has allocated: vmalloc keeps the
/// kernel page tables it creates (Linux never frees them), so this is the figure that must
/// come back after everything vmalloc'd is freed.
fn free_plus_tables(mm: &Kmem) -> usize {
    settle(mm) + mm.node_stat_hook(NodeStat::PageTables)
}

fn in_vmalloc_space(mm: &Kmem, va: VirtAddr) -> bool {
    mm.kernel_layout()
        .is_some_and(|l| (l.vmalloc_start..l.vmalloc_end).contains(&(va.as_usize() as u64)))
}

fn vmalloc_uses_the_cpu_page_tables(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    check!(mm.kernel_layout().is_some(), "vmalloc is not initialised");
    check_eq!(
        mm.kernel_pgd().map(|p| p.as_u64()),
        Some(arch::read_cr3() & 0x000f_ffff_ffff_f000)
    );
    let free0 = free_plus_tables(mm);
    let pages = 300; // more than fits in one page table's worth of one PMD alignment step
    let v = mm.vmalloc(pages * PAGE_SIZE);
    check!(v.is_some(), "vmalloc({} KiB) failed", pages * 4);
    let v = v.expect("checked");
    check!(
        in_vmalloc_space(mm, v),
        "vmalloc returned {:#x}",
        v.as_usize()
    );
    check!(mm.is_vmalloc_addr(v));
    let base = v.as_usize() as u64;
    for i in 0..pages as u64 {
        let va = base + i * PAGE_SIZE as u64;
        // Stores through the vmalloc address (the CPU walks the real tables).
        // SAFETY: the page belongs to the vmalloc area just allocated.
        unsafe { (va as *mut u64).write_volatile(0x766d_616c_6c6f_6300 ^ i) };
        // The page kmem says backs it is the page the CPU's tables translate to…
        let page = mm.vmalloc_to_page(VirtAddr::new(va as usize));
        check!(page.is_some(), "vmalloc_to_page({va:#x}) is None");
        let pa = mm.page_to_pfn(page.expect("checked")).as_u64() * PAGE_SIZE as u64;
        check_eq!(walk(va), Some(pa));
        // …and the store is visible through the direct map of that page.
        // SAFETY: `pa` is RAM, mapped at DIRECT_MAP_BASE + pa.
        let seen = unsafe { ((boot::DIRECT_MAP_BASE + pa) as *const u64).read_volatile() };
        check_eq!(seen, 0x766d_616c_6c6f_6300 ^ i);
    }
    crate::println!("  /proc/vmallocinfo with the area live:");
    {
        let mut console = crate::serial::CONSOLE.lock();
        let _ = mm.show_vmallocinfo(&mut *console);
    }
    // Neighbouring pages of distinct physical frames: no page is mapped twice.
    let p0 = walk(base).expect("mapped");
    let p1 = walk(base + PAGE_SIZE as u64).expect("mapped");
    check!(p0 != p1, "two vmalloc pages share a frame");
    mm.vfree(v);
    mm.purge_vmap_area_lazy();
    check_eq!(free_plus_tables(mm), free0);
    if let Err(e) = mm.check_vmalloc() {
        check!(false, "vmalloc invariants: {e}");
    }
    Ok(())
}

fn vfree_unmaps_from_the_cpu_page_tables(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let v = mm.vzalloc(16 * PAGE_SIZE).expect("vzalloc(64 KiB)");
    let base = v.as_usize() as u64;
    // SAFETY: 16 pages of vmalloc memory.
    let zeroed = unsafe { core::slice::from_raw_parts(v.as_ptr::<u8>(), 16 * PAGE_SIZE) };
    check!(zeroed.iter().all(|&b| b == 0), "vzalloc memory not zeroed");
    check!(
        (0..16).all(|i| walk(base + i * 4096).is_some()),
        "vzalloc pages not all mapped"
    );
    // The guard page after the area is never mapped.
    check_eq!(walk(base + 16 * 4096), None);
    mm.vfree(v);
    // vfree unmaps at once (the TLB flush may be lazy, as in Linux); after the purge, the
    // CPU's tables hold nothing for the range.
    mm.purge_vmap_area_lazy();
    check!(
        (0..16).all(|i| walk(base + i * 4096).is_none()),
        "vfree left pages mapped"
    );
    check!(
        mm.find_vm_area(v).is_none(),
        "area still registered after vfree"
    );
    Ok(())
}

fn vmap_makes_scattered_pages_contiguous(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    // Allocate 16 pages and keep every other one, so the kept frames are not contiguous.
    let mut all: [Option<PagePtr>; 16] = [None; 16];
    for p in all.iter_mut() {
        *p = mm.alloc_page(GfpFlags::GFP_KERNEL);
    }
    check!(all.iter().all(Option::is_some), "alloc_page failed");
    let kept: [PagePtr; 8] = core::array::from_fn(|i| all[2 * i + 1].expect("checked"));
    for i in 0..8 {
        mm.__free_page(all[2 * i].expect("checked"));
    }
    let v = mm.vmap(&kept, VM_MAP, PteFlags::PAGE_KERNEL);
    check!(v.is_some(), "vmap failed");
    let v = v.expect("checked");
    // One store across every page boundary through the contiguous mapping.
    let bytes = 8 * PAGE_SIZE;
    for i in (0..bytes).step_by(512) {
        // SAFETY: the vmap area is 8 pages long.
        unsafe { v.as_ptr::<u8>().add(i).write_volatile((i / 512) as u8) };
    }
    for (n, page) in kept.iter().enumerate() {
        let direct = mm.page_address(*page).expect("lowmem page").as_ptr::<u8>();
        for off in (0..PAGE_SIZE).step_by(512) {
            // SAFETY: the page is ours and mapped in the direct map.
            let b = unsafe { direct.add(off).read_volatile() };
            check_eq!(b, ((n * PAGE_SIZE + off) / 512) as u8);
        }
    }
    mm.vunmap(v);
    for p in kept {
        mm.__free_page(p);
    }
    Ok(())
}

/// A stale TLB entry would show the old page: map page A, read through the mapping (the CPU
/// caches the translation), unmap and purge (kmem calls the platform's
/// `flush_tlb_kernel_range`), map page B at the same address, read again. QEMU's TCG keeps
/// translations like a real TLB until `invlpg`/CR3 reload, so without the flush the second read
/// returns A's contents.
fn tlb_is_flushed_when_a_mapping_changes(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let a = mm.alloc_page(GfpFlags::GFP_KERNEL).expect("page A");
    let b = mm.alloc_page(GfpFlags::GFP_KERNEL).expect("page B");
    for (page, value) in [(a, 0xaaaa_aaaa_u64), (b, 0xbbbb_bbbb)] {
        let p = mm.page_address(page).expect("lowmem").as_ptr::<u64>();
        // SAFETY: our page, in the direct map.
        unsafe { p.write_volatile(value) };
    }
    let mut reused = 0;
    for _ in 0..4 {
        let va1 = mm
            .vmap(&[a], VM_MAP, PteFlags::PAGE_KERNEL)
            .expect("vmap A");
        // SAFETY: one mapped page.
        check_eq!(unsafe { va1.as_ptr::<u64>().read_volatile() }, 0xaaaa_aaaa);
        mm.vunmap(va1);
        mm.purge_vmap_area_lazy();
        let va2 = mm
            .vmap(&[b], VM_MAP, PteFlags::PAGE_KERNEL)
            .expect("vmap B");
        // SAFETY: one mapped page.
        let seen = unsafe { va2.as_ptr::<u64>().read_volatile() };
        mm.vunmap(va2);
        mm.purge_vmap_area_lazy();
        if va2 == va1 {
            reused += 1;
            check_eq!(seen, 0xbbbb_bbbb);
        }
    }
    mm.__free_page(a);
    mm.__free_page(b);
    check!(
        reused > 0,
        "the address was never reused: the check did not run"
    );
    Ok(())
}

fn kvmalloc_beyond_kmalloc_is_vmalloc(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let free0 = free_plus_tables(mm);
    // Small: kmalloc memory (the direct map).
    let small = mm
        .kvmalloc(1000, GfpFlags::GFP_KERNEL)
        .expect("kvmalloc(1000)");
    check!(
        !mm.is_vmalloc_addr(small),
        "a small kvmalloc came from vmalloc"
    );
    mm.kvfree(small);
    // Above KMALLOC_MAX_SIZE (4 MiB): only vmalloc can serve it.
    let size = 6 << 20;
    let big = mm.kvmalloc(size, GfpFlags::GFP_KERNEL);
    check!(big.is_some(), "kvmalloc(6 MiB) failed");
    let big = big.expect("checked");
    check!(
        mm.is_vmalloc_addr(big),
        "kvmalloc(6 MiB) not in vmalloc space"
    );
    let words = size / 8;
    let p = big.as_ptr::<u64>();
    for i in (0..words).step_by(997) {
        // SAFETY: the area has `size` bytes.
        unsafe { p.add(i).write_volatile(i as u64) };
    }
    for i in (0..words).step_by(997) {
        // SAFETY: `p` is still the start of the live `size`-byte area (freed below), i < size / 8,
        // and the word was written by the loop above.
        check_eq!(unsafe { p.add(i).read_volatile() }, i as u64);
    }
    mm.kvfree(big);
    mm.purge_vmap_area_lazy();
    check_eq!(free_plus_tables(mm), free0);
    Ok(())
}
