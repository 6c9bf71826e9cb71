//! Tests of the booted machine's memblock and buddy allocator, on the real memory of this
//! (emulated) computer: zones as the memory size implies, the kernel image reserved, zone
//! placement of GFP flags, the `__get_free_pages` family, exhaustion of every order and back,
//! and misuse reports.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use kmem::addr::{Order, Pfn, NR_PAGE_ORDERS, PAGE_SIZE};
use kmem::arch::{MAX_DMA32_ADDR, MAX_DMA_ADDR};
use kmem::mmzone::ZoneType;
use kmem::{GfpFlags, PagePtr, VirtAddr};

use super::KernelCtx;
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{boot, check, check_eq, println, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    zones_match_memory_size,
    kernel_image_and_page_tables_reserved,
    buddy_consistent_after_boot,
    gfp_zone_placement,
    get_free_pages_family,
    alloc_pages_exact_frees_the_tail,
    buddy_exhaust_every_order,
    bad_frees_are_reported,
];

/// The zones x86_64 can populate (HighMem does not exist there; Movable and Device stay empty).
const ZONES: [ZoneType; 3] = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal];

const NOWARN: GfpFlags = GfpFlags::__GFP_NOWARN;

/// Free blocks per order of every zone, after draining the per-CPU lists into the buddy.
fn free_areas(mm: &Kmem) -> [[usize; NR_PAGE_ORDERS]; 3] {
    mm.drain_local_pages();
    ZONES.map(|z| mm.free_area_counts(z))
}

fn pfn_of(mm: &Kmem, page: PagePtr) -> u64 {
    mm.page_to_pfn(page).as_u64()
}

fn zones_match_memory_size(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let ram_end = ctx.info.max_ram_end();
    let want = [true, ram_end > MAX_DMA_ADDR, ram_end > MAX_DMA32_ADDR];
    // On a NUMA machine (scripts/qemu-test --numa) a zone is populated when some node has
    // memory in it; the nodes' zones together hold all RAM.
    let nodes = 0..mm.nr_online_nodes();
    let populated = |z: ZoneType| nodes.clone().any(|n| mm.node_zone(n, z).is_populated());
    for (z, want) in ZONES.iter().zip(want) {
        check_eq!((z.name(), populated(*z)), (z.name(), want));
    }
    for z in [ZoneType::HighMem, ZoneType::Movable, ZoneType::Device] {
        check!(!populated(z), "zone {} populated on x86_64", z.name());
    }
    // Every usable page is either in a zone's span or below the first zone.
    let present: u64 = mm.zones().map(|z| z.geo.present).sum();
    let ram_pages = ctx.info.total_ram() / PAGE_SIZE as u64;
    check!(
        present <= ram_pages && present + 512 >= ram_pages,
        "zones present {present} pages, e820 has {ram_pages} pages of RAM"
    );
    Ok(())
}

fn kernel_image_and_page_tables_reserved(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let (ks, ke) = boot::kernel_image();
    let (ps, pe) = boot::boot_page_tables();
    for (what, start, end) in [
        ("kernel image", ks, ke),
        ("boot page tables", ps, pe),
        ("first page", 0, 4096),
    ] {
        for pfn in start / 4096..end.div_ceil(4096) {
            let page = mm.pfn_to_page(Pfn::new(pfn));
            check!(
                page.and_then(|p| mm.page_ref(p))
                    .is_some_and(|p| p.is_reserved()),
                "{what}: pfn {pfn:#x} is not PageReserved"
            );
        }
    }
    Ok(())
}

fn buddy_consistent_after_boot(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if let Err(e) = mm.check_invariants() {
        check!(false, "buddy invariants: {e}");
    }
    check!(mm.nr_free_pages() > 0, "no free pages after boot");
    let ram_pages = (ctx.info.total_ram() / PAGE_SIZE as u64) as usize;
    check!(
        mm.totalram_pages() <= ram_pages && mm.nr_free_pages() <= mm.totalram_pages(),
        "totalram {} free {} RAM {}",
        mm.totalram_pages(),
        mm.nr_free_pages(),
        ram_pages
    );
    check_eq!((mm.bug_count(), mm.warn_count()), (0, 0));
    Ok(())
}

fn gfp_zone_placement(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let dma_end = MAX_DMA_ADDR / PAGE_SIZE as u64;
    let dma32_end = MAX_DMA32_ADDR / PAGE_SIZE as u64;
    let has_normal = mm.zone(ZoneType::Normal).is_populated();
    let cases = [
        (
            "GFP_DMA",
            GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA,
            0,
            dma_end,
        ),
        (
            "GFP_DMA32",
            GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
            0,
            dma32_end,
        ),
        // The zonelist starts at the highest zone the flags allow.
        (
            "GFP_KERNEL",
            GfpFlags::GFP_KERNEL,
            if has_normal { dma32_end } else { dma_end },
            u64::MAX,
        ),
    ];
    for (name, gfp, lo, hi) in cases {
        for order in [0, 3, 10] {
            let page = mm.alloc_pages(gfp, Order::new(order));
            check!(page.is_some(), "{name} order {order}: allocation failed");
            let page = page.expect("checked");
            let pfn = pfn_of(mm, page);
            mm.__free_pages(page, Order::new(order));
            check!(
                (lo..hi).contains(&pfn),
                "{name} order {order}: pfn {pfn:#x} outside [{lo:#x}, {hi:#x})"
            );
            check_eq!(pfn % (1 << order), 0);
        }
    }
    Ok(())
}

fn get_free_pages_family(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let before = free_areas(mm);
    let a = mm.__get_free_pages(GfpFlags::GFP_KERNEL, Order::new(2));
    check!(a.is_some(), "__get_free_pages(GFP_KERNEL, 2) failed");
    let a = a.expect("checked");
    // The block is real memory: fill all four pages and read them back.
    let words = 4 * PAGE_SIZE / 8;
    let p = a.as_ptr::<u64>();
    for i in 0..words {
        // SAFETY: `p` is the start of an order-2 block (16 KiB) we own.
        unsafe { p.add(i).write_volatile(i as u64 ^ 0xdead_beef) };
    }
    for i in 0..words {
        // SAFETY: `p` is still the start of the order-2 block (16 KiB) we own and have not freed, i
        // < words = 16 KiB / 8, and every word was written by the loop above.
        let v = unsafe { p.add(i).read_volatile() };
        check_eq!(v, i as u64 ^ 0xdead_beef);
    }
    mm.free_pages(a, Order::new(2));

    // A page dirtied and freed, then get_zeroed_page: most likely the same page, zeroed.
    let dirty = mm.__get_free_page(GfpFlags::GFP_KERNEL).expect("one page");
    // SAFETY: we own this page.
    unsafe { core::ptr::write_bytes(dirty.as_ptr::<u8>(), 0xa5, PAGE_SIZE) };
    mm.free_page(dirty);
    let z = mm
        .get_zeroed_page(GfpFlags::GFP_KERNEL)
        .expect("one zeroed page");
    // SAFETY: we own this page; it is PAGE_SIZE bytes.
    let bytes = unsafe { core::slice::from_raw_parts(z.as_ptr::<u8>(), PAGE_SIZE) };
    let nonzero = bytes.iter().filter(|&&b| b != 0).count();
    mm.free_page(z);
    check_eq!(nonzero, 0);
    check!(
        free_areas(mm) == before,
        "free areas changed across alloc/free"
    );
    Ok(())
}

fn alloc_pages_exact_frees_the_tail(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let free0 = {
        mm.drain_local_pages();
        mm.nr_free_pages()
    };
    let size = 5 * PAGE_SIZE + 100; // 6 pages out of an order-3 block
    let a = mm.alloc_pages_exact(size, GfpFlags::GFP_KERNEL);
    check!(a.is_some(), "alloc_pages_exact failed");
    let a = a.expect("checked");
    mm.drain_local_pages();
    check_eq!(free0 - mm.nr_free_pages(), 6);
    mm.free_pages_exact(a, size);
    mm.drain_local_pages();
    check_eq!(mm.nr_free_pages(), free0);
    Ok(())
}

/// A block being held during the exhaustion test: its first words link to the next block.
#[repr(C)]
struct Held {
    next: usize,
    check: u64,
}

const HELD_MAGIC: u64 = 0x6b6d_656d_6261_7265; // "kmembare"

/// Allocates order-`order` blocks with `gfp` until it fails, threading them onto `head`
/// through their own memory; returns how many it got.
fn grab_all(
    mm: &Kmem,
    gfp: GfpFlags,
    order: Order,
    head: &mut usize,
    limit_pfn: u64,
) -> Result<usize, crate::selftest::Failure> {
    let mut n = 0;
    while let Some(page) = mm.alloc_pages(gfp | NOWARN, order) {
        let pfn = pfn_of(mm, page);
        check!(
            pfn.is_multiple_of(order.pages() as u64),
            "order {order}: pfn {pfn:#x} misaligned"
        );
        check!(
            pfn + order.pages() as u64 <= limit_pfn,
            "{gfp:?}: pfn {pfn:#x} beyond its zones"
        );
        let va = mm.page_address(page);
        check!(va.is_some(), "pfn {pfn:#x} has no direct-map address");
        let held = va.expect("checked").as_ptr::<Held>();
        // SAFETY: the block is ours (just allocated) and at least a page long.
        unsafe {
            held.write(Held {
                next: *head,
                check: HELD_MAGIC ^ pfn,
            })
        };
        *head = held as usize;
        n += 1;
    }
    Ok(n)
}

fn buddy_exhaust_every_order(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let baseline = free_areas(mm);
    let free0 = mm.nr_free_pages();
    let in_use0 = mm.pages_in_use();
    let dma_end = MAX_DMA_ADDR / PAGE_SIZE as u64;
    let dma32_end = MAX_DMA32_ADDR / PAGE_SIZE as u64;
    for order in Order::all() {
        let mut head = 0usize;
        // Lowest zone first so that the higher zones' fallbacks find it already empty; then
        // GFP_ATOMIC dips into the reserves, and __GFP_MEMALLOC ignores the watermarks: the
        // last pass must leave no free block of this order or larger anywhere.
        let passes = [
            ("GFP_DMA", GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA, dma_end),
            (
                "GFP_DMA32",
                GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
                dma32_end,
            ),
            ("GFP_KERNEL", GfpFlags::GFP_KERNEL, u64::MAX),
            ("GFP_ATOMIC", GfpFlags::GFP_ATOMIC, u64::MAX),
            (
                "__GFP_MEMALLOC",
                GfpFlags::GFP_ATOMIC | GfpFlags::__GFP_MEMALLOC,
                u64::MAX,
            ),
            // With a CMA area (cma=): its pageblocks serve movable allocations only.
            (
                "movable",
                GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_MEMALLOC,
                u64::MAX,
            ),
        ];
        let mut counts = [0usize; 6];
        for (i, (_, gfp, limit)) in passes.iter().enumerate() {
            counts[i] = grab_all(mm, *gfp, order, &mut head, *limit)?;
        }
        let blocks: usize = counts.iter().sum();
        mm.drain_local_pages();
        let left = ZONES.map(|z| mm.free_area_counts(z));
        println!(
            "  order {:2}: {:7} blocks ({:7} pages): DMA {} DMA32 {} KERNEL {} ATOMIC {} MEMALLOC {} movable {}; {} pages left free",
            order.as_u32(),
            blocks,
            blocks * order.pages(),
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            counts[5],
            mm.nr_free_pages()
        );
        for (z, counts) in ZONES.iter().zip(left) {
            for (o, n) in counts.iter().enumerate().skip(order.as_usize()) {
                check_eq!(
                    (z.name(), order.as_u32(), o, *n),
                    (z.name(), order.as_u32(), o, 0)
                );
            }
        }
        check!(
            blocks > 0 || order.bytes() as u64 > ctx.info.total_ram() / 4,
            "order {order}: nothing allocated"
        );
        check!(
            blocks * order.pages() + mm.nr_free_pages() <= free0,
            "order {order}: handed out {} pages with {} still free, but only {free0} were free",
            blocks * order.pages(),
            mm.nr_free_pages()
        );
        // Free everything, checking that no block was handed out twice (the chain would be
        // broken) and that the memory kept what we wrote.
        let mut freed = 0;
        while head != 0 {
            let held = head as *const Held;
            // SAFETY: `head` is a block on our chain, which we still own.
            let Held { next, check } = unsafe { held.read() };
            let va = VirtAddr::new(head);
            let page = mm.virt_to_page(va);
            check!(page.is_some(), "block {head:#x} has no struct page");
            let page = page.expect("checked");
            check_eq!(check ^ HELD_MAGIC, pfn_of(mm, page));
            mm.__free_pages(page, order);
            freed += 1;
            check!(
                freed <= blocks,
                "order {order}: chain longer than the blocks allocated"
            );
            head = next;
        }
        check_eq!(freed, blocks);
        let now = free_areas(mm);
        check!(
            now == baseline,
            "order {order}: free areas differ from boot: {now:?} vs {baseline:?}"
        );
        check_eq!(mm.nr_free_pages(), free0);
        check_eq!(mm.pages_in_use(), in_use0);
    }
    if let Err(e) = mm.check_invariants() {
        check!(false, "buddy invariants after exhaustion: {e}");
    }
    check_eq!((mm.bug_count(), mm.warn_count()), (0, 0));
    Ok(())
}

fn bad_frees_are_reported(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let before = free_areas(mm);
    let bugs0 = mm.bug_count();
    println!("  (two BUG: Bad page state reports are expected next)");
    let page = mm
        .alloc_pages(GfpFlags::GFP_KERNEL, Order::new(5))
        .expect("order-5 block");
    // Wrong order: reported, nothing freed.
    mm.__free_pages(page, Order::new(3));
    check_eq!(mm.bug_count(), bugs0 + 1);
    mm.__free_pages(page, Order::new(5));
    // Double free: reported, nothing changes.
    mm.__free_pages(page, Order::new(5));
    check_eq!(mm.bug_count(), bugs0 + 2);
    check!(
        free_areas(mm) == before,
        "free areas changed by the bad frees"
    );
    if let Err(e) = mm.check_invariants() {
        check!(false, "buddy invariants after bad frees: {e}");
    }
    Ok(())
}
